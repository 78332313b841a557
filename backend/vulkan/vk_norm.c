/* layernorm / rmsnorm, forward and backward, on Vulkan: kernel variant,
 * workgroup size, the row-block partition of the backward's weight/bias
 * sums and its scratch memory. */
#include "vk.h"

#include <string.h>

/* Backward: workgroups (row blocks) to aim for when weight/bias gradients
 * are wanted: enough to fill a large GPU, few on lavapipe (one CPU thread
 * runs each workgroup). */
#define GPU_TARGET_BLOCKS 512u
#define CPU_TARGET_BLOCKS 16u
/* ... but a block has at least this many rows, */
#define MIN_ROWS_PER_BLOCK 4u
/* and the partials (n_blocks * cols floats per gradient) stay small enough
 * to be sub-allocated from the shared memory blocks, never a dedicated
 * allocation. */
#define MAX_PARTIAL_BYTES (4u << 20)
/* Rows per chunk of the backward kernel (shared coefficient slots; even). */
#define CHUNK_ROWS 16u

/* Power-of-two workgroup for one-row-per-workgroup kernels whose rows are
 * `units` long: no larger than needed, within the device's limit. The
 * kernels reduce through shared memory, so any size is correct; the sizes
 * are tuning. On a CPU Vulkan device (lavapipe) a workgroup runs as SIMD
 * loops split at every barrier: one SIMD width (its subgroup size) is
 * fastest there, about 3x faster than 64 for rows of 768. */
static uint32_t norm_wg(const vkf_vk *vk, uint32_t units) {
  const vkf_device_info *info = &vk->base.info;
  uint32_t max = 256, wg = 32;
  if (vkf_vk_is_cpu_device(vk)) {
    for (max = 8; max < info->subgroup_size && max < 64;)
      max *= 2;
    wg = 8;
  }
  while (max > info->max_workgroup_invocations && max > 1)
    max /= 2;
  if (wg > max)
    wg = max;
  while (wg < max && wg < units)
    wg *= 2;
  return wg;
}

/* True when every present operand in `mask` starts on a 16-byte boundary. */
static bool aligned16(const vkf_op *op, uint32_t mask) {
  for (uint32_t i = 0; i < op->n_tensors; i++)
    if ((mask & (1u << i)) && op->t[i].buf && vkf_vk_addr(op->t[i]) % 16 != 0)
      return false;
  return true;
}

static vkf_status norm_forward(vkf_vk *vk, const vkf_op *op, bool rms) {
  const vkf_norm_params *p = &op->p.norm;
  /* vector operands: out, x, weight (+ bias) */
  uint32_t vec_mask = rms ? 0x1 | 0x4 | 0x8 : 0x1 | 0x8 | 0x10 | 0x20;
  bool vec4 = p->cols % 4 == 0 && aligned16(op, vec_mask);
  vkf_shader_id shader = rms ? (vec4 ? VKF_SHADER_rmsnorm_vec4 : VKF_SHADER_rmsnorm)
                             : (vec4 ? VKF_SHADER_layernorm_vec4 : VKF_SHADER_layernorm);
  uint32_t wg = norm_wg(vk, vec4 ? p->cols / 4 : p->cols), gx, gy;
  vkf_vk_push pb;
  vkf_vk_push_build(&pb, op, p, sizeof(*p), NULL);
  vkf_vk_grid_2d(vk, p->rows, &gx, &gy);
  return vkf_vk_op_dispatch(vk, op, shader, &wg, 1, &pb, gx, gy, 1);
}

/* Appends operand `t`'s range to `set` (nothing for an absent operand). */
static void add_range(vkf_vk_range *set, uint32_t *n, vkf_tref t) {
  if (!t.buf)
    return;
  VkDeviceAddress a = vkf_vk_addr(t);
  set[(*n)++] = (vkf_vk_range){a, a + t.bytes};
}

static void push_addr(vkf_vk_push *pb, vkf_tref t) {
  uint64_t a = vkf_vk_addr(t);
  memcpy(pb->bytes + pb->size, &a, 8);
  pb->size += 8;
}

