/*
 * pool.c -- pool(9): fixed-size items carved from pages.
 *
 * 1. Concepts (NetBSD subr_pool.c; Bonwick 1994's slab).  A pool hands out
 *    items of one size.  It gets "pages" (pa_pagesz bytes, any power of two)
 *    from a pool_allocator, carves each into itemsperpage items, and keeps
 *    every page on one of three lists by how many of its items are out:
 *    partial, empty (all free) or full (none free).  Allocation takes from
 *    partial pages first, then empty ones, so that free space concentrates
 *    and empty pages can go back.
 *
 * 2. Data structures.
 *    - Page header (struct kmem_pool_page, pool_impl.h): the page, its
 *      first item, the count of items out, and a bitmap of free items (bit
 *      set = free).  Free items are always tracked by bitmap, never by a
 *      list threaded through the items: the pool never writes into a free
 *      item (so PR_NOTOUCH costs nothing), and a double put is caught by
 *      the bit at no extra cost.  Get finds the first set bit from a hint
 *      word (a batch get, pool_cache's fill, takes a page's items a whole
 *      word at a time); put sets one bit.
 *    - Header placement, NetBSD's rule: inside the page (at its start) when
 *      PR_PHINPAGE asks, never with PR_NOTOUCH or PR_NOALIGN, otherwise when
 *      items are small (below min(pagesz/16, 8 x header)) or when the
 *      header fits in the slack without costing an item.  Off-page headers
 *      come from internal header pools ("phpool-<words>", themselves with
 *      on-page headers) whose pages, like those of pool_cache's group
 *      pools (kmemi_pool_allocator_meta), come from the metadata arena
 *      "kmeta" (meta.c): never from the page arena, never next to a page
 *      of objects, a guard page between.  So an overflow off the last
 *      item of a page cannot rewrite a bitmap (kmem's size classes all
 *      have off-page headers); the page-lookup hash tables live there
 *      too.
 *    - Header integrity: ph_canary, the header's first word, is a hash of
 *      the header's address and its page's keyed by a per-process secret
 *      (pool_secret), set when the page is added; the pool checks it, and
 *      that the counts are in range, whenever it takes from or puts to
 *      the page (once for the run of items a batch get takes from it;
 *      the pool layer is pool_cache's slow path: the per-CPU
 *      layer never reads headers).  A mismatch -- an on-page header
 *      overwritten from the page below, a stray write -- is reported as
 *      "page header at H corrupted (page P)" instead of being followed.
 *      Only what the canary covers is proved: a write that keeps the
 *      first word and changes the bitmap goes unseen, which is why the
 *      headers kmem uses are out of an overflow's reach.
 *    - Finding an item's page in constant time: on-page headers sit at
 *      addr & ~pagemask and are validated (their pool and page fields);
 *      off-page and unaligned pages are in a per-pool hash keyed by
 *      page start >> pageshift.  Pages do not overlap, so at most one page
 *      starts in any pagesz-sized block: an aligned page is found with one
 *      lookup, an unaligned (PR_NOALIGN) one in the block of the address or
 *      the block before.  The hash doubles when pages exceed 2 per bucket.
 *      A batch of puts under one lock hold (pool_cache's flush) keeps the
 *      page of the previous item: an item within that page's bytes skips
 *      the lookup (a page that empties is forgotten: it may leave).
 *    - An item's index in its page: its offset times a per-pool
 *      multiplier, shifted (pr_idxmul, pr_idxshift; exact for every
 *      offset in a page: kmemi_pool_idx_recip), not a 64-bit division;
 *      put checks the boundary by multiplying back.
 *    - Colouring: the slack left after the items is spread as different
 *      starting offsets (multiples of the alignment) on successive pages
 *      (not with kmem's KMEMI_PR_NOCOLOR: first item at the page start).
 *    - Page lists are circular, doubly linked; the empty list is kept in
 *      order of emptying (oldest at the tail), so idle pages are found at
 *      the tail in constant time.
 *
 * 2a. Tools (annotate.h).  While valgrind runs, or in a library built
 *    with ASan, a user's pool (pool_init of memory: not PR_NOTOUCH, not
 *    kmem's own pools over the metadata arena) is a memcheck mempool:
 *    pool_get hands out a chunk, its contents undefined and the item's
 *    alignment padding no access; pool_put makes it no access once it
 *    has checked it, under the pool lock (before another get can have
 *    it).  The free items of such pools (and of a user's pool_cache,
 *    kmemi_pool_annot_set) are no access from the moment their page
 *    comes in; a page goes back to its allocator accessible, as it came
 *    (kva, or a caller's allocator, hands it on as it is).  The pool
 *    itself never touches a free item, so no access is lifted around its
 *    own work.
 *
 * 3. Invariants.  nitems = free items over all pages; nout = items out;
 *    npages = pages held; a page is on exactly the list its nmissing says
 *    (0: empty, its ph_nitems: full, else partial); nidle = empty pages;
 *    a page's free bits number ph_nitems - nmissing, none past its items
 *    or below its hint; the hash holds exactly the hashed pool's pages.
 *    kmem_pool_check (at the end of this file) checks them all; the tests
 *    call it, KMEM_DEBUG=check runs it when a page is added or empties.
 *
 * 3a. Domains.  A pool belongs to the domain current at pool_init
 *    (pr_dom, domain.h) for its whole life: its default allocator's pages
 *    come from that domain's page arena, its off-page headers from that
 *    domain's header pools, its hash tables from its metadata; the pool
 *    list, the drain cursor and the header pools are the domain's.  The
 *    shared allocators (pool_allocator_nointr, a caller's) are set up
 *    once under the default domain's list lock (pool_allocator_setup),
 *    the one place pools of two domains meet.  A cache in front of a pool
 *    registers its flush in pr_flush; the pool calls it at its hard limit
 *    and in pool_reclaim, and knows nothing else of pool_cache.
 *
 * 4. Locking.  One mutex per pool protects everything in it; pr_cv is
 *    where growers, and getters at the hard limit, wait.  The pool lock is
 *    never held while calling out: page allocation and freeing, the drain
 *    hook, header pools.  Only one thread grows a pool at a time.  Lock
 *    order: pool_list_lock -> a pool's lock; nothing is taken inside a
 *    pool's lock, so a pool may be the header pool or page source of
 *    another without ordering issues.
 *
 * 5. Memory goes back: a page that becomes empty is freed at once when the
 *    free items exceed the high watermark (pool_sethiwat) or the page count
 *    exceeds maxpages, provided the low watermark and minpages stay met;
 *    otherwise it waits on the empty list and is freed once idle for
 *    the pool_idle_ms option, 10 s as NetBSD's pool_inactive_time (checked
 *    when pages empty and by pool_reclaim and kmem_reap), or
 *    at once by kmem_reap_all().
 *
 * 6. Failure policy.  PR_NOWAIT gets return NULL when no page can be had
 *    or at the hard limit; PR_WAITOK gets wait (for a page, or for a put
 *    below the hard limit) and never return NULL, except with
 *    PR_LIMITFAIL at the hard limit.  Bad puts (a pointer of another pool,
 *    not an item boundary, already free), contradictory arguments and a
 *    corrupted page header (section 2) abort through kmem_panic with the
 *    pool's name and the pointer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/annotate.h"
#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/meta.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"

#define POOL_MAGIC 0x706f6f6cu /* "pool" */
/* Largest bitmap: 16384 items a page, so the largest header pool item
 * still fits a page (NetBSD panics past its phpools). */
#define POOL_MAXITEMS 16384u
/* Header pools: bitmaps of 1, 2, 4, ... 256 words. */
#define PHPOOL_COUNT 9

#define PH_EMPTY 0
#define PH_PART	 1
#define PH_FULL	 2

/* Derived flags (pr_roflags). */
#define PR_ROF_OFFPAGE 0x1 /* headers outside the pages */
#define PR_ROF_HASHED  0x2 /* pages found through the hash */
/* Annotated for memcheck and ASan (annotate.h; section 2a). */
#define PR_ROF_ANNOT	   0x4 /* pool_get/pool_put annotate (a user's pool) */
#define PR_ROF_ANNOT_ITEMS 0x8 /* free items no access (user pools, caches) */

static void pool_flush_cache(struct pool *pp);

/* KMEM_DEBUG=check: a pool that gained a page or emptied one (lock held). */
#define POOL_CHECK_HOOK(pp)                                                    \
	do {                                                                   \
		if (kmemi_check_on(                                            \
			(uint64_t)(pp)->pr_npages * (1 + (pp)->pr_bmwords)))   \
			kmemi_pool_check_locked(pp);                           \
	} while (0)

/*
 * The key of the page headers' canaries: drawn once, by the first
 * pool_init of the process, under its domain's pool list lock and with a
 * compare-and-swap (a process fact, as prim's secret: one for every
 * domain); every pool is initialised after that, so every reader (a
 * pool's own lock held) sees it set.
 */
static uint64_t pool_secret;
/*
 * The pool list and what goes with it are the domain's (domain.h):
 * kd_pool_list, kd_pool_list_lock, kd_pool_list_cv (a pr_refcnt dropped
 * to 0), kd_d->kd_pool_drain_cursor.
 */

/*
 * Walking the pool list without holding its lock across the work: the
 * walker holds a reference (pr_refcnt, under pool_list_lock) on the pool
 * it is working on; pool_destroy waits until no walker holds one.  List
 * lock held on entry and exit of both.
 */
static void
pool_ref(struct pool *pp)
{
	pp->pr_refcnt++;
}

static void
pool_unref(struct pool *pp)
{
	struct kmem_domain *d = pp->pr_dom;

	if (--pp->pr_refcnt == 0 && d->kd_pool_list_cv_ready)
		kmem_cond_broadcast(&d->kd_pool_list_cv);
}

/* ---- the page arena and the default allocators ---- */

static void *pool_page_alloc(struct pool *pp, int flags);
static void pool_page_free(struct pool *pp, void *v);

struct pool_allocator pool_allocator_kmem = {
    pool_page_alloc, pool_page_free, 0, 0, 0};
