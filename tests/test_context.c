/* The context and tensor machinery: devices and their choice, several
 * contexts and threads, the validation plumbing, Vulkan interop, views,
 * memory accounting and exhaustion, the staging path, profiling, the
 * pipeline cache, fills, allocation hooks and failure injection. */
#include "vkft_check.h"

#include <vkformer_vulkan.h>

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB (1024ull * 1024ull)

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */
static vkf_context *cpu_capture(vkft_capture *cap) {
  vkf_context_desc d = {
      .device = "cpu", .log_fn = vkft_capture_fn, .log_user = cap, .log_level = VKF_LOG_DEBUG};
  vkf_context *ctx = NULL;
  VKFT_OK(vkf_context_create(&d, &ctx));
  return ctx;
}

static vkf_context *vulkan_capture(vkft_capture *cap, uint32_t flags) {
  vkf_context_desc d = {
      .flags = flags, .log_fn = vkft_capture_fn, .log_user = cap, .log_level = VKF_LOG_DEBUG};
  return vkft_vulkan_desc(&d);
}

/* Destroys and asserts that no validation message arrived. */
static void destroy_checked(vkf_context *ctx, vkft_capture *cap) {
  vkf_context_destroy(ctx);
  if (vkft_capture_find(cap, VKF_LOG_VALIDATION, NULL)) {
    vkft_capture_dump(cap, "validation messages");
    fail_msg("validation messages were logged");
  }
}

/* Is a Vulkan device listed? Fails if not and VKF_TEST_REQUIRE_VULKAN=1. */
static bool have_vulkan(void) {
  vkf_device_info infos[17];
  uint32_t n = 0;
  VKFT_OK(vkf_enumerate_devices(NULL, infos, 17, &n));
  bool any = false;
  for (uint32_t i = 0; i < n && i < 17; i++)
    any = any || (infos[i].backend == VKF_BACKEND_VULKAN && infos[i].usable);
  if (!any && vkft_vulkan_required())
    fail_msg("no usable Vulkan device, and VKF_TEST_REQUIRE_VULKAN=1");
  return any;
}

/* Reads a tensor's raw bytes. */
static void *read_raw(vkf_context *ctx, vkf_tensor t, size_t *bytes) {
  vkf_tensor_info info;
  VKFT_OK(vkf_tensor_info_get(ctx, t, &info));
  void *p = malloc(info.bytes);
  assert_non_null(p);
  VKFT_OK(vkf_tensor_read(ctx, t, p, info.bytes));
  if (bytes)
    *bytes = info.bytes;
  return p;
}

static char *make_temp_dir(const char *tag) {
  char *path = malloc(256);
  assert_non_null(path);
  const char *tmp = getenv("TMPDIR");
  snprintf(path, 256, "%s/vkft-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
  assert_non_null(mkdtemp(path));
  return path;
}

static void remove_tree(const char *path) {
  DIR *d = opendir(path);
  if (d) {
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
        continue;
      char sub[1024];
      snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
      struct stat st;
      if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
        remove_tree(sub);
      else
        unlink(sub);
    }
    closedir(d);
  }
  rmdir(path);
}

/* Number of entries in a directory (-1 if it does not exist); the first
 * regular file's path goes to `first`. */
static int dir_entries(const char *path, char *first, size_t n) {
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int count = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    if (count == 0 && first)
      snprintf(first, n, "%s/%s", path, e->d_name);
    count++;
  }
  closedir(d);
  return count;
}

/* A small fixed workload whose results are exact: returns the number of
 * mismatches, or -1 when a call failed (its tensors are destroyed either way). */
static int exact_workload(vkf_context *ctx, int seed) {
  enum { R = 37, C = 41 };
  int64_t s[2] = {R, C}, sr[1] = {R}, sc[1] = {C};
  float a[R * C], c[R * C], b[C], r[R]; /* per call: threads run this at once */
  for (int i = 0; i < R * C; i++)
    a[i] = (float)((i * 7 + seed) % 23 - 11);
  for (int i = 0; i < C; i++)
    b[i] = (float)((i + seed) % 5);
  vkf_tensor ta = {0}, tb = {0}, tc = {0}, tr = {0};
  int bad = -1;
  if (vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, s, &ta) ||
      vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, sc, &tb) ||
      vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, s, &tc) ||
      vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, sr, &tr))
    goto out;
  if (vkf_tensor_write(ctx, ta, a, sizeof(a)) || vkf_tensor_write(ctx, tb, b, sizeof(b)) ||
      vkf_add(ctx, tc, ta, tb) || vkf_mul(ctx, tc, tc, tb) || vkf_scale(ctx, tc, tc, 0.5f) ||
      vkf_row_sum(ctx, tr, tc) || vkf_tensor_read(ctx, tc, c, sizeof(c)) ||
      vkf_tensor_read(ctx, tr, r, sizeof(r)))
    goto out;
  bad = 0;
  for (int i = 0; i < R; i++) {
    double sum = 0;
    for (int j = 0; j < C; j++) {
      double e = (a[i * C + j] + b[j]) * b[j] * 0.5;
      sum += e;
      bad += c[i * C + j] != (float)e;
    }
    bad += r[i] != (float)sum;
  }
out:
  if (ta.id)
    vkf_tensor_destroy(ctx, ta);
  if (tb.id)
    vkf_tensor_destroy(ctx, tb);
  if (tc.id)
    vkf_tensor_destroy(ctx, tc);
  if (tr.id)
    vkf_tensor_destroy(ctx, tr);
  return bad;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */
static void test_names(void **state) {
  (void)state;
  assert_string_equal(vkf_status_name(VKF_OK), "VKF_OK");
  assert_string_equal(vkf_status_name(VKF_ERROR_SHAPE_MISMATCH), "VKF_ERROR_SHAPE_MISMATCH");
  assert_string_equal(vkf_status_name(VKF_ERROR_CANCELLED), "VKF_ERROR_CANCELLED");
  assert_string_equal(vkf_status_name((vkf_status)-999), "VKF_STATUS_UNKNOWN");
  assert_string_equal(vkf_status_string(VKF_ERROR_OUT_OF_DEVICE_MEMORY), "out of device memory");
  assert_non_null(vkf_status_string((vkf_status)12345));
  for (int s = 0; s >= -15; s--) {
    assert_string_not_equal(vkf_status_name((vkf_status)s), "VKF_STATUS_UNKNOWN");
    assert_true(strlen(vkf_status_string((vkf_status)s)) > 0);
  }
  assert_int_equal(vkf_dtype_size(VKF_DTYPE_F32), 4);
  assert_int_equal(vkf_dtype_size(VKF_DTYPE_I32), 4);
  assert_int_equal(vkf_dtype_size(VKF_DTYPE_F16), 2);
  assert_int_equal(vkf_dtype_size(VKF_DTYPE_BF16), 2);
  assert_int_equal(vkf_dtype_size((vkf_dtype)77), 0);
  assert_string_equal(vkf_dtype_name(VKF_DTYPE_BF16), "bf16");
  assert_string_equal(vkf_dtype_name((vkf_dtype)77), "unknown");
  /* NULL context */
  assert_string_equal(vkf_context_error(NULL), "");
  assert_int_equal(vkf_context_backend(NULL), VKF_BACKEND_CPU);
  vkf_context_destroy(NULL);
  vkf_device_info info;
  assert_int_equal(vkf_context_device(NULL, &info), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_synchronize(NULL), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_context_create(NULL, NULL), VKF_ERROR_NULL_POINTER);
}

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */
/* ------------------------------------------------------------------------ */
static void test_devices(void **state) {
  (void)state;
  uint32_t n = 0;
  assert_int_equal(vkf_enumerate_devices(NULL, NULL, 0, NULL), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_enumerate_devices(NULL, NULL, 3, &n), VKF_ERROR_NULL_POINTER);
  VKFT_OK(vkf_enumerate_devices(NULL, NULL, 0, &n));
  assert_true(n >= 1);
  vkf_device_info *infos = calloc(n + 2, sizeof(*infos));
  assert_non_null(infos);
  uint32_t n2 = 0;
  VKFT_OK(vkf_enumerate_devices(NULL, infos, n + 2, &n2));
  assert_int_equal(n2, n);
  /* the CPU backend is always last */
  const vkf_device_info *cpu = &infos[n - 1];
  assert_int_equal(cpu->backend, VKF_BACKEND_CPU);
  assert_int_equal(cpu->type, VKF_DEVICE_TYPE_CPU_BACKEND);
  assert_true(cpu->usable);
  assert_true(cpu->cpu_threads >= 1);
  assert_string_equal(cpu->driver_name, "cpu");
  for (uint32_t i = 0; i + 1 < n; i++)
    assert_int_equal(infos[i].backend, VKF_BACKEND_VULKAN);
  /* fewer slots than devices: exactly `capacity` written, count is total */
  if (n >= 2) {
    vkf_device_info one[2];
    memset(one, 0xab, sizeof(one));
    uint32_t n3 = 0;
    VKFT_OK(vkf_enumerate_devices(NULL, one, 1, &n3));
    assert_int_equal(n3, n);
    assert_string_equal(one[0].name, infos[0].name);
    const unsigned char *p = (const unsigned char *)&one[1];
    for (size_t i = 0; i < sizeof(one[1]); i++)
      assert_int_equal(p[i], 0xab);
  }
  /* lavapipe, when present, with its known capabilities */
  bool found = false;
  for (uint32_t i = 0; i + 1 < n; i++) {
    const vkf_device_info *d = &infos[i];
    if (!strstr(d->name, "llvmpipe"))
      continue;
    found = true;
    assert_true(d->usable);
    assert_int_equal(d->type, VKF_DEVICE_TYPE_CPU_VULKAN);
    assert_int_equal(d->vendor, VKF_VENDOR_MESA);
    assert_int_equal(d->subgroup_size, 8);
    assert_int_equal(d->shared_memory_bytes, 32 * 1024);
    assert_int_equal(d->max_storage_buffer_range, 128 * MiB);
    assert_true(d->api_version >= ((1u << 22) | (2u << 12)));
    assert_true(d->max_workgroup_invocations >= 256);
    assert_true(d->max_workgroup_count[0] >= 65535);
    assert_true(d->device_memory_bytes >= 256 * MiB);
    assert_true(d->max_allocation_bytes >= 256 * MiB);
    assert_true(d->uma);
    assert_true(d->timestamps);
    assert_string_equal(d->driver_name, "llvmpipe");
    assert_non_null(strstr(d->driver_info, "Mesa"));
  }
  if (n >= 2 && !found)
    fprintf(stderr, "note: no lavapipe device; its capability checks did not run\n");
  if (n == 1 && vkft_vulkan_required())
    fail_msg("only the CPU backend is listed, and VKF_TEST_REQUIRE_VULKAN=1");
  free(infos);
}

