/* Optimiser ops on Vulkan: adamw (one dispatch for the whole model),
 * grad_norm (two dispatches: partials, then one workgroup), clip_grads. */
#include "vk.h"

/* Push constants: 8 bytes per operand, then the parameter struct. */
_Static_assert(7 * 8 + sizeof(vkf_adamw_params) <= 128, "adamw push constants");
_Static_assert(3 * 8 + sizeof(vkf_grad_norm_params) <= 128, "grad_norm push constants");
_Static_assert(2 * 8 + sizeof(vkf_clip_grads_params) <= 128, "clip_grads push constants");

/* Elements per workgroup of adamw and clip_grads (shaders/optim.glsl). */
static uint32_t chunk_of(uint32_t wg) {
  return 4 * wg;
}

/* vec4 loads and stores need every listed operand 16-byte aligned; views can
 * start on any 4-byte boundary, so otherwise the kernels use scalars. */
static uint32_t all_aligned(const vkf_op *op, uint32_t mask) {
  for (uint32_t i = 0; i < op->n_tensors; i++)
    if ((mask & (1u << i)) && op->t[i].buf && vkf_vk_addr(op->t[i]) % 16)
      return 0;
  return 1;
}

static vkf_status run_chunked(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader, uint32_t n,
                              uint32_t vec_mask, const void *params, size_t size) {
  uint32_t wg = vkf_vk_elementwise_wg(vk), gx, gy;
  uint32_t spec[2] = {wg, all_aligned(op, vec_mask)};
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, op, params, size, NULL);
  vkf_vk_grid_2d(vk, ((uint64_t)n + chunk_of(wg) - 1) / chunk_of(wg), &gx, &gy);
  return vkf_vk_op_dispatch(vk, op, shader, spec, 2, &pb, gx, gy, 1);
}

static vkf_status run_grad_norm(vkf_vk *vk, const vkf_op *op) {
  const vkf_grad_norm_params *p = &op->p.grad_norm;
  uint32_t wg = vkf_vk_elementwise_wg(vk);
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, op, p, sizeof(*p), NULL);
  /* Each stage declares only what it touches, so the hazard tracker puts a
   * barrier between them (stage 2 reads stage 1's partials) and none where
   * nothing depends. Operands: 0 out, 1 scratch, 2 x. */
  vkf_op stage = *op;
  stage.reads = 1u << 2;
  stage.writes = 1u << 1;
  uint32_t spec[2] = {wg, all_aligned(op, 1u << 2)};
  vkf_status st =
      vkf_vk_op_dispatch(vk, &stage, VKF_SHADER_grad_norm, spec, 2, &pb, p->n_partials, 1, 1);
  if (st != VKF_OK)
    return st;
  stage.reads = 1u << 1;
  stage.writes = 1u << 0;
  spec[1] = 0;
  return vkf_vk_op_dispatch(vk, &stage, VKF_SHADER_grad_norm_final, spec, 2, &pb, 1, 1, 1);
}

vkf_status vkf_vk_optim(vkf_vk *vk, const vkf_op *op) {
  switch (op->kind) {
  case VKF_OP_ADAMW:
    /* vec4 over params, grads, m, v */
    return run_chunked(vk, op, VKF_SHADER_adamw, op->p.adamw.n, 0xf, &op->p.adamw,
                       sizeof(op->p.adamw));
  case VKF_OP_GRAD_NORM:
    return run_grad_norm(vk, op);
  case VKF_OP_CLIP_GRADS:
    return run_chunked(vk, op, VKF_SHADER_clip_grads, op->p.clip_grads.n, 0x1, &op->p.clip_grads,
                       sizeof(op->p.clip_grads));
  default:
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED, "Vulkan backend: op %s is not an optim op",
                    vkf_op_name(op->kind));
  }
}
