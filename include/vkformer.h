/*
 * vkformer: train and run transformer models on any Vulkan GPU, or on the CPU.
 *
 * This is the one header an application includes. It needs no Vulkan headers;
 * `vkformer_vulkan.h` adds the optional interop with a host's own Vulkan objects.
 *
 * Conventions
 * - Every fallible call returns a `vkf_status`. `VKF_OK` is 0; errors are
 *   negative. `vkf_context_error()` gives the message of the context's last
 *   error, `vkf_status_name()` the code's name.
 * - The library never aborts, exits or prints. Messages go to the log callback
 *   given in `vkf_context_desc`; with none, nothing is printed anywhere.
 * - Setup structs are zero-initialised by the caller: a zero field means its
 *   default, which is written beside the field.
 * - Tensors are small handles (`vkf_tensor`): index plus generation. Using a
 *   destroyed tensor returns `VKF_ERROR_STALE_HANDLE`; it never crashes.
 * - Thread safety: a context and everything made from it must be used by one
 *   thread at a time (the caller serialises). Different contexts are fully
 *   independent and may be used from different threads at once.
 * - Shapes are row-major, the last dimension contiguous; all dimensions >= 1.
 */
#ifndef VKFORMER_H
#define VKFORMER_H

#include <stddef.h>
#include <stdint.h>

#if defined(VKF_STATIC)
#define VKF_API
#elif defined(_WIN32)
#if defined(VKF_BUILDING)
#define VKF_API __declspec(dllexport)
#else
#define VKF_API __declspec(dllimport)
#endif
#else
#define VKF_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define VKF_VERSION_MAJOR 0
#define VKF_VERSION_MINOR 1
#define VKF_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Status codes. One list: the enum, vkf_status_name() and the default
 * messages all come from it, so tests can assert exact codes.             */
/* ------------------------------------------------------------------------ */
#define VKF_STATUS_LIST(X)                                                                         \
  X(VKF_OK, 0, "success")                                                                          \
  X(VKF_ERROR_INVALID_ARGUMENT, -1, "invalid argument")                                            \
  X(VKF_ERROR_NULL_POINTER, -2, "required pointer is NULL")                                        \
  X(VKF_ERROR_SHAPE_MISMATCH, -3, "tensor shapes do not fit the operation")                        \
  X(VKF_ERROR_DTYPE_MISMATCH, -4, "tensor dtype not supported by operation")                       \
  X(VKF_ERROR_STALE_HANDLE, -5, "handle was destroyed or never created")                           \
  X(VKF_ERROR_OUT_OF_HOST_MEMORY, -6, "out of host memory")                                        \
  X(VKF_ERROR_OUT_OF_DEVICE_MEMORY, -7, "out of device memory")                                    \
  X(VKF_ERROR_DEVICE_LOST, -8, "the device was lost")                                              \
  X(VKF_ERROR_NO_DEVICE, -9, "no such device")                                                     \
  X(VKF_ERROR_UNSUPPORTED, -10, "not supported on this device or build")                           \
  X(VKF_ERROR_VULKAN, -11, "Vulkan call failed")                                                   \
  X(VKF_ERROR_IO, -12, "file input/output failed")                                                 \
  X(VKF_ERROR_FORMAT, -13, "malformed input data")                                                 \
  X(VKF_ERROR_BUFFER_TOO_SMALL, -14, "caller's buffer is too small")                               \
  X(VKF_ERROR_CANCELLED, -15, "operation was cancelled")

typedef enum vkf_status {
#define VKF_STATUS_ENUM_(name, value, msg) name = value,
  VKF_STATUS_LIST(VKF_STATUS_ENUM_)
#undef VKF_STATUS_ENUM_
} vkf_status;

/* "VKF_ERROR_SHAPE_MISMATCH" for VKF_ERROR_SHAPE_MISMATCH; "VKF_STATUS_UNKNOWN"
 * for a value not in the list. Never NULL. */
VKF_API const char *vkf_status_name(vkf_status status);
/* Generic one-line description of a code ("out of device memory"). */
VKF_API const char *vkf_status_string(vkf_status status);

