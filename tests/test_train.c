/* train: the GPT trainer through the public API.
 *
 * - CPU and Vulkan agree over several steps, for a GPT-2 style and a Llama
 *   style model (losses, first gradients, final weights).
 * - The CPU backend's results do not depend on its thread count; eval
 *   gives the loss the next step reports and changes nothing.
 * - A checkpoint mid-run, resumed in a fresh context, model and trainer,
 *   continues bit for bit like the uninterrupted run (same backend), with
 *   the warm-up + cosine schedule picking up where it was; Vulkan through
 *   staging buffers trains bit for bit like mapped memory; a CPU checkpoint
 *   resumes on Vulkan.
 * - A model's own checkpoint loads whatever unused config fields it has.
 * - Bad checkpoints (another config, truncated, not a checkpoint, missing or
 *   mis-sized optimizer state, bad step) fail with their statuses and change
 *   nothing: weights, step count and optimizer state (the next step equals
 *   the twin run's) stay as they were.
 * - Memory: planned activations well below the no-reuse sum, peak linear in
 *   the batch, and the device memory the trainer allocates is what it
 *   reports.
 * - The learning rate schedule (warm-up + cosine, constant) against an
 *   independent computation, and the device applies it.
 * - Argument errors; a trained model's weights changed, and saved and
 *   reloaded (model files and checkpoint) it predicts identical logits.
 *
 * Tolerances (CPU vs Vulkan). scripts/torch_reference.py bounds each backend
 * against PyTorch (loss 1e-6 relative, gradients 1e-6 * G + 4e-6 * |g|);
 * both stay within a third of those bounds (tests/torch_ref reports), so
 * their difference is bounded by the sum:
 * - loss, every step: relative 2e-6. Measured: 1.3e-7.
 * - step-1 gradients: |d| <= 2e-6 * G + 8e-6 * |ref|, G the largest gradient
 *   element (rounding is relative to the summed terms, i.e. to G; a key
 *   bias gradient is exactly 0 in exact arithmetic and rounding noise on
 *   both). Measured: 1.8e-7 * G.
 * - weights after the steps: what the gradient bound dg can do through
 *   AdamW. A step moves a weight by lr * m_hat / (sqrt(v_hat) + eps); an
 *   error dg changes that by ~2 lr dg / sqrt(v_hat), and by at most 2 lr
 *   (the normalised step is about +-1 on either backend; the key biases,
 *   whose gradient is rounding noise, move by the sign of noise). With the
 *   step-1 |g| for sqrt(v_hat):
 *   |d| <= 1e-6 * |w| + 1e-8 + lr * steps * min(2, 2 dg / (|g| + eps)).
 *   Measured: at most 0.24 of that bound.
 */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOSS_RTOL 2e-6
#define GRAD_ATOL_G 2e-6
#define GRAD_RTOL 8e-6

static char dir[64];

static const char *path(const char *name) {
  static char bufs[8][256];
  static int k;
  char *b = bufs[k++ % 8];
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
  assert_non_null(d);
  assert_int_equal(fread(d, 1, *n, f), *n);
  fclose(f);
  return d;
}

/* GPT-2 style (layernorm, GELU, learned positions, biases, tied head) and
 * Llama style (RMSNorm, SwiGLU, RoPE, GQA 6 -> 2, untied head, no bias);
 * dimensions off the usual tile multiples. */
static const vkf_gpt_config gpt2 = {
    .vocab_size = 67, .context_length = 24, .d_model = 48, .n_layer = 2, .n_head = 4, .bias = 1};
static const vkf_gpt_config llama = {.vocab_size = 59,
                                     .context_length = 24,
                                     .d_model = 48,
                                     .n_layer = 2,
                                     .n_head = 6,
                                     .n_kv_head = 2,
                                     .norm = VKF_NORM_RMSNORM,
                                     .mlp = VKF_MLP_SWIGLU,
                                     .positions = VKF_POS_ROPE,
                                     .untied_head = 1};

enum { B = 3, T = 20, STEPS = 6 };

static void expect(vkf_context *ctx, vkf_status got, vkf_status want, const char *what) {
  if (got != want)
    fail_msg("%s: got %s, expected %s (%s)", what, vkf_status_name(got), vkf_status_name(want),
             vkf_context_error(ctx));
  if (want != VKF_OK && strlen(vkf_context_error(ctx)) == 0)
    fail_msg("%s: no error message", what);
}

/* Batch `s` of a deterministic stream: random ids, targets mostly a
 * function of the input (so the loss falls). */
static void batch(uint32_t V, uint32_t s, int32_t *in, int32_t *tg, uint32_t n) {
  vkf_rng r;
  vkf_rng_seed(&r, 1000 + s);
  for (uint32_t i = 0; i < n; i++) {
    in[i] = (int32_t)(vkf_rng_next(&r) % V);
    tg[i] = (vkf_rng_next(&r) % 4) ? (in[i] * 5 + 1) % (int32_t)V : (int32_t)(vkf_rng_next(&r) % V);
  }
}

static vkf_train_desc desc_for(void) {
  vkf_train_desc d = {.batch = B,
                      .seq_len = T,
                      .lr = 3e-3f,
                      .min_lr = 3e-4f,
                      .warmup_steps = 2,
                      .total_steps = 8,
                      .schedule = VKF_LR_COSINE,
                      .weight_decay = 0.1f,
                      .grad_clip = 1.0f};
  return d;
}

static float *read_params(vkf_gpt *m) {
  uint64_t n = vkf_gpt_flat_size(m);
  float *p = vkft_alloc(n);
  VKFT_OK(vkf_gpt_read_params(m, p, n));
  return p;
}

/* Runs steps [first, last) of the batch stream; losses[s] for each. */
static void run_steps(vkf_trainer *tr, uint32_t V, uint32_t first, uint32_t last, float *losses) {
  int32_t in[B * T], tg[B * T];
  for (uint32_t s = first; s < last; s++) {
    batch(V, s, in, tg, B * T);
    vkf_step_info si;
    VKFT_OK(vkf_trainer_step(tr, in, tg, &si));
    assert_int_equal(si.step, s + 1);
    assert_true(isfinite(si.loss) && isfinite(si.grad_norm) && si.grad_norm > 0);
    assert_true(si.lr == vkf_trainer_lr(tr, s + 1));
    losses[s] = si.loss;
  }
}

