#version 450
// Linear attention: per-chunk state sums, one [D, Dv + 1] slot per
// (batch, kv head, chunk) of a states array. MODE (spec):
//   0 forward:  slot = sum over the chunk's tokens j of phi(k_j) v'_j^T
//   1 backward: slot = sum over the group's query heads h (in order) and the
//               chunk's tokens i of phi(q_ih) g_ih^T; only heads h0 .. h0 + nh - 1
//               of the group, added to the slot with VKF_LATTN_ACCUMULATE (the
//               backend splits long head loops on lavapipe)
// A workgroup computes a BM (of D) x BN (of Dv) tile of one slot, the tokens
// (and heads) in BK-deep slices through shared memory; TM x TN results per
// invocation. The workgroups of the first column tile also form column Dv
// (z in the forward; each invocation for its rows). Grid: x column tiles
// over Dv, y row tiles, z = slot - z0.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "attention_linear.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint BM = 32;
layout(constant_id = 2) const uint BN = 32;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 2;
layout(constant_id = 5) const uint TN = 2;
layout(constant_id = 6) const uint MODE = 0;

layout(push_constant) uniform PC {
  F32 dst; // the states array: [B, Hkv, n_chunks, D, Dv + 1]
  F32 y;   // k (MODE 0) or q (MODE 1): the rows' side
  F32 z;   // v (MODE 0) or g (MODE 1): the columns' side
  vkf_linear_attention_params p;
} pc;

shared float Ys[BK * (BM + 1)]; // [k][m]
shared float Zs[BK * BN];       // [k][n]
shared float Zd[BK];            // [k]: column Dv

void main() {
  const uint TX = BN / TN, TY = BM / TM;
  const uint tid = gl_LocalInvocationID.x, tx = tid % TX, ty = tid / TX;
  const uint D = pc.p.D, Dv1 = pc.p.Dv + 1, C = pc.p.chunk, nc = pc.p.n_chunks;
  const uint slot = gl_WorkGroupID.z + pc.p.z0;
  const uint bk = slot / nc, c = slot % nc, b = bk / pc.p.Hkv, hk = bk % pc.p.Hkv;
  const uint G = pc.p.Hq / pc.p.Hkv, NH = MODE == 0 ? 1 : pc.p.nh;
  const uint t0 = c * C, n = min(C, pc.p.T - t0);
  const uint m0 = gl_WorkGroupID.y * BM, n0 = gl_WorkGroupID.x * BN;
  const uint ykind = MODE == 0 ? LD_K_PHI : LD_Q_PHI, zkind = MODE == 0 ? LD_V_ONES : LD_G;

  const bool first = gl_WorkGroupID.x == 0; // uniform: also column Dv
  float acc[TM][TN], accd[TM];
  for (uint i = 0; i < TM; i++) {
    accd[i] = 0.0;
    for (uint j = 0; j < TN; j++)
      acc[i][j] = 0.0;
  }

  for (uint hh = 0; hh < NH; hh++) {
    const uint head = MODE == 0 ? hk : hk * G + pc.p.h0 + hh;
    for (uint s0 = 0; s0 < n; s0 += BK) {
      for (uint e = tid; e < BM * BK; e += WG) { // along D of a token's row
        uint m = e % BM, k = e / BM;
        Ys[k * (BM + 1) + m] =
            s0 + k < n ? lattn_load(pc.y, pc.p, ykind, b, t0 + s0 + k, head, m0 + m) : 0.0;
      }
      for (uint e = tid; e < BN * BK; e += WG) {
        uint nn = e % BN, k = e / BN;
        Zs[k * BN + nn] = s0 + k < n && n0 + nn < Dv1 - 1
                              ? lattn_load(pc.z, pc.p, zkind, b, t0 + s0 + k, head, n0 + nn)
                              : 0.0;
      }
      if (first)
        for (uint k = tid; k < BK; k += WG)
          Zd[k] = s0 + k < n ? lattn_load(pc.z, pc.p, zkind, b, t0 + s0 + k, head, Dv1 - 1) : 0.0;
      barrier();
      for (uint k = 0; k < BK; k++) {
        float yv[TM], zv[TN];
        for (uint i = 0; i < TM; i++)
          yv[i] = Ys[k * (BM + 1) + ty + i * TY];
        for (uint j = 0; j < TN; j++)
          zv[j] = Zs[k * BN + tx + j * TX];
        for (uint i = 0; i < TM; i++) {
          for (uint j = 0; j < TN; j++)
            acc[i][j] = fma(yv[i], zv[j], acc[i][j]);
          if (first)
            accd[i] = fma(yv[i], Zd[k], accd[i]);
        }
      }
      barrier();
    }
  }

  const uint base = slot * D * Dv1;
  const bool add = (pc.p.flags & VKF_LATTN_ACCUMULATE) != 0;
  for (uint i = 0; i < TM; i++) {
    uint m = m0 + ty + i * TY;
    if (m >= D)
      continue;
    for (uint j = 0; j < TN; j++) {
      uint nn = n0 + tx + j * TX;
      if (nn < Dv1 - 1)
        pc.dst.v[base + m * Dv1 + nn] = add ? pc.dst.v[base + m * Dv1 + nn] + acc[i][j] : acc[i][j];
    }
    if (first && tx == 0) {
      const uint o = base + m * Dv1 + Dv1 - 1;
      pc.dst.v[o] = add ? pc.dst.v[o] + accd[i] : accd[i];
    }
  }
}
