/*
 * vmem_span_merge.c -- imported spans that touch join into one
 * (kmemi_vmem_set_merge; kva of the default domain, issue 12): a free
 * range then grows across what were two imports, so that a request
 * larger than either fits where two blocks were freed side by side
 * instead of importing again.  The import function hands out addresses
 * going down, as mmap does, from a range nobody touches (vmem never
 * dereferences them); its release function records what comes back.
 * Checked: the spans join both ways (the new one below and above an old
 * one), a 2 MiB request after two 1 MiB blocks were freed imports
 * nothing, a span not touching stays apart, a wholly free merged span is
 * released whole, kmem_vmem_check passes after every step -- and without
 * the merge (the arena as before), the same request imports.
 * test_burst (below): a burst of frees makes the pass due early.
 *
 * test_release_steps: in deferred mode (kva's), a pass that a free runs
 * gives a wholly free merged span back in pieces of at most a batch's
 * span bytes (32 MiB), one batch a free, not whole: 80 1 MiB imports
 * merged and freed went back as one 80 MiB release in the first free's
 * pass (kva: a free(3) of 48 bytes whose tick ran a pass munmapped 760
 * MiB in one call, 20 ms).  All of it goes back after enough frees,
 * every piece once, and an "all" purge (kmem_reap's) still gives back a
 * merged span whole.
 */
#include "t.h"

#include <kmem/vmem.h>

#include "internal/internal.h"
#include "internal/pool_impl.h"

#define PG   ((vmem_size_t)4096)
#define MB   ((vmem_size_t)1 << 20)
#define BASE ((vmem_addr_t)0x7f0000000000)

static vmem_addr_t g_next = BASE; /* the next import ends here */
static vmem_size_t g_released, g_largest;
static unsigned g_nreleased;
static vmem_addr_t g_low = ~(vmem_addr_t)0; /* lowest address released */

static int
down_import(vmem_t *arg, vmem_size_t size, vm_flag_t flags, vmem_addr_t *ap)
{
	(void)arg;
	(void)flags;
	g_next -= size;
	*ap = g_next;
	return 0;
}

static void
note_release(vmem_t *arg, vmem_addr_t addr, vmem_size_t size)
{
	(void)arg;
	g_released += size;
	g_nreleased++;
	if (size > g_largest)
		g_largest = size;
	if (addr < g_low)
		g_low = addr;
}

static void
no_purge(vmem_addr_t addr, vmem_size_t size)
{
	(void)addr;
	(void)size;
}

static vmem_size_t g_purged;

static void
count_purge(vmem_addr_t addr, vmem_size_t size)
{
	(void)addr;
	g_purged += size;
}

static uint64_t
imports(vmem_t *vm)
{
	struct kmem_vmem_stats st;

	T_EQ(kmem_vmem_stats(vm, &st), 0);
	return st.vs_import;
}

static vmem_t *
arena(bool merge)
{
	vmem_t *vm = vmem_create(merge ? "merge" : "apart", 0, 0, PG,
	    down_import, note_release, NULL, 0, VM_SLEEP, IPL_NONE);

	T_ASSERT(vm != NULL);
	T_EQ(kmem_vmem_set_min_import(vm, PG), 0);
	if (merge)
		kmemi_vmem_set_merge(vm);
	return vm;
}

static void
test_merge(void)
{
	vmem_t *vm = arena(true);
	vmem_addr_t a, b, c, big;

	g_released = 0;
	T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &a), 0);
	T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &b), 0);
	T_EQ(b + MB, a); /* imported below a, touching it */
	T_EQ(imports(vm), 2);
	kmem_vmem_check(vm);
	vmem_free(vm, a, MB);
	vmem_free(vm, b, MB);
	kmem_vmem_check(vm);
	/* One merged span wholly free: released whole, 2 MiB. */
	T_EQ(g_released, 2 * MB);
	g_next = BASE;
	/* Again, busy neighbours this time, freed before the request. */
	T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &a), 0);
	T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &b), 0);
	T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &c), 0);
	T_EQ(imports(vm), 5);
	vmem_free(vm, a, MB);
	vmem_free(vm, b, MB);
	kmem_vmem_check(vm);
	T_EQ(vmem_alloc(vm, 2 * MB, VM_SLEEP, &big), 0);
	T_EQ(big, b);
	T_EQ(imports(vm), 5);
	kmem_vmem_check(vm);
	/* A span that does not touch stays apart: a gap below c. */
	g_next -= PG;
	T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &a), 0);
	T_EQ(imports(vm), 6);
	vmem_free(vm, a, MB);
	T_EQ(g_released, 3 * MB); /* alone, wholly free: released */
	vmem_free(vm, big, 2 * MB);
	vmem_free(vm, c, MB);
	T_EQ(g_released, 6 * MB);
	kmem_vmem_check(vm);
	vmem_destroy(vm);
}

static void
test_apart(void)
{
	vmem_t *vm = arena(false);
	vmem_addr_t a, b, c, big;

	g_next = BASE;
	T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &a), 0);
	T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &b), 0);
	T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &c), 0);
	vmem_free(vm, a, MB);
	vmem_free(vm, b, MB);
	T_EQ(vmem_alloc(vm, 2 * MB, VM_SLEEP, &big), 0);
	T_EQ(imports(vm), 4); /* the two free spans could not serve it */
	vmem_free(vm, big, 2 * MB);
	vmem_free(vm, c, MB);
	vmem_destroy(vm);
}

