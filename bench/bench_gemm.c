/*
 * bench_gemm: matmul throughput of vkformer's Vulkan and CPU backends against
 * OpenBLAS sgemm called directly, in the same process.
 *
 * Shapes are written M x K x N (c[M,N] = a[M,K] . b[K,N]), batched ones
 * B x M x K x N. For each shape and engine the bench calibrates a number of
 * back-to-back calls that takes about --min-time seconds, then times --reps
 * such batches and reports the median per-call time as GFLOP/s (2*B*M*N*K
 * flops per call). Vulkan is timed on the host: the calls are recorded, then
 * vkf_synchronize() waits for them. The kernel column is the device time of
 * the matmul kernels alone, from GPU timestamps (a second context created with
 * VKF_CONTEXT_PROFILE). Every result is checked against OpenBLAS (or, without
 * it, the CPU backend); "err" is max|x - ref| / max|ref|.
 *
 * Without a Vulkan device it measures the CPU backend and OpenBLAS only.
 */
#include <vkformer.h>

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef BENCH_HAVE_OPENBLAS
#include <cblas.h>
#endif

typedef struct shape {
  char name[48];
  uint32_t batch, M, K, N;
  uint32_t flags; /* VKF_MATMUL_TRANS_A / _B */
  bool b_shared;  /* one b for the whole batch */
} shape;

typedef struct options {
  const char *device;
  uint32_t reps, threads;
  double min_time;
  bool quick, no_vulkan, no_cpu, no_blas, no_kernel, mix;
  const char *layout; /* for the transformer shapes */
  shape custom[32];
  uint32_t n_custom;
} options;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, vkf_context *ctx, vkf_status st) {
  fprintf(stderr, "bench_gemm: %s: %s (%s)\n", what, vkf_status_name(st),
          ctx ? vkf_context_error(ctx) : "");
  exit(1);
}
#define CHECK(ctx, expr)                                                                           \
  do {                                                                                             \
    vkf_status st_ = (expr);                                                                       \
    if (st_ != VKF_OK)                                                                             \
      die(#expr, ctx, st_);                                                                        \
  } while (0)

static void *xmalloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (!p) {
    fprintf(stderr, "bench_gemm: out of memory (%zu bytes)\n", bytes);
    exit(1);
  }
  return p;
}

