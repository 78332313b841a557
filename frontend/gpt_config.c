/* GPT model configuration: defaults, checks, Hugging Face config.json. */
#include "gpt.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define MAX_CONFIG_BYTES (1u << 20)

static const char *norm_names[] = {"layernorm", "rmsnorm"};
static const char *mlp_names[] = {"gelu", "swiglu"};
static const char *pos_names[] = {"learned", "rope"};
static const char *attn_names[] = {"standard", "flash", "sliding", "linear"};

vkf_status vkf_gpt_config_resolve(vkf_context *ctx, vkf_gpt_config *c) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!c)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_gpt_config_resolve: cfg is NULL");
  vkf_env *env = &ctx->env;
  if (!c->vocab_size || !c->context_length || !c->d_model || !c->n_layer || !c->n_head)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "GPT config: vocab_size, context_length, d_model, n_layer and n_head are "
                    "required (have %u, %u, %u, %u, %u)",
                    c->vocab_size, c->context_length, c->d_model, c->n_layer, c->n_head);
  if (c->d_model % c->n_head)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "GPT config: d_model %u is not a multiple of n_head %u", c->d_model, c->n_head);
  if (!c->n_kv_head)
    c->n_kv_head = c->n_head;
  if (c->n_head % c->n_kv_head)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "GPT config: n_head %u is not a multiple of n_kv_head %u", c->n_head,
                    c->n_kv_head);
  if ((unsigned)c->norm > VKF_NORM_RMSNORM || (unsigned)c->mlp > VKF_MLP_SWIGLU ||
      (unsigned)c->positions > VKF_POS_ROPE || (unsigned)c->attention > VKF_ATTN_LINEAR)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "GPT config: unknown norm/mlp/positions/attention");
  if (!c->d_ff) {
    if (c->mlp == VKF_MLP_GELU)
      c->d_ff = 4 * c->d_model;
    else /* the multiple of 32 at or above 8/3 d_model */
      c->d_ff = (uint32_t)((8ull * c->d_model / 3 + 31) / 32 * 32);
  }
  if (c->norm_eps == 0.0f)
    c->norm_eps = 1e-5f;
  if (c->rope_theta == 0.0f)
    c->rope_theta = 10000.0f;
  if (!(c->norm_eps > 0 && c->norm_eps < 1) || !(c->rope_theta > 1))
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "GPT config: norm_eps %g or rope_theta %g "
                    "out of range",
                    (double)c->norm_eps, (double)c->rope_theta);
  uint32_t hd = c->d_model / c->n_head;
  if (c->positions == VKF_POS_ROPE && hd % 2)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "GPT config: RoPE needs an even head size (d_model/n_head = %u)", hd);
  if (c->attention == VKF_ATTN_SLIDING && !c->sliding_window)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "GPT config: sliding-window attention needs sliding_window > 0");
  if (c->bias != 0 && c->bias != 1)
    c->bias = 1;
  if (c->untied_head != 0 && c->untied_head != 1)
    c->untied_head = 1;
  /* fields the architecture does not use take their defaults: config.json
   * leaves them out, and a model must equal itself after a checkpoint */
  if (c->positions != VKF_POS_ROPE)
    c->rope_theta = 10000.0f;
  if (c->attention != VKF_ATTN_SLIDING)
    c->sliding_window = 0;
  return VKF_OK;
}

/* A GPT-2 compatible layout: what Hugging Face's GPT2 classes can load. */
static bool is_gpt2_style(const vkf_gpt_config *c) {
  return c->norm == VKF_NORM_LAYERNORM && c->mlp == VKF_MLP_GELU &&
         c->positions == VKF_POS_LEARNED && c->bias && !c->untied_head && c->n_kv_head == c->n_head;
}

static bool u32_key(const vkf_json *j, const char *key, uint32_t *out) {
  int64_t v;
  if (!vkf_json_int(j, key, &v) || v < 0 || v > UINT32_MAX)
    return false;
  *out = (uint32_t)v;
  return true;
}

static int pick(const char *v, const char *const *names, int n) {
  for (int i = 0; v && i < n; i++)
    if (!strcmp(v, names[i]))
      return i;
  return -1;
}

vkf_status vkf_gpt_config_read(vkf_context *ctx, const char *path, vkf_gpt_config *out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_env *env = &ctx->env;
  if (!path || !out)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_gpt_config_read: path or out is NULL");
  char *text;
  size_t len;
  vkf_status st = vkf_read_file(env, path, MAX_CONFIG_BYTES, &text, &len);
  if (st != VKF_OK)
    return st;
  st = vkf_gpt_config_parse(ctx, path, text, len, out);
  vkf_free(env, text);
  return st;
}

