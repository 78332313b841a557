/* Attention on Vulkan, flash variant (shaders/attention_flash.comp):
 *
 *   attention_flash_forward       attention_flash_fwd: workgroups of WG * R query
 *                                 rows of one (batch, head)
 *   attention_flash_backward_pre  attention_flash_pre: one invocation per row
 *   attention_flash_backward_dkv  attention_flash_dkv: workgroups of WG * R keys of
 *                                 one (batch, kv head)
 *   attention_flash_backward_dq   attention_flash_dq: as the forward
 *
 * Sizes per device, as specialisation constants: on lavapipe a workgroup is
 * one SIMD loop of 8 invocations and every invocation keeps R rows (so each
 * broadcast read of a staged key feeds R rows: its shared-memory reads are
 * executed lane by lane and cost as much as dozens of FMAs), R chosen so the
 * unrolled kernel stays a size LLVM compiles in seconds: R * (D + Dv) up to
 * 2048 for the forward (two such register arrays), 1024 for dq (three), 512
 * for dk/dv (four). At D = 64 that is R = 16, 8, 4 and the three kernels
 * compile in about 40 s of CPU time, once (Mesa caches them on disk); each
 * halving of R costs about a quarter more time per step. Problems under
 * 2^20 (query, key) pairs get 128, kernels that compile in well under a
 * second. On GPUs: 64 invocations of one row each. The staged tile is as
 * many keys (query rows for dk/dv) as the device's shared memory holds, at most 64. With
 * shaderInt64 the staged rows are packed two floats per 64-bit word
 * (the *_p64 kernels): half the shared-memory reads. The environment
 * variable VKF_FLASH_VK_CONFIG=gpu selects the GPU sizes and the 32-bit
 * staging on any device, for testing them on lavapipe. Operand order: see
 * backend/cpu/attention_flash.c. */
#include "vk.h"

#include <stdlib.h>
#include <string.h>

/* The largest push block: eight addresses and the packed params. */
_Static_assert(8 * 8 + sizeof(vkf_flash_params) <= 128, "flash attention push constants");

typedef struct flash_cfg {
  uint32_t wg, r, bt, dp, dvp;
  bool p64;
} flash_cfg;

static uint32_t round_up(uint32_t x, uint32_t m) {
  return (x + m - 1) / m * m;
}

static uint32_t floor_pow2(uint32_t x) {
  uint32_t p = 1;
  while (p * 2 <= x)
    p *= 2;
  return p;
}

/* dkv: staged query rows carry their two statistics too. */
static vkf_status config(vkf_vk *vk, const vkf_op *op, bool dkv, flash_cfg *c) {
  const vkf_attention_params *p = &op->p.attention;
  const char *name = vkf_op_name(op->kind);
  if (p->D > 256 || p->Dv > 256)
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED,
                    "%s: head sizes D %u, Dv %u; the Vulkan flash kernels keep a head in "
                    "registers and take at most 256 (the CPU backend has no limit)",
                    name, p->D, p->Dv);
  if (p->Hq > 0xffff)
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED,
                    "%s: %u query heads; the Vulkan flash kernels take at most 65535", name, p->Hq);
  c->dp = round_up(p->D, 8);
  c->dvp = round_up(p->Dv, 8);
  /* VKF_FLASH_VK_CONFIG=gpu: the GPU sizes and 32-bit staging on any device
   * (so that lavapipe tests them too) */
  const char *force = getenv("VKF_FLASH_VK_CONFIG");
  const bool gpu = (force && strcmp(force, "gpu") == 0) || !vkf_vk_is_cpu_device(vk);
  c->p64 = vk->caps.int64 && !(force && strcmp(force, "gpu") == 0);
  if (!gpu) {
    /* Rows (keys) per invocation: as many as keep the unrolled kernel within
     * `units` row-elements; large problems get the fast kernels (the first
     * use of each compiles for a few seconds), small ones kernels that
     * compile in a fraction of that. */
    double keys = p->window && p->window < p->Tk ? p->window : p->Tk;
    bool big = (double)p->B * p->Hq * p->Tq * keys >= (double)(1 << 20);
    uint32_t units = !big                                             ? 128
                     : op->kind == VKF_OP_ATTENTION_FLASH_FORWARD     ? 2048
                     : op->kind == VKF_OP_ATTENTION_FLASH_BACKWARD_DQ ? 1024
                                                                      : 512;
    uint32_t r = units / (c->dp + c->dvp);
    c->wg = 8;
    c->r = floor_pow2(r < 1 ? 1 : r > 16 ? 16 : r);
  } else {
    c->wg = 64;
    c->r = 1;
  }
  const uint32_t row_bytes = 4 * (c->dp + c->dvp) + (dkv ? 8 : 0);
  uint32_t bt = vk->base.info.shared_memory_bytes / row_bytes;
  c->bt = bt >= 64 ? 64 : floor_pow2(bt ? bt : 1);
  if (bt < 1)
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED,
                    "%s: %u bytes of shared memory cannot hold one staged row of %u bytes", name,
                    vk->base.info.shared_memory_bytes, row_bytes);
  return VKF_OK;
}

