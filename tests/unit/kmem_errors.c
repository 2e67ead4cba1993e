/*
 * kmem_errors.c -- the "Always checked" rows of docs/kmem-contract.md:
 * each bad call is made in a child process, which must die of SIGABRT
 * with exactly one stderr line starting "kmem: " that contains the
 * message the contract gives (pointers as %p, sizes in decimal):
 *
 *   size 0 to every allocating entry point; flags 0, 3, 4 and 0x10;
 *   kmem_free / kmem_intr_free of NULL and with size 0;
 *   large double frees (20 KiB, 20000, 64 KiB, 65537, 100000, 2 MiB);
 *   a large block freed with a size of another page count;
 *   a large free of an interior pointer, and of a static buffer (after
 *   kmem started; before, any one-line report);
 *   a small free with the size of a class whose cache was never made;
 *   KM_SLEEP beyond the address space (SIZE_MAX, 2^63, SIZE_MAX / 2,
 *   sizes that overflow when rounded to pages);
 *   KM_SLEEP while the OS refuses memory (fault injection switched on
 *   after start-up, large and small sizes, with KMEM_OPTIONS
 *   oom_wait_ms=100): "out of memory: the system refused SIZE bytes for
 *   MS ms", MS at least 100;
 *   KM_NOSLEEP while the OS refuses memory: NULL, no abort, and
 *   allocations work again once the fault injection is off;
 *   the same two with KMEM_OPTIONS=fault_from=1 set before kmem starts.
 *
 * The parent never calls kmem, so every child starts it afresh and reads
 * the KMEM_OPTIONS it sets itself.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kmem/kmem.h>

#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/prim.h"
#include "t.h"

static size_t PS;

/*
 * The child must abort with one "kmem: " line containing want; the text
 * after want is returned in rest (if not NULL).
 */
/* A child's end and stderr: SIGABRT, one "kmem: " line holding want. */
static const char *
check_report(int status, const char *buf, const char *want)
{
	const char *at;

	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		T_FAIL("child did not abort (status %#x), expected \"%s\"; "
		       "stderr:\n%s",
		    (unsigned)status, want, buf);
	if (strncmp(buf, "kmem: ", 6) != 0)
		T_FAIL("message lacks the \"kmem: \" prefix:\n%s", buf);
	if ((at = strstr(buf, want)) == NULL)
		T_FAIL("stderr lacks \"%s\":\n%s", want, buf);
	if (strchr(buf, '\n') != buf + strlen(buf) - 1)
		T_FAIL("not exactly one line:\n%s", buf);
	printf("   died as expected: %s", buf);
	return at;
}

static void
expect_rest(
    void (*fn)(void *), void *arg, const char *want, char *rest, size_t n)
{
	char buf[8192];
	int status = t_child(fn, arg, buf, sizeof buf);
	const char *at = check_report(status, buf, want);

	if (rest != NULL)
		snprintf(rest, n, "%s", at + strlen(want));
}

static void
expect(void (*fn)(void *), void *arg, const char *want)
{
	expect_rest(fn, arg, want, NULL, 0);
}

/* The OOM message ends "for MS ms": the time waited, at least min_ms. */
static void
expect_oom(void (*fn)(void *), void *arg, const char *want, unsigned min_ms)
{
	char rest[256], *end;
	unsigned long ms;

	expect_rest(fn, arg, want, rest, sizeof rest);
	if (strstr(want, "refused ") == NULL)
		return;
	/* want ends in "bytes for ": the number of ms follows. */
	ms = strtoul(rest, &end, 10);
	if (end == rest || strncmp(end, " ms", 3) != 0)
		T_FAIL("no \"MS ms\" after \"%s\": \"%s\"", want, rest);
	T_GE(ms, min_ms);
	T_LT(ms, min_ms + 5000);
}

