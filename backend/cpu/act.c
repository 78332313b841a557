/* gelu (erf and tanh forms), silu, swiglu, forward and backward, on the CPU.
 * Each element is evaluated in double and rounded once, so the CPU backend
 * stays a sharp reference for the Vulkan kernels. The tanh form, silu and
 * swiglu use vkf_exp_d (vecmath.h) so that their loops vectorise (AVX-512 /
 * AVX2 clones picked at run time); the erf form calls libm's erfc. */
#include "cpu.h"
#include "vecmath.h"

#include <math.h>

#define GRAIN 8192u

static const double SQRT1_2 = 0.70710678118654752440;      /* 1/sqrt(2) */
static const double INV_SQRT_2PI = 0.39894228040143267794; /* 1/sqrt(2 pi) */
static const double GELU_K = 0.79788456080286535588;       /* sqrt(2/pi) */
static const double GELU_A = 0.044715;

/* gelu(x) and gelu'(x). erfc(-x/sqrt(2)) = 1 + erf(x/sqrt(2)) keeps its
 * relative accuracy for negative x, where 1 + erf would cancel. */
static double gelu_erf(double x) {
  return 0.5 * x * erfc(-x * SQRT1_2);
}
static double gelu_erf_grad(double x) {
  return 0.5 * erfc(-x * SQRT1_2) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
}
/* tanh form through 1 + tanh(u) = 2 sigmoid(2u): exp() costs about a third
 * of tanh() in glibc. With e = exp(-2u), s = 1 / (1 + e):
 *   gelu = x s,  gelu' = s + x s (1 - s) 2u',  s (1 - s) = e s^2
 * (e = inf: s = 0 and s (1 - s) = 0). */
static inline double gelu_tanh(double x) {
  return x / (1.0 + vkf_exp_d(-2.0 * GELU_K * (x + GELU_A * x * x * x)));
}
/* (vkf_exp_d stays finite: e <= e^708, s * s underflows to 0 there) */
static inline double gelu_tanh_grad(double x) {
  double e = vkf_exp_d(-2.0 * GELU_K * (x + GELU_A * x * x * x)), s = 1.0 / (1.0 + e);
  double sp = e * s * s;
  return s + x * sp * 2.0 * GELU_K * (1.0 + 3.0 * GELU_A * x * x);
}
static inline double sigmoid(double x) {
  return 1.0 / (1.0 + vkf_exp_d(-x));
}
static inline double silu(double x) {
  return x * sigmoid(x);
}
static inline double silu_grad(double x) {
  double s = sigmoid(x);
  return s * (1.0 + x * (1.0 - s));
}

/* Forward: out = f(x); backward: dx += dout * f'(x). Operands as in
 * vkf_act_params. */
#define UNARY_TASKS(name, f, df)                                                                   \
  VKF_VEC_CLONES static void name##_task(void *arg, uint32_t begin, uint32_t end,                  \
                                         uint32_t worker) {                                        \
    (void)worker;                                                                                  \
    const vkf_op *op = arg;                                                                        \
    float *out = vkf_cpu_f32(op, 0);                                                               \
    const float *x = vkf_cpu_f32(op, 1);                                                           \
    for (uint32_t i = begin; i < end; i++)                                                         \
      out[i] = (float)f((double)x[i]);                                                             \
  }                                                                                                \
  VKF_VEC_CLONES static void name##_backward_task(void *arg, uint32_t begin, uint32_t end,         \
                                                  uint32_t worker) {                               \
    (void)worker;                                                                                  \
    const vkf_op *op = arg;                                                                        \
    float *dx = vkf_cpu_f32(op, 0);                                                                \
    const float *dout = vkf_cpu_f32(op, 1), *x = vkf_cpu_f32(op, 2);                               \
    for (uint32_t i = begin; i < end; i++)                                                         \
      dx[i] += (float)((double)dout[i] * df((double)x[i]));                                        \
  }

