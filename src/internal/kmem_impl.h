/*
 * kmem_impl.h -- what kmem.c (the size-class front end), debug.c (the
 * KMEM_DEBUG layer) and stats.c share.
 */
#ifndef KMEM_INTERNAL_KMEM_IMPL_H
#define KMEM_INTERNAL_KMEM_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/pool_cache_impl.h"

/*
 * The gate every kmem_alloc/kmem_free fast path tests, one predictable
 * branch: non-zero before kmem is set up (KMEM_GATE_INIT), while any
 * debug item is on (its KMEM_DEBUG_* bits), and without the lock-free
 * fast path (KMEM_GATE_NORSEQ); 0 on the plain fast path.
 */
#define KMEM_GATE_INIT	 0x100u
#define KMEM_GATE_NORSEQ 0x200u /* no lock-free fast path: slow path */
#define KMEM_GATE_DEBUG	 0xffu	/* the KMEM_DEBUG_* items */
/*
 * The default domain's only: another domain exists, so kmem_free(p,
 * size) must find p's domain (domain.c section 2).  kmem_alloc and
 * malloc's paths ignore it.
 */
#define KMEM_GATE_DOMAINS 0x400u
/*
 * Every fast path reads the gate by this acquire load before the data the
 * set-up fills before it opens the gate with a release store (the
 * domain's kd_fast, kd_large_fast_max, the page shift, the tag): so no
 * fast path acts on data read before the set-up wrote it, and TSan sees
 * the handover.  (The size-to-class table kmemi_idx is constant: it may
 * be read before.)  A plain load on x86 (the order is the compiler's to
 * keep): the fast paths cost what they did (issue 10's note).  Test:
 * kmem_first_call_mt.  KMEMI_GATE_OF(d): domain d's; KMEMI_GATE(): the
 * default domain's, every bit: malloc's fast paths take the slow path
 * while KMEM_GATE_DOMAINS is set, which cannot happen in
 * libkmem-malloc.so (it exports no kmem_domain_create), and masking the
 * bit cost malloc's free two instructions (bench_malloc pair +0.25 ns).
 */
#define KMEMI_GATE_OF(d) __atomic_load_n(&(d)->kd_gate, __ATOMIC_ACQUIRE)
#define KMEMI_GATE()	 KMEMI_GATE_OF(&kmemi_dom0)
/*
 * The default domain's fast-path data under the names malloc.c and
 * debug.c use (they work in the default domain only).  malloc.c's free
 * tag: a free object of a class of 16 bytes or more has address ^
 * kmemi_tag in its second word (0: no tags, while debugging).
 */
#define kmemi_gate	     (kmemi_dom0.kd_gate)
#define kmemi_tag	     (kmemi_dom0.kd_tag)
#define kmemi_fast	     (kmemi_dom0.kd_fast)
#define kmemi_large_fast     (kmemi_dom0.kd_large_fast)
#define kmemi_large_fast_max (kmemi_dom0.kd_large_fast_max)

/* ---- the fast paths' data (kmem.c), inlined by kmem.c and malloc.c ---- */

/* KMEM_NCLASS, KMEM_QC_PAGES, struct kmem_fast: domain.h. */
#define KMEM_IDX_SHIFT 3 /* the size-to-class table: 8-byte steps */

/* Size (in 8-byte steps) -> class; classes; large sizes by page count. */
extern const uint8_t
    kmemi_idx[(KMEM_CACHE_MAX >> KMEM_IDX_SHIFT) + 1] KMEM_HIDDEN;
/* log2 of the system page (a fact of the process, set by the set-up). */
extern unsigned int kmemi_pgshift KMEM_HIDDEN;

/*
 * The page map (kmem.c section 4): one 32-bit word per 4 KiB of the
 * 2^47-byte user address space (PM_SHIFT: a constant, so the lookup
 * needs no load for it; system pages are 4 KiB or a multiple), in leaves
 * of 2^20 words (4 GiB) made on first use.  A word says what kmem has
 * there:
 *   0                          nothing (kmem never handed it out)
 *   PM_SMALL | class << 8 | i  4 KiB unit i of a pool page of a class
 *   PM_LIVE | npages           first unit of a live large block of
 *                              npages system pages
 *   PM_FREED | npages          ... of a freed one (a second free is told)
 *   | PM_XALLOC                the block came from vmem_xalloc (aligned)
 * npages is 0 for blocks too large to record (2^28 pages and more).
 */
