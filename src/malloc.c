/*
 * malloc.c -- the C library's allocator on kmem: libkmem-malloc.so, which
 * replaces glibc's malloc when preloaded (LD_PRELOAD) or linked first.
 *
 * 1. What it is.  malloc, free, calloc, realloc, reallocarray,
 *    aligned_alloc, posix_memalign, memalign, valloc, pvalloc,
 *    malloc_usable_size and malloc_trim; C23's free_sized and
 *    free_aligned_sized; C++'s replaceable operator new, new[], delete and
 *    delete[] in all their forms (section 10); and glibc's introspection,
 *    mallinfo2, mallinfo, malloc_stats and malloc_info, in malloc_info.c --
 *    and nothing else (the
 *    version script src/libkmem-malloc.map): kmem's own API stays hidden,
 *    so a preloaded program never sees pool_init or vmem_create.  The
 *    library is C and needs only libc: the C++ names are defined here
 *    under their Itanium names, and the C++ runtime is reached by weak
 *    references.
 *
 * 2. Paths.  A request of up to 16 KiB is an object of the smallest kmem
 *    class that holds it, never below the 16-byte class (malloc promises
 *    16-byte alignment, as glibc does); 16 KiB to 64 KiB a large block
 *    from kva's quantum caches; beyond, a page-rounded segment of kva (the
 *    shared fast paths of kmem_impl.h).  free(p) has no size: kmem's page
 *    map (kmem.c section 4) says, from p's page alone, which class owns
 *    it, or that a large block starts there; it also says when p is
 *    nothing kmem handed out -- reported, never trusted.  There is no
 *    header in the objects.  realloc keeps a block whose class is
 *    still the size's (a large one while at least half used); a large
 *    block growing or shrinking past that is resized in place in kva, or
 *    its pages moved by mremap, rather than copied (kmemi_large_realloc).
 *
 * 3. Double frees.  A free object carries a tag in its second word (an
 *    object is 16 bytes or more): its address xor a secret of the process
 *    (kmemi_tag, from kmem_prim_secret), stored by free -- a store, no
 *    load: the object may be cold, and a load there cost 17 ns of the
 *    65 ns operation of the random-sizes benchmark -- and put in objects a miss
 * moves from the pool into a CPU's group (pool_cache.c).  Every object that
 * leaves a group, to malloc's fast path (checked here) or to the cache's slow
 * path and the pool (checked there), must carry its tag, and malloc clears it.
 *    An object freed twice sits in the groups twice; whichever copy
 *    leaves second finds its tag cleared (or the program's data) and is
 *    reported -- before the object has two owners -- as a double free
 *    when the other copy is still cached (kmemi_cache_holds_free), else
 *    as "freed twice or written after free".  So a double free is found
 *    when its object comes back out, not at the second free; a write
 *    after free into the second word is found the same way.  A large
 *    block's page-map word says live or freed, so a second free finds it
 *    freed and is reported at the call: the slow path flips the word by
 *    a compare-and-swap, the fast path of kva's quantum-cached sizes by
 *    a plain store, and two fast frees at the same instant are found
 *    when the block is handed out again (kmemi_large_free_cache).
 *
 * 4. Alignment.  Up to 16: any class.  Up to a page: the first class
 *    from the size up that is a multiple of the alignment (pool pages are
 *    page-aligned and carry no colour, so its objects are aligned);
 *    beyond: a large block by vmem_xalloc, freed by vmem_xfree (its
 *    page-map word says so).  Tested to 1 GiB.
 *
 * 5. Start-up and recursion.  The first call sets kmem up.  What that
 *    calls (pthread_atfork, sysconf) may call malloc, which is this one:
 *    the thread setting kmem up (kmemi_setup_by_self) is served from a
 *    static bootstrap area instead of waiting for itself.  So is the
 *    thread running fork(2) while it holds every lock of the library
 *    (kmemi_fork_by_self): other libraries' fork handlers may allocate;
 *    their frees in that window are deferred on a list threaded through
 *    the objects and done by the next slow path; a realloc there copies
 *    (no resize or page move in kva).  Bootstrap blocks are never reused
 *    (free ignores them; realloc copies out).  No TLS is
 *    used here but the thread's bins (section 12); the library is built
 *    with initial-exec TLS (those, and prim's thread hash), so nothing
 *    calls __tls_get_addr, which may allocate.  The
 *    environment is read without allocating (kmem_prim_getenv).
 *
 * 6. Threads and fork.  kmem's caches are per CPU; malloc puts a small
 *    bin per thread in front of them for every class (section 12), which
 *    a thread's exit empties.  Fork is fork.c's:
 *    handlers take every lock in the library's order; the child can
 *    allocate.  They are registered by this library's constructor, not
 *    by kmem's set-up inside a malloc (fork.c, fork_register).  Usable before
 * main (a constructor's malloc sets kmem up) and after exit handlers (nothing
 * is torn down; KMEM_STATS prints from a destructor that allocates nothing).
 *
 * 7. Debugging.  With KMEM_DEBUG on, every call goes to debug.c, whose
 *    record table gives free its size and names what is wrong: double
 *    free, foreign and interior pointers, redzones, write after free,
 *    guard pages, and a sized free's wrong size (section 10);
 *    malloc_usable_size is then the size asked for, so writing all of it
 *    never trips a redzone.
 *
 * 8. Failure policy (glibc's where C leaves it open).  Out of memory:
 *    the caches are reaped once and the request retried, then NULL with
 *    errno ENOMEM; so for every size that cannot be had (2^47 bytes and
 *    more, calloc and reallocarray overflow).  malloc(0) is a unique
 *    16-byte object.  realloc(p, 0) frees p and returns NULL, errno
 *    untouched; a failed realloc leaves p as it was.  posix_memalign with
 *    an alignment that is not a power of two multiple of sizeof(void *):
 *    EINVAL, *memptr untouched; aligned_alloc with one that is not a power
 *    of two: NULL, EINVAL (C17); memalign rounds it up (glibc).  free and
 *    successful calls leave errno alone.  Bad pointers abort through
 *    kmem_panic with a "kmem: " line naming the call and the pointer.
 *
 * 9. Locking.  None of its own: the caches' and kva's.  The deferred
 *    list is a lock-free stack (pushes by the forking thread, one
 *    exchange to take it all); the bootstrap area a lock-free bump.
 *
 * 10. Sized frees and C++.  A C++ program calls operator new and delete,
 *    which were libstdc++'s wrappers around malloc and free; they are
 *    these now, the twenty forms (plain, nothrow, aligned by
 *    std::align_val_t, sized delete, sized and aligned delete; new[] and
 *    delete[] alike), and C23's free_sized(p, size) and
 *    free_aligned_sized(p, align, size).
 *    - The size is never trusted, and buys no speed: the class must come
 *      from p's page-map word anyway (a wrong size must not send an
 *      object to another class's cache, and free's checks should stay),
 *      and decoding it from the word costs no more than computing it
 *      from the size.  Measured (issue 12): a sized path that took the
 *      class from the size and required the word to say that class, p
 *      starting an object of it, was 0.3-0.45 ns slower per new+delete
 *      pair than free (5.3 ns); without the start-of-object check, 0.1-0.2
 *      ns faster, but an interior pointer would then be cached as an
 *      object.  So without debugging a sized free is free(p), inlined
 *      (flatten): the same cost, the same checks and reports (which name
 *      free), the true class whatever the size says -- a wrong size is
 *      neither reported nor harmful.  With a KMEM_DEBUG item on it is the
 *      debug layer's sized free, which reports a size other than the one
 *      asked for ("FN(PTR, SIZE) != allocated size N"); size 0 (new(0),
 *      malloc(0): recorded as 1) is freed unsized.  The alignment of
 *      free_aligned_sized and the aligned deletes is not read: the page
 *      map (or the debug record) knows the block.
 *    - The unsized deletes are free: the plain ones alias it (no
 *      instruction between), the nothrow and aligned ones call it (the
 *      page map knows the alignment); their reports name free.
 *    - new is malloc's fast path; on failure (new_fail) the throwing
 *      forms call std::get_new_handler()'s handler and retry while there
 *      is one, then throw std::bad_alloc by libstdc++'s
 *      std::__throw_bad_alloc (libc++ exports it too).  Both are weak
 *      references, bound if the C++ runtime is loaded with the program;
 *      without one (a C program calling _Znwm; a C++ library dlopen'ed
 *      later, whose runtime our references never see) the failure aborts
 *      with a "kmem: " line.  A handler's exception and bad_alloc unwind
 *      through our frames: malloc.c is compiled with -fexceptions.  An
 *      alignment that is not a power of two throws bad_alloc at once, as
 *      libstdc++'s operator new does.  The nothrow forms return NULL
 *      without calling the new handler (which may throw, and a C frame
 *      cannot catch it): unlike libstdc++'s, which call the handler.
 *
 * 11. Memory goes back while the program runs.  A program that frees
 *    much and goes on with a few sizes that always hit their CPU's
 *    group never reaches a slow path, where the caches shrink to their
 *    working sets and kva purges.  So one get or put in 16384 on a group
 *    ticks (pool_cache_impl.h, PC_TICK_BITS), and a free whose put
 *    ticked -- a class's, or a large block's into kva's quantum cache
 *    (free_large) -- calls kmemi_tick after it, holding nothing: at most
 *    every reap_tick_ms (250) it does the optional reaper thread's work,
 *    but only a free's share of kva's purge pass (kmem.c section 5).
 *    kmem_free does not tick: the reap runs the destructors of every
 *    cache of the domain, and a kmem_free called with the caller's own
 *    lock held would run a pool_cache's destructor -- which may take
 *    that lock -- inside it.  malloc's free may: libkmem-malloc.so
 *    exports no pool_cache, so its caches have no destructor.  A free
 *    into a thread's bin does not reach a group: the bins count their own
 *    frees and tick every TB_TICK (16384) of them.  A thread without bins
 *    (one that only frees) ticks from its puts, and from every 16th put
 *    that takes the cache's slow path (free_put): groups that only take
 *    puts leave for the depot long before their 2^14th operation.
 *
 * 12. A thread's bins (a departure from DESIGN.md's per-CPU-only front,
 *    measured in docs/BENCHMARKS.md, "A thread's bins").  For each class
 *    (up to KMEM_CACHE_MAX, 16 KiB) a thread has a stack of free objects
 *    in initial-exec TLS
 *    (struct tbins): malloc pops, free pushes, with no atomic, no rseq
 *    section and no slot -- the pair's critical chain (the pointer free
 *    was given, its page-map word, the class, the store malloc loads
 *    next) is shorter than through a CPU slot's word and group.
 *    - Bounds: a bin holds at most TB_MAX (128) objects and TB_BYTES (8
 *      KiB; TB_BYTES_BIG, 16 KiB, above 1280 B), but no fewer than
 *      TB_MIN (16) up to 1280 B and TB_MIN_BIG (2) above: at most 658
 *      KiB a thread (220 KiB of it in the classes up to 1280 B), if it
 *      uses every class and leaves each bin full.
 *      The stacks are packed in 12.5 KiB of static TLS a thread
 *      (libkmem-malloc.so is preloaded or linked, not dlopen'ed).  The
 *      classes above 1280 B had no bins at first (their pair paid the CPU
 *      layer: 6.1-6.3 ns against 4.5-4.7 with bins of 2-4, 2026-12-08);
 *      a bin of 2 moves one object at a miss, so a run of frees of one
 *      large class pays a spill for each (the 1000-object batch of 2 KiB,
 *      17.3 to 20.6 ns: docs/BENCHMARKS.md; 16 KiB instead of 8 for
 *      those classes took it to 21.3 ns, and 4 KiB 10 % less time).
 *      TB_MAX was 64: at 128 the classes up to 64 B move 64 objects a
 *      miss, and the batch of 64 B took 8 % less time, gthread 5 %
 *      (2026-12-08).
 *    - Misses move half a bin at once: an empty bin is filled from this
 *      CPU's current group, a full one spills its upper half into it, in
 *      one restartable section each (pc_rseq_get_many_va,
 *      pc_rseq_put_many_va, pool_cache_impl.h); when the group cannot
 *      (empty, full, locked) the single-object paths and the cache's slow
 *      path run as before, and move groups to and from the depot.
 *    - The objects in a bin are free objects as in a group: tagged
 *      (section 3), checked and untagged when they leave; a double free
 *      is reported when its second copy leaves, from a bin or a group.
 *    - Set-up: at a thread's first malloc miss with the gate open (bar
 *      its rseq bit: without rseq the bins still take frees, and misses
 *      take the slow path), with a thread-exit hook (a thread-specific
 *      key, kmem_prim_thread_exit_hook) that empties the bins at the
 *      thread's exit and shuts them (a later free takes the CPU layer);
 *      a thread without the hook has no bins.  Until then
 *      and after, the bins' bounds are NULL: empty to malloc, full to
 *      free.  Statistics (mallinfo2, malloc_info, malloc_stats) and
 *      malloc_trim empty the calling thread's bins first, so that its
 *      own frees count as free; other threads' binned objects count as
 *      in use until they miss, exit or trim.  The caches' counts of gets
 *      and puts are of the objects that reach them: a bin's own pops and
 *      pushes are not counted (a per-class count, folded into the
 *      group's operations at each fill and spill, cost 0.3-0.4 ns of a
 *      4.6-4.7 ns pair, docs/BENCHMARKS.md: measured, not kept).
 *    - Fork: the child keeps the forking thread's bins; the other
 *      threads' are lost with those threads (at most their bins' bound
 *      each).  A fork handler's free goes to its bin, which takes no
 *      lock; its spill, if any, fails on the held slot lock and defers.
 *    - Signals: a bin operation is not restartable.  A signal handler's
 *      malloc or free that interrupts one on the same thread can hand an
 *      object out twice.  malloc is not async-signal-safe (POSIX; glibc's
 *      per-thread cache has the same window); the CPU layer's lock-free
 *      paths, which restart, made kmem's window smaller before.
 *    - Measured (2026-12-07, one run with the peers, 3 repetitions):
 *      pairs of 64 B and 1 KiB 5.4 to 4.3-4.4 ns, gthread 25-30 % and
 *      random sizes 15 % faster, server 21 % more steps a CPU-second,
 *      python-malloc 4 % less CPU; the 1000-object batch cells of 64 B
 *      to 1 KiB 11-29 % slower (the half-bin moves cost more than they
 *      save when every object passes through the bin and the group).
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

#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/pool_cache_impl.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"

/* The exported names: the version script keeps everything else local. */
#define KMEM_EXPORT __attribute__((visibility("default")))

