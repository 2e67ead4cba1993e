/*
 * domain.c -- kmem domains (<kmem/domain.h>) from one thread, over page
 * sources of the test's own (t_domain.h: pieces of a reserved region,
 * counted, checked, junk-filled, freed pages made inaccessible):
 *
 *   - api: the default domain ("default", an arena, current at start);
 *     create does not switch; switch returns the previous domain, NULL
 *     and the default's handle both mean the default; the current domain
 *     is per thread (a new thread starts on the default, its switch does
 *     not move ours); the domain's arena hands out its region's pages; a
 *     thread that exits with the domain current does not keep it busy.
 *   - layers: with a domain current, kmem_alloc/zalloc (1 byte .. 1 MiB),
 *     the string helpers, vmem_create (an arena importing from the
 *     domain's, and one over a bare span: only tags and hash), pool_init
 *     with a NULL allocator (small and large items), pool_cache_init
 *     with ctor/dtor: every object lies in pages of the region the
 *     source has out; zalloc is zero over junk; destroy returns 0 with
 *     no reap before it, and the source got back every range it handed
 *     out, once.  While it all runs, the default domain's arena does not
 *     move and kmem asks the system for no memory (prim's counter).  Run
 *     over a source with ps_purge and freed pages protected, and over one
 *     without ps_purge whose pages stay mapped.
 *   - cross: objects of A freed with B or the default current, A's pool,
 *     cache and arena used with B current: memory from A; B's later
 *     allocations never hand out A's addresses; A destroyed while B has
 *     objects out, B goes on working, then is destroyed.
 *   - busy: destroy with one thing of each kind alive -- small, large,
 *     zeroed and string objects, an empty arena, an arena over a bare
 *     span, an empty pool, a pool with an item out, an empty cache, a
 *     cache with an object out -- made after objects of a few sizes were
 *     freed into the domain's caches -- is EBUSY, gives nothing back to
 *     the source ("nothing freed"), leaves the object intact and the
 *     domain usable; with the thing gone, 0.
 *   - reap: after 4 MiB of small objects are freed, kmem_reap_all with
 *     the domain current gives what the caches kept of their pages back
 *     to the domain's arena (at least half of it);
 *     kmem_reap then purges through ps_purge; the purged (junk-filled)
 *     pages are used again correctly.
 *   - stats: with a domain current the statistics show its pools and
 *     arenas; kmem_pool_stats and kmem_vmem_stats of a domain's pool and
 *     arena from the default.  stats_only_current: and not the default's,
 *     and the other way round (one reading of "statistics calls work in
 *     d"; the other would be every domain's rows everywhere).
 *   - errors, each in a child that must die in kmem_panic (SIGABRT, one
 *     "kmem: " line, key words checked): a source returning memory off
 *     its alignment (by 64 bytes; by a page when asked for more than a
 *     page), destroying the default, destroying twice (freed pages
 *     junk-filled, or inaccessible), switching to a destroyed domain, a
 *     pool_put or pool_cache_put of A's object into B's pool or cache.
 */
#include <pthread.h>
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

#define REGION ((size_t)64 << 20)

static size_t PS;

/* Every byte of [p, p + n) is c (one memcmp: cheap under sanitizers). */
static bool
all_bytes(const void *p, size_t n, unsigned char c)
{
	const unsigned char *b = p;

	return n == 0 || (b[0] == c && memcmp(b, b + 1, n - 1) == 0);
}

static struct kmem_vmem_stats
vstats(vmem_t *vm)
{
	struct kmem_vmem_stats st;

	memset(&st, 0, sizeof st);
	st.vs_size = sizeof st;
	T_EQ(kmem_vmem_stats(vm, &st), 0);
	return st;
}

/* ---- a cache's ctor and dtor: objects must be in the source's pages ---- */

#define CMAGIC_LIVE 0x6c6976656f626a31ull
#define CMAGIC_DEAD 0x646561646f626a31ull

struct cctx {
	struct tsrc *s;
	size_t size;
	unsigned long nctor, ndtor;
};

static int
c_ctor(void *arg, void *obj, int flags)
{
	struct cctx *c = arg;

	(void)flags;
	if (!tsrc_live(c->s, obj, c->size))
		T_FAIL("ctor: object %p is not in the domain's pages", obj);
	*(uint64_t *)obj = CMAGIC_LIVE;
	c->nctor++;
	return 0;
}

static void
c_dtor(void *arg, void *obj)
{
	struct cctx *c = arg;

	if (!tsrc_live(c->s, obj, c->size))
		T_FAIL("dtor: object %p is not in the domain's pages", obj);
	if (*(uint64_t *)obj != CMAGIC_LIVE)
		T_FAIL("dtor: object %p not constructed", obj);
	*(uint64_t *)obj = CMAGIC_DEAD;
	c->ndtor++;
}

/* ---- every layer in a domain ---- */

static const size_t ksizes[] = {1, 8, 16, 24, 100, 128, 500, 1000, 4096, 5000,
    16384, 16385, 20000, 65536, 100000, (size_t)1 << 20};
#define NK   KMEM_ARRAY_SIZE(ksizes)
#define KREP 4
#define NVA  32
#define NSP  2000
#define NPL  300

/*
 * With d current: objects of every kind, each checked to lie in pages s
 * has out, written, verified, freed; every structure destroyed.  The
 * previous domain is current again on return.
 */