vkf_status vkf_gpt_config_parse(vkf_context *ctx, const char *path, const char *text, size_t len,
                                vkf_gpt_config *out) {
  vkf_env *env = &ctx->env;
  vkf_json *j;
  vkf_status st = vkf_json_parse(env, path, text, len, &j);
  if (st != VKF_OK)
    return st;
  vkf_gpt_config c = {0};
  const char *type = vkf_json_str(j, "model_type");
  bool llama_keys = vkf_json_get(j, "hidden_size") != NULL;
  if (j->type != VKF_JSON_OBJECT) {
    st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: not a JSON object", path);
  } else if (!llama_keys) {
    /* GPT-2 keys */
    bool ok =
        u32_key(j, "vocab_size", &c.vocab_size) && u32_key(j, "n_embd", &c.d_model) &&
        u32_key(j, "n_layer", &c.n_layer) && u32_key(j, "n_head", &c.n_head) &&
        (u32_key(j, "n_positions", &c.context_length) || u32_key(j, "n_ctx", &c.context_length));
    if (!ok)
      st = vkf_fail(env, VKF_ERROR_FORMAT,
                    "%s: a GPT-2 config needs integer vocab_size, n_embd, n_layer, n_head and "
                    "n_positions",
                    path);
    u32_key(j, "n_inner", &c.d_ff); /* null = 4 n_embd */
    double eps;
    if (vkf_json_num(j, "layer_norm_epsilon", &eps))
      c.norm_eps = (float)eps;
    c.bias = 1;
    bool tie = true;
    vkf_json_bool(j, "tie_word_embeddings", &tie);
    c.untied_head = !tie;
  } else {
    bool ok = u32_key(j, "vocab_size", &c.vocab_size) && u32_key(j, "hidden_size", &c.d_model) &&
              u32_key(j, "num_hidden_layers", &c.n_layer) &&
              u32_key(j, "num_attention_heads", &c.n_head) &&
              u32_key(j, "max_position_embeddings", &c.context_length);
    if (!ok)
      st = vkf_fail(env, VKF_ERROR_FORMAT,
                    "%s: a Llama-style config needs integer vocab_size, hidden_size, "
                    "num_hidden_layers, num_attention_heads and max_position_embeddings",
                    path);
    u32_key(j, "num_key_value_heads", &c.n_kv_head);
    u32_key(j, "intermediate_size", &c.d_ff);
    double v;
    if (vkf_json_num(j, "rms_norm_eps", &v))
      c.norm_eps = (float)v;
    if (vkf_json_num(j, "rope_theta", &v))
      c.rope_theta = (float)v;
    c.norm = VKF_NORM_RMSNORM;
    c.mlp = VKF_MLP_SWIGLU;
    c.positions = VKF_POS_ROPE;
    bool b = false;
    vkf_json_bool(j, "attention_bias", &b);
    c.bias = b;
    bool tie = false;
    vkf_json_bool(j, "tie_word_embeddings", &tie);
    c.untied_head = !tie;
    if (u32_key(j, "sliding_window", &c.sliding_window) && c.sliding_window)
      c.attention = VKF_ATTN_SLIDING;
  }
  /* vkformer's own keys override the family defaults */
  struct {
    const char *key;
    const char *const *names;
    int n;
    int *field;
  } enums[] = {
      {"vkformer_norm", norm_names, 2, (int *)&c.norm},
      {"vkformer_mlp", mlp_names, 2, (int *)&c.mlp},
      {"vkformer_positions", pos_names, 2, (int *)&c.positions},
      {"vkformer_attention", attn_names, 4, (int *)&c.attention},
  };
  for (size_t i = 0; st == VKF_OK && i < VKF_ARRAY_LEN(enums); i++) {
    const vkf_json *v = vkf_json_get(j, enums[i].key);
    if (!v)
      continue;
    int k = v->type == VKF_JSON_STRING ? pick(v->string, enums[i].names, enums[i].n) : -1;
    if (k < 0)
      st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: %s has an unknown value", path, enums[i].key);
    else
      *enums[i].field = k;
  }
  bool b;
  if (st == VKF_OK && vkf_json_bool(j, "vkformer_bias", &b))
    c.bias = b;
  if (st == VKF_OK && vkf_json_get(j, "sliding_window") && !llama_keys)
    u32_key(j, "sliding_window", &c.sliding_window);
  (void)type;
  vkf_json_free(env, j);
  if (st == VKF_OK)
    st = vkf_gpt_config_resolve(ctx, &c);
  if (st == VKF_OK)
    *out = c;
  else if (!strstr(env->error, path)) {
    char why[sizeof(env->error)];
    snprintf(why, sizeof(why), "%s", env->error);
    st = vkf_fail(env, st, "%s: %s", path, why);
  }
  return st;
}

