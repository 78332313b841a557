/* infer family: vkf_kv_cache_write. It only copies, so the CPU backend and
 * Vulkan must reproduce a host reference bit for bit, including the rows it
 * must not touch: caches start filled with random values and every element
 * is compared. Cases: padding (count < T), idle rows (count 0), count > T,
 * negative starts, rows past the cache skipped, the ring wrapping (also with
 * negative starts), K and V of different widths, widths past the workgroup,
 * 3-D and 4-D layouts; Vulkan also on the staging-memory path. Then every
 * error status, and the one-row matrix products decoding relies on. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct kv_case {
  uint32_t B, R, T, Hk, Dk, Hv, Dv;
  uint32_t flags;
  int32_t where[4][2]; /* (start, count) per sequence, B <= 4 */
} kv_case;

static const kv_case cases[] = {
    {1, 8, 1, 1, 4, 1, 4, 0, {{3, 1}}},
    {1, 8, 4, 2, 3, 2, 3, 0, {{2, 4}}},
    {2, 16, 5, 3, 5, 1, 7, 0, {{-2, 3}, {9, 0}}},           /* padding, an idle row */
    {3, 6, 4, 1, 130, 2, 65, 0, {{4, 4}, {-3, 2}, {1, 9}}}, /* rows past R skipped; count > T */
    {2, 5, 7, 2, 8, 2, 8, VKF_KV_RING, {{3, 7}, {-2, 5}}},  /* wraps more than once */
    {1, 9, 3, 4, 16, 4, 16, VKF_KV_RING, {{2147483646, 3}}},
    {4, 3, 2, 1, 1, 1, 3, VKF_KV_RING, {{-7, 2}, {0, 1}, {5, 0}, {-2147483647 - 1, 2}}},
    {2, 64, 33, 2, 64, 2, 64, 0, {{0, 33}, {30, 20}}},
};

static int64_t dest(const kv_case *c, uint32_t b, uint32_t t) {
  int64_t start = c->where[b][0], count = c->where[b][1];
  if ((int64_t)t < (int64_t)c->T - count)
    return -1;
  int64_t r = start + t;
  if (c->flags & VKF_KV_RING)
    return ((r % c->R) + c->R) % c->R;
  return r >= 0 && r < c->R ? r : -1;
}

static void reference(const kv_case *c, float *kc, float *vc, const float *k, const float *v) {
  const size_t Wk = (size_t)c->Hk * c->Dk, Wv = (size_t)c->Hv * c->Dv;
  for (uint32_t b = 0; b < c->B; b++)
    for (uint32_t t = 0; t < c->T; t++) {
      int64_t r = dest(c, b, t);
      if (r < 0)
        continue;
      memcpy(kc + ((size_t)b * c->R + r) * Wk, k + ((size_t)b * c->T + t) * Wk, Wk * 4);
      memcpy(vc + ((size_t)b * c->R + r) * Wv, v + ((size_t)b * c->T + t) * Wv, Wv * 4);
    }
}

static void run_case(vkf_context *ctx, const kv_case *c, int ci, bool three_d) {
  vkft_rng rng = vkft_rng_seed(100 + ci);
  const size_t Wk = (size_t)c->Hk * c->Dk, Wv = (size_t)c->Hv * c->Dv;
  const size_t nkc = c->B * c->R * Wk, nvc = c->B * c->R * Wv, nk = c->B * c->T * Wk,
               nv = c->B * c->T * Wv;
  float *kc = vkft_alloc(nkc), *vc = vkft_alloc(nvc), *k = vkft_alloc(nk), *v = vkft_alloc(nv);
  vkft_fill_uniform(&rng, kc, nkc, -1, 1);
  vkft_fill_uniform(&rng, vc, nvc, -1, 1);
  vkft_fill_uniform(&rng, k, nk, -1, 1);
  vkft_fill_uniform(&rng, v, nv, -1, 1);
  int64_t skc[4] = {c->B, c->R, c->Hk, c->Dk}, svc[4] = {c->B, c->R, c->Hv, c->Dv};
  int64_t sk[4] = {c->B, c->T, c->Hk, c->Dk}, sv[4] = {c->B, c->T, c->Hv, c->Dv};
  if (three_d) { /* [B, rows, H * D] */
    skc[2] = (int64_t)Wk, svc[2] = (int64_t)Wv, sk[2] = (int64_t)Wk, sv[2] = (int64_t)Wv;
  }
  uint32_t nd = three_d ? 3 : 4;
  vkf_tensor tkc = vkft_tensor_from(ctx, nd, skc, kc), tvc = vkft_tensor_from(ctx, nd, svc, vc);
  vkf_tensor tk = vkft_tensor_from(ctx, nd, sk, k), tv = vkft_tensor_from(ctx, nd, sv, v);
  int64_t sw[2] = {c->B, 2};
  vkf_tensor tw;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, sw, &tw));
  VKFT_OK(vkf_tensor_write(ctx, tw, c->where, (size_t)c->B * 8));
  VKFT_OK(vkf_kv_cache_write(ctx, tkc, tvc, tk, tv, tw, c->flags));
  float *gk = vkft_alloc(nkc), *gv = vkft_alloc(nvc);
  vkft_read(ctx, tkc, gk, nkc);
  vkft_read(ctx, tvc, gv, nvc);
  reference(c, kc, vc, k, v);
  char what[64];
  snprintf(what, sizeof(what), "case %d%s k_cache", ci, three_d ? " (3-D)" : "");
  assert_int_equal(vkft_compare_f(what, gk, kc, nkc, 0, 0), 0);
  snprintf(what, sizeof(what), "case %d%s v_cache", ci, three_d ? " (3-D)" : "");
  assert_int_equal(vkft_compare_f(what, gv, vc, nvc, 0, 0), 0);
  vkf_tensor all[] = {tkc, tvc, tk, tv, tw};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
  free(kc), free(vc), free(k), free(v), free(gk), free(gv);
}

