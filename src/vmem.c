/*
 * vmem.c -- the vmem(9) resource allocator: arenas of integer ranges.
 *
 * 1. Concepts (Bonwick & Adams 2001; NetBSD subr_vmem.c).  An arena
 *    manages a set of integer ranges ("spans") in units of a power-of-two
 *    quantum.  Spans are either static (the initial span of vmem_create and
 *    every vmem_add; never given back) or imported from a source through
 *    the arena's import function (given back through the release function
 *    as soon as they are wholly free).  Inside a span the arena hands out
 *    segments; the integers need not be memory (quantum-1 ID arenas are a
 *    first-class use), so all metadata lives outside the managed range.
 *    Two internal extensions for kmem's page arena (issue 12): imported
 *    spans that touch may join into one (kmemi_vmem_set_merge, only where
 *    the release function takes any union of imports: the OS's
 *    mappings), and a busy segment may grow into the free one after it or
 *    give its tail back (kmemi_vmem_resize, realloc of large blocks).
 *
 * 2. Data structures.
 *    - Boundary tag (bt_t): one per span marker and per segment, with
 *      start, size, type (SPAN, STATIC, FREE, BUSY) and flags.
 *    - Segment list: every tag in address order, circular, with the
 *      arena's vm_seg0 as sentinel.  A span marker is followed by the
 *      segments that tile its span.
 *    - Span list: the span markers alone, in address order, linked through
 *      bt_fnext/bt_fprev, also circular on vm_seg0 (span markers are never
 *      on a freelist or in the hash, so those links are free for this).
 *      Used for vmem_add's overlap check and for ordered insertion.
 *    - Freelists: free segment of q quanta is on list ilog2(q) (so list n
 *      holds [2^n, 2^(n+1)) quanta), doubly linked, LIFO.  vm_freemap has
 *      bit n set iff list n is non-empty: instant fit is a mask and a
 *      count-trailing-zeros, constant time (illumos's vm_freemap).
 *    - Busy hash: busy segments by start address, chained through
 *      bt_fnext, power-of-two buckets.  It grows when the busy count passes
 *      2x the bucket count and shrinks when it falls under 1/8 of it,
 *      at the end of the alloc or free that crossed the mark (no timer:
 *      NetBSD resizes on a 10 s callout, illumos on a 15 s one), with the
 *      lock dropped around the mapping and unmapping of tables (section
 *      4).  vm_hash0 is the embedded initial table, so small arenas never
 *      allocate one.  A resize that cannot get memory keeps the old
 *      table: only speed suffers.
 *    - Rotor (VM_NEXTFIT): vm_rotor_next is the address after the last
 *      next-fit allocation, vm_rotor the tag of that allocation, a hint
 *      for where the search starts.  The search takes the lowest fit at
 *      or after vm_rotor_next, else wraps around.  When the rotor's tag is
 *      merged away or released, vm_rotor moves to the tag that absorbed
 *      it, so it always points at a live tag near vm_rotor_next.
 *    - Tag supply: tags come from the domain's supply (domain.h: an
 *      arena belongs to the domain current when it was created, vm_dom,
 *      for its whole life), not from any allocator: 64 KiB chunks, each a
 *      run of the domain's metadata region (kmemi_meta_map: for the
 *      default domain, guard pages around it, never next to the memory
 *      an arena hands out; meta.c), plus a reserve of BT_RESERVE tags in
 *      the domain structure used only when the OS or the page source
 *      refuses.  The arena
 *      structures and busy-hash tables are such runs too.  None of them
 *      comes from the metadata arena "kmeta", which needs them itself:
 *      kmemi_meta_map takes no vmem lock, so a refill under an arena's
 *      lock, or a resize of kmeta's own hash, cannot recurse.
 *      Each arena keeps a private cache of up to BT_MAXFREE tags and tops
 *      it up before it needs them, so the allocation code proper never
 *      fails for want of a tag and never recurses into vmem.
 *
 * 3. Invariants (checked by kmem_vmem_check, at the end of this file,
 *    which the model and stress tests call and KMEM_DEBUG=check runs at
 *    each vmem_xalloc/vmem_xfree that takes the lock; debug builds assert
 *    the local ones in the functions that change them).
 *    - Segment list in strictly increasing address order; the segments
 *      after a span marker tile exactly [span start, span end].
 *    - No two FREE segments are adjacent within a span (coalescing).
 *    - A FREE segment of q quanta is on freelist ilog2(q); freemap bit n
 *      iff list n is non-empty; vm_nfree counts FREE segments.
 *    - PURGING segments (deferred mode, section 7) exist only while a
 *      pass runs (vm_purge_active): on no freelist and not in the hash,
 *      counted as free space (vm_total - vm_inuse), never adjacent to
 *      another PURGING one; vm_purge_fit is the largest, 0 when none.
 *    - Every BUSY segment is in the hash; vm_nbusy counts them;
 *      vm_inuse is the sum of their sizes; vm_total the sum of all span
 *      sizes; vm_imported the sum of imported span sizes.
 *    - An imported span never exists wholly free while the arena lock is
 *      released (when it has a release function), outside deferred mode.
 *    Ends of ranges are kept inclusive (start + size - 1) in every
 *    comparison, so spans ending at VMEM_ADDR_MAX never overflow.
 *
 * 4. Locking.  One mutex per arena protects everything in it; vm_cv (with
 *    it) is where VM_SLEEP requests wait, broadcast by every free, add and
 *    span release when there are waiters, and where requests wait for a
 *    purge batch (section 7).  Lock order:
 *        domain's arena list lock  ->  arena vm_lock  ->  its tag lock
 *    (the arena list and the tag supply are the domain's, domain.h; no
 *    lock of one domain is held while another's is taken)
 *    The source arena's lock is never held together with the child's,
 *    and the quantum caches (pool_cache, then pool, then this arena for
 *    a cache page) are entered with no arena lock held.
 *    No system call under an arena lock, where another thread could wait
 *    for it: import and release functions, the purge function (madvise),
 *    the mapping and unmapping of busy-hash tables all run with the lock
 *    dropped, the work collected under it first and finished under it
 *    after (the one exception: a 64 KiB chunk of boundary tags is mapped
 *    under it, once per 1,365 tags).  So several functions drop the
 *    lock, and their names say so: _relock, called and returning with it
 *    held but dropping it inside (whatever was read before the call must
 *    be read again); _unlock, called with it held and returning without
 *    it.  Every other function that touches an arena keeps the lock as
 *    it found it; those that need it assert it (VMEM_ASSERT_LOCKED, debug
 *    builds, kmem_mutex_owned).
 *
 * 5. Failure policy.  See docs/vmem-contract.md and vmem(3): contradictory
 *    arguments, bad frees and wrong sizes abort through kmem_panic with a
 *    line naming the call, arena, address and sizes; a request that cannot
 *    be met fails with exactly ENOMEM under VM_NOSLEEP and waits under
 *    VM_SLEEP -- unless it is constrained (align, phase, nocross, minaddr
 *    or maxaddr other than the defaults; vmem_xalloc_addr): then, as in
 *    NetBSD, it fails with ENOMEM once no fit is found and no import gave
 *    one, whatever its sleep flag (pool_page_alloc's aligned pages: the
 *    pool retries).  When the OS refuses memory for tags, VM_SLEEP
 *    retries every vmem_sleep_retry_ms and gives up (abort) after
 *    BT_SLEEP_TRIES.
 *
 * 6. Quantum caches (Bonwick 2001 section 4.4, NetBSD qc_init).  With
 *    qcache_max > 0 (clipped to 16 quanta, NetBSD's VMEM_QCACHE_IDX_MAX),
 *    vmem_alloc and vmem_free of sizes up to it go to pool_caches, one per
 *    multiple of the quantum, named "<arena>-<size>".  Their pool pages
 *    are segments of this arena of the smallest power of two above
 *    3 x qcache_max (so a page request never lands in a quantum cache and
 *    cannot recurse), allocated by vmem_xalloc and marked BT_F_QCPAGE so a
 *    vmem_xfree of a cached allocation is recognised.  Caches whose pages
 *    would hold the same number of items are merged into the larger one.
 *    The pools are PR_NOTOUCH | PR_NOALIGN: the "memory" may be integers.
 *    Pages never start at address 0, which a cache could not return (it
 *    would read as NULL); that minimum is the only constraint that still
 *    lets a VM_SLEEP request wait (vmem_req.canwait).  A request that
 *    finds the arena full first has the quantum caches give back what
 *    they hold, then fails (VM_NOSLEEP, constrained) or waits (VM_SLEEP).
 *
 * 7. Deferred purge (internal; the page arena only, kmemi_vmem_set_purge).
 *    Returning memory to the OS at every free makes a program that frees
 *    and reallocates big buffers pay a system call and a page fault per
 *    page each time.  So in this mode a freed segment is marked dirty
 *    (BT_F_DIRTY) with the current purge epoch, stays allocatable, and a
 *    wholly free span stays imported.  A free that finds the last pass at
 *    least vm_purge_delay_ns old runs a pass over the segment list: dirty
 *    free segments of earlier epochs are purged (vm_purgefn), spans
 *    wholly free and not freed in the current epoch are released; then
 *    the epoch advances.  Memory thus goes back between one and two
 *    delays after it was freed, as long as the arena sees frees or reaps
 *    (kmemi_vmem_purge; "all" purges and releases everything).
 *    Split and merged segments keep the dirty mark, so no dirty page is
 *    ever forgotten; a merge keeps the older epoch, so alloc/free churn
 *    next to a big dirty range cannot put its purge off for ever (the
 *    range freed last may go back a pass early: harmless).  A pass is
 *    O(segments), at most once per delay -- and before an import when
 *    the arena freed at least the import's size since the last pass: an
 *    arena about to grow purges as many dirty bytes as it is about to
 *    import, since they could not serve the request (a program that
 *    frees small objects, then allocates large ones, would otherwise
 *    hold both: python3 on kmem's malloc peaked at 98 MB against glibc's
 *    65 MB).  Only that many (issue 12): what stays dirty serves the next
 *    requests without a page fault, and the memory held stays what it
 *    was.  Purging everything instead made a program replacing 20 blocks
 *    of 5-25 MiB at random fault 406,000 times in 500 steps; 309,000 with
 *    the budget, same peak RSS (460-470 MB; tcmalloc 120,000 faults,
 *    479 MB).  (Bytes freed since the last pass, vm_freed_dirty, stand
 *    for the dirty free bytes: what was freed earlier was purged by that
 *    pass; a budgeted pass takes what it gave back off.)  A burst is due
 *    at once: PURGE_BURST (64 MiB) freed since the last pass, and more
 *    of the arena free than busy (a program that has just freed most of
 *    what it had), starts a pass of everything freed so far, the epoch
 *    advanced first (vmem_purge_due; test unit.vmem_span_merge's
 *    test_burst).
 *    The system calls run with the lock dropped (section 4): the pass
 *    works in batches (PURGE_BATCH ranges or spans, PURGE_BATCH_BYTES of
 *    ranges, PURGE_BATCH_SPAN_BYTES of spans; a merged span goes back in
 *    pieces of that many bytes when a free, the tick or an import runs
 *    the pass, since merging makes one span of many imports).  Under the lock
 * it detaches a batch's spans and takes its ranges off the freelists as PURGING
 * -- neither free nor busy, so no request is handed a range while its pages go,
 * and no free merges with it -- then drops the lock for the system calls, and
 *    retakes it to make the ranges FREE and clean again (merging with what
 *    was freed next to them meanwhile).  Other threads allocate and free
 *    meanwhile; a request that finds no fit while a batch holds a range
 *    large enough waits for that batch (vm_purge_fit, vm_purge_gen), never
 *    for the whole pass, rather than grow the arena.  One pass at a time
 *    (vm_purge_active): a free or reap that finds one running leaves the
 *    work to it, an "all" purge waits for it and runs its own.  The thread
 *    that runs a pass still makes its system calls; a pass a free started
 *    does one batch and leaves the rest of its walk to the next frees
 *    (PURGE_FREE_BATCHES, vm_purge_more), so no free pays for more than
 *    one batch (bench_purge "delay": a free made 27 ms of madvise calls
 *    for 768 MiB before, 4-8 ms after at most).
 *    (Until issue 10 the pass made them under the lock, and every large
 *    alloc and free in the process waited for all of them: 55 ms for
 *    768 MiB in bench_purge.)
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/meta.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"

/* ---- constants ---- */

/* Freelists: one per power of two of quanta, as many as bits in a size. */
#define VMEM_MAXORDER (int)(sizeof(vmem_size_t) * 8)
/* NetBSD's VMEM_QCACHE_IDX_MAX: quantum caches up to 16 quanta. */
#define VMEM_QCACHE_IDX_MAX 16
#define VMEM_NAME_MAX	    32
/* Embedded initial hash: 16 buckets, enough for small arenas. */
#define VMEM_HASH_INIT 16
/* Tag types (NetBSD's values). */
#define BT_TYPE_SENTINEL 0
#define BT_TYPE_SPAN	 1
#define BT_TYPE_STATIC	 2
#define BT_TYPE_FREE	 3
#define BT_TYPE_BUSY	 4
/* Ours: a free range a purge pass holds while its pages go (section 7). */
#define BT_TYPE_PURGING 5
/* Tag flags. */
#define BT_F_XIMPORT 0x02 /* span: imported by vmem_xalloc on the source */
#define BT_F_QCPAGE  0x04 /* a page of the arena's quantum caches */
#define BT_F_DIRTY   0x08 /* free, not purged since freed (deferred mode) */
/*
 * Tags an allocation needs at most: a left and a right remainder (NetBSD
 * reserves two); an import's span needs two more (marker + segment).
 */
#define BT_NEED_ALLOC 2
#define BT_NEED_SPAN  2
/* Per-arena tag cache: refill in batches, keep at most BT_MAXFREE (NetBSD). */
#define BT_BATCH   16
#define BT_MAXFREE 64
/* Static reserve, used only when the OS refuses a chunk (NetBSD: 200). */
#define BT_RESERVE 512
#define BT_CHUNK   (64 * 1024)
/* VM_SLEEP gives up on tag memory after this many retry periods. */
#define BT_SLEEP_TRIES 1000

typedef struct vmem_btag bt_t;
struct vmem_btag {
	bt_t *bt_snext; /* segment list, address order */
	bt_t *bt_sprev;
	bt_t *bt_fnext; /* FREE: freelist; BUSY: hash chain; span: span list */
	bt_t *bt_fprev;
	vmem_addr_t bt_start;
	vmem_size_t bt_size;
	uint8_t bt_type;
	uint8_t bt_flags;
	uint32_t bt_epoch; /* BT_F_DIRTY: the purge epoch it was freed in */
};

struct vmem {
	kmem_mutex_t vm_lock;
	kmem_cond_t vm_cv;
	unsigned vm_nwaiters;
	char vm_name[VMEM_NAME_MAX];
	vm_flag_t vm_flags;
	vmem_size_t vm_quantum_mask;
	unsigned vm_quantum_shift;
	vmem_size_t vm_qcache_max;
	vmem_size_t vm_min_import;
	vmem_import_t *vm_importfn;
	vmem_ximport_t *vm_ximportfn;
	vmem_release_t *vm_releasefn;
	vmem_t *vm_source;
	/*
	 * Deferred mode (the page arena; kmemi_vmem_set_purge): freed
	 * ranges stay dirty and spans stay imported until a purge pass,
	 * one every vm_purge_delay_ns at most (section 7).
	 */
	void (*vm_purgefn)(vmem_addr_t, vmem_size_t);
	uint64_t vm_purge_delay_ns;
	uint64_t vm_purge_last;	    /* ns */
	vmem_size_t vm_freed_dirty; /* bytes freed since the last pass */
	uint32_t vm_epoch;
	bool vm_purge_active; /* a pass runs (it may have the lock dropped) */
	vmem_size_t vm_purge_fit; /* largest PURGING range now; 0: none */
	uint64_t vm_purge_gen;	  /* batches a pass has finished, ever */
	uint64_t vm_seg_gen;	  /* tags taken off the segment list, ever */
	/*
	 * A pass a free started did its batch and left the rest of the walk
	 * to the next free, from address vm_purge_from (section 7).
	 */
	bool vm_purge_more;
	/*
	 * While non-zero, frees start no purge batch (kmemi_vmem_purge_hold):
	 * the tick's reap, whose page frees would each have run one -- up to
	 * eight batches, 4-7 ms of thread CPU time in one free(3) after 96 MiB
	 * of 64-byte objects were freed -- then runs the single batch itself.
	 */
	unsigned int vm_purge_hold;
	/*
	 * Imported spans that touch join into one (kmemi_vmem_set_merge: the
	 * default page arena, whose spans are the OS's anonymous mappings).
	 */
	bool vm_merge_spans;
	vmem_addr_t vm_purge_from;

	bt_t vm_seg0;	     /* segment and span list sentinel */
	uint64_t vm_freemap; /* bit n: vm_freelist[n] non-empty */
	bt_t *vm_freelist[VMEM_MAXORDER];
	bt_t **vm_hashlist;
	size_t vm_hashmask; /* buckets - 1 */
	bt_t *vm_hash0[VMEM_HASH_INIT];
	bt_t *vm_rotor;
	vmem_addr_t vm_rotor_next;

