/* matmul: CPU backend vs a double-precision reference, Vulkan vs the CPU
 * backend, on awkward shapes, every flag, and every error status. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef VKFT_HAVE_OPENBLAS
#include <cblas.h>
#endif

typedef struct mm_case {
  uint32_t batch, M, N, K;
  uint32_t flags;    /* VKF_MATMUL_* */
  int bias;          /* add a bias */
  int b_shared;      /* b without batch dims */
  uint32_t misalign; /* operands are views this many floats into larger tensors */
  uint32_t c_mis;    /* c and bias only: that many floats more */
} mm_case;

/* Small awkward shapes (edge tiles only), then shapes that reach the Vulkan
 * kernel's other paths on every device config (tiles of 32..256): full
 * interior tiles, vec4 reads (aligned addresses, dims multiples of 4), the
 * scalar fallback (odd dims, misaligned views), K not a multiple of the k
 * tile, large and attention-like batches. */
static const mm_case cases[] = {
    {1, 1, 1, 1, 0, 0, 0, 0, 0},
    {1, 3, 17, 63, 0, 0, 0, 0, 0},
    {1, 17, 3, 257, VKF_MATMUL_TRANS_B, 1, 0, 0, 0},
    {1, 63, 65, 17, VKF_MATMUL_TRANS_A, 0, 0, 0, 0},
    {1, 65, 63, 33, VKF_MATMUL_TRANS_A | VKF_MATMUL_TRANS_B, 1, 0, 0, 0},
    {1, 257, 129, 64, 0, 1, 0, 0, 0},
    {1, 64, 64, 64, VKF_MATMUL_ACCUMULATE, 1, 0, 0, 0},
    {3, 17, 31, 9, 0, 0, 0, 0, 0},
    {3, 5, 257, 3, VKF_MATMUL_TRANS_B | VKF_MATMUL_ACCUMULATE, 0, 0, 0, 0},
    {4, 33, 20, 70, VKF_MATMUL_TRANS_A, 1, 1, 0, 0},
    {2, 1, 300, 1, 0, 0, 1, 0, 0},
    {1, 128, 96, 200, VKF_MATMUL_TRANS_B, 0, 0, 0, 0},
    {1, 256, 256, 128, 0, 0, 0, 0, 0},
    {1, 256, 256, 128, VKF_MATMUL_TRANS_A | VKF_MATMUL_TRANS_B, 1, 0, 0, 0},
    {1, 256, 192, 96, VKF_MATMUL_TRANS_B | VKF_MATMUL_ACCUMULATE, 1, 0, 0, 0},
    {1, 264, 260, 72, VKF_MATMUL_TRANS_A, 0, 0, 0, 0},
    {1, 130, 131, 67, 0, 1, 0, 0, 0},
    {1, 129, 129, 129, VKF_MATMUL_TRANS_A | VKF_MATMUL_TRANS_B | VKF_MATMUL_ACCUMULATE, 0, 0, 0, 0},
    {1, 256, 256, 64, 0, 1, 0, 1, 0},
    {2, 128, 132, 64, VKF_MATMUL_TRANS_B | VKF_MATMUL_ACCUMULATE, 1, 0, 2, 0},
    {4, 256, 128, 64, VKF_MATMUL_TRANS_A, 0, 1, 0, 0},
    {64, 20, 24, 16, 0, 1, 1, 0, 0},
    {300, 5, 7, 3, VKF_MATMUL_TRANS_A | VKF_MATMUL_ACCUMULATE, 0, 0, 0, 0},
    {48, 128, 128, 64, VKF_MATMUL_TRANS_B, 0, 0, 0, 0},
    {48, 128, 64, 128, 0, 0, 0, 0, 0},
};

/* For every kernel configuration (VKF_MATMUL_CONFIG): one case per path. */
static const mm_case sweep_cases[] = {
    {1, 256, 256, 64, 0, 0, 0, 0, 0},
    {1, 200, 136, 40, VKF_MATMUL_TRANS_A | VKF_MATMUL_TRANS_B | VKF_MATMUL_ACCUMULATE, 1, 0, 0, 0},
    {3, 70, 66, 36, VKF_MATMUL_TRANS_B, 1, 1, 0, 0},
    {1, 128, 128, 32, VKF_MATMUL_TRANS_A | VKF_MATMUL_ACCUMULATE, 1, 0, 1, 0},
    {2, 33, 17, 9, VKF_MATMUL_TRANS_A, 0, 0, 0, 0},
};

