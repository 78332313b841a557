#version 450
// Attention, flash variant (FlashAttention-2 with an online softmax; the
// Tq x Tk scores never reach memory). One source, four kernels (defines):
//   FLASH_FWD  attention_flash_forward: a workgroup owns WG * R query rows of
//              one (batch, head), R rows per invocation (q and the output
//              accumulators in registers). It walks only the keys some row of
//              it sees, BT keys at a time staged in shared memory, one key at
//              a time: scores, running max m, sum l and output rescaled per
//              key. Writes out = o / l and lse = m + log(l).
//   FLASH_PRE  attention_flash_backward_pre: one invocation per row:
//              ws = [lse | D = rowsum(dout * out) | kv_lens].
//   FLASH_DKV  attention_flash_backward_dkv: a workgroup owns WG * R keys of one
//              (batch, kv head), R per invocation (k, v, dk, dv in registers);
//              it walks the group's query heads and the query rows that see
//              any of its keys, BT rows at a time staged in shared memory:
//              P = exp(logit - lse), dS = P (dout.v - D) g; dv += P dout,
//              dk += dS q. One writer per key: no atomics.
//   FLASH_DQ   attention_flash_backward_dq: as FLASH_FWD's layout (q, dout, dq in
//              registers), keys staged: dq += dS k.
// The staged rows are read by every invocation at the same address (a
// broadcast on GPUs; on lavapipe the cheapest shared-memory access), 8 floats
// per read with PACK64 (two 32-bit floats per 64-bit word: half the reads,
// which lavapipe executes lane by lane), 4 without.
// Head sizes are rounded up to DP, DVP (multiples of 8, zero padded), so the
// loops over them have fixed trip counts and unroll; the register arrays then
// stay registers. Deterministic: every sum runs in a fixed order.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#ifdef PACK64
#extension GL_ARB_gpu_shader_int64 : require
#endif
#include "common.glsl"
#include "attention.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint R = 1;   // rows (keys for FLASH_DKV) per invocation
layout(constant_id = 2) const uint BT = 32; // staged keys (query rows for FLASH_DKV) per tile
layout(constant_id = 3) const uint DP = 64; // D rounded up to a multiple of 8
layout(constant_id = 4) const uint DVP = 64;
// The optional parts, as constants so that a kernel without them carries no
// trace of them (lavapipe executes both sides of a branch, masked).
layout(constant_id = 5) const bool MASKED = false;  // VKF_ATTN_MASK
layout(constant_id = 6) const bool SOFTCAP = false; // VKF_ATTN_SOFTCAP
const uint DP4 = DP / 4, DVP4 = DVP / 4, DP8 = DP / 8, DVP8 = DVP / 8;

#if defined(FLASH_FWD)
layout(push_constant) uniform PC {
  F32 out_;
  F32 lse;
  F32 q;
  F32 k;
  F32 v;
  F32 mask;
  I32 kvl;
  vkf_flash_params p;
} pc;
#elif defined(FLASH_PRE)
layout(push_constant) uniform PC {
  F32 ws;
  F32 dout;
  F32 out_;
  F32 lse;
  I32 kvl;
  vkf_flash_params p;
} pc;
#elif defined(FLASH_DKV)
layout(push_constant) uniform PC {
  F32 dk;
  F32 dv;
  F32 q;
  F32 k;
  F32 v;
  F32 dout;
  F32 ws;
  F32 mask;
  vkf_flash_params p;
} pc;
#elif defined(FLASH_DQ)
layout(push_constant) uniform PC {
  F32 dq;
  F32 q;
  F32 k;
  F32 v;
  F32 dout;
  F32 ws;
  F32 mask;
  vkf_flash_params p;
} pc;
#else
#error "define FLASH_FWD, FLASH_PRE, FLASH_DKV or FLASH_DQ"
#endif

vkf_attention_params unpack_params() {
  return vkf_attention_params(pc.p.B, pc.p.Tq, pc.p.Tk, pc.p.heads & 0xffffu, pc.p.heads >> 16,
                              pc.p.dims & 0xffffu, pc.p.dims >> 16, pc.p.flags, pc.p.scale,
                              pc.p.softcap, pc.p.window, pc.p.q_pos0, pc.p.mask_sb, pc.p.mask_sh,
                              pc.p.mask_si, pc.p.mask_cols, pc.p.bh0);
}

