/*
 * kmem.c -- unit tests of the kmem(9) front end (<kmem/kmem.h>):
 *
 *  - every size from 1 up to 4 * KMEM_CACHE_MAX (step 1 up to 2048, then
 *    every class boundary and page multiple +-1 and a random sample; all
 *    sizes with KMEM_TEST_SCALE >= 1): the alignment rule, the usable
 *    size (the class from the table below, or the size rounded to pages),
 *    the waste bound, the serving cache ("kmem-NNNNN", NULL past 16384),
 *    every usable byte writable, the free going back to the same cache
 *    (held objects and CPU-layer counters) and the next allocation of the
 *    same size on the same CPU getting the same pointer back (LIFO);
 *  - kmem_zalloc / kmem_intr_zalloc zeroed after dirty reuse, small and
 *    large;
 *  - KM_NOSLEEP: small and large succeed, sizes beyond the address space
 *    give NULL (kmem_intr_* the same);
 *  - strings: kmem_strdup, kmem_strdupsize, kmem_strndup, kmem_asprintf
 *    (small and large results), kmem_strfree (NULL included), each freed
 *    into the cache it came from;
 *  - kmem_tmpbuf_alloc / free at and around the stack buffer's size;
 *  - kmem_roundup_size;
 *  - a 100 000-object random mix plus 100 MiB of large blocks, all freed:
 *    after kmem_reap_all the kmem caches' objects out, the page arena's
 *    bytes in use and the RSS are back at their baselines;
 *  - large blocks: freed ones are reused at once (same address), kept
 *    across kmem_reap until purge_delay_ms, gone after kmem_reap_all.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/pool_impl.h"
#include "t.h"

static const size_t classes[] = {8, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192,
    224, 256, 272, 320, 384, 448, 512, 528, 640, 768, 896, 1024, 1040, 1280,
    1536, 1792, 2048, 2064, 2560, 3072, 3584, 4096, 4112, 4608, 5120, 5632,
    6144, 6656, 7168, 7680, 8192, 8208, 9216, 10240, 11264, 12288, 13312, 14336,
    15360, 16384};
#define NCLASSES (sizeof classes / sizeof classes[0])

static size_t PS; /* the page size */

/* Sanitizer builds keep shadow memory of what was touched. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define T_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(T_ASAN)
#define T_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(T_TSAN)
#define T_TSAN 1
#endif

/* The class serving n, 0 on the large path. */
static size_t
class_of(size_t n)
{
	size_t i;

	for (i = 0; i < NCLASSES; i++)
		if (classes[i] >= n)
			return classes[i];
	return 0;
}

static size_t
round_page(size_t n)
{
	return (n + PS - 1) & ~(PS - 1);
}

static size_t
expected_usable(size_t n)
{
	size_t c = class_of(n);

	return c != 0 ? c : round_page(n);
}

static struct kmem_pool_stats
pcstats(pool_cache_t pc)
{
	struct kmem_pool_stats st;

	T_ASSERT(pc != NULL);
	memset(&st, 0, sizeof st);
	T_EQ(kmem_pool_cache_stats(pc, &st), 0);
	return st;
}

/* Objects of the cache held by callers (out of the pool, not cached). */
static uint64_t
held(pool_cache_t pc)
{
	struct kmem_pool_stats st = pcstats(pc);

	T_GE(st.ps_nout, st.ps_cached_objects);
	return st.ps_nout - st.ps_cached_objects;
}

static uint64_t
cpu_ops(const struct kmem_pool_stats *st)
{
	return st->ps_cpuhit + st->ps_cpumiss;
}

/* Sum of ps_nout over every kmem cache. */
static uint64_t
kmem_nout(void)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < NCLASSES; i++)
		sum += pcstats(kmem_size_cache(classes[i])).ps_nout;
	return sum;
}

