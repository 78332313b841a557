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

/* Layer normalisation over the last dimension. C is x's last dimension and
 * rows the product of the others (any number of leading dims; a 1-D x is
 * one row):
 *   mean[r]  = sum_c x[r, c] / C
 *   rstd[r]  = 1 / sqrt(sum_c (x[r, c] - mean[r])^2 / C + eps)  (biased variance)
 *   out[r, c] = (x[r, c] - mean[r]) * rstd[r] * weight[c] + bias[c]
 * out:    x's shape. May be x itself (in place); no other overlap.
 * mean, rstd: VKF_NO_TENSOR (not saved, as for inference), or `rows`
 *         elements shaped [rows], as x's leading dims, or as those with a
 *         trailing 1 (ONNX's Mean/InvStdDev). What vkf_layernorm_backward
 *         needs. They must not overlap any other operand.
 * weight: [C]. bias: [C] or VKF_NO_TENSOR.
 * eps:    finite and >= 0 (else VKF_ERROR_INVALID_ARGUMENT).
 * To normalise over several trailing axes (ONNX axis < -1), pass views that
 * flatten them into one. The CPU backend computes the statistics in double;
 * Vulkan in float, two-pass (mean, then the centred variance). */
VKF_API vkf_status vkf_layernorm_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor mean,
                                         vkf_tensor rstd, vkf_tensor x, vkf_tensor weight,
                                         vkf_tensor bias, float eps);
/* Backward of vkf_layernorm_forward, from dout (x's shape), the forward's x
 * and weight, and its saved mean and rstd (shapes as there):
 *   xhat = (x - mean) * rstd,  g = dout * weight
 *   dx      += rstd * (g - sum_c(g) / C - xhat * sum_c(g * xhat) / C)
 *   dweight += sum_r dout * xhat
 *   dbias   += sum_r dout
 * dx (x's shape), dweight and dbias ([C]) are each optional (VKF_NO_TENSOR:
 * not computed; dbias is only meaningful when the forward had a bias), but
 * at least one must be given (else VKF_ERROR_INVALID_ARGUMENT). They must
 * not overlap each other or any input. The sums over rows run in a fixed
 * order without atomics: results are reproducible bit for bit on a device,
 * and on the CPU backend also independent of the thread count. */
VKF_API vkf_status vkf_layernorm_backward(vkf_context *ctx, vkf_tensor dx, vkf_tensor dweight,
                                          vkf_tensor dbias, vkf_tensor dout, vkf_tensor x,
                                          vkf_tensor weight, vkf_tensor mean, vkf_tensor rstd);
/* RMS normalisation over the last dimension (shapes and rules as layernorm):
 *   rstd[r]   = 1 / sqrt(sum_c x[r, c]^2 / C + eps)
 *   out[r, c] = x[r, c] * rstd[r] * weight[c]
 * rstd may be VKF_NO_TENSOR (not saved). */
VKF_API vkf_status vkf_rmsnorm_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor rstd,
                                       vkf_tensor x, vkf_tensor weight, float eps);
/* Backward of vkf_rmsnorm_forward (rules as vkf_layernorm_backward):
 *   xhat = x * rstd,  g = dout * weight
 *   dx      += rstd * (g - xhat * sum_c(g * xhat) / C)
 *   dweight += sum_r dout * xhat
 * dx and dweight are optional, at least one given. */
VKF_API vkf_status vkf_rmsnorm_backward(vkf_context *ctx, vkf_tensor dx, vkf_tensor dweight,
                                        vkf_tensor dout, vkf_tensor x, vkf_tensor weight,
                                        vkf_tensor rstd);

/* ---- act: activations: gelu, silu, swiglu ---- */

/* Elementwise activations. out (dx, dout) have x's shape. A forward's out
 * may be x itself (in place), no other overlap; a backward's dx must not
 * overlap dout or x. Backward: dx += dout * f'(x). */
typedef enum vkf_gelu_approx {
  VKF_GELU_ERF = 0,  /* exact: x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2))) (ONNX "none") */
  VKF_GELU_TANH = 1, /* GPT-2: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (ONNX "tanh") */
} vkf_gelu_approx;
VKF_API vkf_status vkf_gelu_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor x,
                                    vkf_gelu_approx approx);
VKF_API vkf_status vkf_gelu_backward(vkf_context *ctx, vkf_tensor dx, vkf_tensor dout, vkf_tensor x,
                                     vkf_gelu_approx approx);
/* silu(x) = x * sigmoid(x) (also called swish). */
VKF_API vkf_status vkf_silu_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor x);
VKF_API vkf_status vkf_silu_backward(vkf_context *ctx, vkf_tensor dx, vkf_tensor dout,
                                     vkf_tensor x);
/* SwiGLU on a fused gate/up projection. gate_up is [.., 2F]: each row holds
 * the gate (first F values) then the up projection (last F); out is
 * [.., F] with gate_up's leading dims:
 *   out[.., j] = silu(gate_up[.., j]) * gate_up[.., F + j]
 * This is what one matmul with the concatenated weight produces: with
 * Llama's gate_proj.weight and up_proj.weight (each [F, C]) stored one after
 * the other as a [2F, C] tensor w, vkf_matmul(ctx, gate_up, x, w, VKF_NO_TENSOR,
 * VKF_MATMUL_TRANS_B) computes both projections in one pass over x, and the
 * backward is one matmul for dx and one for dw. out must not overlap
 * gate_up.
 * Backward: dgate_up [.., 2F] += (dout * up * silu'(gate), dout * silu(gate));
 * dgate_up must not overlap dout or gate_up. */
VKF_API vkf_status vkf_swiglu_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor gate_up);
VKF_API vkf_status vkf_swiglu_backward(vkf_context *ctx, vkf_tensor dgate_up, vkf_tensor dout,
                                       vkf_tensor gate_up);

/* ---- embed: embedding, bias gradient ---- */

/* Token plus learned position embedding:
 *   out[b, t, :] = wte[tokens[b, t], :] + wpe[pos_offset + t, :]
 * tokens: i32 [B, T] or [T]; wte: [V, C]; wpe: [P, C], or VKF_NO_TENSOR for
 * no position term; out: tokens' shape + [C]. Needs pos_offset + T <= P.
 * out must not overlap the other operands.
 * Token ids are checked on the host before the op is recorded: the ids are
 * read back (a plain copy on the CPU backend and for host-mapped device
 * memory; otherwise it waits for the work recorded so far). An id outside
 * [0, V) fails with VKF_ERROR_INVALID_ARGUMENT naming its position and
 * nothing is recorded. The kernels bounds-check ids as well, so no id can
 * reach memory outside wte. */
VKF_API vkf_status vkf_embedding(vkf_context *ctx, vkf_tensor out, vkf_tensor tokens,
                                 vkf_tensor wte, vkf_tensor wpe, uint32_t pos_offset);
/* Backward of vkf_embedding; adds:
 *   dwte[v, :] += sum of dout[b, t, :] over the (b, t) with tokens[b, t] == v
 *   dwpe[pos_offset + t, :] += sum over b of dout[b, t, :]
 * dwte [V, C] and dwpe [P, C] are each optional (VKF_NO_TENSOR), not both.
 * Deterministic: each sum is taken in a fixed order of (b, t) that both
 * backends share (see vkf_embedding_backward_params), so the result has the
 * same bits on every run, on either backend, however often ids repeat (no
 * float atomics). Token ids are checked on the host as in vkf_embedding,
 * which also builds the per-id lists the kernels use. */
VKF_API vkf_status vkf_embedding_backward(vkf_context *ctx, vkf_tensor dwte, vkf_tensor dwpe,
                                          vkf_tensor dout, vkf_tensor tokens, uint32_t pos_offset);
/* Bias gradient: dbias[j] += sum over all leading indices of dout[..., j].
 * dbias: [N]; dout: [..., N]. Deterministic (fixed reduction order per
 * device; on Vulkan a two-stage reduction without atomics). */
VKF_API vkf_status vkf_bias_backward(vkf_context *ctx, vkf_tensor dbias, vkf_tensor dout);

/* ---- rope: rotary position embedding ---- */

enum vkf_rope_flags {
  /* Pairs (2i, 2i+1) (GPT-J; ONNX interleaved=1). Default: pairs
   * (i, i + rotary_dim/2), "rotate half" (GPT-NeoX, Hugging Face Llama). */
  VKF_ROPE_INTERLEAVED = 1u << 0,
  /* x is [B, H, T, D] (ONNX 4-D layout). Default: [B, T, H, D]. */
  VKF_ROPE_HEADS_FIRST = 1u << 1,
};

/* Options of vkf_rope / vkf_rope_backward; zero-initialise, NULL = all
 * defaults. */
