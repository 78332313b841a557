/* Compute pipelines, created on first use, and the on-disk pipeline cache.
 *
 * Every kernel takes its tensors as device addresses in push constants, so
 * one pipeline layout (128 bytes of push constants, no descriptor sets)
 * serves them all. A pipeline is keyed by shader and specialization
 * constants (tile and workgroup sizes chosen per device). */
#include "vk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC "VKFPCACHE001"

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static uint64_t shaders_hash(void) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint32_t i = 0; i < VKF_SHADER_COUNT; i++)
    h = fnv1a(h, vkf_shaders[i].code, vkf_shaders[i].size);
  return h;
}

static bool mkdir_p(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    int r = mkdir(path, 0700);
    *p = '/';
    if (r != 0 && errno != EEXIST)
      return false;
  }
  return mkdir(path, 0700) == 0 || errno == EEXIST;
}

static void cache_path(vkf_vk *vk, const char *dir_opt) {
  char dir[900];
  const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
  if (dir_opt && *dir_opt)
    snprintf(dir, sizeof(dir), "%s", dir_opt);
  else if (xdg && *xdg == '/')
    snprintf(dir, sizeof(dir), "%s/vkformer", xdg);
  else if (home && *home)
    snprintf(dir, sizeof(dir), "%s/.cache/vkformer", home);
  else
    return;
  const VkPhysicalDeviceProperties *p = &vk->caps.props;
  char uuid[2 * VK_UUID_SIZE + 1];
  for (unsigned i = 0; i < VK_UUID_SIZE; i++)
    snprintf(uuid + 2 * i, 3, "%02x", p->pipelineCacheUUID[i]);
  snprintf(vk->cache_path, sizeof(vk->cache_path), "%s/pipelines-%04x-%04x-%08x-%s.bin", dir,
           p->vendorID, p->deviceID, p->driverVersion, uuid);
}

/* Our header: magic, shader-set hash, payload size, payload hash. */
typedef struct cache_header {
  char magic[12];
  uint32_t reserved;
  uint64_t shaders;
  uint64_t size;
  uint64_t hash;
} cache_header;

/* Reads the cache file; returns malloc'd payload or NULL (absent, stale or
 * corrupt, which is logged and ignored). */
static void *cache_load(vkf_vk *vk, size_t *size) {
  *size = 0;
  if (!vk->cache_path[0])
    return NULL;
  FILE *f = fopen(vk->cache_path, "rb");
  if (!f)
    return NULL;
  cache_header h;
  void *data = NULL;
  const char *why = NULL;
  if (fread(&h, sizeof(h), 1, f) != 1 || memcmp(h.magic, CACHE_MAGIC, 12) != 0)
    why = "bad header";
  else if (h.shaders != shaders_hash())
    why = "built for other shaders";
  else if (h.size > (256u << 20) || !(data = malloc(h.size ? h.size : 1)))
    why = "bad size";
  else if (fread(data, 1, h.size, f) != h.size ||
           fnv1a(0xcbf29ce484222325ull, data, h.size) != h.hash)
    why = "truncated or corrupt";
  else if (h.size < 16 + VK_UUID_SIZE)
    why = "too small";
  else {
    /* Vulkan's own header: length, version, vendor, device, UUID */
    const uint8_t *b = data;
    uint32_t len, ver, vendor, device;
    memcpy(&len, b, 4);
    memcpy(&ver, b + 4, 4);
    memcpy(&vendor, b + 8, 4);
    memcpy(&device, b + 12, 4);
    const VkPhysicalDeviceProperties *p = &vk->caps.props;
    if (ver != VK_PIPELINE_CACHE_HEADER_VERSION_ONE || vendor != p->vendorID ||
        device != p->deviceID || memcmp(b + 16, p->pipelineCacheUUID, VK_UUID_SIZE) != 0)
      why = "from another device or driver";
  }
  fclose(f);
  if (why) {
    vkf_log(vk->base.env, VKF_LOG_INFO, "ignoring pipeline cache %s: %s", vk->cache_path, why);
    free(data);
    return NULL;
  }
  *size = (size_t)h.size;
  vkf_log(vk->base.env, VKF_LOG_DEBUG, "loaded pipeline cache %s (%zu bytes)", vk->cache_path,
          *size);
  return data;
}

