/*
 * prim.c -- tests of the platform layer (src/internal/prim.h): page runs
 * with alignment, commit/purge/decommit/release, CPU identification, the
 * environment reader, locks, the clock, fault injection, and page moves
 * (kmem_prim_remap).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "internal/internal.h"
#include "internal/prim.h"
#include "t.h"

#if defined(__x86_64__)
static const bool t_x86_64 = true;
#else
static const bool t_x86_64 = false;
#endif
#if defined(__SANITIZE_THREAD__)
static const bool t_tsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
static const bool t_tsan = true;
#else
static const bool t_tsan = false;
#endif
#else
static const bool t_tsan = false;
#endif

static void
test_page_size_and_cpus(void)
{
	size_t ps = kmem_prim_page_size();

	T_ASSERT(kmem_powerof2(ps));
	T_EQ(ps, (size_t)sysconf(_SC_PAGESIZE));
	T_GE(kmem_prim_ncpu(), 1);
	for (int i = 0; i < 1000; i++)
		T_LT(kmem_prim_cpu_current(), kmem_prim_ncpu());
	printf("   cpu source %s, cpu %u of %u\n", kmem_prim_cpu_source(),
	    kmem_prim_cpu_current(), kmem_prim_ncpu());
	/*
	 * Debian 12's glibc registers rseq: the fast source must be used,
	 * unless rseq is tuned off or valgrind (which refuses the rseq
	 * system call, so glibc falls back) runs us.
	 */
	T_ASSERT(strcmp(kmem_prim_cpu_source(), "rseq") == 0 ||
	    getenv("GLIBC_TUNABLES") != NULL || t_under_valgrind());
	/*
	 * And restartable sequences for the pool_cache fast path, except
	 * where they must be off (no rseq, or ThreadSanitizer).
	 */
	T_EQ(kmem_prim_rseq_cs_init(),
	    t_x86_64 && !t_tsan && strcmp(kmem_prim_cpu_source(), "rseq") == 0);
	printf("   rseq critical sections: %s\n",
	    kmem_prim_rseq_cs_init() ? "on" : "off");
	if (kmem_prim_rseq_cs_init()) {
		/* The raw CPU number agrees with the CPU hint. */
		T_LT((unsigned)kmem_prim_cpu_raw(), 4096);
		kmem_prim_rseq_fence(kmem_prim_cpu_current());
	}
}

static void
test_alloc_aligned(void)
{
	size_t ps = kmem_prim_page_size();
	size_t aligns[] = {0, ps, 2 * ps, 64 * 1024, 1 << 20, 4 << 20};

	for (size_t i = 0; i < KMEM_ARRAY_SIZE(aligns); i++) {
		void *p;
		size_t size = 3 * ps;

		T_EQ(kmem_prim_alloc(size, aligns[i], &p), 0);
		T_EQ((uintptr_t)p % (aligns[i] ? aligns[i] : ps), 0);
		/* Zeroed and writable. */
		for (size_t j = 0; j < size; j++)
			T_EQ(((unsigned char *)p)[j], 0);
		memset(p, 0xa5, size);
		T_EQ(kmem_prim_release(p, size), 0);
	}
}

static void
test_bad_arguments(void)
{
	size_t ps = kmem_prim_page_size();
	void *p = (void *)0x1234, *q;

	T_EQ(kmem_prim_alloc(0, 0, &p), EINVAL);
	T_EQ(kmem_prim_alloc(ps + 1, 0, &p), EINVAL);
	T_EQ(kmem_prim_alloc(ps, 3 * ps, &p), EINVAL);
	T_EQ(kmem_prim_reserve(ps / 2, 0, &p), EINVAL);
	T_EQ((uintptr_t)p, 0x1234); /* untouched on failure */
	T_EQ(kmem_prim_alloc(ps, 0, &q), 0);
	T_EQ(kmem_prim_commit((char *)q + 1, ps), EINVAL);
	T_EQ(kmem_prim_purge(q, ps - 1), EINVAL);
	T_EQ(kmem_prim_release((char *)q + 8, ps), EINVAL);
	T_EQ(kmem_prim_release(q, ps), 0);
	/* Too big for the address space. */
	T_EQ(kmem_prim_alloc(SIZE_MAX & ~(ps - 1), 0, &p), ENOMEM);
}

static sigjmp_buf segv_jmp;

static void
segv_handler(int sig)
{
	(void)sig;
	siglongjmp(segv_jmp, 1);
}

/* True if reading *p faults. */
static bool
faults(volatile char *p)
{
	struct sigaction sa, old;
	bool r;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = segv_handler;
	sigaction(SIGSEGV, &sa, &old);
	if (sigsetjmp(segv_jmp, 1) == 0) {
		(void)*p;
		r = false;
	} else {
		r = true;
	}
	sigaction(SIGSEGV, &old, NULL);
	return r;
}