void *malloc(size_t size) KMEM_EXPORT;
void free(void *p) KMEM_EXPORT;
void *calloc(size_t n, size_t size) KMEM_EXPORT;
void *realloc(void *p, size_t size) KMEM_EXPORT;
void *reallocarray(void *p, size_t n, size_t size) KMEM_EXPORT;
void *aligned_alloc(size_t align, size_t size) KMEM_EXPORT;
int posix_memalign(void **memptr, size_t align, size_t size) KMEM_EXPORT;
void *memalign(size_t align, size_t size) KMEM_EXPORT;
void *valloc(size_t size) KMEM_EXPORT;
void *pvalloc(size_t size) KMEM_EXPORT;
size_t malloc_usable_size(void *p) KMEM_EXPORT;
int malloc_trim(size_t pad) KMEM_EXPORT;

#define MALLOC_ALIGN 16 /* what every malloc result is aligned to */
/* Larger requests never succeed (kmem.c's KMEM_SIZE_LIMIT, 2^47). */
#define MALLOC_MAX ((size_t)1 << 47)

/* The debug items among the gate's bits (kmem_impl.h). */
#define GATE_DEBUG() (KMEMI_GATE() & KMEM_GATE_DEBUG)

/* ---- the free tag (section 3) ---- */

static inline uintptr_t
tag_of(uintptr_t a)
{
	return a ^ kmemi_tag;
}