struct pool_allocator pool_allocator_nointr = {
    pool_page_alloc, pool_page_free, 0, 0, 0};
/* Pages of 2^13 .. 2^24 bytes for items larger than a page. */
#define POOL_BIG_MIN   13
#define POOL_BIG_COUNT 12
#define POOL_BIG(i)                                                            \
	{                                                                      \
		pool_page_alloc, pool_page_free, 1u << (POOL_BIG_MIN + (i)),   \
		    (1u << (POOL_BIG_MIN + (i))) - 1, POOL_BIG_MIN + (i)       \
	}
/* Set up at compile time: shared by every domain, never written. */
static struct pool_allocator pool_allocator_big[POOL_BIG_COUNT] = {POOL_BIG(0),
    POOL_BIG(1), POOL_BIG(2), POOL_BIG(3), POOL_BIG(4), POOL_BIG(5),
    POOL_BIG(6), POOL_BIG(7), POOL_BIG(8), POOL_BIG(9), POOL_BIG(10),
    POOL_BIG(11)};

/*
 * The page arena "kva" behind the default allocators is the domain's
 * (domain.c section 6: kmemi_page_arena).
 */

static void *
pool_page_alloc(struct pool *pp, int flags)
{
	vm_flag_t vf = (flags & PR_WAITOK) ? VM_SLEEP : VM_NOSLEEP;
	size_t sz = pp->pr_alloc->pa_pagesz;
	vmem_t *vm = kmemi_page_arena(pp->pr_dom);
	vmem_addr_t a;
	int err;

	if (vm == NULL)
		return NULL;
	if (sz <= kmem_prim_page_size() || (pp->pr_flags & PR_NOALIGN))
		err = vmem_alloc(vm, sz, vf | VM_INSTANTFIT, &a);
	else
		err = vmem_xalloc(vm, sz, sz, 0, 0, VMEM_ADDR_MIN,
		    VMEM_ADDR_MAX, vf | VM_INSTANTFIT, &a);
	return err == 0 ? (void *)a : NULL;
}

static void
pool_page_free(struct pool *pp, void *v)
{
	size_t sz = pp->pr_alloc->pa_pagesz;

	if (sz <= kmem_prim_page_size() || (pp->pr_flags & PR_NOALIGN))
		vmem_free(kmemi_page_arena(pp->pr_dom), (vmem_addr_t)v, sz);
	else
		vmem_xfree(kmemi_page_arena(pp->pr_dom), (vmem_addr_t)v, sz);
}

/*
 * Pages for the pools kmem uses itself (page headers, groups): from the
 * metadata arena (meta.c), never from the page arena, so that no object
 * page is next to them; and never through a quantum cache, whose pools
 * need headers and groups in turn.
 */
static void *
pool_meta_alloc(struct pool *pp, int flags)
{
	void *p;

	if (kmemi_meta_alloc(pp->pr_dom, pp->pr_alloc->pa_pagesz,
		(flags & PR_WAITOK) ? VM_SLEEP : VM_NOSLEEP, &p) != 0)
		return NULL;
	return p;
}

static void
pool_meta_free(struct pool *pp, void *v)
{
	kmemi_meta_free(pp->pr_dom, v, pp->pr_alloc->pa_pagesz);
}

struct pool_allocator kmemi_pool_allocator_meta = {
    pool_meta_alloc, pool_meta_free, 0, 0, 0};

/*
 * An allocator's derived fields, on its first pool_init.  Allocators are
 * shared by pools of every domain (pool_allocator_nointr, a caller's), so
 * this is the one place pools of two domains meet: under the default
 * domain's pool list lock, taken with no other lock held; pa_pagemask
 * is stored last, with release, and tested first, with acquire.
 */
static void
pool_allocator_setup(struct pool_allocator *pa)
{
	unsigned int sz;

	if (__atomic_load_n(&pa->pa_pagemask, __ATOMIC_ACQUIRE) != 0)
		return;
	kmem_mutex_enter(&kmemi_dom0.kd_pool_list_lock);
	if (pa->pa_pagemask == 0) {
		sz = pa->pa_pagesz;
		if (sz == 0)
			sz = (unsigned int)kmem_prim_page_size();
		if (!kmem_powerof2(sz))
			kmem_panic("pool_init: allocator page size %u is not "
				   "a power of two",
			    sz);
		pa->pa_pagesz = sz;
		pa->pa_pageshift = kmem_ilog2(sz);
		__atomic_store_n(&pa->pa_pagemask, sz - 1, __ATOMIC_RELEASE);
	}
	kmem_mutex_exit(&kmemi_dom0.kd_pool_list_lock);
}

/* The default allocator for items of "size": a page, or a big page. */
static struct pool_allocator *
pool_default_allocator(size_t size)
{
	size_t ps = kmem_prim_page_size(), pg;
	unsigned int i;

	if (size <= ps / 4)
		return &pool_allocator_kmem;
	/* Smallest page that wastes at most 1/8 of itself (or 2^24). */
	for (i = 0; i < POOL_BIG_COUNT; i++) {
		pg = (size_t)1 << (POOL_BIG_MIN + i);
		if (pg < ps || pg < size)
			continue;
		if (pg % size <= pg / 8 || i == POOL_BIG_COUNT - 1)
			break;
	}
	if (i == POOL_BIG_COUNT)
		kmem_panic("pool_init: item size %zu is larger than the "
			   "largest page (%u bytes)",
		    size, 1u << (POOL_BIG_MIN + POOL_BIG_COUNT - 1));
	if (pg == ps && size <= ps) /* system pages of 8 KiB or more */
		return &pool_allocator_kmem;
	KMEM_ASSERT(pool_allocator_big[i].pa_pagesz == pg);
	return &pool_allocator_big[i];
}

/* ---- off-page header pools ---- */

/* Each domain's: kd_phpool[], kd_phpool_lock, kd_phpool_ready. */
_Static_assert(PHPOOL_COUNT == KMEMI_PHPOOLS, "domain.h's KMEMI_PHPOOLS");

static size_t
ph_size(unsigned int bmwords)
{
	return sizeof(struct kmem_pool_page) + bmwords * sizeof(uint64_t);
}

static struct pool *
phpool_for(struct kmem_domain *d, unsigned int bmwords)
{
	struct kmem_domain *prev;
	unsigned int i = 0;

	if (!atomic_load_explicit(&d->kd_phpool_ready, memory_order_acquire)) {
		kmem_mutex_enter(&d->kd_phpool_lock);
		if (!atomic_load_explicit(
			&d->kd_phpool_ready, memory_order_relaxed)) {
			prev = kmemi_dom_push(d);
			for (i = 0; i < PHPOOL_COUNT; i++) {
				char name[32];

				kmem_snprintf(
				    name, sizeof name, "phpool-%u", 1u << i);
				pool_init(&d->kd_phpool[i], ph_size(1u << i), 0,
				    0, PR_PHINPAGE, name,
				    &kmemi_pool_allocator_meta, IPL_VM);
			}
			kmemi_dom_pop(prev);
			atomic_store_explicit(
			    &d->kd_phpool_ready, true, memory_order_release);
		}
		kmem_mutex_exit(&d->kd_phpool_lock);
		i = 0;
	}
	while ((1u << i) < bmwords)
		i++;
	return &d->kd_phpool[i];
}

/* ---- header integrity ---- */

/*
 * The canary of header ph: its page's address mixed with the secret by
 * one odd multiply, and its own address: a linear overwrite of the header
 * cannot keep it right without knowing the secret.  (More rounds would
 * not hide the secret from a program that can read a header: every step
 * is invertible.  One multiply costs the pool layer the least.)
 */
static inline uint64_t
ph_canary_of(const struct kmem_pool_page *ph)
{
	return (((uint64_t)(uintptr_t)ph->ph_page ^ pool_secret) *
		   0x9e3779b97f4a7c15ull) ^
	    (uint64_t)(uintptr_t)ph;
}

/* A header the pool was about to trust is wrong: say so, abort. */
static _Noreturn KMEM_COLD KMEM_NOINLINE void
ph_corrupt(struct pool *pp, const char *fn, const void *v,
    const struct kmem_pool_page *ph, const char *why)
{
	char arg[32] = "";

	if (v != NULL)
		kmem_snprintf(arg, sizeof arg, ", %p", v);
	kmem_panic("%s(pool '%s'%s): page header at %p corrupted (page %p): %s",
	    fn, pp->pr_wchan, arg, (const void *)ph, (const void *)ph->ph_page,
	    why);
}

/*
 * Before the pool takes from or puts to the page of ph ("fn", item v or
 * NULL): the canary, and the counts the bitmap walk relies on.  Lock held.
 */
static inline void
ph_verify(struct pool *pp, const char *fn, const void *v,
    const struct kmem_pool_page *ph)
{
	if (kmem_unlikely(ph->ph_canary != ph_canary_of(ph)))
		ph_corrupt(pp, fn, v, ph, "canary does not match");
	if (kmem_unlikely(ph->ph_nmissing > ph->ph_nitems ||
		ph->ph_nitems > pp->pr_itemsperpage ||
		ph->ph_hint >= pp->pr_bmwords))
		ph_corrupt(pp, fn, v, ph, "counts out of range");
}

/* ---- item index ---- */

/*
 * An item's index from its offset in its page, by a multiply and a shift
 * rather than a 64-bit division (the put path's costliest instruction:
 * a sixth of pool_put's time under python's churn of malloc).  With
 * 2^k >= pagesz * size and m = ceil(2^k / size) = (2^k + e) / size,
 * 0 <= e < size: off * m / 2^k = off / size + off * e / (size * 2^k),
 * whose second term is below 1 / size for every off < pagesz, too little
 * to carry off / size (fractional part at most (size - 1) / size) past
 * an integer -- the floor is the quotient, exactly.  k = log2(pagesz) +
 * ceil(log2(size)), so m < 2 pagesz + 1 and off * m < 2^62 for pages up
 * to 2^30 bytes; larger pages (a caller's allocator) keep the division
 * (*mulp = 0).  The unit tests check every offset of a range of sizes.
 */
