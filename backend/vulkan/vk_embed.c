/* The embed family on Vulkan: embedding, embedding_backward (dwte by token
 * segment, dwpe by position) and the two-stage bias gradient. */
#include "vk.h"

/* `want` (a power of two) within the device's workgroup limit, then halved
 * while half of it still covers n, down to lo. */
static uint32_t pick_wg(const vkf_vk *vk, uint32_t want, uint32_t lo, uint32_t n) {
  while (want > vk->base.info.max_workgroup_invocations && want > 1)
    want /= 2;
  while (want > lo && want / 2 >= n)
    want /= 2;
  return want;
}

static vkf_status embedding(vkf_vk *vk, const vkf_op *op) {
  const vkf_embedding_params *p = &op->p.embedding;
  uint32_t wg = pick_wg(vk, vkf_vk_is_cpu_device(vk) ? 64 : 256, 32, p->C), gx, gy;
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, op, p, sizeof(*p), NULL);
  vkf_vk_grid_2d(vk, p->N, &gx, &gy);
  return vkf_vk_op_dispatch(vk, op, VKF_SHADER_embedding, &wg, 1, &pb, gx, gy, 1);
}

static vkf_status embedding_backward(vkf_vk *vk, const vkf_op *op) {
  vkf_embedding_backward_params p = op->p.embedding_backward;
  if (op->t[0].buf) {
    /* dwte: one workgroup per (segment, group of WG columns). Each dispatch
     * declares only what it touches, so the dwpe one needs no barrier. */
    uint32_t wg = pick_wg(vk, vkf_vk_is_cpu_device(vk) ? 64 : 128, 32, p.C);
    p.col_groups = (p.C + wg - 1) / wg;
    vkf_op sub = *op;
    sub.writes = 1;
    sub.reads = 1 | 4 | 8;
    vkf_vk_push pb;
    vkf_vk_push_build(&pb, &sub, &p, sizeof(p), NULL);
    uint32_t gx, gy;
    vkf_vk_grid_2d(vk, (uint64_t)p.U * p.col_groups, &gx, &gy);
    vkf_status st =
        vkf_vk_op_dispatch(vk, &sub, VKF_SHADER_embedding_backward, &wg, 1, &pb, gx, gy, 1);
    if (st != VKF_OK)
      return st;
  }
  if (op->t[1].buf) {
    vkf_op sub = *op;
    sub.writes = 2;
    sub.reads = 2 | 4;
    return vkf_vk_run_elementwise(vk, &sub, VKF_SHADER_embedding_backward_pos, p.T * p.C, &p,
                                  sizeof(p));
  }
  return VKF_OK;
}

/* Stage 1: workgroups of CX columns x WG/CX row lanes, each summing one
 * chunk of rows of one column block into partial[chunk, N]; enough chunks
 * that the device is full. Stage 2: one invocation per column adds the
 * chunks' sums in order. The partition depends only on the shape and the
 * device type, so a device gives the same bits on every run. */
static vkf_status bias_backward(vkf_vk *vk, const vkf_op *op) {
  vkf_bias_backward_params p = op->p.bias_backward;
  bool cpu = vkf_vk_is_cpu_device(vk);
  uint32_t wg = pick_wg(vk, cpu ? 64 : 256, 64, 0);
  uint32_t cx = pick_wg(vk, cpu ? 16 : 64, 8, p.N);
  cx = cx > wg ? wg : cx;
  uint32_t ry = wg / cx;
  uint32_t col_blocks = (p.N + cx - 1) / cx;
  uint32_t target = cpu ? 16 : 1024; /* workgroups in stage 1 */
  uint32_t chunks = (target + col_blocks - 1) / col_blocks;
  uint32_t max_chunks = (p.rows + ry - 1) / ry;
  chunks = chunks < 1 ? 1 : chunks > max_chunks ? max_chunks : chunks;
  uint32_t chunk_rows = (p.rows + chunks - 1) / chunks;
  chunk_rows = (chunk_rows + ry - 1) / ry * ry; /* whole rounds of the row lanes */
  p.chunk_rows = chunk_rows;
  p.chunks = (p.rows + chunk_rows - 1) / chunk_rows;

  uint64_t bytes = (uint64_t)p.chunks * p.N * sizeof(float);
  vkf_buffer *scratch = NULL;
  vkf_status st = vkf_vk_buffer_create(&vk->base, bytes, &scratch);
  if (st != VKF_OK)
    return st;
  vkf_op sub = *op;
  sub.n_tensors = 3;
  sub.t[2] = (vkf_tref){scratch, 0, bytes};
  sub.writes = 4;
  sub.reads = 2;
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, &sub, &p, sizeof(p), NULL);
  uint32_t gx, gy, spec[2] = {wg, cx};
  vkf_vk_grid_2d(vk, (uint64_t)col_blocks * p.chunks, &gx, &gy);
  st = vkf_vk_op_dispatch(vk, &sub, VKF_SHADER_bias_backward, spec, 2, &pb, gx, gy, 1);
  if (st == VKF_OK) {
    sub.writes = 1;
    sub.reads = 1 | 4;
    st = vkf_vk_run_elementwise(vk, &sub, VKF_SHADER_bias_backward_final, p.N, &p, sizeof(p));
  }
  /* Safe while recorded work still uses it: a later user of this memory is
   * ordered by address-based hazard tracking, and a block is only returned
   * to the driver after waiting for the device. */
  vkf_vk_buffer_destroy(&vk->base, scratch);
  return st;
}

vkf_status vkf_vk_embed(vkf_vk *vk, const vkf_op *op) {
  switch (op->kind) {
  case VKF_OP_EMBEDDING:
    return embedding(vk, op);
  case VKF_OP_EMBEDDING_BACKWARD:
    return embedding_backward(vk, op);
  case VKF_OP_BIAS_BACKWARD:
    return bias_backward(vk, op);
  default:
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED, "embed: op %s", vkf_op_name(op->kind));
  }
}
