/* Recording and submission.
 *
 * Ops are recorded into the current command buffer; a barrier is inserted
 * only before a command that reads what an earlier one wrote, or writes what
 * an earlier one read or wrote (ranges are compared in device-address space).
 * The hazard ranges survive a submit, so the first barrier of the next
 * command buffer also orders it after the previous one. A command buffer is
 * submitted when the host needs results, or when it grows large. */
#include "vk.h"

#include <string.h>

#define AUTO_FLUSH_COMMANDS 1024u
#define STAGING_CHUNK (64ull << 20)
/* Staging memory one submission may hold before it is submitted. */
#define STAGING_FLUSH (128ull << 20)

/* ------------------------------------------------------------------------ */
/* Range sets                                                               */
/* ------------------------------------------------------------------------ */
static bool ranges_overlap(const vkf_vk_range_set *s, vkf_vk_range r) {
  for (uint32_t i = 0; i < s->n; i++)
    if (r.begin < s->r[i].end && s->r[i].begin < r.end)
      return true;
  return false;
}

static vkf_status ranges_add(vkf_vk *vk, vkf_vk_range_set *s, vkf_vk_range r) {
  if (r.begin >= r.end)
    return VKF_OK;
  if (s->n && r.begin <= s->r[s->n - 1].end && s->r[s->n - 1].begin <= r.end) {
    vkf_vk_range *last = &s->r[s->n - 1];
    last->begin = r.begin < last->begin ? r.begin : last->begin;
    last->end = r.end > last->end ? r.end : last->end;
    return VKF_OK;
  }
  if (s->n == s->cap) {
    uint32_t cap = s->cap ? s->cap * 2 : 64;
    vkf_vk_range *nr = vkf_realloc(vk->base.env, s->r, cap * sizeof(*nr));
    if (!nr)
      return vkf_fail(vk->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY, "hazard tracking");
    s->r = nr;
    s->cap = cap;
  }
  s->r[s->n++] = r;
  return VKF_OK;
}

static void ranges_free(vkf_vk *vk, vkf_vk_range_set *s) {
  vkf_free(vk->base.env, s->r);
  memset(s, 0, sizeof(*s));
}

static vkf_vk_range range_of(vkf_tref t) {
  VkDeviceAddress a = vkf_vk_addr(t);
  return (vkf_vk_range){a, a + t.bytes};
}

/* ------------------------------------------------------------------------ */
/* Slots                                                                    */
/* ------------------------------------------------------------------------ */
vkf_status vkf_vk_exec_init(vkf_vk *vk) {
  VkCommandPoolCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                 .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                 .queueFamilyIndex = vk->queue_family};
  vkf_status st = vkf_vk_result(vk, vk->fn.vkCreateCommandPool(vk->device, &pci, NULL, &vk->pool),
                                "vkCreateCommandPool");
  for (uint32_t i = 0; i < VKF_VK_SLOTS && st == VKF_OK; i++) {
    vkf_vk_slot *s = &vk->slots[i];
    VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = vk->pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
    st = vkf_vk_result(vk, vk->fn.vkAllocateCommandBuffers(vk->device, &ai, &s->cmd),
                       "vkAllocateCommandBuffers");
    VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    if (st == VKF_OK)
      st = vkf_vk_result(vk, vk->fn.vkCreateFence(vk->device, &fci, NULL, &s->fence),
                         "vkCreateFence");
    if (st == VKF_OK && vk->base.profiling) {
      VkQueryPoolCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                   .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                   .queryCount = VKF_VK_MAX_QUERIES};
      st = vkf_vk_result(vk, vk->fn.vkCreateQueryPool(vk->device, &qci, NULL, &s->queries),
                         "vkCreateQueryPool");
      s->max_queries = VKF_VK_MAX_QUERIES;
      s->query_op = vkf_malloc(vk->base.env, VKF_VK_MAX_QUERIES);
      if (st == VKF_OK && !s->query_op)
        st = vkf_fail(vk->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY, "profiling");
    }
  }
  vk->ts_period_ms = (double)vk->base.info.timestamp_period_ns * 1e-6;
  uint32_t bits = vk->caps.timestamp_bits;
  vk->ts_mask = bits >= 64 ? ~0ull : ((1ull << bits) - 1);
  return st;
}

