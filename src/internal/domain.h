/*
 * domain.h -- struct kmem_domain: everything mutable of one allocator
 * instance (domain.c's design comment says why and how), layer by layer.
 * Each layer's part is written and read by that layer's file only;
 * domain.c makes and unmakes the whole.
 */
#ifndef KMEM_INTERNAL_DOMAIN_H
#define KMEM_INTERNAL_DOMAIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kmem/domain.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/internal.h"
#include "internal/prim.h"

struct pc_cpu;
struct pcg;
struct vmem_btag;
struct kmemi_obj_hooks;

#define KMEM_NCLASS	 51 /* size classes (kmem.c section 2) */
#define KMEM_QC_PAGES	 16 /* kva's quantum caches: up to 16 pages */
#define KMEMI_PHPOOLS	 9  /* pool.c: header pools of 1 .. 256 words */
#define KMEMI_PCGSIZES	 5  /* pool_cache.c: the group ladder */
#define KMEMI_META_RUNS0 64 /* meta.c: registry entries in the domain */
/* vmem.c: the tag reserve, bytes (BT_RESERVE tags; asserted there). */
#define KMEMI_BT_RESERVE_BYTES (512 * 112)

/*
 * One cache the fast paths use without a call: its CPU slots and their
 * count (pool_cache_impl.h); for a class, also what free(p) needs to
 * check that p starts an object (section 4 of kmem.c), in one multiply:
 * the size is odd * 2^shift, inv the inverse of odd modulo 2^32, and an
 * offset is a multiple of the size below nitems of them exactly when
 * ror32(offset * inv, shift) < nitems (kmemi_small_valid).
 */
struct kmem_fast {
	struct pc_cpu *kf_cpus;
	unsigned int kf_ncpu;
	uint32_t kf_size;
	uint32_t kf_inv;
	uint32_t kf_shift;
	uint32_t kf_nitems;
	uint32_t kf_pad;
};

/* A metadata run (meta.c). */
struct kmemi_meta_run {
	uintptr_t mr_start;
	size_t mr_size;
};

#define KMEMI_DOMAIN_NAME 32

struct kmem_domain {
	/*
	 * kd_fast at offset 0: the default domain's class data is then at
	 * a link-time address plus 32 x class, as it was before domains
	 * (at another offset, malloc's fast path needed one register more:
	 * bench_malloc's pair 6.85 -> 7.05 ns).
	 */
	struct kmem_fast kd_fast[KMEM_NCLASS];
	struct kmem_fast kd_large_fast[KMEM_QC_PAGES + 1];
	/*
	 * kmem.c: the fast paths' data, first.  The gate: kmem_impl.h
	 * (KMEMI_GATE); the default domain's also carries
	 * KMEM_GATE_DOMAINS while another domain exists.
	 */
	unsigned int kd_gate;
	bool kd_rseq;	  /* the lock-free fast path may be used */
	uintptr_t kd_tag; /* malloc's free tag (default domain only) */
	/*
	 * The default domain serves malloc: libkmem-malloc.so's malloc.c
	 * hands its object hooks (its free tag, pool_impl.h) to the set-up
	 * (kmemi_setup_malloc), which puts them on the classes of 16 bytes
	 * and more with kd_tag its secret.  A property of the domain, not of
	 * how kmem.c was compiled; NULL in libkmem.
	 */
	const struct kmemi_obj_hooks *kd_obj_hooks;
	size_t kd_large_fast_max;
	pool_cache_t _Atomic kd_cache[KMEM_NCLASS];
	struct pc_cpu *kd_noslots;
	kmem_mutex_t kd_init_lock;
	_Atomic bool kd_ready;
	_Atomic uintptr_t kd_init_owner;
	/*
	 * The page map of a domain other than the default (kmem.c section
	 * 4): three levels from this root; the default's is kmemi_pm_root.
	 */
	_Atomic(_Atomic(uint32_t *) *) *kd_pm;

