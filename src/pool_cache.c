/*
 * pool_cache.c -- pool_cache(9): constructed objects cached per CPU in
 * groups (magazines) over a depot (Bonwick & Adams 2001; NetBSD
 * subr_pool.c), with the magazine resizing and depot working-set reaping
 * NetBSD lacks (illumos kmem.c).
 *
 * 0. Domains.  A cache is a pool (its first member) and belongs to the
 *    pool's domain (PC_DOM): the cache list, the group pools, the shared
 *    empty groups and the depot budget below are that domain's
 *    (domain.h), so two domains never share a group or a budget.
 *
 * 1. Layers.  A get is served, in order, by (a) the CPU layer: this CPU's
 *    current group, else its previous group (swapped in); (b) the depot:
 *    a full group replaces the empty current one; (c) the pool: one object
 *    from pool_get, constructed -- or, for a cache without constructor,
 *    destructor or hard limit, that object plus half a group of the ones after
 * it, taken under one pool lock hold and installed as this CPU's group
 * (pc_get_fill): the next gets hit, and CPUs missing together get disjoint runs
 * of neighbours rather than interleaved ones (false sharing).  A put goes to
 * the current group, else the previous (swapped in); when both are full, the
 * full current goes to the depot and an empty group takes its place; with no
 * empty group to be had, the object is destructed and goes back to the pool.
 *    Keeping a previous group bounds depot traffic to one access per
 *    group's worth of operations whatever the get/put pattern.
 *
 * 2. Construction.  The constructor runs when an object enters the cache
 *    layer from the pool, the destructor when it leaves for the pool
 *    (no group for it, reaping, invalidation, destruction).  Objects in
 *    groups and the depot stay constructed; a get never constructs an
 *    object that came back through a put.
 *
 * 3. Data structures.
 *    - Group (struct pcg): capacity, count, and an array of {object,
 *      paddr}.  Groups come from internal pools "pcg-<size>", one per size
 *      of the magazine ladder, on the put path and on a filling miss
 *      (section 1).  Their pages come from the metadata arena "kmeta"
 *      (meta.c), never from the page arena, so no object page is next to
 *      a group (an overflow cannot rewrite a group's objects), and never
 *      through a quantum cache, so a group allocation cannot recurse into
 *      a pool_cache.  The cache structure itself, with its per-CPU slots,
 *      is from kmeta as well.  Empty groups are shared by every
 *      cache of the same group size (d->kd_pcg_empty[], NetBSD's
 * pcg_normal_cache and pcg_large_cache).
 *    - Per CPU (struct pc_cpu, one cache line each, no false sharing): a
 *      spin lock (one atomic exchange to take, one store to release),
 *      current and previous groups, the current group's word (section
 *      9), hit/miss counters.  A cache's slots start a number of lines
 *      past its structure that its page number chooses (PC_COLOURS):
 *      the structures are page-aligned, and without it every cache's
 *      slot of a CPU shared one set of the level-1 data cache.  Gets and puts
 *      that the current group can serve take no lock: a restartable
 *      sequence (section 9), or nothing at all while the process has
 *      never created a thread, as glibc's malloc does.  The CPU
 *      index comes from kmem_prim_cpu_current() (rseq, else sched_getcpu,
 *      else a thread hash).
 *    - Depot: full groups (LIFO) under the depot lock, with illumos's
 *      working-set bookkeeping: the smallest count seen since the last
 *      update (min) and how many the last interval never needed
 *      (reaplimit).
 *
 * 4. Locking.  Lock order: cpu lock -> depot lock -> shared empty-group
 *    lock -> (pool lock, through pool_get/pool_put).  A thread takes the
 *    lock of the CPU it read, even if it has migrated since: correctness
 *    never depends on running on that CPU, only on holding its lock, so
 *    threads outnumbering CPUs and migration at any instruction are safe
 *    (they cost contention, not corruption).  Nothing is allocated, and
 *    no constructor or destructor runs, with a CPU lock held: group
 *    allocation, pool_get and pool_put happen with it dropped.
 *
 * 5. Invalidation without cross-calls.  pool_cache_invalidate takes each
 *    CPU's lock in turn and detaches that CPU's two groups, then empties
 *    the depot, and destructs everything it collected with no lock held.
 *    A get or put on any CPU holds that CPU's lock for its whole use of
 *    the groups, so it either finished before we took the lock (its
 *    object is in the groups we take) or starts after we dropped it (and
 *    finds no groups); it can never see a group half-detached.  Objects
 *    put after their CPU was visited stay cached: the guarantee, as in
 *    NetBSD, is that everything cached when the call started is destroyed.
 *
 * 6. Magazine resizing.  A cache starts with groups of 15 objects (63
 *    with PR_LARGECACHE, 255 with kmem's KMEMI_PR_HUGECACHE).  Every
 *    contended depot lock (a failed trylock) is counted; when more than
 *    PC_CONTENTION_MAX are seen within one reap interval, the group size
 *    moves one step up the ladder (15, 31, 63, 127, 255); groups of the
 *    old size stay valid until they empty.
 *
 *    The depots of caches without constructor and destructor share a
 *    budget of 16 MiB of objects (PC_DEPOT_BUDGET; one group each at
 *    least, 64 at most; an object under 1 KiB counts as 1 KiB, for the
 *    page it pins: PC_PIN_WEIGHT): a full group
 *    that would go beyond goes back to the pool instead, its objects in
 *    one pool lock hold, and becomes the CPU's empty group.
 *
 * 7. Working-set reaping.  Every reap_interval_ms (15 s, illumos's
 *    kmem_reap_interval), noticed on the depot slow path or in
 *    kmem_reap(): reaplimit := min; min := current count.  A reap frees
 *    min(reaplimit, min) full groups -- ones that sat unused through a
 *    whole interval -- destructing their objects; the pool's pages that
 *    empty then go back once idle.  kmem_reap_all() frees everything
 *    cached.  The shared empty groups are reaped the same way.  A cache
 *    without constructor and destructor uses an interval of a second at
 *    most: remaking its objects costs nothing, keeping them pins pages.
 *
 * 8. Failure policy.  A failing constructor makes get return NULL and
 *    puts the object back in the pool (nothing leaks).  PR_NOWAIT gets
 *    return NULL when the pool cannot grow; PR_WAITOK gets wait.  A put
 *    that cannot get a group falls back to destruct + pool_put, so puts
 *    never fail.
 *
 * 9. The lock-free fast path (x86-64, when kmem_prim_rseq_cs_init() says
 *    restartable sequences and the membarrier RSEQ fence are available;
 *    DESIGN.md section 3).  pc_rseq_get/pc_rseq_put run as rseq critical
 *    sections: they read the CPU number from glibc's rseq area, find that
 *    CPU's slot, and give up to the locked slow path if the slot's lock
 *    is held, it has no current group, or the group is empty (get) or
 *    full (put); otherwise they move one object and commit with a single
 *    store of the group's new count -- the slot's cc_word, which stands
 *    for the current group's word while it is current, so that a fast
 *    path reads no line of the group's but the entry it moves (a lock
 *    holder has the word back in the group, pc_sync_in, and in the slot
 *    when it lets go, pc_sync_out).  The kernel restarts a section that
 *    is preempted, migrated or signalled before the commit, so no two
 *    threads ever interleave inside one on the same CPU.  What remains is
 *    a thread on another CPU changing the slot: everything except the
 *    fast path takes the slot's lock first, and a lock taker that is not
 *    running on the slot's CPU (it migrated, or it is invalidating every
 *    CPU) then fences that CPU (membarrier PRIVATE_EXPEDITED_RSEQ), which
 *    aborts a section in flight there; every section that starts later
 *    sees the lock and takes the slow path.  A lock taker that is on the
 *    slot's CPU needs no fence: a section that was in flight there was
 *    preempted by it and will restart.  So the groups a lock holder sees
 *    cannot change under it.  The fast path counts its operations in
 *    the word, which its commit stores (pool_cache_impl.h), not
 *    with an increment of the CPU's counter, whose read-modify-write
 *    chained one operation to the next (a tenth of a malloc/free pair);
 *    a group's count goes to the CPU's when it leaves the CPU (pc_fold).
 *    Without rseq (valgrind, ThreadSanitizer, other CPUs) the spin lock
 *    covers every get and put, as before.
 *
 * 10. Checks.  kmem_pool_cache_check (at the end of this file) holds the
 *    whole cache -- every CPU slot in index order, fenced (as fork's
 *    prepare and invalidation), then the depot, d->kd_pcg_lock and the pool:
 *    the lock order of section 4 -- and checks every group, the depot's
 *    count and working-set minimum, the shared empty groups, that each
 *    cached object is out of the pool (and tagged, where tags are on),
 *    and the pool.  KMEM_DEBUG=check checks the depot and the CPU's
 *    groups at each depot exchange, under the locks the exchange holds.
 *
 * 11. Tools (annotate.h).  While valgrind runs, or in a library built
 *    with ASan, a user's cache (pool_cache_init, not PR_NOTOUCH; not
 *    kmem's classes, which kmem.c annotates, nor kva's quantum caches) is
 *    a memcheck mempool anchored at pc: pool_cache_get hands out a chunk
 *    -- defined if the cache has a constructor (an object comes out
 *    constructed, whether fresh or put back before), undefined if not --
 *    with the item's padding no access; pool_cache_put makes it no access
 *    at once, so it stays so in the CPU's groups and the depot, and in
 *    the pool (kmemi_pool_annot_set: its free items too).  kmem's own
 *    touches are bracketed: a fresh object is made accessible (and
 *    defined: a constructor may look before it writes) for its
 *    constructor, a cached one for its destructor (pc_destruct), then no
 *    access again.  Every cache's lock-free path is off then (pc_rseq):
 *    the locked paths, where the annotations are, serve every call.
 *    Without the tools the locked paths test pc_annot, nothing more.
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

#include "internal/annotate.h"
#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/meta.h"
#include "internal/pool_cache_impl.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"

/* The magazine ladder (illumos kmem_magtype, NetBSD's 15 and 63). */
static const unsigned int pcg_ladder[] = {15, 31, 63, 127, 255};
#define PCG_NSIZES	 KMEM_ARRAY_SIZE(pcg_ladder)
#define PCG_START_NORMAL 0
#define PCG_START_LARGE	 2
#define PCG_START_HUGE	 4 /* KMEMI_PR_HUGECACHE */
/* illumos's kmem_depot_contention: grow past 3 contended locks/interval. */
#define PC_CONTENTION_MAX 3
/* A miss fills at most this many objects into the CPU's group. */
#define PCG_FILL_MAX 32
/*
 * The depots of caches without constructor and destructor share a budget
 * of PC_DEPOT_BUDGET bytes of objects in full groups (each may keep one
 * group whatever the budget, PC_DEPOT_MAX at most); what is freed beyond
 * goes back to the pools, whose empty pages go back to the page arena.
 * Such objects cost nothing to make again, and a program's burst of frees
 * (kmem's malloc) should not sit in depots, their groups costing 16 bytes
 * per object more, for the working-set intervals it takes reaping to
 * notice (section 7).  One budget, not one per cache: a program that
 * frees a batch of one size finds them all cached (a thousand 4 KiB
 * objects are 4 MiB, of 16 KiB 16 MiB), one that frees everything keeps
 * 16 MiB (tcmalloc's thread caches hold up to 32 MiB by default).
 */
