/*
 * domain.c -- domains: the whole allocator as an instance over a page
 * source (kmem_domain(3)).
 *
 * 1. What.  A domain is everything mutable of vmem, pool, pool_cache and
 *    kmem_alloc: the arena list and the boundary-tag supply (vmem.c), the
 *    metadata region's registry and arena (meta.c), the page arena "kva",
 *    the header pools and the pool list (pool.c), the cache list, the
 *    group pools and the depot budget (pool_cache.c), the size classes'
 *    caches, their fast-path data, the gate and the page map (kmem.c) --
 *    one struct kmem_domain (internal/domain.h), each layer's part
 *    written by that layer only.  The process's default domain,
 *    kmemi_dom0, is in the data segment, over prim's pages: what kmem was
 *    before domains.  Another's structure and every byte it uses come
 *    from its page source: kva imports from it, and so does the metadata
 *    region (runs without guard pages: a source has none to give).
 *
 * 2. Which domain.  A thread has a current domain (kmemi_dom_tls, an
 *    initial-exec TLS pointer, NULL for the default).  What creates
 *    something -- vmem_create, pool_init, pool_cache_init, kmem_alloc's
 *    class caches -- creates it in the current domain, and it records
 *    its domain (vm_dom, pr_dom; a cache is a pool); from then on it uses
 *    that domain's memory whatever is current where it is used.
 *    kmem_alloc serves from the current domain's classes; kmem_free(p,
 *    size) finds p's domain by the page maps (kmemi_dom_of) once another
 *    domain than the default exists (the default's gate then carries
 *    KMEM_GATE_DOMAINS, which sends kmem_free, not kmem_alloc, to the
 *    slow path), so that p goes home from any thread.
 *
 * 3. The registry: every live domain, the default first, on a list under
 *    dom_lock (the default domain's kd_reg: dom_reg here, section 8),
 *    for the fork handlers, the statistics and kmemi_dom_of.
 *    A destroyed domain's structure goes back to its source, so a
 *    pointer to it cannot be checked by reading it; the registry is what
 *    kmemi_dom_check asks ("switching to a destroyed domain").
 *
 * 4. Locking.  dom_lock is taken before any lock of any domain (fork.c
 *    takes it first) and held while a walker (kmemi_dom_foreach) runs,
 *    so a domain is not destroyed under a walk.  No lock of one domain
 *    is ever held while a lock of another is taken: domains never share
 *    memory or structures, so any order of domains is free of deadlock.
 *
 * 5. Failure policy.  No memory for a domain: NULL and ENOMEM, nothing
 *    kept.  A source that returns memory not aligned as asked, a
 *    destroyed or foreign domain pointer, destroying the default domain:
 *    kmem_panic, naming the call and the domain.
 *
 * 6. The page arena "kva" (NetBSD's kmem_va_arena) is the domain's, made
 *    on first use: quantum = page, quantum caches up to 16 pages, spans
 *    imported from prim (the default: at least 1 MiB, an overflow of
 *    metadata kept out by guard pages, meta.c) or from the page source
 *    (at least 256 KiB: a source may be a region of a few megabytes).
 *    The arena's "source" is the domain itself (DOM_SRC): vmem hands it
 *    to the import and release functions only.  Freed ranges are purged
 *    after purge_delay_ms (prim's purge; a source's ps_purge, or nothing
 *    without one), and spans wholly free go back after that delay too.
 *
 * 7. Destroy.  kmemi_dom_busy (kmem.c) decides without moving anything:
 *    an arena, pool or cache a caller made; an object out of a class or
 *    a quantum cache (its pool's items out less what its groups and
 *    depot hold, counted under their locks); a large block (kva's
 *    allocated bytes beyond its caches' pages).  Busy: EBUSY, nothing
 *    freed.  Otherwise kmemi_dom_teardown takes it apart in the order
 *    the layers hang together -- class caches, the page map, kva (its
 *    quantum caches, then its spans back to the source), the shared
 *    empty groups, the group and header pools, the metadata arena, the
 *    metadata runs left (tag chunks) -- and the structure last; the
 *    source sees every byte it handed out come back once.
 *
 * 8. What stays global.  Everything mutable lives in a domain; what
 *    libkmem.a keeps outside one is 15 data symbols (nm: b, B, d, D,
 *    thread-local ones included), each for a reason:
 *    - kmemi_dom0, the default domain's storage: in the data segment
 *      because it must exist before any memory can be had (the process's
 *      first malloc, constructors), at a link-time constant address for
 *      the fast paths.  It also holds what only the default has: the
 *      settings read from the environment once (kd_opts: KMEM_OPTIONS,
 *      and KMEM_DEBUG's check_every; kd_opts_lock; a new domain starts
 *      with a copy, options.c), and the registry of the other domains
 *      (kd_reg), which the fork handlers, the statistics and kmemi_dom_of
 *      walk: the default is never destroyed, the others can be.
 *    - kmemi_dom_tls: each thread's current domain, an initial-exec TLS
 *      pointer (section 2).
 *    - kmemi_pm_root and kmemi_pgshift (kmem.c): the default domain's
 *      page map and the page size's log, read by the inlined malloc and
 *      kmem_free fast paths at link-time constant addresses; reached
 *      through kmemi_dom0 by a pointer they would cost a load.  (The page
 *      size is 1 << kmemi_pgshift.)
 *    - kmem_prim_proc (prim/linux.c): prim's facts about the process (page
 *      size, CPU count, how the CPU is read, the rseq offset and whether
 *      rseq critical sections may be used), its fault injection (it counts
 *      the process's OS memory calls), its exit-function table (one
 *      destructor runs it) and its thread-exit key (malloc's bins): the
 *      operating system's, the same for every
 *      domain, and below them (prim knows no domain).  Prim has no
 *      thread-local data: the CPU hash uses the thread pointer.
 *    - fork_st (fork.c): fork(2) is the process's.  Its handlers are
 *      registered once and take the locks of every domain; which thread
 *      forks and whether it took stdio's lock belong to no domain.  (The
 *      registry walks in that thread ask kmemi_fork_by_self.)
 *    - stats_exit (stats.c): KMEM_STATS, read once: the report at exit is
 *      the process's (its pid, its file), of every domain; and
 *      KMEM_STATS_LIVE's statistics page, the process's as well.
 *    - dbg (debug.c): KMEM_DEBUG's switch, record table and quarantine.
 *      It instruments the default domain's kmem_alloc only (the gate it
 *      sets is kmemi_dom0's, its tables are in the default's metadata):
 *      the default's state, kept in debug.c, where its type is private;
 *      as a part of struct kmem_domain every domain would carry it.
 *    - pool_secret (pool.c): the key of the page headers' check values, a
 *      process secret drawn once, one for every domain.
 *    - The page allocators: pool_allocator_kmem and pool_allocator_nointr
 *      (public objects of <kmem/pool.h>, NetBSD's names), pool_allocator_big,
 *      kmemi_pool_allocator_meta (pool.c) and kmem_page_allocator
 *      (kmem.c): tables of functions shared by the pools of every domain
 *      (the public two get their derived fields at their first pool_init,
 *      under the default's pool list lock; the rest are set at compile
 *      time).  Const would not take them out of the count: under -fPIC a
 *      table of function pointers is .data.rel.ro, which the dynamic
 *      linker writes at load.
 *    - kmem_cache_name (kmem.c): the size classes' cache names, the same
 *      in every domain, written once at set-up.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kmem/domain.h>
#include <kmem/kmem.h>

#include "internal/annotate.h"
#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/meta.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"

#define DOM_LOCKS_INIT                                                         \
	.kd_init_lock = KMEM_MUTEX_INITIALIZER,                                \
	.kd_vmem_list_lock = KMEM_MUTEX_INITIALIZER,                           \
	.kd_bt_lock = KMEM_MUTEX_INITIALIZER,                                  \
	.kd_meta_lock = KMEM_MUTEX_INITIALIZER,                                \
	.kd_page_arena_lock = KMEM_MUTEX_INITIALIZER,                          \
	.kd_phpool_lock = KMEM_MUTEX_INITIALIZER,                              \
	.kd_pool_list_lock = KMEM_MUTEX_INITIALIZER,                           \
	.kd_pc_list_lock = KMEM_MUTEX_INITIALIZER,                             \
	.kd_pcg_init_lock = KMEM_MUTEX_INITIALIZER,                            \
	.kd_pcg_lock = KMEM_MUTEX_INITIALIZER

struct kmem_domain kmemi_dom0 = {
    .kd_gate = KMEM_GATE_INIT,
    .kd_default = true,
    .kd_name = "default",
    .kd_meta_runs = kmemi_dom0.kd_meta_runs0,
    .kd_meta_cap = KMEMI_META_RUNS0,
    DOM_LOCKS_INIT,
    .kd_opts_lock = KMEM_MUTEX_INITIALIZER,
    .kd_reg = {KMEM_MUTEX_INITIALIZER, NULL, 0, 0},
};

#ifndef KMEM_FREESTANDING
__thread struct kmem_domain *kmemi_dom_tls
    __attribute__((tls_model("initial-exec")));
#endif

/* The registry (section 3): the domains other than the default. */
#define dom_reg (kmemi_dom0.kd_reg)
/*
 * The thread that runs fork(2) holds dom_reg.lock from prepare to parent
 * or child, and walks the registry for every layer meanwhile: without
 * the lock it already holds (kmemi_fork_by_self, true in it throughout).
 */

