/* The optimiser API: AdamW over flat parameter buffers, the global gradient
 * norm and gradient clipping. Argument checks, then one vkf_op each.
 *
 * Design notes
 * - One fused pass (op "adamw") updates every parameter of a model: params,
 *   grads, m and v are flat buffers of the same size (llm.c's layout), so a
 *   step is one dispatch however many tensors the model has.
 * - Which elements decay comes from a segment table on the device (i32
 *   [S, 2] rows of start and flags) rather than from a per-element mask or a
 *   required ordering of the flat buffer: a mask would add a read per element
 *   to a memory-bound kernel (and a buffer as large as the model), and an
 *   ordering constraint (decayed tensors contiguous) would dictate the
 *   training code's layout. The table costs each workgroup two binary
 *   searches in a few hundred bytes that stay in cache; a workgroup whose
 *   range lies inside one segment (all but about S of them) then runs with a
 *   uniform flag, and only those that straddle a boundary look each element
 *   up. Any tensor order and any number of segments work, boundaries need no
 *   alignment, and the per-segment flags word leaves room for more
 *   per-tensor options later (a learning rate multiplier, no update).
 * - Every hyperparameter arrives from the host per call (schedules), and the
 *   frontend folds them, in double, into the few scalars the kernel uses
 *   (vkf_adamw_params), so variants (no bias correction, the "epsilon hat"
 *   form, L2 instead of decoupled decay) cost the kernel nothing.
 * - The gradient norm is a two-stage reduction with a caller-allocated
 *   scratch tensor (vkf_grad_norm_scratch_size): the training code allocates
 *   everything once, and a step allocates nothing. Clipping reads the norm on
 *   the device, so a training step has no host round trip; the fused path
 *   (vkf_optim_step's grad_norm argument) saves a read and a write of the
 *   gradients over vkf_clip_grads().
 * - Open for what comes next: desc->kind selects the optimiser (Lion uses m
 *   only, v = VKF_NO_TENSOR), and mixed precision (f16/bf16 parameters with
 *   f32 master weights) adds an output operand for the low-precision copy,
 *   written in the same pass.
 */
#include "context.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Stage 1 of the norm uses one partial per GRAD_NORM_CHUNK elements, at most
 * GRAD_NORM_MAX_PARTIALS (enough workgroups to fill a large GPU; stage 2 is
 * one workgroup adding that many numbers). Backend-independent, so the
 * scratch size is too. */
#define GRAD_NORM_CHUNK 8192u
#define GRAD_NORM_MAX_PARTIALS 1024u

static uint32_t grad_norm_partials(uint64_t elements) {
  uint64_t p = (elements + GRAD_NORM_CHUNK - 1) / GRAD_NORM_CHUNK;
  if (p < 1)
    p = 1;
  return p > GRAD_NORM_MAX_PARTIALS ? GRAD_NORM_MAX_PARTIALS : (uint32_t)p;
}

/* A 1-element f32 tensor (the norm). */
static vkf_tensor_slot *norm_operand(vkf_context *ctx, vkf_tensor t, const char *fn,
                                     const char *name) {
  vkf_tensor_slot *s = vkf_f32_operand(ctx, t, fn, name);
  if (s && s->elements != 1) {
    char sh[96];
    vkf_shape_str(s, sh, sizeof(sh));
    vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH, "%s: %s must have 1 element (is %s)", fn, name,
             sh);
    return NULL;
  }
  return s;
}

