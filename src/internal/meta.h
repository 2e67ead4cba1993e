/*
 * meta.h -- the metadata region (meta.c): memory for everything the
 * allocator trusts, never next to a page of objects.
 */
#ifndef KMEM_INTERNAL_META_H
#define KMEM_INTERNAL_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kmem/vmem.h>

struct kmem_domain;

/*
 * A run of its own: "size" (page-rounded) zeroed bytes between two guard
 * pages, recorded in the region's registry.  For vmem's own metadata
 * (boundary-tag chunks, arena structures, busy hashes), which cannot come
 * from the metadata arena.  Takes no vmem lock: callable with any held.
 * 0 or ENOMEM.
 */
int kmemi_meta_map(struct kmem_domain *d, size_t size, void **out);
void kmemi_meta_unmap(struct kmem_domain *d, void *p, size_t size);

/*
 * Metadata of every other kind: "size" (page-rounded) zeroed bytes from
 * the metadata arena "kmeta", or a run of its own when large.  flags:
 * VM_SLEEP (wait for memory) or VM_NOSLEEP.  Takes kmeta's lock: not to
 * be called with a vmem arena's lock held.  0 or ENOMEM.
 */
int kmemi_meta_alloc(
    struct kmem_domain *d, size_t size, vm_flag_t flags, void **out);
void kmemi_meta_free(struct kmem_domain *d, void *p, size_t size);

/* The metadata arena, created on first use; NULL without memory for it. */
vmem_t *kmemi_meta_arena(struct kmem_domain *d);
/* Its purge pass if one is due, or over everything with "all". */
void kmemi_meta_purge(struct kmem_domain *d, bool all);
/* A free's share of it (kmemi_vmem_purge_step). */
bool kmemi_meta_purge_step(struct kmem_domain *d);

/* True if [addr, addr + size) is within a page of a metadata run. */
bool kmemi_meta_near(struct kmem_domain *d, const void *addr, size_t size);
/* True if p is in a metadata run. */
bool kmemi_meta_owns(struct kmem_domain *d, const void *p);
/*
 * fn(start, size, arg) for every metadata run (the bytes between its
 * guards), in address order, under the registry's lock: fn must not map
 * or unmap metadata.  Stops at, and returns, fn's first non-zero value.
 */
int kmemi_meta_foreach(
    struct kmem_domain *d, int (*fn)(uintptr_t, size_t, void *), void *arg);

/* fork(2): the registry's lock, after every vmem lock (fork.c). */
void kmemi_meta_fork(int phase);

#endif /* KMEM_INTERNAL_META_H */
