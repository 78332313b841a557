/* Attention on the CPU (standard variant: scores materialised).
 *
 * Each op is a few phases: matrix products over fixed blocks of rows (RB
 * query rows of one (batch, head)) or of keys (dk/dv: CB keys of one (batch,
 * kv head), the group's query heads summed in order), and row passes
 * (softmax, dS) over single rows. Each output element is computed by one task
 * in one fixed order, so results do not depend on the thread count. The
 * products are CBLAS sgemm calls when VKF_HAVE_CBLAS is defined (issued from
 * the calling thread: OpenBLAS threads them), portable loops over the pool
 * otherwise. A block's products touch only the keys some row of the block can
 * see (causal, window, kv_lens, mask width).
 *
 * Operands (see frontend/attention.c):
 *   attention_forward:      0 out, 1 P, 2 q, 3 k, 4 v, 5 mask?, 6 kv_lens?, 7 logits?
 *   attention_backward_ds:  0 dS, 1 g? (softcap scratch), 2 dout, 3 q, 4 k, 5 v, 6 P, 7 kv_lens?
 *   attention_backward_dq:  0 dq, 1 dS, 2 k, 3 kv_lens?
 *   attention_backward_dkv: 0 dk, 1 dv, 2 dS, 3 P, 4 q, 5 dout, 6 kv_lens? */
#include "attention_common.h"
#include "cpu.h"
#include "vecmath.h"

#include <math.h>
#include <string.h>

#ifdef VKF_HAVE_CBLAS
#include <cblas.h>
#endif

enum { RB = 32, CB = 32 }; /* rows / keys per task */

/* The portable loops below also run one-row products (decoding) with BLAS:
 * AVX-512 and AVX2+FMA clones on x86-64 with GCC, picked at run time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define ATTN_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define ATTN_CLONES
#endif

/* ------------------------------------------------------------------------ */
/* Small products on raw pointers (row-major, leading dimensions in floats)  */
/* ------------------------------------------------------------------------ */

/* C[M, N] = alpha * A[M, K] . B[N, K]^T */
ATTN_CLONES static void gemm_nt(uint32_t M, uint32_t N, uint32_t K, float alpha, const float *A,
                                size_t lda, const float *B, size_t ldb, float *C, size_t ldc) {
  if (!M || !N)
    return;
#ifdef VKF_HAVE_CBLAS
  /* one query row (decoding) runs the loops below: OpenBLAS's sgemm is
   * several times slower there, and its threads' wake-ups cost more than
   * such a product */
  if (K && M > 1) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, alpha, A, (int)lda,
                B, (int)ldb, 0.0f, C, (int)ldc);
    return;
  }
#endif
  for (uint32_t i = 0; i < M; i++) {
    const float *a = A + i * lda;
    float *c = C + i * ldc;
    for (uint32_t j = 0; j < N; j++) {
      const float *b = B + j * ldb;
      float acc[8] = {0};
      uint32_t k = 0;
      for (; k + 8 <= K; k += 8)
        for (uint32_t u = 0; u < 8; u++)
          acc[u] += a[k + u] * b[k + u];
      for (; k < K; k++)
        acc[k & 7] += a[k] * b[k];
      c[j] = alpha *
             (((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])));
    }
  }
}

