/* Linear attention: argument checks and the ops behind
 * vkf_linear_attention_forward/backward/decode.
 *
 * The forward is one backend op (linear_attention_forward: chunk states,
 * their prefix scan, then the output rows), the backward two
 * (linear_attention_backward_q: g, dq and the reverse-time states into the
 * workspace; linear_attention_backward_kv: dk and dv), decoding one
 * (linear_attention_decode). Operands: shaders/vkf_params.h. */
#include "attention_linear.h"
#include "context.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const vkf_linear_attention_desc default_desc;

void vkf_lattn_layout_of(vkf_linear_attention_params *p, vkf_lattn_layout *l) {
  p->n_chunks = (p->T + p->chunk - 1) / p->chunk;
  const uint64_t dv1 = (uint64_t)p->Dv + 1;
  l->states = (uint64_t)p->B * p->Hkv * p->n_chunks * p->D * dv1;
  l->den = (uint64_t)p->B * p->T * p->Hq;
  l->g = l->den * dv1;
  l->saved = l->states + l->den;
  l->workspace = l->g + l->states;
}

typedef struct lattn_args {
  vkf_tensor_slot *q, *k, *v, *state;
  vkf_linear_attention_params p;
  vkf_lattn_layout l;
} lattn_args;

static vkf_status shape_fail(vkf_context *ctx, const char *fn, const char *name,
                             const vkf_tensor_slot *s, const char *want) {
  char sh[96];
  vkf_shape_str(s, sh, sizeof(sh));
  return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH, "%s: %s is %s, must be %s", fn, name, sh,
                  want);
}

static bool is4(const vkf_tensor_slot *s, int64_t a, int64_t b, int64_t c, int64_t d) {
  return s->ndim == 4 && s->shape[0] == a && s->shape[1] == b && s->shape[2] == c &&
         s->shape[3] == d;
}

static vkf_status want4(vkf_context *ctx, const char *fn, const char *name,
                        const vkf_tensor_slot *s, int64_t a, int64_t b, int64_t c, int64_t d,
                        const char *what) {
  if (is4(s, a, b, c, d))
    return VKF_OK;
  char want[128];
  snprintf(want, sizeof(want), "[%lld, %lld, %lld, %lld] (%s)", (long long)a, (long long)b,
           (long long)c, (long long)d, what);
  return shape_fail(ctx, fn, name, s, want);
}

/* Whether list[self] shares memory with any other entry (NULLs skipped). */
static bool overlaps_any(size_t self, vkf_tensor_slot *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (i != self && list[i] && vkf_slots_overlap(list[self], list[i]))
      return true;
  return false;
}

static vkf_status check_eps(vkf_context *ctx, const char *fn, float eps, float *out) {
  if (eps == 0.0f)
    eps = VKF_LATTN_EPS_DEFAULT;
  if (!(eps > 0.0f) || !isfinite(eps))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: eps %g must be 0 (default) or positive and finite", fn, (double)eps);
  *out = eps;
  return VKF_OK;
}