/*
 * Take the tag off a free object leaving a group: its second word, *w,
 * must be "want"; it is cleared.  True when it was not (the word then
 * holds its old value xor "want": tag_restore).  On x86-64 one xor into
 * memory checks and clears at once: one read-for-ownership of the line,
 * where a load, compare and store fetched a line another CPU's free had
 * written, then upgraded it (a producer's malloc of what consumers on
 * the other CPU freed spent 84-86 % of its time on the check).
 */
static inline bool
tag_take(uintptr_t *w, uintptr_t want)
{
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
	bool bad;

	__asm__("xorq %[want], %[w]"
		: [w] "+m"(*w), "=@ccnz"(bad)
		: [want] "r"(want));
	return bad;
#else
	uintptr_t old = *w;

	*w = old ^ want;
	return old != want;
#endif
}

/* After tag_take said no: the word as it was, for the report. */
static inline void
tag_restore(uintptr_t *w, uintptr_t want)
{
	*w ^= want;
}

/*
 * The tag as kmem's caches see it: hooks on the classes of 16 bytes and
 * more (kmemi_obj_hooks, pool_impl.h; installed by kmem's set-up, which
 * malloc's first call asks for, kmemi_setup_malloc).  Objects a miss
 * moves from the pool into a CPU's group get the tag a free would leave;
 * free objects leaving a group must carry it.  The cache knows nothing
 * of the format.
 */
static void
tag_fill(void *const *objs, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		((uintptr_t *)objs[i])[1] = tag_of((uintptr_t)objs[i]);
}

static unsigned int
tag_check(void *const *objs, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (kmem_unlikely(((const uintptr_t *)objs[i])[1] !=
			tag_of((uintptr_t)objs[i])))
			break;
	return i;
}

/* obj, free in cache pc, lacks its tag: say why ("fn"), abort. */
static _Noreturn KMEM_COLD void
tag_report(pool_cache_t pc, void *obj, const char *fn)
{
	uintptr_t word = ((uintptr_t *)obj)[1];
	const char *name = ((struct pool *)(void *)pc)->pr_wchan;

	if (kmemi_cache_holds_free(pc, obj))
		kmem_panic("%s: free object %p of cache %s is cached twice: "
			   "double free",
		    fn, obj, name);
	kmem_panic("%s: free object %p of cache %s was freed twice or written "
		   "after free (its second word is %#lx, not its free tag)",
	    fn, obj, name, (unsigned long)word);
}

/*
 * The same for class c's cache, looked up here, after tag_take found the
 * word wrong (restored first): a cold call, no more.
 */
static _Noreturn KMEM_COLD KMEM_NOINLINE void
tag_report_class(unsigned int c, void *obj, const char *fn)
{
	tag_restore((uintptr_t *)obj + 1, tag_of((uintptr_t)obj));
	tag_report(kmemi_class_cache(c), obj, fn);
}

static const struct kmemi_obj_hooks tag_hooks = {
    tag_fill, tag_check, tag_report};

/* A new object: no tag.  (Every path that hands one out.) */
static inline void *
untag(void *p)
{
	((uintptr_t *)p)[1] = 0;
	return p;
}

/* ---- the bootstrap area (section 5) ---- */

#define BOOT_SIZE (256u << 10)
#define BOOT_HDR  16 /* before each block: its size */

static char boot_mem[BOOT_SIZE] __attribute__((aligned(4096)));
static _Atomic size_t boot_used;

static void *
boot_alloc(size_t size, size_t align)
{
	size_t old = atomic_load_explicit(&boot_used, memory_order_relaxed);
	size_t start, end;

	if (align < MALLOC_ALIGN) /* not reached: callers ask 16 or more */
		align = MALLOC_ALIGN;
	if (size > BOOT_SIZE || align > BOOT_SIZE / 4)
		return NULL;
	do {
		start = kmem_align_up(old + BOOT_HDR, align);
		end = start + kmem_align_up(size, MALLOC_ALIGN);
		if (end > BOOT_SIZE)
			return NULL;
	} while (!atomic_compare_exchange_weak_explicit(
	    &boot_used, &old, end, memory_order_relaxed, memory_order_relaxed));
	*(size_t *)(void *)(boot_mem + start - BOOT_HDR) = size;
	return boot_mem + start; /* zero: the area is never reused */
}

static inline bool
boot_owns(const void *p)
{
	return (uintptr_t)p - (uintptr_t)boot_mem < BOOT_SIZE;
}

static size_t
boot_size(const void *p)
{
	return *(const size_t *)(const void *)((const char *)p - BOOT_HDR);
}

/* True when this thread must not enter the allocator (section 5). */
static inline bool
must_bootstrap(void)
{
#ifdef KMEM_COVERAGE
	/* gcov writing a dying process's counts (error.c). */
	if (kmemi_cov_dumping)
		return true;
#endif
	return kmemi_setup_by_self() || kmemi_fork_by_self();
}

/* ---- frees deferred while the forking thread holds every lock ---- */

static void *_Atomic deferred;

static void
defer_free(void *p)
{
	void *old = atomic_load_explicit(&deferred, memory_order_relaxed);

	do
		*(void **)p = old;
	while (!atomic_compare_exchange_weak_explicit(
	    &deferred, &old, p, memory_order_release, memory_order_relaxed));
}

static void free_locked(void *p);

static void
drain_deferred(void)
{
	void *p, *next;

	if (kmem_likely(atomic_load_explicit(&deferred, memory_order_relaxed) ==
		NULL) ||
	    kmemi_fork_by_self())
		return;
	p = atomic_exchange_explicit(&deferred, NULL, memory_order_acquire);
	for (; p != NULL; p = next) {
		next = *(void **)p;
		free_locked(p);
	}
}

/* ---- the thread's bins (section 12) ---- */