/* Reference in double, reading the operands exactly as stored. */
static void reference(const mm_case *c, const float *a, const float *b, const float *bias,
                      const float *c0, double *out) {
  bool ta = c->flags & VKF_MATMUL_TRANS_A, tb = c->flags & VKF_MATMUL_TRANS_B;
  for (uint32_t z = 0; z < c->batch; z++) {
    const float *A = a + (size_t)z * c->M * c->K;
    const float *B = b + (c->b_shared ? 0 : (size_t)z * c->K * c->N);
    for (uint32_t i = 0; i < c->M; i++)
      for (uint32_t j = 0; j < c->N; j++) {
        double s = 0;
        for (uint32_t k = 0; k < c->K; k++)
          s += (double)(ta ? A[(size_t)k * c->M + i] : A[(size_t)i * c->K + k]) *
               (double)(tb ? B[(size_t)j * c->K + k] : B[(size_t)k * c->N + j]);
        size_t o = ((size_t)z * c->M + i) * c->N + j;
        if (bias)
          s += bias[j];
        if (c->flags & VKF_MATMUL_ACCUMULATE)
          s += c0[o];
        out[o] = s;
      }
  }
}

/* A tensor holding `data`; with misalign > 0, a view that many floats into a
 * larger tensor (so its address is not 16-byte aligned). */
static vkf_tensor operand(vkf_context *ctx, uint32_t ndim, const int64_t *shape, const float *data,
                          uint32_t misalign) {
  if (!misalign)
    return vkft_tensor_from(ctx, ndim, shape, data);
  int64_t n = 1;
  for (uint32_t i = 0; i < ndim; i++)
    n *= shape[i];
  int64_t big[1] = {n + misalign};
  vkf_tensor base = vkft_tensor(ctx, 1, big), view;
  VKFT_OK(vkf_tensor_view(ctx, base, misalign, ndim, shape, &view));
  VKFT_OK(vkf_tensor_destroy(ctx, base)); /* the view keeps the memory */
  VKFT_OK(vkf_tensor_write(ctx, view, data, (size_t)n * sizeof(float)));
  return view;
}

/* Runs one case on ctx; returns the result (malloc'd). */
static float *run_case(vkf_context *ctx, const mm_case *c, const float *a, const float *b,
                       const float *bias, const float *c0) {
  bool ta = c->flags & VKF_MATMUL_TRANS_A, tb = c->flags & VKF_MATMUL_TRANS_B;
  int64_t sa[3] = {c->batch, ta ? c->K : c->M, ta ? c->M : c->K};
  int64_t sb3[3] = {c->batch, tb ? c->N : c->K, tb ? c->K : c->N};
  int64_t sc[3] = {c->batch, c->M, c->N};
  int64_t sbias[1] = {c->N};
  uint32_t mis = c->misalign;
  vkf_tensor ta_ = operand(ctx, 3, sa, a, mis);
  vkf_tensor tb_ = c->b_shared ? operand(ctx, 2, sb3 + 1, b, mis) : operand(ctx, 3, sb3, b, mis);
  vkf_tensor tc = operand(ctx, 3, sc, c0, mis + c->c_mis);
  vkf_tensor tbias = bias ? operand(ctx, 1, sbias, bias, mis + c->c_mis) : VKF_NO_TENSOR;
  vkf_status st = vkf_matmul(ctx, tc, ta_, tb_, tbias, c->flags);
  if (st != VKF_OK)
    fail_msg("vkf_matmul: %s: %s", vkf_status_name(st), vkf_context_error(ctx));
  size_t n = (size_t)c->batch * c->M * c->N;
  float *out = vkft_alloc(n);
  vkft_read(ctx, tc, out, n);
  VKFT_OK(vkf_tensor_destroy(ctx, ta_));
  VKFT_OK(vkf_tensor_destroy(ctx, tb_));
  VKFT_OK(vkf_tensor_destroy(ctx, tc));
  if (bias)
    VKFT_OK(vkf_tensor_destroy(ctx, tbias));
  return out;
}

/* Runs `n` cases on ctx against the double reference (and against the CPU
 * backend when cpu is given); returns the number of bad elements. */
