/* Attention on the CPU, flash variant: tiles and an online softmax; the
 * Tq x Tk scores never exist (FlashAttention-2).
 *
 *   attention_flash_forward       task = (batch, head, block of BQ query rows):
 *                                 per tile of BK keys S = Q . K^T, the row
 *                                 maxima and sums updated, O += P . V; then
 *                                 out = O / l, lse = m + log(l).
 *   attention_flash_backward_pre  workspace = [lse | D = rowsum(dout * out) |
 *                                 kv_lens] (D summed in double).
 *   attention_flash_backward_dkv  task = (batch, kv head, block of BK keys): over
 *                                 the group's query heads and the query tiles
 *                                 that see the block, S and dP recomputed,
 *                                 P = exp(S - lse), dS = P (dP - D) g,
 *                                 dv += P^T . dout, dk += dS^T . q.
 *   attention_flash_backward_dq   task = (batch, head, block of BQ rows): over the
 *                                 key tiles the block sees, dq += dS . k.
 *
 * Every task owns its outputs and adds its products in a fixed order, so the
 * results do not depend on the thread count (nor on how the pool splits the
 * tasks). Only tiles with a visible key are visited: with a window the work
 * is O(Tq * window). The products run in register-blocked kernels compiled
 * for AVX-512 and AVX2+FMA (picked at run time) or in portable C
 * (attention_flash_isa.h). The environment variable VKF_FLASH_ISA
 * ("portable", "avx2", "avx512") forces one, for testing; an unsupported
 * choice falls back to the best supported one.
 *
 * Operands (see frontend/attention.c):
 *   forward: 0 out, 1 lse, 2 q, 3 k, 4 v, 5 mask?, 6 kv_lens?
 *   pre:     0 ws, 1 dout, 2 out, 3 lse, 4 kv_lens?
 *   dkv:     0 dk, 1 dv, 2 q, 3 k, 4 v, 5 dout, 6 ws, 7 mask?
 *   dq:      0 dq, 1 q, 2 k, 3 v, 4 dout, 5 ws, 6 mask? */
#include "attention_common.h"
#include "cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FLASH_X86 1
#include <immintrin.h>
#endif

enum {
  BQ = 64, /* query rows per task (forward, dq) and per tile (dkv) */
  BK = 64, /* keys per tile (forward, dq) and per task (dkv) */
};

typedef struct flash_isa {
  uint32_t vw; /* floats per vector */
  void (*product)(uint32_t M, uint32_t N, uint32_t K, const float *A, size_t a_si, size_t a_sk,
                  const float *B, size_t ldb, float *C, size_t ldc, bool acc);
  void (*softmax_rows)(float *S, uint32_t np, uint32_t nr, const uint32_t *lo, const uint32_t *hi,
                       float scale, float *m, float *l, float *O, uint32_t ldo);
  void (*scale)(float *x, uint32_t n, float a);
  void (*grad_row)(float *s, float *dp, uint32_t n, float scale, float lse, float rowdot);
} flash_isa;

/* exp(x) to about 2 ulp, written so that compilers vectorise loops of it: 0
 * below -87.3 (and for -inf), NaN for NaN. x = n ln2 + r with |r| <= ln2/2
 * (ln2 in two parts), exp(r) by its Taylor series to r^6 (truncation below
 * 1.3e-7 relative), times 2^n built in the exponent bits. FMA(a, b, c) is
 * a * b + c, fused where the instruction set has it. */
#define FLASH_EXP_BODY(FMA)                                                                        \
  float xc = x > -87.3f ? x : -87.3f;                                                              \
  xc = xc < 88.7f ? xc : 88.7f;                                                                    \
  const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */              \
  float n = FMA(xc, 1.44269504088896341f, shifter) - shifter;                                      \
  float r = FMA(n, -0.693145751953125f, xc);                                                       \
  r = FMA(n, -1.42860682030941723212e-6f, r);                                                      \
  float p = FMA(1.0f / 720.0f, r, 1.0f / 120.0f);                                                  \
  p = FMA(p, r, 1.0f / 24.0f);                                                                     \
  p = FMA(p, r, 1.0f / 6.0f);                                                                      \
  p = FMA(p, r, 0.5f);                                                                             \
  p = FMA(p, r, 1.0f);                                                                             \
  p = FMA(p, r, 1.0f);                                                                             \
  uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;                                              \
  float two_n;                                                                                     \
  memcpy(&two_n, &bits, sizeof(two_n));                                                            \
  float y = x > -87.3f ? p * two_n : 0.0f;                                                         \
  return x == x ? y : x;