/* Adds the time between consecutive timestamps to each op's total. */
static void profile_collect(vkf_vk *vk, VkQueryPool pool, const uint8_t *ops, uint32_t n) {
  if (!pool || n < 2)
    return;
  uint64_t *ts = vkf_malloc(vk->base.env, n * sizeof(uint64_t));
  if (!ts)
    return; /* profiling is best effort */
  VkResult r = vk->fn.vkGetQueryPoolResults(vk->device, pool, 0, n, n * sizeof(uint64_t), ts,
                                            sizeof(uint64_t),
                                            VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
  if (r == VK_SUCCESS) {
    for (uint32_t q = 1; q < n; q++) {
      uint8_t k = ops[q];
      if (k >= VKF_OP_COUNT)
        continue;
      uint64_t dt = (ts[q] - ts[q - 1]) & vk->ts_mask;
      vk->base.profile.count[k]++;
      vk->base.profile.ms[k] += (double)dt * vk->ts_period_ms;
    }
  }
  vkf_free(vk->base.env, ts);
}

/* After the slot's fence signalled: deliver readbacks, timestamps; free
 * staging memory. */
static void retire(vkf_vk *vk, vkf_vk_slot *s) {
  for (uint32_t i = 0; i < s->n_readbacks; i++) {
    vkf_vk_readback *rb = &s->readbacks[i];
    memcpy(rb->dst, (const char *)rb->staging->mapped + rb->offset, (size_t)rb->bytes);
  }
  s->n_readbacks = 0;
  for (uint32_t i = 0; i < s->n_staging; i++) {
    vkf_vk_block *b = s->staging[i];
    if (!vk->staging_spare && b->size == VKF_VK_STAGING_MIN)
      vk->staging_spare = b; /* the next small copies reuse it */
    else
      vkf_vk_block_free(vk, b);
  }
  s->n_staging = 0;
  s->staging_used = s->staging_bytes = 0;
  if (s->queries && s->n_queries > 1) {
    uint64_t ts[VKF_VK_MAX_QUERIES];
    VkResult r = vk->fn.vkGetQueryPoolResults(vk->device, s->queries, 0, s->n_queries, sizeof(ts),
                                              ts, sizeof(uint64_t),
                                              VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (r == VK_SUCCESS) {
      for (uint32_t q = 1; q < s->n_queries; q++) {
        uint8_t k = s->query_op[q];
        if (k >= VKF_OP_COUNT)
          continue;
        uint64_t dt = (ts[q] - ts[q - 1]) & vk->ts_mask;
        vk->base.profile.count[k]++;
        vk->base.profile.ms[k] += (double)dt * vk->ts_period_ms;
      }
    }
  }
  s->n_queries = 0;
  s->in_flight = false;
}

static vkf_status wait_slot(vkf_vk *vk, vkf_vk_slot *s) {
  if (!s->in_flight)
    return VKF_OK;
  VkResult r = vk->fn.vkWaitForFences(vk->device, 1, &s->fence, VK_TRUE, UINT64_MAX);
  if (r != VK_SUCCESS)
    return vkf_vk_result(vk, r, "vkWaitForFences");
  r = vk->fn.vkResetFences(vk->device, 1, &s->fence);
  retire(vk, s);
  return vkf_vk_result(vk, r, "vkResetFences");
}

/* The current slot, recording (the capture's pseudo-slot while capturing). */
static vkf_status begin(vkf_vk *vk, vkf_vk_slot **out) {
  if (vk->lost)
    return vkf_fail(vk->base.env, VKF_ERROR_DEVICE_LOST,
                    "the device was lost; the context can only be destroyed now");
  if (vk->capturing) {
    *out = &vk->capture_slot;
    return VKF_OK;
  }
  vkf_vk_slot *s = &vk->slots[vk->cur];
  if (!s->recording) {
    vkf_status st = wait_slot(vk, s);
    if (st != VKF_OK)
      return st;
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    st = vkf_vk_result(vk, vk->fn.vkBeginCommandBuffer(s->cmd, &bi), "vkBeginCommandBuffer");
    if (st != VKF_OK)
      return st;
    s->recording = true;
    s->commands = 0;
    if (s->queries) {
      vk->fn.vkCmdResetQueryPool(s->cmd, s->queries, 0, VKF_VK_MAX_QUERIES);
      vk->fn.vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, s->queries, 0);
      s->query_op[0] = 0xff;
      s->n_queries = 1;
    }
  }
  *out = s;
  return VKF_OK;
}

static void barrier(vkf_vk *vk, vkf_vk_slot *s) {
  VkMemoryBarrier mb = {
      .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
      .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
      .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                       VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
  };
  VkPipelineStageFlags stages =
      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  vk->fn.vkCmdPipelineBarrier(s->cmd, stages, stages, 0, 1, &mb, 0, NULL, 0, NULL);
  vk->reads.n = 0;
  vk->writes.n = 0;
}

/* Adds a barrier if the new command conflicts with what came since the last
 * one, then records its ranges. */
static vkf_status track(vkf_vk *vk, vkf_vk_slot *s, const vkf_vk_range *reads, uint32_t n_reads,
                        const vkf_vk_range *writes, uint32_t n_writes) {
  bool need = vk->base.profiling; /* timing each op alone */
  for (uint32_t i = 0; i < n_reads && !need; i++)
    need = ranges_overlap(&vk->writes, reads[i]);
  for (uint32_t i = 0; i < n_writes && !need; i++)
    need = ranges_overlap(&vk->writes, writes[i]) || ranges_overlap(&vk->reads, writes[i]);
  if (need)
    barrier(vk, s);
  /* what the host must wait for before touching these ranges: now, or once
   * the captured program is replayed */
  vkf_vk_range_set *pr = vk->capturing ? &vk->capturing->reads : &vk->pend_reads;
  vkf_vk_range_set *pw = vk->capturing ? &vk->capturing->writes : &vk->pend_writes;
  vkf_status st = VKF_OK;
  for (uint32_t i = 0; i < n_reads && st == VKF_OK; i++) {
    st = ranges_add(vk, &vk->reads, reads[i]);
    if (st == VKF_OK)
      st = ranges_add(vk, pr, reads[i]);
  }
  for (uint32_t i = 0; i < n_writes && st == VKF_OK; i++) {
    st = ranges_add(vk, &vk->writes, writes[i]);
    if (st == VKF_OK)
      st = ranges_add(vk, pw, writes[i]);
  }
  return st;
}

static vkf_status after_command(vkf_vk *vk, vkf_vk_slot *s, uint8_t kind) {
  s->commands++;
  if (s->queries && s->n_queries < s->max_queries) {
    vk->fn.vkCmdWriteTimestamp(s->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s->queries,
                               s->n_queries);
    s->query_op[s->n_queries++] = kind;
  }
  if (!vk->capturing &&
      (s->commands >= AUTO_FLUSH_COMMANDS || (s->queries && s->n_queries >= s->max_queries)))
    return vkf_vk_flush(vk);
  return VKF_OK;
}

/* Makes device writes visible to host reads once the fence signalled. */
static void host_barrier(vkf_vk *vk, VkCommandBuffer cmd) {
  VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                        .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
  vk->fn.vkCmdPipelineBarrier(cmd,
                              VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                              VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
}

static vkf_status submit(vkf_vk *vk, VkCommandBuffer cmd, VkFence fence) {
  VkSubmitInfo si = {
      .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cmd};
  if (vk->lock_queue)
    vk->lock_queue(vk->queue_lock_user);
  VkResult r = vk->fn.vkQueueSubmit(vk->queue, 1, &si, fence);
  if (vk->unlock_queue)
    vk->unlock_queue(vk->queue_lock_user);
  return vkf_vk_result(vk, r, "vkQueueSubmit");
}

vkf_status vkf_vk_flush(vkf_vk *vk) {
  if (vk->capturing)
    return VKF_OK; /* nothing runs until the program is replayed */
  vkf_vk_slot *s = &vk->slots[vk->cur];
  if (!s->recording)
    return VKF_OK;
  host_barrier(vk, s->cmd);
  s->recording = false;
  vkf_status st = vkf_vk_result(vk, vk->fn.vkEndCommandBuffer(s->cmd), "vkEndCommandBuffer");
  if (st != VKF_OK)
    return st;
  VkSubmitInfo si = {
      .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &s->cmd};
  if (vk->lock_queue)
    vk->lock_queue(vk->queue_lock_user);
  VkResult r = vk->fn.vkQueueSubmit(vk->queue, 1, &si, s->fence);
  if (vk->unlock_queue)
    vk->unlock_queue(vk->queue_lock_user);
  st = vkf_vk_result(vk, r, "vkQueueSubmit");
  if (st != VKF_OK)
    return st;
  s->in_flight = true;
  vk->cur = (vk->cur + 1) % VKF_VK_SLOTS;
  return VKF_OK;
}

static vkf_status wait_program(vkf_vk *vk, vkf_program *p) {
  if (!p->in_flight)
    return VKF_OK;
  VkResult r = vk->fn.vkWaitForFences(vk->device, 1, &p->fence, VK_TRUE, UINT64_MAX);
  if (r == VK_SUCCESS) {
    profile_collect(vk, p->queries, p->query_op, p->n_queries);
    r = vk->fn.vkResetFences(vk->device, 1, &p->fence);
  }
  p->in_flight = false;
  return vkf_vk_result(vk, r, "vkWaitForFences");
}

vkf_status vkf_vk_synchronize(vkf_backend *be) {
  vkf_vk *vk = (vkf_vk *)be;
  if (vk->lost)
    return vkf_fail(be->env, VKF_ERROR_DEVICE_LOST,
                    "the device was lost; the context can only be destroyed now");
  if (vk->capturing)
    return vkf_fail(be->env, VKF_ERROR_INVALID_ARGUMENT,
                    "cannot synchronize while capturing a program");
  vkf_status st = vkf_vk_flush(vk);
  for (uint32_t i = 0; i < VKF_VK_SLOTS; i++) {
    vkf_status w = wait_slot(vk, &vk->slots[(vk->cur + i) % VKF_VK_SLOTS]);
    if (st == VKF_OK)
      st = w;
  }
  for (uint32_t i = 0; i < vk->n_programs; i++) {
    vkf_status w = wait_program(vk, vk->programs[i]);
    if (st == VKF_OK)
      st = w;
  }
  if (st == VKF_OK) {
    vk->pend_reads.n = vk->pend_writes.n = 0;
    vk->reads.n = vk->writes.n = 0;
  }
  return st;
}

/* ------------------------------------------------------------------------ */
/* Captured programs                                                        */
/* ------------------------------------------------------------------------ */
static void swap_sets(vkf_vk_range_set *a, vkf_vk_range_set *b) {
  vkf_vk_range_set t = *a;
  *a = *b;
  *b = t;
}

static void full_barrier(vkf_vk *vk, VkCommandBuffer cmd) {
  VkMemoryBarrier mb = {
      .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
      .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
      .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                       VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
  };
  VkPipelineStageFlags stages =
      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  vk->fn.vkCmdPipelineBarrier(cmd, stages, stages, 0, 1, &mb, 0, NULL, 0, NULL);
}

void vkf_vk_program_destroy(vkf_backend *be, vkf_program *p) {
  vkf_vk *vk = (vkf_vk *)be;
  if (!p)
    return;
  if (p->in_flight && !vk->lost)
    vk->fn.vkWaitForFences(vk->device, 1, &p->fence, VK_TRUE, UINT64_MAX);
  for (uint32_t i = 0; i < vk->n_programs; i++)
    if (vk->programs[i] == p) {
      vk->programs[i] = vk->programs[--vk->n_programs];
      break;
    }
  if (p->cmd)
    vk->fn.vkFreeCommandBuffers(vk->device, vk->pool, 1, &p->cmd);
  if (p->fence)
    vk->fn.vkDestroyFence(vk->device, p->fence, NULL);
  if (vk->capturing == p)
    vk->capturing = NULL;
  for (uint32_t i = 0; i < p->n_owned; i++)
    vkf_vk_buffer_release(vk, p->owned[i]);
  vkf_free(be->env, p->owned);
  if (p->queries)
    vk->fn.vkDestroyQueryPool(vk->device, p->queries, NULL);
  vkf_free(be->env, p->query_op);
  ranges_free(vk, &p->reads);
  ranges_free(vk, &p->writes);
  vkf_free(be->env, p);
}

vkf_status vkf_vk_capture_begin(vkf_backend *be) {
  vkf_vk *vk = (vkf_vk *)be;
  vkf_env *env = be->env;
  if (vk->lost)
    return vkf_fail(env, VKF_ERROR_DEVICE_LOST, "the device was lost");
  if (vk->capturing)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "already capturing");
  vkf_status st = vkf_vk_flush(vk); /* earlier work first in submission order */
  if (st != VKF_OK)
    return st;
  if (vk->n_programs == vk->cap_programs) {
    uint32_t cap = vk->cap_programs ? vk->cap_programs * 2 : 4;
    vkf_program **np = vkf_realloc(env, vk->programs, cap * sizeof(*np));
    if (!np)
      return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "program list");
    vk->programs = np;
    vk->cap_programs = cap;
  }
  vkf_program *p = vkf_calloc(env, 1, sizeof(*p));
  if (!p)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "program");
  vk->programs[vk->n_programs++] = p;
  VkCommandBufferAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                    .commandPool = vk->pool,
                                    .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                    .commandBufferCount = 1};
  VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  st = vkf_vk_result(vk, vk->fn.vkAllocateCommandBuffers(vk->device, &ai, &p->cmd),
                     "vkAllocateCommandBuffers");
  if (st == VKF_OK)
    st =
        vkf_vk_result(vk, vk->fn.vkCreateFence(vk->device, &fci, NULL, &p->fence), "vkCreateFence");
  if (st == VKF_OK)
    st = vkf_vk_result(vk, vk->fn.vkBeginCommandBuffer(p->cmd, &bi), "vkBeginCommandBuffer");
  if (st != VKF_OK) {
    vkf_vk_program_destroy(be, p);
    return st;
  }
  if (vk->base.profiling) {
    VkQueryPoolCreateInfo qci = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                 .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                 .queryCount = VKF_VK_PROGRAM_QUERIES};
    st = vkf_vk_result(vk, vk->fn.vkCreateQueryPool(vk->device, &qci, NULL, &p->queries),
                       "vkCreateQueryPool");
    p->query_op = st == VKF_OK ? vkf_malloc(env, VKF_VK_PROGRAM_QUERIES) : NULL;
    if (st == VKF_OK && !p->query_op)
      st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "profiling");
    if (st != VKF_OK) {
      vkf_vk_program_destroy(be, p);
      return st;
    }
  }
  /* orders the program after everything submitted before each replay */
  full_barrier(vk, p->cmd);
  vk->capturing = p;
  memset(&vk->capture_slot, 0, sizeof(vk->capture_slot));
  vk->capture_slot.cmd = p->cmd;
  vk->capture_slot.recording = true;
  if (p->queries) {
    vk->fn.vkCmdResetQueryPool(p->cmd, p->queries, 0, VKF_VK_PROGRAM_QUERIES);
    vk->fn.vkCmdWriteTimestamp(p->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, p->queries, 0);
    p->query_op[0] = 0xff;
    vk->capture_slot.queries = p->queries;
    vk->capture_slot.query_op = p->query_op;
    vk->capture_slot.max_queries = VKF_VK_PROGRAM_QUERIES;
    vk->capture_slot.n_queries = 1;
  }
  swap_sets(&vk->reads, &vk->saved_reads);
  swap_sets(&vk->writes, &vk->saved_writes);
  vk->reads.n = vk->writes.n = 0;
  return VKF_OK;
}

