/* GPT training: one graph holds forward, loss, backward, the gradient norm
 * and AdamW; it is planned once and recorded once, and every step replays
 * it (one submission on Vulkan). What changes per step travels as data: the
 * batch, the embedding backward's index, and AdamW's learning rate and bias
 * corrections (a 4-float tensor the recorded AdamW reads on the device). */
#include "gpt.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECKPOINT_KIND "vkformer-checkpoint-1"

struct vkf_trainer {
  vkf_gpt *m;
  vkf_context *ctx;
  vkf_env *env;
  vkf_backend *be;
  vkf_train_desc d;
  vkf_graph *g;
  vkf_gpt_graph gg;
  vkf_node grads_all, mstate, vstate, segs, norm, scratch, hyper;
  uint64_t n_flat;
  vkf_gexec *train, *eval;
  vkf_optim_desc od; /* beta1, beta2, eps, weight decay, clip: fixed */
  uint64_t step;
  int32_t *index; /* host copy of the embedding index, refilled per batch */
  vkf_train_memory mem;
  bool ran; /* the logits/grads hold something */
};

/* ------------------------------------------------------------------------ */
static vkf_status check_desc(vkf_context *ctx, const vkf_gpt_config *c, vkf_train_desc *d) {
  vkf_env *env = &ctx->env;
  if (!d->batch || !d->seq_len)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "train desc: batch and seq_len are required");
  if (d->seq_len > c->context_length)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "train desc: seq_len %u exceeds the model's context_length %u", d->seq_len,
                    c->context_length);
  if ((uint64_t)d->batch * d->seq_len > INT32_MAX)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "train desc: batch x seq_len too large");
  if (d->lr == 0)
    d->lr = 3e-4f;
  if (d->beta1 == 0)
    d->beta1 = 0.9f;
  if (d->beta2 == 0)
    d->beta2 = 0.95f;
  if (d->eps == 0)
    d->eps = 1e-8f;
  if (!(d->lr > 0) || !isfinite(d->lr) || !(d->min_lr >= 0) || d->min_lr > d->lr)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "train desc: lr %g must be finite and > 0, min_lr %g in [0, lr]", (double)d->lr,
                    (double)d->min_lr);
  if ((unsigned)d->schedule > VKF_LR_CONSTANT)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "train desc: unknown schedule %d",
                    (int)d->schedule);
  if (d->schedule == VKF_LR_COSINE && d->total_steps == 0)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "train desc: the cosine schedule needs total_steps");
  if (!(d->grad_clip >= 0) || !isfinite(d->grad_clip))
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "train desc: grad_clip %g must be >= 0",
                    (double)d->grad_clip);
  if (d->flags & ~(uint32_t)VKF_TRAIN_KEEP_LOGITS)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "train desc: unknown flags 0x%x", d->flags);
  /* the rest (betas, eps, weight decay) is checked with the optimiser */
  return VKF_OK;
}

float vkf_trainer_lr(const vkf_trainer *t, uint64_t step) {
  if (!t || step == 0)
    return 0.0f;
  const vkf_train_desc *d = &t->d;
  if (d->warmup_steps && step <= d->warmup_steps)
    return (float)((double)d->lr * (double)step / (double)d->warmup_steps);
  if (d->schedule == VKF_LR_CONSTANT)
    return d->lr;
  double span = d->total_steps > d->warmup_steps ? (double)(d->total_steps - d->warmup_steps) : 1.0;
  double progress = ((double)step - d->warmup_steps) / span;
  if (progress > 1.0)
    progress = 1.0;
  return (float)(d->min_lr + 0.5 * ((double)d->lr - d->min_lr) * (1.0 + cos(M_PI * progress)));
}

uint64_t vkf_trainer_steps(const vkf_trainer *t) {
  return t ? t->step : 0;
}

void vkf_trainer_destroy(vkf_trainer *t) {
  if (!t)
    return;
  vkf_env *env = t->env;
  vkf_gexec_destroy(t->eval);
  vkf_gexec_destroy(t->train);
  vkf_graph_destroy(t->g);
  vkf_free(env, t->gg.p.layers);
  vkf_free(env, t->index);
  vkf_free(env, t);
}

