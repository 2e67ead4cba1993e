/*
 * vmem_qcache.c -- vmem quantum caches (vmem.c design section 6): every
 * size up to qcache_max is served by a pool_cache named "<arena>-<size>",
 * caches whose pages hold as many items are merged, allocations are
 * quantum-aligned, disjoint and inside the arena's spans, address 0 is
 * never handed out by a cache, a full arena first empties the caches,
 * and after everything is freed and reaped the arena's in-use bytes are
 * zero.  vmem_xfree of a cached allocation aborts ("use vmem_free").
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/internal.h"
#include "t.h"
#include "t_vmem.h"

struct seg {
	vmem_addr_t addr;
	vmem_size_t size; /* as asked */
	vmem_size_t span; /* rounded to the quantum */
};

static int
seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Sorted by address, no two overlap, all inside [lo, hi). */
static void
check_disjoint(struct seg *s, size_t n, vmem_addr_t lo, vmem_addr_t hi)
{
	size_t i;

	qsort(s, n, sizeof *s, seg_cmp);
	for (i = 0; i < n; i++) {
		T_GE(s[i].addr, lo);
		T_LE(s[i].addr + s[i].span, hi);
		if (i > 0 && s[i - 1].addr + s[i - 1].span > s[i].addr)
			T_FAIL("overlap: [%#jx, +%#jx) and [%#jx, +%#jx)",
			    (uintmax_t)s[i - 1].addr, (uintmax_t)s[i - 1].span,
			    (uintmax_t)s[i].addr, (uintmax_t)s[i].span);
	}
}

static char pr_buf[65536];
static size_t pr_len;

