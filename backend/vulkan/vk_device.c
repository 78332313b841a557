/* Loading Vulkan, instances, device description and choice, the backend. */
#include "vk.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* The loader. Loading a shared library is process-wide by nature; this is
 * the one piece of global state, guarded by a mutex, loaded once. */
/* ------------------------------------------------------------------------ */
static pthread_mutex_t g_volk_mu = PTHREAD_MUTEX_INITIALIZER;
static bool g_volk_ready;

static vkf_status load_loader(vkf_env *env, PFN_vkGetInstanceProcAddr host_gipa) {
  vkf_status st = VKF_OK;
  pthread_mutex_lock(&g_volk_mu);
  if (!g_volk_ready) {
    const char *path = getenv("VKF_VULKAN_LIBRARY");
    if (host_gipa) {
      volkInitializeCustom(host_gipa);
      g_volk_ready = true;
    } else if (path && *path) {
      void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
      PFN_vkGetInstanceProcAddr gipa =
          lib ? (PFN_vkGetInstanceProcAddr)(uintptr_t)dlsym(lib, "vkGetInstanceProcAddr") : NULL;
      if (!gipa) {
        const char *err = dlerror();
        st = vkf_fail(env, VKF_ERROR_UNSUPPORTED,
                      "cannot load the Vulkan loader VKF_VULKAN_LIBRARY=%s (%s)", path,
                      err ? err : "no vkGetInstanceProcAddr");
        if (lib)
          dlclose(lib);
      } else {
        volkInitializeCustom(gipa);
        g_volk_ready = true;
      }
    } else if (volkInitialize() == VK_SUCCESS) {
      g_volk_ready = true;
    } else {
      st = vkf_fail(env, VKF_ERROR_UNSUPPORTED,
                    "no Vulkan loader found (libvulkan.so.1 could not be loaded)");
    }
  }
  pthread_mutex_unlock(&g_volk_mu);
  return st;
}

const char *vkf_vk_result_name(VkResult r) {
  switch (r) {
#define R_(x)                                                                                      \
  case x:                                                                                          \
    return #x;
    R_(VK_SUCCESS)
    R_(VK_NOT_READY)
    R_(VK_TIMEOUT)
    R_(VK_INCOMPLETE)
    R_(VK_ERROR_OUT_OF_HOST_MEMORY)
    R_(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    R_(VK_ERROR_INITIALIZATION_FAILED)
    R_(VK_ERROR_DEVICE_LOST)
    R_(VK_ERROR_MEMORY_MAP_FAILED)
    R_(VK_ERROR_LAYER_NOT_PRESENT)
    R_(VK_ERROR_EXTENSION_NOT_PRESENT)
    R_(VK_ERROR_FEATURE_NOT_PRESENT)
    R_(VK_ERROR_INCOMPATIBLE_DRIVER)
    R_(VK_ERROR_TOO_MANY_OBJECTS)
    R_(VK_ERROR_FORMAT_NOT_SUPPORTED)
    R_(VK_ERROR_FRAGMENTED_POOL)
    R_(VK_ERROR_OUT_OF_POOL_MEMORY)
    R_(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    R_(VK_ERROR_FRAGMENTATION)
    R_(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS)
    R_(VK_PIPELINE_COMPILE_REQUIRED)
#undef R_
  default:
    return "VK_ERROR_UNKNOWN";
  }
}

vkf_status vkf_vk_result(vkf_vk *vk, VkResult r, const char *what) {
  vkf_env *env = vk->base.env;
  switch (r) {
  case VK_SUCCESS:
    return VKF_OK;
  case VK_ERROR_OUT_OF_DEVICE_MEMORY:
    return vkf_fail(env, VKF_ERROR_OUT_OF_DEVICE_MEMORY, "%s: out of device memory", what);
  case VK_ERROR_OUT_OF_HOST_MEMORY:
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "%s: the driver ran out of host memory",
                    what);
  case VK_ERROR_DEVICE_LOST:
    vk->lost = true;
    return vkf_fail(env, VKF_ERROR_DEVICE_LOST,
                    "%s: the device was lost (driver reset or crash); the context can only be "
                    "destroyed now",
                    what);
  default:
    return vkf_fail(env, VKF_ERROR_VULKAN, "%s failed: %s (%d)", what, vkf_vk_result_name(r),
                    (int)r);
  }
}

/* ------------------------------------------------------------------------ */
/* Instances                                                                */
/* ------------------------------------------------------------------------ */
static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                               VkDebugUtilsMessageTypeFlagsEXT types,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data,
                                               void *user) {
  vkf_vk_instance *inst = user;
  if (!(severity & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                    VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)))
    return VK_FALSE;
  const char *msg = data && data->pMessage ? data->pMessage : "?";
  if (types & (VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
               VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT)) {
    inst->validation_messages++;
    vkf_log(inst->env, VKF_LOG_VALIDATION, "%s", msg);
  } else {
    /* general messages: the loader's diagnostics ("Found no drivers!")
     * while vkCreateInstance fails, which vkformer reports itself */
    vkf_log(inst->env, VKF_LOG_DEBUG, "Vulkan loader/layer: %s", msg);
  }
  return VK_FALSE;
}

