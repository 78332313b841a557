/* The infer family on the CPU: kv_write (new key/value rows into caches at
 * positions read from memory). Plain copies: the Vulkan kernel produces the
 * same bits. */
#include "cpu.h"

#include <string.h>

/* Cache row of new row t of sequence b, or -1 when it is not written. */
static int64_t dest_row(const vkf_kv_write_params *p, const int32_t *where, uint32_t b,
                        uint32_t t) {
  int64_t start = where[2 * b], count = where[2 * b + 1];
  if ((int64_t)t < (int64_t)p->T - count) /* only the last count rows */
    return -1;
  int64_t r = start + (int64_t)t;
  if (p->flags & VKF_KVW_RING) {
    r %= (int64_t)p->rows;
    if (r < 0)
      r += p->rows;
    return r;
  }
  return r >= 0 && r < (int64_t)p->rows ? r : -1;
}

static void kv_write_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  const vkf_kv_write_params *p = &op->p.kv_write;
  float *kc = vkf_cpu_f32(op, 0), *vc = vkf_cpu_f32(op, 1);
  const float *k = vkf_cpu_f32(op, 2), *v = vkf_cpu_f32(op, 3);
  const int32_t *where = (const int32_t *)vkf_cpu_f32(op, 4);
  for (uint32_t i = begin; i < end; i++) {
    uint32_t b = i / p->T, t = i % p->T;
    int64_t r = dest_row(p, where, b, t);
    if (r < 0)
      continue;
    size_t dst = (size_t)b * p->rows + (size_t)r;
    memcpy(kc + dst * p->Wk, k + (size_t)i * p->Wk, (size_t)p->Wk * sizeof(float));
    memcpy(vc + dst * p->Wv, v + (size_t)i * p->Wv, (size_t)p->Wv * sizeof(float));
  }
}

vkf_status vkf_cpu_kv_write(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_kv_write_params *p = &op->p.kv_write;
  uint32_t grain = (uint32_t)(65536 / ((uint64_t)p->Wk + p->Wv + 1)) + 1;
  vkf_pool_run(cpu->pool, p->B * p->T, grain, kv_write_task, (void *)op);
  return VKF_OK;
}
