#version 450
// add, mul (OP_ADD / OP_MUL) and scale (OP_SCALE): one element per invocation.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;

#ifdef OP_SCALE
layout(push_constant) uniform PC {
  F32 c;
  F32 a;
  vkf_scale_params p;
} pc;

void main() {
  uint i = vkf_linear_index();
  if (i < pc.p.n)
    pc.c.v[i] = pc.a.v[i] * pc.p.s;
}
#else
layout(push_constant) uniform PC {
  F32 c;
  F32 a;
  F32 b;
  vkf_binary_params p;
} pc;

void main() {
  uint i = vkf_linear_index();
  if (i >= pc.p.n)
    return;
  float b = pc.b.v[pc.p.nb == pc.p.n ? i : i % pc.p.nb];
#if defined(OP_ADD)
  pc.c.v[i] = pc.a.v[i] + b;
#elif defined(OP_MUL)
  pc.c.v[i] = pc.a.v[i] * b;
#else
#error "define OP_ADD, OP_MUL or OP_SCALE"
#endif
}
#endif
