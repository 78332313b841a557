/* gelu (erf and tanh forms), silu, swiglu, forward and backward:
 *  - CPU forward against a double-precision reference;
 *  - CPU backward against central finite differences of that reference,
 *    in double, for every input element;
 *  - Vulkan against the CPU backend on awkward shapes (last dim 1, 3, 17,
 *    63, 257, 768, 1000; rows 1, 3, 17, 300; batched; unaligned views),
 *    with extreme inputs (+-30, +-100) that must not give NaN;
 *  - backward adds into non-zero gradients;
 *  - every error status.
 * Set VKFT_VERBOSE=1 to print the worst errors seen per comparison. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum act { GELU_ERF, GELU_TANH, SILU, SWIGLU, ACT_COUNT } act;
static const char *act_names[ACT_COUNT] = {"gelu_erf", "gelu_tanh", "silu", "swiglu"};

/* ------------------------------------------------------------------------ */
/* Double-precision reference                                               */
/* ------------------------------------------------------------------------ */
/* The reference works in long double (64-bit mantissa on x86). */
static double ref_gelu_erf(double x) {
  long double X = x; /* 0.5 x (1 + erf(x / sqrt 2)), without cancellation for x < 0 */
  return (double)(0.5L * X * erfcl(-X / sqrtl(2.0L)));
}
/* 0.5 x (1 + tanh(u)), in long double; for u < 0, where 1 + tanh(u)
 * cancels, as x e^(2u) / (1 + e^(2u)) (= 0.5 x (1 - tanh|u|)). */
static double ref_gelu_tanh(double x) {
  long double X = x, u = sqrtl(2.0L / 3.14159265358979323846264338327950288L) *
                         (X + 0.044715L * X * X * X);
  if (u >= 0)
    return (double)(0.5L * X * (1.0L + tanhl(u)));
  long double e = expl(2.0L * u);
  return (double)(X * e / (1.0L + e));
}
static double ref_silu(double x) {
  long double X = x;
  return (double)(X / (1.0L + expl(-X)));
}
static double ref_unary(act a, double x) {
  return a == GELU_ERF ? ref_gelu_erf(x) : a == GELU_TANH ? ref_gelu_tanh(x) : ref_silu(x);
}

/* ------------------------------------------------------------------------ */
/* Comparison: element-wise bound and normalised error                      */
/* ------------------------------------------------------------------------ */
/* Normalised error: ||got - ref|| / ||ref||. */
#define NERR_FLOOR 1e-3

