// Shared by the linear attention kernels (attention_linear_*.comp): the
// feature map and the addressing of q, k, v', g (layouts in vkf_params.h).
// Mirrors backend/cpu/attention_linear.c. Indices fit uint: the frontend
// limits every tensor (saved, workspace, state included) to 2^32-1 elements.

// phi(x) = elu(x) + 1 and its derivative.
float lattn_phi(float x) {
  return x > 0.0 ? x + 1.0 : exp(x);
}
float lattn_dphi(float x) {
  return x > 0.0 ? 1.0 : exp(x);
}

// What a kernel reads from a tensor, per (batch, token, head, feature f):
const uint LD_Q_PHI = 0;  // phi(q)      q [B, T, Hq, D]
const uint LD_K_PHI = 1;  // phi(k)      k [B, T, Hkv, D]
const uint LD_V_ONES = 2; // v' = (v, 1) v [B, T, Hkv, Dv], f <= Dv
const uint LD_G = 3;      // g           g [B, T, Hq, Dv + 1]

// Feature count of each kind.
uint lattn_width(vkf_linear_attention_params p, uint kind) {
  return kind == LD_Q_PHI || kind == LD_K_PHI ? p.D : p.Dv + 1;
}

// The value, 0 outside [0, width) (callers check the token).
float lattn_load(F32 buf, vkf_linear_attention_params p, uint kind, uint b, uint t, uint head,
                 uint f) {
  if (kind == LD_Q_PHI)
    return f < p.D ? lattn_phi(buf.v[((b * p.T + t) * p.Hq + head) * p.D + f]) : 0.0;
  if (kind == LD_K_PHI)
    return f < p.D ? lattn_phi(buf.v[((b * p.T + t) * p.Hkv + head) * p.D + f]) : 0.0;
  if (kind == LD_V_ONES)
    return f < p.Dv ? buf.v[((b * p.T + t) * p.Hkv + head) * p.Dv + f] : (f == p.Dv ? 1.0 : 0.0);
  return f <= p.Dv ? buf.v[((b * p.T + t) * p.Hq + head) * (p.Dv + 1) + f] : 0.0;
}