typedef struct vkf_rope_desc {
  uint32_t flags;      /* vkf_rope_flags */
  uint32_t rotary_dim; /* rotate the first rotary_dim dims of each head (even,
                          <= D); the rest pass through. 0 = D */
  double theta;        /* frequency base (> 1): pair i turns by
                          position * theta^(-2i / rotary_dim). 0 = 10000 */
  int32_t pos_offset;  /* token t sits at position pos_offset + t (KV-cache
                          decoding); must be 0 with position_ids */
  /* Optional i32 [B, T]: the position of each token instead. */
  vkf_tensor position_ids;
  /* Optional f32 tables used instead of theta (ONNX RotaryEmbedding), both or
   * neither, same shape: [P, rotary_dim/2] indexed by position (positions
   * must lie in [0, P)), or [B, T, rotary_dim/2] indexed by (b, t) (then no
   * position_ids and pos_offset 0). */
  vkf_tensor cos_cache, sin_cache;
} vkf_rope_desc;

/* Rotary position embedding of x: [B, T, H, D] (or [B, H, T, D] with
 * VKF_ROPE_HEADS_FIRST; for 3-D [B, T, H*D] data make a 4-D view). For pair
 * (x1, x2) at angle a: out1 = x1 cos a - x2 sin a, out2 = x1 sin a + x2 cos a.
 * Apply to q and k separately (k may have fewer heads). out has x's shape and
 * may be x itself (in place); otherwise they must not overlap.
 * Angles from theta are exact to about 1e-7 rad at any position |p| < 2^31
 * (64-bit fixed-point turns on the device, not p * freq in float).
 * With table lookups and position_ids, the ids are checked on the host (read
 * back as for vkf_embedding); out-of-range ones fail with
 * VKF_ERROR_INVALID_ARGUMENT. */
VKF_API vkf_status vkf_rope(vkf_context *ctx, vkf_tensor out, vkf_tensor x,
                            const vkf_rope_desc *desc);
/* Backward: dx += R^T dout (the inverse rotation; passed-through dims add
 * dout). dx and dout have x's shape and must not overlap. */
VKF_API vkf_status vkf_rope_backward(vkf_context *ctx, vkf_tensor dx, vkf_tensor dout,
                                     const vkf_rope_desc *desc);

/* ---- attn: attention ---- */

/* Multi-head scaled-dot-product attention with grouped-query heads.
 *
 * Shapes (default layout, the natural output of the Q/K/V projections):
 *   q, dq     [B, Tq, Hq, D]      k, dk  [B, Tk, Hkv, D]
 *   out, dout [B, Tq, Hq, Dv]     v, dv  [B, Tk, Hkv, Dv]
 *   saved     standard variant: the probabilities P [B, Hq, Tq, Tk]
 *             flash variant: the row log-sum-exp [B, Hq, Tq]
 * With VKF_ATTENTION_Q_BHTD, q/out/dout/dq are [B, Hq, Tq, .] instead; with
 * VKF_ATTENTION_KV_BHTD, k/v/dk/dv are [B, Hkv, Tk, .] (the ONNX 4-D layout).
 * Hq must be a multiple of Hkv: query head h reads kv head h / (Hq / Hkv)
 * (MQA: Hkv = 1; MHA: Hkv = Hq). Tq and Tk may differ (cross-attention,
 * decoding with a KV cache); Tq, Tk <= 2^28 and (standard variant)
 * B * Hq * Tq * Tk <= 2^32 - 1.
 * q, k, v from one fused projection [B, T, (Hq + 2 Hkv) * D] are not
 * supported (tensors are contiguous); project with views of the weight's
 * q, k, v row ranges instead (three matmuls).
 *
 * Forward, for query row i of head h in batch b:
 *   x[j]      = scale * dot(q[b, i, h, :], k[b, j, h / (Hq/Hkv), :])
 *   x[j]      = softcap * tanh(x[j] / softcap)      (when softcap > 0)
 *   logit[j]  = x[j] + mask[b, h, i, j]             (when a mask is given)
 *               -inf where key j is not visible (below)
 *   P[i, :]   = softmax(logit)     (a row with no finite logit gives P = 0)
 *   out[i, :] = sum_j P[i, j] * v[b, j, h / (Hq/Hkv), :]
 * Softcap applies to the scaled scores before the mask (as ONNX Attention).
 *
 * Visibility. Query i sits at position pos = q0 + i, where q0 is L - Tq
 * (VKF_ATTENTION_ALIGN_BOTTOM_RIGHT, the default: the last query is the last
 * key, as in decoding with a KV cache; L is Tk, or with kv_lens the batch's
 * clamp(kv_lens[b], 0, Tk), for right-padded caches), 0 (ALIGN_TOP_LEFT:
 * PyTorch's and ONNX's is_causal without a past), or desc.q_offset
 * (ALIGN_OFFSET: ONNX with a past of P tokens is q_offset = P). Positions
 * only matter with CAUSAL or a window. Key j is visible when all of these hold:
 *   VKF_ATTENTION_CAUSAL:  j <= pos
 *   window > 0:            0 <= pos - j < window  (implies the causal rule)
 *   kv_lens given:         j < kv_lens[b]         (values clamped to [0, Tk])
 *   mask given:            j < the mask's last dimension (ONNX: a shorter mask
 *                          masks the missing columns)
 * The visible keys of a row are one contiguous range; the kernels skip work
 * outside it. Additive -inf mask values mask keys too, but are not skipped.
 *
 * Backward (adds into dq, dk, dv; dk and dv sum over the query heads of each
 * kv group; no gradient flows to the mask):
 *   dP = dout . v^T, dx = P * (dP - rowsum(dP * P)) * scale * (1 - tanh^2(x/softcap)),
 *   dq += dx . k,   dk += dx^T . q,   dv += P^T . dout.
 * It reads q, k, v, dout and saved; pass the desc given to the forward (the
 * backward uses its visibility rules to skip work, and reads mask only for
 * its shape). Results are deterministic (no atomics), and on the CPU backend
 * independent of the thread count.
 *
 * ONNX Attention (opsets 23, 24) maps onto this: 4-D inputs with the BHTD
 * flags, 3-D ones as [B, S, H, D] views; is_causal as CAUSAL + ALIGN_OFFSET
 * with q_offset = past length (top-left without a past); scale, softcap as
 * is; attn_mask as mask (a bool mask as 0 / -inf); nonpad_kv_seqlen as
 * kv_lens (i32); past/present: k, v = present = concat(past, new) along the
 * sequence (the caller builds it); qk_matmul_output mode 3 = saved, mode 2 =
 * logits, modes 0/1 = logits of a second call without mask and causal (and,
 * for 0, without softcap). Differences: a row with every key masked gives 0
 * (ONNX: NaN); f32 only (fp16 inputs must be converted). */
typedef enum vkf_attention_variant {
  /* Scores materialised: memory O(B * Hq * Tq * Tk) for saved (and the
   * backward's workspace). */
  VKF_ATTENTION_STANDARD = 0,
  /* FlashAttention-style tiles with an online softmax: the Tq x Tk scores
   * never exist in memory, forward or backward. saved is the row
   * log-sum-exp lse[b, h, i] = log(sum_j exp(logit[j])) (-inf for a row
   * with no visible key), [B, Hq, Tq]. The backward recomputes the scores
   * tile by tile (FlashAttention-2: D = rowsum(dout * out), then a pass over
   * key blocks for dk and dv and one over query blocks for dq; no atomics)
   * and needs the forward's output as desc.out. Workspace:
   * 2 * B * Hq * Tq + B elements. Work and memory follow the visible keys:
   * with a window, O(Tq * window) time and O(Tq + Tk) memory. Not
   * supported: desc.logits (VKF_ERROR_UNSUPPORTED); on Vulkan, head sizes
   * D, Dv above 256 or Hq above 65535 (VKF_ERROR_UNSUPPORTED). */
  VKF_ATTENTION_FLASH = 1,
} vkf_attention_variant;

enum vkf_attention_flags {
  VKF_ATTENTION_CAUSAL = 1u << 0,  /* key j visible only when j <= pos */
  VKF_ATTENTION_Q_BHTD = 1u << 1,  /* q, out, dout, dq are [B, Hq, Tq, .] */
  VKF_ATTENTION_KV_BHTD = 1u << 2, /* k, v, dk, dv are [B, Hkv, Tk, .] */
};

typedef enum vkf_attention_align {
  VKF_ATTENTION_ALIGN_BOTTOM_RIGHT = 0, /* pos = Tk - Tq + i */
  VKF_ATTENTION_ALIGN_TOP_LEFT = 1,     /* pos = i */
  VKF_ATTENTION_ALIGN_OFFSET = 2,       /* pos = q_offset + i */
} vkf_attention_align;

/* Options; zero (or a NULL desc) = defaults. Optional tensors are
 * VKF_NO_TENSOR when absent. */
