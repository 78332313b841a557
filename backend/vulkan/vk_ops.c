/* From vkf_op to dispatches: shader choice, per-device tile sizes,
 * workgroup counts, push constants. */
#include "vk.h"

#include <string.h>

void vkf_vk_push_build(vkf_vk_push *pb, const vkf_op *op, const void *params, size_t params_size,
                       uint64_t *addr_adjust) {
  uint32_t n = op->n_tensors;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t a = vkf_vk_addr(op->t[i]);
    if (a && addr_adjust)
      a += addr_adjust[i];
    memcpy(pb->bytes + 8 * i, &a, 8);
  }
  memcpy(pb->bytes + 8 * n, params, params_size);
  pb->size = (uint32_t)(8 * n + params_size);
}

/* Ranges from the op's read/write masks. */
typedef struct op_ranges {
  vkf_vk_range r[VKF_OP_MAX_TENSORS], w[VKF_OP_MAX_TENSORS];
  uint32_t nr, nw;
} op_ranges;

static void ranges_of(const vkf_op *op, op_ranges *out) {
  out->nr = out->nw = 0;
  for (uint32_t i = 0; i < op->n_tensors; i++) {
    if (!op->t[i].buf)
      continue;
    VkDeviceAddress a = vkf_vk_addr(op->t[i]);
    vkf_vk_range rg = {a, a + op->t[i].bytes};
    if (op->reads & (1u << i))
      out->r[out->nr++] = rg;
    if (op->writes & (1u << i))
      out->w[out->nw++] = rg;
  }
}

vkf_status vkf_vk_op_dispatch(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader,
                              const uint32_t *spec, uint32_t n_spec, const vkf_vk_push *pb,
                              uint32_t gx, uint32_t gy, uint32_t gz) {
  VkPipeline pipe;
  vkf_status st = vkf_vk_pipeline_get(vk, shader, n_spec, spec, &pipe);
  if (st != VKF_OK)
    return st;
  op_ranges rg;
  ranges_of(op, &rg);
  vkf_vk_dispatch d = {
      .pipeline = pipe,
      .push = pb->bytes,
      .push_size = pb->size,
      .groups = {gx, gy, gz},
      .kind = op->kind,
      .reads = rg.r,
      .n_reads = rg.nr,
      .writes = rg.w,
      .n_writes = rg.nw,
  };
  return vkf_vk_dispatch_record(vk, &d);
}

/* Spread `groups` 1-D workgroups over x and y within the device limits. */
void vkf_vk_grid_2d(const vkf_vk *vk, uint64_t groups, uint32_t *gx, uint32_t *gy) {
  uint32_t max_x = vk->base.info.max_workgroup_count[0];
  if (groups <= max_x) {
    *gx = (uint32_t)(groups ? groups : 1);
    *gy = 1;
  } else {
    *gx = max_x;
    *gy = (uint32_t)((groups + max_x - 1) / max_x);
  }
}

bool vkf_vk_is_cpu_device(const vkf_vk *vk) {
  return vk->base.info.type == VKF_DEVICE_TYPE_CPU_VULKAN;
}

/* Threads per workgroup for one-element-per-invocation kernels. */
uint32_t vkf_vk_elementwise_wg(const vkf_vk *vk) {
  return vkf_vk_is_cpu_device(vk) ? 64 : 256;
}
/* Threads per workgroup for one-row-per-workgroup kernels (power of two). */
uint32_t vkf_vk_row_wg(const vkf_vk *vk, uint32_t cols) {
  uint32_t wg = vkf_vk_is_cpu_device(vk) ? 32 : 128;
  while (wg > 8 && wg / 2 >= cols)
    wg /= 2;
  return wg;
}

vkf_status vkf_vk_run_elementwise(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader, uint32_t n,
                                  const void *params, size_t size) {
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, op, params, size, NULL);
  uint32_t wg = vkf_vk_elementwise_wg(vk), gx, gy;
  vkf_vk_grid_2d(vk, ((uint64_t)n + wg - 1) / wg, &gx, &gy);
  return vkf_vk_op_dispatch(vk, op, shader, &wg, 1, &pb, gx, gy, 1);
}

vkf_status vkf_vk_run_rows(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader, uint32_t rows,
                           uint32_t cols, const void *params, size_t size) {
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, op, params, size, NULL);
  uint32_t wg = vkf_vk_row_wg(vk, cols), gx, gy;
  vkf_vk_grid_2d(vk, rows, &gx, &gy);
  return vkf_vk_op_dispatch(vk, op, shader, &wg, 1, &pb, gx, gy, 1);
}

