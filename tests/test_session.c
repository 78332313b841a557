/* Inference sessions (infer family): incremental decoding against full
 * forwards, batching, forks, generation (stops, reproducibility, streaming,
 * cancellation) and every error, on the CPU backend and on Vulkan.
 *
 * Tolerance of decoding against the full forward (vkf_predictor_next over
 * the whole sequence): |got - ref| <= 1e-5 + 1e-4 |ref| per logit. Both run
 * the same kernels in float32 on the same weights; they differ in shapes
 * (a 1-row matrix product against a T-row one, attention over the cache's
 * rows with kv_lens against a T x T causal block, a prompt in padded
 * pieces), which changes summation orders: a few ulps per dot product of
 * length <= 4 d_model, through 2 layers, on logits of magnitude ~0.1 to 1.
 * Measured: at most ~1e-7 on both backends (Vulkan often 0).
 *
 * Linear attention ("linear": a recurrent state instead of a cache) is held
 * to the same bound. The full forward runs the chunked kernel (64-token
 * chunks: explicit phi(q) phi(k)^T products inside a chunk, the running
 * state across), decoding adds one token's phi(k) (v, 1)^T to the state
 * and reads it, and prompt pieces continue the chunked kernel from the
 * state: the same sums in other orders, S and z accumulating up to ~200
 * terms of similar sign (relative error ~n ulps), divided once per head
 * (den = phi(q).z + 1e-6 > 0, well conditioned). Measured worst: printed
 * at the end of each backend's run ("worst |got - ref|"). */
#include "test_util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ATOL 1e-5
#define RTOL 1e-4

enum {
  GPT2,
  LLAMA_GQA,
  LLAMA_MQA,
  SLIDING_RING,
  SLIDING_FULL,
  FLASH,
  LINEAR_GPT2,        /* linear attention, GPT-2 layout (learned positions, fused QKV) */
  LINEAR_GQA,         /* linear attention, Llama layout (RoPE, 2 kv heads of 4) */
  LINEAR_MQA_LEARNED, /* linear attention, learned positions, 1 kv head */
};

static bool is_linear(int kind) {
  return kind >= LINEAR_GPT2;
}

static double worst_abs; /* largest |got - ref| seen by expect_close */

static vkf_gpt_config config_of(int kind) {
  vkf_gpt_config c = {
      .vocab_size = 61, .context_length = 40, .d_model = 48, .n_layer = 2, .n_head = 4, .bias = 1};
  if (is_linear(kind))
    c.attention = VKF_ATTN_LINEAR;
  if (kind == LINEAR_MQA_LEARNED)
    c.n_kv_head = 1;
  if (kind == LLAMA_GQA || kind == LLAMA_MQA || kind == SLIDING_RING || kind == SLIDING_FULL ||
      kind == LINEAR_GQA) {
    c.n_kv_head = kind == LLAMA_MQA ? 1 : 2;
    c.norm = VKF_NORM_RMSNORM;
    c.mlp = VKF_MLP_SWIGLU;
    c.positions = VKF_POS_ROPE;
    c.bias = 0;
    c.untied_head = 1;
  }
  if (kind == SLIDING_RING || kind == SLIDING_FULL) {
    c.attention = VKF_ATTN_SLIDING;
    c.sliding_window = kind == SLIDING_RING ? 6 : 36; /* 36 + chunk 4: no ring */
  }
  if (kind == FLASH)
    c.attention = VKF_ATTN_FLASH;
  return c;
}

static const char *kind_name(int kind) {
  static const char *n[] = {"gpt2",         "llama-gqa",    "llama-mqa",
                            "sliding-ring", "sliding-full", "flash",
                            "linear-gpt2",  "linear-gqa",   "linear-mqa-learned"};
  return n[kind];
}

static void tokens_of(int32_t *t, uint32_t n, uint32_t V, uint64_t seed) {
  vkf_rng r;
  vkf_rng_seed(&r, seed);
  for (uint32_t i = 0; i < n; i++)
    t[i] = (int32_t)(vkf_rng_next(&r) % V);
}

static void expect_close(const char *what, const float *got, const float *ref, uint32_t n) {
  assert_int_equal(vkft_compare_f(what, got, ref, n, ATOL, RTOL), 0);
  for (uint32_t i = 0; i < n; i++)
    if (fabs((double)got[i] - ref[i]) > worst_abs)
      worst_abs = fabs((double)got[i] - ref[i]);
}

/* Recurrent state of one sequence, all layers, in bytes. */
static uint64_t state_bytes(const vkf_gpt_config *c) {
  uint64_t D = c->d_model / c->n_head, Hkv = c->n_kv_head ? c->n_kv_head : c->n_head;
  return (uint64_t)c->n_layer * Hkv * D * (D + 1) * 4;
}

/* A model of `kind`, its full-forward predictor and a session on it. */
typedef struct fixture {
  vkf_gpt_config c;
  vkf_gpt *m;
  vkf_predictor *p;
  vkf_session *s;
} fixture;

static fixture fixture_open(vkf_context *ctx, int kind, uint64_t seed, vkf_session_desc d) {
  fixture f = {.c = config_of(kind)};
  VKFT_OK(vkf_gpt_create(ctx, &f.c, seed, &f.m));
  VKFT_OK(vkf_predictor_create(f.m, &f.p));
  VKFT_OK(vkf_session_create(f.m, &d, &f.s));
  return f;
}

static void fixture_close(fixture *f) {
  vkf_session_destroy(f->s);
  vkf_predictor_destroy(f->p);
  vkf_gpt_destroy(f->m);
}

