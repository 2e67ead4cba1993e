/*
 * vmem_import_min.c -- an import that cannot have the arena's minimum
 * import (or VM_LARGEIMPORT's 16x) falls back to what the request needs.
 *
 * Regression (issue 10, item 4): with KMEM_OPTIONS=vmem_min_import=1G an
 * arena importing 8 KiB from a nearly empty 255 MiB source failed with
 * ENOMEM under VM_NOSLEEP and never returned under VM_SLEEP, although the
 * source had the 8 KiB.  Likewise the page arena kva (minimum import
 * 1 MiB) on a page source that refuses big mappings.  The VM_SLEEP cases
 * run in a child with an alarm, so code that waits for ever fails the
 * test (SIGALRM) instead of hanging ctest.
 */
#include "t.h"
#include "t_vmem.h"

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"

#define Q     ((vmem_size_t)4096)
#define PBASE ((vmem_addr_t)0x10000000)
#define PSIZE ((vmem_size_t)255 << 20) /* the source: 255 MiB */
#define GIG   ((vmem_size_t)1 << 30)
/* Seconds a child may take before its alarm says it hung. */
#define HANG_S 20

static vmem_addr_t g_used; /* the source's one page in use */

static vmem_t *
mk_source(void)
{
	vmem_t *p = vmem_create("mi-source", PBASE, PSIZE, Q, NULL, NULL, NULL,
	    0, VM_SLEEP, IPL_NONE);

	T_ASSERT(p != NULL);
	/* Nearly empty: one page in use. */
	T_EQ(vmem_alloc(p, Q, VM_NOSLEEP, &g_used), 0);
	return p;
}

static void
destroy_both(vmem_t *c, vmem_t *p)
{
	vmem_destroy(c);
	vmem_free(p, g_used, Q);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);
	vmem_destroy(p);
}

/*
 * KMEM_OPTIONS=vmem_min_import=1G, as if read from the environment: the
 * options are read once first, so that vmem_create does not read them
 * again over ours.
 */
static void
set_option_1g(void)
{
	kmem_options_init();
	T_EQ(kmem_options_parse("KMEM_OPTIONS", "vmem_min_import=1G"), 0);
	T_EQ(kmem_opts.vmem_min_import, GIG);
}

/* An arena importing from p with vmem_alloc. */
static vmem_t *
mk_child(const char *name, vmem_t *p, vm_flag_t flags)
{
	vmem_t *c = vmem_create(
	    name, 0, 0, Q, vmem_alloc, vmem_free, p, 0, flags, IPL_NONE);

	T_ASSERT(c != NULL);
	return c;
}

/* Run fn(arg) in a child; it must exit 0 within HANG_S seconds. */
static void
in_child(void (*fn)(void *), void *arg)
{
	char buf[4096];
	int status = t_child(fn, arg, buf, sizeof buf);

	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		T_FAIL("the child hung (no return in %d s); stderr:\n%s",
		    HANG_S, buf);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		T_FAIL("child failed (status %#x); stderr:\n%s", status, buf);
}

/* Import what the request needs: 8 KiB imported, and the source lent it. */
static void
check_fallback(vmem_t *p, vmem_t *c, vmem_addr_t a, vmem_size_t size)
{
	struct kmem_vmem_stats st = t_vmem_stats(c);

	T_EQ(st.vs_import, 1);
	T_EQ(st.vs_imported, size);
	T_EQ(st.vs_inuse, size);
	T_EQ(vmem_size(p, VMEM_ALLOC), Q + size);
	T_ASSERT(a >= PBASE && a + size <= PBASE + PSIZE);
}

/* ---- 1. the case, through the option and through the call ---- */

static void
nosleep_case(vm_flag_t fit)
{
	vmem_t *p = mk_source();
	vmem_t *c = mk_child("mi-child", p, VM_SLEEP);
	vmem_addr_t a;

	T_EQ(vmem_alloc(c, 2 * Q, VM_NOSLEEP | fit, &a), 0);
	check_fallback(p, c, a, 2 * Q);
	vmem_free(c, a, 2 * Q);
	T_EQ(t_vmem_stats(c).vs_imported, 0);
	T_EQ(vmem_size(p, VMEM_ALLOC), Q);
	destroy_both(c, p);
}

