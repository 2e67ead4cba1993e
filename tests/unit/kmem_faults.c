/*
 * kmem_faults.c -- kmem_alloc and friends when memory runs out where it
 * is rarely met: in the middle of kmem's set-up, and when the page map
 * needs a leaf (its 4 MiB of words for a 4 GiB region) the system will
 * not give.  Also the corners of the string and size helpers.
 *
 *   - set-up: the Nth request for memory fails, for every N up to what a
 *     whole set-up makes: the KM_NOSLEEP call that met it gets NULL (or
 *     a block, when the failure fell on something set-up can do
 *     without), the next call finishes the set-up, and kmem works;
 *     kmem_init() itself aborts with its report when nothing can be had;
 *   - the page map: with every leaf gone (the root cleared in a child,
 *     the leaves kept aside) and every request for memory failing, no
 *     large block, fast or slow, aligned or not, and no new pool page of
 *     a class can be handed out, and each is given back to kva (nothing
 *     leaks); with memory again, the leaves are made anew and the blocks
 *     are found by free;
 *   - KM_SLEEP through a passing refusal: retried, the block comes;
 *   - the metadata region: its registry full and unable to grow (the new
 *     run given back), growing twice; a class's cache that cannot be
 *     made for want of metadata (NULL), then can;
 *   - free(3)'s lookup of a pointer past the last object of a page.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include <kmem/kmem.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/meta.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"
#include "t.h"
#include "t_fault.h"

/* The stderr of the children that must exit 0. */
static char cbuf[8192];

/* A mix of sizes, written and freed: kmem works. */
static void
kmem_works(void)
{
	static const size_t sizes[] = {
	    8, 48, 200, 1000, 5000, 16384, 20000, 70000, 1 << 20};
	void *p[KMEM_ARRAY_SIZE(sizes)];
	size_t i;

	for (i = 0; i < KMEM_ARRAY_SIZE(sizes); i++) {
		p[i] = kmem_alloc(sizes[i], KM_SLEEP);
		memset(p[i], (int)i, sizes[i]);
	}
	for (i = 0; i < KMEM_ARRAY_SIZE(sizes); i++)
		kmem_free(p[i], sizes[i]);
}

/* ---- set-up ---- */

static void
c_count_setup(void *arg)
{
	(void)arg;
	kmem_prim_fault_set(0, false);
	kmem_init();
	fprintf(stderr, "%llu\n", (unsigned long long)kmem_prim_fault_calls());
}

static void
c_setup_nth(void *arg)
{
	uint64_t n = (uint64_t)(uintptr_t)arg;
	void *p;

	kmem_prim_fault_set(n, false);
	p = kmem_alloc(64, KM_NOSLEEP);
	T_GE(kmem_prim_fault_calls(), n); /* the failure was met */
	if (p != NULL)
		kmem_free(p, 64);
	/* Nothing fails any more: the set-up completes, kmem works. */
	T_ASSERT(kmem_size_cache(64) != NULL);
	kmem_works();
	T_EQ(kmem_usable_size(100), 112);
}

static void
c_setup_never(void *arg)
{
	(void)arg;
	kmem_prim_fault_set(1, true);
	T_ASSERT(kmem_alloc(64, KM_NOSLEEP) == NULL);
	T_ASSERT(kmem_size_cache(64) == NULL);
	T_ASSERT(kmemi_malloc_raw(64, 16) == NULL);
	/* The class tables need no memory. */
	T_EQ(kmem_usable_size(100), 112);
	kmem_init();
}

static void
test_setup_faults(void)
{
	char buf[256];
	uint64_t n, calls;
	int status;

	/* How many requests for memory a whole set-up makes. */
	status = t_child(c_count_setup, NULL, buf, sizeof buf);
	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	calls = strtoull(buf, NULL, 10);
	printf("   a set-up makes %llu requests for memory\n",
	    (unsigned long long)calls);
	T_GT(calls, 2);
	for (n = 1; n <= calls; n++)
		t_child_ok(
		    c_setup_nth, (void *)(uintptr_t)n, cbuf, sizeof cbuf);
	T_ASSERT(
	    t_expect_panic(c_setup_never, NULL, "kmem_init: out of memory"));
}

/* ---- the page map ---- */

#define NROOT (1u << PM_ROOT_BITS)
static uint32_t *saved_root[NROOT];

static void
roots_clear(void)
{
	unsigned i;

	for (i = 0; i < NROOT; i++)
		saved_root[i] = atomic_exchange(&kmemi_pm_root[i], NULL);
}

