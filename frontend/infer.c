/* Inference sessions: KV caches (or linear attention's recurrent states) on
 * the device, prefill and decode step graphs recorded once each (on first
 * use) and replayed with per-step data, batched decoding of several
 * sequences, sampling, streaming generation with cancellation, timing. */
#include "infer.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct prog {
  uint32_t B, T, slot0;
  vkf_infer_graph ig;
  vkf_gexec *x; /* recorded on first use */
} prog;

typedef struct seq_state {
  uint32_t len;    /* tokens whose K/V are in the cache (or fed to the state) */
  uint32_t n_hist; /* tokens of the sequence: the cached ones, then pending ones */
  int32_t *hist;   /* max_seq entries */
  bool zero;       /* recurrent: the slot's state must be zeroed before use */
} seq_state;

struct vkf_session {
  vkf_context *ctx;
  vkf_env *env;
  vkf_backend *be;
  vkf_gpt *model;
  bool own_model;
  vkf_gpt_config cfg;
  const vkf_infer_variant *var;
  uint32_t S, max_seq, chunk, rows, V;
  vkf_buffer *inputs, *acts, *grads;
  uint64_t inputs_bytes, acts_bytes, cache_bytes;
  uint64_t slot_bytes;       /* one sequence's part of each per-layer tensor */
  uint64_t *kc_off, *vc_off; /* per layer: byte offsets in inputs (vc: UINT64_MAX = none) */
  prog *progs;
  uint32_t n_progs, cap_progs;
  seq_state *seqs;
  uint8_t *step_host; /* host image of the largest step-input block */
  uint64_t step_cap;
  const int32_t **row_tok; /* S entries */
  vkf_infer_row *row;      /* S entries */
  float *logits;           /* S * V: a decode step's read-back */
  float *plogits;          /* S * V: each request's next-token logits */
  float *dlogits;          /* S * V: generation's decode-step logits */
  vkf_sampler sampler;
  atomic_int cancel;
  vkf_session_stats stats;
};

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* Step programs                                                            */
/* ------------------------------------------------------------------------ */
static void prog_free(vkf_session *s, prog *p) {
  vkf_gexec_destroy(p->x);
  vkf_infer_graph_free(s->env, &p->ig);
}

/* The program entry for (B, T, slot0), its graph built (not recorded). */
static vkf_status prog_find(vkf_session *s, uint32_t B, uint32_t T, uint32_t slot0, prog **out) {
  for (uint32_t i = 0; i < s->n_progs; i++) {
    prog *p = &s->progs[i];
    if (p->B == B && p->T == T && p->slot0 == slot0) {
      *out = p;
      return VKF_OK;
    }
  }
  if (s->n_progs == s->cap_progs) {
    uint32_t cap = s->cap_progs ? 2 * s->cap_progs : 16;
    prog *np = vkf_realloc(s->env, s->progs, cap * sizeof(prog));
    if (!np)
      return vkf_fail(s->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "session programs");
    s->progs = np;
    s->cap_progs = cap;
  }
  prog *p = &s->progs[s->n_progs];
  memset(p, 0, sizeof(*p));
  p->B = B;
  p->T = T;
  p->slot0 = slot0;
  vkf_status st = vkf_infer_build(s->env, &s->cfg, s->var, s->S, s->rows, B, T, slot0, &p->ig);
  vkf_graph_memory mem;
  if (st == VKF_OK)
    st = vkf_g_plan(p->ig.g, &mem);
  if (st != VKF_OK) {
    vkf_infer_graph_free(s->env, &p->ig);
    return st;
  }
  s->n_progs++;
  *out = p;
  return VKF_OK;
}

/* Records the program (buffers allocated by then). */
static vkf_status prog_ready(vkf_session *s, prog *p) {
  if (p->x)
    return VKF_OK;
  vkf_graph *g = p->ig.g;
  if (g->arena_bytes[VKF_ARENA_ACTS] > s->acts_bytes ||
      g->arena_bytes[VKF_ARENA_INPUTS] > s->inputs_bytes)
    return vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT,
                    "session: step [%u x %u] needs more memory than was planned", p->B, p->T);
  vkf_buffer *shared[VKF_ARENA_COUNT] = {0};
  shared[VKF_ARENA_PARAMS] = s->model->params;
  shared[VKF_ARENA_GRADS] = s->grads;
  shared[VKF_ARENA_INPUTS] = s->inputs;
  shared[VKF_ARENA_ACTS] = s->acts;
  return vkf_gexec_create(g, s->be, shared, 0, g->n_steps, true, &p->x);
}

typedef struct step_times {
  double input, run, read;
} step_times;

/* Runs one step: rows (B) with their tokens; logits [B, V] read into out.
 * *submitted: the step's work was handed to the device (so on failure the
 * states it runs may have changed). */
