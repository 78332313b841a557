/* The CPU backend: fallback when there is no Vulkan, and the reference every
 * Vulkan kernel is tested against. */
#include "cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const vkf_cpu_op_fn op_table[VKF_OP_COUNT] = {
    [VKF_OP_FILL] = vkf_cpu_fill,
    [VKF_OP_MATMUL] = vkf_cpu_matmul,
    [VKF_OP_ADD] = vkf_cpu_add,
    [VKF_OP_MUL] = vkf_cpu_mul,
    [VKF_OP_SCALE] = vkf_cpu_scale,
    [VKF_OP_ROW_SUM] = vkf_cpu_row_sum,
    [VKF_OP_SOFTMAX] = vkf_cpu_softmax,
    /* ---- norm ---- */
    [VKF_OP_LAYERNORM] = vkf_cpu_layernorm,
    [VKF_OP_LAYERNORM_BACKWARD] = vkf_cpu_layernorm_backward,
    [VKF_OP_RMSNORM] = vkf_cpu_rmsnorm,
    [VKF_OP_RMSNORM_BACKWARD] = vkf_cpu_rmsnorm_backward,
    /* ---- act ---- */
    [VKF_OP_GELU] = vkf_cpu_gelu,
    [VKF_OP_GELU_BACKWARD] = vkf_cpu_gelu_backward,
    [VKF_OP_SILU] = vkf_cpu_silu,
    [VKF_OP_SILU_BACKWARD] = vkf_cpu_silu_backward,
    [VKF_OP_SWIGLU] = vkf_cpu_swiglu,
    [VKF_OP_SWIGLU_BACKWARD] = vkf_cpu_swiglu_backward,
    /* ---- embed ---- */
    [VKF_OP_EMBEDDING] = vkf_cpu_embedding,
    [VKF_OP_EMBEDDING_BACKWARD] = vkf_cpu_embedding_backward,
    [VKF_OP_BIAS_BACKWARD] = vkf_cpu_bias_backward,
    /* ---- rope ---- */
    [VKF_OP_ROPE] = vkf_cpu_rope,
    [VKF_OP_ROPE_BACKWARD] = vkf_cpu_rope_backward,
    /* ---- attn ---- */
    [VKF_OP_ATTENTION_FORWARD] = vkf_cpu_attention_forward,
    [VKF_OP_ATTENTION_BACKWARD_DS] = vkf_cpu_attention_backward_ds,
    [VKF_OP_ATTENTION_BACKWARD_DQ] = vkf_cpu_attention_backward_dq,
    [VKF_OP_ATTENTION_BACKWARD_DKV] = vkf_cpu_attention_backward_dkv,
    [VKF_OP_LINEAR_ATTENTION_FORWARD] = vkf_cpu_linear_attention_forward,
    [VKF_OP_LINEAR_ATTENTION_BACKWARD_Q] = vkf_cpu_linear_attention_backward_q,
    [VKF_OP_LINEAR_ATTENTION_BACKWARD_KV] = vkf_cpu_linear_attention_backward_kv,
    [VKF_OP_LINEAR_ATTENTION_DECODE] = vkf_cpu_linear_attention_decode,
    [VKF_OP_ATTENTION_FLASH_FORWARD] = vkf_cpu_attention_flash_forward,
    [VKF_OP_ATTENTION_FLASH_BACKWARD_PRE] = vkf_cpu_attention_flash_backward_pre,
    [VKF_OP_ATTENTION_FLASH_BACKWARD_DKV] = vkf_cpu_attention_flash_backward_dkv,
    [VKF_OP_ATTENTION_FLASH_BACKWARD_DQ] = vkf_cpu_attention_flash_backward_dq,
    /* ---- xent ---- */
    [VKF_OP_CROSS_ENTROPY] = vkf_cpu_cross_entropy,
    [VKF_OP_CROSS_ENTROPY_BACKWARD] = vkf_cpu_cross_entropy_backward,
    /* ---- optim ---- */
    [VKF_OP_ADAMW] = vkf_cpu_adamw,
    [VKF_OP_GRAD_NORM] = vkf_cpu_grad_norm,
    [VKF_OP_CLIP_GRADS] = vkf_cpu_clip_grads,
    /* ---- infer ---- */
    [VKF_OP_KV_WRITE] = vkf_cpu_kv_write,
    [VKF_OP_MATVEC] = vkf_cpu_matvec,
};

