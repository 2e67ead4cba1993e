/*
 * malloc_threads_mt.c -- the libc allocation API under threads
 * (reliability plan B.14, B.15, B.16), standard API only, so the same
 * binary runs on plain glibc (oracle) and under LD_PRELOAD of kmem.
 *
 *  - B.16 cross-thread stress (mimalloc test-stress): 8 threads (x
 *    t_scale) for several rounds, each doing a mix of malloc, calloc
 *    (checked zero), posix_memalign / aligned_alloc (checked aligned) and
 *    realloc (prefix checked), sizes spread over powers of two from 8 B to
 *    1 KiB with 1% x 100 and 0.1% up to 1 MiB; every block carries its
 *    size and a pattern derived from its address, verified when it is
 *    freed (by whichever thread holds it then); pointers are swapped with
 *    a shared transfer array through atomic_exchange, which survives the
 *    threads: after each round main frees half of it and creates fresh
 *    threads that inherit the rest.  Pass: no corrupt block, no NULL.
 *  - B.14 thread churn (glibc tst-malloc-tcache-leak): max(1000, 10000 x
 *    t_scale) short-lived threads, 4 at a time, each doing
 *    malloc/free of a few sizes then malloc(32), returning that block to
 *    main, which checks and frees it.  Pass: VmRSS grows by < 64 MiB
 *    (a per-thread cache not released at thread exit leaks far more).
 *  - B.15 thread-exit race (glibc tst-malloc-thread-exit), briefly: 2
 *    outer threads x 4 inner threads per round, half allocate-then-
 *    barrier (their block is freed by the outer thread after the inner
 *    one exited), half barrier-then-allocate, for ~0.8 s (t_scale).
 *  - thread-specific-data destructors that free, allocate and re-arm
 *    their key during thread exit (after the allocator's own per-thread
 *    teardown may have run).  Pass: every destructor round ran, every
 *    block it got was usable.
 *
 * Anything that hangs is killed by alarm(60).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "t.h"

static uint64_t g_seed;

/* ----------------------------------------------------- B.16: stress */

/*
 * Block layout: word 0 = size ^ COOKIE, word i (i >= 1) = f(address, i,
 * size), trailing bytes likewise.  Every block is >= 8 bytes.
 */
#define COOKIE 0xbf58476d1ce4e5b9ull

static inline uint64_t
word_pat(uintptr_t addr, size_t i, size_t size)
{
	return ((uint64_t)addr + i) * 0x94d049bb133111ebull ^ size;
}

static void
blk_fill(void *p, size_t size)
{
	uint64_t *w = p;
	size_t nw = size / 8;

	w[0] = size ^ COOKIE;
	for (size_t i = 1; i < nw; i++)
		w[i] = word_pat((uintptr_t)p, i, size);
	for (size_t i = nw * 8; i < size; i++)
		((uint8_t *)p)[i] = (uint8_t)word_pat((uintptr_t)p, i, size);
}

/* Verify a block whose contents were written at address "was". */
static void
blk_verify_as(const void *p, size_t size, uintptr_t was, size_t upto)
{
	const uint64_t *w = p;
	size_t nw = upto / 8;

	for (size_t i = 1; i < nw; i++)
		if (w[i] != word_pat(was, i, size))
			T_FAIL("block %p (size %zu, written at %#jx) corrupt "
			       "at word %zu: %#jx",
			    p, size, (uintmax_t)was, i, (uintmax_t)w[i]);
	for (size_t i = nw * 8; i < upto; i++)
		if (((const uint8_t *)p)[i] != (uint8_t)word_pat(was, i, size))
			T_FAIL("block %p (size %zu) corrupt at byte %zu", p,
			    size, i);
}

static void
blk_free(void *p)
{
	size_t size;

	if (p == NULL)
		return;
	size = (size_t)(*(uint64_t *)p ^ COOKIE);
	if (size < 8 || size > (64u << 20))
		T_FAIL("block %p has a bad header %#jx", p,
		    (uintmax_t)(*(uint64_t *)p));
	T_GE(malloc_usable_size(p), size);
	blk_verify_as(p, size, (uintptr_t)p, size);
	free(p);
}

static size_t
pick_size(struct t_rng *r, unsigned max_shift)
{
	size_t n = (size_t)8 << t_rng_below(r, max_shift);
	uint64_t c = t_rng_below(r, 1000);

	if (c == 0)
		return 4096 + t_rng_below(r, (1 << 20) - 4096); /* < 1 MiB */
	if (c < 10)
		n *= 100;
	/* Not only powers of two. */
	n += t_rng_below(r, n / 4 + 1);
	return n < 8 ? 8 : n;
}