static void test_select(void **state) {
  (void)state;
  vkf_context *ctx = NULL;
  vkft_capture cap;
  vkft_capture_init(&cap);
  vkf_context_desc d = {.log_fn = vkft_capture_fn, .log_user = &cap, .log_level = VKF_LOG_DEBUG};
  /* "cpu", any case */
  static const char *const cpus[] = {"cpu", "CPU", "Cpu"};
  for (size_t i = 0; i < 3; i++) {
    d.device = cpus[i];
    VKFT_OK(vkf_context_create(&d, &ctx));
    assert_int_equal(vkf_context_backend(ctx), VKF_BACKEND_CPU);
    vkf_device_info info;
    VKFT_OK(vkf_context_device(ctx, &info));
    assert_int_equal(info.type, VKF_DEVICE_TYPE_CPU_BACKEND);
    assert_string_equal(vkf_context_error(ctx), "");
    vkf_context_destroy(ctx);
  }
  vkf_device_info infos[17];
  uint32_t n = 0;
  VKFT_OK(vkf_enumerate_devices(NULL, infos, 17, &n));
  /* the CPU backend by its index */
  char idx[16];
  snprintf(idx, sizeof(idx), "%u", n - 1);
  d.device = idx;
  VKFT_OK(vkf_context_create(&d, &ctx));
  assert_int_equal(vkf_context_backend(ctx), VKF_BACKEND_CPU);
  vkf_context_destroy(ctx);
  /* missing devices */
  static const char *const missing[] = {"no-such-device-xyz", "99", "1000001", "cpux"};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(missing); i++) {
    d.device = missing[i];
    ctx = (vkf_context *)&cap; /* must be reset to NULL */
    vkf_status st = vkf_context_create(&d, &ctx);
    if (st != VKF_ERROR_NO_DEVICE)
      fail_msg("device \"%s\": %s, expected VKF_ERROR_NO_DEVICE", missing[i], vkf_status_name(st));
    assert_null(ctx);
  }
  /* Vulkan devices by index and by name (any case) */
  if (!have_vulkan())
    return;
  int lvp = -1;
  for (uint32_t i = 0; i + 1 < n; i++)
    if (strstr(infos[i].name, "llvmpipe") && infos[i].usable)
      lvp = (int)i;
  for (uint32_t i = 0; i + 1 < n && i < 16; i++) {
    if (!infos[i].usable)
      continue;
    snprintf(idx, sizeof(idx), "%u", i);
    d.device = idx;
    d.flags = VKF_CONTEXT_VALIDATION;
    VKFT_OK(vkf_context_create(&d, &ctx));
    vkf_device_info info;
    VKFT_OK(vkf_context_device(ctx, &info));
    assert_int_equal(info.backend, VKF_BACKEND_VULKAN);
    assert_string_equal(info.name, infos[i].name);
    destroy_checked(ctx, &cap);
  }
  if (lvp >= 0) {
    static const char *const names[] = {"llvmpipe", "LLVMPIPE", "LlvmPipe", "vmpi"};
    for (size_t i = 0; i < VKFT_ARRAY_LEN(names); i++) {
      d.device = names[i];
      VKFT_OK(vkf_context_create(&d, &ctx));
      vkf_device_info info;
      VKFT_OK(vkf_context_device(ctx, &info));
      assert_string_equal(info.name, infos[lvp].name);
      destroy_checked(ctx, &cap);
    }
  }
  /* automatic: a Vulkan device beats the CPU backend */
  d.device = NULL;
  VKFT_OK(vkf_context_create(&d, &ctx));
  assert_int_equal(vkf_context_backend(ctx), VKF_BACKEND_VULKAN);
  assert_string_equal(vkf_context_error(ctx), "");
  destroy_checked(ctx, &cap);
}

static void test_select_env(void **state) {
  (void)state;
  vkft_capture cap;
  vkft_capture_init(&cap);
  vkf_context_desc d = {.log_fn = vkft_capture_fn,
                        .log_user = &cap,
                        .log_level = VKF_LOG_DEBUG,
                        .flags = VKF_CONTEXT_VALIDATION};
  vkf_context *ctx = NULL;
  bool vk = have_vulkan();
  /* VKF_DEVICE=cpu overrides an explicit Vulkan request, and says so */
  setenv("VKF_DEVICE", "cpu", 1);
  d.device = vk ? "llvmpipe" : "no-such-device";
  VKFT_OK(vkf_context_create(&d, &ctx));
  assert_int_equal(vkf_context_backend(ctx), VKF_BACKEND_CPU);
  assert_true(vkft_capture_find(&cap, VKF_LOG_INFO, "VKF_DEVICE=cpu") >= 1);
  vkf_context_destroy(ctx);
  /* a bad VKF_DEVICE name or index fails, even for a request that would work */
  static const char *const bad[] = {"no-such-device-xyz", "57"};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(bad); i++) {
    setenv("VKF_DEVICE", bad[i], 1);
    d.device = "cpu";
    vkf_status st = vkf_context_create(&d, &ctx);
    if (st != VKF_ERROR_NO_DEVICE)
      fail_msg("VKF_DEVICE=%s: %s, expected VKF_ERROR_NO_DEVICE", bad[i], vkf_status_name(st));
    assert_null(ctx);
  }
  /* an empty VKF_DEVICE is no override */
  setenv("VKF_DEVICE", "", 1);
  d.device = "cpu";
  VKFT_OK(vkf_context_create(&d, &ctx));
  assert_int_equal(vkf_context_backend(ctx), VKF_BACKEND_CPU);
  vkf_context_destroy(ctx);
  if (vk) {
    setenv("VKF_DEVICE", "LLVMpipe", 1);
    d.device = "cpu";
    VKFT_OK(vkf_context_create(&d, &ctx));
    assert_int_equal(vkf_context_backend(ctx), VKF_BACKEND_VULKAN);
    destroy_checked(ctx, &cap);
    setenv("VKF_DEVICE", "0", 1);
    d.device = NULL;
    VKFT_OK(vkf_context_create(&d, &ctx));
    assert_int_equal(vkf_context_backend(ctx), VKF_BACKEND_VULKAN);
    destroy_checked(ctx, &cap);
  }
  unsetenv("VKF_DEVICE");
  /* VKF_THREADS overrides the thread count */
  setenv("VKF_THREADS", "3", 1);
  d.device = "cpu";
  d.cpu_threads = 1;
  VKFT_OK(vkf_context_create(&d, &ctx));
  vkf_device_info info;
  VKFT_OK(vkf_context_device(ctx, &info));
  assert_int_equal(info.cpu_threads, 3);
  vkf_context_destroy(ctx);
  unsetenv("VKF_THREADS");
  VKFT_OK(vkf_context_create(&d, &ctx));
  VKFT_OK(vkf_context_device(ctx, &info));
  assert_int_equal(info.cpu_threads, 1);
  vkft_expect(ctx, vkf_context_set_threads(ctx, 0), VKF_ERROR_INVALID_ARGUMENT, "0 threads");
  vkft_expect(ctx, vkf_context_set_threads(ctx, 5000), VKF_ERROR_INVALID_ARGUMENT, "5000");
  VKFT_OK(vkf_context_set_threads(ctx, 2));
  VKFT_OK(vkf_context_device(ctx, &info));
  assert_int_equal(info.cpu_threads, 2);
  vkf_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Host allocation hooks and allocation failure                             */
/* ------------------------------------------------------------------------ */
typedef struct counting_alloc {
  atomic_long live, total;
  long fail_at; /* the fail_at-th allocation (1-based) fails; 0 = never */
  atomic_long calls;
} counting_alloc;

static void *ca_alloc(void *user, size_t size) {
  counting_alloc *c = user;
  long k = atomic_fetch_add(&c->calls, 1) + 1;
  if (c->fail_at && k == c->fail_at)
    return NULL;
  void *p = malloc(size);
  if (p) {
    atomic_fetch_add(&c->live, 1);
    atomic_fetch_add(&c->total, 1);
  }
  return p;
}
static void *ca_realloc(void *user, void *ptr, size_t size) {
  counting_alloc *c = user;
  long k = atomic_fetch_add(&c->calls, 1) + 1;
  if (c->fail_at && k == c->fail_at)
    return NULL;
  void *p = realloc(ptr, size);
  if (p && !ptr) {
    atomic_fetch_add(&c->live, 1);
    atomic_fetch_add(&c->total, 1);
  }
  return p;
}
static void ca_free(void *user, void *ptr) {
  counting_alloc *c = user;
  if (ptr)
    atomic_fetch_sub(&c->live, 1);
  free(ptr);
}

/* Creates a context with the counting allocator and runs a little work;
 * every step may fail cleanly. Returns true when all of it succeeded. */
static bool workload_with_alloc(counting_alloc *ca, bool vulkan, vkft_capture *cap) {
  vkf_context_desc d = {.device = vulkan ? NULL : "cpu",
                        .flags = vulkan ? VKF_CONTEXT_VALIDATION : 0,
                        .log_fn = vkft_capture_fn,
                        .log_user = cap,
                        .log_level = VKF_LOG_ERROR,
                        .allocator = {ca_alloc, ca_realloc, ca_free, ca}};
  vkf_context *ctx = NULL;
  vkf_status st = vkf_context_create(&d, &ctx);
  if (st != VKF_OK) {
    assert_null(ctx);
    assert_true(st == VKF_ERROR_OUT_OF_HOST_MEMORY);
    return false;
  }
  bool ok = true;
  enum { N = 70 }; /* more than the tensor table's first 64 slots */
  vkf_tensor t[N];
  int made = 0;
  int64_t s[2] = {4, 5};
  for (int i = 0; i < N; i++) {
    st = vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, s, &t[i]);
    if (st != VKF_OK) {
      assert_true(st == VKF_ERROR_OUT_OF_HOST_MEMORY);
      assert_true(strlen(vkf_context_error(ctx)) > 0);
      ok = false;
      break;
    }
    made++;
  }
  if (made >= 3) {
    float x[20];
    for (int i = 0; i < 20; i++)
      x[i] = (float)i;
    st = vkf_tensor_write(ctx, t[0], x, sizeof(x));
    if (st == VKF_OK)
      st = vkf_tensor_write(ctx, t[1], x, sizeof(x));
    if (st == VKF_OK)
      st = vkf_add(ctx, t[2], t[0], t[1]);
    if (st == VKF_OK)
      st = vkf_softmax(ctx, t[2], t[2]);
    float y[20];
    if (st == VKF_OK)
      st = vkf_tensor_read(ctx, t[2], y, sizeof(y));
    if (st != VKF_OK) {
      assert_true(st == VKF_ERROR_OUT_OF_HOST_MEMORY);
      ok = false;
    }
  }
  for (int i = 0; i < made; i += 2) /* leave some for the context to free */
    VKFT_OK(vkf_tensor_destroy(ctx, t[i]));
  vkf_context_destroy(ctx);
  return ok;
}

static void test_allocator(void **state) {
  (void)state;
  vkft_capture cap;
  vkft_capture_init(&cap);
  counting_alloc ca = {0};
  /* incomplete hooks */
  vkf_context_desc bad = {.device = "cpu", .allocator = {ca_alloc, NULL, NULL, &ca}};
  vkf_context *ctx = NULL;
  assert_int_equal(vkf_context_create(&bad, &ctx), VKF_ERROR_INVALID_ARGUMENT);
  assert_null(ctx);
  bad.allocator = (vkf_allocator){NULL, ca_realloc, ca_free, &ca};
  assert_int_equal(vkf_context_create(&bad, &ctx), VKF_ERROR_INVALID_ARGUMENT);
  /* everything balanced */
  assert_true(workload_with_alloc(&ca, false, &cap));
  assert_true(ca.total > 0);
  assert_int_equal(ca.live, 0);
  /* every host allocation failing in turn: clean errors, nothing leaked */
  long calls = ca.calls;
  for (long k = 1; k <= calls; k++) {
    counting_alloc f = {0};
    f.fail_at = k;
    bool ok = workload_with_alloc(&f, false, &cap);
    if (ok && f.calls >= k)
      fail_msg("allocation %ld of %ld failed but the workload succeeded", k, calls);
    if (f.live != 0)
      fail_msg("failing allocation %ld: %ld allocations leaked", k, (long)f.live);
  }
  if (!have_vulkan())
    return;
  /* Vulkan: each allocation of context creation failing in turn */
  counting_alloc cv = {0};
  vkf_context_desc dv = {.flags = VKF_CONTEXT_VALIDATION,
                         .log_fn = vkft_capture_fn,
                         .log_user = &cap,
                         .log_level = VKF_LOG_ERROR,
                         .allocator = {ca_alloc, ca_realloc, ca_free, &cv}};
  VKFT_OK(vkf_context_create(&dv, &ctx));
  long create_calls = cv.calls;
  fprintf(stderr, "note: %ld host allocations in Vulkan context creation\n", create_calls);
  vkf_context_destroy(ctx);
  assert_int_equal(cv.live, 0);
  for (long k = 1; k <= create_calls; k++) {
    counting_alloc f = {0};
    f.fail_at = k;
    dv.allocator.user = &f;
    ctx = NULL;
    vkf_status st = vkf_context_create(&dv, &ctx);
    if (st == VKF_OK)
      vkf_context_destroy(ctx);
    else
      assert_int_equal(st, VKF_ERROR_OUT_OF_HOST_MEMORY);
    if (f.live != 0)
      fail_msg("Vulkan creation, failing allocation %ld: %ld allocations leaked", k, (long)f.live);
  }
  /* then, in one context, each allocation of a workload failing in turn:
   * a clean error, and the context recovers */
  dv.allocator.user = &cv;
  cv.fail_at = 0;
  VKFT_OK(vkf_context_create(&dv, &ctx));
  long before = cv.calls;
  assert_int_equal(exact_workload(ctx, 0), 0);
  long step_calls = cv.calls - before;
  assert_true(step_calls > 0);
  fprintf(stderr, "note: %ld host allocations in a Vulkan workload\n", step_calls);
  for (long k = 1; k <= step_calls; k++) {
    cv.fail_at = cv.calls + k;
    int r = exact_workload(ctx, (int)k);
    cv.fail_at = 0;
    if (r > 0)
      fail_msg("workload with allocation %ld failing gave wrong results", k);
    if (strlen(vkf_context_error(ctx)) == 0 && r < 0)
      fail_msg("allocation %ld failed without an error message", k);
    assert_int_equal(exact_workload(ctx, 1), 0);
  }
  vkf_context_destroy(ctx);
  assert_int_equal(cv.live, 0);
  assert_int_equal(vkft_capture_find(&cap, VKF_LOG_VALIDATION, NULL), 0);
}

