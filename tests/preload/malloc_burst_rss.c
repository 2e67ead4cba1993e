/*
 * malloc_burst_rss.c -- memory goes back while a program frees most of
 * what it had, not a delay after its last call (kmem.c section 5, vmem.c
 * section 7's early pass, pool_cache.c's depot budget by pages pinned).
 * The C library's API only: "glibc.malloc_burst_rss" prints glibc's
 * figures (it keeps its heap: nothing asserted there),
 * "preload.malloc_burst_rss" (KMEM_TEST_PRELOAD=1) asserts kmem's.
 *
 *  - scattered: 256 MiB of small objects (16..512 bytes, skewed small,
 *    written), then all freed in a scattered order (index i * a large
 *    prime mod n), then VmRSS read with no call in between: on kmem, at
 *    most half of what the objects added is still resident.  Before,
 *    the depot kept 16 MiB of freed objects -- up to 4,000 or so a class
 *    -- scattered over most of the pages, none of which could go back,
 *    and kva's freed pages waited for a pass 1-2 s later: RSS stayed at
 *    its peak (the frag and idle cells of bench_malloc: 377 and 619 MB).
 *  - in order: the same with the objects freed in the order they were
 *    allocated (a list or a tree torn down): the pages empty one after
 *    another and reach kva at once; only kva's delay held them (RSS at
 *    its peak before).
 * The pointer array is mmap'ed and unmapped before each reading, so that
 * only the allocator's memory is measured.  The seed is printed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "t.h"

static bool on_kmem;

#define TOTAL ((size_t)256 << 20)
#define MAXN  (TOTAL / 16 + 1)

static long
rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;

	T_ASSERT(f != NULL);
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			v = atol(line + 6);
	fclose(f);
	T_ASSERT(v >= 0);
	return v;
}

/* 16..512, skewed small: two draws, the smaller. */
static size_t
small_size(struct t_rng *r)
{
	size_t a = 16 + t_rng_below(r, 497), b = 16 + t_rng_below(r, 497);

	return a < b ? a : b;
}

static void
burst(bool scattered)
{
	struct t_rng r;
	size_t n = 0, bytes = 0, i, bookb = MAXN * sizeof(char *);
	char **p;
	long base, full, after;

	t_rng_init(&r, t_seed(), 0);
	p = mmap(NULL, bookb, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	T_ASSERT(p != MAP_FAILED);
	base = rss_kib();
	while (bytes < TOTAL && n < MAXN) {
		size_t sz = small_size(&r);

		T_ASSERT((p[n] = malloc(sz)) != NULL);
		memset(p[n], 0x5a, sz);
		bytes += sz;
		n++;
	}
	full = rss_kib();
	for (i = 0; i < n; i++)
		free(p[scattered ? (size_t)(((uint64_t)i * 1000003u) % n) : i]);
	munmap(p, bookb); /* out of both readings below */
	after = rss_kib();
	printf("%s: %zu objects, %zu bytes: RSS %ld KiB before, %ld full, "
	       "%ld right after the frees\n",
	    scattered ? "scattered" : "in order", n, bytes, base, full, after);
	if (!on_kmem)
		return;
	/* full includes the pointer array (n * 8 bytes); after does not. */
	if (after - base > (full - base) / 2)
		T_FAIL("%s: %ld KiB still resident right after freeing "
		       "everything, of %ld the objects added",
		    scattered ? "scattered" : "in order", after - base,
		    full - base);
}

static void
t_scattered(void)
{
	burst(true);
}

static void
t_in_order(void)
{
	burst(false);
}

int
main(void)
{
	const char *e = getenv("KMEM_TEST_PRELOAD");

	on_kmem = e != NULL && *e == '1';
	if (t_under_valgrind())
		t_skip("256 MiB of small objects: too slow under valgrind");
	T_RUN(t_scattered);
	T_RUN(t_in_order);
	return t_done();
}