#define TB_SLOTS     1440u  /* tb_store's entries: every class's cap */
#define TB_MAX	     128u   /* objects a bin holds at most */
#define TB_BYTES     8192u  /* ... and bytes */
#define TB_BYTES_BIG 16384u /* ... above TB_MIN_TO */
#define TB_MIN	     16u    /* ... but at least this many objects */
#define TB_MIN_TO    1280u  /* ... for the classes up to this size, */
#define TB_MIN_BIG   2u	    /* ... and this many above */
#define TB_TICK	     16384u /* frees into bins between two ticks */
_Static_assert(TB_MAX % 2 == 0 && TB_MAX / 2 <= 255, "a bin moves TB_MAX / 2");

enum { TB_NONE, TB_LIVE, TB_DEAD };

/*
 * A thread's bins: for class c, a stack of free objects in tb_store from
 * tb_low[c] up, filled from the bottom; tb_top[c] the next free entry,
 * tb_high[c] the end of the entries the class may use (its cap,
 * tb_cap).  The stacks are packed in one array,
 * each as long as its cap (a fixed stride of TB_MAX would waste half the
 * TLS).  Zero until the thread's first miss sets them up (tb_setup), and
 * again after its exit emptied them: a NULL top is not above a NULL low
 * (malloc finds the bin empty) and not below a NULL high (free finds it
 * full).  The objects in a bin are free objects as in a CPU's group:
 * tagged (section 3).
 *
 * The bounds are pointers, not indices into tb_store: with 32- or 16-bit
 * indices (tb_store[top], an %fs-relative access with an index
 * register; a NULL sentinel under each stack instead of tb_low) the
 * one-object pair took 11.5 ns instead of 4.6, at every size, while a
 * batch of two took as long as with pointers (bench_malloc, 2026-12-08).
 * The slot the pair frees into is the one its next malloc loads; why
 * that chain is slower through an indexed TLS access we could not find
 * out without hardware counters (forcing flat addresses did not help).
 */
struct tbins {
	void **tb_top[KMEM_NCLASS];
	void **tb_low[KMEM_NCLASS];
	void **tb_high[KMEM_NCLASS];
	uint32_t tb_ticks; /* frees into bins until the next tick */
	uint32_t tb_state; /* TB_NONE, TB_LIVE, TB_DEAD */
	void *tb_store[TB_SLOTS];
};

static __thread struct tbins tbins __attribute__((tls_model("initial-exec")));

static void tb_exit(void *arg);

/* Class c's cap in a thread's bins (section 12's bounds): even. */
static unsigned int
tb_cap(unsigned int c)
{
	uint32_t size = kmemi_fast[c].kf_size, cap;

	if (size == 0)
		return 0;
	cap = (size <= TB_MIN_TO ? TB_BYTES : TB_BYTES_BIG) / size;
	if (cap > TB_MAX)
		cap = TB_MAX;
	if (size <= TB_MIN_TO && cap < TB_MIN)
		cap = TB_MIN;
	if (cap < TB_MIN_BIG)
		cap = TB_MIN_BIG;
	return cap & ~1u; /* even: a spill moves half */
}

/*
 * This thread's first miss with the gate open: its bins get their caps,
 * and a hook that empties them at the thread's exit (tb_exit, by a
 * thread-specific key: kmem_prim_thread_exit_hook).  Setting the key may
 * allocate (glibc's keys past the first 32): the state is set first, so
 * that that malloc finds the bins shut and goes on.  Without the hook the
 * thread has no bins (nothing would empty them).  A class whose cap does
 * not fit in tb_store has no bin (not reached: the caps of kmem.c's table
 * add up to 1,428 entries).
 */
static KMEM_NOINLINE void
tb_setup(void)
{
	unsigned int c, next = 0;

	tbins.tb_state = TB_DEAD; /* until the key is set */
	if (kmem_prim_thread_exit_hook(tb_exit, &tbins) != 0)
		return;
	for (c = 0; c < KMEM_NCLASS; c++) {
		unsigned int cap = tb_cap(c);

		KMEM_ASSERT(next + cap <= TB_SLOTS);
		if (cap == 0 || next + cap > TB_SLOTS)
			continue;
		tbins.tb_low[c] = tbins.tb_top[c] = &tbins.tb_store[next];
		tbins.tb_high[c] = &tbins.tb_store[next + cap];
		next += cap;
	}
	tbins.tb_ticks = TB_TICK;
	tbins.tb_state = TB_LIVE;
}

/* ---- allocation ---- */

/*
 * Everything the fast path does not serve: size 0, the first call, a
 * cache miss, an alignment, debugging, recursion, out of memory.
 */
static KMEM_NOINLINE void *
malloc_slow(const char *fn, size_t size, size_t align)
{
	int saved = errno;
	void *p;

	if (size == 0)
		size = 1;
	if (kmem_unlikely(size >= MALLOC_MAX))
		goto nomem;
	if (kmem_unlikely(must_bootstrap())) {
		if ((p = boot_alloc(size, align)) == NULL)
			goto nomem;
		return p;
	}
	drain_deferred();
	if (kmem_unlikely(!kmemi_setup_malloc(&tag_hooks)))
		goto nomem;
	if (kmem_unlikely(GATE_DEBUG() != 0))
		p = kmemi_debug_alloc_aligned(fn, size, align, KM_NOSLEEP);
	else if ((p = kmemi_malloc_raw(size, align)) != NULL)
		p = untag(p);
	if (kmem_unlikely(p == NULL))
		goto nomem;
	errno = saved;
	return p;
nomem:
	errno = ENOMEM;
	return NULL;
}

/* malloc's class for size (1..KMEM_CACHE_MAX): none below 16 bytes. */
static inline unsigned int
class_of(size_t size)
{
	size_t i = (size + 7) >> KMEM_IDX_SHIFT;

	return kmemi_idx[i < 2 ? 2 : i];
}

/*
 * An object of class c from this CPU's group without a lock (the gate
 * checked by the caller), with the check that it carries the free tag
 * (section 3) -- its line is the one free just wrote.  NULL: a miss.
 */
static inline void *
class_get_fast(const char *fn, unsigned int c)
{
#ifdef PC_RSEQ
	const struct kmem_fast *kf = &kmemi_fast[c];
	void *p;

	if (kmem_likely(pc_rseq_get_va(kmemi_fast_cpus(kf), kf->kf_ncpu, &p))) {
		if (kmem_unlikely(
			tag_take((uintptr_t *)p + 1, tag_of((uintptr_t)p))))
			tag_report_class(c, p, fn);
		if (p == NULL) /* a group holds objects: no test for NULL */
			__builtin_unreachable();
		return p;
	}
#else
	(void)fn;
	(void)c;
#endif
	return NULL;
}

/*
 * A large block (kmem_impl.h's fast path, else the slow path).  Measured
 * (issue 12, bench_malloc pair of 32 KiB, 5.8 ns): the page-map work
 * after the get -- leaf, word, live test, store -- is 0.45 ns of it (an
 * unchecked build without it was that much faster); its leaf tests cost
 * nothing (without them: no faster), and the word's load and store are
 * what finds two frees at once and a second free at the call.  What
 * did not pay: every way out a tail call, so that it saves no register
 * (the two pushes and pops are off the critical path: 0.1 ns slower),
 * and the page count by one shift, (size - 1) >> shift + 1, or by the
 * constant 4 KiB shift (no faster; one layout 0.3 ns slower).
 */
static KMEM_NOINLINE void *
malloc_large(const char *fn, size_t size)
{
	void *p;

	if ((p = kmemi_large_alloc_fast(size)) != NULL)
		return p; /* a large block: no tag */
	return malloc_slow(fn, size, MALLOC_ALIGN);
}

