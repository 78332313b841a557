/* A fork-join pool whose idle workers sleep on a condition variable (never
 * spin: on a 2-core machine a spinning worker steals the core that the
 * caller, or another library, needs). The caller takes part in every job. */
#ifndef VKF_THREADPOOL_H
#define VKF_THREADPOOL_H

#include "backend.h"

typedef struct vkf_pool vkf_pool;

/* fn processes items [begin, end). `worker` is 0..threads-1, unique among
 * concurrently running calls of one job (usable to index scratch space). */
typedef void (*vkf_pool_fn)(void *arg, uint32_t begin, uint32_t end, uint32_t worker);

vkf_status vkf_pool_create(vkf_env *env, uint32_t threads, vkf_pool **out);
void vkf_pool_destroy(vkf_pool *pool);
uint32_t vkf_pool_threads(const vkf_pool *pool);

/* Runs fn over [0, n) in chunks of at least `grain` items and returns when
 * all are done. Chunk boundaries depend only on n, grain and the thread
 * count, so results that depend on the partition are reproducible. */
void vkf_pool_run(vkf_pool *pool, uint32_t n, uint32_t grain, vkf_pool_fn fn, void *arg);

#endif