#define PC_DEPOT_BUDGET (16u << 20)
#define PC_DEPOT_MAX	64
/*
 * An object smaller than this counts this many bytes against the budget:
 * what stands for the page it pins.  A freed object in a depot keeps its
 * page from going back, and a burst of frees in a scattered order leaves
 * the depot's objects on as many different pages: counted by their own
 * sizes, 16 MiB of objects of 16-512 B held most of the pages of bench_
 * malloc's frag cell (377 MB right after everything was freed, 619 MB in
 * the idle cell: jemalloc 288 and 588).  At 1 KiB, 16,384 small objects
 * at most (64 MiB of 4 KiB pages): frag 187 MB, idle 150 MB.  At 4 KiB
 * (a page each) frag 125 MB, but alloc-test's shrink-and-grow phases,
 * which the depot serves, took 15-20 % longer; at 1 KiB 0-5 %
 * (2026-12-08, docs/BENCHMARKS.md).  A freed page goes back to the OS
 * at once only when the arena is mostly free (vmem.c section 7's burst).
 */
#define PC_PIN_WEIGHT 1024
/* In budgeted depots, bytes: the domain's kd_pc_depot_bytes. */

/* struct pcg_obj, pcg, pc_cpu: internal/pool_cache_impl.h. */

struct pool_cache {
	struct pool pc_pool; /* first: the pool of the objects */
	int (*pc_ctor)(void *, void *, int);
	void (*pc_dtor)(void *, void *);
	void *pc_arg;
	unsigned int pc_ncpu;
	bool pc_rseq;  /* the lock-free fast path is usable (section 9) */
	bool pc_annot; /* a user's cache, annotated for the tools (11) */
	/* kmemi_cache_set_hooks: what the layer above does to free objects */
	const struct kmemi_obj_hooks *pc_hooks;
	size_t pc_mapsize;
	struct pool_cache *pc_next; /* all caches */
	struct pool_cache **pc_pprev;

	kmem_mutex_t pc_depot_lock __attribute__((aligned(KMEM_CACHELINE)));
	struct pcg *pc_full; /* full groups */
	unsigned long pc_nfull, pc_full_min, pc_full_reaplimit;
	_Atomic unsigned int pc_sizeidx; /* ladder index for new groups */
	unsigned int pc_refcnt;		 /* list walkers (d->kd_pc_list_lock) */
	unsigned long pc_contended, pc_contended_window;
	unsigned long pc_depothit, pc_depotmiss;
	uint64_t pc_ws_time; /* last working-set update */

	/* In the cache's own pages, after the structure, coloured (below). */
	struct pc_cpu *pc_cpus;
};

/*
 * The CPU slots of each cache start a different number of cache lines
 * past the structure (PC_COLOURS, in turn): the structure is page-aligned,
 * so without colour CPU i's slot of every cache sat at the same offset in
 * its page, in the same set of the level-1 data cache, and a program
 * using more size classes than the cache has ways (8-12) missed on every
 * slot it touched (the gthread cell, whose sizes span the classes).
 */
#define PC_COLOURS 32u
/*
 * The colour is the cache's page number's (no counter to keep), modulo
 * the lines its pages have to spare: colouring never costs a page.  With
 * 4 KiB pages and 2 CPUs that is all 32; past 51 CPUs, the spare lines
 * of the last page.
 */

/* ---- groups ---- */

/*
 * The group pools and the shared empty groups are the domain's
 * (domain.h): kd_pcg_pool[], kd_pcg_lock (the empties), kd_pcg_empty[]
 * and their counts, kd_pcg_ready, kd_pcg_init_lock.
 */
_Static_assert(PCG_NSIZES == KMEMI_PCGSIZES, "domain.h's KMEMI_PCGSIZES");

static void pc_check_exchange(pool_cache_t pc, const struct pc_cpu *cc);

/*
 * The cache list (kd_pc_list, kd_pc_list_lock, kd_pc_list_cv: a
 * pc_refcnt dropped to 0) and the last working-set update of the empties
 * (kd_pcg_ws_time) are the domain's too.
 */
/* The domain of cache pc. */
#define PC_DOM(pc) ((pc)->pc_pool.pr_dom)

static unsigned int
pcg_index(unsigned int size)
{
	unsigned int i = 0;

	while (pcg_ladder[i] != size) {
		i++;
		KMEM_ASSERT(i < PCG_NSIZES); /* a size of the ladder */
	}
	return i;
}

static void
pcg_init(struct kmem_domain *d)
{
	struct kmem_domain *prev;
	unsigned int i;

	if (atomic_load_explicit(&d->kd_pcg_ready, memory_order_acquire))
		return;
	kmem_mutex_enter(&d->kd_pcg_init_lock);
	if (!atomic_load_explicit(&d->kd_pcg_ready, memory_order_relaxed)) {
		prev = kmemi_dom_push(d);
		for (i = 0; i < PCG_NSIZES; i++) {
			char name[32];

			kmem_snprintf(
			    name, sizeof name, "pcg-%u", pcg_ladder[i]);
			pool_init(&d->kd_pcg_pool[i],
			    sizeof(struct pcg) +
				pcg_ladder[i] * sizeof(struct pcg_obj),
			    KMEM_CACHELINE, 0, 0, name,
			    &kmemi_pool_allocator_meta, IPL_VM);
		}
		kmemi_dom_pop(prev);
		atomic_store_explicit(
		    &d->kd_pcg_ready, true, memory_order_release);
	}
	kmem_mutex_exit(&d->kd_pcg_init_lock);
}

/* An empty group of ladder size i: shared cache, else a new one. */
static struct pcg *
pcg_get_empty(struct kmem_domain *d, unsigned int i, bool may_alloc)
{
	struct pcg *g;

	KMEM_ASSERT(i < PCG_NSIZES);
	kmem_mutex_enter(&d->kd_pcg_lock);
	if ((g = d->kd_pcg_empty[i]) != NULL) {
		KMEM_ASSERT(d->kd_pcg_nempty[i] > 0);
		d->kd_pcg_empty[i] = g->pcg_next;
		if (--d->kd_pcg_nempty[i] < d->kd_pcg_empty_min[i])
			d->kd_pcg_empty_min[i] = d->kd_pcg_nempty[i];
	}
	kmem_mutex_exit(&d->kd_pcg_lock);
	if (g == NULL && may_alloc) {
		g = pool_get(&d->kd_pcg_pool[i], PR_NOWAIT);
		if (g != NULL) /* empty, capacity, no operations */
			g->pcg_word = (uint64_t)pcg_ladder[i] << 8;
	}
	KMEM_ASSERT(
	    g == NULL || (g->pcg_avail == 0 && g->pcg_size == pcg_ladder[i]));
	return g;
}

static void
pcg_put_empty(struct kmem_domain *d, struct pcg *g)
{
	unsigned int i = pcg_index(g->pcg_size);

	KMEM_ASSERT(g->pcg_avail == 0 && pcg_ops(g) == 0);
	kmem_mutex_enter(&d->kd_pcg_lock);
	g->pcg_next = d->kd_pcg_empty[i];
	d->kd_pcg_empty[i] = g;
	d->kd_pcg_nempty[i]++;
	kmem_mutex_exit(&d->kd_pcg_lock);
}

