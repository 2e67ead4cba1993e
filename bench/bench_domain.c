/*
 * bench_domain -- what domains cost kmem_alloc/kmem_free (issue 11).
 *
 * Pairs of kmem_alloc + first-byte write + kmem_free of one object, ns
 * per pair in CPU time, median of 7 runs of about 20 ms, at 64 B, 1 KiB
 * and 64 KiB, in four situations, in this order in one process:
 *   default alone   the default domain, no other domain ever made: the
 *                   path every program without domains takes
 *   in a domain     a domain over an mmap'd region current on the thread
 *   default, with   the default domain while that domain exists: the
 *                   default's gate sends kmem_alloc and kmem_free to their
 *                   slow paths, which find the domain (domain.c section 2)
 *   cross free      allocated in the domain, freed with the default
 *                   current (kmem_free finds the pointer's domain)
 * and a pool_cache get/put pair of 64-byte objects of a cache made in
 * the domain.  Numbers, not a test: docs/BENCHMARKS.md has a run.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#include <kmem/domain.h>
#include <kmem/kmem.h>
#include <kmem/pool.h>

#include "bench.h"

#define RUNS	     7
#define REGION_BYTES ((size_t)256 << 20)

static char *region;
static size_t region_used;

static void *
src_alloc(void *arg, size_t size, size_t align)
{
	size_t at = (region_used + align - 1) & ~(align - 1);

	(void)arg;
	if (at + size > REGION_BYTES)
		return NULL;
	region_used = at + size;
	return region + at;
}

static void
src_free(void *arg, void *p, size_t size)
{
	(void)arg;
	(void)p;
	(void)size; /* a bump region: nothing to take back */
}

enum mode { M_SAME, M_CROSS };

/* ns per pair of kmem_alloc(size) and kmem_free, median of RUNS. */
static double
pairs(size_t size, enum mode mode, kmem_domain_t *d)
{
	double t[RUNS];
	uint64_t n = 200000;
	int r;

	for (r = 0; r < RUNS; r++) {
		uint64_t i, t0 = bench_cpu_ns();

		for (i = 0; i < n; i++) {
			char *p;

			if (mode == M_CROSS)
				kmem_domain_switch(d);
			p = kmem_alloc(size, KM_SLEEP);
			p[0] = 1;
			bench_escape(p);
			if (mode == M_CROSS)
				kmem_domain_switch(NULL);
			kmem_free(p, size);
		}
		t[r] = (double)(bench_cpu_ns() - t0) / (double)n;
	}
	qsort(t, RUNS, sizeof t[0], bench_cmp_double);
	return t[RUNS / 2];
}

static double
cache_pairs(pool_cache_t pc)
{
	double t[RUNS];
	uint64_t n = 200000;
	int r;

	for (r = 0; r < RUNS; r++) {
		uint64_t i, t0 = bench_cpu_ns();

		for (i = 0; i < n; i++) {
			char *p = pool_cache_get(pc, PR_WAITOK);

			p[0] = 1;
			bench_escape(p);
			pool_cache_put(pc, p);
		}
		t[r] = (double)(bench_cpu_ns() - t0) / (double)n;
	}
	qsort(t, RUNS, sizeof t[0], bench_cmp_double);
	return t[RUNS / 2];
}

int
main(void)
{
	static const size_t sizes[] = {64, 1024, 65536};
	struct kmem_page_source src = {src_alloc, src_free, NULL, NULL};
	double alone[3], in[3], with[3], cross[3], pc_def, pc_dom;
	kmem_domain_t *d;
	pool_cache_t pc;
	unsigned int i;

	region = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		bench_die("bench_domain", "mmap", errno);
	for (i = 0; i < 3; i++)
		alone[i] = pairs(sizes[i], M_SAME, NULL);
	pc = pool_cache_init(
	    64, 0, 0, 0, "bench-def", NULL, IPL_NONE, NULL, NULL, NULL);
	pc_def = cache_pairs(pc);
	pool_cache_destroy(pc);
	if ((d = kmem_domain_create("bench", &src)) == NULL)
		bench_die("bench_domain", "kmem_domain_create", errno);
	kmem_domain_switch(d);
	for (i = 0; i < 3; i++)
		in[i] = pairs(sizes[i], M_SAME, d);
	pc = pool_cache_init(
	    64, 0, 0, 0, "bench-dom", NULL, IPL_NONE, NULL, NULL, NULL);
	kmem_domain_switch(NULL);
	pc_dom =
	    cache_pairs(pc); /* used from the default: the cache's domain */
	pool_cache_destroy(pc);
	for (i = 0; i < 3; i++)
		with[i] = pairs(sizes[i], M_SAME, NULL);
	for (i = 0; i < 3; i++)
		cross[i] = pairs(sizes[i], M_CROSS, d);
	printf("bench_domain: ns per kmem_alloc + write + kmem_free pair, CPU "
	       "time, median of %d runs\n",
	    RUNS);
	printf("%8s %14s %12s %14s %12s\n", "size", "default alone",
	    "in a domain", "default, with", "cross free");
	for (i = 0; i < 3; i++)
		printf("%8zu %14.1f %12.1f %14.1f %12.1f\n", sizes[i], alone[i],
		    in[i], with[i], cross[i]);
	printf("pool_cache get+put, 64 B: default domain %.1f, a domain's "
	       "cache %.1f ns\n",
	    pc_def, pc_dom);
	printf("(\"cross free\" includes two kmem_domain_switch calls)\n");
	if (kmem_domain_destroy(d) != 0)
		bench_die("bench_domain", "kmem_domain_destroy", EBUSY);
	return 0;
}