/* q, k, v (decode: T must be 1) and the desc's chunk; fills a->p and a->l. */
static vkf_status check_qkv(vkf_context *ctx, const char *fn, vkf_tensor q, vkf_tensor k,
                            vkf_tensor v, uint32_t chunk, float eps, bool decode, lattn_args *a) {
  memset(a, 0, sizeof(*a));
  if (chunk == 0)
    chunk = VKF_LATTN_CHUNK_DEFAULT;
  if (chunk > VKF_LATTN_CHUNK_MAX)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: chunk %u is above %u", fn, chunk,
                    VKF_LATTN_CHUNK_MAX);
  vkf_status st = check_eps(ctx, fn, eps, &a->p.eps);
  if (st != VKF_OK)
    return st;
  a->q = vkf_f32_operand(ctx, q, fn, "q");
  a->k = a->q ? vkf_f32_operand(ctx, k, fn, "k") : NULL;
  a->v = a->k ? vkf_f32_operand(ctx, v, fn, "v") : NULL;
  if (!a->v)
    return ctx->env.error_status;
  if (a->q->ndim != 4)
    return shape_fail(ctx, fn, "q", a->q, decode ? "[B, 1, Hq, D]" : "[B, T, Hq, D]");
  if (a->k->ndim != 4)
    return shape_fail(ctx, fn, "k", a->k, decode ? "[B, 1, Hkv, D]" : "[B, T, Hkv, D]");
  if (a->v->ndim != 4)
    return shape_fail(ctx, fn, "v", a->v, decode ? "[B, 1, Hkv, Dv]" : "[B, T, Hkv, Dv]");
  const int64_t B = a->q->shape[0], T = a->q->shape[1], Hq = a->q->shape[2], D = a->q->shape[3];
  const int64_t Hkv = a->k->shape[2], Dv = a->v->shape[3];
  if (decode && T != 1)
    return shape_fail(ctx, fn, "q", a->q, "[B, 1, Hq, D] (one token)");
  if (a->k->shape[0] != B || a->k->shape[1] != T || a->k->shape[3] != D)
    return vkf_shape_error(ctx, fn, "k must have q's batch, length and head size D", a->k, a->q);
  if (Hq % Hkv != 0)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: q's %lld heads are not a multiple of k's %lld heads", fn, (long long)Hq,
                    (long long)Hkv);
  if (!is4(a->v, B, T, Hkv, Dv))
    return vkf_shape_error(ctx, fn, "v must have k's batch, length and heads", a->v, a->k);
  if (D > VKF_LATTN_HEAD_MAX || Dv > VKF_LATTN_HEAD_MAX)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: head sizes D %lld and Dv %lld; at most %u supported", fn, (long long)D,
                    (long long)Dv, VKF_LATTN_HEAD_MAX);
  if (T > VKF_LATTN_T_MAX)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH, "%s: length %lld; at most 2^28 supported",
                    fn, (long long)T);
  vkf_linear_attention_params *p = &a->p;
  p->B = (uint32_t)B;
  p->T = (uint32_t)T;
  p->Hq = (uint32_t)Hq;
  p->Hkv = (uint32_t)Hkv;
  p->D = (uint32_t)D;
  p->Dv = (uint32_t)Dv;
  p->chunk = chunk;
  vkf_lattn_layout_of(p, &a->l);
  if (!decode && (a->l.saved > UINT32_MAX || a->l.workspace > UINT32_MAX))
    return vkf_fail(
        &ctx->env, VKF_ERROR_SHAPE_MISMATCH,
        "%s: saved (%llu) or workspace (%llu) elements exceed the 2^32-1 a tensor holds", fn,
        (unsigned long long)a->l.saved, (unsigned long long)a->l.workspace);
  const uint64_t state_n = (uint64_t)B * Hkv * D * (Dv + 1);
  if (state_n > UINT32_MAX)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: the state (%llu elements) exceeds the 2^32-1 a tensor holds", fn,
                    (unsigned long long)state_n);
  return VKF_OK;
}

static vkf_status check_state(vkf_context *ctx, const char *fn, vkf_tensor state, lattn_args *a) {
  a->state = vkf_f32_operand(ctx, state, fn, "state");
  if (!a->state)
    return ctx->env.error_status;
  const vkf_linear_attention_params *p = &a->p;
  return want4(ctx, fn, "state", a->state, p->B, p->Hkv, p->D, (int64_t)p->Dv + 1,
               "[B, Hkv, D, Dv + 1]");
}

static vkf_status check_size(vkf_context *ctx, const char *fn, const char *name,
                             const vkf_tensor_slot *s, uint64_t need) {
  if (s->elements >= need)
    return VKF_OK;
  return vkf_fail(&ctx->env, VKF_ERROR_BUFFER_TOO_SMALL,
                  "%s: %s has %llu elements; %llu needed (vkf_linear_attention_sizes_get)", fn,
                  name, (unsigned long long)s->elements, (unsigned long long)need);
}

static vkf_status check_out(vkf_context *ctx, const char *fn, const char *name,
                            const vkf_tensor_slot *s, const vkf_linear_attention_params *p) {
  return want4(ctx, fn, name, s, p->B, p->T, p->Hq, p->Dv, "[B, T, Hq, Dv]");
}