/* Prompt of 11 tokens in pieces of <= 4 (padded pieces, several programs;
 * linear: exact pieces 4 + 4 + 2 + 1), then every later token by decode
 * steps; each step's logits against the full forward over the sequence so
 * far. */
static void decode_vs_forward(vkf_context *ctx, int kind) {
  fixture f = fixture_open(ctx, kind, 11 + (uint64_t)kind, (vkf_session_desc){.prefill_chunk = 4});
  const vkf_gpt_config c = f.c;
  vkf_predictor *p = f.p;
  vkf_session *s = f.s;
  vkf_session_info info;
  VKFT_OK(vkf_session_info_get(s, &info));
  assert_string_equal(info.attention, kind == SLIDING_RING ? "sliding-ring"
                                      : is_linear(kind)    ? "linear"
                                                           : "standard");
  if (kind == SLIDING_RING)
    assert_int_equal(info.cache_rows, 6 + 4);
  if (is_linear(kind)) {
    assert_int_equal(info.cache_rows, 0);
    assert_int_equal(info.kv_bytes_per_token, 0);
    assert_int_equal(info.state_bytes_per_seq, state_bytes(&c));
  } else {
    assert_int_equal(info.state_bytes_per_seq, 0);
  }
  const uint32_t V = c.vocab_size, N = c.context_length;
  int32_t tok[64];
  tokens_of(tok, N, V, 5);
  float *got = vkft_alloc(V), *ref = vkft_alloc(V);
  char what[96];
  const uint32_t np = 11;
  VKFT_OK(vkf_session_append(s, 0, tok, np, got));
  VKFT_OK(vkf_predictor_next(p, tok, np, ref));
  snprintf(what, sizeof(what), "%s prefill", kind_name(kind));
  expect_close(what, got, ref, V);
  for (uint32_t i = np; i < N; i++) {
    uint32_t seq = 0;
    VKFT_OK(vkf_session_step(s, &seq, &tok[i], 1, got));
    VKFT_OK(vkf_predictor_next(p, tok, i + 1, ref));
    snprintf(what, sizeof(what), "%s step at %u", kind_name(kind), i);
    expect_close(what, got, ref, V);
  }
  assert_int_equal(vkf_session_length(s, 0), N);
  /* a second prompt appended to the sequence (a chat's next turn), after a
   * reset (linear: the state is zeroed, else the old tokens would count) */
  VKFT_OK(vkf_session_reset(s, 0));
  assert_int_equal(vkf_session_length(s, 0), 0);
  VKFT_OK(vkf_session_append(s, 0, tok + 3, 5, got));
  VKFT_OK(vkf_predictor_next(p, tok + 3, 5, ref));
  snprintf(what, sizeof(what), "%s after reset", kind_name(kind));
  expect_close(what, got, ref, V);
  VKFT_OK(vkf_session_append(s, 0, tok + 8, 9, got));
  VKFT_OK(vkf_predictor_next(p, tok + 3, 14, ref));
  snprintf(what, sizeof(what), "%s second turn", kind_name(kind));
  expect_close(what, got, ref, V);
  free(got);
  free(ref);
  fixture_close(&f);
}

/* Linear attention over a long prompt: 203 tokens with the default
 * prefill_chunk (here the context, 208) go in exact pieces
 * 128 + 64 + 8 + 2 + 1 (the 128-token piece spans two of
 * the kernel's 64-token chunks); then decoding. And a prefill_chunk that is
 * no power of two (6): 23 tokens = 6 + 6 + 6 + 4 + 1. RoPE, so max_seq and
 * the context may be long. */
static void linear_long_prompt(vkf_context *ctx) {
  vkf_gpt_config c = config_of(LINEAR_GQA);
  c.context_length = 208;
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, &c, 23, &m));
  vkf_predictor *p;
  VKFT_OK(vkf_predictor_create(m, &p));
  const uint32_t V = c.vocab_size, np = 203;
  int32_t tok[208];
  tokens_of(tok, 208, V, 31);
  float *got = vkft_alloc(V), *ref = vkft_alloc(V);
  char what[64];
  vkf_session *s;
  VKFT_OK(vkf_session_create(m, NULL, &s));
  vkf_session_info info;
  VKFT_OK(vkf_session_info_get(s, &info));
  assert_int_equal(info.prefill_chunk, 208);
  VKFT_OK(vkf_session_append(s, 0, tok, np, got));
  VKFT_OK(vkf_predictor_next(p, tok, np, ref));
  expect_close("linear 203-token prompt", got, ref, V);
  for (uint32_t i = np; i < 208; i++) {
    uint32_t seq = 0;
    VKFT_OK(vkf_session_step(s, &seq, &tok[i], 1, got));
    VKFT_OK(vkf_predictor_next(p, tok, i + 1, ref));
    snprintf(what, sizeof(what), "linear long step at %u", i);
    expect_close(what, got, ref, V);
  }
  vkf_session_destroy(s);
  vkf_session_desc d = {.prefill_chunk = 6, .max_seq = 40};
  VKFT_OK(vkf_session_create(m, &d, &s));
  VKFT_OK(vkf_session_append(s, 0, tok, 23, got));
  VKFT_OK(vkf_predictor_next(p, tok, 23, ref));
  expect_close("linear chunk 6", got, ref, V);
  vkf_session_destroy(s);
  free(got);
  free(ref);
  vkf_predictor_destroy(p);
  vkf_gpt_destroy(m);
}

