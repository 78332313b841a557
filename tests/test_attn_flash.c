/* attention, flash variant (VKF_ATTENTION_FLASH): CPU forward (out and the
 * row log-sum-exp) against a double-precision reference written with explicit
 * loops and an explicit visibility mask, in each of the CPU kernels' builds
 * (portable, AVX2, AVX-512 where the machine has them); CPU backward against
 * central finite differences of that reference; flash against the standard
 * variant on the same inputs, forward and backward; Vulkan against the CPU
 * backend on awkward shapes; sliding windows of 1, a few and more than T
 * keys, with everything outside the window poisoned with NaN (a kernel that
 * reads a key it must skip produces NaN); accumulation; thread-count
 * independence; every error status the variant adds; and the GPT graph
 * (training step gradients of the flash and sliding-window configurations
 * against the standard one, and planned memory linear in T).
 *
 * Tolerances (element-wise |got - ref| <= atol + rtol * |ref|), ten or more
 * times the worst error measured here (CPU portable/AVX2/AVX-512, lavapipe
 * in both Vulkan configurations); VKF_TEST_VERBOSE=1 prints the worst seen
 * as a fraction of the bound:
 * - forward out against the double reference, flash against standard, Vulkan
 *   against CPU: atol 1e-5, rtol 1e-4 (worst seen 8e-7 absolute, 6% of the
 *   bound). Inputs U(-1, 1), scores fp32 dot products of up to 128 terms; the
 *   online softmax rescales its partial sums once per tile (CPU) or per key
 *   (Vulkan), each a rounding of ~6e-8 relative; an indexing or masking bug
 *   gives errors of 1e-2..1.
 * - lse: atol 1e-5, rtol 1e-5 (values up to ~10; fp32 rounding of the max and
 *   of log(sum); worst seen 1.4e-6, 4%); -inf exactly where a row sees no key.
 * - backward against finite differences of the double reference (step 1e-4,
 *   truncation ~1e-9): atol 1e-5, rtol 1e-4 (worst seen 1e-7, under 1%).
 * - backward flash against standard and Vulkan against CPU: atol 3e-5,
 *   rtol 3e-4 (worst seen 2.5e-6, 6%): both fp32 with different summation
 *   orders over up to ~370 keys and 8 heads of a group, the cancellation in
 *   dP - D, and initial gradients of size 1 added.
 * - the gradients of a GPT training step, flash or Vulkan against standard or
 *   CPU: atol 1e-7, rtol 1e-4 (gradients ~1e-4..1e-2; worst seen 9e-9, 9%). */
#include "attn_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Awkward shapes: lengths not multiples of the tiles (64 on the CPU, the
 * device's on Vulkan), a single query, decoding (Tq < Tk), Tq > Tk, head sizes
 * 4..128 (32, 64, 80, 128 among them) with D != Dv, Hq / Hkv = 1, 2, 4, 8,
 * both layouts, every alignment, windows of 1, a few keys and more than T,
 * softcap, masks and kv_lens. */