static void fill_random(float *x, size_t n, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x[i] = (float)((double)(s >> 40) / (double)(1ull << 24) * 2.0 - 1.0);
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, uint32_t n) {
  qsort(v, n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double flops_of(const shape *s) {
  return 2.0 * s->batch * (double)s->M * (double)s->N * (double)s->K;
}

/* Let spinning library threads (OpenBLAS waits ~0.1 s for more work before
 * it sleeps) go idle so that each measurement starts on a quiet machine. */
static void settle(void) {
  usleep(200 * 1000);
}

/* ---- one engine: something that runs the product `iters` times ---- */
typedef struct engine {
  void (*run)(void *self, uint32_t iters);
  void *self;
} engine;

/* Calibrates the call count, then returns the median seconds per call. */
static double time_engine(const engine *e, const options *o, uint32_t *iters_out) {
  double t0 = now_s();
  e->run(e->self, 1); /* warm-up: pipelines, first-touch, thread start */
  double t1 = now_s() - t0;
  t0 = now_s();
  e->run(e->self, 1);
  t1 = now_s() - t0;
  uint32_t iters = t1 > 0 ? (uint32_t)ceil(o->min_time / t1) : 1000;
  if (iters < 1)
    iters = 1;
  if (iters > 10000)
    iters = 10000;
  double per[64];
  uint32_t reps = o->reps < 64 ? o->reps : 64;
  for (uint32_t r = 0; r < reps; r++) {
    t0 = now_s();
    e->run(e->self, iters);
    per[r] = (now_s() - t0) / iters;
  }
  *iters_out = iters;
  return median(per, reps);
}

/* ---- OpenBLAS directly ---- */
#ifdef BENCH_HAVE_OPENBLAS
typedef struct blas_run {
  const shape *s;
  const float *a, *b;
  float *c;
} blas_run;

static void blas_call(void *self, uint32_t iters) {
  const blas_run *r = self;
  const shape *s = r->s;
  bool ta = s->flags & VKF_MATMUL_TRANS_A, tb = s->flags & VKF_MATMUL_TRANS_B;
  int lda = (int)(ta ? s->M : s->K), ldb = (int)(tb ? s->K : s->N);
  for (uint32_t it = 0; it < iters; it++)
    for (uint32_t z = 0; z < s->batch; z++)
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                  (int)s->M, (int)s->N, (int)s->K, 1.0f, r->a + (size_t)z * s->M * s->K, lda,
                  r->b + (s->b_shared ? 0 : (size_t)z * s->K * s->N), ldb, 0.0f,
                  r->c + (size_t)z * s->M * s->N, (int)s->N);
}
#endif

/* ---- vkformer (either backend) ---- */
typedef struct vkf_run {
  vkf_context *ctx;
  vkf_tensor a, b, c;
  uint32_t flags;
} vkf_run;

static void vkf_call(void *self, uint32_t iters) {
  vkf_run *r = self;
  for (uint32_t it = 0; it < iters; it++)
    CHECK(r->ctx, vkf_matmul(r->ctx, r->c, r->a, r->b, VKF_NO_TENSOR, r->flags));
  CHECK(r->ctx, vkf_synchronize(r->ctx));
}

static void vkf_setup(vkf_context *ctx, const shape *s, const float *a, const float *b,
                      vkf_run *out) {
  bool ta = s->flags & VKF_MATMUL_TRANS_A, tb = s->flags & VKF_MATMUL_TRANS_B;
  int64_t sa[3] = {s->batch, ta ? s->K : s->M, ta ? s->M : s->K};
  int64_t sb[3] = {s->batch, tb ? s->N : s->K, tb ? s->K : s->N};
  int64_t sc[3] = {s->batch, s->M, s->N};
  uint32_t nd = s->batch > 1 ? 3 : 2, o = s->batch > 1 ? 0 : 1;
  uint32_t ndb = s->b_shared ? 2 : nd, ob = s->b_shared ? 1 : o;
  out->ctx = ctx;
  out->flags = s->flags;
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, nd, sa + o, &out->a));
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, ndb, sb + ob, &out->b));
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, nd, sc + o, &out->c));
  size_t na = (size_t)s->batch * s->M * s->K;
  size_t nb = (size_t)(s->b_shared ? 1 : s->batch) * s->K * s->N;
  CHECK(ctx, vkf_tensor_write(ctx, out->a, a, na * sizeof(float)));
  CHECK(ctx, vkf_tensor_write(ctx, out->b, b, nb * sizeof(float)));
}

static void vkf_teardown(vkf_run *r) {
  vkf_tensor_destroy(r->ctx, r->a);
  vkf_tensor_destroy(r->ctx, r->b);
  vkf_tensor_destroy(r->ctx, r->c);
}

static double max_err(const float *x, const float *ref, size_t n) {
  double scale = 0, err = 0;
  for (size_t i = 0; i < n; i++) {
    double r = fabs((double)ref[i]);
    scale = r > scale ? r : scale;
    double d = fabs((double)x[i] - (double)ref[i]);
    err = d > err || d != d ? d : err;
  }
  return scale > 0 ? err / scale : err;
}

/* Kernel-only seconds per call from the profiling context. */
static double kernel_time(vkf_context *pctx, const shape *s, const float *a, const float *b,
                          uint32_t iters, uint32_t reps) {
  vkf_run r;
  vkf_setup(pctx, s, a, b, &r);
  vkf_call(&r, 1);
  double per[64];
  reps = reps < 64 ? reps : 64;
  for (uint32_t k = 0; k < reps; k++) {
    CHECK(pctx, vkf_profile_reset(pctx));
    vkf_call(&r, iters);
    vkf_op_time t[16];
    uint32_t n = 0;
    CHECK(pctx, vkf_profile_read(pctx, t, 16, &n));
    per[k] = 0;
    for (uint32_t i = 0; i < n && i < 16; i++)
      if (strcmp(t[i].name, "matmul") == 0 && t[i].count)
        per[k] = t[i].total_ms * 1e-3 / t[i].count;
  }
  vkf_teardown(&r);
  return median(per, reps);
}