	bt_t *vm_btfree; /* private tag cache */
	unsigned vm_nbtfree;

	vmem_size_t vm_inuse;
	vmem_size_t vm_total;
	vmem_size_t vm_imported;
	uint64_t vm_nbusy, vm_nfree;
	uint64_t vm_nalloc, vm_nfreed, vm_nfail, vm_nwait;
	uint64_t vm_nimport, vm_nrelease;

	/* Quantum caches: vm_qcache[i] serves (i + 1) quanta. */
	struct pool_allocator vm_qcache_allocator;
	pool_cache_t vm_qcache[VMEM_QCACHE_IDX_MAX];

	/*
	 * vm_purgefn told the arena (a domain's page arena; set: called).
	 * Here at the end with vm_dom, not beside vm_purgefn: moving the
	 * hot fields by 8 bytes cost uncached vmem pairs 4-8% (bench_pool).
	 */
	void (*vm_purgefn_vm)(vmem_t *, vmem_addr_t, vmem_size_t);
	struct kmem_domain *vm_dom; /* the domain it was created in */
	vmem_t *vm_next;	    /* the domain's arena list */
	vmem_t **vm_pprev;
	size_t vm_mapsize; /* bytes mapped for this struct */
};

/* The arena list of domain d (domain.h). */
#define VMEM_LIST(d)	  ((d)->kd_vmem_list)
#define VMEM_LIST_LOCK(d) (&(d)->kd_vmem_list_lock)

/*
 * Lock ownership (section 4).  A function whose name ends in _relock is
 * called with vm_lock held and returns with it held, but drops it inside
 * (state read before the call may have changed); _unlock: called with it
 * held, returns with it released.  Every other function that touches an
 * arena's state is called with the lock held and keeps it.
 */
#define VMEM_ASSERT_LOCKED(vm) KMEM_ASSERT(kmem_mutex_owned(&(vm)->vm_lock))

/* ---- the boundary-tag supply ---- */

/*
 * Each domain's supply (domain.h): kd_bt_supply, tags from chunks;
 * kd_bt_reserve_list, tags from the reserve kd_bt_reserve, in the domain
 * structure; kd_bt_lock.
 */
_Static_assert(BT_RESERVE * sizeof(bt_t) <= KMEMI_BT_RESERVE_BYTES,
    "KMEMI_BT_RESERVE_BYTES (domain.h) holds the tag reserve");
#define bt_reserve_store(d) ((bt_t *)(void *)(d)->kd_bt_reserve)

static bool
bt_is_reserve(struct kmem_domain *d, const bt_t *bt)
{
	return bt >= bt_reserve_store(d) &&
	    bt < bt_reserve_store(d) + BT_RESERVE;
}

/* Take one tag from the supply; NULL if the OS refuses and the reserve is dry.
 */
static bt_t *
bt_supply_pop(struct kmem_domain *d)
{
	bt_t *bt;
	void *chunk;
	size_t i, n;

	if (!d->kd_bt_reserve_ready) {
		for (i = 0; i < BT_RESERVE; i++) {
			bt_reserve_store(d)[i].bt_fnext = d->kd_bt_reserve_list;
			d->kd_bt_reserve_list = &bt_reserve_store(d)[i];
		}
		d->kd_bt_reserve_ready = true;
	}
	if (d->kd_bt_supply == NULL &&
	    kmemi_meta_map(d, BT_CHUNK, &chunk) == 0) {
		n = BT_CHUNK / sizeof(bt_t);
		for (i = 0; i < n; i++) {
			bt = (bt_t *)chunk + i;
			bt->bt_fnext = d->kd_bt_supply;
			d->kd_bt_supply = bt;
		}
	}
	if ((bt = d->kd_bt_supply) != NULL)
		d->kd_bt_supply = bt->bt_fnext;
	else if ((bt = d->kd_bt_reserve_list) != NULL)
		d->kd_bt_reserve_list = bt->bt_fnext;
	return bt;
}

static void
bt_supply_push(struct kmem_domain *d, bt_t *bt)
{
	if (bt_is_reserve(d, bt)) {
		bt->bt_fnext = d->kd_bt_reserve_list;
		d->kd_bt_reserve_list = bt;
	} else {
		bt->bt_fnext = d->kd_bt_supply;
		d->kd_bt_supply = bt;
	}
}

/* Make sure the arena's cache holds at least "need" tags.  Lock held. */
static int
bt_refill(vmem_t *vm, unsigned need)
{
	bt_t *bt;

	VMEM_ASSERT_LOCKED(vm);
	if (kmem_likely(vm->vm_nbtfree >= need))
		return 0;
	kmem_mutex_enter(&vm->vm_dom->kd_bt_lock);
	while (vm->vm_nbtfree < need + BT_BATCH) {
		if ((bt = bt_supply_pop(vm->vm_dom)) == NULL)
			break;
		bt->bt_fnext = vm->vm_btfree;
		vm->vm_btfree = bt;
		vm->vm_nbtfree++;
	}
	kmem_mutex_exit(&vm->vm_dom->kd_bt_lock);
	return vm->vm_nbtfree >= need ? 0 : ENOMEM;
}

/* Take a tag from the arena's cache; the caller refilled it first. */
static bt_t *
bt_get(vmem_t *vm)
{
	bt_t *bt = vm->vm_btfree;

	VMEM_ASSERT_LOCKED(vm);
	KMEM_VERIFY(bt != NULL);
	KMEM_ASSERT(vm->vm_nbtfree > 0);
	vm->vm_btfree = bt->bt_fnext;
	vm->vm_nbtfree--;
	bt->bt_flags = 0;
	return bt;
}

/* Return the cache's tags above "keep" to the supply.  Lock held. */
static void
bt_trim(vmem_t *vm, unsigned keep)
{
	bt_t *bt;

	VMEM_ASSERT_LOCKED(vm);
	if (vm->vm_nbtfree <= keep) /* not from bt_put: above BT_MAXFREE */
		return;
	kmem_mutex_enter(&vm->vm_dom->kd_bt_lock);
	while (vm->vm_nbtfree > keep) {
		bt = vm->vm_btfree;
		vm->vm_btfree = bt->bt_fnext;
		vm->vm_nbtfree--;
		bt_supply_push(vm->vm_dom, bt);
	}
	kmem_mutex_exit(&vm->vm_dom->kd_bt_lock);
}

static void
bt_put(vmem_t *vm, bt_t *bt)
{
	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(bt != &vm->vm_seg0 && bt != vm->vm_rotor);
	bt->bt_type = BT_TYPE_SENTINEL;
	bt->bt_fnext = vm->vm_btfree;
	vm->vm_btfree = bt;
	if (++vm->vm_nbtfree > BT_MAXFREE)
		bt_trim(vm, BT_MAXFREE / 2);
}

/* ---- small helpers ---- */

static inline vmem_addr_t
bt_end(const bt_t *bt)
{
	return bt->bt_start + bt->bt_size - 1;
}

static inline vmem_size_t
vmem_roundup(const vmem_t *vm, vmem_size_t size)
{
	return (size + vm->vm_quantum_mask) & ~vm->vm_quantum_mask;
}

static inline unsigned
vmem_order(const vmem_t *vm, vmem_size_t size)
{
	return kmem_ilog2(size >> vm->vm_quantum_shift);
}

static const char *
bt_type_name(const bt_t *bt)
{
	static const char names[][9] = {
	    "SENTINEL", "SPAN", "STATIC", "FREE", "BUSY", "PURGING"};

	return bt->bt_type < KMEM_ARRAY_SIZE(names) ? names[bt->bt_type] : "?";
}

/* ---- segment list ---- */

static void
seg_insert_after(bt_t *prev, bt_t *bt)
{
	bt->bt_sprev = prev;
	bt->bt_snext = prev->bt_snext;
	prev->bt_snext->bt_sprev = bt;
	prev->bt_snext = bt;
}

/* Unlink bt; if it was the rotor, the rotor moves to "heir". */
static void
seg_remove(vmem_t *vm, bt_t *bt, bt_t *heir)
{
	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(bt != &vm->vm_seg0 && heir != bt);
	KMEM_ASSERT(
	    bt->bt_sprev->bt_snext == bt && bt->bt_snext->bt_sprev == bt);
	bt->bt_sprev->bt_snext = bt->bt_snext;
	bt->bt_snext->bt_sprev = bt->bt_sprev;
	if (vm->vm_rotor == bt)
		vm->vm_rotor = heir;
	vm->vm_seg_gen++;
}

/* ---- freelists ---- */

static void
freelist_insert(vmem_t *vm, bt_t *bt)
{
	unsigned n;

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(bt->bt_size != 0 &&
	    ((bt->bt_start | bt->bt_size) & vm->vm_quantum_mask) == 0);
	n = vmem_order(vm, bt->bt_size);
	KMEM_ASSERT(n < (unsigned)VMEM_MAXORDER);
	bt->bt_type = BT_TYPE_FREE;
	bt->bt_fprev = NULL;
	bt->bt_fnext = vm->vm_freelist[n];
	if (bt->bt_fnext != NULL)
		bt->bt_fnext->bt_fprev = bt;
	vm->vm_freelist[n] = bt;
	vm->vm_freemap |= (uint64_t)1 << n;
	vm->vm_nfree++;
}

static void
freelist_remove(vmem_t *vm, bt_t *bt)
{
	unsigned n = vmem_order(vm, bt->bt_size);

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(bt->bt_type == BT_TYPE_FREE && vm->vm_nfree > 0);
	KMEM_ASSERT(vm->vm_freemap & ((uint64_t)1 << n));
	KMEM_ASSERT(bt->bt_fprev != NULL ? bt->bt_fprev->bt_fnext == bt
					 : vm->vm_freelist[n] == bt);
	if (bt->bt_fprev != NULL)
		bt->bt_fprev->bt_fnext = bt->bt_fnext;
	else
		vm->vm_freelist[n] = bt->bt_fnext;
	if (bt->bt_fnext != NULL)
		bt->bt_fnext->bt_fprev = bt->bt_fprev;
	if (vm->vm_freelist[n] == NULL)
		vm->vm_freemap &= ~((uint64_t)1 << n);
	vm->vm_nfree--;
}

/* ---- busy hash ---- */

static inline size_t
hash_index(const vmem_t *vm, vmem_addr_t addr)
{
	uint64_t h = (uint64_t)addr * 0x9e3779b97f4a7c15ull;

	return (size_t)(h ^ (h >> 31)) & vm->vm_hashmask;
}

static size_t
hash_size_for(uint64_t nbusy)
{
	size_t s = VMEM_HASH_INIT;

	while (s < nbusy && s < ((size_t)1 << 40))
		s <<= 1;
	return s;
}

/*
 * The bucket count the busy count calls for, or 0 while the table is
 * fine: grow past 2 busy segments a bucket, shrink under 1/8.
 */
static size_t
hash_size_due(const vmem_t *vm)
{
	size_t size = vm->vm_hashmask + 1;

	if (kmem_unlikely(vm->vm_nbusy > 2 * (uint64_t)size))
		return hash_size_for(vm->vm_nbusy);
	if (kmem_unlikely(size > VMEM_HASH_INIT && vm->vm_nbusy < size / 8))
		return hash_size_for(vm->vm_nbusy * 2);
	return 0;
}

/*
 * Resize the busy hash if its load calls for it; the end of every
 * operation that inserts or removes busy tags calls this (vmem_exit_unlock)
 * rather than resizing half-way through.  vm_lock held on entry and on
 * return; dropped and retaken around the system calls: the new table is
 * mapped with the lock dropped, the decision is made again when it is
 * retaken (another thread may have resized, or the count moved), the
 * table installed and the segments rehashed under the lock, and the old
 * table unmapped with the lock dropped again.  A resize that cannot get
 * memory keeps the old table: only speed suffers.
 */
static KMEM_NOINLINE void
hash_resize_to_relock(vmem_t *vm, size_t size)
{
	size_t ps = kmem_prim_page_size();
	size_t oldsize, bytes = 0, i;
	bt_t **old, **new, *bt, *next;
	void *mem = NULL;
	uint64_t n;

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(kmem_powerof2(size) && size >= VMEM_HASH_INIT);
	if (size == VMEM_HASH_INIT) {
		new = vm->vm_hash0; /* embedded: nothing to map */
	} else {
		bytes = kmem_align_up(size * sizeof(bt_t *), ps);
		kmem_mutex_exit(&vm->vm_lock);
		if (kmemi_meta_map(vm->vm_dom, bytes, &mem) != 0)
			mem = NULL;
		kmem_mutex_enter(&vm->vm_lock);
		if (mem == NULL)
			return;
		new = mem;
	}
	/* Still due, and is "size" right for the count now? */
	n = vm->vm_nbusy;
	if (hash_size_due(vm) == 0 || n > 2 * (uint64_t)size ||
	    (size > VMEM_HASH_INIT && n < size / 8)) {
		if (mem != NULL) {
			kmem_mutex_exit(&vm->vm_lock);
			kmemi_meta_unmap(vm->vm_dom, mem, bytes);
			kmem_mutex_enter(&vm->vm_lock);
		}
		return;
	}
	old = vm->vm_hashlist;
	oldsize = vm->vm_hashmask + 1;
	KMEM_ASSERT(old != new);
	memset(new, 0, size * sizeof(bt_t *));
	vm->vm_hashlist = new;
	vm->vm_hashmask = size - 1;
	for (i = 0; i < oldsize; i++) {
		for (bt = old[i]; bt != NULL; bt = next) {
			size_t h = hash_index(vm, bt->bt_start);

			next = bt->bt_fnext;
			bt->bt_fnext = new[h];
			new[h] = bt;
		}
	}
	if (old != vm->vm_hash0) {
		kmem_mutex_exit(&vm->vm_lock);
		kmemi_meta_unmap(vm->vm_dom, old,
		    kmem_align_up(oldsize * sizeof(bt_t *), ps));
		kmem_mutex_enter(&vm->vm_lock);
	}
}

/* The check every operation makes, inline; the resize out of line. */
static inline void
hash_resize_relock(vmem_t *vm)
{
	size_t size = hash_size_due(vm);

	VMEM_ASSERT_LOCKED(vm);
	if (kmem_likely(size == 0))
		return;
	hash_resize_to_relock(vm, size);
}

static bt_t *hash_lookup(const vmem_t *vm, vmem_addr_t addr);

/* Busy tags go in and out; the table is resized at the operation's end. */
static void
hash_insert(vmem_t *vm, bt_t *bt)
{
	size_t h = hash_index(vm, bt->bt_start);

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(bt->bt_size != 0 && hash_lookup(vm, bt->bt_start) == NULL);
	bt->bt_type = BT_TYPE_BUSY;
	bt->bt_fnext = vm->vm_hashlist[h];
	vm->vm_hashlist[h] = bt;
	vm->vm_nbusy++;
	vm->vm_inuse += bt->bt_size;
}

/* Find and unlink the busy tag starting at addr; NULL if none. */
static bt_t *
hash_remove(vmem_t *vm, vmem_addr_t addr)
{
	bt_t **pp = &vm->vm_hashlist[hash_index(vm, addr)], *bt;

	for (; (bt = *pp) != NULL; pp = &bt->bt_fnext) {
		if (bt->bt_start == addr)
			break;
	}
	VMEM_ASSERT_LOCKED(vm);
	if (bt == NULL) /* not reached: every caller found the tag first */
		return NULL;
	KMEM_ASSERT(bt->bt_type == BT_TYPE_BUSY && vm->vm_nbusy > 0 &&
	    vm->vm_inuse >= bt->bt_size);
	*pp = bt->bt_fnext;
	vm->vm_nbusy--;
	vm->vm_inuse -= bt->bt_size;
	return bt;
}

/*
 * The end of an operation: resize the busy hash if due (the lock dropped
 * and retaken around its system calls), wake the waiters if "wake" and
 * there are any, and unlock.  vm_lock held on entry, released on return.
 */
static void
vmem_exit_unlock(vmem_t *vm, bool wake)
{
	hash_resize_relock(vm);
	if (wake && vm->vm_nwaiters != 0)
		kmem_cond_broadcast(&vm->vm_cv);
	kmem_mutex_exit(&vm->vm_lock);
}

static bt_t *
hash_lookup(const vmem_t *vm, vmem_addr_t addr)
{
	bt_t *bt = vm->vm_hashlist[hash_index(vm, addr)];

	while (bt != NULL && bt->bt_start != addr)
		bt = bt->bt_fnext;
	return bt;
}

/* ---- fitting ---- */

struct vmem_req {
	vmem_size_t size; /* rounded to the quantum */
	vmem_size_t align;
	vmem_size_t phase;
	vmem_size_t nocross;
	vmem_addr_t minaddr;
	vmem_addr_t maxaddr;
	bool constrained; /* anything beyond size */
	bool never;	  /* larger than [minaddr, maxaddr] */
	bool canwait;	  /* VM_SLEEP may wait: the caller set no constraint */
};

/*
 * Where in free segment bt (restricted to addresses >= floor) the request
 * fits: the lowest suitable address.  False if nowhere.
 */
