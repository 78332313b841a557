/* Test helpers: contexts on both backends with validation, seeded random
 * data, and element-wise comparison that prints the first mismatches. */
#ifndef VKF_TEST_UTIL_H
#define VKF_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <vkformer.h>

/* Validation-layer (and error) messages seen since start; tests assert it
 * stays 0. */
extern unsigned vkft_validation_messages;

/* A CPU-backend context (fails the test if none). */
vkf_context *vkft_cpu(void);
/* A Vulkan context with the validation layer on, on the default device (or
 * $VKF_TEST_DEVICE). Without a Vulkan device it prints why and skips the
 * test, unless VKF_TEST_REQUIRE_VULKAN=1 (set in CI), where it fails. */
vkf_context *vkft_vulkan(void);
vkf_context *vkft_vulkan_flags(uint32_t flags);
/* Destroys and asserts no validation message was logged. */
void vkft_destroy(vkf_context *ctx);

/* Tensor helpers that fail the test on error. */
vkf_tensor vkft_tensor(vkf_context *ctx, uint32_t ndim, const int64_t *shape);
vkf_tensor vkft_tensor_from(vkf_context *ctx, uint32_t ndim, const int64_t *shape,
                            const float *data);
void vkft_read(vkf_context *ctx, vkf_tensor t, float *out, size_t n);

/* Deterministic random numbers. */
typedef struct vkft_rng {
  uint64_t s;
} vkft_rng;
vkft_rng vkft_rng_seed(uint64_t seed);
float vkft_uniform(vkft_rng *r, float lo, float hi);
void vkft_fill_uniform(vkft_rng *r, float *x, size_t n, float lo, float hi);
float *vkft_alloc(size_t n); /* malloc'd floats, fails test if NULL */
double *vkft_alloc_d(size_t n);

/* Compares got to ref with |got-ref| <= atol + rtol*|ref| per element and
 * prints the first mismatches and the normalised error. Returns the number
 * of mismatches. */
size_t vkft_compare(const char *what, const float *got, const double *ref, size_t n, double atol,
                    double rtol);
size_t vkft_compare_f(const char *what, const float *got, const float *ref, size_t n, double atol,
                      double rtol);

#define VKFT_OK(expr)                                                                              \
  do {                                                                                             \
    vkf_status st_ = (expr);                                                                       \
    if (st_ != VKF_OK)                                                                             \
      fail_msg("%s -> %s", #expr, vkf_status_name(st_));                                           \
  } while (0)

#define VKFT_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