/*
 * The object p on top of class c's bin lacks its tag: reported.  Not
 * _Noreturn, so that malloc reaches it by a tail call and saves no
 * register for it.
 */
static KMEM_NOINLINE KMEM_COLD void *
tb_bad(unsigned int c, void *p, const char *fn)
{
	tag_report_class(c, p, fn);
}

/*
 * The top of class c's bin, its tag checked and cleared,
 * or NULL if the bin is empty: the slower paths' pop (the fill's, the
 * aligned allocation's).  malloc_common pops inline, reporting through
 * tb_bad.
 */
static inline void *
tb_pop(unsigned int c, const char *fn)
{
	void **t = tbins.tb_top[c], *p;

	if (t <= tbins.tb_low[c])
		return NULL;
	p = *--t;
	tbins.tb_top[c] = t;
	if (kmem_unlikely(tag_take((uintptr_t *)p + 1, tag_of((uintptr_t)p))))
		tag_report_class(c, p, fn);
	return p;
}

/*
 * Class c's bin is empty: fill it from this CPU's group, half its cap at
 * most, in one critical section, and hand out the group's top object;
 * else the CPU layer's get (which misses too: its group is empty or its
 * slot locked) and the slow path.  The first miss of a thread sets its
 * bins up.
 */
static KMEM_NOINLINE void *
malloc_fill(const char *fn, size_t size, unsigned int c)
{
	unsigned int gate = KMEMI_GATE();
	void *p;

	if (kmem_unlikely((gate & ~KMEM_GATE_NORSEQ) != 0))
		return malloc_slow(fn, size, MALLOC_ALIGN);
	if (kmem_unlikely(tbins.tb_state == TB_NONE))
		tb_setup();
#ifdef PC_RSEQ
	if (kmem_likely(gate == 0)) {
		unsigned int k,
		    cap = tbins.tb_state != TB_LIVE
		    ? 0
		    : (unsigned int)(tbins.tb_high[c] - tbins.tb_low[c]);

		if (kmem_likely(cap != 0)) {
			const struct kmem_fast *kf = &kmemi_fast[c];

			KMEM_ASSERT(tbins.tb_top[c] == tbins.tb_low[c]);
			k = pc_rseq_get_many_va(kmemi_fast_cpus(kf),
			    kf->kf_ncpu, tbins.tb_low[c], cap / 2);
			if (k != 0) {
				tbins.tb_top[c] = tbins.tb_low[c] + k;
				return tb_pop(c, fn);
			}
		}
	}
	if (kmem_likely(gate == 0) &&
	    kmem_likely((p = class_get_fast(fn, c)) != NULL))
		return p;
#endif
	return malloc_slow(fn, size, MALLOC_ALIGN);
}

/*
 * The fast path: the top of this thread's bin of the class, else the
 * bin filled (malloc_fill); every other way out a tail call, so that the
 * fast path saves no register (the large path inline made every malloc
 * push and pop three).  A bin holds objects only while the gate is open,
 * bar its rseq bit (free fills it behind the gate), so it is read without
 * the gate; objects leave it as they leave a group, their tag checked
 * and cleared (class_get_fast).
 */
static inline void *
malloc_common(const char *fn, size_t size)
{
	unsigned int c;
	void **t;
	void *p;

	if (kmem_unlikely(size - 1 >= KMEM_CACHE_MAX))
		return malloc_large(fn, size);
	c = class_of(size);
	if (kmem_likely((t = tbins.tb_top[c]) > tbins.tb_low[c])) {
		p = *--t;
		tbins.tb_top[c] = t;
		if (kmem_unlikely(
			tag_take((uintptr_t *)p + 1, tag_of((uintptr_t)p))))
			return tb_bad(c, p, fn);
		return p;
	}
	return malloc_fill(fn, size, c);
}

void *
malloc(size_t size)
{
	return malloc_common("malloc", size);
}

void *
calloc(size_t n, size_t size)
{
	size_t total;
	void *p;

	if (kmem_unlikely(__builtin_mul_overflow(n, size, &total))) {
		errno = ENOMEM;
		return NULL;
	}
	p = malloc_common("calloc", total);
	if (kmem_likely(p != NULL) && !boot_owns(p))
		kmemi_zero(p, total);
	return p;
}

/* ---- free ---- */

/* Free p when no lock of ours is held by this thread; reports bad p. */
static void
free_locked(void *p)
{
	if (GATE_DEBUG() != 0)
		kmemi_debug_free_unsized("free", p);
	else
		kmemi_free_unsized("free", p);
}

static KMEM_NOINLINE void
free_slow(void *p)
{
	int saved = errno;

	if (p == NULL || boot_owns(p))
		return;
	if (kmem_unlikely(kmemi_fork_by_self())) {
		defer_free(p);
		return;
	}
	if (kmem_unlikely(KMEMI_GATE() & KMEM_GATE_INIT))
		kmem_panic("free(%p): pointer not allocated by kmem (kmem has "
			   "allocated nothing yet)",
		    p);
	drain_deferred();
	free_locked(p);
	errno = saved;
}

/*
 * The group was full, or there is no lock-free path: the cache's put --
 * unless this thread holds every lock for fork(2) (a fork handler's
 * free: the CPU layer's lock-free put fails on the held lock, and the
 * locked put would wait for itself).  Then the tick (section 11), which
 * does nothing until reap_tick_ms has passed: the CPU layer's ticks come
 * from a group's 2^14th operation, and a group that only takes puts (a
 * thread that only frees: a consumer) leaves for the depot after 255 --
 * no group ever ticked, and nothing went back (preload.malloc_tick's
 * test_tick_free_only).  Here at one put in FREE_PUT_TICK, since the
 * tick reads the clock: with a tick at every put, the batch of 1 KiB (a
 * put here every 63 frees) measured 0-3 % slower, within the noise.
 */
#define FREE_PUT_TICK 16u

static __thread uint32_t free_puts __attribute__((tls_model("initial-exec")));

static KMEM_NOINLINE void
free_put(void *p, unsigned int c)
{
	int saved = errno;

	if (kmem_unlikely(kmemi_fork_by_self())) {
		defer_free(p);
	} else {
		pool_cache_put_paddr(
		    kmemi_class_cache(c), p, POOL_PADDR_INVALID);
		if (++free_puts % FREE_PUT_TICK == 0)
			kmemi_tick();
	}
	errno = saved;
}

/* ---- the thread's bins: spills and emptying (section 12) ---- */

/*
 * q, free and tagged, to its CPU's group, else the cache's put.  The
 * put's tick is kept (section 11), as free's own put kept it before the
 * bins: every free of a thread without bins (never set up, or shut)
 * comes here.  A thread that only frees fills groups that leave before
 * they tick; free_put's count ticks for it.
 */
static void
tb_put(void *q, unsigned int c)
{
#ifdef PC_RSEQ
	const struct kmem_fast *kf = &kmemi_fast[c];
	int r;

	if (kmem_likely(KMEMI_GATE() == 0) &&
	    (r = pc_rseq_put_va(kmemi_fast_cpus(kf), kf->kf_ncpu, q)) != 0) {
		if (kmem_unlikely(r == 2))
			kmemi_tick();
		return;
	}
#endif
	free_put(q, c);
}

