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

/* ---- act: activations: gelu, silu, swiglu ---- */

/* ---- embed: embedding, bias gradient ---- */

/* ---- rope: rotary position embedding ---- */

/* ---- attn: attention ---- */

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
/* ---- xent ---- */
/* ---- optim ---- */
#endif

#endif /* VKF_PARAMS_H */
