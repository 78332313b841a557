/* linear attention in a graph for inference (vkf_g_linear_attention_state):
 * a recorded program that continues from a state node gives bit for bit what
 * the public functions give (vkf_linear_attention_decode for one token,
 * vkf_linear_attention_forward with desc.state for a piece of a prompt), and
 * each replay advances the state once more; on both backends. Shape errors
 * are refused. (The numbers themselves are checked in test_attn_linear.) */
#include "test_util.h"

#include "context.h"
#include "graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct scase {
  uint32_t B, T, Hq, Hkv, D, Dv, chunk;
} scase;

static void write_node(vkf_gexec *x, vkf_node n, const float *data) {
  VKFT_OK(x->be->vt->write(x->be, vkf_gexec_tref(x, n), data));
}

static void read_node(vkf_gexec *x, vkf_node n, float *data) {
  VKFT_OK(x->be->vt->read(x->be, vkf_gexec_tref(x, n), data));
}

static void shape4(int64_t *s, int64_t a, int64_t b, int64_t c, int64_t d) {
  s[0] = a, s[1] = b, s[2] = c, s[3] = d;
}

static void check_case(vkf_context *ctx, const scase *c, uint64_t seed) {
  int64_t sq[4], sk[4], sv[4], ss[4], so[4];
  shape4(sq, c->B, c->T, c->Hq, c->D);
  shape4(sk, c->B, c->T, c->Hkv, c->D);
  shape4(sv, c->B, c->T, c->Hkv, c->Dv);
  shape4(ss, c->B, c->Hkv, c->D, c->Dv + 1);
  shape4(so, c->B, c->T, c->Hq, c->Dv);
  const size_t nq = (size_t)c->B * c->T * c->Hq * c->D, nk = (size_t)c->B * c->T * c->Hkv * c->D;
  const size_t nv = (size_t)c->B * c->T * c->Hkv * c->Dv, no = (size_t)c->B * c->T * c->Hq * c->Dv;
  const size_t ns = (size_t)c->B * c->Hkv * c->D * (c->Dv + 1);
  vkft_rng rng = vkft_rng_seed(seed);
  float *q = vkft_alloc(nq), *k = vkft_alloc(nk), *v = vkft_alloc(nv), *s0 = vkft_alloc(ns);
  vkft_fill_uniform(&rng, q, nq, -1, 1);
  vkft_fill_uniform(&rng, k, nk, -1, 1);
  vkft_fill_uniform(&rng, v, nv, -1, 1);
  for (size_t i = 0; i < ns; i++) /* a state as a short prefix leaves it: z > 0 */
    s0[i] = i % (c->Dv + 1) == c->Dv ? vkft_uniform(&rng, 1, 8) : vkft_uniform(&rng, -3, 3);

  /* the graph, recorded once */
  vkf_graph *g = vkf_graph_create(&ctx->env);
  assert_non_null(g);
  vkf_node gq = vkf_g_input(g, "q", VKF_DTYPE_F32, 4, sq);
  vkf_node gk = vkf_g_input(g, "k", VKF_DTYPE_F32, 4, sk);
  vkf_node gv = vkf_g_input(g, "v", VKF_DTYPE_F32, 4, sv);
  vkf_node gs = vkf_g_input(g, "state", VKF_DTYPE_F32, 4, ss);
  vkf_node gout = vkf_g_linear_attention_state(g, gq, gk, gv, gs, c->chunk);
  vkf_g_keep(g, gout);
  VKFT_OK(vkf_graph_status(g));
  vkf_graph_memory mem;
  VKFT_OK(vkf_g_plan(g, &mem));
  vkf_gexec *x;
  VKFT_OK(vkf_gexec_create(g, ctx->be, NULL, 0, g->n_steps, true, &x));
  write_node(x, gq, q);
  write_node(x, gk, k);
  write_node(x, gv, v);
  write_node(x, gs, s0);

  /* the public functions on the same data */
  vkf_tensor tq = vkft_tensor_from(ctx, 4, sq, q), tk = vkft_tensor_from(ctx, 4, sk, k);
  vkf_tensor tv = vkft_tensor_from(ctx, 4, sv, v), ts = vkft_tensor_from(ctx, 4, ss, s0);
  vkf_tensor to = vkft_tensor(ctx, 4, so), saved = {0};
  vkf_linear_attention_desc d = {.chunk = c->chunk, .state = ts};
  if (c->T > 1) {
    vkf_linear_attention_sizes sz;
    VKFT_OK(vkf_linear_attention_sizes_get(ctx, tq, tk, tv, &d, &sz));
    int64_t n = (int64_t)sz.saved_elements;
    saved = vkft_tensor(ctx, 1, &n);
  }
  float *go = vkft_alloc(no), *po = vkft_alloc(no), *gst = vkft_alloc(ns), *pst = vkft_alloc(ns);
  for (int rep = 0; rep < 2; rep++) { /* each replay continues from the state */
    VKFT_OK(vkf_gexec_run(x));
    if (c->T == 1)
      VKFT_OK(vkf_linear_attention_decode(ctx, to, ts, tq, tk, tv, 0));
    else
      VKFT_OK(vkf_linear_attention_forward(ctx, to, saved, tq, tk, tv, &d));
    read_node(x, gout, go);
    read_node(x, gs, gst);
    vkft_read(ctx, to, po, no);
    vkft_read(ctx, ts, pst, ns);
    assert_memory_equal(go, po, no * sizeof(float));
    assert_memory_equal(gst, pst, ns * sizeof(float));
  }
  /* the state moved: the second pass saw a longer prefix */
  double moved = 0;
  for (size_t i = 0; i < ns; i++)
    moved += fabs((double)gst[i] - s0[i]);
  assert_true(moved > 1e-3 * (double)ns);
  vkf_gexec_destroy(x);
  vkf_graph_destroy(g);
  vkf_tensor all[] = {tq, tk, tv, ts, to, saved};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    if (all[i].id)
      VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
  free(q), free(k), free(v), free(s0), free(go), free(po), free(gst), free(pst);
}

