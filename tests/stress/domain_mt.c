/*
 * domain_mt.c -- two kmem domains (<kmem/domain.h>) over two regions of
 * the test's own (t_domain.h: counted, checked, junk-filled, freed pages
 * inaccessible; A's source has ps_purge, B's has none), used from several
 * threads at once through every layer:
 *
 *  1. Six workers, three at home in A and three in B (their current
 *     domain).  Each allocates with kmem_alloc / kmem_zalloc (1 byte ..
 *     1 MiB) and kmem_strdup in its home domain, and takes items from
 *     both domains' pools (pool_init with a NULL allocator, 96 and 2600
 *     bytes), caches (pool_cache_init with ctor/dtor) and arenas
 *     (vmem_create importing from the domain's arena; vmem_alloc and
 *     vmem_xalloc), whatever is current.  Every object must lie in its
 *     domain's region; each carries a tag, checked when it is freed.
 *     Objects are freed by their owner with its home, the other domain
 *     or the default current, or handed to another worker through
 *     exchange slots and freed there; now and then a worker calls
 *     kmem_reap in its home domain.
 *  2. Then: an object of A kept, everything else freed and destroyed:
 *     kmem_domain_destroy(A) is EBUSY and gives nothing back; B's is 0
 *     and B's source got back every range it handed out, once.
 *  3. Six workers on A alone (new pool, cache, arena made in A): A works
 *     with B gone.  Then everything freed: destroy(A) is 0 and A's
 *     source got back everything.
 *  Across all three, only domain work is in flight (the test makes no
 *  kmem call in the default domain): the default domain's arena must not
 *  move and kmem must not ask the system for memory (prim's counter).
 *  ctor and dtor calls balance per cache.  The run's seed is printed.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kmem/domain.h>
#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/internal.h"
#include "internal/prim.h"
#include "t.h"
#include "t_domain.h"

#define REGION	    ((size_t)128 << 20)
#define NWORKERS    6
#define HOLD	    64
#define NSLOTS	    16
#define LARGE_MAX   ((size_t)24 << 20) /* large bytes out, all workers */
#define CSIZE	    192
#define CMAGIC_LIVE 0x6c6976656f626a32ull
#define CMAGIC_DEAD 0x646561646f626a32ull

static size_t PS;
static uint64_t g_seed;
static double g_deadline;
static atomic_size_t g_large; /* large kmem bytes out */

static struct tsrc src[2];
static kmem_domain_t *dom[2];
static const char *const dname[2] = {"mt-A", "mt-B"};

/* The structures of each domain. */
static const size_t plsize[2] = {96, 2600};
static struct pool pools[2][2];
static pool_cache_t caches[2];
static vmem_t *arenas[2];

struct cctx {
	int d;
	atomic_ulong nctor, ndtor;
};
static struct cctx cctx[2];

static int
c_ctor(void *arg, void *obj, int flags)
{
	struct cctx *c = arg;

	(void)flags;
	if (!tsrc_in(&src[c->d], obj, CSIZE))
		T_FAIL("ctor of %s's cache: %p not in its region", dname[c->d],
		    obj);
	*(uint64_t *)obj = CMAGIC_LIVE;
	atomic_fetch_add(&c->nctor, 1);
	return 0;
}

static void
c_dtor(void *arg, void *obj)
{
	struct cctx *c = arg;

	if (!tsrc_in(&src[c->d], obj, CSIZE))
		T_FAIL("dtor of %s's cache: %p not in its region", dname[c->d],
		    obj);
	if (*(uint64_t *)obj != CMAGIC_LIVE)
		T_FAIL("dtor: %p not constructed", obj);
	*(uint64_t *)obj = CMAGIC_DEAD;
	atomic_fetch_add(&c->ndtor, 1);
}