static vkf_status prog_run(vkf_session *s, prog *p, const vkf_infer_row *rows,
                           const int32_t *const *toks, float *out, step_times *tm,
                           bool *submitted) {
  *submitted = false;
  vkf_status st = prog_ready(s, p);
  if (st != VKF_OK)
    return st;
  double t0 = now_s();
  const vkf_infer_graph *ig = &p->ig;
  vkf_infer_fill(ig, rows, toks, s->step_host);
  st = s->be->vt->write(s->be, (vkf_tref){s->inputs, ig->in_begin, ig->in_end - ig->in_begin},
                        s->step_host);
  double t1 = now_s();
  if (st == VKF_OK) {
    *submitted = true;
    st = vkf_gexec_run(p->x);
  }
  if (st == VKF_OK)
    st = s->be->vt->synchronize(s->be);
  double t2 = now_s();
  if (st == VKF_OK)
    st = s->be->vt->read(s->be, vkf_gexec_tref(p->x, ig->logits), out);
  double t3 = now_s();
  if (tm) {
    tm->input += t1 - t0;
    tm->run += t2 - t1;
    tm->read += t3 - t2;
  }
  return st;
}

/* The prefill programs have the power-of-two lengths below the chunk and
 * the chunk itself (recorded on first use, each once per slot). A piece of
 * a prompt with n tokens left takes *n_piece of them in a program of *T:
 *
 * - Caches: min(n, chunk) tokens, left-padded to the smallest program
 *   length that holds them. Padding rows are computed but never stored
 *   (kv_write takes a row's last n), so one forward per chunk.
 * - Recurrent state (linear attention): every token fed enters the state,
 *   and no padding token could be neutral (phi(k) = elu(k) + 1 > 0 for
 *   every key, so z and S would move), so a piece is exactly a program's
 *   length: the chunk while at least a chunk is left, then the remainder r
 *   by its binary digits, largest first (11 = 8 + 2 + 1). Exact, with no
 *   program besides those above and no change to the kernels; it computes
 *   exactly n rows (padding computes up to 2n - 1) at the cost of
 *   popcount(r) <= log2(chunk) forwards for the remainder instead of one.
 *   (The alternatives: a program per length (unbounded recordings), or
 *   masking padding rows inside the linear attention kernels of both
 *   backends, which would still compute them.) */
static void piece_of(const vkf_session *s, uint32_t n, uint32_t *n_piece, uint32_t *T) {
  if (n >= s->chunk) {
    *n_piece = *T = s->chunk;
    return;
  }
  uint32_t p = 1;
  if (s->var->recurrent) {
    while (2 * p <= n)
      p *= 2;
    *n_piece = *T = p;
    return;
  }
  while (p < n)
    p *= 2;
  *n_piece = n;
  *T = p < s->chunk ? p : s->chunk;
}

/* Zeroes the recurrent state of sequence seq when it is marked so. */
static vkf_status state_ready(vkf_session *s, uint32_t seq) {
  seq_state *q = &s->seqs[seq];
  if (!q->zero)
    return VKF_OK;
  vkf_status st = VKF_OK;
  for (uint32_t l = 0; st == VKF_OK && l < s->cfg.n_layer; l++) {
    vkf_op fill = {.kind = VKF_OP_FILL, .n_tensors = 1, .writes = 1};
    fill.t[0] = (vkf_tref){s->inputs, s->kc_off[l] + seq * s->slot_bytes, s->slot_bytes};
    fill.p.fill = (vkf_fill_params){(uint32_t)(s->slot_bytes / 4), 0};
    st = s->be->vt->run(s->be, &fill);
  }
  if (st == VKF_OK)
    q->zero = false;
  return st;
}

/* After a failed step that was submitted: a recurrent state of the step's
 * sequence may have moved by an unknown amount, so the sequence is emptied
 * (its state zeroed before the next use). Caches need nothing: rows past
 * len are rewritten before they are read. */
static void state_lost(vkf_session *s, uint32_t seq) {
  if (!s->var->recurrent)
    return;
  seq_state *q = &s->seqs[seq];
  q->len = q->n_hist = 0;
  q->zero = true;
}

/* Caches the pending tokens of sequence seq (hist[len .. n_hist)) in pieces;
 * the next-token logits after the last go to logits (V floats). Checks the
 * cancel flag before each piece when `cancellable`. */
