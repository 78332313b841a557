#version 450
// row_sum (row_mean through p.mul): one workgroup per row.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
#include "reduce.glsl"

layout(push_constant) uniform PC {
  F32 out_;
  F32 a;
  vkf_rowreduce_params p;
} pc;

void main() {
  uint row = vkf_linear_group();
  if (row >= pc.p.rows)
    return; // whole workgroup leaves together
  uint base = row * pc.p.cols;
  float acc = 0.0;
  for (uint c = gl_LocalInvocationID.x; c < pc.p.cols; c += WG)
    acc += pc.a.v[base + c];
  float s = vkf_wg_sum(acc);
  if (gl_LocalInvocationID.x == 0)
    pc.out_.v[row] = s * pc.p.mul;
}
