/* xent family: vkf_cross_entropy, vkf_cross_entropy_backward. CPU forward
 * against a double reference, CPU backward against central finite
 * differences of a double forward, Vulkan against the CPU backend on awkward
 * shapes (one row, one class, V = 50257, classes on axis 1 as ONNX has them,
 * all rows ignored, large logits), every reduction, weights, log_prob,
 * accumulation, determinism, and every error status. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct xent_case {
  uint32_t ndim;
  int64_t shape[4];
  int32_t axis;
  int weights;
  int32_t ignore;    /* ignore_index */
  float ignore_frac; /* fraction of targets set to ignore_index */
  vkf_reduction red;
  int log_prob;
  float scale; /* logits uniform in [-scale, scale] */
} xent_case;

#define MEAN VKF_REDUCTION_MEAN
#define SUM VKF_REDUCTION_SUM
#define NONE VKF_REDUCTION_NONE
#define NOIG VKF_NO_IGNORE_INDEX
static const xent_case cases[] = {
    {2, {1, 1}, -1, 0, NOIG, 0, MEAN, 1, 1},         /* one row, one class */
    {2, {1, 5}, -1, 0, -100, 0, SUM, 0, 2},          /* a single token */
    {1, {9}, 0, 1, NOIG, 0, MEAN, 1, 3},             /* 1-D logits */
    {2, {3, 5}, 1, 1, 2, 0.3f, MEAN, 1, 2},          /* ONNX test_sce_mean_weight_ii */
    {3, {3, 5, 6}, 1, 1, -1, 0.2f, MEAN, 1, 2},      /* ONNX NCd1, negative ii */
    {3, {3, 5, 6}, 1, 0, 10, 0.2f, SUM, 0, 2},       /* ii past the classes */
    {4, {3, 5, 2, 7}, 1, 0, 2, 0.25f, NONE, 1, 2},   /* ONNX NCd1d2, none */
    {3, {2, 3, 257}, -1, 0, -100, 0.2f, NONE, 1, 4}, /* batched, classes last */
    {2, {17, 63}, -1, 1, -100, 0.1f, MEAN, 0, 5},
    {2, {5, 65}, -1, 0, 7, 1.0f, MEAN, 1, 1},        /* every row ignored: NaN mean */
    {2, {6, 33}, -1, 0, NOIG, 0, MEAN, 0, 3000},     /* large logits */
    {2, {3, 50257}, -1, 0, -100, 0.34f, MEAN, 1, 8}, /* GPT-2 vocabulary */
    {3, {2, 2, 1031}, -1, 1, 0, 0.1f, SUM, 0, 6},    /* ignore class 0 */
};

typedef struct xent_data {
  size_t n, rows;
  uint32_t V;
  float *logits, *w, *dl0, *dloss;
  int32_t *tgt;
} xent_data;

static void layout(const xent_case *c, uint32_t *V, size_t *outer, size_t *inner) {
  int32_t ax = c->axis < 0 ? c->axis + (int32_t)c->ndim : c->axis;
  *outer = *inner = 1;
  for (int32_t i = 0; i < (int32_t)c->ndim; i++) {
    if (i < ax)
      *outer *= (size_t)c->shape[i];
    else if (i > ax)
      *inner *= (size_t)c->shape[i];
  }
  *V = (uint32_t)c->shape[ax];
}

static xent_data make_data(const xent_case *c, vkft_rng *rng) {
  xent_data d;
  size_t outer, inner;
  layout(c, &d.V, &outer, &inner);
  d.rows = outer * inner;
  d.n = d.rows * d.V;
  d.logits = vkft_alloc(d.n);
  d.w = vkft_alloc(d.V);
  d.dl0 = vkft_alloc(d.n);
  d.dloss = vkft_alloc(d.rows);
  d.tgt = malloc(d.rows * sizeof(int32_t));
  assert_non_null(d.tgt);
  vkft_fill_uniform(rng, d.logits, d.n, -c->scale, c->scale);
  vkft_fill_uniform(rng, d.w, d.V, 0.2f, 2.0f);
  vkft_fill_uniform(rng, d.dl0, d.n, -1, 1);
  vkft_fill_uniform(rng, d.dloss, d.rows, 0.5f, 1.5f);
  for (size_t r = 0; r < d.rows; r++) {
    uint32_t t = (uint32_t)vkft_uniform(rng, 0, (float)d.V);
    d.tgt[r] = (int32_t)(t < d.V ? t : d.V - 1);
    if (vkft_uniform(rng, 0, 1) < c->ignore_frac)
      d.tgt[r] = c->ignore;
  }
  return d;
}