/* C[M, N] (+)= A[M, K] . B[K, N] */
ATTN_CLONES static void gemm_nn(uint32_t M, uint32_t N, uint32_t K, const float *A, size_t lda,
                                const float *B, size_t ldb, float *C, size_t ldc, bool accumulate) {
  if (!M || !N)
    return;
#ifdef VKF_HAVE_CBLAS
  if (K && M > 1) { /* one row: the loops below (see gemm_nt) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A,
                (int)lda, B, (int)ldb, accumulate ? 1.0f : 0.0f, C, (int)ldc);
    return;
  }
#endif
  for (uint32_t i = 0; i < M; i++) {
    float *c = C + i * ldc;
    if (!accumulate)
      memset(c, 0, N * sizeof(float));
    const float *a = A + i * lda;
    for (uint32_t k = 0; k < K; k++) {
      const float aik = a[k], *b = B + k * ldb;
      for (uint32_t j = 0; j < N; j++)
        c[j] += aik * b[j];
    }
  }
}

/* C[M, N] += A[K, M]^T . B[K, N] */
static void gemm_tn_acc(uint32_t M, uint32_t N, uint32_t K, const float *A, size_t lda,
                        const float *B, size_t ldb, float *C, size_t ldc) {
  if (!M || !N || !K)
    return;
#ifdef VKF_HAVE_CBLAS
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B,
              (int)ldb, 1.0f, C, (int)ldc);
#else
  for (uint32_t i = 0; i < M; i++) {
    float *c = C + i * ldc;
    for (uint32_t k = 0; k < K; k++) {
      const float aki = A[k * lda + i], *b = B + k * ldb;
      for (uint32_t j = 0; j < N; j++)
        c[j] += aki * b[j];
    }
  }
#endif
}

/* ------------------------------------------------------------------------ */
/* Jobs (geometry helpers: attention_common.h)                              */
/* ------------------------------------------------------------------------ */
typedef struct attn_job {
  const vkf_attention_params *p;
  uint32_t G;                   /* query heads per kv head */
  vkf_attn_view qv, ov, kv, vv; /* q/dq (D), out/dout (Dv), k/dk (D), v/dv (Dv) */
  const int32_t *kv_lens;       /* NULL: none */
  const vkf_op *op;
} attn_job;

static attn_job job_of(const vkf_op *op, uint32_t kvl_operand) {
  const vkf_attention_params *p = &op->p.attention;
  const bool qb = p->flags & VKF_ATTN_Q_BHTD, kb = p->flags & VKF_ATTN_KV_BHTD;
  attn_job j = {.p = p, .G = p->Hq / p->Hkv, .op = op};
  j.qv = vkf_attn_view_of(qb, p->Tq, p->Hq, p->D);
  j.ov = vkf_attn_view_of(qb, p->Tq, p->Hq, p->Dv);
  j.kv = vkf_attn_view_of(kb, p->Tk, p->Hkv, p->D);
  j.vv = vkf_attn_view_of(kb, p->Tk, p->Hkv, p->Dv);
  j.kv_lens = (p->flags & VKF_ATTN_KV_LENS) ? (const int32_t *)vkf_cpu_f32(op, kvl_operand) : NULL;
  return j;
}

static vkf_attn_batch batch_of(const attn_job *j, uint32_t b) {
  return vkf_attn_batch_of(j->p, j->kv_lens, b);
}

static uint32_t grain_of(const vkf_attention_params *p, uint32_t rows) {
  uint64_t work = (uint64_t)rows * p->Tk * (p->D + p->Dv + 8);
  return (uint32_t)((1u << 16) / (work + 1)) + 1;
}

/* Runs fn over [0, items) blocks of products. OpenBLAS threads each product
 * itself, and several pool threads calling it at once make its threads fight
 * over the cores (tens of times slower), so with CBLAS the products are
 * issued from the calling thread; the portable loops go to the pool. */
static void run_products(vkf_cpu *cpu, uint32_t items, uint32_t grain, vkf_pool_fn fn, void *arg) {
#ifdef VKF_HAVE_CBLAS
  (void)cpu;
  (void)grain;
  fn(arg, 0, items, 0);
#else
  vkf_pool_run(cpu->pool, items, grain, fn, arg);
#endif
}

/* A block of rows: item -> (bh, i0, i1) and the batch's key limit. */
typedef struct row_block {
  uint32_t bh, b, h, hk, i0, i1;
  int64_t c0, c1; /* keys [c0, c1) some row of the block sees */
} row_block;

static row_block row_block_of(const attn_job *J, uint32_t item) {
  const vkf_attention_params *p = J->p;
  const uint32_t nrb = (p->Tq + RB - 1) / RB;
  row_block r;
  r.bh = item / nrb;
  r.i0 = (item % nrb) * RB;
  r.i1 = r.i0 + RB < p->Tq ? r.i0 + RB : p->Tq;
  r.b = r.bh / p->Hq;
  r.h = r.bh % p->Hq;
  r.hk = r.h / J->G;
  vkf_attn_keys_of_rows(p, batch_of(J, r.b), r.i0, r.i1 - 1, &r.c0, &r.c1);
  return r;
}

static uint32_t row_blocks(const vkf_attention_params *p) {
  return p->B * p->Hq * ((p->Tq + RB - 1) / RB);
}

/* ------------------------------------------------------------------------ */
/* Forward                                                                  */
/* ------------------------------------------------------------------------ */

/* scores of each block's visible columns, straight into P */
static void scores_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const attn_job *J = arg;
  const vkf_attention_params *p = J->p;
  const vkf_op *op = J->op;
  float *P = vkf_cpu_f32(op, 1);
  const float *q = vkf_cpu_f32(op, 2), *k = vkf_cpu_f32(op, 3);
  for (uint32_t item = begin; item < end; item++) {
    const row_block r = row_block_of(J, item);
    const float *Q = q + r.b * J->qv.bs + r.h * J->qv.hs + r.i0 * J->qv.ts;
    const float *K = k + r.b * J->kv.bs + r.hk * J->kv.hs + r.c0 * J->kv.ts;
    gemm_nt(r.i1 - r.i0, (uint32_t)(r.c1 - r.c0), p->D, p->scale, Q, J->qv.ts, K, J->kv.ts,
            P + ((size_t)r.bh * p->Tq + r.i0) * p->Tk + r.c0, p->Tk);
  }
}

/* Row helpers, vectorised (clones); partial maxima and sums in VKF_LANES
 * lanes combined in a fixed order. */
/* maximum of x[0..n) (-inf when n is 0); a NaN with the sign bit clear wins */
VKF_VEC_CLONES static float row_max(const float *x, int64_t n) {
  int32_t part[VKF_LANES];
  for (int l = 0; l < VKF_LANES; l++)
    part[l] = vkf_f2ord(-INFINITY);
  int64_t j = 0;
  for (; j + VKF_LANES <= n; j += VKF_LANES)
    for (int l = 0; l < VKF_LANES; l++) {
      int32_t v = vkf_f2ord(x[j + l]);
      part[l] = v > part[l] ? v : part[l];
    }
  int32_t m = vkf_f2ord(-INFINITY);
  for (; j < n; j++) {
    int32_t v = vkf_f2ord(x[j]);
    m = v > m ? v : m;
  }
  for (int l = 0; l < VKF_LANES; l++)
    m = part[l] > m ? part[l] : m;
  return vkf_ord2f(m);
}

