/* Attention on Vulkan (standard variant: scores materialised).
 *
 *   attention_forward       attention_qk (MODE 0) -> logits or P; attention_softmax -> P;
 *                           attention_pv (MODE 0) -> out
 *   attention_backward_ds   attention_qk (MODE 1) dP -> workspace; with softcap
 *                           attention_qk (MODE 2) -> g plane; attention_ds -> dS in place
 *   attention_backward_dq   attention_pv (MODE 1): dq += dS . k
 *   attention_backward_dkv  attention_dkv (MODE 0) dk, (MODE 1) dv
 *
 * Each dispatch declares exactly the ranges it reads and writes, so the
 * barrier tracking orders the steps (and lets dk and dv run together).
 * Operand order: see backend/cpu/attention.c. */
#include "vk.h"

#include <string.h>

/* The largest push block: attention_qk's five addresses and the params. */
_Static_assert(5 * 8 + sizeof(vkf_attention_params) <= 128, "attention push constants");

typedef struct attn_tile {
  uint32_t wg, bm, bn, bk, tm, tn;
} attn_tile;

/* Tiles of an M x N output (M: query rows, or keys for dk/dv; N: keys for
 * the scores, else a head size). Short M (decoding: Tq = 1) and narrow N
 * (small heads) get short/narrow tiles so few invocations idle. Always
 * (BM/TM) x (BN/TN) invocations: 16 x 16 on GPUs, 8 x 8 on lavapipe. */
static attn_tile tile_for(const vkf_vk *vk, uint32_t m, uint32_t n) {
  attn_tile t = {.bk = 16};
  if (vkf_vk_is_cpu_device(vk)) {
    t.bm = m <= 8 ? 8 : 32;
    t.bn = n <= 8 ? 8 : n <= 16 ? 16 : 32;
    t.tm = t.bm / 8;
    t.tn = t.bn / 8;
  } else {
    t.bm = m <= 16 ? 16 : 64;
    t.bn = n <= 16 ? 16 : n <= 32 ? 32 : 64;
    t.tm = t.bm / 16;
    t.tn = t.bn / 16;
  }
  t.wg = (t.bm / t.tm) * (t.bn / t.tn);
  return t;
}

static vkf_vk_range rng(vkf_tref t) {
  VkDeviceAddress a = vkf_vk_addr(t);
  return (vkf_vk_range){a, a + (t.buf ? t.bytes : 0)};
}

/* Push block: `n` addresses then the params. */
typedef struct attn_push {
  uint8_t bytes[128];
  uint32_t size;
} attn_push;

static void push_make(attn_push *pb, const vkf_tref *ops, uint32_t n,
                      const vkf_attention_params *p) {
  for (uint32_t i = 0; i < n; i++) {
    uint64_t a = vkf_vk_addr(ops[i]);
    memcpy(pb->bytes + 8 * i, &a, 8);
  }
  memcpy(pb->bytes + 8 * n, p, sizeof(*p));
  pb->size = 8 * n + (uint32_t)sizeof(*p);
}

/* One kernel over a grid of gx x gy x z_total groups; z beyond the device's
 * limit goes in several dispatches, each with params.bh0 = its first z. */
static vkf_status launch(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader, const uint32_t *spec,
                         uint32_t n_spec, const vkf_tref *ops, uint32_t n_ops, uint32_t gx,
                         uint32_t gy, uint32_t z_total, const vkf_vk_range *reads, uint32_t nr,
                         const vkf_vk_range *writes, uint32_t nw) {
  const uint32_t *maxg = vk->base.info.max_workgroup_count;
  if (gx > maxg[0] || gy > maxg[1])
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED,
                    "%s: a grid of %u x %u workgroups exceeds the device's %u x %u",
                    vkf_op_name(op->kind), gx, gy, maxg[0], maxg[1]);
  VkPipeline pipe;
  vkf_status st = vkf_vk_pipeline_get(vk, shader, n_spec, spec, &pipe);
  if (st != VKF_OK)
    return st;
  vkf_attention_params p = op->p.attention;
  for (uint32_t z0 = 0; z0 < z_total && st == VKF_OK; z0 += maxg[2]) {
    uint32_t nz = z_total - z0 < maxg[2] ? z_total - z0 : maxg[2];
    p.bh0 = z0;
    attn_push pb;
    push_make(&pb, ops, n_ops, &p);
    vkf_vk_dispatch d = {.pipeline = pipe,
                         .push = pb.bytes,
                         .push_size = pb.size,
                         .groups = {gx ? gx : 1, gy ? gy : 1, nz},
                         .kind = op->kind,
                         .reads = reads,
                         .n_reads = nr,
                         .writes = writes,
                         .n_writes = nw};
    st = vkf_vk_dispatch_record(vk, &d);
  }
  return st;
}

/* attention_qk: dst[B, Hq, Tq, Tk] from rows of a (query heads) and b (kv heads). */
static vkf_status run_qk(vkf_vk *vk, const vkf_op *op, uint32_t mode, vkf_tref dst, vkf_tref a,
                         vkf_tref b, vkf_tref mask, vkf_tref kvl) {
  const vkf_attention_params *p = &op->p.attention;
  attn_tile t = tile_for(vk, p->Tq, p->Tk);
  uint32_t spec[7] = {t.wg, t.bm, t.bn, t.bk, t.tm, t.tn, mode};
  vkf_tref ops[5] = {dst, a, b, mask, kvl};
  vkf_vk_range r[4] = {rng(a), rng(b), rng(mask), rng(kvl)}, w[1] = {rng(dst)};
  return launch(vk, op, VKF_SHADER_attention_qk, spec, 7, ops, 5, (p->Tk + t.bn - 1) / t.bn,
                (p->Tq + t.bm - 1) / t.bm, p->B * p->Hq, r, 4, w, 1);
}

