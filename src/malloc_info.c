/*
 * malloc_info.c -- glibc's introspection calls on libkmem-malloc.so:
 * mallinfo2, mallinfo, malloc_stats and malloc_info, answered from kmem's
 * own statistics (compiled into libkmem-malloc.so only, beside malloc.c).
 *
 * 1. What it is.  Programs written for glibc ask their allocator how much
 *    it holds through <malloc.h>: mallinfo2() (and the older mallinfo(),
 *    whose int fields cannot hold 2 GiB), malloc_stats() (a report on
 *    standard error) and malloc_info() (XML to a stream).  Preloaded, kmem
 *    must answer them, or the program reads glibc's idle main arena and
 *    gets numbers about nothing.
 *
 * 2. What is read.  One snapshot (struct mi_snap) of the default domain,
 *    the one malloc serves: every size class's pool cache
 *    (kmemi_class_cache), kva's quantum caches (kmemi_vmem_qcache: the
 *    blocks of 16 KiB to 64 KiB), the page arena kva, the other arenas
 *    (kmeta), and the metadata runs (kmemi_meta_foreach).  Per cache, from
 *    kmem_pool_cache_stats: out = objects the pool handed out less those
 *    cached in CPU groups and the depot -- what the program holds --,
 *    cached, free items in the pool's pages, pages.  Then:
 *    - in use by the program = the classes' out x size, plus the large
 *      blocks: kva's bytes in use, less the quantum caches' pages, plus
 *      what the quantum caches handed out, less the classes' pool pages
 *      (which come from kva by vmem_xalloc: kmem.c, kmem_page_alloc).
 *      Sizes are what kmem gave (the class, the page-rounded block), not
 *      what was asked.
 *    - held but free = kva's bytes less that: objects and blocks cached in
 *      CPU groups and depots, free items in pool pages, the pages' tails
 *      too small for an item, kva's free ranges (dirty, or purged but
 *      still mapped until their span goes back).
 *    - metadata = the metadata runs (kmeta's spans, vmem's own tags and
 *      hashes, the page map's leaves), guard pages not counted.
 *    The mallinfo mapping (documented in kmem(3), MALLOC INTROSPECTION):
 *      arena    bytes of kva's spans (all object memory kmem has mapped)
 *      ordblks  free items in pool pages + free segments of kva
 *      smblks   objects and blocks cached in CPU groups and depots
 *      hblks    metadata runs
 *      hblkhd   bytes of metadata runs
 *      usmblks  0 (as in glibc)
 *      fsmblks  bytes of the cached objects and blocks
 *      uordblks bytes in use by the program
 *      fordblks arena - uordblks: held but free
 *      keepcost kva's free bytes, outside the caches: the dirty ranges a
 *               purge or malloc_trim gives back, and those already purged
 *    so arena = uordblks + fordblks, as in glibc's main arena, and
 *    arena + hblkhd is everything kmem has mapped.  mallinfo's int fields
 *    saturate at INT_MAX rather than wrap (glibc's wrap).
 *
 * 3. Output.  malloc_stats is kmem_stats_print(NULL, KMEM_STATS_ALL):
 *    stats.c's pool, pool cache and arena tables (what kmemstat and
 *    KMEM_STATS print), on standard error.  malloc_info(0, fp) writes
 *    glibc's document shape: <malloc version="1">, one <heap nr=N
 *    name="arena"> per arena (kva first), in kva's a <sizes> list with one
 *    <size from= to= total= count=> per size class holding free objects
 *    (cached or in pool pages; from..to the request sizes the class
 *    serves), then one <cache> element per pool cache (kmem's own:
 *    name, size, pagesize, pages, inuse, cached, free and the layers'
 *    hits and misses), then <total type= count= size=> for "inuse",
 *    "cached", "pool" (free items in pool pages) and "vmem" (free
 *    segments), <system type="current"> and <aspace type="total">; after
 *    the heaps the same totals for the process, <total type="meta"> for
 *    the metadata runs, and <system>/<aspace> for all kmem has mapped.
 *    Names are escaped (&, <, >, " and control characters).  options
 *    other than 0: -1 with errno EINVAL and nothing written (the man
 *    page's contract; glibc 2.36 returns EINVAL itself, errno untouched).
 *
 * 4. Locking.  Nothing of its own.  Each cache is read by
 *    kmem_pool_cache_stats (the pool's lock, then each CPU's spin lock,
 *    the depot lock and the empty-group lock, one at a time), kva and the
 *    other arenas by kmem_vmem_stats under their lock (the others inside
 *    kmemi_vmem_foreach_in, list lock -> arena lock, as vmem.c), the runs
 *    under the registry's leaf lock -- each taken alone with nothing else
 *    held, so any thread may call these while others allocate.  The
 *    classes' caches and kva's quantum caches live as long as the process
 *    (the default domain is never destroyed), so no reference is held.
 *    The figures are a sum of per-lock snapshots, not one instant: with
 *    other threads allocating they are off by what moved meanwhile (each
 *    cache's out is clamped at 0, in use at kva's size).  Nothing is
 *    printed under a lock: malloc_info's fprintf may allocate (through
 *    this library), and runs after the snapshot is taken.
 *
 * 5. Failure policy.  Before kmem is set up, and in the thread running
 *    fork(2) while it holds every lock of the library (kmemi_fork_by_self:
 *    another library's fork handler), there is nothing to read without
 *    deadlocking: mallinfo2 returns zeros, malloc_stats prints the empty
 *    tables (before set-up) or nothing (in fork), malloc_info writes an
 *    empty document (before set-up) or fails with EBUSY (in fork).  A
 *    write error of fp: -1 with stdio's errno.  fp NULL: -1, EINVAL.
 *    Nothing allocates but malloc_info's stdio, outside every lock; the
 *    snapshot is on the caller's stack (about 10 KiB for malloc_info,
 *    with its per-cache rows; under 1 KiB for mallinfo2).
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/meta.h"
#include "internal/pool_impl.h"

#define KMEM_EXPORT __attribute__((visibility("default")))

struct mallinfo2 mallinfo2(void) KMEM_EXPORT;
struct mallinfo mallinfo(void) KMEM_EXPORT;
void malloc_stats(void) KMEM_EXPORT;
int malloc_info(int options, FILE *fp) KMEM_EXPORT;

#define MI_QCACHES 16 /* kva's quantum caches: 1 to 16 pages (vmem.c) */
#define MI_CACHES  (KMEM_NCLASS + MI_QCACHES)
#define MI_ARENAS  8 /* malloc_info: arenas shown (the shim has 2) */

