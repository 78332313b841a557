/* Step graphs of inference: one forward of B sequences x T new tokens that
 * reads and extends the per-layer caches, and the attention variants that
 * decide what those caches hold. Prefill is the graph with B = 1 and T = a
 * prompt piece, decoding the graph with T = 1; every per-step value
 * (tokens, positions, cache lengths, the ring's visibility) is data in the
 * step inputs, so each graph is recorded once and replayed. */
#include "infer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static vkf_node node_act(vkf_graph *g, const char *name, uint32_t ndim, int64_t d0, int64_t d1,
                         int64_t d2, int64_t d3) {
  int64_t s[4] = {d0, d1, d2, d3};
  return vkf_g_act(g, name, VKF_DTYPE_F32, ndim, s);
}

static uint32_t last_dim(vkf_graph *g, vkf_node n) {
  return (uint32_t)vkf_gn(g, n)->shape[vkf_gn(g, n)->ndim - 1];
}

/* out[i, :] = table[ids[i], :] for i < n (an embedding lookup; an id
 * outside the table gives a zero row). */
static vkf_node gather_rows(vkf_graph *g, const char *name, vkf_node ids, vkf_node table,
                            uint32_t n) {
  if (vkf_graph_status(g) != VKF_OK)
    return VKF_NODE_NONE;
  uint32_t C = last_dim(g, table);
  uint32_t V = (uint32_t)(vkf_gn(g, table)->elements / C);
  vkf_node out = node_act(g, name, 2, n, C, 1, 1);
  if (!out)
    return out;
  vkf_gstep s = {.kind = VKF_OP_EMBEDDING, .n = 4, .writes = 1, .reads = 0x6};
  s.t[0].node = out;
  s.t[1].node = ids;
  s.t[2].node = table;
  s.p.embedding = (vkf_embedding_params){.N = n, .T = n, .C = C, .V = V};
  vkf_g_step(g, &s);
  return out;
}

/* Rotate-half RoPE of x [B, T, H, D] at the positions in pos [B, T]. */
static vkf_node rope_at(vkf_graph *g, vkf_node x, vkf_node pos, double theta) {
  if (vkf_graph_status(g) != VKF_OK)
    return VKF_NODE_NONE;
  const vkf_gnode *n = vkf_gn(g, x);
  uint32_t B = (uint32_t)n->shape[0], T = (uint32_t)n->shape[1], H = (uint32_t)n->shape[2],
           D = (uint32_t)n->shape[3];
  char name[96];
  snprintf(name, sizeof(name), "%.80s.rope", n->name);
  vkf_node out = node_act(g, name, 4, B, T, H, D);
  if (!out)
    return out;
  vkf_gstep s = {.kind = VKF_OP_ROPE, .n = 5, .writes = 1, .reads = 0x12};
  s.t[0].node = out;
  s.t[1].node = x;
  s.t[4].node = pos;
  vkf_rope_params *p = &s.p.rope;
  *p = (vkf_rope_params){.B = B,
                         .T = T,
                         .H = H,
                         .D = D,
                         .pairs = D / 2,
                         .sB = T * H * D,
                         .sT = H * D,
                         .sH = D,
                         .flags = VKF_ROPEF_POS_IDS};
  vkf_rope_freq_fraction(theta, D, &p->freq_hi, &p->freq_lo);
  vkf_g_step(g, &s);
  return out;
}

/* The caches of the graph's slots: [B, rows, Hkv, D] views. */
static void cache_views(vkf_infer_graph *ig, uint32_t l, vkf_node *k, vkf_node *v) {
  const uint32_t Hkv = ig->cfg.n_kv_head, D = ig->cfg.d_model / ig->cfg.n_head;
  int64_t shape[4] = {ig->B, ig->rows, Hkv, D};
  uint64_t off = (uint64_t)ig->slot0 * ig->rows * Hkv * D * 4;
  *k = vkf_g_view(ig->g, ig->kc[l], off, "cache.k.slots", 4, shape);
  *v = vkf_g_view(ig->g, ig->vc[l], off, "cache.v.slots", 4, shape);
}

