/*
 * kmem_reaper.c -- KMEM_OPTIONS=reap_thread_ms=N: a program that frees
 * memory and then makes no allocator call at all still gives it back,
 * because kmem's own thread runs the page arena's purge pass when it is
 * due.  (Without the option the freed range stays until the next arena
 * activity or kmem_reap(): kmem_purge.c.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kmem/kmem.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/pool_impl.h"
#include "t.h"
#include "t_vmem.h"

#define BIG (32u << 20)

static size_t
kva_imported(void)
{
	return t_vmem_stats(kmemi_page_arena(&kmemi_dom0)).vs_imported;
}

static void
test_idle_program_gives_back(void)
{
	size_t before, freed, later = 0;
	char *p;
	int i;

	before = kva_imported();
	p = kmem_alloc(BIG, KM_SLEEP);
	for (size_t k = 0; k < BIG; k += 4096)
		p[k] = 1;
	kmem_free(p, BIG);
	freed = kva_imported();
	/* No kmem call from here on but the statistics: wait up to 3 s. */
	for (i = 0; i < 30; i++) {
		usleep(100 * 1000);
		if ((later = kva_imported()) < before + BIG / 2)
			break;
	}
	printf("   kva imported: %zu KiB before, %zu KiB after the free, "
	       "%zu KiB %d ms later with no allocator call\n",
	    before / 1024, freed / 1024, later / 1024, (i + 1) * 100);
	T_GE(freed, before + BIG);
	T_LT(later, before + BIG / 2);
}

int
main(void)
{
	/* Before kmem reads its options (the first allocation). */
	setenv("KMEM_OPTIONS", "reap_thread_ms=50,purge_delay_ms=100", 1);
	T_RUN(test_idle_program_gives_back);
	return t_done();
}
