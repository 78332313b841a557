/* Attention geometry shared by the CPU kernels of both variants
 * (attention.c: standard, attention_flash.c: flash): tensor strides in either
 * layout and the visible key (or query) ranges. Mirrors shaders/attention.glsl. */
#ifndef VKF_CPU_ATTENTION_COMMON_H
#define VKF_CPU_ATTENTION_COMMON_H

#include "backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vkf_attn_view {
  size_t bs, hs, ts; /* element strides of batch, head, row */
} vkf_attn_view;

/* A tensor of T rows of H heads of E elements, [B, T, H, E] or [B, H, T, E]. */
static inline vkf_attn_view vkf_attn_view_of(bool bhtd, uint32_t T, uint32_t H, uint32_t E) {
  vkf_attn_view v;
  if (bhtd) {
    v.ts = E;
    v.hs = (size_t)T * E;
    v.bs = (size_t)H * T * E;
  } else {
    v.hs = E;
    v.ts = (size_t)H * E;
    v.bs = (size_t)T * H * E;
  }
  return v;
}

/* Per batch: the keys [0, limit) any row may see and the position of query 0. */
typedef struct vkf_attn_batch {
  int64_t limit, q0;
} vkf_attn_batch;

/* kv_lens: NULL when the op has none. */
static inline vkf_attn_batch vkf_attn_batch_of(const vkf_attention_params *p,
                                               const int32_t *kv_lens, uint32_t b) {
  int64_t n = p->Tk;
  if (kv_lens)
    n = kv_lens[b] < 0 ? 0 : kv_lens[b] < n ? kv_lens[b] : n;
  vkf_attn_batch bi = {n, (p->flags & VKF_ATTN_Q_AT_KV_END) ? n - (int64_t)p->Tq : p->q_pos0};
  if ((p->flags & VKF_ATTN_MASK) && (int64_t)p->mask_cols < bi.limit)
    bi.limit = p->mask_cols;
  return bi;
}

/* Keys [*lo, *hi) that rows i0..i1 (inclusive) may see: exact for one row,
 * the union for several (visible ranges only move right as i grows). */
static inline void vkf_attn_keys_of_rows(const vkf_attention_params *p, vkf_attn_batch bi,
                                         int64_t i0, int64_t i1, int64_t *lo, int64_t *hi) {
  int64_t l = 0, h = bi.limit;
  if ((p->flags & VKF_ATTN_CAUSAL) || p->window) {
    int64_t last = bi.q0 + i1 + 1;
    h = last < h ? last : h;
  }
  if (p->window) {
    int64_t first = bi.q0 + i0 - (int64_t)p->window + 1;
    l = first > 0 ? first : 0;
  }
  if (h <= l)
    l = h = 0;
  *lo = l;
  *hi = h;
}

/* Rows [*lo, *hi) that may see any of the keys j0..j1 (inclusive). */
static inline void vkf_attn_rows_of_keys(const vkf_attention_params *p, vkf_attn_batch bi,
                                         int64_t j0, int64_t j1, int64_t *lo, int64_t *hi) {
  int64_t l = 0, h = j0 >= bi.limit ? 0 : p->Tq;
  if ((p->flags & VKF_ATTN_CAUSAL) || p->window) {
    int64_t first = j0 - bi.q0; /* pos >= j0 */
    l = first > 0 ? first : 0;
  }
  if (p->window) {
    int64_t end = j1 + (int64_t)p->window - bi.q0; /* pos - window + 1 <= j1 */
    h = end < h ? end : h;
  }
  if (h <= l)
    l = h = 0;
  *lo = l;
  *hi = h;
}

#endif
