#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct worker_arg {
  struct vkf_pool *pool;
  uint32_t index;
} worker_arg;

struct vkf_pool {
  vkf_env *env;
  uint32_t threads; /* including the caller */
  pthread_t *tids;
  worker_arg *wargs;
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  uint64_t generation; /* bumped per job */
  bool quit;
  /* the current job */
  vkf_pool_fn fn;
  void *arg;
  uint32_t n, chunk, n_chunks;
  atomic_uint next_chunk;
  uint32_t busy; /* workers still inside the job */
};

static void work(vkf_pool *p, uint32_t worker) {
  for (;;) {
    uint32_t c = atomic_fetch_add_explicit(&p->next_chunk, 1, memory_order_relaxed);
    if (c >= p->n_chunks)
      return;
    uint32_t begin = c * p->chunk;
    uint32_t end = begin + p->chunk < p->n ? begin + p->chunk : p->n;
    p->fn(p->arg, begin, end, worker);
  }
}

static void *worker_main(void *varg) {
  worker_arg *wa = varg;
  vkf_pool *p = wa->pool;
  uint32_t index = wa->index;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->quit && p->generation == seen)
      pthread_cond_wait(&p->wake, &p->mu);
    if (p->quit)
      break;
    seen = p->generation;
    pthread_mutex_unlock(&p->mu);
    work(p, index);
    pthread_mutex_lock(&p->mu);
    if (--p->busy == 0)
      pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

vkf_status vkf_pool_create(vkf_env *env, uint32_t threads, vkf_pool **out) {
  *out = NULL;
  if (threads < 1)
    threads = 1;
  vkf_pool *p = vkf_calloc(env, 1, sizeof(*p));
  worker_arg *args = vkf_calloc(env, threads, sizeof(*args));
  if (!p || !args) {
    vkf_free(env, p);
    vkf_free(env, args);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "thread pool");
  }
  p->env = env;
  p->threads = threads;
  p->tids = vkf_calloc(env, threads, sizeof(pthread_t));
  if (!p->tids) {
    vkf_free(env, args);
    vkf_free(env, p);
    return vkf_fail(env, VKF_ERROR_OUT_OF_HOST_MEMORY, "thread pool");
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  for (uint32_t i = 1; i < threads; i++) {
    args[i] = (worker_arg){p, i};
    if (pthread_create(&p->tids[i], NULL, worker_main, &args[i]) != 0) {
      p->threads = i; /* run with the workers we got */
      vkf_log(env, VKF_LOG_WARN, "CPU backend: could only start %u of %u threads", i, threads);
      break;
    }
  }
  p->wargs = args;
  *out = p;
  return VKF_OK;
}

void vkf_pool_destroy(vkf_pool *p) {
  if (!p)
    return;
  pthread_mutex_lock(&p->mu);
  p->quit = true;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (uint32_t i = 1; i < p->threads; i++)
    pthread_join(p->tids[i], NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  vkf_env *env = p->env;
  vkf_free(env, p->tids);
  vkf_free(env, p->wargs);
  vkf_free(env, p);
}

uint32_t vkf_pool_threads(const vkf_pool *p) {
  return p->threads;
}

void vkf_pool_run(vkf_pool *p, uint32_t n, uint32_t grain, vkf_pool_fn fn, void *arg) {
  if (n == 0)
    return;
  if (grain < 1)
    grain = 1;
  if (p->threads == 1 || n <= grain) {
    fn(arg, 0, n, 0);
    return;
  }
  /* About four chunks per thread for balance, never below the grain. */
  uint32_t chunk = (n + p->threads * 4 - 1) / (p->threads * 4);
  if (chunk < grain)
    chunk = grain;
  uint32_t n_chunks = (n + chunk - 1) / chunk;
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->n = n;
  p->chunk = chunk;
  p->n_chunks = n_chunks;
  atomic_store_explicit(&p->next_chunk, 0, memory_order_relaxed);
  p->busy = p->threads - 1;
  p->generation++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  work(p, 0);
  pthread_mutex_lock(&p->mu);
  while (p->busy)
    pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}
