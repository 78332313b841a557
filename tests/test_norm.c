/* layernorm and rmsnorm, forward and backward:
 *  - CPU forward against a double-precision reference;
 *  - CPU backward against central finite differences of the loss
 *    sum(out * R) (R random), computed in double on a double
 *    re-implementation of the forward, for x, weight and bias;
 *  - Vulkan against the CPU backend on awkward shapes (C = 1, 3, 17, 63,
 *    257, 768, 1000; rows 1, 3, 17, 300; batched leading dims; a single
 *    row; unaligned views), forward and every backward mode;
 *  - backward adds into non-zero gradients;
 *  - reproducibility (bitwise: Vulkan run twice; CPU at 1 and 4 threads);
 *  - every error status.
 * Set VKFT_VERBOSE=1 to print the worst errors seen per comparison. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const float EPS = 1e-5f;

typedef struct shape {
  uint32_t ndim;
  int64_t d[4];
} shape;

static uint32_t cols_of(const shape *s) {
  return (uint32_t)s->d[s->ndim - 1];
}
static uint32_t rows_of(const shape *s) {
  uint64_t r = 1;
  for (uint32_t i = 0; i + 1 < s->ndim; i++)
    r *= (uint64_t)s->d[i];
  return (uint32_t)r;
}

/* ------------------------------------------------------------------------ */
/* Comparison: element-wise atol + rtol*|ref| (vkft_compare) and a bound on
 * the normalised error ||got - ref|| / ||ref||.                            */
/* ------------------------------------------------------------------------ */
/* Normalised error: ||got - ref|| / ||ref||. */
#define NERR_FLOOR 1e-3

static size_t check(const char *what, const float *got, const double *ref, size_t n, double atol,
                    double rtol, double nerr_max) {
  size_t bad = vkft_compare(what, got, ref, n, atol, rtol);
  double e2 = 0, r2 = 0, worst = 0;
  for (size_t i = 0; i < n; i++) {
    double d = (double)got[i] - ref[i];
    e2 += d * d;
    r2 += ref[i] * ref[i];
    worst = fabs(d) > worst ? fabs(d) : worst;
  }
  /* relative to ||ref||, but not below an RMS of NERR_FLOOR per element:
   * a vector of values that all vanish is judged by the element bounds */
  double floor2 = (double)n * NERR_FLOOR * NERR_FLOOR;
  double nerr = sqrt(e2 / (r2 > floor2 ? r2 : floor2));
  if (getenv("VKFT_VERBOSE"))
    fprintf(stderr, "  %-60s n=%-7zu max abs err %.3g, normalised err %.3g\n", what, n, worst,
            nerr);
  if (!(nerr <= nerr_max)) {
    fprintf(stderr, "  %s: normalised error %.3g above %.3g\n", what, nerr, nerr_max);
    bad++;
  }
  return bad;
}

static size_t check_f(const char *what, const float *got, const float *ref, size_t n, double atol,
                      double rtol, double nerr_max) {
  double *r = vkft_alloc_d(n);
  for (size_t i = 0; i < n; i++)
    r[i] = ref[i];
  size_t bad = check(what, got, r, n, atol, rtol, nerr_max);
  free(r);
  return bad;
}

/* ------------------------------------------------------------------------ */
/* Double-precision reference                                               */
/* ------------------------------------------------------------------------ */
/* One row of the forward, all in double. b may be NULL. */
static void ref_row(bool rms, const double *x, const double *w, const double *b, uint32_t C,
                    double *out, double *mean, double *rstd) {
  double mu = 0, var = 0;
  if (!rms) {
    for (uint32_t c = 0; c < C; c++)
      mu += x[c];
    mu /= C;
  }
  for (uint32_t c = 0; c < C; c++)
    var += (x[c] - mu) * (x[c] - mu);
  var /= C;
  double rs = 1.0 / sqrt(var + (double)EPS);
  for (uint32_t c = 0; c < C; c++)
    out[c] = (x[c] - mu) * rs * w[c] + (b ? b[c] : 0.0);
  if (mean)
    *mean = mu;
  if (rstd)
    *rstd = rs;
}

/* sum_c out[r, c] * R[r, c] of one row. */
static double row_loss(bool rms, const double *x, const double *w, const double *b, uint32_t C,
                       const double *R, double *tmp) {
  ref_row(rms, x, w, b, C, tmp, NULL, NULL);
  double l = 0;
  for (uint32_t c = 0; c < C; c++)
    l += tmp[c] * R[c];
  return l;
}

static double loss(bool rms, const double *x, const double *w, const double *b, uint32_t rows,
                   uint32_t C, const double *R, double *tmp) {
  double l = 0;
  for (uint32_t r = 0; r < rows; r++)
    l += row_loss(rms, x + (size_t)r * C, w, b, C, R + (size_t)r * C, tmp);
  return l;
}

/* Central differences of the loss for every x, weight and bias element. A
 * step of 1e-4 on O(1) inputs: truncation ~h^2 * f''' ~ 1e-8, rounding
 * ~1e-16 * |loss| / h ~ 1e-10, both far below the float errors tested. */
static void fd_grads(bool rms, double *x, double *w, double *b, uint32_t rows, uint32_t C,
                     const double *R, double *gx, double *gw, double *gb) {
  const double h = 1e-4;
  double *tmp = vkft_alloc_d(C);
  for (uint32_t r = 0; r < rows; r++)
    for (uint32_t c = 0; c < C; c++) {
      double *xr = x + (size_t)r * C, v = xr[c];
      xr[c] = v + h;
      double lp = row_loss(rms, xr, w, b, C, R + (size_t)r * C, tmp);
      xr[c] = v - h;
      double lm = row_loss(rms, xr, w, b, C, R + (size_t)r * C, tmp);
      xr[c] = v;
      gx[(size_t)r * C + c] = (lp - lm) / (2 * h);
    }
  double *params[2] = {w, b}, *grads[2] = {gw, gb};
  for (int k = 0; k < 2; k++) {
    if (!params[k])
      continue;
    for (uint32_t c = 0; c < C; c++) {
      double v = params[k][c];
      params[k][c] = v + h;
      double lp = loss(rms, x, w, b, rows, C, R, tmp);
      params[k][c] = v - h;
      double lm = loss(rms, x, w, b, rows, C, R, tmp);
      params[k][c] = v;
      grads[k][c] = (lp - lm) / (2 * h);
    }
  }
  free(tmp);
}

