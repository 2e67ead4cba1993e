/*
 * pool_errors.c -- every bad input to pool(9) aborts with one line
 *     kmem: <call>(pool '<name>', <args>): <problem>
 * checked in a child process: puts of another pool's item (on-page
 * lookup: "belongs to pool"; off-page: "not an item of this pool"), of a
 * pointer inside an item or a page header ("not an item boundary"), of a
 * free item ("already free"); get flags without exactly one of PR_WAITOK
 * and PR_NOWAIT; pool_init with a bad alignment, an align_offset, an item
 * larger than the page; pool_destroy with a cache attached; uninitialised
 * pools; a caller's allocator with misaligned pages or a bad page size.
 * pool_destroy with items out and the hard-limit message only warn.
 */
#include <kmem/pool.h>

#include "internal/internal.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"
#include "t.h"

/* ---- a caller's allocator of 4096-byte pages ---- */

static size_t pa_misalign;

static void *
pa_alloc(struct pool *pp, int flags)
{
	char *b;

	(void)pp;
	(void)flags;
	b = aligned_alloc(4096, 8192);
	if (b == NULL)
		_exit(3);
	memset(b, 0, 8192);
	return b + pa_misalign;
}

static void
pa_free(struct pool *pp, void *v)
{
	(void)pp;
	free((char *)v - pa_misalign);
}

static struct pool_allocator pa4k = {pa_alloc, pa_free, 4096, 0, 0};

static void
mk(struct pool *pp, const char *name, size_t size, int flags)
{
	pool_init(pp, size, 0, 0, flags, name, NULL, IPL_NONE);
}

static void *
get(struct pool *pp)
{
	void *v = pool_get(pp, PR_NOWAIT);

	if (v == NULL)
		_exit(4);
	return v;
}

static void
expect(void (*fn)(void *), void *arg, const char *a, const char *b)
{
	char buf[8192];
	int status = t_child(fn, arg, buf, sizeof buf);

	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		T_FAIL("child did not abort (status %#x); stderr:\n%s",
		    (unsigned)status, buf);
	if (strncmp(buf, "kmem: ", 6) != 0)
		T_FAIL("message lacks the \"kmem: \" prefix:\n%s", buf);
	if (strstr(buf, a) == NULL || (b != NULL && strstr(buf, b) == NULL))
		T_FAIL("stderr lacks \"%s\" / \"%s\":\n%s", a, b ? b : "", buf);
	if (strchr(buf, '\n') != buf + strlen(buf) - 1)
		T_FAIL("not exactly one line:\n%s", buf);
	printf("   died as expected: %s", buf);
}

/* ---- puts of what is not a free item of this pool ---- */

/* On-page lookup finds another pool's header. */
static void
c_other_onpage(void *arg)
{
	struct pool a, b;

	(void)arg;
	mk(&a, "A", 32, 0);
	mk(&b, "B", 32, 0);
	pool_put(&b, get(&a));
}

/* Another pool, the destination's pages on-page and the item's off. */
static void
c_other_onpage_from_offpage(void *arg)
{
	struct pool a, b;

	(void)arg;
	mk(&a, "A", 32, PR_NOTOUCH);
	mk(&b, "B", 32, 0);
	pool_put(&b, get(&a));
}

/* Off-page (hashed) lookup: not one of its pages. */
static void
c_other_offpage(void *arg)
{
	struct pool a, b;

	(void)arg;
	mk(&a, "A", 32, 0);
	mk(&b, "B", 32, PR_NOTOUCH);
	(void)get(&b); /* B has a page, elsewhere */
	pool_put(&b, get(&a));
}

static void
c_other_offpage_empty(void *arg)
{
	struct pool a, b;

	(void)arg;
	mk(&a, "A", 1024, 0);
	mk(&b, "B", 1024, 0);
	pool_put(&b, get(&a));
}

/* Not pool memory at all (a zeroed page). */
static char zpage[8192] __attribute__((aligned(8192)));

static void
c_nonpool_onpage(void *arg)
{
	struct pool b;

	(void)arg;
	mk(&b, "B", 32, 0);
	pool_put(&b, zpage + 64);
}

