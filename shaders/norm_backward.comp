#version 450
// layernorm_backward (LAYERNORM) and rmsnorm_backward (RMSNORM).
//
// Workgroup g handles the rows [g * rows_per_block, ..) in chunks of CH
// rows:
//  A. per row: the workgroup-wide sums of g = dout * w and g * xhat
//     (two rows per shared-memory tree, any subgroup size), kept with the
//     row's mean and rstd in shared memory;
//  B. per column (each invocation owns columns i = t, t + WG, ..; reads are
//     coalesced across the workgroup): dx += rstd * (g - mean(g) - xhat *
//     mean(g * xhat)) for the chunk's rows, and the column's dweight/dbias
//     contributions summed over the chunk's rows in row order.
// The weight/bias sums go straight into dw/db (one workgroup: dw[i] += ..)
// or, with VKF_NORM_PARTIAL, into this workgroup's own row of a partial
// array that norm_backward_reduce then sums over workgroups in a fixed
// order. No atomics: results are reproducible bit for bit.
//
// rmsnorm is layernorm with mean = 0 and without the mean(g) term.
// VEC4: vec4 loads (row length a multiple of 4, vector operands 16-byte
// aligned).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64; // power of two
layout(constant_id = 1) const uint CH = 16; // rows per chunk, even

#ifdef VEC4
layout(buffer_reference, std430, buffer_reference_align = 16) buffer V { vec4 v[]; };
#define T vec4
#else
#define V F32
#define T float
#endif

layout(push_constant) uniform PC {
  F32 dx;
  F32 dw;
#ifdef LAYERNORM
  F32 db;
#endif
  F32 dout;
  F32 x;
  F32 w;
#ifdef LAYERNORM
  F32 mean;
#endif
  F32 rstd;
  vkf_norm_backward_kparams p;
} pc;

shared vec4 red[WG];
// Per row of the chunk: (mean, rstd, mean_c(g), mean_c(g * xhat)).
shared vec4 rowc[CH];

float hsum(T v) {
  return dot(v, T(1.0));
}

// Workgroup-wide sum of a vec4 (barriers inside: call from uniform control
// flow).
vec4 wg_sum4(vec4 v) {
  uint t = gl_LocalInvocationID.x;
  red[t] = v;
  barrier();
  for (uint s = WG / 2u; s > 0u; s >>= 1u) {
    if (t < s)
      red[t] += red[t + s];
    barrier();
  }
  vec4 r = red[0];
  barrier();
  return r;
}

float row_mean(uint r) {
#ifdef LAYERNORM
  return pc.mean.v[r];
#else
  return 0.0;
#endif
}

void main() {
  const uint blk = vkf_linear_group();
  const uint rows = pc.p.rows;
  const uint r_begin = blk * pc.p.rows_per_block;
  if (blk >= (rows + pc.p.rows_per_block - 1u) / pc.p.rows_per_block)
    return; // the whole workgroup leaves together
  const uint r_end = r_begin + min(pc.p.rows_per_block, rows - r_begin);
  const uint t = gl_LocalInvocationID.x;
  const uint n = pc.p.n;
  const uint flags = pc.p.flags;
  const bool has_dx = (flags & VKF_NORM_DX) != 0u;
  const bool has_dw = (flags & VKF_NORM_DW) != 0u;
  const bool has_db = (flags & VKF_NORM_DB) != 0u;
  const bool partial = (flags & VKF_NORM_PARTIAL) != 0u;
  const float inv_c = 1.0 / float(pc.p.cols);
  V dout = V(pc.dout);
  V x = V(pc.x);
  V w = V(pc.w);
  V dx = V(pc.dx);
  V dw = V(pc.dw);
#ifdef LAYERNORM
  V db = V(pc.db);
#endif

  for (uint c0 = r_begin; c0 < r_end; c0 += CH) {
    const uint nr = min(CH, r_end - c0);
    // ---- A: per-row coefficients
    if (has_dx) {
      for (uint k = 0u; k < nr; k += 2u) {
        vec4 s = vec4(0.0);
        vec2 ms[2];
        for (uint j = 0u; j < 2u; j++) {
          ms[j] = vec2(0.0, 1.0);
          if (k + j >= nr)
            continue;
          const uint r = c0 + k + j;
          const float mu = row_mean(r), rs = pc.rstd.v[r];
          ms[j] = vec2(mu, rs);
          T sg = T(0.0), sgx = T(0.0);
          for (uint i = t; i < n; i += WG) {
            T g = dout.v[r * n + i] * w.v[i];
            sg += g;
            sgx += g * ((x.v[r * n + i] - mu) * rs);
          }
          s[2u * j] = hsum(sg);
          s[2u * j + 1u] = hsum(sgx);
        }
        s = wg_sum4(s);
        if (t == 0u) {
#ifdef LAYERNORM
          rowc[k] = vec4(ms[0], s.x * inv_c, s.y * inv_c);
          if (k + 1u < nr)
            rowc[k + 1u] = vec4(ms[1], s.z * inv_c, s.w * inv_c);
#else
          rowc[k] = vec4(ms[0], 0.0, s.y * inv_c);
          if (k + 1u < nr)
            rowc[k + 1u] = vec4(ms[1], 0.0, s.w * inv_c);
#endif
        }
      }
    } else {
      for (uint k = t; k < nr; k += WG)
        rowc[k] = vec4(row_mean(c0 + k), pc.rstd.v[c0 + k], 0.0, 0.0);
    }
    barrier();

    // ---- B: dx, and the chunk's weight/bias sums per column
    for (uint i = t; i < n; i += WG) {
      const T wv = w.v[i];
      T aw = T(0.0), ab = T(0.0);
      for (uint k = 0u; k < nr; k++) {
        const vec4 rc = rowc[k];
        const uint idx = (c0 + k) * n + i;
        const T go = dout.v[idx];
        const T xh = (x.v[idx] - rc.x) * rc.y;
        if (has_dx)
          dx.v[idx] += rc.y * (go * wv - rc.z - xh * rc.w);
        aw += go * xh;
        ab += go;
      }
      // Each (block, column) slot belongs to one invocation: no races.
      const uint pi = partial ? blk * n + i : i;
      const bool first = partial && c0 == r_begin;
      if (has_dw)
        dw.v[pi] = first ? aw : dw.v[pi] + aw;
#ifdef LAYERNORM
      if (has_db)
        db.v[pi] = first ? ab : db.v[pi] + ab;
#endif
    }
    barrier(); // rowc is rewritten by the next chunk
  }
}
