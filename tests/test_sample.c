/* Sampling (vkf_sample_logits; the sessions use the same sampler): greedy
 * and its ties, NaN logits, top-k and top-p never emit outside their sets
 * (thousands of draws over random logits, with ties), the frequencies of
 * plain, tempered, top-k and top-p sampling against the exact probabilities
 * (within 5 standard deviations), the repetition penalty, reproducibility
 * from a seed, and the argument checks. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void random_logits(vkf_rng *r, float *l, uint32_t V, bool ties) {
  for (uint32_t i = 0; i < V; i++) {
    l[i] = (float)(vkf_rng_normal(r) * 2.0);
    if (ties && i > 0 && vkf_rng_uniform(r) < 0.2)
      l[i] = l[vkf_rng_next(r) % i];
  }
}

/* rank of token t: how many tokens rank strictly before it (higher logit,
 * or equal logit and lower id) */
static uint32_t rank_of(const float *l, uint32_t V, int32_t t) {
  uint32_t r = 0;
  for (uint32_t i = 0; i < V; i++)
    r += l[i] > l[t] || (l[i] == l[t] && (int32_t)i < t);
  return r;
}

static void test_greedy(void **state) {
  (void)state;
  float l[6] = {0.5f, 2.0f, -1.0f, 2.0f, NAN, 1.0f};
  int32_t t = -1;
  VKFT_OK(vkf_sample_logits(l, 6, NULL, NULL, 0, NULL, &t));
  assert_int_equal(t, 1); /* tie between 1 and 3: the lower id */
  vkf_sample_desc d = {0};
  VKFT_OK(vkf_sample_logits(l, 6, &d, NULL, 0, NULL, &t));
  assert_int_equal(t, 1);
  float nan_first[3] = {NAN, -5.0f, -4.0f};
  VKFT_OK(vkf_sample_logits(nan_first, 3, &d, NULL, 0, NULL, &t));
  assert_int_equal(t, 2);
  /* a NaN is never sampled either */
  vkf_rng r;
  vkf_rng_seed(&r, 3);
  d.temperature = 1.0f;
  for (int i = 0; i < 200; i++) {
    VKFT_OK(vkf_sample_logits(nan_first, 3, &d, NULL, 0, &r, &t));
    assert_true(t == 1 || t == 2);
  }
}

static void test_top_k_never_outside(void **state) {
  (void)state;
  vkf_rng r;
  vkf_rng_seed(&r, 11);
  float l[300];
  for (int trial = 0; trial < 400; trial++) {
    uint32_t V = 1 + (uint32_t)(vkf_rng_next(&r) % 300);
    random_logits(&r, l, V, trial % 2);
    vkf_sample_desc d = {.temperature = (float)(0.2 + 3 * vkf_rng_uniform(&r)),
                         .top_k = 1 + (uint32_t)(vkf_rng_next(&r) % 12)};
    for (int k = 0; k < 25; k++) {
      int32_t t;
      VKFT_OK(vkf_sample_logits(l, V, &d, NULL, 0, &r, &t));
      assert_true(t >= 0 && (uint32_t)t < V);
      assert_true(rank_of(l, V, t) < d.top_k);
    }
  }
}

/* The nucleus: the smallest prefix in rank order whose probability (after
 * temperature) reaches top_p. Logits here are spread so that no prefix sum
 * lies within 1e-6 of top_p (so float rounding cannot decide membership). */