vkf_status vkf_gpt_config_write(vkf_context *ctx, const char *path, const vkf_gpt_config *in) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  vkf_env *env = &ctx->env;
  if (!path || !in)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER, "vkf_gpt_config_write: path or cfg is NULL");
  vkf_strbuf sb;
  vkf_sb_init(&sb, env);
  vkf_status st = vkf_gpt_config_json(ctx, in, &sb);
  if (st != VKF_OK) {
    vkf_sb_free(&sb);
    return st;
  }
  const void *parts[1] = {sb.data};
  size_t sizes[1] = {sb.len};
  st = vkf_write_file_atomic(env, path, parts, sizes, 1);
  vkf_sb_free(&sb);
  return st;
}

vkf_status vkf_gpt_config_json(vkf_context *ctx, const vkf_gpt_config *in, vkf_strbuf *sb_out) {
  vkf_env *env = &ctx->env;
  vkf_gpt_config c = *in;
  vkf_status st = vkf_gpt_config_resolve(ctx, &c);
  if (st != VKF_OK)
    return st;
  vkf_strbuf sb = *sb_out;
  if (is_gpt2_style(&c)) {
    vkf_sb_printf(&sb,
                  "{\n  \"model_type\": \"gpt2\",\n  \"architectures\": [\"GPT2LMHeadModel\"],\n"
                  "  \"vocab_size\": %u,\n  \"n_positions\": %u,\n  \"n_ctx\": %u,\n"
                  "  \"n_embd\": %u,\n  \"n_layer\": %u,\n  \"n_head\": %u,\n  \"n_inner\": %u,\n"
                  "  \"activation_function\": \"gelu_new\",\n  \"layer_norm_epsilon\": %.9g,\n"
                  "  \"tie_word_embeddings\": true,\n",
                  c.vocab_size, c.context_length, c.context_length, c.d_model, c.n_layer, c.n_head,
                  c.d_ff, (double)c.norm_eps);
  } else {
    vkf_sb_printf(&sb,
                  "{\n  \"model_type\": \"%s\",\n  \"vocab_size\": %u,\n"
                  "  \"max_position_embeddings\": %u,\n  \"hidden_size\": %u,\n"
                  "  \"num_hidden_layers\": %u,\n  \"num_attention_heads\": %u,\n"
                  "  \"num_key_value_heads\": %u,\n  \"intermediate_size\": %u,\n"
                  "  \"rms_norm_eps\": %.9g,\n  \"rope_theta\": %.9g,\n"
                  "  \"hidden_act\": \"silu\",\n  \"attention_bias\": %s,\n"
                  "  \"tie_word_embeddings\": %s,\n",
                  c.norm == VKF_NORM_RMSNORM && c.mlp == VKF_MLP_SWIGLU &&
                          c.positions == VKF_POS_ROPE && !c.bias
                      ? (c.attention == VKF_ATTN_SLIDING ? "mistral" : "llama")
                      : "vkformer",
                  c.vocab_size, c.context_length, c.d_model, c.n_layer, c.n_head, c.n_kv_head,
                  c.d_ff, (double)c.norm_eps, (double)c.rope_theta, c.bias ? "true" : "false",
                  c.untied_head ? "false" : "true");
  }
  if (c.attention == VKF_ATTN_SLIDING)
    vkf_sb_printf(&sb, "  \"sliding_window\": %u,\n", c.sliding_window);
  vkf_sb_printf(&sb,
                "  \"vkformer_norm\": \"%s\",\n  \"vkformer_mlp\": \"%s\",\n"
                "  \"vkformer_positions\": \"%s\",\n  \"vkformer_bias\": %s,\n"
                "  \"vkformer_attention\": \"%s\"\n}\n",
                norm_names[c.norm], mlp_names[c.mlp], pos_names[c.positions],
                c.bias ? "true" : "false", attn_names[c.attention]);
  *sb_out = sb;
  if (sb.failed)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "config JSON");
  return VKF_OK;
}