static size_t run_cases(vkf_context *ctx, vkf_context *cpu, const mm_case *list, size_t n_cases,
                        const char *label) {
  vkft_rng rng = vkft_rng_seed(42);
  size_t failures = 0;
  for (size_t ci = 0; ci < n_cases; ci++) {
    const mm_case *c = &list[ci];
    size_t na = (size_t)c->batch * c->M * c->K,
           nb = (size_t)(c->b_shared ? 1 : c->batch) * c->K * c->N;
    size_t nc = (size_t)c->batch * c->M * c->N;
    float *a = vkft_alloc(na), *b = vkft_alloc(nb), *bias = vkft_alloc(c->N), *c0 = vkft_alloc(nc);
    vkft_fill_uniform(&rng, a, na, -1, 1);
    vkft_fill_uniform(&rng, b, nb, -1, 1);
    vkft_fill_uniform(&rng, bias, c->N, -1, 1);
    vkft_fill_uniform(&rng, c0, nc, -1, 1);
    double *ref = vkft_alloc_d(nc);
    reference(c, a, b, c->bias ? bias : NULL, c0, ref);
    char what[160];
    snprintf(what, sizeof(what), "%s case %zu (%ux%ux%ux%u flags %u bias %d shared %d mis %u)",
             label, ci, c->batch, c->M, c->N, c->K, c->flags, c->bias, c->b_shared, c->misalign);
    /* fp32 dot products of length K in [-1,1]: error grows ~ sqrt(K) eps */
    double atol = 2e-6 * sqrt((double)c->K) + 1e-6, rtol = 1e-5;
    float *got = run_case(ctx, c, a, b, c->bias ? bias : NULL, c0);
    failures += vkft_compare(what, got, ref, nc, atol, rtol);
    if (cpu) {
      float *want = run_case(cpu, c, a, b, c->bias ? bias : NULL, c0);
      failures += vkft_compare_f(what, got, want, nc, atol, rtol);
      free(want);
    }
    free(got);
    free(a);
    free(b);
    free(bias);
    free(c0);
    free(ref);
  }
  return failures;
}

static void run_all(vkf_context *ctx, vkf_context *cpu) {
  assert_int_equal(run_cases(ctx, cpu, cases, VKFT_ARRAY_LEN(cases), "default"), 0);
}

static void test_matmul_cpu_vs_reference(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  run_all(cpu, NULL);
  /* the same with one thread: the partition must not change results */
  VKFT_OK(vkf_context_set_threads(cpu, 1));
  run_all(cpu, NULL);
#ifdef VKFT_HAVE_OPENBLAS
  /* An application that runs OpenBLAS single-threaded: the backend then
   * splits large products over its own pool (by rows or by columns). */
  int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  VKFT_OK(vkf_context_set_threads(cpu, 3));
  run_all(cpu, NULL);
  openblas_set_num_threads(blas_threads);
#endif
  vkft_destroy(cpu);
}

/* Larger products for the CPU backend's packed GEMM (backend/cpu/gemm.c):
 * several k blocks (KC = 256, with a remainder), several row tiles and
 * column panels (64 / 16 wide) with edges, a shared b over a batch. */
static const mm_case packed_cases[] = {
    {1, 301, 130, 600, VKF_MATMUL_TRANS_B | VKF_MATMUL_ACCUMULATE, 1, 0, 0, 0},
    {1, 262, 197, 520, VKF_MATMUL_TRANS_A, 0, 0, 1, 0},
    {1, 97, 640, 257, 0, 1, 0, 0, 0},
    {1, 130, 67, 513, VKF_MATMUL_TRANS_A | VKF_MATMUL_TRANS_B, 1, 0, 0, 0},
    {3, 70, 129, 300, VKF_MATMUL_TRANS_B, 0, 1, 0, 0},
    {2, 64, 64, 256, VKF_MATMUL_ACCUMULATE, 1, 0, 0, 0},
};

/* Runs every case on ctx; results appended to out[] (one malloc'd array per
 * case, inputs from a fixed seed). */
