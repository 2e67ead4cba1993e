/*
 * kmem_tick.c -- the tick (kmemi_tick: malloc's free runs it once in
 * 16384 puts) does no more of kva's purge pass than a free does: one
 * batch, at most 32 MiB of spans given back (vmem.c section 7), the rest
 * by the next ticks -- not the whole pass inside one free(3).
 *
 * Large blocks (kmem_alloc: kva, whose adjacent imports merge into one
 * span) are touched and freed, the purge delay passes, a pass ends the
 * epoch they were freed in; then each kmemi_tick may give back at most a
 * batch's bytes of kva (on e795f9e the first one gave back all of it:
 * one munmap of the merged span, 20 ms for 760 MiB in a free of 48
 * bytes), and enough ticks give back all of it.  Run with
 * KMEM_OPTIONS=purge_delay_ms=20,reap_tick_ms=1 (set by main before kmem
 * starts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kmem/kmem.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/kmem_impl.h"
#include "internal/pool_impl.h"
#include "t.h"
#include "t_vmem.h"

#define BLK   ((size_t)2 << 20)
#define BATCH ((size_t)32 << 20) /* vmem.c's PURGE_BATCH_SPAN_BYTES */

static size_t
kva_imported(void)
{
	return t_vmem_stats(kmemi_page_arena(&kmemi_dom0)).vs_imported;
}

static void
test_tick_bounded(void)
{
	size_t n = t_scale(40) < 24 ? 24 : t_scale(40), i, before, after, low;
	void **b = calloc(n, sizeof *b);
	unsigned ticks = 0;

	T_ASSERT(b != NULL);
	for (i = 0; i < n; i++) {
		b[i] = kmem_alloc(BLK, KM_SLEEP);
		for (size_t j = 0; j < BLK; j += 4096)
			((volatile char *)b[i])[j] = 1;
	}
	low = kva_imported() - n * BLK; /* what stays: the rest of kva */
	for (i = 0; i < n; i++)
		kmem_free(b[i], BLK);
	free(b);
	/* Past the delay; this pass ends the epoch they were freed in. */
	usleep(30000);
	kmemi_page_arena_purge(&kmemi_dom0, false);
	usleep(30000);
	before = kva_imported();
	/*
	 * The blocks' spans still imported: unless a pass that the frees
	 * themselves started (on a machine slow enough that freeing them
	 * took past the delay: valgrind under load) has ended their epoch
	 * already, and the pass above gave them back.  Then there is
	 * nothing left to bound, and the loop below finds nothing to do.
	 */
	if (before < low + BATCH)
		printf("   (kva holds %zu MiB over the rest: the frees' own "
		       "pass gave the blocks back first)\n",
		    before > low ? (before - low) >> 20 : 0);
	while (kva_imported() > low && ticks < 10000) {
		before = kva_imported();
		usleep(2000); /* reap_tick_ms */
		kmemi_tick();
		after = kva_imported();
		T_LE(before - after, BATCH);
		ticks++;
	}
	printf("   %zu MiB of large blocks back in %u ticks\n", n * BLK >> 20,
	    ticks);
	T_LE(kva_imported(), low);
}

/*
 * The same when the tick's work is the caches': 96 MiB of 64-byte objects
 * freed leave kva dirty and the depot full; the tick that reaps the depot
 * frees pages into kva, and each of those frees ran a purge batch of its
 * own -- up to eight in one free(3), 4-7 ms of it -- where the tick's one
 * batch is all it may do (kmem.c kmem_tick_dom: the arenas' purge held
 * while the caches shrink).
 */
static void
test_tick_reap_one_batch(void)
{
	size_t n = t_scale((size_t)96 << 20) / 64, i, before, after, most = 0;
	void **o = calloc(n, sizeof *o);
	vmem_t *kva = kmemi_page_arena(&kmemi_dom0);
	unsigned ticks;
	uint64_t batches = 0;

	T_ASSERT(o != NULL);
	for (i = 0; i < n; i++) {
		o[i] = kmem_alloc(64, KM_SLEEP);
		*(volatile char *)o[i] = 1;
	}
	for (i = 0; i < n; i++)
		kmem_free(o[i], 64);
	free(o);
	for (ticks = 0; ticks < 40; ticks++) {
		uint64_t b0, b1;

		usleep(25000); /* reap_interval_ms, purge_delay_ms */
		before = kva_imported();
		b0 = kmemi_vmem_purge_batches(kva);
		kmemi_tick();
		b1 = kmemi_vmem_purge_batches(kva);
		after = kva_imported();
		if (before > after && before - after > most)
			most = before - after;
		if (b1 - b0 > batches)
			batches = b1 - b0;
		/* One batch, and the end of the pass it may finish. */
		T_LE(b1 - b0, 2);
		T_LE(before - after, BATCH);
	}
	printf("   %zu MiB of 64-byte objects freed: at most %zu KiB back, "
	       "kva's batch count up by at most %u, in one tick\n",
	    n * 64 >> 20, most >> 10, (unsigned)batches);
}

int
main(void)
{
	/* Before kmem reads its options (the first allocation). */
	setenv("KMEM_OPTIONS",
	    "purge_delay_ms=20,reap_tick_ms=1,reap_interval_ms=20", 1);
	T_RUN(test_tick_bounded);
	T_RUN(test_tick_reap_one_batch);
	return t_done();
}
