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
#define VKF_MM_BIAS 4u /* operand 3 is a bias [N] */
#define VKF_MM_BETA 8u /* c = alpha*a.b + beta*c (reads c) */

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

/* matmul_tex (Vulkan on CPU devices, backend/vulkan/vk_matmul.c): the same
 * product with a and b read through texel views, a_off and b_off floats
 * from the views' starts. Batch index z = z0 + gl_WorkGroupID.z splits into
 * zo = z / batch_inner and zi = z % batch_inner; an operand's batch offset
 * is zo * stride + zi * stride2 (two-level batches: attention's batch and
 * head). Push constants: c and bias addresses, then this struct. */
struct vkf_matmul_tex_params {
  VKF_U32 M, N, K, batch_inner;
  VKF_U32 lda, ldb, ldc;
  VKF_U32 a_off, b_off;
  VKF_U32 stride_a, stride_b, stride_c;
  VKF_U32 stride_a2, stride_b2, stride_c2;
  VKF_U32 flags;
  VKF_F32 alpha, beta;
  VKF_U32 z0;
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

/* fill: c[i] = bits (32-bit pattern) for the n whole words; when the
 * operand's byte size is not a multiple of 4 (16-bit dtypes, odd length),
 * its last 2 bytes get the low half of bits. operands: 0 c */
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

/* norm flags (forward and backward ops, and the Vulkan kernels) */
#define VKF_NORM_BIAS 1u     /* layernorm: operand bias present */
#define VKF_NORM_MEAN 2u     /* layernorm: save the per-row mean */
#define VKF_NORM_RSTD 4u     /* save the per-row 1/sqrt(var + eps) */
#define VKF_NORM_DX 8u       /* backward: dx += ... */
#define VKF_NORM_DW 16u      /* backward: dweight += ... */
#define VKF_NORM_DB 32u      /* backward (layernorm): dbias += ... */
#define VKF_NORM_PARTIAL 64u /* backward kernel: dw/db point at per-block partial sums */

/* layernorm / rmsnorm over the last dimension of a [rows, cols] view.
 * layernorm: out = (x - mean) * rstd * weight (+ bias),
 *            mean = sum(x) / cols, rstd = 1 / sqrt(sum((x - mean)^2) / cols + eps)
 *   operands: 0 out, 1 mean (opt), 2 rstd (opt), 3 x, 4 weight, 5 bias (opt)
 * rmsnorm:   out = x * rstd * weight, rstd = 1 / sqrt(sum(x^2) / cols + eps)
 *   operands: 0 out, 1 rstd (opt), 2 x, 3 weight */
struct vkf_norm_params {
  VKF_U32 rows, cols;
  VKF_F32 eps;
  VKF_U32 flags; /* VKF_NORM_BIAS | VKF_NORM_MEAN | VKF_NORM_RSTD */
};

/* layernorm_backward: operands 0 dx, 1 dweight, 2 dbias, 3 dout, 4 x, 5 weight, 6 mean, 7 rstd
 * rmsnorm_backward:   operands 0 dx, 1 dweight, 2 dout, 3 x, 4 weight, 5 rstd
 * Gradient operands may be absent (flags say which are present); all add. */
struct vkf_norm_backward_params {
  VKF_U32 rows, cols;
  VKF_U32 flags; /* VKF_NORM_DX | VKF_NORM_DW | VKF_NORM_DB */
};

/* Vulkan kernel layernorm_backward / rmsnorm_backward: workgroup g handles
 * rows [g * rows_per_block, ..); `n` is the row length in vector units
 * (cols / 4 for the vec4 variants). With VKF_NORM_PARTIAL the dw (db)
 * operand is a [n_blocks, n] array the workgroup writes its own row of. */
struct vkf_norm_backward_kparams {
  VKF_U32 rows, n, cols, rows_per_block;
  VKF_U32 flags;
};

/* Vulkan kernel norm_backward_reduce: dw[i] += sum_b pw[b, i] and
 * db[i] += sum_b pb[b, i], blocks summed in a fixed order.
 * operands: 0 dw, 1 db, 2 pw [n_blocks, n], 3 pb [n_blocks, n] (each
 * pair present as flags say) */
struct vkf_norm_reduce_params {
  VKF_U32 n, n_blocks;
  VKF_U32 flags; /* VKF_NORM_DW | VKF_NORM_DB */
};

/* ---- act: activations: gelu, silu, swiglu ---- */

/* gelu modes */
#define VKF_GELU_MODE_ERF 0u  /* x * Phi(x), with the exact normal CDF */
#define VKF_GELU_MODE_TANH 1u /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */

/* gelu / silu: out[i] = f(x[i]); operands 0 out, 1 x.
 * gelu_backward / silu_backward: dx[i] += dout[i] * f'(x[i]); operands 0 dx, 1 dout, 2 x.
 * n: elements (vec4 units in the vec4 kernels). */
struct vkf_act_params {
  VKF_U32 n;
  VKF_U32 mode; /* gelu: VKF_GELU_MODE_* */
};

/* swiglu on a fused [rows, 2f] gate_up (gate first, then up, in each row):
 *   out[r, j] = silu(gate_up[r, j]) * gate_up[r, f + j];  operands 0 out, 1 gate_up
 * swiglu_backward: dgate_up[r, j] += dout[r, j] * up * silu'(gate),
 *                  dgate_up[r, f + j] += dout[r, j] * silu(gate);
 *   operands 0 dgate_up, 1 dout, 2 gate_up
 * f in elements (vec4 units in the vec4 kernels). */
struct vkf_swiglu_params {
  VKF_U32 rows, f;
};

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
 * [U + 1, U + 1 + N) order, [U + 1 + N, U + 1 + N + U) seg_tok.
 * U may exceed the number of distinct ids: trailing empty segments
 * (start[s] == start[s + 1]) are skipped, so a recorded step can keep one
 * index of capacity min(N, V) and refill it for every batch. */
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
/* attention (standard variant, scores materialised). Flags: */
#define VKF_ATTN_CAUSAL 1u        /* key j visible only when j <= position of the query */
#define VKF_ATTN_SOFTCAP 2u       /* s = softcap * tanh(s / softcap) on the scaled scores */
#define VKF_ATTN_MASK 4u          /* an additive float mask operand */
#define VKF_ATTN_KV_LENS 8u       /* an i32 [B] operand: keys j >= kv_lens[b] are masked */
#define VKF_ATTN_Q_BHTD 16u       /* q, out, dout, dq stored [B, Hq, Tq, .] (else [B, Tq, Hq, .]) */
#define VKF_ATTN_KV_BHTD 32u      /* k, v, dk, dv stored [B, Hkv, Tk, .] (else [B, Tk, Hkv, .]) */
#define VKF_ATTN_LOGITS 64u       /* the forward also writes the logits (before softmax) */
#define VKF_ATTN_Q_AT_KV_END 128u /* with KV_LENS: query 0 at kv_lens[b] - Tq, not q_pos0 */

/* Shapes: q [B, Tq, Hq, D], k [B, Tk, Hkv, D], v [B, Tk, Hkv, Dv], out
 * [B, Tq, Hq, Dv] (or the BHTD orders with the flags); P, logits and the
 * backward's dS [B, Hq, Tq, Tk]. Query head h reads kv head h / (Hq / Hkv).
 * Query i sits at position q0 + i, q0 = q_pos0 (or, with Q_AT_KV_END,
 * clamp(kv_lens[b], 0, Tk) - Tq); key j is visible when
 *   (!CAUSAL || j <= pos) && (window == 0 || 0 <= pos - j < window)
 *   && j < kv_lens[b] (KV_LENS) && j < mask_cols (MASK).
 * Logit = softcap(scale * q.k) + mask[b * mask_sb + h * mask_sh + i * mask_si + j],
 * -inf where not visible. Operands differ per kernel (see shaders/attention*.comp
 * and backend/cpu/attention.c). */
struct vkf_attention_params {
  VKF_U32 B, Tq, Tk, Hq, Hkv, D, Dv, flags;
  VKF_F32 scale, softcap;
  VKF_U32 window;
  VKF_I32 q_pos0;
  VKF_U32 mask_sb, mask_sh, mask_si, mask_cols;
  VKF_U32 bh0; /* Vulkan: (b * Hq + h) of the first workgroup in z (split grids) */
};

/* linear attention (Katharopoulos et al.), causal, phi(x) = elu(x) + 1:
 *   out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps),
 *   S_i = sum_{j <= i} phi(k_j) v_j^T,  z_i = sum_{j <= i} phi(k_j).
 * q [B, T, Hq, D], k [B, T, Hkv, D], v [B, T, Hkv, Dv], out [B, T, Hq, Dv];
 * query head h reads kv head h / (Hq / Hkv). With v' = [v, 1] (Dv1 = Dv + 1
 * columns) S and z form one [D, Dv1] matrix S' (z is column Dv).
 * T is split into n_chunks chunks of `chunk` tokens (the last may be short).
 * saved: [B, Hkv, n_chunks, D, Dv1] chunk-start states S' (exclusive
 *   prefix, including the initial state), then den [B, T, Hq] = phi(q)^T z.
 * workspace: g [B, T, Hq, Dv1] = (dout / (den + eps),
 *   -dout.out / (den + eps)), then R [B, Hkv, n_chunks, D, Dv1] = the
 *   reverse-time states sum over later chunks and the group's heads of
 *   phi(q_i) g_i^T.
 * state (decoding; optional in the forward): [B, Hkv, D, Dv1].
 * Operands:
 *   linear_attention_forward:     0 out, 1 saved, 2 q, 3 k, 4 v, 5 state?
 *   linear_attention_backward_q:  0 dq, 1 workspace, 2 dout, 3 q, 4 k, 5 v, 6 out, 7 saved
 *   linear_attention_backward_kv: 0 dk, 1 dv, 2 workspace, 3 q, 4 k, 5 v
 *   linear_attention_decode:      0 out, 1 state, 2 q, 3 k, 4 v  (T = 1) */
#define VKF_LATTN_STATE 1u /* forward: operand 5 (state) is read first and written last */
/* Vulkan kernels (set by the backend): the dk / dv rows and the R sums take
 * the group's heads h0 .. h0 + nh - 1 only and add to what earlier
 * dispatches left (no state term in the rows): lavapipe stops a shader's
 * loops after 65535 iterations in all, so long head loops are split */
#define VKF_LATTN_ACCUMULATE 2u
struct vkf_linear_attention_params {
  VKF_U32 B, T, Hq, Hkv, D, Dv;
  VKF_U32 chunk, n_chunks;
  VKF_U32 flags; /* VKF_LATTN_STATE | VKF_LATTN_ACCUMULATE */
  VKF_F32 eps;
  VKF_U32 z0;     /* Vulkan: first workgroup z of a split dispatch (set by the backend) */
  VKF_U32 h0, nh; /* Vulkan: heads of each group the kernel takes (set by the backend) */
};

/* Flash variant (tiled, online softmax): the ops carry vkf_attention_params;
 * its Vulkan kernels receive this packed copy, so that eight operand
 * addresses fit in 128 bytes of push constants beside it. */
struct vkf_flash_params {
  VKF_U32 B, Tq, Tk;
  VKF_U32 heads; /* Hq | Hkv << 16 */
  VKF_U32 dims;  /* D | Dv << 16 */
  VKF_U32 flags;
  VKF_F32 scale, softcap;
  VKF_U32 window;
  VKF_I32 q_pos0;
  VKF_U32 mask_sb, mask_sh, mask_si, mask_cols;
  VKF_U32 bh0; /* (b * Hq + h), or (b * Hkv + h) for dk/dv, of the first workgroup in z */
};

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

/* Kernel flags of vkf_adamw_params.flags. */
#define VKF_ADAMW_P_SEGMENTS 1u /* operand 4 is the segment table */
#define VKF_ADAMW_P_CLIP 2u     /* operand 5 is the gradient norm: clip */
/* operand 6 is f32 [4] {lr, lr_wd, inv_bc1, inv_bc2} read on the device,
 * replacing those scalars: a recorded step replays with a new learning rate
 * and step count written there */
#define VKF_ADAMW_P_HYPER 4u
/* Flag bits of a segment table entry (public: VKF_OPTIM_DECAY). */
#define VKF_OPTIM_SEG_DECAY 1u
/* Gradient clipping: scale = grad_scale * min(1, max_norm / (grad_scale * norm + eps)). */
#define VKF_CLIP_EPS 1e-6

/* adamw: one AdamW update of n elements of a flat parameter buffer.
 * operands: 0 params, 1 grads, 2 m, 3 v (all n elements, read and written
 * except grads), 4 segments (optional: i32 [n_segments, 2] rows of
 * (start, flags), starts increasing from 0; element i belongs to the last
 * segment whose start <= i), 5 norm (optional: the gradient norm, 1 element),
 * 6 hyper (optional, VKF_ADAMW_P_HYPER).
 * Per element, with d = 1 when its segment has VKF_OPTIM_SEG_DECAY (or there
 * is no table) and 0 otherwise:
 *   s = grad_scale (times the clip factor above with VKF_ADAMW_P_CLIP)
 *   g = grads * s + d * l2 * p              (l2: coupled, L2 form)
 *   m = beta1 * m + omb1 * g;  v = beta2 * v + omb2 * g * g
 *   p = p - lr * (m * inv_bc1) / (sqrt(v * inv_bc2) + eps) - d * lr_wd * p
 * The frontend folds every variant (bias correction or none, eps inside or
 * outside the correction, decoupled or L2 decay) into these scalars, which it
 * computes in double. */
struct vkf_adamw_params {
  VKF_U32 n, n_segments, flags;
  VKF_F32 beta1, beta2, omb1, omb2, eps;
  VKF_F32 lr, lr_wd, l2, inv_bc1, inv_bc2;
  VKF_F32 max_norm, grad_scale;
};

/* grad_norm: out[0] = sqrt(sum of x[i]^2), deterministically in two stages:
 * grad_norm (stage 1) writes scratch[g] = the sum of squares of partial g's
 * share of x for g < n_partials; grad_norm_final (stage 2, one workgroup)
 * adds scratch[0 .. n_partials) in a fixed order and writes the root.
 * operands: 0 out, 1 scratch, 2 x */
struct vkf_grad_norm_params {
  VKF_U32 n, n_partials;
};

/* clip_grads: x[i] *= min(1, max_norm / (norm[0] + VKF_CLIP_EPS)); nothing is
 * written when that factor is 1. operands: 0 x, 1 norm */
struct vkf_clip_grads_params {
  VKF_U32 n;
  VKF_F32 max_norm;
};

/* ---- infer: inference: KV-cache writes ---- */
/* kv_write: appends new key/value rows of B sequences to their caches at
 * positions read from the device (so one recorded step serves every
 * position). k_cache [B, rows, Wk], v_cache [B, rows, Wv]; k [B, T, Wk],
 * v [B, T, Wv]; where i32 [B, 2] = (start, count): only the last count
 * rows of sequence b are written (the new tokens, right-aligned after left
 * padding): row t >= T - count goes to cache row r = start + t, or
 * (start + t) mod rows with VKF_KVW_RING; without it rows outside
 * [0, rows) are skipped.
 * operands: 0 k_cache, 1 v_cache, 2 k, 3 v, 4 where */
#define VKF_KVW_RING 1u
struct vkf_kv_write_params {
  VKF_U32 B, T, rows;
  VKF_U32 Wk, Wv;
  VKF_U32 flags;
};
/* matvec: the products of a decoding step, c = alpha * a . op(b) (+ beta * c)
 * (+ bias) for a few rows of a (M <= VKF_MATVEC_MAX_M): one pass over b.
 * Takes vkf_matmul_params with batch 1 and no VKF_MM_TRANS_A (the steps'
 * one-row products: each row is one sequence's token). operands as matmul:
 * 0 c, 1 a, 2 b, 3 bias (optional). */
#define VKF_MATVEC_MAX_M 8u

#ifndef VKF_GLSL
typedef struct vkf_matmul_params vkf_matmul_params;
typedef struct vkf_matmul_tex_params vkf_matmul_tex_params;
typedef struct vkf_binary_params vkf_binary_params;
typedef struct vkf_scale_params vkf_scale_params;
typedef struct vkf_fill_params vkf_fill_params;
typedef struct vkf_rowreduce_params vkf_rowreduce_params;
typedef struct vkf_softmax_params vkf_softmax_params;
/* ---- norm ---- */
typedef struct vkf_norm_params vkf_norm_params;
typedef struct vkf_norm_backward_params vkf_norm_backward_params;
typedef struct vkf_norm_backward_kparams vkf_norm_backward_kparams;
typedef struct vkf_norm_reduce_params vkf_norm_reduce_params;
/* ---- act ---- */
typedef struct vkf_act_params vkf_act_params;
typedef struct vkf_swiglu_params vkf_swiglu_params;
/* ---- embed ---- */
typedef struct vkf_embedding_params vkf_embedding_params;
typedef struct vkf_embedding_backward_params vkf_embedding_backward_params;
typedef struct vkf_bias_backward_params vkf_bias_backward_params;
/* ---- rope ---- */
typedef struct vkf_rope_params vkf_rope_params;
/* ---- attn ---- */
typedef struct vkf_attention_params vkf_attention_params;
typedef struct vkf_linear_attention_params vkf_linear_attention_params;
typedef struct vkf_flash_params vkf_flash_params;
/* ---- xent ---- */
typedef struct vkf_cross_entropy_params vkf_cross_entropy_params;
/* ---- optim ---- */
typedef struct vkf_adamw_params vkf_adamw_params;
typedef struct vkf_grad_norm_params vkf_grad_norm_params;
typedef struct vkf_clip_grads_params vkf_clip_grads_params;
/* ---- infer ---- */
typedef struct vkf_kv_write_params vkf_kv_write_params;
#endif

#endif /* VKF_PARAMS_H */
