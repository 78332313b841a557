/* The graph: forward, autodiff, planning and execution of a small network
 * on both backends, against gradients derived by hand in double precision;
 * captured replay equals direct execution; the planner reuses memory. */
#include "test_util.h"

#include "context.h"
#include "graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { R = 5, K = 7, H = 9, O = 4 };

typedef struct net {
  float x[R * K], w1[K * H], b1[H], w2[O * H], b2[O], r[R * O];
} net;

/* loss = sum(R * (h*h . W2^T + b2)), h = x . W1 + b1; returns loss and the
 * gradients of w1, b1, w2, b2 in double. */
static double reference(const net *n, double *gw1, double *gb1, double *gw2, double *gb2) {
  double h[R * H], loss = 0;
  for (int i = 0; i < R; i++)
    for (int j = 0; j < H; j++) {
      double s = n->b1[j];
      for (int k = 0; k < K; k++)
        s += (double)n->x[i * K + k] * n->w1[k * H + j];
      h[i * H + j] = s;
    }
  for (int i = 0; i < R; i++)
    for (int o = 0; o < O; o++) {
      double s = n->b2[o];
      for (int j = 0; j < H; j++)
        s += h[i * H + j] * h[i * H + j] * n->w2[o * H + j];
      loss += s * n->r[i * O + o];
    }
  memset(gw1, 0, sizeof(double) * K * H);
  memset(gb1, 0, sizeof(double) * H);
  memset(gw2, 0, sizeof(double) * O * H);
  memset(gb2, 0, sizeof(double) * O);
  for (int i = 0; i < R; i++)
    for (int o = 0; o < O; o++) {
      double dy = n->r[i * O + o];
      gb2[o] += dy;
      for (int j = 0; j < H; j++) {
        gw2[o * H + j] += dy * h[i * H + j] * h[i * H + j];
        double dh = dy * n->w2[o * H + j] * 2 * h[i * H + j];
        gb1[j] += dh;
        for (int k = 0; k < K; k++)
          gw1[k * H + j] += dh * n->x[i * K + k];
      }
    }
  return loss;
}

typedef struct built {
  vkf_graph *g;
  vkf_node x, w1, b1, w2, b2, r, ones, loss;
} built;

static built build(vkf_env *env) {
  built b = {.g = vkf_graph_create(env)};
  vkf_graph *g = b.g;
  int64_t sx[2] = {R, K}, sw1[2] = {K, H}, sb1[1] = {H}, sw2[2] = {O, H}, sb2[1] = {O},
          sr[2] = {R, O}, so[2] = {R * O, 1};
  b.w1 = vkf_g_param(g, "w1", 2, sw1, VKF_PARAM_DECAY);
  b.b1 = vkf_g_param(g, "b1", 1, sb1, 0);
  b.w2 = vkf_g_param(g, "w2", 2, sw2, VKF_PARAM_DECAY);
  b.b2 = vkf_g_param(g, "b2", 1, sb2, 0);
  b.x = vkf_g_input(g, "x", VKF_DTYPE_F32, 2, sx);
  b.r = vkf_g_input(g, "r", VKF_DTYPE_F32, 2, sr);
  b.ones = vkf_g_input(g, "ones", VKF_DTYPE_F32, 2, so);
  vkf_node h = vkf_g_linear(g, b.x, b.w1, b.b1, false);
  vkf_node h2 = vkf_g_mul(g, h, h);
  vkf_node y = vkf_g_linear(g, h2, b.w2, b.b2, true);
  vkf_node z = vkf_g_mul(g, y, b.r);
  int64_t flat[2] = {1, R * O};
  vkf_node zf = vkf_g_reshape(g, z, 2, flat);
  b.loss = vkf_g_linear(g, zf, b.ones, VKF_NODE_NONE, false);
  vkf_g_keep(g, b.loss);
  return b;
}

static void write_node(vkf_gexec *x, vkf_node n, const float *data) {
  VKFT_OK(x->be->vt->write(x->be, vkf_gexec_tref(x, n), data));
}

static void read_node(vkf_gexec *x, vkf_node n, float *data) {
  VKFT_OK(x->be->vt->read(x->be, vkf_gexec_tref(x, n), data));
}

