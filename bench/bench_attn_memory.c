/* Memory of a training step against the sequence length, per attention
 * variant, from the graph planner (vkf_trainer_memory), and optionally the
 * time of real steps at one length:
 *
 *   bench_attn_memory [--T 1024,2048,4096,8192,16384] [--variants standard,flash,sliding]
 *                     [--window 256] [--run T] [--steps 2] [--device D]
 *
 * The model: d_model 64, 2 layers, 4 heads (head size 16), RMSNorm, SwiGLU,
 * RoPE, byte vocabulary (256), batch 1. The table is planned on the CPU
 * backend (the plan does not depend on the device; its arenas are reserved,
 * not touched). With --run, flash and sliding-window steps run at that
 * length on --device (default: the best device, lavapipe here): the time of
 * each step and its loss. */
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

static const char *names[3] = {"standard", "flash", "sliding"};
static const vkf_attn_kind kinds[3] = {VKF_ATTN_STANDARD, VKF_ATTN_FLASH, VKF_ATTN_SLIDING};

static vkf_gpt_config config_of(int v, uint32_t context, uint32_t window) {
  return (vkf_gpt_config){.vocab_size = 256,
                          .context_length = context,
                          .d_model = 64,
                          .n_layer = 2,
                          .n_head = 4,
                          .norm = VKF_NORM_RMSNORM,
                          .mlp = VKF_MLP_SWIGLU,
                          .positions = VKF_POS_ROPE,
                          .attention = kinds[v],
                          .sliding_window = window};
}

static int parse_list(const char *s, uint32_t *out, int cap) {
  int n = 0;
  while (*s && n < cap) {
    char *end;
    out[n++] = (uint32_t)strtoul(s, &end, 10);
    if (end == s)
      break;
    s = *end == ',' ? end + 1 : end;
  }
  return n;
}

/* A model and its trainer at length T on ctx; NULL trainer on failure
 * (message printed). */
static vkf_trainer *make(vkf_context *ctx, int v, uint32_t T, uint32_t window, vkf_gpt **model) {
  vkf_gpt_config cfg = config_of(v, T, window);
  *model = NULL;
  vkf_status st = vkf_gpt_create(ctx, &cfg, 1, model);
  vkf_trainer *t = NULL;
  vkf_train_desc d = {.batch = 1, .seq_len = T, .lr = 1e-3f, .schedule = VKF_LR_CONSTANT};
  if (st == VKF_OK)
    st = vkf_trainer_create(*model, &d, &t);
  if (st != VKF_OK) {
    printf("%-9s %6u  %s: %s\n", names[v], T, vkf_status_name(st), vkf_context_error(ctx));
    vkf_gpt_destroy(*model);
    *model = NULL;
  }
  return t;
}

int main(int argc, char **argv) {
  uint32_t Ts[16] = {1024, 2048, 4096, 8192, 16384}, window = 256, run_T = 0, steps = 2;
  int nT = 5;
  bool variants[3] = {true, true, true};
  const char *device = NULL;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *a = argv[i], *val = argv[i + 1];
    if (strcmp(a, "--T") == 0)
      nT = parse_list(val, Ts, 16);
    else if (strcmp(a, "--variants") == 0)
      for (int v = 0; v < 3; v++)
        variants[v] = strstr(val, names[v]) != NULL;
    else if (strcmp(a, "--window") == 0)
      window = (uint32_t)atoi(val);
    else if (strcmp(a, "--run") == 0)
      run_T = (uint32_t)atoi(val);
    else if (strcmp(a, "--steps") == 0)
      steps = (uint32_t)atoi(val);
    else if (strcmp(a, "--device") == 0)
      device = val;
    else {
      fprintf(stderr, "unknown option %s (see the comment at the top of bench_attn_memory.c)\n", a);
      return 2;
    }
  }
  if (window < 1 || steps < 1) {
    fprintf(stderr, "bad options\n");
    return 2;
  }

  vkf_context_desc cd = {.device = "cpu"};
  vkf_context *cpu = NULL;
  if (vkf_context_create(&cd, &cpu) != VKF_OK) {
    fprintf(stderr, "no CPU context\n");
    return 1;
  }
  printf("training step memory (planner), d_model 64, 2 layers, 4 heads, batch 1, window %u\n",
         window);
  printf("%-9s %6s %12s %12s %14s %12s\n", "variant", "T", "params MiB", "grads+opt", "activations",
         "total MiB");
  const double MiB = 1 << 20;
  for (int v = 0; v < 3; v++) {
    if (!variants[v])
      continue;
    for (int i = 0; i < nT; i++) {
      vkf_gpt *m;
      vkf_trainer *t = make(cpu, v, Ts[i], window, &m);
      if (!t)
        continue;
      vkf_train_memory mem;
      if (vkf_trainer_memory(t, &mem) == VKF_OK)
        printf("%-9s %6u %12.2f %12.2f %14.2f %12.2f\n", names[v], Ts[i], mem.params / MiB,
               (mem.grads + mem.optimizer) / MiB, mem.activations / MiB, mem.total / MiB);
      vkf_trainer_destroy(t);
      vkf_gpt_destroy(m);
    }
  }
  vkf_context_destroy(cpu);
  if (!run_T)
    return 0;

  vkf_context_desc rd = {.device = device};
  vkf_context *ctx = NULL;
  if (vkf_context_create(&rd, &ctx) != VKF_OK) {
    fprintf(stderr, "no context on %s\n", device ? device : "the default device");
    return 1;
  }
  vkf_device_info info;
  vkf_context_device(ctx, &info);
  printf("\ntraining steps at T %u on %s\n", run_T, info.name);
  int32_t *tok = malloc(2 * (size_t)run_T * sizeof(int32_t));
  if (!tok)
    return 1;
  for (uint32_t i = 0; i < 2 * run_T; i++) /* a repeating byte pattern */
    tok[i] = (int32_t)((i * 7 + i / 13) % 256);
  for (int v = 1; v < 3; v++) {
    if (!variants[v])
      continue;
    vkf_gpt *m;
    vkf_trainer *t = make(ctx, v, run_T, window, &m);
    if (!t)
      continue;
    vkf_train_memory mem;
    vkf_trainer_memory(t, &mem);
    for (uint32_t s = 0; s < steps; s++) {
      vkf_step_info si;
      double t0 = now_s();
      vkf_status st = vkf_trainer_step(t, tok, tok + run_T, &si);
      double t1 = now_s();
      if (st != VKF_OK) {
        printf("%-9s step %u: %s: %s\n", names[v], s + 1, vkf_status_name(st),
               vkf_context_error(ctx));
        break;
      }
      printf("%-9s step %u: %8.2f s, loss %.4f, planned %.1f MiB\n", names[v], s + 1, t1 - t0,
             si.loss, mem.total / MiB);
    }
    vkf_trainer_destroy(t);
    vkf_gpt_destroy(m);
  }
  free(tok);
  vkf_context_destroy(ctx);
  return 0;
}
