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

/* Product of dims [from, to). */
static int64_t prod(const int64_t *shape, int from, int to) {
  int64_t n = 1;
  for (int i = from; i < to; i++)
    n *= shape[i];
  return n;
}

static vkf_tensor tensor_of(vkf_context *ctx, const float *data, int64_t rows, int64_t cols) {
  int64_t s[2] = {rows, cols};
  return data ? vkft_tensor_from(ctx, 2, s, data) : vkft_tensor(ctx, 2, s);
}

static vkf_tensor vec_of(vkf_context *ctx, const float *data, int64_t n) {
  int64_t s[1] = {n};
  return data ? vkft_tensor_from(ctx, 1, s, data) : vkft_tensor(ctx, 1, s);
}

static result read_compare(vkf_context *ctx, vkf_tensor t, const onnx_tensor *want,
                           const char *what, char *why, size_t whylen) {
  float *got = vkft_alloc(want->count);
  vkft_read(ctx, t, got, want->count);
  result r = compare_output(what, got, want, why, whylen);
  free(got);
  return r;
}

/* ---- LayerNormalization (17) / RMSNormalization (23): the trailing axes
 * [axis, rank) flattened into the normalised dimension (views on the host
 * side are just the shape we create) ---- */
static result run_norm(vkf_context *ctx, const onnx_case *c, char *why, size_t whylen, bool rms) {
  const onnx_tensor *X = &c->inputs[0], *W = &c->inputs[1];
  const onnx_tensor *B = !rms && c->n_inputs > 2 && c->inputs[2].present ? &c->inputs[2] : NULL;
  int axis = (int)onnx_attr_int(c, "axis", -1);
  if (axis < 0)
    axis += X->ndim;
  float eps = onnx_attr_float(c, "epsilon", 1e-5f);
  int64_t rows = prod(X->shape, 0, axis), cols = prod(X->shape, axis, X->ndim);
  vkf_tensor tx = tensor_of(ctx, X->f, rows, cols), tw = vec_of(ctx, W->f, cols);
  vkf_tensor tb = B ? vec_of(ctx, B->f, cols) : VKF_NO_TENSOR,
             ty = tensor_of(ctx, NULL, rows, cols);
  vkf_tensor tm = vec_of(ctx, NULL, rows), tr = vec_of(ctx, NULL, rows);
  if (rms)
    VKFT_OK(vkf_rmsnorm_forward(ctx, ty, tr, tx, tw, eps));
  else
    VKFT_OK(vkf_layernorm_forward(ctx, ty, tm, tr, tx, tw, tb, eps));
  result r = read_compare(ctx, ty, &c->outputs[0], "Y", why, whylen);
  if (!rms && r == R_PASS && c->n_outputs > 1 && c->outputs[1].present)
    r = read_compare(ctx, tm, &c->outputs[1], "Mean", why, whylen);
  if (!rms && r == R_PASS && c->n_outputs > 2 && c->outputs[2].present)
    r = read_compare(ctx, tr, &c->outputs[2], "InvStdDev", why, whylen);
  vkf_tensor all[] = {tx, tw, tb, ty, tm, tr};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    if (all[i].id)
      vkf_tensor_destroy(ctx, all[i]);
  return r;
}

static result run_layernorm(vkf_context *ctx, const onnx_case *c, char *why, size_t whylen) {
  return run_norm(ctx, c, why, whylen, false);
}

static result run_rmsnorm(vkf_context *ctx, const onnx_case *c, char *why, size_t whylen) {
  return run_norm(ctx, c, why, whylen, true);
}

/* ---- Gelu (20): approximate "none" (erf) or "tanh" ---- */
static result run_gelu(vkf_context *ctx, const onnx_case *c, char *why, size_t whylen) {
  const onnx_tensor *X = &c->inputs[0];
  const char *approx = onnx_attr_string(c, "approximate", "none");
  vkf_gelu_approx mode = !strcmp(approx, "tanh") ? VKF_GELU_TANH : VKF_GELU_ERF;
  if (strcmp(approx, "tanh") && strcmp(approx, "none")) {
    snprintf(why, whylen, "unknown approximate=\"%s\"", approx);
    return R_FAIL;
  }
  vkf_tensor tx = vec_of(ctx, X->f, (int64_t)X->count), ty = vec_of(ctx, NULL, (int64_t)X->count);
  VKFT_OK(vkf_gelu_forward(ctx, ty, tx, mode));
  result r = read_compare(ctx, ty, &c->outputs[0], "y", why, whylen);
  vkf_tensor_destroy(ctx, tx);
  vkf_tensor_destroy(ctx, ty);
  return r;
}

