/* optim: AdamW, the global gradient norm and clipping.
 *
 * References are re-derived here in double from the published formulas
 * (torch.optim.AdamW's algorithm; ONNX Adam's operator definition), not from
 * the library's folded scalars. Device state is f32, so the references'
 * double state drifts from it by f32 rounding; the tolerances below bound
 * that drift.
 *
 * Tolerances (|got - ref| <= atol + rtol * |ref|):
 * - params: atol 5e-7, rtol 1e-6. Each step rounds p (|p| <= ~1.1) to f32,
 *   half an ulp = 6e-8, so six steps drift <= 3.6e-7; the update
 *   lr * m_hat / (sqrt(v_hat) + eps) carries a few ulps of relative error
 *   (GPU sqrt and division are not correctly rounded) times lr <= 0.05.
 * - m: atol 1e-6, rtol 1e-6: each step adds rounding of ~1e-7 * max(|m|, |g|)
 *   (|g| <= ~3); m can cancel towards 0, hence the absolute part.
 * - v: atol 1e-9, rtol 2e-6: sums of non-negative terms, relative rounding
 *   ~1.2e-7 per step.
 * - Vulkan vs CPU: the same bounds (both are within them of the reference;
 *   their own difference is FMA contraction and sqrt/division ulps).
 * - Norm: CPU rtol 1e-7 (double accumulation, one f32 rounding = 6e-8).
 *   Vulkan rtol 1e-5: f32 sums of non-negative terms, each chain (per-lane
 *   accumulation ~32 terms here, tree levels, stage 2) under ~60 additions,
 *   worst case 60 * 6e-8 = 3.6e-6 on the sum, half that on the root.
 * - Clip: factor from the norm: CPU rtol 1e-6, Vulkan 2e-5 (the norm's
 *   error passes straight into the factor).
 * - Fused clip inside AdamW vs clip then AdamW: bitwise on the CPU (the
 *   same f32 operations); Vulkan rtol 1e-6 (the factor is computed in two
 *   different kernels; a driver may lower the division differently).
 * - ONNX Adam vectors: atol 1e-6, rtol 1e-5 (the conformance README's pass
 *   criterion; its values were computed in f32 by numpy). */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P_ATOL 5e-7
#define P_RTOL 1e-6
#define M_ATOL 1e-6
#define M_RTOL 1e-6
#define V_ATOL 1e-9
#define V_RTOL 2e-6

static void expect(vkf_context *ctx, vkf_status got, vkf_status want, const char *what) {
  if (got != want)
    fail_msg("%s: got %s, expected %s (%s)", what, vkf_status_name(got), vkf_status_name(want),
             vkf_context_error(ctx));
  if (want != VKF_OK && strlen(vkf_context_error(ctx)) == 0)
    fail_msg("%s: no error message", what);
}

/* ------------------------------------------------------------------------ */
/* Reference: torch.optim.AdamW's algorithm in double.                      */
/* ------------------------------------------------------------------------ */
typedef struct ref_hp {
  double lr, b1, b2, eps, wd;
  uint64_t t;
  double gmul; /* gradient multiplier (grad_scale times clip factor) */
} ref_hp;

static void ref_adamw(double *p, double *m, double *v, const float *g, const unsigned char *decay,
                      size_t n, const ref_hp *h) {
  double bc1 = 1.0 - pow(h->b1, (double)h->t), bc2 = 1.0 - pow(h->b2, (double)h->t);
  for (size_t i = 0; i < n; i++) {
    double gi = (double)g[i] * h->gmul;
    m[i] = h->b1 * m[i] + (1.0 - h->b1) * gi;
    v[i] = h->b2 * v[i] + (1.0 - h->b2) * gi * gi;
    double mhat = m[i] / bc1, vhat = v[i] / bc2;
    if (decay[i])
      p[i] *= 1.0 - h->lr * h->wd; /* decoupled decay, before the step */
    p[i] -= h->lr * mhat / (sqrt(vhat) + h->eps);
  }
}

/* The decay mask a segment list describes (NULL segs: everything decays). */
static unsigned char *decay_mask(const vkf_optim_segment *segs, uint32_t ns, size_t n) {
  unsigned char *d = malloc(n ? n : 1);
  assert_non_null(d);
  for (size_t i = 0; i < n; i++)
    d[i] = 1;
  for (uint32_t s = 0; s < ns; s++) {
    size_t end = s + 1 < ns ? (size_t)segs[s + 1].start : n;
    for (size_t i = (size_t)segs[s].start; i < end; i++)
      d[i] = (segs[s].flags & VKF_OPTIM_DECAY) ? 1 : 0;
  }
  return d;
}

static double norm_d(const float *g, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += (double)g[i] * g[i];
  return sqrt(s);
}

static double *to_double(const float *x, size_t n) {
  double *d = vkft_alloc_d(n);
  for (size_t i = 0; i < n; i++)
    d[i] = x[i];
  return d;
}

static double *zeros_d(size_t n) {
  double *d = vkft_alloc_d(n);
  memset(d, 0, (n ? n : 1) * sizeof(double));
  return d;
}

/* ------------------------------------------------------------------------ */
/* Device state: flat params, grads, m, v, each a view at element `offset`  */
/* (offset 1 or 3: not 16-byte aligned) of a larger tensor whose elements   */
/* before and after the view are a sentinel (GUARD more after), so writes   */
/* outside an operand are caught; and the segment table.                    */
/* ------------------------------------------------------------------------ */
#define GUARD 7
#define SENTINEL 1234.5f

typedef struct dev_state {
  vkf_context *ctx;
  size_t n;
  uint32_t offset;
  vkf_tensor base[4];       /* what was allocated */
  vkf_tensor p, g, m, v;    /* the operands: views of base */
  vkf_tensor seg;           /* VKF_NO_TENSOR when none */
  vkf_tensor norm, scratch; /* for the gradient norm */
} dev_state;

static void dev_create(vkf_context *ctx, dev_state *d, size_t n, uint32_t offset, const float *p0,
                       const vkf_optim_segment *segs, uint32_t ns) {
  memset(d, 0, sizeof(*d));
  d->ctx = ctx;
  d->n = n;
  d->offset = offset;
  vkf_tensor *ops[4] = {&d->p, &d->g, &d->m, &d->v};
  for (int i = 0; i < 4; i++) {
    int64_t shape[1] = {(int64_t)(n + offset + GUARD)}, vshape[1] = {(int64_t)n};
    d->base[i] = vkft_tensor(ctx, 1, shape);
    VKFT_OK(vkf_tensor_fill(ctx, d->base[i], SENTINEL));
    VKFT_OK(vkf_tensor_view(ctx, d->base[i], offset, 1, vshape, ops[i]));
  }
  VKFT_OK(vkf_tensor_write(ctx, d->p, p0, n * sizeof(float)));
  VKFT_OK(vkf_tensor_fill(ctx, d->m, 0.0f));
  VKFT_OK(vkf_tensor_fill(ctx, d->v, 0.0f));
  d->seg = VKF_NO_TENSOR;
  if (ns)
    VKFT_OK(vkf_optim_segments_create(ctx, segs, ns, n, &d->seg));
  int64_t one[1] = {1};
  d->norm = vkft_tensor(ctx, 1, one);
  uint64_t sn = 0;
  VKFT_OK(vkf_grad_norm_scratch_size(ctx, n, &sn));
  int64_t ss[1] = {(int64_t)sn};
  d->scratch = vkft_tensor(ctx, 1, ss);
}

