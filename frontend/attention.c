/* Attention: argument checks and the ops behind vkf_attention_forward/backward.
 *
 * Standard variant: the forward is one backend op (attention_forward). The
 * backward is three: attention_backward_ds (dS = the gradient of the logits'
 * pre-softmax input, into the workspace), attention_backward_dq and
 * attention_backward_dkv.
 *
 * Flash variant: attention_flash_forward (out and the row log-sum-exp); the
 * backward is attention_flash_backward_pre (the workspace: lse copied,
 * D = rowsum(dout * out), kv_lens copied, so that the next two ops need at
 * most eight operands), attention_flash_backward_dkv and
 * attention_flash_backward_dq. */
#include "context.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define T_MAX (1ll << 28) /* positions stay well inside int32 in the kernels */

typedef struct attn_args {
  vkf_tensor_slot *q, *k, *v, *mask, *kvl, *logits;
  vkf_attention_params p;
  uint64_t n_scores; /* B * Hq * Tq * Tk */
  uint64_t n_rows;   /* B * Hq * Tq */
  bool flash;
} attn_args;

static const vkf_attention_desc default_desc;

/* [B, T, H, E] (or [B, H, T, E] with bhtd) of a 4-D tensor. */
static void dims_of(const vkf_tensor_slot *s, bool bhtd, int64_t *B, int64_t *T, int64_t *H,
                    int64_t *E) {
  *B = s->shape[0];
  *T = s->shape[bhtd ? 2 : 1];
  *H = s->shape[bhtd ? 1 : 2];
  *E = s->shape[3];
}

static bool has_dims(const vkf_tensor_slot *s, bool bhtd, int64_t B, int64_t T, int64_t H,
                     int64_t E) {
  int64_t b, t, h, e;
  if (s->ndim != 4)
    return false;
  dims_of(s, bhtd, &b, &t, &h, &e);
  return b == B && t == T && h == H && e == E;
}

static vkf_status shape_fail(vkf_context *ctx, const char *fn, const char *name,
                             const vkf_tensor_slot *s, const char *want) {
  char sh[96];
  vkf_shape_str(s, sh, sizeof(sh));
  return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH, "%s: %s is %s, must be %s", fn, name, sh,
                  want);
}

/* Whether list[self] shares memory with any other entry (NULLs skipped). */
static bool overlaps_any(size_t self, vkf_tensor_slot *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (i != self && list[i] && vkf_slots_overlap(list[self], list[i]))
      return true;
  return false;
}