bool
kmemi_pool_idx_recip(
    size_t size, size_t pagesz, unsigned int *mulp, unsigned int *shiftp)
{
	unsigned int k;

	*mulp = *shiftp = 0;
	if (size == 0 || !kmem_powerof2(pagesz) || pagesz > ((size_t)1 << 30))
		return false;
	k = kmem_ilog2(pagesz) + kmem_ilog2(size) + !kmem_powerof2(size);
	*mulp = (unsigned int)((((uint64_t)1 << k) + size - 1) / size);
	*shiftp = k;
	return true;
}

/* off / pp->pr_size, for off < the page size. */
static inline size_t
pool_item_index(const struct pool *pp, size_t off)
{
	KMEM_ASSERT(off <= pp->pr_alloc->pa_pagemask);
	if (kmem_likely(pp->pr_idxmul != 0))
		return (
		    size_t)(((uint64_t)off * pp->pr_idxmul) >> pp->pr_idxshift);
	return off / pp->pr_size;
}

/* ---- page lists ---- */

static struct kmem_pool_page **
pool_list_of(struct pool *pp, unsigned int list)
{
	return list == PH_EMPTY ? &pp->pr_emptypages
	    : list == PH_PART	? &pp->pr_partpages
				: &pp->pr_fullpages;
}

/* Insert at the head of a list. */
static void
ph_insert(struct pool *pp, struct kmem_pool_page *ph, unsigned int list)
{
	struct kmem_pool_page **head = pool_list_of(pp, list);

	KMEM_ASSERT(kmem_plock_held(&pp->pr_lock));
	/* (Its count may already say the next list: ph_take, put.) */
	KMEM_ASSERT(list <= PH_FULL && ph->ph_pool == pp);
	ph->ph_list = list;
	if (*head == NULL) {
		ph->ph_next = ph->ph_prev = ph;
	} else {
		ph->ph_next = *head;
		ph->ph_prev = (*head)->ph_prev;
		ph->ph_prev->ph_next = ph;
		(*head)->ph_prev = ph;
	}
	*head = ph;
	if (list == PH_EMPTY)
		pp->pr_nidle++;
}

static void
ph_remove(struct pool *pp, struct kmem_pool_page *ph)
{
	struct kmem_pool_page **head = pool_list_of(pp, ph->ph_list);

	KMEM_ASSERT(kmem_plock_held(&pp->pr_lock));
	KMEM_ASSERT(*head != NULL && ph->ph_pool == pp);
	KMEM_ASSERT(ph->ph_next->ph_prev == ph && ph->ph_prev->ph_next == ph);
	KMEM_ASSERT(ph->ph_list != PH_EMPTY || pp->pr_nidle > 0);
	if (ph->ph_next == ph) {
		*head = NULL;
	} else {
		ph->ph_prev->ph_next = ph->ph_next;
		ph->ph_next->ph_prev = ph->ph_prev;
		if (*head == ph)
			*head = ph->ph_next;
	}
	if (ph->ph_list == PH_EMPTY)
		pp->pr_nidle--;
}

static void
ph_move(struct pool *pp, struct kmem_pool_page *ph, unsigned int list)
{
	ph_remove(pp, ph);
	ph_insert(pp, ph, list);
}

/* ---- page lookup hash ---- */

static inline size_t
ph_hash_index(const struct pool *pp, uintptr_t block)
{
	uint64_t h = (uint64_t)block * 0x9e3779b97f4a7c15ull;

	return (size_t)(h ^ (h >> 29)) & pp->pr_phhashmask;
}

static void
ph_hash_resize(struct pool *pp, size_t size)
{
	size_t i, old = pp->pr_phhashmask + 1;
	struct kmem_pool_page **nt, **ot = pp->pr_phhash, *ph, *next;
	unsigned int shift = pp->pr_alloc->pa_pageshift;
	void *mem;

	if (kmemi_meta_alloc(
		pp->pr_dom, size * sizeof(*nt), VM_NOSLEEP, &mem) != 0)
		return; /* keep the old table: only slower */
	nt = mem;
	pp->pr_phhash = nt;
	pp->pr_phhashmask = size - 1;
	for (i = 0; i < old; i++) {
		for (ph = ot[i]; ph != NULL; ph = next) {
			size_t h =
			    ph_hash_index(pp, (uintptr_t)ph->ph_page >> shift);

			next = ph->ph_hnext;
			ph->ph_hnext = nt[h];
			nt[h] = ph;
		}
	}
	if (ot != pp->pr_phhash0)
		kmemi_meta_free(pp->pr_dom, ot, old * sizeof(*ot));
}

static void
ph_hash_insert(struct pool *pp, struct kmem_pool_page *ph)
{
	size_t h = ph_hash_index(
	    pp, (uintptr_t)ph->ph_page >> pp->pr_alloc->pa_pageshift);

	KMEM_ASSERT(kmem_plock_held(&pp->pr_lock));
	KMEM_ASSERT(pp->pr_roflags & PR_ROF_HASHED);
	ph->ph_hnext = pp->pr_phhash[h];
	pp->pr_phhash[h] = ph;
	if (pp->pr_npages + 1 > 2 * (pp->pr_phhashmask + 1))
		ph_hash_resize(pp, (pp->pr_phhashmask + 1) * 4);
}

static void
ph_hash_remove(struct pool *pp, struct kmem_pool_page *ph)
{
	size_t h = ph_hash_index(
	    pp, (uintptr_t)ph->ph_page >> pp->pr_alloc->pa_pageshift);
	struct kmem_pool_page **pp_ = &pp->pr_phhash[h];

	KMEM_ASSERT(kmem_plock_held(&pp->pr_lock));
	KMEM_ASSERT(pp->pr_roflags & PR_ROF_HASHED);
	while (*pp_ != ph) {
		KMEM_ASSERT(*pp_ != NULL); /* ph is in its chain */
		pp_ = &(*pp_)->ph_hnext;
	}
	*pp_ = ph->ph_hnext;
}

/* The hashed page that starts in block "block" and contains v. */
static struct kmem_pool_page *
ph_hash_find(struct pool *pp, uintptr_t block, uintptr_t v)
{
	unsigned int shift = pp->pr_alloc->pa_pageshift;
	struct kmem_pool_page *ph;

	for (ph = pp->pr_phhash[ph_hash_index(pp, block)]; ph != NULL;
	     ph = ph->ph_hnext) {
		uintptr_t start = (uintptr_t)ph->ph_page;

		if (start >> shift == block && v >= start &&
		    v - start <= pp->pr_alloc->pa_pagemask)
			return ph;
	}
	return NULL;
}

/*
 * The page holding v, or a panic naming what v is not.  Constant time:
 * an on-page header at the page's start, else one or two hash lookups.
 */
static struct kmem_pool_page *
pool_page_of(struct pool *pp, const char *fn, void *v)
{
	struct pool_allocator *pa = pp->pr_alloc;
	uintptr_t a = (uintptr_t)v, block = a >> pa->pa_pageshift;
	struct kmem_pool_page *ph;

	if (!(pp->pr_roflags & PR_ROF_HASHED)) {
		ph = (struct kmem_pool_page *)(a & ~(uintptr_t)pa->pa_pagemask);
		if (ph->ph_page == (char *)ph && ph->ph_pool == pp)
			return ph;
		if (ph->ph_page == (char *)ph && ph->ph_pool != NULL &&
		    ph->ph_pool->pr_magic == POOL_MAGIC)
			kmem_panic("%s(pool '%s', %p): item belongs to pool "
				   "'%s'",
			    fn, pp->pr_wchan, v, ph->ph_pool->pr_wchan);
		kmem_panic("%s(pool '%s', %p): not an item of this pool (no "
			   "page header at %p)",
		    fn, pp->pr_wchan, v, (void *)ph);
	}
	ph = ph_hash_find(pp, block, a);
	if (ph == NULL && (pp->pr_flags & PR_NOALIGN) && block > 0)
		ph = ph_hash_find(pp, block - 1, a);
	if (ph == NULL)
		kmem_panic("%s(pool '%s', %p): not an item of this pool (in "
			   "none of its %u pages)",
		    fn, pp->pr_wchan, v, pp->pr_npages);
	return ph;
}

/* ---- init / destroy ---- */

void
pool_init(struct pool *pp, size_t size, unsigned int align,
    unsigned int align_offset, int flags, const char *wchan,
    struct pool_allocator *palloc, int ipl)
{
	size_t pagesz, avail, hdr_on, ipp_on, ipp_off, slack;
	unsigned int ipp, bmwords;
	bool onpage, nocolor;

	(void)ipl;
	struct kmem_domain *d = kmemi_dom_cur();

	kmem_options_init();
	if (align == 0)
		align = 8; /* NetBSD's ALIGN(1) on LP64 */
	if (!kmem_powerof2(align))
		kmem_panic("pool_init(pool '%s', size %zu, align %u): align is "
			   "not a power of two",
		    wchan, size, align);
	if (align_offset != 0)
		kmem_panic("pool_init(pool '%s', size %zu, align %u, offset "
			   "%u): align_offset must be 0",
		    wchan, size, align, align_offset);
	if (flags & PR_PSERIALIZE)
		flags |= PR_NOTOUCH;
	nocolor = (flags & KMEMI_PR_NOCOLOR) != 0;
	flags &= ~KMEMI_PR_NOCOLOR;
	if (palloc == NULL)
		palloc = pool_default_allocator(
		    kmem_align_up(size ? size : 1, align));
	pool_allocator_setup(palloc);
	pagesz = palloc->pa_pagesz;

	memset(pp, 0, sizeof(*pp));
	pp->pr_dom = d;
	kmem_plock_init(&pp->pr_lock);
	kmem_pcond_init(&pp->pr_cv);
	kmem_snprintf(pp->pr_wchan, sizeof pp->pr_wchan, "%s",
	    wchan != NULL ? wchan : "(anon)");
	pp->pr_flags = (unsigned int)flags;
	pp->pr_alloc = palloc;
	pp->pr_align = align;
	pp->pr_reqsize = size;
	pp->pr_size = kmem_align_up(size ? size : 1, align);
	if (pp->pr_size > pagesz)
		kmem_panic("pool_init(pool '%s', size %zu): item does not fit "
			   "in a page of %zu bytes",
		    pp->pr_wchan, size, pagesz);