static void free_data(xent_data *d) {
  free(d->logits);
  free(d->w);
  free(d->dl0);
  free(d->dloss);
  free(d->tgt);
}

static size_t elem(const xent_case *c, size_t r, uint32_t k) {
  uint32_t V;
  size_t outer, inner;
  layout(c, &V, &outer, &inner);
  size_t o = r / inner, i = r % inner;
  return (o * V + k) * inner + i;
}

/* Double reference from double logits: per-row losses, log_prob, the
 * reduced loss. */
static double ref_forward(const xent_case *c, const xent_data *d, const double *x, double *losses,
                          double *logp) {
  double sum = 0, den = 0;
  for (size_t r = 0; r < d->rows; r++) {
    double m = -INFINITY;
    for (uint32_t k = 0; k < d->V; k++)
      m = fmax(m, x[elem(c, r, k)]);
    double s = 0;
    for (uint32_t k = 0; k < d->V; k++)
      s += exp(x[elem(c, r, k)] - m);
    double lse = m + log(s);
    if (logp)
      for (uint32_t k = 0; k < d->V; k++)
        logp[elem(c, r, k)] = x[elem(c, r, k)] - lse;
    int32_t t = d->tgt[r];
    double l = 0, w = 0;
    if (t != c->ignore) {
      w = c->weights ? d->w[t] : 1.0;
      l = w * (lse - x[elem(c, r, (uint32_t)t)]);
    }
    losses[r] = l;
    sum += l;
    den += w;
  }
  return c->red == MEAN ? sum / den : sum;
}

/* dlogits = dl0 + d(L)/d(logits), L = dloss * loss (MEAN/SUM) or
 * sum(dloss[r] * losses[r]) (NONE), analytically in double. */
static void ref_backward(const xent_case *c, const xent_data *d, double *out) {
  double den = 0;
  for (size_t r = 0; r < d->rows; r++)
    if (d->tgt[r] != c->ignore)
      den += c->weights ? d->w[d->tgt[r]] : 1.0;
  for (size_t i = 0; i < d->n; i++)
    out[i] = d->dl0[i];
  for (size_t r = 0; r < d->rows; r++) {
    int32_t t = d->tgt[r];
    if (t == c->ignore)
      continue;
    double g = c->red == NONE ? d->dloss[r] : c->red == SUM ? d->dloss[0] : d->dloss[0] / den;
    g *= c->weights ? d->w[t] : 1.0;
    double m = -INFINITY, s = 0;
    for (uint32_t k = 0; k < d->V; k++)
      m = fmax(m, d->logits[elem(c, r, k)]);
    for (uint32_t k = 0; k < d->V; k++)
      s += exp(d->logits[elem(c, r, k)] - m);
    for (uint32_t k = 0; k < d->V; k++) {
      double p = exp(d->logits[elem(c, r, k)] - m) / s;
      out[elem(c, r, k)] += g * (p - ((uint32_t)t == k ? 1.0 : 0.0));
    }
  }
}

static vkf_tensor targets_tensor(vkf_context *ctx, const xent_case *c, const int32_t *tgt) {
  int32_t ax = c->axis < 0 ? c->axis + (int32_t)c->ndim : c->axis;
  int64_t s[4];
  uint32_t nd = 0;
  for (int32_t i = 0; i < (int32_t)c->ndim; i++)
    if (i != ax)
      s[nd++] = c->shape[i];
  if (nd == 0)
    s[nd++] = 1;
  vkf_tensor t;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, nd, s, &t));
  vkf_tensor_info info;
  VKFT_OK(vkf_tensor_info_get(ctx, t, &info));
  VKFT_OK(vkf_tensor_write(ctx, t, tgt, info.bytes));
  return t;
}