/* ------------------------------------------------------------------------ */
/* CPU vs Vulkan                                                            */
/* ------------------------------------------------------------------------ */
typedef struct run_result {
  float losses[STEPS];
  float *grads1, *final;
  uint64_t n;
} run_result;

static run_result train_on(vkf_context *ctx, const vkf_gpt_config *cfg) {
  run_result r = {0};
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, cfg, 21, &m));
  vkf_train_desc d = desc_for();
  vkf_trainer *tr;
  VKFT_OK(vkf_trainer_create(m, &d, &tr));
  r.n = vkf_gpt_flat_size(m);
  r.grads1 = vkft_alloc(r.n);
  run_steps(tr, cfg->vocab_size, 0, 1, r.losses);
  VKFT_OK(vkf_trainer_read_grads(tr, r.grads1, r.n));
  run_steps(tr, cfg->vocab_size, 1, STEPS, r.losses);
  r.final = read_params(m);
  vkf_trainer_destroy(tr);
  vkf_gpt_destroy(m);
  return r;
}

static void cpu_vs_vulkan(const vkf_gpt_config *cfg) {
  vkf_context *vk = vkft_vulkan(), *cpu = vkft_cpu();
  run_result a = train_on(cpu, cfg), b = train_on(vk, cfg);
  double worst_loss = 0;
  for (int s = 0; s < STEPS; s++) {
    double d = fabs((double)a.losses[s] - b.losses[s]) / fabs((double)a.losses[s]);
    worst_loss = d > worst_loss ? d : worst_loss;
  }
  assert_int_equal(vkft_compare_f("losses", b.losses, a.losses, STEPS, 0, LOSS_RTOL), 0);
  assert_true(a.losses[STEPS - 1] < a.losses[0]); /* it learns */
  double G = 0;
  for (uint64_t i = 0; i < a.n; i++)
    G = fabs(a.grads1[i]) > G ? fabs(a.grads1[i]) : G;
  size_t bad = 0;
  double worst_g = 0, worst_w = 0;
  vkf_train_desc d = desc_for();
  for (uint64_t i = 0; i < a.n; i++) {
    double dg = fabs((double)a.grads1[i] - b.grads1[i]);
    worst_g = dg / G > worst_g ? dg / G : worst_g;
    if (!(dg <= GRAD_ATOL_G * G + GRAD_RTOL * fabs(a.grads1[i]))) {
      if (bad++ < 5)
        fprintf(stderr, "  grad[%llu]: cpu %.9g vulkan %.9g\n", (unsigned long long)i,
                (double)a.grads1[i], (double)b.grads1[i]);
    }
    /* what the gradient bound can do through Adam, per step: 2 dg / |g|,
     * at most 2 (|g| of step 1 standing for sqrt(v_hat)) */
    double g1 = fabs(a.grads1[i]), dgb = GRAD_ATOL_G * G + GRAD_RTOL * g1;
    double allow = d.lr * STEPS * fmin(2.0, 2 * dgb / (g1 + d.eps));
    double dw = fabs((double)a.final[i] - b.final[i]);
    double bound = 1e-6 * fabs(a.final[i]) + 1e-8 + allow;
    worst_w = dw / bound > worst_w ? dw / bound : worst_w;
    if (!(dw <= bound)) {
      if (bad++ < 5)
        fprintf(stderr, "  weight[%llu]: cpu %.9g vulkan %.9g\n", (unsigned long long)i,
                (double)a.final[i], (double)b.final[i]);
    }
  }
  fprintf(stderr,
          "  cpu vs vulkan: loss rel %.3g, grad %.3g G (G = %.3g), weights %.3g of the bound\n",
          worst_loss, worst_g, G, worst_w);
  assert_int_equal(bad, 0);
  free(a.grads1);
  free(a.final);
  free(b.grads1);
  free(b.final);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

static void test_cpu_vs_vulkan_gpt2(void **state) {
  (void)state;
  cpu_vs_vulkan(&gpt2);
}

static void test_cpu_vs_vulkan_llama(void **state) {
  (void)state;
  cpu_vs_vulkan(&llama);
}

/* The CPU backend's results do not depend on its thread count; eval gives
 * the loss the next step reports, and changes nothing. */
static void test_cpu_threads_and_eval(void **state) {
  (void)state;
  const vkf_gpt_config *cfgs[2] = {&gpt2, &llama};
  for (int c = 0; c < 2; c++) {
    float losses[3][STEPS];
    float *params[3];
    const uint32_t threads[3] = {1, 3, 4};
    for (int k = 0; k < 3; k++) {
      vkf_context *ctx = vkft_cpu();
      VKFT_OK(vkf_context_set_threads(ctx, threads[k]));
      vkf_gpt *m;
      VKFT_OK(vkf_gpt_create(ctx, cfgs[c], 2, &m));
      vkf_train_desc d = desc_for();
      vkf_trainer *tr;
      VKFT_OK(vkf_trainer_create(m, &d, &tr));
      for (uint32_t s = 0; s < 3; s++) {
        int32_t in[B * T], tg[B * T];
        batch(cfgs[c]->vocab_size, s, in, tg, B * T);
        float *before = read_params(m);
        float ev, ev2;
        VKFT_OK(vkf_trainer_eval(tr, in, tg, &ev));
        VKFT_OK(vkf_trainer_eval(tr, in, tg, &ev2));
        float *after = read_params(m);
        assert_memory_equal(before, after, vkf_gpt_flat_size(m) * sizeof(float));
        assert_int_equal(vkf_trainer_steps(tr), s);
        assert_true(ev == ev2);
        free(before);
        free(after);
        run_steps(tr, cfgs[c]->vocab_size, s, s + 1, losses[k]);
        if (memcmp(&ev, &losses[k][s], sizeof(float)))
          fail_msg("eval %.9g, step %.9g", (double)ev, (double)losses[k][s]);
      }
      params[k] = read_params(m);
      if (k) {
        assert_memory_equal(losses[k], losses[0], 3 * sizeof(float));
        assert_memory_equal(params[k], params[0], vkf_gpt_flat_size(m) * sizeof(float));
      }
      vkf_trainer_destroy(tr);
      vkf_gpt_destroy(m);
      vkft_destroy(ctx);
    }
    for (int k = 0; k < 3; k++)
      free(params[k]);
  }
}

/* Vulkan with device-local memory behind staging copies (the discrete-GPU
 * path: batch writes, loss and norm reads, checkpoints go through staging
 * buffers at arena offsets) trains bit for bit like the mapped path. */
static vkf_context *vulkan_staging(void) {
  return vkft_vulkan_flags(VKF_CONTEXT_FORCE_STAGING);
}

static void test_vulkan_staging(void **state) {
  (void)state;
  float losses[2][STEPS];
  float *params[2];
  uint64_t n = 0;
  for (int k = 0; k < 2; k++) {
    vkf_context *ctx = k ? vulkan_staging() : vkft_vulkan();
    vkf_gpt *m;
    VKFT_OK(vkf_gpt_create(ctx, &llama, 6, &m));
    vkf_train_desc d = desc_for();
    vkf_trainer *tr;
    VKFT_OK(vkf_trainer_create(m, &d, &tr));
    run_steps(tr, llama.vocab_size, 0, 3, losses[k]);
    const char *ck = path(k ? "staged.safetensors" : "mapped.safetensors");
    VKFT_OK(vkf_trainer_save(tr, ck, NULL, NULL, 0));
    VKFT_OK(vkf_trainer_load(tr, ck));
    run_steps(tr, llama.vocab_size, 3, 4, losses[k]);
    params[k] = read_params(m);
    n = vkf_gpt_flat_size(m);
    vkf_trainer_destroy(tr);
    vkf_gpt_destroy(m);
    vkft_destroy(ctx);
  }
  assert_memory_equal(losses[0], losses[1], 4 * sizeof(float));
  assert_memory_equal(params[0], params[1], n * sizeof(float));
  size_t na, nb;
  char *a = slurp(path("mapped.safetensors"), &na), *b = slurp(path("staged.safetensors"), &nb);
  assert_true(na == nb && !memcmp(a, b, na));
  free(a);
  free(b);
  free(params[0]);
  free(params[1]);
}

/* ------------------------------------------------------------------------ */
/* Checkpoint and resume                                                    */
/* ------------------------------------------------------------------------ */
enum { SPLIT = 3 };

static void resume(vkf_context *(*make)(void), const vkf_gpt_config *cfg) {
  const uint32_t V = cfg->vocab_size;
  float full[STEPS], resumed[STEPS];
  vkf_train_desc d = desc_for();
  /* uninterrupted, with a checkpoint after SPLIT steps */
  vkf_context *ctx = make();
  vkf_gpt *m;
  vkf_trainer *tr;
  VKFT_OK(vkf_gpt_create(ctx, cfg, 5, &m));
  VKFT_OK(vkf_trainer_create(m, &d, &tr));
  run_steps(tr, V, 0, SPLIT, full);
  const char *keys[] = {"data_position", "note"}, *vals[] = {"3", "resume test"};
  VKFT_OK(vkf_trainer_save(tr, path("ckpt.safetensors"), keys, vals, 2));
  run_steps(tr, V, SPLIT, STEPS, full);
  float *want = read_params(m);
  uint64_t n = vkf_gpt_flat_size(m);
  assert_int_equal(vkf_trainer_steps(tr), STEPS);
  vkf_trainer_destroy(tr);
  vkf_gpt_destroy(m);
  vkft_destroy(ctx);

  /* the checkpoint's metadata */
  vkf_context *cpu = vkft_cpu();
  char buf[64];
  VKFT_OK(vkf_checkpoint_meta(cpu, path("ckpt.safetensors"), "step", buf, sizeof(buf)));
  assert_string_equal(buf, "3");
  VKFT_OK(vkf_checkpoint_meta(cpu, path("ckpt.safetensors"), "data_position", buf, sizeof(buf)));
  assert_string_equal(buf, "3");
  expect(cpu, vkf_checkpoint_meta(cpu, path("ckpt.safetensors"), "note", buf, 4),
         VKF_ERROR_BUFFER_TOO_SMALL, "meta into 4 bytes");
  expect(cpu, vkf_checkpoint_meta(cpu, path("ckpt.safetensors"), "absent", buf, sizeof(buf)),
         VKF_ERROR_FORMAT, "absent meta");
  vkft_destroy(cpu);

  /* resumed: a fresh context, a model from another seed, a fresh trainer */
  ctx = make();
  VKFT_OK(vkf_gpt_create(ctx, cfg, 99, &m));
  VKFT_OK(vkf_trainer_create(m, &d, &tr));
  assert_int_equal(vkf_trainer_steps(tr), 0);
  VKFT_OK(vkf_trainer_load(tr, path("ckpt.safetensors")));
  assert_int_equal(vkf_trainer_steps(tr), SPLIT);
  /* eval (no update) gives the loss the next step reports */
  int32_t in[B * T], tg[B * T];
  batch(V, SPLIT, in, tg, B * T);
  float ev;
  VKFT_OK(vkf_trainer_eval(tr, in, tg, &ev));
  if (memcmp(&ev, &full[SPLIT], sizeof(float)))
    fail_msg("eval after resuming: %.9g, the uninterrupted step: %.9g", (double)ev,
             (double)full[SPLIT]);
  run_steps(tr, V, SPLIT, STEPS, resumed);
  float *got = read_params(m);
  for (int s = SPLIT; s < STEPS; s++)
    if (memcmp(&full[s], &resumed[s], sizeof(float)))
      fail_msg("step %d: resumed loss %.9g, uninterrupted %.9g", s + 1, (double)resumed[s],
               (double)full[s]);
  assert_memory_equal(got, want, n * sizeof(float));
  free(got);

  /* a model made from the checkpoint holds the step-3 weights: training it
   * from there with a new trainer differs only in the optimizer state */
  vkf_gpt *from;
  VKFT_OK(vkf_gpt_load_checkpoint(ctx, path("ckpt.safetensors"), &from));
  assert_memory_equal(vkf_gpt_config_of(from), vkf_gpt_config_of(m), sizeof(vkf_gpt_config));
  vkf_gpt_destroy(from);
  vkf_trainer_destroy(tr);
  vkf_gpt_destroy(m);
  free(want);
  vkft_destroy(ctx);
}

/* Every attention variant resumes exactly: flash, sliding window (7 < T)
 * and linear attention on the Llama-style model. */
static void resume_all(vkf_context *(*make)(void)) {
  resume(make, &gpt2);
  resume(make, &llama);
  const vkf_attn_kind kinds[3] = {VKF_ATTN_FLASH, VKF_ATTN_SLIDING, VKF_ATTN_LINEAR};
  for (int i = 0; i < 3; i++) {
    vkf_gpt_config c = llama;
    c.attention = kinds[i];
    c.sliding_window = kinds[i] == VKF_ATTN_SLIDING ? 7 : 0;
    resume(make, &c);
  }
}

static void test_resume_cpu(void **state) {
  (void)state;
  resume_all(vkft_cpu);
}

static void test_resume_vulkan(void **state) {
  (void)state;
  resume_all(vkft_vulkan);
}

/* A checkpoint is backend-independent: saved on the CPU, resumed on Vulkan,
 * the run continues like the CPU's own (within the CPU-vs-Vulkan loss
 * tolerance). */
static void test_resume_across_backends(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan(), *cpu = vkft_cpu();
  const uint32_t V = gpt2.vocab_size;
  vkf_train_desc d = desc_for();
  float on_cpu[STEPS], on_vk[STEPS];
  vkf_gpt *m;
  vkf_trainer *tr;
  VKFT_OK(vkf_gpt_create(cpu, &gpt2, 5, &m));
  VKFT_OK(vkf_trainer_create(m, &d, &tr));
  run_steps(tr, V, 0, SPLIT, on_cpu);
  VKFT_OK(vkf_trainer_save(tr, path("cpu_ckpt.safetensors"), NULL, NULL, 0));
  run_steps(tr, V, SPLIT, STEPS, on_cpu);
  vkf_trainer_destroy(tr);
  vkf_gpt_destroy(m);
  VKFT_OK(vkf_gpt_create(vk, &gpt2, 77, &m));
  VKFT_OK(vkf_trainer_create(m, &d, &tr));
  VKFT_OK(vkf_trainer_load(tr, path("cpu_ckpt.safetensors")));
  run_steps(tr, V, SPLIT, STEPS, on_vk);
  assert_int_equal(vkft_compare_f("losses after resuming on Vulkan", on_vk + SPLIT, on_cpu + SPLIT,
                                  STEPS - SPLIT, 0, LOSS_RTOL),
                   0);
  vkf_trainer_destroy(tr);
  vkf_gpt_destroy(m);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

/* ------------------------------------------------------------------------ */
/* Bad checkpoints change nothing                                           */
/* ------------------------------------------------------------------------ */
static void copy_prefix(const char *from, const char *to, long keep_fraction_percent) {
  size_t n;
  char *d = slurp(from, &n);
  FILE *f = fopen(to, "wb");
  assert_non_null(f);
  size_t k = n * (size_t)keep_fraction_percent / 100;
  assert_int_equal(fwrite(d, 1, k, f), k);
  fclose(f);
  free(d);
}

/* A checkpoint-looking file with the weights of m, the metadata of a real
 * checkpoint, and optimizer state as given (NULL = left out). */
static void write_fake(vkf_context *ctx, vkf_gpt *m, const char *real, const char *out,
                       const char *step, const float *mstate, int64_t m_elems,
                       const float *vstate) {
  uint32_t n = vkf_gpt_tensor_count(m);
  float *p = read_params(m);
  vkf_named_array *a = calloc(n + 2, sizeof(*a));
  assert_non_null(a);
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++) {
    vkf_gpt_tensor t;
    VKFT_OK(vkf_gpt_tensor_info(m, i, &t));
    a[k++] = (vkf_named_array){t.name, VKF_DTYPE_F32, t.ndim, {0}, p + t.offset};
    memcpy(a[k - 1].shape, t.shape, sizeof(t.shape));
  }
  if (mstate)
    a[k++] = (vkf_named_array){"optimizer.adamw.m", VKF_DTYPE_F32, 1, {m_elems}, mstate};
  if (vstate)
    a[k++] = (vkf_named_array){
        "optimizer.adamw.v", VKF_DTYPE_F32, 1, {(int64_t)vkf_gpt_flat_size(m)}, vstate};
  static char cfg[4096], kind[64];
  VKFT_OK(vkf_checkpoint_meta(ctx, real, "config", cfg, sizeof(cfg)));
  VKFT_OK(vkf_checkpoint_meta(ctx, real, "vkformer", kind, sizeof(kind)));
  const char *keys[] = {"vkformer", "config", "step"}, *vals[] = {kind, cfg, step};
  VKFT_OK(vkf_safetensors_write(ctx, out, a, k, keys, vals, 3));
  free(a);
  free(p);
}

static void test_checkpoint_errors(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  const uint32_t V = gpt2.vocab_size;
  vkf_train_desc d = desc_for();
  /* a and twin train identically; a suffers the bad loads */
  vkf_gpt *m, *twin_m, *other_m;
  vkf_trainer *tr, *twin, *other;
  VKFT_OK(vkf_gpt_create(ctx, &gpt2, 3, &m));
  VKFT_OK(vkf_gpt_create(ctx, &gpt2, 3, &twin_m));
  VKFT_OK(vkf_trainer_create(m, &d, &tr));
  VKFT_OK(vkf_trainer_create(twin_m, &d, &twin));
  float la[STEPS], lb[STEPS];
  run_steps(tr, V, 0, 2, la);
  run_steps(twin, V, 0, 2, lb);
  VKFT_OK(vkf_trainer_save(tr, path("good.safetensors"), NULL, NULL, 0));
  /* another config: the Llama model's checkpoint */
  VKFT_OK(vkf_gpt_create(ctx, &llama, 3, &other_m));
  VKFT_OK(vkf_trainer_create(other_m, &d, &other));
  run_steps(other, llama.vocab_size, 0, 1, lb + 2);
  VKFT_OK(vkf_trainer_save(other, path("other.safetensors"), NULL, NULL, 0));
  vkf_trainer_destroy(other);
  vkf_gpt_destroy(other_m);
  /* the same architecture, another width: also another config */
  vkf_gpt_config wide = gpt2;
  wide.d_model = 56;
  VKFT_OK(vkf_gpt_create(ctx, &wide, 3, &other_m));
  VKFT_OK(vkf_trainer_create(other_m, &d, &other));
  VKFT_OK(vkf_trainer_save(other, path("wide.safetensors"), NULL, NULL, 0));
  vkf_trainer_destroy(other);
  vkf_gpt_destroy(other_m);

  copy_prefix(path("good.safetensors"), path("truncated.safetensors"), 60);
  copy_prefix(path("good.safetensors"), path("header_only.safetensors"), 1);
  VKFT_OK(vkf_gpt_save(m, path("model.json"), path("model.safetensors")));
  const uint64_t n = vkf_gpt_flat_size(m);
  float *zeros = calloc(n + 1, sizeof(float));
  assert_non_null(zeros);
  char good[256];
  snprintf(good, sizeof(good), "%s", path("good.safetensors"));
  write_fake(ctx, m, good, path("no_m.safetensors"), "2", NULL, 0, zeros);
  write_fake(ctx, m, good, path("no_v.safetensors"), "2", zeros, (int64_t)n, NULL);
  write_fake(ctx, m, good, path("short_m.safetensors"), "2", zeros, (int64_t)n - 1, zeros);
  write_fake(ctx, m, good, path("bad_step.safetensors"), "2x", zeros, (int64_t)n, zeros);

  float *before = read_params(m);
  struct {
    const char *file;
    vkf_status want;
    const char *needle;
  } cases[] = {
      {"other.safetensors", VKF_ERROR_SHAPE_MISMATCH, "config"},
      {"wide.safetensors", VKF_ERROR_SHAPE_MISMATCH, "config"},
      {"truncated.safetensors", VKF_ERROR_FORMAT, "truncated"},
      {"header_only.safetensors", VKF_ERROR_FORMAT, ""},
      {"model.safetensors", VKF_ERROR_FORMAT, "not a vkformer checkpoint"},
      {"model.json", VKF_ERROR_FORMAT, ""},
      {"no_m.safetensors", VKF_ERROR_FORMAT, "optimizer.adamw.m"},
      {"no_v.safetensors", VKF_ERROR_FORMAT, "optimizer.adamw.v"},
      {"short_m.safetensors", VKF_ERROR_SHAPE_MISMATCH, "optimizer.adamw.m"},
      {"bad_step.safetensors", VKF_ERROR_FORMAT, "step"},
      {"does_not_exist.safetensors", VKF_ERROR_IO, "does_not_exist"},
  };
  for (size_t i = 0; i < VKFT_ARRAY_LEN(cases); i++) {
    vkf_status st = vkf_trainer_load(tr, path(cases[i].file));
    expect(ctx, st, cases[i].want, cases[i].file);
    if (!strstr(vkf_context_error(ctx), cases[i].needle))
      fail_msg("%s: message \"%s\" does not mention \"%s\"", cases[i].file, vkf_context_error(ctx),
               cases[i].needle);
    assert_int_equal(vkf_trainer_steps(tr), 2);
    float *now = read_params(m);
    assert_memory_equal(now, before, n * sizeof(float));
    free(now);
  }
  expect(ctx, vkf_trainer_load(tr, NULL), VKF_ERROR_NULL_POINTER, "NULL path");
  expect(ctx, vkf_trainer_load(NULL, good), VKF_ERROR_NULL_POINTER, "NULL trainer");
  /* the optimizer state is untouched: the next steps equal the twin's */
  run_steps(tr, V, 2, 4, la);
  run_steps(twin, V, 2, 4, lb);
  assert_memory_equal(la + 2, lb + 2, 2 * sizeof(float));
  float *pa = read_params(m), *pb = read_params(twin_m);
  assert_memory_equal(pa, pb, n * sizeof(float));
  /* and a good checkpoint still loads into it afterwards */
  VKFT_OK(vkf_trainer_load(tr, good));
  assert_int_equal(vkf_trainer_steps(tr), 2);
  free(pa);
  free(pb);
  free(before);
  free(zeros);
  vkf_trainer_destroy(tr);
  vkf_trainer_destroy(twin);
  vkf_gpt_destroy(m);
  vkf_gpt_destroy(twin_m);
  vkft_destroy(ctx);
}

/* A model's own checkpoint loads back whatever the config holds in fields
 * its architecture does not use (they do not survive config.json). */
static void test_checkpoint_own_config(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  vkf_gpt_config cfgs[3] = {gpt2, gpt2, llama};
  cfgs[0].rope_theta = 500.0f; /* learned positions: no RoPE */
  cfgs[1].sliding_window = 5;  /* standard attention: no window */
  cfgs[2].attention = VKF_ATTN_FLASH;
  cfgs[2].sliding_window = 7;
  for (int i = 0; i < 3; i++) {
    vkf_gpt *m;
    vkf_trainer *tr;
    VKFT_OK(vkf_gpt_create(ctx, &cfgs[i], 4, &m));
    vkf_train_desc d = desc_for();
    VKFT_OK(vkf_trainer_create(m, &d, &tr));
    float l[1];
    run_steps(tr, cfgs[i].vocab_size, 0, 1, l);
    VKFT_OK(vkf_trainer_save(tr, path("own.safetensors"), NULL, NULL, 0));
    VKFT_OK(vkf_trainer_load(tr, path("own.safetensors")));
    assert_int_equal(vkf_trainer_steps(tr), 1);
    vkf_gpt *back;
    VKFT_OK(vkf_gpt_load_checkpoint(ctx, path("own.safetensors"), &back));
    assert_memory_equal(vkf_gpt_config_of(back), vkf_gpt_config_of(m), sizeof(vkf_gpt_config));
    vkf_gpt_destroy(back);
    vkf_trainer_destroy(tr);
    vkf_gpt_destroy(m);
  }
  vkft_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */
static void memory_on(vkf_context *ctx) {
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, &gpt2, 1, &m));
  const uint64_t flat_bytes = vkf_gpt_flat_size(m) * 4;
  uint64_t act[4];
  const uint32_t batches[4] = {1, 2, 4, 8};
  for (int i = 0; i < 4; i++) {
    vkf_train_desc d = desc_for();
    d.batch = batches[i];
    d.seq_len = 16;
    vkf_memory_stats s0, s1;
    VKFT_OK(vkf_memory_stats_get(ctx, &s0));
    vkf_trainer *tr;
    VKFT_OK(vkf_trainer_create(m, &d, &tr));
    VKFT_OK(vkf_memory_stats_get(ctx, &s1));
    vkf_train_memory mem;
    VKFT_OK(vkf_trainer_memory(tr, &mem));
    expect(ctx, vkf_trainer_memory(tr, NULL), VKF_ERROR_NULL_POINTER, "memory NULL");
    fprintf(stderr,
            "  B=%u: activations %llu planned, %llu without reuse (%.2f); total %llu; device "
            "bytes allocated by the trainer %llu\n",
            batches[i], (unsigned long long)mem.activations,
            (unsigned long long)mem.activations_without_reuse,
            (double)mem.activations / (double)mem.activations_without_reuse,
            (unsigned long long)mem.total,
            (unsigned long long)(s1.device_bytes_used - s0.device_bytes_used));
    assert_int_equal(mem.params, flat_bytes);
    assert_int_equal(mem.grads, flat_bytes);
    assert_int_equal(mem.optimizer, 2 * flat_bytes);
    assert_true(mem.inputs > 0);
    const uint64_t sum = mem.params + mem.grads + mem.optimizer + mem.inputs + mem.activations;
    /* plus allocation rounding (CPU: 64 bytes per arena) and the kernels'
     * scratch (Vulkan: a few KiB) */
    assert_true(mem.total >= sum && mem.total - sum < sum / 20);
    /* reuse: well below the sum of all activations. In training most of
     * the saving is bounded: what the forward pass saves for the backward
     * pass stays alive, only activation gradients and temporaries share
     * memory; here the plan is at the largest sum of simultaneously live
     * activations (0.49 of the no-reuse sum) */
    assert_true(mem.activations < 0.6 * (double)mem.activations_without_reuse);
    /* what the trainer allocated (everything but the model's parameters,
     * which it shares) is what it reports */
    uint64_t alloc = s1.device_bytes_used - s0.device_bytes_used;
    uint64_t reported = mem.total - mem.params;
    assert_int_equal(alloc, reported);
    act[i] = mem.activations;
    vkf_trainer_destroy(tr);
  }
  /* linear in the batch: each doubling doubles the peak (within 10%), and
   * the increments are equal per sequence (within 10%) */
  for (int i = 1; i < 4; i++) {
    double r = (double)act[i] / (double)act[i - 1];
    fprintf(stderr, "  activations(B=%u) / activations(B=%u) = %.3f\n", batches[i], batches[i - 1],
            r);
    assert_true(r > 1.8 && r < 2.2);
  }
  double per1 = (double)(act[3] - act[2]) / 4.0, per2 = (double)(act[2] - act[1]) / 2.0;
  assert_true(fabs(per1 - per2) < 0.1 * per2);
  vkf_gpt_destroy(m);
}