/* x[j] = exp(x[j] - mx); returns the sum of the results, in double */
VKF_VEC_CLONES static double row_exp_sum(float *x, int64_t n, float mx) {
  double part[VKF_LANES];
  for (int l = 0; l < VKF_LANES; l++)
    part[l] = 0.0;
  int64_t j = 0;
  for (; j + VKF_LANES <= n; j += VKF_LANES)
    for (int l = 0; l < VKF_LANES; l++) {
      float e = vkf_exp_f(x[j + l] - mx);
      x[j + l] = e;
      part[l] += e;
    }
  double s = 0.0;
  for (; j < n; j++) {
    float e = vkf_exp_f(x[j] - mx);
    x[j] = e;
    s += e;
  }
  for (int l = 0; l < VKF_LANES; l++)
    s += part[l];
  return s;
}

VKF_VEC_CLONES static void row_scale(float *x, int64_t n, float a) {
  for (int64_t j = 0; j < n; j++)
    x[j] *= a;
}

/* sum of p[j] * d[j] in double */
VKF_VEC_CLONES static double row_dot(const float *p, const float *d, int64_t n) {
  double part[VKF_LANES];
  for (int l = 0; l < VKF_LANES; l++)
    part[l] = 0.0;
  int64_t j = 0;
  for (; j + VKF_LANES <= n; j += VKF_LANES)
    for (int l = 0; l < VKF_LANES; l++)
      part[l] += (double)p[j + l] * d[j + l];
  double s = 0.0;
  for (; j < n; j++)
    s += (double)p[j] * d[j];
  for (int l = 0; l < VKF_LANES; l++)
    s += part[l];
  return s;
}

/* d[j] = (p[j] * (d[j] - delta)) * g, the product in double rounded once */
VKF_VEC_CLONES static void row_ds(float *d, const float *p, int64_t n, double delta, float g) {
  for (int64_t j = 0; j < n; j++)
    d[j] = (float)((double)p[j] * ((double)d[j] - delta)) * g;
}

/* per row: softcap, mask, logits, softmax; P = 0 outside the visible keys */
static void softmax_row(const attn_job *J, uint32_t rowi) {
  const vkf_attention_params *p = J->p;
  const vkf_op *op = J->op;
  const uint32_t Tq = p->Tq, Tk = p->Tk, Hq = p->Hq;
  const bool softcap = p->flags & VKF_ATTN_SOFTCAP;
  float *P = vkf_cpu_f32(op, 1), *logits = vkf_cpu_f32(op, 7);
  const float *mask = (p->flags & VKF_ATTN_MASK) ? vkf_cpu_f32(op, 5) : NULL;
  const uint32_t i = rowi % Tq, bh = rowi / Tq, b = bh / Hq, h = bh % Hq;
  float *row = P + (size_t)rowi * Tk;
  int64_t lo, hi;
  vkf_attn_keys_of_rows(p, batch_of(J, b), i, i, &lo, &hi);
  const float *mrow = mask ? mask + b * p->mask_sb + h * p->mask_sh + i * p->mask_si : NULL;
  if (softcap || mrow) {
    for (int64_t j = lo; j < hi; j++) {
      float x = row[j];
      if (softcap)
        x = p->softcap * tanhf(x / p->softcap);
      if (mrow)
        x += mrow[j];
      row[j] = x;
    }
  }
  const float mx = row_max(row + lo, hi - lo);
  if (logits) {
    float *lrow = logits + (size_t)rowi * Tk;
    for (int64_t j = 0; j < Tk; j++)
      lrow[j] = j >= lo && j < hi ? row[j] : -INFINITY;
  }
  if (mx == -INFINITY) { /* no visible key: P = 0 */
    memset(row, 0, Tk * sizeof(float));
    return;
  }
  const double sum = row_exp_sum(row + lo, hi - lo, mx);
  row_scale(row + lo, hi - lo, (float)(1.0 / sum));
  memset(row, 0, (size_t)lo * sizeof(float));
  memset(row + hi, 0, (size_t)(Tk - hi) * sizeof(float));
}

static void softmax_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  for (uint32_t rowi = begin; rowi < end; rowi++)
    softmax_row(arg, rowi);
}

/* out = P . v over each block's visible columns */
static void out_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const attn_job *J = arg;
  const vkf_attention_params *p = J->p;
  const vkf_op *op = J->op;
  float *out = vkf_cpu_f32(op, 0);
  const float *P = vkf_cpu_f32(op, 1), *v = vkf_cpu_f32(op, 4);
  for (uint32_t item = begin; item < end; item++) {
    const row_block r = row_block_of(J, item);
    const float *V = v + r.b * J->vv.bs + r.hk * J->vv.hs + r.c0 * J->vv.ts;
    gemm_nn(r.i1 - r.i0, p->Dv, (uint32_t)(r.c1 - r.c0),
            P + ((size_t)r.bh * p->Tq + r.i0) * p->Tk + r.c0, p->Tk, V, J->vv.ts,
            out + r.b * J->ov.bs + r.h * J->ov.hs + r.i0 * J->ov.ts, J->ov.ts, false);
  }
}

