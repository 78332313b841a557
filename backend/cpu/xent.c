/* Softmax cross-entropy on the CPU: the reference. Per row: max, then the
 * sum of exponentials in double; reductions over rows in double, in row
 * order (independent of the thread count). */
#include "cpu.h"
#include "vecmath.h"

#include <math.h>

static inline const int32_t *cpu_i32(const vkf_op *op, uint32_t i) {
  return op->t[i].buf
             ? (const int32_t *)(const void *)((const char *)op->t[i].buf->data + op->t[i].offset)
             : NULL;
}

/* Row r's first element and the stride between its classes. */
static inline size_t row_base(const vkf_cross_entropy_params *p, uint32_t r) {
  size_t o = r / p->inner, i = r % p->inner;
  return o * p->V * p->inner + i;
}

/* Contiguous rows (stride 1), vectorised: the maximum, and the sum of
 * exp(x - m) in double (VKF_LANES partial sums in a fixed order). */
VKF_VEC_CLONES static float max_contig(const float *x, uint32_t V) {
  int32_t part[VKF_LANES];
  for (int l = 0; l < VKF_LANES; l++)
    part[l] = vkf_f2ord(-INFINITY);
  uint32_t c = 0;
  for (; c + VKF_LANES <= V; c += VKF_LANES)
    for (int l = 0; l < VKF_LANES; l++) {
      int32_t v = vkf_f2ord(x[c + l]);
      part[l] = v > part[l] ? v : part[l];
    }
  int32_t m = vkf_f2ord(-INFINITY);
  for (; c < V; c++) {
    int32_t v = vkf_f2ord(x[c]);
    m = v > m ? v : m;
  }
  for (int l = 0; l < VKF_LANES; l++)
    m = part[l] > m ? part[l] : m;
  return vkf_ord2f(m);
}

VKF_VEC_CLONES static double exp_sum_contig(const float *x, uint32_t V, double m) {
  double part[VKF_LANES];
  for (int l = 0; l < VKF_LANES; l++)
    part[l] = 0.0;
  uint32_t c = 0;
  for (; c + VKF_LANES <= V; c += VKF_LANES)
    for (int l = 0; l < VKF_LANES; l++)
      part[l] += vkf_exp_d((double)x[c + l] - m);
  double s = 0.0;
  for (; c < V; c++)
    s += vkf_exp_d((double)x[c] - m);
  for (int l = 0; l < VKF_LANES; l++)
    s += part[l];
  return s;
}

/* max and log(sum(exp(x - max))) of one row. */
static void row_lse(const float *x, size_t stride, uint32_t V, double *mx, double *lse) {
  float m = -INFINITY;
  bool nan = false;
  if (stride == 1) {
    m = max_contig(x, V);
    nan = isnan(m); /* a NaN with the sign bit set is caught by the sum below */
  } else {
    for (uint32_t c = 0; c < V; c++) {
      float v = x[c * stride];
      nan |= isnan(v);
      m = v > m ? v : m;
    }
  }
  if (nan) {
    *mx = *lse = NAN;
    return;
  }
  if (m == -INFINITY) { /* every class impossible */
    *mx = -INFINITY;
    *lse = -INFINITY;
    return;
  }
  double s = 0;
  if (stride == 1) {
    s = exp_sum_contig(x, V, m);
  } else {
    for (uint32_t c = 0; c < V; c++)
      s += vkf_exp_d((double)x[c * stride] - (double)m);
  }
  *mx = m;
  *lse = (double)m + log(s);
}

/* Weight of row r's target: 0 for an ignored row. */
static inline double row_weight(const vkf_cross_entropy_params *p, const int32_t *tgt,
                                const float *w, uint32_t r) {
  int32_t t = tgt[r];
  if (t == p->ignore_index)
    return 0.0;
  if (t < 0 || (uint32_t)t >= p->V)
    return NAN; /* unreachable after the frontend's check */
  return w ? (double)w[t] : 1.0;
}

