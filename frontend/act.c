/* The act family's public API: gelu, silu, swiglu, forward and backward.
 * Argument checks, then one op. */
#include "context.h"

#include <stdio.h>

static vkf_status no_overlap(vkf_context *ctx, const char *fn, const char *a_name,
                             const vkf_tensor_slot *a, const char *b_name,
                             const vkf_tensor_slot *b) {
  if (vkf_slots_overlap(a, b))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: %s and %s share memory", fn, a_name,
                    b_name);
  return VKF_OK;
}

/* out = f(x), elementwise; out may be x exactly. */
static vkf_status unary_forward(vkf_context *ctx, const char *fn, vkf_op_kind kind, uint32_t mode,
                                vkf_tensor out, vkf_tensor x) {
  vkf_tensor_slot *so = vkf_f32_operand(ctx, out, fn, "out");
  vkf_tensor_slot *sx = so ? vkf_f32_operand(ctx, x, fn, "x") : NULL;
  if (!sx)
    return ctx->env.error_status;
  if (!vkf_same_shape(so, sx))
    return vkf_shape_error(ctx, fn, "out must have x's shape", so, sx);
  if (vkf_slots_overlap(so, sx) && !vkf_slots_same(so, sx))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: out may be x exactly (in place), but not otherwise overlap it", fn);
  vkf_op op = {.kind = kind, .n_tensors = 2, .writes = 1, .reads = 2};
  op.t[0] = vkf_slot_tref(so);
  op.t[1] = vkf_slot_tref(sx);
  op.p.act = (vkf_act_params){(uint32_t)sx->elements, mode};
  return vkf_ctx_run(ctx, &op);
}

/* dx += dout * f'(x), elementwise. */
static vkf_status unary_backward(vkf_context *ctx, const char *fn, vkf_op_kind kind, uint32_t mode,
                                 vkf_tensor dx, vkf_tensor dout, vkf_tensor x) {
  vkf_tensor_slot *sdx = vkf_f32_operand(ctx, dx, fn, "dx");
  vkf_tensor_slot *sdo = sdx ? vkf_f32_operand(ctx, dout, fn, "dout") : NULL;
  vkf_tensor_slot *sx = sdo ? vkf_f32_operand(ctx, x, fn, "x") : NULL;
  if (!sx)
    return ctx->env.error_status;
  if (!vkf_same_shape(sdo, sx))
    return vkf_shape_error(ctx, fn, "dout must have x's shape", sdo, sx);
  if (!vkf_same_shape(sdx, sx))
    return vkf_shape_error(ctx, fn, "dx must have x's shape", sdx, sx);
  vkf_status st;
  if ((st = no_overlap(ctx, fn, "dx", sdx, "dout", sdo)) != VKF_OK ||
      (st = no_overlap(ctx, fn, "dx", sdx, "x", sx)) != VKF_OK)
    return st;
  vkf_op op = {.kind = kind, .n_tensors = 3, .writes = 1, .reads = 7};
  op.t[0] = vkf_slot_tref(sdx);
  op.t[1] = vkf_slot_tref(sdo);
  op.t[2] = vkf_slot_tref(sx);
  op.p.act = (vkf_act_params){(uint32_t)sx->elements, mode};
  return vkf_ctx_run(ctx, &op);
}

static vkf_status gelu_mode(vkf_context *ctx, const char *fn, vkf_gelu_approx approx,
                            uint32_t *mode) {
  switch (approx) {
  case VKF_GELU_ERF:
    *mode = VKF_GELU_MODE_ERF;
    return VKF_OK;
  case VKF_GELU_TANH:
    *mode = VKF_GELU_MODE_TANH;
    return VKF_OK;
  }
  return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                  "%s: approx %d is neither VKF_GELU_ERF nor VKF_GELU_TANH", fn, (int)approx);
}

vkf_status vkf_gelu_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor x,
                            vkf_gelu_approx approx) {
  static const char fn[] = "vkf_gelu_forward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  uint32_t mode = 0;
  vkf_status st = gelu_mode(ctx, fn, approx, &mode);
  return st != VKF_OK ? st : unary_forward(ctx, fn, VKF_OP_GELU, mode, out, x);
}

