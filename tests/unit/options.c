/*
 * options.c -- tests of the KMEM_OPTIONS parser, the allocation-free
 * formatter and the error funnel (message form, abort, warnings).
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal/internal.h"
#include "internal/prim.h"
#include "t.h"

/* Run fn with stderr captured into buf. */
static void
capture_stderr(void (*fn)(void), char *buf, size_t n)
{
	FILE *f = tmpfile();
	int saved = dup(2);
	size_t len;

	T_ASSERT(f != NULL);
	fflush(stderr);
	dup2(fileno(f), 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	len = fread(buf, 1, n - 1, f);
	buf[len] = '\0';
	fclose(f);
}

static void
test_parse_good(void)
{
	kmem_options_reset();
	T_EQ(kmem_opts.vmem_sleep_retry_ms, 10);
	T_EQ(kmem_options_parse("KMEM_OPTIONS",
		 "verbose,vmem_min_import=64K,vmem_sleep_retry_ms=0x20"),
	    0);
	T_ASSERT(kmem_opts.verbose);
	T_EQ(kmem_opts.vmem_min_import, 65536);
	T_EQ(kmem_opts.vmem_sleep_retry_ms, 32);
	T_EQ(kmem_options_parse("X", "verbose=off,vmem_min_import=2M,,"), 0);
	T_ASSERT(!kmem_opts.verbose);
	T_EQ(kmem_opts.vmem_min_import, 2u << 20);
	T_EQ(kmem_options_parse("X", "vmem_min_import=1g,verbose=yes"), 0);
	T_EQ(kmem_opts.vmem_min_import, 1u << 30);
	T_ASSERT(kmem_opts.verbose);
	T_EQ(kmem_options_parse("X", ""), 0);
	T_EQ(kmem_options_parse("X", NULL), 0);
	kmem_options_reset();
	T_ASSERT(!kmem_opts.verbose);
	T_EQ(kmem_opts.vmem_min_import, 0);
}

static int bad_count;

static void
parse_bad(void)
{
	bad_count = kmem_options_parse("KMEM_OPTIONS",
	    "bogus=1,vmem_min_import=12Q,verbose=maybe,fault_nth=,"
	    "vmem_sleep_retry_ms=99999999999999999999999,vmem_min_import=4K");
}

static void
test_parse_bad(void)
{
	char buf[4096];

	kmem_options_reset();
	capture_stderr(parse_bad, buf, sizeof buf);
	printf("%s", buf);
	T_EQ(bad_count, 5);
	T_ASSERT(strstr(buf,
		     "kmem: warning: KMEM_OPTIONS: unknown option "
		     "\"bogus=1\" ignored") != NULL);
	T_ASSERT(strstr(buf,
		     "KMEM_OPTIONS: bad value in "
		     "\"vmem_min_import=12Q\"") != NULL);
	T_ASSERT(strstr(buf, "\"verbose=maybe\"") != NULL);
	T_ASSERT(strstr(buf, "\"fault_nth=\"") != NULL);
	T_ASSERT(strstr(buf, "vmem_sleep_retry_ms=9999") != NULL);
	/* The good item after the bad ones still applies. */
	T_EQ(kmem_opts.vmem_min_import, 4096);
	T_EQ(kmem_opts.vmem_sleep_retry_ms, 10);
	kmem_options_reset();
}

static void
test_format(void)
{
	const char *volatile nullstr = NULL;
	char buf[128];
	int n;

	n = kmem_snprintf(buf, sizeof buf,
	    "%s|%d|%u|%x|%#zx|%p|%c|%%|%5d|%-4s|", "ab", -42, 7u, 0xbeefu,
	    (size_t)0x1000, (void *)0x10, 'z', 3, "x");
	T_ASSERT(strcmp(buf, "ab|-42|7|beef|0x1000|0x10|z|%|    3|x   |") == 0);
	T_EQ(n, (int)strlen(buf));
	kmem_snprintf(buf, sizeof buf, "%llu %lld %jx %08x %ld %s",
	    18446744073709551615ull, -9223372036854775807ll - 1,
	    (uintmax_t)0xfedcba9876543210ull, 0xabcu, -1L, nullstr);
	T_ASSERT(strcmp(buf,
		     "18446744073709551615 -9223372036854775808 "
		     "fedcba9876543210 00000abc -1 (null)") == 0);
	/* Truncation: NUL-terminated, returns the full length. */
	n = kmem_snprintf(buf, 6, "%s", "0123456789");
	T_EQ(n, 10);
	T_ASSERT(strcmp(buf, "01234") == 0);
	T_EQ(kmem_snprintf(NULL, 0, "%d", 12345), 5);
}

static void
panic_child(void *arg)
{
	(void)arg;
	kmem_panic("vmem_xfree(arena '%s', %#zx, %#zx): test message", "t",
	    (size_t)0x1000, (size_t)16);
}

static void
long_panic_child(void *arg)
{
	char big[3000];

	(void)arg;
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	kmem_panic("long: %s", big);
}

static void
verify_child(void *arg)
{
	(void)arg;
	KMEM_VERIFY(1 + 1 == 3);
}

static void
warn_once(void)
{
	kmem_warn("something odd: %d", 7);
}

static void
test_funnel(void)
{
	char buf[256];

	T_ASSERT(t_expect_death(panic_child, NULL, SIGABRT,
	    "kmem: vmem_xfree(arena 't', 0x1000, 0x10): test message\n"));
	T_ASSERT(t_expect_death(long_panic_child, NULL, SIGABRT, "xxx...\n"));
	T_ASSERT(t_expect_death(
	    verify_child, NULL, SIGABRT, "assertion \"1 + 1 == 3\" failed"));
	capture_stderr(warn_once, buf, sizeof buf);
	T_ASSERT(strcmp(buf, "kmem: warning: something odd: 7\n") == 0);
}

static void
env_child(void *arg)
{
	(void)arg;
	/* Options are read from the environment once, at first use. */
	kmem_options_init();
	if (kmem_opts.vmem_min_import == 8192 && kmem_opts.verbose)
		kmem_panic("options applied");
}

static void
test_environment(void)
{
	setenv("KMEM_OPTIONS", "vmem_min_import=8k,verbose,nonsense", 1);
	T_ASSERT(t_expect_death(
	    env_child, NULL, SIGABRT, "unknown option \"nonsense\""));
	T_ASSERT(t_expect_death(env_child, NULL, SIGABRT, "options applied"));
	T_ASSERT(t_expect_death(
	    env_child, NULL, SIGABRT, "vmem_min_import      8192"));
	unsetenv("KMEM_OPTIONS");
}

int
main(void)
{
	T_RUN(test_parse_good);
	T_RUN(test_parse_bad);
	T_RUN(test_format);
	T_RUN(test_funnel);
	T_RUN(test_environment);
	return t_done();
}
