/* attention against the ONNX Attention node tests (opset 23/24) in
 * ../shared/conformance/onnx (or $VKF_ONNX_DIR), on the CPU backend and on
 * Vulkan: every case is fed through vkf_attention_forward, which shows the
 * semantics those cases need are reachable. What this file does on the host
 * is the part that is not the op's: reading the files, fp16/bool/int64
 * conversion (a bool mask becomes an additive 0/-inf mask, nonpad_kv_seqlen
 * becomes i32 kv_lens), and building present_key/value = concat(past, new)
 * (which then serves as k and v in the [B, Hkv, T, D] layout). The rest maps
 * onto the desc:
 *   4-D [B, H, S, D] inputs          VKF_ATTENTION_Q_BHTD / KV_BHTD
 *   3-D [B, S, H*D] inputs            views [B, S, H, D] (the default layout)
 *   is_causal (past length P)         CAUSAL + ALIGN_OFFSET, q_offset = P
 *   scale, softcap                    desc.scale, desc.softcap
 *   attn_mask                         desc.mask (shorter last dim = masked)
 *   qk_matmul_output mode 2 / 3       desc.logits / saved
 *   qk_matmul_output mode 0 / 1       desc.logits of a second call without
 *                                     mask and causal (and softcap for 0)
 * Tolerances as the folder's verify_numpy.py: float32 outputs atol 1e-6,
 * rtol 1e-5; float16 outputs (computed by numpy in fp16) atol 2e-3, rtol 5e-3. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tdesc {
  int present;
  char file[32], dtype[16];
  uint32_t ndim;
  int64_t shape[8];
  size_t n;
} tdesc;

typedef struct onnx_case {
  char dir[1024], attrs[1024];
  tdesc in[8], out[4];
  int n_in, n_out;
} onnx_case;

static const char *onnx_dir(void) {
  const char *e = getenv("VKF_CONFORMANCE_DIR");
  return e && *e ? e : "../shared/conformance/onnx";
}

static char *read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  assert_non_null(buf);
  size_t got = fread(buf, 1, (size_t)n, f);
  fclose(f);
  assert_int_equal(got, (size_t)n);
  buf[n] = 0;
  if (size)
    *size = (size_t)n;
  return buf;
}

/* One tensor line: {"name": .., "file": "in0.bin" | null, "dtype": "..", "shape": [..]} */
static void parse_tensor(const char *line, tdesc *t) {
  memset(t, 0, sizeof(*t));
  const char *f = strstr(line, "\"file\": ");
  assert_non_null(f);
  f += 8;
  if (strncmp(f, "null", 4) == 0)
    return;
  t->present = 1;
  assert_int_equal(sscanf(f, "\"%31[^\"]\"", t->file), 1);
  const char *d = strstr(line, "\"dtype\": \"");
  assert_non_null(d);
  assert_int_equal(sscanf(d + 10, "%15[^\"]", t->dtype), 1);
  const char *s = strstr(line, "\"shape\": [");
  assert_non_null(s);
  s += 10;
  t->n = 1;
  while (*s && *s != ']') {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s)
      break;
    assert_true(t->ndim < 8);
    t->shape[t->ndim++] = v;
    t->n *= (size_t)v;
    s = end;
    while (*s == ',' || *s == ' ')
      s++;
  }
}

static void parse_case(const char *dir, onnx_case *c) {
  memset(c, 0, sizeof(*c));
  snprintf(c->dir, sizeof(c->dir), "%s", dir);
  char path[1100];
  snprintf(path, sizeof(path), "%s/case.json", dir);
  char *json = read_file(path, NULL);
  assert_non_null(json);
  int section = 0; /* 1 inputs, 2 outputs */
  for (char *line = strtok(json, "\n"); line; line = strtok(NULL, "\n")) {
    while (*line == ' ')
      line++;
    if (strncmp(line, "\"attributes\":", 13) == 0)
      snprintf(c->attrs, sizeof(c->attrs), "%s", line);
    else if (strncmp(line, "\"inputs\":", 9) == 0)
      section = 1;
    else if (strncmp(line, "\"outputs\":", 10) == 0)
      section = 2;
    else if (line[0] == ']')
      section = 0;
    else if (section == 1 && line[0] == '{')
      parse_tensor(line, &c->in[c->n_in++]);
    else if (section == 2 && line[0] == '{')
      parse_tensor(line, &c->out[c->n_out++]);
  }
  free(json);
}

