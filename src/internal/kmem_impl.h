/*
 * kmem_impl.h -- what kmem.c (the size-class front end), debug.c (the
 * KMEM_DEBUG layer) and stats.c share.
 */
#ifndef KMEM_INTERNAL_KMEM_IMPL_H
#define KMEM_INTERNAL_KMEM_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>

/*
 * The gate every kmem_alloc/kmem_free fast path tests, one predictable
 * branch: non-zero before kmem is set up (KMEM_GATE_INIT), while any
 * debug item is on (its KMEM_DEBUG_* bits), and without the lock-free
 * fast path (KMEM_GATE_NORSEQ); 0 on the plain fast path.
 */
#define KMEM_GATE_INIT	 0x100u
#define KMEM_GATE_NORSEQ 0x200u /* no lock-free fast path: slow path */
#define KMEM_GATE_DEBUG	 0xffu	/* the KMEM_DEBUG_* items */
extern unsigned int kmemi_gate;

/* ---- kmem.c, for debug.c: the allocator under the debug layer ---- */

/* Allocate / free "size" bytes by class or large path; no debug layer. */
void *kmemi_raw_alloc(const char *fn, size_t size, km_flag_t flags);
void kmemi_raw_free(const char *fn, void *p, size_t size);
/* The name of what serves "size": "kmem-00064", or "kva" (large path). */
const char *kmemi_size_name(size_t size);
/* Classes: count, size and cache of class i. */
unsigned int kmemi_nclasses(void);
size_t kmemi_class_size(unsigned int i);
pool_cache_t kmemi_class_cache(unsigned int i);

/* ---- debug.c ---- */

/* Parse KMEM_DEBUG (once, from kmem_init); returns the KMEM_DEBUG_* bits. */
unsigned int kmemi_debug_init(void);
/*
 * Tests: switch the items to "spec" (KMEM_DEBUG syntax) in a process that
 * has not yet allocated through kmem; returns the bits now on.
 */
unsigned int kmemi_debug_configure(const char *spec);
void *kmemi_debug_alloc(const char *fn, size_t size, km_flag_t flags);
void kmemi_debug_free(const char *fn, void *p, size_t size);
/* A page of a kmem cache goes back to the page arena: forget its records. */
void kmemi_debug_forget(const void *page, size_t size);

/* ---- stats.c ---- */

/* Read KMEM_STATS (once, from kmem_init) and arrange the print at exit. */
void kmemi_stats_init(void);

/* Tests (kmemi_debug_configure): set the gate's debug bits. */
void kmemi_gate_set(unsigned int bits);

/* fork(2): kmem's and the debug layer's locks (see pool_impl.h). */
void kmemi_kmem_fork(int phase);
void kmemi_debug_fork(int phase);
/* options.c: the options lock. */
void kmemi_options_fork(int phase);

#endif /* KMEM_INTERNAL_KMEM_IMPL_H */
