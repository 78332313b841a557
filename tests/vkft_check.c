#include "vkft_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *level_name(vkf_log_level level) {
  static const char *names[] = {"?", "error", "warn", "info", "debug", "VALIDATION"};
  return (unsigned)level <= 5 ? names[level] : "?";
}

void vkft_capture_init(vkft_capture *c) {
  memset(c, 0, sizeof(*c));
  pthread_mutex_init(&c->mu, NULL);
}

void vkft_capture_reset(vkft_capture *c) {
  pthread_mutex_lock(&c->mu);
  memset(c->count, 0, sizeof(c->count));
  c->n_lines = 0;
  pthread_mutex_unlock(&c->mu);
}

void vkft_capture_fn(void *user, vkf_log_level level, const char *message) {
  vkft_capture *c = user;
  pthread_mutex_lock(&c->mu);
  if ((unsigned)level <= 5)
    c->count[level]++;
  if (c->n_lines < VKFT_CAPTURE_LINES) {
    c->level[c->n_lines] = level;
    snprintf(c->line[c->n_lines], sizeof(c->line[0]), "%s", message);
    c->n_lines++;
  }
  pthread_mutex_unlock(&c->mu);
  /* tests assert on captured lines and dump them on failure; only
   * validation messages are always shown */
  if (level == VKF_LOG_VALIDATION || getenv("VKF_TEST_VERBOSE"))
    fprintf(stderr, "[vkformer %s] %s\n", level_name(level), message);
}

unsigned vkft_capture_find(vkft_capture *c, vkf_log_level level, const char *needle) {
  unsigned n = 0;
  pthread_mutex_lock(&c->mu);
  for (unsigned i = 0; i < c->n_lines; i++)
    if (c->level[i] == level && (!needle || strstr(c->line[i], needle)))
      n++;
  pthread_mutex_unlock(&c->mu);
  return n;
}

void vkft_capture_dump(vkft_capture *c, const char *title) {
  pthread_mutex_lock(&c->mu);
  fprintf(stderr, "--- %s: %u log line(s)\n", title, c->n_lines);
  for (unsigned i = 0; i < c->n_lines; i++)
    fprintf(stderr, "  [%s] %s\n", level_name(c->level[i]), c->line[i]);
  pthread_mutex_unlock(&c->mu);
}

void vkft_expect(vkf_context *ctx, vkf_status got, vkf_status want, const char *what) {
  if (got != want)
    fail_msg("%s: got %s, expected %s (%s)", what, vkf_status_name(got), vkf_status_name(want),
             ctx ? vkf_context_error(ctx) : "");
  if (ctx && want != VKF_OK && strlen(vkf_context_error(ctx)) == 0)
    fail_msg("%s: %s without an error message", what, vkf_status_name(want));
}

bool vkft_vulkan_required(void) {
  const char *req = getenv("VKF_TEST_REQUIRE_VULKAN");
  return req && strcmp(req, "1") == 0;
}

vkf_context *vkft_vulkan_desc(vkf_context_desc *desc) {
  const char *dev = getenv("VKF_TEST_DEVICE");
  if (!desc->device && dev && *dev)
    desc->device = dev;
  desc->flags |= VKF_CONTEXT_VALIDATION;
  vkf_context *ctx = NULL;
  vkf_status st = vkf_context_create(desc, &ctx);
  if (st != VKF_OK || vkf_context_backend(ctx) != VKF_BACKEND_VULKAN) {
    vkf_context_destroy(ctx);
    if (vkft_vulkan_required())
      fail_msg("no Vulkan device, and VKF_TEST_REQUIRE_VULKAN=1 (%s)", vkf_status_name(st));
    fprintf(stderr, "SKIP: no Vulkan device found; this Vulkan test did not run\n");
    skip();
  }
  return ctx;
}

size_t vkft_compare_bounds(const char *what, const float *got, const double *ref,
                           const double *bound, size_t n) {
  size_t bad = 0;
  double worst = 0, worst_ratio = 0;
  for (size_t i = 0; i < n; i++) {
    double g = got[i], r = ref[i];
    bool ok;
    if (isnan(r))
      ok = isnan(g);
    else if (isinf(r))
      ok = g == r;
    else
      ok = !isnan(g) && fabs(g - r) <= bound[i];
    if (!ok) {
      if (bad < 5)
        fprintf(stderr, "  %s[%zu]: got %.9g, expected %.9g (diff %.3g, bound %.3g)\n", what, i, g,
                r, fabs(g - r), bound[i]);
      bad++;
    }
    if (isfinite(r) && isfinite(g)) {
      double d = fabs(g - r);
      worst = d > worst ? d : worst;
      if (bound[i] > 0 && d / bound[i] > worst_ratio)
        worst_ratio = d / bound[i];
    }
  }
  if (bad)
    fprintf(stderr, "  %s: %zu of %zu elements out of bounds; max abs err %.3g (%.3g of bound)\n",
            what, bad, n, worst, worst_ratio);
  return bad;
}

vkf_tensor vkft_tensor_dtype(vkf_context *ctx, vkf_dtype dtype, uint32_t ndim,
                             const int64_t *shape) {
  vkf_tensor t;
  vkf_status st = vkf_tensor_create(ctx, dtype, ndim, shape, &t);
  if (st != VKF_OK)
    fail_msg("vkf_tensor_create(%s): %s: %s", vkf_dtype_name(dtype), vkf_status_name(st),
             vkf_context_error(ctx));
  return t;
}

vkf_tensor vkft_view(vkf_context *ctx, vkf_tensor base, uint64_t offset, uint32_t ndim,
                     const int64_t *shape) {
  vkf_tensor t;
  vkf_status st = vkf_tensor_view(ctx, base, offset, ndim, shape, &t);
  if (st != VKF_OK)
    fail_msg("vkf_tensor_view: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  return t;
}

size_t vkft_elements(uint32_t ndim, const int64_t *shape) {
  size_t n = 1;
  for (uint32_t i = 0; i < ndim; i++)
    n *= (size_t)shape[i];
  return n;
}