static const acase cases[] = {
    /* B Tq Tk Hq Hkv D Dv flags scale softcap window align ofs mask kvl logits */
    {1, 1, 1, 1, 1, 32, 32, 0, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 3, 3, 2, 1, 32, 32, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 70, 70, 4, 2, 64, 64, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 130, 130, 8, 1, 32, 32, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 65, 65, 2, 2, 80, 80, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 1, 0},
    {1, 1, 100, 8, 2, 128, 128, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 1, 257, 4, 4, 64, 64, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 1, 0},
    {1, 17, 100, 4, 1, 64, 64, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 100, 17, 2, 2, 128, 128, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 3, 17, 2, 1, 80, 80, CAUSAL, 0, 0, 0, TL, 0, MASK_NONE, 0, 0},
    {1, 100, 100, 2, 2, 32, 32, CAUSAL, 0, 5.0f, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 63, 63, 4, 1, 32, 32, 0, 0, 0, 0, 0, 0, MASK_2D, 0, 0},
    {2, 17, 17, 4, 1, 128, 128, 0, 0, 2.0f, 0, 0, 0, MASK_BH, 0, 0},
    {1, 63, 63, 2, 1, 80, 80, CAUSAL | QBHTD | KVBHTD, 0.3f, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 17, 33, 3, 3, 8, 10, 0, 0, 0, 0, 0, 0, MASK_SHORT, 1, 0},
    {1, 63, 100, 4, 2, 32, 16, CAUSAL, 0, 0, 30, OFS, 20, MASK_B1, 1, 0},
    {2, 100, 17, 1, 1, 64, 64, 0, 0, 0, 0, 0, 0, MASK_ROW, 0, 0},
    {1, 33, 65, 2, 1, 32, 24, CAUSAL | QBHTD, 0, 1.0f, 9, OFS, -5, MASK_NONE, 0, 0},
    {2, 63, 63, 2, 1, 64, 64, CAUSAL, 1.0f, 0, 0, 0, 0, MASK_NONE, 1, 0},
    /* sliding windows: 1 (each query sees itself), a few keys, more than T */
    {1, 150, 150, 4, 2, 64, 64, CAUSAL, 0, 0, 1, 0, 0, MASK_NONE, 0, 0},
    {1, 150, 150, 2, 1, 32, 32, CAUSAL, 0, 0, 7, 0, 0, MASK_NONE, 0, 0},
    {2, 70, 70, 2, 2, 16, 16, CAUSAL | KVBHTD, 0, 0, 500, 0, 0, MASK_NONE, 0, 0},
    {1, 5, 150, 8, 8, 4, 4, 0, 0, 0, 20, 0, 0, MASK_NONE, 0, 0},
    /* over 2^20 (query, key) pairs: lavapipe's large-problem kernels (several
     * rows per invocation) */
    {1, 370, 370, 8, 2, 64, 64, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
};

/* The Vulkan comparison: the same features (awkward lengths, a single query,
 * decoding, Tq > Tk, head sizes 32, 64, 80, 128 and D != Dv, Hq / Hkv = 1, 2,
 * 4, 8, both layouts, every alignment, windows of 1, a few and more than T
 * keys, softcap, every mask kind, kv_lens) on few distinct kernels: lavapipe
 * compiles each head size, with or without mask and softcap, separately and
 * slowly, so masks and softcaps go on 32-element heads. */
static const acase vk_cases[] = {
    /* B Tq Tk Hq Hkv D Dv flags scale softcap window align ofs mask kvl logits */
    {1, 1, 1, 1, 1, 32, 32, 0, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 3, 3, 2, 1, 32, 32, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 70, 70, 4, 2, 64, 64, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 130, 130, 8, 1, 32, 32, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 65, 65, 2, 2, 80, 80, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 1, 0},
    {1, 1, 100, 8, 2, 128, 128, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 1, 257, 4, 4, 64, 64, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 1, 0},
    {1, 17, 100, 4, 1, 64, 64, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 100, 17, 2, 2, 128, 128, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 3, 17, 2, 1, 80, 80, CAUSAL, 0, 0, 0, TL, 0, MASK_NONE, 0, 0},
    {1, 100, 100, 2, 2, 32, 32, CAUSAL, 0, 5.0f, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 63, 63, 4, 1, 32, 32, 0, 0, 0, 0, 0, 0, MASK_2D, 0, 0},
    {2, 17, 17, 4, 1, 32, 32, 0, 0, 2.0f, 0, 0, 0, MASK_BH, 0, 0},
    {1, 63, 63, 2, 1, 80, 80, CAUSAL | QBHTD | KVBHTD, 0.3f, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 17, 33, 3, 3, 32, 32, 0, 0, 0, 0, 0, 0, MASK_SHORT, 1, 0},
    {1, 63, 100, 4, 2, 32, 32, CAUSAL, 0, 0, 30, OFS, 20, MASK_B1, 1, 0},
    {2, 100, 17, 1, 1, 32, 32, 0, 0, 0, 0, 0, 0, MASK_ROW, 0, 0},
    {1, 33, 65, 2, 1, 32, 32, CAUSAL | QBHTD, 0, 1.0f, 9, OFS, -5, MASK_NONE, 0, 0},
    {2, 63, 63, 2, 1, 64, 64, CAUSAL, 1.0f, 0, 0, 0, 0, MASK_NONE, 1, 0},
    {1, 150, 150, 4, 2, 64, 64, CAUSAL, 0, 0, 1, 0, 0, MASK_NONE, 0, 0},
    {1, 150, 150, 2, 1, 32, 32, CAUSAL, 0, 0, 7, 0, 0, MASK_NONE, 0, 0},
    {2, 70, 70, 2, 2, 32, 32, CAUSAL | KVBHTD, 0, 0, 500, 0, 0, MASK_NONE, 0, 0},
    {1, 5, 150, 8, 8, 24, 40, 0, 0, 0, 20, 0, 0, MASK_NONE, 0, 0},
    /* small heads: several rows (keys) per invocation on lavapipe (8 here) */
    {2, 70, 70, 4, 2, 8, 8, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 1, 0},
    /* over 2^20 (query, key) pairs: lavapipe's large-problem kernels (16 rows
     * per invocation at this head size; larger heads give the same kernels
     * with fewer rows, which take long to compile) */
    {1, 370, 370, 8, 2, 8, 8, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
};

/* Small cases for the finite differences (each element of q, k, v costs two
 * reference forwards). */
static const acase fd_cases[] = {
    {2, 4, 4, 2, 1, 8, 8, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 3, 5, 4, 2, 8, 6, 0, 0, 1.5f, 0, 0, 0, MASK_2D, 0, 0},
    {2, 4, 6, 2, 2, 5, 7, CAUSAL | QBHTD, 0, 0, 3, 0, 0, MASK_B1, 1, 0},
    {1, 5, 3, 2, 1, 8, 8, CAUSAL, 0.7f, 0.8f, 0, TL, 0, MASK_NONE, 0, 0},
    {1, 2, 7, 3, 1, 4, 4, CAUSAL | KVBHTD, 0, 0, 0, OFS, 3, MASK_SHORT, 0, 0},
    {2, 3, 4, 4, 1, 6, 3, 0, 0, 0, 0, 0, 0, MASK_BH, 1, 0},
    {1, 6, 6, 2, 1, 4, 4, CAUSAL, 0, 0, 1, 0, 0, MASK_NONE, 0, 0},
};

/* ------------------------------------------------------------------------ */
/* Inputs and the double-precision reference                                */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Running a case on a context                                              */
/* ------------------------------------------------------------------------ */
typedef struct result {
  float *out, *lse, *dq, *dk, *dv;
} result;

static void result_free(result *r) {
  free(r->out);
  free(r->lse);
  free(r->dq);
  free(r->dk);
  free(r->dv);
  memset(r, 0, sizeof(*r));
}

static vkf_attention_desc desc_of(const acase *c, vkf_attention_variant variant) {
  vkf_attention_desc d = {.variant = variant,
                          .flags = c->flags,
                          .scale = c->scale,
                          .softcap = c->softcap,
                          .window = c->window,
                          .align = c->align,
                          .q_offset = c->q_offset};
  return d;
}

#define CHECK(ctx, expr)                                                                           \
  do {                                                                                             \
    vkf_status st_ = (expr);                                                                       \
    if (st_ != VKF_OK)                                                                             \
      fail_msg("%s -> %s: %s", #expr, vkf_status_name(st_), vkf_context_error(ctx));               \
  } while (0)

/* Forward, then (with backward > 0) `backward` backward passes adding into
 * gradients that start at g0 (q, k, v order; NULL: zeros), with `variant`.
 * The outputs and the workspace start as NaN: everything must be written
 * before it is read. With the flash variant lse is read back; with the
 * standard one it is left NULL. */
static void run_case(vkf_context *ctx, const acase *c, const inputs *in,
                     vkf_attention_variant variant, int backward, const float *const g0[3],
                     result *r) {
  const bool qb = c->flags & QBHTD, kb = c->flags & KVBHTD;
  const bool flash = variant == VKF_ATTENTION_FLASH;
  int64_t sq[4], sk[4], sv[4], so[4], s1[1] = {c->B};
  make_shape(qb, c->B, c->Tq, c->Hq, c->D, sq);
  make_shape(kb, c->B, c->Tk, c->Hkv, c->D, sk);
  make_shape(kb, c->B, c->Tk, c->Hkv, c->Dv, sv);
  make_shape(qb, c->B, c->Tq, c->Hq, c->Dv, so);
  vkf_tensor q = vkft_tensor_from(ctx, 4, sq, in->q), k = vkft_tensor_from(ctx, 4, sk, in->k);
  vkf_tensor v = vkft_tensor_from(ctx, 4, sv, in->v), out = vkft_tensor(ctx, 4, so);
  vkf_attention_desc d = desc_of(c, variant);
  if (in->mask)
    d.mask = vkft_tensor_from(ctx, in->mndim, in->mshape, in->mask);
  if (c->kv_lens) {
    CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_I32, 1, s1, &d.kv_lens));
    CHECK(ctx, vkf_tensor_write(ctx, d.kv_lens, in->kvl, c->B * sizeof(int32_t)));
  }
  vkf_attention_sizes sizes;
  CHECK(ctx, vkf_attention_sizes_get(ctx, q, k, v, &d, &sizes));
  if (flash) {
    int64_t want[3] = {c->B, c->Hq, c->Tq};
    assert_int_equal(sizes.saved_ndim, 3);
    assert_memory_equal(sizes.saved_shape, want, sizeof(want));
    assert_int_equal(sizes.workspace_elements, 2 * in->nl + c->B);
  }
  vkf_tensor saved = vkft_tensor(ctx, sizes.saved_ndim, sizes.saved_shape);
  CHECK(ctx, vkf_tensor_fill(ctx, out, NAN));
  CHECK(ctx, vkf_tensor_fill(ctx, saved, NAN));
  CHECK(ctx, vkf_attention_forward(ctx, out, saved, q, k, v, &d));
  r->out = vkft_alloc(in->no);
  vkft_read(ctx, out, r->out, in->no);
  if (flash) {
    r->lse = vkft_alloc(in->nl);
    vkft_read(ctx, saved, r->lse, in->nl);
  }
  if (backward) {
    vkf_tensor dout = vkft_tensor_from(ctx, 4, so, in->dout);
    vkf_tensor g[3] = {vkft_tensor(ctx, 4, sq), vkft_tensor(ctx, 4, sk), vkft_tensor(ctx, 4, sv)};
    size_t n[3] = {in->nq, in->nk, in->nv};
    for (int i = 0; i < 3; i++) {
      if (g0)
        CHECK(ctx, vkf_tensor_write(ctx, g[i], g0[i], n[i] * sizeof(float)));
      else
        CHECK(ctx, vkf_tensor_fill(ctx, g[i], 0.0f));
    }
    int64_t sw[1] = {(int64_t)sizes.workspace_elements};
    vkf_tensor ws = vkft_tensor(ctx, 1, sw);
    CHECK(ctx, vkf_tensor_fill(ctx, ws, NAN));
    d.out = out;
    for (int t = 0; t < backward; t++)
      CHECK(ctx, vkf_attention_backward(ctx, g[0], g[1], g[2], dout, q, k, v, saved, ws, &d));
    float **dst[3] = {&r->dq, &r->dk, &r->dv};
    for (int i = 0; i < 3; i++) {
      *dst[i] = vkft_alloc(n[i]);
      vkft_read(ctx, g[i], *dst[i], n[i]);
      CHECK(ctx, vkf_tensor_destroy(ctx, g[i]));
    }
    CHECK(ctx, vkf_tensor_destroy(ctx, dout));
    CHECK(ctx, vkf_tensor_destroy(ctx, ws));
  }
  vkf_tensor all[] = {q, k, v, out, saved, d.mask, d.kv_lens};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    if (all[i].id)
      CHECK(ctx, vkf_tensor_destroy(ctx, all[i]));
}

/* The worst |got - ref| / (atol + rtol |ref|) seen per kind of check, printed
 * with VKF_TEST_VERBOSE=1 (how the tolerances above were set). */
static void note_worst(const char *what, const float *got, const double *ref, size_t n, double atol,
                       double rtol) {
  if (!getenv("VKF_TEST_VERBOSE"))
    return;
  double worst = 0, at_abs = 0;
  for (size_t i = 0; i < n; i++) {
    if (isinf(ref[i]) || isnan(got[i]))
      continue;
    double e = fabs((double)got[i] - ref[i]), t = e / (atol + rtol * fabs(ref[i]));
    if (t > worst)
      worst = t, at_abs = e;
  }
  fprintf(stderr, "  %-24s worst %.3g of the bound (abs error %.3g)\n", what, worst, at_abs);
}

/* Compares arrays that may hold -inf: the infinities must sit at the same
 * places; the finite values are compared with the bounds. */
static size_t compare_inf(const char *what, const float *got, const double *ref, size_t n,
                          double atol, double rtol) {
  size_t bad = 0;
  float *g = vkft_alloc(n);
  double *r = vkft_alloc_d(n);
  for (size_t i = 0; i < n; i++) {
    bool gi = isinf(got[i]), ri = isinf(ref[i]);
    if (gi != ri || (gi && (got[i] < 0) != (ref[i] < 0))) {
      if (bad < 5)
        fprintf(stderr, "  %s[%zu]: got %g, expected %g\n", what, i, (double)got[i], ref[i]);
      bad++;
    }
    g[i] = gi || ri ? 0.0f : got[i];
    r[i] = gi || ri ? 0.0 : ref[i];
  }
  bad += vkft_compare(what, g, r, n, atol, rtol);
  note_worst(what, g, r, n, atol, rtol);
  free(g);
  free(r);
  return bad;
}

static size_t compare(const char *what, const float *got, const double *ref, size_t n, double atol,
                      double rtol) {
  size_t bad = vkft_compare(what, got, ref, n, atol, rtol);
  note_worst(what, got, ref, n, atol, rtol);
  return bad;
}

static size_t compare_f(const char *what, const float *got, const float *ref, size_t n, double atol,
                        double rtol) {
  double *r = to_double(ref, n);
  size_t bad = compare_inf(what, got, r, n, atol, rtol);
  free(r);
  return bad;
}

static void case_name(const acase *c, size_t ci, char *buf, size_t n) {
  snprintf(buf, n,
           "case %zu (B%u Tq%u Tk%u Hq%u Hkv%u D%u Dv%u flags %u scale %g cap %g win %u align %d "
           "ofs %d mask %d kvl %d)",
           ci, c->B, c->Tq, c->Tk, c->Hq, c->Hkv, c->D, c->Dv, c->flags, (double)c->scale,
           (double)c->softcap, c->window, (int)c->align, c->q_offset, c->mask, c->kv_lens);
}

static const double FWD_ATOL = 1e-5, FWD_RTOL = 1e-4;
static const double LSE_ATOL = 1e-5, LSE_RTOL = 1e-5;
static const double FD_ATOL = 1e-5, FD_RTOL = 1e-4;
static const double BWD_ATOL = 3e-5, BWD_RTOL = 3e-4;

#define FLASH VKF_ATTENTION_FLASH
#define STANDARD VKF_ATTENTION_STANDARD

/* The CPU kernels' builds to run: VKF_FLASH_ISA picks one (an unsupported one
 * falls back to the best, so "avx2" and "avx512" may repeat it). */
static const char *const isas[] = {"portable", "avx2", "avx512"};

/* ------------------------------------------------------------------------ */
/* 1. CPU against the reference                                              */
/* ------------------------------------------------------------------------ */
static void test_flash_cpu_forward_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  size_t failures = 0;
  for (size_t s = 0; s < VKFT_ARRAY_LEN(isas); s++) {
    setenv("VKF_FLASH_ISA", isas[s], 1);
    for (size_t ci = 0; ci < VKFT_ARRAY_LEN(cases); ci++) {
      const acase *c = &cases[ci];
      inputs in;
      inputs_make(c, 100 + ci, &in);
      double *q = to_double(in.q, in.nq), *k = to_double(in.k, in.nk);
      double *v = to_double(in.v, in.nv);
      double *out = vkft_alloc_d(in.no), *lse = vkft_alloc_d(in.nl);
      ref_forward(c, &in, q, k, v, out, NULL, NULL, lse);
      result r = {0};
      run_case(cpu, c, &in, FLASH, 0, NULL, &r);
      char what[256];
      case_name(c, ci, what, sizeof(what));
      size_t bad = compare("out", r.out, out, in.no, FWD_ATOL, FWD_RTOL);
      bad += compare_inf("lse", r.lse, lse, in.nl, LSE_ATOL, LSE_RTOL);
      if (bad)
        fprintf(stderr, "  ^ %s, %s kernels\n", what, isas[s]);
      failures += bad;
      result_free(&r);
      free(q), free(k), free(v), free(out), free(lse);
      inputs_free(&in);
    }
  }
  unsetenv("VKF_FLASH_ISA");
  vkft_destroy(cpu);
  assert_int_equal(failures, 0);
}

