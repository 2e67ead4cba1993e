/*
 * malloc_remap_race_mt.c -- realloc's page moves leave no hole in the
 * address space for another thread's mmap(2) to fall into.
 *
 * realloc of a large block that cannot grow in place has the OS move its
 * pages into the new block (kmem.c, kmemi_large_realloc).  The first
 * version did that with mremap(MREMAP_FIXED), which unmaps the old range,
 * then mapped fresh pages over it with mmap(MAP_FIXED): in between the
 * range was free address space, and an mmap(NULL) of another thread could
 * be given it -- and was then silently mapped over, or, freed by its
 * owner, took a part of kva with it (the next block there crashed).  With
 * two threads mapping, writing and unmapping runs while the main thread
 * grew 512 KiB blocks by realloc, the process died of SIGSEGV within a
 * second.
 *
 *  - the main thread: a 512 KiB block, written, a block after it (so that
 *    it cannot grow in place), realloc to 1 MiB, its contents checked;
 *  - two threads: mmap of 64 KiB - 1 MiB, each page written, checked 50
 *    times, munmap;
 *  - one thread: malloc'd large blocks of 256 KiB - 2 MiB, written and
 *    checked, so that kva's own next span is among the mappings at risk.
 * Pass: for 2 s (t_scale) no crash, no mapping or block found changed,
 * every realloc kept its contents.  Runs on glibc too (the oracle).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "t.h"

#define KB ((size_t)1 << 10)

static void *(*volatile f_malloc)(size_t) = malloc;
static void *(*volatile f_realloc)(void *, size_t) = realloc;

static atomic_int stop;
static atomic_long changed, maps, blocks;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
mapper(void *arg)
{
	struct t_rng r;

	t_rng_init(&r, 1, (unsigned)(uintptr_t)arg);
	while (!atomic_load(&stop)) {
		size_t n = (64 + t_rng_below(&r, 960)) * KB & ~(size_t)4095;
		unsigned char *m = mmap(NULL, n, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		size_t i;
		int k;

		if (m == MAP_FAILED)
			continue;
		for (i = 0; i < n; i += 4096)
			m[i] = 0xa5;
		for (k = 0; k < 50; k++)
			for (i = 0; i < n; i += 4096)
				if (m[i] != 0xa5) {
					atomic_fetch_add(&changed, 1);
					k = 50;
					break;
				}
		munmap(m, n);
		atomic_fetch_add(&maps, 1);
	}
	return NULL;
}

static void *
blocker(void *arg)
{
	struct t_rng r;

	t_rng_init(&r, 2, (unsigned)(uintptr_t)arg);
	while (!atomic_load(&stop)) {
		size_t n = (256 + t_rng_below(&r, 1792)) * KB, i;
		unsigned char *p = f_malloc(n);
		int k;

		T_ASSERT(p != NULL);
		for (i = 0; i < n; i += 4096)
			p[i] = 0x5a;
		for (k = 0; k < 20; k++)
			for (i = 0; i < n; i += 4096)
				if (p[i] != 0x5a) {
					atomic_fetch_add(&changed, 1);
					k = 20;
					break;
				}
		free(p);
		atomic_fetch_add(&blocks, 1);
	}
	return NULL;
}

static void
test_remap_race(void)
{
	double secs = 2.0 * (double)t_scale(100) / 100.0, t0;
	size_t n = 512 * KB, i;
	pthread_t t[3];
	long grown = 0;
	unsigned j;

	for (j = 0; j < 3; j++)
		T_EQ(pthread_create(&t[j], NULL, j < 2 ? mapper : blocker,
			 (void *)(uintptr_t)j),
		    0);
	t0 = now_s();
	while (now_s() - t0 < secs) {
		unsigned char *p = f_malloc(n), *q;
		void *after = f_malloc(n);

		T_ASSERT(p != NULL && after != NULL);
		memset(p, 3, n);
		memset(after, 1, 4096);
		q = f_realloc(p, 2 * n);
		T_ASSERT(q != NULL);
		for (i = 0; i < n; i += 4096)
			T_EQ(q[i], 3);
		memset(q + n, 4, n);
		free(after);
		free(q);
		grown++;
	}
	atomic_store(&stop, 1);
	for (j = 0; j < 3; j++)
		T_EQ(pthread_join(t[j], NULL), 0);
	printf("   %ld reallocs, %ld mappings, %ld blocks; %ld found "
	       "changed\n",
	    grown, atomic_load(&maps), atomic_load(&blocks),
	    atomic_load(&changed));
	T_EQ(atomic_load(&changed), 0);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_remap_race);
	return t_done();
}
