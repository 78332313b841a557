#version 450
// Linear attention, one decoding step, in two dispatches (MODE, spec):
//   0 update: one workgroup per (b, kv head):
//       state[b, hk] += phi(k) (v, 1)^T     (S += phi(k) v^T, z += phi(k))
//     invocation i owns the state columns i, i + WG, ... (NC of them);
//   1 output: one workgroup per (b, query head h), after the update:
//       out[b, 0, h, :] = phi(q_h)^T S / (phi(q_h)^T z + eps)
//     the denominator is a workgroup sum; invocation i forms the numerators
//     of the same columns.
// phi(k) or phi(q) goes through shared memory (DMAX = D floats).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "attention_linear.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint NC = 2;    // ceil((Dv + 1) / WG)
layout(constant_id = 2) const uint DMAX = 64; // D
layout(constant_id = 3) const uint MODE = 0;
#include "reduce.glsl"

layout(push_constant) uniform PC {
  F32 o;     // out [B, 1, Hq, Dv]
  F32 state; // [B, Hkv, D, Dv + 1]
  F32 q;     // [B, 1, Hq, D]
  F32 k;     // [B, 1, Hkv, D]
  F32 v;     // [B, 1, Hkv, Dv]
  vkf_linear_attention_params p;
} pc;

shared float xf[DMAX];

void main() {
  const uint grp = vkf_linear_group(), tid = gl_LocalInvocationID.x;
  const uint D = pc.p.D, Dv = pc.p.Dv, Dv1 = Dv + 1, Hq = pc.p.Hq, Hkv = pc.p.Hkv;
  if (grp >= pc.p.B * (MODE == 0 ? Hkv : Hq))
    return; // the whole workgroup leaves together
  if (MODE == 0) {
    const uint S = grp * D * Dv1;
    for (uint d = tid; d < D; d += WG)
      xf[d] = lattn_phi(pc.k.v[grp * D + d]);
    barrier();
    for (uint c = 0; c < NC; c++) {
      uint n = tid + c * WG;
      if (n >= Dv1)
        break;
      float vn = n < Dv ? pc.v.v[grp * Dv + n] : 1.0;
      for (uint d = 0; d < D; d++)
        pc.state.v[S + d * Dv1 + n] += xf[d] * vn;
    }
    return;
  }
  const uint b = grp / Hq, h = grp % Hq, S = (b * Hkv + h / (Hq / Hkv)) * D * Dv1;
  float part = 0.0;
  for (uint d = tid; d < D; d += WG) {
    float x = lattn_phi(pc.q.v[grp * D + d]), z = pc.state.v[S + d * Dv1 + Dv];
    xf[d] = x;
    part = fma(x, z, part);
  }
  const float inv = 1.0 / (vkf_wg_sum(part) + pc.p.eps); // its barriers publish xf
  for (uint c = 0; c < NC; c++) {
    uint n = tid + c * WG;
    if (n >= Dv)
      break;
    float num = 0.0;
    for (uint d = 0; d < D; d++)
      num = fma(xf[d], pc.state.v[S + d * Dv1 + n], num);
    pc.o.v[grp * Dv + n] = num * inv;
  }
}
