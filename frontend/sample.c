/* Token sampling and a whole-context next-token predictor. */
#include "infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
  float logit;
  int32_t id;
} cand;

/* a ranks before b: higher logit, then lower id */
static bool ranks_before(cand a, cand b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

static int by_rank(const void *a, const void *b) {
  const cand *x = a, *y = b;
  return ranks_before(*x, *y) ? -1 : ranks_before(*y, *x) ? 1 : 0;
}

vkf_status vkf_sampler_init(vkf_sampler *s, vkf_env *env, uint32_t vocab) {
  memset(s, 0, sizeof(*s));
  s->env = env;
  s->cap = vocab;
  s->cand = vkf_malloc(env, (size_t)vocab * sizeof(cand));
  s->prob = vkf_malloc(env, (size_t)vocab * sizeof(double));
  s->seen = vkf_calloc(env, vocab, 1);
  if (!s->cand || !s->prob || !s->seen) {
    vkf_sampler_free(s);
    return VKF_ERROR_OUT_OF_HOST_MEMORY;
  }
  return VKF_OK;
}

void vkf_sampler_free(vkf_sampler *s) {
  if (!s->env)
    return;
  vkf_free(s->env, s->cand);
  vkf_free(s->env, s->prob);
  vkf_free(s->env, s->seen);
  memset(s, 0, sizeof(*s));
}

vkf_status vkf_sampler_check(const vkf_sample_desc *d) {
  if (!d)
    return VKF_OK;
  if (!(d->temperature >= 0) || !isfinite(d->temperature) || !(d->top_p >= 0 && d->top_p <= 1) ||
      !(d->repetition_penalty >= 0) || !isfinite(d->repetition_penalty))
    return VKF_ERROR_INVALID_ARGUMENT;
  return VKF_OK;
}

/* Sift the heap entry at i down (a min-heap in rank order: the root is the
 * worst of the kept candidates). */
static void sift_down(cand *h, uint32_t n, uint32_t i) {
  for (;;) {
    uint32_t w = i, l = 2 * i + 1, r = l + 1;
    if (l < n && ranks_before(h[w], h[l]))
      w = l;
    if (r < n && ranks_before(h[w], h[r]))
      w = r;
    if (w == i)
      return;
    cand t = h[i];
    h[i] = h[w];
    h[w] = t;
    i = w;
  }
}

/* The k best of c[0..n) into c[0..k), in rank order. */
static void top_k_sorted(cand *c, uint32_t n, uint32_t k) {
  /* heapify the first k (worst at the root), then let better ones in */
  for (uint32_t i = k / 2; i-- > 0;)
    sift_down(c, k, i);
  for (uint32_t i = k; i < n; i++) {
    if (ranks_before(c[i], c[0])) {
      c[0] = c[i];
      sift_down(c, k, 0);
    }
  }
  qsort(c, k, sizeof(cand), by_rank);
}

vkf_status vkf_sampler_pick(vkf_sampler *s, const float *logits, uint32_t vocab,
                            const vkf_sample_desc *desc, const int32_t *history, uint32_t n_history,
                            vkf_rng *rng, int32_t *out) {
  if (vocab > s->cap)
    return VKF_ERROR_INVALID_ARGUMENT;
  vkf_sample_desc d = desc ? *desc : (vkf_sample_desc){0};
  cand *c = s->cand;
  for (uint32_t i = 0; i < vocab; i++)
    c[i] = (cand){isnan(logits[i]) ? -INFINITY : logits[i], (int32_t)i};
  if (d.repetition_penalty > 0 && d.repetition_penalty != 1) {
    /* once per distinct token of the history */
    for (uint32_t h = 0; h < n_history; h++) {
      int32_t id = history[h];
      if (id < 0 || (uint32_t)id >= vocab || s->seen[id])
        continue;
      s->seen[id] = 1;
      float l = c[id].logit;
      c[id].logit = l > 0 ? l / d.repetition_penalty : l * d.repetition_penalty;
    }
    for (uint32_t h = 0; h < n_history; h++)
      if (history[h] >= 0 && (uint32_t)history[h] < vocab)
        s->seen[history[h]] = 0;
  }
  if (d.temperature == 0) { /* greedy: the first maximum */
    uint32_t best = 0;
    for (uint32_t i = 1; i < vocab; i++)
      if (c[i].logit > c[best].logit)
        best = i;
    *out = (int32_t)best;
    return VKF_OK;
  }
  const bool nucleus = d.top_p > 0 && d.top_p < 1;
  uint32_t n = vocab;
  if (d.top_k && d.top_k < vocab) {
    n = d.top_k;
    top_k_sorted(c, vocab, n);
  } else if (nucleus) {
    qsort(c, vocab, sizeof(cand), by_rank);
  }
  /* c[0..n) are the candidates (in rank order when top-k or top-p cut) */
  float mx = -INFINITY;
  for (uint32_t i = 0; i < n; i++)
    mx = c[i].logit > mx ? c[i].logit : mx;
  if (mx == -INFINITY) { /* nothing has probability: the best ranked */
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
      if (ranks_before(c[i], c[best]))
        best = i;
    *out = c[best].id;
    return VKF_OK;
  }
  double *p = s->prob, sum = 0;
  for (uint32_t i = 0; i < n; i++) {
    p[i] = c[i].logit == -INFINITY ? 0.0 : exp(((double)c[i].logit - mx) / d.temperature);
    sum += p[i];
  }
  if (nucleus) {
    /* the smallest prefix (rank order) whose mass reaches top_p */
    double acc = 0;
    uint32_t keep = n;
    for (uint32_t i = 0; i < n; i++) {
      acc += p[i] / sum;
      if (acc >= d.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
    sum = 0;
    for (uint32_t i = 0; i < n; i++)
      sum += p[i];
  }
  double r = vkf_rng_uniform(rng) * sum, acc = 0;
  int32_t pick = -1;
  for (uint32_t i = 0; i < n; i++) {
    if (p[i] <= 0)
      continue;
    pick = c[i].id; /* the last with probability, should rounding leave r >= acc */
    acc += p[i];
    if (r < acc)
      break;
  }
  *out = pick;
  return VKF_OK;
}

vkf_status vkf_sample_logits(const float *logits, uint32_t vocab, const vkf_sample_desc *desc,
                             const int32_t *history, uint32_t n_history, vkf_rng *rng,
                             int32_t *out) {
  if (!logits || !out || (!rng && desc && desc->temperature > 0) || (n_history && !history))
    return VKF_ERROR_NULL_POINTER;
  if (!vocab || vocab > INT32_MAX)
    return VKF_ERROR_INVALID_ARGUMENT;
  vkf_status st = vkf_sampler_check(desc);
  if (st != VKF_OK)
    return st;
  vkf_env env;
  vkf_env_init(&env, NULL);
  vkf_sampler s;
  st = vkf_sampler_init(&s, &env, vocab);
  if (st == VKF_OK)
    st = vkf_sampler_pick(&s, logits, vocab, desc, history, n_history, rng, out);
  vkf_sampler_free(&s);
  return st;
}

struct vkf_predictor {
  vkf_gpt *m;
  vkf_graph *g;
  vkf_gpt_graph gg;
  vkf_gexec *x;
  int32_t *tokens, *index;
  float *logits;
};

void vkf_predictor_destroy(vkf_predictor *p) {
  if (!p)
    return;
  vkf_env *env = &p->m->ctx->env;
  vkf_gexec_destroy(p->x);
  vkf_graph_destroy(p->g);
  vkf_free(env, p->gg.p.layers);
  vkf_free(env, p->tokens);
  vkf_free(env, p->index);
  vkf_free(env, p->logits);
  vkf_free(env, p);
}

vkf_status vkf_predictor_create(vkf_gpt *m, vkf_predictor **out) {
  if (!m || !out)
    return VKF_ERROR_NULL_POINTER;
  vkf_env *env = &m->ctx->env;
  *out = NULL;
  vkf_predictor *p = vkf_calloc(env, 1, sizeof(*p));
  if (!p)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "predictor");
  p->m = m;
  const uint32_t T = m->cfg.context_length, V = m->cfg.vocab_size;
  p->g = vkf_graph_create(env);
  p->gg.p.layers = vkf_calloc(env, m->cfg.n_layer, sizeof(vkf_gpt_layer_params));
  p->tokens = vkf_calloc(env, T, sizeof(int32_t));
  p->logits = vkf_malloc(env, (size_t)T * V * sizeof(float));
  vkf_status st = (!p->g || !p->gg.p.layers || !p->tokens || !p->logits)
                      ? vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "predictor")
                      : VKF_OK;
  if (st == VKF_OK)
    st = vkf_gpt_build(p->g, &m->cfg, 1, T, false, &p->gg);
  if (st == VKF_OK)
    p->g->arena_bytes[VKF_ARENA_GRADS] = 0; /* no gradients: no buffer for them */
  if (st == VKF_OK) {
    vkf_g_keep(p->g, p->gg.logits);
    p->index = vkf_calloc(env, p->gg.index_len, sizeof(int32_t));
    if (!p->index)
      st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "predictor");
  }
  vkf_buffer *shared[VKF_ARENA_COUNT] = {0};
  shared[VKF_ARENA_PARAMS] = m->params;
  if (st == VKF_OK)
    st = vkf_gexec_create(p->g, m->ctx->be, shared, 0, p->g->n_steps, true, &p->x);
  if (st != VKF_OK) {
    vkf_predictor_destroy(p);
    return st;
  }
  *out = p;
  return VKF_OK;
}

