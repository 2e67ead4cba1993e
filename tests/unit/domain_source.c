/*
 * domain_source.c -- kmem domains over page sources that say no
 * (<kmem/domain.h>; the source is t_domain.h's, counted and checked):
 *
 *   - create_fails: kmem_domain_create over a source whose Nth request
 *     fails (that one only; that one and every later one), for every N
 *     up to what a creation asks: NULL and ENOMEM when it cannot
 *     succeed, and whatever it took is given back.
 *   - sweep_single: a fixed workload -- create, vmem_create (importing
 *     from the domain's arena), pool_init with a NULL allocator,
 *     pool_cache_init, then a pass of NOSLEEP calls: kmem_alloc and
 *     kmem_zalloc (8 bytes .. 3 MiB), kmem_strdup, pool_get PR_NOWAIT,
 *     pool_cache_get PR_NOWAIT, vmem_alloc and vmem_xalloc VM_NOSLEEP --
 *     over a source whose Nth request fails, for every N from 1 to the
 *     number of requests the workload makes: a call may fail (NULL,
 *     ENOMEM) only if the source refused during it; a second pass of
 *     the same calls all succeed (the domain is usable after the
 *     failure); after everything is freed and destroyed the domain's
 *     destroy returns 0 and the source got back every byte.
 *   - sweep_window: the same pass with every request failing from the
 *     Nth on (the failure "window"), then none: the same checks.
 *   - fixed_region: a domain over one 16 MiB region, filled with
 *     kmem_alloc KM_NOSLEEP until NULL, half of it freed, kmem_reap and
 *     kmem_reap_all in the domain, then filled again with another size
 *     (which needs the freed pages back from the first size's caches);
 *     six rounds over three sizes: the second fill of a size gets as
 *     much as the first (nothing lost inside the domain between rounds).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kmem/domain.h>
#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/internal.h"
#include "t.h"
#include "t_domain.h"

#define REGION ((size_t)64 << 20)

static size_t PS;
/* Every N swept, or (valgrind) one in seven. */
static uint64_t stride = 1;

/* Every byte of [p, p + n) is c (one memcmp: cheap under sanitizers). */
static bool
all_bytes(const void *p, size_t n, unsigned char c)
{
	const unsigned char *b = p;

	return n == 0 || (b[0] == c && memcmp(b, b + 1, n - 1) == 0);
}

/* ---- create ---- */

static void
t_create_fails(void)
{
	struct tsrc s;
	struct kmem_page_source src;
	kmem_domain_t *d;
	uint64_t n, calls;
	int from;

	tsrc_init(&s, REGION, true);
	src = tsrc_ops(&s, true);
	tsrc_fail(&s, 0, false);
	d = kmem_domain_create("create", &src);
	T_ASSERT(d != NULL);
	calls = tsrc_calls(&s);
	printf("   kmem_domain_create asked its source %llu times\n",
	    (unsigned long long)calls);
	/* Its structure comes from its source too. */
	T_GE(calls, 1);
	T_EQ(kmem_domain_destroy(d), 0);
	tsrc_check_empty(&s);

	for (from = 1; from >= 0; from--)
		for (n = 1; n <= calls + 1; n++) {
			uint64_t r0 = tsrc_refused(&s);

			tsrc_fail(&s, n, from);
			errno = 0;
			d = kmem_domain_create("create", &src);
			if (d == NULL) {
				T_EQ(errno, ENOMEM);
				T_GT(tsrc_refused(&s), r0);
			} else {
				/* Only if it could do without the refusal. */
				T_ASSERT(!from || n > calls);
				T_EQ(kmem_domain_destroy(d), 0);
			}
			if (from && n <= calls)
				T_ASSERT(d == NULL);
			tsrc_check_empty(&s);
		}
	/* A source with nothing at all. */
	tsrc_fail(&s, 1, true);
	errno = 0;
	T_ASSERT(kmem_domain_create("create", &src) == NULL);
	T_EQ(errno, ENOMEM);
	tsrc_fail(&s, 0, false);
	tsrc_check_empty(&s);
	tsrc_fini(&s);
}

/* ---- the fixed workload ---- */

static const size_t wsizes[] = {
    8, 100, 700, 3000, 16384, 40000, 300000, (size_t)1 << 20, (size_t)2 << 20};
