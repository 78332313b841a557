/* train: trains a GPT on text (byte-level) or int32 token files with
 * vkformer, writes a checkpoint, a loss curve (CSV and SVG) and the final
 * model, and prints a generated passage. With no arguments it trains a small
 * byte-level model on the King James Bible (data/kjv.txt, which
 * scripts/run-sample.sh extracts) for a fixed wall-clock budget. */
#include "sample_util.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROG "train"
#define MAX_DATA 64
#define DEFAULT_DATA "data/kjv.txt"
#define DEFAULT_TIME 180.0
#define MEASURE_STEPS 6 /* steps timed before a time budget fixes the schedule */
/* The defaults, chosen by measuring 3-minute runs on lavapipe: the smallest
 * model learns the most in the time, rotary positions clearly faster than
 * learned ones, and 4 sequences a step beat 2, 8 and 16 (README) */
#define DEFAULT_D_MODEL 64
#define DEFAULT_LAYERS 2
#define DEFAULT_HEADS 2
#define DEFAULT_CTX 64
#define DEFAULT_BATCH 4
#define DEFAULT_LR 3e-3f
#define DEFAULT_TEMPERATURE 0.7f
#define STR_(x) #x
#define STR(x) STR_(x)

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct opts {
  const char *data[MAX_DATA];
  uint32_t n_data;
  const char *tokens;
  uint32_t vocab;
  float val_fraction;
  const char *config, *init, *resume, *out, *dump, *save_init, *device;
  uint32_t d_model, layers, heads, kv_heads, ctx;
  const char *norm, *mlp, *positions;
  uint32_t steps;
  double time_s;
  uint32_t batch, seq, warmup;
  float lr, min_lr, weight_decay, clip, beta1, beta2, eps;
  const char *schedule;
  uint32_t threads;
  uint64_t seed;
  uint32_t val_every, val_batches, save_every, log_every, dump_steps, stop_at;
  uint32_t sample_tokens, top_k;
  const char *prompt;
  float temperature, top_p;
  bool verbose, profile;
} opts;

typedef enum { O_U32, O_U64, O_F32, O_F64, O_STR, O_DATA, O_FLAG } otype;
/* What an option belongs to: the run's definition (fixed by a checkpoint,
 * so not allowed with --resume), the model's architecture (not with --init
 * or --resume), or this session only. */
typedef enum { RUN, MODEL, SESSION } oclass;

typedef struct optdef {
  const char *name;
  otype type;
  oclass cls;
  void *ptr;
  double min, max;
  bool given;
} optdef;

static opts o;

static optdef optdefs[] = {
    {"data", O_DATA, RUN, NULL, 0, 0, false},
    {"tokens", O_STR, RUN, &o.tokens, 0, 0, false},
    {"vocab", O_U32, RUN, &o.vocab, 1, INT32_MAX, false},
    {"val-fraction", O_F32, RUN, &o.val_fraction, 0, 0.9, false},
    {"config", O_STR, MODEL, &o.config, 0, 0, false},
    {"init", O_STR, RUN, &o.init, 0, 0, false},
    {"d-model", O_U32, MODEL, &o.d_model, 1, 1 << 16, false},
    {"layers", O_U32, MODEL, &o.layers, 1, 1024, false},
    {"heads", O_U32, MODEL, &o.heads, 1, 1024, false},
    {"kv-heads", O_U32, MODEL, &o.kv_heads, 1, 1024, false},
    {"ctx", O_U32, MODEL, &o.ctx, 1, 1 << 20, false},
    {"norm", O_STR, MODEL, &o.norm, 0, 0, false},
    {"mlp", O_STR, MODEL, &o.mlp, 0, 0, false},
    {"positions", O_STR, MODEL, &o.positions, 0, 0, false},
    {"steps", O_U32, RUN, &o.steps, 1, INT32_MAX, false},
    {"time", O_F64, SESSION, &o.time_s, 1, 1e7, false},
    {"batch", O_U32, RUN, &o.batch, 1, 1 << 16, false},
    {"seq", O_U32, RUN, &o.seq, 1, 1 << 20, false},
    {"lr", O_F32, RUN, &o.lr, 1e-12, 10, false},
    {"min-lr", O_F32, RUN, &o.min_lr, 0, 10, false},
    {"warmup", O_U32, RUN, &o.warmup, 0, INT32_MAX, false},
    {"schedule", O_STR, RUN, &o.schedule, 0, 0, false},
    {"weight-decay", O_F32, RUN, &o.weight_decay, 0, 10, false},
    {"clip", O_F32, RUN, &o.clip, 0, 1e9, false},
    {"beta1", O_F32, RUN, &o.beta1, 1e-9, 0.999999, false},
    {"beta2", O_F32, RUN, &o.beta2, 1e-9, 0.999999999, false},
    {"eps", O_F32, RUN, &o.eps, 1e-30, 1, false},
    {"device", O_STR, SESSION, &o.device, 0, 0, false},
    {"threads", O_U32, SESSION, &o.threads, 1, 1024, false},
    {"seed", O_U64, RUN, &o.seed, 0, 0, false},
    {"val-every", O_U32, RUN, &o.val_every, 1, INT32_MAX, false},
    {"val-batches", O_U32, RUN, &o.val_batches, 1, 1 << 20, false},
    {"out", O_STR, SESSION, &o.out, 0, 0, false},
    {"save-every", O_U32, SESSION, &o.save_every, 1, INT32_MAX, false},
    {"stop-at", O_U32, SESSION, &o.stop_at, 1, INT32_MAX, false},
    {"log-every", O_U32, SESSION, &o.log_every, 1, INT32_MAX, false},
    {"resume", O_STR, SESSION, &o.resume, 0, 0, false},
    {"sample-tokens", O_U32, SESSION, &o.sample_tokens, 0, 1 << 24, false},
    {"prompt", O_STR, SESSION, &o.prompt, 0, 0, false},
    {"temperature", O_F32, SESSION, &o.temperature, 0, 100, false},
    {"top-k", O_U32, SESSION, &o.top_k, 0, INT32_MAX, false},
    {"top-p", O_F32, SESSION, &o.top_p, 0, 1, false},
    {"dump", O_STR, RUN, &o.dump, 0, 0, false},
    {"dump-steps", O_U32, RUN, &o.dump_steps, 1, 1 << 16, false},
    {"save-init", O_STR, RUN, &o.save_init, 0, 0, false},
    {"verbose", O_FLAG, SESSION, &o.verbose, 0, 0, false},
    {"profile", O_FLAG, SESSION, &o.profile, 0, 0, false},
};
#define N_OPTDEFS (sizeof(optdefs) / sizeof(optdefs[0]))

static bool given(const char *name) {
  for (size_t i = 0; i < N_OPTDEFS; i++)
    if (!strcmp(optdefs[i].name, name))
      return optdefs[i].given;
  return false;
}