typedef struct vkf_attention_desc {
  vkf_attention_variant variant; /* 0 = VKF_ATTENTION_STANDARD */
  uint32_t flags;                /* vkf_attention_flags; 0 = not causal, BTHD layouts */
  float scale;                   /* 0 = 1 / sqrt(D); otherwise finite */
  float softcap;                 /* 0 = off; > 0: x = softcap * tanh(x / softcap) */
  uint32_t window;               /* sliding window in positions; 0 = none */
  vkf_attention_align align;     /* query positions; 0 = bottom-right */
  int32_t q_offset;              /* position of query 0 with ALIGN_OFFSET; |q_offset| <= 2^28 */
  /* f32 additive mask, broadcast numpy-style to [B, Hq, Tq, Tm] with
   * 1 <= Tm <= Tk: 2 to 4 dims, the last two [Tq or 1, Tm], the ones before
   * right-aligned against [B, Hq] and each 1 or equal. May hold -inf. */
  vkf_tensor mask;
  vkf_tensor kv_lens; /* i32 [B]: keys j >= kv_lens[b] are masked */
  /* Forward only: f32 [B, Hq, Tq, Tk] receives the logits (scaled, softcapped,
   * masked: -inf where not visible), the input of the softmax. Standard
   * variant only. */
  vkf_tensor logits;
  /* Flash variant, backward only (required there): the forward's output
   * (out's shape and layout), for D = rowsum(dout * out). Ignored by the
   * forward and by the standard variant. */
  vkf_tensor out;
} vkf_attention_desc;

typedef struct vkf_attention_sizes {
  uint32_t saved_ndim;               /* 4 (standard) or 3 (flash) */
  int64_t saved_shape[VKF_MAX_DIMS]; /* standard: [B, Hq, Tq, Tk]; flash: [B, Hq, Tq] */
  uint64_t workspace_elements;       /* f32 elements of the backward's workspace */
} vkf_attention_sizes;

/* What to allocate for a forward/backward of q, k, v with `desc`: the saved
 * tensor's shape and the backward's workspace size (standard variant:
 * B * Hq * Tq * Tk elements, twice that with softcap; when that exceeds
 * 2^32 - 1 no tensor can hold it and the backward cannot run; flash variant:
 * 2 * B * Hq * Tq + B). Checks q, k, v and desc as the forward does (same
 * statuses). */
VKF_API vkf_status vkf_attention_sizes_get(vkf_context *ctx, vkf_tensor q, vkf_tensor k,
                                           vkf_tensor v, const vkf_attention_desc *desc,
                                           vkf_attention_sizes *out);
/* out = attention(q, k, v); saved = P (standard) or the row log-sum-exp
 * (flash). All f32. out, saved and desc->logits must not share memory with
 * each other or with any input. Statuses: NULL_POINTER (ctx or out-pointer),
 * INVALID_ARGUMENT (no tensor given, bad variant/flags/align/scale/softcap/
 * q_offset, aliasing), STALE_HANDLE, DTYPE_MISMATCH (f32 required; kv_lens
 * i32), SHAPE_MISMATCH (including Hq not a multiple of Hkv, T > 2^28),
 * UNSUPPORTED (Vulkan: more tiles along Tq or Tk than the device's workgroup
 * grid allows, e.g. Tk > 65535 * 64 on GPUs; the flash variant's limits
 * above). */
VKF_API vkf_status vkf_attention_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor saved,
                                         vkf_tensor q, vkf_tensor k, vkf_tensor v,
                                         const vkf_attention_desc *desc);
/* dq += dL/dq, dk += dL/dk, dv += dL/dv given dout = dL/dout and the forward's
 * saved tensor (flash variant: and desc->out, the forward's output, which
 * must not share memory with the gradients or the workspace; without it
 * VKF_ERROR_INVALID_ARGUMENT). workspace: f32 scratch of at least
 * vkf_attention_sizes_get().workspace_elements elements, any shape (its
 * contents are overwritten; one workspace can serve every layer); it may be
 * VKF_NO_TENSOR only when that size is 0 (never for the standard variant).
 * dq, dk, dv and workspace must not share memory with each other or with any
 * input. Statuses as the forward, plus VKF_ERROR_BUFFER_TOO_SMALL for a short
 * workspace. */
VKF_API vkf_status vkf_attention_backward(vkf_context *ctx, vkf_tensor dq, vkf_tensor dk,
                                          vkf_tensor dv, vkf_tensor dout, vkf_tensor q,
                                          vkf_tensor k, vkf_tensor v, vkf_tensor saved,
                                          vkf_tensor workspace, const vkf_attention_desc *desc);

/* Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"),
 * causal, with the feature map phi(x) = elu(x) + 1 (x + 1 for x > 0, e^x
 * otherwise; always > 0) applied to q and k. For query row i of head h in
 * batch b, with kv head hk = h / (Hq / Hkv):
 *   S_i   = sum_{j <= i} phi(k[b, j, hk, :]) v[b, j, hk, :]^T   (D x Dv)
 *   z_i   = sum_{j <= i} phi(k[b, j, hk, :])                    (D)
 *   den_i = phi(q[b, i, h, :])^T z_i
 *   out[b, i, h, :] = phi(q[b, i, h, :])^T S_i / (den_i + eps)
 * eps (default 1e-6, as in the paper's reference code) only guards the
 * division: phi > 0, so den_i > 0 unless every phi(q).phi(k) underflows
 * (inputs below about -40), and out is a weighted mean of the visible v rows
 * (up to eps). No scale, mask, window or softcap: the kernel is
 * phi(q).phi(k).
 *
 * Shapes: q, dq [B, T, Hq, D]; k, dk [B, T, Hkv, D]; v, dv [B, T, Hkv, Dv];
 * out, dout [B, T, Hq, Dv] (the standard variant's default layout). Hq is a
 * multiple of Hkv (GQA; Hkv = 1 is MQA): the group's query heads read their
 * kv head in place, nothing is copied. D, Dv <= 1024; T <= 2^28.
 *
 * The training form is chunked: T is split into chunks of `chunk` tokens.
 * Within a chunk the products phi(q) phi(k)^T are formed explicitly
 * (causally masked, O(chunk) per token); across chunks the running state
 * S' = [S | z] (D x (Dv + 1) per kv head) carries the past. Time and memory
 * are O(T): saved holds the state at each chunk start and den per row,
 * about (D (Dv + 1) / chunk) Hkv + Hq floats per token.
 *
 * These are separate functions rather than a variant of vkf_attention_desc:
 * none of that desc's options (scale, softcap, window, mask, kv_lens,
 * logits, query alignment) has a meaning here, linear attention has its own
 * (chunk, eps, the recurrent state), its backward needs the forward's
 * output (as FlashAttention's does), and decoding carries a state tensor
 * that the softmax variants have no place for.
 *
 * The state of a (b, kv head) is one row-major [D, Dv + 1] matrix: columns
 * 0..Dv-1 hold S, column Dv holds z. A state tensor is f32
 * [B, Hkv, D, Dv + 1]; all zeros is the empty prefix. It is per kv head:
 * S and z depend only on k and v, so the query heads of a group share it. */
typedef struct vkf_linear_attention_desc {
  uint32_t chunk; /* tokens per chunk, 1..1024; 0 = 64. Changes rounding only */
  float eps;      /* added to den before dividing; 0 = 1e-6; otherwise finite and > 0 */
  /* Optional state [B, Hkv, D, Dv + 1] (forward only): read as the state
   * before token 0 and overwritten with the state after token T - 1, so a
   * long prompt can be fed in pieces and decoding continues from it with
   * vkf_linear_attention_decode. VKF_NO_TENSOR = start from zero, keep no
   * state (training). The backward ignores it: no gradient flows into the
   * initial state (dq, dk, dv are exact given it; it is part of saved). */
  vkf_tensor state;
} vkf_linear_attention_desc;

typedef struct vkf_linear_attention_sizes {
  uint32_t n_chunks;           /* ceil(T / chunk) */
  uint64_t saved_elements;     /* B Hkv n_chunks D (Dv + 1) + B T Hq */
  uint64_t workspace_elements; /* B T Hq (Dv + 1) + B Hkv n_chunks D (Dv + 1) */
  int64_t state_shape[4];      /* [B, Hkv, D, Dv + 1] */
} vkf_linear_attention_sizes;

/* What to allocate for q, k, v with `desc` (NULL = defaults): saved and
 * workspace element counts (each must fit a tensor, <= 2^32 - 1, else
 * SHAPE_MISMATCH) and the state shape. Checks q, k, v and desc as the
 * forward does (same statuses). */
VKF_API vkf_status vkf_linear_attention_sizes_get(vkf_context *ctx, vkf_tensor q, vkf_tensor k,
                                                  vkf_tensor v,
                                                  const vkf_linear_attention_desc *desc,
                                                  vkf_linear_attention_sizes *out);
/* out = linear_attention(q, k, v), chunked; saved: f32, any shape, at least
 * saved_elements elements (the chunk-start states, then den; contents for
 * the backward only). out, saved and desc->state must not share memory
 * with each other or with q, k, v. Statuses: NULL_POINTER (ctx),
 * INVALID_ARGUMENT (no tensor given, chunk or eps out of range, aliasing),
 * STALE_HANDLE, DTYPE_MISMATCH (f32 only), SHAPE_MISMATCH (including Hq not
 * a multiple of Hkv, D or Dv > 1024, a state not [B, Hkv, D, Dv + 1]),
 * BUFFER_TOO_SMALL (saved), UNSUPPORTED (lavapipe only: its shaders stop
 * every loop after 65535 iterations in all, so shapes whose kernel loops
 * would run longer are refused: more than about 60000 chunks, or a chunk of
 * 1024 with D near 1024; long loops over the heads of a kv group are split
 * instead). Deterministic (no atomics); on the CPU backend independent of
 * the thread count. */
