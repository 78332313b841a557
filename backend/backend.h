/*
 * Internal interface between the frontend and the backends (CPU, Vulkan).
 *
 * The frontend validates arguments and turns every operation into a vkf_op:
 * an op kind, its operands as byte ranges of backend buffers, and the op's
 * parameter struct from shaders/vkf_params.h. Each backend executes vkf_ops
 * in the order given; the Vulkan backend records them into one command
 * buffer with the barriers their operand ranges require.
 */
#ifndef VKF_BACKEND_H
#define VKF_BACKEND_H

#include "vkformer.h"
#include "vkf_params.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VKF_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define VKF_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define VKF_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------------ */
/* Environment shared by a context and its backend: logging, host memory,
 * the last error's message.                                               */
/* ------------------------------------------------------------------------ */
typedef struct vkf_env {
  vkf_log_fn log_fn;
  void *log_user;
  vkf_log_level log_level;
  vkf_allocator alloc;
  char error[512];
  vkf_status error_status;
} vkf_env;

void vkf_env_init(vkf_env *env, const vkf_context_desc *desc);
void vkf_log(const vkf_env *env, vkf_log_level level, const char *fmt, ...) VKF_PRINTF(3, 4);
/* Record `status` with a formatted message as the last error, log it at
 * DEBUG level, and return `status` (so callers `return vkf_fail(...)`). */
vkf_status vkf_fail(vkf_env *env, vkf_status status, const char *fmt, ...) VKF_PRINTF(3, 4);

void *vkf_malloc(const vkf_env *env, size_t size);
void *vkf_calloc(const vkf_env *env, size_t n, size_t size);
void *vkf_realloc(const vkf_env *env, void *ptr, size_t size);
void vkf_free(const vkf_env *env, void *ptr);

/* Case-insensitive substring test. */
bool vkf_contains_nocase(const char *haystack, const char *needle);

/* ------------------------------------------------------------------------ */
/* Ops                                                                      */
/* ------------------------------------------------------------------------ */
/* X(enum suffix, name). The name is the op's name in backend/cpu, shaders/,
 * tests/ and the profile. */
#define VKF_OP_LIST(X)                                                                             \
  X(FILL, "fill")                                                                                  \
  X(MATMUL, "matmul")                                                                              \
  X(ADD, "add")                                                                                    \
  X(MUL, "mul")                                                                                    \
  X(SCALE, "scale")                                                                                \
  X(ROW_SUM, "row_sum")                                                                            \
  X(SOFTMAX, "softmax")                                                                            \
  /* ---- norm ---- */                                                                             \
  X(LAYERNORM, "layernorm")                                                                        \
  X(LAYERNORM_BACKWARD, "layernorm_backward")                                                      \
  X(RMSNORM, "rmsnorm")                                                                            \
  X(RMSNORM_BACKWARD, "rmsnorm_backward")                                                          \
  /* ---- act ---- */                                                                              \
  X(GELU, "gelu")                                                                                  \
  X(GELU_BACKWARD, "gelu_backward")                                                                \
  X(SILU, "silu")                                                                                  \
  X(SILU_BACKWARD, "silu_backward")                                                                \
  X(SWIGLU, "swiglu")                                                                              \
  X(SWIGLU_BACKWARD, "swiglu_backward")                                                            \
  /* ---- embed ---- */                                                                            \
  X(EMBEDDING, "embedding")                                                                        \
  X(EMBEDDING_BACKWARD, "embedding_backward")                                                      \
  X(BIAS_BACKWARD, "bias_backward")                                                                \
  /* ---- rope ---- */                                                                             \
  X(ROPE, "rope")                                                                                  \
  X(ROPE_BACKWARD, "rope_backward")                                                                \
  /* ---- attn ---- */                                                                             \
  X(ATTENTION_FORWARD, "attention_forward")                                                        \
  X(ATTENTION_BACKWARD_DS, "attention_backward_ds")                                                \
  X(ATTENTION_BACKWARD_DQ, "attention_backward_dq")                                                \
  X(ATTENTION_BACKWARD_DKV, "attention_backward_dkv")                                              \
  X(LINEAR_ATTENTION_FORWARD, "linear_attention_forward")                                          \
  X(LINEAR_ATTENTION_BACKWARD_Q, "linear_attention_backward_q")                                    \
  X(LINEAR_ATTENTION_BACKWARD_KV, "linear_attention_backward_kv")                                  \
  X(LINEAR_ATTENTION_DECODE, "linear_attention_decode")                                            \
  X(ATTENTION_FLASH_FORWARD, "attention_flash_forward")                                            \
  X(ATTENTION_FLASH_BACKWARD_PRE, "attention_flash_backward_pre")                                  \
  X(ATTENTION_FLASH_BACKWARD_DKV, "attention_flash_backward_dkv")                                  \
  X(ATTENTION_FLASH_BACKWARD_DQ, "attention_flash_backward_dq")                                    \
  /* ---- xent ---- */                                                                             \
  X(CROSS_ENTROPY, "cross_entropy")                                                                \
  X(CROSS_ENTROPY_BACKWARD, "cross_entropy_backward")                                              \
  /* ---- optim ---- */                                                                            \
  X(ADAMW, "adamw")                                                                                \
  X(GRAD_NORM, "grad_norm")                                                                        \
  X(CLIP_GRADS, "clip_grads")                                                                      \
  /* ---- infer ---- */                                                                            \
  X(KV_WRITE, "kv_write")                                                                          \
  X(MATVEC, "matvec")                                                                              \
  /* end */