#define NWS   KMEM_ARRAY_SIZE(wsizes)
#define NOPS  70
#define PSIZE 200
#define CSIZE 320

enum { W_KMEM, W_ZALLOC, W_STR, W_POOL, W_CACHE, W_VMEM, W_XALLOC, W_NOPS };

struct wobj {
	int op;
	size_t n;
	void *p;
};

struct wl {
	struct tsrc *s;
	kmem_domain_t *d;
	vmem_t *vm;
	struct pool pool;
	pool_cache_t pc;
	struct wobj o[2][NOPS];
	unsigned long nfailed; /* calls that returned nothing */
};

static size_t
w_size(int op, int i)
{
	switch (op) {
	case W_KMEM:
	case W_ZALLOC:
		return wsizes[(size_t)i % NWS];
	case W_STR:
		return 12;
	case W_POOL:
		return PSIZE;
	case W_CACHE:
		return CSIZE;
	case W_VMEM:
		return PS * (size_t)(1 + i % 7);
	default:
		return PS * (size_t)(1 + i % 3);
	}
}

/* Create the domain and its structures (calls that wait or retry). */
static bool
w_setup(struct wl *w, struct kmem_page_source *src)
{
	uint64_t r0;

	errno = 0;
	w->d = kmem_domain_create("workload", src);
	if (w->d == NULL) {
		T_EQ(errno, ENOMEM);
		return false;
	}
	kmem_domain_switch(w->d);
	for (;;) {
		r0 = tsrc_refused(w->s);
		w->vm = vmem_create("wl-vm", 0, 0, PS, vmem_alloc, vmem_free,
		    kmem_domain_arena(w->d), 4 * PS, VM_NOSLEEP, IPL_NONE);
		if (w->vm != NULL)
			break;
		T_EQ(errno, ENOMEM);
		T_GT(tsrc_refused(w->s), r0);
	}
	pool_init(&w->pool, PSIZE, 0, 0, 0, "wl-pool", NULL, IPL_NONE);
	w->pc = pool_cache_init(
	    CSIZE, 0, 0, 0, "wl-cache", NULL, IPL_NONE, NULL, NULL, NULL);
	T_ASSERT(w->pc != NULL);
	kmem_domain_switch(NULL);
	return true;
}

/*
 * One pass of NOSLEEP calls with the domain current, into w->o[pass].  A
 * call may fail only if the source refused during it; must_succeed: no
 * call may fail.
 */
static void
w_pass(struct wl *w, int pass, bool must_succeed)
{
	int i, rc;

	kmem_domain_switch(w->d);
	for (i = 0; i < NOPS; i++) {
		struct wobj *o = &w->o[pass][i];
		uint64_t r0 = tsrc_refused(w->s);
		vmem_addr_t a = 0;

		o->op = i % W_NOPS;
		o->n = w_size(o->op, i / W_NOPS);
		o->p = NULL;
		rc = 0;
		switch (o->op) {
		case W_KMEM:
			o->p = kmem_alloc(o->n, KM_NOSLEEP);
			break;
		case W_ZALLOC:
			o->p = kmem_zalloc(o->n, KM_NOSLEEP);
			if (o->p != NULL && !all_bytes(o->p, o->n, 0))
				T_FAIL("kmem_zalloc(%zu) = %p not zeroed", o->n,
				    o->p);
			break;
		case W_STR:
			o->p = kmem_strdup("eleven char", KM_NOSLEEP);
			if (o->p != NULL)
				T_ASSERT(strcmp(o->p, "eleven char") == 0);
			break;
		case W_POOL:
			o->p = pool_get(&w->pool, PR_NOWAIT);
			break;
		case W_CACHE:
			o->p = pool_cache_get(w->pc, PR_NOWAIT);
			break;
		case W_VMEM:
			rc = vmem_alloc(
			    w->vm, o->n, VM_NOSLEEP | VM_INSTANTFIT, &a);
			break;
		case W_XALLOC:
			rc = vmem_xalloc(w->vm, o->n, 8 * PS, 0, 0,
			    VMEM_ADDR_MIN, VMEM_ADDR_MAX,
			    VM_NOSLEEP | VM_BESTFIT, &a);
			if (rc == 0)
				T_EQ(a % (8 * PS), 0);
			break;
		}
		if (o->op == W_VMEM || o->op == W_XALLOC) {
			T_ASSERT(rc == 0 || rc == ENOMEM);
			o->p = rc == 0 ? (void *)a : NULL;
		}
		if (o->p == NULL) {
			w->nfailed++;
			if (must_succeed)
				T_FAIL("pass %d, call %d (op %d, %zu bytes) "
				       "failed with the source willing",
				    pass, i, o->op, o->n);
			if (tsrc_refused(w->s) == r0)
				T_FAIL("pass %d, call %d (op %d, %zu bytes) "
				       "failed without a refusal",
				    pass, i, o->op, o->n);
			continue;
		}
		if (!tsrc_live(w->s, o->p, o->n))
			T_FAIL("op %d: %p (%zu bytes) not in the domain's "
			       "pages",
			    o->op, o->p, o->n);
		if (o->op != W_STR)
			memset(o->p, (int)(i & 0xff), o->n);
	}
	kmem_domain_switch(NULL);
}

