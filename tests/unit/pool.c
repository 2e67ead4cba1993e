/*
 * pool.c -- pool(9) behaviour: every flag; page-list transitions and the
 * counts behind them; header placement and page lookup (on-page, off-page,
 * unaligned pages); colouring; the alignment of every item; the hard
 * limit (exact in items; NOWAIT and LIMITFAIL fail, WAITOK blocks until
 * another thread puts, as NetBSD's rump "uvmwait" test); NOWAIT failure
 * with a refusing allocator and under the fault-injecting prim; low and
 * high watermarks, pool_prime; idle pages going back (on put, reclaim,
 * kmem_reap, kmem_reap_all) and the page arena's vmem_size falling; a
 * caller's pool_allocator getting every page back on pool_destroy; and a
 * threaded get/put mix.  Every count check (check_pool) also runs
 * kmem_pool_check.  Bad inputs are in pool_errors.c.
 *
 * The last two tests are regressions for bugs they found: a NOWAIT get
 * that must also create the page arena aborted instead of returning
 * NULL; PR_NOALIGN pages aligned below the item alignment gave misaligned
 * items (the page now holds fewer, aligned, items).
 */
#include <pthread.h>
#include <stdatomic.h>

#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"
#include "t.h"

static size_t PS; /* system page size */

static void
set_idle_ms(const char *v)
{
	char buf[64];

	snprintf(buf, sizeof buf, "pool_idle_ms=%s", v);
	T_EQ(kmem_options_parse("KMEM_OPTIONS", buf), 0);
}

static void
sleep_ms(unsigned ms)
{
	kmem_prim_sleep_ns((uint64_t)ms * 1000000u);
}

/* ---- a caller's page allocator that records every page ---- */

#define TPA_MAX 4096

static struct {
	pthread_mutex_t lock;
	size_t pagesz;
	size_t misalign; /* pages start this far into an aligned block */
	atomic_bool fail;
	unsigned long nalloc, nfree, nrefused;
	unsigned npg;
	struct {
		void *base;
		char *page;
		bool live;
	} pg[TPA_MAX];
} tpa = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *
tpa_alloc(struct pool *pp, int flags)
{
	size_t sz = pp->pr_alloc->pa_pagesz;
	void *base;
	char *page;

	(void)flags;
	T_EQ(sz, tpa.pagesz);
	if (atomic_load(&tpa.fail)) {
		pthread_mutex_lock(&tpa.lock);
		tpa.nrefused++;
		pthread_mutex_unlock(&tpa.lock);
		return NULL;
	}
	base = aligned_alloc(sz, tpa.misalign ? 2 * sz : sz);
	T_ASSERT(base != NULL);
	page = (char *)base + tpa.misalign;
	memset(page, 0xa5, sz);
	pthread_mutex_lock(&tpa.lock);
	T_LT(tpa.npg, TPA_MAX);
	tpa.pg[tpa.npg].base = base;
	tpa.pg[tpa.npg].page = page;
	tpa.pg[tpa.npg].live = true;
	tpa.npg++;
	tpa.nalloc++;
	pthread_mutex_unlock(&tpa.lock);
	return page;
}

static void
tpa_free(struct pool *pp, void *v)
{
	unsigned i;

	(void)pp;
	pthread_mutex_lock(&tpa.lock);
	for (i = 0; i < tpa.npg; i++)
		if (tpa.pg[i].page == v && tpa.pg[i].live)
			break;
	if (i == tpa.npg)
		T_FAIL("pa_free(%p): not a live page of this allocator", v);
	tpa.pg[i].live = false;
	tpa.nfree++;
	free(tpa.pg[i].base);
	pthread_mutex_unlock(&tpa.lock);
}

/* Start a test with a fresh allocator of "pagesz"-byte pages. */
static void
tpa_reset(struct pool_allocator *pa, size_t pagesz, size_t misalign)
{
	T_EQ(tpa.nalloc, tpa.nfree); /* the last test got all back */
	tpa.pagesz = pagesz;
	tpa.misalign = misalign;
	atomic_store(&tpa.fail, false);
	tpa.nalloc = tpa.nfree = tpa.nrefused = 0;
	tpa.npg = 0;
	memset(pa, 0, sizeof *pa);
	pa->pa_alloc = tpa_alloc;
	pa->pa_free = tpa_free;
	pa->pa_pagesz = (unsigned int)pagesz;
}

/* The index of the live page holding [v, v + len), or a failure. */
static unsigned
tpa_page_of(const void *v, size_t len)
{
	const char *c = v;
	unsigned i;

	pthread_mutex_lock(&tpa.lock);
	for (i = 0; i < tpa.npg; i++)
		if (tpa.pg[i].live && c >= tpa.pg[i].page &&
		    c + len <= tpa.pg[i].page + tpa.pagesz)
			break;
	pthread_mutex_unlock(&tpa.lock);
	if (i == tpa.npg)
		T_FAIL("item %p (+%zu) lies in no page the allocator gave", v,
		    len);
	return i;
}

static bool
all_bytes(const void *p, unsigned char c, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != c)
			return false;
	return true;
}

/* ---- pool state ---- */

static struct kmem_pool_stats
st_of(struct pool *pp)
{
	struct kmem_pool_stats st;

	T_EQ(kmem_pool_stats(pp, &st), 0);
	T_EQ(st.ps_size, sizeof st);
	return st;
}

static unsigned
list_len(struct kmem_pool_page *head, unsigned lo, unsigned hi)
{
	struct kmem_pool_page *ph = head;
	unsigned n = 0;

	if (head == NULL)
		return 0;
	do {
		T_GE(ph->ph_nmissing, lo);
		T_LE(ph->ph_nmissing, hi);
		T_ASSERT(ph->ph_next->ph_prev == ph);
		n++;
		ph = ph->ph_next;
	} while (ph != head && n < 1000000);
	return n;
}

struct lists {
	unsigned empty, part, full;
};

/* Check the counting invariants; return the list lengths. */
static struct lists
check_pool(struct pool *pp)
{
	struct kmem_pool_stats st = st_of(pp);
	unsigned ipp = st.ps_itemsperpage;
	struct lists l;

	kmem_pool_check(pp); /* headers, bitmaps, hash: pool.c's checker */
	pthread_mutex_lock(&pp->pr_lock);
	l.empty = list_len(pp->pr_emptypages, 0, 0);
	l.part = list_len(pp->pr_partpages, 1, ipp - 1);
	l.full = list_len(pp->pr_fullpages, ipp, ipp);
	pthread_mutex_unlock(&pp->pr_lock);
	T_EQ(l.empty + l.part + l.full, st.ps_npages);
	T_EQ(l.empty, st.ps_nidle);
	T_EQ((uint64_t)st.ps_nitems + st.ps_nout, (uint64_t)st.ps_npages * ipp);
	T_EQ(st.ps_nget - st.ps_nput, st.ps_nout);
	T_EQ(st.ps_npagealloc - st.ps_npagefree, st.ps_npages);
	T_LE(st.ps_npages, st.ps_hiwat);
	return l;
}

static void
check_lists(struct pool *pp, unsigned empty, unsigned part, unsigned full)
{
	struct lists l = check_pool(pp);

	T_EQ(l.empty, empty);
	T_EQ(l.part, part);
	T_EQ(l.full, full);
}

static void
shuffle(void **v, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)t_rand_below(i);
		void *t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

static int
cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (void *const *)a;
	uintptr_t y = (uintptr_t) * (void *const *)b;

	return x < y ? -1 : x > y;
}

/* Distinct, non-overlapping items of "size" bytes. */
static void
check_disjoint(void **v, size_t n, size_t size)
{
	void **s = malloc(n * sizeof *s);

	T_ASSERT(s != NULL);
	memcpy(s, v, n * sizeof *s);
	qsort(s, n, sizeof *s, cmp_ptr);
	for (size_t i = 1; i < n; i++)
		T_LE((uintptr_t)s[i - 1] + size, (uintptr_t)s[i]);
	free(s);
}

/* ---- page lists and counts ---- */

