#include "safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER (100u << 20)

static const struct {
  const char *name;
  size_t size;
} dtypes[VKF_ST_COUNT] = {
    [VKF_ST_F32] = {"F32", 4}, [VKF_ST_F16] = {"F16", 2}, [VKF_ST_BF16] = {"BF16", 2},
    [VKF_ST_F64] = {"F64", 8}, [VKF_ST_I32] = {"I32", 4}, [VKF_ST_I64] = {"I64", 8},
    [VKF_ST_U8] = {"U8", 1},
};

const char *vkf_st_dtype_name(vkf_st_dtype d) {
  return (unsigned)d < VKF_ST_COUNT ? dtypes[d].name : "?";
}

size_t vkf_st_dtype_size(vkf_st_dtype d) {
  return (unsigned)d < VKF_ST_COUNT ? dtypes[d].size : 0;
}

void vkf_st_close(vkf_st_file *f) {
  if (!f)
    return;
  vkf_env *env = f->env;
  if (f->f)
    fclose(f->f);
  for (uint32_t i = 0; i < f->n; i++)
    vkf_free(env, f->entries[i].name);
  vkf_free(env, f->entries);
  vkf_json_free(env, f->header);
  vkf_free(env, f->path);
  vkf_free(env, f);
}

static int cmp_begin(const void *a, const void *b) {
  const vkf_st_entry *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin;
}

vkf_status vkf_st_open(vkf_env *env, const char *path, vkf_st_file **out) {
  *out = NULL;
  vkf_st_file *f = vkf_calloc(env, 1, sizeof(*f));
  if (!f)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "opening %s", path);
  f->env = env;
  f->path = vkf_malloc(env, strlen(path) + 1);
  if (!f->path) {
    vkf_st_close(f);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "opening %s", path);
  }
  strcpy(f->path, path);
  f->f = fopen(path, "rb");
  if (!f->f) {
    vkf_status st = vkf_fail(env, VKF_ERROR_IO, "cannot open %s: %s", path, strerror(errno));
    vkf_st_close(f);
    return st;
  }
  vkf_status st = VKF_OK;
  unsigned char lenb[8];
  uint64_t hlen = 0, fsize = 0;
  if (fseek(f->f, 0, SEEK_END) == 0) {
    long n = ftell(f->f);
    fsize = n > 0 ? (uint64_t)n : 0;
  }
  rewind(f->f);
  char *hdr = NULL;
  if (fread(lenb, 1, 8, f->f) != 8) {
    st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: not a safetensors file (shorter than 8 bytes)", path);
  } else {
    for (int i = 7; i >= 0; i--)
      hlen = hlen << 8 | lenb[i];
    if (hlen > MAX_HEADER || hlen + 8 > fsize)
      st = vkf_fail(env, VKF_ERROR_FORMAT,
                    "%s: header length %llu does not fit the %llu-byte file (not safetensors?)",
                    path, (unsigned long long)hlen, (unsigned long long)fsize);
  }
  if (st == VKF_OK) {
    hdr = vkf_malloc(env, (size_t)hlen + 1);
    if (!hdr)
      st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s: header", path);
    else if (fread(hdr, 1, (size_t)hlen, f->f) != hlen)
      st = vkf_fail(env, VKF_ERROR_IO, "%s: short read of the header", path);
  }
  if (st == VKF_OK) {
    /* trailing spaces pad the header to 8 bytes */
    size_t n = (size_t)hlen;
    while (n && hdr[n - 1] == ' ')
      n--;
    st = vkf_json_parse(env, path, hdr, n, &f->header);
  }
  vkf_free(env, hdr);
  if (st == VKF_OK && f->header->type != VKF_JSON_OBJECT)
    st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: the header is not a JSON object", path);
  f->data_start = 8 + hlen;
  f->data_size = fsize - f->data_start;
  if (st == VKF_OK) {
    f->entries = vkf_calloc(env, f->header->count ? f->header->count : 1, sizeof(vkf_st_entry));
    if (!f->entries)
      st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s: tensor table", path);
  }
  for (const vkf_json *m = st == VKF_OK ? f->header->child : NULL; m && st == VKF_OK; m = m->next) {
    if (!strcmp(m->key, "__metadata__")) {
      if (m->type != VKF_JSON_OBJECT)
        st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: __metadata__ is not an object", path);
      for (const vkf_json *kv = m->child; kv && st == VKF_OK; kv = kv->next)
        if (kv->type != VKF_JSON_STRING)
          st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: __metadata__ value \"%s\" is not a string",
                        path, kv->key);
      f->metadata = (vkf_json *)m;
      continue;
    }
    vkf_st_entry *e = &f->entries[f->n];
    const char *dt = vkf_json_str(m, "dtype");
    const vkf_json *shape = vkf_json_get(m, "shape"), *offs = vkf_json_get(m, "data_offsets");
    if (m->type != VKF_JSON_OBJECT || !dt || !shape || shape->type != VKF_JSON_ARRAY || !offs ||
        offs->type != VKF_JSON_ARRAY || offs->count != 2) {
      st = vkf_fail(env, VKF_ERROR_FORMAT,
                    "%s: tensor \"%s\" needs dtype, shape and two data_offsets", path, m->key);
      break;
    }
    e->dtype = VKF_ST_COUNT;
    for (int d = 0; d < VKF_ST_COUNT; d++)
      if (!strcmp(dt, dtypes[d].name))
        e->dtype = (vkf_st_dtype)d;
    if (e->dtype == VKF_ST_COUNT) {
      st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: tensor \"%s\" has unsupported dtype %s", path,
                    m->key, dt);
      break;
    }
    if (shape->count > VKF_ST_MAX_DIMS) {
      st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: tensor \"%s\" has %u dimensions (max %d)", path,
                    m->key, shape->count, VKF_ST_MAX_DIMS);
      break;
    }
    e->ndim = shape->count;
    e->elements = 1;
    uint32_t k = 0;
    for (const vkf_json *d = shape->child; d; d = d->next, k++) {
      if (d->type != VKF_JSON_NUMBER || !d->is_int || d->integer < 0 ||
          (d->integer && e->elements > UINT64_MAX / 16 / (uint64_t)d->integer)) {
        st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: tensor \"%s\" has a bad dimension", path, m->key);
        break;
      }
      e->shape[k] = d->integer;
      e->elements *= (uint64_t)d->integer;
    }
    if (st != VKF_OK)
      break;
    const vkf_json *b = offs->child, *en = b->next;
    if (b->type != VKF_JSON_NUMBER || !b->is_int || en->type != VKF_JSON_NUMBER || !en->is_int ||
        b->integer < 0 || en->integer < b->integer) {
      st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: tensor \"%s\" has bad data_offsets", path, m->key);
      break;
    }
    e->begin = (uint64_t)b->integer;
    e->end = (uint64_t)en->integer;
    if (e->end - e->begin != e->elements * dtypes[e->dtype].size) {
      st = vkf_fail(env, VKF_ERROR_FORMAT,
                    "%s: tensor \"%s\": %llu bytes in data_offsets, but %s x %llu elements needs "
                    "%llu",
                    path, m->key, (unsigned long long)(e->end - e->begin), dt,
                    (unsigned long long)e->elements,
                    (unsigned long long)(e->elements * dtypes[e->dtype].size));
      break;
    }
    if (e->end > f->data_size) {
      st = vkf_fail(env, VKF_ERROR_FORMAT,
                    "%s: tensor \"%s\" ends at byte %llu of a %llu-byte data section (file "
                    "truncated?)",
                    path, m->key, (unsigned long long)e->end, (unsigned long long)f->data_size);
      break;
    }
    e->name = vkf_malloc(env, strlen(m->key) + 1);
    if (!e->name) {
      st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s", path);
      break;
    }
    strcpy(e->name, m->key);
    f->n++;
  }
  if (st == VKF_OK && f->n) {
    /* no two tensors may overlap */
    vkf_st_entry *sorted = vkf_malloc(env, f->n * sizeof(*sorted));
    if (!sorted)
      st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s", path);
    else {
      memcpy(sorted, f->entries, f->n * sizeof(*sorted));
      qsort(sorted, f->n, sizeof(*sorted), cmp_begin);
      for (uint32_t i = 1; i < f->n && st == VKF_OK; i++)
        if (sorted[i].begin < sorted[i - 1].end && sorted[i].end > sorted[i].begin)
          st = vkf_fail(env, VKF_ERROR_FORMAT, "%s: tensors \"%s\" and \"%s\" overlap", path,
                        sorted[i - 1].name, sorted[i].name);
      vkf_free(env, sorted);
    }
  }
  if (st != VKF_OK) {
    vkf_st_close(f);
    return st;
  }
  *out = f;
  return VKF_OK;
}

