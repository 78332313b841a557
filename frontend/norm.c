/* The norm family's public API: layernorm and rmsnorm, forward and
 * backward. Argument checks, then one op. */
#include "context.h"

#include <math.h>
#include <stdio.h>

typedef struct named {
  const char *name;
  const vkf_tensor_slot *s; /* NULL: absent */
} named;

/* Resolves an optional operand: true when absent (*out = NULL) or a live
 * f32 tensor; false with the context's error set otherwise. */
static bool optional(vkf_context *ctx, vkf_tensor t, const char *fn, const char *name,
                     vkf_tensor_slot **out) {
  *out = NULL;
  if (!t.id)
    return true;
  *out = vkf_f32_operand(ctx, t, fn, name);
  return *out != NULL;
}

/* Outputs must not share memory with each other or with any input, except
 * that output 0 may be exactly input 0 when `inplace` is set. */
static vkf_status check_overlaps(vkf_context *ctx, const char *fn, const named *outs,
                                 uint32_t n_out, const named *ins, uint32_t n_in, bool inplace) {
  for (uint32_t i = 0; i < n_out; i++) {
    if (!outs[i].s)
      continue;
    for (uint32_t j = i + 1; j < n_out; j++)
      if (outs[j].s && vkf_slots_overlap(outs[i].s, outs[j].s))
        return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: %s and %s share memory", fn,
                        outs[i].name, outs[j].name);
    for (uint32_t j = 0; j < n_in; j++) {
      if (!ins[j].s || !vkf_slots_overlap(outs[i].s, ins[j].s))
        continue;
      if (inplace && i == 0 && j == 0 && vkf_slots_same(outs[i].s, ins[j].s))
        continue;
      if (inplace && i == 0 && j == 0)
        return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                        "%s: %s may be %s exactly (in place), but not otherwise overlap it", fn,
                        outs[i].name, ins[j].name);
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: %s and %s share memory", fn,
                      outs[i].name, ins[j].name);
    }
  }
  return VKF_OK;
}

static uint32_t last_dim(const vkf_tensor_slot *s) {
  return (uint32_t)s->shape[s->ndim - 1];
}

/* A per-row statistic of x: [rows], x's leading dims, or those and a 1. */
static bool stats_shape_ok(const vkf_tensor_slot *s, const vkf_tensor_slot *x) {
  uint64_t rows = x->elements / last_dim(x);
  if (s->ndim == 1 && (uint64_t)s->shape[0] == rows)
    return true;
  uint32_t lead = x->ndim - 1;
  if (lead == 0 || (s->ndim != lead && s->ndim != lead + 1))
    return false;
  if (s->ndim == lead + 1 && s->shape[lead] != 1)
    return false;
  for (uint32_t i = 0; i < lead; i++)
    if (s->shape[i] != x->shape[i])
      return false;
  return true;
}

static vkf_status check_param(vkf_context *ctx, const char *fn, const char *name,
                              const vkf_tensor_slot *p, const vkf_tensor_slot *x) {
  if (p && !(p->ndim == 1 && (uint64_t)p->shape[0] == last_dim(x))) {
    char what[96];
    snprintf(what, sizeof(what), "%s must be [C], C = x's last dimension", name);
    return vkf_shape_error(ctx, fn, what, p, x);
  }
  return VKF_OK;
}

static vkf_status check_stats(vkf_context *ctx, const char *fn, const char *name,
                              const vkf_tensor_slot *s, const vkf_tensor_slot *x) {
  if (s && !stats_shape_ok(s, x)) {
    char what[128];
    snprintf(what, sizeof(what), "%s must be [rows] or x's leading dimensions (optionally, 1)",
             name);
    return vkf_shape_error(ctx, fn, what, s, x);
  }
  return VKF_OK;
}

static vkf_status check_eps(vkf_context *ctx, const char *fn, float eps) {
  if (!isfinite(eps) || eps < 0.0f)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: eps %g must be finite and >= 0", fn,
                    (double)eps);
  return VKF_OK;
}