static void *
blk_alloc(struct t_rng *r, size_t size)
{
	uint64_t how = t_rng_below(r, 100);
	void *p;

	if (how < 15) {
		p = calloc(1, size);
		T_ASSERT(p != NULL);
		for (size_t i = 0; i < size; i++)
			if (((uint8_t *)p)[i] != 0)
				T_FAIL("calloc(%zu) = %p: byte %zu not zero",
				    size, p, i);
	} else if (how < 25) {
		size_t align = (size_t)16 << t_rng_below(r, 9); /* .. 4096 */

		if (how < 20) {
			p = NULL;
			T_EQ(posix_memalign(&p, align, size), 0);
		} else {
			p = aligned_alloc(align, size);
		}
		T_ASSERT(p != NULL);
		if ((uintptr_t)p % align != 0)
			T_FAIL("aligned block %p (align %zu)", p, align);
	} else {
		p = malloc(size);
		T_ASSERT(p != NULL);
	}
	blk_fill(p, size);
	return p;
}

/* Grow or shrink a live block, checking the prefix moved with it. */
static void *
blk_realloc(struct t_rng *r, void *p)
{
	size_t old = (size_t)(*(uint64_t *)p ^ COOKIE);
	size_t nsz = pick_size(r, 8), keep = old < nsz ? old : nsz;
	uintptr_t was = (uintptr_t)p;
	void *q;

	blk_verify_as(p, old, was, old);
	q = realloc(p, nsz);
	T_ASSERT(q != NULL);
	blk_verify_as(q, old, was, keep & ~(size_t)7);
	blk_fill(q, nsz);
	return q;
}

#define TRANSFERS 1000
static _Atomic(void *) transfer[TRANSFERS];
static atomic_ulong g_ops;

struct stress_arg {
	unsigned tid, round;
	size_t allocs;
};

static void *
stress_thread(void *arg)
{
	struct stress_arg *a = arg;
	size_t allocs = a->allocs, retain = allocs / 2, data_top = 0;
	size_t data_size = 0, retain_top = 0, ops = 0;
	void **data = NULL, **retained;
	struct t_rng r;

	t_rng_init(&r, g_seed + a->round * 7919, a->tid);
	retained = calloc(retain + 1, sizeof *retained);
	T_ASSERT(retained != NULL);
	while (allocs > 0 || retain > 0) {
		if (retain == 0 || (t_rng_below(&r, 2) == 0 && allocs > 0)) {
			allocs--;
			if (data_top >= data_size) {
				data_size += 1000;
				data = realloc(data, data_size * sizeof *data);
				T_ASSERT(data != NULL);
			}
			data[data_top++] = blk_alloc(&r, pick_size(&r, 5));
		} else {
			retained[retain_top++] =
			    blk_alloc(&r, pick_size(&r, 8));
			retain--;
		}
		if (t_rng_below(&r, 100) < 66 && data_top > 0) {
			size_t idx = t_rng_below(&r, data_top);

			blk_free(data[idx]);
			data[idx] = NULL;
		}
		if (t_rng_below(&r, 100) < 8 && data_top > 0) {
			size_t idx = t_rng_below(&r, data_top);

			if (data[idx] != NULL)
				data[idx] = blk_realloc(&r, data[idx]);
		}
		if (t_rng_below(&r, 100) < 25 && data_top > 0) {
			size_t idx = t_rng_below(&r, data_top);
			size_t x = t_rng_below(&r, TRANSFERS);

			data[idx] = atomic_exchange(&transfer[x], data[idx]);
		}
		ops++;
	}
	for (size_t i = 0; i < retain_top; i++)
		blk_free(retained[i]);
	for (size_t i = 0; i < data_top; i++)
		blk_free(data[i]);
	free(retained);
	free(data);
	atomic_fetch_add(&g_ops, ops);
	return NULL;
}

