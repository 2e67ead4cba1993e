/*
 * vmem_paths.c -- vmem's rarer paths, each with what it must do:
 *
 *   - boundary tags run out (the tag supply drained by a hog arena while
 *     the OS refuses chunks): an import that finds its tags taken gives
 *     the span back (VM_NOSLEEP: ENOMEM); VM_SLEEP -- an allocation, a
 *     vmem_add -- waits and goes on once tags come back; vmem_create of
 *     an arena with a span fails with ENOMEM;
 *   - import functions that lie (less than asked, a misaligned span):
 *     reported;
 *   - waiters are woken by a span going back to the source, by a purge
 *     pass, by a free into an arena whose only other resource is its
 *     quantum caches;
 *   - imports that turn out unneeded (a free raced with the import) or
 *     useless (outside [minaddr, maxaddr]) are given back at once;
 *   - the direct vmem_xalloc import from a vmem source is used only when
 *     the request and its rounding to the source's quantum allow it, and
 *     a larger minimum import only when it keeps the constraints;
 *   - VM_LARGEIMPORT of a size that overflows when multiplied;
 *   - arenas without quantum caches (their pages would be too large, or
 *     the span too small for two), anonymous arenas, arenas destroyed
 *     with imported spans and no release function, or with busy segments
 *     in a grown hash;
 *   - bad calls on quantum-cached segments and addresses: reported.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"
#include "t.h"

static vmem_t *
arena(const char *name, vmem_addr_t base, vmem_size_t size, vmem_size_t q,
    vmem_import_t *imp, vmem_release_t *rel, vmem_t *src, vmem_size_t qc,
    vm_flag_t flags)
{
	vmem_t *vm = vmem_create(
	    name, base, size, q, imp, rel, src, qc, flags, IPL_NONE);

	T_ASSERT(vm != NULL);
	return vm;
}

/* ---- boundary tags run out ---- */

/*
 * Take every tag the supply has left, with the OS refusing new chunks:
 * single-quantum segments at every other address of a huge span.  The
 * hog keeps them until it is destroyed.
 */