static uint64_t
kva_inuse(void)
{
	struct kmem_vmem_stats st;
	vmem_t *vm = kmemi_page_arena(&kmemi_dom0);

	T_ASSERT(vm != NULL);
	memset(&st, 0, sizeof st);
	T_EQ(kmem_vmem_stats(vm, &st), 0);
	T_EQ(strcmp(st.vs_name, "kva"), 0);
	return st.vs_inuse;
}

static uint64_t
rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	T_ASSERT(f != NULL);
	T_EQ(fscanf(f, "%lu %lu", &size, &resident), 2);
	fclose(f);
	return (uint64_t)resident * PS;
}

/* ---- the size classes ---- */

static void
test_class_table(void)
{
	size_t i;
	char want[32];

	T_EQ(classes[NCLASSES - 1], KMEM_CACHE_MAX);
	for (i = 0; i < NCLASSES; i++) {
		struct kmem_pool_stats st =
		    pcstats(kmem_size_cache(classes[i]));

		snprintf(want, sizeof want, "kmem-%05zu", classes[i]);
		T_EQ(strcmp(st.ps_name, want), 0);
		T_ASSERT(st.ps_cached);
		T_GE(st.ps_itemsize, classes[i]);
		if (i > 0)
			T_ASSERT(kmem_size_cache(classes[i]) !=
			    kmem_size_cache(classes[i - 1]));
	}
	T_ASSERT(kmem_size_cache(KMEM_CACHE_MAX + 1) == NULL);
	T_ASSERT(kmem_size_cache(SIZE_MAX) == NULL);
	T_EQ(kmem_usable_size(0), 0);
}

static void
check_size(size_t n, bool pinned)
{
	size_t usable = kmem_usable_size(n), c = class_of(n);
	pool_cache_t pc = kmem_size_cache(n);
	struct kmem_pool_stats st0, st1, st2;
	uint64_t h0 = 0;
	char want[32];
	unsigned char *p, *q;
	uintptr_t a;

	T_GE(usable, n);
	if (usable != expected_usable(n))
		T_FAIL("kmem_usable_size(%zu) = %zu, expected %zu", n, usable,
		    expected_usable(n));
	if (c != 0) {
		T_ASSERT(pc != NULL);
		st0 = pcstats(pc);
		snprintf(want, sizeof want, "kmem-%05zu", c);
		if (strcmp(st0.ps_name, want) != 0)
			T_FAIL("kmem_size_cache(%zu) is \"%s\", expected "
			       "\"%s\"",
			    n, st0.ps_name, want);
		T_ASSERT(pc == kmem_size_cache(c));
		h0 = st0.ps_nout - st0.ps_cached_objects;
		if (n >= 48 && (usable - n) >= usable / 4)
			T_FAIL("size %zu: class %zu wastes a quarter or more",
			    n, usable);
	} else {
		T_ASSERT(pc == NULL);
		T_GT(n, KMEM_CACHE_MAX);
	}

	p = kmem_alloc(n, KM_SLEEP);
	T_ASSERT(p != NULL);
	a = (uintptr_t)p;
	if (n < 16)
		T_EQ(a % 8, 0);
	else
		T_EQ(a % 16, 0);
	if (n % PS == 0)
		T_EQ(a % PS, 0);
	if (c != 0 && c % 64 == 0)
		T_EQ(a % 64, 0);
	/*
	 * Under the tools the bytes past n are a redzone (kmem(3), VALGRIND
	 * AND SANITIZERS): the object's own bytes only.
	 */
	if (t_annotated())
		usable = n;
	memset(p, 0x5a, usable);
	p[0] = (unsigned char)n;
	p[usable - 1] = (unsigned char)(n >> 8);
	if (c == 0) {
		kmem_free(p, n);
		return;
	}
	st1 = pcstats(pc);
	T_EQ(st1.ps_nout - st1.ps_cached_objects, h0 + 1);
	kmem_free(p, n);
	st2 = pcstats(pc);
	T_EQ(st2.ps_nout - st2.ps_cached_objects, h0);
	T_GT(cpu_ops(&st2), cpu_ops(&st1));

	/* LIFO on this CPU: the object just freed comes back. */
	q = kmem_alloc(n, KM_SLEEP);
	if (q != p && !pinned) {
		/* Migrated between the calls?  Once more. */
		kmem_free(q, n);
		p = kmem_alloc(n, KM_SLEEP);
		kmem_free(p, n);
		q = kmem_alloc(n, KM_SLEEP);
	}
	if (q != p)
		T_FAIL("size %zu: freed %p, next allocation %p", n, (void *)p,
		    (void *)q);
	kmem_free(q, n);
}

