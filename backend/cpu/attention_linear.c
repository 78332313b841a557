/* Linear attention on the CPU: chunked forward and backward, and the
 * recurrent decoding step (see shaders/vkf_params.h for the operands and the
 * saved / workspace layouts).
 *
 * Forward: (1) per (batch, kv head, chunk) the chunk's sum of phi(k_j) v'_j^T
 * into saved's state slots; (2) per (batch, kv head, state row) an exclusive
 * prefix scan over the chunks (in double, starting from the initial state);
 * (3) per (batch, kv head, chunk) the output rows of the group's query heads:
 * phi(q) S'_c plus the causally masked in-chunk products.
 * Backward: g rows; dq per chunk (S'_c from saved plus the in-chunk part);
 * per chunk the sum over the group of phi(q_i) g_i^T, reverse-scanned into
 * R_c (later chunks only); dk and dv per chunk from R_c plus the in-chunk
 * parts, the group's heads added in order.
 *
 * Every output element is produced by one task in one fixed order, so the
 * results do not depend on the thread count. The products are written as
 * row updates (y += a x over contiguous rows, in float, which the compiler
 * vectorises) against transposed copies of the chunk's operands, never as
 * dot products; the scans over the chunks run in double. */
#include "cpu.h"

#include <math.h>
#include <string.h>

static inline float phi(float x) {
  return x > 0.0f ? x + 1.0f : expf(x);
}

static inline float dphi(float x) {
  return x > 0.0f ? 1.0f : expf(x);
}

static inline void axpy(float *y, float a, const float *x, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    y[i] += a * x[i];
}

typedef struct lattn_job {
  const vkf_linear_attention_params *p;
  const vkf_op *op;
  uint32_t G, Dv1;
  uint32_t k_op, v_op;            /* operand indices of k and v */
  size_t q_t, k_t, v_t, o_t, g_t; /* per-token strides of q, k, v, out, g */
  size_t state;                   /* D * Dv1 */
  float *scratch;
  size_t per_worker;
} lattn_job;

static lattn_job job_of(const vkf_op *op) {
  const vkf_linear_attention_params *p = &op->p.linear_attention;
  lattn_job j = {.p = p, .op = op, .G = p->Hq / p->Hkv, .Dv1 = p->Dv + 1, .k_op = 4, .v_op = 5};
  if (op->kind == VKF_OP_LINEAR_ATTENTION_FORWARD || op->kind == VKF_OP_LINEAR_ATTENTION_DECODE)
    j.k_op = 3, j.v_op = 4;
  j.q_t = (size_t)p->Hq * p->D;
  j.k_t = (size_t)p->Hkv * p->D;
  j.v_t = (size_t)p->Hkv * p->Dv;
  j.o_t = (size_t)p->Hq * p->Dv;
  j.g_t = (size_t)p->Hq * j.Dv1;
  j.state = (size_t)p->D * j.Dv1;
  return j;
}

static vkf_status scratch_alloc(vkf_cpu *cpu, lattn_job *j, size_t per_worker) {
  j->per_worker = (per_worker + 15) & ~(size_t)15;
  size_t n = (size_t)vkf_pool_threads(cpu->pool) * j->per_worker;
  j->scratch = vkf_malloc(cpu->base.env, n * sizeof(float));
  if (!j->scratch)
    return vkf_fail(cpu->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s: %zu bytes of scratch",
                    vkf_op_name(j->op->kind), n * sizeof(float));
  return VKF_OK;
}

/* A chunk of one (batch, kv head): item -> b, hk, first token, rows. */
typedef struct chunk_of {
  uint32_t b, hk, t0, n;
  size_t bk; /* b * Hkv + hk */
} chunk_of;

static chunk_of chunk_at(const lattn_job *J, uint32_t item) {
  const vkf_linear_attention_params *p = J->p;
  chunk_of c;
  c.bk = item / p->n_chunks;
  c.b = (uint32_t)(c.bk / p->Hkv);
  c.hk = (uint32_t)(c.bk % p->Hkv);
  c.t0 = (item % p->n_chunks) * p->chunk;
  c.n = p->T - c.t0 < p->chunk ? p->T - c.t0 : p->chunk;
  return c;
}

/* The state slot of chunk c of (b, kv head) bk in a states array. */
static float *state_at(const lattn_job *J, float *states, size_t bk, uint32_t c) {
  return states + (bk * J->p->n_chunks + c) * J->state;
}

