/* The infer family on Vulkan: kv_write, one workgroup per new row. */
#include "vk.h"

vkf_status vkf_vk_infer(vkf_vk *vk, const vkf_op *op) {
  if (op->kind != VKF_OP_KV_WRITE)
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED, "infer: op %s", vkf_op_name(op->kind));
  const vkf_kv_write_params *p = &op->p.kv_write;
  uint32_t w = p->Wk > p->Wv ? p->Wk : p->Wv;
  uint32_t wg = vkf_vk_is_cpu_device(vk) ? 64 : 128;
  while (wg > vk->base.info.max_workgroup_invocations)
    wg /= 2;
  while (wg > 32 && wg / 2 >= w)
    wg /= 2;
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, op, p, sizeof(*p), NULL);
  uint32_t gx, gy;
  vkf_vk_grid_2d(vk, (uint64_t)p->B * p->T, &gx, &gy);
  return vkf_vk_op_dispatch(vk, op, VKF_SHADER_kv_write, &wg, 1, &pb, gx, gy, 1);
}