static void
test_page_lists(void)
{
	struct pool_allocator pa;
	struct kmem_pool_stats st;
	struct pool p;
	unsigned ipp, i;
	void *a[64], *b, *c;

	tpa_reset(&pa, 4096, 0);
	pool_init(&p, 200, 0, 0, 0, "lists", &pa, IPL_NONE);
	st = st_of(&p);
	ipp = st.ps_itemsperpage;
	T_EQ(st.ps_itemsize, 200);
	T_EQ(st.ps_pagesize, 4096);
	T_GE(ipp, 4);
	T_LE(ipp, 64);
	T_EQ(st.ps_npages, 0);
	T_EQ(st.ps_nitems, 0);
	check_lists(&p, 0, 0, 0);

	/* First get: one partial page. */
	a[0] = pool_get(&p, PR_WAITOK);
	T_ASSERT(a[0] != NULL);
	check_lists(&p, 0, 1, 0);
	st = st_of(&p);
	T_EQ(st.ps_npages, 1);
	T_EQ(st.ps_nitems, ipp - 1);
	T_EQ(st.ps_nout, 1);
	T_EQ(st.ps_npagealloc, 1);
	T_EQ(tpa.nalloc, 1);

	/* Fill it: full. */
	for (i = 1; i < ipp; i++) {
		a[i] = pool_get(&p, PR_NOWAIT);
		T_ASSERT(a[i] != NULL);
		T_EQ(tpa_page_of(a[i], 200), 0);
	}
	check_lists(&p, 0, 0, 1);
	T_EQ(st_of(&p).ps_nitems, 0);

	/* Next get grows a second page. */
	b = pool_get(&p, PR_WAITOK);
	T_EQ(tpa_page_of(b, 200), 1);
	check_lists(&p, 0, 1, 1);
	T_EQ(st_of(&p).ps_npages, 2);

	/* full -> partial; the next get comes from that page, that slot. */
	pool_put(&p, a[2]);
	check_lists(&p, 0, 2, 0);
	c = pool_get(&p, PR_WAITOK);
	T_ASSERT(c == a[2]);
	check_lists(&p, 0, 1, 1);

	/* partial -> empty, counted idle; a get takes it back. */
	pool_put(&p, b);
	check_lists(&p, 1, 0, 1);
	st = st_of(&p);
	T_EQ(st.ps_nidle, 1);
	T_EQ(st.ps_npages, 2); /* kept: not idle long enough */
	T_EQ(st.ps_npagefree, 0);
	b = pool_get(&p, PR_WAITOK);
	T_EQ(tpa_page_of(b, 200), 1);
	check_lists(&p, 0, 1, 1);

	/* Partial pages are used before empty ones. */
	pool_put(&p, a[0]);
	pool_put(&p, b); /* page 1 empty, page 0 partial */
	check_lists(&p, 1, 1, 0);
	c = pool_get(&p, PR_WAITOK);
	T_ASSERT(c == a[0]);
	check_lists(&p, 1, 0, 1);

	for (i = 0; i < ipp; i++)
		pool_put(&p, a[i]);
	check_lists(&p, 2, 0, 0);
	st = st_of(&p);
	T_EQ(st.ps_nout, 0);
	T_EQ(st.ps_nitems, 2 * ipp);
	T_EQ(st.ps_nidle, 2);
	T_EQ(st.ps_hiwat, 2);
	T_EQ(st.ps_nget, ipp + 4);
	T_EQ(st.ps_nput, ipp + 4);
	T_EQ(st.ps_nfail, 0);
	T_EQ(pool_nget(&p), ipp + 4);
	T_EQ(pool_nput(&p), ipp + 4);
	T_ASSERT(strcmp(st.ps_name, "lists") == 0);
	pool_destroy(&p);
	T_EQ(tpa.nalloc, 2);
	T_EQ(tpa.nfree, 2);
}

/* ---- header placement and page lookup ---- */

struct hcase {
	const char *name;
	size_t size;
	unsigned align;
	int flags;
	bool onpage; /* expected */
};

/*
 * With the caller's allocator, find where the header went: an on-page
 * header sits at the page start and names the pool; an off-page pool
 * writes nothing into the page at all.
 */
static void
header_case(const struct hcase *hc, size_t misalign, unsigned npages)
{
	struct pool_allocator pa;
	struct kmem_pool_stats st;
	struct pool p;
	unsigned ipp, n, i;
	void **v;
	char *page;

	tpa_reset(&pa, 4096, misalign);
	pool_init(
	    &p, hc->size, hc->align, 0, hc->flags, hc->name, &pa, IPL_NONE);
	st = st_of(&p);
	ipp = st.ps_itemsperpage;
	n = ipp * npages;
	v = malloc(n * sizeof *v);
	T_ASSERT(v != NULL);
	v[0] = pool_get(&p, PR_WAITOK);
	page = tpa.pg[0].page;
	if (hc->onpage) {
		struct kmem_pool_page *ph = (struct kmem_pool_page *)page;

		T_ASSERT(ph->ph_pool == &p);
		T_ASSERT(ph->ph_page == page);
		T_GE((uintptr_t)v[0] - (uintptr_t)page, sizeof *ph);
	} else {
		/*
		 * Not one byte of the page written: no header, no items
		 * (free items are not to be read under the tools).
		 */
		T_ASSERT(t_annotated() || all_bytes(page, 0xa5, tpa.pagesz));
		T_ASSERT((char *)v[0] == page); /* colour 0, no header */
	}
	/* Many pages (the off-page hash grows past 2 per bucket). */
	for (i = 1; i < n; i++) {
		v[i] = pool_get(&p, (i & 1) ? PR_NOWAIT : PR_WAITOK);
		T_ASSERT(v[i] != NULL);
		(void)tpa_page_of(v[i], st.ps_itemsize);
		if (hc->onpage) {
			char *pg = tpa.pg[tpa_page_of(v[i], 1)].page;

			T_ASSERT(((struct kmem_pool_page *)pg)->ph_pool == &p);
		}
	}
	T_EQ(st_of(&p).ps_npages, npages);
	T_EQ(tpa.nalloc, npages);
	check_lists(&p, 0, 0, npages);
	check_disjoint(v, n, st.ps_itemsize);
	/* Put back in random order: each finds its page. */
	shuffle(v, n);
	for (i = 0; i < n; i++) {
		pool_put(&p, v[i]);
		if (i % 97 == 0)
			check_pool(&p);
	}
	check_lists(&p, npages, 0, 0);
	st = st_of(&p);
	T_EQ(st.ps_nout, 0);
	T_EQ(st.ps_nitems, n);
	pool_destroy(&p);
	T_EQ(tpa.nfree, npages);
	free(v);
}

static void
test_header_placement(void)
{
	static const struct hcase cases[] = {
	    /* Small items: header inside. */
	    {"small", 32, 0, 0, true},
	    /* Big items whose header would cost an item: outside. */
	    {"big-off", 1024, 0, 0, false},
	    /* ... unless PR_PHINPAGE forces it in. */
	    {"big-phinpage", 1024, 0, PR_PHINPAGE, true},
	    /* Header fits the slack without costing an item: inside. */
	    {"slack", 1000, 0, 0, true},
	    /* Never inside with PR_NOTOUCH or PR_NOALIGN. */
	    {"notouch", 32, 0, PR_NOTOUCH, false},
	    {"notouch-phin", 32, 0, PR_NOTOUCH | PR_PHINPAGE, false},
	    {"noalign", 32, 0, PR_NOALIGN, false},
	    {"noalign-phin", 64, 0, PR_NOALIGN | PR_PHINPAGE, false},
	    /* PR_PSERIALIZE implies PR_NOTOUCH. */
	    {"pserialize", 32, 0, PR_PSERIALIZE, false},
	    {"aligned-off", 256, 256, 0, false},
	};
	struct pool_allocator pa;
	struct pool p;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		header_case(&cases[i], 0, 40);

	/* Items per page follow the placement. */
	tpa_reset(&pa, 4096, 0);
	pool_init(&p, 1024, 0, 0, PR_PHINPAGE, "ipp3", &pa, IPL_NONE);
	T_EQ(st_of(&p).ps_itemsperpage, 3);
	pool_destroy(&p);
	pool_init(&p, 1024, 0, 0, 0, "ipp4", &pa, IPL_NONE);
	T_EQ(st_of(&p).ps_itemsperpage, 4);
	pool_destroy(&p);
	pool_init(&p, 32, 0, 0, PR_PSERIALIZE, "psz", &pa, IPL_NONE);
	T_ASSERT(st_of(&p).ps_flags & PR_NOTOUCH);
	T_ASSERT(st_of(&p).ps_flags & PR_PSERIALIZE);
	T_EQ(st_of(&p).ps_itemsperpage, 128);
	pool_destroy(&p);
}

/* PR_NOALIGN: pages at any offset; items found in this block or the last. */
static void
test_noalign_pages(void)
{
	static const size_t mis[] = {8, 64, 1024, 2048, 4088};
	static const struct hcase c48 = {"noalign48", 48, 0, PR_NOALIGN, false},
				  c200 = {
				      "noalign200", 200, 8, PR_NOALIGN, false};

	for (size_t i = 0; i < sizeof mis / sizeof mis[0]; i++) {
		header_case(&c48, mis[i], 40);
		header_case(&c200, mis[i], 40);
	}
}

/*
 * Adjacent unaligned pages: each page straddles two blocks, and the next
 * page starts in the block where the last one ends.
 */
#define ADJ_NPAGES 64
static char adj_region[(ADJ_NPAGES + 1) * 4096] __attribute__((aligned(4096)));
static unsigned adj_next, adj_nfree;

static void *
adj_alloc(struct pool *pp, int flags)
{
	(void)pp;
	(void)flags;
	if (adj_next == ADJ_NPAGES)
		return NULL;
	return adj_region + 8 + (size_t)adj_next++ * 4096;
}

static void
adj_free(struct pool *pp, void *v)
{
	size_t off = (size_t)((char *)v - adj_region);

	(void)pp;
	T_EQ(off % 4096, 8);
	T_LT(off / 4096, adj_next);
	adj_nfree++;
}

