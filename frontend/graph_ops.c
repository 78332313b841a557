/* Graph op builders and their backward rules. */
#include "graph.h"

#include "attention_linear.h"
#include "context.h"

#include <math.h>
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

/* Column sums dst[m] += sum_r src[r, m] (bias gradients). */
static void colsum_acc(vkf_graph *g, mm_operand dst, vkf_node src, uint32_t rows, uint32_t m);

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
    bool first;
    vkf_node dx = vkf_g_grad_overwrite(g, x, &first);
    /* dx[rows, k] (+)= dy[rows, m] . W^T (the first contribution writes) */
    mm_operand wop = tw ? (mm_operand){w, 0, 0} : sub(w, col0, k, m, ldw);
    matmul_step(g, whole(dx), whole(dy), wop, (mm_operand){0}, rows, k, m, m, ldw, k,
                (first ? 0 : VKF_MM_BETA) | (tw ? 0 : VKF_MM_TRANS_B));
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
    colsum_acc(g, (mm_operand){db, 4ull * col0, 4ull * m}, dy, rows, m);
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

static void colsum_acc(vkf_graph *g, mm_operand dst, vkf_node src, uint32_t rows, uint32_t m) {
  vkf_gstep s = {.kind = VKF_OP_BIAS_BACKWARD, .n = 2, .writes = 1, .reads = 3};
  s.t[0] = (vkf_goperand){dst.node, dst.offset, dst.extent};
  s.t[1].node = src;
  s.p.bias_backward = (vkf_bias_backward_params){.rows = rows, .N = m};
  vkf_g_step(g, &s);
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
    colsum_acc(g, whole(dst), src, rows_of(g, src), cols_of(g, src));
}

static vkf_node tmp_like(vkf_graph *g, vkf_node like, const char *what) {
  char name[96];
  snprintf(name, sizeof(name), "%.80s.%s", N(g, like)->name, what);
  return vkf_g_act(g, name, VKF_DTYPE_F32, N(g, like)->ndim, N(g, like)->shape);
}

/* d(in) += dc for both inputs. The first input without a gradient yet takes
 * dc itself as its gradient (no pass at all: in a residual stream the
 * gradient is updated in place, layer after layer); the other one, when its
 * gradient is new, gets a copy; otherwise dc is added. */
static void add_backward(vkf_graph *g, const vkf_tape *t) {
  vkf_node dc = vkf_g_grad_if(g, t->out[0]);
  bool aliased = false;
  for (int i = 0; i < 2; i++) {
    vkf_node x = t->in[i];
    if (!needs_grad(g, x))
      continue;
    if (N(g, x)->elements == N(g, dc)->elements) {
      if (!aliased && vkf_g_grad_alias(g, x, dc)) {
        aliased = true;
        continue;
      }
      bool first;
      vkf_node dx = vkf_g_grad_overwrite(g, x, &first);
      if (first)
        scale_step(g, dx, dc, 1.0f); /* a copy */
      else
        binary_step(g, VKF_OP_ADD, dx, dx, dc);
      continue;
    }
    accumulate(g, vkf_g_grad(g, x), dc);
  }
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

/* ------------------------------------------------------------------------ */
/* Transformer ops                                                          */
/* ------------------------------------------------------------------------ */
static vkf_node act_like(vkf_graph *g, vkf_node like, const char *what, uint32_t ndim,
                         const int64_t *shape) {
  char name[96];
  snprintf(name, sizeof(name), "%.80s.%s", N(g, like)->name, what);
  return vkf_g_act(g, name, VKF_DTYPE_F32, ndim, shape);
}

/* ---- embedding ---- */
uint32_t vkf_g_embedding_cap(uint32_t tokens, uint32_t vocab) {
  return tokens < vocab ? tokens : vocab;
}

uint64_t vkf_g_embedding_index_len(uint32_t tokens, uint32_t vocab) {
  uint64_t cap = vkf_g_embedding_cap(tokens, vocab);
  return cap + 1 + tokens + cap;
}

static void embedding_backward(vkf_graph *g, const vkf_tape *t) {
  vkf_node tokens = t->in[0], wte = t->in[1], wpe = t->in[2], index = t->in[3];
  vkf_node dout = vkf_g_grad_if(g, t->out[0]);
  vkf_embedding_backward_params p = {.N = t->p.embedding.N,
                                     .T = t->p.embedding.T,
                                     .C = t->p.embedding.C,
                                     .U = vkf_g_embedding_cap(t->p.embedding.N, t->p.embedding.V)};
  vkf_gstep s = {.kind = VKF_OP_EMBEDDING_BACKWARD, .n = 4, .reads = 4};
  (void)tokens;
  if (needs_grad(g, wte)) {
    s.t[0].node = vkf_g_grad(g, wte);
    s.t[3].node = index;
    s.writes |= 1;
    s.reads |= 1 | 8;
  }
  if (wpe && needs_grad(g, wpe)) {
    s.t[1].node = vkf_g_grad(g, wpe);
    s.writes |= 2;
    s.reads |= 2;
  }
  if (!s.writes)
    return;
  s.t[2].node = dout;
  s.p.embedding_backward = p;
  vkf_g_step(g, &s);
}

vkf_node vkf_g_embedding(vkf_graph *g, vkf_node tokens, vkf_node wte, vkf_node wpe,
                         vkf_node index) {
  if (!ok(g, tokens) || !ok(g, wte) || !ok(g, index))
    return VKF_NODE_NONE;
  vkf_gnode *tk = N(g, tokens), *w = N(g, wte);
  uint32_t T = (uint32_t)tk->shape[tk->ndim - 1], n = (uint32_t)tk->elements;
  uint32_t V = (uint32_t)w->shape[0], C = (uint32_t)w->shape[1];
  if (tk->dtype != VKF_DTYPE_I32 || w->ndim != 2 || N(g, index)->dtype != VKF_DTYPE_I32 ||
      N(g, index)->elements < vkf_g_embedding_index_len(n, V) ||
      (wpe && (N(g, wpe)->ndim != 2 || N(g, wpe)->shape[1] != C || N(g, wpe)->shape[0] < T)))
    return vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "embedding: tokens %s, table %s", tk->name,
                          w->name),
           VKF_NODE_NONE;
  int64_t shape[2] = {n, C};
  vkf_node out = vkf_g_act(g, "embedding", VKF_DTYPE_F32, 2, shape);
  if (!out)
    return out;
  vkf_gstep s = {.kind = VKF_OP_EMBEDDING, .n = 4, .writes = 1, .reads = wpe ? 0xe : 0x6};
  s.t[0].node = out;
  s.t[1].node = tokens;
  s.t[2].node = wte;
  s.t[3].node = wpe;
  s.p.embedding = (vkf_embedding_params){.N = n, .T = T, .C = C, .V = V, .has_wpe = wpe != 0};
  vkf_g_step(g, &s);
  vkf_tape t = {.backward = embedding_backward, .in = {tokens, wte, wpe, index}, .out = {out}};
  t.p.embedding = s.p.embedding;
  vkf_g_tape(g, &t);
  return out;
}

