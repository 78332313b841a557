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
 * Operand order: see backend/cpu/attention.c.
 *
 * With texel reads (CPU devices, vk.h), the products run as matmul_tex
 * instead (llvmpipe fetches its operands as vectors; 5-10x the speed of the
 * tiles above there), over every (query, key) pair: the row kernels give
 * exactly 0 outside the visible keys, so the products need no mask. Batches
 * are two-level, batch x kv head; the G = Hq / Hkv query heads of a kv head
 * are G dispatches (dk and dv sum them in order, deterministic). Only
 * without a mask, softcap, kv_lens or logits output: with kv_lens the keys
 * past a batch's length may hold anything (a cache's unwritten rows), and
 * 0 * inf is not 0. */
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

/* ------------------------------------------------------------------------ */
/* Products as matmul_tex                                                   */
/* ------------------------------------------------------------------------ */
/* Strides of a [B, T, H, E] (or [B, H, T, E]) tensor. */
typedef struct attn_layout {
  uint32_t row, head, batch;
} attn_layout;

static attn_layout layout_of(bool bhtd, uint32_t T, uint32_t H, uint32_t E) {
  return (attn_layout){bhtd ? E : H * E, bhtd ? T * E : E, H * T * E};
}

/* The row kernels' loops walk a row 4 keys at a time, twice, and the
 * products' k loops run K / 4 times (K = D, Dv, Tk or Tq): well inside
 * llvmpipe's 65535 loop iterations per invocation. */
#define TEX_MAX_TK 32768u

/* Whether every product of `op` can run as matmul_tex. */
static bool tex_ok(vkf_vk *vk, const vkf_op *op) {
  const vkf_attention_params *p = &op->p.attention;
  const uint32_t bad =
      VKF_ATTN_MASK | VKF_ATTN_SOFTCAP | VKF_ATTN_KV_LENS | VKF_ATTN_LOGITS | VKF_ATTN_Q_AT_KV_END;
  if (!vk->caps.texel_reads || (p->flags & bad) || p->D % 4 || p->Dv % 4 || p->Tq % 4 ||
      p->Tk % 4 || !p->Hkv || p->Hq % p->Hkv || p->Tk > TEX_MAX_TK || p->Tq > TEX_MAX_TK ||
      p->D > TEX_MAX_TK || p->Dv > TEX_MAX_TK)
    return false;
  /* every operand must have a texel view: the products and row kernels
   * read their inputs and P / dS (written by an earlier step of the same
   * op) through one */
  for (uint32_t i = 0; i < op->n_tensors; i++) {
    VkBufferView v;
    uint64_t off;
    vkf_vk_range r;
    if (op->t[i].buf && ((op->reads | op->writes) & (1u << i)) &&
        !vkf_vk_texel(vk, op->t[i], &v, &off, &r))
      return false;
  }
  return true;
}

/* One product per query head of each kv-head group: c (+)= alpha op(a) op(b)
 * where a, b, c are per-(batch, head) matrices of the given layouts;
 * `a_r`, `b_r`, `c_r`: whether the operand follows the query head (moves by
 * its head stride per r) or the kv head. */
typedef struct attn_mm {
  vkf_tref c, a, b;
  uint32_t M, N, K, flags;
  attn_layout la, lb, lc;
  bool a_r, b_r, c_r;
  float alpha;
} attn_mm;

