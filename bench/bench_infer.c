/* bench_infer: inference throughput of config (b) (d_model 384, 6 layers,
 * 6 heads, vocab 256, GPT-2 style): prefill tokens/s of a 256-token prompt
 * and decode tokens/s of 128 new tokens (greedy, KV cache), on the Vulkan
 * device and the CPU backend, with the PyTorch reference
 * (bench/torch_infer_bench.py, Debian's python3-torch, its fastest thread
 * setting) measured in the same run. Medians of --reps generations after a
 * warm-up; the decode step's host-side split (inputs, run + wait, logits
 * read-back, sampling) is printed per device, and batched decoding (n_seq
 * sequences per step) as aggregate tokens/s.
 *
 *   bench_infer [--quick] [--devices vulkan,cpu] [--no-torch] [--reps N]
 *               [--prompt N] [--new N] [--batch N] [--cpu-threads N] [--profile] */
#define _POSIX_C_SOURCE 200809L
#include <vkformer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct result {
  char device[256];
  double prefill, decode, ttft_ms, batched;
  double in_us, run_us, read_us, sample_us;
  uint64_t kv_bytes_per_token;
} result;

typedef struct opts {
  uint32_t prompt, fresh, batch, cpu_threads;
  int reps, profile;
} opts;

static const vkf_gpt_config config_b = {
    .vocab_size = 256, .d_model = 384, .n_layer = 6, .n_head = 6, .bias = 1};

static int cmp_op_time(const void *a, const void *b) {
  double x = ((const vkf_op_time *)a)->total_ms, y = ((const vkf_op_time *)b)->total_ms;
  return x > y ? -1 : x < y;
}

/* --profile: a separate context with VKF_CONTEXT_PROFILE; the prompt is
 * appended, then the per-op device time of `fresh` single-sequence decode
 * steps (vkf_session_step) is printed per step, largest first. The profiler
 * serialises dispatches, so the total exceeds an unprofiled step. */
static void profile_decode(const char *device, const opts *o) {
  vkf_context_desc cd = {
      .device = device, .cpu_threads = o->cpu_threads, .flags = VKF_CONTEXT_PROFILE};
  vkf_context *ctx;
  if (vkf_context_create(&cd, &ctx) != VKF_OK)
    return;
  vkf_gpt_config mc = config_b;
  mc.context_length = o->prompt + o->fresh;
  vkf_gpt *m = NULL;
  vkf_session *s = NULL;
  vkf_op_time t[64];
  uint32_t n = 0;
  uint32_t seq = 0;
  int32_t tok = 1;
  float *logits = malloc(mc.vocab_size * sizeof(float));
  int32_t *prompt = malloc(o->prompt * sizeof(int32_t));
  vkf_rng rng;
  vkf_rng_seed(&rng, 1);
  for (uint32_t i = 0; prompt && i < o->prompt; i++)
    prompt[i] = (int32_t)(vkf_rng_next(&rng) % 256);
  int ok = logits && prompt && vkf_gpt_create(ctx, &mc, 1, &m) == VKF_OK &&
           vkf_session_create(m, &(vkf_session_desc){0}, &s) == VKF_OK &&
           vkf_session_append(s, 0, prompt, o->prompt, logits) == VKF_OK &&
           vkf_session_step(s, &seq, &tok, 1, logits) == VKF_OK && /* records the step */
           vkf_profile_reset(ctx) == VKF_OK;
  for (uint32_t i = 1; ok && i < o->fresh; i++)
    ok = vkf_session_step(s, &seq, &tok, 1, logits) == VKF_OK;
  ok = ok && vkf_profile_read(ctx, t, 64, &n) == VKF_OK;
  if (ok) {
    n = n < 64 ? n : 64;
    qsort(t, n, sizeof(t[0]), cmp_op_time);
    double total = 0;
    for (uint32_t i = 0; i < n; i++)
      total += t[i].total_ms;
    const double steps = o->fresh - 1;
    printf("  decode step profile (%.0f steps): %-24s %8s %10s %6s\n", steps, "op", "calls",
           "us/step", "%");
    for (uint32_t i = 0; i < n; i++)
      printf("  %-58s %8.1f %10.1f %5.1f%%\n", t[i].name, t[i].count / steps,
             1e3 * t[i].total_ms / steps, 100.0 * t[i].total_ms / (total > 0 ? total : 1));
    printf("  %-58s %8s %10.1f\n", "total", "", 1e3 * total / steps);
  } else {
    fprintf(stderr, "bench_infer: profile: %s\n", vkf_context_error(ctx));
  }
  free(logits);
  free(prompt);
  vkf_session_destroy(s);
  vkf_gpt_destroy(m);
  vkf_context_destroy(ctx);
}