static const scase cases[] = {
    {2, 1, 4, 2, 32, 16, 0},   /* decoding: GQA, Dv != D */
    {1, 70, 4, 1, 16, 24, 16}, /* a prompt piece over 5 chunks, the last short; MQA */
    {2, 9, 2, 2, 64, 64, 0},   /* a piece shorter than one chunk */
};

static void run_all(vkf_context *ctx) {
  for (size_t i = 0; i < VKFT_ARRAY_LEN(cases); i++)
    check_case(ctx, &cases[i], 10 + i);
}

static void test_linattn_graph_cpu(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  run_all(cpu);
  vkft_destroy(cpu);
}

static void test_linattn_graph_vulkan(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  run_all(vk);
  vkft_destroy(vk);
}

/* A state of the wrong shape, and a chunk above 1024, fail the graph. */
static void test_linattn_graph_errors(void **state) {
  (void)state;
  vkf_env env;
  vkf_env_init(&env, NULL);
  int64_t sq[4] = {1, 3, 4, 8}, sk[4] = {1, 3, 2, 8}, ss[4] = {1, 2, 8, 8}, sg[4] = {1, 2, 8, 9};
  vkf_graph *g = vkf_graph_create(&env);
  vkf_node q = vkf_g_input(g, "q", VKF_DTYPE_F32, 4, sq);
  vkf_node k = vkf_g_input(g, "k", VKF_DTYPE_F32, 4, sk);
  vkf_node v = vkf_g_input(g, "v", VKF_DTYPE_F32, 4, sk);
  vkf_node bad = vkf_g_input(g, "state", VKF_DTYPE_F32, 4, ss); /* needs Dv + 1 = 9 */
  assert_int_equal(vkf_g_linear_attention_state(g, q, k, v, bad, 0), VKF_NODE_NONE);
  assert_int_equal(vkf_graph_status(g), VKF_ERROR_SHAPE_MISMATCH);
  assert_non_null(strstr(env.error, "state"));
  vkf_graph_destroy(g);
  g = vkf_graph_create(&env);
  q = vkf_g_input(g, "q", VKF_DTYPE_F32, 4, sq);
  k = vkf_g_input(g, "k", VKF_DTYPE_F32, 4, sk);
  v = vkf_g_input(g, "v", VKF_DTYPE_F32, 4, sk);
  vkf_node good = vkf_g_input(g, "state", VKF_DTYPE_F32, 4, sg);
  assert_int_equal(vkf_g_linear_attention_state(g, q, k, v, good, 2048), VKF_NODE_NONE);
  assert_int_equal(vkf_graph_status(g), VKF_ERROR_INVALID_ARGUMENT);
  vkf_graph_destroy(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_linattn_graph_cpu),
      cmocka_unit_test(test_linattn_graph_vulkan),
      cmocka_unit_test(test_linattn_graph_errors),
  };
  return cmocka_run_group_tests_name("attn_linear_graph", tests, NULL, NULL);
}