/* ------------------------------------------------------------------------ */
/* Running the ops                                                          */
/* ------------------------------------------------------------------------ */
typedef struct inputs {
  shape s;
  bool rms, bias;
  float *x, *w, *b, *dout;
  float *dx0, *dw0, *db0; /* starting gradients */
} inputs;

static void inputs_make(inputs *in, const shape *s, bool rms, bool bias, uint64_t seed,
                        bool zero_grads) {
  vkft_rng rng = vkft_rng_seed(seed);
  uint32_t rows = rows_of(s), C = cols_of(s);
  size_t n = (size_t)rows * C;
  memset(in, 0, sizeof(*in));
  in->s = *s;
  in->rms = rms;
  in->bias = bias && !rms;
  in->x = vkft_alloc(n);
  in->dout = vkft_alloc(n);
  in->dx0 = vkft_alloc(n);
  in->w = vkft_alloc(C);
  in->b = vkft_alloc(C);
  in->dw0 = vkft_alloc(C);
  in->db0 = vkft_alloc(C);
  /* rows with different offsets: the mean matters */
  for (uint32_t r = 0; r < rows; r++) {
    float off = vkft_uniform(&rng, -3, 3);
    for (uint32_t c = 0; c < C; c++)
      in->x[(size_t)r * C + c] = off + vkft_uniform(&rng, -2, 2);
  }
  vkft_fill_uniform(&rng, in->w, C, -1.5f, 1.5f);
  vkft_fill_uniform(&rng, in->b, C, -1, 1);
  vkft_fill_uniform(&rng, in->dout, n, -1, 1);
  vkft_fill_uniform(&rng, in->dx0, n, -1, 1);
  vkft_fill_uniform(&rng, in->dw0, C, -1, 1);
  vkft_fill_uniform(&rng, in->db0, C, -1, 1);
  if (zero_grads) {
    memset(in->dx0, 0, n * sizeof(float));
    memset(in->dw0, 0, C * sizeof(float));
    memset(in->db0, 0, C * sizeof(float));
  }
}

static void inputs_free(inputs *in) {
  free(in->x);
  free(in->w);
  free(in->b);
  free(in->dout);
  free(in->dx0);
  free(in->dw0);
  free(in->db0);
}

/* Shape of the saved statistics: x's leading dims (or [1] for 1-D x). */
static vkf_tensor stats_tensor(vkf_context *ctx, const shape *s) {
  if (s->ndim == 1) {
    int64_t one[1] = {1};
    return vkft_tensor(ctx, 1, one);
  }
  return vkft_tensor(ctx, s->ndim - 1, s->d);
}

typedef struct results {
  float *out, *mean, *rstd; /* forward */
  float *dx, *dw, *db;      /* backward (NULL: not asked for) */
} results;

static void results_free(results *r) {
  free(r->out);
  free(r->mean);
  free(r->rstd);
  free(r->dx);
  free(r->dw);
  free(r->db);
  memset(r, 0, sizeof(*r));
}

enum { WANT_DX = 1, WANT_DW = 2, WANT_DB = 4 };

/* Forward (saving mean/rstd), then backward with the gradients in `want`
 * starting from in->d*0, on ctx. */