	/* The domain itself (domain.c). */
	bool kd_default;
	char kd_name[KMEMI_DOMAIN_NAME];
	struct kmem_page_source kd_src;
	struct kmem_domain *kd_next; /* the registry */
	size_t kd_mapsize;	     /* bytes of this struct from kd_src */
	_Atomic size_t kd_src_bytes; /* bytes out of kd_src now */
	/*
	 * pool_destroy, pool_cache_destroy and vmem_destroy of the domain's
	 * running now: each unlinks its object first and gives its memory
	 * back after, so a destroy of the domain must wait for them (EBUSY).
	 */
	_Atomic unsigned int kd_ops;

	/* vmem.c: the arena list and the boundary-tag supply. */
	kmem_mutex_t kd_vmem_list_lock;
	vmem_t *kd_vmem_list;
	kmem_mutex_t kd_bt_lock;
	struct vmem_btag *kd_bt_supply;
	struct vmem_btag *kd_bt_reserve_list;
	bool kd_bt_reserve_ready;
	_Alignas(16) unsigned char kd_bt_reserve[KMEMI_BT_RESERVE_BYTES];

	/* meta.c: the metadata region's registry and arena. */
	kmem_mutex_t kd_meta_lock;
	struct kmemi_meta_run *kd_meta_runs; /* sorted by mr_start */
	size_t kd_meta_nruns, kd_meta_cap;
	vmem_t *_Atomic kd_meta_arena;
	struct kmemi_meta_run kd_meta_runs0[KMEMI_META_RUNS0];

	/* pool.c: the page arena, the header pools, the pool list. */
	kmem_mutex_t kd_page_arena_lock;
	vmem_t *_Atomic kd_page_arena;
	kmem_mutex_t kd_phpool_lock;
	atomic_bool kd_phpool_ready;
	struct pool kd_phpool[KMEMI_PHPOOLS];
	kmem_mutex_t kd_pool_list_lock;
	kmem_cond_t kd_pool_list_cv; /* a pr_refcnt dropped to 0 */
	bool kd_pool_list_cv_ready;
	struct pool *kd_pool_list;
	struct pool *kd_pool_drain_cursor;

	/* pool_cache.c: the cache list, the group pools, the depot budget. */
	kmem_mutex_t kd_pc_list_lock;
	kmem_cond_t kd_pc_list_cv; /* a pc_refcnt dropped to 0 */
	bool kd_pc_list_cv_ready;
	struct pool_cache *kd_pc_list;
	_Atomic size_t kd_pc_depot_bytes;
	/* The default domain's: when the tick last did the reaper's work. */
	_Atomic uint64_t kd_tick_last;
	kmem_mutex_t kd_pcg_init_lock;
	atomic_bool kd_pcg_ready;
	kmem_mutex_t kd_pcg_lock; /* the empties */
	struct pcg *kd_pcg_empty[KMEMI_PCGSIZES];
	unsigned long kd_pcg_nempty[KMEMI_PCGSIZES];
	unsigned long kd_pcg_empty_min[KMEMI_PCGSIZES];
	unsigned long kd_pcg_empty_reaplimit[KMEMI_PCGSIZES];
	uint64_t kd_pcg_ws_time;
	struct pool kd_pcg_pool[KMEMI_PCGSIZES];

	/*
	 * options.c: the settings (kmem_opts is the default's).  The
	 * default's are read from KMEM_OPTIONS once, under kd_opts_lock
	 * (the default domain's only); a new domain starts with a copy of
	 * the default's.
	 */
	struct kmem_options kd_opts;
	kmem_mutex_t kd_opts_lock;
	atomic_bool kd_opts_ready;

	/*
	 * domain.c: the registry of the other domains (section 3), held by
	 * the default domain only, which is never destroyed.
	 */
	struct {
		kmem_mutex_t lock;
		struct kmem_domain *list;
		unsigned int n;
		/*
		 * Walkers of the list without its lock (kmemi_dom_foreach,
		 * kmemi_dom_of): a destroy unlinks under the lock, then
		 * waits for this to be 0 before the domain goes.
		 */
		_Atomic unsigned int readers;
	} kd_reg;
	/* kmem.c: the system page, set with kmemi_pgshift (the default's). */
	size_t kd_pagesz;
};

