/* matmul on the CPU: CBLAS sgemm (OpenBLAS) when the build found it, a
 * blocked portable kernel otherwise. */
#include "cpu.h"

#include <string.h>

#ifdef VKF_HAVE_CBLAS
#include <cblas.h>
#endif

/* Per-matrix work under which one thread per matrix beats splitting one. */
#define SMALL_FLOPS (1u << 21)

/* c rows [r0, r1), columns [j0, j1) = beta * c + bias before the product is
 * added (beta 0: c is not read, so garbage or NaN in it does not matter). */
static void init_c(float *C, uint32_t ldc, uint32_t r0, uint32_t r1, uint32_t j0, uint32_t j1,
                   float beta, const float *bias) {
  for (uint32_t i = r0; i < r1; i++) {
    float *c = C + (size_t)i * ldc;
    if (beta == 0.0f) {
      if (bias)
        memcpy(c + j0, bias + j0, (j1 - j0) * sizeof(float));
      else
        memset(c + j0, 0, (j1 - j0) * sizeof(float));
    } else {
      for (uint32_t j = j0; j < j1; j++)
        c[j] = beta * c[j] + (bias ? bias[j] : 0.0f);
    }
  }
}

#ifndef VKF_HAVE_CBLAS
/* ---- portable kernel ----
 * c is cut into MB x NB tiles, one pool task each (results do not depend on
 * the thread count). A task walks k in KC blocks: it packs op(b)'s KC x NB
 * block and op(a)'s MB x KC block into contiguous buffers on its stack
 * (40 KiB), then runs an MR x NR register-blocked kernel over them. The
 * kernel is plain C the compiler vectorises (SSE2 on baseline x86-64); 4 x 8
 * measured best (4 x 16, 8 x 8 spill registers and run 5x slower). */
enum { MR = 4, NR = 8, MB = 32, NB = 128, KC = 64 };
_Static_assert(MB % MR == 0 && NB % NR == 0, "tiles are whole register blocks");

typedef struct mm_tiles {
  const vkf_matmul_params *p;
  float *c;
  const float *a, *b, *bias;
  uint32_t tiles_m, tiles_n; /* tiles per matrix along M and N */
} mm_tiles;

/* acc[MR][NR] = sum over k of ap[k][r] * bp[k][j] (bp rows ldbp apart). */
static void kernel(uint32_t kc, const float *ap, const float *bp, uint32_t ldbp,
                   float acc[MR][NR]) {
  float c[MR][NR] = {{0}};
  for (uint32_t k = 0; k < kc; k++) {
    const float *b = bp + (size_t)k * ldbp;
    for (uint32_t r = 0; r < MR; r++) {
      const float a = ap[k * MR + r];
      for (uint32_t j = 0; j < NR; j++)
        c[r][j] += a * b[j];
    }
  }
  memcpy(acc, c, sizeof(c));
}

static void tile_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const mm_tiles *t = arg;
  const vkf_matmul_params *p = t->p;
  const bool ta = p->flags & VKF_MM_TRANS_A, tb = p->flags & VKF_MM_TRANS_B;
  const uint32_t per = t->tiles_m * t->tiles_n;
  float bp[KC * NB]; /* op(b) block, [k][j], NB columns (zero padded) */
  float ap[MB * KC]; /* op(a) block, [row group][k][MR] (zero padded) */
  for (uint32_t tile = begin; tile < end; tile++) {
    uint32_t bi = tile / per, tm = tile % per / t->tiles_n, tn = tile % t->tiles_n;
    const float *A = t->a + (size_t)bi * p->stride_a;
    const float *B = t->b + (size_t)bi * p->stride_b;
    float *C = t->c + (size_t)bi * p->stride_c;
    uint32_t i0 = tm * MB, i1 = i0 + MB < p->M ? i0 + MB : p->M;
    uint32_t j0 = tn * NB, j1 = j0 + NB < p->N ? j0 + NB : p->N;
    uint32_t mb = i1 - i0, nb = j1 - j0, nbp = (nb + NR - 1) / NR * NR;
    init_c(C, p->ldc, i0, i1, j0, j1, (p->flags & VKF_MM_BETA) ? p->beta : 0.0f, t->bias);
    for (uint32_t k0 = 0; k0 < p->K; k0 += KC) {
      uint32_t kc = p->K - k0 < KC ? p->K - k0 : KC;
      for (uint32_t k = 0; k < kc; k++) {
        float *row = bp + (size_t)k * nbp;
        if (tb)
          for (uint32_t j = 0; j < nb; j++)
            row[j] = B[(size_t)(j0 + j) * p->ldb + k0 + k];
        else
          memcpy(row, B + (size_t)(k0 + k) * p->ldb + j0, nb * sizeof(float));
        for (uint32_t j = nb; j < nbp; j++)
          row[j] = 0.0f;
      }
      for (uint32_t g = 0; g * MR < mb; g++)
        for (uint32_t k = 0; k < kc; k++)
          for (uint32_t r = 0; r < MR; r++) {
            uint32_t i = i0 + g * MR + r;
            float v = 0.0f;
            if (i < i1)
              v = ta ? A[(size_t)(k0 + k) * p->lda + i] : A[(size_t)i * p->lda + k0 + k];
            ap[(g * KC + k) * MR + r] = p->alpha * v;
          }
      for (uint32_t g = 0; g * MR < mb; g++) {
        uint32_t mr = mb - g * MR < MR ? mb - g * MR : MR;
        for (uint32_t jj = 0; jj < nb; jj += NR) {
          uint32_t nr = nb - jj < NR ? nb - jj : NR;
          float acc[MR][NR];
          kernel(kc, ap + (size_t)g * KC * MR, bp + jj, nbp, acc);
          for (uint32_t r = 0; r < mr; r++) {
            float *c = C + (size_t)(i0 + g * MR + r) * p->ldc + j0 + jj;
            for (uint32_t j = 0; j < nr; j++)
              c[j] += acc[r][j];
          }
        }
      }
    }
  }
}