/* ---- norms ---- */
enum { NORM_RMS = 1 };

static void norm_backward(vkf_graph *g, const vkf_tape *t) {
  bool rms = t->flags & NORM_RMS;
  vkf_node x = t->in[0], w = t->in[1], b = t->in[2];
  vkf_node mean = t->out[1], rstd = t->out[2];
  vkf_node dout = vkf_g_grad_if(g, t->out[0]);
  vkf_gstep s = {.kind = rms ? VKF_OP_RMSNORM_BACKWARD : VKF_OP_LAYERNORM_BACKWARD};
  uint32_t flags = 0, i = 0;
  vkf_node dx = needs_grad(g, x) ? vkf_g_grad(g, x) : VKF_NODE_NONE;
  vkf_node dw = needs_grad(g, w) ? vkf_g_grad(g, w) : VKF_NODE_NONE;
  vkf_node db = !rms && b && needs_grad(g, b) ? vkf_g_grad(g, b) : VKF_NODE_NONE;
  flags |= (dx ? VKF_NORM_DX : 0) | (dw ? VKF_NORM_DW : 0) | (db ? VKF_NORM_DB : 0);
  if (!flags)
    return;
  s.t[i++].node = dx;
  s.t[i++].node = dw;
  if (!rms)
    s.t[i++].node = db;
  s.writes = ((dx ? 1u : 0) | (dw ? 2u : 0) | (db ? 4u : 0));
  s.t[i++].node = dout;
  s.t[i++].node = x;
  s.t[i++].node = w;
  if (!rms)
    s.t[i++].node = mean;
  s.t[i++].node = rstd;
  s.n = i;
  s.reads = ((1u << i) - 1) & ~((1u << (rms ? 2 : 3)) - 1);
  s.reads |= s.writes;
  s.p.norm_backward = (vkf_norm_backward_params){t->p.norm.rows, t->p.norm.cols, flags};
  vkf_g_step(g, &s);
}

