/* Vulkan backend internals. */
#ifndef VKF_VK_H
#define VKF_VK_H

#include "backend.h"
#include "vkf_shaders.h" /* generated: shader ids and SPIR-V */

#include <pthread.h>
#include <volk.h>

#include "vkformer_vulkan.h"

/* Instance-level functions this backend calls, loaded per instance (volk's
 * global table is shared by every context in the process). */
typedef struct vkf_vk_instance_fns {
  PFN_vkGetInstanceProcAddr GetInstanceProcAddr;
  PFN_vkDestroyInstance DestroyInstance;
  PFN_vkEnumeratePhysicalDevices EnumeratePhysicalDevices;
  PFN_vkGetPhysicalDeviceProperties GetPhysicalDeviceProperties;
  PFN_vkGetPhysicalDeviceProperties2 GetPhysicalDeviceProperties2;
  PFN_vkGetPhysicalDeviceFeatures2 GetPhysicalDeviceFeatures2;
  PFN_vkGetPhysicalDeviceMemoryProperties GetPhysicalDeviceMemoryProperties;
  PFN_vkGetPhysicalDeviceFormatProperties GetPhysicalDeviceFormatProperties;
  PFN_vkGetPhysicalDeviceQueueFamilyProperties GetPhysicalDeviceQueueFamilyProperties;
  PFN_vkEnumerateDeviceExtensionProperties EnumerateDeviceExtensionProperties;
  PFN_vkCreateDevice CreateDevice;
  PFN_vkGetDeviceProcAddr GetDeviceProcAddr;
  PFN_vkCreateDebugUtilsMessengerEXT CreateDebugUtilsMessengerEXT;
  PFN_vkDestroyDebugUtilsMessengerEXT DestroyDebugUtilsMessengerEXT;
} vkf_vk_instance_fns;

/* An instance: created by vkformer or adopted from the host. */
typedef struct vkf_vk_instance {
  VkInstance instance;
  bool owned;
  uint32_t api_version;
  vkf_vk_instance_fns fn;
  VkDebugUtilsMessengerEXT messenger;
  vkf_env *env;
  uint32_t validation_messages;
} vkf_vk_instance;

vkf_status vkf_vk_instance_create(vkf_env *env, uint32_t flags, vkf_vk_instance *out);
vkf_status vkf_vk_instance_adopt(vkf_env *env, const vkf_vulkan_interop *io, vkf_vk_instance *out);
void vkf_vk_instance_destroy(vkf_vk_instance *inst);
/* Fill `info` (and the raw features it needs) for one physical device. */
typedef struct vkf_vk_caps {
  bool bda, fp16, int8, storage16, storage8, subgroup_size_control, compute_full_subgroups;
  bool int64; /* shaderInt64 (enabled on devices vkformer creates; not with interop) */
  bool ext_subgroup_size_control; /* needs the EXT on a 1.2 device */
  bool ext_memory_budget;
  /* Texel reads: kernels may read tensors through uniform texel buffers
   * (RGBA32F views of the memory blocks, bound with push descriptors). Only
   * on CPU Vulkan devices, where llvmpipe fetches texels as vectors but
   * turns every load of a buffer-device-address pointer into a loop over
   * the SIMD lanes; VKF_VK_TEXEL_READS=0 turns them off. */
  bool texel_reads;
  uint32_t max_texel_elements;
  uint32_t queue_family;
  uint32_t timestamp_bits;
  uint64_t max_alloc, max_buffer;
  uint32_t min_subgroup, max_subgroup;
  VkPhysicalDeviceMemoryProperties mem;
  VkPhysicalDeviceProperties props;
} vkf_vk_caps;
void vkf_vk_describe(vkf_vk_instance *inst, VkPhysicalDevice pd, vkf_device_info *info,
                     vkf_vk_caps *caps);

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */
typedef struct vkf_vk_free_range {
  uint64_t offset, size;
} vkf_vk_free_range;

typedef struct vkf_vk_block {
  VkDeviceMemory memory;
  VkBuffer buffer;
  VkDeviceAddress address;
  uint64_t size;
  void *mapped; /* NULL unless host-visible and used directly */
  bool dedicated;
  bool staging;
  uint32_t live;       /* sub-allocations in it */
  bool texel;          /* created with the uniform texel buffer usage */
  VkBufferView view;   /* its RGBA32F view for texel reads, made on first use */
  uint64_t view_bytes; /* bytes the view covers (from the block's start) */
  vkf_vk_free_range *free;
  uint32_t n_free, cap_free;
} vkf_vk_block;

struct vkf_buffer {
  vkf_vk_block *block;
  uint64_t offset, size;
};

