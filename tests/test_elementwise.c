/* add, mul (full and row-broadcast b, in place as c == a and c == b) and
 * scale: each backend against a double reference, Vulkan against the CPU
 * backend, on awkward shapes, and every documented error status.
 *
 * Tolerances. IEEE-754 binary32 addition and multiplication are correctly
 * rounded in C and in SPIR-V (Vulkan spec, "Precision and Operation of SPIR-V
 * Instructions": OpFAdd/OpFMul are correctly rounded). The exact result of
 * a + b or a * b on two floats is held exactly in a double, so the reference
 * is exact and every result must lie within half an ulp of it:
 * |got - ref| <= 2^-24 * |ref| (atol 0). The data stay far from the subnormal
 * range, where a device may flush to zero. Two correctly rounded results are
 * the same float, so Vulkan must equal the CPU backend bit for bit. */
#include "vkft_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum variant {
  ADD_FULL,
  ADD_ROW,
  MUL_FULL,
  MUL_ROW,
  SCALE,
  ADD_INPLACE_A,     /* add(a, a, b) */
  ADD_INPLACE_B,     /* add(b, a, b) */
  ADD_ROW_INPLACE_A, /* add(a, a, row) */
  MUL_INPLACE_A,     /* mul(a, a, b) */
  MUL_INPLACE_B,     /* mul(b, a, b) */
  MUL_ROW_INPLACE_A, /* mul(a, a, row) */
  SCALE_INPLACE,     /* scale(a, a, s) */
  ADD_ALIAS_VIEW,    /* add(view of a's bytes, a, b): c is a exactly, another handle */
  N_VARIANTS
} variant;

static const char *const variant_names[N_VARIANTS] = {
    "add",         "add_row", "mul",     "mul_row",     "scale",     "add_c=a",       "add_c=b",
    "add_row_c=a", "mul_c=a", "mul_c=b", "mul_row_c=a", "scale_c=a", "add_alias_view"};

static bool is_row(variant v) {
  return v == ADD_ROW || v == MUL_ROW || v == ADD_ROW_INPLACE_A || v == MUL_ROW_INPLACE_A;
}
static bool is_mul(variant v) {
  return v == MUL_FULL || v == MUL_ROW || v == MUL_INPLACE_A || v == MUL_INPLACE_B ||
         v == MUL_ROW_INPLACE_A;
}
static bool is_scale(variant v) {
  return v == SCALE || v == SCALE_INPLACE;
}

typedef struct shape_case {
  uint32_t ndim;
  int64_t shape[VKF_MAX_DIMS];
} shape_case;

static const shape_case shapes[] = {
    {1, {1}},      {1, {3}},       {1, {17}},         {2, {1, 63}},
    {2, {5, 257}}, {2, {3, 1031}}, {3, {3, 5, 17}},   {4, {2, 3, 2, 63}},
    {2, {7, 1}},   {2, {65, 64}},  {3, {2, 1, 1000}},
};

static const float SCALE_S = -1.7f;

static void reference(variant v, const float *a, const float *b, size_t n, size_t cols,
                      double *ref) {
  for (size_t i = 0; i < n; i++) {
    double x = a[i];
    if (is_scale(v)) {
      ref[i] = x * (double)SCALE_S;
      continue;
    }
    double y = b[is_row(v) ? i % cols : i];
    ref[i] = is_mul(v) ? x * y : x + y;
  }
}