/* Fails the test if anything outside the four views changed. */
static void dev_check_guards(dev_state *d, const char *what) {
  size_t total = d->n + d->offset + GUARD;
  float *all = vkft_alloc(total);
  for (int i = 0; i < 4; i++) {
    vkft_read(d->ctx, d->base[i], all, total);
    for (size_t k = 0; k < total; k++)
      if ((k < d->offset || k >= d->offset + d->n) && all[k] != SENTINEL)
        fail_msg("%s: operand %d: element %zu outside the tensor was written (%g)", what, i,
                 k - d->offset, (double)all[k]);
  }
  free(all);
}

static void dev_destroy(dev_state *d) {
  vkf_tensor all[] = {d->p, d->g, d->m, d->v, d->base[0], d->base[1], d->base[2], d->base[3]};
  for (size_t i = 0; i < 8; i++)
    VKFT_OK(vkf_tensor_destroy(d->ctx, all[i]));
  if (d->seg.id)
    VKFT_OK(vkf_tensor_destroy(d->ctx, d->seg));
  VKFT_OK(vkf_tensor_destroy(d->ctx, d->norm));
  VKFT_OK(vkf_tensor_destroy(d->ctx, d->scratch));
}

static void step_or_fail(dev_state *d, vkf_tensor norm, const vkf_optim_desc *desc) {
  vkf_status st = vkf_optim_step(d->ctx, d->p, d->g, d->m, d->v, d->seg, norm, desc);
  if (st != VKF_OK)
    fail_msg("vkf_optim_step: %s: %s", vkf_status_name(st), vkf_context_error(d->ctx));
}

/* ------------------------------------------------------------------------ */
/* 1. AdamW over a small "model" against the double reference              */
/* ------------------------------------------------------------------------ */
/* W1 [37, 5] decays, b1 [5] not, W2 [64, 3] decays, ln [3] not, W3 [1000]
 * decays, b3 [600] not: boundaries at 185, 190, 382, 385, 1385, none aligned
 * to anything; W3 and b3 also hold whole workgroup chunks (the uniform paths,
 * decayed and not). */
static const vkf_optim_segment model_segs[] = {{0, VKF_OPTIM_DECAY},   {185, 0},
                                               {190, VKF_OPTIM_DECAY}, {382, 0},
                                               {385, VKF_OPTIM_DECAY}, {1385, 0}};
#define MODEL_N 1985
#define STEPS 6
static const float lr_schedule[STEPS] = {0.01f, 0.03f, 0.05f, 0.04f, 0.02f, 0.005f};
static const float grad_scales[STEPS] = {0.5f, 2.0f, 0.01f, 1.0f, 3.0f, 0.2f};

typedef struct model_cfg {
  const char *name;
  vkf_optim_desc desc; /* lr and step are set per step */
  double b1, b2, eps;  /* what the reference uses (the defaults spelled out) */
  int clip;            /* fused clipping with desc.max_grad_norm */
} model_cfg;

static const model_cfg model_cfgs[] = {
    /* zero fields: beta1 0.9, beta2 0.999, eps 1e-8, grad_scale 1 */
    {"defaults", {.weight_decay = 0.1f}, 0.9f, 0.999f, 1e-8f, 0},
    {"explicit",
     {.beta1 = 0.8f, .beta2 = 0.95f, .eps = 1e-6f, .weight_decay = 0.05f},
     0.8f,
     0.95f,
     1e-6f,
     0},
    /* effective norms 3.2, 12.9, 0.06, 6.4, 19, 1.3: steps 2, 4, 5 clip */
    {"clip+grad_scale",
     {.beta2 = 0.95f, .weight_decay = 0.1f, .grad_scale = 0.25f, .max_grad_norm = 5.0f},
     0.9f,
     0.95f,
     1e-8f,
     1},
};

/* Runs STEPS steps of cfg on ctx, comparing with the reference after every
 * step; returns the final params, m, v (malloc'd, 3 * MODEL_N floats). */
static float *run_model(vkf_context *ctx, const model_cfg *cfg, size_t *failures) {
  const size_t n = MODEL_N;
  const uint32_t ns = VKFT_ARRAY_LEN(model_segs);
  vkft_rng rng = vkft_rng_seed(11);
  float *p0 = vkft_alloc(n), *g = vkft_alloc(n), *out = vkft_alloc(3 * n);
  vkft_fill_uniform(&rng, p0, n, -1, 1);
  dev_state d;
  dev_create(ctx, &d, n, 0, p0, NULL, 0);
  /* Write the parameters again through per-tensor views, as training code
   * holding one view per weight would. */
  for (uint32_t s = 0; s < ns; s++) {
    uint64_t start = model_segs[s].start, end = s + 1 < ns ? model_segs[s + 1].start : n;
    int64_t shape[1] = {(int64_t)(end - start)};
    vkf_tensor view;
    VKFT_OK(vkf_tensor_view(ctx, d.p, start, 1, shape, &view));
    VKFT_OK(vkf_tensor_write(ctx, view, p0 + start, (size_t)(end - start) * sizeof(float)));
    VKFT_OK(vkf_tensor_destroy(ctx, view));
  }
  VKFT_OK(vkf_optim_segments_create(ctx, model_segs, ns, n, &d.seg));
  unsigned char *decay = decay_mask(model_segs, ns, n);
  double *rp = to_double(p0, n), *rm = zeros_d(n), *rv = zeros_d(n);
  for (int t = 1; t <= STEPS; t++) {
    for (size_t i = 0; i < n; i++)
      g[i] = vkft_uniform(&rng, -1, 1) * grad_scales[t - 1];
    VKFT_OK(vkf_tensor_write(ctx, d.g, g, n * sizeof(float)));
    vkf_optim_desc desc = cfg->desc;
    desc.lr = lr_schedule[t - 1];
    desc.step = (uint64_t)t;
    ref_hp h = {lr_schedule[t - 1],
                cfg->b1,
                cfg->b2,
                cfg->eps,
                cfg->desc.weight_decay,
                (uint64_t)t,
                cfg->desc.grad_scale ? cfg->desc.grad_scale : 1.0};
    if (cfg->clip) {
      VKFT_OK(vkf_grad_norm(ctx, d.norm, d.scratch, d.g));
      float dev_norm;
      VKFT_OK(vkf_grad_norm_read(ctx, d.norm, &dev_norm));
      double want = norm_d(g, n);
      if (fabs(dev_norm - want) > 1e-5 * want)
        fail_msg("%s step %d: norm %.9g, expected %.9g", cfg->name, t, (double)dev_norm, want);
      /* The reference clips with the device's norm (checked just above), so
       * this compares the AdamW arithmetic, not the norm's rounding. */
      double gs = h.gmul, c = desc.max_grad_norm / (gs * dev_norm + 1e-6);
      h.gmul = gs * (c < 1 ? c : 1);
    }
    step_or_fail(&d, cfg->clip ? d.norm : VKF_NO_TENSOR, &desc);
    ref_adamw(rp, rm, rv, g, decay, n, &h);
    vkft_read(ctx, d.p, out, n);
    vkft_read(ctx, d.m, out + n, n);
    vkft_read(ctx, d.v, out + 2 * n, n);
    char what[96];
    snprintf(what, sizeof(what), "%s step %d params", cfg->name, t);
    *failures += vkft_compare(what, out, rp, n, P_ATOL, P_RTOL);
    snprintf(what, sizeof(what), "%s step %d m", cfg->name, t);
    *failures += vkft_compare(what, out + n, rm, n, M_ATOL, M_RTOL);
    snprintf(what, sizeof(what), "%s step %d v", cfg->name, t);
    *failures += vkft_compare(what, out + 2 * n, rv, n, V_ATOL, V_RTOL);
  }
  dev_destroy(&d);
  free(p0);
  free(g);
  free(decay);
  free(rp);
  free(rm);
  free(rv);
  return out;
}