static vkf_node norm(vkf_graph *g, bool rms, vkf_node x, vkf_node w, vkf_node b, float eps) {
  if (!ok(g, x) || !ok(g, w))
    return VKF_NODE_NONE;
  uint32_t C = cols_of(g, x), rows = rows_of(g, x);
  if (N(g, w)->elements != C || (b && N(g, b)->elements != C))
    return vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "norm: %s against weight %s", N(g, x)->name,
                          N(g, w)->name),
           VKF_NODE_NONE;
  int64_t r = rows;
  vkf_node out = act_like(g, x, rms ? "rmsnorm" : "layernorm", N(g, x)->ndim, N(g, x)->shape);
  vkf_node mean = rms ? VKF_NODE_NONE : act_like(g, x, "mean", 1, &r);
  vkf_node rstd = act_like(g, x, "rstd", 1, &r);
  if (!out || !rstd)
    return VKF_NODE_NONE;
  vkf_gstep s = {.kind = rms ? VKF_OP_RMSNORM : VKF_OP_LAYERNORM};
  s.p.norm = (vkf_norm_params){rows, C, eps,
                               (b ? VKF_NORM_BIAS : 0) | (rms ? 0 : VKF_NORM_MEAN) | VKF_NORM_RSTD};
  if (rms) {
    s.n = 4;
    s.writes = 0x3;
    s.reads = 0xc;
    s.t[0].node = out;
    s.t[1].node = rstd;
    s.t[2].node = x;
    s.t[3].node = w;
  } else {
    s.n = 6;
    s.writes = 0x7;
    s.reads = b ? 0x38 : 0x18;
    s.t[0].node = out;
    s.t[1].node = mean;
    s.t[2].node = rstd;
    s.t[3].node = x;
    s.t[4].node = w;
    s.t[5].node = b;
  }
  vkf_g_step(g, &s);
  vkf_tape t = {.backward = norm_backward,
                .in = {x, w, b},
                .out = {out, mean, rstd},
                .flags = rms ? NORM_RMS : 0};
  t.p.norm = s.p.norm;
  vkf_g_tape(g, &t);
  return out;
}

vkf_node vkf_g_layernorm(vkf_graph *g, vkf_node x, vkf_node w, vkf_node b, float eps) {
  return norm(g, false, x, w, b, eps);
}

vkf_node vkf_g_rmsnorm(vkf_graph *g, vkf_node x, vkf_node w, float eps) {
  return norm(g, true, x, w, VKF_NODE_NONE, eps);
}

/* ---- activations ---- */
static void gelu_backward(vkf_graph *g, const vkf_tape *t) {
  if (!needs_grad(g, t->in[0]))
    return;
  vkf_gstep s = {.kind = VKF_OP_GELU_BACKWARD, .n = 3, .writes = 1, .reads = 7};
  s.t[0].node = vkf_g_grad(g, t->in[0]);
  s.t[1].node = vkf_g_grad_if(g, t->out[0]);
  s.t[2].node = t->in[0];
  s.p.act = t->p.act;
  vkf_g_step(g, &s);
}

vkf_node vkf_g_gelu(vkf_graph *g, vkf_node x) {
  if (!ok(g, x))
    return VKF_NODE_NONE;
  vkf_node out = act_like(g, x, "gelu", N(g, x)->ndim, N(g, x)->shape);
  if (!out)
    return out;
  vkf_gstep s = {.kind = VKF_OP_GELU, .n = 2, .writes = 1, .reads = 2};
  s.t[0].node = out;
  s.t[1].node = x;
  s.p.act = (vkf_act_params){(uint32_t)N(g, x)->elements, VKF_GELU_MODE_TANH};
  vkf_g_step(g, &s);
  vkf_tape t = {.backward = gelu_backward, .in = {x}, .out = {out}};
  t.p.act = s.p.act;
  vkf_g_tape(g, &t);
  return out;
}

static void swiglu_backward(vkf_graph *g, const vkf_tape *t) {
  if (!needs_grad(g, t->in[0]))
    return;
  vkf_gstep s = {.kind = VKF_OP_SWIGLU_BACKWARD, .n = 3, .writes = 1, .reads = 7};
  s.t[0].node = vkf_g_grad(g, t->in[0]);
  s.t[1].node = vkf_g_grad_if(g, t->out[0]);
  s.t[2].node = t->in[0];
  s.p.swiglu = t->p.swiglu;
  vkf_g_step(g, &s);
}

vkf_node vkf_g_swiglu(vkf_graph *g, vkf_node gate_up) {
  if (!ok(g, gate_up))
    return VKF_NODE_NONE;
  uint32_t two_f = cols_of(g, gate_up), rows = rows_of(g, gate_up);
  if (two_f % 2)
    return vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "swiglu: %s has an odd last dimension",
                          N(g, gate_up)->name),
           VKF_NODE_NONE;
  int64_t shape[2] = {rows, two_f / 2};
  vkf_node out = act_like(g, gate_up, "swiglu", 2, shape);
  if (!out)
    return out;
  vkf_gstep s = {.kind = VKF_OP_SWIGLU, .n = 2, .writes = 1, .reads = 2};
  s.t[0].node = out;
  s.t[1].node = gate_up;
  s.p.swiglu = (vkf_swiglu_params){rows, two_f / 2};
  vkf_g_step(g, &s);
  vkf_tape t = {.backward = swiglu_backward, .in = {gate_up}, .out = {out}};
  t.p.swiglu = s.p.swiglu;
  vkf_g_tape(g, &t);
  return out;
}

