/* The embed family's public API: token/position embedding forward and
 * backward, and the bias gradient. */
#include "context.h"

#include <stdio.h>
#include <string.h>

/* Tensor `t` as i32 operand `name` of `fn`. NULL (error set) otherwise. */
static vkf_tensor_slot *i32_operand(vkf_context *ctx, vkf_tensor t, const char *fn,
                                    const char *name) {
  char what[96];
  snprintf(what, sizeof(what), "%s: %s", fn, name);
  vkf_tensor_slot *s = vkf_ctx_tensor(ctx, t, what);
  if (s && s->dtype != VKF_DTYPE_I32) {
    vkf_fail(&ctx->env, VKF_ERROR_DTYPE_MISMATCH, "%s is %s; it must be i32", what,
             vkf_dtype_name(s->dtype));
    return NULL;
  }
  return s;
}

/* Reads the ids of `s` into a new host array (freed by the caller) and checks
 * that each lies in [0, V). */
static vkf_status read_ids(vkf_context *ctx, const char *fn, const vkf_tensor_slot *s, uint32_t V,
                           int32_t **out) {
  *out = NULL;
  int32_t *ids = vkf_malloc(&ctx->env, (size_t)s->bytes);
  if (!ids)
    return vkf_fail(&ctx->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s: token id buffer", fn);
  vkf_status st = ctx->be->vt->read(ctx->be, vkf_slot_tref(s), ids);
  if (st != VKF_OK) {
    vkf_free(&ctx->env, ids);
    return st;
  }
  uint32_t T = (uint32_t)s->shape[s->ndim - 1];
  for (uint64_t n = 0; n < s->elements; n++) {
    if (ids[n] < 0 || (uint32_t)ids[n] >= V) {
      vkf_status e =
          vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                   "%s: token id %d at [%llu, %llu] is outside the vocabulary [0, %u)", fn, ids[n],
                   (unsigned long long)(n / T), (unsigned long long)(n % T), V);
      vkf_free(&ctx->env, ids);
      return e;
    }
  }
  *out = ids;
  return VKF_OK;
}

/* tokens [B, T] or [T]; an embedding table [rows, C] must match C. */
static vkf_status check_tokens(vkf_context *ctx, const char *fn, const vkf_tensor_slot *tok) {
  if (tok->ndim > 2)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: tokens must be [B, T] or [T] (has %u dimensions)", fn, tok->ndim);
  return VKF_OK;
}

/* act[..] = tokens' shape + [C] */
static bool act_shape_ok(const vkf_tensor_slot *act, const vkf_tensor_slot *tok, int64_t C) {
  if (act->ndim != tok->ndim + 1 || act->shape[act->ndim - 1] != C)
    return false;
  for (uint32_t i = 0; i < tok->ndim; i++)
    if (act->shape[i] != tok->shape[i])
      return false;
  return true;
}

static vkf_status check_table(vkf_context *ctx, const char *fn, const char *name,
                              const vkf_tensor_slot *tab, const vkf_tensor_slot *ref) {
  if (tab->ndim != 2)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH, "%s: %s must be 2-D (has %u dimensions)",
                    fn, name, tab->ndim);
  if (ref && tab->shape[1] != ref->shape[ref->ndim - 1]) {
    char what[96];
    snprintf(what, sizeof(what), "%s must have the same last dimension", name);
    return vkf_shape_error(ctx, fn, what, tab, ref);
  }
  return VKF_OK;
}

static vkf_status check_positions(vkf_context *ctx, const char *fn, const vkf_tensor_slot *wpe,
                                  uint32_t T, uint32_t pos_offset) {
  if ((uint64_t)pos_offset + T > (uint64_t)wpe->shape[0])
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: positions %u..%llu need %llu rows of wpe, which has %lld", fn, pos_offset,
                    (unsigned long long)pos_offset + T - 1, (unsigned long long)pos_offset + T,
                    (long long)wpe->shape[0]);
  return VKF_OK;
}

