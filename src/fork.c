/*
 * fork.c -- fork(2) in a threaded program that uses kmem.
 *
 * A lock that another thread holds when the process forks is copied
 * locked into the child, where no thread will ever release it: the
 * child's first allocation would hang (the field failure every allocator
 * meets; jemalloc PR #942 was one forgotten mutex).  So fork is bracketed
 * by handlers (pthread_atfork, registered when the library is loaded:
 * fork_register):
 *
 *   prepare  takes every lock of every layer, in the order below;
 *   parent   releases them all;
 *   child    releases them all, after each layer has cleared what the
 *            threads that were not copied left behind: waiter counts, a
 *            pool grow in progress, list walkers' references, condition
 *            variables (re-initialised).
 *
 * The order is the library's lock order, outermost first, so that prepare
 * never waits for a lock while holding one that its holder wants:
 *
 *   stdio's list lock (the C library's, kmem_prim_stdio_lock; once a
 *   layer of kmem has started: kmemi_fork_init)
 *   -> kmem init_lock -> options kd_opts_lock -> debug dbg.lock
 *   -> pool: page_arena_lock, phpool_lock
 *   -> pool_cache: pcg_init_lock, pc_list_lock, per cache (each CPU
 *      slot's spin lock, then the depot lock), pcg_lock
 *   -> pool: pool_list_lock, every pool's lock
 *   -> vmem: vmem_list_lock, every arena's lock (the metadata arena
 *      "kmeta" among them), bt_supply_lock
 *   -> meta: meta_lock (the metadata region's registry, a leaf)
 *
 * stdio's list lock comes first because glibc's fork(2) takes it after
 * the prepare handlers and before its own malloc's locks: fflush(NULL)
 * holds it while it waits for each FILE's lock, and a thread in getline
 * holds its FILE's lock while it calls malloc.  Had prepare taken kmem's
 * locks first, that malloc would wait for the forking thread, fflush for
 * getline, and fork for fflush (glibc bug 19431; the test
 * malloc_fork_stdio_mt).  Taking it first, prepare waits until no FILE
 * walk is in progress, and nothing that holds a kmem lock ever waits for
 * stdio.  glibc's fork then takes it again (it is recursive) and drops
 * that hold before the parent handler, which drops ours; in the child,
 * glibc resets it and so does the child handler.
 *
 * (Nesting that exists in the code: setup under init_lock creates the
 * page arena and caches; the page arena's creation under page_arena_lock
 * creates a vmem arena, pools and caches; a CPU slot's lock is held while
 * taking the depot lock or pcg_lock; list locks are taken before the
 * locks of their members; dbg.lock is held around a pool lookup; a
 * pool's lock, or dbg.lock, around an allocation from the metadata arena
 * (a hash or record table); an arena's lock and bt_supply_lock around the
 * registration of a metadata run.  No pool or arena lock is otherwise
 * held while calling into another layer.)
 *
 * An rseq fast path in flight on another CPU needs nothing: it commits
 * with one store, so the child's copy has it done or not done, and the
 * object it took belongs to a thread that is gone -- a leak in the child,
 * never a corruption.  Memory only the vanished threads could free stays
 * allocated in the child.
 *
 * A process that never created a thread skips all of it (fork_st.locked).
 *
 * The statistics page (stats.c section 5, KMEM_STATS_LIVE): prepare first
 * waits for a snapshot in progress (its walk takes the locks below) and
 * holds it off until parent or child; the child handler, after every
 * lock is free again -- in every process, threaded or not -- gives the
 * child its own page, for its pid, counting only what it does after the
 * fork.
 *
 * Failure policy: if the handlers cannot be registered (pthread_atfork
 * fails), kmem warns once; forking is then as unsafe as without kmem.
 */
#include <stdatomic.h>
#include <stdbool.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/meta.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"

static void
fork_phase(int phase)
{
	kmemi_dom_fork(phase); /* the domain registry: held throughout */
	kmemi_kmem_fork(phase);
	kmemi_options_fork(phase);
	kmemi_debug_fork(phase);
	kmemi_pool_fork_early(phase);
	kmemi_cache_fork(phase);
	kmemi_pool_fork(phase);
	kmemi_vmem_fork(phase);
	kmemi_meta_fork(phase);
}

/* Release in the reverse order. */
static void
fork_release(int phase)
{
	kmemi_meta_fork(phase);
	kmemi_vmem_fork(phase);
	kmemi_pool_fork(phase);
	kmemi_cache_fork(phase);
	kmemi_pool_fork_early(phase);
	kmemi_debug_fork(phase);
	kmemi_options_fork(phase);
	kmemi_kmem_fork(phase);
	kmemi_dom_fork(phase);
}