static void run_paths_cases(vkf_context *ctx, const mm_case *list, size_t n_cases, float **out) {
  vkft_rng rng = vkft_rng_seed(77);
  for (size_t ci = 0; ci < n_cases; ci++) {
    const mm_case *c = &list[ci];
    size_t na = (size_t)c->batch * c->M * c->K,
           nb = (size_t)(c->b_shared ? 1 : c->batch) * c->K * c->N;
    size_t nc = (size_t)c->batch * c->M * c->N;
    float *a = vkft_alloc(na), *b = vkft_alloc(nb), *bias = vkft_alloc(c->N), *c0 = vkft_alloc(nc);
    vkft_fill_uniform(&rng, a, na, -1, 1);
    vkft_fill_uniform(&rng, b, nb, -1, 1);
    vkft_fill_uniform(&rng, bias, c->N, -1, 1);
    vkft_fill_uniform(&rng, c0, nc, -1, 1);
    out[ci] = run_case(ctx, c, a, b, c->bias ? bias : NULL, c0);
    free(a);
    free(b);
    free(bias);
    free(c0);
  }
}

/* Every CPU matmul path (VKF_CPU_GEMM) against the double reference, on the
 * small cases and the packed ones; the packed kernels give the same bits
 * with 1, 2 and 3 threads, and AVX2 the same bits as AVX-512 (one FMA chain
 * per k block in both). A path this CPU lacks falls back to the best one. */
static void test_matmul_cpu_paths(void **state) {
  (void)state;
  static const char *const paths[] = {"avx512", "avx2", "blas", "portable"};
  enum { NP = VKFT_ARRAY_LEN(packed_cases) };
  float *first[NP] = {0};
  size_t failures = 0;
  for (size_t pi = 0; pi < VKFT_ARRAY_LEN(paths); pi++) {
    setenv("VKF_CPU_GEMM", paths[pi], 1);
    vkf_context *cpu = vkft_cpu();
    failures += run_cases(cpu, NULL, cases, VKFT_ARRAY_LEN(cases), paths[pi]);
    failures += run_cases(cpu, NULL, packed_cases, NP, paths[pi]);
    bool packed = false; /* this path really runs the packed kernels here */
#if defined(__GNUC__) && defined(__x86_64__)
    __builtin_cpu_init();
    packed = pi == 0   ? __builtin_cpu_supports("avx512f")
             : pi == 1 ? __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                       : false;
#endif
    if (packed) {
      for (uint32_t threads = 1; threads <= 3; threads++) {
        VKFT_OK(vkf_context_set_threads(cpu, threads));
        float *got[NP];
        run_paths_cases(cpu, packed_cases, NP, got);
        for (size_t ci = 0; ci < NP; ci++) {
          const mm_case *c = &packed_cases[ci];
          size_t nc = (size_t)c->batch * c->M * c->N;
          if (!first[ci]) {
            first[ci] = got[ci];
            continue;
          }
          if (memcmp(first[ci], got[ci], nc * sizeof(float)) != 0) {
            fprintf(stderr, "%s, %u threads: packed case %zu differs from the first run\n",
                    paths[pi], threads, ci);
            failures++;
          }
          free(got[ci]);
        }
      }
    }
    vkft_destroy(cpu);
  }
  unsetenv("VKF_CPU_GEMM");
  for (size_t ci = 0; ci < NP; ci++)
    free(first[ci]);
  assert_int_equal(failures, 0);
}

static void test_matmul_vulkan_vs_cpu(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  run_all(vk, cpu);
  vkft_destroy(vk);
  /* without texel reads (CPU Vulkan devices run matmul_tex by default):
   * the tiled kernel's default configs */
  setenv("VKF_VK_TEXEL_READS", "0", 1);
  vk = vkft_vulkan();
  run_all(vk, cpu);
  vkft_destroy(vk);
  unsetenv("VKF_VK_TEXEL_READS");
  vkft_destroy(cpu);
}

/* Kernel configurations forced through VKF_MATMUL_CONFIG
 * ("WG,BM,BN,BK,TM,TN,KU[,WIDE]"): the ones chosen for GPUs, which this
 * machine may not have, and the llvmpipe ones, in both shader variants. */
static const char *const sweep_configs[] = {
    "256,128,128,16,8,8,1",     /* GPUs, large products */
    "256,64,64,16,4,4,1",       /* GPUs, medium */
    "64,32,32,16,4,4,1",        /* GPUs, small; the fallback */
    "64,64,128,32,8,16,2",      /* plain kernel with KU = 2, non-square block */
    "256,256,256,16,16,16,2,1", /* llvmpipe, 64-bit words: the largest tile */
    "32,64,64,16,8,16,1,1",     /* 64-bit words, KU = 1, non-square block */
    "16,32,32,32,8,8,2,1",      /* 64-bit words, smallest tile */
};

