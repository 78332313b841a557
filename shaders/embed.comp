#version 450
// The embed family, one kernel per define:
//   EMBEDDING               out[n, c] = wte[tok[n], c] (+ wpe[pos_offset + n % T, c]),
//                           one workgroup per token n
//   EMBEDDING_BACKWARD      dwte rows, one workgroup per (token segment, column group)
//   EMBEDDING_BACKWARD_POS  dwpe rows, one invocation per (t, c), summing over b in order
//   BIAS_BACKWARD           stage 1 of dbias: partial column sums of row chunks
//   BIAS_BACKWARD_FINAL     stage 2: dbias[c] += partial sums over chunks, in order
// The embedding kernels use the float operations, in the order, that
// backend/cpu/embed.c uses, so the backends agree bit for bit. `precise`
// keeps the compiler from reassociating or contracting them.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

#if defined(EMBEDDING)
layout(push_constant) uniform PC {
  F32 out_;
  U32 tok;
  F32 wte;
  F32 wpe;
  vkf_embedding_params p;
} pc;

// One workgroup per token: its id and position are read once, and the row
// is copied with consecutive invocations on consecutive columns.
void main() {
  uint n = vkf_linear_group();
  if (n >= pc.p.N)
    return;
  uint C = pc.p.C, id = pc.tok.v[n];
  uint o = n * C;
  if (id >= pc.p.V) { // unreachable after the host's check; never read out of bounds
    for (uint c = gl_LocalInvocationID.x; c < C; c += WG)
      pc.out_.v[o + c] = 0.0;
    return;
  }
  uint e = id * C;
  if (pc.p.has_wpe != 0) {
    uint q = (pc.p.pos_offset + n % pc.p.T) * C;
    for (uint c = gl_LocalInvocationID.x; c < C; c += WG) {
      precise float v = pc.wte.v[e + c] + pc.wpe.v[q + c];
      pc.out_.v[o + c] = v;
    }
  } else {
    for (uint c = gl_LocalInvocationID.x; c < C; c += WG)
      pc.out_.v[o + c] = pc.wte.v[e + c];
  }
}

#elif defined(EMBEDDING_BACKWARD) || defined(EMBEDDING_BACKWARD_POS)
layout(push_constant) uniform PC {
  F32 dwte;
  F32 dwpe;
  F32 dout;
  U32 idx;
  vkf_embedding_backward_params p;
} pc;

#if defined(EMBEDDING_BACKWARD)
// Workgroup g handles segment g / col_groups and WG columns of group
// g % col_groups: one column per invocation, the segment's rows in order with
// eight accumulators (k % 8), then the fixed combination tree. The eight
// independent chains also keep eight loads in flight.
void main() {
  uint g = vkf_linear_group();
  uint seg = g / pc.p.col_groups;
  if (seg >= pc.p.U)
    return;
  uint c = (g - seg * pc.p.col_groups) * WG + gl_LocalInvocationID.x;
  uint C = pc.p.C;
  if (c >= C)
    return;
  uint U = pc.p.U;
  uint a = pc.idx.v[seg], b = pc.idx.v[seg + 1];
  if (a == b)
    return; // an empty (padding) segment: a fixed-capacity index
  uint v = pc.idx.v[U + 1 + pc.p.N + seg];
  uint ord = U + 1;
  precise float a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0, a5 = 0.0, a6 = 0.0, a7 = 0.0;
  uint k = a;
  for (; k + 8 <= b; k += 8) {
    a0 = a0 + pc.dout.v[pc.idx.v[ord + k] * C + c];
    a1 = a1 + pc.dout.v[pc.idx.v[ord + k + 1] * C + c];
    a2 = a2 + pc.dout.v[pc.idx.v[ord + k + 2] * C + c];
    a3 = a3 + pc.dout.v[pc.idx.v[ord + k + 3] * C + c];
    a4 = a4 + pc.dout.v[pc.idx.v[ord + k + 4] * C + c];
    a5 = a5 + pc.dout.v[pc.idx.v[ord + k + 5] * C + c];
    a6 = a6 + pc.dout.v[pc.idx.v[ord + k + 6] * C + c];
    a7 = a7 + pc.dout.v[pc.idx.v[ord + k + 7] * C + c];
  }
  // the tail continues the same k % 8 assignment (k - a is a multiple of 8 here)
  if (k < b) a0 = a0 + pc.dout.v[pc.idx.v[ord + k] * C + c];
  if (k + 1 < b) a1 = a1 + pc.dout.v[pc.idx.v[ord + k + 1] * C + c];
  if (k + 2 < b) a2 = a2 + pc.dout.v[pc.idx.v[ord + k + 2] * C + c];
  if (k + 3 < b) a3 = a3 + pc.dout.v[pc.idx.v[ord + k + 3] * C + c];
  if (k + 4 < b) a4 = a4 + pc.dout.v[pc.idx.v[ord + k + 4] * C + c];
  if (k + 5 < b) a5 = a5 + pc.dout.v[pc.idx.v[ord + k + 5] * C + c];
  if (k + 6 < b) a6 = a6 + pc.dout.v[pc.idx.v[ord + k + 6] * C + c];
  precise float total = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
  precise float d = pc.dwte.v[v * C + c] + total;
  pc.dwte.v[v * C + c] = d;
}