/* int64 ids (already range-checked by the case) as an i32 tensor */
static vkf_tensor i32_tensor(vkf_context *ctx, const onnx_tensor *t, uint32_t ndim,
                             const int64_t *shape) {
  int32_t *v = malloc(t->count * sizeof(int32_t));
  assert_non_null(v);
  for (size_t i = 0; i < t->count; i++)
    v[i] = (int32_t)t->i[i];
  vkf_tensor out;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, ndim, shape, &out));
  VKFT_OK(vkf_tensor_write(ctx, out, v, t->count * sizeof(int32_t)));
  free(v);
  return out;
}

/* ---- RotaryEmbedding (23): 4-D [B, H, S, D] (VKF_ROPE_HEADS_FIRST) or 3-D
 * [B, S, H*D] (a [B, S, H, D] shape of the same data); caches by position
 * ids ([P, rd/2]) or by (b, s) ([B, S, rd/2]) ---- */
static result run_rope(vkf_context *ctx, const onnx_case *c, char *why, size_t whylen) {
  const onnx_tensor *X = &c->inputs[0], *Cs = &c->inputs[1], *Sn = &c->inputs[2];
  const onnx_tensor *ids = c->n_inputs > 3 && c->inputs[3].present ? &c->inputs[3] : NULL;
  int64_t shape[4];
  vkf_rope_desc d = {0};
  if (X->ndim == 4) {
    memcpy(shape, X->shape, sizeof(shape));
    d.flags |= VKF_ROPE_HEADS_FIRST;
  } else {
    int64_t H = onnx_attr_int(c, "num_heads", 0);
    if (H <= 0 || X->shape[2] % H) {
      snprintf(why, whylen, "3-D input needs num_heads");
      return R_FAIL;
    }
    shape[0] = X->shape[0];
    shape[1] = X->shape[1];
    shape[2] = H;
    shape[3] = X->shape[2] / H;
  }
  if (onnx_attr_int(c, "interleaved", 0))
    d.flags |= VKF_ROPE_INTERLEAVED;
  d.rotary_dim = (uint32_t)onnx_attr_int(c, "rotary_embedding_dim", 0);
  vkf_tensor tx = vkft_tensor_from(ctx, 4, shape, X->f), ty = vkft_tensor(ctx, 4, shape);
  d.cos_cache = vkft_tensor_from(ctx, (uint32_t)Cs->ndim, Cs->shape, Cs->f);
  d.sin_cache = vkft_tensor_from(ctx, (uint32_t)Sn->ndim, Sn->shape, Sn->f);
  if (ids)
    d.position_ids = i32_tensor(ctx, ids, (uint32_t)ids->ndim, ids->shape);
  VKFT_OK(vkf_rope(ctx, ty, tx, &d));
  result r = read_compare(ctx, ty, &c->outputs[0], "output", why, whylen);
  vkf_tensor all[] = {tx, ty, d.cos_cache, d.sin_cache, d.position_ids};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    if (all[i].id)
      vkf_tensor_destroy(ctx, all[i]);
  return r;
}

/* ---- SoftmaxCrossEntropyLoss (13): scores [N, C, d...] with classes on
 * axis 1 (more than 4 dims: [N, C, prod(d)]); labels int64 ---- */
static result run_sce(vkf_context *ctx, const onnx_case *c, char *why, size_t whylen) {
  const onnx_tensor *S = &c->inputs[0], *L = &c->inputs[1];
  const onnx_tensor *Wt = c->n_inputs > 2 && c->inputs[2].present ? &c->inputs[2] : NULL;
  const char *red = onnx_attr_string(c, "reduction", "mean");
  vkf_reduction reduction = !strcmp(red, "sum")    ? VKF_REDUCTION_SUM
                            : !strcmp(red, "none") ? VKF_REDUCTION_NONE
                                                   : VKF_REDUCTION_MEAN;
  const onnx_attr *ii = onnx_attr_get(c, "ignore_index");
  int32_t ignore = ii ? (int32_t)ii->i : VKF_NO_IGNORE_INDEX;
  int64_t sshape[4], lshape[3];
  uint32_t sn = (uint32_t)S->ndim, ln = (uint32_t)L->ndim;
  if (S->ndim > 4) { /* [N, C, d1..dk] -> [N, C, prod d] */
    sshape[0] = S->shape[0];
    sshape[1] = S->shape[1];
    sshape[2] = prod(S->shape, 2, S->ndim);
    sn = 3;
    lshape[0] = L->shape[0];
    lshape[1] = prod(L->shape, 1, L->ndim);
    ln = 2;
  } else {
    memcpy(sshape, S->shape, sizeof(int64_t) * (size_t)S->ndim);
    memcpy(lshape, L->shape, sizeof(int64_t) * (size_t)L->ndim);
  }
  vkf_tensor ts = vkft_tensor_from(ctx, sn, sshape, S->f);
  vkf_tensor tl = i32_tensor(ctx, L, ln, lshape);
  vkf_tensor tw = Wt ? vec_of(ctx, Wt->f, (int64_t)Wt->count) : VKF_NO_TENSOR;
  vkf_tensor losses = vkft_tensor(ctx, ln, lshape);
  vkf_tensor loss = reduction == VKF_REDUCTION_NONE ? VKF_NO_TENSOR : vec_of(ctx, NULL, 1);
  bool want_logp = c->n_outputs > 1 && c->outputs[1].present;
  vkf_tensor logp = want_logp ? vkft_tensor(ctx, sn, sshape) : VKF_NO_TENSOR;
  VKFT_OK(vkf_cross_entropy(ctx, losses, loss, logp, ts, tl, tw, 1, ignore, reduction));
  result r = read_compare(ctx, reduction == VKF_REDUCTION_NONE ? losses : loss, &c->outputs[0],
                          "loss", why, whylen);
  if (r == R_PASS && want_logp)
    r = read_compare(ctx, logp, &c->outputs[1], "log_prob", why, whylen);
  vkf_tensor all[] = {ts, tl, tw, losses, loss, logp};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    if (all[i].id)
      vkf_tensor_destroy(ctx, all[i]);
  return r;
}