/* ------------------------------------------------------------------------ */
/* Several contexts, threads                                                */
/* ------------------------------------------------------------------------ */

static void test_multi_context(void **state) {
  (void)state;
  vkft_capture cap;
  vkft_capture_init(&cap);
  vkf_context *c1 = vulkan_capture(&cap, 0);
  vkf_context *c2 = vulkan_capture(&cap, VKF_CONTEXT_FORCE_STAGING);
  vkf_context *c3 = cpu_capture(&cap);
  vkf_context *all[3] = {c1, c2, c3};
  /* interleaved work on live tensors of each */
  int64_t s[1] = {100};
  vkf_tensor keep[3];
  float x[100];
  for (int i = 0; i < 100; i++)
    x[i] = (float)i;
  for (int k = 0; k < 3; k++)
    keep[k] = vkft_tensor_from(all[k], 1, s, x);
  for (int round = 0; round < 3; round++)
    for (int k = 0; k < 3; k++) {
      assert_int_equal(exact_workload(all[k], round * 3 + k), 0);
      VKFT_OK(vkf_scale(all[k], keep[k], keep[k], 2.0f));
    }
  for (int k = 0; k < 3; k++) {
    float y[100];
    vkft_read(all[k], keep[k], y, 100);
    for (int i = 0; i < 100; i++)
      assert_true(y[i] == (float)i * 8.0f);
  }
  /* destroying one leaves the others working */
  destroy_checked(c1, &cap);
  assert_int_equal(exact_workload(c2, 5), 0);
  assert_int_equal(exact_workload(c3, 6), 0);
  destroy_checked(c2, &cap);
  destroy_checked(c3, &cap);
}

typedef struct thread_job {
  bool vulkan; /* automatic device choice; else "cpu" */
  int iterations;
  int bad;
  vkf_status create_status;
  vkf_backend_kind backend;
  vkft_capture cap;
} thread_job;

static void *thread_main(void *arg) {
  thread_job *j = arg;
  vkf_context_desc d = {.device = j->vulkan ? NULL : "cpu",
                        .flags = j->vulkan ? VKF_CONTEXT_VALIDATION : 0,
                        .log_fn = vkft_capture_fn,
                        .log_user = &j->cap,
                        .log_level = VKF_LOG_WARN};
  for (int round = 0; round < 2; round++) { /* create twice: setup races too */
    vkf_context *ctx = NULL;
    j->create_status = vkf_context_create(&d, &ctx);
    if (j->create_status != VKF_OK)
      return NULL;
    j->backend = vkf_context_backend(ctx);
    for (int i = 0; i < j->iterations; i++) {
      int r = exact_workload(ctx, i);
      j->bad += r < 0 ? 1000 : r;
    }
    vkf_context_destroy(ctx);
  }
  return NULL;
}

/* Two Vulkan contexts (and a CPU one) used at once from three threads; the
 * first contexts of the process, so the loader is loaded under the race. */
static void test_threads(void **state) {
  (void)state;
  thread_job jobs[3] = {{.vulkan = true, .iterations = 6},
                        {.vulkan = true, .iterations = 6},
                        {.vulkan = false, .iterations = 6}};
  pthread_t th[3];
  for (int i = 0; i < 3; i++) {
    vkft_capture_init(&jobs[i].cap);
    assert_int_equal(pthread_create(&th[i], NULL, thread_main, &jobs[i]), 0);
  }
  for (int i = 0; i < 3; i++)
    pthread_join(th[i], NULL);
  bool vk = have_vulkan();
  for (int i = 0; i < 3; i++) {
    VKFT_OK(jobs[i].create_status);
    assert_int_equal(jobs[i].bad, 0);
    if (jobs[i].vulkan && vk)
      assert_int_equal(jobs[i].backend, VKF_BACKEND_VULKAN);
    /* without Vulkan the automatic choice warns once per context */
    bool warn_ok = !vk && jobs[i].vulkan;
    if (vkft_capture_find(&jobs[i].cap, VKF_LOG_VALIDATION, NULL) ||
        (!warn_ok && vkft_capture_find(&jobs[i].cap, VKF_LOG_WARN, NULL)) ||
        vkft_capture_find(&jobs[i].cap, VKF_LOG_ERROR, NULL)) {
      vkft_capture_dump(&jobs[i].cap, "thread log");
      fail_msg("thread %d logged warnings or validation messages", i);
    }
  }
}

/* ------------------------------------------------------------------------ */
/* The validation plumbing proves itself                                    */
/* ------------------------------------------------------------------------ */
/* Records a fill of `buf` and a copy reading the same bytes with no barrier
 * between them: a read-after-write hazard that synchronization validation
 * reports (SYNC-HAZARD-READ-AFTER-WRITE). Not submitted. */
static void provoke_sync_hazard(const vkf_vulkan_interop *h, VkBuffer buf, VkDeviceSize off,
                                VkBuffer dst, VkDeviceSize dst_off) {
  PFN_vkGetDeviceProcAddr gdpa =
      (PFN_vkGetDeviceProcAddr)h->get_instance_proc_addr(h->instance, "vkGetDeviceProcAddr");
#define DFN(name) PFN_##name name = (PFN_##name)gdpa(h->device, #name)
  DFN(vkCreateCommandPool);
  DFN(vkDestroyCommandPool);
  DFN(vkAllocateCommandBuffers);
  DFN(vkBeginCommandBuffer);
  DFN(vkEndCommandBuffer);
  DFN(vkCmdFillBuffer);
  DFN(vkCmdCopyBuffer);
#undef DFN
  VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                 .queueFamilyIndex = h->queue_family};
  VkCommandPool pool;
  assert_int_equal(vkCreateCommandPool(h->device, &pci, NULL, &pool), VK_SUCCESS);
  VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                    .commandPool = pool,
                                    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                    .commandBufferCount = 1};
  VkCommandBuffer cb;
  assert_int_equal(vkAllocateCommandBuffers(h->device, &ai, &cb), VK_SUCCESS);
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  assert_int_equal(vkBeginCommandBuffer(cb, &bi), VK_SUCCESS);
  vkCmdFillBuffer(cb, buf, off, 256, 0);
  VkBufferCopy region = {off, dst_off, 256};
  vkCmdCopyBuffer(cb, buf, dst, 1, &region);
  assert_int_equal(vkEndCommandBuffer(cb), VK_SUCCESS);
  vkDestroyCommandPool(h->device, pool, NULL);
}

static void test_validation_selftest(void **state) {
  (void)state;
  vkft_capture cap;
  vkft_capture_init(&cap);
  /* log_level ERROR: validation messages are delivered regardless */
  vkf_context_desc d = {.log_fn = vkft_capture_fn, .log_user = &cap, .log_level = VKF_LOG_ERROR};
  vkf_context *ctx = vkft_vulkan_desc(&d);
  assert_int_equal(exact_workload(ctx, 1), 0);
  VKFT_OK(vkf_synchronize(ctx));
  assert_int_equal(vkft_capture_find(&cap, VKF_LOG_VALIDATION, NULL), 0);
  vkf_vulkan_interop h;
  VKFT_OK(vkf_vulkan_context_handles(ctx, &h));
  assert_non_null(h.get_instance_proc_addr);
  PFN_vkGetDeviceProcAddr gdpa =
      (PFN_vkGetDeviceProcAddr)h.get_instance_proc_addr(h.instance, "vkGetDeviceProcAddr");
  assert_non_null(gdpa);
  PFN_vkGetDeviceQueue get_queue = (PFN_vkGetDeviceQueue)gdpa(h.device, "vkGetDeviceQueue");
  assert_non_null(get_queue);
  fprintf(stderr, "note: the next VALIDATION message is provoked on purpose\n");
  VkQueue q = VK_NULL_HANDLE;
  get_queue(h.device, h.queue_family, 1000, &q); /* only queue 0 exists */
  if (vkft_capture_find(&cap, VKF_LOG_VALIDATION, "queueIndex") == 0) {
    vkft_capture_dump(&cap, "log");
    fail_msg("an invalid vkGetDeviceQueue call produced no VKF_LOG_VALIDATION message: the "
             "validation layer is not reporting to the log");
  }
  /* synchronization validation is on too: the barrier tracking is only
   * proven by zero messages if a missing barrier produces one */
  int64_t s[1] = {1024};
  vkf_tensor a = vkft_tensor(ctx, 1, s), b = vkft_tensor(ctx, 1, s);
  VkBuffer ba, bb;
  VkDeviceSize oa, ob, za, zb;
  VKFT_OK(vkf_vulkan_tensor_buffer(ctx, a, &ba, &oa, &za));
  VKFT_OK(vkf_vulkan_tensor_buffer(ctx, b, &bb, &ob, &zb));
  VKFT_OK(vkf_synchronize(ctx));
  fprintf(stderr, "note: the next VALIDATION message is provoked on purpose\n");
  provoke_sync_hazard(&h, ba, oa, bb, ob);
  if (vkft_capture_find(&cap, VKF_LOG_VALIDATION, "SYNC-HAZARD") == 0) {
    vkft_capture_dump(&cap, "log");
    fail_msg("a read-after-write without a barrier produced no SYNC-HAZARD message: "
             "synchronization validation is off");
  }
  VKFT_OK(vkf_tensor_destroy(ctx, a));
  VKFT_OK(vkf_tensor_destroy(ctx, b));
  /* the context still works */
  assert_int_equal(exact_workload(ctx, 2), 0);
  vkf_context_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* Interop                                                                  */
/* ------------------------------------------------------------------------ */
typedef struct lock_count {
  atomic_int locks, unlocks, depth, max_depth;
} lock_count;
static void lc_lock(void *user) {
  lock_count *c = user;
  atomic_fetch_add(&c->locks, 1);
  int d = atomic_fetch_add(&c->depth, 1) + 1;
  if (d > c->max_depth)
    c->max_depth = d;
}
static void lc_unlock(void *user) {
  lock_count *c = user;
  atomic_fetch_add(&c->unlocks, 1);
  atomic_fetch_sub(&c->depth, 1);
}

static void test_interop(void **state) {
  (void)state;
  vkft_capture cap;
  vkft_capture_init(&cap);
  vkf_context *a = vulkan_capture(&cap, 0);
  vkf_context *cpu = vkft_cpu();
  vkf_vulkan_interop h;
  assert_int_equal(vkf_vulkan_context_handles(NULL, &h), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_vulkan_context_handles(a, NULL), VKF_ERROR_NULL_POINTER);
  vkft_expect(cpu, vkf_vulkan_context_handles(cpu, &h), VKF_ERROR_UNSUPPORTED, "CPU handles");
  VKFT_OK(vkf_vulkan_context_handles(a, &h));
  assert_non_null(h.instance);
  assert_non_null(h.device);
  assert_non_null(h.queue);
  assert_true(h.buffer_device_address);
  /* a tensor of A that must survive B */
  int64_t s[1] = {64};
  float x[64];
  for (int i = 0; i < 64; i++)
    x[i] = (float)i;
  vkf_tensor ka = vkft_tensor_from(a, 1, s, x);
  VKFT_OK(vkf_scale(a, ka, ka, 3.0f)); /* still recorded when B starts */

  lock_count lc = {0};
  vkf_vulkan_interop hb = h;
  hb.lock_queue = lc_lock;
  hb.unlock_queue = lc_unlock;
  hb.queue_lock_user = &lc;
  vkf_context_desc db = {.vulkan_interop = &hb,
                         .log_fn = vkft_capture_fn,
                         .log_user = &cap,
                         .log_level = VKF_LOG_DEBUG};
  vkf_context *b = NULL;
  VKFT_OK(vkf_context_create(&db, &b));
  assert_int_equal(vkf_context_backend(b), VKF_BACKEND_VULKAN);
  vkf_device_info ia, ib;
  VKFT_OK(vkf_context_device(a, &ia));
  VKFT_OK(vkf_context_device(b, &ib));
  assert_string_equal(ia.name, ib.name);
  vkf_vulkan_interop hb2;
  VKFT_OK(vkf_vulkan_context_handles(b, &hb2));
  assert_ptr_equal(hb2.device, h.device);
  assert_ptr_equal(hb2.queue, h.queue);
  assert_ptr_equal(hb2.instance, h.instance);
  /* B computes correctly, A too, interleaved */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(exact_workload(b, i), 0);
    assert_int_equal(exact_workload(a, i + 10), 0);
  }
  /* a softmax and a matmul on B against the CPU backend */
  {
    enum { M = 17, K = 33, N = 9 };
    int64_t sa[2] = {M, K}, sb[2] = {K, N}, sc[2] = {M, N};
    vkft_rng rng = vkft_rng_seed(5);
    float xa[M * K], xb[K * N], yb[M * N], yc[M * N];
    vkft_fill_uniform(&rng, xa, M * K, -1, 1);
    vkft_fill_uniform(&rng, xb, K * N, -1, 1);
    vkf_context *cs[2] = {b, cpu};
    float *outs[2] = {yb, yc};
    for (int k = 0; k < 2; k++) {
      vkf_tensor ta = vkft_tensor_from(cs[k], 2, sa, xa), tb = vkft_tensor_from(cs[k], 2, sb, xb),
                 tc = vkft_tensor(cs[k], 2, sc);
      VKFT_OK(vkf_matmul(cs[k], tc, ta, tb, VKF_NO_TENSOR, 0));
      VKFT_OK(vkf_softmax(cs[k], tc, tc));
      vkft_read(cs[k], tc, outs[k], M * N);
    }
    assert_int_equal(vkft_compare_f("interop matmul+softmax", yb, yc, M * N, 1e-5, 1e-4), 0);
  }
  assert_true(lc.locks > 0);
  assert_int_equal(lc.locks, lc.unlocks);
  assert_int_equal(lc.max_depth, 1);
  vkf_context_destroy(b);
  /* A goes on: its old tensor holds its value, new work runs */
  float y[64];
  vkft_read(a, ka, y, 64);
  for (int i = 0; i < 64; i++)
    assert_true(y[i] == 3.0f * (float)i);
  assert_int_equal(exact_workload(a, 99), 0);
  /* adoption errors */
  vkf_vulkan_interop broken = h;
  broken.buffer_device_address = VK_FALSE;
  db.vulkan_interop = &broken;
  assert_int_equal(vkf_context_create(&db, &b), VKF_ERROR_UNSUPPORTED);
  assert_null(b);
  broken = h;
  broken.device = VK_NULL_HANDLE;
  assert_int_equal(vkf_context_create(&db, &b), VKF_ERROR_NULL_POINTER);
  broken = h;
  broken.queue = VK_NULL_HANDLE;
  assert_int_equal(vkf_context_create(&db, &b), VKF_ERROR_NULL_POINTER);
  assert_int_equal(exact_workload(a, 100), 0);
  vkft_destroy(cpu);
  destroy_checked(a, &cap);
}