	/* Items per page with the header outside, and inside. */
	ipp_off = pagesz / pp->pr_size;
	if (ipp_off > POOL_MAXITEMS)
		ipp_off = POOL_MAXITEMS;
	bmwords = (unsigned int)((ipp_off + 63) / 64);
	hdr_on = kmem_align_up(ph_size(bmwords), align);
	ipp_on = hdr_on < pagesz ? (pagesz - hdr_on) / pp->pr_size : 0;
	if (ipp_on > POOL_MAXITEMS)
		ipp_on = POOL_MAXITEMS;
	if (flags & (PR_NOTOUCH | PR_NOALIGN))
		onpage = false;
	else if (flags & PR_PHINPAGE)
		onpage = true;
	else
		onpage = pp->pr_size < (pagesz / 16 < 8 * ph_size(bmwords)
					       ? pagesz / 16
					       : 8 * ph_size(bmwords)) ||
		    ipp_on == ipp_off;
	if (onpage && ipp_on == 0)
		kmem_panic("pool_init(pool '%s', size %zu): no room for an "
			   "item after the page header",
		    pp->pr_wchan, size);
	ipp = (unsigned int)(onpage ? ipp_on : ipp_off);
	pp->pr_itemsperpage = ipp;
	pp->pr_bmwords = (ipp + 63) / 64;
	pp->pr_phsize = ph_size(pp->pr_bmwords);
	pp->pr_itemoffset = onpage ? hdr_on : 0;
	avail = pagesz - pp->pr_itemoffset;
	slack = avail - (size_t)ipp * pp->pr_size;
	pp->pr_maxcolor = nocolor ? 0 : kmem_align_down(slack, align);
	(void)kmemi_pool_idx_recip(
	    pp->pr_size, pagesz, &pp->pr_idxmul, &pp->pr_idxshift);
	if (!onpage)
		pp->pr_roflags |= PR_ROF_OFFPAGE;
	if (!onpage || (flags & PR_NOALIGN))
		pp->pr_roflags |= PR_ROF_HASHED;
	pp->pr_phhash = pp->pr_phhash0;
	pp->pr_phhashmask = KMEM_ARRAY_SIZE(pp->pr_phhash0) - 1;
	pp->pr_maxpages = UINT32_MAX;
	pp->pr_maxitems = UINT32_MAX;
	pp->pr_hardlimit = UINT32_MAX;
	pp->pr_magic = POOL_MAGIC;
	/*
	 * A user's pool of memory (not PR_NOTOUCH, not one of kmem's own
	 * pools over the metadata arena) is annotated while the tools run
	 * (section 2a); pool_cache takes its pool's over.
	 */
	if (!(flags & PR_NOTOUCH) && palloc != &kmemi_pool_allocator_meta &&
	    kmemi_annot_detect()) {
		pp->pr_roflags |= PR_ROF_ANNOT | PR_ROF_ANNOT_ITEMS;
		kmemi_annot_owner_create(pp);
	}

	kmem_mutex_enter(&d->kd_pool_list_lock);
	if (!d->kd_pool_list_cv_ready) {
		kmem_cond_init(&d->kd_pool_list_cv);
		d->kd_pool_list_cv_ready = true;
	}
	if (__atomic_load_n(&pool_secret, __ATOMIC_RELAXED) == 0) {
		uint64_t none = 0;

		__atomic_compare_exchange_n(&pool_secret, &none,
		    kmem_prim_secret(), false, __ATOMIC_RELAXED,
		    __ATOMIC_RELAXED);
	}
	pp->pr_next = d->kd_pool_list;
	if (d->kd_pool_list != NULL)
		d->kd_pool_list->pr_pprev = &pp->pr_next;
	pp->pr_pprev = &d->kd_pool_list;
	d->kd_pool_list = pp;
	kmem_mutex_exit(&d->kd_pool_list_lock);
}

/*
 * pool_cache.c: the pool pp of a cache is not annotated by pool_get and
 * pool_put (the cache annotates its objects); its free items are no
 * access if "items" (a user's cache) and the tools run.
 */
void
kmemi_pool_annot_set(struct pool *pp, bool items)
{
	if (pp->pr_roflags & PR_ROF_ANNOT)
		kmemi_annot_owner_destroy(pp);
	pp->pr_roflags &= ~(unsigned int)(PR_ROF_ANNOT | PR_ROF_ANNOT_ITEMS);
	if (items && !(pp->pr_flags & PR_NOTOUCH) && kmemi_annot_detect())
		pp->pr_roflags |= PR_ROF_ANNOT_ITEMS;
}

/* Give a page back: to its allocator, and its header to its pool. */
static void
pool_page_release(struct pool *pp, struct kmem_pool_page *ph)
{
	void *page = ph->ph_page;

	KMEM_ASSERT(ph->ph_nmissing == 0 && ph->ph_pool == pp);
	/* Back to its allocator as it came (section 2a). */
	if (pp->pr_roflags & PR_ROF_ANNOT_ITEMS)
		kmemi_annot_defined(page, pp->pr_alloc->pa_pagesz);
	pp->pr_alloc->pa_free(pp, page);
	if (pp->pr_roflags & PR_ROF_OFFPAGE)
		pool_put(phpool_for(pp->pr_dom, pp->pr_bmwords), ph);
}

/* Unlink an empty page from the pool; lock held.  Caller releases it. */
static void
pool_page_detach(struct pool *pp, struct kmem_pool_page *ph)
{
	KMEM_ASSERT(ph->ph_nmissing == 0 && ph->ph_list == PH_EMPTY);
	KMEM_ASSERT(pp->pr_npages > 0 && pp->pr_nitems >= ph->ph_nitems);
	ph_remove(pp, ph);
	if (pp->pr_roflags & PR_ROF_HASHED)
		ph_hash_remove(pp, ph);
	pp->pr_npages--;
	pp->pr_nitems -= ph->ph_nitems;
	pp->pr_npagefree++;
}

static void pool_release_list(struct pool *pp, struct kmem_pool_page *list);

void
pool_destroy(struct pool *pp)
{
	struct kmem_domain *d;
	struct kmem_pool_page *ph, *idle = NULL;
	unsigned int leaked;

	if (pp->pr_magic != POOL_MAGIC)
		kmem_panic(
		    "pool_destroy(%p): not an initialised pool", (void *)pp);
	if (__atomic_load_n(&pp->pr_flush, __ATOMIC_ACQUIRE) != NULL)
		kmem_panic("pool_destroy(pool '%s'): a pool_cache is still "
			   "attached",
		    pp->pr_wchan);
	d = pp->pr_dom;
	kmemi_dom_op(d, +1); /* until its memory is back (kmemi_dom_busy) */
	kmem_mutex_enter(&d->kd_pool_list_lock);
	while (pp->pr_refcnt != 0)
		kmem_cond_wait(&d->kd_pool_list_cv, &d->kd_pool_list_lock);
	*pp->pr_pprev = pp->pr_next;
	if (pp->pr_next != NULL)
		pp->pr_next->pr_pprev = pp->pr_pprev;
	if (d->kd_pool_drain_cursor == pp)
		d->kd_pool_drain_cursor = NULL;
	kmem_mutex_exit(&d->kd_pool_list_lock);
	leaked = pp->pr_nout;
	if (leaked != 0)
		kmem_warn("pool_destroy(pool '%s'): %u items still out; their "
			  "pages are not freed",
		    pp->pr_wchan, leaked);
	/* Under the lock, as every page list change (KMEM_ASSERT says so). */
	kmem_plock_enter(&pp->pr_lock);
	while ((ph = pp->pr_emptypages) != NULL) {
		pool_page_detach(pp, ph);
		ph->ph_hnext = idle;
		idle = ph;
	}
	kmem_plock_exit(&pp->pr_lock);
	pool_release_list(pp, idle);
	if (pp->pr_phhash != pp->pr_phhash0)
		kmemi_meta_free(pp->pr_dom, pp->pr_phhash,
		    (pp->pr_phhashmask + 1) * sizeof(*pp->pr_phhash));
	pp->pr_magic = 0;
	if (pp->pr_roflags & PR_ROF_ANNOT)
		kmemi_annot_owner_destroy(pp);
	kmem_pcond_destroy(&pp->pr_cv);
	kmem_plock_destroy(&pp->pr_lock);
	kmemi_dom_op(d, -1);
}

void
pool_set_drain_hook(struct pool *pp, void (*fn)(void *, int), void *arg)
{
	kmem_plock_enter(&pp->pr_lock);
	pp->pr_drain_hook = fn;
	pp->pr_drain_hook_arg = arg;
	kmem_plock_exit(&pp->pr_lock);
}

/* ---- growing ---- */

static void
pool_wait(struct pool *pp, uint64_t ns)
{
	KMEM_ASSERT(kmem_plock_held(&pp->pr_lock));
	pp->pr_nwaiters++;
	if (ns == 0)
		kmem_pcond_wait(&pp->pr_cv, &pp->pr_lock);
	else
		kmem_pcond_timedwait(&pp->pr_cv, &pp->pr_lock, ns);
	pp->pr_nwaiters--;
}

/*
 * Add a page.  Lock held; dropped around the allocator.  0, or ENOMEM
 * (NOWAIT and no memory), or EAGAIN (another thread was growing: look
 * again).
 */
