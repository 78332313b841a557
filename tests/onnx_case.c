#include "onnx_case.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small JSON reader: enough for case.json ---- */
typedef struct jv jv;
struct jv {
  enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } t;
  double num;
  char *str;
  jv **items; /* array items or object values */
  char **keys;
  int n;
};

typedef struct {
  const char *p;
  bool ok;
} jp;

static void jfree(jv *v) {
  if (!v)
    return;
  for (int i = 0; i < v->n; i++) {
    jfree(v->items[i]);
    if (v->keys)
      free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->str);
  free(v);
}

static void skip_ws(jp *s) {
  while (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')
    s->p++;
}

static jv *parse(jp *s);

static char *parse_string(jp *s) {
  if (*s->p != '"') {
    s->ok = false;
    return NULL;
  }
  s->p++;
  size_t cap = 32, n = 0;
  char *out = malloc(cap);
  while (out && *s->p && *s->p != '"') {
    char ch = *s->p++;
    if (ch == '\\') {
      char e = *s->p++;
      ch = e == 'n'   ? '\n'
           : e == 't' ? '\t'
           : e == 'r' ? '\r'
           : e == 'b' ? '\b'
           : e == 'f' ? '\f'
                      : e;
      if (e == 'u') { /* keep ASCII only; others become '?' */
        unsigned code = 0;
        for (int i = 0; i < 4 && *s->p; i++, s->p++)
          code = code * 16 + (unsigned)(*s->p <= '9' ? *s->p - '0' : (*s->p | 32) - 'a' + 10);
        ch = code < 128 ? (char)code : '?';
      }
    }
    if (n + 1 >= cap) {
      cap *= 2;
      char *nb = realloc(out, cap);
      if (!nb) {
        free(out);
        out = NULL;
        break;
      }
      out = nb;
    }
    out[n++] = ch;
  }
  if (!out || *s->p != '"') {
    free(out);
    s->ok = false;
    return NULL;
  }
  s->p++;
  out[n] = 0;
  return out;
}

static bool push(jv *v, jv *item, char *key) {
  jv **ni = realloc(v->items, (size_t)(v->n + 1) * sizeof(*ni));
  if (!ni)
    return false;
  v->items = ni;
  if (v->t == J_OBJ) {
    char **nk = realloc(v->keys, (size_t)(v->n + 1) * sizeof(*nk));
    if (!nk)
      return false;
    v->keys = nk;
    v->keys[v->n] = key;
  }
  v->items[v->n++] = item;
  return true;
}

static jv *parse(jp *s) {
  skip_ws(s);
  jv *v = calloc(1, sizeof(*v));
  if (!v) {
    s->ok = false;
    return NULL;
  }
  char c = *s->p;
  if (c == '{' || c == '[') {
    v->t = c == '{' ? J_OBJ : J_ARR;
    s->p++;
    skip_ws(s);
    char close = c == '{' ? '}' : ']';
    if (*s->p == close) {
      s->p++;
      return v;
    }
    while (s->ok) {
      char *key = NULL;
      skip_ws(s);
      if (v->t == J_OBJ) {
        key = parse_string(s);
        skip_ws(s);
        if (!key || *s->p != ':') {
          free(key);
          s->ok = false;
          break;
        }
        s->p++;
      }
      jv *item = parse(s);
      if (!s->ok || !push(v, item, key)) {
        jfree(item);
        free(key);
        s->ok = false;
        break;
      }
      skip_ws(s);
      if (*s->p == ',') {
        s->p++;
        continue;
      }
      if (*s->p == close) {
        s->p++;
        break;
      }
      s->ok = false;
    }
  } else if (c == '"') {
    v->t = J_STR;
    v->str = parse_string(s);
  } else if (!strncmp(s->p, "null", 4)) {
    v->t = J_NULL;
    s->p += 4;
  } else if (!strncmp(s->p, "true", 4) || !strncmp(s->p, "false", 5)) {
    v->t = J_BOOL;
    v->num = *s->p == 't';
    s->p += *s->p == 't' ? 4 : 5;
  } else {
    char *end;
    v->t = J_NUM;
    v->num = strtod(s->p, &end);
    if (end == s->p)
      s->ok = false;
    s->p = end;
  }
  return v;
}

static const jv *jget(const jv *o, const char *key) {
  if (!o || o->t != J_OBJ)
    return NULL;
  for (int i = 0; i < o->n; i++)
    if (!strcmp(o->keys[i], key))
      return o->items[i];
  return NULL;
}

/* ---- cases ---- */
static onnx_dtype dtype_of(const char *s) {
  if (!s)
    return ONNX_NONE;
  if (!strcmp(s, "float32"))
    return ONNX_F32;
  if (!strcmp(s, "float16"))
    return ONNX_F16;
  if (!strcmp(s, "int64"))
    return ONNX_I64;
  if (!strcmp(s, "int32"))
    return ONNX_I32;
  if (!strcmp(s, "bool"))
    return ONNX_BOOL;
  return ONNX_NONE;
}

static size_t dtype_size(onnx_dtype d) {
  switch (d) {
  case ONNX_F32:
  case ONNX_I32:
    return 4;
  case ONNX_F16:
    return 2;
  case ONNX_I64:
    return 8;
  case ONNX_BOOL:
    return 1;
  default:
    return 0;
  }
}

static float half_to_float(uint16_t h) {
  int e = (h >> 10) & 31, m = h & 1023;
  float v = e == 0    ? ldexpf((float)m, -24)
            : e == 31 ? (m ? NAN : INFINITY)
                      : ldexpf((float)(m | 1024), e - 25);
  return (h & 0x8000) ? -v : v;
}

static bool load_tensor(const char *dir, const jv *j, onnx_tensor *t, char *err, size_t errlen) {
  memset(t, 0, sizeof(*t));
  const jv *file = jget(j, "file"), *name = jget(j, "name"), *dt = jget(j, "dtype"),
           *shape = jget(j, "shape");
  if (!file || file->t != J_STR)
    return true; /* omitted optional slot */
  t->present = true;
  snprintf(t->name, sizeof(t->name), "%s", name && name->str ? name->str : "");
  t->dtype = dtype_of(dt ? dt->str : NULL);
  if (t->dtype == ONNX_NONE || !shape || shape->t != J_ARR || shape->n > 8) {
    snprintf(err, errlen, "tensor %s: bad dtype or shape", t->name);
    return false;
  }
  t->ndim = shape->n;
  t->count = 1;
  for (int i = 0; i < shape->n; i++) {
    t->shape[i] = (int64_t)shape->items[i]->num;
    t->count *= (size_t)t->shape[i];
  }
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s", dir, file->str);
  FILE *f = fopen(path, "rb");
  size_t bytes = t->count * dtype_size(t->dtype);
  unsigned char *raw = malloc(bytes ? bytes : 1);
  bool ok = f && raw && fread(raw, 1, bytes, f) == bytes && fgetc(f) == EOF;
  if (f)
    fclose(f);
  if (!ok) {
    free(raw);
    snprintf(err, errlen, "%s: missing or not %zu bytes", path, bytes);
    return false;
  }
  if (t->dtype == ONNX_F32 || t->dtype == ONNX_F16 || t->dtype == ONNX_BOOL) {
    t->f = malloc((t->count ? t->count : 1) * sizeof(float));
    for (size_t i = 0; t->f && i < t->count; i++) {
      if (t->dtype == ONNX_F32)
        memcpy(&t->f[i], raw + 4 * i, 4);
      else if (t->dtype == ONNX_F16)
        t->f[i] = half_to_float((uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8));
      else
        t->f[i] = raw[i] ? 1.0f : 0.0f;
    }
  }
  if (t->dtype == ONNX_I64 || t->dtype == ONNX_I32 || t->dtype == ONNX_BOOL) {
    t->i = malloc((t->count ? t->count : 1) * sizeof(int64_t));
    for (size_t i = 0; t->i && i < t->count; i++) {
      if (t->dtype == ONNX_I64)
        memcpy(&t->i[i], raw + 8 * i, 8);
      else if (t->dtype == ONNX_I32) {
        int32_t v;
        memcpy(&v, raw + 4 * i, 4);
        t->i[i] = v;
      } else
        t->i[i] = raw[i];
    }
  }
  free(raw);
  return true;
}

bool onnx_case_load(const char *dir, const char *name, onnx_case *c, char *err, size_t errlen) {
  memset(c, 0, sizeof(*c));
  snprintf(c->name, sizeof(c->name), "%s", name);
  char path[1100], cdir[1024];
  snprintf(cdir, sizeof(cdir), "%s/%s", dir, name);
  snprintf(path, sizeof(path), "%s/case.json", cdir);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "cannot open %s", path);
    return false;
  }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)len + 1);
  bool ok = text && fread(text, 1, (size_t)len, f) == (size_t)len;
  fclose(f);
  if (!ok) {
    free(text);
    snprintf(err, errlen, "cannot read %s", path);
    return false;
  }
  text[len] = 0;
  jp s = {text, true};
  jv *root = parse(&s);
  free(text);
  if (!s.ok || !root || root->t != J_OBJ) {
    jfree(root);
    snprintf(err, errlen, "%s: malformed JSON", path);
    return false;
  }
  const jv *op = jget(root, "op_type"), *dom = jget(root, "domain"), *opset = jget(root, "opset");
  const jv *attrs = jget(root, "attributes"), *ins = jget(root, "inputs"),
           *outs = jget(root, "outputs");
  ok = op && op->t == J_STR && ins && ins->t == J_ARR && outs && outs->t == J_ARR && ins->n <= 16 &&
       outs->n <= 16;
  if (ok) {
    snprintf(c->op_type, sizeof(c->op_type), "%s", op->str);
    snprintf(c->domain, sizeof(c->domain), "%s", dom && dom->str ? dom->str : "");
    c->opset = opset ? (int)opset->num : 0;
    for (int i = 0; attrs && attrs->t == J_OBJ && i < attrs->n && i < 16; i++) {
      onnx_attr *a = &c->attrs[c->n_attrs++];
      const jv *v = attrs->items[i];
      snprintf(a->name, sizeof(a->name), "%s", attrs->keys[i]);
      if (v->t == J_STR) {
        a->kind = ONNX_ATTR_STRING;
        snprintf(a->s, sizeof(a->s), "%s", v->str);
      } else if (v->t == J_ARR) {
        a->kind = ONNX_ATTR_INTS;
        for (int k = 0; k < v->n && k < 16; k++) {
          a->ints[k] = (int64_t)v->items[k]->num;
          a->floats[k] = (float)v->items[k]->num;
          if (v->items[k]->num != floor(v->items[k]->num))
            a->kind = ONNX_ATTR_FLOATS;
        }
        a->n = v->n < 16 ? v->n : 16;
      } else {
        /* ints and floats both land here; callers know which each
         * attribute is (onnx_attr_int / onnx_attr_float read either) */
        a->kind = ONNX_ATTR_INT;
        a->i = (int64_t)v->num;
        a->f = (float)v->num;
      }
    }
    c->n_inputs = ins->n;
    c->n_outputs = outs->n;
    for (int i = 0; ok && i < ins->n; i++)
      ok = load_tensor(cdir, ins->items[i], &c->inputs[i], err, errlen);
    for (int i = 0; ok && i < outs->n; i++)
      ok = load_tensor(cdir, outs->items[i], &c->outputs[i], err, errlen);
  } else {
    snprintf(err, errlen, "%s: missing op_type/inputs/outputs", path);
  }
  jfree(root);
  if (!ok)
    onnx_case_free(c);
  return ok;
}

