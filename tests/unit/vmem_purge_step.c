/*
 * vmem_purge_step.c -- a purge pass that a free starts does one batch and
 * leaves the rest to the next frees (vmem.c section 7, issue 10 item 8):
 * the thread whose free found the pass due pays for one batch's system
 * calls, not for the whole pass.
 *
 * An arena in deferred mode over a static span, with a purge function
 * that counts what it is given: 40 dirty ranges of 1 MiB, kept apart by
 * busy pages, become due; then each free of a small block runs at most
 * one batch (at most 32 ranges and, once 4 MiB are in it, no more): the
 * test checks every step's bytes, that the 40 MiB are all purged after
 * enough frees, each range once, and that the pass then ends (the next
 * frees find nothing due).  Then the same with an "all" purge (kmem_reap's)
 * after the first step, which finishes what the frees left.  No timing:
 * the delay is an hour while the ranges are made, then 0.
 *
 * test_import_budget (issue 12): an arena about to import purges only
 * as many dirty bytes as it imports, not all it has, so that what stays
 * dirty serves the next requests without page faults.
 *
 * test_hold (issue 12): while kmemi_vmem_purge_hold holds the arena,
 * frees start no batch (the tick's reap frees many pages into kva and
 * ran a batch for each: 4-7 ms in one free(3)).  Five 1 MiB spans
 * wholly free and dirty, then a 2 MiB request no span can serve: two of
 * them go back (not five, as before: the old code gave back everything
 * dirty before any import), and three 1 MiB requests then need no import.
 */
#include "t.h"

#include <kmem/vmem.h>

#include "internal/internal.h"
#include "internal/pool_impl.h"

#define PG    ((vmem_size_t)4096)
#define MB    ((vmem_size_t)1 << 20)
#define NR    40
#define BATCH ((vmem_size_t)4 << 20) /* vmem.c's PURGE_BATCH_BYTES */

static vmem_size_t g_purged;
static unsigned g_calls;
static vmem_addr_t g_seen[4 * NR];

static void
count_purge(vmem_addr_t addr, vmem_size_t size)
{
	unsigned i;

	for (i = 0; i < g_calls && i < 4 * NR; i++)
		if (g_seen[i] == addr && size == MB)
			T_FAIL("range %#lx purged twice", (unsigned long)addr);
	if (g_calls < 4 * NR)
		g_seen[g_calls] = addr;
	g_calls++;
	g_purged += size;
}

/* The busy pages that keep the ranges apart (freed by teardown). */
static vmem_addr_t g_sep[NR + 2];

/*
 * An arena in deferred mode with NR dirty 1 MiB ranges, each
 * between two busy pages, all freed in one epoch and then due; *small is
 * a busy page, between two more, whose frees drive the passes.
 */
static vmem_t *
setup(vmem_addr_t *small)
{
	vmem_addr_t r[NR];
	vmem_t *vm = vmem_create("purge-step", 0x100000000, 256 * MB, PG, NULL,
	    NULL, NULL, 0, VM_SLEEP, IPL_NONE);
	unsigned i;

	T_ASSERT(vm != NULL);
	/* No pass while the ranges are made (an hour's delay). */
	kmemi_vmem_set_purge(vm, count_purge, 3600 * (uint64_t)1000000000);
	for (i = 0; i < NR; i++) {
		T_EQ(vmem_alloc(vm, PG, VM_SLEEP | VM_NEXTFIT, &g_sep[i]), 0);
		T_EQ(vmem_alloc(vm, MB, VM_SLEEP | VM_NEXTFIT, &r[i]), 0);
	}
	T_EQ(vmem_alloc(vm, PG, VM_SLEEP | VM_NEXTFIT, &g_sep[NR]), 0);
	T_EQ(vmem_alloc(vm, PG, VM_SLEEP | VM_NEXTFIT, small), 0);
	T_EQ(vmem_alloc(vm, PG, VM_SLEEP | VM_NEXTFIT, &g_sep[NR + 1]), 0);
	for (i = 0; i < NR; i++)
		vmem_free(vm, r[i], MB);
	T_EQ(g_purged, 0);
	/*
	 * Now no delay: every free may start a pass.  This one ends the
	 * epoch the ranges were freed in (nothing is due yet); from the
	 * next, they are.
	 */
	kmemi_vmem_set_purge(vm, count_purge, 0);
	kmemi_vmem_purge(vm, false);
	T_EQ(g_purged, 0);
	return vm;
}

static void
teardown(vmem_t *vm, vmem_addr_t small)
{
	unsigned i;

	for (i = 0; i < NR + 2; i++)
		vmem_free(vm, g_sep[i], PG);
	vmem_free(vm, small, PG);
	vmem_destroy(vm);
}

/* Free and take back the small block: one chance for a pass. */
static void
one_free(vmem_t *vm, vmem_addr_t *small)
{
	vmem_free(vm, *small, PG);
	T_EQ(vmem_alloc(vm, PG, VM_SLEEP, small), 0);
}