// ---- staged rows: NROWS rows of E (<= EP) floats, 8 per slot ----
#ifdef PACK64
#define SLOT u64vec4
uint64_t pack2(float a, float b) {
  return packUint2x32(uvec2(floatBitsToUint(a), floatBitsToUint(b)));
}
SLOT make_slot(vec4 a, vec4 b) {
  return u64vec4(pack2(a.x, a.y), pack2(a.z, a.w), pack2(b.x, b.y), pack2(b.z, b.w));
}
vec4 slot_lo(SLOT s) {
  return uintBitsToFloat(uvec4(unpackUint2x32(s.x), unpackUint2x32(s.y)));
}
vec4 slot_hi(SLOT s) {
  return uintBitsToFloat(uvec4(unpackUint2x32(s.z), unpackUint2x32(s.w)));
}
#else
#define SLOT mat2x4
SLOT make_slot(vec4 a, vec4 b) {
  return mat2x4(a, b);
}
vec4 slot_lo(SLOT s) {
  return s[0];
}
vec4 slot_hi(SLOT s) {
  return s[1];
}
#endif

// Eight floats of the row at `base` of a tensor from column c0: zeros at and
// beyond E and for an absent row (nothing is read for those).
SLOT load8(F32 t, uint base, bool present, uint c0, uint E) {
  float x[8];
  [[unroll]] for (uint e = 0; e < 8; e++) {
    x[e] = 0.0;
    if (present && c0 + e < E)
      x[e] = t.v[base + c0 + e];
  }
  return make_slot(vec4(x[0], x[1], x[2], x[3]), vec4(x[4], x[5], x[6], x[7]));
}

// acc + dot(a, b) + dot(c, d) as one chain of FMAs.
float dot8(vec4 a, vec4 b, vec4 c, vec4 d, float acc) {
  acc = fma(a.x, b.x, acc);
  acc = fma(a.y, b.y, acc);
  acc = fma(a.z, b.z, acc);
  acc = fma(a.w, b.w, acc);
  acc = fma(c.x, d.x, acc);
  acc = fma(c.y, d.y, acc);
  acc = fma(c.z, d.z, acc);
  return fma(c.w, d.w, acc);
}

// Visibility of key j for a row whose visible keys are [r.x, r.y).
bool in_range(ivec2 r, uint j) {
  return int(j) >= r.x && int(j) < r.y;
}

#if defined(FLASH_PRE)
// ---------------------------------------------------------------------------
void main() {
  const vkf_attention_params p = unpack_params();
  const uint row = vkf_linear_index(), n = p.B * p.Hq * p.Tq;
  if (row < p.B && (p.flags & VKF_ATTN_KV_LENS) != 0)
    pc.ws.v[2 * n + row] = intBitsToFloat(pc.kvl.v[row]);
  if (row >= n)
    return;
  const uint i = row % p.Tq, bh = row / p.Tq, b = bh / p.Hq, h = bh % p.Hq;
  const bool qb = (p.flags & VKF_ATTN_Q_BHTD) != 0;
  const uint o = attn_row(qb, b, i, h, p.Tq, p.Hq, p.Dv);
  float d = 0.0;
  for (uint c = 0; c < p.Dv; c++)
    d = fma(pc.dout.v[o + c], pc.out_.v[o + c], d);
  pc.ws.v[row] = pc.lse.v[row];
  pc.ws.v[n + row] = d;
}

#elif defined(FLASH_FWD) || defined(FLASH_DQ)
// ---------------------------------------------------------------------------
shared SLOT Ks[BT * DP8];
shared SLOT Vs[BT * DVP8];

