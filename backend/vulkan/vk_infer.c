/* The infer family on Vulkan: kv_write (one workgroup per new row) and
 * matvec (shaders/matvec.comp). */
#include "vk.h"

static bool aligned16(const vkf_op *op) {
  for (uint32_t i = 0; i < 4; i++)
    if (op->t[i].buf && vkf_vk_addr(op->t[i]) % 16 != 0)
      return false;
  return true;
}

/* Workgroup size and lanes per column (NT) or k-slices (NN). lavapipe runs a
 * workgroup as SIMD-8 vectors on one thread, where a barrier is a coroutine
 * switch: 64 invocations, 8 lanes per NT column (one vector reads 8
 * consecutive floats, or vec4s, of a row), no slices for NN. GPUs: 256
 * invocations, 32 lanes per NT column, 4 slices for NN (more invocations per
 * column keep more loads in flight). The row count is a specialization
 * constant (one pipeline per count). */
static vkf_status matvec(vkf_vk *vk, const vkf_op *op) {
  const vkf_matmul_params *p = &op->p.matmul;
  if (p->M < 1 || p->M > VKF_MATVEC_MAX_M || p->batch != 1 || (p->flags & VKF_MM_TRANS_A))
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED, "matvec: %u rows, batch %u, flags 0x%x",
                    p->M, p->batch, p->flags);
  const bool cpu = vkf_vk_is_cpu_device(vk), nt = p->flags & VKF_MM_TRANS_B;
  if (vk->caps.texel_reads) { /* lavapipe: vector fetches beat lane loops */
    bool done;
    vkf_status st = vkf_vk_matmul_op_tex(vk, op, &done);
    if (st != VKF_OK || done)
      return st;
  }
  const bool vec4 = aligned16(op) && p->K % 4 == 0 && p->lda % 4 == 0 && p->ldb % 4 == 0 &&
                    p->ldc % 4 == 0 && (nt || p->N % 4 == 0);
  uint32_t wg = cpu ? 64 : 256, lanes = cpu ? (nt ? 8 : 1) : (nt ? 32 : 4);
  while (wg > vk->base.info.max_workgroup_invocations && wg > lanes)
    wg /= 2;
  /* shared memory: MAX_M floats (vec4s) per invocation */
  while (wg > lanes &&
         (uint64_t)wg * VKF_MATVEC_MAX_M * (vec4 ? 16 : 4) > vk->base.info.shared_memory_bytes)
    wg /= 2;
  uint32_t spec[3] = {wg, lanes, p->M}, gx, gy;
  uint64_t columns = nt || !vec4 ? p->N : p->N / 4, per_group = wg / lanes;
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, op, p, sizeof(*p), NULL);
  vkf_vk_grid_2d(vk, (columns + per_group - 1) / per_group, &gx, &gy);
  vkf_shader_id sh = nt ? (vec4 ? VKF_SHADER_matvec_nt_vec4 : VKF_SHADER_matvec_nt)
                        : (vec4 ? VKF_SHADER_matvec_nn_vec4 : VKF_SHADER_matvec_nn);
  return vkf_vk_op_dispatch(vk, op, sh, spec, 3, &pb, gx, gy, 1);
}

vkf_status vkf_vk_infer(vkf_vk *vk, const vkf_op *op) {
  if (op->kind == VKF_OP_MATVEC)
    return matvec(vk, op);
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