static void all_kinds(vkf_context *ctx, const char *backend) {
  worst_abs = 0;
  for (int k = GPT2; k < LINEAR_GPT2; k++)
    decode_vs_forward(ctx, k);
  double worst_cache = worst_abs;
  worst_abs = 0;
  for (int k = LINEAR_GPT2; k <= LINEAR_MQA_LEARNED; k++)
    decode_vs_forward(ctx, k);
  linear_long_prompt(ctx);
  printf("%s: worst |got - ref|: %.3g with caches, %.3g with linear attention's state\n", backend,
         worst_cache, worst_abs);
}

static void test_decode_matches_forward_cpu(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  all_kinds(ctx, "CPU");
  vkft_destroy(ctx);
}

static void test_decode_matches_forward_vulkan(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  all_kinds(ctx, "Vulkan");
  vkft_destroy(ctx);
}

/* Three sequences of different lengths decoded together (and in subsets,
 * which use other programs), each against its own full forward. */
static void batched(vkf_context *ctx, int kind) {
  fixture f = fixture_open(ctx, kind, 3, (vkf_session_desc){.n_seq = 3, .prefill_chunk = 8});
  const vkf_gpt_config c = f.c;
  vkf_predictor *p = f.p;
  vkf_session *s = f.s;
  const uint32_t V = c.vocab_size;
  int32_t tok[3][40];
  uint32_t len[3] = {3, 9, 1};
  for (int q = 0; q < 3; q++) {
    tokens_of(tok[q], 40, V, 20 + q);
    VKFT_OK(vkf_session_append(s, (uint32_t)q, tok[q], len[q], NULL));
  }
  float *got = vkft_alloc(3 * V), *ref = vkft_alloc(V);
  for (int step = 0; step < 12; step++) {
    /* all three; then sequence 1 alone; then 2 and 0 (in that order) */
    uint32_t seqs[3] = {0, 1, 2}, n = 3;
    if (step % 3 == 1)
      seqs[0] = 1, n = 1;
    else if (step % 3 == 2)
      seqs[0] = 2, seqs[1] = 0, n = 2;
    int32_t next[3];
    for (uint32_t i = 0; i < n; i++)
      next[i] = tok[seqs[i]][len[seqs[i]]];
    VKFT_OK(vkf_session_step(s, seqs, next, n, got));
    for (uint32_t i = 0; i < n; i++) {
      uint32_t q = seqs[i];
      len[q]++;
      VKFT_OK(vkf_predictor_next(p, tok[q], len[q], ref));
      char what[64];
      snprintf(what, sizeof(what), "%s batch step %d seq %u", kind_name(kind), step, q);
      expect_close(what, got + (size_t)i * V, ref, V);
      assert_int_equal(vkf_session_length(s, q), len[q]);
    }
  }
  /* fork: sequence 2 becomes a copy of 1, then both continue differently */
  VKFT_OK(vkf_session_fork(s, 1, 2));
  assert_int_equal(vkf_session_length(s, 2), len[1]);
  memcpy(tok[2], tok[1], sizeof(tok[1]));
  tok[2][len[1]] = (tok[1][len[1]] + 1) % (int32_t)V;
  len[2] = len[1];
  uint32_t seqs[2] = {1, 2};
  int32_t next[2] = {tok[1][len[1]], tok[2][len[2]]};
  VKFT_OK(vkf_session_step(s, seqs, next, 2, got));
  for (int i = 0; i < 2; i++) {
    uint32_t q = seqs[i];
    VKFT_OK(vkf_predictor_next(p, tok[q], ++len[q], ref));
    expect_close("after fork", got + (size_t)i * V, ref, V);
  }
  free(got);
  free(ref);
  fixture_close(&f);
}

/* Linear attention's state slots: a reset sequence's state is zeroed
 * before its next token, a fork of a reset sequence is empty too, a fork
 * over a sequence with content replaces it, and the slots a batched step
 * leaves idle keep their states (the step advances copies and writes back
 * only the active rows). Each against its own full forward. */
static void linear_slots(vkf_context *ctx) {
  fixture f = fixture_open(ctx, LINEAR_GQA, 17, (vkf_session_desc){.n_seq = 3, .prefill_chunk = 8});
  const vkf_gpt_config c = f.c;
  vkf_predictor *p = f.p;
  vkf_session *s = f.s;
  const uint32_t V = c.vocab_size;
  int32_t a[40], b[40], cc[40];
  tokens_of(a, 40, V, 41);
  tokens_of(b, 40, V, 42);
  tokens_of(cc, 40, V, 43);
  float *got = vkft_alloc(2 * V), *ref = vkft_alloc(V);
  VKFT_OK(vkf_session_append(s, 0, a, 7, NULL));
  VKFT_OK(vkf_session_append(s, 1, b, 12, NULL));
  VKFT_OK(vkf_session_append(s, 2, cc, 5, NULL));
  VKFT_OK(vkf_session_reset(s, 0));
  VKFT_OK(vkf_session_fork(s, 0, 1)); /* 1 becomes empty: its state too */
  assert_int_equal(vkf_session_length(s, 1), 0);
  VKFT_OK(vkf_session_append(s, 1, cc, 6, got));
  VKFT_OK(vkf_predictor_next(p, cc, 6, ref));
  expect_close("linear: fork of a reset sequence", got, ref, V);
  VKFT_OK(vkf_session_append(s, 0, a, 3, got));
  VKFT_OK(vkf_predictor_next(p, a, 3, ref));
  expect_close("linear: after reset", got, ref, V);
  /* 0 and 1 step together, 2 idle */
  uint32_t seqs[2] = {1, 0};
  int32_t next[2] = {cc[6], a[3]};
  VKFT_OK(vkf_session_step(s, seqs, next, 2, got));
  VKFT_OK(vkf_predictor_next(p, cc, 7, ref));
  expect_close("linear: batched, seq 1", got, ref, V);
  VKFT_OK(vkf_predictor_next(p, a, 4, ref));
  expect_close("linear: batched, seq 0", got + V, ref, V);
  uint32_t two = 2;
  VKFT_OK(vkf_session_step(s, &two, &cc[5], 1, got)); /* 2 held cc[0..5) all along */
  VKFT_OK(vkf_predictor_next(p, cc, 6, ref));
  expect_close("linear: idle in the batched step", got, ref, V);
  /* fork over content: 0 becomes a copy of 2 (cc[0..6)); both go on */
  VKFT_OK(vkf_session_fork(s, 2, 0));
  assert_int_equal(vkf_session_length(s, 0), 6);
  int32_t alt[8];
  memcpy(alt, cc, 6 * sizeof(int32_t));
  alt[6] = (cc[6] + 1) % (int32_t)V;
  seqs[0] = 0, seqs[1] = 2;
  next[0] = alt[6], next[1] = cc[6];
  VKFT_OK(vkf_session_step(s, seqs, next, 2, got));
  VKFT_OK(vkf_predictor_next(p, alt, 7, ref));
  expect_close("linear: fork over content, copy", got, ref, V);
  VKFT_OK(vkf_predictor_next(p, cc, 7, ref));
  expect_close("linear: fork over content, source", got + V, ref, V);
  free(got);
  free(ref);
  fixture_close(&f);
}