/* Forward of both norms; rms: no mean, no bias. */
static vkf_status norm_forward(vkf_context *ctx, bool rms, vkf_tensor out, vkf_tensor mean,
                               vkf_tensor rstd, vkf_tensor x, vkf_tensor weight, vkf_tensor bias,
                               float eps) {
  const char *fn = rms ? "vkf_rmsnorm_forward" : "vkf_layernorm_forward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *so = NULL, *sm = NULL, *sr = NULL, *sx = NULL, *sw = NULL, *sb = NULL;
  if (!(so = vkf_f32_operand(ctx, out, fn, "out")) ||
      (!rms && !optional(ctx, mean, fn, "mean", &sm)) || !optional(ctx, rstd, fn, "rstd", &sr) ||
      !(sx = vkf_f32_operand(ctx, x, fn, "x")) ||
      !(sw = vkf_f32_operand(ctx, weight, fn, "weight")) ||
      (!rms && !optional(ctx, bias, fn, "bias", &sb)))
    return ctx->env.error_status;
  vkf_status st;
  if (!vkf_same_shape(so, sx))
    return vkf_shape_error(ctx, fn, "out must have x's shape", so, sx);
  if ((st = check_param(ctx, fn, "weight", sw, sx)) != VKF_OK ||
      (st = check_param(ctx, fn, "bias", sb, sx)) != VKF_OK ||
      (st = check_stats(ctx, fn, "mean", sm, sx)) != VKF_OK ||
      (st = check_stats(ctx, fn, "rstd", sr, sx)) != VKF_OK || (st = check_eps(ctx, fn, eps)))
    return st;
  named outs[] = {{"out", so}, {"mean", sm}, {"rstd", sr}};
  named ins[] = {{"x", sx}, {"weight", sw}, {"bias", sb}};
  if ((st = check_overlaps(ctx, fn, outs, 3, ins, 3, true)) != VKF_OK)
    return st;

  const uint32_t C = last_dim(sx);
  vkf_op op = {.kind = rms ? VKF_OP_RMSNORM : VKF_OP_LAYERNORM};
  op.p.norm = (vkf_norm_params){(uint32_t)(sx->elements / C), C, eps,
                                (sb ? VKF_NORM_BIAS : 0) | (sm ? VKF_NORM_MEAN : 0) |
                                    (sr ? VKF_NORM_RSTD : 0)};
  if (rms) {
    op.n_tensors = 4;
    op.writes = 0x3;
    op.reads = 0xc;
    op.t[0] = vkf_slot_tref(so);
    if (sr)
      op.t[1] = vkf_slot_tref(sr);
    op.t[2] = vkf_slot_tref(sx);
    op.t[3] = vkf_slot_tref(sw);
  } else {
    op.n_tensors = 6;
    op.writes = 0x7;
    op.reads = 0x38;
    op.t[0] = vkf_slot_tref(so);
    if (sm)
      op.t[1] = vkf_slot_tref(sm);
    if (sr)
      op.t[2] = vkf_slot_tref(sr);
    op.t[3] = vkf_slot_tref(sx);
    op.t[4] = vkf_slot_tref(sw);
    if (sb)
      op.t[5] = vkf_slot_tref(sb);
  }
  return vkf_ctx_run(ctx, &op);
}