vkf_status vkf_embedding(vkf_context *ctx, vkf_tensor out, vkf_tensor tokens, vkf_tensor wte,
                         vkf_tensor wpe, uint32_t pos_offset) {
  static const char fn[] = "vkf_embedding";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *so = vkf_f32_operand(ctx, out, fn, "out");
  vkf_tensor_slot *st = so ? i32_operand(ctx, tokens, fn, "tokens") : NULL;
  vkf_tensor_slot *sw = st ? vkf_f32_operand(ctx, wte, fn, "wte") : NULL;
  if (!sw)
    return ctx->env.error_status;
  vkf_tensor_slot *sp = NULL;
  if (wpe.id && !(sp = vkf_f32_operand(ctx, wpe, fn, "wpe")))
    return ctx->env.error_status;
  vkf_status s = check_tokens(ctx, fn, st);
  if (s == VKF_OK)
    s = check_table(ctx, fn, "wte", sw, NULL);
  if (s == VKF_OK && sp)
    s = check_table(ctx, fn, "wpe", sp, sw);
  if (s != VKF_OK)
    return s;
  int64_t C = sw->shape[1];
  if (!act_shape_ok(so, st, C))
    return vkf_shape_error(ctx, fn, "out must be tokens' shape + [C of wte]", so, st);
  uint32_t T = (uint32_t)st->shape[st->ndim - 1];
  if (sp && (s = check_positions(ctx, fn, sp, T, pos_offset)) != VKF_OK)
    return s;
  if (vkf_slots_overlap(so, st) || vkf_slots_overlap(so, sw) || (sp && vkf_slots_overlap(so, sp)))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: out must not share memory with tokens, wte or wpe", fn);
  if (sw->shape[0] > INT32_MAX)
    return vkf_fail(&ctx->env, VKF_ERROR_UNSUPPORTED, "%s: more than 2^31-1 vocabulary rows", fn);
  int32_t *ids = NULL;
  if ((s = read_ids(ctx, fn, st, (uint32_t)sw->shape[0], &ids)) != VKF_OK)
    return s;
  vkf_free(&ctx->env, ids);

  vkf_op op = {.kind = VKF_OP_EMBEDDING, .n_tensors = 4, .writes = 1, .reads = 0x6};
  op.t[0] = vkf_slot_tref(so);
  op.t[1] = vkf_slot_tref(st);
  op.t[2] = vkf_slot_tref(sw);
  if (sp) {
    op.t[3] = vkf_slot_tref(sp);
    op.reads |= 8;
  }
  op.p.embedding = (vkf_embedding_params){(uint32_t)st->elements, T,          (uint32_t)C,
                                          (uint32_t)sw->shape[0], pos_offset, sp ? 1u : 0u};
  return vkf_ctx_run(ctx, &op);
}

/* Stable counting sort of the positions by token id: index = segment starts
 * [cap + 1], positions grouped by id in ascending order [N], id of each
 * segment [cap] (see vkf_embedding_backward_params), where cap is the number
 * of distinct ids (fixed_cap 0) or fixed_cap (>= it; the rest padded with
 * empty segments). */
vkf_status vkf_embedding_index(vkf_env *env, const int32_t *ids, uint32_t N, uint32_t V,
                               uint32_t fixed_cap, int32_t **out, uint32_t *out_u,
                               size_t *out_n) {
  uint32_t *count = vkf_calloc(env, (size_t)V + 1, sizeof(uint32_t));
  if (!count)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "embedding index");
  uint32_t distinct = 0;
  for (uint32_t n = 0; n < N; n++)
    distinct += count[ids[n]]++ == 0;
  uint32_t U = fixed_cap ? fixed_cap : distinct;
  if (distinct > U) {
    vkf_free(env, count);
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "embedding index: %u distinct ids exceed the capacity %u", distinct, U);
  }
  size_t len = (size_t)U + 1 + N + U;
  int32_t *idx = vkf_calloc(env, len, sizeof(int32_t));
  if (!idx) {
    vkf_free(env, count);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "embedding index");
  }
  int32_t *start = idx, *order = idx + U + 1, *seg_tok = idx + U + 1 + N;
  for (uint32_t s = distinct; s <= U; s++)
    start[s] = (int32_t)N; /* padding: empty segments at the end */
  /* count[v] becomes the write cursor of id v within `order` */
  uint32_t s = 0, pos = 0;
  for (uint32_t v = 0; v < V; v++) {
    uint32_t c = count[v];
    if (!c)
      continue;
    start[s] = (int32_t)pos;
    seg_tok[s] = (int32_t)v;
    count[v] = pos;
    pos += c;
    s++;
  }
  for (uint32_t n = 0; n < N; n++)
    order[count[ids[n]]++] = (int32_t)n;
  vkf_free(env, count);
  *out = idx;
  *out_u = U;
  *out_n = len;
  return VKF_OK;
}