uint32_t vkf_cpu_default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n >= 1 && n <= 1024 ? (uint32_t)n : 1;
}

void vkf_cpu_device_info(uint32_t threads, vkf_device_info *d) {
  memset(d, 0, sizeof(*d));
  static const char *gemm_names[] = {
      [VKF_CPU_GEMM_PORTABLE] = "portable GEMM",
      [VKF_CPU_GEMM_BLAS] = "OpenBLAS GEMM",
      [VKF_CPU_GEMM_AVX2] = "AVX2 GEMM",
      [VKF_CPU_GEMM_AVX512] = "AVX-512 GEMM",
  };
  snprintf(d->name, sizeof(d->name), "CPU backend (%u threads, %s)", threads,
           gemm_names[vkf_cpu_gemm_pick()]);
  d->backend = VKF_BACKEND_CPU;
  d->type = VKF_DEVICE_TYPE_CPU_BACKEND;
  snprintf(d->driver_name, sizeof(d->driver_name), "cpu");
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0)
    d->device_memory_bytes = d->host_memory_bytes = (uint64_t)pages * (uint64_t)page;
  d->uma = 1;
  d->subgroup_size = d->subgroup_size_min = d->subgroup_size_max = 1;
  d->max_storage_buffer_range = d->max_allocation_bytes = d->max_buffer_bytes = UINT64_MAX;
  d->max_allocation_count = UINT32_MAX;
  d->fp16_arithmetic = d->fp16_storage = d->int8_arithmetic = d->int8_storage = 1;
  d->bf16_arithmetic = 1;
  d->timestamps = 1;
  d->usable = 1;
  d->cpu_threads = threads;
}

static vkf_cpu *cpu_of(vkf_backend *be) {
  return (vkf_cpu *)be;
}

static void cpu_program_destroy(vkf_backend *be, vkf_program *p);

static void cpu_destroy(vkf_backend *be) {
  vkf_cpu *cpu = cpu_of(be);
  cpu_program_destroy(be, cpu->capturing);
  vkf_pool_destroy(cpu->pool);
  free(cpu->scratch); /* from posix_memalign */
  vkf_free(be->env, cpu);
}

static vkf_status cpu_buffer_create(vkf_backend *be, uint64_t bytes, vkf_buffer **out) {
  vkf_cpu *cpu = cpu_of(be);
  *out = NULL;
  /* Round up so 4-byte-wide kernels (fill of 16-bit tensors) stay inside. */
  uint64_t size = (bytes + 63) & ~(uint64_t)63;
  if (cpu->memory_limit && size > cpu->memory_limit - cpu->bytes_used)
    return vkf_fail(be->env, VKF_ERROR_OUT_OF_DEVICE_MEMORY,
                    "out of memory: %llu MiB more would pass the %llu MiB limit (%llu MiB in use)",
                    (unsigned long long)(size >> 20), (unsigned long long)(cpu->memory_limit >> 20),
                    (unsigned long long)(cpu->bytes_used >> 20));
  vkf_buffer *b = vkf_malloc(be->env, sizeof(*b));
  void *data = NULL;
  if (b && size <= SIZE_MAX && posix_memalign(&data, 64, (size_t)size) != 0)
    data = NULL;
  if (!b || !data) {
    vkf_free(be->env, b);
    return vkf_fail(be->env, VKF_ERROR_OUT_OF_HOST_MEMORY,
                    "CPU backend: cannot allocate %llu bytes", (unsigned long long)bytes);
  }
  b->data = data;
  b->bytes = size;
  cpu->bytes_used += size;
  if (cpu->bytes_used > cpu->bytes_peak)
    cpu->bytes_peak = cpu->bytes_used;
  cpu->buffers++;
  *out = b;
  return VKF_OK;
}