const vkf_st_entry *vkf_st_find(const vkf_st_file *f, const char *name) {
  for (uint32_t i = 0; i < f->n; i++)
    if (!strcmp(f->entries[i].name, name))
      return &f->entries[i];
  return NULL;
}

const char *vkf_st_meta(const vkf_st_file *f, const char *key) {
  return vkf_json_str(f->metadata, key);
}

vkf_status vkf_st_read(vkf_st_file *f, const vkf_st_entry *e, void *dst, size_t bytes) {
  if (bytes != e->end - e->begin)
    return vkf_fail(f->env, VKF_ERROR_SHAPE_MISMATCH, "%s: tensor \"%s\" has %llu bytes, not %zu",
                    f->path, e->name, (unsigned long long)(e->end - e->begin), bytes);
  if (fseeko(f->f, (off_t)(f->data_start + e->begin), SEEK_SET) != 0 ||
      fread(dst, 1, bytes, f->f) != bytes)
    return vkf_fail(f->env, VKF_ERROR_IO, "%s: reading tensor \"%s\" failed", f->path, e->name);
  return VKF_OK;
}

static float half_to_float(uint16_t h) {
  uint32_t e = (h >> 10) & 31u, m = h & 1023u;
  float v = e == 0    ? ldexpf((float)m, -24)
            : e == 31 ? (m ? NAN : INFINITY)
                      : ldexpf((float)(m | 1024u), (int)e - 25);
  return (h & 0x8000u) ? -v : v;
}