static void test_adamw_cpu_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  size_t failures = 0;
  for (size_t c = 0; c < VKFT_ARRAY_LEN(model_cfgs); c++)
    free(run_model(cpu, &model_cfgs[c], &failures));
  assert_int_equal(failures, 0);
  vkft_destroy(cpu);
}

static void test_adamw_vulkan_vs_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  size_t failures = 0;
  for (size_t c = 0; c < VKFT_ARRAY_LEN(model_cfgs); c++) {
    float *got = run_model(vk, &model_cfgs[c], &failures);
    float *want = run_model(cpu, &model_cfgs[c], &failures);
    char what[96];
    snprintf(what, sizeof(what), "%s: Vulkan vs CPU params", model_cfgs[c].name);
    failures += vkft_compare_f(what, got, want, MODEL_N, P_ATOL, P_RTOL);
    snprintf(what, sizeof(what), "%s: Vulkan vs CPU m", model_cfgs[c].name);
    failures += vkft_compare_f(what, got + MODEL_N, want + MODEL_N, MODEL_N, M_ATOL, M_RTOL);
    snprintf(what, sizeof(what), "%s: Vulkan vs CPU v", model_cfgs[c].name);
    failures +=
        vkft_compare_f(what, got + 2 * MODEL_N, want + 2 * MODEL_N, MODEL_N, V_ATOL, V_RTOL);
    free(got);
    free(want);
  }
  assert_int_equal(failures, 0);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* ------------------------------------------------------------------------ */
/* 2. Gradient norm and clipping                                           */
/* ------------------------------------------------------------------------ */
typedef struct norm_case {
  size_t n;
  uint32_t offset; /* element offset of a view: not 16-byte aligned */
  float scale;
} norm_case;

static const norm_case norm_cases[] = {
    {1, 0, 1},        {3, 0, 1},       {3, 1, 1},       {1000, 0, 1000},
    {8193, 0, 1e-3f}, {1000003, 0, 1}, {1000003, 1, 1},
};

