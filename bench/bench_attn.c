/* Time, rate and memory of attention forward and forward+backward, per
 * variant, with the standard variant as the in-run baseline:
 *
 *   bench_attn [--device D] [--variants standard,flash,sliding,std-sliding]
 *              [--T 512,2048,8192]
 *              [--D 64,128] [--B 1] [--H 8] [--Hkv 8] [--window 256] [--causal 1]
 *              [--iters 3] [--max-standard-T 8192] [--forward-only] [--profile]
 *
 * Self-attention (Tq = Tk = T), layout [B, T, H, D]. "sliding" is the flash
 * variant with a window of --window keys, "std-sliding" the standard one with
 * it (not run by default). Each configuration runs in a fresh
 * context, so "peak" is the device memory high-water mark of that
 * configuration alone (inputs, outputs, saved, gradients, workspace). Times
 * are host wall clock around each call after a warm-up (pipelines, caches)
 * and a synchronize; the best of --iters (forward alone, and forward plus
 * backward from the fastest pair). "cpu s" is the process CPU time (all
 * threads) of the fastest forward+backward: on a shared machine, wall time /
 * cpu time shows how much of the cores the run got. GFLOP/s count the useful flops of
 * the visible (query, key) pairs: the forward's two products 4 * pairs * D,
 * the backward's four (dP, dq, dk, dv) 8 * pairs * D, whatever a kernel
 * recomputes (the flash backward forms the scores again, twice). Standard
 * runs are skipped above --max-standard-T (its scores grow as T^2). --profile
 * prints each op's device time (the profiler serialises the dispatches). */
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

/* CPU time of the whole process (every thread: the CPU backend's pool, or
 * lavapipe's), for machines shared with other work. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define CHECK(expr)                                                                                \
  do {                                                                                             \
    vkf_status st_ = (expr);                                                                       \
    if (st_ != VKF_OK) {                                                                           \
      fprintf(stderr, "%s: %s: %s\n", #expr, vkf_status_name(st_), vkf_context_error(ctx));        \
      vkf_context_destroy(ctx);                                                                    \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

typedef struct options {
  const char *device;
  bool variants[4]; /* standard, flash, sliding, std-sliding */
  int64_t T[16], D[16];
  int nT, nD;
  int64_t B, H, Hkv, window, max_standard_T;
  int causal, iters, forward_only, profile;
} options;

static const char *variant_names[4] = {"standard", "flash", "sliding", "std-sliding"};

/* Whether the comma-separated list holds name. */
static bool has_token(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *s = list; *s;) {
    const char *end = strchr(s, ',');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    if (len == n && strncmp(s, name, n) == 0)
      return true;
    s = end ? end + 1 : s + len;
  }
  return false;
}

static int parse_list(const char *s, int64_t *out, int cap) {
  int n = 0;
  while (*s && n < cap) {
    char *end;
    out[n++] = strtoll(s, &end, 10);
    s = *end == ',' ? end + 1 : end;
    if (end == s && *s)
      break;
  }
  return n;
}

/* Visible (query, key) pairs of one head. */
static double pairs_of(const options *o, int64_t T, bool window) {
  double n = 0;
  for (int64_t i = 0; i < T; i++) {
    int64_t seen = o->causal || window ? i + 1 : T;
    if (window && seen > o->window)
      seen = o->window;
    n += (double)seen;
  }
  return n;
}

