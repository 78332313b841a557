/*
 * ref_dump: trains a GPT for a few steps with the public API and dumps what
 * scripts/torch_reference.py checks against PyTorch.
 *
 *   ref_dump --config cfg.json --out DIR [--device cpu|vulkan|NAME]
 *            [--seed S | --weights W.safetensors] [--steps N] [--batch B]
 *            [--seq T] [--lr X] [--beta1 X] [--beta2 X] [--eps X]
 *            [--weight-decay X] [--grad-clip X] [--data-seed S]
 *            [--init-scale F] [--perturb S]
 *
 * Writes DIR/config.json and DIR/model.safetensors (the initial model: from
 * the seed, or the given weights; then every 2-D tensor multiplied by
 * --init-scale and normal(0, S) noise added to every 1-D tensor with
 * --perturb, so that attention is far from uniform and norm weights and
 * biases are not 1 and 0: at GPT-2's initial scale the scores are ~1e-3 and
 * an error in RoPE or the attention mask hardly shows) and
 * DIR/dump.safetensors with
 *   logits [B, T, V] and loss [1] of step 1 (VKF_TRAIN_KEEP_LOGITS),
 *   grad.<name> of every parameter at step 1 (before clipping),
 *   losses [N], grad_norms [N] (before clipping), final.<name> after N steps,
 *   inputs, targets [N, B, T] (i32),
 * and string metadata steps, lr, beta1, beta2, eps, weight_decay, grad_clip,
 * batch, seq_len, device. The schedule is constant without warm-up.
 *
 * --device vulkan is the default Vulkan device with the validation layer
 * on; any validation message fails the run (exit 1). Without a Vulkan device
 * it exits 77 (skipped) unless VKF_TEST_REQUIRE_VULKAN=1, then 1.
 */
#include <vkformer.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned validation_messages;

static void log_fn(void *user, vkf_log_level level, const char *msg) {
  (void)user;
  if (level == VKF_LOG_VALIDATION)
    validation_messages++;
  if (level <= VKF_LOG_WARN || level == VKF_LOG_VALIDATION)
    fprintf(stderr, "[vkformer] %s\n", msg);
}

static int usage(void) {
  fprintf(stderr, "usage: ref_dump --config cfg.json --out DIR [--device cpu|vulkan|NAME] "
                  "[--seed S | --weights W] [--steps N] [--batch B] [--seq T] [--lr X] "
                  "[--beta1 X] [--beta2 X] [--eps X] [--weight-decay X] [--grad-clip X] "
                  "[--data-seed S] [--init-scale F] [--perturb S]\n");
  return 2;
}

#define CHECK(expr)                                                                                \
  do {                                                                                             \
    vkf_status st_ = (expr);                                                                       \
    if (st_ != VKF_OK) {                                                                           \
      fprintf(stderr, "ref_dump: %s failed: %s: %s\n", #expr, vkf_status_name(st_),                \
              ctx ? vkf_context_error(ctx) : "");                                                  \
      goto fail;                                                                                   \
    }                                                                                              \
  } while (0)

static char *join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  if (p)
    snprintf(p, n, "%s/%s", dir, name);
  return p;
}

