/*
 * <kmem/domain.h> -- kmem domains (extension, not in NetBSD): the whole
 * allocator -- vmem, pool, pool_cache and kmem_alloc -- as an instance
 * over memory a caller provides through a page source: a huge-page
 * region, a NUMA node's memory, a shared-memory segment, a file mapping,
 * a kernel's pages.  See kmem_domain(3).
 *
 * The process starts with one domain, the default, over the operating
 * system's pages: everything kmem did before domains existed.  While a
 * domain is current on a thread, NetBSD's calls on that thread work in
 * it: kmem_alloc/zalloc and the string helpers, vmem_create, pool_init
 * with a NULL allocator, pool_cache_init, kmem_reap and the statistics.
 * An arena, pool or cache belongs to the domain it was created in for its
 * whole life, whatever is current where it is used; kmem_free(p, size)
 * sends p back to the domain p came from.  Every byte a domain uses,
 * objects and metadata alike, comes from its page source, and destroying
 * it gives every page back.  malloc (libkmem-malloc.so) stays on the
 * default domain.
 */
#ifndef KMEM_DOMAIN_H
#define KMEM_DOMAIN_H

#include <stddef.h>

#include <kmem/vmem.h>

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

typedef struct kmem_domain kmem_domain_t;

/* Where a domain's pages come from. */
struct kmem_page_source {
	/*
	 * size bytes aligned to align (both multiples of the page size),
	 * readable and writable, or NULL when there are none.  Need not be
	 * zeroed.
	 */
	void *(*ps_alloc)(void *arg, size_t size, size_t align);
	/* Take back exactly a range ps_alloc handed out. */
	void (*ps_free)(void *arg, void *addr, size_t size);
	/*
	 * Optional (NULL: never called): the contents of [addr, addr + size)
	 * are no longer needed; the pages stay the domain's.
	 */
	void (*ps_purge)(void *arg, void *addr, size_t size);
	void *ps_arg;
};

/* A new domain over src (copied); NULL and errno on failure. */
kmem_domain_t *kmem_domain_create(
    const char *name, const struct kmem_page_source *src);
/*
 * The same with settings of its own: "options" in KMEM_OPTIONS's syntax
 * ("purge_delay_ms=0,pool_idle_ms=100"), over a copy of the default
 * domain's (which KMEM_OPTIONS set).  A domain's own: purge_delay_ms,
 * pool_idle_ms, reap_interval_ms, vmem_min_import, vmem_sleep_retry_ms,
 * oom_wait_ms; the others are the process's.  An item rejected: NULL
 * and EINVAL (with a kmem: warning naming it).
 */
kmem_domain_t *kmem_domain_create_with(
    const char *name, const struct kmem_page_source *src, const char *options);
/*
 * 0 when everything went back to src; EBUSY (nothing freed) while
 * arenas, pools, caches or objects of the domain are still alive.
 */
int kmem_domain_destroy(kmem_domain_t *d);
/*
 * Make d this thread's current domain (NULL: the process's default
 * domain); returns the previous one, to switch back to.
 */
kmem_domain_t *kmem_domain_switch(kmem_domain_t *d);
/* This thread's current domain (the default unless switched). */
kmem_domain_t *kmem_domain_current(void);
/* The process's default domain, over the operating system's pages. */
kmem_domain_t *kmem_domain_default(void);
/* The domain's page arena (NetBSD's kmem_va_arena for the default). */
vmem_t *kmem_domain_arena(kmem_domain_t *d);
/* Its name ("default" for the default domain). */
const char *kmem_domain_name(const kmem_domain_t *d);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* KMEM_DOMAIN_H */
