/* Graph op builders and their backward rules. */
#include "graph.h"

#include <stdio.h>
#include <string.h>

static bool ok(vkf_graph *g, vkf_node a) {
  return g->status == VKF_OK && a;
}

static vkf_gnode *N(vkf_graph *g, vkf_node n) {
  return vkf_gn(g, n);
}

/* Rows and last dimension of a node seen as a matrix. */
static uint32_t cols_of(vkf_graph *g, vkf_node n) {
  return (uint32_t)N(g, n)->shape[N(g, n)->ndim - 1];
}
static uint32_t rows_of(vkf_graph *g, vkf_node n) {
  return (uint32_t)(N(g, n)->elements / cols_of(g, n));
}

static bool needs_grad(vkf_graph *g, vkf_node n) {
  return n && N(g, n)->requires_grad;
}

/* ---- matmul steps ---- */
typedef struct mm_operand {
  vkf_node node;
  uint64_t offset, extent;
} mm_operand;

/* c (+)= op(a) . op(b) (+ bias): all dims explicit. */
static void matmul_step(vkf_graph *g, mm_operand c, mm_operand a, mm_operand b, mm_operand bias,
                        uint32_t M, uint32_t Nn, uint32_t K, uint32_t lda, uint32_t ldb,
                        uint32_t ldc, uint32_t flags) {
  vkf_gstep s = {.kind = VKF_OP_MATMUL, .n = 4, .writes = 1, .reads = 6};
  s.t[0] = (vkf_goperand){c.node, c.offset, c.extent};
  s.t[1] = (vkf_goperand){a.node, a.offset, a.extent};
  s.t[2] = (vkf_goperand){b.node, b.offset, b.extent};
  if (bias.node) {
    s.t[3] = (vkf_goperand){bias.node, bias.offset, bias.extent};
    s.reads |= 8;
    flags |= VKF_MM_BIAS;
  }
  if (flags & VKF_MM_BETA)
    s.reads |= 1;
  s.p.matmul = (vkf_matmul_params){.M = M,
                                   .N = Nn,
                                   .K = K,
                                   .batch = 1,
                                   .lda = lda,
                                   .ldb = ldb,
                                   .ldc = ldc,
                                   .flags = flags,
                                   .alpha = 1.0f,
                                   .beta = (flags & VKF_MM_BETA) ? 1.0f : 0.0f};
  vkf_g_step(g, &s);
}

static mm_operand whole(vkf_node n) {
  return (mm_operand){n, 0, 0};
}

/* extent of rows x cols at leading dimension ld, from a column offset */
static mm_operand sub(vkf_node n, uint32_t col0, uint32_t rows, uint32_t cols, uint32_t ld) {
  return (mm_operand){n, 4ull * col0, 4ull * ((uint64_t)(rows - 1) * ld + cols)};
}

/* Column sums dst[m] += sum_r src[r, m] (bias gradients), as a matmul with a
 * ones vector until a dedicated reduction lands. */
static void colsum_acc(vkf_graph *g, mm_operand dst, vkf_node src, uint32_t rows, uint32_t m,
                       uint32_t ld);

/* ---- linear ---- */
enum { LIN_TRANS_W = 1, LIN_COLS = 2 };

static void linear_backward(vkf_graph *g, const vkf_tape *t) {
  vkf_node x = t->in[0], w = t->in[1], b = t->in[2], y = t->out[0];
  vkf_node dy = vkf_g_grad_if(g, y);
  const vkf_matmul_params *p = &t->p.matmul; /* forward: y[rows, m] = x[rows, k] . W */
  uint32_t rows = p->M, m = p->N, k = p->K, ldw = p->ldb;
  bool tw = t->flags & LIN_TRANS_W;
  uint32_t col0 = (uint32_t)t->f[0];
  if (needs_grad(g, x)) {
    vkf_node dx = vkf_g_grad(g, x);
    /* dx[rows, k] += dy[rows, m] . W^T */
    mm_operand wop = tw ? (mm_operand){w, 0, 0} : sub(w, col0, k, m, ldw);
    matmul_step(g, whole(dx), whole(dy), wop, (mm_operand){0}, rows, k, m, m, ldw, k,
                VKF_MM_BETA | (tw ? 0 : VKF_MM_TRANS_B));
  }
  if (needs_grad(g, w)) {
    vkf_node dw = vkf_g_grad(g, w);
    if (tw) /* dW[m, k] += dy^T . x */
      matmul_step(g, whole(dw), whole(dy), whole(x), (mm_operand){0}, m, k, rows, m, k, k,
                  VKF_MM_BETA | VKF_MM_TRANS_A);
    else /* dW[k, col0:col0+m] += x^T . dy */
      matmul_step(g, sub(dw, col0, k, m, ldw), whole(x), whole(dy), (mm_operand){0}, k, m, rows, k,
                  m, ldw, VKF_MM_BETA | VKF_MM_TRANS_A);
  }
  if (b && needs_grad(g, b)) {
    vkf_node db = vkf_g_grad(g, b);
    colsum_acc(g, (mm_operand){db, 4ull * col0, 4ull * m}, dy, rows, m, m);
  }
}

