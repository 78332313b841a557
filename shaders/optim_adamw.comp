#version 450
// adamw: one AdamW step over a flat parameter buffer (vkf_adamw_params in
// vkf_params.h has the formula). Memory-bound: 16 bytes read and 12 written
// per element, vec4 loads and stores when the operands are 16-byte aligned.
//
// Weight decay per element comes from the segment table (i32 [S, 2] rows of
// start, flags): each workgroup finds the segment of its first element by
// binary search (every invocation searches the same few cached words) and
// checks that the next segment starts after its last element; then, as for
// all but about S workgroups, the flag is uniform. Otherwise it finds the
// segment of its last element, and each element searches between the two.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;
layout(constant_id = 1) const bool VEC4 = true;
#include "optim.glsl"

layout(push_constant) uniform PC {
  F32 param;
  F32 grad;
  F32 m;
  F32 v;
  U32 seg;
  F32 norm;
  F32 hyper;
  vkf_adamw_params p;
} pc;

// Largest segment s in [lo, hi] whose start is <= i (lo when none).
uint seg_find(uint i, uint lo, uint hi) {
  while (lo < hi) {
    uint mid = lo + (hi - lo + 1) / 2;
    if (pc.seg.v[2 * mid] <= i)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

float seg_decay(uint s) {
  return (pc.seg.v[2 * s + 1] & VKF_OPTIM_SEG_DECAY) != 0 ? 1.0 : 0.0;
}

void main() {
  const uint n = pc.p.n, t = gl_LocalInvocationID.x, group = vkf_linear_group();
  if (group > (n - 1) / CHUNK)
    return; // the whole workgroup: grid padding
  const uint base = group * CHUNK, rem = n - base;

  // Issue the loads first; the segment search overlaps their latency.
  vec4 x = vkf_optim_load(pc.param, base, rem, t);
  vec4 g = vkf_optim_load(pc.grad, base, rem, t);
  vec4 m = vkf_optim_load(pc.m, base, rem, t);
  vec4 v = vkf_optim_load(pc.v, base, rem, t);

  float s = pc.p.grad_scale;
  if ((pc.p.flags & VKF_ADAMW_P_CLIP) != 0)
    s = vkf_clip_factor(pc.norm.v[0], pc.p.max_norm, pc.p.grad_scale);

  vec4 d = vec4(1.0);
  if ((pc.p.flags & VKF_ADAMW_P_SEGMENTS) != 0) {
    const uint last_seg = pc.p.n_segments - 1, last = base + min(rem, CHUNK) - 1;
    uint lo = seg_find(base, 0, last_seg);
    // One more word usually settles it: the next segment starts after the
    // chunk, so the whole chunk is in segment lo.
    uint hi = lo == last_seg || pc.seg.v[2 * lo + 2] > last ? lo : seg_find(last, lo, last_seg);
    if (lo == hi) {
      d = vec4(seg_decay(lo));
    } else {
      for (uint k = 0; k < 4; k++) {
        uint o = vkf_optim_offset(t, k);
        if (o < rem)
          d[k] = seg_decay(seg_find(base + o, lo, hi));
      }
    }
  }

  float lr = pc.p.lr, lr_wd = pc.p.lr_wd, inv_bc1 = pc.p.inv_bc1, inv_bc2 = pc.p.inv_bc2;
  if ((pc.p.flags & VKF_ADAMW_P_HYPER) != 0) {
    lr = pc.hyper.v[0];
    lr_wd = pc.hyper.v[1];
    inv_bc1 = pc.hyper.v[2];
    inv_bc2 = pc.hyper.v[3];
  }
  // The same operations, in the same order, as backend/cpu/optim.c.
  g = g * s + (d * pc.p.l2) * x;
  m = pc.p.beta1 * m + pc.p.omb1 * g;
  v = pc.p.beta2 * v + pc.p.omb2 * (g * g);
  vec4 upd = (m * inv_bc1) / (sqrt(v * inv_bc2) + pc.p.eps);
  x = x - lr * upd - (d * lr_wd) * x;

  vkf_optim_store(pc.param, base, rem, t, x);
  vkf_optim_store(pc.m, base, rem, t, m);
  vkf_optim_store(pc.v, base, rem, t, v);
}