static vkf_status pk_forward(vkf_cpu *cpu, const vkf_op *op, vkf_cpu_gemm_path path);
static vkf_status pk_ds(vkf_cpu *cpu, const vkf_op *op, vkf_cpu_gemm_path path);
static vkf_status pk_dq(vkf_cpu *cpu, const vkf_op *op, vkf_cpu_gemm_path path);
static vkf_status pk_dkv(vkf_cpu *cpu, const vkf_op *op, vkf_cpu_gemm_path path);
static bool packed_ok(vkf_cpu_gemm_path path, const vkf_attention_params *p);

vkf_status vkf_cpu_attention_forward(vkf_cpu *cpu, const vkf_op *op) {
  vkf_cpu_gemm_path path = vkf_cpu_gemm_pick();
  if (packed_ok(path, &op->p.attention))
    return pk_forward(cpu, op, path);
  attn_job J = job_of(op, 6);
  const vkf_attention_params *p = J.p;
  const uint32_t blocks = row_blocks(p), grain = grain_of(p, RB);
  run_products(cpu, blocks, grain, scores_task, &J);
  vkf_pool_run(cpu->pool, p->B * p->Hq * p->Tq, 1 + 4096 / (p->Tk + 1), softmax_task, &J);
  run_products(cpu, blocks, grain, out_task, &J);
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* Backward                                                                 */
/* ------------------------------------------------------------------------ */

/* dP = dout . v^T (and with softcap x = scale * q . k into the g plane) */
static void dp_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const attn_job *J = arg;
  const vkf_attention_params *p = J->p;
  const vkf_op *op = J->op;
  float *dS = vkf_cpu_f32(op, 0), *X = vkf_cpu_f32(op, 1);
  const float *dout = vkf_cpu_f32(op, 2), *q = vkf_cpu_f32(op, 3), *k = vkf_cpu_f32(op, 4);
  const float *v = vkf_cpu_f32(op, 5);
  for (uint32_t item = begin; item < end; item++) {
    const row_block r = row_block_of(J, item);
    const size_t off = ((size_t)r.bh * p->Tq + r.i0) * p->Tk + r.c0;
    const uint32_t nc = (uint32_t)(r.c1 - r.c0);
    gemm_nt(r.i1 - r.i0, nc, p->Dv, 1.0f, dout + r.b * J->ov.bs + r.h * J->ov.hs + r.i0 * J->ov.ts,
            J->ov.ts, v + r.b * J->vv.bs + r.hk * J->vv.hs + r.c0 * J->vv.ts, J->vv.ts, dS + off,
            p->Tk);
    if (p->flags & VKF_ATTN_SOFTCAP) /* the scaled scores again, to differentiate the softcap */
      gemm_nt(r.i1 - r.i0, nc, p->D, p->scale,
              q + r.b * J->qv.bs + r.h * J->qv.hs + r.i0 * J->qv.ts, J->qv.ts,
              k + r.b * J->kv.bs + r.hk * J->kv.hs + r.c0 * J->kv.ts, J->kv.ts, X + off, p->Tk);
  }
}

/* per row: dS = P * (dP - rowsum(dP * P)) * d(x after softcap)/d(q.k); 0 where
 * not visible */
static void ds_row(const attn_job *J, uint32_t rowi) {
  const vkf_attention_params *p = J->p;
  const vkf_op *op = J->op;
  const uint32_t Tq = p->Tq, Tk = p->Tk;
  float *dS = vkf_cpu_f32(op, 0);
  const float *X = (p->flags & VKF_ATTN_SOFTCAP) ? vkf_cpu_f32(op, 1) : NULL;
  const float *P = vkf_cpu_f32(op, 6);
  const uint32_t i = rowi % Tq, b = rowi / Tq / p->Hq;
  float *d = dS + (size_t)rowi * Tk;
  const float *pr = P + (size_t)rowi * Tk, *xr = X ? X + (size_t)rowi * Tk : NULL;
  int64_t lo, hi;
  vkf_attn_keys_of_rows(p, batch_of(J, b), i, i, &lo, &hi);
  const double delta = row_dot(pr + lo, d + lo, hi - lo);
  if (!xr) {
    row_ds(d + lo, pr + lo, hi - lo, delta, p->scale);
  } else {
    for (int64_t j = lo; j < hi; j++) {
      float t = tanhf(xr[j] / p->softcap);
      float g = p->scale * (1.0f - t * t);
      d[j] = (float)((double)pr[j] * (d[j] - delta)) * g;
    }
  }
  memset(d, 0, (size_t)lo * sizeof(float));
  memset(d + hi, 0, (size_t)(Tk - hi) * sizeof(float));
}

static void ds_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  for (uint32_t rowi = begin; rowi < end; rowi++)
    ds_row(arg, rowi);
}

vkf_status vkf_cpu_attention_backward_ds(vkf_cpu *cpu, const vkf_op *op) {
  vkf_cpu_gemm_path path = vkf_cpu_gemm_pick();
  if (packed_ok(path, &op->p.attention))
    return pk_ds(cpu, op, path);
  attn_job J = job_of(op, 7);
  const vkf_attention_params *p = J.p;
  run_products(cpu, row_blocks(p), grain_of(p, RB), dp_task, &J);
  vkf_pool_run(cpu->pool, p->B * p->Hq * p->Tq, 1 + 4096 / (p->Tk + 1), ds_task, &J);
  return VKF_OK;
}

