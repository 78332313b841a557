#version 450
// clip_grads: x *= min(1, max_norm / (norm + 1e-6)), the factor read on the
// device; when it is 1 (norm at or below the limit) nothing is read or
// written beyond the norm.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const bool VEC4 = true;
#include "optim.glsl"

layout(push_constant) uniform PC {
  F32 x;
  F32 norm;
  vkf_clip_grads_params p;
} pc;

void main() {
  const uint n = pc.p.n, t = gl_LocalInvocationID.x, group = vkf_linear_group();
  if (group > (n - 1) / CHUNK)
    return;
  float s = vkf_clip_factor(pc.norm.v[0], pc.p.max_norm, 1.0);
  if (s == 1.0)
    return; // uniform: every invocation reads the same norm
  const uint base = group * CHUNK, rem = n - base;
  vkf_optim_store(pc.x, base, rem, t, vkf_optim_load(pc.x, base, rem, t) * s);
}
