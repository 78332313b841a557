/* gelu, silu, swiglu (forward and backward) on Vulkan: one element, or one
 * vec4 when every operand allows it, per invocation. */
#include "vk.h"

/* True when every present operand starts on a 16-byte boundary. */
static bool all_aligned16(const vkf_op *op) {
  for (uint32_t i = 0; i < op->n_tensors; i++)
    if (op->t[i].buf && vkf_vk_addr(op->t[i]) % 16 != 0)
      return false;
  return true;
}

static vkf_status run(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader, uint32_t spec1,
                      uint32_t units, const void *params, size_t size) {
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, op, params, size, NULL);
  uint32_t spec[2] = {vkf_vk_elementwise_wg(vk), spec1}, gx, gy;
  vkf_vk_grid_2d(vk, ((uint64_t)units + spec[0] - 1) / spec[0], &gx, &gy);
  return vkf_vk_op_dispatch(vk, op, shader, spec, 2, &pb, gx, gy, 1);
}

static vkf_status unary(vkf_vk *vk, const vkf_op *op, vkf_shader_id scalar, vkf_shader_id vec) {
  vkf_act_params p = op->p.act;
  bool vec4 = p.n % 4 == 0 && all_aligned16(op);
  if (vec4)
    p.n /= 4;
  return run(vk, op, vec4 ? vec : scalar, p.mode, p.n, &p, sizeof(p));
}

static vkf_status swiglu(vkf_vk *vk, const vkf_op *op, vkf_shader_id scalar, vkf_shader_id vec) {
  vkf_swiglu_params p = op->p.swiglu;
  bool vec4 = p.f % 4 == 0 && all_aligned16(op);
  if (vec4)
    p.f /= 4;
  return run(vk, op, vec4 ? vec : scalar, 0, p.rows * p.f, &p, sizeof(p));
}

vkf_status vkf_vk_act(vkf_vk *vk, const vkf_op *op) {
  switch (op->kind) {
  case VKF_OP_GELU:
    return unary(vk, op, VKF_SHADER_gelu, VKF_SHADER_gelu_vec4);
  case VKF_OP_GELU_BACKWARD:
    return unary(vk, op, VKF_SHADER_gelu_backward, VKF_SHADER_gelu_backward_vec4);
  case VKF_OP_SILU:
    return unary(vk, op, VKF_SHADER_silu, VKF_SHADER_silu_vec4);
  case VKF_OP_SILU_BACKWARD:
    return unary(vk, op, VKF_SHADER_silu_backward, VKF_SHADER_silu_backward_vec4);
  case VKF_OP_SWIGLU:
    return swiglu(vk, op, VKF_SHADER_swiglu, VKF_SHADER_swiglu_vec4);
  case VKF_OP_SWIGLU_BACKWARD:
    return swiglu(vk, op, VKF_SHADER_swiglu_backward, VKF_SHADER_swiglu_backward_vec4);
  default:
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED, "vk_act: op %s is not an activation",
                    vkf_op_name(op->kind));
  }
}