static int
cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_every_size(void)
{
	const size_t top = 4 * KMEM_CACHE_MAX;
	bool all = t_scale(1000) >= 1000 && !t_under_valgrind();
	size_t *v, nv = 0, cap = 16384, n, i, k;
	cpu_set_t saved;
	bool pinned = t_pin_here(&saved);

	if (!pinned)
		printf("   (not pinned to a CPU: LIFO checks may retry)\n");
	v = malloc(cap * sizeof *v);
	T_ASSERT(v != NULL);
	if (!all) {
		for (i = 0; i < NCLASSES; i++)
			for (k = 0; k < 3; k++)
				v[nv++] = classes[i] - 1 + k;
		for (n = PS; n <= top + PS; n += PS)
			for (k = 0; k < 3; k++)
				v[nv++] = n - 1 + k;
		for (k = 0; k < t_scale(2000) && nv < cap; k++)
			v[nv++] = 2049 + t_rand_below(top - 2048);
		v[nv++] = top;
		qsort(v, nv, sizeof *v, cmp_size);
	}
	for (n = 1; n <= 2048; n++)
		check_size(n, pinned);
	if (all) {
		for (n = 2049; n <= top; n++)
			check_size(n, pinned);
		printf("   sizes 1..%zu, every one\n", top);
	} else {
		for (i = 0; i < nv; i++)
			if (v[i] > 2048 && v[i] <= top &&
			    (i == 0 || v[i] != v[i - 1]))
				check_size(v[i], pinned);
		printf("   sizes 1..2048 and %zu sampled up to %zu\n", nv, top);
	}
	free(v);
	if (pinned)
		t_unpin(&saved);
}

/* Many live objects of one size: distinct, aligned, not overlapping. */
static void
test_no_overlap(void)
{
	enum { N = 300 };
	static const size_t sizes[] = {
	    1, 8, 9, 24, 48, 100, 640, 4096, 16384, 16385, 65536, 70000};
	unsigned char *p[N];
	size_t s, i, j, n;

	for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		n = sizes[s];
		for (i = 0; i < N; i++) {
			p[i] = kmem_alloc(n, KM_SLEEP);
			memset(p[i], (int)(i & 0xff), n);
		}
		for (i = 0; i < N; i++) {
			for (j = 0; j < n; j++)
				if (p[i][j] != (unsigned char)(i & 0xff))
					T_FAIL("size %zu: object %zu byte %zu "
					       "overwritten",
					    n, i, j);
			kmem_free(p[i], n);
		}
	}
}

/* ---- zeroing ---- */

static void
check_zero(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != 0)
			T_FAIL("zalloc(%zu): byte %zu is 0x%02x", n, i, p[i]);
}

static void
test_zalloc_dirty(void)
{
	static const size_t sizes[] = {1, 7, 8, 16, 33, 64, 100, 255, 512, 1000,
	    2048, 4095, 4096, 8000, 16384, 16385, 40000, 65536, 65537, 100000,
	    1u << 20, 3u << 20};
	size_t s, i, n;
	unsigned char *p;

	for (s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		n = sizes[s];
		for (i = 0; i < 6; i++) {
			if (i & 1)
				p = kmem_intr_zalloc(n, KM_SLEEP);
			else
				p = kmem_zalloc(
				    n, i & 2 ? KM_NOSLEEP : KM_SLEEP);
			T_ASSERT(p != NULL);
			check_zero(p, n);
			/* Dirty the whole usable size for the next round. */
			memset(
			    p, 0xa5, t_annotated() ? n : kmem_usable_size(n));
			if (i & 1)
				kmem_intr_free(p, n);
			else
				kmem_free(p, n);
		}
	}
}