static void test_top_p_never_outside(void **state) {
  (void)state;
  vkf_rng r;
  vkf_rng_seed(&r, 12);
  float l[64];
  int32_t order[64];
  double p[64];
  int checked = 0;
  for (int trial = 0; trial < 400; trial++) {
    uint32_t V = 2 + (uint32_t)(vkf_rng_next(&r) % 60);
    random_logits(&r, l, V, false);
    vkf_sample_desc d = {.temperature = (float)(0.3 + 2 * vkf_rng_uniform(&r)),
                         .top_p = (float)(0.05 + 0.9 * vkf_rng_uniform(&r))};
    for (uint32_t i = 0; i < V; i++)
      order[rank_of(l, V, (int32_t)i)] = (int32_t)i;
    double mx = l[order[0]], sum = 0;
    for (uint32_t i = 0; i < V; i++)
      sum += p[i] = exp(((double)l[order[i]] - mx) / d.temperature);
    double acc = 0;
    uint32_t keep = V;
    bool ambiguous = false;
    for (uint32_t i = 0; i < V; i++) {
      acc += p[i] / sum;
      ambiguous = ambiguous || fabs(acc - d.top_p) < 1e-6;
      if (acc >= d.top_p) {
        keep = i + 1;
        break;
      }
    }
    if (ambiguous)
      continue;
    checked++;
    for (int k = 0; k < 25; k++) {
      int32_t t;
      VKFT_OK(vkf_sample_logits(l, V, &d, NULL, 0, &r, &t));
      assert_true(rank_of(l, V, t) < keep);
    }
  }
  assert_true(checked > 300);
}

/* Counts of n draws against probabilities q: each within 5 sigma. */
static void check_frequencies(const char *what, const float *l, uint32_t V,
                              const vkf_sample_desc *d, const double *q, uint64_t seed) {
  enum { N = 40000 };
  uint32_t count[16] = {0};
  vkf_rng r;
  vkf_rng_seed(&r, seed);
  for (int i = 0; i < N; i++) {
    int32_t t;
    VKFT_OK(vkf_sample_logits(l, V, d, NULL, 0, &r, &t));
    count[t]++;
  }
  for (uint32_t i = 0; i < V; i++) {
    double mean = N * q[i], sd = sqrt(N * q[i] * (1 - q[i]));
    if (q[i] == 0) {
      if (count[i])
        fail_msg("%s: token %u has probability 0 but was drawn %u times", what, i, count[i]);
      continue;
    }
    if (fabs(count[i] - mean) > 5 * sd + 1)
      fail_msg("%s: token %u drawn %u times, expected %.1f +- %.1f", what, i, count[i], mean, sd);
  }
}

static void test_frequencies(void **state) {
  (void)state;
  const float l[6] = {1.0f, 0.0f, 2.0f, -1.0f, 0.5f, 1.5f};
  double q[6];
  for (int mode = 0; mode < 4; mode++) {
    vkf_sample_desc d = {.temperature = 1.0f};
    const char *what = "plain";
    if (mode == 1)
      d.temperature = 0.5f, what = "temperature 0.5";
    if (mode == 2)
      d.top_k = 3, what = "top-k 3";
    if (mode == 3)
      d.top_p = 0.75f, what = "top-p 0.75";
    double sum = 0;
    for (int i = 0; i < 6; i++)
      sum += q[i] = exp(l[i] / d.temperature);
    if (mode == 2) { /* the 3 best: ids 2, 5, 0 */
      sum = 0;
      for (int i = 0; i < 6; i++)
        sum += q[i] = (i == 2 || i == 5 || i == 0) ? exp(l[i]) : 0;
    }
    if (mode == 3) {
      /* p(2) = 0.42, p(5) = 0.25, p(0) = 0.15: the nucleus of 0.75 is {2, 5, 0} */
      double p2 = q[2] / sum, p5 = q[5] / sum;
      assert_true(p2 + p5 < 0.75 && p2 + p5 + q[0] / sum > 0.75);
      sum = 0;
      for (int i = 0; i < 6; i++)
        sum += q[i] = (i == 2 || i == 5 || i == 0) ? q[i] : 0;
    }
    for (int i = 0; i < 6; i++)
      q[i] /= sum;
    check_frequencies(what, l, 6, &d, q, 100 + (uint64_t)mode);
  }
}

