/* GPT models: parameters, initialisation, Hugging Face safetensors I/O. */
#include "gpt.h"

#include "json.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static bool gpt2_style(const vkf_gpt_config *c) {
  return c->norm == VKF_NORM_LAYERNORM && c->mlp == VKF_MLP_GELU &&
         c->positions == VKF_POS_LEARNED && c->bias && !c->untied_head && c->n_kv_head == c->n_head;
}

static vkf_node param(vkf_graph *g, uint32_t flags, uint32_t ndim, int64_t d0, int64_t d1,
                      const char *fmt, ...) VKF_PRINTF(6, 7);

static vkf_node param(vkf_graph *g, uint32_t flags, uint32_t ndim, int64_t d0, int64_t d1,
                      const char *fmt, ...) {
  char name[96];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(name, sizeof(name), fmt, ap);
  va_end(ap);
  int64_t shape[2] = {d0, d1};
  return vkf_g_param(g, name, ndim, shape, flags);
}

vkf_status vkf_gpt_declare(vkf_graph *g, const vkf_gpt_config *c, vkf_gpt_params *p) {
  const int64_t C = c->d_model, V = c->vocab_size, T = c->context_length, F = c->d_ff;
  const int64_t D = c->d_model / c->n_head, Q = c->n_head * D, KV = c->n_kv_head * D;
  const uint32_t W = VKF_PARAM_DECAY; /* matrices and embeddings decay; norms, biases not */
  const bool ln = c->norm == VKF_NORM_LAYERNORM;
  p->gpt2_names = gpt2_style(c);
  if (p->gpt2_names) {
    p->wte = param(g, W, 2, V, C, "wte.weight");
    p->wpe = param(g, W, 2, T, C, "wpe.weight");
  } else {
    p->wte = param(g, W, 2, V, C, "model.embed_tokens.weight");
    if (c->positions == VKF_POS_LEARNED)
      p->wpe = param(g, W, 2, T, C, "model.embed_positions.weight");
  }
  for (uint32_t i = 0; i < c->n_layer; i++) {
    vkf_gpt_layer_params *l = &p->layers[i];
    memset(l, 0, sizeof(*l));
    if (p->gpt2_names) {
      l->norm1_w = param(g, 0, 1, C, 0, "h.%u.ln_1.weight", i);
      l->norm1_b = param(g, 0, 1, C, 0, "h.%u.ln_1.bias", i);
      l->qkv_w = param(g, W, 2, C, Q + 2 * KV, "h.%u.attn.c_attn.weight", i);
      l->qkv_b = param(g, 0, 1, Q + 2 * KV, 0, "h.%u.attn.c_attn.bias", i);
      l->o_w = param(g, W, 2, Q, C, "h.%u.attn.c_proj.weight", i);
      l->o_b = param(g, 0, 1, C, 0, "h.%u.attn.c_proj.bias", i);
      l->norm2_w = param(g, 0, 1, C, 0, "h.%u.ln_2.weight", i);
      l->norm2_b = param(g, 0, 1, C, 0, "h.%u.ln_2.bias", i);
      l->up_w = param(g, W, 2, C, F, "h.%u.mlp.c_fc.weight", i);
      l->up_b = param(g, 0, 1, F, 0, "h.%u.mlp.c_fc.bias", i);
      l->down_w = param(g, W, 2, F, C, "h.%u.mlp.c_proj.weight", i);
      l->down_b = param(g, 0, 1, C, 0, "h.%u.mlp.c_proj.bias", i);
      continue;
    }
    const char *pre = "model.layers";
    l->norm1_w = param(g, 0, 1, C, 0, "%s.%u.input_layernorm.weight", pre, i);
    if (ln && c->bias)
      l->norm1_b = param(g, 0, 1, C, 0, "%s.%u.input_layernorm.bias", pre, i);
    l->q_w = param(g, W, 2, Q, C, "%s.%u.self_attn.q_proj.weight", pre, i);
    l->k_w = param(g, W, 2, KV, C, "%s.%u.self_attn.k_proj.weight", pre, i);
    l->v_w = param(g, W, 2, KV, C, "%s.%u.self_attn.v_proj.weight", pre, i);
    if (c->bias) {
      l->q_b = param(g, 0, 1, Q, 0, "%s.%u.self_attn.q_proj.bias", pre, i);
      l->k_b = param(g, 0, 1, KV, 0, "%s.%u.self_attn.k_proj.bias", pre, i);
      l->v_b = param(g, 0, 1, KV, 0, "%s.%u.self_attn.v_proj.bias", pre, i);
    }
    l->o_w = param(g, W, 2, C, Q, "%s.%u.self_attn.o_proj.weight", pre, i);
    if (c->bias)
      l->o_b = param(g, 0, 1, C, 0, "%s.%u.self_attn.o_proj.bias", pre, i);
    l->norm2_w = param(g, 0, 1, C, 0, "%s.%u.post_attention_layernorm.weight", pre, i);
    if (ln && c->bias)
      l->norm2_b = param(g, 0, 1, C, 0, "%s.%u.post_attention_layernorm.bias", pre, i);
    if (c->mlp == VKF_MLP_SWIGLU) {
      /* gate then up, packed: together one [2F, C] weight (and [2F] bias),
       * so one matmul gives SwiGLU's fused [rows, 2F] input */
      const uint32_t P = VKF_PARAM_PACKED;
      l->gate_w = param(g, W, 2, F, C, "%s.%u.mlp.gate_proj.weight", pre, i);
      l->up_w = param(g, W | P, 2, F, C, "%s.%u.mlp.up_proj.weight", pre, i);
      if (c->bias) {
        l->gate_b = param(g, 0, 1, F, 0, "%s.%u.mlp.gate_proj.bias", pre, i);
        l->up_b = param(g, P, 1, F, 0, "%s.%u.mlp.up_proj.bias", pre, i);
      }
    } else {
      l->up_w = param(g, W, 2, F, C, "%s.%u.mlp.up_proj.weight", pre, i);
      if (c->bias)
        l->up_b = param(g, 0, 1, F, 0, "%s.%u.mlp.up_proj.bias", pre, i);
    }
    l->down_w = param(g, W, 2, C, F, "%s.%u.mlp.down_proj.weight", pre, i);
    if (c->bias)
      l->down_b = param(g, 0, 1, C, 0, "%s.%u.mlp.down_proj.bias", pre, i);
  }
  if (p->gpt2_names) {
    p->normf_w = param(g, 0, 1, C, 0, "ln_f.weight");
    p->normf_b = param(g, 0, 1, C, 0, "ln_f.bias");
  } else {
    p->normf_w = param(g, 0, 1, C, 0, "model.norm.weight");
    if (ln && c->bias)
      p->normf_b = param(g, 0, 1, C, 0, "model.norm.bias");
    if (c->untied_head)
      p->head = param(g, W, 2, V, C, "lm_head.weight");
  }
  return vkf_graph_status(g);
}