static void usage(FILE *f) {
  fprintf(f, "usage: train [options]\n"
             "Trains a GPT with vkformer. With no options: a small byte-level model on the King "
             "James\n"
             "Bible (" DEFAULT_DATA
             ", see scripts/run-sample.sh) for 3 minutes on the default device,\n"
             "then prints a generated passage.\n"
             "\n"
             "data\n"
             "  --data FILE          text file, byte-level tokens (repeatable; concatenated in "
             "order;\n"
             "                       default " DEFAULT_DATA ")\n"
             "  --tokens FILE        little-endian int32 token ids instead of text (needs --vocab "
             "N)\n"
             "  --vocab N            vocabulary size of --tokens\n"
             "  --val-fraction F     last fraction of the tokens held out for validation (0.05)\n"
             "model (a new model; its weights are initialised from --seed)\n"
             "  --config FILE        Hugging Face style config.json (default: built in, see "
             "below)\n"
             "  --d-model N --layers N --heads N --kv-heads N --ctx N\n"
             "  --norm layernorm|rmsnorm --mlp gelu|swiglu --positions learned|rope\n"
             "                       override the config (built in: d-model " STR(DEFAULT_D_MODEL) ", layers " STR(DEFAULT_LAYERS) ", heads " STR(
                 DEFAULT_HEADS) ",\n"
                                "                       ctx " STR(
                                    DEFAULT_CTX) ", layernorm, gelu, rope, biases)\n"
                                                 "  --init DIR           start from "
                                                 "DIR/config.json and DIR/model.safetensors\n"
                                                 "schedule and optimiser (AdamW)\n"
                                                 "  --time SECONDS       wall-clock budget of the "
                                                 "training loop (default 180 when --steps\n"
                                                 "                       is not given): the first "
                                                 "steps are timed, the schedule is set to\n"
                                                 "                       the number of steps that "
                                                 "fit and refitted to the pace as the run\n"
                                                 "                       goes; with --steps: a "
                                                 "limit (stops there with a checkpoint)\n"
                                                 "  --steps N            number of updates; the "
                                                 "schedule's length\n"
                                                 "  --batch N            sequences per step (" STR(
                                                     DEFAULT_BATCH) ")\n"
                                                                    "  --seq N              tokens "
                                                                    "per sequence (the model's "
                                                                    "context length)\n"
                                                                    "  --lr F --min-lr F    peak "
                                                                    "learning rate (3e-3) and "
                                                                    "where the cosine ends "
                                                                    "(lr/10)\n"
                                                                    "  --warmup N           linear "
                                                                    "warm-up steps (20, at most a "
                                                                    "tenth of --steps)\n"
                                                                    "  --schedule cosine|constant "
                                                                    "(cosine)\n"
                                                                    "  --weight-decay F     "
                                                                    "decoupled, on matrices and "
                                                                    "embeddings (0.1)\n"
                                                                    "  --clip F             clip "
                                                                    "the global gradient norm "
                                                                    "(1.0; 0 = off)\n"
                                                                    "  --beta1 F --beta2 F --eps F "
                                                                    " (0.9, 0.99, 1e-8)\n"
                                                                    "  --seed N             model "
                                                                    "initialisation and batch "
                                                                    "order (1)\n"
                                                                    "validation, output\n"
                                                                    "  --val-every N        "
                                                                    "evaluate every N steps (about "
                                                                    "10 times per run)\n"
                                                                    "  --val-batches N      "
                                                                    "batches per evaluation, fixed "
                                                                    "windows of the split (4)\n"
                                                                    "  --out DIR            "
                                                                    "checkpoint.safetensors, "
                                                                    "loss.csv, loss.svg, "
                                                                    "config.json and\n"
                                                                    "                       "
                                                                    "model.safetensors (the final "
                                                                    "model) go here (out/kjv)\n"
                                                                    "  --save-every N       also "
                                                                    "write the checkpoint every N "
                                                                    "steps\n"
                                                                    "  --stop-at N          stop "
                                                                    "after step N (of a longer "
                                                                    "schedule) with a checkpoint, "
                                                                    "to\n"
                                                                    "                       "
                                                                    "continue later with --resume\n"
                                                                    "  --log-every N        "
                                                                    "progress line every N steps "
                                                                    "(about 40 per run)\n"
                                                                    "  --resume CHECKPOINT  "
                                                                    "continue a run exactly "
                                                                    "(weights, AdamW state, step, "
                                                                    "data order,\n"
                                                                    "                       "
                                                                    "schedule); the run's settings "
                                                                    "come from the checkpoint\n"
                                                                    "sample after training\n"
                                                                    "  --sample-tokens N    tokens "
                                                                    "to generate (400; 0 = none)\n"
                                                                    "  --prompt TEXT        (\"And "
                                                                    "it came to pass\"; for token "
                                                                    "models: ids)\n"
                                                                    "  --temperature F --top-k N "
                                                                    "--top-p F   (0.7, 0, 0.95)\n"
                                                                    "device\n"
                                                                    "  --device NAME        "
                                                                    "\"cpu\", an index or part of "
                                                                    "a name (default: the best "
                                                                    "device)\n"
                                                                    "  --threads N          CPU "
                                                                    "backend worker threads\n"
                                                                    "  --verbose            show "
                                                                    "vkformer's info messages\n"
                                                                    "  --profile            device "
                                                                    "time per op kind at the end "
                                                                    "(serialises the ops)\n"
                                                                    "reference cross-check "
                                                                    "(scripts/torch_reference.py)\n"
                                                                    "  --dump FILE          write "
                                                                    "logits, loss and gradients of "
                                                                    "step 1, every step's loss "
                                                                    "and\n"
                                                                    "                       batch, "
                                                                    "and the weights after "
                                                                    "--dump-steps steps (constant "
                                                                    "lr)\n"
                                                                    "  --dump-steps N       (3)\n"
                                                                    "  --save-init DIR      write "
                                                                    "the initial config.json and "
                                                                    "model.safetensors\n"
                                                                    "Ctrl-C stops after the "
                                                                    "current step and writes the "
                                                                    "checkpoint (--resume "
                                                                    "continues).\n");
}

/* Returns 0 when parsed, 2 on a usage error, 1 after --help. */
static int parse_args(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 1;
    }
    if (strncmp(a, "--", 2) != 0) {
      fprintf(stderr, PROG ": unexpected argument \"%s\" (options start with --; see --help)\n", a);
      return 2;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    optdef *d = NULL;
    for (size_t k = 0; k < N_OPTDEFS; k++)
      if (strlen(optdefs[k].name) == len && !strncmp(optdefs[k].name, name, len))
        d = &optdefs[k];
    if (!d) {
      fprintf(stderr, PROG ": unknown option \"%s\" (see --help)\n", a);
      return 2;
    }
    const char *val = NULL;
    if (d->type == O_FLAG) {
      if (eq) {
        fprintf(stderr, PROG ": --%s takes no value\n", d->name);
        return 2;
      }
    } else if (eq) {
      val = eq + 1;
    } else if (i + 1 < argc) {
      val = argv[++i];
    } else {
      fprintf(stderr, PROG ": --%s needs a value\n", d->name);
      return 2;
    }
    if (d->given && d->type != O_DATA) {
      fprintf(stderr, PROG ": --%s given twice\n", d->name);
      return 2;
    }
    d->given = true;
    bool ok = true;
    switch (d->type) {
    case O_U32:
      ok = smp_parse_u32(PROG, d->name, val, (uint32_t)d->min, (uint32_t)d->max, d->ptr);
      break;
    case O_U64:
      ok = smp_parse_u64(PROG, d->name, val, d->ptr);
      break;
    case O_F32:
      ok = smp_parse_float(PROG, d->name, val, d->min, d->max, d->ptr);
      break;
    case O_F64:
      ok = smp_parse_double(PROG, d->name, val, d->min, d->max, d->ptr);
      break;
    case O_STR:
      if (!*val) {
        fprintf(stderr, PROG ": --%s: empty value\n", d->name);
        ok = false;
      }
      *(const char **)d->ptr = val;
      break;
    case O_DATA:
      if (o.n_data == MAX_DATA) {
        fprintf(stderr, PROG ": more than %d --data files\n", MAX_DATA);
        return 2;
      }
      o.data[o.n_data++] = val;
      break;
    case O_FLAG:
      *(bool *)d->ptr = true;
      break;
    }
    if (!ok)
      return 2;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The loss curve: rows in memory, loss.csv, loss.svg                       */
/* ------------------------------------------------------------------------ */
typedef struct row {
  uint64_t step;
  double loss, val, lr, grad_norm, tokens_per_s, elapsed; /* NAN = not measured */
} row;

typedef struct curve {
  row *rows;
  size_t n, cap;
  FILE *csv;
  char csv_path[4096], svg_path[4096];
} curve;

static const char CSV_HEADER[] = "step,loss,val_loss,lr,grad_norm,tokens_per_s,elapsed_s\n";

static void csv_field(FILE *f, double v, const char *fmt) {
  if (isfinite(v))
    fprintf(f, fmt, v);
}

static bool curve_add(curve *c, const row *r) {
  if (c->n == c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 256;
    row *rows = realloc(c->rows, cap * sizeof(row));
    if (!rows)
      return false;
    c->rows = rows;
    c->cap = cap;
  }
  c->rows[c->n++] = *r;
  if (c->csv) {
    FILE *f = c->csv;
    fprintf(f, "%llu,", (unsigned long long)r->step);
    csv_field(f, r->loss, "%.9g"); /* 9 digits: the float exactly */
    fputc(',', f);
    csv_field(f, r->val, "%.9g");
    fputc(',', f);
    csv_field(f, r->lr, "%.9g");
    fputc(',', f);
    csv_field(f, r->grad_norm, "%.9g");
    fputc(',', f);
    csv_field(f, r->tokens_per_s, "%.1f");
    fputc(',', f);
    csv_field(f, r->elapsed, "%.3f");
    fputc('\n', f);
    fflush(f);
  }
  return true;
}

static double csv_num(const char **p) {
  char *end;
  double v = NAN;
  if (**p != ',' && **p != '\n' && **p)
    v = strtod(*p, &end), *p = end;
  if (**p == ',')
    (*p)++;
  return v;
}

/* Opens dir/loss.csv. Resuming from `step`: keeps the rows of an earlier
 * session up to that step (they become part of the curve), drops later ones. */
static bool curve_open(curve *c, const char *dir, uint64_t resume_step) {
  snprintf(c->csv_path, sizeof(c->csv_path), "%s/loss.csv", dir);
  snprintf(c->svg_path, sizeof(c->svg_path), "%s/loss.svg", dir);
  if (resume_step > 0) {
    FILE *f = fopen(c->csv_path, "r");
    char line[1024];
    if (f && fgets(line, sizeof(line), f) && !strcmp(line, CSV_HEADER)) {
      while (fgets(line, sizeof(line), f)) {
        const char *p = line;
        row r;
        r.step = strtoull(p, (char **)&p, 10);
        if (*p != ',')
          break;
        p++;
        r.loss = csv_num(&p);
        r.val = csv_num(&p);
        r.lr = csv_num(&p);
        r.grad_norm = csv_num(&p);
        r.tokens_per_s = csv_num(&p);
        r.elapsed = csv_num(&p);
        if (r.step > resume_step)
          break;
        if (!curve_add(c, &r))
          break;
      }
    }
    if (f)
      fclose(f);
  }
  c->csv = fopen(c->csv_path, "w");
  if (!c->csv) {
    fprintf(stderr, PROG ": cannot write %s: %s\n", c->csv_path, strerror(errno));
    return false;
  }
  fputs(CSV_HEADER, c->csv);
  size_t n = c->n;
  c->n = 0;
  for (size_t i = 0; i < n; i++)
    curve_add(c, &c->rows[i]);
  return true;
}

/* A round tick spacing (1, 2 or 5 times a power of ten) for about n ticks. */
static double nice_step(double range, int n) {
  double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void xml_text(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '&')
      fputs("&amp;", f);
    else if (*s == '<')
      fputs("&lt;", f);
    else if (*s == '>')
      fputs("&gt;", f);
    else if (*s == '"')
      fputs("&quot;", f);
    else if ((unsigned char)*s >= 0x20 || *s == '\t')
      fputc(*s, f);
  }
}

