/* Greedy generation of a trained model, CPU backend against Vulkan.
 *
 * A small GPT-2-style byte-level model is trained (vkf_trainer, CPU) on a
 * repeating sentence until it reproduces it; its weights are copied to a
 * Vulkan context; both generate 64 tokens greedily from the same prompt
 * through the session API. The outputs must be identical, except that they
 * may part where the CPU's two largest logits are within 1e-4 of each other
 * (a near-tie that float rounding may decide either way): such a position
 * is reported, and the comparison stops there. The text must also be the
 * sentence's continuation (the model learned it), and decoding on the CPU
 * must agree with greedy decoding from full forwards (vkf_predictor). */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NEW 64
#define TIE 1e-4

static const char text[] = "the quick brown fox jumps over the lazy dog. ";

static vkf_gpt_config model_config(void) {
  vkf_gpt_config c = {
      .vocab_size = 256, .context_length = 80, .d_model = 64, .n_layer = 2, .n_head = 4, .bias = 1};
  return c;
}

static int32_t text_at(size_t i) {
  return (unsigned char)text[i % (sizeof(text) - 1)];
}

static float *train(vkf_context *ctx, uint64_t *n_params, float *final_loss) {
  vkf_gpt_config c = model_config();
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, &c, 1, &m));
  vkf_train_desc td = {.batch = 8,
                       .seq_len = 80,
                       .lr = 3e-3f,
                       .warmup_steps = 10,
                       .schedule = VKF_LR_CONSTANT,
                       .grad_clip = 1.0f};
  vkf_trainer *t;
  VKFT_OK(vkf_trainer_create(m, &td, &t));
  int32_t in[8 * 80], tg[8 * 80];
  vkf_rng r;
  vkf_rng_seed(&r, 5);
  vkf_step_info si = {0};
  for (int step = 0; step < 150; step++) {
    for (int b = 0; b < 8; b++) {
      size_t start = vkf_rng_next(&r) % (sizeof(text) - 1);
      for (int i = 0; i < 80; i++) {
        in[b * 80 + i] = text_at(start + (size_t)i);
        tg[b * 80 + i] = text_at(start + (size_t)i + 1);
      }
    }
    VKFT_OK(vkf_trainer_step(t, in, tg, &si));
  }
  *final_loss = si.loss;
  *n_params = vkf_gpt_flat_size(m);
  float *w = vkft_alloc(*n_params);
  VKFT_OK(vkf_gpt_read_params(m, w, *n_params));
  vkf_trainer_destroy(t);
  vkf_gpt_destroy(m);
  return w;
}

static vkf_gpt *model_with(vkf_context *ctx, const float *w, uint64_t n) {
  vkf_gpt_config c = model_config();
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, &c, 2, &m));
  VKFT_OK(vkf_gpt_write_params(m, w, n));
  return m;
}

static void generate(vkf_gpt *m, const int32_t *prompt, uint32_t n, int32_t *out) {
  vkf_session *s;
  VKFT_OK(vkf_session_create(m, NULL, &s));
  vkf_generate_request r = {
      .prompt = prompt, .n_prompt = n, .max_new_tokens = NEW, .out = out, .out_cap = NEW};
  VKFT_OK(vkf_session_generate(s, &r, 1, NULL, NULL));
  assert_int_equal(r.n_generated, NEW);
  vkf_session_destroy(s);
}

static void top_two(const float *l, uint32_t V, int32_t *best, float *gap) {
  int32_t a = 0, b = -1;
  for (int32_t i = 1; i < (int32_t)V; i++) {
    if (l[i] > l[a]) {
      b = a;
      a = i;
    } else if (b < 0 || l[i] > l[b]) {
      b = i;
    }
  }
  *best = a;
  *gap = l[a] - l[b];
}

static void test_greedy_cpu_vs_vulkan(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  uint64_t n;
  float loss;
  float *w = train(cpu, &n, &loss);
  printf("trained: final loss %.4f\n", (double)loss);
  assert_true(loss < 0.3f);
  const uint32_t np = 9; /* "the quick" */
  int32_t prompt[16], seq[16 + NEW], got_cpu[NEW], got_vk[NEW];
  for (uint32_t i = 0; i < np; i++)
    prompt[i] = text_at(i);
  vkf_gpt *mc = model_with(cpu, w, n);
  generate(mc, prompt, np, got_cpu);
  char shown[NEW + 1];
  for (int i = 0; i < NEW; i++)
    shown[i] = (char)got_cpu[i];
  shown[NEW] = 0;
  printf("CPU: \"the quick%s\"\n", shown);
  int learned = 0;
  for (int i = 0; i < NEW; i++)
    learned += got_cpu[i] == text_at(np + (size_t)i);
  assert_true(learned >= NEW * 9 / 10);
  /* CPU decoding against greedy full forwards */
  vkf_predictor *p;
  VKFT_OK(vkf_predictor_create(mc, &p));
  memcpy(seq, prompt, np * sizeof(int32_t));
  memcpy(seq + np, got_cpu, sizeof(got_cpu));
  float lg[256];
  for (int i = 0; i < NEW; i++) {
    int32_t best;
    float gap;
    VKFT_OK(vkf_predictor_next(p, seq, np + (uint32_t)i, lg));
    top_two(lg, 256, &best, &gap);
    if (best != got_cpu[i]) {
      printf("position %d: decoding picked %d, the full forward %d (top-two gap %.3g)\n", i,
             got_cpu[i], best, (double)gap);
      assert_true(gap <= TIE);
      break;
    }
  }

  vkf_context *vk = vkft_vulkan();
  vkf_gpt *mv = model_with(vk, w, n);
  generate(mv, prompt, np, got_vk);
  int differ = -1;
  for (int i = 0; i < NEW && differ < 0; i++)
    if (got_vk[i] != got_cpu[i])
      differ = i;
  if (differ >= 0) {
    int32_t best;
    float gap;
    VKFT_OK(vkf_predictor_next(p, seq, np + (uint32_t)differ, lg));
    top_two(lg, 256, &best, &gap);
    printf("position %d: CPU %d, Vulkan %d; CPU top-two gap %.3g\n", differ, got_cpu[differ],
           got_vk[differ], (double)gap);
    assert_true(gap <= TIE);
  } else {
    printf("Vulkan: identical %d tokens\n", NEW);
  }
  vkf_predictor_destroy(p);
  vkf_gpt_destroy(mv);
  vkft_destroy(vk);
  vkf_gpt_destroy(mc);
  free(w);
  vkft_destroy(cpu);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_greedy_cpu_vs_vulkan),
  };
  return cmocka_run_group_tests_name("generate", tests, NULL, NULL);
}