static void
test_noalign_adjacent(void)
{
	struct pool_allocator pa = {adj_alloc, adj_free, 4096, 0, 0};
	struct kmem_pool_stats st;
	struct pool p;
	unsigned n, i;
	void **v;

	pool_init(&p, 48, 0, 0, PR_NOALIGN, "adjacent", &pa, IPL_NONE);
	st = st_of(&p);
	n = st.ps_itemsperpage * ADJ_NPAGES;
	v = malloc(n * sizeof *v);
	T_ASSERT(v != NULL);
	for (i = 0; i < n; i++) {
		v[i] = pool_get(&p, PR_NOWAIT);
		T_ASSERT(v[i] != NULL);
		T_GE((char *)v[i], adj_region + 8);
		T_LE((char *)v[i] + 48, adj_region + 8 + ADJ_NPAGES * 4096);
	}
	T_ASSERT(pool_get(&p, PR_NOWAIT) == NULL); /* allocator exhausted */
	check_disjoint(v, n, 48);
	shuffle(v, n);
	for (i = 0; i < n; i++) {
		pool_put(&p, v[i]);
		if (i % 101 == 0)
			check_pool(&p);
	}
	check_lists(&p, ADJ_NPAGES, 0, 0);
	pool_destroy(&p);
	T_EQ(adj_nfree, ADJ_NPAGES);
	free(v);
}

/* Default allocator, on-page and off-page, many pages, random puts. */
static void
test_lookup_default_allocator(void)
{
	static const struct {
		size_t size;
		int flags;
	} cases[] = {{24, 0}, {24, PR_NOTOUCH}, {1024, 0}, {1024, PR_PHINPAGE},
	    {3000, 0}, {20000, 0}, {20000, PR_NOTOUCH}};

	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct kmem_pool_stats st;
		struct pool p;
		unsigned n, i;
		void **v;

		pool_init(&p, cases[c].size, 0, 0, cases[c].flags, "deflookup",
		    NULL, IPL_NONE);
		st = st_of(&p);
		T_GE(st.ps_pagesize, PS);
		T_ASSERT((st.ps_pagesize & (st.ps_pagesize - 1)) == 0);
		T_LE(st.ps_itemsize * st.ps_itemsperpage, st.ps_pagesize);
		n = st.ps_itemsperpage * 40;
		if (n > 4000)
			n = 4000;
		v = malloc(n * sizeof *v);
		T_ASSERT(v != NULL);
		for (i = 0; i < n; i++) {
			v[i] = pool_get(&p, PR_WAITOK);
			memset(v[i], (int)i, cases[c].size);
		}
		check_disjoint(v, n, st.ps_itemsize);
		check_pool(&p);
		shuffle(v, n);
		for (i = 0; i < n; i++)
			pool_put(&p, v[i]);
		st = st_of(&p);
		T_EQ(st.ps_nout, 0);
		check_lists(&p, st.ps_npages, 0, 0);
		pool_destroy(&p);
		free(v);
	}
}

/* ---- colouring ---- */

static void
colour_case(size_t pagesz, size_t size, unsigned align, int flags)
{
	enum { NPAGES = 10 };
	struct pool_allocator pa;
	struct kmem_pool_stats st;
	struct pool p;
	unsigned ipp, n, i, k, ea = align ? align : 8;
	uintptr_t first[NPAGES];
	size_t off0, maxcolor, c, ncolours = 0;
	void **v;

	tpa_reset(&pa, pagesz, 0);
	pool_init(&p, size, align, 0, flags, "colour", &pa, IPL_NONE);
	st = st_of(&p);
	ipp = st.ps_itemsperpage;
	n = ipp * NPAGES;
	v = malloc(n * sizeof *v);
	T_ASSERT(v != NULL);
	for (k = 0; k < NPAGES; k++)
		first[k] = UINTPTR_MAX;
	for (i = 0; i < n; i++) {
		v[i] = pool_get(&p, PR_WAITOK);
		k = tpa_page_of(v[i], st.ps_itemsize);
		T_LT(k, NPAGES);
		if ((uintptr_t)v[i] < first[k])
			first[k] = (uintptr_t)v[i];
	}
	T_EQ(tpa.npg, NPAGES);
	off0 = first[0] - (uintptr_t)tpa.pg[0].page;
	T_LE(off0 + (size_t)ipp * st.ps_itemsize, pagesz);
	maxcolor = (pagesz - off0 - (size_t)ipp * st.ps_itemsize) / ea * ea;
	/* Successive pages start at successive multiples of the alignment,
	 * wrapping after the slack. */
	for (k = 0, c = 0; k < NPAGES; k++) {
		size_t off = first[k] - (uintptr_t)tpa.pg[k].page;

		T_EQ(off, off0 + c);
		T_EQ(off % ea, 0);
		T_LE(off + (size_t)ipp * st.ps_itemsize, pagesz);
		if (c != 0)
			ncolours++;
		c += ea;
		if (c > maxcolor)
			c = 0;
	}
	if (maxcolor >= ea)
		T_GT(ncolours, 0);
	for (i = 0; i < n; i++)
		pool_put(&p, v[i]);
	pool_destroy(&p);
	free(v);
}

static void
test_colouring(void)
{
	colour_case(4096, 96, 32, PR_NOTOUCH); /* slack 64: 0, 32, 64 */
	colour_case(4096, 100, 0, 0);	       /* on-page, align 8 */
	colour_case(4096, 1000, 8, 0);
	colour_case(4096, 1000, 64, PR_NOTOUCH);
	colour_case(8192, 3000, 64, 0);
	colour_case(4096, 256, 256, 0); /* no slack: one colour */
	colour_case(65536, 5000, 128, 0);

	/* The default allocator colours too. */
	{
		struct pool p;
		void *v[64];
		uintptr_t offs = 0;
		unsigned i, ndiff = 0;

		pool_init(&p, 1000, 16, 0, 0, "colour-def", NULL, IPL_NONE);
		T_GE(st_of(&p).ps_itemsperpage, 1);
		for (i = 0; i < 64; i++)
			v[i] = pool_get(&p, PR_WAITOK);
		for (i = 0; i < 64; i += st_of(&p).ps_itemsperpage) {
			uintptr_t o = (uintptr_t)v[i] & (PS - 1);

			if (i > 0 && o != offs)
				ndiff++;
			offs = o;
		}
		T_GT(ndiff, 0);
		for (i = 0; i < 64; i++)
			pool_put(&p, v[i]);
		pool_destroy(&p);
	}
}

/* ---- alignment of every item ---- */

static void
align_case(size_t size, unsigned align, int flags, struct pool_allocator *pa)
{
	struct kmem_pool_stats st;
	struct pool p;
	unsigned ea = align ? align : 8, n, i;
	void **v;

	pool_init(&p, size, align, 0, flags, "align", pa, IPL_NONE);
	st = st_of(&p);
	T_EQ(st.ps_itemsize % ea, 0);
	T_GE(st.ps_itemsize, size);
	T_LT(st.ps_itemsize, size + ea);
	n = st.ps_itemsperpage * 2 + 1;
	if (n > 300)
		n = 300;
	v = malloc(n * sizeof *v);
	T_ASSERT(v != NULL);
	for (i = 0; i < n; i++) {
		v[i] = pool_get(&p, PR_WAITOK);
		if ((uintptr_t)v[i] % ea != 0)
			T_FAIL("size %zu align %u flags %#x: item %p "
			       "misaligned",
			    size, align, (unsigned)flags, v[i]);
		if (pa != NULL)
			(void)tpa_page_of(v[i], size);
		memset(v[i], 0x5a, size);
	}
	check_disjoint(v, n, st.ps_itemsize);
	for (i = 0; i < n; i++)
		pool_put(&p, v[i]);
	pool_destroy(&p);
	free(v);
}

static void
test_alignment(void)
{
	static const size_t sizes[] = {
	    1, 3, 8, 24, 100, 640, 1000, 3000, 4096, 5000, 70000};
	struct pool_allocator pa;

	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		for (unsigned a = 0; a <= 4096; a = a ? a * 2 : 1) {
			align_case(sizes[s], a, 0, NULL);
			if (sizes[s] <= 5000)
				align_case(sizes[s], a, PR_NOTOUCH, NULL);
			if (sizes[s] <= 1000 && a <= 1024)
				align_case(sizes[s], a, PR_PHINPAGE, NULL);
		}
	}
	/* align 0 means 8 */
	{
		struct pool p;

		pool_init(&p, 1, 0, 0, 0, "align0", NULL, IPL_NONE);
		T_EQ(st_of(&p).ps_itemsize, 8);
		pool_destroy(&p);
		pool_init(&p, 9, 0, 0, 0, "align0", NULL, IPL_NONE);
		T_EQ(st_of(&p).ps_itemsize, 16);
		pool_destroy(&p);
		pool_init(&p, 9, 1, 0, 0, "align1", NULL, IPL_NONE);
		T_EQ(st_of(&p).ps_itemsize, 9);
		pool_destroy(&p);
	}
	/* A caller's pages, aligned and not. */
	for (unsigned a = 0; a <= 2048; a = a ? a * 2 : 1) {
		tpa_reset(&pa, 8192, 0);
		align_case(100, a, 0, &pa);
		tpa_reset(&pa, 8192, 0);
		align_case(100, a, PR_NOTOUCH, &pa);
		/* Pages 4096 bytes into their block: 4096-aligned. */
		tpa_reset(&pa, 8192, 4096);
		align_case(100, a, PR_NOALIGN, &pa);
	}
}

/* ---- flags ---- */

/*
 * An item's index by multiply and shift (kmemi_pool_idx_recip, what
 * pool_put uses instead of a division): off * mul >> shift == off / size
 * for every offset of every size in pages of 4 and 8 KiB, and, in pages
 * up to 2^30 bytes, at the offsets where a quotient changes (the last of
 * one item, the first and second of the next) for sizes near powers of
 * two, odd ones, and a random sample; no multiplier past 2^30.
 */
