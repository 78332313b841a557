/* Device memory: tensors are sub-allocated from large blocks, each block one
 * VkDeviceMemory bound to one VkBuffer that covers it. Kernels reach tensors
 * by buffer device address, so no tensor is limited by maxStorageBufferRange;
 * a tensor larger than half a block gets a block of its own. */
#include "vk.h"

#include <string.h>

#define ALIGN 256u
#define FIRST_BLOCK (32ull << 20)
#define MAX_BLOCK (256ull << 20)

static uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

static uint32_t pick_type(const VkPhysicalDeviceMemoryProperties *m, uint32_t bits,
                          VkMemoryPropertyFlags need, VkMemoryPropertyFlags prefer,
                          VkMemoryPropertyFlags avoid) {
  uint32_t best = UINT32_MAX;
  int best_score = -1;
  for (uint32_t i = 0; i < m->memoryTypeCount; i++) {
    VkMemoryPropertyFlags f = m->memoryTypes[i].propertyFlags;
    if (!(bits & (1u << i)) || (f & need) != need)
      continue;
    int score = 0;
    if ((f & prefer) == prefer)
      score += 2;
    if (!(f & avoid))
      score += 1;
    if (score > best_score) {
      best_score = score;
      best = i;
    }
  }
  return best;
}

static const VkBufferUsageFlags USAGE =
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
    VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT;

