/*
 * kmem_mt.c -- kmem_alloc / kmem_free under threads (label "threads",
 * run under TSan).
 *
 * N workers (4, scaled by KMEM_TEST_SCALE, at least 2) make random
 * allocations of 1..70000 bytes, biased to small sizes, through every
 * entry point (kmem_alloc, kmem_zalloc, kmem_intr_*, KM_SLEEP and
 * KM_NOSLEEP).  Every object is filled over its whole requested size
 * with a pattern made of the allocating thread, a sequence number and
 * the size, and verified in full before it is freed; zalloc results are
 * checked to be zero first.  Objects also move between threads through a
 * lock-protected exchange array, so most frees of a given object happen
 * on another thread (and CPU) than its allocation.  Worker 0 calls
 * kmem_reap / kmem_reap_all during the traffic, worker 1 kmem_check_all
 * (every pool, cache and arena checked while the others allocate).  At the end
 * everything is freed, kmem_reap_all() runs, and then no kmem cache has an
 * object out and the page arena "kva" has exactly its starting bytes in use.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/pool_impl.h"
#include "t.h"

#define NXSLOTS 2048 /* the exchange array */
#define HOLD	384  /* objects a worker holds at most */
#define MAXSIZE 70000

static const size_t classes[] = {8, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192,
    224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048,
    2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336, 16384};
#define NCLASSES (sizeof classes / sizeof classes[0])

struct obj {
	unsigned char *p; /* NULL: empty slot */
	size_t size;
	uint64_t seq;
	unsigned tid; /* allocating worker */
	bool intr;    /* allocated by kmem_intr_*: freed by kmem_intr_free */
};

struct worker {
	pthread_t th;
	unsigned tid;
	uint64_t nops;
	struct t_rng rng;
	struct obj hold[HOLD];
	/* Results. */
	uint64_t nalloc, nfree, nforeign, nzalloc, nnull, nxchg;
};

static uint64_t g_seed;
static uint64_t g_deadline_ns;
static pthread_mutex_t g_xlock = PTHREAD_MUTEX_INITIALIZER;
static struct obj g_xslots[NXSLOTS];
static atomic_ulong g_nreap, g_nreapall;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the pattern ---- */

static uint64_t
obj_key(const struct obj *o)
{
	uint64_t k = ((uint64_t)o->tid << 48) ^ (o->seq << 20) ^ o->size;

	k ^= k >> 29;
	k *= 0xbf58476d1ce4e5b9ull;
	k ^= k >> 32;
	return k | 1;
}

static uint64_t
word_at(uint64_t key, size_t k)
{
	return key ^ ((uint64_t)k * 0x9e3779b97f4a7c15ull);
}

static void
fill(const struct obj *o)
{
	uint64_t key = obj_key(o), *w = (uint64_t *)(void *)o->p;
	size_t nw = o->size / 8, k, j;

	for (k = 0; k < nw; k++)
		w[k] = word_at(key, k);
	for (j = nw * 8; j < o->size; j++)
		o->p[j] = (unsigned char)(word_at(key, nw) >> (8 * (j % 8)));
}

static void
verify(const struct obj *o, unsigned by)
{
	uint64_t key = obj_key(o);
	const uint64_t *w = (const uint64_t *)(const void *)o->p;
	size_t nw = o->size / 8, k, j;

	for (k = 0; k < nw; k++)
		if (w[k] != word_at(key, k))
			T_FAIL("worker %u: object %p (size %zu, worker %u seq "
			       "%" PRIu64 ") word %zu is %#" PRIx64
			       ", expected %#" PRIx64,
			    by, (void *)o->p, o->size, o->tid, o->seq, k, w[k],
			    word_at(key, k));
	for (j = nw * 8; j < o->size; j++)
		if (o->p[j] !=
		    (unsigned char)(word_at(key, nw) >> (8 * (j % 8))))
			T_FAIL("worker %u: object %p (size %zu, worker %u seq "
			       "%" PRIu64 ") byte %zu damaged",
			    by, (void *)o->p, o->size, o->tid, o->seq, j);
}

/* ---- allocation and free ---- */

static size_t
random_size(struct t_rng *r)
{
	uint64_t x = t_rng_below(r, 100);

	if (x < 60)
		return 1 + t_rng_below(r, 128);
	if (x < 85)
		return 129 + t_rng_below(r, 1024 - 128);
	if (x < 96)
		return 1025 + t_rng_below(r, KMEM_CACHE_MAX - 1024);
	return KMEM_CACHE_MAX + 1 + t_rng_below(r, MAXSIZE - KMEM_CACHE_MAX);
}

static void
obj_alloc(struct worker *w, struct obj *o)
{
	size_t n = random_size(&w->rng);
	uint64_t x = t_rng_below(&w->rng, 32);
	km_flag_t fl = (x & 4) ? KM_NOSLEEP : KM_SLEEP;
	bool zero = x < 3;
	size_t i;

	o->intr = (x & 8) != 0;
	if (zero)
		o->p = o->intr ? kmem_intr_zalloc(n, fl) : kmem_zalloc(n, fl);
	else
		o->p = o->intr ? kmem_intr_alloc(n, fl) : kmem_alloc(n, fl);
	if (o->p == NULL) {
		if (fl == KM_SLEEP)
			T_FAIL("KM_SLEEP returned NULL for %zu", n);
		w->nnull++;
		return;
	}
	if (((uintptr_t)o->p & (n < 16 ? 7 : 15)) != 0)
		T_FAIL("kmem_alloc(%zu) = %p: misaligned", n, (void *)o->p);
	if (zero) {
		for (i = 0; i < n; i++)
			if (o->p[i] != 0)
				T_FAIL("zalloc(%zu) = %p: byte %zu is %#x", n,
				    (void *)o->p, i, o->p[i]);
		w->nzalloc++;
	}
	o->size = n;
	o->tid = w->tid;
	o->seq = ++w->nalloc;
	fill(o);
}