/* ---- KM_NOSLEEP and the interrupt names ---- */

static void
test_nosleep(void)
{
	static const size_t ok[] = {
	    1, 64, 4096, 16384, 16385, 100000, 1u << 20};
	const size_t huge[] = {SIZE_MAX, SIZE_MAX - 1, SIZE_MAX / 2,
	    SIZE_MAX / 2 + 1, SIZE_MAX - PS + 1, SIZE_MAX - PS + 2,
	    SIZE_MAX - 2 * PS, (size_t)1 << 63, ((size_t)1 << 62) + 1};
	size_t i;
	void *p;

	for (i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		p = kmem_alloc(ok[i], KM_NOSLEEP);
		T_ASSERT(p != NULL);
		memset(p, 1, ok[i]);
		kmem_free(p, ok[i]);
		p = kmem_intr_alloc(ok[i], KM_NOSLEEP);
		T_ASSERT(p != NULL);
		memset(p, 1, ok[i]);
		kmem_intr_free(p, ok[i]);
		p = kmem_intr_alloc(ok[i], KM_SLEEP);
		T_ASSERT(p != NULL);
		memset(p, 1, ok[i]);
		kmem_intr_free(p, ok[i]);
	}
	for (i = 0; i < sizeof huge / sizeof huge[0]; i++) {
		if (kmem_alloc(huge[i], KM_NOSLEEP) != NULL)
			T_FAIL(
			    "kmem_alloc(%zu, KM_NOSLEEP) is not NULL", huge[i]);
		if (kmem_zalloc(huge[i], KM_NOSLEEP) != NULL)
			T_FAIL("kmem_zalloc(%zu, KM_NOSLEEP) is not NULL",
			    huge[i]);
		if (kmem_intr_alloc(huge[i], KM_NOSLEEP) != NULL)
			T_FAIL("kmem_intr_alloc(%zu, KM_NOSLEEP) is not NULL",
			    huge[i]);
		if (kmem_intr_zalloc(huge[i], KM_NOSLEEP) != NULL)
			T_FAIL("kmem_intr_zalloc(%zu, KM_NOSLEEP) is not NULL",
			    huge[i]);
	}
	/* Still working afterwards. */
	p = kmem_alloc(200000, KM_NOSLEEP);
	T_ASSERT(p != NULL);
	kmem_free(p, 200000);
}

/* kmem_intr_free of kmem_alloc memory and the reverse: the same thing. */
static void
test_intr_same_cache(void)
{
	static const size_t sizes[] = {8, 100, 2000, 16384, 30000, 300000};
	size_t i;
	void *p;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		pool_cache_t pc = kmem_size_cache(sizes[i]);
		uint64_t h0 = pc != NULL ? held(pc) : 0;

		p = kmem_intr_alloc(sizes[i], KM_SLEEP);
		if (pc != NULL)
			T_EQ(held(pc), h0 + 1);
		kmem_free(p, sizes[i]);
		if (pc != NULL)
			T_EQ(held(pc), h0);
		p = kmem_alloc(sizes[i], KM_SLEEP);
		kmem_intr_free(p, sizes[i]);
		if (pc != NULL)
			T_EQ(held(pc), h0);
	}
}

/* ---- strings ---- */

static void
check_str_freed(size_t len, uint64_t h0)
{
	pool_cache_t pc = kmem_size_cache(len + 1);

	if (pc != NULL)
		T_EQ(held(pc), h0);
}

static uint64_t
str_held(size_t len)
{
	pool_cache_t pc = kmem_size_cache(len + 1);

	return pc != NULL ? held(pc) : 0;
}