/*
 * The "source" a domain's own arenas (kva, kmeta) are created with: the
 * domain, which their import and release functions are handed (vmem
 * passes the source only to them, as their import function is not
 * vmem_alloc).
 */
#define DOM_SRC(d)   ((vmem_t *)(void *)(d))
#define SRC_DOM(src) ((struct kmem_domain *)(void *)(src))

/* The default domain (domain.c), in the data segment. */
extern struct kmem_domain kmemi_dom0 KMEM_HIDDEN;
/*
 * This thread's current domain; NULL: the default.  Thread-local storage
 * (initial-exec: one load off the thread pointer, no call) in the hosted
 * build; the port's per-thread slot in the freestanding one.
 */
#ifdef KMEM_FREESTANDING
#define kmemi_dom_tls (*(struct kmem_domain **)kmem_prim_thread_slot())
#else
extern __thread struct kmem_domain *kmemi_dom_tls KMEM_HIDDEN
    __attribute__((tls_model("initial-exec")));
#endif

/* This thread's current domain. */
static inline struct kmem_domain *
kmemi_dom_cur(void)
{
	struct kmem_domain *d = kmemi_dom_tls;

	return d != NULL ? d : &kmemi_dom0;
}

/*
 * Make d current for an internal call that creates something in it
 * (an arena, a pool, a cache), and back: what the public creators take
 * from the thread's current domain.
 */
static inline struct kmem_domain *
kmemi_dom_push(struct kmem_domain *d)
{
	struct kmem_domain *prev = kmemi_dom_tls;

	kmemi_dom_tls = d == &kmemi_dom0 ? NULL : d;
	return prev;
}

static inline void
kmemi_dom_pop(struct kmem_domain *prev)
{
	kmemi_dom_tls = prev;
}

/*
 * Pages from the domain's source: size bytes aligned to align (page
 * multiples); 0 or ENOMEM.  The default domain's come from prim.  A
 * source that hands back memory not aligned as asked is reported.
 */
int kmemi_dom_pages(
    struct kmem_domain *d, size_t size, size_t align, void **out);
void kmemi_dom_pages_free(struct kmem_domain *d, void *p, size_t size);
/* Purge (contents not needed); 0 or an errno value (not supported). */
int kmemi_dom_pages_purge(struct kmem_domain *d, void *p, size_t size);

/* An object of d is being taken apart (kd_ops): begin (+1), end (-1). */
static inline void
kmemi_dom_op(struct kmem_domain *d, int delta)
{
	if (delta > 0)
		atomic_fetch_add(&d->kd_ops, 1);
	else
		atomic_fetch_sub_explicit(&d->kd_ops, 1, memory_order_release);
}

/* fn(d, arg) for every live domain, the default first; stops at non-zero. */
int kmemi_dom_foreach(int (*fn)(struct kmem_domain *, void *), void *arg);
/* The domain whose page map knows p (kmem_alloc'd memory), or NULL. */
struct kmem_domain *kmemi_dom_of(const void *p);
/* fork(2): the registry lock (fork.c takes it first). */
void kmemi_dom_fork(int phase);
/* Check d is a live domain; "fn" names the call in the report. */
void kmemi_dom_check(const char *fn, const struct kmem_domain *d);

/* kmem.c: whether d's page map knows p (kmem_alloc'd memory of d). */
bool kmemi_kmem_owns(struct kmem_domain *d, const void *p);
/* kmem.c: set up a new domain as kmem is at its first call; false: ENOMEM. */
bool kmemi_kmem_dom_setup(struct kmem_domain *d);
/*
 * kmem.c: EBUSY if d holds arenas, pools or caches a caller made, or
 * objects out, else 0 (its caches drained on the way); and giving every
 * page of d back to its source, the structure last.
 */
int kmemi_dom_busy(struct kmem_domain *d);
void kmemi_dom_teardown(struct kmem_domain *d);
/* pool.c, meta.c: their parts of the teardown (in this order, last). */
void kmemi_pool_dom_fini(struct kmem_domain *d);
void kmemi_meta_dom_fini(struct kmem_domain *d);

#endif /* KMEM_INTERNAL_DOMAIN_H */