static void load_instance_fns(vkf_vk_instance *inst, PFN_vkGetInstanceProcAddr gipa) {
  VkInstance i = inst->instance;
  vkf_vk_instance_fns *f = &inst->fn;
  f->GetInstanceProcAddr = gipa;
#define L_(name) f->name = (PFN_vk##name)gipa(i, "vk" #name)
  L_(DestroyInstance);
  L_(EnumeratePhysicalDevices);
  L_(GetPhysicalDeviceProperties);
  L_(GetPhysicalDeviceProperties2);
  L_(GetPhysicalDeviceFeatures2);
  L_(GetPhysicalDeviceMemoryProperties);
  L_(GetPhysicalDeviceFormatProperties);
  L_(GetPhysicalDeviceQueueFamilyProperties);
  L_(EnumerateDeviceExtensionProperties);
  L_(CreateDevice);
  L_(GetDeviceProcAddr);
  L_(CreateDebugUtilsMessengerEXT);
  L_(DestroyDebugUtilsMessengerEXT);
#undef L_
}

static bool has_layer(const char *name) {
  uint32_t n = 0;
  if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
    return false;
  VkLayerProperties *props = calloc(n, sizeof(*props));
  bool found = false;
  if (props && vkEnumerateInstanceLayerProperties(&n, props) == VK_SUCCESS)
    for (uint32_t i = 0; i < n && !found; i++)
      found = strcmp(props[i].layerName, name) == 0;
  free(props);
  return found;
}

static bool has_instance_ext(const char *layer, const char *name) {
  uint32_t n = 0;
  if (vkEnumerateInstanceExtensionProperties(layer, &n, NULL) != VK_SUCCESS || n == 0)
    return false;
  VkExtensionProperties *props = calloc(n, sizeof(*props));
  bool found = false;
  if (props && vkEnumerateInstanceExtensionProperties(layer, &n, props) == VK_SUCCESS)
    for (uint32_t i = 0; i < n && !found; i++)
      found = strcmp(props[i].extensionName, name) == 0;
  free(props);
  return found;
}