void main() {
  const vkf_attention_params p = unpack_params();
  const uint tid = gl_LocalInvocationID.x;
  const uint bh = gl_WorkGroupID.z + p.bh0, b = bh / p.Hq, h = bh % p.Hq, hk = h / (p.Hq / p.Hkv);
  // the last rows first: with a causal mask they see the most keys, and
  // starting them first balances the devices that take workgroups in order
  const uint row0 = (gl_NumWorkGroups.x - 1 - gl_WorkGroupID.x) * WG * R;
  const uint nrows = min(WG * R, p.Tq - row0);
  const bool qb = (p.flags & VKF_ATTN_Q_BHTD) != 0, kb = (p.flags & VKF_ATTN_KV_BHTD) != 0;
  int kv_len = int(p.Tk);
#if defined(FLASH_FWD)
  if ((p.flags & VKF_ATTN_KV_LENS) != 0)
    kv_len = pc.kvl.v[b];
#else
  const uint nall = p.B * p.Hq * p.Tq;
  if ((p.flags & VKF_ATTN_KV_LENS) != 0)
    kv_len = floatBitsToInt(pc.ws.v[2 * nall + b]);
#endif
  const ivec2 bt = attn_batch(p, kv_len);
  const ivec2 keys = attn_keys_of_rows(p, bt, int(row0), int(row0 + nrows - 1));

  // this invocation's rows: i = row0 + tid + WG * r
  vec4 q4[R][DP4];
  ivec2 vis[R];
  bool valid[R];
#if defined(FLASH_FWD)
  vec4 o4[R][DVP4];
  float m[R], l[R];
#else
  vec4 do4[R][DVP4], dq4[R][DP4];
  float lse[R], rowdot[R];
#endif
  [[unroll]] for (uint r = 0; r < R; r++) {
    const uint i = row0 + tid + WG * r;
    valid[r] = i < p.Tq;
    vis[r] = valid[r] ? attn_keys_of_rows(p, bt, int(i), int(i)) : ivec2(0);
    const uint qo = attn_row(qb, b, valid[r] ? i : 0, h, p.Tq, p.Hq, p.D);
    [[unroll]] for (uint c = 0; c < DP8; c++) {
      SLOT s = load8(pc.q, qo, valid[r], 8 * c, p.D);
      q4[r][2 * c] = slot_lo(s);
      q4[r][2 * c + 1] = slot_hi(s);
    }
#if defined(FLASH_FWD)
    [[unroll]] for (uint c = 0; c < DVP4; c++)
      o4[r][c] = vec4(0.0);
    m[r] = -1.0 / 0.0;
    l[r] = 0.0;
#else
    const uint oo = attn_row(qb, b, valid[r] ? i : 0, h, p.Tq, p.Hq, p.Dv);
    [[unroll]] for (uint c = 0; c < DVP8; c++) {
      SLOT s = load8(pc.dout, oo, valid[r], 8 * c, p.Dv);
      do4[r][2 * c] = slot_lo(s);
      do4[r][2 * c + 1] = slot_hi(s);
    }
    [[unroll]] for (uint c = 0; c < DP4; c++)
      dq4[r][c] = vec4(0.0);
    lse[r] = -1.0 / 0.0;
    rowdot[r] = 0.0;
    if (valid[r]) {
      lse[r] = pc.ws.v[bh * p.Tq + i];
      rowdot[r] = pc.ws.v[nall + bh * p.Tq + i];
    }
#endif
  }

  const uint kstr = attn_row_stride(kb, p.Hkv, p.D), vstr = attn_row_stride(kb, p.Hkv, p.Dv);
  const uint kbase = attn_row(kb, b, 0, hk, p.Tk, p.Hkv, p.D);
  const uint vbase = attn_row(kb, b, 0, hk, p.Tk, p.Hkv, p.Dv);
  for (uint kt = uint(keys.x); kt < uint(keys.y); kt += BT) {
    const uint nk = min(BT, uint(keys.y) - kt);
    barrier(); // the previous tile is read by everyone
    for (uint e = tid; e < BT * DP8; e += WG) {
      const uint n = e / DP8, c = e % DP8;
      Ks[e] = load8(pc.k, kbase + (kt + n) * kstr, n < nk, 8 * c, p.D);
    }
    for (uint e = tid; e < BT * DVP8; e += WG) {
      const uint n = e / DVP8, c = e % DVP8;
      Vs[e] = load8(pc.v, vbase + (kt + n) * vstr, n < nk, 8 * c, p.Dv);
    }
    barrier();
    for (uint n = 0; n < nk; n++) {
      const uint j = kt + n;
      float s[R];
      [[unroll]] for (uint r = 0; r < R; r++)
        s[r] = 0.0;
#if defined(FLASH_DQ)
      vec4 kn[DP4];
#endif
      [[unroll]] for (uint c = 0; c < DP8; c++) {
        const SLOT w = Ks[n * DP8 + c];
        const vec4 a = slot_lo(w), z = slot_hi(w);
#if defined(FLASH_DQ)
        kn[2 * c] = a;
        kn[2 * c + 1] = z;
#endif
        [[unroll]] for (uint r = 0; r < R; r++)
          s[r] = dot8(q4[r][2 * c], a, q4[r][2 * c + 1], z, s[r]);
      }
#if defined(FLASH_FWD)
      float al[R], pr[R];
      [[unroll]] for (uint r = 0; r < R; r++) {
        float x = s[r] * p.scale;
        if (SOFTCAP)
          x = p.softcap * attn_tanh(x / p.softcap);
        const bool see = in_range(vis[r], j);
        if (MASKED && see)
          x += pc.mask.v[b * p.mask_sb + h * p.mask_sh + (row0 + tid + WG * r) * p.mask_si + j];
        x = see ? x : -1.0 / 0.0;
        // one exp: a new maximum rescales the sums by exp(m - x) and adds 1,
        // else the sums keep their scale and add exp(x - m)
        const float d = x - m[r], e = exp(-abs(d));
        const bool none = max(m[r], x) == -1.0 / 0.0; // nothing visible so far
        al[r] = d > 0.0 && !none ? e : 1.0;
        pr[r] = none ? 0.0 : d > 0.0 ? 1.0 : e;
        l[r] = l[r] * al[r] + pr[r];
        m[r] = max(m[r], x);
      }
      [[unroll]] for (uint c = 0; c < DVP8; c++) {
        const SLOT w = Vs[n * DVP8 + c];
        const vec4 a = slot_lo(w), z = slot_hi(w);
        [[unroll]] for (uint r = 0; r < R; r++) {
          o4[r][2 * c] = fma(o4[r][2 * c], vec4(al[r]), pr[r] * a);
          o4[r][2 * c + 1] = fma(o4[r][2 * c + 1], vec4(al[r]), pr[r] * z);
        }
      }
#else
      float dp[R];
      [[unroll]] for (uint r = 0; r < R; r++)
        dp[r] = 0.0;
      [[unroll]] for (uint c = 0; c < DVP8; c++) {
        const SLOT w = Vs[n * DVP8 + c];
        const vec4 a = slot_lo(w), z = slot_hi(w);
        [[unroll]] for (uint r = 0; r < R; r++)
          dp[r] = dot8(do4[r][2 * c], a, do4[r][2 * c + 1], z, dp[r]);
      }
      float ds[R];
      [[unroll]] for (uint r = 0; r < R; r++) {
        float x = s[r] * p.scale, g = p.scale;
        if (SOFTCAP) {
          const float t = attn_tanh(x / p.softcap);
          x = p.softcap * t;
          g = p.scale * (1.0 - t * t);
        }
        const bool see = in_range(vis[r], j) && lse[r] != -1.0 / 0.0;
        if (MASKED && see)
          x += pc.mask.v[b * p.mask_sb + h * p.mask_sh + (row0 + tid + WG * r) * p.mask_si + j];
        // keys out of sight contribute exactly 0, whatever their values (NaN too)
        ds[r] = see ? exp(x - lse[r]) * (dp[r] - rowdot[r]) * g : 0.0;
      }
      [[unroll]] for (uint c = 0; c < DP4; c++)
        [[unroll]] for (uint r = 0; r < R; r++)
          dq4[r][c] = fma(vec4(ds[r]), kn[c], dq4[r][c]);
#endif
    }
  }

  [[unroll]] for (uint r = 0; r < R; r++) {
    if (!valid[r])
      continue;
    const uint i = row0 + tid + WG * r;
#if defined(FLASH_FWD)
    const float inv = l[r] > 0.0 ? 1.0 / l[r] : 0.0;
    const uint o = attn_row(qb, b, i, h, p.Tq, p.Hq, p.Dv);
    [[unroll]] for (uint c = 0; c < DVP4; c++)
      [[unroll]] for (uint e = 0; e < 4; e++)
        if (4 * c + e < p.Dv)
          pc.out_.v[o + 4 * c + e] = o4[r][c][e] * inv;
    pc.lse.v[bh * p.Tq + i] = l[r] > 0.0 ? m[r] + log(l[r]) : -1.0 / 0.0;
#else
    const uint o = attn_row(qb, b, i, h, p.Tq, p.Hq, p.D);
    [[unroll]] for (uint c = 0; c < DP4; c++)
      [[unroll]] for (uint e = 0; e < 4; e++)
        if (4 * c + e < p.D)
          pc.dq.v[o + 4 * c + e] += dq4[r][c][e];
#endif
  }
}