/* With domain d current: its pools, cache and arena. */
static void
structures_make(int d)
{
	char name[32];
	int w;

	T_EQ(kmem_domain_switch(dom[d]), kmem_domain_default());
	for (w = 0; w < 2; w++) {
		snprintf(name, sizeof name, "%s-pool-%zu", dname[d], plsize[w]);
		pool_init(
		    &pools[d][w], plsize[w], 0, 0, 0, name, NULL, IPL_NONE);
	}
	cctx[d].d = d;
	atomic_store(&cctx[d].nctor, 0);
	atomic_store(&cctx[d].ndtor, 0);
	snprintf(name, sizeof name, "%s-cache", dname[d]);
	caches[d] = pool_cache_init(
	    CSIZE, 0, 0, 0, name, NULL, IPL_NONE, c_ctor, c_dtor, &cctx[d]);
	snprintf(name, sizeof name, "%s-vm", dname[d]);
	arenas[d] = vmem_create(name, 0, 0, PS, vmem_alloc, vmem_free,
	    kmem_domain_arena(dom[d]), 4 * PS, VM_SLEEP, IPL_NONE);
	T_ASSERT(caches[d] != NULL && arenas[d] != NULL);
	T_EQ(kmem_domain_switch(NULL), dom[d]);
}

/* From whatever is current. */
static void
structures_destroy(int d)
{
	pool_cache_destroy(caches[d]);
	T_EQ(atomic_load(&cctx[d].nctor), atomic_load(&cctx[d].ndtor));
	pool_destroy(&pools[d][0]);
	pool_destroy(&pools[d][1]);
	vmem_destroy(arenas[d]);
	caches[d] = NULL;
	arenas[d] = NULL;
}

/* ---- items ---- */

enum { K_KMEM, K_ZALLOC, K_STR, K_POOL, K_CACHE, K_VMEM, K_XALLOC };

struct item {
	int kind, d, which;
	size_t n;
	void *p;
	uint64_t tag;
};

static void
tag_write(struct item *it)
{
	char *c = it->p;

	if (it->kind == K_STR)
		return;
	if (it->kind == K_CACHE) {
		memcpy(c + 8, &it->tag, 8);
		return;
	}
	if (it->n < 16) {
		memset(c, (int)(it->tag & 0xff), it->n);
		return;
	}
	memcpy(c, &it->tag, 8);
	memcpy(c + it->n - 8, &it->tag, 8);
}

static void
tag_check(const struct item *it)
{
	const char *c = it->p;
	uint64_t a, b;
	char want[32];
	size_t i;

	if (!tsrc_in(&src[it->d], it->p, it->n))
		T_FAIL("kind %d: %p (%zu bytes) left %s's region", it->kind,
		    it->p, it->n, dname[it->d]);
	switch (it->kind) {
	case K_STR:
		snprintf(
		    want, sizeof want, "str-%llx", (unsigned long long)it->tag);
		if (strcmp(it->p, want) != 0)
			T_FAIL("string %p is \"%s\", not \"%s\"", it->p,
			    (const char *)it->p, want);
		return;
	case K_CACHE:
		memcpy(&a, c, 8);
		memcpy(&b, c + 8, 8);
		if (a != CMAGIC_LIVE || b != it->tag)
			T_FAIL("cache object %p: magic %#llx tag %#llx, want "
			       "%#llx",
			    it->p, (unsigned long long)a, (unsigned long long)b,
			    (unsigned long long)it->tag);
		return;
	default:
		break;
	}
	if (it->n < 16) {
		for (i = 0; i < it->n; i++)
			if ((unsigned char)c[i] != (it->tag & 0xff))
				T_FAIL(
				    "%p (%zu bytes) overwritten", it->p, it->n);
		return;
	}
	memcpy(&a, c, 8);
	memcpy(&b, c + it->n - 8, 8);
	if (a != it->tag || b != it->tag)
		T_FAIL("kind %d: %p (%zu bytes) overwritten: %#llx %#llx, "
		       "want %#llx",
		    it->kind, it->p, it->n, (unsigned long long)a,
		    (unsigned long long)b, (unsigned long long)it->tag);
}

