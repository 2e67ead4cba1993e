/*
 * malloc_api.c -- conformance of the libc allocation entry points
 * (reliability plan A.3-A.8), written against the standard API only so
 * that the same binary is the oracle under plain glibc and the subject
 * under LD_PRELOAD=libkmem-malloc.so (KMEM_TEST_PRELOAD=1).
 *
 *  - A.3 malloc(0) gives distinct non-NULL, 16-aligned pointers that
 *    free cleanly; free(NULL) is a no-op; free (small, large, aligned,
 *    NULL) leaves errno as it was (set to 1234);
 *  - A.4 too-large sizes (glibc tst-malloc-too-large ranges, sampled):
 *    SIZE_MAX - i and PTRDIFF_MAX + i for i < 2^14, (i << 50) and
 *    (i << 50) | (2^50 - 1) for 0 < i < 2^14, on malloc, calloc,
 *    realloc, reallocarray, aligned_alloc, posix_memalign, memalign,
 *    valloc and pvalloc: NULL with errno ENOMEM (posix_memalign returns
 *    ENOMEM and leaves *memptr untouched); a patterned block whose
 *    realloc failed is still valid and intact;
 *  - A.5 calloc(n, SIZE_MAX / n + 1) and the swapped call for every n in
 *    2..4096 and a sample up to 2^20, plus random overflowing pairs:
 *    NULL + ENOMEM (reallocarray the same, original kept); calloc
 *    returns zeroed memory after blocks of the same size were dirtied
 *    and freed: every size 1..16384 step 8, then random small and large
 *    (> 1 MiB, mmap path) sizes, 10^5 calls (t_scale);
 *  - A.6 realloc(NULL, n) acts as malloc(n); realloc(p, 0) frees p and
 *    returns NULL with errno unchanged (glibc behaviour, pinned for kmem;
 *    20000 rounds must not grow the RSS); realloc keeps the contents up
 *    to min(old, new) for every pair of a size grid (0..64 KiB around
 *    powers of two and quarter steps, 100 KiB, 1 MiB, 8 MiB), growing
 *    and shrinking, and along random chains; reallocarray the same;
 *  - A.7 posix_memalign with alignment 0, 1, 2, 3, 4, 24, ... -> EINVAL,
 *    *memptr untouched; posix_memalign / aligned_alloc / memalign for
 *    every alignment 2^3..2^21 x sizes 0..2^20 (all live at once):
 *    aligned, usable >= size, the usable size writable without hurting
 *    neighbours; 1 GiB alignment once per entry point; aligned_alloc and
 *    memalign accept 1, 2, 4; memalign/valloc page-aligned; pvalloc rounds
 *    up to a page and, under kmem, pvalloc(0) gives one page (glibc 2.36
 *    gives 24 bytes: see test_page_aligned).  (aligned_alloc with a
 *    non-power-of-two alignment is not tested: Debian 12's glibc 2.36
 *    rounds it up instead of failing as C17 asks.)
 *  - A.8 malloc_usable_size >= requested for every size 1..4096, then
 *    step 7 to 70000 and large sizes, the whole usable size writable
 *    (64 blocks live at once, patterns verified); usable_size(NULL) == 0;
 *    plain malloc(n) results are 16-aligned for every n;
 *  - malloc_trim(0) returns 0 or 1 and later allocation still works;
 *    after a burst of frees it gives the memory back (plan C20).
 *
 * All calls go through volatile function pointers so the compiler cannot
 * fold or elide them (clang removes an unused malloc and assumes it
 * succeeded).  Arguments name tests to run a subset: malloc_api
 * test_calloc_zeroed.  Pass: every assertion holds; exit 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"

static void *(*volatile f_malloc)(size_t) = malloc;
static void *(*volatile f_calloc)(size_t, size_t) = calloc;
static void *(*volatile f_realloc)(void *, size_t) = realloc;
static void *(*volatile f_reallocarray)(void *, size_t, size_t) = reallocarray;
static void *(*volatile f_aligned_alloc)(size_t, size_t) = aligned_alloc;
static int (*volatile f_posix_memalign)(
    void **, size_t, size_t) = posix_memalign;
static void *(*volatile f_memalign)(size_t, size_t) = memalign;
static void *(*volatile f_valloc)(size_t) = valloc;
static void *(*volatile f_pvalloc)(size_t) = pvalloc;
static void (*volatile f_free)(void *) = free;
static size_t (*volatile f_usable)(void *) = malloc_usable_size;
static int (*volatile f_malloc_trim)(size_t) = malloc_trim;

static size_t PS; /* the page size */

/* The byte at offset i of a block tagged "tag". */
static inline uint8_t
pat(uint32_t tag, size_t i)
{
	return (uint8_t)((i * 0x9d) ^ (i >> 9) ^ (tag * 0x3b) ^ (tag >> 5));
}

