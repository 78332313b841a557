/*
 * The graph: a model described as nodes (tensors) and steps (vkf_ops on
 * nodes), reverse-mode autodiff that appends the backward steps, a memory
 * planner that places activations by lifetime, and an executor that records
 * the whole step list once and replays it.
 *
 * Storage classes ("arenas"):
 *   PARAMS  every parameter, one flat allocation, in creation order
 *   GRADS   their gradients, the same layout (so the optimiser and the
 *           gradient norm run as single dispatches over the whole buffer)
 *   INPUTS  persistent tensors the host writes (token ids, targets) or reads
 *   ACTS    activations and their gradients: placed by the planner, reused
 *           once dead
 *
 * Building is sticky-error: a builder that fails returns VKF_NODE_NONE and
 * records the error; later builders do nothing; vkf_graph_status() says
 * what went wrong first.
 */
#ifndef VKF_GRAPH_H
#define VKF_GRAPH_H

#include "backend.h"

typedef uint32_t vkf_node;
#define VKF_NODE_NONE 0u

typedef enum vkf_arena {
  VKF_ARENA_PARAMS,
  VKF_ARENA_GRADS,
  VKF_ARENA_INPUTS,
  VKF_ARENA_ACTS,
  VKF_ARENA_COUNT
} vkf_arena;

enum vkf_param_flags {
  VKF_PARAM_DECAY = 1u << 0,  /* weight decay applies (matrices, embeddings) */
  VKF_PARAM_FROZEN = 1u << 1, /* no gradient (e.g. a base model under LoRA) */
  VKF_PARAM_PACKED = 1u << 2, /* placed right after the previous parameter (no
                                 alignment gap), so the two form one view */
};

typedef struct vkf_gnode {
  char name[96];
  vkf_arena arena;
  vkf_dtype dtype;
  uint32_t ndim;
  int64_t shape[VKF_MAX_DIMS];
  uint64_t elements, bytes;
  vkf_node base;        /* a view: shares base's storage at base_offset */
  uint64_t base_offset; /* bytes */
  vkf_node grad;        /* gradient node, once autodiff made one */
  bool requires_grad;
  uint32_t param_flags;
  bool keep; /* the host reads it after a run: alive to the end */
  /* planner */
  int32_t first, last; /* step indices of first and last use; -1 = unused */
  uint64_t offset;     /* bytes into its arena (of the root, for views) */
} vkf_gnode;

/* An operand of a step: a node, plus a byte offset into it and the extent
 * of bytes touched (0 = to the node's end), for strided sub-matrices. */
typedef struct vkf_goperand {
  vkf_node node;
  uint64_t offset;
  uint64_t extent;
} vkf_goperand;

typedef struct vkf_gstep {
  vkf_op_kind kind;
  uint32_t n;
  uint32_t reads, writes;
  vkf_goperand t[VKF_OP_MAX_TENSORS];
  vkf_op_params p;
} vkf_gstep;

typedef struct vkf_graph vkf_graph;
typedef struct vkf_tape vkf_tape;
/* Emits the backward steps of one forward op. */
typedef void (*vkf_backward_fn)(vkf_graph *g, const vkf_tape *t);

#define VKF_TAPE_MAX 8
struct vkf_tape {
  vkf_backward_fn backward;
  vkf_node in[VKF_TAPE_MAX];
  vkf_node out[VKF_TAPE_MAX];
  vkf_op_params p;
  uint32_t flags;
  float f[4];
};

struct vkf_graph {
  vkf_env *env;
  vkf_status status;
  vkf_gnode *nodes; /* nodes[0] is unused (VKF_NODE_NONE) */
  uint32_t n_nodes, cap_nodes;
  vkf_gstep *steps;
  uint32_t n_steps, cap_steps;
  vkf_tape *tape;
  uint32_t n_tape, cap_tape;
  uint64_t arena_bytes[VKF_ARENA_COUNT];
  uint32_t backward_from; /* first backward step (n_steps when none) */
  bool planned;
};

vkf_graph *vkf_graph_create(vkf_env *env);
void vkf_graph_destroy(vkf_graph *g);
vkf_status vkf_graph_status(const vkf_graph *g);
/* Records the first error (later ones are dropped); returns it. */
vkf_status vkf_graph_fail(vkf_graph *g, vkf_status st, const char *fmt, ...) VKF_PRINTF(3, 4);
static inline vkf_gnode *vkf_gn(vkf_graph *g, vkf_node n) {
  return &g->nodes[n];
}

/* Leaves. */
vkf_node vkf_g_param(vkf_graph *g, const char *name, uint32_t ndim, const int64_t *shape,
                     uint32_t flags);