static vkf_status node_write(vkf_trainer *t, vkf_node n, const void *data) {
  return t->be->vt->write(t->be, vkf_gexec_tref(t->train, n), data);
}

static vkf_status node_read(vkf_trainer *t, vkf_node n, void *data) {
  return t->be->vt->read(t->be, vkf_gexec_tref(t->train, n), data);
}

/* The segment table: one row per parameter tensor (start, decay flag);
 * alignment gaps belong to the tensor before them (their gradient is 0). */
static vkf_status write_segments(vkf_trainer *t, uint32_t n) {
  int32_t *rows = vkf_malloc(t->env, (size_t)n * 2 * sizeof(int32_t));
  if (!rows)
    return vkf_fail(t->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "segment table");
  for (uint32_t i = 0; i < n; i++) {
    vkf_gpt_tensor info;
    vkf_gpt_tensor_info(t->m, i, &info);
    rows[2 * i] = i == 0 ? 0 : (int32_t)info.offset;
    rows[2 * i + 1] = info.decay ? (int32_t)VKF_OPTIM_SEG_DECAY : 0;
  }
  vkf_status st = node_write(t, t->segs, rows);
  vkf_free(t->env, rows);
  return st;
}

/* Runs one fill op on a node now (setup, outside the recorded step). */
static vkf_status fill_now(vkf_trainer *t, vkf_node n, float value) {
  vkf_op op = {.kind = VKF_OP_FILL, .n_tensors = 1, .writes = 1};
  op.t[0] = vkf_gexec_tref(t->train, n);
  uint32_t bits;
  memcpy(&bits, &value, 4);
  op.p.fill = (vkf_fill_params){(uint32_t)((op.t[0].bytes + 3) / 4), bits};
  return t->be->vt->run(t->be, &op);
}

