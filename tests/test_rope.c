/* rope family: vkf_rope, vkf_rope_backward. CPU forward against a long
 * double reference, CPU backward against central finite differences, Vulkan
 * against both on awkward shapes (odd T, D = 2, head sizes past the
 * workgroup, partial rotary, both pairings and layouts, tables, position ids,
 * positions up to 2^31 - 1, in place), accumulation, and every error. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { POS_OFFSET = 0, POS_IDS = 1 };
enum { NO_TABLE = 0, TABLE_POS = 1, TABLE_BT = 2 };

typedef struct rope_case {
  uint32_t B, T, H, D, rd; /* rd 0 = D */
  uint32_t flags;          /* VKF_ROPE_* */
  double theta;            /* 0 = default 10000 */
  int32_t off;
  int pos_mode;
  int32_t id_lo, id_hi; /* position ids drawn from [id_lo, id_hi] */
  int table;
  uint32_t P; /* table rows */
  int inplace;
} rope_case;

#define I VKF_ROPE_INTERLEAVED
#define HF VKF_ROPE_HEADS_FIRST
static const rope_case cases[] = {
    {1, 1, 1, 2, 0, 0, 0, 0, POS_OFFSET, 0, 0, NO_TABLE, 0, 0},
    {1, 7, 3, 8, 0, 0, 0, 0, POS_OFFSET, 0, 0, NO_TABLE, 0, 0},
    {2, 5, 4, 64, 0, 0, 0, 16384, POS_OFFSET, 0, 0, NO_TABLE, 0, 0},
    {2, 3, 2, 16, 8, I, 0, 5, POS_OFFSET, 0, 0, NO_TABLE, 0, 0},
    {3, 17, 2, 10, 6, 0, 500000, 100000, POS_OFFSET, 0, 0, NO_TABLE, 0, 1},
    {1, 9, 5, 34, 0, HF, 0, 3, POS_OFFSET, 0, 0, NO_TABLE, 0, 0},
    {2, 4, 3, 12, 0, HF | I, 0, 0, POS_IDS, -300000, 300000, NO_TABLE, 0, 0},
    {1, 3, 2, 8, 0, 0, 0, 2147483645, POS_OFFSET, 0, 0, NO_TABLE, 0, 0},
    {2, 3, 1, 6, 0, I, 0, 0, POS_IDS, 2147483000, 2147483647, NO_TABLE, 0, 1},
    {1, 4, 2, 6, 0, 0, 0, 0, POS_IDS, -2147483647 - 1, -2147483000, NO_TABLE, 0, 0},
    {2, 11, 3, 128, 0, 0, 1000000, 16777216 + 12345, POS_OFFSET, 0, 0, NO_TABLE, 0, 0},
    {1, 2, 1, 600, 0, I, 0, 7, POS_OFFSET, 0, 0, NO_TABLE, 0, 0},
    {2, 6, 2, 8, 4, 0, 0, 0, POS_IDS, 0, 49, TABLE_POS, 50, 0},
    {2, 3, 4, 8, 0, HF, 0, 0, POS_OFFSET, 0, 0, TABLE_BT, 0, 0},
    {2, 3, 4, 8, 4, I | HF, 0, 0, POS_IDS, 0, 49, TABLE_POS, 50, 1},
    {1, 5, 2, 8, 0, 0, 0, 7, POS_OFFSET, 0, 0, TABLE_POS, 20, 0},
    {3, 33, 8, 64, 32, HF, 10000, 20000, POS_OFFSET, 0, 0, NO_TABLE, 0, 1},
};
#undef I
#undef HF

typedef struct rope_data {
  size_t n, n_tab, n_ids;
  float *x, *dout, *dx0, *cos_t, *sin_t;
  int32_t *ids;
} rope_data;

static uint32_t rd_of(const rope_case *c) {
  return c->rd ? c->rd : c->D;
}