/* Checks desc, q, k, v (and the optional mask and kv_lens); fills a->p. */
static vkf_status check_inputs(vkf_context *ctx, const char *fn, vkf_tensor q, vkf_tensor k,
                               vkf_tensor v, const vkf_attention_desc *d, attn_args *a) {
  memset(a, 0, sizeof(*a));
  if (d->variant != VKF_ATTENTION_STANDARD && d->variant != VKF_ATTENTION_FLASH)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: unknown variant %d", fn,
                    (int)d->variant);
  a->flash = d->variant == VKF_ATTENTION_FLASH;
  const uint32_t known = VKF_ATTENTION_CAUSAL | VKF_ATTENTION_Q_BHTD | VKF_ATTENTION_KV_BHTD;
  if (d->flags & ~known)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn,
                    d->flags & ~known);
  if ((unsigned)d->align > VKF_ATTENTION_ALIGN_OFFSET)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: unknown alignment %d", fn,
                    (int)d->align);
  if (!isfinite(d->scale))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: scale %g is not finite", fn,
                    (double)d->scale);
  if (!(d->softcap >= 0.0f) || !isfinite(d->softcap))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: softcap %g must be 0 (off) or positive and finite", fn,
                    (double)d->softcap);
  if (d->align == VKF_ATTENTION_ALIGN_OFFSET && (d->q_offset > T_MAX || d->q_offset < -T_MAX))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: q_offset %d is outside +-2^28", fn,
                    d->q_offset);

  a->q = vkf_f32_operand(ctx, q, fn, "q");
  a->k = a->q ? vkf_f32_operand(ctx, k, fn, "k") : NULL;
  a->v = a->k ? vkf_f32_operand(ctx, v, fn, "v") : NULL;
  if (!a->v)
    return ctx->env.error_status;
  const bool qb = d->flags & VKF_ATTENTION_Q_BHTD, kb = d->flags & VKF_ATTENTION_KV_BHTD;
  if (a->q->ndim != 4)
    return shape_fail(ctx, fn, "q", a->q, qb ? "[B, Hq, Tq, D]" : "[B, Tq, Hq, D]");
  if (a->k->ndim != 4)
    return shape_fail(ctx, fn, "k", a->k, kb ? "[B, Hkv, Tk, D]" : "[B, Tk, Hkv, D]");
  if (a->v->ndim != 4)
    return shape_fail(ctx, fn, "v", a->v, kb ? "[B, Hkv, Tk, Dv]" : "[B, Tk, Hkv, Dv]");
  int64_t B, Tq, Hq, D, Bk, Tk, Hkv, Dk, Dv;
  dims_of(a->q, qb, &B, &Tq, &Hq, &D);
  dims_of(a->k, kb, &Bk, &Tk, &Hkv, &Dk);
  if (Bk != B || Dk != D)
    return vkf_shape_error(ctx, fn, "k must have q's batch and head size D", a->k, a->q);
  if (Hq % Hkv != 0)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: q's %lld heads are not a multiple of k's %lld heads", fn, (long long)Hq,
                    (long long)Hkv);
  Dv = a->v->shape[3];
  if (!has_dims(a->v, kb, B, Tk, Hkv, Dv))
    return vkf_shape_error(ctx, fn, "v must have k's batch, length and heads", a->v, a->k);
  if (Tq > T_MAX || Tk > T_MAX)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: sequence lengths %lld and %lld; at most 2^28 supported", fn, (long long)Tq,
                    (long long)Tk);
  uint64_t n = (uint64_t)B * (uint64_t)Hq * (uint64_t)Tq * (uint64_t)Tk;
  if (!a->flash && n > UINT32_MAX)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: B*Hq*Tq*Tk = %llu scores, more than the 2^32-1 a tensor holds "
                    "(the flash variant has no such limit)",
                    fn, (unsigned long long)n);
  a->n_scores = n;
  a->n_rows = (uint64_t)B * (uint64_t)Hq * (uint64_t)Tq;
  if (a->flash && 2 * a->n_rows + (uint64_t)B > UINT32_MAX)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: B*Hq*Tq = %llu rows; the flash backward's workspace (2 per row) would "
                    "exceed the 2^32-1 elements a tensor holds",
                    fn, (unsigned long long)a->n_rows);

  vkf_attention_params *p = &a->p;
  p->B = (uint32_t)B;
  p->Tq = (uint32_t)Tq;
  p->Tk = (uint32_t)Tk;
  p->Hq = (uint32_t)Hq;
  p->Hkv = (uint32_t)Hkv;
  p->D = (uint32_t)D;
  p->Dv = (uint32_t)Dv;
  p->flags = (d->flags & VKF_ATTENTION_CAUSAL ? VKF_ATTN_CAUSAL : 0) | (qb ? VKF_ATTN_Q_BHTD : 0) |
             (kb ? VKF_ATTN_KV_BHTD : 0);
  p->scale = d->scale != 0.0f ? d->scale : (float)(1.0 / sqrt((double)D));
  p->softcap = d->softcap;
  if (d->softcap > 0.0f)
    p->flags |= VKF_ATTN_SOFTCAP;
  /* A window wider than any pos - j (< 2^29) changes nothing; clamping keeps
   * the kernels' int arithmetic in range. */
  p->window = d->window > (1u << 29) ? (1u << 29) : d->window;
  p->q_pos0 = d->align == VKF_ATTENTION_ALIGN_TOP_LEFT ? 0
              : d->align == VKF_ATTENTION_ALIGN_OFFSET ? d->q_offset
                                                       : (int32_t)(Tk - Tq);

  if (d->mask.id) {
    vkf_tensor_slot *m = vkf_f32_operand(ctx, d->mask, fn, "mask");
    if (!m)
      return ctx->env.error_status;
    /* dims right-aligned against [B, Hq, Tq, Tm]; missing leading ones are 1 */
    const uint32_t nd = m->ndim;
    int64_t dims[4] = {1, 1, 1, 1};
    for (uint32_t i = 0; i < nd; i++)
      dims[4 - nd + i] = m->shape[i];
    const int64_t rows = dims[2], cols = dims[3], lead[2] = {dims[0], dims[1]};
    bool ok = nd >= 2 && (rows == Tq || rows == 1) && cols <= Tk;
    if (ok)
      ok = (lead[0] == 1 || lead[0] == B) && (lead[1] == 1 || lead[1] == Hq);
    if (!ok) {
      char want[128];
      snprintf(want, sizeof(want), "broadcastable to [%lld, %lld, %lld, 1..%lld]", (long long)B,
               (long long)Hq, (long long)Tq, (long long)Tk);
      return shape_fail(ctx, fn, "mask", m, want);
    }
    p->flags |= VKF_ATTN_MASK;
    p->mask_cols = (uint32_t)cols;
    p->mask_si = rows == 1 ? 0 : (uint32_t)cols;
    uint64_t plane = (uint64_t)(rows == 1 ? 1 : Tq) * (uint64_t)cols;
    p->mask_sh = lead[1] == 1 ? 0 : (uint32_t)plane;
    p->mask_sb = lead[0] == 1 ? 0 : (uint32_t)(plane * (uint64_t)lead[1]);
    a->mask = m;
  }
  if (d->kv_lens.id) {
    char what[96];
    snprintf(what, sizeof(what), "%s: kv_lens", fn);
    vkf_tensor_slot *s = vkf_ctx_tensor(ctx, d->kv_lens, what);
    if (!s)
      return ctx->env.error_status;
    if (s->dtype != VKF_DTYPE_I32)
      return vkf_fail(&ctx->env, VKF_ERROR_DTYPE_MISMATCH, "%s is %s; it must be i32", what,
                      vkf_dtype_name(s->dtype));
    if (s->ndim != 1 || s->shape[0] != B) {
      char want[32];
      snprintf(want, sizeof(want), "[%lld]", (long long)B);
      return shape_fail(ctx, fn, "kv_lens", s, want);
    }
    p->flags |= VKF_ATTN_KV_LENS;
    if (d->align == VKF_ATTENTION_ALIGN_BOTTOM_RIGHT)
      p->flags |= VKF_ATTN_Q_AT_KV_END;
    a->kvl = s;
  }
  return VKF_OK;
}