static bool
vmem_fit(const bt_t *bt, const struct vmem_req *r, vmem_addr_t floor,
    vmem_addr_t *addrp)
{
	vmem_addr_t start = bt->bt_start, end = bt_end(bt), x, last, b;

	if (start < r->minaddr)
		start = r->minaddr;
	if (start < floor)
		start = floor;
	if (end > r->maxaddr)
		end = r->maxaddr;
	if (start > end)
		return false;
	x = kmem_align_down(start, r->align) + r->phase;
	if (x < start && __builtin_add_overflow(x, r->align, &x))
		return false;
	if (x > end || end - x < r->size - 1)
		return false;
	if (r->nocross != 0) {
		last = x + r->size - 1;
		if (((x ^ last) & ~(r->nocross - 1)) != 0) {
			/*
			 * Only possible when nocross >= align (argument
			 * checks guarantee [phase, phase+size) does not
			 * cross): the next boundary is aligned, so boundary
			 * + phase is the next candidate and does not cross.
			 */
			b = kmem_align_down(x, r->nocross);
			/* Not reached: the boundary is <= end, phase < it. */
			if (__builtin_add_overflow(b, r->nocross, &b) ||
			    __builtin_add_overflow(b, r->phase, &x))
				return false;
			if (x > end || end - x < r->size - 1)
				return false;
		}
	}
	*addrp = x;
	return true;
}

/* Smallest free segment that fits, searching lists from "order" up. */
static bt_t *
vmem_find_best(
    vmem_t *vm, const struct vmem_req *r, unsigned order, vmem_addr_t *addrp)
{
	uint64_t map = vm->vm_freemap & (~(uint64_t)0 << order);
	bt_t *bt, *best;
	vmem_addr_t a;

	while (map != 0) {
		unsigned n = (unsigned)__builtin_ctzll(map);

		map &= map - 1;
		best = NULL;
		for (bt = vm->vm_freelist[n]; bt != NULL; bt = bt->bt_fnext) {
			if (bt->bt_size < r->size ||
			    (best != NULL && bt->bt_size >= best->bt_size))
				continue;
			if (vmem_fit(bt, r, 0, &a)) {
				best = bt;
				*addrp = a;
				if (bt->bt_size == r->size)
					break;
			}
		}
		/* Every segment on a higher list is larger than any here. */
		if (best != NULL)
			return best;
	}
	return NULL;
}

/*
 * Instant fit: the head of the first non-empty list whose every member is
 * large enough (list n+1, or n when the size is exactly 2^n quanta).  An
 * unconstrained request is then met in constant time; a constrained one
 * looks at each such head in turn.  Falls back to best fit, which also
 * covers fits that only exist in the request's own list.
 */
static bt_t *
vmem_find_instant(vmem_t *vm, const struct vmem_req *r, vmem_addr_t *addrp)
{
	unsigned order = vmem_order(vm, r->size);
	unsigned first =
	    order + !kmem_powerof2(r->size >> vm->vm_quantum_shift);
	uint64_t map =
	    first < 64 ? vm->vm_freemap & (~(uint64_t)0 << first) : 0;
	bt_t *bt;

	while (map != 0) {
		bt = vm->vm_freelist[__builtin_ctzll(map)];
		if (!r->constrained) {
			*addrp = bt->bt_start;
			return bt;
		}
		if (vmem_fit(bt, r, 0, addrp))
			return bt;
		map &= map - 1;
	}
	return vmem_find_best(vm, r, order, addrp);
}

/*
 * Next fit: the lowest fitting free address at or after vm_rotor_next (the
 * end of the previous next-fit allocation), else, wrapping around, the
 * lowest fitting one before it.  vm_rotor is a tag at or just after that
 * address; since carving and coalescing can leave vm_rotor_next in the tag
 * before it, the search first steps back over tags that still reach
 * vm_rotor_next (one step in practice), so the walk is O(1) when the space
 * after the rotor is free, as it is for IDs handed out in order.
 */
static bt_t *
vmem_find_next(vmem_t *vm, const struct vmem_req *r, vmem_addr_t *addrp)
{
	bt_t *const seg0 = &vm->vm_seg0;
	bt_t *start = vm->vm_rotor != NULL ? vm->vm_rotor : seg0->bt_snext;
	vmem_addr_t floor = vm->vm_rotor_next;
	bt_t *bt;

	while (start != seg0 && start->bt_sprev != seg0 &&
	    bt_end(start->bt_sprev) >= floor)
		start = start->bt_sprev;
	/* First pass: from the rotor to the top, addresses >= floor. */
	for (bt = start; bt != seg0; bt = bt->bt_snext) {
		if (bt->bt_type == BT_TYPE_FREE && bt_end(bt) >= floor &&
		    bt->bt_size >= r->size && vmem_fit(bt, r, floor, addrp))
			return bt;
	}
	/*
	 * Wrapped: from the bottom, the lowest fit anywhere (nothing at or
	 * after floor fits, so it lies below floor).
	 */
	for (bt = seg0->bt_snext; bt != seg0; bt = bt->bt_snext) {
		if (bt->bt_type == BT_TYPE_FREE && bt->bt_size >= r->size &&
		    vmem_fit(bt, r, 0, addrp))
			return bt;
	}
	return NULL;
}

/*
 * Turn [addr, addr+size) of free segment bt into a busy segment; the
 * remainders on either side stay free.  The cache holds BT_NEED_ALLOC tags.
 */
static bt_t *
vmem_carve(vmem_t *vm, bt_t *bt, vmem_addr_t addr, vmem_size_t size)
{
	bt_t *rem;

	KMEM_ASSERT(bt->bt_type == BT_TYPE_FREE && vm->vm_nbtfree >= 2);
	KMEM_ASSERT(addr >= bt->bt_start && size != 0 &&
	    ((addr | size) & vm->vm_quantum_mask) == 0 &&
	    size - 1 <= bt_end(bt) - addr);
	freelist_remove(vm, bt);
	if (addr > bt->bt_start) {
		rem = bt_get(vm);
		rem->bt_start = bt->bt_start;
		rem->bt_size = addr - bt->bt_start;
		rem->bt_flags = bt->bt_flags & BT_F_DIRTY;
		rem->bt_epoch = bt->bt_epoch;
		seg_insert_after(bt->bt_sprev, rem);
		freelist_insert(vm, rem);
		bt->bt_start = addr;
		bt->bt_size -= rem->bt_size;
	}
	if (bt->bt_size > size) {
		rem = bt_get(vm);
		rem->bt_start = addr + size;
		rem->bt_size = bt->bt_size - size;
		rem->bt_flags = bt->bt_flags & BT_F_DIRTY;
		rem->bt_epoch = bt->bt_epoch;
		seg_insert_after(bt, rem);
		freelist_insert(vm, rem);
		bt->bt_size = size;
	}
	bt->bt_flags = 0;
	hash_insert(vm, bt);
	KMEM_ASSERT(bt->bt_start == addr && bt->bt_size == size);
	return bt;
}

/* ---- spans ---- */

/* Insert a span marker and its one free segment, in address order. */
static bt_t *
vmem_span_add(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, int type)
{
	bt_t *span, *seg, *next;

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(size != 0 && ((addr | size) & vm->vm_quantum_mask) == 0);
	KMEM_ASSERT(type == BT_TYPE_SPAN || type == BT_TYPE_STATIC);
	span = bt_get(vm);
	seg = bt_get(vm);
	span->bt_start = seg->bt_start = addr;
	span->bt_size = seg->bt_size = size;
	span->bt_type = (uint8_t)type;
	/* The first span after ours, on the span list. */
	for (next = vm->vm_seg0.bt_fnext; next != &vm->vm_seg0;
	     next = next->bt_fnext) {
		if (next->bt_start > addr)
			break;
	}
	span->bt_fnext = next;
	span->bt_fprev = next->bt_fprev;
	next->bt_fprev->bt_fnext = span;
	next->bt_fprev = span;
	seg_insert_after(next->bt_sprev, span);
	seg_insert_after(span, seg);
	freelist_insert(vm, seg);
	KMEM_ASSERT(size <= VMEM_ADDR_MAX - vm->vm_total); /* callers' test */
	vm->vm_total += size;
	if (type == BT_TYPE_SPAN)
		vm->vm_imported += size;
	return span;
}

static inline void bt_merge_dirty(bt_t *into, const bt_t *from);

/*
 * Imported span b, right after span a (a's end + 1 is b's start), becomes
 * part of a: b's marker goes, and a's last segment and b's first join if
 * both are free.  (kmemi_vmem_set_merge; the segments still tile a.)
 */
static void
vmem_span_join(vmem_t *vm, bt_t *a, bt_t *b)
{
	bt_t *last = b->bt_sprev, *first = b->bt_snext;

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(a->bt_type == BT_TYPE_SPAN && b->bt_type == BT_TYPE_SPAN &&
	    a->bt_fnext == b && b->bt_start - a->bt_start == a->bt_size &&
	    last != a && first->bt_start == b->bt_start);
	seg_remove(vm, b, last);
	b->bt_fprev->bt_fnext = b->bt_fnext;
	b->bt_fnext->bt_fprev = b->bt_fprev;
	a->bt_size += b->bt_size;
	bt_put(vm, b);
	if (last->bt_type == BT_TYPE_FREE && first->bt_type == BT_TYPE_FREE) {
		freelist_remove(vm, last);
		freelist_remove(vm, first);
		last->bt_size += first->bt_size;
		bt_merge_dirty(last, first);
		seg_remove(vm, first, last);
		bt_put(vm, first);
		freelist_insert(vm, last);
	}
}

/* Whether imported span s can take in the one after it. */
static inline bool
vmem_span_joins(const vmem_t *vm, const bt_t *s)
{
	const bt_t *n = s->bt_fnext;

	return s != &vm->vm_seg0 && n != &vm->vm_seg0 &&
	    s->bt_type == BT_TYPE_SPAN && n->bt_type == BT_TYPE_SPAN &&
	    !((s->bt_flags | n->bt_flags) & BT_F_XIMPORT) &&
	    n->bt_start - s->bt_start == s->bt_size;
}

/*
 * A span just imported joins the imported spans it touches: the span
 * that holds it now.  So a free range can grow across what were two
 * mappings, and a large request fits where two blocks were freed side by
 * side, rather than importing (and, in deferred mode, purging as much
 * first: section 7).
 */
static bt_t *
vmem_span_merge(vmem_t *vm, bt_t *span)
{
	if (vmem_span_joins(vm, span))
		vmem_span_join(vm, span, span->bt_fnext);
	if (vmem_span_joins(vm, span->bt_fprev)) {
		span = span->bt_fprev;
		vmem_span_join(vm, span, span->bt_fnext);
	}
	return span;
}

/*
 * Give an imported span back to the source, unlocked: through vmem_xfree
 * if it came from vmem_xalloc on the source, else the release function.
 * Arenas without a release function keep their imports.
 */
static void
vmem_release_fn(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, bool xfree)
{
	if (vm->vm_releasefn == NULL)
		return;
	if (xfree)
		vmem_xfree(vm->vm_source, addr, size);
	else
		vm->vm_releasefn(vm->vm_source, addr, size);
}

static bool
vmem_span_wholly_free(const bt_t *span)
{
	const bt_t *seg = span->bt_snext;

	return span->bt_type == BT_TYPE_SPAN && seg->bt_type == BT_TYPE_FREE &&
	    seg->bt_size == span->bt_size;
}

/* What a detached span gives back once the lock is dropped. */
struct purge_span {
	vmem_addr_t ps_addr;
	vmem_size_t ps_size;
	bool ps_xfree;
};

/*
 * Take wholly free imported span "span" out of the arena (its marker and
 * segment go back to the tag cache); *ps says what to give back to the
 * source once the lock is dropped.  Lock held, kept.
 */
static void
vmem_span_detach(vmem_t *vm, bt_t *span, struct purge_span *ps)
{
	bt_t *seg = span->bt_snext, *heir = span->bt_sprev;

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(vmem_span_wholly_free(span));
	KMEM_ASSERT(
	    vm->vm_total >= span->bt_size && vm->vm_imported >= span->bt_size);
	ps->ps_addr = span->bt_start;
	ps->ps_size = span->bt_size;
	ps->ps_xfree = (span->bt_flags & BT_F_XIMPORT) != 0;
	/*
	 * The rotor moves to the tag before the span, or, for the lowest
	 * span, to the first tag after it: never to the sentinel, which
	 * would make the next next-fit search start from the bottom.
	 */
	if (heir == &vm->vm_seg0)
		heir = seg->bt_snext != &vm->vm_seg0 ? seg->bt_snext : NULL;
	freelist_remove(vm, seg);
	seg_remove(vm, seg, heir);
	seg_remove(vm, span, heir);
	span->bt_fprev->bt_fnext = span->bt_fnext;
	span->bt_fnext->bt_fprev = span->bt_fprev;
	bt_put(vm, seg);
	bt_put(vm, span);
	vm->vm_total -= ps->ps_size;
	vm->vm_imported -= ps->ps_size;
	vm->vm_nrelease++;
}

/*
 * Remove wholly free imported span "span" and give it back to the source.
 * vm_lock held on entry, released on return (the release runs unlocked).
 */
static void
vmem_span_release_unlock(vmem_t *vm, bt_t *span)
{
	struct purge_span ps;

	vmem_span_detach(vm, span, &ps);
	vmem_exit_unlock(vm, true);
	vmem_release_fn(vm, ps.ps_addr, ps.ps_size, ps.ps_xfree);
}

/* ---- argument checks ---- */

#define VM_SLEEPMASK (VM_SLEEP | VM_NOSLEEP)
#define VM_FITMASK   (VM_INSTANTFIT | VM_BESTFIT | VM_NEXTFIT)

static void
vmem_check_flags(
    const vmem_t *vm, const char *fn, vmem_size_t size, vm_flag_t flags)
{
	vm_flag_t fit = flags & VM_FITMASK;

	if ((flags & VM_SLEEPMASK) != VM_SLEEP &&
	    (flags & VM_SLEEPMASK) != VM_NOSLEEP)
		kmem_panic("%s(arena '%s', size %#zx, flags %#x): need exactly "
			   "one of VM_SLEEP and VM_NOSLEEP",
		    fn, vm->vm_name, size, flags);
	if (fit & (fit - 1))
		kmem_panic("%s(arena '%s', size %#zx, flags %#x): more than "
			   "one fit policy",
		    fn, vm->vm_name, size, flags);
	if (size == 0)
		kmem_panic("%s(arena '%s', size 0, flags %#x): size 0", fn,
		    vm->vm_name, flags);
}

/* Validate and normalise an xalloc request; aborts on contradictions. */
static void
vmem_req_init(const vmem_t *vm, const char *fn, struct vmem_req *r,
    vmem_size_t size, vmem_size_t align, vmem_size_t phase, vmem_size_t nocross,
    vmem_addr_t minaddr, vmem_addr_t maxaddr)
{
	vmem_size_t q = vm->vm_quantum_mask + 1;

#define VMEM_XPANIC(...)                                                       \
	kmem_panic("%s(arena '%s', size %#zx, align %#zx, phase %#zx, "        \
		   "nocross %#zx, min %#zx, max %#zx): " __VA_ARGS__)
#define VMEM_XARGS                                                             \
	fn, vm->vm_name, size, align, phase, nocross, (size_t)minaddr,         \
	    (size_t)maxaddr
	if (align == 0)
		align = q;
	if (!kmem_powerof2(align))
		VMEM_XPANIC(
		    "align %#zx is not a power of two", VMEM_XARGS, align);
	if (align & (q - 1))
		VMEM_XPANIC("align %#zx is not a multiple of the quantum %#zx",
		    VMEM_XARGS, align, q);
	if (phase >= align || (phase & (q - 1)) != 0)
		VMEM_XPANIC("phase %#zx must be a quantum multiple below "
			    "align %#zx",
		    VMEM_XARGS, phase, align);
	if (nocross != 0 && !kmem_powerof2(nocross))
		VMEM_XPANIC(
		    "nocross %#zx is not a power of two", VMEM_XARGS, nocross);
	if (minaddr > maxaddr)
		VMEM_XPANIC("minaddr %#zx > maxaddr %#zx", VMEM_XARGS,
		    (size_t)minaddr, (size_t)maxaddr);
	if (size > vm->vm_quantum_mask + 1 &&
	    size - 1 > VMEM_ADDR_MAX - (vm->vm_quantum_mask + 1))
		VMEM_XPANIC(
		    "size does not fit in the address space", VMEM_XARGS);
	r->size = vmem_roundup(vm, size);
	/*
	 * Larger than [minaddr, maxaddr]: ENOMEM at once, VM_SLEEP or not,
	 * as NetBSD's own unit test expects (it is a constrained request
	 * that no arena state can serve, not a contradiction).
	 */
	r->never = r->size - 1 > maxaddr - minaddr;
	if (nocross != 0 && nocross < r->size)
		VMEM_XPANIC(
		    "nocross %#zx < size %#zx", VMEM_XARGS, nocross, r->size);
	if (nocross != 0 &&
	    ((phase ^ (phase + r->size - 1)) & ~(nocross - 1)) != 0)
		VMEM_XPANIC("[phase, phase+size) crosses nocross", VMEM_XARGS);
#undef VMEM_XPANIC
#undef VMEM_XARGS
	r->align = align;
	r->phase = phase;
	r->nocross = nocross;
	r->minaddr = minaddr;
	r->maxaddr = maxaddr;
	r->constrained = align != q || phase != 0 || nocross != 0 ||
	    minaddr != VMEM_ADDR_MIN || maxaddr != VMEM_ADDR_MAX;
	/*
	 * NetBSD's vmem_xalloc: a constrained request that finds no fit and
	 * gets none from an import fails with ENOMEM even under VM_SLEEP
	 * (no free is sure ever to produce the range it asks for); only an
	 * unconstrained one waits.  Internal callers whose constraint is
	 * their own (qc_page_alloc) set canwait again.
	 */
	r->canwait = !r->constrained;
}

