/*
 * vkformer_vulkan.h: optional interop with a host application's Vulkan
 * objects. Includes <vulkan/vulkan.h>; applications that do not touch Vulkan
 * themselves need only vkformer.h.
 */
#ifndef VKFORMER_VULKAN_H
#define VKFORMER_VULKAN_H

#include "vkformer.h"
#include <vulkan/vulkan.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Pass a pointer to this struct as vkf_context_desc.vulkan_interop to make a
 * context run on the host's device. vkformer never destroys these objects.
 *
 * Requirements on the host's objects:
 * - the instance was created with apiVersion >= 1.2;
 * - the device was created with Vulkan 1.2's `bufferDeviceAddress` feature
 *   enabled (vkformer addresses tensors by device address, so a tensor is
 *   never limited by maxStorageBufferRange); say so in the flags below;
 * - `queue` belongs to `queue_family`, which supports compute.
 * The queue is externally synchronised: vkformer submits to it inside its
 * own calls only. If the host submits to the same queue from other threads,
 * give lock/unlock callbacks, which vkformer calls around every submit.
 */
typedef struct vkf_vulkan_interop {
  VkInstance instance;
  VkPhysicalDevice physical_device;
  VkDevice device;
  VkQueue queue;
  uint32_t queue_family;
  /* The host's loader entry point. NULL = vkformer loads libvulkan itself. */
  PFN_vkGetInstanceProcAddr get_instance_proc_addr;
  /* apiVersion the instance was created with (0 = assume 1.2). */
  uint32_t instance_api_version;
  /* Features the host enabled on `device`. buffer_device_address is
   * required; the 16-bit/8-bit ones let fp16/int8 kernels be used. */
  VkBool32 buffer_device_address;
  VkBool32 shader_float16;
  VkBool32 storage_buffer_16bit;
  VkBool32 shader_int8;
  VkBool32 storage_buffer_8bit;
  VkBool32 subgroup_size_control;
  void (*lock_queue)(void *user);
  void (*unlock_queue)(void *user);
  void *queue_lock_user;
} vkf_vulkan_interop;

/* The Vulkan objects a context runs on (its own or adopted ones). Fails with
 * VKF_ERROR_UNSUPPORTED on the CPU backend. */
VKF_API vkf_status vkf_vulkan_context_handles(const vkf_context *ctx, vkf_vulkan_interop *out);

/* Where a tensor lives: a VkBuffer, the byte offset of the tensor in it and
 * its size. The buffer is vkformer's; do not destroy it. The tensor's
 * contents are those after vkf_synchronize(). */
VKF_API vkf_status vkf_vulkan_tensor_buffer(const vkf_context *ctx, vkf_tensor tensor,
                                            VkBuffer *buffer, VkDeviceSize *offset,
                                            VkDeviceSize *size);

#ifdef __cplusplus
}
#endif

#endif /* VKFORMER_VULKAN_H */