/* Section 11's tick, counted by the frees into bins. */
static KMEM_NOINLINE void
tb_tick(void)
{
	tbins.tb_ticks = TB_TICK;
	kmemi_tick();
}

/*
 * p (tagged) of class c, whose bin is full or shut: the bin's upper half
 * goes to this CPU's group in one critical section, and p onto the bin;
 * else p takes the CPU layer's put, or the cache's.
 */
static KMEM_NOINLINE void
free_spill(void *p, unsigned int c, unsigned int gate)
{
#ifdef PC_RSEQ
	if (kmem_likely(gate == 0) && kmem_likely(tbins.tb_state == TB_LIVE) &&
	    kmem_likely(tbins.tb_high[c] != NULL)) {
		void **stack = tbins.tb_low[c], **high = tbins.tb_high[c];
		unsigned int cap = (unsigned int)(high - stack), k;
		const struct kmem_fast *kf = &kmemi_fast[c];
		void **h = high - cap / 2;

		/* live bins are full here, and their caps 2 or more */
		KMEM_ASSERT(tbins.tb_top[c] == high && cap >= TB_MIN_BIG);
		k = pc_rseq_put_many_va(
		    kmemi_fast_cpus(kf), kf->kf_ncpu, h, cap / 2);
		if (k != 0) {
			if (k < cap / 2) /* the group had room for fewer */
				memmove(h, h + k, (cap / 2 - k) * sizeof *h);
			high[-(ptrdiff_t)k] = p;
			tbins.tb_top[c] = high - k + 1;
			return;
		}
	}
#endif
	(void)gate;
	tb_put(p, c);
}

/* Every object of this thread's bins goes back to the caches. */
void
kmemi_malloc_bins_flush(void)
{
	unsigned int c;

	for (c = 0; c < KMEM_NCLASS; c++) {
		void **stack = tbins.tb_low[c];

		while (tbins.tb_top[c] > stack) {
			unsigned int k = 0,
				     n = (unsigned int)(tbins.tb_top[c] -
					 stack);
#ifdef PC_RSEQ
			const struct kmem_fast *kf = &kmemi_fast[c];

			if (KMEMI_GATE() == 0)
				k = pc_rseq_put_many_va(kmemi_fast_cpus(kf),
				    kf->kf_ncpu, stack, n < 255 ? n : 255);
#endif
			if (k == 0) {
				tb_put(stack[0], c);
				k = 1;
			}
			memmove(stack, stack + k, (n - k) * sizeof *stack);
			tbins.tb_top[c] -= k;
		}
	}
}

/* The key's destructor: the thread exits; its bins are emptied, for good. */
static void
tb_exit(void *arg)
{
	unsigned int c;

	(void)arg;
	tbins.tb_state = TB_DEAD;
	kmemi_malloc_bins_flush();
	for (c = 0; c < KMEM_NCLASS; c++)
		tbins.tb_low[c] = tbins.tb_top[c] = tbins.tb_high[c] = NULL;
}

/*
 * A large block whose quantum cache did not take it (its group full, or
 * its CPU slot locked): back to kva, whose lock a fork handler's free
 * must not take -- this thread holds it then (section 5): the word is
 * made live again, as it was, and the free deferred.
 */
static KMEM_NOINLINE void
free_large_unput(void *p, _Atomic uint32_t *wp)
{
	uint32_t npg =
	    atomic_load_explicit(wp, memory_order_relaxed) & PM_NPAGES;

	if (kmem_unlikely(kmemi_fork_by_self())) {
		atomic_store_explicit(wp, PM_LIVE | npg, memory_order_relaxed);
		defer_free(p);
		return;
	}
	kmemi_large_fast_unput(p, npg);
}

/*
 * Not a class object: a large block (kmem_impl.h's checks, its word
 * stored freed, the put), or the slow path (which reports what is
 * wrong).  Out of line, so that free's class path saves no register, and
 * every way out of it a tail call, so that it saves none either: the
 * call to kmemi_fork_by_self it made before the put, and the three
 * registers saved around it, were 0.6 ns of the 7.4 ns 32 KiB pair
 * (bench_malloc pair; the checks before kmemi_large_free_cache, 0.8
 * more).  A fork handler's put fails on its CPU slot's lock
 * (pool_cache_impl.h), so the fork test waits for free_large_unput.
 */
static KMEM_NOINLINE void
free_large(void *p, _Atomic uint32_t *wp, uint32_t w, unsigned int gate)
{
#ifdef PC_RSEQ
	const struct kmem_fast *kf;
	int r;

	if (kmem_likely(gate == 0) &&
	    kmem_likely(
		(kf = kmemi_large_free_cache((uintptr_t)p, w)) != NULL)) {
		atomic_store_explicit(
		    wp, PM_FREED | (w & PM_NPAGES), memory_order_relaxed);
		r = pc_rseq_put_va(kf->kf_cpus, kf->kf_ncpu, p);
		if (kmem_likely(r == 1))
			return;
		if (r == 2)
			kmemi_tick(); /* section 11 */
		else
			free_large_unput(p, wp); /* w would cost a push */
		return;
	}
#else
	(void)wp;
	(void)w;
	(void)gate;
#endif
	free_slow(p);
}

void
free(void *p)
{
	uintptr_t a = (uintptr_t)p;
	unsigned int gate = KMEMI_GATE();
	_Atomic uint32_t *wp;
	uint32_t w;

	if (kmem_likely((gate & ~KMEM_GATE_NORSEQ) == 0) &&
	    kmem_likely((wp = kmemi_pm_word_get(a)) != NULL)) {
		w = atomic_load_explicit(wp, memory_order_relaxed);
		if (kmem_likely(w & PM_SMALL)) {
			const struct kmem_fast *kf = &kmemi_fast[PM_CLASS(w)];

			if (kmem_unlikely(!kmemi_small_valid(a, w, kf))) {
				free_slow(p); /* reports it: no return */
				return;
			}
			((uintptr_t *)p)[1] = tag_of(a); /* no load: a store */
			unsigned int c = PM_CLASS(w);
			void **t = tbins.tb_top[c];

			if (kmem_likely(t < tbins.tb_high[c])) {
				*t = p;
				tbins.tb_top[c] = t + 1;
				if (kmem_unlikely(--tbins.tb_ticks == 0))
					tb_tick();
				return;
			}
			free_spill(p, c, gate);
			return;
		}
		free_large(p, wp, w, gate);
		return;
	}
	free_slow(p);
}

/* ---- realloc ---- */

/* Whether an object of "usable" bytes can hold "size" and should. */
static inline bool
fits_in_place(size_t usable, size_t size)
{
	if (size > usable)
		return false;
	if (usable <= KMEM_CACHE_MAX) /* the class it would get anyway */
		return kmem_usable_size(
			   size < MALLOC_ALIGN ? MALLOC_ALIGN : size) == usable;
	/* Large: keep it while it is at least half used. */
	return size > KMEM_CACHE_MAX && size >= usable / 2;
}

