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

/* ---- xent: loss: softmax cross-entropy ---- */

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
typedef struct vkf_adamw_params vkf_adamw_params;
typedef struct vkf_grad_norm_params vkf_grad_norm_params;
typedef struct vkf_clip_grads_params vkf_clip_grads_params;
#endif

#endif /* VKF_PARAMS_H */