vkf_status vkf_trainer_create(vkf_gpt *m, const vkf_train_desc *desc, vkf_trainer **out) {
  if (!m)
    return VKF_ERROR_NULL_POINTER;
  vkf_context *ctx = m->ctx;
  vkf_env *env = &ctx->env;
  if (!desc || !out)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_trainer_create: desc or out is NULL");
  *out = NULL;
  vkf_train_desc d = *desc;
  vkf_status st = check_desc(ctx, &m->cfg, &d);
  if (st != VKF_OK)
    return st;
  vkf_trainer *t = vkf_calloc(env, 1, sizeof(*t));
  if (!t)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "trainer");
  t->m = m;
  t->ctx = ctx;
  t->env = env;
  t->be = ctx->be;
  t->d = d;
  t->od = (vkf_optim_desc){.kind = VKF_OPTIM_ADAMW,
                           .flags = VKF_OPTIM_EXPLICIT,
                           .step = 1,
                           .lr = d.lr,
                           .beta1 = d.beta1,
                           .beta2 = d.beta2,
                           .eps = d.eps,
                           .weight_decay = d.weight_decay,
                           .max_grad_norm = d.grad_clip};
  t->g = vkf_graph_create(env);
  t->gg.p.layers = vkf_calloc(env, m->cfg.n_layer, sizeof(vkf_gpt_layer_params));
  if (!t->g || !t->gg.p.layers) {
    vkf_trainer_destroy(t);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "trainer graph");
  }
  vkf_graph *g = t->g;
  st = vkf_gpt_build(g, &m->cfg, d.batch, d.seq_len, true, &t->gg);
  if (st == VKF_OK && g->arena_bytes[VKF_ARENA_PARAMS] != m->pg->arena_bytes[VKF_ARENA_PARAMS])
    st = vkf_graph_fail(g, VKF_ERROR_INVALID_ARGUMENT, "trainer: parameter layout mismatch");
  if (st == VKF_OK) {
    vkf_g_keep(g, t->gg.loss);
    if (d.flags & VKF_TRAIN_KEEP_LOGITS)
      vkf_g_keep(g, t->gg.logits);
    st = vkf_g_backward(g, t->gg.loss);
  }
  uint32_t n_tensors = vkf_gpt_tensor_count(m);
  if (st == VKF_OK) {
    /* the optimiser over the flat buffers */
    t->n_flat = g->arena_bytes[VKF_ARENA_PARAMS] / 4;
    t->grads_all = vkf_g_grad(g, t->gg.params_all);
    int64_t nf = (int64_t)t->n_flat, one = 1, four = 4, seg_shape[2] = {n_tensors, 2};
    uint64_t scratch_n = 1;
    vkf_grad_norm_scratch_size(ctx, t->n_flat, &scratch_n);
    int64_t sn = (int64_t)scratch_n;
    t->mstate = vkf_g_input(g, "adamw.m", VKF_DTYPE_F32, 1, &nf);
    t->vstate = vkf_g_input(g, "adamw.v", VKF_DTYPE_F32, 1, &nf);
    t->segs = vkf_g_input(g, "adamw.segments", VKF_DTYPE_I32, 2, seg_shape);
    t->norm = vkf_g_input(g, "grad_norm", VKF_DTYPE_F32, 1, &one);
    t->scratch = vkf_g_input(g, "grad_norm.scratch", VKF_DTYPE_F32, 1, &sn);
    t->hyper = vkf_g_input(g, "adamw.hyper", VKF_DTYPE_F32, 1, &four);
    vkf_gstep s = {.kind = VKF_OP_GRAD_NORM, .n = 3, .writes = 3, .reads = 6};
    s.t[0].node = t->norm;
    s.t[1].node = t->scratch;
    s.t[2].node = t->grads_all;
    s.p.grad_norm = (vkf_grad_norm_params){(uint32_t)t->n_flat, (uint32_t)scratch_n};
    vkf_g_step(g, &s);
    vkf_adamw_params ap;
    st = vkf_adamw_params_fill(ctx, &t->od, t->n_flat, d.grad_clip > 0, &ap);
    if (st == VKF_OK) {
      ap.flags |=
          VKF_ADAMW_P_SEGMENTS | VKF_ADAMW_P_HYPER | (d.grad_clip > 0 ? VKF_ADAMW_P_CLIP : 0);
      ap.n_segments = n_tensors;
      vkf_gstep a = {.kind = VKF_OP_ADAMW, .n = 7, .writes = 0xd, .reads = 0x5f};
      a.t[0].node = t->gg.params_all;
      a.t[1].node = t->grads_all;
      a.t[2].node = t->mstate;
      a.t[3].node = t->vstate;
      a.t[4].node = t->segs;
      a.t[5].node = d.grad_clip > 0 ? t->norm : VKF_NODE_NONE;
      a.t[6].node = t->hyper;
      a.reads = 0x5f | (d.grad_clip > 0 ? 0x20 : 0);
      a.p.adamw = ap;
      vkf_g_step(g, &a);
      vkf_g_keep(g, t->grads_all);
    }
  }
  vkf_graph_memory gm;
  if (st == VKF_OK)
    st = vkf_g_plan(g, &gm);
  /* device memory the executors hold: the arenas, plus the scratch some
   * kernels allocate while the step is recorded (it belongs to the program) */
  vkf_memory_stats before = {0}, after = {0};
  vkf_memory_stats_get(ctx, &before);
  if (st == VKF_OK) {
    /* the model's parameter buffer is this graph's PARAMS arena */
    vkf_buffer *shared[VKF_ARENA_COUNT] = {0};
    shared[VKF_ARENA_PARAMS] = m->params;
    st = vkf_gexec_create(g, t->be, shared, 0, g->n_steps, true, &t->train);
  }
  if (st == VKF_OK)
    st = vkf_gexec_create(g, t->be, t->train->arena, 0, g->backward_from, true, &t->eval);
  vkf_memory_stats_get(ctx, &after);
  if (st == VKF_OK) {
    t->index = vkf_calloc(env, t->gg.index_len, sizeof(int32_t));
    if (!t->index)
      st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "embedding index");
  }
  if (st == VKF_OK)
    st = write_segments(t, n_tensors);
  if (st == VKF_OK)
    st = fill_now(t, t->mstate, 0.0f);
  if (st == VKF_OK)
    st = fill_now(t, t->vstate, 0.0f);
  if (st == VKF_OK)
    st = t->be->vt->synchronize(t->be);
  if (st != VKF_OK) {
    vkf_trainer_destroy(t);
    return st;
  }
  uint64_t opt = 2 * t->n_flat * 4;
  uint64_t planned = gm.grads + gm.inputs + gm.activations;
  uint64_t held = after.device_bytes_used - before.device_bytes_used;
  t->mem = (vkf_train_memory){
      .params = gm.params,
      .grads = gm.grads,
      .optimizer = opt,
      .inputs = gm.inputs - opt,
      .activations = gm.activations,
      .activations_without_reuse = gm.activations_unplanned,
      .total = gm.params + (held > planned ? held : planned),
  };
  *out = t;
  return VKF_OK;
}