/* dL/dx by central differences of L = sum(out * dout), in double. */
static void finite_differences(const acase *c, const inputs *in, double *x, size_t n, double *q,
                               double *k, double *v, double *grad) {
  const double h = 1e-4;
  double *out = vkft_alloc_d(in->no);
  for (size_t i = 0; i < n; i++) {
    double x0 = x[i], l[2];
    for (int s = 0; s < 2; s++) {
      x[i] = x0 + (s ? -h : h);
      ref_forward(c, in, q, k, v, out, NULL, NULL, NULL);
      l[s] = 0;
      for (size_t o = 0; o < in->no; o++)
        l[s] += out[o] * in->dout[o];
    }
    x[i] = x0;
    grad[i] = (l[0] - l[1]) / (2 * h);
  }
  free(out);
}

static void test_flash_cpu_backward_vs_finite_differences(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(fd_cases); ci++) {
    const acase *c = &fd_cases[ci];
    inputs in;
    inputs_make(c, 200 + ci, &in);
    double *q = to_double(in.q, in.nq), *k = to_double(in.k, in.nk), *v = to_double(in.v, in.nv);
    double *gq = vkft_alloc_d(in.nq), *gk = vkft_alloc_d(in.nk), *gv = vkft_alloc_d(in.nv);
    finite_differences(c, &in, q, in.nq, q, k, v, gq);
    finite_differences(c, &in, k, in.nk, q, k, v, gk);
    finite_differences(c, &in, v, in.nv, q, k, v, gv);
    /* gradients start non-zero: the backward must add, so compare the sum */
    vkft_rng rng = vkft_rng_seed(300 + ci);
    float *g0[3] = {vkft_alloc(in.nq), vkft_alloc(in.nk), vkft_alloc(in.nv)};
    double *want[3] = {gq, gk, gv};
    size_t n[3] = {in.nq, in.nk, in.nv};
    for (int i = 0; i < 3; i++) {
      vkft_fill_uniform(&rng, g0[i], n[i], -0.5f, 0.5f);
      for (size_t e = 0; e < n[i]; e++)
        want[i][e] += g0[i][e];
    }
    for (size_t s = 0; s < VKFT_ARRAY_LEN(isas); s++) {
      setenv("VKF_FLASH_ISA", isas[s], 1);
      result r = {0};
      run_case(cpu, c, &in, FLASH, 1, (const float *const *)g0, &r);
      char what[256];
      case_name(c, ci, what, sizeof(what));
      size_t bad = compare("dq (fd)", r.dq, gq, in.nq, FD_ATOL, FD_RTOL);
      bad += compare("dk (fd)", r.dk, gk, in.nk, FD_ATOL, FD_RTOL);
      bad += compare("dv (fd)", r.dv, gv, in.nv, FD_ATOL, FD_RTOL);
      if (bad)
        fprintf(stderr, "  ^ %s, %s kernels\n", what, isas[s]);
      failures += bad;
      result_free(&r);
    }
    for (int i = 0; i < 3; i++)
      free(g0[i]);
    free(q), free(k), free(v), free(gq), free(gk), free(gv);
    inputs_free(&in);
  }
  unsetenv("VKF_FLASH_ISA");
  vkft_destroy(cpu);
  assert_int_equal(failures, 0);
}

