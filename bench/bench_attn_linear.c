/* Linear attention against the standard variant, in the same run:
 *
 *   bench_attn_linear ops [B = 1] [T = 512] [H = 8] [Hkv = H] [D = 64]
 *                         [iterations = 3] [device] [chunk = 64] [standard = 1]
 *     Causal self-attention, Dv = D. Prints the time per call of the
 *     forward and of forward + backward (host wall clock around the calls,
 *     after a warm-up and a synchronize) and the rate in GFLOP/s of the
 *     products each variant does:
 *       linear:   forward  = chunk states 2 T D (Dv+1) per kv head, then per
 *                            query head 2 T D (Dv+1) (the past) + 2 P (D + Dv+1)
 *                            (in-chunk pairs P = sum over chunks n (n+1) / 2)
 *                 backward = dq 2 T D (Dv+1) + 2 P (Dv+1 + D), R sums
 *                            2 T D (Dv+1), dk 2 P (Dv+1 + D), dv 2 P (D + Dv) per
 *                            query head, + 4 T D (Dv+1) per kv head
 *       standard: forward 2 T^2 D, backward 4 T^2 D per head (causal halves)
 *     The standard variant is skipped when its B H T^2 scores do not fit
 *     (a tensor holds 2^32-1 elements) or the device's memory, or when the
 *     last argument is 0. "-" as the device: the default one.
 *
 *   bench_attn_linear train [device] [T ...]
 *     A GPT (d_model 64, 2 layers, 4 heads, 2 kv heads, RoPE, SwiGLU,
 *     vocabulary 256, batch 1) with linear attention: the trainer's planned
 *     peak memory (vkf_trainer_memory) for each T (default 1024 .. 16384),
 *     next to the standard variant's where it can be built, and the time of
 *     one recorded training step at the largest T. */
#include <vkformer.h>

#include <math.h>
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

static vkf_context *context(const char *device) {
  vkf_context_desc desc = {.device = device};
  vkf_context *ctx = NULL;
  if (vkf_context_create(&desc, &ctx) != VKF_OK) {
    fprintf(stderr, "no context\n");
    return NULL;
  }
  return ctx;
}

static void destroy_all(vkf_context *ctx, vkf_tensor *t, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (t[i].id)
      vkf_tensor_destroy(ctx, t[i]);
}

/* Times of one forward (fwd) and of forward + backward (both) of either
 * variant; 1 when it cannot run (reported as skipped), 0 on success. */
static int time_variant(vkf_context *ctx, bool linear, int64_t B, int64_t T, int64_t H, int64_t Hkv,
                        int64_t D, uint32_t chunk, int iters, double *fwd, double *both) {
  int64_t sq[4] = {B, T, H, D}, skv[4] = {B, T, Hkv, D};
  vkf_tensor t[11] = {{0}};
  vkf_tensor *q = &t[0], *k = &t[1], *v = &t[2], *out = &t[3], *dout = &t[4], *dq = &t[5];
  vkf_tensor *dk = &t[6], *dv = &t[7], *saved = &t[8], *ws = &t[9];
  const int64_t *shapes[8] = {sq, skv, skv, sq, sq, sq, skv, skv};
  for (int i = 0; i < 8; i++)
    if (vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, shapes[i], &t[i]) != VKF_OK)
      goto fail;
  for (int i = 0; i < 8; i++)
    if (vkf_tensor_fill(ctx, t[i], 0.01f * (float)(i + 1)) != VKF_OK)
      goto fail;
  vkf_linear_attention_desc ld = {.chunk = chunk};
  vkf_attention_desc ad = {.flags = VKF_ATTENTION_CAUSAL};
  if (linear) {
    vkf_linear_attention_sizes sz;
    if (vkf_linear_attention_sizes_get(ctx, *q, *k, *v, &ld, &sz) != VKF_OK)
      goto fail;
    int64_t ns = (int64_t)sz.saved_elements, nw = (int64_t)sz.workspace_elements;
    if (vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, &ns, saved) != VKF_OK ||
        vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, &nw, ws) != VKF_OK)
      goto fail;
  } else {
    vkf_attention_sizes sz;
    if (vkf_attention_sizes_get(ctx, *q, *k, *v, &ad, &sz) != VKF_OK)
      goto fail;
    int64_t nw = (int64_t)sz.workspace_elements;
    if (vkf_tensor_create(ctx, VKF_DTYPE_F32, sz.saved_ndim, sz.saved_shape, saved) != VKF_OK ||
        vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, &nw, ws) != VKF_OK)
      goto fail;
  }
  *fwd = *both = 0;
  for (int it = -1; it < iters; it++) { /* it = -1: warm-up (pipelines, caches) */
    vkf_status st = vkf_synchronize(ctx);
    double t0 = now_s();
    if (st == VKF_OK)
      st = linear ? vkf_linear_attention_forward(ctx, *out, *saved, *q, *k, *v, &ld)
                  : vkf_attention_forward(ctx, *out, *saved, *q, *k, *v, &ad);
    if (st == VKF_OK)
      st = vkf_synchronize(ctx);
    double t1 = now_s();
    if (st == VKF_OK)
      st = linear ? vkf_linear_attention_forward(ctx, *out, *saved, *q, *k, *v, &ld)
                  : vkf_attention_forward(ctx, *out, *saved, *q, *k, *v, &ad);
    if (st == VKF_OK)
      st = linear ? vkf_linear_attention_backward(ctx, *dq, *dk, *dv, *dout, *q, *k, *v, *out,
                                                  *saved, *ws, &ld)
                  : vkf_attention_backward(ctx, *dq, *dk, *dv, *dout, *q, *k, *v, *saved, *ws, &ad);
    if (st == VKF_OK)
      st = vkf_synchronize(ctx);
    double t2 = now_s();
    if (st != VKF_OK) {
      fprintf(stderr, "  %s: %s\n", linear ? "linear" : "standard", vkf_context_error(ctx));
      goto fail;
    }
    if (it >= 0) {
      *fwd += t1 - t0;
      *both += t2 - t1;
    }
  }
  *fwd /= iters;
  *both /= iters;
  destroy_all(ctx, t, 11);
  return 0;