vkf_status vkf_trainer_memory(const vkf_trainer *t, vkf_train_memory *out) {
  if (!t)
    return VKF_ERROR_NULL_POINTER;
  if (!out)
    return vkf_fail(t->env, VKF_ERROR_NULL_POINTER, "vkf_trainer_memory: out is NULL");
  *out = t->mem;
  return VKF_OK;
}

/* Checks the ids, writes the batch and the embedding index. */
static vkf_status load_batch(vkf_trainer *t, const int32_t *inputs, const int32_t *targets) {
  vkf_env *env = t->env;
  if (!inputs || !targets)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "trainer: inputs or targets is NULL");
  const uint32_t n = t->d.batch * t->d.seq_len, V = t->m->cfg.vocab_size;
  for (uint32_t i = 0; i < n; i++) {
    if (inputs[i] < 0 || (uint32_t)inputs[i] >= V)
      return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                      "trainer: input token %d at %u is outside the vocabulary [0, %u)", inputs[i],
                      i, V);
    if (targets[i] < 0 || (uint32_t)targets[i] >= V)
      return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                      "trainer: target %d at %u is outside the vocabulary [0, %u)", targets[i], i,
                      V);
  }
  int32_t *idx = NULL;
  uint32_t u = 0;
  size_t len = 0;
  vkf_status st = vkf_embedding_index(env, inputs, n, V, vkf_g_embedding_cap(n, V), &idx, &u, &len);
  if (st != VKF_OK)
    return st;
  memcpy(t->index, idx, len * sizeof(int32_t));
  vkf_free(env, idx);
  st = node_write(t, t->gg.tokens, inputs);
  if (st == VKF_OK)
    st = node_write(t, t->gg.targets, targets);
  if (st == VKF_OK)
    st = node_write(t, t->gg.index, t->index);
  return st;
}

vkf_status vkf_trainer_step(vkf_trainer *t, const int32_t *inputs, const int32_t *targets,
                            vkf_step_info *out) {
  if (!t)
    return VKF_ERROR_NULL_POINTER;
  vkf_status st = load_batch(t, inputs, targets);
  if (st != VKF_OK)
    return st;
  uint64_t step = t->step + 1;
  vkf_optim_desc od = t->od;
  od.step = step;
  od.lr = vkf_trainer_lr(t, step);
  vkf_adamw_params ap;
  st = vkf_adamw_params_fill(t->ctx, &od, t->n_flat, t->d.grad_clip > 0, &ap);
  if (st != VKF_OK)
    return st;
  float hyper[4] = {ap.lr, ap.lr_wd, ap.inv_bc1, ap.inv_bc2};
  st = node_write(t, t->hyper, hyper);
  if (st == VKF_OK)
    st = vkf_gexec_run(t->train);
  float loss = NAN, norm = NAN;
  if (st == VKF_OK)
    st = node_read(t, t->gg.loss, &loss);
  if (st == VKF_OK)
    st = node_read(t, t->norm, &norm);
  if (st != VKF_OK)
    return st;
  t->step = step;
  t->ran = true;
  if (out)
    *out = (vkf_step_info){.step = step, .loss = loss, .grad_norm = norm, .lr = od.lr};
  return VKF_OK;
}

