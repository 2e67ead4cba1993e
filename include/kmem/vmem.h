/*
 * <kmem/vmem.h> -- the vmem(9) resource allocator in userspace.
 *
 * Names, types, flag values and signatures are NetBSD's (sys/sys/vmem.h),
 * so code written against vmem(9) compiles unchanged.  Additions that are
 * not in NetBSD carry the kmem_ prefix (statistics, minimum import size);
 * VM_NEXTFIT is illumos's flag, with illumos's meaning.  See vmem(3).
 */
#ifndef KMEM_VMEM_H
#define KMEM_VMEM_H

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

typedef uintptr_t vmem_addr_t;
typedef size_t vmem_size_t;
typedef unsigned int vm_flag_t;
typedef struct vmem vmem_t;

#define VMEM_ADDR_MIN ((vmem_addr_t)0)
#define VMEM_ADDR_MAX (~(vmem_addr_t)0)

/* Import and release callbacks; the first argument is the source arena. */
typedef int vmem_import_t(vmem_t *, vmem_size_t, vm_flag_t, vmem_addr_t *);
typedef int vmem_ximport_t(
    vmem_t *, vmem_size_t, vmem_size_t *, vm_flag_t, vmem_addr_t *);
typedef void vmem_release_t(vmem_t *, vmem_addr_t, vmem_size_t);

/* vm_flag_t values (NetBSD's, sys/sys/vmem.h). */
#define VM_SLEEP       0x00000001 /* wait until the request can be met */
#define VM_NOSLEEP     0x00000002 /* fail with ENOMEM at once */
#define VM_INSTANTFIT  0x00001000 /* constant-time good fit (default) */
#define VM_BESTFIT     0x00002000 /* smallest segment that fits */
#define VM_NEXTFIT     0x00004000 /* ours (illumos): next free after rotor */
#define VM_BOOTSTRAP   0x00010000 /* accepted; tags never need a bootstrap */
#define VM_POPULATING  0x00040000 /* internal to NetBSD; accepted, ignored */
#define VM_LARGEIMPORT 0x00080000 /* import 16x the request */
#define VM_XIMPORT     0x00100000 /* set by vmem_xcreate; not for callers */

/* vmem_size() type mask. */
#define VMEM_ALLOC 0x01
#define VMEM_FREE  0x02

vmem_t *vmem_create(const char *name, vmem_addr_t base, vmem_size_t size,
    vmem_size_t quantum, vmem_import_t *importfn, vmem_release_t *releasefn,
    vmem_t *source, vmem_size_t qcache_max, vm_flag_t flags, int ipl);
vmem_t *vmem_xcreate(const char *name, vmem_addr_t base, vmem_size_t size,
    vmem_size_t quantum, vmem_ximport_t *importfn, vmem_release_t *releasefn,
    vmem_t *source, vmem_size_t qcache_max, vm_flag_t flags, int ipl);
void vmem_destroy(vmem_t *vm);

int vmem_add(vmem_t *vm, vmem_addr_t addr, vmem_size_t size, vm_flag_t flags);

int vmem_alloc(
    vmem_t *vm, vmem_size_t size, vm_flag_t flags, vmem_addr_t *addrp);
void vmem_free(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);

int vmem_xalloc(vmem_t *vm, vmem_size_t size, vmem_size_t align,
    vmem_size_t phase, vmem_size_t nocross, vmem_addr_t minaddr,
    vmem_addr_t maxaddr, vm_flag_t flags, vmem_addr_t *addrp);
int vmem_xalloc_addr(
    vmem_t *vm, vmem_addr_t addr, vmem_size_t size, vm_flag_t flags);
void vmem_xfree(vmem_t *vm, vmem_addr_t addr, vmem_size_t size);
void vmem_xfreeall(vmem_t *vm);

vmem_size_t vmem_size(vmem_t *vm, int typemask);
vmem_size_t vmem_roundup_size(vmem_t *vm, vmem_size_t size);

/*
 * Printing (NetBSD's DDB helpers).  "pr" is printf-like; NULL prints to
 * standard error without allocating.  vmem_print() takes the arena's
 * address as an integer, as DDB does.
 */
typedef void vmem_printfn_t(const char *, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void vmem_dump(const vmem_t *vm, vmem_printfn_t *pr);
void vmem_print(uintptr_t addr, const char *modif, vmem_printfn_t *pr);
void vmem_printall(const char *modif, vmem_printfn_t *pr);
/* "ADDR is START+OFF in VMEM 'name' (allocated|free)"; 0 if found, else -1. */
int vmem_whatis(uintptr_t addr, vmem_printfn_t *pr);

/* ---- kmem extensions (not in NetBSD) ---- */

/* Per-arena statistics, read under the arena lock. */
struct kmem_vmem_stats {
	size_t vs_size;		 /* sizeof(struct kmem_vmem_stats) */
	char vs_name[32];	 /* arena name */
	vmem_size_t vs_quantum;	 /* quantum */
	vmem_size_t vs_inuse;	 /* bytes allocated */
	vmem_size_t vs_imported; /* bytes in imported spans */
	vmem_size_t vs_total;	 /* bytes in all spans (static + imported) */
	uint64_t vs_alloc;	 /* successful allocations */
	uint64_t vs_free;	 /* frees */
	uint64_t vs_fail;	 /* failed allocations (ENOMEM) */
	uint64_t vs_wait;	 /* times a VM_SLEEP request waited */
	uint64_t vs_import;	 /* spans imported */
	uint64_t vs_release;	 /* spans released to the source */
	uint64_t vs_nbusy;	 /* busy segments now */
	uint64_t vs_nfree;	 /* free segments now */
	uint64_t vs_hashsize;	 /* busy-segment hash buckets now */
};
int kmem_vmem_stats(const vmem_t *vm, struct kmem_vmem_stats *st);

/*
 * Import at least "size" bytes whenever the arena imports (illumos's
 * vm_min_import); the excess of an import that lost a race is released at
 * once.  Returns 0, or EINVAL if the arena cannot import.
 */
int kmem_vmem_set_min_import(vmem_t *vm, vmem_size_t size);

/* Print one line per arena (the vmem statistics table); NULL pr = stderr. */
void kmem_vmem_print_stats(vmem_printfn_t *pr);

/*
 * Check the arena's bookkeeping under its lock (NetBSD's vmem_check):
 * segments in order tiling their spans, free segments coalesced and on
 * the right freelists, the busy hash, the counters.  Returns if all is
 * well; else one "kmem: kmem_vmem_check(arena 'NAME'): ..." line, abort.
 */
void kmem_vmem_check(vmem_t *vm);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* KMEM_VMEM_H */