static void test_batched_decode_cpu(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  batched(ctx, GPT2);
  batched(ctx, LLAMA_GQA);
  batched(ctx, SLIDING_RING);
  batched(ctx, LINEAR_GQA);
  batched(ctx, LINEAR_MQA_LEARNED);
  linear_slots(ctx);
  vkft_destroy(ctx);
}

static void test_batched_decode_vulkan(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  batched(ctx, GPT2);
  batched(ctx, SLIDING_RING);
  batched(ctx, LINEAR_GQA);
  batched(ctx, LINEAR_GPT2);
  linear_slots(ctx);
  vkft_destroy(ctx);
}

/* ---- generation ---- */
/* Three requests for the same 10-token prompt on sequences 3, 2, 1: the
 * first two sampled (temperature 1, top-k 20, seeds seed0 + i), the third
 * greedy; 12 new tokens each, stored in out[i * cap ..]. */
static void three_requests(vkf_generate_request r[3], const int32_t *prompt, uint64_t seed0,
                           int32_t *out, uint32_t cap) {
  memset(r, 0, 3 * sizeof(*r));
  for (int i = 0; i < 3; i++) {
    r[i].prompt = prompt;
    r[i].n_prompt = 10;
    r[i].seq = (uint32_t)(3 - i);
    r[i].sample = (vkf_sample_desc){.temperature = 1.0f, .top_k = 20};
    r[i].seed = seed0 + (uint64_t)i;
    r[i].max_new_tokens = 12;
    r[i].out = out + (size_t)i * cap;
    r[i].out_cap = cap;
  }
  r[2].sample = (vkf_sample_desc){0}; /* greedy */
}

typedef struct collect {
  int32_t tok[4][64];
  uint32_t n[4];
  uint32_t calls;
  int stop_at;   /* return nonzero at this call (-1: never) */
  int cancel_at; /* call vkf_session_cancel at this call (-1: never) */
  vkf_session *s;
} collect;

static int on_token(void *user, const vkf_token_event *ev) {
  collect *c = user;
  assert_true(ev->request < 4);
  assert_int_equal(ev->index, c->n[ev->request]);
  c->tok[ev->request][c->n[ev->request]++] = ev->token;
  int call = (int)c->calls++;
  if (call == c->cancel_at)
    vkf_session_cancel(c->s);
  return call == c->stop_at;
}

static vkf_gpt *small_model(vkf_context *ctx, vkf_gpt_config *c) {
  *c = config_of(GPT2);
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, c, 9, &m));
  return m;
}