#define FLASH_MULADD(a, b, c) ((a) * (b) + (c))
static inline float flash_exp(float x) {
  FLASH_EXP_BODY(FLASH_MULADD)
}

/* ---- the kernels, once per instruction set ---- */
#define FK_NAME(x) fk_portable_##x
#define FK_TARGET
#define FK_VW 1
#define FK_V float
#define FK_LOAD(p) (*(p))
#define FK_STORE(p, v) (*(p) = (v))
#define FK_SET1(x) (x)
#define FK_FMA(a, b, c) ((a) * (b) + (c))
#define FK_ZERO() 0.0f
#define FK_SFMA FLASH_MULADD
#include "attention_flash_isa.h"

#ifdef FLASH_X86
#define FK_NAME(x) fk_avx2_##x
#define FK_TARGET __attribute__((target("avx2,fma")))
#define FK_VW 8
#define FK_V __m256
#define FK_LOAD(p) _mm256_loadu_ps(p)
#define FK_STORE(p, v) _mm256_storeu_ps(p, v)
#define FK_SET1(x) _mm256_set1_ps(x)
#define FK_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define FK_ZERO() _mm256_setzero_ps()
#define FK_SFMA __builtin_fmaf
#include "attention_flash_isa.h"

#define FK_NAME(x) fk_avx512_##x
#define FK_TARGET __attribute__((target("avx512f")))
#define FK_VW 16
#define FK_V __m512
#define FK_LOAD(p) _mm512_loadu_ps(p)
#define FK_STORE(p, v) _mm512_storeu_ps(p, v)
#define FK_SET1(x) _mm512_set1_ps(x)
#define FK_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define FK_ZERO() _mm512_setzero_ps()
#define FK_SFMA __builtin_fmaf
#include "attention_flash_isa.h"
#endif

static const flash_isa *isa_pick(void) {
  const char *want = getenv("VKF_FLASH_ISA");
  if (want && strcmp(want, "portable") == 0)
    return &fk_portable_isa;
#ifdef FLASH_X86
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  bool avx512 = __builtin_cpu_supports("avx512f");
  if (want && strcmp(want, "avx2") == 0 && avx2)
    return &fk_avx2_isa;
  if (avx512)
    return &fk_avx512_isa;
  if (avx2)
    return &fk_avx2_isa;
#endif
  return &fk_portable_isa;
}

/* ------------------------------------------------------------------------ */
/* Jobs                                                                     */
/* ------------------------------------------------------------------------ */
static uint32_t round_up(uint32_t x, uint32_t m) {
  return (x + m - 1) / m * m;
}

typedef struct fjob {
  const vkf_attention_params *p;
  const flash_isa *isa;
  const vkf_op *op;
  uint32_t G;                   /* query heads per kv head */
  uint32_t nqb, nkb;            /* query blocks of BQ rows, key blocks of BK keys */
  uint32_t pad;                 /* tiles' widths are multiples of this (>= 4, the vector) */
  uint32_t Dp, Dvp;             /* D, Dv rounded up to pad */
  vkf_attn_view qv, ov, kv, vv; /* q/dq (D), out/dout (Dv), k/dk (D), v/dv (Dv) */
  const int32_t *kv_lens;       /* NULL: none */
  const float *mask;            /* NULL: none */
  const float *lse, *rowdot;    /* backward: from the workspace */
  float *scratch;               /* `per` floats per worker, 64-byte aligned */
  size_t per;
  uint32_t T; /* floats per tile row: BK rounded up to pad */
  /* Forward and dq: K and V cut into tiles of BK keys once per op, in the
   * layouts the products read (else every query block would pack each tile
   * again); only tiles with a key some query of the batch sees. Indexed
   * [(b * Hkv + hk) * nkb + tile]. */
  float *kt; /* [D][T]: keys transposed, for S = Q . K^T */
  float *vt; /* [Dv][T]: values transposed, for dP = dO . V^T (dq) */
  float *kr; /* [T][Dp]: key rows, for dq += dS . K (dq) */
  float *vr; /* [T][Dvp]: value rows, for O += P . V (forward) */
} fjob;

