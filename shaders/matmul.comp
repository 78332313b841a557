#version 450
// Tiled GEMM: c = alpha * op(a) . op(b) (+ beta * c) (+ bias), batched in z.
//
// A workgroup computes a BM x BN tile of c. Each step stages a BM x BK slice
// of op(a) and a BK x BN slice of op(b) in shared memory, both k-major
// (As[k][m], Bs[k][n]) so that an invocation reads its operands as vectors
// of GW floats: vec4s (GW = 4), or with VKF_MM_WIDE u64vec4s holding 8 floats
// (GW = 8; needs shaderInt64; for llvmpipe, see below). Each invocation keeps
// a TM x TN block of results in registers: rows ty*GW + g*(BM/TM)*GW + r for
// g < TM/GW, r < GW, and likewise for columns, so that neighbouring
// invocations read neighbouring vectors of shared memory.
//
// Specialization constants, chosen per device in backend/vulkan/vk_matmul.c:
//   WG = (BM/TM) * (BN/TN) invocations; BM, BN, TM, TN multiples of 4,
//   BK a multiple of 4 and of KU.
//   KU: k-steps whose products are summed in temporaries before they are
//   added to the accumulators (1 = one fma per step). Larger KU pays on
//   llvmpipe, where every accumulator update inside the k loop is a masked
//   read-modify-write of memory.
//   VEC: bit 0 (1): a may be read as vec4 (16-byte aligned, contiguous
//   dimension and batch stride multiples of 4); bit 1 (2): the same for b;
//   bit 2 (4): c (and bias, when present) may be read and written as vec4.
//   The vec4 paths and the unchecked scalar path are taken only for tiles
//   entirely inside the matrices; edge tiles check every element.
//   With VKF_MM_WIDE, TM and TN are multiples of 8 and at most 16, and bit 2
//   is unused.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#ifdef VKF_MM_WIDE
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#endif
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;
layout(constant_id = 6) const uint KU = 1;
layout(constant_id = 7) const uint VEC = 0;

layout(buffer_reference, std430, buffer_reference_align = 16) buffer V4 { vec4 v[]; };

layout(push_constant) uniform PC {
  F32 c;
  F32 a;
  F32 b;
  F32 bias;
  vkf_matmul_params p;
} pc;

const uint TX = BN / TN, TY = BM / TM; // invocations along n and m
const uint BM4 = BM / 4, BN4 = BN / 4, BK4 = BK / 4;

#ifdef VKF_MM_WIDE
// Tiles as pairs of floats in 64-bit words, read 8 floats at a time: on
// llvmpipe each shared-memory load is a loop over the lanes, and a u64vec4
// moves twice the data of a vec4 per iteration.
const uint GW = 8; // floats per shared-memory read
layout(buffer_reference, std430, buffer_reference_align = 16) buffer U64x2 { u64vec2 v[]; };
shared u64vec4 As[BK * BM / 8]; // op(a) tile, [k][m]
shared u64vec4 Bs[BK * BN / 8]; // op(b) tile, [k][n]
uint64_t pack2(float x, float y) {
  return packUint2x32(uvec2(floatBitsToUint(x), floatBitsToUint(y)));
}
vec2 unpack2(uint64_t v) {
  return uintBitsToFloat(unpackUint2x32(v));
}
void store_a2(uint k, uint m, uint64_t v) { // m even
  uint w = (k * BM + m) / 2;
  As[w / 4][w % 4] = v;
}
void store_b2(uint k, uint n, uint64_t v) {
  uint w = (k * BN + n) / 2;
  Bs[w / 4][w % 4] = v;
}
#else
const uint GW = 4;
shared vec4 As[BK * BM / 4]; // op(a) tile, [k][m]
shared vec4 Bs[BK * BN / 4]; // op(b) tile, [k][n]
#endif

