/* Captured programs: record once, replay many times, on both backends;
 * replay results equal eager execution; host I/O refused while capturing;
 * eager ops after a replay see its results. */
#include "test_util.h"

#include <stdlib.h>

enum { N = 40 };

/* x <- (x . w + x) * 0.5, eager or captured */
static void step(vkf_context *ctx, vkf_tensor x, vkf_tensor y, vkf_tensor w) {
  VKFT_OK(vkf_matmul(ctx, y, x, w, VKF_NO_TENSOR, 0));
  VKFT_OK(vkf_add(ctx, x, y, x));
  VKFT_OK(vkf_scale(ctx, x, x, 0.5f));
}

static void run(vkf_context *ctx) {
  vkft_rng rng = vkft_rng_seed(3);
  float x0[N * N], w0[N * N], eager[N * N], replayed[N * N];
  vkft_fill_uniform(&rng, x0, N * N, -1, 1);
  vkft_fill_uniform(&rng, w0, N * N, -0.3f, 0.3f);
  int64_t s[2] = {N, N};
  vkf_tensor x = vkft_tensor_from(ctx, 2, s, x0), y = vkft_tensor(ctx, 2, s);
  vkf_tensor w = vkft_tensor_from(ctx, 2, s, w0);
  for (int i = 0; i < 5; i++)
    step(ctx, x, y, w);
  vkft_read(ctx, x, eager, N * N);

  VKFT_OK(vkf_tensor_write(ctx, x, x0, sizeof(x0)));
  VKFT_OK(vkf_capture_begin(ctx));
  step(ctx, x, y, w);
  /* host I/O is refused while capturing, and the capture survives it */
  assert_int_equal(vkf_tensor_read(ctx, x, replayed, sizeof(replayed)), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_capture_begin(ctx), VKF_ERROR_INVALID_ARGUMENT);
  vkf_program *p = NULL;
  VKFT_OK(vkf_capture_end(ctx, &p));
  assert_non_null(p);
  /* capturing executed nothing */
  vkft_read(ctx, x, replayed, N * N);
  assert_int_equal(vkft_compare_f("not executed", replayed, x0, N * N, 0, 0), 0);
  for (int i = 0; i < 5; i++)
    VKFT_OK(vkf_program_replay(ctx, p));
  vkft_read(ctx, x, replayed, N * N);
  assert_int_equal(vkft_compare_f("replay vs eager", replayed, eager, N * N, 0, 0), 0);

  /* an eager op after a replay sees its result; host write then replay */
  VKFT_OK(vkf_tensor_write(ctx, x, x0, sizeof(x0)));
  VKFT_OK(vkf_program_replay(ctx, p));
  VKFT_OK(vkf_scale(ctx, y, x, 2.0f));
  float twice[N * N];
  vkft_read(ctx, y, twice, N * N);
  VKFT_OK(vkf_tensor_write(ctx, x, x0, sizeof(x0)));
  step(ctx, x, y, w);
  float once[N * N];
  vkft_read(ctx, x, once, N * N);
  for (int i = 0; i < N * N; i++)
    once[i] *= 2.0f;
  assert_int_equal(vkft_compare_f("eager after replay", twice, once, N * N, 0, 0), 0);
  vkf_program_destroy(ctx, p);
  assert_int_equal(vkf_program_replay(ctx, NULL), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_capture_end(ctx, &p), VKF_ERROR_INVALID_ARGUMENT);
}

static void test_program_cpu(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  run(ctx);
  vkft_destroy(ctx);
}

static void test_program_vulkan(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  run(ctx);
  vkft_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_program_cpu),
      cmocka_unit_test(test_program_vulkan),
  };
  return cmocka_run_group_tests_name("program", tests, NULL, NULL);
}