vkf_status vkf_vk_memory_init(vkf_vk *vk) {
  vkf_vk_memory *m = &vk->mem;
  vkf_env *env = vk->base.env;
  /* A probe buffer tells which memory types buffers may use. */
  VkBufferCreateInfo bci = {
      .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
      .size = 4096,
      .usage = USAGE | (vk->caps.texel_reads ? VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT : 0),
      .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
  VkBuffer probe;
  VkResult r = vk->fn.vkCreateBuffer(vk->device, &bci, NULL, &probe);
  if (r != VK_SUCCESS)
    return vkf_vk_result(vk, r, "vkCreateBuffer");
  VkMemoryRequirements req;
  vk->fn.vkGetBufferMemoryRequirements(vk->device, probe, &req);
  vk->fn.vkDestroyBuffer(vk->device, probe, NULL);

  const VkPhysicalDeviceMemoryProperties *mp = &vk->caps.mem;
  const VkMemoryPropertyFlags HV =
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  m->mapped = vk->base.info.uma && !(vk->flags & VKF_CONTEXT_FORCE_STAGING);
  if (m->mapped) {
    m->type_index = pick_type(mp, req.memoryTypeBits, HV | VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                              VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
    if (m->type_index == UINT32_MAX)
      m->type_index = pick_type(mp, req.memoryTypeBits, HV, VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
    m->staging_type_index = UINT32_MAX;
  } else {
    m->type_index = pick_type(mp, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0,
                              VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
    if (m->type_index == UINT32_MAX)
      m->type_index = pick_type(mp, req.memoryTypeBits, 0, 0, 0);
    m->staging_type_index =
        pick_type(mp, req.memoryTypeBits, HV, VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
    if (m->staging_type_index == UINT32_MAX)
      return vkf_fail(env, VKF_ERROR_UNSUPPORTED, "%s: no host-visible memory type for staging",
                      vk->base.info.name);
  }
  if (m->type_index == UINT32_MAX)
    return vkf_fail(env, VKF_ERROR_UNSUPPORTED, "%s: no memory type for storage buffers",
                    vk->base.info.name);
  uint64_t heap = mp->memoryHeaps[mp->memoryTypes[m->type_index].heapIndex].size;
  if (!m->limit || m->limit > heap)
    m->limit = heap;
  m->block_size_next = FIRST_BLOCK;
  return VKF_OK;
}

/* `texel`: tensor blocks of a device with texel reads (vk.h) can be read
 * through a uniform texel buffer view too. */
static vkf_status block_create(vkf_vk *vk, uint64_t size, uint32_t type_index, bool map, bool texel,
                               vkf_vk_block **out) {
  vkf_env *env = vk->base.env;
  *out = NULL;
  vkf_vk_block *b = vkf_calloc(env, 1, sizeof(*b));
  if (!b)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "memory block");
  b->texel = texel;
  VkBufferCreateInfo bci = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                            .size = size,
                            .usage = USAGE | (texel ? VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT : 0),
                            .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
  VkResult r = vk->fn.vkCreateBuffer(vk->device, &bci, NULL, &b->buffer);
  vkf_status st = vkf_vk_result(vk, r, "vkCreateBuffer");
  if (st == VKF_OK) {
    VkMemoryRequirements req;
    vk->fn.vkGetBufferMemoryRequirements(vk->device, b->buffer, &req);
    VkMemoryAllocateFlagsInfo flags = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO,
                                       .flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT};
    VkMemoryAllocateInfo mai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                .pNext = &flags,
                                .allocationSize = req.size,
                                .memoryTypeIndex = type_index};
    r = vk->fn.vkAllocateMemory(vk->device, &mai, NULL, &b->memory);
    st = vkf_vk_result(vk, r, "vkAllocateMemory");
    if (st == VKF_OK)
      st = vkf_vk_result(vk, vk->fn.vkBindBufferMemory(vk->device, b->buffer, b->memory, 0),
                         "vkBindBufferMemory");
    if (st == VKF_OK && map)
      st = vkf_vk_result(vk,
                         vk->fn.vkMapMemory(vk->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped),
                         "vkMapMemory");
  }
  if (st != VKF_OK) {
    if (st == VKF_ERROR_OUT_OF_DEVICE_MEMORY)
      vkf_fail(env, st, "out of device memory allocating a %llu MiB block on %s",
               (unsigned long long)(size >> 20), vk->base.info.name);
    if (b->buffer)
      vk->fn.vkDestroyBuffer(vk->device, b->buffer, NULL);
    if (b->memory)
      vk->fn.vkFreeMemory(vk->device, b->memory, NULL);
    vkf_free(env, b);
    return st;
  }
  VkBufferDeviceAddressInfo ai = {.sType = VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO,
                                  .buffer = b->buffer};
  b->address = vk->fn.vkGetBufferDeviceAddress(vk->device, &ai);
  b->size = size;
  *out = b;
  return VKF_OK;
}

void vkf_vk_block_free(vkf_vk *vk, vkf_vk_block *b) {
  if (!b)
    return;
  if (b->mapped)
    vk->fn.vkUnmapMemory(vk->device, b->memory);
  if (b->view)
    vk->fn.vkDestroyBufferView(vk->device, b->view, NULL);
  vk->fn.vkDestroyBuffer(vk->device, b->buffer, NULL);
  vk->fn.vkFreeMemory(vk->device, b->memory, NULL);
  vkf_free(vk->base.env, b->free);
  vkf_free(vk->base.env, b);
}

vkf_status vkf_vk_staging_create(vkf_vk *vk, uint64_t bytes, vkf_vk_block **out) {
  uint64_t size = align_up(bytes > VKF_VK_STAGING_MIN ? bytes : VKF_VK_STAGING_MIN, 1u << 20);
  vkf_status st = block_create(vk, size, vk->mem.staging_type_index, true, false, out);
  if (st == VKF_OK)
    (*out)->staging = true;
  return st;
}

/* First fit inside one block; returns false when it has no room (or the
 * free list cannot grow).
 * Free ranges are kept merged, so a live range separates any two of them:
 * there are never more than live + 1. Reserving that many entries here, where
 * failure can be reported, means block_give never has to grow the list
 * (freeing every other tensor of a back-to-back run creates more free
 * ranges than the block ever had). */
static bool block_take(vkf_vk *vk, vkf_vk_block *b, uint64_t size, uint64_t *offset) {
  if (b->cap_free < b->live + 2) {
    uint32_t cap = b->cap_free * 2 > b->live + 2 ? b->cap_free * 2 : b->live + 2;
    vkf_vk_free_range *nf = vkf_realloc(vk->base.env, b->free, cap * sizeof(*nf));
    if (!nf)
      return false;
    b->free = nf;
    b->cap_free = cap;
  }
  for (uint32_t i = 0; i < b->n_free; i++) {
    vkf_vk_free_range *f = &b->free[i];
    uint64_t start = align_up(f->offset, ALIGN);
    if (start + size > f->offset + f->size)
      continue;
    uint64_t end = start + size, f_end = f->offset + f->size;
    if (start > f->offset && end < f_end) {
      /* split into two free ranges (room reserved above) */
      memmove(&b->free[i + 2], &b->free[i + 1], (b->n_free - i - 1) * sizeof(*f));
      b->free[i + 1] = (vkf_vk_free_range){end, f_end - end};
      f->size = start - f->offset;
      b->n_free++;
    } else if (start > f->offset) {
      f->size = start - f->offset;
    } else if (end < f_end) {
      f->offset = end;
      f->size = f_end - end;
    } else {
      memmove(&b->free[i], &b->free[i + 1], (b->n_free - i - 1) * sizeof(*f));
      b->n_free--;
    }
    *offset = start;
    b->live++;
    return true;
  }
  return false;
}

static void block_give(vkf_vk_block *b, uint64_t offset, uint64_t size) {
  /* insert sorted, then merge with neighbours; block_take reserved room for
   * live + 1 free ranges, which is the most there can be */
  uint32_t i = 0;
  while (i < b->n_free && b->free[i].offset < offset)
    i++;
  bool merge_prev = i > 0 && b->free[i - 1].offset + b->free[i - 1].size == offset;
  bool merge_next = i < b->n_free && offset + size == b->free[i].offset;
  if (merge_prev && merge_next) {
    b->free[i - 1].size += size + b->free[i].size;
    memmove(&b->free[i], &b->free[i + 1], (b->n_free - i - 1) * sizeof(b->free[0]));
    b->n_free--;
  } else if (merge_prev) {
    b->free[i - 1].size += size;
  } else if (merge_next) {
    b->free[i].offset = offset;
    b->free[i].size += size;
  } else {
    memmove(&b->free[i + 1], &b->free[i], (b->n_free - i) * sizeof(b->free[0]));
    b->free[i] = (vkf_vk_free_range){offset, size};
    b->n_free++;
  }
  b->live--;
}

static vkf_status add_block(vkf_vk *vk, uint64_t size, bool dedicated, vkf_vk_block **out) {
  vkf_vk_memory *m = &vk->mem;
  vkf_env *env = vk->base.env;
  if (m->allocated + size > m->limit)
    return vkf_fail(env, VKF_ERROR_OUT_OF_DEVICE_MEMORY,
                    "out of device memory: %llu MiB more would pass the %llu MiB limit "
                    "(%llu MiB in use)",
                    (unsigned long long)(size >> 20), (unsigned long long)(m->limit >> 20),
                    (unsigned long long)(m->allocated >> 20));
  if (m->n_blocks == m->cap_blocks) {
    uint32_t cap = m->cap_blocks ? m->cap_blocks * 2 : 16;
    vkf_vk_block **nb = vkf_realloc(env, m->blocks, cap * sizeof(*nb));
    if (!nb)
      return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "block table");
    m->blocks = nb;
    m->cap_blocks = cap;
  }
  vkf_vk_block *b;
  vkf_status st = block_create(vk, size, m->type_index, m->mapped, vk->caps.texel_reads, &b);
  if (st != VKF_OK)
    return st;
  b->dedicated = dedicated;
  b->cap_free = 8;
  b->free = vkf_malloc(env, b->cap_free * sizeof(*b->free));
  if (!b->free) {
    vkf_vk_block_free(vk, b);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "block free list");
  }
  b->free[0] = (vkf_vk_free_range){0, size};
  b->n_free = 1;
  m->blocks[m->n_blocks++] = b;
  m->allocated += size;
  *out = b;
  return VKF_OK;
}