static size_t check(const char *what, const float *got, const double *ref, size_t n, double atol,
                    double rtol, double nerr_max) {
  size_t bad = vkft_compare(what, got, ref, n, atol, rtol);
  double e2 = 0, r2 = 0, worst = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(got[i]) || isinf(got[i])) {
      bad++; /* the reference is always finite here */
      continue;
    }
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
    fprintf(stderr, "  %-50s n=%-7zu max abs err %.3g, normalised err %.3g\n", what, n, worst,
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
/* Running the ops                                                          */
/* ------------------------------------------------------------------------ */
typedef struct act_case {
  act a;
  uint32_t ndim;
  int64_t d[4]; /* x's shape; for swiglu, gate_up's (last dim 2F) */
} act_case;

static size_t elems(const act_case *c) {
  size_t n = 1;
  for (uint32_t i = 0; i < c->ndim; i++)
    n *= (size_t)c->d[i];
  return n;
}
/* Elements of out / dout. */
static size_t out_elems(const act_case *c) {
  return c->a == SWIGLU ? elems(c) / 2 : elems(c);
}

/* Inputs: uniform in [-8, 8], with some extreme values mixed in. */
static void make_x(vkft_rng *rng, float *x, size_t n) {
  static const float extremes[] = {-100, -30, -12, -5, -1e-3f, 0, 1e-3f, 5, 12, 30, 100};
  vkft_fill_uniform(rng, x, n, -8, 8);
  for (size_t i = 0; i < n; i += 7)
    x[i] = extremes[(i / 7) % VKFT_ARRAY_LEN(extremes)];
}

static vkf_status forward(vkf_context *ctx, act a, vkf_tensor out, vkf_tensor x) {
  switch (a) {
  case GELU_ERF:
    return vkf_gelu_forward(ctx, out, x, VKF_GELU_ERF);
  case GELU_TANH:
    return vkf_gelu_forward(ctx, out, x, VKF_GELU_TANH);
  case SILU:
    return vkf_silu_forward(ctx, out, x);
  default:
    return vkf_swiglu_forward(ctx, out, x);
  }
}

static vkf_status backward(vkf_context *ctx, act a, vkf_tensor dx, vkf_tensor dout, vkf_tensor x) {
  switch (a) {
  case GELU_ERF:
    return vkf_gelu_backward(ctx, dx, dout, x, VKF_GELU_ERF);
  case GELU_TANH:
    return vkf_gelu_backward(ctx, dx, dout, x, VKF_GELU_TANH);
  case SILU:
    return vkf_silu_backward(ctx, dx, dout, x);
  default:
    return vkf_swiglu_backward(ctx, dx, dout, x);
  }
}

/* Forward into out[out_elems], then dx = dx0 + backward, on ctx. */
static void run(vkf_context *ctx, const act_case *c, const float *x, const float *dout,
                const float *dx0, float *out, float *dx) {
  size_t n = elems(c), no = out_elems(c);
  int64_t so[4];
  memcpy(so, c->d, sizeof(so));
  if (c->a == SWIGLU)
    so[c->ndim - 1] /= 2;
  vkf_tensor tx = vkft_tensor_from(ctx, c->ndim, c->d, x);
  vkf_tensor tout = vkft_tensor(ctx, c->ndim, so);
  vkf_tensor tdout = vkft_tensor_from(ctx, c->ndim, so, dout);
  vkf_tensor tdx = vkft_tensor_from(ctx, c->ndim, c->d, dx0);
  vkf_status st = forward(ctx, c->a, tout, tx);
  if (st != VKF_OK)
    fail_msg("%s forward: %s: %s", act_names[c->a], vkf_status_name(st), vkf_context_error(ctx));
  st = backward(ctx, c->a, tdx, tdout, tx);
  if (st != VKF_OK)
    fail_msg("%s backward: %s: %s", act_names[c->a], vkf_status_name(st), vkf_context_error(ctx));
  vkft_read(ctx, tout, out, no);
  vkft_read(ctx, tdx, dx, n);
  vkf_tensor all[] = {tx, tout, tdout, tdx};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
}

static void case_str(const act_case *c, char *buf, size_t n) {
  size_t o = (size_t)snprintf(buf, n, "%s [", act_names[c->a]);
  for (uint32_t i = 0; i < c->ndim; i++)
    o += (size_t)snprintf(buf + o, n - o, i ? ",%lld" : "%lld", (long long)c->d[i]);
  snprintf(buf + o, n - o, "]");
}

/* ------------------------------------------------------------------------ */
/* 1. CPU vs the double reference and finite differences                    */
/* ------------------------------------------------------------------------ */
/* The CPU evaluates each element in double and rounds once: within 1 ulp
 * (1.2e-7 relative). atol only for results that underflow (|x| >~ 13 on the
 * negative side of gelu, where the value is below 1e-37). */
#define CPU_FWD_ATOL 1e-30
#define CPU_FWD_RTOL 2.4e-7
#define CPU_FWD_NERR 1.2e-7
/* Backward vs central differences: the FD error is h^2 f'''/6 with h = 1e-4
 * relative to max(1, |x|) (~1e-9 for these smooth functions) plus rounding
 * 1e-16 |f| / h; the CPU's gradient is rounded once, then added to dx0 (one
 * more rounding of |dx0| ~ 1). So ~2 ulp of the sum; rtol covers the
 * gradient, atol the FD noise and the sum's rounding. */
#define CPU_BWD_ATOL 2e-7
#define CPU_BWD_RTOL 1e-6
#define CPU_BWD_NERR 2e-7

static size_t cpu_case(vkf_context *cpu, const act_case *c, uint64_t seed) {
  size_t n = elems(c), no = out_elems(c), bad = 0;
  vkft_rng rng = vkft_rng_seed(seed);
  float *x = vkft_alloc(n), *dout = vkft_alloc(no), *dx0 = vkft_alloc(n), *out = vkft_alloc(no),
        *dx = vkft_alloc(n);
  make_x(&rng, x, n);
  vkft_fill_uniform(&rng, dout, no, -1, 1);
  vkft_fill_uniform(&rng, dx0, n, -1, 1);
  run(cpu, c, x, dout, dx0, out, dx);

  double *ref = vkft_alloc_d(no), *g = vkft_alloc_d(n);
  uint32_t last = (uint32_t)c->d[c->ndim - 1], f = last / 2;
  for (size_t i = 0; i < no; i++) {
    if (c->a == SWIGLU) {
      size_t r = i / f, j = i % f;
      ref[i] = ref_silu(x[r * 2 * f + j]) * (double)x[r * 2 * f + f + j];
    } else {
      ref[i] = ref_unary(c->a, x[i]);
    }
  }
  /* d loss / d x by central differences of the loss sum(out * dout); each
   * input element affects one output element (two inputs for swiglu). */
  for (size_t i = 0; i < n; i++) {
    double v = x[i], h = 1e-4 * (fabs(v) > 1 ? fabs(v) : 1), lp, lm;
    if (c->a == SWIGLU) {
      size_t r = i / last, j = i % last, o = r * f + (j % f);
      double other = x[j < f ? i + f : i - f];
      if (j < f) { /* gate */
        lp = ref_silu(v + h) * other;
        lm = ref_silu(v - h) * other;
      } else { /* up */
        lp = ref_silu(other) * (v + h);
        lm = ref_silu(other) * (v - h);
      }
      g[i] = dx0[i] + dout[o] * (lp - lm) / (2 * h);
    } else {
      lp = ref_unary(c->a, v + h);
      lm = ref_unary(c->a, v - h);
      g[i] = dx0[i] + dout[i] * (lp - lm) / (2 * h);
    }
  }
  char name[96], what[128];
  case_str(c, name, sizeof(name));
  snprintf(what, sizeof(what), "cpu %s out", name);
  bad += check(what, out, ref, no, CPU_FWD_ATOL, CPU_FWD_RTOL, CPU_FWD_NERR);
  snprintf(what, sizeof(what), "cpu %s dx vs fd", name);
  bad += check(what, dx, g, n, CPU_BWD_ATOL, CPU_BWD_RTOL, CPU_BWD_NERR);
  free(x);
  free(dout);
  free(dx0);
  free(out);
  free(dx);
  free(ref);
  free(g);
  return bad;
}

static void test_act_cpu_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  static const int64_t shapes[][3] = {{1, 1, 2}, {1, 3, 34}, {2, 17, 6}, {1, 7, 514}};
  size_t bad = 0;
  for (int a = 0; a < ACT_COUNT; a++)
    for (size_t i = 0; i < VKFT_ARRAY_LEN(shapes); i++) {
      act_case c = {(act)a, 3, {shapes[i][0], shapes[i][1], shapes[i][2]}};
      bad += cpu_case(cpu, &c, 10 * (uint64_t)a + i);
    }
  /* a dense sweep of [-12, 12] through every function */
  enum { SWEEP = 24001 };
  for (int a = 0; a < ACT_COUNT - 1; a++) {
    act_case c = {(act)a, 1, {SWEEP}};
    float *x = vkft_alloc(SWEEP), *zeros = vkft_alloc(SWEEP), *out = vkft_alloc(SWEEP),
          *dx = vkft_alloc(SWEEP);
    double *ref = vkft_alloc_d(SWEEP);
    for (int i = 0; i < SWEEP; i++) {
      x[i] = -12.0f + 0.001f * (float)i;
      zeros[i] = 0;
      ref[i] = ref_unary((act)a, x[i]);
    }
    run(cpu, &c, x, zeros, zeros, out, dx);
    char what[64];
    snprintf(what, sizeof(what), "cpu %s sweep", act_names[a]);
    bad += check(what, out, ref, SWEEP, CPU_FWD_ATOL, CPU_FWD_RTOL, CPU_FWD_NERR);
    free(x);
    free(zeros);
    free(out);
    free(dx);
    free(ref);
  }
  assert_int_equal(bad, 0);
  vkft_destroy(cpu);
}