static void test_memory_cpu(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  memory_on(ctx);
  vkft_destroy(ctx);
}

static void test_memory_vulkan(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  memory_on(ctx);
  vkft_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Learning rate schedule                                                   */
/* ------------------------------------------------------------------------ */
/* warm-up from lr/W to lr over steps 1..W, then cosine from lr at W to
 * min_lr at total, then min_lr */
static float expected_lr(const vkf_train_desc *d, uint64_t step) {
  double lr = d->lr, lo = d->min_lr, W = d->warmup_steps, N = d->total_steps;
  if (step <= d->warmup_steps)
    return (float)(lr * (double)step / W);
  if (d->schedule == VKF_LR_CONSTANT)
    return (float)lr;
  if ((double)step >= N)
    return (float)lo;
  double x = ((double)step - W) / (N - W); /* in (0, 1) */
  return (float)(lo + (lr - lo) * (1.0 + cos(acos(-1.0) * x)) / 2.0);
}

static void test_lr_schedule(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, &gpt2, 1, &m));
  vkf_train_desc ds[3] = {desc_for(), desc_for(), desc_for()};
  ds[0].lr = 6e-4f, ds[0].min_lr = 6e-5f, ds[0].warmup_steps = 10, ds[0].total_steps = 100;
  ds[1].schedule = VKF_LR_CONSTANT, ds[1].lr = 1e-3f, ds[1].warmup_steps = 7;
  ds[2].lr = 1e-2f, ds[2].min_lr = 0, ds[2].warmup_steps = 0, ds[2].total_steps = 33;
  for (int k = 0; k < 3; k++) {
    vkf_trainer *tr;
    VKFT_OK(vkf_trainer_create(m, &ds[k], &tr));
    assert_true(vkf_trainer_lr(tr, 0) == 0.0f);
    for (uint64_t s = 1; s <= 130; s++) {
      float got = vkf_trainer_lr(tr, s), want = expected_lr(&ds[k], s);
      /* the same formula in double, rounded once: equal, or 1 ulp apart
       * where the double results straddle a rounding boundary */
      if (!(fabsf(got - want) <= nextafterf(want, INFINITY) - want))
        fail_msg("schedule %d, step %llu: lr %.9g, expected %.9g", k, (unsigned long long)s,
                 (double)got, (double)want);
    }
    /* the fixed points are exact */
    if (ds[k].warmup_steps) {
      assert_true(vkf_trainer_lr(tr, ds[k].warmup_steps) == ds[k].lr);
      assert_true(vkf_trainer_lr(tr, 1) == (float)((double)ds[k].lr / ds[k].warmup_steps));
    }
    if (ds[k].schedule == VKF_LR_COSINE) {
      assert_true(vkf_trainer_lr(tr, ds[k].total_steps) == ds[k].min_lr);
      assert_true(vkf_trainer_lr(tr, ds[k].total_steps + 50) == ds[k].min_lr);
      uint64_t mid = (ds[k].warmup_steps + ds[k].total_steps) / 2;
      if ((ds[k].warmup_steps + ds[k].total_steps) % 2 == 0)
        assert_true(fabs(vkf_trainer_lr(tr, mid) - ((double)ds[k].lr + ds[k].min_lr) / 2) < 1e-9);
    } else {
      assert_true(vkf_trainer_lr(tr, 1000000) == ds[k].lr);
    }
    vkf_trainer_destroy(tr);
  }
  assert_true(vkf_trainer_lr(NULL, 3) == 0.0f);

  /* the device uses it: Adam's first update is lr * g / (|g| + eps), so
   * without decay and clipping the largest move is lr(1) (|g| >> eps) */
  vkf_train_desc d = ds[0];
  d.weight_decay = 0;
  d.grad_clip = 0;
  vkf_trainer *tr;
  VKFT_OK(vkf_trainer_create(m, &d, &tr));
  float *p0 = read_params(m);
  int32_t in[B * T], tg[B * T];
  batch(gpt2.vocab_size, 0, in, tg, B * T);
  vkf_step_info si;
  VKFT_OK(vkf_trainer_step(tr, in, tg, &si));
  float *p1 = read_params(m);
  assert_true(si.lr == vkf_trainer_lr(tr, 1));
  /* |p1 - p0| <= lr(1) up to the f32 rounding of p1 (half an ulp), and
   * elements with |g| >> eps move by lr(1) */
  double most = 0;
  for (uint64_t i = 0; i < vkf_gpt_flat_size(m); i++) {
    double moved = fabs((double)p1[i] - p0[i]);
    double half_ulp = (nextafterf(fabsf(p1[i]), INFINITY) - fabsf(p1[i])) / 2.0;
    if (!(moved <= si.lr * (1 + 5e-7) + half_ulp)) /* + rounding of g / sqrt(g * g) */
      fail_msg("element %llu moved %.9g > lr(1) %.9g", (unsigned long long)i, moved, (double)si.lr);
    if (fabsf(p0[i]) < 0.125f) /* an ulp below 7.5e-9 */
      most = fmax(most, moved);
  }
  if (!(fabs(most - si.lr) <= 1e-3 * si.lr))
    fail_msg("largest first move %.9g, lr(1) %.9g", most, (double)si.lr);
  free(p0);
  free(p1);
  vkf_trainer_destroy(tr);
  vkf_gpt_destroy(m);
  vkft_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Argument errors                                                          */