static void
roots_restore(void)
{
	unsigned i;

	for (i = 0; i < NROOT; i++)
		atomic_store(&kmemi_pm_root[i], saved_root[i]);
}

static size_t
kva_inuse(void)
{
	struct kmem_vmem_stats st;

	kmem_vmem_stats(kmemi_page_arena(&kmemi_dom0), &st);
	return st.vs_inuse;
}

static void
c_no_leaf(void *arg)
{
	void *keep[4], *p;
	size_t before;

	(void)arg;
	kmem_options_init();
	kmem_opts.purge_delay_ms = 3600000; /* kva keeps what is freed */
	kmem_init();
	/* Free space in kva, so that no request needs the system. */
	keep[0] = kmem_alloc(100, KM_SLEEP);
	keep[1] = kmem_alloc(20000, KM_SLEEP);
	keep[2] = kmem_alloc(1 << 20, KM_SLEEP);
	keep[3] = kmem_alloc(64, KM_SLEEP);
	kmem_free(kmem_alloc(8 << 20, KM_SLEEP), 8 << 20);
	before = kva_inuse();

	roots_clear();
	kmem_prim_fault_set(1, true);
	T_ASSERT(kmemi_malloc_raw(100000, 65536) == NULL); /* aligned */
	T_ASSERT(kmem_alloc(2 << 20, KM_NOSLEEP) == NULL); /* slow */
	T_ASSERT(kmem_alloc(12288, KM_NOSLEEP) == NULL);   /* a pool page */
	T_ASSERT(kmem_alloc(20000, KM_NOSLEEP) == NULL);   /* slow */
	T_ASSERT(kmem_alloc(20000, KM_NOSLEEP) == NULL);   /* fast, slow */
	T_LE(kva_inuse(), before); /* nothing kept (the caches may be reaped) */

	/*
	 * Memory again: the leaves are made anew, by the fast path (the
	 * block it took above went back to its quantum cache) and the
	 * slow ones.  (tests/unit/prim_faults.c has threads making one.)
	 */
	kmem_prim_fault_set(0, false);
	p = kmem_alloc(20000, KM_SLEEP);
	memset(p, 1, 20000);
	kmem_free(p, 20000);
	p = kmem_alloc(12288, KM_SLEEP);
	memset(p, 1, 12288);
	kmem_free(p, 12288);
	p = kmem_alloc(2 << 20, KM_SLEEP);
	memset(p, 1, 2 << 20);
	kmem_free(p, 2 << 20);
	/* The old leaves back: what was allocated before is found. */
	roots_restore();
	kmem_free(keep[0], 100);
	kmem_free(keep[1], 20000);
	kmem_free(keep[2], 1 << 20);
	kmem_free(keep[3], 64);
	kmem_works();
}

static void
test_page_map_leaves(void)
{
	t_child_ok(c_no_leaf, NULL, cbuf, sizeof cbuf);
}

/* ---- KM_SLEEP through a passing refusal ---- */

static void
c_sleep_retry(void *arg)
{
	pthread_t t;
	void *p;

	(void)arg;
	kmem_options_init();
	kmem_opts.vmem_sleep_retry_ms = 1;
	kmem_init();
	/* 64 MiB: kva must import; refused until the thread says not. */
	kmem_prim_fault_set(1, true);
	t_fault_off_after(30000000, &t);
	p = kmem_alloc(64 << 20, KM_SLEEP);
	T_EQ(pthread_join(t, NULL), 0);
	memset(p, 1, 64 << 20);
	kmem_free(p, 64 << 20);
}

static void
test_sleep_retry(void)
{
	t_child_ok(c_sleep_retry, NULL, cbuf, sizeof cbuf);
}

/* ---- the metadata region ---- */

#define NRUNS 600

/*
 * Runs of metadata until the registry is full and cannot grow: the run
 * that finds it so is given back, ENOMEM; then it grows, and grows again
 * (giving back its first copy).
 */
