#version 450
// GEMM for CPU Vulkan devices (llvmpipe): c = alpha * op(a) . op(b)
// (+ beta * c) (+ bias), batched in z, with a and b read through uniform
// texel buffers (RGBA32F views; vkf_matmul_tex_params in vkf_params.h).
//
// llvmpipe (Mesa 22.3) turns every load of shared memory or of a buffer
// device address into a loop over the SIMD lanes, with a branch and a
// read-modify-write of the result vector per lane and component, but fetches
// texels as vectors (a gather of 16 bytes per lane, then a transpose): about
// a tenth of the instructions per float. So this kernel has no shared memory
// and no barrier; each invocation fetches its own operands, 4 floats per
// fetch, and keeps a TM x TN block of c (rows row0.., columns col0..):
//   op(a): TM fetches per 4 k (4 k of a row of a, or 4 m of a row of a^T),
//   op(b): TN fetches per 4 k (4 n of a row of b, or 4 k of a row of b^T),
// then the 4-term dot products are added to the accumulators.
// Rows and columns past M and N read the last valid ones (nothing is
// stored for them). The caller (backend/vulkan/vk_matmul.c) picks this kernel
// only when every fetch is whole: views' offsets, leading dimensions and
// batch strides multiples of 4 floats, K a multiple of 4, M too when a is
// transposed, N too when b is not.
//
// Specialization constants: WG = TX * TY invocations (TX along n), TM x TN
// results per invocation (multiples of 4), TA and TB the transpositions
// (compile-time, so that no branch divides the loop: llvmpipe runs both
// sides of every branch).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint TM = 16;
layout(constant_id = 2) const uint TN = 16;
layout(constant_id = 3) const uint TX = 8;
layout(constant_id = 4) const uint TA = 0;
layout(constant_id = 5) const uint TB = 0;
// VC: the epilogue reads and writes c (and bias) as vec4, a quarter of the
// accesses (each a loop over the lanes on llvmpipe): c and bias 16-byte
// aligned, ldc, N and c's batch strides multiples of 4 (vk_matmul.c decides).
layout(constant_id = 6) const uint VC = 0;

layout(buffer_reference, std430, buffer_reference_align = 16) buffer V4 { vec4 v[]; };

layout(set = 0, binding = 0) uniform samplerBuffer At;
layout(set = 0, binding = 1) uniform samplerBuffer Bt;

layout(push_constant) uniform PC {
  F32 c;
  F32 bias;
  vkf_matmul_tex_params p;
} pc;

const uint TY = WG / TX;
const uint BM = TY * TM, BN = TX * TN;