static results run(vkf_context *ctx, const inputs *in, unsigned want) {
  const shape *s = &in->s;
  uint32_t rows = rows_of(s), C = cols_of(s);
  size_t n = (size_t)rows * C;
  int64_t sc[1] = {C};
  vkf_tensor x = vkft_tensor_from(ctx, s->ndim, s->d, in->x);
  vkf_tensor out = vkft_tensor(ctx, s->ndim, s->d);
  vkf_tensor w = vkft_tensor_from(ctx, 1, sc, in->w);
  vkf_tensor b = in->bias ? vkft_tensor_from(ctx, 1, sc, in->b) : VKF_NO_TENSOR;
  vkf_tensor mean = in->rms ? VKF_NO_TENSOR : stats_tensor(ctx, s);
  vkf_tensor rstd = stats_tensor(ctx, s);
  vkf_tensor dout = vkft_tensor_from(ctx, s->ndim, s->d, in->dout);
  vkf_tensor dx = want & WANT_DX ? vkft_tensor_from(ctx, s->ndim, s->d, in->dx0) : VKF_NO_TENSOR;
  vkf_tensor dw = want & WANT_DW ? vkft_tensor_from(ctx, 1, sc, in->dw0) : VKF_NO_TENSOR;
  vkf_tensor db =
      want & WANT_DB && !in->rms ? vkft_tensor_from(ctx, 1, sc, in->db0) : VKF_NO_TENSOR;
  vkf_status st = in->rms ? vkf_rmsnorm_forward(ctx, out, rstd, x, w, EPS)
                          : vkf_layernorm_forward(ctx, out, mean, rstd, x, w, b, EPS);
  if (st != VKF_OK)
    fail_msg("forward: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  if (want) {
    st = in->rms ? vkf_rmsnorm_backward(ctx, dx, dw, dout, x, w, rstd)
                 : vkf_layernorm_backward(ctx, dx, dw, db, dout, x, w, mean, rstd);
    if (st != VKF_OK)
      fail_msg("backward: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  }
  results r = {0};
  r.out = vkft_alloc(n);
  vkft_read(ctx, out, r.out, n);
  r.rstd = vkft_alloc(rows);
  vkft_read(ctx, rstd, r.rstd, rows);
  if (!in->rms) {
    r.mean = vkft_alloc(rows);
    vkft_read(ctx, mean, r.mean, rows);
  }
  if (dx.id) {
    r.dx = vkft_alloc(n);
    vkft_read(ctx, dx, r.dx, n);
  }
  if (dw.id) {
    r.dw = vkft_alloc(C);
    vkft_read(ctx, dw, r.dw, C);
  }
  if (db.id) {
    r.db = vkft_alloc(C);
    vkft_read(ctx, db, r.db, C);
  }
  vkf_tensor all[] = {x, out, w, b, mean, rstd, dout, dx, dw, db};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    if (all[i].id)
      VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
  return r;
}

static void shape_str(const shape *s, char *buf, size_t n) {
  size_t o = (size_t)snprintf(buf, n, "[");
  for (uint32_t i = 0; i < s->ndim; i++)
    o += (size_t)snprintf(buf + o, n - o, i ? ",%lld" : "%lld", (long long)s->d[i]);
  snprintf(buf + o, n - o, "]");
}

/* ------------------------------------------------------------------------ */
/* 1. CPU forward vs the double reference; CPU backward vs finite
 *    differences.                                                          */
/* ------------------------------------------------------------------------ */
static const shape cpu_shapes[] = {
    {1, {1}},    {1, {17}},         {2, {3, 17}},  {3, {2, 3, 63}}, {2, {4, 257}},
    {2, {5, 1}}, {4, {2, 1, 3, 7}}, {2, {1, 768}}, {2, {300, 3}},   {2, {70, 129}},
};

/* CPU forward: statistics in double, each output rounded once: a few ulp
 * (float ulp = 1.2e-7 relative) of out, mean and rstd. atol for outputs
 * that cancel to near 0. */
#define CPU_FWD_ATOL 1e-6
#define CPU_FWD_RTOL 1e-6
#define CPU_FWD_NERR 1e-6
/* CPU backward against finite differences: computed in double from the
 * float mean/rstd the forward saved (each within 1 ulp, 6e-8 relative), so
 * the gradients are off by ~1e-7 of their terms' size (O(1)); dweight and
 * dbias sum up to 300 rows of O(1) terms. The FD error itself is ~1e-8. */
#define CPU_BWD_ATOL 2e-6
#define CPU_BWD_RTOL 1e-5
#define CPU_BWD_NERR 2e-6

static size_t cpu_case(vkf_context *cpu, const shape *s, bool rms, bool bias, uint64_t seed) {
  uint32_t rows = rows_of(s), C = cols_of(s);
  size_t n = (size_t)rows * C, bad = 0;
  inputs in;
  inputs_make(&in, s, rms, bias, seed, false);
  results r = run(cpu, &in, WANT_DX | WANT_DW | WANT_DB);
  char sh[64], what[128];
  shape_str(s, sh, sizeof(sh));
  const char *name = rms ? "rmsnorm" : bias ? "layernorm+bias" : "layernorm";

  /* forward vs reference */
  double *xd = vkft_alloc_d(n), *wd = vkft_alloc_d(C), *bd = vkft_alloc_d(C), *R = vkft_alloc_d(n);
  double *out = vkft_alloc_d(n), *mean = vkft_alloc_d(rows), *rstd = vkft_alloc_d(rows);
  for (size_t i = 0; i < n; i++) {
    xd[i] = in.x[i];
    R[i] = in.dout[i]; /* dloss/dout = R = dout */
  }
  for (uint32_t c = 0; c < C; c++) {
    wd[c] = in.w[c];
    bd[c] = in.b[c];
  }
  for (uint32_t i = 0; i < rows; i++)
    ref_row(rms, xd + (size_t)i * C, wd, in.bias ? bd : NULL, C, out + (size_t)i * C, mean + i,
            rstd + i);
  snprintf(what, sizeof(what), "cpu %s %s out", name, sh);
  bad += check(what, r.out, out, n, CPU_FWD_ATOL, CPU_FWD_RTOL, CPU_FWD_NERR);
  snprintf(what, sizeof(what), "cpu %s %s rstd", name, sh);
  bad += check(what, r.rstd, rstd, rows, CPU_FWD_ATOL, CPU_FWD_RTOL, CPU_FWD_NERR);
  if (!rms) {
    snprintf(what, sizeof(what), "cpu %s %s mean", name, sh);
    bad += check(what, r.mean, mean, rows, CPU_FWD_ATOL, CPU_FWD_RTOL, CPU_FWD_NERR);
  }

  /* backward vs finite differences, added to the starting gradients */
  double *gx = vkft_alloc_d(n), *gw = vkft_alloc_d(C), *gb = vkft_alloc_d(C);
  fd_grads(rms, xd, wd, in.bias ? bd : NULL, rows, C, R, gx, gw, gb);
  if (!in.bias) /* dbias of a layernorm without bias is still sum_r dout */
    for (uint32_t c = 0; c < C; c++) {
      gb[c] = 0;
      for (uint32_t i = 0; i < rows; i++)
        gb[c] += R[(size_t)i * C + c];
    }
  for (size_t i = 0; i < n; i++)
    gx[i] += in.dx0[i];
  for (uint32_t c = 0; c < C; c++) {
    gw[c] += in.dw0[c];
    gb[c] += in.db0[c];
  }
  snprintf(what, sizeof(what), "cpu %s %s dx vs fd", name, sh);
  bad += check(what, r.dx, gx, n, CPU_BWD_ATOL, CPU_BWD_RTOL, CPU_BWD_NERR);
  snprintf(what, sizeof(what), "cpu %s %s dweight vs fd", name, sh);
  bad += check(what, r.dw, gw, C, CPU_BWD_ATOL, CPU_BWD_RTOL, CPU_BWD_NERR);
  if (!rms) {
    snprintf(what, sizeof(what), "cpu %s %s dbias vs fd", name, sh);
    bad += check(what, r.db, gb, C, CPU_BWD_ATOL, CPU_BWD_RTOL, CPU_BWD_NERR);
  }
  free(xd);
  free(wd);
  free(bd);
  free(R);
  free(out);
  free(mean);
  free(rstd);
  free(gx);
  free(gw);
  free(gb);
  results_free(&r);
  inputs_free(&in);
  return bad;
}

static void test_norm_cpu_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  size_t bad = 0;
  for (size_t i = 0; i < VKFT_ARRAY_LEN(cpu_shapes); i++) {
    bad += cpu_case(cpu, &cpu_shapes[i], false, true, 100 + i);
    bad += cpu_case(cpu, &cpu_shapes[i], false, false, 200 + i);
    bad += cpu_case(cpu, &cpu_shapes[i], true, false, 300 + i);
  }
  assert_int_equal(bad, 0);
  vkft_destroy(cpu);
}

/* The weight/bias gradients are sums over rows in a partition fixed by the
 * shape: bit for bit the same at any thread count. */
static void test_norm_cpu_thread_independent(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  static const shape shapes[] = {{2, {300, 63}}, {3, {7, 111, 17}}, {2, {4000, 5}}};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(shapes); i++) {
    for (int rms = 0; rms < 2; rms++) {
      inputs in;
      inputs_make(&in, &shapes[i], rms, true, 400 + i, false);
      uint32_t C = cols_of(&shapes[i]);
      size_t n = (size_t)rows_of(&shapes[i]) * C;
      VKFT_OK(vkf_context_set_threads(cpu, 1));
      results a = run(cpu, &in, WANT_DX | WANT_DW | WANT_DB);
      VKFT_OK(vkf_context_set_threads(cpu, 4));
      results b = run(cpu, &in, WANT_DX | WANT_DW | WANT_DB);
      VKFT_OK(vkf_context_set_threads(cpu, 3));
      results c = run(cpu, &in, WANT_DW);
      assert_memory_equal(a.out, b.out, n * sizeof(float));
      assert_memory_equal(a.dx, b.dx, n * sizeof(float));
      assert_memory_equal(a.dw, b.dw, C * sizeof(float));
      assert_memory_equal(a.dw, c.dw, C * sizeof(float));
      if (!rms)
        assert_memory_equal(a.db, b.db, C * sizeof(float));
      results_free(&a);
      results_free(&b);
      results_free(&c);
      inputs_free(&in);
    }
  }
  vkft_destroy(cpu);
}

