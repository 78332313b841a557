/* xoshiro256** seeded through splitmix64 (public-domain algorithms by
 * Blackman and Vigna, written from their description). */
#include "vkformer.h"

#include <math.h>

static uint64_t splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void vkf_rng_seed(vkf_rng *rng, uint64_t seed) {
  if (!rng)
    return;
  for (int i = 0; i < 4; i++)
    rng->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t vkf_rng_next(vkf_rng *rng) {
  uint64_t *s = rng->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

double vkf_rng_uniform(vkf_rng *rng) {
  return (double)(vkf_rng_next(rng) >> 11) * 0x1.0p-53;
}

double vkf_rng_normal(vkf_rng *rng) {
  double u1 = vkf_rng_uniform(rng), u2 = vkf_rng_uniform(rng);
  return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}