static void
c_nonpool_noalign(void *arg)
{
	struct pool b;

	(void)arg;
	pa_misalign = 64;
	pool_init(&b, 32, 0, 0, PR_NOALIGN, "B", &pa4k, IPL_NONE);
	(void)get(&b);
	pool_put(&b, zpage + 64);
}

/* ---- not an item boundary ---- */

static void
c_interior_onpage(void *arg)
{
	struct pool a;

	(void)arg;
	mk(&a, "A", 32, 0);
	pool_put(&a, (char *)get(&a) + 1);
}

static void
c_interior_offpage(void *arg)
{
	struct pool a;

	(void)arg;
	mk(&a, "A", 64, PR_NOTOUCH);
	(void)get(&a);
	pool_put(&a, (char *)get(&a) + 8);
}

/* Inside the on-page header, before the first item. */
static void
c_in_header(void *arg)
{
	struct pool a;
	uintptr_t v;

	(void)arg;
	mk(&a, "A", 32, 0);
	v = (uintptr_t)get(&a);
	pool_put(&a,
	    (void *)((v & ~(uintptr_t)(kmem_prim_page_size() - 1)) +
		sizeof(void *)));
}

/*
 * In a batch (pool_cache's flush), after an item of the same page: the
 * page the previous put found is not taken on trust for the next.
 */
static void
c_batch_interior(void *arg)
{
	struct pool a;
	void *b[2];

	(void)arg;
	mk(&a, "A", 48, 0);
	b[0] = get(&a);
	b[1] = (char *)get(&a) + 16;
	kmemi_pool_put_batch(&a, b, 2);
}

static void
c_batch_double(void *arg)
{
	struct pool a;
	void *b[3];

	(void)arg;
	mk(&a, "A", 48, 0);
	b[0] = get(&a);
	b[1] = get(&a);
	b[2] = b[0];
	kmemi_pool_put_batch(&a, b, 3);
}

/* In the slack after the last item of a page. */
static void
c_in_slack(void *arg)
{
	struct pool a;
	char *v;

	(void)arg;
	pa_misalign = 0;
	pool_init(&a, 1000, 0, 0, PR_NOTOUCH, "A", &pa4k, IPL_NONE);
	v = get(&a); /* first page: colour 0, items at 0..3999 */
	pool_put(&a, v + 4000);
}

/* ---- double put ---- */

static void
c_double_onpage(void *arg)
{
	struct pool a;
	void *v, *w;

	(void)arg;
	mk(&a, "A", 32, 0);
	v = get(&a);
	w = get(&a);
	pool_put(&a, v);
	pool_put(&a, w);
	pool_put(&a, v);
}

static void
c_double_offpage(void *arg)
{
	struct pool a;
	void *v;

	(void)arg;
	mk(&a, "A", 1024, 0);
	(void)get(&a); /* keep the page */
	v = get(&a);
	pool_put(&a, v);
	pool_put(&a, v);
}

/* A never-allocated slot of a live page is free too. */
static void
c_never_got(void *arg)
{
	struct pool a;
	char *v;

	(void)arg;
	mk(&a, "A", 64, 0);
	v = get(&a);
	pool_put(&a, v + 64 * 5);
}

/* ---- bad arguments ---- */

static void
c_flags(void *arg)
{
	struct pool a;

	mk(&a, "A", 32, 0);
	(void)pool_get(&a, (int)(intptr_t)arg);
}

/* A cache hit must check the flags too: warm the cache first. */
static void
c_cache_flags(void *arg)
{
	pool_cache_t pc = pool_cache_init(
	    32, 0, 0, 0, "PC", NULL, IPL_NONE, NULL, NULL, NULL);

	pool_cache_put(pc, pool_cache_get(pc, PR_WAITOK));
	(void)pool_cache_get(pc, (int)(intptr_t)arg);
}

static void
c_align(void *arg)
{
	struct pool a;

	pool_init(&a, 32, (unsigned)(uintptr_t)arg, 0, 0, "A", NULL, IPL_NONE);
}

static void
c_align_offset(void *arg)
{
	struct pool a;

	(void)arg;
	pool_init(&a, 32, 16, 8, 0, "A", NULL, IPL_NONE);
}

