/* chat: a byte-level chat loop on the inference session API, the way an
 * application uses it.
 *
 *   chat CHECKPOINT [options]          a trainer checkpoint (safetensors)
 *   chat --config config.json --weights model.safetensors [options]
 *   chat --random [options]            an untrained model (to try the API)
 *
 * Options: --device NAME, --temperature T (0 = greedy), --top-k K,
 * --top-p P, --penalty R, --seed S, --max-new N, --stop-byte B (a byte that
 * ends a reply, e.g. 10 for a newline; default none), --max-seq N.
 *
 * Each line read from stdin is appended to the conversation (the session
 * keeps the whole dialogue in its KV cache, VKF_GENERATE_CONTINUE) and the
 * reply is generated on a worker thread, printed token by token from the
 * callback as it is sampled. The main thread waits for it and turns Ctrl-C
 * into vkf_session_cancel(), which stops the reply within one step (a second
 * Ctrl-C on an empty prompt quits). After each reply: tokens, time to first
 * token, tokens/s. */
#define _POSIX_C_SOURCE 200809L
#include <vkformer.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
}

typedef struct reply {
  vkf_session *session;
  vkf_generate_request req;
  vkf_status status;
  atomic_int done;
} reply;

/* Runs on the worker thread: print each byte as soon as it is sampled. */
static int on_token(void *user, const vkf_token_event *ev) {
  (void)user;
  unsigned char c = (unsigned char)ev->token;
  if (c == '\n' || c == '\t' || (c >= 32 && c < 127))
    putchar(c);
  else
    printf("\\x%02x", c);
  fflush(stdout);
  return 0;
}

static void *generate_reply(void *arg) {
  reply *r = arg;
  r->status = vkf_session_generate(r->session, &r->req, 1, on_token, NULL);
  atomic_store(&r->done, 1);
  return NULL;
}

static void usage(void) {
  fprintf(stderr, "usage: chat CHECKPOINT | --config config.json --weights model.safetensors | "
                  "--random\n"
                  "       [--device NAME] [--temperature T] [--top-k K] [--top-p P] "
                  "[--penalty R]\n"
                  "       [--seed S] [--max-new N] [--stop-byte B] [--max-seq N]\n");
}