static void check_backend(vkf_context *ctx, bool capture) {
  net n;
  vkft_rng rng = vkft_rng_seed(11);
  vkft_fill_uniform(&rng, (float *)&n, sizeof(n) / sizeof(float), -1, 1);
  double gw1[K * H], gb1[H], gw2[O * H], gb2[O];
  double loss_ref = reference(&n, gw1, gb1, gw2, gb2);

  built b = build(&ctx->env);
  assert_non_null(b.g);
  VKFT_OK(vkf_g_backward(b.g, b.loss));
  vkf_graph_memory mem;
  VKFT_OK(vkf_g_plan(b.g, &mem));
  assert_true(mem.activations <= mem.activations_unplanned);
  vkf_gexec *x;
  VKFT_OK(vkf_gexec_create(b.g, ctx->be, NULL, 0, b.g->n_steps, capture, &x));
  write_node(x, b.w1, n.w1);
  write_node(x, b.b1, n.b1);
  write_node(x, b.w2, n.w2);
  write_node(x, b.b2, n.b2);
  write_node(x, b.x, n.x);
  write_node(x, b.r, n.r);
  float ones[R * O];
  for (int i = 0; i < R * O; i++)
    ones[i] = 1;
  write_node(x, b.ones, ones);
  for (int rep = 0; rep < 2; rep++) { /* running twice gives the same: grads re-zeroed */
    VKFT_OK(vkf_gexec_run(x));
    float loss;
    read_node(x, b.loss, &loss);
    assert_true(fabs(loss - loss_ref) <= 1e-4 * (1 + fabs(loss_ref)));
    float g1[K * H], g2[O * H], gb1f[H], gb2f[O];
    read_node(x, vkf_g_grad_if(b.g, b.w1), g1);
    read_node(x, vkf_g_grad_if(b.g, b.b1), gb1f);
    read_node(x, vkf_g_grad_if(b.g, b.w2), g2);
    read_node(x, vkf_g_grad_if(b.g, b.b2), gb2f);
    /* fp32 sums of a few dozen O(1) terms: 1e-4 relative is ample */
    assert_int_equal(vkft_compare("dw1", g1, gw1, K * H, 1e-4, 1e-4), 0);
    assert_int_equal(vkft_compare("db1", gb1f, gb1, H, 1e-4, 1e-4), 0);
    assert_int_equal(vkft_compare("dw2", g2, gw2, O * H, 1e-4, 1e-4), 0);
    assert_int_equal(vkft_compare("db2", gb2f, gb2, O, 1e-4, 1e-4), 0);
  }
  vkf_gexec_destroy(x);
  vkf_graph_destroy(b.g);
}

static void test_graph_cpu(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  check_backend(ctx, false);
  check_backend(ctx, true);
  vkft_destroy(ctx);
}

static void test_graph_vulkan(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  check_backend(ctx, false);
  check_backend(ctx, true);
  vkft_destroy(ctx);
}

/* A long chain: activations die early, so the planned arena is a fraction
 * of the sum of all activation sizes. */
static void test_graph_planner(void **state) {
  (void)state;
  vkf_env env;
  vkf_env_init(&env, NULL);
  vkf_graph *g = vkf_graph_create(&env);
  int64_t s[2] = {64, 64};
  vkf_node w = vkf_g_param(g, "w", 2, s, 0);
  vkf_node h = vkf_g_input(g, "x", VKF_DTYPE_F32, 2, s);
  for (int i = 0; i < 20; i++)
    h = vkf_g_linear(g, h, w, VKF_NODE_NONE, false);
  VKFT_OK(vkf_graph_status(g));
  vkf_graph_memory mem;
  VKFT_OK(vkf_g_plan(g, &mem));
  assert_int_equal(mem.activations_unplanned, 20 * 64 * 64 * 4);
  assert_true(mem.activations <= 2 * 64 * 64 * 4); /* only two alive at a time */
  /* lifetimes never overlap in memory */
  for (uint32_t a = 1; a < g->n_nodes; a++)
    for (uint32_t b = a + 1; b < g->n_nodes; b++) {
      vkf_gnode *x = &g->nodes[a], *y = &g->nodes[b];
      if (x->arena != VKF_ARENA_ACTS || y->arena != VKF_ARENA_ACTS || x->first < 0 || y->first < 0)
        continue;
      bool time = x->first <= y->last && y->first <= x->last;
      bool space = x->offset < y->offset + y->bytes && y->offset < x->offset + x->bytes;
      assert_false(time && space);
    }
  /* errors are sticky and named */
  int64_t bad[2] = {3, 3};
  vkf_node wb = vkf_g_param(g, "wb", 2, bad, 0);
  assert_int_equal(vkf_g_linear(g, h, wb, VKF_NODE_NONE, false), VKF_NODE_NONE);
  assert_int_equal(vkf_graph_status(g), VKF_ERROR_SHAPE_MISMATCH);
  assert_non_null(strstr(env.error, "linear"));
  assert_int_equal(vkf_g_linear(g, h, w, VKF_NODE_NONE, false), VKF_NODE_NONE);
  vkf_graph_destroy(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_graph_cpu),
      cmocka_unit_test(test_graph_vulkan),
      cmocka_unit_test(test_graph_planner),
  };
  return cmocka_run_group_tests_name("graph", tests, NULL, NULL);
}