typedef struct vkf_vk_memory {
  uint32_t type_index;         /* tensors */
  uint32_t staging_type_index; /* UINT32_MAX when tensors are mapped */
  bool mapped;                 /* tensors live in host-visible memory used directly */
  uint64_t block_size_next;
  uint64_t limit;
  uint64_t allocated, used, peak;
  vkf_vk_block **blocks;
  uint32_t n_blocks, cap_blocks;
  vkf_vk_block *scratch; /* a few device words for internal commands */
} vkf_vk_memory;

/* ------------------------------------------------------------------------ */
/* Pipelines                                                                */
/* ------------------------------------------------------------------------ */
#define VKF_VK_MAX_SPEC 8

typedef struct vkf_vk_pipeline {
  vkf_shader_id shader;
  uint32_t n_spec;
  uint32_t spec[VKF_VK_MAX_SPEC];
  VkPipeline pipeline;
} vkf_vk_pipeline;

/* ------------------------------------------------------------------------ */
/* Execution                                                                */
/* ------------------------------------------------------------------------ */
typedef struct vkf_vk_range {
  uint64_t begin, end; /* device addresses */
} vkf_vk_range;
#define VKF_VK_TEXEL_BINDINGS 4

typedef struct vkf_vk_range_set {
  vkf_vk_range *r;
  uint32_t n, cap;
} vkf_vk_range_set;

#define VKF_VK_SLOTS 2
#define VKF_VK_MAX_QUERIES 4096
#define VKF_VK_PROGRAM_QUERIES 16384

typedef struct vkf_vk_slot {
  VkCommandBuffer cmd;
  VkFence fence;
  bool recording, in_flight;
  uint32_t commands;
  /* staging blocks to free when this submission completes; small copies
   * share the last one (staging_used bytes of it are taken) */
  vkf_vk_block **staging;
  uint32_t n_staging, cap_staging;
  uint64_t staging_used, staging_bytes;
  /* host destinations to fill from staging after completion */
  struct vkf_vk_readback *readbacks;
  uint32_t n_readbacks, cap_readbacks;
  VkQueryPool queries;
  uint32_t n_queries, max_queries;
  uint8_t *query_op; /* op kind of each timestamp (0xff: not an op) */
} vkf_vk_slot;

typedef struct vkf_vk_readback {
  vkf_vk_block *staging;
  uint64_t offset;
  void *dst;
  uint64_t bytes;
} vkf_vk_readback;

/* A captured command buffer, replayed as one submission. */
struct vkf_program {
  VkCommandBuffer cmd;
  VkFence fence;
  bool in_flight;
  vkf_vk_range_set reads, writes; /* everything it touches */
  /* buffers freed while capturing (kernels' scratch): the recorded commands
   * still use them, so they are released with the program */
  vkf_buffer **owned;
  uint32_t n_owned, cap_owned;
  /* profiling: a timestamp after every command of the program */
  VkQueryPool queries;
  uint32_t n_queries;
  uint8_t *query_op;
};

typedef struct vkf_vk {
  vkf_backend base;
  vkf_vk_instance inst;
  VkPhysicalDevice pd;
  VkDevice device;
  bool owns_device;
  VkQueue queue;
  uint32_t queue_family;
  struct VolkDeviceTable fn;
  vkf_vk_caps caps;
  uint32_t flags;
  bool lost;
  void (*lock_queue)(void *);
  void (*unlock_queue)(void *);
  void *queue_lock_user;

  vkf_vk_memory mem;

  VkPipelineLayout layout;
  /* kernels named *_tex: set 0 holds VKF_VK_TEXEL_BINDINGS uniform texel
   * buffers, pushed per dispatch (with texel reads only) */
  VkDescriptorSetLayout set_layout_tex;
  VkPipelineLayout layout_tex;
  VkPipelineCache cache;
  bool cache_dirty;
  char cache_path[1024];
  VkShaderModule modules[VKF_SHADER_COUNT];
  vkf_vk_pipeline *pipelines;
  uint32_t n_pipelines, cap_pipelines;

  VkCommandPool pool;
  vkf_vk_slot slots[VKF_VK_SLOTS];
  uint32_t cur;
  vkf_vk_block *staging_spare; /* a retired minimum-size staging block, reused */
  /* hazards since the last barrier in the recording command buffer */
  vkf_vk_range_set reads, writes;
  /* everything the device may touch that the host has not waited for */
  vkf_vk_range_set pend_reads, pend_writes;
  double ts_period_ms;
  uint64_t ts_mask;
  /* capture: the program being recorded, its pseudo-slot, and the eager
   * stream's hazard sets put aside meanwhile */
  vkf_program *capturing;
  vkf_vk_slot capture_slot;
  vkf_vk_range_set saved_reads, saved_writes;
  vkf_program **programs; /* all live programs (waited for in synchronize) */
  uint32_t n_programs, cap_programs;
} vkf_vk;

