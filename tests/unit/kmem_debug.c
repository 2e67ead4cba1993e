/*
 * kmem_debug.c -- KMEM_DEBUG (docs/kmem-contract.md, "With any KMEM_DEBUG
 * item on"): every bug an item is there for kills a child process with
 * the exact one-line report (SIGABRT), or with SIGSEGV where the guard
 * pages catch it at the faulting access; and the same program without the
 * bug exits 0 with nothing at all on stderr.
 *
 *   size      kmem_free with another size: same class (40 / 48), another
 *             class (100 / 20), the large path (100000 / 99999, the same
 *             page count); with each of the other items on as well
 *   any item  double frees (kmem_free, kmem_intr_free; small and large);
 *             an interior pointer, a free object of a cache, a stack
 *             address, a static array, a malloc(3) pointer
 *   redzone   a byte written just past the object (a string's NUL)
 *   poison    a byte written into a freed object, found when the same
 *             object is handed out again (kmem_alloc, kmem_zalloc,
 *             kmem_intr_alloc)
 *   guard     past the page end, use after free: SIGSEGV; the alignment
 *             slack: the redzone report; before the object: its report;
 *             the quarantine (guard_depth) and its bound on mappings
 *   all       a seeded random workload with content checks, with each
 *             item and all four, set by kmemi_debug_configure and by
 *             KMEM_DEBUG; kmem_debug_flags() per spec (check and
 *             check_every=N: the checkers' period, the gate left open);
 *             an unknown item, a bad guard_depth or check_every warns;
 *             the string functions (and
 *             kmem_tmpbuf) with the size record
 *
 * The children allocate, the parent never does (it has not set kmem up,
 * so a child's setenv("KMEM_DEBUG") is read by its own kmem_init).  A
 * child writes the report it expects -- built with its own pointers --
 * into a page shared with the parent, which compares it with the child's
 * stderr.
 */
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/mman.h>

#include <kmem/kmem.h>

#include "internal/kmem_impl.h"
#include "t.h"

/* ---- what a child tells its parent ---- */

struct shared {
	int full;	/* want is the whole line, else its beginning */
	char want[512]; /* the report expected */
	char also[128]; /* and this anywhere in it */
	char note[512]; /* what the child saw, for a failure message */
};

static struct shared *sh;
static size_t pg;
static uint64_t g_seed;

static void want(int full, const char *fmt, ...) KMEM_ATTR_PRINTF(2, 3);
static void also(const char *fmt, ...) KMEM_ATTR_PRINTF(1, 2);
static void note(const char *fmt, ...) KMEM_ATTR_PRINTF(1, 2);

static void
want(int full, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sh->want, sizeof sh->want, fmt, ap);
	va_end(ap);
	sh->full = full;
}

static void
also(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sh->also, sizeof sh->also, fmt, ap);
	va_end(ap);
}

static void
note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sh->note, sizeof sh->note, fmt, ap);
	va_end(ap);
}

/* ---- one child's job ---- */

struct job {
	const char *spec; /* KMEM_DEBUG items */
	size_t n;	  /* the size allocated */
	size_t m;	  /* another size, an offset, a variant */
	int how;	  /* which entry point (per child) */
	int env;	  /* KMEM_DEBUG in the environment, not configure */
	int bug;	  /* 1: the program with the bug; 0: without */
	const char *name; /* the cache the report names (NULL: not checked);
			     for a bad item, the item the warning names */
};

/*
 * The KMEM_DEBUG_* bits of a spec (unknown items, guard_depth and a bad
 * check_every: 0).
 */
static unsigned int
spec_bits(const char *spec)
{
	static const struct {
		const char *item;
		unsigned int bit;
	} items[] = {
	    {"size", KMEM_DEBUG_SIZE},
	    {"redzone", KMEM_DEBUG_REDZONE},
	    {"poison", KMEM_DEBUG_POISON},
	    {"guard", KMEM_DEBUG_GUARD},
	    {"check", KMEM_DEBUG_CHECK},
	    {"all", KMEM_DEBUG_SIZE | KMEM_DEBUG_REDZONE | KMEM_DEBUG_POISON},
	};
	unsigned int bits = 0;
	const char *s = spec;

	while (*s != '\0') {
		size_t len = strcspn(s, ",");
		size_t i;

		for (i = 0; i < sizeof items / sizeof items[0]; i++)
			if (strlen(items[i].item) == len &&
			    strncmp(s, items[i].item, len) == 0)
				bits |= items[i].bit;
		if (len > 12 && strncmp(s, "check_every=", 12) == 0 &&
		    strspn(s + 12, "0123456789") == len - 12 && s[12] != '0' &&
		    strtoull(s + 12, NULL, 10) <= (1u << 30))
			bits |= KMEM_DEBUG_CHECK;
		s += len;
		if (*s == ',')
			s++;
	}
	return bits;
}

static unsigned int g_bits;
static int g_checked;

/* In the child, before its first allocation. */
static void
debug_on(const struct job *j)
{
	g_bits = spec_bits(j->spec);
	g_checked = 0;
	if (j->env) {
		if (setenv("KMEM_DEBUG", j->spec, 1) != 0)
			T_FAIL("setenv: %s", strerror(errno));
	} else {
		T_EQ(kmemi_debug_configure(j->spec), g_bits);
	}
}

/* Hide a pointer's origin from the compiler (alloc_size, object-size). */
static unsigned char *
launder(void *p)
{
	unsigned char *volatile v = p;

	return v;
}

static size_t
align_of(size_t n)
{
	if (n % pg == 0)
		return pg;
	return n < 16 ? 8 : 16;
}