static double attr(const onnx_case *c, const char *key, double dflt) {
  char k[64];
  snprintf(k, sizeof(k), "\"%s\": ", key);
  const char *p = strstr(c->attrs, k);
  return p ? strtod(p + strlen(k), NULL) : dflt;
}

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff, f;
  if (e == 0x1f)
    f = sign | 0x7f800000u | (m << 13);
  else if (e == 0) {
    if (!m)
      f = sign;
    else { /* subnormal */
      float v = ldexpf((float)m, -24);
      return sign ? -v : v;
    }
  } else
    f = sign | ((e + 112) << 23) | (m << 13);
  float r;
  memcpy(&r, &f, 4);
  return r;
}

/* A tensor's values as floats (bool: 1 -> 0, 0 -> -inf, the additive mask). */
static float *load_f32(const onnx_case *c, const tdesc *t) {
  char path[1100];
  snprintf(path, sizeof(path), "%s/%s", c->dir, t->file);
  size_t size;
  char *raw = read_file(path, &size);
  assert_non_null(raw);
  float *x = vkft_alloc(t->n);
  if (strcmp(t->dtype, "float32") == 0) {
    assert_int_equal(size, t->n * 4);
    memcpy(x, raw, t->n * 4);
  } else if (strcmp(t->dtype, "float16") == 0) {
    assert_int_equal(size, t->n * 2);
    for (size_t i = 0; i < t->n; i++) {
      uint16_t h;
      memcpy(&h, raw + 2 * i, 2);
      x[i] = half_to_float(h);
    }
  } else if (strcmp(t->dtype, "bool") == 0) {
    assert_int_equal(size, t->n);
    for (size_t i = 0; i < t->n; i++)
      x[i] = raw[i] ? 0.0f : -INFINITY;
  } else if (strcmp(t->dtype, "int64") == 0) {
    assert_int_equal(size, t->n * 8);
    for (size_t i = 0; i < t->n; i++) {
      int64_t v;
      memcpy(&v, raw + 8 * i, 8);
      x[i] = (float)v;
    }
  } else {
    fail_msg("%s: dtype %s", path, t->dtype);
  }
  free(raw);
  return x;
}

/* [B, S, H, E] (from 3-D [B, S, H*E]) -> [B, H, S, E] */
static float *to_bhse(const float *x, int64_t B, int64_t S, int64_t H, int64_t E) {
  float *y = vkft_alloc((size_t)(B * S * H * E));
  for (int64_t b = 0; b < B; b++)
    for (int64_t s = 0; s < S; s++)
      for (int64_t h = 0; h < H; h++)
        memcpy(y + (((b * H + h) * S + s) * E), x + (((b * S + s) * H + h) * E),
               (size_t)E * sizeof(float));
  return y;
}

/* present = concat(past [B, H, P, E], new [B, H, S, E]) along the sequence */
static float *concat(const float *past, const float *nw, int64_t B, int64_t H, int64_t P, int64_t S,
                     int64_t E) {
  float *y = vkft_alloc((size_t)(B * H * (P + S) * E));
  for (int64_t bh = 0; bh < B * H; bh++) {
    memcpy(y + bh * (P + S) * E, past + bh * P * E, (size_t)(P * E) * sizeof(float));
    memcpy(y + (bh * (P + S) + P) * E, nw + bh * S * E, (size_t)(S * E) * sizeof(float));
  }
  return y;
}

static size_t compare_inf(const char *what, const float *got, const float *want, size_t n,
                          double atol, double rtol) {
  size_t bad = 0;
  float *g = vkft_alloc(n), *w = vkft_alloc(n);
  for (size_t i = 0; i < n; i++) {
    if (isinf(got[i]) != isinf(want[i]) || (isinf(got[i]) && got[i] != want[i])) {
      if (bad < 5)
        fprintf(stderr, "  %s[%zu]: got %g, expected %g\n", what, i, (double)got[i],
                (double)want[i]);
      bad++;
    }
    g[i] = isinf(got[i]) || isinf(want[i]) ? 0.0f : got[i];
    w[i] = isinf(got[i]) || isinf(want[i]) ? 0.0f : want[i];
  }
  bad += vkft_compare_f(what, g, w, n, atol, rtol);
  free(g);
  free(w);
  return bad;
}