vkf_status vkf_trainer_eval(vkf_trainer *t, const int32_t *inputs, const int32_t *targets,
                            float *loss) {
  if (!t)
    return VKF_ERROR_NULL_POINTER;
  if (!loss)
    return vkf_fail(t->env, VKF_ERROR_NULL_POINTER, "vkf_trainer_eval: loss is NULL");
  vkf_status st = load_batch(t, inputs, targets);
  if (st == VKF_OK)
    st = vkf_gexec_run(t->eval);
  if (st == VKF_OK)
    st = node_read(t, t->gg.loss, loss);
  if (st == VKF_OK)
    t->ran = true;
  return st;
}

static vkf_status read_flat(vkf_trainer *t, vkf_node n, float *out, uint64_t count, uint64_t want,
                            const char *what) {
  if (!t)
    return VKF_ERROR_NULL_POINTER;
  if (!out)
    return vkf_fail(t->env, VKF_ERROR_NULL_POINTER, "%s: out is NULL", what);
  if (count != want)
    return vkf_fail(t->env, VKF_ERROR_SHAPE_MISMATCH, "%s: %llu floats given, %llu needed", what,
                    (unsigned long long)count, (unsigned long long)want);
  return node_read(t, n, out);
}

vkf_status vkf_trainer_read_grads(vkf_trainer *t, float *out, uint64_t count) {
  return read_flat(t, t ? t->grads_all : 0, out, count, t ? t->n_flat : 0,
                   "vkf_trainer_read_grads");
}

vkf_status vkf_trainer_read_logits(vkf_trainer *t, float *out, uint64_t count) {
  if (t && !(t->d.flags & VKF_TRAIN_KEEP_LOGITS))
    return vkf_fail(t->env, VKF_ERROR_UNSUPPORTED,
                    "vkf_trainer_read_logits: create the trainer with VKF_TRAIN_KEEP_LOGITS");
  return read_flat(t, t ? t->gg.logits : 0, out, count,
                   t ? (uint64_t)t->d.batch * t->d.seq_len * t->m->cfg.vocab_size : 0,
                   "vkf_trainer_read_logits");
}

/* ------------------------------------------------------------------------ */
/* Checkpoints                                                              */
/* ------------------------------------------------------------------------ */
vkf_status vkf_safetensors_write(vkf_context *ctx, const char *path, const vkf_named_array *arrays,
                                 uint32_t n, const char *const *meta_keys,
                                 const char *const *meta_values, uint32_t n_meta) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_env *env = &ctx->env;
  if (!path || (n && !arrays) || (n_meta && (!meta_keys || !meta_values)))
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_safetensors_write: NULL argument");
  vkf_st_out *outs = vkf_calloc(env, n ? n : 1, sizeof(*outs));
  if (!outs)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "vkf_safetensors_write");
  vkf_status st = VKF_OK;
  for (uint32_t i = 0; i < n && st == VKF_OK; i++) {
    const vkf_named_array *a = &arrays[i];
    if (!a->name || !a->data)
      st = vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_safetensors_write: array %u", i);
    else if (a->dtype != VKF_DTYPE_F32 && a->dtype != VKF_DTYPE_I32)
      st = vkf_fail(env, VKF_ERROR_DTYPE_MISMATCH, "vkf_safetensors_write: %s: f32 or i32 only",
                    a->name);
    else if (a->ndim > VKF_MAX_DIMS)
      st = vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "vkf_safetensors_write: %s: ndim %u", a->name,
                    a->ndim);
    outs[i] = (vkf_st_out){a->name, a->dtype == VKF_DTYPE_F32 ? VKF_ST_F32 : VKF_ST_I32, a->ndim,
                           a->shape, a->data};
  }
  if (st == VKF_OK)
    st = vkf_st_write(env, path, outs, n, meta_keys, meta_values, n_meta);
  vkf_free(env, outs);
  return st;
}