static void cache_save(vkf_vk *vk) {
  if (!vk->cache || !vk->cache_dirty || !vk->cache_path[0] || vk->lost)
    return;
  size_t size = 0;
  if (vk->fn.vkGetPipelineCacheData(vk->device, vk->cache, &size, NULL) != VK_SUCCESS || !size)
    return;
  void *data = malloc(size);
  if (!data)
    return;
  if (vk->fn.vkGetPipelineCacheData(vk->device, vk->cache, &size, data) != VK_SUCCESS) {
    free(data);
    return;
  }
  char dir[sizeof(vk->cache_path)], tmp[sizeof(vk->cache_path) + 32];
  snprintf(dir, sizeof(dir), "%s", vk->cache_path);
  char *slash = strrchr(dir, '/');
  if (slash)
    *slash = 0;
  /* a unique temporary name: contexts of one process (or several
   * processes) may save at the same moment */
  snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", vk->cache_path);
  cache_header h = {
      .shaders = shaders_hash(), .size = size, .hash = fnv1a(0xcbf29ce484222325ull, data, size)};
  memcpy(h.magic, CACHE_MAGIC, 12);
  bool ok = false;
  int fd = -1;
  if (mkdir_p(dir) && (fd = mkstemp(tmp)) >= 0) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    ok = write(fd, &h, sizeof(h)) == (ssize_t)sizeof(h) && write(fd, data, size) == (ssize_t)size &&
         fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, vk->cache_path) == 0;
    if (!ok)
      unlink(tmp);
  }
  free(data);
  if (!ok)
    vkf_log(vk->base.env, VKF_LOG_WARN, "could not write pipeline cache %s: %s", vk->cache_path,
            strerror(errno));
}

vkf_status vkf_vk_pipelines_init(vkf_vk *vk, const char *cache_dir) {
  VkPushConstantRange range = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = 128};
  VkPipelineLayoutCreateInfo lci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                    .pushConstantRangeCount = 1,
                                    .pPushConstantRanges = &range};
  vkf_status st =
      vkf_vk_result(vk, vk->fn.vkCreatePipelineLayout(vk->device, &lci, NULL, &vk->layout),
                    "vkCreatePipelineLayout");
  if (st != VKF_OK)
    return st;
  if (vk->caps.texel_reads) {
    VkDescriptorSetLayoutBinding b[VKF_VK_TEXEL_BINDINGS];
    for (uint32_t i = 0; i < VKF_VK_TEXEL_BINDINGS; i++)
      b[i] =
          (VkDescriptorSetLayoutBinding){.binding = i,
                                         .descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER,
                                         .descriptorCount = 1,
                                         .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo sci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR,
        .bindingCount = VKF_VK_TEXEL_BINDINGS,
        .pBindings = b};
    st = vkf_vk_result(
        vk, vk->fn.vkCreateDescriptorSetLayout(vk->device, &sci, NULL, &vk->set_layout_tex),
        "vkCreateDescriptorSetLayout");
    lci.setLayoutCount = 1;
    lci.pSetLayouts = &vk->set_layout_tex;
    if (st == VKF_OK)
      st = vkf_vk_result(vk, vk->fn.vkCreatePipelineLayout(vk->device, &lci, NULL, &vk->layout_tex),
                         "vkCreatePipelineLayout");
    if (st != VKF_OK)
      return st;
  }
  if (!(vk->flags & VKF_CONTEXT_NO_PIPELINE_CACHE))
    cache_path(vk, cache_dir);
  size_t size = 0;
  void *data = cache_load(vk, &size);
  VkPipelineCacheCreateInfo cci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                   .initialDataSize = size,
                                   .pInitialData = data};
  VkResult r = vk->fn.vkCreatePipelineCache(vk->device, &cci, NULL, &vk->cache);
  if (r != VK_SUCCESS && data) {
    cci.initialDataSize = 0;
    cci.pInitialData = NULL;
    r = vk->fn.vkCreatePipelineCache(vk->device, &cci, NULL, &vk->cache);
  }
  free(data);
  if (r != VK_SUCCESS)
    vk->cache = VK_NULL_HANDLE; /* run without one */
  return VKF_OK;
}

