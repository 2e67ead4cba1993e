/*
 * malloc_tick.c -- memory goes back while the program runs, driven by its
 * own allocations, without a thread (malloc.c section 11, issue 12): a
 * program frees 96 MiB of small objects, then only mallocs and frees one
 * size in a loop -- always a hit in its CPU's group, never a slow path.
 * On kmem, within 15 s its resident memory falls below a third of what it
 * held (measured: 2-4 s to a tenth); with KMEM_OPTIONS=reap_tick_ms=0
 * (this program run again so) it stays, which shows the tick is what
 * gives it back.  test_tick_large: the same with a loop of 32 KiB blocks
 * (kva's quantum cache, whose puts tick as a class's do).
 * test_tick_free_only: the frees come from a thread that never mallocs
 * (handed 1024 blocks at a time; it yields while it waits, so the test
 * holds on one CPU too).  On glibc (the oracle) the loops just run.
 *
 * test_errno: free(3) leaves errno alone (POSIX 2024; glibc since 2.33)
 * even when the tick's purge fails: kva's freed blocks mlock'ed, so that
 * madvise(MADV_DONTNEED) of them fails with EINVAL, then a malloc/free
 * loop (and frees of 64 KiB blocks, kva's quantum caches) with errno set
 * to a sentinel for 3 s.  On e795f9e free set errno to EINVAL.  Skipped
 * where mlock is refused (RLIMIT_MEMLOCK).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "t.h"

static void *(*volatile f_malloc)(size_t) = malloc;
static void (*volatile f_free)(void *) = free;

/* 96 MiB of small objects made and freed, scattered: RSS then, KiB. */
static void
fill_and_free(long *held)
{
	size_t n = (96u << 20) / 128, i;
	char **p = f_malloc(n * sizeof *p);
	uint64_t x = 88172645463325252ull;

	T_ASSERT(p != NULL);
	for (i = 0; i < n; i++) {
		size_t sz;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		sz = 16 + x % 240;
		p[i] = f_malloc(sz);
		T_ASSERT(p[i] != NULL);
		memset(p[i], 1, sz);
	}
	for (i = 0; i < n; i++)
		f_free(p[(i * 7919) % n]);
	f_free(p);
	*held = t_rss_kib();
}

/*
 * Fill, free all, loop on blocks of "size": the lowest RSS seen within
 * "secs", in KiB.
 */
static long
run(double secs, long *held, size_t size)
{
	size_t i;
	long low;
	double t0;

	fill_and_free(held);
	low = *held;
	t0 = t_now_s();
	while (t_now_s() - t0 < secs && low > *held / 3) {
		for (i = 0; i < 100000; i++) {
			void *q = f_malloc(size);

			*(volatile char *)q = 1;
			f_free(q);
		}
		if (t_rss_kib() < low)
			low = t_rss_kib();
	}
	return low;
}

static void
test_tick(void)
{
	bool kmem = getenv("KMEM_TEST_PRELOAD") != NULL;
	long held, low = run(kmem ? 15.0 : 1.0, &held, 48);

	printf("   after the frees %ld KiB; lowest within %d s: %ld KiB\n",
	    held, kmem ? 15 : 1, low);
	if (kmem) {
		T_GT(held, 32 * 1024);
		T_LT(low, held / 3);
	}
}

/*
 * The same with a loop of 32 KiB blocks, kva's quantum cache: their frees
 * tick too (malloc.c, free_large; before, their put's tick was ignored
 * and nothing went back).
 */
static void
test_tick_large(void)
{
	bool kmem = getenv("KMEM_TEST_PRELOAD") != NULL;
	long held, low = run(kmem ? 15.0 : 1.0, &held, 32768);

	printf("   after the frees %ld KiB; lowest within %d s of 32 KiB "
	       "blocks: %ld KiB\n",
	    held, kmem ? 15 : 1, low);
	if (kmem) {
		T_GT(held, 32 * 1024);
		T_LT(low, held / 3);
	}
}

/*
 * test_tick_free_only: the frees that drive the tick come from a thread
 * that never calls malloc -- a consumer handed every block by the main
 * thread -- so it has no bins, and each free is a put into its CPU's
 * group (malloc.c's tb_put).  Before, those puts dropped the CPU layer's
 * tick (their return value 2), the producer's mallocs never tick, and
 * nothing went back: RSS stayed at what the frees left.
 */