/* vkf_vulkan_tensor_buffer: the host copies one tensor into another with its
 * own command buffer on the context's queue, using the reported ranges. */
static void host_copy(const vkf_vulkan_interop *h, VkBuffer src, VkDeviceSize src_off, VkBuffer dst,
                      VkDeviceSize dst_off, VkDeviceSize size) {
  PFN_vkGetDeviceProcAddr gdpa =
      (PFN_vkGetDeviceProcAddr)h->get_instance_proc_addr(h->instance, "vkGetDeviceProcAddr");
#define DFN(name) PFN_##name name = (PFN_##name)gdpa(h->device, #name)
  DFN(vkCreateCommandPool);
  DFN(vkDestroyCommandPool);
  DFN(vkAllocateCommandBuffers);
  DFN(vkBeginCommandBuffer);
  DFN(vkEndCommandBuffer);
  DFN(vkCmdCopyBuffer);
  DFN(vkCmdPipelineBarrier);
  DFN(vkQueueSubmit);
  DFN(vkQueueWaitIdle);
#undef DFN
  VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                 .queueFamilyIndex = h->queue_family};
  VkCommandPool pool;
  assert_int_equal(vkCreateCommandPool(h->device, &pci, NULL, &pool), VK_SUCCESS);
  VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                    .commandPool = pool,
                                    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                    .commandBufferCount = 1};
  VkCommandBuffer cb;
  assert_int_equal(vkAllocateCommandBuffers(h->device, &ai, &cb), VK_SUCCESS);
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                 .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
  assert_int_equal(vkBeginCommandBuffer(cb, &bi), VK_SUCCESS);
  VkMemoryBarrier before = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                            .srcAccessMask = VK_ACCESS_MEMORY_WRITE_BIT,
                            .dstAccessMask =
                                VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
  vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1,
                       &before, 0, NULL, 0, NULL);
  VkBufferCopy region = {src_off, dst_off, size};
  vkCmdCopyBuffer(cb, src, dst, 1, &region);
  VkMemoryBarrier after = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                           .dstAccessMask = VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT |
                                            VK_ACCESS_HOST_READ_BIT};
  vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_ALL_COMMANDS_BIT | VK_PIPELINE_STAGE_HOST_BIT, 0, 1,
                       &after, 0, NULL, 0, NULL);
  assert_int_equal(vkEndCommandBuffer(cb), VK_SUCCESS);
  VkSubmitInfo si = {
      .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb};
  assert_int_equal(vkQueueSubmit(h->queue, 1, &si, VK_NULL_HANDLE), VK_SUCCESS);
  assert_int_equal(vkQueueWaitIdle(h->queue), VK_SUCCESS);
  vkDestroyCommandPool(h->device, pool, NULL);
}

static void tensor_buffer_case(uint32_t flags) {
  vkft_capture cap;
  vkft_capture_init(&cap);
  vkf_context *ctx = vulkan_capture(&cap, flags);
  vkf_vulkan_interop h;
  VKFT_OK(vkf_vulkan_context_handles(ctx, &h));
  int64_t s[1] = {1000}, sv[1] = {300};
  float x[1000], z[1000] = {0};
  for (int i = 0; i < 1000; i++)
    x[i] = (float)i + 0.25f;
  vkf_tensor src = vkft_tensor_from(ctx, 1, s, x), dst = vkft_tensor_from(ctx, 1, s, z);
  vkf_tensor vsrc = vkft_view(ctx, src, 100, 1, sv), vdst = vkft_view(ctx, dst, 500, 1, sv);
  VkBuffer bs, bd, bvs, bvd;
  VkDeviceSize os, od, ovs, ovd, ss, sd, svs, svd;
  VKFT_OK(vkf_vulkan_tensor_buffer(ctx, src, &bs, &os, &ss));
  VKFT_OK(vkf_vulkan_tensor_buffer(ctx, dst, &bd, &od, &sd));
  VKFT_OK(vkf_vulkan_tensor_buffer(ctx, vsrc, &bvs, &ovs, &svs));
  VKFT_OK(vkf_vulkan_tensor_buffer(ctx, vdst, &bvd, &ovd, &svd));
  assert_int_equal(ss, 4000);
  assert_int_equal(svs, 1200);
  assert_ptr_equal(bvs, bs);
  assert_ptr_equal(bvd, bd);
  assert_int_equal(ovs, os + 400);
  assert_int_equal(ovd, od + 2000);
  VKFT_OK(vkf_synchronize(ctx));
  /* a view range copied by the host lands where vkformer reads it */
  host_copy(&h, bvs, ovs, bvd, ovd, svs);
  float y[1000];
  vkft_read(ctx, dst, y, 1000);
  for (int i = 0; i < 1000; i++)
    assert_true(y[i] == (i >= 500 && i < 800 ? x[i - 400] : 0.0f));
  /* errors */
  assert_int_equal(vkf_vulkan_tensor_buffer(NULL, src, &bs, &os, &ss), VKF_ERROR_NULL_POINTER);
  vkft_expect(ctx, vkf_vulkan_tensor_buffer(ctx, src, NULL, &os, &ss), VKF_ERROR_NULL_POINTER,
              "NULL buffer");
  vkft_expect(ctx, vkf_vulkan_tensor_buffer(ctx, src, &bs, NULL, &ss), VKF_ERROR_NULL_POINTER,
              "NULL offset");
  vkft_expect(ctx, vkf_vulkan_tensor_buffer(ctx, src, &bs, &os, NULL), VKF_ERROR_NULL_POINTER,
              "NULL size");
  vkf_tensor stale = vsrc;
  VKFT_OK(vkf_tensor_destroy(ctx, vsrc));
  vkft_expect(ctx, vkf_vulkan_tensor_buffer(ctx, stale, &bs, &os, &ss), VKF_ERROR_STALE_HANDLE,
              "stale");
  destroy_checked(ctx, &cap);
}

static void test_tensor_buffer(void **state) {
  (void)state;
  tensor_buffer_case(0);
  tensor_buffer_case(VKF_CONTEXT_FORCE_STAGING);
  vkf_context *cpu = vkft_cpu();
  int64_t s[1] = {4};
  vkf_tensor t = vkft_tensor(cpu, 1, s);
  VkBuffer b;
  VkDeviceSize o, z;
  vkft_expect(cpu, vkf_vulkan_tensor_buffer(cpu, t, &b, &o, &z), VKF_ERROR_UNSUPPORTED, "CPU");
  vkft_destroy(cpu);
}

/* ------------------------------------------------------------------------ */
/* Tensors and views                                                        */
/* ------------------------------------------------------------------------ */
static void tensor_api_errors(vkf_context *ctx) {
  int64_t s[2] = {3, 4}, s0[2] = {3, 0}, sneg[1] = {-2}, sbig[2] = {65536, 65536},
          s5[5] = {1, 1, 1, 1, 1};
  vkf_tensor t = {77};
  assert_int_equal(vkf_tensor_create(NULL, VKF_DTYPE_F32, 2, s, &t), VKF_ERROR_NULL_POINTER);
  vkft_expect(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, NULL, &t), VKF_ERROR_NULL_POINTER,
              "NULL shape");
  vkft_expect(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, s, NULL), VKF_ERROR_NULL_POINTER,
              "NULL out");
  vkft_expect(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 0, s, &t), VKF_ERROR_INVALID_ARGUMENT,
              "ndim 0");
  assert_int_equal(t.id, 0); /* out reset on failure */
  vkft_expect(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 5, s5, &t), VKF_ERROR_INVALID_ARGUMENT,
              "ndim 5");
  vkft_expect(ctx, vkf_tensor_create(ctx, (vkf_dtype)9, 2, s, &t), VKF_ERROR_INVALID_ARGUMENT,
              "dtype 9");
  vkft_expect(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, s0, &t), VKF_ERROR_INVALID_ARGUMENT,
              "zero dim");
  vkft_expect(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, sneg, &t), VKF_ERROR_INVALID_ARGUMENT,
              "negative dim");
  vkft_expect(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 2, sbig, &t), VKF_ERROR_INVALID_ARGUMENT,
              "2^32 elements");
  vkf_tensor a = vkft_tensor(ctx, 2, s), b = vkft_tensor(ctx, 2, s);
  vkf_tensor i32 = vkft_tensor_dtype(ctx, VKF_DTYPE_I32, 2, s);
  vkf_tensor_info info;
  VKFT_OK(vkf_tensor_info_get(ctx, a, &info));
  assert_int_equal(info.dtype, VKF_DTYPE_F32);
  assert_int_equal(info.ndim, 2);
  assert_int_equal(info.shape[0], 3);
  assert_int_equal(info.shape[1], 4);
  assert_int_equal(info.elements, 12);
  assert_int_equal(info.bytes, 48);
  assert_int_equal(vkf_tensor_info_get(NULL, a, &info), VKF_ERROR_NULL_POINTER);
  vkft_expect(ctx, vkf_tensor_info_get(ctx, a, NULL), VKF_ERROR_NULL_POINTER, "info NULL");
  float buf[13] = {0};
  vkft_expect(ctx, vkf_tensor_write(ctx, a, buf, 44), VKF_ERROR_SHAPE_MISMATCH, "short write");
  vkft_expect(ctx, vkf_tensor_write(ctx, a, buf, 52), VKF_ERROR_SHAPE_MISMATCH, "long write");
  vkft_expect(ctx, vkf_tensor_write(ctx, a, NULL, 48), VKF_ERROR_NULL_POINTER, "NULL src");
  vkft_expect(ctx, vkf_tensor_read(ctx, a, buf, 47), VKF_ERROR_SHAPE_MISMATCH, "short read");
  vkft_expect(ctx, vkf_tensor_read(ctx, a, NULL, 48), VKF_ERROR_NULL_POINTER, "NULL dst");
  assert_int_equal(vkf_tensor_write(NULL, a, buf, 48), VKF_ERROR_NULL_POINTER);
  assert_int_equal(vkf_tensor_read(NULL, a, buf, 48), VKF_ERROR_NULL_POINTER);
  VKFT_OK(vkf_tensor_write(ctx, a, buf, 48));
  vkft_expect(ctx, vkf_tensor_copy(ctx, i32, a), VKF_ERROR_DTYPE_MISMATCH, "copy dtype");
  int64_t s13[1] = {13};
  vkf_tensor c13 = vkft_tensor(ctx, 1, s13);
  vkft_expect(ctx, vkf_tensor_copy(ctx, c13, a), VKF_ERROR_SHAPE_MISMATCH, "copy count");
  assert_int_equal(vkf_tensor_copy(NULL, b, a), VKF_ERROR_NULL_POINTER);
  VKFT_OK(vkf_tensor_copy(ctx, b, a));
  VKFT_OK(vkf_tensor_copy(ctx, a, a));
  assert_int_equal(vkf_tensor_fill(NULL, a, 1.0f), VKF_ERROR_NULL_POINTER);
  vkft_expect(ctx, vkf_tensor_fill(ctx, i32, 3e9f), VKF_ERROR_INVALID_ARGUMENT, "i32 fill range");
  vkft_expect(ctx, vkf_tensor_fill(ctx, i32, -3e9f), VKF_ERROR_INVALID_ARGUMENT, "i32 fill -");
  vkft_expect(ctx, vkf_tensor_fill(ctx, i32, NAN), VKF_ERROR_INVALID_ARGUMENT, "i32 fill NaN");
  vkft_expect(ctx, vkf_tensor_fill(ctx, i32, 2147483648.0f), VKF_ERROR_INVALID_ARGUMENT,
              "i32 fill 2^31");
  vkf_tensor stale = a;
  VKFT_OK(vkf_tensor_destroy(ctx, a));
  vkft_expect(ctx, vkf_tensor_destroy(ctx, stale), VKF_ERROR_STALE_HANDLE, "double destroy");
  vkft_expect(ctx, vkf_tensor_write(ctx, stale, buf, 48), VKF_ERROR_STALE_HANDLE, "stale write");
  vkft_expect(ctx, vkf_tensor_read(ctx, stale, buf, 48), VKF_ERROR_STALE_HANDLE, "stale read");
  vkft_expect(ctx, vkf_tensor_info_get(ctx, stale, &info), VKF_ERROR_STALE_HANDLE, "stale info");
  vkft_expect(ctx, vkf_tensor_fill(ctx, stale, 0), VKF_ERROR_STALE_HANDLE, "stale fill");
  vkft_expect(ctx, vkf_tensor_copy(ctx, b, stale), VKF_ERROR_STALE_HANDLE, "stale copy src");
  vkft_expect(ctx, vkf_tensor_copy(ctx, stale, b), VKF_ERROR_STALE_HANDLE, "stale copy dst");
  vkft_expect(ctx, vkf_tensor_destroy(ctx, VKF_NO_TENSOR), VKF_ERROR_INVALID_ARGUMENT, "id 0");
  vkft_expect(ctx, vkf_tensor_destroy(ctx, (vkf_tensor){0xffffffffu}), VKF_ERROR_STALE_HANDLE,
              "forged");
  assert_int_equal(vkf_tensor_destroy(NULL, b), VKF_ERROR_NULL_POINTER);
  /* a failed call's message does not stick to the next success */
  VKFT_OK(vkf_synchronize(ctx));
}

