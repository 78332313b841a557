/* The context object and its tensor table (frontend-internal). */
#ifndef VKF_CONTEXT_H
#define VKF_CONTEXT_H

#include "backend.h"

/* Backend memory shared by a tensor and its views; freed with the last. */
typedef struct vkf_storage {
  vkf_buffer *buf;
  uint64_t bytes;
  uint32_t refs;
} vkf_storage;

typedef struct vkf_tensor_slot {
  uint16_t generation; /* bumped on destroy; part of the handle */
  bool live;
  vkf_dtype dtype;
  uint32_t ndim;
  int64_t shape[VKF_MAX_DIMS];
  uint64_t elements;
  vkf_storage *storage; /* one reference held */
  uint64_t offset;      /* bytes into the storage (views) */
  uint64_t bytes;
  uint32_t next_free;
} vkf_tensor_slot;

struct vkf_context {
  vkf_env env;
  vkf_backend *be;
  uint32_t flags;
  vkf_tensor_slot *slots;
  uint32_t n_slots, cap_slots;
  uint32_t free_head; /* slot index + 1; 0 = none */
  uint32_t live_tensors;
};

/* Resolve a handle: NULL (with the context's error set to
 * VKF_ERROR_STALE_HANDLE / INVALID_ARGUMENT) when it is not a live tensor. */
vkf_tensor_slot *vkf_ctx_tensor(vkf_context *ctx, vkf_tensor t, const char *what);
vkf_tref vkf_slot_tref(const vkf_tensor_slot *s);
/* True when the two tensors share any byte of memory. */
bool vkf_slots_overlap(const vkf_tensor_slot *a, const vkf_tensor_slot *b);
/* True when the two tensors cover exactly the same bytes. */
static inline bool vkf_slots_same(const vkf_tensor_slot *a, const vkf_tensor_slot *b) {
  return a->storage == b->storage && a->offset == b->offset && a->bytes == b->bytes;
}

/* Helpers for the op API (frontend/ops.c). */
vkf_status vkf_ctx_run(vkf_context *ctx, const vkf_op *op);
/* "[2, 3, 4]" */
void vkf_shape_str(const vkf_tensor_slot *s, char *buf, size_t n);
/* Tensor `t` as operand `name` of function `fn`; requires f32. NULL (error
 * set) otherwise. */
vkf_tensor_slot *vkf_f32_operand(vkf_context *ctx, vkf_tensor t, const char *fn, const char *name);
bool vkf_same_shape(const vkf_tensor_slot *a, const vkf_tensor_slot *b);
/* Sets and returns VKF_ERROR_SHAPE_MISMATCH naming both shapes. */
vkf_status vkf_shape_error(vkf_context *ctx, const char *fn, const char *what,
                           const vkf_tensor_slot *x, const vkf_tensor_slot *y);

/* frontend/optim.c: an optimiser desc checked and folded into the adamw
 * kernel's scalars (also for steps the graph records). */
vkf_status vkf_adamw_params_fill(vkf_context *ctx, const vkf_optim_desc *d, uint64_t n, bool clip,
                                 vkf_adamw_params *p);

/* frontend/embed.c: the per-id position lists of the embedding backward
 * (malloc'd with env's allocator); fixed_cap 0 = exactly the distinct ids. */
vkf_status vkf_embedding_index(vkf_env *env, const int32_t *ids, uint32_t N, uint32_t V,
                               uint32_t fixed_cap, int32_t **out, uint32_t *out_u, size_t *out_n);

/* frontend/rope.c: theta^(-2 / rotary_dim) as a 64-bit binary fraction. */
void vkf_rope_freq_fraction(double theta, uint32_t rotary_dim, uint32_t *hi, uint32_t *lo);

#endif
