/* linear attention: CPU forward against a double-precision reference
 * written with explicit loops over j <= i (no state, no chunks); CPU
 * backward against central finite differences of that reference; thread
 * count independence; Vulkan against the CPU backend on awkward shapes;
 * recurrent decoding against the chunked forward row by row, and prompts fed
 * in pieces; accumulation; every error status; a GPT with linear attention:
 * its gradients against finite differences of its loss, Vulkan against the
 * CPU, one training step at T = 4096 on Vulkan, and the trainer's planned
 * memory growing linearly in T.
 *
 * Tolerances (element-wise |got - ref| <= atol + rtol * |ref|). Measured
 * worst errors (CPU, and Vulkan on lavapipe), as a fraction of the bound:
 * - forward, CPU vs the double reference and Vulkan vs CPU: atol 1e-5,
 *   rtol 1e-4 (worst 0.017 of it: 2e-7). Inputs are U(-1, 1); each output
 *   is a weighted mean of the v rows (|out| <= 1) whose weights
 *   phi(q).phi(k) are fp32 dot products of length <= 128, summed over <= 700
 *   keys in fp32 (chunk sums, state prefix, in-chunk products). A wrong mask,
 *   chunk boundary, head mapping or state gives errors of order 1e-2..1.
 * - den and the states (sums of up to 700 * 128 positive terms of size
 *   ~1..4, values up to ~1e4): rtol 1e-4 (den worst 0.014 of it); the final
 *   state against the reference and saved, Vulkan vs CPU: atol 1e-4 (worst
 *   0.12 of the bound: 3.8e-5 on a value ~2, left by cancellation).
 * - backward, CPU vs central finite differences (step 1e-4 in double:
 *   truncation ~1e-9, except within 1e-4 of phi's kink at 0, where elu + 1 is
 *   only once differentiable): atol 1e-5, rtol 1e-4 (worst 0.013 of it).
 * - backward, Vulkan vs CPU: atol 3e-5, rtol 3e-4: fp32 on both, different
 *   summation orders, gradients starting at U(-1, 1). Worst 0.28 of the
 *   bound (3.2e-5 in dv) in the case of 48 query heads on one kv head over a
 *   700-token chunk, where each dv row sums 33,600 products; below 0.011 in
 *   every other case.
 * - decoding vs the chunked forward (either backend): atol 2e-5, rtol 2e-4
 *   for the rows (worst 0.007 of it) and the state (0.08: sums of up to 70
 *   terms of size ~1, in another order).
 * - GPT gradients vs finite differences of the fp32 loss: the directional
 *   derivative along one weight's gradient, relative 2e-2 (worst seen 1.8e-3:
 *   loss differences of ~1e-4 against fp32 loss rounding of ~5e-7, plus
 *   O(h^2) curvature). Vulkan vs CPU GPT step: loss relative 2e-6 (seen
 *   8.5e-8), gradients atol 1e-7 + rtol 1e-4 (worst 0.045 of it). */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lcase {
  uint32_t B, T, Hq, Hkv, D, Dv;
  uint32_t chunk; /* 0 = default */
  float eps;      /* 0 = default */
  int init_state; /* forward from a random initial state */
} lcase;

/* Awkward shapes: T = 1, T not a multiple of the chunk (17 by 8, 130 by 64,
 * 65 by 64, 50 by 7), chunk 1 (pure recurrence) and chunk > T (purely
 * quadratic), head sizes 8..128 (32, 64, 80, 128 among them) with D != Dv,
 * n_head / n_kv_head 1/1, 2/1, 4/2, 8/2, 8/8, 4/1, 6/3, and 48/1 over one
 * chunk of 700 tokens: on lavapipe its loops over the group's heads are
 * split into several dispatches (see vk_attn_linear.c). */
static const lcase cases[] = {
    /* B T Hq Hkv D Dv chunk eps init */
    {1, 1, 1, 1, 32, 32, 0, 0, 0},    {2, 3, 2, 1, 32, 32, 0, 0, 1},
    {1, 17, 4, 2, 64, 64, 8, 0, 0},   {2, 100, 4, 1, 32, 16, 16, 0.5f, 0},
    {1, 130, 8, 2, 80, 80, 64, 0, 1}, {1, 65, 2, 2, 128, 128, 64, 0, 0},
    {1, 63, 8, 8, 64, 64, 0, 0, 0},   {2, 40, 4, 4, 16, 24, 1, 0, 0},
    {1, 77, 2, 1, 8, 10, 1024, 0, 0}, {1, 50, 6, 3, 33, 17, 7, 0, 1},
    {3, 33, 1, 1, 64, 64, 32, 0, 0},  {1, 700, 48, 1, 16, 16, 1024, 0, 0},
};

/* With VKF_TEST_LARGE=1 only (minutes on lavapipe, whose workgroups are
 * slow to start): the head sizes' limits (D 1, Dv 1024) with 4104 query
 * heads, 16 column tiles each: 65664 workgroups in the forward's row kernel,
 * beyond the 65535 of a grid's z (split dispatches); and 4100 query heads
 * on one kv head (the head loops split into dozens of dispatches). */
static const lcase large_cases[] = {
    {1, 1, 4104, 2052, 1, 1024, 0, 0, 0},
    {1, 2, 4100, 1, 4, 4, 0, 0, 0},
};

/* Small cases for the finite differences (each element of q, k, v costs two
 * reference forwards). */
static const lcase fd_cases[] = {
    {2, 5, 2, 1, 4, 3, 2, 0, 0}, {1, 6, 4, 2, 5, 4, 4, 0.5f, 0}, {1, 7, 3, 3, 3, 6, 0, 0, 0},
    {2, 4, 2, 2, 6, 5, 1, 0, 0}, {1, 6, 2, 1, 4, 4, 4, 0, 1},    {1, 9, 4, 1, 8, 8, 3, 0, 0},
};

/* ------------------------------------------------------------------------ */
/* Inputs and the double-precision reference                                */
/* ------------------------------------------------------------------------ */
typedef struct inputs {
  size_t nq, nk, nv, no, ns, nden;
  float *q, *k, *v, *dout, *S0;
} inputs;

static float eps_of(const lcase *c) {
  return c->eps != 0.0f ? c->eps : 1e-6f;
}

static void inputs_make(const lcase *c, uint64_t seed, inputs *in) {
  memset(in, 0, sizeof(*in));
  vkft_rng rng = vkft_rng_seed(seed);
  in->nq = (size_t)c->B * c->T * c->Hq * c->D;
  in->nk = (size_t)c->B * c->T * c->Hkv * c->D;
  in->nv = (size_t)c->B * c->T * c->Hkv * c->Dv;
  in->no = (size_t)c->B * c->T * c->Hq * c->Dv;
  in->ns = (size_t)c->B * c->Hkv * c->D * (c->Dv + 1);
  in->nden = (size_t)c->B * c->T * c->Hq;
  in->q = vkft_alloc(in->nq);
  in->k = vkft_alloc(in->nk);
  in->v = vkft_alloc(in->nv);
  in->dout = vkft_alloc(in->no);
  in->S0 = vkft_alloc(in->ns);
  vkft_fill_uniform(&rng, in->q, in->nq, -1, 1);
  vkft_fill_uniform(&rng, in->k, in->nk, -1, 1);
  vkft_fill_uniform(&rng, in->v, in->nv, -1, 1);
  vkft_fill_uniform(&rng, in->dout, in->no, -1, 1);
  /* an initial state as a prefix of 5 tokens would leave it: S in about
   * [-5, 5], z in [0, 14] */
  for (size_t i = 0; i < in->ns; i++)
    in->S0[i] = i % (c->Dv + 1) == c->Dv ? vkft_uniform(&rng, 1, 14) : vkft_uniform(&rng, -5, 5);
}