vkf_status vkf_trainer_save(vkf_trainer *t, const char *path, const char *const *meta_keys,
                            const char *const *meta_values, uint32_t n_meta) {
  if (!t)
    return VKF_ERROR_NULL_POINTER;
  vkf_env *env = t->env;
  if (!path || (n_meta && (!meta_keys || !meta_values)))
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_trainer_save: NULL argument");
  for (uint32_t i = 0; i < n_meta; i++)
    if (!meta_keys[i] || !meta_values[i] || !strcmp(meta_keys[i], "step") ||
        !strcmp(meta_keys[i], "config") || !strcmp(meta_keys[i], "format") ||
        !strcmp(meta_keys[i], "vkformer"))
      return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                      "vkf_trainer_save: metadata key %u is NULL or reserved", i);
  uint32_t n_t = vkf_gpt_tensor_count(t->m);
  float *flat = vkf_malloc(env, 3 * t->n_flat * sizeof(float));
  vkf_st_out *outs = vkf_calloc(env, n_t + 2, sizeof(*outs));
  const char **keys = vkf_calloc(env, n_meta + 4, sizeof(char *));
  const char **vals = vkf_calloc(env, n_meta + 4, sizeof(char *));
  vkf_strbuf cfg;
  vkf_sb_init(&cfg, env);
  vkf_status st = (!flat || !outs || !keys || !vals)
                      ? vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "checkpoint")
                      : VKF_OK;
  float *params = flat, *mv = flat + t->n_flat, *vv = flat + 2 * t->n_flat;
  if (st == VKF_OK)
    st = vkf_gpt_read_params(t->m, params, t->n_flat);
  if (st == VKF_OK)
    st = node_read(t, t->mstate, mv);
  if (st == VKF_OK)
    st = node_read(t, t->vstate, vv);
  if (st == VKF_OK)
    st = vkf_gpt_config_json(t->ctx, &t->m->cfg, &cfg);
  char step[32];
  snprintf(step, sizeof(step), "%llu", (unsigned long long)t->step);
  int64_t nf = (int64_t)t->n_flat;
  if (st == VKF_OK) {
    for (uint32_t i = 0; i < n_t; i++) {
      const vkf_gnode *x = &t->m->pg->nodes[i + 1];
      outs[i] = (vkf_st_out){x->name, VKF_ST_F32, x->ndim, x->shape, params + x->offset / 4};
    }
    outs[n_t] = (vkf_st_out){"optimizer.adamw.m", VKF_ST_F32, 1, &nf, mv};
    outs[n_t + 1] = (vkf_st_out){"optimizer.adamw.v", VKF_ST_F32, 1, &nf, vv};
    keys[0] = "format";
    vals[0] = "pt";
    keys[1] = "vkformer";
    vals[1] = CHECKPOINT_KIND;
    keys[2] = "step";
    vals[2] = step;
    keys[3] = "config";
    vals[3] = cfg.data;
    for (uint32_t i = 0; i < n_meta; i++) {
      keys[4 + i] = meta_keys[i];
      vals[4 + i] = meta_values[i];
    }
    st = vkf_st_write(env, path, outs, n_t + 2, keys, vals, n_meta + 4);
  }
  vkf_sb_free(&cfg);
  vkf_free(env, flat);
  vkf_free(env, outs);
  vkf_free(env, keys);
  vkf_free(env, vals);
  return st;
}

/* Opens a checkpoint and parses its config. */
static vkf_status open_checkpoint(vkf_context *ctx, const char *path, vkf_st_file **f,
                                  vkf_gpt_config *cfg) {
  vkf_env *env = &ctx->env;
  vkf_status st = vkf_st_open(env, path, f);
  if (st != VKF_OK)
    return st;
  const char *kind = vkf_st_meta(*f, "vkformer"), *text = vkf_st_meta(*f, "config");
  if (!kind || strcmp(kind, CHECKPOINT_KIND) || !text)
    st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: not a vkformer checkpoint (no \"%s\" metadata)", path,
                  kind ? "config" : "vkformer");
  if (st == VKF_OK)
    st = vkf_gpt_config_parse(ctx, path, text, strlen(text), cfg);
  if (st != VKF_OK) {
    vkf_st_close(*f);
    *f = NULL;
  }
  return st;
}