static void
test_free_steps(void)
{
	vmem_addr_t small;
	vmem_t *vm;
	vmem_size_t before;
	unsigned steps = 0;

	g_purged = 0;
	g_calls = 0;
	vm = setup(&small);
	while (g_purged < NR * MB) {
		before = g_purged;
		one_free(vm, &small);
		steps++;
		/* One batch: it stops once 4 MiB are in it. */
		T_GT(g_purged, before);
		T_LE(g_purged - before, BATCH);
		T_LE(steps, NR);
	}
	printf("   %u frees purged %u MiB, at most 4 MiB each\n", steps,
	    (unsigned)(g_purged / MB));
	T_EQ(g_purged, NR * MB);
	T_EQ(g_calls, NR);
	T_GE(steps, NR * MB / BATCH);
	/* The pass is over: the next ones find nothing due. */
	before = g_purged;
	one_free(vm, &small);
	one_free(vm, &small);
	T_EQ(g_purged, before);
	teardown(vm, small);
}

static void
test_all_finishes(void)
{
	vmem_addr_t small;
	vmem_t *vm;

	g_purged = 0;
	g_calls = 0;
	vm = setup(&small);
	one_free(vm, &small);
	T_GT(g_purged, 0);
	T_LE(g_purged, BATCH);
	/* kmem_reap's purge of everything: the rest, at once. */
	kmemi_vmem_purge(vm, true);
	T_EQ(g_purged, NR * MB);
	T_EQ(g_calls, NR);
	teardown(vm, small);
}

/*
 * While the arena's purge is held (kmemi_vmem_purge_hold: the tick, while
 * the caches it shrinks free pages into kva), frees start no batch, where
 * each would have run one; released, the next free runs one again.
 */
static void
test_hold(void)
{
	vmem_addr_t small;
	vmem_t *vm;
	vmem_size_t before;
	unsigned i;

	g_purged = 0;
	g_calls = 0;
	vm = setup(&small);
	one_free(vm, &small); /* the pass begins: one batch, more to do */
	T_GT(g_purged, 0);
	T_LT(g_purged, NR * MB);
	before = g_purged;
	kmemi_vmem_purge_hold(vm, true);
	kmemi_vmem_purge_hold(vm, true); /* holds nest */
	for (i = 0; i < 8; i++)
		one_free(vm, &small);
	T_EQ(g_purged, before);
	kmemi_vmem_purge_hold(vm, false);
	one_free(vm, &small);
	T_EQ(g_purged, before); /* still held once */
	kmemi_vmem_purge_hold(vm, false);
	one_free(vm, &small);
	T_GT(g_purged, before);
	T_LE(g_purged - before, BATCH);
	kmemi_vmem_purge(vm, true);
	T_EQ(g_purged, NR * MB);
	teardown(vm, small);
}

static void
test_import_budget(void)
{
	struct kmem_vmem_stats st;
	vmem_addr_t a[10], big;
	vmem_t *src, *vm;
	unsigned i;

	src = vmem_create("budget-src", 0x100000000, 64 * MB, PG, NULL, NULL,
	    NULL, 0, VM_SLEEP, IPL_NONE);
	T_ASSERT(src != NULL);
	vm = vmem_create("budget", 0, 0, PG, vmem_alloc, vmem_free, src, 0,
	    VM_SLEEP, IPL_NONE);
	T_ASSERT(vm != NULL);
	T_EQ(kmem_vmem_set_min_import(vm, PG), 0);
	/* No timed pass: only the one before an import. */
	kmemi_vmem_set_purge(vm, count_purge, 3600 * (uint64_t)1000000000);
	for (i = 0; i < 10; i++)
		T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &a[i]), 0);
	T_EQ(kmem_vmem_stats(vm, &st), 0);
	T_EQ(st.vs_import, 10);
	for (i = 0; i < 10; i += 2)
		vmem_free(vm, a[i], MB);
	T_EQ(kmem_vmem_stats(vm, &st), 0);
	T_EQ(st.vs_release, 0);
	T_EQ(st.vs_imported, 10 * MB);

	T_EQ(vmem_alloc(vm, 2 * MB, VM_SLEEP, &big), 0);
	T_EQ(kmem_vmem_stats(vm, &st), 0);
	printf("   a 2 MiB import gave back %llu of 5 dirty 1 MiB spans\n",
	    (unsigned long long)st.vs_release);
	T_EQ(st.vs_release, 2);
	T_EQ(st.vs_imported, 10 * MB);
	/* The three dirty spans left serve three requests: no import. */
	for (i = 0; i < 10; i += 2)
		if (i < 6)
			T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &a[i]), 0);
	T_EQ(kmem_vmem_stats(vm, &st), 0);
	T_EQ(st.vs_import, 11);
	for (i = 0; i < 10; i++)
		if (i % 2 == 1 || i < 6)
			vmem_free(vm, a[i], MB);
	vmem_free(vm, big, 2 * MB);
	vmem_destroy(vm);
	vmem_destroy(src);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_free_steps);
	T_RUN_IF(test_all_finishes);
	T_RUN_IF(test_hold);
	T_RUN_IF(test_import_budget);
	return t_done();
}