static vmem_t *
tags_drain(void)
{
	vmem_t *hog = arena(
	    "hog", 0, (vmem_size_t)1 << 40, 1, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_addr_t a;

	kmem_prim_fault_set(1, true);
	for (a = 0; vmem_xalloc_addr(hog, a, 1, VM_NOSLEEP) == 0; a += 2)
		continue;
	T_GT(a, 2 * 512); /* the static reserve went too */
	return hog;
}

static void *
destroy_later(void *arg)
{
	kmem_prim_sleep_ns(30000000);
	vmem_destroy(arg);
	return NULL;
}

static vmem_t *tag_arena;
static int tag_imports;
static vmem_addr_t released_addr;
static vmem_size_t released_size;

/* An import that spends its arena's spare tags while it is unlocked. */
static int
import_spending(vmem_t *src, vmem_size_t size, vm_flag_t fl, vmem_addr_t *ap)
{
	static vmem_addr_t next = (vmem_addr_t)1 << 41;

	(void)src;
	(void)size;
	(void)fl;
	if (tag_imports++ == 0)
		while (vmem_add(tag_arena, next, 1, VM_NOSLEEP) == 0)
			next += 2;
	*ap = 0x1000000;
	return 0;
}

static void
release_rec(vmem_t *src, vmem_addr_t a, vmem_size_t size)
{
	(void)src;
	released_addr = a;
	released_size = size;
}

static void
c_import_no_tags(void *arg)
{
	bool sleep = arg != NULL;
	vmem_addr_t a = 0;
	vmem_t *hog;
	pthread_t t;

	kmem_options_init();
	kmem_opts.vmem_sleep_retry_ms = 1;
	tag_arena = arena(
	    "tags", 0, 0, 1, import_spending, release_rec, NULL, 0, VM_SLEEP);
	/* Spare tags in the arena's own cache. */
	T_EQ(vmem_add(tag_arena, 0x100, 0x10, VM_SLEEP), 0);
	hog = tags_drain();
	if (!sleep) {
		T_EQ(vmem_alloc(tag_arena, 0x100, VM_NOSLEEP, &a), ENOMEM);
		T_EQ(released_addr, 0x1000000);
		T_EQ(released_size, 0x100);
		return;
	}
	T_EQ(pthread_create(&t, NULL, destroy_later, hog), 0);
	T_EQ(vmem_alloc(tag_arena, 0x100, VM_SLEEP, &a), 0);
	T_EQ(pthread_join(t, NULL), 0);
	T_EQ(a, 0x1000000);
	T_EQ(tag_imports, 2);
}

static void
c_add_no_tags(void *arg)
{
	vmem_t *vm, *hog;
	pthread_t t;

	(void)arg;
	kmem_options_init();
	kmem_opts.vmem_sleep_retry_ms = 1;
	vm = arena("adds", 0, 0, 1, NULL, NULL, NULL, 0, VM_SLEEP);
	hog = tags_drain();
	T_EQ(vmem_add(vm, 0x1000, 0x1000, VM_NOSLEEP), ENOMEM);
	T_EQ(pthread_create(&t, NULL, destroy_later, hog), 0);
	T_EQ(vmem_add(vm, 0x1000, 0x1000, VM_SLEEP), 0);
	T_EQ(pthread_join(t, NULL), 0);
	T_EQ(vmem_size(vm, VMEM_FREE), 0x1000);
}

static void
c_create_no_tags(void *arg)
{
	(void)arg;
	(void)tags_drain();
	kmem_prim_fault_set(2, false); /* the arena's page, then no chunk */
	errno = 0;
	T_ASSERT(vmem_create("late", 0x1000, 0x1000, 1, NULL, NULL, NULL, 0,
		     VM_SLEEP, IPL_NONE) == NULL);
	T_EQ(errno, ENOMEM);
}

static void
test_tags_run_out(void)
{
	char buf[4096];

	t_child_ok(c_import_no_tags, NULL, buf, sizeof buf);
	t_child_ok(c_import_no_tags, (void *)1, buf, sizeof buf);
	t_child_ok(c_add_no_tags, NULL, buf, sizeof buf);
	t_child_ok(c_create_no_tags, NULL, buf, sizeof buf);
}

/* ---- import functions that lie ---- */

static int
ximport_short(vmem_t *src, vmem_size_t size, vmem_size_t *actual, vm_flag_t fl,
    vmem_addr_t *ap)
{
	(void)src;
	(void)fl;
	*actual = size / 2;
	*ap = 0x10000;
	return 0;
}

static int
import_misaligned(vmem_t *src, vmem_size_t size, vm_flag_t fl, vmem_addr_t *ap)
{
	(void)src;
	(void)size;
	(void)fl;
	*ap = 0x10008;
	return 0;
}

static void
c_ximport_short(void *arg)
{
	vmem_t *vm = vmem_xcreate("short", 0, 0, 16, ximport_short, NULL, NULL,
	    0, VM_SLEEP, IPL_NONE);
	vmem_addr_t a;

	(void)arg;
	(void)vmem_alloc(vm, 0x100, VM_SLEEP, &a);
}

static void
c_import_misaligned(void *arg)
{
	vmem_t *vm = arena(
	    "crooked", 0, 0, 16, import_misaligned, NULL, NULL, 0, VM_SLEEP);
	vmem_addr_t a;

	(void)arg;
	(void)vmem_alloc(vm, 0x100, VM_SLEEP, &a);
}

static void
test_lying_imports(void)
{
	T_ASSERT(t_expect_panic(c_ximport_short, NULL,
	    "vmem_import(arena 'short', size 0x100): ximport reported 0x80, "
	    "less than requested"));
	T_ASSERT(t_expect_panic(c_import_misaligned, NULL,
	    "vmem_import(arena 'crooked', size 0x100): import returned bad "
	    "span [0x10008, +0x100)"));
}

/* ---- waiters ---- */

struct waiter {
	vmem_t *vm;
	vmem_size_t size;
	bool xalloc;
	vmem_addr_t addr;
	int err;
};

static void *
wait_alloc(void *arg)
{
	struct waiter *w = arg;

	if (w->xalloc)
		w->err = vmem_xalloc(w->vm, w->size, 0, 0, 0, VMEM_ADDR_MIN,
		    VMEM_ADDR_MAX, VM_SLEEP, &w->addr);
	else
		w->err = vmem_alloc(w->vm, w->size, VM_SLEEP, &w->addr);
	return NULL;
}

static void
start_waiter(pthread_t *t, struct waiter *w)
{
	T_EQ(pthread_create(t, NULL, wait_alloc, w), 0);
	kmem_prim_sleep_ns(30000000); /* let it find nothing and wait */
}

static void
purge_nothing(vmem_addr_t a, vmem_size_t size)
{
	(void)a;
	(void)size;
}

static void
test_waiters(void)
{
	vmem_t *src, *vm;
	struct waiter w = {0};
	vmem_addr_t a;
	pthread_t t;

	/* A span going back to the source wakes a waiter for more. */
	src = arena("src", 0x10000, 0x10000, 1, NULL, NULL, NULL, 0, VM_SLEEP);
	vm = arena("child", 0, 0, 1, vmem_alloc, vmem_free, src, 0, VM_SLEEP);
	T_EQ(vmem_alloc(vm, 0x10000, VM_SLEEP, &a), 0);
	w.vm = vm;
	w.size = 0x8000;
	start_waiter(&t, &w);
	vmem_free(vm, a, 0x10000);
	T_EQ(pthread_join(t, NULL), 0);
	T_EQ(w.err, 0);
	vmem_free(vm, w.addr, 0x8000);
	vmem_destroy(vm);
	vmem_destroy(src);

	/* A purge pass (deferred mode, no delay) wakes a waiter. */
	vm = arena("purged", 0x1000, 0x1000, 1, NULL, NULL, NULL, 0, VM_SLEEP);
	kmemi_vmem_set_purge(vm, purge_nothing, 0);
	T_EQ(vmem_alloc(vm, 0x1000, VM_SLEEP, &a), 0);
	w.vm = vm;
	w.size = 0x100;
	start_waiter(&t, &w);
	vmem_free(vm, a, 0x1000);
	T_EQ(pthread_join(t, NULL), 0);
	T_EQ(w.err, 0);
	vmem_free(vm, w.addr, 0x100);
	kmemi_vmem_purge(vm, true);
	vmem_destroy(vm);

	/* No import, quantum caches: the waiter sleeps timed; a free. */
	vm = arena("qcw", 0x10000, 0x10000, 16, NULL, NULL, NULL, 64, VM_SLEEP);
	T_ASSERT(kmemi_vmem_qcache(vm, 64) != NULL);
	T_EQ(vmem_xalloc(vm, 0x10000, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
		 VM_SLEEP, &a),
	    0);
	w.vm = vm;
	w.size = 0x100;
	w.xalloc = true;
	start_waiter(&t, &w);
	vmem_xfree(vm, a, 0x10000);
	T_EQ(pthread_join(t, NULL), 0);
	T_EQ(w.err, 0);
	vmem_xfree(vm, w.addr, 0x100);
	vmem_destroy(vm);

	/* kmemi_vmem_purge of an arena not in deferred mode: nothing. */
	vm = arena("plain", 0x1000, 0x1000, 1, NULL, NULL, NULL, 0, VM_SLEEP);
	kmemi_vmem_purge(vm, true);
	T_EQ(vmem_size(vm, VMEM_FREE), 0x1000);
	vmem_destroy(vm);
}

/* ---- imports that turn out unneeded or useless ---- */

static vmem_t *race_arena;
static vmem_addr_t race_free_addr;
static vmem_addr_t race_next = 0x100000;

/* Import 0x1000-byte spans; the third time, free a segment meanwhile. */
static int
import_racing(vmem_t *src, vmem_size_t size, vm_flag_t fl, vmem_addr_t *ap)
{
	(void)src;
	(void)fl;
	T_EQ(size, 0x1000);
	if (race_free_addr != 0) {
		vmem_free(race_arena, race_free_addr, 0x100);
		race_free_addr = 0;
	}
	*ap = race_next;
	race_next += 0x10000;
	return 0;
}

static int
import_far(vmem_t *src, vmem_size_t size, vm_flag_t fl, vmem_addr_t *ap)
{
	(void)src;
	(void)size;
	(void)fl;
	*ap = 0x50000000;
	return 0;
}

static void
test_unneeded_imports(void)
{
	vmem_addr_t a0, a1, a2, a;
	vmem_t *vm;

	vm = race_arena = arena(
	    "race", 0, 0, 1, import_racing, release_rec, NULL, 0, VM_SLEEP);
	T_EQ(kmem_vmem_set_min_import(vm, 0x1000), 0);
	T_EQ(vmem_alloc(vm, 0x100, VM_BESTFIT | VM_SLEEP, &a0), 0);
	T_EQ(vmem_alloc(vm, 0x100, VM_BESTFIT | VM_SLEEP, &a1), 0);
	T_EQ(vmem_alloc(vm, 0xe00, VM_BESTFIT | VM_SLEEP, &a2), 0);
	T_EQ(vmem_size(vm, VMEM_FREE), 0);
	/* The import frees a1: best fit takes a1's place; the span goes. */
	race_free_addr = a1;
	released_addr = 0;
	T_EQ(vmem_alloc(vm, 0x100, VM_BESTFIT | VM_SLEEP, &a), 0);
	T_EQ(a, a1);
	T_EQ(released_addr, 0x110000);
	T_EQ(released_size, 0x1000);
	vmem_free(vm, a0, 0x100);
	vmem_free(vm, a, 0x100);
	vmem_free(vm, a2, 0xe00);
	vmem_destroy(vm);

	/* A span outside [minaddr, maxaddr] cannot serve: back at once. */
	vm = arena("far", 0, 0, 1, import_far, release_rec, NULL, 0, VM_SLEEP);
	released_addr = 0;
	T_EQ(vmem_xalloc(vm, 0x100, 0, 0, 0, 0x1000, 0x2000, VM_NOSLEEP, &a),
	    ENOMEM);
	T_EQ(released_addr, 0x50000000);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0);
	vmem_destroy(vm);
}

