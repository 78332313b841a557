/* The train and generate samples, run as a user runs them: a few steps of a
 * tiny model on the CPU backend and on the default Vulkan device, their
 * files (checkpoint, loss.csv, a well-formed loss.svg, the final model),
 * --resume continuing bit for bit, generation from the checkpoint, and clear
 * errors with a non-zero exit for bad arguments and missing files. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256]; /* this run's temporary directory */
static char corpus[300];

/* ------------------------------------------------------------------------ */
/* Running the programs                                                     */
/* ------------------------------------------------------------------------ */
typedef struct result {
  int status; /* exit status; -1 when it did not exit normally */
  char *out, *err;
  size_t out_len;
} result;

static char *slurp(const char *path, size_t *len) {
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
  buf[got] = 0;
  if (len)
    *len = got;
  return buf;
}

/* Runs exe with the NULL-terminated argument list; stdout and stderr are
 * captured. extra_env: "NAME=value" set in the child only (or NULL). */
static result run_env(const char *extra_env, const char *exe, const char *const *args) {
  char out_path[300], err_path[300];
  snprintf(out_path, sizeof(out_path), "%s/stdout.txt", dir);
  snprintf(err_path, sizeof(err_path), "%s/stderr.txt", dir);
  const char *argv[64];
  int n = 0;
  argv[n++] = exe;
  for (; args[n - 1] && n < 63; n++)
    argv[n] = args[n - 1];
  argv[n] = NULL;
  fflush(stdout);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
      _exit(126);
    if (extra_env)
      putenv((char *)extra_env);
    /* In the sanitizer build: the samples are not linked with vkft_pin, so
     * the Vulkan loader's dlclose of lavapipe and the validation layer turns
     * their globals into "<unknown module>" leaks no suppression can name.
     * Leak checking of the library code they run is done in-process by
     * test_train and test_session; ASan's other checks stay on here. */
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof(opts), "%s%sdetect_leaks=0", asan ? asan : "", asan && *asan ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
    execv(exe, (char *const *)argv);
    _exit(127);
  }
  int ws = 0;
  assert_int_equal(waitpid(pid, &ws, 0), pid);
  result r = {WIFEXITED(ws) ? WEXITSTATUS(ws) : -1, NULL, NULL, 0};
  r.out = slurp(out_path, &r.out_len);
  r.err = slurp(err_path, NULL);
  assert_non_null(r.out);
  assert_non_null(r.err);
  return r;
}

static result run(const char *exe, const char *const *args) {
  return run_env(NULL, exe, args);
}

static void result_free(result *r) {
  free(r->out);
  free(r->err);
}

/* Fails with the program's output when it did not exit with `status`. */
static void expect_status(const result *r, int status, const char *what) {
  if (r->status != status) {
    /* stdio, not print_error: cmocka truncates long messages */
    fprintf(stderr, "%s exited with %d, expected %d\n--- stdout\n%s\n--- stderr\n%s\n", what,
            r->status, status, r->out, r->err);
    fail();
  }
}

static void path_in(char *out, size_t cap, const char *sub, const char *file) {
  snprintf(out, cap, "%s/%s/%s", dir, sub, file);
}

static bool exists(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0;
}

/* ------------------------------------------------------------------------ */
/* loss.csv                                                                 */
/* ------------------------------------------------------------------------ */
typedef struct csv_row {
  long step;
  char loss[32], val[32], lr[32], grad_norm[32]; /* the text, for exact comparison */
} csv_row;

static size_t split_field(const char **p, char *out, size_t cap) {
  size_t n = 0;
  while (**p && **p != ',' && **p != '\n') {
    if (n + 1 < cap)
      out[n++] = **p;
    (*p)++;
  }
  out[n] = 0;
  if (**p == ',')
    (*p)++;
  return n;
}

