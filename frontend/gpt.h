/* GPT model internals: the parameter layout shared by the model object and
 * every graph built from it (training, evaluation, inference). */
#ifndef VKF_GPT_H
#define VKF_GPT_H

#include "context.h"
#include "graph.h"
#include "json.h"

typedef struct vkf_gpt_layer_params {
  vkf_node norm1_w, norm1_b;
  /* GPT-2 style: qkv = fused [C, (Hq + 2 Hkv) D] stored [in, out], with
   * qkv_b; Llama style: q, k, v each [out, in] (+ biases) */
  vkf_node qkv_w, qkv_b;
  vkf_node q_w, k_w, v_w, q_b, k_b, v_b;
  vkf_node o_w, o_b;
  vkf_node norm2_w, norm2_b;
  /* GELU MLP: fc (up) and proj (down); SwiGLU adds gate */
  vkf_node gate_w, gate_b, up_w, up_b, down_w, down_b;
} vkf_gpt_layer_params;

typedef struct vkf_gpt_params {
  bool gpt2_names; /* GPT-2 naming and [in, out] layouts; else Llama */
  vkf_node wte, wpe, normf_w, normf_b, head;
  vkf_gpt_layer_params *layers;
} vkf_gpt_params;

struct vkf_gpt {
  vkf_context *ctx;
  vkf_gpt_config cfg;
  vkf_graph *pg; /* the parameter nodes only: names, shapes, offsets */
  vkf_gpt_params p;
  vkf_buffer *params; /* the PARAMS arena on the device */
  uint64_t n_params;
};

/* config.json text: parse (path names the source in errors), and write
 * (appends to sb). */
vkf_status vkf_gpt_config_parse(vkf_context *ctx, const char *path, const char *text, size_t len,
                                vkf_gpt_config *out);
vkf_status vkf_gpt_config_json(vkf_context *ctx, const vkf_gpt_config *cfg, vkf_strbuf *sb);

/* Declares every parameter of cfg in g, in the canonical order (so all
 * graphs of one model share offsets). layers has cfg->n_layer entries. */
vkf_status vkf_gpt_declare(vkf_graph *g, const vkf_gpt_config *cfg, vkf_gpt_params *p);

#endif

/* A GPT's forward pass in a graph (gpt_graph.c): parameters declared in
 * canonical order, inputs for tokens [B, T] and the embedding backward's
 * index, and the logits [B*T, V]; with_loss adds targets [B*T] and the mean
 * cross-entropy. */
typedef struct vkf_gpt_graph {
  vkf_gpt_params p;
  vkf_node params_all; /* the whole PARAMS arena (optimiser, fused views) */
  vkf_node tokens, index, targets, logits, loss;
  uint32_t B, T;
  uint64_t index_len;
} vkf_gpt_graph;

/* How a graph places its positions and attends: the training graph rotates
 * positions 0..T-1 and attends over its own keys; an inference graph reads
 * positions from an input and attends over its KV cache. */
typedef struct vkf_gpt_attend {
  /* RoPE of x [B, T, H, D] (called only with rotary positions) */
  vkf_node (*rope)(void *ctx, vkf_graph *g, vkf_node x, double theta);
  /* attention of layer `layer`: q [B, T, Hq, D], k and v [B, T, Hkv, D]
   * -> [B, T, Hq, D] */
  vkf_node (*attend)(void *ctx, vkf_graph *g, uint32_t layer, vkf_node q, vkf_node k, vkf_node v);
  void *ctx;
} vkf_gpt_attend;

/* The transformer layers over x [B*T, C]: norm, attention, residual, norm,
 * MLP, residual, for every layer; returns x after the last one (before the
 * final norm). One definition of the model for every graph. */
vkf_node vkf_gpt_layers(vkf_graph *g, const vkf_gpt_config *c, const vkf_gpt_params *p,
                        vkf_node params_all, vkf_node x, uint32_t B, uint32_t T,
                        const vkf_gpt_attend *att);
/* The norm the config asks for (layernorm with b, or rmsnorm). */
vkf_node vkf_gpt_norm(vkf_graph *g, const vkf_gpt_config *c, vkf_node x, vkf_node w, vkf_node b);

/* p.layers must hold cfg->n_layer entries (the caller owns it). */
vkf_status vkf_gpt_build(vkf_graph *g, const vkf_gpt_config *cfg, uint32_t B, uint32_t T,
                         bool with_loss, vkf_gpt_graph *out);
/* Reads weights by name from an open safetensors file into the model. */
struct vkf_st_file;
vkf_status vkf_gpt_read_weights(vkf_gpt *m, struct vkf_st_file *f, const char *path,
                                bool require_all_used);
/* The model object with its parameter buffer (contents undefined). */
vkf_status vkf_gpt_alloc(vkf_context *ctx, const vkf_gpt_config *cfg, vkf_gpt **out);