vkf_status vkf_embedding_backward(vkf_context *ctx, vkf_tensor dwte, vkf_tensor dwpe,
                                  vkf_tensor dout, vkf_tensor tokens, uint32_t pos_offset) {
  static const char fn[] = "vkf_embedding_backward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!dwte.id && !dwpe.id)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: neither dwte nor dwpe given; nothing to compute", fn);
  vkf_tensor_slot *sw = NULL, *sp = NULL;
  if (dwte.id && !(sw = vkf_f32_operand(ctx, dwte, fn, "dwte")))
    return ctx->env.error_status;
  if (dwpe.id && !(sp = vkf_f32_operand(ctx, dwpe, fn, "dwpe")))
    return ctx->env.error_status;
  vkf_tensor_slot *sd = vkf_f32_operand(ctx, dout, fn, "dout");
  vkf_tensor_slot *st = sd ? i32_operand(ctx, tokens, fn, "tokens") : NULL;
  if (!st)
    return ctx->env.error_status;
  vkf_status s = check_tokens(ctx, fn, st);
  if (s == VKF_OK && sw)
    s = check_table(ctx, fn, "dwte", sw, sd);
  if (s == VKF_OK && sp)
    s = check_table(ctx, fn, "dwpe", sp, sd);
  if (s != VKF_OK)
    return s;
  int64_t C = sd->shape[sd->ndim - 1];
  if (!act_shape_ok(sd, st, C))
    return vkf_shape_error(ctx, fn, "dout must be tokens' shape + [C]", sd, st);
  uint32_t T = (uint32_t)st->shape[st->ndim - 1], N = (uint32_t)st->elements;
  if (sp && (s = check_positions(ctx, fn, sp, T, pos_offset)) != VKF_OK)
    return s;
  if ((sw && (vkf_slots_overlap(sw, sd) || vkf_slots_overlap(sw, st) ||
              (sp && vkf_slots_overlap(sw, sp)))) ||
      (sp && (vkf_slots_overlap(sp, sd) || vkf_slots_overlap(sp, st))))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: dwte and dwpe must not share memory with each other, dout or tokens", fn);

  vkf_op op = {.kind = VKF_OP_EMBEDDING_BACKWARD, .n_tensors = 4, .reads = 0x4};
  op.t[2] = vkf_slot_tref(sd);
  op.p.embedding_backward = (vkf_embedding_backward_params){N, T, (uint32_t)C, 0, pos_offset, 0};
  if (sp) {
    op.t[1] = vkf_slot_tref(sp);
    op.writes |= 2;
    op.reads |= 2;
  }
  if (!sw)
    return vkf_ctx_run(ctx, &op);

  if (sw->shape[0] > INT32_MAX)
    return vkf_fail(&ctx->env, VKF_ERROR_UNSUPPORTED, "%s: more than 2^31-1 vocabulary rows", fn);
  int32_t *ids = NULL, *idx = NULL;
  uint32_t U = 0;
  size_t len = 0;
  if ((s = read_ids(ctx, fn, st, (uint32_t)sw->shape[0], &ids)) != VKF_OK)
    return s;
  s = vkf_embedding_index(&ctx->env, ids, N, (uint32_t)sw->shape[0], 0, &idx, &U, &len);
  vkf_free(&ctx->env, ids);
  if (s != VKF_OK)
    return s;
  /* The index lives in a buffer of this op alone, freed once recorded (the
   * backends keep memory the device still uses alive or wait for it). */
  vkf_buffer *ib = NULL;
  s = ctx->be->vt->buffer_create(ctx->be, len * sizeof(int32_t), &ib);
  vkf_tref itr = {ib, 0, len * sizeof(int32_t)};
  if (s == VKF_OK)
    s = ctx->be->vt->write(ctx->be, itr, idx);
  vkf_free(&ctx->env, idx);
  if (s == VKF_OK) {
    op.t[0] = vkf_slot_tref(sw);
    op.t[3] = itr;
    op.writes |= 1;
    op.reads |= 1 | 8;
    op.p.embedding_backward.U = U;
    s = vkf_ctx_run(ctx, &op);
  }
  if (ib)
    ctx->be->vt->buffer_destroy(ctx->be, ib);
  return s;
}

vkf_status vkf_bias_backward(vkf_context *ctx, vkf_tensor dbias, vkf_tensor dout) {
  static const char fn[] = "vkf_bias_backward";
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *sb = vkf_f32_operand(ctx, dbias, fn, "dbias");
  vkf_tensor_slot *sd = sb ? vkf_f32_operand(ctx, dout, fn, "dout") : NULL;
  if (!sd)
    return ctx->env.error_status;
  int64_t N = sd->shape[sd->ndim - 1];
  if (sb->ndim != 1 || sb->shape[0] != N)
    return vkf_shape_error(ctx, fn, "dbias must be [last dimension of dout]", sb, sd);
  if (vkf_slots_overlap(sb, sd))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: dbias must not overlap dout", fn);
  vkf_op op = {.kind = VKF_OP_BIAS_BACKWARD, .n_tensors = 2, .writes = 1, .reads = 3};
  op.t[0] = vkf_slot_tref(sb);
  op.t[1] = vkf_slot_tref(sd);
  op.p.bias_backward =
      (vkf_bias_backward_params){(uint32_t)(sd->elements / (uint64_t)N), (uint32_t)N, 0, 0};
  return vkf_ctx_run(ctx, &op);
}