void onnx_case_free(onnx_case *c) {
  for (int i = 0; i < 16; i++) {
    free(c->inputs[i].f);
    free(c->inputs[i].i);
    free(c->outputs[i].f);
    free(c->outputs[i].i);
    c->inputs[i].f = c->outputs[i].f = NULL;
    c->inputs[i].i = c->outputs[i].i = NULL;
  }
}

const onnx_attr *onnx_attr_get(const onnx_case *c, const char *name) {
  for (int i = 0; i < c->n_attrs; i++)
    if (!strcmp(c->attrs[i].name, name))
      return &c->attrs[i];
  return NULL;
}

int64_t onnx_attr_int(const onnx_case *c, const char *name, int64_t dflt) {
  const onnx_attr *a = onnx_attr_get(c, name);
  return a && a->kind == ONNX_ATTR_INT ? a->i : dflt;
}

float onnx_attr_float(const onnx_case *c, const char *name, float dflt) {
  const onnx_attr *a = onnx_attr_get(c, name);
  return a && a->kind == ONNX_ATTR_INT ? a->f : dflt;
}

const char *onnx_attr_string(const onnx_case *c, const char *name, const char *dflt) {
  const onnx_attr *a = onnx_attr_get(c, name);
  return a && a->kind == ONNX_ATTR_STRING ? a->s : dflt;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t onnx_list_cases(const char *dir, char ***names) {
  *names = NULL;
  DIR *d = opendir(dir);
  if (!d)
    return 0;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "test_", 5) != 0)
      continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nn = realloc(*names, cap * sizeof(char *));
      if (!nn)
        break;
      *names = nn;
    }
    (*names)[n] = strdup(e->d_name);
    if ((*names)[n])
      n++;
  }
  closedir(d);
  if (n)
    qsort(*names, n, sizeof(char *), cmp_str);
  return n;
}

void onnx_free_names(char **names, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
}