static vkf_flash_params pack_params(const vkf_attention_params *p) {
  return (vkf_flash_params){.B = p->B,
                            .Tq = p->Tq,
                            .Tk = p->Tk,
                            .heads = p->Hq | p->Hkv << 16,
                            .dims = p->D | p->Dv << 16,
                            .flags = p->flags,
                            .scale = p->scale,
                            .softcap = p->softcap,
                            .window = p->window,
                            .q_pos0 = p->q_pos0,
                            .mask_sb = p->mask_sb,
                            .mask_sh = p->mask_sh,
                            .mask_si = p->mask_si,
                            .mask_cols = p->mask_cols};
}

/* gx workgroups of WG * R rows (or keys) by z_total heads; z beyond the
 * device's limit goes in several dispatches, each with params.bh0 = its first z. */
static vkf_status launch(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader, const flash_cfg *c,
                         uint32_t gx, uint32_t z_total) {
  const uint32_t *maxg = vk->base.info.max_workgroup_count;
  if (gx > maxg[0])
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED,
                    "%s: %u workgroups along the sequence exceed the device's %u",
                    vkf_op_name(op->kind), gx, maxg[0]);
  const vkf_attention_params *p = &op->p.attention;
  const uint32_t spec[7] = {c->wg,
                            c->r,
                            c->bt,
                            c->dp,
                            c->dvp,
                            (p->flags & VKF_ATTN_MASK) != 0,
                            (p->flags & VKF_ATTN_SOFTCAP) != 0};
  vkf_flash_params fp = pack_params(p);
  vkf_status st = VKF_OK;
  for (uint32_t z0 = 0; z0 < z_total && st == VKF_OK; z0 += maxg[2]) {
    fp.bh0 = z0;
    vkf_vk_push pb;
    vkf_vk_push_build(&pb, op, &fp, sizeof(fp), NULL);
    st = vkf_vk_op_dispatch(vk, op, shader, spec, 7, &pb, gx, 1,
                            z_total - z0 < maxg[2] ? z_total - z0 : maxg[2]);
  }
  return st;
}

vkf_status vkf_vk_attention_flash(vkf_vk *vk, const vkf_op *op) {
  const vkf_attention_params *p = &op->p.attention;
  flash_cfg c;
  vkf_status st = config(vk, op, op->kind == VKF_OP_ATTENTION_FLASH_BACKWARD_DKV, &c);
  if (st != VKF_OK)
    return st;
  const uint32_t rows = c.wg * c.r;
  switch (op->kind) {
  case VKF_OP_ATTENTION_FLASH_FORWARD:
    return launch(vk, op,
                  c.p64 ? VKF_SHADER_attention_flash_fwd_p64 : VKF_SHADER_attention_flash_fwd, &c,
                  (p->Tq + rows - 1) / rows, p->B * p->Hq);
  case VKF_OP_ATTENTION_FLASH_BACKWARD_DQ:
    return launch(vk, op, c.p64 ? VKF_SHADER_attention_flash_dq_p64 : VKF_SHADER_attention_flash_dq,
                  &c, (p->Tq + rows - 1) / rows, p->B * p->Hq);
  case VKF_OP_ATTENTION_FLASH_BACKWARD_DKV:
    return launch(vk, op,
                  c.p64 ? VKF_SHADER_attention_flash_dkv_p64 : VKF_SHADER_attention_flash_dkv, &c,
                  (p->Tk + rows - 1) / rows, p->B * p->Hkv);
  case VKF_OP_ATTENTION_FLASH_BACKWARD_PRE: {
    /* one invocation per row (and the first B copy kv_lens) */
    vkf_flash_params fp = pack_params(p);
    vkf_vk_push pb;
    vkf_vk_push_build(&pb, op, &fp, sizeof(fp), NULL);
    uint64_t n = (uint64_t)p->B * p->Hq * p->Tq;
    uint32_t wg = vkf_vk_elementwise_wg(vk), gx, gy;
    vkf_vk_grid_2d(vk, (n + wg - 1) / wg, &gx, &gy);
    const uint32_t spec[5] = {wg, 1, 1, 8, 8};
    return vkf_vk_op_dispatch(vk, op, VKF_SHADER_attention_flash_pre, spec, 5, &pb, gx, gy, 1);
  }
  default:
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED,
                    "attention (flash): %s is not an op of this family", vkf_op_name(op->kind));
  }
}
