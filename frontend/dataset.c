/* Token datasets: byte-level text or int32 token files, split, batches. */
#include "context.h"
#include "json.h"

#include <stdio.h>
#include <string.h>

#define MAX_DATASET_BYTES (4ull << 30)

struct vkf_dataset {
  vkf_context *ctx;
  int32_t *tokens;
  uint64_t n, n_train; /* [0, n_train) train, [n_train, n) validation */
};

static vkf_status finish(vkf_context *ctx, vkf_dataset *ds, float val_fraction, const char *what,
                         vkf_dataset **out) {
  ds->n_train = ds->n - (uint64_t)((double)ds->n * val_fraction);
  if (ds->n_train < 2 || (val_fraction > 0 && ds->n - ds->n_train < 2)) {
    vkf_free(&ctx->env, ds->tokens);
    vkf_free(&ctx->env, ds);
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: %llu tokens are too few for a %.3g validation split", what,
                    (unsigned long long)ds->n, (double)val_fraction);
  }
  *out = ds;
  return VKF_OK;
}

static vkf_status check_fraction(vkf_context *ctx, float f) {
  if (!(f >= 0.0f && f < 1.0f))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "val_fraction %g is not in [0, 1)",
                    (double)f);
  return VKF_OK;
}

vkf_status vkf_dataset_open_text(vkf_context *ctx, const char *const *paths, uint32_t n_paths,
                                 float val_fraction, vkf_dataset **out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!paths || !out || !n_paths)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_dataset_open_text: no files");
  *out = NULL;
  vkf_status st = check_fraction(ctx, val_fraction);
  if (st != VKF_OK)
    return st;
  vkf_env *env = &ctx->env;
  vkf_dataset *ds = vkf_calloc(env, 1, sizeof(*ds));
  if (!ds)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "dataset");
  ds->ctx = ctx;
  for (uint32_t i = 0; i < n_paths && st == VKF_OK; i++) {
    if (!paths[i]) {
      st = vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_dataset_open_text: path %u is NULL", i);
      break;
    }
    char *text;
    size_t len;
    st = vkf_read_file(env, paths[i], MAX_DATASET_BYTES, &text, &len);
    if (st != VKF_OK)
      break;
    int32_t *t = vkf_realloc(env, ds->tokens, (ds->n + len + 1) * sizeof(int32_t));
    if (!t) {
      vkf_free(env, text);
      st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "dataset of %llu bytes",
                    (unsigned long long)(ds->n + len));
      break;
    }
    ds->tokens = t;
    for (size_t k = 0; k < len; k++)
      ds->tokens[ds->n + k] = (unsigned char)text[k];
    ds->n += len;
    vkf_free(env, text);
  }
  if (st != VKF_OK) {
    vkf_free(env, ds->tokens);
    vkf_free(env, ds);
    return st;
  }
  return finish(ctx, ds, val_fraction, paths[0], out);
}

vkf_status vkf_dataset_open_tokens(vkf_context *ctx, const char *path, uint32_t vocab_size,
                                   float val_fraction, vkf_dataset **out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!path || !out)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_dataset_open_tokens: NULL argument");
  *out = NULL;
  vkf_status st = check_fraction(ctx, val_fraction);
  if (st != VKF_OK)
    return st;
  vkf_env *env = &ctx->env;
  char *data;
  size_t len;
  st = vkf_read_file(env, path, MAX_DATASET_BYTES, &data, &len);
  if (st != VKF_OK)
    return st;
  if (len % 4) {
    vkf_free(env, data);
    return vkf_fail(env, VKF_ERROR_FORMAT, "%s: %zu bytes is not a whole number of int32 tokens",
                    path, len);
  }
  vkf_dataset *ds = vkf_calloc(env, 1, sizeof(*ds));
  if (!ds) {
    vkf_free(env, data);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "dataset");
  }
  ds->ctx = ctx;
  ds->n = len / 4;
  ds->tokens = (int32_t *)(void *)data; /* malloc'd: suitably aligned */
  for (uint64_t i = 0; i < ds->n; i++) {
    int32_t v;
    memcpy(&v, data + 4 * i, 4); /* little-endian hosts only (x86, ARM) */
    if (v < 0 || (uint32_t)v >= vocab_size) {
      vkf_free(env, data);
      vkf_free(env, ds);
      return vkf_fail(env, VKF_ERROR_FORMAT, "%s: token %llu is %d, outside [0, %u)", path,
                      (unsigned long long)i, v, vocab_size);
    }
  }
  return finish(ctx, ds, val_fraction, path, out);
}