vkf_status vkf_optim_segments_create(vkf_context *ctx, const vkf_optim_segment *segments,
                                     uint32_t count, uint64_t elements, vkf_tensor *out) {
  static const char fn[] = "vkf_optim_segments_create";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!out || (!segments && count))
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "%s: segments and out are required", fn);
  *out = VKF_NO_TENSOR;
  if (count == 0)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: at least one segment is needed",
                    fn);
  if (elements == 0 || elements > UINT32_MAX)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: %llu elements (a flat buffer has 1 to 2^32-1)", fn,
                    (unsigned long long)elements);
  if (segments[0].start != 0)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: the first segment must start at 0 (starts at %llu)", fn,
                    (unsigned long long)segments[0].start);
  for (uint32_t i = 0; i < count; i++) {
    if (segments[i].flags & ~(uint32_t)VKF_OPTIM_DECAY)
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: segment %u: unknown flags 0x%x",
                      fn, i, segments[i].flags);
    if (segments[i].start >= elements)
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: segment %u starts at %llu, past the %llu elements", fn, i,
                      (unsigned long long)segments[i].start, (unsigned long long)elements);
    if (i && segments[i].start <= segments[i - 1].start)
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: segment %u starts at %llu, not after segment %u (%llu)", fn, i,
                      (unsigned long long)segments[i].start, i - 1,
                      (unsigned long long)segments[i - 1].start);
  }
  int32_t *rows = vkf_malloc(&ctx->env, (size_t)count * 2 * sizeof(int32_t));
  if (!rows)
    return vkf_fail(&ctx->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s: %u segments", fn, count);
  for (uint32_t i = 0; i < count; i++) {
    uint32_t start = (uint32_t)segments[i].start; /* < 2^32: read as unsigned by the kernels */
    memcpy(&rows[2 * i], &start, 4);
    memcpy(&rows[2 * i + 1], &segments[i].flags, 4);
  }
  int64_t shape[2] = {count, 2};
  vkf_tensor t;
  vkf_status st = vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, shape, &t);
  if (st == VKF_OK) {
    st = vkf_tensor_write(ctx, t, rows, (size_t)count * 2 * sizeof(int32_t));
    if (st != VKF_OK)
      vkf_tensor_destroy(ctx, t); /* succeeds: keeps the write's error */
    else
      *out = t;
  }
  vkf_free(&ctx->env, rows);
  return st;
}

/* Range checks of the hyperparameters; fills the kernel's scalars. */
vkf_status vkf_adamw_params_fill(vkf_context *ctx, const vkf_optim_desc *d, uint64_t n, bool clip,
                                 vkf_adamw_params *p) {
  static const char fn[] = "vkf_optim_step";
  const uint32_t known =
      VKF_OPTIM_L2_DECAY | VKF_OPTIM_EPS_HAT | VKF_OPTIM_NO_BIAS_CORRECTION | VKF_OPTIM_EXPLICIT;
  if (d->flags & ~known)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn,
                    d->flags & ~known);
  bool explicit_ = d->flags & VKF_OPTIM_EXPLICIT;
  float beta1 = d->beta1 == 0 && !explicit_ ? 0.9f : d->beta1;
  float beta2 = d->beta2 == 0 && !explicit_ ? 0.999f : d->beta2;
  float eps = d->eps == 0 && !explicit_ ? 1e-8f : d->eps;
  float grad_scale = d->grad_scale == 0 ? 1.0f : d->grad_scale;
  if (!(d->lr >= 0) || !isfinite(d->lr))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: lr %g must be finite and >= 0", fn,
                    (double)d->lr);
  if (!(beta1 >= 0 && beta1 < 1))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: beta1 %g is outside [0, 1)", fn,
                    (double)beta1);
  if (!(beta2 >= 0 && beta2 < 1))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: beta2 %g is outside [0, 1)", fn,
                    (double)beta2);
  if (!(eps >= 0) || !isfinite(eps))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: eps %g must be finite and >= 0", fn,
                    (double)eps);
  if (!(d->weight_decay >= 0) || !isfinite(d->weight_decay))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: weight_decay %g must be finite and >= 0", fn, (double)d->weight_decay);
  if (!(grad_scale > 0) || !isfinite(grad_scale))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: grad_scale %g must be finite and > 0 (0 = 1)", fn, (double)d->grad_scale);
  if (clip && (!(d->max_grad_norm > 0) || !isfinite(d->max_grad_norm)))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: a grad_norm tensor needs max_grad_norm finite and > 0 (is %g)", fn,
                    (double)d->max_grad_norm);
  if (!clip && d->max_grad_norm != 0)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: max_grad_norm %g needs a grad_norm tensor (from vkf_grad_norm)", fn,
                    (double)d->max_grad_norm);
  bool correct = !(d->flags & VKF_OPTIM_NO_BIAS_CORRECTION);
  if (correct && d->step == 0)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: step must be >= 1 (the first update is step 1)", fn);

  /* Bias corrections in double: 1 - beta^t loses all precision in float for
   * beta close to 1 and large t. */
  double bc1 = correct ? 1.0 - pow((double)beta1, (double)d->step) : 1.0;
  double bc2 = correct ? 1.0 - pow((double)beta2, (double)d->step) : 1.0;
  double lr = d->lr, wd = d->weight_decay;
  memset(p, 0, sizeof(*p));
  p->n = (uint32_t)n;
  p->beta1 = beta1;
  p->beta2 = beta2;
  p->omb1 = (float)(1.0 - (double)beta1);
  p->omb2 = (float)(1.0 - (double)beta2);
  p->eps = eps;
  if (d->flags & VKF_OPTIM_EPS_HAT) {
    /* lr * m_hat / (sqrt(v_hat) + eps_hat) with the corrections moved into
     * the step size: lr_t = lr * sqrt(bc2) / bc1, then m / (sqrt(v) + eps). */
    p->lr = (float)(lr * sqrt(bc2) / bc1);
    p->inv_bc1 = 1.0f;
    p->inv_bc2 = 1.0f;
  } else {
    p->lr = (float)lr;
    p->inv_bc1 = (float)(1.0 / bc1);
    p->inv_bc2 = (float)(1.0 / bc2);
  }
  if (d->flags & VKF_OPTIM_L2_DECAY)
    p->l2 = (float)wd;
  else
    p->lr_wd = (float)(lr * wd);
  p->max_norm = clip ? d->max_grad_norm : 0.0f;
  p->grad_scale = grad_scale;
  return VKF_OK;
}

