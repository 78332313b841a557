#version 450
// Activations, one element (VEC4: one vec4) per invocation:
//   GELU (mode MODE: exact erf form or GPT-2's tanh form), SILU, SWIGLU;
//   forward: out = f(x); BACKWARD: dx += dout * f'(x).
// SWIGLU reads a fused [rows, 2f] gate_up (gate, then up, in each row).
// VEC4: n (f) counts vec4s; every operand is 16-byte aligned.
//
// Overflow-safe forms: sigmoid(x) = 1 / (1 + exp(-x)) is 0 or 1 at the
// extremes, never NaN; tanh-gelu uses 1 + tanh(u) = 2 sigmoid(2u), since
// some drivers' tanh returns NaN for large |u|.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint MODE = 0; // gelu: VKF_GELU_MODE_*

#ifdef VEC4
layout(buffer_reference, std430, buffer_reference_align = 16) buffer V { vec4 v[]; };
#define T vec4
#else
#define V F32
#define T float
#endif

layout(push_constant) uniform PC {
  F32 out_; // dx (dgate_up) for BACKWARD
#ifdef BACKWARD
  F32 dout;
#endif
  F32 x; // gate_up for SWIGLU
#ifdef SWIGLU
  vkf_swiglu_params p;
#else
  vkf_act_params p;
#endif
} pc;

const float SQRT1_2 = 0.70710678118654752;
const float INV_SQRT_2PI = 0.39894228040143268;
const float GELU_K = 0.79788456080286536; // sqrt(2/pi)
const float GELU_A = 0.044715;

T sigmoid(T x) {
  return 1.0 / (1.0 + exp(-x));
}

T silu(T x) {
  return x * sigmoid(x);
}

// 1 - sigmoid(x) is evaluated as sigmoid(-x): accurate where sigmoid(x)
// nears 1 (1 - s would keep only the rounding of s).
T silu_grad(T x) {
  return sigmoid(x) * (1.0 + x * sigmoid(-x));
}

// erfc(z) for z >= 0 with a relative error below 1.2e-7 (Chebyshev fit of
// Press et al., Numerical Recipes, 2nd ed., 6.2), so 1 + erf(x) = erfc(-x)
// stays accurate in gelu's negative tail where 1 + erf(x) would cancel.
T erfc_pos(T z) {
  T t = 1.0 / (1.0 + 0.5 * z);
  T p = T(0.17087277);
  p = -0.82215223 + t * p;
  p = 1.48851587 + t * p;
  p = -1.13520398 + t * p;
  p = 0.27886807 + t * p;
  p = -0.18628806 + t * p;
  p = 0.09678418 + t * p;
  p = 0.37409196 + t * p;
  p = 1.00002368 + t * p;
  p = -1.26551223 + t * p;
  return t * exp(p - z * z);
}

// erfc(z) for any z: erfc(-z) = 2 - erfc(z). step() is exactly 0 or 1.
T erfc_any(T z) {
  T e = erfc_pos(abs(z));
  return mix(2.0 - e, e, step(0.0, z));
}

T gelu(T x) {
  if (MODE == VKF_GELU_MODE_TANH)
    return x * sigmoid(2.0 * GELU_K * (x + GELU_A * x * x * x));
  return 0.5 * x * erfc_any(-SQRT1_2 * x);
}

T gelu_grad(T x) {
  if (MODE == VKF_GELU_MODE_TANH) {
    // d/dx x s(2u) = s + 2 x s (1 - s) u',  u = k (x + a x^3)
    T v = 2.0 * GELU_K * (x + GELU_A * x * x * x);
    T s = sigmoid(v);
    return s + 2.0 * x * s * sigmoid(-v) * GELU_K * (1.0 + 3.0 * GELU_A * x * x);
  }
  return 0.5 * erfc_any(-SQRT1_2 * x) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
}

void main() {
  const uint i = vkf_linear_index();
  V o = V(pc.out_);
  V x = V(pc.x);
#ifdef SWIGLU
  const uint f = pc.p.f;
  if (i >= pc.p.rows * f)
    return;
  const uint r = i / f, j = i - r * f;
  const uint ig = r * 2u * f + j, iu = ig + f;
  const T g = x.v[ig], u = x.v[iu];
#ifdef BACKWARD
  const T d = V(pc.dout).v[i];
  o.v[ig] += d * u * silu_grad(g);
  o.v[iu] += d * silu(g);
#else
  o.v[i] = silu(g) * u;
#endif
#else // GELU, SILU
  if (i >= pc.p.n)
    return;
#if defined(GELU)
#define F gelu
#define DF gelu_grad
#elif defined(SILU)
#define F silu
#define DF silu_grad
#else
#error "define GELU, SILU or SWIGLU"
#endif
#ifdef BACKWARD
  o.v[i] += V(pc.dout).v[i] * DF(x.v[i]);
#else
  o.v[i] = F(x.v[i]); // in place (out == x) is fine: one element per invocation
#endif
#endif
}