fail:
  destroy_all(ctx, t, 11);
  return 1;
}

static int ops(int argc, char **argv) {
  int64_t B = argc > 2 ? atoll(argv[2]) : 1, T = argc > 3 ? atoll(argv[3]) : 512;
  int64_t H = argc > 4 ? atoll(argv[4]) : 8, Hkv = argc > 5 ? atoll(argv[5]) : H;
  int64_t D = argc > 6 ? atoll(argv[6]) : 64;
  int iters = argc > 7 ? atoi(argv[7]) : 3;
  uint32_t chunk = argc > 9 ? (uint32_t)atoi(argv[9]) : 64;
  const int with_standard = argc > 10 ? atoi(argv[10]) : 1;
  vkf_context *ctx = context(argc > 8 && strcmp(argv[8], "-") ? argv[8] : NULL);
  if (!ctx)
    return 1;
  vkf_device_info info;
  CHECK(vkf_context_device(ctx, &info));
  const double Dv1 = (double)D + 1;
  double P = 0; /* in-chunk causal pairs */
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    double n = (double)(T - t0 < chunk ? T - t0 : chunk);
    P += n * (n + 1) / 2;
  }
  const double bh = (double)B * H, bk = (double)B * Hkv, TD = (double)T * D * Dv1;
  const double lin_f = bk * 2 * TD + bh * (2 * TD + 2 * P * (D + Dv1));
  /* per query head: dq (the past, in-chunk), R sums, dk and dv in-chunk; per kv head: dk and
   * dv from R */
  const double lin_b =
      bh * (2 * TD + 2 * P * (Dv1 + D) + 2 * TD + 2 * P * (Dv1 + D) + 2 * P * (2.0 * D)) +
      bk * 4 * TD;
  const double pairs = (double)B * H * T * T * 0.5;
  const double std_f = 4 * pairs * D, std_b = 8 * pairs * D;
  printf("%s: B %lld T %lld H %lld Hkv %lld D %lld causal, chunk %u\n", info.name, (long long)B,
         (long long)T, (long long)H, (long long)Hkv, (long long)D, chunk);
  for (int linear = 1; linear >= 0; linear--) {
    double f, b;
    const char *name = linear ? "linear  " : "standard";
    if (!linear && !with_standard) {
      printf("%s  not run\n", name);
      continue;
    }
    if (!linear && (double)B * H * T * T > 4294967295.0) {
      printf("%s  skipped: %lld x %lld x %lld^2 scores exceed a tensor\n", name, (long long)B,
             (long long)H, (long long)T);
      continue;
    }
    if (time_variant(ctx, linear, B, T, H, Hkv, D, chunk, iters, &f, &b)) {
      printf("%s  skipped: does not fit this device\n", name);
      continue;
    }
    const double ff = linear ? lin_f : std_f, fb = linear ? lin_f + lin_b : std_f + std_b;
    printf("%s  forward %10.3f ms %8.2f GFLOP/s   forward+backward %10.3f ms %8.2f GFLOP/s\n", name,
           f * 1e3, ff / f * 1e-9, b * 1e3, fb / b * 1e-9);
  }
  vkf_context_destroy(ctx);
  return 0;
}