/* ------------------------------------------------------------------------ */
/* 2. Vulkan vs the CPU backend                                             */
/* ------------------------------------------------------------------------ */
/* Vulkan evaluates in float. exp() may be off by 3 + 2|x| ulp (the Vulkan
 * spec's bound), i.e. ~1e-6 relative for the |x| <= 8 arguments that
 * matter; the erfc fit is good to 1.2e-7 relative and rounding its
 * exponent -z^2 costs up to ~2e-6 relative at z ~ 6. So 1e-5 relative;
 * atol 1e-6 for values that vanish (gelu's tails, |result| < 1e-6) and for
 * cancellation in gradients of O(1); normalised 2e-6. */
#define VK_ATOL 1e-6
#define VK_RTOL 1e-5
#define VK_NERR 2e-6

static const uint32_t vk_cols[] = {1, 3, 17, 63, 257, 768, 1000};
static const uint32_t vk_rows[] = {1, 3, 17, 300};

static size_t vk_case(vkf_context *vk, vkf_context *cpu, const act_case *c, uint64_t seed) {
  size_t n = elems(c), no = out_elems(c), bad = 0;
  vkft_rng rng = vkft_rng_seed(seed);
  float *x = vkft_alloc(n), *dout = vkft_alloc(no), *dx0 = vkft_alloc(n);
  float *out[2] = {vkft_alloc(no), vkft_alloc(no)}, *dx[2] = {vkft_alloc(n), vkft_alloc(n)};
  make_x(&rng, x, n);
  vkft_fill_uniform(&rng, dout, no, -1, 1);
  vkft_fill_uniform(&rng, dx0, n, -1, 1);
  run(vk, c, x, dout, dx0, out[0], dx[0]);
  run(cpu, c, x, dout, dx0, out[1], dx[1]);
  char name[96], what[128];
  case_str(c, name, sizeof(name));
  snprintf(what, sizeof(what), "vulkan %s out", name);
  bad += check_f(what, out[0], out[1], no, VK_ATOL, VK_RTOL, VK_NERR);
  snprintf(what, sizeof(what), "vulkan %s dx", name);
  bad += check_f(what, dx[0], dx[1], n, VK_ATOL, VK_RTOL, VK_NERR);
  free(x);
  free(dout);
  free(dx0);
  for (int k = 0; k < 2; k++) {
    free(out[k]);
    free(dx[k]);
  }
  return bad;
}

