/*
 * meta.c -- the metadata region: the memory of everything the allocator
 * trusts, kept away from the pages it hands out.
 *
 * 0. Domains.  Each domain has its own region: registry, metadata arena
 *    and runs are in struct kmem_domain (domain.h), and every function
 *    here takes the domain.  What follows is the default domain's; another
 *    domain's runs come from its page source through kmemi_dom_pages,
 *    without guard pages (a source has none to give: its metadata is in
 *    runs apart from its objects, not fenced off), zeroed when mapped (a
 *    source's pages need not be zero), its kmeta never purged (a source's
 *    purge promises no zeros), imported by at least 64 KiB, and every
 *    run goes back to the source when the domain is destroyed
 *    (kmemi_meta_dom_fini).
 *
 * 1. Why.  A heap overflow runs off the end of an object into whatever
 *    follows it.  When that was a pool page header in the next page of the
 *    page arena, a targeted overflow could set bits of its free bitmap and
 *    make later allocations hand out live objects a second time, and a
 *    blind one crashed inside the pool with nothing said.  So no byte of
 *    metadata is mapped next to a page of objects: every run of metadata
 *    has an inaccessible guard page on each side (kmem_prim_alloc_guarded:
 *    the guards belong to the run's mapping, so the kernel can put nothing
 *    there), and object pages -- the page arena "kva", debug guard slots,
 *    a caller's pool allocator -- never come from these runs.  An overflow
 *    off an object page faults on a guard page or lands in other objects;
 *    it never reaches metadata.  (The page headers also carry a keyed
 *    canary, pool.c section 2, for what gets past this.)
 *
 * 2. Data structures.
 *    - Run: [guard page][data, a page multiple][guard page], mapped and
 *      unmapped whole through prim.  "The region" is the set of live runs.
 *    - Registry: every live run's data as (start, size), sorted by start,
 *      in an array that starts in the data segment and, when full,
 *      doubles into a guarded run of its own (not itself registered).
 *      It answers "is this metadata" in O(log n): the debug check that no
 *      page arena span is within a page of metadata (kmemi_meta_near,
 *      pool.c's import), and the tests.  Runs are few and large (chunks,
 *      tables, 1 MiB spans), so the insertion's memmove costs nothing
 *      beside the mmap it follows.
 *    - The metadata arena "kmeta": a vmem arena, quantum = page, no
 *      quantum caches, importing runs of at least META_IMPORT and giving
 *      them back when wholly free; freed ranges (zeroed by
 *      kmemi_meta_free) are purged after purge_delay_ms as in kva (vmem.c
 *      section 7), and by kmem_reap_all with kva's
 *      (kmemi_page_arena_purge).
 *
 * 3. Who takes what.
 *    - Runs of their own (kmemi_meta_map): vmem's own metadata, that is
 *      the boundary-tag chunks, the arena structures and the busy-hash
 *      tables (vmem.c section 2).  These cannot come from kmeta: kmeta's
 *      own tags, structure and hash are among them, and tags are refilled
 *      and hashes resized with an arena's lock held.
 *    - kmeta (kmemi_meta_alloc): the pages of the header pools
 *      ("phpool-N") and group pools ("pcg-N"), pool page-hash tables,
 *      pool_cache structures with their per-CPU slots, the debug record
 *      table and quarantine, the page map's leaves; from META_DIRECT on,
 *      a run of its own instead (the 4 MiB page-map leaves, large record
 *      tables), so that one big table does not pin a span of small ones.
 *    The static state (the tag reserve, the header and group pool
 *    structures, the page map's root) is in the library's data segment,
 *    not among objects either.
 *
 * 4. Invariants.  Registry: sorted, disjoint, exactly the live runs.
 *    No run's data is within a page of a kva span (asserted at kva's
 *    imports in debug builds).  kmemi_meta_alloc returns zeroed memory:
 *    kmeta's free ranges are always zero (fresh, purged, or cleared by
 *    kmemi_meta_free).
 *
 * 5. Locking.  meta_lock protects the registry.  It is a leaf: taken
 *    under arena locks and the tag-supply lock (vmem.c), held only for a
 *    binary search and a memmove, or the registry's growth (one prim
 *    call).  kmeta's own lock is an arena lock (vmem.c); it is taken under
 *    pool locks (hash resize) and the debug lock, never under another
 *    arena's lock, since vmem.c takes nothing from kmeta.  kmeta is made
 *    on first use and published with a compare-and-swap (a racing loser
 *    destroys its copy), so no lock orders its creation.  fork(2):
 *    meta_lock after every vmem lock (fork.c); kmeta's lock with the
 *    arenas.
 *
 * 6. Failure policy.  No memory: ENOMEM to the caller, who fails or
 *    retries as it did when it mapped its memory itself; VM_SLEEP
 *    requests wait in kmeta as in any arena.  A run that cannot be
 *    registered (the registry cannot grow) is unmapped and the call fails.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/meta.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"

/* kmeta imports runs of this much at least: kva's PAGE_ARENA_IMPORT. */
#define META_IMPORT (1u << 20)
/* A domain's: a page source may be a region of a few megabytes. */
#define META_IMPORT_SRC (64u << 10)
/* From here a request gets a run of its own: a quarter of an import. */
#define META_DIRECT (256u << 10)