static void
obj_free(struct worker *w, struct obj *o)
{
	if (o->p == NULL)
		return;
	verify(o, w->tid);
	if (o->tid != w->tid)
		w->nforeign++;
	if (o->intr)
		kmem_intr_free(o->p, o->size);
	else
		kmem_free(o->p, o->size);
	o->p = NULL;
	w->nfree++;
}

static void
exchange(struct worker *w, struct obj *o)
{
	struct obj tmp;
	size_t j = t_rng_below(&w->rng, NXSLOTS);

	pthread_mutex_lock(&g_xlock);
	tmp = g_xslots[j];
	g_xslots[j] = *o;
	*o = tmp;
	pthread_mutex_unlock(&g_xlock);
	w->nxchg++;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t i;
	size_t k;

	for (i = 0; i < w->nops; i++) {
		struct obj *o = &w->hold[t_rng_below(&w->rng, HOLD)];
		uint64_t x = t_rng_below(&w->rng, 100);

		if ((i & 1023) == 0 && now_ns() > g_deadline_ns)
			break;
		if (x < 45) {
			obj_free(w, o);
			obj_alloc(w, o);
		} else if (x < 70) {
			obj_free(w, o);
		} else if (x < 98) {
			exchange(w, o);
		} else if (o->p != NULL) {
			verify(o, w->tid);
		}
		if (w->tid == 1 && i % 20000 == 9999)
			kmem_check_all(); /* while the others allocate */
		if (w->tid == 0 && i % 5000 == 4999) {
			if (i % 20000 == 19999) {
				kmem_reap_all();
				atomic_fetch_add(&g_nreapall, 1);
			} else {
				kmem_reap();
				atomic_fetch_add(&g_nreap, 1);
			}
		}
	}
	for (k = 0; k < HOLD; k++)
		obj_free(w, &w->hold[k]);
	return NULL;
}

/* ---- the end state ---- */

static uint64_t
kmem_nout(void)
{
	struct kmem_pool_stats st;
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < NCLASSES; i++) {
		pool_cache_t pc = kmem_size_cache(classes[i]);

		T_ASSERT(pc != NULL);
		T_EQ(kmem_pool_cache_stats(pc, &st), 0);
		sum += st.ps_nout;
	}
	return sum;
}

static uint64_t
kva_inuse(void)
{
	struct kmem_vmem_stats st;

	T_EQ(kmem_vmem_stats(kmemi_page_arena(&kmemi_dom0), &st), 0);
	T_EQ(strcmp(st.vs_name, "kva"), 0);
	return st.vs_inuse;
}

static void
test_threads(void)
{
	unsigned nthreads = (unsigned)t_scale(4), i;
	uint64_t nops = t_scale(1000000), inuse0, nout0;
	uint64_t nalloc = 0, nfree = 0, nforeign = 0, nz = 0, nnull = 0;
	uint64_t nx = 0;
	struct obj fin;
	struct worker *w;
	void *p;

	if (nthreads < 2)
		nthreads = 2;
	if (nthreads > 64)
		nthreads = 64;
	p = kmem_alloc(100, KM_SLEEP);
	kmem_free(p, 100);
	kmem_reap_all();
	inuse0 = kva_inuse();
	nout0 = kmem_nout();
	printf("   %u workers x %" PRIu64 " operations; at start: kva in use "
	       "%" PRIu64 ", kmem objects out %" PRIu64 "\n",
	    nthreads, nops, inuse0, nout0);
	T_EQ(nout0, 0);

	w = calloc(nthreads, sizeof *w);
	T_ASSERT(w != NULL);
	g_deadline_ns = now_ns() + 15000000000ull;
	for (i = 0; i < nthreads; i++) {
		w[i].tid = i;
		w[i].nops = nops;
		t_rng_init(&w[i].rng, g_seed, i);
		T_EQ(pthread_create(&w[i].th, NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < nthreads; i++)
		T_EQ(pthread_join(w[i].th, NULL), 0);

	/* The exchange array's leftovers, freed (and verified) here. */
	memset(&fin, 0, sizeof fin);
	{
		struct worker mainw;

		memset(&mainw, 0, sizeof mainw);
		mainw.tid = nthreads;
		for (i = 0; i < NXSLOTS; i++) {
			fin = g_xslots[i];
			obj_free(&mainw, &fin);
			g_xslots[i].p = NULL;
		}
		nfree += mainw.nfree;
		nforeign += mainw.nforeign;
	}
	for (i = 0; i < nthreads; i++) {
		nalloc += w[i].nalloc;
		nfree += w[i].nfree;
		nforeign += w[i].nforeign;
		nz += w[i].nzalloc;
		nnull += w[i].nnull;
		nx += w[i].nxchg;
	}
	printf("   %" PRIu64 " allocations (%" PRIu64 " zeroed, %" PRIu64
	       " KM_NOSLEEP NULL), %" PRIu64 " frees (%" PRIu64
	       " by another thread), %" PRIu64 " exchanges, %lu reaps, %lu "
	       "full reaps\n",
	    nalloc, nz, nnull, nfree, nforeign, nx, atomic_load(&g_nreap),
	    atomic_load(&g_nreapall));
	T_EQ(nalloc, nfree);
	T_GT(nforeign, 0);
	free(w);

	kmem_reap_all();
	T_EQ(kmem_nout(), 0);
	T_EQ(kva_inuse(), inuse0);
	kmem_check_all();
}

int
main(void)
{
	alarm(120);
	g_seed = t_seed();
	kmem_init();
	printf("CPUs: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	T_RUN(test_threads);
	return t_done();
}
