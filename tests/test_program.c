/* Captured programs: record once, replay many times, on both backends;
 * replay results equal eager execution; host I/O refused while capturing;
 * eager ops after a replay see its results. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

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

/* Ops whose kernels use per-call scratch (norm and bias gradients, the
 * embedding index): a replay must find that scratch intact, long after the
 * op was recorded. */
static void run_scratch_ops(vkf_context *ctx) {
  enum { R = 37, C = 24, V = 11 };
  vkft_rng rng = vkft_rng_seed(9);
  float x[R * C], w[C], dout[R * C], table[V * C];
  int32_t ids[R];
  vkft_fill_uniform(&rng, x, R * C, -1, 1);
  vkft_fill_uniform(&rng, w, C, 0.5f, 1.5f);
  vkft_fill_uniform(&rng, dout, R * C, -1, 1);
  vkft_fill_uniform(&rng, table, V * C, -1, 1);
  for (int i = 0; i < R; i++)
    ids[i] = (i * 7) % V;
  int64_t sx[2] = {R, C}, sc[1] = {C}, sr[1] = {R}, sv[2] = {V, C};
  vkf_tensor tx = vkft_tensor_from(ctx, 2, sx, x), tw = vkft_tensor_from(ctx, 1, sc, w);
  vkf_tensor td = vkft_tensor_from(ctx, 2, sx, dout), out = vkft_tensor(ctx, 2, sx);
  vkf_tensor mean = vkft_tensor(ctx, 1, sr), rstd = vkft_tensor(ctx, 1, sr);
  vkf_tensor dx = vkft_tensor(ctx, 2, sx), dw = vkft_tensor(ctx, 1, sc),
             db = vkft_tensor(ctx, 1, sc);
  vkf_tensor dtab = vkft_tensor(ctx, 2, sv), tok;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 1, sr, &tok));
  VKFT_OK(vkf_tensor_write(ctx, tok, ids, sizeof(ids)));
  float eager[3][R * C], replayed[3][R * C];
  for (int pass = 0; pass < 2; pass++) {
    vkf_program *p = NULL;
    VKFT_OK(vkf_tensor_fill(ctx, dx, 0));
    VKFT_OK(vkf_tensor_fill(ctx, dw, 0));
    VKFT_OK(vkf_tensor_fill(ctx, db, 0));
    VKFT_OK(vkf_tensor_fill(ctx, dtab, 0));
    if (pass == 1)
      VKFT_OK(vkf_capture_begin(ctx));
    VKFT_OK(vkf_layernorm_forward(ctx, out, mean, rstd, tx, tw, VKF_NO_TENSOR, 1e-5f));
    VKFT_OK(vkf_layernorm_backward(ctx, dx, dw, VKF_NO_TENSOR, td, tx, tw, mean, rstd));
    VKFT_OK(vkf_bias_backward(ctx, db, td));
    if (pass == 0) /* host reads of the ids are refused while capturing */
      VKFT_OK(vkf_embedding_backward(ctx, dtab, VKF_NO_TENSOR, td, tok, 0));
    if (pass == 1) {
      VKFT_OK(vkf_capture_end(ctx, &p));
      /* other allocations now must not land on the program's scratch */
      vkf_tensor junk[8];
      for (int i = 0; i < 8; i++) {
        junk[i] = vkft_tensor(ctx, 2, sx);
        VKFT_OK(vkf_tensor_fill(ctx, junk[i], 1e30f));
      }
      VKFT_OK(vkf_program_replay(ctx, p));
      for (int i = 0; i < 8; i++) {
        float back[R * C];
        vkft_read(ctx, junk[i], back, R * C);
        for (int k = 0; k < R * C; k++)
          if (back[k] != 1e30f)
            fail_msg("a replay wrote into memory allocated after the capture (%g)",
                     (double)back[k]);
        VKFT_OK(vkf_tensor_destroy(ctx, junk[i]));
      }
    }
    float(*dst)[R * C] = pass ? replayed : eager;
    vkft_read(ctx, dx, dst[0], R * C);
    vkft_read(ctx, dw, dst[1], C);
    vkft_read(ctx, db, dst[2], C);
    vkf_program_destroy(ctx, p);
  }
  assert_int_equal(vkft_compare_f("dx", replayed[0], eager[0], R * C, 0, 0), 0);
  assert_int_equal(vkft_compare_f("dw", replayed[1], eager[1], C, 0, 0), 0);
  assert_int_equal(vkft_compare_f("db", replayed[2], eager[2], C, 0, 0), 0);
  /* the embedding backward reads token ids on the host: refused while
   * capturing, and the capture stays usable */
  VKFT_OK(vkf_capture_begin(ctx));
  assert_int_not_equal(vkf_embedding_backward(ctx, dtab, VKF_NO_TENSOR, td, tok, 0), VKF_OK);
  vkf_program *p = NULL;
  VKFT_OK(vkf_capture_end(ctx, &p));
  VKFT_OK(vkf_program_replay(ctx, p));
  vkf_program_destroy(ctx, p);
  VKFT_OK(vkf_synchronize(ctx));
}

static void test_program_scratch_cpu(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  run_scratch_ops(ctx);
  vkft_destroy(ctx);
}

static void test_program_scratch_vulkan(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  run_scratch_ops(ctx);
  vkft_destroy(ctx);
}

/* Profiling covers replayed programs: every replay adds its ops' times. */
static void test_program_profile(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan_flags(VKF_CONTEXT_PROFILE);
  int64_t s[2] = {N, N};
  float x0[N * N];
  for (int i = 0; i < N * N; i++)
    x0[i] = (float)(i % 7) * 0.1f;
  vkf_tensor x = vkft_tensor_from(ctx, 2, s, x0), y = vkft_tensor(ctx, 2, s);
  vkf_tensor w = vkft_tensor_from(ctx, 2, s, x0);
  VKFT_OK(vkf_capture_begin(ctx));
  step(ctx, x, y, w);
  vkf_program *p = NULL;
  VKFT_OK(vkf_capture_end(ctx, &p));
  VKFT_OK(vkf_profile_reset(ctx));
  for (int i = 0; i < 3; i++)
    VKFT_OK(vkf_program_replay(ctx, p));
  vkf_op_time t[16];
  uint32_t n = 0;
  VKFT_OK(vkf_profile_read(ctx, t, 16, &n));
  bool mm = false, add = false;
  for (uint32_t i = 0; i < n; i++) {
    if (!strcmp(t[i].name, "matmul")) {
      mm = true;
      assert_int_equal(t[i].count, 3);
      assert_true(t[i].total_ms > 0);
    }
    if (!strcmp(t[i].name, "add"))
      add = t[i].count == 3;
  }
  assert_true(mm && add);
  vkf_program_destroy(ctx, p);
  vkft_destroy(ctx);
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
      cmocka_unit_test(test_program_cpu),         cmocka_unit_test(test_program_vulkan),
      cmocka_unit_test(test_program_scratch_cpu), cmocka_unit_test(test_program_scratch_vulkan),
      cmocka_unit_test(test_program_profile),
  };
  return cmocka_run_group_tests_name("program", tests, NULL, NULL);
}
