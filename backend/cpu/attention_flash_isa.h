/* The flash attention CPU kernels' inner loops, compiled once per instruction
 * set: attention_flash.c includes this file several times with
 *   FK_NAME(x)    the name of this instantiation's x
 *   FK_TARGET     a function attribute (target("...")) or nothing
 *   FK_VW         floats per vector (1 for the portable build)
 *   FK_V, FK_LOAD(p), FK_STORE(p, v), FK_SET1(x), FK_FMA(a, b, c), FK_ZERO()
 *   FK_SFMA(a, b, c) a * b + c on scalars (fused where the set has FMA)
 * and undefines them afterwards. Each instantiation fills a flash_isa (defined
 * in attention_flash.c) named FK_NAME(isa).
 *
 * fk_product: C[M, N] (=, or += with acc) sum over k < K of A(i, k) * B[k, :]
 * with A(i, k) = A[i * a_si + k * a_sk] (any strides: rows of Q, or columns
 * of P for P^T . dout) and B's rows contiguous (ldb apart). M % 4 == 0 and
 * N % FK_VW == 0: callers pad their tiles with zeros. Register blocks of 4
 * rows by up to 4 vectors; each element of C is one chain of FMAs in k order,
 * so results do not depend on how the caller splits the work. */

/* C[4, NV vectors] block at column j. */
#define FK_BLOCK(NV)                                                                               \
  FK_TARGET static void FK_NAME(block##NV)(uint32_t K, const float *A, size_t a_si, size_t a_sk,   \
                                           const float *B, size_t ldb, float *C, size_t ldc,       \
                                           bool acc) {                                             \
    FK_V c[4][NV];                                                                                 \
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)                                            \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) c[r][v] =                             \
            acc ? FK_LOAD(C + r * ldc + v * FK_VW) : FK_ZERO();                                    \
    for (uint32_t k = 0; k < K; k++) {                                                             \
      const float *b = B + k * ldb, *a = A + k * a_sk;                                             \
      FK_V bv[NV];                                                                                 \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] = FK_LOAD(b + v * FK_VW);         \
      _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {                                        \
        FK_V av = FK_SET1(a[r * a_si]);                                                            \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) c[r][v] = FK_FMA(av, bv[v], c[r][v]); \
      }                                                                                            \
    }                                                                                              \
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++)                                            \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                                       \
            FK_STORE(C + r * ldc + v * FK_VW, c[r][v]);                                            \
  }

FK_BLOCK(1)
FK_BLOCK(2)
FK_BLOCK(3)
FK_BLOCK(4)
#undef FK_BLOCK

FK_TARGET static void FK_NAME(product)(uint32_t M, uint32_t N, uint32_t K, const float *A,
                                       size_t a_si, size_t a_sk, const float *B, size_t ldb,
                                       float *C, size_t ldc, bool acc) {
  for (uint32_t i = 0; i < M; i += 4) {
    const float *a = A + i * a_si;
    float *c = C + i * ldc;
    uint32_t j = 0;
    for (; j + 4 * FK_VW <= N; j += 4 * FK_VW)
      FK_NAME(block4)(K, a, a_si, a_sk, B + j, ldb, c + j, ldc, acc);
    switch ((N - j) / FK_VW) {
    case 3:
      FK_NAME(block3)(K, a, a_si, a_sk, B + j, ldb, c + j, ldc, acc);
      break;
    case 2:
      FK_NAME(block2)(K, a, a_si, a_sk, B + j, ldb, c + j, ldc, acc);
      break;
    case 1:
      FK_NAME(block1)(K, a, a_si, a_sk, B + j, ldb, c + j, ldc, acc);
      break;
    default:
      break;
    }
  }
}

/* flash_exp with this instruction set's FMA (inlined into the loops below). */
FK_TARGET static inline float FK_NAME(exp)(float x){FLASH_EXP_BODY(FK_SFMA)}

/* x[j] = exp(x[j] - sub) for j < n (n % FK_VW == 0); returns the sum of the
 * results (per-lane partial sums added in a fixed order). */