/* ---- pages ---- */

/* size bytes aligned to align (a page at least) from src, checked. */
static void *
dom_src_pages(const struct kmem_page_source *src, const char *name, size_t size,
    size_t align)
{
	size_t ps = kmem_prim_page_size();
	void *p;

	struct kmem_domain *prev;

	if (align < ps)
		align = ps;
	KMEM_ASSERT(size % ps == 0 && kmem_powerof2(align));
	/*
	 * The source runs with the default domain current, whatever the
	 * caller's: a source that allocates (a table of its ranges) gets the
	 * default's memory, not a recursion into the domain it is feeding.
	 */
	prev = kmemi_dom_push(&kmemi_dom0);
	p = src->ps_alloc(src->ps_arg, size, align);
	kmemi_dom_pop(prev);
	if (p != NULL && ((uintptr_t)p & (align - 1)) != 0)
		kmem_panic("kmem_domain(domain '%s'): page source returned %p "
			   "for %zu bytes aligned to %zu: not aligned as asked",
		    name, p, size, align);
	return p;
}

int
kmemi_dom_pages(struct kmem_domain *d, size_t size, size_t align, void **out)
{
	size_t ps = kmem_prim_page_size();
	void *p;

	if (d->kd_default)
		return kmem_prim_alloc(size, align, out);
	(void)ps;
	if ((p = dom_src_pages(&d->kd_src, d->kd_name, size, align)) == NULL)
		return ENOMEM;
	atomic_fetch_add_explicit(&d->kd_src_bytes, size, memory_order_relaxed);
	*out = p;
	return 0;
}