/*
 * 60 MiB: below vmem.c's PURGE_BURST (64 MiB), past which a free makes
 * the pass due before the delay (test_burst).
 */
#define NSPAN  60
#define NBURST 80
#define BATCH  ((vmem_size_t)32 << 20) /* vmem.c's PURGE_BATCH_SPAN_BYTES */
#define BURST  ((vmem_size_t)64 << 20) /* vmem.c's PURGE_BURST */

static void
test_release_steps(void)
{
	vmem_t *vm = arena(true);
	vmem_addr_t r[NSPAN], keep, drive, top;
	vmem_size_t before;
	unsigned i, steps = 0;

	g_next = BASE;
	g_released = g_largest = 0;
	g_nreleased = 0;
	/* No pass while the blocks are made (an hour's delay). */
	kmemi_vmem_set_purge(vm, no_purge, 3600 * (uint64_t)1000000000);
	for (i = 0; i < NSPAN; i++)
		T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &r[i]), 0);
	top = r[0] + MB;
	T_EQ(r[NSPAN - 1], top - NSPAN * MB); /* one merged span */
	g_next -= PG; /* the blocks that drive the passes stay apart */
	T_EQ(vmem_alloc(vm, PG, VM_SLEEP, &keep), 0);
	T_EQ(vmem_alloc(vm, PG, VM_SLEEP, &drive), 0);
	for (i = 0; i < NSPAN; i++)
		vmem_free(vm, r[i], MB);
	kmem_vmem_check(vm);
	T_EQ(g_released, 0);
	/* No delay now; this pass ends the epoch they were freed in. */
	kmemi_vmem_set_purge(vm, no_purge, 0);
	kmemi_vmem_purge(vm, false);
	T_EQ(g_released, 0);
	while (g_released < NSPAN * MB && steps < 100) {
		before = g_released;
		vmem_free(vm, drive, PG);
		T_EQ(vmem_alloc(vm, PG, VM_SLEEP, &drive), 0);
		T_LE(g_released - before, BATCH);
		kmem_vmem_check(vm);
		steps++;
	}
	T_EQ(g_released, NSPAN * MB);
	T_LE(g_largest, BATCH);
	T_GE(g_nreleased, (NSPAN * MB + BATCH - 1) / BATCH);
	T_EQ(g_low, top - NSPAN * MB);
	printf("   %u MiB back in %u releases of at most %lu KiB\n",
	    (unsigned)(g_released / MB), g_nreleased,
	    (unsigned long)(g_largest >> 10));
	/* An "all" purge gives a merged span back whole. */
	kmemi_vmem_set_purge(vm, no_purge, 3600 * (uint64_t)1000000000);
	g_next = top;
	g_released = g_largest = 0;
	for (i = 0; i < NSPAN; i++)
		T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &r[i]), 0);
	for (i = 0; i < NSPAN; i++)
		vmem_free(vm, r[i], MB);
	kmemi_vmem_purge(vm, true);
	T_EQ(g_released, NSPAN * MB);
	T_EQ(g_largest, NSPAN * MB);
	kmem_vmem_check(vm);
	vmem_free(vm, drive, PG);
	vmem_free(vm, keep, PG);
	vmem_destroy(vm);
}

/*
 * test_burst: with an hour's delay, frees of more than PURGE_BURST bytes
 * that leave most of the arena free make the pass due at once (vmem.c
 * section 7): nothing is purged or released before that many bytes are
 * freed, and at least that many are within a few frees, one batch a
 * free (the frees since the last pass too: the epoch advances) --
 * before, nothing went back until the delay was up.
 */
static void
test_burst(void)
{
	vmem_t *vm = arena(true);
	vmem_addr_t r[NBURST], keep, drive;
	vmem_size_t before;
	unsigned i, steps = 0;

	g_next = BASE;
	g_released = g_largest = g_purged = 0;
	g_nreleased = 0;
	kmemi_vmem_set_purge(vm, count_purge, 3600 * (uint64_t)1000000000);
	for (i = 0; i < NBURST; i++)
		T_EQ(vmem_alloc(vm, MB, VM_SLEEP, &r[i]), 0);
	g_next -= PG;
	T_EQ(vmem_alloc(vm, PG, VM_SLEEP, &keep), 0);
	T_EQ(vmem_alloc(vm, PG, VM_SLEEP, &drive), 0);
	for (i = 0; i < NBURST; i++) {
		if ((vmem_size_t)i * MB < BURST)
			T_EQ(g_released + g_purged, 0);
		vmem_free(vm, r[i], MB);
		kmem_vmem_check(vm);
	}
	/* The pass a burst started ends within a few more frees. */
	while (steps < 8) {
		before = g_released + g_purged;
		vmem_free(vm, drive, PG);
		T_EQ(vmem_alloc(vm, PG, VM_SLEEP, &drive), 0);
		T_LE(g_released + g_purged - before, BATCH);
		kmem_vmem_check(vm);
		steps++;
	}
	/* At least what was freed when it became due: 64 MiB. */
	T_GE(g_released + g_purged, BURST);
	printf("   %u MiB purged, %u MiB released, of %u MiB freed\n",
	    (unsigned)(g_purged / MB), (unsigned)(g_released / MB),
	    (unsigned)NBURST);
	vmem_free(vm, drive, PG);
	vmem_free(vm, keep, PG);
	vmem_destroy(vm);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_merge);
	T_RUN_IF(test_apart);
	T_RUN_IF(test_release_steps);
	T_RUN_IF(test_burst);
	return t_done();
}