/* Flash and standard on the same inputs: out, dq, dk, dv, over n cases. */
static size_t flash_vs_standard(vkf_context *ctx, const char *where, const acase *list, size_t n) {
  size_t failures = 0;
  for (size_t ci = 0; ci < n; ci++) {
    const acase *c = &list[ci];
    inputs in;
    inputs_make(c, 800 + ci, &in);
    vkft_rng rng = vkft_rng_seed(900 + ci);
    float *g0[3] = {vkft_alloc(in.nq), vkft_alloc(in.nk), vkft_alloc(in.nv)};
    size_t n[3] = {in.nq, in.nk, in.nv};
    for (int i = 0; i < 3; i++)
      vkft_fill_uniform(&rng, g0[i], n[i], -1, 1);
    result rf = {0}, rs = {0};
    run_case(ctx, c, &in, FLASH, 1, (const float *const *)g0, &rf);
    run_case(ctx, c, &in, STANDARD, 1, (const float *const *)g0, &rs);
    char what[256];
    case_name(c, ci, what, sizeof(what));
    size_t bad = compare_f("out flash/std", rf.out, rs.out, in.no, FWD_ATOL, FWD_RTOL);
    bad += compare_f("dq flash/std", rf.dq, rs.dq, in.nq, BWD_ATOL, BWD_RTOL);
    bad += compare_f("dk flash/std", rf.dk, rs.dk, in.nk, BWD_ATOL, BWD_RTOL);
    bad += compare_f("dv flash/std", rf.dv, rs.dv, in.nv, BWD_ATOL, BWD_RTOL);
    if (bad)
      fprintf(stderr, "  ^ %s on %s\n", what, where);
    failures += bad;
    result_free(&rf);
    result_free(&rs);
    for (int i = 0; i < 3; i++)
      free(g0[i]);
    inputs_free(&in);
  }
  return failures;
}

