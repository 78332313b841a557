// Shared by the optimiser kernels (optim_*.comp). Each workgroup of WG
// invocations owns a chunk of CHUNK = 4 * WG consecutive elements; each
// invocation four of them: with VEC4 (every operand 16-byte aligned) the
// aligned vec4 at offset 4 * t in the chunk, otherwise the scalars at t,
// t + WG, t + 2 WG, t + 3 WG (coalesced either way). A chunk's offsets are
// compared with the elements remaining (rem), so no index overflows even for
// tensors of nearly 2^32 elements.
layout(buffer_reference, std430, buffer_reference_align = 16) buffer F32x4 { vec4 v[]; };

const uint CHUNK = 4 * WG;

// Offset in the chunk of this invocation's k-th element.
uint vkf_optim_offset(uint t, uint k) {
  return VEC4 ? 4 * t + k : t + k * WG;
}

// Gradient multiplier grad_scale * min(1, max_norm / (grad_scale * norm + eps)),
// written as backend/cpu/optim.c does (a NaN ratio gives 1).
float vkf_clip_factor(float norm, float max_norm, float grad_scale) {
  float c = max_norm / (grad_scale * norm + float(VKF_CLIP_EPS));
  return grad_scale * (c < 1.0 ? c : 1.0);
}

// Loads this invocation's four elements of x (zeros past the end).
vec4 vkf_optim_load(F32 x, uint base, uint rem, uint t) {
  if (VEC4 && 4 * t + 4 <= rem)
    return F32x4(x).v[base / 4 + t];
  vec4 r = vec4(0.0);
  for (uint k = 0; k < 4; k++) {
    uint o = vkf_optim_offset(t, k);
    if (o < rem)
      r[k] = x.v[base + o];
  }
  return r;
}

void vkf_optim_store(F32 x, uint base, uint rem, uint t, vec4 val) {
  if (VEC4 && 4 * t + 4 <= rem) {
    F32x4(x).v[base / 4 + t] = val;
    return;
  }
  for (uint k = 0; k < 4; k++) {
    uint o = vkf_optim_offset(t, k);
    if (o < rem)
      x.v[base + o] = val[k];
  }
}