vkf_status vkf_predictor_next(vkf_predictor *p, const int32_t *tokens, uint32_t n, float *logits) {
  if (!p)
    return VKF_ERROR_NULL_POINTER;
  vkf_context *ctx = p->m->ctx;
  vkf_env *env = &ctx->env;
  if (!tokens || !logits)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_predictor_next: NULL argument");
  const uint32_t T = p->m->cfg.context_length, V = p->m->cfg.vocab_size;
  if (n == 0)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "vkf_predictor_next: no tokens");
  const int32_t *seen = n > T ? tokens + (n - T) : tokens;
  uint32_t m = n > T ? T : n;
  for (uint32_t i = 0; i < m; i++) {
    if (seen[i] < 0 || (uint32_t)seen[i] >= V)
      return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                      "vkf_predictor_next: token %d at %u is outside the vocabulary [0, %u)",
                      seen[i], i, V);
    p->tokens[i] = seen[i];
  }
  /* positions after the sequence do not affect it (causal): fill with 0 */
  memset(p->tokens + m, 0, (T - m) * sizeof(int32_t));
  vkf_backend *be = ctx->be;
  vkf_status st = be->vt->write(be, vkf_gexec_tref(p->x, p->gg.tokens), p->tokens);
  if (st == VKF_OK)
    st = vkf_gexec_run(p->x);
  if (st == VKF_OK) {
    vkf_tref t = vkf_gexec_tref(p->x, p->gg.logits);
    t.offset += (uint64_t)(m - 1) * V * 4;
    t.bytes = (uint64_t)V * 4;
    st = be->vt->read(be, t, logits);
  }
  return st;
}