/* saved (standard variant): [B, Hq, Tq, Tk]. */
static bool scores_shape(const vkf_tensor_slot *s, const vkf_attention_params *p) {
  return s->ndim == 4 && s->shape[0] == p->B && s->shape[1] == p->Hq && s->shape[2] == p->Tq &&
         s->shape[3] == p->Tk;
}

static vkf_status scores_fail(vkf_context *ctx, const char *fn, const char *name,
                              const vkf_tensor_slot *s, const vkf_attention_params *p) {
  char want[96];
  snprintf(want, sizeof(want), "[B, Hq, Tq, Tk] = [%u, %u, %u, %u]", p->B, p->Hq, p->Tq, p->Tk);
  return shape_fail(ctx, fn, name, s, want);
}

/* saved (flash variant): [B, Hq, Tq]. */
static bool lse_shape(const vkf_tensor_slot *s, const vkf_attention_params *p) {
  return s->ndim == 3 && s->shape[0] == p->B && s->shape[1] == p->Hq && s->shape[2] == p->Tq;
}

static vkf_status saved_check(vkf_context *ctx, const char *fn, const vkf_tensor_slot *s,
                              const attn_args *a) {
  if (!a->flash)
    return scores_shape(s, &a->p) ? VKF_OK : scores_fail(ctx, fn, "saved", s, &a->p);
  if (lse_shape(s, &a->p))
    return VKF_OK;
  char want[96];
  snprintf(want, sizeof(want), "[B, Hq, Tq] = [%u, %u, %u] (flash variant)", a->p.B, a->p.Hq,
           a->p.Tq);
  return shape_fail(ctx, fn, "saved", s, want);
}

static uint64_t workspace_elements(const attn_args *a) {
  if (a->flash)
    return 2 * a->n_rows + a->p.B;
  return a->n_scores * ((a->p.flags & VKF_ATTN_SOFTCAP) ? 2u : 1u);
}

vkf_status vkf_attention_sizes_get(vkf_context *ctx, vkf_tensor q, vkf_tensor k, vkf_tensor v,
                                   const vkf_attention_desc *desc, vkf_attention_sizes *out) {
  static const char fn[] = "vkf_attention_sizes_get";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!out)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "%s: out is NULL", fn);
  attn_args a;
  vkf_status st = check_inputs(ctx, fn, q, k, v, desc ? desc : &default_desc, &a);
  if (st != VKF_OK)
    return st;
  memset(out, 0, sizeof(*out));
  out->saved_ndim = a.flash ? 3 : 4;
  out->saved_shape[0] = a.p.B;
  out->saved_shape[1] = a.p.Hq;
  out->saved_shape[2] = a.p.Tq;
  if (!a.flash)
    out->saved_shape[3] = a.p.Tk;
  out->workspace_elements = workspace_elements(&a);
  return VKF_OK;
}