void vkf_dataset_destroy(vkf_dataset *ds) {
  if (!ds)
    return;
  vkf_env *env = &ds->ctx->env;
  vkf_free(env, ds->tokens);
  vkf_free(env, ds);
}

uint64_t vkf_dataset_size(const vkf_dataset *ds, vkf_split split) {
  if (!ds)
    return 0;
  return split == VKF_SPLIT_VAL ? ds->n - ds->n_train : ds->n_train;
}

static vkf_status range_of(vkf_dataset *ds, vkf_split split, uint32_t B, uint32_t T,
                           const int32_t *in, const int32_t *tg, const int32_t **base,
                           uint64_t *n) {
  vkf_env *env = &ds->ctx->env;
  if (!in || !tg)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "dataset batch: NULL output");
  if (!B || !T)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "dataset batch: B and T must be positive");
  if (split != VKF_SPLIT_TRAIN && split != VKF_SPLIT_VAL)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "dataset batch: unknown split %d", split);
  *base = ds->tokens + (split == VKF_SPLIT_VAL ? ds->n_train : 0);
  *n = vkf_dataset_size(ds, split);
  if (*n < (uint64_t)T + 1)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "dataset batch: the %s split has %llu tokens, fewer than T+1 = %u",
                    split == VKF_SPLIT_VAL ? "validation" : "training", (unsigned long long)*n,
                    T + 1);
  return VKF_OK;
}

vkf_status vkf_dataset_batch(vkf_dataset *ds, vkf_split split, vkf_rng *rng, uint32_t B, uint32_t T,
                             int32_t *inputs, int32_t *targets) {
  if (!ds)
    return VKF_ERROR_NULL_POINTER;
  if (!rng)
    return vkf_fail(&ds->ctx->env, VKF_ERROR_NULL_POINTER, "dataset batch: rng is NULL");
  const int32_t *base;
  uint64_t n;
  vkf_status st = range_of(ds, split, B, T, inputs, targets, &base, &n);
  if (st != VKF_OK)
    return st;
  uint64_t starts = n - T; /* windows of T+1 tokens */
  for (uint32_t b = 0; b < B; b++) {
    uint64_t s = (uint64_t)(vkf_rng_uniform(rng) * (double)starts);
    if (s >= starts)
      s = starts - 1;
    memcpy(inputs + (size_t)b * T, base + s, T * sizeof(int32_t));
    memcpy(targets + (size_t)b * T, base + s + 1, T * sizeof(int32_t));
  }
  return VKF_OK;
}

vkf_status vkf_dataset_window(vkf_dataset *ds, vkf_split split, uint64_t index, uint32_t B,
                              uint32_t T, int32_t *inputs, int32_t *targets) {
  if (!ds)
    return VKF_ERROR_NULL_POINTER;
  const int32_t *base;
  uint64_t n;
  vkf_status st = range_of(ds, split, B, T, inputs, targets, &base, &n);
  if (st != VKF_OK)
    return st;
  for (uint32_t b = 0; b < B; b++) {
    /* consecutive windows, wrapping around the split */
    uint64_t w = index * B + b, starts = n - T;
    uint64_t s = (w * T) % starts;
    memcpy(inputs + (size_t)b * T, base + s, T * sizeof(int32_t));
    memcpy(targets + (size_t)b * T, base + s + 1, T * sizeof(int32_t));
  }
  return VKF_OK;
}