/* Backward of both norms; rms: no dbias, no mean. */
static vkf_status norm_backward(vkf_context *ctx, bool rms, vkf_tensor dx, vkf_tensor dweight,
                                vkf_tensor dbias, vkf_tensor dout, vkf_tensor x, vkf_tensor weight,
                                vkf_tensor mean, vkf_tensor rstd) {
  const char *fn = rms ? "vkf_rmsnorm_backward" : "vkf_layernorm_backward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *sdx = NULL, *sdw = NULL, *sdb = NULL, *sdo = NULL, *sx = NULL, *sw = NULL,
                  *sm = NULL, *sr = NULL;
  if (!optional(ctx, dx, fn, "dx", &sdx) || !optional(ctx, dweight, fn, "dweight", &sdw) ||
      (!rms && !optional(ctx, dbias, fn, "dbias", &sdb)) ||
      !(sdo = vkf_f32_operand(ctx, dout, fn, "dout")) || !(sx = vkf_f32_operand(ctx, x, fn, "x")) ||
      !(sw = vkf_f32_operand(ctx, weight, fn, "weight")) ||
      (!rms && !(sm = vkf_f32_operand(ctx, mean, fn, "mean"))) ||
      !(sr = vkf_f32_operand(ctx, rstd, fn, "rstd")))
    return ctx->env.error_status;
  if (!sdx && !sdw && !sdb)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    rms ? "%s: no gradient asked for (dx and dweight are both VKF_NO_TENSOR)"
                        : "%s: no gradient asked for (dx, dweight and dbias are all "
                          "VKF_NO_TENSOR)",
                    fn);
  vkf_status st;
  if (!vkf_same_shape(sdo, sx))
    return vkf_shape_error(ctx, fn, "dout must have x's shape", sdo, sx);
  if (sdx && !vkf_same_shape(sdx, sx))
    return vkf_shape_error(ctx, fn, "dx must have x's shape", sdx, sx);
  if ((st = check_param(ctx, fn, "weight", sw, sx)) != VKF_OK ||
      (st = check_param(ctx, fn, "dweight", sdw, sx)) != VKF_OK ||
      (st = check_param(ctx, fn, "dbias", sdb, sx)) != VKF_OK ||
      (st = check_stats(ctx, fn, "mean", sm, sx)) != VKF_OK ||
      (st = check_stats(ctx, fn, "rstd", sr, sx)) != VKF_OK)
    return st;
  named outs[] = {{"dx", sdx}, {"dweight", sdw}, {"dbias", sdb}};
  named ins[] = {{"dout", sdo}, {"x", sx}, {"weight", sw}, {"mean", sm}, {"rstd", sr}};
  if ((st = check_overlaps(ctx, fn, outs, 3, ins, 5, false)) != VKF_OK)
    return st;

  const uint32_t C = last_dim(sx);
  vkf_op op = {.kind = rms ? VKF_OP_RMSNORM_BACKWARD : VKF_OP_LAYERNORM_BACKWARD};
  op.p.norm_backward = (vkf_norm_backward_params){
      (uint32_t)(sx->elements / C), C,
      (sdx ? VKF_NORM_DX : 0) | (sdw ? VKF_NORM_DW : 0) | (sdb ? VKF_NORM_DB : 0)};
  uint32_t i = 0;
  op.t[i++] = sdx ? vkf_slot_tref(sdx) : (vkf_tref){0};
  op.t[i++] = sdw ? vkf_slot_tref(sdw) : (vkf_tref){0};
  if (!rms)
    op.t[i++] = sdb ? vkf_slot_tref(sdb) : (vkf_tref){0};
  op.writes = (1u << i) - 1; /* the gradients, which are also read (+=) */
  op.t[i++] = vkf_slot_tref(sdo);
  op.t[i++] = vkf_slot_tref(sx);
  op.t[i++] = vkf_slot_tref(sw);
  if (!rms)
    op.t[i++] = vkf_slot_tref(sm);
  op.t[i++] = vkf_slot_tref(sr);
  op.n_tensors = i;
  op.reads = (1u << i) - 1;
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_layernorm_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor mean, vkf_tensor rstd,
                                 vkf_tensor x, vkf_tensor weight, vkf_tensor bias, float eps) {
  return norm_forward(ctx, false, out, mean, rstd, x, weight, bias, eps);
}

vkf_status vkf_layernorm_backward(vkf_context *ctx, vkf_tensor dx, vkf_tensor dweight,
                                  vkf_tensor dbias, vkf_tensor dout, vkf_tensor x,
                                  vkf_tensor weight, vkf_tensor mean, vkf_tensor rstd) {
  return norm_backward(ctx, false, dx, dweight, dbias, dout, x, weight, mean, rstd);
}

vkf_status vkf_rmsnorm_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor rstd, vkf_tensor x,
                               vkf_tensor weight, float eps) {
  return norm_forward(ctx, true, out, VKF_NO_TENSOR, rstd, x, weight, VKF_NO_TENSOR, eps);
}

vkf_status vkf_rmsnorm_backward(vkf_context *ctx, vkf_tensor dx, vkf_tensor dweight,
                                vkf_tensor dout, vkf_tensor x, vkf_tensor weight, vkf_tensor rstd) {
  return norm_backward(ctx, true, dx, dweight, VKF_NO_TENSOR, dout, x, weight, VKF_NO_TENSOR, rstd);
}
