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
 * it. Every variant's state lives in persistent INPUTS tensors declared
 * first in every step graph of a session (the same offsets in all), one
 * slot per sequence:
 *   - caches (standard, sliding-ring): per layer K and V rows
 *     [n_slots, rows, Hkv, D]; a piece of T tokens writes its rows, and
 *     padding rows are computed but never written (kv_write takes each
 *     row's last n), so prompt pieces may be left-padded;
 *   - recurrent (linear): a fixed-size state per layer and sequence that
 *     every token fed updates: padding would enter it, so each row of a
 *     step must feed exactly T tokens or none (n = T or n = 0).
 * Step inputs give each sequence's (pos0, n) on the device as `where`
 * [B, 2] = (pos0 - (T - n), n) and positions [B, T]; the variant declares
 * and fills its own further inputs (kv_lens, a visibility mask, ...). A new
 * variant is one more table entry: see vkf_infer_variant_for(). */
typedef struct vkf_infer_variant {
  const char *name;
  /* A fixed-size state per sequence: all zeros is the empty sequence (the
   * session zeroes a slot to empty it), a fork copies it whole, and pieces
   * carry no padding. Otherwise per-position cache rows: a fork copies the
   * rows of the positions held, and emptying needs no device work. */
  bool recurrent;
  /* Cache rows each sequence keeps per layer for max_seq positions fed in
   * pieces of at most chunk tokens (recurrent: 0). */
  uint32_t (*rows)(const vkf_gpt_config *cfg, uint32_t max_seq, uint32_t chunk);
  /* Declares the persistent tensors (INPUTS, before any step input): sets
   * ig->kc[l] (and ig->vc[l], or VKF_NODE_NONE) for every layer, each
   * [n_slots, ...] with one sequence's slot contiguous. */
  void (*declare_state)(vkf_infer_graph *ig);
  /* Declares the variant's step inputs (INPUTS, after tokens, positions,
   * where and gather). */
  void (*declare_inputs)(vkf_infer_graph *ig);
  /* Emits layer l's attention: q [B, T, Hq, D], k and v [B, T, Hkv, D] the
   * step's new rows (positions applied); stores them in the state and
   * returns the attention output [B, T, Hq, D]. */
  vkf_node (*attend)(vkf_infer_graph *ig, uint32_t layer, vkf_node q, vkf_node k, vkf_node v);
  /* Host values of the variant's step inputs, written into dst, the host
   * image of the step inputs (vkf_infer_at). */
  void (*fill)(const vkf_infer_graph *ig, const vkf_infer_row *rows, void *dst);
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
  /* per layer, the persistent tensors of all n_slots sequences: the K and V
   * caches [n_slots, rows, Hkv, D], or (linear) kc the layer's recurrent
   * state [n_slots, Hkv, D, D + 1] (a view of `state`) and vc NONE */
  vkf_node *kc, *vc;
  vkf_node state; /* linear: every layer's state [n_layer * n_slots, Hkv, D, D + 1] */
  /* step inputs (i32 except mask); gather only when T > 1; the variant's
   * own: kv_lens (standard), mask (sliding-ring), keep (linear, B > 1) */
  vkf_node tokens, positions, where, gather, kv_lens, mask, keep;
  vkf_node scratch;          /* linear, B > 1: the states the step advances */
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
/* Where step input n lies in dst, the host image of the step inputs. */
void *vkf_infer_at(const vkf_infer_graph *ig, void *dst, vkf_node n);

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