/* A kv_write step: rows of k and v into kc and vc as `where` says. */
static void kv_write_node(vkf_graph *g, vkf_node kc, vkf_node vc, vkf_node k, vkf_node v,
                          vkf_node where, vkf_kv_write_params p) {
  vkf_gstep s = {.kind = VKF_OP_KV_WRITE, .n = 5, .writes = 3, .reads = 0x1c};
  s.t[0].node = kc;
  s.t[1].node = vc;
  s.t[2].node = k;
  s.t[3].node = v;
  s.t[4].node = where;
  s.p.kv_write = p;
  vkf_g_step(g, &s);
}

static void kv_write_step(vkf_infer_graph *ig, vkf_node kc, vkf_node vc, vkf_node k, vkf_node v,
                          uint32_t flags) {
  const uint32_t W = ig->cfg.n_kv_head * (ig->cfg.d_model / ig->cfg.n_head);
  kv_write_node(ig->g, kc, vc, k, v, ig->where,
                (vkf_kv_write_params){
                    .B = ig->B, .T = ig->T, .rows = ig->rows, .Wk = W, .Wv = W, .flags = flags});
}

/* out = attention of q over the slots' cache rows; P materialised (standard
 * kernels). Visibility by kv_lens (bottom-right aligned, causal, window) or
 * by the mask. */
static vkf_node attention_step(vkf_infer_graph *ig, vkf_node q, vkf_node kc, vkf_node vc,
                               bool masked) {
  vkf_graph *g = ig->g;
  const uint32_t Hq = ig->cfg.n_head, Hkv = ig->cfg.n_kv_head, D = ig->cfg.d_model / Hq;
  vkf_node out = node_act(g, "attention", 4, ig->B, ig->T, Hq, D);
  vkf_node P = node_act(g, "attention.P", 4, ig->B, Hq, ig->T, ig->rows);
  if (!out || !P)
    return VKF_NODE_NONE;
  vkf_gstep s = {.kind = VKF_OP_ATTENTION_FORWARD, .n = 8, .writes = 3, .reads = 0x1c};
  s.t[0].node = out;
  s.t[1].node = P;
  s.t[2].node = q;
  s.t[3].node = kc;
  s.t[4].node = vc;
  vkf_attention_params *p = &s.p.attention;
  *p = (vkf_attention_params){.B = ig->B,
                              .Tq = ig->T,
                              .Tk = ig->rows,
                              .Hq = Hq,
                              .Hkv = Hkv,
                              .D = D,
                              .Dv = D,
                              .scale = (float)(1.0 / sqrt((double)D))};
  if (masked) {
    s.t[5].node = ig->mask;
    s.reads |= 0x20;
    p->flags = VKF_ATTN_MASK;
    p->mask_cols = ig->rows;
    p->mask_si = ig->rows;
    p->mask_sh = 0;
    p->mask_sb = ig->T * ig->rows;
  } else {
    s.t[6].node = ig->kv_lens;
    s.reads |= 0x40;
    p->flags = VKF_ATTN_CAUSAL | VKF_ATTN_KV_LENS | VKF_ATTN_Q_AT_KV_END;
    p->window = ig->window;
  }
  vkf_g_step(g, &s);
  return out;
}

/* K and V caches [n_slots, rows, Hkv, D] per layer (standard, sliding-ring). */
static void kv_declare(vkf_infer_graph *ig) {
  const uint32_t Hkv = ig->cfg.n_kv_head, D = ig->cfg.d_model / ig->cfg.n_head;
  for (uint32_t l = 0; l < ig->cfg.n_layer; l++) {
    int64_t cs[4] = {ig->n_slots, ig->rows, Hkv, D};
    char name[48];
    snprintf(name, sizeof(name), "cache.k.%u", l);
    ig->kc[l] = vkf_g_input(ig->g, name, VKF_DTYPE_F32, 4, cs);
    snprintf(name, sizeof(name), "cache.v.%u", l);
    ig->vc[l] = vkf_g_input(ig->g, name, VKF_DTYPE_F32, 4, cs);
  }
}

/* ---- standard: every position's K and V kept (rows = max_seq) ---- */
static uint32_t std_rows(const vkf_gpt_config *cfg, uint32_t max_seq, uint32_t chunk) {
  (void)cfg;
  (void)chunk;
  return max_seq;
}

static void std_inputs(vkf_infer_graph *ig) {
  int64_t sB = ig->B;
  ig->kv_lens = vkf_g_input(ig->g, "kv_lens", VKF_DTYPE_I32, 1, &sB);
}