static vkf_status flush_pending(vkf_session *s, uint32_t seq, float *logits, bool cancellable) {
  seq_state *q = &s->seqs[seq];
  vkf_status st = state_ready(s, seq);
  if (st != VKF_OK)
    return st;
  while (q->len < q->n_hist) {
    if (cancellable && atomic_exchange(&s->cancel, 0))
      return vkf_fail(s->env, VKF_ERROR_CANCELLED, "generation cancelled");
    uint32_t n, T;
    piece_of(s, q->n_hist - q->len, &n, &T);
    prog *p;
    st = prog_find(s, 1, T, seq, &p);
    vkf_infer_row row = {(int32_t)q->len, (int32_t)n};
    const int32_t *tok = q->hist + q->len;
    double t0 = now_s();
    bool submitted = false;
    if (st == VKF_OK)
      st = prog_run(s, p, &row, &tok, logits, NULL, &submitted);
    if (st != VKF_OK) {
      if (submitted)
        state_lost(s, seq);
      return st;
    }
    q->len += n;
    s->stats.prompt_tokens += n;
    s->stats.prefill_seconds += now_s() - t0;
  }
  return VKF_OK;
}

/* One decode step for sequences seqs[0..n), each with exactly one pending
 * token; logits of seqs[i] to out + i * V. */
static vkf_status decode(vkf_session *s, const uint32_t *seqs, uint32_t n, float *out,
                         step_times *tm) {
  prog *p;
  vkf_status st = VKF_OK;
  bool submitted = false;
  for (uint32_t i = 0; st == VKF_OK && i < n; i++)
    st = state_ready(s, seqs[i]);
  if (st != VKF_OK)
    return st;
  if (n == 1) {
    seq_state *q = &s->seqs[seqs[0]];
    vkf_infer_row row = {(int32_t)q->len, 1};
    const int32_t *tok = q->hist + q->len;
    st = prog_find(s, 1, 1, seqs[0], &p);
    if (st == VKF_OK)
      st = prog_run(s, p, &row, &tok, out, tm, &submitted);
  } else {
    for (uint32_t b = 0; b < s->S; b++) {
      s->row[b] = (vkf_infer_row){0, 0};
      s->row_tok[b] = NULL;
    }
    for (uint32_t i = 0; i < n; i++) {
      seq_state *q = &s->seqs[seqs[i]];
      s->row[seqs[i]] = (vkf_infer_row){(int32_t)q->len, 1};
      s->row_tok[seqs[i]] = q->hist + q->len;
    }
    st = prog_find(s, s->S, 1, 0, &p);
    if (st == VKF_OK)
      st = prog_run(s, p, s->row, s->row_tok, s->logits, tm, &submitted);
    for (uint32_t i = 0; st == VKF_OK && i < n; i++)
      memcpy(out + (size_t)i * s->V, s->logits + (size_t)seqs[i] * s->V, s->V * sizeof(float));
  }
  if (st != VKF_OK) {
    for (uint32_t i = 0; submitted && i < n; i++)
      state_lost(s, seqs[i]);
    return st;
  }
  for (uint32_t i = 0; i < n; i++)
    s->seqs[seqs[i]].len++;
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                 */
/* ------------------------------------------------------------------------ */
void vkf_session_destroy(vkf_session *s) {
  if (!s)
    return;
  vkf_env *env = s->env;
  vkf_backend *be = s->be;
  for (uint32_t i = 0; i < s->n_progs; i++)
    prog_free(s, &s->progs[i]);
  vkf_free(env, s->progs);
  if (s->inputs)
    be->vt->buffer_destroy(be, s->inputs);
  if (s->acts)
    be->vt->buffer_destroy(be, s->acts);
  if (s->grads)
    be->vt->buffer_destroy(be, s->grads);
  if (s->seqs)
    for (uint32_t i = 0; i < s->S; i++)
      vkf_free(env, s->seqs[i].hist);
  vkf_free(env, s->seqs);
  vkf_free(env, s->kc_off);
  vkf_free(env, s->vc_off);
  vkf_free(env, s->step_host);
  vkf_free(env, s->row_tok);
  vkf_free(env, s->row);
  vkf_free(env, s->logits);
  vkf_free(env, s->plogits);
  vkf_free(env, s->dlogits);
  vkf_sampler_free(&s->sampler);
  if (s->own_model)
    vkf_gpt_destroy(s->model);
  vkf_free(env, s);
}

static vkf_status session_alloc(vkf_session *s) {
  vkf_env *env = s->env;
  const uint32_t S = s->S, L = s->cfg.n_layer;
  s->seqs = vkf_calloc(env, S, sizeof(seq_state));
  s->kc_off = vkf_calloc(env, L, sizeof(uint64_t));
  s->vc_off = vkf_calloc(env, L, sizeof(uint64_t));
  s->row_tok = vkf_calloc(env, S, sizeof(int32_t *));
  s->row = vkf_calloc(env, S, sizeof(vkf_infer_row));
  s->logits = vkf_malloc(env, (size_t)S * s->V * sizeof(float));
  s->plogits = vkf_malloc(env, (size_t)S * s->V * sizeof(float));
  s->dlogits = vkf_malloc(env, (size_t)S * s->V * sizeof(float));
  if (!s->seqs || !s->kc_off || !s->vc_off || !s->row_tok || !s->row || !s->logits || !s->plogits ||
      !s->dlogits)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "session");
  for (uint32_t i = 0; i < S; i++)
    if (!(s->seqs[i].hist = vkf_malloc(env, (size_t)s->max_seq * sizeof(int32_t))))
      return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "session token history");
  if (vkf_sampler_init(&s->sampler, env, s->V) != VKF_OK)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "sampler");
  return VKF_OK;
}