/*
 * g leaves CPU slot cc (its lock held): the operations the fast path
 * counted in g's word go to the CPU's count (pool_cache_impl.h).
 */
static inline void
pc_fold(struct pc_cpu *cc, struct pcg *g)
{
	if (g != NULL) {
		cc->cc_hits += pcg_ops(g);
		g->pcg_word &= ((uint64_t)1 << PCG_OPS_SHIFT) - 1;
	}
}

/* ---- destruction ---- */

/*
 * Free objects leave a group (to a caller or to the pool): with hooks
 * (kmemi_cache_set_hooks: malloc's free tag), each must be intact -- an
 * object freed twice is in a group twice, and its first copy to leave
 * took its mark off.
 */
static inline void
pc_objs_check(
    pool_cache_t pc, void *const *objs, unsigned int n, const char *fn)
{
	const struct kmemi_obj_hooks *h = pc->pc_hooks;
	unsigned int i;

	if (kmem_unlikely(h != NULL) &&
	    kmem_unlikely((i = h->oh_check(objs, n)) < n)) {
		h->oh_report(pc, objs[i], fn);
		KMEM_VERIFY(0); /* not reached: oh_report does not return */
	}
}

static inline void
pc_tag_check(pool_cache_t pc, void *obj, const char *fn)
{
	pc_objs_check(pc, &obj, 1, fn);
}

/* An object out of the groups (or the caller's) destructed, to the pool. */
static void
pc_destruct(pool_cache_t pc, void *obj)
{
	pc_tag_check(pc, obj, "pool_cache_put");
	if (kmem_unlikely(pc->pc_annot)) /* kmem's own touch (section 11) */
		kmemi_annot_defined(obj, pc->pc_pool.pr_size);
	if (pc->pc_dtor != NULL)
		pc->pc_dtor(pc->pc_arg, obj);
	if (kmem_unlikely(pc->pc_annot))
		kmemi_annot_noaccess(obj, pc->pc_pool.pr_size);
	pool_put(&pc->pc_pool, obj);
}

/*
 * Object obj handed out to a caller / given back by one (section 11):
 * constructed objects are defined, those of a cache without constructor
 * undefined; the item's padding past the size asked is no access.
 */
static inline void
pc_annot_get(pool_cache_t pc, void *obj)
{
	kmemi_annot_alloc(pc, obj, pc->pc_pool.pr_reqsize, pc->pc_pool.pr_size,
	    pc->pc_ctor != NULL ? KMEMI_AN_DEFINED : KMEMI_AN_UNDEF);
}

static inline void
pc_annot_put(pool_cache_t pc, void *obj)
{
	kmemi_annot_free(pc, obj, pc->pc_pool.pr_size);
}

/* Objects of group g straight back to the pool (no destructor); g empty. */
static void
pc_flush_group(pool_cache_t pc, struct pcg *g)
{
	void *objs[256];
	unsigned int i;

	_Static_assert(KMEM_ARRAY_SIZE(objs) >= 255, "the largest group");
	KMEM_ASSERT(g->pcg_avail <= g->pcg_size);
	if (g->pcg_avail == 0)
		return;
	for (i = 0; i < g->pcg_avail; i++)
		objs[i] = g->pcg_objects[i].po_va;
	pc_objs_check(pc, objs, g->pcg_avail, "pool_cache_put");
	kmemi_pool_put_batch(&pc->pc_pool, objs, g->pcg_avail);
	g->pcg_avail = 0;
}

/* Whether pc's depot counts against the budget; bytes in a full g. */
static inline bool
pc_budgeted(pool_cache_t pc)
{
	return pc->pc_ctor == NULL && pc->pc_dtor == NULL;
}

static inline size_t
pc_group_bytes(pool_cache_t pc, const struct pcg *g)
{
	/* PC_PIN_WEIGHT at least an object (above). */
	size_t w = pc->pc_pool.pr_size;

	if (w < PC_PIN_WEIGHT)
		w = PC_PIN_WEIGHT;
	return (size_t)g->pcg_size * w;
}

/* A full group leaves the depot (lock held): the budget has it back. */
static inline void
pc_depot_unbudget(pool_cache_t pc, const struct pcg *g)
{
	struct kmem_domain *d = PC_DOM(pc);

	if (pc_budgeted(pc))
		atomic_fetch_sub_explicit(&d->kd_pc_depot_bytes,
		    pc_group_bytes(pc, g), memory_order_relaxed);
}

/*
 * A full group g would go to pc's depot (lock held): false, and it is
 * counted, if it may; true if it should go to the pool (above).
 */
static bool
pc_depot_capped(pool_cache_t pc, const struct pcg *g)
{
	struct kmem_domain *d = PC_DOM(pc);
	size_t bytes = pc_group_bytes(pc, g);

	KMEM_ASSERT(kmem_mutex_owned(&pc->pc_depot_lock));
	KMEM_ASSERT(g->pcg_avail == g->pcg_size);
	if (!pc_budgeted(pc))
		return false;
	if (pc->pc_nfull >= PC_DEPOT_MAX ||
	    (pc->pc_nfull > 0 &&
		atomic_load_explicit(
		    &d->kd_pc_depot_bytes, memory_order_relaxed) +
			bytes >
		    PC_DEPOT_BUDGET))
		return true;
	atomic_fetch_add_explicit(
	    &d->kd_pc_depot_bytes, bytes, memory_order_relaxed);
	return false;
}

/* Destruct every object of a chain of groups; keep the groups (empty). */
static void
pc_destruct_groups(pool_cache_t pc, struct pcg *g)
{
	struct pcg *next;

	for (; g != NULL; g = next) {
		next = g->pcg_next;
		while (g->pcg_avail > 0)
			pc_destruct(pc, g->pcg_objects[--g->pcg_avail].po_va);
		pcg_put_empty(PC_DOM(pc), g);
	}
}

/* ---- the depot ---- */

static void
pc_depot_lock(pool_cache_t pc)
{
	if (kmem_likely(kmem_mutex_tryenter(&pc->pc_depot_lock)))
		return;
	kmem_mutex_enter(&pc->pc_depot_lock);
	pc->pc_contended++;
	/* Bonwick 2001 section 3.6: contention means bigger magazines. */
	if (++pc->pc_contended_window > PC_CONTENTION_MAX &&
	    atomic_load_explicit(&pc->pc_sizeidx, memory_order_relaxed) + 1 <
		PCG_NSIZES) {
		atomic_fetch_add_explicit(
		    &pc->pc_sizeidx, 1, memory_order_relaxed);
		pc->pc_contended_window = 0;
	}
}

/*
 * Working-set update, if an interval has passed: reaplimit := min;
 * min := count.  Depot lock held.  True if the depot has groups to reap.
 * A budgeted cache's interval is a second at most (PC_WS_BUDGETED_MS):
 * its objects cost nothing to make again, and the groups a burst of
 * frees left in its depot pin scattered pool pages (after 128 MiB of
 * frees, 4,000 cached objects of 32 bytes held 3,300 pages).
 */
#define PC_WS_BUDGETED_MS 1000

static bool
pc_ws_update(pool_cache_t pc, uint64_t now)
{
	uint64_t ms = PC_DOM(pc)->kd_opts.reap_interval_ms;

	KMEM_ASSERT(kmem_mutex_owned(&pc->pc_depot_lock));
	if (pc_budgeted(pc) && ms > PC_WS_BUDGETED_MS)
		ms = PC_WS_BUDGETED_MS;
	if (now - pc->pc_ws_time < ms * 1000000u)
		return false;
	pc->pc_ws_time = now;
	pc->pc_full_reaplimit = pc->pc_full_min;
	pc->pc_full_min = pc->pc_nfull;
	pc->pc_contended_window = 0;
	return pc->pc_full_reaplimit != 0;
}

/* Detach up to n full groups from the depot; depot lock held. */
static struct pcg *
pc_depot_take(pool_cache_t pc, unsigned long n)
{
	struct pcg *chain = NULL, *g;

	KMEM_ASSERT(kmem_mutex_owned(&pc->pc_depot_lock));
	while (n-- > 0 && (g = pc->pc_full) != NULL) {
		KMEM_ASSERT(pc->pc_nfull > 0 && g->pcg_avail == g->pcg_size);
		pc->pc_full = g->pcg_next;
		pc->pc_nfull--;
		pc_depot_unbudget(pc, g);
		g->pcg_next = chain;
		chain = g;
	}
	if (pc->pc_full_min > pc->pc_nfull)
		pc->pc_full_min = pc->pc_nfull;
	if (pc->pc_full_reaplimit > pc->pc_nfull)
		pc->pc_full_reaplimit = pc->pc_nfull;
	return chain;
}

/* Take the groups the last interval did not need; depot lock held. */
static struct pcg *
pc_ws_take(pool_cache_t pc)
{
	unsigned long n = pc->pc_full_reaplimit < pc->pc_full_min
	    ? pc->pc_full_reaplimit
	    : pc->pc_full_min;

	KMEM_ASSERT(n <= pc->pc_nfull);
	pc->pc_full_reaplimit -= n;
	pc->pc_full_min -= n;
	return pc_depot_take(pc, n);
}