static void
check_recip(size_t size, size_t pagesz, uint64_t off)
{
	unsigned int mul, shift;

	T_ASSERT(kmemi_pool_idx_recip(size, pagesz, &mul, &shift));
	T_ASSERT(off < pagesz);
	if (((off * mul) >> shift) != off / size)
		T_FAIL("size %zu page %zu off %" PRIu64 ": %" PRIu64
		       " != %" PRIu64,
		    size, pagesz, off, (off * mul) >> shift, off / size);
}

static void
test_item_index(void)
{
	unsigned int mul, shift, k, j;
	size_t pagesz, size, sizes[64], ns;
	uint64_t off, q, nq, step;

	for (pagesz = 4096; pagesz <= 8192; pagesz *= 2)
		for (size = 1; size <= pagesz; size += size < 512 ? 1 : 7) {
			T_ASSERT(
			    kmemi_pool_idx_recip(size, pagesz, &mul, &shift));
			T_LE(mul, (uint64_t)2 * pagesz + 1);
			for (off = 0; off < pagesz; off++)
				if (((off * mul) >> shift) != off / size)
					T_FAIL("size %zu page %zu off %" PRIu64,
					    size, pagesz, off);
		}
	for (k = 12; k <= 30; k++) {
		pagesz = (size_t)1 << k;
		ns = 0;
		for (j = 3; j < k; j += 3) {
			sizes[ns++] = ((size_t)1 << j) - 1;
			sizes[ns++] = (size_t)1 << j;
			sizes[ns++] = ((size_t)1 << j) + 1;
		}
		sizes[ns++] = pagesz / 3;
		sizes[ns++] = pagesz - 1;
		sizes[ns++] = pagesz;
		sizes[ns++] = 48;
		sizes[ns++] = 1000003 % pagesz + 1;
		while (ns < KMEM_ARRAY_SIZE(sizes))
			sizes[ns++] = 1 + t_rand_below(pagesz);
		for (j = 0; j < ns; j++) {
			size = sizes[j];
			nq = pagesz / size;
			/* Every item boundary up to 4096 of them, else a
			 * stride through them with the last ones. */
			step = nq <= 4096 ? 1 : nq / 4096;
			for (q = 1; q <= nq; q += step) {
				check_recip(size, pagesz, q * size - 1);
				if (q * size < pagesz)
					check_recip(size, pagesz, q * size);
				if (q * size + 1 < pagesz)
					check_recip(size, pagesz, q * size + 1);
			}
			check_recip(size, pagesz, nq * size - 1);
			check_recip(size, pagesz, pagesz - 1);
			check_recip(size, pagesz, 0);
		}
	}
	T_ASSERT(!kmemi_pool_idx_recip(64, (size_t)1 << 31, &mul, &shift));
	T_EQ(mul, 0);
	T_ASSERT(!kmemi_pool_idx_recip(0, 4096, &mul, &shift));
	T_ASSERT(!kmemi_pool_idx_recip(64, 3000, &mul, &shift));
}

/*
 * kmemi_pool_get_batch (pool_cache's fill) takes a page's items a bitmap
 * word at a time: a batch is what one-at-a-time gets would have been --
 * from a fresh pool, the one page it grew (ascending); from primed pages,
 * page after page, ascending within each; with a low watermark, down to
 * it (the first item whatever it); at the hard limit, up to it.
 */
static void
test_get_batch(void)
{
	struct pool_allocator pa;
	struct kmem_pool_stats st;
	struct pool p;
	unsigned int ipp, n, got, i, before;
	void **v;
	char *pg;

	tpa_reset(&pa, 4096, 0);
	pool_init(&p, 48, 0, 0, 0, "getbatch", &pa, IPL_NONE);
	kmemi_pool_annot_set(&p, false);
	ipp = st_of(&p).ps_itemsperpage;
	T_ASSERT(ipp > 64); /* more than one bitmap word */
	n = 4 * ipp;
	v = malloc(n * sizeof *v);
	T_ASSERT(v != NULL);

	/* Empty pool: one page grown, all its items, ascending. */
	got = kmemi_pool_get_batch(&p, PR_WAITOK, v, n);
	T_EQ(got, ipp);
	pg = (char *)((uintptr_t)v[0] & ~(uintptr_t)4095);
	for (i = 0; i < got; i++) {
		T_ASSERT(i == 0 || (char *)v[i] == (char *)v[i - 1] + 48);
		T_EQ((uintptr_t)v[i] & ~(uintptr_t)4095, (uintptr_t)pg);
	}
	check_lists(&p, 0, 0, 1);
	kmemi_pool_put_batch(&p, v, got);

	/* Three pages: page after page; a batch ending inside a page. */
	pool_prime(&p, (int)(3 * ipp));
	T_EQ(st_of(&p).ps_npages, 3);
	got = kmemi_pool_get_batch(&p, PR_WAITOK, v, 2 * ipp + 5);
	T_EQ(got, 2 * ipp + 5);
	for (i = 1; i < got; i++)
		T_ASSERT(v[i] != v[i - 1]);
	for (i = 0; i < got; i++)
		if (i % ipp != 0) /* ascending within a page */
			T_ASSERT((char *)v[i] > (char *)v[i - 1]);
	check_lists(&p, 0, 1, 2);
	T_EQ(st_of(&p).ps_nout, got);
	kmemi_pool_put_batch(&p, v, got);
	T_EQ(st_of(&p).ps_nout, 0);

	/* Low watermark: down to it, then one. */
	pool_setlowat(&p, (int)(ipp + 7));
	st = st_of(&p);
	before = st.ps_nitems;
	T_LE(ipp + 7, before);
	got = kmemi_pool_get_batch(&p, PR_WAITOK, v, n);
	T_EQ(got, before - (ipp + 7));
	T_EQ(st_of(&p).ps_nitems, ipp + 7);
	T_EQ(kmemi_pool_get_batch(&p, PR_WAITOK, v + got, n - got), 1);
	got++;
	/* (Caught up: the pool grew back over the watermark.) */
	T_LE(ipp + 7, st_of(&p).ps_nitems);
	check_pool(&p);
	kmemi_pool_put_batch(&p, v, got);
	pool_setlowat(&p, 0);

	/* Hard limit: up to it; at it, NOWAIT gets none. */
	pool_sethardlimit(&p, 10, NULL, 0);
	got = kmemi_pool_get_batch(&p, PR_WAITOK, v, n);
	T_EQ(got, 10);
	T_EQ(kmemi_pool_get_batch(&p, PR_NOWAIT, v + got, n - got), 0);
	kmemi_pool_put_batch(&p, v, got);
	check_pool(&p);
	pool_destroy(&p);
	T_EQ(tpa.nalloc, tpa.nfree);
	free(v);
}

/*
 * kmemi_pool_put_batch (pool_cache's flush) remembers the page of the
 * previous item: batches in runs of one page, interleaved pages, and
 * pages that empty and leave the pool mid-batch (high watermark 0) leave
 * the pool consistent, every page given back, and the items, taken again,
 * distinct.
 */
static void
test_put_batch_pages(void)
{
	struct pool_allocator pa;
	struct pool p;
	unsigned int ipp, n, i, j, npg, round;
	void **v, **b;

	tpa_reset(&pa, 4096, 0);
	pool_init(&p, 48, 0, 0, 0, "putbatch", &pa, IPL_NONE);
	/* As a cache's pool: the batch puts do not annotate (annotate.h). */
	kmemi_pool_annot_set(&p, false);
	ipp = st_of(&p).ps_itemsperpage;
	npg = 6;
	n = npg * ipp;
	v = malloc(n * sizeof *v);
	b = malloc(n * sizeof *b);
	T_ASSERT(v != NULL && b != NULL);
	for (round = 0; round < 3; round++) {
		pool_sethiwat(&p, round == 2 ? 0 : (int)n);
		/* One page after another: a page's items are consecutive. */
		for (i = 0; i < n; i++)
			v[i] = pool_get(&p, PR_WAITOK);
		T_EQ(st_of(&p).ps_npages, npg);
		check_pool(&p);
		for (i = 0; i < n; i++) {
			if (round == 0) { /* runs of a page, pages shuffled */
				unsigned int pg = (i / ipp * 5 + 3) % npg;

				b[i] = v[pg * ipp + i % ipp];
			} else if (round == 1) { /* pages interleaved */
				b[i] = v[i % npg * ipp + i / npg];
			} else { /* random runs */
				b[i] = v[i];
			}
		}
		if (round == 2)
			for (i = n - 1; i > 0; i--) {
				void *t;

				j = (unsigned int)t_rand_below(i + 1);
				if (t_rand_below(4) != 0)
					continue; /* keep most runs */
				t = b[i];
				b[i] = b[j];
				b[j] = t;
			}
		for (i = 0; i < n; i += 63) {
			kmemi_pool_put_batch(
			    &p, b + i, n - i < 63 ? n - i : 63);
			check_pool(&p);
		}
		T_EQ(st_of(&p).ps_nout, 0);
		T_EQ(st_of(&p).ps_npages, round == 2 ? 0 : npg);
	}
	/* Taken again: n distinct items. */
	for (i = 0; i < n; i++)
		v[i] = pool_get(&p, PR_WAITOK);
	qsort(v, n, sizeof *v, cmp_ptr);
	for (i = 1; i < n; i++)
		T_ASSERT(v[i - 1] != v[i]);
	for (i = 0; i < n; i++)
		pool_put(&p, v[i]);
	check_pool(&p);
	pool_destroy(&p);
	T_EQ(tpa.nalloc, tpa.nfree);
	free(v);
	free(b);
}

