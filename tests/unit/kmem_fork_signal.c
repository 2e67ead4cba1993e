/*
 * kmem_fork_signal.c -- fork from a signal handler that may have
 * interrupted kmem in the middle of a locked section (glibc's
 * tst-mallocfork2 idea), in a process that never created a thread: the
 * fork handlers must not take any lock then, or the fork would wait for
 * the interrupted code, which waits for the handler.  A timer fires every
 * 200 us while the main loop allocates and frees through every layer;
 * each signal forks a child that exits at once.  A hang fails by alarm.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "t.h"

static volatile sig_atomic_t g_forks, g_bad;

static void
on_tick(int sig)
{
	int status;
	pid_t pid;

	(void)sig;
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		g_bad = 1;
	g_forks++;
}

static void
test_fork_from_handler(void)
{
	struct itimerval it = {{0, 200}, {0, 200}};
	struct sigaction sa;
	vmem_t *vm = vmem_create(
	    "sig-vm", 1, 1 << 20, 1, NULL, NULL, NULL, 0, VM_SLEEP, IPL_NONE);
	struct pool pool;
	unsigned long n = 0, target = t_scale(500);
	struct t_rng r;

	t_rng_init(&r, t_seed(), 0);
	pool_init(&pool, 64, 0, 0, 0, "sig-pool", NULL, IPL_NONE);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_tick;
	sa.sa_flags = SA_RESTART;
	T_EQ(sigaction(SIGPROF, &sa, NULL), 0);
	it.it_interval.tv_usec = it.it_value.tv_usec = 200;
	T_EQ(setitimer(ITIMER_PROF, &it, NULL), 0);
	while ((unsigned long)g_forks < target) {
		size_t sz = 1 +
		    t_rng_below(&r, t_rng_below(&r, 4) == 0 ? 200000 : 4000);
		char *p = kmem_alloc(sz, KM_SLEEP);
		void *q = pool_get(&pool, PR_WAITOK);
		vmem_addr_t a;

		p[0] = 1;
		if (vmem_alloc(vm, 8, VM_NOSLEEP, &a) == 0)
			vmem_free(vm, a, 8);
		pool_put(&pool, q);
		kmem_free(p, sz);
		if (++n % 1000 == 0)
			kmem_reap();
	}
	memset(&it, 0, sizeof it);
	T_EQ(setitimer(ITIMER_PROF, &it, NULL), 0);
	printf("   %d forks from the signal handler during %lu rounds\n",
	    (int)g_forks, n);
	T_EQ(g_bad, 0);
	pool_destroy(&pool);
	vmem_destroy(vm);
}

/* TSan's own fork interceptor allocates in the child: it reports that. */
#if defined(__SANITIZE_THREAD__)
#define T_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif

int
main(void)
{
	alarm(120);
#ifdef T_TSAN
	t_skip("under TSan, whose fork interceptor is not signal-safe");
#endif
	T_RUN(test_fork_from_handler);
	return t_done();
}
