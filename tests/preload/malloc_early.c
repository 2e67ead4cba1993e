/*
 * malloc_early.c -- allocation before main and after it (reliability
 * plan D.24, and A.2's libc-internal allocations), standard API only, so
 * the same binary runs on plain glibc (oracle) and under LD_PRELOAD of
 * kmem.
 *
 *  - .preinit_array: the executable's preinit functions run before any
 *    shared object's constructor, so under LD_PRELOAD this is malloc,
 *    calloc, realloc, posix_memalign, strdup and free *before the
 *    preloaded allocator's own constructor ran*: it must initialise
 *    itself on first use, without recursion or deadlock;
 *  - a constructor(101) that calls malloc/calloc/realloc/free,
 *    reallocarray, aligned_alloc, and libc functions that allocate
 *    internally: strdup, asprintf, setenv, open_memstream, fopen +
 *    getline (on /proc/self/status), opendir/readdir (/proc/self/fd),
 *    scandir, qsort of 200 000 elements (glibc's merge buffer),
 *    dlopen/dlsym/dlerror/dlclose of libm, pthread_create of a thread that
 *    allocates; every result is checked (content, NUL termination,
 *    counts), and what they returned frees cleanly;
 *  - main checks that both early phases ran and passed, and that blocks
 *    allocated in them are intact and can be realloc'd and freed now;
 *  - an atexit handler and two destructors (default priority and 101,
 *    which runs last) allocate, use stdio, and free blocks kept alive
 *    from the constructor, after main returned.
 *
 * Pass: exit 0 (a failure after main prints FAIL and _exit(1)s).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"

/* Blocks that must survive from one phase to another. */
#define KEPT_N 3000
static char *g_pre_block, *g_ctor_block, *g_ctor_str;
static bool g_pre_ok, g_ctor_ok;
static int g_pre_step, g_ctor_step;

static void
fill(char *p, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (char)(i * 31 + tag);
}

static bool
intact(const char *p, size_t n, unsigned tag)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (char)(i * 31 + tag))
			return false;
	return true;
}

/*
 * Failures before main and after it: one line on stderr (write(2), no
 * stdio state assumed) and _exit(1).
 */
static void
late_fail(const char *where, int line)
{
	char buf[160];
	int n = snprintf(buf, sizeof buf,
	    "FAIL %s:%d (%s)\n0 passed, 1 failed\n", __FILE__, line, where);

	if (n > 0 && write(2, buf, (size_t)n) < 0)
		_exit(1);
	_exit(1);
}

