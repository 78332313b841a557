/* The JSON reader/writer, safetensors reading/writing and atomic files:
 * round trips, and malformed input rejected with the exact status and a
 * message that says what is wrong. Internal API (links the objects). */
#include "test_util.h"

#include "json.h"
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static vkf_env env;

static int setup(void **state) {
  (void)state;
  vkf_env_init(&env, NULL);
  return 0;
}

static void test_json_values(void **state) {
  (void)state;
  const char *text =
      "{\"a\": 12, \"b\": -1.5e3, \"s\": \"x\\n\\u00e9\\ud83d\\ude00\", "
      "\"t\": true, \"n\": null, \"arr\": [1, [2, {}], \"z\"], \"big\": 9007199254740993}";
  vkf_json *v;
  VKFT_OK(vkf_json_parse(&env, "t", text, strlen(text), &v));
  int64_t i;
  double d;
  bool b;
  assert_true(vkf_json_int(v, "a", &i) && i == 12);
  assert_true(vkf_json_num(v, "b", &d) && d == -1500.0);
  assert_false(vkf_json_int(v, "b", &i)); /* not an integer literal */
  assert_string_equal(vkf_json_str(v, "s"), "x\n\xc3\xa9\xf0\x9f\x98\x80");
  assert_true(vkf_json_bool(v, "t", &b) && b);
  assert_int_equal(vkf_json_get(v, "n")->type, VKF_JSON_NULL);
  assert_int_equal(vkf_json_get(v, "arr")->count, 3);
  assert_true(vkf_json_int(v, "big", &i) && i == 9007199254740993LL); /* exact beyond 2^53 */
  assert_null(vkf_json_get(v, "missing"));
  vkf_json_free(&env, v);
}

static void expect_bad(const char *text, const char *needle) {
  vkf_json *v = (vkf_json *)1;
  vkf_status st = vkf_json_parse(&env, "bad.json", text, strlen(text), &v);
  if (st != VKF_ERROR_FORMAT)
    fail_msg("\"%s\": got %s", text, vkf_status_name(st));
  assert_null(v);
  if (!strstr(env.error, needle))
    fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, env.error, needle);
}

static void test_json_errors(void **state) {
  (void)state;
  expect_bad("", "unexpected end");
  expect_bad("{\"a\": }", "line 1 column 7");
  expect_bad("{\"a\": 1,\n \"b\" 2}", "line 2 column 6: expected ':'");
  expect_bad("[1, 2", "expected ',' or ']'");
  expect_bad("\"abc", "unterminated string");
  expect_bad("{\"a\": 1} x", "unexpected data after");
  expect_bad("[\"\\q\"]", "bad escape");
  expect_bad("[01]", "malformed number");
  expect_bad("[1.]", "malformed number");
  expect_bad("[-]", "malformed number");
  expect_bad("[1e]", "malformed number");
  char deep[200];
  memset(deep, '[', 100);
  deep[100] = 0;
  expect_bad(deep, "nested too deeply");
}

static void test_strbuf(void **state) {
  (void)state;
  vkf_strbuf sb;
  vkf_sb_init(&sb, &env);
  vkf_sb_json_string(&sb, "q\"b\\n\n\x01");
  vkf_sb_printf(&sb, " %d %s", 42, "x");
  assert_false(sb.failed);
  assert_string_equal(sb.data, "\"q\\\"b\\\\n\\n\\u0001\" 42 x");
  /* what we write, we read back */
  vkf_strbuf j;
  vkf_sb_init(&j, &env);
  vkf_sb_append(&j, "{\"k\":", 5);
  vkf_sb_json_string(&j, "q\"b\\n\n\x01");
  vkf_sb_append(&j, "}", 1);
  vkf_json *v;
  VKFT_OK(vkf_json_parse(&env, "rt", j.data, j.len, &v));
  assert_string_equal(vkf_json_str(v, "k"), "q\"b\\n\n\x01");
  vkf_json_free(&env, v);
  vkf_sb_free(&j);
  vkf_sb_free(&sb);
}

static char tmpdir[256];

static const char *tmp_path(const char *name) {
  static char buf[512];
  if (!tmpdir[0]) {
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/vkf-test-io-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
  }
  snprintf(buf, sizeof(buf), "%s/%s", tmpdir, name);
  return buf;
}

