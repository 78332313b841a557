/* GPT configs: defaults and checks, Hugging Face config.json round trips
 * for GPT-2, Llama and mixed layouts, and malformed files. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static const char *path(const char *name) {
  static char buf[256];
  snprintf(buf, sizeof(buf), "%s/%s", dir, name);
  return buf;
}

static void write_text(const char *name, const char *text) {
  FILE *f = fopen(path(name), "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void roundtrip(vkf_context *ctx, vkf_gpt_config c) {
  VKFT_OK(vkf_gpt_config_resolve(ctx, &c));
  VKFT_OK(vkf_gpt_config_write(ctx, path("config.json"), &c));
  vkf_gpt_config back;
  VKFT_OK(vkf_gpt_config_read(ctx, path("config.json"), &back));
  assert_memory_equal(&back, &c, sizeof(c));
}

static void test_config_roundtrip(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  vkf_gpt_config gpt2 = {.vocab_size = 50257,
                         .context_length = 1024,
                         .d_model = 768,
                         .n_layer = 12,
                         .n_head = 12,
                         .bias = 1};
  roundtrip(ctx, gpt2);
  vkf_gpt_config llama = {.vocab_size = 32000,
                          .context_length = 2048,
                          .d_model = 512,
                          .n_layer = 8,
                          .n_head = 8,
                          .n_kv_head = 2,
                          .d_ff = 1376,
                          .norm = VKF_NORM_RMSNORM,
                          .norm_eps = 1e-6f,
                          .mlp = VKF_MLP_SWIGLU,
                          .positions = VKF_POS_ROPE,
                          .rope_theta = 500000,
                          .untied_head = 1};
  roundtrip(ctx, llama);
  vkf_gpt_config mixed = {.vocab_size = 256,
                          .context_length = 128,
                          .d_model = 64,
                          .n_layer = 2,
                          .n_head = 4,
                          .n_kv_head = 1,
                          .positions = VKF_POS_ROPE,
                          .bias = 1,
                          .attention = VKF_ATTN_SLIDING,
                          .sliding_window = 32};
  roundtrip(ctx, mixed);
  /* defaults */
  vkf_gpt_config d = {.vocab_size = 10,
                      .context_length = 8,
                      .d_model = 96,
                      .n_layer = 1,
                      .n_head = 3,
                      .mlp = VKF_MLP_SWIGLU};
  VKFT_OK(vkf_gpt_config_resolve(ctx, &d));
  assert_int_equal(d.n_kv_head, 3);
  assert_int_equal(d.d_ff, 256); /* multiple of 32 at or above 8/3 * 96 = 256 */
  assert_true(d.norm_eps == 1e-5f && d.rope_theta == 10000.0f);
  vkft_destroy(ctx);
}

static void test_config_hf_files(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  /* the keys Hugging Face's GPT-2 writes (subset) */
  write_text("gpt2.json", "{\"activation_function\": \"gelu_new\", \"model_type\": \"gpt2\", "
                          "\"n_ctx\": 1024, \"n_embd\": 768, \"n_head\": 12, \"n_inner\": null, "
                          "\"n_layer\": 12, \"n_positions\": 1024, \"layer_norm_epsilon\": 1e-05, "
                          "\"vocab_size\": 50257}");
  vkf_gpt_config c;
  VKFT_OK(vkf_gpt_config_read(ctx, path("gpt2.json"), &c));
  assert_int_equal(c.d_ff, 3072);
  assert_int_equal(c.norm, VKF_NORM_LAYERNORM);
  assert_int_equal(c.positions, VKF_POS_LEARNED);
  assert_int_equal(c.untied_head, 0);
  assert_int_equal(c.bias, 1);
  write_text("llama.json", "{\"hidden_size\": 2048, \"intermediate_size\": 5632, "
                           "\"max_position_embeddings\": 2048, \"num_attention_heads\": 32, "
                           "\"num_hidden_layers\": 22, \"num_key_value_heads\": 4, "
                           "\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
                           "\"tie_word_embeddings\": false, \"vocab_size\": 32000}");
  VKFT_OK(vkf_gpt_config_read(ctx, path("llama.json"), &c));
  assert_int_equal(c.n_kv_head, 4);
  assert_int_equal(c.norm, VKF_NORM_RMSNORM);
  assert_int_equal(c.mlp, VKF_MLP_SWIGLU);
  assert_int_equal(c.untied_head, 1);
  assert_int_equal(c.bias, 0);

  struct {
    const char *text, *needle;
    vkf_status st;
  } bad[] = {
      {"{\"n_embd\": 64", "line 1", VKF_ERROR_FORMAT},
      {"{\"n_embd\": 64, \"n_layer\": 2}", "needs integer vocab_size", VKF_ERROR_FORMAT},
      {"{\"vocab_size\": 10, \"n_embd\": 10, \"n_layer\": 1, \"n_head\": 3, \"n_positions\": 4}",
       "not a multiple of n_head", VKF_ERROR_INVALID_ARGUMENT},
      {"{\"vocab_size\": 10, \"n_embd\": 12, \"n_layer\": 1, \"n_head\": 3, \"n_positions\": 4, "
       "\"vkformer_norm\": \"batchnorm\"}",
       "vkformer_norm", VKF_ERROR_FORMAT},
      {"[1]", "not a JSON object", VKF_ERROR_FORMAT},
  };
  for (size_t i = 0; i < VKFT_ARRAY_LEN(bad); i++) {
    write_text("bad.json", bad[i].text);
    vkf_status st = vkf_gpt_config_read(ctx, path("bad.json"), &c);
    if (st != bad[i].st || !strstr(vkf_context_error(ctx), bad[i].needle) ||
        !strstr(vkf_context_error(ctx), "bad.json"))
      fail_msg("case %zu: %s: %s", i, vkf_status_name(st), vkf_context_error(ctx));
  }
  assert_int_equal(vkf_gpt_config_read(ctx, path("absent.json"), &c), VKF_ERROR_IO);
  assert_int_equal(vkf_gpt_config_read(ctx, NULL, &c), VKF_ERROR_NULL_POINTER);
  vkf_gpt_config none = {0};
  assert_int_equal(vkf_gpt_config_resolve(ctx, &none), VKF_ERROR_INVALID_ARGUMENT);
  vkf_gpt_config odd = {.vocab_size = 8,
                        .context_length = 8,
                        .d_model = 6,
                        .n_layer = 1,
                        .n_head = 2,
                        .positions = VKF_POS_ROPE};
  assert_int_equal(vkf_gpt_config_resolve(ctx, &odd), VKF_ERROR_INVALID_ARGUMENT);
  vkft_destroy(ctx);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/vkf-test-config-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_roundtrip),
      cmocka_unit_test(test_config_hf_files),
  };
  return cmocka_run_group_tests_name("config", tests, setup, NULL);
}