static void
check_new(const void *p, size_t n)
{
	if (p == NULL)
		T_FAIL("allocation of %zu returned NULL", n);
	if ((uintptr_t)p % align_of(n) != 0)
		T_FAIL("allocation of %zu at %p: not %zu-aligned", n, p,
		    align_of(n));
	if (!g_checked) {
		g_checked = 1;
		T_EQ(kmem_debug_flags(), g_bits);
	}
}

static unsigned char *
alloc_how(size_t n, int how)
{
	unsigned char *p;

	switch (how) {
	case 1:
		p = kmem_zalloc(n, KM_SLEEP);
		break;
	case 2:
		p = kmem_intr_alloc(n, KM_SLEEP);
		break;
	case 3:
		p = kmem_intr_zalloc(n, KM_SLEEP);
		break;
	default:
		p = kmem_alloc(n, KM_SLEEP);
		break;
	}
	check_new(p, n);
	return p;
}

static unsigned char *
xalloc(size_t n)
{
	unsigned char *p = alloc_how(n, 0);

	memset(p, 0xa5, n);
	return p;
}

static const char *
alloc_name(int how)
{
	static const char *const names[] = {
	    "kmem_alloc", "kmem_zalloc", "kmem_intr_alloc", "kmem_intr_zalloc"};

	return names[how];
}

static void
free_how(void *p, size_t n, int how)
{
	if (how == 1)
		kmem_intr_free(p, n);
	else
		kmem_free(p, n);
}

static const char *
free_name(int how)
{
	return how == 1 ? "kmem_intr_free" : "kmem_free";
}

/* ---- the parent's side ---- */

/*
 * A case that fails is reported and the rest still run, so that one run
 * lists every report that differs; the test fails at the end.
 */
static int g_failed;

#define SOFT_FAIL(...)                                                         \
	do {                                                                   \
		fprintf(stderr, "FAIL %s:%d (%s): ", __FILE__, __LINE__,       \
		    t_current);                                                \
		fprintf(stderr, __VA_ARGS__);                                  \
		fprintf(stderr, "\n");                                         \
		fflush(stderr);                                                \
		g_failed++;                                                    \
		return;                                                        \
	} while (0)

static const char *
describe(const char *what, const struct job *j)
{
	static char d[256];

	snprintf(d, sizeof d, "%s [%s%s] n=%zu m=%zu how=%d", what, j->spec,
	    j->env ? ", env" : "", j->n, j->m, j->how);
	return d;
}

/*
 * Valgrind's own lines ("==PID== ...") are not the child's report.  (It
 * writes them to its own copy of the stderr it started with, so they
 * reach the pipe only when it was told --log-fd=2.)
 */
static void
drop_valgrind_lines(char *buf)
{
	char *r = buf, *w = buf;

	while (*r != '\0') {
		size_t len = strcspn(r, "\n");

		if (r[len] == '\n')
			len++;
		if (strncmp(r, "==", 2) != 0) {
			memmove(w, r, len);
			w += len;
		}
		r += len;
	}
	*w = '\0';
}

static void
run_child(void (*fn)(void *), struct job *j, char *buf, size_t n, int *st)
{
	memset(sh, 0, sizeof *sh);
	*st = t_child(fn, j, buf, n);
}

/* The program with the bug aborts with the report the child expected. */
static void
expect_abort(const char *what, void (*fn)(void *), struct job j)
{
	char buf[8192];
	const char *d = describe(what, &j);
	size_t wl;
	int st;

	j.bug = 1;
	run_child(fn, &j, buf, sizeof buf, &st);
	if (t_under_valgrind())
		drop_valgrind_lines(buf);
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
		SOFT_FAIL("%s: child did not abort (status %#x; it noted: %s); "
			  "expected \"%s\"; stderr:\n%s",
		    d, (unsigned)st, sh->note, sh->want, buf);
	wl = strlen(sh->want);
	if (wl == 0)
		SOFT_FAIL(
		    "%s: the child aborted before it said what to expect; "
		    "stderr:\n%s",
		    d, buf);
	if (strncmp(buf, sh->want, wl) != 0)
		SOFT_FAIL("%s: expected %s\n  \"%s\"\ngot:\n  %s", d,
		    sh->full ? "the line" : "a line starting", sh->want, buf);
	if (sh->full && strcmp(buf + wl, "\n") != 0)
		SOFT_FAIL("%s: expected exactly\n  \"%s\"\ngot:\n  %s", d,
		    sh->want, buf);
	if (sh->also[0] != '\0' && strstr(buf, sh->also) == NULL)
		SOFT_FAIL(
		    "%s: the report lacks \"%s\":\n  %s", d, sh->also, buf);
	if (strchr(buf, '\n') != buf + strlen(buf) - 1)
		SOFT_FAIL("%s: not exactly one line:\n%s", d, buf);
	printf("   %s: %s", d, buf);
}

/* The program with the bug faults (SIGSEGV) before kmem reports anything. */
static void
expect_segv(const char *what, void (*fn)(void *), struct job j)
{
	char buf[8192];
	const char *d = describe(what, &j);
	const char *how = "SIGSEGV";
	int st;

	j.bug = 1;
	run_child(fn, &j, buf, sizeof buf, &st);
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) {
		/* nothing else to see */
	} else if (WIFEXITED(st) && WEXITSTATUS(st) != 0 &&
	    strstr(buf, "Sanitizer: SEGV on unknown address") != NULL) {
		/* ASan's or TSan's handler caught it first. */
		how = "SEGV reported by the sanitizer's handler";
	} else {
		SOFT_FAIL("%s: child did not die of SIGSEGV (status %#x; it "
			  "noted: %s); stderr:\n%s",
		    d, (unsigned)st, sh->note, buf);
	}
	if (strncmp(buf, "kmem: ", 6) == 0 || strstr(buf, "\nkmem: ") != NULL)
		SOFT_FAIL("%s: kmem reported something before the fault:\n%s",
		    d, buf);
	printf("   %s: %s as expected\n", d, how);
}

