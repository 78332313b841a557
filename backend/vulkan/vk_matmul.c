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
 *
 * With texel reads (vk.h: lavapipe with push descriptors), products whose
 * operands allow it run matmul_tex instead: no shared memory, operands
 * fetched 4 floats at a time through texel views, which llvmpipe turns into
 * vector gathers rather than loops over the lanes (2-2.5x the speed of the
 * best matmul_wide config on the training shapes).
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

/* ------------------------------------------------------------------------ */
/* matmul_tex                                                               */
/* ------------------------------------------------------------------------ */
/* The largest K matmul_tex runs (K / 4 loop iterations per invocation). */
#define VKF_VK_TEX_MAX_K (4u * 60000u)

typedef struct tex_config {
  uint32_t wg, tm, tn, tx; /* tile (wg / tx * tm) x (tx * tn) */
  uint32_t vc;             /* 0: no vec4 epilogue even where c allows it */
} tex_config;

/* Candidates, largest first, with their relative speed (GFLOP per CPU
 * second of a 512x1024x512 product, Zen 5; the block size matters little:
 * what counts is the padding of edge tiles and the balance over threads). */
static const struct {
  uint32_t gflops;
  tex_config c;
} tex_tiles[] = {
    {42, {64, 16, 16, 8, 1}}, /* 128 x 128 */
    {42, {16, 16, 16, 4, 1}}, /* 64 x 64 */
    {41, {8, 16, 16, 2, 1}},  /* 64 x 32 */
    {38, {8, 8, 8, 4, 1}},    /* 16 x 32 */
    {30, {16, 4, 16, 16, 1}}, /* 4 x 256: decoding's one to four rows */
};

static tex_config tex_choose(uint64_t M, uint64_t N, uint64_t batch) {
  uint64_t threads = lavapipe_threads();
  double best = -1;
  tex_config c = tex_tiles[0].c;
  for (size_t i = 0; i < VKF_ARRAY_LEN(tex_tiles); i++) {
    const tex_config *t = &tex_tiles[i].c;
    uint64_t bm = (uint64_t)t->wg / t->tx * t->tm, bn = (uint64_t)t->tx * t->tn;
    uint64_t gm = ceil_div(M, bm), gn = ceil_div(N, bn), groups = gm * gn * batch;
    double useful = (double)M * N / ((double)gm * bm * gn * bn);
    double balance = (double)groups / (double)(threads * ceil_div(groups, threads));
    double score = tex_tiles[i].gflops * useful * balance;
    if (score > best * 1.02) { /* ties go to the larger tile */
      best = score;
      c = *t;
    }
  }
  return c;
}

/* VKF_MATMUL_TEX_CONFIG="WG,TM,TN,TX[,VC]" forces a matmul_tex config (tests;
 * VC = 0 keeps the scalar epilogue). */
static vkf_status tex_override(vkf_vk *vk, tex_config *c, bool *set) {
  const char *e = getenv("VKF_MATMUL_TEX_CONFIG");
  *set = false;
  if (!e || !*e)
    return VKF_OK;
  tex_config o = {.vc = 1};
  char tail;
  int used = 0;
  bool parsed = sscanf(e, "%u,%u,%u,%u%n", &o.wg, &o.tm, &o.tn, &o.tx, &used) == 4 && used > 0 &&
                (!e[used] || sscanf(e + used, ",%u%c", &o.vc, &tail) == 1);
  if (!parsed || !o.tx || o.wg % o.tx || !o.tm || !o.tn || o.tm % 4 || o.tn % 4 || o.tm > 32 ||
      o.tn > 32 || o.vc > 1 || o.wg > vk->base.info.max_workgroup_invocations)
    return vkf_fail(vk->base.env, VKF_ERROR_INVALID_ARGUMENT,
                    "VKF_MATMUL_TEX_CONFIG=\"%s\": expected WG,TM,TN,TX[,VC] with TX dividing WG, "
                    "TM, TN multiples of 4 up to 32, VC 0 or 1",
                    e);
  *c = o;
  *set = true;
  return VKF_OK;
}

/* Whether an operand can be fetched 4 floats at a time from its view. */
static bool tex_operand(vkf_vk *vk, vkf_tref t, uint32_t ld, uint32_t s1, uint32_t s2,
                        VkBufferView *view, uint64_t *off, vkf_vk_range *range) {
  return ld % 4 == 0 && s1 % 4 == 0 && s2 % 4 == 0 && vkf_vk_texel(vk, t, view, off, range);
}

