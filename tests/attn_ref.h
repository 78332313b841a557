/* The attention tests' shared double-precision reference (test_attn.c,
 * test_attn_flash.c): cases, random inputs, visibility straight from the
 * rules (causal, window, alignment, kv_lens, mask), and the forward written
 * with explicit loops. */
#ifndef VKF_TESTS_ATTN_REF_H
#define VKF_TESTS_ATTN_REF_H

#include "test_util.h"

enum mask_kind {
  MASK_NONE,
  MASK_2D,    /* [Tq, Tk] */
  MASK_B1,    /* [B, 1, Tq, Tk] */
  MASK_BH,    /* [B, Hq, Tq, Tk] */
  MASK_H3,    /* [Hq, Tq, Tk] */
  MASK_SHORT, /* [Tq, Tk - 2]: the last two keys masked */
  MASK_ROW,   /* [1, Tk]: one row for every query */
};

typedef struct acase {
  uint32_t B, Tq, Tk, Hq, Hkv, D, Dv;
  uint32_t flags; /* VKF_ATTENTION_* */
  float scale, softcap;
  uint32_t window;
  vkf_attention_align align;
  int32_t q_offset;
  int mask;    /* mask_kind */
  int kv_lens; /* give kv_lens */
  int logits;  /* ask for the logits (standard variant) */
} acase;

#define CAUSAL VKF_ATTENTION_CAUSAL
#define QBHTD VKF_ATTENTION_Q_BHTD
#define KVBHTD VKF_ATTENTION_KV_BHTD
#define TL VKF_ATTENTION_ALIGN_TOP_LEFT
#define OFS VKF_ATTENTION_ALIGN_OFFSET

typedef struct inputs {
  size_t nq, nk, nv, no, np, nl, nm; /* np: P and logits, nl: lse */
  float *q, *k, *v, *mask, *dout;
  int32_t kvl[4];
  uint32_t mndim;
  int64_t mshape[4];
  uint32_t mcols;
} inputs;

/* Index of (b, t, h, e) in [B, T, H, E] or, bhtd, [B, H, T, E]. */
size_t at(bool bhtd, uint32_t T, uint32_t H, uint32_t E, uint32_t b, uint32_t t, uint32_t h,
          uint32_t e);
void make_shape(bool bhtd, uint32_t B, uint32_t T, uint32_t H, uint32_t E, int64_t *s);
float scale_of(const acase *c);
void inputs_make(const acase *c, uint64_t seed, inputs *in);
void inputs_free(inputs *in);
double mask_at(const inputs *in, uint32_t b, uint32_t h, uint32_t i, uint32_t j);
bool visible(const acase *c, const inputs *in, uint32_t b, uint32_t i, uint32_t j);
void ref_forward(const acase *c, const inputs *in, const double *q, const double *k,
                 const double *v, double *out, double *P, double *logits, double *lse);
double *to_double(const float *x, size_t n);

#endif