/* The program without the bug exits 0 and prints nothing. */
static void
expect_clean(const char *what, void (*fn)(void *), struct job j)
{
	char buf[8192];
	const char *d = describe(what, &j);
	int st;

	j.bug = 0;
	run_child(fn, &j, buf, sizeof buf, &st);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		SOFT_FAIL("%s: the clean program failed (status %#x; it noted: "
			  "%s); stderr:\n%s",
		    d, (unsigned)st, sh->note, buf);
	if (buf[0] != '\0')
		SOFT_FAIL(
		    "%s: the clean program printed on stderr:\n%s", d, buf);
}

static void
abort_and_clean(const char *what, void (*fn)(void *), struct job j)
{
	expect_abort(what, fn, j);
	expect_clean(what, fn, j);
}

static void
segv_and_clean(const char *what, void (*fn)(void *), struct job j)
{
	expect_segv(what, fn, j);
	expect_clean(what, fn, j);
}

static const char *const all_items[] = {"size", "redzone", "poison", "guard"};
#define ALL4 "size,redzone,poison,guard"

/* ---- size: kmem_free with another size ---- */

static void
c_size_mismatch(void *arg)
{
	const struct job *j = arg;
	unsigned char *p;

	debug_on(j);
	p = xalloc(j->n);
	if (j->bug) {
		want(1, "kmem: kmem_free(%p, %zu) != allocated size %zu",
		    (void *)p, j->m, j->n);
		kmem_free(p, j->m);
		note("kmem_free(%p, %zu) of %zu bytes returned", (void *)p,
		    j->m, j->n);
		return;
	}
	kmem_free(p, j->n);
}

static void
test_size_mismatch(void)
{
	static const size_t cases[][2] = {
	    {40, 48},	     /* one class (kmem-00048): NetBSD's KMEM_SIZE */
	    {48, 40},	     /* the same, smaller */
	    {100, 20},	     /* another class */
	    {20, 100},	     /* another class, larger */
	    {16384, 16385},  /* the last class against the large path */
	    {100000, 99999}, /* large, the same page count */
	    {100000, 20000}, /* large, another page count */
	};
	size_t i, k;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct job j = {
		    .spec = "size", .n = cases[i][0], .m = cases[i][1]};

		abort_and_clean("size mismatch", c_size_mismatch, j);
	}
	/* "size, and any item": the record is kept with every item. */
	for (k = 1; k < 4; k++) {
		for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			struct job j = {.spec = all_items[k],
			    .n = cases[i][0],
			    .m = cases[i][1]};

			abort_and_clean("size mismatch", c_size_mismatch, j);
		}
	}
	{
		struct job j = {.spec = ALL4, .n = 40, .m = 48};

		abort_and_clean("size mismatch", c_size_mismatch, j);
	}
}

/* ---- double free ---- */

static void
c_double_free(void *arg)
{
	const struct job *j = arg;
	unsigned char *p, *q;

	debug_on(j);
	p = xalloc(j->n);
	free_how(p, j->n, j->how);
	if (j->bug) {
		if (j->name != NULL)
			want(1,
			    "kmem: %s(%p, %zu): double free (allocated size "
			    "%zu, cache %s)",
			    free_name(j->how), (void *)p, j->n, j->n, j->name);
		else
			want(0,
			    "kmem: %s(%p, %zu): double free (allocated size "
			    "%zu, cache ",
			    free_name(j->how), (void *)p, j->n, j->n);
		free_how(p, j->n, j->how);
		note("the second free of %p returned", (void *)p);
		return;
	}
	/* Without the bug: the memory comes back and is freed once more. */
	q = xalloc(j->n);
	free_how(q, j->n, j->how);
}

static void
test_double_free(void)
{
	static const struct {
		const char *spec;
		size_t n;
		const char *name; /* NULL: the redzone makes it bigger */
	} cases[] = {
	    {"size", 40, "kmem-00048"},
	    {"size", 64, "kmem-00064"},
	    {"size", 100000, "kva"},
	    {"redzone", 40, NULL},
	    {"redzone", 100000, NULL},
	    {"poison", 40, "kmem-00048"},
	    {"poison", 100000, "kva"},
	    {"guard", 40, "guard"},
	    {"guard", 100000, "guard"},
	    {ALL4, 40, NULL},
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct job j = {.spec = cases[i].spec,
		    .n = cases[i].n,
		    .name = cases[i].name};

		abort_and_clean("double free", c_double_free, j);
	}
	/* FN is the entry point called. */
	{
		struct job j = {
		    .spec = "size", .n = 40, .how = 1, .name = "kmem-00048"};

		abort_and_clean("double free", c_double_free, j);
		j.n = 100000;
		j.name = "kva";
		abort_and_clean("double free", c_double_free, j);
	}
}

/* ---- foreign pointers ---- */

