/*
 * malloc_bins.c -- a thread's bins (malloc.c section 12: for every class
 * up to 16 KiB, a stack of free objects per class in each thread, filled
 * from and emptied into the CPU's group half a bin at a time).  The C
 * library's API only: the same binary runs on glibc ("glibc.malloc_bins",
 * the oracle) and on libkmem-malloc.so ("preload.malloc_bins",
 * KMEM_TEST_PRELOAD=1); what only kmem promises is asserted only there.
 *
 *  - thread exit empties the bins: after a warm-up thread, mallinfo2's
 *    uordblks in the main thread is the baseline; 20 threads in a row
 *    each malloc and free 64 blocks of 16, 64, 256, 512, 1024, 2000, 5000
 *    and 16000 bytes (left in its bins: 16 to 64 of the small ones, 2 to
 *    4 of the large) and exit; after each join uordblks is within 8 KiB
 *    of the baseline (what one thread's bins hold is ~78 KiB, a leak of
 *    every thread's ~1.5 MiB).  The same with the mallocs and
 *    frees done in a key's destructor that runs after the bins' own
 *    (tb_exit), and in one that is the thread's first call to malloc
 *    (its bins set up by a destructor, emptied by the next round);
 *  - the calling thread's bins count as free for the introspection it
 *    calls: after 64 blocks of each size freed, mallinfo2 in the same
 *    thread is back at the baseline; a second thread's mallinfo2 sees
 *    them in use (kmem: the first thread's bins hold them) until the
 *    first calls malloc_trim(0), and then is back at the baseline;
 *  - the blocks stay usable and distinct: 4 threads, each with ~2000
 *    live blocks of random sizes (1..256, one in 8 up to 17000: every
 *    class and the large blocks past them), malloc and free at random; a
 *    block gets a pattern from its id (and the id in its first word) and
 *    is checked before its free (a block handed out twice, or written by
 *    the allocator while live, breaks the other's pattern); one free in
 *    16 is of a block that another thread allocated (a shared mailbox);
 *    malloc_usable_size >= the size asked; one block in 8 from calloc,
 *    all zero (bins hold freed, written blocks); the seed printed;
 *  - fork while the forking thread's bins and a parked thread's hold
 *    objects: the child mallocs and frees (from its copy of the bins),
 *    starts and joins a thread, finds the parent's live blocks intact,
 *    exits 0; the parent goes on likewise.  Ten times.
 * (A double free of a bin's object is reported when both copies come
 * out: malloc_errors.c.)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

static void *(*volatile f_malloc)(size_t) = malloc;
static void *(*volatile f_calloc)(size_t, size_t) = calloc;
static void (*volatile f_free)(void *) = free;

static bool on_kmem;

#define SLACK	 ((size_t)8192)
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define NSIZES	 8
#define PER_SIZE 64
static const size_t sizes[NSIZES] = {16, 64, 256, 512, 1024, 2000, 5000, 16000};

static size_t
inuse(void)
{
	return mallinfo2().uordblks;
}

static void
check_near(size_t base, size_t now, const char *what)
{
	size_t d = now > base ? now - base : base - now;

	if (d >= SLACK)
		T_FAIL("%s: uordblks %zu, baseline %zu (%s%zu bytes)", what,
		    now, base, now > base ? "+" : "-", d);
}

/* 64 blocks of each size out and written, then all freed: into bins. */
static void
churn_sizes(void)
{
	void *v[NSIZES * PER_SIZE];
	unsigned int i;

	for (i = 0; i < NSIZES * PER_SIZE; i++) {
		T_ASSERT((v[i] = f_malloc(sizes[i % NSIZES])) != NULL);
		memset(v[i], 0x5a, sizes[i % NSIZES]);
	}
	for (i = 0; i < NSIZES * PER_SIZE; i++)
		f_free(v[i]);
}

static void *
churn_thread(void *arg)
{
	(void)arg;
	churn_sizes();
	return NULL;
}

static void
run_thread(void *(*fn)(void *), void *arg)
{
	pthread_t t;

	T_EQ(pthread_create(&t, NULL, fn, arg), 0);
	T_EQ(pthread_join(t, NULL), 0);
}

/* ---- (a) thread exit empties the bins ---- */

static pthread_key_t late_key;

/* A destructor after the bins' (its key made later): malloc and free. */
static void
late_destructor(void *arg)
{
	(void)arg;
	churn_sizes();
}

/* The thread's only malloc calls are in late_destructor. */
static void *
late_thread(void *arg)
{
	(void)arg;
	T_EQ(pthread_setspecific(late_key, (void *)1), 0);
	return NULL;
}

/* Both: bins in use before, and mallocs again after tb_exit. */
static void *
late_thread2(void *arg)
{
	(void)arg;
	churn_sizes();
	T_EQ(pthread_setspecific(late_key, (void *)1), 0);
	return NULL;
}