static void inputs_free(inputs *in) {
  free(in->q);
  free(in->k);
  free(in->v);
  free(in->dout);
  free(in->S0);
}

static double phi(double x) {
  return x > 0 ? x + 1 : exp(x);
}

static size_t at(uint32_t T, uint32_t H, uint32_t E, uint32_t b, uint32_t t, uint32_t h,
                 uint32_t e) {
  return (((size_t)b * T + t) * H + h) * E + e;
}

/* out (and den, and the state after the last token; any may be NULL) from
 * double q, k, v, straight from the definition: for every row i the sum over
 * j <= i, plus the initial state S0 [B, Hkv, D, Dv + 1] when given. */
static void ref_forward(const lcase *c, const double *q, const double *k, const double *v,
                        const float *S0, double *out, double *den, double *Sfin) {
  const uint32_t G = c->Hq / c->Hkv, Dv1 = c->Dv + 1;
  double *num = vkft_alloc_d(Dv1), *qf = vkft_alloc_d(c->D);
  for (uint32_t b = 0; b < c->B; b++)
    for (uint32_t h = 0; h < c->Hq; h++) {
      const uint32_t hk = h / G;
      const float *S = S0 ? S0 + ((size_t)b * c->Hkv + hk) * c->D * Dv1 : NULL;
      for (uint32_t i = 0; i < c->T; i++) {
        for (uint32_t d = 0; d < c->D; d++)
          qf[d] = phi(q[at(c->T, c->Hq, c->D, b, i, h, d)]);
        for (uint32_t e = 0; e < Dv1; e++) {
          num[e] = 0;
          if (S)
            for (uint32_t d = 0; d < c->D; d++)
              num[e] += qf[d] * S[(size_t)d * Dv1 + e];
        }
        for (uint32_t j = 0; j <= i; j++) {
          double w = 0;
          for (uint32_t d = 0; d < c->D; d++)
            w += qf[d] * phi(k[at(c->T, c->Hkv, c->D, b, j, hk, d)]);
          for (uint32_t e = 0; e < c->Dv; e++)
            num[e] += w * v[at(c->T, c->Hkv, c->Dv, b, j, hk, e)];
          num[c->Dv] += w;
        }
        if (den)
          den[((size_t)b * c->T + i) * c->Hq + h] = num[c->Dv];
        if (out)
          for (uint32_t e = 0; e < c->Dv; e++)
            out[at(c->T, c->Hq, c->Dv, b, i, h, e)] = num[e] / (num[c->Dv] + eps_of(c));
      }
    }
  if (Sfin)
    for (uint32_t b = 0; b < c->B; b++)
      for (uint32_t hk = 0; hk < c->Hkv; hk++)
        for (uint32_t d = 0; d < c->D; d++)
          for (uint32_t e = 0; e < Dv1; e++) {
            size_t o = (((size_t)b * c->Hkv + hk) * c->D + d) * Dv1 + e;
            double s = S0 ? S0[o] : 0;
            for (uint32_t j = 0; j < c->T; j++)
              s += phi(k[at(c->T, c->Hkv, c->D, b, j, hk, d)]) *
                   (e < c->Dv ? v[at(c->T, c->Hkv, c->Dv, b, j, hk, e)] : 1.0);
            Sfin[o] = s;
          }
  free(num);
  free(qf);
}

static double *to_double(const float *x, size_t n) {
  double *d = vkft_alloc_d(n);
  for (size_t i = 0; i < n; i++)
    d[i] = x[i];
  return d;
}

/* ------------------------------------------------------------------------ */
/* Running a case on a context                                              */
/* ------------------------------------------------------------------------ */
typedef struct result {
  float *out, *saved, *state, *dq, *dk, *dv;
  uint64_t n_saved;
} result;

static void result_free(result *r) {
  free(r->out);
  free(r->saved);
  free(r->state);
  free(r->dq);
  free(r->dk);
  free(r->dv);
  memset(r, 0, sizeof(*r));
}

#define CHECK(ctx, expr)                                                                           \
  do {                                                                                             \
    vkf_status st_ = (expr);                                                                       \
    if (st_ != VKF_OK)                                                                             \
      fail_msg("%s -> %s: %s", #expr, vkf_status_name(st_), vkf_context_error(ctx));               \
  } while (0)

static void shape4(int64_t *s, int64_t a, int64_t b, int64_t c, int64_t d) {
  s[0] = a, s[1] = b, s[2] = c, s[3] = d;
}

/* Forward (with the initial state when the case asks, read back after), then
 * (backward > 0) `backward` backward passes adding into gradients that start
 * at g0 (q, k, v order; NULL: zeros). saved and the workspace are exactly as
 * large as vkf_linear_attention_sizes_get says or (big) larger and 2-D, and
 * every output starts as NaN: what is read must have been written. */
static void run_case(vkf_context *ctx, const lcase *c, const inputs *in, int backward,
                     const float *const g0[3], bool big, result *r) {
  int64_t sq[4], sk[4], sv[4], so[4];
  shape4(sq, c->B, c->T, c->Hq, c->D);
  shape4(sk, c->B, c->T, c->Hkv, c->D);
  shape4(sv, c->B, c->T, c->Hkv, c->Dv);
  shape4(so, c->B, c->T, c->Hq, c->Dv);
  vkf_tensor q = vkft_tensor_from(ctx, 4, sq, in->q), k = vkft_tensor_from(ctx, 4, sk, in->k);
  vkf_tensor v = vkft_tensor_from(ctx, 4, sv, in->v), out = vkft_tensor(ctx, 4, so);
  vkf_linear_attention_desc d = {.chunk = c->chunk, .eps = c->eps};
  if (c->init_state) {
    int64_t ss[4];
    shape4(ss, c->B, c->Hkv, c->D, c->Dv + 1);
    d.state = vkft_tensor_from(ctx, 4, ss, in->S0);
  }
  vkf_linear_attention_sizes sz;
  CHECK(ctx, vkf_linear_attention_sizes_get(ctx, q, k, v, &d, &sz));
  const uint32_t chunk = c->chunk ? c->chunk : 64, nc = (c->T + chunk - 1) / chunk;
  const uint64_t states = (uint64_t)c->B * c->Hkv * nc * c->D * (c->Dv + 1);
  assert_int_equal(sz.n_chunks, nc);
  assert_int_equal(sz.saved_elements, states + in->nden);
  assert_int_equal(sz.workspace_elements, states + in->nden * (c->Dv + 1));
  int64_t sst[4];
  shape4(sst, c->B, c->Hkv, c->D, c->Dv + 1);
  assert_memory_equal(sz.state_shape, sst, sizeof(sst));
  int64_t s_saved[2] = {(int64_t)sz.saved_elements, 1};
  if (big)
    s_saved[0] = (int64_t)sz.saved_elements / 2 + 3, s_saved[1] = 2;
  vkf_tensor saved = vkft_tensor(ctx, 2, s_saved);
  CHECK(ctx, vkf_tensor_fill(ctx, out, NAN));
  CHECK(ctx, vkf_tensor_fill(ctx, saved, NAN));
  CHECK(ctx, vkf_linear_attention_forward(ctx, out, saved, q, k, v, &d));
  r->out = vkft_alloc(in->no);
  r->n_saved = sz.saved_elements;
  r->saved = vkft_alloc((size_t)s_saved[0] * s_saved[1]);
  vkft_read(ctx, out, r->out, in->no);
  vkft_read(ctx, saved, r->saved, (size_t)s_saved[0] * s_saved[1]);
  if (c->init_state) {
    r->state = vkft_alloc(in->ns);
    vkft_read(ctx, d.state, r->state, in->ns);
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
    int64_t sw[2] = {(int64_t)sz.workspace_elements, 1};
    if (big)
      sw[0] = (int64_t)sz.workspace_elements / 2 + 5, sw[1] = 2;
    vkf_tensor ws = vkft_tensor(ctx, 2, sw);
    CHECK(ctx, vkf_tensor_fill(ctx, ws, NAN));
    for (int t = 0; t < backward; t++)
      CHECK(ctx, vkf_linear_attention_backward(ctx, g[0], g[1], g[2], dout, q, k, v, out, saved, ws,
                                               &d));
    float **dst[3] = {&r->dq, &r->dk, &r->dv};
    for (int i = 0; i < 3; i++) {
      *dst[i] = vkft_alloc(n[i]);
      vkft_read(ctx, g[i], *dst[i], n[i]);
      CHECK(ctx, vkf_tensor_destroy(ctx, g[i]));
    }
    CHECK(ctx, vkf_tensor_destroy(ctx, dout));
    CHECK(ctx, vkf_tensor_destroy(ctx, ws));
  }
  vkf_tensor all[] = {q, k, v, out, saved, d.state};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    if (all[i].id)
      CHECK(ctx, vkf_tensor_destroy(ctx, all[i]));
}

static void case_name(const lcase *c, size_t ci, char *buf, size_t n) {
  snprintf(buf, n, "case %zu (B%u T%u Hq%u Hkv%u D%u Dv%u chunk %u eps %g state %d)", ci, c->B,
           c->T, c->Hq, c->Hkv, c->D, c->Dv, c->chunk, (double)c->eps, c->init_state);
}

static const double FWD_ATOL = 1e-5, FWD_RTOL = 1e-4;
static const double FD_ATOL = 1e-5, FD_RTOL = 1e-4;
static const double BWD_ATOL = 3e-5, BWD_RTOL = 3e-4;
static const double DEC_ATOL = 2e-5, DEC_RTOL = 2e-4;

/* ------------------------------------------------------------------------ */
/* 1. CPU against the reference                                              */
/* ------------------------------------------------------------------------ */
static void test_linattn_cpu_forward_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(cases); ci++) {
    const lcase *c = &cases[ci];
    inputs in;
    inputs_make(c, 100 + ci, &in);
    double *q = to_double(in.q, in.nq), *k = to_double(in.k, in.nk), *v = to_double(in.v, in.nv);
    double *out = vkft_alloc_d(in.no), *den = vkft_alloc_d(in.nden), *Sf = vkft_alloc_d(in.ns);
    ref_forward(c, q, k, v, c->init_state ? in.S0 : NULL, out, den, Sf);
    result r = {0};
    run_case(cpu, c, &in, 0, NULL, ci % 2 == 1, &r);
    char what[160];
    case_name(c, ci, what, sizeof(what));
    size_t bad = vkft_compare("out", r.out, out, in.no, FWD_ATOL, FWD_RTOL);
    bad += vkft_compare("den", r.saved + r.n_saved - in.nden, den, in.nden, 0, FWD_RTOL);
    if (c->init_state)
      bad += vkft_compare("final state", r.state, Sf, in.ns, FWD_ATOL * 10, FWD_RTOL);
    if (bad)
      fprintf(stderr, "  ^ %s\n", what);
    failures += bad;
    result_free(&r);
    free(q), free(k), free(v), free(out), free(den), free(Sf);
    inputs_free(&in);
  }
  vkft_destroy(cpu);
  assert_int_equal(failures, 0);
}

