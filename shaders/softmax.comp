#version 450
// Row softmax: one workgroup per row; max, sum of exponentials, normalise.
// A row that is all -inf gives zeros (as the CPU backend).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
#include "reduce.glsl"

layout(push_constant) uniform PC {
  F32 out_;
  F32 a;
  vkf_softmax_params p;
} pc;

void main() {
  uint row = vkf_linear_group();
  if (row >= pc.p.rows)
    return;
  uint base = row * pc.p.cols, n = pc.p.cols, t = gl_LocalInvocationID.x;
  float m = -1.0 / 0.0;
  for (uint c = t; c < n; c += WG)
    m = max(m, pc.a.v[base + c]);
  m = vkf_wg_max(m);
  float s = 0.0;
  if (m != -1.0 / 0.0) {
    for (uint c = t; c < n; c += WG)
      s += exp(pc.a.v[base + c] - m);
  }
  s = vkf_wg_sum(s);
  float inv = s > 0.0 ? 1.0 / s : 0.0;
  for (uint c = t; c < n; c += WG)
    pc.out_.v[base + c] = m == -1.0 / 0.0 ? 0.0 : exp(pc.a.v[base + c] - m) * inv;
}
