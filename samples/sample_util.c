/* Helpers shared by the train and generate samples. */
#include "sample_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void smp_log_fn(void *user, vkf_log_level level, const char *message) {
  smp_log *log = user;
  if (level == VKF_LOG_VALIDATION) {
    log->validation_messages++;
    fprintf(stderr, "%s: validation: %s\n", log->prog, message);
  } else if (level <= VKF_LOG_WARN) {
    fprintf(stderr, "%s: vkformer: %s\n", log->prog, message);
  } else if (log->verbose) {
    fprintf(stderr, "%s: vkformer: %s\n", log->prog, message);
  }
}

double smp_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void smp_format_time(double seconds, char *out, size_t cap) {
  if (!(seconds >= 0) || seconds > 1e9) {
    snprintf(out, cap, "?");
    return;
  }
  unsigned long s = (unsigned long)(seconds + 0.5);
  if (s >= 3600)
    snprintf(out, cap, "%lu:%02lu:%02lu", s / 3600, s / 60 % 60, s % 60);
  else
    snprintf(out, cap, "%lu:%02lu", s / 60, s % 60);
}

bool smp_parse_u64(const char *prog, const char *name, const char *text, uint64_t *out) {
  char *end;
  errno = 0;
  if (!text || !*text || *text == '-') {
    fprintf(stderr, "%s: --%s: expected a non-negative integer, got \"%s\"\n", prog, name,
            text ? text : "");
    return false;
  }
  unsigned long long v = strtoull(text, &end, 10);
  if (errno || *end) {
    fprintf(stderr, "%s: --%s: expected a non-negative integer, got \"%s\"\n", prog, name, text);
    return false;
  }
  *out = v;
  return true;
}

bool smp_parse_u32(const char *prog, const char *name, const char *text, uint32_t min, uint32_t max,
                   uint32_t *out) {
  uint64_t v;
  if (!smp_parse_u64(prog, name, text, &v))
    return false;
  if (v < min || v > max) {
    fprintf(stderr, "%s: --%s: %s is outside [%u, %u]\n", prog, name, text, min, max);
    return false;
  }
  *out = (uint32_t)v;
  return true;
}

bool smp_parse_double(const char *prog, const char *name, const char *text, double min, double max,
                      double *out) {
  char *end;
  errno = 0;
  double v = text && *text ? strtod(text, &end) : NAN;
  if (!text || !*text || errno || *end || !isfinite(v)) {
    fprintf(stderr, "%s: --%s: expected a number, got \"%s\"\n", prog, name, text ? text : "");
    return false;
  }
  if (v < min || v > max) {
    fprintf(stderr, "%s: --%s: %s is outside [%g, %g]\n", prog, name, text, min, max);
    return false;
  }
  *out = v;
  return true;
}

bool smp_parse_float(const char *prog, const char *name, const char *text, double min, double max,
                     float *out) {
  double v;
  if (!smp_parse_double(prog, name, text, min, max, &v))
    return false;
  *out = (float)v;
  return true;
}

void smp_report(const char *prog, vkf_context *ctx, vkf_status st, const char *what) {
  const char *msg = ctx ? vkf_context_error(ctx) : "";
  if (!msg || !*msg)
    msg = vkf_status_string(st);
  fprintf(stderr, "%s: %s: %s: %s\n", prog, what, vkf_status_name(st), msg);
}

bool smp_encode_prompt(const char *prog, const char *text, bool byte_level, uint32_t vocab,
                       int32_t **tokens, uint32_t *n) {
  size_t len = strlen(text);
  int32_t *t = malloc((len + 1) * sizeof(int32_t));
  if (!t) {
    fprintf(stderr, "%s: out of memory\n", prog);
    return false;
  }
  uint32_t k = 0;
  if (byte_level) {
    for (size_t i = 0; i < len; i++)
      t[k++] = (unsigned char)text[i];
    if (k == 0)
      t[k++] = '\n';
  } else {
    const char *p = text;
    for (;;) {
      while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
        p++;
      if (!*p)
        break;
      char *end;
      errno = 0;
      long v = strtol(p, &end, 10);
      if (end == p || errno || v < 0 || (uint64_t)v >= vocab) {
        fprintf(stderr,
                "%s: --prompt: the model is not byte-level (vocabulary %u): the prompt must be "
                "token ids in [0, %u) separated by spaces or commas, not \"%s\"\n",
                prog, vocab, vocab, text);
        free(t);
        return false;
      }
      t[k++] = (int32_t)v;
      p = end;
    }
    if (k == 0)
      t[k++] = 0;
  }
  *tokens = t;
  *n = k;
  return true;
}

void smp_print_token(int32_t token, bool byte_level) {
  if (byte_level)
    fputc((unsigned char)token, stdout);
  else
    printf(" %d", token);
  fflush(stdout);
}

typedef struct gen_cb {
  smp_token_fn on_token;
  void *user;
  int32_t *history; /* the whole text so far, for re-prefilling */
  uint32_t n;
  uint32_t made;
} gen_cb;

static int gen_token(void *user, const vkf_token_event *ev) {
  gen_cb *g = user;
  g->history[g->n++] = ev->token;
  g->made++;
  return g->on_token && !g->on_token(g->user, ev->token) ? 1 : 0;
}

/* Samples with the KV-cache engine (vkf_session): the prompt is prefilled
 * once, then one decode step per token. A text longer than the model's
 * context slides: when the sequence is full, it restarts from the last half
 * context of the text (as a whole-context forward over the last
 * context_length tokens would see it, up to that window's size). */
vkf_status smp_generate(vkf_gpt *model, const int32_t *prompt, uint32_t n_prompt, uint32_t n_new,
                        const vkf_sample_desc *sample, vkf_rng *rng, smp_token_fn on_token,
                        void *user, uint32_t *n_made) {
  *n_made = 0;
  const uint32_t ctx_len = vkf_gpt_config_of(model)->context_length;
  vkf_session *s = NULL;
  vkf_session_desc sd = {0};
  gen_cb g = {on_token, user, malloc(((size_t)n_prompt + n_new) * sizeof(int32_t)), 0, 0};
  vkf_status st = g.history ? vkf_session_create(model, &sd, &s) : VKF_ERROR_OUT_OF_HOST_MEMORY;
  if (st == VKF_OK) {
    memcpy(g.history, prompt, (size_t)n_prompt * sizeof(int32_t));
    g.n = n_prompt;
  }
  /* the prompt's last context_length tokens (at most), then generation */
  uint32_t from = n_prompt > ctx_len ? n_prompt - ctx_len : 0;
  while (st == VKF_OK && g.made < n_new) {
    vkf_generate_request rq = {
        .prompt = g.history + from,
        .n_prompt = g.n - from,
        .seq = 0,
        .sample = *sample,
        .seed = vkf_rng_next(rng),
        .max_new_tokens = n_new - g.made,
    };
    st = vkf_session_reset(s, 0);
    if (st == VKF_OK)
      st = vkf_session_generate(s, &rq, 1, gen_token, &g);
    if (st != VKF_OK || rq.stop != VKF_STOP_FULL)
      break;
    from = g.n - ctx_len / 2; /* slide: keep the last half context */
  }
  *n_made = g.made;
  vkf_session_destroy(s);
  free(g.history);
  return st;
}