static void
fill(void *p, size_t off, size_t n, uint32_t tag)
{
	uint8_t *b = p;

	for (size_t i = off; i < off + n; i++)
		b[i] = pat(tag, i);
}

/* Offset of the first byte in [off, off + n) not matching, or SIZE_MAX. */
static size_t
check(const void *p, size_t off, size_t n, uint32_t tag)
{
	const uint8_t *b = p;

	for (size_t i = off; i < off + n; i++)
		if (b[i] != pat(tag, i))
			return i;
	return SIZE_MAX;
}

#define T_PATTERN(p, off, n, tag)                                              \
	do {                                                                   \
		size_t t_bad_ = check(p, off, n, tag);                         \
		if (t_bad_ != SIZE_MAX)                                        \
			T_FAIL("block %p (tag %u) corrupt at offset %zu of "   \
			       "[%zu, %zu): 0x%02x, expected 0x%02x",          \
			    (void *)(p), (unsigned)(tag), t_bad_,              \
			    (size_t)(off), (size_t)(off) + (size_t)(n),        \
			    ((const uint8_t *)(p))[t_bad_], pat(tag, t_bad_)); \
	} while (0)

/* A cheaper mark for overlap checks: one byte value per block. */
static inline uint8_t
bytetag(uint32_t tag)
{
	return (uint8_t)(tag * 0x9d + 1) | 1;
}

static bool
all_bytes(const void *p, size_t n, uint8_t c)
{
	const uint8_t *b = p;

	return n == 0 || (b[0] == c && memcmp(b, b + 1, n - 1) == 0);
}

#define T_BYTES(p, n, tag)                                                     \
	do {                                                                   \
		if (!all_bytes(p, n, bytetag(tag)))                            \
			T_FAIL("block %p (%zu bytes, tag %u) overwritten",     \
			    (void *)(p), (size_t)(n), (unsigned)(tag));        \
	} while (0)

static bool
is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	return n == 0 || (b[0] == 0 && memcmp(b, b + 1, n - 1) == 0);
}

static bool
aligned(const void *p, size_t a)
{
	return ((uintptr_t)p & (a - 1)) == 0;
}

/* ---------------------------------------------------------------- A.3 */

static void
test_malloc_zero(void)
{
	enum { N = 1000 };
	void **v = f_malloc(N * sizeof *v);

	T_ASSERT(v != NULL);
	for (size_t i = 0; i < N; i++) {
		v[i] = f_malloc(0);
		T_ASSERT(v[i] != NULL);
		T_ASSERT(aligned(v[i], 16));
		for (size_t j = 0; j < i; j++)
			if (v[j] == v[i])
				T_FAIL(
				    "malloc(0) #%zu == #%zu: %p", i, j, v[i]);
	}
	for (size_t i = 0; i < N; i++)
		f_free(v[i]);
	f_free(NULL);
	for (int i = 0; i < 1000; i++)
		f_free(NULL);
	/* realloc(NULL, 0) is malloc(0). */
	v[0] = f_realloc(NULL, 0);
	T_ASSERT(v[0] != NULL);
	f_free(v[0]);
	f_free(v);
}

static void
test_free_errno(void)
{
	static const size_t sizes[] = {0, 1, 16, 100, 4096, 20000, 131072,
	    262145, 1 << 20, 16 << 20, 64 << 20};
	void *p;

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		p = f_malloc(sizes[i]);
		T_ASSERT(p != NULL);
		memset(p, 0x5a, sizes[i]);
		errno = 1234;
		f_free(p);
		T_EQ(errno, 1234);

		T_EQ(f_posix_memalign(&p, 4096, sizes[i]), 0);
		errno = 1234;
		f_free(p);
		T_EQ(errno, 1234);

		p = f_calloc(1, sizes[i]);
		T_ASSERT(p != NULL);
		errno = 1234;
		f_free(p);
		T_EQ(errno, 1234);
	}
	errno = 1234;
	f_free(NULL);
	T_EQ(errno, 1234);
	/* Many frees in a row (a cache flush may happen in one of them). */
	{
		enum { N = 5000 };
		void **v = f_malloc(N * sizeof *v);

		T_ASSERT(v != NULL);
		for (size_t i = 0; i < N; i++) {
			v[i] = f_malloc(1 + i % 3000);
			T_ASSERT(v[i] != NULL);
		}
		for (size_t i = 0; i < N; i++) {
			errno = 1234;
			f_free(v[i]);
			T_EQ(errno, 1234);
		}
		f_free(v);
	}
}

/* ---------------------------------------------------------------- A.4 */

#define EXPECT_ENOMEM(expr, sz)                                                \
	do {                                                                   \
		void *t_r_;                                                    \
		errno = 0;                                                     \
		t_r_ = (expr);                                                 \
		if (t_r_ != NULL || errno != ENOMEM)                           \
			T_FAIL("%s, size %#zx: returned %p, errno %d (%s)",    \
			    #expr, (size_t)(sz), t_r_, errno,                  \
			    strerror(errno));                                  \
	} while (0)