static void run_all(vkf_context *ctx) {
  for (size_t i = 0; i < VKFT_ARRAY_LEN(cases); i++) {
    run_case(ctx, &cases[i], (int)i, false);
    run_case(ctx, &cases[i], (int)i, true);
  }
}

static void test_kv_write_cpu(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  run_all(ctx);
  vkft_destroy(ctx);
}

static void test_kv_write_vulkan(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  run_all(ctx);
  vkft_destroy(ctx);
}

static void test_kv_write_vulkan_staging(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan_flags(VKF_CONTEXT_FORCE_STAGING);
  run_case(ctx, &cases[3], 3, false);
  run_case(ctx, &cases[4], 4, false);
  vkft_destroy(ctx);
}

/* the test cases cover what they claim: rows written, rows skipped by
 * padding and by the cache's end, and a ring wrap */
static void test_kv_write_cases_are_not_vacuous(void **state) {
  (void)state;
  int written = 0, padded = 0, past_end = 0, wrapped = 0;
  for (size_t i = 0; i < VKFT_ARRAY_LEN(cases); i++) {
    const kv_case *c = &cases[i];
    for (uint32_t b = 0; b < c->B; b++)
      for (uint32_t t = 0; t < c->T; t++) {
        int64_t r = dest(c, b, t), raw = (int64_t)c->where[b][0] + t;
        bool in_count = (int64_t)t >= (int64_t)c->T - c->where[b][1];
        written += r >= 0;
        padded += !in_count;
        past_end += in_count && !(c->flags & VKF_KV_RING) && r < 0;
        wrapped += r >= 0 && r != raw;
      }
  }
  assert_true(written > 0 && padded > 0 && past_end > 0 && wrapped > 0);
}

static void test_kv_write_errors(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  int64_t s3[3] = {2, 4, 6}, s3b[3] = {2, 3, 6}, s3c[3] = {2, 3, 5}, sw[2] = {2, 2},
          sw3[2] = {2, 3}, s2[2] = {2, 6};
  vkf_tensor kc = vkft_tensor(ctx, 3, s3), vc = vkft_tensor(ctx, 3, s3),
             k = vkft_tensor(ctx, 3, s3b), v = vkft_tensor(ctx, 3, s3b),
             bad = vkft_tensor(ctx, 3, s3c), flat = vkft_tensor(ctx, 2, s2),
             wf = vkft_tensor(ctx, 2, sw);
  vkf_tensor w, w3, view;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, sw, &w));
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, sw3, &w3));
  int32_t wd[4] = {0, 3, 1, 3};
  VKFT_OK(vkf_tensor_write(ctx, w, wd, sizeof(wd)));
  VKFT_OK(vkf_kv_cache_write(ctx, kc, vc, k, v, w, 0));
  assert_int_equal(vkf_kv_cache_write(NULL, kc, vc, k, v, w, 0), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_kv_cache_write(ctx, kc, vc, k, v, w, 2), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_kv_cache_write(ctx, kc, vc, k, v, wf, 0), VKF_ERROR_DTYPE_MISMATCH);
  assert_int_equal(vkf_kv_cache_write(ctx, kc, vc, k, v, w3, 0), VKF_ERROR_SHAPE_MISMATCH);
  assert_int_equal(vkf_kv_cache_write(ctx, kc, vc, bad, v, w, 0), VKF_ERROR_SHAPE_MISMATCH);
  assert_int_equal(vkf_kv_cache_write(ctx, kc, vc, k, bad, w, 0), VKF_ERROR_SHAPE_MISMATCH);
  assert_int_equal(vkf_kv_cache_write(ctx, flat, vc, k, v, w, 0), VKF_ERROR_SHAPE_MISMATCH);
  assert_int_equal(vkf_kv_cache_write(ctx, kc, bad, k, v, w, 0), VKF_ERROR_SHAPE_MISMATCH);
  assert_int_equal(vkf_kv_cache_write(ctx, kc, w, k, v, w, 0), VKF_ERROR_DTYPE_MISMATCH);
  assert_int_equal(vkf_kv_cache_write(ctx, kc, kc, k, v, w, 0), VKF_ERROR_INVALID_ARGUMENT);
  int64_t sv3[3] = {2, 3, 6};
  VKFT_OK(vkf_tensor_view(ctx, kc, 0, 3, sv3, &view)); /* k inside k_cache */
  assert_int_equal(vkf_kv_cache_write(ctx, kc, vc, view, v, w, 0), VKF_ERROR_INVALID_ARGUMENT);
  VKFT_OK(vkf_tensor_destroy(ctx, view));
  VKFT_OK(vkf_tensor_destroy(ctx, k));
  assert_int_equal(vkf_kv_cache_write(ctx, kc, vc, k, v, w, 0), VKF_ERROR_STALE_HANDLE);
  vkft_destroy(ctx);
}