#define PM_SHIFT      12
#define PM_LEAF_SHIFT 20
#define PM_ROOT_BITS  15
#define PM_LIVE	      0x80000000u
#define PM_FREED      0x40000000u
#define PM_XALLOC     0x20000000u
#define PM_SMALL      0x10000000u
#define PM_NPAGES     0x0fffffffu
#define PM_CLASS(w)   (((w) >> 8) & 0xffu)
#define PM_PGIDX(w)   ((w)&0xffu)
extern _Atomic(uint32_t *) kmemi_pm_root[1u << PM_ROOT_BITS] KMEM_HIDDEN;

/* The word of address a's page if its leaf exists, else NULL. */
static inline _Atomic uint32_t *
kmemi_pm_word_get(uintptr_t a)
{
	uintptr_t pg = a >> PM_SHIFT, r = pg >> PM_LEAF_SHIFT;
	uint32_t *leaf;

	if (kmem_unlikely(r >= (1u << PM_ROOT_BITS)))
		return NULL;
	leaf = atomic_load_explicit(&kmemi_pm_root[r], memory_order_acquire);
	if (kmem_unlikely(leaf == NULL))
		return NULL;
	return (_Atomic uint32_t *)&leaf[pg & ((1u << PM_LEAF_SHIFT) - 1)];
}

/*
 * True if a is the start of an object of the pool page word w describes.
 * Its offset off < 2^16 in the pool page, and size = odd * 2^k: if size
 * divides off, off * inv = (off / size) * 2^k and the rotation gives
 * off / size; if 2^k does not, low bits rotate to the top; else
 * (off >> k) * inv mod 2^(32-k) is above (2^(32-k) - 1) / odd (the
 * divisibility test of Granlund and Montgomery) -- above nitems either
 * way, as nitems <= 2^16 / size.
 */
static inline bool
kmemi_small_valid(uintptr_t a, uint32_t w, const struct kmem_fast *kf)
{
	uint32_t off =
	    (uint32_t)(a & ((1u << PM_SHIFT) - 1)) + (PM_PGIDX(w) << PM_SHIFT);
	uint32_t x = off * kf->kf_inv;

	return ((x >> kf->kf_shift) | (x << ((32 - kf->kf_shift) & 31))) <
	    kf->kf_nitems;
}

/*
 * A class's CPU slots, for its fast paths (after the gate): until its
 * cache is made they are slots that never hold a group (a miss), then
 * the cache's, switched by one release store (kmem.c, kmem_class_make).
 * An acquire load: a plain mov on x86.
 */
static inline struct pc_cpu *
kmemi_fast_cpus(const struct kmem_fast *kf)
{
	return __atomic_load_n(&kf->kf_cpus, __ATOMIC_ACQUIRE);
}

/* Out of line (kmem.c): a fast large block whose page has no leaf yet. */
void *kmemi_large_fast_mark(struct kmem_domain *d, void *p, size_t npg);
/*
 * Out of line (kmem.c): a block the quantum cache handed out is marked
 * live -- it was put there twice, by two frees racing; reports, no return.
 */
_Noreturn void kmemi_large_reuse_report(void *p, size_t npg) KMEM_COLD;
/* Out of line (kmem.c): a fast large free whose quantum cache was full. */
void kmemi_large_fast_unput(void *p, size_t npg);
/* The page-map word of a in domain d if its leaf exists, else NULL. */
_Atomic uint32_t *kmemi_dom_pm_get(struct kmem_domain *d, uintptr_t a);

/*
 * The fast path of a large size (above KMEM_CACHE_MAX) in domain d: up
 * to its kd_large_fast_max, the gate open (its bits in "mask"), a block of its
 * kva's quantum cache of its page count from this CPU's group -- one inlined
 * restartable sequence -- marked live in the page map.  NULL: take the
 * slow path.
 */