/* dL/dx by central differences of L = sum(out * dout), in double. */
static void finite_differences(const lcase *c, const inputs *in, double *x, size_t n, double *q,
                               double *k, double *v, double *grad) {
  const double h = 1e-4;
  double *out = vkft_alloc_d(in->no);
  for (size_t i = 0; i < n; i++) {
    double x0 = x[i], l[2];
    for (int s = 0; s < 2; s++) {
      x[i] = x0 + (s ? -h : h);
      ref_forward(c, q, k, v, c->init_state ? in->S0 : NULL, out, NULL, NULL);
      l[s] = 0;
      for (size_t o = 0; o < in->no; o++)
        l[s] += out[o] * in->dout[o];
    }
    x[i] = x0;
    grad[i] = (l[0] - l[1]) / (2 * h);
  }
  free(out);
}

static void test_linattn_cpu_backward_vs_finite_differences(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(fd_cases); ci++) {
    const lcase *c = &fd_cases[ci];
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
    double mag = 0;
    for (int i = 0; i < 3; i++) {
      vkft_fill_uniform(&rng, g0[i], n[i], -0.5f, 0.5f);
      for (size_t e = 0; e < n[i]; e++) {
        mag += fabs(want[i][e]);
        want[i][e] += g0[i][e];
      }
    }
    assert_true(mag > 1e-3); /* the gradients are not trivially zero */
    result r = {0};
    run_case(cpu, c, &in, 1, (const float *const *)g0, ci % 2 == 0, &r);
    char what[160];
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
static void test_linattn_cpu_thread_independence(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  const uint32_t threads[3] = {1, 3, 4};
  for (size_t ci = 2; ci < VKFT_ARRAY_LEN(cases) - 1; ci += 2) {
    const lcase *c = &cases[ci];
    inputs in;
    inputs_make(c, 400 + ci, &in);
    result r[4] = {{0}};
    CHECK(cpu, vkf_context_set_threads(cpu, 2));
    run_case(cpu, c, &in, 1, NULL, false, &r[0]);
    for (int t = 0; t < 3; t++) {
      CHECK(cpu, vkf_context_set_threads(cpu, threads[t]));
      run_case(cpu, c, &in, 1, NULL, false, &r[t + 1]);
      assert_memory_equal(r[0].out, r[t + 1].out, in.no * sizeof(float));
      assert_memory_equal(r[0].saved, r[t + 1].saved, r[0].n_saved * sizeof(float));
      assert_memory_equal(r[0].dq, r[t + 1].dq, in.nq * sizeof(float));
      assert_memory_equal(r[0].dk, r[t + 1].dk, in.nk * sizeof(float));
      assert_memory_equal(r[0].dv, r[t + 1].dv, in.nv * sizeof(float));
      if (c->init_state)
        assert_memory_equal(r[0].state, r[t + 1].state, in.ns * sizeof(float));
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
static void test_linattn_vulkan_vs_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  size_t failures = 0;
  const char *large = getenv("VKF_TEST_LARGE");
  const size_t n_cases = VKFT_ARRAY_LEN(cases);
  const size_t n_all = n_cases + (large && !strcmp(large, "1") ? VKFT_ARRAY_LEN(large_cases) : 0);
  for (size_t ci = 0; ci < n_all; ci++) {
    const lcase *c = ci < n_cases ? &cases[ci] : &large_cases[ci - n_cases];
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
    char what[160];
    case_name(c, ci, what, sizeof(what));
    size_t bad = vkft_compare_f("out", rv.out, rc.out, in.no, FWD_ATOL, FWD_RTOL);
    /* saved: the chunk-start states (sums of up to 130 terms ~1), then den */
    bad += vkft_compare_f("saved", rv.saved, rc.saved, rc.n_saved, FWD_ATOL * 10, FWD_RTOL);
    if (c->init_state)
      bad += vkft_compare_f("final state", rv.state, rc.state, in.ns, FWD_ATOL * 10, FWD_RTOL);
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
  vkft_destroy(cpu);
  vkft_destroy(vk);
  assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------------ */
/* 3. Accumulation: two backward passes add twice (onto non-zero gradients) */
/* ------------------------------------------------------------------------ */
static void accumulation(vkf_context *ctx) {
  static const lcase c = {2, 37, 4, 2, 32, 16, 16, 0, 0};
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
    assert_true(mag > 1e-4 * (double)n[i]); /* the gradients are not trivially zero */
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

static void test_linattn_accumulation(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  accumulation(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  accumulation(vk);
  vkft_destroy(vk);
}

/* ------------------------------------------------------------------------ */
/* 4. Decoding                                                               */
/* ------------------------------------------------------------------------ */
/* Token t of x [B, T, H, E] as [B, 1, H, E]. */
static void token_of(const float *x, uint32_t B, uint32_t T, uint32_t H, uint32_t E, uint32_t t,
                     float *dst) {
  for (uint32_t b = 0; b < B; b++)
    memcpy(dst + (size_t)b * H * E, x + ((size_t)b * T + t) * H * E, (size_t)H * E * sizeof(float));
}

/* Decoding token by token from a zero state gives the chunked forward's rows
 * and its final state; a prompt fed as two forwards (the second continuing
 * from the first's state) and then decoded gives the same rows too. */
static void decode_matches(vkf_context *ctx, const lcase *c, uint64_t seed) {
  inputs in;
  inputs_make(c, seed, &in);
  int64_t sq[4], sk[4], sv[4], so[4], ss[4], sq1[4], sk1[4], sv1[4], so1[4];
  shape4(sq, c->B, c->T, c->Hq, c->D);
  shape4(sk, c->B, c->T, c->Hkv, c->D);
  shape4(sv, c->B, c->T, c->Hkv, c->Dv);
  shape4(so, c->B, c->T, c->Hq, c->Dv);
  shape4(ss, c->B, c->Hkv, c->D, c->Dv + 1);
  shape4(sq1, c->B, 1, c->Hq, c->D);
  shape4(sk1, c->B, 1, c->Hkv, c->D);
  shape4(sv1, c->B, 1, c->Hkv, c->Dv);
  shape4(so1, c->B, 1, c->Hq, c->Dv);
  /* the chunked forward over everything, keeping the final state */
  vkf_tensor q = vkft_tensor_from(ctx, 4, sq, in.q), k = vkft_tensor_from(ctx, 4, sk, in.k);
  vkf_tensor v = vkft_tensor_from(ctx, 4, sv, in.v), out = vkft_tensor(ctx, 4, so);
  vkf_linear_attention_desc d = {
      .chunk = c->chunk, .eps = c->eps, .state = vkft_tensor(ctx, 4, ss)};
  CHECK(ctx, vkf_tensor_fill(ctx, d.state, 0.0f));
  vkf_linear_attention_sizes sz;
  CHECK(ctx, vkf_linear_attention_sizes_get(ctx, q, k, v, &d, &sz));
  int64_t n_saved = (int64_t)sz.saved_elements;
  vkf_tensor saved = vkft_tensor(ctx, 1, &n_saved);
  CHECK(ctx, vkf_linear_attention_forward(ctx, out, saved, q, k, v, &d));
  float *full = vkft_alloc(in.no), *fstate = vkft_alloc(in.ns);
  vkft_read(ctx, out, full, in.no);
  vkft_read(ctx, d.state, fstate, in.ns);

  /* token by token */
  const size_t n1q = in.nq / c->T, n1k = in.nk / c->T, n1v = in.nv / c->T, n1o = in.no / c->T;
  vkf_tensor q1 = vkft_tensor(ctx, 4, sq1), k1 = vkft_tensor(ctx, 4, sk1);
  vkf_tensor v1 = vkft_tensor(ctx, 4, sv1), o1 = vkft_tensor(ctx, 4, so1);
  vkf_tensor st = vkft_tensor(ctx, 4, ss);
  CHECK(ctx, vkf_tensor_fill(ctx, st, 0.0f));
  float *tq = vkft_alloc(n1q), *tk = vkft_alloc(n1k), *tv = vkft_alloc(n1v);
  float *row = vkft_alloc(n1o), *want = vkft_alloc(n1o), *dstate = vkft_alloc(in.ns);
  size_t bad = 0;
  for (uint32_t t = 0; t < c->T; t++) {
    token_of(in.q, c->B, c->T, c->Hq, c->D, t, tq);
    token_of(in.k, c->B, c->T, c->Hkv, c->D, t, tk);
    token_of(in.v, c->B, c->T, c->Hkv, c->Dv, t, tv);
    CHECK(ctx, vkf_tensor_write(ctx, q1, tq, n1q * sizeof(float)));
    CHECK(ctx, vkf_tensor_write(ctx, k1, tk, n1k * sizeof(float)));
    CHECK(ctx, vkf_tensor_write(ctx, v1, tv, n1v * sizeof(float)));
    CHECK(ctx, vkf_tensor_fill(ctx, o1, NAN));
    CHECK(ctx, vkf_linear_attention_decode(ctx, o1, st, q1, k1, v1, c->eps));
    vkft_read(ctx, o1, row, n1o);
    token_of(full, c->B, c->T, c->Hq, c->Dv, t, want);
    size_t b = vkft_compare_f("decoded row", row, want, n1o, DEC_ATOL, DEC_RTOL);
    if (b)
      fprintf(stderr, "  ^ token %u\n", t);
    bad += b;
  }
  vkft_read(ctx, st, dstate, in.ns);
  bad += vkft_compare_f("decoded state", dstate, fstate, in.ns, DEC_ATOL, DEC_RTOL);

  /* a prompt of the first P tokens in two forwards (P1 then P - P1), then
   * the rest decoded: views of the first tokens of each batch are not
   * contiguous for B > 1, so copy them */
  const uint32_t P = c->T * 2 / 3, P1 = P / 3 + 1;
  CHECK(ctx, vkf_tensor_fill(ctx, st, 0.0f));
  uint32_t spans[2][2] = {{0, P1}, {P1, P}};
  for (int s = 0; s < 2; s++) {
    const uint32_t t0 = spans[s][0], n = spans[s][1] - t0;
    int64_t a[4], bk[4], bv[4], bo[4];
    shape4(a, c->B, n, c->Hq, c->D);
    shape4(bk, c->B, n, c->Hkv, c->D);
    shape4(bv, c->B, n, c->Hkv, c->Dv);
    shape4(bo, c->B, n, c->Hq, c->Dv);
    float *pq = vkft_alloc(n1q * n), *pk = vkft_alloc(n1k * n), *pv = vkft_alloc(n1v * n);
    float *po = vkft_alloc(n1o * n), *pw = vkft_alloc(n1o * n);
    for (uint32_t b = 0; b < c->B; b++)
      for (uint32_t t = 0; t < n; t++) {
        memcpy(pq + ((size_t)b * n + t) * c->Hq * c->D,
               in.q + ((size_t)b * c->T + t0 + t) * c->Hq * c->D, c->Hq * c->D * sizeof(float));
        memcpy(pk + ((size_t)b * n + t) * c->Hkv * c->D,
               in.k + ((size_t)b * c->T + t0 + t) * c->Hkv * c->D, c->Hkv * c->D * sizeof(float));
        memcpy(pv + ((size_t)b * n + t) * c->Hkv * c->Dv,
               in.v + ((size_t)b * c->T + t0 + t) * c->Hkv * c->Dv, c->Hkv * c->Dv * sizeof(float));
        memcpy(pw + ((size_t)b * n + t) * c->Hq * c->Dv,
               full + ((size_t)b * c->T + t0 + t) * c->Hq * c->Dv, c->Hq * c->Dv * sizeof(float));
      }
    vkf_tensor xq = vkft_tensor_from(ctx, 4, a, pq), xk = vkft_tensor_from(ctx, 4, bk, pk);
    vkf_tensor xv = vkft_tensor_from(ctx, 4, bv, pv), xo = vkft_tensor(ctx, 4, bo);
    vkf_linear_attention_desc pd = {.chunk = c->chunk, .eps = c->eps, .state = st};
    vkf_linear_attention_sizes psz;
    CHECK(ctx, vkf_linear_attention_sizes_get(ctx, xq, xk, xv, &pd, &psz));
    int64_t pn = (int64_t)psz.saved_elements;
    vkf_tensor ps = vkft_tensor(ctx, 1, &pn);
    CHECK(ctx, vkf_linear_attention_forward(ctx, xo, ps, xq, xk, xv, &pd));
    vkft_read(ctx, xo, po, n1o * n);
    bad += vkft_compare_f("prompt piece", po, pw, n1o * n, DEC_ATOL, DEC_RTOL);
    vkf_tensor all[] = {xq, xk, xv, xo, ps};
    for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
      CHECK(ctx, vkf_tensor_destroy(ctx, all[i]));
    free(pq), free(pk), free(pv), free(po), free(pw);
  }
  for (uint32_t t = P; t < c->T; t++) {
    token_of(in.q, c->B, c->T, c->Hq, c->D, t, tq);
    token_of(in.k, c->B, c->T, c->Hkv, c->D, t, tk);
    token_of(in.v, c->B, c->T, c->Hkv, c->Dv, t, tv);
    CHECK(ctx, vkf_tensor_write(ctx, q1, tq, n1q * sizeof(float)));
    CHECK(ctx, vkf_tensor_write(ctx, k1, tk, n1k * sizeof(float)));
    CHECK(ctx, vkf_tensor_write(ctx, v1, tv, n1v * sizeof(float)));
    CHECK(ctx, vkf_linear_attention_decode(ctx, o1, st, q1, k1, v1, c->eps));
    vkft_read(ctx, o1, row, n1o);
    token_of(full, c->B, c->T, c->Hq, c->Dv, t, want);
    bad += vkft_compare_f("row after the prompt", row, want, n1o, DEC_ATOL, DEC_RTOL);
  }
  vkft_read(ctx, st, dstate, in.ns);
  bad += vkft_compare_f("state after the prompt", dstate, fstate, in.ns, DEC_ATOL, DEC_RTOL);
  if (bad) {
    char what[160];
    case_name(c, 0, what, sizeof(what));
    fprintf(stderr, "  ^ decoding %s\n", what);
  }
  vkf_tensor all[] = {q, k, v, out, d.state, saved, q1, k1, v1, o1, st};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    CHECK(ctx, vkf_tensor_destroy(ctx, all[i]));
  free(full), free(fstate), free(tq), free(tk), free(tv), free(row), free(want), free(dstate);
  inputs_free(&in);
  assert_int_equal(bad, 0);
}

static const lcase decode_cases[] = {
    {2, 70, 4, 2, 64, 64, 16, 0, 0},   /* GQA, several chunks, the last short */
    {1, 21, 8, 1, 32, 80, 0, 0.5f, 0}, /* MQA, one chunk, Dv > WG on lavapipe, eps */
    {1, 9, 2, 2, 128, 33, 4, 0, 0},
};

static void test_linattn_decode_cpu(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  for (size_t i = 0; i < VKFT_ARRAY_LEN(decode_cases); i++)
    decode_matches(cpu, &decode_cases[i], 800 + i);
  vkft_destroy(cpu);
}

static void test_linattn_decode_vulkan(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  for (size_t i = 0; i < VKFT_ARRAY_LEN(decode_cases); i++)
    decode_matches(vk, &decode_cases[i], 900 + i);
  vkft_destroy(vk);
}

/* ------------------------------------------------------------------------ */
/* 5. Error statuses                                                         */
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

static vkf_tensor t1(vkf_context *ctx, int64_t n) {
  return vkft_tensor(ctx, 1, &n);
}

static void error_cases(vkf_context *ctx) {
  /* B 2, T 5, Hq 4, Hkv 2, D 8, Dv 6, chunk 2: 3 chunks */
  vkf_tensor q = t4(ctx, 2, 5, 4, 8), k = t4(ctx, 2, 5, 2, 8), v = t4(ctx, 2, 5, 2, 6);
  vkf_tensor out = t4(ctx, 2, 5, 4, 6), dout = t4(ctx, 2, 5, 4, 6);
  vkf_tensor dq = t4(ctx, 2, 5, 4, 8), dk = t4(ctx, 2, 5, 2, 8), dv = t4(ctx, 2, 5, 2, 6);
  vkf_tensor k3 = t4(ctx, 2, 5, 3, 8), kd = t4(ctx, 2, 5, 2, 7), vlen = t4(ctx, 2, 6, 2, 6);
  vkf_tensor outbad = t4(ctx, 2, 5, 4, 8), state = t4(ctx, 2, 2, 8, 7);
  vkf_tensor statebad = t4(ctx, 2, 2, 8, 6), qbig = t4(ctx, 1, 1, 1, 1025);
  vkf_tensor kbig = t4(ctx, 1, 1, 1, 1025), vbig = t4(ctx, 1, 1, 1, 4);
  vkf_tensor q1 = t4(ctx, 2, 1, 4, 8), k1 = t4(ctx, 2, 1, 2, 8), v1 = t4(ctx, 2, 1, 2, 6);
  vkf_tensor o1 = t4(ctx, 2, 1, 4, 6);
  int64_t s3[3] = {2, 5, 32};
  vkf_tensor q3 = vkft_tensor(ctx, 3, s3), qi, big = t1(ctx, 4000), big2 = t1(ctx, 4000);
  vkf_tensor v8 = t4(ctx, 2, 5, 2, 8), dv8 = t4(ctx, 2, 5, 2, 8); /* Dv = D: aliasing cases */
  int64_t sq[4] = {2, 5, 4, 8};
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_I32, 4, sq, &qi));
  vkf_linear_attention_desc d = {.chunk = 2}, bad;
  vkf_linear_attention_sizes sz;
  expect(ctx, vkf_linear_attention_sizes_get(ctx, q, k, v, &d, &sz), VKF_OK, "sizes");
  /* states: 2 * 2 * 3 chunks * 8 * 7 = 672; den 2 * 5 * 4 = 40; g 40 * 7 = 280 */
  assert_int_equal(sz.n_chunks, 3);
  assert_int_equal(sz.saved_elements, 672 + 40);
  assert_int_equal(sz.workspace_elements, 672 + 280);
  vkf_tensor saved = t1(ctx, 712), ws = t1(ctx, 952), small = t1(ctx, 711), wsmall = t1(ctx, 951);
  vkf_tensor all[] = {q, k, v, out, dout, dq, dk, dv, state, q1, k1, v1};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    CHECK(ctx, vkf_tensor_fill(ctx, all[i], 0.25f));
  /* views into one buffer, for aliasing */
  int64_t so[4] = {2, 5, 4, 6}, ssv[1] = {712};
  vkf_tensor view_o, view_s;
  CHECK(ctx, vkf_tensor_view(ctx, big, 0, 4, so, &view_o));
  CHECK(ctx, vkf_tensor_view(ctx, big, 200, 1, ssv, &view_s)); /* overlaps view_o */

  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, q, k, v, &d), VKF_OK, "forward");
  expect(ctx, vkf_linear_attention_forward(ctx, out, big, q, k, v, NULL), VKF_OK, "NULL desc");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, saved, ws, &d),
         VKF_OK, "backward");
  bad = d, bad.state = state;
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, q, k, v, &bad), VKF_OK, "with state");
  expect(ctx, vkf_linear_attention_decode(ctx, o1, state, q1, k1, v1, 0), VKF_OK, "decode");
  assert_int_equal(vkf_linear_attention_forward(NULL, out, saved, q, k, v, &d),
                   VKF_ERROR_NULL_POINTER);
  assert_int_equal(
      vkf_linear_attention_backward(NULL, dq, dk, dv, dout, q, k, v, out, saved, ws, &d),
      VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_linear_attention_decode(NULL, o1, state, q1, k1, v1, 0),
                   VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_linear_attention_sizes_get(NULL, q, k, v, &d, &sz), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_linear_attention_sizes_get(ctx, q, k, v, &d, NULL), VKF_ERROR_NULL_POINTER,
         "sizes NULL out");

  /* shapes */
  expect(ctx, vkf_linear_attention_sizes_get(ctx, q, k3, v, &d, &sz), VKF_ERROR_SHAPE_MISMATCH,
         "sizes: Hq not a multiple of Hkv");
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, q3, k, v, &d), VKF_ERROR_SHAPE_MISMATCH,
         "3-D q");
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, q, kd, v, &d), VKF_ERROR_SHAPE_MISMATCH,
         "k head size");
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, q, k, vlen, &d),
         VKF_ERROR_SHAPE_MISMATCH, "v length");
  expect(ctx, vkf_linear_attention_forward(ctx, outbad, saved, q, k, v, &d),
         VKF_ERROR_SHAPE_MISMATCH, "out shape");
  expect(ctx, vkf_linear_attention_forward(ctx, o1, saved, qbig, kbig, vbig, &d),
         VKF_ERROR_SHAPE_MISMATCH, "D 1025");
  bad = d, bad.state = statebad;
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, q, k, v, &bad),
         VKF_ERROR_SHAPE_MISMATCH, "state shape");
  expect(ctx, vkf_linear_attention_forward(ctx, out, small, q, k, v, &d),
         VKF_ERROR_BUFFER_TOO_SMALL, "saved too small");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, outbad, q, k, v, out, saved, ws, &d),
         VKF_ERROR_SHAPE_MISMATCH, "dout shape");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, dout, q, k, v, outbad, saved, ws, &d),
         VKF_ERROR_SHAPE_MISMATCH, "backward out shape");
  expect(ctx, vkf_linear_attention_backward(ctx, dk, dq, dv, dout, q, k, v, out, saved, ws, &d),
         VKF_ERROR_SHAPE_MISMATCH, "dq shape");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dout, dout, q, k, v, out, saved, ws, &d),
         VKF_ERROR_SHAPE_MISMATCH, "dv shape");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, small, ws, &d),
         VKF_ERROR_BUFFER_TOO_SMALL, "backward saved too small");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, saved, wsmall, &d),
         VKF_ERROR_BUFFER_TOO_SMALL, "workspace too small");
  bad = d, bad.chunk = 1; /* more chunks: a larger workspace */
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, saved, ws, &bad),
         VKF_ERROR_BUFFER_TOO_SMALL, "chunk 1 needs more saved");
  expect(ctx, vkf_linear_attention_decode(ctx, out, state, q, k, v, 0), VKF_ERROR_SHAPE_MISMATCH,
         "decode of 5 tokens");
  expect(ctx, vkf_linear_attention_decode(ctx, o1, statebad, q1, k1, v1, 0),
         VKF_ERROR_SHAPE_MISMATCH, "decode state shape");
  expect(ctx, vkf_linear_attention_decode(ctx, out, state, q1, k1, v1, 0), VKF_ERROR_SHAPE_MISMATCH,
         "decode out shape");

  /* dtypes */
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, qi, k, v, &d), VKF_ERROR_DTYPE_MISMATCH,
         "i32 q");
  expect(ctx, vkf_linear_attention_backward(ctx, qi, dk, dv, dout, q, k, v, out, saved, ws, &d),
         VKF_ERROR_DTYPE_MISMATCH, "i32 dq");
  bad = d, bad.state = qi;
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, q, k, v, &bad),
         VKF_ERROR_DTYPE_MISMATCH, "i32 state");

  /* options */
  bad = d, bad.chunk = 1025;
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, q, k, v, &bad),
         VKF_ERROR_INVALID_ARGUMENT, "chunk 1025");
  bad = d, bad.eps = -1.0f;
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, q, k, v, &bad),
         VKF_ERROR_INVALID_ARGUMENT, "eps < 0");
  bad = d, bad.eps = NAN;
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, saved, ws, &bad),
         VKF_ERROR_INVALID_ARGUMENT, "eps nan");
  expect(ctx, vkf_linear_attention_decode(ctx, o1, state, q1, k1, v1, INFINITY),
         VKF_ERROR_INVALID_ARGUMENT, "decode eps inf");

  /* aliasing */
  expect(ctx, vkf_linear_attention_forward(ctx, q, big2, q, k, v8, &d), VKF_ERROR_INVALID_ARGUMENT,
         "out is q");
  expect(ctx, vkf_linear_attention_forward(ctx, view_o, view_s, q, k, v, &d),
         VKF_ERROR_INVALID_ARGUMENT, "out overlaps saved");
  vkf_tensor sview;
  int64_t sst[4] = {2, 2, 8, 7};
  CHECK(ctx, vkf_tensor_view(ctx, big, 100, 4, sst, &sview)); /* overlaps view_o */
  bad = d, bad.state = sview;
  expect(ctx, vkf_linear_attention_forward(ctx, view_o, saved, q, k, v, &bad),
         VKF_ERROR_INVALID_ARGUMENT, "state overlaps out");
  /* with v8 (Dv = 8): out, dout [2, 5, 4, 8] = outbad; saved and workspace in big, big2 */
  expect(ctx,
         vkf_linear_attention_backward(ctx, dq, dk, dv8, outbad, q, k, v8, outbad, big, big2, &d),
         VKF_OK, "Dv = D, out = dout (both only read)");
  expect(ctx,
         vkf_linear_attention_backward(ctx, dq, dk, dk, outbad, q, k, v8, outbad, big, big2, &d),
         VKF_ERROR_INVALID_ARGUMENT, "dk is dv");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv8, dq, q, k, v8, outbad, big, big2, &d),
         VKF_ERROR_INVALID_ARGUMENT, "dq is dout");
  expect(ctx,
         vkf_linear_attention_backward(ctx, dq, dk, dv8, outbad, q, k, v8, outbad, big, big, &d),
         VKF_ERROR_INVALID_ARGUMENT, "workspace is saved");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, dout, q, k, v, dout, saved, ws, &d),
         VKF_OK, "dout as out (reads only)");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, saved, big, &d),
         VKF_OK, "big workspace");
  vkf_tensor wview;
  int64_t swv[1] = {952};
  CHECK(ctx, vkf_tensor_view(ctx, big, 0, 1, swv, &wview));
  expect(ctx,
         vkf_linear_attention_backward(ctx, dq, dk, dv, view_o, q, k, v, out, saved, wview, &d),
         VKF_ERROR_INVALID_ARGUMENT, "workspace overlaps dout");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, dout, dq, k, v, out, saved, ws, &d),
         VKF_ERROR_INVALID_ARGUMENT, "dq is q");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, saved, dq, &d),
         VKF_ERROR_BUFFER_TOO_SMALL, "dq as workspace: too small first");
  vkf_tensor qview;
  int64_t sq1[4] = {2, 1, 4, 6};
  CHECK(ctx, vkf_tensor_view(ctx, state, 0, 4, sq1, &qview));
  expect(ctx, vkf_linear_attention_decode(ctx, qview, state, q1, k1, v1, 0),
         VKF_ERROR_INVALID_ARGUMENT, "decode: out inside the state");

  /* handles */
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, VKF_NO_TENSOR, k, v, &d),
         VKF_ERROR_INVALID_ARGUMENT, "no q");
  expect(
      ctx,
      vkf_linear_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, saved, VKF_NO_TENSOR, &d),
      VKF_ERROR_INVALID_ARGUMENT, "no workspace");
  expect(ctx, vkf_linear_attention_decode(ctx, o1, VKF_NO_TENSOR, q1, k1, v1, 0),
         VKF_ERROR_INVALID_ARGUMENT, "no state");
  vkf_tensor forged = {0x7fff0};
  expect(ctx, vkf_linear_attention_forward(ctx, out, forged, q, k, v, &d), VKF_ERROR_STALE_HANDLE,
         "forged saved");
  vkf_tensor stale = t4(ctx, 2, 5, 2, 8);
  CHECK(ctx, vkf_tensor_destroy(ctx, stale));
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, q, stale, v, &d),
         VKF_ERROR_STALE_HANDLE, "stale k");
  expect(ctx, vkf_linear_attention_backward(ctx, dq, dk, dv, dout, q, k, v, out, saved, stale, &d),
         VKF_ERROR_STALE_HANDLE, "stale workspace");
  bad = d, bad.state = stale;
  expect(ctx, vkf_linear_attention_forward(ctx, out, saved, q, k, v, &bad), VKF_ERROR_STALE_HANDLE,
         "stale state");
  expect(ctx, vkf_linear_attention_decode(ctx, o1, state, q1, stale, v1, 0), VKF_ERROR_STALE_HANDLE,
         "decode stale k");
  /* 60001 chunks: lavapipe's shaders stop loops after 65535 iterations, so its scan over
   * the chunks is refused (before anything is recorded); elsewhere it runs */
  {
    int64_t sl[4] = {1, 60001, 1, 1};
    vkf_tensor lq = vkft_tensor(ctx, 4, sl), lk = vkft_tensor(ctx, 4, sl);
    vkf_tensor lv = vkft_tensor(ctx, 4, sl), lo = vkft_tensor(ctx, 4, sl);
    vkf_linear_attention_desc ld = {.chunk = 1};
    CHECK(ctx, vkf_linear_attention_sizes_get(ctx, lq, lk, lv, &ld, &sz));
    vkf_tensor ls = t1(ctx, (int64_t)sz.saved_elements);
    vkf_tensor lall[] = {lq, lk, lv, lo, ls};
    for (size_t i = 0; i < VKFT_ARRAY_LEN(lall); i++)
      CHECK(ctx, vkf_tensor_fill(ctx, lall[i], 0.5f));
    vkf_device_info info;
    CHECK(ctx, vkf_context_device(ctx, &info));
    const bool lavapipe = info.type == VKF_DEVICE_TYPE_CPU_VULKAN;
    expect(ctx, vkf_linear_attention_forward(ctx, lo, ls, lq, lk, lv, &ld),
           lavapipe ? VKF_ERROR_UNSUPPORTED : VKF_OK, "60001 chunks");
    if (lavapipe) { /* nothing was written: out still holds the fill */
      float o[4];
      int64_t s4[1] = {4};
      vkf_tensor head;
      CHECK(ctx, vkf_tensor_view(ctx, lo, 0, 1, s4, &head));
      vkft_read(ctx, head, o, 4);
      assert_true(o[0] == 0.5f && o[3] == 0.5f);
      CHECK(ctx, vkf_tensor_destroy(ctx, head));
    }
    for (size_t i = 0; i < VKFT_ARRAY_LEN(lall); i++)
      CHECK(ctx, vkf_tensor_destroy(ctx, lall[i]));
  }
  CHECK(ctx, vkf_synchronize(ctx));

  /* the failed calls left no tensor behind */
  vkf_memory_stats ms;
  CHECK(ctx, vkf_memory_stats_get(ctx, &ms));
  vkf_tensor rest[] = {q,      k,      v,      out,   dout,     dq,    dk,    dv,   k3,
                       kd,     vlen,   outbad, state, statebad, qbig,  kbig,  vbig, q1,
                       k1,     v1,     o1,     q3,    qi,       big,   saved, ws,   small,
                       wsmall, view_o, view_s, sview, wview,    qview, big2,  v8,   dv8};
  assert_int_equal(ms.tensors, VKFT_ARRAY_LEN(rest));
  for (size_t i = 0; i < VKFT_ARRAY_LEN(rest); i++)
    CHECK(ctx, vkf_tensor_destroy(ctx, rest[i]));
}