/* One pool cache, as malloc_info shows it. */
struct mi_cache {
	char name[32];
	size_t size;	 /* item size */
	size_t from;	 /* the smallest request it serves (classes) */
	size_t pagesize; /* its pool's page */
	unsigned long pages, out, cached, free;
	unsigned long cpuhit, cpumiss, depothit, depotmiss;
	bool qcache; /* one of kva's quantum caches, not a size class */
};

/* The snapshot (section 2); rows only when "rows" is not NULL. */
struct mi_snap {
	bool ready;			/* kmem is set up: the rest is filled */
	struct kmem_vmem_stats kva;	/* the page arena */
	unsigned long long class_pages; /* bytes of the classes' pool pages */
	unsigned long long qc_pages;	/* ... of the quantum caches' pages */
	unsigned long class_npages;	/* pages of the classes' pools */
	unsigned long qc_npages;	/* ... of the quantum caches' pools */
	unsigned long long small_inuse; /* classes: out x size */
	unsigned long small_count;	/* ... out */
	unsigned long long qc_out_bytes; /* quantum caches: out x size */
	unsigned long qc_out;		 /* ... out */
	unsigned long long cached_bytes; /* in CPU groups and depots */
	unsigned long cached;
	unsigned long long pool_free_bytes; /* free items in pool pages */
	unsigned long pool_free;
	unsigned long long meta_bytes; /* metadata runs */
	unsigned long meta_runs;
	/* Derived (mi_finish). */
	unsigned long long inuse, large_bytes, heldfree;
	unsigned long inuse_count, large_count;
	/* malloc_info's rows. */
	struct mi_cache *rows;
	unsigned int nrows;
};

/* a - b, or 0 if b is larger (snapshots of a moving heap). */
static unsigned long long
sub0(unsigned long long a, unsigned long long b)
{
	return a > b ? a - b : 0;
}

/*
 * The smallest request the class of size "size" serves: the first size
 * that kmemi_size_name maps to its name (one lookup per step).
 */
