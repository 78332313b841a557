#version 450
// grad_norm, two deterministic stages (no atomics):
//   grad_norm (stage 1): n_partials workgroups; workgroup g sums the squares
//     of a grid-stride share of x (vec4 loads when x is 16-byte aligned, four
//     independent loads in flight per iteration) and writes scratch[g].
//   grad_norm_final (FINAL, stage 2): one workgroup adds scratch[0..n_partials)
//     in a fixed order and writes out[0] = sqrt(sum).
// The summation order depends only on n, n_partials and WG, so a result
// repeats exactly on one device.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const bool VEC4 = true;
#include "reduce.glsl"

layout(buffer_reference, std430, buffer_reference_align = 16) buffer F32x4 { vec4 v[]; };

layout(push_constant) uniform PC {
  F32 out_;
  F32 scratch;
  F32 x;
  vkf_grad_norm_params p;
} pc;

#ifndef FINAL
void main() {
  const uint t = gl_LocalInvocationID.x, g = gl_WorkGroupID.x;
  const uint stride = pc.p.n_partials * WG, first = g * WG + t;
  // count = items this invocation visits; first + k * stride for k < count
  // never passes the end, so nothing overflows.
  vec4 a0 = vec4(0.0), a1 = vec4(0.0), a2 = vec4(0.0), a3 = vec4(0.0);
  if (VEC4) {
    F32x4 x4 = F32x4(pc.x);
    const uint n4 = pc.p.n / 4;
    const uint count = first < n4 ? (n4 - 1 - first) / stride + 1 : 0;
    uint k = 0;
    for (; k + 4 <= count; k += 4) {
      uint i = first + k * stride;
      vec4 u0 = x4.v[i], u1 = x4.v[i + stride], u2 = x4.v[i + 2 * stride],
           u3 = x4.v[i + 3 * stride];
      a0 += u0 * u0;
      a1 += u1 * u1;
      a2 += u2 * u2;
      a3 += u3 * u3;
    }
    for (; k < count; k++) {
      vec4 u = x4.v[first + k * stride];
      a0 += u * u;
    }
    // the last n % 4 elements
    if (g == 0 && t < pc.p.n % 4) {
      float u = pc.x.v[n4 * 4 + t];
      a1.x += u * u;
    }
  } else {
    const uint n = pc.p.n;
    const uint count = first < n ? (n - 1 - first) / stride + 1 : 0;
    uint k = 0;
    for (; k + 4 <= count; k += 4) {
      uint i = first + k * stride;
      vec4 u = vec4(pc.x.v[i], pc.x.v[i + stride], pc.x.v[i + 2 * stride],
                    pc.x.v[i + 3 * stride]);
      a0 += u * u;
    }
    for (; k < count; k++) {
      float u = pc.x.v[first + k * stride];
      a1.x += u * u;
    }
  }
  vec4 a = (a0 + a1) + (a2 + a3);
  float s = vkf_wg_sum((a.x + a.y) + (a.z + a.w));
  if (t == 0)
    pc.scratch.v[g] = s;
}
#else
void main() {
  const uint t = gl_LocalInvocationID.x;
  float acc = 0.0;
  for (uint i = t; i < pc.p.n_partials; i += WG)
    acc += pc.scratch.v[i];
  float s = vkf_wg_sum(acc);
  if (t == 0)
    pc.out_.v[0] = sqrt(s);
}
#endif