/* loss.svg: training and validation loss against the step, with axes,
 * ticks, labels and a legend. Written to a temporary name, then renamed. */
static bool curve_svg(const curve *c, const char *title) {
  char tmp[4200];
  snprintf(tmp, sizeof(tmp), "%s.tmp", c->svg_path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    fprintf(stderr, PROG ": cannot write %s: %s\n", tmp, strerror(errno));
    return false;
  }
  const double W = 760, H = 460, L = 72, R = 24, T = 46, B = 58;
  const double pw = W - L - R, ph = H - T - B;
  double x1 = 1, y0 = INFINITY, y1 = -INFINITY;
  for (size_t i = 0; i < c->n; i++) {
    const row *r = &c->rows[i];
    if ((double)r->step > x1)
      x1 = (double)r->step;
    double v[2] = {r->loss, r->val};
    for (int k = 0; k < 2; k++)
      if (isfinite(v[k])) {
        y0 = v[k] < y0 ? v[k] : y0;
        y1 = v[k] > y1 ? v[k] : y1;
      }
  }
  if (!(y0 <= y1))
    y0 = 0, y1 = 1;
  if (y1 - y0 < 1e-3)
    y0 -= 0.5, y1 += 0.5;
  double ys = nice_step(y1 - y0, 6), xs = nice_step(x1, 7);
  y0 = floor(y0 / ys) * ys;
  y1 = ceil(y1 / ys) * ys;
  double xmax = ceil(x1 / xs) * xs;
#define PX(x) (L + pw * (x) / xmax)
#define PY(y) (T + ph * (1 - ((y)-y0) / (y1 - y0)))
  fprintf(f,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
          "viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" font-size=\"12\">\n"
          "<rect width=\"%g\" height=\"%g\" fill=\"white\"/>\n",
          W, H, W, H, W, H);
  fprintf(f, "<text x=\"%g\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", W / 2);
  xml_text(f, title);
  fprintf(f, "</text>\n<g stroke=\"#dddddd\" stroke-width=\"1\">\n");
  for (double y = y0; y <= y1 + ys * 1e-6; y += ys)
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", L, PY(y), L + pw,
            PY(y));
  for (double x = 0; x <= xmax + xs * 1e-6; x += xs)
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PX(x), T, PX(x),
            T + ph);
  fprintf(f,
          "</g>\n<g stroke=\"black\" stroke-width=\"1\">\n"
          "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\"/>\n"
          "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\"/>\n",
          L, T + ph, L + pw, T + ph, L, T, L, T + ph);
  for (double y = y0; y <= y1 + ys * 1e-6; y += ys)
    fprintf(f, "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\"/>\n", L - 5, PY(y), L, PY(y));
  for (double x = 0; x <= xmax + xs * 1e-6; x += xs)
    fprintf(f, "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\"/>\n", PX(x), T + ph, PX(x),
            T + ph + 5);
  fprintf(f, "</g>\n<g text-anchor=\"end\">\n");
  int ydec = ys >= 1 ? 0 : ys >= 0.1 ? 1 : ys >= 0.01 ? 2 : 3;
  for (double y = y0; y <= y1 + ys * 1e-6; y += ys)
    fprintf(f, "<text x=\"%g\" y=\"%.1f\">%.*f</text>\n", L - 8, PY(y) + 4, ydec, y);
  fprintf(f, "</g>\n<g text-anchor=\"middle\">\n");
  for (double x = 0; x <= xmax + xs * 1e-6; x += xs)
    fprintf(f, "<text x=\"%.1f\" y=\"%g\">%.0f</text>\n", PX(x), T + ph + 19, x);
  fprintf(f,
          "</g>\n<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">step</text>\n"
          "<text x=\"18\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 18 %g)\">"
          "loss (cross-entropy, nats per token)</text>\n",
          L + pw / 2, H - 14, T + ph / 2, T + ph / 2);
  /* the curves */
  const char *colour[2] = {"#1f77b4", "#d62728"};
  for (int k = 0; k < 2; k++) {
    size_t pts = 0;
    for (size_t i = 0; i < c->n; i++) {
      double v = k ? c->rows[i].val : c->rows[i].loss;
      if (!isfinite(v))
        continue;
      if (pts++ == 0)
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" points=\"", colour[k],
                k ? "2" : "1.2");
      fprintf(f, "%.1f,%.1f ", PX((double)c->rows[i].step), PY(v));
    }
    if (pts)
      fprintf(f, "\"/>\n");
    if (k == 1 && pts <= 200)
      for (size_t i = 0; i < c->n; i++)
        if (isfinite(c->rows[i].val))
          fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                  PX((double)c->rows[i].step), PY(c->rows[i].val), colour[1]);
  }
  /* the legend, top right */
  double lx = L + pw - 170, ly = T + 10;
  fprintf(f,
          "<g>\n<rect x=\"%g\" y=\"%g\" width=\"160\" height=\"48\" fill=\"white\" "
          "stroke=\"#999999\"/>\n"
          "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"2\"/>\n"
          "<text x=\"%g\" y=\"%g\">training loss</text>\n"
          "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"2\"/>\n"
          "<circle cx=\"%g\" cy=\"%g\" r=\"3\" fill=\"%s\"/>\n"
          "<text x=\"%g\" y=\"%g\">validation loss</text>\n</g>\n</svg>\n",
          lx, ly, lx + 10, ly + 16, lx + 40, ly + 16, colour[0], lx + 48, ly + 20, lx + 10, ly + 34,
          lx + 40, ly + 34, colour[1], lx + 25, ly + 34, colour[1], lx + 48, ly + 38);
#undef PX
#undef PY
  bool ok = !ferror(f);
  ok = fclose(f) == 0 && ok;
  if (!ok || rename(tmp, c->svg_path) != 0) {
    fprintf(stderr, PROG ": cannot write %s: %s\n", c->svg_path, strerror(errno));
    remove(tmp);
    return false;
  }
  return true;
}

/* "vkformer: 842.5k-parameter GPT on kjv.txt, batch 16 x 128" */
static void plot_title(char *out, size_t cap, const vkf_gpt *model, uint32_t B, uint32_t T) {
  const char *data = o.tokens ? o.tokens : o.data[0], *slash = strrchr(data, '/');
  double n = (double)vkf_gpt_parameter_count(model);
  char count[32];
  if (n >= 1e6)
    snprintf(count, sizeof(count), "%.2fM", n / 1e6);
  else
    snprintf(count, sizeof(count), "%.1fk", n / 1e3);
  snprintf(out, cap, "vkformer: %s-parameter GPT on %s%s, batch %u x %u", count,
           slash ? slash + 1 : data, o.n_data > 1 ? " and more" : "", B, T);
}

