/* Elementary functions for the CPU kernels' element loops, written so that
 * compilers vectorise the loops that call them (no libm calls, no branches:
 * selects, and integer operations on the bits), plus the function-clone
 * attribute those loops use to get AVX-512 and AVX2 builds picked at run time
 * without -march at build time. */
#ifndef VKF_CPU_VECMATH_H
#define VKF_CPU_VECMATH_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) &&                             \
    !defined(__SANITIZE_ADDRESS__)
#define VKF_VEC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VKF_VEC_CLONES
#endif

/* exp(z) in double, to about 2e-16 relative (a few ulp of double), for the
 * reference kernels that round a double result to float once.
 *   z is clamped to [-708, 708] (the result then stays a normal double; the
 *   callers' results round to 0 or saturate in float long before); NaN stays
 *   NaN.
 *   z = n ln2 + r, |r| <= ln2 / 2, ln2 in two parts (n * LN2_HI is exact for
 *   |n| < 2^21); exp(r) by its Taylor polynomial to r^12 (truncation below
 *   3e-16 relative at |r| = ln2 / 2), times 2^n built in the exponent bits.
 *   Written with separate multiplies and adds (C11 does not contract them),
 *   so every build gives the same bits. */
static inline double vkf_exp_d(double z) {
  const double shifter = 6755399441055744.0; /* 1.5 * 2^52: adding it rounds to an integer */
  double zc = z > -708.0 ? z : -708.0;
  zc = zc < 708.0 ? zc : 708.0;
  double t = zc * 1.4426950408889634074 + shifter;
  double n = t - shifter;
  double r = zc - n * 6.93147180369123816490e-01; /* LN2_HI: 32 significant bits */
  r = r - n * 1.90821492927058770002e-10;         /* LN2_LO */
  double p = 1.0 / 479001600.0;                   /* 1/12! */
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  int64_t tb, sb;
  memcpy(&tb, &t, sizeof(tb));
  memcpy(&sb, &shifter, sizeof(sb));
  uint64_t bits = (uint64_t)(tb - sb + 1023) << 52; /* 2^n */
  double two_n;
  memcpy(&two_n, &bits, sizeof(two_n));
  double y = p * two_n;
  return z == z ? y : z;
}

/* exp(x) in float to about 2 ulp for x <= 88 (the flash kernels'
 * algorithm; +inf from about 88.4): 0 below -87.3 (and for -inf), x = n ln2 + r with |r| <= ln2 / 2
 * (ln2 in two parts), exp(r) by its Taylor series to r^6 (truncation below 1.3e-7 relative), times
 * 2^n built in the exponent bits; NaN stays NaN. Separate multiplies and adds: the same bits in
 * every build. */
static inline float vkf_exp_f(float x) {
  float xc = x > -87.3f ? x : -87.3f;
  xc = xc < 88.7f ? xc : 88.7f;
  const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
  float t = xc * 1.44269504088896341f + shifter;
  float n = t - shifter;
  float r = xc - n * 0.693145751953125f;
  r = r - n * 1.42860682030941723212e-6f;
  float p = (1.0f / 720.0f) * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t tb, sb;
  memcpy(&tb, &t, sizeof(tb));
  memcpy(&sb, &shifter, sizeof(sb));
  uint32_t bits = (uint32_t)(tb - sb + 127) << 23;
  float two_n;
  memcpy(&two_n, &bits, sizeof(two_n));
  float y = x > -87.3f ? p * two_n : 0.0f;
  return x == x ? y : x;
}

/* Floats as integers in the same order (-0 < +0; NaN with the sign bit
 * clear above +inf), so that maxima are integer reductions, which compilers
 * vectorise (float ones they only do with -ffast-math). */
static inline int32_t vkf_f2ord(float x) {
  int32_t i;
  memcpy(&i, &x, sizeof(i));
  return i ^ ((i >> 31) & 0x7fffffff);
}
static inline float vkf_ord2f(int32_t i) {
  i ^= (i >> 31) & 0x7fffffff;
  float x;
  memcpy(&x, &i, sizeof(x));
  return x;
}

/* Lanes of the partial sums (and maxima) the row loops keep: a fixed
 * count, so the order of additions is the same in every build. */
#define VKF_LANES 16

#endif