/* The child must exit 0 with nothing on stderr. */
static void
expect_exit0(void (*fn)(void *), void *arg)
{
	char buf[8192];
	int status = t_child(fn, arg, buf, sizeof buf);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		T_FAIL("child status %#x; stderr:\n%s", (unsigned)status, buf);
	if (buf[0] != '\0')
		T_FAIL("child wrote to stderr:\n%s", buf);
}

/*
 * What a child does.  Children that free a pointer first write it to
 * report_fd, so the parent can build the expected message afterwards.
 */
struct call {
	int op;
	size_t size;  /* allocated */
	size_t fsize; /* given to free */
	size_t off;   /* added to the pointer freed */
	unsigned flags;
};

enum {
	OP_ALLOC,
	OP_ZALLOC,
	OP_INTR_ALLOC,
	OP_INTR_ZALLOC,
	OP_FREE_NULL,
	OP_INTR_FREE_NULL,
	OP_FREE_SIZE0,
	OP_DOUBLE_FREE,
	OP_WRONG_SIZE,
	OP_INTERIOR,
};

static int report_fd = -1;

static void
report(const void *p)
{
	if (write(report_fd, &p, sizeof p) != (ssize_t)sizeof p)
		_exit(5);
}

static void *
do_alloc(int op, size_t size, unsigned flags)
{
	switch (op) {
	case OP_ZALLOC:
		return kmem_zalloc(size, flags);
	case OP_INTR_ALLOC:
		return kmem_intr_alloc(size, flags);
	case OP_INTR_ZALLOC:
		return kmem_intr_zalloc(size, flags);
	default:
		return kmem_alloc(size, flags);
	}
}

static void
child(void *arg)
{
	const struct call *c = arg;
	char *p;

	switch (c->op) {
	case OP_ALLOC:
	case OP_ZALLOC:
	case OP_INTR_ALLOC:
	case OP_INTR_ZALLOC:
		p = do_alloc(c->op, c->size, c->flags);
		/* Only bad calls come here; a result means no abort. */
		printf("returned %p\n", (void *)p);
		return;
	case OP_FREE_NULL:
		kmem_free(NULL, c->fsize);
		return;
	case OP_INTR_FREE_NULL:
		kmem_intr_free(NULL, c->fsize);
		return;
	case OP_FREE_SIZE0:
		p = kmem_alloc(c->size, KM_SLEEP);
		report(p);
		kmem_free(p, 0);
		return;
	case OP_DOUBLE_FREE:
		p = kmem_alloc(c->size, KM_SLEEP);
		report(p);
		memset(p, 0x11, c->size);
		kmem_free(p, c->size);
		kmem_free(p, c->size);
		return;
	case OP_WRONG_SIZE:
		p = kmem_alloc(c->size, KM_SLEEP);
		report(p);
		kmem_free(p, c->fsize);
		return;
	case OP_INTERIOR:
		p = kmem_alloc(c->size, KM_SLEEP);
		report(p + c->off);
		kmem_free(p + c->off, c->fsize);
		return;
	}
}

/*
 * Run child(c), which reports a pointer P; it must abort with the message
 * fmt (a printf format taking P, then up to two sizes a and b).
 */
static void
expect_ptr(const struct call *c, const char *fmt, size_t a, size_t b)
{
	char buf[8192], want[512];
	int fd[2], status;
	void *p = NULL;

	T_EQ(pipe(fd), 0);
	report_fd = fd[1];
	status = t_child(child, (void *)c, buf, sizeof buf);
	close(fd[1]);
	report_fd = -1;
	if (read(fd[0], &p, sizeof p) != (ssize_t)sizeof p)
		T_FAIL("child reported no pointer (status %#x); stderr:\n%s",
		    (unsigned)status, buf);
	close(fd[0]);
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#endif
	snprintf(want, sizeof want, fmt, p, a, b);
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
	(void)check_report(status, buf, want);
}

/* ---- size 0 and flags ---- */

static const char *const alloc_names[] = {
    "kmem_alloc", "kmem_zalloc", "kmem_intr_alloc", "kmem_intr_zalloc"};

