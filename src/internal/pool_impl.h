/*
 * pool_impl.h -- what pool.c, pool_cache.c and vmem.c share about pools:
 * the page header, the page arena behind the default allocators, and the
 * hooks between a pool and its cache.
 */
#ifndef KMEM_INTERNAL_POOL_IMPL_H
#define KMEM_INTERNAL_POOL_IMPL_H

#include <stdbool.h>
#include <stdint.h>

#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/internal.h"

/*
 * A pool page's header: inside the page (at its start) or outside it, in
 * the metadata region (pool.c section 2).  ph_canary comes first, where a
 * linear overwrite of the header starts: a keyed hash of the header's and
 * the page's addresses, checked whenever the pool takes from or puts to
 * the page.
 */
struct kmem_pool_page {
	uint64_t ph_canary;		/* pool.c: ph_canary_of(ph) */
	struct kmem_pool_page *ph_next; /* on the pool's page list */
	struct kmem_pool_page *ph_prev;
	struct kmem_pool_page *ph_hnext; /* page-lookup hash chain */
	struct pool *ph_pool;
	char *ph_page;		  /* the page */
	char *ph_items;		  /* first item (after header and colour) */
	unsigned int ph_nmissing; /* items handed out */
	unsigned int ph_list;	  /* which list the page is on */
	unsigned int ph_hint;	  /* no free bit in words below this */
	unsigned int ph_nitems;	  /* items on this page (<= per page) */
	uint64_t ph_time;	  /* when it became empty (ns) */
	uint64_t ph_bitmap[];	  /* bit set: item free */
};

/*
 * pool_init flag of kmem's own (not NetBSD's, not shown in vmstat -m):
 * no colouring, so that every page's first item is at the page start.
 * kmem's size-class caches use it: free(p) finds p's item from the page
 * alone (kmem.c section 4), and power-of-two classes are aligned to their
 * size (memalign).
 */
#define KMEMI_PR_NOCOLOR 0x40000000
/*
 * kmemi_cache_create flag of kmem's own: groups of 255 objects from the
 * start (PR_LARGECACHE's are 63).  Not passed on to the pool.
 */
#define KMEMI_PR_HUGECACHE 0x20000000

/*
 * The page arena of domain d: quantum = page, imports from prim (the
 * default domain) or the domain's page source.  Made on first use; NULL
 * without memory for it.
 */
struct kmem_domain;
vmem_t *kmemi_page_arena(struct kmem_domain *d);
/* pool.c: its purge pass if one is due, or over everything; no-op if none. */
void kmemi_page_arena_purge(struct kmem_domain *d, bool all);
/* The same by kmemi_vmem_purge_step: a free's share of a pass. */
bool kmemi_page_arena_purge_step(struct kmem_domain *d);
/*
 * domain.c: while held, frees into domain d's page and metadata arenas
 * start no purge batch (kmemi_vmem_purge_hold, vmem.c); holds nest.  A
 * hold fills held[] with the arenas it held, which the release is given
 * (an arena made meanwhile is not released unheld).
 */
void kmemi_page_arena_purge_hold(
    struct kmem_domain *d, bool hold, vmem_t *held[2]);

/* pool_cache.c: pool_cache_init that returns NULL when out of memory. */
pool_cache_t kmemi_cache_create(size_t size, unsigned int align,
    unsigned int align_offset, unsigned int flags, const char *wchan,
    struct pool_allocator *palloc, int ipl, int (*ctor)(void *, void *, int),
    void (*dtor)(void *, void *), void *arg);
/*
 * pool_cache.c: true if obj is free in the cache (in a CPU's group, in
 * the depot) or in its pool.  Takes every lock in turn: for reports.
 */