static void test_safetensors_roundtrip(void **state) {
  (void)state;
  float a[6] = {1, -2, 3.5f, 0, 1e-3f, -7};
  int32_t ids[3] = {5, -1, 70000};
  uint16_t h[2] = {0x3c00, 0xc000};  /* f16 1.0, -2.0 */
  uint16_t bf[2] = {0x3f80, 0x4040}; /* bf16 1.0, 3.0 */
  int64_t sa[2] = {2, 3}, si[1] = {3}, s2[1] = {2}, sscalar[1] = {1};
  float scalar = 4.0f;
  vkf_st_out t[] = {
      {"w.weight", VKF_ST_F32, 2, sa, a},     {"ids", VKF_ST_I32, 1, si, ids},
      {"half", VKF_ST_F16, 1, s2, h},         {"bf", VKF_ST_BF16, 1, s2, bf},
      {"s", VKF_ST_F32, 1, sscalar, &scalar},
  };
  const char *keys[] = {"step", "config"}, *vals[] = {"12", "{\"n\": \"x\"}"};
  const char *path = tmp_path("rt.safetensors");
  VKFT_OK(vkf_st_write(&env, path, t, 5, keys, vals, 2));
  vkf_st_file *f;
  VKFT_OK(vkf_st_open(&env, path, &f));
  assert_int_equal(f->n, 5);
  assert_string_equal(vkf_st_meta(f, "step"), "12");
  assert_string_equal(vkf_st_meta(f, "config"), "{\"n\": \"x\"}");
  const vkf_st_entry *e = vkf_st_find(f, "w.weight");
  assert_non_null(e);
  assert_int_equal(e->ndim, 2);
  assert_int_equal(e->shape[1], 3);
  float back[6];
  VKFT_OK(vkf_st_read_f32(f, e, back, 6));
  assert_memory_equal(back, a, sizeof(a));
  int32_t ib[3];
  VKFT_OK(vkf_st_read(f, vkf_st_find(f, "ids"), ib, sizeof(ib)));
  assert_memory_equal(ib, ids, sizeof(ids));
  float hf[2];
  VKFT_OK(vkf_st_read_f32(f, vkf_st_find(f, "half"), hf, 2));
  assert_true(hf[0] == 1.0f && hf[1] == -2.0f);
  VKFT_OK(vkf_st_read_f32(f, vkf_st_find(f, "bf"), hf, 2));
  assert_true(hf[0] == 1.0f && hf[1] == 3.0f);
  assert_int_equal(vkf_st_read_f32(f, vkf_st_find(f, "ids"), hf, 3), VKF_ERROR_DTYPE_MISMATCH);
  assert_int_equal(vkf_st_read_f32(f, e, back, 5), VKF_ERROR_SHAPE_MISMATCH);
  assert_null(vkf_st_find(f, "nope"));
  vkf_st_close(f);
  /* the header is 8-byte aligned as the format asks */
  FILE *fp = fopen(path, "rb");
  unsigned char lb[8];
  assert_int_equal(fread(lb, 1, 8, fp), 8);
  fclose(fp);
  assert_int_equal(lb[0] % 8, 0);
}