static int
pool_grow(struct pool *pp, int flags)
{
	struct kmem_pool_page *ph;
	char *page;
	unsigned int i;
	uintptr_t plast, istart;
	size_t n;

	KMEM_ASSERT(kmem_plock_held(&pp->pr_lock));
	if (pp->pr_ngrowing != 0) {
		/*
		 * One grower at a time; the rest wait for it and look again,
		 * except that a PR_NOWAIT caller does not wait behind a
		 * PR_WAITOK grower, which may sleep for memory (NetBSD's
		 * EWOULDBLOCK).
		 */
		if ((flags & PR_NOWAIT) && pp->pr_ngrowing == 2)
			return ENOMEM;
		pool_wait(pp, 0);
		return EAGAIN;
	}
	pp->pr_ngrowing = (flags & PR_WAITOK) ? 2 : 1;
	kmem_plock_exit(&pp->pr_lock);
	page = pp->pr_alloc->pa_alloc(pp, flags);
	ph = NULL;
	if (page != NULL && (pp->pr_roflags & PR_ROF_OFFPAGE)) {
		ph = pool_get(phpool_for(pp->pr_dom, pp->pr_bmwords), flags);
		if (ph == NULL) {
			pp->pr_alloc->pa_free(pp, page);
			page = NULL;
		}
	}
	kmem_plock_enter(&pp->pr_lock);
	pp->pr_ngrowing = 0;
	if (pp->pr_nwaiters != 0)
		kmem_pcond_broadcast(&pp->pr_cv);
	if (page == NULL)
		return ENOMEM;
	if (((uintptr_t)page & pp->pr_alloc->pa_pagemask) != 0 &&
	    !(pp->pr_flags & PR_NOALIGN))
		kmem_panic("pool_grow(pool '%s'): allocator returned page %p "
			   "not aligned to its size %u (use PR_NOALIGN)",
		    pp->pr_wchan, (void *)page, pp->pr_alloc->pa_pagesz);
	if (ph == NULL)
		ph = (struct kmem_pool_page *)page;
	memset(ph, 0, pp->pr_phsize);
	ph->ph_pool = pp;
	ph->ph_page = page;
	ph->ph_canary = ph_canary_of(ph);
	/*
	 * Items aligned in absolute terms: a PR_NOALIGN page that starts
	 * below the item alignment loses the items that no longer fit.
	 */
	/*
	 * Integer arithmetic with the page's last address: a page of a
	 * quantum cache over integers may end at the top of the address
	 * space, where page + pagesz wraps.
	 */
	plast = (uintptr_t)page + (pp->pr_alloc->pa_pagesz - 1);
	if (!kmem_align_up_ok(
		(uintptr_t)page + pp->pr_itemoffset + pp->pr_curcolor,
		pp->pr_align, &istart) ||
	    istart > plast ||
	    (n = (plast - istart + 1) / pp->pr_size) == 0) /* < pagesz */
		kmem_panic("pool_grow(pool '%s'): page %p too misaligned for "
			   "items of %zu bytes aligned to %u",
		    pp->pr_wchan, (void *)page, pp->pr_size, pp->pr_align);
	ph->ph_items = (char *)istart;
	ph->ph_nitems =
	    n < pp->pr_itemsperpage ? (unsigned int)n : pp->pr_itemsperpage;
	pp->pr_curcolor += pp->pr_align;
	if (pp->pr_curcolor > pp->pr_maxcolor)
		pp->pr_curcolor = 0;
	for (i = 0; i < ph->ph_nitems / 64; i++)
		ph->ph_bitmap[i] = ~(uint64_t)0;
	if (ph->ph_nitems % 64)
		ph->ph_bitmap[i] = ((uint64_t)1 << (ph->ph_nitems % 64)) - 1;
	if (pp->pr_roflags & PR_ROF_ANNOT_ITEMS) /* free items: no access */
		kmemi_annot_noaccess(
		    ph->ph_items, (size_t)ph->ph_nitems * pp->pr_size);
	ph->ph_time = kmem_prim_clock_ns();
	if (pp->pr_roflags & PR_ROF_HASHED)
		ph_hash_insert(pp, ph);
	ph_insert(pp, ph, PH_EMPTY);
	pp->pr_npages++;
	pp->pr_nitems += ph->ph_nitems;
	pp->pr_npagealloc++;
	if (pp->pr_npages > pp->pr_hiwat)
		pp->pr_hiwat = pp->pr_npages;
	POOL_CHECK_HOOK(pp);
	return 0;
}

/* ---- get / put ---- */

/*
 * Up to max free items of page ph into objs, lowest first (max >= 1; at
 * most the page's free items): one header check, whole bitmap words at a
 * time.  Returns how many.  Lock held; the caller counts them in the pool.
 */
static unsigned int
ph_take(
    struct pool *pp, struct kmem_pool_page *ph, void **objs, unsigned int max)
{
	unsigned int w = ph->ph_hint, got = 0, bit;
	bool was_empty = ph->ph_nmissing == 0;
	uint64_t word;

	ph_verify(pp, "pool_get", NULL, ph);
	KMEM_ASSERT(ph->ph_list != PH_FULL && ph->ph_nmissing < ph->ph_nitems);
	KMEM_ASSERT(max >= 1);
	if (max > ph->ph_nitems - ph->ph_nmissing)
		max = ph->ph_nitems - ph->ph_nmissing;
	do {
		while ((word = ph->ph_bitmap[w]) == 0)
			if (kmem_unlikely(++w == pp->pr_bmwords))
				ph_corrupt(pp, "pool_get", NULL, ph,
				    "no free item in its bitmap");
		do {
			bit = (unsigned int)__builtin_ctzll(word);
			word &= word - 1;
			objs[got++] =
			    ph->ph_items + (size_t)(w * 64 + bit) * pp->pr_size;
		} while (word != 0 && got < max);
		ph->ph_bitmap[w] = word;
	} while (got < max);
	ph->ph_hint = w;
	ph->ph_nmissing += got;
	if (was_empty)
		ph_move(pp, ph, PH_PART);
	if (ph->ph_nmissing == ph->ph_nitems)
		ph_move(pp, ph, PH_FULL);
	return got;
}

static void
pool_check_flags(struct pool *pp, const char *fn, int flags)
{
	if (pp->pr_magic != POOL_MAGIC)
		kmem_panic("%s(%p): not an initialised pool", fn, (void *)pp);
	if ((flags & (PR_WAITOK | PR_NOWAIT)) != PR_WAITOK &&
	    (flags & (PR_WAITOK | PR_NOWAIT)) != PR_NOWAIT)
		kmem_panic("%s(pool '%s', flags %#x): need exactly one of "
			   "PR_WAITOK and PR_NOWAIT",
		    fn, pp->pr_wchan, (unsigned)flags);
}

/* Hard limit reached: hook, warning, then wait or fail.  Lock held. */
static bool
pool_at_limit(struct pool *pp, int flags, bool *flushed)
{
	uint64_t now;

	KMEM_ASSERT(kmem_plock_held(&pp->pr_lock));
	KMEM_ASSERT(pp->pr_nout >= pp->pr_hardlimit);
	if (pp->pr_drain_hook != NULL) {
		void (*hook)(void *, int) = pp->pr_drain_hook;
		void *arg = pp->pr_drain_hook_arg;

		kmem_plock_exit(&pp->pr_lock);
		hook(arg, flags);
		kmem_plock_enter(&pp->pr_lock);
		if (pp->pr_nout < pp->pr_hardlimit)
			return true;
	}
	now = kmem_prim_clock_ns();
	if (pp->pr_hardlimit_warning != NULL &&
	    (pp->pr_hardlimit_warned == 0 ||
		now - pp->pr_hardlimit_warned >=
		    (uint64_t)pp->pr_hardlimit_ratecap * 1000000000u)) {
		pp->pr_hardlimit_warned = now;
		kmem_warn(
		    "pool '%s': %s", pp->pr_wchan, pp->pr_hardlimit_warning);
	}
	if ((flags & PR_NOWAIT) || (flags & PR_LIMITFAIL))
		return false;
	if (pp->pr_flush != NULL && !*flushed) {
		/* Objects cached in magazines count against the limit. */
		*flushed = true;
		kmem_plock_exit(&pp->pr_lock);
		pool_flush_cache(pp);
		kmem_plock_enter(&pp->pr_lock);
		return true;
	}
	pool_wait(pp, 0);
	*flushed = false;
	return true;
}

/*
 * The objects a cache keeps in front of pp (magazines) back to pp: the
 * layer above registers its flush in pr_flush (pool_cache.c, with a
 * release store, cleared before it lets the pool go); the pool knows
 * nothing else of it.  No lock held.
 */
static void
pool_flush_cache(struct pool *pp)
{
	void (*flush)(struct pool *) =
	    __atomic_load_n(&pp->pr_flush, __ATOMIC_ACQUIRE);

	if (flush != NULL)
		flush(pp);
}

/* Free empty pages idle long enough (or all); lock held, returns count. */
static unsigned int
pool_free_idle(
    struct pool *pp, bool everything, struct kmem_pool_page **freelist)
{
	uint64_t now = kmem_prim_clock_ns();
	struct kmem_pool_page *ph;
	unsigned int n = 0;

	KMEM_ASSERT(kmem_plock_held(&pp->pr_lock));
	while ((ph = pp->pr_emptypages) != NULL) {
		ph = ph->ph_prev; /* the oldest */
		if (!everything &&
		    now - ph->ph_time <
			pp->pr_dom->kd_opts.pool_idle_ms * 1000000u)
			break;
		if (pp->pr_npages <= pp->pr_minpages ||
		    pp->pr_nitems - ph->ph_nitems < pp->pr_minitems)
			break;
		pool_page_detach(pp, ph);
		ph->ph_hnext = *freelist;
		*freelist = ph;
		n++;
	}
	return n;
}

static void
pool_release_list(struct pool *pp, struct kmem_pool_page *list)
{
	struct kmem_pool_page *ph;

	while ((ph = list) != NULL) {
		list = ph->ph_hnext;
		pool_page_release(pp, ph);
	}
}

/*
 * Up to n items, at least one unless failing (NOWAIT, or the hard limit
 * with PR_LIMITFAIL): the first as pool_get gets it (growing, waiting),
 * the rest from the pages the pool then has, in address order, under the
 * same lock hold -- so that concurrent callers get disjoint runs (the
 * pool_cache fill, against false sharing).  Returns how many.
 */