/* The norm of grads on ctx (grads a view at `offset` when nonzero). */
static float grad_norm_of(vkf_context *ctx, const float *g, size_t n, uint32_t offset) {
  dev_state d;
  float *zeros = vkft_alloc(n);
  memset(zeros, 0, n * sizeof(float));
  dev_create(ctx, &d, n, offset, zeros, NULL, 0);
  VKFT_OK(vkf_tensor_write(ctx, d.g, g, n * sizeof(float)));
  vkf_status st = vkf_grad_norm(ctx, d.norm, d.scratch, d.g);
  if (st != VKF_OK)
    fail_msg("vkf_grad_norm: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  float r;
  VKFT_OK(vkf_grad_norm_read(ctx, d.norm, &r));
  dev_destroy(&d);
  free(zeros);
  return r;
}

static void norm_cases_on(vkf_context *ctx, double rtol, bool check_threads) {
  vkft_rng rng = vkft_rng_seed(3);
  for (size_t c = 0; c < VKFT_ARRAY_LEN(norm_cases); c++) {
    const norm_case *nc = &norm_cases[c];
    float *g = vkft_alloc(nc->n);
    vkft_fill_uniform(&rng, g, nc->n, -nc->scale, nc->scale);
    double want = norm_d(g, nc->n);
    float got = grad_norm_of(ctx, g, nc->n, nc->offset);
    if (!(fabs(got - want) <= rtol * want))
      fail_msg("norm of %zu (offset %u): %.9g, expected %.9g (rel err %.3g, tol %.3g)", nc->n,
               nc->offset, (double)got, want, fabs(got - want) / want, rtol);
    /* deterministic: the same bits again */
    float again = grad_norm_of(ctx, g, nc->n, nc->offset);
    if (memcmp(&got, &again, sizeof(float)) != 0)
      fail_msg("norm of %zu: %.9g then %.9g", nc->n, (double)got, (double)again);
    if (check_threads) { /* the CPU's result does not depend on its threads */
      VKFT_OK(vkf_context_set_threads(ctx, 1));
      float one = grad_norm_of(ctx, g, nc->n, nc->offset);
      VKFT_OK(vkf_context_set_threads(ctx, 3));
      float three = grad_norm_of(ctx, g, nc->n, nc->offset);
      if (memcmp(&got, &one, sizeof(float)) != 0 || memcmp(&got, &three, sizeof(float)) != 0)
        fail_msg("norm of %zu: %.9g, with 1 thread %.9g, with 3 %.9g", nc->n, (double)got,
                 (double)one, (double)three);
    }
    free(g);
  }
}

static void test_grad_norm_cpu(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  norm_cases_on(cpu, 1e-7, true);
  vkft_destroy(cpu);
}

static void test_grad_norm_vulkan(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  norm_cases_on(vk, 1e-5, false);
  vkft_destroy(vk);
}

/* Clipping above the limit scales by max / (norm + 1e-6); below, nothing
 * changes (bit for bit). */
static void clip_on(vkf_context *ctx, double rtol) {
  vkft_rng rng = vkft_rng_seed(5);
  const size_t sizes[] = {3, 1000003};
  const uint32_t offsets[] = {1, 0};
  size_t failures = 0;
  for (size_t c = 0; c < VKFT_ARRAY_LEN(sizes); c++) {
    size_t n = sizes[c];
    float *g = vkft_alloc(n), *got = vkft_alloc(n), *zeros = vkft_alloc(n);
    memset(zeros, 0, n * sizeof(float));
    vkft_fill_uniform(&rng, g, n, -1, 1);
    double nrm = norm_d(g, n);
    dev_state d;
    dev_create(ctx, &d, n, offsets[c], zeros, NULL, 0);
    /* above: max = norm / 4 */
    VKFT_OK(vkf_tensor_write(ctx, d.g, g, n * sizeof(float)));
    VKFT_OK(vkf_grad_norm(ctx, d.norm, d.scratch, d.g));
    VKFT_OK(vkf_clip_grads(ctx, d.g, d.norm, (float)(nrm / 4)));
    vkft_read(ctx, d.g, got, n);
    dev_check_guards(&d, "clip_grads");
    double *ref = vkft_alloc_d(n);
    double factor = (double)(float)(nrm / 4) / (nrm + 1e-6);
    for (size_t i = 0; i < n; i++)
      ref[i] = g[i] * factor;
    char what[64];
    snprintf(what, sizeof(what), "clip %zu above", n);
    failures += vkft_compare(what, got, ref, n, 0, rtol);
    /* the norm tensor still holds the norm before clipping (for logging) */
    float logged;
    VKFT_OK(vkf_grad_norm_read(ctx, d.norm, &logged));
    if (!(fabs(logged - nrm) <= 1e-5 * nrm))
      fail_msg("clip %zu: logged norm %.9g, expected %.9g", n, (double)logged, nrm);
    /* below: max = 2 norm: a no-op */
    VKFT_OK(vkf_tensor_write(ctx, d.g, g, n * sizeof(float)));
    VKFT_OK(vkf_grad_norm(ctx, d.norm, d.scratch, d.g));
    VKFT_OK(vkf_clip_grads(ctx, d.g, d.norm, (float)(nrm * 2)));
    vkft_read(ctx, d.g, got, n);
    if (memcmp(got, g, n * sizeof(float)) != 0)
      fail_msg("clip %zu below the limit changed the gradients", n);
    dev_destroy(&d);
    free(g);
    free(got);
    free(zeros);
    free(ref);
  }
  assert_int_equal(failures, 0);
}

static void test_clip_grads_cpu(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  clip_on(cpu, 1e-6);
  vkft_destroy(cpu);
}

static void test_clip_grads_vulkan(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  clip_on(vk, 2e-5);
  vkft_destroy(vk);
}

/* Fused clipping inside AdamW gives what clip_grads then AdamW gives, and
 * leaves the gradients untouched. */
static void fused_vs_separate(vkf_context *ctx, double rtol) {
  const size_t n = MODEL_N;
  const uint32_t ns = VKFT_ARRAY_LEN(model_segs);
  vkft_rng rng = vkft_rng_seed(13);
  float *p0 = vkft_alloc(n), *g = vkft_alloc(n);
  float *a = vkft_alloc(3 * n), *b = vkft_alloc(3 * n), *g_after = vkft_alloc(n);
  vkft_fill_uniform(&rng, p0, n, -1, 1);
  dev_state fused, sep;
  dev_create(ctx, &fused, n, 0, p0, model_segs, ns);
  dev_create(ctx, &sep, n, 0, p0, model_segs, ns);
  int clipped = 0;
  for (int t = 1; t <= 4; t++) {
    vkft_fill_uniform(&rng, g, n, -1, 1);
    for (size_t i = 0; i < n; i++)
      g[i] *= grad_scales[t - 1];
    double nrm = norm_d(g, n);
    float max_norm = 8.0f; /* the norms are ~13, 51, 0.3, 26: steps 1, 2, 4 clip */
    clipped += nrm > max_norm;
    vkf_optim_desc desc = {.lr = lr_schedule[t - 1], .step = (uint64_t)t, .weight_decay = 0.1f};
    VKFT_OK(vkf_tensor_write(ctx, fused.g, g, n * sizeof(float)));
    VKFT_OK(vkf_grad_norm(ctx, fused.norm, fused.scratch, fused.g));
    desc.max_grad_norm = max_norm;
    step_or_fail(&fused, fused.norm, &desc);
    VKFT_OK(vkf_tensor_write(ctx, sep.g, g, n * sizeof(float)));
    VKFT_OK(vkf_grad_norm(ctx, sep.norm, sep.scratch, sep.g));
    VKFT_OK(vkf_clip_grads(ctx, sep.g, sep.norm, max_norm));
    desc.max_grad_norm = 0;
    step_or_fail(&sep, VKF_NO_TENSOR, &desc);
    vkft_read(ctx, fused.g, g_after, n);
    if (memcmp(g_after, g, n * sizeof(float)) != 0)
      fail_msg("step %d: the fused step modified the gradients", t);
  }
  assert_int_equal(clipped, 3);
  vkf_tensor fo[3] = {fused.p, fused.m, fused.v}, so[3] = {sep.p, sep.m, sep.v};
  size_t failures = 0;
  for (int k = 0; k < 3; k++) {
    vkft_read(ctx, fo[k], a + k * n, n);
    vkft_read(ctx, so[k], b + k * n, n);
  }
  if (rtol == 0) {
    if (memcmp(a, b, 3 * n * sizeof(float)) != 0)
      fail_msg("fused clip: results differ from clip then AdamW");
  } else {
    failures += vkft_compare_f("fused vs separate", a, b, 3 * n, 1e-9, rtol);
  }
  assert_int_equal(failures, 0);
  dev_destroy(&fused);
  dev_destroy(&sep);
  free(p0);
  free(g);
  free(a);
  free(b);
  free(g_after);
}

static void test_fused_clip_cpu(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  fused_vs_separate(cpu, 0);
  vkft_destroy(cpu);
}

static void test_fused_clip_vulkan(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  fused_vs_separate(vk, 1e-6);
  vkft_destroy(vk);
}

static size_t compare3(const char *what, const float *got, const double *rp, const double *rm,
                       const double *rv, size_t n) {
  char w[128];
  size_t f = 0;
  snprintf(w, sizeof(w), "%s params", what);
  f += vkft_compare(w, got, rp, n, P_ATOL, P_RTOL);
  snprintf(w, sizeof(w), "%s m", what);
  f += vkft_compare(w, got + n, rm, n, M_ATOL, M_RTOL);
  snprintf(w, sizeof(w), "%s v", what);
  f += vkft_compare(w, got + 2 * n, rv, n, V_ATOL, V_RTOL);
  return f;
}

/* A non-finite norm (documented): infinite -> clip factor 0, NaN -> no
 * clipping. Two steps from zero state, so step 2 shows m and v decaying. */
static void nonfinite_norm_on(vkf_context *ctx) {
  enum { N = 257 };
  vkft_rng rng = vkft_rng_seed(17);
  float p0[N], g[N], got[3 * N];
  vkft_fill_uniform(&rng, p0, N, -1, 1);
  vkft_fill_uniform(&rng, g, N, -1, 1);
  const float norms[2] = {INFINITY, NAN};
  const double gmul[2] = {0.0, 1.0};
  size_t failures = 0;
  for (int c = 0; c < 2; c++) {
    dev_state d;
    dev_create(ctx, &d, N, 0, p0, NULL, 0);
    VKFT_OK(vkf_tensor_write(ctx, d.g, g, sizeof(g)));
    unsigned char decay[N];
    memset(decay, 1, sizeof(decay));
    double *rp = to_double(p0, N), *rm = zeros_d(N), *rv = zeros_d(N);
    /* step 1 unclipped, step 2 with the non-finite norm */
    vkf_optim_desc desc = {.lr = 0.01f, .step = 1, .weight_decay = 0.1f};
    step_or_fail(&d, VKF_NO_TENSOR, &desc);
    ref_hp h = {0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 1, 1.0};
    ref_adamw(rp, rm, rv, g, decay, N, &h);
    VKFT_OK(vkf_tensor_fill(ctx, d.norm, norms[c]));
    desc.step = 2;
    desc.max_grad_norm = 1.0f;
    step_or_fail(&d, d.norm, &desc);
    h.t = 2;
    h.gmul = gmul[c];
    ref_adamw(rp, rm, rv, g, decay, N, &h);
    vkft_read(ctx, d.p, got, N);
    vkft_read(ctx, d.m, got + N, N);
    vkft_read(ctx, d.v, got + 2 * N, N);
    failures += compare3(c ? "NaN norm" : "infinite norm", got, rp, rm, rv, N);
    dev_destroy(&d);
    free(rp);
    free(rm);
    free(rv);
  }
  assert_int_equal(failures, 0);
}

static void test_adamw_nonfinite_norm(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  nonfinite_norm_on(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  nonfinite_norm_on(vk);
  vkft_destroy(vk);
}

/* ------------------------------------------------------------------------ */
/* 3. Awkward sizes and segment layouts                                     */
/* ------------------------------------------------------------------------ */
typedef struct awk_case {
  size_t n;
  uint32_t offset; /* views at this element offset: not 16-byte aligned */
  int layout;      /* 0 no table, 1 one segment without decay, 2 alternating
                      per element, 3 big unaligned segments, 4 many tiny ones */
} awk_case;

static const awk_case awk_cases[] = {
    {1, 0, 0},    {1, 0, 1},    {3, 0, 0},       {3, 0, 2},       {3, 1, 2},
    {5000, 0, 4}, {5000, 3, 4}, {1000003, 0, 3}, {1000003, 1, 3},
};

/* Segment list for a layout (malloc'd; *ns = 0 for none). */
static vkf_optim_segment *awk_segments(const awk_case *c, uint32_t *ns) {
  vkf_optim_segment *s = malloc(sizeof(*s) * (c->n + 8));
  assert_non_null(s);
  *ns = 0;
  switch (c->layout) {
  case 1:
    s[(*ns)++] = (vkf_optim_segment){0, 0};
    break;
  case 2:
    for (size_t i = 0; i < c->n; i++)
      s[(*ns)++] = (vkf_optim_segment){i, (i % 2) ? 0 : VKF_OPTIM_DECAY};
    break;
  case 3: {
    /* 2047 and 8191: the only boundary in a chunk, at its last element
     * (chunks are 4 x 64 = 256 elements on lavapipe, 4 x 256 on GPUs);
     * 4096: a boundary at a chunk's first element */
    static const uint64_t starts[] = {0, 1, 1027, 2047, 4096, 4099, 8191, 500001, 999999, 1000002};
    for (uint32_t i = 0; i < VKFT_ARRAY_LEN(starts); i++)
      s[(*ns)++] = (vkf_optim_segment){starts[i], (i % 2) ? 0 : VKF_OPTIM_DECAY};
    break;
  }
  case 4: /* lengths 1, 2, 3, 4, 5, 1, 2, ...: several segments per vec4 */
    for (uint64_t start = 0, k = 0; start < c->n; start += k % 5 + 1, k++)
      s[(*ns)++] = (vkf_optim_segment){start, (k % 3) ? VKF_OPTIM_DECAY : 0};
    break;
  default:
    break;
  }
  return s;
}

/* Two steps of case c on ctx; returns params, m, v (3n floats). */
static float *run_awk(vkf_context *ctx, const awk_case *c, const float *p0, const float *g1,
                      const float *g2) {
  uint32_t ns;
  vkf_optim_segment *segs = awk_segments(c, &ns);
  dev_state d;
  dev_create(ctx, &d, c->n, c->offset, p0, segs, ns);
  const float *gs[2] = {g1, g2};
  for (int t = 1; t <= 2; t++) {
    VKFT_OK(vkf_tensor_write(ctx, d.g, gs[t - 1], c->n * sizeof(float)));
    vkf_optim_desc desc = {
        .lr = t == 1 ? 0.01f : 0.02f, .step = (uint64_t)t, .weight_decay = 0.1f, .beta2 = 0.95f};
    step_or_fail(&d, VKF_NO_TENSOR, &desc);
  }
  dev_check_guards(&d, "adamw");
  float *out = vkft_alloc(3 * c->n);
  vkft_read(ctx, d.p, out, c->n);
  vkft_read(ctx, d.m, out + c->n, c->n);
  vkft_read(ctx, d.v, out + 2 * c->n, c->n);
  dev_destroy(&d);
  free(segs);
  return out;
}

static void awkward_on(vkf_context *ctx, vkf_context *cpu) {
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(awk_cases); ci++) {
    const awk_case *c = &awk_cases[ci];
    vkft_rng rng = vkft_rng_seed(100 + ci);
    float *p0 = vkft_alloc(c->n), *g1 = vkft_alloc(c->n), *g2 = vkft_alloc(c->n);
    vkft_fill_uniform(&rng, p0, c->n, -1, 1);
    vkft_fill_uniform(&rng, g1, c->n, -1, 1);
    vkft_fill_uniform(&rng, g2, c->n, -2, 2);
    uint32_t ns;
    vkf_optim_segment *segs = awk_segments(c, &ns);
    unsigned char *decay = decay_mask(ns ? segs : NULL, ns, c->n);
    double *rp = to_double(p0, c->n), *rm = zeros_d(c->n), *rv = zeros_d(c->n);
    ref_hp h1 = {0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1.0};
    ref_hp h2 = {0.02f, 0.9f, 0.95f, 1e-8f, 0.1f, 2, 1.0};
    ref_adamw(rp, rm, rv, g1, decay, c->n, &h1);
    ref_adamw(rp, rm, rv, g2, decay, c->n, &h2);
    char what[96];
    snprintf(what, sizeof(what), "n %zu offset %u layout %d", c->n, c->offset, c->layout);
    float *got = run_awk(ctx, c, p0, g1, g2);
    failures += compare3(what, got, rp, rm, rv, c->n);
    if (cpu) {
      float *want = run_awk(cpu, c, p0, g1, g2);
      snprintf(what, sizeof(what), "n %zu offset %u layout %d vs CPU", c->n, c->offset, c->layout);
      failures += vkft_compare_f(what, got, want, c->n, P_ATOL, P_RTOL);
      failures += vkft_compare_f(what, got + c->n, want + c->n, c->n, M_ATOL, M_RTOL);
      failures += vkft_compare_f(what, got + 2 * c->n, want + 2 * c->n, c->n, V_ATOL, V_RTOL);
      free(want);
    }
    free(got);
    free(p0);
    free(g1);
    free(g2);
    free(segs);
    free(decay);
    free(rp);
    free(rm);
    free(rv);
  }
  assert_int_equal(failures, 0);
}

static void test_adamw_awkward_cpu(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  awkward_on(cpu, NULL);
  /* one thread: the same results bit for bit */
  const awk_case *c = &awk_cases[VKFT_ARRAY_LEN(awk_cases) - 2];
  vkft_rng rng = vkft_rng_seed(7);
  float *p0 = vkft_alloc(c->n), *g1 = vkft_alloc(c->n), *g2 = vkft_alloc(c->n);
  vkft_fill_uniform(&rng, p0, c->n, -1, 1);
  vkft_fill_uniform(&rng, g1, c->n, -1, 1);
  vkft_fill_uniform(&rng, g2, c->n, -1, 1);
  float *many = run_awk(cpu, c, p0, g1, g2);
  VKFT_OK(vkf_context_set_threads(cpu, 1));
  float *one = run_awk(cpu, c, p0, g1, g2);
  if (memcmp(many, one, 3 * c->n * sizeof(float)) != 0)
    fail_msg("adamw: results depend on the thread count");
  free(many);
  free(one);
  free(p0);
  free(g1);
  free(g2);
  vkft_destroy(cpu);
}

static void test_adamw_awkward_vulkan(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  awkward_on(vk, cpu);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* ------------------------------------------------------------------------ */
/* 4. ONNX Adam (ai.onnx.preview.training, version 1)                       */
/* ------------------------------------------------------------------------ */
/* ONNX's update, with alpha = beta1, beta = beta2:
 *   g = norm_coefficient * X + G
 *   V' = alpha V + (1 - alpha) g;  H' = beta H + (1 - beta) g^2
 *   R' = R sqrt(1 - beta^T) / (1 - alpha^T) if T > 0, else R
 *   X' = (1 - norm_coefficient_post) (X - R' V' / (sqrt(H') + epsilon))
 * maps to vkf_optim_step with VKF_OPTIM_L2_DECAY (weight_decay =
 * norm_coefficient), VKF_OPTIM_EPS_HAT (epsilon outside the correction),
 * VKF_OPTIM_EXPLICIT (ONNX's epsilon defaults to 0), step = T, and for T = 0
 * VKF_OPTIM_NO_BIAS_CORRECTION; a nonzero norm_coefficient_post is a
 * vkf_scale(X, X, 1 - norm_coefficient_post) afterwards. */
typedef struct onnx_case {
  const char *name;
  float R, alpha, beta, epsilon, norm_coefficient;
  size_t n;
  float X[3], G[3], V[3], H[3];
  float X_new[3], V_new[3], H_new[3];
} onnx_case;

/* Values of the ONNX backend test data, onnx v1.22.0
 * onnx/backend/test/data/node/test_adam{,_multiple} (Apache License 2.0,
 * Copyright (c) ONNX Project Contributors), printed with 9 significant
 * digits (exact for f32). Both have T = 0. test_adam_multiple's two tensors
 * (X1 [1], X2 [2]) are one flat buffer here. */
static const onnx_case onnx_cases[] = {
    {"test_adam",
     0.100000001f,
     0.949999988f,
     0.100000001f,
     1.00000001e-07f,
     0.00100000005f,
     2,
     {1.20000005f, 2.79999995f},
     {-0.939999998f, -2.5f},
     {1.70000005f, 3.5999999f},
     {0.100000001f, 0.100000001f},
     {1.02503633f, 2.66103268f},
     {1.56806004f, 3.29513979f},
     {0.803210795f, 5.62240696f}},
    {"test_adam_multiple",
     0.100000001f,
     0.949999988f,
     0.850000024f,
     0.00999999978f,
     0.00100000005f,
     3,
     {1, 1, 2},
     {-1, -1, -3},
     {2, 4, 1},
     {0.5f, 1, 10},
     {0.75913626f, 0.628652811f, 1.97458529f},
     {1.85004997f, 3.75005007f, 0.800099969f},
     {0.574700177f, 0.999700189f, 9.8482008f}},
};

static vkf_optim_desc onnx_desc(float R, float alpha, float beta, float epsilon, float nc,
                                uint64_t T) {
  vkf_optim_desc d = {.flags = VKF_OPTIM_L2_DECAY | VKF_OPTIM_EPS_HAT | VKF_OPTIM_EXPLICIT,
                      .step = T,
                      .lr = R,
                      .beta1 = alpha,
                      .beta2 = beta,
                      .eps = epsilon,
                      .weight_decay = nc};
  if (T == 0)
    d.flags |= VKF_OPTIM_NO_BIAS_CORRECTION;
  return d;
}

static void onnx_on(vkf_context *ctx) {
  size_t failures = 0;
  for (size_t c = 0; c < VKFT_ARRAY_LEN(onnx_cases); c++) {
    const onnx_case *oc = &onnx_cases[c];
    dev_state d;
    dev_create(ctx, &d, oc->n, 0, oc->X, NULL, 0);
    VKFT_OK(vkf_tensor_write(ctx, d.g, oc->G, oc->n * sizeof(float)));
    VKFT_OK(vkf_tensor_write(ctx, d.m, oc->V, oc->n * sizeof(float)));
    VKFT_OK(vkf_tensor_write(ctx, d.v, oc->H, oc->n * sizeof(float)));
    vkf_optim_desc desc =
        onnx_desc(oc->R, oc->alpha, oc->beta, oc->epsilon, oc->norm_coefficient, 0);
    step_or_fail(&d, VKF_NO_TENSOR, &desc);
    float got[3];
    const float *want[3] = {oc->X_new, oc->V_new, oc->H_new};
    vkf_tensor outs[3] = {d.p, d.m, d.v};
    static const char *names[3] = {"X_new", "V_new", "H_new"};
    for (int k = 0; k < 3; k++) {
      vkft_read(ctx, outs[k], got, oc->n);
      char what[64];
      snprintf(what, sizeof(what), "%s %s", oc->name, names[k]);
      failures += vkft_compare_f(what, got, want[k], oc->n, 1e-6, 1e-5);
    }
    dev_destroy(&d);
  }
  /* T > 0 (no ONNX vector has one): ONNX's formula in double, T = 3. */
  enum { N = 257 };
  vkft_rng rng = vkft_rng_seed(21);
  float X[N], G[N], V[N], H[N], got[N];
  vkft_fill_uniform(&rng, X, N, -1, 1);
  vkft_fill_uniform(&rng, G, N, -1, 1);
  vkft_fill_uniform(&rng, V, N, -0.5f, 0.5f);
  vkft_fill_uniform(&rng, H, N, 0, 0.3f);
  const float R = 0.05f, alpha = 0.9f, beta = 0.99f, epsilon = 1e-3f, nc = 0.01f;
  const uint64_t T = 3;
  double rx[N], rv[N], rh[N];
  double Rt = R * sqrt(1.0 - pow(beta, (double)T)) / (1.0 - pow(alpha, (double)T));
  for (int i = 0; i < N; i++) {
    double g = (double)nc * X[i] + G[i];
    rv[i] = (double)alpha * V[i] + (1.0 - alpha) * g;
    rh[i] = (double)beta * H[i] + (1.0 - beta) * g * g;
    rx[i] = X[i] - Rt * rv[i] / (sqrt(rh[i]) + epsilon);
  }
  dev_state d;
  dev_create(ctx, &d, N, 0, X, NULL, 0);
  VKFT_OK(vkf_tensor_write(ctx, d.g, G, sizeof(G)));
  VKFT_OK(vkf_tensor_write(ctx, d.m, V, sizeof(V)));
  VKFT_OK(vkf_tensor_write(ctx, d.v, H, sizeof(H)));
  vkf_optim_desc desc = onnx_desc(R, alpha, beta, epsilon, nc, T);
  step_or_fail(&d, VKF_NO_TENSOR, &desc);
  vkft_read(ctx, d.p, got, N);
  failures += vkft_compare("onnx T=3 X_new", got, rx, N, 1e-6, 1e-5);
  vkft_read(ctx, d.m, got, N);
  failures += vkft_compare("onnx T=3 V_new", got, rv, N, 1e-6, 1e-5);
  vkft_read(ctx, d.v, got, N);
  failures += vkft_compare("onnx T=3 H_new", got, rh, N, 1e-6, 1e-5);
  dev_destroy(&d);
  assert_int_equal(failures, 0);
}

static void test_adamw_onnx_form(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  onnx_on(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  onnx_on(vk);
  vkft_destroy(vk);
}

/* ------------------------------------------------------------------------ */
/* 5. Errors                                                                */
/* ------------------------------------------------------------------------ */
static void error_cases(vkf_context *ctx) {
  int64_t s10[1] = {10}, s11[1] = {11}, s1[1] = {1}, s2[1] = {2}, s22[2] = {2, 2}, s23[2] = {2, 3},
          s4[1] = {4}, s20k[1] = {20000};
  vkf_tensor p = vkft_tensor(ctx, 1, s10), g = vkft_tensor(ctx, 1, s10),
             m = vkft_tensor(ctx, 1, s10), v = vkft_tensor(ctx, 1, s10);
  vkf_tensor g11 = vkft_tensor(ctx, 1, s11), norm = vkft_tensor(ctx, 1, s1),
             norm2 = vkft_tensor(ctx, 1, s2), seg_f32 = vkft_tensor(ctx, 2, s22);
  vkf_tensor gi32, seg23, seg1d, seg;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 1, s10, &gi32));
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, s23, &seg23));
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 1, s4, &seg1d));
  vkf_optim_segment segs[2] = {{0, VKF_OPTIM_DECAY}, {7, 0}};
  VKFT_OK(vkf_optim_segments_create(ctx, segs, 2, 10, &seg));
  VKFT_OK(vkf_tensor_fill(ctx, p, 0.5f));
  VKFT_OK(vkf_tensor_fill(ctx, g, 0.5f));
  VKFT_OK(vkf_tensor_fill(ctx, m, 0.0f));
  VKFT_OK(vkf_tensor_fill(ctx, v, 0.0f));
  VKFT_OK(vkf_tensor_fill(ctx, norm, 1.0f));
  const vkf_tensor none = VKF_NO_TENSOR;

  vkf_optim_desc ok = {.lr = 1e-3f, .step = 1, .weight_decay = 0.1f};
  vkf_optim_desc d;
