/* Linear attention on Vulkan (chunked form and decoding).
 *
 *   linear_attention_forward      attention_linear_state (MODE 0) -> saved's slots;
 *                                 attention_linear_scan (forward, with the state);
 *                                 attention_linear_chunk (MODE 0) -> out, den
 *   linear_attention_backward_q   attention_linear_g -> workspace g;
 *                                 attention_linear_chunk (MODE 1) dq += ...;
 *                                 attention_linear_state (MODE 1) -> workspace R slots;
 *                                 attention_linear_scan (reverse)
 *   linear_attention_backward_kv  attention_linear_chunk (MODE 2) dk, (MODE 3) dv
 *   linear_attention_decode       attention_linear_decode (MODE 0 state update,
 *                                 then MODE 1 the rows)
 *
 * Each dispatch declares the exact ranges it reads and writes (the parts of
 * saved and the workspace too), so the barrier tracking orders the steps and
 * lets independent ones (dq and the R sums; dk and dv) run together.
 * Operands and layouts: shaders/vkf_params.h.
 *
 * Lavapipe (Mesa's llvmpipe) ends every loop of a shader invocation once
 * 65535 loop iterations have run in all (a guard against endless loops;
 * LP_MAX_TGSI_LOOP_ITERATIONS), silently. On lavapipe the kernels whose
 * loops grow with the problem are therefore sized here: the loops over the
 * heads of a kv group (dk, dv, the R sums) are split into several
 * dispatches that add up (VKF_LATTN_ACCUMULATE), and a shape whose loops
 * cannot be split below the limit fails with VKF_ERROR_UNSUPPORTED instead
 * of giving wrong results. The counts below count every loop the kernels
 * run (also those the compiler may unroll), so they err on the safe side. */
#include "vk.h"

#include <string.h>

/* The largest push block: attention_linear_chunk's six addresses and the params. */
_Static_assert(6 * 8 + sizeof(vkf_linear_attention_params) <= 128,
               "linear attention push constants");

/* llvmpipe's loop budget per shader invocation, with a margin. */
#define LVP_LOOP_BUDGET 60000u

typedef struct lattn_tile {
  uint32_t wg, bm, bn, bk, tm, tn, bs;
} lattn_tile;

/* Tiles of 32 rows x 64 columns (one tile for head sizes up to 64), 32-key
 * blocks, 16-deep slices: 8 x 8 invocations of 4 x 8 results (4 x 4 scores)
 * on lavapipe, 8 x 32 of 1 x 8 (1 x 4) on GPUs. Shared memory: about 19 KiB
 * for the chunk kernel. */
static lattn_tile tile_of(const vkf_vk *vk) {
  if (vkf_vk_is_cpu_device(vk))
    return (lattn_tile){64, 32, 64, 16, 4, 8, 32};
  return (lattn_tile){256, 32, 64, 16, 1, 8, 32};
}

static uint64_t cdiv(uint64_t a, uint64_t b) {
  return (a + b - 1) / b;
}

static vkf_vk_range rng(vkf_tref t) {
  VkDeviceAddress a = vkf_vk_addr(t);
  return (vkf_vk_range){a, a + (t.buf ? t.bytes : 0)};
}

/* A part of an operand: `count` floats from float `first`. */
static vkf_tref part(vkf_tref t, uint64_t first, uint64_t count) {
  t.offset += first * sizeof(float);
  t.bytes = count * sizeof(float);
  return t;
}

typedef struct lattn_parts {
  vkf_tref states, den; /* saved */
  vkf_tref g, R;        /* workspace */
} lattn_parts;

static uint64_t states_of(const vkf_linear_attention_params *p) {
  return (uint64_t)p->B * p->Hkv * p->n_chunks * p->D * (p->Dv + 1);
}

static lattn_parts saved_parts(const vkf_linear_attention_params *p, vkf_tref saved) {
  const uint64_t ns = states_of(p);
  lattn_parts r = {0};
  r.states = part(saved, 0, ns);
  r.den = part(saved, ns, (uint64_t)p->B * p->T * p->Hq);
  return r;
}

