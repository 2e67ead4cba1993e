/*
 * format_edges.c -- the corners of the allocation-free formatter
 * (kmem_vsnprintf), the stderr printer's 1 KiB limit, and the KMEM_OPTIONS
 * parser's number and boolean forms, and fault_nth read from the
 * environment at start-up.  (tests/unit/options.c has the common cases.)
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kmem/kmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/prim.h"
#include "t.h"

/* The format strings below are wrong on purpose: no compile-time check. */
static int (*volatile fmt)(char *, size_t, const char *, ...) = kmem_snprintf;

static void
test_formatter(void)
{
	char buf[256];
	int n;

	/* Upper-case hex, with and without '#'; '#' means nothing to %u. */
	fmt(buf, sizeof buf, "%X %#X %#x %#u %#010x", 0xbeefu, 0xabcu, 0xabcu,
	    12u, 0x5u);
	T_ASSERT(strcmp(buf, "BEEF 0XABC 0xabc 12 0x00000005") == 0);
	/* Left-justified numbers, precision of a string, %i, %t, %j. */
	kmem_snprintf(buf, sizeof buf, "[%-5d][%.3s][%.*s][%i][%td][%jd]", 42,
	    "abcdef", 2, "xyz", -7, (ptrdiff_t)-3, (intmax_t)-9);
	T_ASSERT(strcmp(buf, "[42   ][abc][xy][-7][-3][-9]") == 0);
	/* An unknown conversion is printed as it is; a '%' at the end too. */
	n = fmt(buf, sizeof buf, "a%qb%");
	T_ASSERT(strcmp(buf, "a%qb") == 0);
	T_EQ(n, 4);
	/* n == 0: nothing written, the length returned. */
	buf[0] = 'x';
	T_EQ(kmem_snprintf(buf, 0, "%s", "abc"), 3);
	T_EQ(buf[0], 'x');
}

static void
long_eprintf(void *arg)
{
	char big[2000];

	(void)arg;
	memset(big, 'y', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	kmem_eprintf("%s", big);
}

static void
test_eprintf_limit(void)
{
	char buf[4096];
	int status;

	/* Cut at 1 KiB - 1 bytes (the line buffer, NUL included). */
	status = t_child(long_eprintf, NULL, buf, sizeof buf);
	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	T_EQ(strlen(buf), 1023);
	T_EQ(strspn(buf, "y"), 1023);
}

static void
test_numbers(void)
{
	kmem_options_reset();
	/* Hex digits of both cases, with a suffix. */
	T_EQ(kmem_options_parse("X", "vmem_min_import=0xaB"), 0);
	T_EQ(kmem_opts.vmem_min_import, 0xab);
	T_EQ(kmem_options_parse("X", "vmem_min_import=0Xf0k"), 0);
	T_EQ(kmem_opts.vmem_min_import, 0xf0u << 10);
	/* Malformed: refused, the value stays. */
	T_EQ(kmem_options_parse("X",
		 "vmem_min_import=0x,vmem_min_import=12q,"
		 "vmem_min_import=0xg,vmem_min_import=K,"
		 "vmem_min_import=0x1000000000000000G,"
		 "vmem_min_import=99999999999999999999,"
		 "vmem_min_import=18446744073709551616,"
		 "vmem_min_import=0x1z,vmem_min_import=0x1Z,"
		 "vmem_min_import=0x1@,"
		 "vmem_min_import,pool_idle_ms=1k"),
	    12);
	T_EQ(kmem_opts.vmem_min_import, 0xf0u << 10);
	/* Booleans: every spelling. */
	T_EQ(kmem_options_parse("X", "verbose=true"), 0);
	T_ASSERT(kmem_opts.verbose);
	T_EQ(kmem_options_parse("X", "verbose=0"), 0);
	T_ASSERT(!kmem_opts.verbose);
	T_EQ(kmem_options_parse("X", "verbose=on,magazines=no"), 0);
	T_ASSERT(kmem_opts.verbose && !kmem_opts.magazines);
	T_EQ(kmem_options_parse("X", "verbose=false,magazines=1"), 0);
	T_ASSERT(!kmem_opts.verbose && kmem_opts.magazines);
	T_EQ(kmem_options_parse("X", "verbose=maybe,magazines="), 2);
	kmem_options_reset();
}

/*
 * KMEM_OPTIONS=fault_nth=N read at start-up: the Nth request for memory
 * of the whole process fails, and only that one.
 */
static void
c_fault_nth(void *arg)
{
	(void)arg;
	setenv("KMEM_OPTIONS", "fault_nth=1", 1);
	kmem_options_init();
	T_EQ(kmem_opts.fault_nth, 1);
	/* The first memory request (the page arena's) fails: NULL. */
	T_ASSERT(kmem_alloc(100, KM_NOSLEEP) == NULL);
	T_EQ(kmem_prim_fault_calls(), 1);
	/* The next ones do not. */
	kmem_free(kmem_alloc(100, KM_NOSLEEP), 100);
	T_GT(kmem_prim_fault_calls(), 1);
}

static void
test_fault_nth_env(void)
{
	char buf[4096];
	int status = t_child(c_fault_nth, NULL, buf, sizeof buf);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		T_FAIL("child status %#x; stderr:\n%s", (unsigned)status, buf);
}

int
main(void)
{
	/* No kmem call in this process: children start it afresh. */
	T_RUN(test_formatter);
	T_RUN(test_eprintf_limit);
	T_RUN(test_numbers);
	T_RUN(test_fault_nth_env);
	return t_done();
}
