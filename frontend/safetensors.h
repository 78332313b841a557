/* safetensors files (Hugging Face's format): an 8-byte little-endian header
 * length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
 * {string: string}}, then the tensor bytes. Reading validates everything
 * and names exactly what is wrong; writing is atomic. */
#ifndef VKF_SAFETENSORS_H
#define VKF_SAFETENSORS_H

#include "json.h"

#include <stdio.h>

typedef enum vkf_st_dtype {
  VKF_ST_F32,
  VKF_ST_F16,
  VKF_ST_BF16,
  VKF_ST_F64,
  VKF_ST_I32,
  VKF_ST_I64,
  VKF_ST_U8,
  VKF_ST_COUNT
} vkf_st_dtype;

const char *vkf_st_dtype_name(vkf_st_dtype d); /* "F32", ... */
size_t vkf_st_dtype_size(vkf_st_dtype d);

#define VKF_ST_MAX_DIMS 8

typedef struct vkf_st_entry {
  char *name;
  vkf_st_dtype dtype;
  uint32_t ndim;
  int64_t shape[VKF_ST_MAX_DIMS];
  uint64_t elements;
  uint64_t begin, end; /* byte offsets in the data section */
} vkf_st_entry;

typedef struct vkf_st_file {
  vkf_env *env;
  char *path;
  FILE *f;
  uint64_t data_start, data_size;
  vkf_st_entry *entries;
  uint32_t n;
  vkf_json *metadata; /* the "__metadata__" object (may be NULL) */
  vkf_json *header;
} vkf_st_file;

vkf_status vkf_st_open(vkf_env *env, const char *path, vkf_st_file **out);
void vkf_st_close(vkf_st_file *f);
const vkf_st_entry *vkf_st_find(const vkf_st_file *f, const char *name);
/* Reads one tensor's raw bytes (little-endian as stored). */
vkf_status vkf_st_read(vkf_st_file *f, const vkf_st_entry *e, void *dst, size_t bytes);
/* Reads a tensor converted to float (from F32, F16, BF16 or F64). */
vkf_status vkf_st_read_f32(vkf_st_file *f, const vkf_st_entry *e, float *dst, uint64_t count);
const char *vkf_st_meta(const vkf_st_file *f, const char *key);

/* Writing: tensors from host memory, metadata as string pairs. */
typedef struct vkf_st_out {
  const char *name;
  vkf_st_dtype dtype;
  uint32_t ndim;
  const int64_t *shape;
  const void *data;
} vkf_st_out;

vkf_status vkf_st_write(vkf_env *env, const char *path, const vkf_st_out *tensors, uint32_t n,
                        const char *const *meta_keys, const char *const *meta_values,
                        uint32_t n_meta);

#endif