static vkf_status tex_product(vkf_vk *vk, const vkf_op *op, const attn_mm *m) {
  const vkf_attention_params *p = &op->p.attention;
  const uint32_t G = p->Hq / p->Hkv;
  vkf_status st = VKF_OK;
  for (uint32_t r = 0; r < G && st == VKF_OK; r++) {
    vkf_vk_mm mm = {.kind = op->kind, .c = m->c, .a = m->a, .b = m->b, .batch = p->B * p->Hkv};
    /* an operand of the query heads: head hk * G + r */
    uint32_t ca = m->c_r ? r * m->lc.head : 0;
    mm.c.offset += 4ull * ca;
    mm.c.bytes -= 4ull * ca;
    mm.p = (vkf_matmul_tex_params){
        .M = m->M,
        .N = m->N,
        .K = m->K,
        .batch_inner = p->Hkv,
        .lda = m->la.row,
        .ldb = m->lb.row,
        .ldc = m->lc.row,
        .a_off = m->a_r ? r * m->la.head : 0,
        .b_off = m->b_r ? r * m->lb.head : 0,
        .stride_a = m->la.batch,
        .stride_b = m->lb.batch,
        .stride_c = m->lc.batch,
        .stride_a2 = (m->a_r ? G : 1) * m->la.head,
        .stride_b2 = (m->b_r ? G : 1) * m->lb.head,
        .stride_c2 = (m->c_r ? G : 1) * m->lc.head,
        .flags = m->flags,
        .alpha = m->alpha,
        .beta = (m->flags & VKF_MM_BETA) ? 1.0f : 0.0f,
    };
    bool done = false;
    st = vkf_vk_matmul_tex(vk, &mm, &done);
    if (st == VKF_OK && !done) /* tex_ok said it would */
      st = vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED, "%s: a product the texel kernel refused",
                    vkf_op_name(op->kind));
  }
  return st;
}

/* The row kernels, one invocation per row: dst from src (and P). */
static vkf_status tex_rows(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader, vkf_tref dst,
                           vkf_tref src, vkf_tref P) {
  const vkf_attention_params *p = &op->p.attention;
  VkBufferView views[2];
  uint64_t off[2] = {0, 0};
  vkf_vk_range reads[2], writes[1] = {rng(dst)};
  uint32_t n = P.buf ? 2 : 1;
  if (!vkf_vk_texel(vk, src, &views[0], &off[0], &reads[0]) ||
      (P.buf && !vkf_vk_texel(vk, P, &views[1], &off[1], &reads[1])) || off[0] > UINT32_MAX ||
      off[1] > UINT32_MAX)
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED, "%s: no texel view",
                    vkf_op_name(op->kind));
  uint32_t wg = 64, gx, gy;
  VkPipeline pipe;
  vkf_status st = vkf_vk_pipeline_get(vk, shader, 1, &wg, &pipe);
  if (st != VKF_OK)
    return st;
  vkf_vk_grid_2d(vk, ((uint64_t)p->B * p->Hq * p->Tq + wg - 1) / wg, &gx, &gy);
  struct {
    VkDeviceAddress dst;
    uint32_t src_off, p_off;
    vkf_attention_params p;
  } push = {vkf_vk_addr(dst), (uint32_t)off[0], (uint32_t)off[1], *p};
  push.p.bh0 = 0;
  vkf_vk_dispatch d = {.pipeline = pipe,
                       .push = &push,
                       .push_size = sizeof(push),
                       .groups = {gx, gy, 1},
                       .kind = op->kind,
                       .reads = reads,
                       .n_reads = n,
                       .writes = writes,
                       .n_writes = 1,
                       .views = views,
                       .n_views = n};
  return vkf_vk_dispatch_record(vk, &d);
}

static vkf_status tex_forward(vkf_vk *vk, const vkf_op *op) {
  const vkf_attention_params *p = &op->p.attention;
  const vkf_tref out = op->t[0], P = op->t[1], q = op->t[2], k = op->t[3], v = op->t[4];
  bool qb = p->flags & VKF_ATTN_Q_BHTD, kb = p->flags & VKF_ATTN_KV_BHTD;
  attn_layout lq = layout_of(qb, p->Tq, p->Hq, p->D), lk = layout_of(kb, p->Tk, p->Hkv, p->D);
  attn_layout lv = layout_of(kb, p->Tk, p->Hkv, p->Dv), lo = layout_of(qb, p->Tq, p->Hq, p->Dv);
  attn_layout ls = {p->Tk, p->Tq * p->Tk, p->Hq * p->Tq * p->Tk};
  /* P = scale q k^T (every pair), then softmax over the visible keys */
  attn_mm s = {P,  q,  k,  p->Tq, p->Tk, p->D, VKF_MM_TRANS_B,
               lq, lk, ls, true,  false, true, p->scale};
  vkf_status st = tex_product(vk, op, &s);
  if (st == VKF_OK)
    st = tex_rows(vk, op, VKF_SHADER_attention_softmax_tex, P, P, (vkf_tref){0});
  attn_mm o = {out, P, v, p->Tq, p->Dv, p->Tk, 0, ls, lv, lo, true, false, true, 1.0f};
  if (st == VKF_OK)
    st = tex_product(vk, op, &o);
  return st;
}