static void
item_free(struct item *it)
{
	tag_check(it);
	if ((it->kind == K_KMEM || it->kind == K_ZALLOC) &&
	    it->n > KMEM_CACHE_MAX)
		atomic_fetch_sub(&g_large, it->n);
	switch (it->kind) {
	case K_KMEM:
	case K_ZALLOC:
		kmem_free(it->p, it->n);
		break;
	case K_STR:
		kmem_strfree(it->p);
		break;
	case K_POOL:
		pool_put(&pools[it->d][it->which], it->p);
		break;
	case K_CACHE:
		pool_cache_put(caches[it->d], it->p);
		break;
	case K_VMEM:
		vmem_free(arenas[it->d], (vmem_addr_t)it->p, it->n);
		break;
	case K_XALLOC:
		vmem_xfree(arenas[it->d], (vmem_addr_t)it->p, it->n);
		break;
	}
	it->p = NULL;
}

/* ---- exchange slots ---- */

static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct item slots[NSLOTS];

static struct item
slot_swap(unsigned i, struct item it)
{
	struct item old;

	pthread_mutex_lock(&slot_lock);
	old = slots[i];
	slots[i] = it;
	pthread_mutex_unlock(&slot_lock);
	return old;
}

/* ---- workers ---- */

struct worker {
	pthread_t th;
	int id, home, ndoms;
	uint64_t iters;
	struct t_rng rng;
	struct item held[HOLD];
	unsigned nheld;
	uint64_t serial;
	unsigned long nalloc, nfree, ncross, nswap, nreap;
};

static size_t
small_size(struct t_rng *r)
{
	/* Log-uniform-ish over 1 .. 16384. */
	unsigned sh = (unsigned)t_rng_below(r, 14);

	return 1 + (size_t)t_rng_below(r, (uint64_t)2 << sh);
}

static void
worker_alloc(struct worker *w)
{
	struct t_rng *r = &w->rng;
	struct item it;
	unsigned op = (unsigned)t_rng_below(r, 100);
	vmem_addr_t a;
	char buf[32];

	memset(&it, 0, sizeof it);
	it.tag =
	    ((uint64_t)w->id << 56) ^ (++w->serial * 0x9e3779b97f4a7c15ull);
	it.d = w->home;
	if (op < 40) {
		it.kind = K_KMEM;
		it.n = small_size(r);
		if (op < 3 && atomic_load(&g_large) < LARGE_MAX) {
			it.n =
			    16385 + (size_t)t_rng_below(r, (1u << 20) - 16384);
			atomic_fetch_add(&g_large, it.n);
		}
		it.p = kmem_alloc(it.n, KM_SLEEP);
	} else if (op < 48) {
		it.kind = K_ZALLOC;
		it.n = small_size(r);
		if (op < 41 && atomic_load(&g_large) < LARGE_MAX) {
			it.n =
			    16385 + (size_t)t_rng_below(r, (1u << 20) - 16384);
			atomic_fetch_add(&g_large, it.n);
		}
		it.p = kmem_zalloc(it.n, KM_SLEEP);
		T_ASSERT(it.p != NULL);
		if (((char *)it.p)[0] != 0 || ((char *)it.p)[it.n - 1] != 0 ||
		    ((char *)it.p)[it.n / 2] != 0)
			T_FAIL("kmem_zalloc(%zu) = %p not zeroed", it.n, it.p);
	} else if (op < 52) {
		it.kind = K_STR;
		snprintf(
		    buf, sizeof buf, "str-%llx", (unsigned long long)it.tag);
		it.n = strlen(buf) + 1;
		it.p = kmem_strdup(buf, KM_SLEEP);
	} else if (op < 70) {
		it.kind = K_POOL;
		it.d = (int)t_rng_below(r, (uint64_t)w->ndoms);
		it.which = (int)t_rng_below(r, 2);
		it.n = plsize[it.which];
		it.p = pool_get(&pools[it.d][it.which], PR_WAITOK);
	} else if (op < 88) {
		it.kind = K_CACHE;
		it.d = (int)t_rng_below(r, (uint64_t)w->ndoms);
		it.n = CSIZE;
		it.p = pool_cache_get(caches[it.d], PR_WAITOK);
		T_ASSERT(it.p != NULL);
		if (*(uint64_t *)it.p != CMAGIC_LIVE)
			T_FAIL("pool_cache_get: %p not constructed", it.p);
	} else {
		it.kind = op < 96 ? K_VMEM : K_XALLOC;
		it.d = (int)t_rng_below(r, (uint64_t)w->ndoms);
		it.n = PS * (size_t)(1 + t_rng_below(r, 8));
		if (it.kind == K_VMEM)
			T_EQ(vmem_alloc(arenas[it.d], it.n,
				 VM_SLEEP | VM_INSTANTFIT, &a),
			    0);
		else {
			T_EQ(vmem_xalloc(arenas[it.d], it.n, 4 * PS, 0, 0,
				 VMEM_ADDR_MIN, VMEM_ADDR_MAX,
				 VM_SLEEP | VM_INSTANTFIT, &a),
			    0);
			T_EQ(a % (4 * PS), 0);
		}
		it.p = (void *)a;
	}
	T_ASSERT(it.p != NULL);
	if (!tsrc_in(&src[it.d], it.p, it.n))
		T_FAIL("worker %d (home %s), kind %d: %p (%zu bytes) is not "
		       "in %s's region",
		    w->id, dname[w->home], it.kind, it.p, it.n, dname[it.d]);
	tag_write(&it);
	w->held[w->nheld++] = it;
	w->nalloc++;
}

