/* bench_train: GPT training throughput (tokens/s) and planned peak memory
 * on the Vulkan device and the CPU backend, with the PyTorch reference
 * (bench/torch_train_bench.py, all cores, OMP_WAIT_POLICY=PASSIVE) measured
 * in the same run as the baseline. Medians of several timed windows.
 *
 *   bench_train [--quick] [--configs ab] [--devices vulkan,cpu] [--no-torch]
 *               [--steps N] [--reps N] [--profile]
 *
 * --profile: a context with VKF_CONTEXT_PROFILE; after the timed windows,
 * the per-op times (host wall-clock on the CPU backend, GPU timestamps on
 * Vulkan) per training step, largest first.
 *
 * Config a: d_model 128, 4 layers, 4 heads, T 128, batch 8, vocab 256.
 * Config b: d_model 384, 6 layers, 6 heads, T 256, batch 4, vocab 256. */
#include <vkformer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct bcfg {
  const char *name;
  uint32_t d, layers, heads, seq, batch;
} bcfg;

static const bcfg configs[] = {{"a", 128, 4, 4, 128, 8}, {"b", 384, 6, 6, 256, 4}};

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int g_profile;

static int cmp_op_time(const void *a, const void *b) {
  double x = ((const vkf_op_time *)a)->total_ms, y = ((const vkf_op_time *)b)->total_ms;
  return x > y ? -1 : x < y;
}