/*
 * PR_NOALIGN pages aligned to less than the items' alignment: pool_init's
 * align is still a promise about every item.
 */
static void
test_noalign_item_alignment(void)
{
	struct pool_allocator pa;

	for (unsigned a = 128; a <= 1024; a *= 2) {
		tpa_reset(&pa, 8192, 64);
		align_case(100, a, PR_NOALIGN, &pa);
	}
}

static void
test_pr_zero(void)
{
	static const int fl[] = {0, PR_NOTOUCH, PR_PHINPAGE};

	for (size_t f = 0; f < 3; f++) {
		struct pool p;
		unsigned char *a, *b;

		pool_init(&p, 100, 0, 0, fl[f], "zero", NULL, IPL_NONE);
		a = pool_get(&p, PR_WAITOK);
		memset(a, 0xff, 100);
		pool_put(&p, a);
		b = pool_get(&p, PR_WAITOK | PR_ZERO);
		T_ASSERT(b == a);
		T_ASSERT(all_bytes(b, 0, 100));
		memset(b, 0xee, 100);
		pool_put(&p, b);
		b = pool_get(&p, PR_NOWAIT | PR_ZERO);
		T_ASSERT(b == a);
		T_ASSERT(all_bytes(b, 0, 100));
		pool_put(&p, b);
		pool_destroy(&p);
	}
}

/* The pool never writes into a free item (bitmap free tracking). */
static void
test_free_items_untouched(void)
{
	static const int fl[] = {0, PR_NOTOUCH, PR_PHINPAGE, PR_NOALIGN};

	for (size_t f = 0; f < 4; f++) {
		struct pool_allocator pa;
		struct pool p;
		unsigned n, i;
		void **v;
		bool look;

		tpa_reset(&pa, 4096, 0);
		pool_init(&p, 40, 0, 0, fl[f], "untouched", &pa, IPL_NONE);
		n = st_of(&p).ps_itemsperpage * 3;
		v = malloc(n * sizeof *v);
		T_ASSERT(v != NULL);
		for (i = 0; i < n; i++) {
			v[i] = pool_get(&p, PR_WAITOK);
			memset(v[i], (int)(((uintptr_t)v[i] >> 3) & 0xff), 40);
		}
		shuffle(v, n);
		for (i = 0; i < n; i++)
			pool_put(&p, v[i]);
		/* Under the tools free items are no access, new ones undefined.
		 */
		look = !t_annotated() || (fl[f] & PR_NOTOUCH);
		for (i = 0; i < n && look; i++)
			T_ASSERT(all_bytes(v[i],
			    (unsigned char)(((uintptr_t)v[i] >> 3) & 0xff),
			    40));
		for (i = 0; i < n; i++) {
			unsigned char *x = pool_get(&p, PR_WAITOK);

			T_ASSERT(!look ||
			    all_bytes(x,
				(unsigned char)(((uintptr_t)x >> 3) & 0xff),
				40));
		}
		T_EQ(st_of(&p).ps_npages, 3);
		for (i = 0; i < n; i++)
			pool_put(&p, v[i]);
		pool_destroy(&p);
		free(v);
	}
}

static void
test_misc_flags(void)
{
	struct pool_allocator pa;
	struct pool p, r;
	void *a, *b;
	int before;

	/* PR_WANTED, PR_LARGECACHE: accepted; PR_WANTED ignored on get;
	 * PR_LIMITFAIL without a limit changes nothing. */
	pool_init(
	    &p, 64, 0, 0, PR_WANTED | PR_LARGECACHE, "misc", NULL, IPL_NONE);
	T_EQ(st_of(&p).ps_flags, PR_WANTED | PR_LARGECACHE);
	a = pool_get(&p, PR_WAITOK | PR_WANTED);
	b = pool_get(&p, PR_WAITOK | PR_LIMITFAIL);
	T_ASSERT(a != NULL && b != NULL && a != b);
	pool_put(&p, a);
	pool_put(&p, b);
	pool_destroy(&p);

	/* PR_RECURSIVE pools are left out of pool_totalpages. */
	tpa_reset(&pa, 4 * PS, 0);
	pool_init(&p, 64, 0, 0, PR_PHINPAGE, "total", &pa, IPL_NONE);
	pool_init(&r, 64, 0, 0, PR_PHINPAGE | PR_RECURSIVE, "recursive", &pa,
	    IPL_NONE);
	before = pool_totalpages();
	a = pool_get(&r, PR_WAITOK);
	T_EQ(pool_totalpages(), before);
	b = pool_get(&p, PR_WAITOK);
	T_EQ(pool_totalpages(), before + 4);
	pool_put(&r, a);
	pool_put(&p, b);
	pool_destroy(&r);
	pool_destroy(&p);
	T_EQ(pool_totalpages(), before);
}

/* Items larger than a page: the default allocator picks a bigger page. */
static void
test_big_items(void)
{
	const size_t sizes[] = {
	    PS + 1, 3 * PS, 100000, 1u << 20, (1u << 24) - 4096, 1u << 24};

	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		struct kmem_pool_stats st;
		struct pool p;
		void *v[3];

		pool_init(&p, sizes[s], 0, 0, 0, "big", NULL, IPL_NONE);
		st = st_of(&p);
		T_GE(st.ps_pagesize, sizes[s]);
		T_ASSERT((st.ps_pagesize & (st.ps_pagesize - 1)) == 0);
		T_GE(st.ps_itemsperpage, 1);
		for (int i = 0; i < 3; i++) {
			v[i] = pool_get(&p, PR_WAITOK);
			T_ASSERT(v[i] != NULL);
			((char *)v[i])[0] = 1;
			((char *)v[i])[sizes[s] - 1] = 1;
		}
		check_disjoint(v, 3, st.ps_itemsize);
		for (int i = 0; i < 3; i++)
			pool_put(&p, v[i]);
		pool_destroy(&p);
	}
}

/* ---- hard limit ---- */

static void
test_hardlimit_exact(void)
{
	struct pool_allocator pa;
	struct kmem_pool_stats st;
	struct pool p;
	unsigned ipp, n, i;
	void *v[64], *x;

	tpa_reset(&pa, 4096, 0);
	pool_init(&p, 512, 0, 0, 0, "limit", &pa, IPL_NONE);
	ipp = st_of(&p).ps_itemsperpage;
	n = ipp + 3; /* not a whole number of pages */
	T_LT(n, 64);
	pool_sethardlimit(&p, n, NULL, 0);
	T_EQ(st_of(&p).ps_maxpages, 2);
	for (i = 0; i < n; i++) {
		v[i] = pool_get(&p, (i & 1) ? PR_NOWAIT : PR_WAITOK);
		T_ASSERT(v[i] != NULL);
	}
	T_ASSERT(pool_get(&p, PR_NOWAIT) == NULL);
	T_ASSERT(pool_get(&p, PR_WAITOK | PR_LIMITFAIL) == NULL);
	T_ASSERT(pool_get(&p, PR_NOWAIT | PR_LIMITFAIL) == NULL);
	st = st_of(&p);
	T_EQ(st.ps_nfail, 3);
	T_EQ(st.ps_nout, n);
	T_EQ(st.ps_npages, 2);
	T_EQ(st.ps_nitems, 2 * ipp - n); /* free, but over the limit */
	/* One put: exactly one more get. */
	pool_put(&p, v[5]);
	x = pool_get(&p, PR_NOWAIT);
	T_ASSERT(x == v[5]);
	T_ASSERT(pool_get(&p, PR_NOWAIT) == NULL);
	/* Raising the limit lets gets through. */
	pool_sethardlimit(&p, n + 1, NULL, 0);
	v[n] = pool_get(&p, PR_NOWAIT);
	T_ASSERT(v[n] != NULL);
	T_ASSERT(pool_get(&p, PR_NOWAIT) == NULL);
	for (i = 0; i <= n; i++)
		pool_put(&p, v[i]);
	check_pool(&p);
	pool_destroy(&p);
}

struct waiter {
	struct pool *pp;
	int flags;
	atomic_int done;
	void *item;
	pthread_t t;
};

static void *
waiter_fn(void *arg)
{
	struct waiter *w = arg;

	w->item = pool_get(w->pp, w->flags);
	atomic_store(&w->done, 1);
	return NULL;
}

static unsigned
nwaiters(struct pool *pp)
{
	unsigned n;

	pthread_mutex_lock(&pp->pr_lock);
	n = pp->pr_nwaiters;
	pthread_mutex_unlock(&pp->pr_lock);
	return n;
}

static void
wait_until_waiting(struct pool *pp, unsigned n)
{
	for (int i = 0; i < 5000 && nwaiters(pp) < n; i++)
		sleep_ms(1);
	T_EQ(nwaiters(pp), n);
}

static unsigned
ndone(struct waiter *w, unsigned n)
{
	unsigned d = 0;

	for (unsigned i = 0; i < n; i++)
		d += (unsigned)atomic_load(&w[i].done);
	return d;
}

static void
wait_done(struct waiter *w, unsigned n, unsigned want)
{
	for (int i = 0; i < 5000 && ndone(w, n) < want; i++)
		sleep_ms(1);
	T_EQ(ndone(w, n), want);
}