static void workspace_parts(const vkf_linear_attention_params *p, vkf_tref ws, lattn_parts *r) {
  const uint64_t ng = (uint64_t)p->B * p->T * p->Hq * (p->Dv + 1);
  r->g = part(ws, 0, ng);
  r->R = part(ws, ng, states_of(p));
}

static vkf_status too_long(vkf_vk *vk, const vkf_op *op, const char *what, uint64_t n) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED,
                  "%s: %s would run %llu loop iterations per invocation; lavapipe stops a shader's "
                  "loops after 65535 (T %u, chunk %u, D %u, Dv %u, %u query heads per kv head)",
                  vkf_op_name(op->kind), what, (unsigned long long)n, p->T, p->chunk, p->D, p->Dv,
                  p->Hq / p->Hkv);
}

/* One kernel over gx x gy x z_total groups with params p; z beyond the
 * device's limit goes in several dispatches, each with p.z0 = its first z. */
static vkf_status launch(vkf_vk *vk, const vkf_op *op, vkf_linear_attention_params p,
                         vkf_shader_id shader, const uint32_t *spec, uint32_t n_spec,
                         const vkf_tref *ops, uint32_t n_ops, uint32_t gx, uint32_t gy,
                         uint32_t z_total, const vkf_vk_range *reads, uint32_t nr,
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
  for (uint32_t z0 = 0; z0 < z_total && st == VKF_OK; z0 += maxg[2]) {
    uint32_t nz = z_total - z0 < maxg[2] ? z_total - z0 : maxg[2];
    p.z0 = z0;
    uint8_t bytes[128];
    for (uint32_t i = 0; i < n_ops; i++) {
      uint64_t a = vkf_vk_addr(ops[i]);
      memcpy(bytes + 8 * i, &a, 8);
    }
    memcpy(bytes + 8 * n_ops, &p, sizeof(p));
    vkf_vk_dispatch d = {.pipeline = pipe,
                         .push = bytes,
                         .push_size = 8 * n_ops + (uint32_t)sizeof(p),
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

/* Heads of a group per dispatch so that `fixed + per_head * heads` loop
 * iterations stay within lavapipe's budget (all of them elsewhere); 0 when
 * not even one head fits. */
static uint32_t heads_per_dispatch(const vkf_vk *vk, uint32_t G, uint64_t fixed,
                                   uint64_t per_head) {
  if (!vkf_vk_is_cpu_device(vk))
    return G;
  if (fixed + per_head > LVP_LOOP_BUDGET)
    return 0;
  uint64_t n = (LVP_LOOP_BUDGET - fixed) / per_head;
  return n < G ? (uint32_t)n : G;
}

/* Heads per dispatch of attention_linear_state: the group's heads (MODE 1)
 * or 1. Loop iterations per invocation: per head and token slice, the loads
 * and the products. */
static vkf_status state_heads(vkf_vk *vk, const vkf_op *op, uint32_t mode, uint32_t *nh) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  const lattn_tile t = tile_of(vk);
  const uint32_t rows = p->chunk < p->T ? p->chunk : p->T; /* of a chunk */
  const uint64_t per_head =
      cdiv(rows, t.bk) * (cdiv(t.bm * t.bk, t.wg) + cdiv(t.bn * t.bk, t.wg) + 2 + t.bk) + 1;
  *nh = heads_per_dispatch(vk, mode == 0 ? 1 : p->Hq / p->Hkv, 16, per_head);
  return *nh ? VKF_OK : too_long(vk, op, "the chunk state sums", 16 + per_head);
}

/* attention_linear_state: dst slots from y (rows, D wide) and z (Dv + 1
 * wide); MODE 1 sums the group's heads, nh per dispatch. */
static vkf_status run_state(vkf_vk *vk, const vkf_op *op, uint32_t mode, uint32_t nh, vkf_tref dst,
                            vkf_tref y, vkf_tref z) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  const lattn_tile t = tile_of(vk);
  const uint32_t G = mode == 0 ? 1 : p->Hq / p->Hkv;
  uint32_t spec[7] = {t.wg, t.bm, t.bn, t.bk, t.tm, t.tn, mode};
  vkf_tref ops[3] = {dst, y, z};
  vkf_vk_range r[3] = {rng(y), rng(z), rng(dst)}, w[1] = {rng(dst)};
  vkf_linear_attention_params pp = *p;
  vkf_status st = VKF_OK;
  for (uint32_t h0 = 0; h0 < G && st == VKF_OK; h0 += nh) {
    pp.h0 = h0;
    pp.nh = G - h0 < nh ? G - h0 : nh;
    pp.flags = h0 ? (p->flags | VKF_LATTN_ACCUMULATE) : p->flags;
    st = launch(vk, op, pp, VKF_SHADER_attention_linear_state, spec, 7, ops, 3,
                (uint32_t)cdiv(p->Dv, t.bn), (uint32_t)cdiv(p->D, t.bm),
                p->B * p->Hkv * p->n_chunks, r, h0 ? 3 : 2, w, 1);
  }
  return st;
}

/* Whether the scan's loop over the chunks fits (lavapipe). */
static vkf_status scan_fits(vkf_vk *vk, const vkf_op *op) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  if (vkf_vk_is_cpu_device(vk) && p->n_chunks + 2 > LVP_LOOP_BUDGET)
    return too_long(vk, op, "the scan over the chunks", p->n_chunks + 2);
  return VKF_OK;
}

