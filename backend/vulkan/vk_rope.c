/* The rope family on Vulkan: one workgroup per token, all heads. */
#include "vk.h"

vkf_status vkf_vk_rope(vkf_vk *vk, const vkf_op *op) {
  const vkf_rope_params *p = &op->p.rope;
  /* a power of two; also the number of angles computed per shared-memory
   * round, so no larger than the token's pairs need */
  uint32_t wg = vkf_vk_is_cpu_device(vk) ? 64 : 256, pairs = p->H * p->pairs;
  while (wg > vk->base.info.max_workgroup_invocations)
    wg /= 2;
  while (wg > 32 && wg / 2 >= pairs)
    wg /= 2;
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, op, p, sizeof(*p), NULL);
  uint32_t gx, gy;
  vkf_vk_grid_2d(vk, (uint64_t)p->B * p->T, &gx, &gy);
  vkf_shader_id shader = op->kind == VKF_OP_ROPE ? VKF_SHADER_rope : VKF_SHADER_rope_backward;
  return vkf_vk_op_dispatch(vk, op, shader, &wg, 1, &pb, gx, gy, 1);
}
