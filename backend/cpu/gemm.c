/* The CPU backend's own matmul: a packed GEMM with AVX-512 and AVX2+FMA
 * register kernels picked at run time (gemm_isa.h), parallel on the
 * backend's pool.
 *
 * c[M, N] = alpha * op(a) . op(b) (+ beta * c) (+ bias), row-major.
 *
 * op(b) is packed once per product into panels of NR columns ([k][NR]
 * floats, zero-padded past N) in the backend's scratch; op(a) is read in
 * place (rows of 6 at a time: six row offsets and a k stride cover both
 * layouts). K is cut into blocks of KC: for each block, the register kernel
 * sums A(r, k) * B(k, j) over the block in k order into a 6 x NR block of
 * accumulators started from 0, and the block is then added to c (the first
 * block also applies beta and the bias). So every element of c is computed
 * by the same operations in the same order whatever the tiles, the tasks or
 * the thread count: results depend only on the shape and the instruction
 * set's FMA (both kernels fuse; they give the same bits).
 *
 * Work items of one product: first the B panels (packing), then the tiles of
 * c (rows x panels). The pool hands out items in increasing order, so a tile
 * waits at most for panels another running thread is packing (a per-panel
 * ready flag, then sched_yield).
 *
 * VKF_CPU_GEMM ("avx512", "avx2", "blas", "portable") forces a path, for
 * testing; an unsupported kernel choice falls back to the best supported. */
#include "cpu.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define GEMM_X86 1
#include <immintrin.h>
#endif

enum {
  GEMM_MR = 6,   /* rows per register block */
  GEMM_KC = 256, /* k per block */
};

typedef struct gemm_isa {
  uint32_t nr; /* columns per register block (and per B panel) */
  void (*kern)(uint32_t kc, const float *a, size_t a_sk, const size_t *off, const float *bp,
               size_t b_sk, float *tile);
  void (*update)(float *c, size_t ldc, const float *tile, uint32_t mr, uint32_t nr, bool first,
                 float alpha, bool beta_on, float beta, const float *bias);
} gemm_isa;

#ifdef GEMM_X86
#define GK_NAME(x) gk_avx2_##x
#define GK_TARGET __attribute__((target("avx2,fma")))
#define GK_VW 8
#define GK_NV 2
#define GK_V __m256
#define GK_LOAD(p) _mm256_loadu_ps(p)
#define GK_STORE(p, v) _mm256_storeu_ps(p, v)
#define GK_SET1(x) _mm256_set1_ps(x)
#define GK_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define GK_ZERO() _mm256_setzero_ps()
#define GK_ADD(a, b) _mm256_add_ps(a, b)
#define GK_MUL(a, b) _mm256_mul_ps(a, b)
#define GK_MASK8(n)                                                                                \
  _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define GK_LOADN(p, n) _mm256_maskload_ps(p, GK_MASK8(n))
#define GK_STOREN(p, n, v) _mm256_maskstore_ps(p, GK_MASK8(n), v)
#include "gemm_isa.h"
#undef GK_MASK8

#define GK_NAME(x) gk_avx512_##x
#define GK_TARGET __attribute__((target("avx512f")))
#define GK_VW 16
#define GK_NV 4
#define GK_V __m512
#define GK_LOAD(p) _mm512_loadu_ps(p)
#define GK_STORE(p, v) _mm512_storeu_ps(p, v)
#define GK_SET1(x) _mm512_set1_ps(x)
#define GK_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define GK_ZERO() _mm512_setzero_ps()
#define GK_ADD(a, b) _mm512_add_ps(a, b)
#define GK_MUL(a, b) _mm512_mul_ps(a, b)
#define GK_LOADN(p, n) _mm512_maskz_loadu_ps((__mmask16)((1u << (n)) - 1u), p)
#define GK_STOREN(p, n, v) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (n)) - 1u), v)
#include "gemm_isa.h"
#endif