vkf_status vkf_vk_buffer_create(vkf_backend *be, uint64_t bytes, vkf_buffer **out) {
  vkf_vk *vk = (vkf_vk *)be;
  vkf_vk_memory *m = &vk->mem;
  vkf_env *env = be->env;
  *out = NULL;
  if (vk->lost)
    return vkf_fail(env, VKF_ERROR_DEVICE_LOST, "the device was lost");
  uint64_t size = align_up(bytes ? bytes : 4, 16);
  uint64_t cap =
      vk->caps.max_alloc < vk->caps.max_buffer ? vk->caps.max_alloc : vk->caps.max_buffer;
  if (size > cap)
    return vkf_fail(env, VKF_ERROR_OUT_OF_DEVICE_MEMORY,
                    "a tensor of %llu MiB is larger than %s allows in one allocation (%llu MiB)",
                    (unsigned long long)(size >> 20), vk->base.info.name,
                    (unsigned long long)(cap >> 20));
  vkf_buffer *buf = vkf_malloc(env, sizeof(*buf));
  if (!buf)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "buffer");
  vkf_vk_block *block = NULL;
  uint64_t offset = 0;
  for (uint32_t i = 0; i < m->n_blocks && !block; i++)
    if (!m->blocks[i]->dedicated && block_take(vk, m->blocks[i], size, &offset))
      block = m->blocks[i];
  vkf_status st = VKF_OK;
  if (!block) {
    bool dedicated = size > m->block_size_next / 2;
    uint64_t bsize = dedicated ? align_up(size, ALIGN) : m->block_size_next;
    if (bsize > cap)
      bsize = cap;
    if (!dedicated && m->allocated + bsize > m->limit && m->allocated + size <= m->limit) {
      dedicated = true; /* a full block would pass the limit; the tensor alone fits */
      bsize = align_up(size, ALIGN);
    }
    st = add_block(vk, bsize, dedicated, &block);
    if (st == VKF_OK) {
      if (!dedicated && m->block_size_next < MAX_BLOCK)
        m->block_size_next *= 2;
      if (!block_take(vk, block, size, &offset))
        st = vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "block free list");
    }
  }
  if (st != VKF_OK) {
    vkf_free(env, buf);
    return st;
  }
  buf->block = block;
  buf->offset = offset;
  buf->size = size;
  m->used += size;
  if (m->used > m->peak)
    m->peak = m->used;
  *out = buf;
  return VKF_OK;
}