static void
test_reserve_commit_purge(void)
{
	size_t ps = kmem_prim_page_size(), size = 16 * ps;
	char *p;
	void *v;

	T_EQ(kmem_prim_reserve(size, 1 << 20, &v), 0);
	p = v;
	T_EQ((uintptr_t)p % (1 << 20), 0);
	if (!t_under_valgrind())
		T_ASSERT(faults(p));
	T_EQ(kmem_prim_commit(p + 4 * ps, 4 * ps), 0);
	memset(p + 4 * ps, 7, 4 * ps);
	T_EQ(p[4 * ps], 7);
	/* Purge: still accessible, reads as zero. */
	T_EQ(kmem_prim_purge(p + 4 * ps, 2 * ps), 0);
	T_EQ(p[4 * ps], 0);
	T_EQ(p[6 * ps], 7);
	/* Decommit: inaccessible again. */
	T_EQ(kmem_prim_decommit(p + 4 * ps, 4 * ps), 0);
	if (!t_under_valgrind())
		T_ASSERT(faults(p + 4 * ps));
	T_EQ(kmem_prim_commit(p + 4 * ps, ps), 0);
	T_EQ(p[4 * ps], 0);
	T_EQ(kmem_prim_release(p, size), 0);
}

#ifdef KMEM_PRIM_REMAP
/*
 * In a child: a move the kernel refuses after it has unmapped "to"
 * (RLIMIT_AS: MREMAP_DONTUNMAP maps "from" anew), and "to" cannot be
 * mapped again either: EFAULT, "to" gone, "from" intact.  (A kernel that
 * checks the limit first: ENOMEM, both intact.)
 */
static void
remap_refused(void *arg)
{
	size_t ps = kmem_prim_page_size(), n = 64 * ps;
	struct rlimit rl;
	char *a, *b;
	void *v;
	int err;

	(void)arg;
	T_EQ(kmem_prim_alloc(n, 0, &v), 0);
	a = v;
	T_EQ(kmem_prim_alloc(n, 0, &v), 0);
	b = v;
	memset(a, 1, n);
	memset(b, 5, n);
	rl.rlim_cur = rl.rlim_max = (unsigned long)t_vm_kib() * 1024 - n / 2;
	T_EQ(setrlimit(RLIMIT_AS, &rl), 0);
	err = kmem_prim_remap(a, n, b);
	T_EQ(a[0], 1);
	T_EQ(a[n - 1], 1);
	if (err == EFAULT) {
		T_ASSERT(faults(b));
		T_ASSERT(faults(b + n - 1));
	} else {
		T_EQ(err, ENOMEM);
		T_ASSERT(!faults(b));
	}
}

/*
 * kmem_prim_remap: the pages move, "from" stays mapped and reads zero;
 * a refusal before anything moved keeps "to" (and does not turn moves
 * off); one after the kernel unmapped "to" says so (EFAULT).
 */
static void
test_remap(void)
{
	size_t ps = kmem_prim_page_size(), n = 8 * ps;
	char *a, *b, *c, *d, buf[256];
	void *v;
	int err;

	T_EQ(kmem_prim_alloc(n, 0, &v), 0);
	a = v;
	T_EQ(kmem_prim_alloc(n, 0, &v), 0);
	b = v;
	memset(a, 1, n);
	memset(b, 5, n);
	err = kmem_prim_remap(a, 4 * ps, b);
	if (err == EINVAL) { /* no MREMAP_DONTUNMAP (Linux < 5.7, valgrind) */
		printf("   no page moves here\n");
		T_ASSERT(!faults(b)); /* "to" kept (its contents dropped) */
		return;
	}
	T_EQ(err, 0);
	T_EQ(b[0], 1);
	T_EQ(b[4 * ps - 1], 1);
	T_EQ(b[4 * ps], 5);
	T_ASSERT(!faults(a));
	T_EQ(a[0], 0);
	T_EQ(a[4 * ps - 1], 0);
	T_EQ(a[4 * ps], 1);
	/* A source with nothing mapped at its start: refused, "to" kept. */
	T_EQ(kmem_prim_alloc(n, 0, &v), 0);
	c = v;
	T_EQ(kmem_prim_alloc(n, 0, &v), 0);
	d = v;
	memset(c, 2, n);
	memset(d, 6, n);
	T_EQ(kmem_prim_release(c, ps), 0);
	T_EQ(kmem_prim_remap(c, 4 * ps, d), EINVAL);
	T_ASSERT(!faults(d));
	T_ASSERT(!faults(d + 4 * ps - 1));
	/* Still moving pages after that refusal. */
	T_EQ(kmem_prim_remap(c + 4 * ps, 4 * ps, d), 0);
	T_EQ(d[0], 2);
	T_EQ(d[4 * ps], 6);
	if (!t_under_valgrind())
		t_child_ok(remap_refused, NULL, buf, sizeof buf);
	T_EQ(kmem_prim_release(a, n), 0);
	T_EQ(kmem_prim_release(b, n), 0);
	T_EQ(kmem_prim_release(c + ps, n - ps), 0);
	T_EQ(kmem_prim_release(d, n), 0);
}
#endif