static void
work_all(struct tsrc *s, kmem_domain_t *d)
{
	static void *kp[NK][KREP], *zp[NK][KREP];
	static vmem_addr_t va[NVA], sa[NSP];
	static void *pl[2][NPL], *co[NPL];
	static struct pool pools[2];
	static const size_t plsize[2] = {64, 3000};
	kmem_domain_t *prev = kmem_domain_switch(d);
	struct cctx cc = {s, 200, 0, 0};
	char *s1, *s2, *s3, *s4;
	vmem_t *vm, *span;
	vmem_addr_t xa;
	pool_cache_t pc;
	size_t i, r, len;

	T_EQ(kmem_domain_current(), d);
	for (i = 0; i < NK; i++)
		for (r = 0; r < KREP; r++) {
			kp[i][r] = kmem_alloc(ksizes[i], KM_SLEEP);
			T_ASSERT(kp[i][r] != NULL);
			if (!tsrc_live(s, kp[i][r], ksizes[i]))
				T_FAIL("kmem_alloc(%zu) = %p, not in the "
				       "domain's pages",
				    ksizes[i], kp[i][r]);
			memset(kp[i][r], (int)(0x40 + r), ksizes[i]);
			zp[i][r] = kmem_zalloc(ksizes[i], KM_SLEEP);
			T_ASSERT(zp[i][r] != NULL);
			if (!tsrc_live(s, zp[i][r], ksizes[i]))
				T_FAIL("kmem_zalloc(%zu) = %p, not in the "
				       "domain's pages",
				    ksizes[i], zp[i][r]);
			if (!all_bytes(zp[i][r], ksizes[i], 0))
				T_FAIL("kmem_zalloc(%zu) = %p is not zeroed",
				    ksizes[i], zp[i][r]);
			memset(zp[i][r], (int)(0x60 + r), ksizes[i]);
		}

	s1 = kmem_strdup("a string in a domain", KM_SLEEP);
	s2 = kmem_strdupsize("abcdef", &len, KM_SLEEP);
	s3 = kmem_strndup("abcdefgh", 3, KM_SLEEP);
	s4 = kmem_asprintf("n=%d", 42);
	T_ASSERT(s1 != NULL && s2 != NULL && s3 != NULL && s4 != NULL);
	T_ASSERT(strcmp(s1, "a string in a domain") == 0);
	T_ASSERT(strcmp(s2, "abcdef") == 0);
	T_EQ(len, 7);
	T_ASSERT(strcmp(s3, "abc") == 0);
	T_ASSERT(strcmp(s4, "n=42") == 0);
	T_ASSERT(tsrc_live(s, s1, strlen(s1) + 1));
	T_ASSERT(tsrc_live(s, s2, 7));
	T_ASSERT(tsrc_live(s, s3, 4));
	T_ASSERT(tsrc_live(s, s4, 5));

	/* An arena importing from the domain's page arena. */
	vm = vmem_create("dom-vm", 0, 0, PS, vmem_alloc, vmem_free,
	    kmem_domain_arena(d), 4 * PS, VM_SLEEP, IPL_NONE);
	T_ASSERT(vm != NULL);
	for (i = 0; i < NVA; i++) {
		size_t n = PS * (1 + i % 9);

		T_EQ(vmem_alloc(vm, n, VM_SLEEP | VM_INSTANTFIT, &va[i]), 0);
		if (!tsrc_live(s, (void *)va[i], n))
			T_FAIL("vmem_alloc(%zu) = %#jx, not in the domain's "
			       "pages",
			    n, (uintmax_t)va[i]);
		memset((void *)va[i], (int)i, n);
	}
	T_EQ(vmem_xalloc(vm, 3 * PS, 16 * PS, 0, 0, VMEM_ADDR_MIN,
		 VMEM_ADDR_MAX, VM_SLEEP | VM_BESTFIT, &xa),
	    0);
	T_EQ(xa % (16 * PS), 0);
	T_ASSERT(tsrc_live(s, (void *)xa, 3 * PS));
	memset((void *)xa, 0x77, 3 * PS);

	/* An arena over a bare span: the domain gives its tags and hash. */
	span = vmem_create("dom-span", (vmem_addr_t)1 << 32,
	    (vmem_size_t)1 << 28, 16, NULL, NULL, NULL, 0, VM_SLEEP, IPL_NONE);
	T_ASSERT(span != NULL);
	for (i = 0; i < NSP; i++)
		T_EQ(vmem_alloc(span, 16 * (1 + i % 256),
			 VM_SLEEP | VM_INSTANTFIT, &sa[i]),
		    0);

	/* Pools with the NULL allocator: pages from the domain. */
	for (i = 0; i < 2; i++) {
		pool_init(&pools[i], plsize[i], 0, 0, 0,
		    i == 0 ? "dom-pool-64" : "dom-pool-3000", NULL, IPL_NONE);
		for (r = 0; r < NPL; r++) {
			pl[i][r] = pool_get(&pools[i], PR_WAITOK);
			T_ASSERT(pl[i][r] != NULL);
			if (!tsrc_live(s, pl[i][r], plsize[i]))
				T_FAIL("pool_get(%zu) = %p, not in the "
				       "domain's pages",
				    plsize[i], pl[i][r]);
			memset(pl[i][r], (int)(i + 1), plsize[i]);
		}
	}

	pc = pool_cache_init(
	    cc.size, 0, 0, 0, "dom-cache", NULL, IPL_NONE, c_ctor, c_dtor, &cc);
	T_ASSERT(pc != NULL);
	for (r = 0; r < NPL; r++) {
		co[r] = pool_cache_get(pc, PR_WAITOK);
		T_ASSERT(co[r] != NULL);
		T_ASSERT(tsrc_live(s, co[r], cc.size));
		T_EQ(*(uint64_t *)co[r], CMAGIC_LIVE);
		memset((char *)co[r] + 8, 0x33, cc.size - 8);
	}

	/* Everything intact, then everything back. */
	for (r = 0; r < NPL; r++) {
		T_EQ(*(uint64_t *)co[r], CMAGIC_LIVE);
		T_ASSERT(all_bytes((char *)co[r] + 8, cc.size - 8, 0x33));
		pool_cache_put(pc, co[r]);
	}
	pool_cache_destroy(pc);
	T_GE(cc.nctor, 1);
	T_EQ(cc.nctor, cc.ndtor);
	for (i = 0; i < 2; i++) {
		for (r = 0; r < NPL; r++) {
			T_ASSERT(all_bytes(
			    pl[i][r], plsize[i], (unsigned char)(i + 1)));
			pool_put(&pools[i], pl[i][r]);
		}
		pool_destroy(&pools[i]);
	}
	for (i = 0; i < NSP; i++)
		vmem_free(span, sa[i], 16 * (1 + i % 256));
	vmem_destroy(span);
	T_ASSERT(all_bytes((void *)xa, 3 * PS, 0x77));
	vmem_xfree(vm, xa, 3 * PS);
	for (i = 0; i < NVA; i++) {
		size_t n = PS * (1 + i % 9);

		T_ASSERT(all_bytes((void *)va[i], n, (unsigned char)i));
		vmem_free(vm, va[i], n);
	}
	vmem_destroy(vm);
	kmem_strfree(s1);
	kmem_strfree(s2);
	kmem_strfree(s3);
	kmem_strfree(s4);
	for (i = 0; i < NK; i++)
		for (r = 0; r < KREP; r++) {
			T_ASSERT(all_bytes(
			    kp[i][r], ksizes[i], (unsigned char)(0x40 + r)));
			T_ASSERT(all_bytes(
			    zp[i][r], ksizes[i], (unsigned char)(0x60 + r)));
			kmem_free(kp[i][r], ksizes[i]);
			kmem_free(zp[i][r], ksizes[i]);
		}
	T_EQ(kmem_domain_switch(prev), d);
}