#define LATE_ASSERT(where, cond)                                               \
	do {                                                                   \
		if (!(cond))                                                   \
			late_fail(where ": " #cond, __LINE__);                 \
	} while (0)

/* ---------------------------------------------------- preinit_array */

/* Before every constructor, the preloaded allocator's included. */
static void
preinit(int argc, char **argv, char **envp)
{
	void *p = NULL;
	char *s, *q;

	(void)argc;
	(void)argv;
	(void)envp;
	g_pre_step = 1;
	s = malloc(100);
	if (s == NULL)
		return;
	memset(s, 'x', 99);
	s[99] = '\0';
	g_pre_step = 2;
	q = calloc(10, 100);
	if (q == NULL || q[0] != 0 || q[999] != 0)
		return;
	g_pre_step = 3;
	q = realloc(q, 100000);
	if (q == NULL || q[999] != 0)
		return;
	free(q);
	g_pre_step = 4;
	if (posix_memalign(&p, 4096, 5000) != 0 || ((uintptr_t)p & 4095) != 0)
		return;
	free(p);
	g_pre_step = 5;
	q = strdup(s);
	if (q == NULL || strlen(q) != 99)
		return;
	free(q);
	free(s);
	g_pre_step = 6;
	g_pre_block = malloc(KEPT_N);
	if (g_pre_block == NULL)
		return;
	fill(g_pre_block, KEPT_N, 1);
	g_pre_ok = true;
}

__attribute__((section(".preinit_array"), used)) static void (*preinit_entry)(
    int, char **, char **) = preinit;

/* -------------------------------------------------- constructor(101) */

static void *
ctor_thread(void *arg)
{
	size_t n = (size_t)(uintptr_t)arg;
	char *p = malloc(n);

	if (p != NULL) {
		memset(p, 0x6b, n);
		p = realloc(p, 2 * n);
	}
	return p;
}

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

static int
not_dot(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

#define STEP(cond)                                                             \
	do {                                                                   \
		g_ctor_step = __LINE__;                                        \
		if (!(cond))                                                   \
			return;                                                \
	} while (0)

static void
early_ctor_body(void)
{
	char *p, *q, *line = NULL, *ms = NULL;
	size_t cap = 0, mslen = 0;
	int n, fds = 0, *arr;
	bool found = false;
	FILE *f;
	DIR *d;
	struct dirent *de, **list;
	void *h, *ret;
	double (*cosp)(double);
	pthread_t th;

	/* The plain entry points. */
	p = malloc(1000);
	STEP(p != NULL);
	memset(p, 1, 1000);
	q = calloc(1000, 8);
	STEP(q != NULL && q[0] == 0 && q[7999] == 0);
	p = realloc(p, 50000);
	STEP(p != NULL && p[0] == 1 && p[999] == 1);
	free(p);
	free(q);
	p = reallocarray(NULL, 100, 30);
	STEP(p != NULL);
	free(p);
	p = aligned_alloc(256, 512);
	STEP(p != NULL && ((uintptr_t)p & 255) == 0);
	free(p);
	p = malloc(0);
	STEP(p != NULL);
	free(p);
	free(NULL);

	/* libc functions that allocate internally. */
	p = strdup("constructor priority 101");
	STEP(p != NULL && strcmp(p, "constructor priority 101") == 0);
	free(p);
	STEP(asprintf(&p, "%d-%s-%0500d", 42, "early", 7) == 509);
	STEP(strncmp(p, "42-early-000", 12) == 0 && p[508] == '7' &&
	    p[509] == 0);
	free(p);
	STEP(setenv("KMEM_EARLY_TEST_VAR", "some value", 1) == 0);
	STEP(strcmp(getenv("KMEM_EARLY_TEST_VAR"), "some value") == 0);
	STEP(unsetenv("KMEM_EARLY_TEST_VAR") == 0);
	f = open_memstream(&ms, &mslen);
	STEP(f != NULL);
	for (int i = 0; i < 2000; i++)
		fprintf(f, "%d,", i);
	STEP(fclose(f) == 0 && ms != NULL && mslen > 8000 &&
	    strncmp(ms, "0,1,2,", 6) == 0);
	free(ms);
	f = fopen("/proc/self/status", "r");
	STEP(f != NULL);
	while (getline(&line, &cap, f) > 0)
		if (strncmp(line, "Name:", 5) == 0)
			found = true;
	STEP(found && line != NULL && cap > 0);
	free(line);
	fclose(f);
	d = opendir("/proc/self/fd");
	STEP(d != NULL);
	while ((de = readdir(d)) != NULL)
		fds += de->d_name[0] != '.';
	closedir(d);
	STEP(fds >= 3);
	n = scandir("/proc/self/fd", &list, not_dot, alphasort);
	STEP(n >= 3);
	for (int i = 0; i < n; i++)
		free(list[i]);
	free(list);
	/* qsort uses a malloc'd merge buffer for big arrays. */
	arr = malloc(200000 * sizeof *arr);
	STEP(arr != NULL);
	for (int i = 0; i < 200000; i++)
		arr[i] = (int)((unsigned)i * 2654435761u % 1000003u);
	qsort(arr, 200000, sizeof *arr, cmp_int);
	for (int i = 1; i < 200000; i++)
		STEP(arr[i - 1] <= arr[i]);
	free(arr);
	/* The dynamic linker allocates through the interposed malloc. */
	h = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
	STEP(h != NULL);
	ret = dlsym(h, "cos");
	memcpy(&cosp, &ret, sizeof cosp);
	STEP(cosp != NULL && cosp(0.0) == 1.0);
	STEP(dlsym(h, "no_such_symbol_kmem") == NULL);
	p = dlerror();
	STEP(p != NULL && strstr(p, "no_such_symbol_kmem") != NULL);
	STEP(dlclose(h) == 0);
	/* A thread (its TLS is malloc'd) that allocates. */
	STEP(pthread_create(&th, NULL, ctor_thread, (void *)(uintptr_t)777) ==
	    0);
	STEP(pthread_join(th, &ret) == 0);
	STEP(ret != NULL && ((char *)ret)[776] == 0x6b);
	free(ret);

	/* Kept for main and the destructors. */
	g_ctor_block = malloc(KEPT_N);
	STEP(g_ctor_block != NULL);
	fill(g_ctor_block, KEPT_N, 2);
	g_ctor_str = strdup("kept from the constructor");
	STEP(g_ctor_str != NULL);
	g_ctor_ok = true;
}

static void at_exit_handler(void);

__attribute__((constructor(101))) static void
early_ctor(void)
{
	early_ctor_body();
	if (atexit(at_exit_handler) != 0)
		g_ctor_ok = false;
}

/* ---------------------------------------------------- after main */

/* The constructor's kept block (vacuous if the constructor failed). */
static bool
kept_intact(void)
{
	return !g_ctor_ok ||
	    (g_ctor_block != NULL && intact(g_ctor_block, KEPT_N, 2));
}

static char *g_main_block; /* allocated in main, freed in a destructor */

static void
at_exit_handler(void)
{
	char *p = malloc(5000), *s;
	FILE *f;

	LATE_ASSERT("atexit", p != NULL);
	memset(p, 0x21, 5000);
	p = realloc(p, 500000);
	LATE_ASSERT("atexit", p != NULL && p[4999] == 0x21);
	free(p);
	s = strdup("atexit");
	LATE_ASSERT("atexit", s != NULL);
	free(s);
	f = fopen("/proc/self/status", "r");
	LATE_ASSERT("atexit", f != NULL);
	fclose(f);
	LATE_ASSERT("atexit", kept_intact());
	printf("   atexit handler: allocated and freed\n");
	fflush(stdout);
}

__attribute__((destructor)) static void
late_dtor(void)
{
	char *p = calloc(1, 70000);

	LATE_ASSERT("destructor", p != NULL && p[69999] == 0);
	free(p);
	LATE_ASSERT("destructor", kept_intact());
	g_ctor_block = realloc(g_ctor_block, 2 * KEPT_N);
	LATE_ASSERT("destructor", kept_intact());
	LATE_ASSERT("destructor",
	    g_main_block == NULL || strcmp(g_main_block, "from main") == 0);
	free(g_main_block);
	printf("   destructor: allocated and freed\n");
	fflush(stdout);
}

/* Priority 101 destructors run after the default-priority ones. */
__attribute__((destructor(101))) static void
last_dtor(void)
{
	void *p = NULL;

	LATE_ASSERT("destructor(101)", kept_intact());
	free(g_ctor_block);
	free(g_ctor_str);
	LATE_ASSERT("destructor(101)", posix_memalign(&p, 64, 100) == 0);
	free(p);
	free(malloc(1 << 20));
	printf("   destructor(101): allocated and freed; all done\n");
	fflush(stdout);
}

/* ---------------------------------------------------------- main */

static void
test_preinit(void)
{
	if (!g_pre_ok)
		T_FAIL(
		    "preinit_array allocation failed at step %d", g_pre_step);
	T_ASSERT(intact(g_pre_block, KEPT_N, 1));
	g_pre_block = realloc(g_pre_block, 10 * KEPT_N);
	T_ASSERT(g_pre_block != NULL && intact(g_pre_block, KEPT_N, 1));
	T_GE(malloc_usable_size(g_pre_block), 10 * KEPT_N);
	free(g_pre_block);
	g_pre_block = NULL;
}

static void
test_constructor(void)
{
	if (!g_ctor_ok)
		T_FAIL("constructor(101) failed at line %d", g_ctor_step);
	T_ASSERT(intact(g_ctor_block, KEPT_N, 2));
	T_ASSERT(strcmp(g_ctor_str, "kept from the constructor") == 0);
	T_GE(malloc_usable_size(g_ctor_block), KEPT_N);
}

static void
test_main_for_later(void)
{
	g_main_block = strdup("from main");
	T_ASSERT(g_main_block != NULL);
}

int
main(void)
{
	alarm(60);
	T_RUN(test_preinit);
	T_RUN(test_constructor);
	T_RUN(test_main_for_later);
	return t_done();
}