/* ---- --mix: matmuls interleaved with pool work ----
 * An MLP block on the CPU backend: h = x.w1 + b1, three elementwise ops over
 * h on vkformer's thread pool, y = t.w2, a residual add. The elementwise ops
 * are timed (CPU backend profile: host time per op) in three settings:
 *   alone:           repeated without matmuls (warm caches);
 *   after a matmul:  each batch right after a matmul, as in a model;
 *   after a pause:   the same, but 0.2 s after the matmul, when library
 *                    threads that wait for work by spinning have gone idle.
 * "after a matmul" well above "after a pause" means threads left spinning by
 * the matmul slow down the pool. */
typedef struct mix_state {
  vkf_context *ctx;
  vkf_tensor x, w1, b1, h, t, w2, y, x2;
} mix_state;

static void mix_elementwise(mix_state *m) {
  CHECK(m->ctx, vkf_scale(m->ctx, m->t, m->h, 0.5f));
  CHECK(m->ctx, vkf_add(m->ctx, m->t, m->t, m->h));
  CHECK(m->ctx, vkf_mul(m->ctx, m->t, m->t, m->h));
}

/* Milliseconds per call of the ops other than matmul in the profile. */
static double mix_ew_ms(mix_state *m) {
  vkf_op_time t[16];
  uint32_t n = 0;
  CHECK(m->ctx, vkf_profile_read(m->ctx, t, 16, &n));
  double ms = 0;
  uint32_t calls = 0;
  for (uint32_t i = 0; i < n && i < 16; i++)
    if (strcmp(t[i].name, "matmul")) {
      ms += t[i].total_ms;
      calls += t[i].count;
    }
  return calls ? ms / calls : 0;
}

static double mix_mm_ms(mix_state *m) {
  vkf_op_time t[16];
  uint32_t n = 0;
  CHECK(m->ctx, vkf_profile_read(m->ctx, t, 16, &n));
  for (uint32_t i = 0; i < n && i < 16; i++)
    if (!strcmp(t[i].name, "matmul") && t[i].count)
      return t[i].total_ms / t[i].count;
  return 0;
}