static void cpu_buffer_release(vkf_backend *be, vkf_buffer *b);

static void cpu_buffer_destroy(vkf_backend *be, vkf_buffer *b) {
  if (!b)
    return;
  vkf_program *p = cpu_of(be)->capturing;
  if (p) {
    /* a recorded op may use it: the program releases it */
    if (p->n_owned == p->cap_owned) {
      uint32_t cap = p->cap_owned ? p->cap_owned * 2 : 16;
      vkf_buffer **nb = vkf_realloc(be->env, p->owned, cap * sizeof(*nb));
      if (nb) {
        p->owned = nb;
        p->cap_owned = cap;
      }
    }
    if (p->n_owned < p->cap_owned)
      p->owned[p->n_owned++] = b;
    return; /* (without host memory for the list, leak rather than dangle) */
  }
  cpu_buffer_release(be, b);
}

static void cpu_buffer_release(vkf_backend *be, vkf_buffer *b) {
  vkf_cpu *cpu = cpu_of(be);
  cpu->bytes_used -= b->bytes;
  cpu->buffers--;
  free(b->data); /* from posix_memalign */
  vkf_free(be->env, b);
}

static vkf_status no_host_io(vkf_backend *be) {
  return vkf_fail(be->env, VKF_ERROR_INVALID_ARGUMENT,
                  "tensor reads and writes are not allowed while capturing a program");
}

static vkf_status cpu_write(vkf_backend *be, vkf_tref dst, const void *src) {
  if (cpu_of(be)->capturing)
    return no_host_io(be);
  memcpy((char *)dst.buf->data + dst.offset, src, (size_t)dst.bytes);
  return VKF_OK;
}

static vkf_status cpu_read(vkf_backend *be, vkf_tref src, void *dst) {
  if (cpu_of(be)->capturing)
    return no_host_io(be);
  memcpy(dst, (const char *)src.buf->data + src.offset, (size_t)src.bytes);
  return VKF_OK;
}