void
kmemi_dom_pages_free(struct kmem_domain *d, void *p, size_t size)
{
	struct kmem_domain *prev;

	if (d->kd_default) {
		kmem_prim_release(p, size);
		return;
	}
	KMEM_ASSERT(atomic_load_explicit(
			&d->kd_src_bytes, memory_order_relaxed) >= size);
	atomic_fetch_sub_explicit(&d->kd_src_bytes, size, memory_order_relaxed);
	prev = kmemi_dom_push(&kmemi_dom0); /* as in dom_src_pages */
	d->kd_src.ps_free(d->kd_src.ps_arg, p, size);
	kmemi_dom_pop(prev);
}

int
kmemi_dom_pages_purge(struct kmem_domain *d, void *p, size_t size)
{
	struct kmem_domain *prev;

	if (d->kd_default)
		return kmem_prim_purge(p, size);
	if (d->kd_src.ps_purge == NULL)
		return ENOSYS;
	prev = kmemi_dom_push(&kmemi_dom0); /* as in dom_src_pages */
	d->kd_src.ps_purge(d->kd_src.ps_arg, p, size);
	kmemi_dom_pop(prev);
	return 0;
}

/* ---- the page arena (section 6) ---- */

static int
page_arena_import(
    vmem_t *src, vmem_size_t size, vm_flag_t flags, vmem_addr_t *addrp)
{
	struct kmem_domain *d = SRC_DOM(src);
	void *p;

	(void)flags;
	if (kmemi_dom_pages(d, size, 0, &p) != 0)
		return ENOMEM;
	/* Object pages never border metadata (meta.c): guards between. */
	KMEM_ASSERT(!d->kd_default || !kmemi_meta_near(d, p, size));
	*addrp = (vmem_addr_t)p;
	return 0;
}

