/* The xent family's public API: fused softmax cross-entropy forward and
 * backward. */
#include "context.h"

#include <stdio.h>
#include <string.h>

typedef struct xent_shape {
  uint32_t rows, V, inner;
} xent_shape;

/* Checks targets (i32, logits' shape without the class axis) and works out
 * the row layout. */
static vkf_status check_layout(vkf_context *ctx, const char *fn, const vkf_tensor_slot *logits,
                               const vkf_tensor_slot *tgt, int32_t class_axis, xent_shape *out) {
  int32_t nd = (int32_t)logits->ndim;
  int32_t axis = class_axis < 0 ? class_axis + nd : class_axis;
  if (axis < 0 || axis >= nd)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: class_axis %d is out of range for %d-D logits", fn, class_axis, nd);
  if (tgt->dtype != VKF_DTYPE_I32)
    return vkf_fail(&ctx->env, VKF_ERROR_DTYPE_MISMATCH, "%s: targets is %s; it must be i32", fn,
                    vkf_dtype_name(tgt->dtype));
  /* targets: logits' shape without the class axis ([1] for 1-D logits) */
  bool ok;
  if (nd == 1) {
    ok = tgt->ndim == 1 && tgt->shape[0] == 1;
  } else {
    ok = (int32_t)tgt->ndim == nd - 1;
    for (int32_t i = 0, j = 0; ok && i < nd; i++)
      if (i != axis)
        ok = tgt->shape[j++] == logits->shape[i];
  }
  if (!ok)
    return vkf_shape_error(ctx, fn, "targets must have logits' shape without the class axis", tgt,
                           logits);
  uint64_t outer = 1, inner = 1;
  for (int32_t i = 0; i < axis; i++)
    outer *= (uint64_t)logits->shape[i];
  for (int32_t i = axis + 1; i < nd; i++)
    inner *= (uint64_t)logits->shape[i];
  out->V = (uint32_t)logits->shape[axis];
  out->inner = (uint32_t)inner;
  out->rows = (uint32_t)(outer * inner);
  return VKF_OK;
}

static vkf_status check_weights(vkf_context *ctx, const char *fn, vkf_tensor weights, uint32_t V,
                                vkf_tensor_slot **out) {
  *out = NULL;
  if (!weights.id)
    return VKF_OK;
  vkf_tensor_slot *sw = vkf_f32_operand(ctx, weights, fn, "weights");
  if (!sw)
    return ctx->env.error_status;
  if (sw->ndim != 1 || sw->shape[0] != V)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: weights must be [%u] (one per class), not %u-D with %llu elements", fn, V,
                    sw->ndim, (unsigned long long)sw->elements);
  *out = sw;
  return VKF_OK;
}

/* Reads the targets back and checks each is ignore_index or in [0, V). */
static vkf_status check_targets(vkf_context *ctx, const char *fn, const vkf_tensor_slot *tgt,
                                uint32_t V, int32_t ignore_index) {
  int32_t *t = vkf_malloc(&ctx->env, (size_t)tgt->bytes);
  if (!t)
    return vkf_fail(&ctx->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s: target buffer", fn);
  vkf_status st = ctx->be->vt->read(ctx->be, vkf_slot_tref(tgt), t);
  for (uint64_t r = 0; st == VKF_OK && r < tgt->elements; r++)
    if (t[r] != ignore_index && (t[r] < 0 || (uint32_t)t[r] >= V))
      st = vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: target %d at row %llu is outside [0, %u) and is not ignore_index (%d)", fn,
                    t[r], (unsigned long long)r, V, ignore_index);
  vkf_free(&ctx->env, t);
  return st;
}

static bool reduction_ok(vkf_reduction r) {
  return r == VKF_REDUCTION_MEAN || r == VKF_REDUCTION_SUM || r == VKF_REDUCTION_NONE;
}