static void test_matmul_vulkan_configs(void **state) {
  (void)state;
  size_t failures = 0;
  for (size_t i = 0; i < VKFT_ARRAY_LEN(sweep_configs); i++) {
    setenv("VKF_MATMUL_CONFIG", sweep_configs[i], 1);
    vkf_context *vk = vkft_vulkan();
    /* a device without shaderInt64 refuses the 64-bit-word kernel */
    int64_t s4[2] = {4, 4};
    vkf_tensor t = vkft_tensor(vk, 2, s4), u = vkft_tensor(vk, 2, s4);
    VKFT_OK(vkf_tensor_fill(vk, t, 1.0f));
    vkf_status st = vkf_matmul(vk, u, t, t, VKF_NO_TENSOR, 0);
    if (st == VKF_ERROR_INVALID_ARGUMENT && strstr(vkf_context_error(vk), "shaderInt64")) {
      fprintf(stderr, "SKIP config %s: %s\n", sweep_configs[i], vkf_context_error(vk));
    } else {
      VKFT_OK(st);
      failures += run_cases(vk, NULL, sweep_cases, VKFT_ARRAY_LEN(sweep_cases), sweep_configs[i]);
    }
    vkft_destroy(vk);
  }
  unsetenv("VKF_MATMUL_CONFIG");
  assert_int_equal(failures, 0);
}

/* The texel-read kernel (matmul_tex, CPU Vulkan devices) in every shipped
 * config and a non-square one, forced through VKF_MATMUL_TEX_CONFIG
 * ("WG,TM,TN,TX"): every transposition, edge tiles (M, N not multiples of
 * any tile), one k step (K = 4), batches with a shared b, bias and
 * accumulation; the vec4 epilogue (c, N and bias 16-byte aligned) and the
 * scalar one (c or bias unaligned, N not a multiple of 4, forced with
 * VC = 0); then shapes it must refuse (K not a multiple of 4, an
 * unaligned view, M or N not a multiple of 4 where fetched along them),
 * which the other kernel runs. */
static const mm_case tex_cases[] = {
    {1, 256, 256, 64, 0, 0, 0, 0, 0},
    {1, 200, 136, 40, VKF_MATMUL_TRANS_A | VKF_MATMUL_TRANS_B | VKF_MATMUL_ACCUMULATE, 1, 0, 0, 0},
    {3, 70, 66, 36, VKF_MATMUL_TRANS_B, 1, 1, 0, 0},
    {2, 36, 52, 12, VKF_MATMUL_TRANS_A, 0, 0, 0, 0},
    {1, 9, 20, 4, 0, 1, 0, 0, 0},
    {5, 33, 17, 8, VKF_MATMUL_TRANS_B | VKF_MATMUL_ACCUMULATE, 0, 0, 0, 0},
    {1, 130, 260, 132, VKF_MATMUL_TRANS_A | VKF_MATMUL_ACCUMULATE, 1, 0, 0, 0},
    {1, 17, 3, 257, VKF_MATMUL_TRANS_B, 1, 0, 0, 0},
    {1, 64, 64, 32, 0, 1, 0, 1, 0},
    {1, 34, 30, 16, VKF_MATMUL_TRANS_A, 0, 0, 0, 0},
    {1, 34, 30, 16, 0, 0, 0, 0, 0},
    {3, 37, 44, 20, VKF_MATMUL_ACCUMULATE, 1, 1, 0, 1},
    {2, 63, 68, 28, VKF_MATMUL_TRANS_B | VKF_MATMUL_ACCUMULATE, 1, 0, 0, 0},
    {1, 3, 260, 20, VKF_MATMUL_TRANS_B, 1, 0, 0, 0},
    {2, 17, 36, 12, VKF_MATMUL_ACCUMULATE, 1, 0, 0, 4},
    {1, 4, 4, 8, VKF_MATMUL_TRANS_A | VKF_MATMUL_TRANS_B, 0, 0, 0, 2},
    {1, 68, 132, 264, VKF_MATMUL_TRANS_A | VKF_MATMUL_ACCUMULATE, 1, 0, 0, 0},
};

static const char *const tex_configs[] = {
    "64,16,16,8",   "16,16,16,4", "8,16,16,2",    "8,8,8,4", "16,4,16,16", /* shipped */
    "32,8,16,4",                                                           /* 32x64 */
    "64,16,16,8,0", "8,8,8,4,0",  "16,4,16,16,0",                          /* the scalar epilogue */
};

