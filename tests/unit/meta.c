/*
 * meta.c -- the metadata region (src/meta.c) and the page-header canary
 * (pool.c section 2): allocator metadata out of an overflow's reach.
 *
 *  - test_overflow_targeted: fill pages of a size class, then, from the
 *    last object of each full page, write on into the page that follows,
 *    as a targeted overflow would: rewrite the free bitmap of every page
 *    header of the class found there.  Each page in a child: the write
 *    must fault (a guard page, or nothing mapped) or land in memory with
 *    no header in it, and the allocations that follow must never hand out
 *    a live object twice.  (Before the region, header pages sat in kva
 *    next to the class's pages: later allocations returned live objects.)
 *  - test_header_*: a page header overwritten through the internal
 *    headers is reported, one kmem: line and SIGABRT, on pool_get and on
 *    pool_put, for each check: canary, counts, empty bitmap, no item out;
 *    and an on-page header overwritten by an overflow off the page below.
 *  - test_meta_apart: a page header, a group, a boundary tag, a page-map
 *    leaf, a cache structure, an arena structure are in metadata runs; no
 *    run is within a page of a kva span, and every run has an
 *    inaccessible page on either side (/proc/self/maps).
 *  - test_guarded_run: kmem_prim_alloc_guarded's guards fault, fault
 *    injection counts the call, the registry follows map and unmap.
 */
#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include <setjmp.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/meta.h"
#include "internal/pool_cache_impl.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"
#include "t.h"

/* ---- a set of addresses (open addressing, power-of-two size) ---- */

struct aset {
	uintptr_t *slot;
	size_t mask, n;
};

static void
aset_init(struct aset *s, size_t cap)
{
	size_t n = 1;

	while (n < 2 * cap)
		n <<= 1;
	s->slot = calloc(n, sizeof *s->slot);
	T_ASSERT(s->slot != NULL);
	s->mask = n - 1;
	s->n = 0;
}

static size_t
aset_pos(const struct aset *s, uintptr_t a)
{
	size_t i = (size_t)((a >> 3) * 0x9e3779b97f4a7c15ull) & s->mask;

	while (s->slot[i] != 0 && s->slot[i] != a)
		i = (i + 1) & s->mask;
	return i;
}

static bool
aset_has(const struct aset *s, uintptr_t a)
{
	return s->slot[aset_pos(s, a)] == a;
}

/* False if a was there already. */
static bool
aset_add(struct aset *s, uintptr_t a)
{
	size_t i = aset_pos(s, a);

	if (s->slot[i] == a)
		return false;
	s->slot[i] = a;
	s->n++;
	return true;
}

/* Delete by rebuilding the probe run after the slot. */
static void
aset_del(struct aset *s, uintptr_t a)
{
	size_t i = aset_pos(s, a), j;
	uintptr_t v;

	if (s->slot[i] != a)
		return;
	s->slot[i] = 0;
	s->n--;
	for (j = (i + 1) & s->mask; (v = s->slot[j]) != 0;
	     j = (j + 1) & s->mask) {
		s->slot[j] = 0;
		s->n--;
		aset_add(s, v);
	}
}

/* ---- (a) a targeted overflow off the last object of a page ---- */

#define OV_SIZE	    16 /* the class whose headers the old layout showed */
#define OV_OBJECTS  20000
#define OV_MAXPAGES 96

static struct pool *ov_pool;
static struct aset ov_live;	   /* objects out, ours */
static struct aset ov_pages;	   /* every page of the class's pool */
static char *ov_page[OV_MAXPAGES]; /* full pages, all objects ours */
static size_t ov_npage, ov_pagesz;
static volatile sig_atomic_t ov_writing;

static void
ov_fault(int sig)
{
	if (ov_writing)
		_exit(42);    /* the write itself faulted: a guard page */
	signal(sig, SIG_DFL); /* a crash elsewhere: die of it */
}