/* ------------------------------------------------------------------------ */
/* 2. Vulkan vs the CPU backend                                             */
/* ------------------------------------------------------------------------ */
/* Vulkan computes in float: row sums by a shared-memory tree (error ~
 * log2(C) ulp of the sum's terms), inversesqrt within 2 ulp (Vulkan spec);
 * the outputs are O(1) (|xhat * w| <= ~5). So the forward agrees to ~1e-6
 * absolute; we allow 1e-5 absolute + 1e-5 relative, normalised 2e-6. */
#define VK_FWD_ATOL 1e-5
#define VK_FWD_RTOL 1e-5
#define VK_FWD_NERR 2e-6
/* Backward: dx has the forward's error plus the sums of g and g*xhat
 * (O(C) terms); dweight/dbias sum up to 300 rows of O(1) terms in float
 * (per-block then across blocks), so their error grows with rows: atol
 * 1e-5 * sqrt(rows)-ish; we allow 2e-5 + 1e-5 relative for rows <= 300. */
#define VK_BWD_ATOL 2e-5
#define VK_BWD_RTOL 1e-5
#define VK_BWD_NERR 5e-6

static size_t compare_results(const char *tag, const inputs *in, const results *g, const results *w,
                              double atol_f, double rtol_f, double nerr_f, double atol_b,
                              double rtol_b, double nerr_b) {
  uint32_t rows = rows_of(&in->s), C = cols_of(&in->s);
  size_t n = (size_t)rows * C, bad = 0;
  char what[160];
  snprintf(what, sizeof(what), "%s out", tag);
  bad += check_f(what, g->out, w->out, n, atol_f, rtol_f, nerr_f);
  snprintf(what, sizeof(what), "%s rstd", tag);
  bad += check_f(what, g->rstd, w->rstd, rows, atol_f, rtol_f, nerr_f);
  if (g->mean) {
    snprintf(what, sizeof(what), "%s mean", tag);
    bad += check_f(what, g->mean, w->mean, rows, atol_f, rtol_f, nerr_f);
  }
  if (g->dx) {
    snprintf(what, sizeof(what), "%s dx", tag);
    bad += check_f(what, g->dx, w->dx, n, atol_b, rtol_b, nerr_b);
  }
  if (g->dw) {
    snprintf(what, sizeof(what), "%s dweight", tag);
    bad += check_f(what, g->dw, w->dw, C, atol_b, rtol_b, nerr_b);
  }
  if (g->db) {
    snprintf(what, sizeof(what), "%s dbias", tag);
    bad += check_f(what, g->db, w->db, C, atol_b, rtol_b, nerr_b);
  }
  return bad;
}

static const uint32_t vk_cols[] = {1, 3, 17, 63, 257, 768, 1000};
static const uint32_t vk_rows[] = {1, 3, 17, 300};

static void vulkan_vs_cpu(bool rms) {
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  size_t bad = 0;
  unsigned k = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(vk_cols); ci++)
    for (size_t ri = 0; ri < VKFT_ARRAY_LEN(vk_rows); ri++, k++) {
      shape s = {2, {vk_rows[ri], vk_cols[ci]}};
      /* every backward mode across the cases (all gradients; dx alone; the
       * parameter gradients alone or one of them), and layernorm with and
       * without bias */
      static const unsigned modes[] = {WANT_DX | WANT_DW | WANT_DB, WANT_DX, WANT_DW | WANT_DB,
                                       WANT_DW, WANT_DX | WANT_DB};
      unsigned want = modes[k % 5];
      inputs in;
      inputs_make(&in, &s, rms, k % 2 == 0, 1000 + k, false);
      results g = run(vk, &in, want), w = run(cpu, &in, want);
      char tag[96];
      snprintf(tag, sizeof(tag), "%s [%u,%u] want %u", rms ? "rmsnorm" : "layernorm", vk_rows[ri],
               vk_cols[ci], want);
      bad += compare_results(tag, &in, &g, &w, VK_FWD_ATOL, VK_FWD_RTOL, VK_FWD_NERR, VK_BWD_ATOL,
                             VK_BWD_RTOL, VK_BWD_NERR);
      results_free(&g);
      results_free(&w);
      inputs_free(&in);
    }
  /* batched leading dims and 1-D (single row) */
  static const shape batched[] = {{3, {2, 3, 17}}, {4, {2, 2, 5, 64}}, {3, {4, 25, 768}},
                                  {1, {1000}},     {1, {63}},          {4, {3, 1, 2, 1}}};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(batched); i++) {
    inputs in;
    inputs_make(&in, &batched[i], rms, true, 2000 + i, false);
    unsigned want = WANT_DX | WANT_DW | WANT_DB;
    results g = run(vk, &in, want), w = run(cpu, &in, want);
    char tag[96], sh[64];
    shape_str(&batched[i], sh, sizeof(sh));
    snprintf(tag, sizeof(tag), "%s %s", rms ? "rmsnorm" : "layernorm", sh);
    bad += compare_results(tag, &in, &g, &w, VK_FWD_ATOL, VK_FWD_RTOL, VK_FWD_NERR, VK_BWD_ATOL,
                           VK_BWD_RTOL, VK_BWD_NERR);
    results_free(&g);
    results_free(&w);
    inputs_free(&in);
  }
  /* more rows than one grid dimension holds (65535 workgroups): the
   * forward and the dx-only backward run one workgroup per row */
  {
    shape s = {2, {70000, 3}};
    inputs in;
    inputs_make(&in, &s, rms, true, 3000, false);
    results g = run(vk, &in, WANT_DX), w = run(cpu, &in, WANT_DX);
    bad +=
        compare_results(rms ? "rmsnorm [70000,3]" : "layernorm [70000,3]", &in, &g, &w, VK_FWD_ATOL,
                        VK_FWD_RTOL, VK_FWD_NERR, VK_BWD_ATOL, VK_BWD_RTOL, VK_BWD_NERR);
    results_free(&g);
    results_free(&w);
    inputs_free(&in);
  }
  assert_int_equal(bad, 0);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

