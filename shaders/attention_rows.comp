#version 450
// Attention row kernels, one workgroup per row (b, h, i) of [B, Hq, Tq, Tk]:
//   OP_SOFTMAX (attention_softmax): dst = softmax of src over the row's visible
//     keys, 0 elsewhere; a row with no finite logit gives 0. src may be dst.
//   OP_DS (attention_ds): in place, dst holds dP on entry and
//     dS = P * (dP - sum_j P * dP) * g on exit (g = scale, or the softcap
//     factor from the g plane), 0 outside the visible keys.
// Only the visible keys are read: other entries of src/dP may be undefined.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "attention.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
#include "reduce.glsl"

#if defined(OP_SOFTMAX)
layout(push_constant) uniform PC {
  F32 dst; // P
  F32 src; // logits (or P itself)
  I32 kvl;
  vkf_attention_params p;
} pc;
#elif defined(OP_DS)
layout(push_constant) uniform PC {
  F32 dst; // dP in, dS out
  F32 g;   // softcap factor plane (with VKF_ATTN_SOFTCAP)
  F32 P;
  I32 kvl;
  vkf_attention_params p;
} pc;
#else
#error "define OP_SOFTMAX or OP_DS"
#endif

void main() {
  const uint row = vkf_linear_group();
  const uint Tq = pc.p.Tq, Tk = pc.p.Tk;
  if (row >= pc.p.B * pc.p.Hq * Tq)
    return; // the whole workgroup leaves together
  const uint i = row % Tq, b = row / Tq / pc.p.Hq, t = gl_LocalInvocationID.x;
  const uint base = row * Tk;
  const int kv_len = (pc.p.flags & VKF_ATTN_KV_LENS) != 0 ? pc.kvl.v[b] : int(Tk);
  const ivec2 r = attn_keys_of_rows(pc.p, attn_batch(pc.p, kv_len), int(i), int(i));
  const uint lo = uint(r.x), hi = uint(r.y);
#if defined(OP_SOFTMAX)
  // one pass for the statistics: each invocation keeps a running maximum and
  // the sum of exponentials relative to it, then the workgroup combines them
  float m = -1.0 / 0.0, s = 0.0;
  for (uint c = lo + t; c < hi; c += WG) {
    float x = pc.src.v[base + c];
    if (x > m) {
      s = s * exp(m - x) + 1.0; // exp(-inf) = 0 for the first finite x
      m = x;
    } else if (x != -1.0 / 0.0) {
      s += exp(x - m);
    }
  }
  const float M = vkf_wg_max(m);
  const bool none = M == -1.0 / 0.0;
  s = vkf_wg_sum(none || m == -1.0 / 0.0 ? 0.0 : s * exp(m - M));
  const float inv = none ? 0.0 : 1.0 / s;
  for (uint c = t; c < Tk; c += WG) {
    float v = 0.0;
    if (!none && c >= lo && c < hi)
      v = exp(pc.src.v[base + c] - M) * inv;
    pc.dst.v[base + c] = v;
  }
#else
  float d = 0.0;
  for (uint c = lo + t; c < hi; c += WG)
    d += pc.P.v[base + c] * pc.dst.v[base + c];
  d = vkf_wg_sum(d);
  const bool softcap = (pc.p.flags & VKF_ATTN_SOFTCAP) != 0;
  for (uint c = t; c < Tk; c += WG) {
    float v = 0.0;
    if (c >= lo && c < hi) {
      float g = softcap ? pc.g.v[base + c] : pc.p.scale;
      v = pc.P.v[base + c] * (pc.dst.v[base + c] - d) * g;
    }
    pc.dst.v[base + c] = v;
  }
#endif
}
