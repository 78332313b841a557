/* Datasets: byte tokens, the split, batches that stay inside their split,
 * seeded reproducibility, int32 token files, and errors. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static const char *path(const char *name) {
  static char b[256];
  snprintf(b, sizeof(b), "%s/%s", dir, name);
  return b;
}

static void test_dataset_text(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  char a[1001], b[1001];
  FILE *f = fopen(path("a.txt"), "wb");
  for (int i = 0; i < 1000; i++)
    a[i] = (char)('a' + i % 26);
  fwrite(a, 1, 1000, f);
  fclose(f);
  f = fopen(path("b.txt"), "wb");
  for (int i = 0; i < 1000; i++)
    b[i] = (char)('A' + i % 26);
  fwrite(b, 1, 1000, f);
  fclose(f);
  char pa[256], pb[256];
  snprintf(pa, sizeof(pa), "%s", path("a.txt"));
  snprintf(pb, sizeof(pb), "%s", path("b.txt"));
  const char *paths[2] = {pa, pb};
  vkf_dataset *ds;
  VKFT_OK(vkf_dataset_open_text(ctx, paths, 2, 0.25f, &ds));
  assert_int_equal(vkf_dataset_size(ds, VKF_SPLIT_TRAIN), 1500);
  assert_int_equal(vkf_dataset_size(ds, VKF_SPLIT_VAL), 500);
  enum { B = 8, T = 16 };
  int32_t in[B * T], tg[B * T], in2[B * T], tg2[B * T];
  vkf_rng r1, r2;
  vkf_rng_seed(&r1, 5);
  vkf_rng_seed(&r2, 5);
  for (int rep = 0; rep < 50; rep++) {
    VKFT_OK(vkf_dataset_batch(ds, VKF_SPLIT_VAL, &r1, B, T, in, tg));
    VKFT_OK(vkf_dataset_batch(ds, VKF_SPLIT_VAL, &r2, B, T, in2, tg2));
    assert_memory_equal(in, in2, sizeof(in)); /* same seed, same batches */
    for (int i = 0; i < B * T; i++) {
      /* the validation split is the tail of b.txt: upper case only */
      assert_true(in[i] >= 'A' && in[i] <= 'Z');
      if (i % T != T - 1)
        assert_int_equal(tg[i], in[i + 1]);
      assert_int_equal(tg[i], 'A' + (in[i] - 'A' + 1) % 26);
    }
  }
  VKFT_OK(vkf_dataset_window(ds, VKF_SPLIT_TRAIN, 0, B, T, in, tg));
  assert_int_equal(in[0], 'a');
  assert_int_equal(in[T], 'a' + T % 26);
  assert_int_equal(vkf_dataset_batch(ds, VKF_SPLIT_VAL, &r1, 1, 600, in, tg),
                   VKF_ERROR_INVALID_ARGUMENT); /* window longer than the split */
  assert_int_equal(vkf_dataset_batch(ds, VKF_SPLIT_VAL, NULL, B, T, in, tg),
                   VKF_ERROR_NULL_POINTER);
  vkf_dataset_destroy(ds);
  assert_int_equal(vkf_dataset_open_text(ctx, paths, 2, 1.0f, &ds), VKF_ERROR_INVALID_ARGUMENT);
  const char *missing[1] = {"/nonexistent/x.txt"};
  assert_int_equal(vkf_dataset_open_text(ctx, missing, 1, 0.1f, &ds), VKF_ERROR_IO);
  vkft_destroy(ctx);
}

static void test_dataset_tokens(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  int32_t toks[100];
  for (int i = 0; i < 100; i++)
    toks[i] = i % 7;
  FILE *f = fopen(path("t.bin"), "wb");
  fwrite(toks, 4, 100, f);
  fclose(f);
  vkf_dataset *ds;
  VKFT_OK(vkf_dataset_open_tokens(ctx, path("t.bin"), 7, 0.0f, &ds));
  assert_int_equal(vkf_dataset_size(ds, VKF_SPLIT_TRAIN), 100);
  vkf_dataset_destroy(ds);
  assert_int_equal(vkf_dataset_open_tokens(ctx, path("t.bin"), 6, 0.0f, &ds), VKF_ERROR_FORMAT);
  assert_non_null(strstr(vkf_context_error(ctx), "token 6 is 6"));
  f = fopen(path("odd.bin"), "wb");
  fwrite(toks, 1, 10, f);
  fclose(f);
  assert_int_equal(vkf_dataset_open_tokens(ctx, path("odd.bin"), 7, 0.0f, &ds), VKF_ERROR_FORMAT);
  vkft_destroy(ctx);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/vkf-test-ds-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dataset_text),
      cmocka_unit_test(test_dataset_tokens),
  };
  return cmocka_run_group_tests_name("dataset", tests, setup, NULL);
}