vkf_status vkf_optim_step(vkf_context *ctx, vkf_tensor params, vkf_tensor grads, vkf_tensor m,
                          vkf_tensor v, vkf_tensor segments, vkf_tensor grad_norm,
                          const vkf_optim_desc *desc) {
  static const char fn[] = "vkf_optim_step";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!desc)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "%s: desc is required", fn);
  if (desc->kind != VKF_OPTIM_ADAMW)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: unknown optimiser kind %d", fn,
                    (int)desc->kind);
  vkf_tensor_slot *sp = vkf_f32_operand(ctx, params, fn, "params");
  vkf_tensor_slot *sg = sp ? vkf_f32_operand(ctx, grads, fn, "grads") : NULL;
  vkf_tensor_slot *sm = sg ? vkf_f32_operand(ctx, m, fn, "m") : NULL;
  vkf_tensor_slot *sv = sm ? vkf_f32_operand(ctx, v, fn, "v") : NULL;
  if (!sv)
    return ctx->env.error_status;
  vkf_tensor_slot *ss = NULL, *sn = NULL;
  if (segments.id) {
    if (!(ss = vkf_ctx_tensor(ctx, segments, "vkf_optim_step: segments")))
      return ctx->env.error_status;
    if (ss->dtype != VKF_DTYPE_I32)
      return vkf_fail(&ctx->env, VKF_ERROR_DTYPE_MISMATCH,
                      "%s: segments is %s; a segment table is i32 [S, 2]", fn,
                      vkf_dtype_name(ss->dtype));
    if (ss->ndim != 2 || ss->shape[1] != 2) {
      char sh[96];
      vkf_shape_str(ss, sh, sizeof(sh));
      return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                      "%s: segments is %s; a segment table is [S, 2]", fn, sh);
    }
  }
  if (grad_norm.id && !(sn = norm_operand(ctx, grad_norm, fn, "grad_norm")))
    return ctx->env.error_status;
  const vkf_tensor_slot *state[4] = {sp, sg, sm, sv};
  static const char *names[4] = {"params", "grads", "m", "v"};
  for (int i = 1; i < 4; i++)
    if (state[i]->elements != sp->elements)
      return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH, "%s: %s has %llu elements, params %llu",
                      fn, names[i], (unsigned long long)state[i]->elements,
                      (unsigned long long)sp->elements);
  for (int i = 0; i < 4; i++) {
    for (int j = i + 1; j < 4; j++)
      if (vkf_slots_overlap(state[i], state[j]))
        return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: %s and %s share memory", fn,
                        names[i], names[j]);
    if ((ss && vkf_slots_overlap(state[i], ss)) || (sn && vkf_slots_overlap(state[i], sn)))
      return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: %s shares memory with segments or grad_norm", fn, names[i]);
  }
  vkf_op op = {.kind = VKF_OP_ADAMW, .n_tensors = 7, .writes = 0xd, .reads = 0xf};
  vkf_status st = vkf_adamw_params_fill(ctx, desc, sp->elements, sn != NULL, &op.p.adamw);
  if (st != VKF_OK)
    return st;
  op.t[0] = vkf_slot_tref(sp);
  op.t[1] = vkf_slot_tref(sg);
  op.t[2] = vkf_slot_tref(sm);
  op.t[3] = vkf_slot_tref(sv);
  if (ss) {
    op.t[4] = vkf_slot_tref(ss);
    op.reads |= 1u << 4;
    op.p.adamw.flags |= VKF_ADAMW_P_SEGMENTS;
    op.p.adamw.n_segments = (uint32_t)ss->shape[0];
  }
  if (sn) {
    op.t[5] = vkf_slot_tref(sn);
    op.reads |= 1u << 5;
    op.p.adamw.flags |= VKF_ADAMW_P_CLIP;
  }
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_grad_norm_scratch_size(const vkf_context *ctx, uint64_t elements,
                                      uint64_t *scratch_elements) {
  if (!ctx || !scratch_elements)
    return VKF_ERROR_NULL_POINTER;
  *scratch_elements = grad_norm_partials(elements);
  return VKF_OK;
}