/* Reap what the last interval did not need (or everything). */
static void
pc_reap(pool_cache_t pc, bool everything)
{
	struct pcg *chain;

	if (everything) {
		/* The CPU layer too: everything cached goes. */
		kmemi_cache_drain(pc);
		return;
	}
	kmem_mutex_enter(&pc->pc_depot_lock);
	pc_ws_update(pc, kmem_prim_clock_coarse_ns());
	chain = pc_ws_take(pc);
	kmem_mutex_exit(&pc->pc_depot_lock);
	pc_destruct_groups(pc, chain);
	kmemi_pool_reclaim_idle(&pc->pc_pool, false);
}

/* ---- get / put ---- */

/*
 * The current group's word into the group, for a lock holder (fenced, or
 * on the slot's CPU: no fast path can commit meanwhile), and back into
 * the slot when it lets go (pool_cache_impl.h, cc_word): 0 without a
 * current group.
 */
static inline void
pc_sync_in(struct pc_cpu *cc)
{
	KMEM_ASSERT(cc->cc_current != NULL || cc->cc_word == 0);
	if (cc->cc_current != NULL)
		cc->cc_current->pcg_word = cc->cc_word;
}

static inline void
pc_sync_out(struct pc_cpu *cc)
{
	cc->cc_word = cc->cc_current != NULL ? cc->cc_current->pcg_word : 0;
}

/* The current group's word, for a reader that does not fence. */
static inline uint64_t
pc_cur_word(const struct pc_cpu *cc)
{
	return __atomic_load_n(&cc->cc_word, __ATOMIC_RELAXED);
}

/* Slot i of pc locked and fenced (section 9), its word in its group. */
static struct pc_cpu *
pc_slot_lock(pool_cache_t pc, unsigned int i)
{
	struct pc_cpu *cc = &pc->pc_cpus[i];

	kmem_spin_enter(&cc->cc_lock);
	if (pc->pc_rseq)
		kmem_prim_rseq_fence(i);
	pc_sync_in(cc);
	return cc;
}

static void
pc_slot_unlock(struct pc_cpu *cc)
{
	pc_sync_out(cc);
	kmem_spin_exit(&cc->cc_lock);
}

/*
 * This CPU's slot, locked -- unless the process has never created a
 * thread, when no one else can touch it ("lk" false; the caller passes it
 * back to pc_cpu_exit).
 */
static inline struct pc_cpu *
pc_cpu_enter(pool_cache_t pc, bool lk)
{
	unsigned int cpu = kmem_prim_cpu_enter(); /* until pc_cpu_exit */
	struct pc_cpu *cc;

	if (kmem_unlikely(cpu >= pc->pc_ncpu))
		cpu %= pc->pc_ncpu;
	cc = &pc->pc_cpus[cpu];
	if (lk) {
		kmem_spin_enter(&cc->cc_lock);
		/*
		 * With lock-free fast paths about, the lock only keeps out
		 * those that start after it: if we are not running on the
		 * slot's CPU, abort any in flight there (section 9).
		 */
		if (pc->pc_rseq && kmem_prim_cpu_raw() != (int32_t)cpu)
			kmem_prim_rseq_fence(cpu);
	}
	pc_sync_in(cc);
	return cc;
}

static inline void
pc_cpu_exit(struct pc_cpu *cc, bool lk)
{
	pc_sync_out(cc);
	if (lk)
		kmem_spin_exit(&cc->cc_lock);
	kmem_prim_cpu_exit();
}

/* The restartable-sequence fast path (section 9): internal/pool_cache_impl.h.
 */

/*
 * The depot slow path of get: trade our empty current for a full group.
 * When a working-set interval has passed, the groups it did not need are
 * detached into *reap, for the caller to destruct with no lock held.
 */
static bool
pc_get_from_depot(pool_cache_t pc, struct pc_cpu *cc, struct pcg **reap)
{
	struct pcg *full, *empty;

	pc_depot_lock(pc);
	if (kmemi_check_on(pc->pc_nfull))
		pc_check_exchange(pc, cc);
	if ((full = pc->pc_full) != NULL) {
		KMEM_ASSERT(pc->pc_nfull > 0 &&
		    full->pcg_avail == full->pcg_size && pcg_ops(full) == 0);
		pc->pc_full = full->pcg_next;
		if (--pc->pc_nfull < pc->pc_full_min)
			pc->pc_full_min = pc->pc_nfull;
		pc_depot_unbudget(pc, full);
		pc->pc_depothit++;
	} else {
		pc->pc_depotmiss++;
	}
	if (kmem_unlikely(pc_ws_update(pc, kmem_prim_clock_coarse_ns())))
		*reap = pc_ws_take(pc);
	kmem_mutex_exit(&pc->pc_depot_lock);
	if (full == NULL)
		return false;
	empty = cc->cc_current;
	KMEM_ASSERT(empty == NULL || empty->pcg_avail == 0);
	cc->cc_current = full;
	if (empty != NULL) {
		pc_fold(cc, empty);
		pcg_put_empty(PC_DOM(pc), empty);
	}
	return true;
}

/*
 * A miss that goes to the pool, for caches without constructor, destructor
 * or hard limit: one object for the caller and, taken under the same pool
 * lock hold, half a group of the objects that follow it for this CPU --
 * so the next gets hit, and CPUs that miss together get disjoint runs
 * instead of interleaved neighbours (false sharing).  If the CPU found objects
 * meanwhile, the run goes back to the pool.  NULL: the pool failed.
 */
static void *
pc_get_fill(pool_cache_t pc, int flags, bool lk)
{
	void *objs[PCG_FILL_MAX + 1];
	unsigned int i, n = 0, got, k;
	struct pcg *g, *old;
	struct pc_cpu *cc;

	i = atomic_load_explicit(&pc->pc_sizeidx, memory_order_relaxed);
	if ((g = pcg_get_empty(PC_DOM(pc), i, true)) != NULL)
		n = g->pcg_size / 2 < PCG_FILL_MAX ? g->pcg_size / 2
						   : PCG_FILL_MAX;
	got = kmemi_pool_get_batch(&pc->pc_pool, flags, objs, n + 1);
	KMEM_ASSERT(got <= n + 1 && (g != NULL || got <= 1));
	if (got <= 1) {
		if (g != NULL)
			pcg_put_empty(PC_DOM(pc), g);
		return got == 1 ? objs[0] : NULL;
	}
	/* As a free would have left them (malloc's tag). */
	if (pc->pc_hooks != NULL)
		pc->pc_hooks->oh_fill(objs + 1, got - 1);
	/* objs[1..got-1], reversed: the group pops them in address order. */
	for (k = 0; k < got - 1; k++) {
		g->pcg_objects[k].po_va = objs[got - 1 - k];
		g->pcg_objects[k].po_pa = POOL_PADDR_INVALID;
	}
	g->pcg_avail = got - 1;
	cc = pc_cpu_enter(pc, lk);
	old = cc->cc_current;
	if (old == NULL || old->pcg_avail == 0) {
		cc->cc_current = g;
		g = old;
	} else if ((old = cc->cc_previous) == NULL || old->pcg_avail == 0) {
		cc->cc_previous = g;
		g = old;
	}
	pc_fold(cc, g); /* the group displaced (or ours, unused: 0) */
	pc_cpu_exit(cc, lk);
	if (g != NULL) {
		pc_flush_group(pc, g);
		pcg_put_empty(PC_DOM(pc), g);
	}
	return objs[0];
}