static void
test_cross_thread_stress(void)
{
	unsigned nthreads = (unsigned)t_scale(8), rounds = 6;
	pthread_t *th = calloc(nthreads, sizeof *th);
	struct stress_arg *args = calloc(nthreads, sizeof *args);
	struct t_rng r;
	size_t survivors = 0;
	double t0 = t_now_s();

	T_ASSERT(th != NULL && args != NULL);
	g_seed = t_seed();
	t_rng_init(&r, g_seed, 12345);
	for (unsigned round = 0; round < rounds; round++) {
		for (unsigned i = 0; i < nthreads; i++) {
			args[i].tid = i;
			args[i].round = round;
			args[i].allocs = 6000 * (i % 4 + 1);
			T_EQ(pthread_create(
				 &th[i], NULL, stress_thread, &args[i]),
			    0);
		}
		for (unsigned i = 0; i < nthreads; i++)
			T_EQ(pthread_join(th[i], NULL), 0);
		/* Free half the transfers; the rest outlive the threads. */
		survivors = 0;
		for (size_t i = 0; i < TRANSFERS; i++) {
			if (round + 1 == rounds || t_rng_below(&r, 2) == 0)
				blk_free(atomic_exchange(&transfer[i], NULL));
			else if (atomic_load(&transfer[i]) != NULL)
				survivors++;
		}
		if (round + 2 == rounds)
			printf("   round %u: %zu blocks survive into the "
			       "next threads\n",
			    round, survivors);
	}
	printf("   %u threads x %u rounds, %lu ops in %.2f s\n", nthreads,
	    rounds, atomic_load(&g_ops), t_now_s() - t0);
	free(th);
	free(args);
}

/* ---------------------------------------------------- B.14: churn */

static void *
churn_thread(void *arg)
{
	static const size_t sizes[] = {24, 200, 3000, 40000};
	uintptr_t k = (uintptr_t)arg;
	void *p = malloc(16 + k % 512);
	uint64_t *q;

	T_ASSERT(p != NULL);
	memset(p, 0x11, 16 + k % 512);
	free(p);
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		p = malloc(sizes[i]);
		T_ASSERT(p != NULL);
		memset(p, 0x22, sizes[i]);
		free(p);
	}
	q = malloc(32);
	T_ASSERT(q != NULL);
	q[0] = k;
	q[3] = ~(uint64_t)k;
	return q;
}

static void
test_thread_churn(void)
{
	enum { CONC = 4 };
	uint64_t n = t_scale(10000);
	pthread_t th[CONC];
	long base, end;
	double t0;

	if (n < 1000)
		n = 1000;
	/* Warm up (first thread stacks, arenas), then take the baseline. */
	for (uintptr_t i = 0; i < 200; i++) {
		void *q;

		T_EQ(pthread_create(&th[0], NULL, churn_thread, (void *)i), 0);
		T_EQ(pthread_join(th[0], &q), 0);
		free(q);
	}
	base = t_rss_kib();
	t0 = t_now_s();
	for (uint64_t i = 0; i < n; i += CONC) {
		for (unsigned j = 0; j < CONC; j++)
			T_EQ(pthread_create(&th[j], NULL, churn_thread,
				 (void *)(uintptr_t)(i + j)),
			    0);
		for (unsigned j = 0; j < CONC; j++) {
			uint64_t *q;

			T_EQ(pthread_join(th[j], (void **)&q), 0);
			T_ASSERT(q != NULL);
			T_EQ(q[0], i + j);
			T_EQ(q[3], ~(uint64_t)(i + j));
			free(q);
		}
	}
	end = t_rss_kib();
	printf("   %ju threads in %.2f s: VmRSS %ld -> %ld KiB\n", (uintmax_t)n,
	    t_now_s() - t0, base, end);
	T_LT(end, base + 64 * 1024);
}

/* ---------------------------------------------- B.15: exit race */

static atomic_bool g_stop;

struct inner_arg {
	pthread_barrier_t *barrier;
	void *block; /* malloc-first threads leave theirs to the outer */
	size_t size;
};

static void *
malloc_first_thread(void *arg)
{
	struct inner_arg *a = arg;

	a->block = malloc(a->size);
	T_ASSERT(a->block != NULL);
	memset(a->block, 0x5c, a->size);
	pthread_barrier_wait(a->barrier);
	return NULL;
}

static void *
wait_first_thread(void *arg)
{
	struct inner_arg *a = arg;
	void *p;

	pthread_barrier_wait(a->barrier);
	p = malloc(a->size);
	T_ASSERT(p != NULL);
	memset(p, 0x6d, a->size);
	free(p);
	return NULL;
}