/* Runs one variant on ctx; returns the result (malloc'd). */
static float *run_variant(vkf_context *ctx, variant v, const shape_case *sc, const float *a,
                          const float *b) {
  size_t n = vkft_elements(sc->ndim, sc->shape);
  int64_t cols = sc->shape[sc->ndim - 1];
  vkf_tensor ta = vkft_tensor_from(ctx, sc->ndim, sc->shape, a);
  vkf_tensor tb = is_row(v) ? vkft_tensor_from(ctx, 1, &cols, b)
                            : vkft_tensor_from(ctx, sc->ndim, sc->shape, b);
  vkf_tensor tc = vkft_tensor(ctx, sc->ndim, sc->shape);
  vkf_tensor out = tc, extra = VKF_NO_TENSOR;
  vkf_status st = VKF_OK;
  switch (v) {
  case ADD_FULL:
  case ADD_ROW:
    st = vkf_add(ctx, tc, ta, tb);
    break;
  case MUL_FULL:
  case MUL_ROW:
    st = vkf_mul(ctx, tc, ta, tb);
    break;
  case SCALE:
    st = vkf_scale(ctx, tc, ta, SCALE_S);
    break;
  case ADD_INPLACE_A:
  case ADD_ROW_INPLACE_A:
    st = vkf_add(ctx, ta, ta, tb);
    out = ta;
    break;
  case ADD_INPLACE_B:
    st = vkf_add(ctx, tb, ta, tb);
    out = tb;
    break;
  case MUL_INPLACE_A:
  case MUL_ROW_INPLACE_A:
    st = vkf_mul(ctx, ta, ta, tb);
    out = ta;
    break;
  case MUL_INPLACE_B:
    st = vkf_mul(ctx, tb, ta, tb);
    out = tb;
    break;
  case SCALE_INPLACE:
    st = vkf_scale(ctx, ta, ta, SCALE_S);
    out = ta;
    break;
  case ADD_ALIAS_VIEW:
    extra = vkft_view(ctx, ta, 0, sc->ndim, sc->shape);
    st = vkf_add(ctx, extra, ta, tb);
    out = ta; /* read through the base: the view wrote its bytes */
    break;
  default:
    fail_msg("bad variant");
  }
  if (st != VKF_OK)
    fail_msg("%s: %s: %s", variant_names[v], vkf_status_name(st), vkf_context_error(ctx));
  float *got = vkft_alloc(n);
  vkft_read(ctx, out, got, n);
  VKFT_OK(vkf_tensor_destroy(ctx, ta));
  VKFT_OK(vkf_tensor_destroy(ctx, tb));
  VKFT_OK(vkf_tensor_destroy(ctx, tc));
  if (extra.id)
    VKFT_OK(vkf_tensor_destroy(ctx, extra));
  return got;
}

/* Every variant on one shape: ctx against the reference and, when given,
 * against the CPU backend bit for bit. Returns the number of mismatches. */
static size_t check_shape(vkf_context *ctx, vkf_context *cpu, const shape_case *sc, vkft_rng *rng) {
  size_t n = vkft_elements(sc->ndim, sc->shape);
  size_t cols = (size_t)sc->shape[sc->ndim - 1];
  float *a = vkft_alloc(n), *b = vkft_alloc(n);
  double *ref = vkft_alloc_d(n);
  vkft_fill_uniform(rng, a, n, -2, 2);
  vkft_fill_uniform(rng, b, n, -2, 2);
  size_t bad = 0;
  for (int v = 0; v < N_VARIANTS; v++) {
    char what[128];
    snprintf(what, sizeof(what), "%s [%lld", variant_names[v], (long long)sc->shape[0]);
    for (uint32_t d = 1; d < sc->ndim; d++)
      snprintf(what + strlen(what), sizeof(what) - strlen(what), ", %lld", (long long)sc->shape[d]);
    snprintf(what + strlen(what), sizeof(what) - strlen(what), "]");
    reference((variant)v, a, b, n, cols, ref);
    float *got = run_variant(ctx, (variant)v, sc, a, b);
    bad += vkft_compare(what, got, ref, n, 0.0, VKFT_U32);
    if (cpu) {
      float *want = run_variant(cpu, (variant)v, sc, a, b);
      bad += vkft_compare_f(what, got, want, n, 0.0, 0.0);
      free(want);
    }
    free(got);
  }
  free(a);
  free(b);
  free(ref);
  return bad;
}

static void test_elementwise_cpu_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(11);
  size_t bad = 0;
  for (size_t i = 0; i < VKFT_ARRAY_LEN(shapes); i++)
    bad += check_shape(cpu, NULL, &shapes[i], &rng);
  /* one thread: the partition must not matter */
  VKFT_OK(vkf_context_set_threads(cpu, 1));
  for (size_t i = 0; i < VKFT_ARRAY_LEN(shapes); i++)
    bad += check_shape(cpu, NULL, &shapes[i], &rng);
  assert_int_equal(bad, 0);
  vkft_destroy(cpu);
}

