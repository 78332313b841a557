/* row_sum and row_mean: each backend against a double reference, Vulkan
 * against the CPU backend, on awkward shapes (1-D input, out with and without
 * a trailing 1, batched, more rows than 65535 workgroups), and every
 * documented error status.
 *
 * Tolerances.
 * - Exact data: every input is k/1024 with |k| <= 2048 and a row has at most
 *   4099 entries, so every partial sum, in any order, is a multiple of 2^-10
 *   below 2^14 in magnitude: representable in binary32. Any summation order
 *   therefore gives the exact sum: row_sum must be exact on both backends and
 *   the backends must agree bit for bit. row_mean multiplies that exact sum by
 *   fl(1/cols): two roundings, |err| <= 2u|mean| (+u^2), u = 2^-24; the CPU's
 *   double product of two floats is exact before its one rounding, so it
 *   equals the device's f32 product bit for bit.
 * - Random data: a binary32 sum of n terms in any order is within
 *   (n-1)u * sum|x| of the exact sum (Higham, Accuracy and Stability of
 *   Numerical Algorithms, 4.2), so the device bound is (cols+2)u * sum|x| per
 *   row (scaled by 1/cols for the mean, plus 2u|ref| for its multiply). The
 *   CPU backend sums in double and rounds once: 2.5u|ref| + cols*2^-53*sum|x|. */
#include "vkft_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct red_case {
  uint32_t ndim;
  int64_t shape[VKF_MAX_DIMS];
  uint32_t out_ndim;
  int64_t out_shape[VKF_MAX_DIMS];
} red_case;

static const red_case cases[] = {
    {1, {1}, 1, {1}},
    {1, {3}, 1, {1}},
    {1, {1031}, 1, {1}},
    {2, {1, 1}, 1, {1}},
    {2, {5, 1}, 2, {5, 1}},
    {2, {4, 3}, 1, {4}},
    {2, {3, 17}, 2, {3, 1}},
    {2, {7, 63}, 1, {7}},
    {2, {5, 257}, 1, {5}},
    {2, {3, 1031}, 2, {3, 1}},
    {2, {2, 4099}, 1, {2}},
    {3, {2, 3, 17}, 2, {2, 3}},
    {3, {2, 3, 65}, 3, {2, 3, 1}},
    {4, {2, 2, 3, 33}, 3, {2, 2, 3}},
    {2, {70001, 3}, 1, {70001}}, /* more rows than 65535 groups: 2-D grid */
};

static void fill_exact(vkft_rng *rng, float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    x[i] = (float)((int)floorf(vkft_uniform(rng, -2048.0f, 2049.0f))) / 1024.0f;
}

/* Runs row_sum (mean = 0) or row_mean on ctx; returns the output (malloc'd). */
static float *run(vkf_context *ctx, const red_case *c, const float *a, bool mean) {
  size_t rows = vkft_elements(c->out_ndim, c->out_shape);
  vkf_tensor ta = vkft_tensor_from(ctx, c->ndim, c->shape, a);
  vkf_tensor to = vkft_tensor(ctx, c->out_ndim, c->out_shape);
  vkf_status st = mean ? vkf_row_mean(ctx, to, ta) : vkf_row_sum(ctx, to, ta);
  if (st != VKF_OK)
    fail_msg("%s: %s: %s", mean ? "row_mean" : "row_sum", vkf_status_name(st),
             vkf_context_error(ctx));
  float *out = vkft_alloc(rows);
  vkft_read(ctx, to, out, rows);
  VKFT_OK(vkf_tensor_destroy(ctx, ta));
  VKFT_OK(vkf_tensor_destroy(ctx, to));
  return out;
}