/* Start counting kmem's requests to the system, and mark the default. */
static struct tdef_mark
quiet_begin(void)
{
	kmem_init();
	kmem_prim_fault_set(0, false);
	return tdef_mark();
}

/* Nothing asked of the system, the default's arena as it was. */
static void
quiet_end(const struct tdef_mark *m)
{
	T_EQ(kmem_prim_fault_calls(), 0);
	tdef_unchanged(m);
}

/* ---- api ---- */

static void *
th_current(void *arg)
{
	kmem_domain_t **out = arg;

	out[0] = kmem_domain_current();
	out[1] = kmem_domain_switch(out[2]); /* the previous: the default */
	out[3] = kmem_domain_current();
	return NULL;
}

static void
t_api(void)
{
	struct tsrc s, s2;
	struct kmem_page_source src;
	kmem_domain_t *def = kmem_domain_default(), *d, *e, *seen[4];
	vmem_addr_t a;
	pthread_t th;

	tsrc_init(&s, REGION, true);
	tsrc_init(&s2, REGION, false);
	T_ASSERT(def != NULL);
	T_EQ(kmem_domain_current(), def);
	T_ASSERT(strcmp(kmem_domain_name(def), "default") == 0);
	T_ASSERT(kmem_domain_arena(def) != NULL);

	src = tsrc_ops(&s, true);
	d = kmem_domain_create("api-d", &src);
	memset(&src, 0, sizeof src); /* the domain keeps its own copy */
	T_ASSERT(d != NULL);
	T_NE(d, def);
	T_ASSERT(strcmp(kmem_domain_name(d), "api-d") == 0);
	T_ASSERT(kmem_domain_arena(d) != NULL);
	T_NE(kmem_domain_arena(d), kmem_domain_arena(def));
	T_EQ(kmem_domain_current(), def); /* create does not switch */

	T_EQ(kmem_domain_switch(d), def);
	T_EQ(kmem_domain_current(), d);
	T_EQ(kmem_domain_switch(d), d);

	/* A new thread starts on the default; its switch is its own. */
	seen[2] = d;
	T_EQ(pthread_create(&th, NULL, th_current, seen), 0);
	T_EQ(pthread_join(th, NULL), 0);
	T_EQ(seen[0], def);
	T_EQ(seen[1], def);
	T_EQ(seen[3], d);
	T_EQ(kmem_domain_current(), d);

	T_EQ(kmem_domain_switch(NULL), d);
	T_EQ(kmem_domain_current(), def);
	T_EQ(kmem_domain_switch(def), def);
	T_EQ(kmem_domain_current(), def);

	/* A second domain; switch chains. */
	src = tsrc_ops(&s2, false);
	e = kmem_domain_create("api-e", &src);
	T_ASSERT(e != NULL);
	T_NE(e, d);
	T_ASSERT(strcmp(kmem_domain_name(e), "api-e") == 0);
	T_ASSERT(strcmp(kmem_domain_name(d), "api-d") == 0);
	T_EQ(kmem_domain_switch(d), def);
	T_EQ(kmem_domain_switch(e), d);
	T_EQ(kmem_domain_switch(def), e);
	T_EQ(kmem_domain_switch(e), def);
	T_EQ(kmem_domain_switch(NULL), e);

	/* The domain's arena hands out its source's pages. */
	T_EQ(vmem_alloc(
		 kmem_domain_arena(d), 3 * PS, VM_SLEEP | VM_INSTANTFIT, &a),
	    0);
	T_ASSERT(tsrc_live(&s, (void *)a, 3 * PS));
	memset((void *)a, 1, 3 * PS);
	vmem_free(kmem_domain_arena(d), a, 3 * PS);
	T_EQ(vmem_alloc(kmem_domain_arena(e), PS, VM_SLEEP | VM_INSTANTFIT, &a),
	    0);
	T_ASSERT(tsrc_live(&s2, (void *)a, PS));
	vmem_free(kmem_domain_arena(e), a, PS);

	/* A thread that left with d current holds nothing of d. */
	seen[2] = d;
	T_EQ(pthread_create(&th, NULL, th_current, seen), 0);
	T_EQ(pthread_join(th, NULL), 0);

	T_EQ(kmem_domain_current(), def);
	T_EQ(kmem_domain_destroy(e), 0);
	T_EQ(kmem_domain_destroy(d), 0);
	T_EQ(kmem_domain_current(), def);
	tsrc_print(&s, "api-d");
	tsrc_check_empty(&s);
	tsrc_check_empty(&s2);
	tsrc_fini(&s);
	tsrc_fini(&s2);
}

