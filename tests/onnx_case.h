/* Reader for the ONNX backend node tests converted to case.json + raw
 * little-endian tensors (../shared/conformance/onnx, see its README). */
#ifndef VKF_ONNX_CASE_H
#define VKF_ONNX_CASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum onnx_dtype {
  ONNX_NONE = 0,
  ONNX_F32,
  ONNX_F16,
  ONNX_I64,
  ONNX_I32,
  ONNX_BOOL
} onnx_dtype;

typedef struct onnx_tensor {
  bool present; /* false for an omitted optional slot */
  char name[64];
  onnx_dtype dtype;
  int ndim; /* 0 = scalar */
  int64_t shape[8];
  size_t count; /* elements */
  float *f;     /* values as float (f32, f16 and bool converted); NULL otherwise */
  int64_t *i;   /* values as int64 (i64, i32, bool); NULL otherwise */
} onnx_tensor;

typedef struct onnx_attr {
  char name[64];
  enum { ONNX_ATTR_INT, ONNX_ATTR_FLOAT, ONNX_ATTR_STRING, ONNX_ATTR_INTS, ONNX_ATTR_FLOATS } kind;
  int64_t i;
  float f;
  char s[64];
  int n;
  int64_t ints[16];
  float floats[16];
} onnx_attr;

typedef struct onnx_case {
  char name[128];
  char op_type[64];
  char domain[64];
  int opset;
  int n_attrs;
  onnx_attr attrs[16];
  int n_inputs, n_outputs;
  onnx_tensor inputs[16], outputs[16];
} onnx_case;

/* Loads dir/case.json and its tensors. Returns false with a message in err. */
bool onnx_case_load(const char *dir, const char *name, onnx_case *c, char *err, size_t errlen);
void onnx_case_free(onnx_case *c);

const onnx_attr *onnx_attr_get(const onnx_case *c, const char *name);
int64_t onnx_attr_int(const onnx_case *c, const char *name, int64_t dflt);
float onnx_attr_float(const onnx_case *c, const char *name, float dflt);
const char *onnx_attr_string(const onnx_case *c, const char *name, const char *dflt);

/* Lists the case directories (sorted). Returns the count; *names is an
 * array of malloc'd strings (free with onnx_free_names). 0 if dir is absent. */
size_t onnx_list_cases(const char *dir, char ***names);
void onnx_free_names(char **names, size_t n);

#endif
