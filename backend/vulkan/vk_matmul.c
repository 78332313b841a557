/* matmul on Vulkan: tile configuration per device and shape, vec4 eligibility,
 * dispatch (shaders/matmul.comp; docs/DEVELOPING.md has the measurements).
 *
 * lavapipe (llvmpipe) runs a workgroup's invocations as SIMD-8 vectors on one
 * CPU thread. Every load or store of shared or global memory becomes a loop
 * over the eight lanes (about 30 instructions per lane for a vec4), every
 * accumulator update inside the k loop a masked read-modify-write of memory,
 * fma a multiply and an add, and a barrier a coroutine switch. So it gets
 * the 64-bit-word variant (matmul_wide: 8 floats per lane-loop iteration),
 * 16x16 blocks per invocation (256 products per 4 shared-memory reads),
 * products summed over 2 k before they reach the accumulators, and the
 * largest tiles shared memory allows (fewer staging loads per product).
 * GPUs get the same kernel with the classic register-blocked configs.
 */
#include "vk.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mm_config {
  uint32_t wg, bm, bn, bk, tm, tn, ku;
  uint32_t wide; /* matmul_wide: 64-bit shared memory words (needs shaderInt64) */
} mm_config;

static uint64_t ceil_div(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
}

static mm_config make(uint32_t bm, uint32_t bn, uint32_t bk, uint32_t tm, uint32_t tn,
                      uint32_t ku) {
  return (mm_config){(bm / tm) * (bn / tn), bm, bn, bk, tm, tn, ku, 0};
}

/* lavapipe: square tiles of T x T, each workgroup one task for one of the
 * driver's CPU threads. Relative speed of the tile sizes (GFLOP/s of one
 * 1024x768x2304 product on 2 Zen 4 cores), from bench_gemm. The choice
 * maximises speed x useful fraction of the padded tiles x thread balance. */
static const struct {
  uint32_t t, gflops;
  mm_config c;
} cpu_tiles[] = {
    {256, 35, {256, 256, 256, 16, 16, 16, 2, 1}},
    {128, 31, {64, 128, 128, 32, 16, 16, 2, 1}},
    {64, 24, {16, 64, 64, 32, 16, 16, 2, 1}},
    {32, 13, {16, 32, 32, 32, 8, 8, 2, 1}},
};

static uint32_t lavapipe_threads(void) {
  const char *e = getenv("LP_NUM_THREADS"); /* llvmpipe's own setting */
  if (e && *e) {
    long n = strtol(e, NULL, 10);
    if (n >= 1)
      return (uint32_t)n;
  }
  return vkf_cpu_default_threads();
}

static mm_config config_cpu(const vkf_vk *vk, const vkf_matmul_params *p) {
  uint64_t threads = lavapipe_threads();
  double best = -1;
  mm_config c = cpu_tiles[VKF_ARRAY_LEN(cpu_tiles) - 1].c;
  for (size_t i = 0; i < VKF_ARRAY_LEN(cpu_tiles); i++) {
    uint64_t t = cpu_tiles[i].t, tm = ceil_div(p->M, t), tn = ceil_div(p->N, t);
    uint64_t groups = tm * tn * p->batch;
    double useful = (double)p->M * p->N / ((double)tm * t * tn * t);
    double balance = (double)groups / (double)(threads * ceil_div(groups, threads));
    double score = cpu_tiles[i].gflops * useful * balance;
    if (score > best * 1.02) { /* ties go to the larger tile */
      best = score;
      c = cpu_tiles[i].c;
    }
  }
  if (!vk->caps.int64) { /* the plain kernel: vec4 shared memory words */
    c.wide = 0;
    c.ku = 2;
  }
  return c;
}