static void run_mix(const options *o) {
  mix_state m;
  vkf_context_desc d = {.device = "cpu", .cpu_threads = o->threads, .flags = VKF_CONTEXT_PROFILE};
  CHECK(NULL, vkf_context_create(&d, &m.ctx));
  enum { T = 1024, C = 768, H = 3072 };
  int64_t sx[2] = {T, C}, sw1[2] = {C, H}, sb1[1] = {H}, sh[2] = {T, H}, sw2[2] = {H, C};
  vkf_context *ctx = m.ctx;
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, sx, &m.x));
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, sx, &m.y));
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, sx, &m.x2));
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, sw1, &m.w1));
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, sb1, &m.b1));
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, sh, &m.h));
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, sh, &m.t));
  CHECK(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, sw2, &m.w2));
  size_t big = (size_t)T * H;
  float *buf = xmalloc(big * sizeof(float));
  fill_random(buf, big, 7);
  for (size_t i = 0; i < big; i++)
    buf[i] *= 0.05f;
  CHECK(ctx, vkf_tensor_write(ctx, m.w1, buf, (size_t)C * H * sizeof(float)));
  CHECK(ctx, vkf_tensor_write(ctx, m.w2, buf, (size_t)C * H * sizeof(float)));
  CHECK(ctx, vkf_tensor_write(ctx, m.x, buf, (size_t)T * C * sizeof(float)));
  CHECK(ctx, vkf_tensor_write(ctx, m.b1, buf, (size_t)H * sizeof(float)));
  CHECK(ctx, vkf_tensor_write(ctx, m.h, buf, big * sizeof(float)));
  CHECK(ctx, vkf_tensor_write(ctx, m.t, buf, big * sizeof(float)));
  free(buf);
  uint32_t reps = o->quick ? 5 : 20;
  vkf_device_info info;
  CHECK(ctx, vkf_context_device(ctx, &info));
  printf("bench_gemm --mix: %s; MLP block T=%d C=%d H=%d, %u reps\n", info.name, T, C, H, reps);
  printf("elementwise ops on the pool (scale, add, mul over %dx%d), ms per op:\n\n", T, H);
  printf("%-8s %10s %16s %16s %14s %12s\n", "round", "alone", "after a matmul", "after a pause",
         "matmul (ms)", "block (ms)");
  for (uint32_t round = 0; round < 3; round++) {
    double med[3][64], mm[64], blk[64];
    for (uint32_t r = 0; r < reps && r < 64; r++) {
      /* alone */
      mix_elementwise(&m);
      CHECK(ctx, vkf_profile_reset(ctx));
      for (int k = 0; k < 4; k++)
        mix_elementwise(&m);
      med[0][r] = mix_ew_ms(&m);
      /* right after a matmul */
      CHECK(ctx, vkf_matmul(ctx, m.h, m.x, m.w1, m.b1, 0));
      CHECK(ctx, vkf_profile_reset(ctx));
      mix_elementwise(&m);
      med[1][r] = mix_ew_ms(&m);
      /* 0.2 s after a matmul */
      CHECK(ctx, vkf_matmul(ctx, m.h, m.x, m.w1, m.b1, 0));
      settle();
      CHECK(ctx, vkf_profile_reset(ctx));
      mix_elementwise(&m);
      med[2][r] = mix_ew_ms(&m);
      /* a whole block, wall time */
      CHECK(ctx, vkf_profile_reset(ctx));
      double t0 = now_s();
      CHECK(ctx, vkf_matmul(ctx, m.h, m.x, m.w1, m.b1, 0));
      mix_elementwise(&m);
      CHECK(ctx, vkf_matmul(ctx, m.y, m.t, m.w2, VKF_NO_TENSOR, 0));
      CHECK(ctx, vkf_add(ctx, m.x2, m.x, m.y));
      CHECK(ctx, vkf_synchronize(ctx));
      blk[r] = (now_s() - t0) * 1e3;
      mm[r] = mix_mm_ms(&m);
    }
    uint32_t n = reps < 64 ? reps : 64;
    printf("%-8u %10.3f %16.3f %16.3f %14.2f %12.2f\n", round, median(med[0], n), median(med[1], n),
           median(med[2], n), median(mm, n), median(blk, n));
  }
  vkf_context_destroy(ctx);
}

static void add_shape(shape *list, uint32_t *n, const char *name, uint32_t batch, uint32_t M,
                      uint32_t K, uint32_t N, uint32_t flags, bool b_shared) {
  shape *s = &list[(*n)++];
  snprintf(s->name, sizeof(s->name), "%s", name);
  s->batch = batch;
  s->M = M;
  s->K = K;
  s->N = N;
  s->flags = flags;
  s->b_shared = b_shared;
}

static uint32_t layout_flags(const char *l) {
  uint32_t f = 0;
  if (l[0] == 't')
    f |= VKF_MATMUL_TRANS_A;
  if (l[1] == 't')
    f |= VKF_MATMUL_TRANS_B;
  return f;
}