/* ---- import ---- */

/*
 * Ask the source for a span of "size" bytes; the arena lock is not held.
 * 0 with *addrp and *actualp (the span's real size, at least "size"), or
 * an error.
 */
static int
vmem_import_call(vmem_t *vm, const struct vmem_req *r, bool direct,
    vmem_size_t size, vm_flag_t iflags, vmem_addr_t *addrp,
    vmem_size_t *actualp)
{
	int err;

	*actualp = size;
	if (direct)
		return vmem_xalloc(vm->vm_source, size, r->align, r->phase,
		    r->nocross, r->minaddr, r->maxaddr, iflags, addrp);
	if (vm->vm_ximportfn == NULL)
		return vm->vm_importfn(vm->vm_source, size, iflags, addrp);
	err = vm->vm_ximportfn(vm->vm_source, size, actualp, iflags, addrp);
	if (err == 0 && *actualp < size)
		kmem_panic("vmem_import(arena '%s', size %#zx): ximport "
			   "reported %#zx, less than requested",
		    vm->vm_name, size, *actualp);
	return err;
}

/*
 * Import a span that can hold request r.  vm_lock held on entry and on
 * return, dropped around the import function.  *spanp is the new span's
 * marker.  0, ENOMEM (nothing imported), or EAGAIN (imported, but
 * no tags to record the span: given back).
 *
 * Two sizes: "need", the least span that holds the request wherever it
 * lands, and "size", that enlarged to the minimum import (and 16x with
 * VM_LARGEIMPORT).  The enlarged import is a wish: it is asked for
 * without sleeping, and when the source cannot give it the import falls
 * back to "need" with the caller's flags -- a minimum import larger than
 * the source can give (vmem_min_import=1G over a 255 MiB source, or a
 * page source that refuses big mappings) must not make a request fail,
 * or a VM_SLEEP one wait for ever, while the memory it needs is there.
 */
static int
vmem_import_relock(
    vmem_t *vm, const struct vmem_req *r, vm_flag_t flags, bt_t **spanp)
{
	vmem_size_t q = vm->vm_quantum_mask + 1, need = r->size, size;
	vmem_size_t extra = 0, want = 0, actual;
	vmem_addr_t addr;
	vm_flag_t iflags = (flags & VM_SLEEPMASK) | VM_INSTANTFIT;
	bool direct = false;
	int err = ENOMEM;

	VMEM_ASSERT_LOCKED(vm);
	if (vm->vm_importfn == NULL && vm->vm_ximportfn == NULL)
		return ENOMEM; /* not reached: called when it can import */
	/*
	 * A vmem source is asked with VM_NOSLEEP: a VM_SLEEP request waits
	 * here (timed), where frees in this arena wake it, never on the
	 * source's condition variable, where they would not.  A foreign
	 * import function gets the caller's sleep flag (for "need" only).
	 */
	if (vm->vm_importfn == vmem_alloc)
		iflags = VM_NOSLEEP | VM_INSTANTFIT;
	if (r->constrained && vm->vm_importfn == vmem_alloc &&
	    (vm->vm_releasefn == vmem_free || vm->vm_releasefn == NULL)) {
		/*
		 * The source is a vmem arena: ask it for the constraint with
		 * vmem_xalloc, and give such a span back with vmem_xfree
		 * (BT_F_XIMPORT), so the pairing rule holds whatever the
		 * source's quantum caches.  A larger import (minimum import,
		 * VM_LARGEIMPORT) is made only if it still satisfies nocross
		 * and [minaddr, maxaddr]; allocations then start at its
		 * aligned base.
		 */
		const vmem_t *src = vm->vm_source;
		vmem_size_t sq = src->vm_quantum_mask + 1;

		direct = kmem_align_up_ok(need, sq, &need) &&
		    (r->align & (sq - 1)) == 0 && (r->phase & (sq - 1)) == 0 &&
		    (r->nocross == 0 || r->nocross >= need) &&
		    need - 1 <= r->maxaddr - r->minaddr;
		if (!direct)
			need = r->size;
	}
	if (direct) {
		const vmem_t *src = vm->vm_source;

		if ((vm->vm_flags & VM_LARGEIMPORT) &&
		    !__builtin_mul_overflow(need, 16, &want))
			want = vmem_roundup(src, want);
		if (want < vm->vm_min_import)
			want = vmem_roundup(src, vm->vm_min_import);
		size = need;
		if (want > need &&
		    (r->nocross == 0 ||
			((r->phase ^ (r->phase + want - 1)) &
			    ~(r->nocross - 1)) == 0) &&
		    want - 1 <= r->maxaddr - r->minaddr)
			size = want;
	} else {
		/* Room for a fitting range wherever the span lands. */
		if (r->nocross != 0)
			extra =
			    (r->nocross > r->align ? r->nocross : r->align) +
			    r->phase - q;
		else if (r->align > q)
			extra = r->align - q; /* phase < align */
		if (__builtin_add_overflow(need, extra, &need) ||
		    !kmem_align_up_ok(need, q, &need))
			return ENOMEM;
		size = need;
		if ((vm->vm_flags & VM_LARGEIMPORT) &&
		    __builtin_mul_overflow(need, 16, &size))
			size = need;
		if (size < vm->vm_min_import)
			size = vm->vm_min_import;
		/* Not reached: size and extra are quantum multiples. */
		if (!kmem_align_up_ok(size, q, &size))
			size = need;
	}
	kmem_mutex_exit(&vm->vm_lock);
	if (size > need)
		err = vmem_import_call(vm, r, direct, size,
		    (iflags & ~VM_SLEEPMASK) | VM_NOSLEEP, &addr, &actual);
	if (err != 0) {
		size = need;
		err = vmem_import_call(
		    vm, r, direct, size, iflags, &addr, &actual);
	}
	kmem_mutex_enter(&vm->vm_lock);
	if (err != 0)
		return ENOMEM;
	if (((addr | actual) & vm->vm_quantum_mask) != 0 ||
	    actual - 1 > VMEM_ADDR_MAX - addr)
		kmem_panic(
		    "vmem_import(arena '%s', size %#zx): import returned "
		    "bad span [%#zx, +%#zx)",
		    vm->vm_name, size, (size_t)addr, actual);
	if (actual > VMEM_ADDR_MAX - vm->vm_total) {
		/* Every address would be the arena's: vmem_add. */
		kmem_mutex_exit(&vm->vm_lock);
		vmem_release_fn(vm, addr, actual, direct);
		kmem_mutex_enter(&vm->vm_lock);
		return ENOMEM;
	}
	if (bt_refill(vm, BT_NEED_SPAN + BT_NEED_ALLOC) != 0) {
		/* Others took the tags refilled before the import. */
		kmem_mutex_exit(&vm->vm_lock);
		vmem_release_fn(vm, addr, actual, direct);
		kmem_mutex_enter(&vm->vm_lock);
		return EAGAIN;
	}
	*spanp = vmem_span_add(vm, addr, actual, BT_TYPE_SPAN);
	if (direct)
		(*spanp)->bt_flags |= BT_F_XIMPORT;
	else if (vm->vm_merge_spans)
		*spanp = vmem_span_merge(vm, *spanp);
	vm->vm_nimport++;
	KMEM_ASSERT(vm->vm_nbtfree >= BT_NEED_ALLOC);
	return 0;
}

/* ---- allocation ---- */

static void qc_reap(vmem_t *vm);

static bt_t *
vmem_find(
    vmem_t *vm, const struct vmem_req *r, vm_flag_t flags, vmem_addr_t *addrp)
{
	if (flags & VM_BESTFIT)
		return vmem_find_best(vm, r, vmem_order(vm, r->size), addrp);
	if (flags & VM_NEXTFIT)
		return vmem_find_next(vm, r, addrp);
	return vmem_find_instant(vm, r, addrp);
}

/*
 * Sleep until a free, add or release (or, if timed, the retry period).
 * vm_lock held on entry and on return, released while asleep.
 */
static void
vmem_wait_relock(vmem_t *vm, bool timed)
{
	VMEM_ASSERT_LOCKED(vm);
	vm->vm_nwait++;
	vm->vm_nwaiters++;
	if (timed)
		kmem_cond_timedwait(&vm->vm_cv, &vm->vm_lock,
		    vm->vm_dom->kd_opts.vmem_sleep_retry_ms * 1000000u);
	else
		kmem_cond_wait(&vm->vm_cv, &vm->vm_lock);
	vm->vm_nwaiters--;
}

/*
 * A VM_SLEEP request found no memory for boundary tags: wait a retry
 * period; after BT_SLEEP_TRIES of them, give up loudly.  vm_lock held on
 * entry and on return, released while asleep.
 */
static void
vmem_tags_wait_relock(
    vmem_t *vm, const char *fn, vmem_size_t size, unsigned *tries)
{
	if (++*tries > BT_SLEEP_TRIES)
		kmem_panic("%s(arena '%s', size %#zx): no memory for boundary "
			   "tags",
		    fn, vm->vm_name, size);
	vmem_wait_relock(vm, true);
}

static void vmem_purge_pass_relock(vmem_t *vm, bool all, uint64_t now,
    unsigned int maxbatch, vmem_size_t budget);
static void vmem_purge_wait_relock(vmem_t *vm);
static void vmem_check_locked(vmem_t *vm);

/* KMEM_DEBUG=check: the arena as a slow path finds it (debug.c section 6). */
#define VMEM_CHECK_HOOK(vm)                                                    \
	do {                                                                   \
		if (kmemi_check_on((vm)->vm_nbusy + (vm)->vm_nfree))           \
			vmem_check_locked(vm);                                 \
	} while (0)

static int
vmem_xalloc_req(vmem_t *vm, const char *fn, const struct vmem_req *r,
    vm_flag_t flags, uint8_t btflags, vmem_addr_t *addrp)
{
	bt_t *bt, *span = NULL;
	vmem_addr_t addr;
	unsigned tries = 0;
	bool imported;
	bool canimport = vm->vm_importfn != NULL || vm->vm_ximportfn != NULL;
	bool reaped = false, purged = false;
	int err;

	kmem_mutex_enter(&vm->vm_lock);
	VMEM_CHECK_HOOK(vm);
	for (;;) {
		if (kmem_unlikely(r->never))
			break;
		/* Tags for the carve, and for an import's span if need be. */
		err = bt_refill(vm,
		    canimport ? BT_NEED_SPAN + BT_NEED_ALLOC : BT_NEED_ALLOC);
		if (err != 0) {
			if (flags & VM_NOSLEEP)
				break;
			vmem_tags_wait_relock(vm, fn, r->size, &tries);
			continue;
		}
		bt = vmem_find(vm, r, flags, &addr);
		imported = false;
		/*
		 * A purge pass holds free ranges while their pages go
		 * (section 7), and one of them may fit: wait for its batch
		 * to come back -- a wait of one batch's system calls, as
		 * short as the lock used to be held for them all -- rather
		 * than grow the arena or fail.  VM_NOSLEEP too: this is not
		 * a wait for memory.
		 */
		if (bt == NULL && vm->vm_purge_fit >= r->size) {
			vmem_purge_wait_relock(vm);
			continue;
		}
		/*
		 * Deferred mode, about to grow: first give back the free
		 * pages that could not serve this (section 7), so that the
		 * memory held is what is in use plus what is new.  A pass
		 * already running does that.
		 */
		if (bt == NULL && canimport && vm->vm_purgefn != NULL &&
		    !purged && !vm->vm_purge_active &&
		    vm->vm_freed_dirty >= (r->size > vm->vm_min_import
						  ? r->size
						  : vm->vm_min_import)) {
			purged = true;
			vmem_purge_pass_relock(vm, true, kmem_prim_clock_ns(),
			    0,
			    r->size > vm->vm_min_import ? r->size
							: vm->vm_min_import);
			continue;
		}
		if (bt == NULL && canimport) {
			err = vmem_import_relock(vm, r, flags, &span);
			if (err == EAGAIN && !(flags & VM_NOSLEEP)) {
				vmem_tags_wait_relock(vm, fn, r->size, &tries);
				continue;
			}
			if (err == 0) {
				imported = true;
				bt = vmem_find(vm, r, flags, &addr);
			}
		}
		if (bt != NULL) {
			KMEM_ASSERT(addr >= r->minaddr && addr <= r->maxaddr &&
			    r->size - 1 <= r->maxaddr - addr &&
			    ((addr - r->phase) & (r->align - 1)) == 0);
			bt = vmem_carve(vm, bt, addr, r->size);
			bt->bt_flags = btflags;
			vm->vm_nalloc++;
			if (flags & VM_NEXTFIT) {
				vm->vm_rotor = bt;
				vm->vm_rotor_next = addr + r->size;
			}
			if (addrp != NULL)
				*addrp = addr;
			/* A racing import or free made ours unneeded. */
			if (imported && vm->vm_releasefn != NULL &&
			    vmem_span_wholly_free(span)) {
				vmem_span_release_unlock(vm, span);
				return 0;
			}
			vmem_exit_unlock(vm, false);
			return 0;
		}
		if (imported && vm->vm_releasefn != NULL &&
		    vmem_span_wholly_free(span)) {
			/* The span cannot serve the request (min/max). */
			vmem_span_release_unlock(vm, span);
			kmem_mutex_enter(&vm->vm_lock);
		}
		if (vm->vm_qcache_max != 0 && !reaped &&
		    !(btflags & BT_F_QCPAGE)) {
			/*
			 * Segments cached in the quantum caches first, then
			 * fail or wait.  (A cache's own page request is left
			 * to qc_alloc, which reaps after it fails.)
			 */
			reaped = true;
			kmem_mutex_exit(&vm->vm_lock);
			qc_reap(vm);
			kmem_mutex_enter(&vm->vm_lock);
			continue;
		}
		if ((flags & VM_NOSLEEP) || !r->canwait)
			break;
		reaped = false;
		/*
		 * Frees into quantum caches do not wake us, and imports may
		 * succeed later: wait timed when either can happen.
		 */
		vmem_wait_relock(vm, canimport || vm->vm_qcache_max != 0);
	}
	if (!(btflags & BT_F_QCPAGE)) /* qc_alloc counts its own failure */
		vm->vm_nfail++;
	kmem_mutex_exit(&vm->vm_lock);
	return ENOMEM;
}

/* ---- quantum caches ---- */

static void vmem_free_bt_unlock(vmem_t *vm, bt_t *bt);

static vmem_t *
qc_arena(struct pool *pp)
{
	return (vmem_t *)(void *)((char *)pp->pr_alloc -
	    offsetof(struct vmem, vm_qcache_allocator));
}

static void *
qc_page_alloc(struct pool *pp, int flags)
{
	vmem_t *vm = qc_arena(pp);
	vm_flag_t vf = (flags & PR_WAITOK) ? VM_SLEEP : VM_NOSLEEP;
	struct vmem_req r;
	vmem_addr_t a;

	vmem_req_init(vm, "vmem_alloc", &r, pp->pr_alloc->pa_pagesz, 0, 0, 0,
	    vm->vm_quantum_mask + 1, VMEM_ADDR_MAX);
	r.canwait = true; /* the minimum is ours, not the caller's */
	if (vmem_xalloc_req(
		vm, "vmem_alloc", &r, vf | VM_INSTANTFIT, BT_F_QCPAGE, &a) != 0)
		return NULL;
	return (void *)a;
}

static void
qc_page_free(struct pool *pp, void *v)
{
	vmem_t *vm = qc_arena(pp);
	bt_t *bt;

	kmem_mutex_enter(&vm->vm_lock);
	VMEM_CHECK_HOOK(vm);
	bt = hash_remove(vm, (vmem_addr_t)v);
	KMEM_VERIFY(bt != NULL && (bt->bt_flags & BT_F_QCPAGE));
	vmem_free_bt_unlock(vm, bt);
}

/* Give back everything the quantum caches hold.  No arena lock held. */
static void
qc_reap(vmem_t *vm)
{
	unsigned int i;

	for (i = 0; i < VMEM_QCACHE_IDX_MAX && vm->vm_qcache[i] != NULL; i++) {
		if (i > 0 && vm->vm_qcache[i] == vm->vm_qcache[i - 1])
			continue;
		kmemi_cache_drain(vm->vm_qcache[i]);
	}
}