/* Runs one case on ctx; returns the number of mismatching elements. */
static size_t run_onnx_case(vkf_context *ctx, const onnx_case *c) {
  const tdesc *tq = &c->in[0], *tk = &c->in[1], *tv = &c->in[2];
  const tdesc *tm = c->n_in > 3 && c->in[3].present ? &c->in[3] : NULL;
  const tdesc *tpk = c->n_in > 4 && c->in[4].present ? &c->in[4] : NULL;
  const tdesc *tpv = c->n_in > 5 && c->in[5].present ? &c->in[5] : NULL;
  const tdesc *tnp = c->n_in > 6 && c->in[6].present ? &c->in[6] : NULL;
  const bool three_d = tq->ndim == 3;
  int64_t B = tq->shape[0], Hq, Sq, D, Hkv, Skv, Dv;
  if (three_d) {
    Hq = (int64_t)attr(c, "q_num_heads", 0);
    Hkv = (int64_t)attr(c, "kv_num_heads", 0);
    assert_true(Hq > 0 && Hkv > 0);
    Sq = tq->shape[1], D = tq->shape[2] / Hq;
    Skv = tk->shape[1], Dv = tv->shape[2] / Hkv;
  } else {
    Hq = tq->shape[1], Sq = tq->shape[2], D = tq->shape[3];
    Hkv = tk->shape[1], Skv = tk->shape[2], Dv = tv->shape[3];
  }
  const int64_t P = tpk ? tpk->shape[2] : 0, T = P + Skv;
  float *q = load_f32(c, tq), *k = load_f32(c, tk), *v = load_f32(c, tv);
  uint32_t flags = three_d ? 0 : VKF_ATTENTION_Q_BHTD | VKF_ATTENTION_KV_BHTD;
  float *pk = NULL, *pv = NULL;
  if (tpk) { /* present = concat(past, new), in [B, Hkv, T, .] */
    assert_non_null(tpv);
    float *past_k = load_f32(c, tpk), *past_v = load_f32(c, tpv);
    float *nk = three_d ? to_bhse(k, B, Skv, Hkv, D) : k,
          *nv = three_d ? to_bhse(v, B, Skv, Hkv, Dv) : v;
    pk = concat(past_k, nk, B, Hkv, P, Skv, D);
    pv = concat(past_v, nv, B, Hkv, P, Skv, Dv);
    if (three_d)
      free(nk), free(nv);
    free(past_k), free(past_v);
    flags |= VKF_ATTENTION_KV_BHTD;
  }
  if (attr(c, "is_causal", 0) != 0)
    flags |= VKF_ATTENTION_CAUSAL;
  vkf_attention_desc d = {.flags = flags,
                          .scale = (float)attr(c, "scale", 0),
                          .softcap = (float)attr(c, "softcap", 0),
                          .align = VKF_ATTENTION_ALIGN_OFFSET,
                          .q_offset = (int32_t)P};
  const bool qb = flags & VKF_ATTENTION_Q_BHTD, kb = flags & VKF_ATTENTION_KV_BHTD;
  int64_t sq[4] = {B, qb ? Hq : Sq, qb ? Sq : Hq, D}, so[4] = {B, qb ? Hq : Sq, qb ? Sq : Hq, Dv};
  int64_t sk[4] = {B, kb ? Hkv : T, kb ? T : Hkv, D}, sv[4] = {B, kb ? Hkv : T, kb ? T : Hkv, Dv};
  int64_t sp[4] = {B, Hq, Sq, T};
  vkf_tensor Q = vkft_tensor_from(ctx, 4, sq, q), K = vkft_tensor_from(ctx, 4, sk, pk ? pk : k);
  vkf_tensor V = vkft_tensor_from(ctx, 4, sv, pv ? pv : v), O = vkft_tensor(ctx, 4, so);
  vkf_tensor Pt = vkft_tensor(ctx, 4, sp), L = vkft_tensor(ctx, 4, sp),
             L2 = vkft_tensor(ctx, 4, sp);
  if (tm) {
    float *m = load_f32(c, tm);
    d.mask = vkft_tensor_from(ctx, tm->ndim, tm->shape, m);
    free(m);
  }
  if (tnp) {
    float *np = load_f32(c, tnp);
    int32_t lens[16];
    assert_true(tnp->n <= 16);
    for (size_t i = 0; i < tnp->n; i++)
      lens[i] = (int32_t)np[i];
    int64_t s1[1] = {(int64_t)tnp->n};
    VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 1, s1, &d.kv_lens));
    VKFT_OK(vkf_tensor_write(ctx, d.kv_lens, lens, tnp->n * sizeof(int32_t)));
    free(np);
  }
  d.logits = L;
  vkf_status st = vkf_attention_forward(ctx, O, Pt, Q, K, V, &d);
  if (st != VKF_OK)
    fail_msg("%s: %s: %s", c->dir, vkf_status_name(st), vkf_context_error(ctx));
  const int mode = (int)attr(c, "qk_matmul_output_mode", 0);
  if (c->n_out > 3 && c->out[3].present && mode < 2) {
    /* the scores before the mask (mode 0: also before the softcap) */
    vkf_attention_desc d2 = {.flags = flags & ~(uint32_t)VKF_ATTENTION_CAUSAL,
                             .scale = d.scale,
                             .softcap = mode == 1 ? d.softcap : 0.0f,
                             .logits = L2};
    vkf_tensor O2 = vkft_tensor(ctx, 4, so), P2 = vkft_tensor(ctx, 4, sp);
    VKFT_OK(vkf_attention_forward(ctx, O2, P2, Q, K, V, &d2));
    VKFT_OK(vkf_tensor_destroy(ctx, O2));
    VKFT_OK(vkf_tensor_destroy(ctx, P2));
  }

  size_t bad = 0;
  for (int o = 0; o < c->n_out; o++) {
    const tdesc *t = &c->out[o];
    if (!t->present)
      continue;
    const bool f16 = strcmp(t->dtype, "float16") == 0;
    const double atol = f16 ? 2e-3 : 1e-6, rtol = f16 ? 5e-3 : 1e-5;
    float *want = load_f32(c, t), *got = vkft_alloc(t->n);
    const char *names[4] = {"Y", "present_key", "present_value", "qk_matmul_output"};
    if (o == 0) {
      assert_int_equal(t->n, (size_t)(B * Sq * Hq * Dv));
      vkft_read(ctx, O, got, t->n);
    } else if (o == 1 || o == 2) {
      assert_non_null(pk);
      memcpy(got, o == 1 ? pk : pv, t->n * sizeof(float));
    } else {
      vkft_read(ctx, mode == 3 ? Pt : mode == 2 ? L : L2, got, t->n);
    }
    bad += compare_inf(names[o], got, want, t->n, atol, rtol);
    free(want);
    free(got);
  }
  vkf_tensor all[] = {Q, K, V, O, Pt, L, L2, d.mask, d.kv_lens};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(all); i++)
    if (all[i].id)
      VKFT_OK(vkf_tensor_destroy(ctx, all[i]));
  free(q), free(k), free(v), free(pk), free(pv);
  return bad;
}

