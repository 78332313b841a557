/* Context creation, device choice, tensors. */
#include "context.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Handle layout: low 18 bits slot index + 1, high 14 bits generation. */
#define SLOT_BITS 18u
#define SLOT_MASK ((1u << SLOT_BITS) - 1u)
#define GEN_MASK ((1u << (32u - SLOT_BITS)) - 1u)

static const char *device_type_name(vkf_device_type t) {
  switch (t) {
  case VKF_DEVICE_TYPE_DISCRETE_GPU:
    return "discrete GPU";
  case VKF_DEVICE_TYPE_INTEGRATED_GPU:
    return "integrated GPU";
  case VKF_DEVICE_TYPE_VIRTUAL_GPU:
    return "virtual GPU";
  case VKF_DEVICE_TYPE_CPU_VULKAN:
    return "CPU Vulkan device";
  case VKF_DEVICE_TYPE_CPU_BACKEND:
    return "CPU backend";
  default:
    return "other";
  }
}

/* Lower is preferred. */
static int type_rank(vkf_device_type t) {
  switch (t) {
  case VKF_DEVICE_TYPE_DISCRETE_GPU:
    return 0;
  case VKF_DEVICE_TYPE_INTEGRATED_GPU:
    return 1;
  case VKF_DEVICE_TYPE_VIRTUAL_GPU:
    return 2;
  case VKF_DEVICE_TYPE_CPU_VULKAN:
    return 3;
  default:
    return 4;
  }
}

static void log_capabilities(const vkf_env *env, uint32_t index, const vkf_device_info *d) {
  if (d->backend == VKF_BACKEND_CPU) {
    vkf_log(env, VKF_LOG_INFO, "device %u: %s [cpu backend] threads %u", index, d->name,
            d->cpu_threads);
    return;
  }
  vkf_log(env, VKF_LOG_INFO,
          "device %u: %s [%s] driver %s %s, Vulkan %u.%u.%u, %llu MiB%s, subgroup %u (%u-%u), "
          "shared %u KiB, storage range %llu MiB, fp16 %s/%s, int8 %s/%s, bf16 %s, "
          "subgroup-arith %s, timestamps %s%s%s",
          index, d->name, device_type_name(d->type), d->driver_name, d->driver_info,
          d->api_version >> 22, (d->api_version >> 12) & 0x3ffu, d->api_version & 0xfffu,
          (unsigned long long)(d->device_memory_bytes >> 20), d->uma ? " UMA" : "",
          d->subgroup_size, d->subgroup_size_min, d->subgroup_size_max,
          d->shared_memory_bytes / 1024, (unsigned long long)(d->max_storage_buffer_range >> 20),
          d->fp16_arithmetic ? "arith" : "-", d->fp16_storage ? "storage" : "-",
          d->int8_arithmetic ? "arith" : "-", d->int8_storage ? "storage" : "-",
          d->bf16_arithmetic ? "yes" : "no", d->subgroup_arithmetic ? "yes" : "no",
          d->timestamps ? "yes" : "no",
          d->usable ? "" : ", UNUSABLE: ", d->usable ? "" : d->unusable_reason);
}

static vkf_vk_options vk_options(const vkf_context_desc *desc, uint32_t flags) {
  vkf_vk_options o = {0};
  o.flags = flags;
  if (desc) {
    o.memory_limit = desc->memory_limit;
    o.pipeline_cache_dir = desc->pipeline_cache_dir;
    o.interop = desc->vulkan_interop;
  }
  return o;
}

static uint32_t effective_flags(const vkf_context_desc *desc) {
  uint32_t flags = desc ? desc->flags : 0;
  const char *v = getenv("VKF_VALIDATION");
  if (v && *v && strcmp(v, "0") != 0)
    flags |= VKF_CONTEXT_VALIDATION;
  return flags;
}

static uint32_t effective_threads(const vkf_context_desc *desc) {
  const char *v = getenv("VKF_THREADS");
  if (v && *v) {
    long n = strtol(v, NULL, 10);
    if (n >= 1 && n <= 1024)
      return (uint32_t)n;
  }
  if (desc && desc->cpu_threads)
    return desc->cpu_threads;
  return vkf_cpu_default_threads();
}

static void storage_release(vkf_context *ctx, vkf_storage *st) {
  if (st && --st->refs == 0) {
    ctx->be->vt->buffer_destroy(ctx->be, st->buf);
    vkf_free(&ctx->env, st);
  }
}