vkf_status vkf_vk_capture_end(vkf_backend *be, vkf_program **out) {
  vkf_vk *vk = (vkf_vk *)be;
  *out = NULL;
  vkf_program *p = vk->capturing;
  if (!p)
    return vkf_fail(be->env, VKF_ERROR_INVALID_ARGUMENT, "not capturing");
  host_barrier(vk, p->cmd);
  p->n_queries = vk->capture_slot.n_queries;
  vk->capturing = NULL;
  swap_sets(&vk->reads, &vk->saved_reads);
  swap_sets(&vk->writes, &vk->saved_writes);
  vk->saved_reads.n = vk->saved_writes.n = 0;
  vkf_status st = vkf_vk_result(vk, vk->fn.vkEndCommandBuffer(p->cmd), "vkEndCommandBuffer");
  if (st != VKF_OK) {
    vkf_vk_program_destroy(be, p);
    return st;
  }
  *out = p;
  return VKF_OK;
}

vkf_status vkf_vk_replay(vkf_backend *be, vkf_program *p) {
  vkf_vk *vk = (vkf_vk *)be;
  if (vk->lost)
    return vkf_fail(be->env, VKF_ERROR_DEVICE_LOST, "the device was lost");
  if (vk->capturing)
    return vkf_fail(be->env, VKF_ERROR_INVALID_ARGUMENT, "cannot replay while capturing");
  vkf_status st = vkf_vk_flush(vk);
  if (st == VKF_OK)
    st = wait_program(vk, p);
  if (st == VKF_OK)
    st = submit(vk, p->cmd, p->fence);
  if (st != VKF_OK)
    return st;
  p->in_flight = true;
  /* later eager commands and host access must wait for what it touches */
  for (uint32_t i = 0; i < p->reads.n && st == VKF_OK; i++) {
    st = ranges_add(vk, &vk->pend_reads, p->reads.r[i]);
    if (st == VKF_OK)
      st = ranges_add(vk, &vk->reads, p->reads.r[i]);
  }
  for (uint32_t i = 0; i < p->writes.n && st == VKF_OK; i++) {
    st = ranges_add(vk, &vk->pend_writes, p->writes.r[i]);
    if (st == VKF_OK)
      st = ranges_add(vk, &vk->writes, p->writes.r[i]);
  }
  return st;
}

