/* Linear attention: the layout of saved and workspace, shared by the public
 * functions (attention_linear.c) and the graph builder (graph_ops.c). */
#ifndef VKF_ATTENTION_LINEAR_H
#define VKF_ATTENTION_LINEAR_H

#include "backend.h"

#define VKF_LATTN_CHUNK_DEFAULT 64u
#define VKF_LATTN_CHUNK_MAX 1024u
#define VKF_LATTN_EPS_DEFAULT 1e-6f
#define VKF_LATTN_HEAD_MAX 1024u
#define VKF_LATTN_T_MAX (1u << 28)

/* Element counts (see vkf_linear_attention_params in vkf_params.h). */
typedef struct vkf_lattn_layout {
  uint64_t states; /* B Hkv n_chunks D (Dv + 1): saved's and the workspace's state part */
  uint64_t den;    /* B T Hq: saved's second part */
  uint64_t g;      /* B T Hq (Dv + 1): the workspace's first part */
  uint64_t saved, workspace;
} vkf_lattn_layout;

/* p's B, T, Hq, Hkv, D, Dv and chunk given: sets n_chunks and the layout. */
void vkf_lattn_layout_of(vkf_linear_attention_params *p, vkf_lattn_layout *l);

#endif
