/*
 * kmem.c -- kmem(9): allocation by size over pool_cache and vmem.
 *
 * 1. Paths.  A request of 1..KMEM_CACHE_MAX (16 KiB) bytes goes to the
 *    pool_cache of its size class ("kmem-NNNNN"); the per-CPU layer of
 *    that cache is the fast path.  Larger requests are page-rounded
 *    segments of the page arena "kva" (kmemi_page_arena(): quantum caches
 *    up to 16 pages, best-fit freelists beyond, spans of >= 1 MiB
 *    imported from prim).  kmem_free(p, size) recomputes the path from
 *    size, as NetBSD's does: no header, no lookup.  malloc.c's free(p),
 *    which has no size, finds the path through the page map (section 4,
 *    kmemi_free_unsized); the shared fast paths are in kmem_impl.h.
 *
 * 2. Size classes, as data (kmem_class_table): 16-byte steps up to 128,
 *    then four classes per doubling up to 4 KiB and eight up to 16 KiB,
 *    and from 256 on one more just past each power of two, 2^k + 16 --
 *    51 classes.  Why:
 *    - Alignment: 16 for every class from 16 up (the 16-byte promise), so
 *      classes below 128 step by 16; 8 has its own class (8-aligned).
 *    - Waste: with four classes per doubling the unused tail of an object
 *      is below a quarter of it for every size from 48 up (worst: 129 in
 *      160, 19%; 49 in 64, 23%).  Below 48 the 16-byte grid bounds it at
 *      15 bytes.
 *    - Headers: a power of two plus a few bytes is a common request (a
 *      power-of-two buffer behind the size header of an allocator built
 *      on malloc: sqlite3's asks 1032 and 4104 bytes by the ten thousand),
 *      and the worst case of power-of-two classes (1032 in 1280: 19%
 *      lost; sqlite3 used 85 MB on kmem, 68 MB on glibc).  2^k + 16 takes
 *      those up to 16 bytes of header exactly.
 *    - From 4 KiB, where a quarter lost is a kilobyte an object, eight
 *      classes per doubling (at most 12.5% lost; sqlite3's 4368-byte
 *      pages: 74 MB instead of 77 MB, against glibc's 68 MB).
 *    - Cache lines (NetBSD's COHERENCY_UNIT rule): a class that is a
 *      multiple of 64 is 64-aligned, so its objects never share a line;
 *      page multiples are page aligned.  The classes in between (48, 80,
 *      96, 112, 160, 224) do share lines with their neighbours: dropping
 *      them, as NetBSD does, would waste up to 37% instead; a per-CPU
 *      layer keeps most neighbours on one CPU anyway (bench_kmem measures
 *      false sharing).
 *    A byte table maps a size to its class in one load, by 8-byte steps
 *    up to 16 KiB (2 KiB of table, no branch), every step to the next
 *    class at or above it (subr_kmem.c's kmem_create_caches idea); the
 *    compiler computes it from the class list (KMEM_CLASSES), so it is
 *    constant data, never seen half filled.
 *    Pool pages: the smallest of 4..64 KiB that holds 8 objects with at
 *    most 1/8 of the page left over, else the least wasteful; pages come
 *    from kva through the quantum caches, with off-page headers
 *    (PR_NOALIGN), so an address's page is found without reading it, and
 *    no colour (KMEMI_PR_NOCOLOR), so a page's first object is at its
 *    start: an object's offset in its page is a multiple of the class,
 *    and the objects of a power-of-two class are aligned to its size
 *    (malloc's memalign takes the first class that is a multiple of the
 *    alignment, up to a page; beyond, a large block by vmem_xalloc).
 *    A class's cache is made on its first use (kmem_class_make, under
 *    init_lock), not at set-up: making all 51 was 175 us of the first
 *    malloc's 390 (bench_startup).  Until then the class's fast paths
 *    use CPU slots that never hold a group, so they miss and the slow
 *    path makes the cache; the switch to the cache's own slots is one
 *    release store, read by an acquire load after the gate.
 *
 * 3. The gate.  kmemi_gate is non-zero until kmem is set up, while a
 *    debug item is on, and when the lock-free fast path cannot be used
 *    (no rseq: TSan, valgrind, other CPUs).  The fast paths test it with
 *    the flags and size, so debugging off costs nothing beyond that one
 *    branch.  They read it by an acquire load before anything the set-up
 *    fills before it opens the gate (a release store): kmemi_fast, the
 *    large sizes' data, the page shift, the tag.  (The class table was
 *    filled by the set-up too, and read before the gate: a first call
 *    racing the set-up could take class 0 for any size; it is constant
 *    now -- kmem_first_call_mt.)  The set-up runs with signals blocked,
 *    so that a handler that forks never leaves a child with init_lock
 *    held (kmem_setup_fork).  Closed, the slow paths set kmem up and hand
 *    debug calls to debug.c, which allocates through kmemi_raw_alloc and
 *    kmemi_raw_free.
 *
 * 4. The page map (two levels: a root of 2^15 leaves, each leaf one
 *    32-bit word per 4 KiB of a 4 GiB region, a 4 MiB run of the
 *    metadata region made on first use -- guard pages around it, never
 *    next to a page of objects (meta.c); encoding in kmem_impl.h) says
 *    what every address kmem handed out is.
 *    Every 4 KiB of a class's pool page holds the class and its index in
 *    the pool page (set when kva gives the page to the pool, cleared when
 *    it goes back), so free(p) finds the class in constant time and
 *    checks that p starts an object (its offset from the pool page a
 *    multiple of the class, by a multiply), without reading the object.
 *    The first page of every large block holds its state (live, freed),
 *    page count, and whether it was vmem_xalloc'd.  Free checks and flips
 *    it with one compare-and-swap: a double free, a pointer that is not a
 *    block's start, and a size of another page count are reported at the
 *    call, with debugging on or off, without touching the block's memory
 *    (it may be unmapped).  Up to 16 pages, the fast paths take the block
 *    straight from kva's quantum cache of its page count
 *    (kmemi_vmem_qcache: the same cache vmem_alloc would use), with the
 *    same inlined restartable sequence as the cached sizes, and mark the
 *    page map; free checks the word, stores it freed -- a plain store:
 *    two frees at the same instant are found when the block is handed
 *    out again (kmem_impl.h) -- and puts the block back.  Larger freed
 *    blocks go straight back to kva.  realloc of a block above 16 pages
 *    (kmemi_large_realloc) resizes it in place when kva has the space
 *    after it free, or shrinks it there; else, from 256 KiB, when the
 *    new block is fresh memory kva imported, moves its pages into it by
 *    mremap (kmem_prim_remap, hosted builds): no copy and no page fault
 *    (test preload.malloc_realloc_large: 16 MiB to 32 MiB, 4097 faults
 *    before, 0 now); into memory kva already had, it copies.
 *
 * 5. Memory goes back: pool pages idle for pool_idle_ms return to kva;
 *    kva keeps free ranges dirty and reusable for purge_delay_ms to twice
 *    that, then purges them and unmaps spans wholly free, on its next
 *    free (vmem.c section 7) -- at once, one batch a free, after a burst
 *    of frees that left most of it free.  kmem_reap() trims the caches to
 *    their working sets and purges every free page of kva at once;
 *    kmem_reap_all() gives back everything unused.  With no allocator
 *    call at all nothing runs, unless reap_thread_ms starts a thread that
 *    trims the caches and runs kva's purge pass when due (kmem_reaper).
 *    A program that calls only fast paths (every get and put a hit in
 *    its CPU's group) runs the same work from its frees: malloc's put
 *    ticks once in 16384 (kmemi_tick, at most every reap_tick_ms), and
 *    does a free's share of kva's purge pass (one batch; the next tick
 *    comes an eighth of the period later while the pass is unfinished).
 *
 * 5a. Domains (domain.c).  The classes, their fast-path data, the gate,
 *    the set-up lock and the page map are the domain's (domain.h).  The
 *    default domain's are at link-time addresses, and kmem_alloc and
 *    kmem_free test the default's whole gate first: with no other domain
 *    the paths are what they were.  While another domain exists the
 *    default's gate carries KMEM_GATE_DOMAINS: kmem_alloc's slow path
 *    then serves the thread's current domain (its own fast path, out of
 *    line), and kmem_free's finds p's domain by the page maps
 *    (kmemi_dom_of).  Another domain's page map has three levels (a
 *    64 KiB root, 16 KiB nodes, 8 KiB leaves of 8 MiB each), small enough
 *    for a domain over a few megabytes; it is only read on slow paths.
 *    A domain's classes are set up when it is made
 *    (kmemi_kmem_dom_setup); its end is kmemi_dom_busy and
 *    kmemi_dom_teardown, at the end of this file.  The debug layer and
 *    malloc's free tag are the default domain's only.
 *
 * 5b. Tools (annotate.h).  While valgrind runs, or in a library built
 *    with ASan, kmem_alloc's objects are a memcheck mempool anchored at
 *    their domain (chunks: where each was allocated and freed is in the
 *    reports): kmem_alloc hands out the size asked for, undefined, the
 *    rest of its class (or of its last page) no access, so a one-byte
 *    overrun is caught; kmem_zalloc's are defined.  A class's new page
 *    is no access (kmem_page_alloc); kmem_free makes the whole class size
 *    no access before the object goes to its cache, where it stays so
 *    until handed out again.  A large block is forgotten by the tool at
 *    kmem_free but left accessible, as kva's other ranges are (a use
 *    after kmem_free of a large block is not caught): kva holds nothing
 *    no access -- a class's page goes back accessible (kmem_page_free)
 *    -- since vmem_alloc callers of kmem_domain_arena take its ranges as
 *    they are, and ASan's shadow would outlive a span unmapped.  The
 *    set-up leaves the domain's lock-free paths off then (kd_rseq: the
 *    gate's KMEM_GATE_NORSEQ), so every call takes kmem_alloc_slow and
 *    kmem_free_slow, where the annotations are.  Not for the debug
 *    layer's calls, and not in the default domain while it serves malloc
 *    (its classes carry malloc's free tag, written into free objects); an
 *    object a class hands to debug.c or malloc.c, which do not annotate,
 *    is made accessible (raw_alloc_once).
 *
 * 6. Locking.  The fast paths take no lock of ours (pool_cache's per-CPU
 *    layer); the large path takes kva's, inside vmem calls.  init_lock
 *    serialises kmem_init.  Page-map leaves are installed with
 *    a compare-and-swap.
 *
 * 7. Failure policy.  KM_NOSLEEP: NULL when memory cannot be had.
 *    KM_SLEEP: never NULL; when the OS refuses, reap everything and
 *    retry every vmem_sleep_retry_ms, and after oom_wait_ms abort naming
 *    the call and the size.  Bad arguments (size 0, NULL, flags) and bad
 *    large frees abort through kmem_panic with the messages of
 *    docs/kmem-contract.md.  Small frees with a size are not checked
 *    without debugging (NetBSD's behaviour; the pool layer catches a
 *    double put when the object leaves the cache); malloc's free(p) is,
 *    through the page map (and malloc.c's double-free tag).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/annotate.h"
#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/meta.h"
#include "internal/pool_cache_impl.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"

/* ---- size classes ---- */

/*
 * The classes, once, as a list that both tables below are made from
 * (X(size, a) for each, a passed through).
 */