/* ---- direct imports from a vmem source ---- */

/* a lies in [min, max], aligned to align plus phase, not crossing. */
static void
check_fit(vmem_addr_t a, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
    vmem_size_t nocross, vmem_addr_t min, vmem_addr_t max)
{
	T_GE(a, min);
	T_LE(a + size - 1, max);
	if (align != 0)
		T_EQ(a % align, phase);
	if (nocross != 0)
		T_EQ(a / nocross, (a + size - 1) / nocross);
}

static void
xalloc_free(vmem_t *vm, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
    vmem_size_t nocross, vmem_addr_t min, vmem_addr_t max)
{
	vmem_addr_t a;

	T_EQ(vmem_xalloc(
		 vm, size, align, phase, nocross, min, max, VM_NOSLEEP, &a),
	    0);
	check_fit(a, size, align, phase, nocross, min, max);
	vmem_xfree(vm, a, size);
}

static void
test_direct_imports(void)
{
	vmem_t *src, *vm;
	vmem_addr_t a;
	int err;

	src = arena(
	    "source", 0x10000, 0x100000, 16, NULL, NULL, NULL, 0, VM_SLEEP);
	/* No release function: still a direct import (never given back). */
	vm = arena("norel", 0, 0, 16, vmem_alloc, NULL, src, 0, VM_SLEEP);
	xalloc_free(vm, 0x100, 0x100, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX);
	vmem_destroy(vm);
	/* Finer quantum than the source's: only some requests go direct. */
	vm = arena("fine", 0, 0, 1, vmem_alloc, vmem_free, src, 0, VM_SLEEP);
	xalloc_free(vm, 0x10, 8, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX);
	xalloc_free(vm, 0x10, 16, 4, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX);
	xalloc_free(vm, 5, 0, 0, 8, VMEM_ADDR_MIN, VMEM_ADDR_MAX);
	/*
	 * [min, max] narrower than the request rounded to the source's
	 * quantum: an ordinary import, which may well land elsewhere.
	 */
	err = vmem_xalloc(vm, 0x11, 0, 0, 0, 0x20000, 0x20010, VM_NOSLEEP, &a);
	T_ASSERT(err == 0 || err == ENOMEM);
	if (err == 0) {
		check_fit(a, 0x11, 0, 0, 0, 0x20000, 0x20010);
		vmem_xfree(vm, a, 0x11);
	}
	vmem_destroy(vm);
	/* A minimum import that would cross nocross or leave [min, max]. */
	vm = arena("minimp", 0, 0, 16, vmem_alloc, vmem_free, src, 0, VM_SLEEP);
	T_EQ(kmem_vmem_set_min_import(vm, 0x1000), 0);
	xalloc_free(vm, 0x10, 0, 0, 0x100, VMEM_ADDR_MIN, VMEM_ADDR_MAX);
	xalloc_free(vm, 0x10, 0, 0, 0, 0x30000, 0x300ff);
	vmem_destroy(vm);
	/* All given back, but the import of the arena that cannot. */
	T_EQ(vmem_size(src, VMEM_ALLOC), 0x100);
	vmem_destroy(src);
}