vkf_status vkf_st_read_f32(vkf_st_file *f, const vkf_st_entry *e, float *dst, uint64_t count) {
  if (count != e->elements)
    return vkf_fail(f->env, VKF_ERROR_SHAPE_MISMATCH,
                    "%s: tensor \"%s\" has %llu elements, %llu expected", f->path, e->name,
                    (unsigned long long)e->elements, (unsigned long long)count);
  size_t es = dtypes[e->dtype].size;
  if (e->dtype == VKF_ST_F32)
    return vkf_st_read(f, e, dst, (size_t)count * 4);
  if (e->dtype != VKF_ST_F16 && e->dtype != VKF_ST_BF16 && e->dtype != VKF_ST_F64)
    return vkf_fail(f->env, VKF_ERROR_DTYPE_MISMATCH,
                    "%s: tensor \"%s\" is %s; a floating-point dtype is needed", f->path, e->name,
                    dtypes[e->dtype].name);
  unsigned char *raw = vkf_malloc(f->env, (size_t)count * es);
  if (!raw)
    return vkf_fail(f->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s", f->path);
  vkf_status st = vkf_st_read(f, e, raw, (size_t)count * es);
  for (uint64_t i = 0; st == VKF_OK && i < count; i++) {
    if (e->dtype == VKF_ST_F16) {
      dst[i] = half_to_float((uint16_t)(raw[2 * i] | raw[2 * i + 1] << 8));
    } else if (e->dtype == VKF_ST_BF16) {
      uint32_t b = (uint32_t)(raw[2 * i] | raw[2 * i + 1] << 8) << 16;
      memcpy(&dst[i], &b, 4);
    } else {
      double d;
      memcpy(&d, raw + 8 * i, 8);
      dst[i] = (float)d;
    }
  }
  vkf_free(f->env, raw);
  return st;
}

vkf_status vkf_st_write(vkf_env *env, const char *path, const vkf_st_out *tensors, uint32_t n,
                        const char *const *meta_keys, const char *const *meta_values,
                        uint32_t n_meta) {
  vkf_strbuf sb;
  vkf_sb_init(&sb, env);
  vkf_sb_append(&sb, "{", 1);
  bool first = true;
  if (n_meta) {
    vkf_sb_append(&sb, "\"__metadata__\":{", 16);
    for (uint32_t i = 0; i < n_meta; i++) {
      if (i)
        vkf_sb_append(&sb, ",", 1);
      vkf_sb_json_string(&sb, meta_keys[i]);
      vkf_sb_append(&sb, ":", 1);
      vkf_sb_json_string(&sb, meta_values[i]);
    }
    vkf_sb_append(&sb, "}", 1);
    first = false;
  }
  uint64_t offset = 0;
  for (uint32_t i = 0; i < n; i++) {
    const vkf_st_out *t = &tensors[i];
    uint64_t count = 1;
    for (uint32_t d = 0; d < t->ndim; d++)
      count *= (uint64_t)t->shape[d];
    uint64_t bytes = count * vkf_st_dtype_size(t->dtype);
    if (!first)
      vkf_sb_append(&sb, ",", 1);
    first = false;
    vkf_sb_json_string(&sb, t->name);
    vkf_sb_printf(&sb, ":{\"dtype\":\"%s\",\"shape\":[", vkf_st_dtype_name(t->dtype));
    for (uint32_t d = 0; d < t->ndim; d++)
      vkf_sb_printf(&sb, d ? ",%lld" : "%lld", (long long)t->shape[d]);
    vkf_sb_printf(&sb, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                  (unsigned long long)(offset + bytes));
    offset += bytes;
  }
  vkf_sb_append(&sb, "}", 1);
  while (!sb.failed && sb.len % 8)
    vkf_sb_append(&sb, " ", 1);
  if (sb.failed) {
    vkf_sb_free(&sb);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "writing %s", path);
  }
  uint32_t n_parts = n + 2;
  const void **parts = vkf_malloc(env, n_parts * sizeof(*parts));
  size_t *sizes = vkf_malloc(env, n_parts * sizeof(*sizes));
  if (!parts || !sizes) {
    vkf_free(env, parts);
    vkf_free(env, sizes);
    vkf_sb_free(&sb);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "writing %s", path);
  }
  unsigned char lenb[8];
  uint64_t hlen = sb.len;
  for (int i = 0; i < 8; i++)
    lenb[i] = (unsigned char)(hlen >> (8 * i));
  parts[0] = lenb;
  sizes[0] = 8;
  parts[1] = sb.data;
  sizes[1] = sb.len;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t count = 1;
    for (uint32_t d = 0; d < tensors[i].ndim; d++)
      count *= (uint64_t)tensors[i].shape[d];
    parts[2 + i] = tensors[i].data;
    sizes[2 + i] = (size_t)(count * vkf_st_dtype_size(tensors[i].dtype));
  }
  vkf_status st = vkf_write_file_atomic(env, path, parts, sizes, n_parts);
  vkf_free(env, parts);
  vkf_free(env, sizes);
  vkf_sb_free(&sb);
  return st;
}
