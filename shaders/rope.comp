#version 450
// Rotary position embedding, forward (out = R x, may be in place) and, with
// BACKWARD, dx += R^T dout. One workgroup per token (b, t), covering all its
// heads: the angles of pairs [i0, i0 + WG) are computed once into shared
// memory, then every head's pairs in that range are rotated (consecutive
// invocations take consecutive pairs, so loads and stores are coalesced).
//
// Angles without tables: pair i turns p * theta^(-2i/rd) / (2 pi) times per
// position p. That rate is formed in 64-bit fixed point (freq^i times
// 1/(2 pi), freq = theta^(-2/rd) from the host to 2^-64), and the turn
// fraction of p times it is exact to 2^-32 turn with 32-bit integer
// multiplies. sin/cos then come from the quadrant and a reduced angle in
// [-pi/4, pi/4] by polynomial, so the result does not depend on the
// device's sin/cos accuracy nor degrade with the position: error about
// 1e-7 rad for any |p| < 2^31, where p * freq in float would be off by
// ulp(p) (4e-3 rad at p = 65536).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

layout(push_constant) uniform PC {
  F32 out_; // dx with BACKWARD
  F32 x;    // dout with BACKWARD
  F32 cos_t;
  F32 sin_t;
  U32 pos_ids;
  vkf_rope_params p;
} pc;

shared float s_cos[WG];
shared float s_sin[WG];

// 64-bit binary fractions as uvec2(hi, lo) = hi * 2^-32 + lo * 2^-64.
uvec2 fx_mul(uvec2 a, uvec2 b) {
  uint hh_hi, hh_lo, hl_hi, hl_lo, lh_hi, lh_lo, ll_hi, ll_lo;
  umulExtended(a.x, b.x, hh_hi, hh_lo);
  umulExtended(a.x, b.y, hl_hi, hl_lo);
  umulExtended(a.y, b.x, lh_hi, lh_lo);
  umulExtended(a.y, b.y, ll_hi, ll_lo);
  uint c1, c2, c3, c4, c5;
  uint below = uaddCarry(hl_lo, lh_lo, c1); // the 2^-96 word: only its carries matter
  below = uaddCarry(below, ll_hi, c2);
  uint lo = uaddCarry(hh_lo, hl_hi, c3);
  lo = uaddCarry(lo, lh_hi, c4);
  lo = uaddCarry(lo, c1 + c2, c5);
  return uvec2(hh_hi + c3 + c4 + c5, lo);
}

// Turns per position of pair i: freq^i / (2 pi).
uvec2 turns_per_position(uint i) {
  const uvec2 INV_2PI = uvec2(0x28be60dbu, 0x9391054au); // 2^64 / (2 pi), rounded
  if (i == 0)
    return INV_2PI;
  uvec2 base = uvec2(pc.p.freq_hi, pc.p.freq_lo), r = uvec2(0);
  bool have = false;
  for (uint e = i; e != 0;) {
    if ((e & 1u) != 0) {
      r = have ? fx_mul(r, base) : base;
      have = true;
    }
    e >>= 1;
    if (e != 0)
      base = fx_mul(base, base);
  }
  return fx_mul(r, INV_2PI);
}

// sin and cos of u * 2 pi / 2^32.
void sincos_turns(uint u, out float s, out float c) {
  uint q = (u + 0x20000000u) >> 30; // nearest quarter turn
  int r = int(u - (q << 30));       // [-2^29, 2^29): |angle| <= pi/4
  float a = float(r) * 1.46291807926715968e-9; // 2 pi / 2^32
  float a2 = a * a;
  // Taylor series; truncation error < 2e-9 on [-pi/4, pi/4]
  float sp = a + a * a2 * (-1.0 / 6.0 + a2 * (1.0 / 120.0 + a2 * (-1.0 / 5040.0 + a2 * (1.0 / 362880.0))));
  float cp = 1.0 + a2 * (-0.5 + a2 * (1.0 / 24.0 + a2 * (-1.0 / 720.0 + a2 * (1.0 / 40320.0 + a2 * (-1.0 / 3628800.0)))));
  q &= 3u;
  s = q == 0u ? sp : q == 1u ? cp : q == 2u ? -sp : -cp;
  c = q == 0u ? cp : q == 1u ? -sp : q == 2u ? -cp : sp;
}

void main() {
  uint tok = vkf_linear_group();
  uint T = pc.p.T;
  if (tok >= pc.p.B * T)
    return; // the whole workgroup leaves together
  uint b = tok / T, t = tok - b * T;
  uint base = b * pc.p.sB + t * pc.p.sT;
  uint flags = pc.p.flags;
  int pos = (flags & VKF_ROPEF_POS_IDS) != 0 ? int(pc.pos_ids.v[tok]) : pc.p.pos_offset + int(t);
  uint half_ = pc.p.pairs, H = pc.p.H, sH = pc.p.sH;
  bool inter = (flags & VKF_ROPEF_INTERLEAVED) != 0;
  uint lid = gl_LocalInvocationID.x;

  for (uint i0 = 0; i0 < half_; i0 += WG) {
    uint cw = min(WG, half_ - i0);
    if (lid < cw) {
      uint i = i0 + lid;
      float s, c;
      if ((flags & VKF_ROPEF_TABLE) != 0) {
        uint row = (flags & VKF_ROPEF_TABLE_BT) != 0 ? tok : uint(pos);
        row = row < pc.p.table_rows ? row : 0u; // the host checked; stay in bounds regardless
        c = pc.cos_t.v[row * half_ + i];
        s = pc.sin_t.v[row * half_ + i];
      } else {
        uvec2 g = turns_per_position(i);
        uint ap = pos < 0 ? uint(-(pos + 1)) + 1u : uint(pos); // |pos|, also for INT_MIN
        uint ph, pl, qh, ql;
        umulExtended(ap, g.x, ph, pl);
        umulExtended(ap, g.y, qh, ql);
        sincos_turns(pl + qh + (ql >> 31), s, c);
        if (pos < 0)
          s = -s;
      }
      s_cos[lid] = c;
      s_sin[lid] = s;
    }
    barrier();
    // invocation lid takes pair j of heads lane, lane + lanes, ...
    uint lanes = WG / cw, lane = lid / cw, j = lid - lane * cw, i = i0 + j;
    if (lane < lanes) {
      float c = s_cos[j], s = s_sin[j];
      for (uint h = lane; h < H; h += lanes) {
        uint o = base + h * sH;
        uint e1 = inter ? o + 2u * i : o + i;
        uint e2 = inter ? e1 + 1u : o + i + half_;
        float x1 = pc.x.v[e1], x2 = pc.x.v[e2];
#if defined(BACKWARD)
        pc.out_.v[e1] += c * x1 + s * x2;
        pc.out_.v[e2] += c * x2 - s * x1;
#else
        pc.out_.v[e1] = c * x1 - s * x2;
        pc.out_.v[e2] = s * x1 + c * x2;
#endif
      }
    }
    barrier(); // before the next range overwrites s_cos/s_sin
  }

  // dims [2 * half, D) of each head pass through
  uint rd = 2u * half_, rest = pc.p.D - rd;
#if !defined(BACKWARD)
  if ((flags & VKF_ROPEF_INPLACE) != 0)
    rest = 0;
#endif
  for (uint q = lid; q < H * rest; q += WG) {
    uint h = q / rest;
    uint e = base + h * sH + rd + (q - h * rest);
#if defined(BACKWARD)
    pc.out_.v[e] += pc.x.v[e];
#else
    pc.out_.v[e] = pc.x.v[e];
#endif
  }
}