/* Builds the slot-0 graphs of every prefill length and the batched decode
 * graph, sizes the shared buffers from the largest, allocates them and
 * zeroes the caches. */
static vkf_status session_plan(vkf_session *s) {
  vkf_status st = VKF_OK;
  uint64_t acts = 16, inputs = 16, step = 16;
  for (uint32_t T = 1;; T = T * 2 < s->chunk ? T * 2 : s->chunk) {
    prog *p;
    if ((st = prog_find(s, 1, T, 0, &p)) != VKF_OK)
      return st;
    if (T == s->chunk)
      break;
  }
  if (s->S > 1) {
    prog *p;
    if ((st = prog_find(s, s->S, 1, 0, &p)) != VKF_OK)
      return st;
  }
  for (uint32_t i = 0; i < s->n_progs; i++) {
    const vkf_infer_graph *ig = &s->progs[i].ig;
    const uint64_t *ab = ig->g->arena_bytes;
    acts = ab[VKF_ARENA_ACTS] > acts ? ab[VKF_ARENA_ACTS] : acts;
    inputs = ab[VKF_ARENA_INPUTS] > inputs ? ab[VKF_ARENA_INPUTS] : inputs;
    step = ig->in_end - ig->in_begin > step ? ig->in_end - ig->in_begin : step;
  }
  const vkf_infer_graph *ig0 = &s->progs[0].ig;
  for (uint32_t l = 0; l < s->cfg.n_layer; l++) {
    s->kc_off[l] = vkf_gn(ig0->g, ig0->kc[l])->offset;
    s->vc_off[l] = ig0->vc[l] ? vkf_gn(ig0->g, ig0->vc[l])->offset : UINT64_MAX;
  }
  s->cache_bytes = ig0->in_begin; /* the caches (states) come first */
  s->slot_bytes = vkf_gn(ig0->g, ig0->kc[0])->bytes / s->S;
  s->acts_bytes = acts;
  s->inputs_bytes = inputs;
  s->step_cap = step;
  if (!(s->step_host = vkf_calloc(s->env, 1, (size_t)step)))
    return vkf_fail(s->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "session step inputs");
  vkf_backend *be = s->be;
  st = be->vt->buffer_create(be, inputs, &s->inputs);
  if (st == VKF_OK)
    st = be->vt->buffer_create(be, acts, &s->acts);
  if (st == VKF_OK)
    st = be->vt->buffer_create(be, 16, &s->grads);
  if (st == VKF_OK) { /* zero caches: masked rows are multiplied by 0, never NaN;
                        zero states: empty sequences */
    vkf_op fill = {.kind = VKF_OP_FILL, .n_tensors = 1, .writes = 1};
    fill.t[0] = (vkf_tref){s->inputs, 0, s->cache_bytes};
    fill.p.fill = (vkf_fill_params){(uint32_t)(s->cache_bytes / 4), 0};
    st = be->vt->run(be, &fill);
  }
  return st;
}

vkf_status vkf_session_create(vkf_gpt *model, const vkf_session_desc *desc, vkf_session **out) {
  if (!model || !out)
    return VKF_ERROR_NULL_POINTER;
  *out = NULL;
  vkf_context *ctx = model->ctx;
  vkf_env *env = &ctx->env;
  vkf_session_desc d = desc ? *desc : (vkf_session_desc){0};
  const vkf_gpt_config *c = &model->cfg;
  uint32_t max_seq = d.max_seq ? d.max_seq : c->context_length;
  uint32_t S = d.n_seq ? d.n_seq : 1;
  if (c->positions == VKF_POS_LEARNED && max_seq > c->context_length)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "vkf_session_create: max_seq %u exceeds the model's %u learned positions",
                    max_seq, c->context_length);
  if (max_seq > (1u << 28) || S > 4096)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "vkf_session_create: max_seq %u (at most 2^28) or n_seq %u (at most 4096)",
                    max_seq, S);
  uint32_t chunk = d.prefill_chunk ? d.prefill_chunk : 256;
  if (chunk > max_seq)
    chunk = max_seq;
  const char *why = NULL;
  const vkf_infer_variant *var = vkf_infer_variant_for(c, max_seq, chunk, &why);
  if (!var)
    return vkf_fail(env, VKF_ERROR_UNSUPPORTED, "vkf_session_create: %s", why);
  vkf_session *s = vkf_calloc(env, 1, sizeof(*s));
  if (!s)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "session");
  s->ctx = ctx;
  s->env = env;
  s->be = ctx->be;
  s->model = model;
  s->cfg = *c;
  s->var = var;
  s->S = S;
  s->max_seq = max_seq;
  s->chunk = chunk;
  s->rows = var->rows(c, max_seq, chunk);
  s->V = c->vocab_size;
  atomic_init(&s->cancel, 0);
  vkf_status st = session_alloc(s);
  if (st == VKF_OK)
    st = session_plan(s);
  if (st != VKF_OK) {
    vkf_session_destroy(s);
    return st;
  }
  *out = s;
  return VKF_OK;
}