static void generation(vkf_context *ctx) {
  vkf_gpt_config c;
  vkf_gpt *m = small_model(ctx, &c);
  vkf_session_desc d = {.n_seq = 4, .prefill_chunk = 8};
  vkf_session *s;
  VKFT_OK(vkf_session_create(m, &d, &s));
  int32_t prompt[10];
  tokens_of(prompt, 10, c.vocab_size, 77);
  vkf_generate_request r[3];
  int32_t out[3][40];
  three_requests(r, prompt, 100, &out[0][0], 40);
  collect col = {.stop_at = -1, .cancel_at = -1};
  VKFT_OK(vkf_session_generate(s, r, 3, on_token, &col));
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r[i].stop, VKF_STOP_MAX_TOKENS);
    assert_int_equal(r[i].n_generated, 12);
    assert_int_equal(col.n[i], 12);
    assert_memory_equal(col.tok[i], out[i], 12 * sizeof(int32_t));
    assert_int_equal(vkf_session_length(s, r[i].seq), 22);
  }
  vkf_session_stats st;
  VKFT_OK(vkf_session_stats_get(s, &st));
  assert_int_equal(st.prompt_tokens, 10); /* one prefill, copied to the others */
  assert_int_equal(st.generated_tokens, 36);
  assert_int_equal(st.decode_steps, 11);
  assert_true(st.time_to_first_token > 0 && st.time_to_first_token <= st.total_seconds);
  assert_true(st.decode_tokens_per_second > 0 && st.prefill_tokens_per_second > 0);
  /* the same requests again reproduce every token (seeded) */
  int32_t first[3][40];
  memcpy(first, out, sizeof(out));
  VKFT_OK(vkf_session_generate(s, r, 3, NULL, NULL));
  assert_memory_equal(first, out, sizeof(out));
  /* two sampled requests with different seeds did not produce the same text */
  assert_true(memcmp(out[0], out[1], 12 * sizeof(int32_t)) != 0);
  /* greedy: the argmax of the full forward at every step */
  vkf_predictor *p;
  VKFT_OK(vkf_predictor_create(m, &p));
  int32_t seq[40];
  memcpy(seq, prompt, sizeof(prompt));
  memcpy(seq + 10, out[2], 12 * sizeof(int32_t));
  float *lg = vkft_alloc(c.vocab_size);
  for (int i = 0; i < 12; i++) {
    VKFT_OK(vkf_predictor_next(p, seq, 10 + (uint32_t)i, lg));
    int32_t best = 0;
    for (int32_t v = 1; v < (int32_t)c.vocab_size; v++)
      if (lg[v] > lg[best])
        best = v;
    assert_int_equal(out[2][i], best);
  }
  free(lg);
  vkf_predictor_destroy(p);

  /* stop token: the greedy text's third token ends it (not delivered) */
  vkf_generate_request g = r[2];
  int32_t stop = out[2][2];
  int first_stop = 0;
  while (out[2][first_stop] != stop)
    first_stop++;
  g.stop_tokens = &stop;
  g.n_stop_tokens = 1;
  VKFT_OK(vkf_session_generate(s, &g, 1, NULL, NULL));
  assert_int_equal(g.stop, VKF_STOP_TOKEN);
  assert_int_equal(g.n_generated, first_stop);
  assert_int_equal(vkf_session_length(s, g.seq), 10 + (uint32_t)first_stop);
  /* callback stop after the 4th token; continue the same sequence later */
  g = r[2];
  memset(&col, 0, sizeof(col));
  col.stop_at = 3;
  col.cancel_at = -1;
  VKFT_OK(vkf_session_generate(s, &g, 1, on_token, &col));
  assert_int_equal(g.stop, VKF_STOP_CALLBACK);
  assert_int_equal(g.n_generated, 4);
  assert_memory_equal(col.tok[0], out[2], 4 * sizeof(int32_t));
  int32_t more[8];
  g.flags = VKF_GENERATE_CONTINUE;
  g.n_prompt = 0;
  g.max_new_tokens = 8;
  g.out = more;
  g.out_cap = 8;
  VKFT_OK(vkf_session_generate(s, &g, 1, NULL, NULL));
  assert_memory_equal(more, out[2] + 4, 8 * sizeof(int32_t)); /* greedy goes on the same */
  /* full sequence: 40 positions */
  g = r[2];
  g.max_new_tokens = 0;
  g.out_cap = 0;
  g.out = NULL;
  VKFT_OK(vkf_session_generate(s, &g, 1, NULL, NULL));
  assert_int_equal(g.stop, VKF_STOP_FULL);
  assert_int_equal(g.n_generated, 30);
  assert_int_equal(vkf_session_length(s, g.seq), 40);
  vkf_session_destroy(s);
  vkf_gpt_destroy(m);
}

/* tok is the argmax of the full forward's logits after seq[0..n), or ties
 * with it (a gap within 1e-4, where float rounding may pick either). */
static void expect_argmax(vkf_predictor *p, const int32_t *seq, uint32_t n, int32_t tok,
                          uint32_t V) {
  float lg[64];
  VKFT_OK(vkf_predictor_next(p, seq, n, lg));
  int32_t best = 0;
  for (int32_t v = 1; v < (int32_t)V; v++)
    if (lg[v] > lg[best])
      best = v;
  if (best != tok) {
    printf("after %u tokens: greedy %d, full forward %d (gap %.3g)\n", n, tok, best,
           (double)(lg[best] - lg[tok]));
    assert_true(lg[best] - lg[tok] <= 1e-4f);
  }
}

/* Generation with linear attention: best-of-N (one prefill of the shared
 * prompt, forked to the other requests, all decoded in batched steps with
 * slot 0 idle), seeded reproducibility, greedy against the full forward, and
 * a chat's second turn (CONTINUE: the last generated token, still pending,
 * and the new prompt are fed together in exact pieces). */
