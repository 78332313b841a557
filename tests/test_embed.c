/* embed family: vkf_embedding, vkf_embedding_backward, vkf_bias_backward.
 * CPU forward against a double reference, CPU backward against central
 * finite differences of a double forward, Vulkan against the CPU backend on
 * awkward shapes, accumulation, bit-exact determinism (run to run, thread
 * count, CPU vs Vulkan) with many repeated ids, and every error status. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vkf_tensor i32_tensor(vkf_context *ctx, uint32_t ndim, const int64_t *shape,
                             const int32_t *data) {
  vkf_tensor t;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, ndim, shape, &t));
  if (data) {
    vkf_tensor_info info;
    VKFT_OK(vkf_tensor_info_get(ctx, t, &info));
    VKFT_OK(vkf_tensor_write(ctx, t, data, info.bytes));
  }
  return t;
}

static void expect(vkf_context *ctx, vkf_status got, vkf_status want, const char *what) {
  if (got != want)
    fail_msg("%s: got %s, expected %s (%s)", what, vkf_status_name(got), vkf_status_name(want),
             vkf_context_error(ctx));
  if (want != VKF_OK && strlen(vkf_context_error(ctx)) == 0)
    fail_msg("%s: no error message", what);
}

/* ------------------------------------------------------------------------ */
/* Embedding                                                                */
/* ------------------------------------------------------------------------ */
typedef struct emb_case {
  uint32_t B, T, C, V;
  int wpe;        /* with a position table */
  uint32_t P;     /* its rows (>= pos_offset + T) */
  uint32_t off;   /* pos_offset */
  int tokens_1d;  /* tokens [T] (B must be 1) */
  uint32_t range; /* ids drawn from [0, range) (repeats) */
  uint32_t run;   /* the first `run` tokens share one id */
} emb_case;

static const emb_case emb_cases[] = {
    {1, 1, 1, 1, 0, 0, 0, 0, 1, 0},     /* single token */
    {1, 1, 5, 3, 1, 1, 0, 1, 3, 0},     /* single token, 1-D tokens */
    {1, 7, 13, 5, 1, 9, 2, 0, 5, 0},    /* odd T, C */
    {3, 17, 65, 50, 1, 40, 3, 0, 4, 9}, /* batched, repeats */
    {2, 33, 257, 1000, 1, 33, 0, 0, 1000, 0},
    {4, 63, 31, 97, 0, 0, 0, 0, 3, 100},    /* few ids, long run */
    {1, 300, 129, 8, 1, 300, 0, 1, 2, 257}, /* a run of 257 of one id */
    {5, 9, 1, 2, 1, 12, 3, 0, 2, 0},        /* C = 1 */
};

typedef struct emb_data {
  int32_t *tok;
  float *wte, *wpe, *dout, *dwte0, *dwpe0;
  size_t n_tok, n_wte, n_wpe, n_act;
} emb_data;

static emb_data emb_make(const emb_case *c, vkft_rng *rng) {
  emb_data d;
  d.n_tok = (size_t)c->B * c->T;
  d.n_wte = (size_t)c->V * c->C;
  d.n_wpe = (size_t)(c->P ? c->P : 1) * c->C;
  d.n_act = d.n_tok * c->C;
  d.tok = malloc(d.n_tok * sizeof(int32_t));
  assert_non_null(d.tok);
  uint32_t run_id = (uint32_t)vkft_uniform(rng, 0, (float)c->range);
  for (size_t n = 0; n < d.n_tok; n++) {
    uint32_t id = n < c->run ? run_id : (uint32_t)vkft_uniform(rng, 0, (float)c->range);
    d.tok[n] = (int32_t)(id < c->range ? id : c->range - 1);
  }
  d.wte = vkft_alloc(d.n_wte);
  d.wpe = vkft_alloc(d.n_wpe);
  d.dout = vkft_alloc(d.n_act);
  d.dwte0 = vkft_alloc(d.n_wte);
  d.dwpe0 = vkft_alloc(d.n_wpe);
  vkft_fill_uniform(rng, d.wte, d.n_wte, -1, 1);
  vkft_fill_uniform(rng, d.wpe, d.n_wpe, -1, 1);
  vkft_fill_uniform(rng, d.dout, d.n_act, -1, 1);
  vkft_fill_uniform(rng, d.dwte0, d.n_wte, -1, 1);
  vkft_fill_uniform(rng, d.dwpe0, d.n_wpe, -1, 1);
  return d;
}