static vkf_node linear(vkf_graph *g, vkf_node x, vkf_node w, vkf_node b, bool trans_w,
                       uint32_t col0, uint32_t m_cols) {
  if (!ok(g, x) || !ok(g, w))
    return VKF_NODE_NONE;
  vkf_gnode *nx = N(g, x), *nw = N(g, w);
  if (nw->ndim != 2)
    return vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "linear: weight %s is not 2-D", nw->name),
           VKF_NODE_NONE;
  uint32_t k = cols_of(g, x), rows = rows_of(g, x);
  uint32_t wk = (uint32_t)(trans_w ? nw->shape[1] : nw->shape[0]);
  uint32_t ld = (uint32_t)nw->shape[1];
  uint32_t m = m_cols ? m_cols : (uint32_t)(trans_w ? nw->shape[0] : nw->shape[1]);
  if (wk != k || (m_cols && col0 + m_cols > ld))
    return vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "linear: %s [.., %u] against weight %s",
                          nx->name, k, nw->name),
           VKF_NODE_NONE;
  if (b && N(g, b)->elements != (m_cols ? ld : m))
    return vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "linear: bias %s has %llu elements",
                          N(g, b)->name, (unsigned long long)N(g, b)->elements),
           VKF_NODE_NONE;
  int64_t shape[VKF_MAX_DIMS];
  memcpy(shape, nx->shape, sizeof(shape));
  shape[nx->ndim - 1] = m;
  char name[96];
  snprintf(name, sizeof(name), "%.60s@%.30s", nx->name, nw->name);
  vkf_node y = vkf_g_act(g, name, VKF_DTYPE_F32, nx->ndim, shape);
  if (!y)
    return y;
  mm_operand wop = trans_w ? whole(w) : sub(w, col0, k, m, ld);
  mm_operand bop = b ? (mm_operand){b, 4ull * col0, 4ull * m} : (mm_operand){0};
  matmul_step(g, whole(y), whole(x), wop, bop, rows, m, k, k, trans_w ? k : ld, m,
              trans_w ? VKF_MM_TRANS_B : 0);
  vkf_tape t = {
      .backward = linear_backward, .in = {x, w, b}, .out = {y}, .flags = trans_w ? LIN_TRANS_W : 0};
  t.p.matmul = (vkf_matmul_params){.M = rows, .N = m, .K = k, .ldb = trans_w ? k : ld};
  t.f[0] = (float)col0;
  vkf_g_tape(g, &t);
  return y;
}

vkf_node vkf_g_linear(vkf_graph *g, vkf_node x, vkf_node w, vkf_node b, bool trans_w) {
  return linear(g, x, w, b, trans_w, 0, 0);
}

vkf_node vkf_g_linear_cols(vkf_graph *g, vkf_node x, vkf_node w, vkf_node b, uint32_t col0,
                           uint32_t m) {
  if (!m)
    return vkf_graph_fail(g, VKF_ERROR_INVALID_ARGUMENT, "linear_cols: zero columns"),
           VKF_NODE_NONE;
  return linear(g, x, w, b, false, col0, m);
}

static void colsum_acc(vkf_graph *g, mm_operand dst, vkf_node src, uint32_t rows, uint32_t m,
                       uint32_t ld) {
  /* dst[1, m] += ones[1, rows] . src[rows, m] */
  char name[64];
  snprintf(name, sizeof(name), "ones%u", rows);
  int64_t s = rows;
  vkf_node ones = vkf_g_act(g, name, VKF_DTYPE_F32, 1, &s);
  vkf_g_fill(g, ones, 1.0f);
  matmul_step(g, dst, whole(ones), whole(src), (mm_operand){0}, 1, m, rows, rows, ld, m,
              VKF_MM_BETA);
}

/* ---- elementwise ---- */
static bool same_shape(vkf_graph *g, vkf_node a, vkf_node b) {
  vkf_gnode *x = N(g, a), *y = N(g, b);
  if (x->ndim != y->ndim)
    return false;
  for (uint32_t i = 0; i < x->ndim; i++)
    if (x->shape[i] != y->shape[i])
      return false;
  return true;
}