/* clang-format off */
#define KMEM_CLASSES(X, a)                                                     \
	X(8, a) X(16, a) X(32, a) X(48, a) X(64, a)       /* by 16 */          \
	X(80, a) X(96, a) X(112, a) X(128, a)                                  \
	X(160, a) X(192, a) X(224, a) X(256, a)           /* 4 per doubling */ \
	X(272, a) X(320, a) X(384, a) X(448, a) X(512, a) /* and 2^k + 16 */   \
	X(528, a) X(640, a) X(768, a) X(896, a) X(1024, a)                     \
	X(1040, a) X(1280, a) X(1536, a) X(1792, a) X(2048, a)                 \
	X(2064, a) X(2560, a) X(3072, a) X(3584, a) X(4096, a)                 \
	X(4112, a) X(4608, a) X(5120, a) X(5632, a)       /* 8 per doubling */ \
	X(6144, a) X(6656, a) X(7168, a) X(7680, a) X(8192, a)                 \
	X(8208, a) X(9216, a) X(10240, a) X(11264, a) X(12288, a)              \
	X(13312, a) X(14336, a) X(15360, a) X(16384, a)   /* KMEM_CACHE_MAX */
/* clang-format on */

#define KMEM_CLASS_SIZE(c, a) c,
static const uint16_t kmem_class_table[] = {KMEM_CLASSES(KMEM_CLASS_SIZE, 0)};
_Static_assert(KMEM_ARRAY_SIZE(kmem_class_table) == KMEM_NCLASS,
    "KMEM_NCLASS (kmem_impl.h) counts the classes");

#define KMEM_LARGECACHE_MAX 1024u /* 63-object groups up to here */
#define KMEM_HUGECACHE_MAX  256u  /* 255-object groups up to here */

/*
 * The size-to-class table, entry i for the sizes up to 8 i: the first
 * class at or above 8 i, which is the number of classes below it --
 * computed by the compiler, so that it is constant data: a fast path may
 * read it at any time, before the gate too (it was filled by the set-up
 * until issue 10, and a fast path that read it before the set-up filled
 * it could take class 0 for any size).
 */
#define KMEM_CLASS_BELOW(c, s) +((s) > (c))
#define KMEM_IDX(i)	       (0 KMEM_CLASSES(KMEM_CLASS_BELOW, (i)*8)),
#define KMEM_IDX4(i)	       KMEM_IDX(i) KMEM_IDX(i + 1) KMEM_IDX(i + 2) KMEM_IDX(i + 3)
#define KMEM_IDX16(i)                                                          \
	KMEM_IDX4(i) KMEM_IDX4(i + 4) KMEM_IDX4(i + 8) KMEM_IDX4(i + 12)
#define KMEM_IDX64(i)                                                          \
	KMEM_IDX16(i) KMEM_IDX16(i + 16) KMEM_IDX16(i + 32) KMEM_IDX16(i + 48)
#define KMEM_IDX256(i)                                                         \
	KMEM_IDX64(i) KMEM_IDX64(i + 64) KMEM_IDX64(i + 128) KMEM_IDX64(i + 192)
#define KMEM_IDX1024(i)                                                        \
	KMEM_IDX256(i)                                                         \
	KMEM_IDX256(i + 256) KMEM_IDX256(i + 512) KMEM_IDX256(i + 768)
const uint8_t kmemi_idx[(KMEM_CACHE_MAX >> KMEM_IDX_SHIFT) + 1] = {
    KMEM_IDX1024(0) KMEM_IDX1024(1024) KMEM_IDX(2048)};
_Static_assert((KMEM_CACHE_MAX >> KMEM_IDX_SHIFT) == 2048,
    "kmemi_idx's initialiser has 2049 entries");
/*
 * Each domain's (domain.h): kd_cache[], the classes' caches, made on
 * first use (kmem_class_make), NULL until then; kd_fast[], what the
 * inlined fast paths need of each (kmem_impl.h); kd_rseq, whether the
 * lock-free path may be used (x86-64, rseq registered, not under TSan,
 * magazines on); kd_large_fast[], the same for the large sizes that
 * kva's quantum caches serve (above KMEM_CACHE_MAX, up to 16 pages),
 * indexed by page count (a get from that cache is what vmem_alloc would
 * do), and kd_large_fast_max, the largest size served so (0 until set
 * up).  The page size and its log are the process's.
 */
unsigned int kmemi_pgshift;
/*
 * The system page, kept beside its log in the default domain's storage
 * (kd_pagesz): as 1 << kmemi_pgshift, kmem_free's large path took a
 * shift and a decrement more (bench_kmem's 64 KiB pair: +0.28 ns).
 */
#define kmem_pagesz (kmemi_dom0.kd_pagesz)

/*
 * No request this large can ever be met: the user address space of
 * x86-64 (4-level paging) and what the page map of large blocks covers.
 */
#define KMEM_SIZE_LIMIT ((size_t)1 << 47)
static char kmem_cache_name[KMEM_NCLASS][16];

#define GATE() KMEMI_GATE()

/*
 * Annotating domain d's kmem_alloc objects for memcheck or ASan (section
 * 5b): under valgrind (a few instructions natively: the slow paths ask)
 * or in an ASan build; not in the default domain while it serves malloc
 * (kd_obj_hooks), nor for debug calls.
 */
static inline bool
kmem_annot_in(const struct kmem_domain *d)
{
	return KMEMI_ANNOT && (!d->kd_default || d->kd_obj_hooks == NULL) &&
	    kmem_unlikely(kmemi_annot_detect());
}
/* The debug items among the gate's bits (the default domain's only). */
#define GATE_DEBUG() (GATE() & KMEM_GATE_DEBUG)

static inline unsigned int
kmem_class_of(size_t size)
{
	return kmemi_idx[(size + 7) >> KMEM_IDX_SHIFT];
}

/* malloc's class: as kmem's, but nothing below the 16-byte class. */
static inline unsigned int
kmem_mclass_of(size_t size)
{
	return kmem_class_of(size < 16 ? 16 : size);
}

/* ---- the page map (section 4) ---- */

_Atomic(uint32_t *) kmemi_pm_root[1u << PM_ROOT_BITS];

/*
 * The page map of another domain than the default: three levels, small
 * enough for a domain over a few megabytes -- a root of 2^13 entries
 * (64 KiB, made with the domain), nodes of 2^11 (16 KiB, one per 16
 * GiB), leaves of 2^11 words (8 KiB, one per 8 MiB) -- from the domain's
 * metadata.  Not on any fast path: kmem_free finds a domain's objects
 * through it on its slow path.
 */
#define DPM_ROOT_BITS 13
#define DPM_MID_BITS  11
#define DPM_LEAF_BITS 11
_Static_assert(DPM_ROOT_BITS + DPM_MID_BITS + DPM_LEAF_BITS ==
	PM_ROOT_BITS + PM_LEAF_SHIFT,
    "a domain's page map covers what the default's does");
#define DPM_ROOT_BYTES ((size_t)sizeof(void *) << DPM_ROOT_BITS)
#define DPM_MID_BYTES  ((size_t)sizeof(void *) << DPM_MID_BITS)
#define DPM_LEAF_BYTES ((size_t)sizeof(uint32_t) << DPM_LEAF_BITS)

/* A zeroed node of the domain's map (NULL: no memory), or installed. */
static void *
dpm_node(struct kmem_domain *d, _Atomic(void *) *slot, size_t bytes, bool make)
{
	void *n = atomic_load_explicit(slot, memory_order_acquire),
	     *none = NULL;

	if (n != NULL || !make)
		return n;
	if (kmemi_meta_alloc(d, bytes, VM_NOSLEEP, &n) != 0)
		return NULL;
	if (!atomic_compare_exchange_strong_explicit(
		slot, &none, n, memory_order_acq_rel, memory_order_acquire)) {
		kmemi_meta_free(d, n, bytes);
		n = none;
	}
	return n;
}

static _Atomic uint32_t *
dpm_word(struct kmem_domain *d, uintptr_t a, bool make)
{
	uintptr_t pg = a >> PM_SHIFT;
	uintptr_t r = pg >> (DPM_MID_BITS + DPM_LEAF_BITS);
	uintptr_t m = (pg >> DPM_LEAF_BITS) & ((1u << DPM_MID_BITS) - 1);
	_Atomic(void *) *root = (_Atomic(void *) *)(void *)d->kd_pm;
	_Atomic(void *) *mid;
	uint32_t *leaf;

	if (r >= (1u << DPM_ROOT_BITS) || root == NULL)
		return NULL;
	if ((mid = dpm_node(d, &root[r], DPM_MID_BYTES, make)) == NULL ||
	    (leaf = dpm_node(d, &mid[m], DPM_LEAF_BYTES, make)) == NULL)
		return NULL;
	return (_Atomic uint32_t *)&leaf[pg & ((1u << DPM_LEAF_BITS) - 1)];
}

_Atomic uint32_t *
kmemi_dom_pm_get(struct kmem_domain *d, uintptr_t a)
{
	if (d->kd_default)
		return kmemi_pm_word_get(a);
	return dpm_word(d, a, false);
}

/* Every node of a domain's map back to its metadata (teardown). */
static void
dpm_free(struct kmem_domain *d)
{
	_Atomic(void *) *root = (_Atomic(void *) *)(void *)d->kd_pm, *mid;
	size_t r, m;

	if (root == NULL)
		return;
	for (r = 0; r < ((size_t)1 << DPM_ROOT_BITS); r++) {
		if ((mid = atomic_load_explicit(
			 &root[r], memory_order_relaxed)) == NULL)
			continue;
		for (m = 0; m < ((size_t)1 << DPM_MID_BITS); m++) {
			void *leaf =
			    atomic_load_explicit(&mid[m], memory_order_relaxed);

			if (leaf != NULL)
				kmemi_meta_free(d, leaf, DPM_LEAF_BYTES);
		}
		kmemi_meta_free(d, (void *)mid, DPM_MID_BYTES);
	}
	kmemi_meta_free(d, (void *)root, DPM_ROOT_BYTES);
	d->kd_pm = NULL;
}

bool
kmemi_kmem_owns(struct kmem_domain *d, const void *p)
{
	_Atomic uint32_t *w = kmemi_dom_pm_get(d, (uintptr_t)p);

	return w != NULL && atomic_load_explicit(w, memory_order_relaxed) != 0;
}

/*
 * The word of address a's page, its leaf made if missing; NULL if a is
 * beyond the map or there is no memory for the leaf.
 */
static _Atomic uint32_t *
pm_word(struct kmem_domain *d, uintptr_t a)
{
	uintptr_t pg = a >> PM_SHIFT;
	uintptr_t r = pg >> PM_LEAF_SHIFT;
	uint32_t *leaf, *fresh = NULL;
	size_t leafsz = sizeof(uint32_t) << PM_LEAF_SHIFT;

	if (!d->kd_default)
		return dpm_word(d, a, true);
	if (r >= (1u << PM_ROOT_BITS)) /* kmem's memory: user space, 2^47 */
		return NULL;
	leaf = atomic_load_explicit(&kmemi_pm_root[r], memory_order_acquire);
	if (leaf == NULL) {
		void *m;

		if (kmemi_meta_alloc(d, leafsz, VM_NOSLEEP, &m) != 0)
			return NULL;
		fresh = m;
		if (atomic_compare_exchange_strong_explicit(&kmemi_pm_root[r],
			&leaf, fresh, memory_order_acq_rel,
			memory_order_acquire))
			leaf = fresh;
		else
			kmemi_meta_free(d, fresh, leafsz);
	}
	return (_Atomic uint32_t *)&leaf[pg & ((1u << PM_LEAF_SHIFT) - 1)];
}