static void test_linattn_errors(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  error_cases(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  error_cases(vk);
  vkft_destroy(vk);
}

/* ------------------------------------------------------------------------ */
/* 6. A GPT with linear attention                                            */
/* ------------------------------------------------------------------------ */
static vkf_gpt_config gpt_config(uint32_t T) {
  vkf_gpt_config c = {.vocab_size = 256,
                      .context_length = T,
                      .d_model = 64,
                      .n_layer = 2,
                      .n_head = 4,
                      .n_kv_head = 2,
                      .norm = VKF_NORM_RMSNORM,
                      .mlp = VKF_MLP_SWIGLU,
                      .positions = VKF_POS_ROPE,
                      .attention = VKF_ATTN_LINEAR};
  return c;
}

static void tokens(uint64_t seed, int32_t *in, int32_t *tg, size_t n) {
  vkft_rng r = vkft_rng_seed(seed);
  for (size_t i = 0; i < n; i++) { /* a learnable pattern plus noise */
    in[i] = (int32_t)(vkft_uniform(&r, 0, 1) * 64) + (int32_t)(i % 7) * 16;
    tg[i] = (in[i] * 3 + 1) % 256;
  }
}

/* Finds a parameter tensor of m by name. */
static vkf_gpt_tensor tensor_named(vkf_gpt *m, const char *name) {
  vkf_gpt_tensor ti = {0};
  for (uint32_t i = 0; i < vkf_gpt_tensor_count(m); i++) {
    VKFT_OK(vkf_gpt_tensor_info(m, i, &ti));
    if (!strcmp(ti.name, name))
      return ti;
  }
  fail_msg("no tensor %s", name);
  return ti;
}

/* The gradient of the loss along one weight's gradient direction (the q, k
 * or v projection of either layer), against the central difference of the
 * loss. The q, k, v projections are scaled up 10x from the initialisation
 * (to std 0.2) so that phi(q).phi(k) varies across keys: at GPT-2's 0.02
 * every weight is ~1 and the q, k gradients (~1e-7) sink below the fp32
 * resolution of the loss. */
static void test_linattn_gpt_gradients_vs_finite_differences(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  const uint32_t B = 2, T = 150; /* 3 chunks of 64, the last short */
  vkf_gpt_config cfg = gpt_config(T);
  vkf_gpt *m;
  CHECK(cpu, vkf_gpt_create(cpu, &cfg, 5, &m));
  vkf_train_desc td = {.batch = B, .seq_len = T, .lr = 1e-3f, .schedule = VKF_LR_CONSTANT};
  vkf_trainer *tr;
  CHECK(cpu, vkf_trainer_create(m, &td, &tr));
  int32_t *in = malloc(B * T * sizeof(int32_t)), *tg = malloc(B * T * sizeof(int32_t));
  tokens(1, in, tg, B * T);
  const uint64_t n = vkf_gpt_flat_size(m);
  float *p0 = vkft_alloc(n), *g = vkft_alloc(n), *p = vkft_alloc(n);
  CHECK(cpu, vkf_gpt_read_params(m, p0, n));
  const char *names[] = {
      "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
      "model.layers.0.self_attn.v_proj.weight", "model.layers.1.self_attn.q_proj.weight",
      "model.layers.1.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight"};
  for (size_t w = 0; w < VKFT_ARRAY_LEN(names); w++) {
    vkf_gpt_tensor ti = tensor_named(m, names[w]);
    for (uint64_t e = 0; e < ti.elements; e++)
      p0[ti.offset + e] *= 10.0f;
  }
  CHECK(cpu, vkf_gpt_write_params(m, p0, n));
  vkf_step_info info;
  CHECK(cpu, vkf_trainer_step(tr, in, tg, &info));
  CHECK(cpu, vkf_trainer_read_grads(tr, g, n));
  size_t bad = 0;
  for (size_t w = 0; w < VKFT_ARRAY_LEN(names); w++) {
    vkf_gpt_tensor ti = tensor_named(m, names[w]);
    double norm2 = 0;
    for (uint64_t e = 0; e < ti.elements; e++)
      norm2 += (double)g[ti.offset + e] * g[ti.offset + e];
    const double norm = sqrt(norm2), h = 0.05; /* the weight's norm is ~13 */
    assert_true(norm > 1e-4);
    double l[2];
    for (int s = 0; s < 2; s++) {
      memcpy(p, p0, n * sizeof(float));
      for (uint64_t e = 0; e < ti.elements; e++)
        p[ti.offset + e] += (float)((s ? -h : h) * g[ti.offset + e] / norm);
      CHECK(cpu, vkf_gpt_write_params(m, p, n));
      float loss;
      CHECK(cpu, vkf_trainer_eval(tr, in, tg, &loss));
      l[s] = loss;
    }
    const double fd = (l[0] - l[1]) / (2 * h); /* d loss / d step along g / |g| = |g| */
    if (getenv("VKF_TEST_VERBOSE") || fabs(fd - norm) > 2e-2 * norm)
      fprintf(stderr, "  %s: finite difference %.6g, gradient norm %.6g\n", names[w], fd, norm);
    bad += fabs(fd - norm) > 2e-2 * norm;
  }
  vkf_trainer_destroy(tr);
  vkf_gpt_destroy(m);
  free(in), free(tg), free(p0), free(g), free(p);
  vkft_destroy(cpu);
  assert_int_equal(bad, 0);
}

/* The same model and batch on Vulkan and the CPU: the first step's loss and
 * gradients agree; later steps lower the loss on Vulkan. */
static void test_linattn_gpt_vulkan_vs_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan(), *cpu = vkft_cpu();
  const uint32_t B = 2, T = 100;
  vkf_gpt_config cfg = gpt_config(T);
  vkf_gpt *mv, *mc;
  CHECK(vk, vkf_gpt_create(vk, &cfg, 9, &mv));
  CHECK(cpu, vkf_gpt_create(cpu, &cfg, 9, &mc));
  vkf_train_desc td = {.batch = B, .seq_len = T, .lr = 3e-3f, .schedule = VKF_LR_CONSTANT};
  vkf_trainer *tv, *tc;
  CHECK(vk, vkf_trainer_create(mv, &td, &tv));
  CHECK(cpu, vkf_trainer_create(mc, &td, &tc));
  int32_t *in = malloc(B * T * sizeof(int32_t)), *tg = malloc(B * T * sizeof(int32_t));
  tokens(2, in, tg, B * T);
  vkf_step_info iv, ic;
  CHECK(vk, vkf_trainer_step(tv, in, tg, &iv));
  CHECK(cpu, vkf_trainer_step(tc, in, tg, &ic));
  assert_true(fabs(iv.loss - ic.loss) <= 2e-6 * fabs(ic.loss));
  const uint64_t n = vkf_gpt_flat_size(mc);
  float *gv = vkft_alloc(n), *gc = vkft_alloc(n);
  CHECK(vk, vkf_trainer_read_grads(tv, gv, n));
  CHECK(cpu, vkf_trainer_read_grads(tc, gc, n));
  assert_int_equal(vkft_compare_f("GPT gradients", gv, gc, n, 1e-7, 1e-4), 0);
  float first = iv.loss;
  for (int s = 0; s < 5; s++)
    CHECK(vk, vkf_trainer_step(tv, in, tg, &iv));
  assert_true(isfinite(iv.loss) && iv.loss < first);
  vkf_trainer_destroy(tv);
  vkf_trainer_destroy(tc);
  vkf_gpt_destroy(mv);
  vkf_gpt_destroy(mc);
  free(in), free(tg), free(gv), free(gc);
  vkft_destroy(cpu);
  vkft_destroy(vk);
}