static int
qc_alloc(vmem_t *vm, vmem_size_t rsize, vm_flag_t flags, vmem_addr_t *addrp)
{
	pool_cache_t pc = vm->vm_qcache[(rsize >> vm->vm_quantum_shift) - 1];
	void *p;

	p = pool_cache_get(pc, (flags & VM_SLEEP) ? PR_WAITOK : PR_NOWAIT);
	if (kmem_unlikely(p == NULL)) {
		/* Free space may sit in other caches' magazines. */
		qc_reap(vm);
		p = pool_cache_get(pc, PR_NOWAIT);
		if (p == NULL) {
			kmem_mutex_enter(&vm->vm_lock);
			vm->vm_nfail++;
			kmem_mutex_exit(&vm->vm_lock);
			return ENOMEM;
		}
	}
	if (addrp != NULL)
		*addrp = (vmem_addr_t)p;
	return 0;
}

/* Create the quantum caches; 0, or ENOMEM (the caller destroys them). */
static int
qc_init(vmem_t *vm, int ipl)
{
	vmem_size_t q = vm->vm_quantum_mask + 1, pagesz = 1, size;
	pool_cache_t prev = NULL;
	size_t previpp = 0, ipp, i;
	char name[64];

	if (vm->vm_qcache_max == 0)
		return 0;
	while (pagesz <= 3 * vm->vm_qcache_max && pagesz < ((size_t)1 << 31))
		pagesz <<= 1;
	/*
	 * No caches when their pages would not fit: pages larger than 2^31,
	 * or an arena that cannot import and whose initial span is smaller
	 * than two cache pages (its caches could hardly ever get a page; an
	 * arena created empty, for vmem_add, keeps them).
	 */
	if (pagesz <= 3 * vm->vm_qcache_max ||
	    (vm->vm_importfn == NULL && vm->vm_ximportfn == NULL &&
		vm->vm_total != 0 && vm->vm_total < 2 * pagesz)) {
		vm->vm_qcache_max = 0;
		return 0;
	}
	vm->vm_qcache_allocator.pa_alloc = qc_page_alloc;
	vm->vm_qcache_allocator.pa_free = qc_page_free;
	vm->vm_qcache_allocator.pa_pagesz = (unsigned int)pagesz;
	for (i = vm->vm_qcache_max / q; i >= 1; i--) {
		size = i * q;
		ipp = pagesz / size;
		if (prev != NULL && ipp == previpp) {
			vm->vm_qcache[i - 1] = prev;
			continue;
		}
		kmem_snprintf(name, sizeof name, "%s-%zu", vm->vm_name, size);
		prev = kmemi_cache_create(size, (unsigned int)q, 0,
		    PR_NOALIGN | PR_NOTOUCH | PR_RECURSIVE, name,
		    &vm->vm_qcache_allocator, ipl, NULL, NULL, NULL);
		if (prev == NULL)
			return ENOMEM;
		vm->vm_qcache[i - 1] = prev;
		previpp = ipp;
	}
	return 0;
}

static void
qc_destroy(vmem_t *vm)
{
	unsigned int i;

	for (i = VMEM_QCACHE_IDX_MAX; i-- > 0;) {
		if (vm->vm_qcache[i] == NULL ||
		    (i > 0 && vm->vm_qcache[i] == vm->vm_qcache[i - 1]))
			continue;
		pool_cache_destroy(vm->vm_qcache[i]);
	}
	memset(vm->vm_qcache, 0, sizeof vm->vm_qcache);
}

int
vmem_xalloc(vmem_t *vm, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
    vmem_size_t nocross, vmem_addr_t minaddr, vmem_addr_t maxaddr,
    vm_flag_t flags, vmem_addr_t *addrp)
{
	struct vmem_req r;

	vmem_check_flags(vm, "vmem_xalloc", size, flags);
	vmem_req_init(vm, "vmem_xalloc", &r, size, align, phase, nocross,
	    minaddr, maxaddr);
	return vmem_xalloc_req(vm, "vmem_xalloc", &r, flags, 0, addrp);
}

int
vmem_alloc(vmem_t *vm, vmem_size_t size, vm_flag_t flags, vmem_addr_t *addrp)
{
	struct vmem_req r;

	vm_flag_t fit = flags & VM_FITMASK;

	/* Quantum caches first, with just the checks that can fail there. */
	if (kmem_likely(size - 1 < vm->vm_qcache_max) &&
	    ((flags & VM_SLEEPMASK) == VM_SLEEP ||
		(flags & VM_SLEEPMASK) == VM_NOSLEEP) &&
	    (fit & (fit - 1)) == 0)
		return qc_alloc(vm, vmem_roundup(vm, size), flags, addrp);
	vmem_check_flags(vm, "vmem_alloc", size, flags);
	vmem_req_init(
	    vm, "vmem_alloc", &r, size, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX);
	return vmem_xalloc_req(vm, "vmem_alloc", &r, flags, 0, addrp);
}

int
vmem_xalloc_addr(
    vmem_t *vm, vmem_addr_t addr, vmem_size_t size, vm_flag_t flags)
{
	struct vmem_req r;

	vmem_check_flags(vm, "vmem_xalloc_addr", size, flags);
	if (addr & vm->vm_quantum_mask)
		kmem_panic("vmem_xalloc_addr(arena '%s', %#zx, %#zx): address "
			   "is not a multiple of the quantum %#zx",
		    vm->vm_name, (size_t)addr, size, vm->vm_quantum_mask + 1);
	if (size - 1 > VMEM_ADDR_MAX - addr)
		kmem_panic("vmem_xalloc_addr(arena '%s', %#zx, %#zx): range "
			   "does not fit in the address space",
		    vm->vm_name, (size_t)addr, size);
	vmem_req_init(vm, "vmem_xalloc_addr", &r, size, 0, 0, 0, addr,
	    addr + vmem_roundup(vm, size) - 1);
	return vmem_xalloc_req(vm, "vmem_xalloc_addr", &r,
	    (flags & ~VM_FITMASK) | VM_BESTFIT, 0, NULL);
}

/* ---- free ---- */

/* addr lies in a quantum-cache page: it came from vmem_alloc. */
static _Noreturn void
vmem_qc_misfree(vmem_t *vm, const char *fn, vmem_addr_t addr, vmem_size_t size)
{
	if (strcmp(fn, "vmem_free") == 0)
		kmem_panic("%s(arena '%s', %#zx, %#zx): segment was allocated "
			   "by vmem_alloc at a quantum-cache size, not %#zx: "
			   "wrong size",
		    fn, vm->vm_name, (size_t)addr, size, size);
	kmem_panic("%s(arena '%s', %#zx, %#zx): segment was allocated by "
		   "vmem_alloc from a quantum cache: use vmem_free",
	    fn, vm->vm_name, (size_t)addr, size);
}

/* addr is not the start of a busy segment: say what it is, and abort. */
static _Noreturn void
vmem_bad_free(vmem_t *vm, const char *fn, vmem_addr_t addr, vmem_size_t size)
{
	const bt_t *bt;

	for (bt = vm->vm_seg0.bt_snext; bt != &vm->vm_seg0; bt = bt->bt_snext) {
		if (bt->bt_type != BT_TYPE_FREE &&
		    bt->bt_type != BT_TYPE_BUSY &&
		    bt->bt_type != BT_TYPE_PURGING)
			continue;
		if (addr < bt->bt_start || addr > bt_end(bt))
			continue;
		if (bt->bt_type != BT_TYPE_BUSY) /* FREE, or being purged */
			kmem_panic("%s(arena '%s', %#zx, %#zx): %#zx is not "
				   "allocated: it lies in free segment "
				   "[%#zx, %#zx] (double free?)",
			    fn, vm->vm_name, (size_t)addr, size, (size_t)addr,
			    (size_t)bt->bt_start, (size_t)bt_end(bt));
		if (bt->bt_flags & BT_F_QCPAGE)
			vmem_qc_misfree(vm, fn, addr, size);
		kmem_panic("%s(arena '%s', %#zx, %#zx): %#zx is not allocated: "
			   "it is inside allocation [%#zx, %#zx]",
		    fn, vm->vm_name, (size_t)addr, size, (size_t)addr,
		    (size_t)bt->bt_start, (size_t)bt_end(bt));
	}
	kmem_panic("%s(arena '%s', %#zx, %#zx): %#zx is not allocated: it is "
		   "outside every span",
	    fn, vm->vm_name, (size_t)addr, size, (size_t)addr);
}

/* ---- deferred purge (section 7) ---- */

/*
 * A batch of a purge pass: at most PURGE_BATCH spans released and
 * PURGE_BATCH ranges purged, and no more ranges once PURGE_BATCH_BYTES
 * are in it (a range larger than that goes alone).  The bytes bound what
 * a request that needs a range under purge waits for: madvise(2) of
 * resident memory took 270 ns a page on the 2-CPU development VM, so
 * 4 MiB is about 0.3 ms.  The lock is dropped once a batch.  Spans stop
 * at PURGE_BATCH_SPAN_BYTES (one larger goes alone -- but a merged one,
 * in a pass that a free or the tick runs or one with a budget, goes back
 * that many bytes at a time: vmem_span_detach_head).
 */
#define PURGE_BATCH	  32
#define PURGE_BATCH_BYTES ((vmem_size_t)4 << 20)
/*
 * And no more spans once this many of their bytes are in it: what
 * PURGE_BATCH spans of kva's least import (1 MiB) came to before spans
 * merged -- munmap(2) of 32 MiB resident, about 2 ms on that VM.
 */
#define PURGE_BATCH_SPAN_BYTES ((vmem_size_t)32 << 20)
/*
 * Batches a pass started by a free makes before it leaves the rest to the
 * next free: the thread whose free found the pass due pays for one
 * batch's system calls, not for the whole pass (bench_purge "delay": 27
 * ms of madvise for 768 MiB in one free before).
 */
#define PURGE_FREE_BATCHES 1
/*
 * A pass is due early, before the delay is up, once PURGE_BURST bytes
 * were freed since the last one and the arena holds more free bytes than
 * busy (vmem_purge_due): a program that has just freed most of what it
 * had (the frag cell's "free everything", the idle cell's burst) gives
 * the earlier epochs' dirty pages back while it frees, one batch a free,
 * instead of holding them for a delay after its last call -- jemalloc's
 * RSS right after the frag cell's was 23 % below kmem's (288 against 377
 * MB, bench_malloc, 2026-12-08).  A program that
 * keeps most of its memory busy (blocks replaced at random, the large
 * cell) never meets the second test, and reuses its dirty pages as
 * before.
 */
#define PURGE_BURST ((vmem_size_t)64 << 20)

struct purge_range {
	bt_t *pr_bt; /* BT_TYPE_PURGING while the lock is dropped */
	vmem_addr_t pr_addr;
	vmem_size_t pr_size;
};

/*
 * Free segment "into" absorbs free segment "from": dirty if either was,
 * with the older epoch -- so that frees next to a dirty range, which
 * merge with it, cannot keep putting its purge off.
 */
static inline void
bt_merge_dirty(bt_t *into, const bt_t *from)
{
	if (!(from->bt_flags & BT_F_DIRTY))
		return;
	if (!(into->bt_flags & BT_F_DIRTY) || from->bt_epoch < into->bt_epoch)
		into->bt_epoch = from->bt_epoch;
	into->bt_flags |= BT_F_DIRTY;
}

/*
 * Segment bt (just freed, or back from a purge; on no freelist) joins its
 * FREE neighbours and goes on its freelist.  Returns the segment that
 * holds it now: bt, or the free segment before it.  Lock held, kept.
 */
static inline __attribute__((always_inline)) bt_t *
seg_coalesce(vmem_t *vm, bt_t *bt)
{
	bt_t *n = bt->bt_snext, *p = bt->bt_sprev;

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(
	    (bt->bt_type == BT_TYPE_BUSY || bt->bt_type == BT_TYPE_PURGING) &&
	    hash_lookup(vm, bt->bt_start) != bt);
	if (n->bt_type == BT_TYPE_FREE) {
		freelist_remove(vm, n);
		bt->bt_size += n->bt_size;
		bt_merge_dirty(bt, n);
		seg_remove(vm, n, bt);
		bt_put(vm, n);
	}
	if (p->bt_type == BT_TYPE_FREE) {
		freelist_remove(vm, p);
		p->bt_size += bt->bt_size;
		bt_merge_dirty(p, bt);
		seg_remove(vm, bt, p);
		bt_put(vm, bt);
		bt = p;
	}
	freelist_insert(vm, bt);
	return bt;
}

/* An imported span a pass gives back: wholly free, not freed this epoch. */
static bool
vmem_purge_span_due(const vmem_t *vm, const bt_t *bt, bool all)
{
	const bt_t *seg = bt->bt_snext;

	return bt->bt_type == BT_TYPE_SPAN && vm->vm_releasefn != NULL &&
	    vmem_span_wholly_free(bt) &&
	    (all || seg->bt_epoch != vm->vm_epoch ||
		!(seg->bt_flags & BT_F_DIRTY));
}

/*
 * Where a pass that stopped early at address a goes on: the segment that
 * holds a (a free merged with it since may start before a: from its
 * start, so that it is not passed over), or the first span after a, or
 * &vm_seg0 (none).  Found through the span list, then the span's
 * segments, which tile it.  Lock held.
 */
static bt_t *
vmem_seg_at(vmem_t *vm, vmem_addr_t a)
{
	bt_t *sp, *bt;

	for (sp = vm->vm_seg0.bt_fnext;
	     sp != &vm->vm_seg0 && sp->bt_start + (sp->bt_size - 1) < a;
	     sp = sp->bt_fnext)
		;
	if (sp == &vm->vm_seg0 || a <= sp->bt_start)
		return sp;
	for (bt = sp->bt_snext; bt->bt_start + (bt->bt_size - 1) < a;
	     bt = bt->bt_snext)
		KMEM_ASSERT(bt->bt_type != BT_TYPE_SPAN &&
		    bt->bt_type != BT_TYPE_STATIC);
	return bt;
}

/*
 * How much of a wholly free merged span a bounded pass (a free's, or one
 * with a budget) gives back in this batch: what is left of the batch's
 * span bytes (PURGE_BATCH_SPAN_BYTES) and of the budget, at least a
 * quantum.
 */
static vmem_size_t
vmem_purge_cap(
    const vmem_t *vm, vmem_size_t sbytes, vmem_size_t done, vmem_size_t budget)
{
	vmem_size_t cap = PURGE_BATCH_SPAN_BYTES - sbytes; /* sbytes < it */

	if (budget != 0 && budget - done < cap) /* done < budget */
		cap = budget - done;
	cap &= ~vm->vm_quantum_mask;
	return cap != 0 ? cap : vm->vm_quantum_mask + 1;
}

/*
 * Take the first "size" bytes of wholly free imported span "span" out of
 * the arena, the span and its segment keeping the rest (dirty as it
 * was); *ps says what to give back.  Only where spans merge
 * (kmemi_vmem_set_merge: the release function takes any piece of its
 * imports).  Lock held, kept; no tag leaves the segment list.
 */
static void
vmem_span_detach_head(
    vmem_t *vm, bt_t *span, vmem_size_t size, struct purge_span *ps)
{
	bt_t *seg = span->bt_snext;

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(vmem_span_wholly_free(span) && vm->vm_merge_spans &&
	    !(span->bt_flags & BT_F_XIMPORT) && size < span->bt_size &&
	    size != 0 && (size & vm->vm_quantum_mask) == 0);
	ps->ps_addr = span->bt_start;
	ps->ps_size = size;
	ps->ps_xfree = false;
	freelist_remove(vm, seg);
	seg->bt_start += size;
	seg->bt_size -= size;
	freelist_insert(vm, seg);
	span->bt_start += size;
	span->bt_size -= size;
	vm->vm_total -= size;
	vm->vm_imported -= size;
	vm->vm_nrelease++;
}

/*
 * Wait until the purge batch now in flight is back (vm_purge_gen moves;
 * the pass broadcasts after every batch).  vm_lock held on entry and on
 * return, released while waiting.
 */
static void
vmem_purge_wait_relock(vmem_t *vm)
{
	uint64_t gen = vm->vm_purge_gen;

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(vm->vm_purge_active);
	vm->vm_nwaiters++;
	while (vm->vm_purge_gen == gen)
		kmem_cond_wait(&vm->vm_cv, &vm->vm_lock);
	vm->vm_nwaiters--;
}