static inline void *
kmemi_large_alloc_fast_in(struct kmem_domain *d, size_t size, unsigned int mask)
{
#ifdef PC_RSEQ
	void *p;

	if (kmem_likely((KMEMI_GATE_OF(d) & mask) == 0) &&
	    kmem_likely(size - 1 < d->kd_large_fast_max)) {
		size_t npg =
		    (size + ((size_t)1 << kmemi_pgshift) - 1) >> kmemi_pgshift;
		const struct kmem_fast *kf = &d->kd_large_fast[npg];
		_Atomic uint32_t *w;

		if (kmem_likely(pc_rseq_get_va(kf->kf_cpus, kf->kf_ncpu, &p))) {
			w = d == &kmemi_dom0
			    ? kmemi_pm_word_get((uintptr_t)p)
			    : kmemi_dom_pm_get(d, (uintptr_t)p);
			if (kmem_unlikely(w == NULL))
				return kmemi_large_fast_mark(d, p, npg);
			/*
			 * A block in the quantum cache is never live: one
			 * that is was freed twice at once (the free fast
			 * path's check and store are not one atomic step).
			 */
			if (kmem_unlikely(
				atomic_load_explicit(w, memory_order_relaxed) &
				PM_LIVE))
				kmemi_large_reuse_report(p, npg);
			atomic_store_explicit(
			    w, PM_LIVE | (uint32_t)npg, memory_order_relaxed);
			return p;
		}
	}
#else
	(void)d;
	(void)size;
	(void)mask;
#endif
	return NULL;
}

/* The same in the default domain (malloc: every bit of the gate). */
static inline void *
kmemi_large_alloc_fast(size_t size)
{
	return kmemi_large_alloc_fast_in(&kmemi_dom0, size, ~0u);
}

/*
 * The free fast path of a large block without a size (free(3)): the
 * quantum cache to put p in, given its first 4 KiB unit's page-map word
 * w, or NULL (the slow path, which also reports what is wrong with p).
 * p must start its unit and w say "live, of npg pages" and nothing else
 * (no PM_XALLOC); npg at most KMEM_QC_PAGES and its cache one the fast
 * paths serve -- kf_cpus is set for exactly those page counts
 * (kmem_large_fast_init), which is kd_large_fast_max's test without its
 * shift.  Only the first unit of a large block has its word, so a p past
 * the first 4 KiB finds 0 there, and the unit test is the page test.
 * (The checks by the system page -- two variable shifts, with
 * kd_large_fast_max and the shift loaded -- were 0.8 ns of a 7.4 ns
 * 32 KiB pair.)  The caller then stores the word freed -- a plain store, not a
 * compare-and-swap (the lock's 4 ns were 40 % of a 32 KiB malloc/free
 * pair): a second free that comes after it finds the word freed and the
 * slow path reports it; two frees at the same instant can both pass, and
 * the block is then in the quantum cache twice -- the fast allocation
 * finds it live when it hands it out the second time and reports it
 * (kmemi_large_reuse_report), as the class path's tag finds its double
 * frees at reuse -- and puts p in the cache (malloc.c, free_large).
 */
static inline const struct kmem_fast *
kmemi_large_free_cache(uintptr_t a, uint32_t w)
{
	uint32_t npg = w - PM_LIVE;
	const struct kmem_fast *kf;

	if (kmem_unlikely(npg > KMEM_QC_PAGES) ||
	    kmem_unlikely((a & ((1u << PM_SHIFT) - 1)) != 0))
		return NULL;
	kf = &kmemi_large_fast[npg];
	if (kmem_unlikely(kf->kf_cpus == NULL))
		return NULL;
	return kf;
}

/*
 * The slow paths without a size (kmem.c), for malloc.c: free p, or say
 * how many bytes it owns, as the page map tells; anything it does not
 * know aborts with a report naming "fn" and p.  Not for debug mode.
 */
void kmemi_free_unsized(const char *fn, void *p);
size_t kmemi_usable_unsized(const char *fn, const void *p);
/*
 * realloc of malloc's large block p of "old" bytes to "size" without a
 * copy where kva allows (kmem.c): the block, or NULL (copy it).
 */
void *kmemi_large_realloc(void *p, size_t old, size_t size);
/*
 * The tick (kmem.c): a fast path whose pc_rseq_put returned 2 calls it,
 * holding nothing; at most every reap_tick_ms it does the optional
 * reaper's work.
 */
void kmemi_tick(void);
/*
 * malloc's allocator under the fast path (kmem.c): "size" bytes (1 and
 * up; below 16 from the 16-byte class) aligned to "align" (a power of
 * two; 16 or less is the natural alignment), without waiting; NULL when
 * there is no memory (after reaping the caches once) or the size cannot
 * be recorded.  Sets kmem up if needed.  Not for debug mode.
 */