static void
page_arena_release(vmem_t *src, vmem_addr_t addr, vmem_size_t size)
{
	/* Not poisoned past its mapping (ASan's shadow: annotate.h). */
	kmemi_annot_defined((void *)addr, size);
	kmemi_dom_pages_free(SRC_DOM(src), (void *)addr, size);
}

/* Pages freed inside a span that stays mapped go back to the OS. */
static void
page_arena_purge(vmem_addr_t addr, vmem_size_t size)
{
	kmem_prim_purge((void *)addr, size);
}

/*
 * The same for a domain's source: its ps_purge, found from the arena
 * (kmemi_vmem_set_purge_src).  A source without one gets the same
 * deferred mode with nothing done to the pages: its free spans still
 * wait a purge delay before they go back whole, rather than going back
 * at once and being asked for again (a stress test moved 2.4 GB through
 * ps_alloc/ps_free in 1.6 s so, against 455 MB deferred).
 */
static void
page_arena_purge_src(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	kmemi_dom_pages_purge(kmemi_vmem_domain(vm), (void *)addr, size);
}

/*
 * The page arena (NetBSD's kmem_va_arena): quantum = the system page,
 * imports from prim in runs of at least PAGE_ARENA_IMPORT, quantum caches
 * up to 16 pages.  Freed ranges stay mapped and dirty, reusable at once,
 * for purge_delay_ms to 2 x purge_delay_ms; then a purge pass gives their
 * pages back (MADV_DONTNEED) and unmaps the spans wholly free (vmem.c
 * section 7).  kmem_reap_all() runs a pass over everything.  Created on
 * first use; NULL
 * if there is no memory to create it (the page allocators then fail like any
 * out-of-memory).
 */
#define PAGE_ARENA_IMPORT (1u << 20) /* 1 MiB: 256 pages per mmap */
/* A domain's: a page source may be a region of a few megabytes. */
#define PAGE_ARENA_IMPORT_SRC (256u << 10)