static void
test_strings(void)
{
	static const size_t lens[] = {
	    0, 1, 7, 8, 15, 47, 100, 4095, 16382, 16383, 16384, 20000, 70000};
	size_t i, k, len, got;
	char *big, *s, *t;
	uint64_t h0;

	big = malloc(70001);
	T_ASSERT(big != NULL);
	for (k = 0; k < 70000; k++)
		big[k] = (char)('a' + k % 26);
	big[70000] = '\0';
	for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		len = lens[i];
		s = big + 70000 - len; /* a string of len bytes */

		h0 = str_held(len);
		t = kmem_strdup(s, KM_SLEEP);
		T_ASSERT(t != NULL && t != s);
		T_EQ(strlen(t), len);
		T_EQ(memcmp(t, s, len + 1), 0);
		if (kmem_size_cache(len + 1) != NULL)
			T_EQ(str_held(len), h0 + 1);
		kmem_strfree(t);
		check_str_freed(len, h0);

		got = 0;
		t = kmem_strdupsize(s, &got, KM_NOSLEEP);
		T_ASSERT(t != NULL);
		T_EQ(got, len + 1);
		T_EQ(memcmp(t, s, len + 1), 0);
		kmem_strfree(t);
		check_str_freed(len, h0);

		/* strndup: shorter, equal and longer limits. */
		for (k = 0; k < 4; k++) {
			size_t maxlen = k == 0 ? len / 2
			    : k == 1	       ? len
			    : k == 2	       ? len + 1
					       : SIZE_MAX;
			size_t want = len < maxlen ? len : maxlen;

			h0 = str_held(want);
			t = kmem_strndup(s, maxlen, KM_SLEEP);
			T_ASSERT(t != NULL);
			T_EQ(strlen(t), want);
			T_EQ(memcmp(t, s, want), 0);
			T_EQ(t[want], '\0');
			if (kmem_size_cache(want + 1) != NULL)
				T_EQ(str_held(want), h0 + 1);
			kmem_strfree(t);
			check_str_freed(want, h0);
		}

		/* asprintf of a long %s. */
		h0 = str_held(len + 3);
		t = kmem_asprintf("<%s>%d", s, 7);
		T_ASSERT(t != NULL);
		T_EQ(strlen(t), len + 3);
		T_EQ(t[0], '<');
		T_EQ(memcmp(t + 1, s, len), 0);
		T_EQ(strcmp(t + 1 + len, ">7"), 0);
		kmem_strfree(t);
		check_str_freed(len + 3, h0);
	}

	/* strndup reads no further than maxlen: a buffer with no NUL. */
	{
		char raw[5] = {'a', 'b', 'c', 'd', 'e'};

		t = kmem_strndup(raw, sizeof raw, KM_SLEEP);
		T_EQ(strcmp(t, "abcde"), 0);
		kmem_strfree(t);
		t = kmem_strndup(raw, 0, KM_SLEEP);
		T_EQ(strcmp(t, ""), 0);
		kmem_strfree(t);
	}

	/* Formats. */
	t = kmem_asprintf("%d %s %.2f %x %c %zu %%", -42, "abc", 3.5, 255u, 'z',
	    (size_t)123456789);
	T_ASSERT(t != NULL);
	T_EQ(strcmp(t, "-42 abc 3.50 ff z 123456789 %"), 0);
	kmem_strfree(t);
	t = kmem_asprintf("%s", "");
	T_ASSERT(t != NULL);
	T_EQ(strcmp(t, ""), 0);
	kmem_strfree(t);
	t = kmem_asprintf("%f|%s|%d", 1.25, big, 99);
	T_ASSERT(t != NULL);
	T_EQ(strlen(t), 9 + 70000 + 3);
	T_EQ(strncmp(t, "1.250000|", 9), 0);
	T_EQ(memcmp(t + 9, big, 70000), 0);
	T_EQ(strcmp(t + 9 + 70000, "|99"), 0);
	kmem_strfree(t);
	/* Exactly at the last class and just past it. */
	t = kmem_asprintf("%.*s", 16383, big);
	T_EQ(strlen(t), 16383);
	kmem_strfree(t);
	t = kmem_asprintf("%.*s", 16384, big);
	T_EQ(strlen(t), 16384);
	kmem_strfree(t);

	kmem_strfree(NULL);
	free(big);
}