static void linear_generation(vkf_context *ctx) {
  vkf_gpt_config c = config_of(LINEAR_GQA);
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, &c, 29, &m));
  vkf_session_desc d = {.n_seq = 4, .prefill_chunk = 8};
  vkf_session *s;
  VKFT_OK(vkf_session_create(m, &d, &s));
  const uint32_t V = c.vocab_size;
  int32_t prompt[10], turn2[5];
  tokens_of(prompt, 10, V, 78);
  tokens_of(turn2, 5, V, 79);
  vkf_generate_request r[3];
  int32_t out[3][16];
  three_requests(r, prompt, 200, &out[0][0], 16); /* sequence 0 stays idle */
  VKFT_OK(vkf_session_generate(s, r, 3, NULL, NULL));
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r[i].stop, VKF_STOP_MAX_TOKENS);
    assert_int_equal(r[i].n_generated, 12);
    assert_int_equal(vkf_session_length(s, r[i].seq), 22);
  }
  vkf_session_stats st;
  VKFT_OK(vkf_session_stats_get(s, &st));
  assert_int_equal(st.prompt_tokens, 10); /* one prefill, forked to the others */
  assert_int_equal(st.decode_steps, 11);
  int32_t first[3][16];
  memcpy(first, out, sizeof(out));
  VKFT_OK(vkf_session_generate(s, r, 3, NULL, NULL)); /* reproducible */
  assert_memory_equal(first, out, sizeof(out));
  assert_true(memcmp(out[0], out[1], 12 * sizeof(int32_t)) != 0);
  vkf_predictor *p;
  VKFT_OK(vkf_predictor_create(m, &p));
  int32_t seq[40];
  memcpy(seq, prompt, sizeof(prompt));
  memcpy(seq + 10, out[2], 12 * sizeof(int32_t));
  for (uint32_t i = 0; i < 12; i++)
    expect_argmax(p, seq, 10 + i, out[2][i], V);
  /* second turn on the greedy sequence */
  vkf_generate_request g = r[2];
  g.prompt = turn2;
  g.n_prompt = 5;
  g.flags = VKF_GENERATE_CONTINUE;
  g.max_new_tokens = 6;
  int32_t more[8];
  g.out = more;
  g.out_cap = 8;
  VKFT_OK(vkf_session_generate(s, &g, 1, NULL, NULL));
  assert_int_equal(g.n_generated, 6);
  assert_int_equal(vkf_session_length(s, g.seq), 22 + 5 + 6);
  VKFT_OK(vkf_session_stats_get(s, &st));
  assert_int_equal(st.prompt_tokens, 6); /* the pending reply token and the new prompt */
  memcpy(seq + 22, turn2, sizeof(turn2));
  memcpy(seq + 27, more, 6 * sizeof(int32_t));
  for (uint32_t i = 0; i < 6; i++)
    expect_argmax(p, seq, 27 + i, more[i], V);
  vkf_predictor_destroy(p);
  vkf_session_destroy(s);
  vkf_gpt_destroy(m);
}

static void test_generate_cpu(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  generation(ctx);
  linear_generation(ctx);
  vkft_destroy(ctx);
}

static void test_generate_vulkan(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  generation(ctx);
  linear_generation(ctx);
  vkft_destroy(ctx);
}

/* ---- cancellation ---- */
static void test_cancel_from_callback(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  vkf_gpt_config c;
  vkf_gpt *m = small_model(ctx, &c);
  vkf_session *s;
  vkf_session_desc d = {.n_seq = 2};
  VKFT_OK(vkf_session_create(m, &d, &s));
  int32_t prompt[4] = {1, 2, 3, 4};
  vkf_generate_request r[2] = {{.prompt = prompt, .n_prompt = 4, .seq = 0},
                               {.prompt = prompt, .n_prompt = 3, .seq = 1}};
  collect col = {.stop_at = -1, .cancel_at = 6, .s = s};
  assert_int_equal(vkf_session_generate(s, r, 2, on_token, &col), VKF_ERROR_CANCELLED);
  /* cancelled at the 7th token (calls 0, 1: the first tokens after each
   * prompt; then two per step): the rest of that step's tokens (call 7) are
   * delivered, and no step runs after it */
  assert_int_equal(col.calls, 8);
  assert_int_equal(r[0].stop, VKF_STOP_CANCELLED);
  assert_int_equal(r[1].stop, VKF_STOP_CANCELLED);
  assert_int_equal(r[0].n_generated, 4);
  assert_int_equal(r[1].n_generated, 4);
  /* the flag was consumed: the next call runs; a cancel while idle stops the
   * next call at once */
  r[0].max_new_tokens = 3;
  VKFT_OK(vkf_session_generate(s, r, 1, NULL, NULL));
  assert_int_equal(r[0].n_generated, 3);
  vkf_session_cancel(s);
  assert_int_equal(vkf_session_generate(s, r, 1, NULL, NULL), VKF_ERROR_CANCELLED);
  assert_int_equal(r[0].n_generated, 0);
  assert_int_equal(r[0].stop, VKF_STOP_CANCELLED);
  VKFT_OK(vkf_session_generate(s, r, 1, NULL, NULL));
  vkf_session_destroy(s);
  vkf_gpt_destroy(m);
  vkft_destroy(ctx);
}

/* A worker thread generates; the main thread cancels after the 3rd token
 * while the worker waits in its callback, so the worker's next check sees
 * the flag: exactly 3 tokens. */
typedef struct worker {
  vkf_session *s;
  vkf_generate_request r;
  vkf_status st;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  uint32_t seen;
  bool cancelled;
} worker;

static int worker_token(void *user, const vkf_token_event *ev) {
  worker *w = user;
  (void)ev;
  pthread_mutex_lock(&w->mu);
  w->seen++;
  pthread_cond_broadcast(&w->cv);
  if (w->seen == 3)
    while (!w->cancelled)
      pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
  return 0;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  w->st = vkf_session_generate(w->s, &w->r, 1, worker_token, w);
  return NULL;
}

static void test_cancel_from_another_thread(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  vkf_gpt_config c;
  vkf_gpt *m = small_model(ctx, &c);
  worker w = {.r = {.n_prompt = 2}};
  int32_t prompt[2] = {5, 6};
  w.r.prompt = prompt;
  VKFT_OK(vkf_session_create(m, NULL, &w.s));
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cv, NULL);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, worker_main, &w), 0);
  pthread_mutex_lock(&w.mu);
  while (w.seen < 3)
    pthread_cond_wait(&w.cv, &w.mu);
  vkf_session_cancel(w.s);
  w.cancelled = true;
  pthread_cond_broadcast(&w.cv);
  pthread_mutex_unlock(&w.mu);
  pthread_join(th, NULL);
  assert_int_equal(w.st, VKF_ERROR_CANCELLED);
  assert_int_equal(w.r.n_generated, 3);
  assert_int_equal(w.seen, 3);
  assert_int_equal(w.r.stop, VKF_STOP_CANCELLED);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cv);
  vkf_session_destroy(w.s);
  vkf_gpt_destroy(m);
  vkft_destroy(ctx);
}

