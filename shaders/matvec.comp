#version 450
// matvec: c[m, n] = alpha * sum_k a[m, k] op(b)[k, n] (+ beta c) (+ bias[n])
// for MM <= VKF_MATVEC_MAX_M rows of a (a specialization constant, so every
// loop over rows is unrolled), reading b once: the one-token-per-sequence
// products of decoding. No tiles through shared memory: every element of b
// is loaded by one invocation and used for all MM rows.
//   NT: b stored [N, K] (rows contiguous). L consecutive invocations share
//       output column n, lane j summing k = j, j + L, ... (VEC4: vec4s of
//       k), so consecutive invocations read consecutive addresses; the L
//       partial sums are then added in a shared-memory tree.
//   NN: b stored [K, N] (ldb >= N). Invocation c of a workgroup takes column
//       n = group * CW + c (VEC4: the 4 columns of vec4 n) and k-slice j of
//       L (CW = WG / L); for a fixed k consecutive invocations read
//       consecutive addresses. With L > 1 the slices' sums are added in a
//       shared-memory tree. lavapipe uses L = 1 (no barrier: each is a
//       coroutine switch there).
// VEC4: every operand 16-byte aligned, K, lda, ldb, ldc multiples of 4 (and
// N for NN): loads and stores of vec4 (one lavapipe lane loop moves four
// floats).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint L = 8; // NT: lanes per column; NN: k-slices
layout(constant_id = 2) const uint MM = 1; // rows of a

layout(buffer_reference, std430, buffer_reference_align = 16) buffer V4 { vec4 v[]; };

#ifdef VEC4
#define BUF V4
#define ACC vec4
#else
#define BUF F32
#define ACC float
#endif

layout(push_constant) uniform PC {
  BUF c;
  BUF a;
  BUF b;
  BUF bias;
  vkf_matmul_params p;
} pc;

shared ACC red[VKF_MATVEC_MAX_M * WG];

void main() {
  const uint lid = gl_LocalInvocationID.x, CW = WG / L;
  const uint N = pc.p.N, K = pc.p.K, lda = pc.p.lda, ldb = pc.p.ldb;
  ACC acc[MM];
  [[unroll]] for (uint m = 0; m < MM; m++)
    acc[m] = ACC(0.0);
#if defined(NT)
  const uint j = lid % L, n = vkf_linear_group() * CW + lid / L;
  const bool live = n < N;
#ifdef VEC4
  // acc[m] holds four partial sums (k mod 4) of column n
  if (live) {
    const uint row = n * (ldb / 4), K4 = K / 4;
    for (uint k = j; k < K4; k += L) {
      vec4 w = pc.b.v[row + k];
      [[unroll]] for (uint m = 0; m < MM; m++)
        acc[m] += pc.a.v[m * (lda / 4) + k] * w;
    }
  }
#else
  if (live) {
    const uint row = n * ldb;
    for (uint k = j; k < K; k += L) {
      float w = pc.b.v[row + k];
      [[unroll]] for (uint m = 0; m < MM; m++)
        acc[m] += pc.a.v[m * lda + k] * w;
    }
  }
#endif
#else // NN
  const uint j = lid / CW, n = vkf_linear_group() * CW + lid % CW;
#ifdef VEC4
  // n indexes vec4s of columns; k advances by 4 with one vec4 of each row of a
  const bool live = n < N / 4;
  if (live) {
    const uint ld4 = ldb / 4;
    for (uint k = 4 * j; k < K; k += 4 * L) {
      vec4 w0 = pc.b.v[k * ld4 + n], w1 = pc.b.v[(k + 1) * ld4 + n];
      vec4 w2 = pc.b.v[(k + 2) * ld4 + n], w3 = pc.b.v[(k + 3) * ld4 + n];
      [[unroll]] for (uint m = 0; m < MM; m++) {
        vec4 x = pc.a.v[(m * lda + k) / 4];
        acc[m] += x.x * w0 + x.y * w1 + x.z * w2 + x.w * w3;
      }
    }
  }
#else
  const bool live = n < N;
  if (live) {
    for (uint k = j; k < K; k += L) {
      float w = pc.b.v[k * ldb + n];
      [[unroll]] for (uint m = 0; m < MM; m++)
        acc[m] += pc.a.v[m * lda + k] * w;
    }
  }
#endif
#endif
  if (L > 1) { // uniform: a specialization constant
    [[unroll]] for (uint m = 0; m < MM; m++)
      red[m * WG + lid] = acc[m];
    barrier();
#if defined(NT)
    const uint stride = 1; // partners: lanes j and j + s of one column
#else
    const uint stride = CW; // partners: slices j and j + s of one column
#endif
    for (uint s = L / 2; s > 0; s >>= 1) {
      if (j < s)
        [[unroll]] for (uint m = 0; m < MM; m++)
          red[m * WG + lid] += red[m * WG + lid + s * stride];
      barrier();
    }
    [[unroll]] for (uint m = 0; m < MM; m++)
      acc[m] = red[m * WG + lid];
  }
  if (j != 0 || !live)
    return;
  const uint flags = pc.p.flags;
  const float alpha = pc.p.alpha, beta = pc.p.beta;
#if defined(NT) && defined(VEC4)
  // column n: the four partial sums added; scalar stores through F32
  F32 c = F32(pc.c), bias = F32(pc.bias);
  const float bn = (flags & VKF_MM_BIAS) != 0 ? bias.v[n] : 0.0;
  [[unroll]] for (uint m = 0; m < MM; m++) {
    float v = alpha * ((acc[m].x + acc[m].y) + (acc[m].z + acc[m].w));
    uint o = m * pc.p.ldc + n;
    if ((flags & VKF_MM_BETA) != 0)
      v += beta * c.v[o];
    c.v[o] = v + bn;
  }
#else
#if defined(VEC4)
  const uint ldc = pc.p.ldc / 4; // NN: vec4 n of each row
#else
  const uint ldc = pc.p.ldc;
#endif
  const ACC bn = (flags & VKF_MM_BIAS) != 0 ? pc.bias.v[n] : ACC(0.0);
  [[unroll]] for (uint m = 0; m < MM; m++) {
    ACC v = alpha * acc[m];
    uint o = m * ldc + n;
    if ((flags & VKF_MM_BETA) != 0)
      v += beta * pc.c.v[o];
    pc.c.v[o] = v + bn;
  }
#endif
}