vkf_status vkf_enumerate_devices(const vkf_context_desc *desc, vkf_device_info *infos,
                                 uint32_t capacity, uint32_t *count) {
  if (!count || (capacity && !infos))
    return VKF_ERROR_NULL_POINTER;
  vkf_env env;
  vkf_env_init(&env, desc);
  vkf_vk_options opt = vk_options(desc, effective_flags(desc));
  opt.interop = NULL;
  uint32_t n_vk = 0;
  vkf_status st = vkf_vk_enumerate(&env, &opt, infos, capacity, &n_vk);
  if (st != VKF_OK)
    n_vk = 0;
  if (n_vk < capacity)
    vkf_cpu_device_info(effective_threads(desc), &infos[n_vk]);
  *count = n_vk + 1;
  return VKF_OK;
}

static bool parse_index(const char *s, uint32_t *out) {
  if (!*s)
    return false;
  unsigned long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9')
      return false;
    v = v * 10 + (unsigned long)(*p - '0');
    if (v > 1000000)
      return false;
  }
  *out = (uint32_t)v;
  return true;
}

/* Chooses the device and creates the backend. */
static vkf_status create_backend(vkf_context *ctx, const vkf_context_desc *desc) {
  vkf_env *env = &ctx->env;
  uint32_t threads = effective_threads(desc);
  bool profiling = (ctx->flags & VKF_CONTEXT_PROFILE) != 0;
  vkf_vk_options opt = vk_options(desc, ctx->flags);

  if (opt.interop) {
    vkf_status st = vkf_vk_backend_create(env, &opt, 0, &ctx->be);
    if (st == VKF_OK)
      log_capabilities(env, 0, &ctx->be->info);
    return st;
  }

  const char *sel = desc ? desc->device : NULL;
  const char *ov = getenv("VKF_DEVICE");
  if (ov && *ov) {
    vkf_log(env, VKF_LOG_INFO, "VKF_DEVICE=%s overrides the requested device (%s)", ov,
            sel && *sel ? sel : "auto");
    sel = ov;
  }
  bool automatic = !sel || !*sel;
  if (!automatic && vkf_contains_nocase(sel, "cpu") && strlen(sel) == 3)
    return vkf_cpu_backend_create(env, threads, profiling, opt.memory_limit, &ctx->be);

  enum { MAX_DEV = 16 };
  vkf_device_info devs[MAX_DEV];
  uint32_t n = 0;
  vkf_status st = vkf_vk_enumerate(env, &opt, devs, MAX_DEV, &n);
  char why[600];
  if (st != VKF_OK) {
    snprintf(why, sizeof(why), "%s", env->error);
    n = 0;
  } else if (n > MAX_DEV) {
    n = MAX_DEV;
  }
  for (uint32_t i = 0; i < n; i++)
    log_capabilities(env, i, &devs[i]);

  int chosen = -1;
  if (automatic) {
    int best_rank = 99;
    for (uint32_t i = 0; i < n; i++) {
      if (devs[i].usable && type_rank(devs[i].type) < best_rank) {
        best_rank = type_rank(devs[i].type);
        chosen = (int)i;
      }
    }
    if (chosen < 0 && st == VKF_OK) {
      if (n == 0)
        snprintf(why, sizeof(why), "the Vulkan driver reports no device");
      else
        snprintf(why, sizeof(why), "no Vulkan device is usable (device 0: %s)",
                 devs[0].unusable_reason);
    }
  } else {
    uint32_t idx;
    if (parse_index(sel, &idx)) {
      if (idx == n)
        return vkf_cpu_backend_create(env, threads, profiling, opt.memory_limit, &ctx->be);
      if (idx > n)
        return vkf_fail(env, VKF_ERROR_NO_DEVICE,
                        "device index %u requested, but only %u Vulkan device(s)%s%s and the CPU "
                        "backend (index %u) exist",
                        idx, n, st != VKF_OK ? ": " : "", st != VKF_OK ? why : "", n);
      if (!devs[idx].usable)
        return vkf_fail(env, VKF_ERROR_UNSUPPORTED, "device %u (%s) is not usable: %s", idx,
                        devs[idx].name, devs[idx].unusable_reason);
      chosen = (int)idx;
    } else {
      for (uint32_t i = 0; i < n && chosen < 0; i++)
        if (devs[i].usable && vkf_contains_nocase(devs[i].name, sel))
          chosen = (int)i;
      if (chosen < 0)
        return vkf_fail(env, VKF_ERROR_NO_DEVICE, "no usable device matches \"%s\"%s%s", sel,
                        st != VKF_OK ? ": " : "", st != VKF_OK ? why : "");
    }
  }

  if (chosen >= 0) {
    st = vkf_vk_backend_create(env, &opt, (uint32_t)chosen, &ctx->be);
    if (st == VKF_OK) {
      vkf_log(env, VKF_LOG_INFO, "using device %d: %s", chosen, ctx->be->info.name);
      return VKF_OK;
    }
    if (!automatic)
      return st;
    snprintf(why, sizeof(why), "creating the Vulkan device failed: %s", env->error);
  }
  vkf_log(env, VKF_LOG_WARN, "using the CPU backend: %s", why);
  return vkf_cpu_backend_create(env, threads, profiling, opt.memory_limit, &ctx->be);
}