unsigned int
kmemi_pool_get_batch(struct pool *pp, int flags, void **objs, unsigned int n)
{
	struct kmem_pool_page *ph;
	bool flushed = false;
	unsigned int got = 0;
	int err;

	pool_check_flags(pp, "pool_get", flags);
	kmem_plock_enter(&pp->pr_lock);
	for (;;) {
		if (kmem_unlikely(pp->pr_nout >= pp->pr_hardlimit)) {
			if (!pool_at_limit(pp, flags, &flushed))
				goto fail;
			continue;
		}
		ph = pp->pr_partpages != NULL ? pp->pr_partpages
					      : pp->pr_emptypages;
		if (kmem_likely(ph != NULL))
			break;
		err = pool_grow(pp, flags);
		if (err == ENOMEM) {
			if (flags & PR_NOWAIT)
				goto fail;
			/*
			 * A retry: the page source waits itself for an
			 * unaligned page, but an aligned one (vmem_xalloc
			 * with an alignment) gets ENOMEM at once, as in
			 * NetBSD -- this is its wait, 10 ms at a time.
			 */
			pool_wait(pp, 10000000u);
		}
	}
	KMEM_ASSERT(n >= 1);
	do {
		/*
		 * From this page, as many as one at a time would have taken
		 * (it stays the first partial page until full): the first
		 * whatever the low watermark, then while free items exceed
		 * it; below the hard limit.
		 */
		unsigned int k = n - got;

		KMEM_ASSERT(
		    pp->pr_nitems > 0 && pp->pr_nout < pp->pr_hardlimit);
		if (k > pp->pr_hardlimit - pp->pr_nout)
			k = pp->pr_hardlimit - pp->pr_nout;
		if (pp->pr_nitems <= pp->pr_minitems)
			k = 1; /* only the first (got == 0) */
		else if (k > pp->pr_nitems - pp->pr_minitems)
			k = pp->pr_nitems - pp->pr_minitems;
		k = ph_take(pp, ph, objs + got, k);
		got += k;
		pp->pr_nitems -= k;
		pp->pr_nout += k;
		pp->pr_nget += k;
	} while (got < n && pp->pr_nout < pp->pr_hardlimit &&
	    pp->pr_nitems > pp->pr_minitems &&
	    (ph = pp->pr_partpages != NULL ? pp->pr_partpages
					   : pp->pr_emptypages) != NULL);
	/* Keep the low watermark: catch up without waiting. */
	if (kmem_unlikely(pp->pr_nitems < pp->pr_minitems) &&
	    pp->pr_ngrowing == 0)
		(void)pool_grow(pp, PR_NOWAIT);
	kmem_plock_exit(&pp->pr_lock);
	return got;
fail:
	pp->pr_nfail++;
	kmem_plock_exit(&pp->pr_lock);
	return 0;
}

void *
pool_get(struct pool *pp, int flags)
{
	void *v;

	if (kmemi_pool_get_batch(pp, flags, &v, 1) == 0)
		return NULL;
	if (kmem_unlikely(pp->pr_roflags & PR_ROF_ANNOT))
		kmemi_annot_alloc(
		    pp, v, pp->pr_reqsize, pp->pr_size, KMEMI_AN_UNDEF);
	if (flags & PR_ZERO)
		memset(v, 0, pp->pr_reqsize);
	return v;
}

/*
 * Put v back; pool lock held.  Pages to free go on *idle.  *last is the
 * page of the previous put under this lock hold (NULL: none), and
 * becomes v's: a batch's items of one page, one after the other, find it
 * without the lookup (pages never overlap: an address within a page's
 * bytes is that page's); a page that empties may leave the pool, so it
 * is never remembered.
 */
static void
pool_put_locked(struct pool *pp, void *v, struct kmem_pool_page **idle,
    struct kmem_pool_page **last)
{
	struct kmem_pool_page *ph = *last;
	size_t off;
	unsigned int idx;
	uint64_t bit;

	KMEM_ASSERT(kmem_plock_held(&pp->pr_lock));
	if (ph == NULL ||
	    (uintptr_t)v - (uintptr_t)ph->ph_page > pp->pr_alloc->pa_pagemask)
		ph = pool_page_of(pp, "pool_put", v);
	ph_verify(pp, "pool_put", v, ph);
	*last = ph;
	off = (size_t)((char *)v - ph->ph_items);
	if ((char *)v < ph->ph_items ||
	    (idx = (unsigned int)pool_item_index(pp, off)) >= ph->ph_nitems ||
	    (size_t)idx * pp->pr_size != off)
		kmem_panic("pool_put(pool '%s', %p): not an item boundary "
			   "(items of %zu bytes start at %p in page %p)",
		    pp->pr_wchan, v, pp->pr_size, (void *)ph->ph_items,
		    (void *)ph->ph_page);
	bit = (uint64_t)1 << (idx % 64);
	if (ph->ph_bitmap[idx / 64] & bit)
		kmem_panic("pool_put(pool '%s', %p): item is already free "
			   "(double put)",
		    pp->pr_wchan, v);
	if (kmem_unlikely(ph->ph_nmissing == 0))
		ph_corrupt(pp, "pool_put", v, ph, "no item out");
	KMEM_ASSERT(pp->pr_nout > 0);
	ph->ph_bitmap[idx / 64] |= bit;
	if (idx / 64 < ph->ph_hint)
		ph->ph_hint = idx / 64;
	pp->pr_nitems++;
	pp->pr_nout--;
	pp->pr_nput++;
	if (ph->ph_nmissing-- == ph->ph_nitems)
		ph_move(pp, ph, PH_PART); /* full -> partial: next to use */
	if (ph->ph_nmissing == 0) {
		*last = NULL;
		ph_move(pp, ph, PH_EMPTY);
		ph->ph_time = kmem_prim_clock_ns();
		if (pp->pr_nitems - ph->ph_nitems >= pp->pr_minitems &&
		    pp->pr_npages > pp->pr_minpages &&
		    (pp->pr_nitems > pp->pr_maxitems ||
			pp->pr_npages > pp->pr_maxpages)) {
			pool_page_detach(pp, ph);
			ph->ph_hnext = *idle;
			*idle = ph;
		} else {
			pool_free_idle(pp, false, idle);
		}
		POOL_CHECK_HOOK(pp);
	}
}

static void
pool_check_magic(struct pool *pp, void *v)
{
	if (pp->pr_magic != POOL_MAGIC)
		kmem_panic(
		    "pool_put(%p, %p): not an initialised pool", (void *)pp, v);
}

void
pool_put(struct pool *pp, void *v)
{
	struct kmem_pool_page *idle = NULL, *last = NULL;

	pool_check_magic(pp, v);
	kmem_plock_enter(&pp->pr_lock);
	pool_put_locked(pp, v, &idle, &last);
	/* Checked; before a get can hand it out again (section 2a). */
	if (kmem_unlikely(pp->pr_roflags & PR_ROF_ANNOT))
		kmemi_annot_free(pp, v, pp->pr_size);
	if (pp->pr_nwaiters != 0)
		kmem_pcond_broadcast(&pp->pr_cv);
	kmem_plock_exit(&pp->pr_lock);
	if (idle != NULL)
		pool_release_list(pp, idle);
}

void
kmemi_pool_put_batch(struct pool *pp, void *const *objs, unsigned int n)
{
	struct kmem_pool_page *idle = NULL, *last = NULL;
	unsigned int i;

	if (n == 0)
		return;
	pool_check_magic(pp, objs[0]);
	kmem_plock_enter(&pp->pr_lock);
	for (i = 0; i < n; i++)
		pool_put_locked(pp, objs[i], &idle, &last);
	if (pp->pr_nwaiters != 0)
		kmem_pcond_broadcast(&pp->pr_cv);
	kmem_plock_exit(&pp->pr_lock);
	if (idle != NULL)
		pool_release_list(pp, idle);
}

/* ---- watermarks and limits ---- */

static unsigned int
pool_pages_for(const struct pool *pp, unsigned int items)
{
	return (unsigned int)(((uint64_t)items + pp->pr_itemsperpage - 1) /
	    pp->pr_itemsperpage);
}

void
pool_prime(struct pool *pp, int n)
{
	kmem_plock_enter(&pp->pr_lock);
	pp->pr_minpages = pool_pages_for(pp, n < 0 ? 0 : (unsigned int)n);
	if (pp->pr_maxpages <= pp->pr_minpages)
		pp->pr_maxpages = pp->pr_minpages + 1;
	while (pp->pr_npages < pp->pr_minpages) {
		if (pool_grow(pp, PR_WAITOK) == ENOMEM)
			pool_wait(pp, 10000000u);
	}
	kmem_plock_exit(&pp->pr_lock);
}

void
pool_setlowat(struct pool *pp, int n)
{
	kmem_plock_enter(&pp->pr_lock);
	pp->pr_minitems = n < 0 ? 0 : (unsigned int)n;
	pp->pr_minpages = pool_pages_for(pp, pp->pr_minitems);
	while (pp->pr_nitems < pp->pr_minitems) {
		int err = pool_grow(pp, PR_NOWAIT);

		if (err == ENOMEM)
			break;
	}
	kmem_plock_exit(&pp->pr_lock);
}

void
pool_sethiwat(struct pool *pp, int n)
{
	struct kmem_pool_page *idle = NULL;

	kmem_plock_enter(&pp->pr_lock);
	pp->pr_maxitems = n < 0 ? 0 : (unsigned int)n;
	/* Already above it: give back empty pages now. */
	while (pp->pr_emptypages != NULL && pp->pr_nitems > pp->pr_maxitems &&
	    pp->pr_npages > pp->pr_minpages &&
	    pp->pr_nitems - pp->pr_emptypages->ph_prev->ph_nitems >=
		pp->pr_minitems) {
		struct kmem_pool_page *ph = pp->pr_emptypages->ph_prev;

		pool_page_detach(pp, ph);
		ph->ph_hnext = idle;
		idle = ph;
	}
	kmem_plock_exit(&pp->pr_lock);
	pool_release_list(pp, idle);
}