static void vulkan_vs_cpu(act a) {
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  size_t bad = 0;
  uint64_t seed = 100 * (uint64_t)a;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(vk_cols); ci++)
    for (size_t ri = 0; ri < VKFT_ARRAY_LEN(vk_rows); ri++) {
      /* swiglu: F = the listed size, gate_up [rows, 2F] */
      act_case c = {a, 2, {vk_rows[ri], vk_cols[ci] * (a == SWIGLU ? 2 : 1)}};
      bad += vk_case(vk, cpu, &c, seed++);
    }
  static const int64_t batched[][4] = {{2, 3, 5, 34}, {4, 1, 25, 1536}, {1, 1, 1, 2}};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(batched); i++) {
    act_case c = {a, 4, {batched[i][0], batched[i][1], batched[i][2], batched[i][3]}};
    bad += vk_case(vk, cpu, &c, seed++);
  }
  act_case flat = {a, 1, {2 * 1001}};
  bad += vk_case(vk, cpu, &flat, seed++);
  if (a == GELU_TANH) {
    /* more workgroups than one grid dimension holds (65535 x 64 on
     * lavapipe; odd: the scalar kernel) */
    act_case huge = {a, 1, {64 * 65536 + 3}};
    bad += vk_case(vk, cpu, &huge, seed++);
  }
  assert_int_equal(bad, 0);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

static void test_gelu_erf_vulkan_vs_cpu(void **state) {
  (void)state;
  vulkan_vs_cpu(GELU_ERF);
}
static void test_gelu_tanh_vulkan_vs_cpu(void **state) {
  (void)state;
  vulkan_vs_cpu(GELU_TANH);
}
static void test_silu_vulkan_vs_cpu(void **state) {
  (void)state;
  vulkan_vs_cpu(SILU);
}
static void test_swiglu_vulkan_vs_cpu(void **state) {
  (void)state;
  vulkan_vs_cpu(SWIGLU);
}