vkf_status vkf_gelu_backward(vkf_context *ctx, vkf_tensor dx, vkf_tensor dout, vkf_tensor x,
                             vkf_gelu_approx approx) {
  static const char fn[] = "vkf_gelu_backward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  uint32_t mode = 0;
  vkf_status st = gelu_mode(ctx, fn, approx, &mode);
  return st != VKF_OK ? st : unary_backward(ctx, fn, VKF_OP_GELU_BACKWARD, mode, dx, dout, x);
}

vkf_status vkf_silu_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor x) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  return unary_forward(ctx, "vkf_silu_forward", VKF_OP_SILU, 0, out, x);
}

vkf_status vkf_silu_backward(vkf_context *ctx, vkf_tensor dx, vkf_tensor dout, vkf_tensor x) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  return unary_backward(ctx, "vkf_silu_backward", VKF_OP_SILU_BACKWARD, 0, dx, dout, x);
}

/* out must be gate_up's shape with the last dimension halved. */
static vkf_status check_halves(vkf_context *ctx, const char *fn, const char *name,
                               const vkf_tensor_slot *out, const vkf_tensor_slot *gu) {
  uint32_t n = gu->ndim;
  if (gu->shape[n - 1] % 2 != 0)
    return vkf_shape_error(ctx, fn, "gate_up's last dimension (2F) must be even", gu, gu);
  bool ok = out->ndim == n && out->shape[n - 1] * 2 == gu->shape[n - 1];
  for (uint32_t i = 0; ok && i + 1 < n; i++)
    ok = out->shape[i] == gu->shape[i];
  if (!ok) {
    char what[96];
    snprintf(what, sizeof(what), "%s must be gate_up's shape with the last dimension halved", name);
    return vkf_shape_error(ctx, fn, what, out, gu);
  }
  return VKF_OK;
}

vkf_status vkf_swiglu_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor gate_up) {
  static const char fn[] = "vkf_swiglu_forward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *so = vkf_f32_operand(ctx, out, fn, "out");
  vkf_tensor_slot *sg = so ? vkf_f32_operand(ctx, gate_up, fn, "gate_up") : NULL;
  if (!sg)
    return ctx->env.error_status;
  vkf_status st;
  if ((st = check_halves(ctx, fn, "out", so, sg)) != VKF_OK ||
      (st = no_overlap(ctx, fn, "out", so, "gate_up", sg)) != VKF_OK)
    return st;
  uint32_t f = (uint32_t)so->shape[so->ndim - 1];
  vkf_op op = {.kind = VKF_OP_SWIGLU, .n_tensors = 2, .writes = 1, .reads = 2};
  op.t[0] = vkf_slot_tref(so);
  op.t[1] = vkf_slot_tref(sg);
  op.p.swiglu = (vkf_swiglu_params){(uint32_t)(so->elements / f), f};
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_swiglu_backward(vkf_context *ctx, vkf_tensor dgate_up, vkf_tensor dout,
                               vkf_tensor gate_up) {
  static const char fn[] = "vkf_swiglu_backward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *sdg = vkf_f32_operand(ctx, dgate_up, fn, "dgate_up");
  vkf_tensor_slot *sdo = sdg ? vkf_f32_operand(ctx, dout, fn, "dout") : NULL;
  vkf_tensor_slot *sg = sdo ? vkf_f32_operand(ctx, gate_up, fn, "gate_up") : NULL;
  if (!sg)
    return ctx->env.error_status;
  vkf_status st;
  if ((st = check_halves(ctx, fn, "dout", sdo, sg)) != VKF_OK)
    return st;
  if (!vkf_same_shape(sdg, sg))
    return vkf_shape_error(ctx, fn, "dgate_up must have gate_up's shape", sdg, sg);
  if ((st = no_overlap(ctx, fn, "dgate_up", sdg, "dout", sdo)) != VKF_OK ||
      (st = no_overlap(ctx, fn, "dgate_up", sdg, "gate_up", sg)) != VKF_OK)
    return st;
  uint32_t f = (uint32_t)sdo->shape[sdo->ndim - 1];
  vkf_op op = {.kind = VKF_OP_SWIGLU_BACKWARD, .n_tensors = 3, .writes = 1, .reads = 7};
  op.t[0] = vkf_slot_tref(sdg);
  op.t[1] = vkf_slot_tref(sdo);
  op.t[2] = vkf_slot_tref(sg);
  op.p.swiglu = (vkf_swiglu_params){(uint32_t)(sdo->elements / f), f};
  return vkf_ctx_run(ctx, &op);
}