void *
pool_cache_get_paddr(pool_cache_t pc, int flags, paddr_t *pap)
{
	struct pc_cpu *cc;
	struct pcg *g, *reap = NULL;
	bool lk = !kmem_prim_single_threaded(), missed = false;
	void *obj;

	/* Exactly one of PR_WAITOK (1) and PR_NOWAIT (2), even on a hit. */
	if (kmem_unlikely((unsigned)(flags & (PR_WAITOK | PR_NOWAIT)) - 1 > 1))
		kmem_panic("pool_cache_get(cache '%s', flags %#x): need "
			   "exactly one of PR_WAITOK and PR_NOWAIT",
		    pc->pc_pool.pr_wchan, (unsigned)flags);
	if (kmem_unlikely(!kmem_opts.magazines))
		goto miss_nolock;
#ifdef PC_RSEQ
	if (kmem_likely(lk && pc->pc_rseq)) {
		paddr_t pa;

		if (kmem_likely(
			pc_rseq_get(pc->pc_cpus, pc->pc_ncpu, &obj, &pa))) {
			if (pap != NULL)
				*pap = pa;
			if (kmem_unlikely(flags & PR_ZERO))
				memset(obj, 0, pc->pc_pool.pr_reqsize);
			return obj;
		}
	}
#endif
	cc = pc_cpu_enter(pc, lk);
	for (;;) {
		g = cc->cc_current;
		if (kmem_likely(g != NULL && g->pcg_avail > 0)) {
			struct pcg_obj *o = &g->pcg_objects[--g->pcg_avail];

			KMEM_ASSERT(g->pcg_avail < g->pcg_size);
			if (!missed) /* one count per get: hit or miss */
				cc->cc_hits++;
			obj = o->po_va;
			/* Out of the group: the caller's (section 11). */
			if (kmem_unlikely(pc->pc_annot))
				pc_annot_get(pc, obj);
			if (pap != NULL)
				*pap = o->po_pa;
			pc_cpu_exit(cc, lk);
			/*
			 * After the CPU lock: a report looks for the object's
			 * other copy under every CPU's lock, this one's too.
			 */
			pc_tag_check(pc, obj, "pool_cache_get");
			if (kmem_unlikely(reap != NULL))
				pc_destruct_groups(pc, reap);
			if (kmem_unlikely(missed))
				kmemi_stats_live_tick(); /* stats.c section 5 */
			if (kmem_unlikely(flags & PR_ZERO))
				memset(obj, 0, pc->pc_pool.pr_reqsize);
			return obj;
		}
		if (cc->cc_previous != NULL && cc->cc_previous->pcg_avail > 0) {
			cc->cc_current = cc->cc_previous;
			cc->cc_previous = g;
			continue;
		}
		if (!missed) {
			cc->cc_misses++;
			missed = true;
		}
		if (!pc_get_from_depot(pc, cc, &reap))
			break;
	}
	pc_cpu_exit(cc, lk);
	if (reap != NULL)
		pc_destruct_groups(pc, reap);
miss_nolock:
	/* The pool layer: a fresh object, constructed. */
	/*
	 * Not under a hard limit: objects parked in one CPU's group would
	 * count against it and fail another CPU's PR_NOWAIT get.
	 */
	if (pc->pc_ctor == NULL && pc->pc_dtor == NULL &&
	    kmem_likely(kmem_opts.magazines) &&
	    pc->pc_pool.pr_hardlimit == UINT32_MAX)
		obj = pc_get_fill(pc, flags & ~PR_ZERO, lk);
	else
		obj = pool_get(&pc->pc_pool, flags & ~PR_ZERO);
	if (obj == NULL)
		return NULL;
	/* The constructor's: as it came from the pages (section 11). */
	if (kmem_unlikely(pc->pc_annot))
		kmemi_annot_defined(obj, pc->pc_pool.pr_size);
	if (pc->pc_ctor != NULL && pc->pc_ctor(pc->pc_arg, obj, flags) != 0) {
		if (kmem_unlikely(pc->pc_annot))
			kmemi_annot_noaccess(obj, pc->pc_pool.pr_size);
		pool_put(&pc->pc_pool, obj);
		return NULL;
	}
	if (kmem_unlikely(pc->pc_annot))
		pc_annot_get(pc, obj);
	if (pap != NULL)
		*pap = POOL_PADDR_INVALID;
	if (flags & PR_ZERO)
		memset(obj, 0, pc->pc_pool.pr_reqsize);
	kmemi_stats_live_tick();
	return obj;
}

void
pool_cache_put_paddr(pool_cache_t pc, void *obj, paddr_t pa)
{
	struct pc_cpu *cc;
	struct pcg *g, *empty;
	bool lk = !kmem_prim_single_threaded(), missed = false;
	unsigned int i;

	if (kmem_unlikely(!kmem_opts.magazines)) {
		if (kmem_unlikely(pc->pc_annot))
			pc_annot_put(pc, obj);
		pc_destruct(pc, obj);
		return;
	}
#ifdef PC_RSEQ
	if (kmem_likely(lk && pc->pc_rseq) &&
	    kmem_likely(pc_rseq_put(pc->pc_cpus, pc->pc_ncpu, obj, pa)))
		return;
#endif
	/* Annotated caches have no lock-free path (section 11). */
	if (kmem_unlikely(pc->pc_annot))
		pc_annot_put(pc, obj);
	cc = pc_cpu_enter(pc, lk);
	for (;;) {
		g = cc->cc_current;
		if (kmem_likely(g != NULL && g->pcg_avail < g->pcg_size)) {
			struct pcg_obj *o = &g->pcg_objects[g->pcg_avail++];

			KMEM_ASSERT(obj != NULL);
			o->po_va = obj;
			o->po_pa = pa;
			if (!missed) /* one count per put: hit or miss */
				cc->cc_hits++;
			pc_cpu_exit(cc, lk);
			if (kmem_unlikely(missed))
				kmemi_stats_live_tick();
			return;
		}
		if (cc->cc_previous != NULL &&
		    cc->cc_previous->pcg_avail < cc->cc_previous->pcg_size) {
			cc->cc_current = cc->cc_previous;
			cc->cc_previous = g;
			continue;
		}
		/* Both full (or absent): we need an empty group. */
		if (!missed) {
			cc->cc_misses++;
			missed = true;
		}
		i = atomic_load_explicit(&pc->pc_sizeidx, memory_order_relaxed);
		empty = pcg_get_empty(PC_DOM(pc), i, false);
		if (empty == NULL) {
			/* Allocate with no CPU lock held, then start over. */
			pc_cpu_exit(cc, lk);
			empty = pcg_get_empty(PC_DOM(pc), i, true);
			if (empty == NULL) {
				pc_destruct(pc, obj);
				return;
			}
			pcg_put_empty(PC_DOM(pc), empty);
			cc = pc_cpu_enter(pc, lk);
			continue;
		}
		if (g == NULL) {
			cc->cc_current = empty;
			continue;
		}
		if (cc->cc_previous == NULL) {
			cc->cc_previous = empty;
			continue;
		}
		/* The full current goes to the depot, or to the pool. */
		pc_depot_lock(pc);
		if (kmemi_check_on(pc->pc_nfull))
			pc_check_exchange(pc, cc);
		pc_fold(cc, g);
		if (kmem_unlikely(pc_depot_capped(pc, g))) {
			kmem_mutex_exit(&pc->pc_depot_lock);
			cc->cc_current = empty;
			pc_cpu_exit(cc, lk);
			pc_flush_group(pc, g);
			pcg_put_empty(PC_DOM(pc), g);
			cc = pc_cpu_enter(pc, lk);
			continue;
		}
		KMEM_ASSERT(g->pcg_avail == g->pcg_size && pcg_ops(g) == 0);
		g->pcg_next = pc->pc_full;
		pc->pc_full = g;
		pc->pc_nfull++;
		kmem_mutex_exit(&pc->pc_depot_lock);
		cc->cc_current = empty;
	}
}

void
kmemi_cache_set_hooks(pool_cache_t pc, const struct kmemi_obj_hooks *h)
{
	/* The layer above writes into free objects: no annotation (11). */
	if (h != NULL && pc->pc_annot) {
		kmemi_annot_owner_destroy(pc);
		kmemi_pool_annot_set(&pc->pc_pool, false);
		pc->pc_annot = false;
	}
	pc->pc_hooks = h;
}

struct pc_cpu *
kmemi_cache_cpus(pool_cache_t pc, unsigned int *ncpup, bool *rseqp)
{
	*ncpup = pc->pc_ncpu;
	*rseqp = pc->pc_rseq && kmem_opts.magazines;
	return pc->pc_cpus;
}

void
pool_cache_destruct_object(pool_cache_t pc, void *obj)
{
	if (kmem_unlikely(pc->pc_annot))
		pc_annot_put(pc, obj);
	pc_destruct(pc, obj);
}

/* ---- invalidate, reclaim, reap ---- */

void
pool_cache_invalidate(pool_cache_t pc)
{
	struct pcg *chain = NULL, *g;
	unsigned int i;

	/* Section 5 of the design comment: one CPU lock at a time. */
	for (i = 0; i < pc->pc_ncpu; i++) {
		struct pc_cpu *cc = pc_slot_lock(pc, i);

		if ((g = cc->cc_current) != NULL) {
			pc_fold(cc, g);
			g->pcg_next = chain;
			chain = g;
		}
		if ((g = cc->cc_previous) != NULL) {
			pc_fold(cc, g);
			g->pcg_next = chain;
			chain = g;
		}
		cc->cc_current = cc->cc_previous = NULL;
		pc_slot_unlock(cc);
	}
	pc_destruct_groups(pc, chain);
	kmem_mutex_enter(&pc->pc_depot_lock);
	chain = pc_depot_take(pc, pc->pc_nfull);
	kmem_mutex_exit(&pc->pc_depot_lock);
	pc_destruct_groups(pc, chain);
}

/* True if one of the n groups from g on holds obj. */
static bool
pcg_holds(const struct pcg *g, const void *obj, unsigned long n)
{
	unsigned int i;

	for (; g != NULL && n > 0; g = g->pcg_next, n--)
		for (i = 0; i < g->pcg_avail; i++)
			if (g->pcg_objects[i].po_va == obj)
				return true;
	return false;
}

bool
kmemi_cache_holds_free(pool_cache_t pc, const void *obj)
{
	bool found = false, out = true;
	unsigned int i;
	void *item;

	/* One CPU lock at a time, as invalidation (section 5). */
	for (i = 0; i < pc->pc_ncpu && !found; i++) {
		struct pc_cpu *cc = pc_slot_lock(pc, i);

		found = pcg_holds(cc->cc_current, obj, 1) ||
		    pcg_holds(cc->cc_previous, obj, 1);
		pc_slot_unlock(cc);
	}
	if (!found) {
		kmem_mutex_enter(&pc->pc_depot_lock);
		found = pcg_holds(pc->pc_full, obj, pc->pc_nfull);
		kmem_mutex_exit(&pc->pc_depot_lock);
	}
	if (!found && kmemi_pool_item_of(&pc->pc_pool, obj, &item, &out))
		found = item == obj && !out;
	return found;
}

