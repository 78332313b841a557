/* A small JSON reader and writer for config.json, safetensors headers and
 * checkpoints. Errors are statuses with a message naming line and column. */
#ifndef VKF_JSON_H
#define VKF_JSON_H

#include "backend.h"

typedef enum vkf_json_type {
  VKF_JSON_NULL,
  VKF_JSON_BOOL,
  VKF_JSON_NUMBER,
  VKF_JSON_STRING,
  VKF_JSON_ARRAY,
  VKF_JSON_OBJECT,
} vkf_json_type;

typedef struct vkf_json vkf_json;
struct vkf_json {
  vkf_json_type type;
  bool boolean;
  double number;
  bool is_int; /* the literal was an integer that fits int64 */
  int64_t integer;
  char *string; /* STRING: NUL-terminated (may contain \0 escapes; len counts) */
  size_t len;
  char *key;       /* member name when inside an object */
  vkf_json *child; /* first element or member */
  vkf_json *next;  /* next sibling */
  uint32_t count;  /* elements or members */
};

/* Parses text[0..len). On error returns VKF_ERROR_FORMAT with "what: line L
 * column C: ..." in env's error. */
vkf_status vkf_json_parse(vkf_env *env, const char *what, const char *text, size_t len,
                          vkf_json **out);
void vkf_json_free(const vkf_env *env, vkf_json *v);

/* Member of an object (NULL if absent or v is not an object). */
const vkf_json *vkf_json_get(const vkf_json *obj, const char *key);
/* Typed accessors: false when absent or of another type. */
bool vkf_json_int(const vkf_json *obj, const char *key, int64_t *out);
bool vkf_json_num(const vkf_json *obj, const char *key, double *out);
bool vkf_json_bool(const vkf_json *obj, const char *key, bool *out);
const char *vkf_json_str(const vkf_json *obj, const char *key);

/* Growing string for writing JSON and text. On allocation failure `failed`
 * is set and further appends do nothing. */
typedef struct vkf_strbuf {
  const vkf_env *env;
  char *data;
  size_t len, cap;
  bool failed;
} vkf_strbuf;

void vkf_sb_init(vkf_strbuf *sb, const vkf_env *env);
void vkf_sb_free(vkf_strbuf *sb);
void vkf_sb_append(vkf_strbuf *sb, const char *s, size_t n);
void vkf_sb_printf(vkf_strbuf *sb, const char *fmt, ...) VKF_PRINTF(2, 3);
/* Appends s as a JSON string literal, quoted and escaped. */
void vkf_sb_json_string(vkf_strbuf *sb, const char *s);

/* Writes data to path atomically: a temporary file in the same directory,
 * fsync, rename over path, fsync of the directory. On failure path is
 * untouched and the temporary file removed. */
vkf_status vkf_write_file_atomic(vkf_env *env, const char *path, const void *const *parts,
                                 const size_t *sizes, uint32_t n_parts);
/* Reads a whole file (at most max_bytes) into a malloc'd buffer with a
 * terminating NUL. */
vkf_status vkf_read_file(vkf_env *env, const char *path, size_t max_bytes, char **out, size_t *len);

#endif