void *kmemi_malloc_raw(size_t size, size_t align);
/*
 * malloc.c: the calling thread's bins (malloc.c section 12) emptied into
 * the caches, so that the statistics it asks for count their objects
 * free.
 */
void kmemi_malloc_bins_flush(void) KMEM_HIDDEN;
/*
 * Zero size bytes of a new block at p; large blocks of 256 KiB and more
 * are purged instead (pages read as zero), unless debugging is on.
 */
void kmemi_zero(void *p, size_t size);
/*
 * For malloc.c: true if kmem is set up; sets it up (false if out of
 * memory), the default domain serving malloc, its classes carrying
 * malloc's object hooks (kd_obj_hooks, pool_impl.h).
 */
struct kmemi_obj_hooks;
bool kmemi_setup_malloc(const struct kmemi_obj_hooks *hooks);
/* True if this thread is setting kmem up (its allocations recurse). */
bool kmemi_setup_by_self(void);

/* ---- kmem.c, for debug.c: the allocator under the debug layer ---- */

/* Allocate / free "size" bytes by class or large path; no debug layer. */
void *kmemi_raw_alloc(const char *fn, size_t size, km_flag_t flags);
/*
 * The same aligned to "align" (a power of two, 16 or more), as malloc
 * would (nothing below the 16-byte class); *sizep becomes the size to
 * give kmemi_raw_free: the class size when a class serves it.
 */
void *kmemi_raw_alloc_aligned(
    const char *fn, size_t *sizep, size_t align, km_flag_t flags);
void kmemi_raw_free(const char *fn, void *p, size_t size);
/* The name of what serves "size": "kmem-00064", or "kva" (large path). */
const char *kmemi_size_name(size_t size);
/* Classes: count, and the cache of class i. */
unsigned int kmemi_nclasses(void);
pool_cache_t kmemi_class_cache(unsigned int i);

/* ---- debug.c ---- */

/* Parse KMEM_DEBUG (once, from kmem_init); returns the KMEM_DEBUG_* bits. */
unsigned int kmemi_debug_init(void);
/*
 * Tests: switch the items to "spec" (KMEM_DEBUG syntax) in a process that
 * has not yet allocated through kmem; returns the bits now on.
 */
unsigned int kmemi_debug_configure(const char *spec);
void *kmemi_debug_alloc(const char *fn, size_t size, km_flag_t flags);
void kmemi_debug_free(const char *fn, void *p, size_t size);
/*
 * For malloc: allocate aligned to "align" (16 at least); free and the
 * size asked for, both by pointer alone (the record has the size).
 */
void *kmemi_debug_alloc_aligned(
    const char *fn, size_t size, size_t align, km_flag_t flags);
void kmemi_debug_free_unsized(const char *fn, void *p);
size_t kmemi_debug_usable(const char *fn, void *p);
/* A page of a kmem cache goes back to the page arena: forget its records. */
void kmemi_debug_forget(const void *page, size_t size);

/* ---- stats.c ---- */

/* Read KMEM_STATS (once, from kmem_init) and arrange the print at exit. */
void kmemi_stats_init(void);
/*
 * kmemstat: the tables (or JSON) of snapshot rows rather than of the live
 * pools and arenas, to fd; json_head, if not NULL, is put first in the
 * JSON object (its members, comma-separated).  0 or an errno value.
 */
int kmemi_stats_write_rows(int fd, unsigned int what,
    const struct kmem_pool_stats *pools, size_t npools,
    const struct kmem_vmem_stats *arenas, size_t narenas,
    const char *json_head);

/*
 * KMEM_STATS_LIVE: a snapshot into the statistics page now (tests, and
 * the last one at exit); false if there is no page.
 */
bool kmemi_stats_live_publish(void);

/* Tests (kmemi_debug_configure): set the gate's debug bits. */
void kmemi_gate_set(unsigned int bits);

/* fork(2): kmem's and the debug layer's locks (see pool_impl.h). */
void kmemi_kmem_fork(int phase);
void kmemi_debug_fork(int phase);
/* options.c: the options lock. */
void kmemi_options_fork(int phase);

#endif /* KMEM_INTERNAL_KMEM_IMPL_H */