void vkf_vk_exec_destroy(vkf_vk *vk) {
  while (vk->n_programs)
    vkf_vk_program_destroy(&vk->base, vk->programs[vk->n_programs - 1]);
  vkf_free(vk->base.env, vk->programs);
  ranges_free(vk, &vk->saved_reads);
  ranges_free(vk, &vk->saved_writes);
  for (uint32_t i = 0; i < VKF_VK_SLOTS; i++) {
    vkf_vk_slot *s = &vk->slots[i];
    if (s->in_flight && !vk->lost)
      vk->fn.vkWaitForFences(vk->device, 1, &s->fence, VK_TRUE, UINT64_MAX);
    s->n_readbacks = 0; /* their destinations may be gone */
    for (uint32_t j = 0; j < s->n_staging; j++)
      vkf_vk_block_free(vk, s->staging[j]);
    vkf_free(vk->base.env, s->staging);
    vkf_free(vk->base.env, s->readbacks);
    s->n_staging = 0;
    if (s->fence)
      vk->fn.vkDestroyFence(vk->device, s->fence, NULL);
    if (s->queries)
      vk->fn.vkDestroyQueryPool(vk->device, s->queries, NULL);
    vkf_free(vk->base.env, s->query_op);
  }
  vkf_vk_block_free(vk, vk->staging_spare);
  vk->staging_spare = NULL;
  if (vk->pool)
    vk->fn.vkDestroyCommandPool(vk->device, vk->pool, NULL);
  ranges_free(vk, &vk->reads);
  ranges_free(vk, &vk->writes);
  ranges_free(vk, &vk->pend_reads);
  ranges_free(vk, &vk->pend_writes);
}