/*
 * Each domain's registry and arena are in its structure (domain.h):
 * kd_meta_runs (sorted by mr_start; kd_meta_runs0 at first: the default
 * domain's is in the data segment, a guarded run being two system calls,
 * 6 to 9 us here against 1 to 3 for a plain mmap, and kmem's set-up
 * making 5 runs, python3 running tests/programs/alloc.py 8 in all,
 * counted with strace), kd_meta_nruns, kd_meta_cap, kd_meta_lock,
 * kd_meta_arena.
 */
#define meta_run   kmemi_meta_run
#define META_RUNS0 KMEMI_META_RUNS0
/* ---- the registry (meta_lock held) ---- */

/* Index of the first run that starts at or above a. */
static size_t
meta_lower(struct kmem_domain *d, uintptr_t a)
{
	size_t lo = 0, hi = d->kd_meta_nruns, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (d->kd_meta_runs[mid].mr_start < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * A run's memory: between guard pages from prim for the default domain;
 * from the page source for the others (a source has no guard pages to
 * give: their metadata is apart from their objects, in runs of their
 * own, but not fenced off).
 */
static int
meta_pages(struct kmem_domain *d, size_t size, void **out)
{
	if (d->kd_default)
		return kmem_prim_alloc_guarded(size, out);
	return kmemi_dom_pages(d, size, 0, out);
}

static void
meta_pages_free(struct kmem_domain *d, void *p, size_t size)
{
	if (d->kd_default)
		kmem_prim_release_guarded(p, size);
	else
		kmemi_dom_pages_free(d, p, size);
}

/* Double the registry; 0 or ENOMEM (the old one kept). */
static int
meta_grow(struct kmem_domain *d)
{
	size_t bytes =
	    kmem_align_up(2 * d->kd_meta_cap * sizeof(struct meta_run),
		kmem_prim_page_size());
	size_t ncap = bytes / sizeof(struct meta_run);
	struct meta_run *old = d->kd_meta_runs;
	void *m;

	if (meta_pages(d, bytes, &m) != 0)
		return ENOMEM;
	memcpy(m, old, d->kd_meta_nruns * sizeof *old);
	d->kd_meta_runs = m;
	if (old != d->kd_meta_runs0)
		meta_pages_free(d, old,
		    kmem_align_up(
			d->kd_meta_cap * sizeof *old, kmem_prim_page_size()));
	d->kd_meta_cap = ncap;
	return 0;
}

/* ---- runs ---- */

int
kmemi_meta_map(struct kmem_domain *d, size_t size, void **out)
{
	size_t ps = kmem_prim_page_size(), i;
	uintptr_t sz;
	void *p;

	if (size == 0 || !kmem_align_up_ok(size, ps, &sz))
		return ENOMEM;
	if (meta_pages(d, sz, &p) != 0)
		return ENOMEM;
	if (!d->kd_default) /* a source's pages need not be zero */
		memset(p, 0, sz);
	kmem_mutex_enter(&d->kd_meta_lock);
	if (d->kd_meta_nruns == d->kd_meta_cap && meta_grow(d) != 0) {
		kmem_mutex_exit(&d->kd_meta_lock);
		meta_pages_free(d, p, sz);
		return ENOMEM;
	}
	i = meta_lower(d, (uintptr_t)p);
	memmove(&d->kd_meta_runs[i + 1], &d->kd_meta_runs[i],
	    (d->kd_meta_nruns - i) * sizeof *d->kd_meta_runs);
	d->kd_meta_runs[i].mr_start = (uintptr_t)p;
	d->kd_meta_runs[i].mr_size = sz;
	d->kd_meta_nruns++;
	kmem_mutex_exit(&d->kd_meta_lock);
	*out = p;
	return 0;
}

void
kmemi_meta_unmap(struct kmem_domain *d, void *p, size_t size)
{
	struct meta_run *r = d->kd_meta_runs;
	size_t i;

	size = kmem_align_up(size, kmem_prim_page_size());
	kmem_mutex_enter(&d->kd_meta_lock);
	i = meta_lower(d, (uintptr_t)p);
	KMEM_ASSERT(i < d->kd_meta_nruns && r[i].mr_start == (uintptr_t)p &&
	    r[i].mr_size == size);
	if (i < d->kd_meta_nruns && r[i].mr_start == (uintptr_t)p) {
		memmove(
		    &r[i], &r[i + 1], (d->kd_meta_nruns - i - 1) * sizeof *r);
		d->kd_meta_nruns--;
	}
	kmem_mutex_exit(&d->kd_meta_lock);
	meta_pages_free(d, p, size);
}

bool
kmemi_meta_near(struct kmem_domain *d, const void *addr, size_t size)
{
	size_t ps = kmem_prim_page_size(), i;
	uintptr_t lo = (uintptr_t)addr, hi;
	bool near;

	hi = lo + size + ps < lo ? UINTPTR_MAX : lo + size + ps;
	lo = lo < ps ? 0 : lo - ps;
	kmem_mutex_enter(&d->kd_meta_lock);
	i = meta_lower(d, lo);
	near = (i > 0 &&
		   d->kd_meta_runs[i - 1].mr_start +
			   d->kd_meta_runs[i - 1].mr_size >
		       lo) ||
	    (i < d->kd_meta_nruns && d->kd_meta_runs[i].mr_start < hi);
	kmem_mutex_exit(&d->kd_meta_lock);
	return near;
}

bool
kmemi_meta_owns(struct kmem_domain *d, const void *p)
{
	uintptr_t a = (uintptr_t)p;
	size_t i;
	bool owns;

	kmem_mutex_enter(&d->kd_meta_lock);
	i = meta_lower(d, a + 1);
	owns = i > 0 &&
	    a - d->kd_meta_runs[i - 1].mr_start <
		d->kd_meta_runs[i - 1].mr_size;
	kmem_mutex_exit(&d->kd_meta_lock);
	return owns;
}

int
kmemi_meta_foreach(
    struct kmem_domain *d, int (*fn)(uintptr_t, size_t, void *), void *arg)
{
	size_t i;
	int rv = 0;

	kmem_mutex_enter(&d->kd_meta_lock);
	for (i = 0; i < d->kd_meta_nruns && rv == 0; i++)
		rv = fn(d->kd_meta_runs[i].mr_start, d->kd_meta_runs[i].mr_size,
		    arg);
	kmem_mutex_exit(&d->kd_meta_lock);
	return rv;
}

/* ---- the metadata arena ---- */

static int
meta_import(vmem_t *src, vmem_size_t size, vm_flag_t flags, vmem_addr_t *addrp)
{
	void *p;

	(void)flags;
	if (kmemi_meta_map(SRC_DOM(src), size, &p) != 0)
		return ENOMEM;
	*addrp = (vmem_addr_t)p;
	return 0;
}

static void
meta_release(vmem_t *src, vmem_addr_t addr, vmem_size_t size)
{
	kmemi_meta_unmap(SRC_DOM(src), (void *)addr, size);
}

static void
meta_purge_range(vmem_addr_t addr, vmem_size_t size)
{
	kmem_prim_purge((void *)addr, size);
}

vmem_t *
kmemi_meta_arena(struct kmem_domain *d)
{
	vmem_t *vm =
	    atomic_load_explicit(&d->kd_meta_arena, memory_order_acquire);
	vmem_t *none = NULL;
	struct kmem_domain *prev;

	if (kmem_likely(vm != NULL))
		return vm;
	prev = kmemi_dom_push(d);
	vm = vmem_create("kmeta", 0, 0, kmem_prim_page_size(), meta_import,
	    meta_release, DOM_SRC(d), 0, VM_NOSLEEP, IPL_VM);
	kmemi_dom_pop(prev);
	/* No memory even for that: NULL, tried again next time. */
	if (vm == NULL)
		return NULL;
	kmem_vmem_set_min_import(
	    vm, d->kd_default ? META_IMPORT : META_IMPORT_SRC);
	/*
	 * The default domain purges free metadata after the delay, as kva
	 * (its pages read as zero again); a source's purge promises no
	 * zeros, and kmeta's free ranges must be zero: no purge there.
	 */
	if (d->kd_default)
		kmemi_vmem_set_purge(
		    vm, meta_purge_range, d->kd_opts.purge_delay_ms * 1000000u);
	if (!atomic_compare_exchange_strong_explicit(&d->kd_meta_arena, &none,
		vm, memory_order_acq_rel, memory_order_acquire)) {
		vmem_destroy(vm); /* another thread made it first */
		vm = none;
	}
	return vm;
}

void
kmemi_meta_purge(struct kmem_domain *d, bool all)
{
	vmem_t *vm =
	    atomic_load_explicit(&d->kd_meta_arena, memory_order_acquire);

	if (vm != NULL && d->kd_default)
		kmemi_vmem_purge(vm, all);
}

bool
kmemi_meta_purge_step(struct kmem_domain *d)
{
	vmem_t *vm =
	    atomic_load_explicit(&d->kd_meta_arena, memory_order_acquire);

	return vm != NULL && d->kd_default && kmemi_vmem_purge_step(vm);
}

int
kmemi_meta_alloc(
    struct kmem_domain *d, size_t size, vm_flag_t flags, void **out)
{
	size_t ps = kmem_prim_page_size();
	uintptr_t sz;
	vmem_addr_t a;
	vmem_t *vm;

	if (size == 0 || !kmem_align_up_ok(size, ps, &sz))
		return ENOMEM;
	if (sz >= META_DIRECT)
		return kmemi_meta_map(d, sz, out); /* fresh pages: zero */
	if ((vm = kmemi_meta_arena(d)) == NULL ||
	    vmem_alloc(vm, sz,
		((flags & VM_SLEEP) ? VM_SLEEP : VM_NOSLEEP) | VM_INSTANTFIT,
		&a) != 0)
		return ENOMEM;
	*out = (void *)a; /* zero: kmemi_meta_free cleared it */
	return 0;
}

void
kmemi_meta_free(struct kmem_domain *d, void *p, size_t size)
{
	size_t sz = kmem_align_up(size, kmem_prim_page_size());

	if (sz >= META_DIRECT) {
		kmemi_meta_unmap(d, p, sz);
	} else {
		/*
		 * Zeroed now, so that what kmeta hands out is always zero
		 * (fresh spans are): frees of metadata are rare, allocations
		 * are in every set-up (16 cache structures).
		 */
		memset(p, 0, sz);
		vmem_free(kmemi_meta_arena(d), (vmem_addr_t)p, sz);
	}
}

static int
meta_fork_dom(struct kmem_domain *d, void *arg)
{
	if (*(int *)arg == KMEMI_FORK_PREPARE)
		kmem_mutex_enter(&d->kd_meta_lock);
	else
		kmem_mutex_exit(&d->kd_meta_lock);
	return 0;
}

void
kmemi_meta_fork(int phase)
{
	kmemi_dom_foreach(meta_fork_dom, &phase);
}

/*
 * A domain goes (kmemi_dom_teardown, everything else already gone): its
 * metadata arena, then every run left (the boundary-tag chunks), then a
 * registry that had outgrown the domain structure.
 */
void
kmemi_meta_dom_fini(struct kmem_domain *d)
{
	vmem_t *vm =
	    atomic_load_explicit(&d->kd_meta_arena, memory_order_acquire);
	struct meta_run r;

	KMEM_ASSERT(!d->kd_default);
	if (vm != NULL)
		vmem_destroy(vm);
	atomic_store_explicit(&d->kd_meta_arena, NULL, memory_order_relaxed);
	while (d->kd_meta_nruns > 0) {
		r = d->kd_meta_runs[--d->kd_meta_nruns];
		meta_pages_free(d, (void *)r.mr_start, r.mr_size);
	}
	if (d->kd_meta_runs != d->kd_meta_runs0)
		meta_pages_free(d, d->kd_meta_runs,
		    kmem_align_up(d->kd_meta_cap * sizeof(struct meta_run),
			kmem_prim_page_size()));
	d->kd_meta_runs = d->kd_meta_runs0;
}