#ifdef VKF_MM_WIDE
// a's element (m, k) of the tile at row0, k0; 0 outside the matrix unless
// `full` says the tile is inside it.
float a_at(uint row0, uint k0, uint m, uint k, bool full) {
  const bool ta = (pc.p.flags & VKF_MM_TRANS_A) != 0;
  uint gm = row0 + m, gk = k0 + k;
  if (!full && (gm >= pc.p.M || gk >= pc.p.K))
    return 0.0;
  return pc.a.v[gl_WorkGroupID.z * pc.p.stride_a + (ta ? gk * pc.p.lda + gm : gm * pc.p.lda + gk)];
}
float b_at(uint col0, uint k0, uint n, uint k, bool full) {
  const bool tb = (pc.p.flags & VKF_MM_TRANS_B) != 0;
  uint gn = col0 + n, gk = k0 + k;
  if (!full && (gn >= pc.p.N || gk >= pc.p.K))
    return 0.0;
  return pc.b.v[gl_WorkGroupID.z * pc.p.stride_b + (tb ? gn * pc.p.ldb + gk : gk * pc.p.ldb + gn)];
}

void stage_a(uint tid, uint row0, uint k0, bool full) {
  const bool ta = (pc.p.flags & VKF_MM_TRANS_A) != 0;
  const uint lda = pc.p.lda, aoff = gl_WorkGroupID.z * pc.p.stride_a;
  if (full && (VEC & 1u) != 0) {
    // 16-byte reads as two 64-bit words: on llvmpipe a global read is a loop
    // over the lanes per component, so two components beat four
    U64x2 a2 = U64x2(pc.a);
    if (ta) { // a is [K, M]: four floats along m are two pairs
      for (uint e = tid; e < BM4 * BK; e += WG) {
        uint mq = e % BM4, k = e / BM4;
        u64vec2 v = a2.v[(aoff + (k0 + k) * lda + row0) / 4 + mq];
        store_a2(k, mq * 4, v.x);
        store_a2(k, mq * 4 + 2, v.y);
      }
    } else { // a is [M, K]: four floats along k of rows m and m + 1
      for (uint e = tid; e < BM / 2 * BK4; e += WG) {
        uint kq = e % BK4, m = e / BK4 * 2;
        uint i0 = (aoff + (row0 + m) * lda + k0) / 4 + kq;
        u64vec2 v0 = a2.v[i0], v1 = a2.v[i0 + lda / 4];
        for (uint c = 0; c < 2; c++) {
          vec2 x = unpack2(v0[c]), y = unpack2(v1[c]);
          store_a2(kq * 4 + 2 * c, m, pack2(x.x, y.x));
          store_a2(kq * 4 + 2 * c + 1, m, pack2(x.y, y.y));
        }
      }
    }
  } else {
    for (uint e = tid; e < BM / 2 * BK; e += WG) {
      uint m, k;
      if (ta) { m = e % (BM / 2) * 2; k = e / (BM / 2); } else { k = e % BK; m = e / BK * 2; }
      store_a2(k, m, pack2(a_at(row0, k0, m, k, full), a_at(row0, k0, m + 1, k, full)));
    }
  }
}

void stage_b(uint tid, uint col0, uint k0, bool full) {
  const bool tb = (pc.p.flags & VKF_MM_TRANS_B) != 0;
  const uint ldb = pc.p.ldb, boff = gl_WorkGroupID.z * pc.p.stride_b;
  if (full && (VEC & 2u) != 0) {
    U64x2 b2 = U64x2(pc.b);
    if (tb) { // b is [N, K]: four floats along k of rows n and n + 1
      for (uint e = tid; e < BN / 2 * BK4; e += WG) {
        uint kq = e % BK4, n = e / BK4 * 2;
        uint i0 = (boff + (col0 + n) * ldb + k0) / 4 + kq;
        u64vec2 v0 = b2.v[i0], v1 = b2.v[i0 + ldb / 4];
        for (uint c = 0; c < 2; c++) {
          vec2 x = unpack2(v0[c]), y = unpack2(v1[c]);
          store_b2(kq * 4 + 2 * c, n, pack2(x.x, y.x));
          store_b2(kq * 4 + 2 * c + 1, n, pack2(x.y, y.y));
        }
      }
    } else { // b is [K, N]: four floats along n are two pairs
      for (uint e = tid; e < BN4 * BK; e += WG) {
        uint nq = e % BN4, k = e / BN4;
        u64vec2 v = b2.v[(boff + (k0 + k) * ldb + col0) / 4 + nq];
        store_b2(k, nq * 4, v.x);
        store_b2(k, nq * 4 + 2, v.y);
      }
    }
  } else {
    for (uint e = tid; e < BN / 2 * BK; e += WG) {
      uint n, k;
      if (tb) { k = e % BK; n = e / BK * 2; } else { n = e % (BN / 2) * 2; k = e / (BN / 2); }
      store_b2(k, n, pack2(b_at(col0, k0, n, k, full), b_at(col0, k0, n + 1, k, full)));
    }
  }
}