/* ------------------------------------------------------------------------ */
static void gpt_free(vkf_gpt *m) {
  if (!m)
    return;
  vkf_env *env = &m->ctx->env;
  if (m->params)
    m->ctx->be->vt->buffer_destroy(m->ctx->be, m->params);
  vkf_graph_destroy(m->pg);
  vkf_free(env, m->p.layers);
  vkf_free(env, m);
}

void vkf_gpt_destroy(vkf_gpt *m) {
  gpt_free(m);
}

const vkf_gpt_config *vkf_gpt_config_of(const vkf_gpt *m) {
  return m ? &m->cfg : NULL;
}

uint64_t vkf_gpt_parameter_count(const vkf_gpt *m) {
  return m ? m->n_params : 0;
}

vkf_status vkf_gpt_alloc(vkf_context *ctx, const vkf_gpt_config *cfg, vkf_gpt **out) {
  *out = NULL;
  vkf_gpt_config c = *cfg;
  vkf_status st = vkf_gpt_config_resolve(ctx, &c);
  if (st != VKF_OK)
    return st;
  vkf_env *env = &ctx->env;
  vkf_gpt *m = vkf_calloc(env, 1, sizeof(*m));
  if (!m)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "model");
  m->ctx = ctx;
  m->cfg = c;
  m->pg = vkf_graph_create(env);
  m->p.layers = vkf_calloc(env, c.n_layer, sizeof(vkf_gpt_layer_params));
  if (!m->pg || !m->p.layers) {
    gpt_free(m);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "model");
  }
  st = vkf_gpt_declare(m->pg, &c, &m->p);
  if (st == VKF_OK)
    st = ctx->be->vt->buffer_create(ctx->be, m->pg->arena_bytes[VKF_ARENA_PARAMS], &m->params);
  if (st != VKF_OK) {
    gpt_free(m);
    return st;
  }
  for (uint32_t i = 1; i < m->pg->n_nodes; i++)
    m->n_params += m->pg->nodes[i].elements;
  *out = m;
  return VKF_OK;
}