static void
ov_collect(struct kmem_pool_page *head, bool full)
{
	struct kmem_pool_page *ph = head;
	unsigned int i;

	if (ph == NULL)
		return;
	do {
		aset_add(&ov_pages, (uintptr_t)ph->ph_page);
		for (i = 0; full && i < ph->ph_nitems; i++)
			if (!aset_has(&ov_live,
				(uintptr_t)ph->ph_items + i * ov_pool->pr_size))
				break;
		if (full && i == ph->ph_nitems && ov_npage < OV_MAXPAGES)
			ov_page[ov_npage++] = ph->ph_page;
		ph = ph->ph_next;
	} while (ph != head);
}

/* A new object: never one that is out already. */
static void *
ov_alloc(void)
{
	void *p = kmem_alloc(OV_SIZE, KM_SLEEP);

	if (!aset_add(&ov_live, (uintptr_t)p)) {
		fprintf(stderr, "kmem_alloc returned %p, which is live\n", p);
		_exit(2);
	}
	memset(p, 0x5a, OV_SIZE);
	return p;
}

static void
ov_child(void *arg)
{
	char *page = arg, *next = page + ov_pagesz, buf[4096];
	struct sigaction sa;
	size_t off, i, nfree = 0, found = 0, nitems;
	uintptr_t obj;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = ov_fault;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	/*
	 * The attacker's write, from the end of the page's last object on
	 * (what lies between is the page's unused tail) through the next
	 * page: that page's bytes with the bitmap of every header of the
	 * class found in it set to "all free", the rest as it was.
	 */
	ov_writing = 1;
	atomic_signal_fence(memory_order_seq_cst); /* no copy before it */
	memcpy(buf, next, sizeof buf);
	for (off = 0; off + sizeof(struct kmem_pool_page) <= sizeof buf;
	     off += 8) {
		struct kmem_pool_page *ph = (void *)(buf + off);

		if (ph->ph_pool != ov_pool || ph->ph_nitems == 0 ||
		    ph->ph_nitems > ov_pool->pr_itemsperpage ||
		    !aset_has(&ov_pages, (uintptr_t)ph->ph_page) ||
		    off + ov_pool->pr_phsize > sizeof buf)
			continue;
		for (i = 0; i < ph->ph_nitems; i++)
			ph->ph_bitmap[i / 64] |= (uint64_t)1 << (i % 64);
		found++;
	}
	memcpy(next, buf, sizeof buf);
	atomic_signal_fence(memory_order_seq_cst); /* nor after it */
	ov_writing = 0;
	if (found != 0)
		fprintf(stderr,
		    "%zu page headers of pool '%s' in the page "
		    "after %p\n",
		    found, ov_pool->pr_wchan, (void *)page);
	/*
	 * A program going on: allocates, frees some (every other object of
	 * the full pages: their pages go partial once the caches give them
	 * back, kmem_reap_all), allocates again.  No object twice.
	 */
	nitems = ov_pool->pr_itemsperpage;
	for (i = 0; i < 4 * nitems; i++)
		(void)ov_alloc();
	for (i = 0; i < ov_npage; i++) {
		for (off = 0; off < nitems; off += 2) {
			obj = (uintptr_t)ov_page[i] + off * OV_SIZE;
			if (aset_has(&ov_live, obj)) {
				aset_del(&ov_live, obj);
				kmem_free((void *)obj, OV_SIZE);
				nfree++;
			}
		}
	}
	kmem_reap_all();
	for (i = 0; i < 2 * nfree + 4 * nitems; i++)
		(void)ov_alloc();
	_exit(found != 0 ? 3 : 0);
}

