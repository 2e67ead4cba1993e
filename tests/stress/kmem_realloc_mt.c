/*
 * kmem_realloc_mt.c -- kva's new paths under threads (issue 12's review):
 * large blocks resized in place or moved by the OS (kmemi_large_realloc:
 * kmemi_vmem_resize, kmem_prim_remap), imported spans merging and going
 * back in pieces, budgeted purges before imports, and the tick -- all at
 * once.  Threaded: in the TSan set.
 *
 *  - two threads keep 6 large blocks each (20 pages to 6 MiB), allocated
 *    with kmem_alloc, every page stamped with (thread, slot, generation);
 *    each step frees one, allocates one, or resizes one by
 *    kmemi_large_realloc (grow or shrink; copied by hand when it says
 *    NULL), checking the stamps of every page the block keeps;
 *  - two threads make small kmem_alloc/kmem_free pairs and call
 *    kmemi_tick every 512 of them (malloc's free does, on the fast path);
 *  - one thread runs kva's pass when due, and now and then kmem_reap()
 *    (a pass over everything) and kmem_vmem_check(kva).
 * KMEM_OPTIONS=purge_delay_ms=1,reap_tick_ms=1: passes all the time.
 * Pass: every stamp intact, kva consistent throughout, and nothing left
 * in use at the end.  2 s (t_scale).  Also run with KMEM_DEBUG=check
 * (stress.kmem_realloc_check_mt: every slow path checks the arenas);
 * other debugging is skipped (kmemi_large_realloc is for blocks without
 * it, as malloc's realloc_common calls it).  Passes on e795f9e too: a
 * coverage test of the new paths, which found no bug of its own.
 */
#include "t.h"

#include <pthread.h>
#include <stdatomic.h>

#include <kmem/kmem.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/pool_impl.h"

#define PG    ((size_t)4096)
#define NBLK  6
#define NBIG  2
#define NSML  2
#define MINPG 20
#define MAXPG 1536

static atomic_int stop;
static atomic_long nresized, nmoved_or_copied, nticks;
static uint64_t g_seed;

struct blk {
	uint64_t *p;
	size_t size; /* page-rounded */
	uint64_t stamp;
};

static size_t
rand_size(struct t_rng *r)
{
	return (MINPG + (size_t)t_rng_below(r, MAXPG - MINPG)) * PG;
}

static void
stamp(struct blk *b, size_t from)
{
	for (size_t off = from; off < b->size; off += PG)
		b->p[off / sizeof(uint64_t)] = b->stamp + off;
}

static void
check(const struct blk *b, size_t upto)
{
	for (size_t off = 0; off < upto; off += PG)
		if (b->p[off / sizeof(uint64_t)] != b->stamp + off)
			T_FAIL(
			    "block %p (%zu bytes): page at %zu is %#llx, not "
			    "%#llx",
			    (void *)b->p, b->size, off,
			    (unsigned long long)b->p[off / sizeof(uint64_t)],
			    (unsigned long long)(b->stamp + off));
}

static void
resize(struct blk *b, size_t nsize)
{
	nsize = (nsize + PG - 1) & ~(PG - 1);
	size_t keep = nsize < b->size ? nsize : b->size;
	uint64_t *q = kmemi_large_realloc(b->p, b->size, nsize);

	if (q != NULL) {
		atomic_fetch_add(&nresized, 1);
	} else {
		q = kmem_alloc(nsize, KM_SLEEP);
		memcpy(q, b->p, keep);
		kmem_free(b->p, b->size);
		atomic_fetch_add(&nmoved_or_copied, 1);
	}
	b->p = q;
	b->size = nsize;
	check(b, keep);
	stamp(b, keep);
}