/* phi(k) rows [n][D] and v' = (v, 1) rows [n][Dv1] of a chunk. */
static void load_kv(const lattn_job *J, const chunk_of *c, float *Kf, float *Vp) {
  const vkf_linear_attention_params *p = J->p;
  const float *k = vkf_cpu_f32(J->op, J->k_op), *v = vkf_cpu_f32(J->op, J->v_op);
  for (uint32_t j = 0; j < c->n; j++) {
    const size_t t = (size_t)c->b * p->T + c->t0 + j;
    const float *kr = k + t * J->k_t + (size_t)c->hk * p->D;
    const float *vr = v + t * J->v_t + (size_t)c->hk * p->Dv;
    for (uint32_t d = 0; d < p->D; d++)
      Kf[(size_t)j * p->D + d] = phi(kr[d]);
    memcpy(Vp + (size_t)j * J->Dv1, vr, p->Dv * sizeof(float));
    Vp[(size_t)j * J->Dv1 + p->Dv] = 1.0f;
  }
}

/* xT[f][i] = x[i][f] for n rows of `w` features (xT's rows hold `ld`). */
static void transpose(const float *x, uint32_t n, uint32_t w, float *xT, size_t ld) {
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t f = 0; f < w; f++)
      xT[f * ld + i] = x[(size_t)i * w + f];
}

/* phi(q) rows [n][D] of query head h in a chunk; q is operand `qi`. */
static void load_q(const lattn_job *J, const chunk_of *c, uint32_t h, uint32_t qi, float *Qf) {
  const vkf_linear_attention_params *p = J->p;
  const float *q = vkf_cpu_f32(J->op, qi);
  for (uint32_t i = 0; i < c->n; i++) {
    const float *qr = q + ((size_t)c->b * p->T + c->t0 + i) * J->q_t + (size_t)h * p->D;
    for (uint32_t d = 0; d < p->D; d++)
      Qf[(size_t)i * p->D + d] = phi(qr[d]);
  }
}

/* ------------------------------------------------------------------------ */
/* Forward                                                                  */
/* ------------------------------------------------------------------------ */

/* (1) saved state slot of each chunk = sum over its tokens of phi(k) v'^T */
static void chunk_sums_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  const lattn_job *J = arg;
  const vkf_linear_attention_params *p = J->p;
  float *Kf = J->scratch + worker * J->per_worker, *Vp = Kf + (size_t)p->chunk * p->D;
  float *states = vkf_cpu_f32(J->op, 1);
  for (uint32_t item = begin; item < end; item++) {
    const chunk_of c = chunk_at(J, item);
    float *U = state_at(J, states, c.bk, item % p->n_chunks);
    load_kv(J, &c, Kf, Vp);
    memset(U, 0, J->state * sizeof(float));
    for (uint32_t j = 0; j < c.n; j++)
      for (uint32_t d = 0; d < p->D; d++)
        axpy(U + (size_t)d * J->Dv1, Kf[(size_t)j * p->D + d], Vp + (size_t)j * J->Dv1, J->Dv1);
  }
}

/* (2) and the backward's reverse scan: per (bk, state row d), replace each
 * chunk's slot by the sum of the slots before it (forward) or after it
 * (reverse), plus the initial state; the forward writes the final state. */
typedef struct scan_job {
  const lattn_job *J;
  float *states;
  float *state; /* forward with VKF_LATTN_STATE: initial in, final out */
  bool reverse;
} scan_job;

static void scan_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  const scan_job *S = arg;
  const lattn_job *J = S->J;
  const vkf_linear_attention_params *p = J->p;
  const uint32_t Dv1 = J->Dv1, nc = p->n_chunks;
  double *run = (double *)(J->scratch + worker * J->per_worker);
  for (uint32_t item = begin; item < end; item++) {
    const size_t bk = item / p->D, d = item % p->D;
    float *init = S->state ? S->state + bk * J->state + d * Dv1 : NULL;
    for (uint32_t e = 0; e < Dv1; e++)
      run[e] = init ? init[e] : 0.0;
    for (uint32_t i = 0; i < nc; i++) {
      float *row = state_at(J, S->states, bk, S->reverse ? nc - 1 - i : i) + d * Dv1;
      for (uint32_t e = 0; e < Dv1; e++) {
        const float x = row[e];
        row[e] = (float)run[e];
        run[e] += x;
      }
    }
    if (init)
      for (uint32_t e = 0; e < Dv1; e++)
        init[e] = (float)run[e];
  }
}