vkf_status vkf_gpt_load_checkpoint(vkf_context *ctx, const char *path, vkf_gpt **out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!path || !out)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_gpt_load_checkpoint: NULL argument");
  *out = NULL;
  vkf_st_file *f;
  vkf_gpt_config cfg;
  vkf_status st = open_checkpoint(ctx, path, &f, &cfg);
  if (st != VKF_OK)
    return st;
  vkf_gpt *m = NULL;
  st = vkf_gpt_alloc(ctx, &cfg, &m);
  if (st == VKF_OK)
    st = vkf_gpt_read_weights(m, f, path, false);
  vkf_st_close(f);
  if (st != VKF_OK) {
    vkf_gpt_destroy(m);
    return st;
  }
  *out = m;
  return VKF_OK;
}

static vkf_status read_state(vkf_trainer *t, vkf_st_file *f, const char *path, const char *name,
                             float *dst) {
  const vkf_st_entry *e = vkf_st_find(f, name);
  if (!e)
    return vkf_fail(t->env, VKF_ERROR_FORMAT, "%s: tensor \"%s\" is missing", path, name);
  return vkf_st_read_f32(f, e, dst, t->n_flat);
}

vkf_status vkf_trainer_load(vkf_trainer *t, const char *path) {
  if (!t)
    return VKF_ERROR_NULL_POINTER;
  vkf_env *env = t->env;
  if (!path)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_trainer_load: path is NULL");
  vkf_st_file *f;
  vkf_gpt_config cfg;
  vkf_status st = open_checkpoint(t->ctx, path, &f, &cfg);
  if (st != VKF_OK)
    return st;
  if (memcmp(&cfg, &t->m->cfg, sizeof(cfg)) != 0)
    st = vkf_fail(env, VKF_ERROR_SHAPE_MISMATCH,
                  "%s: the checkpoint's model config differs from the trainer's model", path);
  const char *step_text = st == VKF_OK ? vkf_st_meta(f, "step") : NULL;
  char *end = NULL;
  unsigned long long step = step_text ? strtoull(step_text, &end, 10) : 0;
  if (st == VKF_OK && (!step_text || !*step_text || *end))
    st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: missing or malformed \"step\"", path);
  /* read everything into host memory first: a bad file changes nothing */
  float *mv = st == VKF_OK ? vkf_malloc(env, 2 * t->n_flat * sizeof(float)) : NULL;
  if (st == VKF_OK && !mv)
    st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "checkpoint");
  if (st == VKF_OK)
    st = read_state(t, f, path, "optimizer.adamw.m", mv);
  if (st == VKF_OK)
    st = read_state(t, f, path, "optimizer.adamw.v", mv + t->n_flat);
  vkf_gpt *tmp = NULL;
  if (st == VKF_OK)
    st = vkf_gpt_alloc(t->ctx, &cfg, &tmp);
  if (st == VKF_OK)
    st = vkf_gpt_read_weights(tmp, f, path, false);
  vkf_st_close(f);
  float *params = NULL;
  if (st == VKF_OK) {
    params = vkf_malloc(env, t->n_flat * sizeof(float));
    st = params ? vkf_gpt_read_params(tmp, params, t->n_flat)
                : vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "checkpoint");
  }
  if (st == VKF_OK)
    st = vkf_gpt_write_params(t->m, params, t->n_flat);
  if (st == VKF_OK)
    st = node_write(t, t->mstate, mv);
  if (st == VKF_OK)
    st = node_write(t, t->vstate, mv + t->n_flat);
  if (st == VKF_OK)
    t->step = step;
  vkf_gpt_destroy(tmp);
  vkf_free(env, params);
  vkf_free(env, mv);
  return st;
}

vkf_status vkf_checkpoint_meta(vkf_context *ctx, const char *path, const char *key, char *out,
                               size_t cap) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_env *env = &ctx->env;
  if (!path || !key || !out)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_checkpoint_meta: NULL argument");
  vkf_st_file *f;
  vkf_status st = vkf_st_open(env, path, &f);
  if (st != VKF_OK)
    return st;
  const char *v = vkf_st_meta(f, key);
  if (!v)
    st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: no metadata \"%s\"", path, key);
  else if (strlen(v) + 1 > cap)
    st = vkf_fail(env, VKF_ERROR_BUFFER_TOO_SMALL, "%s: metadata \"%s\" needs %zu bytes", path, key,
                  strlen(v) + 1);
  else
    memcpy(out, v, strlen(v) + 1);
  vkf_st_close(f);
  return st;
}