/* A float tensor with the targets' shape. */
static vkf_tensor rows_tensor(vkf_context *ctx, const xent_case *c, const float *data) {
  int32_t ax = c->axis < 0 ? c->axis + (int32_t)c->ndim : c->axis;
  int64_t s[4];
  uint32_t nd = 0;
  for (int32_t i = 0; i < (int32_t)c->ndim; i++)
    if (i != ax)
      s[nd++] = c->shape[i];
  if (nd == 0)
    s[nd++] = 1;
  return data ? vkft_tensor_from(ctx, nd, s, data) : vkft_tensor(ctx, nd, s);
}

typedef struct xent_out {
  float *losses, *logp, loss;
} xent_out;

static xent_out run_forward(vkf_context *ctx, const xent_case *c, const xent_data *d) {
  int64_t sv[1] = {d->V}, s1[1] = {1};
  vkf_tensor x = vkft_tensor_from(ctx, c->ndim, c->shape, d->logits);
  vkf_tensor t = targets_tensor(ctx, c, d->tgt), ls = rows_tensor(ctx, c, NULL);
  vkf_tensor l = c->red == NONE ? VKF_NO_TENSOR : vkft_tensor(ctx, 1, s1);
  vkf_tensor lp = c->log_prob ? vkft_tensor(ctx, c->ndim, c->shape) : VKF_NO_TENSOR;
  vkf_tensor w = c->weights ? vkft_tensor_from(ctx, 1, sv, d->w) : VKF_NO_TENSOR;
  vkf_status st = vkf_cross_entropy(ctx, ls, l, lp, x, t, w, c->axis, c->ignore, c->red);
  if (st != VKF_OK)
    fail_msg("vkf_cross_entropy: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  xent_out o = {vkft_alloc(d->rows), c->log_prob ? vkft_alloc(d->n) : NULL, NAN};
  vkft_read(ctx, ls, o.losses, d->rows);
  if (c->log_prob)
    vkft_read(ctx, lp, o.logp, d->n);
  if (l.id)
    vkft_read(ctx, l, &o.loss, 1);
  vkf_tensor all[6] = {x, t, ls, l, lp, w};
  for (int i = 0; i < 6; i++)
    if (all[i].id)
      VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
  return o;
}

static float *run_backward(vkf_context *ctx, const xent_case *c, const xent_data *d) {
  int64_t sv[1] = {d->V}, s1[1] = {1};
  vkf_tensor x = vkft_tensor_from(ctx, c->ndim, c->shape, d->logits);
  vkf_tensor dx = vkft_tensor_from(ctx, c->ndim, c->shape, d->dl0);
  vkf_tensor t = targets_tensor(ctx, c, d->tgt);
  vkf_tensor dl =
      c->red == NONE ? rows_tensor(ctx, c, d->dloss) : vkft_tensor_from(ctx, 1, s1, d->dloss);
  vkf_tensor w = c->weights ? vkft_tensor_from(ctx, 1, sv, d->w) : VKF_NO_TENSOR;
  vkf_status st = vkf_cross_entropy_backward(ctx, dx, dl, x, t, w, c->axis, c->ignore, c->red);
  if (st != VKF_OK)
    fail_msg("vkf_cross_entropy_backward: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  float *res = vkft_alloc(d->n);
  vkft_read(ctx, dx, res, d->n);
  vkf_tensor all[5] = {x, dx, t, dl, w};
  for (int i = 0; i < 5; i++)
    if (all[i].id)
      VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
  return res;
}

static float max_abs(const float *x, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++)
    m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
  return m;
}

/* Compares a scalar, both NaN counting as equal. */
static size_t compare_scalar(const char *what, float got, double want, double atol, double rtol) {
  if (isnan(want) && isnan(got))
    return 0;
  return vkft_compare(what, &got, &want, 1, atol, rtol);
}

/* Tolerances. CPU: double arithmetic rounded once: 2e-7 relative, plus
 * 1e-7 absolute (losses and log_prob near 0; gradients added to dl0 in
 * [-1, 1]). Vulkan: float exp, sums of V terms and log: logsumexp within
 * ~2e-6 absolute for moderate logits, plus 0.5 ulp of the largest logit
 * (the float logsumexp is rounded at that magnitude); gradients
 * g * w * p within ~1e-6 relative of each probability. */
static void check_case(size_t ci, const xent_case *c, const xent_data *d, vkf_context *ctx,
                       vkf_context *cpu, size_t *failures) {
  char what[96];
  double *xd = vkft_alloc_d(d->n), *ls = vkft_alloc_d(d->rows), *lp = vkft_alloc_d(d->n);
  for (size_t i = 0; i < d->n; i++)
    xd[i] = d->logits[i];
  double loss = ref_forward(c, d, xd, ls, lp);
  double big = max_abs(d->logits, d->n);
  double atol = cpu ? 1e-5 + 2.4e-7 * big : 1e-7, rtol = cpu ? 1e-5 : 2e-7;
  double wmax = c->weights ? 2.0 : 1.0;
  xent_out o = run_forward(ctx, c, d);
  snprintf(what, sizeof(what), "case %zu losses", ci);
  *failures += vkft_compare(what, o.losses, ls, d->rows, atol * wmax, rtol);
  if (c->log_prob) {
    snprintf(what, sizeof(what), "case %zu log_prob", ci);
    *failures += vkft_compare(what, o.logp, lp, d->n, atol, rtol);
  }
  if (c->red != NONE) {
    snprintf(what, sizeof(what), "case %zu loss", ci);
    *failures += compare_scalar(what, o.loss, loss, atol * wmax, rtol);
    if (c->ignore_frac >= 1.0f && !isnan(o.loss))
      fail_msg("case %zu: mean over no counted rows should be NaN, got %g", ci, (double)o.loss);
  }
  double *dref = vkft_alloc_d(d->n);
  ref_backward(c, d, dref);
  float *dg = run_backward(ctx, c, d);
  snprintf(what, sizeof(what), "case %zu dlogits", ci);
  *failures += vkft_compare(what, dg, dref, d->n, cpu ? 4e-7 : 1e-7, cpu ? 1e-6 : 2e-7);
  if (cpu) {
    /* against the CPU backend too, and deterministic on this device */
    xent_out oc = run_forward(cpu, c, d), o2 = run_forward(ctx, c, d);
    snprintf(what, sizeof(what), "case %zu losses vs CPU", ci);
    *failures += vkft_compare_f(what, o.losses, oc.losses, d->rows, atol * wmax, rtol);
    *failures += memcmp(o.losses, o2.losses, d->rows * sizeof(float)) != 0;
    *failures += memcmp(&o.loss, &o2.loss, sizeof(float)) != 0;
    float *dc = run_backward(cpu, c, d), *d2 = run_backward(ctx, c, d);
    snprintf(what, sizeof(what), "case %zu dlogits vs CPU", ci);
    *failures += vkft_compare_f(what, dg, dc, d->n, 4e-7, 1e-6);
    *failures += memcmp(dg, d2, d->n * sizeof(float)) != 0;
    free(dc);
    free(d2);
    free(oc.losses);
    free(oc.logp);
    free(o2.losses);
    free(o2.logp);
  }
  free(dg);
  free(dref);
  free(o.losses);
  free(o.logp);
  free(xd);
  free(ls);
  free(lp);
}

static void all_cases(vkf_context *ctx, vkf_context *cpu) {
  vkft_rng rng = vkft_rng_seed(77);
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(cases); ci++) {
    xent_data d = make_data(&cases[ci], &rng);
    check_case(ci, &cases[ci], &d, ctx, cpu, &failures);
    free_data(&d);
  }
  assert_int_equal(failures, 0);
}