static void KMEM_PRINTF(1, 2) pr_capture(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(pr_buf + pr_len, sizeof pr_buf - pr_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		pr_len += (size_t)n;
	if (pr_len >= sizeof pr_buf)
		pr_len = sizeof pr_buf - 1;
}

/* The vmstat -C table, captured. */
static const char *
cache_table(void)
{
	pr_len = 0;
	pr_buf[0] = '\0';
	kmem_pool_cache_print_stats(pr_capture);
	return pr_buf;
}

/* A row for cache "name" in the table. */
static bool
has_cache(const char *table, const char *name)
{
	char pat[80];

	snprintf(pat, sizeof pat, "\n%s ", name);
	return strstr(table, pat) != NULL;
}

/*
 * Allocate "per" segments of every size 1..qmax (and a few above it),
 * check them, check the cache names, free everything, reap: in use 0.
 */
static void
exercise(const char *name, vmem_addr_t base, vmem_size_t size, vmem_size_t q,
    vmem_size_t qmax, unsigned per)
{
	vmem_t *vm = vmem_create(
	    name, base, size, q, NULL, NULL, NULL, qmax, VM_SLEEP, IPL_NONE);
	size_t nseg = (size_t)(qmax + 2 * q) * per, n = 0, i, nsizes = 0;
	struct seg *s = calloc(nseg, sizeof *s);
	vmem_size_t sz, pagesz, prev_ipp = 0, inuse = 0;
	const char *table;
	char cname[64];

	T_ASSERT(vm != NULL && s != NULL);
	for (sz = 1; sz <= qmax + 2 * q; sz++) {
		/* Large quanta: each multiple and its neighbours. */
		if (q > 16 && sz % q > 1 && sz % q != q - 1)
			continue;
		nsizes++;
		for (i = 0; i < per; i++) {
			vmem_addr_t a = 0;

			T_EQ(vmem_alloc(vm, sz, VM_NOSLEEP, &a), 0);
			T_EQ(a & (q - 1), 0);
			T_NE(a, 0);
			s[n].addr = a;
			s[n].size = sz;
			s[n].span = vmem_roundup_size(vm, sz);
			inuse += s[n].span;
			n++;
		}
	}
	T_EQ(n, nsizes * per);
	T_LE(n, nseg);
	check_disjoint(s, n, base, base + size);
	/* Cached sizes come from cache pages: in use covers at least them. */
	T_GE(vmem_size(vm, VMEM_ALLOC), inuse);
	T_EQ(vmem_size(vm, VMEM_ALLOC) + vmem_size(vm, VMEM_FREE), size);

	/*
	 * One cache per multiple of the quantum, except that sizes whose
	 * pages hold as many items share the largest one's cache.  Pages
	 * are the smallest power of two above 3 x qcache_max.
	 */
	table = cache_table();
	for (pagesz = 1; pagesz <= 3 * qmax; pagesz <<= 1)
		;
	for (sz = qmax; sz >= q; sz -= q) {
		vmem_size_t ipp = pagesz / sz;

		snprintf(cname, sizeof cname, "%s-%zu", name, (size_t)sz);
		if (sz == qmax || ipp != prev_ipp) {
			if (!has_cache(table, cname))
				T_FAIL("no cache %s in:\n%s", cname, table);
		} else {
			if (has_cache(table, cname))
				T_FAIL(
				    "cache %s not merged:\n%s", cname, table);
		}
		prev_ipp = ipp;
	}
	snprintf(cname, sizeof cname, "%s-%zu", name, (size_t)(qmax + q));
	T_ASSERT(!has_cache(table, cname));

	/* Free in a random order; everything cached is given back on reap. */
	for (i = n; i > 1; i--) {
		size_t j = t_rand_below(i);
		struct seg t = s[i - 1];

		s[i - 1] = s[j];
		s[j] = t;
	}
	for (i = 0; i < n; i++)
		vmem_free(vm, s[i].addr, s[i].size);
	/* Cache pages still hold the freed segments until reaped. */
	T_GT(vmem_size(vm, VMEM_ALLOC), 0);
	kmem_reap_all();
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	T_EQ(vmem_size(vm, VMEM_FREE), size);
	T_EQ(t_vmem_stats(vm).vs_inuse, 0);
	T_EQ(t_vmem_stats(vm).vs_nbusy, 0);

	/* Reused after the reap. */
	{
		vmem_addr_t a;

		T_EQ(vmem_alloc(vm, 1, VM_SLEEP, &a), 0);
		T_GT(vmem_size(vm, VMEM_ALLOC), 0);
		vmem_free(vm, a, 1);
		kmem_reap_all();
		T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	}
	vmem_destroy(vm);
	free(s);
}

static void
test_qcache_q16(void)
{
	exercise("qc16", 0x100000, 16 << 20, 16, 16 * 16, 40);
}

static void
test_qcache_q4096(void)
{
	exercise("qcpg", 0x10000000, 256 << 20, 4096, 16 * 4096, 8);
}

static void
test_qcache_id(void)
{
	/* A quantum-1 ID arena, from 1. */
	exercise("qcid", 1, 1 << 20, 1, 16, 100);
}

/* Address 0 is a valid ID but never comes out of a cache (NULL). */
static void
test_qcache_no_zero(void)
{
	vmem_t *vm = vmem_create(
	    "qc0", 0, 4096, 1, NULL, NULL, NULL, 16, VM_SLEEP, IPL_NONE);
	vmem_addr_t *v = calloc(4096, sizeof *v);
	vmem_addr_t a;
	size_t n = 0, i, n16 = 0;

	T_ASSERT(vm != NULL && v != NULL);
	/* Fill with 1-ID allocations until the arena is full. */
	while (vmem_alloc(vm, 1, VM_NOSLEEP, &a) == 0) {
		T_NE(a, 0);
		T_LT(a, 4096);
		T_ASSERT(n < 4096);
		v[n++] = a;
	}
	printf("   %zu one-ID allocations from a 4096-ID arena\n", n);
	T_GT(n, 3 * 4096 / 4);
	for (i = 0; i < n; i++)
		vmem_free(vm, v[i], 1);
	/*
	 * The freed IDs sit in the size-1 cache; a full arena makes the
	 * caches give back what they hold, so 16-ID requests succeed.
	 */
	while (vmem_alloc(vm, 16, VM_NOSLEEP, &a) == 0) {
		T_NE(a, 0);
		v[n16++] = a;
	}
	printf("   then %zu sixteen-ID allocations\n", n16);
	T_GT(n16, 3 * 4096 / 16 / 4);
	for (i = 0; i < n16; i++)
		vmem_free(vm, v[i], 16);
	/* Above qcache_max: from the arena itself, where 0 is fine. */
	kmem_reap_all();
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	T_EQ(vmem_xalloc(vm, 17, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
		 VM_NOSLEEP | VM_BESTFIT, &a),
	    0);
	T_EQ(a, 0);
	vmem_xfree(vm, a, 17);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
	free(v);
}

/* qcache_max is clipped to 16 quanta and rounded down to the quantum. */
static void
test_qcache_clip(void)
{
	vmem_t *vm = vmem_create("qcclip", 0x1000, 1 << 20, 8, NULL, NULL, NULL,
	    64 * 8 + 3, VM_SLEEP, IPL_NONE);
	vmem_addr_t a, b;

	T_ASSERT(vm != NULL);
	/* 17 quanta: not cached, so vmem_xfree is fine. */
	T_EQ(vmem_alloc(vm, 17 * 8, VM_SLEEP, &a), 0);
	T_EQ(t_vmem_stats(vm).vs_nbusy, 1);
	vmem_xfree(vm, a, 17 * 8);
	/* 16 quanta: cached (a cache page, bigger than the request). */
	T_EQ(vmem_alloc(vm, 16 * 8, VM_SLEEP, &b), 0);
	T_GT(vmem_size(vm, VMEM_ALLOC), 16 * 8);
	T_ASSERT(has_cache(cache_table(), "qcclip-128"));
	T_ASSERT(!has_cache(cache_table(), "qcclip-136"));
	vmem_free(vm, b, 16 * 8);
	kmem_reap_all();
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
}

/* A caching arena importing from a parent. */
static void
test_qcache_import(void)
{
	vmem_t *parent = vmem_create("qcparent", 0x40000000, 64 << 20, 4096,
	    NULL, NULL, NULL, 0, VM_SLEEP, IPL_NONE);
	vmem_t *child = vmem_create("qcchild", 0, 0, 16, vmem_alloc, vmem_free,
	    parent, 256, VM_SLEEP, IPL_NONE);
	vmem_addr_t v[1000];
	vmem_size_t sz[1000];
	int i;

	T_ASSERT(parent != NULL && child != NULL);
	for (i = 0; i < 1000; i++) {
		sz[i] = 1 + t_rand_below(300);
		T_EQ(vmem_alloc(child, sz[i], VM_SLEEP, &v[i]), 0);
		T_EQ(v[i] & 15, 0);
		T_GE(v[i], 0x40000000);
		T_LT(v[i], 0x40000000 + (64 << 20));
	}
	T_GT(vmem_size(parent, VMEM_ALLOC), 0);
	for (i = 0; i < 1000; i++)
		vmem_free(child, v[i], sz[i]);
	kmem_reap_all();
	T_EQ(vmem_size(child, VMEM_ALLOC), 0);
	printf("   parent in use after reap: %zu\n",
	    (size_t)vmem_size(parent, VMEM_ALLOC));
	vmem_destroy(child);
	T_EQ(vmem_size(parent, VMEM_ALLOC), 0);
	vmem_destroy(parent);
}

static void
xfree_cached_child(void *arg)
{
	vmem_t *vm = vmem_create("qcmisfree", 0x1000, 1 << 20, 16, NULL, NULL,
	    NULL, 256, VM_SLEEP, IPL_NONE);
	vmem_addr_t a;

	(void)arg;
	T_EQ(vmem_alloc(vm, 48, VM_SLEEP, &a), 0);
	vmem_xfree(vm, a, 48);
}

static void
test_qcache_xfree_dies(void)
{
	T_ASSERT(
	    t_expect_death(xfree_cached_child, NULL, SIGABRT, "use vmem_free"));
	T_ASSERT(
	    t_expect_death(xfree_cached_child, NULL, SIGABRT, "qcmisfree"));
}

static void
destroy_child(void *arg)
{
	vmem_t *vm;
	vmem_addr_t a[64];
	int i;

	(void)arg;
	/* No traffic at all. */
	vm = vmem_create("qcd0", 0x1000, 1 << 20, 16, NULL, NULL, NULL, 256,
	    VM_SLEEP, IPL_NONE);
	T_ASSERT(vm != NULL);
	vmem_destroy(vm);
	/* Freed segments still cached: destroy gives them back quietly. */
	vm = vmem_create("qcd1", 0x1000, 1 << 20, 16, NULL, NULL, NULL, 256,
	    VM_SLEEP, IPL_NONE);
	for (i = 0; i < 64; i++)
		T_EQ(vmem_alloc(
			 vm, (vmem_size_t)(i % 16 + 1) * 16, VM_SLEEP, &a[i]),
		    0);
	for (i = 0; i < 64; i++)
		vmem_free(vm, a[i], (vmem_size_t)(i % 16 + 1) * 16);
	vmem_destroy(vm);
	/* The caches are gone from the table. */
	T_ASSERT(!has_cache(cache_table(), "qcd1-16"));
	T_ASSERT(!has_cache(cache_table(), "qcd1-256"));
}

static void
test_qcache_destroy(void)
{
	char buf[8192];
	int status = t_child(destroy_child, NULL, buf, sizeof buf);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || buf[0] != '\0')
		T_FAIL("status %#x, stderr:\n%s", status, buf);
}

