/* attention: CPU forward against a double-precision reference written with
 * explicit loops and an explicit visibility mask; CPU backward against
 * central finite differences of that reference; Vulkan against the CPU
 * backend on awkward shapes; accumulation; thread-count independence; every
 * error status.
 *
 * Tolerances (element-wise |got - ref| <= atol + rtol * |ref|), set about ten
 * times above the worst error measured here (CPU with OpenBLAS and with the
 * portable loops, Vulkan on lavapipe):
 * - forward (out, P, logits), CPU vs double and Vulkan vs CPU: atol 1e-5,
 *   rtol 1e-4 (worst seen 9e-7). Inputs are U(-1, 1); scores are fp32 dot
 *   products of length D <= 128, up to ~10 with scale 1; their rounding and
 *   the softmax's give errors of a few 1e-7; an indexing or masking bug gives
 *   errors of order 1e-2..1.
 * - backward, CPU vs central finite differences of the double reference
 *   (step 1e-4: truncation ~1e-9): atol 1e-5, rtol 1e-4 (worst seen 1.5e-7 on
 *   these small shapes).
 * - backward, Vulkan vs CPU: atol 3e-5, rtol 3e-4 (worst seen 2.4e-6): both
 *   fp32, with different summation orders over up to 100 keys and 4 heads of
 *   a group, the cancellation in dP - rowsum(dP * P), and initial gradients
 *   of size 1 added. */
#include "attn_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Awkward shapes: lengths 1, 3, 17, 63, 100 (not multiples of any tile),
 * decoding (Tq < Tk), Tq > Tk, head sizes 8..128 with D != Dv, groups of 1,
 * 2, 4 query heads per kv head and MQA, both layouts, every mask kind. */