static void test_layernorm_vulkan_vs_cpu(void **state) {
  (void)state;
  vulkan_vs_cpu(false);
}

static void test_rmsnorm_vulkan_vs_cpu(void **state) {
  (void)state;
  vulkan_vs_cpu(true);
}

/* A large common offset (|mean| >> std): the two-pass statistics must not
 * lose the variance. Rows of 1000 + U(-1, 1). */
static void test_layernorm_large_mean(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  shape s = {2, {17, 1000}};
  inputs in;
  inputs_make(&in, &s, false, true, 77, false);
  vkft_rng rng = vkft_rng_seed(78);
  for (size_t i = 0; i < 17 * 1000; i++)
    in.x[i] = 1000.0f + vkft_uniform(&rng, -1, 1);
  results g = run(vk, &in, WANT_DX | WANT_DW | WANT_DB),
          w = run(cpu, &in, WANT_DX | WANT_DW | WANT_DB);
  /* Both backends must save the same float mean (the correctly rounded
   * one: Vulkan corrects its float mean with the centred sum), else the
   * backward's xhat = (x - mean) * rstd would differ by an ulp of 1000
   * (6e-5) times rstd; so the usual tolerances hold throughout. */
  size_t bad = compare_results("layernorm offset 1000", &in, &g, &w, VK_FWD_ATOL, VK_FWD_RTOL,
                               VK_FWD_NERR, VK_BWD_ATOL, VK_BWD_RTOL, VK_BWD_NERR);
  assert_int_equal(bad, 0);
  results_free(&g);
  results_free(&w);
  inputs_free(&in);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* Views: a row length that is a multiple of 4 but operands that are not
 * 16-byte aligned take the scalar kernels; in-place forward (out == x). */
static void test_norm_views_and_in_place(void **state) {
  (void)state;
  vkf_context *ctxs[2] = {vkft_vulkan(), vkft_cpu()};
  enum { ROWS = 5, C = 768 };
  float res[2][3][ROWS * C];
  vkft_rng rng = vkft_rng_seed(5);
  float *xs = vkft_alloc(ROWS * C + 1), *ws = vkft_alloc(C + 1), *dout = vkft_alloc(ROWS * C);
  vkft_fill_uniform(&rng, xs, ROWS * C + 1, -2, 2);
  vkft_fill_uniform(&rng, ws, C + 1, -1, 1);
  vkft_fill_uniform(&rng, dout, ROWS * C, -1, 1);
  for (int k = 0; k < 2; k++) {
    vkf_context *ctx = ctxs[k];
    int64_t sbig[1] = {ROWS * C + 1}, swb[1] = {C + 1}, sx[2] = {ROWS, C}, sw[1] = {C},
            sr[1] = {ROWS};
    vkf_tensor xb = vkft_tensor_from(ctx, 1, sbig, xs), wb = vkft_tensor_from(ctx, 1, swb, ws);
    vkf_tensor x, w;
    VKFT_OK(vkf_tensor_view(ctx, xb, 1, 2, sx, &x)); /* 4 bytes past a 16-byte boundary */
    VKFT_OK(vkf_tensor_view(ctx, wb, 1, 1, sw, &w));
    vkf_tensor out = vkft_tensor(ctx, 2, sx), mean = vkft_tensor(ctx, 1, sr),
               rstd = vkft_tensor(ctx, 1, sr), dx = vkft_tensor(ctx, 2, sx),
               dw = vkft_tensor(ctx, 1, sw), go = vkft_tensor_from(ctx, 2, sx, dout);
    VKFT_OK(vkf_tensor_fill(ctx, dx, 0));
    VKFT_OK(vkf_tensor_fill(ctx, dw, 0));
    VKFT_OK(vkf_layernorm_forward(ctx, out, mean, rstd, x, w, VKF_NO_TENSOR, EPS));
    VKFT_OK(vkf_layernorm_backward(ctx, dx, dw, VKF_NO_TENSOR, go, x, w, mean, rstd));
    vkft_read(ctx, out, res[k][0], ROWS * C);
    vkft_read(ctx, dx, res[k][1], ROWS * C);
    /* in place: x's copy normalised onto itself */
    vkf_tensor xi = vkft_tensor_from(ctx, 2, sx, xs + 1);
    VKFT_OK(vkf_rmsnorm_forward(ctx, xi, VKF_NO_TENSOR, xi, w, EPS));
    vkft_read(ctx, xi, res[k][2], ROWS * C);
    vkf_tensor all[] = {xb, wb, x, w, out, mean, rstd, dx, dw, go, xi};
    for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
      VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
  }
  /* the in-place result against an out-of-place CPU run */
  shape s = {2, {ROWS, C}};
  inputs in;
  inputs_make(&in, &s, true, false, 1, false);
  memcpy(in.x, xs + 1, sizeof(float) * ROWS * C);
  memcpy(in.w, ws + 1, sizeof(float) * C);
  results ref = run(ctxs[1], &in, 0);
  size_t bad = check_f("unaligned layernorm out", res[0][0], res[1][0], ROWS * C, VK_FWD_ATOL,
                       VK_FWD_RTOL, VK_FWD_NERR);
  bad += check_f("unaligned layernorm dx", res[0][1], res[1][1], ROWS * C, VK_BWD_ATOL, VK_BWD_RTOL,
                 VK_BWD_NERR);
  bad += check_f("in-place rmsnorm (vulkan)", res[0][2], ref.out, ROWS * C, VK_FWD_ATOL,
                 VK_FWD_RTOL, VK_FWD_NERR);
  assert_memory_equal(res[1][2], ref.out, sizeof(float) * ROWS * C); /* CPU: same code */
  assert_int_equal(bad, 0);
  results_free(&ref);
  inputs_free(&in);
  free(xs);
  free(ws);
  free(dout);
  vkft_destroy(ctxs[0]);
  vkft_destroy(ctxs[1]);
}

/* ------------------------------------------------------------------------ */
/* 3. Accumulation, reproducibility                                         */
/* ------------------------------------------------------------------------ */
/* backward(G0) == G0 + backward(0), on each backend: the gradient adds.
 * The increment g is computed identically both times; the sum G0 + g is
 * rounded once (or fused into an FMA, which rounds g's product once less),
 * so the two differ by at most ~1 ulp of |G0| + |g|. */
static size_t check_sum(const char *what, const float *got, const float *g0, const float *g,
                        size_t n) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    double want = (double)g0[i] + g[i], bound = 2.4e-7 * (fabs(g0[i]) + fabs(g[i]));
    if (!(fabs(got[i] - want) <= bound)) {
      if (bad < 5)
        fprintf(stderr, "  %s[%zu]: got %.9g, expected %.9g + %.9g\n", what, i, (double)got[i],
                (double)g0[i], (double)g[i]);
      bad++;
    }
  }
  return bad;
}