static void job_init(fjob *J, const vkf_op *op, const int32_t *kv_lens, const float *mask) {
  const vkf_attention_params *p = &op->p.attention;
  const bool qb = p->flags & VKF_ATTN_Q_BHTD, kb = p->flags & VKF_ATTN_KV_BHTD;
  memset(J, 0, sizeof(*J));
  J->p = p;
  J->op = op;
  J->isa = isa_pick();
  J->G = p->Hq / p->Hkv;
  J->nqb = (p->Tq + BQ - 1) / BQ;
  J->nkb = (p->Tk + BK - 1) / BK;
  J->pad = J->isa->vw > 4 ? J->isa->vw : 4;
  J->Dp = round_up(p->D, J->pad);
  J->Dvp = round_up(p->Dv, J->pad);
  J->qv = vkf_attn_view_of(qb, p->Tq, p->Hq, p->D);
  J->ov = vkf_attn_view_of(qb, p->Tq, p->Hq, p->Dv);
  J->kv = vkf_attn_view_of(kb, p->Tk, p->Hkv, p->D);
  J->vv = vkf_attn_view_of(kb, p->Tk, p->Hkv, p->Dv);
  J->kv_lens = (p->flags & VKF_ATTN_KV_LENS) ? kv_lens : NULL;
  J->mask = (p->flags & VKF_ATTN_MASK) ? mask : NULL;
  J->T = round_up(BK, J->pad);
}

/* Per-worker scratch of `per` floats each. */
static vkf_status scratch_alloc(vkf_cpu *cpu, fjob *J, size_t per, void **raw) {
  J->per = round_up((uint32_t)per, 16);
  size_t threads = vkf_pool_threads(cpu->pool);
  *raw = vkf_malloc(cpu->base.env, (threads * J->per + 16) * sizeof(float));
  if (!*raw)
    return vkf_fail(cpu->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY,
                    "attention (flash): %zu bytes of scratch", threads * J->per * sizeof(float));
  J->scratch = (float *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63);
  return VKF_OK;
}

/* rows rows of E floats (row stride ts) into dst [rows_p][ld], zeros in the
 * padding (rows rows..rows_p-1, columns E..ld-1). */
static void pack_rows(float *dst, uint32_t ld, uint32_t rows_p, const float *src, size_t ts,
                      uint32_t rows, uint32_t E) {
  for (uint32_t r = 0; r < rows_p; r++) {
    float *d = dst + (size_t)r * ld;
    if (r < rows) {
      memcpy(d, src + r * ts, E * sizeof(float));
      memset(d + E, 0, (ld - E) * sizeof(float));
    } else {
      memset(d, 0, ld * sizeof(float));
    }
  }
}

/* The transpose: dst [E][ld] with dst[e][r] = src row r element e (rows
 * beyond `rows` zero). */
static void pack_cols(float *dst, uint32_t ld, const float *src, size_t ts, uint32_t rows,
                      uint32_t E) {
  for (uint32_t r = 0; r < rows; r++) { /* read along rows; the writes stay in cache */
    const float *s = src + r * ts;
    for (uint32_t e = 0; e < E; e++)
      dst[(size_t)e * ld + r] = s[e];
  }
  for (uint32_t e = 0; e < E; e++)
    memset(dst + (size_t)e * ld + rows, 0, (ld - rows) * sizeof(float));
}

/* ---- K and V tiles, packed once per op ---- */
static size_t tile_index(const fjob *J, uint32_t b, uint32_t hk, uint32_t t) {
  return ((size_t)b * J->p->Hkv + hk) * J->nkb + t;
}

/* Tiles [*t0, *t1) of batch b holding a key some query sees. */
static void batch_tiles(const fjob *J, uint32_t b, uint32_t *t0, uint32_t *t1) {
  int64_t c0, c1;
  vkf_attn_keys_of_rows(J->p, vkf_attn_batch_of(J->p, J->kv_lens, b), 0, J->p->Tq - 1, &c0, &c1);
  *t0 = (uint32_t)(c0 / BK);
  *t1 = c1 > c0 ? (uint32_t)((c1 + BK - 1) / BK) : *t0;
}

static void pack_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const fjob *J = arg;
  const vkf_attention_params *p = J->p;
  const uint32_t backward = J->op->kind == VKF_OP_ATTENTION_FLASH_BACKWARD_DQ;
  const float *k = vkf_cpu_f32(J->op, backward ? 2 : 3), *v = vkf_cpu_f32(J->op, backward ? 3 : 4);
  for (uint32_t item = begin; item < end; item++) {
    const uint32_t bk = item / J->nkb, t = item % J->nkb, b = bk / p->Hkv, hk = bk % p->Hkv;
    uint32_t t0, t1;
    batch_tiles(J, b, &t0, &t1);
    if (t < t0 || t >= t1)
      continue;
    const uint32_t j0 = t * BK, nk = p->Tk - j0 < BK ? p->Tk - j0 : BK, T = J->T;
    const float *ks = k + b * J->kv.bs + hk * J->kv.hs + j0 * J->kv.ts;
    const float *vs = v + b * J->vv.bs + hk * J->vv.hs + j0 * J->vv.ts;
    const size_t ti = tile_index(J, b, hk, t);
    pack_cols(J->kt + ti * p->D * T, T, ks, J->kv.ts, nk, p->D);
    if (backward) {
      pack_cols(J->vt + ti * p->Dv * T, T, vs, J->vv.ts, nk, p->Dv);
      pack_rows(J->kr + ti * T * J->Dp, J->Dp, T, ks, J->kv.ts, nk, p->D);
    } else {
      pack_rows(J->vr + ti * T * J->Dvp, J->Dvp, T, vs, J->vv.ts, nk, p->Dv);
    }
  }
}