static void
test_overflow_targeted(void)
{
	size_t i, nfault = 0, nland = 0;
	char buf[4096];
	int status;

	if (t_annotated()) {
		printf("   (not under valgrind or ASan: the reads and writes "
		       "past the page are the point, and the tool reports "
		       "them first)\n");
		return;
	}
	aset_init(&ov_live, 4 * OV_OBJECTS);
	aset_init(&ov_pages, 4096);
	for (i = 0; i < OV_OBJECTS; i++)
		(void)ov_alloc();
	ov_pool = (struct pool *)kmemi_class_cache(
	    kmemi_idx[(OV_SIZE + 7) >> KMEM_IDX_SHIFT]);
	T_EQ(ov_pool->pr_size, OV_SIZE);
	ov_pagesz = ov_pool->pr_alloc->pa_pagesz;
	ov_collect(ov_pool->pr_emptypages, false);
	ov_collect(ov_pool->pr_partpages, false);
	ov_collect(ov_pool->pr_fullpages, true);
	T_GE(ov_npage, 8);
	for (i = 0; i < ov_npage; i++) {
		status = t_child(ov_child, ov_page[i], buf, sizeof buf);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 42) {
			nfault++;
			continue;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			nland++;
			continue;
		}
		T_FAIL("overflow off page %p (%zu of %zu): status %#x "
		       "(2: an object handed out twice, 3: headers next to "
		       "the page, a signal: a crash after the write); "
		       "stderr:\n%s",
		    (void *)ov_page[i], i, ov_npage, (unsigned)status, buf);
	}
	printf("   %zu full pages: the write faulted after %zu, landed in "
	       "memory without headers after %zu\n",
	    ov_npage, nfault, nland);
}

/* ---- (b) page headers overwritten ---- */

/* A caller's allocator: two adjacent 4 KiB pages, handed out in order. */
static char *hp_mem;
static unsigned int hp_next;

static void *
hp_alloc(struct pool *pp, int flags)
{
	(void)pp;
	(void)flags;
	if (hp_mem == NULL) {
		hp_mem = aligned_alloc(4096, 8192);
		T_ASSERT(hp_mem != NULL);
	}
	return hp_next < 2 ? hp_mem + 4096 * hp_next++ : NULL;
}

static void
hp_free(struct pool *pp, void *v)
{
	(void)pp;
	(void)v;
}

static struct pool_allocator hp_pa = {hp_alloc, hp_free, 4096, 0, 0};

enum { HDR_ONPAGE, HDR_OFFPAGE };

static void
hdr_pool(struct pool *pp, int kind, const char *name)
{
	/* 64-byte items: header in the page; 512: in a header pool. */
	pool_init(
	    pp, kind == HDR_ONPAGE ? 64 : 512, 0, 0, 0, name, NULL, IPL_NONE);
	T_EQ(!!(pp->pr_roflags & 0x1), kind == HDR_OFFPAGE); /* OFFPAGE */
}

static void *
hdr_get(struct pool *pp)
{
	void *v = pool_get(pp, PR_NOWAIT);

	if (v == NULL)
		_exit(4);
	return v;
}

static void
hdr_expect(void (*fn)(void *), const char *call, const char *why)
{
	char buf[8192];
	int status = t_child(fn, NULL, buf, sizeof buf);

	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		T_FAIL("child did not abort (status %#x); stderr:\n%s",
		    (unsigned)status, buf);
	if (strncmp(buf, "kmem: ", 6) != 0 || strstr(buf, call) == NULL ||
	    strstr(buf, ": page header at 0x") == NULL ||
	    strstr(buf, " corrupted (page 0x") == NULL ||
	    strstr(buf, why) == NULL)
		T_FAIL("stderr lacks \"kmem: %s...: page header at ... "
		       "corrupted (page ...): %s\":\n%s",
		    call, why, buf);
	if (strchr(buf, '\n') != buf + strlen(buf) - 1)
		T_FAIL("not exactly one line:\n%s", buf);
	printf("   died as expected: %s", buf);
}

static void
hdr_get_canary(void *arg)
{
	struct pool p;

	(void)arg;
	hdr_pool(&p, HDR_ONPAGE, "hdr-on");
	(void)hdr_get(&p);
	/* The header's first word, where a linear overwrite starts. */
	*(volatile uint64_t *)p.pr_partpages ^= 1;
	(void)hdr_get(&p);
}