void main() {
  const uint tid = gl_LocalInvocationID.x, tx = tid % TX, ty = tid / TX;
  const uint M = pc.p.M, N = pc.p.N, K = pc.p.K, lda = pc.p.lda, ldb = pc.p.ldb;
  const uint z = pc.p.z0 + gl_WorkGroupID.z;
  const uint zo = z / pc.p.batch_inner, zi = z % pc.p.batch_inner;
  const uint row0 = gl_WorkGroupID.y * BM + ty * TM;
  const uint col0 = gl_WorkGroupID.x * BN + tx * TN;
  const uint abase = pc.p.a_off + zo * pc.p.stride_a + zi * pc.p.stride_a2;
  const uint bbase = pc.p.b_off + zo * pc.p.stride_b + zi * pc.p.stride_b2;

  // texel index of every piece at k0 = 0; each step of 4 k adds ainc / binc
  int ai[TM], bi[TN];
  const int ainc = TA != 0 ? int(lda) : 1; // 4 rows of a^T, or 4 k of a row
  const int binc = TB != 0 ? 1 : int(ldb);
  [[unroll]] for (uint i = 0; i < TM; i++) {
    if (TA == 0) { // a row, 4 k
      ai[i] = int((abase + min(row0 + i, M - 1) * lda) / 4);
    } else { // piece (u, g) = row u of a ([K, M]), m .. m + 3
      uint u = i % 4, g = i / 4;
      ai[i] = int((abase + u * lda + min(row0 + 4 * g, M - 4)) / 4);
    }
  }
  [[unroll]] for (uint j = 0; j < TN; j++) {
    if (TB == 0) { // piece (u, g) = row u of b ([K, N]), n .. n + 3
      uint u = j % 4, g = j / 4;
      bi[j] = int((bbase + u * ldb + min(col0 + 4 * g, N - 4)) / 4);
    } else { // a row of b ([N, K]), 4 k
      bi[j] = int((bbase + min(col0 + j, N - 1) * ldb) / 4);
    }
  }

  float acc[TM][TN];
  [[unroll]] for (uint i = 0; i < TM; i++)
    [[unroll]] for (uint j = 0; j < TN; j++)
      acc[i][j] = 0.0;

  [[dont_unroll]] for (uint k0 = 0; k0 < K; k0 += 4) {
    const int step = int(k0 / 4);
    vec4 pa[TM], pb[TN];
    [[unroll]] for (uint i = 0; i < TM; i++)
      pa[i] = texelFetch(At, ai[i] + step * ainc);
    [[unroll]] for (uint j = 0; j < TN; j++)
      pb[j] = texelFetch(Bt, bi[j] + step * binc);
    [[unroll]] for (uint i = 0; i < TM; i++) {
      [[unroll]] for (uint j = 0; j < TN; j++) {
        // a(i, u) and b(u, j) for the 4 k of this step
        float s = 0.0;
        [[unroll]] for (uint u = 0; u < 4; u++) {
          float av = TA == 0 ? pa[i][u] : pa[(i / 4) * 4 + u][i % 4];
          float bv = TB == 0 ? pb[(j / 4) * 4 + u][j % 4] : pb[j][u];
          s = u == 0 ? av * bv : fma(av, bv, s);
        }
        acc[i][j] += s;
      }
    }
  }

  // c = alpha * acc (+ beta * c) (+ bias)
  const float alpha = pc.p.alpha, beta = pc.p.beta;
  const bool use_beta = (pc.p.flags & VKF_MM_BETA) != 0;
  const bool use_bias = (pc.p.flags & VKF_MM_BIAS) != 0;
  const uint cbase = zo * pc.p.stride_c + zi * pc.p.stride_c2, ldc = pc.p.ldc;
  if (VC != 0) { // 4 columns per access; N % 4 == 0, so a quad is all in or out
    V4 c4 = V4(pc.c), bias4 = V4(pc.bias);
    vec4 bq[TN / 4];
    [[unroll]] for (uint g = 0; g < TN / 4; g++) {
      bq[g] = vec4(0.0);
      if (use_bias && col0 + 4 * g < N)
        bq[g] = bias4.v[(col0 + 4 * g) / 4];
    }
    [[unroll]] for (uint i = 0; i < TM; i++) {
      const uint gm = row0 + i;
      [[unroll]] for (uint g = 0; g < TN / 4; g++) {
        const uint gn = col0 + 4 * g;
        if (gm < M && gn < N) {
          const uint ci = (cbase + gm * ldc + gn) / 4;
          vec4 v = alpha * vec4(acc[i][4 * g], acc[i][4 * g + 1], acc[i][4 * g + 2],
                                acc[i][4 * g + 3]);
          if (use_beta)
            v += beta * c4.v[ci];
          c4.v[ci] = v + bq[g];
        }
      }
    }
    return;
  }
  [[unroll]] for (uint i = 0; i < TM; i++) {
    const uint gm = row0 + i;
    [[unroll]] for (uint j = 0; j < TN; j++) {
      const uint gn = col0 + j;
      if (gm < M && gn < N) {
        const uint ci = cbase + gm * ldc + gn;
        float v = alpha * acc[i][j];
        if (use_beta)
          v += beta * pc.c.v[ci];
        if (use_bias)
          v += pc.bias.v[gn];
        pc.c.v[ci] = v;
      }
    }
  }
}