static void
t_thread_exit(void)
{
	static const struct {
		void *(*fn)(void *);
		const char *what;
	} kinds[] = {
	    {churn_thread, "after a thread's exit"},
	    {late_thread,
		"after a thread whose mallocs were all in a key's "
		"destructor"},
	    {late_thread2,
		"after a thread that mallocs in a key's "
		"destructor after the bins'"},
	};
	size_t base, now, worst = 0;
	unsigned int k, i;
	char what[160];

	/* Made after kmem's key (set up by the first malloc, before main). */
	T_EQ(pthread_key_create(&late_key, late_destructor), 0);
	for (k = 0; k < NELEM(kinds); k++) {
		run_thread(kinds[k].fn, NULL); /* warm-up: stacks, TLS */
		base = inuse();
		for (i = 0; i < 20; i++) {
			run_thread(kinds[k].fn, NULL);
			now = inuse();
			snprintf(what, sizeof what, "%s (#%u)", kinds[k].what,
			    i + 1);
			if (now > base && now - base > worst)
				worst = now - base;
			check_near(base, now, what);
		}
	}
	printf("   20 threads x 3 kinds: uordblks at most %zu bytes above "
	       "its baseline\n",
	    worst);
	T_EQ(pthread_key_delete(late_key), 0);
}

/* ---- (b) the introspection counts the caller's bins free ---- */

static size_t other_inuse;

static void *
measure_thread(void *arg)
{
	(void)arg;
	other_inuse = inuse();
	return NULL;
}

static size_t
inuse_elsewhere(void)
{
	run_thread(measure_thread, NULL);
	return other_inuse;
}

static void
t_introspect(void)
{
	size_t base, now, other;

	(void)inuse_elsewhere(); /* warm-up */
	base = inuse();
	churn_sizes();
	now = inuse();
	printf("   mallinfo2 here: baseline %zu, after the frees %zu\n", base,
	    now);
	if (on_kmem)
		check_near(base, now, "mallinfo2 after the frees");

	base = inuse_elsewhere();
	churn_sizes();
	other = inuse_elsewhere();
	T_EQ(malloc_trim(0) >= 0, 1);
	now = inuse_elsewhere();
	printf("   mallinfo2 in another thread: baseline %zu, the frees "
	       "in this one's bins %zu, after malloc_trim %zu\n",
	    base, other, now);
	if (on_kmem) {
		/* The premise: another thread does not see this one's bins. */
		T_GE(other, base + 2 * SLACK);
		check_near(base, now, "mallinfo2 elsewhere after malloc_trim");
	}
}

/* ---- (c) blocks usable and distinct, under threads ---- */

#define NTHREADS 4
#define NLIVE	 2000
#define MAXSIZE	 17000

struct blk {
	unsigned char *p;
	size_t size;
	uint64_t id;
};

static uint64_t seed;
static pthread_mutex_t box_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk box[256];

static void
fill(const struct blk *b)
{
	size_t i;

	if (b->size >= sizeof b->id) {
		memcpy(b->p, &b->id, sizeof b->id);
		i = sizeof b->id;
	} else {
		i = 0;
	}
	for (; i < b->size; i++)
		b->p[i] = (unsigned char)(b->id * 131 + i);
}

static void
check(const struct blk *b)
{
	uint64_t id;
	size_t i;

	if (b->size >= sizeof id) {
		memcpy(&id, b->p, sizeof id);
		if (id != b->id)
			T_FAIL("block %p (%zu bytes) id %#llx: its first word "
			       "says %#llx -- handed out twice?",
			    (void *)b->p, b->size, (unsigned long long)b->id,
			    (unsigned long long)id);
		i = sizeof id;
	} else {
		i = 0;
	}
	for (; i < b->size; i++)
		if (b->p[i] != (unsigned char)(b->id * 131 + i))
			T_FAIL("block %p (%zu bytes) id %#llx: byte %zu is "
			       "%#x, not %#x",
			    (void *)b->p, b->size, (unsigned long long)b->id, i,
			    b->p[i], (unsigned char)(b->id * 131 + i));
}

static void
blk_new(struct blk *b, struct t_rng *r, uint64_t id)
{
	b->size = 1 + t_rng_below(r, t_rng_below(r, 8) == 0 ? MAXSIZE : 256);
	b->id = id;
	if (t_rng_below(r, 8) == 0) { /* zeroed, though bins hold dirty ones */
		size_t i;

		T_ASSERT((b->p = f_calloc(1, b->size)) != NULL);
		for (i = 0; i < b->size; i++)
			if (b->p[i] != 0)
				T_FAIL("calloc(1, %zu) = %p: byte %zu is %#x",
				    b->size, (void *)b->p, i, b->p[i]);
	} else {
		T_ASSERT((b->p = f_malloc(b->size)) != NULL);
	}
	T_GE(malloc_usable_size(b->p), b->size);
	fill(b);
}

static void
blk_free(struct blk *b)
{
	check(b);
	f_free(b->p);
	b->p = NULL;
}