void
kmemi_cache_drain(struct pool_cache *pc)
{
	pool_cache_invalidate(pc);
	kmemi_pool_reclaim_idle(&pc->pc_pool, true);
}

bool
pool_cache_reclaim(pool_cache_t pc)
{
	return pool_reclaim(&pc->pc_pool) != 0;
}

/* Trim the shared empty groups to their working set (or all). */
static void
pcg_reap(struct kmem_domain *d, bool everything)
{
	struct pcg *chain[PCG_NSIZES], *g;
	unsigned int i;
	unsigned long n;

	uint64_t now = kmem_prim_clock_ns();
	bool update;

	kmem_mutex_enter(&d->kd_pcg_lock);
	/* The same interval bookkeeping as a depot's (section 7). */
	update =
	    now - d->kd_pcg_ws_time >= d->kd_opts.reap_interval_ms * 1000000u;
	if (update)
		d->kd_pcg_ws_time = now;
	for (i = 0; i < PCG_NSIZES; i++) {
		if (update) {
			d->kd_pcg_empty_reaplimit[i] = d->kd_pcg_empty_min[i];
			d->kd_pcg_empty_min[i] = d->kd_pcg_nempty[i];
		}
		n = everything ? d->kd_pcg_nempty[i]
		    : d->kd_pcg_empty_reaplimit[i] < d->kd_pcg_empty_min[i]
		    ? d->kd_pcg_empty_reaplimit[i]
		    : d->kd_pcg_empty_min[i];
		if (!everything) {
			d->kd_pcg_empty_reaplimit[i] -= n;
			d->kd_pcg_empty_min[i] -= n;
		}
		chain[i] = NULL;
		while (n-- > 0 && (g = d->kd_pcg_empty[i]) != NULL) {
			d->kd_pcg_empty[i] = g->pcg_next;
			d->kd_pcg_nempty[i]--;
			g->pcg_next = chain[i];
			chain[i] = g;
		}
		if (d->kd_pcg_empty_min[i] > d->kd_pcg_nempty[i])
			d->kd_pcg_empty_min[i] = d->kd_pcg_nempty[i];
	}
	kmem_mutex_exit(&d->kd_pcg_lock);
	for (i = 0; i < PCG_NSIZES; i++) {
		while ((g = chain[i]) != NULL) {
			chain[i] = g->pcg_next;
			pool_put(&d->kd_pcg_pool[i], g);
		}
		if (atomic_load_explicit(
			&d->kd_pcg_ready, memory_order_acquire))
			kmemi_pool_reclaim_idle(&d->kd_pcg_pool[i], everything);
	}
}

static void
pc_unref(pool_cache_t pc)
{
	struct kmem_domain *d = PC_DOM(pc);

	if (--pc->pc_refcnt == 0 && d->kd_pc_list_cv_ready)
		kmem_cond_broadcast(&d->kd_pc_list_cv);
}

static void
pc_reap_pass(struct kmem_domain *d, bool everything)
{
	pool_cache_t pc, next;

	/*
	 * Destructors and page frees run with no list lock held: the cache
	 * being reaped is pinned by a reference instead, which
	 * pool_cache_destroy waits for.
	 */
	kmem_mutex_enter(&d->kd_pc_list_lock);
	if ((pc = d->kd_pc_list) != NULL)
		pc->pc_refcnt++;
	while (pc != NULL) {
		kmem_mutex_exit(&d->kd_pc_list_lock);
		pc_reap(pc, everything);
		kmem_mutex_enter(&d->kd_pc_list_lock);
		if ((next = pc->pc_next) != NULL)
			next->pc_refcnt++;
		pc_unref(pc);
		pc = next;
	}
	kmem_mutex_exit(&d->kd_pc_list_lock);
	pcg_reap(d, everything);
	/* Pages the caches emptied, and every other pool's idle pages. */
	kmemi_pool_reap_all(d, everything);
}

void
kmemi_cache_reap_all(struct kmem_domain *d, bool everything)
{
	pc_reap_pass(d, everything);
	/*
	 * Pages freed by the pass went to the page arena's own quantum
	 * caches, which it may already have visited: a second pass hands
	 * them on to the arena.
	 */
	if (everything)
		pc_reap_pass(d, true);
}

/* ---- create / destroy ---- */

/*
 * The pool's hook into its cache (pr_flush): at its hard limit, and on
 * pool_reclaim, the pool has the magazines' objects back.  The pool is
 * the cache's first member.
 */
static void
pc_flush_hook(struct pool *pp)
{
	pool_cache_invalidate((pool_cache_t)(void *)pp);
}

pool_cache_t
kmemi_cache_create(size_t size, unsigned int align, unsigned int align_offset,
    unsigned int flags, const char *wchan, struct pool_allocator *palloc,
    int ipl, int (*ctor)(void *, void *, int), void (*dtor)(void *, void *),
    void *arg)
{
	struct kmem_domain *d = kmemi_dom_cur();
	unsigned int ncpu = kmem_prim_ncpu(), i;
	size_t bytes, head, colours;
	pool_cache_t pc;
	void *mem;

	kmem_options_init();
	pcg_init(d);
	head = kmem_align_up(sizeof(*pc), KMEM_CACHELINE);
	bytes = kmem_align_up(
	    head + ncpu * sizeof(struct pc_cpu), kmem_prim_page_size());
	colours = (bytes - head - ncpu * sizeof(struct pc_cpu)) /
		sizeof(struct pc_cpu) +
	    1;
	if (kmemi_meta_alloc(d, bytes, VM_NOSLEEP, &mem) != 0)
		return NULL;
	pc = mem;
	pc->pc_mapsize = bytes;
	pc->pc_cpus = (struct pc_cpu *)(void *)((char *)mem + head +
	    ((uintptr_t)mem >> 12) %
		(colours < PC_COLOURS ? colours : PC_COLOURS) *
		sizeof(struct pc_cpu));
	pool_init(&pc->pc_pool, size, align, align_offset,
	    (int)(flags & ~KMEMI_PR_HUGECACHE), wchan, palloc, ipl);
	kmemi_pool_annot_set(&pc->pc_pool, false); /* pool_cache_init's */
	pc->pc_ctor = ctor;
	pc->pc_dtor = dtor;
	pc->pc_arg = arg;
	pc->pc_ncpu = ncpu;
	/* Annotating for the tools: every get and put locked (section 11). */
	pc->pc_rseq = kmem_prim_rseq_cs_init() && !kmemi_annot_detect();
	atomic_init(&pc->pc_sizeidx,
	    (flags & KMEMI_PR_HUGECACHE)  ? PCG_START_HUGE
		: (flags & PR_LARGECACHE) ? PCG_START_LARGE
					  : PCG_START_NORMAL);
	pc->pc_ws_time = kmem_prim_clock_coarse_ns();
	kmem_mutex_init(&pc->pc_depot_lock);
	for (i = 0; i < ncpu; i++)
		kmem_spin_init(&pc->pc_cpus[i].cc_lock);
	/*
	 * Last: the pool is on the pool list since pool_init, and a walker
	 * (statistics, reclaim) that finds pr_cache set uses the cache.
	 */
	__atomic_store_n(
	    &pc->pc_pool.pr_flush, pc_flush_hook, __ATOMIC_RELEASE);
	__atomic_store_n(&pc->pc_pool.pr_cache, pc, __ATOMIC_RELEASE);
	kmem_mutex_enter(&d->kd_pc_list_lock);
	if (!d->kd_pc_list_cv_ready) {
		kmem_cond_init(&d->kd_pc_list_cv);
		d->kd_pc_list_cv_ready = true;
	}
	pc->pc_next = d->kd_pc_list;
	if (d->kd_pc_list != NULL)
		d->kd_pc_list->pc_pprev = &pc->pc_next;
	pc->pc_pprev = &d->kd_pc_list;
	d->kd_pc_list = pc;
	kmem_mutex_exit(&d->kd_pc_list_lock);
	return pc;
}

/*
 * NetBSD's pool_cache_init cannot fail: with no memory for the cache
 * structure it retries for about a second (the OS may free some), then
 * aborts naming the cache.
 */
pool_cache_t
pool_cache_init(size_t size, unsigned int align, unsigned int align_offset,
    unsigned int flags, const char *wchan, struct pool_allocator *palloc,
    int ipl, int (*ctor)(void *, void *, int), void (*dtor)(void *, void *),
    void *arg)
{
	pool_cache_t pc;
	unsigned int tries;

	for (tries = 0; tries < 100; tries++) {
		pc = kmemi_cache_create(size, align, align_offset, flags, wchan,
		    palloc, ipl, ctor, dtor, arg);
		if (pc != NULL) {
			/* A user's cache: its objects annotated (section 11).
			 */
			if (!(flags & PR_NOTOUCH) && kmemi_annot_detect()) {
				kmemi_pool_annot_set(&pc->pc_pool, true);
				kmemi_annot_owner_create(pc);
				pc->pc_annot = true;
			}
			return pc;
		}
		kmem_prim_sleep_ns(10000000u);
	}
	kmem_panic("pool_cache_init(cache '%s', size %zu): no memory for the "
		   "cache",
	    wchan, size);
}