/* dq += dS . k */
static void dq_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const attn_job *J = arg;
  const vkf_attention_params *p = J->p;
  const vkf_op *op = J->op;
  float *dq = vkf_cpu_f32(op, 0);
  const float *dS = vkf_cpu_f32(op, 1), *k = vkf_cpu_f32(op, 2);
  for (uint32_t item = begin; item < end; item++) {
    const row_block r = row_block_of(J, item);
    if (r.c1 <= r.c0)
      continue;
    gemm_nn(r.i1 - r.i0, p->D, (uint32_t)(r.c1 - r.c0),
            dS + ((size_t)r.bh * p->Tq + r.i0) * p->Tk + r.c0, p->Tk,
            k + r.b * J->kv.bs + r.hk * J->kv.hs + r.c0 * J->kv.ts, J->kv.ts,
            dq + r.b * J->qv.bs + r.h * J->qv.hs + r.i0 * J->qv.ts, J->qv.ts, true);
  }
}

vkf_status vkf_cpu_attention_backward_dq(vkf_cpu *cpu, const vkf_op *op) {
  vkf_cpu_gemm_path path = vkf_cpu_gemm_pick();
  if (packed_ok(path, &op->p.attention))
    return pk_dq(cpu, op, path);
  attn_job J = job_of(op, 3);
  const vkf_attention_params *p = J.p;
  run_products(cpu, row_blocks(p), grain_of(p, RB), dq_task, &J);
  return VKF_OK;
}

/* dk += sum over the group's query heads of dS^T . q; dv likewise P^T . dout */
static void dkv_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const attn_job *J = arg;
  const vkf_attention_params *p = J->p;
  const vkf_op *op = J->op;
  const uint32_t Tq = p->Tq, Tk = p->Tk, Hkv = p->Hkv, ncb = (Tk + CB - 1) / CB;
  float *dk = vkf_cpu_f32(op, 0), *dv = vkf_cpu_f32(op, 1);
  const float *dS = vkf_cpu_f32(op, 2), *P = vkf_cpu_f32(op, 3), *q = vkf_cpu_f32(op, 4);
  const float *dout = vkf_cpu_f32(op, 5);
  for (uint32_t item = begin; item < end; item++) {
    const uint32_t bk = item / ncb, j0 = (item % ncb) * CB;
    const uint32_t b = bk / Hkv, hk = bk % Hkv;
    const vkf_attn_batch bi = batch_of(J, b);
    if (j0 >= bi.limit)
      continue;
    const uint32_t j1 = (int64_t)(j0 + CB) < bi.limit ? j0 + CB : (uint32_t)bi.limit;
    int64_t r0, r1;
    vkf_attn_rows_of_keys(p, bi, j0, j1 - 1, &r0, &r1);
    if (r1 <= r0)
      continue;
    float *dK = dk + b * J->kv.bs + hk * J->kv.hs + j0 * J->kv.ts;
    float *dV = dv + b * J->vv.bs + hk * J->vv.hs + j0 * J->vv.ts;
    for (uint32_t r = 0; r < J->G; r++) {
      const uint32_t h = hk * J->G + r;
      const size_t off = ((size_t)(b * p->Hq + h) * Tq + r0) * Tk + j0;
      gemm_tn_acc(j1 - j0, p->D, (uint32_t)(r1 - r0), dS + off, Tk,
                  q + b * J->qv.bs + h * J->qv.hs + r0 * J->qv.ts, J->qv.ts, dK, J->kv.ts);
      gemm_tn_acc(j1 - j0, p->Dv, (uint32_t)(r1 - r0), P + off, Tk,
                  dout + b * J->ov.bs + h * J->ov.hs + r0 * J->ov.ts, J->ov.ts, dV, J->vv.ts);
    }
  }
}

