/* ONNX backend node tests (../shared/conformance/onnx) run through
 * vkformer's ops on the CPU backend and on Vulkan.
 *
 *   test_conformance [OpType]   only the cases of one op (one ctest entry
 *                               per op keeps each process short)
 *   test_conformance --unimplemented
 *                               lists the cases no vkformer op runs, with why
 *
 * Every case is run, or listed as skipped with the reason. Layout work that
 * is not the op itself (numpy broadcasting of matmul batch dims, moving a
 * softmax axis last) is done on the host in the runner and said so.
 *
 * Tolerance: |got - want| <= 1e-5 + 1e-4*|want|. The expected values were
 * computed by numpy in float32; our kernels accumulate in a different order
 * (tiles, workgroup reductions), which moves results by a few ulps times
 * the reduction length; 1e-4 relative covers reductions of a few hundred
 * terms with margin, while a wrong formula is off by far more. */
#include "onnx_case.h"
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATOL 1e-5
#define RTOL 1e-4

typedef enum { R_PASS, R_FAIL, R_SKIP } result;
typedef result (*runner_fn)(vkf_context *ctx, const onnx_case *c, char *why, size_t whylen);

static const char *g_filter;

static result compare_output(const char *what, const float *got, const onnx_tensor *want, char *why,
                             size_t whylen) {
  if (vkft_compare_f(what, got, want->f, want->count, ATOL, RTOL) != 0) {
    snprintf(why, whylen, "%s differs (see above)", what);
    return R_FAIL;
  }
  return R_PASS;
}

/* ---- MatMul: numpy matmul semantics ---- */
static result run_matmul(vkf_context *ctx, const onnx_case *c, char *why, size_t whylen) {
  const onnx_tensor *A = &c->inputs[0], *B = &c->inputs[1], *C = &c->outputs[0];
  /* promote 1-D operands */
  int64_t as[8], bs[8];
  int an = A->ndim, bn = B->ndim;
  memcpy(as, A->shape, sizeof(as));
  memcpy(bs, B->shape, sizeof(bs));
  if (an == 1) {
    as[1] = as[0];
    as[0] = 1;
    an = 2;
  }
  if (bn == 1) {
    bs[1] = 1;
    bn = 2;
  }
  int64_t M = as[an - 2], K = as[an - 1], N = bs[bn - 1];
  if (bs[bn - 2] != K) {
    snprintf(why, whylen, "inner dims differ");
    return R_FAIL;
  }
  /* broadcast batch dims (numpy rules, right-aligned) */
  int nb = (an > bn ? an : bn) - 2;
  int64_t batch_shape[8];
  int64_t batch = 1;
  for (int i = 0; i < nb; i++) {
    int ia = an - 2 - nb + i, ib = bn - 2 - nb + i;
    int64_t da = ia >= 0 ? as[ia] : 1, db = ib >= 0 ? bs[ib] : 1;
    batch_shape[i] = da > db ? da : db;
    batch *= batch_shape[i];
  }
  float *a = vkft_alloc((size_t)(batch * M * K)), *b = vkft_alloc((size_t)(batch * K * N));
  for (int64_t z = 0; z < batch; z++) {
    /* index of z in each operand's own batch dims */
    int64_t rem = z, za = 0, zb = 0, mula = 1, mulb = 1;
    for (int i = nb - 1; i >= 0; i--) {
      int64_t idx = rem % batch_shape[i];
      rem /= batch_shape[i];
      int ia = an - 2 - nb + i, ib = bn - 2 - nb + i;
      if (ia >= 0) {
        za += (as[ia] == 1 ? 0 : idx) * mula;
        mula *= as[ia];
      }
      if (ib >= 0) {
        zb += (bs[ib] == 1 ? 0 : idx) * mulb;
        mulb *= bs[ib];
      }
    }
    memcpy(a + z * M * K, A->f + za * M * K, (size_t)(M * K) * sizeof(float));
    memcpy(b + z * K * N, B->f + zb * K * N, (size_t)(K * N) * sizeof(float));
  }
  int64_t sa[3] = {batch, M, K}, sb[3] = {batch, K, N}, sc[3] = {batch, M, N};
  vkf_tensor ta = vkft_tensor_from(ctx, 3, sa, a), tb = vkft_tensor_from(ctx, 3, sb, b);
  vkf_tensor tc = vkft_tensor(ctx, 3, sc);
  VKFT_OK(vkf_matmul(ctx, tc, ta, tb, VKF_NO_TENSOR, 0));
  size_t n = (size_t)(batch * M * N);
  float *got = vkft_alloc(n);
  vkft_read(ctx, tc, got, n);
  result r = n == C->count ? compare_output("c", got, C, why, whylen) : R_FAIL;
  if (n != C->count)
    snprintf(why, whylen, "output has %zu elements, expected %zu", n, C->count);
  vkf_tensor_destroy(ctx, ta);
  vkf_tensor_destroy(ctx, tb);
  vkf_tensor_destroy(ctx, tc);
  free(a);
  free(b);
  free(got);
  return r;
}

/* Moves axis `axis` of x (shape) last: [P, A, Q] -> [P, Q, A]; inverse with
 * back = true. */