static int train(int argc, char **argv) {
  vkf_context *ctx = context(argc > 2 && strcmp(argv[2], "-") ? argv[2] : NULL);
  if (!ctx)
    return 1;
  vkf_device_info info;
  CHECK(vkf_context_device(ctx, &info));
  uint32_t Ts[16] = {1024, 2048, 4096, 8192, 16384}, n = 5;
  if (argc > 3) {
    n = 0;
    for (int i = 3; i < argc && n < 16; i++)
      Ts[n++] = (uint32_t)atoi(argv[i]);
  }
  printf("%s: GPT d_model 64, 2 layers, 4 heads (2 kv), vocabulary 256, batch 1\n", info.name);
  printf("%8s %16s %16s %16s\n", "T", "linear total", "of which acts", "standard total");
  for (uint32_t i = 0; i < n; i++) {
    const uint32_t T = Ts[i];
    uint64_t tot[2] = {0}, acts = 0;
    double step_s = 0;
    float loss = 0;
    for (int variant = 0; variant < 2; variant++) {
      vkf_gpt_config cfg = {.vocab_size = 256,
                            .context_length = T,
                            .d_model = 64,
                            .n_layer = 2,
                            .n_head = 4,
                            .n_kv_head = 2,
                            .norm = VKF_NORM_RMSNORM,
                            .mlp = VKF_MLP_SWIGLU,
                            .positions = VKF_POS_ROPE,
                            .attention = variant ? VKF_ATTN_STANDARD : VKF_ATTN_LINEAR};
      vkf_gpt *m = NULL;
      vkf_trainer *tr = NULL;
      vkf_train_desc td = {.batch = 1, .seq_len = T, .schedule = VKF_LR_CONSTANT};
      if (vkf_gpt_create(ctx, &cfg, 1, &m) != VKF_OK || vkf_trainer_create(m, &td, &tr) != VKF_OK) {
        vkf_gpt_destroy(m);
        continue; /* the standard variant past what fits */
      }
      vkf_train_memory mem;
      CHECK(vkf_trainer_memory(tr, &mem));
      tot[variant] = mem.total;
      if (!variant) {
        acts = mem.activations;
        if (i + 1 == n) {
          int32_t *in = malloc(T * sizeof(int32_t)), *tg = malloc(T * sizeof(int32_t));
          for (uint32_t t = 0; t < T; t++)
            in[t] = (int32_t)((t * 7919u) % 256), tg[t] = (int32_t)((t * 31u + 5) % 256);
          vkf_step_info si;
          CHECK(vkf_trainer_step(tr, in, tg, &si)); /* warm-up: pipelines */
          double t0 = now_s();
          CHECK(vkf_trainer_step(tr, in, tg, &si));
          step_s = now_s() - t0;
          loss = si.loss;
          free(in);
          free(tg);
        }
      }
      vkf_trainer_destroy(tr);
      vkf_gpt_destroy(m);
    }
    char std_s[32];
    if (tot[1])
      snprintf(std_s, sizeof(std_s), "%.1f MiB", (double)tot[1] / 1048576.0);
    else
      snprintf(std_s, sizeof(std_s), "does not fit");
    printf("%8u %12.1f MiB %12.1f MiB %16s\n", T, (double)tot[0] / 1048576.0,
           (double)acts / 1048576.0, std_s);
    if (step_s > 0)
      printf("training step at T = %u (linear): %.3f s, loss %.4f (%s)\n", T, step_s, (double)loss,
             isfinite(loss) ? "finite" : "NOT FINITE");
  }
  vkf_context_destroy(ctx);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "train"))
    return train(argc, argv);
  if (argc > 1 && !strcmp(argv[1], "ops"))
    return ops(argc, argv);
  fprintf(stderr, "usage: bench_attn_linear ops [B] [T] [H] [Hkv] [D] [iterations] [device] "
                  "[chunk]\n       bench_attn_linear train [device|-] [T ...]\n");
  return 2;
}