/* ---- memory: the cache follows n_kv_head; a linear state is fixed ---- */
static void test_cache_size(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  int kinds[3] = {GPT2, LLAMA_GQA, LLAMA_MQA};
  uint64_t expect[3] = {2ull * 2 * 4 * 12 * 4, 2ull * 2 * 2 * 12 * 4, 2ull * 2 * 1 * 12 * 4};
  for (int i = 0; i < 3; i++) {
    vkf_gpt_config c = config_of(kinds[i]);
    vkf_gpt *m;
    VKFT_OK(vkf_gpt_create(ctx, &c, 1, &m));
    vkf_session_desc d = {.n_seq = 3, .max_seq = 32};
    vkf_session *s;
    VKFT_OK(vkf_session_create(m, &d, &s));
    vkf_session_info info;
    VKFT_OK(vkf_session_info_get(s, &info));
    assert_int_equal(info.kv_bytes_per_token, expect[i]);
    assert_true(info.kv_bytes >= expect[i] * 3 * 32);
    assert_true(info.kv_bytes < expect[i] * 3 * 32 + 256 * 2 * c.n_layer);
    vkf_memory_stats ms;
    VKFT_OK(vkf_memory_stats_get(ctx, &ms));
    assert_true(ms.device_bytes_used >= info.kv_bytes + info.activation_bytes);
    vkf_session_destroy(s);
    vkf_gpt_destroy(m);
  }
  /* linear attention: a fixed state per sequence, whatever max_seq:
   * n_layer * n_kv_head * D * (D + 1) floats (GQA: 2 kv heads, D = 12) */
  const uint64_t per_seq = 2ull * 2 * 12 * 13 * 4;
  for (uint32_t max_seq = 8; max_seq <= 512; max_seq *= 8) {
    vkf_gpt_config c = config_of(LINEAR_GQA);
    vkf_gpt *m;
    VKFT_OK(vkf_gpt_create(ctx, &c, 1, &m));
    vkf_session_desc d = {.n_seq = 3, .max_seq = max_seq};
    vkf_session *s;
    VKFT_OK(vkf_session_create(m, &d, &s));
    vkf_session_info info;
    VKFT_OK(vkf_session_info_get(s, &info));
    assert_int_equal(info.state_bytes_per_seq, per_seq);
    assert_int_equal(info.kv_bytes_per_token, 0);
    assert_int_equal(info.cache_rows, 0);
    assert_true(info.kv_bytes >= per_seq * 3 && info.kv_bytes < per_seq * 3 + 256);
    vkf_memory_stats ms;
    VKFT_OK(vkf_memory_stats_get(ctx, &ms));
    assert_true(ms.device_bytes_used >= info.kv_bytes + info.activation_bytes);
    vkf_session_destroy(s);
    vkf_gpt_destroy(m);
  }
  vkft_destroy(ctx);
}

