/* Token sampling and a whole-context next-token predictor. */
#include "gpt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
  float logit;
  int32_t id;
} cand;

static int by_logit_desc(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->logit != y->logit)
    return x->logit > y->logit ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

vkf_status vkf_sample_logits(const float *logits, uint32_t vocab, const vkf_sample_desc *desc,
                             const int32_t *history, uint32_t n_history, vkf_rng *rng,
                             int32_t *out) {
  if (!logits || !out || (!rng && desc && desc->temperature > 0) || (n_history && !history))
    return VKF_ERROR_NULL_POINTER;
  if (!vocab || vocab > INT32_MAX)
    return VKF_ERROR_INVALID_ARGUMENT;
  vkf_sample_desc d = desc ? *desc : (vkf_sample_desc){0};
  if (!(d.temperature >= 0) || !isfinite(d.temperature) || !(d.top_p >= 0 && d.top_p <= 1) ||
      !(d.repetition_penalty >= 0) || !isfinite(d.repetition_penalty))
    return VKF_ERROR_INVALID_ARGUMENT;
  cand *c = malloc(vocab * sizeof(cand));
  if (!c)
    return VKF_ERROR_OUT_OF_HOST_MEMORY;
  for (uint32_t i = 0; i < vocab; i++)
    c[i] = (cand){logits[i], (int32_t)i};
  if (d.repetition_penalty > 0 && d.repetition_penalty != 1) {
    for (uint32_t h = 0; h < n_history; h++) {
      int32_t id = history[h];
      if (id < 0 || (uint32_t)id >= vocab)
        continue;
      float l = logits[id]; /* applied once per distinct token */
      c[id].logit = l > 0 ? l / d.repetition_penalty : l * d.repetition_penalty;
    }
  }
  for (uint32_t i = 0; i < vocab; i++)
    if (isnan(c[i].logit))
      c[i].logit = -INFINITY;
  qsort(c, vocab, sizeof(cand), by_logit_desc);
  if (d.temperature == 0) {
    *out = c[0].id;
    free(c);
    return VKF_OK;
  }
  uint32_t n = vocab;
  if (d.top_k && d.top_k < n)
    n = d.top_k;
  /* probabilities of the candidates, max-subtracted, in double */
  double *p = malloc(n * sizeof(double)), sum = 0;
  if (!p) {
    free(c);
    return VKF_ERROR_OUT_OF_HOST_MEMORY;
  }
  for (uint32_t i = 0; i < n; i++) {
    p[i] = c[i].logit == -INFINITY ? 0.0 : exp(((double)c[i].logit - c[0].logit) / d.temperature);
    sum += p[i];
  }
  if (d.top_p > 0 && d.top_p < 1) {
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
  int32_t pick = c[0].id;
  for (uint32_t i = 0; i < n; i++) {
    acc += p[i];
    if (r < acc && p[i] > 0) {
      pick = c[i].id;
      break;
    }
  }
  free(p);
  free(c);
  *out = pick;
  return VKF_OK;
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