/*
 * NetBSD's rump "uvmwait" test, by the hard limit: two pools of
 * 1024-byte items on pool_allocator_nointr; the one at its limit blocks a
 * WAITOK get until another thread puts.
 */
static void
test_hardlimit_blocks(void)
{
	struct pool p, q;
	struct waiter w[2];
	void *v[32], *qv[32];
	unsigned i;

	pool_init(
	    &p, 1024, 0, 0, 0, "uvmwait", &pool_allocator_nointr, IPL_NONE);
	pool_init(&q, 1024, 0, 0, 0, "other", &pool_allocator_nointr, IPL_NONE);
	pool_sethardlimit(&p, 32, NULL, 0);
	for (i = 0; i < 32; i++) {
		qv[i] = pool_get(&q, PR_WAITOK);
		v[i] = pool_get(&p, PR_NOWAIT);
		T_ASSERT(v[i] != NULL);
	}
	T_ASSERT(pool_get(&p, PR_NOWAIT) == NULL);

	/* Two WAITOK getters sleep at the limit. */
	for (i = 0; i < 2; i++) {
		w[i].pp = &p;
		w[i].flags = PR_WAITOK;
		atomic_init(&w[i].done, 0);
		w[i].item = NULL;
		T_EQ(pthread_create(&w[i].t, NULL, waiter_fn, &w[i]), 0);
	}
	wait_until_waiting(&p, 2);
	sleep_ms(50);
	T_EQ(ndone(w, 2), 0);
	/* Puts to the other pool wake nobody. */
	pool_put(&q, qv[0]);
	sleep_ms(50);
	T_EQ(ndone(w, 2), 0);

	/* One put lets exactly one through. */
	pool_put(&p, v[7]);
	wait_done(w, 2, 1);
	sleep_ms(50);
	T_EQ(ndone(w, 2), 1);
	T_EQ(st_of(&p).ps_nout, 32);
	pool_put(&p, v[9]);
	wait_done(w, 2, 2);
	for (i = 0; i < 2; i++) {
		T_EQ(pthread_join(w[i].t, NULL), 0);
		T_ASSERT(w[i].item == v[7] || w[i].item == v[9]);
	}
	T_ASSERT(w[0].item != w[1].item);
	T_EQ(st_of(&p).ps_nout, 32);
	T_EQ(st_of(&p).ps_nfail, 1);
	v[7] = w[0].item;
	v[9] = w[1].item;

	/* Raising the limit wakes a sleeper too. */
	w[0].flags = PR_WAITOK;
	atomic_store(&w[0].done, 0);
	T_EQ(pthread_create(&w[0].t, NULL, waiter_fn, &w[0]), 0);
	wait_until_waiting(&p, 1);
	pool_sethardlimit(&p, 33, NULL, 0);
	T_EQ(pthread_join(w[0].t, NULL), 0);
	T_ASSERT(w[0].item != NULL);
	pool_put(&p, w[0].item);

	for (i = 0; i < 32; i++)
		pool_put(&p, v[i]);
	for (i = 1; i < 32; i++)
		pool_put(&q, qv[i]);
	check_pool(&p);
	check_pool(&q);
	pool_destroy(&p);
	pool_destroy(&q);
}

/* The drain hook runs at the limit; what it puts back is used. */
static struct {
	struct pool *pp;
	void *stash[4];
	int nstash;
	int calls, lastflags;
} hook;

static void
drain_hook(void *arg, int flags)
{
	T_ASSERT(arg == &hook);
	hook.calls++;
	hook.lastflags = flags;
	if (hook.nstash > 0)
		pool_put(hook.pp, hook.stash[--hook.nstash]);
}

static void
test_drain_hook(void)
{
	struct pool p;
	void *v[8], *x;
	int i;

	pool_init(&p, 128, 0, 0, 0, "hook", NULL, IPL_NONE);
	pool_set_drain_hook(&p, drain_hook, &hook);
	memset(&hook, 0, sizeof hook);
	hook.pp = &p;
	pool_sethardlimit(&p, 8, NULL, 0);
	for (i = 0; i < 8; i++)
		v[i] = pool_get(&p, PR_WAITOK);
	T_EQ(hook.calls, 0);
	hook.stash[0] = v[3];
	hook.nstash = 1;
	/* WAITOK at the limit: the hook frees one, no sleep. */
	x = pool_get(&p, PR_WAITOK);
	T_ASSERT(x == v[3]);
	T_EQ(hook.calls, 1);
	T_EQ(hook.lastflags, PR_WAITOK);
	/* NOWAIT: the hook runs, frees nothing, the get fails. */
	T_ASSERT(pool_get(&p, PR_NOWAIT) == NULL);
	T_EQ(hook.calls, 2);
	T_EQ(hook.lastflags, PR_NOWAIT);
	/* pool_reclaim calls it with PR_NOWAIT. */
	T_EQ(pool_reclaim(&p), 0);
	T_EQ(hook.calls, 3);
	T_EQ(hook.lastflags, PR_NOWAIT);
	for (i = 0; i < 8; i++)
		pool_put(&p, v[i]);
	pool_destroy(&p);
}

/* ---- failure to get pages ---- */

struct getter {
	struct pool *pp;
	atomic_int done;
	void *item;
};

static void *
getter_fn(void *arg)
{
	struct getter *g = arg;

	g->item = pool_get(g->pp, PR_WAITOK);
	atomic_store(&g->done, 1);
	return NULL;
}

static void
test_nowait_allocator_fails(void)
{
	struct pool_allocator pa;
	struct kmem_pool_stats st;
	struct pool p;
	struct getter g;
	pthread_t t;
	void *a, *b;
	unsigned ipp, i;
	unsigned long refused0;
	void *v[256];

	tpa_reset(&pa, 4096, 0);
	pool_init(&p, 256, 0, 0, PR_NOTOUCH, "refused", &pa, IPL_NONE);
	ipp = st_of(&p).ps_itemsperpage;
	atomic_store(&tpa.fail, true);
	T_ASSERT(pool_get(&p, PR_NOWAIT) == NULL);
	T_ASSERT(pool_get(&p, PR_NOWAIT | PR_ZERO) == NULL);
	st = st_of(&p);
	T_EQ(st.ps_nfail, 2);
	T_EQ(st.ps_npages, 0);
	T_EQ(st.ps_nget, 0);
	atomic_store(&tpa.fail, false);
	a = pool_get(&p, PR_NOWAIT);
	T_ASSERT(a != NULL);
	/* Items in the page still come while the allocator refuses. */
	atomic_store(&tpa.fail, true);
	for (i = 1; i < ipp; i++) {
		v[i] = pool_get(&p, PR_NOWAIT);
		T_ASSERT(v[i] != NULL);
	}
	T_ASSERT(pool_get(&p, PR_NOWAIT) == NULL);
	T_EQ(st_of(&p).ps_nfail, 3);
	check_pool(&p);

	/* WAITOK never returns NULL: it retries until the allocator
	 * gives. */
	g.pp = &p;
	atomic_init(&g.done, 0);
	g.item = NULL;
	pthread_mutex_lock(&tpa.lock);
	refused0 = tpa.nrefused;
	pthread_mutex_unlock(&tpa.lock);
	T_EQ(pthread_create(&t, NULL, getter_fn, &g), 0);
	sleep_ms(100);
	T_EQ(atomic_load(&g.done), 0);
	pthread_mutex_lock(&tpa.lock);
	T_GE(tpa.nrefused, refused0 + 3); /* it did retry */
	pthread_mutex_unlock(&tpa.lock);
	atomic_store(&tpa.fail, false);
	T_EQ(pthread_join(t, NULL), 0);
	T_ASSERT(g.item != NULL);
	T_EQ(st_of(&p).ps_nfail, 3);
	b = g.item;
	pool_put(&p, a);
	pool_put(&p, b);
	for (i = 1; i < ipp; i++)
		pool_put(&p, v[i]);
	check_pool(&p);
	pool_destroy(&p);
}

/*
 * The fault-injecting prim: once the page arena's free space is used up,
 * a NOWAIT get needs an import from prim, which fails.
 */
static void
test_nowait_prim_fault(void)
{
	enum { MAXN = 65536 }; /* 64 MiB of 1 KiB items at most */
	struct pool p, big;
	void **v;
	unsigned n, i;
	void *x;

	v = malloc(MAXN * sizeof *v);
	T_ASSERT(v != NULL);
	/* Pages of the system page size (the page arena's quantum caches). */
	pool_init(&p, PS / 4, 0, 0, 0, "fault", NULL, IPL_NONE);
	T_EQ(st_of(&p).ps_pagesize, PS);
	x = pool_get(&p, PR_WAITOK); /* the page arena exists */
	pool_put(&p, x);
	kmem_prim_fault_set(1, true);
	for (n = 0; n < MAXN; n++) {
		v[n] = pool_get(&p, PR_NOWAIT);
		if (v[n] == NULL)
			break;
	}
	T_LT(n, MAXN);
	T_GE(kmem_prim_fault_calls(), 1);
	T_EQ(st_of(&p).ps_nfail, 1);
	T_ASSERT(pool_get(&p, PR_NOWAIT) == NULL);
	kmem_prim_fault_set(0, false);
	x = pool_get(&p, PR_NOWAIT);
	T_ASSERT(x != NULL);
	pool_put(&p, x);
	for (i = 0; i < n; i++)
		pool_put(&p, v[i]);
	check_pool(&p);
	pool_destroy(&p);

	/* A 16 MiB page always needs a fresh import. */
	pool_init(&big, 1u << 24, 0, 0, 0, "fault-big", NULL, IPL_NONE);
	kmem_prim_fault_set(1, true);
	T_ASSERT(pool_get(&big, PR_NOWAIT) == NULL);
	T_EQ(st_of(&big).ps_nfail, 1);
	T_EQ(st_of(&big).ps_npages, 0);
	kmem_prim_fault_set(0, false);
	x = pool_get(&big, PR_NOWAIT);
	T_ASSERT(x != NULL);
	pool_put(&big, x);
	pool_destroy(&big);
	free(v);
}