static void
hdr_put_canary(void *arg)
{
	struct pool p;
	void *v;

	(void)arg;
	hdr_pool(&p, HDR_OFFPAGE, "hdr-off");
	v = hdr_get(&p);
	*(volatile uint64_t *)p.pr_partpages = 0;
	pool_put(&p, v);
}

static void
hdr_get_counts(void *arg)
{
	struct pool p;

	(void)arg;
	hdr_pool(&p, HDR_OFFPAGE, "hdr-off");
	(void)hdr_get(&p);
	p.pr_partpages->ph_nmissing = p.pr_partpages->ph_nitems + 1;
	(void)hdr_get(&p);
}

static void
hdr_put_counts(void *arg)
{
	struct pool p;
	void *v;

	(void)arg;
	hdr_pool(&p, HDR_ONPAGE, "hdr-on");
	v = hdr_get(&p);
	p.pr_partpages->ph_hint = 1u << 20;
	pool_put(&p, v);
}

static void
hdr_get_bitmap(void *arg)
{
	struct pool p;
	struct kmem_pool_page *ph;

	(void)arg;
	hdr_pool(&p, HDR_OFFPAGE, "hdr-off");
	(void)hdr_get(&p);
	ph = p.pr_partpages;
	memset(ph->ph_bitmap, 0, p.pr_bmwords * sizeof(uint64_t));
	(void)hdr_get(&p);
}

static void
hdr_put_none_out(void *arg)
{
	struct pool p;
	void *v;

	(void)arg;
	hdr_pool(&p, HDR_ONPAGE, "hdr-on");
	v = hdr_get(&p);
	p.pr_partpages->ph_nmissing = 0;
	pool_put(&p, v);
}

/*
 * The blind overflow: the last item of the first page written on through
 * the start of the second page, whose header is there (on-page).  The
 * next get from the second page finds it overwritten.
 */
static void
hdr_overflow_onpage(void *arg)
{
	struct pool p;
	unsigned int i, ipp;
	char *last = NULL;

	(void)arg;
	pool_init(&p, 64, 0, 0, PR_PHINPAGE, "hdr-ovf", &hp_pa, IPL_NONE);
	ipp = p.pr_itemsperpage;
	for (i = 0; i < ipp + 1; i++) { /* page 1 full, one from page 2 */
		char *v = hdr_get(&p);

		if (v < hp_mem + 4096 && (last == NULL || v > last))
			last = v;
	}
	T_ASSERT(last != NULL);
	memset(last, 0x41, (size_t)(hp_mem + 4096 + 64 - last));
	(void)hdr_get(&p);
}

static void
test_header_canary(void)
{
	hdr_expect(
	    hdr_get_canary, "pool_get(pool 'hdr-on')", "canary does not match");
	hdr_expect(hdr_put_canary, "pool_put(pool 'hdr-off', 0x",
	    "canary does not match");
}

static void
test_header_counts(void)
{
	hdr_expect(
	    hdr_get_counts, "pool_get(pool 'hdr-off')", "counts out of range");
	hdr_expect(hdr_put_counts, "pool_put(pool 'hdr-on', 0x",
	    "counts out of range");
	hdr_expect(hdr_get_bitmap, "pool_get(pool 'hdr-off')",
	    "no free item in its bitmap");
	hdr_expect(
	    hdr_put_none_out, "pool_put(pool 'hdr-on', 0x", "no item out");
}

static void
test_header_overflow(void)
{
	hdr_expect(hdr_overflow_onpage, "pool_get(pool 'hdr-ovf')",
	    "canary does not match");
}

/* ---- (c) metadata apart from object pages ---- */

struct span {
	uintptr_t start, end; /* [start, end) */
};

static struct span kva_spans[4096];
static size_t kva_nspans;
static const void *kva_tag;