/*
 * A pool page of class c at p (n units of 4 KiB): every unit's word says
 * so, and which unit it is; false (words cleared) if a leaf could not be
 * made.
 */
static bool
pm_mark_small(struct kmem_domain *d, void *p, size_t n, unsigned int c)
{
	_Atomic uint32_t *w;
	size_t i;

	KMEM_ASSERT(c < KMEM_NCLASS && n >= 1 && n <= PM_PGIDX(~0u) + 1);
	KMEM_ASSERT(((uintptr_t)p & ((1u << PM_SHIFT) - 1)) == 0);
	for (i = 0; i < n; i++) {
		w = pm_word(d, (uintptr_t)p + (i << PM_SHIFT));
		if (w == NULL) {
			/* i > 0: a page across two leaves (4 GiB boundary). */
			while (i-- > 0)
				atomic_store_explicit(
				    kmemi_dom_pm_get(
					d, (uintptr_t)p + (i << PM_SHIFT)),
				    0, memory_order_relaxed);
			return false;
		}
		atomic_store_explicit(
		    w, PM_SMALL | c << 8 | (uint32_t)i, memory_order_relaxed);
	}
	return true;
}

/* A pool page goes back: its n units are nobody's. */
static void
pm_clear(struct kmem_domain *d, void *p, size_t n)
{
	_Atomic uint32_t *w;
	size_t i;

	for (i = 0; i < n; i++)
		if ((w = kmemi_dom_pm_get(d, (uintptr_t)p + (i << PM_SHIFT))) !=
		    NULL)
			atomic_store_explicit(w, 0, memory_order_relaxed);
}

/* ---- pool pages for the caches ---- */

#define KMEM_PAGE_MIN_SHIFT 12 /* 4 KiB */
#define KMEM_PAGE_NSIZES    5  /* 4, 8, 16, 32, 64 KiB: all quantum-cached */

static void *kmem_page_alloc(struct pool *pp, int flags);
static void kmem_page_free(struct pool *pp, void *v);

/* Set up at compile time: shared by every domain, never written. */
static struct pool_allocator kmem_page_allocator[KMEM_PAGE_NSIZES] = {
    {kmem_page_alloc, kmem_page_free, 1u << 12, (1u << 12) - 1, 12},
    {kmem_page_alloc, kmem_page_free, 1u << 13, (1u << 13) - 1, 13},
    {kmem_page_alloc, kmem_page_free, 1u << 14, (1u << 14) - 1, 14},
    {kmem_page_alloc, kmem_page_free, 1u << 15, (1u << 15) - 1, 15},
    {kmem_page_alloc, kmem_page_free, 1u << 16, (1u << 16) - 1, 16},
};

/*
 * A pool page of a class's cache: from kva, and marked in the page map
 * with the class (pr_size is the class size) and each 4 KiB's index.
 * By vmem_xalloc, past kva's quantum caches: a page a class gives back
 * goes to kva's free space at once, where any class or large block of
 * any size can reuse it (and the purge finds it), instead of waiting in
 * the magazines of the quantum cache of its size.  (A page is taken once
 * per 8 to 256 objects: kva's lock is not on the fast path.)
 */
static void *
kmem_page_alloc(struct pool *pp, int flags)
{
	vm_flag_t vf = (flags & PR_WAITOK) ? VM_SLEEP : VM_NOSLEEP;
	vmem_t *vm = kmemi_page_arena(pp->pr_dom);
	size_t sz = pp->pr_alloc->pa_pagesz;
	vmem_addr_t a;

	KMEM_ASSERT(
	    kmem_class_table[kmem_class_of(pp->pr_size)] == pp->pr_size);
	if (vm == NULL ||
	    vmem_xalloc(vm, sz, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
		vf | VM_INSTANTFIT, &a) != 0)
		return NULL;
	if (kmem_unlikely(!pm_mark_small(pp->pr_dom, (void *)a, sz >> PM_SHIFT,
		kmem_class_of(pp->pr_size)))) {
		vmem_xfree(vm, a, sz);
		return NULL;
	}
	/*
	 * Annotating: objects never handed out are no access too, so that an
	 * overrun off the last one handed out is caught (section 5b).
	 */
	if (kmem_annot_in(pp->pr_dom))
		kmemi_annot_noaccess((void *)a, sz);
	return (void *)a;
}

static void
kmem_page_free(struct pool *pp, void *v)
{
	size_t sz = pp->pr_alloc->pa_pagesz;

	KMEM_ASSERT((((uintptr_t)v | sz) & ((1u << PM_SHIFT) - 1)) == 0);
	if (kmem_unlikely(GATE_DEBUG() != 0) && pp->pr_dom->kd_default)
		kmemi_debug_forget(v, sz);
	pm_clear(pp->pr_dom, v, sz >> PM_SHIFT);
	/* kmem_free left its free objects no access: not so in kva (5b). */
	kmemi_annot_defined(v, sz);
	vmem_xfree(kmemi_page_arena(pp->pr_dom), (vmem_addr_t)v, sz);
}

/* Which of kmem_page_allocator serves class size "c" (see §2). */
static unsigned int
kmem_page_choice(size_t c)
{
	unsigned int i, best = KMEM_PAGE_NSIZES - 1;
	size_t bestwaste = SIZE_MAX;

	for (i = 0; i < KMEM_PAGE_NSIZES; i++) {
		size_t pg = (size_t)1 << (KMEM_PAGE_MIN_SHIFT + i);
		size_t n = pg / c, waste = pg - n * c;

		/* Pool pages are whole system pages (pages over 4 KiB). */
		if (pg < kmem_pagesz)
			continue;

		if (n >= 8 && waste * 8 <= pg)
			return i;
		/* Least waste per page byte; ties go to the larger page. */
		if (n > 0 &&
		    waste * ((size_t)1 << (KMEM_PAGE_NSIZES - 1 - i)) <=
			bestwaste) {
			bestwaste =
			    waste * ((size_t)1 << (KMEM_PAGE_NSIZES - 1 - i));
			best = i;
		}
	}
	return best;
}

/* ---- setup ---- */

/*
 * Each domain's: kd_init_lock, serialising its set-up and the making of
 * its class caches; kd_ready, set up.
 */

static void
kmem_tables_init(void)
{
	unsigned int c = 0;
	size_t i;

	/* Debug builds: the compiler's table is the first class that fits. */
	for (i = 0; i < KMEM_ARRAY_SIZE(kmemi_idx); i++) {
		while (kmem_class_table[c] < (i << KMEM_IDX_SHIFT))
			c++;
		KMEM_ASSERT(c < KMEM_NCLASS && kmemi_idx[i] == c);
	}
	for (c = 0; c < KMEM_NCLASS; c++)
		kmem_snprintf(kmem_cache_name[c], sizeof kmem_cache_name[c],
		    "kmem-%05u", (unsigned)kmem_class_table[c]);
}

static void kmem_large_fast_init(struct kmem_domain *d);

/* The divisibility test's constants for size d (kmemi_small_valid). */
static void
kmem_fast_divisor(struct kmem_fast *kf, uint32_t d)
{
	uint32_t odd, inv;
	int i;

	kf->kf_size = d;
	kf->kf_shift = (uint32_t)__builtin_ctz(d);
	odd = d >> kf->kf_shift;
	for (inv = odd, i = 0; i < 5; i++) /* Newton: 3, 6, 12, 24, 48 bits */
		inv *= 2 - odd * inv;
	kf->kf_inv = inv;
}

/*
 * The CPU slots every class's fast path uses until its cache is made:
 * as many as a cache has, never holding a group, so a get or put there
 * always takes the slow path, which makes the cache (kmem_class_make).
 * The fast path reads a slot array and its count as two loads in any
 * order; the count is the same for these and the cache's own slots, so
 * the switch from one array to the other is one pointer store.
 */
/* (The domain's kd_noslots.) */

/*
 * The fast paths' data of every class, without its cache: the slots it
 * misses on and the divisibility test's constants; and whether the
 * lock-free path may be used.  False if there was no memory.
 */
static bool
kmem_classes_init(struct kmem_domain *d)
{
	unsigned int i, ncpu = kmem_prim_ncpu();
	size_t bytes = kmem_align_up(ncpu * sizeof(struct pc_cpu), kmem_pagesz);
	void *mem;

	if (d->kd_noslots == NULL) {
		/* Metadata: a slot with a forged group would be served. */
		if (kmemi_meta_alloc(d, bytes, VM_NOSLEEP, &mem) != 0)
			return false;
		d->kd_noslots = mem; /* zero: unlocked, no group */
	}
	for (i = 0; i < KMEM_NCLASS; i++) {
		kmem_fast_divisor(&d->kd_fast[i], kmem_class_table[i]);
		d->kd_fast[i].kf_ncpu = ncpu;
		if (atomic_load_explicit(
			&d->kd_cache[i], memory_order_relaxed) == NULL)
			__atomic_store_n(&d->kd_fast[i].kf_cpus, d->kd_noslots,
			    __ATOMIC_RELAXED);
	}
	/* Annotating: every call on the slow paths (KMEM_GATE_NORSEQ). */
	d->kd_rseq = kmem_prim_rseq_cs_init() && kmem_opts.magazines &&
	    !kmemi_annot_detect();
	kmem_large_fast_init(d);
	return true;
}

/*
 * Make the cache of class i (init_lock held).  Classes are made on first
 * use, not at set-up: 51 caches made at once were 175 of the first
 * malloc's 390 us (bench_startup; issue 10), and a program uses a few.
 */