/* ---- every layer ---- */

static void
layers(bool protect, bool purge)
{
	struct tsrc s;
	struct kmem_page_source src;
	struct tdef_mark m;
	kmem_domain_t *d;
	int round;

	tsrc_init(&s, REGION, protect);
	src = tsrc_ops(&s, purge);
	m = quiet_begin();
	d = kmem_domain_create("layers", &src);
	T_ASSERT(d != NULL);
	for (round = 0; round < 2; round++) /* the second over reused pages */
		work_all(&s, d);
	T_EQ(kmem_domain_current(), kmem_domain_default());
	T_EQ(kmem_domain_destroy(d), 0);
	quiet_end(&m);
	tsrc_print(&s, "layers");
	tsrc_check_empty(&s);
	tsrc_fini(&s);
}

static void
t_layers_protect_purge(void)
{
	layers(true, true);
}

static void
t_layers_mapped_nopurge(void)
{
	layers(false, false);
}

/* ---- cross-domain use ---- */

#define NX 64

static void
t_cross(void)
{
	static const size_t xs[] = {24, 200, 3000, 16384, 40000, 300000};
#define NXS KMEM_ARRAY_SIZE(xs)
	static void *pa[NXS][NX], *pb[NXS][NX], *ga[NX], *ca[NX];
	static vmem_addr_t vaa[NX];
	static struct pool poolA;
	struct tsrc sa, sb;
	struct kmem_page_source src;
	struct tdef_mark m;
	struct cctx cc;
	kmem_domain_t *def = kmem_domain_default(), *A, *B;
	pool_cache_t cA;
	vmem_t *vA;
	size_t i, j;

	tsrc_init(&sa, REGION, true);
	tsrc_init(&sb, REGION, true);
	m = quiet_begin();
	src = tsrc_ops(&sa, true);
	A = kmem_domain_create("cross-A", &src);
	src = tsrc_ops(&sb, true);
	B = kmem_domain_create("cross-B", &src);
	T_ASSERT(A != NULL && B != NULL);
	cc.s = &sa;
	cc.size = 96;
	cc.nctor = cc.ndtor = 0;

	/* A's objects and structures, made with A current. */
	T_EQ(kmem_domain_switch(A), def);
	for (i = 0; i < NXS; i++)
		for (j = 0; j < NX; j++) {
			pa[i][j] = kmem_alloc(xs[i], KM_SLEEP);
			T_ASSERT(tsrc_live(&sa, pa[i][j], xs[i]));
			memset(pa[i][j], 0xa0, xs[i]);
		}
	pool_init(&poolA, 128, 0, 0, 0, "cross-poolA", NULL, IPL_NONE);
	cA = pool_cache_init(cc.size, 0, 0, 0, "cross-cacheA", NULL, IPL_NONE,
	    c_ctor, c_dtor, &cc);
	vA = vmem_create("cross-vmA", 0, 0, PS, vmem_alloc, vmem_free,
	    kmem_domain_arena(A), 2 * PS, VM_SLEEP, IPL_NONE);
	T_ASSERT(cA != NULL && vA != NULL);

	/* Used with B current: still A's memory. */
	T_EQ(kmem_domain_switch(B), A);
	for (j = 0; j < NX; j++) {
		ga[j] = pool_get(&poolA, PR_WAITOK);
		T_ASSERT(tsrc_live(&sa, ga[j], 128));
		ca[j] = pool_cache_get(cA, PR_WAITOK);
		T_ASSERT(tsrc_live(&sa, ca[j], cc.size));
		T_EQ(vmem_alloc(vA, PS * (1 + j % 3), VM_SLEEP | VM_INSTANTFIT,
			 &vaa[j]),
		    0);
		T_ASSERT(tsrc_live(&sa, (void *)vaa[j], PS * (1 + j % 3)));
	}
	/* B's own objects. */
	for (i = 0; i < NXS; i++)
		for (j = 0; j < NX; j++) {
			pb[i][j] = kmem_alloc(xs[i], KM_SLEEP);
			T_ASSERT(tsrc_live(&sb, pb[i][j], xs[i]));
			memset(pb[i][j], 0xb0, xs[i]);
		}
	/* Half of A's objects freed with B current, the rest on default. */
	for (i = 0; i < NXS; i++)
		for (j = 0; j < NX / 2; j++) {
			T_ASSERT(all_bytes(pa[i][j], xs[i], 0xa0));
			kmem_free(pa[i][j], xs[i]);
		}
	for (j = 0; j < NX / 2; j++) {
		pool_put(&poolA, ga[j]);
		pool_cache_put(cA, ca[j]);
		vmem_free(vA, vaa[j], PS * (1 + j % 3));
	}
	T_EQ(kmem_domain_switch(NULL), B);
	for (i = 0; i < NXS; i++)
		for (j = NX / 2; j < NX; j++) {
			T_ASSERT(all_bytes(pa[i][j], xs[i], 0xa0));
			kmem_free(pa[i][j], xs[i]);
		}
	for (j = NX / 2; j < NX; j++) {
		pool_put(&poolA, ga[j]);
		pool_cache_put(cA, ca[j]);
		vmem_free(vA, vaa[j], PS * (1 + j % 3));
	}
	/* A's frees went to A: B's new objects are all B's. */
	T_EQ(kmem_domain_switch(B), def);
	for (i = 0; i < NXS; i++)
		for (j = 0; j < NX; j++) {
			void *p = kmem_alloc(xs[i], KM_SLEEP);

			if (!tsrc_live(&sb, p, xs[i]))
				T_FAIL("B's kmem_alloc(%zu) = %p after A's "
				       "frees: not B's",
				    xs[i], p);
			kmem_free(p, xs[i]);
		}
	/* Destroyed from B current, then A destroyed while B is busy. */
	pool_cache_destroy(cA);
	T_EQ(cc.nctor, cc.ndtor);
	pool_destroy(&poolA);
	vmem_destroy(vA);
	T_EQ(kmem_domain_switch(NULL), B);
	T_EQ(kmem_domain_destroy(A), 0);
	tsrc_check_empty(&sa);

	/* B goes on working, from A's former objects' sizes on. */
	work_all(&sb, B);
	for (i = 0; i < NXS; i++)
		for (j = 0; j < NX; j++) {
			T_ASSERT(all_bytes(pb[i][j], xs[i], 0xb0));
			kmem_free(pb[i][j], xs[i]); /* from the default */
		}
	T_EQ(kmem_domain_destroy(B), 0);
	quiet_end(&m);
	tsrc_check_empty(&sb);
	tsrc_fini(&sa);
	tsrc_fini(&sb);
#undef NXS
}