static int
kva_span_cb(vmem_addr_t start, vmem_size_t size, const void *tag, void *arg)
{
	(void)arg;
	T_LT(kva_nspans, KMEM_ARRAY_SIZE(kva_spans));
	kva_spans[kva_nspans].start = start;
	kva_spans[kva_nspans].end = start + size;
	kva_nspans++;
	kva_tag = tag;
	return 0;
}

/* True if [a, b) is within a page of a kva span. */
static bool
near_kva(uintptr_t a, uintptr_t b)
{
	size_t ps = kmem_prim_page_size(), i;

	for (i = 0; i < kva_nspans; i++)
		if (a < kva_spans[i].end + ps && kva_spans[i].start < b + ps)
			return true;
	return false;
}

/*
 * The mapping that holds a: its bounds and permissions ("" and a one-byte
 * range if none), from /proc/self/maps.
 */
static void
map_find(uintptr_t a, uintptr_t *lop, uintptr_t *hip, char perms[5])
{
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long lo, hi;
	char line[512], p[8];

	T_ASSERT(f != NULL);
	strcpy(perms, "");
	*lop = a;
	*hip = a + 1;
	while (fgets(line, sizeof line, f) != NULL) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, p) == 3 && a >= lo &&
		    a < hi) {
			snprintf(perms, 5, "%.4s", p);
			*lop = lo;
			*hip = hi;
			break;
		}
	}
	fclose(f);
}

static void
map_perms(uintptr_t a, char perms[5])
{
	uintptr_t lo, hi;

	map_find(a, &lo, &hi, perms);
}

static size_t meta_nruns;

static int
meta_run_cb(uintptr_t start, size_t size, void *arg)
{
	size_t ps = kmem_prim_page_size();
	char below[5], above[5];

	(void)arg;
	meta_nruns++;
	if (near_kva(start, start + size))
		T_FAIL("metadata run [%#lx, %#lx) within a page of a kva span",
		    (unsigned long)start, (unsigned long)(start + size));
	map_perms(start - ps, below);
	map_perms(start + size, above);
	if (strcmp(below, "---p") != 0 || strcmp(above, "---p") != 0)
		T_FAIL("metadata run [%#lx, %#lx): pages around it are "
		       "\"%s\" and \"%s\", not guard pages",
		    (unsigned long)start, (unsigned long)(start + size), below,
		    above);
	return 0;
}

/*
 * p is metadata: in a metadata run, not within a page of a kva span, and
 * the kernel's view agrees: the mapping that holds p has an inaccessible
 * page right below and right above it.
 */
static void
meta_check(const char *what, const void *p)
{
	size_t ps = kmem_prim_page_size();
	uintptr_t a = (uintptr_t)p, lo, hi;
	char perms[5], below[5], above[5];

	T_ASSERT(p != NULL);
	if (!kmemi_meta_owns(&kmemi_dom0, p))
		T_FAIL("%s at %p is not in the metadata region", what, p);
	if (near_kva(a, a + 1))
		T_FAIL("%s at %p is within a page of a kva span", what, p);
	map_find(a, &lo, &hi, perms);
	map_perms(lo - ps, below);
	map_perms(hi, above);
	if (strcmp(perms, "rw-p") != 0 || strcmp(below, "---p") != 0 ||
	    strcmp(above, "---p") != 0)
		T_FAIL("%s at %p: in a mapping [%#lx, %#lx) \"%s\" with \"%s\" "
		       "below and \"%s\" above, not between guard pages",
		    what, p, (unsigned long)lo, (unsigned long)hi, perms, below,
		    above);
	printf("   %-22s %p: metadata, between guard pages\n", what, p);
}

