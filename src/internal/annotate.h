/*
 * annotate.h -- telling valgrind's memcheck and AddressSanitizer what
 * kmem's objects are (issue 13, section 2).
 *
 * Without this, memcheck and ASan see kmem's pages as one mapping: a use
 * after kmem_free or pool_cache_put, an overrun into the next object and a
 * read of a fresh kmem_alloc'd object all pass.  With it:
 *   - an object handed out (kmem_alloc, pool_cache_get, pool_get) is a
 *     block of the tool's: addressable for the size asked, its contents
 *     undefined (kmem_alloc, pool_get, a cache without constructor) or
 *     defined (kmem_zalloc, PR_ZERO, a constructed object of a cache with a
 *     constructor: pool_cache(9)'s contract is that an object comes out
 *     constructed); the rest of its size class or item -- the redzone --
 *     no access (13 bytes in the 16-byte class: bytes 13..15);
 *   - an object given back (kmem_free, pool_cache_put, pool_put) is no
 *     access at once, and stays so while it sits in a CPU's group, the
 *     depot or the pool's free items, until it is handed out again;
 *     objects never handed out are no access from the moment their page
 *     comes in (kmem's classes, user pools and caches);
 *   - what kmem touches itself is made accessible around the touch: a
 *     destructor's object, a constructor's, an object a class hands to
 *     the debug layer; and memory that leaves the owner's pages is left
 *     accessible, as it was before kmem annotated anything: a page going
 *     back to kva or to a pool's allocator, a large kmem block at
 *     kmem_free (kva's ranges are handed to vmem_alloc callers as they
 *     are, and ASan's shadow would outlive a span unmapped) -- so a use
 *     after kmem_free of a large block (above KMEM_CACHE_MAX) is not
 *     caught.
 * memcheck: each annotated owner -- a domain for kmem_alloc, a cache, a
 * user's pool -- is a memcheck mempool anchored at its structure
 * (VALGRIND_CREATE_MEMPOOL), each object a chunk of it
 * (VALGRIND_MEMPOOL_ALLOC / FREE: reports name the block, where it was
 * allocated and freed); destroying the owner destroys the mempool.  Only
 * when RUNNING_ON_VALGRIND, read where an owner is made; the headers are
 * valgrind's (<valgrind/memcheck.h>), optional at build time
 * (KMEM_HAVE_VALGRIND, CMake).  ASan (the library built with
 * -fsanitize=address): __asan_poison_memory_region / unpoison, always on;
 * a use after free is reported as "use-after-poison".  ASan cannot see
 * uninitialised reads: MemorySanitizer can (the library built with
 * -fsanitize=memory, always on): a handed-out object is uninitialised
 * (__msan_allocated_memory) or initialised as above, a freed one and the
 * redzones uninitialised again (__msan_poison: MSan has no "no access",
 * so it sees a use after free only where the value decides something).
 *
 * Cost: while annotating, every call takes the locked slow paths, where
 * the annotations are: kmem_setup and the caches leave the lock-free fast
 * paths off (kd_rseq, pc_rseq false: the gate's KMEM_GATE_NORSEQ), so the
 * restartable sequences never hand out an object unannotated.  Without
 * annotation (no valgrind at run time, or neither tool at build time) the
 * fast paths are what they were; the slow paths test a flag.
 *
 * Not annotated: libkmem-malloc.so's malloc (valgrind replaces malloc
 * itself; its classes' objects carry malloc's free tag, which kmem writes
 * into free objects), so kmem_alloc is not annotated in a domain that
 * serves malloc; KMEM_DEBUG's layer (it has its own redzones and
 * patterns); pools over memory that is not memory (PR_NOTOUCH); a cache
 * with object hooks (kmemi_cache_set_hooks: they write into free
 * objects).
 */
#ifndef KMEM_INTERNAL_ANNOTATE_H
#define KMEM_INTERNAL_ANNOTATE_H

#include <stdbool.h>
#include <stddef.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if defined(KMEM_FREESTANDING)
#define KMEMI_ANNOT 0
#elif __has_feature(memory_sanitizer)
#define KMEMI_ANNOT	 1
#define KMEMI_ANNOT_MSAN 1
#include <sanitizer/msan_interface.h>
#elif defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define KMEMI_ANNOT	 1
#define KMEMI_ANNOT_ASAN 1
#include <sanitizer/asan_interface.h>
#elif defined(KMEM_HAVE_VALGRIND)
#define KMEMI_ANNOT    1
#define KMEMI_ANNOT_VG 1
#include <valgrind/memcheck.h>
#else
#define KMEMI_ANNOT 0
#endif

/* How a handed-out object's contents are to the tools. */
#define KMEMI_AN_UNDEF	 0
#define KMEMI_AN_DEFINED 1

