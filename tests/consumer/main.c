/* A program using vkformer as an application would, built against an
 * installed copy (tests/consumer/run.sh) three ways: CMake's shared and
 * static targets and pkg-config. With CONSUMER_WITH_VULKAN it also calls the
 * system Vulkan loader itself: a static vkformer must not clash with it. */
#include <vkformer.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CONSUMER_WITH_VULKAN
#include <vulkan/vulkan.h>
#endif

#ifndef CONSUMER_KIND
#define CONSUMER_KIND "unknown"
#endif

static int run(const char *device) {
  vkf_context_desc desc = {.device = device};
  vkf_context *ctx = NULL;
  vkf_status st = vkf_context_create(&desc, &ctx);
  if (st != VKF_OK) {
    fprintf(stderr, "vkf_context_create(%s): %s\n", device ? device : "auto", vkf_status_name(st));
    return 1;
  }
  vkf_device_info info;
  vkf_context_device(ctx, &info);
  enum { R = 4, C = 8 };
  int64_t shape[2] = {R, C}, rows[1] = {R};
  float x[R * C], sums[R];
  for (int i = 0; i < R * C; i++)
    x[i] = (float)(i % 5);
  vkf_tensor a, s;
  int bad = 0;
  if (vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, shape, &a) ||
      vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, rows, &s) ||
      vkf_tensor_write(ctx, a, x, sizeof(x)) || vkf_softmax(ctx, a, a) || vkf_row_sum(ctx, s, a) ||
      vkf_tensor_read(ctx, s, sums, sizeof(sums))) {
    fprintf(stderr, "op failed: %s\n", vkf_context_error(ctx));
    bad = 1;
  }
  for (int r = 0; r < R && !bad; r++)
    if (fabsf(sums[r] - 1.0f) > 1e-5f) {
      fprintf(stderr, "row %d of a softmax sums to %g\n", r, (double)sums[r]);
      bad = 1;
    }
  printf("consumer (%s): %s on %s: %s\n", CONSUMER_KIND, device ? device : "auto", info.name,
         bad ? "FAILED" : "ok");
  vkf_context_destroy(ctx);
  return bad;
}

/* Sanitizer builds only (VKFT_PIN_LIBS, see tests/vkft_pin.c): keep the
 * Vulkan driver loaded so LeakSanitizer can tell its allocations apart. */
static void pin_libraries(void) {
  const char *list = getenv("VKFT_PIN_LIBS");
  char buf[1024];
  if (!list || !*list)
    return;
  snprintf(buf, sizeof(buf), "%s", list);
  for (char *p = buf, *end; p && *p; p = end ? end + 1 : NULL) {
    end = strchr(p, ':');
    if (end)
      *end = 0;
    dlopen(p, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  }
}

int main(void) {
  pin_libraries();
  uint32_t n = 0;
  if (vkf_enumerate_devices(NULL, NULL, 0, &n) != VKF_OK || n < 1)
    return 1;
#ifdef CONSUMER_WITH_VULKAN
  uint32_t version = 0;
  if (vkEnumerateInstanceVersion(&version) != VK_SUCCESS) {
    fprintf(stderr, "the application's own Vulkan call failed\n");
    return 1;
  }
  printf("consumer (%s): the application's loader reports Vulkan %u.%u\n", CONSUMER_KIND,
         VK_API_VERSION_MAJOR(version), VK_API_VERSION_MINOR(version));
#endif
  return run("cpu") || run(NULL);
}