struct keep {
	char *p;
	size_t n;
	uint32_t tag;
};

static void
too_large(size_t sz, struct keep *keep, size_t nkeep)
{
	void *sentinel = (void *)(uintptr_t)0x5eed;
	void *mp;
	int rc;

	EXPECT_ENOMEM(f_malloc(sz), sz);
	EXPECT_ENOMEM(f_valloc(sz), sz);
	EXPECT_ENOMEM(f_pvalloc(sz), sz);
	for (size_t k = 0; k < nkeep; k++) {
		EXPECT_ENOMEM(f_realloc(keep[k].p, sz), sz);
		T_PATTERN(keep[k].p, 0, keep[k].n, keep[k].tag);
	}
	for (size_t nmemb = 1; nmemb <= 8; nmemb *= 2) {
		if (sz % nmemb != 0)
			continue;
		EXPECT_ENOMEM(f_calloc(nmemb, sz / nmemb), sz);
		EXPECT_ENOMEM(f_calloc(sz / nmemb, nmemb), sz);
		for (size_t k = 0; k < nkeep; k++) {
			EXPECT_ENOMEM(
			    f_reallocarray(keep[k].p, nmemb, sz / nmemb), sz);
			T_PATTERN(keep[k].p, 0, keep[k].n, keep[k].tag);
		}
	}
	for (size_t align = 1; align <= PS; align *= 2) {
		EXPECT_ENOMEM(f_memalign(align, sz), sz);
		EXPECT_ENOMEM(f_aligned_alloc(align, sz), sz);
		if (align % sizeof(void *) != 0)
			continue;
		mp = sentinel;
		rc = f_posix_memalign(&mp, align, sz);
		if (rc != ENOMEM || mp != sentinel)
			T_FAIL("posix_memalign(%zu, %#zx): %d (%s), *memptr %p",
			    align, sz, rc, strerror(rc), mp);
	}
}

static void
test_too_large(void)
{
	/* i < 2^14: all i < 128, then every step-th. */
	const size_t lim = (size_t)1 << 14;
	size_t step = 97 / t_scale(1) + 1, ncalls = 0;
	struct keep keep[3] = {
	    {NULL, 16, 1}, {NULL, 3000, 2}, {NULL, 300000, 3}};
	size_t i;

	for (size_t k = 0; k < 3; k++) {
		keep[k].p = f_malloc(keep[k].n);
		T_ASSERT(keep[k].p != NULL);
		fill(keep[k].p, 0, keep[k].n, keep[k].tag);
	}
	for (i = 0; i < lim; i += i < 128 ? 1 : step, ncalls++)
		too_large(SIZE_MAX - i, keep, i < 16 ? 3 : 2);
	for (i = 1; i < lim; i += i < 128 ? 1 : step, ncalls++)
		too_large((size_t)PTRDIFF_MAX + i, keep, i < 16 ? 3 : 2);
#if SIZE_MAX > 0xffffffffu
	for (i = 1; i < lim; i += i < 128 ? 1 : step, ncalls++) {
		too_large((i << 50) | (((size_t)1 << 50) - 1), keep, 2);
		too_large(i << 50, keep, i < 16 ? 3 : 2);
		ncalls++; /* two sizes per i */
	}
#endif
	for (size_t k = 0; k < 3; k++) {
		T_PATTERN(keep[k].p, 0, keep[k].n, keep[k].tag);
		keep[k].p = f_realloc(keep[k].p, keep[k].n * 2);
		T_ASSERT(keep[k].p != NULL);
		T_PATTERN(keep[k].p, 0, keep[k].n, keep[k].tag);
		f_free(keep[k].p);
	}
	printf("   %zu too-large sizes, every entry point: NULL + ENOMEM\n",
	    ncalls);
}

/* ---------------------------------------------------------------- A.5 */

static void
calloc_overflow(size_t n, size_t m, struct keep *keep)
{
	EXPECT_ENOMEM(f_calloc(n, m), n);
	EXPECT_ENOMEM(f_calloc(m, n), n);
	EXPECT_ENOMEM(f_reallocarray(keep->p, n, m), n);
	EXPECT_ENOMEM(f_reallocarray(keep->p, m, n), n);
	EXPECT_ENOMEM(f_reallocarray(NULL, n, m), n);
}

static void
test_calloc_overflow(void)
{
	struct keep keep = {NULL, 777, 7};
	size_t n, count = 0, r;

	t_seed();
	keep.p = f_malloc(keep.n);
	T_ASSERT(keep.p != NULL);
	fill(keep.p, 0, keep.n, keep.tag);
	for (n = 2; n <= (size_t)1 << 20;
	     n += n < 4096 ? 1 : 1 + t_rand_below(n / 64), count++)
		calloc_overflow(n, SIZE_MAX / n + 1, &keep);
	/* Random pairs of random bit lengths whose product overflows. */
	while (count < 4096 + t_scale(20000)) {
		size_t a = (size_t)t_rand() >> t_rand_below(63);
		size_t b = (size_t)t_rand() >> t_rand_below(63);

		if (a < 2 || !__builtin_mul_overflow(a, b, &r))
			continue;
		calloc_overflow(a, b, &keep);
		count++;
	}
	T_PATTERN(keep.p, 0, keep.n, keep.tag);
	f_free(keep.p);
	printf("   %zu overflowing calloc/reallocarray pairs\n", count);
}