static size_t check_case(vkf_context *ctx, vkf_context *cpu, const red_case *c, bool exact,
                         vkft_rng *rng) {
  size_t n = vkft_elements(c->ndim, c->shape);
  size_t cols = (size_t)c->shape[c->ndim - 1], rows = n / cols;
  assert_int_equal(rows, vkft_elements(c->out_ndim, c->out_shape));
  float *a = vkft_alloc(n);
  if (exact)
    fill_exact(rng, a, n);
  else
    vkft_fill_uniform(rng, a, n, -0.5f, 1.0f);
  double *sum = vkft_alloc_d(rows), *mean = vkft_alloc_d(rows), *abs_sum = vkft_alloc_d(rows);
  double *bs = vkft_alloc_d(rows), *bm = vkft_alloc_d(rows);
  for (size_t r = 0; r < rows; r++) {
    double s = 0, sa = 0;
    for (size_t k = 0; k < cols; k++) {
      s += a[r * cols + k];
      sa += fabs(a[r * cols + k]);
    }
    sum[r] = s;
    mean[r] = s / (double)cols;
    abs_sum[r] = sa;
  }
  const double u = VKFT_U32;
  bool is_cpu = vkf_context_backend(ctx) == VKF_BACKEND_CPU;
  for (size_t r = 0; r < rows; r++) {
    if (exact) {
      bs[r] = 0;
      bm[r] = 2.0001 * u * fabs(mean[r]);
    } else if (is_cpu) {
      bs[r] = 2.5 * u * fabs(sum[r]) + (double)cols * 0x1p-53 * abs_sum[r];
      bm[r] = 2.5 * u * fabs(mean[r]) + 0x1p-53 * abs_sum[r];
    } else {
      bs[r] = (double)(cols + 2) * u * abs_sum[r];
      bm[r] = (double)(cols + 2) * u * abs_sum[r] / (double)cols + 2.0 * u * fabs(mean[r]);
    }
  }
  char what[128];
  snprintf(what, sizeof(what), "%s data, a[..%zu rows.., %zu] (ndim %u, out ndim %u)",
           exact ? "exact" : "random", rows, cols, c->ndim, c->out_ndim);
  size_t bad = 0;
  float *gs = run(ctx, c, a, false), *gm = run(ctx, c, a, true);
  bad += vkft_compare_bounds("row_sum", gs, sum, bs, rows);
  bad += vkft_compare_bounds("row_mean", gm, mean, bm, rows);
  if (cpu) {
    float *cs = run(cpu, c, a, false), *cm = run(cpu, c, a, true);
    if (exact) {
      bad += vkft_compare_f("row_sum vulkan vs cpu", gs, cs, rows, 0, 0);
      bad += vkft_compare_f("row_mean vulkan vs cpu", gm, cm, rows, 0, 0);
    } else {
      /* both within their bounds of the reference: the device bound plus
       * the CPU's, which the device bound dominates, doubled */
      double *ds = vkft_alloc_d(rows), *dm = vkft_alloc_d(rows);
      for (size_t r = 0; r < rows; r++) {
        ds[r] = cs[r];
        dm[r] = cm[r];
        bs[r] *= 2;
        bm[r] *= 2;
      }
      bad += vkft_compare_bounds("row_sum vulkan vs cpu", gs, ds, bs, rows);
      bad += vkft_compare_bounds("row_mean vulkan vs cpu", gm, dm, bm, rows);
      free(ds);
      free(dm);
    }
    free(cs);
    free(cm);
  }
  if (bad)
    fprintf(stderr, "  ^ in case: %s\n", what);
  free(gs);
  free(gm);
  free(a);
  free(sum);
  free(mean);
  free(abs_sum);
  free(bs);
  free(bm);
  return bad;
}

static void test_reduce_cpu_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(21);
  size_t bad = 0;
  for (int threads = 0; threads < 2; threads++) {
    if (threads)
      VKFT_OK(vkf_context_set_threads(cpu, 1));
    for (size_t i = 0; i < VKFT_ARRAY_LEN(cases); i++) {
      bad += check_case(cpu, NULL, &cases[i], true, &rng);
      bad += check_case(cpu, NULL, &cases[i], false, &rng);
    }
  }
  assert_int_equal(bad, 0);
  vkft_destroy(cpu);
}

