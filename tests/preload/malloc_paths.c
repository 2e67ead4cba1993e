/*
 * malloc_paths.c -- the malloc API's rarer paths, standard API only, so
 * that the same binary runs on glibc (the oracle: "glibc.malloc_paths")
 * and on libkmem-malloc.so ("preload.malloc_paths"); what only kmem
 * promises is checked only under it (KMEM_TEST_PRELOAD).
 *
 *  - alignment arguments: memalign rounds one that is not a power of two
 *    up, refuses one beyond SIZE_MAX / 2 + 1 (EINVAL), as glibc does;
 *    kmem's aligned_alloc refuses one that is not a power of two (C17);
 *  - a realloc that cannot be met leaves the block as it was;
 *  - KMEM_DEBUG through the shim in a program that exits normally (this
 *    program executed again with it set): aligned allocations, realloc
 *    up and down, calloc, malloc_usable_size (the size asked for), free;
 *  - fork in a threaded program whose own fork handlers allocate and free
 *    while kmem holds its locks (registered before kmem's, from
 *    .preinit_array, so that its prepare handler runs after kmem's and
 *    its parent and child handlers before kmem's): those allocations come
 *    from the bootstrap area -- realloc and malloc_usable_size work on
 *    them, free ignores them, more than the area holds is ENOMEM -- and
 *    the frees are deferred, then done by the next call in the parent
 *    and the child; a realloc of a large block there (grown and shrunk)
 *    returns a block with its contents, or NULL with it intact -- it
 *    used to resize it in kva, whose lock the forking thread holds: the
 *    process hung;
 *  - before kmem is set up (this program executed again, the checks made
 *    before anything allocates): malloc_trim has nothing to give back; a
 *    foreign pointer given to free or malloc_usable_size is reported
 *    ("kmem has allocated nothing yet");
 *  - with the system refusing every request for memory from the start
 *    (KMEM_OPTIONS=fault_from=1): malloc, calloc and aligned allocations
 *    are NULL with ENOMEM, and free(NULL) is fine;
 *  - free of an address beyond the user address space: reported.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

/* Calls through volatile pointers: the compiler may not see the bugs. */
static void *(*volatile f_memalign)(size_t, size_t) = memalign;
static void *(*volatile f_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void *(*volatile f_realloc)(void *, size_t) = realloc;
static void (*volatile f_free)(void *) = free;
static size_t (*volatile f_usable)(void *) = malloc_usable_size;

static bool
on_kmem(void)
{
	return getenv("KMEM_TEST_PRELOAD") != NULL;
}

static void
fill(unsigned char *p, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i * 7 + tag);
}

static bool
intact(const unsigned char *p, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(i * 7 + tag))
			return false;
	return true;
}

/* ---- alignment and realloc ---- */

static void
test_alignment_args(void)
{
	void *p;

	p = f_memalign(24, 100); /* rounded up to 32 */
	T_ASSERT(p != NULL && ((uintptr_t)p & 31) == 0);
	free(p);
	p = f_memalign(3000, 5000); /* 4096 */
	T_ASSERT(p != NULL && ((uintptr_t)p & 4095) == 0);
	free(p);
	errno = 0;
	T_ASSERT(f_memalign(SIZE_MAX / 2 + 2, 10) == NULL);
	T_EQ(errno, EINVAL);
	if (on_kmem()) { /* glibc before 2.38 rounds up here too */
		errno = 0;
		T_ASSERT(f_aligned_alloc(24, 48) == NULL);
		T_EQ(errno, EINVAL);
	}
}

static void
test_realloc_fails(void)
{
	unsigned char *p = malloc(1000), *q;

	T_ASSERT(p != NULL);
	fill(p, 1000, 3);
	/* 64 TiB: no system gives that. */
	errno = 0;
	q = f_realloc(p, (size_t)1 << 46);
	T_ASSERT(q == NULL);
	T_EQ(errno, ENOMEM);
	T_ASSERT(intact(p, 1000, 3));
	free(p);
}

/* ---- KMEM_DEBUG through the shim, exiting normally ---- */