void
pool_cache_destroy(pool_cache_t pc)
{
	struct kmem_domain *d = PC_DOM(pc);

	kmemi_dom_op(d, +1); /* until its memory is back (kmemi_dom_busy) */
	kmem_mutex_enter(&d->kd_pc_list_lock);
	while (pc->pc_refcnt != 0)
		kmem_cond_wait(&d->kd_pc_list_cv, &d->kd_pc_list_lock);
	*pc->pc_pprev = pc->pc_next;
	if (pc->pc_next != NULL)
		pc->pc_next->pc_pprev = pc->pc_pprev;
	kmem_mutex_exit(&d->kd_pc_list_lock);
	pool_cache_invalidate(pc);
	__atomic_store_n(&pc->pc_pool.pr_cache, NULL, __ATOMIC_RELAXED);
	__atomic_store_n(&pc->pc_pool.pr_flush, NULL, __ATOMIC_RELEASE);
	pool_destroy(&pc->pc_pool);
	if (pc->pc_annot)
		kmemi_annot_owner_destroy(pc);
	kmem_mutex_destroy(&pc->pc_depot_lock);
	kmemi_meta_free(d, pc, pc->pc_mapsize);
	kmemi_dom_op(d, -1);
}

/* ---- forwarders to the pool ---- */

void
pool_cache_set_drain_hook(pool_cache_t pc, void (*fn)(void *, int), void *arg)
{
	pool_set_drain_hook(&pc->pc_pool, fn, arg);
}

void
pool_cache_setlowat(pool_cache_t pc, int n)
{
	pool_setlowat(&pc->pc_pool, n);
}

void
pool_cache_sethiwat(pool_cache_t pc, int n)
{
	pool_sethiwat(&pc->pc_pool, n);
}

void
pool_cache_sethardlimit(
    pool_cache_t pc, int n, const char *warnmess, int ratecap)
{
	pool_sethardlimit(
	    &pc->pc_pool, n < 0 ? 0 : (unsigned int)n, warnmess, ratecap);
}

void
pool_cache_prime(pool_cache_t pc, int n)
{
	pool_prime(&pc->pc_pool, n);
}

unsigned int
pool_cache_nget(pool_cache_t pc)
{
	return pool_nget(&pc->pc_pool);
}

unsigned int
pool_cache_nput(pool_cache_t pc)
{
	return pool_nput(&pc->pc_pool);
}

/* ---- kmem_reap and statistics ---- */

static int
cache_fork_dom(struct kmem_domain *d, void *arg)
{
	int phase = *(int *)arg;
	pool_cache_t pc;
	unsigned int i;

	if (phase == KMEMI_FORK_PREPARE) {
		kmem_mutex_enter(&d->kd_pcg_init_lock);
		kmem_mutex_enter(&d->kd_pc_list_lock);
		for (pc = d->kd_pc_list; pc != NULL; pc = pc->pc_next) {
			for (i = 0; i < pc->pc_ncpu; i++)
				kmem_spin_enter(&pc->pc_cpus[i].cc_lock);
			kmem_mutex_enter(&pc->pc_depot_lock);
		}
		kmem_mutex_enter(&d->kd_pcg_lock);
		return 0;
	}
	kmem_mutex_exit(&d->kd_pcg_lock);
	for (pc = d->kd_pc_list; pc != NULL; pc = pc->pc_next) {
		if (phase == KMEMI_FORK_CHILD)
			pc->pc_refcnt = 0; /* walkers: other threads */
		kmem_mutex_exit(&pc->pc_depot_lock);
		for (i = 0; i < pc->pc_ncpu; i++)
			kmem_spin_exit(&pc->pc_cpus[i].cc_lock);
	}
	if (phase == KMEMI_FORK_CHILD && d->kd_pc_list_cv_ready)
		kmem_cond_init(&d->kd_pc_list_cv);
	kmem_mutex_exit(&d->kd_pc_list_lock);
	kmem_mutex_exit(&d->kd_pcg_init_lock);
	return 0;
}

void
kmemi_cache_fork(int phase)
{
	kmemi_dom_foreach(cache_fork_dom, &phase);
}

/* kmem_reap, kmem_reap_all: in the thread's current domain. */
void
kmem_reap(void)
{
	struct kmem_domain *d = kmemi_dom_cur();

	kmemi_cache_reap_all(d, false);
	kmemi_page_arena_purge(d, true);
}

void
kmem_reap_all(void)
{
	struct kmem_domain *d = kmemi_dom_cur();

	kmemi_cache_reap_all(d, true);
	kmemi_page_arena_purge(d, true);
}

int
kmem_pool_cache_stats(pool_cache_t pc, struct kmem_pool_stats *st)
{
	struct kmem_domain *d = PC_DOM(pc);
	unsigned int i;
	struct pcg *g;

	kmem_pool_stats(&pc->pc_pool, st);
	st->ps_cached = true;
	for (i = 0; i < pc->pc_ncpu; i++) {
		struct pc_cpu *cc = &pc->pc_cpus[i];

		kmem_spin_enter(&cc->cc_lock);
		st->ps_cpuhit += cc->cc_hits;
		st->ps_cpumiss += cc->cc_misses;
		if (cc->cc_current != NULL) {
			uint64_t w = pc_cur_word(cc);

			st->ps_cached_objects += PCG_WORD_AVAIL(w);
			st->ps_cpuhit += PCG_WORD_OPS(w);
		}
		if (cc->cc_previous != NULL) {
			st->ps_cached_objects += cc->cc_previous->pcg_avail;
			st->ps_cpuhit += pcg_ops(cc->cc_previous);
		}
		kmem_spin_exit(&cc->cc_lock);
	}
	kmem_mutex_enter(&pc->pc_depot_lock);
	i = atomic_load_explicit(&pc->pc_sizeidx, memory_order_relaxed);
	st->ps_groupsize = pcg_ladder[i];
	st->ps_nfull = pc->pc_nfull;
	for (g = pc->pc_full; g != NULL; g = g->pcg_next)
		st->ps_cached_objects += g->pcg_avail;
	st->ps_depothit = pc->pc_depothit;
	st->ps_depotmiss = pc->pc_depotmiss;
	st->ps_contended = pc->pc_contended;
	kmem_mutex_exit(&pc->pc_depot_lock);
	kmem_mutex_enter(&d->kd_pcg_lock);
	st->ps_nempty = d->kd_pcg_nempty[i];
	kmem_mutex_exit(&d->kd_pcg_lock);
	return 0;
}

unsigned int
kmem_pool_cache_ncpu(pool_cache_t pc)
{
	return pc->pc_ncpu;
}

int
kmem_pool_cache_cpu_stats(pool_cache_t pc, unsigned int cpu,
    unsigned long *hits, unsigned long *misses, unsigned long *held)
{
	struct pc_cpu *cc;

	if (cpu >= pc->pc_ncpu)
		return EINVAL;
	cc = &pc->pc_cpus[cpu];
	kmem_spin_enter(&cc->cc_lock);
	*hits = cc->cc_hits + PCG_WORD_OPS(pc_cur_word(cc)) +
	    (cc->cc_previous != NULL ? pcg_ops(cc->cc_previous) : 0);
	*misses = cc->cc_misses;
	*held = PCG_WORD_AVAIL(pc_cur_word(cc)) +
	    (cc->cc_previous != NULL ? cc->cc_previous->pcg_avail : 0);
	kmem_spin_exit(&cc->cc_lock);
	return 0;
}

void
kmem_pool_cache_print_stats(void (*pr)(const char *, ...))
{
	kmem_stats_print(pr, KMEM_STATS_CACHES);
}

/* ---- consistency checks ---- */

#define PC_CHECK(pc, cond, ...)                                                \
	do {                                                                   \
		if (kmem_unlikely(!(cond)))                                    \
			kmemi_check_fail("kmem_pool_cache_check", "cache",     \
			    (pc)->pc_pool.pr_wchan, __VA_ARGS__);              \
	} while (0)

/* Whether n is a size of the magazine ladder. */
static bool
pcg_ladder_size(unsigned int n)
{
	unsigned int i;

	for (i = 0; i < PCG_NSIZES; i++)
		if (pcg_ladder[i] == n)
			return true;
	return false;
}

/* "the current group of CPU 3", "a depot group": for reports. */
static const char *
pc_where(char *buf, size_t n, const char *which, int cpu)
{
	if (cpu < 0)
		kmem_snprintf(buf, n, "a %s group", which);
	else
		kmem_snprintf(buf, n, "the %s group of CPU %d", which, cpu);
	return buf;
}