static void test_elementwise_vulkan_vs_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  vkft_rng rng = vkft_rng_seed(12);
  size_t bad = 0;
  for (size_t i = 0; i < VKFT_ARRAY_LEN(shapes); i++)
    bad += check_shape(vk, cpu, &shapes[i], &rng);
  assert_int_equal(bad, 0);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* More elements than 65535 workgroups cover in x (lavapipe runs 64
 * invocations per group and allows 65535 groups per dimension): the
 * dispatch spills into y. A few variants, Vulkan and CPU. */
static void test_elementwise_2d_grid(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  vkf_device_info info;
  VKFT_OK(vkf_context_device(vk, &info));
  const shape_case big = {2, {4099, 1031}}; /* 4,226,069 elements > 65535 * 64 */
  size_t n = vkft_elements(big.ndim, big.shape), cols = 1031;
  if (info.max_workgroup_count[0] >= n)
    fprintf(stderr, "note: %s allows %u groups in x; the 2-D grid path is not exercised\n",
            info.name, info.max_workgroup_count[0]);
  vkft_rng rng = vkft_rng_seed(13);
  float *a = vkft_alloc(n), *b = vkft_alloc(n);
  double *ref = vkft_alloc_d(n);
  vkft_fill_uniform(&rng, a, n, -2, 2);
  vkft_fill_uniform(&rng, b, n, -2, 2);
  static const variant vs[] = {ADD_FULL, MUL_ROW, SCALE_INPLACE};
  size_t bad = 0;
  for (size_t k = 0; k < VKFT_ARRAY_LEN(vs); k++) {
    reference(vs[k], a, b, n, cols, ref);
    float *got = run_variant(vk, vs[k], &big, a, b);
    float *want = run_variant(cpu, vs[k], &big, a, b);
    bad += vkft_compare(variant_names[vs[k]], got, ref, n, 0.0, VKFT_U32);
    bad += vkft_compare(variant_names[vs[k]], want, ref, n, 0.0, VKFT_U32);
    bad += vkft_compare_f(variant_names[vs[k]], got, want, n, 0.0, 0.0);
    free(got);
    free(want);
  }
  free(a);
  free(b);
  free(ref);
  assert_int_equal(bad, 0);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* A chain of dependent in-place ops: the barrier tracking must order each
 * after the previous, also across the automatic submit every 1024 commands
 * (1050 commands here). */
static void test_elementwise_chain(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  enum { N = 1000, STEPS = 350 };
  vkft_rng rng = vkft_rng_seed(14);
  float x0[N], y0[N];
  vkft_fill_uniform(&rng, x0, N, -1, 1);
  vkft_fill_uniform(&rng, y0, N, -1, 1);
  int64_t s[1] = {N};
  vkf_tensor x = vkft_tensor_from(vk, 1, s, x0), y = vkft_tensor_from(vk, 1, s, y0);
  float ref[N];
  memcpy(ref, x0, sizeof(ref));
  for (int i = 0; i < STEPS; i++) {
    VKFT_OK(vkf_add(vk, x, x, y));
    VKFT_OK(vkf_mul(vk, x, x, y));
    VKFT_OK(vkf_scale(vk, x, x, 0.5f));
    for (int j = 0; j < N; j++)
      ref[j] = ((ref[j] + y0[j]) * y0[j]) * 0.5f;
  }
  float got[N];
  vkft_read(vk, x, got, N);
  /* each step is a sequence of correctly rounded float ops: the host's float
   * evaluation is the exact expectation */
  assert_int_equal(vkft_compare_f("chain", got, ref, N, 0.0, 0.0), 0);
  vkft_destroy(vk);
}

static void error_cases(vkf_context *ctx) {
  int64_t s23[2] = {2, 3}, s32[2] = {3, 2}, s3[1] = {3}, s4[1] = {4}, s2[1] = {2}, s6[1] = {6},
          s16[1] = {16}, s123[3] = {1, 2, 3};
  vkf_tensor a = vkft_tensor(ctx, 2, s23), b = vkft_tensor(ctx, 2, s23),
             c = vkft_tensor(ctx, 2, s23);
  vkf_tensor row = vkft_tensor(ctx, 1, s3), row4 = vkft_tensor(ctx, 1, s4),
             rows2 = vkft_tensor(ctx, 1, s2), t32 = vkft_tensor(ctx, 2, s32),
             flat = vkft_tensor(ctx, 1, s6), t123 = vkft_tensor(ctx, 3, s123);
  vkf_tensor i32 = vkft_tensor_dtype(ctx, VKF_DTYPE_I32, 2, s23);
  vkf_tensor f16 = vkft_tensor_dtype(ctx, VKF_DTYPE_F16, 2, s23);
  vkf_tensor bf16 = vkft_tensor_dtype(ctx, VKF_DTYPE_BF16, 1, s3);
  float zeros[16] = {0};
  VKFT_OK(vkf_tensor_write(ctx, a, zeros, 6 * sizeof(float)));
  VKFT_OK(vkf_tensor_write(ctx, b, zeros, 6 * sizeof(float)));
  VKFT_OK(vkf_tensor_write(ctx, row, zeros, 3 * sizeof(float)));

  typedef vkf_status (*binary_fn)(vkf_context *, vkf_tensor, vkf_tensor, vkf_tensor);
  static const binary_fn fns[2] = {vkf_add, vkf_mul};
  for (int k = 0; k < 2; k++) {
    binary_fn f = fns[k];
    vkft_expect(ctx, f(ctx, c, a, b), VKF_OK, "valid");
    vkft_expect(ctx, f(ctx, c, a, row), VKF_OK, "valid row broadcast");
    vkft_expect(ctx, f(ctx, a, a, b), VKF_OK, "c == a");
    vkft_expect(ctx, f(ctx, b, a, b), VKF_OK, "c == b");
    vkft_expect(ctx, f(ctx, a, a, a), VKF_OK, "c == a == b");
    assert_int_equal(f(NULL, c, a, b), VKF_ERROR_NULL_POINTER);
    vkft_expect(ctx, f(ctx, VKF_NO_TENSOR, a, b), VKF_ERROR_INVALID_ARGUMENT, "no c");
    vkft_expect(ctx, f(ctx, c, VKF_NO_TENSOR, b), VKF_ERROR_INVALID_ARGUMENT, "no a");
    vkft_expect(ctx, f(ctx, c, a, VKF_NO_TENSOR), VKF_ERROR_INVALID_ARGUMENT, "no b");
    vkft_expect(ctx, f(ctx, c, i32, b), VKF_ERROR_DTYPE_MISMATCH, "i32 a");
    vkft_expect(ctx, f(ctx, f16, a, b), VKF_ERROR_DTYPE_MISMATCH, "f16 c");
    vkft_expect(ctx, f(ctx, c, a, bf16), VKF_ERROR_DTYPE_MISMATCH, "bf16 b");
    vkft_expect(ctx, f(ctx, t32, a, b), VKF_ERROR_SHAPE_MISMATCH, "c shape");
    vkft_expect(ctx, f(ctx, flat, a, b), VKF_ERROR_SHAPE_MISMATCH, "c flat, same count");
    vkft_expect(ctx, f(ctx, c, a, t32), VKF_ERROR_SHAPE_MISMATCH, "b transposed shape");
    vkft_expect(ctx, f(ctx, c, a, row4), VKF_ERROR_SHAPE_MISMATCH, "row too long");
    vkft_expect(ctx, f(ctx, c, a, rows2), VKF_ERROR_SHAPE_MISMATCH, "row of leading dim");
    vkft_expect(ctx, f(ctx, c, a, flat), VKF_ERROR_SHAPE_MISMATCH, "b flat, same count");
    vkft_expect(ctx, f(ctx, t123, a, t123), VKF_ERROR_SHAPE_MISMATCH, "c extra dim");
    vkft_expect(ctx, f(ctx, b, a, row), VKF_OK, "row into b");
  }
  /* overlapping views: c shares part of a's or b's memory */
  vkf_tensor base = vkft_tensor(ctx, 1, s16);
  VKFT_OK(vkf_tensor_write(ctx, base, zeros, sizeof(zeros)));
  /* elements [0, 6), [1, 7), [8, 14), [0, 6) */
  vkf_tensor v0 = vkft_view(ctx, base, 0, 2, s23), v1 = vkft_view(ctx, base, 1, 2, s23),
             v6 = vkft_view(ctx, base, 8, 2, s23), v0b = vkft_view(ctx, base, 0, 2, s23);
  vkf_tensor r0 = vkft_view(ctx, base, 0, 1, s3);
  vkft_expect(ctx, vkf_add(ctx, v1, v0, b), VKF_ERROR_INVALID_ARGUMENT, "c overlaps a");
  vkft_expect(ctx, vkf_add(ctx, v1, a, v0), VKF_ERROR_INVALID_ARGUMENT, "c overlaps b");
  vkft_expect(ctx, vkf_mul(ctx, v0, a, r0), VKF_ERROR_INVALID_ARGUMENT, "c overlaps row b");
  vkft_expect(ctx, vkf_add(ctx, v6, v0, v1), VKF_OK, "a and b overlap each other, not c");
  vkft_expect(ctx, vkf_add(ctx, v0b, v0, b), VKF_OK, "c is a through another view");
  vkft_expect(ctx, vkf_scale(ctx, v1, v0, 2.0f), VKF_ERROR_INVALID_ARGUMENT, "scale overlap");
  vkft_expect(ctx, vkf_scale(ctx, v0b, v0, 2.0f), VKF_OK, "scale c is a through a view");

  /* scale */
  vkft_expect(ctx, vkf_scale(ctx, c, a, 3.0f), VKF_OK, "scale valid");
  vkft_expect(ctx, vkf_scale(ctx, a, a, 3.0f), VKF_OK, "scale in place");
  assert_int_equal(vkf_scale(NULL, c, a, 1.0f), VKF_ERROR_NULL_POINTER);
  vkft_expect(ctx, vkf_scale(ctx, c, a, INFINITY), VKF_ERROR_INVALID_ARGUMENT, "scale inf");
  vkft_expect(ctx, vkf_scale(ctx, c, a, -INFINITY), VKF_ERROR_INVALID_ARGUMENT, "scale -inf");
  vkft_expect(ctx, vkf_scale(ctx, c, a, NAN), VKF_ERROR_INVALID_ARGUMENT, "scale nan");
  vkft_expect(ctx, vkf_scale(ctx, t32, a, 1.0f), VKF_ERROR_SHAPE_MISMATCH, "scale shape");
  vkft_expect(ctx, vkf_scale(ctx, c, i32, 1.0f), VKF_ERROR_DTYPE_MISMATCH, "scale dtype");
  vkft_expect(ctx, vkf_scale(ctx, VKF_NO_TENSOR, a, 1.0f), VKF_ERROR_INVALID_ARGUMENT,
              "scale no c");

  /* stale and forged handles */
  vkf_tensor stale = c;
  VKFT_OK(vkf_tensor_destroy(ctx, c));
  vkft_expect(ctx, vkf_add(ctx, stale, a, b), VKF_ERROR_STALE_HANDLE, "stale c");
  vkft_expect(ctx, vkf_mul(ctx, a, stale, b), VKF_ERROR_STALE_HANDLE, "stale a");
  vkft_expect(ctx, vkf_scale(ctx, a, stale, 1.0f), VKF_ERROR_STALE_HANDLE, "stale scale");
  /* the freed slot is reused with a new generation: the old handle stays stale */
  vkf_tensor reuse = vkft_tensor(ctx, 2, s23);
  assert_int_not_equal(reuse.id, stale.id);
  vkft_expect(ctx, vkf_add(ctx, stale, a, b), VKF_ERROR_STALE_HANDLE, "stale after reuse");
  vkf_tensor forged1 = {0x0003ffffu}, forged2 = {0xfffc0001u}, forged3 = {0xffffffffu};
  vkft_expect(ctx, vkf_add(ctx, forged1, a, b), VKF_ERROR_STALE_HANDLE, "forged index");
  vkft_expect(ctx, vkf_add(ctx, a, forged2, b), VKF_ERROR_STALE_HANDLE, "forged generation");
  vkft_expect(ctx, vkf_mul(ctx, a, a, forged3), VKF_ERROR_STALE_HANDLE, "forged all ones");
  vkft_expect(ctx, vkf_scale(ctx, forged1, a, 1.0f), VKF_ERROR_STALE_HANDLE, "forged scale");
  VKFT_OK(vkf_synchronize(ctx));
}

static void test_elementwise_errors(void **state) {
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
      cmocka_unit_test(test_elementwise_cpu_vs_reference),
      cmocka_unit_test(test_elementwise_vulkan_vs_cpu),
      cmocka_unit_test(test_elementwise_2d_grid),
      cmocka_unit_test(test_elementwise_chain),
      cmocka_unit_test(test_elementwise_errors),
  };
  return cmocka_run_group_tests_name("elementwise", tests, NULL, NULL);
}