static vkf_node std_attend(vkf_infer_graph *ig, uint32_t l, vkf_node q, vkf_node k, vkf_node v) {
  vkf_node kc, vc;
  cache_views(ig, l, &kc, &vc);
  kv_write_step(ig, kc, vc, k, v, 0);
  return attention_step(ig, q, kc, vc, false);
}

/* The last query of row b sits at the end of its cache: kv_lens = pos0 + n
 * places query t at pos0 - (T - n) + t. An idle row (n = 0) sees nothing. */
static void std_fill(const vkf_infer_graph *ig, const vkf_infer_row *rows, void *dst) {
  int32_t *kv_lens = vkf_infer_at(ig, dst, ig->kv_lens);
  for (uint32_t b = 0; b < ig->B; b++)
    kv_lens[b] = rows[b].n > 0 ? rows[b].pos0 + rows[b].n : 0;
}

static const vkf_infer_variant standard = {
    .name = "standard",
    .rows = std_rows,
    .declare_state = kv_declare,
    .declare_inputs = std_inputs,
    .attend = std_attend,
    .fill = std_fill,
};

/* ---- sliding-ring: a sliding window's last positions in a ring ----
 * Position p lives in row p mod R with R = window + chunk: a piece of at most
 * chunk tokens overwrites only positions older than every window it needs.
 * Rows are not in position order, so visibility is a mask the host computes
 * from each sequence's length: row r holds the latest position q < pos0 + n
 * with q = r (mod R), visible to a query at p when p - window < q <= p. */
static uint32_t ring_rows(const vkf_gpt_config *cfg, uint32_t max_seq, uint32_t chunk) {
  (void)max_seq;
  return cfg->sliding_window + chunk;
}

static void ring_inputs(vkf_infer_graph *ig) {
  int64_t sm[4] = {ig->B, 1, ig->T, ig->rows};
  ig->mask = vkf_g_input(ig->g, "mask", VKF_DTYPE_F32, 4, sm);
}

static vkf_node ring_attend(vkf_infer_graph *ig, uint32_t l, vkf_node q, vkf_node k, vkf_node v) {
  vkf_node kc, vc;
  cache_views(ig, l, &kc, &vc);
  kv_write_step(ig, kc, vc, k, v, VKF_KVW_RING);
  return attention_step(ig, q, kc, vc, true);
}

static void ring_fill(const vkf_infer_graph *ig, const vkf_infer_row *rows, void *dst) {
  const int64_t R = ig->rows, W = ig->cfg.sliding_window, T = ig->T;
  float *mask = vkf_infer_at(ig, dst, ig->mask);
  for (uint32_t b = 0; b < ig->B; b++) {
    const int64_t n = rows[b].n, end = (int64_t)rows[b].pos0 + n; /* positions < end written */
    for (int64_t t = 0; t < T; t++) {
      float *m = mask + ((size_t)b * (size_t)T + (size_t)t) * (size_t)R;
      const int64_t p = end - T + t; /* query position (padding: t < T - n) */
      for (int64_t r = 0; r < R; r++) {
        bool vis = false;
        if (t >= T - n && r < end) {
          int64_t q = r + (end - 1 - r) / R * R;
          vis = q <= p && q > p - W;
        }
        m[r] = vis ? 0.0f : -INFINITY;
      }
    }
  }
}

static const vkf_infer_variant sliding_ring = {
    .name = "sliding-ring",
    .rows = ring_rows,
    .declare_state = kv_declare,
    .declare_inputs = ring_inputs,
    .attend = ring_attend,
    .fill = ring_fill,
};

/* ---- linear: linear attention's recurrent state ----
 * Per layer and sequence one [Hkv, D, D + 1] block: S | z of each kv head
 * (see vkf_linear_attention_desc), O(1) in the sequence length. All layers
 * share one tensor `state` [n_layer * n_slots, Hkv, D, D + 1], layer-major
 * (layer l's slots from l * n_slots on), so that one op can write back
 * every layer of a batched step; kc[l] is layer l's part.
 *
 * B = 1 (a prompt piece, or one sequence's decoding step): the step
 * advances the sequence's slot in place (vkf_g_linear_attention_state: the
 * decode op for T = 1, the chunked forward from and into the state for
 * T > 1). B > 1 (a batched decoding step over every slot) has idle rows
 * (n = 0), whose states must not move, but the linear attention ops advance
 * every row they are given. So the step copies all states into `scratch`
 * first, advances the copies, and after the last layer writes back only
 * the active rows' blocks with kv_write (where = keep: (0, Hkv) for an
 * active row's block, (0, 0) otherwise). Cost: two passes over the states
 * (D (D + 1) Hkv floats per layer and sequence, small next to the weights),
 * exact copies both (x * 1 and plain moves). */