static void accumulation_on(vkf_context *ctx, const char *name) {
  static const shape shapes[] = {{2, {3, 63}}, {2, {300, 17}}, {2, {17, 768}}};
  size_t bad = 0;
  for (size_t i = 0; i < VKFT_ARRAY_LEN(shapes); i++)
    for (int rms = 0; rms < 2; rms++) {
      uint32_t C = cols_of(&shapes[i]);
      size_t n = (size_t)rows_of(&shapes[i]) * C;
      inputs in0, in1;
      inputs_make(&in0, &shapes[i], rms, true, 50 + i, true);
      inputs_make(&in1, &shapes[i], rms, true, 50 + i, false);
      results z = run(ctx, &in0, WANT_DX | WANT_DW | WANT_DB);
      results a = run(ctx, &in1, WANT_DX | WANT_DW | WANT_DB);
      char what[96];
      snprintf(what, sizeof(what), "%s %s accumulate dx %zu", name, rms ? "rms" : "ln", i);
      bad += check_sum(what, a.dx, in1.dx0, z.dx, n);
      snprintf(what, sizeof(what), "%s %s accumulate dweight %zu", name, rms ? "rms" : "ln", i);
      bad += check_sum(what, a.dw, in1.dw0, z.dw, C);
      if (!rms) {
        snprintf(what, sizeof(what), "%s accumulate dbias %zu", name, i);
        bad += check_sum(what, a.db, in1.db0, z.db, C);
      }
      results_free(&z);
      results_free(&a);
      inputs_free(&in0);
      inputs_free(&in1);
    }
  assert_int_equal(bad, 0);
}

static void test_norm_accumulates(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  accumulation_on(cpu, "cpu");
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  accumulation_on(vk, "vulkan");
  vkft_destroy(vk);
}

/* Vulkan: no atomics, fixed summation order: two runs agree bit for bit. */
static void test_norm_vulkan_reproducible(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  shape s = {2, {300, 257}};
  for (int rms = 0; rms < 2; rms++) {
    inputs in;
    inputs_make(&in, &s, rms, true, 9, false);
    results a = run(vk, &in, WANT_DX | WANT_DW | WANT_DB);
    results b = run(vk, &in, WANT_DX | WANT_DW | WANT_DB);
    assert_memory_equal(a.out, b.out, 300 * 257 * sizeof(float));
    assert_memory_equal(a.dx, b.dx, 300 * 257 * sizeof(float));
    assert_memory_equal(a.dw, b.dw, 257 * sizeof(float));
    if (!rms)
      assert_memory_equal(a.db, b.db, 257 * sizeof(float));
    results_free(&a);
    results_free(&b);
    inputs_free(&in);
  }
  vkft_destroy(vk);
}

/* ------------------------------------------------------------------------ */
/* 4. Errors                                                                */
/* ------------------------------------------------------------------------ */
static void expect(vkf_context *ctx, vkf_status got, vkf_status want, const char *what) {
  if (got != want)
    fail_msg("%s: got %s, expected %s (%s)", what, vkf_status_name(got), vkf_status_name(want),
             vkf_context_error(ctx));
  if (want != VKF_OK && strlen(vkf_context_error(ctx)) == 0)
    fail_msg("%s: no error message", what);
}