static void scan(vkf_cpu *cpu, const lattn_job *J, float *states, float *state, bool reverse) {
  scan_job S = {J, states, state, reverse};
  const vkf_linear_attention_params *p = J->p;
  uint32_t rows = p->B * p->Hkv * p->D;
  uint32_t grain = 1 + (uint32_t)(16384 / ((uint64_t)p->n_chunks * J->Dv1 + 1));
  vkf_pool_run(cpu->pool, rows, grain, scan_task, &S);
}

/* (3) output rows of a chunk for each query head of the group:
 * o = phi(q_i)^T S'_c + sum_{j <= i} (phi(q_i) . phi(k_j)) v'_j */
static void out_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  const lattn_job *J = arg;
  const vkf_linear_attention_params *p = J->p;
  const uint32_t C = p->chunk, D = p->D, Dv = p->Dv, Dv1 = J->Dv1;
  float *Kf = J->scratch + worker * J->per_worker, *Vp = Kf + (size_t)C * D;
  float *KfT = Vp + (size_t)C * Dv1, *Qf = KfT + (size_t)D * C, *A = Qf + (size_t)C * D;
  float *O = A + C;
  float *out = vkf_cpu_f32(J->op, 0), *saved = vkf_cpu_f32(J->op, 1);
  float *den = saved + (size_t)p->B * p->Hkv * p->n_chunks * J->state;
  for (uint32_t item = begin; item < end; item++) {
    const chunk_of c = chunk_at(J, item);
    const float *S = state_at(J, saved, c.bk, item % p->n_chunks);
    load_kv(J, &c, Kf, Vp);
    transpose(Kf, c.n, D, KfT, C);
    for (uint32_t r = 0; r < J->G; r++) {
      const uint32_t h = c.hk * J->G + r;
      load_q(J, &c, h, 2, Qf);
      for (uint32_t i = 0; i < c.n; i++) {
        const float *qi = Qf + (size_t)i * D;
        memset(A, 0, (i + 1) * sizeof(float));
        memset(O, 0, Dv1 * sizeof(float));
        for (uint32_t d = 0; d < D; d++) {
          axpy(A, qi[d], KfT + (size_t)d * C, i + 1); /* scores of keys j <= i */
          axpy(O, qi[d], S + (size_t)d * Dv1, Dv1);   /* the past */
        }
        for (uint32_t j = 0; j <= i; j++)
          axpy(O, A[j], Vp + (size_t)j * Dv1, Dv1);
        const size_t t = (size_t)c.b * p->T + c.t0 + i;
        const float dn = O[Dv], inv = 1.0f / (dn + p->eps);
        float *orow = out + t * J->o_t + (size_t)h * Dv;
        for (uint32_t e = 0; e < Dv; e++)
          orow[e] = O[e] * inv;
        den[t * p->Hq + h] = dn;
      }
    }
  }
}

vkf_status vkf_cpu_linear_attention_forward(vkf_cpu *cpu, const vkf_op *op) {
  lattn_job J = job_of(op);
  const vkf_linear_attention_params *p = J.p;
  const size_t C = p->chunk;
  size_t need = C * (3 * p->D + J.Dv1) + C + J.Dv1;
  if (need < 2 * J.Dv1) /* the scan's double running sums */
    need = 2 * J.Dv1;
  vkf_status st = scratch_alloc(cpu, &J, need);
  if (st != VKF_OK)
    return st;
  const uint32_t items = p->B * p->Hkv * p->n_chunks;
  vkf_pool_run(cpu->pool, items, 1, chunk_sums_task, &J);
  scan(cpu, &J, vkf_cpu_f32(op, 1), (p->flags & VKF_LATTN_STATE) ? vkf_cpu_f32(op, 5) : NULL,
       false);
  vkf_pool_run(cpu->pool, items, 1, out_task, &J);
  vkf_free(cpu->base.env, J.scratch);
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* Backward                                                                 */
/* ------------------------------------------------------------------------ */

/* g[r] = (dout / (den + eps), -dout . out / (den + eps)) per row r = (b, t, h) */
static void g_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const lattn_job *J = arg;
  const vkf_linear_attention_params *p = J->p;
  float *g = vkf_cpu_f32(J->op, 1);
  const float *dout = vkf_cpu_f32(J->op, 2), *out = vkf_cpu_f32(J->op, 6);
  const float *den = vkf_cpu_f32(J->op, 7) + (size_t)p->B * p->Hkv * p->n_chunks * J->state;
  for (uint32_t r = begin; r < end; r++) {
    const float *dO = dout + (size_t)r * p->Dv, *o = out + (size_t)r * p->Dv;
    float *gr = g + (size_t)r * J->Dv1;
    const float inv = 1.0f / (den[r] + p->eps);
    for (uint32_t e = 0; e < p->Dv; e++)
      gr[e] = dO[e] * inv;
    double s = 0;
    for (uint32_t e = 0; e < p->Dv; e++)
      s += (double)dO[e] * o[e];
    gr[p->Dv] = (float)-s * inv;
  }
}

