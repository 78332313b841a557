#version 450
// Linear attention: the exclusive scan of the chunk slots of a states array
// [B, Hkv, n_chunks, D, Dv + 1], one invocation per element of a slot:
//   forward (REVERSE 0): slot c = initial + the sum of slots 0..c-1; with
//     VKF_LATTN_STATE the initial value is read from `state` and the total
//     (the state after the last token) written back there;
//   reverse (REVERSE 1): slot c = the sum of slots c+1..n_chunks-1.
// Consecutive invocations read consecutive elements of each slot.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint REVERSE = 0;

layout(push_constant) uniform PC {
  F32 states;
  F32 state; // [B, Hkv, D, Dv + 1], with VKF_LATTN_STATE (forward)
  vkf_linear_attention_params p;
} pc;

void main() {
  const uint per = pc.p.D * (pc.p.Dv + 1), nc = pc.p.n_chunks;
  const uint e = vkf_linear_index();
  if (e >= pc.p.B * pc.p.Hkv * per)
    return;
  const uint bk = e / per, r = e % per;
  const bool st = REVERSE == 0 && (pc.p.flags & VKF_LATTN_STATE) != 0;
  float run = st ? pc.state.v[e] : 0.0;
  for (uint i = 0; i < nc; i++) {
    uint c = REVERSE == 0 ? i : nc - 1 - i;
    uint idx = (bk * nc + c) * per + r;
    float x = pc.states.v[idx];
    pc.states.v[idx] = run;
    run += x;
  }
  if (st)
    pc.state.v[e] = run;
}