/* ---- busy ---- */

enum {
	B_SMALL,
	B_LARGE,
	B_ZERO,
	B_STR,
	B_ARENA,
	B_SPAN,
	B_POOL,
	B_POOL_ITEM,
	B_CACHE,
	B_CACHE_OBJ,
	B_N
};

static const char *const bnames[B_N] = {"small object", "large object",
    "zeroed object", "string", "empty arena", "arena over a span", "empty pool",
    "pool with an item out", "empty cache", "cache with an object out"};

struct thing {
	int kind;
	void *p;
	size_t n;
	vmem_t *vm;
	struct pool pool;
	pool_cache_t pc;
};

/* With the domain current. */
static void
thing_make(struct thing *t, struct tsrc *s)
{
	switch (t->kind) {
	case B_SMALL:
	case B_LARGE:
	case B_ZERO:
		t->n = t->kind == B_LARGE ? 300000 : 700;
		t->p = t->kind == B_ZERO ? kmem_zalloc(t->n, KM_SLEEP)
					 : kmem_alloc(t->n, KM_SLEEP);
		T_ASSERT(tsrc_live(s, t->p, t->n));
		memset(t->p, 0x3c, t->n);
		break;
	case B_STR:
		t->p = kmem_strdup("busy", KM_SLEEP);
		T_ASSERT(tsrc_live(s, t->p, 5));
		break;
	case B_ARENA:
		t->vm = vmem_create("busy-vm", 0, 0, PS, vmem_alloc, vmem_free,
		    kmem_domain_arena(kmem_domain_current()), 0, VM_SLEEP,
		    IPL_NONE);
		T_ASSERT(t->vm != NULL);
		break;
	case B_SPAN:
		t->vm = vmem_create("busy-span", 4096, 1 << 20, 16, NULL, NULL,
		    NULL, 0, VM_SLEEP, IPL_NONE);
		T_ASSERT(t->vm != NULL);
		break;
	case B_POOL:
	case B_POOL_ITEM:
		pool_init(&t->pool, 80, 0, 0, 0, "busy-pool", NULL, IPL_NONE);
		if (t->kind == B_POOL_ITEM) {
			t->p = pool_get(&t->pool, PR_WAITOK);
			T_ASSERT(tsrc_live(s, t->p, 80));
			memset(t->p, 0x3c, 80);
			t->n = 80;
		}
		break;
	case B_CACHE:
	case B_CACHE_OBJ:
		t->pc = pool_cache_init(48, 0, 0, 0, "busy-cache", NULL,
		    IPL_NONE, NULL, NULL, NULL);
		T_ASSERT(t->pc != NULL);
		if (t->kind == B_CACHE_OBJ) {
			t->p = pool_cache_get(t->pc, PR_WAITOK);
			T_ASSERT(tsrc_live(s, t->p, 48));
			memset(t->p, 0x3c, 48);
			t->n = 48;
		}
		break;
	}
}

static void
thing_check(const struct thing *t)
{
	if (t->kind == B_STR)
		T_ASSERT(strcmp(t->p, "busy") == 0);
	else if (t->p != NULL)
		T_ASSERT(all_bytes(t->p, t->n, 0x3c));
}

static void
thing_remove(struct thing *t)
{
	switch (t->kind) {
	case B_SMALL:
	case B_LARGE:
	case B_ZERO:
		kmem_free(t->p, t->n);
		break;
	case B_STR:
		kmem_strfree(t->p);
		break;
	case B_ARENA:
	case B_SPAN:
		vmem_destroy(t->vm);
		break;
	case B_POOL:
	case B_POOL_ITEM:
		if (t->p != NULL)
			pool_put(&t->pool, t->p);
		pool_destroy(&t->pool);
		break;
	case B_CACHE:
	case B_CACHE_OBJ:
		if (t->p != NULL)
			pool_cache_put(t->pc, t->p);
		pool_cache_destroy(t->pc);
		break;
	}
}

/*
 * Objects of a few classes and large blocks made and freed, so that the
 * domain's caches hold memory when the busy destroy comes.
 */
#define NCHURN 3000

static void
churn(struct tsrc *s)
{
	static const size_t sz[] = {64, 1000, 3000, 40000};
	static void *v[NCHURN];
	size_t i, k;

	for (k = 0; k < KMEM_ARRAY_SIZE(sz); k++) {
		size_t n = sz[k] > KMEM_CACHE_MAX ? NCHURN / 30 : NCHURN;

		for (i = 0; i < n; i++) {
			v[i] = kmem_alloc(sz[k], KM_SLEEP);
			T_ASSERT(tsrc_live(s, v[i], sz[k]));
		}
		for (i = 0; i < n; i++)
			kmem_free(v[i], sz[k]);
	}
}