vkf_cpu_gemm_path vkf_cpu_gemm_pick(void) {
  const char *want = getenv("VKF_CPU_GEMM");
  vkf_cpu_gemm_path fallback = VKF_CPU_GEMM_PORTABLE;
#ifdef VKF_HAVE_CBLAS
  fallback = VKF_CPU_GEMM_BLAS;
#endif
  if (want && strcmp(want, "portable") == 0)
    return VKF_CPU_GEMM_PORTABLE;
  if (want && strcmp(want, "blas") == 0)
    return fallback;
#ifdef GEMM_X86
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  bool avx512 = __builtin_cpu_supports("avx512f");
  if (want && strcmp(want, "avx2") == 0 && avx2)
    return VKF_CPU_GEMM_AVX2;
  if (want && strcmp(want, "avx512") == 0 && avx512)
    return VKF_CPU_GEMM_AVX512;
  /* The best this CPU has (also for a forced kernel it lacks). AVX-512: ours
   * (OpenBLAS 0.3.21 runs its AVX2 kernels on AVX-512 parts it does not
   * know, at half the FMA width). AVX2 only: OpenBLAS's own when the build
   * has it. */
  if (avx512)
    return VKF_CPU_GEMM_AVX512;
  if (fallback == VKF_CPU_GEMM_PORTABLE && avx2)
    return VKF_CPU_GEMM_AVX2;
#endif
  return fallback;
}

static const gemm_isa *isa_of(vkf_cpu_gemm_path path) {
#ifdef GEMM_X86
  if (path == VKF_CPU_GEMM_AVX512)
    return &gk_avx512_isa;
  if (path == VKF_CPU_GEMM_AVX2)
    return &gk_avx2_isa;
#endif
  (void)path;
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Packing                                                                  */
/* ------------------------------------------------------------------------ */
#ifdef GEMM_X86
/* dst[k * ldd + j] = src[j * lds + k] for j, k < 8. AVX only: pack_panel
 * runs for the packed paths alone, on CPUs with AVX2 or AVX-512. */
__attribute__((target("avx"))) static void transpose8(const float *src, size_t lds, float *dst,
                                                      size_t ldd) {
  __m256 r[8], t[8], u[8];
  for (int j = 0; j < 8; j++)
    r[j] = _mm256_loadu_ps(src + j * lds);
  /* t: rows 2i, 2i+1 interleaved (columns 0,1,4,5 in even t, 2,3,6,7 in odd) */
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  /* u[4h + c]: column c (and c + 4 in the upper lane) of rows 4h..4h+3 */
  for (int h = 0; h < 2; h++) {
    __m256 a = t[4 * h], b = t[4 * h + 1], c = t[4 * h + 2], d = t[4 * h + 3];
    u[4 * h + 0] = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 1] = _mm256_shuffle_ps(a, c, _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * h + 2] = _mm256_shuffle_ps(b, d, _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 3] = _mm256_shuffle_ps(b, d, _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int c = 0; c < 4; c++) {
    _mm256_storeu_ps(dst + c * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x20));
    _mm256_storeu_ps(dst + (c + 4) * ldd, _mm256_permute2f128_ps(u[c], u[4 + c], 0x31));
  }
}
#endif

/* Panel of op(b) columns [j0, j0 + NR) over k < K: dst[k * NR + j], with
 * op(b)(k, j) = b[k * ldb + j], or b[j * ldb + k] when trans. */