/* One configuration; prints a row. */
static int run(const options *o, int variant, int64_t T, int64_t D) {
  vkf_context_desc desc = {.device = o->device, .flags = o->profile ? VKF_CONTEXT_PROFILE : 0};
  vkf_context *ctx = NULL;
  if (vkf_context_create(&desc, &ctx) != VKF_OK) {
    fprintf(stderr, "no context\n");
    return 1;
  }
  int64_t sq[4] = {o->B, T, o->H, D}, skv[4] = {o->B, T, o->Hkv, D};
  vkf_tensor q, k, v, out, dq, dk, dv, dout, saved, ws = VKF_NO_TENSOR;
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, sq, &q));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, skv, &k));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, skv, &v));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, sq, &out));
  const bool std = variant == 0 || variant == 3, windowed = variant >= 2;
  vkf_attention_desc ad = {.variant = std ? VKF_ATTENTION_STANDARD : VKF_ATTENTION_FLASH,
                           .flags = o->causal ? VKF_ATTENTION_CAUSAL : 0,
                           .window = windowed ? (uint32_t)o->window : 0,
                           .out = out};
  vkf_attention_sizes sz;
  CHECK(vkf_attention_sizes_get(ctx, q, k, v, &ad, &sz));
  CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, sz.saved_ndim, sz.saved_shape, &saved));
  /* deterministic, varied inputs: a ramp through a sine */
  float *host = malloc((size_t)(o->B * T * o->H * D) * sizeof(float));
  if (!host)
    return 1;
  vkf_tensor in3[3] = {q, k, v};
  for (int t = 0; t < 3; t++) {
    int64_t n = o->B * T * (t ? o->Hkv : o->H) * D;
    for (int64_t i = 0; i < n; i++)
      host[i] = 0.5f * sinf(0.37f * (float)i + (float)t);
    CHECK(vkf_tensor_write(ctx, in3[t], host, (size_t)n * sizeof(float)));
  }
  if (!o->forward_only) {
    CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, sq, &dout));
    CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, sq, &dq));
    CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, skv, &dk));
    CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 4, skv, &dv));
    int64_t sw = (int64_t)sz.workspace_elements;
    CHECK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, &sw, &ws));
    CHECK(vkf_tensor_write(ctx, dout, host, (size_t)(o->B * T * o->H * D) * sizeof(float)));
    vkf_tensor g[3] = {dq, dk, dv};
    for (int t = 0; t < 3; t++)
      CHECK(vkf_tensor_fill(ctx, g[t], 0.0f));
  }
  free(host);
  double best_f = 1e30, best_fb = 1e30, best_cpu = 0;
  for (int it = -1; it < o->iters; it++) { /* it = -1: warm-up */
    CHECK(vkf_synchronize(ctx));
    if (it == 0 && o->profile)
      CHECK(vkf_profile_reset(ctx));
    double t0 = now_s(), c0 = cpu_s();
    CHECK(vkf_attention_forward(ctx, out, saved, q, k, v, &ad));
    CHECK(vkf_synchronize(ctx));
    double t1 = now_s();
    if (it >= 0 && t1 - t0 < best_f) {
      best_f = t1 - t0;
      if (o->forward_only)
        best_cpu = cpu_s() - c0;
    }
    if (o->forward_only)
      continue;
    CHECK(vkf_attention_backward(ctx, dq, dk, dv, dout, q, k, v, saved, ws, &ad));
    CHECK(vkf_synchronize(ctx));
    double t2 = now_s();
    if (it >= 0 && t2 - t0 < best_fb) {
      best_fb = t2 - t0;
      best_cpu = cpu_s() - c0;
    }
  }
  if (o->profile) { /* per op, averaged over the timed iterations */
    vkf_op_time times[32];
    uint32_t n = 0;
    CHECK(vkf_profile_read(ctx, times, 32, &n));
    for (uint32_t i = 0; i < n && i < 32; i++)
      fprintf(stderr, "  %-32s %10.3f ms per call (%u dispatches)\n", times[i].name,
              times[i].total_ms / o->iters, times[i].count);
  }
  vkf_memory_stats ms;
  CHECK(vkf_memory_stats_get(ctx, &ms));
  vkf_device_info info;
  CHECK(vkf_context_device(ctx, &info));
  double fl = pairs_of(o, T, windowed) * (double)o->B * (double)o->H * (double)D;
  printf("%-10s %-11s %6lld %4lld %10.2f %9.2f", info.backend == VKF_BACKEND_CPU ? "cpu" : "vulkan",
         variant_names[variant], (long long)T, (long long)D, best_f * 1e3, 4 * fl / best_f * 1e-9);
  if (o->forward_only)
    printf(" %10s %9s", "-", "-");
  else
    printf(" %10.2f %9.2f", best_fb * 1e3, 12 * fl / best_fb * 1e-9);
  printf(" %10.1f %8.3f\n", (double)ms.device_bytes_peak / (1 << 20), best_cpu);
  fflush(stdout);
  vkf_context_destroy(ctx);
  return 0;
}

int main(int argc, char **argv) {
  options o = {.variants = {true, true, true, false},
               .T = {512, 2048, 8192},
               .nT = 3,
               .D = {64, 128},
               .nD = 2,
               .B = 1,
               .H = 8,
               .Hkv = 8,
               .window = 256,
               .max_standard_T = 8192,
               .causal = 1,
               .iters = 3};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    bool takes = strcmp(a, "--forward-only") != 0 && strcmp(a, "--profile") != 0;
    if (takes && !val) {
      fprintf(stderr, "%s needs a value\n", a);
      return 2;
    }
    if (strcmp(a, "--device") == 0)
      o.device = val;
    else if (strcmp(a, "--variants") == 0)
      for (int v = 0; v < 4; v++)
        o.variants[v] = has_token(val, variant_names[v]);
    else if (strcmp(a, "--T") == 0)
      o.nT = parse_list(val, o.T, 16);
    else if (strcmp(a, "--D") == 0)
      o.nD = parse_list(val, o.D, 16);
    else if (strcmp(a, "--B") == 0)
      o.B = atoll(val);
    else if (strcmp(a, "--H") == 0)
      o.H = atoll(val);
    else if (strcmp(a, "--Hkv") == 0)
      o.Hkv = atoll(val);
    else if (strcmp(a, "--window") == 0)
      o.window = atoll(val);
    else if (strcmp(a, "--causal") == 0)
      o.causal = atoi(val);
    else if (strcmp(a, "--iters") == 0)
      o.iters = atoi(val);
    else if (strcmp(a, "--max-standard-T") == 0)
      o.max_standard_T = atoll(val);
    else if (strcmp(a, "--forward-only") == 0)
      o.forward_only = 1;
    else if (strcmp(a, "--profile") == 0)
      o.profile = 1;
    else {
      fprintf(stderr, "unknown option %s (see the comment at the top of bench_attn.c)\n", a);
      return 2;
    }
    i += takes;
  }
  if (o.iters < 1 || !(o.variants[0] || o.variants[1] || o.variants[2] || o.variants[3]) ||
      o.B < 1 || o.H < 1 || o.Hkv < 1 || o.H % o.Hkv || o.window < 1) {
    fprintf(stderr, "bad options\n");
    return 2;
  }
  printf("B %lld, Hq %lld, Hkv %lld, %s, window %lld (sliding), best of %d\n", (long long)o.B,
         (long long)o.H, (long long)o.Hkv, o.causal ? "causal" : "full", (long long)o.window,
         o.iters);
  printf("%-10s %-11s %6s %4s %10s %9s %10s %9s %10s %8s\n", "device", "variant", "T", "D",
         "fwd ms", "GFLOP/s", "f+b ms", "GFLOP/s", "peak MiB", "cpu s");
  for (int di = 0; di < o.nD; di++)
    for (int ti = 0; ti < o.nT; ti++)
      for (int v = 0; v < 4; v++) {
        if (!o.variants[v] || ((v == 0 || v == 3) && o.T[ti] > o.max_standard_T))
          continue;
        if (run(&o, v, o.T[ti], o.D[di]) != 0)
          return 1;
      }
  return 0;
}