void vkf_vk_buffer_destroy(vkf_backend *be, vkf_buffer *buf) {
  if (!buf)
    return;
  vkf_vk *vk = (vkf_vk *)be;
  vkf_program *p = vk->capturing;
  if (p) {
    /* the commands being recorded may use it: keep it for the program */
    if (p->n_owned == p->cap_owned) {
      uint32_t cap = p->cap_owned ? p->cap_owned * 2 : 16;
      vkf_buffer **nb = vkf_realloc(be->env, p->owned, cap * sizeof(*nb));
      if (nb) {
        p->owned = nb;
        p->cap_owned = cap;
      }
    }
    if (p->n_owned < p->cap_owned)
      p->owned[p->n_owned++] = buf;
    /* (without host memory for the list, leak the range rather than let a
     * replay write into memory that is reused) */
    return;
  }
  vkf_vk_buffer_release(vk, buf);
}

void vkf_vk_buffer_release(vkf_vk *vk, vkf_buffer *buf) {
  vkf_backend *be = &vk->base;
  vkf_vk_memory *m = &vk->mem;
  vkf_vk_block *b = buf->block;
  block_give(b, buf->offset, buf->size);
  m->used -= buf->size;
  vkf_free(be->env, buf);
  if (b->live)
    return;
  /* An empty block goes back to the driver unless it is the only shared one;
   * the device may still be using it, so wait first. */
  uint32_t shared = 0;
  for (uint32_t i = 0; i < m->n_blocks; i++)
    shared += !m->blocks[i]->dedicated;
  if (!b->dedicated && shared <= 1)
    return;
  if (vkf_vk_synchronize(be) != VKF_OK && !vk->lost)
    return; /* keep it; freeing memory the device may use is worse */
  for (uint32_t i = 0; i < m->n_blocks; i++) {
    if (m->blocks[i] == b) {
      m->blocks[i] = m->blocks[--m->n_blocks];
      break;
    }
  }
  m->allocated -= b->size;
  vkf_vk_block_free(vk, b);
}

vkf_status vkf_vk_scratch(vkf_vk *vk, vkf_vk_block **out) {
  vkf_vk_memory *m = &vk->mem;
  if (!m->scratch) {
    vkf_status st = block_create(vk, 256, m->type_index, false, false, &m->scratch);
    if (st != VKF_OK)
      return st;
  }
  *out = m->scratch;
  return VKF_OK;
}

bool vkf_vk_texel(vkf_vk *vk, vkf_tref t, VkBufferView *view, uint64_t *float_offset,
                  vkf_vk_range *range) {
  if (!vk->caps.texel_reads || !t.buf)
    return false;
  vkf_vk_block *b = t.buf->block;
  uint64_t off = t.buf->offset + t.offset;
  if (!b->texel || off % 16)
    return false;
  if (!b->view) {
    /* the whole block, or as much of it as one view may cover */
    uint64_t bytes = b->size & ~15ull, max = (uint64_t)vk->caps.max_texel_elements * 16;
    if (bytes > max)
      bytes = max;
    VkBufferViewCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
                                 .buffer = b->buffer,
                                 .format = VK_FORMAT_R32G32B32A32_SFLOAT,
                                 .offset = 0,
                                 .range = bytes};
    if (vk->fn.vkCreateBufferView(vk->device, &ci, NULL, &b->view) != VK_SUCCESS) {
      b->view = VK_NULL_HANDLE;
      b->texel = false; /* do not try again; the kernels fall back */
      vkf_log(vk->base.env, VKF_LOG_DEBUG, "vkCreateBufferView failed: no texel reads");
      return false;
    }
    b->view_bytes = bytes;
  }
  if (off + t.bytes > b->view_bytes)
    return false;
  *view = b->view;
  *float_offset = off / 4;
  /* a dispatch that binds the view may read all of it, as far as the
   * validation layers can tell: the hazard tracking assumes so too */
  *range = (vkf_vk_range){b->address, b->address + b->view_bytes};
  return true;
}

void vkf_vk_memory_destroy(vkf_vk *vk) {
  vkf_vk_memory *m = &vk->mem;
  vkf_vk_block_free(vk, m->scratch);
  for (uint32_t i = 0; i < m->n_blocks; i++)
    vkf_vk_block_free(vk, m->blocks[i]);
  vkf_free(vk->base.env, m->blocks);
  memset(m, 0, sizeof(*m));
}
