/* The flash attention CPU kernels' inner loops, compiled once per instruction
 * set: attention_flash.c includes this file several times with
 *   FK_NAME(x)    the name of this instantiation's x
 *   FK_TARGET     a function attribute (target("...")) or nothing
 *   FK_VW         floats per vector (1 for the portable build)
 *   FK_V, FK_LOAD(p), FK_STORE(p, v), FK_SET1(x), FK_FMA(a, b, c), FK_ZERO()
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

/* x[j] = exp(x[j] - sub) for j < n (n % FK_VW == 0); returns the sum of the
 * results (per-lane partial sums added in a fixed order). */
FK_TARGET static float FK_NAME(exp_sum)(float *x, uint32_t n, float sub) {
  for (uint32_t j = 0; j < n; j++)
    x[j] = flash_exp(x[j] - sub);
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

/* The largest of x[0..n) (n % FK_VW == 0), -inf for none; NaNs are skipped. */
FK_TARGET static float FK_NAME(max)(const float *x, uint32_t n) {
  float part[FK_VW];
  for (int l = 0; l < FK_VW; l++)
    part[l] = -INFINITY;
  for (uint32_t j = 0; j < n; j += FK_VW)
    for (int l = 0; l < FK_VW; l++)
      part[l] = x[j + l] > part[l] ? x[j + l] : part[l];
  float m = -INFINITY;
  for (int l = 0; l < FK_VW; l++)
    m = part[l] > m ? part[l] : m;
  return m;
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
    float p = flash_exp(s[j] * scale - lse);
    s[j] = p;
    dp[j] = p * (dp[j] - rowdot) * scale;
  }
}

static const flash_isa FK_NAME(isa) = {FK_VW,        FK_NAME(product), FK_NAME(exp_sum),
                                       FK_NAME(max), FK_NAME(scale),   FK_NAME(grad_row)};

#undef FK_NAME
#undef FK_TARGET
#undef FK_VW
#undef FK_V
#undef FK_LOAD
#undef FK_STORE
#undef FK_SET1
#undef FK_FMA
#undef FK_ZERO