/* ---- rope ---- */
static void rope_backward(vkf_graph *g, const vkf_tape *t) {
  if (!needs_grad(g, t->in[0]))
    return;
  vkf_gstep s = {.kind = VKF_OP_ROPE_BACKWARD, .n = 5, .writes = 1, .reads = 3};
  s.t[0].node = vkf_g_grad(g, t->in[0]);
  s.t[1].node = vkf_g_grad_if(g, t->out[0]);
  s.p.rope = t->p.rope;
  s.p.rope.flags &= ~(uint32_t)VKF_ROPEF_INPLACE;
  vkf_g_step(g, &s);
}

vkf_node vkf_g_rope(vkf_graph *g, vkf_node x, double theta) {
  if (!ok(g, x))
    return VKF_NODE_NONE;
  vkf_gnode *n = N(g, x);
  if (n->ndim != 4 || n->shape[3] % 2)
    return vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "rope: %s must be [B, T, H, even D]",
                          n->name),
           VKF_NODE_NONE;
  uint32_t B = (uint32_t)n->shape[0], T = (uint32_t)n->shape[1], H = (uint32_t)n->shape[2],
           D = (uint32_t)n->shape[3];
  vkf_node out = act_like(g, x, "rope", 4, n->shape);
  if (!out)
    return out;
  vkf_gstep s = {.kind = VKF_OP_ROPE, .n = 5, .writes = 1, .reads = 2};
  s.t[0].node = out;
  s.t[1].node = x;
  vkf_rope_params *p = &s.p.rope;
  *p = (vkf_rope_params){
      .B = B, .T = T, .H = H, .D = D, .pairs = D / 2, .sB = T * H * D, .sT = H * D, .sH = D};
  vkf_rope_freq_fraction(theta, D, &p->freq_hi, &p->freq_lo);
  vkf_g_step(g, &s);
  vkf_tape t = {.backward = rope_backward, .in = {x}, .out = {out}};
  t.p.rope = s.p.rope;
  vkf_g_tape(g, &t);
  return out;
}

/* ---- cross-entropy ---- */
static void xent_backward(vkf_graph *g, const vkf_tape *t) {
  vkf_node logits = t->in[0], targets = t->in[1];
  if (!needs_grad(g, logits))
    return;
  vkf_gstep s = {.kind = VKF_OP_CROSS_ENTROPY_BACKWARD, .n = 5, .writes = 1, .reads = 0xf};
  s.t[0].node = vkf_g_grad(g, logits);
  s.t[1].node = vkf_g_grad_if(g, t->out[0]);
  s.t[2].node = logits;
  s.t[3].node = targets;
  s.p.cross_entropy = t->p.cross_entropy;
  s.p.cross_entropy.flags = 0;
  vkf_g_step(g, &s);
}

vkf_node vkf_g_cross_entropy(vkf_graph *g, vkf_node logits, vkf_node targets) {
  if (!ok(g, logits) || !ok(g, targets))
    return VKF_NODE_NONE;
  uint32_t V = cols_of(g, logits), rows = rows_of(g, logits);
  if (N(g, targets)->dtype != VKF_DTYPE_I32 || N(g, targets)->elements != rows)
    return vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "cross_entropy: %s against targets %s",
                          N(g, logits)->name, N(g, targets)->name),
           VKF_NODE_NONE;
  int64_t r = rows, one = 1;
  vkf_node losses = act_like(g, logits, "losses", 1, &r);
  vkf_node loss = vkf_g_act(g, "loss", VKF_DTYPE_F32, 1, &one);
  if (!losses || !loss)
    return VKF_NODE_NONE;
  vkf_gstep s = {.kind = VKF_OP_CROSS_ENTROPY, .n = 6, .writes = 3, .reads = 0x18};
  s.t[0].node = losses;
  s.t[1].node = loss;
  s.t[3].node = logits;
  s.t[4].node = targets;
  s.p.cross_entropy = (vkf_cross_entropy_params){.rows = rows,
                                                 .V = V,
                                                 .inner = 1,
                                                 .ignore_index = VKF_NO_IGNORE_INDEX,
                                                 .reduction = VKF_XENT_MEAN,
                                                 .flags = VKF_XENTF_LOSS};
  vkf_g_step(g, &s);
  vkf_tape t = {.backward = xent_backward, .in = {logits, targets}, .out = {loss, losses}};
  t.p.cross_entropy = s.p.cross_entropy;
  vkf_g_tape(g, &t);
  return loss;
}