static void test_tensor_errors(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  tensor_api_errors(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  tensor_api_errors(vk);
  vkft_destroy(vk);
}

static void views_case(vkf_context *ctx) {
  vkf_memory_stats m0, m1;
  VKFT_OK(vkf_memory_stats_get(ctx, &m0));
  int64_t sb[2] = {4, 8}, s28[2] = {2, 8}, s5[1] = {5}, s3[1] = {3}, s33[1] = {33}, s8[1] = {8},
          s1[1] = {1}, s0[1] = {0};
  float x[32];
  for (int i = 0; i < 32; i++)
    x[i] = (float)i;
  vkf_tensor base = vkft_tensor_from(ctx, 2, sb, x);
  vkf_tensor v = vkft_view(ctx, base, 8, 2, s28);
  vkf_tensor_info info;
  VKFT_OK(vkf_tensor_info_get(ctx, v, &info));
  assert_int_equal(info.ndim, 2);
  assert_int_equal(info.elements, 16);
  assert_int_equal(info.bytes, 64);
  float y[32];
  vkft_read(ctx, v, y, 16);
  for (int i = 0; i < 16; i++)
    assert_true(y[i] == (float)(8 + i));
  /* a view of a view: offsets add up */
  vkf_tensor vv = vkft_view(ctx, v, 3, 1, s5);
  vkft_read(ctx, vv, y, 5);
  for (int i = 0; i < 5; i++)
    assert_true(y[i] == (float)(11 + i));
  /* writes through a view are seen by the base, and the other way */
  float m[5] = {-1, -2, -3, -4, -5};
  VKFT_OK(vkf_tensor_write(ctx, vv, m, sizeof(m)));
  vkft_read(ctx, base, y, 32);
  for (int i = 0; i < 32; i++)
    assert_true(y[i] == (i >= 11 && i < 16 ? -(float)(i - 10) : (float)i));
  VKFT_OK(vkf_tensor_write(ctx, base, x, sizeof(x)));
  vkft_read(ctx, vv, y, 5);
  for (int i = 0; i < 5; i++)
    assert_true(y[i] == (float)(11 + i));
  /* out of range, alignment, argument errors */
  vkf_tensor bad;
  vkft_expect(ctx, vkf_tensor_view(ctx, base, 30, 1, s3, &bad), VKF_ERROR_SHAPE_MISMATCH,
              "past the end");
  vkft_expect(ctx, vkf_tensor_view(ctx, base, 32, 1, s1, &bad), VKF_ERROR_SHAPE_MISMATCH,
              "at the end");
  vkft_expect(ctx, vkf_tensor_view(ctx, base, 0, 1, s33, &bad), VKF_ERROR_SHAPE_MISMATCH,
              "too big");
  vkft_expect(ctx, vkf_tensor_view(ctx, base, UINT64_MAX, 1, s1, &bad), VKF_ERROR_SHAPE_MISMATCH,
              "offset overflow");
  vkft_expect(ctx, vkf_tensor_view(ctx, base, UINT64_MAX - 2, 1, s8, &bad),
              VKF_ERROR_SHAPE_MISMATCH, "offset + size overflow");
  vkft_expect(ctx, vkf_tensor_view(ctx, v, 12, 1, s5, &bad), VKF_ERROR_SHAPE_MISMATCH,
              "past a view's end, inside the base");
  vkft_expect(ctx, vkf_tensor_view(ctx, base, 0, 1, s0, &bad), VKF_ERROR_INVALID_ARGUMENT,
              "zero dim");
  vkft_expect(ctx, vkf_tensor_view(ctx, base, 0, 0, s1, &bad), VKF_ERROR_INVALID_ARGUMENT,
              "ndim 0");
  vkft_expect(ctx, vkf_tensor_view(ctx, base, 0, 1, NULL, &bad), VKF_ERROR_NULL_POINTER,
              "NULL shape");
  vkft_expect(ctx, vkf_tensor_view(ctx, base, 0, 1, s1, NULL), VKF_ERROR_NULL_POINTER, "NULL out");
  assert_int_equal(vkf_tensor_view(NULL, base, 0, 1, s1, &bad), VKF_ERROR_NULL_POINTER);
  vkf_tensor h16 = vkft_tensor_dtype(ctx, VKF_DTYPE_F16, 1, s33);
  vkft_expect(ctx, vkf_tensor_view(ctx, h16, 1, 1, s3, &bad), VKF_ERROR_INVALID_ARGUMENT,
              "f16 view at 2 bytes");
  vkf_tensor h16v = vkft_view(ctx, h16, 2, 1, s3);
  vkft_expect(ctx, vkf_tensor_view(ctx, h16v, 1, 1, s1, &bad), VKF_ERROR_INVALID_ARGUMENT,
              "f16 view of view at 6 bytes");
  VKFT_OK(vkf_tensor_destroy(ctx, h16v));
  VKFT_OK(vkf_tensor_destroy(ctx, h16));

  /* ops on disjoint views of one storage */
  vkf_tensor r0 = vkft_view(ctx, base, 0, 1, s8), r1 = vkft_view(ctx, base, 8, 1, s8),
             r2 = vkft_view(ctx, base, 16, 1, s8), r3 = vkft_view(ctx, base, 24, 1, s8);
  VKFT_OK(vkf_add(ctx, r3, r0, r1));
  VKFT_OK(vkf_mul(ctx, r2, r2, r0));
  VKFT_OK(vkf_softmax(ctx, r1, r1));
  vkft_read(ctx, base, y, 32);
  for (int i = 0; i < 8; i++) {
    assert_true(y[i] == (float)i);
    assert_true(y[24 + i] == (float)i + (float)(8 + i));
    assert_true(y[16 + i] == (float)(16 + i) * (float)i);
  }
  double den = 0;
  for (int i = 0; i < 8; i++)
    den += exp((double)i - 7.0);
  for (int i = 0; i < 8; i++)
    assert_true(fabs(y[8 + i] - exp((double)i - 7.0) / den) < 1e-6);
  /* copies between views: disjoint works, identical bytes is a no-op,
   * partial overlap is refused */
  VKFT_OK(vkf_tensor_write(ctx, base, x, sizeof(x)));
  VKFT_OK(vkf_tensor_copy(ctx, r0, r2));
  vkf_tensor r0b = vkft_view(ctx, base, 0, 2, (int64_t[]){2, 4});
  VKFT_OK(vkf_tensor_copy(ctx, r0b, r0));
  vkf_tensor half = vkft_view(ctx, base, 4, 1, s8);
  vkft_expect(ctx, vkf_tensor_copy(ctx, half, r0), VKF_ERROR_INVALID_ARGUMENT,
              "copy between overlapping views");
  vkft_expect(ctx, vkf_tensor_copy(ctx, r0, half), VKF_ERROR_INVALID_ARGUMENT,
              "copy between overlapping views, reversed");
  vkft_read(ctx, base, y, 32);
  for (int i = 0; i < 32; i++)
    assert_true(y[i] == (i < 8 ? (float)(16 + i) : (float)i));
  /* the view outlives its base */
  VKFT_OK(vkf_memory_stats_get(ctx, &m1));
  assert_int_equal(m1.tensors, m0.tensors + 9);
  VKFT_OK(vkf_tensor_destroy(ctx, base));
  vkf_memory_stats m2;
  VKFT_OK(vkf_memory_stats_get(ctx, &m2));
  assert_int_equal(m2.tensors, m1.tensors - 1);
  assert_int_equal(m2.device_bytes_used, m1.device_bytes_used); /* still referenced */
  VKFT_OK(vkf_scale(ctx, vv, vv, 2.0f));
  vkft_read(ctx, vv, y, 5);
  for (int i = 0; i < 5; i++)
    assert_true(y[i] == 2.0f * (float)(11 + i));
  vkft_read(ctx, v, y, 16);
  for (int i = 0; i < 16; i++)
    assert_true(y[i] == (i >= 3 && i < 8 ? 2.0f : 1.0f) * (float)(8 + i));
  vkf_tensor views[] = {v, vv, r0, r1, r2, r3, r0b, half};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(views); i++)
    VKFT_OK(vkf_tensor_destroy(ctx, views[i]));
  VKFT_OK(vkf_memory_stats_get(ctx, &m2));
  assert_int_equal(m2.tensors, m0.tensors);
  assert_int_equal(m2.device_bytes_used, m0.device_bytes_used);
  vkft_expect(ctx, vkf_tensor_view(ctx, base, 0, 1, s1, &bad), VKF_ERROR_STALE_HANDLE,
              "view of a destroyed base");
  VKFT_OK(vkf_synchronize(ctx));
}

