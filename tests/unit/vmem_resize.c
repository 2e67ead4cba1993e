/*
 * vmem_resize.c -- kmemi_vmem_resize (vmem.c; realloc of malloc's large
 * blocks, issue 12): a busy segment grows into the free segment right
 * after it, taking all of it or its head, and fails with nothing changed
 * when that space is busy, too small or another span's; it shrinks by
 * freeing its tail, which coalesces with a free neighbour, is dirty in
 * deferred mode (a later purge gives it back) and can be allocated
 * again.  vmem_free then takes the new size (and only it); the
 * allocation and free counts do not move; kmem_vmem_check passes after
 * every step.
 */
#include "t.h"

#include <kmem/vmem.h>

#include "internal/internal.h"
#include "internal/pool_impl.h"

#define PG ((vmem_size_t)4096)

static vmem_size_t g_purged;

static void
count_purge(vmem_addr_t addr, vmem_size_t size)
{
	(void)addr;
	g_purged += size;
}

static vmem_size_t
inuse(vmem_t *vm)
{
	struct kmem_vmem_stats st;

	T_EQ(kmem_vmem_stats(vm, &st), 0);
	T_EQ(st.vs_alloc - st.vs_free, st.vs_nbusy);
	return st.vs_inuse;
}

static void
test_grow_shrink(void)
{
	vmem_t *vm = vmem_create("resize", 0x10000000, 64 * PG, PG, NULL, NULL,
	    NULL, 0, VM_SLEEP, IPL_NONE);
	vmem_addr_t a, b, c, t;

	T_ASSERT(vm != NULL);
	T_EQ(vmem_alloc(vm, 4 * PG, VM_SLEEP | VM_NEXTFIT, &a), 0);
	T_EQ(vmem_alloc(vm, 4 * PG, VM_SLEEP | VM_NEXTFIT, &b), 0);
	T_EQ(vmem_alloc(vm, 4 * PG, VM_SLEEP | VM_NEXTFIT, &c), 0);
	T_EQ(b, a + 4 * PG);
	T_EQ(c, b + 4 * PG);
	/* b is busy: a cannot grow; nothing changed. */
	T_EQ(kmemi_vmem_resize(vm, a, 4 * PG, 6 * PG), ENOMEM);
	T_EQ(inuse(vm), 12 * PG);
	kmem_vmem_check(vm);
	/* b free: a takes part of it, then the rest. */
	vmem_free(vm, b, 4 * PG);
	T_EQ(kmemi_vmem_resize(vm, a, 4 * PG, 6 * PG), 0);
	T_EQ(inuse(vm), 10 * PG);
	kmem_vmem_check(vm);
	T_EQ(kmemi_vmem_resize(vm, a, 6 * PG, 8 * PG), 0);
	T_EQ(inuse(vm), 12 * PG);
	kmem_vmem_check(vm);
	/* No space at all after it now (c): too far. */
	T_EQ(kmemi_vmem_resize(vm, a, 8 * PG, 9 * PG), ENOMEM);
	/* c grows into the rest of the span, but not past its end. */
	T_EQ(kmemi_vmem_resize(vm, c, 4 * PG, 65 * PG), ENOMEM);
	T_EQ(kmemi_vmem_resize(vm, c, 4 * PG, 52 * PG), 0);
	T_EQ(inuse(vm), 60 * PG);
	kmem_vmem_check(vm);
	/* Shrink: the tails are free again and can be had. */
	T_EQ(kmemi_vmem_resize(vm, c, 52 * PG, 2 * PG), 0);
	T_EQ(kmemi_vmem_resize(vm, a, 8 * PG, 3 * PG), 0);
	T_EQ(inuse(vm), 5 * PG);
	kmem_vmem_check(vm);
	T_EQ(vmem_xalloc(vm, 5 * PG, 0, 0, 0, a + 3 * PG, a + 8 * PG - 1,
		 VM_NOSLEEP, &t),
	    0);
	T_EQ(t, a + 3 * PG);
	vmem_free(vm, t, 5 * PG);
	T_EQ(vmem_xalloc(vm, 50 * PG, 0, 0, 0, c + 2 * PG, VMEM_ADDR_MAX,
		 VM_NOSLEEP, &t),
	    0);
	T_EQ(t, c + 2 * PG);
	vmem_xfree(vm, t, 50 * PG);
	/* The same size again: nothing to do. */
	T_EQ(kmemi_vmem_resize(vm, a, 3 * PG, 3 * PG), 0);
	vmem_free(vm, a, 3 * PG);
	vmem_free(vm, c, 2 * PG);
	T_EQ(inuse(vm), 0);
	kmem_vmem_check(vm);
	vmem_destroy(vm);
}

/* Deferred mode: a shrunk tail is dirty, and a purge gives it back. */
static void
test_shrink_dirty(void)
{
	vmem_t *vm = vmem_create("resize-dirty", 0x10000000, 64 * PG, PG, NULL,
	    NULL, NULL, 0, VM_SLEEP, IPL_NONE);
	vmem_addr_t a, fence;

	T_ASSERT(vm != NULL);
	kmemi_vmem_set_purge(vm, count_purge, 3600 * (uint64_t)1000000000);
	T_EQ(vmem_alloc(vm, 16 * PG, VM_SLEEP | VM_NEXTFIT, &a), 0);
	/* A busy page after it: the tail merges with nothing clean. */
	T_EQ(vmem_alloc(vm, PG, VM_SLEEP | VM_NEXTFIT, &fence), 0);
	T_EQ(fence, a + 16 * PG);
	g_purged = 0;
	T_EQ(kmemi_vmem_resize(vm, a, 16 * PG, 4 * PG), 0);
	kmemi_vmem_purge(vm, true);
	T_EQ(g_purged, 12 * PG);
	vmem_free(vm, a, 4 * PG);
	vmem_free(vm, fence, PG);
	vmem_destroy(vm);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_grow_shrink);
	T_RUN_IF(test_shrink_dirty);
	return t_done();
}