vkf_status vkf_vk_instance_create(vkf_env *env, uint32_t flags, vkf_vk_instance *inst) {
  memset(inst, 0, sizeof(*inst));
  inst->env = env;
  vkf_status st = load_loader(env, NULL);
  if (st != VKF_OK)
    return st;
  uint32_t loader_version = volkGetInstanceVersion();
  if (loader_version < VK_API_VERSION_1_2)
    return vkf_fail(env, VKF_ERROR_UNSUPPORTED,
                    "the Vulkan loader supports version %u.%u; vkformer needs 1.2",
                    VK_API_VERSION_MAJOR(loader_version), VK_API_VERSION_MINOR(loader_version));
  inst->api_version =
      loader_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;

  const char *layers[1];
  uint32_t n_layers = 0;
  const char *exts[4];
  uint32_t n_exts = 0;
  bool validation = (flags & VKF_CONTEXT_VALIDATION) != 0;
  bool debug_utils = false, features_ext = false;
  if (validation) {
    if (has_layer("VK_LAYER_KHRONOS_validation")) {
      layers[n_layers++] = "VK_LAYER_KHRONOS_validation";
      features_ext = has_instance_ext("VK_LAYER_KHRONOS_validation",
                                      VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
      if (features_ext)
        exts[n_exts++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
    } else {
      vkf_log(env, VKF_LOG_VALIDATION,
              "validation was requested but VK_LAYER_KHRONOS_validation is not installed "
              "(Debian: vulkan-validationlayers)");
    }
    debug_utils = has_instance_ext(NULL, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) ||
                  (n_layers && has_instance_ext(layers[0], VK_EXT_DEBUG_UTILS_EXTENSION_NAME));
    if (debug_utils)
      exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
  }
  bool portability = has_instance_ext(NULL, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
  if (portability)
    exts[n_exts++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;

  VkApplicationInfo app = {
      .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
      .pEngineName = "vkformer",
      .engineVersion =
          VK_MAKE_API_VERSION(0, VKF_VERSION_MAJOR, VKF_VERSION_MINOR, VKF_VERSION_PATCH),
      .apiVersion = inst->api_version,
  };
  VkValidationFeatureEnableEXT enables[] = {
      VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
  VkValidationFeaturesEXT vfeat = {
      .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
      .enabledValidationFeatureCount = 1,
      .pEnabledValidationFeatures = enables,
  };
  VkDebugUtilsMessengerCreateInfoEXT mci = {
      .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
      .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                         VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
      .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
      .pfnUserCallback = debug_cb,
      .pUserData = inst,
  };
  if (features_ext)
    mci.pNext = &vfeat;
  VkInstanceCreateInfo ci = {
      .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
      .pNext = debug_utils ? (const void *)&mci : (features_ext ? (const void *)&vfeat : NULL),
      .flags = portability ? VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR : 0,
      .pApplicationInfo = &app,
      .enabledLayerCount = n_layers,
      .ppEnabledLayerNames = layers,
      .enabledExtensionCount = n_exts,
      .ppEnabledExtensionNames = exts,
  };
  VkResult r = vkCreateInstance(&ci, NULL, &inst->instance);
  if (r != VK_SUCCESS)
    return vkf_fail(
        env, r == VK_ERROR_INCOMPATIBLE_DRIVER ? VKF_ERROR_UNSUPPORTED : VKF_ERROR_VULKAN,
        "vkCreateInstance failed: %s (no usable Vulkan driver installed?)", vkf_vk_result_name(r));
  inst->owned = true;
  load_instance_fns(inst, vkGetInstanceProcAddr);
  if (debug_utils && inst->fn.CreateDebugUtilsMessengerEXT) {
    mci.pNext = NULL;
    inst->fn.CreateDebugUtilsMessengerEXT(inst->instance, &mci, NULL, &inst->messenger);
  }
  return VKF_OK;
}

vkf_status vkf_vk_instance_adopt(vkf_env *env, const vkf_vulkan_interop *io,
                                 vkf_vk_instance *inst) {
  memset(inst, 0, sizeof(*inst));
  inst->env = env;
  vkf_status st = load_loader(env, io->get_instance_proc_addr);
  if (st != VKF_OK)
    return st;
  inst->instance = io->instance;
  inst->owned = false;
  inst->api_version = io->instance_api_version ? io->instance_api_version : VK_API_VERSION_1_2;
  load_instance_fns(inst, io->get_instance_proc_addr ? io->get_instance_proc_addr
                                                     : vkGetInstanceProcAddr);
  if (!inst->fn.EnumeratePhysicalDevices || !inst->fn.GetPhysicalDeviceProperties2)
    return vkf_fail(env, VKF_ERROR_INVALID_ARGUMENT,
                    "vulkan_interop: the host instance does not give Vulkan 1.1+ entry points");
  return VKF_OK;
}

void vkf_vk_instance_destroy(vkf_vk_instance *inst) {
  if (!inst->instance)
    return;
  if (inst->messenger && inst->fn.DestroyDebugUtilsMessengerEXT)
    inst->fn.DestroyDebugUtilsMessengerEXT(inst->instance, inst->messenger, NULL);
  if (inst->owned && inst->fn.DestroyInstance)
    inst->fn.DestroyInstance(inst->instance, NULL);
  memset(inst, 0, sizeof(*inst));
}

/* ------------------------------------------------------------------------ */
/* Describing a physical device                                             */
/* ------------------------------------------------------------------------ */
static vkf_vendor vendor_of(uint32_t id) {
  switch (id) {
  case 0x1002:
    return VKF_VENDOR_AMD;
  case 0x8086:
    return VKF_VENDOR_INTEL;
  case 0x10DE:
    return VKF_VENDOR_NVIDIA;
  case 0x10005: /* VK_VENDOR_ID_MESA */
    return VKF_VENDOR_MESA;
  case 0x13B5:
    return VKF_VENDOR_ARM;
  case 0x5143:
    return VKF_VENDOR_QUALCOMM;
  case 0x106B:
    return VKF_VENDOR_APPLE;
  default:
    return VKF_VENDOR_OTHER;
  }
}

static vkf_device_type type_of(VkPhysicalDeviceType t) {
  switch (t) {
  case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
    return VKF_DEVICE_TYPE_DISCRETE_GPU;
  case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
    return VKF_DEVICE_TYPE_INTEGRATED_GPU;
  case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
    return VKF_DEVICE_TYPE_VIRTUAL_GPU;
  case VK_PHYSICAL_DEVICE_TYPE_CPU:
    return VKF_DEVICE_TYPE_CPU_VULKAN;
  default:
    return VKF_DEVICE_TYPE_OTHER;
  }
}

static bool has_device_ext(vkf_vk_instance *inst, VkPhysicalDevice pd, const char *name) {
  uint32_t n = 0;
  if (inst->fn.EnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS || !n)
    return false;
  VkExtensionProperties *props = calloc(n, sizeof(*props));
  bool found = false;
  if (props && inst->fn.EnumerateDeviceExtensionProperties(pd, NULL, &n, props) == VK_SUCCESS)
    for (uint32_t i = 0; i < n && !found; i++)
      found = strcmp(props[i].extensionName, name) == 0;
  free(props);
  return found;
}

void vkf_vk_describe(vkf_vk_instance *inst, VkPhysicalDevice pd, vkf_device_info *d,
                     vkf_vk_caps *caps) {
  memset(d, 0, sizeof(*d));
  memset(caps, 0, sizeof(*caps));
  const vkf_vk_instance_fns *f = &inst->fn;
  VkPhysicalDeviceProperties props;
  f->GetPhysicalDeviceProperties(pd, &props);
  caps->props = props;
  uint32_t api = props.apiVersion;
  if (api > inst->api_version)
    api = inst->api_version; /* what we can use through this instance */

  VkPhysicalDeviceDriverProperties drv = {.sType =
                                              VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  VkPhysicalDeviceSubgroupProperties sg = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES, .pNext = &drv};
  VkPhysicalDeviceSubgroupSizeControlPropertiesEXT sgc = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT,
      .pNext = &sg};
  VkPhysicalDeviceMaintenance3Properties m3 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES, .pNext = &sgc};
  VkPhysicalDeviceMaintenance4Properties m4 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES, .pNext = &m3};
  bool ext_sgc = has_device_ext(inst, pd, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
  bool have_m4 =
      api >= VK_API_VERSION_1_3 || has_device_ext(inst, pd, VK_KHR_MAINTENANCE_4_EXTENSION_NAME);
  bool have_sgc = api >= VK_API_VERSION_1_3 || ext_sgc;
  VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  /* Chain only what the device knows. */
  sgc.pNext = &sg;
  m3.pNext = have_sgc ? (void *)&sgc : (void *)&sg;
  m4.pNext = &m3;
  p2.pNext = have_m4 ? (void *)&m4 : (void *)&m3;
  if (api >= VK_API_VERSION_1_1 && f->GetPhysicalDeviceProperties2)
    f->GetPhysicalDeviceProperties2(pd, &p2);

  VkPhysicalDeviceVulkan12Features f12 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceVulkan11Features f11 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES, .pNext = &f12};
  VkPhysicalDeviceSubgroupSizeControlFeaturesEXT fsgc = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT, .pNext = &f11};
  VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                  .pNext = have_sgc ? (void *)&fsgc : (void *)&f11};
  if (api >= VK_API_VERSION_1_2 && f->GetPhysicalDeviceFeatures2)
    f->GetPhysicalDeviceFeatures2(pd, &f2);

  snprintf(d->name, sizeof(d->name), "%s", props.deviceName);
  d->backend = VKF_BACKEND_VULKAN;
  d->vendor_id = props.vendorID;
  d->device_id = props.deviceID;
  d->vendor = vendor_of(props.vendorID);
  d->type = type_of(props.deviceType);
  if (d->type == VKF_DEVICE_TYPE_CPU_VULKAN && d->vendor == VKF_VENDOR_OTHER &&
      vkf_contains_nocase(props.deviceName, "llvmpipe"))
    d->vendor = VKF_VENDOR_MESA;
  snprintf(d->driver_name, sizeof(d->driver_name), "%.63s", drv.driverName);
  snprintf(d->driver_info, sizeof(d->driver_info), "%.127s", drv.driverInfo);
  d->driver_version = props.driverVersion;
  d->api_version = props.apiVersion;

  f->GetPhysicalDeviceMemoryProperties(pd, &caps->mem);
  bool host_visible_local = false;
  for (uint32_t i = 0; i < caps->mem.memoryTypeCount; i++) {
    VkMemoryPropertyFlags fl = caps->mem.memoryTypes[i].propertyFlags;
    uint64_t heap = caps->mem.memoryHeaps[caps->mem.memoryTypes[i].heapIndex].size;
    if ((fl & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && heap > d->device_memory_bytes)
      d->device_memory_bytes = heap;
    if ((fl & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && heap > d->host_memory_bytes)
      d->host_memory_bytes = heap;
    if ((fl & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && (fl & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) &&
        heap >= d->device_memory_bytes)
      host_visible_local = true;
  }
  d->uma = host_visible_local &&
           (d->type == VKF_DEVICE_TYPE_INTEGRATED_GPU || d->type == VKF_DEVICE_TYPE_CPU_VULKAN);

  d->subgroup_size = sg.subgroupSize;
  caps->min_subgroup = d->subgroup_size_min =
      have_sgc && sgc.minSubgroupSize ? sgc.minSubgroupSize : sg.subgroupSize;
  caps->max_subgroup = d->subgroup_size_max =
      have_sgc && sgc.maxSubgroupSize ? sgc.maxSubgroupSize : sg.subgroupSize;
  d->subgroup_arithmetic = (sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                           (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
  d->shared_memory_bytes = props.limits.maxComputeSharedMemorySize;
  d->max_workgroup_invocations = props.limits.maxComputeWorkGroupInvocations;
  for (int i = 0; i < 3; i++)
    d->max_workgroup_count[i] = props.limits.maxComputeWorkGroupCount[i];
  d->max_storage_buffer_range = props.limits.maxStorageBufferRange;
  d->max_allocation_count = props.limits.maxMemoryAllocationCount;
  caps->max_alloc = d->max_allocation_bytes =
      m3.maxMemoryAllocationSize ? m3.maxMemoryAllocationSize : (1ull << 30);
  caps->max_buffer = d->max_buffer_bytes =
      have_m4 && m4.maxBufferSize ? m4.maxBufferSize : d->max_allocation_bytes;
  caps->bda = f12.bufferDeviceAddress;
  caps->fp16 = f12.shaderFloat16;
  caps->int64 = f2.features.shaderInt64;
  caps->int8 = f12.shaderInt8;
  caps->storage16 = f11.storageBuffer16BitAccess;
  caps->storage8 = f12.storageBuffer8BitAccess;
  d->fp16_arithmetic = caps->fp16;
  d->int8_arithmetic = caps->int8;
  d->fp16_storage = caps->storage16;
  d->int8_storage = caps->storage8;
  d->bf16_arithmetic = 0; /* VK_KHR_shader_bfloat16 is newer than the headers we build with */
  caps->subgroup_size_control = have_sgc && fsgc.subgroupSizeControl;
  caps->compute_full_subgroups = have_sgc && fsgc.computeFullSubgroups;
  caps->ext_subgroup_size_control = caps->subgroup_size_control && api < VK_API_VERSION_1_3;
  caps->ext_memory_budget = has_device_ext(inst, pd, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
  /* texel reads: CPU devices with push descriptors and RGBA32F uniform
   * texel buffers (see vk.h) */
  VkFormatProperties fp = {0};
  if (f->GetPhysicalDeviceFormatProperties)
    f->GetPhysicalDeviceFormatProperties(pd, VK_FORMAT_R32G32B32A32_SFLOAT, &fp);
  const char *tr = getenv("VKF_VK_TEXEL_READS");
  caps->max_texel_elements = props.limits.maxTexelBufferElements;
  caps->texel_reads = d->type == VKF_DEVICE_TYPE_CPU_VULKAN && !(tr && !strcmp(tr, "0")) &&
                      (fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT) &&
                      props.limits.minTexelBufferOffsetAlignment <= 16 &&
                      caps->max_texel_elements >= (1u << 20) &&
                      has_device_ext(inst, pd, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);

  uint32_t nq = 0;
  f->GetPhysicalDeviceQueueFamilyProperties(pd, &nq, NULL);
  VkQueueFamilyProperties qf[32];
  if (nq > 32)
    nq = 32;
  f->GetPhysicalDeviceQueueFamilyProperties(pd, &nq, qf);
  caps->queue_family = UINT32_MAX;
  for (uint32_t i = 0; i < nq; i++) {
    if (!(qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || !qf[i].queueCount)
      continue;
    /* prefer a family with timestamps; the first such otherwise the first */
    if (caps->queue_family == UINT32_MAX || (qf[i].timestampValidBits && !caps->timestamp_bits)) {
      caps->queue_family = i;
      caps->timestamp_bits = qf[i].timestampValidBits;
    }
  }
  d->timestamps = caps->timestamp_bits > 0 && props.limits.timestampComputeAndGraphics;
  d->timestamp_period_ns = props.limits.timestampPeriod;

  d->usable = 1;
  if (props.apiVersion < VK_API_VERSION_1_2) {
    d->usable = 0;
    snprintf(d->unusable_reason, sizeof(d->unusable_reason), "Vulkan %u.%u device; 1.2 needed",
             VK_API_VERSION_MAJOR(props.apiVersion), VK_API_VERSION_MINOR(props.apiVersion));
  } else if (!caps->bda) {
    d->usable = 0;
    snprintf(d->unusable_reason, sizeof(d->unusable_reason), "no bufferDeviceAddress feature");
  } else if (caps->queue_family == UINT32_MAX) {
    d->usable = 0;
    snprintf(d->unusable_reason, sizeof(d->unusable_reason), "no compute queue");
  }
}

vkf_status vkf_vk_enumerate(vkf_env *env, const vkf_vk_options *opt, vkf_device_info *infos,
                            uint32_t capacity, uint32_t *count) {
  *count = 0;
  vkf_vk_instance inst;
  vkf_status st = vkf_vk_instance_create(env, opt->flags, &inst);
  if (st != VKF_OK)
    return st;
  uint32_t n = 0;
  VkResult r = inst.fn.EnumeratePhysicalDevices(inst.instance, &n, NULL);
  VkPhysicalDevice pds[16];
  if (n > 16)
    n = 16;
  if (r == VK_SUCCESS || r == VK_INCOMPLETE)
    r = inst.fn.EnumeratePhysicalDevices(inst.instance, &n, pds);
  if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
    vkf_vk_instance_destroy(&inst);
    return vkf_fail(env, VKF_ERROR_UNSUPPORTED, "vkEnumeratePhysicalDevices failed: %s",
                    vkf_vk_result_name(r));
  }
  for (uint32_t i = 0; i < n && i < capacity; i++) {
    vkf_vk_caps caps;
    vkf_vk_describe(&inst, pds[i], &infos[i], &caps);
  }
  vkf_vk_instance_destroy(&inst);
  if (n == 0)
    return vkf_fail(env, VKF_ERROR_UNSUPPORTED,
                    "the Vulkan loader found no device (no driver "
                    "installed, or VK_DRIVER_FILES points nowhere)");
  *count = n;
  return VKF_OK;
}

/* ------------------------------------------------------------------------ */
/* The backend                                                              */
/* ------------------------------------------------------------------------ */
static vkf_status create_device(vkf_vk *vk) {
  vkf_vk_caps *c = &vk->caps;
  float prio = 1.0f;
  VkDeviceQueueCreateInfo qci = {
      .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
      .queueFamilyIndex = c->queue_family,
      .queueCount = 1,
      .pQueuePriorities = &prio,
  };
  VkPhysicalDeviceVulkan12Features f12 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
      .bufferDeviceAddress = VK_TRUE,
      .shaderFloat16 = c->fp16,
      .shaderInt8 = c->int8,
      .storageBuffer8BitAccess = c->storage8,
  };
  VkPhysicalDeviceVulkan11Features f11 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
      .pNext = &f12,
      .storageBuffer16BitAccess = c->storage16,
  };
  VkPhysicalDeviceSubgroupSizeControlFeaturesEXT fsgc = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT,
      .pNext = &f11,
      .subgroupSizeControl = c->subgroup_size_control,
      .computeFullSubgroups = c->compute_full_subgroups,
  };
  VkPhysicalDeviceFeatures2 f2 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
      .pNext = c->subgroup_size_control ? (void *)&fsgc : (void *)&f11,
      .features = {.shaderInt64 = c->int64},
  };
  const char *exts[3];
  uint32_t n_exts = 0;
  if (c->texel_reads)
    exts[n_exts++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
  if (c->ext_subgroup_size_control)
    exts[n_exts++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
  if (c->ext_memory_budget)
    exts[n_exts++] = VK_EXT_MEMORY_BUDGET_EXTENSION_NAME;
  VkDeviceCreateInfo dci = {
      .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
      .pNext = &f2,
      .queueCreateInfoCount = 1,
      .pQueueCreateInfos = &qci,
      .enabledExtensionCount = n_exts,
      .ppEnabledExtensionNames = exts,
  };
  VkResult r = vk->inst.fn.CreateDevice(vk->pd, &dci, NULL, &vk->device);
  if (r != VK_SUCCESS)
    return vkf_vk_result(vk, r, "vkCreateDevice");
  vk->owns_device = true;
  vk->queue_family = c->queue_family;
  return VKF_OK;
}

static void load_device_table(vkf_vk *vk) {
  /* volkLoadDeviceTable resolves through volk's global vkGetDeviceProcAddr,
   * which volkLoadInstanceOnly sets: do both under the loader mutex. */
  pthread_mutex_lock(&g_volk_mu);
  volkLoadInstanceOnly(vk->inst.instance);
  volkLoadDeviceTable(&vk->fn, vk->device);
  pthread_mutex_unlock(&g_volk_mu);
}

static void vk_destroy(vkf_backend *be) {
  vkf_vk *vk = (vkf_vk *)be;
  if (vk->device) {
    if (!vk->lost)
      vk->fn.vkDeviceWaitIdle(vk->device);
    vkf_vk_exec_destroy(vk);
    vkf_vk_pipelines_destroy(vk);
    vkf_vk_memory_destroy(vk);
    if (vk->owns_device)
      vk->fn.vkDestroyDevice(vk->device, NULL);
  }
  vkf_vk_instance_destroy(&vk->inst);
  vkf_free(be->env, vk);
}

static vkf_status vk_set_threads(vkf_backend *be, uint32_t threads) {
  (void)be;
  (void)threads;
  return VKF_OK;
}

static void vk_memory_stats(const vkf_backend *be, vkf_memory_stats *out) {
  const vkf_vk *vk = (const vkf_vk *)be;
  out->device_bytes_allocated = vk->mem.allocated;
  out->device_bytes_used = vk->mem.used;
  out->device_bytes_peak = vk->mem.peak;
  for (uint32_t i = 0; i < vk->mem.n_blocks; i++)
    out->device_blocks += !vk->mem.blocks[i]->staging;
}

static const vkf_backend_vtbl vk_vtbl = {
    .destroy = vk_destroy,
    .buffer_create = vkf_vk_buffer_create,
    .buffer_destroy = vkf_vk_buffer_destroy,
    .write = vkf_vk_write,
    .read = vkf_vk_read,
    .copy = vkf_vk_copy,
    .run = vkf_vk_run,
    .synchronize = vkf_vk_synchronize,
    .set_threads = vk_set_threads,
    .memory_stats = vk_memory_stats,
    .capture_begin = vkf_vk_capture_begin,
    .capture_end = vkf_vk_capture_end,
    .replay = vkf_vk_replay,
    .program_destroy = vkf_vk_program_destroy,
};

static vkf_status adopt_device(vkf_vk *vk, const vkf_vulkan_interop *io) {
  vkf_env *env = vk->base.env;
  if (!io->instance || !io->physical_device || !io->device || !io->queue)
    return vkf_fail(env, VKF_ERROR_NULL_POINTER,
                    "vulkan_interop: instance, physical_device, device and queue are required");
  if (!io->buffer_device_address)
    return vkf_fail(env, VKF_ERROR_UNSUPPORTED,
                    "vulkan_interop: the host device must enable bufferDeviceAddress (Vulkan "
                    "1.2) and say so in buffer_device_address");
  vkf_status st = vkf_vk_instance_adopt(env, io, &vk->inst);
  if (st != VKF_OK)
    return st;
  vk->pd = io->physical_device;
  vkf_vk_describe(&vk->inst, vk->pd, &vk->base.info, &vk->caps);
  if (vk->base.info.api_version < VK_API_VERSION_1_2)
    return vkf_fail(env, VKF_ERROR_UNSUPPORTED, "vulkan_interop: %s",
                    vk->base.info.unusable_reason);
  /* What the host enabled is what we may use. */
  vk->caps.fp16 = vk->caps.fp16 && io->shader_float16;
  vk->caps.storage16 = vk->caps.storage16 && io->storage_buffer_16bit;
  vk->caps.int8 = vk->caps.int8 && io->shader_int8;
  vk->caps.storage8 = vk->caps.storage8 && io->storage_buffer_8bit;
  vk->caps.int64 = false;       /* the interop struct does not say whether the host enabled it */
  vk->caps.texel_reads = false; /* nor whether it enabled push descriptors */
  vk->base.info.fp16_arithmetic = vk->caps.fp16;
  vk->base.info.fp16_storage = vk->caps.storage16;
  vk->base.info.int8_arithmetic = vk->caps.int8;
  vk->base.info.int8_storage = vk->caps.storage8;
  vk->caps.subgroup_size_control = vk->caps.subgroup_size_control && io->subgroup_size_control;
  vk->device = io->device;
  vk->owns_device = false;
  vk->queue = io->queue;
  vk->queue_family = io->queue_family;
  vk->lock_queue = io->lock_queue;
  vk->unlock_queue = io->unlock_queue;
  vk->queue_lock_user = io->queue_lock_user;
  return VKF_OK;
}

vkf_status vkf_vk_backend_create(vkf_env *env, const vkf_vk_options *opt, uint32_t index,
                                 vkf_backend **out) {
  *out = NULL;
  vkf_vk *vk = vkf_calloc(env, 1, sizeof(*vk));
  if (!vk)
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "Vulkan backend");
  vk->base.vt = &vk_vtbl;
  vk->base.env = env;
  vk->flags = opt->flags;
  vkf_status st;
  if (opt->interop) {
    st = adopt_device(vk, opt->interop);
  } else {
    st = vkf_vk_instance_create(env, opt->flags, &vk->inst);
    if (st == VKF_OK) {
      uint32_t n = 0;
      VkPhysicalDevice pds[16];
      VkResult r = vk->inst.fn.EnumeratePhysicalDevices(vk->inst.instance, &n, NULL);
      if (n > 16)
        n = 16;
      if (r == VK_SUCCESS || r == VK_INCOMPLETE)
        r = vk->inst.fn.EnumeratePhysicalDevices(vk->inst.instance, &n, pds);
      if ((r != VK_SUCCESS && r != VK_INCOMPLETE) || index >= n)
        st =
            vkf_fail(env, VKF_ERROR_NO_DEVICE, "Vulkan device %u not found (%u present)", index, n);
      else {
        vk->pd = pds[index];
        vkf_vk_describe(&vk->inst, vk->pd, &vk->base.info, &vk->caps);
        if (!vk->base.info.usable)
          st = vkf_fail(env, VKF_ERROR_UNSUPPORTED, "%s: %s", vk->base.info.name,
                        vk->base.info.unusable_reason);
        else
          st = create_device(vk);
      }
    }
  }
  if (st == VKF_OK) {
    load_device_table(vk);
    if (vk->owns_device)
      vk->fn.vkGetDeviceQueue(vk->device, vk->queue_family, 0, &vk->queue);
    vk->base.profiling = (opt->flags & VKF_CONTEXT_PROFILE) && vk->base.info.timestamps;
    if ((opt->flags & VKF_CONTEXT_PROFILE) && !vk->base.info.timestamps)
      vkf_log(env, VKF_LOG_WARN, "%s has no compute timestamps: profiling is off",
              vk->base.info.name);
    vk->mem.limit = opt->memory_limit;
    st = vkf_vk_memory_init(vk);
    if (st == VKF_OK)
      st = vkf_vk_pipelines_init(vk, opt->pipeline_cache_dir);
    if (st == VKF_OK)
      st = vkf_vk_exec_init(vk);
  }
  if (st != VKF_OK) {
    vk_destroy(&vk->base);
    return st;
  }
  *out = &vk->base;
  return VKF_OK;
}