/* dq rows of a chunk: dphi(q_i) = S'_c g_i + sum_{j <= i in chunk} (g_i . v'_j) phi(k_j) */
static void dq_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  const lattn_job *J = arg;
  const vkf_linear_attention_params *p = J->p;
  const uint32_t C = p->chunk, D = p->D, Dv1 = J->Dv1;
  float *Kf = J->scratch + worker * J->per_worker, *Vp = Kf + (size_t)C * D;
  float *VpT = Vp + (size_t)C * Dv1, *ST = VpT + (size_t)Dv1 * C, *A = ST + (size_t)Dv1 * D;
  float *dQ = A + C;
  float *dq = vkf_cpu_f32(J->op, 0);
  const float *g = vkf_cpu_f32(J->op, 1), *q = vkf_cpu_f32(J->op, 3);
  float *saved = vkf_cpu_f32(J->op, 7);
  for (uint32_t item = begin; item < end; item++) {
    const chunk_of c = chunk_at(J, item);
    load_kv(J, &c, Kf, Vp);
    transpose(Vp, c.n, Dv1, VpT, C);
    transpose(state_at(J, saved, c.bk, item % p->n_chunks), D, Dv1, ST, D);
    for (uint32_t r = 0; r < J->G; r++) {
      const uint32_t h = c.hk * J->G + r;
      for (uint32_t i = 0; i < c.n; i++) {
        const size_t t = (size_t)c.b * p->T + c.t0 + i;
        const float *gi = g + t * J->g_t + (size_t)h * Dv1;
        memset(A, 0, (i + 1) * sizeof(float));
        memset(dQ, 0, D * sizeof(float));
        for (uint32_t e = 0; e < Dv1; e++) {
          axpy(A, gi[e], VpT + (size_t)e * C, i + 1);
          axpy(dQ, gi[e], ST + (size_t)e * D, D);
        }
        for (uint32_t j = 0; j <= i; j++)
          axpy(dQ, A[j], Kf + (size_t)j * D, D);
        float *dqr = dq + t * J->q_t + (size_t)h * D;
        const float *qr = q + t * J->q_t + (size_t)h * D;
        for (uint32_t d = 0; d < D; d++)
          dqr[d] += dQ[d] * dphi(qr[d]);
      }
    }
  }
}

/* R slot of each chunk = sum over the group's heads and the chunk's rows of phi(q_i) g_i^T */
static void rsums_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  const lattn_job *J = arg;
  const vkf_linear_attention_params *p = J->p;
  const uint32_t D = p->D, Dv1 = J->Dv1;
  float *Qf = J->scratch + worker * J->per_worker;
  float *g = vkf_cpu_f32(J->op, 1), *R = g + (size_t)p->B * p->T * J->g_t;
  for (uint32_t item = begin; item < end; item++) {
    const chunk_of c = chunk_at(J, item);
    float *W = state_at(J, R, c.bk, item % p->n_chunks);
    memset(W, 0, J->state * sizeof(float));
    for (uint32_t r = 0; r < J->G; r++) {
      const uint32_t h = c.hk * J->G + r;
      load_q(J, &c, h, 3, Qf);
      for (uint32_t i = 0; i < c.n; i++) {
        const float *gi = g + ((size_t)c.b * p->T + c.t0 + i) * J->g_t + (size_t)h * Dv1;
        for (uint32_t d = 0; d < D; d++)
          axpy(W + (size_t)d * Dv1, Qf[(size_t)i * D + d], gi, Dv1);
      }
    }
  }
}