static void pack_panel(uint32_t K, uint32_t N, const float *B, size_t ldb, bool trans,
                       uint32_t nr_isa, uint32_t j0, float *dst) {
  const uint32_t nr = N - j0 < nr_isa ? N - j0 : nr_isa;
  if (!trans) {
    for (uint32_t k = 0; k < K; k++) {
      float *d = dst + (size_t)k * nr_isa;
      memcpy(d, B + (size_t)k * ldb + j0, nr * sizeof(float));
      for (uint32_t j = nr; j < nr_isa; j++)
        d[j] = 0.0f;
    }
    return;
  }
  /* a transpose: 8 x 8 blocks (the 8 k of 64 source rows and the 8
   * destination rows stay in L1), the edges element by element */
  uint32_t k8 = 0, j8 = 0;
#ifdef GEMM_X86
  k8 = K / 8 * 8;
  j8 = nr / 8 * 8;
  for (uint32_t k0 = 0; k0 < k8; k0 += 8)
    for (uint32_t j = 0; j < j8; j += 8)
      transpose8(B + (size_t)(j0 + j) * ldb + k0, ldb, dst + (size_t)k0 * nr_isa + j, nr_isa);
#endif
  for (uint32_t j = j8; j < nr; j++) {
    const float *s = B + (size_t)(j0 + j) * ldb;
    for (uint32_t k = 0; k < k8; k++)
      dst[(size_t)k * nr_isa + j] = s[k];
  }
  for (uint32_t k = k8; k < K; k++)
    for (uint32_t j = 0; j < nr; j++)
      dst[(size_t)k * nr_isa + j] = B[(size_t)(j0 + j) * ldb + k];
  for (uint32_t k = 0; k < K; k++)
    for (uint32_t j = nr; j < nr_isa; j++)
      dst[(size_t)k * nr_isa + j] = 0.0f;
}

/* ------------------------------------------------------------------------ */
/* Blocks                                                                   */
/* ------------------------------------------------------------------------ */
/* One product seen by the kernels: op(a)(i, k) = a[i * a_si + k * a_sk];
 * op(b) either packed (panels bp_k * NR floats apart), or read in place
 * (bd, rows ldb apart: b not transposed) with only a partial last panel
 * packed (edge: K x NR). */
typedef struct gemm_prod {
  const gemm_isa *isa;
  uint32_t M, N, K;
  float alpha, beta;
  bool beta_on;
  float *c;
  size_t ldc;
  const float *a, *bias;
  size_t a_si, a_sk;
  const float *bp;
  size_t bp_k;
  const float *bd, *edge;
  size_t ldb;
} gemm_prod;

/* c rows [i0, i1), panels [p0, p1), every K block. */
static void compute_block(const gemm_prod *g, uint32_t i0, uint32_t i1, uint32_t p0, uint32_t p1) {
  const uint32_t NR = g->isa->nr, K = g->K;
  _Alignas(64) float tile[GEMM_MR * 64];
  size_t off[GEMM_MR];
  for (uint32_t k0 = 0; k0 < K; k0 += GEMM_KC) {
    const uint32_t kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
    for (uint32_t i = i0; i < i1; i += GEMM_MR) {
      const uint32_t mr = i1 - i < GEMM_MR ? i1 - i : GEMM_MR;
      for (uint32_t r = 0; r < GEMM_MR; r++)
        off[r] = (size_t)(r < mr ? r : mr - 1) * g->a_si;
      const float *a = g->a + (size_t)i * g->a_si + (size_t)k0 * g->a_sk;
      for (uint32_t q = p0; q < p1; q++) {
        const uint32_t j = q * NR, nr = g->N - j < NR ? g->N - j : NR;
        const float *bq;
        size_t b_sk = NR;
        if (!g->bd) {
          bq = g->bp + (size_t)q * g->bp_k * NR + (size_t)k0 * NR;
        } else if (nr == NR) {
          bq = g->bd + j + (size_t)k0 * g->ldb;
          b_sk = g->ldb;
        } else {
          bq = g->edge + (size_t)k0 * NR;
        }
        g->isa->kern(kc, a, g->a_sk, off, bq, b_sk, tile);
        g->isa->update(g->c + (size_t)i * g->ldc + j, g->ldc, tile, mr, nr, k0 == 0, g->alpha,
                       g->beta_on, g->beta, g->bias ? g->bias + j : NULL);
      }
    }
  }
}