vmem_t *
kmemi_page_arena(struct kmem_domain *d)
{
	vmem_t *vm =
	    atomic_load_explicit(&d->kd_page_arena, memory_order_acquire);
	struct kmem_domain *prev;
	size_t ps;

	if (kmem_likely(vm != NULL))
		return vm;
	kmem_options_init(); /* not under the arena lock: kd_opts_lock first */
	kmem_mutex_enter(&d->kd_page_arena_lock);
	vm = atomic_load_explicit(&d->kd_page_arena, memory_order_relaxed);
	if (vm == NULL) {
		ps = kmem_prim_page_size();
		prev = kmemi_dom_push(d);
		vm = vmem_create("kva", 0, 0, ps, page_arena_import,
		    page_arena_release, DOM_SRC(d), 16 * ps, VM_SLEEP, IPL_VM);
		kmemi_dom_pop(prev);
		/* No memory even for that: NULL, tried again next time. */
		if (vm != NULL) {
			kmem_vmem_set_min_import(vm,
			    d->kd_default ? PAGE_ARENA_IMPORT
					  : PAGE_ARENA_IMPORT_SRC);
			if (d->kd_default) {
				kmemi_vmem_set_purge(vm, page_arena_purge,
				    d->kd_opts.purge_delay_ms * 1000000u);
				/* Its spans are mmaps: they may join. */
				kmemi_vmem_set_merge(vm);
			} else {
				kmemi_vmem_set_purge_src(vm,
				    page_arena_purge_src,
				    d->kd_opts.purge_delay_ms * 1000000u);
			}
			atomic_store_explicit(
			    &d->kd_page_arena, vm, memory_order_release);
		}
	}
	kmem_mutex_exit(&d->kd_page_arena_lock);
	return vm;
}

void
kmemi_page_arena_purge(struct kmem_domain *d, bool all)
{
	vmem_t *vm =
	    atomic_load_explicit(&d->kd_page_arena, memory_order_acquire);

	if (vm != NULL) /* never created for this */
		kmemi_vmem_purge(vm, all);
	kmemi_meta_purge(d, all); /* the metadata arena keeps pace */
}

bool
kmemi_page_arena_purge_step(struct kmem_domain *d)
{
	vmem_t *vm =
	    atomic_load_explicit(&d->kd_page_arena, memory_order_acquire);
	bool more = vm != NULL && kmemi_vmem_purge_step(vm);

	return kmemi_meta_purge_step(d) || more;
}

void
kmemi_page_arena_purge_hold(struct kmem_domain *d, bool hold, vmem_t *held[2])
{
	unsigned int i;

	if (hold) {
		held[0] = atomic_load_explicit(
		    &d->kd_page_arena, memory_order_acquire);
		held[1] = d->kd_default
		    ? atomic_load_explicit(
			  &d->kd_meta_arena, memory_order_acquire)
		    : NULL;
	}
	for (i = 0; i < 2; i++)
		if (held[i] != NULL)
			kmemi_vmem_purge_hold(held[i], hold);
}

/* ---- the registry ---- */

/* A walk of the list without its lock (section 3): begin, end. */
static void
dom_read_begin(void)
{
	atomic_fetch_add(&dom_reg.readers, 1);
}

static void
dom_read_end(void)
{
	atomic_fetch_sub_explicit(&dom_reg.readers, 1, memory_order_release);
}

static struct kmem_domain *
dom_list_first(void)
{
	return atomic_load_explicit(
	    (_Atomic(struct kmem_domain *) *)&dom_reg.list,
	    memory_order_acquire);
}

static struct kmem_domain *
dom_list_next(struct kmem_domain *d)
{
	return atomic_load_explicit(
	    (_Atomic(struct kmem_domain *) *)&d->kd_next, memory_order_acquire);
}

int
kmemi_dom_foreach(int (*fn)(struct kmem_domain *, void *), void *arg)
{
	struct kmem_domain *d;
	bool forking;
	int rv;

	if ((rv = fn(&kmemi_dom0, arg)) != 0)
		return rv;
	/* Without other domains, no lock: fork handlers and stats as ever. */
	if (atomic_load_explicit((_Atomic(struct kmem_domain *) *)&dom_reg.list,
		memory_order_acquire) == NULL)
		return 0;
	/*
	 * The forking thread holds the lock (kmemi_dom_fork); anyone else
	 * walks as a reader, without it: a reader that started keeps every
	 * domain it can reach alive (kmem_domain_destroy waits for
	 * readers), and the reaper or the statistics do not hold the lock
	 * across a domain's page source (its ps_free may be slow, or take
	 * locks of its own).
	 */
	forking = kmemi_fork_by_self();
	if (!forking)
		dom_read_begin();
	for (d = dom_list_first(); d != NULL && rv == 0; d = dom_list_next(d))
		rv = fn(d, arg);
	if (!forking)
		dom_read_end();
	return rv;
}

