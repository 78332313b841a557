/* The eager op API: argument checks, then one vkf_op to the backend. */
#include "context.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

vkf_status vkf_ctx_run(vkf_context *ctx, const vkf_op *op) {
  return ctx->be->vt->run(ctx->be, op);
}

void vkf_shape_str(const vkf_tensor_slot *s, char *buf, size_t n) {
  size_t o = 0;
  o += (size_t)snprintf(buf + o, n - o, "[");
  for (uint32_t i = 0; i < s->ndim && o < n; i++)
    o += (size_t)snprintf(buf + o, n - o, i ? ", %lld" : "%lld", (long long)s->shape[i]);
  if (o < n)
    snprintf(buf + o, n - o, "]");
}

/* Fetches tensor `t` as operand `name` of `fn`; requires f32. */
vkf_tensor_slot *vkf_f32_operand(vkf_context *ctx, vkf_tensor t, const char *fn, const char *name) {
  char what[96];
  snprintf(what, sizeof(what), "%s: %s", fn, name);
  vkf_tensor_slot *s = vkf_ctx_tensor(ctx, t, what);
  if (s && s->dtype != VKF_DTYPE_F32) {
    vkf_fail(&ctx->env, VKF_ERROR_DTYPE_MISMATCH, "%s is %s; only f32 is supported", what,
             vkf_dtype_name(s->dtype));
    return NULL;
  }
  return s;
}

bool vkf_same_shape(const vkf_tensor_slot *a, const vkf_tensor_slot *b) {
  if (a->ndim != b->ndim)
    return false;
  for (uint32_t i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      return false;
  return true;
}

vkf_status vkf_shape_error(vkf_context *ctx, const char *fn, const char *what,
                           const vkf_tensor_slot *x, const vkf_tensor_slot *y) {
  char sx[96], sy[96];
  vkf_shape_str(x, sx, sizeof(sx));
  vkf_shape_str(y, sy, sizeof(sy));
  return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH, "%s: %s (%s vs %s)", fn, what, sx, sy);
}