#define STEP(desc_, want_, what_)                                                                  \
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, seg, none, desc_), want_, what_)
  STEP(&ok, VKF_OK, "valid");
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, none, none, &ok), VKF_OK, "valid, no table");
  d = ok;
  d.max_grad_norm = 1.0f;
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, seg, norm, &d), VKF_OK, "valid, clip");
  assert_int_equal(vkf_optim_step(NULL, p, g, m, v, seg, none, &ok), VKF_ERROR_NULL_POINTER);
  STEP(NULL, VKF_ERROR_NULL_POINTER, "no desc");
  /* sizes and dtypes */
  expect(ctx, vkf_optim_step(ctx, p, g11, m, v, seg, none, &ok), VKF_ERROR_SHAPE_MISMATCH,
         "grads size");
  expect(ctx, vkf_optim_step(ctx, p, g, m, g11, seg, none, &ok), VKF_ERROR_SHAPE_MISMATCH,
         "v size");
  expect(ctx, vkf_optim_step(ctx, p, gi32, m, v, seg, none, &ok), VKF_ERROR_DTYPE_MISMATCH,
         "grads dtype");
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, seg_f32, none, &ok), VKF_ERROR_DTYPE_MISMATCH,
         "segments dtype");
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, seg23, none, &ok), VKF_ERROR_SHAPE_MISMATCH,
         "segments [2, 3]");
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, seg1d, none, &ok), VKF_ERROR_SHAPE_MISMATCH,
         "segments 1-D");
  d = ok;
  d.max_grad_norm = 1.0f;
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, seg, norm2, &d), VKF_ERROR_SHAPE_MISMATCH,
         "norm of 2 elements");
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, seg, gi32, &d), VKF_ERROR_DTYPE_MISMATCH,
         "norm dtype");
  /* aliasing */
  expect(ctx, vkf_optim_step(ctx, p, g, m, m, seg, none, &ok), VKF_ERROR_INVALID_ARGUMENT,
         "m is v");
  expect(ctx, vkf_optim_step(ctx, p, p, m, v, seg, none, &ok), VKF_ERROR_INVALID_ARGUMENT,
         "params is grads");
  vkf_tensor pview;
  int64_t s1v[1] = {1};
  VKFT_OK(vkf_tensor_view(ctx, p, 3, 1, s1v, &pview));
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, seg, pview, &d), VKF_ERROR_INVALID_ARGUMENT,
         "norm inside params");
  /* hyperparameters */
  struct {
    const char *what;
    float lr, beta1, beta2, eps, wd, grad_scale;
  } bad[] = {
      {"negative lr", -1e-3f, 0, 0, 0, 0, 0},
      {"NaN lr", NAN, 0, 0, 0, 0, 0},
      {"infinite lr", INFINITY, 0, 0, 0, 0, 0},
      {"beta1 1", 1e-3f, 1.0f, 0, 0, 0, 0},
      {"negative beta1", 1e-3f, -0.1f, 0, 0, 0, 0},
      {"beta2 1.5", 1e-3f, 0, 1.5f, 0, 0, 0},
      {"beta2 1", 1e-3f, 0, 1.0f, 0, 0, 0},
      {"NaN beta2", 1e-3f, 0, NAN, 0, 0, 0},
      {"negative eps", 1e-3f, 0, 0, -1e-8f, 0, 0},
      {"infinite eps", 1e-3f, 0, 0, INFINITY, 0, 0},
      {"negative weight decay", 1e-3f, 0, 0, 0, -0.1f, 0},
      {"NaN weight decay", 1e-3f, 0, 0, 0, NAN, 0},
      {"negative grad_scale", 1e-3f, 0, 0, 0, 0, -1.0f},
      {"infinite grad_scale", 1e-3f, 0, 0, 0, 0, INFINITY},
  };
  for (size_t i = 0; i < VKFT_ARRAY_LEN(bad); i++) {
    d = ok;
    d.lr = bad[i].lr;
    d.beta1 = bad[i].beta1;
    d.beta2 = bad[i].beta2;
    d.eps = bad[i].eps;
    d.weight_decay = bad[i].wd;
    d.grad_scale = bad[i].grad_scale;
    STEP(&d, VKF_ERROR_INVALID_ARGUMENT, bad[i].what);
  }
  d = ok;
  d.lr = 0;
  STEP(&d, VKF_OK, "lr 0 is allowed (warmup from 0)");
  d = ok;
  d.flags = VKF_OPTIM_EXPLICIT;
  STEP(&d, VKF_OK, "explicit zeros: beta1 = beta2 = eps = 0");
  d = ok;
  d.step = 0;
  STEP(&d, VKF_ERROR_INVALID_ARGUMENT, "step 0");
  d.flags = VKF_OPTIM_NO_BIAS_CORRECTION;
  STEP(&d, VKF_OK, "step 0 without bias correction");
  d = ok;
  d.flags = 1u << 7;
  STEP(&d, VKF_ERROR_INVALID_ARGUMENT, "unknown flag");
  d = ok;
  d.kind = (vkf_optim_kind)5;
  STEP(&d, VKF_ERROR_INVALID_ARGUMENT, "unknown kind");
  d = ok;
  d.max_grad_norm = 1.0f;
  STEP(&d, VKF_ERROR_INVALID_ARGUMENT, "max_grad_norm without a norm tensor");
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, seg, norm, &ok), VKF_ERROR_INVALID_ARGUMENT,
         "norm tensor without max_grad_norm");
  d.max_grad_norm = -1.0f;
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, seg, norm, &d), VKF_ERROR_INVALID_ARGUMENT,
         "negative max_grad_norm");
  /* handles */
  vkf_tensor forged = {0x7fff0};
  expect(ctx, vkf_optim_step(ctx, p, g, forged, v, seg, none, &ok), VKF_ERROR_STALE_HANDLE,
         "forged m");
  expect(ctx, vkf_optim_step(ctx, none, g, m, v, seg, none, &ok), VKF_ERROR_INVALID_ARGUMENT,
         "no params");
  vkf_tensor stale_seg = seg23;
  VKFT_OK(vkf_tensor_destroy(ctx, seg23));
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, stale_seg, none, &ok), VKF_ERROR_STALE_HANDLE,
         "stale segments");
  vkf_tensor stale_g = g11;
  VKFT_OK(vkf_tensor_destroy(ctx, g11));
  expect(ctx, vkf_optim_step(ctx, p, stale_g, m, v, seg, none, &ok), VKF_ERROR_STALE_HANDLE,
         "stale grads");
  d = ok;
  d.max_grad_norm = 1.0f;
  expect(ctx, vkf_optim_step(ctx, p, g, m, v, seg, stale_g, &d), VKF_ERROR_STALE_HANDLE,
         "stale norm");