#elif defined(FLASH_DKV)
// ---------------------------------------------------------------------------
shared SLOT Qs[BT * DP8];
shared SLOT Os[BT * DVP8]; // dout rows
shared float Ls[BT], Dd[BT];

void main() {
  const vkf_attention_params p = unpack_params();
  const uint tid = gl_LocalInvocationID.x;
  const uint bk = gl_WorkGroupID.z + p.bh0, b = bk / p.Hkv, hk = bk % p.Hkv, G = p.Hq / p.Hkv;
  const uint key0 = gl_WorkGroupID.x * WG * R;
  const bool qb = (p.flags & VKF_ATTN_Q_BHTD) != 0, kb = (p.flags & VKF_ATTN_KV_BHTD) != 0;
  const uint nall = p.B * p.Hq * p.Tq;
  int kv_len = int(p.Tk);
  if ((p.flags & VKF_ATTN_KV_LENS) != 0)
    kv_len = floatBitsToInt(pc.ws.v[2 * nall + b]);
  const ivec2 bt = attn_batch(p, kv_len);
  if (int(key0) >= bt.x)
    return; // no query sees these keys (uniform)
  const uint nkeys = min(WG * R, uint(bt.x) - key0);
  const ivec2 rows = attn_rows_of_keys(p, bt, int(key0), int(key0 + nkeys - 1));
  if (rows.x >= rows.y)
    return;

  // this invocation's keys: j = key0 + tid + WG * r
  vec4 k4[R][DP4], v4[R][DVP4], dk4[R][DP4], dv4[R][DVP4];
  bool valid[R];
  [[unroll]] for (uint r = 0; r < R; r++) {
    const uint j = key0 + tid + WG * r;
    valid[r] = int(j) < bt.x;
    const uint ko = attn_row(kb, b, valid[r] ? j : 0, hk, p.Tk, p.Hkv, p.D);
    const uint vo = attn_row(kb, b, valid[r] ? j : 0, hk, p.Tk, p.Hkv, p.Dv);
    [[unroll]] for (uint c = 0; c < DP8; c++) {
      SLOT s = load8(pc.k, ko, valid[r], 8 * c, p.D);
      k4[r][2 * c] = slot_lo(s);
      k4[r][2 * c + 1] = slot_hi(s);
      dk4[r][2 * c] = vec4(0.0);
      dk4[r][2 * c + 1] = vec4(0.0);
    }
    [[unroll]] for (uint c = 0; c < DVP8; c++) {
      SLOT s = load8(pc.v, vo, valid[r], 8 * c, p.Dv);
      v4[r][2 * c] = slot_lo(s);
      v4[r][2 * c + 1] = slot_hi(s);
      dv4[r][2 * c] = vec4(0.0);
      dv4[r][2 * c + 1] = vec4(0.0);
    }
  }

  const uint qstr = attn_row_stride(qb, p.Hq, p.D), ostr = attn_row_stride(qb, p.Hq, p.Dv);
  for (uint g = 0; g < G; g++) {
    const uint h = hk * G + g;
    const uint qbase = attn_row(qb, b, 0, h, p.Tq, p.Hq, p.D);
    const uint obase = attn_row(qb, b, 0, h, p.Tq, p.Hq, p.Dv);
    const uint lbase = (b * p.Hq + h) * p.Tq;
    for (uint mt = uint(rows.x); mt < uint(rows.y); mt += BT) {
      const uint nm = min(BT, uint(rows.y) - mt);
      barrier();
      for (uint e = tid; e < BT * DP8; e += WG) {
        const uint n = e / DP8, c = e % DP8;
        Qs[e] = load8(pc.q, qbase + (mt + n) * qstr, n < nm, 8 * c, p.D);
      }
      for (uint e = tid; e < BT * DVP8; e += WG) {
        const uint n = e / DVP8, c = e % DVP8;
        Os[e] = load8(pc.dout, obase + (mt + n) * ostr, n < nm, 8 * c, p.Dv);
      }
      for (uint n = tid; n < BT; n += WG) {
        float a = -1.0 / 0.0, z = 0.0;
        if (n < nm) {
          a = pc.ws.v[lbase + mt + n];
          z = pc.ws.v[nall + lbase + mt + n];
        }
        Ls[n] = a;
        Dd[n] = z;
      }
      barrier();
      for (uint n = 0; n < nm; n++) {
        const uint i = mt + n;
        const ivec2 vis = attn_keys_of_rows(p, bt, int(i), int(i)); // uniform
        const float lse = Ls[n], rowdot = Dd[n];
        vec4 qi[DP4], oi[DVP4];
        float s[R], dp[R];
        [[unroll]] for (uint r = 0; r < R; r++)
          s[r] = 0.0, dp[r] = 0.0;
        [[unroll]] for (uint c = 0; c < DP8; c++) {
          const SLOT w = Qs[n * DP8 + c];
          qi[2 * c] = slot_lo(w);
          qi[2 * c + 1] = slot_hi(w);
          [[unroll]] for (uint r = 0; r < R; r++)
            s[r] = dot8(k4[r][2 * c], qi[2 * c], k4[r][2 * c + 1], qi[2 * c + 1], s[r]);
        }
        [[unroll]] for (uint c = 0; c < DVP8; c++) {
          const SLOT w = Os[n * DVP8 + c];
          oi[2 * c] = slot_lo(w);
          oi[2 * c + 1] = slot_hi(w);
          [[unroll]] for (uint r = 0; r < R; r++)
            dp[r] = dot8(v4[r][2 * c], oi[2 * c], v4[r][2 * c + 1], oi[2 * c + 1], dp[r]);
        }
        float pr[R], ds[R];
        [[unroll]] for (uint r = 0; r < R; r++) {
          const uint j = key0 + tid + WG * r;
          float x = s[r] * p.scale, gr = p.scale;
          if (SOFTCAP) {
            const float t = attn_tanh(x / p.softcap);
            x = p.softcap * t;
            gr = p.scale * (1.0 - t * t);
          }
          const bool see = valid[r] && in_range(vis, j) && lse != -1.0 / 0.0;
          if (MASKED && see)
            x += pc.mask.v[b * p.mask_sb + h * p.mask_sh + i * p.mask_si + j];
          // keys out of sight contribute exactly 0, whatever their values (NaN too)
          pr[r] = see ? exp(x - lse) : 0.0;
          ds[r] = see ? pr[r] * (dp[r] - rowdot) * gr : 0.0;
        }
        [[unroll]] for (uint c = 0; c < DVP4; c++)
          [[unroll]] for (uint r = 0; r < R; r++)
            dv4[r][c] = fma(vec4(pr[r]), oi[c], dv4[r][c]);
        [[unroll]] for (uint c = 0; c < DP4; c++)
          [[unroll]] for (uint r = 0; r < R; r++)
            dk4[r][c] = fma(vec4(ds[r]), qi[c], dk4[r][c]);
      }
    }
  }

  [[unroll]] for (uint r = 0; r < R; r++) {
    if (!valid[r])
      continue;
    const uint j = key0 + tid + WG * r;
    const uint ko = attn_row(kb, b, j, hk, p.Tk, p.Hkv, p.D);
    const uint vo = attn_row(kb, b, j, hk, p.Tk, p.Hkv, p.Dv);
    [[unroll]] for (uint c = 0; c < DP4; c++)
      [[unroll]] for (uint e = 0; e < 4; e++)
        if (4 * c + e < p.D)
          pc.dk.v[ko + 4 * c + e] += dk4[r][c][e];
    [[unroll]] for (uint c = 0; c < DVP4; c++)
      [[unroll]] for (uint e = 0; e < 4; e++)
        if (4 * c + e < p.Dv)
          pc.dv.v[vo + 4 * c + e] += dv4[r][c][e];
  }
}
#endif