static int case_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The folder's README, or a loud skip when there is no data. */
static char *readme_or_skip(void) {
  char path[1100];
  snprintf(path, sizeof(path), "%s/README.md", onnx_dir());
  char *readme = read_file(path, NULL);
  if (!readme) {
    fprintf(stderr,
            "SKIP: no ONNX conformance data at %s (set VKF_CONFORMANCE_DIR); the ONNX Attention "
            "cases did not run\n",
            onnx_dir());
    skip();
  }
  return readme;
}

static void run_all(vkf_context *ctx, char *readme) {
  /* the case names are the table rows of the README: "| test_attention_... |" */
  char *names[256];
  size_t n = 0;
  for (char *p = readme; (p = strstr(p, "\n| test_attention_")) != NULL; p++) {
    char name[128];
    if (sscanf(p + 3, "%127[a-z0-9_]", name) == 1 && n < 256) {
      bool dup = false;
      for (size_t i = 0; i < n; i++)
        dup = dup || strcmp(names[i], name) == 0;
      if (!dup)
        names[n++] = strdup(name);
    }
  }
  free(readme);
  qsort(names, n, sizeof(names[0]), case_cmp);
  assert_int_equal(n, 64);
  size_t failed = 0;
  for (size_t i = 0; i < n; i++) {
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/%s", onnx_dir(), names[i]);
    onnx_case c;
    parse_case(dir, &c);
    size_t bad = run_onnx_case(ctx, &c);
    if (bad) {
      fprintf(stderr, "  ^ %s\n", names[i]);
      failed++;
    }
    free(names[i]);
  }
  if (failed)
    fail_msg("%zu of %zu ONNX Attention cases failed", failed, n);
}

static void test_attn_onnx_cpu(void **state) {
  (void)state;
  char *readme = readme_or_skip();
  vkf_context *cpu = vkft_cpu();
  run_all(cpu, readme);
  vkft_destroy(cpu);
}

static void test_attn_onnx_vulkan(void **state) {
  (void)state;
  char *readme = readme_or_skip();
  vkf_context *vk = vkft_vulkan();
  run_all(vk, readme);
  vkft_destroy(vk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_attn_onnx_cpu),
      cmocka_unit_test(test_attn_onnx_vulkan),
  };
  return cmocka_run_group_tests_name("attn_onnx", tests, NULL, NULL);
}