vkf_status vkf_session_open(vkf_context *ctx, const char *checkpoint, const vkf_session_desc *desc,
                            vkf_session **out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!checkpoint || !out)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_session_open: NULL argument");
  *out = NULL;
  vkf_gpt *m = NULL;
  vkf_status st = vkf_gpt_load_checkpoint(ctx, checkpoint, &m);
  if (st != VKF_OK)
    return st;
  st = vkf_session_create(m, desc, out);
  if (st != VKF_OK) {
    vkf_gpt_destroy(m);
    return st;
  }
  (*out)->own_model = true;
  return VKF_OK;
}

vkf_gpt *vkf_session_model(const vkf_session *s) {
  return s ? s->model : NULL;
}

vkf_status vkf_session_info_get(const vkf_session *s, vkf_session_info *out) {
  if (!s || !out)
    return VKF_ERROR_NULL_POINTER;
  memset(out, 0, sizeof(*out));
  const vkf_gpt_config *c = &s->cfg;
  out->n_seq = s->S;
  out->max_seq = s->max_seq;
  out->prefill_chunk = s->chunk;
  out->vocab_size = s->V;
  out->cache_rows = s->rows;
  if (s->var->recurrent)
    out->state_bytes_per_seq = s->slot_bytes * c->n_layer;
  else
    out->kv_bytes_per_token =
        2ull * c->n_layer * c->n_kv_head * (c->d_model / c->n_head) * sizeof(float);
  out->kv_bytes = s->cache_bytes;
  out->activation_bytes = s->acts_bytes;
  out->attention = s->var->name;
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* Low-level use                                                            */
/* ------------------------------------------------------------------------ */
static vkf_status check_seq(vkf_session *s, const char *fn, uint32_t seq) {
  if (seq >= s->S)
    return vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT, "%s: sequence %u of %u", fn, seq, s->S);
  return VKF_OK;
}

static vkf_status check_ids(vkf_session *s, const char *fn, const int32_t *ids, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (ids[i] < 0 || (uint32_t)ids[i] >= s->V)
      return vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: token %d at %u is outside the vocabulary [0, %u)", fn, ids[i], i, s->V);
  return VKF_OK;
}

static vkf_status check_room(vkf_session *s, const char *fn, uint32_t seq, uint64_t have,
                             uint64_t add) {
  if (have + add > s->max_seq)
    return vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT,
                    "%s: sequence %u holds %llu tokens; %llu more exceed max_seq %u", fn, seq,
                    (unsigned long long)have, (unsigned long long)add, s->max_seq);
  return VKF_OK;
}

vkf_status vkf_session_reset(vkf_session *s, uint32_t seq) {
  if (!s)
    return VKF_ERROR_NULL_POINTER;
  vkf_status st = check_seq(s, "vkf_session_reset", seq);
  if (st == VKF_OK) {
    s->seqs[seq].len = s->seqs[seq].n_hist = 0;
    s->seqs[seq].zero = s->var->recurrent; /* zeroed before its next token */
  }
  return st;
}

uint32_t vkf_session_length(const vkf_session *s, uint32_t seq) {
  return s && seq < s->S ? s->seqs[seq].n_hist : 0;
}

vkf_status vkf_session_append(vkf_session *s, uint32_t seq, const int32_t *tokens, uint32_t n,
                              float *logits) {
  static const char fn[] = "vkf_session_append";
  if (!s)
    return VKF_ERROR_NULL_POINTER;
  if (!tokens)
    return vkf_fail(s->env, VKF_ERROR_NULL_POINTER, "%s: tokens is NULL", fn);
  if (n == 0)
    return vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT, "%s: no tokens", fn);
  vkf_status st = check_seq(s, fn, seq);
  if (st == VKF_OK)
    st = check_ids(s, fn, tokens, n);
  if (st == VKF_OK)
    st = check_room(s, fn, seq, s->seqs[seq].n_hist, n);
  if (st != VKF_OK)
    return st;
  seq_state *q = &s->seqs[seq];
  memcpy(q->hist + q->n_hist, tokens, n * sizeof(int32_t));
  q->n_hist += n;
  st = flush_pending(s, seq, logits ? logits : s->plogits, false);
  if (st != VKF_OK) /* what was not cached is not part of the sequence */
    q->n_hist = q->len;
  return st;
}