vkf_status vkf_vk_matmul_tex(vkf_vk *vk, const vkf_vk_mm *mm, bool *done) {
  const vkf_matmul_tex_params *q = &mm->p;
  *done = false;
  bool ta = q->flags & VKF_MM_TRANS_A, tb = q->flags & VKF_MM_TRANS_B;
  VkBufferView views[2];
  uint64_t aoff, boff;
  vkf_vk_range reads[4], writes[1];
  /* the k loop runs K / 4 times per invocation: keep it well inside
   * llvmpipe's 65535 loop iterations (docs/DEVELOPING.md) */
  if (!vk->caps.texel_reads || !mm->batch || !q->batch_inner || q->K % 4 ||
      q->K > VKF_VK_TEX_MAX_K || (ta && q->M % 4) || (!tb && q->N % 4) || q->a_off % 4 ||
      q->b_off % 4 ||
      !tex_operand(vk, mm->a, q->lda, q->stride_a, q->stride_a2, &views[0], &aoff, &reads[0]) ||
      !tex_operand(vk, mm->b, q->ldb, q->stride_b, q->stride_b2, &views[1], &boff, &reads[1]))
    return VKF_OK;
  if (aoff + q->a_off > UINT32_MAX || boff + q->b_off > UINT32_MAX)
    return VKF_OK;
  tex_config c;
  bool forced;
  vkf_status st = tex_override(vk, &c, &forced);
  if (st != VKF_OK)
    return st;
  if (!forced)
    c = tex_choose(q->M, q->N, mm->batch);
  uint64_t bm = (uint64_t)c.wg / c.tx * c.tm, bn = (uint64_t)c.tx * c.tn;
  const vkf_device_info *d = &vk->base.info;
  uint64_t gx = ceil_div(q->N, bn), gy = ceil_div(q->M, bm);
  if (gx > d->max_workgroup_count[0] || gy > d->max_workgroup_count[1])
    return VKF_OK; /* the other kernel reports it */
  VkDeviceAddress ca = vkf_vk_addr(mm->c), ba = vkf_vk_addr(mm->bias);
  /* vec4 epilogue: every quad of c (and bias) 16-byte aligned, in every
   * dispatch (z0 only moves by whole batch strides) */
  bool vc = c.vc && ca % 16 == 0 && q->N % 4 == 0 && q->ldc % 4 == 0 && q->stride_c % 4 == 0 &&
            q->stride_c2 % 4 == 0 && (!(q->flags & VKF_MM_BIAS) || ba % 16 == 0);
  uint32_t spec[7] = {c.wg, c.tm, c.tn, c.tx, ta ? 1u : 0u, tb ? 1u : 0u, vc ? 1u : 0u};
  VkPipeline pipe;
  st = vkf_vk_pipeline_get(vk, VKF_SHADER_matmul_tex, 7, spec, &pipe);
  if (st != VKF_OK)
    return st;
  uint32_t nr = 2;
  if (q->flags & VKF_MM_BETA)
    reads[nr++] = (vkf_vk_range){ca, ca + mm->c.bytes};
  if (q->flags & VKF_MM_BIAS)
    reads[nr++] = (vkf_vk_range){ba, ba + mm->bias.bytes};
  writes[0] = (vkf_vk_range){ca, ca + mm->c.bytes};
  uint32_t max_z = d->max_workgroup_count[2];
  for (uint32_t z0 = 0; z0 < mm->batch && st == VKF_OK; z0 += max_z) {
    struct {
      VkDeviceAddress c, bias;
      vkf_matmul_tex_params p;
    } push = {ca, ba, *q};
    push.p.a_off = (uint32_t)(aoff + q->a_off);
    push.p.b_off = (uint32_t)(boff + q->b_off);
    push.p.z0 = z0;
    vkf_vk_dispatch disp = {
        .pipeline = pipe,
        .push = &push,
        .push_size = sizeof(push),
        .groups = {(uint32_t)gx, (uint32_t)gy, mm->batch - z0 < max_z ? mm->batch - z0 : max_z},
        .kind = mm->kind,
        .reads = reads,
        .n_reads = nr,
        .writes = writes,
        .n_writes = 1,
        .views = views,
        .n_views = 2};
    st = vkf_vk_dispatch_record(vk, &disp);
  }
  *done = st == VKF_OK;
  return st;
}

/* A matmul (or matvec) op through matmul_tex where it can run it. */
vkf_status vkf_vk_matmul_op_tex(vkf_vk *vk, const vkf_op *op, bool *done) {
  const vkf_matmul_params *p = &op->p.matmul;
  vkf_vk_mm mm = {.kind = op->kind,
                  .c = op->t[0],
                  .a = op->t[1],
                  .b = op->t[2],
                  .bias = (p->flags & VKF_MM_BIAS) ? op->t[3] : (vkf_tref){0},
                  .batch = p->batch};
  mm.p = (vkf_matmul_tex_params){.M = p->M,
                                 .N = p->N,
                                 .K = p->K,
                                 .batch_inner = 1,
                                 .lda = p->lda,
                                 .ldb = p->ldb,
                                 .ldc = p->ldc,
                                 .stride_a = p->stride_a,
                                 .stride_b = p->stride_b,
                                 .stride_c = p->stride_c,
                                 .flags = p->flags,
                                 .alpha = p->alpha,
                                 .beta = p->beta};
  return vkf_vk_matmul_tex(vk, &mm, done);
}

vkf_status vkf_vk_matmul(vkf_vk *vk, const vkf_op *op) {
  const vkf_matmul_params *p = &op->p.matmul;
  const vkf_device_info *d = &vk->base.info;
  mm_config c;
  bool forced;
  vkf_status st = config_override(vk, &c, &forced);
  if (st != VKF_OK)
    return st;
  if (!forced && vk->caps.texel_reads) {
    bool done;
    st = vkf_vk_matmul_op_tex(vk, op, &done);
    if (st != VKF_OK || done)
      return st;
  }
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