/* ---- tmpbuf ---- */

static void
test_tmpbuf(void)
{
	char stack[128];
	static const size_t sizes[] = {
	    1, 64, 127, 128, 129, 1000, 16384, 20000, 200000};
	size_t i;
	void *p;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i];
		pool_cache_t pc = kmem_size_cache(n);
		uint64_t h0 = pc != NULL ? held(pc) : 0;

		p = kmem_tmpbuf_alloc(n, stack, sizeof stack, KM_SLEEP);
		T_ASSERT(p != NULL);
		if (n <= sizeof stack) {
			T_ASSERT(p == stack);
			if (pc != NULL)
				T_EQ(held(pc), h0);
		} else {
			T_ASSERT(p != stack);
			if (pc != NULL)
				T_EQ(held(pc), h0 + 1);
		}
		memset(p, 0x77, n);
		kmem_tmpbuf_free(p, n, stack);
		if (pc != NULL)
			T_EQ(held(pc), h0);

		/* No stack buffer at all: always the heap. */
		p = kmem_tmpbuf_alloc(n, NULL, 0, KM_NOSLEEP);
		T_ASSERT(p != NULL);
		memset(p, 0x77, n);
		kmem_tmpbuf_free(p, n, NULL);
		if (pc != NULL)
			T_EQ(held(pc), h0);
	}
}

/* ---- kmem_roundup_size ---- */

static void
test_roundup(void)
{
	size_t n;

	for (n = 1; n <= 70000; n++) {
		size_t r = kmem_roundup_size(n);

		if (r % 8 != 0 || r < n || r - n >= 8)
			T_FAIL("kmem_roundup_size(%zu) = %zu", n, r);
	}
	T_EQ(kmem_roundup_size(8), 8);
	T_EQ(kmem_roundup_size(9), 16);
	T_EQ(kmem_roundup_size(1u << 20), 1u << 20);
}

/* ---- memory goes back ---- */

static size_t
random_size(void)
{
	uint64_t r = t_rand_below(1000);

	if (r < 900)
		return 1 + t_rand_below(256);
	if (r < 990)
		return 257 + t_rand_below(KMEM_CACHE_MAX - 256);
	return KMEM_CACHE_MAX + 1 + t_rand_below(150000);
}

struct blk {
	unsigned char *p;
	size_t n;
};