/* An interior pointer: p + m of an n-byte object. */
static void
c_interior(void *arg)
{
	const struct job *j = arg;
	unsigned char *p;

	debug_on(j);
	p = xalloc(j->n);
	if (j->bug) {
		if (j->name != NULL)
			want(1,
			    "kmem: kmem_free(%p, %zu): interior pointer, %zu "
			    "bytes into object %p of cache %s",
			    (void *)(p + j->m), j->n, j->m, (void *)p, j->name);
		else
			want(0,
			    "kmem: kmem_free(%p, %zu): interior pointer, %zu "
			    "bytes into object %p of cache ",
			    (void *)(p + j->m), j->n, j->m, (void *)p);
		kmem_free(launder(p) + j->m, j->n);
		note("kmem_free(p + %zu) returned", j->m);
		return;
	}
	kmem_free(p, j->n);
}

static unsigned char static_buf[256] __attribute__((aligned(64)));

/*
 * Not from kmem: m = 0 a stack array, 1 a static one, 2 malloc(3);
 * 3 an object of the same cache next to a live one, never handed out.
 */
static void
c_foreign(void *arg)
{
	const struct job *j = arg;
	unsigned char stack_buf[256] __attribute__((aligned(64)));
	unsigned char *p, *q = NULL, *mem;

	memset(stack_buf, 0, sizeof stack_buf);
	mem = malloc(256);
	if (mem == NULL)
		T_FAIL("malloc failed");
	debug_on(j);
	p = xalloc(j->n);
	switch (j->m) {
	case 0:
		q = launder(stack_buf);
		break;
	case 1:
		q = launder(static_buf);
		break;
	case 2:
		q = mem;
		break;
	default:
		/* Its neighbour in the same 4 KiB pool page. */
		q = ((uintptr_t)(p + j->n) & 4095) != 0 ? p + j->n : p - j->n;
		break;
	}
	if (j->bug) {
		if (j->m == 3)
			want(1,
			    "kmem: kmem_free(%p, %zu): pointer not allocated "
			    "by kmem (a free object of cache %s)",
			    (void *)q, j->n, j->name);
		else
			want(1,
			    "kmem: kmem_free(%p, %zu): pointer not allocated "
			    "by kmem",
			    (void *)q, j->n);
		kmem_free(q, j->n);
		note("kmem_free(%p) returned", (void *)q);
		return;
	}
	kmem_free(p, j->n);
	free(mem);
}

static void
test_foreign(void)
{
	size_t k, m;

	{
		struct job j = {
		    .spec = "size", .n = 64, .m = 8, .name = "kmem-00064"};

		abort_and_clean("interior pointer", c_interior, j);
		j.spec = "poison";
		abort_and_clean("interior pointer", c_interior, j);
		j.m = 63;
		abort_and_clean("interior pointer", c_interior, j);
		j.spec = "size";
		j.n = 1000;
		j.m = 500;
		j.name = "kmem-01024";
		abort_and_clean("interior pointer", c_interior, j);
		j.spec = "redzone";
		j.n = 64;
		j.m = 8;
		j.name = NULL;
		abort_and_clean("interior pointer", c_interior, j);
		j.spec = "guard";
		j.name = "guard";
		abort_and_clean("interior pointer", c_interior, j);
	}
	for (k = 0; k < 4; k++) {
		for (m = 0; m < 3; m++) {
			struct job j = {.spec = all_items[k], .n = 64, .m = m};

			abort_and_clean("foreign pointer", c_foreign, j);
		}
	}
	{
		struct job j = {.spec = ALL4, .n = 64, .m = 0};

		abort_and_clean("foreign pointer", c_foreign, j);
		/* A free object of a cache: plain caches only. */
		j.m = 3;
		j.spec = "size";
		j.name = "kmem-00064";
		abort_and_clean("free object", c_foreign, j);
		j.spec = "poison";
		abort_and_clean("free object", c_foreign, j);
		j.spec = "size";
		j.n = 48;
		j.name = "kmem-00048";
		abort_and_clean("free object", c_foreign, j);
	}
}

/* ---- redzone ---- */

static void
c_redzone(void *arg)
{
	const struct job *j = arg;
	unsigned char *p;

	debug_on(j);
	p = xalloc(j->n);
	memset(p, 'x', j->n);
	if (j->bug) {
		want(0,
		    "kmem: kmem_free(%p, %zu): redzone overwritten at offset "
		    "%zu: expected 0x",
		    (void *)p, j->n, j->n);
		also(", found 0x00 (cache ");
		launder(p)[j->n] = '\0'; /* the string's NUL, one too far */
		kmem_free(p, j->n);
		note("kmem_free(%p, %zu) returned", (void *)p, j->n);
		return;
	}
	launder(p)[j->n - 1] = '\0'; /* the last byte is the object's */
	kmem_free(p, j->n);
}

static void
test_redzone(void)
{
	static const size_t sizes[] = {
	    1, 13, 40, 48, 100, 5000, 16384, 20000, 24576};
	size_t i;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct job j = {.spec = "redzone", .n = sizes[i]};

		abort_and_clean("redzone", c_redzone, j);
	}
	{
		struct job j = {.spec = ALL4, .n = 40};

		abort_and_clean("redzone", c_redzone, j);
		j.spec = "size,redzone";
		abort_and_clean("redzone", c_redzone, j);
		j.n = 13;
		j.env = 1;
		abort_and_clean("redzone", c_redzone, j);
	}
}

/* ---- poison ---- */

/*
 * One CPU, so that the per-CPU cache the object is freed to is the one
 * the next allocation takes from (without rseq -- valgrind -- the CPU is
 * read at each call, and a migration in between would miss it).
 */
static void
pin_cpu(void)
{
	cpu_set_t set;
	int cpu = sched_getcpu();

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	(void)sched_setaffinity(0, sizeof set, &set);
}

