/* The context object and its tensor table (frontend-internal). */
#ifndef VKF_CONTEXT_H
#define VKF_CONTEXT_H

#include "backend.h"

typedef struct vkf_tensor_slot {
  uint16_t generation; /* bumped on destroy; part of the handle */
  bool live;
  vkf_dtype dtype;
  uint32_t ndim;
  int64_t shape[VKF_MAX_DIMS];
  uint64_t elements;
  vkf_buffer *buf; /* owned */
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

#endif