/* Allocates and fills the tiles (forward: kt, vr; dq: kt, vt, kr). */
static vkf_status tiles_pack(vkf_cpu *cpu, fjob *J, void **raw) {
  const vkf_attention_params *p = J->p;
  const bool dq = J->op->kind == VKF_OP_ATTENTION_FLASH_BACKWARD_DQ;
  const size_t tiles = (size_t)p->B * p->Hkv * J->nkb, T = J->T;
  const size_t per = T * (p->D + (dq ? p->Dv + J->Dp : J->Dvp));
  *raw = vkf_malloc(cpu->base.env, (tiles * per + 16) * sizeof(float));
  if (!*raw)
    return vkf_fail(cpu->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY,
                    "attention (flash): %zu bytes for the key/value tiles",
                    tiles * per * sizeof(float));
  J->kt = (float *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63);
  float *next = J->kt + tiles * T * p->D;
  if (dq) {
    J->vt = next;
    J->kr = J->vt + tiles * T * p->Dv;
  } else {
    J->vr = next;
  }
  vkf_pool_run(cpu->pool, (uint32_t)tiles, 1, pack_task, J);
  return VKF_OK;
}

/* Logits of one row's visible keys [a, e) of a tile (x holds q.k), in place:
 * scale, softcap, mask. mrow: the mask row at the tile's first key, or NULL. */
static void logits_row(const vkf_attention_params *p, const flash_isa *isa, float *x, uint32_t a,
                       uint32_t e, const float *mrow) {
  if (p->flags & VKF_ATTN_SOFTCAP) {
    for (uint32_t j = a; j < e; j++)
      x[j] = p->softcap * tanhf(x[j] * p->scale / p->softcap);
  } else {
    isa->scale(x + a, e - a, p->scale);
  }
  if (mrow)
    for (uint32_t j = a; j < e; j++)
      x[j] += mrow[j];
}