vkf_status vkf_session_step(vkf_session *s, const uint32_t *seqs, const int32_t *tokens, uint32_t n,
                            float *logits) {
  static const char fn[] = "vkf_session_step";
  if (!s)
    return VKF_ERROR_NULL_POINTER;
  if (!seqs || !tokens)
    return vkf_fail(s->env, VKF_ERROR_NULL_POINTER, "%s: NULL argument", fn);
  if (n == 0 || n > s->S)
    return vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT, "%s: %u sequences (1 to %u)", fn, n, s->S);
  vkf_status st = check_ids(s, fn, tokens, n);
  for (uint32_t i = 0; st == VKF_OK && i < n; i++) {
    st = check_seq(s, fn, seqs[i]);
    for (uint32_t j = 0; st == VKF_OK && j < i; j++)
      if (seqs[j] == seqs[i])
        st = vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT, "%s: sequence %u given twice", fn,
                      seqs[i]);
    if (st == VKF_OK)
      st = check_room(s, fn, seqs[i], s->seqs[seqs[i]].n_hist, 1);
  }
  if (st != VKF_OK)
    return st;
  /* tokens known but not cached yet (the last of a generation) go first */
  for (uint32_t i = 0; st == VKF_OK && i < n; i++)
    st = flush_pending(s, seqs[i], s->plogits, false);
  if (st != VKF_OK)
    return st;
  for (uint32_t i = 0; i < n; i++) {
    seq_state *q = &s->seqs[seqs[i]];
    q->hist[q->n_hist++] = tokens[i];
  }
  float *out = logits ? logits : s->plogits;
  st = decode(s, seqs, n, out, NULL);
  if (st != VKF_OK)
    for (uint32_t i = 0; i < n; i++)
      s->seqs[seqs[i]].n_hist = s->seqs[seqs[i]].len;
  return st;
}