static rope_data make_data(const rope_case *c, vkft_rng *rng) {
  rope_data d;
  uint32_t half = rd_of(c) / 2;
  d.n = (size_t)c->B * c->T * c->H * c->D;
  d.n_tab = c->table == TABLE_POS  ? (size_t)c->P * half
            : c->table == TABLE_BT ? (size_t)c->B * c->T * half
                                   : 1;
  d.n_ids = (size_t)c->B * c->T;
  d.x = vkft_alloc(d.n);
  d.dout = vkft_alloc(d.n);
  d.dx0 = vkft_alloc(d.n);
  d.cos_t = vkft_alloc(d.n_tab);
  d.sin_t = vkft_alloc(d.n_tab);
  d.ids = malloc(d.n_ids * sizeof(int32_t));
  assert_non_null(d.ids);
  vkft_fill_uniform(rng, d.x, d.n, -1, 1);
  vkft_fill_uniform(rng, d.dout, d.n, -1, 1);
  vkft_fill_uniform(rng, d.dx0, d.n, -1, 1);
  for (size_t i = 0; i < d.n_tab; i++) { /* tables as a real cache would hold */
    float a = vkft_uniform(rng, -3.14159f, 3.14159f);
    d.cos_t[i] = cosf(a);
    d.sin_t[i] = sinf(a);
  }
  for (size_t i = 0; i < d.n_ids; i++) {
    double u = vkft_uniform(rng, 0, 1);
    double v = (double)c->id_lo + u * ((double)c->id_hi - (double)c->id_lo + 1);
    int64_t iv = (int64_t)floor(v);
    d.ids[i] = (int32_t)(iv > c->id_hi ? c->id_hi : iv);
  }
  return d;
}

static void free_data(rope_data *d) {
  free(d->x);
  free(d->dout);
  free(d->dx0);
  free(d->cos_t);
  free(d->sin_t);
  free(d->ids);
}

/* Element offset of (b, t, h, 0). */
static size_t head_base(const rope_case *c, uint32_t b, uint32_t t, uint32_t h) {
  if (c->flags & VKF_ROPE_HEADS_FIRST)
    return (((size_t)b * c->H + h) * c->T + t) * c->D;
  return (((size_t)b * c->T + t) * c->H + h) * c->D;
}

/* Reference in long double, straight from the definition (theta^(-2i/rd) by
 * powl, sinl/cosl of the unreduced angle), on double inputs `in`.
 * forward: out = R in; backward: out = dx0 + R^T in. `naive` instead forms
 * the angle in float as a float implementation would (to show the test can
 * tell). */
static void reference_on(const rope_case *c, const rope_data *d, const double *in, int backward,
                         int naive, double *out) {
  uint32_t rd = rd_of(c), half = rd / 2;
  long double theta = c->theta ? c->theta : 10000.0;
  for (size_t i = 0; i < d->n; i++)
    out[i] = backward ? d->dx0[i] + in[i] : in[i];
  for (uint32_t b = 0; b < c->B; b++)
    for (uint32_t t = 0; t < c->T; t++) {
      int64_t pos = c->pos_mode == POS_IDS ? d->ids[b * c->T + t] : (int64_t)c->off + t;
      for (uint32_t i = 0; i < half; i++) {
        long double cs, sn;
        if (c->table) {
          size_t row = c->table == TABLE_BT ? (size_t)b * c->T + t : (size_t)pos;
          cs = d->cos_t[row * half + i];
          sn = d->sin_t[row * half + i];
        } else if (naive) {
          float a = (float)pos * (float)powl(theta, -2.0L * i / rd);
          cs = cosf(a);
          sn = sinf(a);
        } else {
          long double a = (long double)pos * powl(theta, -2.0L * i / rd);
          cs = cosl(a);
          sn = sinl(a);
        }
        for (uint32_t h = 0; h < c->H; h++) {
          size_t o = head_base(c, b, t, h);
          size_t e1 = (c->flags & VKF_ROPE_INTERLEAVED) ? o + 2 * i : o + i;
          size_t e2 = (c->flags & VKF_ROPE_INTERLEAVED) ? e1 + 1 : o + i + half;
          long double x1 = in[e1], x2 = in[e2];
          if (backward) {
            out[e1] = (double)((long double)d->dx0[e1] + cs * x1 + sn * x2);
            out[e2] = (double)((long double)d->dx0[e2] + cs * x2 - sn * x1);
          } else {
            out[e1] = (double)(cs * x1 - sn * x2);
            out[e2] = (double)(sn * x1 + cs * x2);
          }
        }
      }
    }
}