static int run_vkf(const char *device, const opts *o, result *res) {
  vkf_context_desc cd = {.device = device, .cpu_threads = o->cpu_threads};
  vkf_context *ctx;
  if (vkf_context_create(&cd, &ctx) != VKF_OK) {
    fprintf(stderr, "bench_infer: no context on %s\n", device);
    return 0;
  }
  vkf_device_info info;
  vkf_context_device(ctx, &info);
  snprintf(res->device, sizeof(res->device), "%s", info.name);
  if (strcmp(device, "cpu") != 0 && vkf_context_backend(ctx) != VKF_BACKEND_VULKAN) {
    fprintf(stderr, "bench_infer: no Vulkan device (got %s)\n", info.name);
    vkf_context_destroy(ctx);
    return 0;
  }
  vkf_gpt_config mc = config_b;
  mc.context_length = o->prompt + o->fresh;
  vkf_gpt *m = NULL;
  vkf_session *s = NULL;
  vkf_session_desc sd = {.n_seq = o->batch};
  int ok = vkf_gpt_create(ctx, &mc, 1, &m) == VKF_OK && vkf_session_create(m, &sd, &s) == VKF_OK;
  int32_t *prompt = malloc(o->prompt * sizeof(int32_t) * o->batch);
  vkf_rng rng;
  vkf_rng_seed(&rng, 1);
  for (uint32_t i = 0; i < o->prompt * o->batch; i++)
    prompt[i] = (int32_t)(vkf_rng_next(&rng) % 256);
  double pre[16], dec[16], ttft[16], in[16], run[16], rd[16], smp[16];
  vkf_session_info si = {0};
  if (ok)
    vkf_session_info_get(s, &si);
  res->kv_bytes_per_token = si.kv_bytes_per_token;
  for (int r = -1; ok && r < o->reps; r++) { /* r = -1: warm-up (records the programs) */
    vkf_generate_request q = {.prompt = prompt, .n_prompt = o->prompt, .max_new_tokens = o->fresh};
    vkf_session_stats st;
    ok = vkf_session_generate(s, &q, 1, NULL, NULL) == VKF_OK &&
         vkf_session_stats_get(s, &st) == VKF_OK && q.n_generated == o->fresh;
    if (ok && r >= 0) {
      pre[r] = st.prefill_tokens_per_second;
      dec[r] = st.decode_tokens_per_second;
      ttft[r] = st.time_to_first_token * 1e3;
      in[r] = st.step_input_us;
      run[r] = st.step_run_us;
      rd[r] = st.step_read_us;
      smp[r] = st.step_sample_us;
    }
  }
  if (ok) {
    res->prefill = median(pre, o->reps);
    res->decode = median(dec, o->reps);
    res->ttft_ms = median(ttft, o->reps);
    res->in_us = median(in, o->reps);
    res->run_us = median(run, o->reps);
    res->read_us = median(rd, o->reps);
    res->sample_us = median(smp, o->reps);
  }
  if (ok && o->batch > 1) { /* every sequence its own prompt, decoded together */
    vkf_generate_request q[16];
    memset(q, 0, sizeof(q));
    for (uint32_t b = 0; b < o->batch; b++) {
      q[b].prompt = prompt + (size_t)b * o->prompt;
      q[b].n_prompt = o->prompt;
      q[b].seq = b;
      q[b].max_new_tokens = o->fresh;
    }
    double bt[16];
    for (int r = -1; ok && r < o->reps; r++) {
      vkf_session_stats st;
      ok = vkf_session_generate(s, q, o->batch, NULL, NULL) == VKF_OK &&
           vkf_session_stats_get(s, &st) == VKF_OK;
      if (ok && r >= 0)
        bt[r] = st.decode_tokens_per_second;
    }
    if (ok)
      res->batched = median(bt, o->reps);
  }
  if (!ok)
    fprintf(stderr, "bench_infer: %s\n", vkf_context_error(ctx));
  free(prompt);
  vkf_session_destroy(s);
  vkf_gpt_destroy(m);
  vkf_context_destroy(ctx);
  return ok;
}