void
pool_sethardlimit(
    struct pool *pp, unsigned int n, const char *warnmess, int ratecap)
{
	kmem_plock_enter(&pp->pr_lock);
	pp->pr_hardlimit = n;
	pp->pr_hardlimit_warning = warnmess;
	pp->pr_hardlimit_ratecap = ratecap;
	pp->pr_hardlimit_warned = 0;
	pp->pr_maxpages = pool_pages_for(pp, n);
	if (pp->pr_nwaiters != 0)
		kmem_pcond_broadcast(&pp->pr_cv);
	kmem_plock_exit(&pp->pr_lock);
}

/* ---- reclaiming ---- */

int
kmemi_pool_reclaim_idle(struct pool *pp, bool everything)
{
	struct kmem_pool_page *idle = NULL;
	unsigned int n;

	kmem_plock_enter(&pp->pr_lock);
	n = pool_free_idle(pp, everything, &idle);
	kmem_plock_exit(&pp->pr_lock);
	pool_release_list(pp, idle);
	return n != 0;
}

void
kmemi_pool_reap_all(struct kmem_domain *d, bool everything)
{
	struct pool *pp, *next;

	kmem_mutex_enter(&d->kd_pool_list_lock);
	if ((pp = d->kd_pool_list) != NULL)
		pool_ref(pp);
	while (pp != NULL) {
		kmem_mutex_exit(&d->kd_pool_list_lock);
		kmemi_pool_reclaim_idle(pp, everything);
		kmem_mutex_enter(&d->kd_pool_list_lock);
		if ((next = pp->pr_next) != NULL)
			pool_ref(next);
		pool_unref(pp);
		pp = next;
	}
	kmem_mutex_exit(&d->kd_pool_list_lock);
}

/*
 * Call fn(pp, arg) for every pool, in list order, holding a reference and
 * not the list lock (fn may take the pool's lock, or call pool functions
 * other than pool_init/pool_destroy).  Stops early when fn returns
 * non-zero, and returns that value.
 */
int
kmemi_pool_foreach_in(
    struct kmem_domain *d, int (*fn)(struct pool *, void *), void *arg)
{
	struct pool *pp, *next;
	int rv = 0;

	kmem_mutex_enter(&d->kd_pool_list_lock);
	if ((pp = d->kd_pool_list) != NULL)
		pool_ref(pp);
	while (pp != NULL) {
		kmem_mutex_exit(&d->kd_pool_list_lock);
		rv = fn(pp, arg);
		kmem_mutex_enter(&d->kd_pool_list_lock);
		next = rv == 0 ? pp->pr_next : NULL;
		if (next != NULL)
			pool_ref(next);
		pool_unref(pp);
		pp = next;
	}
	kmem_mutex_exit(&d->kd_pool_list_lock);
	return rv;
}

struct pool_foreach_arg {
	int (*fn)(struct pool *, void *);
	void *arg;
};

static int
pool_foreach_dom(struct kmem_domain *d, void *arg)
{
	struct pool_foreach_arg *a = arg;

	return kmemi_pool_foreach_in(d, a->fn, a->arg);
}

int
kmemi_pool_foreach(int (*fn)(struct pool *, void *), void *arg)
{
	struct pool_foreach_arg a = {fn, arg};

	return kmemi_dom_foreach(pool_foreach_dom, &a);
}

/*
 * Whether v lies in one of hashed pool pp's pages, and if so, the item
 * that contains it and whether that item is handed out.  Never reads v's
 * memory, so any address may be asked about (a debugging aid: kmem's
 * foreign-pointer reports).  Pools with on-page headers: always false.
 */
static bool
pool_item_of_locked(struct pool *pp, const void *v, void **itemp, bool *outp)
{
	uintptr_t a = (uintptr_t)v, block = a >> pp->pr_alloc->pa_pageshift;
	struct kmem_pool_page *ph;
	size_t off, idx;

	ph = ph_hash_find(pp, block, a);
	if (ph == NULL && (pp->pr_flags & PR_NOALIGN) && block > 0)
		ph = ph_hash_find(pp, block - 1, a);
	if (ph == NULL || (const char *)v < ph->ph_items)
		return false;
	off = (size_t)((const char *)v - ph->ph_items);
	idx = off / pp->pr_size;
	if (idx >= ph->ph_nitems)
		return false;
	*itemp = ph->ph_items + idx * pp->pr_size;
	*outp = !(ph->ph_bitmap[idx / 64] & ((uint64_t)1 << (idx % 64)));
	return true;
}

bool
kmemi_pool_item_of(struct pool *pp, const void *v, void **itemp, bool *outp)
{
	bool found;

	if (!(pp->pr_roflags & PR_ROF_HASHED))
		return false;
	kmem_plock_enter(&pp->pr_lock);
	found = pool_item_of_locked(pp, v, itemp, outp);
	kmem_plock_exit(&pp->pr_lock);
	return found;
}

static int
pool_fork_early_dom(struct kmem_domain *d, void *arg)
{
	if (*(int *)arg == KMEMI_FORK_PREPARE) {
		kmem_mutex_enter(&d->kd_page_arena_lock);
		kmem_mutex_enter(&d->kd_phpool_lock);
		return 0;
	}
	kmem_mutex_exit(&d->kd_phpool_lock);
	kmem_mutex_exit(&d->kd_page_arena_lock);
	return 0;
}

void
kmemi_pool_fork_early(int phase)
{
	kmemi_dom_foreach(pool_fork_early_dom, &phase);
}

static int
pool_fork_dom(struct kmem_domain *d, void *arg)
{
	int phase = *(int *)arg;
	struct pool *pp;

	if (phase == KMEMI_FORK_PREPARE) {
		kmem_mutex_enter(&d->kd_pool_list_lock);
		for (pp = d->kd_pool_list; pp != NULL; pp = pp->pr_next)
			kmem_plock_enter(&pp->pr_lock);
		return 0;
	}
	for (pp = d->kd_pool_list; pp != NULL; pp = pp->pr_next) {
		if (phase == KMEMI_FORK_CHILD) {
			/*
			 * A grower, waiters and walkers were other threads:
			 * left set, they would make the child wait for ever.
			 */
			pp->pr_ngrowing = 0;
			pp->pr_nwaiters = 0;
			pp->pr_refcnt = 0;
			kmem_pcond_init(&pp->pr_cv);
		}
		kmem_plock_exit(&pp->pr_lock);
	}
	if (phase == KMEMI_FORK_CHILD && d->kd_pool_list_cv_ready)
		kmem_cond_init(&d->kd_pool_list_cv);
	kmem_mutex_exit(&d->kd_pool_list_lock);
	return 0;
}

void
kmemi_pool_fork(int phase)
{
	kmemi_dom_foreach(pool_fork_dom, &phase);
}

int
pool_reclaim(struct pool *pp)
{
	void (*hook)(void *, int);
	void *arg;

	kmem_plock_enter(&pp->pr_lock);
	hook = pp->pr_drain_hook;
	arg = pp->pr_drain_hook_arg;
	kmem_plock_exit(&pp->pr_lock);
	if (hook != NULL)
		hook(arg, PR_NOWAIT);
	pool_flush_cache(pp);
	return kmemi_pool_reclaim_idle(pp, false);
}

/* Pages held, read under the pool's lock. */
static unsigned int
pool_npages(struct pool *pp)
{
	unsigned int n;

	kmem_plock_enter(&pp->pr_lock);
	n = pp->pr_npages;
	kmem_plock_exit(&pp->pr_lock);
	return n;
}

bool
pool_drain(struct pool **ppp)
{
	struct kmem_domain *d = kmemi_dom_cur();
	struct pool *pp, *start;
	int freed;

	/* Round robin: the next pool after the cursor that holds pages. */
	kmem_mutex_enter(&d->kd_pool_list_lock);
	start = d->kd_pool_drain_cursor != NULL &&
		d->kd_pool_drain_cursor->pr_next != NULL
	    ? d->kd_pool_drain_cursor->pr_next
	    : d->kd_pool_list;
	pp = start;
	while (pp != NULL && pool_npages(pp) == 0) {
		pp = pp->pr_next != NULL ? pp->pr_next : d->kd_pool_list;
		if (pp == start)
			pp = NULL;
	}
	d->kd_pool_drain_cursor = pp;
	if (pp != NULL)
		pool_ref(pp);
	kmem_mutex_exit(&d->kd_pool_list_lock);
	if (pp == NULL)
		return false;
	freed = pool_reclaim(pp);
	if (ppp != NULL)
		*ppp = pp;
	kmem_mutex_enter(&d->kd_pool_list_lock);
	pool_unref(pp);
	kmem_mutex_exit(&d->kd_pool_list_lock);
	return freed != 0;
}

int
pool_totalpages(void)
{
	struct kmem_domain *d = kmemi_dom_cur();
	size_t ps = kmem_prim_page_size();
	unsigned long total = 0;
	struct pool *pp;

	kmem_mutex_enter(&d->kd_pool_list_lock);
	for (pp = d->kd_pool_list; pp != NULL; pp = pp->pr_next) {
		if (pp->pr_flags & PR_RECURSIVE)
			continue;
		total += (unsigned long)pool_npages(pp) *
		    (pp->pr_alloc->pa_pagesz / ps);
	}
	kmem_mutex_exit(&d->kd_pool_list_lock);
	return total > INT32_MAX ? INT32_MAX : (int)total;
}

unsigned int
pool_nget(struct pool *pp)
{
	unsigned long n;

	kmem_plock_enter(&pp->pr_lock);
	n = pp->pr_nget;
	kmem_plock_exit(&pp->pr_lock);
	return (unsigned int)n;
}

unsigned int
pool_nput(struct pool *pp)
{
	unsigned long n;

	kmem_plock_enter(&pp->pr_lock);
	n = pp->pr_nput;
	kmem_plock_exit(&pp->pr_lock);
	return (unsigned int)n;
}

/* ---- statistics ---- */