static void
test_leak_and_rss(void)
{
	const size_t nsmall = t_scale(100000);
	const size_t nlarge = t_under_valgrind() ? 20 : 200;
	const size_t lsize = 512 * 1024;
	size_t nall = nsmall + nlarge, i, j;
	uint64_t nout0, inuse0, rss0, rss1, rss2, peak_inuse;
	struct blk *b, tmp;
	void *w;

	b = malloc(nall * sizeof *b);
	T_ASSERT(b != NULL);
	memset(b, 0, nall * sizeof *b);

	w = kmem_alloc(64, KM_SLEEP);
	kmem_free(w, 64);
	kmem_reap_all();
	nout0 = kmem_nout();
	inuse0 = kva_inuse();
	rss0 = rss_bytes();
	printf("   baseline: kmem objects out %" PRIu64 ", kva in use %" PRIu64
	       ", rss %" PRIu64 " KiB\n",
	    nout0, inuse0, rss0 / 1024);

	for (i = 0; i < nall; i++) {
		b[i].n = i < nsmall ? random_size() : lsize;
		b[i].p = kmem_alloc(b[i].n, KM_SLEEP);
		memset(b[i].p, (int)(i & 0xff), b[i].n);
	}
	rss1 = rss_bytes();
	peak_inuse = kva_inuse();
	T_GE(peak_inuse, inuse0 + nlarge * lsize);
	/* Free in random order, checking each object was left alone. */
	for (i = nall; i > 1; i--) {
		j = t_rand_below(i);
		tmp = b[i - 1];
		b[i - 1] = b[j];
		b[j] = tmp;
	}
	for (i = 0; i < nall; i++) {
		unsigned char c = b[i].p[0];

		T_EQ(b[i].p[b[i].n - 1], c);
		T_EQ(b[i].p[b[i].n / 2], c);
		kmem_free(b[i].p, b[i].n);
	}
	kmem_reap_all();
	rss2 = rss_bytes();
	printf("   peak: kva in use %" PRIu64 ", rss %" PRIu64
	       " KiB; after kmem_reap_all: kva in use %" PRIu64 ", rss %" PRIu64
	       " KiB\n",
	    peak_inuse, rss1 / 1024, kva_inuse(), rss2 / 1024);
	T_EQ(kmem_nout(), nout0);
	T_EQ(kva_inuse(), inuse0);
	if (!t_under_valgrind()) {
		T_GE(rss1, rss0 + (64u << 20));
#if defined(T_ASAN)
		/* ASan's shadow of what was touched stays: 1/8 of it. */
		T_LE(rss2, rss0 + (6u << 20) + peak_inuse / 8);
#elif defined(T_TSAN)
		/* TSan's shadow (4x and more) stays: nothing to check. */
#else
		T_LE(rss2, rss0 + (6u << 20));
#endif
	}
	free(b);
}

static void
test_large_reuse(void)
{
	static const size_t sizes[] = {65537, 100000, 1u << 20, 2u << 20};
	struct timespec ts = {1, 300 * 1000 * 1000};
	uint64_t inuse0;
	size_t i, n;
	void *p, *q;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		n = sizes[i];
		kmem_reap_all();
		inuse0 = kva_inuse();
		p = kmem_alloc(n, KM_SLEEP);
		T_EQ((uintptr_t)p % PS, 0);
		T_GE(kva_inuse(), inuse0 + round_page(n));
		memset(p, 0x3c, n);
		kmem_free(p, n);
		q = kmem_alloc(n, KM_SLEEP);
		if (q != p)
			T_FAIL(
			    "size %zu: freed %p, next allocation %p", n, p, q);
		kmem_free(q, n);
		/* Kept across a plain reap while young. */
		kmem_reap();
		q = kmem_alloc(n, KM_NOSLEEP);
		T_ASSERT(q == p);
		kmem_free(q, n);
		kmem_reap_all();
		T_EQ(kva_inuse(), inuse0);
	}

	/* Past purge_delay_ms (1000 by default) a plain reap gives it back. */
	n = 1u << 20;
	kmem_reap_all();
	inuse0 = kva_inuse();
	p = kmem_alloc(n, KM_SLEEP);
	memset(p, 1, n);
	kmem_free(p, n);
	nanosleep(&ts, NULL);
	kmem_reap();
	T_EQ(kva_inuse(), inuse0);
}

int
main(void)
{
	t_seed();
	PS = (size_t)sysconf(_SC_PAGESIZE);
	kmem_init();
	kmem_init();
	T_EQ(kmem_debug_flags(), 0);
	T_RUN(test_class_table);
	T_RUN(test_every_size);
	T_RUN(test_no_overlap);
	T_RUN(test_zalloc_dirty);
	T_RUN(test_nosleep);
	T_RUN(test_intr_same_cache);
	T_RUN(test_strings);
	T_RUN(test_tmpbuf);
	T_RUN(test_roundup);
	T_RUN(test_large_reuse);
	T_RUN(test_leak_and_rss);
	return t_done();
}