static void test_flash_equals_standard_cpu(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  size_t failures = flash_vs_standard(cpu, "cpu", cases, VKFT_ARRAY_LEN(cases));
  vkft_destroy(cpu);
  assert_int_equal(failures, 0);
}

/* The CPU backend's results do not depend on its thread count: bit for bit. */
static void test_flash_cpu_thread_independence(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  const uint32_t threads[3] = {1, 3, 4};
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(cases); ci += 3) {
    const acase *c = &cases[ci];
    inputs in;
    inputs_make(c, 400 + ci, &in);
    result r[4] = {{0}};
    CHECK(cpu, vkf_context_set_threads(cpu, 2));
    run_case(cpu, c, &in, FLASH, 1, NULL, &r[0]);
    for (int t = 0; t < 3; t++) {
      CHECK(cpu, vkf_context_set_threads(cpu, threads[t]));
      run_case(cpu, c, &in, FLASH, 1, NULL, &r[t + 1]);
      assert_memory_equal(r[0].out, r[t + 1].out, in.no * sizeof(float));
      assert_memory_equal(r[0].lse, r[t + 1].lse, in.nl * sizeof(float));
      assert_memory_equal(r[0].dq, r[t + 1].dq, in.nq * sizeof(float));
      assert_memory_equal(r[0].dk, r[t + 1].dk, in.nk * sizeof(float));
      assert_memory_equal(r[0].dv, r[t + 1].dv, in.nv * sizeof(float));
    }
    for (int t = 0; t < 4; t++)
      result_free(&r[t]);
    inputs_free(&in);
  }
  vkft_destroy(cpu);
}

/* ------------------------------------------------------------------------ */
/* 2. Vulkan against the CPU backend                                         */
/* ------------------------------------------------------------------------ */
static void test_flash_vulkan_vs_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(vk_cases); ci++) {
    const acase *c = &vk_cases[ci];
    inputs in;
    inputs_make(c, 500 + ci, &in);
    vkft_rng rng = vkft_rng_seed(600 + ci);
    float *g0[3] = {vkft_alloc(in.nq), vkft_alloc(in.nk), vkft_alloc(in.nv)};
    size_t n[3] = {in.nq, in.nk, in.nv};
    for (int i = 0; i < 3; i++)
      vkft_fill_uniform(&rng, g0[i], n[i], -1, 1);
    result rv = {0}, rc = {0};
    run_case(vk, c, &in, FLASH, 1, (const float *const *)g0, &rv);
    run_case(cpu, c, &in, FLASH, 1, (const float *const *)g0, &rc);
    char what[256];
    case_name(c, ci, what, sizeof(what));
    size_t bad = compare_f("out vk/cpu", rv.out, rc.out, in.no, FWD_ATOL, FWD_RTOL);
    bad += compare_f("lse vk/cpu", rv.lse, rc.lse, in.nl, LSE_ATOL, LSE_RTOL);
    bad += compare_f("dq vk/cpu", rv.dq, rc.dq, in.nq, BWD_ATOL, BWD_RTOL);
    bad += compare_f("dk vk/cpu", rv.dk, rc.dk, in.nk, BWD_ATOL, BWD_RTOL);
    bad += compare_f("dv vk/cpu", rv.dv, rc.dv, in.nv, BWD_ATOL, BWD_RTOL);
    if (bad)
      fprintf(stderr, "  ^ %s\n", what);
    failures += bad;
    result_free(&rv);
    result_free(&rc);
    for (int i = 0; i < 3; i++)
      free(g0[i]);
    inputs_free(&in);
  }
  vkft_destroy(cpu);
  vkft_destroy(vk);
  assert_int_equal(failures, 0);
}

/* Flash and standard on the same inputs on the Vulkan device: a few cases
 * (the rest follows from both matching the CPU backend). */
static void test_flash_equals_standard_vulkan(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  const acase list[] = {vk_cases[2], vk_cases[4], vk_cases[12], vk_cases[15], vk_cases[21]};
  size_t failures = flash_vs_standard(vk, "vulkan", list, VKFT_ARRAY_LEN(list));
  vkft_destroy(vk);
  assert_int_equal(failures, 0);
}

/* The GPU configuration (64 invocations of one row, staged rows in 32-bit
 * words) on this device, through VKF_FLASH_VK_CONFIG=gpu: a few cases. */