static void
test_size0(void)
{
	char want[256];
	int op;

	for (op = OP_ALLOC; op <= OP_INTR_ZALLOC; op++) {
		struct call c = {op, 0, 0, 0, KM_SLEEP};

		snprintf(want, sizeof want,
		    "kmem: %s(0): size 0 is not allowed", alloc_names[op]);
		expect(child, &c, want);
		c.flags = KM_NOSLEEP;
		expect(child, &c, want);
	}
}

static void
test_bad_flags(void)
{
	static const unsigned bad[] = {0, 3, 4, 0x10};
	static const size_t sizes[] = {64, 100000};
	char want[256];
	size_t i, s;
	int op;

	for (op = OP_ALLOC; op <= OP_INTR_ZALLOC; op++) {
		for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			for (s = 0; s < 2; s++) {
				struct call c = {op, sizes[s], 0, 0, bad[i]};

				snprintf(want, sizeof want,
				    "kmem: %s(%zu, 0x%x): need exactly one of "
				    "KM_SLEEP and KM_NOSLEEP",
				    alloc_names[op], sizes[s], bad[i]);
				expect(child, &c, want);
			}
		}
	}
}

/* ---- frees ---- */

static void
test_free_null(void)
{
	struct call c = {OP_FREE_NULL, 0, 64, 0, 0};

	expect(child, &c, "kmem: kmem_free(NULL, 64): NULL pointer");
	c.fsize = 100000;
	expect(child, &c, "kmem: kmem_free(NULL, 100000): NULL pointer");
	c.op = OP_INTR_FREE_NULL;
	c.fsize = 32;
	expect(child, &c, "kmem: kmem_intr_free(NULL, 32): NULL pointer");
}

static void
test_free_size0(void)
{
	static const size_t sizes[] = {64, 100000};
	size_t i;

	for (i = 0; i < 2; i++) {
		struct call c = {OP_FREE_SIZE0, sizes[i], 0, 0, 0};

		expect_ptr(
		    &c, "kmem: kmem_free(%p, 0): size 0 is not allowed", 0, 0);
	}
}

static void
test_large_double_free(void)
{
	static const size_t sizes[] = {
	    20 * 1024, 20000, 64 * 1024, 65537, 100000, 2u << 20};
	size_t i;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t n = sizes[i], bytes = (n + PS - 1) & ~(PS - 1);
		struct call c = {OP_DOUBLE_FREE, n, n, 0, 0};

		expect_ptr(&c,
		    "kmem: kmem_free(%p, %zu): double free (large block of %zu "
		    "bytes, arena kva)",
		    n, bytes);
	}
}

static void
test_large_wrong_size(void)
{
	static const size_t pairs[][2] = {{100000, 200000},
	    {100000, 100000 + 4096 + 4096}, {2u << 20, 1u << 20},
	    {20000, 16385 + 8192}, {1u << 20, (1u << 20) + 1}};
	size_t i;

	for (i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
		size_t n = pairs[i][0], f = pairs[i][1];
		struct call c = {OP_WRONG_SIZE, n, f, 0, 0};

		expect_ptr(&c,
		    "kmem: kmem_free(%p, %zu) != allocated size %zu (large "
		    "block, page-rounded)",
		    f, (n + PS - 1) & ~(PS - 1));
	}
}

static void
test_large_interior(void)
{
	static const size_t cases[][2] = {
	    {100000, 4096}, {2u << 20, 4096}, {20000, 4096}, {100000, 16}};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n = cases[i][0], off = cases[i][1];
		struct call c = {OP_INTERIOR, n, n, off, 0};

		expect_ptr(&c,
		    "kmem: kmem_free(%p, %zu): not the start of a live large "
		    "block (arena kva)",
		    n, 0);
	}
}

/* A large free of memory kmem never handed out (a static buffer). */
static char foreign[1 << 17] __attribute__((aligned(4096)));

