/* Optimiser ops on the CPU: adamw, grad_norm, clip_grads. The element
 * formulas are those of shaders/optim_*.comp, in the same order, in float;
 * the norm accumulates in double over a fixed partition (so its result does
 * not depend on the thread count). */
#include "cpu.h"
#include "vecmath.h"

#include <math.h>

/* Gradient multiplier: grad_scale * min(1, max_norm / (grad_scale * norm + eps)),
 * written as the shaders do (a NaN ratio gives 1, as GLSL's min). */
static float clip_factor(float norm, float max_norm, float grad_scale) {
  float c = max_norm / (grad_scale * norm + (float)VKF_CLIP_EPS);
  return grad_scale * (c < 1.0f ? c : 1.0f);
}

/* ---- adamw ---- */
typedef struct adamw_job {
  const vkf_adamw_params *p;
  float lr, lr_wd, inv_bc1, inv_bc2; /* from p, or the hyper operand */
  float *param, *m, *v;
  const float *grad;
  const uint32_t *seg; /* [n_segments][2] (start, flags), or NULL */
  float s;             /* gradient multiplier */
} adamw_job;

/* Elements [begin, end), all with decay flag d (0 or 1). */
static inline void adamw_run(const adamw_job *j, uint32_t begin, uint32_t end, float d) {
  const vkf_adamw_params *p = j->p;
  const float b1 = p->beta1, b2 = p->beta2, omb1 = p->omb1, omb2 = p->omb2, eps = p->eps;
  const float lr = j->lr, ibc1 = j->inv_bc1, ibc2 = j->inv_bc2, s = j->s;
  const float dl2 = d * p->l2, dlrwd = d * j->lr_wd;
  float *restrict param = j->param, *restrict m = j->m, *restrict v = j->v;
  const float *restrict grad = j->grad;
  for (uint32_t i = begin; i < end; i++) {
    float x = param[i];
    float g = grad[i] * s + dl2 * x;
    float mi = b1 * m[i] + omb1 * g;
    float vi = b2 * v[i] + omb2 * (g * g);
    float upd = (mi * ibc1) / (sqrtf(vi * ibc2) + eps);
    m[i] = mi;
    v[i] = vi;
    param[i] = x - lr * upd - dlrwd * x;
  }
}

/* Largest segment s in [lo, hi] whose start is <= i (lo when none). */
static uint32_t seg_find(const uint32_t *seg, uint32_t i, uint32_t lo, uint32_t hi) {
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    if (seg[2 * mid] <= i)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

VKF_VEC_CLONES static void adamw_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const adamw_job *j = arg;
  if (!j->seg) {
    adamw_run(j, begin, end, 1.0f);
    return;
  }
  const uint32_t S = j->p->n_segments;
  uint32_t s = seg_find(j->seg, begin, 0, S - 1);
  for (uint32_t i = begin; i < end;) {
    /* Runs of one segment. The inner while also keeps a malformed table
     * (starts not increasing) moving forward: each run is non-empty. */
    while (s + 1 < S && j->seg[2 * (s + 1)] <= i)
      s++;
    uint32_t run_end = s + 1 < S && j->seg[2 * (s + 1)] < end ? j->seg[2 * (s + 1)] : end;
    adamw_run(j, i, run_end, (j->seg[2 * s + 1] & VKF_OPTIM_SEG_DECAY) ? 1.0f : 0.0f);
    i = run_end;
  }
}

vkf_status vkf_cpu_adamw(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_adamw_params *p = &op->p.adamw;
  adamw_job j = {
      .p = p,
      .param = vkf_cpu_f32(op, 0),
      .grad = vkf_cpu_f32(op, 1),
      .m = vkf_cpu_f32(op, 2),
      .v = vkf_cpu_f32(op, 3),
      .seg = (p->flags & VKF_ADAMW_P_SEGMENTS) ? (const uint32_t *)vkf_cpu_f32(op, 4) : NULL,
      .s = p->grad_scale,
      .lr = p->lr,
      .lr_wd = p->lr_wd,
      .inv_bc1 = p->inv_bc1,
      .inv_bc2 = p->inv_bc2,
  };
  if (p->flags & VKF_ADAMW_P_HYPER) {
    const float *h = vkf_cpu_f32(op, 6);
    j.lr = h[0];
    j.lr_wd = h[1];
    j.inv_bc1 = h[2];
    j.inv_bc2 = h[3];
  }
  if (p->flags & VKF_ADAMW_P_CLIP)
    j.s = clip_factor(vkf_cpu_f32(op, 5)[0], p->max_norm, p->grad_scale);
  vkf_pool_run(cpu->pool, p->n, 16384, adamw_task, &j);
  return VKF_OK;
}

/* ---- grad_norm ---- */
typedef struct norm_job {
  const float *x;
  uint32_t n, parts;
  double *partial; /* [parts] */
} norm_job;

/* Partial b: the sum of squares of elements [b*n/parts, (b+1)*n/parts). */
VKF_VEC_CLONES static void norm_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const norm_job *j = arg;
  for (uint32_t b = begin; b < end; b++) {
    uint64_t lo = (uint64_t)b * j->n / j->parts, hi = (uint64_t)(b + 1) * j->n / j->parts;
    const float *x = j->x;
    double acc[4] = {0, 0, 0, 0};
    uint64_t i = lo;
    for (; i + 4 <= hi; i += 4)
      for (uint32_t u = 0; u < 4; u++)
        acc[u] += (double)x[i + u] * (double)x[i + u];
    for (; i < hi; i++)
      acc[0] += (double)x[i] * (double)x[i];
    j->partial[b] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  }
}

vkf_status vkf_cpu_grad_norm(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_grad_norm_params *p = &op->p.grad_norm;
  /* n_partials <= 1024 (frontend/optim.c): partial sums in double on the
   * stack; the scratch tensor (f32, for the Vulkan kernels) is not used. */
  double partial[1024];
  if (p->n_partials < 1 || p->n_partials > VKF_ARRAY_LEN(partial))
    return vkf_fail(cpu->base.env, VKF_ERROR_INVALID_ARGUMENT, "grad_norm: %u partials",
                    p->n_partials);
  norm_job j = {vkf_cpu_f32(op, 2), p->n, p->n_partials, partial};
  vkf_pool_run(cpu->pool, p->n_partials, 1, norm_task, &j);
  double sum = 0;
  for (uint32_t b = 0; b < p->n_partials; b++)
    sum += partial[b];
  vkf_cpu_f32(op, 0)[0] = (float)sqrt(sum);
  return VKF_OK;
}

/* ---- clip_grads ---- */
typedef struct clip_job {
  float *x;
  float s;
} clip_job;

VKF_VEC_CLONES static void clip_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const clip_job *j = arg;
  float *restrict x = j->x;
  const float s = j->s;
  for (uint32_t i = begin; i < end; i++)
    x[i] *= s;
}

vkf_status vkf_cpu_clip_grads(vkf_cpu *cpu, const vkf_op *op) {
  const vkf_clip_grads_params *p = &op->p.clip_grads;
  clip_job j = {vkf_cpu_f32(op, 0), clip_factor(vkf_cpu_f32(op, 1)[0], p->max_norm, 1.0f)};
  if (j.s == 1.0f)
    return VKF_OK; /* at or below the limit: nothing to write */
  vkf_pool_run(cpu->pool, p->n, 32768, clip_task, &j);
  return VKF_OK;
}