/* ------------------------------------------------------------------------ */
/* Logging and allocation hooks                                             */
/* ------------------------------------------------------------------------ */
typedef enum vkf_log_level {
  VKF_LOG_ERROR = 1,
  VKF_LOG_WARN = 2,
  VKF_LOG_INFO = 3,
  VKF_LOG_DEBUG = 4,
  /* A message of the Khronos validation layer (only when validation is on).
   * Delivered whatever log_level is set: a validation message is a bug. */
  VKF_LOG_VALIDATION = 5,
} vkf_log_level;

typedef void (*vkf_log_fn)(void *user, vkf_log_level level, const char *message);

/* Host memory hooks. All three set, or all NULL for malloc/realloc/free.
 * Device memory is not allocated through these. */
typedef struct vkf_allocator {
  void *(*alloc)(void *user, size_t size);
  void *(*realloc)(void *user, void *ptr, size_t size);
  void (*free)(void *user, void *ptr);
  void *user;
} vkf_allocator;

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */
/* ------------------------------------------------------------------------ */
typedef enum vkf_backend_kind {
  VKF_BACKEND_CPU = 0,
  VKF_BACKEND_VULKAN = 1,
} vkf_backend_kind;

typedef enum vkf_vendor {
  VKF_VENDOR_OTHER = 0,
  VKF_VENDOR_AMD,
  VKF_VENDOR_INTEL,
  VKF_VENDOR_NVIDIA,
  VKF_VENDOR_MESA, /* Mesa software drivers (lavapipe/llvmpipe) */
  VKF_VENDOR_ARM,
  VKF_VENDOR_QUALCOMM,
  VKF_VENDOR_APPLE,
} vkf_vendor;

typedef enum vkf_device_type {
  VKF_DEVICE_TYPE_OTHER = 0,
  VKF_DEVICE_TYPE_DISCRETE_GPU,
  VKF_DEVICE_TYPE_INTEGRATED_GPU,
  VKF_DEVICE_TYPE_VIRTUAL_GPU,
  VKF_DEVICE_TYPE_CPU_VULKAN,  /* a Vulkan driver running on the CPU: lavapipe */
  VKF_DEVICE_TYPE_CPU_BACKEND, /* vkformer's own CPU backend (no Vulkan) */
} vkf_device_type;

typedef struct vkf_device_info {
  char name[256];
  vkf_backend_kind backend;
  vkf_vendor vendor;
  vkf_device_type type;
  uint32_t vendor_id, device_id; /* PCI ids; 0 for the CPU backend */
  char driver_name[64];          /* "llvmpipe", "NVIDIA", "radv", "cpu" */
  char driver_info[128];         /* "Mesa 22.3.6 (LLVM 15.0.6)" */
  uint32_t driver_version;       /* raw, vendor-encoded */
  uint32_t api_version;          /* Vulkan version, VK_MAKE_API_VERSION form */
  uint64_t device_memory_bytes;  /* size of the largest device-local heap */
  uint64_t host_memory_bytes;    /* host-visible heap bytes (UMA: same heap) */
  int uma;                       /* device memory is host-visible */
  uint32_t subgroup_size;        /* default subgroup size; 1 for CPU backend */
  uint32_t subgroup_size_min, subgroup_size_max;
  uint32_t shared_memory_bytes; /* per workgroup */
  uint32_t max_workgroup_invocations;
  uint32_t max_workgroup_count[3];
  uint64_t max_storage_buffer_range; /* bytes one storage binding can see */
  uint64_t max_allocation_bytes;     /* maxMemoryAllocationSize */
  uint64_t max_buffer_bytes;         /* maxBufferSize */
  uint32_t max_allocation_count;
  int fp16_arithmetic;     /* shaderFloat16 */
  int fp16_storage;        /* storageBuffer16BitAccess */
  int bf16_arithmetic;     /* bf16 arithmetic in shaders (VK_KHR_shader_bfloat16) */
  int int8_arithmetic;     /* shaderInt8 */
  int int8_storage;        /* storageBuffer8BitAccess */
  int subgroup_arithmetic; /* subgroup arithmetic ops in compute shaders */
  int timestamps;          /* compute queue timestamps available */
  float timestamp_period_ns;
  /* 0 when vkformer cannot use this device; the reason says why. */
  int usable;
  char unusable_reason[128];
  uint32_t cpu_threads; /* CPU backend: worker threads a context would use */
} vkf_device_info;