int main(int argc, char **argv) {
  const char *checkpoint = NULL, *config = NULL, *weights = NULL, *device = NULL;
  int random_model = 0, stop_byte = -1;
  vkf_sample_desc sample = {.temperature = 0.8f, .top_k = 40};
  uint64_t seed = 1;
  uint32_t max_new = 200, max_seq = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--random"))
      random_model = 1;
    else if (!strcmp(a, "--config") && v)
      config = argv[++i];
    else if (!strcmp(a, "--weights") && v)
      weights = argv[++i];
    else if (!strcmp(a, "--device") && v)
      device = argv[++i];
    else if (!strcmp(a, "--temperature") && v)
      sample.temperature = strtof(argv[++i], NULL);
    else if (!strcmp(a, "--top-k") && v)
      sample.top_k = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--top-p") && v)
      sample.top_p = strtof(argv[++i], NULL);
    else if (!strcmp(a, "--penalty") && v)
      sample.repetition_penalty = strtof(argv[++i], NULL);
    else if (!strcmp(a, "--seed") && v)
      seed = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(a, "--max-new") && v)
      max_new = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--max-seq") && v)
      max_seq = (uint32_t)strtoul(argv[++i], NULL, 10);
    else if (!strcmp(a, "--stop-byte") && v)
      stop_byte = atoi(argv[++i]);
    else if (a[0] != '-' && !checkpoint)
      checkpoint = a;
    else {
      usage();
      return 2;
    }
  }
  if (!checkpoint && !random_model && !(config && weights)) {
    usage();
    return 2;
  }

  vkf_context_desc cd = {.device = device};
  vkf_context *ctx = NULL;
  vkf_status st = vkf_context_create(&cd, &ctx);
  if (st != VKF_OK) {
    fprintf(stderr, "chat: no context: %s\n", vkf_status_name(st));
    return 1;
  }
  vkf_device_info info;
  vkf_context_device(ctx, &info);
  vkf_session_desc sd = {.max_seq = max_seq};
  vkf_session *s = NULL;
  vkf_gpt *model = NULL; /* ours when not loaded through the session */
  if (checkpoint) {
    st = vkf_session_open(ctx, checkpoint, &sd, &s);
  } else {
    if (random_model) {
      vkf_gpt_config mc = {.vocab_size = 256,
                           .context_length = 512,
                           .d_model = 128,
                           .n_layer = 4,
                           .n_head = 4,
                           .bias = 1};
      st = vkf_gpt_create(ctx, &mc, seed, &model);
    } else {
      st = vkf_gpt_load(ctx, config, weights, &model);
    }
    if (st == VKF_OK)
      st = vkf_session_create(model, &sd, &s);
  }
  if (st != VKF_OK) {
    fprintf(stderr, "chat: %s: %s\n", vkf_status_name(st), vkf_context_error(ctx));
    vkf_gpt_destroy(model);
    vkf_context_destroy(ctx);
    return 1;
  }
  vkf_session_info si;
  vkf_session_info_get(s, &si);
  if (si.vocab_size != 256)
    fprintf(stderr, "chat: note: vocabulary of %u ids; bytes are used as ids\n", si.vocab_size);
  fprintf(stderr,
          "chat on %s: %u positions, KV cache %.1f KiB per token (%s attention). "
          "Ctrl-C stops a reply; Ctrl-D quits.\n",
          info.name, si.max_seq, si.kv_bytes_per_token / 1024.0, si.attention);

  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, NULL);

  char line[4096];
  int32_t ids[4096], stop = stop_byte;
  int turn = 0;
  for (;;) {
    fputs("> ", stdout);
    fflush(stdout);
    interrupted = 0;
    if (!fgets(line, sizeof(line), stdin))
      break;
    uint32_t n = 0;
    for (const char *c = line; *c; c++)
      ids[n++] = (unsigned char)*c;
    if (n == 0)
      continue;
    reply r = {.session = s};
    r.req = (vkf_generate_request){.prompt = ids,
                                   .n_prompt = n,
                                   .flags = turn ? VKF_GENERATE_CONTINUE : 0,
                                   .sample = sample,
                                   .seed = seed + (uint64_t)turn,
                                   .max_new_tokens = max_new,
                                   .stop_tokens = stop >= 0 ? &stop : NULL,
                                   .n_stop_tokens = stop >= 0 ? 1 : 0};
    if (vkf_session_length(s, 0) + n > si.max_seq) { /* the dialogue is full: start over */
      fprintf(stderr, "[context full: starting a new conversation]\n");
      r.req.flags = 0;
    }
    atomic_init(&r.done, 0);
    pthread_t worker;
    if (pthread_create(&worker, NULL, generate_reply, &r) != 0) {
      fprintf(stderr, "chat: cannot start a thread\n");
      break;
    }
    /* the application's thread stays responsive: it could drive a UI here */
    while (!atomic_load(&r.done)) {
      if (interrupted) {
        vkf_session_cancel(s); /* safe from any thread; stops within one step */
        interrupted = 0;
      }
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    pthread_join(worker, NULL);
    vkf_session_stats stats;
    vkf_session_stats_get(s, &stats);
    static const char *why[] = {"",         "stop byte", "max tokens", "context full",
                                "callback", "cancelled"};
    if (r.status != VKF_OK && r.status != VKF_ERROR_CANCELLED) {
      fprintf(stderr, "\nchat: %s: %s\n", vkf_status_name(r.status), vkf_context_error(ctx));
      break;
    }
    fprintf(stderr, "\n[%u tokens, %s; first token after %.1f ms, %.1f tokens/s]\n",
            r.req.n_generated, why[r.req.stop], stats.time_to_first_token * 1e3,
            stats.decode_tokens_per_second);
    turn++;
  }
  vkf_session_destroy(s);
  vkf_gpt_destroy(model);
  vkf_context_destroy(ctx);
  return 0;
}
