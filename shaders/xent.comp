#version 450
// Softmax cross-entropy, one kernel per define:
//   XENT_FORWARD   one workgroup per row: online max / sum of exponentials in
//                  one read of the row, losses[row], and log_prob when asked
//   XENT_REDUCE    one workgroup: loss = sum(losses) (/ sum of weights)
//   XENT_SCALE     one workgroup: scale = dloss / sum of weights (MEAN)
//   XENT_BACKWARD  one workgroup per row: max / sum pass, then
//                  dlogits += g * w * (softmax - onehot) in a second pass;
//                  the probabilities are never stored
// All reductions go through shared memory in a fixed tree (any subgroup
// size; deterministic).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

const float NEG_INF = -1.0 / 0.0;

shared float red_a[WG];
shared float red_b[WG];

#if defined(XENT_FORWARD) || defined(XENT_REDUCE)
layout(push_constant) uniform PC {
  F32 losses;
  F32 loss;
  F32 log_prob;
  F32 logits;
  U32 targets;
  F32 weights;
  vkf_cross_entropy_params p;
} pc;
#else
layout(push_constant) uniform PC {
  F32 dlogits;
  F32 dloss;
  F32 logits;
  U32 targets;
  F32 weights;
  F32 scale; // the Vulkan backend's scratch: g for MEAN
  vkf_cross_entropy_params p;
} pc;
#endif

// Weight of a row's target: 0 when ignored (NaN for an invalid target, which
// the host has already refused).
float target_weight(int t) {
  if (t == pc.p.ignore_index)
    return 0.0;
  if (t < 0 || uint(t) >= pc.p.V)
    return 0.0 / 0.0;
  return (pc.p.flags & VKF_XENTF_WEIGHTS) != 0 ? pc.weights.v[t] : 1.0;
}

#if defined(XENT_FORWARD) || defined(XENT_BACKWARD)
// Row max and sum of exp(x - max) over the workgroup (combined pairwise).
void row_max_sum(uint base, uint stride, out float m_out, out float s_out) {
  uint lid = gl_LocalInvocationID.x, V = pc.p.V;
  float m = NEG_INF, s = 0.0;
  for (uint c = lid; c < V; c += WG) {
    float x = pc.logits.v[base + c * stride];
    if (x > m) {
      s = s * exp(m - x) + 1.0;
      m = x;
    } else if (x != NEG_INF) {
      s += exp(x - m);
    }
  }
  red_a[lid] = m;
  red_b[lid] = s;
  barrier();
  for (uint st = WG / 2; st > 0; st >>= 1) {
    if (lid < st) {
      float m1 = red_a[lid], m2 = red_a[lid + st];
      float mm = max(m1, m2);
      float s1 = red_b[lid], s2 = red_b[lid + st];
      red_b[lid] = mm == NEG_INF ? 0.0 : s1 * exp(m1 - mm) + s2 * exp(m2 - mm);
      red_a[lid] = mm;
    }
    barrier();
  }
  m_out = red_a[0];
  s_out = red_b[0];
}
#endif

#if defined(XENT_FORWARD)
void main() {
  uint row = vkf_linear_group();
  if (row >= pc.p.rows)
    return; // the whole workgroup leaves together
  uint inner = pc.p.inner, o = row / inner;
  uint base = o * pc.p.V * inner + (row - o * inner);
  int t = int(pc.targets.v[row]);
  bool lp = (pc.p.flags & VKF_XENTF_LOG_PROB) != 0;
  bool ignored = t == pc.p.ignore_index;
  if (ignored && !lp) { // uniform over the workgroup
    if (gl_LocalInvocationID.x == 0)
      pc.losses.v[row] = 0.0;
    return;
  }
  float m, s;
  row_max_sum(base, inner, m, s);
  float lse = m + log(s);
  if (gl_LocalInvocationID.x == 0) {
    float w = target_weight(t);
    float l = 0.0;
    if (!ignored)
      l = isnan(w) ? w : w * (lse - pc.logits.v[base + uint(t) * inner]);
    pc.losses.v[row] = l;
  }
  if (lp)
    for (uint c = gl_LocalInvocationID.x; c < pc.p.V; c += WG)
      pc.log_prob.v[base + c * inner] = pc.logits.v[base + c * inner] - lse;
}

#elif defined(XENT_REDUCE) || defined(XENT_SCALE)
void main() {
  uint lid = gl_LocalInvocationID.x;
  float sum = 0.0, den = 0.0;
  for (uint r = lid; r < pc.p.rows; r += WG) {
    den += target_weight(int(pc.targets.v[r]));
#if defined(XENT_REDUCE)
    sum += pc.losses.v[r];
#endif
  }
  red_a[lid] = sum;
  red_b[lid] = den;
  barrier();
  for (uint st = WG / 2; st > 0; st >>= 1) {
    if (lid < st) {
      red_a[lid] += red_a[lid + st];
      red_b[lid] += red_b[lid + st];
    }
    barrier();
  }
  if (lid == 0) {
#if defined(XENT_REDUCE)
    pc.loss.v[0] = pc.p.reduction == VKF_XENT_MEAN ? red_a[0] / red_b[0] : red_a[0];
#else
    pc.scale.v[0] = pc.dloss.v[0] / red_b[0];
#endif
  }
}

#elif defined(XENT_BACKWARD)
void main() {
  uint row = vkf_linear_group();
  if (row >= pc.p.rows)
    return;
  int t = int(pc.targets.v[row]);
  if (t == pc.p.ignore_index || t < 0 || uint(t) >= pc.p.V)
    return; // nothing to add (an invalid target was refused on the host)
  uint inner = pc.p.inner, o = row / inner;
  uint base = o * pc.p.V * inner + (row - o * inner);
  float g = pc.p.reduction == VKF_XENT_MEAN  ? pc.scale.v[0]
            : pc.p.reduction == VKF_XENT_SUM ? pc.dloss.v[0]
                                             : pc.dloss.v[row];
  g *= target_weight(t);
  float m, s;
  row_max_sum(base, inner, m, s);
  float inv = 1.0 / s;
  for (uint c = gl_LocalInvocationID.x; c < pc.p.V; c += WG) {
    uint e = base + c * inner;
    float p = exp(pc.logits.v[e] - m) * inv;
    pc.dlogits.v[e] += g * (c == uint(t) ? p - 1.0 : p);
  }
}
#endif