/* ------------------------------------------------------------------------ */
/* Context                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct vkf_context vkf_context;

enum vkf_context_flags {
  /* Enable VK_LAYER_KHRONOS_validation (+ synchronisation validation);
   * every message goes to the log as VKF_LOG_VALIDATION. Also enabled by the
   * environment variable VKF_VALIDATION=1. */
  VKF_CONTEXT_VALIDATION = 1u << 0,
  /* Record GPU timestamps around every op, read with vkf_profile_read().
   * Serialises dispatches so that each op's time is its own. */
  VKF_CONTEXT_PROFILE = 1u << 1,
  /* Neither read nor write the on-disk pipeline cache. */
  VKF_CONTEXT_NO_PIPELINE_CACHE = 1u << 2,
  /* Tensors in memory the host cannot map, with staging copies, even on a
   * UMA device; the path discrete GPUs use. Mostly for tests. */
  VKF_CONTEXT_FORCE_STAGING = 1u << 3,
};

typedef struct vkf_context_desc {
  /* Which device. NULL or "" = the best one: discrete GPU > integrated >
   * virtual > CPU-type Vulkan device (lavapipe) > CPU backend.
   * "cpu" = the CPU backend. A decimal number = that index in
   * vkf_enumerate_devices()'s list. Anything else = the first usable device
   * whose name contains it (case-insensitive).
   * The environment variable VKF_DEVICE, when set, overrides this (for
   * debugging); the override is logged. */
  const char *device;
  /* CPU backend worker threads. 0 = number of online CPUs. Env VKF_THREADS
   * overrides. */
  uint32_t cpu_threads;
  uint32_t flags;    /* vkf_context_flags */
  vkf_log_fn log_fn; /* NULL = no output at all */
  void *log_user;
  vkf_log_level log_level; /* 0 = VKF_LOG_INFO; messages above it are dropped */
  vkf_allocator allocator; /* zero = malloc/realloc/free */
  /* Cap on device memory the context allocates, in bytes. 0 = the device's
   * heap size. Allocations past it fail with VKF_ERROR_OUT_OF_DEVICE_MEMORY. */
  uint64_t memory_limit;
  /* Directory of the on-disk pipeline cache. NULL = $XDG_CACHE_HOME/vkformer
   * or ~/.cache/vkformer. */
  const char *pipeline_cache_dir;
  /* Host's own Vulkan objects to adopt: a `const vkf_vulkan_interop *` (see
   * vkformer_vulkan.h). NULL = vkformer creates its own instance/device. */
  const void *vulkan_interop;
} vkf_context_desc;

/* List the devices vkformer sees: every Vulkan physical device (also those
 * it cannot use, with the reason), then the CPU backend, always last.
 * `desc` (may be NULL) supplies logging and flags. Writes at most `capacity`
 * entries and sets *count to the total number; `infos` may be NULL when
 * capacity is 0. Never fails for lack of Vulkan: then only the CPU entry. */
VKF_API vkf_status vkf_enumerate_devices(const vkf_context_desc *desc, vkf_device_info *infos,
                                         uint32_t capacity, uint32_t *count);

/* Create a context on the chosen device. When no device was asked for and
 * Vulkan is unusable (no loader, no driver, no usable device) the context
 * falls back to the CPU backend and logs one message saying why. When a
 * device was asked for and is not there, fails with VKF_ERROR_NO_DEVICE. */
VKF_API vkf_status vkf_context_create(const vkf_context_desc *desc, vkf_context **out);
/* Waits for the device, frees everything made from the context, writes the
 * pipeline cache. NULL is ignored. Never destroys adopted host objects. */
VKF_API void vkf_context_destroy(vkf_context *ctx);
/* Message of the last error on this context ("" when none). The pointer
 * stays valid until the next call on the context. */