/* Free everything (from the default), destroy all: the source is whole. */
static void
w_teardown(struct wl *w)
{
	int pass, i;

	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < NOPS; i++) {
			struct wobj *o = &w->o[pass][i];

			if (o->p == NULL)
				continue;
			if (o->op != W_STR &&
			    !all_bytes(o->p, o->n, (unsigned char)(i & 0xff)))
				T_FAIL("pass %d call %d: %p overwritten", pass,
				    i, o->p);
			switch (o->op) {
			case W_KMEM:
			case W_ZALLOC:
				kmem_free(o->p, o->n);
				break;
			case W_STR:
				kmem_strfree(o->p);
				break;
			case W_POOL:
				pool_put(&w->pool, o->p);
				break;
			case W_CACHE:
				pool_cache_put(w->pc, o->p);
				break;
			case W_VMEM:
				vmem_free(w->vm, (vmem_addr_t)o->p, o->n);
				break;
			case W_XALLOC:
				vmem_xfree(w->vm, (vmem_addr_t)o->p, o->n);
				break;
			}
			o->p = NULL;
		}
	pool_cache_destroy(w->pc);
	pool_destroy(&w->pool);
	vmem_destroy(w->vm);
	T_EQ(kmem_domain_destroy(w->d), 0);
	tsrc_check_empty(w->s);
}

static struct wl wl;

static void
t_sweep_single(void)
{
	struct tsrc s;
	struct kmem_page_source src;
	uint64_t n, calls;
	unsigned long failed = 0, created = 0;

	tsrc_init(&s, REGION, true);
	src = tsrc_ops(&s, true);
	memset(&wl, 0, sizeof wl);
	wl.s = &s;
	tsrc_fail(&s, 0, false);
	T_ASSERT(w_setup(&wl, &src));
	w_pass(&wl, 0, true);
	calls = tsrc_calls(&s);
	w_teardown(&wl);
	printf("   the workload asks its source %llu times\n",
	    (unsigned long long)calls);
	T_GE(calls, 4);

	for (n = 1; n <= calls + 1; n += stride) {
		memset(&wl, 0, sizeof wl);
		wl.s = &s;
		tsrc_fail(&s, n, false);
		if (!w_setup(&wl, &src)) {
			tsrc_check_empty(&s);
			continue;
		}
		created++;
		w_pass(&wl, 0, false);
		w_pass(&wl, 1, true);
		failed += wl.nfailed;
		w_teardown(&wl);
	}
	printf("   %llu runs, %lu created the domain, %lu calls failed\n",
	    (unsigned long long)calls + 1, created, failed);
	T_GE(created, 1);
	tsrc_print(&s, "sweep");
	tsrc_fini(&s);
}