static const size_t large_sizes[] = {65536, 100000, 131072, 131073, 262144,
    (1 << 20) + 5, 2 << 20, (4 << 20) + 100};
#define NLARGE (sizeof large_sizes / sizeof large_sizes[0])

static void
test_calloc_zeroed(void)
{
	enum { B = 8 };
	uint64_t target = t_scale(100000), calls = 0;
	void *v[B];
	size_t s, pass = 0;

	t_seed();
	while (calls < target) {
		for (size_t k = 0; k < 2048 && calls < target; k++) {
			if (pass == 0)
				s = 1 + 8 * k;
			else if (t_rand_below(256) == 0)
				s = large_sizes[t_rand_below(NLARGE)];
			else
				s = 1 + t_rand_below(16384);
			/* Dirty B blocks of this size, free them... */
			for (int j = 0; j < B; j++) {
				v[j] = f_malloc(s);
				T_ASSERT(v[j] != NULL);
				memset(v[j], 0xa5, f_usable(v[j]));
			}
			for (int j = 0; j < B; j++)
				f_free(v[j]);
			/* ... and calloc B again (so likely the same ones). */
			for (int j = 0; j < B; j++) {
				switch (j % 3) {
				case 0:
					v[j] = f_calloc(1, s);
					break;
				case 1:
					v[j] = f_calloc(s, 1);
					break;
				default:
					v[j] = s % 8 == 0 ? f_calloc(s / 8, 8)
							  : f_calloc(1, s);
					break;
				}
				T_ASSERT(v[j] != NULL);
				if (!is_zero(v[j], s))
					T_FAIL("calloc(%zu) = %p not zeroed", s,
					    v[j]);
				calls++;
			}
			for (int j = 0; j < B; j++) {
				memset(v[j], 0x3c, s);
				f_free(v[j]);
			}
		}
		pass++;
	}
	/* calloc(0, n) and calloc(n, 0) are like malloc(0). */
	v[0] = f_calloc(0, 100);
	v[1] = f_calloc(100, 0);
	T_ASSERT(v[0] != NULL && v[1] != NULL && v[0] != v[1]);
	f_free(v[0]);
	f_free(v[1]);
	printf("   %ju calloc calls after dirty frees: all zeroed\n",
	    (uintmax_t)calls);
}

/* ---------------------------------------------------------------- A.6 */

static size_t grid[256];
static size_t ngrid;

static void
grid_add(size_t s)
{
	for (size_t i = 0; i < ngrid; i++)
		if (grid[i] == s)
			return;
	T_ASSERT(ngrid < sizeof grid / sizeof grid[0]);
	grid[ngrid++] = s;
}

static int
cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* 0..64 KiB around powers of two and quarter steps, then 3 big ones. */
static void
make_grid(void)
{
	if (ngrid != 0)
		return;
	grid_add(0);
	for (unsigned k = 0; k <= 16; k++) {
		size_t p = (size_t)1 << k;

		grid_add(p - 1);
		grid_add(p);
		if (k < 16)
			grid_add(p + 1);
		if (k >= 2 && k < 16)
			for (size_t q = 1; q <= 3; q++)
				grid_add(p + q * p / 4);
	}
	qsort(grid, ngrid, sizeof grid[0], cmp_size);
	grid_add(100 << 10);
	grid_add(1 << 20);
	grid_add(8 << 20);
}

static void
realloc_pair(size_t a, size_t b, uint32_t tag)
{
	char *p = f_malloc(a), *q;
	size_t m = a < b ? a : b;

	T_ASSERT(p != NULL);
	fill(p, 0, a, tag);
	q = f_realloc(p, b);
	if (q == NULL)
		T_FAIL("realloc(%zu -> %zu) failed", a, b);
	if (!aligned(q, 16))
		T_FAIL("realloc(%zu -> %zu) = %p misaligned", a, b, (void *)q);
	T_GE(f_usable(q), b);
	T_PATTERN(q, 0, m, tag);
	/* The new tail is writable (all of it below 64 KiB of growth). */
	if (b - m <= 65536) {
		fill(q, m, b - m, tag);
		T_PATTERN(q, 0, b, tag);
	} else {
		fill(q, m, 65536, tag);
		fill(q, b - 4096, 4096, tag);
		T_PATTERN(q, 0, m + 65536, tag);
		T_PATTERN(q, b - 4096, 4096, tag);
	}
	f_free(q);
}