static void
c_meta_runs(void *arg)
{
	static void *runs[NRUNS];
	size_t n = 0, i;

	(void)arg;
	T_EQ(kmemi_meta_alloc(&kmemi_dom0, 0, VM_NOSLEEP, &runs[0]), ENOMEM);
	T_EQ(kmemi_meta_map(&kmemi_dom0, 0, &runs[0]), ENOMEM);
	for (;;) {
		T_LT(n, NRUNS);
		kmem_prim_fault_set(2, false); /* the run, then no registry */
		if (kmemi_meta_map(&kmemi_dom0, 4096, &runs[n]) != 0)
			break;
		n++;
	}
	T_EQ(kmem_prim_fault_calls(), 2);
	kmem_prim_fault_set(0, false);
	for (; n < NRUNS; n++) {
		T_EQ(kmemi_meta_map(&kmemi_dom0, 4096, &runs[n]), 0);
		T_ASSERT(kmemi_meta_owns(&kmemi_dom0, runs[n]));
	}
	for (i = 0; i < NRUNS; i++)
		kmemi_meta_unmap(&kmemi_dom0, runs[i], 4096);
}

/* A class's cache, made on first use, with no metadata to make it. */
static void
c_class_make_fails(void *arg)
{
	void *p;

	(void)arg;
	kmem_init();
	t_meta_exhaust();
	T_ASSERT(kmem_alloc(9000, KM_NOSLEEP) == NULL);
	kmem_prim_fault_set(0, false);
	p = kmem_alloc(9000, KM_NOSLEEP);
	T_ASSERT(p != NULL);
	kmem_free(p, 9000);
}

static void
test_metadata(void)
{
	t_child_ok(c_meta_runs, NULL, cbuf, sizeof cbuf);
	t_child_ok(c_class_make_fails, NULL, cbuf, sizeof cbuf);
}

/* ---- helpers' corners ---- */

static void
c_asprintf_bad(void *arg)
{
	(void)arg;
	/* In the C locale no multibyte form exists: vsnprintf fails. */
	(void)kmem_asprintf("%ls", L"\u00e9t\u00e9");
}

static void
c_strings_nomem(void *arg)
{
	size_t n = 64 << 20, len = 0;
	char *big = malloc(n + 1);

	(void)arg;
	T_ASSERT(big != NULL);
	memset(big, 'x', n);
	big[n] = '\0';
	kmem_init();
	kmem_prim_fault_set(1, true);
	T_ASSERT(kmem_strdupsize(big, &len, KM_NOSLEEP) == NULL);
	T_EQ(len, 0);
	T_ASSERT(kmem_strndup(big, n, KM_NOSLEEP) == NULL);
	kmem_prim_fault_set(0, false);
	free(big);
}

static void
c_past_last(void *arg)
{
	char *p = kmem_alloc(48, KM_SLEEP);
	uintptr_t page = (uintptr_t)p & ~(uintptr_t)4095;

	(void)arg;
	/* kmem-00048's pages are 4 KiB: 85 objects, 16 bytes left over. */
	kmemi_free_unsized("free", (void *)(page + 85 * 48));
}

static void
c_wrapping_size(void *arg)
{
	void *p = kmem_alloc(100000, KM_SLEEP);

	(void)arg;
	kmem_free(p, SIZE_MAX - 100);
}

static void
test_corners(void)
{
	char *p;

	T_ASSERT(t_expect_panic(
	    c_asprintf_bad, NULL, "kmem: kmem_asprintf(\"%ls\"): bad format"));
	t_child_ok(c_strings_nomem, NULL, cbuf, sizeof cbuf);
	T_ASSERT(t_expect_panic(c_past_last, NULL,
	    "): pointer not allocated by kmem (past the last object of a "
	    "page of cache kmem-00048)"));
	T_ASSERT(t_expect_panic(c_wrapping_size, NULL,
	    ") != allocated size 102400 (large block, page-rounded)"));
	/* Sizes that cannot be: no class, no block. */
	T_EQ(kmem_usable_size(SIZE_MAX - 10), 0);
	T_ASSERT(kmem_size_cache(0) == NULL);
	T_ASSERT(kmem_size_cache(KMEM_CACHE_MAX + 1) == NULL);
	/* More pages than a page-map word can count: refused at once. */
	T_ASSERT(kmemi_malloc_raw((size_t)1 << 41, 16) == NULL);
	/* free(3)'s path for an object: back to its cache. */
	p = kmem_alloc(40, KM_SLEEP);
	T_EQ(kmemi_usable_unsized("malloc_usable_size", p), 48);
	kmemi_free_unsized("free", p);
}

int
main(void)
{
	/* Set-up first: no kmem call in this process before it. */
	T_RUN(test_setup_faults);
	T_RUN(test_page_map_leaves);
	T_RUN(test_sleep_retry);
	T_RUN(test_metadata);
	T_RUN(test_corners);
	return t_done();
}