/*
 * Quantum-cache pages at the very top of the address space: a page may end
 * at 2^64, where page + pagesz wraps (the fuzzer found pointer arithmetic
 * that did; UBSan flags it in the sanitizer build).  Every ID of the span
 * can be handed out through the caches and comes back.
 */
static void
test_qcache_top(void)
{
	const vmem_size_t span = 0x1000;
	vmem_t *vm = vmem_create("top", VMEM_ADDR_MAX - span + 1, span, 1, NULL,
	    NULL, NULL, 16, VM_SLEEP, IPL_NONE);
	static vmem_addr_t got[0x1000];
	size_t n = 0, i;
	vmem_addr_t a;

	T_ASSERT(vm != NULL);
	while (n < span && vmem_alloc(vm, 1, VM_NOSLEEP, &a) == 0) {
		T_GE(a, VMEM_ADDR_MAX - span + 1);
		got[n++] = a;
	}
	/* Cache pages hold 64 IDs; at most the pool's slack is unused. */
	T_GE(n, span - 64);
	T_ASSERT(vmem_whatis(VMEM_ADDR_MAX, NULL) == 0);
	for (i = 0; i < n; i++)
		vmem_free(vm, got[i], 1);
	kmem_reap_all();
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
}

int
main(void)
{
	t_seed();
	T_RUN(test_qcache_q16);
	T_RUN(test_qcache_q4096);
	T_RUN(test_qcache_id);
	T_RUN(test_qcache_no_zero);
	T_RUN(test_qcache_clip);
	T_RUN(test_qcache_import);
	T_RUN(test_qcache_xfree_dies);
	T_RUN(test_qcache_destroy);
	T_RUN(test_qcache_top);
	return t_done();
}