#else // EMBEDDING_BACKWARD_POS
void main() {
  uint i = vkf_linear_index();
  uint C = pc.p.C, T = pc.p.T;
  if (i >= T * C)
    return;
  uint t = i / C, c = i - t * C;
  uint B = pc.p.N / T;
  precise float acc = 0.0;
  for (uint b = 0; b < B; b++)
    acc = acc + pc.dout.v[(b * T + t) * C + c];
  uint o = (pc.p.pos_offset + t) * C + c;
  precise float d = pc.dwpe.v[o] + acc;
  pc.dwpe.v[o] = d;
}
#endif

#elif defined(BIAS_BACKWARD)
// Workgroup = CX columns x (WG / CX) row lanes; group g sums rows
// [k * chunk_rows, (k + 1) * chunk_rows) of column block g % col_blocks
// (k = g / col_blocks) and writes partial[k, col].
layout(constant_id = 1) const uint CX = 32;
const uint RY = WG / CX;
shared float red[WG];

layout(push_constant) uniform PC {
  F32 dbias;
  F32 dout;
  F32 partial;
  vkf_bias_backward_params p;
} pc;

void main() {
  uint N = pc.p.N;
  uint col_blocks = (N + CX - 1) / CX;
  uint g = vkf_linear_group();
  uint k = g / col_blocks;
  if (k >= pc.p.chunks)
    return; // the whole workgroup leaves together
  uint tx = gl_LocalInvocationID.x % CX, ty = gl_LocalInvocationID.x / CX;
  uint col = (g - k * col_blocks) * CX + tx;
  uint r0 = k * pc.p.chunk_rows, r1 = min(r0 + pc.p.chunk_rows, pc.p.rows);
  float s0 = 0.0, s1 = 0.0;
  if (col < N) {
    uint r = r0 + ty;
    for (; r + RY < r1; r += 2 * RY) { // two chains: two loads in flight
      s0 += pc.dout.v[r * N + col];
      s1 += pc.dout.v[(r + RY) * N + col];
    }
    if (r < r1)
      s0 += pc.dout.v[r * N + col];
  }
  red[gl_LocalInvocationID.x] = s0 + s1;
  barrier();
  for (uint s = RY / 2; s > 0; s >>= 1) {
    if (ty < s)
      red[gl_LocalInvocationID.x] += red[gl_LocalInvocationID.x + s * CX];
    barrier();
  }
  if (ty == 0 && col < N)
    pc.partial.v[k * N + col] = red[tx];
}

#elif defined(BIAS_BACKWARD_FINAL)
layout(push_constant) uniform PC {
  F32 dbias;
  F32 dout;
  F32 partial;
  vkf_bias_backward_params p;
} pc;

void main() {
  uint c = vkf_linear_index();
  uint N = pc.p.N;
  if (c >= N)
    return;
  float acc = 0.0;
  for (uint k = 0; k < pc.p.chunks; k++)
    acc += pc.partial.v[k * N + c];
  pc.dbias.v[c] += acc;
}
#endif