vkf_node vkf_g_input(vkf_graph *g, const char *name, vkf_dtype dtype, uint32_t ndim,
                     const int64_t *shape);
/* A new activation node (an op's output). */
vkf_node vkf_g_act(vkf_graph *g, const char *name, vkf_dtype dtype, uint32_t ndim,
                   const int64_t *shape);
/* Same storage, another shape (same element count). */
vkf_node vkf_g_reshape(vkf_graph *g, vkf_node x, uint32_t ndim, const int64_t *shape);
/* A view of base's storage at a byte offset (within base). */
vkf_node vkf_g_view(vkf_graph *g, vkf_node base, uint64_t offset, const char *name, uint32_t ndim,
                    const int64_t *shape);
/* One node covering a whole persistent arena as declared so far (PARAMS:
 * every parameter, for the optimiser; its gradient covers GRADS). */
vkf_node vkf_g_arena_node(vkf_graph *g, vkf_arena arena);

/* Appends a step; operands as (node, offset, extent) with read/write masks. */
void vkf_g_step(vkf_graph *g, const vkf_gstep *s);
/* Appends a tape record (forward ops with a backward rule). */
void vkf_g_tape(vkf_graph *g, const vkf_tape *t);
/* The gradient node of x, created (and zero-filled by a step emitted now)
 * on first request. VKF_NODE_NONE if x needs no gradient. */
vkf_node vkf_g_grad(vkf_graph *g, vkf_node x);
/* For a backward step that writes x's gradient whole: when the gradient does
 * not exist yet (and x is an activation, or a view covering one whole), it
 * is created without the zero fill and *overwrite is set: the step must
 * write it (matmul without beta, a copy) instead of adding to it. Otherwise
 * as vkf_g_grad, *overwrite false. */
vkf_node vkf_g_grad_overwrite(vkf_graph *g, vkf_node x, bool *overwrite);
/* Makes src (a gradient whose value is final, about to be added to x's)
 * x's gradient itself, when x is an activation without a gradient yet and
 * of src's size, and the host does not read src (not kept): later
 * contributions to x's gradient then add into src in place. The caller
 * must have emitted every other read of src before any such contribution
 * can follow (true for a backward rule's own steps).
 * Returns false (nothing done) when it does not apply. */
bool vkf_g_grad_alias(vkf_graph *g, vkf_node x, vkf_node src);
/* x's gradient node if one exists already (VKF_NODE_NONE otherwise). */
vkf_node vkf_g_grad_if(vkf_graph *g, vkf_node x);
/* Keep an activation alive to the end of the step list (host reads it). */
void vkf_g_keep(vkf_graph *g, vkf_node x);
/* Fill a node with a constant (32-bit pattern of the float). */
void vkf_g_fill(vkf_graph *g, vkf_node x, float value);

/* Reverse-mode autodiff from a scalar loss (its gradient seeded with 1):
 * zeroes the parameter gradients, then walks the tape backwards. */
vkf_status vkf_g_backward(vkf_graph *g, vkf_node loss);

/* Lifetimes and placement. Afterwards every node has its arena offset and
 * arena_bytes holds the size of each arena: peak memory before anything
 * runs. */
typedef struct vkf_graph_memory {
  uint64_t params, grads, inputs, activations;
  uint64_t activations_unplanned; /* sum of all activation sizes, no reuse */
  uint32_t steps, nodes;
} vkf_graph_memory;
vkf_status vkf_g_plan(vkf_graph *g, vkf_graph_memory *out);

/* ------------------------------------------------------------------------ */
/* Execution on a backend                                                   */
/* ------------------------------------------------------------------------ */
typedef struct vkf_gexec {
  vkf_graph *g;
  vkf_backend *be;
  vkf_buffer *arena[VKF_ARENA_COUNT];
  bool own_arena[VKF_ARENA_COUNT];
  vkf_op *ops;
  uint32_t n_ops;
  vkf_program *program;
} vkf_gexec;

/* Allocates the arenas (or uses the given buffers for shared ones, NULL =
 * allocate) and builds the op list. Steps [first, last) only; capture=true
 * records a replayable program. */
vkf_status vkf_gexec_create(vkf_graph *g, vkf_backend *be, vkf_buffer *const *shared,
                            uint32_t first, uint32_t last, bool capture, vkf_gexec **out);
vkf_status vkf_gexec_run(vkf_gexec *x);
void vkf_gexec_destroy(vkf_gexec *x);
/* Where a node lives at run time. */
vkf_tref vkf_gexec_tref(const vkf_gexec *x, vkf_node n);

/* ------------------------------------------------------------------------ */
/* Op builders (graph_ops.c). Shapes are checked; the result is a new
 * activation node.                                                         */
