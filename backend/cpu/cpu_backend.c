/* The CPU backend: fallback when there is no Vulkan, and the reference every
 * Vulkan kernel is tested against. */
#include "cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const vkf_cpu_op_fn op_table[VKF_OP_COUNT] = {
    [VKF_OP_FILL] = vkf_cpu_fill,       [VKF_OP_MATMUL] = vkf_cpu_matmul,
    [VKF_OP_ADD] = vkf_cpu_add,         [VKF_OP_MUL] = vkf_cpu_mul,
    [VKF_OP_SCALE] = vkf_cpu_scale,     [VKF_OP_ROW_SUM] = vkf_cpu_row_sum,
    [VKF_OP_SOFTMAX] = vkf_cpu_softmax,
    /* ---- norm ---- */
    /* ---- act ---- */
    /* ---- embed ---- */
    /* ---- rope ---- */
    /* ---- attn ---- */
    /* ---- xent ---- */
    /* ---- optim ---- */
};

uint32_t vkf_cpu_default_threads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n >= 1 && n <= 1024 ? (uint32_t)n : 1;
}

void vkf_cpu_device_info(uint32_t threads, vkf_device_info *d) {
  memset(d, 0, sizeof(*d));
  snprintf(d->name, sizeof(d->name), "CPU backend (%u threads%s)", threads,
#ifdef VKF_HAVE_CBLAS
           ", OpenBLAS"
#else
           ""
#endif
  );
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

static void cpu_destroy(vkf_backend *be) {
  vkf_cpu *cpu = cpu_of(be);
  vkf_pool_destroy(cpu->pool);
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

static void cpu_buffer_destroy(vkf_backend *be, vkf_buffer *b) {
  if (!b)
    return;
  vkf_cpu *cpu = cpu_of(be);
  cpu->bytes_used -= b->bytes;
  cpu->buffers--;
  free(b->data); /* from posix_memalign */
  vkf_free(be->env, b);
}

static vkf_status cpu_write(vkf_backend *be, vkf_tref dst, const void *src) {
  (void)be;
  memcpy((char *)dst.buf->data + dst.offset, src, (size_t)dst.bytes);
  return VKF_OK;
}

static vkf_status cpu_read(vkf_backend *be, vkf_tref src, void *dst) {
  (void)be;
  memcpy(dst, (const char *)src.buf->data + src.offset, (size_t)src.bytes);
  return VKF_OK;
}

static vkf_status cpu_copy(vkf_backend *be, vkf_tref dst, vkf_tref src) {
  (void)be;
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