typedef enum vkf_op_kind {
#define VKF_OP_ENUM_(e, name) VKF_OP_##e,
  VKF_OP_LIST(VKF_OP_ENUM_)
#undef VKF_OP_ENUM_
      VKF_OP_COUNT
} vkf_op_kind;

const char *vkf_op_name(vkf_op_kind kind);

typedef struct vkf_buffer vkf_buffer; /* backend-defined */

/* A byte range of a backend buffer. buf == NULL: an absent optional operand. */
typedef struct vkf_tref {
  vkf_buffer *buf;
  uint64_t offset;
  uint64_t bytes;
} vkf_tref;

#define VKF_OP_MAX_TENSORS 8

typedef union vkf_op_params {
  vkf_matmul_params matmul;
  vkf_binary_params binary;
  vkf_scale_params scale;
  vkf_fill_params fill;
  vkf_rowreduce_params rowreduce;
  vkf_softmax_params softmax;
  /* ---- norm ---- */
  vkf_norm_params norm;
  vkf_norm_backward_params norm_backward;
  /* ---- act ---- */
  vkf_act_params act;
  vkf_swiglu_params swiglu;
  /* ---- embed ---- */
  vkf_embedding_params embedding;
  vkf_embedding_backward_params embedding_backward;
  vkf_bias_backward_params bias_backward;
  /* ---- rope ---- */
  vkf_rope_params rope;
  /* ---- attn ---- */
  vkf_attention_params attention;
  vkf_linear_attention_params linear_attention;
  /* ---- xent ---- */
  vkf_cross_entropy_params cross_entropy;
  /* ---- optim ---- */
  vkf_adamw_params adamw;
  vkf_grad_norm_params grad_norm;
  vkf_clip_grads_params clip_grads;
  /* ---- infer ---- */
  vkf_kv_write_params kv_write;
} vkf_op_params;

typedef struct vkf_op {
  vkf_op_kind kind;
  uint32_t n_tensors;
  uint32_t writes; /* bit i set: operand i is written (else only read) */
  uint32_t reads;  /* bit i set: operand i is read (an output may be both) */
  vkf_tref t[VKF_OP_MAX_TENSORS];
  vkf_op_params p;
} vkf_op;

/* ------------------------------------------------------------------------ */
/* Backends                                                                 */
/* ------------------------------------------------------------------------ */
typedef struct vkf_backend vkf_backend;
typedef struct vkf_program vkf_program; /* backend-defined */

typedef struct vkf_backend_vtbl {
  void (*destroy)(vkf_backend *be);
  vkf_status (*buffer_create)(vkf_backend *be, uint64_t bytes, vkf_buffer **out);
  void (*buffer_destroy)(vkf_backend *be, vkf_buffer *buf);
  /* Host <-> buffer copies, ordered with the ops run before/after them. */
  vkf_status (*write)(vkf_backend *be, vkf_tref dst, const void *src);
  vkf_status (*read)(vkf_backend *be, vkf_tref src, void *dst);
  vkf_status (*copy)(vkf_backend *be, vkf_tref dst, vkf_tref src);
  vkf_status (*run)(vkf_backend *be, const vkf_op *op);
  /* Submit all recorded work and wait for it. */
  vkf_status (*synchronize)(vkf_backend *be);
  vkf_status (*set_threads)(vkf_backend *be, uint32_t threads);
  /* Capture: ops run between capture_begin and capture_end are recorded,
   * not executed, into a program that replay executes as a whole (one
   * submission on Vulkan). No host read/write while capturing. The
   * program reads and writes the same memory each time: change inputs by
   * writing the tensors it reads before a replay. */
  vkf_status (*capture_begin)(vkf_backend *be);
  vkf_status (*capture_end)(vkf_backend *be, vkf_program **out);
  vkf_status (*replay)(vkf_backend *be, vkf_program *program);
  void (*program_destroy)(vkf_backend *be, vkf_program *program);
  void (*memory_stats)(const vkf_backend *be, vkf_memory_stats *out);
} vkf_backend_vtbl;

/* Per-op time accumulator shared by the backends. */
typedef struct vkf_profile {
  uint32_t count[VKF_OP_COUNT];
  double ms[VKF_OP_COUNT];
} vkf_profile;

struct vkf_backend {
  const vkf_backend_vtbl *vt;
  vkf_env *env;
  vkf_device_info info;
  bool profiling;
  vkf_profile profile;
};

/* CPU backend. memory_limit: cap on tensor bytes (0 = none). */
vkf_status vkf_cpu_backend_create(vkf_env *env, uint32_t threads, bool profiling,
                                  uint64_t memory_limit, vkf_backend **out);
void vkf_cpu_device_info(uint32_t threads, vkf_device_info *out);
uint32_t vkf_cpu_default_threads(void);

/* Vulkan backend. `index` is the physical device index (ignored with interop). */
typedef struct vkf_vk_options {
  uint32_t flags; /* vkf_context_flags */
  uint64_t memory_limit;
  const char *pipeline_cache_dir;
  const void *interop; /* const vkf_vulkan_interop * */
} vkf_vk_options;

/* Lists Vulkan physical devices. Returns VKF_ERROR_UNSUPPORTED with a message
 * (and *count = 0) when no loader or no driver can be used. */
vkf_status vkf_vk_enumerate(vkf_env *env, const vkf_vk_options *opt, vkf_device_info *infos,
                            uint32_t capacity, uint32_t *count);
vkf_status vkf_vk_backend_create(vkf_env *env, const vkf_vk_options *opt, uint32_t index,
                                 vkf_backend **out);

#endif /* VKF_BACKEND_H */