VKF_API vkf_status vkf_linear_attention_forward(vkf_context *ctx, vkf_tensor out, vkf_tensor saved,
                                                vkf_tensor q, vkf_tensor k, vkf_tensor v,
                                                const vkf_linear_attention_desc *desc);
/* dq += dL/dq, dk += dL/dk, dv += dL/dv (exact gradients through phi; dk
 * and dv sum over the query heads of each kv group), given dout = dL/dout,
 * the forward's inputs, its output `out` and its `saved`, unchanged since,
 * and the same chunk and eps. With g_i = (dout_i / (den_i + eps),
 * -dout_i.out_i / (den_i + eps)) and v'_j = (v_j, 1):
 *   dphi(q_i) = sum_{j <= i} (g_i . v'_j) phi(k_j)
 *   dphi(k_j) = sum_{i >= j} (g_i . v'_j) phi(q_i)
 *   dv_j      = sum_{i >= j} (phi(q_i) . phi(k_j)) g_i[0..Dv)
 * chunked like the forward: the sums over earlier chunks come from saved
 * (no recomputation), those over later chunks from reverse-time states
 * R_c = sum_{i in later chunks} phi(q_i) g_i^T built in the workspace.
 * workspace: f32 scratch of at least workspace_elements, any shape, contents
 * overwritten (one can serve every layer). Gradients must not share memory
 * with each other, the workspace or any input. Statuses as the forward, plus
 * BUFFER_TOO_SMALL for a short saved or workspace. Deterministic. */
VKF_API vkf_status vkf_linear_attention_backward(vkf_context *ctx, vkf_tensor dq, vkf_tensor dk,
                                                 vkf_tensor dv, vkf_tensor dout, vkf_tensor q,
                                                 vkf_tensor k, vkf_tensor v, vkf_tensor out,
                                                 vkf_tensor saved, vkf_tensor workspace,
                                                 const vkf_linear_attention_desc *desc);
/* One decoding step, O(1) in the number of tokens seen: q [B, 1, Hq, D],
 * k [B, 1, Hkv, D], v [B, 1, Hkv, Dv] are the new token's projections,
 * state [B, Hkv, D, Dv + 1] the state after the tokens before it (zeros for
 * the first token, or what vkf_linear_attention_forward left in
 * desc->state after a prompt). In order:
 *   state[b, hk] += phi(k) (v, 1)^T          (S += phi(k) v^T, z += phi(k))
 *   out[b, 0, h, :] = phi(q_h)^T S / (phi(q_h)^T z + eps)
 * i.e. the new token sees itself, exactly as row T - 1 of the chunked
 * forward over the whole sequence (equal up to float rounding: the sums are
 * taken in another order). eps: 0 = 1e-6, else finite and > 0 (use the
 * forward's). out [B, 1, Hq, Dv] must not share memory with the others;
 * the state is updated in place. Statuses as the forward. Each b has its
 * own state, so the sequences of a batch may be at different lengths. Cost
 * per token: the state update (D (Dv + 1) per kv head) and one pass over the
 * state per query head, whatever the number of tokens before. */
VKF_API vkf_status vkf_linear_attention_decode(vkf_context *ctx, vkf_tensor out, vkf_tensor state,
                                               vkf_tensor q, vkf_tensor k, vkf_tensor v, float eps);

/* ---- xent: loss: softmax cross-entropy ---- */

typedef enum vkf_reduction {
  VKF_REDUCTION_MEAN = 0, /* sum of losses / sum of the counted rows' weights
                             (their number without weights) */
  VKF_REDUCTION_SUM = 1,
  VKF_REDUCTION_NONE = 2, /* per-row losses only */
} vkf_reduction;

/* A value of ignore_index that no target can equal by accident. */
#define VKF_NO_IGNORE_INDEX INT32_MIN

/* Fused softmax + cross-entropy (ONNX SoftmaxCrossEntropyLoss semantics).
 * logits: f32, classes along `class_axis` (negative counts from the end: -1
 * for [.., V]; 1 for ONNX's [N, C, d1..dk]); rows are all other indices in
 * order. targets: i32 with logits' shape minus the class axis (a 1-D logits
 * [V] takes targets [1]). Per row, with t its target and w = weights[t] (1
 * without weights):
 *   losses[row] = w * (logsumexp(logits[row, :]) - logits[row, t])
 * and 0 when t == ignore_index (such rows are not counted; ignore_index may
 * lie outside [0, V)). Every other target must lie in [0, V): targets are
 * checked on the host (read back as for vkf_embedding) and a bad one fails
 * with VKF_ERROR_INVALID_ARGUMENT.
 * losses: targets' shape (required). loss: 1 element (or VKF_NO_TENSOR) =
 * sum(losses) for SUM, sum(losses) / sum(w over counted rows) for MEAN (NaN
 * when nothing is counted), computed on the device; must be VKF_NO_TENSOR
 * for NONE. log_prob: logits' shape, = logits - logsumexp (optional).
 * weights: [V] or VKF_NO_TENSOR. Outputs must not overlap anything. */
VKF_API vkf_status vkf_cross_entropy(vkf_context *ctx, vkf_tensor losses, vkf_tensor loss,
                                     vkf_tensor log_prob, vkf_tensor logits, vkf_tensor targets,
                                     vkf_tensor weights, int32_t class_axis, int32_t ignore_index,
                                     vkf_reduction reduction);
/* Backward, straight from logits and targets (the probabilities are never
 * stored): for every counted row
 *   dlogits[row, :] += g * w * (softmax(logits[row, :]) - onehot(t))
 * with g = dloss[0] / sum(w over counted rows) for MEAN, dloss[0] for SUM,
 * dloss[row] for NONE. dloss: 1 element (MEAN, SUM) or targets' shape (NONE),
 * on the device (1.0 normally). dlogits: logits' shape, must not overlap the
 * inputs. Ignored rows are left untouched. */
VKF_API vkf_status vkf_cross_entropy_backward(vkf_context *ctx, vkf_tensor dlogits,
                                              vkf_tensor dloss, vkf_tensor logits,
                                              vkf_tensor targets, vkf_tensor weights,
                                              int32_t class_axis, int32_t ignore_index,
                                              vkf_reduction reduction);

/* ---- optim: optimiser: adamw, gradient norm and clipping ---- */

/* A model's parameters live in ONE flat f32 tensor (each weight is a view
 * into it), its gradients in another of the same size, and the optimiser's
 * state in more (AdamW: m and v), all on the device and zero-initialised by
 * the caller before the first step. One call updates every parameter in one
 * pass over memory; nothing goes through the host.
 *
 * Which elements get weight decay (matrices yes, norms and biases usually
 * not) is told by a segment table: an i32 tensor [S, 2] whose row s is
 * (start_s, flags_s). Segment s covers elements [start_s, start_{s+1}) (the
 * last one to the end); starts increase from 0 and are read as unsigned
 * 32-bit values. Make it once with vkf_optim_segments_create(); it lives on
 * the device, so a step reads no host memory. A table whose starts do not
 * increase or do not begin at 0 cannot cause an out-of-bounds access, but
 * which elements decay is then unspecified. */
enum vkf_optim_segment_flags {
  VKF_OPTIM_DECAY = 1u << 0, /* weight decay applies to this segment */
};

typedef struct vkf_optim_segment {
  uint64_t start; /* first element; 0 for the first segment, then increasing */
  uint32_t flags; /* vkf_optim_segment_flags */
} vkf_optim_segment;

/* Creates the i32 [count, 2] segment table for a flat buffer of `elements`
 * (<= 2^32 - 1) elements from `segments[count]` (count >= 1, first start 0,
 * starts strictly increasing and below `elements`, only known flags).
 * Destroy it with vkf_tensor_destroy(). */
VKF_API vkf_status vkf_optim_segments_create(vkf_context *ctx, const vkf_optim_segment *segments,
                                             uint32_t count, uint64_t elements, vkf_tensor *out);

typedef enum vkf_optim_kind {
  VKF_OPTIM_ADAMW = 0, /* Adam with decoupled weight decay (Loshchilov & Hutter) */
} vkf_optim_kind;

