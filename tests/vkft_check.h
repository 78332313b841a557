/* Helpers for the foundation's robustness tests (context, fallback, large
 * tensors, op families): log capture, exact status checks, per-element error
 * bounds, Vulkan contexts with a caller's descriptor. */
#ifndef VKFT_CHECK_H
#define VKFT_CHECK_H

#include "test_util.h"

#include <pthread.h>

/* Unit roundoff of binary32 (half an ulp of 1): the relative error bound of
 * one correctly rounded f32 operation. */
#define VKFT_U32 (1.0 / 16777216.0)

/* Collects every log line a context emits (thread-safe). VALIDATION lines
 * are also printed to stderr, every line with VKF_TEST_VERBOSE set. */
#define VKFT_CAPTURE_LINES 256
typedef struct vkft_capture {
  pthread_mutex_t mu;
  unsigned count[6]; /* per vkf_log_level */
  unsigned n_lines;
  vkf_log_level level[VKFT_CAPTURE_LINES];
  char line[VKFT_CAPTURE_LINES][512];
} vkft_capture;

void vkft_capture_init(vkft_capture *c);
void vkft_capture_reset(vkft_capture *c);
void vkft_capture_fn(void *user, vkf_log_level level, const char *message);
/* Number of captured lines of `level` containing `needle` (NULL: any). */
unsigned vkft_capture_find(vkft_capture *c, vkf_log_level level, const char *needle);
/* Prints every captured line (for failure diagnostics). */
void vkft_capture_dump(vkft_capture *c, const char *title);

/* Fails unless `got == want`; an error status must come with a message. */
void vkft_expect(vkf_context *ctx, vkf_status got, vkf_status want, const char *what);

/* True when VKF_TEST_REQUIRE_VULKAN=1. */
bool vkft_vulkan_required(void);
/* Creates a context from `desc` with VKF_CONTEXT_VALIDATION added; if it does
 * not run on Vulkan, skips the test (fails when Vulkan is required), as
 * vkft_vulkan() does. */
vkf_context *vkft_vulkan_desc(vkf_context_desc *desc);

/* |got[i] - ref[i]| <= bound[i] (and NaN only where ref is NaN); prints the
 * first mismatches; returns their number. */
size_t vkft_compare_bounds(const char *what, const float *got, const double *ref,
                           const double *bound, size_t n);

/* f32 tensor helpers with explicit dtype. */
vkf_tensor vkft_tensor_dtype(vkf_context *ctx, vkf_dtype dtype, uint32_t ndim,
                             const int64_t *shape);
vkf_tensor vkft_view(vkf_context *ctx, vkf_tensor base, uint64_t offset, uint32_t ndim,
                     const int64_t *shape);

/* Elements of a shape. */
size_t vkft_elements(uint32_t ndim, const int64_t *shape);

#endif
