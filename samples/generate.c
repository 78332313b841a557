/* generate: continues a prompt with a GPT trained by `train` (its checkpoint)
 * or any model directory with config.json and model.safetensors, printing
 * the tokens as they come. */
#include "sample_util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "generate"

static void usage(FILE *f) {
  fprintf(
      f, "usage: generate [options]\n"
         "Continues a prompt with a trained GPT and prints the text as it comes.\n"
         "\n"
         "  --checkpoint FILE     a checkpoint written by train (default "
         "out/kjv/checkpoint.safetensors)\n"
         "  --model DIR           or DIR/config.json + DIR/model.safetensors (Hugging Face names)\n"
         "  --prompt TEXT         what to continue (\"And it came to pass\"); for a model whose\n"
         "                        vocabulary is not 256 bytes (or with --ids): token ids\n"
         "  --tokens N            tokens to generate (500)\n"
         "  --temperature F       0 = greedy (0.7)\n"
         "  --top-k N             keep the k most likely tokens (0 = off)\n"
         "  --top-p F             keep the smallest set with this much probability (0.95)\n"
         "  --repetition-penalty F  > 1 discourages tokens already in the text (1 = off)\n"
         "  --seed N              sampling seed (1)\n"
         "  --ids                 the prompt and the output are token ids, not bytes\n"
         "  --device NAME         \"cpu\", an index or part of a name (default: the best)\n"
         "  --threads N           CPU backend worker threads\n"
         "  --verbose             show vkformer's info messages\n");
}

static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
  signal(SIGINT, SIG_DFL);
}

static bool on_token(void *user, int32_t token) {
  smp_print_token(token, *(bool *)user);
  return !interrupted;
}

int main(int argc, char **argv) {
  const char *checkpoint = NULL, *model_dir = NULL, *prompt = NULL, *device = NULL;
  uint32_t n_tokens = 500, top_k = 0, threads = 0;
  float temperature = 0.7f, top_p = 0.95f, rep = 1.0f;
  uint64_t seed = 1;
  bool ids = false, verbose = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--ids")) {
      ids = true;
      continue;
    }
    if (!strcmp(a, "--verbose")) {
      verbose = true;
      continue;
    }
    static const char *const with_value[] = {
        "--checkpoint",  "--model",  "--prompt", "--tokens",
        "--temperature", "--top-k",  "--top-p",  "--repetition-penalty",
        "--seed",        "--device", "--threads"};
    bool known = false;
    for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
      known |= !strcmp(a, with_value[k]);
    if (!known) {
      fprintf(stderr, PROG ": unknown argument \"%s\" (see --help)\n", a);
      return 2;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, PROG ": %s needs a value\n", a);
      return 2;
    }
    const char *v = argv[++i], *name = a + 2;
    bool ok = true;
    if (!strcmp(name, "checkpoint"))
      checkpoint = v;
    else if (!strcmp(name, "model"))
      model_dir = v;
    else if (!strcmp(name, "prompt"))
      prompt = v;
    else if (!strcmp(name, "device"))
      device = v;
    else if (!strcmp(name, "tokens"))
      ok = smp_parse_u32(PROG, name, v, 0, 1u << 24, &n_tokens);
    else if (!strcmp(name, "top-k"))
      ok = smp_parse_u32(PROG, name, v, 0, INT32_MAX, &top_k);
    else if (!strcmp(name, "threads"))
      ok = smp_parse_u32(PROG, name, v, 1, 1024, &threads);
    else if (!strcmp(name, "temperature"))
      ok = smp_parse_float(PROG, name, v, 0, 100, &temperature);
    else if (!strcmp(name, "top-p"))
      ok = smp_parse_float(PROG, name, v, 0, 1, &top_p);
    else if (!strcmp(name, "repetition-penalty"))
      ok = smp_parse_float(PROG, name, v, 1e-3, 1e3, &rep);
    else if (!strcmp(name, "seed"))
      ok = smp_parse_u64(PROG, name, v, &seed);
    if (!ok)
      return 2;
  }
  if (checkpoint && model_dir) {
    fprintf(stderr, PROG ": give --checkpoint or --model, not both\n");
    return 2;
  }
  if (!checkpoint && !model_dir)
    checkpoint = "out/kjv/checkpoint.safetensors";

  smp_log log = {.prog = PROG, .verbose = verbose};
  vkf_context_desc cd = {.device = device,
                         .cpu_threads = threads,
                         .log_fn = smp_log_fn,
                         .log_user = &log,
                         .log_level = verbose ? VKF_LOG_DEBUG : VKF_LOG_INFO};
  vkf_context *ctx = NULL;
  vkf_status st = vkf_context_create(&cd, &ctx);
  if (st != VKF_OK) {
    fprintf(stderr, PROG ": cannot create a context on %s: %s\n",
            device ? device : "the default device", vkf_status_name(st));
    return 1;
  }
  int rc = 1;
  vkf_gpt *model = NULL;
  int32_t *tokens = NULL;
  if (checkpoint) {
    st = vkf_gpt_load_checkpoint(ctx, checkpoint, &model);
  } else {
    char cp[4096], wp[4096];
    snprintf(cp, sizeof(cp), "%s/config.json", model_dir);
    snprintf(wp, sizeof(wp), "%s/model.safetensors", model_dir);
    st = vkf_gpt_load(ctx, cp, wp, &model);
  }
  if (st != VKF_OK) {
    smp_report(PROG, ctx, st, checkpoint ? "loading the checkpoint" : "loading the model");
    if (checkpoint && !strcmp(checkpoint, "out/kjv/checkpoint.safetensors"))
      fprintf(stderr, PROG ": (the default is what `train` with no options writes; see --help)\n");
    goto done;
  }
  const vkf_gpt_config *cfg = vkf_gpt_config_of(model);
  bool byte_level = !ids && cfg->vocab_size == 256;
  const char *text = prompt ? prompt : byte_level ? "And it came to pass" : "";
  uint32_t n_prompt;
  if (!smp_encode_prompt(PROG, text, byte_level, cfg->vocab_size, &tokens, &n_prompt))
    goto done;
  vkf_sample_desc sd = {
      .temperature = temperature, .top_k = top_k, .top_p = top_p, .repetition_penalty = rep};
  signal(SIGINT, on_sigint);
  if (byte_level)
    fwrite(text, 1, strlen(text), stdout);
  else
    for (uint32_t i = 0; i < n_prompt; i++)
      smp_print_token(tokens[i], false);
  fflush(stdout);
  vkf_rng rng;
  vkf_rng_seed(&rng, seed);
  uint32_t made = 0;
  double t0 = smp_now();
  st = smp_generate(model, tokens, n_prompt, n_tokens, &sd, &rng, on_token, &byte_level, &made);
  double dt = smp_now() - t0;
  printf("\n");
  fflush(stdout);
  if (st != VKF_OK) {
    smp_report(PROG, ctx, st, "generating");
    goto done;
  }
  vkf_device_info dev;
  vkf_context_device(ctx, &dev);
  fprintf(stderr, "%u tokens in %.2f s: %.1f tokens/s on %s\n", made, dt, made / (dt > 0 ? dt : 1),
          dev.name);
  rc = interrupted ? 130 : 0;

done:
  free(tokens);
  vkf_gpt_destroy(model);
  vkf_context_destroy(ctx);
  if (log.validation_messages) {
    fprintf(stderr, PROG ": %u validation-layer message(s)\n", log.validation_messages);
    if (rc == 0)
      rc = 1;
  }
  return rc;
}