vkf_status vkf_context_create(const vkf_context_desc *desc, vkf_context **out) {
  if (!out)
    return VKF_ERROR_NULL_POINTER;
  *out = NULL;
  vkf_env env;
  vkf_env_init(&env, desc);
  if (desc && (!!desc->allocator.alloc + !!desc->allocator.realloc + !!desc->allocator.free) % 3) {
    vkf_log(&env, VKF_LOG_ERROR, "vkf_context_desc.allocator: set all three functions or none");
    return VKF_ERROR_INVALID_ARGUMENT;
  }
  vkf_context *ctx = vkf_calloc(&env, 1, sizeof(*ctx));
  if (!ctx)
    return VKF_ERROR_OUT_OF_HOST_MEMORY;
  ctx->env = env;
  ctx->flags = effective_flags(desc);
  vkf_status st = create_backend(ctx, desc);
  if (st != VKF_OK) {
    vkf_log(&ctx->env, VKF_LOG_ERROR, "context creation failed: %s: %s", vkf_status_name(st),
            ctx->env.error);
    vkf_free(&env, ctx);
    return st;
  }
  /* a fallback's reason was logged; the new context has no error */
  ctx->env.error[0] = 0;
  ctx->env.error_status = VKF_OK;
  *out = ctx;
  return VKF_OK;
}

void vkf_context_destroy(vkf_context *ctx) {
  if (!ctx)
    return;
  if (ctx->be) {
    ctx->be->vt->synchronize(ctx->be);
    for (uint32_t i = 0; i < ctx->n_slots; i++)
      if (ctx->slots[i].live)
        storage_release(ctx, ctx->slots[i].storage);
    ctx->be->vt->destroy(ctx->be);
  }
  vkf_env env = ctx->env;
  vkf_free(&env, ctx->slots);
  vkf_free(&env, ctx);
}

const char *vkf_context_error(const vkf_context *ctx) {
  return ctx ? ctx->env.error : "";
}

vkf_status vkf_context_device(const vkf_context *ctx, vkf_device_info *out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!out)
    return vkf_fail((vkf_env *)&ctx->env, VKF_ERROR_NULL_POINTER,
                    "vkf_context_device: out is NULL");
  *out = ctx->be->info;
  return VKF_OK;
}

vkf_backend_kind vkf_context_backend(const vkf_context *ctx) {
  return ctx ? ctx->be->info.backend : VKF_BACKEND_CPU;
}

vkf_status vkf_context_set_threads(vkf_context *ctx, uint32_t threads) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (threads < 1 || threads > 1024)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "thread count %u not in 1..1024",
                    threads);
  return ctx->be->vt->set_threads(ctx->be, threads);
}

vkf_status vkf_synchronize(vkf_context *ctx) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  return ctx->be->vt->synchronize(ctx->be);
}

vkf_status vkf_memory_stats_get(const vkf_context *ctx, vkf_memory_stats *out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!out)
    return vkf_fail((vkf_env *)&ctx->env, VKF_ERROR_NULL_POINTER,
                    "vkf_memory_stats_get: out is NULL");
  memset(out, 0, sizeof(*out));
  ctx->be->vt->memory_stats(ctx->be, out);
  out->tensors = ctx->live_tensors;
  return VKF_OK;
}