vkf_status vkf_attention_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor saved, vkf_tensor q,
                                 vkf_tensor k, vkf_tensor v, const vkf_attention_desc *desc) {
  static const char fn[] = "vkf_attention_forward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  const vkf_attention_desc *d = desc ? desc : &default_desc;
  vkf_tensor_slot *so = vkf_f32_operand(ctx, out, fn, "out");
  vkf_tensor_slot *sp = so ? vkf_f32_operand(ctx, saved, fn, "saved") : NULL;
  if (!sp)
    return ctx->env.error_status;
  attn_args a;
  vkf_status st = check_inputs(ctx, fn, q, k, v, d, &a);
  if (st != VKF_OK)
    return st;
  const vkf_attention_params *p = &a.p;
  const bool qb = p->flags & VKF_ATTN_Q_BHTD;
  if (!has_dims(so, qb, p->B, p->Tq, p->Hq, p->Dv)) {
    char want[96];
    snprintf(want, sizeof(want),
             qb ? "[%u, %u, %u, %u] ([B, Hq, Tq, Dv])" : "[%u, %u, %u, %u] ([B, Tq, Hq, Dv])", p->B,
             qb ? p->Hq : p->Tq, qb ? p->Tq : p->Hq, p->Dv);
    return shape_fail(ctx, fn, "out", so, want);
  }
  if ((st = saved_check(ctx, fn, sp, &a)) != VKF_OK)
    return st;
  if (d->logits.id) {
    if (a.flash)
      return vkf_fail(&ctx->env, VKF_ERROR_UNSUPPORTED,
                      "%s: the flash variant never forms the logits; use the standard variant "
                      "to read them",
                      fn);
    if (!(a.logits = vkf_f32_operand(ctx, d->logits, fn, "logits")))
      return ctx->env.error_status;
    if (!scores_shape(a.logits, p))
      return scores_fail(ctx, fn, "logits", a.logits, p);
  }
  vkf_tensor_slot *all[] = {so, sp, a.logits, a.q, a.k, a.v, a.mask, a.kvl};
  for (int i = 0; i < 3; i++)
    if (all[i] && overlaps_any((size_t)i, all, VKF_ARRAY_LEN(all)))
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: out, saved and logits must not share memory with each other or with "
                      "q, k, v, mask, kv_lens",
                      fn);
  if (a.logits)
    a.p.flags |= VKF_ATTN_LOGITS;

  if (a.flash) {
    vkf_op op = {
        .kind = VKF_OP_ATTENTION_FLASH_FORWARD, .n_tensors = 7, .writes = 0x3, .reads = 0x7c};
    op.t[0] = vkf_slot_tref(so);
    op.t[1] = vkf_slot_tref(sp);
    op.t[2] = vkf_slot_tref(a.q);
    op.t[3] = vkf_slot_tref(a.k);
    op.t[4] = vkf_slot_tref(a.v);
    if (a.mask)
      op.t[5] = vkf_slot_tref(a.mask);
    if (a.kvl)
      op.t[6] = vkf_slot_tref(a.kvl);
    op.p.attention = a.p;
    return vkf_ctx_run(ctx, &op);
  }
  vkf_op op = {.kind = VKF_OP_ATTENTION_FORWARD, .n_tensors = 8, .writes = 0x83, .reads = 0x7c};
  op.t[0] = vkf_slot_tref(so);
  op.t[1] = vkf_slot_tref(sp);
  op.t[2] = vkf_slot_tref(a.q);
  op.t[3] = vkf_slot_tref(a.k);
  op.t[4] = vkf_slot_tref(a.v);
  if (a.mask)
    op.t[5] = vkf_slot_tref(a.mask);
  if (a.kvl)
    op.t[6] = vkf_slot_tref(a.kvl);
  if (a.logits)
    op.t[7] = vkf_slot_tref(a.logits);
  op.p.attention = a.p;
  return vkf_ctx_run(ctx, &op);
}

/* The flash backward's three ops; workspace = [lse | D | kv_lens] (see the
 * file comment). */
