/*
 * <kmem/pool.h> -- pool(9) and pool_cache(9) in userspace.
 *
 * Names, flag values and signatures are NetBSD's (sys/sys/pool.h).  A
 * struct pool lives in caller storage, as in the kernel; its fields are
 * private to kmem and may change between versions.  Additions that are
 * not in NetBSD carry the kmem_ prefix.  See pool(3) and pool_cache(3).
 */
#ifndef KMEM_POOL_H
#define KMEM_POOL_H

#ifndef KMEM_FREESTANDING
#include <pthread.h>
#endif
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kmem/ipl.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The API keeps default visibility when kmem itself is compiled with
 * hidden visibility (one set of objects for libkmem and libkmem-malloc;
 * each library's version script says what it exports).
 */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#ifndef KMEM_PADDR_T_DEFINED
#define KMEM_PADDR_T_DEFINED
typedef uintptr_t paddr_t;
#endif
#define POOL_PADDR_INVALID ((paddr_t)-1)

/* Flags (NetBSD's values, sys/sys/pool.h). */
#define PR_WAITOK     0x01    /* wait for memory or below the hard limit */
#define PR_NOWAIT     0x02    /* fail at once */
#define PR_WANTED     0x04    /* internal in NetBSD; accepted, ignored */
#define PR_PHINPAGE   0x40    /* page header inside the page */
#define PR_LIMITFAIL  0x100   /* fail instead of waiting at the hard limit */
#define PR_RECURSIVE  0x200   /* pages are items of another pool (stats) */
#define PR_NOTOUCH    0x400   /* never write into free items */
#define PR_NOALIGN    0x800   /* pages need not be aligned to their size */
#define PR_LARGECACHE 0x1000  /* pool_cache: 63-object groups */
#define PR_ZERO	      0x8000  /* zero the item */
#define PR_PSERIALIZE 0x20000 /* accepted; implies PR_NOTOUCH */

struct pool;

/* Where a pool's pages come from. */
struct pool_allocator {
	void *(*pa_alloc)(struct pool *, int);
	void (*pa_free)(struct pool *, void *);
	unsigned int pa_pagesz; /* 0: the system page size */
	/* Private to kmem. */
	unsigned int pa_pagemask;
	unsigned int pa_pageshift;
};

/* Pages from the library's page arena (kmem_va_arena). */
extern struct pool_allocator pool_allocator_kmem;
extern struct pool_allocator pool_allocator_nointr;

struct kmem_pool_page; /* private */

#ifdef KMEM_FREESTANDING
/*
 * The freestanding build (docs/embedding.md): the port's sleepable lock
 * and condition variable live in this storage, opaque to kmem.  A port
 * whose lock needs more room builds kmem, and everything that includes
 * this header, with a larger KMEM_PORT_LOCK_SIZE.
 */
#ifndef KMEM_PORT_LOCK_SIZE
#define KMEM_PORT_LOCK_SIZE 64
#endif
union kmem_port_lock {
	unsigned char kpl_bytes[KMEM_PORT_LOCK_SIZE];
	uint64_t kpl_align;
	void *kpl_ptr;
};
struct kmem_mutex {
	union kmem_port_lock km_port;
};
struct kmem_cond {
	union kmem_port_lock kc_port;
};
#endif

/* A pool; caller storage, fields private to kmem. */
struct pool {
#ifdef KMEM_FREESTANDING
	struct kmem_mutex pr_lock;
	struct kmem_cond pr_cv; /* growers and hard-limit sleepers */
#else
	pthread_mutex_t pr_lock;
	pthread_cond_t pr_cv; /* growers and hard-limit sleepers */
#endif
	char pr_wchan[32];
	unsigned int pr_magic;
	unsigned int pr_flags;	  /* PR_* given to pool_init */
	unsigned int pr_roflags;  /* derived flags, internal */
	unsigned int pr_idxshift; /* item index: off * pr_idxmul >> this */
	size_t pr_reqsize;	  /* size asked for */
	size_t pr_size;		  /* item size: rounded to the alignment */
	unsigned int pr_align;
	unsigned int pr_itemsperpage;
	size_t pr_itemoffset; /* first item's offset (after header) */
	size_t pr_maxcolor, pr_curcolor;
	struct pool_allocator *pr_alloc;
	struct kmem_pool_page *pr_partpages;  /* some items free */
	struct kmem_pool_page *pr_emptypages; /* all items free */
	struct kmem_pool_page *pr_fullpages;  /* no item free */
	unsigned int pr_bmwords;	      /* bitmap words per page */
	unsigned int pr_idxmul;		      /* 0: index by division */
	size_t pr_phsize;		      /* page header bytes */
	struct kmem_pool_page **pr_phhash;    /* off-page/unaligned lookup */
	size_t pr_phhashmask;
	struct kmem_pool_page *pr_phhash0[16];
	unsigned int pr_npages, pr_minpages, pr_maxpages, pr_hiwat;
	unsigned int pr_nitems;	   /* free items in pages */
	unsigned int pr_nout;	   /* items handed out */
	unsigned int pr_minitems;  /* low watermark: free items */
	unsigned int pr_maxitems;  /* high watermark: free items */
	unsigned int pr_hardlimit; /* items outstanding, max */
	const char *pr_hardlimit_warning;
	int pr_hardlimit_ratecap;     /* seconds */
	uint64_t pr_hardlimit_warned; /* ns, last warning */
	void (*pr_drain_hook)(void *, int);
	void *pr_drain_hook_arg;
	unsigned int pr_ngrowing; /* a grow is in progress */
	unsigned int pr_nwaiters;
	unsigned long pr_nget, pr_nfail, pr_nput;
	unsigned long pr_npagealloc, pr_npagefree, pr_nidle;
	struct pool_cache *pr_cache; /* attached cache, if any */
	/* Private: the attached cache's flush (its objects back here). */
	void (*pr_flush)(struct pool *);
	unsigned int pr_refcnt; /* walkers outside the list lock */
	struct pool *pr_next;	/* list of all pools */
	struct pool **pr_pprev;
	struct kmem_domain *pr_dom; /* the domain it was made in */
};

typedef struct pool_cache *pool_cache_t;

void pool_init(struct pool *pp, size_t size, unsigned int align,
    unsigned int align_offset, int flags, const char *wchan,
    struct pool_allocator *palloc, int ipl);
void pool_destroy(struct pool *pp);
void pool_set_drain_hook(struct pool *pp, void (*fn)(void *, int), void *arg);
void *pool_get(struct pool *pp, int flags);
void pool_put(struct pool *pp, void *v);
int pool_reclaim(struct pool *pp);
void pool_prime(struct pool *pp, int n);
void pool_setlowat(struct pool *pp, int n);
void pool_sethiwat(struct pool *pp, int n);
void pool_sethardlimit(
    struct pool *pp, unsigned int n, const char *warnmess, int ratecap);
bool pool_drain(struct pool **ppp);
int pool_totalpages(void);
unsigned int pool_nget(struct pool *pp);
unsigned int pool_nput(struct pool *pp);

pool_cache_t pool_cache_init(size_t size, unsigned int align,
    unsigned int align_offset, unsigned int flags, const char *wchan,
    struct pool_allocator *palloc, int ipl, int (*ctor)(void *, void *, int),
    void (*dtor)(void *, void *), void *arg);
void pool_cache_destroy(pool_cache_t pc);
void *pool_cache_get_paddr(pool_cache_t pc, int flags, paddr_t *pap);
void pool_cache_put_paddr(pool_cache_t pc, void *object, paddr_t pa);
void pool_cache_destruct_object(pool_cache_t pc, void *object);
void pool_cache_invalidate(pool_cache_t pc);
bool pool_cache_reclaim(pool_cache_t pc);
void pool_cache_set_drain_hook(
    pool_cache_t pc, void (*fn)(void *, int), void *arg);
void pool_cache_setlowat(pool_cache_t pc, int n);
void pool_cache_sethiwat(pool_cache_t pc, int n);
void pool_cache_sethardlimit(
    pool_cache_t pc, int n, const char *warnmess, int ratecap);
void pool_cache_prime(pool_cache_t pc, int n);
unsigned int pool_cache_nget(pool_cache_t pc);
unsigned int pool_cache_nput(pool_cache_t pc);

#define pool_cache_get(pc, f) pool_cache_get_paddr((pc), (f), NULL)
#define pool_cache_put(pc, o)                                                  \
	pool_cache_put_paddr((pc), (o), POOL_PADDR_INVALID)

/* ---- kmem extensions (not in NetBSD) ---- */

/* Statistics of one pool (vmstat -m) and its cache (vmstat -C). */
struct kmem_pool_stats {
	size_t ps_size; /* sizeof(struct kmem_pool_stats) */
	char ps_name[32];
	size_t ps_itemsize;
	unsigned int ps_pagesize, ps_itemsperpage;
	unsigned long ps_nget, ps_nfail, ps_nput;
	unsigned int ps_nout, ps_nitems;
	unsigned long ps_npagealloc, ps_npagefree;
	unsigned int ps_npages, ps_hiwat, ps_minpages, ps_maxpages, ps_nidle;
	unsigned int ps_flags;
	/* Cache layer (zero without a pool_cache). */
	bool ps_cached;
	unsigned int ps_groupsize;		 /* objects per group now */
	unsigned long ps_nfull, ps_nempty;	 /* groups in the depot */
	unsigned long ps_cpuhit, ps_cpumiss;	 /* CPU layer */
	unsigned long ps_depothit, ps_depotmiss; /* depot (cache) layer */
	unsigned long ps_contended;		 /* depot lock contention */
	unsigned long ps_cached_objects;	 /* objects in groups */
};
int kmem_pool_stats(struct pool *pp, struct kmem_pool_stats *st);
int kmem_pool_cache_stats(pool_cache_t pc, struct kmem_pool_stats *st);
/*
 * One CPU's share of the CPU layer: hits, misses and objects held in its
 * two groups.  0, or EINVAL if cpu is not below the cache's CPU count
 * (kmem_pool_cache_ncpu).
 */
unsigned int kmem_pool_cache_ncpu(pool_cache_t pc);
int kmem_pool_cache_cpu_stats(pool_cache_t pc, unsigned int cpu,
    unsigned long *hits, unsigned long *misses, unsigned long *held);

/* vmstat -m and vmstat -C style tables; NULL pr prints to stderr. */
void kmem_pool_print_stats(void (*pr)(const char *, ...));
void kmem_pool_cache_print_stats(void (*pr)(const char *, ...));

/*
 * Give back what caches and pools hold beyond their recent working set
 * (depot groups above it are destroyed, idle pages go back to their
 * allocator), and every free page of the library's page arena, at once.
 * kmem_reap_all(): everything not in use.
 */
void kmem_reap(void);
void kmem_reap_all(void);

/*
 * Consistency checks (as NetBSD's vmem_check, for pools and caches):
 * kmem_pool_check walks a pool under its lock (each page on the list its
 * count of items out says, its free bitmap against that count, the page
 * hash, the pool's counters); kmem_pool_cache_check holds every CPU slot
 * of the cache, its depot and its pool at once and checks the groups,
 * the depot's lists, that each object cached is out of the pool, and the
 * pool; kmem_check_all checks every pool, cache and vmem arena there is.
 * They return if all is well, else print one "kmem: CHECKER(pool|cache
 * 'NAME'): ..." line and abort.  KMEM_DEBUG=check runs them from the
 * slow paths.
 */
void kmem_pool_check(struct pool *pp);
void kmem_pool_cache_check(pool_cache_t pc);
void kmem_check_all(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* KMEM_POOL_H */
