/* Time of attention forward and backward (standard variant):
 *   bench_attn [B = 1] [T = 512] [Hq = 8] [Hkv = 8] [D = 64] [causal = 1]
 *              [iterations = 5] [device]
 * Self-attention (Tq = Tk = T). Prints the time per call (host wall clock
 * around iterations, after a warm-up and a synchronize) and the rate in
 * useful GFLOP/s: the forward does two products of 2*B*Hq*T*T*D flops, the
 * backward four (plus a fifth with softcap), halved when causal (the kernels
 * skip the masked half). With VKF_PROFILE=1 also the per-op device times
 * (profiling serialises the dispatches). */
#include <vkformer.h>

#include <stdbool.h>
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
  int64_t B = argc > 1 ? atoll(argv[1]) : 1, T = argc > 2 ? atoll(argv[2]) : 512;
  int64_t Hq = argc > 3 ? atoll(argv[3]) : 8, Hkv = argc > 4 ? atoll(argv[4]) : 8;
  int64_t D = argc > 5 ? atoll(argv[5]) : 64;
  int causal = argc > 6 ? atoi(argv[6]) : 1, iters = argc > 7 ? atoi(argv[7]) : 5;
  const char *prof = getenv("VKF_PROFILE");
  bool profile = prof && strcmp(prof, "1") == 0;
  vkf_context_desc desc = {.device = argc > 8 ? argv[8] : NULL,
                           .flags = profile ? VKF_CONTEXT_PROFILE : 0};
  vkf_context *ctx = NULL;
  if (vkf_context_create(&desc, &ctx) != VKF_OK) {
    fprintf(stderr, "no context\n");
    return 1;
  }
  vkf_device_info info;
  CHECK(vkf_context_device(ctx, &info));
  int64_t sq[4] = {B, T, Hq, D}, skv[4] = {B, T, Hkv, D};
  vkf_tensor q, k, v, out, dq, dk, dv, dout, P, ws;
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, sq, &q));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, skv, &k));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, skv, &v));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, sq, &out));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, sq, &dout));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, sq, &dq));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, skv, &dk));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, skv, &dv));
  vkf_attention_desc ad = {.flags = causal ? VKF_ATTENTION_CAUSAL : 0};
  vkf_attention_sizes sz;
  CHECK(vkf_attention_sizes_get(ctx, q, k, v, &ad, &sz));
  int64_t sw[1] = {(int64_t)sz.workspace_elements};
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, sz.saved_ndim, sz.saved_shape, &P));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, sw, &ws));
  vkf_tensor all[] = {q, k, v, dout, dq, dk, dv};
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
    CHECK(vkf_tensor_fill(ctx, all[i], 0.01f * (float)(i + 1)));

  double t_fwd = 0, t_bwd = 0;
  for (int it = -1; it < iters; it++) { /* it = -1: warm-up (pipelines, caches) */
    CHECK(vkf_synchronize(ctx));
    double t0 = now_s();
    CHECK(vkf_attention_forward(ctx, out, P, q, k, v, &ad));
    CHECK(vkf_synchronize(ctx));
    double t1 = now_s();
    CHECK(vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, P, ws, &ad));
    CHECK(vkf_synchronize(ctx));
    double t2 = now_s();
    if (it >= 0) {
      t_fwd += t1 - t0;
      t_bwd += t2 - t1;
    }
    if (it == -1 && profile)
      CHECK(vkf_profile_reset(ctx));
  }
  t_fwd /= iters;
  t_bwd /= iters;
  double pairs = (double)B * Hq * T * T * (causal ? 0.5 : 1.0);
  printf("%s: B %lld T %lld Hq %lld Hkv %lld D %lld %s\n", info.name, (long long)B, (long long)T,
         (long long)Hq, (long long)Hkv, (long long)D, causal ? "causal" : "full");
  printf("forward  %9.3f ms  %8.2f GFLOP/s\n", t_fwd * 1e3, 4 * pairs * D / t_fwd * 1e-9);
  printf("backward %9.3f ms  %8.2f GFLOP/s\n", t_bwd * 1e3, 8 * pairs * D / t_bwd * 1e-9);
  if (profile) {
    vkf_op_time times[32];
    uint32_t n = 0;
    CHECK(vkf_profile_read(ctx, times, 32, &n));
    for (uint32_t i = 0; i < n && i < 32; i++) /* count: dispatches (several per op) */
      printf("  %-24s %10.3f ms per iteration (%u dispatches)\n", times[i].name,
             times[i].total_ms / iters, times[i].count);
  }
  vkf_context_destroy(ctx);
  return 0;
}