#define NBOX 1024
static void *box[NBOX];
static _Atomic int box_full, consumer_stop;

/* Waits yield: on a loaded machine both threads may share one CPU. */
static void *
consumer(void *arg)
{
	(void)arg;
	for (;;) {
		while (!atomic_load(&box_full) && !atomic_load(&consumer_stop))
			sched_yield();
		if (!atomic_load(&box_full))
			return NULL;
		for (int i = 0; i < NBOX; i++)
			f_free(box[i]);
		atomic_store(&box_full, 0);
	}
}

static void
test_tick_free_only(void)
{
	bool kmem = getenv("KMEM_TEST_PRELOAD") != NULL;
	double secs = kmem ? 15.0 : 1.0, t0;
	long held, low;
	pthread_t thr;
	int i;

	fill_and_free(&held);
	low = held;
	atomic_store(&consumer_stop, 0);
	atomic_store(&box_full, 0);
	T_EQ(pthread_create(&thr, NULL, consumer, NULL), 0);
	t0 = t_now_s();
	while (t_now_s() - t0 < secs && low > held / 3) {
		for (int round = 0; round < 20; round++) {
			while (atomic_load(&box_full))
				sched_yield();
			for (i = 0; i < NBOX; i++) {
				box[i] = f_malloc(48);
				T_ASSERT(box[i] != NULL);
				*(volatile char *)box[i] = 1;
			}
			atomic_store(&box_full, 1);
		}
		if (t_rss_kib() < low)
			low = t_rss_kib();
	}
	while (atomic_load(&box_full))
		sched_yield();
	atomic_store(&consumer_stop, 1);
	T_EQ(pthread_join(thr, NULL), 0);
	printf("   after the frees %ld KiB; lowest within %d s of frees by "
	       "a thread that never mallocs: %ld KiB\n",
	    held, (int)secs, low);
	if (kmem) {
		T_GT(held, 32 * 1024);
		T_LT(low, held / 3);
	}
}

/* The same with the tick off (this program run again): nothing goes back. */
static void
tick_off_child(void)
{
	long held, low = run(3.0, &held, 48);

	printf("   tick off: after the frees %ld KiB; lowest within 3 s: %ld "
	       "KiB\n",
	    held, low);
	exit(low > held / 2 ? 0 : 1);
}

static void
test_no_tick(void)
{
	int st;

	if (getenv("KMEM_TEST_PRELOAD") == NULL)
		return;
	setenv("KMEM_OPTIONS", "reap_tick_ms=0", 1);
	st = t_exec_self("tick-off", 60);
	unsetenv("KMEM_OPTIONS");
	T_ASSERT(WIFEXITED(st));
	T_EQ(WEXITSTATUS(st), 0);
}

static void
test_errno(void)
{
	enum { N = 16 };
	unsigned char *b[N];
	long changed = 0, n = 0;
	int got = 0, i;
	double t0;

	for (i = 0; i < N; i++) {
		b[i] = f_malloc(2u << 20);
		T_ASSERT(b[i] != NULL);
		memset(b[i], 1, 2u << 20);
		if (mlock(b[i], 2u << 20) != 0) {
			printf("   mlock refused: not tested\n");
			for (; i >= 0; i--)
				f_free(b[i]);
			return;
		}
	}
	/* Dirty free ranges whose purge fails; the last keeps them apart. */
	for (i = 0; i < N - 1; i++)
		f_free(b[i]);
	t0 = t_now_s();
	while (t_now_s() - t0 < 3.0) {
		for (i = 0; i < 100000; i++) {
			void *q = f_malloc(i % 64 == 0 ? 64u << 10 : 48);

			T_ASSERT(q != NULL);
			*(volatile char *)q = 1;
			errno = 4242;
			f_free(q);
			if (errno != 4242) {
				changed++;
				got = errno;
			}
			n++;
		}
	}
	printf("   %ld frees, %ld changed errno (to %d)\n", n, changed, got);
	T_EQ(changed, 0);
	munlock(b[N - 1], 2u << 20);
	f_free(b[N - 1]);
}

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "tick-off") == 0)
		tick_off_child();
	t_args(argc, argv);
	T_RUN_IF(test_tick);
	T_RUN_IF(test_tick_large);
	T_RUN_IF(test_tick_free_only);
	T_RUN_IF(test_no_tick);
	T_RUN_IF(test_errno);
	return t_done();
}