/* Product bi of a matmul op, with its b packed at bp. */
static gemm_prod prod_of(const gemm_isa *isa, const vkf_matmul_params *p, uint32_t bi, float *c,
                         const float *a, const float *bias, const float *bp) {
  const bool ta = p->flags & VKF_MM_TRANS_A;
  gemm_prod g = {.isa = isa,
                 .M = p->M,
                 .N = p->N,
                 .K = p->K,
                 .alpha = p->alpha,
                 .beta = p->beta,
                 .beta_on = (p->flags & VKF_MM_BETA) && p->beta != 0.0f,
                 .c = c + (size_t)bi * p->stride_c,
                 .ldc = p->ldc,
                 .a = a + (size_t)bi * p->stride_a,
                 .bias = bias,
                 .a_si = ta ? 1 : p->lda,
                 .a_sk = ta ? p->lda : 1,
                 .bp = bp,
                 .bp_k = p->K};
  return g;
}

static void pack_op_b(const gemm_isa *isa, const vkf_matmul_params *p, const float *b, uint32_t q,
                      float *bp) {
  pack_panel(p->K, p->N, b, p->ldb, p->flags & VKF_MM_TRANS_B, isa->nr, q * isa->nr,
             bp + (size_t)q * p->K * isa->nr);
}

/* ------------------------------------------------------------------------ */
/* Single-threaded pieces for other ops                                     */
/* ------------------------------------------------------------------------ */
uint32_t vkf_cpu_gemm_nr(vkf_cpu_gemm_path path) {
  const gemm_isa *isa = isa_of(path);
  return isa ? isa->nr : 0;
}

void vkf_cpu_gemm_pack(vkf_cpu_gemm_path path, uint32_t K, uint32_t N, const float *b, size_t ldb,
                       bool trans, float *bp) {
  const gemm_isa *isa = isa_of(path);
  for (uint32_t j0 = 0; j0 < N; j0 += isa->nr)
    pack_panel(K, N, b, ldb, trans, isa->nr, j0, bp + (size_t)j0 * K);
}

void vkf_cpu_gemm_apply(vkf_cpu_gemm_path path, uint32_t M, uint32_t N, uint32_t K, float alpha,
                        const float *a, size_t a_si, size_t a_sk, const float *bp, size_t bp_k,
                        float *c, size_t ldc, bool accumulate) {
  const gemm_isa *isa = isa_of(path);
  if (!M || !N)
    return;
  gemm_prod g = {.isa = isa,
                 .M = M,
                 .N = N,
                 .K = K,
                 .alpha = alpha,
                 .beta = 1.0f,
                 .beta_on = accumulate,
                 .c = c,
                 .ldc = ldc,
                 .a = a,
                 .a_si = a_si,
                 .a_sk = a_sk,
                 .bp = bp,
                 .bp_k = bp_k};
  if (K == 0) {
    if (!accumulate)
      for (uint32_t i = 0; i < M; i++)
        memset(c + (size_t)i * ldc, 0, N * sizeof(float));
    return;
  }
  compute_block(&g, 0, M, 0, (N + isa->nr - 1) / isa->nr);
}

void *vkf_cpu_scratch(vkf_cpu *cpu, size_t bytes) {
  if (bytes <= cpu->scratch_bytes)
    return cpu->scratch;
  free(cpu->scratch);
  cpu->scratch = NULL;
  cpu->scratch_bytes = 0;
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes) != 0)
    return NULL;
  cpu->scratch = p;
  cpu->scratch_bytes = bytes;
  return p;
}

/* ------------------------------------------------------------------------ */
/* One product over the pool: panel items, then tile items                 */
/* ------------------------------------------------------------------------ */
typedef struct gemm_job {
  gemm_prod g;
  const vkf_matmul_params *p;
  const float *b; /* this product's b */
  float *bp;
  atomic_uint *ready;
  uint32_t n_pack;                     /* panel items first: n_panels, or 0 (none to pack) */
  uint32_t n_panels, tiles_n, mc, ncp; /* tile: mc rows x ncp panels */
} gemm_job;