vkf_status vkf_tensor_fill(vkf_context *ctx, vkf_tensor t, float value) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *s = vkf_ctx_tensor(ctx, t, "vkf_tensor_fill");
  if (!s)
    return ctx->env.error_status;
  uint32_t bits = 0;
  switch (s->dtype) {
  case VKF_DTYPE_F32:
    memcpy(&bits, &value, 4);
    break;
  case VKF_DTYPE_I32: {
    if (!(value >= -2147483648.0f && value < 2147483648.0f))
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "vkf_tensor_fill: %g does not fit an i32 tensor", (double)value);
    int32_t i = (int32_t)value;
    memcpy(&bits, &i, 4);
    break;
  }
  case VKF_DTYPE_BF16: {
    uint32_t f;
    memcpy(&f, &value, 4);
    uint32_t h = (f + 0x7fffu + ((f >> 16) & 1u)) >> 16; /* round to nearest even */
    if ((f & 0x7fffffffu) > 0x7f800000u)
      h = (f >> 16) | 0x40u; /* NaN stays NaN */
    bits = h | (h << 16);
    break;
  }
  case VKF_DTYPE_F16: {
    /* Round-to-nearest-even float -> half. */
    uint32_t f;
    memcpy(&f, &value, 4);
    uint32_t sign = (f >> 16) & 0x8000u, e = (f >> 23) & 0xffu, m = f & 0x7fffffu, h;
    if (e == 0xff)
      h = sign | 0x7c00u | (m ? 0x200u : 0);
    else if (e > 142)
      h = sign | 0x7c00u;
    else if (e < 113) {
      if (e < 102)
        h = sign;
      else {
        m |= 0x800000u;
        uint32_t shift = 126 - e, r = m >> shift, rem = m & ((1u << shift) - 1),
                 half = 1u << (shift - 1);
        h = sign | (r + (rem > half || (rem == half && (r & 1))));
      }
    } else {
      h = sign | ((e - 112) << 10) | (m >> 13);
      uint32_t rem = m & 0x1fffu;
      if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++;
    }
    bits = h | (h << 16);
    break;
  }
  }
  vkf_op op = {.kind = VKF_OP_FILL, .n_tensors = 1, .writes = 1};
  op.t[0] = vkf_slot_tref(s);
  /* whole words; a 16-bit tensor of odd length ends in half a word, which the
   * backends write on its own (a view's neighbour may own the other half) */
  op.p.fill = (vkf_fill_params){(uint32_t)(s->bytes / 4), bits};
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_matmul(vkf_context *ctx, vkf_tensor c, vkf_tensor a, vkf_tensor b, vkf_tensor bias,
                      uint32_t flags) {
  static const char fn[] = "vkf_matmul";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *sc = vkf_f32_operand(ctx, c, fn, "c");
  vkf_tensor_slot *sa = sc ? vkf_f32_operand(ctx, a, fn, "a") : NULL;
  vkf_tensor_slot *sb = sa ? vkf_f32_operand(ctx, b, fn, "b") : NULL;
  if (!sb)
    return ctx->env.error_status;
  vkf_tensor_slot *sbias = NULL;
  if (bias.id && !(sbias = vkf_f32_operand(ctx, bias, fn, "bias")))
    return ctx->env.error_status;
  if (flags & ~(uint32_t)(VKF_MATMUL_TRANS_A | VKF_MATMUL_TRANS_B | VKF_MATMUL_ACCUMULATE))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn, flags);
  if (sa->ndim < 2 || sb->ndim < 2 || sc->ndim < 2)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: a, b and c need at least 2 dimensions (have %u, %u, %u)", fn, sa->ndim,
                    sb->ndim, sc->ndim);
  if (vkf_slots_overlap(sc, sa) || vkf_slots_overlap(sc, sb) ||
      (sbias && vkf_slots_overlap(sc, sbias)))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: c must not share memory with a, b or bias", fn);
  bool ta = flags & VKF_MATMUL_TRANS_A, tb = flags & VKF_MATMUL_TRANS_B;
  uint32_t na = sa->ndim, nb = sb->ndim, nc = sc->ndim;
  uint64_t M = (uint64_t)sa->shape[na - (ta ? 1 : 2)], K = (uint64_t)sa->shape[na - (ta ? 2 : 1)];
  uint64_t Kb = (uint64_t)sb->shape[nb - (tb ? 1 : 2)], N = (uint64_t)sb->shape[nb - (tb ? 2 : 1)];
  if (K != Kb)
    return vkf_shape_error(ctx, fn, "inner dimensions of a and b differ", sa, sb);
  if ((uint64_t)sc->shape[nc - 2] != M || (uint64_t)sc->shape[nc - 1] != N)
    return vkf_shape_error(ctx, fn, "c must be [.., M, N]", sc, sa);
  if (nc != na)
    return vkf_shape_error(ctx, fn, "a and c need the same batch dimensions", sa, sc);
  uint64_t batch = 1;
  for (uint32_t i = 0; i + 2 < na; i++) {
    if (sa->shape[i] != sc->shape[i])
      return vkf_shape_error(ctx, fn, "a and c need the same batch dimensions", sa, sc);
    batch *= (uint64_t)sa->shape[i];
  }
  if (nb > 2) {
    if (nb != na)
      return vkf_shape_error(ctx, fn, "b must have a's batch dimensions or none", sb, sa);
    for (uint32_t i = 0; i + 2 < nb; i++)
      if (sb->shape[i] != sa->shape[i])
        return vkf_shape_error(ctx, fn, "b must have a's batch dimensions or none", sb, sa);
  }
  if (sbias && (sbias->ndim != 1 || (uint64_t)sbias->shape[0] != N))
    return vkf_shape_error(ctx, fn, "bias must be [N]", sbias, sc);

  vkf_op op = {.kind = VKF_OP_MATMUL, .n_tensors = 4, .writes = 1, .reads = 0x6};
  op.t[0] = vkf_slot_tref(sc);
  op.t[1] = vkf_slot_tref(sa);
  op.t[2] = vkf_slot_tref(sb);
  vkf_matmul_params *p = &op.p.matmul;
  p->M = (uint32_t)M;
  p->N = (uint32_t)N;
  p->K = (uint32_t)K;
  p->batch = (uint32_t)batch;
  p->lda = (uint32_t)(ta ? M : K);
  p->ldb = (uint32_t)(tb ? K : N);
  p->ldc = (uint32_t)N;
  p->stride_a = (uint32_t)(M * K);
  p->stride_b = nb > 2 ? (uint32_t)(K * N) : 0;
  p->stride_c = (uint32_t)(M * N);
  p->flags = (ta ? VKF_MM_TRANS_A : 0) | (tb ? VKF_MM_TRANS_B : 0);
  p->alpha = 1.0f;
  p->beta = 0.0f;
  if (flags & VKF_MATMUL_ACCUMULATE) {
    p->flags |= VKF_MM_BETA;
    p->beta = 1.0f;
    op.reads |= 1;
  }
  if (sbias) {
    p->flags |= VKF_MM_BIAS;
    op.t[3] = vkf_slot_tref(sbias);
    op.reads |= 8;
  }
  return vkf_ctx_run(ctx, &op);
}