/* ---- Adam (ai.onnx.preview.training 1): L2 decay into the gradient, eps
 * outside the bias correction (vkf_optim_desc flags L2_DECAY | EPS_HAT |
 * EXPLICIT; no correction at T = 0); norm_coefficient_post as a scale ---- */
static result run_adam(vkf_context *ctx, const onnx_case *c, char *why, size_t whylen) {
  int n = (c->n_inputs - 2) / 4;
  float lr = c->inputs[0].f[0];
  int64_t T = c->inputs[1].i[0];
  float post = onnx_attr_float(c, "norm_coefficient_post", 0.0f);
  vkf_optim_desc d = {.kind = VKF_OPTIM_ADAMW,
                      .flags = VKF_OPTIM_L2_DECAY | VKF_OPTIM_EPS_HAT | VKF_OPTIM_EXPLICIT |
                               (T == 0 ? VKF_OPTIM_NO_BIAS_CORRECTION : 0),
                      .step = (uint64_t)T,
                      .lr = lr,
                      .beta1 = onnx_attr_float(c, "alpha", 0.9f),
                      .beta2 = onnx_attr_float(c, "beta", 0.999f),
                      .eps = onnx_attr_float(c, "epsilon", 0.0f),
                      .weight_decay = onnx_attr_float(c, "norm_coefficient", 0.0f)};
  result r = R_PASS;
  for (int k = 0; k < n && r == R_PASS; k++) {
    const onnx_tensor *X = &c->inputs[2 + k], *G = &c->inputs[2 + n + k],
                      *V = &c->inputs[2 + 2 * n + k], *H = &c->inputs[2 + 3 * n + k];
    int64_t cnt = (int64_t)X->count;
    vkf_tensor tx = vec_of(ctx, X->f, cnt), tg = vec_of(ctx, G->f, cnt);
    vkf_tensor tv = vec_of(ctx, V->f, cnt), th = vec_of(ctx, H->f, cnt);
    VKFT_OK(vkf_optim_step(ctx, tx, tg, tv, th, VKF_NO_TENSOR, VKF_NO_TENSOR, &d));
    if (post != 0)
      VKFT_OK(vkf_scale(ctx, tx, tx, 1.0f - post));
    r = read_compare(ctx, tx, &c->outputs[k], "X_new", why, whylen);
    if (r == R_PASS)
      r = read_compare(ctx, tv, &c->outputs[n + k], "V_new", why, whylen);
    if (r == R_PASS)
      r = read_compare(ctx, th, &c->outputs[2 * n + k], "H_new", why, whylen);
    vkf_tensor all[] = {tx, tg, tv, th};
    for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
      vkf_tensor_destroy(ctx, all[i]);
  }
  return r;
}

/* Attention is run by test_attn_onnx (its own executable, with the host-side
 * work the 64 cases need: masks, past/present concatenation, fp16). */
static result run_attention_elsewhere(vkf_context *ctx, const onnx_case *c, char *why,
                                      size_t whylen) {
  (void)ctx;
  (void)c;
  snprintf(why, whylen, "run by test_attn_onnx");
  return R_SKIP;
}

static const struct {
  const char *op;
  runner_fn fn;
} runners[] = {
    {"MatMul", run_matmul},
    {"Softmax", run_softmax},
    {"LayerNormalization", run_layernorm},
    {"RMSNormalization", run_rmsnorm},
    {"Gelu", run_gelu},
    {"RotaryEmbedding", run_rope},
    {"SoftmaxCrossEntropyLoss", run_sce},
    {"Adam", run_adam},
    {"Attention", run_attention_elsewhere},
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
  if (!g_filter || (strcmp(g_filter, "--unimplemented") != 0 && strcmp(g_filter, "Attention") != 0))
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
