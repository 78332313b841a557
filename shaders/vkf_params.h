/*
 * Op parameter blocks, shared by C and GLSL.
 *
 * Each struct is the tail of an op's push-constant block: a Vulkan kernel's
 * push constants are its tensors' device addresses (8 bytes each, in the op's
 * operand order) followed by the op's struct. The CPU backend receives the
 * same struct. Only 4-byte scalars here, so C and std430 layouts agree; keep
 * 8 * n_tensors + sizeof(struct) <= 128 (checked in backend/ops.h).
 */
#ifndef VKF_PARAMS_H
#define VKF_PARAMS_H

#ifdef VKF_GLSL
#define VKF_U32 uint
#define VKF_I32 int
#define VKF_F32 float
#else
#include <stdint.h>
#define VKF_U32 uint32_t
#define VKF_I32 int32_t
#define VKF_F32 float
#endif

/* matmul flags */
#define VKF_MM_TRANS_A 1u
#define VKF_MM_TRANS_B 2u
#define VKF_MM_BIAS 4u   /* operand 3 is a bias [N] */
#define VKF_MM_BETA 8u   /* c = alpha*a.b + beta*c (reads c) */

/* matmul: c[b] = alpha * op(a[b]) . op(b[b]) (+ beta * c[b]) (+ bias)
 * operands: 0 c, 1 a, 2 b, 3 bias (optional)
 * op(a) is M x K: a stored [M, K] (lda = K) or with TRANS_A [K, M] (lda = M).
 * op(b) is K x N: b stored [K, N] (ldb = N) or with TRANS_B [N, K] (ldb = K).
 * Batch strides in elements; stride_b 0 broadcasts one b. */
struct vkf_matmul_params {
  VKF_U32 M, N, K, batch;
  VKF_U32 lda, ldb, ldc;
  VKF_U32 stride_a, stride_b, stride_c;
  VKF_U32 flags;
  VKF_F32 alpha, beta;
};

/* add / mul: c[i] = a[i] (+|*) b[i % nb]. operands: 0 c, 1 a, 2 b */
struct vkf_binary_params {
  VKF_U32 n, nb;
};

/* scale: c[i] = a[i] * s. operands: 0 c, 1 a */
struct vkf_scale_params {
  VKF_U32 n;
  VKF_F32 s;
};

/* fill: c[i] = bits (32-bit pattern). operands: 0 c */
struct vkf_fill_params {
  VKF_U32 n;
  VKF_U32 bits;
};

/* row_sum / row_mean: out[r] = sum_c a[r, c] * mul. operands: 0 out, 1 a */
struct vkf_rowreduce_params {
  VKF_U32 rows, cols;
  VKF_F32 mul; /* 1 for sum, 1/cols for mean */
};

/* softmax over rows: out[r, :] = softmax(a[r, :]). operands: 0 out, 1 a */
struct vkf_softmax_params {
  VKF_U32 rows, cols;
};

/* ---- norm: normalisation: layernorm, rmsnorm ---- */

/* ---- act: activations: gelu, silu, swiglu ---- */

/* ---- embed: embedding, bias gradient ---- */
/* embedding: out[n, c] = wte[tokens[n], c] (+ wpe[pos_offset + n % T, c]) for
 * n < N (= B*T) and c < C. operands: 0 out [N, C], 1 tokens (i32 [N]),
 * 2 wte [V, C], 3 wpe [P, C] (optional). */
struct vkf_embedding_params {
  VKF_U32 N, T, C, V;
  VKF_U32 pos_offset;
  VKF_U32 has_wpe;
};

/* embedding_backward (dwte part): U segments, one per distinct token id.
 * Segment s holds the positions n whose token is seg_tok[s], ascending.
 * For every column c: eight float accumulators acc[k % 8] += dout[n_k, c]
 * over the segment's k-th position, then
 * dwte[v, c] += ((acc0 + acc1) + (acc2 + acc3)) + ((acc4 + acc5) + (acc6 + acc7)).
 * (dwpe part): dwpe[pos_offset + t, c] += (((0 + dout[0, t, c]) + dout[1, t, c]) + ...)
 * summed over b in order. Both backends use exactly these float operations,
 * so results are bit-identical across runs and backends.
 * operands: 0 dwte (optional), 1 dwpe (optional), 2 dout [N, C],
 * 3 index (i32, with dwte): [0, U] segment starts into `order`,
 * [U + 1, U + 1 + N) order, [U + 1 + N, U + 1 + N + U) seg_tok. */
struct vkf_embedding_backward_params {
  VKF_U32 N, T, C, U;
  VKF_U32 pos_offset;
  VKF_U32 col_groups; /* Vulkan: workgroups per segment (set by the backend) */
};

