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

/* ---- matvec ----
 * A few rows (one token per sequence of a decoding step) times a weight
 * matrix, reading the weights once for all rows, on the calling thread:
 * decoding is a chain of small products, each too short to pay for waking
 * other threads (OpenBLAS's sgemv/sgemm, which matmul uses, wake theirs and
 * were slower here, most of all on a busy machine). Very large matrices (a
 * big vocabulary's head) are split by columns over the pool. The summation
 * order is fixed (it does not depend on the thread count). On x86-64 with
 * GCC, AVX-512 and AVX2+FMA clones are picked at run time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VKF_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VKF_CLONES
#endif

enum { MV_KB = 8, MV_NB = 256, MV_DOT = 16 };

typedef struct mv_job {
  const vkf_matmul_params *p;
  float *c;
  const float *a, *b, *bias;
} mv_job;

/* c[m, n] = alpha * acc (+ beta * c) (+ bias) for columns [n0, n0 + nb) */
static void mv_store(const mv_job *j, uint32_t m, uint32_t n0, uint32_t nb, const float *acc) {
  const vkf_matmul_params *p = j->p;
  float *c = j->c + (size_t)m * p->ldc + n0;
  const bool beta = p->flags & VKF_MM_BETA;
  for (uint32_t n = 0; n < nb; n++) {
    float v = p->alpha * acc[n];
    if (beta)
      v += p->beta * c[n];
    c[n] = j->bias ? v + j->bias[n0 + n] : v;
  }
}

/* b [K, N]: rows of b streamed MV_KB at a time into per-row accumulators of
 * MV_NB columns (in L1): acc[m, n] += sum_u a[m, k + u] * b[k + u, n] */
VKF_CLONES static void mv_nn(const mv_job *j, uint32_t n0, uint32_t nb) {
  const vkf_matmul_params *p = j->p;
  const uint32_t M = p->M, K = p->K, K8 = K / MV_KB * MV_KB;
  const size_t ldb = p->ldb;
  float acc[VKF_MATVEC_MAX_M][MV_NB];
  for (uint32_t m = 0; m < M; m++)
    memset(acc[m], 0, nb * sizeof(float));
  for (uint32_t k = 0; k < K8; k += MV_KB) {
    const float *w = j->b + k * ldb + n0;
    for (uint32_t m = 0; m < M; m++) {
      const float *x = j->a + (size_t)m * p->lda + k;
      const float x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3], x4 = x[4], x5 = x[5], x6 = x[6],
                  x7 = x[7];
      float *r = acc[m];
      for (uint32_t n = 0; n < nb; n++)
        r[n] += ((x0 * w[n] + x1 * w[ldb + n]) + (x2 * w[2 * ldb + n] + x3 * w[3 * ldb + n])) +
                ((x4 * w[4 * ldb + n] + x5 * w[5 * ldb + n]) +
                 (x6 * w[6 * ldb + n] + x7 * w[7 * ldb + n]));
    }
  }
  for (uint32_t k = K8; k < K; k++) {
    const float *w = j->b + k * ldb + n0;
    for (uint32_t m = 0; m < M; m++) {
      const float x = j->a[(size_t)m * p->lda + k];
      for (uint32_t n = 0; n < nb; n++)
        acc[m][n] += x * w[n];
    }
  }
  for (uint32_t m = 0; m < M; m++)
    mv_store(j, m, n0, nb, acc[m]);
}

/* b [N, K]: each row of b once, dotted with every row of a in MV_DOT
 * partial sums, added in a fixed tree */
VKF_CLONES static void mv_nt(const mv_job *j, uint32_t n0, uint32_t nb) {
  const vkf_matmul_params *p = j->p;
  const uint32_t M = p->M, K = p->K, K16 = K / MV_DOT * MV_DOT;
  float out[VKF_MATVEC_MAX_M][MV_NB];
  for (uint32_t n = 0; n < nb; n++) {
    const float *w = j->b + (size_t)(n0 + n) * p->ldb;
    float s[VKF_MATVEC_MAX_M][MV_DOT];
    memset(s, 0, sizeof(s));
    for (uint32_t k = 0; k < K16; k += MV_DOT)
      for (uint32_t m = 0; m < M; m++) {
        const float *x = j->a + (size_t)m * p->lda + k;
        for (uint32_t u = 0; u < MV_DOT; u++)
          s[m][u] += x[u] * w[k + u];
      }
    for (uint32_t k = K16; k < K; k++)
      for (uint32_t m = 0; m < M; m++)
        s[m][k - K16] += j->a[(size_t)m * p->lda + k] * w[k];
    for (uint32_t m = 0; m < M; m++) {
      float t[8];
      for (uint32_t u = 0; u < 8; u++)
        t[u] = s[m][u] + s[m][u + 8];
      out[m][n] = ((t[0] + t[4]) + (t[1] + t[5])) + ((t[2] + t[6]) + (t[3] + t[7]));
    }
  }
  for (uint32_t m = 0; m < M; m++)
    mv_store(j, m, n0, nb, out[m]);
}

static void mv_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const mv_job *j = arg;
  for (uint32_t blk = begin; blk < end; blk++) {
    uint32_t n0 = blk * MV_NB, nb = j->p->N - n0 < MV_NB ? j->p->N - n0 : MV_NB;
    if (j->p->flags & VKF_MM_TRANS_B)
      mv_nt(j, n0, nb);
    else
      mv_nn(j, n0, nb);
  }
}

vkf_status vkf_cpu_matvec(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_matmul_params *p = &op->p.matmul;
  if (p->M > VKF_MATVEC_MAX_M || p->batch != 1 || (p->flags & VKF_MM_TRANS_A))
    return vkf_cpu_matmul(cpu, op);
  mv_job j = {p, vkf_cpu_f32(op, 0), vkf_cpu_f32(op, 1), vkf_cpu_f32(op, 2),
              (p->flags & VKF_MM_BIAS) ? vkf_cpu_f32(op, 3) : NULL};
  const uint32_t blocks = (p->N + MV_NB - 1) / MV_NB;
  /* the pool only for matrices of more than 16 MiB */
  const uint64_t bytes = 4ull * p->K * p->N;
  const uint32_t grain =
      bytes > (16u << 20) ? (uint32_t)((4ull << 20) / (4ull * p->K * MV_NB)) + 1 : blocks;
  vkf_pool_run(cpu->pool, blocks, grain, mv_task, &j);
  return VKF_OK;
}