/* GPUs (not measured here: this machine has only lavapipe; the kernels are
 * exercised for correctness on it through VKF_MATMUL_CONFIG in the tests).
 * The classic register-blocked choices:
 * - 128x128 tiles of 8x8 per invocation (256 invocations, 16 KiB of shared
 *   memory, ~100 registers) for large products on NVIDIA and AMD, whose
 *   register files hold an 8x8 block at full occupancy, when there are
 *   enough tiles to give the device about a wave of workgroups;
 * - 64x64 tiles of 4x4 (256 invocations, 8 KiB) otherwise, and always on
 *   Intel and other GPUs (an 8x8 block spills in Intel's SIMD16 mode);
 * - 32x32 tiles of 4x4 (64 invocations, 4 KiB) for tiny matrices and
 *   devices with small workgroups.
 * BK = 16 keeps shared memory well inside every device's limit. */
static mm_config config_gpu(const vkf_vk *vk, const vkf_matmul_params *p) {
  const vkf_device_info *d = &vk->base.info;
  bool discrete = d->type == VKF_DEVICE_TYPE_DISCRETE_GPU;
  bool big_blocks = d->vendor == VKF_VENDOR_NVIDIA || d->vendor == VKF_VENDOR_AMD;
  uint64_t wave = discrete ? 128 : 32; /* workgroups that occupy the device */
  uint64_t t128 = ceil_div(p->M, 128) * ceil_div(p->N, 128) * p->batch;
  uint64_t t64 = ceil_div(p->M, 64) * ceil_div(p->N, 64) * p->batch;
  bool wg256 = d->max_workgroup_invocations >= 256;
  if (big_blocks && wg256 && d->shared_memory_bytes >= 16384 && t128 >= wave && p->K >= 64)
    return make(128, 128, 16, 8, 8, 1);
  if (wg256 && (t64 >= wave / 4 || (p->M > 32 && p->N > 32)))
    return make(64, 64, 16, 4, 4, 1);
  return make(32, 32, 16, 4, 4, 1);
}

static bool valid(const vkf_vk *vk, const mm_config *c, char *why, size_t n) {
  const vkf_device_info *d = &vk->base.info;
  if (!c->bm || !c->bn || !c->bk || !c->tm || !c->tn || !c->ku || c->bm % c->tm || c->bn % c->tn ||
      c->tm % 4 || c->tn % 4 || c->bk % 4 || c->bk % c->ku) {
    snprintf(why, n, "tiles must satisfy BM%%TM = BN%%TN = TM%%4 = TN%%4 = BK%%4 = BK%%KU = 0");
    return false;
  }
  if (c->wg != (c->bm / c->tm) * (c->bn / c->tn)) {
    snprintf(why, n, "WG must be (BM/TM)*(BN/TN) = %u", (c->bm / c->tm) * (c->bn / c->tn));
    return false;
  }
  if (c->wg > d->max_workgroup_invocations) {
    snprintf(why, n, "%u invocations exceed the device's %u", c->wg, d->max_workgroup_invocations);
    return false;
  }
  uint64_t shared = 4ull * c->bk * (c->bm + c->bn);
  if (shared > d->shared_memory_bytes) {
    snprintf(why, n, "%llu bytes of shared memory exceed the device's %u",
             (unsigned long long)shared, d->shared_memory_bytes);
    return false;
  }
  if (c->tm * c->tn > 1024 || c->ku > 8) {
    snprintf(why, n, "TM*TN at most 1024 and KU at most 8");
    return false;
  }
  if (c->wide && (!vk->caps.int64 || c->tm % 8 || c->tn % 8 || c->tm > 16 || c->tn > 16)) {
    snprintf(why, n, "the wide kernel needs shaderInt64, and TM, TN of 8 or 16");
    return false;
  }
  return true;
}

/* VKF_MATMUL_CONFIG="WG,BM,BN,BK,TM,TN,KU" overrides the choice (tuning and
 * tests). *out_set says whether it is set; an invalid value is an error. */
