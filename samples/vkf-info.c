/* vkf-info: the devices vkformer sees, their capabilities, and which one a
 * context would choose. */
#include <vkformer.h>

#include <stdio.h>
#include <string.h>

static const char *type_name(vkf_device_type t) {
  switch (t) {
  case VKF_DEVICE_TYPE_DISCRETE_GPU:
    return "discrete GPU";
  case VKF_DEVICE_TYPE_INTEGRATED_GPU:
    return "integrated GPU";
  case VKF_DEVICE_TYPE_VIRTUAL_GPU:
    return "virtual GPU";
  case VKF_DEVICE_TYPE_CPU_VULKAN:
    return "CPU (Vulkan driver)";
  case VKF_DEVICE_TYPE_CPU_BACKEND:
    return "CPU backend";
  default:
    return "other";
  }
}

static const char *vendor_name(vkf_vendor v) {
  static const char *names[] = {"other", "AMD", "Intel",    "NVIDIA",
                                "Mesa",  "ARM", "Qualcomm", "Apple"};
  return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "other";
}

static const char *yn(int v) {
  return v ? "yes" : "no";
}

static void log_fn(void *user, vkf_log_level level, const char *msg) {
  (void)user;
  if (level <= VKF_LOG_WARN || level == VKF_LOG_VALIDATION)
    fprintf(stderr, "vkformer: %s\n", msg);
}

int main(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
    printf("usage: vkf-info [device]\n"
           "Lists the devices vkformer can use and which one a context picks.\n"
           "device: as vkf_context_desc.device (\"cpu\", an index, or part of a name);\n"
           "the environment variable VKF_DEVICE overrides it.\n");
    return 0;
  }
  vkf_context_desc desc = {.log_fn = log_fn, .device = argc > 1 ? argv[1] : NULL};
  vkf_device_info devs[17];
  uint32_t n = 0;
  vkf_status st = vkf_enumerate_devices(&desc, devs, 17, &n);
  if (st != VKF_OK) {
    fprintf(stderr, "vkf_enumerate_devices: %s\n", vkf_status_name(st));
    return 1;
  }
  if (n > 17)
    n = 17;
  printf("vkformer %d.%d.%d: %u device(s)\n\n", VKF_VERSION_MAJOR, VKF_VERSION_MINOR,
         VKF_VERSION_PATCH, n);
  for (uint32_t i = 0; i < n; i++) {
    const vkf_device_info *d = &devs[i];
    printf("[%u] %s\n", i, d->name);
    printf("    type            %s, vendor %s (0x%04x), device 0x%04x\n", type_name(d->type),
           vendor_name(d->vendor), d->vendor_id, d->device_id);
    if (d->backend == VKF_BACKEND_CPU) {
      printf("    threads         %u\n    memory          %llu MiB (system)\n", d->cpu_threads,
             (unsigned long long)(d->device_memory_bytes >> 20));
      continue;
    }
    printf("    driver          %s %s\n", d->driver_name, d->driver_info);
    printf("    Vulkan          %u.%u.%u\n", d->api_version >> 22, (d->api_version >> 12) & 0x3ff,
           d->api_version & 0xfff);
    printf("    memory          %llu MiB device-local%s\n",
           (unsigned long long)(d->device_memory_bytes >> 20),
           d->uma ? " (unified with host)" : "");
    printf("    subgroup        %u (range %u-%u), arithmetic %s\n", d->subgroup_size,
           d->subgroup_size_min, d->subgroup_size_max, yn(d->subgroup_arithmetic));
    printf("    shared memory   %u KiB, workgroup up to %u invocations\n",
           d->shared_memory_bytes / 1024, d->max_workgroup_invocations);
    printf("    limits          storage range %llu MiB, allocation %llu MiB, buffer %llu MiB, "
           "%u allocations\n",
           (unsigned long long)(d->max_storage_buffer_range >> 20),
           (unsigned long long)(d->max_allocation_bytes >> 20),
           (unsigned long long)(d->max_buffer_bytes >> 20), d->max_allocation_count);
    printf("    fp16            arithmetic %s, storage %s\n", yn(d->fp16_arithmetic),
           yn(d->fp16_storage));
    printf("    bf16            %s\n", yn(d->bf16_arithmetic));
    printf("    int8            arithmetic %s, storage %s\n", yn(d->int8_arithmetic),
           yn(d->int8_storage));
    printf("    timestamps      %s (%.3g ns per tick)\n", yn(d->timestamps),
           (double)d->timestamp_period_ns);
    printf("    usable          %s%s%s\n", yn(d->usable), d->usable ? "" : ": ",
           d->usable ? "" : d->unusable_reason);
  }
  vkf_context *ctx = NULL;
  st = vkf_context_create(&desc, &ctx);
  if (st != VKF_OK) {
    printf("\nA context would fail: %s\n", vkf_status_name(st));
    return 1;
  }
  vkf_device_info chosen;
  vkf_context_device(ctx, &chosen);
  printf("\nA context%s%s%s uses: %s\n", desc.device ? " asked for \"" : "",
         desc.device ? desc.device : "", desc.device ? "\"" : "", chosen.name);
  vkf_context_destroy(ctx);
  return 0;
}