/*
 * The same in a fresh process, where the first page ever asked for also
 * creates the page arena: a NOWAIT get must still just fail.
 */
static void
fresh_fault_body(void)
{
	struct pool p;
	void *x;

	pool_init(&p, 64, 0, 0, 0, "fresh", NULL, IPL_NONE);
	kmem_prim_fault_set(1, true);
	x = pool_get(&p, PR_NOWAIT);
	kmem_prim_fault_set(0, false);
	if (x != NULL)
		_exit(2);
	x = pool_get(&p, PR_NOWAIT);
	if (x == NULL)
		_exit(3);
	pool_put(&p, x);
	pool_destroy(&p);
	_exit(0);
}

/* This program's path, read at start-up (valgrind answers for it). */
static char self_exe[4096];

/* Run fresh_fault_body in a new image of this program. */
static void
fresh_fault_child(void *arg)
{
	(void)arg;
	execl(self_exe, "t_unit_pool", "--fresh-fault", (char *)NULL);
	_exit(4);
}

static void
test_nowait_prim_fault_fresh(void)
{
	char buf[4096];
	int status = t_child(fresh_fault_child, NULL, buf, sizeof buf);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		T_FAIL("NOWAIT get with prim failing, fresh process: status "
		       "%#x, stderr: %s",
		    (unsigned)status, buf);
}

/* ---- memory going back ---- */

static vmem_size_t
arena_inuse(void)
{
	return vmem_size(kmemi_page_arena(&kmemi_dom0), VMEM_ALLOC);
}

static void
reclaim_case(size_t size, bool reap)
{
	enum { NP = 40 };
	struct kmem_pool_stats st;
	struct pool p;
	vmem_size_t a0, a1, a2;
	unsigned n, i;
	void **v;

	set_idle_ms("10000");
	pool_init(&p, size, 0, 0, 0, "reclaim", NULL, IPL_NONE);
	st = st_of(&p);
	n = st.ps_itemsperpage * NP;
	v = malloc(n * sizeof *v);
	T_ASSERT(v != NULL);
	for (i = 0; i < n; i++)
		v[i] = pool_get(&p, PR_WAITOK);
	T_EQ(st_of(&p).ps_npages, NP);
	a0 = arena_inuse();
	for (i = 0; i < n; i++)
		pool_put(&p, v[i]);
	/* Empty but not idle: kept, reclaim frees nothing. */
	st = st_of(&p);
	T_EQ(st.ps_npages, NP);
	T_EQ(st.ps_nidle, NP);
	T_EQ(pool_reclaim(&p), 0);
	T_EQ(st_of(&p).ps_npages, NP);
	a1 = arena_inuse();
	T_EQ(a1, a0);
	/* Idle at once: reclaim gives every page back. */
	set_idle_ms("0");
	T_EQ(pool_reclaim(&p), 1);
	st = st_of(&p);
	T_EQ(st.ps_npages, 0);
	T_EQ(st.ps_nidle, 0);
	T_EQ(st.ps_npagefree, NP);
	T_EQ(pool_reclaim(&p), 0);
	if (reap)
		kmem_reap_all();
	a2 = arena_inuse();
	if (a2 + (vmem_size_t)NP * st.ps_pagesize > a1)
		T_FAIL("item size %zu, %u pages of %u bytes reclaimed: page "
		       "arena in use %zu -> %zu",
		    size, NP, st.ps_pagesize, (size_t)a1, (size_t)a2);
	set_idle_ms("10000");
	pool_destroy(&p);
	free(v);
}

static void
test_reclaim_returns_pages(void)
{
	reclaim_case(6000, false); /* 32 KiB pages: vmem_xalloc */
	reclaim_case(100000, false);
	/* 4 KiB pages go to the page arena's quantum cache first (as
	 * NetBSD's kmem_va_arena): the arena's size falls once it is
	 * reaped. */
	reclaim_case(256, true);
}

static void
test_idle_release(void)
{
	struct kmem_pool_stats st;
	struct pool p;
	unsigned ipp, i;
	void *v[3][512];

	pool_init(&p, 64, 0, 0, 0, "idle", NULL, IPL_NONE);
	ipp = st_of(&p).ps_itemsperpage;
	T_LE(ipp, 512);

	/* idle_ms 0: an emptied page goes back at once. */
	set_idle_ms("0");
	for (int k = 0; k < 3; k++)
		for (i = 0; i < ipp; i++)
			v[k][i] = pool_get(&p, PR_WAITOK);
	for (int k = 0; k < 3; k++)
		for (i = 0; i < ipp; i++)
			pool_put(&p, v[k][i]);
	st = st_of(&p);
	T_EQ(st.ps_npages, 0);
	T_EQ(st.ps_npagefree, 3);

	/* Reclaim frees pages only once idle. */
	set_idle_ms("400");
	for (int k = 0; k < 3; k++)
		for (i = 0; i < ipp; i++)
			v[k][i] = pool_get(&p, PR_WAITOK);
	for (int k = 0; k < 3; k++)
		for (i = 0; i < ipp; i++)
			pool_put(&p, v[k][i]);
	T_EQ(st_of(&p).ps_nidle, 3);
	T_EQ(pool_reclaim(&p), 0);
	T_EQ(st_of(&p).ps_npages, 3);
	sleep_ms(500);
	T_EQ(pool_reclaim(&p), 1);
	T_EQ(st_of(&p).ps_npages, 0);

	/* A page emptying frees the pages idle long enough, not itself. */
	for (int k = 0; k < 2; k++)
		for (i = 0; i < ipp; i++)
			v[k][i] = pool_get(&p, PR_WAITOK);
	for (i = 0; i < ipp; i++)
		pool_put(&p, v[0][i]);
	T_EQ(st_of(&p).ps_nidle, 1);
	sleep_ms(500);
	for (i = 0; i < ipp; i++)
		pool_put(&p, v[1][i]);
	st = st_of(&p);
	T_EQ(st.ps_npages, 1);
	T_EQ(st.ps_nidle, 1);
	/* kmem_reap: only idle ones; kmem_reap_all: all. */
	kmem_reap();
	T_EQ(st_of(&p).ps_npages, 1);
	set_idle_ms("10000");
	kmem_reap_all();
	T_EQ(st_of(&p).ps_npages, 0);
	check_pool(&p);
	pool_destroy(&p);
}

static void
test_lowat(void)
{
	struct pool_allocator pa;
	struct kmem_pool_stats st;
	struct pool p;
	unsigned ipp, lo, n, i;
	void **v;

	tpa_reset(&pa, 4096, 0);
	pool_init(&p, 128, 0, 0, 0, "lowat", &pa, IPL_NONE);
	ipp = st_of(&p).ps_itemsperpage;
	lo = 2 * ipp + 1;
	pool_setlowat(&p, (int)lo);
	st = st_of(&p);
	T_GE(st.ps_nitems, lo);
	T_EQ(st.ps_npages, 3);
	T_EQ(st.ps_minpages, 3);
	n = 5 * ipp;
	v = malloc(n * sizeof *v);
	T_ASSERT(v != NULL);
	for (i = 0; i < n; i++) {
		v[i] = pool_get(&p, PR_WAITOK);
		T_GE(st_of(&p).ps_nitems, lo); /* caught up after each get */
	}
	check_pool(&p);
	set_idle_ms("0");
	shuffle(v, n);
	for (i = 0; i < n; i++) {
		pool_put(&p, v[i]);
		T_GE(st_of(&p).ps_nitems, lo);
	}
	T_EQ(pool_reclaim(&p), 0); /* nothing above the watermark */
	kmem_reap_all();
	st = st_of(&p);
	T_GE(st.ps_nitems, lo);
	T_GE(st.ps_npages, 3);
	/* Low watermark off: all go. */
	pool_setlowat(&p, 0);
	kmem_reap_all();
	T_EQ(st_of(&p).ps_npages, 0);
	set_idle_ms("10000");
	pool_destroy(&p);
	T_EQ(tpa.nfree, tpa.nalloc);
	free(v);
}

