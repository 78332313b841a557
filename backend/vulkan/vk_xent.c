/* The xent family on Vulkan: one workgroup per row, plus a one-workgroup
 * reduction for the mean/sum loss (forward) or the mean's scale (backward). */
#include "vk.h"

/* A power of two within the device's workgroup limit. */
static uint32_t cap_wg(const vkf_vk *vk, uint32_t wg) {
  while (wg > vk->base.info.max_workgroup_invocations && wg > 1)
    wg /= 2;
  return wg;
}

static uint32_t row_wg(const vkf_vk *vk, uint32_t V) {
  uint32_t wg = cap_wg(vk, vkf_vk_is_cpu_device(vk) ? 64 : 256);
  while (wg > 32 && wg / 2 >= V)
    wg /= 2;
  return wg;
}

static uint32_t single_wg(const vkf_vk *vk) {
  return cap_wg(vk, vkf_vk_is_cpu_device(vk) ? 64 : 1024);
}

static vkf_status rows_dispatch(vkf_vk *vk, const vkf_op *sub, vkf_shader_id shader) {
  const vkf_cross_entropy_params *p = &sub->p.cross_entropy;
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, sub, p, sizeof(*p), NULL);
  uint32_t wg = row_wg(vk, p->V), gx, gy;
  vkf_vk_grid_2d(vk, p->rows, &gx, &gy);
  return vkf_vk_op_dispatch(vk, sub, shader, &wg, 1, &pb, gx, gy, 1);
}

static vkf_status single_dispatch(vkf_vk *vk, const vkf_op *sub, vkf_shader_id shader) {
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, sub, &sub->p.cross_entropy, sizeof(sub->p.cross_entropy), NULL);
  uint32_t wg = single_wg(vk);
  return vkf_vk_op_dispatch(vk, sub, shader, &wg, 1, &pb, 1, 1, 1);
}

static vkf_status forward(vkf_vk *vk, const vkf_op *op) {
  /* operands: 0 losses, 1 loss, 2 log_prob, 3 logits, 4 targets, 5 weights */
  vkf_op sub = *op;
  sub.writes = op->writes & (1 | 4);
  vkf_status st = rows_dispatch(vk, &sub, VKF_SHADER_cross_entropy);
  if (st != VKF_OK || !op->t[1].buf)
    return st;
  sub.writes = 2;
  sub.reads = (op->reads & (16 | 32)) | 1;
  return single_dispatch(vk, &sub, VKF_SHADER_cross_entropy_reduce);
}

static vkf_status backward(vkf_vk *vk, const vkf_op *op) {
  /* operands: 0 dlogits, 1 dloss, 2 logits, 3 targets, 4 weights, 5 scale */
  if (op->p.cross_entropy.reduction != VKF_XENT_MEAN) {
    vkf_op sub = *op; /* the kernel's push constants always hold six addresses */
    sub.n_tensors = 6;
    sub.t[5] = (vkf_tref){0};
    return rows_dispatch(vk, &sub, VKF_SHADER_cross_entropy_backward);
  }
  vkf_buffer *scratch = NULL;
  vkf_status st = vkf_vk_buffer_create(&vk->base, sizeof(float), &scratch);
  if (st != VKF_OK)
    return st;
  vkf_op sub = *op;
  sub.n_tensors = 6;
  sub.t[5] = (vkf_tref){scratch, 0, sizeof(float)};
  sub.writes = 32;
  sub.reads = op->reads & (2 | 8 | 16);
  st = single_dispatch(vk, &sub, VKF_SHADER_cross_entropy_backward_scale);
  if (st == VKF_OK) {
    sub.writes = 1;
    sub.reads = op->reads | 32;
    st = rows_dispatch(vk, &sub, VKF_SHADER_cross_entropy_backward);
  }
  /* see vk_embed.c: freeing recorded-but-unfinished memory is safe */
  vkf_vk_buffer_destroy(&vk->base, scratch);
  return st;
}

vkf_status vkf_vk_xent(vkf_vk *vk, const vkf_op *op) {
  if (op->kind == VKF_OP_CROSS_ENTROPY)
    return forward(vk, op);
  return backward(vk, op);
}
