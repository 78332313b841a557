/* Graph core: nodes, steps, autodiff driver, memory planner, executor. */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARAM_ALIGN 64u /* bytes: keeps every parameter 16-float aligned */
#define ACT_ALIGN 256u

static uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

vkf_graph *vkf_graph_create(vkf_env *env) {
  vkf_graph *g = vkf_calloc(env, 1, sizeof(*g));
  if (!g)
    return NULL;
  g->env = env;
  g->cap_nodes = 64;
  g->nodes = vkf_calloc(env, g->cap_nodes, sizeof(vkf_gnode));
  if (!g->nodes) {
    vkf_free(env, g);
    return NULL;
  }
  g->n_nodes = 1; /* node 0 = none */
  return g;
}

void vkf_graph_destroy(vkf_graph *g) {
  if (!g)
    return;
  vkf_free(g->env, g->nodes);
  vkf_free(g->env, g->steps);
  vkf_free(g->env, g->tape);
  vkf_free(g->env, g);
}

vkf_status vkf_graph_status(const vkf_graph *g) {
  return g->status;
}

vkf_status vkf_graph_fail(vkf_graph *g, vkf_status st, const char *fmt, ...) {
  if (g->status != VKF_OK)
    return g->status;
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  g->status = vkf_fail(g->env, st, "graph: %s", msg);
  return g->status;
}