/* "MxKxN" or "BxMxKxN", optionally ":nn|nt|tn|tt". */
static bool parse_shape(const char *arg, shape *s) {
  unsigned v[4];
  char lay[4] = "nn";
  int n = sscanf(arg, "%ux%ux%ux%u", &v[0], &v[1], &v[2], &v[3]);
  if (n != 3 && n != 4)
    return false;
  const char *colon = strchr(arg, ':');
  if (colon) {
    if (strlen(colon + 1) != 2 || strspn(colon + 1, "nt") != 2)
      return false;
    memcpy(lay, colon + 1, 3);
  }
  memset(s, 0, sizeof(*s));
  snprintf(s->name, sizeof(s->name), "%s", arg);
  s->batch = n == 4 ? v[0] : 1;
  s->M = v[n - 3];
  s->K = v[n - 2];
  s->N = v[n - 1];
  s->flags = layout_flags(lay);
  return s->batch && s->M && s->K && s->N;
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_gemm [options]\n"
          "  --device NAME    Vulkan device (default: the best one; see vkf-info)\n"
          "  --reps N         timed repetitions, median reported (default 5, --quick 3)\n"
          "  --min-time S     seconds per repetition (default 0.25, --quick 0.05)\n"
          "  --quick          short run: fewer repetitions, no 2048^3\n"
          "  --threads N      CPU backend threads (default: all CPUs)\n"
          "  --layout LL      transposition of the transformer shapes: nn nt tn tt "
          "(default nn)\n"
          "  --shape S        only this shape, MxKxN or BxMxKxN[:nn|nt|tn|tt] "
          "(repeatable)\n"
          "  --no-vulkan, --no-cpu, --no-blas, --no-kernel-time\n"
          "  --mix            instead: CPU backend, elementwise ops on the thread pool alone,\n"
          "                   right after a matmul, and after a pause (see the source)\n");
}

static bool parse_args(int argc, char **argv, options *o) {
  memset(o, 0, sizeof(*o));
  o->layout = "nn";
  bool reps_set = false, time_set = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--quick"))
      o->quick = true;
    else if (!strcmp(a, "--no-vulkan"))
      o->no_vulkan = true;
    else if (!strcmp(a, "--no-cpu"))
      o->no_cpu = true;
    else if (!strcmp(a, "--no-blas"))
      o->no_blas = true;
    else if (!strcmp(a, "--no-kernel-time"))
      o->no_kernel = true;
    else if (!strcmp(a, "--mix"))
      o->mix = true;
    else if (!strcmp(a, "--help") || !strcmp(a, "-h"))
      return false;
    else if (!v) {
      fprintf(stderr, "bench_gemm: %s needs a value\n", a);
      return false;
    } else if (!strcmp(a, "--device"))
      o->device = argv[++i];
    else if (!strcmp(a, "--reps")) {
      o->reps = (uint32_t)atoi(argv[++i]);
      reps_set = true;
    } else if (!strcmp(a, "--min-time")) {
      o->min_time = atof(argv[++i]);
      time_set = true;
    } else if (!strcmp(a, "--threads"))
      o->threads = (uint32_t)atoi(argv[++i]);
    else if (!strcmp(a, "--layout")) {
      o->layout = argv[++i];
      if (strlen(o->layout) != 2 || strspn(o->layout, "nt") != 2) {
        fprintf(stderr, "bench_gemm: bad --layout %s\n", o->layout);
        return false;
      }
    } else if (!strcmp(a, "--shape")) {
      if (o->n_custom == 32 || !parse_shape(argv[++i], &o->custom[o->n_custom])) {
        fprintf(stderr, "bench_gemm: bad --shape %s\n", argv[i]);
        return false;
      }
      o->n_custom++;
    } else {
      fprintf(stderr, "bench_gemm: unknown option %s\n", a);
      return false;
    }
  }
  if (!reps_set)
    o->reps = o->quick ? 3 : 5;
  if (!time_set)
    o->min_time = o->quick ? 0.05 : 0.25;
  if (o->reps < 1)
    o->reps = 1;
  return true;
}

static void print_gf(double gf) {
  if (gf > 0)
    printf(" %8.1f", gf);
  else
    printf(" %8s", "-");
}
static void print_ratio(double x, double y) {
  if (x > 0 && y > 0)
    printf(" %6.2f", x / y);
  else
    printf(" %6s", "-");
}

