/* GPT model files: seeded initialisation is reproducible and backend-
 * independent; save -> load -> save is byte-identical for GPT-2 and Llama
 * layouts; Hugging Face's "transformer." prefix and F16/BF16 weights load;
 * malformed or mismatched files fail naming the tensor. */
#include "test_util.h"

#include "gpt.h"
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static const char *path(const char *name) {
  static char bufs[4][256];
  static int k;
  char *b = bufs[k++ % 4];
  snprintf(b, 256, "%s/%s", dir, name);
  return b;
}

static char *slurp(const char *p, size_t *n) {
  FILE *f = fopen(p, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *n = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  char *d = malloc(*n + 1);
  assert_int_equal(fread(d, 1, *n, f), *n);
  fclose(f);
  return d;
}

static bool same_file(const char *a, const char *b) {
  size_t na, nb;
  char *x = slurp(a, &na), *y = slurp(b, &nb);
  bool same = na == nb && !memcmp(x, y, na);
  free(x);
  free(y);
  return same;
}

static const vkf_gpt_config gpt2 = {
    .vocab_size = 50, .context_length = 16, .d_model = 24, .n_layer = 2, .n_head = 3, .bias = 1};
static const vkf_gpt_config llama = {.vocab_size = 40,
                                     .context_length = 16,
                                     .d_model = 32,
                                     .n_layer = 2,
                                     .n_head = 4,
                                     .n_kv_head = 2,
                                     .norm = VKF_NORM_RMSNORM,
                                     .mlp = VKF_MLP_SWIGLU,
                                     .positions = VKF_POS_ROPE,
                                     .untied_head = 1};

static void roundtrip(vkf_context *ctx, const vkf_gpt_config *cfg, uint64_t expect_params) {
  vkf_gpt *m, *m2;
  VKFT_OK(vkf_gpt_create(ctx, cfg, 7, &m));
  assert_int_equal(vkf_gpt_parameter_count(m), expect_params);
  VKFT_OK(vkf_gpt_save(m, path("a.json"), path("a.safetensors")));
  VKFT_OK(vkf_gpt_load(ctx, path("a.json"), path("a.safetensors"), &m2));
  VKFT_OK(vkf_gpt_save(m2, path("b.json"), path("b.safetensors")));
  assert_true(same_file(path("a.safetensors"), path("b.safetensors")));
  assert_true(same_file(path("a.json"), path("b.json")));
  vkf_gpt_destroy(m2);
  /* same seed, same weights; another seed, other weights */
  VKFT_OK(vkf_gpt_create(ctx, cfg, 7, &m2));
  VKFT_OK(vkf_gpt_save(m2, path("c.json"), path("c.safetensors")));
  assert_true(same_file(path("a.safetensors"), path("c.safetensors")));
  vkf_gpt_destroy(m2);
  VKFT_OK(vkf_gpt_create(ctx, cfg, 8, &m2));
  VKFT_OK(vkf_gpt_save(m2, path("c.json"), path("c.safetensors")));
  assert_false(same_file(path("a.safetensors"), path("c.safetensors")));
  vkf_gpt_destroy(m2);
  vkf_gpt_destroy(m);
}

static void test_gpt_roundtrip(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  /* GPT-2: wte 50x24 + wpe 16x24 + 2 x (ln 2x24, qkv 24x72+72, o 24x24+24,
   * ln 2x24, fc 24x96+96, proj 96x24+24) + ln_f 2x24 */
  uint64_t g2 = 50 * 24 + 16 * 24 +
                2 * (48 + 24 * 72 + 72 + 24 * 24 + 24 + 48 + 24 * 96 + 96 + 96 * 24 + 24) + 48;
  roundtrip(ctx, &gpt2, g2);
  /* Llama: embed 40x32 + 2 x (norm 32, q 32x32, k 16x32, v 16x32, o 32x32,
   * norm 32, gate/up 96x32 (d_ff = 96), down 32x96) + norm 32 + head 40x32 */
  uint64_t ll =
      40 * 32 + 2 * (32 + 32 * 32 + 2 * 16 * 32 + 32 * 32 + 32 + 3 * 96 * 32) + 32 + 40 * 32;
  roundtrip(ctx, &llama, ll);
  vkft_destroy(ctx);
}

/* The same seed gives the same weights on Vulkan (init runs on the host). */
static void test_gpt_backend_independent(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan(), *cpu = vkft_cpu();
  vkf_gpt *a, *b;
  VKFT_OK(vkf_gpt_create(vk, &gpt2, 3, &a));
  VKFT_OK(vkf_gpt_create(cpu, &gpt2, 3, &b));
  VKFT_OK(vkf_gpt_save(a, path("v.json"), path("v.safetensors")));
  VKFT_OK(vkf_gpt_save(b, path("k.json"), path("k.safetensors")));
  assert_true(same_file(path("v.safetensors"), path("k.safetensors")));
  vkf_gpt_destroy(a);
  vkf_gpt_destroy(b);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* Rewrites a.safetensors with one change: rename, reshape, retype or add. */
typedef enum { EDIT_PREFIX, EDIT_DROP, EDIT_SHAPE, EDIT_F16, EDIT_I32, EDIT_EXTRA } edit;

static void rewrite(vkf_context *ctx, edit e, const char *victim) {
  vkf_env env;
  vkf_env_init(&env, NULL);
  vkf_st_file *f;
  VKFT_OK(vkf_st_open(&env, path("a.safetensors"), &f));
  uint32_t n = f->n;
  vkf_st_out *outs = calloc(n + 1, sizeof(*outs));
  void **data = calloc(n + 1, sizeof(void *));
  char(*names)[128] = calloc(n + 1, 128);
  int64_t(*shapes)[8] = calloc(n + 1, sizeof(int64_t[8]));
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++) {
    const vkf_st_entry *en = &f->entries[i];
    bool hit = !strcmp(en->name, victim);
    if (hit && e == EDIT_DROP)
      continue;
    data[k] = malloc(en->end - en->begin + 8);
    VKFT_OK(vkf_st_read(f, en, data[k], en->end - en->begin));
    snprintf(names[k], 128, "%s%s", e == EDIT_PREFIX ? "transformer." : "", en->name);
    memcpy(shapes[k], en->shape, sizeof(shapes[k]));
    outs[k] = (vkf_st_out){names[k], en->dtype, en->ndim, shapes[k], data[k]};
    if (hit && e == EDIT_SHAPE && en->ndim == 2) {
      shapes[k][0] = en->shape[1];
      shapes[k][1] = en->shape[0];
    }
    if (e == EDIT_F16 || (hit && e == EDIT_I32)) {
      /* F16 everywhere: values rounded by truncating the mantissa */
      uint64_t cnt = en->elements;
      if (e == EDIT_F16) {
        uint16_t *h = malloc(cnt * 2);
        const float *src = data[k];
        for (uint64_t j = 0; j < cnt; j++) {
          uint32_t u;
          memcpy(&u, &src[j], 4);
          /* bf16 by truncation (keeps the exponent range of f32) */
          h[j] = (uint16_t)(u >> 16);
        }
        free(data[k]);
        data[k] = h;
        outs[k].data = h;
        outs[k].dtype = VKF_ST_BF16;
      } else {
        outs[k].dtype = VKF_ST_I32;
      }
    }
    k++;
  }
  int64_t one = 3;
  float extra[3] = {1, 2, 3};
  if (e == EDIT_EXTRA)
    outs[k++] = (vkf_st_out){"h.9.mlp.c_fc.weight", VKF_ST_F32, 1, &one, extra};
  VKFT_OK(vkf_st_write(&env, path("e.safetensors"), outs, k, NULL, NULL, 0));
  for (uint32_t i = 0; i < k; i++)
    if (outs[i].data != extra)
      free(data[i]);
  free(outs);
  free(data);
  free(names);
  free(shapes);
  vkf_st_close(f);
  (void)ctx;
}

static void expect_load(vkf_context *ctx, vkf_status want, const char *needle) {
  vkf_gpt *m = NULL;
  vkf_status st = vkf_gpt_load(ctx, path("a.json"), path("e.safetensors"), &m);
  if (st != want || (needle && !strstr(vkf_context_error(ctx), needle)))
    fail_msg("got %s (%s), expected %s with \"%s\"", vkf_status_name(st), vkf_context_error(ctx),
             vkf_status_name(want), needle ? needle : "");
  if (st == VKF_OK)
    vkf_gpt_destroy(m);
  else
    assert_null(m);
}

static void test_gpt_malformed(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, &gpt2, 1, &m));
  VKFT_OK(vkf_gpt_save(m, path("a.json"), path("a.safetensors")));
  vkf_gpt_destroy(m);
  rewrite(ctx, EDIT_PREFIX, "");
  expect_load(ctx, VKF_OK, NULL);
  rewrite(ctx, EDIT_F16, "");
  expect_load(ctx, VKF_OK, NULL);
  rewrite(ctx, EDIT_DROP, "h.1.ln_2.bias");
  expect_load(ctx, VKF_ERROR_FORMAT, "\"h.1.ln_2.bias\" is missing");
  rewrite(ctx, EDIT_SHAPE, "h.0.attn.c_attn.weight");
  expect_load(ctx, VKF_ERROR_SHAPE_MISMATCH,
              "\"h.0.attn.c_attn.weight\" is [72, 24], the config needs [24, 72]");
  rewrite(ctx, EDIT_I32, "wpe.weight");
  expect_load(ctx, VKF_ERROR_DTYPE_MISMATCH, "\"wpe.weight\" is I32");
  rewrite(ctx, EDIT_EXTRA, "");
  expect_load(ctx, VKF_ERROR_FORMAT, "\"h.9.mlp.c_fc.weight\" does not belong");
  /* a Llama config against GPT-2 weights */
  vkf_gpt_config_write(ctx, path("l.json"), &llama);
  assert_int_equal(vkf_gpt_load(ctx, path("l.json"), path("a.safetensors"), &m), VKF_ERROR_FORMAT);
  assert_non_null(strstr(vkf_context_error(ctx), "model.embed_tokens.weight"));
  assert_int_equal(vkf_gpt_load(ctx, path("a.json"), path("nope.safetensors"), &m), VKF_ERROR_IO);
  vkft_destroy(ctx);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/vkf-test-gpt-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gpt_roundtrip),
      cmocka_unit_test(test_gpt_backend_independent),
      cmocka_unit_test(test_gpt_malformed),
  };
  return cmocka_run_group_tests_name("gpt_io", tests, setup, NULL);
}