static void test_xent_cpu_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  all_cases(cpu, NULL);
  VKFT_OK(vkf_context_set_threads(cpu, 1));
  all_cases(cpu, NULL);
  vkft_destroy(cpu);
}

static void test_xent_vulkan_vs_reference_and_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  all_cases(vk, cpu);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* Tensors in memory the host cannot map (the discrete-GPU path): targets
 * come back for the host check through staging copies. */
static void test_xent_vulkan_staging(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan_flags(VKF_CONTEXT_FORCE_STAGING);
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(78);
  size_t failures = 0;
  for (size_t ci = 3; ci < 9; ci++) {
    xent_data d = make_data(&cases[ci], &rng);
    check_case(ci, &cases[ci], &d, vk, cpu, &failures);
    free_data(&d);
  }
  assert_int_equal(failures, 0);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* Central differences of L(logits) (the double forward, reduced as the case
 * says and weighted by dloss) against the CPU backward started from zero. */
static void test_xent_backward_finite_differences(void **state) {
  (void)state;
  static const xent_case fd_cases[] = {
      {2, {4, 7}, -1, 0, -100, 0.25f, MEAN, 0, 2},
      {3, {2, 5, 3}, 1, 1, 1, 0.3f, MEAN, 0, 2},
      {2, {3, 6}, -1, 1, NOIG, 0, SUM, 0, 2},
      {3, {2, 4, 3}, 1, 0, 3, 0.3f, NONE, 0, 2},
  };
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(8);
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(fd_cases); ci++) {
    const xent_case *c = &fd_cases[ci];
    xent_data d = make_data(c, &rng);
    memset(d.dl0, 0, d.n * sizeof(float));
    double *xd = vkft_alloc_d(d.n), *ls = vkft_alloc_d(d.rows), *fd = vkft_alloc_d(d.n);
    for (size_t i = 0; i < d.n; i++)
      xd[i] = d.logits[i];
    const double h = 1e-4;
    for (size_t i = 0; i < d.n; i++) {
      double l[2];
      for (int s = 0; s < 2; s++) {
        xd[i] = (double)d.logits[i] + (s ? -h : h);
        double loss = ref_forward(c, &d, xd, ls, NULL);
        if (c->red == NONE) {
          loss = 0;
          for (size_t r = 0; r < d.rows; r++)
            loss += d.dloss[r] * ls[r];
        } else {
          loss *= d.dloss[0];
        }
        l[s] = loss;
      }
      xd[i] = d.logits[i];
      fd[i] = (l[0] - l[1]) / (2 * h);
    }
    float *got = run_backward(cpu, c, &d);
    char what[64];
    snprintf(what, sizeof(what), "dlogits vs finite differences, case %zu", ci);
    /* central differences: truncation h^2 * |L'''| ~ 1e-8, rounding
     * 1e-16 / h ~ 1e-12; the backward is rounded once to float */
    failures += vkft_compare(what, got, fd, d.n, 1e-7, 1e-5);
    free(got);
    free(xd);
    free(ls);
    free(fd);
    free_data(&d);
  }
  assert_int_equal(failures, 0);
  vkft_destroy(cpu);
}