static void *
realloc_common(const char *fn, void *p, size_t size)
{
	size_t old;
	void *q;

	if (p == NULL)
		return malloc_common(fn, size);
	if (size == 0) {
		free(p);
		return NULL;
	}
	if (kmem_unlikely(size >= MALLOC_MAX)) {
		errno = ENOMEM;
		return NULL;
	}
	if (boot_owns(p)) {
		old = boot_size(p);
	} else if (GATE_DEBUG() != 0) {
		/* Always a new block: a stale pointer then faults or is told.
		 */
		old = kmemi_debug_usable(fn, p);
	} else {
		old = kmemi_usable_unsized(fn, p);
		if (fits_in_place(old, size))
			return p;
		/*
		 * Large to large: grown in place, or its pages moved -- kva's
		 * lock, which a fork handler's thread holds (section 5).
		 */
		if (old > KMEM_CACHE_MAX && size > KMEM_CACHE_MAX &&
		    !kmemi_fork_by_self() &&
		    (q = kmemi_large_realloc(p, old, size)) != NULL)
			return q;
	}
	if ((q = malloc_common(fn, size)) == NULL)
		return NULL;
	memcpy(q, p, old < size ? old : size);
	free(p);
	return q;
}

void *
realloc(void *p, size_t size)
{
	return realloc_common("realloc", p, size);
}

void *
reallocarray(void *p, size_t n, size_t size)
{
	size_t total;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc_common("reallocarray", p, total);
}

/* ---- aligned allocation ---- */

static void *
aligned_common(const char *fn, size_t align, size_t size)
{
	void *p;

	if (align <= MALLOC_ALIGN)
		return malloc_common(fn, size);
	/*
	 * Up to a page, the fast path of the first class from the size up
	 * that is a multiple of the alignment (section 4; the slow path
	 * takes the same one).
	 */
	if (size - 1 < KMEM_CACHE_MAX &&
	    (KMEMI_GATE() & ~KMEM_GATE_NORSEQ) == 0 &&
	    align <= ((size_t)1 << kmemi_pgshift)) {
		unsigned int c;

		for (c = class_of(size); c < KMEM_NCLASS; c++)
			if ((kmemi_fast[c].kf_size & (align - 1)) == 0)
				break;
		if (c < KMEM_NCLASS &&
		    (p = tb_pop(c, fn)) != NULL) /* its bin */
			return p;
		if (c < KMEM_NCLASS && KMEMI_GATE() == 0 &&
		    (p = class_get_fast(fn, c)) != NULL)
			return p;
	}
	p = malloc_slow(fn, size, align);
	KMEM_ASSERT(p == NULL || ((uintptr_t)p & (align - 1)) == 0);
	return p;
}

void *
aligned_alloc(size_t align, size_t size)
{
	if (!kmem_powerof2(align)) {
		errno = EINVAL;
		return NULL;
	}
	return aligned_common("aligned_alloc", align, size);
}

int
posix_memalign(void **memptr, size_t align, size_t size)
{
	int saved = errno;
	void *p;

	if (!kmem_powerof2(align) || align % sizeof(void *) != 0)
		return EINVAL;
	if ((p = aligned_common("posix_memalign", align, size)) == NULL)
		return ENOMEM; /* errno is ENOMEM too, as glibc's */
	errno = saved;
	*memptr = p;
	return 0;
}

void *
memalign(size_t align, size_t size)
{
	/* glibc: an alignment that is not a power of two is rounded up. */
	if (!kmem_powerof2(align)) {
		if (align > SIZE_MAX / 2 + 1) {
			errno = EINVAL;
			return NULL;
		}
		align = (size_t)1 << (kmem_ilog2(align) + 1);
	}
	return aligned_common("memalign", align, size);
}

void *
valloc(size_t size)
{
	return aligned_common("valloc", kmem_prim_page_size(), size);
}

void *
pvalloc(size_t size)
{
	size_t ps = kmem_prim_page_size(), r;

	if (!kmem_align_up_ok(size == 0 ? 1 : size, ps, &r)) {
		errno = ENOMEM;
		return NULL;
	}
	return aligned_common("pvalloc", ps, r);
}

/* ---- the rest ---- */

size_t
malloc_usable_size(void *p)
{
	if (p == NULL)
		return 0;
	if (boot_owns(p))
		return boot_size(p);
	if (KMEMI_GATE() & KMEM_GATE_INIT)
		kmem_panic("malloc_usable_size(%p): pointer not allocated by "
			   "kmem (kmem has allocated nothing yet)",
		    p);
	if (GATE_DEBUG() != 0)
		return kmemi_debug_usable("malloc_usable_size", p);
	return kmemi_usable_unsized("malloc_usable_size", p);
}

/*
 * Give back every byte not in use (kmem_reap_all: the caches emptied, the
 * empty pool pages and kva's free pages back to the OS): 1 if memory
 * was released, else 0, as glibc.
 * "pad" (bytes to leave at the top of the heap) has no meaning here.
 */
int
malloc_trim(size_t pad)
{
	struct kmem_vmem_stats before, after;
	int saved = errno;
	vmem_t *vm;

	(void)pad;
	if (KMEMI_GATE() & KMEM_GATE_INIT)
		return 0;
	kmemi_malloc_bins_flush();
	vm = kmemi_page_arena(&kmemi_dom0);
	kmem_vmem_stats(vm, &before);
	kmem_reap_all();
	kmem_vmem_stats(vm, &after);
	errno = saved;
	/* Pages came back to kva, or kva had free pages to purge. */
	return after.vs_inuse < before.vs_inuse ||
	    before.vs_imported > before.vs_inuse;
}

/* ---- sized frees and C++'s operators (section 10) ---- */

void free_sized(void *p, size_t size) KMEM_EXPORT;
void free_aligned_sized(void *p, size_t align, size_t size) KMEM_EXPORT;

/*
 * C++'s replaceable allocation functions under their Itanium names (LP64:
 * size_t is "m"; std::align_val_t is an enum on size_t, passed as one;
 * std::nothrow_t by reference, a pointer never read).
 */
#define CXX_EXPORT(name) __asm__(name) KMEM_EXPORT
void *cxx_new(size_t size) CXX_EXPORT("_Znwm");
void *cxx_new_array(size_t size) CXX_EXPORT("_Znam");
void *cxx_new_nothrow(size_t size, const void *nt)
    CXX_EXPORT("_ZnwmRKSt9nothrow_t");
void *cxx_new_array_nothrow(size_t size, const void *nt)
    CXX_EXPORT("_ZnamRKSt9nothrow_t");
void *cxx_new_aligned(size_t size, size_t align)
    CXX_EXPORT("_ZnwmSt11align_val_t");
void *cxx_new_array_aligned(size_t size, size_t align)
    CXX_EXPORT("_ZnamSt11align_val_t");
void *cxx_new_aligned_nothrow(size_t size, size_t align, const void *nt)
    CXX_EXPORT("_ZnwmSt11align_val_tRKSt9nothrow_t");
void *cxx_new_array_aligned_nothrow(size_t size, size_t align, const void *nt)
    CXX_EXPORT("_ZnamSt11align_val_tRKSt9nothrow_t");
void cxx_delete_nothrow(void *p, const void *nt)
    CXX_EXPORT("_ZdlPvRKSt9nothrow_t");
void cxx_delete_array_nothrow(void *p, const void *nt)
    CXX_EXPORT("_ZdaPvRKSt9nothrow_t");
void cxx_delete_sized(void *p, size_t size) CXX_EXPORT("_ZdlPvm");
void cxx_delete_array_sized(void *p, size_t size) CXX_EXPORT("_ZdaPvm");
void cxx_delete_aligned(void *p, size_t align)
    CXX_EXPORT("_ZdlPvSt11align_val_t");
