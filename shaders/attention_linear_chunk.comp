#version 450
// Linear attention: the rows of one chunk, as "the past through a state"
// plus "this chunk, causally masked". For rows r of the chunk (tokens t):
//   acc[r, n] = sum_f X[r, f] M[f, n]
//             + sum over heads hh, keys s of the chunk with s <= t (MODE 0, 1)
//               or s >= t (MODE 2, 3) of (X[r] . Y[hh, s]) Z[hh, s, n]
// MODE (spec)  rows         X        Y, Z (heads)            M            result
//   0 forward  query h      phi(q)   phi(k), v' (its kv)     S'_c         out = acc / (den + eps)
//   1 dq       query h      g        v', phi(k) (its kv)     S'_c^T       dq += acc * phi'(q)
//   2 dk       kv head hk   v'       g, phi(q) (the group)   R_c^T        dk += acc * phi'(k)
//   3 dv       kv head hk   phi(k)   phi(q), g (the group)   R_c          dv += acc
// where S'_c is the chunk's saved start state, R_c the reverse-time state
// (workspace). MODE 2 and 3 take the group's heads h0 .. h0 + nh - 1 (the
// backend splits long head loops on lavapipe; with VKF_LATTN_ACCUMULATE the
// state term was added by an earlier dispatch). MODE 0 also forms den = phi(q) . z_c + the row sums of the
// in-chunk products (every invocation for its own rows) and saves it.
// A workgroup computes BM rows (of one chunk) x BN columns: first the state
// term over BK-deep feature slices, then per head and BS-key block the
// scores (BM x BS, X and Y slices in shared memory; computed once for all BN
// columns), masked into shared memory, and their product with the block's Z
// rows. TX x TY invocations: TM x TN results and TM x TS scores each.
// Grid: (chunk, row block) linear over x, y; z = (b * heads + head) *
// column tiles + column tile - z0.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "attention_linear.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const uint BM = 32;
layout(constant_id = 2) const uint BN = 64;
layout(constant_id = 3) const uint BK = 16;
layout(constant_id = 4) const uint TM = 2;
layout(constant_id = 5) const uint TN = 4;
layout(constant_id = 6) const uint MODE = 0;
layout(constant_id = 7) const uint BS = 32; // keys per block; BS / TS = BN / TN

layout(push_constant) uniform PC {
  F32 dst;    // out, dq, dk, dv
  F32 xs;     // q, g, v, k: the rows' tensor
  F32 ys;     // k, v, g, q
  F32 zs;     // v, k, q, g
  F32 states; // saved's states (MODE 0, 1) or the workspace's R (MODE 2, 3)
  F32 aux;    // MODE 0: den (written); 1: q; 2: k (for phi')
  vkf_linear_attention_params p;
} pc;

const bool REV = MODE >= 2;
const uint XK = MODE == 0 ? LD_Q_PHI : MODE == 1 ? LD_G : MODE == 2 ? LD_V_ONES : LD_K_PHI;
const uint YK = MODE == 0 ? LD_K_PHI : MODE == 1 ? LD_V_ONES : MODE == 2 ? LD_G : LD_Q_PHI;
const uint ZK = MODE == 0 ? LD_V_ONES : MODE == 1 ? LD_K_PHI : MODE == 2 ? LD_Q_PHI : LD_G;

const uint TX = BN / TN, TY = BM / TM, TS = BS / TX;

shared float Xs[BK * (BM + 1)]; // [f][r]
shared float Ys[BK * BS];       // [f][s]
shared float Zc[BK];            // MODE 0: the z slice
shared float Ss[BS * (BM + 1)]; // masked scores [s][r]
shared float Zs[BS * BN];       // [s][n]; first the state slice [f][n] (BK <= BS)