static void
test_realloc_grid(void)
{
	size_t nsmall, npairs = 0;
	uint32_t tag = 1;

	make_grid();
	nsmall = ngrid - 3;
	for (size_t i = 0; i < ngrid; i++)
		for (size_t j = 0; j < ngrid; j++) {
			/* Shrinking from a big block: a sample of targets. */
			if (i >= nsmall && j < nsmall && j % 8 != 0)
				continue;
			/* realloc(p, 0): test_realloc_null_and_zero. */
			if (grid[j] == 0)
				continue;
			realloc_pair(grid[i], grid[j], tag++);
			npairs++;
		}
	printf(
	    "   %zu sizes, %zu realloc pairs: contents kept\n", ngrid, npairs);
}

/* One block walked through the grid up, down and at random. */
static void
test_realloc_chain(void)
{
	const uint32_t tag = 99;
	size_t cur = 1, n, steps = 0;
	char *p, *q, *other[64] = {NULL};

	make_grid();
	t_seed();
	p = f_malloc(cur);
	T_ASSERT(p != NULL);
	fill(p, 0, cur, tag);
	for (unsigned round = 0; round < 3 * t_scale(1); round++) {
		for (size_t k = 0; k < 2 * ngrid; k++, steps++) {
			size_t idx = round == 0
			    ? (k < ngrid ? k : 2 * ngrid - 1 - k)
			    : t_rand_below(ngrid);

			n = grid[idx] == 0 ? 1 : grid[idx];
			/* Vary the neighbourhood: grow in place or move. */
			size_t o = t_rand_below(64);
			f_free(other[o]);
			other[o] = t_rand_below(2) ? f_malloc(t_rand_below(300))
						   : NULL;
			q = f_realloc(p, n);
			if (q == NULL)
				T_FAIL("realloc(%zu -> %zu) failed", cur, n);
			T_PATTERN(q, 0, cur < n ? cur : n, tag);
			if (n > cur)
				fill(q, cur, n - cur, tag);
			p = q;
			cur = n;
		}
	}
	T_PATTERN(p, 0, cur, tag);
	f_free(p);
	for (size_t o = 0; o < 64; o++)
		f_free(other[o]);
	printf("   %zu chained reallocs\n", steps);
}

static void
test_realloc_null_and_zero(void)
{
	long before, after;
	char *p;

	make_grid();
	for (size_t i = 0; i < ngrid; i++) {
		size_t n = grid[i];

		p = f_realloc(NULL, n);
		T_ASSERT(p != NULL);
		T_ASSERT(aligned(p, 16));
		T_GE(f_usable(p), n);
		memset(p, 0x77, f_usable(p));
		f_free(p);
	}
	/* realloc(p, 0) frees p: 20000 x 4 KiB must not stay resident. */
	before = t_rss_kib();
	for (int i = 0; i < 20000; i++) {
		p = f_malloc(4096 + (size_t)(i % 5) * 1000);
		T_ASSERT(p != NULL);
		memset(p, 1, 4096);
		errno = 1234;
		p = f_realloc(p, 0);
		if (p != NULL)
			T_FAIL(
			    "realloc(p, 0) returned %p, not NULL", (void *)p);
		T_EQ(errno, 1234);
	}
	after = t_rss_kib();
	printf("   realloc(p, 0) x 20000: RSS %ld -> %ld KiB\n", before, after);
	T_LT(after, before + 16 * 1024);
}

static void
test_reallocarray(void)
{
	char *p = f_reallocarray(NULL, 10, 10), *q;

	T_ASSERT(p != NULL);
	T_GE(f_usable(p), 100);
	fill(p, 0, 100, 5);
	q = f_reallocarray(p, 1000, 100);
	T_ASSERT(q != NULL);
	T_PATTERN(q, 0, 100, 5);
	fill(q, 100, 100000 - 100, 5);
	EXPECT_ENOMEM(f_reallocarray(q, SIZE_MAX / 2 + 1, 2), 0);
	EXPECT_ENOMEM(f_reallocarray(q, 3, SIZE_MAX / 3 + 1), 0);
	EXPECT_ENOMEM(f_reallocarray(q, (size_t)1 << 32, (size_t)1 << 32), 0);
	T_PATTERN(q, 0, 100000, 5);
	p = f_reallocarray(q, 7, 3);
	T_ASSERT(p != NULL);
	T_PATTERN(p, 0, 21, 5);
	f_free(p);
}

/* ---------------------------------------------------------------- A.7 */