/* bias_backward: dbias[j] += sum over r < rows of dout[r, j], j < N.
 * operands: 0 dbias [N], 1 dout [rows, N]; the Vulkan backend adds
 * 2 partial sums [chunks, N] (its own scratch). */
struct vkf_bias_backward_params {
  VKF_U32 rows, N;
  VKF_U32 chunk_rows, chunks; /* Vulkan: row chunks of stage 1 (set by the backend) */
};

/* ---- rope: rotary position embedding ---- */
/* rope / rope_backward on x [B, T, H, D] (or [B, H, T, D]: the strides say
 * which). Pairs i < pairs (= rotary_dim / 2) of each head: (i, i + pairs),
 * or (2i, 2i + 1) with VKF_ROPEF_INTERLEAVED; dims past 2 * pairs pass through.
 * Angle of pair i at position p: p * theta^(-2i / rotary_dim), from the
 * 64-bit fixed-point fraction freq = theta^(-2 / rotary_dim) (freq_hi,
 * freq_lo), or cos/sin read from tables with VKF_ROPEF_TABLE.
 * Position of token (b, t): position_ids[b, t] with VKF_ROPEF_POS_IDS, else
 * pos_offset + t. Tables are [table_rows, pairs] indexed by position, or
 * [B, T, pairs] indexed by (b, t) with VKF_ROPEF_TABLE_BT.
 * forward: out = R x (out may be x). backward: dx += R^T dout.
 * operands: 0 out | dx, 1 x | dout, 2 cos, 3 sin (optional tables),
 * 4 position_ids (optional, i32 [B, T]). */
#define VKF_ROPEF_INTERLEAVED 1u
#define VKF_ROPEF_TABLE 2u
#define VKF_ROPEF_TABLE_BT 4u
#define VKF_ROPEF_POS_IDS 8u
#define VKF_ROPEF_INPLACE 16u
struct vkf_rope_params {
  VKF_U32 B, T, H, D;
  VKF_U32 pairs;      /* rotary_dim / 2 */
  VKF_U32 sB, sT, sH; /* element strides of batch, token, head */
  VKF_U32 flags;
  VKF_I32 pos_offset;
  VKF_U32 freq_hi, freq_lo;
  VKF_U32 table_rows;
};

/* ---- attn: attention ---- */

/* ---- xent: loss: softmax cross-entropy ---- */
/* cross_entropy over logits [outer, V, inner] (inner = 1: classes last):
 * row r = o * inner + i has class c at o * V * inner + c * inner + i.
 * losses[r] = w[t] * (logsumexp(row) - row[t]) with t = targets[r], or 0
 * when t == ignore_index. loss = sum(losses) (SUM) or sum(losses) / sum of
 * w[t] over counted rows (MEAN). log_prob = row - logsumexp(row).
 * forward operands: 0 losses [rows], 1 loss [1] (optional), 2 log_prob
 * (optional), 3 logits, 4 targets (i32 [rows]), 5 weights [V] (optional).
 * backward: dlogits[r, :] += g_r * w[t] * (softmax(row) - onehot(t)) for
 * counted rows, g_r = dloss[0] / den (MEAN), dloss[0] (SUM), dloss[r] (NONE).
 * backward operands: 0 dlogits, 1 dloss, 2 logits, 3 targets, 4 weights
 * (optional); the Vulkan backend adds 5 scratch (g for MEAN). */
#define VKF_XENT_MEAN 0u
#define VKF_XENT_SUM 1u
#define VKF_XENT_NONE 2u
#define VKF_XENTF_WEIGHTS 1u
#define VKF_XENTF_LOG_PROB 2u
#define VKF_XENTF_LOSS 4u
struct vkf_cross_entropy_params {
  VKF_U32 rows, V, inner;
  VKF_I32 ignore_index;
  VKF_U32 reduction;
  VKF_U32 flags;
};

/* ---- optim: optimiser: adamw, gradient norm and clipping ---- */

#ifndef VKF_GLSL
typedef struct vkf_matmul_params vkf_matmul_params;
typedef struct vkf_binary_params vkf_binary_params;
typedef struct vkf_scale_params vkf_scale_params;
typedef struct vkf_fill_params vkf_fill_params;
typedef struct vkf_rowreduce_params vkf_rowreduce_params;
typedef struct vkf_softmax_params vkf_softmax_params;
/* ---- norm ---- */
/* ---- act ---- */
/* ---- embed ---- */
typedef struct vkf_embedding_params vkf_embedding_params;
typedef struct vkf_embedding_backward_params vkf_embedding_backward_params;
typedef struct vkf_bias_backward_params vkf_bias_backward_params;
/* ---- rope ---- */
typedef struct vkf_rope_params vkf_rope_params;
/* ---- attn ---- */
/* ---- xent ---- */
typedef struct vkf_cross_entropy_params vkf_cross_entropy_params;
/* ---- optim ---- */
#endif

#endif /* VKF_PARAMS_H */
