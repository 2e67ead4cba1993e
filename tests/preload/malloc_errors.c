/*
 * malloc_errors -- bad pointers through libkmem-malloc.so get a clear
 * report, never silent corruption (reliability plan E26, E28, E29, E31,
 * E32; docs/kmem-contract.md, "malloc").
 *
 * Each case runs in a child process (t_expect_death): the child must die
 * of SIGABRT (SIGSEGV for guard pages) and its stderr must hold the
 * contract's words.  Debugging off: a foreign pointer, an interior one,
 * one into a large block (and 16 bytes and 4 KiB into a quantum-cached
 * one), a double free of a class object (found when
 * the object comes out of the cache again, before it has two owners), a
 * write after free into a free object's tag (found as it leaves a
 * thread's bin, and as a bin's fill hands it out), a large double free (and a
 * quantum-cached one of 32 and 64 KiB, at the call), and
 * realloc and malloc_usable_size of a foreign pointer, and of a freed
 * one (small, quantum-cached and large; grown, shrunk, same size).  With
 * KMEM_DEBUG (read once at start-up, so the child executes this program again
 * with it set and the case's number): a one-byte overrun, a double free at the
 * call, a write after free, and an overrun onto a guard page.
 *
 * Only under kmem (KMEM_TEST_PRELOAD): glibc's reports are its own, and
 * some of these it does not find; the oracle run skips (exit 77).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"

/* Calls through volatile pointers: the compiler may not see the bugs. */
static void *(*volatile f_malloc)(size_t) = malloc;
static void (*volatile f_free)(void *) = free;
static void *(*volatile f_realloc)(void *, size_t) = realloc;
static size_t (*volatile f_usable)(void *) = malloc_usable_size;