void cxx_delete_array_aligned(void *p, size_t align)
    CXX_EXPORT("_ZdaPvSt11align_val_t");
void cxx_delete_aligned_nothrow(void *p, size_t align, const void *nt)
    CXX_EXPORT("_ZdlPvSt11align_val_tRKSt9nothrow_t");
void cxx_delete_array_aligned_nothrow(void *p, size_t align, const void *nt)
    CXX_EXPORT("_ZdaPvSt11align_val_tRKSt9nothrow_t");
void cxx_delete_sized_aligned(void *p, size_t size, size_t align)
    CXX_EXPORT("_ZdlPvmSt11align_val_t");
void cxx_delete_array_sized_aligned(void *p, size_t size, size_t align)
    CXX_EXPORT("_ZdaPvmSt11align_val_t");
/* The plain deletes are free itself: no instruction between. */
void cxx_delete(void *p) CXX_EXPORT("_ZdlPv")
    __attribute__((alias("free"), nothrow, leaf));
void cxx_delete_array(void *p) CXX_EXPORT("_ZdaPv")
    __attribute__((alias("free"), nothrow, leaf));

/*
 * The C++ runtime's, by weak reference (section 10): std::get_new_handler
 * and libstdc++'s std::__throw_bad_alloc (libc++ has it too).  NULL when
 * no C++ runtime was loaded with the program.
 */
typedef void (*cxx_new_handler)(void);
extern cxx_new_handler cxx_get_new_handler(void) __asm__(
    "_ZSt15get_new_handlerv") __attribute__((weak));
extern void cxx_throw_bad_alloc(void) __asm__("_ZSt17__throw_bad_allocv")
    __attribute__((weak, noreturn));

/*
 * A throwing operator new found no memory (or got an alignment that is
 * not a power of two: std::bad_alloc at once, as libstdc++'s): call the
 * new handler and retry while there is one, then throw std::bad_alloc.
 * Both may unwind through this frame and its caller's (the library is
 * built with -fexceptions: unwind tables).
 */
static KMEM_NOINLINE KMEM_COLD void *
new_fail(const char *fn, size_t size, size_t align)
{
	cxx_new_handler h;
	void *p;

	while (kmem_powerof2(align) && cxx_get_new_handler != NULL &&
	    (h = cxx_get_new_handler()) != NULL) {
		h();
		p = align <= MALLOC_ALIGN ? malloc_common(fn, size)
					  : aligned_common(fn, align, size);
		if (p != NULL)
			return p;
	}
	if (cxx_throw_bad_alloc != NULL)
		cxx_throw_bad_alloc();
	kmem_panic("%s(%zu): out of memory, and no C++ runtime loaded to "
		   "throw std::bad_alloc",
	    fn, size);
}

static inline void *
new_common(const char *fn, size_t size)
{
	void *p = malloc_common(fn, size);

	if (kmem_likely(p != NULL))
		return p;
	return new_fail(fn, size, MALLOC_ALIGN);
}

static inline void *
new_aligned_common(const char *fn, size_t size, size_t align)
{
	void *p;

	if (kmem_likely(kmem_powerof2(align)) &&
	    kmem_likely((p = aligned_common(fn, align, size)) != NULL))
		return p;
	return new_fail(fn, size, align);
}

void *
cxx_new(size_t size)
{
	return new_common("operator new", size);
}

void *
cxx_new_array(size_t size)
{
	return new_common("operator new[]", size);
}

void *
cxx_new_nothrow(size_t size, const void *nt)
{
	(void)nt;
	return malloc_common("operator new", size);
}

void *
cxx_new_array_nothrow(size_t size, const void *nt)
{
	(void)nt;
	return malloc_common("operator new[]", size);
}

void *
cxx_new_aligned(size_t size, size_t align)
{
	return new_aligned_common("operator new", size, align);
}

void *
cxx_new_array_aligned(size_t size, size_t align)
{
	return new_aligned_common("operator new[]", size, align);
}

void *
cxx_new_aligned_nothrow(size_t size, size_t align, const void *nt)
{
	(void)nt;
	if (!kmem_powerof2(align))
		return NULL;
	return aligned_common("operator new", align, size);
}

void *
cxx_new_array_aligned_nothrow(size_t size, size_t align, const void *nt)
{
	(void)nt;
	if (!kmem_powerof2(align))
		return NULL;
	return aligned_common("operator new[]", align, size);
}

/*
 * A sized free with a KMEM_DEBUG item on: the debug layer's sized free,
 * which checks the size against its record ("FN(PTR, SIZE) != allocated
 * size N") -- but free(p), size unread, for size 0 (new(0), malloc(0):
 * the record says 1), NULL, bootstrap blocks, a fork handler's frees
 * (deferred) and a gate that says otherwise when read again.
 */
static KMEM_NOINLINE void
free_sized_slow(const char *fn, void *p, size_t size)
{
	unsigned int gate = KMEMI_GATE();
	int saved;

	if (kmem_likely((gate & KMEM_GATE_DEBUG) == 0) ||
	    (gate & KMEM_GATE_INIT) != 0 || size == 0 || p == NULL ||
	    boot_owns(p) || kmemi_fork_by_self()) {
		free(p);
		return;
	}
	saved = errno;
	drain_deferred();
	kmemi_debug_free(fn, p, size);
	errno = saved;
}

/*
 * A sized free (section 10): free(p) -- inlined into each caller
 * (flatten), so that it costs what free does -- unless debugging is on.
 */
static inline void
free_sized_common(const char *fn, void *p, size_t size)
{
	if (kmem_likely(GATE_DEBUG() == 0))
		free(p);
	else
		free_sized_slow(fn, p, size);
}

#define FLATTEN __attribute__((flatten))

FLATTEN void
free_sized(void *p, size_t size)
{
	free_sized_common("free_sized", p, size);
}

FLATTEN void
free_aligned_sized(void *p, size_t align, size_t size)
{
	(void)align; /* the page map (and the debug record) know it */
	free_sized_common("free_aligned_sized", p, size);
}

FLATTEN void
cxx_delete_sized(void *p, size_t size)
{
	free_sized_common("operator delete", p, size);
}

FLATTEN void
cxx_delete_array_sized(void *p, size_t size)
{
	free_sized_common("operator delete[]", p, size);
}

FLATTEN void
cxx_delete_sized_aligned(void *p, size_t size, size_t align)
{
	(void)align;
	free_sized_common("operator delete", p, size);
}

FLATTEN void
cxx_delete_array_sized_aligned(void *p, size_t size, size_t align)
{
	(void)align;
	free_sized_common("operator delete[]", p, size);
}

/* Without a size: free(p) (the alignment is the page map's to know). */
void
cxx_delete_nothrow(void *p, const void *nt)
{
	(void)nt;
	free(p);
}

void
cxx_delete_array_nothrow(void *p, const void *nt)
{
	(void)nt;
	free(p);
}

void
cxx_delete_aligned(void *p, size_t align)
{
	(void)align;
	free(p);
}

void
cxx_delete_array_aligned(void *p, size_t align)
{
	(void)align;
	free(p);
}

void
cxx_delete_aligned_nothrow(void *p, size_t align, const void *nt)
{
	(void)align;
	(void)nt;
	free(p);
}

void
cxx_delete_array_aligned_nothrow(void *p, size_t align, const void *nt)
{
	(void)align;
	(void)nt;
	free(p);
}