static void emb_free(emb_data *d) {
  free(d->tok);
  free(d->wte);
  free(d->wpe);
  free(d->dout);
  free(d->dwte0);
  free(d->dwpe0);
}

static vkf_tensor emb_tokens(vkf_context *ctx, const emb_case *c, const int32_t *tok) {
  int64_t s2[2] = {c->B, c->T}, s1[1] = {c->T};
  return c->tokens_1d ? i32_tensor(ctx, 1, s1, tok) : i32_tensor(ctx, 2, s2, tok);
}

static vkf_tensor emb_act(vkf_context *ctx, const emb_case *c, const float *data) {
  int64_t s3[3] = {c->B, c->T, c->C}, s2[2] = {c->T, c->C};
  if (c->tokens_1d)
    return data ? vkft_tensor_from(ctx, 2, s2, data) : vkft_tensor(ctx, 2, s2);
  return data ? vkft_tensor_from(ctx, 3, s3, data) : vkft_tensor(ctx, 3, s3);
}

/* Forward on ctx; result malloc'd. */
static float *emb_forward(vkf_context *ctx, const emb_case *c, const emb_data *d) {
  int64_t swte[2] = {c->V, c->C}, swpe[2] = {c->P, c->C};
  vkf_tensor tok = emb_tokens(ctx, c, d->tok), out = emb_act(ctx, c, NULL);
  vkf_tensor wte = vkft_tensor_from(ctx, 2, swte, d->wte);
  vkf_tensor wpe = c->wpe ? vkft_tensor_from(ctx, 2, swpe, d->wpe) : VKF_NO_TENSOR;
  vkf_status st = vkf_embedding(ctx, out, tok, wte, wpe, c->off);
  if (st != VKF_OK)
    fail_msg("vkf_embedding: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  float *res = vkft_alloc(d->n_act);
  vkft_read(ctx, out, res, d->n_act);
  VKFT_OK(vkf_tensor_destroy(ctx, tok));
  VKFT_OK(vkf_tensor_destroy(ctx, out));
  VKFT_OK(vkf_tensor_destroy(ctx, wte));
  if (c->wpe)
    VKFT_OK(vkf_tensor_destroy(ctx, wpe));
  return res;
}

/* Backward on ctx into gradients that start at dwte0 / dwpe0 (accumulation);
 * results malloc'd into *gwte, *gwpe (NULL when not computed). */
static void emb_backward(vkf_context *ctx, const emb_case *c, const emb_data *d, int with_wte,
                         int with_wpe, float **gwte, float **gwpe) {
  int64_t swte[2] = {c->V, c->C}, swpe[2] = {c->P, c->C};
  vkf_tensor tok = emb_tokens(ctx, c, d->tok), dout = emb_act(ctx, c, d->dout);
  vkf_tensor dwte = with_wte ? vkft_tensor_from(ctx, 2, swte, d->dwte0) : VKF_NO_TENSOR;
  vkf_tensor dwpe = with_wpe ? vkft_tensor_from(ctx, 2, swpe, d->dwpe0) : VKF_NO_TENSOR;
  vkf_status st = vkf_embedding_backward(ctx, dwte, dwpe, dout, tok, c->off);
  if (st != VKF_OK)
    fail_msg("vkf_embedding_backward: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  *gwte = *gwpe = NULL;
  if (with_wte) {
    *gwte = vkft_alloc(d->n_wte);
    vkft_read(ctx, dwte, *gwte, d->n_wte);
    VKFT_OK(vkf_tensor_destroy(ctx, dwte));
  }
  if (with_wpe) {
    *gwpe = vkft_alloc(d->n_wpe);
    vkft_read(ctx, dwpe, *gwpe, d->n_wpe);
    VKFT_OK(vkf_tensor_destroy(ctx, dwpe));
  }
  VKFT_OK(vkf_tensor_destroy(ctx, tok));
  VKFT_OK(vkf_tensor_destroy(ctx, dout));
}

static void test_embedding_cpu_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(11);
  size_t failures = 0;
  for (int threads = 0; threads < 2; threads++) {
    if (threads)
      VKFT_OK(vkf_context_set_threads(cpu, 1));
    for (size_t ci = 0; ci < VKFT_ARRAY_LEN(emb_cases); ci++) {
      const emb_case *c = &emb_cases[ci];
      emb_data d = emb_make(c, &rng);
      double *ref = vkft_alloc_d(d.n_act);
      for (size_t n = 0; n < d.n_tok; n++)
        for (uint32_t k = 0; k < c->C; k++) {
          double v = d.wte[(size_t)d.tok[n] * c->C + k];
          if (c->wpe)
            v += d.wpe[(size_t)(c->off + n % c->T) * c->C + k];
          ref[n * c->C + k] = (float)v; /* one rounding of the exact sum */
        }
      float *got = emb_forward(cpu, c, &d);
      char what[64];
      snprintf(what, sizeof(what), "embedding case %zu", ci);
      /* exact: the sum of two floats rounded once */
      failures += vkft_compare(what, got, ref, d.n_act, 0, 0);
      free(got);
      free(ref);

      /* backward: accumulation onto dwte0/dwpe0 vs the exact double sums */
      double *rw = vkft_alloc_d(d.n_wte), *rp = vkft_alloc_d(d.n_wpe);
      uint32_t maxcount = 1;
      for (size_t i = 0; i < d.n_wte; i++)
        rw[i] = d.dwte0[i];
      for (size_t i = 0; i < d.n_wpe; i++)
        rp[i] = d.dwpe0[i];
      for (size_t n = 0; n < d.n_tok; n++)
        for (uint32_t k = 0; k < c->C; k++) {
          rw[(size_t)d.tok[n] * c->C + k] += d.dout[n * c->C + k];
          if (c->wpe)
            rp[(size_t)(c->off + n % c->T) * c->C + k] += d.dout[n * c->C + k];
        }
      for (uint32_t v = 0; v < c->V; v++) {
        uint32_t cnt = 0;
        for (size_t n = 0; n < d.n_tok; n++)
          cnt += (uint32_t)d.tok[n] == v;
        maxcount = cnt > maxcount ? cnt : maxcount;
      }
      float *gw, *gp;
      emb_backward(cpu, c, &d, 1, c->wpe, &gw, &gp);
      /* float sums of up to maxcount terms in [-1, 1] (8 chains of
       * maxcount/8, then a depth-3 tree, then one add): bound ~ depth * eps *
       * sum|x| */
      double atol = 1.2e-7 * (maxcount / 8.0 + 5) * (maxcount + 1);
      snprintf(what, sizeof(what), "embedding_backward dwte case %zu", ci);
      failures += vkft_compare(what, gw, rw, d.n_wte, atol, 1e-7);
      if (gp) {
        double bt = 1.2e-7 * (c->B + 2) * (c->B + 1);
        snprintf(what, sizeof(what), "embedding_backward dwpe case %zu", ci);
        failures += vkft_compare(what, gp, rp, d.n_wpe, bt, 1e-7);
      }
      free(gw);
      free(gp);
      free(rw);
      free(rp);
      emb_free(&d);
    }
  }
  assert_int_equal(failures, 0);
  vkft_destroy(cpu);
}

/* Loss L = sum(G * out) of a double forward; its central differences
 * against the CPU backward with zero-started gradients and dout = G. */
static void test_embedding_backward_finite_differences(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  const emb_case c = {2, 6, 5, 7, 1, 9, 2, 0, 4, 3};
  vkft_rng rng = vkft_rng_seed(5);
  emb_data d = emb_make(&c, &rng);
  memset(d.dwte0, 0, d.n_wte * sizeof(float));
  memset(d.dwpe0, 0, d.n_wpe * sizeof(float));
  double *wte = vkft_alloc_d(d.n_wte), *wpe = vkft_alloc_d(d.n_wpe);
  for (size_t i = 0; i < d.n_wte; i++)
    wte[i] = d.wte[i];
  for (size_t i = 0; i < d.n_wpe; i++)
    wpe[i] = d.wpe[i];
  const double h = 1e-4;
  float *gw, *gp;
  emb_backward(cpu, &c, &d, 1, 1, &gw, &gp);
  double *fd_w = vkft_alloc_d(d.n_wte), *fd_p = vkft_alloc_d(d.n_wpe);
  for (int which = 0; which < 2; which++) {
    double *par = which ? wpe : wte, *fd = which ? fd_p : fd_w;
    size_t np = which ? d.n_wpe : d.n_wte;
    for (size_t i = 0; i < np; i++) {
      double l[2];
      for (int s = 0; s < 2; s++) {
        double keep = par[i];
        par[i] = keep + (s ? -h : h);
        double L = 0;
        for (size_t n = 0; n < d.n_tok; n++)
          for (uint32_t k = 0; k < c.C; k++)
            L += d.dout[n * c.C + k] *
                 (wte[(size_t)d.tok[n] * c.C + k] + wpe[(size_t)(c.off + n % c.T) * c.C + k]);
        l[s] = L;
        par[i] = keep;
      }
      fd[i] = (l[0] - l[1]) / (2 * h);
    }
  }
  /* L is linear: central differences in double are exact to ~1e-11; the
   * backward sums at most B*T float terms */
  size_t bad = vkft_compare("dwte vs finite differences", gw, fd_w, d.n_wte, 2e-6, 1e-6);
  bad += vkft_compare("dwpe vs finite differences", gp, fd_p, d.n_wpe, 2e-6, 1e-6);
  assert_int_equal(bad, 0);
  free(gw);
  free(gp);
  free(fd_w);
  free(fd_p);
  free(wte);
  free(wpe);
  emb_free(&d);
  vkft_destroy(cpu);
}

/* Vulkan vs CPU: forward and backward must be bit-identical (same float
 * operations in the same order; see vkf_embedding_backward_params). */
static void test_embedding_vulkan_vs_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(12);
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(emb_cases); ci++) {
    const emb_case *c = &emb_cases[ci];
    emb_data d = emb_make(c, &rng);
    char what[64];
    float *a = emb_forward(vk, c, &d), *b = emb_forward(cpu, c, &d);
    snprintf(what, sizeof(what), "embedding case %zu", ci);
    failures += vkft_compare_f(what, a, b, d.n_act, 0, 0);
    failures += memcmp(a, b, d.n_act * sizeof(float)) != 0;
    free(a);
    free(b);
    for (int mode = 0; mode < 3; mode++) { /* both, dwte only, dwpe only */
      int ww = mode != 2, wp = mode != 1 && c->wpe;
      if (!ww && !wp)
        continue;
      float *gw[2], *gp[2];
      emb_backward(vk, c, &d, ww, wp, &gw[0], &gp[0]);
      emb_backward(cpu, c, &d, ww, wp, &gw[1], &gp[1]);
      if (ww) {
        snprintf(what, sizeof(what), "dwte case %zu mode %d", ci, mode);
        failures += vkft_compare_f(what, gw[0], gw[1], d.n_wte, 0, 0);
        failures += memcmp(gw[0], gw[1], d.n_wte * sizeof(float)) != 0;
      }
      if (wp) {
        snprintf(what, sizeof(what), "dwpe case %zu mode %d", ci, mode);
        failures += vkft_compare_f(what, gp[0], gp[1], d.n_wpe, 0, 0);
        failures += memcmp(gp[0], gp[1], d.n_wpe * sizeof(float)) != 0;
      }
      for (int k = 0; k < 2; k++) {
        free(gw[k]);
        free(gp[k]);
      }
    }
    emb_free(&d);
  }
  assert_int_equal(failures, 0);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* Many repeated ids with values of very different magnitudes (so that any
 * change of summation order changes bits): two runs per backend, thread
 * counts 1 and default, and CPU vs Vulkan, all bit-identical. Also checks
 * that the order really matters for this data (a plain sequential sum
 * differs), so the test could fail. */