int
kmem_pool_stats(struct pool *pp, struct kmem_pool_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->ps_size = sizeof(*st);
	kmem_plock_enter(&pp->pr_lock);
	memcpy(st->ps_name, pp->pr_wchan, sizeof st->ps_name);
	st->ps_itemsize = pp->pr_size;
	st->ps_pagesize = pp->pr_alloc->pa_pagesz;
	st->ps_itemsperpage = pp->pr_itemsperpage;
	st->ps_nget = pp->pr_nget;
	st->ps_nfail = pp->pr_nfail;
	st->ps_nput = pp->pr_nput;
	st->ps_nout = pp->pr_nout;
	st->ps_nitems = pp->pr_nitems;
	st->ps_npagealloc = pp->pr_npagealloc;
	st->ps_npagefree = pp->pr_npagefree;
	st->ps_npages = pp->pr_npages;
	st->ps_hiwat = pp->pr_hiwat;
	st->ps_minpages = pp->pr_minpages;
	st->ps_maxpages = pp->pr_maxpages;
	st->ps_nidle = pp->pr_nidle;
	st->ps_flags = pp->pr_flags;
	kmem_plock_exit(&pp->pr_lock);
	return 0;
}

void
kmem_pool_print_stats(void (*pr)(const char *, ...))
{
	kmem_stats_print(pr, KMEM_STATS_POOLS);
}

/* ---- consistency checks ---- */

#define POOL_CHECK(pp, cond, ...)                                              \
	do {                                                                   \
		if (kmem_unlikely(!(cond)))                                    \
			kmemi_check_fail("kmem_pool_check", "pool",            \
			    (pp)->pr_wchan, __VA_ARGS__);                      \
	} while (0)

static const char pool_list_name[][8] = {"empty", "partial", "full"};

/* One page on list "list": its header, bitmap and place; its free items. */
static unsigned int
pool_check_page(
    struct pool *pp, const struct kmem_pool_page *ph, unsigned int list)
{
	const struct pool_allocator *pa = pp->pr_alloc;
	unsigned int w, nfree = 0, want;
	uintptr_t plast = (uintptr_t)ph->ph_page + (pa->pa_pagesz - 1);
	uint64_t word, valid;

	POOL_CHECK(pp, ph->ph_pool == pp && ph->ph_list == list,
	    "page %p on the %s list has a header of pool %p, list %u",
	    (void *)ph->ph_page, pool_list_name[list], (void *)ph->ph_pool,
	    ph->ph_list);
	POOL_CHECK(pp,
	    (pp->pr_roflags & PR_ROF_OFFPAGE) ||
		(const char *)ph == ph->ph_page,
	    "page %p: its header is at %p, not at its start",
	    (void *)ph->ph_page, (const void *)ph);
	POOL_CHECK(pp, ph->ph_canary == ph_canary_of(ph),
	    "page %p: its header's canary is %#llx, not %#llx",
	    (void *)ph->ph_page, (unsigned long long)ph->ph_canary,
	    (unsigned long long)ph_canary_of(ph));
	POOL_CHECK(pp,
	    ph->ph_nitems >= 1 && ph->ph_nitems <= pp->pr_itemsperpage &&
		ph->ph_nmissing <= ph->ph_nitems &&
		ph->ph_hint < pp->pr_bmwords &&
		(uintptr_t)ph->ph_items >= (uintptr_t)ph->ph_page &&
		(uintptr_t)ph->ph_items <= plast &&
		(plast - (uintptr_t)ph->ph_items + 1) / pp->pr_size >=
		    ph->ph_nitems,
	    "page %p: %u of %u items out (%u a page), items at %p, hint %u",
	    (void *)ph->ph_page, ph->ph_nmissing, ph->ph_nitems,
	    pp->pr_itemsperpage, (void *)ph->ph_items, ph->ph_hint);
	want = ph->ph_nmissing == 0	       ? PH_EMPTY
	    : ph->ph_nmissing == ph->ph_nitems ? PH_FULL
					       : PH_PART;
	POOL_CHECK(pp, list == want,
	    "page %p with %u of %u items out is on the %s list",
	    (void *)ph->ph_page, ph->ph_nmissing, ph->ph_nitems,
	    pool_list_name[list]);
	for (w = 0; w < pp->pr_bmwords; w++) {
		word = ph->ph_bitmap[w];
		valid = w < ph->ph_nitems / 64 ? ~(uint64_t)0
		    : w == ph->ph_nitems / 64
		    ? ((uint64_t)1 << (ph->ph_nitems % 64)) - 1
		    : 0;
		POOL_CHECK(pp,
		    (word & ~valid) == 0 && (w >= ph->ph_hint || word == 0),
		    "page %p: bitmap word %u is %#llx (%u items, hint %u)",
		    (void *)ph->ph_page, w, (unsigned long long)word,
		    ph->ph_nitems, ph->ph_hint);
		nfree += kmem_popcount64(word);
	}
	POOL_CHECK(pp, nfree == ph->ph_nitems - ph->ph_nmissing,
	    "page %p: %u items free in its bitmap, but %u of %u out",
	    (void *)ph->ph_page, nfree, ph->ph_nmissing, ph->ph_nitems);
	POOL_CHECK(pp,
	    !(pp->pr_roflags & PR_ROF_HASHED) ||
		ph_hash_find(pp, (uintptr_t)ph->ph_page >> pa->pa_pageshift,
		    (uintptr_t)ph->ph_page) == ph,
	    "page %p is not in the page hash", (void *)ph->ph_page);
	return nfree;
}

/* The page hash: each page in its bucket, no more than pr_npages. */
static void
pool_check_hash(struct pool *pp)
{
	unsigned int shift = pp->pr_alloc->pa_pageshift;
	const struct kmem_pool_page *ph;
	size_t h, n = 0;

	POOL_CHECK(pp,
	    kmem_powerof2(pp->pr_phhashmask + 1) &&
		pp->pr_phhashmask + 1 >= KMEM_ARRAY_SIZE(pp->pr_phhash0),
	    "page hash of %zu buckets", pp->pr_phhashmask + 1);
	for (h = 0; h <= pp->pr_phhashmask; h++) {
		for (ph = pp->pr_phhash[h]; ph != NULL; ph = ph->ph_hnext) {
			/* Bounded: a chain that loops ends here. */
			POOL_CHECK(pp, ++n <= pp->pr_npages,
			    "the page hash holds more than pr_npages (%u) "
			    "pages",
			    pp->pr_npages);
			POOL_CHECK(pp,
			    ph->ph_pool == pp &&
				ph_hash_index(
				    pp, (uintptr_t)ph->ph_page >> shift) == h,
			    "page hash bucket %zu holds page %p of pool %p", h,
			    (void *)ph->ph_page, (void *)ph->ph_pool);
		}
	}
	/* Fewer cannot be: pool_check_page found every page in it. */
}

void
kmemi_pool_check_locked(struct pool *pp)
{
	unsigned long nfree = 0, nout = 0;
	unsigned int list, npages = 0, nidle = 0;
	struct kmem_pool_page *head, *ph;

	KMEM_ASSERT(kmem_plock_held(&pp->pr_lock));
	POOL_CHECK(pp, pp->pr_magic == POOL_MAGIC,
	    "magic %#x, not an initialised pool", pp->pr_magic);
	for (list = PH_EMPTY; list <= PH_FULL; list++) {
		if ((head = *pool_list_of(pp, list)) == NULL)
			continue;
		ph = head;
		do {
			/* The links back also end a loop that misses head. */
			POOL_CHECK(pp,
			    ph->ph_next->ph_prev == ph &&
				ph->ph_prev->ph_next == ph,
			    "%s list: the links around page %p are wrong",
			    pool_list_name[list], (void *)ph->ph_page);
			nfree += pool_check_page(pp, ph, list);
			nout += ph->ph_nmissing;
			npages++;
			nidle += list == PH_EMPTY;
		} while ((ph = ph->ph_next) != head);
	}
	POOL_CHECK(pp,
	    npages == pp->pr_npages && nidle == pp->pr_nidle &&
		nfree == pp->pr_nitems && nout == pp->pr_nout,
	    "the lists hold %u pages (%u empty), %lu items free and %lu out; "
	    "the pool says %u (%lu), %u and %u",
	    npages, nidle, nfree, nout, pp->pr_npages, pp->pr_nidle,
	    pp->pr_nitems, pp->pr_nout);
	if (pp->pr_roflags & PR_ROF_HASHED)
		pool_check_hash(pp);
	POOL_CHECK(pp, pp->pr_curcolor <= pp->pr_maxcolor,
	    "colour %zu above its maximum %zu", pp->pr_curcolor,
	    pp->pr_maxcolor);
}

const char *
kmemi_pool_out_item_locked(struct pool *pp, const void *v)
{
	void *item;
	bool out;

	KMEM_ASSERT(kmem_plock_held(&pp->pr_lock));
	if (!(pp->pr_roflags & PR_ROF_HASHED))
		return NULL;
	if (!pool_item_of_locked(pp, v, &item, &out))
		return "not an item of the pool";
	if (item != v)
		return "not the start of an item";
	return out ? NULL : "free in the pool";
}

void
kmem_pool_check(struct pool *pp)
{
	kmem_plock_enter(&pp->pr_lock);
	kmemi_pool_check_locked(pp);
	kmem_plock_exit(&pp->pr_lock);
}

/*
 * A domain goes (kmemi_dom_teardown, its caches and page arena already
 * gone): its group pools, then its header pools, whose pages go back to
 * the domain's metadata.
 */
void
kmemi_pool_dom_fini(struct kmem_domain *d)
{
	unsigned int i;

	KMEM_ASSERT(!d->kd_default);
	if (atomic_load_explicit(&d->kd_pcg_ready, memory_order_acquire))
		for (i = 0; i < KMEMI_PCGSIZES; i++)
			pool_destroy(&d->kd_pcg_pool[i]);
	if (atomic_load_explicit(&d->kd_phpool_ready, memory_order_acquire))
		for (i = 0; i < PHPOOL_COUNT; i++)
			pool_destroy(&d->kd_phpool[i]);
}