static vkf_status tex_backward_ds(vkf_vk *vk, const vkf_op *op) {
  const vkf_attention_params *p = &op->p.attention;
  const vkf_tref ds = op->t[0], dout = op->t[2], v = op->t[5], P = op->t[6];
  bool qb = p->flags & VKF_ATTN_Q_BHTD, kb = p->flags & VKF_ATTN_KV_BHTD;
  attn_layout lv = layout_of(kb, p->Tk, p->Hkv, p->Dv), lo = layout_of(qb, p->Tq, p->Hq, p->Dv);
  attn_layout ls = {p->Tk, p->Tq * p->Tk, p->Hq * p->Tq * p->Tk};
  /* dP = dout v^T, then dS = P (dP - rowsum(P dP)) scale in place */
  attn_mm m = {ds, dout, v,  p->Tq, p->Tk, p->Dv, VKF_MM_TRANS_B,
               lo, lv,   ls, true,  false, true,  1.0f};
  vkf_status st = tex_product(vk, op, &m);
  if (st == VKF_OK)
    st = tex_rows(vk, op, VKF_SHADER_attention_ds_tex, ds, ds, P);
  return st;
}

/* dq += dS k */
static vkf_status tex_backward_dq(vkf_vk *vk, const vkf_op *op) {
  const vkf_attention_params *p = &op->p.attention;
  bool qb = p->flags & VKF_ATTN_Q_BHTD, kb = p->flags & VKF_ATTN_KV_BHTD;
  attn_layout lq = layout_of(qb, p->Tq, p->Hq, p->D), lk = layout_of(kb, p->Tk, p->Hkv, p->D);
  attn_layout ls = {p->Tk, p->Tq * p->Tk, p->Hq * p->Tq * p->Tk};
  attn_mm m = {op->t[0], op->t[1], op->t[2], p->Tq, p->D,  p->Tk, VKF_MM_BETA,
               ls,       lk,       lq,       true,  false, true,  1.0f};
  return tex_product(vk, op, &m);
}

/* dk += sum over the group of dS^T q, dv += sum of P^T dout */
static vkf_status tex_backward_dkv(vkf_vk *vk, const vkf_op *op) {
  const vkf_attention_params *p = &op->p.attention;
  bool qb = p->flags & VKF_ATTN_Q_BHTD, kb = p->flags & VKF_ATTN_KV_BHTD;
  attn_layout lq = layout_of(qb, p->Tq, p->Hq, p->D), lk = layout_of(kb, p->Tk, p->Hkv, p->D);
  attn_layout lv = layout_of(kb, p->Tk, p->Hkv, p->Dv), lo = layout_of(qb, p->Tq, p->Hq, p->Dv);
  attn_layout ls = {p->Tk, p->Tq * p->Tk, p->Hq * p->Tq * p->Tk};
  attn_mm dk = {op->t[0], op->t[2], op->t[4], p->Tk, p->D, p->Tq, VKF_MM_TRANS_A | VKF_MM_BETA,
                ls,       lq,       lk,       true,  true, false, 1.0f};
  vkf_status st = tex_product(vk, op, &dk);
  attn_mm dv = {op->t[1], op->t[3], op->t[5], p->Tk, p->Dv, p->Tq, VKF_MM_TRANS_A | VKF_MM_BETA,
                ls,       lo,       lv,       true,  true,  false, 1.0f};
  if (st == VKF_OK)
    st = tex_product(vk, op, &dv);
  return st;
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
  if (tex_ok(vk, op)) {
    switch (op->kind) {
    case VKF_OP_ATTENTION_FORWARD:
      return tex_forward(vk, op);
    case VKF_OP_ATTENTION_BACKWARD_DS:
      return tex_backward_ds(vk, op);
    case VKF_OP_ATTENTION_BACKWARD_DQ:
      return tex_backward_dq(vk, op);
    case VKF_OP_ATTENTION_BACKWARD_DKV:
      return tex_backward_dkv(vk, op);
    default:
      break;
    }
  }
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
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED,
                    "attention: %s is not an op of this family", vkf_op_name(op->kind));
  }
}