/* ------------------------------------------------------------------------ */
/* Forward                                                                  */
/* ------------------------------------------------------------------------ */
static void forward_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  const fjob *J = arg;
  const vkf_attention_params *p = J->p;
  const flash_isa *isa = J->isa;
  const vkf_op *op = J->op;
  float *out = vkf_cpu_f32(op, 0), *lse = vkf_cpu_f32(op, 1);
  const float *q = vkf_cpu_f32(op, 2);
  const uint32_t D = p->D, Dv = p->Dv, Dvp = J->Dvp, T = J->T;
  float *Q = J->scratch + (size_t)worker * J->per; /* [BQ][D] */
  float *O = Q + (size_t)BQ * D;                   /* [BQ][Dvp] */
  float *S = O + (size_t)BQ * Dvp;                 /* [BQ][T] */
  float *m = S + (size_t)BQ * T, *l = m + BQ;      /* [BQ] each */
  uint32_t *rlo = (uint32_t *)(l + BQ), *rhi = rlo + BQ;
  for (uint32_t item = begin; item < end; item++) {
    /* the last blocks first: with a causal mask they have the most keys */
    const uint32_t bh = item / J->nqb, qb = J->nqb - 1 - item % J->nqb;
    const uint32_t b = bh / p->Hq, h = bh % p->Hq, hk = h / J->G;
    const uint32_t i0 = qb * BQ, nr = p->Tq - i0 < BQ ? p->Tq - i0 : BQ, Mp = round_up(nr, 4);
    const vkf_attn_batch bi = vkf_attn_batch_of(p, J->kv_lens, b);
    int64_t c0, c1;
    vkf_attn_keys_of_rows(p, bi, i0, i0 + nr - 1, &c0, &c1);
    pack_rows(Q, D, Mp, q + b * J->qv.bs + h * J->qv.hs + i0 * J->qv.ts, J->qv.ts, nr, D);
    memset(O, 0, (size_t)Mp * Dvp * sizeof(float));
    for (uint32_t r = 0; r < nr; r++)
      m[r] = -INFINITY, l[r] = 0.0f;
    for (int64_t kt = c0 / BK * BK; kt < c1; kt += BK) {
      const uint32_t nk = p->Tk - kt < BK ? (uint32_t)(p->Tk - kt) : BK, np = round_up(nk, J->pad);
      const size_t ti = tile_index(J, b, hk, (uint32_t)(kt / BK));
      /* the keys of this tile that some row of the block sees: only these
       * rows of V are read (what lies outside may be anything, NaN too) */
      const uint32_t ka = c0 > kt ? (uint32_t)(c0 - kt) : 0;
      const uint32_t ke = c1 < kt + nk ? (uint32_t)(c1 - kt) : nk;
      isa->product(Mp, np, D, Q, D, 1, J->kt + ti * D * T, T, S, np, false);
      const bool logits_done = J->mask || (p->flags & VKF_ATTN_SOFTCAP);
      for (uint32_t r = 0; r < nr; r++) {
        const int64_t i = i0 + r;
        int64_t lo, hi;
        vkf_attn_keys_of_rows(p, bi, i, i, &lo, &hi);
        lo = lo > kt ? lo - kt : 0;
        hi = hi < kt + nk ? hi - kt : nk;
        if (hi < lo)
          hi = lo;
        rlo[r] = (uint32_t)lo;
        rhi[r] = (uint32_t)hi;
        if (logits_done && hi > lo)
          logits_row(p, isa, S + (size_t)r * np, rlo[r], rhi[r],
                     J->mask ? J->mask + b * p->mask_sb + h * p->mask_sh + i * p->mask_si + kt
                             : NULL);
      }
      isa->softmax_rows(S, np, nr, rlo, rhi, logits_done ? 1.0f : p->scale, m, l, O, Dvp);
      /* padding rows of S hold 0 . K = 0: their O rows are never written out */
      isa->product(Mp, Dvp, ke - ka, S + ka, np, 1, J->vr + ti * T * Dvp + (size_t)ka * Dvp, Dvp, O,
                   Dvp, true);
    }
    float *ob = out + b * J->ov.bs + h * J->ov.hs + i0 * J->ov.ts;
    float *lb = lse + (size_t)bh * p->Tq + i0;
    for (uint32_t r = 0; r < nr; r++) {
      const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
      const float *o = O + (size_t)r * Dvp;
      float *dst = ob + r * J->ov.ts;
      for (uint32_t c = 0; c < Dv; c++)
        dst[c] = o[c] * inv;
      lb[r] = l[r] > 0.0f ? m[r] + logf(l[r]) : -INFINITY;
    }
  }
}

vkf_status vkf_cpu_attention_flash_forward(vkf_cpu *cpu, const vkf_op *op) {
  fjob J;
  job_init(&J, op, (const int32_t *)vkf_cpu_f32(op, 6), vkf_cpu_f32(op, 5));
  void *raw, *tiles;
  vkf_status st =
      scratch_alloc(cpu, &J, (size_t)BQ * (J.p->D + J.Dvp) + (size_t)BQ * J.T + 4 * BQ, &raw);
  if (st != VKF_OK)
    return st;
  if ((st = tiles_pack(cpu, &J, &tiles)) == VKF_OK) {
    vkf_pool_run(cpu->pool, J.p->B * J.p->Hq * J.nqb, 1, forward_task, &J);
    vkf_free(cpu->base.env, tiles);
  }
  vkf_free(cpu->base.env, raw);
  return st;
}

/* ------------------------------------------------------------------------ */
/* Backward                                                                 */
/* ------------------------------------------------------------------------ */
static void pre_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const fjob *J = arg;
  const vkf_attention_params *p = J->p;
  const vkf_op *op = J->op;
  const uint64_t n = (uint64_t)p->B * p->Hq * p->Tq;
  float *ws = vkf_cpu_f32(op, 0);
  const float *dout = vkf_cpu_f32(op, 1), *out = vkf_cpu_f32(op, 2), *lse = vkf_cpu_f32(op, 3);
  for (uint32_t row = begin; row < end; row++) {
    const uint32_t i = row % p->Tq, bh = row / p->Tq, b = bh / p->Hq, h = bh % p->Hq;
    const size_t o = b * J->ov.bs + h * J->ov.hs + i * J->ov.ts;
    double d = 0;
    for (uint32_t c = 0; c < p->Dv; c++)
      d += (double)dout[o + c] * out[o + c];
    ws[row] = lse[row];
    ws[n + row] = (float)d;
  }
}