vkf_status vkf_cpu_linear_attention_backward_q(vkf_cpu *cpu, const vkf_op *op) {
  lattn_job J = job_of(op);
  const vkf_linear_attention_params *p = J.p;
  const size_t C = p->chunk;
  size_t need = C * (p->D + 2 * J.Dv1) + (size_t)J.Dv1 * p->D + C + p->D;
  if (need < 2 * J.Dv1)
    need = 2 * J.Dv1;
  vkf_status st = scratch_alloc(cpu, &J, need);
  if (st != VKF_OK)
    return st;
  const uint32_t rows = p->B * p->T * p->Hq, items = p->B * p->Hkv * p->n_chunks;
  vkf_pool_run(cpu->pool, rows, 1 + 8192 / (2 * p->Dv + 1), g_task, &J);
  vkf_pool_run(cpu->pool, items, 1, dq_task, &J);
  vkf_pool_run(cpu->pool, items, 1, rsums_task, &J);
  float *R = vkf_cpu_f32(op, 1) + (size_t)p->B * p->T * J.g_t;
  scan(cpu, &J, R, NULL, true);
  vkf_free(cpu->base.env, J.scratch);
  return VKF_OK;
}

/* dk, dv rows of a chunk:
 *   dphi(k_j) = R_c v'_j + sum_h sum_{i >= j in chunk} (g_i . v'_j) phi(q_i)
 *   dv_j      = R_c^T phi(k_j) + sum_h sum_{i >= j in chunk} (phi(q_i) . phi(k_j)) g_i */
static void dkv_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  const lattn_job *J = arg;
  const vkf_linear_attention_params *p = J->p;
  const uint32_t C = p->chunk, D = p->D, Dv = p->Dv, Dv1 = J->Dv1;
  float *Kf = J->scratch + worker * J->per_worker, *Vp = Kf + (size_t)C * D;
  float *RT = Vp + (size_t)C * Dv1, *Qf = RT + (size_t)Dv1 * D, *QfT = Qf + (size_t)C * D;
  float *G = QfT + (size_t)D * C, *GT = G + (size_t)C * Dv1, *dK = GT + (size_t)Dv1 * C;
  float *dV = dK + (size_t)C * D, *A1 = dV + (size_t)C * Dv1, *A2 = A1 + C;
  float *dk = vkf_cpu_f32(J->op, 0), *dv = vkf_cpu_f32(J->op, 1);
  float *g = vkf_cpu_f32(J->op, 2), *R = g + (size_t)p->B * p->T * J->g_t;
  const float *k = vkf_cpu_f32(J->op, 4);
  for (uint32_t item = begin; item < end; item++) {
    const chunk_of c = chunk_at(J, item);
    const float *Rc = state_at(J, R, c.bk, item % p->n_chunks);
    load_kv(J, &c, Kf, Vp);
    transpose(Rc, D, Dv1, RT, D);
    for (uint32_t j = 0; j < c.n; j++) { /* the future chunks */
      const float *vj = Vp + (size_t)j * Dv1, *kj = Kf + (size_t)j * D;
      float *dKj = dK + (size_t)j * D, *dVj = dV + (size_t)j * Dv1;
      memset(dKj, 0, D * sizeof(float));
      memset(dVj, 0, Dv1 * sizeof(float));
      for (uint32_t e = 0; e < Dv1; e++)
        axpy(dKj, vj[e], RT + (size_t)e * D, D);
      for (uint32_t d = 0; d < D; d++)
        axpy(dVj, kj[d], Rc + (size_t)d * Dv1, Dv);
    }
    for (uint32_t r = 0; r < J->G; r++) { /* this chunk, i >= j, the group's heads in order */
      const uint32_t h = c.hk * J->G + r;
      load_q(J, &c, h, 3, Qf);
      transpose(Qf, c.n, D, QfT, C);
      for (uint32_t i = 0; i < c.n; i++)
        memcpy(G + (size_t)i * Dv1, g + ((size_t)c.b * p->T + c.t0 + i) * J->g_t + (size_t)h * Dv1,
               Dv1 * sizeof(float));
      transpose(G, c.n, Dv1, GT, C);
      for (uint32_t j = 0; j < c.n; j++) {
        const float *vj = Vp + (size_t)j * Dv1, *kj = Kf + (size_t)j * D;
        const uint32_t m = c.n - j; /* rows i = j .. n - 1 */
        memset(A1, 0, m * sizeof(float));
        memset(A2, 0, m * sizeof(float));
        for (uint32_t e = 0; e < Dv1; e++)
          axpy(A1, vj[e], GT + (size_t)e * C + j, m);
        for (uint32_t d = 0; d < D; d++)
          axpy(A2, kj[d], QfT + (size_t)d * C + j, m);
        float *dKj = dK + (size_t)j * D, *dVj = dV + (size_t)j * Dv1;
        for (uint32_t i = 0; i < m; i++) {
          axpy(dKj, A1[i], Qf + (size_t)(j + i) * D, D);
          axpy(dVj, A2[i], G + (size_t)(j + i) * Dv1, Dv);
        }
      }
    }
    for (uint32_t j = 0; j < c.n; j++) {
      const size_t t = (size_t)c.b * p->T + c.t0 + j;
      float *dkr = dk + t * J->k_t + (size_t)c.hk * D, *dvr = dv + t * J->v_t + (size_t)c.hk * Dv;
      const float *kr = k + t * J->k_t + (size_t)c.hk * D;
      for (uint32_t d = 0; d < D; d++)
        dkr[d] += dK[(size_t)j * D + d] * dphi(kr[d]);
      for (uint32_t e = 0; e < Dv; e++)
        dvr[e] += dV[(size_t)j * Dv1 + e];
    }
  }
}