static void test_flash_vulkan_gpu_config_vs_cpu(void **state) {
  (void)state;
  setenv("VKF_FLASH_VK_CONFIG", "gpu", 1);
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  static const size_t picks[] = {0, 3, 4, 6, 12, 13, 15, 21, 22, 24};
  size_t failures = 0;
  for (size_t pi = 0; pi < VKFT_ARRAY_LEN(picks); pi++) {
    const size_t ci = picks[pi];
    const acase *c = &vk_cases[ci];
    inputs in;
    inputs_make(c, 1200 + ci, &in);
    result rv = {0}, rc = {0};
    run_case(vk, c, &in, FLASH, 1, NULL, &rv);
    run_case(cpu, c, &in, FLASH, 1, NULL, &rc);
    char what[256];
    case_name(c, ci, what, sizeof(what));
    size_t bad = compare_f("out gpu-config/cpu", rv.out, rc.out, in.no, FWD_ATOL, FWD_RTOL);
    bad += compare_f("lse gpu-config/cpu", rv.lse, rc.lse, in.nl, LSE_ATOL, LSE_RTOL);
    bad += compare_f("dq gpu-config/cpu", rv.dq, rc.dq, in.nq, BWD_ATOL, BWD_RTOL);
    bad += compare_f("dk gpu-config/cpu", rv.dk, rc.dk, in.nk, BWD_ATOL, BWD_RTOL);
    bad += compare_f("dv gpu-config/cpu", rv.dv, rc.dv, in.nv, BWD_ATOL, BWD_RTOL);
    if (bad)
      fprintf(stderr, "  ^ %s (GPU configuration)\n", what);
    failures += bad;
    result_free(&rv);
    result_free(&rc);
    inputs_free(&in);
  }
  vkft_destroy(cpu);
  vkft_destroy(vk);
  unsetenv("VKF_FLASH_VK_CONFIG");
  assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------------ */
/* 3. Sliding windows touch only the window                                 */
/* ------------------------------------------------------------------------ */
/* Keys no query can see are NaN: a kernel that reads one (even to multiply
 * it by a zero probability) turns its row into NaN. Self-attention of T
 * tokens with window W gives row i the keys [i - W + 1, i]; with Tq = 1
 * decoding at the end of a long cache only the last W keys are visible. The
 * results must equal the reference computed on clean inputs, and the
 * gradients of the unseen keys must stay 0. */
static size_t poisoned_window(vkf_context *ctx, const acase *c, uint64_t seed) {
  inputs in;
  inputs_make(c, seed, &in);
  /* the keys before the first visible one of the first query */
  int64_t first = (int64_t)c->Tk - c->Tq - (int64_t)c->window + 1;
  double *q = to_double(in.q, in.nq), *k = to_double(in.k, in.nk), *v = to_double(in.v, in.nv);
  double *out = vkft_alloc_d(in.no), *lse = vkft_alloc_d(in.nl);
  ref_forward(c, &in, q, k, v, out, NULL, NULL, lse);
  const bool kb = c->flags & KVBHTD;
  for (uint32_t b = 0; b < c->B; b++)
    for (uint32_t hk = 0; hk < c->Hkv; hk++)
      for (int64_t j = 0; j < first; j++) {
        for (uint32_t e = 0; e < c->D; e++)
          in.k[at(kb, c->Tk, c->Hkv, c->D, b, (uint32_t)j, hk, e)] = NAN;
        for (uint32_t e = 0; e < c->Dv; e++)
          in.v[at(kb, c->Tk, c->Hkv, c->Dv, b, (uint32_t)j, hk, e)] = NAN;
      }
  result r = {0};
  run_case(ctx, c, &in, FLASH, 1, NULL, &r);
  size_t bad = compare("out (poisoned)", r.out, out, in.no, FWD_ATOL, FWD_RTOL);
  bad += compare_inf("lse (poisoned)", r.lse, lse, in.nl, LSE_ATOL, LSE_RTOL);
  size_t bad_dq = 0, bad_dk = 0;
  for (size_t i = 0; i < in.nq; i++)
    bad_dq += isfinite(r.dq[i]) ? 0 : 1;
  for (uint32_t b = 0; b < c->B; b++)
    for (uint32_t hk = 0; hk < c->Hkv; hk++)
      for (uint32_t j = 0; j < c->Tk; j++)
        for (uint32_t e = 0; e < c->D; e++) {
          float g = r.dk[at(kb, c->Tk, c->Hkv, c->D, b, j, hk, e)];
          bad_dk += ((int64_t)j < first ? g != 0.0f : !isfinite(g)) ? 1 : 0;
        }
  if (bad_dq || bad_dk)
    fprintf(stderr,
            "  %zu elements of dq not finite; %zu of dk wrong (not 0 outside the window, "
            "or not finite)\n",
            bad_dq, bad_dk);
  bad += bad_dq + bad_dk;
  if (bad)
    fprintf(stderr, "  ^ poisoned window case B%u Tq%u Tk%u W%u\n", c->B, c->Tq, c->Tk, c->window);
  result_free(&r);
  free(q), free(k), free(v), free(out), free(lse);
  inputs_free(&in);
  return bad;
}

static const acase window_cases[] = {
    /* decoding: one query at the end of 700 keys, window 5 */
    {2, 1, 700, 4, 2, 32, 32, CAUSAL, 0, 0, 5, 0, 0, MASK_NONE, 0, 0},
    /* four queries at the end of 300 keys, window 1 */
    {1, 4, 300, 2, 1, 64, 64, 0, 0, 0, 1, 0, 0, MASK_NONE, 0, 0},
    /* 70 queries at the end of 500 keys, window 70 */
    {1, 70, 500, 2, 2, 32, 32, CAUSAL | QBHTD, 0, 0, 70, 0, 0, MASK_NONE, 0, 0},
};

static void test_flash_window_reads_only_the_window(void **state) {
  (void)state;
  size_t bad = 0;
  vkf_context *cpu = vkft_cpu();
  for (size_t i = 0; i < VKFT_ARRAY_LEN(window_cases); i++)
    bad += poisoned_window(cpu, &window_cases[i], 1000 + i);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  for (size_t i = 0; i < VKFT_ARRAY_LEN(window_cases); i++)
    bad += poisoned_window(vk, &window_cases[i], 1100 + i);
  vkft_destroy(vk);
  assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------------ */
/* 4. Accumulation (the backward adds into the gradients)                    */
/* ------------------------------------------------------------------------ */
static void accumulation(vkf_context *ctx) {
  static const acase c = {2, 17, 17, 4, 2, 32, 32, CAUSAL, 0, 3.0f, 0, 0, 0, MASK_2D, 1, 0};
  inputs in;
  inputs_make(&c, 700, &in);
  vkft_rng rng = vkft_rng_seed(701);
  float *g0[3] = {vkft_alloc(in.nq), vkft_alloc(in.nk), vkft_alloc(in.nv)};
  size_t n[3] = {in.nq, in.nk, in.nv};
  for (int i = 0; i < 3; i++)
    vkft_fill_uniform(&rng, g0[i], n[i], -1, 1);
  result once = {0}, twice = {0};
  run_case(ctx, &c, &in, FLASH, 1, NULL, &once);
  run_case(ctx, &c, &in, FLASH, 2, (const float *const *)g0, &twice);
  const float *g1[3] = {once.dq, once.dk, once.dv}, *g2[3] = {twice.dq, twice.dk, twice.dv};
  const char *names[3] = {"dq", "dk", "dv"};
  size_t bad = 0;
  for (int i = 0; i < 3; i++) {
    double *want = vkft_alloc_d(n[i]);
    double mag = 0;
    for (size_t e = 0; e < n[i]; e++) {
      want[e] = (double)g0[i][e] + 2.0 * g1[i][e];
      mag += fabs(g1[i][e]);
    }
    assert_true(mag > 1e-3 * (double)n[i]); /* the gradients are not trivially zero */
    bad += vkft_compare(names[i], g2[i], want, n[i], BWD_ATOL, BWD_RTOL);
    free(want);
  }
  result_free(&once);
  result_free(&twice);
  for (int i = 0; i < 3; i++)
    free(g0[i]);
  inputs_free(&in);
  assert_int_equal(bad, 0);
}

static void test_flash_accumulation(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  accumulation(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  accumulation(vk);
  vkft_destroy(vk);
}

/* ------------------------------------------------------------------------ */
/* 5. Error statuses of the flash variant                                    */
/* ------------------------------------------------------------------------ */
static void expect(vkf_context *ctx, vkf_status got, vkf_status want, const char *what) {
  if (got != want)
    fail_msg("%s: got %s, expected %s (%s)", what, vkf_status_name(got), vkf_status_name(want),
             vkf_context_error(ctx));
  if (want != VKF_OK && strlen(vkf_context_error(ctx)) == 0)
    fail_msg("%s: no error message", what);
}

static vkf_tensor t4(vkf_context *ctx, int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t s[4] = {a, b, c, d};
  return vkft_tensor(ctx, 4, s);
}

static void error_cases(vkf_context *ctx) {
  /* B 2, T 5, Hq 4, Hkv 2, D 8 */
  vkf_tensor q = t4(ctx, 2, 5, 4, 8), k = t4(ctx, 2, 5, 2, 8), v = t4(ctx, 2, 5, 2, 8);
  vkf_tensor out = t4(ctx, 2, 5, 4, 8), dout = t4(ctx, 2, 5, 4, 8), P = t4(ctx, 2, 4, 5, 5);
  vkf_tensor dq = t4(ctx, 2, 5, 4, 8), dk = t4(ctx, 2, 5, 2, 8), dv = t4(ctx, 2, 5, 2, 8);
  vkf_tensor outbad = t4(ctx, 2, 5, 4, 7);
  int64_t sl[3] = {2, 4, 5}, slb[3] = {2, 4, 6}, sw[1] = {2 * 2 * 4 * 5 + 2}, sws[1] = {sw[0] - 1};
  vkf_tensor lse = vkft_tensor(ctx, 3, sl), lsebad = vkft_tensor(ctx, 3, slb);
  vkf_tensor ws = vkft_tensor(ctx, 1, sw), wsmall = vkft_tensor(ctx, 1, sws);
  vkf_tensor all[] = {q, k, v, out, dout, dq, dk, dv};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    CHECK(ctx, vkf_tensor_fill(ctx, all[i], 0.25f));

  vkf_attention_desc d = {.variant = FLASH, .flags = CAUSAL}, bad;
  vkf_attention_sizes sz;
  expect(ctx, vkf_attention_sizes_get(ctx, q, k, v, &d, &sz), VKF_OK, "sizes");
  assert_int_equal(sz.saved_ndim, 3);
  assert_int_equal(sz.workspace_elements, (uint64_t)sw[0]);
  expect(ctx, vkf_attention_forward(ctx, out, lse, q, k, v, &d), VKF_OK, "valid forward");
  d.out = out;
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, lse, ws, &d), VKF_OK,
         "valid backward");
  /* the forward ignores desc->out */
  expect(ctx, vkf_attention_forward(ctx, out, lse, q, k, v, &d), VKF_OK, "forward with out");

  /* saved must be the [B, Hq, Tq] statistics, not P */
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &d), VKF_ERROR_SHAPE_MISMATCH,
         "P as the flash saved");
  expect(ctx, vkf_attention_forward(ctx, out, lsebad, q, k, v, &d), VKF_ERROR_SHAPE_MISMATCH,
         "lse shape");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, lsebad, ws, &d),
         VKF_ERROR_SHAPE_MISMATCH, "backward lse shape");
  bad = d, bad.variant = STANDARD;
  expect(ctx, vkf_attention_forward(ctx, out, lse, q, k, v, &bad), VKF_ERROR_SHAPE_MISMATCH,
         "lse as the standard saved");
  /* logits are never formed */
  bad = d, bad.logits = P;
  expect(ctx, vkf_attention_forward(ctx, out, lse, q, k, v, &bad), VKF_ERROR_UNSUPPORTED,
         "flash logits");
  /* desc->out: required, out's shape, no overlap with the gradients */
  bad = d, bad.out = VKF_NO_TENSOR;
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, lse, ws, &bad),
         VKF_ERROR_INVALID_ARGUMENT, "no desc->out");
  bad = d, bad.out = outbad;
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, lse, ws, &bad),
         VKF_ERROR_SHAPE_MISMATCH, "desc->out shape");
  bad = d, bad.out = dq;
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, lse, ws, &bad),
         VKF_ERROR_INVALID_ARGUMENT, "desc->out is dq");
  bad = d, bad.out = P;
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, lse, ws, &bad),
         VKF_ERROR_SHAPE_MISMATCH, "desc->out not out's shape");
  vkf_tensor stale = t4(ctx, 2, 5, 4, 8);
  CHECK(ctx, vkf_tensor_destroy(ctx, stale));
  bad = d, bad.out = stale;
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, lse, ws, &bad),
         VKF_ERROR_STALE_HANDLE, "stale desc->out");
  /* workspace */
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, lse, wsmall, &d),
         VKF_ERROR_BUFFER_TOO_SMALL, "workspace too small");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, lse, out, &d),
         VKF_ERROR_INVALID_ARGUMENT, "workspace is desc->out");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, lse, dout, &d),
         VKF_ERROR_INVALID_ARGUMENT, "workspace is dout");
  bad = d, bad.variant = (vkf_attention_variant)2;
  expect(ctx, vkf_attention_forward(ctx, out, lse, q, k, v, &bad), VKF_ERROR_INVALID_ARGUMENT,
         "unknown variant");
  CHECK(ctx, vkf_synchronize(ctx));
  vkf_tensor rest[] = {q, k, v, out, dout, P, dq, dk, dv, outbad, lse, lsebad, ws, wsmall};
  vkf_memory_stats ms;
  CHECK(ctx, vkf_memory_stats_get(ctx, &ms));
  assert_int_equal(ms.tensors, VKFT_ARRAY_LEN(rest));
  for (size_t i = 0; i < VKFT_ARRAY_LEN(rest); i++)
    CHECK(ctx, vkf_tensor_destroy(ctx, rest[i]));
}