static vkf_status config_override(vkf_vk *vk, mm_config *c, bool *out_set) {
  const char *e = getenv("VKF_MATMUL_CONFIG");
  *out_set = false;
  if (!e || !*e)
    return VKF_OK;
  mm_config o = {0};
  char tail;
  int got = sscanf(e, "%u,%u,%u,%u,%u,%u,%u,%u%c", &o.wg, &o.bm, &o.bn, &o.bk, &o.tm, &o.tn, &o.ku,
                   &o.wide, &tail);
  if (got != 7 && got != 8)
    return vkf_fail(vk->base.env, VKF_ERROR_INVALID_ARGUMENT,
                    "VKF_MATMUL_CONFIG=\"%s\": expected WG,BM,BN,BK,TM,TN,KU[,WIDE]", e);
  char why[128];
  if (!valid(vk, &o, why, sizeof(why)))
    return vkf_fail(vk->base.env, VKF_ERROR_INVALID_ARGUMENT, "VKF_MATMUL_CONFIG=\"%s\": %s", e,
                    why);
  *c = o;
  *out_set = true;
  return VKF_OK;
}

/* Whether an operand can be read as vec4 in every dispatch: 16-byte aligned
 * base, leading dimension and batch stride multiples of 4. */
static bool vec4_ok(uint64_t addr, uint32_t ld, uint32_t stride, uint32_t batch) {
  return addr % 16 == 0 && ld % 4 == 0 && (batch == 1 || stride % 4 == 0);
}

vkf_status vkf_vk_matmul(vkf_vk *vk, const vkf_op *op) {
  const vkf_matmul_params *p = &op->p.matmul;
  const vkf_device_info *d = &vk->base.info;
  mm_config c;
  bool forced;
  vkf_status st = config_override(vk, &c, &forced);
  if (st != VKF_OK)
    return st;
  if (!forced) {
    c = vkf_vk_is_cpu_device(vk) ? config_cpu(vk, p) : config_gpu(vk, p);
    char why[128];
    if (!valid(vk, &c, why, sizeof(why)))
      c = make(32, 32, 16, 4, 4, 1); /* 64 invocations, 4 KiB: every Vulkan device */
  }
  uint32_t vec = 0;
  if (vec4_ok(vkf_vk_addr(op->t[1]), p->lda, p->stride_a, p->batch))
    vec |= 1;
  if (vec4_ok(vkf_vk_addr(op->t[2]), p->ldb, p->stride_b, p->batch))
    vec |= 2;
  if (vec4_ok(vkf_vk_addr(op->t[0]), p->ldc, p->stride_c, p->batch) &&
      (!(p->flags & VKF_MM_BIAS) || vkf_vk_addr(op->t[3]) % 16 == 0))
    vec |= 4;
  /* The 64-bit-word kernel has no vec4 epilogue; on llvmpipe the plain
   * kernel's takes seconds to compile for no gain (every global access is a
   * loop over the lanes anyway), unless a forced config asks for it. */
  if (c.wide || (vkf_vk_is_cpu_device(vk) && !forced))
    vec &= 3;
  uint32_t spec[8] = {c.wg, c.bm, c.bn, c.bk, c.tm, c.tn, c.ku, vec};

  uint32_t gx = (uint32_t)ceil_div(p->N, c.bn), gy = (uint32_t)ceil_div(p->M, c.bm);
  if (gy > d->max_workgroup_count[1] || gx > d->max_workgroup_count[0])
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED,
                    "matmul: a %ux%u output needs %ux%u workgroups; the device allows %ux%u", p->M,
                    p->N, gx, gy, d->max_workgroup_count[0], d->max_workgroup_count[1]);
  /* Batches beyond maxComputeWorkGroupCount[2] go in several dispatches,
   * each with its operands' addresses advanced. */
  uint32_t max_z = d->max_workgroup_count[2];
  for (uint32_t b0 = 0; b0 < p->batch; b0 += max_z) {
    uint32_t nb = p->batch - b0 < max_z ? p->batch - b0 : max_z;
    uint64_t adj[4] = {4ull * b0 * p->stride_c, 4ull * b0 * p->stride_a, 4ull * b0 * p->stride_b,
                       0};
    vkf_vk_push pb;
    vkf_vk_push_build(&pb, op, p, sizeof(*p), adj);
    st = vkf_vk_op_dispatch(vk, op, c.wide ? VKF_SHADER_matmul_wide : VKF_SHADER_matmul, spec, 8,
                            &pb, gx, gy, nb);
    if (st != VKF_OK)
      return st;
  }
  return VKF_OK;
}