void main() {
  const uint tid = gl_LocalInvocationID.x, tx = tid % TX, ty = tid / TX;
  const uint T = pc.p.T, C = pc.p.chunk, D = pc.p.D, Dv = pc.p.Dv, Dv1 = Dv + 1;
  const uint G = pc.p.Hq / pc.p.Hkv;
  const uint H = REV ? pc.p.Hkv : pc.p.Hq;      // heads of the rows
  const uint F = lattn_width(pc.p, XK);          // features of X and Y
  const uint N = (MODE == 1 || MODE == 2) ? D : Dv; // result columns
  const uint ncol = (N + BN - 1) / BN, nrb = (min(C, T) + BM - 1) / BM;

  const uint blk = vkf_linear_group();
  if (blk >= pc.p.n_chunks * nrb)
    return; // the whole workgroup leaves together
  const uint c = blk / nrb, cs = c * C, ce = min(cs + C, T);
  const uint t0 = cs + (blk % nrb) * BM;
  if (t0 >= ce)
    return;
  const uint rows = min(BM, ce - t0);
  const uint zz = gl_WorkGroupID.z + pc.p.z0, n0 = (zz % ncol) * BN;
  const uint bh = zz / ncol, b = bh / H, h = bh % H, hk = REV ? h : h / G;
  const uint xhead = h;
  const uint slot = ((b * pc.p.Hkv + hk) * pc.p.n_chunks + c) * D * Dv1;

  float acc[TM][TN], den[TM];
  for (uint i = 0; i < TM; i++) {
    den[i] = 0.0;
    for (uint j = 0; j < TN; j++)
      acc[i][j] = 0.0;
  }

  // the state term: sum_f X[r, f] M[f, n]
  const uint F_state = (pc.p.flags & VKF_LATTN_ACCUMULATE) != 0 ? 0 : F;
  for (uint f0 = 0; f0 < F_state; f0 += BK) {
    for (uint e = tid; e < BM * BK; e += WG) {
      uint f = e % BK, r = e / BK;
      Xs[f * (BM + 1) + r] = r < rows ? lattn_load(pc.xs, pc.p, XK, b, t0 + r, xhead, f0 + f) : 0.0;
    }
    for (uint e = tid; e < BN * BK; e += WG) {
      uint n = e % BN, f = e / BN, ff = f0 + f, nn = n0 + n;
      float m = 0.0;
      if (ff < F && nn < N) // S' and R are [D, Dv1]: M = S' (0, 3) or its transpose (1, 2)
        m = (MODE == 0 || MODE == 3) ? pc.states.v[slot + ff * Dv1 + nn]
                                     : pc.states.v[slot + nn * Dv1 + ff];
      Zs[f * BN + n] = m;
    }
    if (MODE == 0)
      for (uint f = tid; f < BK; f += WG)
        Zc[f] = f0 + f < F ? pc.states.v[slot + (f0 + f) * Dv1 + Dv] : 0.0;
    barrier();
    for (uint f = 0; f < BK; f++) {
      float xv[TM], mv[TN];
      for (uint i = 0; i < TM; i++)
        xv[i] = Xs[f * (BM + 1) + ty + i * TY];
      for (uint j = 0; j < TN; j++)
        mv[j] = Zs[f * BN + tx + j * TX];
      for (uint i = 0; i < TM; i++) {
        for (uint j = 0; j < TN; j++)
          acc[i][j] = fma(xv[i], mv[j], acc[i][j]);
        if (MODE == 0)
          den[i] = fma(xv[i], Zc[f], den[i]);
      }
    }
    barrier();
  }

  // this chunk: keys [k_lo, k_hi) cover every row's visible ones
  const uint k_lo = REV ? t0 : cs, k_hi = REV ? ce : t0 + rows;
  const uint NH = REV ? pc.p.nh : 1;
  for (uint hh = 0; hh < NH; hh++) {
    const uint yhead = REV ? hk * G + pc.p.h0 + hh : hk;
    for (uint s0 = k_lo; s0 < k_hi; s0 += BS) {
      float sc[TM][TS];
      for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TS; j++)
          sc[i][j] = 0.0;
      for (uint f0 = 0; f0 < F; f0 += BK) {
        for (uint e = tid; e < BM * BK; e += WG) {
          uint f = e % BK, r = e / BK;
          Xs[f * (BM + 1) + r] =
              r < rows ? lattn_load(pc.xs, pc.p, XK, b, t0 + r, xhead, f0 + f) : 0.0;
        }
        for (uint e = tid; e < BS * BK; e += WG) {
          uint f = e % BK, s = e / BK;
          Ys[f * BS + s] =
              s0 + s < k_hi ? lattn_load(pc.ys, pc.p, YK, b, s0 + s, yhead, f0 + f) : 0.0;
        }
        barrier();
        for (uint f = 0; f < BK; f++) {
          float xv[TM], yv[TS];
          for (uint i = 0; i < TM; i++)
            xv[i] = Xs[f * (BM + 1) + ty + i * TY];
          for (uint j = 0; j < TS; j++)
            yv[j] = Ys[f * BS + tx + j * TX];
          for (uint i = 0; i < TM; i++)
            for (uint j = 0; j < TS; j++)
              sc[i][j] = fma(xv[i], yv[j], sc[i][j]);
        }
        barrier();
      }
      for (uint i = 0; i < TM; i++) {
        uint r = ty + i * TY, t = t0 + r;
        for (uint j = 0; j < TS; j++) {
          uint s = tx + j * TX, ts = s0 + s;
          bool vis = r < rows && ts < k_hi && (REV ? ts >= t : ts <= t);
          Ss[s * (BM + 1) + r] = vis ? sc[i][j] : 0.0;
        }
      }
      for (uint e = tid; e < BS * BN; e += WG) { // along the columns of a key's row
        uint n = e % BN, s = e / BN;
        Zs[s * BN + n] =
            s0 + s < k_hi ? lattn_load(pc.zs, pc.p, ZK, b, s0 + s, yhead, n0 + n) : 0.0;
      }
      barrier();
      for (uint s = 0; s < BS; s++) {
        float av[TM], zv[TN];
        for (uint i = 0; i < TM; i++)
          av[i] = Ss[s * (BM + 1) + ty + i * TY];
        for (uint j = 0; j < TN; j++)
          zv[j] = Zs[s * BN + tx + j * TX];
        for (uint i = 0; i < TM; i++) {
          for (uint j = 0; j < TN; j++)
            acc[i][j] = fma(av[i], zv[j], acc[i][j]);
          if (MODE == 0)
            den[i] += av[i];
        }
      }
      barrier();
    }
  }

  const uint ostride = H * N, obase = (b * T + t0) * ostride + h * N;
  for (uint i = 0; i < TM; i++) {
    uint r = ty + i * TY;
    if (r >= rows)
      continue;
    float inv = 1.0 / (den[i] + pc.p.eps);
    if (MODE == 0 && n0 == 0 && tx == 0)
      pc.aux.v[(b * T + t0 + r) * pc.p.Hq + h] = den[i];
    for (uint j = 0; j < TN; j++) {
      uint n = n0 + tx + j * TX;
      if (n >= N)
        continue;
      uint o = obase + r * ostride + n;
      if (MODE == 0)
        pc.dst.v[o] = acc[i][j] * inv;
      else if (MODE == 3)
        pc.dst.v[o] += acc[i][j];
      else // dq (q's layout) or dk (k's layout): o indexes the input too
        pc.dst.v[o] += acc[i][j] * lattn_dphi(pc.aux.v[o]);
    }
  }
}