static vkf_tref node_ref(const vkf_gpt *m, vkf_node n) {
  const vkf_gnode *x = &m->pg->nodes[n];
  return (vkf_tref){m->params, x->offset, x->bytes};
}

static bool is_residual_proj(const vkf_gpt *m, vkf_node n) {
  for (uint32_t i = 0; i < m->cfg.n_layer; i++)
    if (m->p.layers[i].o_w == n || m->p.layers[i].down_w == n)
      return true;
  return false;
}

static bool is_norm_weight(const vkf_gpt *m, vkf_node n) {
  if (n == m->p.normf_w)
    return true;
  for (uint32_t i = 0; i < m->cfg.n_layer; i++)
    if (m->p.layers[i].norm1_w == n || m->p.layers[i].norm2_w == n)
      return true;
  return false;
}

vkf_status vkf_gpt_create(vkf_context *ctx, const vkf_gpt_config *cfg, uint64_t seed,
                          vkf_gpt **out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!cfg || !out)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_gpt_create: cfg or out is NULL");
  vkf_gpt *m;
  vkf_status st = vkf_gpt_alloc(ctx, cfg, &m);
  if (st != VKF_OK)
    return st;
  /* Parameters in declaration order, each from its own stream of the seed
   * so the layout of one tensor never shifts another's values. */
  vkf_env *env = &ctx->env;
  float *buf = NULL;
  uint64_t cap = 0;
  const double resid_std = 0.02 / sqrt(2.0 * m->cfg.n_layer);
  for (uint32_t i = 1; i < m->pg->n_nodes && st == VKF_OK; i++) {
    const vkf_gnode *x = &m->pg->nodes[i];
    if (x->elements > cap) {
      float *nb = vkf_realloc(env, buf, x->elements * sizeof(float));
      if (!nb) {
        st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "initialising %s", x->name);
        break;
      }
      buf = nb;
      cap = x->elements;
    }
    vkf_rng rng;
    vkf_rng_seed(&rng, seed ^ (0x9e3779b97f4a7c15ull * i));
    if (x->ndim == 2) {
      double std = is_residual_proj(m, i) ? resid_std : 0.02;
      for (uint64_t k = 0; k < x->elements; k++)
        buf[k] = (float)(std * vkf_rng_normal(&rng));
    } else {
      float v = is_norm_weight(m, i) ? 1.0f : 0.0f;
      for (uint64_t k = 0; k < x->elements; k++)
        buf[k] = v;
    }
    st = ctx->be->vt->write(ctx->be, node_ref(m, i), buf);
  }
  vkf_free(env, buf);
  if (st != VKF_OK) {
    gpt_free(m);
    return st;
  }
  *out = m;
  return VKF_OK;
}

vkf_status vkf_gpt_save(vkf_gpt *m, const char *config_path, const char *weights_path) {
  if (!m)
    return VKF_ERROR_NULL_POINTER;
  vkf_env *env = &m->ctx->env;
  if (!config_path || !weights_path)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_gpt_save: path is NULL");
  vkf_status st = vkf_gpt_config_write(m->ctx, config_path, &m->cfg);
  if (st != VKF_OK)
    return st;
  uint32_t n = m->pg->n_nodes - 1;
  float *host = vkf_malloc(env, m->pg->arena_bytes[VKF_ARENA_PARAMS]);
  vkf_st_out *outs = vkf_calloc(env, n, sizeof(*outs));
  if (!host || !outs) {
    vkf_free(env, host);
    vkf_free(env, outs);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "saving %s", weights_path);
  }
  vkf_tref all = {m->params, 0, m->pg->arena_bytes[VKF_ARENA_PARAMS]};
  st = m->ctx->be->vt->read(m->ctx->be, all, host);
  for (uint32_t i = 0; i < n; i++) {
    const vkf_gnode *x = &m->pg->nodes[i + 1];
    outs[i] = (vkf_st_out){x->name, VKF_ST_F32, x->ndim, x->shape, (const char *)host + x->offset};
  }
  const char *keys[] = {"format"}, *vals[] = {"pt"};
  if (st == VKF_OK)
    st = vkf_st_write(env, weights_path, outs, n, keys, vals, 1);
  vkf_free(env, host);
  vkf_free(env, outs);
  return st;
}

