/* softmax over the last dimension: each backend against a double reference,
 * Vulkan against the CPU backend, on awkward shapes and hostile rows (-inf
 * entries, rows entirely -inf, huge magnitudes, values that overflow exp
 * without the max subtraction), in place, and every documented error status.
 *
 * Tolerances (u = 2^-24; d = x - max of the row, so every term is e^d <= 1,
 * the row's sum S >= 1 and y = e^d / S <= e^d).
 * - A float subtraction x - max has relative error u, which becomes a
 *   relative error |d|u in e^d: an absolute error y|d|u <= e^-|d| |d| u <= u/e.
 * - CPU: expf (<= 1 ulp = 2u), the double sum (whose relative error is a
 *   weighted mean of the terms' errors, at most (2 + ln n)u), fl(1/S) (u)
 *   and the product (u): |err| <= u + (8 + log2 n)u * y.
 * - Vulkan: exp is allowed 3 + 2|d| ulp (Vulkan spec, precision of GLSL.std.450
 *   Exp), a binary32 sum of n positive terms n*u, 1/S 2.5 ulp and the
 *   product u: |err| <= 4u + (n + 64)u * y covers these with the |d| terms
 *   bounded as above (|d| e^-|d| <= 1/e; the weighted mean of |d| over a row
 *   is below ln n + 1).
 * Entries that are -inf, and rows that are entirely -inf, must give exactly
 * 0 (the bound there is 0). */
#include "vkft_check.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sm_case {
  uint32_t ndim;
  int64_t shape[VKF_MAX_DIMS];
} sm_case;

static const sm_case cases[] = {
    {1, {1}},        {1, {3}},           {2, {6, 1}},     {2, {8, 17}},
    {2, {8, 63}},    {2, {9, 257}},      {2, {8, 1031}},  {2, {3, 4099}},
    {3, {2, 5, 17}}, {4, {2, 2, 3, 33}}, {2, {70001, 3}}, /* more rows than 65535 groups: 2-D grid
                                                           */
};

enum { N_KINDS = 9 };

/* Row r gets a kind by r % N_KINDS; 1-row cases get the plain kind. */
static void fill_row(vkft_rng *rng, float *x, size_t n, int kind) {
  switch (kind) {
  case 0: /* plain */
    vkft_fill_uniform(rng, x, n, -5, 5);
    break;
  case 1: /* some -inf entries (masked), never all */
    vkft_fill_uniform(rng, x, n, -5, 5);
    for (size_t i = 0; i < n; i++)
      if (i % 3 == 1)
        x[i] = -INFINITY;
    break;
  case 2: /* entirely -inf: zeros */
    for (size_t i = 0; i < n; i++)
      x[i] = -INFINITY;
    break;
  case 3: /* large magnitudes */
    vkft_fill_uniform(rng, x, n, -3e4f, 3e4f);
    break;
  case 4: /* exp would overflow without subtracting the max */
    vkft_fill_uniform(rng, x, n, 80, 100);
    break;
  case 5: /* the extremes of f32: max - (-max) overflows to -inf in f32 */
    for (size_t i = 0; i < n; i++)
      x[i] = i % 4 == 0 ? FLT_MAX : (i % 4 == 1 ? -FLT_MAX : (i % 4 == 2 ? 0.0f : 1e30f));
    break;
  case 6: /* constant: uniform distribution */
    for (size_t i = 0; i < n; i++)
      x[i] = 1234.5f;
    break;
  case 7: /* one huge value: one-hot */
    vkft_fill_uniform(rng, x, n, -1, 1);
    x[n / 2] = 1e20f;
    break;
  default: /* tiny differences */
    vkft_fill_uniform(rng, x, n, -1e-3f, 1e-3f);
    break;
  }
}

static void reference(const float *x, size_t n, double *y) {
  double m = -INFINITY;
  for (size_t i = 0; i < n; i++)
    m = x[i] > m ? x[i] : m;
  if (m == -INFINITY) {
    for (size_t i = 0; i < n; i++)
      y[i] = 0;
    return;
  }
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += exp((double)x[i] - m);
  for (size_t i = 0; i < n; i++)
    y[i] = exp((double)x[i] - m) / s;
}