static int run_torch(const opts *o, double *prefill, double *decode, int *threads) {
  char cmd[2048];
  snprintf(cmd, sizeof(cmd),
           "OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 %s --d-model %u --layers %u --heads %u "
           "--vocab %u --prompt %u --new %u --reps %d --threads 1,2 2>/dev/null",
           VKF_SOURCE_DIR "/bench/torch_infer_bench.py", config_b.d_model, config_b.n_layer,
           config_b.n_head, config_b.vocab_size, o->prompt, o->fresh, o->reps);
  FILE *p = popen(cmd, "r");
  if (!p)
    return 0;
  char line[256];
  int got = 0;
  while (fgets(line, sizeof(line), p)) {
    got += sscanf(line, "prefill_tokens_per_s %lf", prefill) == 1;
    got += sscanf(line, "decode_tokens_per_s %lf", decode) == 1;
    got += sscanf(line, "threads %d", threads) == 1;
  }
  pclose(p);
  return got == 3;
}

int main(int argc, char **argv) {
  const char *devices = "vulkan,cpu";
  opts o = {.prompt = 256, .fresh = 128, .batch = 4, .reps = 3};
  int torch = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      o.prompt = 32;
      o.fresh = 16;
      o.reps = 1;
    } else if (!strcmp(argv[i], "--devices") && i + 1 < argc) {
      devices = argv[++i];
    } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
      o.reps = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) {
      o.prompt = (uint32_t)atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--new") && i + 1 < argc) {
      o.fresh = (uint32_t)atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--batch") && i + 1 < argc) {
      o.batch = (uint32_t)atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--cpu-threads") && i + 1 < argc) {
      o.cpu_threads = (uint32_t)atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--no-torch")) {
      torch = 0;
    } else if (!strcmp(argv[i], "--profile")) {
      o.profile = 1;
    } else {
      printf("usage: bench_infer [--quick] [--devices vulkan,cpu] [--no-torch] [--reps N] "
             "[--prompt N] [--new N] [--batch N] [--cpu-threads N] [--profile]\n");
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (o.reps < 1 || o.reps > 16 || o.prompt < 1 || o.fresh < 2 || o.batch < 1 || o.batch > 16) {
    fprintf(stderr, "bench_infer: 1 <= reps <= 16, prompt >= 1, new >= 2, 1 <= batch <= 16\n");
    return 2;
  }
  double tp = 0, td = 0;
  int tthreads = 0;
  if (torch && !run_torch(&o, &tp, &td, &tthreads))
    fprintf(stderr, "bench_infer: the PyTorch reference did not run\n");
  printf("config b: d_model 384, 6 layers, 6 heads, vocab 256; prompt %u, %u new tokens "
         "(greedy)\n",
         o.prompt, o.fresh);
  printf("%-40s %11s %11s %8s %8s %9s  %s\n", "device", "prefill/s", "decode/s", "TTFT ms",
         "vs torch", "batch x", "decode step us: inputs / run+wait / read / sample");
  if (td > 0)
    printf("%-40s %11.0f %11.1f %8s %8s %9s\n", tthreads == 1 ? "PyTorch (1 thread)" : "PyTorch",
           tp, td, "-", "1.00x", "-");
  char list[256];
  snprintf(list, sizeof(list), "%s", devices);
  char *save = NULL; /* strtok_r: the Vulkan loader may use strtok itself */
  for (char *dev = strtok_r(list, ",", &save); dev; dev = strtok_r(NULL, ",", &save)) {
    result r;
    memset(&r, 0, sizeof(r));
    if (!run_vkf(!strcmp(dev, "vulkan") ? "" : dev, &o, &r))
      continue;
    char ratio[32] = "-", batched[32] = "-";
    if (td > 0)
      snprintf(ratio, sizeof(ratio), "%.2fx", r.decode / td);
    if (o.batch > 1)
      snprintf(batched, sizeof(batched), "%u:%.0f", o.batch, r.batched);
    printf("%-40.40s %11.0f %11.1f %8.1f %8s %9s  %.0f / %.0f / %.0f / %.0f\n", r.device, r.prefill,
           r.decode, r.ttft_ms, ratio, batched, r.in_us, r.run_us, r.read_us, r.sample_us);
    if (o.profile)
      profile_decode(!strcmp(dev, "vulkan") ? "" : dev, &o);
    fflush(stdout);
  }
  return 0;
}
