/* row_sum (and row_mean through its multiplier) on the CPU. Sums are kept in
 * double so the CPU backend stays a sharp reference. */
#include "cpu.h"

static void row_sum_task(void *arg, uint32_t begin, uint32_t end, uint32_t worker) {
  (void)worker;
  const vkf_op *op = arg;
  const vkf_rowreduce_params *p = &op->p.rowreduce;
  float *out = vkf_cpu_f32(op, 0);
  const float *a = vkf_cpu_f32(op, 1);
  for (uint32_t r = begin; r < end; r++) {
    const float *row = a + (size_t)r * p->cols;
    double acc[4] = {0, 0, 0, 0};
    uint32_t c = 0;
    for (; c + 4 <= p->cols; c += 4)
      for (uint32_t u = 0; u < 4; u++)
        acc[u] += row[c + u];
    for (; c < p->cols; c++)
      acc[0] += row[c];
    out[r] = (float)(((acc[0] + acc[1]) + (acc[2] + acc[3])) * p->mul);
  }
}

vkf_status vkf_cpu_row_sum(vkf_cpu *cpu, const vkf_op *op) {
  uint32_t grain = 16384 / (op->p.rowreduce.cols + 1) + 1;
  vkf_pool_run(cpu->pool, op->p.rowreduce.rows, grain, row_sum_task, (void *)op);
  return VKF_OK;
}