static void
test_option_nosleep(void)
{
	/* vmem_create takes its minimum import from the option. */
	set_option_1g();
	nosleep_case(VM_INSTANTFIT);
	nosleep_case(VM_BESTFIT);
	kmem_options_reset();
}

static void
sleep_child(void *arg)
{
	vmem_t *p, *c;
	vmem_addr_t a;

	(void)arg;
	alarm(HANG_S);
	set_option_1g();
	p = mk_source();
	c = mk_child("mi-child", p, VM_SLEEP);
	T_EQ(vmem_alloc(c, 2 * Q, VM_SLEEP, &a), 0);
	check_fallback(p, c, a, 2 * Q);
	/* It did not wait: no sleep was needed for memory that is there. */
	T_EQ(t_vmem_stats(c).vs_wait, 0);
	vmem_free(c, a, 2 * Q);
	destroy_both(c, p);
}

static void
test_option_sleep(void)
{
	in_child(sleep_child, NULL);
}

static void
test_set_min_import(void)
{
	vmem_t *p = mk_source();
	vmem_t *c = mk_child("mi-child", p, VM_SLEEP);
	vmem_addr_t a, b;

	T_EQ(kmem_vmem_set_min_import(c, GIG), 0);
	T_EQ(vmem_alloc(c, 2 * Q, VM_NOSLEEP, &a), 0);
	check_fallback(p, c, a, 2 * Q);
	/* A minimum the source can give is still honoured. */
	T_EQ(kmem_vmem_set_min_import(c, 64 * Q), 0);
	T_EQ(vmem_alloc(c, 4 * Q, VM_NOSLEEP, &b), 0);
	T_EQ(t_vmem_stats(c).vs_import, 2);
	T_EQ(t_vmem_stats(c).vs_imported, 2 * Q + 64 * Q);
	vmem_free(c, a, 2 * Q);
	vmem_free(c, b, 4 * Q);
	destroy_both(c, p);
}

/* ---- 2. VM_LARGEIMPORT's 16x, constrained (vmem_xalloc) imports ---- */

static void
test_largeimport(void)
{
	vmem_t *p = mk_source();
	vmem_t *c = mk_child("mi-large", p, VM_SLEEP | VM_LARGEIMPORT);
	vmem_addr_t a, hold;

	/* Leave the source 32 MiB: 16 x 16 MiB cannot be had, 16 MiB can. */
	T_EQ(vmem_alloc(p, PSIZE - Q - (32 << 20), VM_NOSLEEP, &hold), 0);
	T_EQ(vmem_alloc(c, 16 << 20, VM_NOSLEEP, &a), 0);
	T_EQ(t_vmem_stats(c).vs_imported, 16 << 20);
	vmem_free(c, a, 16 << 20);
	vmem_free(p, hold, PSIZE - Q - (32 << 20));
	destroy_both(c, p);
}

static void
test_constrained(void)
{
	vmem_t *p = mk_source();
	vmem_t *c = mk_child("mi-xalloc", p, VM_SLEEP);
	vmem_addr_t a, b;

	T_EQ(kmem_vmem_set_min_import(c, GIG), 0);
	/* Through vmem_xalloc on the source (the direct path). */
	T_EQ(vmem_xalloc(c, 2 * Q, 16 * Q, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
		 VM_NOSLEEP, &a),
	    0);
	T_EQ(a % (16 * Q), 0);
	T_EQ(t_vmem_stats(c).vs_imported, 2 * Q);
	/* Within bounds the 1 GiB import could not satisfy anyway. */
	T_EQ(vmem_xalloc(c, Q, 0, 0, 0, PBASE + (100 << 20),
		 PBASE + (101 << 20) - 1, VM_NOSLEEP, &b),
	    0);
	T_ASSERT(b >= PBASE + (100 << 20) && b < PBASE + (101 << 20));
	vmem_xfree(c, a, 2 * Q);
	vmem_xfree(c, b, Q);
	T_EQ(t_vmem_stats(c).vs_imported, 0);
	destroy_both(c, p);
}

/* ---- 3. foreign import functions ---- */

static vmem_size_t g_max; /* the foreign source refuses more than this */

