/* layernorm and rmsnorm, forward and backward, on the CPU.
 *
 * Per-row statistics and row sums are accumulated in double. The weight and
 * bias gradients are sums over rows: the rows are cut into blocks by a
 * partition that depends only on the shape, each block sums its rows into
 * its own double partial (in row order), then every column adds up the
 * blocks' partials in block order. So results do not depend on the thread
 * count, and there are no atomics. */
#include "cpu.h"
#include "vecmath.h"

#include <math.h>
#include <string.h>

/* At most this many row blocks for the weight/bias gradients (the partials
 * take n_blocks * cols doubles per gradient). */
#define MAX_BLOCKS 64u
/* A block has at least this many elements (rows * cols) of work. */
#define MIN_BLOCK_ELEMENTS 4096u
/* Columns summed together in the final pass (stack accumulators). */
#define COL_TILE 64u

/* Sum of x[0..n) in double, four accumulators (fixed order). */
static inline double sum_d(const float *x, uint32_t n) {
  double a[4] = {0, 0, 0, 0};
  uint32_t c = 0;
  for (; c + 4 <= n; c += 4)
    for (uint32_t u = 0; u < 4; u++)
      a[u] += x[c + u];
  for (; c < n; c++)
    a[0] += x[c];
  return (a[0] + a[1]) + (a[2] + a[3]);
}

/* Sum of (x - mu)^2 over x[0..n) in double. */
static inline double sum_sq_d(const float *x, uint32_t n, double mu) {
  double a[4] = {0, 0, 0, 0};
  uint32_t c = 0;
  for (; c + 4 <= n; c += 4)
    for (uint32_t u = 0; u < 4; u++) {
      double d = (double)x[c + u] - mu;
      a[u] += d * d;
    }
  for (; c < n; c++) {
    double d = (double)x[c] - mu;
    a[0] += d * d;
  }
  return (a[0] + a[1]) + (a[2] + a[3]);
}

/* ------------------------------------------------------------------------ */
/* Forward                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct norm_fwd {
  bool rms;
  uint32_t cols;
  double eps;
  float *out, *mean, *rstd;
  const float *x, *w, *b;
} norm_fwd;

VKF_VEC_CLONES static void norm_fwd_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const norm_fwd *f = arg;
  const uint32_t C = f->cols;
  for (uint32_t r = begin; r < end; r++) {
    const float *x = f->x + (size_t)r * C;
    float *y = f->out + (size_t)r * C; /* may be x: each x[c] is read before y[c] is written */
    double mu = 0, ms;
    if (f->rms) {
      ms = sum_sq_d(x, C, 0.0) / C;
    } else {
      mu = sum_d(x, C) / C;
      ms = sum_sq_d(x, C, mu) / C; /* two-pass: no cancellation */
    }
    double rs = 1.0 / sqrt(ms + f->eps);
    if (f->b) {
      for (uint32_t c = 0; c < C; c++)
        y[c] = (float)(((double)x[c] - mu) * rs * f->w[c] + f->b[c]);
    } else {
      for (uint32_t c = 0; c < C; c++)
        y[c] = (float)(((double)x[c] - mu) * rs * f->w[c]);
    }
    if (f->mean)
      f->mean[r] = (float)mu;
    if (f->rstd)
      f->rstd[r] = (float)rs;
  }
}

static void norm_forward(vkf_cpu *cpu, norm_fwd *f, uint32_t rows) {
  uint32_t grain = 8192 / (f->cols + 1) + 1;
  vkf_pool_run(cpu->pool, rows, grain, norm_fwd_task, f);
}

vkf_status vkf_cpu_layernorm(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_norm_params *p = &op->p.norm;
  norm_fwd f = {.rms = false,
                .cols = p->cols,
                .eps = p->eps,
                .out = vkf_cpu_f32(op, 0),
                .mean = vkf_cpu_f32(op, 1),
                .rstd = vkf_cpu_f32(op, 2),
                .x = vkf_cpu_f32(op, 3),
                .w = vkf_cpu_f32(op, 4),
                .b = vkf_cpu_f32(op, 5)};
  norm_forward(cpu, &f, p->rows);
  return VKF_OK;
}