static void
foreign_free(void *arg)
{
	void *p;

	if (arg != NULL) {
		/* kmem started, a large block live elsewhere. */
		p = kmem_alloc(100000, KM_SLEEP);
		memset(p, 0, 100000);
	}
	kmem_free(foreign, 100000);
}

/*
 * A small object freed with the size of a class that never allocated:
 * that class's cache was never made, so the pointer cannot be its.
 */
static void
c_never_made(void *arg)
{
	void *p = kmem_alloc(100, KM_SLEEP);

	(void)arg;
	kmem_free(p, 9000);
}

static void
test_free_never_made(void)
{
	expect(c_never_made, NULL,
	    ", 9000): pointer not allocated by kmem (with this size: cache "
	    "kmem-09216 has never allocated)");
}

static void
test_large_foreign(void)
{
	char want[256];

	snprintf(want, sizeof want,
	    "kmem: kmem_free(%p, 100000): not the start of a live large block "
	    "(arena kva)",
	    (void *)foreign);
	expect(foreign_free, foreign, want);
	/* Before kmem allocated anything: some one-line report. */
	snprintf(want, sizeof want,
	    "kmem: kmem_free(%p, 100000): ", (void *)foreign);
	expect(foreign_free, NULL, want);
}

/*
 * Two frees of one quantum-cached block at the same instant can both
 * pass the fast free's check (a load and a store, kmem_impl.h): the
 * block is then in the cache twice.  Made here without a race -- the
 * block's page-map word set back to live after its free, as the second
 * racing free would have found it -- the allocation that hands it out
 * again must report it.
 */
static void
large_racing_free(void *arg)
{
	void *p = kmem_alloc(32768, KM_SLEEP), *q;
	_Atomic uint32_t *w;

	(void)arg;
	kmem_free(p, 32768);
	w = kmemi_pm_word_get((uintptr_t)p);
	T_ASSERT(w != NULL);
	T_EQ(atomic_load(w), PM_FREED | 8u); /* 4 KiB pages: the test's own */
	atomic_store(w, PM_LIVE | 8u);
	q = kmem_alloc(32768, KM_SLEEP); /* the same block: the CPU's group */
	fprintf(stderr, "kmem_errors: %p, then %p: not reported\n", p, q);
}

static void
test_large_racing_free(void)
{
	char want[256];

	if (PS != 4096)
		t_skip("the page-map word of 32 KiB is set for 4 KiB pages");
	snprintf(want, sizeof want,
	    "double free (large block of 32768 bytes, arena kva; two frees at "
	    "once, found when it was reused)");
	expect_rest(large_racing_free, NULL, "kmem: block 0x", NULL, 0);
	expect_rest(large_racing_free, NULL, want, NULL, 0);
}

/* ---- KM_SLEEP beyond the address space ---- */

static void
sleep_huge(void *arg)
{
	const struct call *c = arg;

	(void)do_alloc(c->op, c->size, KM_SLEEP);
}

static void
test_sleep_huge(void)
{
	const size_t sizes[] = {SIZE_MAX, SIZE_MAX / 2 + 1, SIZE_MAX - PS + 2,
	    SIZE_MAX - PS + 1, (size_t)1 << 63};
	char want[256];
	size_t i;
	int op;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		for (op = OP_ALLOC; op <= OP_INTR_ZALLOC; op++) {
			struct call c = {op, sizes[i], 0, 0, KM_SLEEP};

			snprintf(want, sizeof want,
			    "kmem: %s(%zu, KM_SLEEP): size exceeds what kmem "
			    "can allocate",
			    alloc_names[op], sizes[i]);
			expect(sleep_huge, &c, want);
		}
	}
}

/* ---- the OS refusing memory ---- */

struct oom {
	const char *options; /* KMEM_OPTIONS, set before kmem starts */
	bool fault_after;    /* switch fault_from=1 on after start-up */
	int op;
	size_t size;
	unsigned flags;
};

