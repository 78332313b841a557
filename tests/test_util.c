#include "test_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

unsigned vkft_validation_messages;

static void log_fn(void *user, vkf_log_level level, const char *msg) {
  (void)user;
  static const char *names[] = {"?", "error", "warn", "info", "debug", "VALIDATION"};
  if (level == VKF_LOG_VALIDATION)
    vkft_validation_messages++;
  if (level <= VKF_LOG_WARN || level == VKF_LOG_VALIDATION || getenv("VKF_TEST_VERBOSE"))
    fprintf(stderr, "[vkformer %s] %s\n", names[level <= 5 ? level : 0], msg);
}

vkf_context *vkft_cpu(void) {
  vkf_context_desc d = {.device = "cpu", .log_fn = log_fn, .log_level = VKF_LOG_DEBUG};
  vkf_context *ctx = NULL;
  vkf_status st = vkf_context_create(&d, &ctx);
  if (st != VKF_OK)
    fail_msg("CPU context: %s", vkf_status_name(st));
  return ctx;
}

vkf_context *vkft_vulkan_flags(uint32_t flags) {
  const char *dev = getenv("VKF_TEST_DEVICE");
  vkf_context_desc d = {.device = dev && *dev ? dev : NULL,
                        .flags = VKF_CONTEXT_VALIDATION | flags,
                        .log_fn = log_fn,
                        .log_level = VKF_LOG_WARN};
  vkf_context *ctx = NULL;
  vkf_status st = vkf_context_create(&d, &ctx);
  const char *req = getenv("VKF_TEST_REQUIRE_VULKAN");
  bool required = req && strcmp(req, "1") == 0;
  if (st != VKF_OK || vkf_context_backend(ctx) != VKF_BACKEND_VULKAN) {
    vkf_context_destroy(ctx);
    if (required)
      fail_msg("no Vulkan device, and VKF_TEST_REQUIRE_VULKAN=1 (%s)", vkf_status_name(st));
    fprintf(stderr, "SKIP: no Vulkan device found; this Vulkan test did not run "
                    "(install mesa-vulkan-drivers for lavapipe)\n");
    skip();
  }
  return ctx;
}

vkf_context *vkft_vulkan(void) {
  return vkft_vulkan_flags(0);
}

void vkft_destroy(vkf_context *ctx) {
  vkf_context_destroy(ctx);
  assert_int_equal(vkft_validation_messages, 0);
}

vkf_tensor vkft_tensor(vkf_context *ctx, uint32_t ndim, const int64_t *shape) {
  vkf_tensor t;
  vkf_status st = vkf_tensor_create(ctx, VKF_DTYPE_F32, ndim, shape, &t);
  if (st != VKF_OK)
    fail_msg("vkf_tensor_create: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  return t;
}

vkf_tensor vkft_tensor_from(vkf_context *ctx, uint32_t ndim, const int64_t *shape,
                            const float *data) {
  vkf_tensor t = vkft_tensor(ctx, ndim, shape);
  vkf_tensor_info info;
  VKFT_OK(vkf_tensor_info_get(ctx, t, &info));
  VKFT_OK(vkf_tensor_write(ctx, t, data, info.bytes));
  return t;
}

void vkft_read(vkf_context *ctx, vkf_tensor t, float *out, size_t n) {
  vkf_status st = vkf_tensor_read(ctx, t, out, n * sizeof(float));
  if (st != VKF_OK)
    fail_msg("vkf_tensor_read: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
}

vkft_rng vkft_rng_seed(uint64_t seed) {
  return (vkft_rng){seed * 0x9e3779b97f4a7c15ull + 1};
}

static uint64_t next_u64(vkft_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

float vkft_uniform(vkft_rng *r, float lo, float hi) {
  double u = (double)(next_u64(r) >> 11) * (1.0 / 9007199254740992.0);
  return (float)(lo + (hi - lo) * u);
}

void vkft_fill_uniform(vkft_rng *r, float *x, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; i++)
    x[i] = vkft_uniform(r, lo, hi);
}

float *vkft_alloc(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  assert_non_null(p);
  return p;
}

double *vkft_alloc_d(size_t n) {
  double *p = malloc((n ? n : 1) * sizeof(double));
  assert_non_null(p);
  return p;
}

static size_t compare(const char *what, const float *got, const double *refd, const float *reff,
                      size_t n, double atol, double rtol) {
  size_t bad = 0;
  double err2 = 0, ref2 = 0, worst = 0;
  for (size_t i = 0; i < n; i++) {
    double ref = refd ? refd[i] : (double)reff[i];
    double d = fabs((double)got[i] - ref);
    if (isnan(got[i]) != isnan(ref) || (!isnan(ref) && !(d <= atol + rtol * fabs(ref)))) {
      if (bad < 5)
        fprintf(stderr, "  %s[%zu]: got %.9g, expected %.9g (diff %.3g, bound %.3g)\n", what, i,
                (double)got[i], ref, d, atol + rtol * fabs(ref));
      bad++;
    }
    if (!isnan(ref) && !isnan(d)) {
      err2 += d * d;
      ref2 += ref * ref;
      worst = d > worst ? d : worst;
    }
  }
  if (bad)
    fprintf(stderr,
            "  %s: %zu of %zu elements out of bounds; max abs err %.3g, normalised err %.3g\n",
            what, bad, n, worst, ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2));
  return bad;
}

size_t vkft_compare(const char *what, const float *got, const double *ref, size_t n, double atol,
                    double rtol) {
  return compare(what, got, ref, NULL, n, atol, rtol);
}

size_t vkft_compare_f(const char *what, const float *got, const float *ref, size_t n, double atol,
                      double rtol) {
  return compare(what, got, NULL, ref, n, atol, rtol);
}