static pool_cache_t
kmem_class_create(struct kmem_domain *d, unsigned int i)
{
	size_t c = kmem_class_table[i];
	struct kmem_domain *prev;
	struct pc_cpu *cpus;
	unsigned int align, ncpu;
	pool_cache_t pc;
	bool rseq;

	KMEM_ASSERT(kmem_class_of(c) == i);
	if (c % kmem_pagesz == 0)
		align = (unsigned int)kmem_pagesz;
	else if (c % KMEM_CACHELINE == 0)
		align = KMEM_CACHELINE;
	else
		align = c < 16 ? 8 : 16;
	/*
	 * Groups of 63 up to 1 KiB (PR_LARGECACHE, as NetBSD's busiest
	 * caches): a run of allocations or frees goes to the depot once per
	 * 63 objects instead of 15; at most 126 objects (126 KiB) a CPU
	 * stay in the CPU layer.  Up to KMEM_HUGECACHE_MAX (256 B), 255
	 * (kmem's KMEMI_PR_HUGECACHE): a group of 64 KiB at most, as the 1
	 * KiB class's 63, and 705 KiB a CPU for the 13 classes together
	 * (174 with 63).  The 1000-object batches of 64 and 256 B, whose
	 * every object goes through a bin, a group and the depot, took 10 %
	 * less time (bench_malloc, 2026-12-08: docs/BENCHMARKS.md).
	 */
	prev = kmemi_dom_push(d);
	pc = kmemi_cache_create(c, align, 0,
	    PR_NOALIGN | KMEMI_PR_NOCOLOR |
		(c <= KMEM_HUGECACHE_MAX	   ? KMEMI_PR_HUGECACHE
			: c <= KMEM_LARGECACHE_MAX ? PR_LARGECACHE
						   : 0),
	    kmem_cache_name[i], &kmem_page_allocator[kmem_page_choice(c)],
	    IPL_VM, NULL, NULL, NULL);
	kmemi_dom_pop(prev);
	if (pc == NULL)
		return NULL;
	/*
	 * At most a page's worth of free objects before an empty page goes
	 * back to kva at once (pool.c section 5), not after pool_idle_ms:
	 * memory one class frees is another's to reuse.
	 */
	pool_cache_sethiwat(
	    pc, (int)((struct pool *)(void *)pc)->pr_itemsperpage);
	d->kd_fast[i].kf_nitems = ((struct pool *)(void *)pc)->pr_itemsperpage;
	if (d->kd_tag != 0 && c >= 2 * sizeof(uintptr_t))
		kmemi_cache_set_hooks(pc, d->kd_obj_hooks);
	cpus = kmemi_cache_cpus(pc, &ncpu, &rseq);
	KMEM_VERIFY(ncpu == d->kd_fast[i].kf_ncpu && rseq == d->kd_rseq);
	/*
	 * Published: the slots (the fast paths read them after the gate, by
	 * an acquire load), then the cache.
	 */
	__atomic_store_n(&d->kd_fast[i].kf_cpus, cpus, __ATOMIC_RELEASE);
	atomic_store_explicit(&d->kd_cache[i], pc, memory_order_release);
	return pc;
}

/*
 * The cache of class i, made if this is its first use; NULL if there is
 * no memory for it.  Made under init_lock with every signal blocked (as
 * the set-up: a handler that forks must not find init_lock held).
 */
static pool_cache_t
kmem_class_make(struct kmem_domain *d, unsigned int i)
{
	pool_cache_t pc =
	    atomic_load_explicit(&d->kd_cache[i], memory_order_acquire);
	kmem_prim_sigset_t saved;

	if (kmem_likely(pc != NULL))
		return pc;
	kmem_prim_signals_block(&saved);
	kmem_mutex_enter(&d->kd_init_lock);
	pc = atomic_load_explicit(&d->kd_cache[i], memory_order_relaxed);
	if (pc == NULL)
		pc = kmem_class_create(d, i);
	kmem_mutex_exit(&d->kd_init_lock);
	kmem_prim_signals_restore(&saved);
	return pc;
}

/*
 * The large sizes' fast-path data: kf_cpus is set for exactly the page
 * counts up to kd_large_fast_max (NULL for the others), so that malloc's
 * free tests one pointer, not the size (kmemi_large_free_cache).
 */
static void
kmem_large_fast_init(struct kmem_domain *d)
{
	vmem_t *vm = kmemi_page_arena(d);
	struct pc_cpu *cpus;
	unsigned int ncpu;
	size_t npg;
	bool rseq;

	for (npg = KMEM_CACHE_MAX / kmem_pagesz + 1; npg <= KMEM_QC_PAGES;
	     npg++) {
		pool_cache_t pc = kmemi_vmem_qcache(vm, npg * kmem_pagesz);

		if (pc == NULL) /* not reached: kva caches up to 16 pages */
			break;
		cpus = kmemi_cache_cpus(pc, &ncpu, &rseq);
		if (!rseq)
			break;
		d->kd_large_fast[npg].kf_ncpu = ncpu;
		d->kd_large_fast[npg].kf_cpus = cpus;
		d->kd_large_fast_max = npg * kmem_pagesz;
	}
}

/*
 * The optional reaper (KMEM_OPTIONS=reap_thread_ms=N): every N ms the
 * caches shrink to their working sets and the page arena's purge pass
 * runs if due, also in a program that has gone idle.  Not restarted in a
 * forked child.
 */
static int
kmem_reaper_dom(struct kmem_domain *d, void *arg)
{
	(void)arg;
	kmemi_cache_reap_all(d, false);
	kmemi_page_arena_purge(d, false);
	return 0;
}

/*
 * The reaper's work as the tick does it, inside a free(3): the caches
 * shrink the same, but kva's (and kmeta's) purge pass goes on for no
 * more than a free's batch (vmem.c section 7), the rest left to the next
 * frees and ticks -- a whole pass made a free of 48 bytes wait 20 ms
 * for the munmap of 760 MiB (against 0.04 ms at most before the tick;
 * 3-6 ms now, a batch being at most 32 MiB of spans).  One batch in all:
 * while the caches shrink, the page frees they make start none (each
 * would have run one: up to eight batches, 4-7 ms of thread CPU time,
 * in the first tick after 96 MiB of 64-byte objects were freed; 1.5-2.5
 * ms with the hold); the batch comes after.  *(bool *)arg: a pass was left
 * unfinished.
 */
static int
kmem_tick_dom(struct kmem_domain *d, void *arg)
{
	vmem_t *held[2];

	kmemi_page_arena_purge_hold(d, true, held);
	kmemi_cache_reap_all(d, false);
	kmemi_page_arena_purge_hold(d, false, held);
	if (kmemi_page_arena_purge_step(d))
		*(bool *)arg = true;
	return 0;
}

/*
 * The tick (pool_cache_impl.h, PC_TICK_BITS; option reap_tick_ms): a fast
 * path whose commit ticked calls this after it, holding nothing.  At most
 * once every reap_tick_ms, one thread -- the one whose compare-and-swap
 * moves the time (kmemi_dom0.kd_tick_last) -- does the reaper's work for
 * every domain (kmem_tick_dom).  Not in
 * the set-up, nor in a fork handler (every lock is held).
 */
void
kmemi_tick(void)
{
	uint64_t now = kmem_prim_clock_coarse_ns(), last;
	uint64_t period = kmem_opts.reap_tick_ms * 1000000u;
	bool more = false;
	int saved;

	last = atomic_load_explicit(
	    &kmemi_dom0.kd_tick_last, memory_order_relaxed);
	if (period == 0 || now - last < period ||
	    !atomic_compare_exchange_strong_explicit(&kmemi_dom0.kd_tick_last,
		&last, now, memory_order_relaxed, memory_order_relaxed) ||
	    kmemi_setup_by_self() || kmemi_fork_by_self())
		return;
	saved = errno; /* free(3) keeps it: a purge may fail (mlock) */
	kmemi_dom_foreach(kmem_tick_dom, &more);
	kmemi_stats_live_tick(); /* stats.c section 5 */
	/* A pass to go on: the next tick an eighth of the period from now. */
	if (more)
		atomic_store_explicit(&kmemi_dom0.kd_tick_last,
		    now - period + period / 8, memory_order_relaxed);
	errno = saved;
}

static void *
kmem_reaper(void *arg)
{
	(void)arg;
	for (;;) {
		kmem_prim_sleep_ns(kmem_opts.reap_thread_ms * 1000000u);
		/*
		 * kmem_reap(), but the page arena purges only what has been
		 * free for its delay: free memory a busy program is about to
		 * reuse stays.
		 */
		kmemi_dom_foreach(kmem_reaper_dom, NULL);
	}
	return NULL;
}

/*
 * The free tag of malloc.c (section 3 there), when the default domain
 * serves malloc (kd_obj_hooks, which malloc.c gives kmem's set-up:
 * libkmem-malloc.so only; kmem_free leaves none): objects of the classes of
 * 16 bytes and more that a miss moves from the pool into a CPU's group
 * get it as a free would leave them, and every object that leaves a
 * group must have it (pool_cache.c).  Set before the gate opens, so that
 * no fast path ever sees an object without it; 0 (no tags) while
 * debugging, whose poison must not be written over.  Caches made later
 * take kmemi_tag when they are made.  init_lock held.
 */
static void
kmem_tags_set(uintptr_t secret)
{
	pool_cache_t pc;
	unsigned int i;

	kmemi_tag = secret;
	for (i = 0; i < KMEM_NCLASS; i++)
		if (kmem_class_table[i] >= 2 * sizeof(uintptr_t) &&
		    (pc = atomic_load_explicit(&kmemi_dom0.kd_cache[i],
			 memory_order_relaxed)) != NULL)
			kmemi_cache_set_hooks(
			    pc, secret != 0 ? kmemi_dom0.kd_obj_hooks : NULL);
}

/*
 * The thread inside kmem_setup (0: none): what it calls (pthread_atfork,
 * sysconf) may call malloc, which for the preloaded library is ours, and
 * must not wait for init_lock (kmemi_setup_by_self).
 */
/* (The domain's kd_init_owner.) */

/*
 * Set up; false if there was no memory for it (NOSLEEP callers fail).
 *
 * With every signal blocked: a handler that interrupted the set-up and
 * called fork(2) left a child whose only thread had init_lock held, and
 * the set-up half done, for ever (the child's kmem_alloc hung, its
 * malloc lived on the bootstrap area until ENOMEM).  Blocked, a signal
 * that arrives meanwhile is handled when the set-up is over -- still
 * inside the first call, but with no lock of kmem's held.  Blocked
 * before init_lock is taken, so that no handler runs between taking it
 * and marking this thread its owner.  Two system calls, on the first
 * call only (test: kmem_setup_fork, malloc_setup_fork).
 */
/*
 * Store domain d's gate bits, keeping KMEM_GATE_DOMAINS as it is (the
 * registry sets and clears it, domain.c): a release store, or a CAS
 * loop when racing a domain's creation.
 */
static void
kmem_gate_store(struct kmem_domain *d, unsigned int bits)
{
	unsigned int old = __atomic_load_n(&d->kd_gate, __ATOMIC_RELAXED);

	while (!__atomic_compare_exchange_n(&d->kd_gate, &old,
	    (old & KMEM_GATE_DOMAINS) | bits, false, __ATOMIC_RELEASE,
	    __ATOMIC_RELAXED))
		continue;
}

static void kmem_tables_ready(void);

/*
 * Domain d (not the default) is new: its page arena and class tables, as
 * kmem_setup makes the default's; the gate opened.  No debug layer, no
 * statistics at exit, no reaper of its own (the default's reaper walks
 * every domain).  false: no memory (the caller tears d down).
 */
bool
kmemi_kmem_dom_setup(struct kmem_domain *d)
{
	void *root;

	KMEM_ASSERT(!d->kd_default);
	kmem_tables_ready();
	if (kmem_annot_in(d)) /* kmemi_dom_teardown destroys it */
		kmemi_annot_owner_create(d);
	if (kmemi_meta_alloc(d, DPM_ROOT_BYTES, VM_NOSLEEP, &root) != 0)
		return false;
	d->kd_pm = root;
	if (kmemi_page_arena(d) == NULL || !kmem_classes_init(d))
		return false;
	atomic_store_explicit(&d->kd_ready, true, memory_order_release);
	kmem_gate_store(d, d->kd_rseq ? 0 : KMEM_GATE_NORSEQ);
	return true;
}

