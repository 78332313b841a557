/* Inference internals: the prefill/decode graph builder with its per-variant
 * attention hooks (infer_graph.c), the session (infer.c) and the sampler
 * (sample.c). */
#ifndef VKF_INFER_H
#define VKF_INFER_H

#include "gpt.h"

/* What one sequence row of a step graph does: n new tokens (n <= T, 0 = an
 * idle row) at positions pos0 .. pos0 + n - 1, right-aligned in the row's T
 * slots (rows t < T - n are padding). */
typedef struct vkf_infer_row {
  int32_t pos0;
  int32_t n;
} vkf_infer_row;

typedef struct vkf_infer_graph vkf_infer_graph;

/* How an attention variant keeps its per-sequence decoding state and reads
 * it. The state of every variant lives in two per-layer cache tensors
 * [n_slots, rows, Hkv, D] on the device (K and V rows; a recurrent variant
 * would lay its state out in those rows); step inputs give each sequence's
 * (pos0, n) on the device as `where` [B, 2] = (pos0 - (T - n), n) and
 * positions [B, T], and the variant may add kv_lens [B] and a visibility
 * mask it fills on the host. A new variant (flash kernels, a linear
 * attention's recurrent state) is one more table entry: see
 * vkf_infer_variant_for(). */
typedef struct vkf_infer_variant {
  const char *name;
  /* Cache rows each sequence keeps per layer for max_seq positions fed in
   * pieces of at most chunk tokens. */
  uint32_t (*rows)(const vkf_gpt_config *cfg, uint32_t max_seq, uint32_t chunk);
  /* f32 elements of the variant's mask input for a [B, T] step (0: none). */
  uint64_t (*mask_elems)(uint32_t B, uint32_t T, uint32_t rows);
  /* Emits layer l's attention: q [B, T, Hq, D], k and v [B, T, Hkv, D] the
   * step's new rows (positions applied); stores them in the cache and
   * returns the attention output [B, T, Hq, D]. */
  vkf_node (*attend)(vkf_infer_graph *ig, uint32_t layer, vkf_node q, vkf_node k, vkf_node v);
  /* Host values of the step's kv_lens [B] and mask (mask_elems floats). */
  void (*fill)(const vkf_infer_graph *ig, const vkf_infer_row *rows, int32_t *kv_lens, float *mask);
} vkf_infer_variant;

/* The variant that decodes cfg with caches of at most max_seq positions and
 * prefill pieces of chunk tokens; NULL with *why set when none can. */
const vkf_infer_variant *vkf_infer_variant_for(const vkf_gpt_config *cfg, uint32_t max_seq,
                                               uint32_t chunk, const char **why);

/* A step graph: B sequences (cache slots slot0 .. slot0 + B - 1 of n_slots)
 * of T tokens each. Parameters are declared as the model's (same offsets);
 * the INPUTS arena holds every layer's caches first (the same offsets in
 * every step graph of a session), then the step inputs. */
struct vkf_infer_graph {
  vkf_graph *g;
  vkf_gpt_config cfg;
  const vkf_infer_variant *var;
  uint32_t B, T, slot0, n_slots, rows, window;
  vkf_gpt_params p;
  vkf_node *kc, *vc; /* per layer, the whole caches [n_slots, rows, Hkv, D] */
  /* step inputs (i32 except mask); gather only when T > 1, mask only when
   * the variant has one */
  vkf_node tokens, positions, where, kv_lens, gather, mask;
  vkf_node logits;           /* [B, V]: the next-token logits of each row's last token */
  uint64_t in_begin, in_end; /* bytes of the step inputs in the INPUTS arena */
};

vkf_status vkf_infer_build(vkf_env *env, const vkf_gpt_config *cfg, const vkf_infer_variant *var,
                           uint32_t n_slots, uint32_t rows, uint32_t B, uint32_t T, uint32_t slot0,
                           vkf_infer_graph *out);
void vkf_infer_graph_free(vkf_env *env, vkf_infer_graph *ig);
/* Writes the step inputs of `rows` (B entries; row b's rows[b].n tokens at
 * row_tokens[b]) into dst, the host image of bytes [in_begin, in_end) of the
 * INPUTS arena. */
void vkf_infer_fill(const vkf_infer_graph *ig, const vkf_infer_row *rows,
                    const int32_t *const *row_tokens, void *dst);

/* Sampling with caller-owned scratch (no allocation per token). */
typedef struct vkf_sampler {
  vkf_env *env;
  uint32_t cap;
  struct cand *cand;
  double *prob;
  uint8_t *seen;
} vkf_sampler;
vkf_status vkf_sampler_init(vkf_sampler *s, vkf_env *env, uint32_t vocab);
void vkf_sampler_free(vkf_sampler *s);
vkf_status vkf_sampler_check(const vkf_sample_desc *desc);
vkf_status vkf_sampler_pick(vkf_sampler *s, const float *logits, uint32_t vocab,
                            const vkf_sample_desc *desc, const int32_t *history, uint32_t n_history,
                            vkf_rng *rng, int32_t *out);

#endif
