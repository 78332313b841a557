/* Embedding forward/backward and the bias gradient on the CPU.
 *
 * embedding and embedding_backward use exactly the float operations of the
 * Vulkan kernels (shaders/embed.comp), in the same order, so both backends
 * give the same bits: see vkf_embedding_backward_params. bias_backward is a
 * reference reduction in double. */
#include "cpu.h"
#include "vecmath.h"

#include <string.h>

static inline const int32_t *cpu_i32(const vkf_op *op, uint32_t i) {
  return op->t[i].buf
             ? (const int32_t *)(const void *)((const char *)op->t[i].buf->data + op->t[i].offset)
             : NULL;
}

/* ---- embedding ---- */
VKF_VEC_CLONES static void embedding_task(void *arg, uint32_t begin, uint32_t end,
                                          uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  const vkf_embedding_params *p = &op->p.embedding;
  float *out = vkf_cpu_f32(op, 0);
  const int32_t *tok = cpu_i32(op, 1);
  const float *wte = vkf_cpu_f32(op, 2), *wpe = vkf_cpu_f32(op, 3);
  const size_t C = p->C;
  for (uint32_t n = begin; n < end; n++) {
    float *o = out + n * C;
    int32_t id = tok[n];
    if (id < 0 || (uint32_t)id >= p->V) {
      /* unreachable after the frontend's check; kept memory-safe */
      for (size_t c = 0; c < C; c++)
        o[c] = 0.0f;
      continue;
    }
    const float *e = wte + (size_t)id * C;
    if (wpe) {
      const float *q = wpe + (size_t)(p->pos_offset + n % p->T) * C;
      for (size_t c = 0; c < C; c++)
        o[c] = e[c] + q[c];
    } else {
      memcpy(o, e, C * sizeof(float));
    }
  }
}

vkf_status vkf_cpu_embedding(vkf_cpu *cpu, const vkf_op *op) {
  uint32_t grain = 16384 / (op->p.embedding.C + 1) + 1;
  vkf_pool_run(cpu->pool, op->p.embedding.N, grain, embedding_task, (void *)op);
  return VKF_OK;
}

/* ---- embedding_backward ---- */
typedef struct emb_bw_job {
  const vkf_op *op;
  float *scratch; /* 8 * C floats per worker: the eight accumulator rows */
} emb_bw_job;

/* dwte: one item per segment (distinct token id); segments own disjoint rows
 * of dwte, so the partition cannot change any sum. The segment's rows are
 * read whole (row k into accumulator row k % 8), which performs exactly the
 * per-column float operations of the kernel. */
VKF_VEC_CLONES static void embedding_backward_wte_task(void *arg, uint32_t begin, uint32_t end,
                                                       uint32_t worker) {
  const emb_bw_job *job = arg;
  const vkf_op *op = job->op;
  const vkf_embedding_backward_params *p = &op->p.embedding_backward;
  float *dwte = vkf_cpu_f32(op, 0);
  const float *dout = vkf_cpu_f32(op, 2);
  const int32_t *idx = cpu_i32(op, 3);
  const int32_t *start = idx, *order = idx + p->U + 1, *seg_tok = idx + p->U + 1 + p->N;
  const size_t C = p->C;
  float *acc = job->scratch + (size_t)worker * 8 * C;
  for (uint32_t s = begin; s < end; s++) {
    uint32_t a = (uint32_t)start[s], b = (uint32_t)start[s + 1];
    if (a == b)
      continue; /* an empty (padding) segment: a fixed-capacity index */
    memset(acc, 0, 8 * C * sizeof(float));
    for (uint32_t k = a; k < b; k++) {
      float *ak = acc + ((k - a) & 7u) * C;
      const float *src = dout + (size_t)order[k] * C;
      for (size_t c = 0; c < C; c++)
        ak[c] += src[c];
    }
    float *row = dwte + (size_t)seg_tok[s] * C;
    for (size_t c = 0; c < C; c++) {
      float total = ((acc[c] + acc[C + c]) + (acc[2 * C + c] + acc[3 * C + c])) +
                    ((acc[4 * C + c] + acc[5 * C + c]) + (acc[6 * C + c] + acc[7 * C + c]));
      row[c] += total;
    }
  }
}

VKF_VEC_CLONES static void embedding_backward_wpe_task(void *arg, uint32_t begin, uint32_t end,
                                                       uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  const vkf_embedding_backward_params *p = &op->p.embedding_backward;
  float *dwpe = vkf_cpu_f32(op, 1);
  const float *dout = vkf_cpu_f32(op, 2);
  const size_t C = p->C, T = p->T, B = p->N / p->T;
  for (uint32_t t = begin; t < end; t++) {
    float *row = dwpe + (size_t)(p->pos_offset + t) * C;
    for (size_t c = 0; c < C; c++) {
      float acc = 0.0f;
      for (size_t b = 0; b < B; b++)
        acc += dout[(b * T + t) * C + c];
      row[c] += acc;
    }
  }
}

vkf_status vkf_cpu_embedding_backward(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_embedding_backward_params *p = &op->p.embedding_backward;
  if (op->t[0].buf) {
    uint32_t threads = vkf_pool_threads(cpu->pool);
    emb_bw_job job = {op, vkf_malloc(cpu->base.env, (size_t)threads * 8 * p->C * sizeof(float))};
    if (!job.scratch)
      return vkf_fail(cpu->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY,
                      "embedding_backward: accumulators");
    vkf_pool_run(cpu->pool, p->U, 8192 / (p->C + 1) + 1, embedding_backward_wte_task, &job);
    vkf_free(cpu->base.env, job.scratch);
  }
  if (op->t[1].buf)
    vkf_pool_run(cpu->pool, p->T, 8192 / (p->C * (p->N / p->T) + 1) + 1,
                 embedding_backward_wpe_task, (void *)op);
  return VKF_OK;
}

/* ---- bias_backward ---- */
/* Columns are split into fixed blocks; each block sums every row in double,
 * in row order: the result does not depend on the thread count. */
#define BIAS_BLOCK 64u

VKF_VEC_CLONES static void bias_backward_task(void *arg, uint32_t begin, uint32_t end,
                                              uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  const vkf_bias_backward_params *p = &op->p.bias_backward;
  float *dbias = vkf_cpu_f32(op, 0);
  const float *dout = vkf_cpu_f32(op, 1);
  for (uint32_t blk = begin; blk < end; blk++) {
    uint32_t c0 = blk * BIAS_BLOCK, c1 = c0 + BIAS_BLOCK < p->N ? c0 + BIAS_BLOCK : p->N;
    double acc[BIAS_BLOCK];
    for (uint32_t c = c0; c < c1; c++)
      acc[c - c0] = 0;
    for (size_t r = 0; r < p->rows; r++) {
      const float *row = dout + r * p->N;
      for (uint32_t c = c0; c < c1; c++)
        acc[c - c0] += row[c];
    }
    for (uint32_t c = c0; c < c1; c++)
      dbias[c] = (float)((double)dbias[c] + acc[c - c0]);
  }
}

vkf_status vkf_cpu_bias_backward(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_bias_backward_params *p = &op->p.bias_backward;
  uint32_t blocks = (p->N + BIAS_BLOCK - 1) / BIAS_BLOCK;
  vkf_pool_run(cpu->pool, blocks, 1, bias_backward_task, (void *)op);
  return VKF_OK;
}