static bool
kmem_setup(void)
{
	bool ok, reaper = false;
	kmem_prim_sigset_t saved;

	if (kmem_likely(atomic_load_explicit(
		&kmemi_dom0.kd_ready, memory_order_acquire)))
		return true;
	kmem_prim_signals_block(&saved);
	kmem_mutex_enter(&kmemi_dom0.kd_init_lock);
	atomic_store_explicit(&kmemi_dom0.kd_init_owner, kmem_prim_thread_id(),
	    memory_order_relaxed);
	ok = atomic_load_explicit(&kmemi_dom0.kd_ready, memory_order_relaxed);
	if (!ok) {
		size_t ps;

		kmem_options_init();
		ps = kmem_prim_page_size();
		if (ps > KMEM_CACHE_MAX || ps < (1u << KMEM_PAGE_MIN_SHIFT))
			kmem_panic(
			    "kmem_init: page size %zu not supported", ps);
		kmemi_pgshift = kmem_ilog2(ps);
		kmemi_dom0.kd_pagesz = ps;
		kmem_tables_init();
		ok = kmemi_page_arena(&kmemi_dom0) != NULL &&
		    kmem_classes_init(&kmemi_dom0);
		if (ok) {
			unsigned int dbg = kmemi_debug_init();

			if (dbg == 0 && kmemi_dom0.kd_obj_hooks != NULL)
				kmem_tags_set(kmem_prim_secret());
			if (kmem_annot_in(&kmemi_dom0))
				kmemi_annot_owner_create(&kmemi_dom0);
			kmemi_stats_init();
			atomic_store_explicit(
			    &kmemi_dom0.kd_ready, true, memory_order_release);
			kmem_gate_store(&kmemi_dom0,
			    dbg | (kmemi_dom0.kd_rseq ? 0 : KMEM_GATE_NORSEQ));
			reaper = kmem_opts.reap_thread_ms != 0;
		}
	}
	atomic_store_explicit(
	    &kmemi_dom0.kd_init_owner, 0, memory_order_relaxed);
	kmem_mutex_exit(&kmemi_dom0.kd_init_lock);
	kmem_prim_signals_restore(&saved);
	/* Not under init_lock: pthread_create allocates (the new TLS). */
	if (reaper && kmem_prim_thread_start(kmem_reaper, NULL) != 0)
		kmem_warn("KMEM_OPTIONS=reap_thread_ms=%llu: cannot start the "
			  "thread",
		    (unsigned long long)kmem_opts.reap_thread_ms);
	return ok;
}

bool
kmemi_setup_malloc(const struct kmemi_obj_hooks *hooks)
{
	if (kmem_unlikely(kmemi_dom0.kd_obj_hooks == NULL))
		kmemi_dom0.kd_obj_hooks =
		    hooks; /* before the set-up reads it */
	return kmem_setup();
}

bool
kmemi_setup_by_self(void)
{
	return !atomic_load_explicit(
		   &kmemi_dom0.kd_ready, memory_order_acquire) &&
	    atomic_load_explicit(&kmemi_dom0.kd_init_owner,
		memory_order_relaxed) == kmem_prim_thread_id();
}

/* The class tables (and names) without the rest: they need no memory. */
static void
kmem_tables_ready(void)
{
	if (kmem_unlikely(!atomic_load_explicit(
		&kmemi_dom0.kd_ready, memory_order_acquire)))
		(void)kmem_setup();
}

static int
kmem_fork_dom(struct kmem_domain *d, void *arg)
{
	if (*(int *)arg == KMEMI_FORK_PREPARE)
		kmem_mutex_enter(&d->kd_init_lock);
	else
		kmem_mutex_exit(&d->kd_init_lock);
	return 0;
}

void
kmemi_kmem_fork(int phase)
{
	kmemi_dom_foreach(kmem_fork_dom, &phase);
}

void
kmem_init(void)
{
	if (!kmem_setup())
		kmem_panic("kmem_init: out of memory");
}

void
kmemi_gate_set(unsigned int bits)
{
	kmem_init();
	if (bits & KMEM_GATE_DEBUG) { /* the debug layer's patterns: no tags */
		kmem_mutex_enter(&kmemi_dom0.kd_init_lock);
		kmem_tags_set(0);
		kmem_mutex_exit(&kmemi_dom0.kd_init_lock);
	}
	kmem_gate_store(
	    &kmemi_dom0, bits | (kmemi_dom0.kd_rseq ? 0 : KMEM_GATE_NORSEQ));
}

/* ---- large blocks ---- */

/*
 * "fn(p, size)" or, from free(3) and friends (size 0), "fn(p)": the call
 * a report names.
 */
static const char *
call_str(char *buf, size_t n, const char *fn, const void *p, size_t size)
{
	if (size != 0)
		kmem_snprintf(buf, n, "%s(%p, %zu)", fn, p, size);
	else /* free(3)'s: two threads freeing one block at once */
		kmem_snprintf(buf, n, "%s(%p)", fn, p);
	return buf;
}

/*
 * A large block of "size" bytes, page-rounded, from kva: by vmem_alloc,
 * or by vmem_xalloc when "align" is more than a page; its first page's
 * word says live, how many pages, and how to free it.  NULL when there is
 * no memory, or the size cannot be had or recorded ("recorded": malloc's
 * blocks must be, their size is nowhere else).
 */
static void *
large_alloc(struct kmem_domain *d, size_t size, size_t align, bool recorded)
{
	vmem_t *vm = kmemi_page_arena(d);
	uint32_t x = 0;
	_Atomic uint32_t *w;
	size_t rsize, npg;
	vmem_addr_t a;

	if (!kmem_align_up_ok(size, kmem_pagesz, &rsize) ||
	    rsize >= KMEM_SIZE_LIMIT)
		return NULL;
	npg = rsize >> kmemi_pgshift;
	if (recorded && npg > PM_NPAGES)
		return NULL;
	/*
	 * Best fit: the smallest free range that holds the block, most often
	 * one a block of about its size left dirty, rather than instant
	 * fit's first range of the next power of two up, often a span's
	 * untouched tail (a threaded program freeing and allocating blocks
	 * of up to 1 MiB took 80,000 page faults so, 25,000 by best fit, and
	 * 51 MB instead of 59).
	 */
	if (align <= kmem_pagesz) {
		if (vmem_alloc(vm, rsize, VM_NOSLEEP | VM_BESTFIT, &a) != 0)
			return NULL;
	} else {
		if (vmem_xalloc(vm, rsize, align, 0, 0, VMEM_ADDR_MIN,
			VMEM_ADDR_MAX, VM_NOSLEEP | VM_BESTFIT, &a) != 0)
			return NULL;
		x = PM_XALLOC;
	}
	KMEM_ASSERT((a & (kmem_pagesz - 1)) == 0 &&
	    (align == 0 || (a & (align - 1)) == 0));
	w = pm_word(d, (uintptr_t)a);
	if (kmem_unlikely(w == NULL)) {
		if (x != 0)
			vmem_xfree(vm, a, rsize);
		else
			vmem_free(vm, a, rsize);
		return NULL;
	}
	if (kmem_unlikely(atomic_load_explicit(w, memory_order_relaxed) &
		PM_LIVE)) /* from the quantum cache, freed twice at once */
		kmemi_large_reuse_report((void *)a, npg);
	atomic_store_explicit(w,
	    PM_LIVE | x | (npg <= PM_NPAGES ? (uint32_t)npg : 0),
	    memory_order_relaxed);
	return (void *)a;
}

/*
 * Free the large block at p: its word goes from live to freed by one
 * compare-and-swap, so of two frees only one succeeds.  "size" is what
 * kmem_free was given (its page count must be the block's); 0 from
 * free(3), which frees what the page map recorded.
 */
static void
large_free(struct kmem_domain *d, const char *fn, void *p, size_t size)
{
	size_t rsize = kmem_align_up(size, kmem_pagesz), bytes;
	_Atomic uint32_t *w = NULL;
	uint32_t old, npg;
	char call[80];

	if (((uintptr_t)p & (kmem_pagesz - 1)) == 0)
		w = kmemi_dom_pm_get(d, (uintptr_t)p);
	old = w != NULL ? atomic_load_explicit(w, memory_order_relaxed) : 0;
	npg = old & PM_NPAGES;
	if (kmem_unlikely(!(old & PM_LIVE) ||
		!atomic_compare_exchange_strong_explicit(w, &old,
		    (old & ~PM_LIVE) | PM_FREED, memory_order_relaxed,
		    memory_order_relaxed))) {
		call_str(call, sizeof call, fn, p, size);
		if (old & PM_FREED)
			kmem_panic("%s: double free (large block of %zu bytes, "
				   "arena kva)",
			    call, (size_t)(old & PM_NPAGES) * kmem_pagesz);
		kmem_panic("%s: not the start of a live large block (arena "
			   "kva)",
		    call);
	}
	if (size != 0) {
		if (kmem_unlikely(rsize < size ||
			npg !=
			    (rsize / kmem_pagesz <= PM_NPAGES
				    ? (uint32_t)(rsize / kmem_pagesz)
				    : 0)))
			kmem_panic("%s(%p, %zu) != allocated size %zu (large "
				   "block, page-rounded)",
			    fn, p, size, (size_t)npg * kmem_pagesz);
		bytes = rsize;
	} else {
		KMEM_VERIFY(npg != 0); /* malloc's blocks are recorded */
		bytes = (size_t)npg << kmemi_pgshift;
	}
	if (old & PM_XALLOC)
		vmem_xfree(kmemi_page_arena(d), (vmem_addr_t)p, bytes);
	else
		vmem_free(kmemi_page_arena(d), (vmem_addr_t)p, bytes);
}

/*
 * The fast allocation found a block of its quantum cache marked live:
 * two frees raced past the fast free's check (kmem_impl.h).
 */
void
kmemi_large_reuse_report(void *p, size_t npg)
{
	kmem_panic("block %p: double free (large block of %zu bytes, arena "
		   "kva; two frees at once, found when it was reused)",
	    p, npg << kmemi_pgshift);
}

/*
 * A large block of npg pages from kva's quantum cache, the fast way: mark
 * it live in the page map.  Out of line: the page map has no leaf there
 * yet; NULL (block given back) if there is no memory for one.
 */
KMEM_NOINLINE void *
kmemi_large_fast_mark(struct kmem_domain *d, void *p, size_t npg)
{
	_Atomic uint32_t *w = pm_word(d, (uintptr_t)p);

	if (w == NULL) {
		vmem_free(
		    kmemi_page_arena(d), (vmem_addr_t)p, npg << kmemi_pgshift);
		return NULL;
	}
	atomic_store_explicit(w, PM_LIVE | (uint32_t)npg, memory_order_relaxed);
	return p;
}

/*
 * A large block whose page-map word says freed: back to kva by vmem --
 * errno kept, as free(3) must, though the purge pass the free may run
 * fails (madvise of mlock'ed pages: EINVAL).
 */
KMEM_NOINLINE void
kmemi_large_fast_unput(void *p, size_t npg)
{
	int saved = errno;

	vmem_free(kmemi_page_arena(&kmemi_dom0), (vmem_addr_t)p,
	    npg << kmemi_pgshift);
	errno = saved;
}

/* ---- the raw allocator (what debug.c and malloc build on) ---- */

/*
 * The class to serve "size" bytes aligned to "align" (at most a page),
 * from malloc's first class for the size up: the first whose size is a
 * multiple of align.  Its objects then are aligned, as pool pages are
 * page-aligned and carry no colour.  -1: none (the large path).
 */