vkf_status vkf_cross_entropy(vkf_context *ctx, vkf_tensor losses, vkf_tensor loss,
                             vkf_tensor log_prob, vkf_tensor logits, vkf_tensor targets,
                             vkf_tensor weights, int32_t class_axis, int32_t ignore_index,
                             vkf_reduction reduction) {
  static const char fn[] = "vkf_cross_entropy";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *sls = vkf_f32_operand(ctx, losses, fn, "losses");
  vkf_tensor_slot *sx = sls ? vkf_f32_operand(ctx, logits, fn, "logits") : NULL;
  vkf_tensor_slot *st = sx ? vkf_ctx_tensor(ctx, targets, "vkf_cross_entropy: targets") : NULL;
  if (!st)
    return ctx->env.error_status;
  vkf_tensor_slot *sl = NULL, *slp = NULL, *sw = NULL;
  if (loss.id && !(sl = vkf_f32_operand(ctx, loss, fn, "loss")))
    return ctx->env.error_status;
  if (log_prob.id && !(slp = vkf_f32_operand(ctx, log_prob, fn, "log_prob")))
    return ctx->env.error_status;
  if (!reduction_ok(reduction))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: unknown reduction %d", fn,
                    (int)reduction);
  xent_shape xs;
  vkf_status s = check_layout(ctx, fn, sx, st, class_axis, &xs);
  if (s == VKF_OK)
    s = check_weights(ctx, fn, weights, xs.V, &sw);
  if (s != VKF_OK)
    return s;
  if (!vkf_same_shape(sls, st))
    return vkf_shape_error(ctx, fn, "losses must have targets' shape", sls, st);
  if (sl && sl->elements != 1)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH, "%s: loss must have 1 element (has %llu)",
                    fn, (unsigned long long)sl->elements);
  if (sl && reduction == VKF_REDUCTION_NONE)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: reduction NONE has no loss output (pass VKF_NO_TENSOR)", fn);
  if (slp && !vkf_same_shape(slp, sx))
    return vkf_shape_error(ctx, fn, "log_prob must have logits' shape", slp, sx);
  vkf_tensor_slot *outs[3] = {sls, sl, slp}, *ins[3] = {sx, st, sw};
  for (int i = 0; i < 3; i++) {
    for (int j = 0; outs[i] && j < 3; j++)
      if ((ins[j] && vkf_slots_overlap(outs[i], ins[j])) ||
          (j > i && outs[j] && vkf_slots_overlap(outs[i], outs[j])))
        return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                        "%s: losses, loss and log_prob must not share memory with each other or "
                        "with the inputs",
                        fn);
  }
  if ((s = check_targets(ctx, fn, st, xs.V, ignore_index)) != VKF_OK)
    return s;

  vkf_op op = {.kind = VKF_OP_CROSS_ENTROPY, .n_tensors = 6, .writes = 1, .reads = 0x18};
  op.t[0] = vkf_slot_tref(sls);
  op.t[3] = vkf_slot_tref(sx);
  op.t[4] = vkf_slot_tref(st);
  vkf_cross_entropy_params *p = &op.p.cross_entropy;
  *p = (vkf_cross_entropy_params){xs.rows, xs.V, xs.inner, ignore_index, (uint32_t)reduction, 0};
  if (sl) {
    op.t[1] = vkf_slot_tref(sl);
    op.writes |= 2;
    p->flags |= VKF_XENTF_LOSS;
  }
  if (slp) {
    op.t[2] = vkf_slot_tref(slp);
    op.writes |= 4;
    p->flags |= VKF_XENTF_LOG_PROB;
  }
  if (sw) {
    op.t[5] = vkf_slot_tref(sw);
    op.reads |= 0x20;
    p->flags |= VKF_XENTF_WEIGHTS;
  }
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_cross_entropy_backward(vkf_context *ctx, vkf_tensor dlogits, vkf_tensor dloss,
                                      vkf_tensor logits, vkf_tensor targets, vkf_tensor weights,
                                      int32_t class_axis, int32_t ignore_index,
                                      vkf_reduction reduction) {
  static const char fn[] = "vkf_cross_entropy_backward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *sdx = vkf_f32_operand(ctx, dlogits, fn, "dlogits");
  vkf_tensor_slot *sdl = sdx ? vkf_f32_operand(ctx, dloss, fn, "dloss") : NULL;
  vkf_tensor_slot *sx = sdl ? vkf_f32_operand(ctx, logits, fn, "logits") : NULL;
  vkf_tensor_slot *st =
      sx ? vkf_ctx_tensor(ctx, targets, "vkf_cross_entropy_backward: targets") : NULL;
  if (!st)
    return ctx->env.error_status;
  if (!reduction_ok(reduction))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: unknown reduction %d", fn,
                    (int)reduction);
  xent_shape xs;
  vkf_tensor_slot *sw = NULL;
  vkf_status s = check_layout(ctx, fn, sx, st, class_axis, &xs);
  if (s == VKF_OK)
    s = check_weights(ctx, fn, weights, xs.V, &sw);
  if (s != VKF_OK)
    return s;
  if (!vkf_same_shape(sdx, sx))
    return vkf_shape_error(ctx, fn, "dlogits must have logits' shape", sdx, sx);
  if (reduction == VKF_REDUCTION_NONE ? !vkf_same_shape(sdl, st) : sdl->elements != 1)
    return vkf_shape_error(ctx, fn,
                           reduction == VKF_REDUCTION_NONE
                               ? "dloss must have targets' shape for reduction NONE"
                               : "dloss must have 1 element for reductions MEAN and SUM",
                           sdl, st);
  if (vkf_slots_overlap(sdx, sdl) || vkf_slots_overlap(sdx, sx) || vkf_slots_overlap(sdx, st) ||
      (sw && vkf_slots_overlap(sdx, sw)))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: dlogits must not share memory with the inputs", fn);
  if ((s = check_targets(ctx, fn, st, xs.V, ignore_index)) != VKF_OK)
    return s;

  vkf_op op = {.kind = VKF_OP_CROSS_ENTROPY_BACKWARD, .n_tensors = 5, .writes = 1, .reads = 0xf};
  op.t[0] = vkf_slot_tref(sdx);
  op.t[1] = vkf_slot_tref(sdl);
  op.t[2] = vkf_slot_tref(sx);
  op.t[3] = vkf_slot_tref(st);
  vkf_cross_entropy_params *p = &op.p.cross_entropy;
  *p = (vkf_cross_entropy_params){xs.rows, xs.V, xs.inner, ignore_index, (uint32_t)reduction, 0};
  if (sw) {
    op.t[4] = vkf_slot_tref(sw);
    op.reads |= 0x10;
    p->flags |= VKF_XENTF_WEIGHTS;
  }
  return vkf_ctx_run(ctx, &op);
}