static vkf_status binary(vkf_context *ctx, vkf_op_kind kind, const char *fn, vkf_tensor c,
                         vkf_tensor a, vkf_tensor b) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *sc = vkf_f32_operand(ctx, c, fn, "c");
  vkf_tensor_slot *sa = sc ? vkf_f32_operand(ctx, a, fn, "a") : NULL;
  vkf_tensor_slot *sb = sa ? vkf_f32_operand(ctx, b, fn, "b") : NULL;
  if (!sb)
    return ctx->env.error_status;
  if (!vkf_same_shape(sc, sa))
    return vkf_shape_error(ctx, fn, "c must have a's shape", sc, sa);
  bool row = sb->ndim == 1 && sb->shape[0] == sa->shape[sa->ndim - 1];
  if (!vkf_same_shape(sb, sa) && !row)
    return vkf_shape_error(ctx, fn, "b must have a's shape or be [last dim of a]", sb, sa);
  /* in place is fine element for element; any other overlap is not */
  if ((vkf_slots_overlap(sc, sa) && !vkf_slots_same(sc, sa)) ||
      (vkf_slots_overlap(sc, sb) && !(vkf_slots_same(sc, sb) && vkf_same_shape(sb, sa))))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: c may be a or b exactly, but not otherwise overlap them", fn);
  vkf_op op = {.kind = kind, .n_tensors = 3, .writes = 1, .reads = 6};
  op.t[0] = vkf_slot_tref(sc);
  op.t[1] = vkf_slot_tref(sa);
  op.t[2] = vkf_slot_tref(sb);
  op.p.binary = (vkf_binary_params){(uint32_t)sa->elements, (uint32_t)sb->elements};
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_add(vkf_context *ctx, vkf_tensor c, vkf_tensor a, vkf_tensor b) {
  return binary(ctx, VKF_OP_ADD, "vkf_add", c, a, b);
}

vkf_status vkf_mul(vkf_context *ctx, vkf_tensor c, vkf_tensor a, vkf_tensor b) {
  return binary(ctx, VKF_OP_MUL, "vkf_mul", c, a, b);
}