/* attention_linear_scan over a states array (forward: with the optional state). */
static vkf_status run_scan(vkf_vk *vk, const vkf_op *op, uint32_t reverse, vkf_tref states,
                           vkf_tref state) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  uint32_t wg = vkf_vk_elementwise_wg(vk), gx, gy;
  uint64_t n = (uint64_t)p->B * p->Hkv * p->D * (p->Dv + 1);
  vkf_vk_grid_2d(vk, cdiv(n, wg), &gx, &gy);
  uint32_t spec[2] = {wg, reverse};
  vkf_tref ops[2] = {states, state};
  vkf_vk_range rw[2] = {rng(states), rng(state)};
  uint32_t k = state.buf ? 2 : 1;
  return launch(vk, op, *p, VKF_SHADER_attention_linear_scan, spec, 2, ops, 2, gx, gy, 1, rw, k, rw,
                k);
}

/* Heads per dispatch of attention_linear_chunk: the group's heads for dk and
 * dv (MODE 2, 3), else 1. Loop iterations per invocation: the state term,
 * then per head and key block the scores and their product. */
static vkf_status chunk_heads(vkf_vk *vk, const vkf_op *op, uint32_t mode, uint32_t *nh) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  const lattn_tile t = tile_of(vk);
  const uint32_t F = (mode == 0 || mode == 3) ? p->D : p->Dv + 1;
  const uint32_t rows = p->chunk < p->T ? p->chunk : p->T; /* of a chunk */
  const uint64_t fs = cdiv(F, t.bk), x_load = cdiv(t.bm * t.bk, t.wg);
  const uint64_t fixed = fs * (x_load + cdiv(t.bn * t.bk, t.wg) + 2 + t.bk) + 16;
  const uint64_t per_head = cdiv(rows, t.bs) * (fs * (x_load + cdiv(t.bs * t.bk, t.wg) + 1 + t.bk) +
                                                cdiv(t.bs * t.bn, t.wg) + t.bs + 2) +
                            1;
  *nh = heads_per_dispatch(vk, mode >= 2 ? p->Hq / p->Hkv : 1, fixed, per_head);
  return *nh ? VKF_OK : too_long(vk, op, "a chunk's rows", fixed + per_head);
}

/* attention_linear_chunk: rows of every chunk (see the shader for the
 * roles); dk and dv (MODE 2, 3) take the group's heads nh per dispatch. The
 * z grid (b, head, column tile) has fewer workgroups than out, dq, dk or dv
 * have elements, so it fits 32 bits. */