/* ------------------------------------------------------------------------ */
/* Commands                                                                 */
/* ------------------------------------------------------------------------ */
vkf_status vkf_vk_dispatch_record(vkf_vk *vk, const vkf_vk_dispatch *d) {
  vkf_vk_slot *s = NULL;
  vkf_status st = begin(vk, &s);
  if (st == VKF_OK)
    st = track(vk, s, d->reads, d->n_reads, d->writes, d->n_writes);
  if (st != VKF_OK)
    return st;
  vk->fn.vkCmdBindPipeline(s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, d->pipeline);
  VkPipelineLayout layout = d->n_views ? vk->layout_tex : vk->layout;
  if (d->n_views) {
    VkWriteDescriptorSet w[VKF_VK_TEXEL_BINDINGS];
    for (uint32_t i = 0; i < d->n_views && i < VKF_VK_TEXEL_BINDINGS; i++)
      w[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                    .dstBinding = i,
                                    .descriptorCount = 1,
                                    .descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
                                    .pTexelBufferView = &d->views[i]};
    vk->fn.vkCmdPushDescriptorSetKHR(
        s->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0,
        d->n_views < VKF_VK_TEXEL_BINDINGS ? d->n_views : VKF_VK_TEXEL_BINDINGS, w);
  }
  vk->fn.vkCmdPushConstants(s->cmd, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, d->push_size, d->push);
  vk->fn.vkCmdDispatch(s->cmd, d->groups[0], d->groups[1], d->groups[2]);
  return after_command(vk, s, (uint8_t)d->kind);
}