static void
sink(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static void *
noop_thread(void *arg)
{
	return arg;
}

/* ---- the cases (run in a child; each must not return) ---- */

static void
c_stack(void *arg)
{
	char buf[64];

	(void)arg;
	sink(buf);
	f_free(buf);
}

static void
c_interior(void *arg)
{
	char *p = f_malloc(40);

	(void)arg;
	f_free(p + 16);
}

static void
c_large_interior(void *arg)
{
	char *p = f_malloc(100000);

	(void)arg;
	f_free(p + 4096);
}

/*
 * The same for a block of kva's quantum caches (32 KiB, 64 KiB): its fast
 * free tests the page-map word of p's 4 KiB unit and that p starts it
 * (kmemi_large_free_cache); an address past the first unit finds no word.
 */
static void
c_qc_interior(void *arg)
{
	char *p = f_malloc(32768);

	f_free(p + (size_t)arg);
}

/* A double free, then the object comes out of the cache twice. */
static void
c_double_small(void *arg)
{
	char *p = f_malloc(40), *a, *b;
	int i;

	(void)arg;
	f_free(p);
	f_free(p);
	for (i = 0; i < 1000; i++) { /* the second copy comes out too */
		a = f_malloc(40);
		b = f_malloc(40);
		sink(a);
		sink(b);
	}
}

/* The same with other frees between: the copies are apart. */
static void
c_double_apart(void *arg)
{
	void *v[100], *p = f_malloc(200);
	int i;

	(void)arg;
	for (i = 0; i < 100; i++)
		v[i] = f_malloc(200);
	f_free(p);
	for (i = 0; i < 50; i++)
		f_free(v[i]);
	f_free(p);
	for (i = 50; i < 100; i++)
		f_free(v[i]);
	for (i = 0; i < 10000; i++)
		sink(f_malloc(200));
}

static void
c_write_after_free(void *arg)
{
	char *p = f_malloc(40);
	int i;

	(void)arg;
	f_free(p);
	p[12] = 'x'; /* the free tag lives in bytes 8..15 */
	for (i = 0; i < 1000; i++)
		sink(f_malloc(40));
}

/*
 * The same where the object comes back through a bin's fill (malloc.c's
 * malloc_fill, tb_pop): mallinfo2 empties this thread's bins into its
 * CPU's group, p last, so p is the group's top; the next malloc of the
 * class finds its bin empty and fills it, p the object it hands out.
 */
static void
c_write_after_free_fill(void *arg)
{
	char *p = f_malloc(40);
	int i;

	(void)arg;
	f_free(p);
	(void)mallinfo2();
	p[12] = 'x';
	for (i = 0; i < 1000; i++)
		sink(f_malloc(40));
}

static void
c_double_large(void *arg)
{
	char *p = f_malloc(100000);

	(void)arg;
	f_free(p);
	f_free(p);
}

/* A quantum-cached block freed twice in a row: told at the second. */
static void
c_double_qc(void *arg)
{
	char *p = f_malloc((size_t)arg);

	f_free(p);
	f_free(p);
}

/*
 * The same block of the quantum-cached size freed by two threads at the
 * same instant, then two blocks of its size allocated: either a free
 * finds the other's mark and reports, or both pass (the fast free is a
 * check and a store, not one atomic step) and the second allocation to
 * hand the block out finds it live and reports.  Never silence.
 */
static void *_Atomic race_p;
static _Atomic int race_go, race_done;

static void *
race_free(void *arg)
{
	(void)arg;
	while (atomic_load(&race_go) == 0)
		;
	f_free(atomic_load(&race_p));
	atomic_fetch_add(&race_done, 1);
	return NULL;
}

static void
c_double_large_racing(void *arg)
{
	pthread_t t[2];
	int i;

	(void)arg;
	for (i = 0; i < 100; i++) { /* the first round reports */
		atomic_store(&race_p, f_malloc(32768));
		atomic_store(&race_go, 0);
		atomic_store(&race_done, 0);
		T_EQ(pthread_create(&t[0], NULL, race_free, NULL), 0);
		T_EQ(pthread_create(&t[1], NULL, race_free, NULL), 0);
		atomic_store(&race_go, 1);
		while (atomic_load(&race_done) < 2)
			;
		sink(f_malloc(32768));
		sink(f_malloc(32768));
	}
}

static void
c_realloc_stack(void *arg)
{
	char buf[64];

	(void)arg;
	sink(buf);
	sink(f_realloc(buf, 100));
}

static void
c_usable_interior(void *arg)
{
	char *p = f_malloc(100);

	(void)arg;
	printf("%zu\n", f_usable(p + 8));
}

/*
 * realloc or malloc_usable_size of a freed block ("re" bytes; 0:
 * malloc_usable_size), at once, before anything reuses it: the object
 * must not get a second owner.
 */
struct stale {
	size_t size, re;
};

static void
c_stale(void *arg)
{
	const struct stale *st = arg;
	char *p = f_malloc(st->size), *q, *r;

	memset(p, 'a', st->size);
	f_free(p);
	if (st->re == 0) {
		printf("usable %zu\n", f_usable(p));
		return;
	}
	q = f_realloc(p, st->re);
	r = f_malloc(st->re);
	fprintf(stderr, "realloc of a freed %p gave %p, then malloc %p\n",
	    (void *)p, (void *)q, (void *)r);
}

/* ---- the KMEM_DEBUG cases: this program again, with it set ---- */

static void
d_overrun(void)
{
	char *p = f_malloc(40);

	p[40] = 1;
	f_free(p);
}

static void
d_double(void)
{
	char *p = f_malloc(40);

	f_free(p);
	f_free(p);
}

static void
d_poison(void)
{
	char *p = f_malloc(40);

	f_free(p);
	p[3] = 7;
	sink(f_malloc(40));
}

static void
d_guard(void)
{
	char *p = f_malloc(4096);

	p[4096] = 1; /* the guard page */
	f_free(p);
}

static void (*const debug_case[])(void) = {
    d_overrun, d_double, d_poison, d_guard};

struct dbg {
	const char *debug;
	int n;
};

static void
c_debug(void *arg)
{
	const struct dbg *d = arg;
	char n[16], *argv[4];

	snprintf(n, sizeof n, "%d", d->n);
	argv[0] = (char *)"malloc_errors";
	argv[1] = (char *)"--debug-case";
	argv[2] = n;
	argv[3] = NULL;
	setenv("KMEM_DEBUG", d->debug, 1);
	execv("/proc/self/exe", argv);
	perror("execv /proc/self/exe");
	_exit(1);
}

/* ---- the tests ---- */

static void
test_foreign(void)
{
	T_ASSERT(t_expect_death(
	    c_stack, NULL, SIGABRT, "): pointer not allocated by kmem"));
	T_ASSERT(
	    t_expect_death(c_realloc_stack, NULL, SIGABRT, "kmem: realloc(0x"));
	T_ASSERT(
	    t_expect_death(c_large_interior, NULL, SIGABRT, "kmem: free("));
	T_ASSERT(t_expect_death(
	    c_qc_interior, (void *)(size_t)16, SIGABRT, "kmem: free("));
	T_ASSERT(t_expect_death(
	    c_qc_interior, (void *)(size_t)4096, SIGABRT, "kmem: free("));
}

static void
test_interior(void)
{
	T_ASSERT(t_expect_death(c_interior, NULL, SIGABRT,
	    "): interior pointer, 16 bytes into object 0x"));
	T_ASSERT(t_expect_death(
	    c_usable_interior, NULL, SIGABRT, "kmem: malloc_usable_size(0x"));
}

static void
test_double_free(void)
{
	T_ASSERT(t_expect_death(c_double_small, NULL, SIGABRT,
	    "of cache kmem-00048 was freed twice or written after free"));
	T_ASSERT(t_expect_death(
	    c_double_apart, NULL, SIGABRT, "of cache kmem-00224 "));
	T_ASSERT(t_expect_death(c_double_large, NULL, SIGABRT,
	    "): double free (large block of 102400 bytes, arena kva)"));
	T_ASSERT(t_expect_death(c_double_qc, (void *)(size_t)32768, SIGABRT,
	    "): double free (large block of 32768 bytes, arena kva)"));
	T_ASSERT(t_expect_death(c_double_qc, (void *)(size_t)65536, SIGABRT,
	    "): double free (large block of 65536 bytes, arena kva)"));
	T_ASSERT(t_expect_death(c_double_large_racing, NULL, SIGABRT,
	    ": double free (large block of 32768 bytes, arena kva"));
}

static void
test_write_after_free(void)
{
	T_ASSERT(t_expect_death(c_write_after_free, NULL, SIGABRT,
	    "was freed twice or written after free (its second word is"));
	T_ASSERT(t_expect_death(c_write_after_free_fill, NULL, SIGABRT,
	    "was freed twice or written after free (its second word is"));
}

static void
test_realloc_freed(void)
{
	static const struct stale cases[] = {
	    {100, 100}, {100, 200}, {100, 50}, {100, 0}, /* small */
	    {16, 16}, {16000, 16000}, {16000, 9000}, {16000, 0},
	    {100000, 100000}, {100000, 300000}, {100000, 20000}, /* large */
	    {100000, 0}, {40000, 40000}, {40000, 0}, /* quantum-cached */
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char want[64];

		printf("   %zu bytes, then %s(%zu)\n", cases[i].size,
		    cases[i].re ? "realloc" : "malloc_usable_size",
		    cases[i].re);
		snprintf(want, sizeof want, "kmem: %s(0x",
		    cases[i].re ? "realloc" : "malloc_usable_size");
		T_ASSERT(
		    t_expect_death(c_stale, (void *)&cases[i], SIGABRT, want));
		T_ASSERT(t_expect_death(c_stale, (void *)&cases[i], SIGABRT,
		    "): pointer already freed: use after free"));
	}
}

static void
test_debug(void)
{
	static const struct {
		struct dbg d;
		int sig;
		const char *want;
	} cases[] = {
	    {{"redzone", 0}, SIGABRT,
		"kmem: free(0x"}, /* ...): redzone overwritten at offset 40 */
	    {{"size", 1}, SIGABRT, "): double free (allocated size 40, cache"},
	    {{"poison", 2}, SIGABRT, "kmem: malloc(40): write after free"},
	    {{"guard", 3}, SIGSEGV, NULL},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++)
		T_ASSERT(t_expect_death(
		    c_debug, (void *)&cases[i].d, cases[i].sig, cases[i].want));
	T_ASSERT(t_expect_death(c_debug, (void *)&cases[0].d, SIGABRT,
	    "redzone overwritten at offset 40"));
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--debug-case") == 0) {
		debug_case[atoi(argv[2]) & 3]();
		fprintf(
		    stderr, "malloc_errors: debug case %s survived\n", argv[2]);
		return 0;
	}
	if (getenv("KMEM_TEST_PRELOAD") == NULL)
		t_skip("kmem's reports: only under libkmem-malloc.so");
	/*
	 * A thread, so that every child has had one: without rseq
	 * (norseq.malloc_errors) the CPU layer then takes its locks, and a
	 * report made under one of them waited for it for ever.
	 */
	{
		pthread_t t;

		T_EQ(pthread_create(&t, NULL, noop_thread, NULL), 0);
		T_EQ(pthread_join(t, NULL), 0);
	}
	T_RUN(test_foreign);
	T_RUN(test_interior);
	T_RUN(test_double_free);
	T_RUN(test_write_after_free);
	T_RUN(test_realloc_freed);
	T_RUN(test_debug);
	return t_done();
}