static float *run(vkf_context *ctx, const sm_case *c, const float *x, int mode) {
  size_t n = vkft_elements(c->ndim, c->shape);
  vkf_tensor a = vkft_tensor_from(ctx, c->ndim, c->shape, x);
  vkf_tensor out = a, extra = VKF_NO_TENSOR;
  vkf_status st;
  if (mode == 0) { /* out of place */
    out = vkft_tensor(ctx, c->ndim, c->shape);
    st = vkf_softmax(ctx, out, a);
  } else if (mode == 1) { /* in place */
    st = vkf_softmax(ctx, a, a);
  } else { /* in place through a second handle on the same bytes */
    extra = vkft_view(ctx, a, 0, c->ndim, c->shape);
    st = vkf_softmax(ctx, extra, a);
  }
  if (st != VKF_OK)
    fail_msg("softmax: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  float *y = vkft_alloc(n);
  vkft_read(ctx, out, y, n);
  VKFT_OK(vkf_tensor_destroy(ctx, a));
  if (out.id != a.id)
    VKFT_OK(vkf_tensor_destroy(ctx, out));
  if (extra.id)
    VKFT_OK(vkf_tensor_destroy(ctx, extra));
  return y;
}

static double bound_cpu(size_t cols, double y) {
  const double u = VKFT_U32;
  return u + (8.0 + log2((double)cols)) * u * y;
}

static double bound_vk(size_t cols, double y) {
  const double u = VKFT_U32;
  return 4.0 * u + ((double)cols + 64.0) * u * y;
}

static size_t check_case(vkf_context *ctx, vkf_context *cpu, const sm_case *c, vkft_rng *rng) {
  size_t n = vkft_elements(c->ndim, c->shape), cols = (size_t)c->shape[c->ndim - 1];
  size_t rows = n / cols;
  float *x = vkft_alloc(n);
  double *ref = vkft_alloc_d(n), *b = vkft_alloc_d(n), *bx = vkft_alloc_d(n);
  for (size_t r = 0; r < rows; r++) {
    fill_row(rng, x + r * cols, cols, rows == 1 ? 0 : (int)(r % N_KINDS));
    reference(x + r * cols, cols, ref + r * cols);
  }
  bool dev = vkf_context_backend(ctx) == VKF_BACKEND_VULKAN;
  for (size_t i = 0; i < n; i++) {
    bool zero = x[i] == -INFINITY; /* exactly 0, whatever the row */
    b[i] = zero ? 0 : (dev ? bound_vk(cols, ref[i]) : bound_cpu(cols, ref[i]));
    bx[i] = zero ? 0 : bound_vk(cols, ref[i]) + bound_cpu(cols, ref[i]);
  }
  char what[96];
  size_t bad = 0;
  for (int mode = 0; mode < 3; mode++) {
    snprintf(what, sizeof(what), "softmax %zux%zu (ndim %u) mode %d", rows, cols, c->ndim, mode);
    float *y = run(ctx, c, x, mode);
    bad += vkft_compare_bounds(what, y, ref, b, n);
    if (cpu && mode == 0) {
      float *yc = run(cpu, c, x, 0);
      double *dc = vkft_alloc_d(n);
      for (size_t i = 0; i < n; i++)
        dc[i] = yc[i];
      snprintf(what, sizeof(what), "softmax %zux%zu vulkan vs cpu", rows, cols);
      bad += vkft_compare_bounds(what, y, dc, bx, n);
      free(dc);
      free(yc);
    }
    free(y);
  }
  free(x);
  free(ref);
  free(b);
  free(bx);
  return bad;
}

static void test_softmax_cpu_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(31);
  size_t bad = 0;
  for (size_t i = 0; i < VKFT_ARRAY_LEN(cases); i++)
    bad += check_case(cpu, NULL, &cases[i], &rng);
  VKFT_OK(vkf_context_set_threads(cpu, 1));
  for (size_t i = 0; i < VKFT_ARRAY_LEN(cases); i++)
    bad += check_case(cpu, NULL, &cases[i], &rng);
  assert_int_equal(bad, 0);
  vkft_destroy(cpu);
}

static void test_softmax_vulkan_vs_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(32);
  size_t bad = 0;
  for (size_t i = 0; i < VKFT_ARRAY_LEN(cases); i++)
    bad += check_case(vk, cpu, &cases[i], &rng);
  assert_int_equal(bad, 0);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* Properties that hold whatever the rounding: outputs lie in [0, 1] and every
 * row sums to 1 within the sum of its elements' bounds. */