/* ---- linear attention ---- */
static void linear_attention_backward(vkf_graph *g, const vkf_tape *t) {
  vkf_node q = t->in[0], k = t->in[1], v = t->in[2], out = t->out[0], saved = t->out[1];
  vkf_node dout = vkf_g_grad_if(g, out);
  const vkf_linear_attention_params *p = &t->p.linear_attention;
  if (!needs_grad(g, q) && !needs_grad(g, k) && !needs_grad(g, v))
    return;
  vkf_linear_attention_params pp = *p;
  vkf_lattn_layout l;
  vkf_lattn_layout_of(&pp, &l);
  int64_t n_ws = (int64_t)l.workspace;
  vkf_node ws = vkf_g_act(g, "linear_attention.workspace", VKF_DTYPE_F32, 1, &n_ws);
  /* the kernels compute all three gradients: give them all */
  vkf_node dq = vkf_g_grad(g, q), dk = vkf_g_grad(g, k), dv = vkf_g_grad(g, v);
  if (!dq || !dk || !dv) {
    vkf_graph_fail(g, VKF_ERROR_UNSUPPORTED, "linear attention backward needs dq, dk and dv");
    return;
  }
  vkf_gstep s = {.kind = VKF_OP_LINEAR_ATTENTION_BACKWARD_Q, .n = 8, .writes = 3, .reads = 0xfd};
  s.t[0].node = dq;
  s.t[1].node = ws;
  s.t[2].node = dout;
  s.t[3].node = q;
  s.t[4].node = k;
  s.t[5].node = v;
  s.t[6].node = out;
  s.t[7].node = saved;
  s.p.linear_attention = *p;
  vkf_g_step(g, &s);
  vkf_gstep d = {.kind = VKF_OP_LINEAR_ATTENTION_BACKWARD_KV, .n = 6, .writes = 3, .reads = 0x3f};
  d.t[0].node = dk;
  d.t[1].node = dv;
  d.t[2].node = ws;
  d.t[3].node = q;
  d.t[4].node = k;
  d.t[5].node = v;
  d.p.linear_attention = *p;
  vkf_g_step(g, &d);
}

vkf_node vkf_g_linear_attention(vkf_graph *g, vkf_node q, vkf_node k, vkf_node v, uint32_t chunk) {
  if (!ok(g, q) || !ok(g, k) || !ok(g, v))
    return VKF_NODE_NONE;
  vkf_gnode *nq = N(g, q), *nk = N(g, k), *nv = N(g, v);
  if (nq->ndim != 4 || nk->ndim != 4 || nv->ndim != 4 || nk->shape[0] != nq->shape[0] ||
      nk->shape[1] != nq->shape[1] || nk->shape[3] != nq->shape[3] ||
      nv->shape[0] != nk->shape[0] || nv->shape[1] != nk->shape[1] ||
      nv->shape[2] != nk->shape[2] || nq->shape[2] % nk->shape[2] ||
      nq->shape[3] > VKF_LATTN_HEAD_MAX || nv->shape[3] > VKF_LATTN_HEAD_MAX ||
      nq->shape[1] > VKF_LATTN_T_MAX)
    return vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "linear attention: q %s, k %s, v %s",
                          nq->name, nk->name, nv->name),
           VKF_NODE_NONE;
  if (chunk > VKF_LATTN_CHUNK_MAX)
    return vkf_graph_fail(g, VKF_ERROR_INVALID_ARGUMENT, "linear attention: chunk %u above %u",
                          chunk, VKF_LATTN_CHUNK_MAX),
           VKF_NODE_NONE;
  vkf_linear_attention_params p = {.B = (uint32_t)nq->shape[0],
                                   .T = (uint32_t)nq->shape[1],
                                   .Hq = (uint32_t)nq->shape[2],
                                   .Hkv = (uint32_t)nk->shape[2],
                                   .D = (uint32_t)nq->shape[3],
                                   .Dv = (uint32_t)nv->shape[3],
                                   .chunk = chunk ? chunk : VKF_LATTN_CHUNK_DEFAULT,
                                   .eps = VKF_LATTN_EPS_DEFAULT};
  vkf_lattn_layout l;
  vkf_lattn_layout_of(&p, &l);
  if (l.saved > UINT32_MAX || l.workspace > UINT32_MAX)
    return vkf_graph_fail(g, VKF_ERROR_UNSUPPORTED,
                          "linear attention: saved %llu or workspace %llu elements exceed 2^32-1",
                          (unsigned long long)l.saved, (unsigned long long)l.workspace),
           VKF_NODE_NONE;
  int64_t oshape[4] = {p.B, p.T, p.Hq, p.Dv}, n_saved = (int64_t)l.saved;
  vkf_node out = act_like(g, q, "linear_attention", 4, oshape);
  vkf_node saved = act_like(g, q, "linear_attention.saved", 1, &n_saved);
  if (!out || !saved)
    return VKF_NODE_NONE;
  vkf_gstep s = {.kind = VKF_OP_LINEAR_ATTENTION_FORWARD, .n = 6, .writes = 3, .reads = 0x1c};
  s.t[0].node = out;
  s.t[1].node = saved;
  s.t[2].node = q;
  s.t[3].node = k;
  s.t[4].node = v;
  s.p.linear_attention = p;
  vkf_g_step(g, &s);
  vkf_tape t = {.backward = linear_attention_backward, .in = {q, k, v}, .out = {out, saved}};
  t.p.linear_attention = p;
  vkf_g_tape(g, &t);
  return out;
}