static void
t_busy(void)
{
	static struct thing t;
	struct tsrc s;
	struct kmem_page_source src;
	kmem_domain_t *d;
	uint64_t in0;
	int k, gave = 0;

	tsrc_init(&s, REGION, true);
	src = tsrc_ops(&s, true);
	for (k = 0; k < B_N; k++) {
		printf("   busy with: %s\n", bnames[k]);
		memset(&t, 0, sizeof t);
		t.kind = k;
		d = kmem_domain_create("busy", &src);
		T_ASSERT(d != NULL);
		kmem_domain_switch(d);
		churn(&s);
		thing_make(&t, &s);
		kmem_domain_switch(NULL);
		in0 = tsrc_bytes_in(&s);
		T_EQ(kmem_domain_destroy(d), EBUSY);
		/* Nothing freed (checked at the end: a failure hides nothing).
		 */
		if (tsrc_bytes_in(&s) != in0) {
			printf("   EBUSY, and %llu bytes back to the source\n",
			    (unsigned long long)(tsrc_bytes_in(&s) - in0));
			gave++;
		}
		thing_check(&t);
		work_all(&s, d); /* still usable */
		thing_check(&t);
		T_EQ(kmem_domain_destroy(d), EBUSY);
		thing_check(&t);
		thing_remove(&t); /* from the default */
		T_EQ(kmem_domain_destroy(d), 0);
		tsrc_check_empty(&s);
	}
	tsrc_fini(&s);
	if (gave != 0)
		T_FAIL("%d of %d EBUSY destroys gave memory back to the source",
		    gave, B_N);
}

/* ---- reap ---- */

#define NREAP 16384

static void
t_reap(void)
{
	static void *p[NREAP];
	struct tsrc s;
	struct kmem_page_source src;
	struct tdef_mark m;
	kmem_domain_t *d;
	vmem_size_t inuse0, inuse1;
	uint64_t in0, purged0;
	size_t i;

	tsrc_init(&s, REGION, true);
	src = tsrc_ops(&s, true);
	m = quiet_begin();
	d = kmem_domain_create("reap", &src);
	T_ASSERT(d != NULL);
	kmem_domain_switch(d);
	for (i = 0; i < NREAP; i++) {
		p[i] = kmem_alloc(256, KM_SLEEP);
		T_ASSERT(tsrc_live(&s, p[i], 256));
	}
	/* The objects' pages are the domain arena's. */
	T_GE(vmem_size(kmem_domain_arena(d), VMEM_ALLOC),
	    (vmem_size_t)NREAP * 256);
	for (i = 0; i < NREAP; i++)
		kmem_free(p[i], 256);
	inuse0 = vmem_size(kmem_domain_arena(d), VMEM_ALLOC);
	pthread_mutex_lock(&s.lock);
	in0 = s.bytes_in;
	purged0 = s.bytes_purged;
	pthread_mutex_unlock(&s.lock);
	kmem_reap_all();
	inuse1 = vmem_size(kmem_domain_arena(d), VMEM_ALLOC);
	printf("   domain arena in use: %zu KiB before kmem_reap_all, %zu "
	       "KiB after\n",
	    (size_t)(inuse0 >> 10), (size_t)(inuse1 >> 10));
	/* What the caches kept of the freed objects went back. */
	if (inuse0 == 0)
		printf("   (nothing was cached to reap)\n");
	else
		T_LE(inuse1, inuse0 / 2);
	kmem_reap();
	kmem_reap_all();
	tsrc_print(&s, "reap");
	/* Free pages went back to the source: purged or freed. */
	pthread_mutex_lock(&s.lock);
	T_ASSERT(s.bytes_purged > purged0 || s.bytes_in > in0);
	pthread_mutex_unlock(&s.lock);
	kmem_domain_switch(NULL);
	work_all(&s, d); /* over the purged (junk-filled) pages */
	T_EQ(kmem_domain_destroy(d), 0);
	quiet_end(&m);
	tsrc_check_empty(&s);
	tsrc_fini(&s);
}

/* ---- stats ---- */

