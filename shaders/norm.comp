#version 450
// layernorm (LAYERNORM) and rmsnorm (RMSNORM) forward over the last
// dimension: one workgroup per row, workgroup-wide sums through shared
// memory (any subgroup size). VEC4: each invocation moves vec4s (the row
// length is a multiple of 4 and every vector operand is 16-byte aligned).
//
// layernorm is two-pass: the mean, then the centred sums (the second pass
// reads the row again, from cache), so a large mean does not cancel the
// variance away.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

#ifdef VEC4
layout(buffer_reference, std430, buffer_reference_align = 16) buffer V { vec4 v[]; };
#define T vec4
#define W 4u
#else
#define V F32
#define T float
#define W 1u
#endif

layout(push_constant) uniform PC {
  F32 out_;
#ifdef LAYERNORM
  F32 mean;
#endif
  F32 rstd;
  F32 x;
  F32 w;
#ifdef LAYERNORM
  F32 b;
#endif
  vkf_norm_params p;
} pc;

shared vec2 red[WG];

// Horizontal sum of a T.
float hsum(T v) {
  return dot(v, T(1.0));
}

// Workgroup-wide sum of a vec2 through shared memory (WG a power of two;
// barriers inside: call from uniform control flow).
vec2 wg_sum2(vec2 v) {
  uint t = gl_LocalInvocationID.x;
  red[t] = v;
  barrier();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s)
      red[t] += red[t + s];
    barrier();
  }
  vec2 r = red[0];
  barrier();
  return r;
}

void main() {
  uint row = vkf_linear_group();
  if (row >= pc.p.rows)
    return; // the whole workgroup leaves together
  const uint t = gl_LocalInvocationID.x;
  const uint n = pc.p.cols / W; // row length in T units
  const uint base = row * n;
  V x = V(pc.x);
  V w = V(pc.w);
  V o = V(pc.out_);
  const float inv_c = 1.0 / float(pc.p.cols);

#ifdef LAYERNORM
  T acc = T(0.0);
  for (uint i = t; i < n; i += WG)
    acc += x.v[base + i];
  // precise: mu0 is rounded here, and every use sees that same value (no
  // FMA fusing its product into mu0 + dmu below).
  precise const float mu0 = wg_sum2(vec2(hsum(acc), 0.0)).x * inv_c;
  // Second pass: the sums of d = x - mu0 and of d^2. dmu = sum(d) / C
  // corrects the float rounding of mu0 (which matters when |mean| >> std):
  // mean = mu0 + dmu, var = sum(d^2) / C - dmu^2, and the output uses
  // (x - mu0) - dmu, more accurate than x - float(mu0 + dmu).
  T sd = T(0.0), sd2 = T(0.0);
  for (uint i = t; i < n; i += WG) {
    T d = x.v[base + i] - mu0;
    sd += d;
    sd2 += d * d;
  }
  const vec2 s = wg_sum2(vec2(hsum(sd), hsum(sd2))) * inv_c;
  const float dmu = s.x;
  const float var = max(s.y - dmu * dmu, 0.0);
#else
  const float mu0 = 0.0, dmu = 0.0;
  T sq = T(0.0);
  for (uint i = t; i < n; i += WG) {
    T v = x.v[base + i];
    sq += v * v;
  }
  const float var = wg_sum2(vec2(hsum(sq), 0.0)).x * inv_c; // mean square
#endif
  const float rs = inversesqrt(var + pc.p.eps);

  // In place (out == x) is safe: each invocation reads x[i] before writing
  // out[i], and no other invocation touches i after the sums.
#ifdef LAYERNORM
  if ((pc.p.flags & VKF_NORM_BIAS) != 0u) {
    V b = V(pc.b);
    for (uint i = t; i < n; i += WG)
      o.v[base + i] = ((x.v[base + i] - mu0) - dmu) * rs * w.v[i] + b.v[i];
  } else
#endif
  {
    for (uint i = t; i < n; i += WG)
      o.v[base + i] = ((x.v[base + i] - mu0) - dmu) * rs * w.v[i];
  }
  if (t == 0u) {
#ifdef LAYERNORM
    if ((pc.p.flags & VKF_NORM_MEAN) != 0u)
      pc.mean.v[row] = mu0 + dmu; // the mean, rounded once
#endif
    if ((pc.p.flags & VKF_NORM_RSTD) != 0u)
      pc.rstd.v[row] = rs;
  }
}
