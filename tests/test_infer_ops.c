/* infer family, internal ops: matvec (the products of decoding steps; the
 * session graphs use it for every product of at most VKF_MATVEC_MAX_M rows).
 * CPU and Vulkan against a double reference: b stored [K, N] and [N, K],
 * 1 to 8 rows, a bias, beta (accumulate) and alpha, a column slice of a wider
 * matrix (ldb > N, an operand offset: GPT-2's fused QKV), K and N not
 * multiples of the vector or workgroup sizes, and misaligned operands (the
 * Vulkan kernel's scalar variant) next to aligned ones (vec4). Tolerance
 * 1e-5 + 1e-5 |ref|: float32 sums of up to 1536 products of values in
 * [-1, 1] in different orders. Operands sit in one buffer between guard
 * regions that must stay untouched (the texel kernel computes rows past M
 * and columns past N from clamped reads and must store none of them). */
#include "test_util.h"

#include "context.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mv_case {
  uint32_t M, N, K, ldb_extra, col0; /* b is a slice: ldb = N + ldb_extra, from column col0 */
  bool nt, bias, beta;
  float alpha;
  uint32_t misalign; /* floats added to every operand's offset */
} mv_case;

static const mv_case cases[] = {
    {1, 1, 1, 0, 0, false, false, false, 1.0f, 0},
    {1, 384, 384, 768, 384, false, true, false, 1.0f, 0}, /* a fused-QKV slice */
    {1, 1536, 384, 0, 0, false, true, false, 1.0f, 0},
    {1, 384, 1536, 0, 0, false, true, true, 1.0f, 0},
    {2, 129, 67, 3, 1, false, true, false, 0.5f, 1},
    {3, 64, 64, 0, 0, true, false, false, 1.0f, 0},
    {1, 256, 384, 0, 0, true, false, false, 1.0f, 0},
    {4, 257, 300, 0, 0, true, true, true, 2.0f, 0},
    {5, 100, 33, 7, 5, true, true, false, 1.0f, 1},
    {8, 1000, 128, 0, 0, false, false, true, 1.0f, 0},
    {8, 72, 1024, 0, 0, true, true, false, 1.0f, 0},
    {7, 31, 9, 2, 1, false, false, false, 1.0f, 3},
};

#define GUARD 64 /* floats around and between operands */

static void run_case(vkf_context *ctx, const mv_case *c, int ci) {
  vkf_backend *be = ctx->be;
  vkft_rng rng = vkft_rng_seed(700 + ci);
  const uint32_t ldb = c->N + c->ldb_extra, lda = c->K, ldc = c->N;
  const size_t na = (size_t)c->M * lda, nc = (size_t)c->M * ldc,
               nb = c->nt ? (size_t)(c->N + c->ldb_extra) * c->K : (size_t)c->K * ldb;
  /* layout: guard | a | guard | b | guard | bias | guard | c | guard */
  const size_t oa = GUARD + c->misalign, ob = oa + na + GUARD, obias = ob + nb + GUARD,
               oc = obias + c->N + GUARD, total = oc + nc + GUARD;
  float *host = vkft_alloc(total), *got = vkft_alloc(total);
  vkft_fill_uniform(&rng, host, total, -1, 1);
  float *a = host + oa, *b = host + ob, *bias = host + obias, *cc = host + oc;
  /* NT: rows col0.. of a [N + extra, K] matrix (ldb = K); NN: columns col0..
   * of a [K, ldb] matrix */
  const size_t b_first = c->nt ? (size_t)c->col0 * c->K : c->col0;
  const uint32_t ldb_op = c->nt ? c->K : ldb;
  double *ref = vkft_alloc_d(nc);
  for (uint32_t m = 0; m < c->M; m++)
    for (uint32_t n = 0; n < c->N; n++) {
      double s = 0;
      for (uint32_t k = 0; k < c->K; k++)
        s += (double)a[(size_t)m * lda + k] *
             b[b_first + (c->nt ? (size_t)n * ldb_op + k : (size_t)k * ldb_op + n)];
      s *= c->alpha;
      if (c->beta)
        s += cc[(size_t)m * ldc + n];
      if (c->bias)
        s += bias[n];
      ref[(size_t)m * ldc + n] = s;
    }
  vkf_buffer *buf;
  VKFT_OK(be->vt->buffer_create(be, total * 4, &buf));
  VKFT_OK(be->vt->write(be, (vkf_tref){buf, 0, total * 4}, host));
  vkf_op op = {.kind = VKF_OP_MATVEC, .n_tensors = 4, .writes = 1, .reads = 6};
  op.t[0] = (vkf_tref){buf, oc * 4, nc * 4};
  op.t[1] = (vkf_tref){buf, oa * 4, na * 4};
  size_t b_span = c->nt ? (size_t)c->N * c->K : (size_t)(c->K - 1) * ldb + c->N;
  op.t[2] = (vkf_tref){buf, (ob + b_first) * 4, b_span * 4};
  uint32_t flags =
      (c->nt ? VKF_MM_TRANS_B : 0) | (c->bias ? VKF_MM_BIAS : 0) | (c->beta ? VKF_MM_BETA : 0);
  if (c->bias) {
    op.t[3] = (vkf_tref){buf, obias * 4, c->N * 4};
    op.reads |= 8;
  }
  if (c->beta)
    op.reads |= 1;
  op.p.matmul = (vkf_matmul_params){.M = c->M,
                                    .N = c->N,
                                    .K = c->K,
                                    .batch = 1,
                                    .lda = lda,
                                    .ldb = ldb_op,
                                    .ldc = ldc,
                                    .flags = flags,
                                    .alpha = c->alpha,
                                    .beta = c->beta ? 1.0f : 0.0f};
  VKFT_OK(be->vt->run(be, &op));
  VKFT_OK(be->vt->read(be, (vkf_tref){buf, 0, total * 4}, got));
  char what[80];
  snprintf(what, sizeof(what), "matvec case %d (%.40s)", ci, be->info.name);
  assert_int_equal(vkft_compare(what, got + oc, ref, nc, 1e-5, 1e-5), 0);
  /* nothing else changed */
  memcpy(got + oc, cc, nc * 4);
  assert_memory_equal(got, host, total * 4);
  be->vt->buffer_destroy(be, buf);
  free(host), free(got), free(ref);
}

static void run_all(vkf_context *ctx) {
  for (size_t i = 0; i < VKFT_ARRAY_LEN(cases); i++)
    run_case(ctx, &cases[i], (int)i);
}

static void test_matvec_cpu(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  run_all(ctx);
  vkft_destroy(ctx);
}

static void test_matvec_vulkan(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  run_all(ctx);
  vkft_destroy(ctx);
}

/* On lavapipe the aligned cases above run as matmul_tex (texel reads); the
 * matvec kernel itself, which GPUs run, again without texel reads. */
static void test_matvec_vulkan_no_texel_reads(void **state) {
  (void)state;
  setenv("VKF_VK_TEXEL_READS", "0", 1);
  vkf_context *ctx = vkft_vulkan();
  unsetenv("VKF_VK_TEXEL_READS");
  run_all(ctx);
  vkft_destroy(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matvec_cpu),
      cmocka_unit_test(test_matvec_vulkan),
      cmocka_unit_test(test_matvec_vulkan_no_texel_reads),
  };
  return cmocka_run_group_tests_name("infer_ops", tests, NULL, NULL);
}