vkf_status vkf_profile_read(vkf_context *ctx, vkf_op_time *out, uint32_t capacity,
                            uint32_t *count) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!count || (capacity && !out))
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER,
                    "vkf_profile_read: count is NULL, or out is NULL with capacity %u", capacity);
  if (!ctx->be->profiling)
    return vkf_fail(&ctx->env, VKF_ERROR_UNSUPPORTED,
                    "profiling is off: create the context with VKF_CONTEXT_PROFILE");
  vkf_status st = ctx->be->vt->synchronize(ctx->be);
  if (st != VKF_OK)
    return st;
  uint32_t n = 0;
  for (uint32_t k = 0; k < VKF_OP_COUNT; k++) {
    if (!ctx->be->profile.count[k])
      continue;
    if (n < capacity) {
      snprintf(out[n].name, sizeof(out[n].name), "%s", vkf_op_name((vkf_op_kind)k));
      out[n].count = ctx->be->profile.count[k];
      out[n].total_ms = ctx->be->profile.ms[k];
    }
    n++;
  }
  *count = n;
  return VKF_OK;
}

vkf_status vkf_profile_reset(vkf_context *ctx) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_status st = ctx->be->vt->synchronize(ctx->be);
  memset(&ctx->be->profile, 0, sizeof(ctx->be->profile));
  return st;
}

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */
/* ------------------------------------------------------------------------ */
size_t vkf_dtype_size(vkf_dtype dtype) {
  switch (dtype) {
  case VKF_DTYPE_F32:
  case VKF_DTYPE_I32:
    return 4;
  case VKF_DTYPE_F16:
  case VKF_DTYPE_BF16:
    return 2;
  }
  return 0;
}

const char *vkf_dtype_name(vkf_dtype dtype) {
  switch (dtype) {
  case VKF_DTYPE_F32:
    return "f32";
  case VKF_DTYPE_F16:
    return "f16";
  case VKF_DTYPE_BF16:
    return "bf16";
  case VKF_DTYPE_I32:
    return "i32";
  }
  return "unknown";
}

vkf_tensor_slot *vkf_ctx_tensor(vkf_context *ctx, vkf_tensor t, const char *what) {
  uint32_t idx = t.id & SLOT_MASK;
  if (idx == 0) {
    vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: no tensor given (id 0)", what);
    return NULL;
  }
  uint32_t gen = t.id >> SLOT_BITS;
  if (idx > ctx->n_slots || !ctx->slots[idx - 1].live || ctx->slots[idx - 1].generation != gen) {
    vkf_fail(&ctx->env, VKF_ERROR_STALE_HANDLE,
             "%s: tensor handle 0x%08x is stale (destroyed, or from another context)", what, t.id);
    return NULL;
  }
  return &ctx->slots[idx - 1];
}

vkf_tref vkf_slot_tref(const vkf_tensor_slot *s) {
  return (vkf_tref){s->storage->buf, s->offset, s->bytes};
}

bool vkf_slots_overlap(const vkf_tensor_slot *a, const vkf_tensor_slot *b) {
  return a->storage == b->storage && a->offset < b->offset + b->bytes &&
         b->offset < a->offset + a->bytes;
}

/* Takes a free slot (growing the table); returns its index or UINT32_MAX. */
static uint32_t slot_take(vkf_context *ctx) {
  uint32_t idx;
  if (ctx->free_head) {
    idx = ctx->free_head - 1;
    ctx->free_head = ctx->slots[idx].next_free;
    return idx;
  }
  if (ctx->n_slots == SLOT_MASK) {
    vkf_fail(&ctx->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "too many live tensors (%u)", SLOT_MASK);
    return UINT32_MAX;
  }
  if (ctx->n_slots == ctx->cap_slots) {
    uint32_t cap = ctx->cap_slots ? ctx->cap_slots * 2 : 64;
    vkf_tensor_slot *s = vkf_realloc(&ctx->env, ctx->slots, cap * sizeof(*s));
    if (!s) {
      vkf_fail(&ctx->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "tensor table");
      return UINT32_MAX;
    }
    ctx->slots = s;
    ctx->cap_slots = cap;
  }
  idx = ctx->n_slots++;
  memset(&ctx->slots[idx], 0, sizeof(ctx->slots[idx]));
  return idx;
}

static void slot_give(vkf_context *ctx, uint32_t idx) {
  vkf_tensor_slot *s = &ctx->slots[idx];
  s->live = false;
  s->storage = NULL;
  s->generation = (uint16_t)((s->generation + 1) & GEN_MASK);
  s->next_free = ctx->free_head;
  ctx->free_head = idx + 1;
}

static vkf_tensor slot_handle(vkf_context *ctx, uint32_t idx) {
  return (vkf_tensor){(idx + 1) | ((uint32_t)ctx->slots[idx].generation << SLOT_BITS)};
}