vkf_status vkf_vk_run(vkf_backend *be, const vkf_op *op) {
  vkf_vk *vk = (vkf_vk *)be;
  if (vk->lost)
    return vkf_fail(be->env, VKF_ERROR_DEVICE_LOST,
                    "the device was lost; the context can only be destroyed now");
  switch (op->kind) {
  case VKF_OP_FILL:
    return vkf_vk_fill_record(vk, op->t[0], op->p.fill.bits);
  /* ---- matmul ---- */
  case VKF_OP_MATMUL:
    return vkf_vk_matmul(vk, op);
  case VKF_OP_ADD:
    return vkf_vk_run_elementwise(vk, op, VKF_SHADER_add, op->p.binary.n, &op->p.binary,
                                  sizeof(op->p.binary));
  case VKF_OP_MUL:
    return vkf_vk_run_elementwise(vk, op, VKF_SHADER_mul, op->p.binary.n, &op->p.binary,
                                  sizeof(op->p.binary));
  case VKF_OP_SCALE:
    return vkf_vk_run_elementwise(vk, op, VKF_SHADER_scale, op->p.scale.n, &op->p.scale,
                                  sizeof(op->p.scale));
  case VKF_OP_ROW_SUM:
    return vkf_vk_run_rows(vk, op, VKF_SHADER_row_sum, op->p.rowreduce.rows, op->p.rowreduce.cols,
                           &op->p.rowreduce, sizeof(op->p.rowreduce));
  case VKF_OP_SOFTMAX:
    return vkf_vk_run_rows(vk, op, VKF_SHADER_softmax, op->p.softmax.rows, op->p.softmax.cols,
                           &op->p.softmax, sizeof(op->p.softmax));
  /* Each family: case VKF_OP_X: return vkf_vk_<family>(vk, op); */
  /* ---- norm ---- */
  case VKF_OP_LAYERNORM:
  case VKF_OP_LAYERNORM_BACKWARD:
  case VKF_OP_RMSNORM:
  case VKF_OP_RMSNORM_BACKWARD:
    return vkf_vk_norm(vk, op);
  /* ---- act ---- */
  case VKF_OP_GELU:
  case VKF_OP_GELU_BACKWARD:
  case VKF_OP_SILU:
  case VKF_OP_SILU_BACKWARD:
  case VKF_OP_SWIGLU:
  case VKF_OP_SWIGLU_BACKWARD:
    return vkf_vk_act(vk, op);
  /* ---- embed ---- */
  case VKF_OP_EMBEDDING:
  case VKF_OP_EMBEDDING_BACKWARD:
  case VKF_OP_BIAS_BACKWARD:
    return vkf_vk_embed(vk, op);
  /* ---- rope ---- */
  case VKF_OP_ROPE:
  case VKF_OP_ROPE_BACKWARD:
    return vkf_vk_rope(vk, op);
  /* ---- attn ---- */
  case VKF_OP_ATTENTION_FORWARD:
  case VKF_OP_ATTENTION_BACKWARD_DS:
  case VKF_OP_ATTENTION_BACKWARD_DQ:
  case VKF_OP_ATTENTION_BACKWARD_DKV:
    return vkf_vk_attention(vk, op);
  case VKF_OP_LINEAR_ATTENTION_FORWARD:
  case VKF_OP_LINEAR_ATTENTION_BACKWARD_Q:
  case VKF_OP_LINEAR_ATTENTION_BACKWARD_KV:
  case VKF_OP_LINEAR_ATTENTION_DECODE:
    return vkf_vk_attention_linear(vk, op);
  case VKF_OP_ATTENTION_FLASH_FORWARD:
  case VKF_OP_ATTENTION_FLASH_BACKWARD_PRE:
  case VKF_OP_ATTENTION_FLASH_BACKWARD_DKV:
  case VKF_OP_ATTENTION_FLASH_BACKWARD_DQ:
    return vkf_vk_attention_flash(vk, op);
  /* ---- xent ---- */
  case VKF_OP_CROSS_ENTROPY:
  case VKF_OP_CROSS_ENTROPY_BACKWARD:
    return vkf_vk_xent(vk, op);
  /* ---- optim ---- */
  case VKF_OP_ADAMW:
  case VKF_OP_GRAD_NORM:
  case VKF_OP_CLIP_GRADS:
    return vkf_vk_optim(vk, op);
  /* ---- infer ---- */
  case VKF_OP_KV_WRITE:
  case VKF_OP_MATVEC:
    return vkf_vk_infer(vk, op);
  default:
    return vkf_fail(be->env, VKF_ERROR_UNSUPPORTED, "Vulkan backend: op %s not implemented",
                    vkf_op_name(op->kind));
  }
}
