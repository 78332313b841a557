/* CPU backend internals: buffers, the pool, one function per op. */
#ifndef VKF_CPU_H
#define VKF_CPU_H

#include "backend.h"
#include "threadpool.h"

struct vkf_buffer {
  void *data; /* 64-byte aligned */
  uint64_t bytes;
};

typedef struct vkf_cpu {
  vkf_backend base;
  vkf_pool *pool;
  uint64_t bytes_used, bytes_peak;
  uint64_t memory_limit; /* 0 = none */
  uint32_t buffers;
} vkf_cpu;

static inline float *vkf_cpu_f32(const vkf_op *op, uint32_t i) {
  return op->t[i].buf ? (float *)((char *)op->t[i].buf->data + op->t[i].offset) : NULL;
}

typedef vkf_status (*vkf_cpu_op_fn)(vkf_cpu *cpu, const vkf_op *op);

/* One per op; same names as the shaders and tests. */
vkf_status vkf_cpu_fill(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_matmul(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_add(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_mul(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_scale(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_row_sum(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_softmax(vkf_cpu *cpu, const vkf_op *op);
/* ---- norm ---- */
/* ---- act ---- */
/* ---- embed ---- */
/* ---- rope ---- */
/* ---- attn ---- */
/* ---- xent ---- */
/* ---- optim ---- */

/* Matmul on raw pointers (used by other CPU ops too). */
void vkf_cpu_matmul_f32(vkf_pool *pool, const vkf_matmul_params *p, float *c, const float *a,
                        const float *b, const float *bias);

#endif
