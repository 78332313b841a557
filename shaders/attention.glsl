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

// Per batch b: x = the keys [0, x) any row may see, y = the position of
// query 0 (at the end of the batch's kv_lens with VKF_ATTN_Q_AT_KV_END).
ivec2 attn_batch(vkf_attention_params p, int kv_len) {
  int n = int(p.Tk);
  if ((p.flags & VKF_ATTN_KV_LENS) != 0)
    n = clamp(kv_len, 0, n);
  int q0 = (p.flags & VKF_ATTN_Q_AT_KV_END) != 0 ? n - int(p.Tq) : p.q_pos0;
  if ((p.flags & VKF_ATTN_MASK) != 0)
    n = min(n, int(p.mask_cols));
  return ivec2(n, q0);
}

// Keys [x, y) that rows i0..i1 (inclusive) of a batch (attn_batch) may see:
// exact for one row, the union for several (the visible range only moves
// right as i grows).
ivec2 attn_keys_of_rows(vkf_attention_params p, ivec2 bt, int i0, int i1) {
  int lo = 0, hi = bt.x;
  if ((p.flags & VKF_ATTN_CAUSAL) != 0 || p.window != 0)
    hi = min(hi, bt.y + i1 + 1);
  if (p.window != 0)
    lo = max(0, bt.y + i0 - int(p.window) + 1);
  return hi <= lo ? ivec2(0) : ivec2(lo, hi);
}

// Rows [x, y) of a batch that may see any of the keys j0..j1 (inclusive).
ivec2 attn_rows_of_keys(vkf_attention_params p, ivec2 bt, int j0, int j1) {
  int lo = 0, hi = j0 >= bt.x ? 0 : int(p.Tq);
  if ((p.flags & VKF_ATTN_CAUSAL) != 0 || p.window != 0)
    lo = max(0, j0 - bt.y);
  if (p.window != 0)
    hi = min(hi, j1 + int(p.window) - bt.y);
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