/* A name in the file for our parameter: as is, or with GPT-2's optional
 * "transformer." prefix. */
static const vkf_st_entry *find_param(const vkf_st_file *f, const char *name, bool gpt2) {
  const vkf_st_entry *e = vkf_st_find(f, name);
  if (!e && gpt2) {
    char alt[128];
    snprintf(alt, sizeof(alt), "transformer.%s", name);
    e = vkf_st_find(f, alt);
  }
  return e;
}

/* Tensors a file may hold that are not parameters (buffers HF saves). */
static bool ignorable(const char *name) {
  size_t n = strlen(name);
  const char *ends[] = {".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq"};
  for (size_t i = 0; i < VKF_ARRAY_LEN(ends); i++) {
    size_t k = strlen(ends[i]);
    if (n >= k && !strcmp(name + n - k, ends[i]))
      return true;
  }
  return !strcmp(name, "lm_head.weight"); /* a tied head some files store anyway */
}

vkf_status vkf_gpt_load(vkf_context *ctx, const char *config_path, const char *weights_path,
                        vkf_gpt **out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_env *env = &ctx->env;
  if (!config_path || !weights_path || !out)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_gpt_load: NULL argument");
  *out = NULL;
  vkf_gpt_config cfg;
  vkf_status st = vkf_gpt_config_read(ctx, config_path, &cfg);
  if (st != VKF_OK)
    return st;
  vkf_gpt *m;
  st = vkf_gpt_alloc(ctx, &cfg, &m);
  if (st != VKF_OK)
    return st;
  vkf_st_file *f;
  st = vkf_st_open(env, weights_path, &f);
  if (st == VKF_OK) {
    st = vkf_gpt_read_weights(m, f, weights_path, true);
    vkf_st_close(f);
  }
  if (st != VKF_OK) {
    gpt_free(m);
    return st;
  }
  *out = m;
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* Parameter access                                                         */
/* ------------------------------------------------------------------------ */
uint32_t vkf_gpt_tensor_count(const vkf_gpt *m) {
  return m ? m->pg->n_nodes - 1 : 0;
}

vkf_status vkf_gpt_tensor_info(const vkf_gpt *m, uint32_t index, vkf_gpt_tensor *out) {
  if (!m || !out)
    return VKF_ERROR_NULL_POINTER;
  if (index >= m->pg->n_nodes - 1)
    return vkf_fail(&m->ctx->env, VKF_ERROR_INVALID_ARGUMENT,
                    "vkf_gpt_tensor_info: index %u of %u tensors", index, m->pg->n_nodes - 1);
  const vkf_gnode *x = &m->pg->nodes[index + 1];
  out->name = x->name;
  out->ndim = x->ndim;
  memcpy(out->shape, x->shape, sizeof(out->shape));
  out->offset = x->offset / 4;
  out->elements = x->elements;
  out->decay = (x->param_flags & VKF_PARAM_DECAY) != 0;
  return VKF_OK;
}

uint64_t vkf_gpt_flat_size(const vkf_gpt *m) {
  return m ? m->pg->arena_bytes[VKF_ARENA_PARAMS] / 4 : 0;
}

static vkf_status flat_io(vkf_gpt *m, void *host, uint64_t count, bool write) {
  if (!m)
    return VKF_ERROR_NULL_POINTER;
  vkf_env *env = &m->ctx->env;
  if (!host)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_gpt_%s_params: NULL buffer",
                    write ? "write" : "read");
  if (count != vkf_gpt_flat_size(m))
    return vkf_fail(env, VKF_ERROR_SHAPE_MISMATCH,
                    "vkf_gpt_%s_params: %llu floats given, the flat buffer has %llu",
                    write ? "write" : "read", (unsigned long long)count,
                    (unsigned long long)vkf_gpt_flat_size(m));
  vkf_tref all = {m->params, 0, count * 4};
  return write ? m->ctx->be->vt->write(m->ctx->be, all, host)
               : m->ctx->be->vt->read(m->ctx->be, all, host);
}