/* ---- VM_LARGEIMPORT overflow ---- */

static vmem_size_t import_asked[2];

/* Refuse, remembering the first two sizes asked. */
static int
import_refuse(vmem_t *src, vmem_size_t size, vm_flag_t fl, vmem_addr_t *ap)
{
	(void)src;
	(void)fl;
	(void)ap;
	if (import_asked[0] == 0)
		import_asked[0] = size;
	else if (import_asked[1] == 0)
		import_asked[1] = size;
	return ENOMEM;
}

static void
test_largeimport_overflow(void)
{
	vmem_t *vm = arena("large", 0, 0, 1, import_refuse, NULL, NULL, 0,
	    VM_SLEEP | VM_LARGEIMPORT);
	vmem_addr_t a;

	/* 16 times 2^61 does not fit: the request itself is asked for. */
	T_EQ(vmem_alloc(vm, (vmem_size_t)1 << 61, VM_NOSLEEP, &a), ENOMEM);
	T_EQ(import_asked[0], (vmem_size_t)1 << 61);
	/* Else 16 times; refused, then what the request needs. */
	memset(import_asked, 0, sizeof import_asked);
	T_EQ(vmem_alloc(vm, 0x100, VM_NOSLEEP, &a), ENOMEM);
	T_EQ(import_asked[0], 0x1000);
	T_EQ(import_asked[1], 0x100);
	vmem_destroy(vm);
}