static void test_repetition_penalty(void **state) {
  (void)state;
  float l[5] = {3.0f, 2.5f, -1.0f, -0.5f, 0.0f};
  int32_t hist[4] = {0, 0, 3, 7}; /* repeated and out-of-range ids are harmless */
  vkf_sample_desc d = {.repetition_penalty = 2.0f};
  int32_t t;
  /* 3 / 2 = 1.5 < 2.5: token 1 wins */
  VKFT_OK(vkf_sample_logits(l, 5, &d, hist, 4, NULL, &t));
  assert_int_equal(t, 1);
  /* once per distinct token: with penalty 1.1, 3 / 1.1 = 2.73 > 2.5 (twice
   * would give 2.48) */
  d.repetition_penalty = 1.1f;
  VKFT_OK(vkf_sample_logits(l, 5, &d, hist, 4, NULL, &t));
  assert_int_equal(t, 0);
  /* negative logits are multiplied: -0.5 * 2 = -1 < 0 (token 4) */
  float neg[3] = {-0.5f, -0.6f, -2.0f};
  int32_t h2[1] = {0};
  d.repetition_penalty = 2.0f;
  VKFT_OK(vkf_sample_logits(neg, 3, &d, h2, 1, NULL, &t));
  assert_int_equal(t, 1);
  /* the logits themselves are not modified */
  assert_true(l[0] == 3.0f && neg[0] == -0.5f);
}

static void test_seed_reproduces(void **state) {
  (void)state;
  vkf_rng a, b, c;
  vkf_rng_seed(&a, 42);
  vkf_rng_seed(&b, 42);
  vkf_rng_seed(&c, 43);
  float l[100];
  vkf_rng lr;
  vkf_rng_seed(&lr, 1);
  random_logits(&lr, l, 100, false);
  vkf_sample_desc d = {.temperature = 1.5f, .top_p = 0.95f, .top_k = 50};
  int same_c = 0;
  for (int i = 0; i < 200; i++) {
    int32_t x, y, z;
    VKFT_OK(vkf_sample_logits(l, 100, &d, NULL, 0, &a, &x));
    VKFT_OK(vkf_sample_logits(l, 100, &d, NULL, 0, &b, &y));
    VKFT_OK(vkf_sample_logits(l, 100, &d, NULL, 0, &c, &z));
    assert_int_equal(x, y);
    same_c += x == z;
  }
  assert_true(same_c < 100); /* another seed gives another sequence */
}

static void test_errors(void **state) {
  (void)state;
  float l[3] = {0, 1, 2};
  int32_t t, h[1] = {0};
  vkf_sample_desc d = {.temperature = 1.0f};
  vkf_rng r;
  vkf_rng_seed(&r, 1);
  assert_int_equal(vkf_sample_logits(NULL, 3, &d, NULL, 0, &r, &t), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_sample_logits(l, 3, &d, NULL, 0, &r, NULL), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_sample_logits(l, 3, &d, NULL, 0, NULL, &t), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_sample_logits(l, 3, &d, NULL, 1, &r, &t), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_sample_logits(l, 0, &d, h, 1, &r, &t), VKF_ERROR_INVALID_ARGUMENT);
  vkf_sample_desc bad[] = {{.temperature = -1},
                           {.temperature = INFINITY},
                           {.temperature = NAN},
                           {.temperature = 1, .top_p = 1.01f},
                           {.temperature = 1, .top_p = -0.1f},
                           {.temperature = 1, .top_p = NAN},
                           {.repetition_penalty = -1},
                           {.repetition_penalty = INFINITY}};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(bad); i++)
    assert_int_equal(vkf_sample_logits(l, 3, &bad[i], NULL, 0, &r, &t), VKF_ERROR_INVALID_ARGUMENT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_greedy),
      cmocka_unit_test(test_top_k_never_outside),
      cmocka_unit_test(test_top_p_never_outside),
      cmocka_unit_test(test_frequencies),
      cmocka_unit_test(test_repetition_penalty),
      cmocka_unit_test(test_seed_reproduces),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests_name("sample", tests, NULL, NULL);
}