vkf_status vkf_cpu_attention_flash_backward_pre(vkf_cpu *cpu, const vkf_op *op) {
  fjob J;
  job_init(&J, op, NULL, NULL);
  const vkf_attention_params *p = J.p;
  const uint32_t rows = p->B * p->Hq * p->Tq;
  vkf_pool_run(cpu->pool, rows, 1 + 8192 / (p->Dv + 1), pre_task, &J);
  float *ws = vkf_cpu_f32(op, 0);
  if (p->flags & VKF_ATTN_KV_LENS)
    memcpy(ws + 2 * (size_t)rows, vkf_cpu_f32(op, 4), p->B * sizeof(int32_t));
  return VKF_OK;
}

/* One row of a backward tile: s (q.k) becomes P and dp (dout.v) becomes dS
 * over the visible keys [a, e); both 0 elsewhere up to np. */
static void grad_row(const fjob *J, float *s, float *dp, uint32_t a, uint32_t e, uint32_t np,
                     float lse, float rowdot, const float *mrow) {
  const vkf_attention_params *p = J->p;
  if (lse == -INFINITY || e <= a) { /* no visible key in the row: P = 0 */
    memset(s, 0, np * sizeof(float));
    memset(dp, 0, np * sizeof(float));
    return;
  }
  if (!mrow && !(p->flags & VKF_ATTN_SOFTCAP)) {
    J->isa->grad_row(s + a, dp + a, e - a, p->scale, lse, rowdot);
  } else {
    for (uint32_t j = a; j < e; j++) {
      float x = s[j] * p->scale, g = p->scale;
      if (p->flags & VKF_ATTN_SOFTCAP) {
        float t = tanhf(x / p->softcap);
        x = p->softcap * t;
        g = p->scale * (1.0f - t * t);
      }
      if (mrow)
        x += mrow[j];
      float pj = flash_exp(x - lse);
      s[j] = pj;
      dp[j] = pj * (dp[j] - rowdot) * g;
    }
  }
  memset(s, 0, a * sizeof(float));
  memset(dp, 0, a * sizeof(float));
  memset(s + e, 0, (np - e) * sizeof(float));
  memset(dp + e, 0, (np - e) * sizeof(float));
}