static char *
stats_text(void)
{
	static char buf[1 << 20];
	FILE *f = tmpfile();
	size_t n;

	T_ASSERT(f != NULL);
	T_EQ(kmem_stats_write(fileno(f), KMEM_STATS_ALL | KMEM_STATS_ALLROWS),
	    0);
	rewind(f);
	n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The pools and arenas of d and of the default, one item out of each. */
static struct pool st_pd, st_p0;
static vmem_t *st_vd, *st_v0;
static void *st_xd, *st_x0;
static vmem_addr_t st_a;

static kmem_domain_t *
stats_setup(struct tsrc *s)
{
	struct kmem_page_source src;
	kmem_domain_t *d;

	tsrc_init(s, REGION, true);
	src = tsrc_ops(s, true);
	d = kmem_domain_create("stats", &src);
	T_ASSERT(d != NULL);
	pool_init(&st_p0, 100, 0, 0, 0, "stat-def-pool", NULL, IPL_NONE);
	st_v0 = vmem_create("stat-def-vm", 4096, 1 << 20, 16, NULL, NULL, NULL,
	    0, VM_SLEEP, IPL_NONE);
	kmem_domain_switch(d);
	pool_init(&st_pd, 100, 0, 0, 0, "stat-dom-pool", NULL, IPL_NONE);
	st_vd = vmem_create("stat-dom-vm", 4096, 1 << 20, 16, NULL, NULL, NULL,
	    0, VM_SLEEP, IPL_NONE);
	T_ASSERT(st_v0 != NULL && st_vd != NULL);
	st_xd = pool_get(&st_pd, PR_WAITOK);
	st_x0 = pool_get(&st_p0, PR_WAITOK);
	T_ASSERT(tsrc_live(s, st_xd, 100));
	T_ASSERT(!tsrc_in(s, st_x0, 100));
	T_EQ(vmem_alloc(st_vd, 64, VM_SLEEP | VM_INSTANTFIT, &st_a), 0);
	kmem_domain_switch(NULL);
	return d;
}

static void
stats_teardown(struct tsrc *s, kmem_domain_t *d)
{
	vmem_free(st_vd, st_a, 64);
	vmem_destroy(st_vd);
	vmem_destroy(st_v0);
	pool_put(&st_pd, st_xd);
	pool_put(&st_p0, st_x0);
	pool_destroy(&st_pd);
	pool_destroy(&st_p0);
	T_EQ(kmem_domain_destroy(d), 0);
	tsrc_check_empty(s);
	tsrc_fini(s);
}

/* The statistics, with d current, show d's pools and arenas. */
static void
t_stats(void)
{
	struct kmem_pool_stats st;
	struct tsrc s;
	kmem_domain_t *d = stats_setup(&s);
	char *text;

	kmem_domain_switch(d);
	text = stats_text();
	kmem_domain_switch(NULL);
	if (strstr(text, "stat-dom-pool") == NULL ||
	    strstr(text, "stat-dom-vm") == NULL)
		T_FAIL("the statistics with the domain current lack its pool "
		       "or arena:\n%s",
		    text);
	/* A domain's pool's and arena's statistics, from the default. */
	memset(&st, 0, sizeof st);
	st.ps_size = sizeof st;
	T_EQ(kmem_pool_stats(&st_pd, &st), 0);
	T_ASSERT(strcmp(st.ps_name, "stat-dom-pool") == 0);
	T_EQ(st.ps_nget, 1);
	T_EQ(st.ps_nout, 1);
	T_EQ(vstats(st_vd).vs_inuse, 64);
	stats_teardown(&s, d);
}

/*
 * "Statistics calls work in d": with d current they show d's pools and
 * arenas only; with the default current, every live domain's (what
 * KMEM_STATS prints at exit), another domain's rows named
 * "DOMAIN:NAME".
 */
static void
t_stats_only_current(void)
{
	struct tsrc s;
	kmem_domain_t *d = stats_setup(&s);
	char *text, want[64];

	kmem_domain_switch(d);
	text = stats_text();
	kmem_domain_switch(NULL);
	if (strstr(text, "stat-def-pool") != NULL ||
	    strstr(text, "stat-def-vm") != NULL)
		T_FAIL("the statistics with the domain current show the "
		       "default's pool or arena:\n%s",
		    text);
	text = stats_text();
	if (strstr(text, "stat-def-pool") == NULL ||
	    strstr(text, "stat-def-vm") == NULL)
		T_FAIL("the default's statistics lack its pool or arena");
	snprintf(want, sizeof want, "%s:stat-dom-pool", kmem_domain_name(d));
	if (strstr(text, want) == NULL)
		T_FAIL("the default's statistics lack the domain's pool as "
		       "%s:\n%s",
		    want, text);
	snprintf(want, sizeof want, "%s:stat-dom-vm", kmem_domain_name(d));
	if (strstr(text, want) == NULL)
		T_FAIL("the default's statistics lack the domain's arena as "
		       "%s",
		    want);
	stats_teardown(&s, d);
}

/* ---- errors (children) ---- */

/*
 * fn(arg) in a child must die in kmem_panic: SIGABRT, one line starting
 * "kmem: " that contains every word of "all" and, when any[0] is not
 * NULL, one of "any" (case-insensitive).  A child that exits 0 with
 * "NOT APPLICABLE" on stderr is reported as such.
 */
static void
expect_kmem_panic(void (*fn)(void *), void *arg, const char *const *all,
    const char *const *any)
{
	char buf[8192];
	int status = t_child(fn, arg, buf, sizeof buf);
	size_t len = strlen(buf);
	bool hit;

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    strstr(buf, "NOT APPLICABLE") != NULL) {
		printf("   not applicable: %s", buf);
		return;
	}
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		T_FAIL("child did not abort (status %#x); stderr:\n%s",
		    (unsigned)status, buf);
	if (strncmp(buf, "kmem: ", 6) != 0 || len == 0 ||
	    strchr(buf, '\n') != buf + len - 1)
		T_FAIL("not one \"kmem: \" line:\n%s", buf);
	for (; all != NULL && *all != NULL; all++)
		if (strcasestr(buf, *all) == NULL)
			T_FAIL("message lacks \"%s\":\n%s", *all, buf);
	if (any != NULL && *any != NULL) {
		for (hit = false; *any != NULL; any++)
			hit = hit || strcasestr(buf, *any) != NULL;
		if (!hit)
			T_FAIL("message names none of the expected words:\n%s",
			    buf);
	}
	printf("   died as expected: %s", buf);
}

static struct tsrc cs, cs2; /* the children's sources */

static kmem_domain_t *
child_domain(struct tsrc *s, const char *name, bool protect)
{
	struct kmem_page_source src;
	kmem_domain_t *d;

	tsrc_init(s, REGION, protect);
	src = tsrc_ops(s, true);
	d = kmem_domain_create(name, &src);
	if (d == NULL)
		_exit(3);
	return d;
}

static void
c_misalign(void *arg)
{
	struct kmem_page_source src;
	kmem_domain_t *d;
	void *p;

	(void)arg;
	tsrc_init(&cs, REGION, false);
	cs.misalign = 64;
	src = tsrc_ops(&cs, true);
	d = kmem_domain_create("misaligned", &src);
	if (d != NULL) {
		kmem_domain_switch(d);
		p = kmem_alloc(100, KM_SLEEP);
		kmem_free(p, 100);
		p = kmem_alloc(100000, KM_SLEEP);
		kmem_free(p, 100000);
	}
	fprintf(stderr, "no abort (domain %p)\n", (void *)d);
}