static uint32_t lin_rows(const vkf_gpt_config *cfg, uint32_t max_seq, uint32_t chunk) {
  (void)cfg;
  (void)max_seq;
  (void)chunk;
  return 0;
}

/* floats of one layer's state of one sequence */
static uint64_t lin_block(const vkf_gpt_config *c) {
  const uint64_t D = c->d_model / c->n_head;
  return (uint64_t)c->n_kv_head * D * (D + 1);
}

static void lin_declare(vkf_infer_graph *ig) {
  const vkf_gpt_config *c = &ig->cfg;
  const uint32_t L = c->n_layer, Hkv = c->n_kv_head, D = c->d_model / c->n_head;
  int64_t ss[4] = {(int64_t)L * ig->n_slots, Hkv, D, D + 1};
  ig->state = vkf_g_input(ig->g, "state", VKF_DTYPE_F32, 4, ss);
  for (uint32_t l = 0; l < L && ig->state; l++) {
    int64_t ls[4] = {ig->n_slots, Hkv, D, D + 1};
    char name[48];
    snprintf(name, sizeof(name), "state.%u", l);
    ig->kc[l] =
        vkf_g_view(ig->g, ig->state, (uint64_t)l * ig->n_slots * lin_block(c) * 4, name, 4, ls);
    ig->vc[l] = VKF_NODE_NONE;
  }
}

static void lin_inputs(vkf_infer_graph *ig) {
  if (ig->B == 1)
    return;
  int64_t sk[2] = {(int64_t)ig->cfg.n_layer * ig->n_slots, 2};
  ig->keep = vkf_g_input(ig->g, "state.keep", VKF_DTYPE_I32, 2, sk);
}

/* The graph's slots of layer l in `all` (state or scratch). */
static vkf_node lin_slots(vkf_infer_graph *ig, vkf_node all, uint32_t l, const char *name) {
  const uint32_t Hkv = ig->cfg.n_kv_head, D = ig->cfg.d_model / ig->cfg.n_head;
  int64_t s[4] = {ig->B, Hkv, D, D + 1};
  uint64_t first = (uint64_t)l * ig->n_slots + ig->slot0;
  return vkf_g_view(ig->g, all, first * lin_block(&ig->cfg) * 4, name, 4, s);
}

/* state <- scratch for the blocks `keep` selects: one kv_write over
 * n_layer * n_slots "sequences" of Hkv rows of D (D + 1) floats each (rows
 * of a kv head keep every kernel loop short, on lavapipe too). kv_write
 * moves a second pair of caches; here that is one float per row into a
 * sink nothing reads. */
static void lin_write_back(vkf_infer_graph *ig) {
  vkf_graph *g = ig->g;
  const uint32_t Hkv = ig->cfg.n_kv_head, D = ig->cfg.d_model / ig->cfg.n_head;
  const int64_t NB = (int64_t)ig->cfg.n_layer * ig->n_slots;
  int64_t sw[3] = {NB, Hkv, (int64_t)D * (D + 1)}, s1[3] = {NB, Hkv, 1};
  vkf_node dst = vkf_g_view(g, ig->state, 0, "state.rows", 3, sw);
  vkf_node src = vkf_g_view(g, ig->scratch, 0, "scratch.rows", 3, sw);
  vkf_node sink = vkf_g_act(g, "state.keep.sink", VKF_DTYPE_F32, 3, s1);
  vkf_node sink_src = vkf_g_view(g, ig->scratch, 0, "scratch.first", 3, s1);
  if (vkf_graph_status(g) != VKF_OK)
    return;
  kv_write_node(
      g, dst, sink, src, sink_src, ig->keep,
      (vkf_kv_write_params){.B = (uint32_t)NB, .T = Hkv, .rows = Hkv, .Wk = D * (D + 1), .Wv = 1});
}

