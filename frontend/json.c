#include "json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 64

typedef struct parser {
  vkf_env *env;
  const char *what;
  const char *text, *p, *end;
  vkf_status st;
} parser;

static vkf_status perr(parser *ps, const char *msg) {
  if (ps->st != VKF_OK)
    return ps->st;
  unsigned line = 1, col = 1;
  for (const char *q = ps->text; q < ps->p && q < ps->end; q++) {
    if (*q == '\n') {
      line++;
      col = 1;
    } else {
      col++;
    }
  }
  ps->st =
      vkf_fail(ps->env, VKF_ERROR_FORMAT, "%s: line %u column %u: %s", ps->what, line, col, msg);
  return ps->st;
}

static void ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
    ps->p++;
}

static vkf_json *new_node(parser *ps, vkf_json_type t) {
  vkf_json *v = vkf_calloc(ps->env, 1, sizeof(*v));
  if (!v) {
    ps->st = vkf_fail(ps->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s: JSON", ps->what);
    return NULL;
  }
  v->type = t;
  return v;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

static bool utf8_put(char *out, size_t *n, uint32_t cp) {
  if (cp < 0x80)
    out[(*n)++] = (char)cp;
  else if (cp < 0x800) {
    out[(*n)++] = (char)(0xc0 | (cp >> 6));
    out[(*n)++] = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out[(*n)++] = (char)(0xe0 | (cp >> 12));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[(*n)++] = (char)(0x80 | (cp & 0x3f));
  } else if (cp < 0x110000) {
    out[(*n)++] = (char)(0xf0 | (cp >> 18));
    out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[(*n)++] = (char)(0x80 | (cp & 0x3f));
  } else
    return false;
  return true;
}

/* Parses a string literal at ps->p (on the quote). The decoded string is
 * never longer than the literal, so one allocation of that size suffices. */
static char *parse_string(parser *ps, size_t *len_out) {
  const char *start = ++ps->p;
  while (ps->p < ps->end && *ps->p != '"') {
    if (*ps->p == '\\')
      ps->p++;
    ps->p++;
  }
  if (ps->p >= ps->end) {
    ps->p = start - 1;
    perr(ps, "unterminated string");
    return NULL;
  }
  const char *stop = ps->p;
  char *out = vkf_malloc(ps->env, (size_t)(stop - start) + 1);
  if (!out) {
    ps->st = vkf_fail(ps->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s: JSON", ps->what);
    return NULL;
  }
  size_t n = 0;
  for (const char *q = start; q < stop; q++) {
    unsigned char c = (unsigned char)*q;
    if (c < 0x20) {
      ps->p = q;
      perr(ps, "control character in string");
      vkf_free(ps->env, out);
      return NULL;
    }
    if (c != '\\') {
      out[n++] = (char)c;
      continue;
    }
    char e = *++q;
    switch (e) {
    case '"':
    case '\\':
    case '/':
      out[n++] = e;
      break;
    case 'b':
      out[n++] = '\b';
      break;
    case 'f':
      out[n++] = '\f';
      break;
    case 'n':
      out[n++] = '\n';
      break;
    case 'r':
      out[n++] = '\r';
      break;
    case 't':
      out[n++] = '\t';
      break;
    case 'u': {
      uint32_t cp = 0;
      for (int i = 1; i <= 4; i++) {
        int h = q + i < stop ? hexval(q[i]) : -1;
        if (h < 0) {
          ps->p = q;
          perr(ps, "bad \\u escape");
          vkf_free(ps->env, out);
          return NULL;
        }
        cp = cp * 16 + (uint32_t)h;
      }
      q += 4;
      if (cp >= 0xd800 && cp < 0xdc00 && q + 6 < stop + 1 && q[1] == '\\' && q[2] == 'u') {
        uint32_t lo = 0;
        bool ok = true;
        for (int i = 3; i <= 6; i++) {
          int h = q + i < stop ? hexval(q[i]) : -1;
          ok = ok && h >= 0;
          lo = lo * 16 + (uint32_t)(h < 0 ? 0 : h);
        }
        if (ok && lo >= 0xdc00 && lo < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          q += 6;
        }
      }
      utf8_put(out, &n, cp);
      break;
    }
    default:
      ps->p = q;
      perr(ps, "bad escape in string");
      vkf_free(ps->env, out);
      return NULL;
    }
  }
  out[n] = 0;
  ps->p = stop + 1;
  *len_out = n;
  return out;
}

static vkf_json *parse_value(parser *ps, int depth);

static vkf_json *parse_container(parser *ps, int depth, bool object) {
  vkf_json *v = new_node(ps, object ? VKF_JSON_OBJECT : VKF_JSON_ARRAY);
  if (!v)
    return NULL;
  ps->p++;
  ws(ps);
  char close = object ? '}' : ']';
  if (ps->p < ps->end && *ps->p == close) {
    ps->p++;
    return v;
  }
  vkf_json **tail = &v->child;
  for (;;) {
    char *key = NULL;
    ws(ps);
    if (object) {
      size_t klen;
      if (ps->p >= ps->end || *ps->p != '"') {
        perr(ps, "expected a member name");
        break;
      }
      key = parse_string(ps, &klen);
      if (!key)
        break;
      ws(ps);
      if (ps->p >= ps->end || *ps->p != ':') {
        vkf_free(ps->env, key);
        perr(ps, "expected ':'");
        break;
      }
      ps->p++;
    }
    vkf_json *item = parse_value(ps, depth + 1);
    if (!item) {
      vkf_free(ps->env, key);
      break;
    }
    item->key = key;
    *tail = item;
    tail = &item->next;
    v->count++;
    ws(ps);
    if (ps->p < ps->end && *ps->p == ',') {
      ps->p++;
      continue;
    }
    if (ps->p < ps->end && *ps->p == close) {
      ps->p++;
      return v;
    }
    perr(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    break;
  }
  vkf_json_free(ps->env, v);
  return NULL;
}

static bool is_digit(const parser *ps, const char *q) {
  return q < ps->end && *q >= '0' && *q <= '9';
}

/* JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static vkf_json *parse_number(parser *ps) {
  const char *s = ps->p, *q = s;
  bool integer = true;
  if (q < ps->end && *q == '-')
    q++;
  if (!is_digit(ps, q)) {
    if (q == s)
      perr(ps, "unexpected character");
    else
      perr(ps, "malformed number");
    return NULL;
  }
  if (*q == '0' && is_digit(ps, q + 1)) {
    perr(ps, "malformed number (leading zero)");
    return NULL;
  }
  while (is_digit(ps, q))
    q++;
  if (q < ps->end && *q == '.') {
    integer = false;
    if (!is_digit(ps, ++q)) {
      perr(ps, "malformed number");
      return NULL;
    }
    while (is_digit(ps, q))
      q++;
  }
  if (q < ps->end && (*q == 'e' || *q == 'E')) {
    integer = false;
    q++;
    if (q < ps->end && (*q == '+' || *q == '-'))
      q++;
    if (!is_digit(ps, q)) {
      perr(ps, "malformed number");
      return NULL;
    }
    while (is_digit(ps, q))
      q++;
  }
  char buf[64];
  size_t n = (size_t)(q - s);
  if (n >= sizeof(buf)) {
    perr(ps, "number too long");
    return NULL;
  }
  memcpy(buf, s, n);
  buf[n] = 0;
  vkf_json *v = new_node(ps, VKF_JSON_NUMBER);
  if (!v)
    return NULL;
  v->number = strtod(buf, NULL);
  if (integer) {
    errno = 0;
    char *endp;
    long long ll = strtoll(buf, &endp, 10);
    if (errno == 0 && !*endp) {
      v->is_int = true;
      v->integer = ll;
    }
  }
  ps->p = q;
  return v;
}

static vkf_json *parse_value(parser *ps, int depth) {
  if (depth > MAX_DEPTH) {
    perr(ps, "nested too deeply");
    return NULL;
  }
  ws(ps);
  if (ps->p >= ps->end) {
    perr(ps, "unexpected end of input");
    return NULL;
  }
  char c = *ps->p;
  if (c == '{' || c == '[')
    return parse_container(ps, depth, c == '{');
  if (c == '"') {
    vkf_json *v = new_node(ps, VKF_JSON_STRING);
    if (v && !(v->string = parse_string(ps, &v->len))) {
      vkf_free(ps->env, v);
      return NULL;
    }
    return v;
  }
  static const struct {
    const char *lit;
    vkf_json_type t;
    bool b;
  } lits[] = {{"null", VKF_JSON_NULL, false},
              {"true", VKF_JSON_BOOL, true},
              {"false", VKF_JSON_BOOL, false}};
  for (size_t i = 0; i < VKF_ARRAY_LEN(lits); i++) {
    size_t n = strlen(lits[i].lit);
    if ((size_t)(ps->end - ps->p) >= n && !memcmp(ps->p, lits[i].lit, n)) {
      vkf_json *v = new_node(ps, lits[i].t);
      if (v)
        v->boolean = lits[i].b;
      ps->p += n;
      return v;
    }
  }
  return parse_number(ps);
}

vkf_status vkf_json_parse(vkf_env *env, const char *what, const char *text, size_t len,
                          vkf_json **out) {
  *out = NULL;
  parser ps = {env, what, text, text, text + len, VKF_OK};
  vkf_json *v = parse_value(&ps, 0);
  if (v) {
    ws(&ps);
    if (ps.p != ps.end) {
      perr(&ps, "unexpected data after the JSON value");
      vkf_json_free(env, v);
      v = NULL;
    }
  }
  if (!v)
    return ps.st != VKF_OK ? ps.st : vkf_fail(env, VKF_ERROR_FORMAT, "%s: invalid JSON", what);
  *out = v;
  return VKF_OK;
}

void vkf_json_free(const vkf_env *env, vkf_json *v) {
  while (v) {
    vkf_json *next = v->next;
    vkf_json_free(env, v->child);
    vkf_free(env, v->string);
    vkf_free(env, v->key);
    vkf_free(env, v);
    v = next;
  }
}

const vkf_json *vkf_json_get(const vkf_json *obj, const char *key) {
  if (!obj || obj->type != VKF_JSON_OBJECT)
    return NULL;
  for (const vkf_json *m = obj->child; m; m = m->next)
    if (m->key && !strcmp(m->key, key))
      return m;
  return NULL;
}

bool vkf_json_int(const vkf_json *obj, const char *key, int64_t *out) {
  const vkf_json *v = vkf_json_get(obj, key);
  if (!v || v->type != VKF_JSON_NUMBER || !v->is_int)
    return false;
  *out = v->integer;
  return true;
}

bool vkf_json_num(const vkf_json *obj, const char *key, double *out) {
  const vkf_json *v = vkf_json_get(obj, key);
  if (!v || v->type != VKF_JSON_NUMBER)
    return false;
  *out = v->number;
  return true;
}

bool vkf_json_bool(const vkf_json *obj, const char *key, bool *out) {
  const vkf_json *v = vkf_json_get(obj, key);
  if (!v || v->type != VKF_JSON_BOOL)
    return false;
  *out = v->boolean;
  return true;
}

const char *vkf_json_str(const vkf_json *obj, const char *key) {
  const vkf_json *v = vkf_json_get(obj, key);
  return v && v->type == VKF_JSON_STRING ? v->string : NULL;
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */
/* ------------------------------------------------------------------------ */
void vkf_sb_init(vkf_strbuf *sb, const vkf_env *env) {
  *sb = (vkf_strbuf){.env = env};
}

void vkf_sb_free(vkf_strbuf *sb) {
  vkf_free(sb->env, sb->data);
  sb->data = NULL;
  sb->len = sb->cap = 0;
}

static bool sb_reserve(vkf_strbuf *sb, size_t extra) {
  if (sb->failed)
    return false;
  if (sb->len + extra + 1 <= sb->cap)
    return true;
  size_t cap = sb->cap ? sb->cap : 256;
  while (cap < sb->len + extra + 1)
    cap *= 2;
  char *d = vkf_realloc(sb->env, sb->data, cap);
  if (!d) {
    sb->failed = true;
    return false;
  }
  sb->data = d;
  sb->cap = cap;
  return true;
}

void vkf_sb_append(vkf_strbuf *sb, const char *s, size_t n) {
  if (!sb_reserve(sb, n))
    return;
  memcpy(sb->data + sb->len, s, n);
  sb->len += n;
  sb->data[sb->len] = 0;
}

void vkf_sb_printf(vkf_strbuf *sb, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof(small), fmt, ap);
  va_end(ap);
  if (n < 0) {
    sb->failed = true;
    return;
  }
  if ((size_t)n < sizeof(small)) {
    vkf_sb_append(sb, small, (size_t)n);
    return;
  }
  if (!sb_reserve(sb, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb->len += (size_t)n;
}

void vkf_sb_json_string(vkf_strbuf *sb, const char *s) {
  vkf_sb_append(sb, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"':
      vkf_sb_append(sb, "\\\"", 2);
      break;
    case '\\':
      vkf_sb_append(sb, "\\\\", 2);
      break;
    case '\n':
      vkf_sb_append(sb, "\\n", 2);
      break;
    case '\r':
      vkf_sb_append(sb, "\\r", 2);
      break;
    case '\t':
      vkf_sb_append(sb, "\\t", 2);
      break;
    default:
      if (*p < 0x20)
        vkf_sb_printf(sb, "\\u%04x", *p);
      else
        vkf_sb_append(sb, (const char *)p, 1);
    }
  }
  vkf_sb_append(sb, "\"", 1);
}

/* ------------------------------------------------------------------------ */
/* Files                                                                    */
/* ------------------------------------------------------------------------ */
static bool write_all(int fd, const void *data, size_t n) {
  const char *p = data;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    p += w;
    n -= (size_t)w;
  }
  return true;
}

vkf_status vkf_write_file_atomic(vkf_env *env, const char *path, const void *const *parts,
                                 const size_t *sizes, uint32_t n_parts) {
  size_t plen = strlen(path);
  char *tmp = vkf_malloc(env, plen + 32);
  char *dir = vkf_malloc(env, plen + 2);
  if (!tmp || !dir) {
    vkf_free(env, tmp);
    vkf_free(env, dir);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "writing %s", path);
  }
  snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
  memcpy(dir, path, plen + 1);
  char *slash = strrchr(dir, '/');
  if (slash)
    *(slash == dir ? slash + 1 : slash) = 0;
  else
    strcpy(dir, ".");
  vkf_status st = VKF_OK;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    st = vkf_fail(env, VKF_ERROR_IO, "cannot create %s: %s", tmp, strerror(errno));
  } else {
    for (uint32_t i = 0; i < n_parts && st == VKF_OK; i++)
      if (!write_all(fd, parts[i], sizes[i]))
        st = vkf_fail(env, VKF_ERROR_IO, "writing %s: %s", tmp, strerror(errno));
    if (st == VKF_OK && fsync(fd) != 0)
      st = vkf_fail(env, VKF_ERROR_IO, "fsync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && st == VKF_OK)
      st = vkf_fail(env, VKF_ERROR_IO, "closing %s: %s", tmp, strerror(errno));
    if (st == VKF_OK && rename(tmp, path) != 0)
      st = vkf_fail(env, VKF_ERROR_IO, "renaming %s to %s: %s", tmp, path, strerror(errno));
    if (st != VKF_OK)
      unlink(tmp);
    else {
      int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        fsync(dfd); /* best effort: the rename is durable once this returns */
        close(dfd);
      }
    }
  }
  vkf_free(env, tmp);
  vkf_free(env, dir);
  return st;
}

vkf_status vkf_read_file(vkf_env *env, const char *path, size_t max_bytes, char **out,
                         size_t *len) {
  *out = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f)
    return vkf_fail(env, VKF_ERROR_IO, "cannot open %s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return vkf_fail(env, VKF_ERROR_IO, "%s is not a regular file", path);
  }
  if ((uint64_t)sb.st_size > max_bytes) {
    fclose(f);
    return vkf_fail(env, VKF_ERROR_FORMAT, "%s is %lld bytes, more than the %zu expected", path,
                    (long long)sb.st_size, max_bytes);
  }
  size_t n = (size_t)sb.st_size;
  char *buf = vkf_malloc(env, n + 1);
  if (!buf) {
    fclose(f);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "reading %s", path);
  }
  size_t got = fread(buf, 1, n, f);
  fclose(f);
  if (got != n) {
    vkf_free(env, buf);
    return vkf_fail(env, VKF_ERROR_IO, "reading %s: short read", path);
  }
  buf[n] = 0;
  *out = buf;
  *len = n;
  return VKF_OK;
}