static const acase cases[] = {
    /* B Tq Tk Hq Hkv D Dv flags scale softcap window align ofs mask kvl logits */
    {1, 1, 1, 1, 1, 32, 32, 0, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 3, 3, 2, 1, 32, 32, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 1},
    {1, 17, 17, 4, 2, 64, 64, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 63, 63, 4, 1, 32, 32, 0, 0, 0, 0, 0, 0, MASK_2D, 0, 0},
    {1, 100, 100, 2, 2, 32, 32, CAUSAL, 0, 5.0f, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 100, 100, 4, 1, 16, 16, CAUSAL, 0, 0, 17, 0, 0, MASK_NONE, 0, 1},
    {2, 1, 63, 4, 2, 64, 64, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 17, 100, 4, 4, 32, 32, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 1, 0},
    {1, 3, 17, 2, 1, 80, 80, CAUSAL, 0, 0, 0, TL, 0, MASK_NONE, 0, 0},
    {1, 17, 3, 2, 2, 128, 128, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 1},
    {2, 17, 17, 4, 1, 128, 128, 0, 0, 2.0f, 0, 0, 0, MASK_BH, 0, 1},
    {1, 63, 63, 2, 1, 80, 80, CAUSAL | QBHTD | KVBHTD, 0.3f, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 17, 33, 3, 3, 8, 10, 0, 0, 0, 0, 0, 0, MASK_SHORT, 1, 1},
    {1, 63, 100, 4, 2, 32, 16, CAUSAL, 0, 0, 30, OFS, 20, MASK_B1, 1, 0},
    {2, 100, 17, 1, 1, 64, 64, 0, 0, 0, 0, 0, 0, MASK_ROW, 0, 0},
    {1, 64, 64, 8, 2, 32, 32, CAUSAL | KVBHTD, 0, 0, 0, 0, 0, MASK_H3, 0, 0},
    {1, 33, 65, 2, 1, 32, 24, CAUSAL | QBHTD, 0, 1.0f, 9, OFS, -5, MASK_NONE, 0, 1},
    /* scale 1 at D 64: logits up to ~10, peaked rows */
    {2, 63, 63, 2, 1, 64, 64, CAUSAL, 1.0f, 0, 0, 0, 0, MASK_NONE, 1, 0},
    /* lengths and head sizes multiples of 4, no mask, kv_lens, softcap or
     * logits: on CPU Vulkan devices the texel-read path (products as
     * matmul_tex, row kernels one invocation per row), with groups, D != Dv,
     * both layouts, Tq < Tk, Tq > Tk (rows with no visible key), windows and
     * every alignment */
    {2, 32, 32, 4, 2, 16, 24, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 20, 44, 3, 3, 8, 12, CAUSAL | QBHTD, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {2, 36, 12, 2, 1, 32, 32, KVBHTD, 0.3f, 0, 0, TL, 0, MASK_NONE, 0, 0},
    {1, 12, 4, 2, 2, 8, 8, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
    {1, 64, 68, 4, 1, 32, 32, CAUSAL | QBHTD | KVBHTD, 0, 0, 9, OFS, -4, MASK_NONE, 0, 0},
    /* B * Hq beyond the 65535 workgroups of a grid dimension: split dispatches */
    {40000, 1, 3, 2, 1, 4, 4, CAUSAL, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
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
    /* at least 8 query rows: the CPU's packed path (blocks of 36 rows, 36 keys) */
    {1, 9, 9, 2, 1, 4, 3, CAUSAL, 0, 1.5f, 4, 0, 0, MASK_NONE, 0, 0},
    {2, 8, 11, 2, 2, 3, 5, KVBHTD, 0, 0, 0, 0, 0, MASK_2D, 1, 0},
    {1, 40, 40, 1, 1, 2, 2, CAUSAL | QBHTD, 0, 0, 0, 0, 0, MASK_NONE, 0, 0},
};

/* ------------------------------------------------------------------------ */
/* Running a case on a context                                              */
/* ------------------------------------------------------------------------ */
typedef struct result {
  float *out, *P, *logits, *dq, *dk, *dv;
} result;

static void result_free(result *r) {
  free(r->out);
  free(r->P);
  free(r->logits);
  free(r->dq);
  free(r->dk);
  free(r->dv);
  memset(r, 0, sizeof(*r));
}

static vkf_attention_desc desc_of(const acase *c) {
  vkf_attention_desc d = {.flags = c->flags,
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
 * gradients that start at g0 (q, k, v order; NULL: zeros). The workspace is
 * exactly as large as vkf_attention_sizes_get says, or (big_ws) larger and
 * 2-D, and filled with NaN first: the backward must not read what it did not
 * write. */
static void run_case(vkf_context *ctx, const acase *c, const inputs *in, int backward,
                     const float *const g0[3], bool big_ws, result *r) {
  const bool qb = c->flags & QBHTD, kb = c->flags & KVBHTD;
  int64_t sq[4], sk[4], sv[4], so[4], sp[4] = {c->B, c->Hq, c->Tq, c->Tk}, s1[1] = {c->B};
  make_shape(qb, c->B, c->Tq, c->Hq, c->D, sq);
  make_shape(kb, c->B, c->Tk, c->Hkv, c->D, sk);
  make_shape(kb, c->B, c->Tk, c->Hkv, c->Dv, sv);
  make_shape(qb, c->B, c->Tq, c->Hq, c->Dv, so);
  vkf_tensor q = vkft_tensor_from(ctx, 4, sq, in->q), k = vkft_tensor_from(ctx, 4, sk, in->k);
  vkf_tensor v = vkft_tensor_from(ctx, 4, sv, in->v), out = vkft_tensor(ctx, 4, so);
  vkf_tensor P = vkft_tensor(ctx, 4, sp);
  vkf_attention_desc d = desc_of(c);
  if (in->mask)
    d.mask = vkft_tensor_from(ctx, in->mndim, in->mshape, in->mask);
  if (c->kv_lens) {
    CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_I32, 1, s1, &d.kv_lens));
    CHECK(ctx, vkf_tensor_write(ctx, d.kv_lens, in->kvl, c->B * sizeof(int32_t)));
  }
  if (c->logits)
    d.logits = vkft_tensor(ctx, 4, sp);
  vkf_attention_sizes sizes;
  CHECK(ctx, vkf_attention_sizes_get(ctx, q, k, v, &d, &sizes));
  assert_int_equal(sizes.saved_ndim, 4);
  assert_memory_equal(sizes.saved_shape, sp, sizeof(sp));
  assert_int_equal(sizes.workspace_elements, in->np * (c->softcap > 0 ? 2 : 1));
  /* every element of the outputs must be written: start them at NaN */
  CHECK(ctx, vkf_tensor_fill(ctx, out, NAN));
  CHECK(ctx, vkf_tensor_fill(ctx, P, NAN));
  if (c->logits)
    CHECK(ctx, vkf_tensor_fill(ctx, d.logits, NAN));
  CHECK(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &d));
  r->out = vkft_alloc(in->no);
  r->P = vkft_alloc(in->np);
  vkft_read(ctx, out, r->out, in->no);
  vkft_read(ctx, P, r->P, in->np);
  if (c->logits) {
    r->logits = vkft_alloc(in->np);
    vkft_read(ctx, d.logits, r->logits, in->np);
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
    int64_t sw[2] = {(int64_t)sizes.workspace_elements + (big_ws ? 5 : 0), 1};
    if (big_ws)
      sw[0] = (int64_t)sizes.workspace_elements / 2 + 3, sw[1] = 2;
    vkf_tensor ws = vkft_tensor(ctx, 2, sw);
    CHECK(ctx, vkf_tensor_fill(ctx, ws, NAN));
    for (int t = 0; t < backward; t++)
      CHECK(ctx, vkf_attention_backward(ctx, g[0], g[1], g[2], dout, q, k, v, P, ws, &d));
    float **dst[3] = {&r->dq, &r->dk, &r->dv};
    for (int i = 0; i < 3; i++) {
      *dst[i] = vkft_alloc(n[i]);
      vkft_read(ctx, g[i], *dst[i], n[i]);
      CHECK(ctx, vkf_tensor_destroy(ctx, g[i]));
    }
    CHECK(ctx, vkf_tensor_destroy(ctx, dout));
    CHECK(ctx, vkf_tensor_destroy(ctx, ws));
  }
  vkf_tensor all[] = {q, k, v, out, P, d.mask, d.kv_lens, d.logits};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    if (all[i].id)
      CHECK(ctx, vkf_tensor_destroy(ctx, all[i]));
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
  free(g);
  free(r);
  return bad;
}

static size_t compare_inf_f(const char *what, const float *got, const float *ref, size_t n,
                            double atol, double rtol) {
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
static const double FD_ATOL = 1e-5, FD_RTOL = 1e-4;
static const double BWD_ATOL = 3e-5, BWD_RTOL = 3e-4;

/* ------------------------------------------------------------------------ */
/* 1. CPU against the reference                                              */
/* ------------------------------------------------------------------------ */
static void forward_vs_reference(vkf_context *cpu) {
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(cases); ci++) {
    const acase *c = &cases[ci];
    inputs in;
    inputs_make(c, 100 + ci, &in);
    double *q = to_double(in.q, in.nq), *k = to_double(in.k, in.nk), *v = to_double(in.v, in.nv);
    double *out = vkft_alloc_d(in.no), *P = vkft_alloc_d(in.np), *lg = vkft_alloc_d(in.np);
    ref_forward(c, &in, q, k, v, out, P, lg, NULL);
    result r = {0};
    run_case(cpu, c, &in, 0, NULL, false, &r);
    char what[256];
    case_name(c, ci, what, sizeof(what));
    size_t bad = vkft_compare("out", r.out, out, in.no, FWD_ATOL, FWD_RTOL);
    bad += vkft_compare("P", r.P, P, in.np, FWD_ATOL, FWD_RTOL);
    if (c->logits)
      bad += compare_inf("logits", r.logits, lg, in.np, FWD_ATOL, FWD_RTOL);
    if (bad)
      fprintf(stderr, "  ^ %s\n", what);
    failures += bad;
    result_free(&r);
    free(q), free(k), free(v), free(out), free(P), free(lg);
    inputs_free(&in);
  }
  assert_int_equal(failures, 0);
}

static void test_attn_cpu_forward_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  forward_vs_reference(cpu);
  vkft_destroy(cpu);
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

static void test_attn_cpu_backward_vs_finite_differences(void **state) {
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
    result r = {0};
    run_case(cpu, c, &in, 1, (const float *const *)g0, ci % 2 == 0, &r);
    char what[256];
    case_name(c, ci, what, sizeof(what));
    size_t bad = vkft_compare("dq", r.dq, gq, in.nq, FD_ATOL, FD_RTOL);
    bad += vkft_compare("dk", r.dk, gk, in.nk, FD_ATOL, FD_RTOL);
    bad += vkft_compare("dv", r.dv, gv, in.nv, FD_ATOL, FD_RTOL);
    if (bad)
      fprintf(stderr, "  ^ %s\n", what);
    failures += bad;
    result_free(&r);
    for (int i = 0; i < 3; i++)
      free(g0[i]);
    free(q), free(k), free(v), free(gq), free(gk), free(gv);
    inputs_free(&in);
  }
  vkft_destroy(cpu);
  assert_int_equal(failures, 0);
}

/* The CPU backend's results do not depend on its thread count: bit for bit. */
static void test_attn_cpu_thread_independence(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  const uint32_t threads[3] = {1, 3, 4};
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(cases); ci += 3) {
    const acase *c = &cases[ci];
    inputs in;
    inputs_make(c, 400 + ci, &in);
    result r[4] = {{0}};
    CHECK(cpu, vkf_context_set_threads(cpu, 2));
    run_case(cpu, c, &in, 1, NULL, true, &r[0]);
    for (int t = 0; t < 3; t++) {
      CHECK(cpu, vkf_context_set_threads(cpu, threads[t]));
      run_case(cpu, c, &in, 1, NULL, true, &r[t + 1]);
      assert_memory_equal(r[0].out, r[t + 1].out, in.no * sizeof(float));
      assert_memory_equal(r[0].P, r[t + 1].P, in.np * sizeof(float));
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

/* The CPU's paths (VKF_CPU_GEMM: the packed kernels, or OpenBLAS / the
 * portable loops) against each other, forward and backward, on every case:
 * both fp32 with different blockings and summation orders, so the Vulkan vs
 * CPU bounds. */
static void test_attn_cpu_paths(void **state) {
  (void)state;
  static const char *const paths[] = {"avx512", "avx2"};
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(cases); ci++) {
    const acase *c = &cases[ci];
    inputs in;
    inputs_make(c, 500 + ci, &in);
    setenv("VKF_CPU_GEMM", "blas", 1);
    vkf_context *cpu = vkft_cpu();
    result want = {0};
    run_case(cpu, c, &in, 1, NULL, true, &want);
    vkft_destroy(cpu);
    for (size_t pi = 0; pi < VKFT_ARRAY_LEN(paths); pi++) {
      setenv("VKF_CPU_GEMM", paths[pi], 1);
      cpu = vkft_cpu();
      result r = {0};
      run_case(cpu, c, &in, 1, NULL, true, &r);
      size_t bad = vkft_compare_f("out", r.out, want.out, in.no, FWD_ATOL, FWD_RTOL);
      bad += vkft_compare_f("P", r.P, want.P, in.np, FWD_ATOL, FWD_RTOL);
      bad += vkft_compare_f("dq", r.dq, want.dq, in.nq, BWD_ATOL, BWD_RTOL);
      bad += vkft_compare_f("dk", r.dk, want.dk, in.nk, BWD_ATOL, BWD_RTOL);
      bad += vkft_compare_f("dv", r.dv, want.dv, in.nv, BWD_ATOL, BWD_RTOL);
      if (bad) {
        char what[256];
        case_name(c, ci, what, sizeof(what));
        fprintf(stderr, "  ^ %s, VKF_CPU_GEMM=%s against blas\n", what, paths[pi]);
      }
      failures += bad;
      result_free(&r);
      vkft_destroy(cpu);
    }
    result_free(&want);
    inputs_free(&in);
  }
  unsetenv("VKF_CPU_GEMM");
  assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------------ */
/* 2. Vulkan against the CPU backend                                         */
/* ------------------------------------------------------------------------ */
static void test_attn_vulkan_vs_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(cases); ci++) {
    const acase *c = &cases[ci];
    inputs in;
    inputs_make(c, 500 + ci, &in);
    vkft_rng rng = vkft_rng_seed(600 + ci);
    float *g0[3] = {vkft_alloc(in.nq), vkft_alloc(in.nk), vkft_alloc(in.nv)};
    size_t n[3] = {in.nq, in.nk, in.nv};
    for (int i = 0; i < 3; i++)
      vkft_fill_uniform(&rng, g0[i], n[i], -1, 1);
    result rv = {0}, rc = {0};
    run_case(vk, c, &in, 1, (const float *const *)g0, ci % 2 == 1, &rv);
    run_case(cpu, c, &in, 1, (const float *const *)g0, ci % 2 == 1, &rc);
    char what[256];
    case_name(c, ci, what, sizeof(what));
    size_t bad = vkft_compare_f("out", rv.out, rc.out, in.no, FWD_ATOL, FWD_RTOL);
    bad += vkft_compare_f("P", rv.P, rc.P, in.np, FWD_ATOL, FWD_RTOL);
    if (c->logits)
      bad += compare_inf_f("logits", rv.logits, rc.logits, in.np, FWD_ATOL, FWD_RTOL);
    bad += vkft_compare_f("dq", rv.dq, rc.dq, in.nq, BWD_ATOL, BWD_RTOL);
    bad += vkft_compare_f("dk", rv.dk, rc.dk, in.nk, BWD_ATOL, BWD_RTOL);
    bad += vkft_compare_f("dv", rv.dv, rc.dv, in.nv, BWD_ATOL, BWD_RTOL);
    if (bad)
      fprintf(stderr, "  ^ %s\n", what);
    failures += bad;
    result_free(&rv);
    result_free(&rc);
    for (int i = 0; i < 3; i++)
      free(g0[i]);
    inputs_free(&in);
  }
  vkft_destroy(vk);
  vkft_destroy(cpu);
  assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------------ */
/* 3. Accumulation: two backwards into non-zero gradients G0 give            */
/*    G0 + 2 * (the gradients from zero)                                      */
/* ------------------------------------------------------------------------ */
static void accumulation(vkf_context *ctx) {
  static const acase c = {2, 17, 17, 4, 2, 32, 16, CAUSAL, 0, 3.0f, 0, 0, 0, MASK_2D, 1, 0};
  inputs in;
  inputs_make(&c, 700, &in);
  vkft_rng rng = vkft_rng_seed(701);
  float *g0[3] = {vkft_alloc(in.nq), vkft_alloc(in.nk), vkft_alloc(in.nv)};
  size_t n[3] = {in.nq, in.nk, in.nv};
  for (int i = 0; i < 3; i++)
    vkft_fill_uniform(&rng, g0[i], n[i], -1, 1);
  result once = {0}, twice = {0};
  run_case(ctx, &c, &in, 1, NULL, false, &once);
  run_case(ctx, &c, &in, 2, (const float *const *)g0, true, &twice);
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

static void test_attn_accumulation(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  accumulation(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  accumulation(vk);
  vkft_destroy(vk);
}

/* ------------------------------------------------------------------------ */
/* 4. Error statuses                                                         */
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
  vkf_tensor out = t4(ctx, 2, 5, 4, 8), P = t4(ctx, 2, 4, 5, 5), dout = t4(ctx, 2, 5, 4, 8);
  vkf_tensor dq = t4(ctx, 2, 5, 4, 8), dk = t4(ctx, 2, 5, 2, 8), dv = t4(ctx, 2, 5, 2, 8);
  vkf_tensor k3 = t4(ctx, 2, 5, 3, 8), v3 = t4(ctx, 2, 5, 3, 8), kd = t4(ctx, 2, 5, 2, 6);
  vkf_tensor vlen = t4(ctx, 2, 6, 2, 8), outbad = t4(ctx, 2, 5, 4, 7), Pbad = t4(ctx, 2, 4, 5, 6);
  int64_t s3[3] = {2, 5, 32}, s1[1] = {2}, s2[2] = {5, 5}, sbig[2] = {5, 6}, sm3[3] = {3, 5, 5};
  int64_t sws[1] = {2 * 4 * 5 * 5 - 1}, s1k[1] = {1000};
  vkf_tensor q3 = vkft_tensor(ctx, 3, s3), lensf = vkft_tensor(ctx, 1, s1);
  vkf_tensor mask = vkft_tensor(ctx, 2, s2), maskbig = vkft_tensor(ctx, 2, sbig);
  vkf_tensor mask3 = vkft_tensor(ctx, 3, sm3), wsmall = vkft_tensor(ctx, 1, sws);
  vkf_tensor big = vkft_tensor(ctx, 1, s1k), lens, qi, ws;
  int64_t s200[2] = {10, 20};
  ws = vkft_tensor(ctx, 2, s200);
  int64_t sq[4] = {2, 5, 4, 8};
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_I32, 1, s1, &lens));
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_I32, 4, sq, &qi));
  int32_t lv[2] = {3, 5};
  CHECK(ctx, vkf_tensor_write(ctx, lens, lv, sizeof(lv)));
  vkf_tensor all[] = {q, k, v, out, P, dout, dq, dk, dv};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    CHECK(ctx, vkf_tensor_fill(ctx, all[i], 0.25f));
  CHECK(ctx, vkf_tensor_fill(ctx, mask, 0.0f));
  /* views into one buffer, for aliasing */
  int64_t so[4] = {2, 5, 4, 8}, sp[4] = {2, 4, 5, 5};
  vkf_tensor view_o, view_p;
  CHECK(ctx, vkf_tensor_view(ctx, big, 0, 4, so, &view_o));
  CHECK(ctx, vkf_tensor_view(ctx, big, 100, 4, sp, &view_p)); /* overlaps view_o */

  vkf_attention_desc d = {.flags = CAUSAL}, bad;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &d), VKF_OK, "valid forward");
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, NULL), VKF_OK, "NULL desc");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, ws, &d), VKF_OK,
         "valid backward");
  assert_int_equal(vkf_attention_forward(NULL, out, P, q, k, v, &d), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_attention_backward(NULL, dq, dk, dv, dout, q, k, v, P, ws, &d),
                   VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_attention_sizes_get(NULL, q, k, v, &d, NULL), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_attention_sizes_get(ctx, q, k, v, &d, NULL), VKF_ERROR_NULL_POINTER,
         "sizes NULL out");
  vkf_attention_sizes sz;
  expect(ctx, vkf_attention_sizes_get(ctx, q, k3, v3, &d, &sz), VKF_ERROR_SHAPE_MISMATCH,
         "sizes: Hq not a multiple of Hkv");
  bad = d, bad.softcap = 2.0f;
  expect(ctx, vkf_attention_sizes_get(ctx, q, k, v, &bad, &sz), VKF_OK, "sizes");
  assert_int_equal(sz.workspace_elements, 2 * 2 * 4 * 5 * 5);

  /* shapes */
  expect(ctx, vkf_attention_forward(ctx, out, P, q3, k, v, &d), VKF_ERROR_SHAPE_MISMATCH, "3-D q");
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k3, v3, &d), VKF_ERROR_SHAPE_MISMATCH,
         "Hq not a multiple of Hkv");
  expect(ctx, vkf_attention_forward(ctx, out, P, q, kd, v, &d), VKF_ERROR_SHAPE_MISMATCH,
         "k head size");
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, vlen, &d), VKF_ERROR_SHAPE_MISMATCH,
         "v length");
  expect(ctx, vkf_attention_forward(ctx, outbad, P, q, k, v, &d), VKF_ERROR_SHAPE_MISMATCH,
         "out shape");
  expect(ctx, vkf_attention_forward(ctx, out, Pbad, q, k, v, &d), VKF_ERROR_SHAPE_MISMATCH,
         "saved shape");
  bad = d, bad.flags |= QBHTD; /* q read as [B, Hq, Tq, D] = [2, 5, 4, 8]: Hq 5, Hkv 2 */
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_SHAPE_MISMATCH,
         "layout flag");
  bad = d, bad.mask = maskbig;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_SHAPE_MISMATCH,
         "mask wider than Tk");
  bad = d, bad.mask = mask3;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_SHAPE_MISMATCH,
         "mask head dim 3 vs Hq 4");
  bad = d, bad.mask = lensf;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_SHAPE_MISMATCH,
         "1-D mask");
  bad = d, bad.kv_lens = lens;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_OK, "kv_lens");
  bad = d, bad.kv_lens = mask;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_DTYPE_MISMATCH,
         "f32 kv_lens");
  bad = d, bad.logits = Pbad;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_SHAPE_MISMATCH,
         "logits shape");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, outbad, q, k, v, P, ws, &d),
         VKF_ERROR_SHAPE_MISMATCH, "dout shape");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, outbad, dout, q, k, v, P, ws, &d),
         VKF_ERROR_SHAPE_MISMATCH, "dv shape");
  expect(ctx, vkf_attention_backward(ctx, dk, dq, dv, dout, q, k, v, P, ws, &d),
         VKF_ERROR_SHAPE_MISMATCH, "dq shape");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, Pbad, ws, &d),
         VKF_ERROR_SHAPE_MISMATCH, "backward saved shape");

  /* dtypes */
  expect(ctx, vkf_attention_forward(ctx, out, P, qi, k, v, &d), VKF_ERROR_DTYPE_MISMATCH, "i32 q");
  expect(ctx, vkf_attention_backward(ctx, qi, dk, dv, dout, q, k, v, P, ws, &d),
         VKF_ERROR_DTYPE_MISMATCH, "i32 dq");
  bad = d, bad.mask = lens;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_DTYPE_MISMATCH,
         "i32 mask");

  /* options */
  bad = d, bad.variant = (vkf_attention_variant)7;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_INVALID_ARGUMENT,
         "variant");
  bad = d, bad.flags = 1u << 9;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_INVALID_ARGUMENT,
         "flags");
  bad = d, bad.align = (vkf_attention_align)5;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_INVALID_ARGUMENT,
         "align");
  bad = d, bad.scale = INFINITY;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_INVALID_ARGUMENT,
         "scale inf");
  bad = d, bad.scale = NAN;
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, ws, &bad),
         VKF_ERROR_INVALID_ARGUMENT, "scale nan");
  bad = d, bad.softcap = -1.0f;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_INVALID_ARGUMENT,
         "softcap < 0");
  bad = d, bad.softcap = NAN;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_INVALID_ARGUMENT,
         "softcap nan");
  bad = d, bad.align = OFS, bad.q_offset = (1 << 28) + 1;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_INVALID_ARGUMENT,
         "q_offset");

  /* aliasing */
  expect(ctx, vkf_attention_forward(ctx, q, P, q, k, v, &d), VKF_ERROR_INVALID_ARGUMENT,
         "out is q");
  expect(ctx, vkf_attention_forward(ctx, view_o, view_p, q, k, v, &d), VKF_ERROR_INVALID_ARGUMENT,
         "out overlaps saved");
  bad = d, bad.logits = P;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_INVALID_ARGUMENT,
         "logits is saved");
  bad = d, bad.mask = mask;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_OK, "mask");
  CHECK(ctx, vkf_tensor_view(ctx, P, 0, 2, s2, &bad.mask));
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_INVALID_ARGUMENT,
         "saved overlaps mask");
  CHECK(ctx, vkf_tensor_destroy(ctx, bad.mask));
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dk, dout, q, k, k, P, ws, &d),
         VKF_ERROR_INVALID_ARGUMENT, "dk is dv");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dq, q, k, v, P, ws, &d),
         VKF_ERROR_INVALID_ARGUMENT, "dq is dout");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, dk, v, P, ws, &d),
         VKF_ERROR_INVALID_ARGUMENT, "dk is k");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, dq, &d),
         VKF_ERROR_INVALID_ARGUMENT, "workspace is dq");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, dout, &d),
         VKF_ERROR_INVALID_ARGUMENT, "workspace is dout");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, P, &d),
         VKF_ERROR_INVALID_ARGUMENT, "workspace is saved");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, wsmall, &d),
         VKF_ERROR_BUFFER_TOO_SMALL, "workspace too small");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, big, &d), VKF_OK,
         "big workspace");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, VKF_NO_TENSOR, &d),
         VKF_ERROR_INVALID_ARGUMENT, "no workspace");
  bad = d, bad.softcap = 1.0f; /* 400 elements needed */
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, ws, &bad),
         VKF_ERROR_BUFFER_TOO_SMALL, "softcap workspace");

  /* handles */
  expect(ctx, vkf_attention_forward(ctx, out, P, VKF_NO_TENSOR, k, v, &d),
         VKF_ERROR_INVALID_ARGUMENT, "no q");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, VKF_NO_TENSOR, dout, q, k, v, P, ws, &d),
         VKF_ERROR_INVALID_ARGUMENT, "no dv");
  vkf_tensor forged = {0x7fff0};
  expect(ctx, vkf_attention_forward(ctx, out, forged, q, k, v, &d), VKF_ERROR_STALE_HANDLE,
         "forged");
  vkf_tensor stale = t4(ctx, 2, 5, 2, 8);
  CHECK(ctx, vkf_tensor_destroy(ctx, stale));
  expect(ctx, vkf_attention_forward(ctx, out, P, q, stale, v, &d), VKF_ERROR_STALE_HANDLE,
         "stale k");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, stale, P, ws, &d),
         VKF_ERROR_STALE_HANDLE, "stale v");
  bad = d, bad.mask = stale;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_STALE_HANDLE,
         "stale mask");
  bad = d, bad.kv_lens = stale;
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, ws, &bad),
         VKF_ERROR_STALE_HANDLE, "stale kv_lens");
  expect(ctx, vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, stale, &d),
         VKF_ERROR_STALE_HANDLE, "stale workspace");
  bad = d, bad.logits = forged;
  expect(ctx, vkf_attention_forward(ctx, out, P, q, k, v, &bad), VKF_ERROR_STALE_HANDLE,
         "forged logits");
  CHECK(ctx, vkf_synchronize(ctx));

  /* the failed calls left the valid results alone and no tensor behind */
  vkf_memory_stats ms;
  CHECK(ctx, vkf_memory_stats_get(ctx, &ms));
  vkf_tensor rest[] = {q,       k,     v,      out,  P,      dout, dq,     dk,     dv,
                       k3,      v3,    kd,     vlen, outbad, Pbad, q3,     lensf,  mask,
                       maskbig, mask3, wsmall, big,  lens,   qi,   view_o, view_p, ws};
  assert_int_equal(ms.tensors, VKFT_ARRAY_LEN(rest));
  for (size_t i = 0; i < VKFT_ARRAY_LEN(rest); i++)
    CHECK(ctx, vkf_tensor_destroy(ctx, rest[i]));
}