/* Checks dtype, ndim and shape; returns the element count or 0 (error set). */
static uint64_t check_shape(vkf_context *ctx, const char *fn, vkf_dtype dtype, uint32_t ndim,
                            const int64_t *shape) {
  if (!vkf_dtype_size(dtype)) {
    vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: unknown dtype %d", fn, (int)dtype);
    return 0;
  }
  if (ndim < 1 || ndim > VKF_MAX_DIMS) {
    vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT, "%s: ndim %u not in 1..%d", fn, ndim,
             VKF_MAX_DIMS);
    return 0;
  }
  uint64_t elements = 1;
  for (uint32_t i = 0; i < ndim; i++) {
    if (shape[i] < 1 || shape[i] > (int64_t)UINT32_MAX) {
      vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
               "%s: dimension %u is %lld, must be in 1..2^32-1", fn, i, (long long)shape[i]);
      return 0;
    }
    elements *= (uint64_t)shape[i];
    if (elements > UINT32_MAX) {
      vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
               "%s: %llu+ elements, more than the 2^32-1 supported", fn,
               (unsigned long long)elements);
      return 0;
    }
  }
  return elements;
}

static void slot_fill(vkf_tensor_slot *s, vkf_dtype dtype, uint32_t ndim, const int64_t *shape,
                      uint64_t elements, vkf_storage *storage, uint64_t offset) {
  s->live = true;
  s->dtype = dtype;
  s->ndim = ndim;
  for (uint32_t i = 0; i < VKF_MAX_DIMS; i++)
    s->shape[i] = i < ndim ? shape[i] : 1;
  s->elements = elements;
  s->bytes = elements * vkf_dtype_size(dtype);
  s->storage = storage;
  s->offset = offset;
}

vkf_status vkf_tensor_create(vkf_context *ctx, vkf_dtype dtype, uint32_t ndim, const int64_t *shape,
                             vkf_tensor *out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!shape || !out)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_tensor_create: shape or out is NULL");
  *out = VKF_NO_TENSOR;
  uint64_t elements = check_shape(ctx, "vkf_tensor_create", dtype, ndim, shape);
  if (!elements)
    return ctx->env.error_status;
  uint32_t idx = slot_take(ctx);
  if (idx == UINT32_MAX)
    return ctx->env.error_status;
  vkf_storage *storage = vkf_calloc(&ctx->env, 1, sizeof(*storage));
  if (!storage) {
    slot_give(ctx, idx);
    return vkf_fail(&ctx->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "tensor storage");
  }
  storage->bytes = elements * vkf_dtype_size(dtype);
  storage->refs = 1;
  vkf_status st = ctx->be->vt->buffer_create(ctx->be, storage->bytes, &storage->buf);
  if (st != VKF_OK) {
    vkf_free(&ctx->env, storage);
    slot_give(ctx, idx);
    return st;
  }
  slot_fill(&ctx->slots[idx], dtype, ndim, shape, elements, storage, 0);
  ctx->live_tensors++;
  *out = slot_handle(ctx, idx);
  return VKF_OK;
}

vkf_status vkf_tensor_view(vkf_context *ctx, vkf_tensor base, uint64_t offset, uint32_t ndim,
                           const int64_t *shape, vkf_tensor *out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!shape || !out)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_tensor_view: shape or out is NULL");
  *out = VKF_NO_TENSOR;
  vkf_tensor_slot *b = vkf_ctx_tensor(ctx, base, "vkf_tensor_view");
  if (!b)
    return ctx->env.error_status;
  vkf_dtype dtype = b->dtype;
  uint64_t elements = check_shape(ctx, "vkf_tensor_view", dtype, ndim, shape);
  if (!elements)
    return ctx->env.error_status;
  if (offset > b->elements || elements > b->elements - offset)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH,
                    "vkf_tensor_view: elements [%llu, %llu) are outside the base's %llu",
                    (unsigned long long)offset, (unsigned long long)(offset + elements),
                    (unsigned long long)b->elements);
  uint64_t off_bytes = b->offset + offset * vkf_dtype_size(dtype);
  if (off_bytes % 4)
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "vkf_tensor_view: a view must start on a 4-byte boundary");
  vkf_storage *storage = b->storage;
  uint32_t idx = slot_take(ctx); /* may move the table: b is stale after */
  if (idx == UINT32_MAX)
    return ctx->env.error_status;
  storage->refs++;
  slot_fill(&ctx->slots[idx], dtype, ndim, shape, elements, storage, off_bytes);
  ctx->live_tensors++;
  *out = slot_handle(ctx, idx);
  return VKF_OK;
}