/* One recorded training step at T = 4096 on Vulkan (bench_attn_linear runs
 * 16384: minutes on lavapipe), and the planned memory, linear in T: equal
 * increments from 1K to 2K to 4K tokens, while the standard variant's grow
 * with T^2. */
static void test_linattn_gpt_long_sequence(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  uint64_t total[3] = {0}, total_std[3] = {0};
  for (int i = 0; i < 3; i++) {
    const uint32_t T = 1024u << i;
    for (int variant = 0; variant < 2; variant++) {
      vkf_gpt_config cfg = gpt_config(T);
      if (variant)
        cfg.attention = VKF_ATTN_STANDARD;
      vkf_gpt *m;
      CHECK(vk, vkf_gpt_create(vk, &cfg, 1, &m));
      vkf_train_desc td = {.batch = 1, .seq_len = T, .schedule = VKF_LR_CONSTANT};
      vkf_trainer *tr;
      CHECK(vk, vkf_trainer_create(m, &td, &tr));
      vkf_train_memory mem;
      CHECK(vk, vkf_trainer_memory(tr, &mem));
      (variant ? total_std : total)[i] = mem.total;
      if (!variant && i == 2) {
        int32_t *in = malloc(T * sizeof(int32_t)), *tg = malloc(T * sizeof(int32_t));
        tokens(3, in, tg, T);
        vkf_step_info info;
        CHECK(vk, vkf_trainer_step(tr, in, tg, &info));
        assert_true(isfinite(info.loss) && fabs(info.loss - log(256.0)) < 0.5);
        free(in), free(tg);
      }
      vkf_trainer_destroy(tr);
      vkf_gpt_destroy(m);
    }
  }
  const double d1 = (double)(total[1] - total[0]), d2 = (double)(total[2] - total[1]);
  fprintf(stderr,
          "  planned step memory, linear: %llu, %llu, %llu bytes; standard: %llu, %llu, "
          "%llu bytes at T = 1K, 2K, 4K\n",
          (unsigned long long)total[0], (unsigned long long)total[1], (unsigned long long)total[2],
          (unsigned long long)total_std[0], (unsigned long long)total_std[1],
          (unsigned long long)total_std[2]);
  assert_true(d1 > 0 && fabs(d2 - 2 * d1) <= 0.05 * d2);
  const double s1 = (double)(total_std[1] - total_std[0]),
               s2 = (double)(total_std[2] - total_std[1]);
  assert_true(s2 > 3 * s1); /* the baseline is quadratic: the test can tell */
  vkft_destroy(vk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_linattn_cpu_forward_vs_reference),
      cmocka_unit_test(test_linattn_cpu_backward_vs_finite_differences),
      cmocka_unit_test(test_linattn_cpu_thread_independence),
      cmocka_unit_test(test_linattn_vulkan_vs_cpu),
      cmocka_unit_test(test_linattn_accumulation),
      cmocka_unit_test(test_linattn_decode_cpu),
      cmocka_unit_test(test_linattn_decode_vulkan),
      cmocka_unit_test(test_linattn_errors),
      cmocka_unit_test(test_linattn_gpt_gradients_vs_finite_differences),
      cmocka_unit_test(test_linattn_gpt_vulkan_vs_cpu),
      cmocka_unit_test(test_linattn_gpt_long_sequence),
  };
  return cmocka_run_group_tests_name("attn_linear", tests, NULL, NULL);
}