static void binary_step(vkf_graph *g, vkf_op_kind kind, vkf_node c, vkf_node a, vkf_node b) {
  vkf_gstep s = {.kind = kind, .n = 3, .writes = 1, .reads = 6};
  s.t[0].node = c;
  s.t[1].node = a;
  s.t[2].node = b;
  s.p.binary = (vkf_binary_params){(uint32_t)N(g, a)->elements, (uint32_t)N(g, b)->elements};
  vkf_g_step(g, &s);
}

static void scale_step(vkf_graph *g, vkf_node c, vkf_node a, float sc) {
  vkf_gstep s = {.kind = VKF_OP_SCALE, .n = 2, .writes = 1, .reads = 2};
  s.t[0].node = c;
  s.t[1].node = a;
  s.p.scale = (vkf_scale_params){(uint32_t)N(g, a)->elements, sc};
  vkf_g_step(g, &s);
}

/* dst += src (same shape), or for a row-broadcast dst: column sums */
static void accumulate(vkf_graph *g, vkf_node dst, vkf_node src) {
  if (N(g, dst)->elements == N(g, src)->elements)
    binary_step(g, VKF_OP_ADD, dst, dst, src);
  else
    colsum_acc(g, whole(dst), src, rows_of(g, src), cols_of(g, src), cols_of(g, src));
}

static vkf_node tmp_like(vkf_graph *g, vkf_node like, const char *what) {
  char name[96];
  snprintf(name, sizeof(name), "%.80s.%s", N(g, like)->name, what);
  return vkf_g_act(g, name, VKF_DTYPE_F32, N(g, like)->ndim, N(g, like)->shape);
}

static void add_backward(vkf_graph *g, const vkf_tape *t) {
  vkf_node dc = vkf_g_grad_if(g, t->out[0]);
  for (int i = 0; i < 2; i++)
    if (needs_grad(g, t->in[i]))
      accumulate(g, vkf_g_grad(g, t->in[i]), dc);
}

static void mul_backward(vkf_graph *g, const vkf_tape *t) {
  vkf_node dc = vkf_g_grad_if(g, t->out[0]);
  for (int i = 0; i < 2; i++) {
    if (!needs_grad(g, t->in[i]))
      continue;
    /* d(in[i]) += dc * in[1-i] (broadcast b: column sums of dc * a) */
    vkf_node other = t->in[1 - i];
    vkf_node prod = tmp_like(g, dc, "prod");
    binary_step(g, VKF_OP_MUL, prod, dc, other); /* a broadcast b multiplies row-wise */
    accumulate(g, vkf_g_grad(g, t->in[i]), prod);
  }
}

static vkf_node binary(vkf_graph *g, vkf_op_kind kind, vkf_backward_fn bwd, vkf_node a,
                       vkf_node b) {
  if (!ok(g, a) || !ok(g, b))
    return VKF_NODE_NONE;
  bool row = N(g, b)->ndim == 1 && N(g, b)->shape[0] == cols_of(g, a);
  if (!same_shape(g, a, b) && !row)
    return vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "%s: %s and %s differ in shape",
                          vkf_op_name(kind), N(g, a)->name, N(g, b)->name),
           VKF_NODE_NONE;
  vkf_node c = tmp_like(g, a, vkf_op_name(kind));
  if (!c)
    return c;
  binary_step(g, kind, c, a, b);
  vkf_tape t = {.backward = bwd, .in = {a, b}, .out = {c}};
  vkf_g_tape(g, &t);
  return c;
}

vkf_node vkf_g_add(vkf_graph *g, vkf_node a, vkf_node b) {
  return binary(g, VKF_OP_ADD, add_backward, a, b);
}

vkf_node vkf_g_mul(vkf_graph *g, vkf_node a, vkf_node b) {
  return binary(g, VKF_OP_MUL, mul_backward, a, b);
}

static void scale_backward(vkf_graph *g, const vkf_tape *t) {
  if (!needs_grad(g, t->in[0]))
    return;
  vkf_node dc = vkf_g_grad_if(g, t->out[0]);
  vkf_node tmp = tmp_like(g, dc, "scaled");
  scale_step(g, tmp, dc, t->f[0]);
  accumulate(g, vkf_g_grad(g, t->in[0]), tmp);
}

vkf_node vkf_g_scale(vkf_graph *g, vkf_node a, float sc) {
  if (!ok(g, a))
    return VKF_NODE_NONE;
  vkf_node c = tmp_like(g, a, "scale");
  if (!c)
    return c;
  scale_step(g, c, a, sc);
  vkf_tape t = {.backward = scale_backward, .in = {a}, .out = {c}, .f = {sc}};
  vkf_g_tape(g, &t);
  return c;
}
