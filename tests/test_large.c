/* One 200 MiB tensor on the device: more than lavapipe's 128 MiB
 * maxStorageBufferRange, which kernels never see because they address
 * tensors by device address. Element-wise ops over all of it, row sums of
 * every row, and softmax on rows past the 128 MiB mark and on a row that
 * straddles it, checked against closed forms and the CPU backend.
 *
 * The data are small integers, so the element-wise results (x + b, then
 * * 0.5) and every row sum (multiples of 0.5 below 2^13 in magnitude) are
 * exact in binary32 in any order: the checks are for equality. Softmax is
 * compared with the CPU backend within the bounds test_softmax.c derives. */
#include "vkft_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB (1024ull * 1024ull)
enum { C = 1024 };
static const int64_t R = (int64_t)(200 * MiB / 4 / C); /* 51200 rows: 200 MiB */

static float x0(int64_t r, int64_t c) {
  return (float)((r * 7 + c * 3) % 29 - 14);
}
static float bias(int64_t c) {
  return (float)(c % 5 - 2);
}
/* The tensor after x += bias (broadcast over rows), then x *= 0.5. */
static float x1(int64_t r, int64_t c) {
  return (x0(r, c) + bias(c)) * 0.5f;
}

static void softmax_vs_cpu(vkf_context *vk, vkf_context *cpu, vkf_tensor big, uint64_t offset,
                           int64_t rows, const char *what) {
  int64_t s[2] = {rows, C};
  size_t n = (size_t)rows * C;
  float *host = vkft_alloc(n), *got = vkft_alloc(n), *want = vkft_alloc(n);
  for (size_t i = 0; i < n; i++) {
    uint64_t e = offset + i;
    host[i] = x1((int64_t)(e / C), (int64_t)(e % C));
  }
  vkf_tensor v = vkft_view(vk, big, offset, 2, s);
  VKFT_OK(vkf_softmax(vk, v, v));
  vkft_read(vk, v, got, n);
  VKFT_OK(vkf_tensor_destroy(vk, v));
  vkf_tensor t = vkft_tensor_from(cpu, 2, s, host);
  VKFT_OK(vkf_softmax(cpu, t, t));
  vkft_read(cpu, t, want, n);
  VKFT_OK(vkf_tensor_destroy(cpu, t));
  /* Vulkan bound 4u + (C+64)u*y plus the CPU's u + (8+log2 C)u*y */
  const double u = VKFT_U32;
  double *ref = vkft_alloc_d(n), *bound = vkft_alloc_d(n);
  for (size_t i = 0; i < n; i++) {
    ref[i] = want[i];
    bound[i] = 5 * u + ((double)C + 64 + 8 + 10) * u * fabs(ref[i]);
  }
  assert_int_equal(vkft_compare_bounds(what, got, ref, bound, n), 0);
  free(host);
  free(got);
  free(want);
  free(ref);
  free(bound);
}

static void test_large_tensor(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  vkf_device_info info;
  VKFT_OK(vkf_context_device(vk, &info));
  const uint64_t bytes = (uint64_t)R * C * 4;
  if (info.max_storage_buffer_range >= bytes)
    fprintf(stderr, "note: %s binds %llu MiB; the tensor does not exceed it\n", info.name,
            (unsigned long long)(info.max_storage_buffer_range / MiB));
  int64_t shape[2] = {R, C}, sc[1] = {C}, sr[1] = {R};
  const size_t n = (size_t)R * C;
  float *host = vkft_alloc(n);
  for (int64_t r = 0; r < R; r++)
    for (int64_t c = 0; c < C; c++)
      host[r * C + c] = x0(r, c);
  vkf_tensor big = vkft_tensor(vk, 2, shape);
  VKFT_OK(vkf_tensor_write(vk, big, host, n * 4));
  float b[C];
  for (int c = 0; c < C; c++)
    b[c] = bias(c);
  vkf_tensor tb = vkft_tensor_from(vk, 1, sc, b);

  /* element-wise over all 200 MiB, in place */
  VKFT_OK(vkf_add(vk, big, big, tb));
  VKFT_OK(vkf_scale(vk, big, big, 0.5f));
  /* every row's sum */
  vkf_tensor sums = vkft_tensor(vk, 1, sr);
  VKFT_OK(vkf_row_sum(vk, sums, big));
  float *rs = vkft_alloc((size_t)R);
  vkft_read(vk, sums, rs, (size_t)R);
  size_t bad = 0;
  for (int64_t r = 0; r < R; r++) {
    double e = 0;
    for (int64_t c = 0; c < C; c++)
      e += x1(r, c);
    if (rs[r] != (float)e && bad++ < 5)
      fprintf(stderr, "  row_sum[%lld]: got %.9g, expected %.9g\n", (long long)r, (double)rs[r], e);
  }
  assert_int_equal(bad, 0);
  free(rs);
  /* every element */
  VKFT_OK(vkf_tensor_read(vk, big, host, n * 4));
  for (int64_t r = 0; r < R; r++)
    for (int64_t c = 0; c < C; c++)
      if (host[r * C + c] != x1(r, c) && bad++ < 5)
        fprintf(stderr, "  x[%lld, %lld]: got %.9g, expected %.9g\n", (long long)r, (long long)c,
                (double)host[r * C + c], (double)x1(r, c));
  assert_int_equal(bad, 0);
  free(host);

  /* a copy of the far end into a small tensor */
  int64_t s4[2] = {4, C};
  uint64_t tail_off = (uint64_t)(R - 4) * C;
  vkf_tensor tail = vkft_view(vk, big, tail_off, 2, s4), small = vkft_tensor(vk, 2, s4);
  VKFT_OK(vkf_tensor_copy(vk, small, tail));
  float y[4 * C];
  vkft_read(vk, small, y, 4 * C);
  for (int64_t i = 0; i < 4 * C; i++)
    assert_true(y[i] == x1(R - 4 + i / C, i % C));
  VKFT_OK(vkf_tensor_destroy(vk, tail));
  VKFT_OK(vkf_tensor_destroy(vk, small));

  /* softmax on the last rows (past 128 MiB) and on rows straddling it */
  softmax_vs_cpu(vk, cpu, big, (uint64_t)(R - 6) * C, 6, "softmax, last rows");
  uint64_t mark = 128 * MiB / 4; /* element at the 128 MiB mark */
  softmax_vs_cpu(vk, cpu, big, mark - 300, 3, "softmax, across the 128 MiB mark");
  VKFT_OK(vkf_tensor_destroy(vk, big));
  VKFT_OK(vkf_tensor_destroy(vk, tb));
  VKFT_OK(vkf_tensor_destroy(vk, sums));
  vkft_destroy(cpu);
  vkft_destroy(vk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_large_tensor),
  };
  return cmocka_run_group_tests_name("large", tests, NULL, NULL);
}
