/* fill, add, mul, scale on the CPU. */
#include "cpu.h"
#include "vecmath.h"

#include <string.h>

#define GRAIN 16384u

VKF_VEC_CLONES static void fill_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  uint32_t *c = (uint32_t *)vkf_cpu_f32(op, 0);
  uint32_t bits = op->p.fill.bits;
  for (uint32_t i = begin; i < end; i++)
    c[i] = bits;
}

vkf_status vkf_cpu_fill(vkf_cpu *cpu, const vkf_op *op) {
  vkf_pool_run(cpu->pool, op->p.fill.n, GRAIN, fill_task, (void *)op);
  uint64_t tail = op->t[0].bytes - 4ull * op->p.fill.n;
  if (tail) /* the low half of the pattern (little-endian) */
    memcpy((char *)vkf_cpu_f32(op, 0) + 4ull * op->p.fill.n, &op->p.fill.bits, (size_t)tail);
  return VKF_OK;
}

/* Binary ops with b either full-size or one row broadcast over rows. */
#define BINARY_TASK(name, expr)                                                                    \
  VKF_VEC_CLONES static void name##_task(void *arg, uint32_t begin, uint32_t end,                  \
                                         uint32_t worker) {                                        \
    (void)worker;                                                                                  \
    const vkf_op *op = arg;                                                                        \
    float *c = vkf_cpu_f32(op, 0);                                                                 \
    const float *a = vkf_cpu_f32(op, 1), *b = vkf_cpu_f32(op, 2);                                  \
    const uint32_t n = op->p.binary.n, nb = op->p.binary.nb;                                       \
    if (nb == n) {                                                                                 \
      for (uint32_t i = begin; i < end; i++)                                                       \
        c[i] = expr(a[i], b[i]);                                                                   \
      return;                                                                                      \
    }                                                                                              \
    uint32_t i = begin;                                                                            \
    while (i < end) {                                                                              \
      uint32_t jb = i % nb, len = nb - jb < end - i ? nb - jb : end - i;                           \
      for (uint32_t j = 0; j < len; j++)                                                           \
        c[i + j] = expr(a[i + j], b[jb + j]);                                                      \
      i += len;                                                                                    \
    }                                                                                              \
  }

#define ADD_(x, y) ((x) + (y))
#define MUL_(x, y) ((x) * (y))
BINARY_TASK(add, ADD_)
BINARY_TASK(mul, MUL_)

vkf_status vkf_cpu_add(vkf_cpu *cpu, const vkf_op *op) {
  vkf_pool_run(cpu->pool, op->p.binary.n, GRAIN, add_task, (void *)op);
  return VKF_OK;
}

vkf_status vkf_cpu_mul(vkf_cpu *cpu, const vkf_op *op) {
  vkf_pool_run(cpu->pool, op->p.binary.n, GRAIN, mul_task, (void *)op);
  return VKF_OK;
}

VKF_VEC_CLONES static void scale_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  float *c = vkf_cpu_f32(op, 0);
  const float *a = vkf_cpu_f32(op, 1);
  const float s = op->p.scale.s;
  for (uint32_t i = begin; i < end; i++)
    c[i] = a[i] * s;
}

vkf_status vkf_cpu_scale(vkf_cpu *cpu, const vkf_op *op) {
  vkf_pool_run(cpu->pool, op->p.scale.n, GRAIN, scale_task, (void *)op);
  return VKF_OK;
}