vkf_status vkf_scale(vkf_context *ctx, vkf_tensor c, vkf_tensor a, float s) {
  static const char fn[] = "vkf_scale";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *sc = vkf_f32_operand(ctx, c, fn, "c");
  vkf_tensor_slot *sa = sc ? vkf_f32_operand(ctx, a, fn, "a") : NULL;
  if (!sa)
    return ctx->env.error_status;
  if (!vkf_same_shape(sc, sa))
    return vkf_shape_error(ctx, fn, "c must have a's shape", sc, sa);
  if (vkf_slots_overlap(sc, sa) && !vkf_slots_same(sc, sa))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: c may be a exactly, but not otherwise overlap it", fn);
  if (!isfinite(s))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: scale %g is not finite", fn,
                    (double)s);
  vkf_op op = {.kind = VKF_OP_SCALE, .n_tensors = 2, .writes = 1, .reads = 2};
  op.t[0] = vkf_slot_tref(sc);
  op.t[1] = vkf_slot_tref(sa);
  op.p.scale = (vkf_scale_params){(uint32_t)sa->elements, s};
  return vkf_ctx_run(ctx, &op);
}

/* out must be a's leading dims, optionally with a trailing 1 ([1] for 1-D a). */
static bool row_shape_ok(const vkf_tensor_slot *out, const vkf_tensor_slot *a) {
  uint32_t lead = a->ndim - 1;
  if (lead == 0)
    return out->ndim == 1 && out->shape[0] == 1;
  if (out->ndim != lead && !(out->ndim == a->ndim && out->shape[lead] == 1))
    return false;
  for (uint32_t i = 0; i < lead; i++)
    if (out->shape[i] != a->shape[i])
      return false;
  return true;
}

static vkf_status row_reduce(vkf_context *ctx, const char *fn, vkf_tensor out, vkf_tensor a,
                             bool mean) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *so = vkf_f32_operand(ctx, out, fn, "out");
  vkf_tensor_slot *sa = so ? vkf_f32_operand(ctx, a, fn, "a") : NULL;
  if (!sa)
    return ctx->env.error_status;
  if (!row_shape_ok(so, sa))
    return vkf_shape_error(ctx, fn, "out must have a's leading dimensions", so, sa);
  if (vkf_slots_overlap(so, sa))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: out must not overlap a", fn);
  uint32_t cols = (uint32_t)sa->shape[sa->ndim - 1];
  vkf_op op = {.kind = VKF_OP_ROW_SUM, .n_tensors = 2, .writes = 1, .reads = 2};
  op.t[0] = vkf_slot_tref(so);
  op.t[1] = vkf_slot_tref(sa);
  op.p.rowreduce = (vkf_rowreduce_params){(uint32_t)(sa->elements / cols), cols,
                                          mean ? 1.0f / (float)cols : 1.0f};
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_row_sum(vkf_context *ctx, vkf_tensor out, vkf_tensor a) {
  return row_reduce(ctx, "vkf_row_sum", out, a, false);
}

vkf_status vkf_row_mean(vkf_context *ctx, vkf_tensor out, vkf_tensor a) {
  return row_reduce(ctx, "vkf_row_mean", out, a, true);
}

vkf_status vkf_softmax(vkf_context *ctx, vkf_tensor out, vkf_tensor a) {
  static const char fn[] = "vkf_softmax";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *so = vkf_f32_operand(ctx, out, fn, "out");
  vkf_tensor_slot *sa = so ? vkf_f32_operand(ctx, a, fn, "a") : NULL;
  if (!sa)
    return ctx->env.error_status;
  if (!vkf_same_shape(so, sa))
    return vkf_shape_error(ctx, fn, "out must have a's shape", so, sa);
  if (vkf_slots_overlap(so, sa) && !vkf_slots_same(so, sa))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: out may be a exactly, but not otherwise overlap it", fn);
  uint32_t cols = (uint32_t)sa->shape[sa->ndim - 1];
  vkf_op op = {.kind = VKF_OP_SOFTMAX, .n_tensors = 2, .writes = 1, .reads = 2};
  op.t[0] = vkf_slot_tref(so);
  op.t[1] = vkf_slot_tref(sa);
  op.p.softmax = (vkf_softmax_params){(uint32_t)(sa->elements / cols), cols};
  return vkf_ctx_run(ctx, &op);
}