/* Free an object, (bug:) write into it, allocate the same size again. */
static void
c_poison(void *arg)
{
	const struct job *j = arg;
	unsigned char *p, *q, *v;
	size_t i;

	pin_cpu();
	debug_on(j);
	p = xalloc(j->n);
	kmem_free(p, j->n);
	if (j->bug) {
		v = launder(p);
		v[j->m] = (unsigned char)~v[j->m]; /* not the pattern */
		want(0,
		    "kmem: %s(%zu): write after free: object %p offset %zu: "
		    "expected 0x",
		    alloc_name(j->how), j->n, (void *)p, j->m);
		q = alloc_how(j->n, j->how);
		note("no report; the allocation after the free returned %p, "
		     "the freed object was %p",
		    (void *)q, (void *)p);
		return;
	}
	q = alloc_how(j->n, j->how);
	if (j->how == 1 || j->how == 3)
		for (i = 0; i < j->n; i++)
			if (q[i] != 0)
				T_FAIL("kmem_zalloc(%zu): byte %zu is %#x",
				    j->n, i, q[i]);
	memset(q, 1, j->n);
	kmem_free(q, j->n);
}

static void
test_poison(void)
{
	static const size_t cases[][2] = {
	    {8, 7}, {40, 20}, {64, 0}, {64, 63}, {1000, 999}, {16384, 8000},
	    /*
	     * Not larger sizes: a freed large block goes back to the page
	     * arena at once and is filled, never checked (contract).
	     */
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct job j = {
		    .spec = "poison", .n = cases[i][0], .m = cases[i][1]};

		abort_and_clean("poison", c_poison, j);
	}
	{
		struct job j = {.spec = "poison", .n = 40, .m = 39, .how = 1};

		abort_and_clean("poison", c_poison, j);
		j.how = 2;
		abort_and_clean("poison", c_poison, j);
		j.how = 0;
		j.spec = "size,redzone,poison";
		abort_and_clean("poison", c_poison, j);
		j.spec = "poison";
		j.env = 1;
		abort_and_clean("poison", c_poison, j);
	}
}

/* ---- guard ---- */

/* Write the first byte of the page after the object's end. */
static void
c_guard_over(void *arg)
{
	const struct job *j = arg;
	unsigned char *p, *end;

	debug_on(j);
	p = xalloc(j->n);
	if (j->bug) {
		end = (unsigned char *)(((uintptr_t)p + j->n + pg - 1) &
		    ~(uintptr_t)(pg - 1));
		t_segv_default();
		note("wrote %p (object %p, %zu bytes) without a fault",
		    (void *)end, (void *)p, j->n);
		*(volatile unsigned char *)launder(end) = 1;
		kmem_free(p, j->n);
		return;
	}
	kmem_free(p, j->n);
}

/* Read (m = 0) or write (m = 1) the object after freeing it. */
static void
c_guard_uaf(void *arg)
{
	const struct job *j = arg;
	volatile unsigned char *v;
	unsigned char *p;

	debug_on(j);
	p = xalloc(j->n);
	kmem_free(p, j->n);
	if (j->bug) {
		t_segv_default();
		v = launder(p);
		if (j->m == 0) {
			note("read %#x from freed %p without a fault", v[0],
			    (void *)p);
		} else {
			v[j->n - 1] = 0;
			note("wrote freed %p without a fault", (void *)p);
		}
		return;
	}
	p = xalloc(j->n);
	kmem_free(p, j->n);
}

/* The bytes between the object's end and the guard page: the redzone. */
static void
c_guard_slack(void *arg)
{
	const struct job *j = arg;
	unsigned char *p;

	debug_on(j);
	p = xalloc(j->n);
	if (j->bug) {
		want(0,
		    "kmem: kmem_free(%p, %zu): redzone overwritten at offset "
		    "%zu: expected 0x",
		    (void *)p, j->n, j->m);
		launder(p)[j->m] = 0;
		kmem_free(p, j->n);
		note("kmem_free returned");
		return;
	}
	kmem_free(p, j->n);
}

/* Write the byte before the object. */
static void
c_guard_under(void *arg)
{
	const struct job *j = arg;
	unsigned char *p, *v;

	debug_on(j);
	p = xalloc(j->n);
	v = launder(p);
	if (j->bug) {
		want(0,
		    "kmem: kmem_free(%p, %zu): memory before the object "
		    "overwritten at offset -1: expected 0x",
		    (void *)p, j->n);
		v[-1] = (unsigned char)~v[-1];
		kmem_free(p, j->n);
		note("kmem_free returned");
		return;
	}
	v[0] = (unsigned char)~v[0];
	kmem_free(p, j->n);
}

/* Free 10 blocks; (bug:) read block m, still quarantined. */
static void
c_guard_depth(void *arg)
{
	const struct job *j = arg;
	unsigned char *b[10];
	size_t i;

	debug_on(j);
	for (i = 0; i < 10; i++)
		b[i] = xalloc(j->n);
	for (i = 0; i < 10; i++)
		kmem_free(b[i], j->n);
	if (j->bug) {
		t_segv_default();
		note("read %#x from freed block %zu (%p) without a fault",
		    launder(b[j->m])[0], j->m, (void *)b[j->m]);
	}
}

static int
count_maps(void)
{
	char buf[4096];
	ssize_t r, i;
	int fd = open("/proc/self/maps", O_RDONLY), lines = 0;

	if (fd < 0)
		return -1;
	while ((r = read(fd, buf, sizeof buf)) > 0)
		for (i = 0; i < r; i++)
			lines += buf[i] == '\n';
	close(fd);
	return lines;
}