static vkf_node lin_attend(vkf_infer_graph *ig, uint32_t l, vkf_node q, vkf_node k, vkf_node v) {
  vkf_graph *g = ig->g;
  if (!ig->keep) /* B = 1: the slot itself */
    return vkf_g_linear_attention_state(g, q, k, v, lin_slots(ig, ig->state, l, "state.slots"), 0);
  if (l == 0) /* an exact copy of every state (x * 1) */
    ig->scratch = vkf_g_scale(g, ig->state, 1.0f);
  if (vkf_graph_status(g) != VKF_OK)
    return VKF_NODE_NONE;
  vkf_node out =
      vkf_g_linear_attention_state(g, q, k, v, lin_slots(ig, ig->scratch, l, "scratch.slots"), 0);
  if (l + 1 == ig->cfg.n_layer)
    lin_write_back(ig);
  return out;
}

/* keep: the blocks of active rows (n = T: every token is the sequence's)
 * are written back; idle rows' (n = 0) and other slots' stay. */
static void lin_fill(const vkf_infer_graph *ig, const vkf_infer_row *rows, void *dst) {
  if (!ig->keep)
    return;
  int32_t *keep = vkf_infer_at(ig, dst, ig->keep);
  const uint32_t S = ig->n_slots;
  for (uint32_t l = 0; l < ig->cfg.n_layer; l++)
    for (uint32_t slot = 0; slot < S; slot++) {
      uint32_t b = slot - ig->slot0; /* wraps for slots before slot0 */
      bool active = slot >= ig->slot0 && b < ig->B && rows[b].n > 0;
      keep[2 * ((size_t)l * S + slot)] = 0;
      keep[2 * ((size_t)l * S + slot) + 1] = active ? (int32_t)ig->cfg.n_kv_head : 0;
    }
}

static const vkf_infer_variant linear_state = {
    .name = "linear",
    .recurrent = true,
    .rows = lin_rows,
    .declare_state = lin_declare,
    .declare_inputs = lin_inputs,
    .attend = lin_attend,
    .fill = lin_fill,
};

const vkf_infer_variant *vkf_infer_variant_for(const vkf_gpt_config *cfg, uint32_t max_seq,
                                               uint32_t chunk, const char **why) {
  *why = NULL;
  switch (cfg->attention) {
  case VKF_ATTN_STANDARD:
  case VKF_ATTN_FLASH: /* the same function: decoding reads one query row */
    return &standard;
  case VKF_ATTN_SLIDING:
    /* a ring only when it is shorter than the whole sequence */
    if ((uint64_t)cfg->sliding_window + chunk < max_seq)
      return &sliding_ring;
    return &standard; /* with the window in the attention op */
  case VKF_ATTN_LINEAR:
    return &linear_state;
  }
  *why = "unknown attention kind";
  return NULL;
}

/* ------------------------------------------------------------------------ */
void vkf_infer_graph_free(vkf_env *env, vkf_infer_graph *ig) {
  vkf_graph_destroy(ig->g);
  vkf_free(env, ig->p.layers);
  vkf_free(env, ig->kc);
  vkf_free(env, ig->vc);
  memset(ig, 0, sizeof(*ig));
}

/* The model's layers (vkf_gpt_layers) with positions from the graph's input
 * and the variant's attention over the cache. */
static vkf_node infer_rope(void *ctx, vkf_graph *g, vkf_node x, double theta) {
  vkf_infer_graph *ig = ctx;
  return rope_at(g, x, ig->positions, theta);
}

static vkf_node infer_attend(void *ctx, vkf_graph *g, uint32_t layer, vkf_node q, vkf_node k,
                             vkf_node v) {
  vkf_infer_graph *ig = ctx;
  (void)g;
  return ig->var->attend(ig, layer, q, k, v);
}