vkf_status vkf_linear_attention_sizes_get(vkf_context *ctx, vkf_tensor q, vkf_tensor k,
                                          vkf_tensor v, const vkf_linear_attention_desc *desc,
                                          vkf_linear_attention_sizes *out) {
  static const char fn[] = "vkf_linear_attention_sizes_get";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!out)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "%s: out is NULL", fn);
  const vkf_linear_attention_desc *d = desc ? desc : &default_desc;
  lattn_args a;
  vkf_status st = check_qkv(ctx, fn, q, k, v, d->chunk, d->eps, false, &a);
  if (st == VKF_OK && d->state.id)
    st = check_state(ctx, fn, d->state, &a);
  if (st != VKF_OK)
    return st;
  memset(out, 0, sizeof(*out));
  out->n_chunks = a.p.n_chunks;
  out->saved_elements = a.l.saved;
  out->workspace_elements = a.l.workspace;
  out->state_shape[0] = a.p.B;
  out->state_shape[1] = a.p.Hkv;
  out->state_shape[2] = a.p.D;
  out->state_shape[3] = (int64_t)a.p.Dv + 1;
  return VKF_OK;
}

vkf_status vkf_linear_attention_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor saved,
                                        vkf_tensor q, vkf_tensor k, vkf_tensor v,
                                        const vkf_linear_attention_desc *desc) {
  static const char fn[] = "vkf_linear_attention_forward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  const vkf_linear_attention_desc *d = desc ? desc : &default_desc;
  vkf_tensor_slot *so = vkf_f32_operand(ctx, out, fn, "out");
  vkf_tensor_slot *ss = so ? vkf_f32_operand(ctx, saved, fn, "saved") : NULL;
  if (!ss)
    return ctx->env.error_status;
  lattn_args a;
  vkf_status st = check_qkv(ctx, fn, q, k, v, d->chunk, d->eps, false, &a);
  if (st == VKF_OK && d->state.id)
    st = check_state(ctx, fn, d->state, &a);
  if (st == VKF_OK)
    st = check_out(ctx, fn, "out", so, &a.p);
  if (st == VKF_OK)
    st = check_size(ctx, fn, "saved", ss, a.l.saved);
  if (st != VKF_OK)
    return st;
  vkf_tensor_slot *all[] = {so, ss, a.state, a.q, a.k, a.v};
  for (size_t i = 0; i < 3; i++)
    if (all[i] && overlaps_any(i, all, VKF_ARRAY_LEN(all)))
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: out, saved and state must not share memory with each other or with "
                      "q, k, v",
                      fn);
  vkf_op op = {
      .kind = VKF_OP_LINEAR_ATTENTION_FORWARD, .n_tensors = 6, .writes = 0x3, .reads = 0x1c};
  op.t[0] = vkf_slot_tref(so);
  op.t[1] = vkf_slot_tref(ss);
  op.t[1].bytes = a.l.saved * sizeof(float);
  op.t[2] = vkf_slot_tref(a.q);
  op.t[3] = vkf_slot_tref(a.k);
  op.t[4] = vkf_slot_tref(a.v);
  if (a.state) {
    op.t[5] = vkf_slot_tref(a.state);
    op.writes |= 0x20;
    op.reads |= 0x20;
    a.p.flags |= VKF_LATTN_STATE;
  }
  op.p.linear_attention = a.p;
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_linear_attention_backward(vkf_context *ctx, vkf_tensor dq, vkf_tensor dk,
                                         vkf_tensor dv, vkf_tensor dout, vkf_tensor q, vkf_tensor k,
                                         vkf_tensor v, vkf_tensor out, vkf_tensor saved,
                                         vkf_tensor workspace,
                                         const vkf_linear_attention_desc *desc) {
  static const char fn[] = "vkf_linear_attention_backward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  const vkf_linear_attention_desc *d = desc ? desc : &default_desc;
  vkf_tensor_slot *sdq = vkf_f32_operand(ctx, dq, fn, "dq");
  vkf_tensor_slot *sdk = sdq ? vkf_f32_operand(ctx, dk, fn, "dk") : NULL;
  vkf_tensor_slot *sdv = sdk ? vkf_f32_operand(ctx, dv, fn, "dv") : NULL;
  vkf_tensor_slot *sdo = sdv ? vkf_f32_operand(ctx, dout, fn, "dout") : NULL;
  vkf_tensor_slot *so = sdo ? vkf_f32_operand(ctx, out, fn, "out") : NULL;
  vkf_tensor_slot *ss = so ? vkf_f32_operand(ctx, saved, fn, "saved") : NULL;
  vkf_tensor_slot *sw = ss ? vkf_f32_operand(ctx, workspace, fn, "workspace") : NULL;
  if (!sw)
    return ctx->env.error_status;
  lattn_args a;
  vkf_status st = check_qkv(ctx, fn, q, k, v, d->chunk, d->eps, false, &a);
  if (st != VKF_OK)
    return st;
  if (!vkf_same_shape(sdq, a.q))
    return vkf_shape_error(ctx, fn, "dq must have q's shape", sdq, a.q);
  if (!vkf_same_shape(sdk, a.k))
    return vkf_shape_error(ctx, fn, "dk must have k's shape", sdk, a.k);
  if (!vkf_same_shape(sdv, a.v))
    return vkf_shape_error(ctx, fn, "dv must have v's shape", sdv, a.v);
  st = check_out(ctx, fn, "dout", sdo, &a.p);
  if (st == VKF_OK)
    st = check_out(ctx, fn, "out", so, &a.p);
  if (st == VKF_OK)
    st = check_size(ctx, fn, "saved", ss, a.l.saved);
  if (st == VKF_OK)
    st = check_size(ctx, fn, "workspace", sw, a.l.workspace);
  if (st != VKF_OK)
    return st;
  vkf_tensor_slot *all[] = {sdq, sdk, sdv, sw, sdo, a.q, a.k, a.v, so, ss};
  for (size_t i = 0; i < 4; i++)
    if (overlaps_any(i, all, VKF_ARRAY_LEN(all)))
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: dq, dk, dv and workspace must not share memory with each other or "
                      "with dout, q, k, v, out, saved",
                      fn);
  vkf_tref ws = vkf_slot_tref(sw), sv = vkf_slot_tref(ss);
  ws.bytes = a.l.workspace * sizeof(float);
  sv.bytes = a.l.saved * sizeof(float);
  vkf_op op = {
      .kind = VKF_OP_LINEAR_ATTENTION_BACKWARD_Q, .n_tensors = 8, .writes = 0x3, .reads = 0xfd};
  op.t[0] = vkf_slot_tref(sdq);
  op.t[1] = ws;
  op.t[2] = vkf_slot_tref(sdo);
  op.t[3] = vkf_slot_tref(a.q);
  op.t[4] = vkf_slot_tref(a.k);
  op.t[5] = vkf_slot_tref(a.v);
  op.t[6] = vkf_slot_tref(so);
  op.t[7] = sv;
  op.p.linear_attention = a.p;
  st = vkf_ctx_run(ctx, &op);
  if (st != VKF_OK)
    return st;
  op = (vkf_op){
      .kind = VKF_OP_LINEAR_ATTENTION_BACKWARD_KV, .n_tensors = 6, .writes = 0x3, .reads = 0x3f};
  op.t[0] = vkf_slot_tref(sdk);
  op.t[1] = vkf_slot_tref(sdv);
  op.t[2] = ws;
  op.t[3] = vkf_slot_tref(a.q);
  op.t[4] = vkf_slot_tref(a.k);
  op.t[5] = vkf_slot_tref(a.v);
  op.p.linear_attention = a.p;
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_linear_attention_decode(vkf_context *ctx, vkf_tensor out, vkf_tensor state,
                                       vkf_tensor q, vkf_tensor k, vkf_tensor v, float eps) {
  static const char fn[] = "vkf_linear_attention_decode";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *so = vkf_f32_operand(ctx, out, fn, "out");
  if (!so)
    return ctx->env.error_status;
  lattn_args a;
  vkf_status st = check_qkv(ctx, fn, q, k, v, 0, eps, true, &a);
  if (st == VKF_OK)
    st = check_state(ctx, fn, state, &a);
  if (st == VKF_OK)
    st = check_out(ctx, fn, "out", so, &a.p);
  if (st != VKF_OK)
    return st;
  vkf_tensor_slot *all[] = {so, a.state, a.q, a.k, a.v};
  for (size_t i = 0; i < 2; i++)
    if (overlaps_any(i, all, VKF_ARRAY_LEN(all)))
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: out and state must not share memory with each other or with q, k, v",
                      fn);
  vkf_op op = {
      .kind = VKF_OP_LINEAR_ATTENTION_DECODE, .n_tensors = 5, .writes = 0x3, .reads = 0x1e};
  op.t[0] = vkf_slot_tref(so);
  op.t[1] = vkf_slot_tref(a.state);
  op.t[2] = vkf_slot_tref(a.q);
  op.t[3] = vkf_slot_tref(a.k);
  op.t[4] = vkf_slot_tref(a.v);
  op.p.linear_attention = a.p;
  return vkf_ctx_run(ctx, &op);
}