/* Views that are not 16-byte aligned take the scalar kernels; in-place
 * forward (out == x). Vulkan against the CPU. */
static void test_act_views_and_in_place(void **state) {
  (void)state;
  vkf_context *ctxs[2] = {vkft_vulkan(), vkft_cpu()};
  enum { ROWS = 3, F = 256 };
  float res[2][ACT_COUNT][2][ROWS * 2 * F];
  vkft_rng rng = vkft_rng_seed(3);
  float *xs = vkft_alloc(ROWS * 2 * F + 1), *dout = vkft_alloc(ROWS * 2 * F);
  make_x(&rng, xs, ROWS * 2 * F + 1);
  vkft_fill_uniform(&rng, dout, ROWS * 2 * F, -1, 1);
  for (int k = 0; k < 2; k++) {
    vkf_context *ctx = ctxs[k];
    int64_t sbig[1] = {ROWS * 2 * F + 1}, sx[2] = {ROWS, 2 * F}, sh[2] = {ROWS, F};
    vkf_tensor big = vkft_tensor_from(ctx, 1, sbig, xs), x;
    VKFT_OK(vkf_tensor_view(ctx, big, 1, 2, sx, &x)); /* 4 bytes past alignment */
    for (int a = 0; a < ACT_COUNT; a++) {
      vkf_tensor out = vkft_tensor(ctx, 2, a == SWIGLU ? sh : sx);
      vkf_tensor go = vkft_tensor_from(ctx, 2, a == SWIGLU ? sh : sx, dout);
      vkf_tensor dx = vkft_tensor(ctx, 2, sx);
      VKFT_OK(vkf_tensor_fill(ctx, dx, 0));
      VKFT_OK(forward(ctx, (act)a, out, x));
      VKFT_OK(backward(ctx, (act)a, dx, go, x));
      vkft_read(ctx, out, res[k][a][0], a == SWIGLU ? ROWS * F : ROWS * 2 * F);
      vkft_read(ctx, dx, res[k][a][1], ROWS * 2 * F);
      if (a != SWIGLU) { /* in place on a copy of x, compared with `out` */
        vkf_tensor xi = vkft_tensor_from(ctx, 2, sx, xs + 1);
        VKFT_OK(forward(ctx, (act)a, xi, xi));
        float *got = vkft_alloc(ROWS * 2 * F);
        vkft_read(ctx, xi, got, ROWS * 2 * F);
        /* aligned (vec4 kernel on Vulkan) vs the unaligned view (scalar):
         * the same arithmetic, but a compiler may contract differently */
        char what[64];
        snprintf(what, sizeof(what), "%s in place", act_names[a]);
        assert_int_equal(check_f(what, got, res[k][a][0], ROWS * 2 * F, VK_ATOL, VK_RTOL, VK_NERR),
                         0);
        free(got);
        VKFT_OK(vkf_tensor_destroy(ctx, xi));
      }
      VKFT_OK(vkf_tensor_destroy(ctx, out));
      VKFT_OK(vkf_tensor_destroy(ctx, go));
      VKFT_OK(vkf_tensor_destroy(ctx, dx));
    }
    VKFT_OK(vkf_tensor_destroy(ctx, x));
    VKFT_OK(vkf_tensor_destroy(ctx, big));
  }
  size_t bad = 0;
  for (int a = 0; a < ACT_COUNT; a++) {
    char what[64];
    snprintf(what, sizeof(what), "unaligned %s out", act_names[a]);
    bad += check_f(what, res[0][a][0], res[1][a][0], a == SWIGLU ? ROWS * F : ROWS * 2 * F, VK_ATOL,
                   VK_RTOL, VK_NERR);
    snprintf(what, sizeof(what), "unaligned %s dx", act_names[a]);
    bad += check_f(what, res[0][a][1], res[1][a][1], ROWS * 2 * F, VK_ATOL, VK_RTOL, VK_NERR);
  }
  assert_int_equal(bad, 0);
  free(xs);
  free(dout);
  vkft_destroy(ctxs[0]);
  vkft_destroy(ctxs[1]);
}