static vkf_status run_chunk(vkf_vk *vk, const vkf_op *op, uint32_t mode, uint32_t nh,
                            const vkf_tref ops[6], const vkf_vk_range *reads, uint32_t nr,
                            const vkf_vk_range *writes, uint32_t nw) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  const lattn_tile t = tile_of(vk);
  uint32_t spec[8] = {t.wg, t.bm, t.bn, t.bk, t.tm, t.tn, mode, t.bs};
  const uint32_t N = (mode == 1 || mode == 2) ? p->D : p->Dv;
  const uint32_t heads = mode >= 2 ? p->Hkv : p->Hq, G = mode >= 2 ? p->Hq / p->Hkv : 1;
  const uint32_t rows = p->chunk < p->T ? p->chunk : p->T; /* of a chunk */
  const uint64_t blocks = (uint64_t)p->n_chunks * cdiv(rows, t.bm);
  const uint32_t z = (uint32_t)((uint64_t)p->B * heads * cdiv(N, t.bn));
  uint32_t gx, gy;
  vkf_vk_grid_2d(vk, blocks, &gx, &gy);
  vkf_linear_attention_params pp = *p;
  vkf_status st = VKF_OK;
  for (uint32_t h0 = 0; h0 < G && st == VKF_OK; h0 += nh) {
    pp.h0 = h0;
    pp.nh = G - h0 < nh ? G - h0 : nh;
    pp.flags = h0 ? (p->flags | VKF_LATTN_ACCUMULATE) : p->flags;
    st = launch(vk, op, pp, VKF_SHADER_attention_linear_chunk, spec, 8, ops, 6, gx, gy, z, reads,
                nr, writes, nw);
  }
  return st;
}

static vkf_status forward(vkf_vk *vk, const vkf_op *op) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  const vkf_tref out = op->t[0], q = op->t[2], k = op->t[3], v = op->t[4];
  const vkf_tref state = (p->flags & VKF_LATTN_STATE) ? op->t[5] : (vkf_tref){0};
  const lattn_parts s = saved_parts(p, op->t[1]);
  uint32_t nh_state, nh_rows; /* checked before anything is recorded */
  vkf_status st = state_heads(vk, op, 0, &nh_state);
  if (st == VKF_OK)
    st = scan_fits(vk, op);
  if (st == VKF_OK)
    st = chunk_heads(vk, op, 0, &nh_rows);
  if (st == VKF_OK)
    st = run_state(vk, op, 0, nh_state, s.states, k, v);
  if (st == VKF_OK)
    st = run_scan(vk, op, 0, s.states, state);
  if (st == VKF_OK) {
    vkf_tref ops[6] = {out, q, k, v, s.states, s.den};
    vkf_vk_range r[4] = {rng(q), rng(k), rng(v), rng(s.states)}, w[2] = {rng(out), rng(s.den)};
    st = run_chunk(vk, op, 0, nh_rows, ops, r, 4, w, 2);
  }
  return st;
}

static vkf_status backward_q(vkf_vk *vk, const vkf_op *op) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  const vkf_tref dq = op->t[0], dout = op->t[2], q = op->t[3], k = op->t[4], v = op->t[5];
  const vkf_tref out = op->t[6];
  lattn_parts s = saved_parts(p, op->t[7]);
  workspace_parts(p, op->t[1], &s);
  uint32_t nh_rows, nh_state; /* checked before anything is recorded */
  vkf_status st = chunk_heads(vk, op, 1, &nh_rows);
  if (st == VKF_OK)
    st = state_heads(vk, op, 1, &nh_state);
  if (st == VKF_OK)
    st = scan_fits(vk, op);
  if (st != VKF_OK)
    return st;
  /* g rows: L invocations per row (a power of two near Dv / 8, at most 32) */
  uint32_t wg = vkf_vk_elementwise_wg(vk), L = 1, gx, gy;
  while (L < 32 && L * 8 < p->Dv)
    L *= 2;
  const uint64_t rows = (uint64_t)p->B * p->T * p->Hq, per = wg / L;
  vkf_vk_grid_2d(vk, cdiv(rows, per), &gx, &gy);
  uint32_t gspec[2] = {wg, L};
  vkf_tref gops[4] = {s.g, dout, out, s.den};
  vkf_vk_range gr[3] = {rng(dout), rng(out), rng(s.den)}, gw[1] = {rng(s.g)};
  st =
      launch(vk, op, *p, VKF_SHADER_attention_linear_g, gspec, 2, gops, 4, gx, gy, 1, gr, 3, gw, 1);
  if (st == VKF_OK) { /* dq */
    vkf_tref ops[6] = {dq, s.g, v, k, s.states, q};
    vkf_vk_range r[6] = {rng(s.g), rng(v), rng(k), rng(s.states), rng(q), rng(dq)};
    vkf_vk_range w[1] = {rng(dq)};
    st = run_chunk(vk, op, 1, nh_rows, ops, r, 6, w, 1);
  }
  if (st == VKF_OK) /* R slots: per chunk sum of phi(q) g^T */
    st = run_state(vk, op, 1, nh_state, s.R, q, s.g);
  if (st == VKF_OK)
    st = run_scan(vk, op, 1, s.R, (vkf_tref){0});
  return st;
}