/* Writes a file: 8-byte length + header + data. */
static const char *write_raw(const char *name, const char *header, uint64_t declared_len,
                             size_t data_bytes) {
  const char *path = tmp_path(name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  unsigned char lb[8];
  for (int i = 0; i < 8; i++)
    lb[i] = (unsigned char)(declared_len >> (8 * i));
  fwrite(lb, 1, 8, f);
  fwrite(header, 1, strlen(header), f);
  for (size_t i = 0; i < data_bytes; i++)
    fputc(0, f);
  fclose(f);
  return path;
}

static void expect_open_fails(const char *path, vkf_status want, const char *needle) {
  vkf_st_file *f = (vkf_st_file *)1;
  vkf_status st = vkf_st_open(&env, path, &f);
  if (st != want)
    fail_msg("%s: got %s, expected %s (%s)", path, vkf_status_name(st), vkf_status_name(want),
             env.error);
  assert_null(f);
  if (!strstr(env.error, needle))
    fail_msg("%s: message \"%s\" lacks \"%s\"", path, env.error, needle);
}

static void test_safetensors_malformed(void **state) {
  (void)state;
  const char *h;
  expect_open_fails(tmp_path("absent.safetensors"), VKF_ERROR_IO, "cannot open");
  expect_open_fails(write_raw("empty", "", 0, 0), VKF_ERROR_FORMAT, "unexpected end");
  FILE *tiny = fopen(tmp_path("tiny"), "wb");
  fputs("abc", tiny);
  fclose(tiny);
  expect_open_fails(tmp_path("tiny"), VKF_ERROR_FORMAT, "shorter than 8 bytes");
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  expect_open_fails(write_raw("len", h, 1u << 30, 8), VKF_ERROR_FORMAT, "does not fit");
  expect_open_fails(write_raw("trunc", h, strlen(h), 4), VKF_ERROR_FORMAT, "truncated");
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}";
  expect_open_fails(write_raw("count", h, strlen(h), 8), VKF_ERROR_FORMAT, "needs 12");
  h = "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  expect_open_fails(write_raw("dtype", h, strlen(h), 8), VKF_ERROR_FORMAT, "unsupported dtype Q4");
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
  expect_open_fails(write_raw("overlap", h, strlen(h), 12), VKF_ERROR_FORMAT, "overlap");
  h = "[1,2]";
  expect_open_fails(write_raw("array", h, strlen(h), 0), VKF_ERROR_FORMAT, "not a JSON object");
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}";
  expect_open_fails(write_raw("nooffs", h, strlen(h), 8), VKF_ERROR_FORMAT, "data_offsets");
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]";
  expect_open_fails(write_raw("json", h, strlen(h), 8), VKF_ERROR_FORMAT, "line 1 column");
  h = "{\"__metadata__\":{\"k\":3}}";
  expect_open_fails(write_raw("meta", h, strlen(h), 0), VKF_ERROR_FORMAT, "not a string");
}

static void test_atomic_write(void **state) {
  (void)state;
  char path[600];
  snprintf(path, sizeof(path), "%s", tmp_path("atomic.txt"));
  const char *v1 = "first version";
  const void *parts[1] = {v1};
  size_t sizes[1] = {strlen(v1)};
  VKFT_OK(vkf_write_file_atomic(&env, path, parts, sizes, 1));
  char *back;
  size_t len;
  VKFT_OK(vkf_read_file(&env, path, 1 << 20, &back, &len));
  assert_string_equal(back, v1);
  vkf_free(&env, back);
  /* a write that cannot complete leaves the old file whole */
  char dirpath[600];
  snprintf(dirpath, sizeof(dirpath), "%s", tmp_path("ro"));
  assert_int_equal(mkdir(dirpath, 0500), 0);
  char target[700];
  snprintf(target, sizeof(target), "%s/file", dirpath);
  if (geteuid() != 0) { /* root ignores permissions */
    assert_int_equal(vkf_write_file_atomic(&env, target, parts, sizes, 1), VKF_ERROR_IO);
    assert_non_null(strstr(env.error, "cannot create"));
  }
  /* renaming over a directory fails after the data was written: the
   * temporary file is removed and the directory stays */
  char victim[700];
  snprintf(victim, sizeof(victim), "%s", tmp_path("isdir"));
  assert_int_equal(mkdir(victim, 0700), 0);
  assert_int_equal(vkf_write_file_atomic(&env, victim, parts, sizes, 1), VKF_ERROR_IO);
  struct stat sb;
  assert_int_equal(stat(victim, &sb), 0);
  assert_true(S_ISDIR(sb.st_mode));
  char tmpname[800];
  snprintf(tmpname, sizeof(tmpname), "%s.tmp.%ld", victim, (long)getpid());
  assert_int_not_equal(access(tmpname, F_OK), 0);
  assert_int_equal(vkf_read_file(&env, path, 4, &back, &len), VKF_ERROR_FORMAT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_values),
      cmocka_unit_test(test_json_errors),
      cmocka_unit_test(test_strbuf),
      cmocka_unit_test(test_safetensors_roundtrip),
      cmocka_unit_test(test_safetensors_malformed),
      cmocka_unit_test(test_atomic_write),
  };
  return cmocka_run_group_tests_name("io", tests, setup, NULL);
}
