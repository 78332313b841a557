/* The infer family's op: vkf_kv_cache_write (argument checks, the kv_write
 * op). */
#include "context.h"

#include <stdio.h>

#define ROWS_MAX (1u << 30) /* keeps the kernels' 32-bit row arithmetic exact */

/* [B, rows, ...]: B, rows and the product of the trailing dims. */
static bool split_dims(const vkf_tensor_slot *s, int64_t *B, int64_t *rows, int64_t *width) {
  if (s->ndim < 3)
    return false;
  *B = s->shape[0];
  *rows = s->shape[1];
  *width = 1;
  for (uint32_t i = 2; i < s->ndim; i++)
    *width *= s->shape[i];
  return true;
}

static bool same_tail(const vkf_tensor_slot *a, const vkf_tensor_slot *b) {
  if (a->ndim != b->ndim)
    return false;
  for (uint32_t i = 2; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      return false;
  return a->shape[0] == b->shape[0];
}

vkf_status vkf_kv_cache_write(vkf_context *ctx, vkf_tensor k_cache, vkf_tensor v_cache,
                              vkf_tensor k, vkf_tensor v, vkf_tensor where, uint32_t flags) {
  static const char fn[] = "vkf_kv_cache_write";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_env *env = &ctx->env;
  vkf_tensor_slot *kc = vkf_f32_operand(ctx, k_cache, fn, "k_cache");
  vkf_tensor_slot *vc = kc ? vkf_f32_operand(ctx, v_cache, fn, "v_cache") : NULL;
  vkf_tensor_slot *sk = vc ? vkf_f32_operand(ctx, k, fn, "k") : NULL;
  vkf_tensor_slot *sv = sk ? vkf_f32_operand(ctx, v, fn, "v") : NULL;
  vkf_tensor_slot *sw = sv ? vkf_ctx_tensor(ctx, where, "vkf_kv_cache_write: where") : NULL;
  if (!sw)
    return env->error_status;
  if (sw->dtype != VKF_DTYPE_I32)
    return vkf_fail(env, VKF_ERROR_DTYPE_MISMATCH, "%s: where is %s; it must be i32", fn,
                    vkf_dtype_name(sw->dtype));
  if (flags & ~(uint32_t)VKF_KV_RING)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "%s: unknown flags 0x%x", fn,
                    flags & ~(uint32_t)VKF_KV_RING);
  int64_t B, R, Wk, Bv, Rv, Wv, Bk, T, W1, Bn, Tv, W2;
  if (!split_dims(kc, &B, &R, &Wk))
    return vkf_fail(env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: k_cache must be [B, rows, ...] (3-D or more)", fn);
  if (!split_dims(vc, &Bv, &Rv, &Wv) || Bv != B || Rv != R)
    return vkf_shape_error(ctx, fn, "v_cache must be [B, rows, ...] like k_cache", vc, kc);
  if (!split_dims(sk, &Bk, &T, &W1) || !same_tail(sk, kc))
    return vkf_shape_error(ctx, fn, "k must be [B, T, ...] with k_cache's B and row shape", sk, kc);
  if (!split_dims(sv, &Bn, &Tv, &W2) || !same_tail(sv, vc) || Tv != T)
    return vkf_shape_error(
        ctx, fn, "v must be [B, T, ...] with k's T and v_cache's B and row shape", sv, vc);
  if (sw->ndim != 2 || sw->shape[0] != B || sw->shape[1] != 2)
    return vkf_shape_error(ctx, fn, "where must be [B, 2] (start, count)", sw, kc);
  if (R > ROWS_MAX || T > ROWS_MAX)
    return vkf_fail(env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: %lld cache rows and %lld new rows; at most 2^30", fn, (long long)R,
                    (long long)T);
  if (vkf_slots_overlap(kc, vc))
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "%s: k_cache and v_cache overlap", fn);
  const vkf_tensor_slot *ins[3] = {sk, sv, sw};
  for (int i = 0; i < 3; i++)
    if (vkf_slots_overlap(kc, ins[i]) || vkf_slots_overlap(vc, ins[i]))
      return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: the caches must not overlap k, v or where", fn);
  vkf_op op = {.kind = VKF_OP_KV_WRITE, .n_tensors = 5, .writes = 3, .reads = 0x1c};
  op.t[0] = vkf_slot_tref(kc);
  op.t[1] = vkf_slot_tref(vc);
  op.t[2] = vkf_slot_tref(sk);
  op.t[3] = vkf_slot_tref(sv);
  op.t[4] = vkf_slot_tref(sw);
  op.p.kv_write = (vkf_kv_write_params){.B = (uint32_t)B,
                                        .T = (uint32_t)T,
                                        .rows = (uint32_t)R,
                                        .Wk = (uint32_t)Wk,
                                        .Wv = (uint32_t)Wv,
                                        .flags = (flags & VKF_KV_RING) ? VKF_KVW_RING : 0};
  return vkf_ctx_run(ctx, &op);
}