void vkf_cpu_matmul_f32(vkf_pool *pool, const vkf_matmul_params *p, float *c, const float *a,
                        const float *b, const float *bias) {
  mm_tiles t = {p, c, a, b, bias, (p->M + MB - 1) / MB, (p->N + NB - 1) / NB};
  vkf_pool_run(pool, p->batch * t.tiles_m * t.tiles_n, 1, tile_task, &t);
}

#else
/* ---- OpenBLAS ----
 * OpenBLAS parallelises a large product over its own threads, which after
 * each call spin (sched_yield in a loop, about 0.1 s: 2^28 cycles) waiting
 * for more work. Measured with bench_gemm --mix (Linux 6.18, 2 cores): the
 * pool's elementwise ops right after a matmul take as long as 0.2 s after
 * one, when the spinning has stopped (0.55 ms each), so the scheduler hands
 * the core to the pool's woken thread and the spinning costs nothing
 * measurable there. How many threads OpenBLAS uses is the application's
 * setting (OPENBLAS_NUM_THREADS, openblas_set_num_threads), never changed
 * here; when it is 1 the pool splits large products itself, each part a
 * single-threaded sgemm, so an application that wants no spinning threads
 * (more cores than threads, other busy libraries) still gets every core. */
typedef struct mm_job {
  const vkf_matmul_params *p;
  float *c;
  const float *a, *b, *bias;
  uint32_t bi;     /* split_task: the batch index */
  bool split_rows; /* split_task: parts are rows (else columns) */
} mm_job;

enum { SPLIT_UNIT = 16, SPLIT_MIN = 128 }; /* rows or columns */

/* c[r0:r1, j0:j1] of one product (batch index bi) on the calling thread. */
static void gemm_part(const mm_job *j, uint32_t bi, uint32_t r0, uint32_t r1, uint32_t j0,
                      uint32_t j1) {
  const vkf_matmul_params *p = j->p;
  const bool ta = p->flags & VKF_MM_TRANS_A, tb = p->flags & VKF_MM_TRANS_B;
  const float *A = j->a + (size_t)bi * p->stride_a + (ta ? r0 : (size_t)r0 * p->lda);
  const float *B = j->b + (size_t)bi * p->stride_b + (tb ? (size_t)j0 * p->ldb : j0);
  float *C = j->c + (size_t)bi * p->stride_c;
  float beta = (p->flags & VKF_MM_BETA) ? p->beta : 0.0f;
  if (j->bias) { /* c = beta * c + bias, then c += alpha * a.b */
    init_c(C, p->ldc, r0, r1, j0, j1, beta, j->bias);
    beta = 1.0f;
  }
  if (r1 - r0 == 1) {
    /* One row (decoding a token): a matrix-vector product. OpenBLAS's sgemm
     * takes several times longer than its sgemv here. */
    cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, tb ? (int)(j1 - j0) : (int)p->K,
                tb ? (int)p->K : (int)(j1 - j0), p->alpha, B, (int)p->ldb, A, ta ? (int)p->lda : 1,
                beta, C + (size_t)r0 * p->ldc + j0, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (int)(r1 - r0), (int)(j1 - j0), (int)p->K, p->alpha, A, (int)p->lda, B, (int)p->ldb,
              beta, C + (size_t)r0 * p->ldc + j0, (int)p->ldc);
}