void
kmemi_dom_fork(int phase)
{
	if (phase == KMEMI_FORK_PREPARE) {
		kmem_mutex_enter(&dom_reg.lock);
		return;
	}
	if (phase == KMEMI_FORK_CHILD) /* their walks were other threads' */
		atomic_store_explicit(
		    &dom_reg.readers, 0, memory_order_relaxed);
	kmem_mutex_exit(&dom_reg.lock);
}

static bool
dom_live_locked(const struct kmem_domain *d)
{
	const struct kmem_domain *x;

	for (x = dom_reg.list; x != NULL; x = x->kd_next)
		if (x == d)
			return true;
	return false;
}

void
kmemi_dom_check(const char *fn, const struct kmem_domain *d)
{
	bool live;

	if (d == &kmemi_dom0)
		return;
	kmem_mutex_enter(&dom_reg.lock);
	live = dom_live_locked(d);
	kmem_mutex_exit(&dom_reg.lock);
	if (!live)
		kmem_panic("%s(%p): not a live domain (destroyed, or never "
			   "made by kmem_domain_create)",
		    fn, (const void *)d);
}

/*
 * The domain that owns p: the other domains first, newest first, the
 * default last -- the innermost owner, when a domain's source hands out
 * memory another domain allocated (a source over the default's
 * kmem_alloc: the default's map knows the large block, the domain's the
 * objects in it).  NULL: none.
 */
struct kmem_domain *
kmemi_dom_of(const void *p)
{
	struct kmem_domain *d;

	dom_read_begin();
	for (d = dom_list_first(); d != NULL; d = dom_list_next(d))
		if (kmemi_kmem_owns(d, p))
			break;
	dom_read_end();
	if (d == NULL && kmemi_kmem_owns(&kmemi_dom0, p))
		d = &kmemi_dom0;
	return d;
}

/* ---- the interface ---- */

kmem_domain_t *
kmem_domain_create(const char *name, const struct kmem_page_source *src)
{
	return kmem_domain_create_with(name, src, NULL);
}