VKF_API const char *vkf_context_error(const vkf_context *ctx);
/* The device this context runs on. */
VKF_API vkf_status vkf_context_device(const vkf_context *ctx, vkf_device_info *out);
VKF_API vkf_backend_kind vkf_context_backend(const vkf_context *ctx);
/* Set the CPU backend's worker thread count (>= 1). No effect on Vulkan. */
VKF_API vkf_status vkf_context_set_threads(vkf_context *ctx, uint32_t threads);
/* Submit all recorded work and wait until the device finished it. */
VKF_API vkf_status vkf_synchronize(vkf_context *ctx);

typedef struct vkf_memory_stats {
  uint64_t device_bytes_allocated; /* device memory held in blocks */
  uint64_t device_bytes_used;      /* of that, bytes in live tensors */
  uint64_t device_bytes_peak;      /* high-water mark of bytes used */
  uint32_t device_blocks;          /* vkAllocateMemory calls alive */
  uint32_t tensors;                /* live tensors */
} vkf_memory_stats;
VKF_API vkf_status vkf_memory_stats_get(const vkf_context *ctx, vkf_memory_stats *out);

/* ------------------------------------------------------------------------ */
/* Tensors                                                                  */
/* ------------------------------------------------------------------------ */
#define VKF_MAX_DIMS 4

typedef enum vkf_dtype {
  VKF_DTYPE_F32 = 0,
  VKF_DTYPE_F16 = 1,
  VKF_DTYPE_BF16 = 2,
  VKF_DTYPE_I32 = 3,
} vkf_dtype;

typedef struct vkf_tensor {
  uint32_t id; /* 0 = no tensor (for optional operands) */
} vkf_tensor;

#ifdef __cplusplus
#define VKF_NO_TENSOR (vkf_tensor{0})
#else
#define VKF_NO_TENSOR ((vkf_tensor){0})
#endif

VKF_API size_t vkf_dtype_size(vkf_dtype dtype); /* 0 for an unknown dtype */
VKF_API const char *vkf_dtype_name(vkf_dtype dtype);

/* Create a tensor of `ndim` (1..VKF_MAX_DIMS) dimensions, each >= 1. Its
 * contents are undefined until written. */
VKF_API vkf_status vkf_tensor_create(vkf_context *ctx, vkf_dtype dtype, uint32_t ndim,
                                     const int64_t *shape, vkf_tensor *out);
/* Destroy a tensor or a view. Memory is freed with the last tensor or view
 * that uses it. */
VKF_API vkf_status vkf_tensor_destroy(vkf_context *ctx, vkf_tensor tensor);
/* A tensor that shares `base`'s memory: `ndim`/`shape` elements starting
 * `offset` elements into base (contiguous, same dtype), which must start on
 * a 4-byte boundary. Writes through either are seen by both. A view keeps
 * the memory alive after base is destroyed. */
VKF_API vkf_status vkf_tensor_view(vkf_context *ctx, vkf_tensor base, uint64_t offset,
                                   uint32_t ndim, const int64_t *shape, vkf_tensor *out);

typedef struct vkf_tensor_info {
  vkf_dtype dtype;
  uint32_t ndim;
  int64_t shape[VKF_MAX_DIMS];
  uint64_t elements;
  uint64_t bytes;
} vkf_tensor_info;
VKF_API vkf_status vkf_tensor_info_get(const vkf_context *ctx, vkf_tensor tensor,
                                       vkf_tensor_info *out);

/* Copy the whole tensor from/to host memory. `bytes` must equal the
 * tensor's size. Ordered with the ops recorded before and after; a read
 * waits for the work it depends on. */
VKF_API vkf_status vkf_tensor_write(vkf_context *ctx, vkf_tensor tensor, const void *src,
                                    size_t bytes);
VKF_API vkf_status vkf_tensor_read(vkf_context *ctx, vkf_tensor tensor, void *dst, size_t bytes);
/* Set every element to `value` (converted to the dtype). */
VKF_API vkf_status vkf_tensor_fill(vkf_context *ctx, vkf_tensor tensor, float value);
/* dst = src; same dtype and element count. dst and src may be the same
 * bytes (nothing happens) but must not otherwise overlap. */