/* Free it with the home, the other or the default domain current. */
static void
worker_free_item(struct worker *w, struct item *it)
{
	unsigned c = (unsigned)t_rng_below(&w->rng, 3);
	bool sw = c == 0 || (c == 1 && w->ndoms == 2);

	if (sw) { /* 0: the default; 1: the other domain */
		T_EQ(kmem_domain_switch(c == 0 ? NULL : dom[(w->home + 1) % 2]),
		    dom[w->home]);
		w->ncross++;
	}
	item_free(it);
	if (sw)
		kmem_domain_switch(dom[w->home]);
	w->nfree++;
}

static void
worker_free(struct worker *w)
{
	unsigned i = (unsigned)t_rng_below(&w->rng, w->nheld);
	struct item it = w->held[i];

	w->held[i] = w->held[--w->nheld];
	if (t_rng_below(&w->rng, 5) == 0) {
		/* To another worker, which frees what we find there. */
		it = slot_swap((unsigned)t_rng_below(&w->rng, NSLOTS), it);
		w->nswap++;
		if (it.p == NULL)
			return;
	}
	worker_free_item(w, &it);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t i;

	T_EQ(kmem_domain_current(), kmem_domain_default());
	kmem_domain_switch(dom[w->home]);
	for (i = 0; i < w->iters; i++) {
		if ((i & 1023) == 0 && t_now_s() > g_deadline)
			break;
		if (w->nheld == HOLD ||
		    (w->nheld > 0 && t_rng_below(&w->rng, 100) < 45))
			worker_free(w);
		else
			worker_alloc(w);
		if (t_rng_below(&w->rng, 4096) == 0) {
			kmem_reap(); /* in the home domain */
			w->nreap++;
		}
	}
	while (w->nheld > 0)
		worker_free(w);
	kmem_domain_switch(NULL);
	return NULL;
}