static void *
big_thread(void *arg)
{
	unsigned tid = (unsigned)(uintptr_t)arg, i;
	struct blk b[NBLK];
	uint64_t gen = 0;
	struct t_rng r;

	t_rng_init(&r, g_seed, tid);
	memset(b, 0, sizeof b);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		struct blk *x = &b[t_rng_below(&r, NBLK)];
		unsigned op = (unsigned)t_rng_below(&r, 8);

		if (x->p == NULL) {
			x->size = rand_size(&r);
			x->p = kmem_alloc(x->size, KM_SLEEP);
			x->stamp = ((uint64_t)tid << 56) ^ (++gen << 32);
			stamp(x, 0);
		} else if (op < 2) {
			check(x, x->size);
			kmem_free(x->p, x->size);
			x->p = NULL;
		} else if (op < 6) { /* grow, often a little */
			size_t n = x->size +
			    (op & 1 ? PG * (1 + t_rng_below(&r, 64)) : x->size);

			if (n > MAXPG * PG * 2)
				n = rand_size(&r);
			resize(x, n);
		} else { /* shrink, at least to half */
			size_t n = x->size / 2 + PG * t_rng_below(&r, 8);

			if (n < MINPG * PG)
				n = MINPG * PG;
			resize(x, n);
		}
	}
	for (i = 0; i < NBLK; i++)
		if (b[i].p != NULL) {
			check(&b[i], b[i].size);
			kmem_free(b[i].p, b[i].size);
		}
	return NULL;
}

static void *
small_thread(void *arg)
{
	struct t_rng r;
	unsigned long n = 0;

	t_rng_init(&r, g_seed, 100 + (unsigned)(uintptr_t)arg);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		size_t sz = 16 + (size_t)t_rng_below(&r, 2048);
		char *p = kmem_alloc(sz, KM_SLEEP);

		p[0] = p[sz - 1] = 1;
		kmem_free(p, sz);
		if (++n % 512 == 0) {
			kmemi_tick();
			atomic_fetch_add(&nticks, 1);
		}
	}
	return NULL;
}

static void *
purge_thread(void *arg)
{
	vmem_t *kva = kmemi_page_arena(&kmemi_dom0);
	unsigned n = 0;

	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		struct timespec ts = {0, 200000};

		kmemi_page_arena_purge(&kmemi_dom0, false);
		if (++n % 50 == 0)
			kmem_reap();
		if (n % 10 == 0)
			kmem_vmem_check(kva);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void
test_realloc_mt(void)
{
	pthread_t t[NBIG + NSML + 1];
	struct kmem_vmem_stats st;
	struct timespec ts;
	unsigned i, nt = 0;
	double secs = 2.0 * (double)t_scale(100) / 100.0, t0;

	/* kva exists before the threads race to make it. */
	kmem_free(kmem_alloc(MINPG * PG, KM_SLEEP), MINPG * PG);
	for (i = 0; i < NBIG; i++)
		T_EQ(pthread_create(
			 &t[nt++], NULL, big_thread, (void *)(uintptr_t)i),
		    0);
	for (i = 0; i < NSML; i++)
		T_EQ(pthread_create(
			 &t[nt++], NULL, small_thread, (void *)(uintptr_t)i),
		    0);
	T_EQ(pthread_create(&t[nt++], NULL, purge_thread, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	do {
		struct timespec s = {0, 10000000};

		nanosleep(&s, NULL);
		clock_gettime(CLOCK_MONOTONIC, &ts);
	} while ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9 - t0 < secs);
	atomic_store(&stop, 1);
	for (i = 0; i < nt; i++)
		T_EQ(pthread_join(t[i], NULL), 0);
	kmem_reap_all();
	kmem_vmem_check(kmemi_page_arena(&kmemi_dom0));
	T_EQ(kmem_vmem_stats(kmemi_page_arena(&kmemi_dom0), &st), 0);
	printf("   %ld resized in place or moved, %ld copied, %ld ticks; kva "
	       "in use at the end %zu\n",
	    atomic_load(&nresized), atomic_load(&nmoved_or_copied),
	    atomic_load(&nticks), (size_t)st.vs_inuse);
	T_EQ(st.vs_inuse, 0);
	T_GT(atomic_load(&nresized), 0);
}

int
main(int argc, char **argv)
{
	if (getenv("KMEM_DEBUG") != NULL &&
	    strcmp(getenv("KMEM_DEBUG"), "check") != 0)
		t_skip("kmemi_large_realloc is malloc's, without debugging");
	/* Before kmem reads its options (the first allocation). */
	setenv("KMEM_OPTIONS", "purge_delay_ms=1,reap_tick_ms=1", 1);
	g_seed = t_seed();
	t_args(argc, argv);
	T_RUN_IF(test_realloc_mt);
	return t_done();
}