static void error_cases(vkf_context *ctx) {
  const vkf_tensor NO = VKF_NO_TENSOR;
  int64_t s234[3] = {2, 3, 4}, s4[1] = {4}, s5[1] = {5}, s6[1] = {6}, s23[2] = {2, 3},
          s231[3] = {2, 3, 1}, s32[2] = {3, 2}, s244[3] = {2, 4, 4}, s48[1] = {48};
  vkf_tensor x = vkft_tensor(ctx, 3, s234), out = vkft_tensor(ctx, 3, s234),
             dout = vkft_tensor(ctx, 3, s234), dx = vkft_tensor(ctx, 3, s234);
  vkf_tensor w = vkft_tensor(ctx, 1, s4), b = vkft_tensor(ctx, 1, s4), dw = vkft_tensor(ctx, 1, s4),
             db = vkft_tensor(ctx, 1, s4), w5 = vkft_tensor(ctx, 1, s5);
  vkf_tensor mean = vkft_tensor(ctx, 2, s23), rstd = vkft_tensor(ctx, 1, s6),
             mean231 = vkft_tensor(ctx, 3, s231), bad_stats = vkft_tensor(ctx, 2, s32);
  vkf_tensor other = vkft_tensor(ctx, 3, s244), big = vkft_tensor(ctx, 1, s48), i32, view, view2;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 3, s234, &i32));
  VKFT_OK(vkf_tensor_view(ctx, big, 0, 3, s234, &view));   /* big[0..24) */
  VKFT_OK(vkf_tensor_view(ctx, big, 12, 3, s234, &view2)); /* big[12..36) */

  /* layernorm forward */
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, x, w, b, 1e-5f), VKF_OK, "ln valid");
  expect(ctx, vkf_layernorm_forward(ctx, out, NO, NO, x, w, NO, 0.0f), VKF_OK,
         "ln no stats, eps 0");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean231, mean231 /*overlap*/, x, w, b, 1e-5f),
         VKF_ERROR_INVALID_ARGUMENT, "ln mean and rstd the same tensor");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean231, rstd, x, w, b, 1e-5f), VKF_OK,
         "ln [.., 1] stats");
  expect(ctx, vkf_layernorm_forward(ctx, x, NO, NO, x, w, b, 1e-5f), VKF_OK, "ln in place");
  /* ln null ctx: no context, so no message */
  assert_int_equal(vkf_layernorm_forward(NULL, out, mean, rstd, x, w, b, 1e-5f),
                   VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_layernorm_forward(ctx, NO, mean, rstd, x, w, b, 1e-5f),
         VKF_ERROR_INVALID_ARGUMENT, "ln no out");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, NO, w, b, 1e-5f),
         VKF_ERROR_INVALID_ARGUMENT, "ln no x");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, x, NO, b, 1e-5f),
         VKF_ERROR_INVALID_ARGUMENT, "ln no weight");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, i32, w, b, 1e-5f),
         VKF_ERROR_DTYPE_MISMATCH, "ln i32 x");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, x, w, i32, 1e-5f),
         VKF_ERROR_DTYPE_MISMATCH, "ln i32 bias");
  expect(ctx, vkf_layernorm_forward(ctx, other, mean, rstd, x, w, b, 1e-5f),
         VKF_ERROR_SHAPE_MISMATCH, "ln out shape");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, x, w5, b, 1e-5f),
         VKF_ERROR_SHAPE_MISMATCH, "ln weight shape");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, x, w, w5, 1e-5f),
         VKF_ERROR_SHAPE_MISMATCH, "ln bias shape");
  expect(ctx, vkf_layernorm_forward(ctx, out, bad_stats, rstd, x, w, b, 1e-5f),
         VKF_ERROR_SHAPE_MISMATCH, "ln mean shape");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, w5, x, w, b, 1e-5f), VKF_ERROR_SHAPE_MISMATCH,
         "ln rstd shape");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, x, w, b, -1e-5f),
         VKF_ERROR_INVALID_ARGUMENT, "ln negative eps");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, x, w, b, NAN), VKF_ERROR_INVALID_ARGUMENT,
         "ln NaN eps");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, x, w, b, INFINITY),
         VKF_ERROR_INVALID_ARGUMENT, "ln inf eps");
  expect(ctx, vkf_layernorm_forward(ctx, view2, mean, rstd, view, w, b, 1e-5f),
         VKF_ERROR_INVALID_ARGUMENT, "ln out partly overlaps x");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, x, out, b, 1e-5f),
         VKF_ERROR_SHAPE_MISMATCH, "ln out as weight (shape first)");
  expect(ctx, vkf_layernorm_forward(ctx, w, NO, NO, w, w, NO, 1e-5f), VKF_ERROR_INVALID_ARGUMENT,
         "ln out overlaps weight");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, x, w, b, 1e-5f), VKF_OK, "ln again");

  /* layernorm backward */
  expect(ctx, vkf_layernorm_backward(ctx, dx, dw, db, dout, x, w, mean, rstd), VKF_OK,
         "ln bwd valid");
  expect(ctx, vkf_layernorm_backward(ctx, NO, dw, NO, dout, x, w, mean, rstd), VKF_OK,
         "ln bwd dweight only");
  expect(ctx, vkf_layernorm_backward(ctx, NO, NO, NO, dout, x, w, mean, rstd),
         VKF_ERROR_INVALID_ARGUMENT, "ln bwd nothing asked");
  /* ln bwd null ctx: no context, so no message */
  assert_int_equal(vkf_layernorm_backward(NULL, dx, dw, db, dout, x, w, mean, rstd),
                   VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_layernorm_backward(ctx, dx, dw, db, NO, x, w, mean, rstd),
         VKF_ERROR_INVALID_ARGUMENT, "ln bwd no dout");
  expect(ctx, vkf_layernorm_backward(ctx, dx, dw, db, dout, x, w, NO, rstd),
         VKF_ERROR_INVALID_ARGUMENT, "ln bwd no mean");
  expect(ctx, vkf_layernorm_backward(ctx, dx, dw, db, dout, x, w, mean, NO),
         VKF_ERROR_INVALID_ARGUMENT, "ln bwd no rstd");
  expect(ctx, vkf_layernorm_backward(ctx, i32, dw, db, dout, x, w, mean, rstd),
         VKF_ERROR_DTYPE_MISMATCH, "ln bwd i32 dx");
  expect(ctx, vkf_layernorm_backward(ctx, dx, dw, db, other, x, w, mean, rstd),
         VKF_ERROR_SHAPE_MISMATCH, "ln bwd dout shape");
  expect(ctx, vkf_layernorm_backward(ctx, other, dw, db, dout, x, w, mean, rstd),
         VKF_ERROR_SHAPE_MISMATCH, "ln bwd dx shape");
  expect(ctx, vkf_layernorm_backward(ctx, dx, w5, db, dout, x, w, mean, rstd),
         VKF_ERROR_SHAPE_MISMATCH, "ln bwd dweight shape");
  expect(ctx, vkf_layernorm_backward(ctx, dx, dw, w5, dout, x, w, mean, rstd),
         VKF_ERROR_SHAPE_MISMATCH, "ln bwd dbias shape");
  expect(ctx, vkf_layernorm_backward(ctx, dx, dw, db, dout, x, w5, mean, rstd),
         VKF_ERROR_SHAPE_MISMATCH, "ln bwd weight shape");
  expect(ctx, vkf_layernorm_backward(ctx, dx, dw, db, dout, x, w, bad_stats, rstd),
         VKF_ERROR_SHAPE_MISMATCH, "ln bwd mean shape");
  expect(ctx, vkf_layernorm_backward(ctx, dx, dw, db, dout, x, w, mean, bad_stats),
         VKF_ERROR_SHAPE_MISMATCH, "ln bwd rstd shape");
  expect(ctx, vkf_layernorm_backward(ctx, dx, dw, dw, dout, x, w, mean, rstd),
         VKF_ERROR_INVALID_ARGUMENT, "ln bwd dweight is dbias");
  expect(ctx, vkf_layernorm_backward(ctx, dout, dw, db, dout, x, w, mean, rstd),
         VKF_ERROR_INVALID_ARGUMENT, "ln bwd dx is dout");
  expect(ctx, vkf_layernorm_backward(ctx, x, dw, db, dout, x, w, mean, rstd),
         VKF_ERROR_INVALID_ARGUMENT, "ln bwd dx is x");
  expect(ctx, vkf_layernorm_backward(ctx, dx, w, db, dout, x, w, mean, rstd),
         VKF_ERROR_INVALID_ARGUMENT, "ln bwd dweight is weight");
  expect(ctx, vkf_layernorm_backward(ctx, view2, dw, db, view, x, w, mean, rstd),
         VKF_ERROR_INVALID_ARGUMENT, "ln bwd dx overlaps dout");
  vkf_tensor stale = dout;
  VKFT_OK(vkf_tensor_destroy(ctx, dout));
  expect(ctx, vkf_layernorm_backward(ctx, dx, dw, db, stale, x, w, mean, rstd),
         VKF_ERROR_STALE_HANDLE, "ln bwd stale dout");
  expect(ctx, vkf_layernorm_forward(ctx, out, mean, rstd, stale, w, b, 1e-5f),
         VKF_ERROR_STALE_HANDLE, "ln stale x");
  dout = vkft_tensor(ctx, 3, s234);

  /* rmsnorm forward / backward */
  expect(ctx, vkf_rmsnorm_forward(ctx, out, rstd, x, w, 1e-6f), VKF_OK, "rms valid");
  expect(ctx, vkf_rmsnorm_forward(ctx, out, NO, x, w, 1e-6f), VKF_OK, "rms no rstd");
  /* rms null ctx: no context, so no message */
  assert_int_equal(vkf_rmsnorm_forward(NULL, out, rstd, x, w, 1e-6f), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_rmsnorm_forward(ctx, out, rstd, x, NO, 1e-6f), VKF_ERROR_INVALID_ARGUMENT,
         "rms no weight");
  expect(ctx, vkf_rmsnorm_forward(ctx, out, rstd, i32, w, 1e-6f), VKF_ERROR_DTYPE_MISMATCH,
         "rms i32 x");
  expect(ctx, vkf_rmsnorm_forward(ctx, other, rstd, x, w, 1e-6f), VKF_ERROR_SHAPE_MISMATCH,
         "rms out shape");
  expect(ctx, vkf_rmsnorm_forward(ctx, out, rstd, x, w5, 1e-6f), VKF_ERROR_SHAPE_MISMATCH,
         "rms weight shape");
  expect(ctx, vkf_rmsnorm_forward(ctx, out, bad_stats, x, w, 1e-6f), VKF_ERROR_SHAPE_MISMATCH,
         "rms rstd shape");
  expect(ctx, vkf_rmsnorm_forward(ctx, out, rstd, x, w, -1.0f), VKF_ERROR_INVALID_ARGUMENT,
         "rms negative eps");
  expect(ctx, vkf_rmsnorm_forward(ctx, view2, rstd, view, w, 1e-6f), VKF_ERROR_INVALID_ARGUMENT,
         "rms out partly overlaps x");
  expect(ctx, vkf_rmsnorm_forward(ctx, x, NO, x, w, 1e-6f), VKF_OK, "rms in place");
  expect(ctx, vkf_rmsnorm_forward(ctx, out, rstd, x, w, 1e-6f), VKF_OK, "rms again");
  expect(ctx, vkf_rmsnorm_backward(ctx, dx, dw, dout, x, w, rstd), VKF_OK, "rms bwd valid");
  expect(ctx, vkf_rmsnorm_backward(ctx, dx, NO, dout, x, w, rstd), VKF_OK, "rms bwd dx only");
  expect(ctx, vkf_rmsnorm_backward(ctx, NO, NO, dout, x, w, rstd), VKF_ERROR_INVALID_ARGUMENT,
         "rms bwd nothing asked");
  /* rms bwd null ctx: no context, so no message */
  assert_int_equal(vkf_rmsnorm_backward(NULL, dx, dw, dout, x, w, rstd), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_rmsnorm_backward(ctx, dx, dw, dout, x, w, NO), VKF_ERROR_INVALID_ARGUMENT,
         "rms bwd no rstd");
  expect(ctx, vkf_rmsnorm_backward(ctx, dx, dw, i32, x, w, rstd), VKF_ERROR_DTYPE_MISMATCH,
         "rms bwd i32 dout");
  expect(ctx, vkf_rmsnorm_backward(ctx, dx, dw, dout, x, w, w5), VKF_ERROR_SHAPE_MISMATCH,
         "rms bwd rstd shape");
  expect(ctx, vkf_rmsnorm_backward(ctx, dx, w5, dout, x, w, rstd), VKF_ERROR_SHAPE_MISMATCH,
         "rms bwd dweight shape");
  expect(ctx, vkf_rmsnorm_backward(ctx, dx, dw, dout, other, w, rstd), VKF_ERROR_SHAPE_MISMATCH,
         "rms bwd x shape");
  expect(ctx, vkf_rmsnorm_backward(ctx, dx, rstd, dout, x, w, rstd), VKF_ERROR_SHAPE_MISMATCH,
         "rms bwd dweight [6]");
  expect(ctx, vkf_rmsnorm_backward(ctx, dx, dw, dout, x, dw, rstd), VKF_ERROR_INVALID_ARGUMENT,
         "rms bwd dweight is weight");
  expect(ctx, vkf_rmsnorm_backward(ctx, dx, dw, dx, x, w, rstd), VKF_ERROR_INVALID_ARGUMENT,
         "rms bwd dx is dout");
  vkf_tensor forged = {0x7fff0};
  expect(ctx, vkf_rmsnorm_backward(ctx, dx, dw, dout, x, w, forged), VKF_ERROR_STALE_HANDLE,
         "rms bwd forged rstd");
  VKFT_OK(vkf_synchronize(ctx));
  vkf_tensor all[] = {x,    out,  dout,    dx,        w,     b,     dw,   db,  w5,
                      mean, rstd, mean231, bad_stats, other, view2, view, big, i32};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
}

static void test_norm_errors(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  error_cases(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  error_cases(vk);
  vkft_destroy(vk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_norm_cpu_vs_reference),
      cmocka_unit_test(test_norm_cpu_thread_independent),
      cmocka_unit_test(test_layernorm_vulkan_vs_cpu),
      cmocka_unit_test(test_rmsnorm_vulkan_vs_cpu),
      cmocka_unit_test(test_layernorm_large_mean),
      cmocka_unit_test(test_norm_views_and_in_place),
      cmocka_unit_test(test_norm_accumulates),
      cmocka_unit_test(test_norm_vulkan_reproducible),
      cmocka_unit_test(test_norm_errors),
  };
  return cmocka_run_group_tests_name("norm", tests, NULL, NULL);
}