/* ---- arenas of unusual shape ---- */

static int
import_here(vmem_t *src, vmem_size_t size, vm_flag_t fl, vmem_addr_t *ap)
{
	static vmem_addr_t next = 0x1000000;

	(void)src;
	(void)fl;
	*ap = next;
	next += size;
	return 0;
}

static void
c_destroy_busy(void *arg)
{
	vmem_t *vm =
	    arena("busy", 0x1000, 0x1000, 1, NULL, NULL, NULL, 0, VM_SLEEP);
	vmem_addr_t a;
	int i;

	(void)arg;
	for (i = 0; i < 100; i++)
		T_EQ(vmem_alloc(vm, 1, VM_NOSLEEP, &a), 0);
	vmem_destroy(vm);
}

static void
test_arena_shapes(void)
{
	struct kmem_vmem_stats st;
	vmem_addr_t a;
	char buf[4096];
	vmem_t *vm;

	/* Cache pages would be over 2^31 bytes: no quantum caches. */
	vm = arena("huge-q", 0, 0, (vmem_size_t)1 << 28, import_here, NULL,
	    NULL, (vmem_size_t)1 << 32, VM_SLEEP);
	T_ASSERT(kmemi_vmem_qcache(vm, (vmem_size_t)1 << 28) == NULL);
	vmem_destroy(vm);
	/* A static span smaller than two cache pages: none either. */
	vm = arena("tiny", 0x1000, 0x40, 1, NULL, NULL, NULL, 16, VM_SLEEP);
	T_ASSERT(kmemi_vmem_qcache(vm, 8) == NULL);
	T_EQ(vmem_alloc(vm, 8, VM_NOSLEEP, &a), 0);
	vmem_free(vm, a, 8);
	vmem_destroy(vm);
	/* No name. */
	vm = arena(NULL, 0x1000, 0x1000, 1, NULL, NULL, NULL, 0, VM_SLEEP);
	kmem_vmem_stats(vm, &st);
	T_ASSERT(strcmp(st.vs_name, "(anon)") == 0);
	vmem_destroy(vm);
	/* Imported spans without a release function: kept, then dropped. */
	vm = arena("keep", 0, 0, 1, import_here, NULL, NULL, 0, VM_SLEEP);
	T_EQ(vmem_alloc(vm, 0x100, VM_NOSLEEP, &a), 0);
	vmem_free(vm, a, 0x100);
	T_EQ(vmem_size(vm, VMEM_FREE), 0x100);
	vmem_destroy(vm);
	/* Destroyed with busy segments (its hash grown): a warning. */
	t_child_ok(c_destroy_busy, NULL, buf, sizeof buf);
	T_ASSERT(strcmp(buf,
		     "kmem: warning: vmem_destroy(arena 'busy'): leaked 0x64 "
		     "bytes in 100 segments\n") == 0);
}