static int
debug_run(void)
{
	unsigned char *p, *q;
	void *m;
	size_t i;

	p = f_aligned_alloc(64, 100);
	T_ASSERT(p != NULL && ((uintptr_t)p & 63) == 0);
	fill(p, 100, 1);
	T_EQ(posix_memalign(&m, 4096, 5000), 0);
	T_ASSERT(((uintptr_t)m & 4095) == 0);
	fill(m, 5000, 2);
	q = f_memalign(256, 3000);
	T_ASSERT(q != NULL && ((uintptr_t)q & 255) == 0);
	if (on_kmem()) {
		T_EQ(f_usable(p), 100);
		T_EQ(f_usable(m), 5000);
	}
	/* realloc up, down, and across the large sizes: contents kept. */
	p = f_realloc(p, 300);
	T_ASSERT(p != NULL && intact(p, 100, 1));
	p = f_realloc(p, 40);
	T_ASSERT(p != NULL && intact(p, 40, 1));
	m = f_realloc(m, 200000);
	T_ASSERT(m != NULL && intact(m, 5000, 2));
	if (on_kmem())
		T_EQ(f_usable(m), 200000);
	free(q);
	q = calloc(100, 70);
	T_ASSERT(q != NULL);
	for (i = 0; i < 7000; i++)
		T_EQ(q[i], 0);
	free(q);
	free(p);
	free(m);
	return t_done();
}

static void
c_exec(void *arg)
{
	const char *const *a = arg;
	char *argv[] = {(char *)"malloc_paths", (char *)a[0], NULL};

	if (a[1] != NULL)
		setenv("KMEM_DEBUG", a[1], 1);
	execv("/proc/self/exe", argv);
	T_FAIL("execv /proc/self/exe: %s", strerror(errno));
}

static void
test_debug_exits(void)
{
	static const char *const runs[][2] = {
	    {"--debug", "size,redzone,poison"}, {"--debug", "guard"}};
	char buf[8192];
	size_t i;
	int status;

	for (i = 0; i < 2; i++) {
		status = t_child(c_exec, (void *)runs[i], buf, sizeof buf);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			T_FAIL("KMEM_DEBUG=%s: status %#x; stderr:\n%s",
			    runs[i][1], (unsigned)status, buf);
	}
}

/* ---- allocation in fork handlers that run while kmem's locks are held */

#define NDEFER 4
static bool g_armed;		 /* the handlers act for one fork only */
static bool g_kmem;		 /* on_kmem(), for the handlers */
static void *g_defer[NDEFER];	 /* freed by the prepare handler */
static unsigned char *g_in_fork; /* allocated by the prepare handler */
static unsigned char *g_large;	 /* a large block the handlers realloc */
static int g_fork_ok;		 /* bits: handlers that checked out */

static void
in_prepare(void)
{
	unsigned char *p, *z;
	void *a, *big[3];
	int i;

	if (!g_armed)
		return;
	for (i = 0; i < NDEFER; i++)
		free(g_defer[i]);
	p = malloc(100);
	if (p == NULL)
		return;
	fill(p, 100, 9);
	p = realloc(p, 200);
	if (p == NULL || !intact(p, 100, 9) || malloc_usable_size(p) < 200)
		return;
	z = calloc(10, 10);
	a = aligned_alloc(64, 64);
	if (z == NULL || z[99] != 0 || a == NULL || ((uintptr_t)a & 63) != 0)
		return;
	free(z);
	free(a);
	/*
	 * kmem's bootstrap area (256 KiB in all, never reused): more than
	 * it holds, or than is left of it, is ENOMEM, not a hang.
	 */
	errno = 0;
	big[0] = malloc(300 << 10);
	big[1] = malloc(200 << 10);
	big[2] = malloc(200 << 10);
	if (g_kmem &&
	    (big[0] != NULL || big[1] == NULL || big[2] != NULL ||
		errno != ENOMEM))
		return;
	for (i = 0; i < 3; i++)
		free(big[i]);
	g_in_fork = p;
	g_fork_ok |= 1;
}

/* realloc of g_large to n bytes (of which "keep" are checked). */
static bool
large_realloc_ok(size_t n, size_t keep)
{
	unsigned char *q = realloc(g_large, n);

	if (q == NULL)
		return intact(g_large, keep, 7);
	g_large = q;
	return intact(q, keep, 7);
}

static void
after_fork(int bit)
{
	void *p;

	if (!g_armed)
		return;
	p = malloc(3000);
	if (p == NULL || g_in_fork == NULL || !intact(g_in_fork, 100, 9))
		return;
	memset(p, 1, 3000);
	free(p);
	if (!large_realloc_ok(2 << 20, 1 << 20) ||
	    !large_realloc_ok(96 << 10, 96 << 10))
		return;
	g_fork_ok |= bit;
}

static void
in_parent(void)
{
	after_fork(2);
}

static void
in_child(void)
{
	after_fork(4);
}

/* Before any shared object's constructor: before kmem registers its own. */
static void
preinit(int argc, char **argv, char **envp)
{
	(void)argc;
	(void)argv;
	(void)envp;
	if (pthread_atfork(in_prepare, in_parent, in_child) != 0)
		_exit(3);
}

__attribute__((section(".preinit_array"), used)) static void (*preinit_entry)(
    int, char **, char **) = preinit;