vkf_node vkf_g_linear_attention_state(vkf_graph *g, vkf_node q, vkf_node k, vkf_node v,
                                      vkf_node state, uint32_t chunk) {
  if (!ok(g, q) || !ok(g, k) || !ok(g, v) || !ok(g, state))
    return VKF_NODE_NONE;
  vkf_gnode *nq = N(g, q), *nk = N(g, k), *nv = N(g, v), *ns = N(g, state);
  if (nq->ndim != 4 || nk->ndim != 4 || nv->ndim != 4 || ns->ndim != 4 ||
      nk->shape[0] != nq->shape[0] || nk->shape[1] != nq->shape[1] ||
      nk->shape[3] != nq->shape[3] || nv->shape[0] != nk->shape[0] ||
      nv->shape[1] != nk->shape[1] || nv->shape[2] != nk->shape[2] || nq->shape[2] % nk->shape[2] ||
      nq->shape[3] > VKF_LATTN_HEAD_MAX || nv->shape[3] > VKF_LATTN_HEAD_MAX ||
      nq->shape[1] > VKF_LATTN_T_MAX || ns->dtype != VKF_DTYPE_F32 ||
      ns->shape[0] != nq->shape[0] || ns->shape[1] != nk->shape[2] ||
      ns->shape[2] != nq->shape[3] || ns->shape[3] != nv->shape[3] + 1)
    return vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH,
                          "linear attention state: q %s, k %s, v %s, state %s", nq->name, nk->name,
                          nv->name, ns->name),
           VKF_NODE_NONE;
  if (chunk > VKF_LATTN_CHUNK_MAX)
    return vkf_graph_fail(g, VKF_ERROR_INVALID_ARGUMENT,
                          "linear attention state: chunk %u above %u", chunk, VKF_LATTN_CHUNK_MAX),
           VKF_NODE_NONE;
  vkf_linear_attention_params p = {.B = (uint32_t)nq->shape[0],
                                   .T = (uint32_t)nq->shape[1],
                                   .Hq = (uint32_t)nq->shape[2],
                                   .Hkv = (uint32_t)nk->shape[2],
                                   .D = (uint32_t)nq->shape[3],
                                   .Dv = (uint32_t)nv->shape[3],
                                   .chunk = chunk ? chunk : VKF_LATTN_CHUNK_DEFAULT,
                                   .eps = VKF_LATTN_EPS_DEFAULT};
  vkf_lattn_layout l;
  vkf_lattn_layout_of(&p, &l);
  if (l.saved > UINT32_MAX)
    return vkf_graph_fail(g, VKF_ERROR_UNSUPPORTED,
                          "linear attention state: %llu scratch elements exceed 2^32-1",
                          (unsigned long long)l.saved),
           VKF_NODE_NONE;
  int64_t oshape[4] = {p.B, p.T, p.Hq, p.Dv}, n_saved = (int64_t)l.saved;
  vkf_node out = act_like(g, q, "linear_attention", 4, oshape);
  if (!out)
    return VKF_NODE_NONE;
  vkf_gstep s = {.n = 5};
  if (p.T == 1) { /* one token: the recurrent step */
    s.kind = VKF_OP_LINEAR_ATTENTION_DECODE;
    s.writes = 0x3;
    s.reads = 0x1e;
    s.t[0].node = out;
    s.t[1].node = state;
    s.t[2].node = q;
    s.t[3].node = k;
    s.t[4].node = v;
  } else { /* a piece of a prompt: chunked, from and into the state */
    vkf_node saved = act_like(g, q, "linear_attention.scratch", 1, &n_saved);
    if (!saved)
      return VKF_NODE_NONE;
    p.flags = VKF_LATTN_STATE;
    s.kind = VKF_OP_LINEAR_ATTENTION_FORWARD;
    s.n = 6;
    s.writes = 0x23;
    s.reads = 0x3c;
    s.t[0].node = out;
    s.t[1].node = saved;
    s.t[2].node = q;
    s.t[3].node = k;
    s.t[4].node = v;
    s.t[5].node = state;
  }
  s.p.linear_attention = p;
  vkf_g_step(g, &s);
  return out;
}