#else
void store_a(uint k, uint m, float v) {
  As[k * BM4 + m / 4][m % 4] = v;
}
void store_b(uint k, uint n, float v) {
  Bs[k * BN4 + n / 4][n % 4] = v;
}

// Stages op(a)[row0 .. row0+BM, k0 .. k0+BK] into As. `full`: the slice is
// inside the matrix.
void stage_a(uint tid, uint row0, uint k0, bool full) {
  const uint M = pc.p.M, K = pc.p.K, lda = pc.p.lda;
  const bool ta = (pc.p.flags & VKF_MM_TRANS_A) != 0;
  const uint aoff = gl_WorkGroupID.z * pc.p.stride_a;
  if (full && (VEC & 1u) != 0) {
    V4 a4 = V4(pc.a);
    for (uint e = tid; e < BM * BK4; e += WG) {
      if (ta) { // a is [K, M]: vec4 along m, stored as one vec4
        uint mq = e % BM4, k = e / BM4;
        As[k * BM4 + mq] = a4.v[(aoff + (k0 + k) * lda + row0) / 4 + mq];
      } else { // a is [M, K]: vec4 along k, transposed into four columns
        uint kq = e % BK4, m = e / BK4;
        vec4 v = a4.v[(aoff + (row0 + m) * lda + k0) / 4 + kq];
        for (uint c = 0; c < 4; c++)
          store_a(kq * 4 + c, m, v[c]);
      }
    }
  } else {
    for (uint e = tid; e < BM * BK; e += WG) {
      uint m, k; // consecutive invocations take consecutive addresses of a
      if (ta) { m = e % BM; k = e / BM; } else { k = e % BK; m = e / BK; }
      uint gm = row0 + m, gk = k0 + k;
      float v = 0.0;
      if (full || (gm < M && gk < K))
        v = pc.a.v[aoff + (ta ? gk * lda + gm : gm * lda + gk)];
      store_a(k, m, v);
    }
  }
}

// Stages op(b)[k0 .. k0+BK, col0 .. col0+BN] into Bs.
void stage_b(uint tid, uint col0, uint k0, bool full) {
  const uint N = pc.p.N, K = pc.p.K, ldb = pc.p.ldb;
  const bool tb = (pc.p.flags & VKF_MM_TRANS_B) != 0;
  const uint boff = gl_WorkGroupID.z * pc.p.stride_b;
  if (full && (VEC & 2u) != 0) {
    V4 b4 = V4(pc.b);
    for (uint e = tid; e < BN * BK4; e += WG) {
      if (tb) { // b is [N, K]: vec4 along k, transposed into four rows
        uint kq = e % BK4, n = e / BK4;
        vec4 v = b4.v[(boff + (col0 + n) * ldb + k0) / 4 + kq];
        for (uint c = 0; c < 4; c++)
          store_b(kq * 4 + c, n, v[c]);
      } else { // b is [K, N]: vec4 along n
        uint nq = e % BN4, k = e / BN4;
        Bs[k * BN4 + nq] = b4.v[(boff + (k0 + k) * ldb + col0) / 4 + nq];
      }
    }
  } else {
    for (uint e = tid; e < BN * BK; e += WG) {
      uint n, k;
      if (tb) { k = e % BK; n = e / BK; } else { n = e % BN; k = e / BN; }
      uint gn = col0 + n, gk = k0 + k;
      float v = 0.0;
      if (full || (gn < N && gk < K))
        v = pc.b.v[boff + (tb ? gn * ldb + gk : gk * ldb + gn)];
      store_b(k, n, v);
    }
  }
}