enum vkf_optim_flags {
  /* Weight decay as L2 regularisation: g += weight_decay * p before the
   * moments (torch.optim.Adam's weight_decay, ONNX Adam's norm_coefficient)
   * instead of the decoupled p -= lr * weight_decay * p. */
  VKF_OPTIM_L2_DECAY = 1u << 0,
  /* eps added to sqrt(v) instead of sqrt(v_hat): the step is
   * lr * sqrt(1-beta2^t)/(1-beta1^t) * m / (sqrt(v) + eps), the "epsilon hat"
   * form of Kingma & Ba section 2, used by TensorFlow and ONNX. */
  VKF_OPTIM_EPS_HAT = 1u << 1,
  /* No bias correction (m_hat = m, v_hat = v); `step` is then not used. */
  VKF_OPTIM_NO_BIAS_CORRECTION = 1u << 2,
  /* beta1, beta2 and eps are taken as given: zero means zero, not the
   * default (for beta1 = 0 or eps = 0). */
  VKF_OPTIM_EXPLICIT = 1u << 3,
};

/* Hyperparameters of one step, from the host on every call (so learning
 * rate schedules cost nothing). Zero-initialise; zero fields mean: */
typedef struct vkf_optim_desc {
  vkf_optim_kind kind; /* 0 = VKF_OPTIM_ADAMW */
  uint32_t flags;      /* vkf_optim_flags */
  /* Number of this update: 1 for the first step (bias correction). Required
   * (>= 1) unless VKF_OPTIM_NO_BIAS_CORRECTION. */
  uint64_t step;
  float lr;           /* learning rate, >= 0, finite. 0 is 0 (no default) */
  float beta1;        /* in [0, 1). 0 = 0.9 */
  float beta2;        /* in [0, 1). 0 = 0.999 (GPT pretraining often uses 0.95) */
  float eps;          /* >= 0. 0 = 1e-8 */
  float weight_decay; /* >= 0, on segments flagged VKF_OPTIM_DECAY. 0 = none */
  /* Gradient clipping, with a grad_norm tensor (vkf_grad_norm's output):
   * gradients are used multiplied by min(1, max_grad_norm / (norm + 1e-6)),
   * computed on the device. > 0 with a norm tensor; must be 0 without. */
  float max_grad_norm;
  /* Gradients are used multiplied by this (1/accumulation steps, 1/loss
   * scale). The norm tensor holds the norm of the stored (unscaled)
   * gradients; clipping compares grad_scale * norm with max_grad_norm.
   * > 0, finite. 0 = 1. */
  float grad_scale;
} vkf_optim_desc;

/* One optimiser step over every element of the flat buffers:
 *   AdamW: g = grad_scale * clip * grads
 *          m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g^2
 *          m_hat = m / (1-beta1^step); v_hat = v / (1-beta2^step)
 *          p -= lr * (m_hat / (sqrt(v_hat) + eps) + d * weight_decay * p)
 * with d = 1 on decayed segments (see the flags for the variants).
 * params, grads, m, v: f32, the same number of elements (any shapes), no two
 * sharing memory. segments: an i32 [S, 2] segment table, or VKF_NO_TENSOR:
 * every element decays. grad_norm: a 1-element f32 tensor holding the
 * gradients' norm (from vkf_grad_norm) to clip with desc->max_grad_norm,
 * or VKF_NO_TENSOR. The gradients themselves are not modified.
 * Errors: NULL_POINTER (ctx, desc), STALE_HANDLE, DTYPE_MISMATCH,
 * SHAPE_MISMATCH (element counts, segment table not [S, 2], norm not 1
 * element), INVALID_ARGUMENT (aliasing, unknown kind or flags, a
 * hyperparameter out of range or not finite, step 0, max_grad_norm without
 * a norm tensor or a norm tensor without max_grad_norm).
 * Non-finite values are not checked on the device: an infinite norm makes
 * the clip factor 0, a NaN norm leaves the gradients unclipped (as
 * torch.nn.utils.clip_grad_norm_ does); read the norm to skip such steps.
 * With eps = 0 (VKF_OPTIM_EXPLICIT) an element whose v is 0 becomes NaN.
 *
 * ONNX Adam (ai.onnx.preview.training, version 1) is this call with flags
 * VKF_OPTIM_L2_DECAY | VKF_OPTIM_EPS_HAT | VKF_OPTIM_EXPLICIT (and
 * VKF_OPTIM_NO_BIAS_CORRECTION when T = 0), lr = R, step = T, beta1 = alpha,
 * beta2 = beta, eps = epsilon, weight_decay = norm_coefficient, m = V,
 * v = H; a nonzero norm_coefficient_post is vkf_scale(X, X,
 * 1 - norm_coefficient_post) after the step. */
VKF_API vkf_status vkf_optim_step(vkf_context *ctx, vkf_tensor params, vkf_tensor grads,
                                  vkf_tensor m, vkf_tensor v, vkf_tensor segments,
                                  vkf_tensor grad_norm, const vkf_optim_desc *desc);

/* Global gradient norm. `scratch` is a caller-made f32 tensor of at least
 * vkf_grad_norm_scratch_size() elements for `elements` gradient elements
 * (allocate it once, with the flat buffers); its contents afterwards are
 * unspecified. */
VKF_API vkf_status vkf_grad_norm_scratch_size(const vkf_context *ctx, uint64_t elements,
                                              uint64_t *scratch_elements);
/* norm[0] = sqrt(sum of grads[i]^2) over every element of grads, on the
 * device: per-workgroup partial sums into scratch, then one workgroup adds
 * them in a fixed order (deterministic: no atomics; the CPU backend's result
 * does not depend on its thread count). norm: f32, 1 element; grads: f32,
 * any shape; scratch: see above; no two share memory. */
VKF_API vkf_status vkf_grad_norm(vkf_context *ctx, vkf_tensor norm, vkf_tensor scratch,
                                 vkf_tensor grads);
/* grads *= min(1, max_norm / (norm[0] + 1e-6)) in place, the factor computed
 * on the device from the 1-element f32 `norm` (vkf_grad_norm's output); a
 * no-op (nothing written) when the norm is at most max_norm. max_norm > 0,
 * finite. vkf_optim_step() can do the same inside its pass instead (its
 * grad_norm argument), which saves a read and a write of the gradients. */
VKF_API vkf_status vkf_clip_grads(vkf_context *ctx, vkf_tensor grads, vkf_tensor norm,
                                  float max_norm);
/* Reads a 1-element f32 tensor (the norm, for logging) into *out: waits for
 * the work that writes it. */
VKF_API vkf_status vkf_grad_norm_read(vkf_context *ctx, vkf_tensor norm, float *out);

/* ------------------------------------------------------------------------ */
/* GPT models                                                               */
/* ------------------------------------------------------------------------ */
typedef enum vkf_norm_kind { VKF_NORM_LAYERNORM = 0, VKF_NORM_RMSNORM = 1 } vkf_norm_kind;
typedef enum vkf_mlp_kind {
  VKF_MLP_GELU = 0,  /* fc -> GELU (tanh approximation, as GPT-2) -> proj */
  VKF_MLP_SWIGLU = 1 /* silu(gate) * up -> down (as Llama) */
} vkf_mlp_kind;
typedef enum vkf_pos_kind {
  VKF_POS_LEARNED = 0, /* learned position table added to the token embedding */
  VKF_POS_ROPE = 1     /* rotary embedding on q and k (rotate-half pairing) */
} vkf_pos_kind;
typedef enum vkf_attn_kind {
  VKF_ATTN_STANDARD = 0, /* scores materialised */
  VKF_ATTN_FLASH = 1,    /* tiled, O(T) memory */
  VKF_ATTN_SLIDING = 2,  /* local causal window (sliding_window) */
  VKF_ATTN_LINEAR = 3,   /* linear attention, O(T) time */
} vkf_attn_kind;

/* A decoder-only transformer. Zero fields take the defaults noted. Read and
 * written as Hugging Face config.json: GPT-2 keys (n_embd, n_layer, n_head,
 * n_positions, vocab_size, layer_norm_epsilon, n_inner) or Llama keys
 * (hidden_size, num_hidden_layers, num_attention_heads,
 * num_key_value_heads, intermediate_size, rms_norm_eps, rope_theta,
 * max_position_embeddings, tie_word_embeddings), plus vkformer's own keys
 * for what Hugging Face has no key for: "vkformer_norm" ("layernorm" or
 * "rmsnorm"), "vkformer_mlp" ("gelu" or "swiglu"), "vkformer_positions"
 * ("learned" or "rope"), "vkformer_bias" (bool), "vkformer_attention"
 * ("standard", "flash", "sliding", "linear"); "sliding_window" as Mistral. */
typedef struct vkf_gpt_config {
  uint32_t vocab_size;     /* required */
  uint32_t context_length; /* required: longest sequence (positions) */
  uint32_t d_model;        /* required */
  uint32_t n_layer;        /* required */
  uint32_t n_head;         /* required; d_model % n_head == 0 */
  uint32_t n_kv_head;      /* 0 = n_head; n_head % n_kv_head == 0 (GQA/MQA) */
  uint32_t d_ff;           /* 0 = 4*d_model (GELU) or the Llama rule for SwiGLU */
  vkf_norm_kind norm;
  float norm_eps; /* 0 = 1e-5 */
  vkf_mlp_kind mlp;
  vkf_pos_kind positions;
  float rope_theta; /* 0 = 10000; set to 10000 without RoPE */
  int bias;         /* biases on the linear layers and norms (GPT-2: 1) */
  int untied_head;  /* 1 = a separate LM head; 0 = tied to the token embedding */
  vkf_attn_kind attention;
  uint32_t sliding_window; /* for VKF_ATTN_SLIDING; set to 0 otherwise */
} vkf_gpt_config;

