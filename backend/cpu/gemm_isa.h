/* The packed GEMM's register kernels, compiled once per instruction set:
 * gemm.c includes this file several times with
 *   GK_NAME(x)      the name of this instantiation's x
 *   GK_TARGET       a function attribute (target("...")) or nothing
 *   GK_VW           floats per vector
 *   GK_NV           vectors per row of the register block (NR = GK_VW * GK_NV)
 *   GK_V, GK_LOAD(p), GK_STORE(p, v), GK_SET1(x), GK_FMA(a, b, c), GK_ZERO(),
 *   GK_ADD(a, b), GK_MUL(a, b)
 *   GK_LOADN(p, n), GK_STOREN(p, n, v)  the first n < GK_VW lanes only (the
 *                   others read as 0, and are not written)
 * and undefines them afterwards. Each instantiation fills a gemm_isa (defined
 * in gemm.c) named GK_NAME(isa).
 *
 * kern: the GEMM_MR x NR block T[r][j] = sum over k < kc, in k order, of
 * A(r, k) * bp[k * b_sk + j] (one FMA chain per element, started from 0), with
 * A(r, k) = a[off[r] + k * a_sk]. The caller points rows past the matrix's
 * edge at its last row (off[]), so every read is inside the operand.
 *
 * update: c (+)= the block, for r < mr rows and j < nr columns:
 *   first K block:  c = alpha * T + (beta * c_old) + bias   (the terms the
 *                   flags ask for; c_old is not read without beta)
 *   later blocks:   c = c_old + alpha * T
 * Every element sees the same operations whatever the tile it falls in. */

#define GK_NR (GK_VW * GK_NV)

GK_TARGET static void GK_NAME(kern)(uint32_t kc, const float *a, size_t a_sk, const size_t *off,
                                    const float *bp, size_t b_sk, float *tile) {
  const size_t o0 = off[0], o1 = off[1], o2 = off[2], o3 = off[3], o4 = off[4], o5 = off[5];
  GK_V c[GEMM_MR][GK_NV];
  _Pragma("GCC unroll 8") for (int r = 0; r < GEMM_MR; r++)
      _Pragma("GCC unroll 8") for (int v = 0; v < GK_NV; v++) c[r][v] = GK_ZERO();
  for (uint32_t k = 0; k < kc; k++) {
    GK_V b[GK_NV];
    _Pragma("GCC unroll 8") for (int v = 0; v < GK_NV; v++) b[v] = GK_LOAD(bp + v * GK_VW);
    bp += b_sk;
    GK_V x;
#define GK_ROW(r, o)                                                                               \
  x = GK_SET1(a[o]);                                                                               \
  _Pragma("GCC unroll 8") for (int v = 0; v < GK_NV; v++) c[r][v] = GK_FMA(x, b[v], c[r][v]);
    GK_ROW(0, o0)
    GK_ROW(1, o1)
    GK_ROW(2, o2)
    GK_ROW(3, o3)
    GK_ROW(4, o4)
    GK_ROW(5, o5)
#undef GK_ROW
    a += a_sk;
  }
  _Pragma("GCC unroll 8") for (int r = 0; r < GEMM_MR; r++)
      _Pragma("GCC unroll 8") for (int v = 0; v < GK_NV; v++)
          GK_STORE(tile + r * GK_NR + v * GK_VW, c[r][v]);
}

GK_TARGET static void GK_NAME(update)(float *c, size_t ldc, const float *tile, uint32_t mr,
                                      uint32_t nr, bool first, float alpha, bool beta_on,
                                      float beta, const float *bias) {
  const GK_V va = GK_SET1(alpha), vb = GK_SET1(beta);
  for (uint32_t r = 0; r < mr; r++) {
    float *cr = c + r * ldc;
    const float *t = tile + r * GK_NR;
    for (uint32_t j = 0; j < nr; j += GK_VW) {
      const uint32_t n = nr - j;
      GK_V v = GK_MUL(va, GK_LOAD(t + j));
      if (n >= GK_VW) {
        if (first) {
          if (beta_on)
            v = GK_ADD(v, GK_MUL(vb, GK_LOAD(cr + j)));
          if (bias)
            v = GK_ADD(v, GK_LOAD(bias + j));
        } else {
          v = GK_ADD(GK_LOAD(cr + j), v);
        }
        GK_STORE(cr + j, v);
      } else {
        if (first) {
          if (beta_on)
            v = GK_ADD(v, GK_MUL(vb, GK_LOADN(cr + j, n)));
          if (bias)
            v = GK_ADD(v, GK_LOADN(bias + j, n));
        } else {
          v = GK_ADD(GK_LOADN(cr + j, n), v);
        }
        GK_STOREN(cr + j, n, v);
      }
    }
  }
}

static const gemm_isa GK_NAME(isa) = {GK_NR, GK_NAME(kern), GK_NAME(update)};

#undef GK_NR
#undef GK_NAME
#undef GK_TARGET
#undef GK_VW
#undef GK_NV
#undef GK_V
#undef GK_LOAD
#undef GK_STORE
#undef GK_SET1
#undef GK_FMA
#undef GK_ZERO
#undef GK_ADD
#undef GK_MUL
#undef GK_LOADN
#undef GK_STOREN