#undef STEP

  /* segment tables */
  vkf_tensor t = {0};
  vkf_optim_segment unsorted[3] = {{0, 0}, {5, 0}, {3, 0}}, dup[2] = {{0, 0}, {0, 0}},
                    late[1] = {{1, 0}}, past[2] = {{0, 0}, {10, 0}}, flag[1] = {{0, 1u << 4}};
  expect(ctx, vkf_optim_segments_create(ctx, segs, 0, 10, &t), VKF_ERROR_INVALID_ARGUMENT,
         "no segments");
  expect(ctx, vkf_optim_segments_create(ctx, NULL, 2, 10, &t), VKF_ERROR_NULL_POINTER,
         "NULL segments");
  expect(ctx, vkf_optim_segments_create(ctx, segs, 2, 10, NULL), VKF_ERROR_NULL_POINTER,
         "NULL out");
  expect(ctx, vkf_optim_segments_create(ctx, unsorted, 3, 10, &t), VKF_ERROR_INVALID_ARGUMENT,
         "unsorted");
  expect(ctx, vkf_optim_segments_create(ctx, dup, 2, 10, &t), VKF_ERROR_INVALID_ARGUMENT,
         "empty segment");
  expect(ctx, vkf_optim_segments_create(ctx, late, 1, 10, &t), VKF_ERROR_INVALID_ARGUMENT,
         "first start not 0");
  expect(ctx, vkf_optim_segments_create(ctx, past, 2, 10, &t), VKF_ERROR_INVALID_ARGUMENT,
         "start past the end");
  expect(ctx, vkf_optim_segments_create(ctx, flag, 1, 10, &t), VKF_ERROR_INVALID_ARGUMENT,
         "unknown segment flag");
  expect(ctx, vkf_optim_segments_create(ctx, segs, 2, 0, &t), VKF_ERROR_INVALID_ARGUMENT,
         "0 elements");
  expect(ctx, vkf_optim_segments_create(ctx, segs, 2, 1ull << 32, &t), VKF_ERROR_INVALID_ARGUMENT,
         "2^32 elements");
  assert_int_equal(t.id, 0);

  /* grad_norm, clip_grads, grad_norm_read */
  vkf_tensor g20k = vkft_tensor(ctx, 1, s20k), small_scratch = vkft_tensor(ctx, 1, s2), scratch;
  uint64_t need = 0;
  VKFT_OK(vkf_grad_norm_scratch_size(ctx, 20000, &need));
  assert_true(need >= 3); /* 20000 elements: more than one partial */
  int64_t sneed[1] = {(int64_t)need};
  scratch = vkft_tensor(ctx, 1, sneed);
  VKFT_OK(vkf_tensor_fill(ctx, g20k, 1.0f));
  assert_int_equal(vkf_grad_norm_scratch_size(ctx, 10, NULL), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_grad_norm_scratch_size(NULL, 10, &need), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_grad_norm(ctx, norm, scratch, g20k), VKF_OK, "norm valid");
  float nv = 0;
  expect(ctx, vkf_grad_norm_read(ctx, norm, &nv), VKF_OK, "read valid");
  if (fabsf(nv - sqrtf(20000.0f)) > 1e-5f * sqrtf(20000.0f))
    fail_msg("norm of 20000 ones: %.9g", (double)nv);
  expect(ctx, vkf_grad_norm(ctx, norm, small_scratch, g20k), VKF_ERROR_SHAPE_MISMATCH,
         "scratch too small");
  expect(ctx, vkf_grad_norm(ctx, norm2, scratch, g20k), VKF_ERROR_SHAPE_MISMATCH, "norm [2]");
  expect(ctx, vkf_grad_norm(ctx, norm, scratch, gi32), VKF_ERROR_DTYPE_MISMATCH, "i32 grads");
  expect(ctx, vkf_grad_norm(ctx, pview, scratch, p), VKF_ERROR_INVALID_ARGUMENT,
         "norm inside grads");
  expect(ctx, vkf_grad_norm(ctx, norm, scratch, stale_g), VKF_ERROR_STALE_HANDLE, "stale grads");
  assert_int_equal(vkf_grad_norm(NULL, norm, scratch, g), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_clip_grads(ctx, g, norm, 0.0f), VKF_ERROR_INVALID_ARGUMENT, "max_norm 0");
  expect(ctx, vkf_clip_grads(ctx, g, norm, -1.0f), VKF_ERROR_INVALID_ARGUMENT, "max_norm < 0");
  expect(ctx, vkf_clip_grads(ctx, g, norm, NAN), VKF_ERROR_INVALID_ARGUMENT, "max_norm NaN");
  expect(ctx, vkf_clip_grads(ctx, g, norm2, 1.0f), VKF_ERROR_SHAPE_MISMATCH, "clip norm [2]");
  expect(ctx, vkf_clip_grads(ctx, gi32, norm, 1.0f), VKF_ERROR_DTYPE_MISMATCH, "clip i32");
  expect(ctx, vkf_clip_grads(ctx, p, pview, 1.0f), VKF_ERROR_INVALID_ARGUMENT, "clip aliasing");
  expect(ctx, vkf_clip_grads(ctx, stale_g, norm, 1.0f), VKF_ERROR_STALE_HANDLE, "clip stale");
  expect(ctx, vkf_clip_grads(ctx, g, norm, 1.0f), VKF_OK, "clip valid");
  assert_int_equal(vkf_clip_grads(NULL, g, norm, 1.0f), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_grad_norm_read(ctx, norm, NULL), VKF_ERROR_NULL_POINTER, "read NULL out");
  expect(ctx, vkf_grad_norm_read(ctx, norm2, &nv), VKF_ERROR_SHAPE_MISMATCH, "read norm [2]");
  expect(ctx, vkf_grad_norm_read(ctx, stale_g, &nv), VKF_ERROR_STALE_HANDLE, "read stale");
  assert_int_equal(vkf_grad_norm_read(NULL, norm, &nv), VKF_ERROR_NULL_POINTER);
  VKFT_OK(vkf_synchronize(ctx));

  vkf_tensor all[] = {p,    g,     m,   v,     norm, norm2,   seg_f32,
                      gi32, seg1d, seg, pview, g20k, scratch, small_scratch};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
}

static void test_optim_errors(void **state) {
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
      cmocka_unit_test(test_adamw_cpu_vs_reference), cmocka_unit_test(test_adamw_vulkan_vs_cpu),
      cmocka_unit_test(test_grad_norm_cpu),          cmocka_unit_test(test_grad_norm_vulkan),
      cmocka_unit_test(test_clip_grads_cpu),         cmocka_unit_test(test_clip_grads_vulkan),
      cmocka_unit_test(test_fused_clip_cpu),         cmocka_unit_test(test_fused_clip_vulkan),
      cmocka_unit_test(test_adamw_nonfinite_norm),   cmocka_unit_test(test_adamw_awkward_cpu),
      cmocka_unit_test(test_adamw_awkward_vulkan),   cmocka_unit_test(test_adamw_onnx_form),
      cmocka_unit_test(test_optim_errors),
  };
  return cmocka_run_group_tests_name("optim", tests, NULL, NULL);
}