/* Fills the defaults in and checks the config (error says which field). */
VKF_API vkf_status vkf_gpt_config_resolve(vkf_context *ctx, vkf_gpt_config *cfg);
VKF_API vkf_status vkf_gpt_config_read(vkf_context *ctx, const char *path, vkf_gpt_config *out);
/* Written atomically (temporary file, fsync, rename). */
VKF_API vkf_status vkf_gpt_config_write(vkf_context *ctx, const char *path,
                                        const vkf_gpt_config *cfg);

typedef struct vkf_gpt vkf_gpt;

/* A model with GPT-2 initialisation (weights normal(0, 0.02), residual
 * output projections scaled by 1/sqrt(2 n_layer), biases 0, norm weights 1),
 * reproducible from `seed` on every backend. */
VKF_API vkf_status vkf_gpt_create(vkf_context *ctx, const vkf_gpt_config *cfg, uint64_t seed,
                                  vkf_gpt **out);
/* Loads config.json and safetensors weights with Hugging Face names and
 * layouts: GPT-2 style (wte.weight, wpe.weight, h.{i}.ln_1.weight,
 * h.{i}.attn.c_attn.weight stored [in, out], ..., ln_f.weight; an optional
 * "transformer." prefix is accepted) for layernorm + GELU + learned
 * positions + biases + tied head; Llama style (model.embed_tokens.weight,
 * model.layers.{i}.self_attn.q_proj.weight stored [out, in], ...,
 * model.norm.weight, lm_head.weight when untied) otherwise. Names, shapes
 * and dtypes (F32, F16, BF16) are checked; an error names the tensor. */
VKF_API vkf_status vkf_gpt_load(vkf_context *ctx, const char *config_path, const char *weights_path,
                                vkf_gpt **out);
/* Writes config.json and model.safetensors (F32), each atomically. */
VKF_API vkf_status vkf_gpt_save(vkf_gpt *model, const char *config_path, const char *weights_path);
VKF_API void vkf_gpt_destroy(vkf_gpt *model);
VKF_API const vkf_gpt_config *vkf_gpt_config_of(const vkf_gpt *model);
/* Number of parameters (elements). */
VKF_API uint64_t vkf_gpt_parameter_count(const vkf_gpt *model);

/* Seeded random numbers (xoshiro256**), state in the struct so it can be
 * saved in checkpoints. */
typedef struct vkf_rng {
  uint64_t s[4];
} vkf_rng;
VKF_API void vkf_rng_seed(vkf_rng *rng, uint64_t seed);
VKF_API uint64_t vkf_rng_next(vkf_rng *rng);
/* Uniform in [0, 1) with 53 random bits. */
VKF_API double vkf_rng_uniform(vkf_rng *rng);
/* Standard normal (Box-Muller). */
VKF_API double vkf_rng_normal(vkf_rng *rng);

/* ------------------------------------------------------------------------ */
/* Datasets: token streams with a train/validation split                    */
/* ------------------------------------------------------------------------ */
typedef struct vkf_dataset vkf_dataset;
typedef enum vkf_split { VKF_SPLIT_TRAIN = 0, VKF_SPLIT_VAL = 1 } vkf_split;

/* Byte-level tokens (vocabulary 256) from text files, concatenated in order.
 * The last val_fraction (0 <= f < 1) of the tokens is the validation split. */
VKF_API vkf_status vkf_dataset_open_text(vkf_context *ctx, const char *const *paths,
                                         uint32_t n_paths, float val_fraction, vkf_dataset **out);
/* Tokens from a file of little-endian int32 ids (each in [0, vocab_size)). */
VKF_API vkf_status vkf_dataset_open_tokens(vkf_context *ctx, const char *path, uint32_t vocab_size,
                                           float val_fraction, vkf_dataset **out);
VKF_API void vkf_dataset_destroy(vkf_dataset *ds);
VKF_API uint64_t vkf_dataset_size(const vkf_dataset *ds, vkf_split split);
/* B random windows of T+1 tokens from the split (starts uniform, drawn from
 * rng): inputs[b, t] = w[t], targets[b, t] = w[t + 1]. Each array B*T. */
VKF_API vkf_status vkf_dataset_batch(vkf_dataset *ds, vkf_split split, vkf_rng *rng, uint32_t B,
                                     uint32_t T, int32_t *inputs, int32_t *targets);
/* The B*T-token windows one after another from the start of the split
 * (window `index`): for evaluating on a fixed set. */
VKF_API vkf_status vkf_dataset_window(vkf_dataset *ds, vkf_split split, uint64_t index, uint32_t B,
                                      uint32_t T, int32_t *inputs, int32_t *targets);

/* The parameters of a model: one flat f32 buffer, tensor by tensor. */
typedef struct vkf_gpt_tensor {
  const char *name; /* Hugging Face name; valid while the model lives */
  uint32_t ndim;
  int64_t shape[VKF_MAX_DIMS];
  uint64_t offset; /* elements into the flat buffer */
  uint64_t elements;
  int decay; /* weight decay applies (matrices and embeddings) */
} vkf_gpt_tensor;
VKF_API uint32_t vkf_gpt_tensor_count(const vkf_gpt *model);
VKF_API vkf_status vkf_gpt_tensor_info(const vkf_gpt *model, uint32_t index, vkf_gpt_tensor *out);
/* Elements of the flat parameter buffer (>= the parameter count: tensors
 * start 16-float aligned). */
VKF_API uint64_t vkf_gpt_flat_size(const vkf_gpt *model);
/* Copies the flat parameter buffer to/from the host (`count` floats). */
VKF_API vkf_status vkf_gpt_read_params(vkf_gpt *model, float *out, uint64_t count);
VKF_API vkf_status vkf_gpt_write_params(vkf_gpt *model, const float *in, uint64_t count);

/* ------------------------------------------------------------------------ */
/* Training                                                                 */
/* ------------------------------------------------------------------------ */
typedef enum vkf_lr_schedule {
  VKF_LR_COSINE = 0,   /* linear warm-up, then cosine decay to min_lr at total_steps */
  VKF_LR_CONSTANT = 1, /* linear warm-up, then lr */
} vkf_lr_schedule;

enum vkf_train_flags {
  /* Keep the logits of the last step readable (vkf_trainer_read_logits);
   * costs their memory, which the planner could otherwise reuse. */
  VKF_TRAIN_KEEP_LOGITS = 1u << 0,
};

typedef struct vkf_train_desc {
  uint32_t batch;        /* required: sequences per step */
  uint32_t seq_len;      /* required: tokens per sequence, <= context_length */
  float lr;              /* peak learning rate; 0 = 3e-4 */
  float min_lr;          /* where the cosine ends; 0 = 0 */
  uint32_t warmup_steps; /* linear warm-up from lr/warmup_steps; 0 = none */
  uint32_t total_steps;  /* cosine length (required for VKF_LR_COSINE) */
  vkf_lr_schedule schedule;
  float beta1;        /* 0 = 0.9 */
  float beta2;        /* 0 = 0.95 */
  float eps;          /* 0 = 1e-8 */
  float weight_decay; /* decoupled, on matrices and embeddings; 0 = none */
  float grad_clip;    /* clip the global gradient norm to this; 0 = off */
  uint32_t flags;     /* vkf_train_flags */
} vkf_train_desc;

typedef struct vkf_trainer vkf_trainer;

typedef struct vkf_step_info {
  uint64_t step;   /* the update just made: 1 for the first */
  float loss;      /* mean cross-entropy of the batch, before the update */
  float grad_norm; /* global gradient norm before clipping */
  float lr;        /* learning rate used */
} vkf_step_info;

typedef struct vkf_train_memory {
  uint64_t params, grads, optimizer, inputs;
  uint64_t activations;               /* planned: activations reuse dead ones' memory */
  uint64_t activations_without_reuse; /* the sum of every activation's size */
  /* device bytes of one training step: the above as allocated (rounded up),
   * plus the scratch some kernels of the recorded step hold (Vulkan: a few
   * KiB) */
  uint64_t total;
} vkf_train_memory;

/* Builds the training step of `model` for the desc's batch shape: forward,
 * loss, backward, gradient clipping and AdamW as one graph, plans its memory
 * and records it (one submission per step on Vulkan). The model must outlive
 * the trainer; the trainer updates its parameters in place. */
VKF_API vkf_status vkf_trainer_create(vkf_gpt *model, const vkf_train_desc *desc,
                                      vkf_trainer **out);