/* ---- bad calls ---- */

static vmem_t *qc_vm;
static vmem_addr_t qc_lo, qc_hi;
static char printed[256];

static void
print_into(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(printed, sizeof printed, fmt, ap);
	va_end(ap);
}

static void
c_qc_wrong_size(void *arg)
{
	vmem_free(qc_vm, arg != NULL ? qc_hi : qc_lo, 128);
}

static void
c_qc_xfree_interior(void *arg)
{
	(void)arg;
	vmem_xfree(qc_vm, qc_hi, 32);
}

static void
c_addr_wraps(void *arg)
{
	vmem_t *vm = arena("top", 0, 0, 1, NULL, NULL, NULL, 0, VM_SLEEP);

	(void)arg;
	(void)vmem_xalloc_addr(vm, VMEM_ADDR_MAX - 10, 100, VM_NOSLEEP);
}

static void
c_no_sleep_flag(void *arg)
{
	vmem_addr_t a;

	(void)vmem_alloc(qc_vm, 16, (vm_flag_t)(uintptr_t)arg, &a);
}

static void
test_bad_calls(void)
{
	vmem_addr_t got[8];
	int i;

	qc_vm =
	    arena("qc", 0x10000, 0x100000, 16, NULL, NULL, NULL, 64, VM_SLEEP);
	T_ASSERT(kmemi_vmem_qcache(qc_vm, 0) == NULL);
	T_ASSERT(kmemi_vmem_qcache(qc_vm, 65) == NULL);
	/* A cache page's first object, and one inside it (vmem_whatis). */
	for (i = 0; i < 8; i++) {
		T_EQ(vmem_alloc(qc_vm, 32, VM_SLEEP, &got[i]), 0);
		T_EQ(vmem_whatis(got[i], print_into), 0);
		if (strstr(printed, "+0 in VMEM") != NULL)
			qc_lo = got[i];
		else
			qc_hi = got[i];
	}
	T_ASSERT(qc_lo != 0 && qc_hi != 0);
	T_ASSERT(t_expect_panic(c_qc_wrong_size, NULL,
	    "): segment was allocated by vmem_alloc at a quantum-cache size, "
	    "not 0x80: wrong size"));
	T_ASSERT(t_expect_panic(c_qc_wrong_size, (void *)1,
	    "): segment was allocated by vmem_alloc at a quantum-cache size, "
	    "not 0x80: wrong size"));
	T_ASSERT(t_expect_panic(c_qc_xfree_interior, NULL,
	    "): segment was allocated by vmem_alloc from a quantum cache: use "
	    "vmem_free"));
	T_ASSERT(t_expect_panic(c_addr_wraps, NULL,
	    "vmem_xalloc_addr(arena 'top', 0xfffffffffffffff5, 0x64): range "
	    "does not fit in the address space"));
	T_ASSERT(t_expect_panic(c_no_sleep_flag, (void *)(uintptr_t)0,
	    "need exactly one of VM_SLEEP and VM_NOSLEEP"));
	T_ASSERT(t_expect_panic(c_no_sleep_flag,
	    (void *)(uintptr_t)(VM_SLEEP | VM_BESTFIT | VM_NEXTFIT),
	    "more than one fit policy"));
	for (i = 0; i < 8; i++)
		vmem_free(qc_vm, got[i], 32);
	vmem_destroy(qc_vm);
	/* vmem_print of something that is not an arena says so. */
	vmem_print(0x1234, "", print_into);
	T_ASSERT(strcmp(printed, "0x1234 is not a vmem arena\n") == 0);
}

int
main(void)
{
	T_RUN(test_tags_run_out);
	T_RUN(test_lying_imports);
	T_RUN(test_waiters);
	T_RUN(test_unneeded_imports);
	T_RUN(test_direct_imports);
	T_RUN(test_largeimport_overflow);
	T_RUN(test_arena_shapes);
	T_RUN(test_bad_calls);
	return t_done();
}