static void push_params(vkf_vk_push *pb, const void *params, size_t size) {
  memcpy(pb->bytes + pb->size, params, size);
  pb->size += (uint32_t)size;
}

static vkf_status dispatch(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader, const uint32_t *spec,
                           uint32_t n_spec, const vkf_vk_push *pb, uint64_t groups,
                           const vkf_vk_range *reads, uint32_t n_reads, const vkf_vk_range *writes,
                           uint32_t n_writes) {
  VkPipeline pipe;
  vkf_status st = vkf_vk_pipeline_get(vk, shader, n_spec, spec, &pipe);
  if (st != VKF_OK)
    return st;
  uint32_t gx, gy;
  vkf_vk_grid_2d(vk, groups, &gx, &gy);
  vkf_vk_dispatch d = {.pipeline = pipe,
                       .push = pb->bytes,
                       .push_size = pb->size,
                       .groups = {gx, gy, 1},
                       .kind = op->kind,
                       .reads = reads,
                       .n_reads = n_reads,
                       .writes = writes,
                       .n_writes = n_writes};
  return vkf_vk_dispatch_record(vk, &d);
}

static vkf_status norm_backward(vkf_vk *vk, const vkf_op *op, bool rms) {
  const vkf_norm_backward_params *p = &op->p.norm_backward;
  /* operand indices */
  const uint32_t DX = 0, DW = 1, DB = rms ? UINT32_MAX : 2, DOUT = rms ? 2 : 3, X = DOUT + 1,
                 WT = DOUT + 2, MEAN = rms ? UINT32_MAX : 6, RSTD = rms ? 5 : 7;
  const vkf_tref none = {0};
  const vkf_tref dx = op->t[DX], dw = op->t[DW], db = rms ? none : op->t[DB];
  const uint32_t C = p->cols, rows = p->rows;
  const uint32_t flags = p->flags & (VKF_NORM_DX | VKF_NORM_DW | VKF_NORM_DB);

  uint32_t vec_mask = (1u << DX) | (1u << DW) | (1u << DOUT) | (1u << X) | (1u << WT);
  if (!rms)
    vec_mask |= 1u << DB;
  const bool vec4 = C % 4 == 0 && aligned16(op, vec_mask);
  const uint32_t n = vec4 ? C / 4 : C;
  const uint32_t wg = norm_wg(vk, n);
  const bool cpu = vkf_vk_is_cpu_device(vk);

  /* Row blocks: one row per workgroup for dx alone; with weight/bias sums,
   * blocks of rows whose partials a second pass adds up. */
  uint32_t n_par = (dw.buf ? 1 : 0) + (db.buf ? 1 : 0);
  uint32_t rpb = 1, n_blocks = rows;
  if (n_par) {
    uint64_t target = cpu ? CPU_TARGET_BLOCKS : GPU_TARGET_BLOCKS;
    uint64_t max_blocks = MAX_PARTIAL_BYTES / ((uint64_t)C * 4 * n_par);
    if (target > max_blocks)
      target = max_blocks ? max_blocks : 1;
    rpb = (uint32_t)((rows + target - 1) / target);
    if (rpb < MIN_ROWS_PER_BLOCK)
      rpb = MIN_ROWS_PER_BLOCK;
    n_blocks = (uint32_t)(((uint64_t)rows + rpb - 1) / rpb);
  }
  const bool partial = n_par && n_blocks > 1;

  vkf_buffer *scratch = NULL;
  vkf_tref pw = none, pbias = none;
  if (partial) {
    uint64_t per = (uint64_t)n_blocks * C * 4;
    vkf_status st = vkf_vk_buffer_create(&vk->base, per * n_par, &scratch);
    if (st != VKF_OK)
      return st;
    if (dw.buf)
      pw = (vkf_tref){scratch, 0, per};
    if (db.buf)
      pbias = (vkf_tref){scratch, dw.buf ? per : 0, per};
  }
  const vkf_tref kdw = partial ? pw : dw, kdb = partial ? pbias : db;

  /* pass 1: dx, and the weight/bias sums (into dw/db, or per block) */
  vkf_vk_push pb = {.size = 0};
  push_addr(&pb, dx);
  push_addr(&pb, kdw);
  if (!rms)
    push_addr(&pb, kdb);
  push_addr(&pb, op->t[DOUT]);
  push_addr(&pb, op->t[X]);
  push_addr(&pb, op->t[WT]);
  if (!rms)
    push_addr(&pb, op->t[MEAN]);
  push_addr(&pb, op->t[RSTD]);
  vkf_norm_backward_kparams kp = {rows, n, C, rpb, flags | (partial ? VKF_NORM_PARTIAL : 0)};
  push_params(&pb, &kp, sizeof(kp));
  vkf_vk_range reads[VKF_OP_MAX_TENSORS + 2], writes[4];
  uint32_t nr = 0, nw = 0;
  add_range(reads, &nr, op->t[DOUT]);
  add_range(reads, &nr, op->t[X]);
  add_range(reads, &nr, op->t[WT]);
  if (!rms)
    add_range(reads, &nr, op->t[MEAN]);
  add_range(reads, &nr, op->t[RSTD]);
  /* the gradients are read too: += (the partials: by later chunks) */
  add_range(reads, &nr, dx);
  add_range(reads, &nr, kdw);
  add_range(reads, &nr, kdb);
  add_range(writes, &nw, dx);
  add_range(writes, &nw, kdw);
  add_range(writes, &nw, kdb);
  uint32_t spec[2] = {wg, CHUNK_ROWS};
  vkf_shader_id shader =
      rms ? (vec4 ? VKF_SHADER_rmsnorm_backward_vec4 : VKF_SHADER_rmsnorm_backward)
          : (vec4 ? VKF_SHADER_layernorm_backward_vec4 : VKF_SHADER_layernorm_backward);
  vkf_status st = dispatch(vk, op, shader, spec, 2, &pb, n_blocks, reads, nr, writes, nw);

  /* pass 2: dw/db += the blocks' partials, in block order */
  if (st == VKF_OK && partial) {
    uint32_t lanes = 1;
    while (lanes < n_blocks && lanes < (cpu ? 8u : 32u))
      lanes *= 2;
    uint32_t rwg = cpu ? 64 : 256;
    while (rwg > vk->base.info.max_workgroup_invocations && rwg > lanes)
      rwg /= 2;
    if (lanes > rwg)
      lanes = rwg;
    uint32_t per_group = rwg / lanes;
    vkf_vk_push pr = {.size = 0};
    push_addr(&pr, dw);
    push_addr(&pr, db);
    push_addr(&pr, pw);
    push_addr(&pr, pbias);
    vkf_norm_reduce_params rp = {n, n_blocks, flags & (VKF_NORM_DW | VKF_NORM_DB)};
    push_params(&pr, &rp, sizeof(rp));
    nr = nw = 0;
    add_range(reads, &nr, pw);
    add_range(reads, &nr, pbias);
    add_range(reads, &nr, dw);
    add_range(reads, &nr, db);
    add_range(writes, &nw, dw);
    add_range(writes, &nw, db);
    uint32_t rspec[2] = {rwg, lanes};
    st = dispatch(vk, op,
                  vec4 ? VKF_SHADER_norm_backward_reduce_vec4 : VKF_SHADER_norm_backward_reduce,
                  rspec, 2, &pr, (n + per_group - 1) / per_group, reads, nr, writes, nw);
  }
  /* Freed now, reused later: the ranges recorded above order any later
   * command (or host access) that touches this memory after these. */
  if (scratch)
    vkf_vk_buffer_destroy(&vk->base, scratch);
  return st;
}

vkf_status vkf_vk_norm(vkf_vk *vk, const vkf_op *op) {
  switch (op->kind) {
  case VKF_OP_LAYERNORM:
    return norm_forward(vk, op, false);
  case VKF_OP_RMSNORM:
    return norm_forward(vk, op, true);
  case VKF_OP_LAYERNORM_BACKWARD:
    return norm_backward(vk, op, false);
  case VKF_OP_RMSNORM_BACKWARD:
    return norm_backward(vk, op, true);
  default:
    return vkf_fail(vk->base.env, VKF_ERROR_UNSUPPORTED, "vk_norm: op %s is not a norm op",
                    vkf_op_name(op->kind));
  }
}
