#version 450
// The infer family.
//   kv_write: one workgroup per new row (b, t): its destination row is read
//   once from `where`, then the row's key and value elements are copied by
//   consecutive invocations (see vkf_kv_write_params).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

layout(push_constant) uniform PC {
  F32 k_cache;
  F32 v_cache;
  F32 k;
  F32 v;
  U32 where_;
  vkf_kv_write_params p;
} pc;

void main() {
  uint i = vkf_linear_group();
  if (i >= pc.p.B * pc.p.T)
    return;
  uint b = i / pc.p.T, t = i - b * pc.p.T;
  int start = int(pc.where_.v[2 * b]), count = int(pc.where_.v[2 * b + 1]);
  if (count <= 0 || (uint(count) < pc.p.T && t < pc.p.T - uint(count)))
    return; // only the last `count` rows; uniform over the workgroup
  // 32-bit unsigned arithmetic without overflow for any start (the frontend
  // keeps rows <= 2^30, t < 2^30)
  uint rows = pc.p.rows, r;
  uint neg = start < 0 ? uint(-(start + 1)) + 1u : 0u; // |start| when negative
  if ((pc.p.flags & VKF_KVW_RING) != 0u) {
    uint s = start >= 0 ? uint(start) % rows : (rows - neg % rows) % rows;
    r = (s + t % rows) % rows;
  } else {
    if (start >= 0) {
      r = uint(start) + t; // < 2^31 + 2^30
    } else {
      if (t < neg)
        return;
      r = t - neg;
    }
    if (r >= rows)
      return;
  }
  uint dst = b * pc.p.rows + uint(r);
  uint Wk = pc.p.Wk, Wv = pc.p.Wv;
  for (uint c = gl_LocalInvocationID.x; c < Wk; c += WG)
    pc.k_cache.v[dst * Wk + c] = pc.k.v[i * Wk + c];
  for (uint c = gl_LocalInvocationID.x; c < Wv; c += WG)
    pc.v_cache.v[dst * Wv + c] = pc.v.v[i * Wv + c];
}