static void forward_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  const vkf_cross_entropy_params *p = &op->p.cross_entropy;
  float *losses = vkf_cpu_f32(op, 0), *log_prob = vkf_cpu_f32(op, 2);
  const float *logits = vkf_cpu_f32(op, 3), *w = vkf_cpu_f32(op, 5);
  const int32_t *tgt = cpu_i32(op, 4);
  const size_t stride = p->inner;
  for (uint32_t r = begin; r < end; r++) {
    size_t base = row_base(p, r);
    double wt = row_weight(p, tgt, w, r);
    if (wt == 0.0 && !log_prob) {
      losses[r] = 0.0f;
      continue;
    }
    double m, lse;
    row_lse(logits + base, stride, p->V, &m, &lse);
    if (tgt[r] == p->ignore_index)
      losses[r] = 0.0f;
    else if (isnan(wt))
      losses[r] = NAN;
    else
      losses[r] = (float)(wt * (lse - (double)logits[base + (size_t)tgt[r] * stride]));
    if (log_prob)
      for (uint32_t c = 0; c < p->V; c++)
        log_prob[base + c * stride] = (float)((double)logits[base + c * stride] - lse);
  }
}

vkf_status vkf_cpu_cross_entropy(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_cross_entropy_params *p = &op->p.cross_entropy;
  vkf_pool_run(cpu->pool, p->rows, 8192 / (p->V + 1) + 1, forward_task, (void *)op);
  float *loss = vkf_cpu_f32(op, 1);
  if (loss) {
    const float *losses = vkf_cpu_f32(op, 0), *w = vkf_cpu_f32(op, 5);
    const int32_t *tgt = cpu_i32(op, 4);
    double sum = 0, den = 0;
    for (uint32_t r = 0; r < p->rows; r++) {
      sum += losses[r];
      den += row_weight(p, tgt, w, r);
    }
    *loss = (float)(p->reduction == VKF_XENT_MEAN ? sum / den : sum);
  }
  return VKF_OK;
}

/* d[c] += g * exp(x[c] - lse), in double, rounded once */
VKF_VEC_CLONES static void grad_contig(float *d, const float *x, uint32_t V, double g, double lse) {
  for (uint32_t c = 0; c < V; c++)
    d[c] = (float)((double)d[c] + g * vkf_exp_d((double)x[c] - lse));
}

typedef struct backward_job {
  const vkf_op *op;
  double g; /* MEAN: dloss / den; SUM: dloss */
} backward_job;

static void backward_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const backward_job *job = arg;
  const vkf_op *op = job->op;
  const vkf_cross_entropy_params *p = &op->p.cross_entropy;
  float *dlogits = vkf_cpu_f32(op, 0);
  const float *dloss = vkf_cpu_f32(op, 1), *logits = vkf_cpu_f32(op, 2), *w = vkf_cpu_f32(op, 4);
  const int32_t *tgt = cpu_i32(op, 3);
  const size_t stride = p->inner;
  for (uint32_t r = begin; r < end; r++) {
    if (tgt[r] == p->ignore_index)
      continue;
    size_t base = row_base(p, r);
    double g =
        (p->reduction == VKF_XENT_NONE ? (double)dloss[r] : job->g) * row_weight(p, tgt, w, r);
    double m, lse;
    row_lse(logits + base, stride, p->V, &m, &lse);
    (void)m;
    uint32_t t = (uint32_t)tgt[r];
    if (stride == 1) {
      /* every class as a non-target, then the target again from its old value */
      const float d_t = dlogits[base + t];
      grad_contig(dlogits + base, logits + base, p->V, g, lse);
      double prob = vkf_exp_d((double)logits[base + t] - lse);
      dlogits[base + t] = (float)((double)d_t + g * (prob - 1.0));
    } else {
      for (uint32_t c = 0; c < p->V; c++) {
        size_t e = base + c * stride;
        double prob = vkf_exp_d((double)logits[e] - lse);
        dlogits[e] = (float)((double)dlogits[e] + g * (prob - (c == t ? 1.0 : 0.0)));
      }
    }
  }
}

vkf_status vkf_cpu_cross_entropy_backward(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_cross_entropy_params *p = &op->p.cross_entropy;
  const float *dloss = vkf_cpu_f32(op, 1), *w = vkf_cpu_f32(op, 4);
  const int32_t *tgt = cpu_i32(op, 3);
  backward_job job = {op, 0.0};
  if (p->reduction == VKF_XENT_SUM) {
    job.g = dloss[0];
  } else if (p->reduction == VKF_XENT_MEAN) {
    double den = 0;
    for (uint32_t r = 0; r < p->rows; r++)
      den += row_weight(p, tgt, w, r);
    job.g = (double)dloss[0] / den;
  }
  vkf_pool_run(cpu->pool, p->rows, 8192 / (p->V + 1) + 1, backward_task, &job);
  return VKF_OK;
}
