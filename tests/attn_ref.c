/* The attention tests' shared double-precision reference: attn_ref.h. */
#include "attn_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

size_t at(bool bhtd, uint32_t T, uint32_t H, uint32_t E, uint32_t b, uint32_t t, uint32_t h,
          uint32_t e) {
  return bhtd ? (((size_t)b * H + h) * T + t) * E + e : (((size_t)b * T + t) * H + h) * E + e;
}

void make_shape(bool bhtd, uint32_t B, uint32_t T, uint32_t H, uint32_t E, int64_t *s) {
  s[0] = B;
  s[1] = bhtd ? H : T;
  s[2] = bhtd ? T : H;
  s[3] = E;
}

float scale_of(const acase *c) {
  return c->scale != 0.0f ? c->scale : (float)(1.0 / sqrt((double)c->D));
}

void inputs_make(const acase *c, uint64_t seed, inputs *in) {
  memset(in, 0, sizeof(*in));
  vkft_rng rng = vkft_rng_seed(seed);
  in->nq = (size_t)c->B * c->Tq * c->Hq * c->D;
  in->nk = (size_t)c->B * c->Tk * c->Hkv * c->D;
  in->nv = (size_t)c->B * c->Tk * c->Hkv * c->Dv;
  in->no = (size_t)c->B * c->Tq * c->Hq * c->Dv;
  in->np = (size_t)c->B * c->Hq * c->Tq * c->Tk;
  in->nl = (size_t)c->B * c->Hq * c->Tq;
  in->q = vkft_alloc(in->nq);
  in->k = vkft_alloc(in->nk);
  in->v = vkft_alloc(in->nv);
  in->dout = vkft_alloc(in->no);
  vkft_fill_uniform(&rng, in->q, in->nq, -1, 1);
  vkft_fill_uniform(&rng, in->k, in->nk, -1, 1);
  vkft_fill_uniform(&rng, in->v, in->nv, -1, 1);
  vkft_fill_uniform(&rng, in->dout, in->no, -1, 1);
  for (uint32_t b = 0; b < c->B && b < 4; b++) /* some beyond Tk, some 0 or negative */
    in->kvl[b] = (int32_t)(vkft_uniform(&rng, 0, 1) * (float)(c->Tk + 3)) - 1;
  if (c->kv_lens && c->B > 1)
    in->kvl[1] = c->Tk > 2 ? (int32_t)c->Tk - 2 : 0;
  in->mcols = c->Tk;
  switch (c->mask) {
  case MASK_NONE:
    return;
  case MASK_2D:
    in->mndim = 2, in->mshape[0] = c->Tq, in->mshape[1] = c->Tk;
    break;
  case MASK_B1:
    in->mndim = 4, in->mshape[0] = c->B, in->mshape[1] = 1, in->mshape[2] = c->Tq;
    in->mshape[3] = c->Tk;
    break;
  case MASK_BH:
    in->mndim = 4, in->mshape[0] = c->B, in->mshape[1] = c->Hq, in->mshape[2] = c->Tq;
    in->mshape[3] = c->Tk;
    break;
  case MASK_H3:
    in->mndim = 3, in->mshape[0] = c->Hq, in->mshape[1] = c->Tq, in->mshape[2] = c->Tk;
    break;
  case MASK_SHORT:
    in->mcols = c->Tk > 2 ? c->Tk - 2 : 1;
    in->mndim = 2, in->mshape[0] = c->Tq, in->mshape[1] = in->mcols;
    break;
  case MASK_ROW:
    in->mndim = 2, in->mshape[0] = 1, in->mshape[1] = c->Tk;
    break;
  }
  in->nm = 1;
  for (uint32_t i = 0; i < in->mndim; i++)
    in->nm *= (size_t)in->mshape[i];
  in->mask = vkft_alloc(in->nm);
  for (size_t i = 0; i < in->nm; i++) /* about one in eight masked with -inf */
    in->mask[i] = vkft_uniform(&rng, 0, 1) < 0.125f ? -INFINITY : vkft_uniform(&rng, -1, 1);
}

void inputs_free(inputs *in) {
  free(in->q);
  free(in->k);
  free(in->v);
  free(in->dout);
  free(in->mask);
}

/* The mask's value for (b, h, i, j), broadcasting each of its dimensions
 * explicitly (dimensions right-aligned against [B, Hq, Tq, Tm]). */