static void
c_misalign_big(void *arg)
{
	static const size_t sz[] = {100, 5000, 100000, 1 << 20, 3 << 20};
	struct kmem_page_source src;
	kmem_domain_t *d;
	vmem_addr_t a;
	size_t i;
	void *p;

	(void)arg;
	tsrc_init(&cs, REGION, false);
	cs.misalign_big = true;
	src = tsrc_ops(&cs, true);
	d = kmem_domain_create("misaligned-big", &src);
	if (d != NULL) {
		kmem_domain_switch(d);
		for (i = 0; i < KMEM_ARRAY_SIZE(sz); i++) {
			p = kmem_alloc(sz[i], KM_SLEEP);
			kmem_free(p, sz[i]);
		}
		if (vmem_xalloc(kmem_domain_arena(d), 1 << 20, 1 << 20, 0, 0,
			VMEM_ADDR_MIN, VMEM_ADDR_MAX, VM_NOSLEEP | VM_BESTFIT,
			&a) == 0)
			vmem_xfree(kmem_domain_arena(d), a, 1 << 20);
	}
	if (cs.nbig_align == 0) {
		fprintf(stderr,
		    "NOT APPLICABLE: the domain never asked its "
		    "source for more than page alignment\n");
		return;
	}
	fprintf(stderr, "no abort (domain %p)\n", (void *)d);
}

static void
c_destroy_default(void *arg)
{
	(void)arg;
	fprintf(stderr, "returned %d\n",
	    kmem_domain_destroy(kmem_domain_default()));
}

static void
c_destroy_twice(void *arg)
{
	kmem_domain_t *d = child_domain(&cs, "twice", *(bool *)arg);
	void *p;

	kmem_domain_switch(d);
	p = kmem_alloc(1000, KM_SLEEP);
	kmem_free(p, 1000);
	kmem_domain_switch(NULL);
	if (kmem_domain_destroy(d) != 0)
		_exit(4);
	fprintf(stderr, "returned %d\n", kmem_domain_destroy(d));
}

static void
c_switch_destroyed(void *arg)
{
	kmem_domain_t *d = child_domain(&cs, "gone", *(bool *)arg);

	if (kmem_domain_destroy(d) != 0)
		_exit(4);
	kmem_domain_switch(d);
	fprintf(stderr, "switched to a destroyed domain\n");
}

static void
c_pool_put_foreign(void *arg)
{
	static struct pool pA, pB;
	kmem_domain_t *A = child_domain(&cs, "dom-A", true);
	kmem_domain_t *B = child_domain(&cs2, "dom-B", true);
	void *x;

	(void)arg;
	kmem_domain_switch(A);
	pool_init(&pA, 128, 0, 0, 0, "foreign-pA", NULL, IPL_NONE);
	kmem_domain_switch(B);
	pool_init(&pB, 128, 0, 0, 0, "foreign-pB", NULL, IPL_NONE);
	x = pool_get(&pB, PR_WAITOK); /* pB has a page */
	pool_put(&pB, x);
	x = pool_get(&pA, PR_WAITOK);
	pool_put(&pB, x);
	fprintf(stderr, "pool_put took another domain's item\n");
}

static void
c_cache_put_foreign(void *arg)
{
	kmem_domain_t *A = child_domain(&cs, "dom-A", true);
	kmem_domain_t *B = child_domain(&cs2, "dom-B", true);
	pool_cache_t cA, cB;
	void *x;

	(void)arg;
	kmem_domain_switch(A);
	cA = pool_cache_init(
	    128, 0, 0, 0, "foreign-cA", NULL, IPL_NONE, NULL, NULL, NULL);
	kmem_domain_switch(B);
	cB = pool_cache_init(
	    128, 0, 0, 0, "foreign-cB", NULL, IPL_NONE, NULL, NULL, NULL);
	x = pool_cache_get(cB, PR_WAITOK);
	pool_cache_put(cB, x);
	x = pool_cache_get(cA, PR_WAITOK);
	pool_cache_put(cB, x);
	/* Detected at the put, or when the cache gives x to its pool. */
	pool_cache_invalidate(cB);
	pool_cache_destroy(cB);
	fprintf(stderr, "pool_cache_put took another domain's object\n");
}

static void
t_errors(void)
{
	static const char *const w_align[] = {"align", NULL};
	static const char *const w_default[] = {"default", NULL};
	static const char *const w_twice[] = {"domain", "destroy", NULL};
	static const char *const w_domain[] = {"domain", NULL};
	static const char *const w_pool[] = {"domain", "foreign-pB", NULL};
	static const char *const w_cache[] = {
	    "domain", "foreign-cB", "foreign-cA", NULL};
	bool protect;

	expect_kmem_panic(c_misalign, NULL, w_align, NULL);
	expect_kmem_panic(c_misalign_big, NULL, w_align, NULL);
	expect_kmem_panic(c_destroy_default, NULL, w_default, NULL);
	protect = false;
	expect_kmem_panic(c_destroy_twice, &protect, w_twice, NULL);
	expect_kmem_panic(c_switch_destroyed, &protect, w_domain, NULL);
	protect = true;
	expect_kmem_panic(c_destroy_twice, &protect, w_twice, NULL);
	expect_kmem_panic(c_switch_destroyed, &protect, w_domain, NULL);
	expect_kmem_panic(c_pool_put_foreign, NULL, NULL, w_pool);
	expect_kmem_panic(c_cache_put_foreign, NULL, NULL, w_cache);
}

int
main(int argc, char **argv)
{
	PS = (size_t)sysconf(_SC_PAGESIZE);
	t_args(argc, argv);
	T_RUN_IF(t_api);
	T_RUN_IF(t_layers_protect_purge);
	T_RUN_IF(t_layers_mapped_nopurge);
	T_RUN_IF(t_cross);
	T_RUN_IF(t_reap);
	T_RUN_IF(t_stats);
	T_RUN_IF(t_errors);
	T_RUN_IF(t_busy);
	T_RUN_IF(t_stats_only_current); /* last: an interpretation */
	return t_done();
}