#endif

#ifdef VKF_MM_WIDE
// Writes row i (TN <= 16 values v0..v15) of an invocation's block to c.
void put_row(uint i, uint row0, uint col0, uint tx, uint ty, float v0, float v1, float v2,
             float v3, float v4, float v5, float v6, float v7, float v8, float v9, float v10,
             float v11, float v12, float v13, float v14, float v15) {
  uint gm = row0 + (i / GW) * TY * GW + ty * GW + i % GW;
  if (i >= TM || gm >= pc.p.M)
    return;
  const uint ci0 = gl_WorkGroupID.z * pc.p.stride_c + gm * pc.p.ldc;
  const bool use_beta = (pc.p.flags & VKF_MM_BETA) != 0;
  const bool use_bias = (pc.p.flags & VKF_MM_BIAS) != 0;
  [[dont_unroll]] for (uint j = 0; j < TN; j++) {
    uint gn = col0 + (j / GW) * TX * GW + tx * GW + j % GW;
    if (gn < pc.p.N) {
      float v = v0;
      v = j == 1u ? v1 : v;
      v = j == 2u ? v2 : v;
      v = j == 3u ? v3 : v;
      v = j == 4u ? v4 : v;
      v = j == 5u ? v5 : v;
      v = j == 6u ? v6 : v;
      v = j == 7u ? v7 : v;
      v = j == 8u ? v8 : v;
      v = j == 9u ? v9 : v;
      v = j == 10u ? v10 : v;
      v = j == 11u ? v11 : v;
      v = j == 12u ? v12 : v;
      v = j == 13u ? v13 : v;
      v = j == 14u ? v14 : v;
      v = j == 15u ? v15 : v;
      v *= pc.p.alpha;
      if (use_beta)
        v += pc.p.beta * pc.c.v[ci0 + gn];
      if (use_bias)
        v += pc.bias.v[gn];
      pc.c.v[ci0 + gn] = v;
    }
  }
}
// acc[i][j], clamped into the array for the blocks smaller than 16 x 16
#define ACC(i, j) acc[min(i, TM - 1)][min(j, TN - 1)]
#define ROW_(f, i)                                                                                  \
  f(i, row0, col0, tx, ty, ACC(i, 0), ACC(i, 1), ACC(i, 2), ACC(i, 3), ACC(i, 4), ACC(i, 5),       \
    ACC(i, 6), ACC(i, 7), ACC(i, 8), ACC(i, 9), ACC(i, 10), ACC(i, 11), ACC(i, 12), ACC(i, 13),     \
    ACC(i, 14), ACC(i, 15))
#define ROWS16(f)                                                                                  \
  ROW_(f, 0); ROW_(f, 1); ROW_(f, 2); ROW_(f, 3); ROW_(f, 4); ROW_(f, 5); ROW_(f, 6); ROW_(f, 7);  \
  ROW_(f, 8); ROW_(f, 9); ROW_(f, 10); ROW_(f, 11); ROW_(f, 12); ROW_(f, 13); ROW_(f, 14);         \
  ROW_(f, 15)
#endif

