#version 450
// norm_backward_reduce: the second pass of layernorm_backward /
// rmsnorm_backward. dw[i] += sum over blocks b of pw[b, i] (db[i] likewise
// from pb), in a fixed order: lane l of
// LANES sums the blocks l, l + LANES, .. in order, then lane 0 adds the
// lanes' sums in lane order. A workgroup covers WG / LANES columns;
// neighbouring invocations read neighbouring columns.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint LANES = 8; // divides WG
const uint TU = WG / LANES;                   // columns per workgroup

#ifdef VEC4
layout(buffer_reference, std430, buffer_reference_align = 16) buffer V { vec4 v[]; };
#define T vec4
#else
#define V F32
#define T float
#endif

layout(push_constant) uniform PC {
  F32 dw;
  F32 db;
  F32 pw;
  F32 pb;
  vkf_norm_reduce_params p;
} pc;

shared T red[WG];

// grad[i] += sum_b part[b * n + i] (barriers inside: uniform control flow).
void reduce_into(V grad, V part, uint i, bool ok) {
  const uint t = gl_LocalInvocationID.x, lane = t / TU, u = t % TU;
  const uint n = pc.p.n, nb = pc.p.n_blocks;
  T s = T(0.0);
  if (ok)
    for (uint b = lane; b < nb; b += LANES)
      s += part.v[b * n + i];
  red[t] = s;
  barrier();
  if (lane == 0u && ok) {
    T total = red[u];
    for (uint l = 1u; l < LANES; l++)
      total += red[l * TU + u];
    grad.v[i] += total;
  }
  barrier();
}

void main() {
  const uint g = vkf_linear_group();
  const uint n = pc.p.n;
  if (g >= (n + TU - 1u) / TU)
    return; // the whole workgroup leaves together
  const uint i = g * TU + gl_LocalInvocationID.x % TU;
  const bool ok = i < n;
  if ((pc.p.flags & VKF_NORM_DW) != 0u)
    reduce_into(V(pc.dw), V(pc.pw), i, ok);
  if ((pc.p.flags & VKF_NORM_DB) != 0u)
    reduce_into(V(pc.db), V(pc.pb), i, ok);
}