/* Reads loss.csv (checking its header) into rows; returns the row count. */
static size_t read_csv(const char *path, csv_row *rows, size_t cap) {
  char *text = slurp(path, NULL);
  if (!text)
    fail_msg("cannot read %s", path);
  const char *header = "step,loss,val_loss,lr,grad_norm,tokens_per_s,elapsed_s\n";
  assert_memory_equal(text, header, strlen(header));
  const char *p = text + strlen(header);
  size_t n = 0;
  while (*p && n < cap) {
    char f[32];
    csv_row *r = &rows[n++];
    split_field(&p, f, sizeof(f));
    r->step = strtol(f, NULL, 10);
    split_field(&p, r->loss, sizeof(r->loss));
    split_field(&p, r->val, sizeof(r->val));
    split_field(&p, r->lr, sizeof(r->lr));
    split_field(&p, r->grad_norm, sizeof(r->grad_norm));
    while (*p && *p != '\n')
      p++;
    if (*p)
      p++;
  }
  free(text);
  return n;
}

/* ------------------------------------------------------------------------ */
/* A small XML well-formedness checker (enough for SVG): one root element,
 * matching tags, quoted attributes, valid entity references, comments and
 * processing instructions. Returns NULL when well-formed, else why.        */
/* ------------------------------------------------------------------------ */
static bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && ((c >= '0' && c <= '9') || c == '-' || c == '.'));
}

static const char *xml_name(const char **p, char *out, size_t cap) {
  size_t n = 0;
  if (!name_char(**p, true))
    return "expected a name";
  while (name_char(**p, n == 0)) {
    if (n + 1 < cap)
      out[n++] = **p;
    (*p)++;
  }
  out[n] = 0;
  return NULL;
}

static const char *xml_entity(const char **p) {
  static const char *const named[] = {"amp;", "lt;", "gt;", "quot;", "apos;"};
  (*p)++; /* '&' */
  for (size_t i = 0; i < 5; i++)
    if (!strncmp(*p, named[i], strlen(named[i]))) {
      *p += strlen(named[i]);
      return NULL;
    }
  if (**p == '#') {
    const char *q = *p + 1;
    bool hex = *q == 'x';
    q += hex;
    const char *digits = q;
    while ((*q >= '0' && *q <= '9') ||
           (hex && ((*q >= 'a' && *q <= 'f') || (*q >= 'A' && *q <= 'F'))))
      q++;
    if (q > digits && *q == ';') {
      *p = q + 1;
      return NULL;
    }
  }
  return "bad entity reference";
}

static void skip_space(const char **p) {
  while (**p == ' ' || **p == '\n' || **p == '\t' || **p == '\r')
    (*p)++;
}