bool kmemi_cache_holds_free(pool_cache_t pc, const void *obj);
/*
 * What a layer above wants done to the free objects a cache's groups
 * hold (malloc.c's free tag, section 3 there; the cache knows nothing
 * of its format): oh_fill, to the n objects a miss moves from the pool
 * into a CPU's group (marked as a free marks them); oh_check, asked of
 * free objects leaving the groups (to a caller, to the pool), returns
 * the index of the first of n that is not intact, n if all are; and
 * oh_report, which does not return, says what is wrong with one that is
 * not ("fn" names the call).  kmemi_cache_set_hooks installs them (NULL:
 * none) before the cache is used.
 */
struct kmemi_obj_hooks {
	void (*oh_fill)(void *const *objs, unsigned int n);
	unsigned int (*oh_check)(void *const *objs, unsigned int n);
	void (*oh_report)(pool_cache_t pc, void *obj, const char *fn);
};
void kmemi_cache_set_hooks(pool_cache_t pc, const struct kmemi_obj_hooks *h);
/*
 * pool_cache.c: objects of pc its callers hold (the pool's out, less
 * those its groups and depot keep), counted without moving any.
 */
unsigned long kmemi_cache_outstanding(pool_cache_t pc);
/* pool_cache.c: invalidate, then give back every idle page. */
void kmemi_cache_drain(struct pool_cache *pc);
/* pool.c: pages for internal pools (headers, groups), never from a cache. */
extern struct pool_allocator kmemi_pool_allocator_meta KMEM_HIDDEN;
/* pool_cache.c: trim depots to their working sets (kmem_reap). */
void kmemi_cache_reap_all(struct kmem_domain *d, bool everything);
/* pool.c: free pages idle long enough (everything: all empty pages). */
int kmemi_pool_reclaim_idle(struct pool *pp, bool everything);
/* pool.c: that, for every pool of domain d. */
void kmemi_pool_reap_all(struct kmem_domain *d, bool everything);

/*
 * pool.c: the multiplier and shift that give off / size for every
 * off < pagesz (pool_item_index); false (and 0, 0) where there are none.
 */
bool kmemi_pool_idx_recip(
    size_t size, size_t pagesz, unsigned int *mulp, unsigned int *shiftp);
/* pool.c: pool_get of up to n items under one lock hold; how many. */
unsigned int kmemi_pool_get_batch(
    struct pool *pp, int flags, void **objs, unsigned int n);
/*
 * pool.c: pool_get and pool_put of cache pool pp do not annotate it for
 * the tools (annotate.h); its free items are no access if "items".
 */
void kmemi_pool_annot_set(struct pool *pp, bool items);
/* pool.c: pool_put of n items under one lock hold. */
void kmemi_pool_put_batch(struct pool *pp, void *const *objs, unsigned int n);
/*
 * pool.c: fn(pp, arg) for every pool (of every domain, or of domain d),
 * no list lock held; stops on non-zero.
 */
int kmemi_pool_foreach(int (*fn)(struct pool *, void *), void *arg);
int kmemi_pool_foreach_in(
    struct kmem_domain *d, int (*fn)(struct pool *, void *), void *arg);
/* pool.c: the item of hashed pool pp containing v, and whether it is out. */
bool kmemi_pool_item_of(
    struct pool *pp, const void *v, void **itemp, bool *outp);
/*
 * pool.c, for kmem_pool_cache_check: kmem_pool_check with pp's lock
 * held; and why v is not an item handed out by pp (NULL: it is, or pp's
 * headers are in its pages, where looking could fault: not known).
 */
void kmemi_pool_check_locked(struct pool *pp);
const char *kmemi_pool_out_item_locked(struct pool *pp, const void *v);
/*
 * vmem.c: the quantum cache that vmem_alloc(vm, size) and vmem_free use,
 * or NULL: a get from it is a vmem_alloc (what kmem's large fast path
 * does with kva's).
 */
pool_cache_t kmemi_vmem_qcache(vmem_t *vm, vmem_size_t size);
/*
 * vmem.c: fn(vm, arg) for every arena of every domain, or of domain d,
 * under the domain's arena list lock; stops at fn's first non-zero.
 */