static void
test_posix_memalign_einval(void)
{
	static const size_t bad[] = {0, 1, 2, 3, sizeof(void *) / 2, 5, 6, 7, 9,
	    12, 24, 40, 48, 96, 100, 4095, 4097, 12288, 3 << 20,
	    ((size_t)1 << 40) + 8, SIZE_MAX, SIZE_MAX / 2, SIZE_MAX - 7};
	static const size_t sizes[] = {0, 1, 100, 5000, 1 << 20};
	void *sentinel = (void *)(uintptr_t)0x5eed, *p;
	int rc;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
			p = sentinel;
			rc = f_posix_memalign(&p, bad[i], sizes[j]);
			if (rc != EINVAL || p != sentinel)
				T_FAIL("posix_memalign(align %#zx, %zu) = %d "
				       "(%s), *memptr %p",
				    bad[i], sizes[j], rc, strerror(rc), p);
		}
	/* A power-of-two alignment too big to satisfy: some error. */
	p = sentinel;
	rc = f_posix_memalign(&p, SIZE_MAX / 2 + 1, 1);
	T_ASSERT(rc == EINVAL || rc == ENOMEM);
	T_ASSERT(p == sentinel);
}

static const size_t asizes[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63,
    64, 65, 100, 127, 128, 129, 255, 256, 257, 500, 1000, 1023, 1024, 1025,
    2047, 2048, 2049, 4095, 4096, 4097, 8191, 8192, 8193, 10000, 16384, 16385,
    32768, 65535, 65536, 65537, 100000, 131072, 262144, 1 << 20};
#define NASIZES (sizeof asizes / sizeof asizes[0])

/*
 * How much of an aligned block to write: the whole usable size, unless
 * the allocator handed back a lot of slack (glibc's mmapped memalign
 * chunks keep the tail of the mapping), then the requested size plus
 * 64 KiB, and the last page up to the usable size.
 */
struct ablk {
	char *p;
	size_t n, usable, head;
	uint32_t tag;
};

static void
ablk_fill(struct ablk *b)
{
	size_t tail;

	b->head = b->usable <= b->n + 65536 ? b->usable : b->n + 65536;
	fill(b->p, 0, b->head, b->tag);
	tail = b->usable - b->head;
	if (tail > 4096)
		tail = 4096;
	fill(b->p, b->usable - tail, tail, b->tag);
}

static void
ablk_check(const struct ablk *b)
{
	size_t tail = b->usable - b->head;

	if (tail > 4096)
		tail = 4096;
	T_PATTERN(b->p, 0, b->head, b->tag);
	T_PATTERN(b->p, b->usable - tail, tail, b->tag);
}

static void
test_align_grid(void)
{
	struct ablk *v = f_malloc(3 * (NASIZES + 4) * sizeof *v);
	size_t nblocks = 0;
	uint32_t tag = 1;

	T_ASSERT(v != NULL);
	for (unsigned k = 3; k <= 21; k++) {
		size_t a = (size_t)1 << k, extra[4] = {a - 1, a, a + 1, 2 * a};
		size_t nv = 0;

		for (size_t i = 0; i < NASIZES + 4; i++) {
			size_t n = i < NASIZES ? asizes[i] : extra[i - NASIZES];
			void *p;

			for (int how = 0; how < 3; how++) {
				switch (how) {
				case 0:
					p = (void *)(uintptr_t)0x5eed;
					T_EQ(f_posix_memalign(&p, a, n), 0);
					break;
				case 1:
					p = f_aligned_alloc(a, n);
					break;
				default:
					p = f_memalign(a, n);
					break;
				}
				if (p == NULL || !aligned(p, a))
					T_FAIL("%s(align %zu, size %zu) = %p",
					    how == 0	   ? "posix_memalign"
						: how == 1 ? "aligned_alloc"
							   : "memalign",
					    a, n, p);
				v[nv].p = p;
				v[nv].n = n;
				v[nv].usable = f_usable(p);
				v[nv].tag = tag++;
				T_GE(v[nv].usable, n);
				ablk_fill(&v[nv]);
				nv++;
			}
		}
		/* All live at once: no block overlaps or hurts another. */
		for (size_t i = 0; i < nv; i++) {
			ablk_check(&v[i]);
			f_free(v[i].p);
		}
		nblocks += nv;
	}
	f_free(v);
	/* Alignments below sizeof(void *) for aligned_alloc / memalign. */
	for (size_t a = 1; a <= 4; a *= 2)
		for (size_t i = 0; i < NASIZES; i++) {
			char *p = f_aligned_alloc(a, asizes[i]);
			char *q = f_memalign(a, asizes[i]);

			T_ASSERT(p != NULL && q != NULL);
			T_GE(f_usable(p), asizes[i]);
			T_GE(f_usable(q), asizes[i]);
			memset(p, 1, asizes[i]);
			memset(q, 2, asizes[i]);
			f_free(p);
			f_free(q);
		}
	printf("   %zu aligned blocks, alignments 2^3..2^21\n", nblocks);
}

