#version 450
// Linear attention backward: for every row r = (b, t, h) of [B, T, Hq]
//   g[r, 0..Dv) = dout[r] / (den[r] + eps),
//   g[r, Dv]    = -(dout[r] . out[r]) / (den[r] + eps)
// (the gradient of the numerator phi(q)^T S' and of the denominator).
// L invocations per row (a power of two), WG / L rows per workgroup; the dot
// product is summed in shared memory within each row's L slots.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint L = 8;

layout(push_constant) uniform PC {
  F32 g;    // [B, T, Hq, Dv + 1]
  F32 dout; // [B, T, Hq, Dv]
  F32 o;    // out [B, T, Hq, Dv] (the forward's output)
  F32 den;  // [B, T, Hq] (saved's second part)
  vkf_linear_attention_params p;
} pc;

shared float red[WG];

void main() {
  const uint tid = gl_LocalInvocationID.x, lane = tid % L, Dv = pc.p.Dv;
  const uint r = vkf_linear_group() * (WG / L) + tid / L;
  const bool live = r < pc.p.B * pc.p.T * pc.p.Hq; // every invocation reaches the barriers
  float part = 0.0;
  if (live)
    for (uint e = lane; e < Dv; e += L)
      part = fma(pc.dout.v[r * Dv + e], pc.o.v[r * Dv + e], part);
  red[tid] = part;
  barrier();
  for (uint s = L / 2; s > 0; s >>= 1) {
    if (lane < s)
      red[tid] += red[tid + s];
    barrier();
  }
  if (!live)
    return;
  const float inv = 1.0 / (pc.den.v[r] + pc.p.eps);
  for (uint e = lane; e < Dv; e += L)
    pc.g.v[r * (Dv + 1) + e] = pc.dout.v[r * Dv + e] * inv;
  if (lane == 0)
    pc.g.v[r * (Dv + 1) + Dv] = -red[tid] * inv;
}