static void job_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  gemm_job *j = arg;
  const vkf_matmul_params *p = j->p;
  for (uint32_t item = begin; item < end; item++) {
    if (item < j->n_pack) {
      pack_op_b(j->g.isa, p, j->b, item, j->bp);
      atomic_store_explicit(&j->ready[item], 1u, memory_order_release);
      continue;
    }
    const uint32_t t = item - j->n_pack, tm = t / j->tiles_n, tn = t % j->tiles_n;
    const uint32_t i0 = tm * j->mc, i1 = i0 + j->mc < p->M ? i0 + j->mc : p->M;
    const uint32_t p0 = tn * j->ncp, p1 = p0 + j->ncp < j->n_panels ? p0 + j->ncp : j->n_panels;
    if (j->n_pack)
      for (uint32_t q = p0; q < p1; q++)
        while (!atomic_load_explicit(&j->ready[q], memory_order_acquire))
          sched_yield();
    compute_block(&j->g, i0, i1, p0, p1);
  }
}

/* b not transposed is read in place, but for a partial last panel (packed
 * at edge); a transposed b is packed whole. */
static bool b_direct(const vkf_matmul_params *p) {
  return !(p->flags & VKF_MM_TRANS_B);
}

/* Floats of packed b one product needs. */
static size_t packed_floats(const gemm_isa *isa, const vkf_matmul_params *p) {
  const uint32_t NR = isa->nr;
  if (b_direct(p))
    return p->N % NR ? (size_t)p->K * NR : 0;
  return (size_t)(p->N + NR - 1) / NR * p->K * NR;
}

/* Points g at product bi's b: in place (packing the partial panel into
 * buf), or at buf for the panels packed there. */
static void set_b(gemm_prod *g, const vkf_matmul_params *p, const float *b, float *buf) {
  if (b_direct(p)) {
    const uint32_t NR = g->isa->nr, q = p->N / NR;
    g->bd = b;
    g->ldb = p->ldb;
    g->edge = buf;
    if (p->N % NR)
      pack_panel(p->K, p->N, b, p->ldb, false, NR, q * NR, buf);
  } else {
    g->bp = buf;
  }
}

/* Many small products: one per item, each packing what it needs of its b
 * into the worker's own scratch. */
typedef struct gemm_batch_job {
  const gemm_isa *isa;
  const vkf_matmul_params *p;
  float *c;
  const float *a, *b, *bias;
  float *scratch; /* per worker: per_worker floats */
  size_t per_worker;
  uint32_t n_panels;
} gemm_batch_job;

static void batch_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  const gemm_batch_job *j = arg;
  const vkf_matmul_params *p = j->p;
  float *buf = j->scratch + (size_t)worker * j->per_worker;
  for (uint32_t bi = begin; bi < end; bi++) {
    const float *b = j->b + (size_t)bi * p->stride_b;
    gemm_prod g = prod_of(j->isa, p, bi, j->c, j->a, j->bias, NULL);
    set_b(&g, p, b, buf);
    if (!b_direct(p))
      for (uint32_t q = 0; q < j->n_panels; q++)
        pack_op_b(j->isa, p, b, q, buf);
    compute_block(&g, 0, p->M, 0, j->n_panels);
  }
}

/* Product work below which one thread per product (batched) beats splitting. */
#define SMALL_FLOPS (1u << 21)
/* Per-worker packed b of a batched product at most this many floats. */
#define BATCH_PACK_MAX (1u << 20)

