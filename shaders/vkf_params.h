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

/* ---- rope: rotary position embedding ---- */

/* ---- attn: attention ---- */
/* attention (standard variant, scores materialised). Flags: */
#define VKF_ATTN_CAUSAL 1u   /* key j visible only when j <= position of the query */
#define VKF_ATTN_SOFTCAP 2u  /* s = softcap * tanh(s / softcap) on the scaled scores */
#define VKF_ATTN_MASK 4u     /* an additive float mask operand */
#define VKF_ATTN_KV_LENS 8u  /* an i32 [B] operand: keys j >= kv_lens[b] are masked */
#define VKF_ATTN_Q_BHTD 16u  /* q, out, dout, dq stored [B, Hq, Tq, .] (else [B, Tq, Hq, .]) */
#define VKF_ATTN_KV_BHTD 32u /* k, v, dk, dv stored [B, Hkv, Tk, .] (else [B, Tk, Hkv, .]) */
#define VKF_ATTN_LOGITS 64u  /* the forward also writes the logits (before softmax) */
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

/* ---- xent: loss: softmax cross-entropy ---- */

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
/* ---- rope ---- */
/* ---- attn ---- */
typedef struct vkf_attention_params vkf_attention_params;
/* ---- xent ---- */
/* ---- optim ---- */
#endif

#endif /* VKF_PARAMS_H */