/* The process's address space in KiB (VmSize), or -1. */
static long
vm_size_kb(void)
{
	char buf[4096], *v;
	ssize_t r;
	int fd = open("/proc/self/status", O_RDONLY);

	if (fd < 0)
		return -1;
	r = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (r <= 0)
		return -1;
	buf[r] = '\0';
	v = strstr(buf, "VmSize:");
	return v != NULL ? strtol(v + 7, NULL, 10) : -1;
}

/*
 * Many cycles: the quarantine gives its oldest entries back, so neither
 * the mappings nor the address space grow with the number of cycles.
 * (Quarantined slots are inaccessible neighbours that the kernel merges
 * into few maps, so the address space is the check that tells: 10000
 * slots kept would be 80 MB more, guard_depth=16 keeps 16.)
 */
static void
c_guard_cycles(void *arg)
{
	const struct job *j = arg;
	int before, after;
	long kb0, kb1;
	size_t i;

	debug_on(j);
	kmem_free(xalloc(j->n), j->n);
	before = count_maps();
	kb0 = vm_size_kb();
	for (i = 0; i < j->m; i++) {
		unsigned char *p = alloc_how(j->n, 0);

		memset(p, (int)i, j->n);
		kmem_free(p, j->n);
	}
	after = count_maps();
	kb1 = vm_size_kb();
	note("%zu cycles: mappings %d -> %d, address space %ld -> %ld KiB",
	    j->m, before, after, kb0, kb1);
	if (before >= 0 && after > before + 1000)
		T_FAIL("%s", sh->note);
	if (kb0 >= 0 && kb1 > kb0 + 16 * 1024)
		T_FAIL("%s", sh->note);
}

static void
test_guard(void)
{
	static const size_t sizes[] = {100, 4096};
	size_t i;

	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		struct job j = {.spec = "guard", .n = sizes[i]};

		segv_and_clean("guard overflow", c_guard_over, j);
		j.m = 0;
		segv_and_clean("guard read after free", c_guard_uaf, j);
		j.m = 1;
		segv_and_clean("guard write after free", c_guard_uaf, j);
		j.m = 0;
		/*
		 * Below an object that does not start on a page: the slack
		 * is checked at free.  A page multiple starts on its first
		 * page, right above an inaccessible one: p[-1] faults.
		 */
		if (sizes[i] % 4096 != 0)
			abort_and_clean("guard underflow", c_guard_under, j);
		else
			segv_and_clean("guard underflow", c_guard_under, j);
	}
	{
		struct job j = {.spec = "guard", .n = 100, .m = 100};

		abort_and_clean("guard slack", c_guard_slack, j);
		j.m = 111;
		abort_and_clean("guard slack", c_guard_slack, j);
		j.spec = ALL4;
		j.m = 100;
		abort_and_clean("guard slack", c_guard_slack, j);
		j.spec = "guard";
		j.n = 20000;
		j.m = 0;
		segv_and_clean("guard overflow", c_guard_over, j);
		j.spec = ALL4;
		j.n = 40;
		segv_and_clean("guard overflow", c_guard_over, j);
		segv_and_clean("guard read after free", c_guard_uaf, j);
	}
	{
		struct job j = {
		    .spec = "guard,guard_depth=4", .n = 100, .m = 9};

		segv_and_clean("guard quarantine", c_guard_depth, j);
		j.m = 6; /* the 4th most recent free */
		segv_and_clean("guard quarantine", c_guard_depth, j);
	}
	{
		struct job j = {.spec = "guard,guard_depth=16",
		    .n = 100,
		    .m = t_under_valgrind() ? 2000 : 10000};

		expect_clean("guard cycles", c_guard_cycles, j);
		j.n = 20000;
		j.m = t_under_valgrind() ? 500 : 3000;
		expect_clean("guard cycles", c_guard_cycles, j);
	}
}

/* ---- a clean workload with the items on ---- */

#define NSLOT 256

struct wslot {
	unsigned char *p;
	size_t n;
	unsigned char c; /* every byte of the object */
	unsigned char how;
};

static size_t
w_size(void)
{
	static const size_t edges[] = {1, 8, 15, 16, 17, 4095, 4096, 4097, 8192,
	    16383, 16384, 16385, 20480, 65536, 70000};

	switch (t_rand_below(10)) {
	case 0:
		return edges[t_rand_below(sizeof edges / sizeof edges[0])];
	case 1:
	case 2:
	case 3:
		return 1 + t_rand_below(128);
	case 4:
	case 5:
		return 1 + t_rand_below(2048);
	case 6:
	case 7:
		return 1 + t_rand_below(16384);
	default:
		return 1 + t_rand_below(70000);
	}
}

/* Objects: every byte is c; strings: byte i is 1 + i % 255, then NUL. */
static void
w_check(const struct wslot *s)
{
	size_t i;

	if (s->how == 4) {
		for (i = 0; i + 1 < s->n; i++)
			if (s->p[i] != (unsigned char)(1 + i % 255))
				T_FAIL("string %p (%zu bytes): byte %zu is "
				       "%#x",
				    (void *)s->p, s->n, i, s->p[i]);
		if (s->p[s->n - 1] != '\0')
			T_FAIL("string %p lost its NUL", (void *)s->p);
		return;
	}
	for (i = 0; i < s->n; i++)
		if (s->p[i] != s->c)
			T_FAIL("object %p (%zu bytes): byte %zu is %#x, "
			       "not %#x",
			    (void *)s->p, s->n, i, s->p[i], s->c);
}

