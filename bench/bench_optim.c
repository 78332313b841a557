/* Throughput of the optimiser ops on one flat buffer:
 *   bench_optim [millions of elements = 16] [iterations = 20] [device]
 * Prints the time per call and the effective memory bandwidth (bytes each op
 * must move: adamw reads params, grads, m, v and writes params, m, v = 28 B
 * per element; grad_norm reads 4 B; an active clip reads and writes 8 B). */
#include <vkformer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define CHECK(expr)                                                                                \
  do {                                                                                             \
    vkf_status st_ = (expr);                                                                       \
    if (st_ != VKF_OK) {                                                                           \
      fprintf(stderr, "%s: %s: %s\n", #expr, vkf_status_name(st_), vkf_context_error(ctx));        \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

int main(int argc, char **argv) {
  double millions = argc > 1 ? atof(argv[1]) : 16;
  int iters = argc > 2 ? atoi(argv[2]) : 20;
  vkf_context_desc desc = {.device = argc > 3 ? argv[3] : NULL};
  vkf_context *ctx = NULL;
  if (vkf_context_create(&desc, &ctx) != VKF_OK) {
    fprintf(stderr, "no context\n");
    return 1;
  }
  vkf_device_info info;
  CHECK(vkf_context_device(ctx, &info));
  uint64_t n = (uint64_t)(millions * 1e6);
  int64_t shape[1] = {(int64_t)n}, one[1] = {1};
  vkf_tensor p, g, m, v, norm, scratch, seg;
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, shape, &p));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, shape, &g));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, shape, &m));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, shape, &v));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, one, &norm));
  uint64_t sn;
  CHECK(vkf_grad_norm_scratch_size(ctx, n, &sn));
  int64_t sshape[1] = {(int64_t)sn};
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, sshape, &scratch));
  CHECK(vkf_tensor_fill(ctx, p, 0.5f));
  CHECK(vkf_tensor_fill(ctx, g, 0.01f));
  CHECK(vkf_tensor_fill(ctx, m, 0.0f));
  CHECK(vkf_tensor_fill(ctx, v, 0.0f));
  /* A GPT-2-like table: 12 layers of (ln w, ln b, qkv w, qkv b, proj w,
   * proj b, ln w, ln b, fc w, fc b, proj w, proj b), sizes in proportion. */
  enum { S = 1 + 12 * 12 };
  vkf_optim_segment segs[S];
  static const double frac[12] = {1, 1, 3 * 768, 3, 768, 1, 1, 1, 4 * 768, 4, 4 * 768, 1};
  double per_layer = 0;
  for (int k = 0; k < 12; k++)
    per_layer += frac[k];
  segs[0] = (vkf_optim_segment){0, VKF_OPTIM_DECAY}; /* embeddings: 10% */
  uint64_t at = n / 10;
  for (int l = 0, s = 1; l < 12; l++)
    for (int k = 0; k < 12; k++, s++) {
      segs[s] = (vkf_optim_segment){at, (k == 2 || k == 4 || k == 8 || k == 10) ? 1u : 0u};
      uint64_t len = (uint64_t)((double)(n - n / 10) / 12 * frac[k] / per_layer);
      at += len ? len : 1;
    }
  CHECK(vkf_optim_segments_create(ctx, segs, S, n, &seg));

  vkf_optim_desc od = {.lr = 1e-4f, .weight_decay = 0.1f, .beta2 = 0.95f};
  struct {
    const char *name;
    double bytes;
  } ops[4] = {{"adamw", 28}, {"adamw+clip", 28}, {"grad_norm", 4}, {"clip_grads", 8}};
  printf("%s, %.1f M elements, %d iterations\n", info.name, (double)n / 1e6, iters);
  for (int o = 0; o < 4; o++) {
    if (o == 3) /* an active clip with a factor just below 1 */
      CHECK(vkf_tensor_fill(ctx, norm, 2.0f));
    double start = 0;
    for (int it = -2; it < iters; it++) { /* two warm-up calls */
      if (it == 0) {
        CHECK(vkf_synchronize(ctx));
        start = now_s();
      }
      od.step = (uint64_t)(it + 3);
      switch (o) {
      case 0:
        od.max_grad_norm = 0;
        CHECK(vkf_optim_step(ctx, p, g, m, v, seg, VKF_NO_TENSOR, &od));
        break;
      case 1:
        od.max_grad_norm = 1.0f;
        CHECK(vkf_optim_step(ctx, p, g, m, v, seg, norm, &od));
        break;
      case 2:
        CHECK(vkf_grad_norm(ctx, norm, scratch, g));
        break;
      default:
        CHECK(vkf_clip_grads(ctx, g, norm, 1.999f));
        break;
      }
    }
    CHECK(vkf_synchronize(ctx));
    double dt = (now_s() - start) / iters;
    printf("  %-11s %8.3f ms  %7.1f GB/s\n", ops[o].name, dt * 1e3,
           ops[o].bytes * (double)n / dt / 1e9);
  }
  float nv;
  CHECK(vkf_grad_norm_read(ctx, norm, &nv));
  vkf_context_destroy(ctx);
  return 0;
}