void vkf_vk_pipelines_destroy(vkf_vk *vk) {
  cache_save(vk);
  for (uint32_t i = 0; i < vk->n_pipelines; i++)
    vk->fn.vkDestroyPipeline(vk->device, vk->pipelines[i].pipeline, NULL);
  vkf_free(vk->base.env, vk->pipelines);
  vk->pipelines = NULL;
  vk->n_pipelines = vk->cap_pipelines = 0;
  for (uint32_t i = 0; i < VKF_SHADER_COUNT; i++)
    if (vk->modules[i])
      vk->fn.vkDestroyShaderModule(vk->device, vk->modules[i], NULL);
  if (vk->cache)
    vk->fn.vkDestroyPipelineCache(vk->device, vk->cache, NULL);
  if (vk->layout)
    vk->fn.vkDestroyPipelineLayout(vk->device, vk->layout, NULL);
  if (vk->layout_tex)
    vk->fn.vkDestroyPipelineLayout(vk->device, vk->layout_tex, NULL);
  if (vk->set_layout_tex)
    vk->fn.vkDestroyDescriptorSetLayout(vk->device, vk->set_layout_tex, NULL);
  vk->cache = VK_NULL_HANDLE;
  vk->layout = VK_NULL_HANDLE;
  vk->layout_tex = VK_NULL_HANDLE;
  vk->set_layout_tex = VK_NULL_HANDLE;
}

bool vkf_vk_shader_reads_texels(vkf_shader_id shader) {
  const char *n = vkf_shaders[shader].name;
  size_t len = strlen(n);
  return len > 4 && !strcmp(n + len - 4, "_tex");
}

vkf_status vkf_vk_pipeline_get(vkf_vk *vk, vkf_shader_id shader, uint32_t n_spec,
                               const uint32_t *spec, VkPipeline *out) {
  for (uint32_t i = 0; i < vk->n_pipelines; i++) {
    vkf_vk_pipeline *p = &vk->pipelines[i];
    if (p->shader == shader && p->n_spec == n_spec &&
        memcmp(p->spec, spec, n_spec * sizeof(uint32_t)) == 0) {
      *out = p->pipeline;
      return VKF_OK;
    }
  }
  vkf_env *env = vk->base.env;
  if (n_spec > VKF_VK_MAX_SPEC)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT, "too many specialization constants");
  bool tex = vkf_vk_shader_reads_texels(shader);
  if (tex && !vk->layout_tex)
    return vkf_fail(env, VKF_ERROR_UNSUPPORTED, "kernel %s needs texel reads, which %s lacks",
                    vkf_shaders[shader].name, vk->base.info.name);
  if (!vk->modules[shader]) {
    VkShaderModuleCreateInfo mci = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                    .codeSize = vkf_shaders[shader].size,
                                    .pCode = vkf_shaders[shader].code};
    vkf_status st =
        vkf_vk_result(vk, vk->fn.vkCreateShaderModule(vk->device, &mci, NULL, &vk->modules[shader]),
                      "vkCreateShaderModule");
    if (st != VKF_OK)
      return st;
  }
  VkSpecializationMapEntry entries[VKF_VK_MAX_SPEC];
  for (uint32_t i = 0; i < n_spec; i++)
    entries[i] = (VkSpecializationMapEntry){i, i * 4, 4};
  VkSpecializationInfo si = {n_spec, entries, n_spec * 4, spec};
  VkComputePipelineCreateInfo ci = {
      .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = vk->modules[shader],
                .pName = "main",
                .pSpecializationInfo = n_spec ? &si : NULL},
      .layout = tex ? vk->layout_tex : vk->layout,
  };
  if (vk->n_pipelines == vk->cap_pipelines) {
    uint32_t cap = vk->cap_pipelines ? vk->cap_pipelines * 2 : 32;
    vkf_vk_pipeline *np = vkf_realloc(env, vk->pipelines, cap * sizeof(*np));
    if (!np)
      return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "pipeline table");
    vk->pipelines = np;
    vk->cap_pipelines = cap;
  }
  VkPipeline pipe;
  VkResult r = vk->fn.vkCreateComputePipelines(vk->device, vk->cache, 1, &ci, NULL, &pipe);
  if (r != VK_SUCCESS) {
    vkf_status st = vkf_vk_result(vk, r, "vkCreateComputePipelines");
    char why[sizeof(env->error)];
    snprintf(why, sizeof(why), "%s", env->error);
    return vkf_fail(env, st, "creating pipeline %s: %s", vkf_shaders[shader].name, why);
  }
  vkf_vk_pipeline *p = &vk->pipelines[vk->n_pipelines++];
  p->shader = shader;
  p->n_spec = n_spec;
  memset(p->spec, 0, sizeof(p->spec));
  memcpy(p->spec, spec, n_spec * sizeof(uint32_t));
  p->pipeline = pipe;
  vk->cache_dirty = true;
  *out = pipe;
  return VKF_OK;
}