vkf_status vkf_cpu_gemm(vkf_cpu *cpu, vkf_cpu_gemm_path path, const vkf_matmul_params *p, float *c,
                        const float *a, const float *b, const float *bias) {
  const gemm_isa *isa = isa_of(path);
  if (!isa)
    return vkf_fail(cpu->base.env, VKF_ERROR_UNSUPPORTED, "matmul: no packed kernel for path %d",
                    (int)path);
  if (!p->M || !p->N || !p->batch)
    return VKF_OK;
  const uint32_t NR = isa->nr, threads = vkf_pool_threads(cpu->pool);
  const uint32_t n_panels = (p->N + NR - 1) / NR;
  const size_t pf = packed_floats(isa, p);
  const uint64_t flops = 2ull * p->M * p->N * p->K;
  if (p->K == 0) { /* c = beta * c + bias: one update per tile of zeros */
    gemm_prod g = prod_of(isa, p, 0, c, a, bias, NULL);
    _Alignas(64) float zero[GEMM_MR * 64] = {0};
    for (uint32_t bi = 0; bi < p->batch; bi++) {
      g.c = c + (size_t)bi * p->stride_c;
      for (uint32_t i = 0; i < p->M; i += GEMM_MR)
        for (uint32_t j = 0; j < p->N; j += NR)
          isa->update(g.c + (size_t)i * p->ldc + j, p->ldc, zero,
                      p->M - i < GEMM_MR ? p->M - i : GEMM_MR, p->N - j < NR ? p->N - j : NR, true,
                      p->alpha, g.beta_on, p->beta, bias ? bias + j : NULL);
    }
    return VKF_OK;
  }
  if (p->batch > 1 && (flops < SMALL_FLOPS || p->batch >= 4 * threads) && pf <= BATCH_PACK_MAX) {
    const size_t per = pf ? pf : 16;
    float *s = vkf_cpu_scratch(cpu, (size_t)threads * per * sizeof(float));
    if (!s)
      return vkf_fail(cpu->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY,
                      "matmul: %u x %zu floats of packing scratch", threads, pf);
    gemm_batch_job j = {isa, p, c, a, b, bias, s, per, n_panels};
    vkf_pool_run(cpu->pool, p->batch, 1, batch_task, &j);
    return VKF_OK;
  }
  /* scratch: the packed panels, then their ready flags */
  const size_t flags_off = (pf * sizeof(float) + 63) / 64 * 64;
  char *s = vkf_cpu_scratch(cpu, flags_off + (size_t)n_panels * sizeof(atomic_uint));
  if (!s)
    return vkf_fail(cpu->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY,
                    "matmul: %zu floats of packing scratch", pf);
  gemm_job j = {.p = p, .bp = (float *)(void *)s, .ready = (atomic_uint *)(void *)(s + flags_off)};
  j.n_panels = n_panels;
  /* Tiles: at most 512 columns (the k block of b they use stays in L2), and
   * enough of them for about four per thread when the product is large
   * enough (at least ~1 MFLOP each). */
  j.ncp = 512 / NR < n_panels ? 512 / NR : n_panels;
  j.tiles_n = (n_panels + j.ncp - 1) / j.ncp;
  uint64_t want = flops >> 20;
  if (want > 4ull * threads)
    want = 4ull * threads;
  if (want < 1)
    want = 1;
  uint32_t tiles_m = (uint32_t)((want + j.tiles_n - 1) / j.tiles_n);
  uint32_t mc = (p->M + tiles_m - 1) / tiles_m;
  mc = (mc + GEMM_MR - 1) / GEMM_MR * GEMM_MR;
  j.mc = mc;
  tiles_m = (p->M + mc - 1) / mc;
  for (uint32_t bi = 0; bi < p->batch; bi++) {
    j.g = prod_of(isa, p, bi, c, a, bias, NULL);
    j.b = b + (size_t)bi * p->stride_b;
    /* b in place (its partial panel packed here), or packed by the first
     * items; a shared b (stride 0) once */
    j.n_pack = 0;
    if (b_direct(p)) {
      if (bi == 0 || p->stride_b != 0)
        set_b(&j.g, p, j.b, j.bp);
      else
        j.g.bd = j.b, j.g.ldb = p->ldb, j.g.edge = j.bp;
    } else {
      j.g.bp = j.bp;
      if (bi == 0 || p->stride_b != 0) {
        j.n_pack = n_panels;
        for (uint32_t q = 0; q < n_panels; q++)
          atomic_store_explicit(&j.ready[q], 0u, memory_order_relaxed);
      }
    }
    vkf_pool_run(cpu->pool, j.n_pack + tiles_m * j.tiles_n, 1, job_task, &j);
  }
  return VKF_OK;
}