static void
oom_child(void *arg)
{
	const struct oom *o = arg;
	/* Allocate until refused: the caches or kva may have room first. */
	size_t n, i,
	    lim = o->size <= KMEM_CACHE_MAX ? (size_t)1 << 22
	    : o->size <= (8u << 20)	    ? 4096
					    : 1;
	void *p;

	T_EQ(setenv("KMEM_OPTIONS", o->options, 1), 0);
	if (o->fault_after) {
		p = kmem_alloc(64, KM_SLEEP);
		kmem_free(p, 64);
		p = kmem_alloc(1u << 20, KM_SLEEP);
		kmem_free(p, 1u << 20);
		kmem_prim_fault_set(1, true);
	}
	for (i = 0; i < lim; i++) {
		p = do_alloc(o->op, o->size, o->flags);
		if (p == NULL)
			break;
	}
	if (o->flags == KM_SLEEP) {
		printf("KM_SLEEP never refused (%zu calls)\n", i);
		_exit(6);
	}
	if (i == lim)
		_exit(7); /* KM_NOSLEEP never gave NULL */
	/* Nothing left locked: with the OS agreeing again, it works. */
	kmem_prim_fault_set(0, false);
	/* (Not 1 GiB: kmem_zalloc would write all of it.) */
	n = o->size < (8u << 20) ? o->size : 8u << 20;
	p = do_alloc(o->op, n, KM_NOSLEEP);
	if (p == NULL)
		_exit(9);
	kmem_free(p, n);
	p = do_alloc(o->op, 1u << 20, KM_SLEEP);
	kmem_free(p, 1u << 20);
	p = do_alloc(o->op, 64, KM_SLEEP);
	kmem_free(p, 64);
}

static void
test_sleep_oom(void)
{
	const size_t big = (size_t)1 << 30;
	char want[256];
	int op;

	for (op = OP_ALLOC; op <= OP_INTR_ZALLOC; op++) {
		struct oom o = {
		    "oom_wait_ms=100,fault_from=1", false, op, big, KM_SLEEP};

		snprintf(want, sizeof want,
		    "kmem: %s(%zu, KM_SLEEP): out of memory: the system "
		    "refused %zu bytes for ",
		    alloc_names[op], big, big);
		o.options = "oom_wait_ms=100";
		o.fault_after = true;
		expect_oom(oom_child, &o, want, 100);
	}
	{
		/* A large size that is no page multiple. */
		struct oom o = {
		    "oom_wait_ms=100", true, OP_ALLOC, 100000, KM_SLEEP};

		expect(oom_child, &o,
		    "kmem: kmem_alloc(100000, KM_SLEEP): out of memory: the "
		    "system refused");
	}
	{
		/* Small sizes: the caches run dry and need pages. */
		static const size_t small[] = {64, 4096, 16384};
		size_t i;

		for (i = 0; i < 3; i++) {
			struct oom o = {"oom_wait_ms=100", true, OP_ALLOC,
			    small[i], KM_SLEEP};

			snprintf(want, sizeof want,
			    "kmem: kmem_alloc(%zu, KM_SLEEP): out of memory: "
			    "the system refused",
			    small[i]);
			expect(oom_child, &o, want);
		}
	}
}

static void
test_nosleep_oom(void)
{
	static const size_t sizes[] = {64, 16384, 100000, 1u << 20, 1u << 30};
	size_t i;
	int op;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		for (op = OP_ALLOC; op <= OP_INTR_ZALLOC; op++) {
			struct oom o = {
			    "oom_wait_ms=100", true, op, sizes[i], KM_NOSLEEP};

			expect_exit0(oom_child, &o);
		}
	}
}

/*
 * The OS refusing from the very first request (KMEM_OPTIONS fault_from=1
 * before kmem starts): KM_NOSLEEP gives NULL, KM_SLEEP waits oom_wait_ms
 * and aborts with the contract's message, like any other refusal.
 */