static void
run_workers(int ndoms, uint64_t iters)
{
	static struct worker ws[NWORKERS];
	unsigned long nalloc = 0, nfree = 0, ncross = 0, nswap = 0, nreap = 0;
	double t0 = t_now_s();
	int i;

	g_deadline = t0 + 8.0;
	for (i = 0; i < NWORKERS; i++) {
		memset(&ws[i], 0, sizeof ws[i]);
		ws[i].id = i;
		ws[i].ndoms = ndoms;
		ws[i].home = ndoms == 2 ? i % 2 : 0;
		ws[i].iters = iters;
		t_rng_init(&ws[i].rng, g_seed + (uint64_t)ndoms, (unsigned)i);
		T_EQ(pthread_create(&ws[i].th, NULL, worker_main, &ws[i]), 0);
	}
	for (i = 0; i < NWORKERS; i++) {
		T_EQ(pthread_join(ws[i].th, NULL), 0);
		nalloc += ws[i].nalloc;
		nfree += ws[i].nfree;
		ncross += ws[i].ncross;
		nswap += ws[i].nswap;
		nreap += ws[i].nreap;
	}
	/* What is left in the slots, freed from the default. */
	for (i = 0; i < NSLOTS; i++)
		if (slots[i].p != NULL) {
			item_free(&slots[i]);
			nfree++;
		}
	printf("   %d workers on %d domain(s), %.2f s: %lu allocations, %lu "
	       "frees (%lu with another domain current, %lu through "
	       "slots), %lu reaps\n",
	    NWORKERS, ndoms, t_now_s() - t0, nalloc, nfree, ncross, nswap,
	    nreap);
	fflush(stdout);
	T_EQ(nalloc, nfree);
}

static void
t_two_domains(void)
{
	struct kmem_page_source ops;
	struct tdef_mark m;
	uint64_t iters = t_scale(80000), in0, busy_gave;
	void *keep;
	int d;

	kmem_init();
	kmem_prim_fault_set(0, false);
	m = tdef_mark();
	for (d = 0; d < 2; d++) {
		tsrc_init(&src[d], REGION, true);
		ops = tsrc_ops(&src[d], d == 0); /* B: no ps_purge */
		dom[d] = kmem_domain_create(dname[d], &ops);
		T_ASSERT(dom[d] != NULL);
		structures_make(d);
	}

	/* 1. Both domains, every layer, from every thread. */
	run_workers(2, iters);

	/* 2. A kept busy by one object; B destroyed. */
	kmem_domain_switch(dom[0]);
	keep = kmem_alloc(5000, KM_SLEEP);
	T_ASSERT(tsrc_live(&src[0], keep, 5000));
	memset(keep, 0x6b, 5000);
	kmem_domain_switch(NULL);
	structures_destroy(0);
	structures_destroy(1);
	/*
	 * "EBUSY (nothing freed)": not a page back to the source either
	 * (checked at the end, so that a failure here hides nothing).
	 */
	in0 = tsrc_bytes_in(&src[0]);
	T_EQ(kmem_domain_destroy(dom[0]), EBUSY);
	busy_gave = tsrc_bytes_in(&src[0]) - in0;
	T_EQ(kmem_domain_destroy(dom[1]), 0);
	tsrc_print(&src[1], dname[1]);
	tsrc_check_empty(&src[1]);

	/* 3. A alone goes on. */
	structures_make(0);
	run_workers(1, iters / 2);
	structures_destroy(0);
	T_EQ(kmem_domain_destroy(dom[0]), EBUSY);
	for (d = 0; d < 5000; d++)
		T_EQ(((unsigned char *)keep)[d], 0x6b);
	kmem_free(keep, 5000);
	T_EQ(kmem_domain_destroy(dom[0]), 0);
	tsrc_print(&src[0], dname[0]);
	tsrc_check_empty(&src[0]);

	T_EQ(kmem_prim_fault_calls(), 0);
	tdef_unchanged(&m);
	tsrc_fini(&src[0]);
	tsrc_fini(&src[1]);
	if (busy_gave != 0)
		T_FAIL("kmem_domain_destroy returned EBUSY but gave %llu bytes "
		       "back to the source",
		    (unsigned long long)busy_gave);
}

int
main(int argc, char **argv)
{
	PS = (size_t)sysconf(_SC_PAGESIZE);
	t_args(argc, argv);
	g_seed = t_seed();
	T_RUN_IF(t_two_domains);
	return t_done();
}