/* One 1 GiB-aligned small block per entry point: address space only. */
static void
test_align_1g(void)
{
#if SIZE_MAX > 0xffffffffu
	const size_t a = (size_t)1 << 30;

	for (int how = 0; how < 3; how++) {
		struct ablk b = {NULL, 100, 0, 0, 42};
		void *p = NULL;

		switch (how) {
		case 0:
			T_EQ(f_posix_memalign(&p, a, b.n), 0);
			break;
		case 1:
			p = f_aligned_alloc(a, b.n);
			break;
		default:
			p = f_memalign(a, b.n);
			break;
		}
		T_ASSERT(p != NULL);
		T_ASSERT(aligned(p, a));
		b.p = p;
		b.usable = f_usable(p);
		T_GE(b.usable, b.n);
		ablk_fill(&b);
		ablk_check(&b);
		f_free(p);
	}
#else
	t_skip("32-bit");
#endif
}

/*
 * kmem's pinned behaviour: pvalloc(0) is one page.  glibc 2.36 rounds
 * with "& -(pagesize - 1)", so its pvalloc(0) is memalign(page, 1) (24
 * usable bytes); pvalloc(n > 0) is rounded correctly.  The oracle gets
 * only the alignment check for pvalloc(0).
 */
static bool
pvalloc0_is_a_page(void)
{
	return getenv("KMEM_TEST_PRELOAD") != NULL;
}

static void
test_page_aligned(void)
{
	char *r;

	for (size_t i = 0; i < NASIZES; i++) {
		size_t n = asizes[i], rounded = (n + PS - 1) & ~(PS - 1);
		char *p = f_valloc(n), *q = f_memalign(PS, n);

		r = f_pvalloc(n);
		T_ASSERT(p != NULL && q != NULL && r != NULL);
		T_ASSERT(aligned(p, PS) && aligned(q, PS) && aligned(r, PS));
		T_GE(f_usable(p), n);
		T_GE(f_usable(q), n);
		T_GE(f_usable(r), rounded); /* pvalloc rounds up to a page */
		memset(p, 1, f_usable(p));
		memset(q, 2, f_usable(q));
		memset(r, 3, f_usable(r));
		f_free(p);
		f_free(q);
		f_free(r);
	}
	r = f_pvalloc(0);
	T_ASSERT(r != NULL && aligned(r, PS));
	printf("   pvalloc(0): usable %zu\n", f_usable(r));
	if (pvalloc0_is_a_page()) {
		T_GE(f_usable(r), 4096);
		T_GE(f_usable(r), PS);
	}
	memset(r, 4, f_usable(r));
	f_free(r);
}

/* ---------------------------------------------------------------- A.8 */

static void
usable_one(struct keep *k, size_t sz, uint32_t tag)
{
	size_t u;

	if (k->p != NULL) {
		T_BYTES(k->p, k->n, k->tag);
		f_free(k->p);
	}
	k->p = f_malloc(sz);
	T_ASSERT(k->p != NULL);
	u = f_usable(k->p);
	if (u < sz)
		T_FAIL("malloc_usable_size(malloc(%zu)) = %zu", sz, u);
	if (f_usable(k->p) != u)
		T_FAIL("usable size of %p not stable", (void *)k->p);
	if (!aligned(k->p, 16))
		T_FAIL("malloc(%zu) = %p not 16-aligned", sz, (void *)k->p);
	k->n = u;
	k->tag = tag;
	memset(k->p, bytetag(tag), u);
}

static void
test_usable_size(void)
{
	enum { RING = 64 };
	static const size_t more[] = {(1 << 20) - 1, (8 << 20) + 3, 33 << 20};
	struct keep ring[RING] = {{NULL, 0, 0}};
	size_t n, count = 0;

	T_EQ(f_usable(NULL), 0);
	for (n = 1; n <= 70000; n += n < 4096 ? 1 : 7, count++)
		usable_one(&ring[count % RING], n, (uint32_t)count);
	for (n = 0; n < NLARGE; n++, count++)
		usable_one(
		    &ring[count % RING], large_sizes[n], (uint32_t)count);
	for (n = 0; n < sizeof more / sizeof more[0]; n++, count++)
		usable_one(&ring[count % RING], more[n], (uint32_t)count);
	for (size_t i = 0; i < RING; i++) {
		T_BYTES(ring[i].p, ring[i].n, ring[i].tag);
		f_free(ring[i].p);
	}
	/* Other entry points: calloc, realloc (both ways). */
	for (size_t i = 0; i < NASIZES; i++) {
		size_t sz = asizes[i];
		char *p = f_calloc(1, sz), *q;

		T_ASSERT(p != NULL);
		T_GE(f_usable(p), sz);
		memset(p, 9, f_usable(p));
		q = f_realloc(p, sz * 2 + 1);
		T_ASSERT(q != NULL);
		T_GE(f_usable(q), sz * 2 + 1);
		memset(q, 8, f_usable(q));
		p = f_realloc(q, sz / 2 + 1);
		T_ASSERT(p != NULL);
		T_GE(f_usable(p), sz / 2 + 1);
		memset(p, 7, f_usable(p));
		f_free(p);
	}
	printf(
	    "   %zu sizes: usable >= requested, all of it writable\n", count);
}