static void
test_oom_at_start(void)
{
	static const size_t sizes[] = {64, 16384, 100000, 1u << 30};
	char want[256];
	size_t i;
	int op;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		for (op = OP_ALLOC; op <= OP_INTR_ZALLOC; op++) {
			struct oom o = {"oom_wait_ms=100,fault_from=1", false,
			    op, sizes[i], KM_NOSLEEP};

			expect_exit0(oom_child, &o);
		}
	}
	for (op = OP_ALLOC; op <= OP_INTR_ZALLOC; op++) {
		struct oom o = {"oom_wait_ms=100,fault_from=1", false, op,
		    (size_t)1 << 30, KM_SLEEP};

		snprintf(want, sizeof want,
		    "kmem: %s(%zu, KM_SLEEP): out of memory: the system "
		    "refused %zu bytes for ",
		    alloc_names[op], o.size, o.size);
		expect_oom(oom_child, &o, want, 100);
	}
	for (op = OP_ALLOC; op <= OP_INTR_ZALLOC; op++) {
		struct oom o = {
		    "oom_wait_ms=100,fault_from=1", false, op, 64, KM_SLEEP};

		snprintf(want, sizeof want,
		    "kmem: %s(64, KM_SLEEP): out of memory: the system refused",
		    alloc_names[op]);
		expect_oom(oom_child, &o, want, 100);
	}
}

/*
 * SIZE_MAX / 2 (2^63 - 1) is beyond any address space as well: no
 * waiting for the OS.
 */
static void
test_sleep_huge_half(void)
{
	char want[256];
	int op;

	for (op = OP_ALLOC; op <= OP_INTR_ZALLOC; op++) {
		struct call c = {op, SIZE_MAX / 2, 0, 0, KM_SLEEP};

		snprintf(want, sizeof want,
		    "kmem: %s(%zu, KM_SLEEP): size exceeds what kmem can "
		    "allocate",
		    alloc_names[op], c.size);
		expect(sleep_huge, &c, want);
	}
}

/*
 * A large block that the fast path finds in a quantum cache's group, in
 * a 4 GiB region the page map has no leaf for yet, with the OS refusing
 * the leaf: KM_SLEEP must still wait and abort, never return NULL (a
 * review found NULL here).  The 64 KiB pool pages of kmem-10240 come
 * from kva's 16-page quantum cache, whose misses fill a run for the CPU.
 */
static void
leaf_child(void *arg)
{
	void *p;

	(void)arg;
	T_EQ(setenv("KMEM_OPTIONS", "oom_wait_ms=100", 1), 0);
	p = kmem_alloc(10240, KM_SLEEP);
	kmem_prim_fault_set(1, true);
	p = kmem_alloc(60000, KM_SLEEP);
	printf("kmem_alloc(60000, KM_SLEEP) returned %p\n", p);
	_exit(p == NULL ? 8 : 0);
}

static void
test_sleep_no_leaf(void)
{
	char buf[8192];
	int status = t_child(leaf_child, NULL, buf, sizeof buf);

	/* Aborts after oom_wait_ms, or (memory found) returns a block. */
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT ||
	    strstr(buf, "kmem: kmem_alloc(60000, KM_SLEEP): out of memory") ==
		NULL)
		T_FAIL("child status %#x; stderr:\n%s", (unsigned)status, buf);
	printf("   died as expected: %s", buf);
}

int
main(void)
{
	/* No kmem call in this process: each child starts kmem itself. */
	PS = (size_t)sysconf(_SC_PAGESIZE);
	T_RUN(test_size0);
	T_RUN(test_bad_flags);
	T_RUN(test_free_null);
	T_RUN(test_free_size0);
	T_RUN(test_large_double_free);
	T_RUN(test_large_wrong_size);
	T_RUN(test_large_interior);
	T_RUN(test_large_foreign);
	T_RUN(test_large_racing_free);
	T_RUN(test_free_never_made);
	T_RUN(test_sleep_huge);
	T_RUN(test_sleep_oom);
	T_RUN(test_nosleep_oom);
	T_RUN(test_oom_at_start);
	T_RUN(test_sleep_huge_half);
	T_RUN(test_sleep_no_leaf);
	return t_done();
}