/* Whether this context runs matmul_tex: a bad VKF_MATMUL_TEX_CONFIG is only
 * read (and refused) where it does. */
static bool has_texel_matmul(void) {
  setenv("VKF_MATMUL_TEX_CONFIG", "12,4,4,8", 1); /* TX does not divide WG */
  vkf_context *vk = vkft_vulkan();
  int64_t s4[2] = {4, 4};
  vkf_tensor t = vkft_tensor(vk, 2, s4), u = vkft_tensor(vk, 2, s4);
  VKFT_OK(vkf_tensor_fill(vk, t, 1.0f));
  vkf_status st = vkf_matmul(vk, u, t, t, VKF_NO_TENSOR, 0);
  bool has = st != VKF_OK;
  if (has &&
      (st != VKF_ERROR_INVALID_ARGUMENT || !strstr(vkf_context_error(vk), "VKF_MATMUL_TEX_CONFIG")))
    fail_msg("bad VKF_MATMUL_TEX_CONFIG: got %s (%s)", vkf_status_name(st), vkf_context_error(vk));
  vkft_destroy(vk);
  unsetenv("VKF_MATMUL_TEX_CONFIG");
  return has;
}

static void test_matmul_vulkan_texel_configs(void **state) {
  (void)state;
  if (!has_texel_matmul()) {
    fprintf(stderr, "SKIP: this Vulkan device has no texel-read matmul\n");
    return;
  }
  static const char *const bad[] = {"64,16,16",    "64,16,16,7",   "64,6,16,8",     "64,16,64,8",
                                    "64,16,16,8x", "64,16,16,8,2", "64,16,16,8,1,1"};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(bad); i++) {
    setenv("VKF_MATMUL_TEX_CONFIG", bad[i], 1);
    vkf_context *vk = vkft_vulkan();
    int64_t s4[2] = {4, 4};
    vkf_tensor t = vkft_tensor(vk, 2, s4), u = vkft_tensor(vk, 2, s4);
    vkf_status st = vkf_matmul(vk, u, t, t, VKF_NO_TENSOR, 0);
    if (st != VKF_ERROR_INVALID_ARGUMENT || !strstr(vkf_context_error(vk), "VKF_MATMUL_TEX_CONFIG"))
      fail_msg("VKF_MATMUL_TEX_CONFIG=%s: got %s (%s)", bad[i], vkf_status_name(st),
               vkf_context_error(vk));
    vkft_destroy(vk);
  }
  size_t failures = 0;
  for (size_t i = 0; i < VKFT_ARRAY_LEN(tex_configs); i++) {
    setenv("VKF_MATMUL_TEX_CONFIG", tex_configs[i], 1);
    vkf_context *vk = vkft_vulkan();
    failures += run_cases(vk, NULL, tex_cases, VKFT_ARRAY_LEN(tex_cases), tex_configs[i]);
    vkft_destroy(vk);
  }
  unsetenv("VKF_MATMUL_TEX_CONFIG");
  assert_int_equal(failures, 0);
}

/* Operands larger than maxStorageBufferRange (128 MiB on lavapipe): a
 * 156 MiB a, then a 156 MiB b (transposed), with bias and accumulation,
 * against the reference and the CPU backend. On a device with the
 * texel-read kernel the products must take it (a bad VKF_MATMUL_TEX_CONFIG
 * is then refused), reading texels past the first 128 MiB of the view. */
static const mm_case large_cases[] = {
    {1, 40000, 8, 1024, VKF_MATMUL_ACCUMULATE, 1, 0, 0, 0},
    {1, 12, 40000, 1024, VKF_MATMUL_TRANS_B, 0, 0, 0, 0},
};