static void test_embedding_backward_determinism(void **state) {
  (void)state;
  const emb_case c = {4, 250, 67, 40, 1, 250, 0, 0, 6, 300};
  vkft_rng rng = vkft_rng_seed(99);
  emb_data d = emb_make(&c, &rng);
  for (size_t i = 0; i < d.n_act; i++)
    d.dout[i] *= powf(2.0f, (float)((int)(i % 29) - 14)); /* 2^-14 .. 2^14 */
  vkf_context *cpu = vkft_cpu();
  float *ref_w, *ref_p, *w, *p;
  emb_backward(cpu, &c, &d, 1, 1, &ref_w, &ref_p);
  size_t bad = 0;
  emb_backward(cpu, &c, &d, 1, 1, &w, &p);
  bad += memcmp(w, ref_w, d.n_wte * 4) != 0 || memcmp(p, ref_p, d.n_wpe * 4) != 0;
  free(w);
  free(p);
  VKFT_OK(vkf_context_set_threads(cpu, 1));
  emb_backward(cpu, &c, &d, 1, 1, &w, &p);
  bad += memcmp(w, ref_w, d.n_wte * 4) != 0 || memcmp(p, ref_p, d.n_wpe * 4) != 0;
  free(w);
  free(p);
  if (bad)
    fail_msg("CPU embedding_backward differs between runs or thread counts");

  /* the data is order-sensitive: a sequential float sum differs somewhere */
  size_t differs = 0;
  for (uint32_t v = 0; v < c.V; v++)
    for (uint32_t k = 0; k < c.C; k++) {
      float s = 0;
      for (size_t n = 0; n < d.n_tok; n++)
        if ((uint32_t)d.tok[n] == v)
          s += d.dout[n * c.C + k];
      float seq = d.dwte0[(size_t)v * c.C + k] + s;
      differs += memcmp(&seq, &ref_w[(size_t)v * c.C + k], 4) != 0;
    }
  assert_true(differs > 0);

  vkf_context *vk = vkft_vulkan();
  for (int run = 0; run < 2; run++) {
    emb_backward(vk, &c, &d, 1, 1, &w, &p);
    size_t bw = vkft_compare_f("Vulkan dwte vs CPU", w, ref_w, d.n_wte, 0, 0);
    size_t bp = vkft_compare_f("Vulkan dwpe vs CPU", p, ref_p, d.n_wpe, 0, 0);
    bw += memcmp(w, ref_w, d.n_wte * 4) != 0;
    bp += memcmp(p, ref_p, d.n_wpe * 4) != 0;
    free(w);
    free(p);
    if (bw || bp)
      fail_msg("Vulkan run %d: embedding_backward is not bit-identical to the CPU", run);
  }
  free(ref_w);
  free(ref_p);
  emb_free(&d);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* The same on a context whose tensors live in memory the host cannot map
 * (the discrete-GPU path): token ids come back through staging copies and
 * the backward's index goes up through one. */
static void test_embedding_vulkan_staging(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan_flags(VKF_CONTEXT_FORCE_STAGING);
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(13);
  size_t failures = 0;
  for (size_t ci = 2; ci < 5; ci++) {
    const emb_case *c = &emb_cases[ci];
    emb_data d = emb_make(c, &rng);
    float *a = emb_forward(vk, c, &d), *b = emb_forward(cpu, c, &d);
    failures += memcmp(a, b, d.n_act * sizeof(float)) != 0;
    free(a);
    free(b);
    float *gw[2], *gp[2];
    emb_backward(vk, c, &d, 1, c->wpe, &gw[0], &gp[0]);
    emb_backward(cpu, c, &d, 1, c->wpe, &gw[1], &gp[1]);
    failures += vkft_compare_f("staging dwte", gw[0], gw[1], d.n_wte, 0, 0);
    failures += memcmp(gw[0], gw[1], d.n_wte * sizeof(float)) != 0;
    if (c->wpe)
      failures += memcmp(gp[0], gp[1], d.n_wpe * sizeof(float)) != 0;
    for (int k = 0; k < 2; k++) {
      free(gw[k]);
      free(gp[k]);
    }
    emb_free(&d);
  }
  /* a bad id is still refused */
  int64_t s2[2] = {1, 2}, sw[2] = {3, 4}, sa[3] = {1, 2, 4};
  int32_t bad[2] = {1, 3};
  vkf_tensor tok = i32_tensor(vk, 2, s2, bad), wte = vkft_tensor(vk, 2, sw),
             out = vkft_tensor(vk, 3, sa);
  assert_int_equal(vkf_embedding(vk, out, tok, wte, VKF_NO_TENSOR, 0), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(failures, 0);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* ------------------------------------------------------------------------ */
/* Bias gradient                                                            */
/* ------------------------------------------------------------------------ */
typedef struct bias_case {
  uint32_t lead0, rows, N; /* dout [lead0, rows / lead0, N] when lead0 > 0, else [rows, N] */
} bias_case;

static const bias_case bias_cases[] = {
    {0, 1, 1},    {0, 1, 300},   {0, 300, 1},  {0, 17, 63},   {2, 34, 65},
    {0, 257, 33}, {3, 129, 100}, {0, 1000, 7}, {0, 64, 1024}, {0, 4096, 96},
};

static float *bias_run(vkf_context *ctx, const bias_case *c, const float *dout,
                       const float *dbias0) {
  int64_t s2[2] = {c->rows, c->N}, s3[3] = {c->lead0, c->rows / (c->lead0 ? c->lead0 : 1), c->N};
  int64_t sb[1] = {c->N};
  vkf_tensor d = c->lead0 ? vkft_tensor_from(ctx, 3, s3, dout) : vkft_tensor_from(ctx, 2, s2, dout);
  vkf_tensor b = vkft_tensor_from(ctx, 1, sb, dbias0);
  vkf_status st = vkf_bias_backward(ctx, b, d);
  if (st != VKF_OK)
    fail_msg("vkf_bias_backward: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  float *res = vkft_alloc(c->N);
  vkft_read(ctx, b, res, c->N);
  VKFT_OK(vkf_tensor_destroy(ctx, d));
  VKFT_OK(vkf_tensor_destroy(ctx, b));
  return res;
}

static void bias_all(vkf_context *ctx, vkf_context *cpu) {
  vkft_rng rng = vkft_rng_seed(3);
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(bias_cases); ci++) {
    const bias_case *c = &bias_cases[ci];
    size_t n = (size_t)c->rows * c->N;
    float *dout = vkft_alloc(n), *b0 = vkft_alloc(c->N);
    vkft_fill_uniform(&rng, dout, n, -1, 1);
    vkft_fill_uniform(&rng, b0, c->N, -1, 1); /* accumulate onto non-zero */
    double *ref = vkft_alloc_d(c->N);
    for (uint32_t j = 0; j < c->N; j++) {
      double s = b0[j];
      for (uint32_t r = 0; r < c->rows; r++)
        s += dout[(size_t)r * c->N + j];
      ref[j] = s;
    }
    char what[64];
    snprintf(what, sizeof(what), "bias_backward case %zu (%ux%u)", ci, c->rows, c->N);
    float *got = bias_run(ctx, c, dout, b0);
    /* CPU: double sums rounded once (~0.5 ulp). Vulkan: float partial sums
     * of chunk_rows/lanes terms, a tree, then the chunks in order; for
     * uniform [-1, 1] data the error is ~eps * sqrt(rows) * a few. */
    double atol = cpu ? 1.5e-6 * sqrt((double)c->rows) + 1e-6 : 1e-6;
    failures += vkft_compare(what, got, ref, c->N, atol, 1e-6);
    if (cpu) {
      float *want = bias_run(cpu, c, dout, b0);
      failures += vkft_compare_f(what, got, want, c->N, atol, 1e-6);
      /* deterministic: a second run has the same bits */
      float *again = bias_run(ctx, c, dout, b0);
      failures += memcmp(again, got, c->N * sizeof(float)) != 0;
      free(again);
      free(want);
    }
    free(got);
    free(dout);
    free(b0);
    free(ref);
  }
  assert_int_equal(failures, 0);
}

static void test_bias_backward_cpu_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  bias_all(cpu, NULL);
  VKFT_OK(vkf_context_set_threads(cpu, 1));
  bias_all(cpu, NULL);
  vkft_destroy(cpu);
}

static void test_bias_backward_vulkan_vs_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  bias_all(vk, cpu);
  vkft_destroy(vk);
  vkf_context *staging = vkft_vulkan_flags(VKF_CONTEXT_FORCE_STAGING);
  bias_all(staging, cpu);
  vkft_destroy(staging);
  vkft_destroy(cpu);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */
static void error_cases(vkf_context *ctx) {
  int64_t s_tok[2] = {2, 3}, s_act[3] = {2, 3, 4}, s_wte[2] = {5, 4}, s_wpe[2] = {4, 4};
  int32_t tok_ok[6] = {0, 1, 4, 4, 2, 0}, tok_hi[6] = {0, 1, 5, 4, 2, 0},
          tok_neg[6] = {0, -1, 0, 0, 0, 0};
  vkf_tensor tok = i32_tensor(ctx, 2, s_tok, tok_ok), out = vkft_tensor(ctx, 3, s_act);
  vkf_tensor wte = vkft_tensor(ctx, 2, s_wte), wpe = vkft_tensor(ctx, 2, s_wpe);
  VKFT_OK(vkf_tensor_fill(ctx, wte, 0.5f));
  VKFT_OK(vkf_tensor_fill(ctx, wpe, 0.25f));
  vkf_tensor tok_f32 = vkft_tensor(ctx, 2, s_tok);
  vkf_tensor bad_hi = i32_tensor(ctx, 2, s_tok, tok_hi),
             bad_neg = i32_tensor(ctx, 2, s_tok, tok_neg);
  int64_t s_bad[3] = {2, 3, 5}, s_wte3[3] = {1, 5, 4}, s_wte_c[2] = {5, 3}, s_tok3[3] = {1, 2, 3};
  vkf_tensor out_bad = vkft_tensor(ctx, 3, s_bad), wte3 = vkft_tensor(ctx, 3, s_wte3);
  vkf_tensor wpe_c = vkft_tensor(ctx, 2, s_wte_c), tok3 = i32_tensor(ctx, 3, s_tok3, tok_ok);
  vkf_tensor wte_i32;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, s_wte, &wte_i32));

  expect(ctx, vkf_embedding(ctx, out, tok, wte, wpe, 0), VKF_OK, "valid");
  expect(ctx, vkf_embedding(ctx, out, tok, wte, wpe, 1), VKF_OK, "offset 1 fits 4 positions");
  expect(ctx, vkf_embedding(ctx, out, tok, wte, VKF_NO_TENSOR, 100), VKF_OK, "no wpe");
  expect(ctx, vkf_embedding(ctx, out, tok, wte, wpe, 2), VKF_ERROR_SHAPE_MISMATCH,
         "positions past wpe");
  expect(ctx, vkf_embedding(ctx, out, bad_hi, wte, wpe, 0), VKF_ERROR_INVALID_ARGUMENT,
         "token id == V");
  expect(ctx, vkf_embedding(ctx, out, bad_neg, wte, wpe, 0), VKF_ERROR_INVALID_ARGUMENT,
         "negative token id");
  expect(ctx, vkf_embedding(ctx, out, tok_f32, wte, wpe, 0), VKF_ERROR_DTYPE_MISMATCH,
         "f32 tokens");
  expect(ctx, vkf_embedding(ctx, out, tok, wte_i32, wpe, 0), VKF_ERROR_DTYPE_MISMATCH, "i32 wte");
  expect(ctx, vkf_embedding(ctx, out_bad, tok, wte, wpe, 0), VKF_ERROR_SHAPE_MISMATCH, "out C");
  expect(ctx, vkf_embedding(ctx, out, tok, wte3, VKF_NO_TENSOR, 0), VKF_ERROR_SHAPE_MISMATCH,
         "3-D wte");
  expect(ctx, vkf_embedding(ctx, out, tok, wte, wpe_c, 0), VKF_ERROR_SHAPE_MISMATCH, "wpe C");
  expect(ctx, vkf_embedding(ctx, out, tok3, wte, wpe, 0), VKF_ERROR_SHAPE_MISMATCH, "3-D tokens");
  expect(ctx, vkf_embedding(ctx, out, tok, out, wpe, 0), VKF_ERROR_SHAPE_MISMATCH,
         "out as wte (3-D)");
  {
    /* out overlapping wte through a view */
    int64_t sv[3] = {1, 1, 4}, s_big[2] = {5, 4};
    vkf_tensor big = vkft_tensor(ctx, 2, s_big), view;
    VKFT_OK(vkf_tensor_view(ctx, big, 0, 3, sv, &view));
    int64_t s1[2] = {1, 1};
    int32_t z = 0;
    vkf_tensor t1 = i32_tensor(ctx, 2, s1, &z);
    expect(ctx, vkf_embedding(ctx, view, t1, big, VKF_NO_TENSOR, 0), VKF_ERROR_INVALID_ARGUMENT,
           "out overlaps wte");
    VKFT_OK(vkf_tensor_destroy(ctx, view));
    VKFT_OK(vkf_tensor_destroy(ctx, big));
    VKFT_OK(vkf_tensor_destroy(ctx, t1));
  }
  expect(ctx, vkf_embedding(ctx, out, VKF_NO_TENSOR, wte, wpe, 0), VKF_ERROR_INVALID_ARGUMENT,
         "no tokens");
  assert_int_equal(vkf_embedding(NULL, out, tok, wte, wpe, 0), VKF_ERROR_NULL_POINTER);

  /* backward */
  vkf_tensor dwte = vkft_tensor(ctx, 2, s_wte), dwpe = vkft_tensor(ctx, 2, s_wpe);
  expect(ctx, vkf_embedding_backward(ctx, dwte, dwpe, out, tok, 0), VKF_OK, "backward valid");
  expect(ctx, vkf_embedding_backward(ctx, VKF_NO_TENSOR, VKF_NO_TENSOR, out, tok, 0),
         VKF_ERROR_INVALID_ARGUMENT, "no gradient outputs");
  expect(ctx, vkf_embedding_backward(ctx, dwte, dwpe, out, bad_hi, 0), VKF_ERROR_INVALID_ARGUMENT,
         "backward id out of range");
  expect(ctx, vkf_embedding_backward(ctx, dwte, dwpe, out, tok, 3), VKF_ERROR_SHAPE_MISMATCH,
         "backward positions past dwpe");
  expect(ctx, vkf_embedding_backward(ctx, dwte, dwpe, out_bad, tok, 0), VKF_ERROR_SHAPE_MISMATCH,
         "backward dout C");
  expect(ctx, vkf_embedding_backward(ctx, dwte, dwte, out, tok, 0), VKF_ERROR_INVALID_ARGUMENT,
         "dwte also given as dwpe (the shapes fit; they overlap)");
  expect(ctx, vkf_embedding_backward(ctx, wte_i32, dwpe, out, tok, 0), VKF_ERROR_DTYPE_MISMATCH,
         "i32 dwte");
  expect(ctx, vkf_embedding_backward(ctx, dwte, dwpe, out, tok_f32, 0), VKF_ERROR_DTYPE_MISMATCH,
         "backward f32 tokens");

  /* bias */
  int64_t s4[1] = {4}, s5[1] = {5}, s_23[2] = {2, 3};
  vkf_tensor db = vkft_tensor(ctx, 1, s4), db5 = vkft_tensor(ctx, 1, s5),
             db2 = vkft_tensor(ctx, 2, s_23);
  expect(ctx, vkf_bias_backward(ctx, db, out), VKF_OK, "bias valid");
  expect(ctx, vkf_bias_backward(ctx, db5, out), VKF_ERROR_SHAPE_MISMATCH, "bias N");
  expect(ctx, vkf_bias_backward(ctx, db2, out), VKF_ERROR_SHAPE_MISMATCH, "bias 2-D");
  expect(ctx, vkf_bias_backward(ctx, db, tok), VKF_ERROR_DTYPE_MISMATCH, "bias i32 dout");
  {
    int64_t s8[1] = {8}, s24[2] = {2, 4};
    vkf_tensor base = vkft_tensor(ctx, 1, s8), v1, v2;
    VKFT_OK(vkf_tensor_view(ctx, base, 0, 1, s4, &v1));
    VKFT_OK(vkf_tensor_view(ctx, base, 0, 2, s24, &v2));
    expect(ctx, vkf_bias_backward(ctx, v1, v2), VKF_ERROR_INVALID_ARGUMENT, "bias overlaps dout");
    VKFT_OK(vkf_tensor_destroy(ctx, v1));
    VKFT_OK(vkf_tensor_destroy(ctx, v2));
    VKFT_OK(vkf_tensor_destroy(ctx, base));
  }
  assert_int_equal(vkf_bias_backward(NULL, db, out), VKF_ERROR_NULL_POINTER);

  /* stale handles */
  vkf_tensor stale = wte;
  VKFT_OK(vkf_tensor_destroy(ctx, wte));
  expect(ctx, vkf_embedding(ctx, out, tok, stale, wpe, 0), VKF_ERROR_STALE_HANDLE, "stale wte");
  vkf_tensor stale_tok = tok;
  VKFT_OK(vkf_tensor_destroy(ctx, tok));
  expect(ctx, vkf_embedding_backward(ctx, dwte, dwpe, out, stale_tok, 0), VKF_ERROR_STALE_HANDLE,
         "stale tokens");
  vkf_tensor stale_db = db;
  VKFT_OK(vkf_tensor_destroy(ctx, db));
  expect(ctx, vkf_bias_backward(ctx, stale_db, out), VKF_ERROR_STALE_HANDLE, "stale dbias");
  VKFT_OK(vkf_synchronize(ctx));
}

static void test_embed_errors(void **state) {
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
      cmocka_unit_test(test_embedding_cpu_vs_reference),
      cmocka_unit_test(test_embedding_backward_finite_differences),
      cmocka_unit_test(test_embedding_vulkan_vs_cpu),
      cmocka_unit_test(test_embedding_backward_determinism),
      cmocka_unit_test(test_embedding_vulkan_staging),
      cmocka_unit_test(test_bias_backward_cpu_vs_reference),
      cmocka_unit_test(test_bias_backward_vulkan_vs_cpu),
      cmocka_unit_test(test_embed_errors),
  };
  return cmocka_run_group_tests_name("embed", tests, NULL, NULL);
}