/* ------------------------------------------------------------------------ */
static void test_bad_arguments(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, &gpt2, 1, &m));
  vkf_train_desc d = desc_for();
  vkf_trainer *tr = NULL;
  assert_int_equal(vkf_trainer_create(NULL, &d, &tr), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_trainer_create(m, NULL, &tr), VKF_ERROR_NULL_POINTER, "NULL desc");
  expect(ctx, vkf_trainer_create(m, &d, NULL), VKF_ERROR_NULL_POINTER, "NULL out");
  vkf_train_desc e;
  e = d, e.batch = 0;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "batch 0");
  e = d, e.seq_len = 0;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "seq_len 0");
  e = d, e.seq_len = gpt2.context_length + 1;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "seq_len > context");
  e = d, e.lr = -1e-3f;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "negative lr");
  e = d, e.lr = NAN;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "NaN lr");
  e = d, e.min_lr = 2 * d.lr;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "min_lr > lr");
  e = d, e.total_steps = 0;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "cosine, no total");
  e = d, e.schedule = (vkf_lr_schedule)7;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "schedule 7");
  e = d, e.grad_clip = -1;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "negative clip");
  e = d, e.beta1 = 1.0f;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "beta1 1");
  e = d, e.beta2 = 1.5f;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "beta2 1.5");
  e = d, e.eps = -1e-8f;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "negative eps");
  e = d, e.weight_decay = -0.1f;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "negative decay");
  e = d, e.flags = 0x80;
  expect(ctx, vkf_trainer_create(m, &e, &tr), VKF_ERROR_INVALID_ARGUMENT, "unknown flags");
  assert_null(tr);

  VKFT_OK(vkf_trainer_create(m, &d, &tr));
  int32_t in[B * T], tg[B * T];
  batch(gpt2.vocab_size, 0, in, tg, B * T);
  float *p0 = read_params(m);
  vkf_step_info si;
  assert_int_equal(vkf_trainer_step(NULL, in, tg, &si), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_trainer_step(tr, NULL, tg, &si), VKF_ERROR_NULL_POINTER, "NULL inputs");
  expect(ctx, vkf_trainer_step(tr, in, NULL, &si), VKF_ERROR_NULL_POINTER, "NULL targets");
  const int32_t bad_ids[] = {-1, (int32_t)gpt2.vocab_size, INT32_MAX, INT32_MIN};
  for (size_t k = 0; k < VKFT_ARRAY_LEN(bad_ids); k++) {
    int32_t keep = in[B * T - 1];
    in[B * T - 1] = bad_ids[k];
    expect(ctx, vkf_trainer_step(tr, in, tg, &si), VKF_ERROR_INVALID_ARGUMENT, "bad input id");
    assert_non_null(strstr(vkf_context_error(ctx), "vocabulary"));
    float loss;
    expect(ctx, vkf_trainer_eval(tr, in, tg, &loss), VKF_ERROR_INVALID_ARGUMENT, "eval bad id");
    in[B * T - 1] = keep;
    keep = tg[5];
    tg[5] = bad_ids[k];
    expect(ctx, vkf_trainer_step(tr, in, tg, &si), VKF_ERROR_INVALID_ARGUMENT, "bad target");
    tg[5] = keep;
  }
  assert_int_equal(vkf_trainer_steps(tr), 0);
  float *p1 = read_params(m);
  assert_memory_equal(p0, p1, vkf_gpt_flat_size(m) * sizeof(float));
  free(p1);
  float loss;
  expect(ctx, vkf_trainer_eval(tr, in, tg, NULL), VKF_ERROR_NULL_POINTER, "eval NULL loss");
  assert_int_equal(vkf_trainer_eval(NULL, in, tg, &loss), VKF_ERROR_NULL_POINTER);
  VKFT_OK(vkf_trainer_step(tr, in, tg, NULL)); /* info is optional */
  assert_int_equal(vkf_trainer_steps(tr), 1);
  const uint64_t n = vkf_gpt_flat_size(m);
  float *g = vkft_alloc(n + 1);
  expect(ctx, vkf_trainer_read_grads(tr, g, n + 1), VKF_ERROR_SHAPE_MISMATCH, "grads count");
  expect(ctx, vkf_trainer_read_grads(tr, NULL, n), VKF_ERROR_NULL_POINTER, "grads NULL");
  assert_int_equal(vkf_trainer_read_grads(NULL, g, n), VKF_ERROR_NULL_POINTER);
  expect(ctx, vkf_trainer_read_logits(tr, g, 10), VKF_ERROR_UNSUPPORTED,
         "logits without KEEP_LOGITS");
  free(g);
  const char *k1[] = {"step"}, *v1[] = {"5"};
  expect(ctx, vkf_trainer_save(tr, path("x.safetensors"), k1, v1, 1), VKF_ERROR_INVALID_ARGUMENT,
         "reserved key");
  expect(ctx, vkf_trainer_save(tr, NULL, NULL, NULL, 0), VKF_ERROR_NULL_POINTER, "save NULL");
  expect(ctx, vkf_trainer_save(tr, path("x.safetensors"), NULL, NULL, 1), VKF_ERROR_NULL_POINTER,
         "save NULL meta");
  expect(ctx, vkf_trainer_save(tr, "/nonexistent-dir/x.safetensors", NULL, NULL, 0), VKF_ERROR_IO,
         "save into a missing directory");
  vkf_trainer_destroy(tr);
  vkf_trainer_destroy(NULL);

  /* linear attention is built with its own kernels (test_attn_linear checks its numbers) */
  vkf_gpt_config lin = gpt2;
  lin.attention = VKF_ATTN_LINEAR;
  vkf_gpt *lm;
  VKFT_OK(vkf_gpt_create(ctx, &lin, 1, &lm));
  expect(ctx, vkf_trainer_create(lm, &d, &tr), VKF_OK, "linear attention");
  vkf_trainer_destroy(tr);
  vkf_predictor *pr;
  expect(ctx, vkf_predictor_create(lm, &pr), VKF_OK, "linear attention predictor");
  vkf_predictor_destroy(pr);
  vkf_gpt_destroy(lm);
  free(p0);
  vkf_gpt_destroy(m);
  vkft_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Trained weights: changed, saved, reloaded, predicted                     */