/* CPU slot i's groups (its lock held); the objects they hold. */
static unsigned long
pc_check_cpu_locked(pool_cache_t pc, unsigned int i)
{
	const struct pc_cpu *cc = &pc->pc_cpus[i];
	const struct pcg *g[2] = {cc->cc_current, cc->cc_previous};
	static const char which[2][9] = {"current", "previous"};
	unsigned long n = 0;
	unsigned int k;
	char where[48];

	for (k = 0; k < 2; k++) {
		if (g[k] == NULL)
			continue;
		PC_CHECK(pc,
		    pcg_ladder_size(g[k]->pcg_size) &&
			g[k]->pcg_avail <= g[k]->pcg_size,
		    "%s, %p, holds %u objects, capacity %u",
		    pc_where(where, sizeof where, which[k], (int)i),
		    (const void *)g[k], g[k]->pcg_avail, g[k]->pcg_size);
		n += g[k]->pcg_avail;
	}
	PC_CHECK(pc, g[0] == NULL || g[0] != g[1],
	    "CPU %u has group %p as both current and previous", i,
	    (const void *)g[0]);
	return n;
}

/* The depot (its lock held): full groups, as many as counted. */
static unsigned long
pc_check_depot_locked(pool_cache_t pc)
{
	unsigned long n = 0, objs = 0;
	const struct pcg *g;

	KMEM_ASSERT(kmem_mutex_owned(&pc->pc_depot_lock));
	for (g = pc->pc_full; g != NULL; g = g->pcg_next) {
		/* Bounded: a list that loops ends here. */
		PC_CHECK(pc, ++n <= pc->pc_nfull,
		    "the depot holds more than pc_nfull (%lu) groups",
		    pc->pc_nfull);
		PC_CHECK(pc,
		    pcg_ladder_size(g->pcg_size) &&
			g->pcg_avail == g->pcg_size && pcg_ops(g) == 0,
		    "depot group %p holds %u objects, capacity %u, %lu "
		    "operations: not a full group off its CPU",
		    (const void *)g, g->pcg_avail, g->pcg_size, pcg_ops(g));
		objs += g->pcg_avail;
	}
	PC_CHECK(pc, n == pc->pc_nfull && pc->pc_full_min <= pc->pc_nfull,
	    "the depot holds %lu full groups; pc_nfull says %lu, its "
	    "working-set minimum %lu",
	    n, pc->pc_nfull, pc->pc_full_min);
	PC_CHECK(pc,
	    atomic_load_explicit(&pc->pc_sizeidx, memory_order_relaxed) <
		PCG_NSIZES,
	    "group size index %u",
	    atomic_load_explicit(&pc->pc_sizeidx, memory_order_relaxed));
	return objs;
}

/* The shared empty groups (d->kd_pcg_lock held); reported under cache pc. */
static void
pcg_check_empties_locked(pool_cache_t pc)
{
	struct kmem_domain *d = PC_DOM(pc);
	unsigned long n;
	const struct pcg *g;
	unsigned int i;

	for (i = 0; i < PCG_NSIZES; i++) {
		n = 0;
		for (g = d->kd_pcg_empty[i]; g != NULL; g = g->pcg_next) {
			PC_CHECK(pc, ++n <= d->kd_pcg_nempty[i],
			    "the empty groups of size %u are more than "
			    "counted (%lu)",
			    pcg_ladder[i], d->kd_pcg_nempty[i]);
			PC_CHECK(pc,
			    g->pcg_size == pcg_ladder[i] && g->pcg_avail == 0 &&
				pcg_ops(g) == 0,
			    "empty group %p of size %u holds %u objects, "
			    "capacity %u, %lu operations",
			    (const void *)g, pcg_ladder[i], g->pcg_avail,
			    g->pcg_size, pcg_ops(g));
		}
		PC_CHECK(pc,
		    n == d->kd_pcg_nempty[i] &&
			d->kd_pcg_empty_min[i] <= d->kd_pcg_nempty[i],
		    "%lu empty groups of size %u; counted %lu, working-set "
		    "minimum %lu",
		    n, pcg_ladder[i], d->kd_pcg_nempty[i],
		    d->kd_pcg_empty_min[i]);
	}
}

/* Every object of g is an item out of the pool, with its tag if tagged. */
static void
pc_check_objects(
    pool_cache_t pc, const struct pcg *g, const char *which, int cpu)
{
	const char *why;
	unsigned int i;
	char where[48];
	void *obj;

	for (i = 0; g != NULL && i < g->pcg_avail; i++) {
		obj = g->pcg_objects[i].po_va;
		why = kmemi_pool_out_item_locked(&pc->pc_pool, obj);
		PC_CHECK(pc, why == NULL, "object %p in %s, %p: %s", obj,
		    pc_where(where, sizeof where, which, cpu), (const void *)g,
		    why);
		PC_CHECK(pc,
		    pc->pc_hooks == NULL ||
			pc->pc_hooks->oh_check(&obj, 1) == 1,
		    "object %p in %s, %p, lacks its free tag", obj,
		    pc_where(where, sizeof where, which, cpu), (const void *)g);
	}
}

/* KMEM_DEBUG=check at a depot exchange: CPU slot cc's lock, the depot's. */
static void
pc_check_exchange(pool_cache_t pc, const struct pc_cpu *cc)
{
	(void)pc_check_cpu_locked(pc, (unsigned int)(cc - pc->pc_cpus));
	(void)pc_check_depot_locked(pc);
}

void
kmem_pool_cache_check(pool_cache_t pc)
{
	struct kmem_domain *d = PC_DOM(pc);
	struct pool *pp = &pc->pc_pool;
	unsigned long cached = 0;
	const struct pcg *g;
	unsigned int i;

	/*
	 * Everything at once, in the lock order (section 4; the CPU slots
	 * in index order, as fork's prepare takes them, each fenced as
	 * invalidation does), so that no object is seen twice or missed.
	 */
	for (i = 0; i < pc->pc_ncpu; i++)
		(void)pc_slot_lock(pc, i);
	kmem_mutex_enter(&pc->pc_depot_lock);
	kmem_mutex_enter(&d->kd_pcg_lock);
	kmem_plock_enter(&pp->pr_lock);
	kmemi_pool_check_locked(pp);
	for (i = 0; i < pc->pc_ncpu; i++) {
		cached += pc_check_cpu_locked(pc, i);
		pc_check_objects(
		    pc, pc->pc_cpus[i].cc_current, "current", (int)i);
		pc_check_objects(
		    pc, pc->pc_cpus[i].cc_previous, "previous", (int)i);
	}
	cached += pc_check_depot_locked(pc);
	for (g = pc->pc_full; g != NULL; g = g->pcg_next)
		pc_check_objects(pc, g, "depot", -1);
	PC_CHECK(pc, cached <= pp->pr_nout,
	    "%lu objects cached, but only %u are out of the pool", cached,
	    pp->pr_nout);
	pcg_check_empties_locked(pc);
	kmem_plock_exit(&pp->pr_lock);
	kmem_mutex_exit(&d->kd_pcg_lock);
	kmem_mutex_exit(&pc->pc_depot_lock);
	for (i = pc->pc_ncpu; i-- > 0;)
		pc_slot_unlock(&pc->pc_cpus[i]);
}

static int
check_pool_or_cache(struct pool *pp, void *arg)
{
	/* Set last, with release, by a cache being created (pool_drain). */
	pool_cache_t pc = __atomic_load_n(&pp->pr_cache, __ATOMIC_ACQUIRE);

	(void)arg;
	if (pc != NULL)
		kmem_pool_cache_check(pc);
	else
		kmem_pool_check(pp);
	return 0;
}

static int
check_arena(vmem_t *vm, void *arg)
{
	(void)arg;
	kmem_vmem_check(vm);
	return 0;
}

void
kmem_check_all(void)
{
	kmem_options_init();
	(void)kmemi_pool_foreach(check_pool_or_cache, NULL);
	(void)kmemi_vmem_foreach(check_arena, NULL);
}

/*
 * Objects of pc out with its callers: the pool's items out less those
 * the CPU groups and the depot hold, counted under every lock at once
 * (as kmem_pool_cache_check takes them), without moving anything: for
 * kmem_domain_destroy, whose EBUSY frees nothing.
 */
unsigned long
kmemi_cache_outstanding(pool_cache_t pc)
{
	struct pool *pp = &pc->pc_pool;
	unsigned long cached = 0, nout;
	const struct pcg *g;
	unsigned int i, k;

	for (i = 0; i < pc->pc_ncpu; i++)
		(void)pc_slot_lock(pc, i);
	kmem_mutex_enter(&pc->pc_depot_lock);
	kmem_plock_enter(&pp->pr_lock);
	for (i = 0; i < pc->pc_ncpu; i++) {
		const struct pc_cpu *cc = &pc->pc_cpus[i];
		const struct pcg *cg[2] = {cc->cc_current, cc->cc_previous};

		for (k = 0; k < 2; k++)
			if (cg[k] != NULL)
				cached += cg[k]->pcg_avail;
	}
	for (g = pc->pc_full; g != NULL; g = g->pcg_next)
		cached += g->pcg_avail;
	nout = pp->pr_nout;
	kmem_plock_exit(&pp->pr_lock);
	kmem_mutex_exit(&pc->pc_depot_lock);
	for (i = pc->pc_ncpu; i-- > 0;)
		pc_slot_unlock(&pc->pc_cpus[i]);
	if (cached > nout) /* an object put twice, counted twice */
		kmem_panic(
		    "kmem_domain_destroy: cache %s holds %lu free objects "
		    "but handed out only %lu: an object was freed twice",
		    pp->pr_wchan, cached, nout);
	return nout - cached;
}