static vkf_status cpu_copy(vkf_backend *be, vkf_tref dst, vkf_tref src) {
  if (cpu_of(be)->capturing)
    return no_host_io(be);
  memmove((char *)dst.buf->data + dst.offset, (const char *)src.buf->data + src.offset,
          (size_t)(dst.bytes < src.bytes ? dst.bytes : src.bytes));
  return VKF_OK;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static vkf_status cpu_run(vkf_backend *be, const vkf_op *op) {
  if ((unsigned)op->kind >= VKF_OP_COUNT || !op_table[op->kind])
    return vkf_fail(be->env, VKF_ERROR_UNSUPPORTED, "CPU backend: op %s not implemented",
                    vkf_op_name(op->kind));
  vkf_program *cap = cpu_of(be)->capturing;
  if (cap) {
    if (cap->n == cap->cap) {
      uint32_t n = cap->cap ? cap->cap * 2 : 64;
      vkf_op *ops = vkf_realloc(be->env, cap->ops, n * sizeof(*ops));
      if (!ops)
        return vkf_fail(be->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "captured program");
      cap->ops = ops;
      cap->cap = n;
    }
    cap->ops[cap->n++] = *op;
    return VKF_OK;
  }
  double t0 = be->profiling ? now_ms() : 0;
  vkf_status st = op_table[op->kind](cpu_of(be), op);
  if (be->profiling) {
    be->profile.count[op->kind]++;
    be->profile.ms[op->kind] += now_ms() - t0;
  }
  return st;
}

static vkf_status cpu_synchronize(vkf_backend *be) {
  (void)be;
  return VKF_OK;
}

static vkf_status cpu_set_threads(vkf_backend *be, uint32_t threads) {
  vkf_cpu *cpu = cpu_of(be);
  vkf_pool *pool;
  vkf_status st = vkf_pool_create(be->env, threads, &pool);
  if (st != VKF_OK)
    return st;
  vkf_pool_destroy(cpu->pool);
  cpu->pool = pool;
  vkf_cpu_device_info(vkf_pool_threads(pool), &be->info);
  return VKF_OK;
}

static void cpu_memory_stats(const vkf_backend *be, vkf_memory_stats *out) {
  const vkf_cpu *cpu = (const vkf_cpu *)be;
  out->device_bytes_allocated = cpu->bytes_used;
  out->device_bytes_used = cpu->bytes_used;
  out->device_bytes_peak = cpu->bytes_peak;
  out->device_blocks = cpu->buffers;
}

static vkf_status cpu_capture_begin(vkf_backend *be) {
  vkf_cpu *cpu = cpu_of(be);
  if (cpu->capturing)
    return vkf_fail(be->env, VKF_ERROR_INVALID_ARGUMENT, "already capturing");
  cpu->capturing = vkf_calloc(be->env, 1, sizeof(vkf_program));
  return cpu->capturing ? VKF_OK : vkf_fail(be->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "program");
}

static vkf_status cpu_capture_end(vkf_backend *be, vkf_program **out) {
  vkf_cpu *cpu = cpu_of(be);
  *out = NULL;
  if (!cpu->capturing)
    return vkf_fail(be->env, VKF_ERROR_INVALID_ARGUMENT, "not capturing");
  *out = cpu->capturing;
  cpu->capturing = NULL;
  return VKF_OK;
}

static vkf_status cpu_replay(vkf_backend *be, vkf_program *p) {
  if (cpu_of(be)->capturing)
    return vkf_fail(be->env, VKF_ERROR_INVALID_ARGUMENT, "cannot replay while capturing");
  for (uint32_t i = 0; i < p->n; i++) {
    vkf_status st = cpu_run(be, &p->ops[i]);
    if (st != VKF_OK)
      return st;
  }
  return VKF_OK;
}

static void cpu_program_destroy(vkf_backend *be, vkf_program *p) {
  if (!p)
    return;
  if (cpu_of(be)->capturing == p)
    cpu_of(be)->capturing = NULL;
  for (uint32_t i = 0; i < p->n_owned; i++)
    cpu_buffer_release(be, p->owned[i]);
  vkf_free(be->env, p->owned);
  vkf_free(be->env, p->ops);
  vkf_free(be->env, p);
}

static const vkf_backend_vtbl cpu_vtbl = {
    .destroy = cpu_destroy,
    .buffer_create = cpu_buffer_create,
    .buffer_destroy = cpu_buffer_destroy,
    .write = cpu_write,
    .read = cpu_read,
    .copy = cpu_copy,
    .run = cpu_run,
    .synchronize = cpu_synchronize,
    .set_threads = cpu_set_threads,
    .memory_stats = cpu_memory_stats,
    .capture_begin = cpu_capture_begin,
    .capture_end = cpu_capture_end,
    .replay = cpu_replay,
    .program_destroy = cpu_program_destroy,
};

vkf_status vkf_cpu_backend_create(vkf_env *env, uint32_t threads, bool profiling,
                                  uint64_t memory_limit, vkf_backend **out) {
  *out = NULL;
  vkf_cpu *cpu = vkf_calloc(env, 1, sizeof(*cpu));
  if (!cpu)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "CPU backend");
  vkf_status st = vkf_pool_create(env, threads, &cpu->pool);
  if (st != VKF_OK) {
    vkf_free(env, cpu);
    return st;
  }
  cpu->base.vt = &cpu_vtbl;
  cpu->base.env = env;
  cpu->base.profiling = profiling;
  cpu->memory_limit = memory_limit;
  vkf_cpu_device_info(vkf_pool_threads(cpu->pool), &cpu->base.info);
  *out = &cpu->base;
  return VKF_OK;
}
