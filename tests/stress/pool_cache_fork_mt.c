/*
 * pool_cache_fork_mt.c -- the per-CPU fast path across fork: threads
 * hammer a cache and invalidate it (which fences every CPU's restartable
 * sequences), then the process forks and the child does the same with
 * threads of its own, while the parent goes on.  Each object carries its
 * owner, claimed by compare-and-swap at every get, so an object handed to
 * two threads at once fails the test; at the end of each phase the
 * objects out equal the objects cached (nothing lost or duplicated).
 */
#include <pthread.h>
#include <stdatomic.h>

#include <kmem/pool.h>

#include "internal/prim.h"
#include "t.h"

#define NTHREADS 4
#define WINDOW	 48

struct obj {
	_Atomic unsigned owner; /* 0 free, else thread id + 1 */
	char pad[56];
};

static pool_cache_t g_pc;
static unsigned g_rounds;

static void *
worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg + 1, r, i;
	struct obj *v[WINDOW];

	for (r = 0; r < g_rounds; r++) {
		for (i = 0; i < WINDOW; i++) {
			unsigned zero = 0;

			v[i] = pool_cache_get(g_pc, PR_WAITOK);
			if (!atomic_compare_exchange_strong(
				&v[i]->owner, &zero, id))
				T_FAIL("object %p handed out twice (owner %u)",
				    (void *)v[i], zero);
		}
		for (i = 0; i < WINDOW; i++) {
			atomic_store(&v[i]->owner, 0);
			pool_cache_put(g_pc, v[i]);
		}
		if (r % 64 == id)
			pool_cache_invalidate(g_pc);
	}
	return NULL;
}

/* Run the workers; true if every object is accounted for after. */
static bool
phase(void)
{
	pthread_t th[NTHREADS];
	struct kmem_pool_stats st;
	unsigned i;

	for (i = 0; i < NTHREADS; i++)
		T_EQ(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i),
		    0);
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	kmem_pool_cache_stats(g_pc, &st);
	return st.ps_nout == st.ps_cached_objects;
}

static void
test_fork(void)
{
	int status;
	pid_t pid;

	g_pc = pool_cache_init(sizeof(struct obj), 64, 0, 0, "forkmt", NULL,
	    IPL_NONE, NULL, NULL, NULL);
	printf(
	    "   rseq fast path: %s\n", kmem_prim_rseq_cs_init() ? "on" : "off");
	T_ASSERT(phase());
	fflush(NULL);
	pid = fork();
	T_ASSERT(pid >= 0);
	if (pid == 0) {
		alarm(60);
		_exit(phase() ? 0 : 1);
	}
	T_ASSERT(phase());
	T_EQ(waitpid(pid, &status, 0), pid);
	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	pool_cache_destroy(g_pc);
}

int
main(void)
{
	alarm(120);
	g_rounds = (unsigned)t_scale(t_under_valgrind() ? 2000 : 40000);
	T_RUN(test_fork);
	return t_done();
}