static size_t
mi_class_from(size_t size)
{
	const char *name = kmemi_size_name(size);
	size_t lo = 1, hi = size;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (kmemi_size_name(mid) == name)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* One cache's snapshot, added to s (and a row when s->rows is set). */
static void
mi_cache(struct mi_snap *s, pool_cache_t pc, bool qcache)
{
	struct kmem_pool_stats st;
	unsigned long out;

	kmem_pool_cache_stats(pc, &st);
	st.ps_name[sizeof st.ps_name - 1] = '\0';
	out = st.ps_nout > st.ps_cached_objects
	    ? (unsigned long)st.ps_nout - st.ps_cached_objects
	    : 0;
	if (qcache) {
		s->qc_pages +=
		    (unsigned long long)st.ps_npages * st.ps_pagesize;
		s->qc_npages += st.ps_npages;
		s->qc_out_bytes += (unsigned long long)out * st.ps_itemsize;
		s->qc_out += out;
	} else {
		s->class_pages +=
		    (unsigned long long)st.ps_npages * st.ps_pagesize;
		s->class_npages += st.ps_npages;
		s->small_inuse += (unsigned long long)out * st.ps_itemsize;
		s->small_count += out;
	}
	s->cached += st.ps_cached_objects;
	s->cached_bytes +=
	    (unsigned long long)st.ps_cached_objects * st.ps_itemsize;
	s->pool_free += st.ps_nitems;
	s->pool_free_bytes += (unsigned long long)st.ps_nitems * st.ps_itemsize;
	if (s->rows != NULL && s->nrows < MI_CACHES) {
		struct mi_cache *r = &s->rows[s->nrows++];

		memcpy(r->name, st.ps_name, sizeof r->name);
		r->size = st.ps_itemsize;
		r->from = qcache ? 0 : mi_class_from(st.ps_itemsize);
		r->pagesize = st.ps_pagesize;
		r->pages = st.ps_npages;
		r->out = out;
		r->cached = st.ps_cached_objects;
		r->free = st.ps_nitems;
		r->cpuhit = st.ps_cpuhit;
		r->cpumiss = st.ps_cpumiss;
		r->depothit = st.ps_depothit;
		r->depotmiss = st.ps_depotmiss;
		r->qcache = qcache;
	}
}

static int
mi_meta_run(uintptr_t start, size_t size, void *arg)
{
	struct mi_snap *s = arg;

	(void)start;
	s->meta_bytes += size;
	s->meta_runs++;
	return 0;
}

/* The figures of section 2 from the sums. */
static void
mi_finish(struct mi_snap *s)
{
	unsigned long long kva_direct;

	/* kva's busy bytes outside the quantum caches' pages... */
	kva_direct = sub0(s->kva.vs_inuse, s->qc_pages);
	/* ... are the classes' pages and the large blocks over 16 pages. */
	s->large_bytes = sub0(kva_direct, s->class_pages) + s->qc_out_bytes;
	s->large_count =
	    (unsigned long)sub0(
		sub0(s->kva.vs_nbusy, s->qc_npages), s->class_npages) +
	    s->qc_out;
	s->inuse = s->small_inuse + s->large_bytes;
	if (s->inuse > s->kva.vs_total)
		s->inuse = s->kva.vs_total;
	s->inuse_count = s->small_count + s->large_count;
	s->heldfree = s->kva.vs_total - s->inuse;
}

/* Fill s; false (s zeroed but rows) when there is nothing to read. */
static bool
mi_snapshot(struct mi_snap *s)
{
	struct mi_cache *rows = s->rows;
	pool_cache_t pc, prev = NULL;
	size_t q;
	unsigned int i, n;
	vmem_t *kva;

	memset(s, 0, sizeof *s);
	s->rows = rows;
	if ((KMEMI_GATE() & KMEM_GATE_INIT) || kmemi_fork_by_self())
		return false;
	kva = kmemi_page_arena(&kmemi_dom0);
	if (kva == NULL)
		return false;
	kmemi_malloc_bins_flush();
	s->ready = true;
	n = kmemi_nclasses();
	for (i = 0; i < n; i++) {
		if ((pc = kmemi_class_cache(i)) != NULL)
			mi_cache(s, pc, false);
	}
	kmem_vmem_stats(kva, &s->kva);
	q = s->kva.vs_quantum;
	/* Caches serving several sizes appear once (vmem.c, qc_init). */
	for (i = 1; i <= MI_QCACHES; i++) {
		pc = kmemi_vmem_qcache(kva, i * q);
		if (pc != NULL && pc != prev)
			mi_cache(s, pc, true);
		prev = pc;
	}
	(void)kmemi_meta_foreach(&kmemi_dom0, mi_meta_run, s);
	mi_finish(s);
	return true;
}

/* ---- mallinfo2, mallinfo ---- */

struct mallinfo2
mallinfo2(void)
{
	struct mallinfo2 mi;
	struct mi_snap s;
	int saved = errno;

	memset(&mi, 0, sizeof mi);
	s.rows = NULL;
	if (mi_snapshot(&s)) {
		mi.arena = s.kva.vs_total;
		mi.ordblks = s.pool_free + s.kva.vs_nfree;
		mi.smblks = s.cached;
		mi.hblks = s.meta_runs;
		mi.hblkhd = s.meta_bytes;
		mi.usmblks = 0;
		mi.fsmblks = s.cached_bytes;
		mi.uordblks = s.inuse;
		mi.fordblks = s.heldfree;
		mi.keepcost = s.kva.vs_total - s.kva.vs_inuse;
	}
	errno = saved;
	return mi;
}

static int
sat(size_t v)
{
	return v > (size_t)INT_MAX ? INT_MAX : (int)v;
}

/* mallinfo2's figures, each saturated at INT_MAX (glibc's wrap). */
struct mallinfo
mallinfo(void)
{
	struct mallinfo2 m2 = mallinfo2();
	struct mallinfo mi;

	mi.arena = sat(m2.arena);
	mi.ordblks = sat(m2.ordblks);
	mi.smblks = sat(m2.smblks);
	mi.hblks = sat(m2.hblks);
	mi.hblkhd = sat(m2.hblkhd);
	mi.usmblks = sat(m2.usmblks);
	mi.fsmblks = sat(m2.fsmblks);
	mi.uordblks = sat(m2.uordblks);
	mi.fordblks = sat(m2.fordblks);
	mi.keepcost = sat(m2.keepcost);
	return mi;
}

/* ---- malloc_stats ---- */

void
malloc_stats(void)
{
	int saved = errno;

	if (kmemi_fork_by_self())
		return;
	/* What the program has buffered for stderr goes first. */
	fflush(stderr);
	kmemi_malloc_bins_flush();
	kmem_stats_print(NULL, KMEM_STATS_ALL);
	errno = saved;
}

/* ---- malloc_info ---- */

/* s as an XML attribute value (at most 31 bytes of it). */
static const char *
xml_attr(char *dst, size_t n, const char *s)
{
	size_t j = 0, len = strnlen(s, 31), k;

	for (k = 0; k < len && j + 7 < n; k++) {
		unsigned char c = (unsigned char)s[k];
		const char *e = c == '&' ? "&amp;"
		    : c == '<'		 ? "&lt;"
		    : c == '>'		 ? "&gt;"
		    : c == '"'		 ? "&quot;"
					 : NULL;

		if (e != NULL) {
			memcpy(dst + j, e, strlen(e));
			j += strlen(e);
		} else {
			/* XML 1.0 allows no control characters but tab etc. */
			dst[j++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
		}
	}
	dst[j] = '\0';
	return dst;
}

/* An arena other than kva (kmemi_vmem_foreach_in's callback). */
struct mi_arenas {
	const vmem_t *kva;
	unsigned int n;
	struct kmem_vmem_stats st[MI_ARENAS];
};

static int
mi_arena_fn(vmem_t *vm, void *arg)
{
	struct mi_arenas *a = arg;

	if (vm == a->kva)
		return 0;
	kmem_vmem_stats(vm, &a->st[a->n]);
	a->st[a->n].vs_name[sizeof a->st[a->n].vs_name - 1] = '\0';
	return ++a->n == MI_ARENAS;
}

/* One <heap> of an arena (kva's with its caches when rows != NULL). */
static int
mi_heap(FILE *fp, unsigned int nr, const struct kmem_vmem_stats *st,
    const struct mi_snap *s)
{
	char name[32 * 6 + 1];
	unsigned long long vfree = st->vs_total - st->vs_inuse;
	unsigned int i;
	int e = 0;

	e |= fprintf(fp, "<heap nr=\"%u\" name=\"%s\">\n<sizes>\n", nr,
	    xml_attr(name, sizeof name, st->vs_name));
	for (i = 0; s != NULL && i < s->nrows; i++) {
		const struct mi_cache *r = &s->rows[i];
		unsigned long n = r->cached + r->free;

		if (!r->qcache && n != 0)
			e |= fprintf(fp,
			    "<size from=\"%zu\" to=\"%zu\" total=\"%llu\" "
			    "count=\"%lu\"/>\n",
			    r->from, r->size, (unsigned long long)n * r->size,
			    n);
	}
	e |= fprintf(fp, "</sizes>\n");
	for (i = 0; s != NULL && i < s->nrows; i++) {
		const struct mi_cache *r = &s->rows[i];

		e |= fprintf(fp,
		    "<cache name=\"%s\" size=\"%zu\" pagesize=\"%zu\" "
		    "pages=\"%lu\" inuse=\"%lu\" cached=\"%lu\" free=\"%lu\" "
		    "cpuhit=\"%lu\" cpumiss=\"%lu\" depothit=\"%lu\" "
		    "depotmiss=\"%lu\"/>\n",
		    xml_attr(name, sizeof name, r->name), r->size, r->pagesize,
		    r->pages, r->out, r->cached, r->free, r->cpuhit, r->cpumiss,
		    r->depothit, r->depotmiss);
	}
	if (s != NULL) {
		e |= fprintf(fp,
		    "<total type=\"inuse\" count=\"%lu\" size=\"%llu\"/>\n"
		    "<total type=\"cached\" count=\"%lu\" size=\"%llu\"/>\n"
		    "<total type=\"pool\" count=\"%lu\" size=\"%llu\"/>\n",
		    s->inuse_count, s->inuse, s->cached, s->cached_bytes,
		    s->pool_free, s->pool_free_bytes);
	} else {
		e |= fprintf(fp,
		    "<total type=\"inuse\" count=\"%llu\" size=\"%llu\"/>\n",
		    (unsigned long long)st->vs_nbusy,
		    (unsigned long long)st->vs_inuse);
	}
	e |= fprintf(fp,
	    "<total type=\"vmem\" count=\"%llu\" size=\"%llu\"/>\n"
	    "<system type=\"current\" size=\"%llu\"/>\n"
	    "<aspace type=\"total\" size=\"%llu\"/>\n</heap>\n",
	    (unsigned long long)st->vs_nfree, vfree,
	    (unsigned long long)st->vs_total, (unsigned long long)st->vs_total);
	return e < 0 ? -1 : 0;
}

int
malloc_info(int options, FILE *fp)
{
	struct mi_cache rows[MI_CACHES];
	struct mi_arenas a;
	struct mi_snap s;
	unsigned long long mapped;
	unsigned int i;
	int e = 0;

	if (options != 0 || fp == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (kmemi_fork_by_self()) {
		errno = EBUSY;
		return -1;
	}
	s.rows = rows;
	a.n = 0;
	if (mi_snapshot(&s)) {
		a.kva = kmemi_page_arena(&kmemi_dom0);
		(void)kmemi_vmem_foreach_in(&kmemi_dom0, mi_arena_fn, &a);
	}
	/* Nothing is locked from here on: fprintf may call malloc. */
	e |= fprintf(fp, "<malloc version=\"1\">\n");
	if (s.ready) {
		e |= mi_heap(fp, 0, &s.kva, &s);
		for (i = 0; i < a.n; i++)
			e |= mi_heap(fp, i + 1, &a.st[i], NULL);
	}
	mapped = s.kva.vs_total + s.meta_bytes;
	e |= fprintf(fp,
	    "<total type=\"inuse\" count=\"%lu\" size=\"%llu\"/>\n"
	    "<total type=\"cached\" count=\"%lu\" size=\"%llu\"/>\n"
	    "<total type=\"pool\" count=\"%lu\" size=\"%llu\"/>\n"
	    "<total type=\"vmem\" count=\"%llu\" size=\"%llu\"/>\n"
	    "<total type=\"meta\" count=\"%lu\" size=\"%llu\"/>\n"
	    "<system type=\"current\" size=\"%llu\"/>\n"
	    "<aspace type=\"total\" size=\"%llu\"/>\n</malloc>\n",
	    s.inuse_count, s.inuse, s.cached, s.cached_bytes, s.pool_free,
	    s.pool_free_bytes, (unsigned long long)s.kva.vs_nfree,
	    (unsigned long long)(s.kva.vs_total - s.kva.vs_inuse), s.meta_runs,
	    s.meta_bytes, mapped, mapped);
	return e < 0 || ferror(fp) ? -1 : 0;
}
