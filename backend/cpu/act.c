/* gelu (erf and tanh forms), silu, swiglu, forward and backward, on the CPU.
 * Each element is evaluated in double and rounded once, so the CPU backend
 * stays a sharp reference for the Vulkan kernels. */
#include "cpu.h"

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
static double gelu_tanh(double x) {
  return x / (1.0 + exp(-2.0 * GELU_K * (x + GELU_A * x * x * x)));
}
static double gelu_tanh_grad(double x) {
  double e = exp(-2.0 * GELU_K * (x + GELU_A * x * x * x)), s = 1.0 / (1.0 + e);
  double sp = e < HUGE_VAL ? e * s * s : 0.0;
  return s + x * sp * 2.0 * GELU_K * (1.0 + 3.0 * GELU_A * x * x);
}
static double sigmoid(double x) {
  return 1.0 / (1.0 + exp(-x));
}
static double silu(double x) {
  return x * sigmoid(x);
}
static double silu_grad(double x) {
  double s = sigmoid(x);
  return s * (1.0 + x * (1.0 - s));
}

/* Forward: out = f(x); backward: dx += dout * f'(x). Operands as in
 * vkf_act_params. */
#define UNARY_TASKS(name, f, df)                                                                   \
  static void name##_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {              \
    (void)worker;                                                                                  \
    const vkf_op *op = arg;                                                                        \
    float *out = vkf_cpu_f32(op, 0);                                                               \
    const float *x = vkf_cpu_f32(op, 1);                                                           \
    for (uint32_t i = begin; i < end; i++)                                                         \
      out[i] = (float)f((double)x[i]);                                                             \
  }                                                                                                \
  static void name##_backward_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {     \
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

/* swiglu over out elements [begin, end) of [rows, f]; gate_up is [rows, 2f]. */
static void swiglu_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  const uint32_t f = op->p.swiglu.f;
  float *out = vkf_cpu_f32(op, 0);
  const float *gu = vkf_cpu_f32(op, 1);
  uint32_t r = begin / f, j = begin % f;
  for (uint32_t i = begin; i < end; i++) {
    const float *row = gu + (size_t)r * 2 * f;
    out[i] = (float)(silu((double)row[j]) * row[f + j]);
    if (++j == f) {
      j = 0;
      r++;
    }
  }
}

static void swiglu_backward_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  const uint32_t f = op->p.swiglu.f;
  float *dgu = vkf_cpu_f32(op, 0);
  const float *dout = vkf_cpu_f32(op, 1), *gu = vkf_cpu_f32(op, 2);
  uint32_t r = begin / f, j = begin % f;
  for (uint32_t i = begin; i < end; i++) {
    const float *row = gu + (size_t)r * 2 * f;
    float *drow = dgu + (size_t)r * 2 * f;
    double g = row[j], u = row[f + j], d = dout[i];
    drow[j] += (float)(d * u * silu_grad(g));
    drow[f + j] += (float)(d * silu(g));
    if (++j == f) {
      j = 0;
      r++;
    }
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