kmem_domain_t *
kmem_domain_create_with(
    const char *name, const struct kmem_page_source *src, const char *options)
{
	struct kmem_options opts;
	char dname[KMEMI_DOMAIN_NAME];
	struct kmem_domain *d;
	size_t ps = kmem_prim_page_size();
	size_t bytes = kmem_align_up(sizeof *d, ps);
	void *mem;

	if (src == NULL || src->ps_alloc == NULL || src->ps_free == NULL) {
		errno = EINVAL;
		return NULL;
	}
	kmem_options_init();
	kmem_snprintf(
	    dname, sizeof dname, "%s", name != NULL ? name : "(anon)");
	/*
	 * The default's settings, a copy, and "options" over them (the
	 * syntax of KMEM_OPTIONS); one rejected item: EINVAL, nothing made.
	 */
	opts = kmemi_dom0.kd_opts;
	if (options != NULL &&
	    kmemi_options_parse_into(&opts,
		"kmem_domain_create_with (no domain made)", options) != 0) {
		errno = EINVAL;
		return NULL;
	}
	/* The structure itself from the source, as all the rest. */
	if ((mem = dom_src_pages(src, dname, bytes, 0)) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	d = mem;
	memset(d, 0, sizeof *d);
	d->kd_src = *src;
	memcpy(d->kd_name, dname, sizeof d->kd_name);
	d->kd_mapsize = bytes;
	d->kd_opts = opts;
	atomic_store_explicit(&d->kd_src_bytes, bytes, memory_order_relaxed);
	d->kd_gate = KMEM_GATE_INIT;
	d->kd_meta_runs = d->kd_meta_runs0;
	d->kd_meta_cap = KMEMI_META_RUNS0;
	kmem_mutex_init(&d->kd_init_lock);
	kmem_mutex_init(&d->kd_vmem_list_lock);
	kmem_mutex_init(&d->kd_bt_lock);
	kmem_mutex_init(&d->kd_meta_lock);
	kmem_mutex_init(&d->kd_page_arena_lock);
	kmem_mutex_init(&d->kd_phpool_lock);
	kmem_mutex_init(&d->kd_pool_list_lock);
	kmem_mutex_init(&d->kd_pc_list_lock);
	kmem_mutex_init(&d->kd_pcg_init_lock);
	kmem_mutex_init(&d->kd_pcg_lock);
	/* Set up as kmem is at its first call; nothing kept if it fails. */
	if (!kmemi_kmem_dom_setup(d)) {
		kmemi_dom_teardown(d);
		errno = ENOMEM;
		return NULL;
	}
	kmem_mutex_enter(&dom_reg.lock);
	d->kd_next = dom_reg.list;
	atomic_store_explicit((_Atomic(struct kmem_domain *) *)&dom_reg.list, d,
	    memory_order_release);
	if (dom_reg.n++ == 0) /* kmem_free must now find p's domain */
		__atomic_fetch_or(
		    &kmemi_dom0.kd_gate, KMEM_GATE_DOMAINS, __ATOMIC_RELEASE);
	kmem_mutex_exit(&dom_reg.lock);
	return d;
}

int
kmem_domain_destroy(kmem_domain_t *d)
{
	struct kmem_domain **pp;
	int err;

	if (d == &kmemi_dom0 || d == NULL)
		kmem_panic("kmem_domain_destroy(%p): the default domain cannot "
			   "be destroyed",
		    (void *)d);
	kmem_mutex_enter(&dom_reg.lock);
	if (!dom_live_locked(d)) {
		kmem_mutex_exit(&dom_reg.lock);
		kmem_panic("kmem_domain_destroy(%p): not a live domain "
			   "(destroyed twice, or never made by "
			   "kmem_domain_create)",
		    (void *)d);
	}
	/* Busy: nothing freed, the domain stays as it was. */
	if ((err = kmemi_dom_busy(d)) != 0) {
		kmem_mutex_exit(&dom_reg.lock);
		return err;
	}
	for (pp = &dom_reg.list; *pp != d; pp = &(*pp)->kd_next)
		continue;
	atomic_store_explicit((_Atomic(struct kmem_domain *) *)pp, d->kd_next,
	    memory_order_release);
	if (--dom_reg.n == 0)
		__atomic_fetch_and(
		    &kmemi_dom0.kd_gate, ~KMEM_GATE_DOMAINS, __ATOMIC_RELEASE);
	kmem_mutex_exit(&dom_reg.lock);
	/* Walks that may have reached d end before it goes. */
	while (atomic_load(&dom_reg.readers) != 0)
		kmem_prim_sleep_ns(10000);
	if (kmemi_dom_tls == d)
		kmemi_dom_tls = NULL;
	kmemi_dom_teardown(d);
	return 0;
}

kmem_domain_t *
kmem_domain_switch(kmem_domain_t *d)
{
	struct kmem_domain *prev = kmemi_dom_cur();

	if (d != NULL)
		kmemi_dom_check("kmem_domain_switch", d);
	kmemi_dom_tls = d == &kmemi_dom0 ? NULL : d;
	return prev;
}

kmem_domain_t *
kmem_domain_current(void)
{
	return kmemi_dom_cur();
}

kmem_domain_t *
kmem_domain_default(void)
{
	return &kmemi_dom0;
}

vmem_t *
kmem_domain_arena(kmem_domain_t *d)
{
	if (d == NULL)
		d = &kmemi_dom0;
	kmemi_dom_check("kmem_domain_arena", d);
	return kmemi_page_arena(d);
}

const char *
kmem_domain_name(const kmem_domain_t *d)
{
	if (d == NULL)
		d = &kmemi_dom0;
	return d->kd_name;
}
