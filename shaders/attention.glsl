// Shared by the attention kernels (attention_*.comp): tensor addressing in
// both layouts and the visible key ranges. Mirrors backend/cpu/attention.c.
// Positions fit int32: the frontend limits Tq, Tk, |q_offset| to 2^28 and the
// window to 2^29.
layout(buffer_reference, std430, buffer_reference_align = 4) buffer I32 { int v[]; };

// Offset of row t of head h in batch b of a tensor of T rows, H heads and E
// elements per head: [B, T, H, E], or [B, H, T, E] when bhtd.
uint attn_row(bool bhtd, uint b, uint t, uint h, uint T, uint H, uint E) {
  return bhtd ? ((b * H + h) * T + t) * E : ((b * T + t) * H + h) * E;
}
// Distance between consecutive rows t of one head.
uint attn_row_stride(bool bhtd, uint H, uint E) {
  return bhtd ? E : H * E;
}

// Keys [0, limit) of a batch that any row may see.
int attn_key_limit(vkf_attention_params p, int kv_len) {
  int lim = int(p.Tk);
  if ((p.flags & VKF_ATTN_KV_LENS) != 0)
    lim = min(lim, max(kv_len, 0));
  if ((p.flags & VKF_ATTN_MASK) != 0)
    lim = min(lim, int(p.mask_cols));
  return lim;
}

// Keys [x, y) that rows i0..i1 (inclusive) may see: exact for one row, the
// union for several (the visible range only moves right as i grows).
ivec2 attn_keys_of_rows(vkf_attention_params p, int i0, int i1, int limit) {
  int lo = 0, hi = limit;
  if ((p.flags & VKF_ATTN_CAUSAL) != 0 || p.window != 0)
    hi = min(hi, p.q_pos0 + i1 + 1);
  if (p.window != 0)
    lo = max(0, p.q_pos0 + i0 - int(p.window) + 1);
  return hi <= lo ? ivec2(0) : ivec2(lo, hi);
}

// Rows [x, y) that may see any of the keys j0..j1 (inclusive).
ivec2 attn_rows_of_keys(vkf_attention_params p, int j0, int j1, int limit) {
  int lo = 0, hi = j0 >= limit ? 0 : int(p.Tq);
  if ((p.flags & VKF_ATTN_CAUSAL) != 0 || p.window != 0)
    lo = max(0, j0 - p.q_pos0);
  if (p.window != 0)
    hi = min(hi, j1 + int(p.window) - p.q_pos0);
  return hi <= lo ? ivec2(0) : ivec2(lo, hi);
}

// tanh to about 3e-7 relative, finite for any x (the builtin may be a fast
// approximation, or NaN for large |x| on some drivers).
float attn_tanh(float x) {
  float a = abs(x), t;
  if (a < 0.125) { // series; the next term is below 1e-9 relative
    float a2 = a * a;
    t = a * (1.0 + a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 + a2 * (-17.0 / 315.0))));
  } else {
    float e = exp(-2.0 * a); // 0 for large a: t = 1
    t = (1.0 - e) / (1.0 + e);
  }
  return x < 0.0 ? -t : t;
}