static int
kmem_aligned_class(size_t size, size_t align)
{
	unsigned int c;

	if (size > KMEM_CACHE_MAX || align > kmem_pagesz)
		return -1;
	for (c = kmem_mclass_of(size); c < KMEM_NCLASS; c++)
		if ((kmem_class_table[c] & (align - 1)) == 0)
			return (int)c;
	return -1; /* not reached: the page-multiple classes suit any align */
}

static void *
raw_alloc_once(struct kmem_domain *d, size_t size, size_t align, bool recorded)
{
	pool_cache_t pc;
	void *p;
	int c;

	KMEM_ASSERT(size != 0 && (align == 0 || kmem_powerof2(align)));
	if (align <= 16 && size <= KMEM_CACHE_MAX)
		c = (int)(recorded ? kmem_mclass_of(size)
				   : kmem_class_of(size));
	else if ((c = kmem_aligned_class(size, align)) < 0)
		return large_alloc(d, size, align, recorded);
	if ((pc = kmem_class_make(d, (unsigned int)c)) == NULL)
		return NULL;
	p = pool_cache_get_paddr(pc, PR_NOWAIT, NULL);
	/*
	 * Accessible, as kmem found it: kmem_free may have left it no
	 * access, and debug.c and malloc.c do not annotate (section 5b).
	 */
	if (KMEMI_ANNOT && p != NULL && kmem_unlikely(kmemi_annot_detect()))
		kmemi_annot_defined(p, kmem_class_table[c]);
	return p;
}

/*
 * KM_SLEEP and the system refused memory: give everything back, wait a
 * retry period, and abort once oom_wait_ms has passed since *start
 * (0: the first refusal, now).
 */
static void
kmem_oom_wait(
    struct kmem_domain *d, const char *fn, size_t size, uint64_t *start)
{
	uint64_t now;

	kmemi_cache_reap_all(d, true);
	kmemi_page_arena_purge(d, true);
	now = kmem_prim_clock_ns();
	if (*start == 0)
		*start = now;
	else if (now - *start >= d->kd_opts.oom_wait_ms * 1000000u)
		kmem_panic("%s(%zu, KM_SLEEP): out of memory: the system "
			   "refused %zu bytes for %llu ms",
		    fn, size, size,
		    (unsigned long long)((now - *start) / 1000000u));
	kmem_prim_sleep_ns(d->kd_opts.vmem_sleep_retry_ms * 1000000u);
}

static void *
raw_alloc(struct kmem_domain *d, const char *fn, size_t size, km_flag_t flags)
{
	uint64_t start = 0;
	void *p;

	if (kmem_likely((p = raw_alloc_once(d, size, 0, false)) != NULL))
		return p;
	if (flags & KM_NOSLEEP)
		return NULL;
	while ((p = raw_alloc_once(d, size, 0, false)) == NULL)
		kmem_oom_wait(d, fn, size, &start);
	return p;
}

void *
kmemi_raw_alloc(const char *fn, size_t size, km_flag_t flags)
{
	return raw_alloc(&kmemi_dom0, fn, size, flags);
}

void *
kmemi_raw_alloc_aligned(
    const char *fn, size_t *sizep, size_t align, km_flag_t flags)
{
	size_t size = *sizep;
	uint64_t start = 0;
	void *p;
	int c;

	if ((c = kmem_aligned_class(size, align)) >= 0)
		size = kmem_class_table[c];
	while ((p = raw_alloc_once(&kmemi_dom0, size, align, true)) == NULL) {
		if (flags & KM_NOSLEEP)
			return NULL;
		kmem_oom_wait(&kmemi_dom0, fn, size, &start);
	}
	*sizep = size;
	return p;
}

static void
raw_free(struct kmem_domain *d, const char *fn, void *p, size_t size)
{
	unsigned int c;
	pool_cache_t pc;

	KMEM_ASSERT(p != NULL && size != 0);
	if (size > KMEM_CACHE_MAX) {
		large_free(d, fn, p, size);
		return;
	}
	c = kmem_class_of(size);
	pc = atomic_load_explicit(&d->kd_cache[c], memory_order_acquire);
	if (kmem_unlikely(pc == NULL)) /* its cache was never made */
		kmem_panic("%s(%p, %zu): pointer not allocated by kmem (with "
			   "this size: cache %s has never allocated)",
		    fn, p, size, kmem_cache_name[c]);
	pool_cache_put_paddr(pc, p, POOL_PADDR_INVALID);
}

void
kmemi_raw_free(const char *fn, void *p, size_t size)
{
	raw_free(&kmemi_dom0, fn, p, size);
}

void *
kmemi_malloc_raw(size_t size, size_t align)
{
	void *p;

	if (kmem_unlikely(!kmem_setup()))
		return NULL;
	if (kmem_likely(
		(p = raw_alloc_once(&kmemi_dom0, size, align, true)) != NULL))
		return p;
	/* What the caches hold may be what the system would not give. */
	kmemi_cache_reap_all(&kmemi_dom0, true);
	kmemi_page_arena_purge(&kmemi_dom0, true);
	return raw_alloc_once(&kmemi_dom0, size, align, true);
}

/*
 * What the page map says p is, for free(3), realloc(3) and
 * malloc_usable_size(3): the class of a cache object (p checked to start
 * one), or -1 for the start of a live large block; anything else is
 * reported.  "freeing": the call is a free, so a freed large block is a
 * double free; otherwise (realloc, malloc_usable_size) a use after free,
 * as is a class object that carries its free tag (malloc.c section 3):
 * handing it back would give it two owners.
 */
static int
kmem_lookup(const char *fn, const void *p, uint32_t *wordp, bool freeing)
{
	uintptr_t a = (uintptr_t)p;
	_Atomic uint32_t *wp = kmemi_pm_word_get(a);
	uint32_t w =
	    wp != NULL ? atomic_load_explicit(wp, memory_order_relaxed) : 0;

	*wordp = w;
	if (w & PM_SMALL) {
		const struct kmem_fast *kf = &kmemi_fast[PM_CLASS(w)];
		uintptr_t base = (a >> PM_SHIFT << PM_SHIFT) -
		    ((uintptr_t)PM_PGIDX(w) << PM_SHIFT);
		size_t off = a - base;

		KMEM_ASSERT(PM_CLASS(w) < KMEM_NCLASS && kf->kf_size != 0);
		if (kmem_likely(kmemi_small_valid(a, w, kf))) {
			if (!freeing && kmemi_tag != 0 &&
			    kmem_unlikely(
				((const uintptr_t *)p)[1] == (a ^ kmemi_tag)))
				kmem_panic("%s(%p): pointer already freed: "
					   "use after free of an object of "
					   "cache %s",
				    fn, p, kmem_cache_name[PM_CLASS(w)]);
			return (int)PM_CLASS(w);
		}
		if (off / kf->kf_size >= kf->kf_nitems)
			kmem_panic(
			    "%s(%p): pointer not allocated by kmem (past "
			    "the last object of a page of cache %s)",
			    fn, p, kmem_cache_name[PM_CLASS(w)]);
		kmem_panic("%s(%p): interior pointer, %zu bytes into object "
			   "%p of cache %s",
		    fn, p, off % kf->kf_size,
		    (void *)(base + off / kf->kf_size * kf->kf_size),
		    kmem_cache_name[PM_CLASS(w)]);
	}
	if ((w & PM_LIVE) && (a & (kmem_pagesz - 1)) == 0)
		return -1;
	if ((w & PM_FREED) && (a & (kmem_pagesz - 1)) == 0)
		kmem_panic("%s(%p): %s (large block of %zu bytes, arena kva)",
		    fn, p,
		    freeing ? "double free"
			    : "pointer already freed: use after free",
		    (size_t)(w & PM_NPAGES) * kmem_pagesz);
	kmem_panic("%s(%p): pointer not allocated by kmem", fn, p);
}

void
kmemi_free_unsized(const char *fn, void *p)
{
	uint32_t w;
	int c = kmem_lookup(fn, p, &w, true);

	if (c >= 0) {
		if (kmemi_tag != 0) /* malloc.c's free tag */
			((uintptr_t *)p)[1] = (uintptr_t)p ^ kmemi_tag;
		pool_cache_put_paddr(
		    kmemi_class_cache((unsigned int)c), p, POOL_PADDR_INVALID);
	} else
		large_free(&kmemi_dom0, fn, p, 0);
}

size_t
kmemi_usable_unsized(const char *fn, const void *p)
{
	uint32_t w;
	int c = kmem_lookup(fn, p, &w, false);

	if (c >= 0)
		return kmem_class_table[c];
	return (size_t)(w & PM_NPAGES) << kmemi_pgshift;
}

/*
 * Below this, realloc copies rather than have the OS move the pages: two
 * system calls (mremap, then mmap over the hole) against a memcpy of
 * 256 KiB, about 25 us at 10 GB/s.
 */
#define LARGE_REMAP_MIN ((size_t)256 << 10)

/*
 * realloc(3) of malloc's large block p of "old" bytes (its page-map word
 * says so), made "size" bytes, both above the quantum caches (more than
 * KMEM_QC_PAGES pages): in place when kva has the space right after it
 * free, or when it shrinks (kmemi_vmem_resize); else, growing a block of
 * LARGE_REMAP_MIN or more: into a new block kva had to import, its pages
 * moved there by the OS (kmem_prim_remap: no copy, no page fault; p's
 * range stays mapped and goes back to kva as a free one); into one made
 * of memory kva had, a copy.  The block, or NULL: the caller
 * copies.  Default domain only (malloc's).
 */
void *
kmemi_large_realloc(void *p, size_t old, size_t size)
{
	struct kmem_domain *d = &kmemi_dom0;
	vmem_t *vm = kmemi_page_arena(d);
	size_t rsize, npg;
	_Atomic uint32_t *w;
	uint32_t x;

	if (!kmem_align_up_ok(size, kmem_pagesz, &rsize))
		return NULL;
	npg = rsize >> kmemi_pgshift;
	if (vm == NULL || npg > PM_NPAGES || npg <= KMEM_QC_PAGES ||
	    (old >> kmemi_pgshift) <= KMEM_QC_PAGES ||
	    (w = kmemi_dom_pm_get(d, (uintptr_t)p)) == NULL)
		return NULL;
	x = atomic_load_explicit(w, memory_order_relaxed);
	KMEM_ASSERT(
	    (x & PM_LIVE) && (size_t)(x & PM_NPAGES) << kmemi_pgshift == old);
	if (kmemi_vmem_resize(vm, (vmem_addr_t)p, old, rsize) == 0) {
		atomic_store_explicit(
		    w, (x & ~PM_NPAGES) | (uint32_t)npg, memory_order_relaxed);
		return p;
	}
#ifdef KMEM_PRIM_REMAP
	if (rsize > old && old >= LARGE_REMAP_MIN && !(x & PM_XALLOC)) {
		struct kmem_vmem_stats st;
		uint64_t imports;
		void *q;
		int err;

		kmem_vmem_stats(vm, &st);
		imports = st.vs_import;
		if ((q = large_alloc(d, rsize, 0, true)) == NULL)
			return NULL;
		/*
		 * Move only into fresh memory (kva had to import for q): a
		 * move drops the resident pages of q's head and leaves p's
		 * range without pages, so into free memory kva already had
		 * -- most often dirty, resident -- a copy is cheaper (a loop
		 * growing 4 MiB blocks took 1.1-1.2 ms an iteration moving,
		 * 0.43 ms copying, the review of issue 12 measured).
		 */
		kmem_vmem_stats(vm, &st);
		if (st.vs_import == imports) {
			memcpy(q, p, old);
			large_free(d, "realloc", p, 0);
			return q;
		}
		err = kmem_prim_remap(p, old, q);
		if (err == EFAULT) {
			/*
			 * q's range is not ours any more: keep it allocated,
			 * never reused (its word says freed, so that a stray
			 * free of it is told); the caller copies p elsewhere.
			 */
			w = kmemi_dom_pm_get(d, (uintptr_t)q);
			atomic_store_explicit(w,
			    (atomic_load_explicit(w, memory_order_relaxed) &
				~PM_LIVE) |
				PM_FREED,
			    memory_order_relaxed);
			return NULL;
		}
		if (err != 0)
			memcpy(q, p, old);
		large_free(d, "realloc", p, 0);
		return q;
	}
#endif
	return NULL;
}