static void test_views(void **state) {
  (void)state;
  vkf_context *cpu = vkft_cpu();
  views_case(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  views_case(vk);
  vkft_destroy(vk);
  vk = vkft_vulkan_flags(VKF_CONTEXT_FORCE_STAGING);
  views_case(vk);
  vkft_destroy(vk);
}

/* ------------------------------------------------------------------------ */
/* Memory                                                                   */
/* ------------------------------------------------------------------------ */
static void test_memory_stats(void **state) {
  (void)state;
  vkf_context *ctxs[2] = {vkft_cpu(), vkft_vulkan()};
  for (int k = 0; k < 2; k++) {
    vkf_context *ctx = ctxs[k];
    bool vk = vkf_context_backend(ctx) == VKF_BACKEND_VULKAN;
    vkf_memory_stats s0, s1, s2;
    assert_int_equal(vkf_memory_stats_get(NULL, &s0), VKF_ERROR_NULL_POINTER);
    assert_int_equal(vkf_memory_stats_get(ctx, NULL), VKF_ERROR_NULL_POINTER);
    VKFT_OK(vkf_memory_stats_get(ctx, &s0));
    assert_int_equal(s0.tensors, 0);
    assert_int_equal(s0.device_bytes_used, 0);
    enum { N = 100 };
    vkf_tensor t[N];
    int64_t s[1] = {100};
    float x[100] = {0};
    for (int i = 0; i < N; i++) {
      t[i] = vkft_tensor(ctx, 1, s);
      VKFT_OK(vkf_tensor_write(ctx, t[i], x, sizeof(x)));
    }
    VKFT_OK(vkf_memory_stats_get(ctx, &s1));
    assert_int_equal(s1.tensors, N);
    assert_true(s1.device_bytes_used >= N * sizeof(x));
    assert_true(s1.device_bytes_used <= N * (sizeof(x) + 256)); /* alignment only */
    assert_true(s1.device_bytes_allocated >= s1.device_bytes_used);
    assert_true(s1.device_bytes_peak >= s1.device_bytes_used);
    if (vk) {
      /* sub-allocated: a block or two, never one allocation per tensor */
      assert_true(s1.device_blocks >= 1);
      assert_true(s1.device_blocks <= 2);
    }
    for (int i = 0; i < N; i++)
      VKFT_OK(vkf_tensor_destroy(ctx, t[i]));
    VKFT_OK(vkf_memory_stats_get(ctx, &s2));
    assert_int_equal(s2.tensors, 0);
    assert_int_equal(s2.device_bytes_used, 0);
    assert_true(s2.device_bytes_peak >= s1.device_bytes_used);
    assert_true(s2.device_blocks <= s1.device_blocks);
    vkft_destroy(ctx);
  }
}

/* The device sub-allocator under churn: every tensor holds its own pattern,
 * which must survive any sequence of creations and destructions. Freeing
 * every other tensor of a back-to-back run leaves more free ranges in a
 * block than it ever had before. */
static void fill_pattern(float *x, size_t n, uint32_t tag) {
  for (size_t i = 0; i < n; i++)
    x[i] = (float)(tag * 8191u + (uint32_t)i % 8191u);
}

static void test_suballocation_churn(void **state) {
  (void)state;
  vkf_context *ctxs[2] = {vkft_vulkan(), vkft_cpu()};
  for (int k = 0; k < 2; k++) {
    vkf_context *ctx = ctxs[k];
    enum { N = 400 };
    vkf_tensor t[N];
    size_t len[N];
    uint32_t tag[N];
    bool live[N] = {false};
    float *buf = vkft_alloc(8192), *got = vkft_alloc(8192);
    /* 40 tensors of 256 bytes back to back, then every other one freed */
    for (int i = 0; i < 40; i++) {
      len[i] = 64;
      tag[i] = (uint32_t)i;
      int64_t s[1] = {64};
      fill_pattern(buf, 64, tag[i]);
      t[i] = vkft_tensor_from(ctx, 1, s, buf);
      live[i] = true;
    }
    for (int i = 1; i < 40; i += 2) {
      VKFT_OK(vkf_tensor_destroy(ctx, t[i]));
      live[i] = false;
    }
    /* then random churn */
    vkft_rng rng = vkft_rng_seed(77);
    uint32_t next_tag = 1000;
    for (int step = 0; step < 600; step++) {
      int i = (int)vkft_uniform(&rng, 0, N - 0.001f);
      if (live[i]) {
        VKFT_OK(vkf_tensor_destroy(ctx, t[i]));
        live[i] = false;
      } else {
        len[i] = 1 + (size_t)vkft_uniform(&rng, 0, 8000);
        tag[i] = next_tag++;
        int64_t s[1] = {(int64_t)len[i]};
        fill_pattern(buf, len[i], tag[i]);
        t[i] = vkft_tensor_from(ctx, 1, s, buf);
        live[i] = true;
      }
    }
    size_t bad = 0;
    for (int i = 0; i < N; i++) {
      if (!live[i])
        continue;
      vkft_read(ctx, t[i], got, len[i]);
      fill_pattern(buf, len[i], tag[i]);
      if (memcmp(got, buf, len[i] * sizeof(float)) != 0 && bad++ < 5)
        fprintf(stderr, "  tensor %d (%zu elements, tag %u) was overwritten\n", i, len[i], tag[i]);
      VKFT_OK(vkf_tensor_destroy(ctx, t[i]));
    }
    assert_int_equal(bad, 0);
    vkf_memory_stats ms;
    VKFT_OK(vkf_memory_stats_get(ctx, &ms));
    assert_int_equal(ms.tensors, 0);
    assert_int_equal(ms.device_bytes_used, 0);
    free(buf);
    free(got);
    vkft_destroy(ctx);
  }
}

static void test_out_of_memory(void **state) {
  (void)state;
  vkf_context_desc d = {.memory_limit = 64 * MiB};
  for (int k = 0; k < 2; k++) {
    vkf_context *ctx = NULL;
    if (k == 0) {
      d.device = "cpu";
      VKFT_OK(vkf_context_create(&d, &ctx));
    } else {
      d.device = NULL;
      ctx = vkft_vulkan_desc(&d);
    }
    /* one tensor beyond the limit */
    int64_t big[1] = {(int64_t)(100 * MiB / 4)};
    vkf_tensor t;
    vkft_expect(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, big, &t),
                VKF_ERROR_OUT_OF_DEVICE_MEMORY, "100 MiB under a 64 MiB limit");
    assert_int_equal(exact_workload(ctx, 3), 0);
    /* fill up with 8 MiB tensors: the limit holds, and most of it is usable */
    int64_t s8[1] = {(int64_t)(8 * MiB / 4)};
    vkf_tensor ts[16];
    int n = 0;
    vkf_status st;
    while (n < 16 && (st = vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, s8, &ts[n])) == VKF_OK)
      n++;
    vkft_expect(ctx, st, VKF_ERROR_OUT_OF_DEVICE_MEMORY, "filling the limit");
    vkf_memory_stats ms;
    VKFT_OK(vkf_memory_stats_get(ctx, &ms));
    assert_true(ms.device_bytes_allocated <= 64 * MiB);
    assert_true(n >= 4);
    assert_true(n <= 8);
    /* the context still works, and freed memory is usable again */
    VKFT_OK(vkf_tensor_fill(ctx, ts[0], 1.5f));
    VKFT_OK(vkf_scale(ctx, ts[0], ts[0], 2.0f));
    float y[4];
    vkf_tensor head = vkft_view(ctx, ts[0], 0, 1, (int64_t[]){4});
    vkft_read(ctx, head, y, 4);
    for (int i = 0; i < 4; i++)
      assert_true(y[i] == 3.0f);
    VKFT_OK(vkf_tensor_destroy(ctx, head));
    for (int i = 0; i < n; i++)
      VKFT_OK(vkf_tensor_destroy(ctx, ts[i]));
    for (int i = 0; i < n; i++)
      VKFT_OK(vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, s8, &ts[i]));
    for (int i = 0; i < n; i++)
      VKFT_OK(vkf_tensor_destroy(ctx, ts[i]));
    assert_int_equal(exact_workload(ctx, 4), 0);
    vkft_destroy(ctx);
  }
}

/* A request far beyond the device (3 GiB on lavapipe's 2 GiB heap) fails
 * cleanly and the context keeps working. */
static void test_huge_tensor(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan();
  vkf_device_info info;
  VKFT_OK(vkf_context_device(ctx, &info));
  uint64_t want = 3ull << 30;
  if (want <= info.device_memory_bytes && want <= info.max_allocation_bytes) {
    fprintf(stderr, "note: %s could hold 3 GiB; asking for 4 GiB - 4 bytes\n", info.name);
    want = (1ull << 32) - 4;
  }
  int64_t s[1] = {(int64_t)(want / 4)};
  vkf_tensor t;
  vkft_expect(ctx, vkf_tensor_create(ctx, VKF_DTYPE_F32, 1, s, &t), VKF_ERROR_OUT_OF_DEVICE_MEMORY,
              "huge tensor");
  assert_int_equal(t.id, 0);
  vkf_memory_stats ms;
  VKFT_OK(vkf_memory_stats_get(ctx, &ms));
  assert_int_equal(ms.tensors, 0);
  assert_int_equal(exact_workload(ctx, 7), 0);
  vkft_destroy(ctx);
}

/* ------------------------------------------------------------------------ */
/* The staging path                                                         */
/* ------------------------------------------------------------------------ */
static void test_force_staging(void **state) {
  (void)state;
  vkf_context *direct = vkft_vulkan();
  vkf_context *staged = vkft_vulkan_flags(VKF_CONTEXT_FORCE_STAGING);
  vkf_context *ctxs[2] = {direct, staged};
  /* a tensor larger than the 64 MiB staging chunk: write, op, copy, read */
  const size_t n = 72 * MiB / 4 + 3;
  uint32_t *pat = malloc(n * 4), *got = malloc(n * 4);
  assert_non_null(pat);
  assert_non_null(got);
  for (size_t i = 0; i < n; i++) {
    float f = (float)(i % 8191) * 0.125f - 500.0f;
    memcpy(&pat[i], &f, 4);
  }
  int64_t sh[1] = {(int64_t)n};
  for (int k = 0; k < 2; k++) {
    vkf_context *ctx = ctxs[k];
    vkf_tensor t = vkft_tensor(ctx, 1, sh);
    VKFT_OK(vkf_tensor_write(ctx, t, pat, n * 4));
    VKFT_OK(vkf_tensor_read(ctx, t, got, n * 4));
    assert_memory_equal(got, pat, n * 4);
    VKFT_OK(vkf_scale(ctx, t, t, -2.0f));
    vkf_tensor c = vkft_tensor(ctx, 1, sh);
    VKFT_OK(vkf_tensor_copy(ctx, c, t));
    VKFT_OK(vkf_tensor_destroy(ctx, t));
    VKFT_OK(vkf_tensor_read(ctx, c, got, n * 4));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
      float f, g;
      memcpy(&f, &pat[i], 4);
      memcpy(&g, &got[i], 4);
      bad += g != -2.0f * f;
    }
    assert_int_equal(bad, 0);
    /* a partial read of the far end through a view */
    vkf_tensor tail = vkft_view(ctx, c, n - 1000, 1, (int64_t[]){1000});
    float y[1000];
    vkft_read(ctx, tail, y, 1000);
    for (int i = 0; i < 1000; i++) {
      float f;
      memcpy(&f, &pat[n - 1000 + (size_t)i], 4);
      assert_true(y[i] == -2.0f * f);
    }
    VKFT_OK(vkf_tensor_destroy(ctx, tail));
    VKFT_OK(vkf_tensor_destroy(ctx, c));
  }
  free(pat);
  free(got);
  /* many small writes and reads, interleaved with ops: same results */
  enum { T = 300, E = 37 };
  float outs[2][T][E];
  for (int k = 0; k < 2; k++) {
    vkf_context *ctx = ctxs[k];
    vkf_tensor ts[T];
    int64_t s[1] = {E};
    for (int i = 0; i < T; i++) {
      float x[E];
      for (int j = 0; j < E; j++)
        x[j] = (float)(i * E + j) * 0.01f;
      ts[i] = vkft_tensor_from(ctx, 1, s, x);
      if (i > 0)
        VKFT_OK(vkf_add(ctx, ts[i], ts[i], ts[i - 1])); /* reads the previous write */
      if (i % 7 == 0)
        VKFT_OK(vkf_tensor_fill(ctx, ts[i], (float)i)); /* overwrites after the read */
      if (i % 11 == 0)
        VKFT_OK(vkf_softmax(ctx, ts[i], ts[i]));
    }
    for (int i = 0; i < T; i++)
      vkft_read(ctx, ts[i], outs[k][i], E);
    for (int i = 0; i < T; i++)
      VKFT_OK(vkf_tensor_destroy(ctx, ts[i]));
    assert_int_equal(exact_workload(ctx, 8), 0);
  }
  assert_memory_equal(outs[0], outs[1], sizeof(outs[0]));
  vkft_destroy(direct);
  vkft_destroy(staged);
}

/* Virtual memory of the process in bytes (0 where /proc is unavailable). */
static uint64_t vm_size(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return 0;
  char line[256];
  unsigned long long kb = 0;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmSize: %llu kB", &kb) == 1)
      break;
  fclose(f);
  return kb * 1024ull;
}

