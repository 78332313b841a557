/* The rope family's public API: rotary position embedding forward and
 * backward. */
#include "context.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* theta^(-2 / rotary_dim) as a 64-bit binary fraction, rounded to nearest,
 * computed in long double (64-bit mantissa on x86-64; at least double
 * elsewhere). The device raises it to the power i in 64-bit fixed point. */
void vkf_rope_freq_fraction(double theta, uint32_t rotary_dim, uint32_t *hi, uint32_t *lo) {
  long double f = powl((long double)theta, -2.0L / (long double)rotary_dim);
  long double scaled = ldexpl(f, 64) + 0.5L;
  uint64_t v = scaled >= ldexpl(1.0L, 64) ? UINT64_MAX : (uint64_t)scaled;
  *hi = (uint32_t)(v >> 32);
  *lo = (uint32_t)v;
}

static vkf_status rope_op(vkf_context *ctx, const char *fn, bool backward, vkf_tensor out,
                          vkf_tensor x, const vkf_rope_desc *desc_in) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  const char *on = backward ? "dx" : "out", *xn = backward ? "dout" : "x";
  vkf_rope_desc desc = {0};
  if (desc_in)
    desc = *desc_in;
  vkf_tensor_slot *so = vkf_f32_operand(ctx, out, fn, on);
  vkf_tensor_slot *sx = so ? vkf_f32_operand(ctx, x, fn, xn) : NULL;
  if (!sx)
    return ctx->env.error_status;
  vkf_tensor_slot *sc = NULL, *ss = NULL, *sid = NULL;
  if (desc.cos_cache.id && !(sc = vkf_f32_operand(ctx, desc.cos_cache, fn, "cos_cache")))
    return ctx->env.error_status;
  if (desc.sin_cache.id && !(ss = vkf_f32_operand(ctx, desc.sin_cache, fn, "sin_cache")))
    return ctx->env.error_status;
  if (desc.position_ids.id) {
    sid = vkf_ctx_tensor(ctx, desc.position_ids, fn);
    if (!sid)
      return ctx->env.error_status;
    if (sid->dtype != VKF_DTYPE_I32)
      return vkf_fail(&ctx->env, VKF_ERROR_DTYPE_MISMATCH, "%s: position_ids is %s; it must be i32",
                      fn, vkf_dtype_name(sid->dtype));
  }
  if (desc.flags & ~(uint32_t)(VKF_ROPE_INTERLEAVED | VKF_ROPE_HEADS_FIRST))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn,
                    desc.flags);
  if (sx->ndim != 4)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: %s must be 4-D [B, T, H, D] or [B, H, T, D] (has %u dimensions)", fn, xn,
                    sx->ndim);
  if (!vkf_same_shape(so, sx))
    return vkf_shape_error(
        ctx, fn, backward ? "dx must have dout's shape" : "out must have x's shape", so, sx);
  bool heads_first = desc.flags & VKF_ROPE_HEADS_FIRST;
  uint32_t B = (uint32_t)sx->shape[0], T = (uint32_t)sx->shape[heads_first ? 2 : 1],
           H = (uint32_t)sx->shape[heads_first ? 1 : 2], D = (uint32_t)sx->shape[3];
  uint32_t rd = desc.rotary_dim ? desc.rotary_dim : D;
  if (rd % 2 || rd > D)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: rotary_dim %u must be even and at most the head size %u", fn, rd, D);
  uint32_t half = rd / 2;

  vkf_op op = {.kind = backward ? VKF_OP_ROPE_BACKWARD : VKF_OP_ROPE,
               .n_tensors = 5,
               .writes = 1,
               .reads = backward ? 3u : 2u};
  vkf_rope_params *p = &op.p.rope;
  p->B = B;
  p->T = T;
  p->H = H;
  p->D = D;
  p->pairs = half;
  p->sB = T * H * D;
  p->sT = heads_first ? D : H * D;
  p->sH = heads_first ? T * D : D;
  p->flags = (desc.flags & VKF_ROPE_INTERLEAVED) ? VKF_ROPEF_INTERLEAVED : 0;
  p->pos_offset = desc.pos_offset;

  if (sid) {
    if (sid->ndim != 2 || sid->shape[0] != B || sid->shape[1] != T)
      return vkf_shape_error(ctx, fn, "position_ids must be [B, T]", sid, sx);
    if (desc.pos_offset != 0)
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: pos_offset must be 0 when position_ids are given", fn);
    p->flags |= VKF_ROPEF_POS_IDS;
  }
  if (!sc != !ss)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: give both cos_cache and sin_cache, or neither", fn);
  if (sc) {
    if (!vkf_same_shape(sc, ss))
      return vkf_shape_error(ctx, fn, "cos_cache and sin_cache must have the same shape", sc, ss);
    if (sc->shape[sc->ndim - 1] != half || (sc->ndim != 2 && sc->ndim != 3))
      return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                      "%s: the caches must be [P, %u] or [B, T, %u] (rotary_dim / 2)", fn, half,
                      half);
    p->flags |= VKF_ROPEF_TABLE;
    if (sc->ndim == 3) {
      if (sc->shape[0] != B || sc->shape[1] != T)
        return vkf_shape_error(ctx, fn, "a 3-D cache must be [B, T, rotary_dim / 2]", sc, sx);
      if (sid || desc.pos_offset != 0)
        return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                        "%s: a [B, T, rotary_dim / 2] cache takes no position_ids or pos_offset",
                        fn);
      p->flags |= VKF_ROPEF_TABLE_BT;
      p->table_rows = B * T;
    } else {
      if (sc->shape[0] > INT32_MAX)
        return vkf_fail(&ctx->env, VKF_ERROR_UNSUPPORTED, "%s: caches of more than 2^31-1 rows",
                        fn);
      p->table_rows = (uint32_t)sc->shape[0];
      if (!sid && (desc.pos_offset < 0 || (int64_t)desc.pos_offset + T > (int64_t)p->table_rows))
        return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                        "%s: positions %d..%lld are outside the caches' %u rows", fn,
                        desc.pos_offset, (long long)desc.pos_offset + T - 1, p->table_rows);
    }
  } else {
    double theta = desc.theta == 0 ? 10000.0 : desc.theta;
    if (!(theta > 1.0) || !isfinite(theta))
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: theta %g must be finite and greater than 1", fn, theta);
    if (!sid && (int64_t)desc.pos_offset + T - 1 > INT32_MAX)
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: positions %d + %u pass 2^31-1",
                      fn, desc.pos_offset, T - 1);
    vkf_rope_freq_fraction(theta, rd, &p->freq_hi, &p->freq_lo);
  }

  if (backward) {
    if (vkf_slots_overlap(so, sx))
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: dx must not overlap dout", fn);
  } else if (vkf_slots_overlap(so, sx)) {
    if (!vkf_slots_same(so, sx))
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: out may be x exactly, but not otherwise overlap it", fn);
    p->flags |= VKF_ROPEF_INPLACE;
  }
  if ((sc && (vkf_slots_overlap(so, sc) || vkf_slots_overlap(so, ss))) ||
      (sid && vkf_slots_overlap(so, sid)))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: %s must not overlap the caches or position_ids", fn, on);

  if (sid && sc && !(p->flags & VKF_ROPEF_TABLE_BT)) {
    /* Table lookups by position: check the ids on the host. */
    int32_t *ids = vkf_malloc(&ctx->env, (size_t)sid->bytes);
    if (!ids)
      return vkf_fail(&ctx->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s: position id buffer", fn);
    vkf_status st = ctx->be->vt->read(ctx->be, vkf_slot_tref(sid), ids);
    for (uint64_t n = 0; st == VKF_OK && n < sid->elements; n++)
      if (ids[n] < 0 || (uint32_t)ids[n] >= p->table_rows)
        st = vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: position id %d at [%llu, %llu] is outside the caches' %u rows", fn,
                      ids[n], (unsigned long long)(n / T), (unsigned long long)(n % T),
                      p->table_rows);
    vkf_free(&ctx->env, ids);
    if (st != VKF_OK)
      return st;
  }

  op.t[0] = vkf_slot_tref(so);
  op.t[1] = vkf_slot_tref(sx);
  if (sc) {
    op.t[2] = vkf_slot_tref(sc);
    op.t[3] = vkf_slot_tref(ss);
    op.reads |= 0xc;
  }
  if (sid) {
    op.t[4] = vkf_slot_tref(sid);
    op.reads |= 0x10;
  }
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_rope(vkf_context *ctx, vkf_tensor out, vkf_tensor x, const vkf_rope_desc *desc) {
  return rope_op(ctx, "vkf_rope", false, out, x, desc);
}

vkf_status vkf_rope_backward(vkf_context *ctx, vkf_tensor dx, vkf_tensor dout,
                             const vkf_rope_desc *desc) {
  return rope_op(ctx, "vkf_rope_backward", true, dx, dout, desc);
}