/* ------------------------------------------------------------------------ */
/* y = x . W (+ b): x [N, K]; W [K, M] (trans_w: [M, K]); b [M] or NONE. */
vkf_node vkf_g_linear(vkf_graph *g, vkf_node x, vkf_node w, vkf_node b, bool trans_w);
/* y = x . W[:, col0:col0+M] with W [K, ld] (a column slice: fused QKV
 * weights stored [in, out]); bias slice likewise (b [ld] or NONE). */
vkf_node vkf_g_linear_cols(vkf_graph *g, vkf_node x, vkf_node w, vkf_node b, uint32_t col0,
                           uint32_t m);
/* Token (+ learned position) embedding: tokens an i32 input [B, T]; wte
 * [V, C]; wpe [P, C] or NONE. Result [B*T, C]. `index` is an i32 input the
 * caller refills for every batch with vkf_embedding_index(..., fixed_cap =
 * vkf_g_embedding_cap(), ...): the backward's per-id position lists. */
vkf_node vkf_g_embedding(vkf_graph *g, vkf_node tokens, vkf_node wte, vkf_node wpe, vkf_node index);
uint32_t vkf_g_embedding_cap(uint32_t tokens, uint32_t vocab);
uint64_t vkf_g_embedding_index_len(uint32_t tokens, uint32_t vocab);
/* Norms over the last dimension; b may be NONE. */
vkf_node vkf_g_layernorm(vkf_graph *g, vkf_node x, vkf_node w, vkf_node b, float eps);
vkf_node vkf_g_rmsnorm(vkf_graph *g, vkf_node x, vkf_node w, float eps);
/* GELU, tanh approximation (GPT-2). */
vkf_node vkf_g_gelu(vkf_graph *g, vkf_node x);
/* silu(gate) * up on a fused [rows, 2F] gate_up: [rows, F]. */
vkf_node vkf_g_swiglu(vkf_graph *g, vkf_node gate_up);
/* Rotate-half RoPE of x [B, T, H, D] at positions 0..T-1. */
vkf_node vkf_g_rope(vkf_graph *g, vkf_node x, double theta);
/* Causal linear attention (phi = elu + 1, eps 1e-6; see
 * vkf_linear_attention_forward) of q [B, T, Hq, D] with k [B, T, Hkv, D],
 * v [B, T, Hkv, Dv], chunked by `chunk` tokens (0 = 64). Result
 * [B, T, Hq, Dv]; O(T) memory: the saved chunk states and a workspace in
 * the backward. */
vkf_node vkf_g_linear_attention(vkf_graph *g, vkf_node q, vkf_node k, vkf_node v, uint32_t chunk);
/* Inference with linear attention: the same function continued from a
 * recurrent state, an f32 [B, Hkv, D, Dv + 1] node the caller keeps (an
 * INPUTS node, zero for an empty prefix): read, then advanced past the T new
 * tokens of q, k, v (shapes as above). T = 1 is one decoding step
 * (linear_attention_decode); T > 1 a piece of a prompt, chunked by `chunk`
 * (0 = 64) with a scratch activation. Every token is taken: a padding token
 * would enter the state. No backward. Result [B, T, Hq, Dv]. */
vkf_node vkf_g_linear_attention_state(vkf_graph *g, vkf_node q, vkf_node k, vkf_node v,
                                      vkf_node state, uint32_t chunk);
/* Causal attention (standard: probabilities materialised) of q [B, T, Hq, D]
 * with k, v [B, T, Hkv, D], scale 1/sqrt(D); window > 0: sliding window.
 * Result [B, T, Hq, D]. */
vkf_node vkf_g_attention(vkf_graph *g, vkf_node q, vkf_node k, vkf_node v, uint32_t window);
/* The same with the flash variant: tiles and an online softmax, saving only
 * the row log-sum-exp [B, Hq, T] (memory O(T), and O(T * window) work with a
 * window); the backward recomputes the scores. */
vkf_node vkf_g_attention_flash(vkf_graph *g, vkf_node q, vkf_node k, vkf_node v, uint32_t window);
/* Mean cross-entropy of logits [rows, V] against i32 targets [rows]: a
 * 1-element loss. Targets must lie in [0, V) (the caller checks). */
vkf_node vkf_g_cross_entropy(vkf_graph *g, vkf_node logits, vkf_node targets);
vkf_node vkf_g_add(vkf_graph *g, vkf_node a, vkf_node b);
vkf_node vkf_g_mul(vkf_graph *g, vkf_node a, vkf_node b);
vkf_node vkf_g_scale(vkf_graph *g, vkf_node a, float s);

#endif
