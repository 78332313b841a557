/* Row softmax on the CPU: max-subtracted, sum in double. */
#include "cpu.h"

#include <math.h>

static void softmax_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  const uint32_t cols = op->p.softmax.cols;
  float *out = vkf_cpu_f32(op, 0);
  const float *a = vkf_cpu_f32(op, 1);
  for (uint32_t r = begin; r < end; r++) {
    const float *x = a + (size_t)r * cols;
    float *y = out + (size_t)r * cols;
    float mx = -INFINITY;
    for (uint32_t c = 0; c < cols; c++)
      mx = x[c] > mx ? x[c] : mx;
    if (mx == -INFINITY) { /* fully masked row: defined as all zeros */
      for (uint32_t c = 0; c < cols; c++)
        y[c] = 0.0f;
      continue;
    }
    double sum = 0;
    for (uint32_t c = 0; c < cols; c++) {
      float e = expf(x[c] - mx);
      y[c] = e;
      sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (uint32_t c = 0; c < cols; c++)
      y[c] *= inv;
  }
}

vkf_status vkf_cpu_softmax(vkf_cpu *cpu, const vkf_op *op) {
  uint32_t grain = 8192 / (op->p.softmax.cols + 1) + 1;
  vkf_pool_run(cpu->pool, op->p.softmax.rows, grain, softmax_task, (void *)op);
  return VKF_OK;
}