/* ---- attention ---- */
static void attention_backward(vkf_graph *g, const vkf_tape *t) {
  vkf_node q = t->in[0], k = t->in[1], v = t->in[2], out = t->out[0], P = t->out[1];
  vkf_node dout = vkf_g_grad_if(g, out);
  const vkf_attention_params *p = &t->p.attention;
  bool gq = needs_grad(g, q), gk = needs_grad(g, k), gv = needs_grad(g, v);
  if (!gq && !gk && !gv)
    return;
  int64_t n_scores = (int64_t)p->B * p->Hq * p->Tq * p->Tk;
  vkf_node ws = vkf_g_act(g, "attention.dS", VKF_DTYPE_F32, 1, &n_scores);
  vkf_gstep s = {.kind = VKF_OP_ATTENTION_BACKWARD_DS, .n = 8, .writes = 1, .reads = 0x7c};
  s.t[0].node = ws;
  s.t[2].node = dout;
  s.t[3].node = q;
  s.t[4].node = k;
  s.t[5].node = v;
  s.t[6].node = P;
  s.p.attention = *p;
  vkf_g_step(g, &s);
  /* the kernels compute dk and dv together: give both */
  vkf_node dq = vkf_g_grad(g, q), dk = vkf_g_grad(g, k), dv = vkf_g_grad(g, v);
  if (dq) {
    vkf_gstep d = {.kind = VKF_OP_ATTENTION_BACKWARD_DQ, .n = 4, .writes = 1, .reads = 7};
    d.t[0].node = dq;
    d.t[1].node = ws;
    d.t[2].node = k;
    d.p.attention = *p;
    vkf_g_step(g, &d);
  }
  if (dk && dv) {
    vkf_gstep d = {.kind = VKF_OP_ATTENTION_BACKWARD_DKV, .n = 7, .writes = 3, .reads = 0x3f};
    d.t[0].node = dk;
    d.t[1].node = dv;
    d.t[2].node = ws;
    d.t[3].node = P;
    d.t[4].node = q;
    d.t[5].node = dout;
    d.p.attention = *p;
    vkf_g_step(g, &d);
  } else if (dk || dv) {
    vkf_graph_fail(g, VKF_ERROR_UNSUPPORTED, "attention backward needs both dk and dv");
  }
}

/* Causal self-attention of q [B, T, Hq, D] over k [B, T, Hkv, D] and
 * v [B, T, Hkv, Dv] (Hkv dividing Hq), scale 1/sqrt(D), keys within `window`
 * (0: all): the params shared by the standard and flash variants, or false
 * (the graph failed) when the shapes do not fit. */
static bool self_attention_params(vkf_graph *g, vkf_node q, vkf_node k, vkf_node v, uint32_t window,
                                  vkf_attention_params *p) {
  if (!ok(g, q) || !ok(g, k) || !ok(g, v))
    return false;
  vkf_gnode *nq = N(g, q), *nk = N(g, k), *nv = N(g, v);
  if (nq->ndim != 4 || nk->ndim != 4 || nv->ndim != 4 || nk->shape[0] != nq->shape[0] ||
      nk->shape[1] != nq->shape[1] || nk->shape[3] != nq->shape[3] ||
      nv->shape[0] != nk->shape[0] || nv->shape[1] != nk->shape[1] ||
      nv->shape[2] != nk->shape[2] || nq->shape[2] % nk->shape[2]) {
    vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "attention: q %s, k %s, v %s", nq->name, nk->name,
                   nv->name);
    return false;
  }
  const uint32_t T = (uint32_t)nq->shape[1], D = (uint32_t)nq->shape[3];
  *p = (vkf_attention_params){.B = (uint32_t)nq->shape[0],
                              .Tq = T,
                              .Tk = T,
                              .Hq = (uint32_t)nq->shape[2],
                              .Hkv = (uint32_t)nk->shape[2],
                              .D = D,
                              .Dv = (uint32_t)nv->shape[3],
                              .flags = VKF_ATTN_CAUSAL,
                              .scale = (float)(1.0 / sqrt((double)D)),
                              .window = window,
                              .q_pos0 = 0};
  return true;
}

vkf_node vkf_g_attention(vkf_graph *g, vkf_node q, vkf_node k, vkf_node v, uint32_t window) {
  vkf_attention_params ap;
  if (!self_attention_params(g, q, k, v, window, &ap))
    return VKF_NODE_NONE;
  const uint32_t B = ap.B, T = ap.Tq, Hq = ap.Hq, Dv = ap.Dv;
  int64_t oshape[4] = {B, T, Hq, Dv}, pshape[4] = {B, Hq, T, T};
  if ((uint64_t)B * Hq * T * T > UINT32_MAX)
    return vkf_graph_fail(g, VKF_ERROR_UNSUPPORTED,
                          "attention: %u x %u x %u x %u scores exceed 2^32-1 (standard variant)", B,
                          Hq, T, T),
           VKF_NODE_NONE;
  vkf_node out = act_like(g, q, "attention", 4, oshape);
  vkf_node P = act_like(g, q, "attention.P", 4, pshape);
  if (!out || !P)
    return VKF_NODE_NONE;
  vkf_gstep s = {.kind = VKF_OP_ATTENTION_FORWARD, .n = 8, .writes = 3, .reads = 0x1c};
  s.t[0].node = out;
  s.t[1].node = P;
  s.t[2].node = q;
  s.t[3].node = k;
  s.t[4].node = v;
  s.p.attention = ap;
  vkf_g_step(g, &s);
  vkf_tape t = {.backward = attention_backward, .in = {q, k, v}, .out = {out, P}};
  t.p.attention = s.p.attention;
  vkf_g_tape(g, &t);
  return out;
}