/* Per-op times per step since the last reset, largest first. */
static void print_profile(vkf_context *ctx, const char *device, int steps) {
  vkf_op_time ops[128];
  uint32_t n = 0;
  if (vkf_profile_read(ctx, ops, 128, &n) != VKF_OK) {
    fprintf(stderr, "bench_train: %s\n", vkf_context_error(ctx));
    return;
  }
  qsort(ops, n, sizeof(ops[0]), cmp_op_time);
  double total = 0;
  for (uint32_t i = 0; i < n; i++)
    total += ops[i].total_ms;
  printf("  profile (%s), per step: %.2f ms in ops\n", device, total / steps);
  printf("  %-34s %8s %10s %6s\n", "op", "calls", "ms", "%");
  for (uint32_t i = 0; i < n; i++)
    printf("  %-34s %8.1f %10.3f %5.1f%%\n", ops[i].name, (double)ops[i].count / steps,
           ops[i].total_ms / steps, total > 0 ? 100.0 * ops[i].total_ms / total : 0.0);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* tokens/s of vkformer on `device`; 0 on failure (message printed) */
static double run_vkf(const char *device, const bcfg *c, int steps, int reps, double *peak_mib,
                      char *dev_name, size_t dev_len) {
  vkf_context_desc cd = {.device = device, .flags = g_profile ? VKF_CONTEXT_PROFILE : 0};
  vkf_context *ctx;
  if (vkf_context_create(&cd, &ctx) != VKF_OK) {
    fprintf(stderr, "bench_train: no context on %s\n", device);
    return 0;
  }
  vkf_device_info info;
  vkf_context_device(ctx, &info);
  snprintf(dev_name, dev_len, "%s", info.name);
  if (strcmp(device, "cpu") != 0 && vkf_context_backend(ctx) != VKF_BACKEND_VULKAN) {
    fprintf(stderr, "bench_train: no Vulkan device (got %s)\n", info.name);
    vkf_context_destroy(ctx);
    return 0;
  }
  vkf_gpt_config mc = {.vocab_size = 256,
                       .context_length = c->seq,
                       .d_model = c->d,
                       .n_layer = c->layers,
                       .n_head = c->heads,
                       .bias = 1};
  vkf_train_desc td = {.batch = c->batch,
                       .seq_len = c->seq,
                       .lr = 1e-4f,
                       .schedule = VKF_LR_CONSTANT,
                       .beta2 = 0.95f,
                       .weight_decay = 0.1f,
                       .grad_clip = 1.0f};
  vkf_gpt *m = NULL;
  vkf_trainer *t = NULL;
  double rate = 0;
  if (vkf_gpt_create(ctx, &mc, 1, &m) != VKF_OK || vkf_trainer_create(m, &td, &t) != VKF_OK) {
    fprintf(stderr, "bench_train: %s\n", vkf_context_error(ctx));
  } else {
    vkf_train_memory mem;
    vkf_trainer_memory(t, &mem);
    *peak_mib = (double)mem.total / (1 << 20);
    uint32_t n = c->batch * c->seq;
    int32_t *in = malloc(n * sizeof(int32_t)), *tg = malloc(n * sizeof(int32_t));
    vkf_rng rng;
    vkf_rng_seed(&rng, 1);
    for (uint32_t i = 0; i < n; i++) {
      in[i] = (int32_t)(vkf_rng_next(&rng) % 256);
      tg[i] = (int32_t)(vkf_rng_next(&rng) % 256);
    }
    vkf_step_info si;
    int ok = 1;
    for (int w = 0; w < 2 && ok; w++)
      ok = vkf_trainer_step(t, in, tg, &si) == VKF_OK;
    double rates[16];
    if (g_profile)
      vkf_profile_reset(ctx);
    for (int r = 0; r < reps && ok; r++) {
      double t0 = now();
      for (int s = 0; s < steps && ok; s++)
        ok = vkf_trainer_step(t, in, tg, &si) == VKF_OK;
      rates[r] = (double)n * steps / (now() - t0);
    }
    if (!ok)
      fprintf(stderr, "bench_train: step failed: %s\n", vkf_context_error(ctx));
    else
      rate = median(rates, reps);
    if (ok && g_profile)
      print_profile(ctx, dev_name, steps * reps);
    free(in);
    free(tg);
  }
  vkf_trainer_destroy(t);
  vkf_gpt_destroy(m);
  vkf_context_destroy(ctx);
  return rate;
}

static double run_torch(const char *self, const bcfg *c, int steps, int reps) {
  char script[1024];
  const char *slash = strrchr(self, '/');
  /* the script lives in the source tree; the build records where */
  snprintf(script, sizeof(script), "%s", VKF_SOURCE_DIR "/bench/torch_train_bench.py");
  (void)slash;
  char cmd[2048];
  snprintf(cmd, sizeof(cmd),
           "OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 %s --d-model %u --layers %u --heads %u "
           "--seq %u --batch %u --steps %d --reps %d 2>/dev/null",
           script, c->d, c->layers, c->heads, c->seq, c->batch, steps, reps);
  FILE *p = popen(cmd, "r");
  if (!p)
    return 0;
  char line[256];
  double rate = 0;
  while (fgets(line, sizeof(line), p))
    if (sscanf(line, "tokens_per_s %lf", &rate) == 1)
      break;
  pclose(p);
  return rate;
}

int main(int argc, char **argv) {
  const char *which = "ab", *devices = "vulkan,cpu";
  int steps = 5, reps = 3, torch = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      steps = 2;
      reps = 1;
      which = "a";
    } else if (!strcmp(argv[i], "--configs") && i + 1 < argc) {
      which = argv[++i];
    } else if (!strcmp(argv[i], "--devices") && i + 1 < argc) {
      devices = argv[++i];
    } else if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
      steps = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--no-torch")) {
      torch = 0;
    } else if (!strcmp(argv[i], "--profile")) {
      g_profile = 1;
    } else {
      printf("usage: bench_train [--quick] [--configs ab] [--devices vulkan,cpu] [--no-torch] "
             "[--steps N] [--reps N] [--profile]\n");
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (steps < 1 || reps < 1 || reps > 16) {
    fprintf(stderr, "bench_train: steps >= 1, 1 <= reps <= 16\n");
    return 2;
  }
  printf("%-6s %-40s %12s %10s %12s %8s\n", "config", "device", "tokens/s", "peak MiB",
         "torch tok/s", "ratio");
  for (size_t k = 0; k < sizeof(configs) / sizeof(configs[0]); k++) {
    const bcfg *c = &configs[k];
    if (!strchr(which, c->name[0]))
      continue;
    double base = torch ? run_torch(argv[0], c, steps, reps) : 0;
    char list[256];
    snprintf(list, sizeof(list), "%s", devices);
    char *save = NULL; /* strtok_r: drivers call strtok while we iterate */
    for (char *dev = strtok_r(list, ",", &save); dev; dev = strtok_r(NULL, ",", &save)) {
      double peak = 0;
      char name[256] = "";
      double rate =
          run_vkf(!strcmp(dev, "vulkan") ? "" : dev, c, steps, reps, &peak, name, sizeof(name));
      char ratio[32] = "-";
      if (base > 0 && rate > 0)
        snprintf(ratio, sizeof(ratio), "%.2fx", rate / base);
      printf("%-6s %-40.40s %12.0f %10.1f %12.0f %8s\n", c->name, name, rate, peak, base, ratio);
      fflush(stdout);
    }
  }
  return 0;
}