/* ------------------------------------------------------------------------ */
/* Run state kept in checkpoints                                            */
/* ------------------------------------------------------------------------ */
typedef struct run {
  vkf_train_desc td;
  uint64_t seed;
  uint32_t val_every, val_batches;
  float val_fraction;
  uint64_t data_tokens;
  double elapsed; /* training time of earlier sessions */
  vkf_rng rng;    /* the batch order */
} run;

#define META_MAX 24

typedef struct meta {
  const char *keys[META_MAX];
  char vals[META_MAX][128];
  const char *vptr[META_MAX];
  uint32_t n;
  char *data_list; /* the data files, newline-separated */
} meta;

static void meta_add(meta *m, const char *key, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  m->keys[m->n] = key;
  vsnprintf(m->vals[m->n], sizeof(m->vals[0]), fmt, ap);
  m->vptr[m->n] = m->vals[m->n];
  m->n++;
  va_end(ap);
}

static bool save_checkpoint(vkf_context *ctx, vkf_trainer *tr, const run *r, double elapsed,
                            const char *path) {
  meta m = {0};
  const vkf_train_desc *d = &r->td;
  meta_add(&m, "train.rng", "%016llx %016llx %016llx %016llx", (unsigned long long)r->rng.s[0],
           (unsigned long long)r->rng.s[1], (unsigned long long)r->rng.s[2],
           (unsigned long long)r->rng.s[3]);
  meta_add(&m, "train.batch", "%u", d->batch);
  meta_add(&m, "train.seq", "%u", d->seq_len);
  meta_add(&m, "train.lr", "%.9g", (double)d->lr);
  meta_add(&m, "train.min_lr", "%.9g", (double)d->min_lr);
  meta_add(&m, "train.warmup", "%u", d->warmup_steps);
  meta_add(&m, "train.total_steps", "%u", d->total_steps);
  meta_add(&m, "train.schedule", "%s", d->schedule == VKF_LR_COSINE ? "cosine" : "constant");
  meta_add(&m, "train.beta1", "%.9g", (double)d->beta1);
  meta_add(&m, "train.beta2", "%.9g", (double)d->beta2);
  meta_add(&m, "train.eps", "%.9g", (double)d->eps);
  meta_add(&m, "train.weight_decay", "%.9g", (double)d->weight_decay);
  meta_add(&m, "train.clip", "%.9g", (double)d->grad_clip);
  meta_add(&m, "train.seed", "%llu", (unsigned long long)r->seed);
  meta_add(&m, "train.val_every", "%u", r->val_every);
  meta_add(&m, "train.val_batches", "%u", r->val_batches);
  meta_add(&m, "train.val_fraction", "%.9g", (double)r->val_fraction);
  meta_add(&m, "train.data_tokens", "%llu", (unsigned long long)r->data_tokens);
  meta_add(&m, "train.elapsed", "%.3f", elapsed);
  meta_add(&m, "train.vocab", "%u", o.tokens ? o.vocab : 0u);
  /* the data files, newline-separated (text) or the token file */
  size_t len = 1;
  for (uint32_t i = 0; i < o.n_data; i++)
    len += strlen(o.data[i]) + 1;
  if (o.tokens)
    len += strlen(o.tokens);
  char *list = calloc(1, len);
  if (!list) {
    fprintf(stderr, PROG ": out of memory\n");
    return false;
  }
  if (o.tokens)
    strcpy(list, o.tokens);
  for (uint32_t i = 0; i < o.n_data; i++) {
    if (i)
      strcat(list, "\n");
    strcat(list, o.data[i]);
  }
  m.keys[m.n] = o.tokens ? "train.tokens" : "train.data";
  m.vptr[m.n++] = list;
  vkf_status st = vkf_trainer_save(tr, path, m.keys, m.vptr, m.n);
  free(list);
  if (st != VKF_OK) {
    smp_report(PROG, ctx, st, "writing the checkpoint");
    return false;
  }
  return true;
}

/* Reads one metadata value of the checkpoint into buf; false with a message. */
static bool meta_get(vkf_context *ctx, const char *path, const char *key, char *buf, size_t cap) {
  vkf_status st = vkf_checkpoint_meta(ctx, path, key, buf, cap);
  if (st != VKF_OK) {
    char what[256];
    snprintf(what, sizeof(what), "%s: not a checkpoint of this program (metadata %s)", path, key);
    smp_report(PROG, ctx, st, what);
    return false;
  }
  return true;
}

static bool meta_num(vkf_context *ctx, const char *path, const char *key, double *out) {
  char buf[64], *end;
  if (!meta_get(ctx, path, key, buf, sizeof(buf)))
    return false;
  *out = strtod(buf, &end);
  if (end == buf || *end) {
    fprintf(stderr, PROG ": %s: metadata %s is malformed: \"%s\"\n", path, key, buf);
    return false;
  }
  return true;
}

/* The run's settings from a checkpoint written by this program. The data
 * paths (when not given again) are returned in *data_list (malloc'd). */
static bool load_run(vkf_context *ctx, const char *path, run *r, char **data_list) {
  double v[17];
  static const char *keys[17] = {"train.batch",        "train.seq",         "train.lr",
                                 "train.min_lr",       "train.warmup",      "train.total_steps",
                                 "train.beta1",        "train.beta2",       "train.eps",
                                 "train.weight_decay", "train.clip",        "train.seed",
                                 "train.val_every",    "train.val_batches", "train.val_fraction",
                                 "train.data_tokens",  "train.elapsed"};
  for (int i = 0; i < 17; i++)
    if (!meta_num(ctx, path, keys[i], &v[i]))
      return false;
  char buf[128];
  if (!meta_get(ctx, path, "train.schedule", buf, sizeof(buf)))
    return false;
  r->td = (vkf_train_desc){.batch = (uint32_t)v[0],
                           .seq_len = (uint32_t)v[1],
                           .lr = (float)v[2],
                           .min_lr = (float)v[3],
                           .warmup_steps = (uint32_t)v[4],
                           .total_steps = (uint32_t)v[5],
                           .schedule = strcmp(buf, "constant") ? VKF_LR_COSINE : VKF_LR_CONSTANT,
                           .beta1 = (float)v[6],
                           .beta2 = (float)v[7],
                           .eps = (float)v[8],
                           .weight_decay = (float)v[9],
                           .grad_clip = (float)v[10]};
  r->seed = (uint64_t)v[11];
  r->val_every = (uint32_t)v[12];
  r->val_batches = (uint32_t)v[13];
  r->val_fraction = (float)v[14];
  r->data_tokens = (uint64_t)v[15];
  r->elapsed = v[16];
  if (!meta_get(ctx, path, "train.rng", buf, sizeof(buf)))
    return false;
  unsigned long long s[4];
  if (sscanf(buf, "%llx %llx %llx %llx", &s[0], &s[1], &s[2], &s[3]) != 4) {
    fprintf(stderr, PROG ": %s: metadata train.rng is malformed\n", path);
    return false;
  }
  for (int i = 0; i < 4; i++)
    r->rng.s[i] = s[i];
  if (!meta_num(ctx, path, "train.vocab", &v[0]))
    return false;
  uint32_t vocab = (uint32_t)v[0];
  size_t cap = 1 << 20;
  *data_list = malloc(cap);
  if (!*data_list)
    return false;
  const char *key = vocab ? "train.tokens" : "train.data";
  if (!meta_get(ctx, path, key, *data_list, cap))
    return false;
  if (o.n_data || o.tokens) { /* given again (moved files): must be the same kind */
    if ((o.tokens != NULL) != (vocab != 0)) {
      fprintf(stderr, PROG ": --resume: the run trained on %s; give the same kind of data\n",
              vocab ? "--tokens" : "--data text");
      return false;
    }
  } else if (vocab) {
    o.tokens = *data_list;
  } else {
    for (char *p = *data_list; p && *p && o.n_data < MAX_DATA;) {
      o.data[o.n_data++] = p;
      p = strchr(p, '\n');
      if (p)
        *p++ = 0;
    }
  }
  if (vocab)
    o.vocab = vocab;
  return true;
}

/* ------------------------------------------------------------------------ */
static volatile sig_atomic_t interrupted = 0;
static void on_sigint(int sig) {
  (void)sig;
  interrupted = 1;
  signal(SIGINT, SIG_DFL); /* a second Ctrl-C ends the program at once */
}