static void reference(const rope_case *c, const rope_data *d, int backward, int naive,
                      double *out) {
  const float *src = backward ? d->dout : d->x;
  double *in = vkft_alloc_d(d->n);
  for (size_t i = 0; i < d->n; i++)
    in[i] = src[i];
  reference_on(c, d, in, backward, naive, out);
  free(in);
}

static vkf_tensor x_tensor(vkf_context *ctx, const rope_case *c, const float *data) {
  int64_t s[4] = {c->B, c->T, c->H, c->D};
  if (c->flags & VKF_ROPE_HEADS_FIRST) {
    s[1] = c->H;
    s[2] = c->T;
  }
  return data ? vkft_tensor_from(ctx, 4, s, data) : vkft_tensor(ctx, 4, s);
}

/* Runs forward (or backward onto dx0) on ctx; result malloc'd. */
static float *run(vkf_context *ctx, const rope_case *c, const rope_data *d, int backward) {
  uint32_t half = rd_of(c) / 2;
  vkf_rope_desc desc = {.flags = c->flags,
                        .rotary_dim = c->rd,
                        .theta = c->theta,
                        .pos_offset = c->pos_mode == POS_OFFSET ? c->off : 0};
  vkf_tensor ids = VKF_NO_TENSOR, ct = VKF_NO_TENSOR, st = VKF_NO_TENSOR;
  if (c->pos_mode == POS_IDS) {
    int64_t s[2] = {c->B, c->T};
    VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, s, &ids));
    VKFT_OK(vkf_tensor_write(ctx, ids, d->ids, d->n_ids * sizeof(int32_t)));
    desc.position_ids = ids;
  }
  if (c->table) {
    int64_t s2[2] = {c->P, half}, s3[3] = {c->B, c->T, half};
    uint32_t nd = c->table == TABLE_POS ? 2 : 3;
    ct = vkft_tensor_from(ctx, nd, nd == 2 ? s2 : s3, d->cos_t);
    st = vkft_tensor_from(ctx, nd, nd == 2 ? s2 : s3, d->sin_t);
    desc.cos_cache = ct;
    desc.sin_cache = st;
  }
  vkf_tensor in = x_tensor(ctx, c, backward ? d->dout : d->x);
  vkf_tensor out = backward ? x_tensor(ctx, c, d->dx0) : c->inplace ? in : x_tensor(ctx, c, NULL);
  vkf_status s = backward ? vkf_rope_backward(ctx, out, in, &desc) : vkf_rope(ctx, out, in, &desc);
  if (s != VKF_OK)
    fail_msg("%s: %s: %s", backward ? "vkf_rope_backward" : "vkf_rope", vkf_status_name(s),
             vkf_context_error(ctx));
  float *res = vkft_alloc(d->n);
  vkft_read(ctx, out, res, d->n);
  VKFT_OK(vkf_tensor_destroy(ctx, in));
  if (out.id != in.id)
    VKFT_OK(vkf_tensor_destroy(ctx, out));
  if (ids.id)
    VKFT_OK(vkf_tensor_destroy(ctx, ids));
  if (ct.id) {
    VKFT_OK(vkf_tensor_destroy(ctx, ct));
    VKFT_OK(vkf_tensor_destroy(ctx, st));
  }
  return res;
}