static void
c_too_big_caller_page(void *arg)
{
	struct pool a;

	(void)arg;
	pool_init(&a, 4097, 0, 0, 0, "A", &pa4k, IPL_NONE);
}

static void
c_too_big_default(void *arg)
{
	struct pool a;

	(void)arg;
	pool_init(&a, (1u << 24) + 1, 0, 0, 0, "A", NULL, IPL_NONE);
}

static void
c_no_room_phinpage(void *arg)
{
	struct pool a;

	(void)arg;
	pool_init(&a, 4096, 0, 0, PR_PHINPAGE, "A", &pa4k, IPL_NONE);
}

static void
c_destroy_cached(void *arg)
{
	pool_cache_t pc;

	(void)arg;
	pc =
	    pool_cache_init(64, 0, 0, 0, "C", NULL, IPL_NONE, NULL, NULL, NULL);
	/* struct pool_cache starts with its pool. */
	pool_destroy((struct pool *)(void *)pc);
}

static void
c_uninit_get(void *arg)
{
	static struct pool z;

	(void)arg;
	(void)pool_get(&z, PR_WAITOK);
}

static void
c_uninit_put(void *arg)
{
	static struct pool z;

	(void)arg;
	pool_put(&z, zpage);
}

static void
c_destroy_twice(void *arg)
{
	struct pool a;

	(void)arg;
	mk(&a, "A", 32, 0);
	pool_destroy(&a);
	pool_destroy(&a);
}

static void
c_misaligned_page(void *arg)
{
	struct pool a;

	(void)arg;
	pa_misalign = 64;
	pool_init(&a, 64, 0, 0, 0, "A", &pa4k, IPL_NONE);
	(void)pool_get(&a, PR_WAITOK);
}

static void
c_bad_pagesz(void *arg)
{
	static struct pool_allocator pa = {pa_alloc, pa_free, 3000, 0, 0};
	struct pool a;

	(void)arg;
	pool_init(&a, 64, 0, 0, 0, "A", &pa, IPL_NONE);
}

static void
test_bad_puts(void)
{
	expect(c_other_onpage, NULL, "pool_put(pool 'B', ",
	    "item belongs to pool 'A'");
	expect(c_other_onpage_from_offpage, NULL, "pool_put(pool 'B', ",
	    "not an item of this pool");
	expect(c_other_offpage, NULL, "pool_put(pool 'B', ",
	    "not an item of this pool");
	expect(c_other_offpage_empty, NULL, "pool_put(pool 'B', ",
	    "not an item of this pool");
	expect(c_nonpool_onpage, NULL, "pool_put(pool 'B', ",
	    "not an item of this pool");
	expect(c_nonpool_noalign, NULL, "pool_put(pool 'B', ",
	    "not an item of this pool");
	expect(c_interior_onpage, NULL, "pool_put(pool 'A', ",
	    "not an item boundary");
	expect(c_interior_offpage, NULL, "pool_put(pool 'A', ",
	    "not an item boundary");
	expect(
	    c_in_header, NULL, "pool_put(pool 'A', ", "not an item boundary");
	expect(c_in_slack, NULL, "pool_put(pool 'A', ", "not an item boundary");
	expect(c_batch_interior, NULL, "pool_put(pool 'A', ",
	    "not an item boundary");
	expect(c_batch_double, NULL, "pool_put(pool 'A', ",
	    "item is already free (double put)");
	expect(c_double_onpage, NULL, "pool_put(pool 'A', ", "already free");
	expect(c_double_offpage, NULL, "pool_put(pool 'A', ", "already free");
	expect(c_never_got, NULL, "pool_put(pool 'A', ", "already free");
}