static void
t_sweep_window(void)
{
	struct tsrc s;
	struct kmem_page_source src;
	uint64_t n, calls;
	unsigned long failed = 0;

	tsrc_init(&s, REGION, true);
	src = tsrc_ops(&s, true);
	memset(&wl, 0, sizeof wl);
	wl.s = &s;
	T_ASSERT(w_setup(&wl, &src));
	tsrc_fail(&s, 0, false);
	w_pass(&wl, 0, true);
	calls = tsrc_calls(&s);
	w_teardown(&wl);
	printf("   the pass asks its source %llu times\n",
	    (unsigned long long)calls);
	T_GE(calls, 2);

	for (n = 1; n <= calls + 1; n += stride) {
		memset(&wl, 0, sizeof wl);
		wl.s = &s;
		tsrc_fail(&s, 0, false);
		T_ASSERT(w_setup(&wl, &src));
		tsrc_fail(&s, n, true);
		w_pass(&wl, 0, false);
		tsrc_fail(&s, 0, false);
		w_pass(&wl, 1, true);
		failed += wl.nfailed;
		w_teardown(&wl);
	}
	printf("   %llu runs, %lu calls failed\n",
	    (unsigned long long)calls + 1, failed);
	T_GE(failed, 1);
	tsrc_print(&s, "window");
	tsrc_fini(&s);
}

/* ---- a fixed region ---- */

#define FIXED ((size_t)16 << 20)

static size_t
fill(struct tsrc *s, void **v, size_t max, size_t size)
{
	size_t n = 0;
	void *p;

	while ((p = kmem_alloc(size, KM_NOSLEEP)) != NULL) {
		if (n == max)
			T_FAIL("more than %zu objects of %zu bytes in %zu "
			       "bytes",
			    max, size, FIXED);
		if (!tsrc_live(s, p, size))
			T_FAIL(
			    "kmem_alloc(%zu) = %p: not the domain's", size, p);
		*(size_t *)p = n;
		v[n++] = p;
	}
	return n;
}

static void
unfill(void **v, size_t from, size_t to, size_t size)
{
	size_t i;

	for (i = from; i < to; i++) {
		T_EQ(*(size_t *)v[i], i);
		kmem_free(v[i], size);
	}
}

static void
t_fixed_region(void)
{
	static const size_t sz[] = {128, 300000, 1000, 128, 300000, 1000};
#define NR KMEM_ARRAY_SIZE(sz)
	size_t max = FIXED / 64, n[NR], nb, r;
	void **va = calloc(max, sizeof *va), **vb = calloc(max, sizeof *vb);
	struct tsrc s;
	struct kmem_page_source src;
	kmem_domain_t *d;

	T_ASSERT(va != NULL && vb != NULL);
	tsrc_init(&s, FIXED, false);
	src = tsrc_ops(&s, true);
	d = kmem_domain_create("fixed", &src);
	T_ASSERT(d != NULL);
	kmem_domain_switch(d);
	for (r = 0; r < NR; r++) {
		size_t a = sz[r], b = sz[(r + 1) % NR];

		n[r] = fill(&s, va, max, a);
		/* Half of it freed: the first half, whole pages. */
		unfill(va, 0, n[r] / 2, a);
		kmem_reap();
		kmem_reap_all();
		/* Another size gets those pages. */
		nb = fill(&s, vb, max, b);
		printf("   round %zu: %zu x %zu bytes (%zu KiB of %zu), "
		       "half freed, then %zu x %zu bytes\n",
		    r, n[r], a, n[r] * a >> 10, FIXED >> 10, nb, b);
		T_GE(n[r] * a, FIXED / 4);
		T_GE(nb * b, (n[r] / 2) * a / 4);
		unfill(vb, 0, nb, b);
		unfill(va, n[r] / 2, n[r], a);
		kmem_reap_all();
		if (r >= NR / 2) /* as much as the first time */
			T_GE(n[r], n[r - NR / 2] - n[r - NR / 2] / 10);
	}
	kmem_domain_switch(NULL);
	T_EQ(kmem_domain_destroy(d), 0);
	tsrc_print(&s, "fixed");
	tsrc_check_empty(&s);
	tsrc_fini(&s);
	free(va);
	free(vb);
#undef NR
}

int
main(int argc, char **argv)
{
	PS = (size_t)sysconf(_SC_PAGESIZE);
	if (t_under_valgrind())
		stride = 7;
	t_args(argc, argv);
	T_RUN_IF(t_create_fails);
	T_RUN_IF(t_sweep_single);
	T_RUN_IF(t_sweep_window);
	T_RUN_IF(t_fixed_region);
	return t_done();
}