static void *
idle_thread(void *arg)
{
	return arg;
}

static void
test_fork_handlers_allocate(void)
{
	static const size_t sizes[NDEFER] = {48, 1000, 40000, 300000};
	pthread_t t;
	int status, i;
	pid_t pid;

	/* A thread has run: kmem's handlers take their locks. */
	T_EQ(pthread_create(&t, NULL, idle_thread, NULL), 0);
	T_EQ(pthread_join(t, NULL), 0);
	for (i = 0; i < NDEFER; i++) {
		g_defer[i] = malloc(sizes[i]);
		T_ASSERT(g_defer[i] != NULL);
		memset(g_defer[i], 5, sizes[i]);
	}
	g_large = malloc(1 << 20);
	T_ASSERT(g_large != NULL);
	fill(g_large, 1 << 20, 7);
	fflush(NULL);
	g_kmem = on_kmem();
	g_armed = true;
	alarm(30); /* a handler that hangs kills the test */
	pid = fork();
	g_armed = false;
	T_ASSERT(pid >= 0);
	if (pid == 0) {
		void *p = malloc(100); /* the child's frees done here */

		free(p);
		_exit(g_fork_ok == 5 && g_in_fork != NULL ? 0 : 10 + g_fork_ok);
	}
	T_EQ(waitpid(pid, &status, 0), pid);
	alarm(0);
	T_ASSERT(WIFEXITED(status));
	T_EQ(WEXITSTATUS(status), 0);
	T_EQ(g_fork_ok, 3);
	/* Deferred frees done (by in_parent's malloc); bootstrap ignored. */
	free(g_in_fork);
	free(g_large);
	for (i = 0; i < NDEFER; i++) {
		void *p = malloc(sizes[i]);

		T_ASSERT(p != NULL);
		memset(p, 6, sizes[i]);
		free(p);
	}
}

/* ---- before kmem is set up ---- */

static int
before_init(const char *what)
{
	static char not_heap[64];

	/* Nothing allocated yet (no stdio before this point). */
	T_EQ(malloc_trim(0), 0);
	if (strcmp(what, "free") == 0)
		f_free(not_heap + 16);
	else
		(void)f_usable(not_heap + 16);
	return 1; /* not reached: reported above */
}

static int
no_memory(void)
{
	void *m = (void *)1;

	/* Before any stdio: it would want memory too. */
	errno = 0;
	if (malloc(10) != NULL || errno != ENOMEM)
		return 2;
	errno = 0;
	if (calloc(3, 100000) != NULL || errno != ENOMEM)
		return 3;
	if (posix_memalign(&m, 64, 10) != ENOMEM || m != (void *)1)
		return 4;
	free(NULL);
	return 0;
}

static void
c_kernel_pointer(void *arg)
{
	(void)arg;
	f_free((void *)(uintptr_t)0xffff888000001000ull);
}

static void
test_no_memory(void)
{
	static const char *const run[2] = {"--no-memory", NULL};
	char buf[4096];
	int status;

	if (!on_kmem())
		return;
	setenv("KMEM_OPTIONS", "fault_from=1", 1);
	status = t_child(c_exec, (void *)run, buf, sizeof buf);
	unsetenv("KMEM_OPTIONS");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		T_FAIL("status %#x; stderr:\n%s", (unsigned)status, buf);
	T_ASSERT(t_expect_panic(c_kernel_pointer, NULL,
	    "kmem: free(0xffff888000001000): pointer not allocated by kmem\n"));
}

static void
test_before_init(void)
{
	static const char *const frees[2] = {"--before-free", NULL};
	static const char *const usable[2] = {"--before-usable", NULL};

	if (!on_kmem())
		return;
	T_ASSERT(t_expect_panic(c_exec, (void *)frees,
	    "): pointer not allocated by kmem (kmem has allocated nothing "
	    "yet)"));
	T_ASSERT(t_expect_panic(
	    c_exec, (void *)usable, "kmem: malloc_usable_size(0x"));
}

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--before-free") == 0)
		return before_init("free");
	if (argc == 2 && strcmp(argv[1], "--before-usable") == 0)
		return before_init("usable");
	if (argc == 2 && strcmp(argv[1], "--debug") == 0)
		return debug_run();
	if (argc == 2 && strcmp(argv[1], "--no-memory") == 0)
		_exit(no_memory()); /* exit's handlers may want memory */
	T_RUN(test_alignment_args);
	T_RUN(test_realloc_fails);
	T_RUN(test_debug_exits);
	T_RUN(test_fork_handlers_allocate);
	T_RUN(test_before_init);
	T_RUN(test_no_memory);
	return t_done();
}