static void
w_free(struct wslot *s)
{
	w_check(s);
	switch (s->how) {
	case 2:
		kmem_intr_free(s->p, s->n);
		break;
	case 4:
		kmem_strfree((char *)s->p);
		break;
	default:
		kmem_free(s->p, s->n);
		break;
	}
	s->p = NULL;
}

/*
 * how: 0 kmem_alloc, 1 kmem_zalloc, 2 kmem_intr_alloc + kmem_intr_free,
 * 3 kmem_intr_zalloc, 4 kmem_asprintf + kmem_strfree.
 */
static void
w_alloc(struct wslot *s)
{
	size_t i;

	s->n = w_size();
	s->how = (unsigned char)t_rand_below(5);
	s->c = (unsigned char)(1 + t_rand_below(255));
	if (s->how == 4 && s->n > 4096)
		s->how = 0;
	if (s->how == 4) {
		s->p =
		    (unsigned char *)kmem_asprintf("%*s", (int)(s->n - 1), "");
		check_new(s->p, s->n);
		if (strlen((char *)s->p) != s->n - 1)
			T_FAIL("kmem_asprintf: %zu characters, not %zu",
			    strlen((char *)s->p), s->n - 1);
		for (i = 0; i + 1 < s->n; i++)
			s->p[i] = (unsigned char)(1 + i % 255);
		return;
	}
	s->p = alloc_how(s->n, s->how);
	if (s->how == 1 || s->how == 3)
		for (i = 0; i < s->n; i++)
			if (s->p[i] != 0)
				T_FAIL("zeroed allocation of %zu: byte %zu is "
				       "%#x",
				    s->n, i, s->p[i]);
	memset(s->p, s->c, s->n);
}

static void
c_workload(void *arg)
{
	const struct job *j = arg;
	static struct wslot slot[NSLOT];
	uint64_t ops = t_scale(20000), i;
	size_t k;

	debug_on(j);
	t_set_seed(g_seed ^ (j->m * 0x9e3779b97f4a7c15ull));
	for (i = 0; i < ops; i++) {
		struct wslot *s = &slot[t_rand_below(NSLOT)];

		if (s->p != NULL)
			w_free(s);
		else
			w_alloc(s);
	}
	for (k = 0; k < NSLOT; k++)
		if (slot[k].p != NULL)
			w_free(&slot[k]);
	kmem_reap_all();
	T_EQ(kmem_debug_flags(), g_bits);
}

static void
test_workload(void)
{
	static const char *const specs[] = {
	    "size", "redzone", "poison", "guard", ALL4};
	size_t i;

	printf("   ops: %ju per run\n", (uintmax_t)t_scale(20000));
	for (i = 0; i < sizeof specs / sizeof specs[0]; i++) {
		struct job j = {.spec = specs[i], .m = i};

		expect_clean("workload", c_workload, j);
	}
	/* KMEM_DEBUG read by kmem_init at the first allocation. */
	{
		struct job j = {.spec = ALL4, .m = 10, .env = 1};

		expect_clean("workload", c_workload, j);
		j.spec = "poison";
		expect_clean("workload", c_workload, j);
	}
}

/* ---- kmem_debug_flags, and an unknown item ---- */

static void
c_flags(void *arg)
{
	const struct job *j = arg;
	unsigned char *p;

	debug_on(j);
	p = xalloc(24);
	kmem_free(p, 24);
	T_EQ(kmem_debug_flags(), j->n);
	p = xalloc(50000);
	kmem_free(p, 50000);
	T_EQ(kmem_debug_flags(), j->n);
	/* check sets the checkers' period, and alone leaves the gate open. */
	T_EQ(kmemi_check_every, j->m);
	T_EQ(KMEMI_GATE() & KMEM_GATE_DEBUG, j->n & ~KMEM_DEBUG_CHECK);
}

static void
test_flags(void)
{
	static const struct {
		const char *spec;
		unsigned int bits;
		size_t every; /* kmemi_check_every */
	} cases[] = {
	    {"", 0, 0},
	    {"check", KMEM_DEBUG_CHECK, 1},
	    {"size,check", KMEM_DEBUG_SIZE | KMEM_DEBUG_CHECK, 1},
	    {"check_every=7", KMEM_DEBUG_CHECK, 7},
	    {"poison,check_every=1000,check",
		KMEM_DEBUG_POISON | KMEM_DEBUG_CHECK, 1000},
	    {"size", KMEM_DEBUG_SIZE, 0},
	    {"redzone", KMEM_DEBUG_REDZONE, 0},
	    {"poison", KMEM_DEBUG_POISON, 0},
	    {"guard", KMEM_DEBUG_GUARD, 0},
	    {"poison,size", KMEM_DEBUG_SIZE | KMEM_DEBUG_POISON, 0},
	    {"redzone,guard", KMEM_DEBUG_REDZONE | KMEM_DEBUG_GUARD, 0},
	    {"guard,guard_depth=4", KMEM_DEBUG_GUARD, 0},
	    {"size,,poison,", KMEM_DEBUG_SIZE | KMEM_DEBUG_POISON, 0},
	    /* not in kmem.h's list; debug.c: the three that keep the layout */
	    {"all", KMEM_DEBUG_SIZE | KMEM_DEBUG_REDZONE | KMEM_DEBUG_POISON,
		0},
	    {ALL4,
		KMEM_DEBUG_SIZE | KMEM_DEBUG_REDZONE | KMEM_DEBUG_POISON |
		    KMEM_DEBUG_GUARD,
		0},
	};
	size_t i;
	int env;

	T_EQ(spec_bits(ALL4), 0xf);
	for (env = 0; env < 2; env++) {
		for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			struct job j = {.spec = cases[i].spec,
			    .n = cases[i].bits,
			    .m = cases[i].every,
			    .env = env};

			expect_clean("flags", c_flags, j);
		}
	}
}

