/* The GPT forward pass as a graph. */
#include "gpt.h"

#include <stdio.h>
#include <string.h>

static vkf_node heads(vkf_graph *g, vkf_node x, uint32_t B, uint32_t T, uint32_t H, uint32_t D) {
  int64_t s[4] = {B, T, H, D};
  return vkf_g_reshape(g, x, 4, s);
}

vkf_node vkf_gpt_norm(vkf_graph *g, const vkf_gpt_config *c, vkf_node x, vkf_node w, vkf_node b) {
  return c->norm == VKF_NORM_RMSNORM ? vkf_g_rmsnorm(g, x, w, c->norm_eps)
                                     : vkf_g_layernorm(g, x, w, b, c->norm_eps);
}

vkf_node vkf_gpt_layers(vkf_graph *g, const vkf_gpt_config *c, const vkf_gpt_params *p,
                        vkf_node params_all, vkf_node x, uint32_t B, uint32_t T,
                        const vkf_gpt_attend *att) {
  const uint32_t C = c->d_model, Hq = c->n_head, Hkv = c->n_kv_head, D = C / Hq, Q = Hq * D,
                 KV = Hkv * D, F = c->d_ff, N = B * T;
  const bool hf = p->gpt2_names; /* [in, out] weights, fused QKV */
  for (uint32_t i = 0; i < c->n_layer && vkf_graph_status(g) == VKF_OK; i++) {
    const vkf_gpt_layer_params *l = &p->layers[i];
    vkf_node h = vkf_gpt_norm(g, c, x, l->norm1_w, l->norm1_b);
    vkf_node q, k, v;
    if (hf) {
      q = vkf_g_linear_cols(g, h, l->qkv_w, l->qkv_b, 0, Q);
      k = vkf_g_linear_cols(g, h, l->qkv_w, l->qkv_b, Q, KV);
      v = vkf_g_linear_cols(g, h, l->qkv_w, l->qkv_b, Q + KV, KV);
    } else {
      q = vkf_g_linear(g, h, l->q_w, l->q_b, true);
      k = vkf_g_linear(g, h, l->k_w, l->k_b, true);
      v = vkf_g_linear(g, h, l->v_w, l->v_b, true);
    }
    vkf_node q4 = heads(g, q, B, T, Hq, D), k4 = heads(g, k, B, T, Hkv, D),
             v4 = heads(g, v, B, T, Hkv, D);
    if (c->positions == VKF_POS_ROPE) {
      q4 = att->rope(att->ctx, g, q4, c->rope_theta);
      k4 = att->rope(att->ctx, g, k4, c->rope_theta);
    }
    vkf_node a4 = att->attend(att->ctx, g, i, q4, k4, v4);
    int64_t sa[2] = {N, Q};
    vkf_node a = vkf_g_reshape(g, a4, 2, sa);
    x = vkf_g_add(g, x, vkf_g_linear(g, a, l->o_w, l->o_b, !hf));
    vkf_node h2 = vkf_gpt_norm(g, c, x, l->norm2_w, l->norm2_b);
    vkf_node f;
    if (c->mlp == VKF_MLP_SWIGLU) {
      /* gate_proj and up_proj are packed: one [2F, C] weight */
      int64_t sw[2] = {2 * (int64_t)F, C}, sb = 2 * (int64_t)F;
      vkf_node gu_w =
          vkf_g_view(g, params_all, vkf_gn(g, l->gate_w)->offset, "gate_up.weight", 2, sw);
      vkf_node gu_b = l->gate_b ? vkf_g_view(g, params_all, vkf_gn(g, l->gate_b)->offset,
                                             "gate_up.bias", 1, &sb)
                                : VKF_NODE_NONE;
      f = vkf_g_swiglu(g, vkf_g_linear(g, h2, gu_w, gu_b, true));
    } else {
      f = vkf_g_gelu(g, vkf_g_linear(g, h2, l->up_w, l->up_b, !hf));
    }
    x = vkf_g_add(g, x, vkf_g_linear(g, f, l->down_w, l->down_b, !hf));
  }
  return x;
}

/* Training and whole-sequence graphs: positions 0..T-1, attention over the
 * sequence itself with the variant the config names. */
static vkf_node train_rope(void *ctx, vkf_graph *g, vkf_node x, double theta) {
  (void)ctx;
  return vkf_g_rope(g, x, theta);
}

static vkf_node train_attend(void *ctx, vkf_graph *g, uint32_t layer, vkf_node q, vkf_node k,
                             vkf_node v) {
  const vkf_gpt_config *c = ctx;
  (void)layer;
  const uint32_t window = c->attention == VKF_ATTN_SLIDING ? c->sliding_window : 0;
  /* flash and sliding-window attention run the flash kernels: memory O(T),
   * and O(T * window) work for the window; linear attention O(T) time */
  if (c->attention == VKF_ATTN_LINEAR)
    return vkf_g_linear_attention(g, q, k, v, 0);
  if (c->attention == VKF_ATTN_FLASH || c->attention == VKF_ATTN_SLIDING)
    return vkf_g_attention_flash(g, q, k, v, window);
  return vkf_g_attention(g, q, k, v, window);
}

vkf_status vkf_gpt_build(vkf_graph *g, const vkf_gpt_config *c, uint32_t B, uint32_t T,
                         bool with_loss, vkf_gpt_graph *o) {
  vkf_gpt_params *p = &o->p;
  vkf_status st = vkf_gpt_declare(g, c, p);
  if (st != VKF_OK)
    return st;
  o->B = B;
  o->T = T;
  o->params_all = vkf_g_arena_node(g, VKF_ARENA_PARAMS);
  const uint32_t N = B * T;
  int64_t st2[2] = {B, T}, sN = N;
  o->tokens = vkf_g_input(g, "tokens", VKF_DTYPE_I32, 2, st2);
  o->index_len = vkf_g_embedding_index_len(N, c->vocab_size);
  int64_t il = (int64_t)o->index_len;
  o->index = vkf_g_input(g, "embedding.index", VKF_DTYPE_I32, 1, &il);
  vkf_node x = vkf_g_embedding(g, o->tokens, p->wte, p->wpe, o->index);
  const vkf_gpt_attend att = {train_rope, train_attend, (void *)c};
  x = vkf_gpt_layers(g, c, p, o->params_all, x, B, T, &att);
  vkf_node xf = vkf_gpt_norm(g, c, x, p->normf_w, p->normf_b);
  o->logits = vkf_g_linear(g, xf, p->head ? p->head : p->wte, VKF_NODE_NONE, true);
  if (with_loss) {
    o->targets = vkf_g_input(g, "targets", VKF_DTYPE_I32, 1, &sN);
    o->loss = vkf_g_cross_entropy(g, o->logits, o->targets);
  }
  return vkf_graph_status(g);
}