vkf_status vkf_cpu_attention_backward_dkv(vkf_cpu *cpu, const vkf_op *op) {
  vkf_cpu_gemm_path path = vkf_cpu_gemm_pick();
  if (packed_ok(path, &op->p.attention))
    return pk_dkv(cpu, op, path);
  attn_job J = job_of(op, 6);
  const vkf_attention_params *p = J.p;
  uint32_t items = p->B * p->Hkv * ((p->Tk + CB - 1) / CB);
  run_products(cpu, items, grain_of(p, CB), dkv_task, &J);
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* Packed path: the products with gemm.c's register kernels, on the pool    */
/* ------------------------------------------------------------------------ */
/* When the packed GEMM runs on this CPU (and there are enough query rows to
 * pay for packing), each op first packs the operands its products share,
 * once per (batch, kv head) or (batch, query head), in one pool run; then
 * one task per block of PRB query rows (PCB keys for dk/dv) does the block's
 * products and its row passes. Every output element is written by one task
 * in a fixed order, so results do not depend on the thread count. */
enum { PRB = 36, PCB = 36, PACKED_MIN_TQ = 8 };

typedef struct pk_job {
  attn_job J;
  vkf_cpu_gemm_path path;
  uint32_t nr;
  float *pa, *pb;      /* packed operands, one slot per unit */
  size_t per_a, per_b; /* floats per slot (0: not used) */
  uint32_t nrb;        /* row blocks per (batch, query head) */
} pk_job;

static size_t padded(uint32_t n, uint32_t nr) {
  return (size_t)(n + nr - 1) / nr * nr;
}

static bool packed_ok(vkf_cpu_gemm_path path, const vkf_attention_params *p) {
  return vkf_cpu_gemm_nr(path) && p->Tq >= PACKED_MIN_TQ;
}

static vkf_status pk_init(vkf_cpu *cpu, const vkf_op *op, uint32_t kvl_operand,
                          vkf_cpu_gemm_path path, size_t units, size_t per_a, size_t per_b,
                          pk_job *K) {
  memset(K, 0, sizeof(*K));
  K->J = job_of(op, kvl_operand);
  K->path = path;
  K->nr = vkf_cpu_gemm_nr(path);
  K->per_a = per_a;
  K->per_b = per_b;
  K->nrb = (K->J.p->Tq + PRB - 1) / PRB;
  float *s = vkf_cpu_scratch(cpu, units * (per_a + per_b) * sizeof(float) + 64);
  if (!s)
    return vkf_fail(cpu->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY,
                    "%s: %zu floats for packed operands", vkf_op_name(op->kind),
                    units * (per_a + per_b));
  K->pa = s;
  K->pb = s + units * per_a;
  return VKF_OK;
}

/* Row block item -> geometry (PRB rows of one (batch, query head)). */
static row_block pk_row_block(const pk_job *K, uint32_t item) {
  const attn_job *J = &K->J;
  const vkf_attention_params *p = J->p;
  row_block r;
  r.bh = item / K->nrb;
  r.i0 = (item % K->nrb) * PRB;
  r.i1 = r.i0 + PRB < p->Tq ? r.i0 + PRB : p->Tq;
  r.b = r.bh / p->Hq;
  r.h = r.bh % p->Hq;
  r.hk = r.h / J->G;
  vkf_attn_keys_of_rows(p, batch_of(J, r.b), r.i0, r.i1 - 1, &r.c0, &r.c1);
  return r;
}

/* ---- forward: a = k^T per (batch, kv head) [D x Tk], b = v [Tk x Dv] ---- */
static void pk_fwd_pack(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const pk_job *K = arg;
  const attn_job *J = &K->J;
  const vkf_attention_params *p = J->p;
  const float *k = vkf_cpu_f32(J->op, 3), *v = vkf_cpu_f32(J->op, 4);
  for (uint32_t bk = begin; bk < end; bk++) {
    const uint32_t b = bk / p->Hkv, hk = bk % p->Hkv;
    vkf_cpu_gemm_pack(K->path, p->D, p->Tk, k + b * J->kv.bs + hk * J->kv.hs, J->kv.ts, true,
                      K->pa + bk * K->per_a);
    vkf_cpu_gemm_pack(K->path, p->Tk, p->Dv, v + b * J->vv.bs + hk * J->vv.hs, J->vv.ts, false,
                      K->pb + bk * K->per_b);
  }
}

static void pk_fwd_rows(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const pk_job *K = arg;
  const attn_job *J = &K->J;
  const vkf_attention_params *p = J->p;
  const vkf_op *op = J->op;
  float *out = vkf_cpu_f32(op, 0), *P = vkf_cpu_f32(op, 1);
  const float *q = vkf_cpu_f32(op, 2);
  const uint32_t nr = K->nr;
  for (uint32_t item = begin; item < end; item++) {
    const row_block r = pk_row_block(K, item);
    const uint32_t bk = r.b * p->Hkv + r.hk, m = r.i1 - r.i0;
    float *Pb = P + ((size_t)r.bh * p->Tq + r.i0) * p->Tk;
    float *O = out + r.b * J->ov.bs + r.h * J->ov.hs + r.i0 * J->ov.ts;
    if (r.c1 > r.c0) {
      /* scores of the panels holding keys [c0, c1) (the rows' passes clear
       * the columns a row does not see) */
      const uint32_t j0 = (uint32_t)r.c0 / nr * nr;
      vkf_cpu_gemm_apply(K->path, m, (uint32_t)r.c1 - j0, p->D, p->scale,
                         q + r.b * J->qv.bs + r.h * J->qv.hs + r.i0 * J->qv.ts, J->qv.ts, 1,
                         K->pa + bk * K->per_a + (size_t)j0 * p->D, p->D, Pb + j0, p->Tk, false);
    }
    for (uint32_t i = 0; i < m; i++)
      softmax_row(J, r.bh * p->Tq + r.i0 + i);
    /* out = P[:, c0:c1] . v[c0:c1] (K = 0: zeros) */
    vkf_cpu_gemm_apply(K->path, m, p->Dv, r.c1 > r.c0 ? (uint32_t)(r.c1 - r.c0) : 0, 1.0f,
                       Pb + r.c0, p->Tk, 1, K->pb + bk * K->per_b + (size_t)r.c0 * nr, p->Tk, O,
                       J->ov.ts, false);
  }
}

static vkf_status pk_forward(vkf_cpu *cpu, const vkf_op *op, vkf_cpu_gemm_path path) {
  const vkf_attention_params *p = &op->p.attention;
  const uint32_t nr = vkf_cpu_gemm_nr(path), units = p->B * p->Hkv;
  pk_job K;
  vkf_status st =
      pk_init(cpu, op, 6, path, units, padded(p->Tk, nr) * p->D, padded(p->Dv, nr) * p->Tk, &K);
  if (st != VKF_OK)
    return st;
  vkf_pool_run(cpu->pool, units, 1, pk_fwd_pack, &K);
  vkf_pool_run(cpu->pool, p->B * p->Hq * K.nrb, 1, pk_fwd_rows, &K);
  return VKF_OK;
}

/* ---- dS: a = v^T [Dv x Tk], b = k^T [D x Tk] (softcap only) ---- */
static void pk_ds_pack(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const pk_job *K = arg;
  const attn_job *J = &K->J;
  const vkf_attention_params *p = J->p;
  const float *k = vkf_cpu_f32(J->op, 4), *v = vkf_cpu_f32(J->op, 5);
  for (uint32_t bk = begin; bk < end; bk++) {
    const uint32_t b = bk / p->Hkv, hk = bk % p->Hkv;
    vkf_cpu_gemm_pack(K->path, p->Dv, p->Tk, v + b * J->vv.bs + hk * J->vv.hs, J->vv.ts, true,
                      K->pa + bk * K->per_a);
    if (K->per_b)
      vkf_cpu_gemm_pack(K->path, p->D, p->Tk, k + b * J->kv.bs + hk * J->kv.hs, J->kv.ts, true,
                        K->pb + bk * K->per_b);
  }
}

static void pk_ds_rows(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const pk_job *K = arg;
  const attn_job *J = &K->J;
  const vkf_attention_params *p = J->p;
  const vkf_op *op = J->op;
  float *dS = vkf_cpu_f32(op, 0), *X = vkf_cpu_f32(op, 1);
  const float *dout = vkf_cpu_f32(op, 2), *q = vkf_cpu_f32(op, 3);
  const uint32_t nr = K->nr;
  for (uint32_t item = begin; item < end; item++) {
    const row_block r = pk_row_block(K, item);
    const uint32_t bk = r.b * p->Hkv + r.hk, m = r.i1 - r.i0;
    const size_t off = ((size_t)r.bh * p->Tq + r.i0) * p->Tk;
    if (r.c1 > r.c0) {
      const uint32_t j0 = (uint32_t)r.c0 / nr * nr;
      /* dP = dout . v^T */
      vkf_cpu_gemm_apply(K->path, m, (uint32_t)r.c1 - j0, p->Dv, 1.0f,
                         dout + r.b * J->ov.bs + r.h * J->ov.hs + r.i0 * J->ov.ts, J->ov.ts, 1,
                         K->pa + bk * K->per_a + (size_t)j0 * p->Dv, p->Dv, dS + off + j0, p->Tk,
                         false);
      if (K->per_b) /* the scaled scores again, to differentiate the softcap */
        vkf_cpu_gemm_apply(K->path, m, (uint32_t)r.c1 - j0, p->D, p->scale,
                           q + r.b * J->qv.bs + r.h * J->qv.hs + r.i0 * J->qv.ts, J->qv.ts, 1,
                           K->pb + bk * K->per_b + (size_t)j0 * p->D, p->D, X + off + j0, p->Tk,
                           false);
    }
    for (uint32_t i = 0; i < m; i++)
      ds_row(J, r.bh * p->Tq + r.i0 + i);
  }
}

static vkf_status pk_ds(vkf_cpu *cpu, const vkf_op *op, vkf_cpu_gemm_path path) {
  const vkf_attention_params *p = &op->p.attention;
  const uint32_t nr = vkf_cpu_gemm_nr(path), units = p->B * p->Hkv;
  pk_job K;
  vkf_status st = pk_init(cpu, op, 7, path, units, padded(p->Tk, nr) * p->Dv,
                          (p->flags & VKF_ATTN_SOFTCAP) ? padded(p->Tk, nr) * p->D : 0, &K);
  if (st != VKF_OK)
    return st;
  vkf_pool_run(cpu->pool, units, 1, pk_ds_pack, &K);
  vkf_pool_run(cpu->pool, p->B * p->Hq * K.nrb, 1, pk_ds_rows, &K);
  return VKF_OK;
}

/* ---- dq += dS . k: a = k [Tk x D] ---- */
static void pk_dq_pack(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const pk_job *K = arg;
  const attn_job *J = &K->J;
  const vkf_attention_params *p = J->p;
  const float *k = vkf_cpu_f32(J->op, 2);
  for (uint32_t bk = begin; bk < end; bk++) {
    const uint32_t b = bk / p->Hkv, hk = bk % p->Hkv;
    vkf_cpu_gemm_pack(K->path, p->Tk, p->D, k + b * J->kv.bs + hk * J->kv.hs, J->kv.ts, false,
                      K->pa + bk * K->per_a);
  }
}

static void pk_dq_rows(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const pk_job *K = arg;
  const attn_job *J = &K->J;
  const vkf_attention_params *p = J->p;
  float *dq = vkf_cpu_f32(J->op, 0);
  const float *dS = vkf_cpu_f32(J->op, 1);
  for (uint32_t item = begin; item < end; item++) {
    const row_block r = pk_row_block(K, item);
    if (r.c1 <= r.c0)
      continue;
    const uint32_t bk = r.b * p->Hkv + r.hk;
    vkf_cpu_gemm_apply(K->path, r.i1 - r.i0, p->D, (uint32_t)(r.c1 - r.c0), 1.0f,
                       dS + ((size_t)r.bh * p->Tq + r.i0) * p->Tk + r.c0, p->Tk, 1,
                       K->pa + bk * K->per_a + (size_t)r.c0 * K->nr, p->Tk,
                       dq + r.b * J->qv.bs + r.h * J->qv.hs + r.i0 * J->qv.ts, J->qv.ts, true);
  }
}

static vkf_status pk_dq(vkf_cpu *cpu, const vkf_op *op, vkf_cpu_gemm_path path) {
  const vkf_attention_params *p = &op->p.attention;
  const uint32_t nr = vkf_cpu_gemm_nr(path), units = p->B * p->Hkv;
  pk_job K;
  vkf_status st = pk_init(cpu, op, 3, path, units, padded(p->D, nr) * p->Tk, 0, &K);
  if (st != VKF_OK)
    return st;
  vkf_pool_run(cpu->pool, units, 1, pk_dq_pack, &K);
  vkf_pool_run(cpu->pool, p->B * p->Hq * K.nrb, 1, pk_dq_rows, &K);
  return VKF_OK;
}

/* ---- dk += dS^T . q, dv += P^T . dout: a = q [Tq x D], b = dout [Tq x Dv]
 * per (batch, query head) ---- */
static void pk_dkv_pack(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const pk_job *K = arg;
  const attn_job *J = &K->J;
  const vkf_attention_params *p = J->p;
  const float *q = vkf_cpu_f32(J->op, 4), *dout = vkf_cpu_f32(J->op, 5);
  for (uint32_t bh = begin; bh < end; bh++) {
    const uint32_t b = bh / p->Hq, h = bh % p->Hq;
    vkf_cpu_gemm_pack(K->path, p->Tq, p->D, q + b * J->qv.bs + h * J->qv.hs, J->qv.ts, false,
                      K->pa + bh * K->per_a);
    vkf_cpu_gemm_pack(K->path, p->Tq, p->Dv, dout + b * J->ov.bs + h * J->ov.hs, J->ov.ts, false,
                      K->pb + bh * K->per_b);
  }
}

static void pk_dkv_keys(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const pk_job *K = arg;
  const attn_job *J = &K->J;
  const vkf_attention_params *p = J->p;
  const vkf_op *op = J->op;
  const uint32_t Tq = p->Tq, Tk = p->Tk, Hkv = p->Hkv, ncb = (Tk + PCB - 1) / PCB, nr = K->nr;
  float *dk = vkf_cpu_f32(op, 0), *dv = vkf_cpu_f32(op, 1);
  const float *dS = vkf_cpu_f32(op, 2), *P = vkf_cpu_f32(op, 3);
  for (uint32_t item = begin; item < end; item++) {
    const uint32_t bk = item / ncb, j0 = (item % ncb) * PCB;
    const uint32_t b = bk / Hkv, hk = bk % Hkv;
    const vkf_attn_batch bi = batch_of(J, b);
    if (j0 >= bi.limit)
      continue;
    const uint32_t j1 = (int64_t)(j0 + PCB) < bi.limit ? j0 + PCB : (uint32_t)bi.limit;
    int64_t r0, r1;
    vkf_attn_rows_of_keys(p, bi, j0, j1 - 1, &r0, &r1);
    if (r1 <= r0)
      continue;
    float *dK = dk + b * J->kv.bs + hk * J->kv.hs + j0 * J->kv.ts;
    float *dV = dv + b * J->vv.bs + hk * J->vv.hs + j0 * J->vv.ts;
    for (uint32_t g = 0; g < J->G; g++) {
      const uint32_t bh = b * p->Hq + hk * J->G + g;
      const size_t off = ((size_t)bh * Tq + r0) * Tk + j0;
      /* op(a)(key, query) = dS[query][key]: six keys side by side per query */
      vkf_cpu_gemm_apply(K->path, j1 - j0, p->D, (uint32_t)(r1 - r0), 1.0f, dS + off, 1, Tk,
                         K->pa + bh * K->per_a + (size_t)r0 * nr, Tq, dK, J->kv.ts, true);
      vkf_cpu_gemm_apply(K->path, j1 - j0, p->Dv, (uint32_t)(r1 - r0), 1.0f, P + off, 1, Tk,
                         K->pb + bh * K->per_b + (size_t)r0 * nr, Tq, dV, J->vv.ts, true);
    }
  }
}

static vkf_status pk_dkv(vkf_cpu *cpu, const vkf_op *op, vkf_cpu_gemm_path path) {
  const vkf_attention_params *p = &op->p.attention;
  const uint32_t nr = vkf_cpu_gemm_nr(path), units = p->B * p->Hq;
  pk_job K;
  vkf_status st =
      pk_init(cpu, op, 6, path, units, padded(p->D, nr) * p->Tq, padded(p->Dv, nr) * p->Tq, &K);
  if (st != VKF_OK)
    return st;
  vkf_pool_run(cpu->pool, units, 1, pk_dkv_pack, &K);
  vkf_pool_run(cpu->pool, p->B * p->Hkv * ((p->Tk + PCB - 1) / PCB), 1, pk_dkv_keys, &K);
  return VKF_OK;
}