vkf_status vkf_gpt_read_params(vkf_gpt *m, float *out, uint64_t count) {
  return flat_io(m, out, count, false);
}

vkf_status vkf_gpt_write_params(vkf_gpt *m, const float *in, uint64_t count) {
  return flat_io(m, (void *)in, count, true);
}

vkf_status vkf_gpt_read_weights(vkf_gpt *m, vkf_st_file *f, const char *weights_path,
                                bool require_all_used) {
  vkf_context *ctx = m->ctx;
  vkf_env *env = &ctx->env;
  vkf_status st = VKF_OK;
  float *buf = NULL;
  uint64_t cap = 0;
  for (uint32_t i = 1; st == VKF_OK && i < m->pg->n_nodes; i++) {
    const vkf_gnode *x = &m->pg->nodes[i];
    const vkf_st_entry *e = find_param(f, x->name, m->p.gpt2_names);
    if (!e) {
      st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: tensor \"%s\" is missing (the config asks for it)",
                    weights_path, x->name);
      break;
    }
    bool shape_ok = e->ndim == x->ndim;
    for (uint32_t d = 0; shape_ok && d < x->ndim; d++)
      shape_ok = e->shape[d] == x->shape[d];
    if (!shape_ok) {
      char want[64], got[64];
      int o = snprintf(want, sizeof(want), "[");
      for (uint32_t d = 0; d < x->ndim; d++)
        o += snprintf(want + o, sizeof(want) - (size_t)o, d ? ", %lld" : "%lld",
                      (long long)x->shape[d]);
      snprintf(want + o, sizeof(want) - (size_t)o, "]");
      o = snprintf(got, sizeof(got), "[");
      for (uint32_t d = 0; d < e->ndim && o < 60; d++)
        o += snprintf(got + o, sizeof(got) - (size_t)o, d ? ", %lld" : "%lld",
                      (long long)e->shape[d]);
      snprintf(got + o, sizeof(got) - (size_t)o, "]");
      st = vkf_fail(env, VKF_ERROR_SHAPE_MISMATCH, "%s: tensor \"%s\" is %s, the config needs %s",
                    weights_path, x->name, got, want);
      break;
    }
    if (e->dtype != VKF_ST_F32 && e->dtype != VKF_ST_F16 && e->dtype != VKF_ST_BF16) {
      st = vkf_fail(env, VKF_ERROR_DTYPE_MISMATCH,
                    "%s: tensor \"%s\" is %s; F32, F16 or BF16 expected", weights_path, x->name,
                    vkf_st_dtype_name(e->dtype));
      break;
    }
    if (x->elements > cap) {
      float *nb = vkf_realloc(env, buf, x->elements * sizeof(float));
      if (!nb) {
        st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "loading %s", x->name);
        break;
      }
      buf = nb;
      cap = x->elements;
    }
    st = vkf_st_read_f32(f, e, buf, x->elements);
    if (st == VKF_OK)
      st = ctx->be->vt->write(ctx->be, node_ref(m, i), buf);
  }
  /* every tensor in the file must be used: a name we do not know means the
   * file is for another architecture */
  for (uint32_t k = 0; require_all_used && st == VKF_OK && k < f->n; k++) {
    const char *name = f->entries[k].name;
    const char *bare = m->p.gpt2_names && !strncmp(name, "transformer.", 12) ? name + 12 : name;
    bool known = false;
    for (uint32_t i = 1; i < m->pg->n_nodes && !known; i++)
      known = !strcmp(m->pg->nodes[i].name, bare);
    if (!known && !ignorable(bare))
      st = vkf_fail(env, VKF_ERROR_FORMAT,
                    "%s: tensor \"%s\" does not belong to the model config.json describes",
                    weights_path, name);
  }
  vkf_free(env, buf);
  return st;
}
