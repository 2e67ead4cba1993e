/*
 * kmem_fork_mt.c -- fork while other threads allocate (reliability plan
 * B.9/B.10): worker threads hammer kmem_alloc (cached and large sizes,
 * KMEM_DEBUG off), a pool_cache, a pool and a vmem arena, and reap, while
 * the main thread forks again and again.  Each child, started while any
 * lock may have been held, must find every structure sound
 * (kmem_check_all) and be able to do everything: free a block allocated
 * before the fork, allocate every size class and large blocks, create and
 * destroy a pool_cache, a pool and a vmem arena, reap, pass the checks
 * again, and print the statistics; then exit 0.  A child that hangs is killed
 * by its alarm (SIGALRM) and fails the test.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "t.h"

#define NTHREADS 4

static atomic_bool g_stop;
static pool_cache_t g_pc;
static struct pool g_pool;
static vmem_t *g_arena;
static void *g_before; /* allocated before the forks, freed by children */
static uint64_t g_seed;

static void *
worker(void *arg)
{
	struct t_rng r;
	unsigned long n = 0;

	t_rng_init(&r, g_seed, (unsigned)(uintptr_t)arg);
	while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
		size_t sz = 1 +
		    t_rng_below(&r, t_rng_below(&r, 8) == 0 ? 300000 : 2048);
		char *p = kmem_alloc(sz, KM_SLEEP);
		void *o = pool_cache_get(g_pc, PR_WAITOK);
		void *q = pool_get(&g_pool, PR_WAITOK);
		vmem_size_t vsz = 1 + t_rng_below(&r, 64);
		vmem_addr_t a;

		p[0] = p[sz - 1] = 1;
		if (vmem_alloc(g_arena, vsz, VM_NOSLEEP | VM_INSTANTFIT, &a) ==
		    0)
			vmem_free(g_arena, a, vsz);
		pool_put(&g_pool, q);
		pool_cache_put(g_pc, o);
		kmem_free(p, sz);
		if (++n % 4096 == 0)
			kmem_reap();
		if (n % 65536 == 0)
			kmem_reap_all();
	}
	return NULL;
}

/* Everything, in a child forked at a random moment. */
static void
child_work(void)
{
	static const size_t large[] = {20000, 65536, 100000, 3u << 20};
	pool_cache_t pc;
	struct pool pool;
	vmem_t *vm;
	vmem_addr_t a;
	size_t sz;
	void *p;
	int fd;

	alarm(20);
	kmem_check_all(); /* fork left every structure sound */
	kmem_free(g_before, 1000);
	for (sz = 1; sz <= KMEM_CACHE_MAX; sz += sz < 256 ? 8 : 512) {
		p = kmem_alloc(sz, KM_SLEEP);
		memset(p, 0x5a, sz);
		kmem_free(p, sz);
	}
	for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
		p = kmem_zalloc(large[i], KM_SLEEP);
		kmem_free(p, large[i]);
	}
	p = pool_cache_get(g_pc, PR_WAITOK);
	pool_cache_put(g_pc, p);
	pc = pool_cache_init(
	    200, 0, 0, 0, "child-pc", NULL, IPL_NONE, NULL, NULL, NULL);
	p = pool_cache_get(pc, PR_WAITOK);
	pool_cache_put(pc, p);
	pool_cache_destroy(pc);
	pool_init(&pool, 96, 0, 0, 0, "child-pool", NULL, IPL_NONE);
	p = pool_get(&pool, PR_WAITOK);
	pool_put(&pool, p);
	pool_destroy(&pool);
	vm = vmem_create(
	    "child-vm", 0, 1 << 20, 1, NULL, NULL, NULL, 0, VM_SLEEP, IPL_NONE);
	if (vm == NULL || vmem_alloc(vm, 100, VM_SLEEP, &a) != 0)
		_exit(3);
	vmem_free(vm, a, 100);
	vmem_destroy(vm);
	kmem_reap();
	kmem_reap_all();
	kmem_check_all();
	fd = open("/dev/null", O_WRONLY);
	if (fd < 0 || kmem_stats_write(fd, KMEM_STATS_ALL) != 0)
		_exit(4);
	_exit(0);
}

static void
test_fork_storm(void)
{
	pthread_t th[NTHREADS];
	unsigned i, nfork = (unsigned)t_scale(t_under_valgrind() ? 10 : 200);
	unsigned ok = 0;

	g_seed = t_seed();
	g_pc = pool_cache_init(
	    48, 0, 0, 0, "fork-pc", NULL, IPL_NONE, NULL, NULL, NULL);
	pool_init(&g_pool, 40, 0, 0, 0, "fork-pool", NULL, IPL_NONE);
	g_arena = vmem_create(
	    "fork-vm", 1, 1 << 24, 1, NULL, NULL, NULL, 0, VM_SLEEP, IPL_NONE);
	T_ASSERT(g_arena != NULL);
	g_before = kmem_alloc(1000, KM_SLEEP);
	for (i = 0; i < NTHREADS; i++)
		T_EQ(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i),
		    0);
	for (i = 0; i < nfork; i++) {
		int status;
		pid_t pid;

		usleep(500 + (unsigned)t_rand_below(2000));
		fflush(NULL);
		pid = fork();
		T_ASSERT(pid >= 0);
		if (pid == 0)
			child_work();
		T_EQ(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			T_FAIL("fork %u: child status %#x (SIGALRM %d: hung)",
			    i, (unsigned)status, SIGALRM);
		ok++;
	}
	atomic_store(&g_stop, true);
	for (i = 0; i < NTHREADS; i++)
		T_EQ(pthread_join(th[i], NULL), 0);
	printf("   %u children forked while %d threads allocated: all exited "
	       "0\n",
	    ok, NTHREADS);
	kmem_free(g_before, 1000);
	vmem_destroy(g_arena);
	pool_destroy(&g_pool);
	pool_cache_destroy(g_pc);
}

int
main(void)
{
	alarm(300);
	T_RUN(test_fork_storm);
	return t_done();
}