/* attention_pv: dst rows (query heads) = or += a[B, Hq, Tq, Tk] . x rows (kv heads). */
static vkf_status run_pv(vkf_vk *vk, const vkf_op *op, uint32_t mode, vkf_tref dst, vkf_tref a,
                         vkf_tref x, vkf_tref kvl) {
  const vkf_attention_params *p = &op->p.attention;
  uint32_t E = mode == 0 ? p->Dv : p->D;
  attn_tile t = tile_for(vk, p->Tq, E);
  t.bk = 32; /* the inner dimension is the keys: long, so deeper slices */
  uint32_t spec[7] = {t.wg, t.bm, t.bn, t.bk, t.tm, t.tn, mode};
  vkf_tref ops[4] = {dst, a, x, kvl};
  vkf_vk_range r[4] = {rng(a), rng(x), rng(kvl), rng(dst)}, w[1] = {rng(dst)};
  return launch(vk, op, VKF_SHADER_attention_pv, spec, 7, ops, 4, (E + t.bn - 1) / t.bn,
                (p->Tq + t.bm - 1) / t.bm, p->B * p->Hq, r, mode == 0 ? 3 : 4, w, 1);
}

/* attention_dkv: dst rows (kv heads) += sum over the group of a^T . x. */
static vkf_status run_dkv(vkf_vk *vk, const vkf_op *op, uint32_t mode, vkf_tref dst, vkf_tref a,
                          vkf_tref x, vkf_tref kvl) {
  const vkf_attention_params *p = &op->p.attention;
  uint32_t E = mode == 0 ? p->D : p->Dv;
  attn_tile t = tile_for(vk, p->Tk, E);
  t.bk = 32; /* the inner dimension is the query rows: long, so deeper slices */
  uint32_t spec[7] = {t.wg, t.bm, t.bn, t.bk, t.tm, t.tn, mode};
  vkf_tref ops[4] = {dst, a, x, kvl};
  vkf_vk_range r[4] = {rng(a), rng(x), rng(kvl), rng(dst)}, w[1] = {rng(dst)};
  return launch(vk, op, VKF_SHADER_attention_dkv, spec, 7, ops, 4, (E + t.bn - 1) / t.bn,
                (p->Tk + t.bm - 1) / t.bm, p->B * p->Hkv, r, 4, w, 1);
}

/* Row kernels: one workgroup per row of [B, Hq, Tq, Tk]. */
static vkf_status run_rows(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader, const vkf_tref *ops,
                           uint32_t n_ops, const vkf_vk_range *reads, uint32_t nr,
                           const vkf_vk_range *writes, uint32_t nw) {
  const vkf_attention_params *p = &op->p.attention;
  uint32_t wg = vkf_vk_row_wg(vk, p->Tk), gx, gy;
  vkf_vk_grid_2d(vk, (uint64_t)p->B * p->Hq * p->Tq, &gx, &gy);
  return launch(vk, op, shader, &wg, 1, ops, n_ops, gx, gy, 1, reads, nr, writes, nw);
}

static vkf_status forward(vkf_vk *vk, const vkf_op *op) {
  const vkf_tref out = op->t[0], P = op->t[1], q = op->t[2], k = op->t[3], v = op->t[4];
  const vkf_tref mask = op->t[5], kvl = op->t[6], logits = op->t[7];
  const vkf_tref S = logits.buf ? logits : P;
  vkf_status st = run_qk(vk, op, 0, S, q, k, mask, kvl);
  if (st == VKF_OK) {
    vkf_tref ops[3] = {P, S, kvl};
    vkf_vk_range r[2] = {rng(S), rng(kvl)}, w[1] = {rng(P)};
    st = run_rows(vk, op, VKF_SHADER_attention_softmax, ops, 3, r, 2, w, 1);
  }
  if (st == VKF_OK)
    st = run_pv(vk, op, 0, out, P, v, kvl);
  return st;
}

static vkf_status backward_ds(vkf_vk *vk, const vkf_op *op) {
  const vkf_tref ds = op->t[0], g = op->t[1], dout = op->t[2], q = op->t[3], k = op->t[4];
  const vkf_tref v = op->t[5], P = op->t[6], kvl = op->t[7], none = {0};
  vkf_status st = run_qk(vk, op, 1, ds, dout, v, none, kvl);
  if (st == VKF_OK && g.buf)
    st = run_qk(vk, op, 2, g, q, k, none, kvl);
  if (st == VKF_OK) {
    vkf_tref ops[4] = {ds, g, P, kvl};
    vkf_vk_range r[4] = {rng(ds), rng(g), rng(P), rng(kvl)}, w[1] = {rng(ds)};
    st = run_rows(vk, op, VKF_SHADER_attention_ds, ops, 4, r, 4, w, 1);
  }
  return st;
}

vkf_status vkf_vk_attention(vkf_vk *vk, const vkf_op *op) {
  switch (op->kind) {
  case VKF_OP_ATTENTION_FORWARD:
    return forward(vk, op);
  case VKF_OP_ATTENTION_BACKWARD_DS:
    return backward_ds(vk, op);
  case VKF_OP_ATTENTION_BACKWARD_DQ:
    return run_pv(vk, op, 1, op->t[0], op->t[1], op->t[2], op->t[3]);
  case VKF_OP_ATTENTION_BACKWARD_DKV: {
    vkf_status st = run_dkv(vk, op, 0, op->t[0], op->t[2], op->t[4], op->t[6]);
    if (st == VKF_OK)
      st = run_dkv(vk, op, 1, op->t[1], op->t[3], op->t[5], op->t[6]);
    return st;
  }
  default:
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED, "attention: op %s not implemented",
                    vkf_op_name(op->kind));
  }
}