/* vk_device.c */
vkf_status vkf_vk_result(vkf_vk *vk, VkResult r, const char *what);
const char *vkf_vk_result_name(VkResult r);

/* vk_memory.c */
vkf_status vkf_vk_memory_init(vkf_vk *vk);
void vkf_vk_memory_destroy(vkf_vk *vk);
vkf_status vkf_vk_buffer_create(vkf_backend *be, uint64_t bytes, vkf_buffer **out);
void vkf_vk_buffer_destroy(vkf_backend *be, vkf_buffer *buf);
/* Frees now, whatever is being captured (the program's own cleanup). */
void vkf_vk_buffer_release(vkf_vk *vk, vkf_buffer *buf);
/* A host-visible staging block of at least `bytes` (and at least
 * VKF_VK_STAGING_MIN), mapped. */
#define VKF_VK_STAGING_MIN (16ull << 20)
vkf_status vkf_vk_staging_create(vkf_vk *vk, uint64_t bytes, vkf_vk_block **out);
void vkf_vk_block_free(vkf_vk *vk, vkf_vk_block *b);
/* A small device block (256 bytes) for internal commands, made on first use,
 * outside the tensor accounting; freed with the memory module. */
vkf_status vkf_vk_scratch(vkf_vk *vk, vkf_vk_block **out);
static inline VkDeviceAddress vkf_vk_addr(vkf_tref t) {
  return t.buf ? t.buf->block->address + t.buf->offset + t.offset : 0;
}
/* Texel reads (caps.texel_reads): the RGBA32F view of the block holding t
 * (made on first use), t's offset in floats from the view's start, and the
 * range the view covers (what a dispatch that binds it may read, for the
 * hazard tracking). False when t cannot be read that way: no texel reads on
 * this device, t not 16-byte aligned, a block beyond the texel limit, or the
 * view could not be made. */
bool vkf_vk_texel(vkf_vk *vk, vkf_tref t, VkBufferView *view, uint64_t *float_offset,
                  vkf_vk_range *range);

/* vk_pipeline.c */
vkf_status vkf_vk_pipelines_init(vkf_vk *vk, const char *cache_dir);
void vkf_vk_pipelines_destroy(vkf_vk *vk);
vkf_status vkf_vk_pipeline_get(vkf_vk *vk, vkf_shader_id shader, uint32_t n_spec,
                               const uint32_t *spec, VkPipeline *out);
/* Kernels named *_tex read texel views (layout_tex). */
bool vkf_vk_shader_reads_texels(vkf_shader_id shader);

/* vk_exec.c */
vkf_status vkf_vk_exec_init(vkf_vk *vk);
void vkf_vk_exec_destroy(vkf_vk *vk);
/* Record one dispatch. `push` holds the operands' addresses and the params.
 * Barriers are added as the ranges read/written require. */
typedef struct vkf_vk_dispatch {
  VkPipeline pipeline;
  const void *push;
  uint32_t push_size;
  uint32_t groups[3];
  vkf_op_kind kind;
  const vkf_vk_range *reads;
  uint32_t n_reads;
  const vkf_vk_range *writes;
  uint32_t n_writes;
  /* texel views for set 0's bindings 0.. (kernels named *_tex) */
  const VkBufferView *views;
  uint32_t n_views;
} vkf_vk_dispatch;
vkf_status vkf_vk_dispatch_record(vkf_vk *vk, const vkf_vk_dispatch *d);
vkf_status vkf_vk_fill_record(vkf_vk *vk, vkf_tref dst, uint32_t bits);
vkf_status vkf_vk_write(vkf_backend *be, vkf_tref dst, const void *src);
vkf_status vkf_vk_read(vkf_backend *be, vkf_tref src, void *dst);
vkf_status vkf_vk_copy(vkf_backend *be, vkf_tref dst, vkf_tref src);
vkf_status vkf_vk_flush(vkf_vk *vk);
vkf_status vkf_vk_synchronize(vkf_backend *be);
vkf_status vkf_vk_capture_begin(vkf_backend *be);
vkf_status vkf_vk_capture_end(vkf_backend *be, vkf_program **out);
vkf_status vkf_vk_replay(vkf_backend *be, vkf_program *p);
void vkf_vk_program_destroy(vkf_backend *be, vkf_program *p);