static bool make_dirs(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof(buf), "%s", path);
  for (char *p = buf + 1;; p++) {
    if (*p == '/' || !*p) {
      char c = *p;
      *p = 0;
      if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, PROG ": cannot create the directory %s: %s\n", buf, strerror(errno));
        return false;
      }
      *p = c;
      if (!c)
        break;
    }
  }
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
    fprintf(stderr, PROG ": %s is not a directory\n", path);
    return false;
  }
  return true;
}

static bool parse_kind(const char *opt, const char *text, const char *a, const char *b, int *out) {
  if (!strcmp(text, a))
    *out = 0;
  else if (!strcmp(text, b))
    *out = 1;
  else {
    fprintf(stderr, PROG ": --%s: expected %s or %s, got \"%s\"\n", opt, a, b, text);
    return false;
  }
  return true;
}

/* The model config: --config or the built-in default, with the overrides. */
static bool model_config(vkf_context *ctx, uint32_t vocab, vkf_gpt_config *cfg) {
  if (o.config) {
    vkf_status st = vkf_gpt_config_read(ctx, o.config, cfg);
    if (st != VKF_OK) {
      smp_report(PROG, ctx, st, "--config");
      return false;
    }
  } else {
    *cfg = (vkf_gpt_config){.vocab_size = vocab,
                            .context_length = DEFAULT_CTX,
                            .d_model = DEFAULT_D_MODEL,
                            .n_layer = DEFAULT_LAYERS,
                            .n_head = DEFAULT_HEADS,
                            .positions = VKF_POS_ROPE,
                            .bias = 1};
  }
  if (given("d-model"))
    cfg->d_model = o.d_model;
  if (given("layers"))
    cfg->n_layer = o.layers;
  if (given("heads"))
    cfg->n_head = o.heads;
  if (given("kv-heads"))
    cfg->n_kv_head = o.kv_heads;
  else if (given("heads"))
    cfg->n_kv_head = 0;
  if (given("ctx"))
    cfg->context_length = o.ctx;
  int k;
  if (o.norm) {
    if (!parse_kind("norm", o.norm, "layernorm", "rmsnorm", &k))
      return false;
    cfg->norm = (vkf_norm_kind)k;
  }
  if (o.mlp) {
    if (!parse_kind("mlp", o.mlp, "gelu", "swiglu", &k))
      return false;
    cfg->mlp = (vkf_mlp_kind)k;
    if (!o.config)
      cfg->d_ff = 0;
  }
  if (o.positions) {
    if (!parse_kind("positions", o.positions, "learned", "rope", &k))
      return false;
    cfg->positions = (vkf_pos_kind)k;
  }
  if (cfg->vocab_size < vocab) {
    fprintf(stderr, PROG ": --config: vocab_size %u is smaller than the data's vocabulary %u\n",
            cfg->vocab_size, vocab);
    return false;
  }
  vkf_status st = vkf_gpt_config_resolve(ctx, cfg);
  if (st != VKF_OK) {
    smp_report(PROG, ctx, st, "model config");
    return false;
  }
  return true;
}

static const char *norm_name(vkf_norm_kind k) {
  return k == VKF_NORM_RMSNORM ? "rmsnorm" : "layernorm";
}