/* The staging path (discrete GPUs) must not take a staging allocation per
 * small write: 500 writes of 4 KiB recorded in one submission stay within a
 * few staging blocks. Lavapipe backs memory with the process's own address
 * space, so the process's virtual size shows what was allocated. */
static void test_staging_memory_bounded(void **state) {
  (void)state;
  vkf_context *ctx = vkft_vulkan_flags(VKF_CONTEXT_FORCE_STAGING);
  enum { T = 500, E = 1024 };
  vkf_tensor *ts = calloc(T, sizeof(*ts));
  assert_non_null(ts);
  int64_t s[1] = {E};
  float x[E];
  for (int i = 0; i < T; i++)
    ts[i] = vkft_tensor(ctx, 1, s);
  VKFT_OK(vkf_synchronize(ctx));
  uint64_t before = vm_size();
  uint64_t peak = before;
  for (int i = 0; i < T; i++) {
    for (int j = 0; j < E; j++)
      x[j] = (float)(i + j);
    VKFT_OK(vkf_tensor_write(ctx, ts[i], x, sizeof(x)));
    if (i % 50 == 49) {
      uint64_t v = vm_size();
      peak = v > peak ? v : peak;
    }
  }
  /* everything arrived */
  for (int i = 0; i < T; i += 37) {
    float y[E];
    vkft_read(ctx, ts[i], y, E);
    for (int j = 0; j < E; j++)
      assert_true(y[j] == (float)(i + j));
  }
  if (before) {
    uint64_t growth = peak - before;
    fprintf(stderr, "note: %d staged writes of %zu bytes grew the process by %llu MiB\n", T,
            sizeof(x), (unsigned long long)(growth / MiB));
    assert_true(growth < 512 * MiB); /* one 16 MiB block per write would be 7.8 GiB */
  }
  for (int i = 0; i < T; i++)
    VKFT_OK(vkf_tensor_destroy(ctx, ts[i]));
  free(ts);
  vkft_destroy(ctx);
}

/* Host transfers are ordered with recorded ops: a write waits for earlier
 * ops that read or write the tensor, a read for those that write it. */
static void host_ordering_case(vkf_context *ctx) {
  enum { N = 4096 };
  int64_t s[1] = {N};
  float a[N], b[N], y[N];
  for (int i = 0; i < N; i++) {
    a[i] = (float)i;
    b[i] = (float)(N - i);
  }
  vkf_tensor x = vkft_tensor_from(ctx, 1, s, a), t = vkft_tensor(ctx, 1, s);
  VKFT_OK(vkf_scale(ctx, t, x, 2.0f));             /* reads x (recorded) */
  VKFT_OK(vkf_tensor_write(ctx, x, b, sizeof(b))); /* must not overtake the read */
  VKFT_OK(vkf_scale(ctx, x, x, 3.0f));             /* reads the new x */
  VKFT_OK(vkf_tensor_write(ctx, t, a, sizeof(a))); /* overwrites t after its write */
  VKFT_OK(vkf_add(ctx, t, t, x));                  /* a + 3b */
  vkft_read(ctx, t, y, N);
  for (int i = 0; i < N; i++)
    assert_true(y[i] == a[i] + 3.0f * b[i]);
  vkft_read(ctx, x, y, N);
  for (int i = 0; i < N; i++)
    assert_true(y[i] == 3.0f * b[i]);
  /* a write of part of a tensor (a view) while an op on the rest is pending */
  vkf_tensor lo = vkft_view(ctx, x, 0, 1, (int64_t[]){N / 2}),
             hi = vkft_view(ctx, x, N / 2, 1, (int64_t[]){N / 2});
  VKFT_OK(vkf_scale(ctx, hi, hi, 0.5f));
  VKFT_OK(vkf_tensor_write(ctx, lo, a, sizeof(a) / 2));
  vkft_read(ctx, x, y, N);
  for (int i = 0; i < N; i++)
    assert_true(y[i] == (i < N / 2 ? a[i] : 1.5f * b[i]));
  VKFT_OK(vkf_tensor_destroy(ctx, lo));
  VKFT_OK(vkf_tensor_destroy(ctx, hi));
  VKFT_OK(vkf_tensor_destroy(ctx, x));
  VKFT_OK(vkf_tensor_destroy(ctx, t));
}

static void test_host_ordering(void **state) {
  (void)state;
  vkf_context *ctxs[3] = {vkft_cpu(), vkft_vulkan(), vkft_vulkan_flags(VKF_CONTEXT_FORCE_STAGING)};
  for (int k = 0; k < 3; k++) {
    host_ordering_case(ctxs[k]);
    vkft_destroy(ctxs[k]);
  }
}

/* ------------------------------------------------------------------------ */
/* Profiling                                                                */
/* ------------------------------------------------------------------------ */
static const vkf_op_time *find_op(const vkf_op_time *t, uint32_t n, const char *name) {
  for (uint32_t i = 0; i < n; i++)
    if (!strcmp(t[i].name, name))
      return &t[i];
  return NULL;
}

static void profile_case(vkf_context *ctx) {
  int64_t s[2] = {64, 1024};
  vkf_tensor a = vkft_tensor(ctx, 2, s), b = vkft_tensor(ctx, 2, s);
  VKFT_OK(vkf_tensor_fill(ctx, a, 0.5f));
  VKFT_OK(vkf_tensor_fill(ctx, b, 0.25f));
  for (int i = 0; i < 3; i++)
    VKFT_OK(vkf_add(ctx, a, a, b));
  for (int i = 0; i < 2; i++)
    VKFT_OK(vkf_softmax(ctx, b, a));
  vkf_op_time t[16];
  uint32_t n = 0;
  assert_int_equal(vkf_profile_read(NULL, t, 16, &n), VKF_ERROR_NULL_POINTER);
  vkft_expect(ctx, vkf_profile_read(ctx, t, 16, NULL), VKF_ERROR_NULL_POINTER, "NULL count");
  vkft_expect(ctx, vkf_profile_read(ctx, NULL, 16, &n), VKF_ERROR_NULL_POINTER, "NULL out");
  VKFT_OK(vkf_profile_read(ctx, t, 16, &n));
  assert_int_equal(n, 3);
  const vkf_op_time *fill = find_op(t, n, "fill"), *add = find_op(t, n, "add"),
                    *sm = find_op(t, n, "softmax");
  assert_non_null(fill);
  assert_non_null(add);
  assert_non_null(sm);
  assert_int_equal(fill->count, 2);
  assert_int_equal(add->count, 3);
  assert_int_equal(sm->count, 2);
  assert_true(fill->total_ms > 0 && add->total_ms > 0 && sm->total_ms > 0);
  assert_true(add->total_ms < 60e3);
  /* count only, and a short array */
  uint32_t n2 = 0;
  VKFT_OK(vkf_profile_read(ctx, NULL, 0, &n2));
  assert_int_equal(n2, 3);
  vkf_op_time one[2];
  memset(one, 0, sizeof(one));
  VKFT_OK(vkf_profile_read(ctx, one, 1, &n2));
  assert_int_equal(n2, 3);
  assert_string_equal(one[0].name, t[0].name);
  assert_int_equal(one[1].count, 0);
  /* reset */
  assert_int_equal(vkf_profile_reset(NULL), VKF_ERROR_NULL_POINTER);
  VKFT_OK(vkf_profile_reset(ctx));
  VKFT_OK(vkf_profile_read(ctx, t, 16, &n));
  assert_int_equal(n, 0);
  VKFT_OK(vkf_scale(ctx, a, a, 2.0f));
  VKFT_OK(vkf_profile_read(ctx, t, 16, &n));
  assert_int_equal(n, 1);
  assert_string_equal(t[0].name, "scale");
  assert_int_equal(t[0].count, 1);
  assert_true(t[0].total_ms > 0);
}

/* Many ops in a row: more than one command buffer's worth (1024), every
 * one counted. */
static void profile_many(vkf_context *ctx) {
  VKFT_OK(vkf_profile_reset(ctx));
  int64_t s[1] = {16};
  vkf_tensor a = vkft_tensor(ctx, 1, s);
  VKFT_OK(vkf_tensor_fill(ctx, a, 1.0f));
  enum { OPS = 1100 };
  for (int i = 0; i < OPS; i++)
    VKFT_OK(vkf_scale(ctx, a, a, 1.0f));
  vkf_op_time t[4];
  uint32_t n = 0;
  VKFT_OK(vkf_profile_read(ctx, t, 4, &n));
  const vkf_op_time *sc = find_op(t, n, "scale");
  assert_non_null(sc);
  assert_int_equal(sc->count, OPS);
  VKFT_OK(vkf_tensor_destroy(ctx, a));
}

static void test_profile(void **state) {
  (void)state;
  vkf_context_desc d = {.device = "cpu", .flags = VKF_CONTEXT_PROFILE};
  vkf_context *ctx = NULL;
  VKFT_OK(vkf_context_create(&d, &ctx));
  profile_case(ctx);
  profile_many(ctx);
  vkf_context_destroy(ctx);
  ctx = vkft_vulkan_flags(VKF_CONTEXT_PROFILE);
  profile_case(ctx);
  profile_many(ctx);
  vkft_destroy(ctx);
  /* without the flag */
  vkf_context *plain = vkft_cpu();
  vkf_op_time t[4];
  uint32_t n;
  vkft_expect(plain, vkf_profile_read(plain, t, 4, &n), VKF_ERROR_UNSUPPORTED, "no profiling");
  vkft_destroy(plain);
}

/* ------------------------------------------------------------------------ */
/* Pipeline cache                                                           */
/* ------------------------------------------------------------------------ */
static void cache_context(vkft_capture *cap, uint32_t flags) {
  vkft_capture_reset(cap);
  vkf_context_desc d = {
      .flags = flags, .log_fn = vkft_capture_fn, .log_user = cap, .log_level = VKF_LOG_DEBUG};
  vkf_context *ctx = vkft_vulkan_desc(&d);
  assert_int_equal(exact_workload(ctx, 1), 0);
  destroy_checked(ctx, cap);
}

static void test_pipeline_cache(void **state) {
  (void)state;
  if (!have_vulkan())
    skip();
  char *old = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
  char *root = make_temp_dir("cache");
  setenv("XDG_CACHE_HOME", root, 1);
  char dir[512], file[1024];
  snprintf(dir, sizeof(dir), "%s/vkformer", root);
  vkft_capture cap;
  vkft_capture_init(&cap);

  /* NO_PIPELINE_CACHE writes nothing (Mesa may keep its own cache beside) */
  cache_context(&cap, VKF_CONTEXT_NO_PIPELINE_CACHE);
  assert_int_equal(dir_entries(dir, NULL, 0), -1);

  /* the first context writes the cache, exactly one file */
  cache_context(&cap, 0);
  assert_int_equal(dir_entries(dir, file, sizeof(file)), 1);
  assert_non_null(strstr(file, "pipelines-"));
  struct stat st;
  assert_int_equal(stat(file, &st), 0);
  off_t size = st.st_size;
  assert_true(size > 64);
  assert_int_equal(vkft_capture_find(&cap, VKF_LOG_INFO, "ignoring pipeline cache"), 0);

  /* the second loads it */
  cache_context(&cap, 0);
  if (vkft_capture_find(&cap, VKF_LOG_DEBUG, "loaded pipeline cache") != 1) {
    vkft_capture_dump(&cap, "second context");
    fail_msg("the second context did not load the pipeline cache");
  }
  assert_int_equal(dir_entries(dir, NULL, 0), 1);

  /* corruptions: each is ignored with a message, and the context works */
  static const char *const kinds[] = {"payload byte", "truncated", "header", "empty"};
  for (int k = 0; k < 4; k++) {
    FILE *f = fopen(file, "r+b");
    assert_non_null(f);
    if (k == 0) {
      fseek(f, (long)size - 7, SEEK_SET);
      int c = fgetc(f);
      fseek(f, (long)size - 7, SEEK_SET);
      fputc(c ^ 0x5a, f);
      fclose(f);
    } else {
      fclose(f);
      assert_int_equal(truncate(file, k == 1 ? size / 2 : (k == 2 ? 5 : 0)), 0);
    }
    cache_context(&cap, 0);
    if (vkft_capture_find(&cap, VKF_LOG_INFO, "ignoring pipeline cache") != 1) {
      vkft_capture_dump(&cap, kinds[k]);
      fail_msg("corrupted cache (%s) not reported", kinds[k]);
    }
    assert_int_equal(vkft_capture_find(&cap, VKF_LOG_DEBUG, "loaded pipeline cache"), 0);
    /* rewritten, valid again */
    cache_context(&cap, 0);
    assert_int_equal(vkft_capture_find(&cap, VKF_LOG_DEBUG, "loaded pipeline cache"), 1);
    assert_int_equal(stat(file, &st), 0);
    size = st.st_size;
  }
  /* an explicit directory wins over XDG_CACHE_HOME */
  char *other = make_temp_dir("cache2");
  vkft_capture_reset(&cap);
  vkf_context_desc d = {.pipeline_cache_dir = other, .log_fn = vkft_capture_fn, .log_user = &cap};
  vkf_context *ctx = vkft_vulkan_desc(&d);
  assert_int_equal(exact_workload(ctx, 1), 0);
  destroy_checked(ctx, &cap);
  assert_int_equal(dir_entries(other, NULL, 0), 1);
  assert_int_equal(dir_entries(dir, NULL, 0), 1);
  remove_tree(other);
  free(other);
  /* an unwritable location is a warning, not a failure */
  vkft_capture_reset(&cap);
  d.pipeline_cache_dir = "/proc/vkformer-cannot-write-here";
  ctx = vkft_vulkan_desc(&d);
  assert_int_equal(exact_workload(ctx, 1), 0);
  destroy_checked(ctx, &cap);
  assert_int_equal(vkft_capture_find(&cap, VKF_LOG_WARN, "pipeline cache"), 1);

  if (old) {
    setenv("XDG_CACHE_HOME", old, 1);
    free(old);
  } else {
    unsetenv("XDG_CACHE_HOME");
  }
  remove_tree(root);
  free(root);
}