/*
 * Whether to annotate: read where an owner (domain, cache, pool) is made
 * and kept in it.  ASan builds always; otherwise under valgrind.
 */
static inline bool
kmemi_annot_detect(void)
{
#if defined(KMEMI_ANNOT_ASAN) || defined(KMEMI_ANNOT_MSAN)
	return true;
#elif defined(KMEMI_ANNOT_VG)
	return RUNNING_ON_VALGRIND != 0;
#else
	return false;
#endif
}

/* Owner "anchor" begins / ends (its chunks are forgotten). */
static inline void
kmemi_annot_owner_create(const void *anchor)
{
#ifdef KMEMI_ANNOT_VG
	VALGRIND_CREATE_MEMPOOL(anchor, 0, 0);
#else
	(void)anchor;
#endif
}

static inline void
kmemi_annot_owner_destroy(const void *anchor)
{
#ifdef KMEMI_ANNOT_VG
	VALGRIND_DESTROY_MEMPOOL(anchor);
#else
	(void)anchor;
#endif
}

/* n bytes at p: no access (ASan: poisoned). */
static inline void
kmemi_annot_noaccess(const void *p, size_t n)
{
#if defined(KMEMI_ANNOT_ASAN)
	__asan_poison_memory_region(p, n);
#elif defined(KMEMI_ANNOT_MSAN)
	__msan_poison(p, n); /* MSan has no "no access": uninitialised */
#elif defined(KMEMI_ANNOT_VG)
	VALGRIND_MAKE_MEM_NOACCESS(p, n);
#else
	(void)p;
	(void)n;
#endif
}

/* n bytes at p: accessible, contents undefined. */
static inline void
kmemi_annot_undefined(const void *p, size_t n)
{
#if defined(KMEMI_ANNOT_ASAN)
	__asan_unpoison_memory_region(p, n);
#elif defined(KMEMI_ANNOT_MSAN)
	__msan_allocated_memory(p, n);
#elif defined(KMEMI_ANNOT_VG)
	VALGRIND_MAKE_MEM_UNDEFINED(p, n);
#else
	(void)p;
	(void)n;
#endif
}

/* n bytes at p: accessible, contents defined (as kmem found them). */
static inline void
kmemi_annot_defined(const void *p, size_t n)
{
#if defined(KMEMI_ANNOT_ASAN)
	__asan_unpoison_memory_region(p, n);
#elif defined(KMEMI_ANNOT_MSAN)
	__msan_unpoison(p, n);
#elif defined(KMEMI_ANNOT_VG)
	VALGRIND_MAKE_MEM_DEFINED(p, n);
#else
	(void)p;
	(void)n;
#endif
}

/*
 * Object p of owner "anchor" handed out: "size" bytes accessible (their
 * contents as "state" says), the rest of its "span" bytes (class, item)
 * no access -- the redzone.
 */
static inline void
kmemi_annot_alloc(
    const void *anchor, void *p, size_t size, size_t span, int state)
{
#if defined(KMEMI_ANNOT_ASAN)
	(void)anchor;
	(void)state;
	__asan_poison_memory_region(p, span);
	__asan_unpoison_memory_region(p, size);
#elif defined(KMEMI_ANNOT_MSAN)
	(void)anchor;
	(void)span;
	if (state == KMEMI_AN_DEFINED)
		__msan_unpoison(p, size);
	else
		__msan_allocated_memory(p, size);
#elif defined(KMEMI_ANNOT_VG)
	VALGRIND_MEMPOOL_ALLOC(anchor, p, size);
	if (state == KMEMI_AN_DEFINED)
		VALGRIND_MAKE_MEM_DEFINED(p, size);
	if (span > size)
		VALGRIND_MAKE_MEM_NOACCESS((char *)p + size, span - size);
#else
	(void)anchor;
	(void)p;
	(void)size;
	(void)span;
	(void)state;
#endif
}

/* Object p of owner "anchor" given back: its "span" bytes no access. */
static inline void
kmemi_annot_free(const void *anchor, void *p, size_t span)
{
#if defined(KMEMI_ANNOT_ASAN)
	(void)anchor;
	__asan_poison_memory_region(p, span);
#elif defined(KMEMI_ANNOT_MSAN)
	(void)anchor;
	__msan_poison(p, span);
#elif defined(KMEMI_ANNOT_VG)
	VALGRIND_MEMPOOL_FREE(anchor, p);
	VALGRIND_MAKE_MEM_NOACCESS(p, span);
#else
	(void)anchor;
	(void)p;
	(void)span;
#endif
}

#endif /* KMEM_INTERNAL_ANNOTATE_H */