/* The handlers' state, process-wide (domain.c: "What stays global"). */
static struct {
	/*
	 * A process that has never had a second thread takes no locks: no
	 * one else can hold one, and a fork from a signal handler that
	 * interrupted kmem would otherwise wait for itself (glibc's malloc
	 * does the same).  Only the forking thread writes this, between
	 * prepare and parent/child.
	 */
	bool locked;
	/*
	 * Whether any layer of kmem has started (kmemi_fork_init, from the
	 * options' set-up, which every layer runs before it first takes a
	 * lock): until then no thread can wait for a kmem lock, and prepare
	 * leaves stdio's list lock alone.  stdio: this fork took it (the
	 * forking thread only).
	 */
	atomic_bool kmem_used;
	bool stdio;
	/*
	 * The thread that holds every lock, from prepare to parent/child
	 * (0: none).  Other libraries' fork handlers run in that window too
	 * -- their prepare handlers after ours if they registered before
	 * us, their parent and child handlers before ours -- and may call
	 * malloc and free, which must not wait for the locks this thread
	 * holds (kmemi_fork_by_self; malloc.c serves them on the side).
	 * Set before the first lock is taken and cleared after the last is
	 * released, so that the layers' own handlers, which walk the domain
	 * registry while its lock is held (kmemi_dom_foreach), know too.
	 */
	_Atomic uintptr_t owner;
} fork_st;

static void
fork_prepare(void)
{
	fork_st.locked = !kmem_prim_single_threaded();
	if (fork_st.locked) {
		fork_st.stdio = atomic_load_explicit(
		    &fork_st.kmem_used, memory_order_acquire);
		if (fork_st.stdio)
			kmem_prim_stdio_lock();
		atomic_store_explicit(&fork_st.owner, kmem_prim_thread_id(),
		    memory_order_relaxed);
		kmemi_stats_live_fork(KMEMI_FORK_PREPARE);
		fork_phase(KMEMI_FORK_PREPARE);
	}
}

static void
fork_parent(void)
{
	if (fork_st.locked) {
		fork_release(KMEMI_FORK_PARENT);
		kmemi_stats_live_fork(KMEMI_FORK_PARENT);
		atomic_store_explicit(&fork_st.owner, 0, memory_order_relaxed);
		if (fork_st.stdio)
			kmem_prim_stdio_unlock(false);
	}
}

static void
fork_child(void)
{
	if (fork_st.locked) {
		fork_release(KMEMI_FORK_CHILD);
		atomic_store_explicit(&fork_st.owner, 0, memory_order_relaxed);
		if (fork_st.stdio)
			kmem_prim_stdio_unlock(true);
	}
	/* Every lock free again: the child's own statistics page. */
	kmemi_stats_live_fork(KMEMI_FORK_CHILD);
}

bool
kmemi_fork_by_self(void)
{
	uintptr_t o =
	    atomic_load_explicit(&fork_st.owner, memory_order_relaxed);

	return o != 0 && o == kmem_prim_thread_id();
}

/*
 * The handlers are registered when the library is loaded, not when kmem
 * is first used, for two reasons.  Prepare handlers run in the reverse
 * order of registration, and those that run after ours run with stdio's
 * list lock held: registered early, ours runs after those of everything
 * registered later (main's, most libraries', every one registered
 * at run time), as glibc's own malloc locks come after every handler.
 * (A handler registered by a library initialised before this one still
 * runs after ours: if it waits for a lock whose holder calls fopen,
 * fclose or fflush(NULL), the fork hangs.  glibc's fork takes the list
 * lock after every handler; a handler cannot, so this is the price of
 * the order that 19431 needs.)  And in libkmem-malloc.so, kmem's set-up
 * may run inside the program's first malloc, and a first malloc inside
 * pthread_atfork (its handler table growing) would call pthread_atfork
 * again under glibc's atfork lock -- the process hung
 * (malloc_atfork_first).  Allocations before this runs (the dynamic
 * linker's, .preinit_array's) are made with no handlers, as in a process
 * that has no threads yet.  Tests: malloc_fork_stdio_mt,
 * kmem_fork_atfork_mt.
 */
void
kmemi_fork_register(void)
{
	if (kmem_prim_atfork(fork_prepare, fork_parent, fork_child) != 0)
		kmem_warn("cannot register fork handlers: a fork while other "
			  "threads allocate may hang the child");
}

#ifndef KMEM_FREESTANDING /* no fork(2), maybe no constructors */
__attribute__((constructor)) static void
fork_register(void)
{
	kmemi_fork_register();
}
#endif

void
kmemi_fork_init(void)
{
	atomic_store_explicit(&fork_st.kmem_used, true, memory_order_release);
}