/* Decoding multiplies one row by each weight matrix; the CPU backend takes a
 * matrix-vector path for it (backend/cpu/matmul.c). One-row products with
 * every flag, a bias, accumulation and batches, against a double reference;
 * tolerance 1e-5 + 1e-5 |ref| (float32 sums of <= 300 products of values
 * in [-1, 1]). */
static void one_row(vkf_context *ctx) {
  vkft_rng rng = vkft_rng_seed(9);
  const uint32_t Ks[3] = {1, 64, 300}, Ns[3] = {1, 129, 768};
  for (uint32_t flags = 0; flags < 8; flags++)
    for (int ki = 0; ki < 3; ki++)
      for (uint32_t batch = 1; batch <= 2; batch++) {
        const uint32_t M = 1, K = Ks[ki], N = Ns[(ki + flags) % 3];
        const bool ta = flags & VKF_MATMUL_TRANS_A, tb = flags & VKF_MATMUL_TRANS_B,
                   acc = flags & VKF_MATMUL_ACCUMULATE, bias = (flags + ki) % 2;
        size_t na = (size_t)batch * M * K, nb = (size_t)batch * K * N, nc = (size_t)batch * M * N;
        float *a = vkft_alloc(na), *b = vkft_alloc(nb), *c = vkft_alloc(nc), *bs = vkft_alloc(N);
        vkft_fill_uniform(&rng, a, na, -1, 1);
        vkft_fill_uniform(&rng, b, nb, -1, 1);
        vkft_fill_uniform(&rng, c, nc, -1, 1);
        vkft_fill_uniform(&rng, bs, N, -1, 1);
        double *ref = vkft_alloc_d(nc);
        for (uint32_t bi = 0; bi < batch; bi++)
          for (uint32_t n = 0; n < N; n++) {
            double sum = acc ? c[(size_t)bi * N + n] : 0.0;
            for (uint32_t k = 0; k < K; k++) /* M = 1: a is the same either way */
              sum += (double)a[(size_t)bi * K + k] *
                     b[(size_t)bi * K * N + (tb ? (size_t)n * K + k : (size_t)k * N + n)];
            ref[(size_t)bi * N + n] = sum + (bias ? bs[n] : 0.0);
          }
        int64_t sa[3] = {batch, ta ? K : M, ta ? M : K}, sb[3] = {batch, tb ? N : K, tb ? K : N},
                sc[3] = {batch, M, N}, sn = N;
        vkf_tensor ta_ = vkft_tensor_from(ctx, 3, sa, a), tb_ = vkft_tensor_from(ctx, 3, sb, b),
                   tc = vkft_tensor_from(ctx, 3, sc, c),
                   tbias = bias ? vkft_tensor_from(ctx, 1, &sn, bs) : VKF_NO_TENSOR;
        VKFT_OK(vkf_matmul(ctx, tc, ta_, tb_, tbias, flags));
        vkft_read(ctx, tc, c, nc);
        char what[96];
        snprintf(what, sizeof(what), "one-row matmul flags %u K %u N %u batch %u bias %d", flags, K,
                 N, batch, bias);
        assert_int_equal(vkft_compare(what, c, ref, nc, 1e-5, 1e-5), 0);
        vkf_tensor all[] = {ta_, tb_, tc, tbias};
        for (int i = 0; i < 4; i++)
          if (all[i].id)
            VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
        free(a), free(b), free(c), free(bs), free(ref);
      }
}

static void test_matmul_one_row_cpu(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  one_row(ctx);
  vkft_destroy(ctx);
}

static void test_matmul_one_row_vulkan(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  one_row(ctx);
  vkft_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kv_write_cases_are_not_vacuous),
      cmocka_unit_test(test_kv_write_cpu),
      cmocka_unit_test(test_kv_write_vulkan),
      cmocka_unit_test(test_kv_write_vulkan_staging),
      cmocka_unit_test(test_kv_write_errors),
      cmocka_unit_test(test_matmul_one_row_cpu),
      cmocka_unit_test(test_matmul_one_row_vulkan),
  };
  return cmocka_run_group_tests_name("infer", tests, NULL, NULL);
}