static vkf_status copy_record(vkf_vk *vk, VkBuffer dst, uint64_t dst_off, vkf_vk_range *w,
                              VkBuffer src, uint64_t src_off, vkf_vk_range *r, uint64_t bytes,
                              uint8_t kind);

/* vkCmdFillBuffer writes whole words only. A 16-bit tensor of odd length
 * ends in half a word whose other half may belong to a neighbouring view:
 * that tail is copied from a scratch word holding the pattern. */
vkf_status vkf_vk_fill_record(vkf_vk *vk, vkf_tref dst, uint32_t bits) {
  uint64_t words = dst.bytes & ~3ull, tail = dst.bytes - words;
  vkf_vk_slot *s = NULL;
  vkf_status st = begin(vk, &s);
  if (st != VKF_OK)
    return st;
  vkf_vk_range w = range_of(dst);
  uint64_t off = dst.buf->offset + dst.offset;
  if (words) {
    w.end = w.begin + words;
    st = track(vk, s, NULL, 0, &w, 1);
    if (st != VKF_OK)
      return st;
    vk->fn.vkCmdFillBuffer(s->cmd, dst.buf->block->buffer, off, words, bits);
    st = after_command(vk, s, tail ? 0xff : VKF_OP_FILL);
    if (st != VKF_OK || !tail)
      return st;
  }
  vkf_vk_block *scratch = NULL;
  st = vkf_vk_scratch(vk, &scratch);
  if (st == VKF_OK)
    st = begin(vk, &s); /* after_command may have submitted */
  if (st != VKF_OK)
    return st;
  vkf_vk_range sr = {scratch->address, scratch->address + 4};
  st = track(vk, s, NULL, 0, &sr, 1);
  if (st != VKF_OK)
    return st;
  vk->fn.vkCmdUpdateBuffer(s->cmd, scratch->buffer, 0, 4, &bits);
  st = after_command(vk, s, 0xff);
  if (st != VKF_OK)
    return st;
  vkf_vk_range tw = {w.begin + words, w.begin + words + tail};
  return copy_record(vk, dst.buf->block->buffer, off + words, &tw, scratch->buffer, 0, &sr, tail,
                     VKF_OP_FILL);
}