vkf_status vkf_infer_build(vkf_env *env, const vkf_gpt_config *cfg, const vkf_infer_variant *var,
                           uint32_t n_slots, uint32_t rows, uint32_t B, uint32_t T, uint32_t slot0,
                           vkf_infer_graph *ig) {
  memset(ig, 0, sizeof(*ig));
  ig->cfg = *cfg;
  ig->var = var;
  ig->B = B;
  ig->T = T;
  ig->slot0 = slot0;
  ig->n_slots = n_slots;
  ig->rows = rows;
  ig->window = cfg->attention == VKF_ATTN_SLIDING ? cfg->sliding_window : 0;
  const vkf_gpt_config *c = &ig->cfg;
  const uint32_t L = c->n_layer, N = B * T;
  ig->g = vkf_graph_create(env);
  ig->p.layers = vkf_calloc(env, L, sizeof(vkf_gpt_layer_params));
  ig->kc = vkf_calloc(env, L, sizeof(vkf_node));
  ig->vc = vkf_calloc(env, L, sizeof(vkf_node));
  if (!ig->g || !ig->p.layers || !ig->kc || !ig->vc) {
    vkf_infer_graph_free(env, ig);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "inference graph");
  }
  vkf_graph *g = ig->g;
  vkf_gpt_params *p = &ig->p;
  vkf_status st = vkf_gpt_declare(g, c, p);
  if (st != VKF_OK)
    return st;
  g->arena_bytes[VKF_ARENA_GRADS] = 0; /* no gradients here */
  vkf_node params_all = vkf_g_arena_node(g, VKF_ARENA_PARAMS);
  var->declare_state(ig);
  int64_t sBT[2] = {B, T}, sB2[2] = {B, 2}, sB = B;
  ig->tokens = vkf_g_input(g, "tokens", VKF_DTYPE_I32, 2, sBT);
  ig->positions = vkf_g_input(g, "positions", VKF_DTYPE_I32, 2, sBT);
  ig->where = vkf_g_input(g, "where", VKF_DTYPE_I32, 2, sB2);
  if (T > 1)
    ig->gather = vkf_g_input(g, "gather", VKF_DTYPE_I32, 1, &sB);
  var->declare_inputs(ig);
  if ((st = vkf_graph_status(g)) != VKF_OK)
    return st;
  /* the step inputs are the last INPUTS nodes: they end the arena */
  ig->in_begin = vkf_gn(g, ig->tokens)->offset;
  ig->in_end = g->arena_bytes[VKF_ARENA_INPUTS];

  vkf_node x = gather_rows(g, "embedding", ig->tokens, p->wte, N);
  if (c->positions == VKF_POS_LEARNED)
    x = vkf_g_add(g, x, gather_rows(g, "embedding.pos", ig->positions, p->wpe, N));
  const vkf_gpt_attend att = {infer_rope, infer_attend, ig};
  x = vkf_gpt_layers(g, c, p, params_all, x, B, T, &att);
  if (T > 1) /* the last token of each row: its logits are the ones used */
    x = gather_rows(g, "last", ig->gather, x, B);
  vkf_node xf = vkf_gpt_norm(g, c, x, p->normf_w, p->normf_b);
  ig->logits = vkf_g_linear(g, xf, p->head ? p->head : p->wte, VKF_NODE_NONE, true);
  vkf_g_keep(g, ig->logits);
  /* products of a few rows (decoding steps, short prompt pieces) read each
   * weight once in the matvec kernel instead of a tiled GEMM */
  for (uint32_t i = 0; i < g->n_steps; i++) {
    vkf_gstep *s = &g->steps[i];
    if (s->kind == VKF_OP_MATMUL && s->p.matmul.batch == 1 && s->p.matmul.M <= VKF_MATVEC_MAX_M &&
        !(s->p.matmul.flags & VKF_MM_TRANS_A))
      s->kind = VKF_OP_MATVEC;
  }
  return vkf_graph_status(g);
}

void *vkf_infer_at(const vkf_infer_graph *ig, void *dst, vkf_node n) {
  return (char *)dst + (ig->g->nodes[n].offset - ig->in_begin);
}

void vkf_infer_fill(const vkf_infer_graph *ig, const vkf_infer_row *rows,
                    const int32_t *const *row_tokens, void *dst) {
  int32_t *tok = vkf_infer_at(ig, dst, ig->tokens), *pos = vkf_infer_at(ig, dst, ig->positions),
          *where = vkf_infer_at(ig, dst, ig->where);
  const uint32_t T = ig->T;
  for (uint32_t b = 0; b < ig->B; b++) {
    const int32_t n = rows[b].n, pad = (int32_t)T - n, start = rows[b].pos0 - pad;
    for (uint32_t t = 0; t < T; t++) {
      tok[b * T + t] = (int32_t)t >= pad ? row_tokens[b][t - (uint32_t)pad] : 0;
      pos[b * T + t] = start + (int32_t)t;
    }
    where[2 * b] = start;
    where[2 * b + 1] = n;
    if (ig->gather)
      ((int32_t *)vkf_infer_at(ig, dst, ig->gather))[b] = (int32_t)(b * T + T - 1);
  }
  ig->var->fill(ig, rows, dst);
}