static void
test_fault_injection(void)
{
	size_t ps = kmem_prim_page_size();
	void *p[8];
	int i;

	/* The 3rd call fails, the others succeed. */
	kmem_prim_fault_set(3, false);
	for (i = 0; i < 5; i++) {
		int err = kmem_prim_alloc(ps, 0, &p[i]);

		T_EQ(err, i == 2 ? ENOMEM : 0);
	}
	T_EQ(kmem_prim_fault_calls(), 5);
	for (i = 0; i < 5; i++) {
		if (i != 2)
			kmem_prim_release(p[i], ps);
	}
	/* From the 2nd call on, everything fails: reserve and commit too. */
	kmem_prim_fault_set(2, true);
	T_EQ(kmem_prim_reserve(ps, 0, &p[0]), 0);
	T_EQ(kmem_prim_commit(p[0], ps), ENOMEM);
	T_EQ(kmem_prim_alloc(ps, 0, &p[1]), ENOMEM);
	T_EQ(kmem_prim_reserve(ps, 0, &p[1]), ENOMEM);
	kmem_prim_fault_set(0, false);
	T_EQ(kmem_prim_commit(p[0], ps), 0);
	T_EQ(kmem_prim_release(p[0], ps), 0);
}

static void
test_getenv(void)
{
	setenv("KMEM_TEST_VAR", "a=b,c", 1);
	T_ASSERT(strcmp(kmem_prim_getenv("KMEM_TEST_VAR"), "a=b,c") == 0);
	T_ASSERT(kmem_prim_getenv("KMEM_TEST_VA") == NULL);
	T_ASSERT(kmem_prim_getenv("KMEM_TEST_VAR_NOT_SET") == NULL);
	unsetenv("KMEM_TEST_VAR");
	T_ASSERT(kmem_prim_getenv("KMEM_TEST_VAR") == NULL);
}

static void
test_clock(void)
{
	uint64_t t0 = kmem_prim_clock_ns(), t1;

	kmem_prim_sleep_ns(2000000);
	t1 = kmem_prim_clock_ns();
	T_GE(t1 - t0, 2000000);
	T_LT(t1 - t0, 2000000000ull);
}

struct lock_arg {
	kmem_mutex_t mtx;
	kmem_cond_t cv;
	uint64_t counter;
	bool go;
};

static void *
lock_worker(void *v)
{
	struct lock_arg *a = v;

	kmem_mutex_enter(&a->mtx);
	while (!a->go)
		kmem_cond_wait(&a->cv, &a->mtx);
	kmem_mutex_exit(&a->mtx);
	for (int i = 0; i < 100000; i++) {
		kmem_mutex_enter(&a->mtx);
		a->counter++;
		kmem_mutex_exit(&a->mtx);
	}
	return NULL;
}

static void
test_locks(void)
{
	struct lock_arg a;
	pthread_t th[3];

	memset(&a, 0, sizeof a);
	kmem_mutex_init(&a.mtx);
	kmem_cond_init(&a.cv);
	for (int i = 0; i < 3; i++)
		T_EQ(pthread_create(&th[i], NULL, lock_worker, &a), 0);
	kmem_mutex_enter(&a.mtx);
	/* A timed wait nobody signals times out. */
	T_ASSERT(!kmem_cond_timedwait(&a.cv, &a.mtx, 1000000));
	a.go = true;
	kmem_cond_broadcast(&a.cv);
	kmem_mutex_exit(&a.mtx);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	T_EQ(a.counter, 300000);
	T_ASSERT(kmem_mutex_tryenter(&a.mtx));
	kmem_mutex_exit(&a.mtx);
	kmem_cond_destroy(&a.cv);
	kmem_mutex_destroy(&a.mtx);
}

int
main(void)
{
	T_RUN(test_page_size_and_cpus);
	T_RUN(test_alloc_aligned);
	T_RUN(test_bad_arguments);
	T_RUN(test_reserve_commit_purge);
	T_RUN(test_fault_injection);
#ifdef KMEM_PRIM_REMAP
	T_RUN(test_remap);
#endif
	T_RUN(test_getenv);
	T_RUN(test_clock);
	T_RUN(test_locks);
	return t_done();
}
