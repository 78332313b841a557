/* vkformer_vulkan.h: handing Vulkan objects to the host. */
#include "context.h"
#include "vk.h"

vkf_status vkf_vulkan_context_handles(const vkf_context *ctx, vkf_vulkan_interop *out) {
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!out)
    return vkf_fail((vkf_env *)&ctx->env, VKF_ERROR_NULL_POINTER,
                    "vkf_vulkan_context_handles: out is NULL");
  if (ctx->be->info.backend != VKF_BACKEND_VULKAN)
    return vkf_fail((vkf_env *)&ctx->env, VKF_ERROR_UNSUPPORTED,
                    "vkf_vulkan_context_handles: the context runs on the CPU backend");
  const vkf_vk *vk = (const vkf_vk *)ctx->be;
  *out = (vkf_vulkan_interop){
      .instance = vk->inst.instance,
      .physical_device = vk->pd,
      .device = vk->device,
      .queue = vk->queue,
      .queue_family = vk->queue_family,
      .get_instance_proc_addr = vk->inst.fn.GetInstanceProcAddr,
      .instance_api_version = vk->inst.api_version,
      .buffer_device_address = VK_TRUE,
      .shader_float16 = vk->caps.fp16,
      .storage_buffer_16bit = vk->caps.storage16,
      .shader_int8 = vk->caps.int8,
      .storage_buffer_8bit = vk->caps.storage8,
      .subgroup_size_control = vk->caps.subgroup_size_control,
      .lock_queue = vk->lock_queue,
      .unlock_queue = vk->unlock_queue,
      .queue_lock_user = vk->queue_lock_user,
  };
  return VKF_OK;
}

vkf_status vkf_vulkan_tensor_buffer(const vkf_context *cctx, vkf_tensor tensor, VkBuffer *buffer,
                                    VkDeviceSize *offset, VkDeviceSize *size) {
  vkf_context *ctx = (vkf_context *)cctx; /* only the error message changes */
  if (!ctx)
    return VKF_ERROR_NULL_POINTER;
  if (!buffer || !offset || !size)
    return vkf_fail(&ctx->env, VKF_ERROR_NULL_POINTER, "vkf_vulkan_tensor_buffer: NULL output");
  if (ctx->be->info.backend != VKF_BACKEND_VULKAN)
    return vkf_fail(&ctx->env, VKF_ERROR_UNSUPPORTED,
                    "vkf_vulkan_tensor_buffer: the context runs on the CPU backend");
  vkf_tensor_slot *s = vkf_ctx_tensor(ctx, tensor, "vkf_vulkan_tensor_buffer");
  if (!s)
    return ctx->env.error_status;
  *buffer = s->storage->buf->block->buffer;
  *offset = s->storage->buf->offset + s->offset;
  *size = s->bytes;
  return VKF_OK;
}