/* ---- errors ---- */
static void test_errors(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  vkf_gpt_config c;
  vkf_gpt *m = small_model(ctx, &c);
  vkf_session *s = NULL;
  assert_int_equal(vkf_session_create(NULL, NULL, &s), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_session_create(m, NULL, NULL), VKF_ERROR_NULL_POINTER);
  vkf_session_desc too_long = {.max_seq = 41}; /* learned positions: 40 */
  assert_int_equal(vkf_session_create(m, &too_long, &s), VKF_ERROR_INVALID_ARGUMENT);
  assert_null(s);
  vkf_session_desc d = {.n_seq = 2, .max_seq = 16};
  VKFT_OK(vkf_session_create(m, &d, &s));
  int32_t t[20] = {0};
  t[3] = (int32_t)c.vocab_size; /* unknown token */
  float lg[64];
  assert_int_equal(vkf_session_append(s, 0, t, 5, lg), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_session_length(s, 0), 0); /* nothing changed */
  t[3] = -1;
  assert_int_equal(vkf_session_append(s, 0, t, 5, lg), VKF_ERROR_INVALID_ARGUMENT);
  t[3] = 7;
  assert_int_equal(vkf_session_append(s, 0, t, 17, lg), VKF_ERROR_INVALID_ARGUMENT); /* too long */
  assert_int_equal(vkf_session_append(s, 2, t, 3, lg), VKF_ERROR_INVALID_ARGUMENT);  /* no seq 2 */
  assert_int_equal(vkf_session_append(s, 0, t, 0, lg), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_session_append(s, 0, NULL, 3, lg), VKF_ERROR_NULL_POINTER);
  VKFT_OK(vkf_session_append(s, 0, t, 16, lg)); /* exactly full */
  uint32_t q0 = 0, dup[2] = {1, 1};
  int32_t tk = 1, tk2[2] = {1, 2};
  assert_int_equal(vkf_session_step(s, &q0, &tk, 1, lg), VKF_ERROR_INVALID_ARGUMENT); /* full */
  assert_int_equal(vkf_session_step(s, dup, tk2, 2, lg), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_session_step(s, &q0, &tk, 0, lg), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_session_step(s, dup, tk2, 3, lg), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_session_fork(s, 0, 2), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_session_reset(s, 5), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_session_length(s, 5), 0);
  /* generate: every bad request is refused before anything runs */
  vkf_generate_request r = {.prompt = t, .n_prompt = 17, .seq = 1};
  assert_int_equal(vkf_session_generate(s, &r, 1, NULL, NULL), VKF_ERROR_INVALID_ARGUMENT);
  r.n_prompt = 4;
  r.sample.top_p = 1.5f;
  assert_int_equal(vkf_session_generate(s, &r, 1, NULL, NULL), VKF_ERROR_INVALID_ARGUMENT);
  r.sample = (vkf_sample_desc){.temperature = -1};
  assert_int_equal(vkf_session_generate(s, &r, 1, NULL, NULL), VKF_ERROR_INVALID_ARGUMENT);
  r.sample = (vkf_sample_desc){0};
  r.n_stop_tokens = 1; /* no array */
  assert_int_equal(vkf_session_generate(s, &r, 1, NULL, NULL), VKF_ERROR_NULL_POINTER);
  r.n_stop_tokens = 0;
  r.flags = 8;
  assert_int_equal(vkf_session_generate(s, &r, 1, NULL, NULL), VKF_ERROR_INVALID_ARGUMENT);
  r.flags = VKF_GENERATE_CONTINUE; /* sequence 0 is full */
  r.seq = 0;
  assert_int_equal(vkf_session_generate(s, &r, 1, NULL, NULL), VKF_ERROR_INVALID_ARGUMENT);
  r.flags = 0;
  r.n_prompt = 0; /* nothing to start from */
  assert_int_equal(vkf_session_generate(s, &r, 1, NULL, NULL), VKF_ERROR_INVALID_ARGUMENT);
  vkf_generate_request two[2] = {{.prompt = t, .n_prompt = 2, .seq = 1},
                                 {.prompt = t, .n_prompt = 2, .seq = 1}};
  assert_int_equal(vkf_session_generate(s, two, 2, NULL, NULL), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_session_generate(s, two, 3, NULL, NULL), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_session_generate(s, NULL, 1, NULL, NULL), VKF_ERROR_NULL_POINTER);
  two[1].seq = 0;
  two[1].prompt = t + 3;
  t[4] = 1000; /* unknown token in the second request's prompt */
  assert_int_equal(vkf_session_generate(s, two, 2, NULL, NULL), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_session_length(s, 0), 16); /* untouched */
  vkf_session_destroy(s);

  /* linear attention: the same limits; a refused call leaves the state as
   * it was (the next append continues from the tokens before it) */
  vkf_gpt_config lc = config_of(LINEAR_GPT2);
  vkf_gpt *lm;
  VKFT_OK(vkf_gpt_create(ctx, &lc, 1, &lm));
  assert_int_equal(vkf_session_create(lm, &too_long, &s), VKF_ERROR_INVALID_ARGUMENT);
  assert_null(s);
  VKFT_OK(vkf_session_create(lm, &d, &s));
  vkf_predictor *lp;
  VKFT_OK(vkf_predictor_create(lm, &lp));
  int32_t u[24]; /* room for the 11-token append from u + 6 */
  tokens_of(u, 24, lc.vocab_size, 3);
  VKFT_OK(vkf_session_append(s, 0, u, 6, NULL));
  u[8] = (int32_t)lc.vocab_size;
  assert_int_equal(vkf_session_append(s, 0, u + 6, 4, lg), VKF_ERROR_INVALID_ARGUMENT);
  u[8] = 5;
  assert_int_equal(vkf_session_append(s, 0, u + 6, 11, lg), VKF_ERROR_INVALID_ARGUMENT);
  assert_int_equal(vkf_session_length(s, 0), 6);
  VKFT_OK(vkf_session_append(s, 0, u + 6, 4, lg));
  float lref[64];
  VKFT_OK(vkf_predictor_next(lp, u, 10, lref));
  expect_close("linear after refused appends", lg, lref, lc.vocab_size);
  vkf_predictor_destroy(lp);
  vkf_session_destroy(s);
  vkf_gpt_destroy(lm);

  /* checkpoints: missing, not safetensors, safetensors without a model */
  char dir[] = "/tmp/vkf_session_XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof(path), "%s/none.safetensors", dir);
  assert_int_equal(vkf_session_open(ctx, path, NULL, &s), VKF_ERROR_IO);
  snprintf(path, sizeof(path), "%s/garbage.safetensors", dir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs("this is not a checkpoint at all, just some text", f);
  fclose(f);
  assert_int_equal(vkf_session_open(ctx, path, NULL, &s), VKF_ERROR_FORMAT);
  unlink(path);
  snprintf(path, sizeof(path), "%s/arrays.safetensors", dir);
  float x[4] = {1, 2, 3, 4};
  vkf_named_array a = {.name = "x", .dtype = VKF_DTYPE_F32, .ndim = 1, .shape = {4}, .data = x};
  VKFT_OK(vkf_safetensors_write(ctx, path, &a, 1, NULL, NULL, 0));
  assert_int_equal(vkf_session_open(ctx, path, NULL, &s), VKF_ERROR_FORMAT);
  unlink(path);
  assert_int_equal(vkf_session_open(ctx, NULL, NULL, &s), VKF_ERROR_NULL_POINTER);
  rmdir(dir);
  vkf_gpt_destroy(m);
  vkft_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_decode_matches_forward_cpu),
      cmocka_unit_test(test_decode_matches_forward_vulkan),
      cmocka_unit_test(test_batched_decode_cpu),
      cmocka_unit_test(test_batched_decode_vulkan),
      cmocka_unit_test(test_generate_cpu),
      cmocka_unit_test(test_generate_vulkan),
      cmocka_unit_test(test_cancel_from_callback),
      cmocka_unit_test(test_cancel_from_another_thread),
      cmocka_unit_test(test_cache_size),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests_name("session", tests, NULL, NULL);
}