static bool grow(vkf_graph *g, void **arr, uint32_t *cap, uint32_t n, size_t elem) {
  if (n < *cap)
    return true;
  uint32_t nc = *cap ? *cap * 2 : 64;
  void *p = vkf_realloc(g->env, *arr, (size_t)nc * elem);
  if (!p) {
    vkf_graph_fail(g, VKF_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    return false;
  }
  *arr = p;
  *cap = nc;
  return true;
}

static vkf_node new_node(vkf_graph *g, const char *name_in, vkf_arena arena, vkf_dtype dtype,
                         uint32_t ndim, const int64_t *shape_in) {
  if (g->status != VKF_OK)
    return VKF_NODE_NONE;
  /* name and shape may point into the node table (another node's), which
   * grow() below may move: copy them first */
  char name[sizeof(g->nodes[0].name)];
  snprintf(name, sizeof(name), "%s", name_in ? name_in : "");
  int64_t shape[VKF_MAX_DIMS] = {1, 1, 1, 1};
  for (uint32_t i = 0; i < ndim && i < VKF_MAX_DIMS; i++)
    shape[i] = shape_in[i];
  if (ndim < 1 || ndim > VKF_MAX_DIMS) {
    vkf_graph_fail(g, VKF_ERROR_INVALID_ARGUMENT, "%s: %u dimensions", name, ndim);
    return VKF_NODE_NONE;
  }
  uint64_t elements = 1;
  for (uint32_t i = 0; i < ndim; i++) {
    if (shape[i] < 1 || shape[i] > (int64_t)UINT32_MAX) {
      vkf_graph_fail(g, VKF_ERROR_INVALID_ARGUMENT, "%s: dimension %u is %lld", name, i,
                     (long long)shape[i]);
      return VKF_NODE_NONE;
    }
    elements *= (uint64_t)shape[i];
  }
  if (elements > UINT32_MAX) {
    vkf_graph_fail(g, VKF_ERROR_INVALID_ARGUMENT, "%s: %llu elements (max 2^32-1)", name,
                   (unsigned long long)elements);
    return VKF_NODE_NONE;
  }
  if (!grow(g, (void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof(vkf_gnode)))
    return VKF_NODE_NONE;
  vkf_node id = g->n_nodes++;
  vkf_gnode *n = &g->nodes[id];
  memset(n, 0, sizeof(*n));
  memcpy(n->name, name, sizeof(n->name));
  n->arena = arena;
  n->dtype = dtype;
  n->ndim = ndim;
  for (uint32_t i = 0; i < VKF_MAX_DIMS; i++)
    n->shape[i] = i < ndim ? shape[i] : 1;
  n->elements = elements;
  n->bytes = elements * vkf_dtype_size(dtype);
  n->first = n->last = -1;
  return id;
}

vkf_node vkf_g_param(vkf_graph *g, const char *name, uint32_t ndim, const int64_t *shape,
                     uint32_t flags) {
  vkf_node id = new_node(g, name, VKF_ARENA_PARAMS, VKF_DTYPE_F32, ndim, shape);
  if (!id)
    return id;
  vkf_gnode *n = vkf_gn(g, id);
  n->offset =
      align_up(g->arena_bytes[VKF_ARENA_PARAMS], (flags & VKF_PARAM_PACKED) ? 4 : PARAM_ALIGN);
  g->arena_bytes[VKF_ARENA_PARAMS] = n->offset + n->bytes;
  g->arena_bytes[VKF_ARENA_GRADS] = g->arena_bytes[VKF_ARENA_PARAMS];
  n->param_flags = flags;
  n->requires_grad = !(flags & VKF_PARAM_FROZEN);
  return id;
}

vkf_node vkf_g_input(vkf_graph *g, const char *name, vkf_dtype dtype, uint32_t ndim,
                     const int64_t *shape) {
  vkf_node id = new_node(g, name, VKF_ARENA_INPUTS, dtype, ndim, shape);
  if (!id)
    return id;
  vkf_gnode *n = vkf_gn(g, id);
  n->offset = align_up(g->arena_bytes[VKF_ARENA_INPUTS], ACT_ALIGN);
  g->arena_bytes[VKF_ARENA_INPUTS] = n->offset + n->bytes;
  return id;
}

vkf_node vkf_g_act(vkf_graph *g, const char *name, vkf_dtype dtype, uint32_t ndim,
                   const int64_t *shape) {
  return new_node(g, name, VKF_ARENA_ACTS, dtype, ndim, shape);
}

static vkf_node root_of(const vkf_graph *g, vkf_node n) {
  while (g->nodes[n].base)
    n = g->nodes[n].base;
  return n;
}

/* A view of `base` at byte offset `off` with its own shape. */
vkf_node vkf_g_view(vkf_graph *g, vkf_node base, uint64_t off, const char *name, uint32_t ndim,
                    const int64_t *shape) {
  vkf_gnode *b = vkf_gn(g, base);
  vkf_node id = new_node(g, name, b->arena, b->dtype, ndim, shape);
  if (!id)
    return id;
  b = vkf_gn(g, base); /* the table may have moved */
  vkf_gnode *n = vkf_gn(g, id);
  if (off + n->bytes > b->bytes) {
    vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "view %s exceeds %s", name, b->name);
    return VKF_NODE_NONE;
  }
  n->base = base;
  n->base_offset = off;
  n->requires_grad = b->requires_grad; /* activations: set again by the tape */
  n->param_flags = b->param_flags;
  return id;
}

vkf_node vkf_g_reshape(vkf_graph *g, vkf_node x, uint32_t ndim, const int64_t *shape) {
  if (g->status != VKF_OK || !x)
    return VKF_NODE_NONE;
  uint64_t e = 1;
  for (uint32_t i = 0; i < ndim; i++)
    e *= (uint64_t)shape[i];
  if (e != vkf_gn(g, x)->elements) {
    vkf_graph_fail(g, VKF_ERROR_SHAPE_MISMATCH, "reshape of %s: %llu elements into %llu",
                   vkf_gn(g, x)->name, (unsigned long long)vkf_gn(g, x)->elements,
                   (unsigned long long)e);
    return VKF_NODE_NONE;
  }
  char name[96];
  snprintf(name, sizeof(name), "%.80s.view", vkf_gn(g, x)->name);
  return vkf_g_view(g, x, 0, name, ndim, shape);
}

vkf_node vkf_g_arena_node(vkf_graph *g, vkf_arena arena) {
  if (g->status != VKF_OK)
    return VKF_NODE_NONE;
  if (arena != VKF_ARENA_PARAMS && arena != VKF_ARENA_INPUTS) {
    vkf_graph_fail(g, VKF_ERROR_INVALID_ARGUMENT, "arena %d has no fixed layout", (int)arena);
    return VKF_NODE_NONE;
  }
  int64_t n = (int64_t)((g->arena_bytes[arena] + 3) / 4);
  if (!n)
    n = 1;
  vkf_node id =
      new_node(g, arena == VKF_ARENA_PARAMS ? "params" : "inputs", arena, VKF_DTYPE_F32, 1, &n);
  if (id) {
    vkf_gn(g, id)->offset = 0;
    vkf_gn(g, id)->requires_grad = arena == VKF_ARENA_PARAMS;
  }
  return id;
}

void vkf_g_step(vkf_graph *g, const vkf_gstep *s) {
  if (g->status != VKF_OK)
    return;
  for (uint32_t i = 0; i < s->n; i++) {
    if (!s->t[i].node && ((s->reads | s->writes) >> i & 1)) {
      vkf_graph_fail(g, VKF_ERROR_INVALID_ARGUMENT, "%s step: operand %u missing",
                     vkf_op_name(s->kind), i);
      return;
    }
  }
  if (!grow(g, (void **)&g->steps, &g->cap_steps, g->n_steps, sizeof(vkf_gstep)))
    return;
  g->steps[g->n_steps++] = *s;
  g->planned = false;
}

void vkf_g_tape(vkf_graph *g, const vkf_tape *t) {
  if (g->status != VKF_OK)
    return;
  if (!grow(g, (void **)&g->tape, &g->cap_tape, g->n_tape, sizeof(vkf_tape)))
    return;
  g->tape[g->n_tape++] = *t;
  /* outputs need a gradient when any input does */
  bool any = false;
  for (int i = 0; i < VKF_TAPE_MAX; i++)
    any = any || (t->in[i] && g->nodes[t->in[i]].requires_grad);
  for (int i = 0; i < VKF_TAPE_MAX; i++)
    if (t->out[i])
      g->nodes[t->out[i]].requires_grad = any;
}

void vkf_g_keep(vkf_graph *g, vkf_node x) {
  if (x)
    g->nodes[root_of(g, x)].keep = true;
}

void vkf_g_fill(vkf_graph *g, vkf_node x, float value) {
  if (g->status != VKF_OK || !x)
    return;
  vkf_gstep s = {.kind = VKF_OP_FILL, .n = 1, .writes = 1};
  s.t[0].node = x;
  uint32_t bits;
  memcpy(&bits, &value, 4);
  s.p.fill = (vkf_fill_params){(uint32_t)((vkf_gn(g, x)->bytes + 3) / 4), bits};
  vkf_g_step(g, &s);
}

vkf_node vkf_g_grad_if(vkf_graph *g, vkf_node x) {
  return x ? vkf_gn(g, x)->grad : VKF_NODE_NONE;
}

vkf_node vkf_g_grad(vkf_graph *g, vkf_node x) {
  if (g->status != VKF_OK || !x)
    return VKF_NODE_NONE;
  vkf_gnode *n = vkf_gn(g, x);
  if (n->grad || !n->requires_grad)
    return n->grad;
  char name[96];
  snprintf(name, sizeof(name), "d%.90s", n->name);
  vkf_node gid;
  if (n->base) {
    /* the gradient of a view is the same view of the base's gradient */
    vkf_node gb = vkf_g_grad(g, n->base);
    if (!gb)
      return VKF_NODE_NONE;
    n = vkf_gn(g, x);
    gid = vkf_g_view(g, gb, n->base_offset, name, n->ndim, n->shape);
  } else if (n->arena == VKF_ARENA_PARAMS) {
    /* same offset in the gradient arena, zeroed in bulk by vkf_g_backward */
    gid = new_node(g, name, VKF_ARENA_GRADS, n->dtype, n->ndim, n->shape);
    if (gid)
      vkf_gn(g, gid)->offset = vkf_gn(g, x)->offset;
  } else {
    gid = new_node(g, name, VKF_ARENA_ACTS, n->dtype, n->ndim, n->shape);
    vkf_g_fill(g, gid, 0.0f); /* backward kernels accumulate */
  }
  if (gid)
    vkf_gn(g, x)->grad = gid;
  return gid;
}

/* The root of a chain of views that each cover their base whole (offset
 * 0, same bytes): writing the view writes the root whole. NONE otherwise. */
static vkf_node whole_root(const vkf_graph *g, vkf_node x) {
  while (g->nodes[x].base) {
    const vkf_gnode *n = &g->nodes[x], *b = &g->nodes[n->base];
    if (n->base_offset != 0 || n->bytes != b->bytes)
      return VKF_NODE_NONE;
    x = n->base;
  }
  return x;
}

vkf_node vkf_g_grad_overwrite(vkf_graph *g, vkf_node x, bool *overwrite) {
  *overwrite = false;
  if (g->status != VKF_OK || !x)
    return VKF_NODE_NONE;
  vkf_gnode *n = vkf_gn(g, x);
  if (n->grad || !n->requires_grad || n->arena != VKF_ARENA_ACTS)
    return vkf_g_grad(g, x);
  vkf_node r = whole_root(g, x);
  if (!r || g->nodes[r].grad)
    return vkf_g_grad(g, x);
  char name[96];
  snprintf(name, sizeof(name), "d%.90s", g->nodes[r].name);
  vkf_node gid = new_node(g, name, VKF_ARENA_ACTS, g->nodes[r].dtype, g->nodes[r].ndim,
                          g->nodes[r].shape); /* no fill: the caller writes it whole */
  if (!gid)
    return VKF_NODE_NONE;
  g->nodes[r].grad = gid;
  *overwrite = true;
  return vkf_g_grad(g, x); /* x itself, or the same views of the new gradient */
}

bool vkf_g_grad_alias(vkf_graph *g, vkf_node x, vkf_node src) {
  if (g->status != VKF_OK || !x || !src)
    return false;
  vkf_gnode *n = vkf_gn(g, x), *s = vkf_gn(g, src);
  if (n->grad || !n->requires_grad || n->arena != VKF_ARENA_ACTS || n->base || n->keep || s->base ||
      s->keep || s->arena != VKF_ARENA_ACTS || s->dtype != n->dtype || s->bytes != n->bytes)
    return false;
  n->grad = src;
  return true;
}

vkf_status vkf_g_backward(vkf_graph *g, vkf_node loss) {
  if (g->status != VKF_OK)
    return g->status;
  vkf_gnode *l = vkf_gn(g, loss);
  if (l->elements != 1 || !l->requires_grad)
    return vkf_graph_fail(g, VKF_ERROR_INVALID_ARGUMENT,
                          "backward from %s: a scalar that depends on a parameter is needed",
                          l->name);
  g->backward_from = g->n_steps;
  if (g->arena_bytes[VKF_ARENA_GRADS]) {
    /* zero every parameter gradient at once: one dispatch */
    int64_t n = (int64_t)(g->arena_bytes[VKF_ARENA_GRADS] / 4);
    vkf_node all = new_node(g, "grads", VKF_ARENA_GRADS, VKF_DTYPE_F32, 1, &n);
    vkf_g_fill(g, all, 0.0f);
  }
  char name[96];
  snprintf(name, sizeof(name), "d%.90s", vkf_gn(g, loss)->name); /* l moved with the table */
  vkf_node dl = new_node(g, name, VKF_ARENA_ACTS, VKF_DTYPE_F32, vkf_gn(g, loss)->ndim,
                         vkf_gn(g, loss)->shape);
  if (!dl)
    return g->status;
  vkf_gn(g, loss)->grad = dl;
  vkf_g_fill(g, dl, 1.0f);
  for (uint32_t i = g->n_tape; i-- > 0 && g->status == VKF_OK;) {
    const vkf_tape t = g->tape[i]; /* copy: the tape may grow */
    bool any = false;
    for (int k = 0; k < VKF_TAPE_MAX && !any; k++)
      any = t.out[k] && vkf_gn(g, t.out[k])->grad;
    if (any)
      t.backward(g, &t);
  }
  return g->status;
}

/* ------------------------------------------------------------------------ */
/* Planning                                                                 */
/* ------------------------------------------------------------------------ */
typedef struct placed {
  int32_t first, last;
  uint64_t offset, bytes;
} placed;

static int by_size_desc(const void *a, const void *b, void *ctx) {
  const vkf_graph *g = ctx;
  const vkf_gnode *x = &g->nodes[*(const vkf_node *)a], *y = &g->nodes[*(const vkf_node *)b];
  if (x->bytes != y->bytes)
    return x->bytes > y->bytes ? -1 : 1;
  return x->first < y->first ? -1 : x->first > y->first;
}

/* qsort with a context, by insertion into a sorted order of indices (n is
 * a few thousand at most). */
static void sort_nodes(vkf_node *ids, uint32_t n, vkf_graph *g) {
  for (uint32_t i = 1; i < n; i++) {
    vkf_node v = ids[i];
    uint32_t j = i;
    while (j > 0 && by_size_desc(&ids[j - 1], &v, g) > 0) {
      ids[j] = ids[j - 1];
      j--;
    }
    ids[j] = v;
  }
}

static int by_offset(const void *a, const void *b) {
  const placed *x = a, *y = b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

vkf_status vkf_g_plan(vkf_graph *g, vkf_graph_memory *out) {
  if (g->status != VKF_OK)
    return g->status;
  for (uint32_t i = 1; i < g->n_nodes; i++)
    g->nodes[i].first = g->nodes[i].last = -1;
  for (uint32_t s = 0; s < g->n_steps; s++) {
    const vkf_gstep *st = &g->steps[s];
    for (uint32_t k = 0; k < st->n; k++) {
      if (!st->t[k].node)
        continue;
      vkf_gnode *r = &g->nodes[root_of(g, st->t[k].node)];
      if (r->first < 0)
        r->first = (int32_t)s;
      r->last = (int32_t)s;
    }
  }
  /* activations the host reads after a run stay alive to the end */
  for (uint32_t i = 1; i < g->n_nodes; i++)
    if (g->nodes[i].keep && g->nodes[i].first >= 0)
      g->nodes[i].last = (int32_t)g->n_steps;
  vkf_node *ids = vkf_malloc(g->env, g->n_nodes * sizeof(vkf_node));
  placed *pl = vkf_malloc(g->env, g->n_nodes * sizeof(placed));
  placed *live = vkf_malloc(g->env, g->n_nodes * sizeof(placed));
  if (!ids || !pl || !live) {
    vkf_free(g->env, ids);
    vkf_free(g->env, pl);
    vkf_free(g->env, live);
    return vkf_graph_fail(g, VKF_ERROR_OUT_OF_HOST_MEMORY, "planner");
  }
  uint32_t n = 0;
  uint64_t unplanned = 0;
  for (uint32_t i = 1; i < g->n_nodes; i++) {
    vkf_gnode *x = &g->nodes[i];
    if (x->arena == VKF_ARENA_ACTS && !x->base && x->first >= 0) {
      ids[n++] = i;
      unplanned += align_up(x->bytes, ACT_ALIGN);
    }
  }
  sort_nodes(ids, n, g);
  /* greedy by size: lowest offset whose range is free during the lifetime */
  uint32_t n_pl = 0;
  uint64_t peak = 0;
  for (uint32_t i = 0; i < n; i++) {
    vkf_gnode *x = &g->nodes[ids[i]];
    uint64_t size = align_up(x->bytes, ACT_ALIGN);
    uint32_t n_live = 0;
    for (uint32_t j = 0; j < n_pl; j++)
      if (pl[j].first <= x->last && x->first <= pl[j].last)
        live[n_live++] = pl[j];
    qsort(live, n_live, sizeof(placed), by_offset);
    uint64_t off = 0;
    for (uint32_t j = 0; j < n_live; j++) {
      if (live[j].offset >= off + size)
        break;
      if (live[j].offset + live[j].bytes > off)
        off = live[j].offset + live[j].bytes;
    }
    x->offset = off;
    pl[n_pl++] = (placed){x->first, x->last, off, size};
    if (off + size > peak)
      peak = off + size;
  }
  g->arena_bytes[VKF_ARENA_ACTS] = peak;
  /* views take their root's place */
  for (uint32_t i = 1; i < g->n_nodes; i++) {
    vkf_gnode *x = &g->nodes[i];
    if (x->base) {
      uint64_t off = x->base_offset;
      vkf_node r = x->base;
      while (g->nodes[r].base) {
        off += g->nodes[r].base_offset;
        r = g->nodes[r].base;
      }
      x->offset = g->nodes[r].offset + off;
    }
  }
  vkf_free(g->env, ids);
  vkf_free(g->env, pl);
  vkf_free(g->env, live);
  g->planned = true;
  if (out) {
    out->params = g->arena_bytes[VKF_ARENA_PARAMS];
    out->grads = g->arena_bytes[VKF_ARENA_GRADS];
    out->inputs = g->arena_bytes[VKF_ARENA_INPUTS];
    out->activations = peak;
    out->activations_unplanned = unplanned;
    out->steps = g->n_steps;
    out->nodes = g->n_nodes - 1;
  }
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* Execution                                                                */
/* ------------------------------------------------------------------------ */
vkf_tref vkf_gexec_tref(const vkf_gexec *x, vkf_node id) {
  const vkf_gnode *n = &x->g->nodes[id];
  vkf_node r = id;
  while (x->g->nodes[r].base)
    r = x->g->nodes[r].base;
  return (vkf_tref){x->arena[x->g->nodes[r].arena], n->offset, n->bytes};
}

void vkf_gexec_destroy(vkf_gexec *x) {
  if (!x)
    return;
  vkf_env *env = x->g->env;
  if (x->program)
    x->be->vt->program_destroy(x->be, x->program);
  for (int a = 0; a < VKF_ARENA_COUNT; a++)
    if (x->own_arena[a])
      x->be->vt->buffer_destroy(x->be, x->arena[a]);
  vkf_free(env, x->ops);
  vkf_free(env, x);
}

vkf_status vkf_gexec_create(vkf_graph *g, vkf_backend *be, vkf_buffer *const *shared,
                            uint32_t first, uint32_t last, bool capture, vkf_gexec **out) {
  *out = NULL;
  if (g->status != VKF_OK)
    return g->status;
  if (!g->planned) {
    vkf_status st = vkf_g_plan(g, NULL);
    if (st != VKF_OK)
      return st;
  }
  if (first > last || last > g->n_steps)
    return vkf_graph_fail(g, VKF_ERROR_INVALID_ARGUMENT, "step range %u..%u of %u", first, last,
                          g->n_steps);
  vkf_gexec *x = vkf_calloc(g->env, 1, sizeof(*x));
  if (!x)
    return vkf_fail(g->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "graph executor");
  x->g = g;
  x->be = be;
  vkf_status st = VKF_OK;
  for (int a = 0; a < VKF_ARENA_COUNT && st == VKF_OK; a++) {
    if (shared && shared[a]) {
      x->arena[a] = shared[a];
      continue;
    }
    uint64_t bytes = g->arena_bytes[a] ? g->arena_bytes[a] : 16;
    st = be->vt->buffer_create(be, bytes, &x->arena[a]);
    x->own_arena[a] = st == VKF_OK;
  }
  if (st == VKF_OK) {
    x->ops = vkf_calloc(g->env, last > first ? last - first : 1, sizeof(vkf_op));
    if (!x->ops)
      st = vkf_fail(g->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "graph executor ops");
  }
  for (uint32_t s = first; st == VKF_OK && s < last; s++) {
    const vkf_gstep *gs = &g->steps[s];
    vkf_op *op = &x->ops[x->n_ops++];
    op->kind = gs->kind;
    op->n_tensors = gs->n;
    op->reads = gs->reads;
    op->writes = gs->writes;
    op->p = gs->p;
    for (uint32_t k = 0; k < gs->n; k++) {
      if (!gs->t[k].node)
        continue;
      vkf_tref t = vkf_gexec_tref(x, gs->t[k].node);
      t.offset += gs->t[k].offset;
      t.bytes = gs->t[k].extent ? gs->t[k].extent : t.bytes - gs->t[k].offset;
      op->t[k] = t;
    }
  }
  if (st == VKF_OK && capture) {
    st = be->vt->capture_begin(be);
    for (uint32_t i = 0; st == VKF_OK && i < x->n_ops; i++)
      st = be->vt->run(be, &x->ops[i]);
    vkf_program *p = NULL;
    vkf_status end = be->vt->capture_end(be, &p);
    if (st == VKF_OK)
      st = end;
    x->program = p;
  }
  if (st != VKF_OK) {
    vkf_gexec_destroy(x);
    return st;
  }
  *out = x;
  return VKF_OK;
}

vkf_status vkf_gexec_run(vkf_gexec *x) {
  if (x->program)
    return x->be->vt->replay(x->be, x->program);
  for (uint32_t i = 0; i < x->n_ops; i++) {
    vkf_status st = x->be->vt->run(x->be, &x->ops[i]);
    if (st != VKF_OK)
      return st;
  }
  return VKF_OK;
}