static void test_reduce_vulkan_vs_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(22);
  size_t bad = 0;
  for (size_t i = 0; i < VKFT_ARRAY_LEN(cases); i++) {
    bad += check_case(vk, cpu, &cases[i], true, &rng);
    bad += check_case(vk, cpu, &cases[i], false, &rng);
  }
  assert_int_equal(bad, 0);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* A reduction reading the result of an op recorded just before it, and an
 * op overwriting the reduction's input right after: both orders need a
 * barrier. */
static void test_reduce_ordering(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  enum { R = 40, C = 50 };
  int64_t s[2] = {R, C}, so[1] = {R};
  float x[R * C];
  for (int i = 0; i < R * C; i++)
    x[i] = (float)(i % 7);
  vkf_tensor a = vkft_tensor_from(vk, 2, s, x), out1 = vkft_tensor(vk, 1, so),
             out2 = vkft_tensor(vk, 1, so);
  VKFT_OK(vkf_scale(vk, a, a, 2.0f));    /* a = 2x */
  VKFT_OK(vkf_row_sum(vk, out1, a));     /* reads 2x */
  VKFT_OK(vkf_tensor_fill(vk, a, 1.0f)); /* must wait for the read above */
  VKFT_OK(vkf_row_mean(vk, out2, a));    /* reads ones */
  float g1[R], g2[R];
  vkft_read(vk, out1, g1, R);
  vkft_read(vk, out2, g2, R);
  for (int r = 0; r < R; r++) {
    double e = 0;
    for (int c = 0; c < C; c++)
      e += 2.0 * (double)((r * C + c) % 7);
    assert_true(g1[r] == e); /* exact data: see the top */
    assert_true(fabs(g2[r] - 1.0) <= 2.0001 * VKFT_U32);
  }
  vkft_destroy(vk);
}