VKF_API void vkf_trainer_destroy(vkf_trainer *trainer);
/* Peak device memory of a step, known before the first step runs. */
VKF_API vkf_status vkf_trainer_memory(const vkf_trainer *trainer, vkf_train_memory *out);
/* One update from inputs and targets (each batch*seq_len token ids, every
 * id in [0, vocab_size)). */
VKF_API vkf_status vkf_trainer_step(vkf_trainer *trainer, const int32_t *inputs,
                                    const int32_t *targets, vkf_step_info *out);
/* Mean loss of the model on a batch; no update. */
VKF_API vkf_status vkf_trainer_eval(vkf_trainer *trainer, const int32_t *inputs,
                                    const int32_t *targets, float *loss);
/* The learning rate of update `step` (>= 1) under the desc's schedule. */
VKF_API float vkf_trainer_lr(const vkf_trainer *trainer, uint64_t step);
/* Updates made so far (resumed from a checkpoint: the checkpoint's). */
VKF_API uint64_t vkf_trainer_steps(const vkf_trainer *trainer);
/* Changes the schedule's total_steps (>= 1 and >= the updates made so far),
 * for a run whose length is known only after timing its first steps. The
 * learning rate of later updates follows the new length. */
VKF_API vkf_status vkf_trainer_set_total_steps(vkf_trainer *trainer, uint32_t total_steps);
/* The flat gradient buffer of the last step (vkf_gpt_flat_size floats). */
VKF_API vkf_status vkf_trainer_read_grads(vkf_trainer *trainer, float *out, uint64_t count);
/* The logits [batch, seq_len, vocab] of the last step or eval (needs
 * VKF_TRAIN_KEEP_LOGITS). */
VKF_API vkf_status vkf_trainer_read_logits(vkf_trainer *trainer, float *out, uint64_t count);
/* Checkpoint: weights, AdamW state, step count, the model config and the
 * caller's string metadata (e.g. its data RNG state) in one safetensors file,
 * written to a temporary name, synced and renamed. */
VKF_API vkf_status vkf_trainer_save(vkf_trainer *trainer, const char *path,
                                    const char *const *meta_keys, const char *const *meta_values,
                                    uint32_t n_meta);
/* Restores weights, AdamW state and step count from a checkpoint of the same
 * model configuration (checked: a mismatch is an error and changes nothing). */
VKF_API vkf_status vkf_trainer_load(vkf_trainer *trainer, const char *path);
/* A checkpoint's string metadata (the caller's keys and "step", "config").
 * Fails with VKF_ERROR_FORMAT when absent, VKF_ERROR_BUFFER_TOO_SMALL when
 * it does not fit in cap bytes (with its NUL). */
VKF_API vkf_status vkf_checkpoint_meta(vkf_context *ctx, const char *path, const char *key,
                                       char *out, size_t cap);
/* Creates a model from a checkpoint's config and weights (for generation). */
VKF_API vkf_status vkf_gpt_load_checkpoint(vkf_context *ctx, const char *path, vkf_gpt **out);

/* ------------------------------------------------------------------------ */
/* Sampling                                                                 */
/* ------------------------------------------------------------------------ */
typedef struct vkf_sample_desc {
  float temperature;        /* 0 = greedy (argmax); else logits / temperature */
  uint32_t top_k;           /* 0 = off; keep the k most likely tokens */
  float top_p;              /* 0 or 1 = off; keep the smallest set with mass >= top_p */
  float repetition_penalty; /* 0 or 1 = off; > 1 divides the positive logits (multiplies
                               the negative ones) of tokens in `history` */
} vkf_sample_desc;

/* Picks the next token from logits[vocab] (not modified) with rng. The
 * history (may be NULL) is what the repetition penalty looks at. Candidates
 * outside top-k/top-p are never returned. Ties break to the lower id. */
VKF_API vkf_status vkf_sample_logits(const float *logits, uint32_t vocab,
                                     const vkf_sample_desc *desc, const int32_t *history,
                                     uint32_t n_history, vkf_rng *rng, int32_t *out);

/* Next-token logits of a model for a sequence: a forward pass over the
 * whole context (no KV cache). */
typedef struct vkf_predictor vkf_predictor;
VKF_API vkf_status vkf_predictor_create(vkf_gpt *model, vkf_predictor **out);
VKF_API void vkf_predictor_destroy(vkf_predictor *p);
/* logits[vocab] after tokens[0..n) (1 <= n; only the last context_length
 * tokens are seen). */
VKF_API vkf_status vkf_predictor_next(vkf_predictor *p, const int32_t *tokens, uint32_t n,
                                      float *logits);

/* Writes named f32 or i32 host arrays as one safetensors file (atomic). */
typedef struct vkf_named_array {
  const char *name;
  vkf_dtype dtype; /* VKF_DTYPE_F32 or VKF_DTYPE_I32 */
  uint32_t ndim;
  int64_t shape[VKF_MAX_DIMS];
  const void *data;
} vkf_named_array;
VKF_API vkf_status vkf_safetensors_write(vkf_context *ctx, const char *path,
                                         const vkf_named_array *arrays, uint32_t n,
                                         const char *const *meta_keys,
                                         const char *const *meta_values, uint32_t n_meta);

/* ---- infer: inference: KV cache, sessions, sampling, streaming ---- */

/* Appends new key and value rows of B sequences to their caches at positions
 * read from the device, so a recorded decoding step (one program replayed for
 * every token) serves every position:
 *   k_cache [B, R, ...] (R rows per sequence), v_cache [B, R, ...];
 *   k [B, T, ...] with k_cache's trailing dims, v [B, T, ...] with v_cache's;
 *   where: i32 [B, 2], row b = (start, count).
 * Only the last `count` new rows of sequence b are written (its tokens sit
 * right-aligned after left padding, as with bottom-right aligned attention;
 * count <= 0 writes nothing, count >= T everything): row t >= T - count
 * goes to cache row start + t, with VKF_KV_RING to (start + t) mod R (a
 * sliding window's ring); without it rows outside [0, R) are skipped. Other
 * cache rows are left as they are. All f32 except where. R, T <= 2^30.
 * The caches must not overlap each other or any input. Statuses:
 * NULL_POINTER, STALE_HANDLE, DTYPE_MISMATCH, SHAPE_MISMATCH,
 * INVALID_ARGUMENT (flags, aliasing). */
enum vkf_kv_write_flags {
  VKF_KV_RING = 1u << 0,
};
VKF_API vkf_status vkf_kv_cache_write(vkf_context *ctx, vkf_tensor k_cache, vkf_tensor v_cache,
                                      vkf_tensor k, vkf_tensor v, vkf_tensor where, uint32_t flags);

/* Inference sessions.
 *
 * A session generates text with a model: it keeps a KV cache on the device
 * for n_seq independent sequences (batched decoding: several users, or
 * best-of-N samples of one prompt), runs a prompt through the model in one
 * forward per piece (prefill) and then one token per step for every active
 * sequence (decode), each step one recorded program replayed with the
 * per-step values (tokens, positions, cache lengths) written into device
 * tensors. The cache holds, per sequence and layer, keys and values of
 * n_kv_head heads: 2 * n_layer * n_kv_head * head_dim * 4 bytes per token
 * (grouped-query and multi-query models need n_head / n_kv_head times less).
 * Sliding-window models keep a ring of window + prefill_chunk rows when that
 * is shorter than max_seq. Linear-attention models ("linear") keep no cache:
 * each sequence has a recurrent state of fixed size instead, per layer and
 * kv head S | z of head_dim x (head_dim + 1) floats
 * (vkf_linear_attention_desc): n_layer * n_kv_head * head_dim *
 * (head_dim + 1) * 4 bytes per sequence whatever its length, and each
 * decoding step costs the same at any position. Their prompts are fed in
 * pieces of exact power-of-two lengths (a padding token would enter the
 * state), so a prompt takes up to log2(prefill_chunk) more forwards than
 * with a cache. If a step of a linear-attention model fails after it was
 * submitted (a device error), the sequences it ran are emptied: their
 * states may have moved.
 *
 * Several sessions may share one model (its weights are not copied); the
 * model must outlive them.
 *
 * Thread safety: a session is used by one thread at a time, and since it
 * records work on its model's context, sessions of one context (and
 * everything else made from that context) must not be used at the same time
 * either: use one context per thread for parallel generation.
 * vkf_session_cancel() is the exception: any thread may call it at any time
 * (it only sets an atomic flag). */
typedef struct vkf_session vkf_session;

typedef struct vkf_session_desc {
  /* Positions one sequence holds (prompt and generated tokens). 0 = the
   * model's context_length; at most context_length with learned positions. */
  uint32_t max_seq;
  /* Sequences (cache slots) decoded together in one step. 0 = 1. */
  uint32_t n_seq;
  /* Most prompt tokens per prefill forward; longer prompts go in pieces.
   * 0 = min(256, max_seq). */
  uint32_t prefill_chunk;
} vkf_session_desc;

/* A session on `model`. Allocates the cache and the activations of the
 * largest step; programs are recorded on first use. */
VKF_API vkf_status vkf_session_create(vkf_gpt *model, const vkf_session_desc *desc,
                                      vkf_session **out);