FK_TARGET static float FK_NAME(exp_sum)(float *x, uint32_t n, float sub) {
  for (uint32_t j = 0; j < n; j++)
    x[j] = FK_NAME(exp)(x[j] - sub);
  float part[FK_VW];
  for (int l = 0; l < FK_VW; l++)
    part[l] = 0.0f;
  for (uint32_t j = 0; j < n; j += FK_VW)
    for (int l = 0; l < FK_VW; l++)
      part[l] += x[j + l];
  float s = 0.0f;
  for (int l = 0; l < FK_VW; l++)
    s += part[l];
  return s;
}

/* The online softmax over a tile of scores S (rows r < nr, n columns, n %
 * FK_VW == 0): row r sees the columns [lo[r], hi[r]) (none when equal),
 * whose logits are S * scale. With m[r], l[r] the running maximum and sum
 * of exponentials, the row becomes P = exp(logit - m_new) (0 where not
 * visible), l = l * exp(m - m_new) + sum(P), and O's row (ldo floats) is
 * multiplied by exp(m - m_new) when that is not 1. Partial maxima and sums
 * per vector lane, combined in a fixed order. */
FK_TARGET static void FK_NAME(softmax_rows)(float *S, uint32_t n, uint32_t nr, const uint32_t *lo,
                                            const uint32_t *hi, float scale, float *m, float *l,
                                            float *O, uint32_t ldo) {
  for (uint32_t r = 0; r < nr; r++) {
    float *x = S + (size_t)r * n;
    const uint32_t a = lo[r], e = hi[r];
    if (e <= a) { /* nothing visible here: P = 0 */
      for (uint32_t j = 0; j < n; j++)
        x[j] = 0.0f;
      continue;
    }
    for (uint32_t j = 0; j < a; j++)
      x[j] = -INFINITY;
    for (uint32_t j = a; j < e; j++)
      x[j] *= scale;
    for (uint32_t j = e; j < n; j++)
      x[j] = -INFINITY;
    float part[FK_VW];
    for (int q = 0; q < FK_VW; q++)
      part[q] = -INFINITY;
    for (uint32_t j = 0; j < n; j += FK_VW)
      for (int q = 0; q < FK_VW; q++)
        part[q] = x[j + q] > part[q] ? x[j + q] : part[q];
    float mx = m[r];
    for (int q = 0; q < FK_VW; q++)
      mx = part[q] > mx ? part[q] : mx;
    if (mx == -INFINITY) { /* every key so far masked by -inf */
      for (uint32_t j = 0; j < n; j++)
        x[j] = 0.0f;
      continue;
    }
    const float alpha = FK_NAME(exp)(m[r] - mx);
    l[r] = l[r] * alpha + FK_NAME(exp_sum)(x, n, mx);
    m[r] = mx;
    if (alpha != 1.0f) {
      float *o = O + (size_t)r * ldo;
      for (uint32_t c = 0; c < ldo; c++)
        o[c] *= alpha;
    }
  }
}

/* x[j] *= a for j < n. */
FK_TARGET static void FK_NAME(scale)(float *x, uint32_t n, float a) {
  for (uint32_t j = 0; j < n; j++)
    x[j] *= a;
}

/* The backward's elementwise step for a row without softcap or mask: s holds q.k and becomes P =
 * exp(scale * s - lse); dp holds dout.v and becomes dS = P * (dp - rowdot) * scale. */
FK_TARGET static void FK_NAME(grad_row)(float *s, float *dp, uint32_t n, float scale, float lse,
                                        float rowdot) {
  for (uint32_t j = 0; j < n; j++) {
    float p = FK_NAME(exp)(FK_SFMA(s[j], scale, -lse));
    s[j] = p;
    dp[j] = p * (dp[j] - rowdot) * scale;
  }
}

static const flash_isa FK_NAME(isa) = {FK_VW, FK_NAME(product), FK_NAME(softmax_rows),
                                       FK_NAME(scale), FK_NAME(grad_row)};

#undef FK_NAME
#undef FK_TARGET
#undef FK_VW
#undef FK_V
#undef FK_LOAD
#undef FK_STORE
#undef FK_SET1
#undef FK_FMA
#undef FK_ZERO
#undef FK_SFMA