vkf_status vkf_session_fork(vkf_session *s, uint32_t src, uint32_t dst) {
  static const char fn[] = "vkf_session_fork";
  if (!s)
    return VKF_ERROR_NULL_POINTER;
  vkf_status st = check_seq(s, fn, src);
  if (st == VKF_OK)
    st = check_seq(s, fn, dst);
  if (st != VKF_OK || src == dst)
    return st;
  seq_state *a = &s->seqs[src], *b = &s->seqs[dst];
  /* the standard cache holds positions [0, len) in rows [0, len); the ring
   * any row; a recurrent state is one block (none to copy while src's is
   * still to be zeroed: dst's will be too) */
  uint64_t bytes;
  if (s->var->recurrent) {
    bytes = a->zero ? 0 : s->slot_bytes;
  } else {
    uint64_t rows = a->len < s->rows ? a->len : s->rows;
    bytes = rows * (s->slot_bytes / s->rows);
  }
  for (uint32_t l = 0; st == VKF_OK && bytes && l < s->cfg.n_layer; l++) {
    uint64_t off[2] = {s->kc_off[l], s->vc_off[l]};
    for (int k = 0; st == VKF_OK && k < 2 && off[k] != UINT64_MAX; k++)
      st = s->be->vt->copy(s->be, (vkf_tref){s->inputs, off[k] + dst * s->slot_bytes, bytes},
                           (vkf_tref){s->inputs, off[k] + src * s->slot_bytes, bytes});
  }
  if (st != VKF_OK) {
    b->len = b->n_hist = 0;
    b->zero = s->var->recurrent; /* partly copied */
    return st;
  }
  memcpy(b->hist, a->hist, a->n_hist * sizeof(int32_t));
  b->len = a->len;
  b->n_hist = a->n_hist;
  b->zero = a->zero;
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* Generation                                                               */
/* ------------------------------------------------------------------------ */
void vkf_session_cancel(vkf_session *s) {
  if (s)
    atomic_store(&s->cancel, 1);
}

vkf_status vkf_session_stats_get(const vkf_session *s, vkf_session_stats *out) {
  if (!s || !out)
    return VKF_ERROR_NULL_POINTER;
  *out = s->stats;
  return VKF_OK;
}

typedef struct gen_state {
  vkf_rng rng;
  bool running;
} gen_state;

typedef struct gen_run {
  vkf_session *s;
  vkf_generate_request *req;
  gen_state *gs;
  uint32_t n;
  vkf_token_fn fn;
  void *user;
  double t_start;
  bool first_seen;
} gen_run;

static bool is_stop(const vkf_generate_request *r, int32_t tok) {
  for (uint32_t i = 0; i < r->n_stop_tokens; i++)
    if (r->stop_tokens[i] == tok)
      return true;
  return false;
}

/* Samples request i's next token from logits and delivers it; updates its
 * state (running or stopped). */
static vkf_status gen_token(gen_run *g, uint32_t i, const float *logits) {
  vkf_session *s = g->s;
  vkf_generate_request *r = &g->req[i];
  seq_state *q = &s->seqs[r->seq];
  if (q->n_hist >= s->max_seq) {
    r->stop = VKF_STOP_FULL;
    g->gs[i].running = false;
    return VKF_OK;
  }
  uint32_t h0 =
      r->penalty_window && q->n_hist > r->penalty_window ? q->n_hist - r->penalty_window : 0;
  int32_t tok;
  vkf_status st = vkf_sampler_pick(&s->sampler, logits, s->V, &r->sample, q->hist + h0,
                                   q->n_hist - h0, &g->gs[i].rng, &tok);
  if (st != VKF_OK)
    return vkf_fail(s->env, st, "vkf_session_generate: sampling failed");
  s->stats.generated_tokens++;
  if (is_stop(r, tok)) {
    r->stop = VKF_STOP_TOKEN;
    g->gs[i].running = false;
    return VKF_OK;
  }
  q->hist[q->n_hist++] = tok; /* pending: the next step caches it */
  if (r->out && r->n_generated < r->out_cap)
    r->out[r->n_generated] = tok;
  vkf_token_event ev = {i, r->seq, r->n_generated, tok};
  r->n_generated++;
  if (!g->first_seen) {
    g->first_seen = true;
    s->stats.time_to_first_token = now_s() - g->t_start;
  }
  if (g->fn && g->fn(g->user, &ev) != 0) {
    r->stop = VKF_STOP_CALLBACK;
    g->gs[i].running = false;
  } else if (r->max_new_tokens && r->n_generated >= r->max_new_tokens) {
    r->stop = VKF_STOP_MAX_TOKENS;
    g->gs[i].running = false;
  }
  return VKF_OK;
}

static vkf_status check_requests(vkf_session *s, const vkf_generate_request *req, uint32_t n) {
  static const char fn[] = "vkf_session_generate";
  if (n == 0 || n > s->S)
    return vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT, "%s: %u requests (1 to %u)", fn, n, s->S);
  for (uint32_t i = 0; i < n; i++) {
    const vkf_generate_request *r = &req[i];
    if ((r->n_prompt && !r->prompt) || (r->n_stop_tokens && !r->stop_tokens) ||
        (r->out_cap && !r->out))
      return vkf_fail(s->env, VKF_ERROR_NULL_POINTER, "%s: request %u: NULL array", fn, i);
    if (r->flags & ~(uint32_t)VKF_GENERATE_CONTINUE)
      return vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT, "%s: request %u: unknown flags 0x%x", fn,
                      i, r->flags);
    vkf_status st = check_seq(s, fn, r->seq);
    if (st != VKF_OK)
      return st;
    for (uint32_t j = 0; j < i; j++)
      if (req[j].seq == r->seq)
        return vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT,
                        "%s: requests %u and %u use the same sequence %u", fn, j, i, r->seq);
    if (vkf_sampler_check(&r->sample) != VKF_OK)
      return vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: request %u: temperature, top_p or repetition_penalty out of range", fn,
                      i);
    if ((st = check_ids(s, fn, r->prompt, r->n_prompt)) != VKF_OK)
      return st;
    uint64_t have = (r->flags & VKF_GENERATE_CONTINUE) ? s->seqs[r->seq].n_hist : 0;
    if ((st = check_room(s, fn, r->seq, have, r->n_prompt)) != VKF_OK)
      return st;
    if (have + r->n_prompt == 0)
      return vkf_fail(s->env, VKF_ERROR_INVALID_ARGUMENT,
                      "%s: request %u: no prompt and nothing to continue", fn, i);
  }
  return VKF_OK;
}

/* A fresh request earlier than i with the same prompt (its cache can be
 * copied), or n. */
static uint32_t same_prompt(const vkf_generate_request *req, uint32_t i) {
  const vkf_generate_request *r = &req[i];
  if (r->flags & VKF_GENERATE_CONTINUE)
    return i;
  for (uint32_t j = 0; j < i; j++) {
    const vkf_generate_request *o = &req[j];
    if (!(o->flags & VKF_GENERATE_CONTINUE) && o->n_prompt == r->n_prompt &&
        memcmp(o->prompt, r->prompt, r->n_prompt * sizeof(int32_t)) == 0)
      return j;
  }
  return i;
}

static vkf_status cancelled(gen_run *g) {
  for (uint32_t i = 0; i < g->n; i++)
    if (g->gs[i].running || g->req[i].stop == VKF_STOP_NONE) {
      g->req[i].stop = VKF_STOP_CANCELLED;
      g->gs[i].running = false;
    }
  return vkf_fail(g->s->env, VKF_ERROR_CANCELLED, "vkf_session_generate: cancelled");
}