static vkf_status flash_backward(vkf_context *ctx, vkf_tensor_slot *dq, vkf_tensor_slot *dk,
                                 vkf_tensor_slot *dv, vkf_tensor_slot *dout, vkf_tensor_slot *out,
                                 vkf_tensor_slot *lse, vkf_tensor_slot *ws, const attn_args *a) {
  vkf_tref w = vkf_slot_tref(ws);
  w.bytes = workspace_elements(a) * sizeof(float);
  vkf_op op = {
      .kind = VKF_OP_ATTENTION_FLASH_BACKWARD_PRE, .n_tensors = 5, .writes = 0x1, .reads = 0x1e};
  op.t[0] = w;
  op.t[1] = vkf_slot_tref(dout);
  op.t[2] = vkf_slot_tref(out);
  op.t[3] = vkf_slot_tref(lse);
  if (a->kvl)
    op.t[4] = vkf_slot_tref(a->kvl);
  op.p.attention = a->p;
  vkf_status st = vkf_ctx_run(ctx, &op);
  if (st == VKF_OK) { /* dk += dS^T . q, dv += P^T . dout */
    op = (vkf_op){
        .kind = VKF_OP_ATTENTION_FLASH_BACKWARD_DKV, .n_tensors = 8, .writes = 0x3, .reads = 0xff};
    op.t[0] = vkf_slot_tref(dk);
    op.t[1] = vkf_slot_tref(dv);
    op.t[2] = vkf_slot_tref(a->q);
    op.t[3] = vkf_slot_tref(a->k);
    op.t[4] = vkf_slot_tref(a->v);
    op.t[5] = vkf_slot_tref(dout);
    op.t[6] = w;
    if (a->mask)
      op.t[7] = vkf_slot_tref(a->mask);
    op.p.attention = a->p;
    st = vkf_ctx_run(ctx, &op);
  }
  if (st == VKF_OK) { /* dq += dS . k */
    op = (vkf_op){
        .kind = VKF_OP_ATTENTION_FLASH_BACKWARD_DQ, .n_tensors = 7, .writes = 0x1, .reads = 0x7f};
    op.t[0] = vkf_slot_tref(dq);
    op.t[1] = vkf_slot_tref(a->q);
    op.t[2] = vkf_slot_tref(a->k);
    op.t[3] = vkf_slot_tref(a->v);
    op.t[4] = vkf_slot_tref(dout);
    op.t[5] = w;
    if (a->mask)
      op.t[6] = vkf_slot_tref(a->mask);
    op.p.attention = a->p;
    st = vkf_ctx_run(ctx, &op);
  }
  return st;
}