int main(int argc, char **argv) {
  const char *config = NULL, *out = NULL, *device = "cpu", *weights = NULL;
  unsigned long long seed = 1, data_seed = 7;
  double init_scale = 1, perturb = 0;
  unsigned steps = 10, batch = 2, seq = 8;
  vkf_train_desc d = {.schedule = VKF_LR_CONSTANT, .flags = VKF_TRAIN_KEEP_LOGITS};
  d.lr = 1e-3f;
  d.beta1 = 0.9f;
  d.beta2 = 0.95f;
  d.eps = 1e-8f;
  d.weight_decay = 0.1f;
  d.grad_clip = 1.0f;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v)
      return usage();
    i++;
    if (!strcmp(a, "--config"))
      config = v;
    else if (!strcmp(a, "--out"))
      out = v;
    else if (!strcmp(a, "--device"))
      device = v;
    else if (!strcmp(a, "--weights"))
      weights = v;
    else if (!strcmp(a, "--seed"))
      seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--data-seed"))
      data_seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--steps"))
      steps = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--batch"))
      batch = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--seq"))
      seq = (unsigned)strtoul(v, NULL, 10);
    else if (!strcmp(a, "--lr"))
      d.lr = strtof(v, NULL);
    else if (!strcmp(a, "--beta1"))
      d.beta1 = strtof(v, NULL);
    else if (!strcmp(a, "--beta2"))
      d.beta2 = strtof(v, NULL);
    else if (!strcmp(a, "--eps"))
      d.eps = strtof(v, NULL);
    else if (!strcmp(a, "--weight-decay"))
      d.weight_decay = strtof(v, NULL);
    else if (!strcmp(a, "--init-scale"))
      init_scale = strtod(v, NULL);
    else if (!strcmp(a, "--perturb"))
      perturb = strtod(v, NULL);
    else if (!strcmp(a, "--grad-clip"))
      d.grad_clip = strtof(v, NULL);
    else
      return usage();
  }
  if (!config || !out || !steps || !batch || !seq)
    return usage();
  d.batch = batch;
  d.seq_len = seq;

  int rc = 1;
  vkf_context *ctx = NULL;
  vkf_gpt *model = NULL;
  vkf_trainer *tr = NULL;
  float *grads = NULL, *finals = NULL, *logits = NULL, *losses = NULL, *norms = NULL;
  int32_t *inputs = NULL, *targets = NULL;
  vkf_named_array *arrays = NULL;
  char **names = NULL;
  uint32_t n_tensors = 0;
  char *cfg_out = join(out, "config.json"), *w_out = join(out, "model.safetensors"),
       *dump_out = join(out, "dump.safetensors");

  bool vulkan = !strcmp(device, "vulkan");
  vkf_context_desc cd = {.device = vulkan ? NULL : device,
                         .flags = vulkan ? VKF_CONTEXT_VALIDATION : 0,
                         .log_fn = log_fn,
                         .log_level = VKF_LOG_WARN};
  vkf_status cst = vkf_context_create(&cd, &ctx);
  if (cst != VKF_OK || (vulkan && vkf_context_backend(ctx) != VKF_BACKEND_VULKAN)) {
    const char *req = getenv("VKF_TEST_REQUIRE_VULKAN");
    vkf_context_destroy(ctx);
    ctx = NULL;
    if (vulkan && !(req && !strcmp(req, "1"))) {
      fprintf(stderr, "SKIP: no Vulkan device; this reference case did not run\n");
      rc = 77;
    } else {
      fprintf(stderr, "ref_dump: no context on device \"%s\" (%s)\n", device, vkf_status_name(cst));
    }
    goto fail;
  }
  vkf_device_info info;
  CHECK(vkf_context_device(ctx, &info));
  fprintf(stderr, "ref_dump: device %s\n", info.name);

  vkf_gpt_config cfg;
  CHECK(vkf_gpt_config_read(ctx, config, &cfg));
  if (weights)
    CHECK(vkf_gpt_load(ctx, config, weights, &model));
  else
    CHECK(vkf_gpt_create(ctx, &cfg, seed, &model));
  const uint32_t V = vkf_gpt_config_of(model)->vocab_size;
  const uint64_t n_flat = vkf_gpt_flat_size(model), bt = (uint64_t)batch * seq;
  n_tensors = vkf_gpt_tensor_count(model);
  grads = malloc(n_flat * sizeof(float));
  finals = malloc(n_flat * sizeof(float));
  if (!grads || !finals)
    goto fail;
  if (init_scale != 1 || perturb != 0) {
    vkf_rng prng;
    vkf_rng_seed(&prng, seed + 1000);
    CHECK(vkf_gpt_read_params(model, finals, n_flat));
    for (uint32_t i = 0; i < n_tensors; i++) {
      vkf_gpt_tensor t;
      CHECK(vkf_gpt_tensor_info(model, i, &t));
      for (uint64_t k = 0; k < t.elements; k++) {
        float *w = &finals[t.offset + k];
        *w = t.ndim == 2 ? (float)(*w * init_scale) : (float)(*w + perturb * vkf_rng_normal(&prng));
      }
    }
    CHECK(vkf_gpt_write_params(model, finals, n_flat));
  }
  CHECK(vkf_gpt_save(model, cfg_out, w_out));

  /* deterministic batches: random ids, targets mostly the next input so
   * the loss has something to learn */
  inputs = malloc(steps * bt * sizeof(int32_t));
  targets = malloc(steps * bt * sizeof(int32_t));
  logits = malloc(bt * V * sizeof(float));
  losses = malloc(steps * sizeof(float));
  norms = malloc(steps * sizeof(float));
  arrays = calloc(2 * n_tensors + 6, sizeof(*arrays));
  names = calloc(2 * n_tensors, sizeof(char *));
  if (!inputs || !targets || !logits || !losses || !norms || !arrays || !names) {
    fprintf(stderr, "ref_dump: out of memory\n");
    goto fail;
  }
  vkf_rng rng;
  vkf_rng_seed(&rng, data_seed);
  for (uint64_t i = 0; i < steps * bt; i++)
    inputs[i] = (int32_t)(vkf_rng_next(&rng) % V);
  for (uint64_t i = 0; i < steps * bt; i++)
    targets[i] = (vkf_rng_next(&rng) % 4) ? (inputs[i] * 7 + 3) % (int32_t)V
                                          : (int32_t)(vkf_rng_next(&rng) % V);

  CHECK(vkf_trainer_create(model, &d, &tr));
  float loss1 = 0;
  for (unsigned s = 0; s < steps; s++) {
    vkf_step_info si;
    CHECK(vkf_trainer_step(tr, inputs + s * bt, targets + s * bt, &si));
    losses[s] = si.loss;
    norms[s] = si.grad_norm;
    fprintf(stderr, "step %u: loss %.7f grad norm %.6g lr %g\n", s + 1, (double)si.loss,
            (double)si.grad_norm, (double)si.lr);
    if (s == 0) {
      loss1 = si.loss;
      CHECK(vkf_trainer_read_logits(tr, logits, bt * V));
      CHECK(vkf_trainer_read_grads(tr, grads, n_flat));
    }
  }
  CHECK(vkf_gpt_read_params(model, finals, n_flat));

  uint32_t n = 0;
  int64_t one = 1;
  arrays[n++] = (vkf_named_array){"logits", VKF_DTYPE_F32, 3, {batch, seq, V}, logits};
  arrays[n++] = (vkf_named_array){"loss", VKF_DTYPE_F32, 1, {one}, &loss1};
  arrays[n++] = (vkf_named_array){"losses", VKF_DTYPE_F32, 1, {steps}, losses};
  arrays[n++] = (vkf_named_array){"grad_norms", VKF_DTYPE_F32, 1, {steps}, norms};
  arrays[n++] = (vkf_named_array){"inputs", VKF_DTYPE_I32, 3, {steps, batch, seq}, inputs};
  arrays[n++] = (vkf_named_array){"targets", VKF_DTYPE_I32, 3, {steps, batch, seq}, targets};
  for (uint32_t i = 0; i < n_tensors; i++) {
    vkf_gpt_tensor t;
    CHECK(vkf_gpt_tensor_info(model, i, &t));
    for (int k = 0; k < 2; k++) {
      char **nm = &names[2 * i + k];
      size_t len = strlen(t.name) + 8;
      *nm = malloc(len);
      if (!*nm)
        goto fail;
      snprintf(*nm, len, "%s%s", k ? "final." : "grad.", t.name);
      vkf_named_array *a = &arrays[n++];
      a->name = *nm;
      a->dtype = VKF_DTYPE_F32;
      a->ndim = t.ndim;
      memcpy(a->shape, t.shape, sizeof(a->shape));
      a->data = (k ? finals : grads) + t.offset;
    }
  }
  char sv[7][32];
  snprintf(sv[0], 32, "%u", steps);
  snprintf(sv[1], 32, "%.9g", (double)d.lr);
  snprintf(sv[2], 32, "%.9g", (double)d.beta1);
  snprintf(sv[3], 32, "%.9g", (double)d.beta2);
  snprintf(sv[4], 32, "%.9g", (double)d.eps);
  snprintf(sv[5], 32, "%.9g", (double)d.weight_decay);
  snprintf(sv[6], 32, "%.9g", (double)d.grad_clip);
  const char *keys[] = {"steps", "lr",           "beta1",     "beta2",
                        "eps",   "weight_decay", "grad_clip", "device"};
  const char *vals[] = {sv[0], sv[1], sv[2], sv[3], sv[4], sv[5], sv[6], info.name};
  CHECK(vkf_safetensors_write(ctx, dump_out, arrays, n, keys, vals, 8));
  rc = validation_messages ? 1 : 0;
  if (validation_messages)
    fprintf(stderr, "ref_dump: %u validation messages\n", validation_messages);

fail:
  vkf_trainer_destroy(tr);
  vkf_gpt_destroy(model);
  vkf_context_destroy(ctx);
  if (names)
    for (uint32_t i = 0; i < 2 * n_tensors; i++)
      free(names[i]);
  free(names);
  free(arrays);
  free(inputs);
  free(targets);
  free(grads);
  free(finals);
  free(logits);
  free(losses);
  free(norms);
  free(cfg_out);
  free(w_out);
  free(dump_out);
  return rc;
}