/*
 * Purge the dirty free ranges freed before the current epoch (all of them
 * with "all"), give back the imported spans wholly free since then, and
 * open a new epoch.  vm_lock held on entry and on return; dropped and
 * retaken once a batch, around the batch's system calls.
 *
 * Under the lock a batch is collected by walking the segment list: each
 * span due is detached (vmem_span_detach) and each range due is
 * taken off its freelist and marked BT_TYPE_PURGING.  A PURGING range is
 * neither free nor busy: no search finds it, no free merges with it
 * (coalescing joins FREE neighbours only), its span cannot be released
 * (not wholly FREE), and no one but this pass changes it -- so it cannot
 * be handed out while its pages go, nor its tag go away.  Then, unlocked,
 * the spans are released and the ranges purged; relocked, each range
 * becomes FREE and clean and joins its neighbours (a neighbour freed
 * meanwhile is dirty and keeps the merge dirty: purged again later,
 * harmless).  The walk goes on from the segment that now holds the last
 * range (alive: we hold the lock), or, for a batch of spans only, from
 * where it stopped if no tag left the segment list meanwhile
 * (vm_seg_gen), else from the start: a pass is idempotent, what it did is
 * not due again.  One pass at a time (vm_purge_active).
 *
 * With maxbatch (a pass a free started: PURGE_FREE_BATCHES), the pass
 * stops after that many batches and leaves the rest to the next free
 * (vm_purge_more), which goes on from the address where it stopped
 * (vmem_seg_at) -- not from a tag, which may be gone by then -- in the
 * same epoch: what was due is still due, what was freed since is not.
 * The epoch advances when a walk reaches the end.  An "all" pass (or a
 * reap's) walks everything and ends a pass left unfinished.
 *
 * With a budget (an arena about to import that many bytes: section 7),
 * the "all" pass stops once it has purged, or released in spans, that
 * many dirty bytes, in address order: the memory held stays what it was
 * rather than grow by the import, and the rest of the dirty ranges stay
 * reusable without a page fault.  It leaves the clock, the epoch and a
 * free's unfinished pass alone, and takes what it gave back off
 * vm_freed_dirty.
 */
static void
vmem_purge_pass_relock(vmem_t *vm, bool all, uint64_t now,
    unsigned int maxbatch, vmem_size_t budget)
{
	struct purge_span rel[PURGE_BATCH];
	struct purge_range pur[PURGE_BATCH];
	unsigned int nrel, npur, i, nbatch = 0;
	vmem_size_t bytes, sbytes, fit, cap, done = 0;
	bool more = vm->vm_purge_more, bounded = maxbatch != 0 || budget != 0;
	bt_t *bt, *next, *last;
	uint64_t gen;

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(!vm->vm_purge_active);
	KMEM_ASSERT(budget == 0 || (all && maxbatch == 0));
	vm->vm_purge_active = true;
	if (vm->vm_purge_more && !all) {
		bt = vmem_seg_at(vm, vm->vm_purge_from);
	} else {
		if (budget == 0) {
			vm->vm_purge_last = now;
			vm->vm_freed_dirty = 0;
		}
		bt = vm->vm_seg0.bt_snext;
	}
	vm->vm_purge_more = false;
	for (;;) {
		nrel = npur = 0;
		bytes = sbytes = fit = 0;
		for (; bt != &vm->vm_seg0 && nrel < PURGE_BATCH &&
		     npur < PURGE_BATCH && bytes < PURGE_BATCH_BYTES &&
		     sbytes < PURGE_BATCH_SPAN_BYTES &&
		     (budget == 0 || done < budget);
		     bt = next) {
			next = bt->bt_snext;
			if (vmem_purge_span_due(vm, bt, all)) {
				if (bounded && vm->vm_merge_spans &&
				    bt->bt_size > (cap = vmem_purge_cap(vm,
						       sbytes, done, budget))) {
					/* The rest of it in the next batch. */
					if (bt->bt_snext->bt_flags & BT_F_DIRTY)
						done += cap;
					sbytes += cap;
					vmem_span_detach_head(
					    vm, bt, cap, &rel[nrel++]);
					next = bt;
					continue;
				}
				next = bt->bt_snext->bt_snext;
				if (bt->bt_snext->bt_flags & BT_F_DIRTY)
					done += bt->bt_size;
				sbytes += bt->bt_size;
				vmem_span_detach(vm, bt, &rel[nrel++]);
				continue;
			}
			if (bt->bt_type != BT_TYPE_FREE ||
			    !(bt->bt_flags & BT_F_DIRTY) ||
			    (!all && bt->bt_epoch == vm->vm_epoch))
				continue;
			freelist_remove(vm, bt);
			bt->bt_type = BT_TYPE_PURGING;
			pur[npur].pr_bt = bt;
			pur[npur].pr_addr = bt->bt_start;
			pur[npur].pr_size = bt->bt_size;
			npur++;
			bytes += bt->bt_size;
			done += bt->bt_size;
			if (bt->bt_size > fit)
				fit = bt->bt_size;
		}
		if (nrel == 0 && npur == 0)
			break; /* the walk reached the end, or the budget */
		vm->vm_purge_fit = fit;
		gen = vm->vm_seg_gen;
		kmem_mutex_exit(&vm->vm_lock);
		for (i = 0; i < nrel; i++)
			vmem_release_fn(vm, rel[i].ps_addr, rel[i].ps_size,
			    rel[i].ps_xfree);
		for (i = 0; i < npur; i++)
			if (vm->vm_purgefn_vm != NULL)
				vm->vm_purgefn_vm(
				    vm, pur[i].pr_addr, pur[i].pr_size);
			else
				vm->vm_purgefn(pur[i].pr_addr, pur[i].pr_size);
		kmem_mutex_enter(&vm->vm_lock);
		last = NULL;
		for (i = 0; i < npur; i++) {
			KMEM_ASSERT(pur[i].pr_bt->bt_type == BT_TYPE_PURGING);
			pur[i].pr_bt->bt_flags &= (uint8_t)~BT_F_DIRTY;
			last = seg_coalesce(vm, pur[i].pr_bt);
		}
		vm->vm_purge_fit = 0;
		vm->vm_purge_gen++;
		if (vm->vm_nwaiters != 0)
			kmem_cond_broadcast(&vm->vm_cv);
		if (last != NULL)
			bt = last;
		else if (vm->vm_seg_gen != gen)
			bt = vm->vm_seg0.bt_snext;
		if (++nbatch == maxbatch && bt != &vm->vm_seg0) {
			vm->vm_purge_more = true;
			vm->vm_purge_from = bt->bt_start;
			vm->vm_purge_active = false;
			if (vm->vm_nwaiters != 0)
				kmem_cond_broadcast(&vm->vm_cv);
			return;
		}
	}
	if (budget != 0) {
		vm->vm_freed_dirty -=
		    done < vm->vm_freed_dirty ? done : vm->vm_freed_dirty;
		vm->vm_purge_more = more;
	} else {
		vm->vm_epoch++;
	}
	vm->vm_purge_active = false;
	vm->vm_purge_gen++;
	if (vm->vm_nwaiters != 0)
		kmem_cond_broadcast(&vm->vm_cv);
}

/*
 * After fork(2), in the child: a pass the parent was running is gone with
 * its thread; its ranges become FREE again, still dirty (whether their
 * pages went is unknown).  Its detached spans stay mapped and forgotten,
 * as they would have been released.  Lock held (the fork handlers').
 */
static void
vmem_purge_abandon(vmem_t *vm)
{
	bt_t *bt;

	for (bt = vm->vm_seg0.bt_snext; bt != &vm->vm_seg0; bt = bt->bt_snext) {
		if (bt->bt_type == BT_TYPE_PURGING)
			bt = seg_coalesce(vm, bt);
	}
	vm->vm_purge_fit = 0;
	vm->vm_purge_active = false;
}

/*
 * A free's or the tick's pass is due (vm_lock held): section 7.  Due
 * early after a burst (PURGE_BURST), the pass is of everything freed so
 * far: the epoch advances first, so that the ranges freed since the last
 * pass are "earlier" too.  So true means a pass starts: every caller
 * tests it last, with nothing after it that could decline.
 */
static inline bool
vmem_purge_due(vmem_t *vm, uint64_t now)
{
	if (vm->vm_purge_more ||
	    now - vm->vm_purge_last >= vm->vm_purge_delay_ns)
		return true;
	if (vm->vm_freed_dirty >= PURGE_BURST &&
	    vm->vm_total - vm->vm_inuse > vm->vm_inuse) {
		vm->vm_epoch++;
		return true;
	}
	return false;
}

void
kmemi_vmem_purge(vmem_t *vm, bool all)
{
	uint64_t now;

	kmem_mutex_enter(&vm->vm_lock);
	if (vm->vm_purgefn == NULL) {
		kmem_mutex_exit(&vm->vm_lock);
		return;
	}
	/* "all" has given everything back when it returns: its own pass. */
	while (all && vm->vm_purge_active)
		vmem_purge_wait_relock(vm);
	now = kmem_prim_clock_ns();
	if (!vm->vm_purge_active && (all || vmem_purge_due(vm, now)))
		vmem_purge_pass_relock(vm, all, now, 0, 0);
	kmem_mutex_exit(&vm->vm_lock);
}

bool
kmemi_vmem_purge_step(vmem_t *vm)
{
	uint64_t now;
	bool more;

	kmem_mutex_enter(&vm->vm_lock);
	if (vm->vm_purgefn != NULL && !vm->vm_purge_active) {
		now = kmem_prim_clock_ns();
		if (vmem_purge_due(vm, now))
			vmem_purge_pass_relock(
			    vm, false, now, PURGE_FREE_BATCHES, 0);
	}
	more = vm->vm_purge_more;
	kmem_mutex_exit(&vm->vm_lock);
	return more;
}

uint64_t
kmemi_vmem_purge_batches(vmem_t *vm)
{
	uint64_t n;

	kmem_mutex_enter(&vm->vm_lock);
	n = vm->vm_purge_gen;
	kmem_mutex_exit(&vm->vm_lock);
	return n;
}

void
kmemi_vmem_purge_hold(vmem_t *vm, bool hold)
{
	kmem_mutex_enter(&vm->vm_lock);
	if (hold) {
		vm->vm_purge_hold++;
	} else {
		KMEM_ASSERT(vm->vm_purge_hold > 0);
		vm->vm_purge_hold--;
	}
	kmem_mutex_exit(&vm->vm_lock);
}

/*
 * Free busy tag bt (already out of the hash).  vm_lock held on entry,
 * released on return.
 */
static void
vmem_free_bt_unlock(vmem_t *vm, bt_t *bt)
{
	uint64_t now;

	VMEM_ASSERT_LOCKED(vm);
	KMEM_ASSERT(bt->bt_type == BT_TYPE_BUSY);
	vm->vm_nfreed++;
	if (vm->vm_purgefn != NULL) {
		bt->bt_flags = BT_F_DIRTY;
		bt->bt_epoch = vm->vm_epoch;
		vm->vm_freed_dirty += bt->bt_size;
	}
	bt = seg_coalesce(vm, bt);
	if (vm->vm_purgefn != NULL) {
		now = kmem_prim_clock_ns();
		if (!vm->vm_purge_active && vm->vm_purge_hold == 0 &&
		    vmem_purge_due(vm, now))
			vmem_purge_pass_relock(
			    vm, false, now, PURGE_FREE_BATCHES, 0);
	} else if (vm->vm_releasefn != NULL &&
	    vmem_span_wholly_free(bt->bt_sprev)) {
		vmem_span_release_unlock(vm, bt->bt_sprev);
		return;
	}
	vmem_exit_unlock(vm, true);
}

static void
vmem_xfree_common(
    vmem_t *vm, const char *fn, vmem_addr_t addr, vmem_size_t size)
{
	vmem_size_t rsize;
	bt_t *bt;

	kmem_mutex_enter(&vm->vm_lock);
	VMEM_CHECK_HOOK(vm);
	bt = hash_lookup(vm, addr);
	if (kmem_unlikely(bt == NULL))
		vmem_bad_free(vm, fn, addr, size);
	if (kmem_unlikely(bt->bt_flags & BT_F_QCPAGE))
		vmem_qc_misfree(vm, fn, addr, size);
	rsize = vmem_roundup(vm, size);
	if (kmem_unlikely(rsize != bt->bt_size || size == 0))
		kmem_panic("%s(arena '%s', %#zx, %#zx): size %#zx != allocated "
			   "size %#zx",
		    fn, vm->vm_name, (size_t)addr, size, rsize, bt->bt_size);
	hash_remove(vm, addr);
	vmem_free_bt_unlock(vm, bt);
}

/*
 * Resize in place (kmemi_vmem_resize, pool_impl.h; realloc of a large
 * block, issue 12).  Growing takes the head of the free segment right
 * after the busy one -- in the same span, since a span's segments tile it
 * and a marker ends it -- shortening it (or removing it if taken whole);
 * shrinking makes the tail a segment freed the way vmem_free frees one
 * (dirty in deferred mode, coalesced with a free neighbour).  The hash
 * is keyed by the start, which does not move; vm_inuse follows the size.
 */
int
kmemi_vmem_resize(
    vmem_t *vm, vmem_addr_t addr, vmem_size_t oldsize, vmem_size_t newsize)
{
	vmem_size_t rold = vmem_roundup(vm, oldsize);
	vmem_size_t rnew = vmem_roundup(vm, newsize);
	vmem_size_t delta;
	bt_t *bt, *n;

	KMEM_ASSERT(rold > vm->vm_qcache_max && rnew > vm->vm_qcache_max);
	kmem_mutex_enter(&vm->vm_lock);
	VMEM_CHECK_HOOK(vm);
	bt = hash_lookup(vm, addr);
	if (kmem_unlikely(bt == NULL))
		vmem_bad_free(vm, "kmemi_vmem_resize", addr, oldsize);
	if (kmem_unlikely(rold != bt->bt_size || oldsize == 0 ||
		(bt->bt_flags & BT_F_QCPAGE)))
		kmem_panic("kmemi_vmem_resize(arena '%s', %#zx, %#zx): size "
			   "%#zx != allocated size %#zx",
		    vm->vm_name, (size_t)addr, oldsize, rold, bt->bt_size);
	if (rnew == rold) {
		kmem_mutex_exit(&vm->vm_lock);
		return 0;
	}
	if (rnew > rold) {
		delta = rnew - rold;
		n = bt->bt_snext;
		if (n->bt_type != BT_TYPE_FREE || n->bt_size < delta) {
			kmem_mutex_exit(&vm->vm_lock);
			return ENOMEM;
		}
		KMEM_ASSERT(n->bt_start == addr + rold);
		freelist_remove(vm, n);
		if (n->bt_size == delta) {
			seg_remove(vm, n, bt);
			bt_put(vm, n);
		} else {
			n->bt_start += delta;
			n->bt_size -= delta;
			freelist_insert(vm, n);
		}
		bt->bt_size = rnew;
		vm->vm_inuse += delta;
		vmem_exit_unlock(vm, false);
		return 0;
	}
	/* Shrink: the tail becomes a busy tag, freed as vmem_free frees. */
	if (bt_refill(vm, BT_NEED_ALLOC) != 0) {
		kmem_mutex_exit(&vm->vm_lock);
		return ENOMEM;
	}
	delta = rold - rnew;
	n = bt_get(vm);
	n->bt_start = addr + rnew;
	n->bt_size = delta;
	n->bt_type = BT_TYPE_BUSY;
	n->bt_flags = 0;
	seg_insert_after(bt, n);
	bt->bt_size = rnew;
	vm->vm_inuse -= delta;
	vm->vm_nfreed--; /* a shrink, not a free: the count stays */
	vmem_free_bt_unlock(vm, n);
	return 0;
}

void
vmem_xfree(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	vmem_xfree_common(vm, "vmem_xfree", addr, size);
}

void
vmem_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size)
{
	vmem_size_t rsize = vmem_roundup(vm, size);

	if (rsize <= vm->vm_qcache_max && size != 0) {
		/* Checked when it leaves the cache (pool_put), see vmem(3). */
		pool_cache_put(
		    vm->vm_qcache[(rsize >> vm->vm_quantum_shift) - 1],
		    (void *)addr);
		return;
	}
	vmem_xfree_common(vm, "vmem_free", addr, size);
}

void
vmem_xfreeall(vmem_t *vm)
{
	bt_t *bt;

	if (vm->vm_qcache_max != 0)
		kmem_panic(
		    "vmem_xfreeall(arena '%s'): arena has quantum caches",
		    vm->vm_name);
	kmem_mutex_enter(&vm->vm_lock);
	for (;;) {
		for (bt = vm->vm_seg0.bt_snext; bt != &vm->vm_seg0;
		     bt = bt->bt_snext) {
			if (bt->bt_type == BT_TYPE_BUSY)
				break;
		}
		if (bt == &vm->vm_seg0)
			break;
		hash_remove(vm, bt->bt_start);
		vmem_free_bt_unlock(vm, bt);
		kmem_mutex_enter(&vm->vm_lock);
	}
	kmem_mutex_exit(&vm->vm_lock);
}

/* ---- arenas ---- */

