/* Helpers shared by the train and generate samples: logging, time, number
 * parsing, prompt encoding and the text-generation loop. */
#ifndef VKF_SAMPLE_UTIL_H
#define VKF_SAMPLE_UTIL_H

#include <vkformer.h>

#include <stdbool.h>
#include <stdint.h>

/* The log callback's state: the program name for messages, whether info
 * messages are shown, and how many validation-layer messages arrived (a
 * sample run with VKF_VALIDATION=1 fails when there was any). */
typedef struct smp_log {
  const char *prog;
  bool verbose;
  unsigned validation_messages;
} smp_log;
void smp_log_fn(void *user, vkf_log_level level, const char *message);

/* Monotonic seconds. */
double smp_now(void);
/* "1:05", "1:02:03" */
void smp_format_time(double seconds, char *out, size_t cap);

/* Option values: print "prog: --name: why" to stderr and return false on a
 * malformed or out-of-range value. */
bool smp_parse_u32(const char *prog, const char *name, const char *text, uint32_t min, uint32_t max,
                   uint32_t *out);
bool smp_parse_u64(const char *prog, const char *name, const char *text, uint64_t *out);
bool smp_parse_float(const char *prog, const char *name, const char *text, double min, double max,
                     float *out);
bool smp_parse_double(const char *prog, const char *name, const char *text, double min, double max,
                      double *out);

/* Prints "prog: what: STATUS: context message" to stderr. */
void smp_report(const char *prog, vkf_context *ctx, vkf_status st, const char *what);

/* Prompt text to tokens. byte_level: the bytes of the text (an empty prompt
 * becomes one newline, the separator of the training text). Otherwise the
 * text is token ids separated by spaces or commas, each < vocab (empty:
 * token 0). The array is malloc'd; false (with a message) on a bad id. */
bool smp_encode_prompt(const char *prog, const char *text, bool byte_level, uint32_t vocab,
                       int32_t **tokens, uint32_t *n);
/* Writes one token to stdout: its byte, or " id" when not byte-level. */
void smp_print_token(int32_t token, bool byte_level);

/* Called with each generated token; return false to stop. */
typedef bool (*smp_token_fn)(void *user, int32_t token);

/* The sampling loop: continues `prompt` by up to n_new tokens, drawing
 * each from the model's next-token logits with `sample` and `rng` (the
 * repetition penalty looks at the prompt and every token made so far), and
 * hands each to on_token as it comes. *n_made: tokens made. This is the one
 * place that runs the model for generation: the KV-cache engine
 * (vkf_session), sliding to the last half context when the text outgrows
 * the model's context. */
vkf_status smp_generate(vkf_gpt *model, const int32_t *prompt, uint32_t n_prompt, uint32_t n_new,
                        const vkf_sample_desc *sample, vkf_rng *rng, smp_token_fn on_token,
                        void *user, uint32_t *n_made);

#endif
