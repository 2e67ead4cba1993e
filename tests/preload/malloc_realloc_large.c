/*
 * malloc_realloc_large.c -- realloc of large blocks moves no bytes it
 * need not (issue 12, section 3): a block of megabytes grows in place
 * when the space after it is free, or has its pages moved by the OS
 * (mremap), and never costs a page fault per page of what it held.  Run
 * on glibc (the oracle, which mremaps its mmapped chunks) and on
 * libkmem-malloc.so.
 *
 *  - contents: a block grown by doubling from 128 KiB to 64 MiB, then
 *    shrunk back, keeps every byte it had (the prefix when it shrinks);
 *  - faults: growing a written 16 MiB block to 32 MiB, then reading what
 *    it held, takes fewer than a quarter of its 4096 pages in minor
 *    faults (a copy into fresh pages takes all 4096: the old code did;
 *    malloc_trim first, so that no dirty free memory hides a copy);
 *  - the same while other large blocks are allocated and freed around
 *    it, so that it cannot always grow in place (kmem only: glibc, once
 *    a large chunk is freed, raises its mmap threshold and serves the
 *    next ones from its heap, where realloc copies);
 *  - a move the kernel refuses after it has unmapped the destination
 *    (mremap(2) with MREMAP_DONTUNMAP maps "from" anew, so RLIMIT_AS
 *    stops it, and Linux unmaps the target first): in a child whose
 *    RLIMIT_AS is its size now (the destination mapped again, the block
 *    copied into it), or 1 MiB less (the destination cannot be mapped
 *    again: kept out of use, the block copied elsewhere).  realloc then
 *    returns the block with its contents, or NULL with the old one
 *    intact, and every block allocated after it can be written (the
 *    lost destination is never handed out).  (Copying into a
 *    destination the kernel had unmapped would be a SIGSEGV; on Linux
 *    up to 6.11 a move of a block that spans two mappings fails so.)
 *  - the process's mappings stay few: 64 blocks grown by realloc at
 *    random 8000 times (t_scale), freed and allocated again: at most 2000
 *    more mappings (/proc/self/maps) than before.  A page move that left
 *    the range it moved from as a mapping of its own (MREMAP_DONTUNMAP
 *    alone) never merged again: 32,892 mappings after 40,000 steps, half
 *    of vm.max_map_count, where mmap starts to fail.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "t.h"

static void *(*volatile f_realloc)(void *, size_t) = realloc;
static void *(*volatile f_malloc)(size_t) = malloc;

#define MB ((size_t)1 << 20)

static void
fill(unsigned char *p, size_t from, size_t to, unsigned tag)
{
	for (size_t i = from; i < to; i += 64)
		p[i] = (unsigned char)((i >> 6) * 7 + tag);
}

static bool
intact(const unsigned char *p, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i += 64)
		if (p[i] != (unsigned char)((i >> 6) * 7 + tag))
			return false;
	return true;
}

static long
minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static void
test_contents(void)
{
	size_t n = 128 << 10, have = n;
	unsigned char *p = f_malloc(n), *q;

	T_ASSERT(p != NULL);
	fill(p, 0, n, 3);
	for (n *= 2; n <= 64 * MB; n *= 2) {
		q = f_realloc(p, n);
		T_ASSERT(q != NULL);
		T_ASSERT(intact(q, have, 3));
		fill(q, have, n, 3);
		p = q;
		have = n;
	}
	for (n = have / 2; n >= (64 << 10); n /= 2) {
		q = f_realloc(p, n);
		T_ASSERT(q != NULL);
		T_ASSERT(intact(q, n, 3));
		p = q;
	}
	free(p);
}

/* Grow a written block of "from" bytes to "to": faults it took. */
static long
grow_faults(size_t from, size_t to, unsigned tag)
{
	unsigned char *p = f_malloc(from), *q;
	long before, faults;

	T_ASSERT(p != NULL);
	memset(p, 0, from);
	fill(p, 0, from, tag);
	/* No dirty free memory left: a copy would fault on every page. */
	malloc_trim(0);
	before = minflt();
	q = f_realloc(p, to);
	T_ASSERT(q != NULL);
	T_ASSERT(intact(q, from, tag));
	faults = minflt() - before;
	free(q);
	return faults;
}

static void
test_no_copy(void)
{
	long f = grow_faults(16 * MB, 32 * MB, 5);

	printf("   16 MiB -> 32 MiB: %ld minor faults (4096 pages held)\n", f);
	T_LT(f, 1024);
}