UNARY_TASKS(gelu_erf, gelu_erf, gelu_erf_grad)
UNARY_TASKS(gelu_tanh, gelu_tanh, gelu_tanh_grad)
UNARY_TASKS(silu, silu, silu_grad)

vkf_status vkf_cpu_gelu(vkf_cpu *cpu, const vkf_op *op) {
  bool tanh_form = op->p.act.mode == VKF_GELU_MODE_TANH;
  vkf_pool_run(cpu->pool, op->p.act.n, GRAIN, tanh_form ? gelu_tanh_task : gelu_erf_task,
               (void *)op);
  return VKF_OK;
}

vkf_status vkf_cpu_gelu_backward(vkf_cpu *cpu, const vkf_op *op) {
  bool tanh_form = op->p.act.mode == VKF_GELU_MODE_TANH;
  vkf_pool_run(cpu->pool, op->p.act.n, GRAIN,
               tanh_form ? gelu_tanh_backward_task : gelu_erf_backward_task, (void *)op);
  return VKF_OK;
}

vkf_status vkf_cpu_silu(vkf_cpu *cpu, const vkf_op *op) {
  vkf_pool_run(cpu->pool, op->p.act.n, GRAIN, silu_task, (void *)op);
  return VKF_OK;
}

vkf_status vkf_cpu_silu_backward(vkf_cpu *cpu, const vkf_op *op) {
  vkf_pool_run(cpu->pool, op->p.act.n, GRAIN, silu_backward_task, (void *)op);
  return VKF_OK;
}

/* swiglu over out elements [begin, end) of [rows, f]; gate_up is [rows, 2f].
 * Row pieces, so that the inner loops vectorise. */
VKF_VEC_CLONES static void swiglu_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  const uint32_t f = op->p.swiglu.f;
  float *out = vkf_cpu_f32(op, 0);
  const float *gu = vkf_cpu_f32(op, 1);
  for (uint32_t i = begin; i < end;) {
    const uint32_t r = i / f, j0 = i % f, j1 = end - (i - j0) < f ? end - (i - j0) : f;
    const float *g = gu + (size_t)r * 2 * f, *u = g + f;
    float *o = out + (size_t)r * f;
    for (uint32_t j = j0; j < j1; j++)
      o[j] = (float)(silu((double)g[j]) * u[j]);
    i += j1 - j0;
  }
}

VKF_VEC_CLONES static void swiglu_backward_task(void *arg, uint32_t begin, uint32_t end,
                                                uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  const uint32_t f = op->p.swiglu.f;
  float *dgu = vkf_cpu_f32(op, 0);
  const float *dout = vkf_cpu_f32(op, 1), *gu = vkf_cpu_f32(op, 2);
  for (uint32_t i = begin; i < end;) {
    const uint32_t r = i / f, j0 = i % f, j1 = end - (i - j0) < f ? end - (i - j0) : f;
    const float *g = gu + (size_t)r * 2 * f, *u = g + f, *d = dout + (size_t)r * f;
    float *dg = dgu + (size_t)r * 2 * f, *du = dg + f;
    for (uint32_t j = j0; j < j1; j++) {
      double gj = g[j], uj = u[j], dj = d[j];
      dg[j] += (float)(dj * uj * silu_grad(gj));
      du[j] += (float)(dj * silu(gj));
    }
    i += j1 - j0;
  }
}

vkf_status vkf_cpu_swiglu(vkf_cpu *cpu, const vkf_op *op) {
  vkf_pool_run(cpu->pool, op->p.swiglu.rows * op->p.swiglu.f, GRAIN, swiglu_task, (void *)op);
  return VKF_OK;
}

vkf_status vkf_cpu_swiglu_backward(vkf_cpu *cpu, const vkf_op *op) {
  vkf_pool_run(cpu->pool, op->p.swiglu.rows * op->p.swiglu.f, GRAIN, swiglu_backward_task,
               (void *)op);
  return VKF_OK;
}
