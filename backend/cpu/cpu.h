/* CPU backend internals: buffers, the pool, one function per op. */
#ifndef VKF_CPU_H
#define VKF_CPU_H

#include "backend.h"
#include "threadpool.h"

struct vkf_buffer {
  void *data; /* 64-byte aligned */
  uint64_t bytes;
};

/* How matmul runs (gemm.c: vkf_cpu_gemm_pick). */
typedef enum vkf_cpu_gemm_path {
  VKF_CPU_GEMM_PORTABLE, /* matmul.c's blocked kernel */
  VKF_CPU_GEMM_BLAS,     /* CBLAS sgemm (OpenBLAS) */
  VKF_CPU_GEMM_AVX2,     /* gemm.c, AVX2 + FMA kernels */
  VKF_CPU_GEMM_AVX512,   /* gemm.c, AVX-512 kernels */
} vkf_cpu_gemm_path;

typedef struct vkf_cpu {
  vkf_backend base;
  vkf_pool *pool;
  void *scratch; /* ops' working memory (packed matmul operands), kept between ops */
  size_t scratch_bytes;
  uint64_t bytes_used, bytes_peak;
  uint64_t memory_limit; /* 0 = none */
  uint32_t buffers;
  vkf_program *capturing; /* non-NULL between capture_begin and capture_end */
} vkf_cpu;

struct vkf_program {
  vkf_op *ops;
  uint32_t n, cap;
  /* buffers freed while capturing: the recorded ops may use them */
  vkf_buffer **owned;
  uint32_t n_owned, cap_owned;
};

static inline float *vkf_cpu_f32(const vkf_op *op, uint32_t i) {
  return op->t[i].buf ? (float *)((char *)op->t[i].buf->data + op->t[i].offset) : NULL;
}

typedef vkf_status (*vkf_cpu_op_fn)(vkf_cpu *cpu, const vkf_op *op);

/* One per op; same names as the shaders and tests. */
vkf_status vkf_cpu_fill(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_matmul(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_add(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_mul(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_scale(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_row_sum(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_softmax(vkf_cpu *cpu, const vkf_op *op);
/* ---- norm ---- */
vkf_status vkf_cpu_layernorm(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_layernorm_backward(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_rmsnorm(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_rmsnorm_backward(vkf_cpu *cpu, const vkf_op *op);
/* ---- act ---- */
vkf_status vkf_cpu_gelu(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_gelu_backward(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_silu(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_silu_backward(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_swiglu(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_swiglu_backward(vkf_cpu *cpu, const vkf_op *op);
/* ---- embed ---- */
vkf_status vkf_cpu_embedding(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_embedding_backward(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_bias_backward(vkf_cpu *cpu, const vkf_op *op);
/* ---- rope ---- */
vkf_status vkf_cpu_rope(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_rope_backward(vkf_cpu *cpu, const vkf_op *op);
/* ---- attn ---- */
vkf_status vkf_cpu_attention_forward(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_attention_backward_ds(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_attention_backward_dq(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_attention_backward_dkv(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_linear_attention_forward(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_linear_attention_backward_q(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_linear_attention_backward_kv(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_linear_attention_decode(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_attention_flash_forward(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_attention_flash_backward_pre(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_attention_flash_backward_dkv(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_attention_flash_backward_dq(vkf_cpu *cpu, const vkf_op *op);
/* ---- xent ---- */
vkf_status vkf_cpu_cross_entropy(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_cross_entropy_backward(vkf_cpu *cpu, const vkf_op *op);
/* ---- optim ---- */
vkf_status vkf_cpu_adamw(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_grad_norm(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_clip_grads(vkf_cpu *cpu, const vkf_op *op);
/* ---- infer ---- */
vkf_status vkf_cpu_kv_write(vkf_cpu *cpu, const vkf_op *op);
vkf_status vkf_cpu_matvec(vkf_cpu *cpu, const vkf_op *op);

/* The best path on this CPU, or the one VKF_CPU_GEMM forces. */
vkf_cpu_gemm_path vkf_cpu_gemm_pick(void);
/* c = alpha * op(a) . op(b) (+ beta * c) (+ bias) with gemm.c's packed
 * kernels (path AVX2 or AVX512); uses cpu->scratch. */
vkf_status vkf_cpu_gemm(vkf_cpu *cpu, vkf_cpu_gemm_path path, const vkf_matmul_params *p, float *c,
                        const float *a, const float *b, const float *bias);

/* Single-threaded pieces of the packed GEMM (path AVX2 or AVX512), for ops
 * that run their own products in pool tasks:
 *   vkf_cpu_gemm_nr     columns per packed panel (0: not a packed path);
 *   vkf_cpu_gemm_pack   op(b) [K, N] (b[k * ldb + j], or b[j * ldb + k] when
 *                       trans) into ceil(N / nr) panels of K x nr floats;
 *   vkf_cpu_gemm_apply  c[M, N] (+)= alpha * op(a) . Bp[0:K, 0:N] with
 *                       op(a)(i, k) = a[i * a_si + k * a_sk] and panels bp_k
 *                       * nr floats apart (bp may point k0 rows into them).
 * Each element: one FMA chain per block of 256 k, blocks added in order. */
uint32_t vkf_cpu_gemm_nr(vkf_cpu_gemm_path path);
void vkf_cpu_gemm_pack(vkf_cpu_gemm_path path, uint32_t K, uint32_t N, const float *b, size_t ldb,
                       bool trans, float *bp);
void vkf_cpu_gemm_apply(vkf_cpu_gemm_path path, uint32_t M, uint32_t N, uint32_t K, float alpha,
                        const float *a, size_t a_si, size_t a_sk, const float *bp, size_t bp_k,
                        float *c, size_t ldc, bool accumulate);
/* cpu->scratch grown to at least `bytes` (contents not kept); NULL when out
 * of memory. */
void *vkf_cpu_scratch(vkf_cpu *cpu, size_t bytes);

/* Matmul on raw pointers (used by other CPU ops too). */
void vkf_cpu_matmul_f32(vkf_pool *pool, const vkf_matmul_params *p, float *c, const float *a,
                        const float *b, const float *bias);

#endif