/* Flash variant: saves the row log-sum-exp; the backward recomputes the
 * scores tile by tile (see frontend/attention.c for the three ops). */
static void attention_flash_backward(vkf_graph *g, const vkf_tape *t) {
  vkf_node q = t->in[0], k = t->in[1], v = t->in[2], out = t->out[0], lse = t->out[1];
  vkf_node dout = vkf_g_grad_if(g, out);
  const vkf_attention_params *p = &t->p.attention;
  bool gq = needs_grad(g, q), gk = needs_grad(g, k), gv = needs_grad(g, v);
  if (!dout || (!gq && !gk && !gv))
    return;
  if (gk != gv) {
    vkf_graph_fail(g, VKF_ERROR_UNSUPPORTED, "attention backward needs both dk and dv");
    return;
  }
  int64_t n_ws = 2 * (int64_t)p->B * p->Hq * p->Tq + p->B;
  vkf_node ws = vkf_g_act(g, "attention.flash_ws", VKF_DTYPE_F32, 1, &n_ws);
  vkf_gstep s = {.kind = VKF_OP_ATTENTION_FLASH_BACKWARD_PRE, .n = 5, .writes = 1, .reads = 0xe};
  s.t[0].node = ws;
  s.t[1].node = dout;
  s.t[2].node = out;
  s.t[3].node = lse;
  s.p.attention = *p;
  vkf_g_step(g, &s);
  if (gk) { /* dk += dS^T . q, dv += P^T . dout */
    vkf_gstep d = {.kind = VKF_OP_ATTENTION_FLASH_BACKWARD_DKV, .n = 8, .writes = 3, .reads = 0x7f};
    d.t[0].node = vkf_g_grad(g, k);
    d.t[1].node = vkf_g_grad(g, v);
    d.t[2].node = q;
    d.t[3].node = k;
    d.t[4].node = v;
    d.t[5].node = dout;
    d.t[6].node = ws;
    d.p.attention = *p;
    vkf_g_step(g, &d);
  }
  if (gq) { /* dq += dS . k */
    vkf_gstep d = {.kind = VKF_OP_ATTENTION_FLASH_BACKWARD_DQ, .n = 7, .writes = 1, .reads = 0x3f};
    d.t[0].node = vkf_g_grad(g, q);
    d.t[1].node = q;
    d.t[2].node = k;
    d.t[3].node = v;
    d.t[4].node = dout;
    d.t[5].node = ws;
    d.p.attention = *p;
    vkf_g_step(g, &d);
  }
}

vkf_node vkf_g_attention_flash(vkf_graph *g, vkf_node q, vkf_node k, vkf_node v, uint32_t window) {
  vkf_attention_params ap;
  if (!self_attention_params(g, q, k, v, window, &ap))
    return VKF_NODE_NONE;
  const uint32_t B = ap.B, T = ap.Tq, Hq = ap.Hq, Dv = ap.Dv;
  if (2 * (uint64_t)B * Hq * T + B > UINT32_MAX)
    return vkf_graph_fail(g, VKF_ERROR_UNSUPPORTED,
                          "attention: %u x %u x %u rows exceed the flash workspace's 2^32-1 "
                          "elements",
                          B, Hq, T),
           VKF_NODE_NONE;
  int64_t oshape[4] = {B, T, Hq, Dv}, lshape[3] = {B, Hq, T};
  vkf_node out = act_like(g, q, "attention", 4, oshape);
  vkf_node lse = act_like(g, q, "attention.lse", 3, lshape);
  if (!out || !lse)
    return VKF_NODE_NONE;
  vkf_gstep s = {.kind = VKF_OP_ATTENTION_FLASH_FORWARD, .n = 7, .writes = 3, .reads = 0x1c};
  s.t[0].node = out;
  s.t[1].node = lse;
  s.t[2].node = q;
  s.t[3].node = k;
  s.t[4].node = v;
  s.p.attention = ap;
  vkf_g_step(g, &s);
  vkf_tape t = {.backward = attention_flash_backward, .in = {q, k, v}, .out = {out, lse}};
  t.p.attention = s.p.attention;
  vkf_g_tape(g, &t);
  return out;
}