static void error_cases(vkf_context *ctx) {
  int64_t s23[2] = {2, 3}, s2[1] = {2}, s3[1] = {3}, s1[1] = {1}, s21[2] = {2, 1}, s22[2] = {2, 2},
          s12[2] = {1, 2}, s234[3] = {2, 3, 4}, s23_1[3] = {2, 3, 1}, s32[2] = {3, 2}, s8[1] = {8};
  vkf_tensor a = vkft_tensor(ctx, 2, s23), out = vkft_tensor(ctx, 1, s2),
             out21 = vkft_tensor(ctx, 2, s21), out3 = vkft_tensor(ctx, 1, s3),
             out22 = vkft_tensor(ctx, 2, s22), out12 = vkft_tensor(ctx, 2, s12),
             a1 = vkft_tensor(ctx, 1, s3), o1 = vkft_tensor(ctx, 1, s1),
             a3 = vkft_tensor(ctx, 3, s234), o23 = vkft_tensor(ctx, 2, s23),
             o231 = vkft_tensor(ctx, 3, s23_1), o32 = vkft_tensor(ctx, 2, s32);
  vkf_tensor i32 = vkft_tensor_dtype(ctx, VKF_DTYPE_I32, 2, s23);
  vkf_tensor f16o = vkft_tensor_dtype(ctx, VKF_DTYPE_F16, 1, s2);
  float zeros[24] = {0};
  VKFT_OK(vkf_tensor_write(ctx, a, zeros, 6 * sizeof(float)));
  VKFT_OK(vkf_tensor_write(ctx, a1, zeros, 3 * sizeof(float)));
  VKFT_OK(vkf_tensor_write(ctx, a3, zeros, 24 * sizeof(float)));
  typedef vkf_status (*red_fn)(vkf_context *, vkf_tensor, vkf_tensor);
  static const red_fn fns[2] = {vkf_row_sum, vkf_row_mean};
  for (int k = 0; k < 2; k++) {
    red_fn f = fns[k];
    vkft_expect(ctx, f(ctx, out, a), VKF_OK, "valid");
    vkft_expect(ctx, f(ctx, out21, a), VKF_OK, "out with trailing 1");
    vkft_expect(ctx, f(ctx, o1, a1), VKF_OK, "1-D a, out [1]");
    vkft_expect(ctx, f(ctx, o23, a3), VKF_OK, "3-D a");
    vkft_expect(ctx, f(ctx, o231, a3), VKF_OK, "3-D a, trailing 1");
    assert_int_equal(f(NULL, out, a), VKF_ERROR_NULL_POINTER);
    vkft_expect(ctx, f(ctx, VKF_NO_TENSOR, a), VKF_ERROR_INVALID_ARGUMENT, "no out");
    vkft_expect(ctx, f(ctx, out, VKF_NO_TENSOR), VKF_ERROR_INVALID_ARGUMENT, "no a");
    vkft_expect(ctx, f(ctx, out3, a), VKF_ERROR_SHAPE_MISMATCH, "out has the column count");
    vkft_expect(ctx, f(ctx, out22, a), VKF_ERROR_SHAPE_MISMATCH, "out trailing 2");
    vkft_expect(ctx, f(ctx, out12, a), VKF_ERROR_SHAPE_MISMATCH, "out [1, 2]");
    vkft_expect(ctx, f(ctx, out, a1), VKF_ERROR_SHAPE_MISMATCH, "1-D a, out [2]");
    vkft_expect(ctx, f(ctx, o32, a3), VKF_ERROR_SHAPE_MISMATCH, "3-D a, out transposed");
    vkft_expect(ctx, f(ctx, out, a3), VKF_ERROR_SHAPE_MISMATCH, "3-D a, out [2]");
    vkft_expect(ctx, f(ctx, out, i32), VKF_ERROR_DTYPE_MISMATCH, "i32 a");
    vkft_expect(ctx, f(ctx, f16o, a), VKF_ERROR_DTYPE_MISMATCH, "f16 out");
  }
  /* out overlapping a */
  vkf_tensor base = vkft_tensor(ctx, 1, s8);
  VKFT_OK(vkf_tensor_write(ctx, base, zeros, 8 * sizeof(float)));
  vkf_tensor va = vkft_view(ctx, base, 0, 2, s23), vo = vkft_view(ctx, base, 5, 1, s2),
             vo_free = vkft_view(ctx, base, 6, 1, s2);
  vkft_expect(ctx, vkf_row_sum(ctx, vo, va), VKF_ERROR_INVALID_ARGUMENT, "out overlaps a");
  vkft_expect(ctx, vkf_row_mean(ctx, vo, va), VKF_ERROR_INVALID_ARGUMENT, "mean out overlaps a");
  vkft_expect(ctx, vkf_row_sum(ctx, vo_free, va), VKF_OK, "out beside a in one storage");
  /* stale and forged */
  vkf_tensor stale = out;
  VKFT_OK(vkf_tensor_destroy(ctx, out));
  vkft_expect(ctx, vkf_row_sum(ctx, stale, a), VKF_ERROR_STALE_HANDLE, "stale out");
  vkft_expect(ctx, vkf_row_mean(ctx, out21, (vkf_tensor){0x00abcdefu}), VKF_ERROR_STALE_HANDLE,
              "forged a");
  VKFT_OK(vkf_synchronize(ctx));
}

static void test_reduce_errors(void **state) {
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
      cmocka_unit_test(test_reduce_cpu_vs_reference),
      cmocka_unit_test(test_reduce_vulkan_vs_cpu),
      cmocka_unit_test(test_reduce_ordering),
      cmocka_unit_test(test_reduce_errors),
  };
  return cmocka_run_group_tests_name("reduce", tests, NULL, NULL);
}
