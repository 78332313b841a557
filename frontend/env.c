/* Status names, logging, host allocation: the pieces every file uses. */
#include "backend.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *vkf_status_name(vkf_status status) {
  switch (status) {
#define VKF_STATUS_NAME_(name, value, msg)                                                         \
  case name:                                                                                       \
    return #name;
    VKF_STATUS_LIST(VKF_STATUS_NAME_)
#undef VKF_STATUS_NAME_
  }
  return "VKF_STATUS_UNKNOWN";
}

const char *vkf_status_string(vkf_status status) {
  switch (status) {
#define VKF_STATUS_MSG_(name, value, msg)                                                          \
  case name:                                                                                       \
    return msg;
    VKF_STATUS_LIST(VKF_STATUS_MSG_)
#undef VKF_STATUS_MSG_
  }
  return "unknown status";
}

const char *vkf_op_name(vkf_op_kind kind) {
  static const char *const names[] = {
#define VKF_OP_NAME_(e, name) name,
      VKF_OP_LIST(VKF_OP_NAME_)
#undef VKF_OP_NAME_
  };
  return (unsigned)kind < VKF_OP_COUNT ? names[kind] : "unknown";
}

static void *default_alloc(void *user, size_t size) {
  (void)user;
  return malloc(size);
}
static void *default_realloc(void *user, void *ptr, size_t size) {
  (void)user;
  return realloc(ptr, size);
}
static void default_free(void *user, void *ptr) {
  (void)user;
  free(ptr);
}

void vkf_env_init(vkf_env *env, const vkf_context_desc *desc) {
  memset(env, 0, sizeof(*env));
  env->log_level = VKF_LOG_INFO;
  env->alloc = (vkf_allocator){default_alloc, default_realloc, default_free, NULL};
  if (!desc)
    return;
  env->log_fn = desc->log_fn;
  env->log_user = desc->log_user;
  if (desc->log_level)
    env->log_level = desc->log_level;
  if (desc->allocator.alloc && desc->allocator.realloc && desc->allocator.free)
    env->alloc = desc->allocator;
}

static void vlog(const vkf_env *env, vkf_log_level level, const char *fmt, va_list ap) {
  if (!env || !env->log_fn)
    return;
  if (level != VKF_LOG_VALIDATION && level > env->log_level)
    return;
  char msg[1024];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  env->log_fn(env->log_user, level, msg);
}

void vkf_log(const vkf_env *env, vkf_log_level level, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(env, level, fmt, ap);
  va_end(ap);
}

vkf_status vkf_fail(vkf_env *env, vkf_status status, const char *fmt, ...) {
  if (!env)
    return status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(env->error, sizeof(env->error), fmt, ap);
  va_end(ap);
  env->error_status = status;
  vkf_log(env, VKF_LOG_DEBUG, "%s: %s", vkf_status_name(status), env->error);
  return status;
}

void *vkf_malloc(const vkf_env *env, size_t size) {
  return env->alloc.alloc(env->alloc.user, size ? size : 1);
}

void *vkf_calloc(const vkf_env *env, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size)
    return NULL;
  void *p = vkf_malloc(env, n * size);
  if (p)
    memset(p, 0, n * size);
  return p;
}

void *vkf_realloc(const vkf_env *env, void *ptr, size_t size) {
  return env->alloc.realloc(env->alloc.user, ptr, size ? size : 1);
}

void vkf_free(const vkf_env *env, void *ptr) {
  if (ptr)
    env->alloc.free(env->alloc.user, ptr);
}

bool vkf_contains_nocase(const char *haystack, const char *needle) {
  size_t n = strlen(needle);
  if (n == 0)
    return true;
  for (const char *h = haystack; *h; h++) {
    size_t i = 0;
    while (i < n && h[i] && tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
      i++;
    if (i == n)
      return true;
  }
  return false;
}