/* ------------------------------------------------------------------------ */
/* 3. Accumulation                                                          */
/* ------------------------------------------------------------------------ */
/* backward(G0) == G0 + backward(0): the increment is computed identically
 * both times and the sum rounded once (or fused into an FMA), so they
 * differ by at most ~1 ulp of |G0| + |g|. */
static void accumulation_on(vkf_context *ctx, const char *name) {
  size_t bad = 0;
  for (int a = 0; a < ACT_COUNT; a++) {
    act_case c = {(act)a, 2, {17, 2 * 63}};
    size_t n = elems(&c), no = out_elems(&c);
    vkft_rng rng = vkft_rng_seed(60 + (uint64_t)a);
    float *x = vkft_alloc(n), *dout = vkft_alloc(no), *g0 = vkft_alloc(n), *zeros = vkft_alloc(n);
    float *out = vkft_alloc(no), *dz = vkft_alloc(n), *da = vkft_alloc(n);
    make_x(&rng, x, n);
    vkft_fill_uniform(&rng, dout, no, -1, 1);
    vkft_fill_uniform(&rng, g0, n, -1, 1);
    memset(zeros, 0, n * sizeof(float));
    run(ctx, &c, x, dout, zeros, out, dz);
    run(ctx, &c, x, dout, g0, out, da);
    for (size_t i = 0; i < n; i++) {
      double want = (double)g0[i] + dz[i], bound = 2.4e-7 * (fabs(g0[i]) + fabs(dz[i]));
      if (!(fabs(da[i] - want) <= bound)) {
        if (bad < 5)
          fprintf(stderr, "  %s %s accumulate [%zu]: got %.9g, expected %.9g + %.9g\n", name,
                  act_names[a], i, (double)da[i], (double)g0[i], (double)dz[i]);
        bad++;
      }
    }
    free(x);
    free(dout);
    free(g0);
    free(zeros);
    free(out);
    free(dz);
    free(da);
  }
  assert_int_equal(bad, 0);
}