static const char *xml_check(const char *s) {
  char stack[64][64];
  int depth = 0, roots = 0;
  const char *p = s;
  if (!strncmp(p, "<?xml", 5)) {
    p = strstr(p, "?>");
    if (!p)
      return "unterminated XML declaration";
    p += 2;
  }
  while (*p) {
    if (*p != '<') {
      if (depth == 0 && !(*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r'))
        return "text outside the root element";
      if (*p == '&') {
        const char *e = xml_entity(&p);
        if (e)
          return e;
      } else {
        if (*p == '>')
          return "'>' in text";
        p++;
      }
      continue;
    }
    if (!strncmp(p, "<!--", 4)) {
      const char *e = strstr(p + 4, "-->");
      if (!e)
        return "unterminated comment";
      p = e + 3;
      continue;
    }
    if (!strncmp(p, "<?", 2)) {
      const char *e = strstr(p + 2, "?>");
      if (!e)
        return "unterminated processing instruction";
      p = e + 2;
      continue;
    }
    if (p[1] == '/') { /* closing tag */
      p += 2;
      char nm[64];
      const char *e = xml_name(&p, nm, sizeof(nm));
      if (e)
        return e;
      skip_space(&p);
      if (*p != '>')
        return "malformed closing tag";
      p++;
      if (depth == 0 || strcmp(stack[depth - 1], nm))
        return "closing tag does not match the open element";
      depth--;
      continue;
    }
    p++; /* opening or empty-element tag */
    char nm[64];
    const char *e = xml_name(&p, nm, sizeof(nm));
    if (e)
      return e;
    char seen[32][64];
    int n_attr = 0;
    for (;;) {
      bool space = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
      skip_space(&p);
      if (*p == '>' || !strncmp(p, "/>", 2))
        break;
      if (!space)
        return "attributes must be separated by white space";
      char an[64];
      e = xml_name(&p, an, sizeof(an));
      if (e)
        return e;
      for (int i = 0; i < n_attr; i++)
        if (!strcmp(seen[i], an))
          return "duplicate attribute";
      if (n_attr < 32)
        strcpy(seen[n_attr++], an);
      skip_space(&p);
      if (*p != '=')
        return "attribute without '='";
      p++;
      skip_space(&p);
      char q = *p;
      if (q != '"' && q != '\'')
        return "unquoted attribute value";
      p++;
      while (*p && *p != q) {
        if (*p == '<')
          return "'<' in an attribute value";
        if (*p == '&') {
          e = xml_entity(&p);
          if (e)
            return e;
        } else {
          p++;
        }
      }
      if (!*p)
        return "unterminated attribute value";
      p++;
    }
    if (depth == 0 && roots++ > 0)
      return "more than one root element";
    if (*p == '/') {
      p += 2;
      continue;
    }
    p++;
    if (depth == 64)
      return "nested too deep";
    snprintf(stack[depth++], sizeof(stack[0]), "%s", nm);
  }
  if (depth)
    return "unclosed element";
  if (roots != 1)
    return "no root element";
  return NULL;
}

static void test_xml_checker(void **state) {
  (void)state;
  /* the checker itself: it must reject what is not well-formed */
  assert_null(xml_check("<?xml version=\"1.0\"?>\n<svg a=\"1\" b='&amp;'><g><t>x &lt; y</t></g>"
                        "<!-- c --><line/></svg>\n"));
  const char *bad[] = {"<svg><g></svg></g>",
                       "<svg a=1/>",
                       "<svg a=\"1\" a=\"2\"/>",
                       "<svg>&nope;</svg>",
                       "<svg><g></svg>",
                       "<a/><b/>",
                       "<svg x=\"<\"/>",
                       "<svg a=\"1\"b=\"2\"/>",
                       "text<svg/>",
                       ""};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (!xml_check(bad[i]))
      fail_msg("the XML checker accepted \"%s\"", bad[i]);
}

/* ------------------------------------------------------------------------ */
/* Checks on a finished run                                                 */
/* ------------------------------------------------------------------------ */
static void check_outputs(const char *sub, int steps, int val_every, csv_row *rows, size_t *n) {
  const char *files[] = {"checkpoint.safetensors", "loss.csv", "loss.svg", "config.json",
                         "model.safetensors"};
  char path[512];
  for (size_t i = 0; i < 5; i++) {
    path_in(path, sizeof(path), sub, files[i]);
    if (!exists(path))
      fail_msg("%s is missing or empty", path);
  }
  path_in(path, sizeof(path), sub, "loss.csv");
  *n = read_csv(path, rows, 256);
  /* step 0 (validation only), then every step */
  assert_int_equal(*n, steps + 1);
  assert_int_equal(rows[0].step, 0);
  assert_string_equal(rows[0].loss, "");
  assert_true(strtod(rows[0].val, NULL) > 0);
  for (int s = 1; s <= steps; s++) {
    const csv_row *r = &rows[s];
    assert_int_equal(r->step, s);
    double loss = strtod(r->loss, NULL);
    assert_true(isfinite(loss) && loss > 0 && loss < 10);
    bool has_val = r->val[0] != 0;
    assert_int_equal(has_val, s % val_every == 0 || s == steps);
  }
  /* it learns: a few steps on a tiny repetitive corpus lower the loss */
  assert_true(strtod(rows[steps].loss, NULL) < strtod(rows[1].loss, NULL));
  path_in(path, sizeof(path), sub, "loss.svg");
  char *svg = slurp(path, NULL);
  assert_non_null(svg);
  const char *why = xml_check(svg);
  if (why)
    fail_msg("%s is not well-formed XML: %s", path, why);
  assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
  /* two curves, a legend, axis labels */
  const char *p = strstr(svg, "<polyline");
  assert_non_null(p);
  assert_non_null(strstr(p + 1, "<polyline"));
  assert_non_null(strstr(svg, ">training loss<"));
  assert_non_null(strstr(svg, ">validation loss<"));
  assert_non_null(strstr(svg, ">step<"));
  free(svg);
}

/* A tiny model: a few steps take well under a second on the CPU. */
#define TINY "--d-model", "16", "--layers", "1", "--heads", "2", "--ctx", "16", "--batch", "2"

static void train_tiny(const char *device, const char *sub, const char *extra_env) {
  char out[300];
  snprintf(out, sizeof(out), "%s/%s", dir, sub);
  const char *args[] = {"--data", corpus,
                        TINY,     "--steps",
                        "6",      "--val-every",
                        "2",      "--val-batches",
                        "1",      "--out",
                        out,      "--sample-tokens",
                        "24",     "--seed",
                        "3",      "--lr",
                        "1e-2",   device ? "--device" : NULL,
                        device,   NULL};
  result r = run_env(extra_env, TRAIN_EXE, args);
  expect_status(&r, 0, "train");
  /* the progress lines and the sample */
  assert_non_null(strstr(r.out, "step      6/6"));
  assert_non_null(strstr(r.out, "--- sample: 24 tokens"));
  assert_non_null(strstr(r.out, "And it came to pass"));
  result_free(&r);
}

static void test_train_cpu(void **state) {
  (void)state;
  train_tiny("cpu", "cpu", NULL);
  csv_row rows[256];
  size_t n;
  check_outputs("cpu", 6, 2, rows, &n);
}

static void test_train_vulkan(void **state) {
  (void)state;
  /* skips (or fails under VKF_TEST_REQUIRE_VULKAN=1) without a Vulkan device */
  vkft_destroy(vkft_vulkan());
  const char *dev = getenv("VKF_TEST_DEVICE");
  /* with the validation layer: train exits non-zero on any validation message */
  train_tiny(dev, "vk", "VKF_VALIDATION=1");
  csv_row rows[256], ref[256];
  size_t n, n_ref;
  check_outputs("vk", 6, 2, rows, &n);
  /* the same run as on the CPU backend (same initial weights and batches):
   * fp32 with different summation orders, drifting apart slowly over steps */
  train_tiny("cpu", "vk_ref", NULL);
  check_outputs("vk_ref", 6, 2, ref, &n_ref);
  for (size_t i = 1; i < n; i++) {
    double a = strtod(rows[i].loss, NULL), b = strtod(ref[i].loss, NULL);
    if (fabs(a - b) > 1e-4 + 1e-4 * fabs(b))
      fail_msg("step %ld: loss %s on Vulkan, %s on the CPU backend", rows[i].step, rows[i].loss,
               ref[i].loss);
  }
}

static void test_resume(void **state) {
  (void)state;
  char a[300], b[300], ckpt[512];
  snprintf(a, sizeof(a), "%s/full", dir);
  snprintf(b, sizeof(b), "%s/split", dir);
  snprintf(ckpt, sizeof(ckpt), "%s/checkpoint.safetensors", b);
  /* the cosine schedule over 8 steps, warm-up, clipping, weight decay */
  const char *full[] = {
      "--data", corpus,          TINY, "--steps", "8", "--warmup",        "2", "--val-every",
      "3",      "--val-batches", "1",  "--out",   a,   "--sample-tokens", "0", "--device",
      "cpu",    "--threads",     "2",  NULL};
  result r = run(TRAIN_EXE, full);
  expect_status(&r, 0, "train (uninterrupted)");
  result_free(&r);
  const char *first[] = {"--data", corpus,
                         TINY,     "--steps",
                         "8",      "--warmup",
                         "2",      "--val-every",
                         "3",      "--val-batches",
                         "1",      "--out",
                         b,        "--sample-tokens",
                         "0",      "--device",
                         "cpu",    "--threads",
                         "2",      "--stop-at",
                         "3",      NULL};
  r = run(TRAIN_EXE, first);
  expect_status(&r, 0, "train --stop-at 3");
  assert_non_null(strstr(r.out, "stopped at step 3 of 8"));
  result_free(&r);
  /* a run's settings come from its checkpoint */
  const char *conflict[] = {"--resume", ckpt, "--lr", "1e-3", NULL};
  r = run(TRAIN_EXE, conflict);
  expect_status(&r, 2, "train --resume --lr");
  assert_non_null(strstr(r.err, "--lr cannot be used with --resume"));
  result_free(&r);
  const char *resume[] = {"--resume", ckpt,        "--out", b,   "--sample-tokens", "0", "--device",
                          "cpu",      "--threads", "2",     NULL};
  r = run(TRAIN_EXE, resume);
  expect_status(&r, 0, "train --resume");
  assert_non_null(strstr(r.out, "resuming"));
  result_free(&r);
  csv_row ra[256], rb[256];
  char pa[512], pb[512];
  snprintf(pa, sizeof(pa), "%s/loss.csv", a);
  snprintf(pb, sizeof(pb), "%s/loss.csv", b);
  size_t na = read_csv(pa, ra, 256), nb = read_csv(pb, rb, 256);
  assert_int_equal(na, 9);
  assert_int_equal(nb, 9);
  for (size_t i = 0; i < na; i++) {
    /* bit for bit: the CSV holds each float with 9 significant digits */
    assert_int_equal(ra[i].step, rb[i].step);
    assert_string_equal(ra[i].loss, rb[i].loss);
    assert_string_equal(ra[i].val, rb[i].val);
    assert_string_equal(ra[i].lr, rb[i].lr);
    assert_string_equal(ra[i].grad_norm, rb[i].grad_norm);
  }
  /* and the final weights are the same bytes */
  snprintf(pa, sizeof(pa), "%s/model.safetensors", a);
  snprintf(pb, sizeof(pb), "%s/model.safetensors", b);
  size_t la, lb;
  char *wa = slurp(pa, &la), *wb = slurp(pb, &lb);
  assert_non_null(wa);
  assert_non_null(wb);
  assert_int_equal(la, lb);
  assert_memory_equal(wa, wb, la);
  free(wa);
  free(wb);
  /* finished: nothing left to resume */
  r = run(TRAIN_EXE, resume);
  expect_status(&r, 1, "train --resume of a finished run");
  assert_non_null(strstr(r.err, "already finished"));
  result_free(&r);
}

static void test_generate(void **state) {
  (void)state;
  char ckpt[512], model[300];
  snprintf(ckpt, sizeof(ckpt), "%s/cpu/checkpoint.safetensors", dir);
  snprintf(model, sizeof(model), "%s/cpu", dir);
  if (!exists(ckpt))
    train_tiny("cpu", "cpu", NULL);
  const char *from_ckpt[] = {"--checkpoint",
                             ckpt,
                             "--prompt",
                             "In the beginning",
                             "--tokens",
                             "40",
                             "--seed",
                             "9",
                             "--device",
                             "cpu",
                             "--top-k",
                             "20",
                             "--repetition-penalty",
                             "1.1",
                             NULL};
  result a = run(GENERATE_EXE, from_ckpt);
  expect_status(&a, 0, "generate --checkpoint");
  /* the prompt, 40 bytes, a newline */
  assert_int_equal(a.out_len, strlen("In the beginning") + 40 + 1);
  assert_memory_equal(a.out, "In the beginning", strlen("In the beginning"));
  assert_non_null(strstr(a.err, "40 tokens in"));
  /* the same weights from config.json + model.safetensors: the same text */
  const char *from_dir[] = {"--model",
                            model,
                            "--prompt",
                            "In the beginning",
                            "--tokens",
                            "40",
                            "--seed",
                            "9",
                            "--device",
                            "cpu",
                            "--top-k",
                            "20",
                            "--repetition-penalty",
                            "1.1",
                            NULL};
  result b = run(GENERATE_EXE, from_dir);
  expect_status(&b, 0, "generate --model");
  assert_int_equal(a.out_len, b.out_len);
  assert_memory_equal(a.out, b.out, a.out_len);
  result_free(&b);
  /* greedy decoding ignores the seed */
  const char *greedy1[] = {"--checkpoint", ckpt, "--temperature", "0",   "--tokens", "16",
                           "--seed",       "1",  "--device",      "cpu", NULL};
  const char *greedy2[] = {"--checkpoint", ckpt, "--temperature", "0",   "--tokens", "16",
                           "--seed",       "2",  "--device",      "cpu", NULL};
  result g1 = run(GENERATE_EXE, greedy1), g2 = run(GENERATE_EXE, greedy2);
  expect_status(&g1, 0, "generate greedy");
  expect_status(&g2, 0, "generate greedy");
  assert_int_equal(g1.out_len, g2.out_len);
  assert_memory_equal(g1.out, g2.out, g1.out_len);
  result_free(&g1);
  result_free(&g2);
  result_free(&a);
}

/* Runs exe expecting a failure with `status` and `message` in stderr. */
static void expect_error(const char *exe, const char *const *args, int status,
                         const char *message) {
  result r = run(exe, args);
  expect_status(&r, status, args[0] ? args[0] : exe);
  if (!strstr(r.err, message))
    fail_msg("stderr lacks \"%s\":\n%s", message, r.err);
  assert_int_equal(r.out_len, 0); /* errors go to stderr only */
  result_free(&r);
}

static void test_errors(void **state) {
  (void)state;
  char missing[300], out[300], tok[300];
  snprintf(missing, sizeof(missing), "%s/no-such-file.txt", dir);
  snprintf(out, sizeof(out), "%s/err", dir);
  snprintf(tok, sizeof(tok), "%s/tokens.bin", dir);
  const char *a1[] = {"--data", missing, "--device", "cpu", "--steps", "1", "--out", out, NULL};
  expect_error(TRAIN_EXE, a1, 1, "no-such-file.txt");
  const char *a2[] = {"--bogus", NULL};
  expect_error(TRAIN_EXE, a2, 2, "unknown option \"--bogus\"");
  const char *a3[] = {"--steps", "many", NULL};
  expect_error(TRAIN_EXE, a3, 2, "--steps: expected a non-negative integer");
  const char *a4[] = {"--steps", "0", NULL};
  expect_error(TRAIN_EXE, a4, 2, "--steps: 0 is outside");
  const char *a5[] = {"--lr", "fast", NULL};
  expect_error(TRAIN_EXE, a5, 2, "--lr: expected a number");
  const char *a6[] = {"--steps", NULL};
  expect_error(TRAIN_EXE, a6, 2, "--steps needs a value");
  const char *a7[] = {"--tokens", tok, NULL};
  expect_error(TRAIN_EXE, a7, 2, "--tokens and --vocab go together");
  const char *a8[] = {"--schedule", "linear", NULL};
  expect_error(TRAIN_EXE, a8, 2, "--schedule: expected cosine or constant");
  const char *a9[] = {"--data", corpus,  "--device", "cpu",   "--steps", "1", "--ctx",
                      "16",     "--seq", "32",       "--out", out,       NULL};
  expect_error(TRAIN_EXE, a9, 1, "--seq 32 exceeds the model's context length 16");
  const char *a10[] = {"--data", corpus,      "--device", "cpu",   "--steps", "1", "--heads",
                       "3",      "--d-model", "16",       "--out", out,       NULL};
  expect_error(TRAIN_EXE, a10, 1, "not a multiple of n_head");
  const char *a11[] = {"--data", corpus, "--device", "no-such-device", "--steps", "1", NULL};
  expect_error(TRAIN_EXE, a11, 1, "no-such-device");
  const char *a12[] = {"--dump", "x.safetensors", "--schedule", "cosine", NULL};
  expect_error(TRAIN_EXE, a12, 2, "--dump replays a constant learning rate");
  char ckpt[300];
  snprintf(ckpt, sizeof(ckpt), "%s/no-such-checkpoint.safetensors", dir);
  const char *g1[] = {"--checkpoint", ckpt, "--device", "cpu", NULL};
  expect_error(GENERATE_EXE, g1, 1, "no-such-checkpoint.safetensors");
  const char *g2[] = {"--temperature", "-1", NULL};
  expect_error(GENERATE_EXE, g2, 2, "--temperature");
  const char *g3[] = {"--frobnicate", NULL};
  expect_error(GENERATE_EXE, g3, 2, "unknown argument \"--frobnicate\"");
  /* a file that is not a checkpoint */
  const char *g4[] = {"--checkpoint", corpus, "--device", "cpu", NULL};
  expect_error(GENERATE_EXE, g4, 1, "generate: loading the checkpoint");
}

/* vkf_trainer_set_total_steps, which train's time budget relies on. */
static void test_set_total_steps(void **state) {
  (void)state;
  vkf_context *ctx = vkft_cpu();
  vkf_gpt_config cfg = {
      .vocab_size = 16, .context_length = 8, .d_model = 8, .n_layer = 1, .n_head = 2, .bias = 1};
  vkf_gpt *m;
  VKFT_OK(vkf_gpt_create(ctx, &cfg, 1, &m));
  vkf_train_desc d = {
      .batch = 1, .seq_len = 8, .lr = 1e-2f, .min_lr = 1e-3f, .warmup_steps = 2, .total_steps = 10};
  vkf_trainer *t;
  VKFT_OK(vkf_trainer_create(m, &d, &t));
  assert_int_equal(vkf_trainer_set_total_steps(NULL, 5), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_trainer_set_total_steps(t, 0), VKF_ERROR_INVALID_ARGUMENT);
  int32_t in[8], tg[8];
  for (int i = 0; i < 8; i++)
    in[i] = i, tg[i] = (i + 1) % 16;
  for (int i = 0; i < 3; i++)
    VKFT_OK(vkf_trainer_step(t, in, tg, NULL));
  /* fewer than the updates made */
  assert_int_equal(vkf_trainer_set_total_steps(t, 2), VKF_ERROR_INVALID_ARGUMENT);
  assert_true(strstr(vkf_context_error(ctx), "fewer than the 3 updates") != NULL);
  assert_float_equal(vkf_trainer_lr(t, 10), 1e-3, 1e-9); /* unchanged: the old end */
  VKFT_OK(vkf_trainer_set_total_steps(t, 3));            /* as many as made: allowed */
  VKFT_OK(vkf_trainer_set_total_steps(t, 20));
  /* the cosine now ends at 20: halfway (step 11 of 2 + 18) is the midpoint */
  assert_float_equal(vkf_trainer_lr(t, 11), 0.5 * (1e-2 + 1e-3), 1e-7);
  assert_float_equal(vkf_trainer_lr(t, 20), 1e-3, 1e-9);
  assert_float_equal(vkf_trainer_lr(t, 1), 5e-3, 1e-9); /* warm-up unchanged */
  vkf_step_info info;
  VKFT_OK(vkf_trainer_step(t, in, tg, &info));
  assert_int_equal(info.step, 4);
  assert_float_equal(info.lr, vkf_trainer_lr(t, 4), 0);
  vkf_trainer_destroy(t);
  vkf_gpt_destroy(m);
  vkft_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof(dir), "%s/vkf_samples_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(dir))
    return -1;
  /* a small corpus: sentences from a few words, seeded (about 40 KB) */
  snprintf(corpus, sizeof(corpus), "%s/corpus.txt", dir);
  FILE *f = fopen(corpus, "w");
  if (!f)
    return -1;
  static const char *const words[] = {"and",  "the",    "lord", "said", "unto", "him", "of",
                                      "land", "people", "went", "came", "to",   "pass"};
  uint64_t x = 12345;
  for (int line = 0; line < 1000; line++) {
    int n = 4 + line % 6;
    for (int w = 0; w < n; w++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      fprintf(f, "%s%s", w ? " " : "And ", words[(x >> 33) % 13]);
    }
    fputs(".\n", f);
  }
  return fclose(f) == 0 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  return nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_xml_checker),  cmocka_unit_test(test_set_total_steps),
      cmocka_unit_test(test_errors),       cmocka_unit_test(test_train_cpu),
      cmocka_unit_test(test_generate),     cmocka_unit_test(test_resume),
      cmocka_unit_test(test_train_vulkan),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