static void expect(vkf_context *ctx, vkf_status got, vkf_status want, const char *what) {
  if (got != want)
    fail_msg("%s: got %s, expected %s (%s)", what, vkf_status_name(got), vkf_status_name(want),
             vkf_context_error(ctx));
  if (want != VKF_OK && strlen(vkf_context_error(ctx)) == 0)
    fail_msg("%s: no error message", what);
}

static void error_cases(vkf_context *ctx) {
  int64_t sx[2] = {3, 5}, sr[1] = {3}, s1[1] = {1}, s2[1] = {2}, sw[1] = {5}, sw4[1] = {4};
  int64_t sx3[3] = {3, 5, 2}, sr3[2] = {3, 2}, sr3b[2] = {3, 5};
  vkf_tensor x = vkft_tensor(ctx, 2, sx), dx = vkft_tensor(ctx, 2, sx),
             ls = vkft_tensor(ctx, 1, sr);
  vkf_tensor l = vkft_tensor(ctx, 1, s1), l2 = vkft_tensor(ctx, 1, s2), w = vkft_tensor(ctx, 1, sw);
  vkf_tensor w4 = vkft_tensor(ctx, 1, sw4), lp = vkft_tensor(ctx, 2, sx);
  vkf_tensor x3 = vkft_tensor(ctx, 3, sx3), ls3 = vkft_tensor(ctx, 2, sr3);
  VKFT_OK(vkf_tensor_fill(ctx, x, 0.5f));
  VKFT_OK(vkf_tensor_fill(ctx, x3, 0.5f));
  VKFT_OK(vkf_tensor_fill(ctx, dx, 0.0f));
  VKFT_OK(vkf_tensor_fill(ctx, w, 1.0f));
  VKFT_OK(vkf_tensor_fill(ctx, l, 1.0f));
  vkf_tensor t, t_hi, t_neg, t_f32 = vkft_tensor(ctx, 1, sr), t3, t3b;
  int32_t ok[3] = {0, 4, -100}, hi[3] = {0, 5, 1}, neg[3] = {0, -1, 1}, ok3[6] = {0, 1, 2, 3, 4, 2};
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 1, sr, &t));
  VKFT_OK(vkf_tensor_write(ctx, t, ok, sizeof(ok)));
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 1, sr, &t_hi));
  VKFT_OK(vkf_tensor_write(ctx, t_hi, hi, sizeof(hi)));
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 1, sr, &t_neg));
  VKFT_OK(vkf_tensor_write(ctx, t_neg, neg, sizeof(neg)));
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, sr3, &t3));
  VKFT_OK(vkf_tensor_write(ctx, t3, ok3, sizeof(ok3)));
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, sr3b, &t3b));
  VKFT_OK(vkf_tensor_fill(ctx, t3b, 0));

  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t, w, -1, -100, MEAN), VKF_OK, "valid");
  expect(
      ctx,
      vkf_cross_entropy(ctx, ls, VKF_NO_TENSOR, VKF_NO_TENSOR, x, t, VKF_NO_TENSOR, 1, -100, NONE),
      VKF_OK, "valid none, axis 1 of 2-D");
  expect(ctx, vkf_cross_entropy(ctx, ls3, l, VKF_NO_TENSOR, x3, t3, w, 1, -1, SUM), VKF_OK,
         "valid [N, C, d1]");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t_hi, w, -1, -100, MEAN),
         VKF_ERROR_INVALID_ARGUMENT, "target == V");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t_neg, w, -1, -100, MEAN),
         VKF_ERROR_INVALID_ARGUMENT, "negative target, not ignore_index");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t_neg, w, -1, -1, MEAN), VKF_OK,
         "negative target == ignore_index");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t, w, -1, VKF_NO_IGNORE_INDEX, MEAN),
         VKF_ERROR_INVALID_ARGUMENT, "-100 without an ignore_index");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t_f32, w, -1, -100, MEAN),
         VKF_ERROR_DTYPE_MISMATCH, "f32 targets");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t, w4, -1, -100, MEAN), VKF_ERROR_SHAPE_MISMATCH,
         "weights size");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t, t, -1, -100, MEAN), VKF_ERROR_DTYPE_MISMATCH,
         "i32 weights");
  expect(ctx, vkf_cross_entropy(ctx, ls, l2, lp, x, t, w, -1, -100, MEAN), VKF_ERROR_SHAPE_MISMATCH,
         "loss of 2 elements");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t, w, -1, -100, NONE),
         VKF_ERROR_INVALID_ARGUMENT, "loss with NONE");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t, w, -1, -100, (vkf_reduction)7),
         VKF_ERROR_INVALID_ARGUMENT, "unknown reduction");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t, w, 2, -100, MEAN), VKF_ERROR_INVALID_ARGUMENT,
         "class_axis 2 of 2-D");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t, w, -3, -100, MEAN),
         VKF_ERROR_INVALID_ARGUMENT, "class_axis -3 of 2-D");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t, w, 0, -100, MEAN), VKF_ERROR_SHAPE_MISMATCH,
         "targets for axis 0 are [5]");
  expect(ctx, vkf_cross_entropy(ctx, ls3, l, VKF_NO_TENSOR, x3, t3b, w, 1, -1, SUM),
         VKF_ERROR_SHAPE_MISMATCH, "targets [N, C] for axis 1");
  expect(ctx, vkf_cross_entropy(ctx, ls3, l, lp, x, t, w, -1, -100, MEAN), VKF_ERROR_SHAPE_MISMATCH,
         "losses shape");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, x3, x, t, w, -1, -100, MEAN), VKF_ERROR_SHAPE_MISMATCH,
         "log_prob shape");
  expect(ctx, vkf_cross_entropy(ctx, ls, l, x, x, t, w, -1, -100, MEAN), VKF_ERROR_INVALID_ARGUMENT,
         "log_prob is logits");
  expect(ctx, vkf_cross_entropy(ctx, ls, ls, lp, x, t, w, -1, -100, MEAN), VKF_ERROR_SHAPE_MISMATCH,
         "loss is losses (3 elements)");
  {
    int64_t s4[1] = {4};
    vkf_tensor base = vkft_tensor(ctx, 1, s4), vloss, vls;
    VKFT_OK(vkf_tensor_view(ctx, base, 0, 1, s1, &vloss));
    VKFT_OK(vkf_tensor_view(ctx, base, 1, 1, sr, &vls));
    expect(ctx, vkf_cross_entropy(ctx, vls, vloss, VKF_NO_TENSOR, x, t, w, -1, -100, MEAN), VKF_OK,
           "loss and losses adjacent views");
    vkf_tensor vls0;
    VKFT_OK(vkf_tensor_view(ctx, base, 0, 1, sr, &vls0));
    expect(ctx, vkf_cross_entropy(ctx, vls0, vloss, VKF_NO_TENSOR, x, t, w, -1, -100, MEAN),
           VKF_ERROR_INVALID_ARGUMENT, "loss overlaps losses");
    VKFT_OK(vkf_tensor_destroy(ctx, vloss));
    VKFT_OK(vkf_tensor_destroy(ctx, vls));
    VKFT_OK(vkf_tensor_destroy(ctx, vls0));
    VKFT_OK(vkf_tensor_destroy(ctx, base));
  }
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, VKF_NO_TENSOR, t, w, -1, -100, MEAN),
         VKF_ERROR_INVALID_ARGUMENT, "no logits");
  assert_int_equal(vkf_cross_entropy(NULL, ls, l, lp, x, t, w, -1, -100, MEAN),
                   VKF_ERROR_NULL_POINTER);

  /* backward */
  expect(ctx, vkf_cross_entropy_backward(ctx, dx, l, x, t, w, -1, -100, MEAN), VKF_OK,
         "backward valid");
  expect(ctx, vkf_cross_entropy_backward(ctx, dx, ls, x, t, w, -1, -100, NONE), VKF_OK,
         "backward none");
  expect(ctx, vkf_cross_entropy_backward(ctx, dx, ls, x, t, w, -1, -100, MEAN),
         VKF_ERROR_SHAPE_MISMATCH, "dloss [rows] with MEAN");
  expect(ctx, vkf_cross_entropy_backward(ctx, dx, l, x, t, w, -1, -100, NONE),
         VKF_ERROR_SHAPE_MISMATCH, "dloss [1] with NONE");
  expect(ctx, vkf_cross_entropy_backward(ctx, dx, l, x, t_hi, w, -1, -100, SUM),
         VKF_ERROR_INVALID_ARGUMENT, "backward target out of range");
  expect(ctx, vkf_cross_entropy_backward(ctx, x, l, x, t, w, -1, -100, SUM),
         VKF_ERROR_INVALID_ARGUMENT, "dlogits is logits");
  expect(ctx, vkf_cross_entropy_backward(ctx, x3, l, x, t, w, -1, -100, SUM),
         VKF_ERROR_SHAPE_MISMATCH, "dlogits shape");
  expect(ctx, vkf_cross_entropy_backward(ctx, dx, t, x, t, w, -1, -100, SUM),
         VKF_ERROR_DTYPE_MISMATCH, "i32 dloss");
  expect(ctx, vkf_cross_entropy_backward(ctx, dx, l, x, t, w, -1, -100, (vkf_reduction)-1),
         VKF_ERROR_INVALID_ARGUMENT, "backward unknown reduction");
  assert_int_equal(vkf_cross_entropy_backward(NULL, dx, l, x, t, w, -1, -100, SUM),
                   VKF_ERROR_NULL_POINTER);
  vkf_tensor stale = t;
  VKFT_OK(vkf_tensor_destroy(ctx, t));
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, stale, w, -1, -100, MEAN),
         VKF_ERROR_STALE_HANDLE, "stale targets");
  expect(ctx, vkf_cross_entropy_backward(ctx, dx, l, x, stale, w, -1, -100, MEAN),
         VKF_ERROR_STALE_HANDLE, "backward stale targets");
  vkf_tensor stale_w = w;
  VKFT_OK(vkf_tensor_destroy(ctx, w));
  expect(ctx, vkf_cross_entropy(ctx, ls, l, lp, x, t_neg, stale_w, -1, -1, MEAN),
         VKF_ERROR_STALE_HANDLE, "stale weights");
  VKFT_OK(vkf_synchronize(ctx));
}

static void test_xent_errors(void **state) {
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
      cmocka_unit_test(test_xent_cpu_vs_reference),
      cmocka_unit_test(test_xent_backward_finite_differences),
      cmocka_unit_test(test_xent_vulkan_vs_reference_and_cpu),
      cmocka_unit_test(test_xent_vulkan_staging),
      cmocka_unit_test(test_xent_errors),
  };
  return cmocka_run_group_tests_name("xent", tests, NULL, NULL);
}