static void dkv_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  const fjob *J = arg;
  const vkf_attention_params *p = J->p;
  const flash_isa *isa = J->isa;
  const vkf_op *op = J->op;
  float *dk = vkf_cpu_f32(op, 0), *dv = vkf_cpu_f32(op, 1);
  const float *q = vkf_cpu_f32(op, 2), *k = vkf_cpu_f32(op, 3), *v = vkf_cpu_f32(op, 4);
  const float *dout = vkf_cpu_f32(op, 5);
  const uint32_t D = p->D, Dv = p->Dv, Dp = J->Dp, Dvp = J->Dvp, T = round_up(BK, J->pad);
  float *Kt = J->scratch + (size_t)worker * J->per;           /* [D][T] */
  float *Vt = Kt + (size_t)D * T;                             /* [Dv][T] */
  float *dK = Vt + (size_t)Dv * T;                            /* [T][Dp] */
  float *dV = dK + (size_t)T * Dp;                            /* [T][Dvp] */
  float *Q = dV + (size_t)T * Dvp;                            /* [BQ][Dp] */
  float *dO = Q + (size_t)BQ * Dp;                            /* [BQ][Dvp] */
  float *S = dO + (size_t)BQ * Dvp, *dP = S + (size_t)BQ * T; /* [BQ][T] each */
  for (uint32_t item = begin; item < end; item++) {
    const uint32_t bk = item / J->nkb, j0 = (item % J->nkb) * BK;
    const uint32_t b = bk / p->Hkv, hk = bk % p->Hkv;
    const vkf_attn_batch bi = vkf_attn_batch_of(p, J->kv_lens, b);
    if ((int64_t)j0 >= bi.limit)
      continue;
    const uint32_t nk = (int64_t)(j0 + BK) < bi.limit ? BK : (uint32_t)(bi.limit - j0);
    const uint32_t np = round_up(nk, J->pad);
    int64_t r0, r1;
    vkf_attn_rows_of_keys(p, bi, j0, j0 + nk - 1, &r0, &r1);
    if (r1 <= r0)
      continue;
    pack_cols(Kt, np, k + b * J->kv.bs + hk * J->kv.hs + j0 * J->kv.ts, J->kv.ts, nk, D);
    pack_cols(Vt, np, v + b * J->vv.bs + hk * J->vv.hs + j0 * J->vv.ts, J->vv.ts, nk, Dv);
    memset(dK, 0, (size_t)np * Dp * sizeof(float));
    memset(dV, 0, (size_t)np * Dvp * sizeof(float));
    for (uint32_t g = 0; g < J->G; g++) {
      const uint32_t h = hk * J->G + g;
      const size_t rowbase = ((size_t)b * p->Hq + h) * p->Tq;
      for (int64_t m0 = r0; m0 < r1; m0 += BQ) {
        const uint32_t nm = r1 - m0 < BQ ? (uint32_t)(r1 - m0) : BQ, Mq = round_up(nm, 4);
        pack_rows(Q, Dp, Mq, q + b * J->qv.bs + h * J->qv.hs + m0 * J->qv.ts, J->qv.ts, nm, D);
        pack_rows(dO, Dvp, Mq, dout + b * J->ov.bs + h * J->ov.hs + m0 * J->ov.ts, J->ov.ts, nm,
                  Dv);
        isa->product(Mq, np, D, Q, Dp, 1, Kt, np, S, np, false);
        isa->product(Mq, np, Dv, dO, Dvp, 1, Vt, np, dP, np, false);
        for (uint32_t r = 0; r < Mq; r++) {
          float *s = S + (size_t)r * np, *d = dP + (size_t)r * np;
          if (r >= nm) { /* padding rows: no contribution */
            memset(s, 0, np * sizeof(float));
            memset(d, 0, np * sizeof(float));
            continue;
          }
          const int64_t i = m0 + r;
          int64_t lo, hi;
          vkf_attn_keys_of_rows(p, bi, i, i, &lo, &hi);
          lo = lo > j0 ? lo - j0 : 0;
          hi = hi < j0 + nk ? hi - j0 : nk;
          const float *mrow =
              J->mask ? J->mask + b * p->mask_sb + h * p->mask_sh + i * p->mask_si + j0 : NULL;
          grad_row(J, s, d, lo < hi ? (uint32_t)lo : 0, lo < hi ? (uint32_t)hi : 0, np,
                   J->lse[rowbase + i], J->rowdot[rowbase + i], mrow);
        }
        /* dV[n, :] += sum_r P[r, n] dO[r, :]; dK[n, :] += sum_r dS[r, n] Q[r, :] */
        isa->product(round_up(nk, 4), Dvp, Mq, S, 1, np, dO, Dvp, dV, Dvp, true);
        isa->product(round_up(nk, 4), Dp, Mq, dP, 1, np, Q, Dp, dK, Dp, true);
      }
    }
    float *dkb = dk + b * J->kv.bs + hk * J->kv.hs + j0 * J->kv.ts;
    float *dvb = dv + b * J->vv.bs + hk * J->vv.hs + j0 * J->vv.ts;
    for (uint32_t n = 0; n < nk; n++) {
      for (uint32_t c = 0; c < D; c++)
        dkb[n * J->kv.ts + c] += dK[(size_t)n * Dp + c];
      for (uint32_t c = 0; c < Dv; c++)
        dvb[n * J->vv.ts + c] += dV[(size_t)n * Dvp + c];
    }
  }
}

/* A backward job: operand ws (then the optional mask) is the workspace the
 * backward's first op filled: lse [B*Hq*Tq], rowdot [B*Hq*Tq], kv lengths [B]. */
static void job_init_backward(fjob *J, const vkf_op *op, uint32_t ws_at) {
  const float *ws = vkf_cpu_f32(op, ws_at);
  const vkf_attention_params *p = &op->p.attention;
  const size_t n = (size_t)p->B * p->Hq * p->Tq;
  job_init(J, op, (const int32_t *)(ws + 2 * n), vkf_cpu_f32(op, ws_at + 1));
  J->lse = ws;
  J->rowdot = ws + n;
}

vkf_status vkf_cpu_attention_flash_backward_dkv(vkf_cpu *cpu, const vkf_op *op) {
  fjob J;
  const vkf_attention_params *p = &op->p.attention;
  job_init_backward(&J, op, 6);
  const size_t T = round_up(BK, J.pad);
  void *raw;
  vkf_status st = scratch_alloc(cpu, &J,
                                (p->D + p->Dv) * T + T * (J.Dp + J.Dvp) +
                                    (size_t)BQ * (J.Dp + J.Dvp) + 2 * (size_t)BQ * T,
                                &raw);
  if (st != VKF_OK)
    return st;
  vkf_pool_run(cpu->pool, p->B * p->Hkv * J.nkb, 1, dkv_task, &J);
  vkf_free(cpu->base.env, raw);
  return VKF_OK;
}