vkf_status vkf_tensor_destroy(vkf_context *ctx, vkf_tensor t) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *s = vkf_ctx_tensor(ctx, t, "vkf_tensor_destroy");
  if (!s)
    return ctx->env.error_status;
  storage_release(ctx, s->storage);
  slot_give(ctx, (uint32_t)(s - ctx->slots));
  ctx->live_tensors--;
  return VKF_OK;
}

vkf_status vkf_tensor_info_get(const vkf_context *cctx, vkf_tensor t, vkf_tensor_info *out) {
  vkf_context *ctx = (vkf_context *)cctx; /* only the error message changes */
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!out)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_tensor_info_get: out is NULL");
  vkf_tensor_slot *s = vkf_ctx_tensor(ctx, t, "vkf_tensor_info_get");
  if (!s)
    return ctx->env.error_status;
  out->dtype = s->dtype;
  out->ndim = s->ndim;
  memcpy(out->shape, s->shape, sizeof(out->shape));
  out->elements = s->elements;
  out->bytes = s->bytes;
  return VKF_OK;
}

static vkf_tensor_slot *io_slot(vkf_context *ctx, vkf_tensor t, const void *p, size_t bytes,
                                const char *what) {
  if (!p) {
    vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "%s: data pointer is NULL", what);
    return NULL;
  }
  vkf_tensor_slot *s = vkf_ctx_tensor(ctx, t, what);
  if (s && bytes != s->bytes) {
    vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH, "%s: %zu bytes given, the tensor has %llu", what,
             bytes, (unsigned long long)s->bytes);
    return NULL;
  }
  return s;
}

vkf_status vkf_tensor_write(vkf_context *ctx, vkf_tensor t, const void *src, size_t bytes) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *s = io_slot(ctx, t, src, bytes, "vkf_tensor_write");
  if (!s)
    return ctx->env.error_status;
  return ctx->be->vt->write(ctx->be, vkf_slot_tref(s), src);
}

vkf_status vkf_tensor_read(vkf_context *ctx, vkf_tensor t, void *dst, size_t bytes) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *s = io_slot(ctx, t, dst, bytes, "vkf_tensor_read");
  if (!s)
    return ctx->env.error_status;
  return ctx->be->vt->read(ctx->be, vkf_slot_tref(s), dst);
}

vkf_status vkf_tensor_copy(vkf_context *ctx, vkf_tensor dst, vkf_tensor src) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_tensor_slot *d = vkf_ctx_tensor(ctx, dst, "vkf_tensor_copy: dst");
  if (!d)
    return ctx->env.error_status;
  vkf_tensor_slot *s = vkf_ctx_tensor(ctx, src, "vkf_tensor_copy: src");
  if (!s)
    return ctx->env.error_status;
  if (d->dtype != s->dtype)
    return vkf_fail(&ctx->env, VKF_ERROR_DTYPE_MISMATCH, "vkf_tensor_copy: dtypes %s and %s",
                    vkf_dtype_name(d->dtype), vkf_dtype_name(s->dtype));
  if (d->elements != s->elements)
    return vkf_fail(&ctx->env, VKF_ERROR_SHAPE_MISMATCH, "vkf_tensor_copy: %llu elements into %llu",
                    (unsigned long long)s->elements, (unsigned long long)d->elements);
  if (vkf_slots_same(d, s))
    return VKF_OK; /* the same bytes: nothing to do */
  if (vkf_slots_overlap(d, s))
    return vkf_fail(&ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "vkf_tensor_copy: dst and src partly overlap (views of one storage)");
  return ctx->be->vt->copy(ctx->be, vkf_slot_tref(d), vkf_slot_tref(s));
}

/* ------------------------------------------------------------------------ */
/* Captured programs                                                        */
/* ------------------------------------------------------------------------ */
vkf_status vkf_capture_begin(vkf_context *ctx) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  return ctx->be->vt->capture_begin(ctx->be);
}

vkf_status vkf_capture_end(vkf_context *ctx, vkf_program **out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!out)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_capture_end: out is NULL");
  return ctx->be->vt->capture_end(ctx->be, out);
}

vkf_status vkf_program_replay(vkf_context *ctx, vkf_program *program) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!program)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_program_replay: program is NULL");
  return ctx->be->vt->replay(ctx->be, program);
}

void vkf_program_destroy(vkf_context *ctx, vkf_program *program) {
  if (ctx && program)
    ctx->be->vt->program_destroy(ctx->be, program);
}