/* ------------------------------------------------------------------------ */
/* Fill: bit patterns against encodings computed here                       */
/* ------------------------------------------------------------------------ */
static double half_value(uint32_t h) { /* magnitude bits only */
  uint32_t e = (h >> 10) & 31, m = h & 1023;
  if (e == 0)
    return ldexp((double)m, -24);
  return ldexp(1.0 + (double)m / 1024.0, (int)e - 15);
}

static double bf16_value(uint32_t h) {
  uint32_t e = (h >> 7) & 255, m = h & 127;
  if (e == 0)
    return ldexp((double)m, -133);
  return ldexp(1.0 + (double)m / 128.0, (int)e - 127);
}

/* Nearest encoding with ties to even, by exhaustive search over every finite
 * encoding (exact in double: the values are the candidates themselves). */
static uint16_t encode_search(float f, bool bf16) {
  uint32_t inf = bf16 ? 0x7f80u : 0x7c00u, sign = bf16 ? 0x8000u : 0x8000u;
  if (isnan(f))
    return (uint16_t)(inf | 1u); /* any NaN; compared by class */
  double v = fabs((double)f);
  uint16_t s = signbit(f) ? (uint16_t)sign : 0;
  if (isinf(f))
    return (uint16_t)(s | inf);
  /* IEEE overflow: at or past the midpoint between the largest finite value
   * and the next (2^16 for f16, 2^128 for bf16) the result is infinity (at
   * the midpoint too: infinity's encoding is the even one) */
  double max_finite = bf16 ? bf16_value(inf - 1) : half_value(inf - 1);
  double next = bf16 ? ldexp(1.0, 128) : 65536.0;
  if (v >= (max_finite + next) / 2)
    return (uint16_t)(s | inf);
  uint32_t best = 0;
  double best_d = INFINITY;
  for (uint32_t h = 0; h < inf; h++) {
    double hv = bf16 ? bf16_value(h) : half_value(h);
    double d = fabs(hv - v);
    if (d < best_d || (d == best_d && (h & 1) == 0 && (best & 1) == 1)) {
      best_d = d;
      best = h;
    }
  }
  return (uint16_t)(s | best);
}

static bool is_nan16(uint16_t h, bool bf16) {
  return bf16 ? ((h & 0x7f80u) == 0x7f80u && (h & 0x7fu))
              : ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu));
}

static void fill_case(vkf_context *ctx) {
  static const float values[] = {
      0.0f,     -0.0f,     1.0f,      -2.5f,    0.1f,          1.0f / 3,    65504.0f, 65519.0f,
      65520.0f, -70000.0f, 1e-8f,     5.96e-8f, 2.9802322e-8f, 6.1e-5f,     3.0e38f,  FLT_MAX,
      1e-40f,   INFINITY,  -INFINITY, NAN,      1.00390625f,   1.01171875f, 2049.0f,  0.33325195f};
  int64_t s[1] = {5}; /* odd: the last 16-bit element sits alone in its word */
  for (size_t vi = 0; vi < VKFT_ARRAY_LEN(values); vi++) {
    float v = values[vi];
    /* f32: the exact bits */
    vkf_tensor t = vkft_tensor(ctx, 1, s);
    VKFT_OK(vkf_tensor_fill(ctx, t, v));
    uint32_t *w = read_raw(ctx, t, NULL), vb;
    memcpy(&vb, &v, 4);
    for (int i = 0; i < 5; i++)
      assert_int_equal(w[i], vb);
    free(w);
    VKFT_OK(vkf_tensor_destroy(ctx, t));
    /* f16 and bf16 */
    for (int k = 0; k < 2; k++) {
      bool bf = k == 1;
      vkf_tensor h = vkft_tensor_dtype(ctx, bf ? VKF_DTYPE_BF16 : VKF_DTYPE_F16, 1, s);
      VKFT_OK(vkf_tensor_fill(ctx, h, v));
      uint16_t *p = read_raw(ctx, h, NULL), want = encode_search(v, bf);
      for (int i = 0; i < 5; i++) {
        bool ok = isnan(v) ? is_nan16(p[i], bf) : p[i] == want;
        if (!ok)
          fail_msg("%s fill %.9g: got 0x%04x, expected 0x%04x", bf ? "bf16" : "f16", (double)v,
                   p[i], want);
      }
      free(p);
      VKFT_OK(vkf_tensor_destroy(ctx, h));
    }
    /* i32: C conversion (toward zero) where it fits */
    if (isfinite(v) && v > -2147483648.0f && v < 2147483648.0f) {
      vkf_tensor ti = vkft_tensor_dtype(ctx, VKF_DTYPE_I32, 1, s);
      VKFT_OK(vkf_tensor_fill(ctx, ti, v));
      int32_t *q = read_raw(ctx, ti, NULL);
      double tr = trunc((double)v);
      for (int i = 0; i < 5; i++)
        assert_int_equal(q[i], (int32_t)tr);
      free(q);
      VKFT_OK(vkf_tensor_destroy(ctx, ti));
    }
  }
  /* i32 extremes */
  vkf_tensor ti = vkft_tensor_dtype(ctx, VKF_DTYPE_I32, 1, s);
  static const float ints[] = {-2147483648.0f, 2147483520.0f, -7.9f, 7.9f, 16777217.0f};
  static const int32_t want_i[] = {INT32_MIN, 2147483520, -7, 7, 16777216};
  for (size_t i = 0; i < VKFT_ARRAY_LEN(ints); i++) {
    VKFT_OK(vkf_tensor_fill(ctx, ti, ints[i]));
    int32_t *q = read_raw(ctx, ti, NULL);
    for (int j = 0; j < 5; j++)
      assert_int_equal(q[j], want_i[i]);
    free(q);
  }
  /* fills and copies through odd-length 16-bit views leave their neighbours
   * alone (such a view ends in half of a 4-byte word) */
  for (int k = 0; k < 2; k++) {
    int64_t s10[1] = {10}, s3[1] = {3}, s1[1] = {1};
    vkf_tensor base = vkft_tensor_dtype(ctx, k ? VKF_DTYPE_BF16 : VKF_DTYPE_F16, 1, s10);
    VKFT_OK(vkf_tensor_fill(ctx, base, 1.0f));
    vkf_tensor v3 = vkft_view(ctx, base, 2, 1, s3), v1 = vkft_view(ctx, base, 6, 1, s1);
    VKFT_OK(vkf_tensor_fill(ctx, v3, 2.0f));
    VKFT_OK(vkf_tensor_fill(ctx, v1, -1.0f));
    uint16_t *p = read_raw(ctx, base, NULL);
    uint16_t one = encode_search(1.0f, k), two = encode_search(2.0f, k),
             m1 = encode_search(-1.0f, k), half = encode_search(0.5f, k);
    uint16_t want[10] = {one, one, two, two, two, one, m1, one, one, one};
    for (int i = 0; i < 10; i++)
      if (p[i] != want[i])
        fail_msg("%s view fill: element %d is 0x%04x, expected 0x%04x", k ? "bf16" : "f16", i, p[i],
                 want[i]);
    free(p);
    vkf_tensor dst = vkft_view(ctx, base, 6, 1, s3);
    VKFT_OK(vkf_tensor_fill(ctx, v3, 0.5f));
    VKFT_OK(vkf_tensor_copy(ctx, dst, v3));
    p = read_raw(ctx, base, NULL);
    uint16_t want2[10] = {one, one, half, half, half, one, half, half, half, one};
    for (int i = 0; i < 10; i++)
      if (p[i] != want2[i])
        fail_msg("%s view copy: element %d is 0x%04x, expected 0x%04x", k ? "bf16" : "f16", i, p[i],
                 want2[i]);
    free(p);
    /* and host writes and reads of an odd-length view */
    uint16_t w3[3] = {0x1234, 0x5678, 0x9abc}, r3[3] = {0};
    VKFT_OK(vkf_tensor_write(ctx, v3, w3, sizeof(w3)));
    VKFT_OK(vkf_tensor_read(ctx, v3, r3, sizeof(r3)));
    assert_memory_equal(r3, w3, sizeof(w3));
    p = read_raw(ctx, base, NULL);
    uint16_t want3[10] = {one, one, 0x1234, 0x5678, 0x9abc, one, half, half, half, one};
    for (int i = 0; i < 10; i++)
      if (p[i] != want3[i])
        fail_msg("%s view write: element %d is 0x%04x, expected 0x%04x", k ? "bf16" : "f16", i,
                 p[i], want3[i]);
    free(p);
    VKFT_OK(vkf_tensor_destroy(ctx, dst));
    VKFT_OK(vkf_tensor_destroy(ctx, v3));
    VKFT_OK(vkf_tensor_destroy(ctx, v1));
    VKFT_OK(vkf_tensor_destroy(ctx, base));
  }
}

static void test_fill(void **state) {
  (void)state;
  /* the searched encodings themselves, against a few known constants */
  assert_int_equal(encode_search(1.0f, false), 0x3c00);
  assert_int_equal(encode_search(-2.0f, false), 0xc000);
  assert_int_equal(encode_search(65504.0f, false), 0x7bff);
  assert_int_equal(encode_search(65520.0f, false), 0x7c00);
  assert_int_equal(encode_search(5.9604645e-8f, false), 0x0001);
  assert_int_equal(encode_search(1.0f, true), 0x3f80);
  assert_int_equal(encode_search(-2.0f, true), 0xc000);
  vkf_context *cpu = vkft_cpu();
  fill_case(cpu);
  vkft_destroy(cpu);
  vkf_context *vk = vkft_vulkan();
  fill_case(vk);
  vkft_destroy(vk);
  vk = vkft_vulkan_flags(VKF_CONTEXT_FORCE_STAGING);
  fill_case(vk);
  vkft_destroy(vk);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_threads), /* first: the loader is loaded under the race */
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_devices),
      cmocka_unit_test(test_select),
      cmocka_unit_test(test_select_env),
      cmocka_unit_test(test_allocator),
      cmocka_unit_test(test_multi_context),
      cmocka_unit_test(test_validation_selftest),
      cmocka_unit_test(test_interop),
      cmocka_unit_test(test_tensor_buffer),
      cmocka_unit_test(test_tensor_errors),
      cmocka_unit_test(test_views),
      cmocka_unit_test(test_memory_stats),
      cmocka_unit_test(test_suballocation_churn),
      cmocka_unit_test(test_out_of_memory),
      cmocka_unit_test(test_huge_tensor),
      cmocka_unit_test(test_force_staging),
      cmocka_unit_test(test_staging_memory_bounded),
      cmocka_unit_test(test_host_ordering),
      cmocka_unit_test(test_profile),
      cmocka_unit_test(test_pipeline_cache),
      cmocka_unit_test(test_fill),
  };
  if (getenv("VKFT_FILTER")) /* run a subset: VKFT_FILTER=test_views */
    cmocka_set_test_filter(getenv("VKFT_FILTER"));
  return cmocka_run_group_tests_name("context", tests, NULL, NULL);
}
