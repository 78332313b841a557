#version 450
// Tiled GEMM: c = alpha * op(a) . op(b) (+ beta * c) (+ bias), batched in z.
//
// A workgroup computes a BM x BN tile of c. Each step stages a BM x BK slice
// of op(a) and a BK x BN slice of op(b) in shared memory; each invocation
// keeps a TM x TN block of results in registers, at rows ty + i*(BM/TM) and
// columns tx + j*(BN/TN) (strided, so neighbouring invocations read
// neighbouring shared words). All sizes are specialization constants chosen
// per device; WG must equal (BM/TM)*(BN/TN).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;

layout(push_constant) uniform PC {
  F32 c;
  F32 a;
  F32 b;
  F32 bias;
  vkf_matmul_params p;
} pc;

shared float As[BK * BM]; // [k][m]
shared float Bs[BK * BN]; // [k][n]

void main() {
  const uint TX = BN / TN; // invocations along n
  const uint tid = gl_LocalInvocationID.x;
  const uint tx = tid % TX, ty = tid / TX;
  const uint row0 = gl_WorkGroupID.y * BM, col0 = gl_WorkGroupID.x * BN;
  const uint bz = gl_WorkGroupID.z;
  const uint M = pc.p.M, N = pc.p.N, K = pc.p.K, lda = pc.p.lda, ldb = pc.p.ldb;
  const bool ta = (pc.p.flags & VKF_MM_TRANS_A) != 0, tb = (pc.p.flags & VKF_MM_TRANS_B) != 0;
  const uint aoff = bz * pc.p.stride_a, boff = bz * pc.p.stride_b;

  float acc[TM][TN];
  for (uint i = 0; i < TM; i++)
    for (uint j = 0; j < TN; j++)
      acc[i][j] = 0.0;

  for (uint k0 = 0; k0 < K; k0 += BK) {
    // stage op(a)[row0.., k0..] into As[k][m]; consecutive invocations take
    // consecutive addresses of a
    for (uint e = tid; e < BM * BK; e += WG) {
      uint m, k;
      if (ta) { m = e % BM; k = e / BM; } else { k = e % BK; m = e / BK; }
      uint gm = row0 + m, gk = k0 + k;
      float v = 0.0;
      if (gm < M && gk < K)
        v = pc.a.v[aoff + (ta ? gk * lda + gm : gm * lda + gk)];
      As[k * BM + m] = v;
    }
    for (uint e = tid; e < BN * BK; e += WG) {
      uint n, k;
      if (tb) { k = e % BK; n = e / BK; } else { n = e % BN; k = e / BN; }
      uint gn = col0 + n, gk = k0 + k;
      float v = 0.0;
      if (gn < N && gk < K)
        v = pc.b.v[boff + (tb ? gn * ldb + gk : gk * ldb + gn)];
      Bs[k * BN + n] = v;
    }
    barrier();
    for (uint k = 0; k < BK; k++) {
      float av[TM], bv[TN];
      for (uint i = 0; i < TM; i++)
        av[i] = As[k * BM + ty + i * (BM / TM)];
      for (uint j = 0; j < TN; j++)
        bv[j] = Bs[k * BN + tx + j * TX];
      for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
          acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }
    barrier();
  }

  const uint coff = bz * pc.p.stride_c, ldc = pc.p.ldc;
  const bool beta = (pc.p.flags & VKF_MM_BETA) != 0, bias = (pc.p.flags & VKF_MM_BIAS) != 0;
  for (uint i = 0; i < TM; i++) {
    uint gm = row0 + ty + i * (BM / TM);
    if (gm >= M)
      continue;
    for (uint j = 0; j < TN; j++) {
      uint gn = col0 + tx + j * TX;
      if (gn >= N)
        continue;
      uint ci = coff + gm * ldc + gn;
      float v = pc.p.alpha * acc[i][j];
      if (beta)
        v += pc.p.beta * pc.c.v[ci];
      if (bias)
        v += pc.bias.v[gn];
      pc.c.v[ci] = v;
    }
  }
}