const char *
kmemi_size_name(size_t size)
{
	if (size == 0 || size > KMEM_CACHE_MAX)
		return "kva";
	kmem_tables_ready();
	return kmem_cache_name[kmem_class_of(size)];
}

unsigned int
kmemi_nclasses(void)
{
	return KMEM_NCLASS;
}

/* The cache of class i, NULL if it was never made. */
pool_cache_t
kmemi_class_cache(unsigned int i)
{
	return atomic_load_explicit(
	    &kmemi_dom0.kd_cache[i], memory_order_acquire);
}

/* ---- the API ---- */

static void
kmem_check_alloc(const char *fn, size_t size, km_flag_t flags)
{
	if (size == 0)
		kmem_panic("%s(0): size 0 is not allowed", fn);
	if ((flags & (KM_SLEEP | KM_NOSLEEP)) == 0 ||
	    (flags & (KM_SLEEP | KM_NOSLEEP)) == (KM_SLEEP | KM_NOSLEEP) ||
	    (flags & ~(KM_SLEEP | KM_NOSLEEP)) != 0)
		kmem_panic("%s(%zu, %#x): need exactly one of KM_SLEEP and "
			   "KM_NOSLEEP",
		    fn, size, flags);
}

static inline __attribute__((always_inline)) void *kmem_alloc_in(
    struct kmem_domain *d, size_t size, unsigned int mask);

/* The bytes an object of "size" has: its class's, or whole pages. */
static size_t
kmem_span(size_t size)
{
	if (size <= KMEM_CACHE_MAX)
		return kmem_class_table[kmem_class_of(size)];
	return kmem_align_up(size, kmem_pagesz);
}

/*
 * kmem_free(p, size) in domain d, annotated first (section 5b).  A large
 * block goes back to kva accessible: others take kva's ranges as they
 * are (a vmem_alloc on kmem_domain_arena, ASan's shadow of a span given
 * back to the OS).
 */
static void
annot_free(struct kmem_domain *d, const char *fn, void *p, size_t size)
{
	if (kmem_annot_in(d)) {
		kmemi_annot_free(d, p, kmem_span(size));
		if (size > KMEM_CACHE_MAX)
			kmemi_annot_defined(p, kmem_span(size));
	}
	raw_free(d, fn, p, size);
}

static KMEM_NOINLINE void *
kmem_alloc_slow(const char *fn, size_t size, km_flag_t flags)
{
	struct kmem_domain *d = kmemi_dom_cur();
	uint64_t start = 0;
	void *p;

	/* The thread's domain's fast path, as kmem_alloc's for the default. */
	if (kmem_likely(flags - 1 <= 1) &&
	    (p = kmem_alloc_in(d, size, ~KMEM_GATE_DOMAINS)) != NULL)
		return p;

	kmem_check_alloc(fn, size, flags);
	if (kmem_unlikely(size >= KMEM_SIZE_LIMIT)) {
		if (flags & KM_NOSLEEP)
			return NULL;
		kmem_panic("%s(%zu, KM_SLEEP): size exceeds what kmem can "
			   "allocate",
		    fn, size);
	}
	while (kmem_unlikely(!kmem_setup())) {
		if (flags & KM_NOSLEEP)
			return NULL;
		kmem_oom_wait(&kmemi_dom0, fn, size, &start);
	}
	if (d->kd_default && kmem_unlikely(GATE_DEBUG() != 0))
		return kmemi_debug_alloc(fn, size, flags);
	p = raw_alloc(d, fn, size, flags);
	if (kmem_annot_in(d) && p != NULL)
		kmemi_annot_alloc(d, p, size, kmem_span(size), KMEMI_AN_UNDEF);
	return p;
}

/*
 * The fast path, when the flags are valid: this CPU's current group of
 * the size's class -- one inlined restartable sequence, no call -- or,
 * for a large size, kmemi_large_alloc_fast (kmem_impl.h).  Everything
 * else (and every build without rseq) takes the slow path, by a tail
 * call.
 */
/* An object of size's class from this CPU's group, or NULL (a miss). */
static inline __attribute__((always_inline)) void *
kmem_class_get_fast(struct kmem_domain *d, size_t size, unsigned int mask)
{
#ifdef PC_RSEQ
	/* The class table is constant; kf's fields are read after the gate. */
	const struct kmem_fast *kf = &d->kd_fast[kmem_class_of(size)];
	void *p;

	if (kmem_unlikely((KMEMI_GATE_OF(d) & mask) != 0))
		return NULL;
	if (kmem_likely(pc_rseq_get_va(kmemi_fast_cpus(kf), kf->kf_ncpu, &p)))
		return p;
#else
	(void)d;
	(void)size;
	(void)mask;
#endif
	return NULL;
}

/*
 * The fast paths of domain d, the gate tested against "mask": all of it
 * from kmem_alloc (so that while another domain exists, KMEM_GATE_DOMAINS
 * sends it to the slow path, which finds the thread's domain), all but
 * KMEM_GATE_DOMAINS from there.  kmem_alloc itself reads no thread-local
 * domain: with the default domain alone it is what it was before domains
 * (bench_kmem's pair: 4.9 ns before and after; 5.5 with the domain read
 * from thread-local storage first, issue 11's note).
 */
static inline __attribute__((always_inline)) void *
kmem_alloc_in(struct kmem_domain *d, size_t size, unsigned int mask)
{
	if (kmem_likely(size - 1 < KMEM_CACHE_MAX))
		return kmem_class_get_fast(d, size, mask);
	return kmemi_large_alloc_fast_in(d, size, mask);
}

/*
 * A large size (above KMEM_CACHE_MAX) in the default domain, out of line
 * (a tail call): inlined, its registers cost the small sizes' path a
 * register save (bench_kmem's pair at 64 bytes: 5.5 ns, 4.9 without).
 */
/* kmem_alloc_large's block whose page has no map leaf yet: mark or fall back.
 */
static KMEM_NOINLINE __attribute__((unused)) void *
kmem_alloc_large_mark(
    const char *fn, size_t size, km_flag_t flags, void *p, size_t npg)
{
	if ((p = kmemi_large_fast_mark(&kmemi_dom0, p, npg)) != NULL)
		return p;
	return kmem_alloc_slow(fn, size, flags);
}

static KMEM_NOINLINE void *
kmem_alloc_large(const char *fn, size_t size, km_flag_t flags)
{
#ifdef PC_RSEQ
	/*
	 * kmemi_large_alloc_fast_in for the default domain, with every way
	 * out a tail call: nothing lives across a call, so no register is
	 * saved (bench_kmem's 64 KiB pair: 7.9 ns with the shared inline,
	 * which calls the marking and then tests its result).
	 */
	void *p;

	if (kmem_likely(flags - 1 <= 1) &&
	    kmem_likely(KMEMI_GATE_OF(&kmemi_dom0) == 0) &&
	    kmem_likely(size - 1 < kmemi_large_fast_max)) {
		size_t npg =
		    (size + ((size_t)1 << kmemi_pgshift) - 1) >> kmemi_pgshift;
		const struct kmem_fast *kf = &kmemi_large_fast[npg];
		_Atomic uint32_t *w;

		if (kmem_likely(pc_rseq_get_va(kf->kf_cpus, kf->kf_ncpu, &p))) {
			w = kmemi_pm_word_get((uintptr_t)p);
			if (kmem_unlikely(w == NULL))
				return kmem_alloc_large_mark(
				    fn, size, flags, p, npg);
			if (kmem_unlikely(
				atomic_load_explicit(w, memory_order_relaxed) &
				PM_LIVE)) /* freed twice at once */
				kmemi_large_reuse_report(p, npg);
			atomic_store_explicit(
			    w, PM_LIVE | (uint32_t)npg, memory_order_relaxed);
			return p;
		}
	}
#endif
	return kmem_alloc_slow(fn, size, flags);
}

static inline __attribute__((always_inline)) void *
kmem_alloc_common(const char *fn, size_t size, km_flag_t flags)
{
	void *p;

	if (kmem_unlikely(size - 1 >= KMEM_CACHE_MAX))
		return kmem_alloc_large(fn, size, flags);
	if (kmem_likely(flags - 1 <= 1) &&
	    kmem_likely(
		(p = kmem_class_get_fast(&kmemi_dom0, size, ~0u)) != NULL))
		return p;
	return kmem_alloc_slow(fn, size, flags);
}

void *
kmem_alloc(size_t size, km_flag_t flags)
{
	return kmem_alloc_common("kmem_alloc", size, flags);
}

/*
 * Zero a new block.  From KMEM_ZERO_PURGE bytes up (large blocks, page
 * aligned, whole pages) the pages are purged instead: they read as zero,
 * a block fresh from the OS is not touched at all, and a reused one gives
 * its pages back rather than being written over (a 1 GiB kmem_zalloc was
 * seconds of memset and 1 GiB resident).  Not with debugging on: the
 * last page may hold a redzone.
 */
#define KMEM_ZERO_PURGE (256u << 10)

static inline void
kmem_zero(void *p, size_t size)
{
	if (kmem_unlikely(size >= KMEM_ZERO_PURGE) && GATE_DEBUG() == 0 &&
	    kmemi_dom_tls == NULL && /* a source's purge promises no zeros */
	    kmem_prim_purge(p, kmem_align_up(size, kmem_pagesz)) == 0) {
		kmemi_annot_defined(p, size); /* the tools see no purge */
		return;
	}
	memset(p, 0, size);
}

void
kmemi_zero(void *p, size_t size)
{
	kmem_zero(p, size);
}

void *
kmem_zalloc(size_t size, km_flag_t flags)
{
	void *p = kmem_alloc_common("kmem_zalloc", size, flags);

	if (kmem_likely(p != NULL))
		kmem_zero(p, size);
	return p;
}

void *
kmem_intr_alloc(size_t size, km_flag_t flags)
{
	return kmem_alloc_common("kmem_intr_alloc", size, flags);
}

void *
kmem_intr_zalloc(size_t size, km_flag_t flags)
{
	void *p = kmem_alloc_common("kmem_intr_zalloc", size, flags);

	if (kmem_likely(p != NULL))
		kmem_zero(p, size);
	return p;
}

/* A large block of domain d's quantum cache that was full: to its kva. */
static KMEM_NOINLINE __attribute__((unused)) void
kmem_large_unput_in(struct kmem_domain *d, void *p, size_t npg)
{
	vmem_free(kmemi_page_arena(d), (vmem_addr_t)p, npg << kmemi_pgshift);
}