/* A session on a model loaded from a trainer checkpoint
 * (vkf_gpt_load_checkpoint); the session owns that model. A missing file is
 * VKF_ERROR_IO, a malformed one VKF_ERROR_FORMAT. */
VKF_API vkf_status vkf_session_open(vkf_context *ctx, const char *checkpoint,
                                    const vkf_session_desc *desc, vkf_session **out);
/* Frees the session (and a model it owns). NULL is ignored. */
VKF_API void vkf_session_destroy(vkf_session *session);
/* The session's model. */
VKF_API vkf_gpt *vkf_session_model(const vkf_session *session);

typedef struct vkf_session_info {
  uint32_t n_seq, max_seq, prefill_chunk, vocab_size;
  uint32_t cache_rows;          /* rows per sequence and layer (max_seq, or the ring;
                                   0 for a recurrent state) */
  uint64_t kv_bytes_per_token;  /* per sequence, all layers (0 for a recurrent state) */
  uint64_t kv_bytes;            /* the whole cache (or every sequence's state) */
  uint64_t activation_bytes;    /* shared by every step */
  const char *attention;        /* how attention decodes: "standard", "sliding-ring",
                                   "linear" (a recurrent state) */
  uint64_t state_bytes_per_seq; /* "linear": one sequence's state, all layers (else 0) */
} vkf_session_info;
VKF_API vkf_status vkf_session_info_get(const vkf_session *session, vkf_session_info *out);

/* Low-level use. Sequences are numbered 0 .. n_seq-1; each holds the tokens
 * appended to it since its last reset. */

/* Empties sequence `seq`. */
VKF_API vkf_status vkf_session_reset(vkf_session *session, uint32_t seq);
/* Tokens held by sequence `seq` (0 for an unknown seq). */
VKF_API uint32_t vkf_session_length(const vkf_session *session, uint32_t seq);
/* Appends tokens[0..n) (n >= 1) to sequence `seq` (prefill in pieces of at
 * most prefill_chunk tokens) and writes the next-token logits after the last
 * one to logits[vocab_size] (may be NULL). Ids outside [0, vocab_size) and
 * more tokens than the sequence has room for fail with
 * VKF_ERROR_INVALID_ARGUMENT and change nothing. */
VKF_API vkf_status vkf_session_append(vkf_session *session, uint32_t seq, const int32_t *tokens,
                                      uint32_t n, float *logits);
/* One decoding step: tokens[i] is appended to sequence seqs[i] (n distinct
 * sequences, 1 <= n <= n_seq), all in one forward; logits [n, vocab_size]
 * receives each one's next-token logits (may be NULL). */
VKF_API vkf_status vkf_session_step(vkf_session *session, const uint32_t *seqs,
                                    const int32_t *tokens, uint32_t n, float *logits);
/* Makes sequence dst a copy of sequence src (cache or state, and tokens),
 * e.g. to sample several continuations of one prompt. */
VKF_API vkf_status vkf_session_fork(vkf_session *session, uint32_t src, uint32_t dst);

/* Generation. */
typedef enum vkf_stop_reason {
  VKF_STOP_NONE = 0,       /* still running (or never started) */
  VKF_STOP_TOKEN = 1,      /* sampled one of the stop tokens (not delivered) */
  VKF_STOP_MAX_TOKENS = 2, /* max_new_tokens delivered */
  VKF_STOP_FULL = 3,       /* the sequence reached max_seq positions */
  VKF_STOP_CALLBACK = 4,   /* the token callback returned nonzero */
  VKF_STOP_CANCELLED = 5,  /* vkf_session_cancel() */
} vkf_stop_reason;

enum vkf_generate_flags {
  /* Append the prompt to what the sequence holds (a chat's next turn, with
   * the previous reply) instead of starting from an empty sequence. */
  VKF_GENERATE_CONTINUE = 1u << 0,
};

/* One sequence to generate. Inputs first (zero = default), then results. */
typedef struct vkf_generate_request {
  const int32_t *prompt; /* n_prompt ids; at least one token in total (prompt
                            plus, with CONTINUE, what the sequence holds) */
  uint32_t n_prompt;
  uint32_t seq;   /* the sequence (cache slot) it uses; distinct per request */
  uint32_t flags; /* vkf_generate_flags */
  vkf_sample_desc sample;
  uint64_t seed;              /* of this request's random numbers: reproducible */
  uint32_t max_new_tokens;    /* 0 = until the sequence is full */
  const int32_t *stop_tokens; /* ids that end the request; NULL/0 = none (byte-level) */
  uint32_t n_stop_tokens;
  /* Repetition penalty looks at the last this-many tokens of the sequence
   * (prompt and generated). 0 = all. */
  uint32_t penalty_window;
  int32_t *out;     /* optional: generated ids are stored here too */
  uint32_t out_cap; /* capacity of out; generation goes on past it */
  /* results */
  uint32_t n_generated; /* delivered tokens (the stop token is not one) */
  vkf_stop_reason stop;
} vkf_generate_request;

/* A generated token, given to the callback as soon as it is sampled. */
typedef struct vkf_token_event {
  uint32_t request; /* index into the requests array */
  uint32_t seq;
  uint32_t index; /* 0 for the request's first generated token */
  int32_t token;
} vkf_token_event;
/* Called on the generating thread for every token; return 0 to go on, nonzero
 * to end that request (VKF_STOP_CALLBACK). It must not use the session or its
 * context (except vkf_session_cancel). */
typedef int (*vkf_token_fn)(void *user, const vkf_token_event *event);

/* Generates for n requests (1 <= n <= n_seq) together: each prompt is
 * prefilled (identical prompts of fresh requests once, then copied), the
 * first token sampled from the prompt's logits, then every step decodes one
 * token for each running request in one forward. Tokens go to fn (may be
 * NULL) as they are sampled. Stops each request on a stop token,
 * max_new_tokens, a full sequence or the callback; returns VKF_OK when all
 * have stopped. vkf_session_cancel() makes it return VKF_ERROR_CANCELLED
 * within one step (prefill piece or decode step), every unfinished request
 * marked VKF_STOP_CANCELLED; tokens delivered so far stay in the sequences
 * (CONTINUE resumes), and a prompt cut in its prefill as far as it went.
 * Errors in a request (ids outside the vocabulary, a prompt longer than the
 * room left, bad sample desc, repeated seq) fail before anything runs with
 * VKF_ERROR_INVALID_ARGUMENT. */
VKF_API vkf_status vkf_session_generate(vkf_session *session, vkf_generate_request *requests,
                                        uint32_t n, vkf_token_fn fn, void *user);

/* Asks the generation running on `session` to stop; safe from any thread.
 * The request stays pending until a vkf_session_generate() call returns
 * VKF_ERROR_CANCELLED for it: one running now (within a step), or the next
 * one started (at once) when none is running. */
VKF_API void vkf_session_cancel(vkf_session *session);

/* Timing of the last vkf_session_generate() call. */
typedef struct vkf_session_stats {
  uint64_t prompt_tokens;    /* prefilled (all requests) */
  uint64_t generated_tokens; /* sampled (all requests; stop tokens included) */
  uint64_t decode_steps;
  double prefill_seconds;     /* prompt forwards (with their logits read) */
  double decode_seconds;      /* decode steps, sampling included */
  double time_to_first_token; /* from the call to the first callback */
  double total_seconds;
  double prefill_tokens_per_second;
  double decode_tokens_per_second; /* tokens from decode steps / decode_seconds */
  /* per decode step, averages in microseconds: host work before the step
   * (inputs), the step (submission, device work and the wait for it), logits
   * read-back, and sampling with the callbacks */
  double step_input_us, step_run_us, step_read_us, step_sample_us;
} vkf_session_stats;
VKF_API vkf_status vkf_session_stats_get(const vkf_session *session, vkf_session_stats *out);

/* ------------------------------------------------------------------------ */
/* Captured programs: record a sequence of ops once, replay it many times.
 * On Vulkan the whole sequence is one command buffer and one submission
 * per replay (a training step, say); on the CPU backend replay runs the
 * recorded ops in order.                                                   */
/* ------------------------------------------------------------------------ */
typedef struct vkf_program vkf_program;

/* Ops recorded after this are captured, not executed, until
 * vkf_capture_end. Reading or writing tensors while capturing fails with
 * VKF_ERROR_INVALID_ARGUMENT. */
VKF_API vkf_status vkf_capture_begin(vkf_context *ctx);
VKF_API vkf_status vkf_capture_end(vkf_context *ctx, vkf_program **out);
/* Runs the captured ops on the tensors they were recorded with (write new
 * inputs into those tensors first). The tensors must still exist. Ordered
 * with other ops like any op; reads wait for it. */
VKF_API vkf_status vkf_program_replay(vkf_context *ctx, vkf_program *program);
/* Waits for the program if it is running, then frees it. NULL is ignored. */
VKF_API void vkf_program_destroy(vkf_context *ctx, vkf_program *program);

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