int main(int argc, char **argv) {
  options o;
  if (!parse_args(argc, argv, &o)) {
    usage();
    return 2;
  }
#ifndef BENCH_HAVE_OPENBLAS
  o.no_blas = true;
#endif
  if (o.mix) {
    run_mix(&o);
    return 0;
  }

  shape shapes[64];
  uint32_t ns = 0;
  if (o.n_custom) {
    memcpy(shapes, o.custom, o.n_custom * sizeof(shape));
    ns = o.n_custom;
  } else {
    uint32_t lf = layout_flags(o.layout);
    char nm[48];
    static const uint32_t sq[] = {256, 512, 1024, 2048};
    for (uint32_t i = 0; i < 4; i++) {
      if (o.quick && sq[i] > 1024)
        continue;
      snprintf(nm, sizeof(nm), "square %u", sq[i]);
      add_shape(shapes, &ns, nm, 1, sq[i], sq[i], sq[i], 0, false);
    }
    /* GPT-2 small, B*T = 1024 tokens, C = 768 */
    snprintf(nm, sizeof(nm), "gpt2 attn-proj %s", o.layout);
    add_shape(shapes, &ns, nm, 1, 1024, 768, 768, lf, false);
    snprintf(nm, sizeof(nm), "gpt2 qkv %s", o.layout);
    add_shape(shapes, &ns, nm, 1, 1024, 768, 2304, lf, false);
    snprintf(nm, sizeof(nm), "gpt2 mlp-up %s", o.layout);
    add_shape(shapes, &ns, nm, 1, 1024, 768, 3072, lf, false);
    snprintf(nm, sizeof(nm), "gpt2 mlp-down %s", o.layout);
    add_shape(shapes, &ns, nm, 1, 1024, 3072, 768, lf, false);
    /* attention, 12 heads, T = 256, head size 64: q.k^T and att.v */
    add_shape(shapes, &ns, "attn q.kT nt", 12, 256, 64, 256, VKF_MATMUL_TRANS_B, false);
    add_shape(shapes, &ns, "attn att.v nn", 12, 256, 256, 64, 0, false);
  }

  /* contexts */
  vkf_context *cpu = NULL, *vk = NULL, *vkp = NULL;
  if (!o.no_cpu) {
    vkf_context_desc d = {.device = "cpu", .cpu_threads = o.threads};
    CHECK(NULL, vkf_context_create(&d, &cpu));
  }
  vkf_device_info vinfo = {0};
  if (!o.no_vulkan) {
    vkf_context_desc d = {.device = o.device, .cpu_threads = o.threads};
    vkf_status st = vkf_context_create(&d, &vk);
    if (st != VKF_OK || vkf_context_backend(vk) != VKF_BACKEND_VULKAN) {
      if (o.device) {
        fprintf(stderr, "bench_gemm: Vulkan device \"%s\": %s\n", o.device,
                vk ? vkf_context_error(vk) : vkf_status_name(st));
        return 1;
      }
      fprintf(stderr, "bench_gemm: no Vulkan device; measuring the CPU only\n");
      vkf_context_destroy(vk);
      vk = NULL;
    } else {
      CHECK(vk, vkf_context_device(vk, &vinfo));
      if (!o.no_kernel) {
        vkf_context_desc dp = d;
        dp.device = o.device;
        dp.flags = VKF_CONTEXT_PROFILE;
        if (vkf_context_create(&dp, &vkp) != VKF_OK || !vinfo.timestamps) {
          vkf_context_destroy(vkp);
          vkp = NULL;
        }
      }
    }
  }

  vkf_device_info cinfo = {0};
  if (cpu)
    CHECK(cpu, vkf_context_device(cpu, &cinfo));
  printf("bench_gemm: %u reps, median, >= %.2f s per rep\n", o.reps, o.min_time);
  if (vk)
    printf("vulkan: %s (%s)\n", vinfo.name, vinfo.driver_info);
  if (cpu)
    printf("cpu:    %s\n", cinfo.name);
#ifdef BENCH_HAVE_OPENBLAS
  if (!o.no_blas) {
    char ver[64];
    snprintf(ver, sizeof(ver), "%s", OPENBLAS_VERSION);
    size_t b = strspn(ver, " "), e = strlen(ver);
    while (e > b && ver[e - 1] == ' ')
      ver[--e] = 0;
    printf("blas:   %s, %d threads (cblas_sgemm called directly)\n", ver + b,
           openblas_get_num_threads());
  }
#endif
  printf("GFLOP/s; shapes M x K x N (B x M x K x N batched); err = max|x-ref|/max|ref| against "
         "%s\n\n",
         o.no_blas ? "the CPU backend" : "OpenBLAS");
  printf("%-22s %-17s %8s %8s %6s %8s %8s %6s %8s %9s\n", "shape", "dims", "OpenBLAS", "vkf-cpu",
         "/blas", "vkf-vk", "vk-kern", "/blas", "cpu-err", "vk-err");

  for (uint32_t si = 0; si < ns; si++) {
    const shape *s = &shapes[si];
    size_t na = (size_t)s->batch * s->M * s->K;
    size_t nb = (size_t)(s->b_shared ? 1 : s->batch) * s->K * s->N;
    size_t nc = (size_t)s->batch * s->M * s->N;
    float *a = xmalloc(na * sizeof(float)), *b = xmalloc(nb * sizeof(float));
    float *ref = xmalloc(nc * sizeof(float)), *got = xmalloc(nc * sizeof(float));
    fill_random(a, na, 1 + si);
    fill_random(b, nb, 1000 + si);
    double fl = flops_of(s), gf_blas = 0, gf_cpu = 0, gf_vk = 0, gf_kern = 0;
    double err_cpu = -1, err_vk = -1;
    uint32_t iters = 1;
    bool have_ref = false;
#ifdef BENCH_HAVE_OPENBLAS
    if (!o.no_blas) {
      blas_run r = {s, a, b, ref};
      engine e = {blas_call, &r};
      gf_blas = fl / time_engine(&e, &o, &iters) * 1e-9;
      have_ref = true;
      settle();
    }
#endif
    if (cpu) {
      vkf_run r;
      vkf_setup(cpu, s, a, b, &r);
      engine e = {vkf_call, &r};
      gf_cpu = fl / time_engine(&e, &o, &iters) * 1e-9;
      CHECK(cpu, vkf_tensor_read(cpu, r.c, have_ref ? got : ref, nc * sizeof(float)));
      if (have_ref)
        err_cpu = max_err(got, ref, nc);
      have_ref = true;
      vkf_teardown(&r);
      settle();
    }
    if (vk) {
      vkf_run r;
      vkf_setup(vk, s, a, b, &r);
      engine e = {vkf_call, &r};
      gf_vk = fl / time_engine(&e, &o, &iters) * 1e-9;
      CHECK(vk, vkf_tensor_read(vk, r.c, got, nc * sizeof(float)));
      if (have_ref)
        err_vk = max_err(got, ref, nc);
      vkf_teardown(&r);
      if (vkp)
        gf_kern = fl / kernel_time(vkp, s, a, b, iters, o.reps) * 1e-9;
    }
    char dims[32];
    if (s->batch > 1)
      snprintf(dims, sizeof(dims), "%ux%ux%ux%u", s->batch, s->M, s->K, s->N);
    else
      snprintf(dims, sizeof(dims), "%ux%ux%u", s->M, s->K, s->N);
    printf("%-22s %-17s", s->name, dims);
    print_gf(gf_blas);
    print_gf(gf_cpu);
    print_ratio(gf_cpu, gf_blas);
    print_gf(gf_vk);
    print_gf(gf_kern);
    print_ratio(gf_vk, gf_blas);
    if (err_cpu >= 0)
      printf(" %8.1e", err_cpu);
    else
      printf(" %8s", "-");
    if (err_vk >= 0)
      printf(" %9.1e", err_vk);
    else
      printf(" %9s", "-");
    printf("\n");
    fflush(stdout);
    free(a);
    free(b);
    free(ref);
    free(got);
  }
  vkf_context_destroy(vkp);
  vkf_context_destroy(vk);
  vkf_context_destroy(cpu);
  return 0;
}