static void batch_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const mm_job *j = arg;
  for (uint32_t bi = begin; bi < end; bi++)
    gemm_part(j, bi, 0, j->p->M, 0, j->p->N);
}

static void split_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const mm_job *j = arg;
  uint32_t lim = j->split_rows ? j->p->M : j->p->N;
  uint32_t x0 = begin * SPLIT_UNIT, x1 = end * SPLIT_UNIT < lim ? end * SPLIT_UNIT : lim;
  if (j->split_rows)
    gemm_part(j, j->bi, x0, x1, 0, j->p->N);
  else
    gemm_part(j, j->bi, 0, j->p->M, x0, x1);
}

/* OpenBLAS (0.3.x) runs a product single-threaded when M*N*K is at most
 * 65536 * GEMM_MULTITHREAD_THRESHOLD (4 by default). */
#define BLAS_SERIAL_MNK 262144u

void vkf_cpu_matmul_f32(vkf_pool *pool, const vkf_matmul_params *p, float *c, const float *a,
                        const float *b, const float *bias) {
  mm_job j = {p, c, a, b, bias, 0, true};
  const uint32_t threads = vkf_pool_threads(pool);
  const uint64_t mnk = (uint64_t)p->M * p->N * p->K;
  if (openblas_get_num_threads() > 1) {
    /* Products OpenBLAS runs on one thread go to the pool, one per task.
     * Larger ones go to OpenBLAS one after the other: run side by side they
     * fight over OpenBLAS's threads (measured 0.6-0.9x of sequential calls
     * for 48 x 128x64x128 and 12 x 1024x64x1024). */
    if (p->batch > 1 && mnk <= BLAS_SERIAL_MNK)
      vkf_pool_run(pool, p->batch, 1, batch_task, &j);
    else
      for (uint32_t bi = 0; bi < p->batch; bi++)
        gemm_part(&j, bi, 0, p->M, 0, p->N);
    return;
  }
  /* single-threaded OpenBLAS: the pool parallelises */
  if (p->batch >= threads || (p->batch > 1 && 2 * mnk < SMALL_FLOPS)) {
    vkf_pool_run(pool, p->batch, 1, batch_task, &j);
    return;
  }
  if (threads == 1 || 2 * mnk < SMALL_FLOPS) {
    for (uint32_t bi = 0; bi < p->batch; bi++)
      gemm_part(&j, bi, 0, p->M, 0, p->N);
    return;
  }
  /* large products, fewer than threads: parts of at least SPLIT_MIN rows (or
   * columns, when there are more of them) per task, one or more per thread */
  j.split_rows = p->M >= p->N;
  uint32_t units = ((j.split_rows ? p->M : p->N) + SPLIT_UNIT - 1) / SPLIT_UNIT;
  uint32_t grain = SPLIT_MIN / SPLIT_UNIT, per_thread = (units + threads - 1) / threads;
  if (grain > per_thread)
    grain = per_thread;
  for (j.bi = 0; j.bi < p->batch; j.bi++)
    vkf_pool_run(pool, units, grain, split_task, &j);
}
#endif

vkf_status vkf_cpu_matmul(vkf_cpu *cpu, const vkf_op *op) {
  vkf_cpu_gemm_path path = vkf_cpu_gemm_pick();
  if (path == VKF_CPU_GEMM_AVX2 || path == VKF_CPU_GEMM_AVX512)
    return vkf_cpu_gemm(cpu, path, &op->p.matmul, vkf_cpu_f32(op, 0), vkf_cpu_f32(op, 1),
                        vkf_cpu_f32(op, 2),
                        (op->p.matmul.flags & VKF_MM_BIAS) ? vkf_cpu_f32(op, 3) : NULL);
  vkf_cpu_matmul_f32(cpu->pool, &op->p.matmul, vkf_cpu_f32(op, 0), vkf_cpu_f32(op, 1),
                     vkf_cpu_f32(op, 2),
                     (op->p.matmul.flags & VKF_MM_BIAS) ? vkf_cpu_f32(op, 3) : NULL);
  return VKF_OK;
}