/* Tolerances. CPU vs reference: the CPU's angle is exact to ~1e-10 rad and it
 * rounds once: |err| <= 0.5 ulp of |out| <= 2 (values in [-1, 1]) plus the
 * backward's sum with dx0: 3e-7 absolute, 1e-7 relative. Vulkan: angle
 * error ~1e-7 rad (fixed-point turns, float reduced angle, polynomial), float
 * rotation (two products and a sum) and, backward, the add to dx0: within
 * 1e-6 absolute for |x| <= 1. A float-angle implementation misses by up to
 * ~4e-3 at position 1e5, which these bounds reject (checked below). */
#define CPU_ATOL 3e-7
#define CPU_RTOL 1e-7
#define VK_ATOL 1e-6
#define VK_RTOL 1e-6

static void all_cases(vkf_context *ctx, double atol, double rtol) {
  vkft_rng rng = vkft_rng_seed(21);
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(cases); ci++) {
    const rope_case *c = &cases[ci];
    rope_data d = make_data(c, &rng);
    double *ref = vkft_alloc_d(d.n);
    char what[96];
    for (int bw = 0; bw < 2; bw++) {
      reference(c, &d, bw, 0, ref);
      float *got = run(ctx, c, &d, bw);
      snprintf(what, sizeof(what), "rope%s case %zu", bw ? "_backward" : "", ci);
      failures += vkft_compare(what, got, ref, d.n, atol, rtol);
      free(got);
    }
    free(ref);
    free_data(&d);
  }
  assert_int_equal(failures, 0);
}

static void test_rope_cpu_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  all_cases(cpu, CPU_ATOL, CPU_RTOL);
  VKFT_OK(vkf_context_set_threads(cpu, 1));
  all_cases(cpu, CPU_ATOL, CPU_RTOL);
  vkft_destroy(cpu);
}

static void test_rope_vulkan_vs_reference_and_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  all_cases(vk, VK_ATOL, VK_RTOL);
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(22);
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(cases); ci++) {
    rope_data d = make_data(&cases[ci], &rng);
    for (int bw = 0; bw < 2; bw++) {
      float *a = run(vk, &cases[ci], &d, bw), *b = run(cpu, &cases[ci], &d, bw);
      char what[96];
      snprintf(what, sizeof(what), "Vulkan vs CPU rope%s case %zu", bw ? "_backward" : "", ci);
      failures += vkft_compare_f(what, a, b, d.n, VK_ATOL, VK_RTOL);
      free(a);
      free(b);
    }
    free_data(&d);
  }
  assert_int_equal(failures, 0);
  vkft_destroy(cpu);
  vkft_destroy(vk);
}

/* Tensors in memory the host cannot map: position ids for table lookups
 * come back for the host check through staging copies. */
static void test_rope_vulkan_staging(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan_flags(VKF_CONTEXT_FORCE_STAGING);
  vkft_rng rng = vkft_rng_seed(24);
  size_t failures = 0;
  for (size_t ci = 12; ci < 16; ci++) {
    const rope_case *c = &cases[ci];
    rope_data d = make_data(c, &rng);
    double *ref = vkft_alloc_d(d.n);
    for (int bw = 0; bw < 2; bw++) {
      reference(c, &d, bw, 0, ref);
      float *got = run(vk, c, &d, bw);
      failures += vkft_compare("staging rope", got, ref, d.n, VK_ATOL, VK_RTOL);
      free(got);
    }
    free(ref);
    free_data(&d);
  }
  assert_int_equal(failures, 0);
  vkft_destroy(vk);
}

/* The tolerances above would catch a float-angle implementation: at large
 * positions such angles are off by far more than VK_ATOL. */
static void test_rope_tolerance_rejects_float_angles(void **state) {
  (void)state;
  vkft_rng rng = vkft_rng_seed(23);
  const rope_case *c = &cases[4]; /* positions 100000.. */
  rope_data d = make_data(c, &rng);
  double *good = vkft_alloc_d(d.n), *naive = vkft_alloc_d(d.n);
  reference(c, &d, 0, 0, good);
  reference(c, &d, 0, 1, naive);
  float *nf = vkft_alloc(d.n);
  for (size_t i = 0; i < d.n; i++)
    nf[i] = (float)naive[i];
  fprintf(stderr, "(expected) mismatches of a float-angle rope at positions >= 100000:\n");
  assert_true(vkft_compare("float-angle rope", nf, good, d.n, VK_ATOL, VK_RTOL) > 0);
  free(nf);
  free(good);
  free(naive);
  free_data(&d);
}