static int
small_ximport(vmem_t *src, vmem_size_t size, vmem_size_t *actual, vm_flag_t fl,
    vmem_addr_t *out)
{
	int e;

	if (size > g_max)
		return ENOMEM;
	e = vmem_alloc(src, size, fl, out);
	if (e == 0)
		*actual = size;
	return e;
}

static void
test_ximport(void)
{
	vmem_t *p = mk_source();
	vmem_t *c = vmem_xcreate("mi-ximport", 0, 0, Q, small_ximport,
	    vmem_free, p, 0, VM_SLEEP, IPL_NONE);
	vmem_addr_t a;

	T_ASSERT(c != NULL);
	g_max = 16 * Q;
	T_EQ(kmem_vmem_set_min_import(c, 64 * Q), 0);
	T_EQ(vmem_alloc(c, 3 * Q, VM_NOSLEEP, &a), 0);
	T_EQ(t_vmem_stats(c).vs_imported, 3 * Q);
	vmem_free(c, a, 3 * Q);
	destroy_both(c, p);
}

/* Passes the caller's flag on: VM_SLEEP would wait for 1 GiB for ever. */
static int
pass_import(vmem_t *src, vmem_size_t size, vm_flag_t fl, vmem_addr_t *out)
{
	return vmem_alloc(src, size, fl, out);
}

static void
foreign_sleep_child(void *arg)
{
	vmem_t *p, *c;
	vmem_addr_t a;

	(void)arg;
	alarm(HANG_S);
	p = mk_source();
	c = vmem_create("mi-foreign", 0, 0, Q, pass_import, vmem_free, p, 0,
	    VM_SLEEP, IPL_NONE);
	T_ASSERT(c != NULL);
	T_EQ(kmem_vmem_set_min_import(c, GIG), 0);
	T_EQ(vmem_alloc(c, 2 * Q, VM_SLEEP, &a), 0);
	check_fallback(p, c, a, 2 * Q);
	vmem_free(c, a, 2 * Q);
	destroy_both(c, p);
}

static void
test_foreign_sleep(void)
{
	in_child(foreign_sleep_child, NULL);
}

/* ---- 4. the page arena on a page source that refuses big mappings ---- */

/*
 * Blocks of 600 KiB: larger than any quantum cache, so each goes to kva's
 * freelists, and at most one fits in a 1 MiB import.  The page source
 * maps at most 768 KiB at a time: kva's 1 MiB minimum import is refused.
 */
#define KVA_BLOCK ((size_t)600 << 10)
#define KVA_NBLK  8

static void
kva_child(void *arg)
{
	void *p[KVA_NBLK], *first;
	uint64_t imp0;
	unsigned i;

	alarm(HANG_S);
	first = kmem_alloc(64, KM_SLEEP); /* set kmem up on a normal source */
	imp0 = t_vmem_stats(kmemi_page_arena(&kmemi_dom0)).vs_import;
	kmem_prim_fault_size((size_t)768 << 10);
	for (i = 0; i < KVA_NBLK; i++) {
		p[i] =
		    kmem_alloc(KVA_BLOCK, arg != NULL ? KM_SLEEP : KM_NOSLEEP);
		T_ASSERT(p[i] != NULL);
		memset(p[i], (int)i, KVA_BLOCK);
	}
	/* Most blocks needed an import of their own, and got one. */
	T_GE(t_vmem_stats(kmemi_page_arena(&kmemi_dom0)).vs_import,
	    imp0 + KVA_NBLK - 2);
	for (i = 0; i < KVA_NBLK; i++) {
		T_EQ(((unsigned char *)p[i])[KVA_BLOCK - 1], i);
		kmem_free(p[i], KVA_BLOCK);
	}
	kmem_prim_fault_size(0);
	kmem_free(first, 64);
}

static void
test_kva_small_maps(void)
{
	in_child(kva_child, NULL);	/* KM_NOSLEEP */
	in_child(kva_child, (void *)1); /* KM_SLEEP: no 10 s abort */
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_option_nosleep);
	T_RUN_IF(test_option_sleep);
	T_RUN_IF(test_set_min_import);
	T_RUN_IF(test_largeimport);
	T_RUN_IF(test_constrained);
	T_RUN_IF(test_ximport);
	T_RUN_IF(test_foreign_sleep);
	T_RUN_IF(test_kva_small_maps);
	return t_done();
}