static vkf_status copy_record(vkf_vk *vk, VkBuffer dst, uint64_t dst_off, vkf_vk_range *w,
                              VkBuffer src, uint64_t src_off, vkf_vk_range *r, uint64_t bytes,
                              uint8_t kind) {
  vkf_vk_slot *s = NULL;
  vkf_status st = begin(vk, &s);
  if (st == VKF_OK)
    st = track(vk, s, r, r ? 1 : 0, w, w ? 1 : 0);
  if (st != VKF_OK)
    return st;
  VkBufferCopy region = {src_off, dst_off, bytes};
  vk->fn.vkCmdCopyBuffer(s->cmd, src, dst, 1, &region);
  return after_command(vk, s, kind);
}

/* `bytes` of staging memory for the recording slot `s`: the rest of its
 * last staging block when that suffices, else a new block (the spare when it
 * fits), held until the submission completes. */
static vkf_status staging_take(vkf_vk *vk, vkf_vk_slot *s, uint64_t bytes, vkf_vk_block **out,
                               uint64_t *offset) {
  if (s->n_staging) {
    vkf_vk_block *last = s->staging[s->n_staging - 1];
    uint64_t off = (s->staging_used + 15) & ~15ull;
    if (off + bytes <= last->size) {
      s->staging_used = off + bytes;
      *out = last;
      *offset = off;
      return VKF_OK;
    }
  }
  if (s->n_staging == s->cap_staging) {
    uint32_t cap = s->cap_staging ? s->cap_staging * 2 : 8;
    vkf_vk_block **nb = vkf_realloc(vk->base.env, s->staging, cap * sizeof(*nb));
    if (!nb)
      return vkf_fail(vk->base.env, VKF_ERROR_OUT_OF_HOST_MEMORY, "staging list");
    s->staging = nb;
    s->cap_staging = cap;
  }
  vkf_vk_block *b = NULL;
  if (vk->staging_spare && bytes <= vk->staging_spare->size) {
    b = vk->staging_spare;
    vk->staging_spare = NULL;
  } else {
    vkf_status st = vkf_vk_staging_create(vk, bytes, &b);
    if (st != VKF_OK)
      return st;
  }
  s->staging[s->n_staging++] = b;
  s->staging_used = bytes;
  s->staging_bytes += b->size;
  *out = b;
  *offset = 0;
  return VKF_OK;
}

static vkf_status no_host_io(vkf_backend *be) {
  return vkf_fail(be->env, VKF_ERROR_INVALID_ARGUMENT,
                  "tensor reads and writes are not allowed while capturing a program");
}