static void
test_meta_apart(void)
{
	void *small[2000], *large[8];
	struct pool *pp;
	struct pc_cpu *cpus;
	const void *group = NULL;
	unsigned int ncpu, i, c;
	uintptr_t r;
	bool rseq;

	/* Pages of several classes, large blocks, groups (frees). */
	for (i = 0; i < KMEM_ARRAY_SIZE(small); i++)
		small[i] = kmem_alloc(16 + (i % 7) * 100, KM_SLEEP);
	for (i = 0; i < KMEM_ARRAY_SIZE(large); i++)
		large[i] = kmem_alloc((i + 1) << 16, KM_SLEEP);
	for (i = 0; i < KMEM_ARRAY_SIZE(small); i += 2)
		kmem_free(small[i], 16 + (i % 7) * 100);

	kva_nspans = 0;
	kmemi_vmem_spans(kmemi_page_arena(&kmemi_dom0), kva_span_cb, NULL);
	T_GE(kva_nspans, 1);

	c = kmemi_idx[(16 + 7) >> KMEM_IDX_SHIFT];
	pp = (struct pool *)kmemi_class_cache(c);
	T_ASSERT(pp->pr_fullpages != NULL || pp->pr_partpages != NULL);
	meta_check("page header",
	    pp->pr_fullpages != NULL ? pp->pr_fullpages : pp->pr_partpages);
	for (c = 0; c < kmemi_nclasses() && group == NULL; c++) {
		if (kmemi_class_cache(c) == NULL) /* made on first use */
			continue;
		cpus = kmemi_cache_cpus(kmemi_class_cache(c), &ncpu, &rseq);
		for (i = 0; i < ncpu && group == NULL; i++)
			if (cpus[i].cc_current != NULL)
				group = cpus[i].cc_current;
			else if (cpus[i].cc_previous != NULL)
				group = cpus[i].cc_previous;
	}
	meta_check("group", group);
	meta_check("boundary tag", kva_tag);
	r = ((uintptr_t)small[1] >> PM_SHIFT) >> PM_LEAF_SHIFT;
	meta_check("page-map leaf", kmemi_pm_root[r]);
	meta_check("cache and CPU slots", pp);
	for (c = 0; c < kmemi_nclasses(); c++)
		if (kmemi_class_cache(c) == NULL) { /* its stand-in slots */
			meta_check(
			    "unmade class's slots", kmemi_fast[c].kf_cpus);
			break;
		}
	meta_check("arena structure", kmemi_page_arena(&kmemi_dom0));
	meta_check("metadata arena", kmemi_meta_arena(&kmemi_dom0));
	if (pp->pr_phhash != pp->pr_phhash0)
		meta_check("page hash table", pp->pr_phhash);

	/* Every run: away from kva, guard pages on both sides. */
	meta_nruns = 0;
	kmemi_meta_foreach(&kmemi_dom0, meta_run_cb, NULL);
	T_GE(meta_nruns, 4);
	printf("   %zu metadata runs, %zu kva spans: none within a page of "
	       "the other, every run between guard pages\n",
	    meta_nruns, kva_nspans);

	for (i = 1; i < KMEM_ARRAY_SIZE(small); i += 2)
		kmem_free(small[i], 16 + (i % 7) * 100);
	for (i = 0; i < KMEM_ARRAY_SIZE(large); i++)
		kmem_free(large[i], (i + 1) << 16);
}

/* ---- prim's guarded runs and the registry ---- */

static char *gr_addr;

static void
gr_touch_below(void *arg)
{
	(void)arg;
	t_segv_default();
	gr_addr[-1] = 1;
}

static void
gr_touch_above(void *arg)
{
	(void)arg;
	t_segv_default();
	gr_addr[2 * kmem_prim_page_size()] = 1;
}