static void
test_no_copy_crowded(void)
{
	void *other[8];
	long f, worst = 0;
	int i, round;

	for (round = 0; round < 4; round++) {
		for (i = 0; i < 8; i++) {
			other[i] = f_malloc((size_t)(i + 1) * MB);
			T_ASSERT(other[i] != NULL);
			memset(other[i], 1, (size_t)(i + 1) * MB);
		}
		for (i = round & 1; i < 8; i += 2)
			free(other[i]);
		f = grow_faults(
		    8 * MB, (size_t)(12 + round) * MB, (unsigned)round);
		if (f > worst)
			worst = f;
		for (i = !(round & 1); i < 8; i += 2)
			free(other[i]);
	}
	printf("   8 MiB -> 12..15 MiB among other blocks: at most %ld minor "
	       "faults (2048 pages held)\n",
	    worst);
	T_LT(worst, 512);
}

/* Mappings of the process: lines of /proc/self/maps. */
static long
mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int c;

	T_ASSERT(f != NULL);
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void
test_mappings_bounded(void)
{
	enum { N = 64 };
	unsigned char *b[N] = {0};
	size_t sz[N] = {0}, i, j, k, n, steps = t_scale(8000);
	uint64_t x = 88172645463325252ull;
	long base = mappings(), most = base, m;

	for (i = 0; i < steps; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		k = x % N;
		if (b[k] == NULL || sz[k] > 4 * MB) {
			free(b[k]);
			sz[k] = (256 << 10) + (x >> 8) % 64 * 4096;
			b[k] = f_malloc(sz[k]);
			T_ASSERT(b[k] != NULL);
			for (j = 0; j < sz[k]; j += 64 << 10)
				b[k][j] = 1;
		} else {
			n = sz[k] + sz[k] / 2 + 4096 * ((x >> 8) % 16);
			b[k] = f_realloc(b[k], n);
			T_ASSERT(b[k] != NULL && b[k][0] == 1);
			for (j = sz[k]; j < n; j += 64 << 10)
				b[k][j] = 1;
			sz[k] = n;
		}
		if (i % 500 == 0 && (m = mappings()) > most)
			most = m;
	}
	for (k = 0; k < N; k++)
		free(b[k]);
	printf("   %ld mappings before, at most %ld during %zu steps\n", base,
	    most, steps);
	T_LT(most, base + 2000);
}

/* In a child: grow a 1 MiB block to 2 MiB with RLIMIT_AS at now - less. */
static void
remap_refused(void *arg)
{
	size_t less = (size_t)(uintptr_t)arg, i;
	unsigned char *p, *q, *spare, *after, *more[16];
	struct rlimit rl;

	/* Free kva space, so that the new block needs no new mapping. */
	spare = f_malloc(16 * MB);
	T_ASSERT(spare != NULL);
	memset(spare, 1, 16 * MB);
	p = f_malloc(MB);
	after = f_malloc(MB); /* p cannot grow in place */
	T_ASSERT(p != NULL && after != NULL);
	fill(p, 0, MB, 9);
	memset(after, 2, MB);
	free(spare);
	rl.rlim_cur = rl.rlim_max = (unsigned long)t_vm_kib() * 1024 - less;
	if (setrlimit(RLIMIT_AS, &rl) != 0)
		_exit(0); /* cannot test here */
	q = f_realloc(p, 2 * MB);
	if (q == NULL) {
		T_ASSERT(intact(p, MB, 9));
		q = p;
	} else {
		T_ASSERT(intact(q, MB, 9));
		memset(q + MB, 3, MB);
	}
	/* Nothing handed out after it is unmapped. */
	for (i = 0; i < 16; i++) {
		more[i] = f_malloc(MB / 2);
		if (more[i] != NULL)
			memset(more[i], 4, MB / 2);
	}
	for (i = 0; i < 16; i++)
		free(more[i]);
	free(after);
	free(q);
}

static void
test_remap_refused(void)
{
	char buf[4096];

	t_child_ok(remap_refused, (void *)(uintptr_t)0, buf, sizeof buf);
	t_child_ok(remap_refused, (void *)(uintptr_t)MB, buf, sizeof buf);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_contents);
	T_RUN_IF(test_no_copy);
	if (getenv("KMEM_TEST_PRELOAD") != NULL)
		T_RUN_IF(test_no_copy_crowded);
	T_RUN_IF(test_remap_refused);
	T_RUN_IF(test_mappings_bounded);
	return t_done();
}