/* ------------------------------------------------------------------------ */
static void predictions(vkf_gpt *m, float *out, uint32_t V) {
  vkf_predictor *p;
  VKFT_OK(vkf_predictor_create(m, &p));
  int32_t in[B * T], tg[B * T];
  batch(V, 77, in, tg, B * T);
  VKFT_OK(vkf_predictor_next(p, in, 1, out));
  VKFT_OK(vkf_predictor_next(p, in, 13, out + V));
  VKFT_OK(vkf_predictor_next(p, in, B * T, out + 2 * V)); /* longer than the context */
  vkf_predictor_destroy(p);
}

static void trained_roundtrip(vkf_context *ctx, const vkf_gpt_config *cfg) {
  const uint32_t V = cfg->vocab_size;
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, cfg, 8, &m));
  vkf_train_desc d = desc_for();
  d.flags = VKF_TRAIN_KEEP_LOGITS;
  vkf_trainer *tr;
  VKFT_OK(vkf_trainer_create(m, &d, &tr));
  float *p0 = read_params(m);
  float losses[2];
  run_steps(tr, V, 0, 2, losses);
  float *p1 = read_params(m);
  /* every parameter tensor moved */
  for (uint32_t i = 0; i < vkf_gpt_tensor_count(m); i++) {
    vkf_gpt_tensor t;
    VKFT_OK(vkf_gpt_tensor_info(m, i, &t));
    uint64_t changed = 0;
    for (uint64_t k = 0; k < t.elements; k++)
      changed += p0[t.offset + k] != p1[t.offset + k];
    if (changed == 0)
      fail_msg("%s did not change after two steps", t.name);
  }
  float *a = vkft_alloc(3 * V), *b = vkft_alloc(3 * V), *c = vkft_alloc(3 * V);
  predictions(m, a, V);
  VKFT_OK(vkf_gpt_save(m, path("trained.json"), path("trained.safetensors")));
  VKFT_OK(vkf_trainer_save(tr, path("trained_ckpt.safetensors"), NULL, NULL, 0));
  vkf_gpt *r, *rc;
  VKFT_OK(vkf_gpt_load(ctx, path("trained.json"), path("trained.safetensors"), &r));
  VKFT_OK(vkf_gpt_load_checkpoint(ctx, path("trained_ckpt.safetensors"), &rc));
  float *pr = read_params(r);
  assert_memory_equal(pr, p1, vkf_gpt_flat_size(m) * sizeof(float));
  free(pr);
  predictions(r, b, V);
  predictions(rc, c, V);
  assert_memory_equal(a, b, 3 * V * sizeof(float));
  assert_memory_equal(a, c, 3 * V * sizeof(float));

  /* the predictor's whole-context pass agrees with the trainer's logits at
   * the same position (other matrix shapes: rounding only) */
  int32_t in[B * T], tg[B * T];
  batch(V, 77, in, tg, B * T);
  float loss;
  VKFT_OK(vkf_trainer_eval(tr, in, tg, &loss));
  float *all = vkft_alloc((size_t)B * T * V);
  VKFT_OK(vkf_trainer_read_logits(tr, all, (uint64_t)B * T * V));
  float scale = 0;
  for (uint32_t k = 0; k < V; k++)
    scale = fmaxf(scale, fabsf(all[12 * V + k]));
  assert_int_equal(
      vkft_compare_f("predictor vs trainer logits", a + V, all + 12 * V, V, 1e-6 * scale, 1e-5), 0);
  free(all);
  free(a);
  free(b);
  free(c);
  free(p0);
  free(p1);
  vkf_gpt_destroy(r);
  vkf_gpt_destroy(rc);
  vkf_trainer_destroy(tr);
  vkf_gpt_destroy(m);
}

static void test_trained_roundtrip_cpu(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  trained_roundtrip(ctx, &gpt2);
  trained_roundtrip(ctx, &llama);
  vkft_destroy(ctx);
}

static void test_trained_roundtrip_vulkan(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  trained_roundtrip(ctx, &gpt2);
  trained_roundtrip(ctx, &llama);
  vkft_destroy(ctx);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "/tmp/vkf_train_XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cpu_vs_vulkan_gpt2),
      cmocka_unit_test(test_cpu_vs_vulkan_llama),
      cmocka_unit_test(test_cpu_threads_and_eval),
      cmocka_unit_test(test_resume_cpu),
      cmocka_unit_test(test_resume_vulkan),
      cmocka_unit_test(test_vulkan_staging),
      cmocka_unit_test(test_resume_across_backends),
      cmocka_unit_test(test_checkpoint_errors),
      cmocka_unit_test(test_checkpoint_own_config),
      cmocka_unit_test(test_memory_cpu),
      cmocka_unit_test(test_memory_vulkan),
      cmocka_unit_test(test_lr_schedule),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_trained_roundtrip_cpu),
      cmocka_unit_test(test_trained_roundtrip_vulkan),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