vkf_status vkf_grad_norm(vkf_context *ctx, vkf_tensor norm, vkf_tensor scratch, vkf_tensor grads) {
  static const char fn[] = "vkf_grad_norm";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *sn = norm_operand(ctx, norm, fn, "norm");
  vkf_tensor_slot *ss = sn ? vkf_f32_operand(ctx, scratch, fn, "scratch") : NULL;
  vkf_tensor_slot *sg = ss ? vkf_f32_operand(ctx, grads, fn, "grads") : NULL;
  if (!sg)
    return ctx->env.error_status;
  uint32_t partials = grad_norm_partials(sg->elements);
  if (ss->elements < partials)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: scratch has %llu elements; %llu gradients need %u "
                    "(vkf_grad_norm_scratch_size)",
                    fn, (unsigned long long)ss->elements, (unsigned long long)sg->elements,
                    partials);
  if (vkf_slots_overlap(sn, ss) || vkf_slots_overlap(sn, sg) || vkf_slots_overlap(ss, sg))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: norm, scratch and grads must not share memory", fn);
  vkf_op op = {.kind = VKF_OP_GRAD_NORM, .n_tensors = 3, .writes = 3, .reads = 6};
  op.t[0] = vkf_slot_tref(sn);
  op.t[1] = vkf_slot_tref(ss);
  op.t[1].bytes = (uint64_t)partials * 4; /* only the partials are touched */
  op.t[2] = vkf_slot_tref(sg);
  op.p.grad_norm = (vkf_grad_norm_params){(uint32_t)sg->elements, partials};
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_clip_grads(vkf_context *ctx, vkf_tensor grads, vkf_tensor norm, float max_norm) {
  static const char fn[] = "vkf_clip_grads";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *sg = vkf_f32_operand(ctx, grads, fn, "grads");
  vkf_tensor_slot *sn = sg ? norm_operand(ctx, norm, fn, "norm") : NULL;
  if (!sn)
    return ctx->env.error_status;
  if (!(max_norm > 0) || !isfinite(max_norm))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: max_norm %g must be finite and > 0",
                    fn, (double)max_norm);
  if (vkf_slots_overlap(sg, sn))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: grads and norm must not share memory", fn);
  vkf_op op = {.kind = VKF_OP_CLIP_GRADS, .n_tensors = 2, .writes = 1, .reads = 3};
  op.t[0] = vkf_slot_tref(sg);
  op.t[1] = vkf_slot_tref(sn);
  op.p.clip_grads = (vkf_clip_grads_params){(uint32_t)sg->elements, max_norm};
  return vkf_ctx_run(ctx, &op);
}

vkf_status vkf_grad_norm_read(vkf_context *ctx, vkf_tensor norm, float *out) {
  static const char fn[] = "vkf_grad_norm_read";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!out)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "%s: out is required", fn);
  if (!norm_operand(ctx, norm, fn, "norm"))
    return ctx->env.error_status;
  return vkf_tensor_read(ctx, norm, out, sizeof(float));
}
