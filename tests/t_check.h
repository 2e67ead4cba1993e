/*
 * t_check.h -- what the tests of the consistency checkers share: a child
 * damages a structure, says (t_ck_want) the report it expects -- it knows
 * the addresses and counts, the parent does not -- and must then die of
 * SIGABRT with one "kmem: " line that contains it.
 */
#ifndef KMEM_TESTS_T_CHECK_H
#define KMEM_TESTS_T_CHECK_H

#include <stdarg.h>
#include <sys/mman.h>

#include "t.h"

#define T_WANT_MAX 1024

/* Shared between the parent and its children (MAP_SHARED). */
static char *t_ck_buf;

static inline void
t_ck_init(void)
{
	void *p = mmap(NULL, T_WANT_MAX, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	T_ASSERT(p != MAP_FAILED);
	t_ck_buf = p;
}

/* In the child: the report it must die with (printf format). */
static inline void t_ck_want(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static inline void
t_ck_want(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t_ck_buf, T_WANT_MAX, fmt, ap);
	va_end(ap);
}

/*
 * Run fn(arg) in a child: it must call t_ck_want, then die of SIGABRT with
 * exactly one stderr line, starting "kmem: " and containing what it
 * wanted.
 */
static inline void
t_ck_expect(void (*fn)(void *), void *arg, const char *what)
{
	char buf[8192];
	int status;

	t_ck_buf[0] = '\0';
	status = t_child(fn, arg, buf, sizeof buf);
	if (t_ck_buf[0] == '\0')
		T_FAIL("%s: the child said nothing to expect; status %#x, "
		       "stderr:\n%s",
		    what, (unsigned)status, buf);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		T_FAIL("%s: no SIGABRT (status %#x), expected \"%s\"; "
		       "stderr:\n%s",
		    what, (unsigned)status, t_ck_buf, buf);
	if (strncmp(buf, "kmem: ", 6) != 0 || strstr(buf, t_ck_buf) == NULL)
		T_FAIL("%s: stderr lacks \"%s\":\n%s", what, t_ck_buf, buf);
	if (strchr(buf, '\n') != buf + strlen(buf) - 1)
		T_FAIL("%s: not exactly one line:\n%s", what, buf);
	printf("   %s: %s", what, buf);
}

/* t_ck_expect for each case 0..n-1 of fn, named names[case]. */
static inline void
t_ck_expect_cases(void (*fn)(void *), const char *const *names, int n)
{
	int id;

	for (id = 0; id < n; id++)
		t_ck_expect(fn, (void *)(intptr_t)id, names[id]);
}

#endif /* KMEM_TESTS_T_CHECK_H */