static void *
outer_thread(void *arg)
{
	enum { INNER = 4 };
	pthread_t th[INNER];
	struct inner_arg ia[INNER];
	pthread_barrier_t barrier;
	unsigned long rounds = 0;
	struct t_rng r;

	t_rng_init(&r, g_seed, (unsigned)(uintptr_t)arg);
	while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
		T_EQ(pthread_barrier_init(&barrier, NULL, INNER + 1), 0);
		for (int i = 0; i < INNER; i++) {
			ia[i].barrier = &barrier;
			ia[i].block = NULL;
			ia[i].size = 1 + t_rng_below(&r, 70000);
			T_EQ(pthread_create(&th[i], NULL,
				 i % 2 == 0 ? malloc_first_thread
					    : wait_first_thread,
				 &ia[i]),
			    0);
		}
		pthread_barrier_wait(&barrier);
		for (int i = 0; i < INNER; i++)
			T_EQ(pthread_join(th[i], NULL), 0);
		T_EQ(pthread_barrier_destroy(&barrier), 0);
		/* Free what the exited threads allocated. */
		for (int i = 0; i < INNER; i++) {
			if (ia[i].block == NULL)
				continue;
			for (size_t j = 0; j < ia[i].size; j += 97)
				T_EQ(((uint8_t *)ia[i].block)[j], 0x5c);
			free(ia[i].block);
		}
		rounds++;
	}
	return (void *)rounds;
}

static void
test_thread_exit_race(void)
{
	pthread_t outer[2];
	double secs = (double)t_scale(800) / 1000.0, t0 = t_now_s();
	unsigned long total = 0;

	g_seed = t_seed();
	atomic_store(&g_stop, false);
	for (uintptr_t i = 0; i < 2; i++)
		T_EQ(pthread_create(&outer[i], NULL, outer_thread, (void *)i),
		    0);
	while (t_now_s() - t0 < secs)
		usleep(10000);
	atomic_store(&g_stop, true);
	for (int i = 0; i < 2; i++) {
		void *rounds;

		T_EQ(pthread_join(outer[i], &rounds), 0);
		total += (unsigned long)(uintptr_t)rounds;
	}
	printf("   %lu rounds of 4 inner threads in %.2f s\n", total,
	    t_now_s() - t0);
	T_GT(total, 0);
}

/* --------------------------------- TSD destructors that allocate */

static pthread_key_t g_key;
static atomic_uint g_dtor_calls;

/* Free the value, allocate and touch fresh blocks, re-arm twice. */
static void
tsd_dtor(void *v)
{
	uint64_t *p = v, gen;

	T_ASSERT(p != NULL);
	T_EQ(p[1], ~p[0]);
	gen = p[0];
	free(p);
	for (size_t n = 16; n <= 65536; n *= 4) {
		char *q = malloc(n);

		T_ASSERT(q != NULL);
		memset(q, 0x4b, n);
		free(q);
	}
	atomic_fetch_add(&g_dtor_calls, 1);
	if ((gen & 0xff) < 2) {
		p = malloc(100);
		T_ASSERT(p != NULL);
		p[0] = gen + 1;
		p[1] = ~p[0];
		T_EQ(pthread_setspecific(g_key, p), 0);
	}
}

static void *
tsd_thread(void *arg)
{
	uint64_t *p = malloc(50);

	T_ASSERT(p != NULL);
	p[0] = (uint64_t)(uintptr_t)arg << 8;
	p[1] = ~p[0];
	T_EQ(pthread_setspecific(g_key, p), 0);
	/* Populate whatever per-thread caches the allocator has. */
	for (int i = 0; i < 100; i++)
		free(malloc(16 + (size_t)i * 40));
	return NULL;
}

static void
test_tsd_destructor_alloc(void)
{
	enum { N = 200 };
	pthread_t th;

	T_EQ(pthread_key_create(&g_key, tsd_dtor), 0);
	for (uintptr_t i = 0; i < N; i++) {
		T_EQ(pthread_create(&th, NULL, tsd_thread, (void *)i), 0);
		T_EQ(pthread_join(th, NULL), 0);
	}
	/* Generations 0, 1, 2: three destructor calls per thread. */
	T_EQ(atomic_load(&g_dtor_calls), 3 * N);
	T_EQ(pthread_key_delete(g_key), 0);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	alarm(60);
	/*
	 * Churn first: its RSS bound needs a baseline not inflated by the
	 * stress test's free-but-resident memory.
	 */
	T_RUN_IF(test_thread_churn);
	T_RUN_IF(test_thread_exit_race);
	T_RUN_IF(test_tsd_destructor_alloc);
	T_RUN_IF(test_cross_thread_stress);
	return t_done();
}