/* L = sum(G * rope(x)) with the long double forward; central differences
 * (step 1e-4) over every element of x against the CPU backward with
 * dout = G and dx0 = 0, then again accumulated onto a non-zero dx0. */
static void test_rope_backward_finite_differences(void **state) {
  (void)state;
  static const rope_case fd_cases[] = {
      {2, 3, 2, 8, 6, 0, 0, 40, POS_OFFSET, 0, 0, NO_TABLE, 0, 0},
      {1, 3, 3, 6, 0, VKF_ROPE_INTERLEAVED | VKF_ROPE_HEADS_FIRST, 500, 0, POS_IDS, -50, 5000,
       NO_TABLE, 0, 0},
      {2, 2, 2, 8, 4, VKF_ROPE_INTERLEAVED, 0, 0, POS_IDS, 0, 9, TABLE_POS, 10, 0},
  };
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(31);
  size_t failures = 0;
  for (size_t ci = 0; ci < VKFT_ARRAY_LEN(fd_cases); ci++) {
    const rope_case *c = &fd_cases[ci];
    rope_data d = make_data(c, &rng);
    float *dx0_keep = vkft_alloc(d.n);
    memcpy(dx0_keep, d.dx0, d.n * sizeof(float));
    memset(d.dx0, 0, d.n * sizeof(float));
    double *fd = vkft_alloc_d(d.n), *y = vkft_alloc_d(d.n), *xd = vkft_alloc_d(d.n);
    for (size_t i = 0; i < d.n; i++)
      xd[i] = d.x[i];
    const double h = 1e-4;
    for (size_t i = 0; i < d.n; i++) {
      long double l[2];
      for (int s = 0; s < 2; s++) {
        xd[i] = (double)d.x[i] + (s ? -h : h);
        reference_on(c, &d, xd, 0, 0, y);
        l[s] = 0;
        for (size_t k = 0; k < d.n; k++)
          l[s] += (long double)d.dout[k] * y[k];
      }
      xd[i] = d.x[i];
      fd[i] = (double)((l[0] - l[1]) / (2 * h));
    }
    free(xd);
    char what[64];
    float *got = run(cpu, c, &d, 1);
    snprintf(what, sizeof(what), "rope dx vs finite differences, case %zu", ci);
    /* L is linear in x, so the central difference is exact up to the
     * rounding of the two losses (~1e-19 / 1e-4); the CPU gradient is a
     * rotation of dout rounded once: 2e-7 */
    failures += vkft_compare(what, got, fd, d.n, 2e-7, 1e-6);
    free(got);
    memcpy(d.dx0, dx0_keep, d.n * sizeof(float));
    got = run(cpu, c, &d, 1);
    for (size_t i = 0; i < d.n; i++)
      fd[i] += d.dx0[i];
    snprintf(what, sizeof(what), "rope dx accumulated, case %zu", ci);
    failures += vkft_compare(what, got, fd, d.n, 3e-7, 1e-6);
    free(got);
    free(fd);
    free(y);
    free(dx0_keep);
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
  int64_t s4[4] = {2, 3, 4, 8}, s4b[4] = {2, 3, 4, 6}, s3[3] = {2, 3, 32}, sid[2] = {2, 3};
  int64_t sid_bad[2] = {3, 2}, stab[2] = {10, 4}, stab_bad[2] = {10, 3}, stab3[3] = {2, 3, 4};
  int64_t stab3_bad[3] = {1, 3, 4}, sodd[4] = {1, 1, 1, 3};
  vkf_tensor x = vkft_tensor(ctx, 4, s4), y = vkft_tensor(ctx, 4, s4),
             yb = vkft_tensor(ctx, 4, s4b);
  vkf_tensor x3 = vkft_tensor(ctx, 3, s3), odd = vkft_tensor(ctx, 4, sodd);
  VKFT_OK(vkf_tensor_fill(ctx, x, 0.5f));
  VKFT_OK(vkf_tensor_fill(ctx, y, 0.0f));
  VKFT_OK(vkf_tensor_fill(ctx, odd, 1.0f));
  vkf_tensor ids, ids_bad, ids_f32 = vkft_tensor(ctx, 2, sid);
  int32_t ok_ids[6] = {0, 1, 2, 9, 3, 4}, big_ids[6] = {0, 1, 2, 10, 3, 4};
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, sid, &ids));
  VKFT_OK(vkf_tensor_write(ctx, ids, ok_ids, sizeof(ok_ids)));
  vkf_tensor ids_big;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, sid, &ids_big));
  VKFT_OK(vkf_tensor_write(ctx, ids_big, big_ids, sizeof(big_ids)));
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, sid_bad, &ids_bad));
  VKFT_OK(vkf_tensor_fill(ctx, ids_bad, 0));
  vkf_tensor ct = vkft_tensor(ctx, 2, stab), st = vkft_tensor(ctx, 2, stab);
  vkf_tensor ct_bad = vkft_tensor(ctx, 2, stab_bad), ct3 = vkft_tensor(ctx, 3, stab3),
             st3 = vkft_tensor(ctx, 3, stab3), ct3b = vkft_tensor(ctx, 3, stab3_bad),
             st3b = vkft_tensor(ctx, 3, stab3_bad);
  VKFT_OK(vkf_tensor_fill(ctx, ct, 1.0f));
  VKFT_OK(vkf_tensor_fill(ctx, st, 0.0f));
  VKFT_OK(vkf_tensor_fill(ctx, ct3, 1.0f));
  VKFT_OK(vkf_tensor_fill(ctx, st3, 0.0f));

  expect(ctx, vkf_rope(ctx, y, x, NULL), VKF_OK, "valid, defaults");
  expect(ctx, vkf_rope(ctx, x, x, NULL), VKF_OK, "in place");
  vkf_rope_desc d = {0};
  d.flags = 1u << 7;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "unknown flag");
  d = (vkf_rope_desc){.rotary_dim = 6};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_OK, "partial rotary 6");
  d.rotary_dim = 5;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "odd rotary_dim");
  d.rotary_dim = 10;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "rotary_dim > D");
  expect(ctx, vkf_rope(ctx, odd, odd, NULL), VKF_ERROR_INVALID_ARGUMENT, "odd head size");
  d = (vkf_rope_desc){.theta = 1.0};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "theta 1");
  d.theta = -5;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "negative theta");
  d.theta = INFINITY;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "infinite theta");
  d = (vkf_rope_desc){.pos_offset = 2147483647 - 1};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "positions pass 2^31-1");
  d.pos_offset = -2147483647 - 1;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_OK, "negative positions (theta)");
  expect(ctx, vkf_rope(ctx, yb, x, NULL), VKF_ERROR_SHAPE_MISMATCH, "out shape");
  expect(ctx, vkf_rope(ctx, x3, x3, NULL), VKF_ERROR_SHAPE_MISMATCH, "3-D x");
  expect(ctx, vkf_rope(ctx, y, ids_f32, NULL), VKF_ERROR_SHAPE_MISMATCH, "2-D x");
  d = (vkf_rope_desc){.position_ids = ids};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_OK, "position ids");
  d.pos_offset = 1;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "ids and offset");
  d = (vkf_rope_desc){.position_ids = ids_bad};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_SHAPE_MISMATCH, "ids shape");
  d.position_ids = ids_f32;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_DTYPE_MISMATCH, "f32 ids");
  d = (vkf_rope_desc){.cos_cache = ct, .sin_cache = st, .position_ids = ids};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_OK, "tables with ids");
  d.position_ids = ids_big;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "id past the table");
  d = (vkf_rope_desc){.cos_cache = ct, .sin_cache = st, .pos_offset = 7};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_OK, "tables, offset 7 + 3 = 10 rows");
  d.pos_offset = 8;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "offset past the table");
  d.pos_offset = -1;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "negative offset, tables");
  d = (vkf_rope_desc){.cos_cache = ct};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "cos without sin");
  d = (vkf_rope_desc){.cos_cache = ct_bad, .sin_cache = ct_bad};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_SHAPE_MISMATCH, "table width");
  d = (vkf_rope_desc){.cos_cache = ct, .sin_cache = ct3};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_SHAPE_MISMATCH, "cos/sin shapes differ");
  d = (vkf_rope_desc){.cos_cache = ct3, .sin_cache = st3};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_OK, "[B, T, half] tables");
  d.position_ids = ids;
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_INVALID_ARGUMENT, "[B, T, half] with ids");
  d = (vkf_rope_desc){.cos_cache = ct3b, .sin_cache = st3b};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_SHAPE_MISMATCH, "[B, T, half] batch");
  d = (vkf_rope_desc){.cos_cache = ids, .sin_cache = ids};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_DTYPE_MISMATCH, "i32 tables");
  d = (vkf_rope_desc){.cos_cache = ct, .sin_cache = st, .position_ids = ids};
  {
    /* out overlapping x other than exactly */
    int64_t sbig[1] = {2 * 3 * 4 * 8 + 8};
    vkf_tensor big = vkft_tensor(ctx, 1, sbig), v0, v1;
    VKFT_OK(vkf_tensor_view(ctx, big, 0, 4, s4, &v0));
    VKFT_OK(vkf_tensor_view(ctx, big, 8, 4, s4, &v1));
    expect(ctx, vkf_rope(ctx, v1, v0, NULL), VKF_ERROR_INVALID_ARGUMENT, "partial overlap");
    expect(ctx, vkf_rope_backward(ctx, v0, v0, NULL), VKF_ERROR_INVALID_ARGUMENT,
           "backward in place");
    VKFT_OK(vkf_tensor_destroy(ctx, v0));
    VKFT_OK(vkf_tensor_destroy(ctx, v1));
    VKFT_OK(vkf_tensor_destroy(ctx, big));
  }
  expect(ctx, vkf_rope_backward(ctx, y, x, &d), VKF_OK, "backward with tables");
  expect(ctx, vkf_rope_backward(ctx, yb, x, NULL), VKF_ERROR_SHAPE_MISMATCH, "backward shape");
  expect(ctx, vkf_rope(ctx, y, VKF_NO_TENSOR, NULL), VKF_ERROR_INVALID_ARGUMENT, "no x");
  assert_int_equal(vkf_rope(NULL, y, x, NULL), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_rope_backward(NULL, y, x, NULL), VKF_ERROR_NULL_POINTER);
  vkf_tensor stale = ids;
  VKFT_OK(vkf_tensor_destroy(ctx, ids));
  d = (vkf_rope_desc){.position_ids = stale};
  expect(ctx, vkf_rope(ctx, y, x, &d), VKF_ERROR_STALE_HANDLE, "stale ids");
  vkf_tensor stale_x = x;
  VKFT_OK(vkf_tensor_destroy(ctx, x));
  expect(ctx, vkf_rope(ctx, y, stale_x, NULL), VKF_ERROR_STALE_HANDLE, "stale x");
  VKFT_OK(vkf_synchronize(ctx));
}

static void test_rope_errors(void **state) {
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
      cmocka_unit_test(test_rope_cpu_vs_reference),
      cmocka_unit_test(test_rope_backward_finite_differences),
      cmocka_unit_test(test_rope_tolerance_rejects_float_angles),
      cmocka_unit_test(test_rope_vulkan_vs_reference_and_cpu),
      cmocka_unit_test(test_rope_vulkan_staging),
      cmocka_unit_test(test_rope_errors),
  };
  return cmocka_run_group_tests_name("rope", tests, NULL, NULL);
}