static void
test_hiwat(void)
{
	struct pool_allocator pa;
	struct kmem_pool_stats st;
	struct pool p;
	unsigned ipp, n, i;
	void **v;

	set_idle_ms("10000");
	tpa_reset(&pa, 4096, 0);
	pool_init(&p, 128, 0, 0, 0, "hiwat", &pa, IPL_NONE);
	ipp = st_of(&p).ps_itemsperpage;
	n = 6 * ipp;
	v = malloc(n * sizeof *v);
	T_ASSERT(v != NULL);

	/* Without a high watermark every emptied page stays (not idle). */
	for (i = 0; i < n; i++)
		v[i] = pool_get(&p, PR_WAITOK);
	for (i = 0; i < n; i++)
		pool_put(&p, v[i]);
	T_EQ(st_of(&p).ps_npages, 6);
	/* Setting it below the free items gives back at once. */
	pool_sethiwat(&p, (int)ipp);
	st = st_of(&p);
	T_LE(st.ps_nitems, ipp);
	T_EQ(st.ps_npages, 1);
	check_pool(&p);

	/* Puts never leave more free items than the watermark in empty
	 * pages; with everything back, at most hiwat are kept. */
	for (int round = 0; round < 3; round++) {
		for (i = 0; i < n; i++)
			v[i] = pool_get(&p, PR_WAITOK);
		shuffle(v, n);
		for (i = 0; i < n; i++)
			pool_put(&p, v[i]);
		st = st_of(&p);
		T_EQ(st.ps_nout, 0);
		T_LE(st.ps_nitems, ipp);
		T_LE(st.ps_npages, 1);
		check_pool(&p);
	}
	/* hiwat 0: nothing kept. */
	pool_sethiwat(&p, 0);
	T_EQ(st_of(&p).ps_npages, 0);
	for (i = 0; i < n; i++)
		v[i] = pool_get(&p, PR_WAITOK);
	shuffle(v, n);
	for (i = 0; i < n; i++)
		pool_put(&p, v[i]);
	T_EQ(st_of(&p).ps_npages, 0);
	T_EQ(tpa.nfree, tpa.nalloc);
	pool_destroy(&p);
	free(v);
}

static void
test_prime(void)
{
	struct pool_allocator pa;
	struct kmem_pool_stats st;
	struct pool p;
	unsigned ipp;
	void *x;

	tpa_reset(&pa, 4096, 0);
	pool_init(&p, 128, 0, 0, 0, "prime", &pa, IPL_NONE);
	ipp = st_of(&p).ps_itemsperpage;
	pool_prime(&p, (int)(3 * ipp - 1));
	st = st_of(&p);
	T_EQ(st.ps_npages, 3);
	T_EQ(st.ps_minpages, 3);
	T_GE(st.ps_maxpages, 4);
	T_EQ(tpa.nalloc, 3);
	set_idle_ms("0");
	x = pool_get(&p, PR_WAITOK);
	pool_put(&p, x);
	kmem_reap_all();
	T_EQ(st_of(&p).ps_npages, 3);
	set_idle_ms("10000");
	pool_destroy(&p);
	T_EQ(tpa.nfree, 3);
}

/* ---- a caller's allocator gets every page back ---- */

static void
test_caller_allocator(void)
{
	static const int fl[] = {0, PR_NOTOUCH, PR_PHINPAGE};

	for (size_t f = 0; f < 3; f++) {
		struct pool_allocator pa;
		struct pool p;
		unsigned n = 1000, i;
		void **v = malloc(n * sizeof *v);

		T_ASSERT(v != NULL);
		tpa_reset(&pa, 16384, 0);
		pool_init(&p, 72, 0, 0, fl[f], "caller", &pa, IPL_NONE);
		for (i = 0; i < n; i++) {
			v[i] = pool_get(&p, PR_WAITOK);
			(void)tpa_page_of(v[i], 72);
		}
		shuffle(v, n);
		/* Half back: some pages empty, some partial. */
		for (i = 0; i < n / 2; i++)
			pool_put(&p, v[i]);
		check_pool(&p);
		for (; i < n; i++)
			pool_put(&p, v[i]);
		T_GT(tpa.nalloc, 1);
		T_EQ(tpa.nfree, 0);
		pool_destroy(&p);
		T_EQ(tpa.nfree, tpa.nalloc);
		for (i = 0; i < tpa.npg; i++)
			T_ASSERT(!tpa.pg[i].live);
		free(v);
	}
}

static void
test_pool_drain(void)
{
	struct pool_allocator pa;
	struct pool p, *which;
	void *v[3 * 64];
	unsigned ipp, n, i;
	bool found = false;

	set_idle_ms("10000");
	tpa_reset(&pa, 4096, 0);
	pool_init(&p, 256, 0, 0, PR_PHINPAGE, "drainme", &pa, IPL_NONE);
	ipp = st_of(&p).ps_itemsperpage;
	n = 3 * ipp;
	T_LE(n, 3 * 64);
	for (i = 0; i < n; i++)
		v[i] = pool_get(&p, PR_WAITOK);
	for (i = 0; i < n; i++)
		pool_put(&p, v[i]);
	T_EQ(st_of(&p).ps_npages, 3);
	set_idle_ms("0");
	for (i = 0; i < 10000 && !found; i++) {
		bool freed;

		which = NULL;
		freed = pool_drain(&which);
		if (which == &p) {
			found = true;
			T_ASSERT(freed);
		}
	}
	T_ASSERT(found);
	T_EQ(st_of(&p).ps_npages, 0);
	T_EQ(tpa.nfree, 3);
	set_idle_ms("10000");
	pool_destroy(&p);
}

/* ---- threads ---- */

#define NTHR 4

struct mt {
	struct pool *pp;
	unsigned id;
	unsigned long iters;
	unsigned limit; /* 0: none */
	unsigned long nfail;
	uint64_t seed;
};

struct stamp {
	unsigned id;
	unsigned long seq;
};

static void *
mt_fn(void *arg)
{
	struct mt *m = arg;
	struct stamp *held[64];
	unsigned nheld = 0;
	uint64_t x = m->seed | 1;

	for (unsigned long it = 0; it < m->iters; it++) {
		bool get;

		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		get = nheld == 0 ||
		    (nheld < 64 && (x * 2685821657736338717ull) >> 63);
		if (get) {
			struct stamp *s;

			if (m->limit != 0 && nheld > 0)
				s = pool_get(m->pp, PR_NOWAIT);
			else
				s = pool_get(m->pp, PR_WAITOK);
			if (s == NULL) {
				if (m->limit == 0)
					T_FAIL("NOWAIT get failed");
				m->nfail++;
				continue;
			}
			s->id = m->id;
			s->seq = it;
			held[nheld++] = s;
		} else {
			struct stamp *s = held[--nheld];

			T_EQ(s->id, m->id);
			pool_put(m->pp, s);
		}
	}
	while (nheld > 0) {
		T_EQ(held[nheld - 1]->id, m->id);
		pool_put(m->pp, held[--nheld]);
	}
	return NULL;
}

static void
mt_run(unsigned limit, unsigned long iters)
{
	struct kmem_pool_stats st;
	struct mt m[NTHR];
	pthread_t t[NTHR];
	struct pool p;
	unsigned i;

	pool_init(&p, sizeof(struct stamp) + 8, 0, 0, 0, "mt", NULL, IPL_NONE);
	if (limit)
		pool_sethardlimit(&p, limit, NULL, 0);
	for (i = 0; i < NTHR; i++) {
		m[i].pp = &p;
		m[i].id = i + 1;
		m[i].iters = iters;
		m[i].limit = limit;
		m[i].nfail = 0;
		m[i].seed = t_rand();
		T_EQ(pthread_create(&t[i], NULL, mt_fn, &m[i]), 0);
	}
	for (i = 0; i < NTHR; i++)
		T_EQ(pthread_join(t[i], NULL), 0);
	st = st_of(&p);
	T_EQ(st.ps_nout, 0);
	T_EQ(st.ps_nget, st.ps_nput);
	if (limit)
		T_LE(st.ps_npages,
		    (limit + st.ps_itemsperpage - 1) / st.ps_itemsperpage);
	check_pool(&p);
	pool_destroy(&p);
}

static void
test_threads(void)
{
	unsigned long iters = t_under_valgrind() ? 2000 : t_scale(30000);

	mt_run(0, iters);
	mt_run(40, iters); /* at the limit: NOWAIT fails, WAITOK waits */
}

int
main(int argc, char **argv)
{
	ssize_t len;

	if (argc > 1 && strcmp(argv[1], "--fresh-fault") == 0)
		fresh_fault_body();
	len = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
	if (len > 0)
		self_exe[len] = '\0';
	else
		snprintf(self_exe, sizeof self_exe, "%s", argv[0]);
	t_seed();
	PS = kmem_prim_page_size();
	kmem_options_init();
	set_idle_ms("10000");
	T_RUN(test_nowait_prim_fault);
	T_RUN(test_page_lists);
	T_RUN(test_header_placement);
	T_RUN(test_noalign_pages);
	T_RUN(test_noalign_adjacent);
	T_RUN(test_lookup_default_allocator);
	T_RUN(test_colouring);
	T_RUN(test_alignment);
	T_RUN(test_pr_zero);
	T_RUN(test_free_items_untouched);
	T_RUN(test_misc_flags);
	T_RUN(test_big_items);
	T_RUN(test_hardlimit_exact);
	T_RUN(test_hardlimit_blocks);
	T_RUN(test_drain_hook);
	T_RUN(test_nowait_allocator_fails);
	T_RUN(test_reclaim_returns_pages);
	T_RUN(test_idle_release);
	T_RUN(test_lowat);
	T_RUN(test_hiwat);
	T_RUN(test_prime);
	T_RUN(test_caller_allocator);
	T_RUN(test_pool_drain);
	T_RUN(test_threads);
	T_RUN(test_nowait_prim_fault_fresh);
	T_RUN(test_noalign_item_alignment);
	T_RUN(test_item_index);
	T_RUN(test_get_batch);
	T_RUN(test_put_batch_pages);
	return t_done();
}
