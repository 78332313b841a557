#version 450
// Attention: rows of A . X per (batch, query head), A [B, Hq, Tq, Tk] and X
// the rows of the matching kv head. MODE (spec):
//   0 attention_forward out:  dst = P . v   (dst = out, E = Dv), overwrites
//   1 backward dq:            dst += dS . k (dst = dq,  E = D)
// A workgroup computes a BM (query rows) x BN (of E) tile, walking only the
// keys some row of the tile can see (A is exactly 0 elsewhere). BK-deep slices
// of A and X in shared memory; TM x TN results per invocation.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "attention.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint BM = 64;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 4;
layout(constant_id = 5) const uint TN = 4;
layout(constant_id = 6) const uint MODE = 0;

layout(push_constant) uniform PC {
  F32 dst;
  F32 a;
  F32 x;
  I32 kvl;
  vkf_attention_params p;
} pc;

shared float As[BK * (BM + 1)]; // [k][m]
shared float Xs[BK * BN];       // [k][n]

void main() {
  const uint TX = BN / TN;
  const uint tid = gl_LocalInvocationID.x, tx = tid % TX, ty = tid / TX;
  const uint Tq = pc.p.Tq, Tk = pc.p.Tk, Hq = pc.p.Hq, Hkv = pc.p.Hkv;
  const uint E = MODE == 0 ? pc.p.Dv : pc.p.D;
  const uint bh = gl_WorkGroupID.z + pc.p.bh0;
  const uint b = bh / Hq, h = bh % Hq, hk = h / (Hq / Hkv);
  const uint row0 = gl_WorkGroupID.y * BM, col0 = gl_WorkGroupID.x * BN;
  const uint rows = min(BM, Tq - row0), cols = min(BN, E - col0);
  const int kv_len = (pc.p.flags & VKF_ATTN_KV_LENS) != 0 ? pc.kvl.v[b] : int(Tk);
  const ivec2 keys =
      attn_keys_of_rows(pc.p, attn_batch(pc.p, kv_len), int(row0), int(row0 + rows - 1));
  if (MODE == 1 && keys.x >= keys.y)
    return; // nothing to add; uniform over the workgroup

  const bool qb = (pc.p.flags & VKF_ATTN_Q_BHTD) != 0, kb = (pc.p.flags & VKF_ATTN_KV_BHTD) != 0;
  const uint abase = bh * Tq * Tk + row0 * Tk;
  const uint xbase = attn_row(kb, b, 0, hk, Tk, Hkv, E) + col0, xstr = attn_row_stride(kb, Hkv, E);

  float acc[TM][TN];
  for (uint i = 0; i < TM; i++)
    for (uint j = 0; j < TN; j++)
      acc[i][j] = 0.0;

  const uint k_end = uint(keys.y);
  for (uint k0 = uint(keys.x); k0 < k_end; k0 += BK) {
    for (uint e = tid; e < BM * BK; e += WG) { // along the keys of a row
      uint k = e % BK, m = e / BK;
      float v = 0.0;
      if (m < rows && k0 + k < k_end)
        v = pc.a.v[abase + m * Tk + k0 + k];
      As[k * (BM + 1) + m] = v;
    }
    for (uint e = tid; e < BN * BK; e += WG) { // along E of a key's row
      uint n = e % BN, k = e / BN;
      float v = 0.0;
      if (n < cols && k0 + k < k_end)
        v = pc.x.v[xbase + (k0 + k) * xstr + n];
      Xs[k * BN + n] = v;
    }
    barrier();
    for (uint k = 0; k < BK; k++) {
      float av[TM], xv[TN];
      for (uint i = 0; i < TM; i++)
        av[i] = As[k * (BM + 1) + ty + i * (BM / TM)];
      for (uint j = 0; j < TN; j++)
        xv[j] = Xs[k * BN + tx + j * TX];
      for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
          acc[i][j] = fma(av[i], xv[j], acc[i][j]);
    }
    barrier();
  }

  const uint obase = attn_row(qb, b, row0, h, Tq, Hq, E) + col0, ostr = attn_row_stride(qb, Hq, E);
  for (uint i = 0; i < TM; i++) {
    uint m = ty + i * (BM / TM);
    if (m >= rows)
      continue;
    for (uint j = 0; j < TN; j++) {
      uint n = tx + j * TX;
      if (n >= cols)
        continue;
      uint o = obase + m * ostr + n;
      if (MODE == 0)
        pc.dst.v[o] = acc[i][j];
      else
        pc.dst.v[o] += acc[i][j];
    }
  }
}