static vkf_status backward_kv(vkf_vk *vk, const vkf_op *op) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  const vkf_tref dk = op->t[0], dv = op->t[1], q = op->t[3], k = op->t[4], v = op->t[5];
  lattn_parts s = {0};
  workspace_parts(p, op->t[2], &s);
  uint32_t nh_k, nh_v; /* checked before anything is recorded */
  vkf_status st = chunk_heads(vk, op, 2, &nh_k);
  if (st == VKF_OK)
    st = chunk_heads(vk, op, 3, &nh_v);
  if (st != VKF_OK)
    return st;
  vkf_tref ops_k[6] = {dk, v, s.g, q, s.R, k};
  vkf_vk_range rk[6] = {rng(v), rng(s.g), rng(q), rng(s.R), rng(k), rng(dk)}, wk[1] = {rng(dk)};
  st = run_chunk(vk, op, 2, nh_k, ops_k, rk, 6, wk, 1);
  if (st == VKF_OK) {
    vkf_tref ops_v[6] = {dv, k, q, s.g, s.R, {0}};
    vkf_vk_range rv[5] = {rng(k), rng(q), rng(s.g), rng(s.R), rng(dv)}, wv[1] = {rng(dv)};
    st = run_chunk(vk, op, 3, nh_v, ops_v, rv, 5, wv, 1);
  }
  return st;
}

static vkf_status decode(vkf_vk *vk, const vkf_op *op) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  const uint32_t wg = vkf_vk_is_cpu_device(vk) ? 64 : 128, nc = (uint32_t)cdiv(p->Dv + 1, wg);
  /* at most 17 x 1024 + 32 iterations: within lavapipe's budget for D, Dv <= 1024 */
  vkf_tref ops[5] = {op->t[0], op->t[1], op->t[2], op->t[3], op->t[4]};
  const vkf_tref state = op->t[1];
  uint32_t gx, gy;
  vkf_vk_grid_2d(vk, (uint64_t)p->B * p->Hkv, &gx, &gy);
  uint32_t spec[4] = {wg, nc, p->D, 0};
  vkf_vk_range ru[3] = {rng(state), rng(op->t[3]), rng(op->t[4])}, wu[1] = {rng(state)};
  vkf_status st = launch(vk, op, *p, VKF_SHADER_attention_linear_decode, spec, 4, ops, 5, gx, gy, 1,
                         ru, 3, wu, 1);
  if (st != VKF_OK)
    return st;
  spec[3] = 1;
  vkf_vk_grid_2d(vk, (uint64_t)p->B * p->Hq, &gx, &gy);
  vkf_vk_range ro[2] = {rng(state), rng(op->t[2])}, wo[1] = {rng(op->t[0])};
  return launch(vk, op, *p, VKF_SHADER_attention_linear_decode, spec, 4, ops, 5, gx, gy, 1, ro, 2,
                wo, 1);
}

vkf_status vkf_vk_attention_linear(vkf_vk *vk, const vkf_op *op) {
  switch (op->kind) {
  case VKF_OP_LINEAR_ATTENTION_FORWARD:
    return forward(vk, op);
  case VKF_OP_LINEAR_ATTENTION_BACKWARD_Q:
    return backward_q(vk, op);
  case VKF_OP_LINEAR_ATTENTION_BACKWARD_KV:
    return backward_kv(vk, op);
  case VKF_OP_LINEAR_ATTENTION_DECODE:
    return decode(vk, op);
  default:
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED,
                    "linear attention: %s is not an op of this family", vkf_op_name(op->kind));
  }
}