/* glibc (and kmem) align every malloc(n) result to 16, even tiny ones. */
static void
test_malloc_align16(void)
{
	enum { N = 64 };
	void *v[N];

	for (size_t n = 0; n <= 4096; n++) {
		for (int i = 0; i < N; i++) {
			v[i] = f_malloc(n);
			if (v[i] == NULL || !aligned(v[i], 16))
				T_FAIL("malloc(%zu) = %p, not 16-aligned", n,
				    v[i]);
		}
		for (int i = 0; i < N; i++)
			f_free(v[i]);
		if (n >= 256)
			n += 15;
	}
}

static void
test_malloc_trim(void)
{
	enum { N = 2000 };
	struct keep *v = f_calloc(N, sizeof *v);
	int rc;

	T_ASSERT(v != NULL);
	for (size_t i = 0; i < N; i++) {
		v[i].n = 1 + (i * 37) % (i % 100 == 0 ? 300000 : 5000);
		v[i].tag = (uint32_t)i;
		v[i].p = f_malloc(v[i].n);
		T_ASSERT(v[i].p != NULL);
		fill(v[i].p, 0, v[i].n, v[i].tag);
	}
	for (size_t i = 0; i < N; i += 2) {
		f_free(v[i].p);
		v[i].p = NULL;
	}
	rc = f_malloc_trim(0);
	T_ASSERT(rc == 0 || rc == 1);
	rc = f_malloc_trim(1 << 20);
	T_ASSERT(rc == 0 || rc == 1);
	for (size_t i = 0; i < N; i++) {
		if (v[i].p != NULL) {
			T_PATTERN(v[i].p, 0, v[i].n, v[i].tag);
			f_free(v[i].p);
		}
		v[i].p = f_malloc(v[i].n);
		T_ASSERT(v[i].p != NULL);
		fill(v[i].p, 0, v[i].n, v[i].tag);
	}
	for (size_t i = 0; i < N; i++) {
		T_PATTERN(v[i].p, 0, v[i].n, v[i].tag);
		f_free(v[i].p);
	}
	f_free(v);
	rc = f_malloc_trim(0);
	T_ASSERT(rc == 0 || rc == 1);
	f_free(f_malloc(100));
}

/*
 * Reliability plan C20: a burst of small objects, all freed, then
 * malloc_trim(0): resident memory is back near where it started at once
 * (kmem: kmem_reap_all; glibc: the heap's top trimmed).  Pass: RSS within
 * 16 MiB of the baseline after freeing about 200 MiB, and malloc_trim
 * says memory was released.
 */
static void
test_malloc_trim_returns(void)
{
	enum { N = 1 << 21 }; /* 2 Mi objects of 16..256 bytes: ~270 MiB */
	void **v = f_malloc(N * sizeof *v);
	long base, peak, after;
	int rc;

	T_ASSERT(v != NULL);
	memset(v, 0, N * sizeof *v);
	base = t_rss_kib();
	for (size_t i = 0; i < N; i++) {
		v[i] = f_malloc(16 + (i % 16) * 16);
		T_ASSERT(v[i] != NULL);
		memset(v[i], 1, 16);
	}
	peak = t_rss_kib();
	for (size_t i = 0; i < N; i++)
		f_free(v[i]);
	rc = f_malloc_trim(0);
	after = t_rss_kib();
	printf("   RSS %ld KiB before, %ld KiB at the peak, %ld KiB after the "
	       "frees and malloc_trim (returned %d)\n",
	    base, peak, after, rc);
	T_GT(peak - base, 200 * 1024);
	T_LT(after - base, 16 * 1024);
	T_EQ(rc, 1);
	f_free(v);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	alarm(60);
	PS = (size_t)sysconf(_SC_PAGESIZE);
	printf("preload: %s\n",
	    getenv("KMEM_TEST_PRELOAD") != NULL
		? "kmem (KMEM_TEST_PRELOAD)"
		: "none / foreign (oracle rules)");
	T_RUN_IF(test_malloc_zero);
	T_RUN_IF(test_free_errno);
	T_RUN_IF(test_too_large);
	T_RUN_IF(test_calloc_overflow);
	T_RUN_IF(test_calloc_zeroed);
	T_RUN_IF(test_realloc_grid);
	T_RUN_IF(test_realloc_chain);
	T_RUN_IF(test_realloc_null_and_zero);
	T_RUN_IF(test_reallocarray);
	T_RUN_IF(test_posix_memalign_einval);
	T_RUN_IF(test_align_grid);
	T_RUN_IF(test_align_1g);
	T_RUN_IF(test_page_aligned);
	T_RUN_IF(test_usable_size);
	T_RUN_IF(test_malloc_align16);
	T_RUN_IF(test_malloc_trim);
	T_RUN_IF(test_malloc_trim_returns);
	return t_done();
}