vkf_status vkf_cpu_linear_attention_backward_kv(vkf_cpu *cpu, const vkf_op *op) {
  lattn_job J = job_of(op);
  const vkf_linear_attention_params *p = J.p;
  const size_t C = p->chunk;
  vkf_status st = scratch_alloc(cpu, &J, C * (4 * p->D + 4 * J.Dv1) + (size_t)J.Dv1 * p->D + 2 * C);
  if (st != VKF_OK)
    return st;
  vkf_pool_run(cpu->pool, p->B * p->Hkv * p->n_chunks, 1, dkv_task, &J);
  vkf_free(cpu->base.env, J.scratch);
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* Decode                                                                   */
/* ------------------------------------------------------------------------ */

/* per (b, kv head): state += phi(k) v'^T, then each query head's row */
static void decode_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  const lattn_job *J = arg;
  const vkf_linear_attention_params *p = J->p;
  const uint32_t D = p->D, Dv = p->Dv, Dv1 = J->Dv1;
  double *num = (double *)(J->scratch + worker * J->per_worker); /* 64-byte aligned */
  float *Kf = (float *)(num + Dv1), *Vp = Kf + D, *Qf = Vp + Dv1;
  float *out = vkf_cpu_f32(J->op, 0), *state = vkf_cpu_f32(J->op, 1);
  const float *q = vkf_cpu_f32(J->op, 2), *k = vkf_cpu_f32(J->op, J->k_op);
  const float *v = vkf_cpu_f32(J->op, J->v_op);
  for (uint32_t bk = begin; bk < end; bk++) {
    const uint32_t b = bk / p->Hkv, hk = bk % p->Hkv;
    float *S = state + (size_t)bk * J->state;
    for (uint32_t d = 0; d < D; d++)
      Kf[d] = phi(k[(size_t)b * J->k_t + (size_t)hk * D + d]);
    memcpy(Vp, v + (size_t)b * J->v_t + (size_t)hk * Dv, Dv * sizeof(float));
    Vp[Dv] = 1.0f;
    for (uint32_t d = 0; d < D; d++)
      axpy(S + (size_t)d * Dv1, Kf[d], Vp, Dv1);
    for (uint32_t r = 0; r < J->G; r++) {
      const uint32_t h = hk * J->G + r;
      for (uint32_t d = 0; d < D; d++)
        Qf[d] = phi(q[(size_t)b * J->q_t + (size_t)h * D + d]);
      for (uint32_t e = 0; e < Dv1; e++)
        num[e] = 0;
      for (uint32_t d = 0; d < D; d++)
        for (uint32_t e = 0; e < Dv1; e++)
          num[e] += (double)Qf[d] * S[(size_t)d * Dv1 + e];
      const float inv = 1.0f / ((float)num[Dv] + p->eps);
      float *o = out + (size_t)b * J->o_t + (size_t)h * Dv;
      for (uint32_t e = 0; e < Dv; e++)
        o[e] = (float)num[e] * inv;
    }
  }
}

vkf_status vkf_cpu_linear_attention_decode(vkf_cpu *cpu, const vkf_op *op) {
  lattn_job J = job_of(op);
  const vkf_linear_attention_params *p = J.p;
  vkf_status st = scratch_alloc(cpu, &J, 2 * p->D + J.Dv1 + 1 + 2 * J.Dv1);
  if (st != VKF_OK)
    return st;
  vkf_pool_run(cpu->pool, p->B * p->Hkv, 1 + 65536 / (J.G * J.state + 1), decode_task, &J);
  vkf_free(cpu->base.env, J.scratch);
  return VKF_OK;
}