vkf_status vkf_cpu_rmsnorm(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_norm_params *p = &op->p.norm;
  norm_fwd f = {.rms = true,
                .cols = p->cols,
                .eps = p->eps,
                .out = vkf_cpu_f32(op, 0),
                .rstd = vkf_cpu_f32(op, 1),
                .x = vkf_cpu_f32(op, 2),
                .w = vkf_cpu_f32(op, 3)};
  norm_forward(cpu, &f, p->rows);
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* Backward                                                                 */
/* ------------------------------------------------------------------------ */
typedef struct norm_bwd {
  bool rms;
  uint32_t rows, cols;
  float *dx, *dw, *db;
  const float *dout, *x, *w, *mean, *rstd;
  /* weight/bias gradient partials: block k's dw sums at pw + k * cols, its
   * db sums at pb + k * cols (NULL when not wanted) */
  uint32_t rows_per_block, n_blocks;
  double *pw, *pb;
} norm_bwd;

/* Rows [r0, r1): dx += ..., and the rows' dw/db contributions added to
 * pw/pb (NULL: not wanted), in row order. */
static inline void backward_rows(const norm_bwd *b, uint32_t r0, uint32_t r1, double *pw,
                                 double *pb) {
  const uint32_t C = b->cols;
  const double inv_c = 1.0 / C;
  for (uint32_t r = r0; r < r1; r++) {
    const float *x = b->x + (size_t)r * C, *go = b->dout + (size_t)r * C, *w = b->w;
    const double mu = b->rms ? 0.0 : b->mean[r], rs = b->rstd[r];
    if (b->dx) {
      /* sum_c g and sum_c g * xhat, g = dout * w */
      double sg[2] = {0, 0}, sgx[2] = {0, 0};
      uint32_t c = 0;
      for (; c + 2 <= C; c += 2)
        for (uint32_t u = 0; u < 2; u++) {
          double g = (double)go[c + u] * w[c + u], xh = ((double)x[c + u] - mu) * rs;
          sg[u] += g;
          sgx[u] += g * xh;
        }
      for (; c < C; c++) {
        double g = (double)go[c] * w[c], xh = ((double)x[c] - mu) * rs;
        sg[0] += g;
        sgx[0] += g * xh;
      }
      const double mg = b->rms ? 0.0 : (sg[0] + sg[1]) * inv_c, mgx = (sgx[0] + sgx[1]) * inv_c;
      float *dx = b->dx + (size_t)r * C;
      for (c = 0; c < C; c++) {
        double g = (double)go[c] * w[c], xh = ((double)x[c] - mu) * rs;
        dx[c] += (float)(rs * (g - mg - xh * mgx));
      }
    }
    if (pw)
      for (uint32_t c = 0; c < C; c++)
        pw[c] += (double)go[c] * (((double)x[c] - mu) * rs);
    if (pb)
      for (uint32_t c = 0; c < C; c++)
        pb[c] += go[c];
  }
}

/* dx only: rows in any partition. */
VKF_VEC_CLONES static void backward_dx_task(void *arg, uint32_t begin, uint32_t end,
                                            uint32_t worker) {
  (void)worker;
  backward_rows(arg, begin, end, NULL, NULL);
}

/* One item per row block: its partials start at zero. */
VKF_VEC_CLONES static void backward_block_task(void *arg, uint32_t begin, uint32_t end,
                                               uint32_t worker) {
  (void)worker;
  const norm_bwd *b = arg;
  for (uint32_t k = begin; k < end; k++) {
    double *pw = b->pw ? b->pw + (size_t)k * b->cols : NULL;
    double *pb = b->pb ? b->pb + (size_t)k * b->cols : NULL;
    if (pw)
      memset(pw, 0, b->cols * sizeof(double));
    if (pb)
      memset(pb, 0, b->cols * sizeof(double));
    uint32_t r0 = k * b->rows_per_block;
    uint32_t r1 = r0 + b->rows_per_block < b->rows ? r0 + b->rows_per_block : b->rows;
    backward_rows(b, r0, r1, pw, pb);
  }
}

/* grad[c] += sum over blocks (in block order) of partial[k, c]. */
static void sum_blocks(const double *partial, uint32_t n_blocks, uint32_t cols, float *grad,
                       uint32_t c0, uint32_t c1) {
  double acc[COL_TILE];
  for (uint32_t t0 = c0; t0 < c1; t0 += COL_TILE) {
    uint32_t n = c1 - t0 < COL_TILE ? c1 - t0 : COL_TILE;
    memset(acc, 0, sizeof(acc));
    for (uint32_t k = 0; k < n_blocks; k++) {
      const double *p = partial + (size_t)k * cols + t0;
      for (uint32_t j = 0; j < n; j++)
        acc[j] += p[j];
    }
    for (uint32_t j = 0; j < n; j++)
      grad[t0 + j] += (float)acc[j];
  }
}

VKF_VEC_CLONES static void backward_columns_task(void *arg, uint32_t begin, uint32_t end,
                                                 uint32_t worker) {
  (void)worker;
  const norm_bwd *b = arg;
  if (b->pw)
    sum_blocks(b->pw, b->n_blocks, b->cols, b->dw, begin, end);
  if (b->pb)
    sum_blocks(b->pb, b->n_blocks, b->cols, b->db, begin, end);
}

static vkf_status norm_backward(vkf_cpu *cpu, norm_bwd *b) {
  const uint32_t C = b->cols, rows = b->rows;
  if (!b->dw && !b->db) {
    vkf_pool_run(cpu->pool, rows, 8192 / (C + 1) + 1, backward_dx_task, b);
    return VKF_OK;
  }
  /* The partition depends on rows and cols only. */
  uint32_t rpb = (rows + MAX_BLOCKS - 1) / MAX_BLOCKS;
  uint32_t min_rows = (MIN_BLOCK_ELEMENTS + C - 1) / C;
  if (rpb < min_rows)
    rpb = min_rows;
  b->rows_per_block = rpb;
  b->n_blocks = (uint32_t)(((uint64_t)rows + rpb - 1) / rpb);
  size_t per = (size_t)b->n_blocks * C;
  double *scratch = vkf_malloc(cpu->base.env, per * ((b->dw ? 1 : 0) + (b->db ? 1 : 0)) * 8);
  if (!scratch)
    return vkf_fail(cpu->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY,
                    "%s: no memory for %u x %u gradient partials",
                    b->rms ? "rmsnorm_backward" : "layernorm_backward", b->n_blocks, C);
  b->pw = b->dw ? scratch : NULL;
  b->pb = b->db ? scratch + (b->dw ? per : 0) : NULL;
  vkf_pool_run(cpu->pool, b->n_blocks, 1, backward_block_task, b);
  vkf_pool_run(cpu->pool, C, 1024 / b->n_blocks + COL_TILE, backward_columns_task, b);
  vkf_free(cpu->base.env, scratch);
  return VKF_OK;
}

vkf_status vkf_cpu_layernorm_backward(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_norm_backward_params *p = &op->p.norm_backward;
  norm_bwd b = {.rms = false,
                .rows = p->rows,
                .cols = p->cols,
                .dx = vkf_cpu_f32(op, 0),
                .dw = vkf_cpu_f32(op, 1),
                .db = vkf_cpu_f32(op, 2),
                .dout = vkf_cpu_f32(op, 3),
                .x = vkf_cpu_f32(op, 4),
                .w = vkf_cpu_f32(op, 5),
                .mean = vkf_cpu_f32(op, 6),
                .rstd = vkf_cpu_f32(op, 7)};
  return norm_backward(cpu, &b);
}

vkf_status vkf_cpu_rmsnorm_backward(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_norm_backward_params *p = &op->p.norm_backward;
  norm_bwd b = {.rms = true,
                .rows = p->rows,
                .cols = p->cols,
                .dx = vkf_cpu_f32(op, 0),
                .dw = vkf_cpu_f32(op, 1),
                .dout = vkf_cpu_f32(op, 2),
                .x = vkf_cpu_f32(op, 3),
                .w = vkf_cpu_f32(op, 4),
                .rstd = vkf_cpu_f32(op, 5)};
  return norm_backward(cpu, &b);
}