VKF_API vkf_status vkf_tensor_copy(vkf_context *ctx, vkf_tensor dst, vkf_tensor src);

/* ------------------------------------------------------------------------ */
/* Ops. Recorded in order, executed on the context's device; on Vulkan many
 * ops go into one command buffer and one submit. All f32 for now.         */
/* ------------------------------------------------------------------------ */
enum vkf_matmul_flags {
  VKF_MATMUL_TRANS_A = 1u << 0,    /* a is stored [.., K, M] */
  VKF_MATMUL_TRANS_B = 1u << 1,    /* b is stored [.., N, K] */
  VKF_MATMUL_ACCUMULATE = 1u << 2, /* c += a·b (+bias) instead of c = */
};

/* c = a · b (+ bias). a is [.., M, K], b is [.., K, N], c is [.., M, N]
 * (stored transposed with the flags). Leading dims are batch dims: a and c
 * have the same batch; b has the same or none (one b for every batch).
 * bias is VKF_NO_TENSOR or [N], added to every row of c. */
VKF_API vkf_status vkf_matmul(vkf_context *ctx, vkf_tensor c, vkf_tensor a, vkf_tensor b,
                              vkf_tensor bias, uint32_t flags);
/* c = a + b and c = a * b elementwise. b has a's shape, or is 1-D with a's
 * last dimension (broadcast over rows). c has a's shape; c may be a or b. */
VKF_API vkf_status vkf_add(vkf_context *ctx, vkf_tensor c, vkf_tensor a, vkf_tensor b);
VKF_API vkf_status vkf_mul(vkf_context *ctx, vkf_tensor c, vkf_tensor a, vkf_tensor b);
/* c = a * s. c has a's shape; c may be a. */
VKF_API vkf_status vkf_scale(vkf_context *ctx, vkf_tensor c, vkf_tensor a, float s);
/* out[r] = sum (or mean) of a's row r, over the last dimension. out holds
 * the leading dims of a (a 1-D a gives a 1-element out). */
VKF_API vkf_status vkf_row_sum(vkf_context *ctx, vkf_tensor out, vkf_tensor a);
VKF_API vkf_status vkf_row_mean(vkf_context *ctx, vkf_tensor out, vkf_tensor a);
/* Softmax over the last dimension. out has a's shape; out may be a. */
VKF_API vkf_status vkf_softmax(vkf_context *ctx, vkf_tensor out, vkf_tensor a);

/* ------------------------------------------------------------------------ */
/* Transformer ops, forward and backward. Conventions (as llm.c):
 * arguments go outputs, inputs, weights, then options; a backward function
 * ADDS into its gradient outputs (dx += ...), so a tensor used twice
 * collects both contributions: zero gradients first (vkf_tensor_fill).    */
/* ------------------------------------------------------------------------ */

/* ---- norm: normalisation: layernorm, rmsnorm ---- */

/* ---- act: activations: gelu, silu, swiglu ---- */

/* ---- embed: embedding, bias gradient ---- */

/* ---- rope: rotary position embedding ---- */

/* ---- attn: attention ---- */

/* ---- xent: loss: softmax cross-entropy ---- */

/* ---- optim: optimiser: adamw, gradient norm and clipping ---- */

/* ------------------------------------------------------------------------ */
/* Profiling (contexts created with VKF_CONTEXT_PROFILE)                    */
/* ------------------------------------------------------------------------ */
typedef struct vkf_op_time {
  char name[48];   /* op name: "matmul", "softmax", ... */
  uint32_t count;  /* times it ran since the last reset */
  double total_ms; /* device time, summed */
} vkf_op_time;

/* Per-op times of the work completed so far, one entry per op name. On the
 * CPU backend these are host wall-clock times. */
VKF_API vkf_status vkf_profile_read(vkf_context *ctx, vkf_op_time *out, uint32_t capacity,
                                    uint32_t *count);
VKF_API vkf_status vkf_profile_reset(vkf_context *ctx);

#ifdef __cplusplus
}
#endif

#endif /* VKFORMER_H */