static vmem_t *
vmem_create_common(const char *name, vmem_addr_t base, vmem_size_t size,
    vmem_size_t quantum, vmem_import_t *importfn, vmem_ximport_t *ximportfn,
    vmem_release_t *releasefn, vmem_t *source, vmem_size_t qcache_max,
    vm_flag_t flags, int ipl)
{
	struct kmem_domain *d = kmemi_dom_cur();
	size_t ps, bytes;
	vmem_t *vm;
	void *mem;
	int err;

	kmem_options_init();
	if (!kmem_powerof2(quantum) ||
	    (size != 0 &&
		(((base | size) & (quantum - 1)) != 0 ||
		    size - 1 > VMEM_ADDR_MAX - base))) {
		errno = EINVAL;
		return NULL;
	}
	ps = kmem_prim_page_size();
	bytes = kmem_align_up(sizeof(*vm), ps);
	if ((err = kmemi_meta_map(d, bytes, &mem)) != 0) {
		errno = err;
		return NULL;
	}
	vm = mem;
	vm->vm_mapsize = bytes;
	vm->vm_dom = d;
	kmem_mutex_init(&vm->vm_lock);
	kmem_cond_init(&vm->vm_cv);
	if (name == NULL)
		name = "(anon)";
	kmem_snprintf(vm->vm_name, sizeof vm->vm_name, "%s", name);
	vm->vm_flags = flags;
	vm->vm_quantum_mask = quantum - 1;
	vm->vm_quantum_shift = kmem_ilog2(quantum);
	if (qcache_max > VMEM_QCACHE_IDX_MAX * quantum)
		qcache_max = VMEM_QCACHE_IDX_MAX * quantum;
	vm->vm_qcache_max = qcache_max & ~(quantum - 1);
	vm->vm_importfn = importfn;
	vm->vm_ximportfn = ximportfn;
	vm->vm_releasefn = releasefn;
	vm->vm_source = source;
	vm->vm_min_import = kmem_align_up(d->kd_opts.vmem_min_import, quantum);
	vm->vm_seg0.bt_snext = vm->vm_seg0.bt_sprev = &vm->vm_seg0;
	vm->vm_seg0.bt_fnext = vm->vm_seg0.bt_fprev = &vm->vm_seg0;
	vm->vm_seg0.bt_type = BT_TYPE_SENTINEL;
	vm->vm_hashlist = vm->vm_hash0;
	vm->vm_hashmask = VMEM_HASH_INIT - 1;
	if (size != 0) {
		kmem_mutex_enter(&vm->vm_lock);
		err = bt_refill(vm, BT_NEED_SPAN);
		if (err == 0)
			vmem_span_add(vm, base, size, BT_TYPE_STATIC);
		kmem_mutex_exit(&vm->vm_lock);
		if (err != 0) {
			vmem_destroy(vm);
			errno = ENOMEM;
			return NULL;
		}
	}
	if (qc_init(vm, ipl) != 0) {
		vmem_destroy(vm);
		errno = ENOMEM;
		return NULL;
	}
	kmem_mutex_enter(VMEM_LIST_LOCK(d));
	vm->vm_next = VMEM_LIST(d);
	if (VMEM_LIST(d) != NULL)
		VMEM_LIST(d)->vm_pprev = &vm->vm_next;
	vm->vm_pprev = &VMEM_LIST(d);
	VMEM_LIST(d) = vm;
	kmem_mutex_exit(VMEM_LIST_LOCK(d));
	return vm;
}

vmem_t *
vmem_create(const char *name, vmem_addr_t base, vmem_size_t size,
    vmem_size_t quantum, vmem_import_t *importfn, vmem_release_t *releasefn,
    vmem_t *source, vmem_size_t qcache_max, vm_flag_t flags, int ipl)
{
	return vmem_create_common(name, base, size, quantum, importfn, NULL,
	    releasefn, source, qcache_max, flags & ~VM_XIMPORT, ipl);
}

vmem_t *
vmem_xcreate(const char *name, vmem_addr_t base, vmem_size_t size,
    vmem_size_t quantum, vmem_ximport_t *importfn, vmem_release_t *releasefn,
    vmem_t *source, vmem_size_t qcache_max, vm_flag_t flags, int ipl)
{
	return vmem_create_common(name, base, size, quantum, NULL, importfn,
	    releasefn, source, qcache_max, flags | VM_XIMPORT, ipl);
}

void
vmem_destroy(vmem_t *vm)
{
	bt_t *bt, *next;

	struct kmem_domain *d = vm->vm_dom;

	kmemi_dom_op(d, +1); /* until its memory is back (kmemi_dom_busy) */
	qc_destroy(vm);
	kmem_mutex_enter(VMEM_LIST_LOCK(vm->vm_dom));
	if (vm->vm_pprev != NULL) { /* NULL: create failed before listing */
		*vm->vm_pprev = vm->vm_next;
		if (vm->vm_next != NULL)
			vm->vm_next->vm_pprev = vm->vm_pprev;
	}
	kmem_mutex_exit(VMEM_LIST_LOCK(vm->vm_dom));
	if (vm->vm_nbusy != 0)
		kmem_warn("vmem_destroy(arena '%s'): leaked %#zx bytes in %llu "
			  "segments",
		    vm->vm_name, vm->vm_inuse,
		    (unsigned long long)vm->vm_nbusy);
	/* Give imported spans back, then every tag to the supply. */
	for (bt = vm->vm_seg0.bt_snext; bt != &vm->vm_seg0; bt = next) {
		next = bt->bt_snext;
		if (bt->bt_type == BT_TYPE_SPAN)
			vmem_release_fn(vm, bt->bt_start, bt->bt_size,
			    (bt->bt_flags & BT_F_XIMPORT) != 0);
	}
	kmem_mutex_enter(&vm->vm_dom->kd_bt_lock);
	for (bt = vm->vm_seg0.bt_snext; bt != &vm->vm_seg0; bt = next) {
		next = bt->bt_snext;
		bt_supply_push(vm->vm_dom, bt);
	}
	while ((bt = vm->vm_btfree) != NULL) {
		vm->vm_btfree = bt->bt_fnext;
		bt_supply_push(vm->vm_dom, bt);
	}
	kmem_mutex_exit(&vm->vm_dom->kd_bt_lock);
	if (vm->vm_hashlist != vm->vm_hash0)
		kmemi_meta_unmap(vm->vm_dom, vm->vm_hashlist,
		    kmem_align_up((vm->vm_hashmask + 1) * sizeof(bt_t *),
			kmem_prim_page_size()));
	kmem_cond_destroy(&vm->vm_cv);
	kmem_mutex_destroy(&vm->vm_lock);
	kmemi_meta_unmap(d, vm, vm->vm_mapsize);
	kmemi_dom_op(d, -1);
}

int
vmem_add(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, vm_flag_t flags)
{
	const bt_t *span;
	unsigned tries = 0;

	if (size == 0 || ((addr | size) & vm->vm_quantum_mask) != 0 ||
	    size - 1 > VMEM_ADDR_MAX - addr)
		kmem_panic(
		    "vmem_add(arena '%s', %#zx, %#zx): bad span: size 0, "
		    "not quantum (%#zx) multiples, or wraps",
		    vm->vm_name, (size_t)addr, size, vm->vm_quantum_mask + 1);
	kmem_mutex_enter(&vm->vm_lock);
	while (bt_refill(vm, BT_NEED_SPAN) != 0) {
		if (!(flags & VM_SLEEP)) {
			kmem_mutex_exit(&vm->vm_lock);
			return ENOMEM;
		}
		vmem_tags_wait_relock(vm, "vmem_add", size, &tries);
	}
	for (span = vm->vm_seg0.bt_fnext; span != &vm->vm_seg0;
	     span = span->bt_fnext) {
		if (addr <= bt_end(span) && span->bt_start <= addr + size - 1)
			kmem_panic("vmem_add(arena '%s', %#zx, %#zx): overlaps "
				   "span [%#zx, %#zx]",
			    vm->vm_name, (size_t)addr, size,
			    (size_t)span->bt_start, (size_t)bt_end(span));
	}
	/*
	 * The arena's byte counts are vmem_size_t: spans that would cover
	 * every one of the 2^64 addresses (the only way the total
	 * overflows, as spans never overlap) are refused.  Before, the
	 * total and, once all was allocated, the bytes in use wrapped to 0,
	 * and the next free failed an assertion (vmem_fuzz found it).
	 */
	if (size > VMEM_ADDR_MAX - vm->vm_total) {
		kmem_mutex_exit(&vm->vm_lock);
		return ENOMEM;
	}
	vmem_span_add(vm, addr, size, BT_TYPE_STATIC);
	if (vm->vm_nwaiters != 0)
		kmem_cond_broadcast(&vm->vm_cv);
	kmem_mutex_exit(&vm->vm_lock);
	return 0;
}

vmem_size_t
vmem_size(vmem_t *vm, int typemask)
{
	vmem_size_t r;

	kmem_mutex_enter(&vm->vm_lock);
	switch (typemask) {
	case VMEM_ALLOC:
		r = vm->vm_inuse;
		break;
	case VMEM_FREE:
		r = vm->vm_total - vm->vm_inuse;
		break;
	case VMEM_ALLOC | VMEM_FREE:
		r = vm->vm_total;
		break;
	default:
		kmem_panic("vmem_size(arena '%s', %#x): bad typemask",
		    vm->vm_name, (unsigned)typemask);
	}
	kmem_mutex_exit(&vm->vm_lock);
	return r;
}

vmem_size_t
vmem_roundup_size(vmem_t *vm, vmem_size_t size)
{
	return vmem_roundup(vm, size);
}

int
kmem_vmem_set_min_import(vmem_t *vm, vmem_size_t size)
{
	if (vm->vm_importfn == NULL && vm->vm_ximportfn == NULL)
		return EINVAL;
	kmem_mutex_enter(&vm->vm_lock);
	vm->vm_min_import = vmem_roundup(vm, size);
	kmem_mutex_exit(&vm->vm_lock);
	return 0;
}

int
kmem_vmem_stats(const vmem_t *cvm, struct kmem_vmem_stats *st)
{
	vmem_t *vm = (vmem_t *)(uintptr_t)cvm;

	memset(st, 0, sizeof(*st));
	st->vs_size = sizeof(*st);
	kmem_mutex_enter(&vm->vm_lock);
	memcpy(st->vs_name, vm->vm_name, sizeof st->vs_name);
	st->vs_quantum = vm->vm_quantum_mask + 1;
	st->vs_inuse = vm->vm_inuse;
	st->vs_imported = vm->vm_imported;
	st->vs_total = vm->vm_total;
	st->vs_alloc = vm->vm_nalloc;
	st->vs_free = vm->vm_nfreed;
	st->vs_fail = vm->vm_nfail;
	st->vs_wait = vm->vm_nwait;
	st->vs_import = vm->vm_nimport;
	st->vs_release = vm->vm_nrelease;
	st->vs_nbusy = vm->vm_nbusy;
	st->vs_nfree = vm->vm_nfree;
	st->vs_hashsize = vm->vm_hashmask + 1;
	kmem_mutex_exit(&vm->vm_lock);
	return 0;
}

/* ---- printing ---- */

/*
 * NetBSD's ddb output (subr_vmem.c): vmem_dump prints a header line,
 * every tag of the segment list, then each non-empty freelist and its
 * tags; a tag is "\t<tag address>: <start>, <size>, <type>(<name>)", start
 * and size in decimal, BT_TYPE_* being NetBSD's numbers.  PURGING (kmem's
 * own, a free segment whose pages are being given back) is type 5.
 */
static const char *
bt_type_string(const bt_t *bt)
{
	switch (bt->bt_type) {
	case BT_TYPE_SPAN:
		return "span";
	case BT_TYPE_STATIC:
		return "static span";
	case BT_TYPE_FREE:
		return "free";
	case BT_TYPE_BUSY:
		return "busy";
	case BT_TYPE_PURGING:
		return "purging";
	default:
		return "BOGUS";
	}
}

static void
bt_dump(const bt_t *bt, vmem_printfn_t *pr)
{
	kmem_pr(pr, "\t%p: %llu, %llu, %d(%s)\n", (const void *)bt,
	    (unsigned long long)bt->bt_start, (unsigned long long)bt->bt_size,
	    (int)bt->bt_type, bt_type_string(bt));
}

static void
vmem_dump_locked(const vmem_t *vm, vmem_printfn_t *pr)
{
	const bt_t *bt;
	unsigned n;

	kmem_pr(pr, "vmem %p '%s'\n", (const void *)vm, vm->vm_name);
	for (bt = vm->vm_seg0.bt_snext; bt != &vm->vm_seg0; bt = bt->bt_snext)
		bt_dump(bt, pr);
	for (n = 0; n < (unsigned)VMEM_MAXORDER; n++) {
		if (vm->vm_freelist[n] == NULL)
			continue;
		kmem_pr(pr, "freelist[%u]\n", n);
		for (bt = vm->vm_freelist[n]; bt != NULL; bt = bt->bt_fnext)
			bt_dump(bt, pr);
	}
}

void
vmem_dump(const vmem_t *cvm, vmem_printfn_t *pr)
{
	vmem_t *vm = (vmem_t *)(uintptr_t)cvm;

	kmem_mutex_enter(&vm->vm_lock);
	vmem_dump_locked(vm, pr);
	kmem_mutex_exit(&vm->vm_lock);
}

/* vmem_print's search: the arena at "arg" (a uintptr_t *), dumped. */
struct vmem_print_arg {
	uintptr_t addr;
	vmem_printfn_t *pr;
};

static int
vmem_print_one(vmem_t *vm, void *arg)
{
	struct vmem_print_arg *a = arg;

	if ((uintptr_t)vm != a->addr)
		return 0;
	vmem_dump(vm, a->pr);
	return 1;
}

void
vmem_print(uintptr_t addr, const char *modif, vmem_printfn_t *pr)
{
	struct vmem_print_arg a = {addr, pr};

	(void)modif;
	if (kmemi_vmem_foreach(vmem_print_one, &a) == 0)
		kmem_pr(pr, "%p is not a vmem arena\n", (void *)addr);
}

static int
vmem_printall_one(vmem_t *vm, void *arg)
{
	vmem_dump(vm, (vmem_printfn_t *)arg);
	return 0;
}

void
vmem_printall(const char *modif, vmem_printfn_t *pr)
{
	(void)modif;
	kmemi_vmem_foreach(vmem_printall_one, (void *)pr);
}

/*
 * vmem_whatis: as NetBSD's, a line for every arena with a segment (not a
 * span marker) that holds the address -- an imported range shows in the
 * arena and in its source -- "ADDR is START+OFF in VMEM 'name' (allocated
 * or free)", OFF in decimal.
 */
struct vmem_whatis_arg {
	uintptr_t addr;
	vmem_printfn_t *pr;
	int found;
};

static int
vmem_whatis_one(vmem_t *vm, void *arg)
{
	struct vmem_whatis_arg *a = arg;
	uintptr_t addr = a->addr;
	const bt_t *bt;

	kmem_mutex_enter(&vm->vm_lock);
	for (bt = vm->vm_seg0.bt_snext; bt != &vm->vm_seg0; bt = bt->bt_snext) {
		if ((bt->bt_type != BT_TYPE_BUSY &&
			bt->bt_type != BT_TYPE_FREE &&
			bt->bt_type != BT_TYPE_PURGING) ||
		    addr < bt->bt_start || addr > bt_end(bt))
			continue;
		kmem_pr(a->pr, "%p is %p+%zu in VMEM '%s' (%s)\n", (void *)addr,
		    (void *)(uintptr_t)bt->bt_start,
		    (size_t)(addr - bt->bt_start), vm->vm_name,
		    bt->bt_type == BT_TYPE_BUSY ? "allocated" : "free");
		a->found = 1;
		break;
	}
	kmem_mutex_exit(&vm->vm_lock);
	return 0;
}

int
vmem_whatis(uintptr_t addr, vmem_printfn_t *pr)
{
	struct vmem_whatis_arg a = {addr, pr, 0};

	kmemi_vmem_foreach(vmem_whatis_one, &a);
	return a.found ? 0 : -1;
}

/*
 * fork(2): every domain's arena list lock, its arenas' locks, its tag
 * supply's lock (domains never take each other's locks: any order of
 * domains is deadlock-free).
 */
static int
vmem_fork_dom(struct kmem_domain *d, void *arg)
{
	int phase = *(int *)arg;
	vmem_t *vm;

	if (phase == KMEMI_FORK_PREPARE) {
		kmem_mutex_enter(VMEM_LIST_LOCK(d));
		for (vm = VMEM_LIST(d); vm != NULL; vm = vm->vm_next)
			kmem_mutex_enter(&vm->vm_lock);
		kmem_mutex_enter(&d->kd_bt_lock);
		return 0;
	}
	kmem_mutex_exit(&d->kd_bt_lock);
	for (vm = VMEM_LIST(d); vm != NULL; vm = vm->vm_next) {
		if (phase == KMEMI_FORK_CHILD) {
			/* The waiters were other threads: gone. */
			vm->vm_nwaiters = 0;
			kmem_cond_init(&vm->vm_cv);
			/* So was a pass with the lock dropped. */
			if (vm->vm_purge_active)
				vmem_purge_abandon(vm);
		}
		kmem_mutex_exit(&vm->vm_lock);
	}
	kmem_mutex_exit(VMEM_LIST_LOCK(d));
	return 0;
}

void
kmemi_vmem_fork(int phase)
{
	kmemi_dom_foreach(vmem_fork_dom, &phase);
}

pool_cache_t
kmemi_vmem_qcache(vmem_t *vm, vmem_size_t size)
{
	vmem_size_t rsize = vmem_roundup(vm, size);

	if (size == 0 || rsize > vm->vm_qcache_max)
		return NULL;
	return vm->vm_qcache[(rsize >> vm->vm_quantum_shift) - 1];
}

struct vmem_foreach_arg {
	int (*fn)(vmem_t *, void *);
	void *arg;
};