vkf_status vkf_attention_backward(vkf_context *ctx, vkf_tensor dq, vkf_tensor dk, vkf_tensor dv,
                                  vkf_tensor dout, vkf_tensor q, vkf_tensor k, vkf_tensor v,
                                  vkf_tensor saved, vkf_tensor workspace,
                                  const vkf_attention_desc *desc) {
  static const char fn[] = "vkf_attention_backward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  const vkf_attention_desc *d = desc ? desc : &default_desc;
  vkf_tensor_slot *sdq = vkf_f32_operand(ctx, dq, fn, "dq");
  vkf_tensor_slot *sdk = sdq ? vkf_f32_operand(ctx, dk, fn, "dk") : NULL;
  vkf_tensor_slot *sdv = sdk ? vkf_f32_operand(ctx, dv, fn, "dv") : NULL;
  vkf_tensor_slot *sdo = sdv ? vkf_f32_operand(ctx, dout, fn, "dout") : NULL;
  vkf_tensor_slot *sp = sdo ? vkf_f32_operand(ctx, saved, fn, "saved") : NULL;
  if (!sp)
    return ctx->env.error_status;
  attn_args a;
  vkf_status st = check_inputs(ctx, fn, q, k, v, d, &a);
  if (st != VKF_OK)
    return st;
  const vkf_attention_params *p = &a.p;
  if (!vkf_same_shape(sdq, a.q))
    return vkf_shape_error(ctx, fn, "dq must have q's shape", sdq, a.q);
  if (!vkf_same_shape(sdk, a.k))
    return vkf_shape_error(ctx, fn, "dk must have k's shape", sdk, a.k);
  if (!vkf_same_shape(sdv, a.v))
    return vkf_shape_error(ctx, fn, "dv must have v's shape", sdv, a.v);
  const bool qb = p->flags & VKF_ATTN_Q_BHTD;
  if (!has_dims(sdo, qb, p->B, p->Tq, p->Hq, p->Dv)) {
    char want[96];
    snprintf(want, sizeof(want),
             qb ? "[%u, %u, %u, %u] ([B, Hq, Tq, Dv])" : "[%u, %u, %u, %u] ([B, Tq, Hq, Dv])", p->B,
             qb ? p->Hq : p->Tq, qb ? p->Tq : p->Hq, p->Dv);
    return shape_fail(ctx, fn, "dout", sdo, want);
  }
  if ((st = saved_check(ctx, fn, sp, &a)) != VKF_OK)
    return st;
  vkf_tensor_slot *sout = NULL;
  if (a.flash) {
    if (!d->out.id)
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: the flash variant's backward needs desc->out (the forward's output)",
                      fn);
    if (!(sout = vkf_f32_operand(ctx, d->out, fn, "desc->out")))
      return ctx->env.error_status;
    if (!vkf_same_shape(sout, sdo))
      return vkf_shape_error(ctx, fn, "desc->out must have dout's shape", sout, sdo);
  }
  uint64_t need = workspace_elements(&a);
  vkf_tensor_slot *sws = vkf_f32_operand(ctx, workspace, fn, "workspace");
  if (!sws)
    return ctx->env.error_status;
  if (sws->elements < need)
    return vkf_fail(&ctx->env, VKF_ERROR_BUFFER_TOO_SMALL,
                    "%s: workspace has %llu elements; %llu needed (vkf_attention_sizes_get)", fn,
                    (unsigned long long)sws->elements, (unsigned long long)need);
  vkf_tensor_slot *all[] = {sdq, sdk, sdv, sws, sdo, a.q, a.k, a.v, sp, a.mask, a.kvl, sout};
  for (int i = 0; i < 4; i++)
    if (overlaps_any((size_t)i, all, VKF_ARRAY_LEN(all)))
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: dq, dk, dv and workspace must not share memory with each other or "
                      "with dout, q, k, v, saved, mask, kv_lens, desc->out",
                      fn);
  if (a.flash)
    return flash_backward(ctx, sdq, sdk, sdv, sdo, sout, sp, sws, &a);

  vkf_tref ws = vkf_slot_tref(sws), ws_ds = ws, ws_g = {0};
  ws_ds.bytes = a.n_scores * sizeof(float);
  if (a.p.flags & VKF_ATTN_SOFTCAP) {
    ws_g = ws;
    ws_g.offset += ws_ds.bytes;
    ws_g.bytes = ws_ds.bytes;
  }
  vkf_tref kvl = a.kvl ? vkf_slot_tref(a.kvl) : (vkf_tref){0};

  /* dS into the workspace */
  vkf_op op = {.kind = VKF_OP_ATTENTION_BACKWARD_DS, .n_tensors = 8, .writes = 0x3, .reads = 0xfc};
  op.t[0] = ws_ds;
  op.t[1] = ws_g;
  op.t[2] = vkf_slot_tref(sdo);
  op.t[3] = vkf_slot_tref(a.q);
  op.t[4] = vkf_slot_tref(a.k);
  op.t[5] = vkf_slot_tref(a.v);
  op.t[6] = vkf_slot_tref(sp);
  op.t[7] = kvl;
  op.p.attention = a.p;
  st = vkf_ctx_run(ctx, &op);

  if (st == VKF_OK) { /* dq += dS . k */
    op =
        (vkf_op){.kind = VKF_OP_ATTENTION_BACKWARD_DQ, .n_tensors = 4, .writes = 0x1, .reads = 0xf};
    op.t[0] = vkf_slot_tref(sdq);
    op.t[1] = ws_ds;
    op.t[2] = vkf_slot_tref(a.k);
    op.t[3] = kvl;
    op.p.attention = a.p;
    st = vkf_ctx_run(ctx, &op);
  }
  if (st == VKF_OK) { /* dk += dS^T . q, dv += P^T . dout */
    op = (vkf_op){
        .kind = VKF_OP_ATTENTION_BACKWARD_DKV, .n_tensors = 7, .writes = 0x3, .reads = 0x7f};
    op.t[0] = vkf_slot_tref(sdk);
    op.t[1] = vkf_slot_tref(sdv);
    op.t[2] = ws_ds;
    op.t[3] = vkf_slot_tref(sp);
    op.t[4] = vkf_slot_tref(a.q);
    op.t[5] = vkf_slot_tref(sdo);
    op.t[6] = kvl;
    op.p.attention = a.p;
    st = vkf_ctx_run(ctx, &op);
  }
  return st;
}