static void test_flash_errors(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  error_cases(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  error_cases(vk);
  /* the Vulkan kernels keep a head in registers: at most 256 elements */
  vkf_tensor q = t4(vk, 1, 3, 1, 260), k = t4(vk, 1, 3, 1, 260), v = t4(vk, 1, 3, 1, 8);
  vkf_tensor out = t4(vk, 1, 3, 1, 8);
  int64_t sl[3] = {1, 1, 3};
  vkf_tensor lse = vkft_tensor(vk, 3, sl);
  vkf_attention_desc d = {.variant = FLASH};
  expect(vk, vkf_attention_forward(vk, out, lse, q, k, v, &d), VKF_ERROR_UNSUPPORTED,
         "Vulkan D > 256");
  vkf_tensor rest[] = {q, k, v, out, lse};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(rest); i++)
    CHECK(vk, vkf_tensor_destroy(vk, rest[i]));
  vkft_destroy(vk);
}

/* ------------------------------------------------------------------------ */
/* 6. The GPT graph: configurations select the variant                      */
/* ------------------------------------------------------------------------ */
static vkf_gpt_config tiny_config(vkf_attn_kind kind, uint32_t window) {
  return (vkf_gpt_config){.vocab_size = 64,
                          .context_length = 4096,
                          .d_model = 32,
                          .n_layer = 2,
                          .n_head = 4,
                          .n_kv_head = 2,
                          .norm = VKF_NORM_RMSNORM,
                          .mlp = VKF_MLP_SWIGLU,
                          .positions = VKF_POS_ROPE,
                          .attention = kind,
                          .sliding_window = window};
}