struct kmem_domain;
int kmemi_vmem_foreach(int (*fn)(vmem_t *, void *), void *arg);
int kmemi_vmem_foreach_in(
    struct kmem_domain *d, int (*fn)(vmem_t *, void *), void *arg);
/* vmem.c: the domain vm was created in. */
struct kmem_domain *kmemi_vmem_domain(const vmem_t *vm);
/* vmem.c: fn(start, size, span's tag, arg) for every span of vm. */
int kmemi_vmem_spans(vmem_t *vm,
    int (*fn)(vmem_addr_t, vmem_size_t, const void *, void *), void *arg);
/*
 * vmem.c: deferred mode for the page arena.  Freed ranges stay dirty and
 * wholly free spans stay imported; a purge pass -- at most once every
 * delay_ns, run by a free -- calls fn(addr, size) with the arena lock
 * dropped (the range is held out of reach meanwhile: vmem.c section 7) on
 * the ranges freed before the previous pass and releases the spans wholly
 * free since then.  kmemi_vmem_purge runs a pass now if one is due, or
 * at once over everything with "all" (after a pass already running).
 */
void kmemi_vmem_set_purge(
    vmem_t *vm, void (*fn)(vmem_addr_t, vmem_size_t), uint64_t delay_ns);
void kmemi_vmem_purge(vmem_t *vm, bool all);
/*
 * The same, due or left unfinished, for no more batches than a free
 * makes (PURGE_FREE_BATCHES, vmem.c section 7): the tick's, run inside
 * a free(3) (kmemi_tick, kmem.c).
 */
bool kmemi_vmem_purge_step(vmem_t *vm); /* true: a pass left unfinished */
/* Frees start no purge batch while held (hold true; false releases). */
void kmemi_vmem_purge_hold(vmem_t *vm, bool hold);
/*
 * Tests: the purge batches vm's passes have finished, ever, and one more
 * at the end of each pass (vm_purge_gen).
 */
uint64_t kmemi_vmem_purge_batches(vmem_t *vm);
/* The same with a purge function told the arena (a domain's kva). */
void kmemi_vmem_set_purge_src(vmem_t *vm,
    void (*fn)(vmem_t *, vmem_addr_t, vmem_size_t), uint64_t delay_ns);
/*
 * vmem.c: imported spans that touch join into one span, so that free
 * ranges coalesce across them.  Only for an import function whose spans
 * the release function can give back in any union of them (the OS's
 * anonymous mappings: munmap); not a vmem source, which frees exactly
 * what it handed out.
 */
void kmemi_vmem_set_merge(vmem_t *vm);
/*
 * vmem.c: make the busy segment at addr, allocated with "oldsize" bytes
 * by vmem_alloc or vmem_xalloc (not from a quantum cache: both sizes
 * above vm_qcache_max), "newsize" bytes in place -- growing into the free
 * segment right after it, or giving its tail back as a free one.  0, or
 * ENOMEM when the space after it is not free (or, shrinking, no tag):
 * nothing changed.  Bad addr or oldsize: the report vmem_xfree makes.
 */
int kmemi_vmem_resize(
    vmem_t *vm, vmem_addr_t addr, vmem_size_t oldsize, vmem_size_t newsize);

/*
 * fork(2) support, one function per layer (fork.c calls them in the lock
 * order written there): KMEMI_FORK_PREPARE takes every lock of the layer,
 * KMEMI_FORK_PARENT releases them, KMEMI_FORK_CHILD releases them in the
 * child after clearing what threads that do not exist there left behind
 * (waiter counts, a grow in progress, walker references, condition
 * variables).
 */
void kmemi_pool_fork_early(int phase); /* page arena, header pools */
void kmemi_cache_fork(int phase);
void kmemi_pool_fork(int phase); /* the pool list and every pool */
void kmemi_vmem_fork(int phase);

#endif /* KMEM_INTERNAL_POOL_IMPL_H */