static void test_matmul_vulkan_large(void **state) {
  (void)state;
  bool tex = has_texel_matmul();
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  if (tex) {
    setenv("VKF_MATMUL_TEX_CONFIG", "12,4,4,8", 1); /* refused where matmul_tex runs */
    for (size_t i = 0; i < VKFT_ARRAY_LEN(large_cases); i++) {
      const mm_case *c = &large_cases[i];
      bool tb = c->flags & VKF_MATMUL_TRANS_B;
      int64_t sa[2] = {c->M, c->K}, sb[2] = {tb ? c->N : c->K, tb ? c->K : c->N};
      int64_t sc[2] = {c->M, c->N};
      vkf_tensor a = vkft_tensor(vk, 2, sa), b = vkft_tensor(vk, 2, sb), o = vkft_tensor(vk, 2, sc);
      vkf_status st = vkf_matmul(vk, o, a, b, VKF_NO_TENSOR, c->flags);
      if (st != VKF_ERROR_INVALID_ARGUMENT)
        fail_msg("large case %zu did not take matmul_tex: %s", i, vkf_status_name(st));
      VKFT_OK(vkf_tensor_destroy(vk, a));
      VKFT_OK(vkf_tensor_destroy(vk, b));
      VKFT_OK(vkf_tensor_destroy(vk, o));
    }
    unsetenv("VKF_MATMUL_TEX_CONFIG");
  }
  assert_int_equal(run_cases(vk, cpu, large_cases, VKFT_ARRAY_LEN(large_cases), "large"), 0);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

static void test_matmul_vulkan_bad_config(void **state) {
  (void)state;
  static const char *const bad[] = {
      "1,2,3",                  /* too few fields */
      "100,64,64,16,4,4,1",     /* WG is not (BM/TM)*(BN/TN) */
      "64,256,256,64,32,32,1",  /* shared memory and block too large */
      "64,64,64,16,6,6,1",      /* TM not a multiple of 4 */
      "16,64,64,16,16,16,3",    /* BK not a multiple of KU */
      "16,64,64,16,16,16,1,1x", /* trailing junk */
      "8,64,64,16,32,16,1,1",   /* wide kernel with a 32-row block */
  };
  for (size_t i = 0; i < VKFT_ARRAY_LEN(bad); i++) {
    setenv("VKF_MATMUL_CONFIG", bad[i], 1);
    vkf_context *vk = vkft_vulkan();
    int64_t s4[2] = {4, 4};
    vkf_tensor t = vkft_tensor(vk, 2, s4), u = vkft_tensor(vk, 2, s4);
    vkf_status st = vkf_matmul(vk, u, t, t, VKF_NO_TENSOR, 0);
    if (st != VKF_ERROR_INVALID_ARGUMENT || !strstr(vkf_context_error(vk), "VKF_MATMUL_CONFIG"))
      fail_msg("VKF_MATMUL_CONFIG=%s: got %s (%s)", bad[i], vkf_status_name(st),
               vkf_context_error(vk));
    vkft_destroy(vk);
  }
  unsetenv("VKF_MATMUL_CONFIG");
}

/* Many matmuls recorded back to back (one submit), chained through shared
 * tensors: exercises the barrier tracking. */
static void test_matmul_chain(void **state) {
  (void)state;
  vkf_context *vk = vkft_vulkan();
  vkf_context *cpu = vkft_cpu();
  vkf_context *ctxs[2] = {vk, cpu};
  float *res[2];
  enum { D = 24, STEPS = 40 };
  vkft_rng rng = vkft_rng_seed(7);
  float x0[D * D], w[D * D];
  vkft_fill_uniform(&rng, x0, D * D, -1, 1);
  vkft_fill_uniform(&rng, w, D * D, -0.3f, 0.3f);
  for (int k = 0; k < 2; k++) {
    int64_t s[2] = {D, D};
    vkf_tensor x = vkft_tensor_from(ctxs[k], 2, s, x0), y = vkft_tensor(ctxs[k], 2, s);
    vkf_tensor wt = vkft_tensor_from(ctxs[k], 2, s, w);
    for (int i = 0; i < STEPS; i++) {
      VKFT_OK(vkf_matmul(ctxs[k], y, x, wt, VKF_NO_TENSOR, 0));
      VKFT_OK(vkf_add(ctxs[k], x, y, x)); /* x = x + x.w: read-after-write each step */
      VKFT_OK(vkf_scale(ctxs[k], x, x, 0.5f));
    }
    res[k] = vkft_alloc(D * D);
    vkft_read(ctxs[k], x, res[k], D * D);
  }
  assert_int_equal(vkft_compare_f("chain", res[0], res[1], D * D, 1e-4, 1e-4), 0);
  free(res[0]);
  free(res[1]);
  vkft_destroy(vk);
  vkft_destroy(cpu);
}

static void expect(vkf_context *ctx, vkf_status got, vkf_status want, const char *what) {
  if (got != want)
    fail_msg("%s: got %s, expected %s (%s)", what, vkf_status_name(got), vkf_status_name(want),
             vkf_context_error(ctx));
  if (want != VKF_OK && strlen(vkf_context_error(ctx)) == 0)
    fail_msg("%s: no error message", what);
}

static void error_cases(vkf_context *ctx) {
  int64_t s23[2] = {2, 3}, s34[2] = {3, 4}, s24[2] = {2, 4}, s44[2] = {4, 4}, s5[1] = {5};
  vkf_tensor a = vkft_tensor(ctx, 2, s23), b = vkft_tensor(ctx, 2, s34),
             c = vkft_tensor(ctx, 2, s24);
  vkf_tensor bad = vkft_tensor(ctx, 2, s44), bias5 = vkft_tensor(ctx, 1, s5);
  vkf_tensor i32;
  VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_I32, 2, s34, &i32));
  expect(ctx, vkf_matmul(ctx, c, a, b, VKF_NO_TENSOR, 0), VKF_OK, "valid");
  expect(ctx, vkf_matmul(ctx, c, a, bad, VKF_NO_TENSOR, 0), VKF_ERROR_SHAPE_MISMATCH, "inner dims");
  expect(ctx, vkf_matmul(ctx, bad, a, b, VKF_NO_TENSOR, 0), VKF_ERROR_SHAPE_MISMATCH, "c shape");
  expect(ctx, vkf_matmul(ctx, c, a, b, VKF_NO_TENSOR, VKF_MATMUL_TRANS_A), VKF_ERROR_SHAPE_MISMATCH,
         "trans_a shape");
  expect(ctx, vkf_matmul(ctx, c, a, b, bias5, 0), VKF_ERROR_SHAPE_MISMATCH, "bias shape");
  expect(ctx, vkf_matmul(ctx, c, a, i32, VKF_NO_TENSOR, 0), VKF_ERROR_DTYPE_MISMATCH, "dtype");
  expect(ctx, vkf_matmul(ctx, c, a, b, VKF_NO_TENSOR, 1u << 9), VKF_ERROR_INVALID_ARGUMENT,
         "flags");
  expect(ctx, vkf_matmul(ctx, c, c, b, VKF_NO_TENSOR, 0), VKF_ERROR_INVALID_ARGUMENT, "aliasing");
  expect(ctx, vkf_matmul(ctx, c, VKF_NO_TENSOR, b, VKF_NO_TENSOR, 0), VKF_ERROR_INVALID_ARGUMENT,
         "no tensor");
  expect(ctx, vkf_matmul(ctx, c, bias5, b, VKF_NO_TENSOR, 0), VKF_ERROR_SHAPE_MISMATCH, "1-D a");
  vkf_tensor stale = a;
  VKFT_OK(vkf_tensor_destroy(ctx, a));
  expect(ctx, vkf_matmul(ctx, c, stale, b, VKF_NO_TENSOR, 0), VKF_ERROR_STALE_HANDLE, "stale");
  expect(ctx, vkf_tensor_destroy(ctx, stale), VKF_ERROR_STALE_HANDLE, "double destroy");
  vkf_tensor forged = {0x7fff0};
  expect(ctx, vkf_matmul(ctx, c, forged, b, VKF_NO_TENSOR, 0), VKF_ERROR_STALE_HANDLE, "forged");
  assert_int_equal(vkf_matmul(NULL, c, a, b, VKF_NO_TENSOR, 0), VKF_ERROR_NULL_POINTER);
  VKFT_OK(vkf_synchronize(ctx));
}

static void test_matmul_errors(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  error_cases(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  error_cases(vk);
  vkft_destroy(vk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matmul_cpu_vs_reference),
      cmocka_unit_test(test_matmul_cpu_paths),
      cmocka_unit_test(test_matmul_vulkan_vs_cpu),
      cmocka_unit_test(test_matmul_vulkan_configs),
      cmocka_unit_test(test_matmul_vulkan_bad_config),
      cmocka_unit_test(test_matmul_vulkan_texel_configs),
      cmocka_unit_test(test_matmul_vulkan_large),
      cmocka_unit_test(test_matmul_chain),
      cmocka_unit_test(test_matmul_errors),
  };
  return cmocka_run_group_tests_name("matmul", tests, NULL, NULL);
}
