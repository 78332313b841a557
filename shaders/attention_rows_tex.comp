#version 450
// Attention row kernels for CPU Vulkan devices (llvmpipe; texel reads, see
// backend/vulkan/vk.h): the same results as attention_rows.comp, one
// invocation per row (b, h, i) of [B, Hq, Tq, Tk] instead of a workgroup:
// no shared memory and no barriers (each a coroutine switch on llvmpipe),
// operands fetched 4 floats at a time through texel views (a vector gather
// on llvmpipe, where a load through a device address is a loop over the
// lanes).
//   OP_SOFTMAX (attention_softmax_tex): dst = softmax of src over the row's
//     visible keys, 0 elsewhere; src may be dst (each invocation reads its
//     row's elements before it writes them).
//   OP_DS (attention_ds_tex): in place, dst holds dP on entry and
//     dS = P * (dP - sum_j P * dP) * scale on exit, 0 outside the visible keys.
// Only without kv_lens, masks and softcap (the caller checks); Tk is a
// multiple of 4 and the rows start on 16-byte boundaries.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "attention.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

layout(set = 0, binding = 0) uniform samplerBuffer Src; // src (softmax), dP (ds)
#if defined(OP_DS)
layout(set = 0, binding = 1) uniform samplerBuffer Pt;
#endif

layout(push_constant) uniform PC {
  F32 dst;
  uint src_off; // floats from the view's start
  uint p_off;
  vkf_attention_params p;
} pc;

void main() {
  const uint row = vkf_linear_index();
  const uint Tq = pc.p.Tq, Tk = pc.p.Tk;
  if (row >= pc.p.B * pc.p.Hq * Tq)
    return;
  const uint i = row % Tq;
  const ivec2 r = attn_keys_of_rows(pc.p, attn_batch(pc.p, int(Tk)), int(i), int(i));
  const int lo = r.x, hi = r.y;
  const uint base = row * Tk; // floats; a multiple of 4
  const int s0 = int((pc.src_off + base) / 4), n4 = int(Tk / 4);
  const int q0 = lo / 4, q1 = (hi + 3) / 4; // vec4s holding visible keys
#if defined(OP_SOFTMAX)
  // running maximum and sum of exponentials relative to it, per vec4
  float m = -1.0 / 0.0, s = 0.0;
  for (int q = q0; q < q1; q++) {
    vec4 x = texelFetch(Src, s0 + q);
    ivec4 key = ivec4(4 * q) + ivec4(0, 1, 2, 3);
    bvec4 vis = bvec4(uvec4(greaterThanEqual(key, ivec4(lo))) & uvec4(lessThan(key, ivec4(hi))));
    x = mix(vec4(-1.0 / 0.0), x, vis);
    float mx = max(max(x.x, x.y), max(x.z, x.w));
    float mn = max(m, mx);
    if (mn != -1.0 / 0.0) {
      vec4 e = exp(x - mn); // 0 for masked keys
      s = s * exp(m - mn) + (e.x + e.y) + (e.z + e.w);
      m = mn;
    }
  }
  const bool none = m == -1.0 / 0.0;
  const float inv = none ? 0.0 : 1.0 / s;
  for (int q = 0; q < n4; q++) {
    vec4 v = vec4(0.0);
    if (q >= q0 && q < q1 && !none) {
      vec4 x = texelFetch(Src, s0 + q);
      ivec4 key = ivec4(4 * q) + ivec4(0, 1, 2, 3);
      bvec4 vis = bvec4(uvec4(greaterThanEqual(key, ivec4(lo))) & uvec4(lessThan(key, ivec4(hi))));
      v = mix(vec4(0.0), exp(x - m) * inv, vis);
    }
    uint o = base + 4 * uint(q);
    pc.dst.v[o] = v.x;
    pc.dst.v[o + 1] = v.y;
    pc.dst.v[o + 2] = v.z;
    pc.dst.v[o + 3] = v.w;
  }
#else
  const int p0 = int((pc.p_off + base) / 4);
  float d = 0.0;
  for (int q = q0; q < q1; q++) {
    vec4 dp = texelFetch(Src, s0 + q), pp = texelFetch(Pt, p0 + q);
    ivec4 key = ivec4(4 * q) + ivec4(0, 1, 2, 3);
    bvec4 vis = bvec4(uvec4(greaterThanEqual(key, ivec4(lo))) & uvec4(lessThan(key, ivec4(hi))));
    d += dot(mix(vec4(0.0), pp * dp, vis), vec4(1.0));
  }
  const float scale = pc.p.scale;
  for (int q = 0; q < n4; q++) {
    vec4 v = vec4(0.0);
    if (q >= q0 && q < q1) {
      vec4 dp = texelFetch(Src, s0 + q), pp = texelFetch(Pt, p0 + q);
      ivec4 key = ivec4(4 * q) + ivec4(0, 1, 2, 3);
      bvec4 vis = bvec4(uvec4(greaterThanEqual(key, ivec4(lo))) & uvec4(lessThan(key, ivec4(hi))));
      v = mix(vec4(0.0), pp * (dp - d) * scale, vis);
    }
    uint o = base + 4 * uint(q);
    pc.dst.v[o] = v.x;
    pc.dst.v[o + 1] = v.y;
    pc.dst.v[o + 2] = v.z;
    pc.dst.v[o + 3] = v.w;
  }
#endif
}