static void
test_guarded_run(void)
{
	size_t ps = kmem_prim_page_size(), i;
	void *p, *q, *many[200];
	char buf[256];
	int status;

	T_EQ(kmem_prim_alloc_guarded(0, &p), EINVAL);
	T_EQ(kmem_prim_alloc_guarded(ps + 1, &p), EINVAL);
	T_EQ(kmem_prim_alloc_guarded(SIZE_MAX & ~(ps - 1), &p), ENOMEM);
	T_EQ(kmem_prim_alloc_guarded(2 * ps, &p), 0);
	gr_addr = p;
	T_ASSERT(gr_addr[0] == 0 && gr_addr[2 * ps - 1] == 0);
	memset(p, 0x77, 2 * ps);
	if (!t_under_valgrind()) {
		status = t_child(gr_touch_below, NULL, buf, sizeof buf);
		T_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
		status = t_child(gr_touch_above, NULL, buf, sizeof buf);
		T_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
	}
	T_EQ(kmem_prim_release_guarded((char *)p + 1, ps), EINVAL);
	T_EQ(kmem_prim_release_guarded(p, 2 * ps), 0);

	/* Counted as a memory-obtaining call by fault injection. */
	kmem_prim_fault_set(1, false);
	T_EQ(kmem_prim_alloc_guarded(ps, &p), ENOMEM);
	T_EQ(kmem_prim_fault_calls(), 1);
	kmem_prim_fault_set(0, false);

	/* The registry follows runs, and says what is near one. */
	T_EQ(kmemi_meta_map(&kmemi_dom0, 3 * ps, &q), 0);
	T_ASSERT(kmemi_meta_owns(&kmemi_dom0, q) &&
	    kmemi_meta_owns(&kmemi_dom0, (char *)q + 3 * ps - 1));
	T_ASSERT(!kmemi_meta_owns(&kmemi_dom0, (char *)q - 1));
	T_ASSERT(!kmemi_meta_owns(&kmemi_dom0, (char *)q + 3 * ps));
	/* Near: overlapping or adjacent; a page between (a guard's) is not. */
	T_ASSERT(kmemi_meta_near(&kmemi_dom0, (char *)q + 3 * ps, ps));
	T_ASSERT(kmemi_meta_near(&kmemi_dom0, (char *)q - ps, ps));
	T_ASSERT(!kmemi_meta_near(&kmemi_dom0, (char *)q + 4 * ps, ps));
	T_ASSERT(!kmemi_meta_near(&kmemi_dom0, (char *)q - 3 * ps, 2 * ps));
	kmemi_meta_unmap(&kmemi_dom0, q, 3 * ps);
	T_ASSERT(!kmemi_meta_owns(&kmemi_dom0, q));
	/* Past its first 64 entries, and past its first growth. */
	for (i = 0; i < KMEM_ARRAY_SIZE(many); i++)
		T_EQ(kmemi_meta_map(&kmemi_dom0, ps, &many[i]), 0);
	for (i = 0; i < KMEM_ARRAY_SIZE(many); i++)
		T_ASSERT(kmemi_meta_owns(&kmemi_dom0, many[i]));
	for (i = 0; i < KMEM_ARRAY_SIZE(many); i++)
		kmemi_meta_unmap(&kmemi_dom0, many[i], ps);
	for (i = 0; i < KMEM_ARRAY_SIZE(many); i++)
		T_ASSERT(!kmemi_meta_owns(&kmemi_dom0, many[i]));

	/* From the metadata arena: zeroed, page-rounded, reusable. */
	T_EQ(kmemi_meta_alloc(&kmemi_dom0, 100, VM_NOSLEEP, &q), 0);
	T_ASSERT(kmemi_meta_owns(&kmemi_dom0, q));
	memset(q, 0xee, ps);
	kmemi_meta_free(&kmemi_dom0, q, 100);
	T_EQ(kmemi_meta_alloc(&kmemi_dom0, ps, VM_NOSLEEP, &p), 0);
	T_ASSERT(((char *)p)[0] == 0 && ((char *)p)[ps - 1] == 0);
	kmemi_meta_free(&kmemi_dom0, p, ps);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_guarded_run);
	T_RUN_IF(test_header_canary);
	T_RUN_IF(test_header_counts);
	T_RUN_IF(test_header_overflow);
	T_RUN_IF(test_meta_apart);
	T_RUN_IF(test_overflow_targeted);
	return t_done();
}