static void dq_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  const fjob *J = arg;
  const vkf_attention_params *p = J->p;
  const flash_isa *isa = J->isa;
  const vkf_op *op = J->op;
  float *dq = vkf_cpu_f32(op, 0);
  const float *q = vkf_cpu_f32(op, 1), *dout = vkf_cpu_f32(op, 4);
  const uint32_t D = p->D, Dv = p->Dv, Dp = J->Dp, T = J->T;
  float *Q = J->scratch + (size_t)worker * J->per;           /* [BQ][D] */
  float *dO = Q + (size_t)BQ * D;                            /* [BQ][Dv] */
  float *dQ = dO + (size_t)BQ * Dv;                          /* [BQ][Dp] */
  float *S = dQ + (size_t)BQ * Dp, *dP = S + (size_t)BQ * T; /* [BQ][T] each */
  for (uint32_t item = begin; item < end; item++) {
    const uint32_t bh = item / J->nqb, qb = J->nqb - 1 - item % J->nqb;
    const uint32_t b = bh / p->Hq, h = bh % p->Hq, hk = h / J->G;
    const uint32_t i0 = qb * BQ, nr = p->Tq - i0 < BQ ? p->Tq - i0 : BQ, Mp = round_up(nr, 4);
    const vkf_attn_batch bi = vkf_attn_batch_of(p, J->kv_lens, b);
    int64_t c0, c1;
    vkf_attn_keys_of_rows(p, bi, i0, i0 + nr - 1, &c0, &c1);
    if (c1 <= c0)
      continue;
    const size_t rowbase = (size_t)bh * p->Tq + i0;
    pack_rows(Q, D, Mp, q + b * J->qv.bs + h * J->qv.hs + i0 * J->qv.ts, J->qv.ts, nr, D);
    pack_rows(dO, Dv, Mp, dout + b * J->ov.bs + h * J->ov.hs + i0 * J->ov.ts, J->ov.ts, nr, Dv);
    memset(dQ, 0, (size_t)Mp * Dp * sizeof(float));
    for (int64_t kt = c0 / BK * BK; kt < c1; kt += BK) {
      const uint32_t nk = p->Tk - kt < BK ? (uint32_t)(p->Tk - kt) : BK, np = round_up(nk, J->pad);
      const size_t ti = tile_index(J, b, hk, (uint32_t)(kt / BK));
      const uint32_t ka = c0 > kt ? (uint32_t)(c0 - kt) : 0;
      const uint32_t ke = c1 < kt + nk ? (uint32_t)(c1 - kt) : nk;
      isa->product(Mp, np, D, Q, D, 1, J->kt + ti * D * T, T, S, np, false);
      isa->product(Mp, np, Dv, dO, Dv, 1, J->vt + ti * Dv * T, T, dP, np, false);
      for (uint32_t r = 0; r < Mp; r++) {
        float *s = S + (size_t)r * np, *d = dP + (size_t)r * np;
        if (r >= nr) {
          memset(s, 0, np * sizeof(float));
          memset(d, 0, np * sizeof(float));
          continue;
        }
        const int64_t i = i0 + r;
        int64_t lo, hi;
        vkf_attn_keys_of_rows(p, bi, i, i, &lo, &hi);
        lo = lo > kt ? lo - kt : 0;
        hi = hi < kt + nk ? hi - kt : nk;
        const float *mrow =
            J->mask ? J->mask + b * p->mask_sb + h * p->mask_sh + i * p->mask_si + kt : NULL;
        grad_row(J, s, d, lo < hi ? (uint32_t)lo : 0, lo < hi ? (uint32_t)hi : 0, np,
                 J->lse[rowbase + r], J->rowdot[rowbase + r], mrow);
      }
      isa->product(Mp, Dp, ke - ka, dP + ka, np, 1, J->kr + ti * T * Dp + (size_t)ka * Dp, Dp, dQ,
                   Dp, true);
    }
    float *dqb = dq + b * J->qv.bs + h * J->qv.hs + i0 * J->qv.ts;
    for (uint32_t r = 0; r < nr; r++)
      for (uint32_t c = 0; c < D; c++)
        dqb[r * J->qv.ts + c] += dQ[(size_t)r * Dp + c];
  }
}

vkf_status vkf_cpu_attention_flash_backward_dq(vkf_cpu *cpu, const vkf_op *op) {
  fjob J;
  const vkf_attention_params *p = &op->p.attention;
  job_init_backward(&J, op, 5);
  void *raw, *tiles;
  vkf_status st =
      scratch_alloc(cpu, &J, (size_t)BQ * (p->D + p->Dv + J.Dp) + 2 * (size_t)BQ * J.T, &raw);
  if (st != VKF_OK)
    return st;
  if ((st = tiles_pack(cpu, &J, &tiles)) == VKF_OK) {
    vkf_pool_run(cpu->pool, p->B * p->Hq * J.nqb, 1, dq_task, &J);
    vkf_free(cpu->base.env, tiles);
  }
  vkf_free(cpu->base.env, raw);
  return st;
}