static void test_softmax_properties(void **state) {
  (void)state;
  vkf_context *ctxs[2] = {vkft_cpu(), vkft_vulkan()};
  enum { R = 33, C = 129 };
  vkft_rng rng = vkft_rng_seed(33);
  float x[R * C];
  vkft_fill_uniform(&rng, x, R * C, -20, 20);
  for (int k = 0; k < 2; k++) {
    int64_t s[2] = {R, C};
    vkf_tensor a = vkft_tensor_from(ctxs[k], 2, s, x);
    VKFT_OK(vkf_softmax(ctxs[k], a, a));
    float y[R * C];
    vkft_read(ctxs[k], a, y, R * C);
    for (int r = 0; r < R; r++) {
      double sum = 0;
      for (int c = 0; c < C; c++) {
        float v = y[r * C + c];
        assert_true(v >= 0.0f && v <= 1.0f);
        sum += v;
      }
      assert_true(fabs(sum - 1.0) <= 4.0 * VKFT_U32 * C + bound_vk(C, 1.0));
    }
    vkft_destroy(ctxs[k]);
  }
}

static void error_cases(vkf_context *ctx) {
  int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s6[1] = {6}, s123[3] = {1, 2, 3}, s12[1] = {12};
  vkf_tensor a = vkft_tensor(ctx, 2, s23), out = vkft_tensor(ctx, 2, s23),
             t32 = vkft_tensor(ctx, 2, s32), flat = vkft_tensor(ctx, 1, s6),
             t123 = vkft_tensor(ctx, 3, s123);
  vkf_tensor i32 = vkft_tensor_dtype(ctx, VKF_DTYPE_I32, 2, s23);
  vkf_tensor bf16 = vkft_tensor_dtype(ctx, VKF_DTYPE_BF16, 2, s23);
  float zeros[12] = {0};
  VKFT_OK(vkf_tensor_write(ctx, a, zeros, 6 * sizeof(float)));
  vkft_expect(ctx, vkf_softmax(ctx, out, a), VKF_OK, "valid");
  vkft_expect(ctx, vkf_softmax(ctx, a, a), VKF_OK, "in place");
  assert_int_equal(vkf_softmax(NULL, out, a), VKF_ERROR_NULL_POINTER);
  vkft_expect(ctx, vkf_softmax(ctx, VKF_NO_TENSOR, a), VKF_ERROR_INVALID_ARGUMENT, "no out");
  vkft_expect(ctx, vkf_softmax(ctx, out, VKF_NO_TENSOR), VKF_ERROR_INVALID_ARGUMENT, "no a");
  vkft_expect(ctx, vkf_softmax(ctx, t32, a), VKF_ERROR_SHAPE_MISMATCH, "transposed");
  vkft_expect(ctx, vkf_softmax(ctx, flat, a), VKF_ERROR_SHAPE_MISMATCH, "flat, same count");
  vkft_expect(ctx, vkf_softmax(ctx, t123, a), VKF_ERROR_SHAPE_MISMATCH, "extra leading 1");
  vkft_expect(ctx, vkf_softmax(ctx, out, i32), VKF_ERROR_DTYPE_MISMATCH, "i32 a");
  vkft_expect(ctx, vkf_softmax(ctx, bf16, a), VKF_ERROR_DTYPE_MISMATCH, "bf16 out");
  vkf_tensor base = vkft_tensor(ctx, 1, s12);
  VKFT_OK(vkf_tensor_write(ctx, base, zeros, sizeof(zeros)));
  vkf_tensor v0 = vkft_view(ctx, base, 0, 2, s23), v3 = vkft_view(ctx, base, 3, 2, s23),
             v6 = vkft_view(ctx, base, 6, 2, s23);
  vkft_expect(ctx, vkf_softmax(ctx, v3, v0), VKF_ERROR_INVALID_ARGUMENT, "partial overlap");
  vkft_expect(ctx, vkf_softmax(ctx, v6, v0), VKF_OK, "disjoint views of one storage");
  vkf_tensor stale = out;
  VKFT_OK(vkf_tensor_destroy(ctx, out));
  vkft_expect(ctx, vkf_softmax(ctx, stale, a), VKF_ERROR_STALE_HANDLE, "stale out");
  vkft_expect(ctx, vkf_softmax(ctx, a, stale), VKF_ERROR_STALE_HANDLE, "stale a");
  vkft_expect(ctx, vkf_softmax(ctx, a, (vkf_tensor){0x12345678u}), VKF_ERROR_STALE_HANDLE,
              "forged");
  VKFT_OK(vkf_synchronize(ctx));
}

static void test_softmax_errors(void **state) {
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
      cmocka_unit_test(test_softmax_cpu_vs_reference),
      cmocka_unit_test(test_softmax_vulkan_vs_cpu),
      cmocka_unit_test(test_softmax_properties),
      cmocka_unit_test(test_softmax_errors),
  };
  return cmocka_run_group_tests_name("softmax", tests, NULL, NULL);
}
