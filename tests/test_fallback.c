/* Falling back to the CPU backend when Vulkan is unusable. Run by ctest in
 * several environments (tests/CMakeLists.txt), named by argv[1]:
 *   no_loader   VKF_VULKAN_LIBRARY=/nonexistent/libvulkan.so.1
 *   no_driver   VK_DRIVER_FILES and VK_ICD_FILENAMES name a missing manifest
 *   no_driver_validation   the same with VKF_VALIDATION=1
 * The automatic choice must give the CPU backend with exactly one WARN line
 * saying why; an explicit Vulkan request must fail with VKF_ERROR_NO_DEVICE;
 * "cpu" must work without a warning. */
#include "vkft_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *g_mode = "";

/* Words the fallback's reason must contain in each environment. */
static const char *reason_word(void) {
  if (!strcmp(g_mode, "no_loader"))
    return "/nonexistent/libvulkan.so.1";
  return "driver";
}

static vkf_context *create(vkft_capture *cap, const char *device, vkf_status *st) {
  vkft_capture_reset(cap);
  vkf_context_desc d = {
      .device = device, .log_fn = vkft_capture_fn, .log_user = cap, .log_level = VKF_LOG_DEBUG};
  vkf_context *ctx = NULL;
  *st = vkf_context_create(&d, &ctx);
  return ctx;
}

static void work(vkf_context *ctx) {
  int64_t s[2] = {3, 5}, sr[1] = {3};
  float x[15], y[15], r[3];
  for (int i = 0; i < 15; i++)
    x[i] = (float)i;
  vkf_tensor a = vkft_tensor_from(ctx, 2, s, x), out = vkft_tensor(ctx, 1, sr);
  VKFT_OK(vkf_scale(ctx, a, a, 2.0f));
  VKFT_OK(vkf_row_sum(ctx, out, a));
  vkft_read(ctx, a, y, 15);
  vkft_read(ctx, out, r, 3);
  for (int i = 0; i < 15; i++)
    assert_true(y[i] == 2.0f * (float)i);
  for (int i = 0; i < 3; i++)
    assert_true(r[i] == 2.0f * (float)(5 * i * 5 + 10));
}

static void test_automatic_falls_back(void **state) {
  (void)state;
  vkft_capture cap;
  vkft_capture_init(&cap);
  for (int round = 0; round < 2; round++) { /* the second attempt says it again */
    vkf_status st;
    vkf_context *ctx = create(&cap, NULL, &st);
    VKFT_OK(st);
    assert_int_equal(vkf_context_backend(ctx), VKF_BACKEND_CPU);
    unsigned warns = vkft_capture_find(&cap, VKF_LOG_WARN, NULL);
    unsigned because = vkft_capture_find(&cap, VKF_LOG_WARN, reason_word());
    if (warns != 1 || because != 1 || vkft_capture_find(&cap, VKF_LOG_ERROR, NULL) ||
        vkft_capture_find(&cap, VKF_LOG_VALIDATION, NULL)) {
      vkft_capture_dump(&cap, g_mode);
      fail_msg("%s: expected exactly one WARN line naming \"%s\", and no errors", g_mode,
               reason_word());
    }
    assert_int_equal(vkft_capture_find(&cap, VKF_LOG_WARN, "CPU backend"), 1);
    assert_string_equal(vkf_context_error(ctx), ""); /* the context itself is fine */
    work(ctx);
    vkf_context_destroy(ctx);
  }
}

static void test_enumerate_lists_cpu_only(void **state) {
  (void)state;
  vkf_device_info infos[4];
  uint32_t n = 0;
  VKFT_OK(vkf_enumerate_devices(NULL, infos, 4, &n));
  assert_int_equal(n, 1);
  assert_int_equal(infos[0].backend, VKF_BACKEND_CPU);
  assert_true(infos[0].usable);
}

static void test_explicit_requests(void **state) {
  (void)state;
  vkft_capture cap;
  vkft_capture_init(&cap);
  vkf_status st;
  /* a Vulkan device by name, or by an index past the list */
  static const char *const vulkan[] = {"llvmpipe", "lavapipe", "1", "NVIDIA"};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(vulkan); i++) {
    vkf_context *ctx = create(&cap, vulkan[i], &st);
    if (st != VKF_ERROR_NO_DEVICE)
      fail_msg("%s: device \"%s\" gave %s, expected VKF_ERROR_NO_DEVICE", g_mode, vulkan[i],
               vkf_status_name(st));
    assert_null(ctx);
    /* the failure says why Vulkan is missing */
    if (vkft_capture_find(&cap, VKF_LOG_ERROR, reason_word()) != 1) {
      vkft_capture_dump(&cap, vulkan[i]);
      fail_msg("the error for \"%s\" does not mention \"%s\"", vulkan[i], reason_word());
    }
  }
  /* "cpu" and the CPU backend's index (0: no Vulkan device before it) work,
   * without a warning */
  static const char *const cpu[] = {"cpu", "0"};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(cpu); i++) {
    vkf_context *ctx = create(&cap, cpu[i], &st);
    VKFT_OK(st);
    assert_int_equal(vkf_context_backend(ctx), VKF_BACKEND_CPU);
    assert_int_equal(vkft_capture_find(&cap, VKF_LOG_WARN, NULL), 0);
    work(ctx);
    vkf_context_destroy(ctx);
  }
  /* VKF_DEVICE naming a Vulkan device is an explicit request too */
  setenv("VKF_DEVICE", "llvmpipe", 1);
  vkf_context *ctx = create(&cap, NULL, &st);
  assert_int_equal(st, VKF_ERROR_NO_DEVICE);
  assert_null(ctx);
  setenv("VKF_DEVICE", "cpu", 1);
  ctx = create(&cap, "llvmpipe", &st);
  VKFT_OK(st);
  assert_int_equal(vkf_context_backend(ctx), VKF_BACKEND_CPU);
  vkf_context_destroy(ctx);
  unsetenv("VKF_DEVICE");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s no_loader|no_driver|no_driver_validation\n", argv[0]);
    return 2;
  }
  g_mode = argv[1];
  /* the environment must really be the broken one */
  const char *lib = getenv("VKF_VULKAN_LIBRARY"), *drv = getenv("VK_DRIVER_FILES");
  if (!strcmp(g_mode, "no_loader") ? !(lib && strstr(lib, "nonexistent"))
                                   : !(drv && strstr(drv, "nonexistent"))) {
    fprintf(stderr, "%s: the test environment is not set (see tests/CMakeLists.txt)\n", g_mode);
    return 2;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_automatic_falls_back),
      cmocka_unit_test(test_enumerate_lists_cpu_only),
      cmocka_unit_test(test_explicit_requests),
  };
  return cmocka_run_group_tests_name(g_mode, tests, NULL, NULL);
}