static void test_act_accumulates(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  accumulation_on(cpu, "cpu");
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  accumulation_on(vk, "vulkan");
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
  int64_t s24[2] = {2, 4}, s42[2] = {4, 2}, s22[2] = {2, 2}, s8[1] = {8}, s23[2] = {2, 3},
          s32[2] = {3, 2}, s16[1] = {16};
  vkf_tensor x = vkft_tensor(ctx, 2, s24), out = vkft_tensor(ctx, 2, s24),
             dout = vkft_tensor(ctx, 2, s24), dx = vkft_tensor(ctx, 2, s24);
  vkf_tensor t42 = vkft_tensor(ctx, 2, s42), t8 = vkft_tensor(ctx, 1, s8);
  vkf_tensor half = vkft_tensor(ctx, 2, s22), dhalf = vkft_tensor(ctx, 2, s22),
             odd = vkft_tensor(ctx, 2, s23), odd_half = vkft_tensor(ctx, 2, s32);
  vkf_tensor big = vkft_tensor(ctx, 1, s16), i32, v0, v1;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, s24, &i32));
  VKFT_OK(vkf_tensor_view(ctx, big, 0, 2, s24, &v0)); /* big[0..8) */
  VKFT_OK(vkf_tensor_view(ctx, big, 4, 2, s24, &v1)); /* big[4..12) */

  /* gelu */
  expect(ctx, vkf_gelu_forward(ctx, out, x, VKF_GELU_ERF), VKF_OK, "gelu valid");
  expect(ctx, vkf_gelu_forward(ctx, x, x, VKF_GELU_TANH), VKF_OK, "gelu in place");
  /* gelu null ctx: no context, so no message */
  assert_int_equal(vkf_gelu_forward(NULL, out, x, VKF_GELU_ERF), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_gelu_forward(ctx, out, x, (vkf_gelu_approx)7), VKF_ERROR_INVALID_ARGUMENT,
         "gelu bad approx");
  expect(ctx, vkf_gelu_forward(ctx, NO, x, VKF_GELU_ERF), VKF_ERROR_INVALID_ARGUMENT,
         "gelu no out");
  expect(ctx, vkf_gelu_forward(ctx, out, i32, VKF_GELU_ERF), VKF_ERROR_DTYPE_MISMATCH, "gelu i32");
  expect(ctx, vkf_gelu_forward(ctx, t42, x, VKF_GELU_ERF), VKF_ERROR_SHAPE_MISMATCH, "gelu shape");
  expect(ctx, vkf_gelu_forward(ctx, t8, x, VKF_GELU_ERF), VKF_ERROR_SHAPE_MISMATCH,
         "gelu same count, other shape");
  expect(ctx, vkf_gelu_forward(ctx, v1, v0, VKF_GELU_ERF), VKF_ERROR_INVALID_ARGUMENT,
         "gelu partial overlap");
  expect(ctx, vkf_gelu_backward(ctx, dx, dout, x, VKF_GELU_TANH), VKF_OK, "gelu bwd valid");
  /* gelu bwd null ctx: no context, so no message */
  assert_int_equal(vkf_gelu_backward(NULL, dx, dout, x, VKF_GELU_TANH), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_gelu_backward(ctx, dx, dout, x, (vkf_gelu_approx)-1), VKF_ERROR_INVALID_ARGUMENT,
         "gelu bwd bad approx");
  expect(ctx, vkf_gelu_backward(ctx, dx, NO, x, VKF_GELU_ERF), VKF_ERROR_INVALID_ARGUMENT,
         "gelu bwd no dout");
  expect(ctx, vkf_gelu_backward(ctx, dx, dout, i32, VKF_GELU_ERF), VKF_ERROR_DTYPE_MISMATCH,
         "gelu bwd i32");
  expect(ctx, vkf_gelu_backward(ctx, dx, t42, x, VKF_GELU_ERF), VKF_ERROR_SHAPE_MISMATCH,
         "gelu bwd dout shape");
  expect(ctx, vkf_gelu_backward(ctx, t42, dout, x, VKF_GELU_ERF), VKF_ERROR_SHAPE_MISMATCH,
         "gelu bwd dx shape");
  expect(ctx, vkf_gelu_backward(ctx, dout, dout, x, VKF_GELU_ERF), VKF_ERROR_INVALID_ARGUMENT,
         "gelu bwd dx is dout");
  expect(ctx, vkf_gelu_backward(ctx, x, dout, x, VKF_GELU_ERF), VKF_ERROR_INVALID_ARGUMENT,
         "gelu bwd dx is x");

  /* silu */
  expect(ctx, vkf_silu_forward(ctx, out, x), VKF_OK, "silu valid");
  expect(ctx, vkf_silu_forward(ctx, x, x), VKF_OK, "silu in place");
  /* silu null ctx: no context, so no message */
  assert_int_equal(vkf_silu_forward(NULL, out, x), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_silu_forward(ctx, out, NO), VKF_ERROR_INVALID_ARGUMENT, "silu no x");
  expect(ctx, vkf_silu_forward(ctx, i32, x), VKF_ERROR_DTYPE_MISMATCH, "silu i32 out");
  expect(ctx, vkf_silu_forward(ctx, t42, x), VKF_ERROR_SHAPE_MISMATCH, "silu shape");
  expect(ctx, vkf_silu_forward(ctx, v0, v1), VKF_ERROR_INVALID_ARGUMENT, "silu partial overlap");
  expect(ctx, vkf_silu_backward(ctx, dx, dout, x), VKF_OK, "silu bwd valid");
  /* silu bwd null ctx: no context, so no message */
  assert_int_equal(vkf_silu_backward(NULL, dx, dout, x), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_silu_backward(ctx, NO, dout, x), VKF_ERROR_INVALID_ARGUMENT, "silu bwd no dx");
  expect(ctx, vkf_silu_backward(ctx, dx, i32, x), VKF_ERROR_DTYPE_MISMATCH, "silu bwd i32");
  expect(ctx, vkf_silu_backward(ctx, dx, dout, t42), VKF_ERROR_SHAPE_MISMATCH, "silu bwd x shape");
  expect(ctx, vkf_silu_backward(ctx, v1, v0, x), VKF_ERROR_INVALID_ARGUMENT,
         "silu bwd dx overlaps dout");

  /* swiglu: gate_up [2, 4] -> out [2, 2] */
  expect(ctx, vkf_swiglu_forward(ctx, half, x), VKF_OK, "swiglu valid");
  /* swiglu null ctx: no context, so no message */
  assert_int_equal(vkf_swiglu_forward(NULL, half, x), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_swiglu_forward(ctx, half, NO), VKF_ERROR_INVALID_ARGUMENT, "swiglu no x");
  expect(ctx, vkf_swiglu_forward(ctx, half, i32), VKF_ERROR_DTYPE_MISMATCH, "swiglu i32");
  expect(ctx, vkf_swiglu_forward(ctx, out, x), VKF_ERROR_SHAPE_MISMATCH, "swiglu out not halved");
  expect(ctx, vkf_swiglu_forward(ctx, odd_half, odd), VKF_ERROR_SHAPE_MISMATCH,
         "swiglu odd last dim");
  expect(ctx, vkf_swiglu_forward(ctx, t8, x), VKF_ERROR_SHAPE_MISMATCH, "swiglu out rank");
  vkf_tensor vh;
  VKFT_OK(vkf_tensor_view(ctx, big, 2, 2, s22, &vh)); /* big[2..6): inside v0 */
  expect(ctx, vkf_swiglu_forward(ctx, vh, v0), VKF_ERROR_INVALID_ARGUMENT, "swiglu overlap");
  expect(ctx, vkf_swiglu_backward(ctx, dx, dhalf, x), VKF_OK, "swiglu bwd valid");
  /* swiglu bwd null ctx: no context, so no message */
  assert_int_equal(vkf_swiglu_backward(NULL, dx, dhalf, x), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_swiglu_backward(ctx, dx, NO, x), VKF_ERROR_INVALID_ARGUMENT,
         "swiglu bwd no dout");
  expect(ctx, vkf_swiglu_backward(ctx, dx, dhalf, i32), VKF_ERROR_DTYPE_MISMATCH, "swiglu bwd i32");
  expect(ctx, vkf_swiglu_backward(ctx, dx, dout, x), VKF_ERROR_SHAPE_MISMATCH,
         "swiglu bwd dout not halved");
  expect(ctx, vkf_swiglu_backward(ctx, half, dhalf, x), VKF_ERROR_SHAPE_MISMATCH,
         "swiglu bwd dgate_up shape");
  expect(ctx, vkf_swiglu_backward(ctx, x, dhalf, x), VKF_ERROR_INVALID_ARGUMENT,
         "swiglu bwd dgate_up is gate_up");
  expect(ctx, vkf_swiglu_backward(ctx, v0, vh, dx), VKF_ERROR_INVALID_ARGUMENT,
         "swiglu bwd dgate_up overlaps dout");
  vkf_tensor stale = x;
  VKFT_OK(vkf_tensor_destroy(ctx, x));
  expect(ctx, vkf_gelu_forward(ctx, out, stale, VKF_GELU_ERF), VKF_ERROR_STALE_HANDLE,
         "gelu stale");
  expect(ctx, vkf_silu_backward(ctx, dx, dout, stale), VKF_ERROR_STALE_HANDLE, "silu bwd stale");
  expect(ctx, vkf_swiglu_forward(ctx, half, stale), VKF_ERROR_STALE_HANDLE, "swiglu stale");
  vkf_tensor forged = {0x7fff0};
  expect(ctx, vkf_swiglu_backward(ctx, forged, dhalf, dx), VKF_ERROR_STALE_HANDLE,
         "swiglu bwd forged");
  VKFT_OK(vkf_synchronize(ctx));
  vkf_tensor all[] = {out, dout, dx, t42, t8, half, dhalf, odd, odd_half, big, i32, v0, v1, vh};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
}

static void test_act_errors(void **state) {
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
      cmocka_unit_test(test_act_cpu_vs_reference),    cmocka_unit_test(test_gelu_erf_vulkan_vs_cpu),
      cmocka_unit_test(test_gelu_tanh_vulkan_vs_cpu), cmocka_unit_test(test_silu_vulkan_vs_cpu),
      cmocka_unit_test(test_swiglu_vulkan_vs_cpu),    cmocka_unit_test(test_act_views_and_in_place),
      cmocka_unit_test(test_act_accumulates),         cmocka_unit_test(test_act_errors),
  };
  return cmocka_run_group_tests_name("act", tests, NULL, NULL);
}
