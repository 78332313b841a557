#version 450
// Attention backward, dk and dv, per (batch, kv head): for each key j
//   MODE 0: dk[j] += sum over the group's query heads h, rows i: dS[h, i, j] * q[i, h]  (E = D)
//   MODE 1: dv[j] += sum over the group's query heads h, rows i: P[h, i, j] * dout[i, h] (E = Dv)
// The group's query heads are summed inside the kernel, in order (no atomics:
// deterministic). A workgroup computes a BM (keys) x BN (of E) tile, walking
// only the query rows that can see some key of the tile. A^T slices are read
// along the keys (coalesced) and staged in shared memory with X slices.
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
  F32 dst; // dk or dv
  F32 a;   // dS or P, [B, Hq, Tq, Tk]
  F32 x;   // q or dout
  I32 kvl;
  vkf_attention_params p;
} pc;

shared float As[BK * BM]; // [k = query row][m = key]
shared float Xs[BK * BN]; // [k][n]

void main() {
  const uint TX = BN / TN;
  const uint tid = gl_LocalInvocationID.x, tx = tid % TX, ty = tid / TX;
  const uint Tq = pc.p.Tq, Tk = pc.p.Tk, Hq = pc.p.Hq, Hkv = pc.p.Hkv, G = Hq / Hkv;
  const uint E = MODE == 0 ? pc.p.D : pc.p.Dv;
  const uint bk = gl_WorkGroupID.z + pc.p.bh0;
  const uint b = bk / Hkv, hk = bk % Hkv;
  const uint row0 = gl_WorkGroupID.y * BM, col0 = gl_WorkGroupID.x * BN; // keys, E
  const uint rows = min(BM, Tk - row0), cols = min(BN, E - col0);
  const int kv_len = (pc.p.flags & VKF_ATTN_KV_LENS) != 0 ? pc.kvl.v[b] : int(Tk);
  const ivec2 qrows =
      attn_rows_of_keys(pc.p, attn_batch(pc.p, kv_len), int(row0), int(row0 + rows - 1));
  if (qrows.x >= qrows.y)
    return; // no query sees these keys: nothing to add (uniform)

  const bool qb = (pc.p.flags & VKF_ATTN_Q_BHTD) != 0, kb = (pc.p.flags & VKF_ATTN_KV_BHTD) != 0;
  const uint xstr = attn_row_stride(qb, Hq, E);

  float acc[TM][TN];
  for (uint i = 0; i < TM; i++)
    for (uint j = 0; j < TN; j++)
      acc[i][j] = 0.0;

  const uint i_end = uint(qrows.y);
  for (uint r = 0; r < G; r++) {
    const uint h = hk * G + r;
    const uint abase = (b * Hq + h) * Tq * Tk + row0;
    const uint xbase = attn_row(qb, b, 0, h, Tq, Hq, E) + col0;
    for (uint k0 = uint(qrows.x); k0 < i_end; k0 += BK) {
      for (uint e = tid; e < BM * BK; e += WG) { // along the keys of a query row
        uint m = e % BM, k = e / BM;
        float v = 0.0;
        if (m < rows && k0 + k < i_end)
          v = pc.a.v[abase + (k0 + k) * Tk + m];
        As[k * BM + m] = v;
      }
      for (uint e = tid; e < BN * BK; e += WG) {
        uint n = e % BN, k = e / BN;
        float v = 0.0;
        if (n < cols && k0 + k < i_end)
          v = pc.x.v[xbase + (k0 + k) * xstr + n];
        Xs[k * BN + n] = v;
      }
      barrier();
      for (uint k = 0; k < BK; k++) {
        float av[TM], xv[TN];
        for (uint i = 0; i < TM; i++)
          av[i] = As[k * BM + ty + i * (BM / TM)];
        for (uint j = 0; j < TN; j++)
          xv[j] = Xs[k * BN + tx + j * TX];
        for (uint i = 0; i < TM; i++)
          for (uint j = 0; j < TN; j++)
            acc[i][j] = fma(av[i], xv[j], acc[i][j]);
      }
      barrier();
    }
  }

  const uint obase = attn_row(kb, b, row0, hk, Tk, Hkv, E) + col0, ostr = attn_row_stride(kb, Hkv, E);
  for (uint i = 0; i < TM; i++) {
    uint m = ty + i * (BM / TM);
    if (m >= rows)
      continue;
    for (uint j = 0; j < TN; j++) {
      uint n = tx + j * TX;
      if (n < cols)
        pc.dst.v[obase + m * ostr + n] += acc[i][j];
    }
  }
}
