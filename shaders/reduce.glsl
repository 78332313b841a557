// Workgroup-wide sum and max through shared memory. Works for any subgroup
// size; WG (the workgroup size, a specialization constant) must be a power
// of two. Every invocation must call these (they contain barriers).
shared float vkf_red[WG];

float vkf_wg_sum(float x) {
  uint t = gl_LocalInvocationID.x;
  vkf_red[t] = x;
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s)
      vkf_red[t] += vkf_red[t + s];
    barrier();
  }
  float r = vkf_red[0];
  barrier();
  return r;
}

float vkf_wg_max(float x) {
  uint t = gl_LocalInvocationID.x;
  vkf_red[t] = x;
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s)
      vkf_red[t] = max(vkf_red[t], vkf_red[t + s]);
    barrier();
  }
  float r = vkf_red[0];
  barrier();
  return r;
}