static void
test_bad_args(void)
{
	static const int badflags[] = {0, PR_WAITOK | PR_NOWAIT, PR_ZERO,
	    PR_LIMITFAIL, PR_NOWAIT | PR_WAITOK | PR_ZERO};

	for (size_t i = 0; i < sizeof badflags / sizeof badflags[0]; i++)
		expect(c_flags, (void *)(intptr_t)badflags[i],
		    "pool_get(pool 'A', flags ",
		    "exactly one of PR_WAITOK and PR_NOWAIT");
	for (size_t i = 0; i < sizeof badflags / sizeof badflags[0]; i++)
		expect(c_cache_flags, (void *)(intptr_t)badflags[i],
		    "pool_cache_get(cache 'PC', flags ",
		    "exactly one of PR_WAITOK and PR_NOWAIT");
	expect(c_align, (void *)(uintptr_t)3, "pool_init(pool 'A', ",
	    "not a power of two");
	expect(c_align, (void *)(uintptr_t)48, "pool_init(pool 'A', ",
	    "not a power of two");
	expect(c_align_offset, NULL, "pool_init(pool 'A', ",
	    "align_offset must be 0");
	expect(c_too_big_caller_page, NULL, "pool_init(pool 'A', size 4097",
	    "does not fit in a page of 4096 bytes");
	expect(c_too_big_default, NULL, "pool_init",
	    "larger than the largest page");
	expect(c_no_room_phinpage, NULL, "pool_init(pool 'A', ",
	    "no room for an item after the page header");
	expect(c_destroy_cached, NULL, "pool_destroy(pool 'C')",
	    "a pool_cache is still attached");
	expect(c_uninit_get, NULL, "pool_get(", "not an initialised pool");
	expect(c_uninit_put, NULL, "pool_put(", "not an initialised pool");
	expect(
	    c_destroy_twice, NULL, "pool_destroy(", "not an initialised pool");
	expect(c_misaligned_page, NULL, "pool_grow(pool 'A')",
	    "not aligned to its size 4096");
	expect(c_bad_pagesz, NULL, "pool_init",
	    "page size 3000 is not a power of two");
}

/* ---- warnings: the process goes on ---- */

static unsigned long leak_nfree;

static void
leak_free(struct pool *pp, void *v)
{
	leak_nfree++;
	pa_free(pp, v);
}

static void
c_destroy_items_out(void *arg)
{
	struct pool_allocator pa = {pa_alloc, leak_free, 4096, 0, 0};
	struct pool a;
	void *v[200];
	unsigned ipp, i;

	(void)arg;
	pa_misalign = 0;
	pool_init(&a, 128, 0, 0, 0, "A", &pa, IPL_NONE);
	ipp = a.pr_itemsperpage;
	for (i = 0; i < 3 * ipp; i++)
		v[i] = get(&a);
	/* Pages 0 and 2: one item out each; page 1 empty. */
	for (i = 1; i < 3 * ipp; i++)
		if (i != 2 * ipp)
			pool_put(&a, v[i]);
	pool_destroy(&a);
	/* Only the empty page went back. */
	fprintf(stderr, "freed %lu\n", leak_nfree);
	_exit(0);
}

static void
c_hardlimit_warning(void *arg)
{
	struct pool a;
	void *v[2];

	(void)arg;
	mk(&a, "H", 64, 0);
	pool_sethardlimit(&a, 2, "too many widgets", 60);
	v[0] = get(&a);
	v[1] = get(&a);
	if (pool_get(&a, PR_NOWAIT) != NULL)
		_exit(5);
	if (pool_get(&a, PR_WAITOK | PR_LIMITFAIL) != NULL)
		_exit(6); /* within the rate cap: no second line */
	pool_put(&a, v[0]);
	pool_put(&a, v[1]);
	pool_destroy(&a);
	_exit(0);
}

static void
test_warnings(void)
{
	char buf[8192];
	int status;

	status = t_child(c_destroy_items_out, NULL, buf, sizeof buf);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		T_FAIL("status %#x: %s", (unsigned)status, buf);
	printf("   %s", buf);
	T_ASSERT(strstr(buf,
		     "kmem: warning: pool_destroy(pool 'A'): 2 items "
		     "still out") != NULL);
	T_ASSERT(strstr(buf, "freed 1\n") != NULL);

	status = t_child(c_hardlimit_warning, NULL, buf, sizeof buf);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		T_FAIL("status %#x: %s", (unsigned)status, buf);
	printf("   %s", buf);
	T_ASSERT(
	    strcmp(buf, "kmem: warning: pool 'H': too many widgets\n") == 0);
}

int
main(void)
{
	T_RUN(test_bad_puts);
	T_RUN(test_bad_args);
	T_RUN(test_warnings);
	return t_done();
}