/* vk_ops.c: the op switch and helpers every op family uses */
vkf_status vkf_vk_run(vkf_backend *be, const vkf_op *op);
/* Push constants: the operands' device addresses (8 bytes each, in operand
 * order; 0 for an absent one), then the op's parameter struct. */
typedef struct vkf_vk_push {
  uint8_t bytes[128];
  uint32_t size;
} vkf_vk_push;
/* addr_adjust (may be NULL): bytes added to each present operand address. */
void vkf_vk_push_build(vkf_vk_push *pb, const vkf_op *op, const void *params, size_t params_size,
                       uint64_t *addr_adjust);
/* Records one dispatch of `shader` specialised with `spec`, with barriers
 * derived from the op's read/write masks. */
vkf_status vkf_vk_op_dispatch(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader,
                              const uint32_t *spec, uint32_t n_spec, const vkf_vk_push *pb,
                              uint32_t gx, uint32_t gy, uint32_t gz);
/* Spreads `groups` 1-D workgroups over x and y within the device limits
 * (shaders use vkf_linear_index()/vkf_linear_group()). */
void vkf_vk_grid_2d(const vkf_vk *vk, uint64_t groups, uint32_t *gx, uint32_t *gy);
bool vkf_vk_is_cpu_device(const vkf_vk *vk);
/* Workgroup sizes: one element per invocation; one row per workgroup
 * (a power of two no larger than needed for `cols`). */
uint32_t vkf_vk_elementwise_wg(const vkf_vk *vk);
uint32_t vkf_vk_row_wg(const vkf_vk *vk, uint32_t cols);
/* One element per invocation over n elements, spec constant 0 = WG. */
vkf_status vkf_vk_run_elementwise(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader, uint32_t n,
                                  const void *params, size_t size);
/* One workgroup per row, spec constant 0 = WG (vkf_vk_row_wg). */
vkf_status vkf_vk_run_rows(vkf_vk *vk, const vkf_op *op, vkf_shader_id shader, uint32_t rows,
                           uint32_t cols, const void *params, size_t size);

/* Op families, each in its own vk_<family>.c */
/* ---- matmul ---- */
vkf_status vkf_vk_matmul(vkf_vk *vk, const vkf_op *op);
/* A product for matmul_tex (texel reads): c, a, b, bias (optional) as
 * tensor ranges, p.a_off / p.b_off floats from a's / b's start, `batch`
 * batch indices (zo, zi as in vkf_matmul_tex_params); `kind` is the op it
 * is profiled as. */
typedef struct vkf_vk_mm {
  vkf_op_kind kind;
  vkf_tref c, a, b, bias;
  uint32_t batch;
  vkf_matmul_tex_params p;
} vkf_vk_mm;
/* Records it when matmul_tex can run it (*done); otherwise records nothing
 * and leaves *done false (the caller runs another kernel). */
vkf_status vkf_vk_matmul_tex(vkf_vk *vk, const vkf_vk_mm *mm, bool *done);
/* The same for a matmul or matvec op (vkf_matmul_params). */
vkf_status vkf_vk_matmul_op_tex(vkf_vk *vk, const vkf_op *op, bool *done);
/* ---- norm ---- */
/* layernorm, rmsnorm and their backward ops (vk_norm.c) */
vkf_status vkf_vk_norm(vkf_vk *vk, const vkf_op *op);
/* ---- act ---- */
/* gelu, silu, swiglu and their backward ops (vk_act.c) */
vkf_status vkf_vk_act(vkf_vk *vk, const vkf_op *op);
/* ---- embed ---- */
vkf_status vkf_vk_embed(vkf_vk *vk, const vkf_op *op);
/* ---- rope ---- */
vkf_status vkf_vk_rope(vkf_vk *vk, const vkf_op *op);
/* ---- attn ---- */
vkf_status vkf_vk_attention(vkf_vk *vk, const vkf_op *op);
/* linear attention: forward, backward, decode (vk_attn_linear.c) */
vkf_status vkf_vk_attention_linear(vkf_vk *vk, const vkf_op *op);
/* the flash variant's ops (vk_attn_flash.c) */
vkf_status vkf_vk_attention_flash(vkf_vk *vk, const vkf_op *op);
/* ---- xent ---- */
vkf_status vkf_vk_xent(vkf_vk *vk, const vkf_op *op);
/* ---- optim ---- */
vkf_status vkf_vk_optim(vkf_vk *vk, const vkf_op *op);
/* ---- infer ---- */
vkf_status vkf_vk_infer(vkf_vk *vk, const vkf_op *op);

#endif