/*
 * An unknown item, a bad guard_depth: one warning naming KMEM_DEBUG and
 * the item (j.name), no abort, the other items apply.
 */
static void
expect_warning(struct job j)
{
	const char *d = describe("bad item", &j);
	char buf[8192];
	int st;

	run_child(c_flags, &j, buf, sizeof buf, &st);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		SOFT_FAIL("%s: status %#x; stderr:\n%s", d, (unsigned)st, buf);
	if (strstr(buf, "KMEM_DEBUG") == NULL || strstr(buf, j.name) == NULL)
		SOFT_FAIL("%s: no warning naming KMEM_DEBUG and %s:\n%s", d,
		    j.name, buf);
	if (strchr(buf, '\n') != buf + strlen(buf) - 1)
		SOFT_FAIL("%s: not one line:\n%s", d, buf);
	printf("   %s: %s", d, buf);
}

static void
test_bogus(void)
{
	static const struct {
		const char *spec;
		unsigned int bits;
		const char *item;
	} cases[] = {
	    {"bogus", 0, "bogus"},
	    {"size,bogus", KMEM_DEBUG_SIZE, "bogus"},
	    {"bogus,poison", KMEM_DEBUG_POISON, "bogus"},
	    {"guard,guard_depth=0", KMEM_DEBUG_GUARD, "guard_depth=0"},
	    {"guard_depth=x,size", KMEM_DEBUG_SIZE, "guard_depth=x"},
	    {"check_every=0", 0, "check_every=0"},
	    {"size,check_every=x", KMEM_DEBUG_SIZE, "check_every=x"},
	    {"check_every=1073741825", 0, "check_every is 1 to 1073741824"},
	};
	size_t i;
	int env;

	for (env = 0; env < 2; env++) {
		for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			struct job j = {.spec = cases[i].spec,
			    .n = cases[i].bits,
			    .env = env,
			    .name = cases[i].item};

			expect_warning(j);
		}
	}
}

/* ---- the string functions with the size record ---- */

static void
c_strings(void *arg)
{
	const struct job *j = arg;
	char stackbuf[64], big[300];
	char *s;
	void *t;
	size_t len;

	debug_on(j);
	s = kmem_asprintf("%s-%d-%0*d", "abc", 42, 200, 7);
	if (s == NULL || strlen(s) != 207 || strncmp(s, "abc-42-000", 10) != 0)
		T_FAIL("kmem_asprintf: \"%s\"", s ? s : "(null)");
	kmem_strfree(s);
	s = kmem_asprintf("%s", "");
	T_ASSERT(s != NULL && s[0] == '\0');
	kmem_strfree(s);
	s = kmem_strdup("hello", KM_SLEEP);
	T_ASSERT(s != NULL && strcmp(s, "hello") == 0);
	kmem_strfree(s);
	memset(big, 'b', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	s = kmem_strdupsize(big, &len, KM_SLEEP);
	T_EQ(len, sizeof big);
	kmem_free(s, len);
	s = kmem_strndup("abcdef", 3, KM_SLEEP);
	T_ASSERT(s != NULL && strcmp(s, "abc") == 0);
	kmem_strfree(s);
	s = kmem_strndup("ab", 30, KM_NOSLEEP);
	T_ASSERT(s != NULL && strcmp(s, "ab") == 0);
	kmem_strfree(s);
	kmem_strfree(NULL);
	t = kmem_tmpbuf_alloc(1000, stackbuf, sizeof stackbuf, KM_SLEEP);
	T_ASSERT(t != NULL && t != (void *)stackbuf);
	memset(t, 1, 1000);
	kmem_tmpbuf_free(t, 1000, stackbuf);
	t = kmem_tmpbuf_alloc(10, stackbuf, sizeof stackbuf, KM_SLEEP);
	T_ASSERT(t == (void *)stackbuf);
	kmem_tmpbuf_free(t, 10, stackbuf);
	s = kmem_strdup("abcdef", KM_SLEEP);
	if (j->bug) {
		/* Shortened: kmem_strfree frees strlen + 1 = 3 of 7 bytes. */
		want(0, "kmem: ");
		also("(%p, 3) != allocated size 7", (void *)s);
		s[2] = '\0';
		kmem_strfree(s);
		note("kmem_strfree of a shortened string returned");
		return;
	}
	kmem_strfree(s);
}

static void
test_strings(void)
{
	struct job j = {.spec = "size"};

	abort_and_clean("strings", c_strings, j);
	j.spec = ALL4;
	abort_and_clean("strings", c_strings, j);
}

int
main(void)
{
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		T_FAIL("mmap: %s", strerror(errno));
	/* The children choose their own items; nothing printed at exit. */
	unsetenv("KMEM_DEBUG");
	unsetenv("KMEM_STATS");
	pg = (size_t)sysconf(_SC_PAGESIZE);
	g_seed = t_seed();

	T_RUN(test_size_mismatch);
	T_RUN(test_double_free);
	T_RUN(test_foreign);
	T_RUN(test_redzone);
	T_RUN(test_poison);
	T_RUN(test_guard);
	T_RUN(test_workload);
	T_RUN(test_flags);
	T_RUN(test_bogus);
	T_RUN(test_strings);
	munmap(sh, sizeof *sh);
	if (g_failed != 0) {
		printf("%d case(s) failed (FAIL lines above)\n", g_failed);
		return 1;
	}
	return t_done();
}