vkf_status vkf_vk_write(vkf_backend *be, vkf_tref dst, const void *src) {
  vkf_vk *vk = (vkf_vk *)be;
  if (vk->lost)
    return vkf_fail(be->env, VKF_ERROR_DEVICE_LOST, "the device was lost");
  if (vk->capturing)
    return no_host_io(be);
  vkf_vk_range rng = range_of(dst);
  if (dst.buf->block->mapped) {
    if (ranges_overlap(&vk->pend_reads, rng) || ranges_overlap(&vk->pend_writes, rng)) {
      vkf_status st = vkf_vk_synchronize(be);
      if (st != VKF_OK)
        return st;
    }
    memcpy((char *)dst.buf->block->mapped + dst.buf->offset + dst.offset, src, (size_t)dst.bytes);
    return VKF_OK;
  }
  for (uint64_t done = 0; done < dst.bytes;) {
    uint64_t n = dst.bytes - done < STAGING_CHUNK ? dst.bytes - done : STAGING_CHUNK;
    vkf_vk_slot *s = NULL;
    vkf_vk_block *stg;
    uint64_t so = 0;
    vkf_status st = begin(vk, &s);
    if (st == VKF_OK)
      st = staging_take(vk, s, n, &stg, &so);
    if (st != VKF_OK)
      return st;
    memcpy((char *)stg->mapped + so, (const char *)src + done, (size_t)n);
    vkf_vk_range w = {rng.begin + done, rng.begin + done + n};
    st = copy_record(vk, dst.buf->block->buffer, dst.buf->offset + dst.offset + done, &w,
                     stg->buffer, so, NULL, n, 0xff);
    if (st != VKF_OK)
      return st;
    done += n;
    /* bound the staging memory in flight: submit when a submission holds a
     * lot; the next one waits for the older of the two slots */
    if (s->recording && s->staging_bytes >= STAGING_FLUSH) {
      st = vkf_vk_flush(vk);
      if (st != VKF_OK)
        return st;
    }
  }
  return VKF_OK;
}

vkf_status vkf_vk_read(vkf_backend *be, vkf_tref src, void *dst) {
  vkf_vk *vk = (vkf_vk *)be;
  if (vk->lost)
    return vkf_fail(be->env, VKF_ERROR_DEVICE_LOST, "the device was lost");
  if (vk->capturing)
    return no_host_io(be);
  vkf_vk_range rng = range_of(src);
  if (src.buf->block->mapped) {
    if (ranges_overlap(&vk->pend_writes, rng)) {
      vkf_status st = vkf_vk_synchronize(be);
      if (st != VKF_OK)
        return st;
    }
    memcpy(dst, (const char *)src.buf->block->mapped + src.buf->offset + src.offset,
           (size_t)src.bytes);
    return VKF_OK;
  }
  for (uint64_t done = 0; done < src.bytes;) {
    uint64_t n = src.bytes - done < STAGING_CHUNK ? src.bytes - done : STAGING_CHUNK;
    vkf_vk_slot *s = NULL;
    vkf_vk_block *stg;
    uint64_t so = 0;
    vkf_status st = begin(vk, &s);
    if (st == VKF_OK)
      st = staging_take(vk, s, n, &stg, &so);
    if (st != VKF_OK)
      return st;
    if (s->n_readbacks == s->cap_readbacks) {
      uint32_t cap = s->cap_readbacks ? s->cap_readbacks * 2 : 8;
      vkf_vk_readback *nr = vkf_realloc(be->env, s->readbacks, cap * sizeof(*nr));
      if (!nr)
        return vkf_fail(be->env, VKF_ERROR_OUT_OF_HOST_MEMORY, "readback list");
      s->readbacks = nr;
      s->cap_readbacks = cap;
    }
    vkf_vk_range r = {rng.begin + done, rng.begin + done + n};
    st = copy_record(vk, stg->buffer, so, NULL, src.buf->block->buffer,
                     src.buf->offset + src.offset + done, &r, n, 0xff);
    if (st != VKF_OK)
      return st;
    /* copy_record may have auto-flushed: the readback belongs to the slot
     * that holds the copy, which is `s` */
    s->readbacks[s->n_readbacks++] = (vkf_vk_readback){stg, so, (char *)dst + done, n};
    done += n;
    if (done < src.bytes) {
      st = vkf_vk_synchronize(be); /* bound staging memory to one chunk */
      if (st != VKF_OK)
        return st;
    }
  }
  return vkf_vk_synchronize(be);
}

vkf_status vkf_vk_copy(vkf_backend *be, vkf_tref dst, vkf_tref src) {
  vkf_vk *vk = (vkf_vk *)be;
  vkf_vk_range r = range_of(src), w = range_of(dst);
  uint64_t bytes = (dst.bytes < src.bytes ? dst.bytes : src.bytes);
  return copy_record(vk, dst.buf->block->buffer, dst.buf->offset + dst.offset, &w,
                     src.buf->block->buffer, src.buf->offset + src.offset, &r, bytes, 0xff);
}