void main() {
  const uint tid = gl_LocalInvocationID.x;
  const uint tx = tid % TX, ty = tid / TX;
  const uint row0 = gl_WorkGroupID.y * BM, col0 = gl_WorkGroupID.x * BN;
  const uint M = pc.p.M, N = pc.p.N, K = pc.p.K;
  const bool rows_in = row0 + BM <= M, cols_in = col0 + BN <= N;

  float acc[TM][TN];
  for (uint i = 0; i < TM; i++)
    for (uint j = 0; j < TN; j++)
      acc[i][j] = 0.0;

  for (uint k0 = 0; k0 < K; k0 += BK) {
    const bool k_in = k0 + BK <= K;
    stage_a(tid, row0, k0, rows_in && k_in);
    stage_b(tid, col0, k0, cols_in && k_in);
    barrier();
    for (uint k = 0; k < BK; k += KU) {
#ifdef VKF_MM_WIDE
      vec2 av[KU][TM / 2], bv[KU][TN / 2];
      for (uint u = 0; u < KU; u++) {
        for (uint g = 0; g < TM / 8; g++) {
          u64vec4 q = As[((k + u) * BM) / 8 + g * TY + ty];
          for (uint c = 0; c < 4; c++)
            av[u][g * 4 + c] = unpack2(q[c]);
        }
        for (uint g = 0; g < TN / 8; g++) {
          u64vec4 q = Bs[((k + u) * BN) / 8 + g * TX + tx];
          for (uint c = 0; c < 4; c++)
            bv[u][g * 4 + c] = unpack2(q[c]);
        }
      }
#define A_(u, i) av[u][(i) / 2][(i) % 2]
#define B_(u, j) bv[u][(j) / 2][(j) % 2]
#else
      vec4 av[KU][TM / 4], bv[KU][TN / 4];
      for (uint u = 0; u < KU; u++) {
        for (uint g = 0; g < TM / 4; g++)
          av[u][g] = As[(k + u) * BM4 + g * TY + ty];
        for (uint g = 0; g < TN / 4; g++)
          bv[u][g] = Bs[(k + u) * BN4 + g * TX + tx];
      }
#define A_(u, i) av[u][(i) / 4][(i) % 4]
#define B_(u, j) bv[u][(j) / 4][(j) % 4]
#endif
      for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++) {
          if (KU == 1) {
            acc[i][j] = fma(A_(0, i), B_(0, j), acc[i][j]);
          } else {
            float s = A_(0, i) * B_(0, j);
            for (uint u = 1; u < KU; u++)
              s = fma(A_(u, i), B_(u, j), s);
            acc[i][j] += s;
          }
        }
    }
    barrier();
  }

  // c = alpha * acc (+ beta * c) (+ bias)
  const uint coff = gl_WorkGroupID.z * pc.p.stride_c, ldc = pc.p.ldc;
  const float alpha = pc.p.alpha, beta = pc.p.beta;
  const bool use_beta = (pc.p.flags & VKF_MM_BETA) != 0;
  const bool use_bias = (pc.p.flags & VKF_MM_BIAS) != 0;
#ifndef VKF_MM_WIDE
  if ((VEC & 4u) != 0 && rows_in && cols_in) {
    V4 c4 = V4(pc.c), bias4 = V4(pc.bias);
    for (uint i = 0; i < TM; i++) {
      uint gm = row0 + (i / 4) * TY * 4 + ty * 4 + i % 4;
      for (uint g = 0; g < TN / 4; g++) {
        uint gq = col0 / 4 + g * TX + tx; // vec4 column index
        uint ci = (coff + gm * ldc) / 4 + gq;
        vec4 v = alpha * vec4(acc[i][g * 4], acc[i][g * 4 + 1], acc[i][g * 4 + 2],
                              acc[i][g * 4 + 3]);
        if (use_beta)
          v += beta * c4.v[ci];
        if (use_bias)
          v += bias4.v[gq];
        c4.v[ci] = v;
      }
    }
  } else {
    for (uint i = 0; i < TM; i++) {
      uint gm = row0 + (i / 4) * TY * 4 + ty * 4 + i % 4;
      if (gm >= M)
        continue;
      for (uint j = 0; j < TN; j++) {
        uint gn = col0 + (j / 4) * TX * 4 + tx * 4 + j % 4;
        if (gn >= N)
          continue;
        uint ci = coff + gm * ldc + gn;
        float v = alpha * acc[i][j];
        if (use_beta)
          v += beta * pc.c.v[ci];
        if (use_bias)
          v += pc.bias.v[gn];
        pc.c.v[ci] = v;
      }
    }
  }
#else
  // Row by row, each through a loop that is not unrolled: on llvmpipe every
  // global access is a loop over the lanes, and 3 * TM * TN of them unrolled
  // take seconds to compile. The row's values are passed as arguments and
  // picked with selects (an indexed copy would go to scratch memory).
  ROWS16(put_row);
#endif
}