vkf_status vkf_session_generate(vkf_session *s, vkf_generate_request *req, uint32_t n,
                                vkf_token_fn fn, void *user) {
  if (!s)
    return VKF_ERROR_NULL_POINTER;
  if (!req)
    return vkf_fail(s->env, VKF_ERROR_NULL_POINTER, "vkf_session_generate: requests is NULL");
  vkf_status st = check_requests(s, req, n);
  if (st != VKF_OK)
    return st;
  gen_state *gs = vkf_calloc(s->env, n, sizeof(gen_state));
  uint32_t *act = vkf_malloc(s->env, n * sizeof(uint32_t));
  uint32_t *who = vkf_malloc(s->env, n * sizeof(uint32_t));
  if (!gs || !act || !who) {
    vkf_free(s->env, gs);
    vkf_free(s->env, act);
    vkf_free(s->env, who);
    return vkf_fail(s->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "vkf_session_generate");
  }
  memset(&s->stats, 0, sizeof(s->stats));
  gen_run g = {s, req, gs, n, fn, user, now_s(), false};
  for (uint32_t i = 0; i < n; i++) {
    req[i].n_generated = 0;
    req[i].stop = VKF_STOP_NONE;
    vkf_rng_seed(&gs[i].rng, req[i].seed);
    gs[i].running = true;
  }
  if (atomic_exchange(&s->cancel, 0))
    st = cancelled(&g);
  /* prefill, and each request's first token right after its prompt */
  for (uint32_t i = 0; st == VKF_OK && i < n; i++) {
    vkf_generate_request *r = &req[i];
    seq_state *q = &s->seqs[r->seq];
    float *lg = s->plogits + (size_t)i * s->V;
    uint32_t j = same_prompt(req, i);
    if (j < i && req[j].stop != VKF_STOP_CANCELLED && s->seqs[req[j].seq].len == req[j].n_prompt) {
      /* copy the shared prompt's cache and logits */
      double t0 = now_s();
      uint32_t keep = s->seqs[req[j].seq].n_hist;
      s->seqs[req[j].seq].n_hist = s->seqs[req[j].seq].len; /* without j's sampled token */
      st = vkf_session_fork(s, req[j].seq, r->seq);
      s->seqs[req[j].seq].n_hist = keep;
      memcpy(lg, s->plogits + (size_t)j * s->V, s->V * sizeof(float));
      s->stats.prefill_seconds += now_s() - t0;
    } else {
      if (!(r->flags & VKF_GENERATE_CONTINUE)) {
        q->len = q->n_hist = 0;
        q->zero = s->var->recurrent;
      }
      memcpy(q->hist + q->n_hist, r->prompt, r->n_prompt * sizeof(int32_t));
      q->n_hist += r->n_prompt;
      st = flush_pending(s, r->seq, lg, true);
      if (st == VKF_ERROR_CANCELLED) {
        q->n_hist = q->len;
        st = cancelled(&g);
      }
    }
    if (st == VKF_OK)
      st = gen_token(&g, i, lg);
  }
  /* decode: one step for every running request */
  double t_dec = now_s();
  step_times tm = {0};
  const uint64_t before = s->stats.generated_tokens;
  while (st == VKF_OK) {
    uint32_t na = 0;
    for (uint32_t i = 0; i < n; i++)
      if (gs[i].running)
        who[na] = i, act[na++] = req[i].seq;
    if (!na)
      break;
    if (atomic_exchange(&s->cancel, 0)) {
      st = cancelled(&g);
      break;
    }
    st = decode(s, act, na, s->dlogits, &tm);
    /* decode() wrote the logits of act[k] at k * V */
    double t0 = now_s();
    for (uint32_t k = 0; st == VKF_OK && k < na; k++)
      st = gen_token(&g, who[k], s->dlogits + (size_t)k * s->V);
    s->stats.step_sample_us += (now_s() - t0) * 1e6;
    s->stats.decode_steps++;
  }
  s->stats.decode_seconds = now_s() - t_dec;
  if (s->stats.decode_steps) {
    double k = 1e6 / (double)s->stats.decode_steps;
    s->stats.step_input_us = tm.input * k;
    s->stats.step_run_us = tm.run * k;
    s->stats.step_read_us = tm.read * k;
    s->stats.step_sample_us /= (double)s->stats.decode_steps;
  }
  s->stats.total_seconds = now_s() - g.t_start;
  if (s->stats.prefill_seconds > 0)
    s->stats.prefill_tokens_per_second = (double)s->stats.prompt_tokens / s->stats.prefill_seconds;
  if (s->stats.decode_seconds > 0)
    s->stats.decode_tokens_per_second =
        (double)(s->stats.generated_tokens - before) / s->stats.decode_seconds;
  vkf_free(s->env, gs);
  vkf_free(s->env, act);
  vkf_free(s->env, who);
  return st;
}