double mask_at(const inputs *in, uint32_t b, uint32_t h, uint32_t i, uint32_t j) {
  int64_t d[4] = {1, 1, 1, 1};
  for (uint32_t a = 0; a < in->mndim; a++)
    d[4 - in->mndim + a] = in->mshape[a];
  size_t bb = d[0] == 1 ? 0 : b, hh = d[1] == 1 ? 0 : h, ii = d[2] == 1 ? 0 : i;
  return in->mask[((bb * (size_t)d[1] + hh) * (size_t)d[2] + ii) * (size_t)d[3] + j];
}

/* Whether key j is visible to query i of batch b, straight from the rules. */
bool visible(const acase *c, const inputs *in, uint32_t b, uint32_t i, uint32_t j) {
  /* bottom-right: the last query at the last key, of the batch's kv_lens if given */
  int64_t L = c->Tk;
  if (c->kv_lens)
    L = in->kvl[b] < 0 ? 0 : in->kvl[b] > (int64_t)c->Tk ? (int64_t)c->Tk : (int64_t)in->kvl[b];
  int64_t q0 = c->align == TL ? 0 : c->align == OFS ? c->q_offset : L - c->Tq;
  int64_t pos = q0 + i;
  if ((c->flags & CAUSAL) && (int64_t)j > pos)
    return false;
  if (c->window && !(pos - (int64_t)j >= 0 && pos - (int64_t)j < (int64_t)c->window))
    return false;
  if (c->kv_lens && (int64_t)j >= in->kvl[b])
    return false;
  if (in->mask && j >= in->mcols)
    return false;
  return true;
}

/* out, P, logits and lse (any may be NULL) from double q, k, v. */
void ref_forward(const acase *c, const inputs *in, const double *q, const double *k,
                 const double *v, double *out, double *P, double *logits, double *lse) {
  const bool qb = c->flags & QBHTD, kb = c->flags & KVBHTD;
  const double scale = scale_of(c);
  double *s = vkft_alloc_d(c->Tk);
  for (uint32_t b = 0; b < c->B; b++)
    for (uint32_t h = 0; h < c->Hq; h++) {
      uint32_t hk = h / (c->Hq / c->Hkv);
      for (uint32_t i = 0; i < c->Tq; i++) {
        double mx = -INFINITY;
        for (uint32_t j = 0; j < c->Tk; j++) {
          s[j] = -INFINITY;
          if (!visible(c, in, b, i, j))
            continue;
          double x = 0;
          for (uint32_t d = 0; d < c->D; d++)
            x += q[at(qb, c->Tq, c->Hq, c->D, b, i, h, d)] *
                 k[at(kb, c->Tk, c->Hkv, c->D, b, j, hk, d)];
          x *= scale;
          if (c->softcap > 0)
            x = c->softcap * tanh(x / c->softcap);
          if (in->mask)
            x += mask_at(in, b, h, i, j);
          s[j] = x;
          mx = x > mx ? x : mx;
        }
        size_t prow = (((size_t)b * c->Hq + h) * c->Tq + i) * c->Tk;
        if (logits)
          memcpy(logits + prow, s, c->Tk * sizeof(double));
        double sum = 0;
        for (uint32_t j = 0; j < c->Tk; j++) {
          s[j] = mx == -INFINITY ? 0 : exp(s[j] - mx);
          sum += s[j];
        }
        if (lse)
          lse[((size_t)b * c->Hq + h) * c->Tq + i] = sum > 0 ? mx + log(sum) : -INFINITY;
        for (uint32_t j = 0; j < c->Tk; j++) {
          s[j] = sum > 0 ? s[j] / sum : 0;
          if (P)
            P[prow + j] = s[j];
        }
        if (out)
          for (uint32_t e = 0; e < c->Dv; e++) {
            double o = 0;
            for (uint32_t j = 0; j < c->Tk; j++)
              o += s[j] * v[at(kb, c->Tk, c->Hkv, c->Dv, b, j, hk, e)];
            out[at(qb, c->Tq, c->Hq, c->Dv, b, i, h, e)] = o;
          }
      }
    }
  free(s);
}

double *to_double(const float *x, size_t n) {
  double *d = vkft_alloc_d(n);
  for (size_t i = 0; i < n; i++)
    d[i] = x[i];
  return d;
}