static void *
mix_thread(void *arg)
{
	unsigned int tid = (unsigned int)(uintptr_t)arg, i, j;
	uint64_t steps = t_scale(1000000), s, id = (uint64_t)tid << 48;
	struct blk live[NLIVE];
	struct t_rng r;

	t_rng_init(&r, seed, tid);
	for (i = 0; i < NLIVE; i++)
		blk_new(&live[i], &r, ++id);
	for (s = 0; s < steps; s++) {
		i = (unsigned int)t_rng_below(&r, NLIVE);
		if (t_rng_below(&r, 16) == 0) {
			/* Swap with the mailbox: free another thread's. */
			struct blk b;

			j = (unsigned int)t_rng_below(&r, NELEM(box));
			pthread_mutex_lock(&box_lock);
			b = box[j];
			box[j] = live[i];
			pthread_mutex_unlock(&box_lock);
			if (b.p != NULL)
				blk_free(&b);
		} else {
			blk_free(&live[i]);
		}
		blk_new(&live[i], &r, ++id);
		/* Now and then a burst of frees and mallocs of one size. */
		if (t_rng_below(&r, 4096) == 0) {
			unsigned int n = 1 + (unsigned int)t_rng_below(&r, 200);

			for (j = 0; j < n; j++)
				blk_free(&live[(i + j) % NLIVE]);
			for (j = 0; j < n; j++)
				blk_new(&live[(i + j) % NLIVE], &r, ++id);
		}
	}
	for (i = 0; i < NLIVE; i++)
		blk_free(&live[i]);
	return NULL;
}

static void
t_threads(void)
{
	pthread_t t[NTHREADS];
	unsigned int i;

	seed = t_seed();
	for (i = 0; i < NTHREADS; i++)
		T_EQ(pthread_create(
			 &t[i], NULL, mix_thread, (void *)(uintptr_t)i),
		    0);
	for (i = 0; i < NTHREADS; i++)
		T_EQ(pthread_join(t[i], NULL), 0);
	for (i = 0; i < NELEM(box); i++)
		if (box[i].p != NULL)
			blk_free(&box[i]);
}

/* ---- (d) fork with objects in bins ---- */

static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cv = PTHREAD_COND_INITIALIZER;
static int park_state; /* 0 running, 1 parked (bins full), 2 go on */

static void *
parked_thread(void *arg)
{
	(void)arg;
	churn_sizes(); /* its bins hold objects */
	pthread_mutex_lock(&park_lock);
	park_state = 1;
	pthread_cond_broadcast(&park_cv);
	while (park_state != 2)
		pthread_cond_wait(&park_cv, &park_lock);
	pthread_mutex_unlock(&park_lock);
	churn_sizes();
	return NULL;
}

static void
mix_here(struct blk *live, unsigned int n, struct t_rng *r, uint64_t *id,
    unsigned int steps)
{
	unsigned int s, i;

	for (s = 0; s < steps; s++) {
		i = (unsigned int)t_rng_below(r, n);
		blk_free(&live[i]);
		blk_new(&live[i], r, ++*id);
	}
}

static void
t_fork(void)
{
	static struct blk live[500];
	struct t_rng r;
	uint64_t id = 0;
	pthread_t t;
	unsigned int round, i;
	int status;
	pid_t pid;

	t_rng_init(&r, seed, 99);
	for (i = 0; i < NELEM(live); i++)
		blk_new(&live[i], &r, ++id);
	for (round = 0; round < 10; round++) {
		park_state = 0;
		T_EQ(pthread_create(&t, NULL, parked_thread, NULL), 0);
		pthread_mutex_lock(&park_lock);
		while (park_state != 1)
			pthread_cond_wait(&park_cv, &park_lock);
		pthread_mutex_unlock(&park_lock);
		churn_sizes(); /* this thread's bins hold objects */
		mix_here(live, NELEM(live), &r, &id, 1000);
		fflush(stdout);
		pid = fork();
		T_GE(pid, 0);
		if (pid == 0) {
			r.s ^= 0x1234567;
			alarm(60);
			for (i = 0; i < NELEM(live); i++)
				check(&live[i]);
			churn_sizes();
			mix_here(live, NELEM(live), &r, &id, 20000);
			if (pthread_create(&t, NULL, churn_thread, NULL) != 0 ||
			    pthread_join(t, NULL) != 0)
				_exit(3);
			churn_sizes();
			for (i = 0; i < NELEM(live); i++)
				check(&live[i]);
			_exit(0);
		}
		mix_here(live, NELEM(live), &r, &id, 5000);
		pthread_mutex_lock(&park_lock);
		park_state = 2;
		pthread_cond_broadcast(&park_cv);
		pthread_mutex_unlock(&park_lock);
		T_EQ(pthread_join(t, NULL), 0);
		T_EQ(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			T_FAIL(
			    "round %u: the child's status %#x", round, status);
	}
	for (i = 0; i < NELEM(live); i++)
		blk_free(&live[i]);
}

int
main(void)
{
	const char *e = getenv("KMEM_TEST_PRELOAD");

	on_kmem = e != NULL && *e == '1';
	free(malloc(16)); /* kmem set up (its bins' key) if not yet */
	T_RUN(t_thread_exit);
	T_RUN(t_introspect);
	T_RUN(t_threads);
	T_RUN(t_fork);
	return t_done();
}