static void move_axis_last(const float *x, float *y, const int64_t *shape, int ndim, int axis,
                           bool back) {
  int64_t P = 1, A = shape[axis], Q = 1;
  for (int i = 0; i < axis; i++)
    P *= shape[i];
  for (int i = axis + 1; i < ndim; i++)
    Q *= shape[i];
  for (int64_t p = 0; p < P; p++)
    for (int64_t a = 0; a < A; a++)
      for (int64_t q = 0; q < Q; q++) {
        int64_t src = (p * A + a) * Q + q, dst = (p * Q + q) * A + a;
        if (back)
          y[src] = x[dst];
        else
          y[dst] = x[src];
      }
}

/* ---- Softmax (13): one axis; non-last axes moved last on the host ---- */
static result run_softmax(vkf_context *ctx, const onnx_case *c, char *why, size_t whylen) {
  const onnx_tensor *X = &c->inputs[0], *Y = &c->outputs[0];
  int axis = (int)onnx_attr_int(c, "axis", -1);
  if (axis < 0)
    axis += X->ndim;
  float *xt = vkft_alloc(X->count), *yt = vkft_alloc(X->count), *y = vkft_alloc(X->count);
  move_axis_last(X->f, xt, X->shape, X->ndim, axis, false);
  int64_t shape[2] = {(int64_t)X->count / X->shape[axis], X->shape[axis]};
  vkf_tensor tx = vkft_tensor_from(ctx, 2, shape, xt), ty = vkft_tensor(ctx, 2, shape);
  VKFT_OK(vkf_softmax(ctx, ty, tx));
  vkft_read(ctx, ty, yt, X->count);
  move_axis_last(yt, y, X->shape, X->ndim, axis, true);
  result r = compare_output("y", y, Y, why, whylen);
  vkf_tensor_destroy(ctx, tx);
  vkf_tensor_destroy(ctx, ty);
  free(xt);
  free(yt);
  free(y);
  return r;
}

static const struct {
  const char *op;
  runner_fn fn;
} runners[] = {
    {"MatMul", run_matmul},
    {"Softmax", run_softmax},
};

static runner_fn find_runner(const char *op) {
  for (size_t i = 0; i < VKFT_ARRAY_LEN(runners); i++)
    if (!strcmp(runners[i].op, op))
      return runners[i].fn;
  return NULL;
}

static const char *conformance_dir(void) {
  const char *d = getenv("VKF_CONFORMANCE_DIR");
  return d && *d ? d : "../shared/conformance/onnx";
}

static void run_backend(vkf_context *ctx, const char *backend) {
  char **names;
  size_t n = onnx_list_cases(conformance_dir(), &names);
  unsigned pass = 0, fail = 0, skip = 0;
  for (size_t i = 0; i < n; i++) {
    onnx_case c;
    char err[512] = "", why[512] = "";
    if (!onnx_case_load(conformance_dir(), names[i], &c, err, sizeof(err))) {
      fprintf(stderr, "FAIL %-60s %s: cannot load: %s\n", names[i], backend, err);
      fail++;
      continue;
    }
    bool only_missing = g_filter && !strcmp(g_filter, "--unimplemented");
    if (g_filter &&
        (only_missing ? find_runner(c.op_type) != NULL : strcmp(c.op_type, g_filter) != 0)) {
      onnx_case_free(&c);
      continue;
    }
    runner_fn fn = find_runner(c.op_type);
    result r = fn ? fn(ctx, &c, why, sizeof(why)) : R_SKIP;
    if (!fn)
      snprintf(why, sizeof(why), "no vkformer op implements %s%s%s", c.domain, *c.domain ? "." : "",
               c.op_type);
    const char *tag = r == R_PASS ? "pass" : r == R_FAIL ? "FAIL" : "skip";
    fprintf(stderr, "%s %-60s %s%s%s\n", tag, names[i], backend, *why ? ": " : "", why);
    pass += r == R_PASS;
    fail += r == R_FAIL;
    skip += r == R_SKIP;
    onnx_case_free(&c);
  }
  onnx_free_names(names, n);
  fprintf(stderr, "conformance %s%s%s: %u passed, %u failed, %u skipped\n", backend,
          g_filter ? " " : "", g_filter ? g_filter : "", pass, fail, skip);
  assert_int_equal(fail, 0);
  if (!g_filter || strcmp(g_filter, "--unimplemented") != 0)
    assert_true(pass > 0);
}

static void require_vectors(void) {
  char **names;
  size_t n = onnx_list_cases(conformance_dir(), &names);
  onnx_free_names(names, n);
  if (n == 0) {
    const char *req = getenv("VKF_TEST_REQUIRE_CONFORMANCE");
    if (req && !strcmp(req, "1"))
      fail_msg("no conformance vectors in %s", conformance_dir());
    fprintf(stderr,
            "SKIP: ONNX conformance vectors not found in %s (set VKF_CONFORMANCE_DIR); "
            "these tests did not run\n",
            conformance_dir());
    skip();
  }
}

static void test_conformance_cpu(void **state) {
  (void)state;
  require_vectors();
  vkf_context *cpu = vkft_cpu();
  run_backend(cpu, "cpu");
  vkft_destroy(cpu);
}

static void test_conformance_vulkan(void **state) {
  (void)state;
  require_vectors();
  vkf_context *vk = vkft_vulkan();
  run_backend(vk, "vulkan");
  vkft_destroy(vk);
}

int main(int argc, char **argv) {
  g_filter = argc > 1 ? argv[1] : NULL;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conformance_cpu),
      cmocka_unit_test(test_conformance_vulkan),
  };
  return cmocka_run_group_tests_name("conformance", tests, NULL, NULL);
}