/* Mean loss over the validation windows. */
static vkf_status evaluate(vkf_trainer *tr, vkf_dataset *ds, const run *r, int32_t *in, int32_t *tg,
                           double *out) {
  double sum = 0;
  for (uint32_t i = 0; i < r->val_batches; i++) {
    vkf_status st = vkf_dataset_window(ds, VKF_SPLIT_VAL, i, r->td.batch, r->td.seq_len, in, tg);
    float loss = NAN;
    if (st == VKF_OK)
      st = vkf_trainer_eval(tr, in, tg, &loss);
    if (st != VKF_OK)
      return st;
    sum += loss;
  }
  *out = sum / r->val_batches;
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* The reference dump (--dump)                                              */
/* ------------------------------------------------------------------------ */
typedef struct dump {
  uint32_t steps;
  int32_t *inputs, *targets; /* [steps, B, T] */
  float *logits, *grads, *losses, loss1;
} dump;

static bool dump_write(vkf_context *ctx, vkf_gpt *model, const dump *d, const run *r) {
  const uint32_t B = r->td.batch, T = r->td.seq_len, V = vkf_gpt_config_of(model)->vocab_size;
  const uint32_t n_t = vkf_gpt_tensor_count(model);
  uint64_t flat = vkf_gpt_flat_size(model);
  float *final = malloc(flat * sizeof(float));
  vkf_named_array *arr = calloc(5 + 2 * (size_t)n_t, sizeof(*arr));
  char(*names)[160] = calloc(2 * (size_t)n_t, sizeof(*names));
  if (!final || !arr || !names) {
    fprintf(stderr, PROG ": out of memory\n");
    free(final), free(arr), free(names);
    return false;
  }
  vkf_status st = vkf_gpt_read_params(model, final, flat);
  uint32_t n = 0;
  arr[n++] = (vkf_named_array){"logits", VKF_DTYPE_F32, 3, {B, T, V}, d->logits};
  arr[n++] = (vkf_named_array){"loss", VKF_DTYPE_F32, 1, {1}, &d->loss1};
  arr[n++] = (vkf_named_array){"losses", VKF_DTYPE_F32, 1, {d->steps}, d->losses};
  arr[n++] = (vkf_named_array){"inputs", VKF_DTYPE_I32, 3, {d->steps, B, T}, d->inputs};
  arr[n++] = (vkf_named_array){"targets", VKF_DTYPE_I32, 3, {d->steps, B, T}, d->targets};
  for (uint32_t i = 0; i < n_t && st == VKF_OK; i++) {
    vkf_gpt_tensor info;
    st = vkf_gpt_tensor_info(model, i, &info);
    if (st != VKF_OK)
      break;
    for (int k = 0; k < 2; k++) {
      char *nm = names[2 * i + k];
      snprintf(nm, sizeof(names[0]), "%s%s", k ? "final." : "grad.", info.name);
      arr[n] = (vkf_named_array){
          nm, VKF_DTYPE_F32, info.ndim, {0}, (k ? final : d->grads) + info.offset};
      memcpy(arr[n].shape, info.shape, sizeof(info.shape));
      n++;
    }
  }
  meta m = {0};
  meta_add(&m, "steps", "%u", d->steps);
  meta_add(&m, "lr", "%.9g", (double)r->td.lr);
  meta_add(&m, "beta1", "%.9g", (double)r->td.beta1);
  meta_add(&m, "beta2", "%.9g", (double)r->td.beta2);
  meta_add(&m, "eps", "%.9g", (double)r->td.eps);
  meta_add(&m, "weight_decay", "%.9g", (double)r->td.weight_decay);
  meta_add(&m, "grad_clip", "%.9g", (double)r->td.grad_clip);
  if (st == VKF_OK)
    st = vkf_safetensors_write(ctx, o.dump, arr, n, m.keys, m.vptr, m.n);
  free(final), free(arr), free(names);
  if (st != VKF_OK) {
    smp_report(PROG, ctx, st, "--dump");
    return false;
  }
  printf("dump: %u steps written to %s\n", d->steps, o.dump);
  return true;
}

/* ------------------------------------------------------------------------ */
static bool on_token(void *user, int32_t token) {
  smp_print_token(token, *(bool *)user);
  return !interrupted;
}

static void print_sample(vkf_context *ctx, vkf_gpt *model, bool byte_level, uint64_t seed) {
  const vkf_gpt_config *cfg = vkf_gpt_config_of(model);
  int32_t *prompt;
  uint32_t n_prompt;
  const char *text = o.prompt ? o.prompt : byte_level ? "And it came to pass" : "";
  if (!smp_encode_prompt(PROG, text, byte_level, cfg->vocab_size, &prompt, &n_prompt))
    return;
  vkf_sample_desc sd = {.temperature = given("temperature") ? o.temperature : DEFAULT_TEMPERATURE,
                        .top_k = o.top_k,
                        .top_p = given("top-p") ? o.top_p : 0.95f};
  printf("\n--- sample: %u tokens, temperature %g, top-k %u, top-p %g ---\n", o.sample_tokens,
         (double)sd.temperature, sd.top_k, (double)sd.top_p);
  if (byte_level)
    fwrite(text, 1, strlen(text), stdout);
  else
    for (uint32_t i = 0; i < n_prompt; i++)
      smp_print_token(prompt[i], false);
  fflush(stdout);
  vkf_rng rng;
  vkf_rng_seed(&rng, seed ^ 0x5eed5eedull);
  uint32_t made = 0;
  double t0 = smp_now();
  vkf_status st = smp_generate(model, prompt, n_prompt, o.sample_tokens, &sd, &rng, on_token,
                               &byte_level, &made);
  double dt = smp_now() - t0;
  printf("\n---\n");
  if (st != VKF_OK)
    smp_report(PROG, ctx, st, "generating the sample");
  else
    printf("sample: %u tokens in %.1f s (%.1f tokens/s)\n", made, dt, made / (dt > 0 ? dt : 1));
  free(prompt);
}

static int by_time(const void *a, const void *b) {
  const vkf_op_time *x = a, *y = b;
  return x->total_ms < y->total_ms ? 1 : x->total_ms > y->total_ms ? -1 : 0;
}

static void print_profile(vkf_context *ctx) {
  vkf_op_time times[128];
  uint32_t n = 0;
  vkf_status st = vkf_profile_read(ctx, times, 128, &n);
  if (st != VKF_OK) {
    smp_report(PROG, ctx, st, "--profile");
    return;
  }
  n = n > 128 ? 128 : n;
  qsort(times, n, sizeof(times[0]), by_time);
  double sum = 0;
  for (uint32_t i = 0; i < n; i++)
    sum += times[i].total_ms;
  printf("device time per op (all steps and evaluations): %.1f ms\n", sum);
  for (uint32_t i = 0; i < n; i++)
    printf("  %-24s %8u runs %10.1f ms  %5.1f%%\n", times[i].name, times[i].count,
           times[i].total_ms, sum > 0 ? 100 * times[i].total_ms / sum : 0);
}

/* ------------------------------------------------------------------------ */
int main(int argc, char **argv) {
  int pr = parse_args(argc, argv);
  if (pr)
    return pr == 1 ? 0 : 2;

  /* ---- what goes with what ---- */
  const bool resuming = o.resume != NULL;
  for (size_t i = 0; i < N_OPTDEFS; i++) {
    const optdef *d = &optdefs[i];
    if (resuming && d->given && d->cls != SESSION && strcmp(d->name, "data") &&
        strcmp(d->name, "tokens")) {
      fprintf(stderr,
              PROG ": --%s cannot be used with --resume: the run's settings come from the "
                   "checkpoint (start a new run from its weights with --init DIR instead)\n",
              d->name);
      return 2;
    }
    if (o.init && d->given && d->cls == MODEL) {
      fprintf(stderr, PROG ": --%s cannot be used with --init: the model comes from %s\n", d->name,
              o.init);
      return 2;
    }
  }
  if (o.tokens && o.n_data) {
    fprintf(stderr, PROG ": --data and --tokens cannot be used together\n");
    return 2;
  }
  if (!resuming && (o.tokens != NULL) != given("vocab")) {
    fprintf(stderr, PROG ": --tokens and --vocab go together\n");
    return 2;
  }
  if (given("dump-steps") && !o.dump) {
    fprintf(stderr, PROG ": --dump-steps needs --dump FILE\n");
    return 2;
  }
  if (o.dump) {
    if ((o.schedule && strcmp(o.schedule, "constant")) || o.warmup) {
      fprintf(stderr, PROG ": --dump replays a constant learning rate: use --schedule constant "
                           "and --warmup 0 (the defaults with --dump)\n");
      return 2;
    }
    if (!o.dump_steps)
      o.dump_steps = 3;
    if (given("steps") && o.steps < o.dump_steps) {
      fprintf(stderr, PROG ": --steps %u is fewer than --dump-steps %u\n", o.steps, o.dump_steps);
      return 2;
    }
    if (!given("steps"))
      o.steps = o.dump_steps;
    if (given("time")) {
      fprintf(stderr, PROG ": --dump runs a fixed number of steps: no --time\n");
      return 2;
    }
  }
  int sched = 0;
  if (o.schedule && !parse_kind("schedule", o.schedule, "cosine", "constant", &sched))
    return 2;
  if (o.dump)
    sched = VKF_LR_CONSTANT;
  if (given("min-lr") && o.min_lr > (given("lr") ? o.lr : DEFAULT_LR)) {
    fprintf(stderr, PROG ": --min-lr %g is above the peak learning rate\n", (double)o.min_lr);
    return 2;
  }
  if (!o.out)
    o.out = "out/kjv";
  if (!given("sample-tokens"))
    o.sample_tokens = o.dump ? 0 : 400;
  if (!given("val-batches"))
    o.val_batches = 4;
  if (!given("val-fraction"))
    o.val_fraction = 0.05f;

  /* ---- the device ---- */
  smp_log log = {.prog = PROG, .verbose = o.verbose};
  vkf_context_desc cd = {.device = o.device,
                         .cpu_threads = o.threads,
                         .log_fn = smp_log_fn,
                         .log_user = &log,
                         .log_level = o.verbose ? VKF_LOG_DEBUG : VKF_LOG_INFO,
                         .flags = o.profile ? VKF_CONTEXT_PROFILE : 0};
  vkf_context *ctx = NULL;
  vkf_status st = vkf_context_create(&cd, &ctx);
  if (st != VKF_OK) {
    fprintf(stderr, PROG ": cannot create a context on %s: %s\n",
            o.device ? o.device : "the default device", vkf_status_name(st));
    return 1;
  }
  int rc = 1;
  vkf_device_info dev;
  vkf_context_device(ctx, &dev);
  run r = {0};
  char *data_list = NULL;
  vkf_dataset *ds = NULL;
  vkf_gpt *model = NULL;
  vkf_trainer *tr = NULL;
  curve cv = {0};
  dump dmp = {0};
  int32_t *in = NULL, *tg = NULL;
  char ckpt_path[4096];

  if (resuming && !load_run(ctx, o.resume, &r, &data_list))
    goto done;

  /* ---- data ---- */
  if (!o.tokens && !o.n_data)
    o.data[o.n_data++] = DEFAULT_DATA;
  const float val_fraction = resuming ? r.val_fraction : o.val_fraction;
  if (o.tokens)
    st = vkf_dataset_open_tokens(ctx, o.tokens, o.vocab, val_fraction, &ds);
  else
    st = vkf_dataset_open_text(ctx, o.data, o.n_data, val_fraction, &ds);
  if (st != VKF_OK) {
    smp_report(PROG, ctx, st, "reading the data");
    if (!o.tokens && !given("data") && !resuming)
      fprintf(stderr, PROG ": the default data is the King James Bible in " DEFAULT_DATA
                           ": scripts/run-sample.sh extracts it (or pass --data FILE)\n");
    goto done;
  }
  const bool byte_level = o.tokens == NULL;
  const uint32_t data_vocab = byte_level ? 256 : o.vocab;
  const uint64_t n_train = vkf_dataset_size(ds, VKF_SPLIT_TRAIN),
                 n_val = vkf_dataset_size(ds, VKF_SPLIT_VAL);
  if (resuming && n_train + n_val != r.data_tokens) {
    fprintf(stderr, PROG ": --resume: the data has %llu tokens, the run's had %llu\n",
            (unsigned long long)(n_train + n_val), (unsigned long long)r.data_tokens);
    goto done;
  }

  /* ---- the model ---- */
  if (resuming) {
    st = vkf_gpt_load_checkpoint(ctx, o.resume, &model);
  } else if (o.init) {
    char cp[4096], wp[4096];
    snprintf(cp, sizeof(cp), "%s/config.json", o.init);
    snprintf(wp, sizeof(wp), "%s/model.safetensors", o.init);
    st = vkf_gpt_load(ctx, cp, wp, &model);
  } else {
    vkf_gpt_config cfg;
    if (!model_config(ctx, data_vocab, &cfg))
      goto done;
    st = vkf_gpt_create(ctx, &cfg, given("seed") ? o.seed : 1, &model);
  }
  if (st != VKF_OK) {
    smp_report(PROG, ctx, st,
               resuming ? "loading the checkpoint"
               : o.init ? "loading --init"
                        : "creating the model");
    goto done;
  }
  const vkf_gpt_config *cfg = vkf_gpt_config_of(model);
  if (cfg->vocab_size < data_vocab) {
    fprintf(stderr, PROG ": the model's vocabulary (%u) is smaller than the data's (%u)\n",
            cfg->vocab_size, data_vocab);
    goto done;
  }
  if (o.save_init) {
    char cp[4096], wp[4096];
    snprintf(cp, sizeof(cp), "%s/config.json", o.save_init);
    snprintf(wp, sizeof(wp), "%s/model.safetensors", o.save_init);
    if (!make_dirs(o.save_init))
      goto done;
    st = vkf_gpt_save(model, cp, wp);
    if (st != VKF_OK) {
      smp_report(PROG, ctx, st, "--save-init");
      goto done;
    }
  }

  /* ---- the run's settings ---- */
  const bool time_mode = !resuming && !given("steps") && !o.dump;
  double budget = given("time") ? o.time_s : time_mode ? DEFAULT_TIME : 0;
  if (!resuming) {
    r.seed = given("seed") ? o.seed : 1;
    r.val_fraction = o.val_fraction;
    r.val_batches = o.val_batches;
    r.data_tokens = n_train + n_val;
    vkf_rng_seed(&r.rng, r.seed);
    uint32_t total = time_mode ? 1000000 : o.steps;
    uint32_t warmup = given("warmup") ? o.warmup : o.dump ? 0 : time_mode ? 20 : total / 10;
    if (!given("warmup") && warmup > 20)
      warmup = 20;
    float lr = given("lr") ? o.lr : DEFAULT_LR;
    r.td = (vkf_train_desc){.batch = given("batch") ? o.batch : DEFAULT_BATCH,
                            .seq_len = given("seq") ? o.seq : cfg->context_length,
                            .lr = lr,
                            .min_lr = given("min-lr") ? o.min_lr : lr / 10,
                            .warmup_steps = warmup,
                            .total_steps = total,
                            .schedule = (vkf_lr_schedule)sched,
                            .beta1 = given("beta1") ? o.beta1 : 0.9f,
                            .beta2 = given("beta2") ? o.beta2 : 0.99f,
                            .eps = given("eps") ? o.eps : 1e-8f,
                            .weight_decay = given("weight-decay") ? o.weight_decay : 0.1f,
                            .grad_clip = given("clip") ? o.clip : 1.0f};
    r.val_every = o.val_every; /* 0 = decided with the length */
  }
  if (r.td.seq_len > cfg->context_length) {
    fprintf(stderr, PROG ": --seq %u exceeds the model's context length %u\n", r.td.seq_len,
            cfg->context_length);
    goto done;
  }
  if (n_train < (uint64_t)r.td.seq_len + 1) {
    fprintf(stderr, PROG ": the training split has %llu tokens, fewer than --seq + 1 = %u\n",
            (unsigned long long)n_train, r.td.seq_len + 1);
    goto done;
  }
  const bool validate = n_val > 0;
  if (validate && n_val < (uint64_t)r.td.seq_len + 1) {
    fprintf(stderr,
            PROG ": the validation split has %llu tokens, fewer than --seq + 1 = %u: raise "
                 "--val-fraction (or 0 for none)\n",
            (unsigned long long)n_val, r.td.seq_len + 1);
    goto done;
  }
  if (o.dump)
    r.td.flags |= VKF_TRAIN_KEEP_LOGITS;
  st = vkf_trainer_create(model, &r.td, &tr);
  if (st == VKF_OK && resuming)
    st = vkf_trainer_load(tr, o.resume);
  if (st != VKF_OK) {
    smp_report(PROG, ctx, st, resuming ? "restoring the checkpoint" : "creating the trainer");
    goto done;
  }
  const uint32_t B = r.td.batch, T = r.td.seq_len;
  const uint64_t start = vkf_trainer_steps(tr);
  if (resuming && start >= r.td.total_steps) {
    fprintf(stderr, PROG ": %s: the run already finished its %u steps\n", o.resume,
            r.td.total_steps);
    goto done;
  }
  if (o.stop_at && o.stop_at <= start) {
    fprintf(stderr, PROG ": --stop-at %u: the run is already at step %llu\n", o.stop_at,
            (unsigned long long)start);
    goto done;
  }
  in = malloc((size_t)B * T * sizeof(int32_t));
  tg = malloc((size_t)B * T * sizeof(int32_t));
  if (o.dump) {
    const uint32_t V = cfg->vocab_size;
    const uint64_t flat = vkf_gpt_flat_size(model);
    dmp.steps = o.dump_steps;
    dmp.inputs = malloc((size_t)dmp.steps * B * T * sizeof(int32_t));
    dmp.targets = malloc((size_t)dmp.steps * B * T * sizeof(int32_t));
    dmp.logits = malloc((size_t)B * T * V * sizeof(float));
    dmp.grads = malloc(flat * sizeof(float));
    dmp.losses = malloc(dmp.steps * sizeof(float));
    if (!dmp.inputs || !dmp.targets || !dmp.logits || !dmp.grads || !dmp.losses) {
      fprintf(stderr, PROG ": out of memory for --dump\n");
      goto done;
    }
  }
  if (!in || !tg) {
    fprintf(stderr, PROG ": out of memory\n");
    goto done;
  }
  if (!make_dirs(o.out) || !curve_open(&cv, o.out, start))
    goto done;
  snprintf(ckpt_path, sizeof(ckpt_path), "%s/checkpoint.safetensors", o.out);

  vkf_train_memory mem;
  vkf_trainer_memory(tr, &mem);
  printf("device: %s (%s)\n", dev.name, dev.driver_info[0] ? dev.driver_info : dev.driver_name);
  printf("model: %llu parameters: d_model %u, %u layers, %u heads (%u kv), context %u, %s, %s, "
         "%s positions, vocabulary %u\n",
         (unsigned long long)vkf_gpt_parameter_count(model), cfg->d_model, cfg->n_layer,
         cfg->n_head, cfg->n_kv_head, cfg->context_length, norm_name(cfg->norm),
         cfg->mlp == VKF_MLP_SWIGLU ? "swiglu" : "gelu",
         cfg->positions == VKF_POS_ROPE ? "rope" : "learned", cfg->vocab_size);
  printf("data: %llu training and %llu validation tokens (%s%s)\n", (unsigned long long)n_train,
         (unsigned long long)n_val, o.tokens ? o.tokens : o.data[0],
         o.n_data > 1 ? " and more" : "");
  printf("training: batch %u x %u tokens, lr %g (%s, warm-up %u, min %g), AdamW betas %g %g, "
         "weight decay %g, clip %g; %.1f MiB of device memory per step\n",
         B, T, (double)r.td.lr, r.td.schedule == VKF_LR_COSINE ? "cosine" : "constant",
         r.td.warmup_steps, (double)r.td.min_lr, (double)r.td.beta1, (double)r.td.beta2,
         (double)r.td.weight_decay, (double)r.td.grad_clip, mem.total / 1048576.0);
  if (resuming)
    printf("resuming %s at step %llu of %u\n", o.resume, (unsigned long long)start,
           r.td.total_steps);
  else if (time_mode)
    printf("time budget %.0f s: the first %d steps are timed to set the schedule's length\n",
           budget, MEASURE_STEPS);
  fflush(stdout);

  signal(SIGINT, on_sigint);
  const double t0 = smp_now();
  double last_log_t = t0, val_time = 0;
  uint64_t last_log_step = start, total = r.td.total_steps;
  uint32_t val_every = r.val_every, log_every = o.log_every;
  if (!time_mode) {
    if (!val_every)
      val_every = r.val_every = (uint32_t)(total / 10 > 0 ? total / 10 : 1);
    if (!log_every)
      log_every = (uint32_t)(total / 40 > 0 ? total / 40 : 1);
  } else {
    log_every = log_every ? log_every : 1;
  }
  double last_val = NAN;
  if (validate && start == 0) {
    double te = smp_now();
    st = evaluate(tr, ds, &r, in, tg, &last_val);
    if (st != VKF_OK) {
      smp_report(PROG, ctx, st, "validation");
      goto done;
    }
    val_time = smp_now() - te;
    printf("step %6u  validation loss %.4f (%.1f s)\n", 0, last_val, val_time);
    row r0 = {0, NAN, last_val, NAN, NAN, NAN, r.elapsed + val_time};
    curve_add(&cv, &r0);
  }
  double t_first = 0, stop_at = INFINITY;
  uint32_t retime_every = 0;
  if (!time_mode && budget > 0)
    stop_at = budget;
  bool stopped_by_time = false;
  uint64_t step = start;
  while (step < total) {
    if (interrupted || (o.stop_at && step >= o.stop_at))
      break;
    double ts = smp_now();
    if (ts - t0 >= stop_at) {
      stopped_by_time = true;
      break;
    }
    st = vkf_dataset_batch(ds, VKF_SPLIT_TRAIN, &r.rng, B, T, in, tg);
    vkf_step_info info;
    if (st == VKF_OK)
      st = vkf_trainer_step(tr, in, tg, &info);
    if (st != VKF_OK) {
      smp_report(PROG, ctx, st, "training step");
      goto done;
    }
    step = info.step;
    double te = smp_now(), dt = te - ts;
    if (!isfinite(info.loss)) {
      fprintf(stderr,
              PROG ": the loss is not finite at step %llu (lr %g, gradient norm %g): try a lower "
                   "--lr\n",
              (unsigned long long)step, (double)info.lr, (double)info.grad_norm);
      goto done;
    }
    if (o.dump && step <= dmp.steps) {
      size_t k = (size_t)(step - 1) * B * T;
      memcpy(dmp.inputs + k, in, (size_t)B * T * sizeof(int32_t));
      memcpy(dmp.targets + k, tg, (size_t)B * T * sizeof(int32_t));
      dmp.losses[step - 1] = info.loss;
      if (step == 1) {
        dmp.loss1 = info.loss;
        st = vkf_trainer_read_logits(tr, dmp.logits, (uint64_t)B * T * cfg->vocab_size);
        if (st == VKF_OK)
          st = vkf_trainer_read_grads(tr, dmp.grads, vkf_gpt_flat_size(model));
        if (st != VKF_OK) {
          smp_report(PROG, ctx, st, "--dump");
          goto done;
        }
      }
      if (step == dmp.steps && !dump_write(ctx, model, &dmp, &r))
        goto done;
    }
    if (step == start + 1)
      t_first = te;
    /* a time budget: fix the schedule's length from the measured steps */
    if (time_mode && step == start + MEASURE_STEPS) {
      double per_step = (te - t_first) / (MEASURE_STEPS - 1);
      double per_eval = validate && val_time > 0 ? val_time : 0;
      double left = budget - (te - t0);
      /* about 10 evaluations over the run (each costs per_eval) and the final one;
       * but the first evaluation's time includes creating its pipelines (a cold
       * cache: seconds on lavapipe), so plan at least half of what is left for
       * steps: the refits below follow the real pace, evaluations included */
      double steps_left = (left - 11 * per_eval) / per_step;
      if (steps_left < 0.5 * left / per_step)
        steps_left = 0.5 * left / per_step;
      if (steps_left < 0)
        steps_left = 0;
      total = step + (uint64_t)steps_left;
      if (total > INT32_MAX)
        total = INT32_MAX;
      r.td.total_steps = (uint32_t)total;
      st = vkf_trainer_set_total_steps(tr, (uint32_t)total);
      if (st != VKF_OK) {
        smp_report(PROG, ctx, st, "setting the schedule");
        goto done;
      }
      if (!val_every)
        val_every = r.val_every = (uint32_t)(total / 10 > 0 ? total / 10 : 1);
      if (!o.log_every)
        log_every = (uint32_t)(total / 40 > 0 ? total / 40 : 1);
      retime_every = (uint32_t)(total / 20 > 0 ? total / 20 : 1);
      printf("%.3f s per step: %llu steps fit in %.0f s; cosine schedule over %llu steps\n",
             per_step, (unsigned long long)total, budget, (unsigned long long)total);
      stop_at = budget * 1.25 + 10; /* far slower than measured: stop anyway */
    } else if (time_mode && retime_every && step % retime_every == 0 && step < total) {
      /* the machine's speed changes (other work on it): refit the length to
       * the average pace so far, evaluations included */
      double pace = (te - t_first) / (double)(step - start - 1);
      double left = budget - (te - t0) - val_time;
      uint64_t fit = step + (left > pace ? (uint64_t)(left / pace) : 1);
      if (fit > INT32_MAX)
        fit = INT32_MAX;
      if (fit != total) {
        total = fit;
        r.td.total_steps = (uint32_t)total;
        st = vkf_trainer_set_total_steps(tr, (uint32_t)total);
        if (st != VKF_OK) {
          smp_report(PROG, ctx, st, "setting the schedule");
          goto done;
        }
      }
    } else if (time_mode && step < start + MEASURE_STEPS && te - t0 > budget) {
      total = step; /* the budget ran out while measuring */
      r.td.total_steps = (uint32_t)total;
      vkf_trainer_set_total_steps(tr, (uint32_t)total);
    }
    row rw = {
        step, info.loss, NAN, info.lr, info.grad_norm, (double)B * T / dt, r.elapsed + (te - t0)};
    bool last = step == total;
    if (validate && val_every && (step % val_every == 0 || last)) {
      double tv = smp_now();
      st = evaluate(tr, ds, &r, in, tg, &last_val);
      if (st != VKF_OK) {
        smp_report(PROG, ctx, st, "validation");
        goto done;
      }
      rw.val = last_val;
      rw.elapsed = r.elapsed + (smp_now() - t0);
      val_time = smp_now() - tv;
    }
    curve_add(&cv, &rw);
    if (step % log_every == 0 || last || isfinite(rw.val)) {
      double now = smp_now(), span = now - last_log_t;
      uint64_t n = step - last_log_step;
      char el[32], eta[32], vs[32] = "";
      smp_format_time(r.elapsed + now - t0, el, sizeof(el));
      if (time_mode && step < start + MEASURE_STEPS)
        snprintf(eta, sizeof(eta), "(measuring)");
      else
        smp_format_time(n ? span / n * (double)(total - step) : 0, eta, sizeof(eta));
      if (isfinite(rw.val))
        snprintf(vs, sizeof(vs), "  val %.4f", rw.val);
      printf("step %6llu/%llu  loss %.4f%s  lr %.2e  %7.0f tok/s  elapsed %s  ETA %s\n",
             (unsigned long long)step, (unsigned long long)total, info.loss, vs, (double)info.lr,
             n && span > 0 ? (double)n * B * T / span : 0.0, el, eta);
      fflush(stdout);
      last_log_t = now;
      last_log_step = step;
    }
    if (o.save_every && step % o.save_every == 0 && !last) {
      if (!save_checkpoint(ctx, tr, &r, r.elapsed + smp_now() - t0, ckpt_path))
        goto done;
      char title[512];
      plot_title(title, sizeof(title), model, B, T);
      curve_svg(&cv, title);
    }
  }
  const double train_time = smp_now() - t0;
  if (o.profile)
    print_profile(ctx);

  /* ---- outputs ---- */
  if (!save_checkpoint(ctx, tr, &r, r.elapsed + train_time, ckpt_path))
    goto done;
  char cp[4096], wp[4096], title[512];
  snprintf(cp, sizeof(cp), "%s/config.json", o.out);
  snprintf(wp, sizeof(wp), "%s/model.safetensors", o.out);
  st = vkf_gpt_save(model, cp, wp);
  if (st != VKF_OK) {
    smp_report(PROG, ctx, st, "saving the model");
    goto done;
  }
  plot_title(title, sizeof(title), model, B, T);
  if (!curve_svg(&cv, title))
    goto done;
  char el[32];
  smp_format_time(train_time, el, sizeof(el));
  printf("trained %llu steps in %s (%.0f tokens/s)", (unsigned long long)(step - start), el,
         (double)(step - start) * B * T / (train_time > 0 ? train_time : 1));
  if (validate)
    printf(", validation loss %.4f", last_val);
  printf("\nwrote %s, %s, %s, %s and %s\n", ckpt_path, cv.csv_path, cv.svg_path, cp, wp);
  if (interrupted || stopped_by_time || step < total) {
    printf("stopped at step %llu of %llu (%s): --resume %s continues\n", (unsigned long long)step,
           (unsigned long long)total,
           interrupted       ? "interrupted"
           : stopped_by_time ? "time limit"
                             : "--stop-at",
           ckpt_path);
    rc = interrupted ? 130 : 0;
    goto done;
  }
  if (o.sample_tokens)
    print_sample(ctx, model, byte_level, r.seed);
  rc = 0;

done:
  if (cv.csv)
    fclose(cv.csv);
  free(cv.rows);
  free(in);
  free(tg);
  free(dmp.inputs);
  free(dmp.targets);
  free(dmp.logits);
  free(dmp.grads);
  free(dmp.losses);
  vkf_trainer_destroy(tr);
  vkf_gpt_destroy(model);
  vkf_dataset_destroy(ds);
  free(data_list);
  vkf_context_destroy(ctx);
  if (log.validation_messages) {
    fprintf(stderr, PROG ": %u validation-layer message(s)\n", log.validation_messages);
    if (rc == 0)
      rc = 1;
  }
  return rc;
}