/*
 * The free fast path of domain d (its gate tested by the caller): this
 * CPU's group of the size's class -- one inlined restartable sequence --
 * or, for a large block of up to kd_large_fast_max, the page-map word
 * flipped from live to freed and the block into kva's quantum cache.
 * False: the slow path (which also reports what is wrong).
 */
static inline __attribute__((always_inline)) bool
kmem_free_in(struct kmem_domain *d, void *p, size_t size)
{
#ifdef PC_RSEQ
	if (kmem_likely(size - 1 < KMEM_CACHE_MAX)) {
		const struct kmem_fast *kf = &d->kd_fast[kmem_class_of(size)];

		return pc_rseq_put_va(kmemi_fast_cpus(kf), kf->kf_ncpu, p);
	}
	if (size - 1 < d->kd_large_fast_max &&
	    ((uintptr_t)p & (kmem_pagesz - 1)) == 0) {
		/* The checks of large_free, when all is well. */
		size_t npg = (size + kmem_pagesz - 1) >> kmemi_pgshift;
		_Atomic uint32_t *w = d == &kmemi_dom0
		    ? kmemi_pm_word_get((uintptr_t)p)
		    : kmemi_dom_pm_get(d, (uintptr_t)p);

		/* A plain store, as malloc's (kmemi_large_free_cache). */
		if (kmem_likely(w != NULL) &&
		    kmem_likely(atomic_load_explicit(w, memory_order_relaxed) ==
			(PM_LIVE | (uint32_t)npg))) {
			atomic_store_explicit(
			    w, PM_FREED | (uint32_t)npg, memory_order_relaxed);
			if (kmem_unlikely(
				!pc_rseq_put_va(d->kd_large_fast[npg].kf_cpus,
				    d->kd_large_fast[npg].kf_ncpu, p))) {
				if (d == &kmemi_dom0)
					kmemi_large_fast_unput(p, npg);
				else
					kmem_large_unput_in(d, p, npg);
			}
			return true;
		}
	}
#else
	(void)d;
	(void)p;
	(void)size;
#endif
	return false;
}

static KMEM_NOINLINE void
kmem_free_slow(const char *fn, void *p, size_t size)
{
	struct kmem_domain *d;

	if (p == NULL)
		kmem_panic("%s(NULL, %zu): NULL pointer", fn, size);
	if (size == 0)
		kmem_panic("%s(%p, 0): size 0 is not allowed", fn, p);
	if (kmem_unlikely(!atomic_load_explicit(
		&kmemi_dom0.kd_ready, memory_order_acquire)))
		kmem_panic("%s(%p, %zu): pointer not allocated by kmem (kmem "
			   "has allocated nothing yet)",
		    fn, p, size);
	/*
	 * Another domain exists: p goes back to the domain whose page map
	 * knows it (domain.c section 2); one no map knows is the default
	 * domain's to report, or to take unchecked as NetBSD does.
	 */
	if (KMEMI_GATE_OF(&kmemi_dom0) & KMEM_GATE_DOMAINS) {
		/*
		 * The innermost domain that knows p (not the thread's
		 * current one, which may not be p's, or may be gone).
		 */
		d = kmemi_dom_of(p);
		if (d != NULL && (KMEMI_GATE_OF(d) & ~KMEM_GATE_DOMAINS) == 0 &&
		    kmem_free_in(d, p, size))
			return;
		if (d != NULL && !d->kd_default) {
			annot_free(d, fn, p, size);
			return;
		}
	}
	if (GATE_DEBUG() != 0)
		kmemi_debug_free(fn, p, size);
	else
		annot_free(&kmemi_dom0, fn, p, size);
}

static inline void
kmem_free_common(const char *fn, void *p, size_t size)
{
	if (kmem_likely(p != NULL && KMEMI_GATE_OF(&kmemi_dom0) == 0) &&
	    kmem_likely(kmem_free_in(&kmemi_dom0, p, size)))
		return;
	kmem_free_slow(fn, p, size);
}

void
kmem_free(void *p, size_t size)
{
	kmem_free_common("kmem_free", p, size);
}

void
kmem_intr_free(void *p, size_t size)
{
	kmem_free_common("kmem_intr_free", p, size);
}

/* ---- strings and scratch buffers ---- */

char *
kmem_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0)
		kmem_panic("kmem_asprintf(\"%s\"): bad format", fmt);
	s = kmem_alloc((size_t)len + 1, KM_SLEEP);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)len + 1, fmt, ap);
	va_end(ap);
	return s;
}

char *
kmem_strdupsize(const char *str, size_t *lenp, km_flag_t flags)
{
	size_t len = strlen(str) + 1;
	char *s = kmem_alloc(len, flags);

	if (s == NULL)
		return NULL;
	memcpy(s, str, len);
	if (lenp != NULL)
		*lenp = len;
	return s;
}

char *
kmem_strndup(const char *str, size_t maxlen, km_flag_t flags)
{
	size_t len = strnlen(str, maxlen);
	char *s = kmem_alloc(len + 1, flags);

	if (s == NULL)
		return NULL;
	memcpy(s, str, len);
	s[len] = '\0';
	return s;
}

void
kmem_strfree(char *s)
{
	if (s != NULL)
		kmem_free(s, strlen(s) + 1);
}

void *
kmem_tmpbuf_alloc(
    size_t size, void *stackbuf, size_t stackbufsize, km_flag_t flags)
{
	if (size <= stackbufsize)
		return stackbuf;
	return kmem_alloc(size, flags);
}

void
kmem_tmpbuf_free(void *p, size_t size, void *stackbuf)
{
	if (p != stackbuf)
		kmem_free(p, size);
}

size_t
kmem_roundup_size(size_t size)
{
	return (size + 7) & ~(size_t)7;
}

/* ---- extensions ---- */

size_t
kmem_usable_size(size_t size)
{
	size_t r;

	if (size == 0)
		return 0;
	if (size <= KMEM_CACHE_MAX) {
		kmem_tables_ready();
		return kmem_class_table[kmem_class_of(size)];
	}
	r = kmem_align_up(size, kmem_prim_page_size());
	return r < size ? 0 : r;
}

pool_cache_t
kmem_size_cache(size_t size)
{
	if (size == 0 || size > KMEM_CACHE_MAX || !kmem_setup())
		return NULL;
	return kmem_class_make(kmemi_dom_cur(), kmem_class_of(size));
}

/* ---- a domain's end (domain.c's kmem_domain_destroy) ---- */

/* Whether pool pp is one the domain made for itself (not a caller's). */
static bool
kmem_dom_pool_internal(struct kmem_domain *d, const struct pool *pp)
{
	vmem_t *kva =
	    atomic_load_explicit(&d->kd_page_arena, memory_order_relaxed);
	size_t n;
	unsigned int i;

	for (i = 0; i < KMEMI_PHPOOLS; i++)
		if (pp == &d->kd_phpool[i])
			return true;
	for (i = 0; i < KMEMI_PCGSIZES; i++)
		if (pp == &d->kd_pcg_pool[i])
			return true;
	for (i = 0; i < KMEM_NCLASS; i++)
		if (pp ==
		    (const struct pool *)(void *)atomic_load_explicit(
			&d->kd_cache[i], memory_order_relaxed))
			return true;
	for (n = 1; kva != NULL && n <= KMEM_QC_PAGES; n++)
		if (pp ==
		    (const struct pool *)(void *)kmemi_vmem_qcache(
			kva, n * kmem_pagesz))
			return true;
	return false;
}

/*
 * kmemi_pool_foreach_in's callback: a caller's pool or cache, or a cache
 * of the domain's own (a class, a quantum cache of kva) with objects
 * out, makes the domain busy; *arg adds up the bytes of the pages the
 * domain's caches hold from kva.
 */
struct kmem_dom_busy {
	struct kmem_domain *d;
	size_t cache_pages; /* bytes of kva the caches' pools hold */
};

static int
kmem_dom_pool_busy(struct pool *pp, void *arg)
{
	struct kmem_dom_busy *b = arg;
	pool_cache_t pc = __atomic_load_n(&pp->pr_cache, __ATOMIC_ACQUIRE);

	if (!kmem_dom_pool_internal(b->d, pp))
		return EBUSY; /* a caller's pool or cache */
	if (pc == NULL)	      /* header and group pools: the domain's own */
		return 0;
	if (kmemi_cache_outstanding(pc) != 0)
		return EBUSY;
	kmem_plock_enter(&pp->pr_lock);
	b->cache_pages += (size_t)pp->pr_npages * pp->pr_alloc->pa_pagesz;
	kmem_plock_exit(&pp->pr_lock);
	return 0;
}

static int
kmem_dom_arena_busy(vmem_t *vm, void *arg)
{
	struct kmem_domain *d = arg;

	return vm ==
		    atomic_load_explicit(
			&d->kd_page_arena, memory_order_relaxed) ||
		vm ==
		    atomic_load_explicit(
			&d->kd_meta_arena, memory_order_relaxed)
	    ? 0
	    : EBUSY;
}

/*
 * Busy, or not, without freeing anything: a caller's arena, pool or
 * cache; an object out of a class or a quantum cache of kva; a large
 * block out of kva (what kva has allocated beyond the caches' pages).
 */
int
kmemi_dom_busy(struct kmem_domain *d)
{
	vmem_t *kva =
	    atomic_load_explicit(&d->kd_page_arena, memory_order_acquire);
	struct kmem_dom_busy b = {d, 0};

	if (kmemi_vmem_foreach_in(d, kmem_dom_arena_busy, d) != 0 ||
	    kmemi_pool_foreach_in(d, kmem_dom_pool_busy, &b) != 0)
		return EBUSY;
	if (kva != NULL && vmem_size(kva, VMEM_ALLOC) != b.cache_pages)
		return EBUSY;
	/* A pool, cache or arena still being taken apart by another thread. */
	if (atomic_load(&d->kd_ops) != 0)
		return EBUSY;
	return 0;
}

void
kmemi_dom_teardown(struct kmem_domain *d)
{
	vmem_t *vm;
	pool_cache_t pc;
	unsigned int i;

	KMEM_ASSERT(!d->kd_default);
	if (kmem_annot_in(d))
		kmemi_annot_owner_destroy(d);
	for (i = 0; i < KMEM_NCLASS; i++)
		if ((pc = atomic_load_explicit(
			 &d->kd_cache[i], memory_order_relaxed)) != NULL) {
			pool_cache_destroy(pc);
			atomic_store_explicit(
			    &d->kd_cache[i], NULL, memory_order_relaxed);
		}
	if (d->kd_noslots != NULL)
		kmemi_meta_free(d, d->kd_noslots,
		    kmem_align_up(
			kmem_prim_ncpu() * sizeof(struct pc_cpu), kmem_pagesz));
	d->kd_noslots = NULL;
	dpm_free(d);
	if ((vm = atomic_load_explicit(
		 &d->kd_page_arena, memory_order_relaxed)) != NULL)
		vmem_destroy(vm);
	/* The shared empty groups back to their pools, then the pools. */
	kmemi_cache_reap_all(d, true);
	kmemi_pool_dom_fini(d);
	kmemi_meta_dom_fini(d);
	kmemi_dom_pages_free(d, d, d->kd_mapsize);
}