/* One training step of a model made from seed 11 on tokens from seed 12:
 * its loss and flat gradients (n floats). */
static float *train_step(vkf_context *ctx, vkf_gpt_config cfg, uint32_t B, uint32_t T, float *loss,
                         uint64_t *n) {
  vkf_gpt *m = NULL;
  CHECK(ctx, vkf_gpt_create(ctx, &cfg, 11, &m));
  vkf_train_desc d = {.batch = B, .seq_len = T, .lr = 1e-3f, .schedule = VKF_LR_CONSTANT};
  vkf_trainer *t = NULL;
  CHECK(ctx, vkf_trainer_create(m, &d, &t));
  int32_t *in = malloc(2 * B * T * sizeof(int32_t));
  assert_non_null(in);
  vkft_rng rng = vkft_rng_seed(12);
  for (uint32_t i = 0; i < 2 * B * T; i++)
    in[i] = (int32_t)(vkft_uniform(&rng, 0, 1) * (float)cfg.vocab_size) % (int32_t)cfg.vocab_size;
  vkf_step_info info;
  CHECK(ctx, vkf_trainer_step(t, in, in + B * T, &info));
  *loss = info.loss;
  *n = vkf_gpt_flat_size(m);
  float *g = vkft_alloc(*n);
  CHECK(ctx, vkf_trainer_read_grads(t, g, *n));
  free(in);
  vkf_trainer_destroy(t);
  vkf_gpt_destroy(m);
  return g;
}

/* Flash and sliding-window configurations train like the standard one: the
 * same loss and gradients (to rounding) on the same data; a window of at
 * least T is no window (bit for bit); a short one changes the result. */
static void test_flash_gpt_training_step(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  const uint32_t B = 2, T = 40;
  float l_std, l_flash, l_wide, l_narrow;
  uint64_t n;
  float *g_std = train_step(cpu, tiny_config(VKF_ATTN_STANDARD, 0), B, T, &l_std, &n);
  float *g_flash = train_step(cpu, tiny_config(VKF_ATTN_FLASH, 0), B, T, &l_flash, &n);
  float *g_wide = train_step(cpu, tiny_config(VKF_ATTN_SLIDING, T), B, T, &l_wide, &n);
  float *g_narrow = train_step(cpu, tiny_config(VKF_ATTN_SLIDING, 5), B, T, &l_narrow, &n);
  double *ref = to_double(g_std, n);
  assert_true(fabsf(l_flash - l_std) <= 1e-5f * fabsf(l_std));
  assert_int_equal(compare("gpt grads flash/std", g_flash, ref, n, 1e-7, 1e-4), 0);
  assert_true(l_wide == l_flash);
  assert_memory_equal(g_wide, g_flash, n * sizeof(float));
  assert_true(fabsf(l_narrow - l_flash) > 1e-4f); /* the window is applied */
  free(ref);
  free(g_std), free(g_flash), free(g_wide), free(g_narrow);
  /* the same step on Vulkan */
  vkf_context *vk = vkft_vulkan();
  float l_vk;
  float *g_vk = train_step(vk, tiny_config(VKF_ATTN_SLIDING, 7), B, T, &l_vk, &n);
  float l_c;
  float *g_c = train_step(cpu, tiny_config(VKF_ATTN_SLIDING, 7), B, T, &l_c, &n);
  assert_true(fabsf(l_vk - l_c) <= 1e-5f * fabsf(l_c));
  ref = to_double(g_c, n);
  assert_int_equal(compare("gpt grads vk/cpu", g_vk, ref, n, 1e-7, 1e-4), 0);
  free(ref);
  free(g_vk), free(g_c);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* The planner's peak memory of a training step: linear in T for the flash and
 * sliding-window configurations (equal increments per added T), quadratic for
 * the standard one (the increments grow about fourfold as T doubles). */
static void test_flash_gpt_memory_linear(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  const vkf_attn_kind kinds[3] = {VKF_ATTN_STANDARD, VKF_ATTN_FLASH, VKF_ATTN_SLIDING};
  for (int kind = 0; kind < 3; kind++) {
    double total[3];
    for (int i = 0; i < 3; i++) {
      vkf_gpt_config cfg = tiny_config(kinds[kind], 64);
      vkf_gpt *m = NULL;
      CHECK(cpu, vkf_gpt_create(cpu, &cfg, 1, &m));
      vkf_train_desc d = {.batch = 1, .seq_len = 256u << i, .schedule = VKF_LR_CONSTANT};
      vkf_trainer *t = NULL;
      CHECK(cpu, vkf_trainer_create(m, &d, &t));
      vkf_train_memory mem;
      CHECK(cpu, vkf_trainer_memory(t, &mem));
      total[i] = (double)mem.total;
      vkf_trainer_destroy(t);
      vkf_gpt_destroy(m);
    }
    double growth = (total[2] - total[1]) / (total[1] - total[0]);
    if (getenv("VKF_TEST_VERBOSE"))
      fprintf(stderr, "  attention kind %d: %.0f, %.0f, %.0f bytes at T 256, 512, 1024 (%.2f)\n",
              kind, total[0], total[1], total[2], growth);
    if (kinds[kind] == VKF_ATTN_STANDARD)
      assert_true(growth > 3.0);
    else
      assert_true(growth > 1.9 && growth < 2.1);
  }
  vkft_destroy(cpu);
}

int main(int argc, char **argv) {
  if (argc > 1) /* a test name pattern, e.g. "*window*" */
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flash_cpu_forward_vs_reference),
      cmocka_unit_test(test_flash_cpu_backward_vs_finite_differences),
      cmocka_unit_test(test_flash_equals_standard_cpu),
      cmocka_unit_test(test_flash_cpu_thread_independence),
      cmocka_unit_test(test_flash_vulkan_vs_cpu),
      cmocka_unit_test(test_flash_vulkan_gpu_config_vs_cpu),
      cmocka_unit_test(test_flash_equals_standard_vulkan),
      cmocka_unit_test(test_flash_window_reads_only_the_window),
      cmocka_unit_test(test_flash_accumulation),
      cmocka_unit_test(test_flash_errors),
      cmocka_unit_test(test_flash_gpt_training_step),
      cmocka_unit_test(test_flash_gpt_memory_linear),
  };
  return cmocka_run_group_tests_name("attn_flash", tests, NULL, NULL);
}
