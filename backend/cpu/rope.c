/* Rotary position embedding on the CPU: the reference. Inverse frequencies
 * theta^(-2i/rotary_dim) in long double once per op; the angle
 * position * inv_freq is formed and reduced to [-pi, pi] in long double
 * (64-bit mantissa on x86-64: exact to ~1e-10 rad for any int32 position),
 * then sin/cos in double, the rotation in double, rounded once to float. */
#include "cpu.h"

#include <math.h>

typedef struct rope_job {
  const vkf_op *op;
  const long double *inv_freq; /* [half]; NULL with tables */
  bool backward;
} rope_job;

static inline const int32_t *cpu_i32(const vkf_op *op, uint32_t i) {
  return op->t[i].buf
             ? (const int32_t *)(const void *)((const char *)op->t[i].buf->data + op->t[i].offset)
             : NULL;
}

/* One item per token (b, t): all heads. */
static void rope_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const rope_job *job = arg;
  const vkf_op *op = job->op;
  const vkf_rope_params *p = &op->p.rope;
  float *out = vkf_cpu_f32(op, 0);
  const float *x = vkf_cpu_f32(op, 1);
  const float *cos_t = vkf_cpu_f32(op, 2), *sin_t = vkf_cpu_f32(op, 3);
  const int32_t *pos_ids = cpu_i32(op, 4);
  const uint32_t half = p->pairs;
  const bool inter = p->flags & VKF_ROPEF_INTERLEAVED;
  for (uint32_t tok = begin; tok < end; tok++) {
    uint32_t b = tok / p->T, t = tok % p->T;
    int64_t pos = (p->flags & VKF_ROPEF_POS_IDS) ? (int64_t)pos_ids[tok]
                                                 : (int64_t)p->pos_offset + (int64_t)t;
    const float *ct = NULL, *st = NULL;
    if (p->flags & VKF_ROPEF_TABLE) {
      uint64_t row = (p->flags & VKF_ROPEF_TABLE_BT) ? tok : (uint64_t)pos;
      if (row >= (uint64_t)p->table_rows) /* unreachable after the frontend's check */
        row = 0;
      ct = cos_t + row * half;
      st = sin_t + row * half;
    }
    size_t base = (size_t)b * p->sB + (size_t)t * p->sT;
    for (uint32_t i = 0; i < half; i++) {
      double c, s;
      if (ct) {
        c = ct[i];
        s = st[i];
      } else {
        static const long double two_pi = 6.283185307179586476925286766559005768L;
        long double a = (long double)pos * job->inv_freq[i];
        double r = (double)(a - rintl(a / two_pi) * two_pi);
        c = cos(r);
        s = sin(r);
      }
      for (uint32_t h = 0; h < p->H; h++) {
        size_t o = base + (size_t)h * p->sH;
        size_t e1 = inter ? o + 2 * i : o + i, e2 = inter ? e1 + 1 : o + i + half;
        double x1 = x[e1], x2 = x[e2];
        if (job->backward) {
          out[e1] = (float)((double)out[e1] + (c * x1 + s * x2));
          out[e2] = (float)((double)out[e2] + (c * x2 - s * x1));
        } else {
          out[e1] = (float)(c * x1 - s * x2);
          out[e2] = (float)(s * x1 + c * x2);
        }
      }
    }
    if (job->backward || !(p->flags & VKF_ROPEF_INPLACE)) {
      for (uint32_t h = 0; h < p->H; h++) {
        size_t o = base + (size_t)h * p->sH;
        for (uint32_t d = 2 * half; d < p->D; d++)
          out[o + d] = job->backward ? out[o + d] + x[o + d] : x[o + d];
      }
    }
  }
}

static vkf_status run(vkf_cpu *cpu, const vkf_op *op, bool backward) {
  const vkf_rope_params *p = &op->p.rope;
  long double *inv_freq = NULL;
  if (!(p->flags & VKF_ROPEF_TABLE)) {
    inv_freq = vkf_malloc(cpu->base.env, p->pairs * sizeof(long double));
    if (!inv_freq)
      return vkf_fail(cpu->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY, "rope: frequency table");
    /* freq = theta^(-2/rotary_dim) as a 64-bit fraction (what the device
     * uses too); inv_freq[i] = freq^i, in long double. */
    long double f = ldexpl((long double)p->freq_hi, -32) + ldexpl((long double)p->freq_lo, -64);
    for (uint32_t i = 0; i < p->pairs; i++)
      inv_freq[i] = powl(f, (long double)i);
  }
  rope_job job = {op, inv_freq, backward};
  uint32_t grain = 4096 / (p->H * p->D + 1) + 1;
  vkf_pool_run(cpu->pool, p->B * p->T, grain, rope_task, &job);
  vkf_free(cpu->base.env, inv_freq);
  return VKF_OK;
}

vkf_status vkf_cpu_rope(vkf_cpu *cpu, const vkf_op *op) {
  return run(cpu, op, false);
}

vkf_status vkf_cpu_rope_backward(vkf_cpu *cpu, const vkf_op *op) {
  return run(cpu, op, true);
}
