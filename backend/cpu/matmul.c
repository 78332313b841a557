/* matmul on the CPU: CBLAS sgemm (OpenBLAS) when the build found it, a
 * blocked portable loop otherwise. */
#include "cpu.h"

#include <string.h>

#ifdef VKF_HAVE_CBLAS
#include <cblas.h>
#endif

typedef struct mm_job {
  const vkf_matmul_params *p;
  float *c;
  const float *a, *b, *bias;
} mm_job;

/* Per-matrix work under which one thread per matrix beats splitting one. */
#define SMALL_FLOPS (1u << 21)

static void add_bias_rows(float *c, const float *bias, uint32_t M, uint32_t N, uint32_t ldc,
                          bool overwrite) {
  for (uint32_t i = 0; i < M; i++) {
    float *row = c + (size_t)i * ldc;
    if (overwrite)
      memcpy(row, bias, N * sizeof(float));
    else
      for (uint32_t j = 0; j < N; j++)
        row[j] += bias[j];
  }
}

#ifndef VKF_HAVE_CBLAS
/* Rows [r0, r1) of one matrix product, portable C. The inner loops run over
 * contiguous memory so the compiler vectorises them. */
static void gemm_rows(const vkf_matmul_params *p, float *C, const float *A, const float *B,
                      uint32_t r0, uint32_t r1, float beta) {
  const uint32_t N = p->N, K = p->K, lda = p->lda, ldb = p->ldb, ldc = p->ldc;
  const bool ta = p->flags & VKF_MM_TRANS_A, tb = p->flags & VKF_MM_TRANS_B;
  for (uint32_t i = r0; i < r1; i++) {
    float *c = C + (size_t)i * ldc;
    if (beta == 0.0f)
      memset(c, 0, N * sizeof(float));
    else if (beta != 1.0f)
      for (uint32_t j = 0; j < N; j++)
        c[j] *= beta;
  }
  if (!tb) {
    /* c[i, :] += alpha * a[i, k] * b[k, :], blocked over columns for L1. */
    enum { NB = 512, KB = 128 };
    for (uint32_t j0 = 0; j0 < N; j0 += NB) {
      uint32_t nb = N - j0 < NB ? N - j0 : NB;
      for (uint32_t k0 = 0; k0 < K; k0 += KB) {
        uint32_t k1 = K - k0 < KB ? K : k0 + KB;
        for (uint32_t i = r0; i < r1; i++) {
          float *c = C + (size_t)i * ldc + j0;
          for (uint32_t k = k0; k < k1; k++) {
            float aik = p->alpha * (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
            const float *b = B + (size_t)k * ldb + j0;
            for (uint32_t j = 0; j < nb; j++)
              c[j] += aik * b[j];
          }
        }
      }
    }
  } else {
    /* b is [N, K]: each c[i, j] is a dot product of two rows. */
    for (uint32_t i = r0; i < r1; i++) {
      float *c = C + (size_t)i * ldc;
      for (uint32_t j = 0; j < N; j++) {
        const float *b = B + (size_t)j * ldb;
        float acc[8] = {0};
        uint32_t k = 0;
        if (!ta) {
          const float *a = A + (size_t)i * lda;
          for (; k + 8 <= K; k += 8)
            for (uint32_t u = 0; u < 8; u++)
              acc[u] += a[k + u] * b[k + u];
          for (; k < K; k++)
            acc[0] += a[k] * b[k];
        } else {
          for (; k < K; k++)
            acc[k & 7] += A[(size_t)k * lda + i] * b[k];
        }
        float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        c[j] += p->alpha * s;
      }
    }
  }
}
#endif

/* One whole matrix product (batch index bi) on the calling thread. */
static void gemm_one(const mm_job *j, uint32_t bi, uint32_t r0, uint32_t r1) {
  const vkf_matmul_params *p = j->p;
  const float *A = j->a + (size_t)bi * p->stride_a;
  const float *B = j->b + (size_t)bi * p->stride_b;
  float *C = j->c + (size_t)bi * p->stride_c;
  float beta = (p->flags & VKF_MM_BETA) ? p->beta : 0.0f;
  bool bias_first = j->bias && beta == 0.0f;
  if (bias_first) {
    add_bias_rows(C + (size_t)r0 * p->ldc, j->bias, r1 - r0, p->N, p->ldc, true);
    beta = 1.0f;
  }
#ifdef VKF_HAVE_CBLAS
  const bool ta = p->flags & VKF_MM_TRANS_A;
  const float *Ar = ta ? A + r0 : A + (size_t)r0 * p->lda;
  if (r1 - r0 == 1) {
    /* One row (decoding a token): a matrix-vector product. OpenBLAS's sgemm
     * takes several times longer than its sgemv here. */
    const bool tb = p->flags & VKF_MM_TRANS_B;
    cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, tb ? (int)p->N : (int)p->K,
                tb ? (int)p->K : (int)p->N, p->alpha, B, (int)p->ldb, Ar, ta ? (int)p->lda : 1,
                beta, C + (size_t)r0 * p->ldc, 1);
  } else
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                (p->flags & VKF_MM_TRANS_B) ? CblasTrans : CblasNoTrans, (int)(r1 - r0), (int)p->N,
                (int)p->K, p->alpha, Ar, (int)p->lda, B, (int)p->ldb, beta, C + (size_t)r0 * p->ldc,
                (int)p->ldc);
#else
  gemm_rows(p, C, A, B, r0, r1, beta);
#endif
  if (j->bias && !bias_first)
    add_bias_rows(C + (size_t)r0 * p->ldc, j->bias, r1 - r0, p->N, p->ldc, false);
}

static void batch_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const mm_job *j = arg;
  for (uint32_t bi = begin; bi < end; bi++)
    gemm_one(j, bi, 0, j->p->M);
}

#ifndef VKF_HAVE_CBLAS
typedef struct {
  const mm_job *j;
  uint32_t bi;
} row_job;

static void row_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const row_job *r = arg;
  gemm_one(r->j, r->bi, begin, end);
}
#endif

void vkf_cpu_matmul_f32(vkf_pool *pool, const vkf_matmul_params *p, float *c, const float *a,
                        const float *b, const float *bias) {
  mm_job j = {p, c, a, b, bias};
  uint64_t flops = 2ull * p->M * p->N * p->K;
  if (p->batch > 1 && (flops < SMALL_FLOPS || p->batch >= 4 * vkf_pool_threads(pool))) {
    /* many small products: one per task */
    vkf_pool_run(pool, p->batch, 1, batch_task, &j);
    return;
  }
  for (uint32_t bi = 0; bi < p->batch; bi++) {
#ifdef VKF_HAVE_CBLAS
    /* OpenBLAS splits one large product over its own threads. */
    gemm_one(&j, bi, 0, p->M);
#else
    row_job r = {&j, bi};
    uint32_t grain = (uint32_t)(SMALL_FLOPS / (2ull * p->N * p->K + 1)) + 1;
    vkf_pool_run(pool, p->M, grain, row_task, &r);
#endif
  }
}

vkf_status vkf_cpu_matmul(vkf_cpu *cpu, const vkf_op *op) {
  vkf_cpu_matmul_f32(cpu->pool, &op->p.matmul, vkf_cpu_f32(op, 0), vkf_cpu_f32(op, 1),
                     vkf_cpu_f32(op, 2),
                     (op->p.matmul.flags & VKF_MM_BIAS) ? vkf_cpu_f32(op, 3) : NULL);
  return VKF_OK;
}