static int
vmem_foreach_dom(struct kmem_domain *d, void *arg)
{
	struct vmem_foreach_arg *a = arg;

	return kmemi_vmem_foreach_in(d, a->fn, a->arg);
}

/*
 * Call fn(vm, arg) for every arena of every domain, under the domain's
 * arena list lock; stop on non-zero.
 */
int
kmemi_vmem_foreach(int (*fn)(vmem_t *, void *), void *arg)
{
	struct vmem_foreach_arg a = {fn, arg};

	return kmemi_dom_foreach(vmem_foreach_dom, &a);
}

/* Call fn(vm, arg) for every arena of domain d; stop on non-zero. */
int
kmemi_vmem_foreach_in(
    struct kmem_domain *d, int (*fn)(vmem_t *, void *), void *arg)
{
	vmem_t *vm;
	int rv = 0;

	kmem_mutex_enter(VMEM_LIST_LOCK(d));
	for (vm = VMEM_LIST(d); vm != NULL && rv == 0; vm = vm->vm_next)
		rv = fn(vm, arg);
	kmem_mutex_exit(VMEM_LIST_LOCK(d));
	return rv;
}

/*
 * Call fn(start, size, tag, arg) for every span of vm in address order,
 * tag being the span's boundary tag, under the arena lock (fn must not
 * call vmem); stop on non-zero.  For the tests of the metadata region.
 */
int
kmemi_vmem_spans(vmem_t *vm,
    int (*fn)(vmem_addr_t, vmem_size_t, const void *, void *), void *arg)
{
	const bt_t *span;
	int rv = 0;

	kmem_mutex_enter(&vm->vm_lock);
	for (span = vm->vm_seg0.bt_fnext; span != &vm->vm_seg0 && rv == 0;
	     span = span->bt_fnext)
		rv = fn(span->bt_start, span->bt_size, span, arg);
	kmem_mutex_exit(&vm->vm_lock);
	return rv;
}

void
kmemi_vmem_set_purge(
    vmem_t *vm, void (*fn)(vmem_addr_t, vmem_size_t), uint64_t delay_ns)
{
	kmem_mutex_enter(&vm->vm_lock);
	vm->vm_purgefn = fn;
	vm->vm_purge_delay_ns = delay_ns;
	vm->vm_purge_last = kmem_prim_clock_ns();
	kmem_mutex_exit(&vm->vm_lock);
}

void
kmemi_vmem_set_merge(vmem_t *vm)
{
	kmem_mutex_enter(&vm->vm_lock);
	vm->vm_merge_spans = true;
	kmem_mutex_exit(&vm->vm_lock);
}

/* Never called: marks an arena whose purge function is vm_purgefn_vm. */
static void
vmem_purge_by_vm(vmem_addr_t addr, vmem_size_t size)
{
	(void)addr;
	(void)size;
	KMEM_VERIFY(0);
}

void
kmemi_vmem_set_purge_src(vmem_t *vm,
    void (*fn)(vmem_t *, vmem_addr_t, vmem_size_t), uint64_t delay_ns)
{
	kmem_mutex_enter(&vm->vm_lock);
	vm->vm_purgefn_vm = fn;
	kmem_mutex_exit(&vm->vm_lock);
	kmemi_vmem_set_purge(vm, vmem_purge_by_vm, delay_ns);
}

void
kmem_vmem_print_stats(vmem_printfn_t *pr)
{
	kmem_stats_print(pr, KMEM_STATS_VMEM);
}

/* ---- consistency checks ---- */

/* On a freelist, seen by vmem_check_locked (set and cleared by it). */
#define BT_F_CHECK 0x80

#define VMEM_CHECK(vm, cond, ...)                                              \
	do {                                                                   \
		if (kmem_unlikely(!(cond)))                                    \
			kmemi_check_fail("kmem_vmem_check", "arena",           \
			    (vm)->vm_name, __VA_ARGS__);                       \
	} while (0)

/* The freelists and the freemap; marks every listed segment BT_F_CHECK. */
static void
vmem_check_freelists(vmem_t *vm)
{
	const vmem_size_t qmask = vm->vm_quantum_mask;
	uint64_t n = 0;
	unsigned int i;
	bt_t *bt, *prev;

	for (i = 0; i < (unsigned int)VMEM_MAXORDER; i++) {
		bool bit = (vm->vm_freemap >> i) & 1;

		VMEM_CHECK(vm, bit == (vm->vm_freelist[i] != NULL),
		    "freemap bit %u is %d but freelist %u is %s", i, bit, i,
		    vm->vm_freelist[i] != NULL ? "not empty" : "empty");
		prev = NULL;
		for (bt = vm->vm_freelist[i]; bt != NULL; bt = bt->bt_fnext) {
			VMEM_CHECK(vm, bt->bt_fprev == prev,
			    "freelist %u: the link back from the segment "
			    "after %#zx is wrong",
			    i, prev != NULL ? (size_t)prev->bt_start : 0);
			VMEM_CHECK(vm, bt->bt_type == BT_TYPE_FREE,
			    "freelist %u holds a %s tag [%#zx, +%#zx]", i,
			    bt_type_name(bt), (size_t)bt->bt_start,
			    bt->bt_size);
			VMEM_CHECK(vm,
			    bt->bt_size != 0 && (bt->bt_size & qmask) == 0 &&
				vmem_order(vm, bt->bt_size) == i,
			    "free segment [%#zx, +%#zx] is on freelist %u",
			    (size_t)bt->bt_start, bt->bt_size, i);
			bt->bt_flags |= BT_F_CHECK;
			n++;
			prev = bt;
		}
	}
	VMEM_CHECK(vm, n == vm->vm_nfree,
	    "the freelists hold %llu segments, vm_nfree says %llu",
	    (unsigned long long)n, (unsigned long long)vm->vm_nfree);
}

/* The busy hash: the right bucket for each, vm_nbusy of them. */
static void
vmem_check_hash(vmem_t *vm)
{
	size_t nb = vm->vm_hashmask + 1, h;
	uint64_t n = 0;
	const bt_t *bt;

	VMEM_CHECK(vm,
	    kmem_powerof2(nb) && nb >= VMEM_HASH_INIT &&
		(vm->vm_hashlist == vm->vm_hash0) == (nb == VMEM_HASH_INIT),
	    "busy hash of %zu buckets at %p", nb, (void *)vm->vm_hashlist);
	for (h = 0; h < nb; h++) {
		for (bt = vm->vm_hashlist[h]; bt != NULL; bt = bt->bt_fnext) {
			/* Bounded: a chain that loops ends here. */
			VMEM_CHECK(vm, ++n <= vm->vm_nbusy,
			    "the busy hash holds more than vm_nbusy (%llu) "
			    "segments",
			    (unsigned long long)vm->vm_nbusy);
			VMEM_CHECK(vm,
			    bt->bt_type == BT_TYPE_BUSY &&
				hash_index(vm, bt->bt_start) == h,
			    "busy hash bucket %zu holds a %s tag [%#zx, "
			    "+%#zx] (its bucket is %zu)",
			    h, bt_type_name(bt), (size_t)bt->bt_start,
			    bt->bt_size, hash_index(vm, bt->bt_start));
		}
	}
	VMEM_CHECK(vm, n == vm->vm_nbusy,
	    "the busy hash holds %llu segments, vm_nbusy says %llu",
	    (unsigned long long)n, (unsigned long long)vm->vm_nbusy);
}

/*
 * Span "span" ends: its segments (nseg of them) reached "tiled" bytes of
 * it; an imported one may not be wholly free while the lock is free
 * (section 3) in an arena that releases at once.
 */
static void
vmem_check_span_end(vmem_t *vm, const bt_t *span, vmem_size_t tiled,
    uint64_t nseg, bool lastfree)
{
	if (span == NULL)
		return;
	VMEM_CHECK(vm, tiled == span->bt_size,
	    "span [%#zx, %#zx] is tiled by %#zx bytes of segments",
	    (size_t)span->bt_start, (size_t)bt_end(span), tiled);
	VMEM_CHECK(vm,
	    span->bt_type != BT_TYPE_SPAN || vm->vm_releasefn == NULL ||
		vm->vm_purgefn != NULL || nseg != 1 || !lastfree,
	    "imported span [%#zx, %#zx] is wholly free but was not released",
	    (size_t)span->bt_start, (size_t)bt_end(span));
}

/* The segment list, its spans, and their agreement with the rest. */
static void
vmem_check_segments(vmem_t *vm)
{
	const vmem_size_t qmask = vm->vm_quantum_mask;
	bt_t *const seg0 = &vm->vm_seg0;
	bt_t *bt, *prev, *span = NULL, *nextspan = seg0->bt_fnext;
	vmem_size_t total = 0, imported = 0, inuse = 0, tiled = 0, purging = 0;
	uint64_t nfree = 0, nbusy = 0, nseg = 0;
	bool rotor_seen = vm->vm_rotor == NULL, prevfree = false;
	bool prevpurging = false;

	for (prev = seg0, bt = seg0->bt_snext; bt != seg0;
	     prev = bt, bt = bt->bt_snext) {
		VMEM_CHECK(vm, bt->bt_sprev == prev,
		    "segment list: the link back from the tag after %#zx is "
		    "wrong",
		    (size_t)prev->bt_start);
		if (bt == vm->vm_rotor)
			rotor_seen = true;
		if (bt->bt_type == BT_TYPE_SPAN ||
		    bt->bt_type == BT_TYPE_STATIC) {
			vmem_check_span_end(vm, span, tiled, nseg, prevfree);
			VMEM_CHECK(vm,
			    bt == nextspan &&
				bt->bt_fprev == (span != NULL ? span : seg0),
			    "span [%#zx, %#zx] is not linked in order on the "
			    "span list",
			    (size_t)bt->bt_start, (size_t)bt_end(bt));
			VMEM_CHECK(vm,
			    bt->bt_size != 0 &&
				((bt->bt_start | bt->bt_size) & qmask) == 0 &&
				bt->bt_size - 1 <=
				    VMEM_ADDR_MAX - bt->bt_start &&
				(span == NULL || bt->bt_start > bt_end(span)) &&
				(bt->bt_flags & ~BT_F_XIMPORT) == 0,
			    "bad span [%#zx, +%#zx] (flags %#x) after %#zx",
			    (size_t)bt->bt_start, bt->bt_size,
			    (unsigned)bt->bt_flags,
			    span != NULL ? (size_t)bt_end(span) : 0);
			nextspan = bt->bt_fnext;
			span = bt;
			tiled = 0;
			nseg = 0;
			prevfree = prevpurging = false;
			total += bt->bt_size;
			if (bt->bt_type == BT_TYPE_SPAN)
				imported += bt->bt_size;
			continue;
		}
		VMEM_CHECK(vm,
		    span != NULL &&
			(bt->bt_type == BT_TYPE_FREE ||
			    bt->bt_type == BT_TYPE_BUSY ||
			    bt->bt_type == BT_TYPE_PURGING) &&
			bt->bt_size != 0 &&
			((bt->bt_start | bt->bt_size) & qmask) == 0 &&
			bt->bt_start == span->bt_start + tiled &&
			bt->bt_size <= span->bt_size - tiled,
		    "%s segment [%#zx, +%#zx] does not continue span [%#zx, "
		    "%#zx] at %#zx",
		    bt_type_name(bt), (size_t)bt->bt_start, bt->bt_size,
		    span != NULL ? (size_t)span->bt_start : 0,
		    span != NULL ? (size_t)bt_end(span) : 0,
		    span != NULL ? (size_t)(span->bt_start + tiled) : 0);
		tiled += bt->bt_size;
		nseg++;
		if (bt->bt_type == BT_TYPE_FREE) {
			VMEM_CHECK(vm, !prevfree,
			    "free segments [%#zx, +%#zx] and [%#zx, +%#zx] "
			    "are adjacent (not coalesced)",
			    (size_t)prev->bt_start, prev->bt_size,
			    (size_t)bt->bt_start, bt->bt_size);
			VMEM_CHECK(vm, (bt->bt_flags & BT_F_CHECK) != 0,
			    "free segment [%#zx, +%#zx] is on no freelist",
			    (size_t)bt->bt_start, bt->bt_size);
			bt->bt_flags &= (uint8_t)~BT_F_CHECK;
			/* (A freed cache page may keep BT_F_QCPAGE: unused.) */
			VMEM_CHECK(vm,
			    (bt->bt_flags & ~(BT_F_DIRTY | BT_F_QCPAGE)) == 0 &&
				(!(bt->bt_flags & BT_F_DIRTY) ||
				    vm->vm_purgefn != NULL),
			    "free segment [%#zx, +%#zx] has flags %#x",
			    (size_t)bt->bt_start, bt->bt_size,
			    (unsigned)bt->bt_flags);
			/* Freed in this epoch or before (modulo 2^32). */
			VMEM_CHECK(vm,
			    !(bt->bt_flags & BT_F_DIRTY) ||
				(uint32_t)(vm->vm_epoch - bt->bt_epoch) <
				    (1u << 31),
			    "dirty free segment [%#zx, +%#zx] was freed in "
			    "purge epoch %u, after the arena's %u",
			    (size_t)bt->bt_start, bt->bt_size,
			    (unsigned)bt->bt_epoch, (unsigned)vm->vm_epoch);
			nfree++;
		} else if (bt->bt_type == BT_TYPE_PURGING) {
			/* A pass holds it while its pages go (section 7). */
			VMEM_CHECK(vm, vm->vm_purge_active && !prevpurging,
			    "purging segment [%#zx, +%#zx] with %s pass "
			    "running, after a %s segment",
			    (size_t)bt->bt_start, bt->bt_size,
			    vm->vm_purge_active ? "a" : "no",
			    bt_type_name(prev));
			if (bt->bt_size > purging)
				purging = bt->bt_size;
		} else {
			VMEM_CHECK(vm,
			    (bt->bt_flags & ~BT_F_QCPAGE) == 0 &&
				hash_lookup(vm, bt->bt_start) == bt,
			    "busy segment [%#zx, +%#zx] (flags %#x) is not in "
			    "the busy hash",
			    (size_t)bt->bt_start, bt->bt_size,
			    (unsigned)bt->bt_flags);
			inuse += bt->bt_size;
			nbusy++;
		}
		prevfree = bt->bt_type == BT_TYPE_FREE;
		prevpurging = bt->bt_type == BT_TYPE_PURGING;
	}
	vmem_check_span_end(vm, span, tiled, nseg, prevfree);
	VMEM_CHECK(vm,
	    nextspan == seg0 &&
		seg0->bt_fprev == (span != NULL ? span : seg0) &&
		seg0->bt_sprev == prev,
	    "the sentinel's links do not close the segment and span lists "
	    "(last span %#zx)",
	    span != NULL ? (size_t)span->bt_start : 0);
	VMEM_CHECK(vm, nfree == vm->vm_nfree && nbusy == vm->vm_nbusy,
	    "%llu free and %llu busy segments, vm_nfree and vm_nbusy say %llu "
	    "and %llu",
	    (unsigned long long)nfree, (unsigned long long)nbusy,
	    (unsigned long long)vm->vm_nfree, (unsigned long long)vm->vm_nbusy);
	VMEM_CHECK(vm,
	    inuse == vm->vm_inuse && total == vm->vm_total &&
		imported == vm->vm_imported,
	    "in use %#zx, total %#zx, imported %#zx; the arena says %#zx, "
	    "%#zx, %#zx",
	    inuse, total, imported, vm->vm_inuse, vm->vm_total,
	    vm->vm_imported);
	VMEM_CHECK(vm, rotor_seen, "the rotor %p is not a tag of the arena",
	    (void *)vm->vm_rotor);
	VMEM_CHECK(vm, purging == vm->vm_purge_fit,
	    "the largest purging segment is %#zx bytes, vm_purge_fit says %#zx",
	    purging, vm->vm_purge_fit);
}

/*
 * Everything section 3 lists, the dirty marks of section 7, and the tag
 * cache; lock held.  Every free segment found on a freelist is marked,
 * and the mark cleared when the segment list meets it: so the freelists
 * hold exactly the free segments.
 */
static void
vmem_check_locked(vmem_t *vm)
{
	uint64_t n = 0;
	const bt_t *bt;

	VMEM_ASSERT_LOCKED(vm);
	vmem_check_freelists(vm);
	vmem_check_hash(vm);
	vmem_check_segments(vm);
	for (bt = vm->vm_btfree; bt != NULL && n <= BT_MAXFREE;
	     bt = bt->bt_fnext)
		n++;
	VMEM_CHECK(vm, n == vm->vm_nbtfree,
	    "the tag cache holds %s%llu tags, vm_nbtfree says %u",
	    n > BT_MAXFREE ? "more than " : "",
	    (unsigned long long)(n > BT_MAXFREE ? BT_MAXFREE : n),
	    vm->vm_nbtfree);
}

void
kmem_vmem_check(vmem_t *vm)
{
	kmem_mutex_enter(&vm->vm_lock);
	vmem_check_locked(vm);
	kmem_mutex_exit(&vm->vm_lock);
}

struct kmem_domain *
kmemi_vmem_domain(const vmem_t *vm)
{
	return vm->vm_dom;
}
