#version 450
// Attention: tiles of A . B^T per (batch, query head), A rows of the query
// heads, B rows of the matching kv head (h / (Hq / Hkv)). MODE (spec):
//   0 attention_forward scores: dst = logits (scaled, softcapped, masked; -inf
//     where not visible). A = q, B = k, inner size D.
//   1 backward dP:  dst = dout . v^T. A = dout, B = v, inner size Dv.
//   2 backward softcap factor: dst = scale * (1 - tanh^2(scale * q.k / softcap)).
// dst is [B, Hq, Tq, Tk]. A workgroup computes a BM x BN tile; tiles whose keys
// no row of the tile can see are skipped (mode 0 with VKF_ATTN_LOGITS fills
// them with -inf; otherwise the row kernels never read them). Tiling as
// matmul.comp: BK-deep slices of A and B staged in shared memory (padded by one
// word so the transposing stores avoid bank conflicts), TM x TN results per
// invocation; WG = (BM/TM) * (BN/TN).
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
  F32 b;
  F32 mask; // mode 0 with VKF_ATTN_MASK
  I32 kvl;  // with VKF_ATTN_KV_LENS
  vkf_attention_params p;
} pc;

shared float As[BK * (BM + 1)]; // [k][m]
shared float Bs[BK * (BN + 1)]; // [k][n]

void main() {
  const uint TX = BN / TN;
  const uint tid = gl_LocalInvocationID.x, tx = tid % TX, ty = tid / TX;
  const uint Tq = pc.p.Tq, Tk = pc.p.Tk, Hq = pc.p.Hq, Hkv = pc.p.Hkv;
  const uint bh = gl_WorkGroupID.z + pc.p.bh0;
  const uint b = bh / Hq, h = bh % Hq, hk = h / (Hq / Hkv);
  const uint row0 = gl_WorkGroupID.y * BM, col0 = gl_WorkGroupID.x * BN;
  const uint rows = min(BM, Tq - row0), cols = min(BN, Tk - col0);
  const uint dbase = bh * Tq * Tk;
  const int kv_len = (pc.p.flags & VKF_ATTN_KV_LENS) != 0 ? pc.kvl.v[b] : int(Tk);
  const ivec2 bt = attn_batch(pc.p, kv_len);
  const ivec2 keys = attn_keys_of_rows(pc.p, bt, int(row0), int(row0 + rows - 1));

  if (int(col0) >= keys.y || int(col0 + cols) <= keys.x) { // uniform over the workgroup
    if (MODE == 0 && (pc.p.flags & VKF_ATTN_LOGITS) != 0)
      for (uint e = tid; e < BM * BN; e += WG) {
        uint m = e / BN, n = e % BN;
        if (m < rows && n < cols)
          pc.dst.v[dbase + (row0 + m) * Tk + col0 + n] = -1.0 / 0.0;
      }
    return;
  }

  const uint K = MODE == 1 ? pc.p.Dv : pc.p.D;
  const bool qb = (pc.p.flags & VKF_ATTN_Q_BHTD) != 0, kb = (pc.p.flags & VKF_ATTN_KV_BHTD) != 0;
  const uint abase = attn_row(qb, b, row0, h, Tq, Hq, K), astr = attn_row_stride(qb, Hq, K);
  const uint bbase = attn_row(kb, b, col0, hk, Tk, Hkv, K), bstr = attn_row_stride(kb, Hkv, K);

  float acc[TM][TN];
  for (uint i = 0; i < TM; i++)
    for (uint j = 0; j < TN; j++)
      acc[i][j] = 0.0;

  for (uint k0 = 0; k0 < K; k0 += BK) {
    // consecutive invocations read consecutive elements of a row
    for (uint e = tid; e < BM * BK; e += WG) {
      uint k = e % BK, m = e / BK;
      float v = 0.0;
      if (m < rows && k0 + k < K)
        v = pc.a.v[abase + m * astr + k0 + k];
      As[k * (BM + 1) + m] = v;
    }
    for (uint e = tid; e < BN * BK; e += WG) {
      uint k = e % BK, n = e / BK;
      float v = 0.0;
      if (n < cols && k0 + k < K)
        v = pc.b.v[bbase + n * bstr + k0 + k];
      Bs[k * (BN + 1) + n] = v;
    }
    barrier();
    for (uint k = 0; k < BK; k++) {
      float av[TM], bv[TN];
      for (uint i = 0; i < TM; i++)
        av[i] = As[k * (BM + 1) + ty + i * (BM / TM)];
      for (uint j = 0; j < TN; j++)
        bv[j] = Bs[k * (BN + 1) + tx + j * TX];
      for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
          acc[i][j] = fma(av[i], bv[j], acc[i][j]);
    }
    barrier();
  }

  const float scale = pc.p.scale, cap = pc.p.softcap;
  const bool softcap = (pc.p.flags & VKF_ATTN_SOFTCAP) != 0;
  for (uint i = 0; i < TM; i++) {
    uint m = ty + i * (BM / TM);
    if (m >= rows)
      continue;
    uint gi = row0 + m;
    ivec2 r = MODE == 0 ? attn_keys_of_rows(pc.p, bt, int(gi), int(gi)) : ivec2(0);
    uint mrow = (pc.p.flags & VKF_ATTN_MASK) != 0
                    ? b * pc.p.mask_sb + h * pc.p.mask_sh + gi * pc.p.mask_si
                    : 0;
    for (uint j = 0; j < TN; j++) {
      uint n = tx + j * TX;
      if (n >= cols)
        continue;
      uint gj = col0 + n;
      float v;
      if (MODE == 0) {
        if (int(gj) >= r.x && int(gj) < r.y) {
          v = scale * acc[i][j];
          if (softcap)
            v = cap * attn_tanh(v / cap);
          if ((pc.p.flags & VKF_ATTN_MASK) != 0)
            v += pc.mask.v[mrow + gj];
        } else {
          v = -1.0 / 0.0;
        }
      } else if (MODE == 1) {
        v = acc[i][j];
      } else {
        float t = attn_tanh(scale * acc[i][j] / cap);
        v = scale * (1.0 - t * t);
      }
      pc.dst.v[dbase + gi * Tk + gj] = v;
    }
  }
}