static void test_attn_errors(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  error_cases(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  error_cases(vk);
  vkft_destroy(vk);
}

/* Regression test for the Vulkan sub-allocator (a core fix made with this
 * op family): freeing every other one of many small tensors of one block
 * leaves more separate free ranges than the free list first had room for. */
static void test_attn_many_small_tensors(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  enum { N = 64 };
  vkf_tensor t[N];
  int64_t s[1] = {256};
  for (int i = 0; i < N; i++)
    t[i] = vkft_tensor(vk, 1, s);
  for (int i = 0; i < N; i += 2)
    VKFT_OK(vkf_tensor_destroy(vk, t[i]));
  for (int i = 0; i < N; i += 2) /* and the freed ranges are usable again */
    t[i] = vkft_tensor(vk, 1, s);
  for (int i = 0; i < N; i++)
    VKFT_OK(vkf_tensor_fill(vk, t[i], (float)i));
  for (int i = 0; i < N; i++) {
    float x[256];
    vkft_read(vk, t[i], x, 256);
    assert_true(x[0] == (float)i && x[255] == (float)i);
    VKFT_OK(vkf_tensor_destroy(vk, t[i]));
  }
  vkft_destroy(vk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_attn_many_small_tensors),
      cmocka_unit_test(test_attn_cpu_forward_vs_reference),
      cmocka_unit_test(test_attn_cpu_backward_vs_finite_differences),
      cmocka_unit_test(test_attn_cpu_thread_independence),
      cmocka_unit_test(test_attn_cpu_paths),
      cmocka_unit_test(test_attn_vulkan_vs_cpu),
      cmocka_unit_test(test_attn_accumulation),
      cmocka_unit_test(test_attn_errors),
  };
  return cmocka_run_group_tests_name("attn", tests, NULL, NULL);
}
