/*
 * options.c -- tests of the KMEM_OPTIONS parser, the allocation-free
 * formatter and the error funnel (message form, abort, warnings), and
 * the settings a new domain starts with (a copy of the default's).
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include <kmem/domain.h>

#include "internal/domain.h"
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

/* ---- ranges (issue 10, item 5) ---- */

/* What every row must be: adding a row without adding it here fails. */
static const struct {
	const char *name;
	bool numeric;
	uint64_t dflt, min, max;
} expect_rows[] = {
    {"verbose", false, 0, 0, 1},
    {"fault_nth", true, 0, 0, UINT64_MAX},
    {"fault_from", true, 0, 0, UINT64_MAX},
    {"vmem_min_import", true, 0, 0, 1ull << 47},
    {"vmem_sleep_retry_ms", true, 10, 1, 86400000},
    {"pool_idle_ms", true, 10000, 0, 86400000},
    {"reap_interval_ms", true, 15000, 0, 86400000},
    {"magazines", false, 1, 0, 1},
    {"purge_delay_ms", true, 1000, 0, 86400000},
    {"reap_thread_ms", true, 0, 0, 86400000},
    {"reap_tick_ms", true, 250, 0, 86400000},
    {"oom_wait_ms", true, 10000, 0, 86400000},
};

static const char *range_text; /* what range_parse parses */
static int range_bad;

static void
range_parse(void)
{
	range_bad = kmem_options_parse("KMEM_OPTIONS", range_text);
}

/* The value of option "name" now. */
static uint64_t
opt_now(const char *name)
{
	struct kmem_option_info info;
	size_t i;

	for (i = 0; kmem_options_row(i, &info); i++) {
		if (strcmp(info.name, name) == 0)
			return info.value;
	}
	T_FAIL("no option %s", name);
}

static void
test_rows(void)
{
	struct kmem_option_info info;
	size_t i, n = sizeof expect_rows / sizeof expect_rows[0];

	kmem_options_reset();
	for (i = 0; kmem_options_row(i, &info); i++) {
		T_LT(i, n);
		printf("  %-20s [%llu, %llu] default %llu\n", info.name,
		    (unsigned long long)info.min, (unsigned long long)info.max,
		    (unsigned long long)info.dflt);
		T_ASSERT(strcmp(info.name, expect_rows[i].name) == 0);
		T_EQ(info.numeric, expect_rows[i].numeric);
		T_EQ(info.dflt, expect_rows[i].dflt);
		T_EQ(info.min, expect_rows[i].min);
		T_EQ(info.max, expect_rows[i].max);
		T_EQ(info.value, info.dflt);
		/* A default outside its own range would be a contradiction. */
		T_ASSERT(info.min <= info.dflt && info.dflt <= info.max);
	}
	T_EQ(i, n);
}

/*
 * "name=v" is refused: one item rejected, the warning names the variable,
 * the range and the item, and the option keeps "keep".
 */
static void
expect_refused(
    const char *name, uint64_t v, uint64_t min, uint64_t max, uint64_t keep)
{
	char item[96], want[256], buf[1024];

	snprintf(item, sizeof item, "%s=%llu", name, (unsigned long long)v);
	snprintf(want, sizeof want,
	    "kmem: warning: KMEM_OPTIONS: value out of range [%llu, %llu] in "
	    "\"%s\" ignored\n",
	    (unsigned long long)min, (unsigned long long)max, item);
	range_text = item;
	capture_stderr(range_parse, buf, sizeof buf);
	if (range_bad != 1 || strcmp(buf, want) != 0)
		T_FAIL("%s: %d rejected, stderr \"%s\", wanted \"%s\"", item,
		    range_bad, buf, want);
	T_EQ(opt_now(name), keep);
}

static void
expect_taken(const char *name, uint64_t v)
{
	char item[96], buf[256];

	snprintf(item, sizeof item, "%s=%llu", name, (unsigned long long)v);
	range_text = item;
	capture_stderr(range_parse, buf, sizeof buf);
	T_EQ(range_bad, 0);
	T_ASSERT(buf[0] == '\0');
	T_EQ(opt_now(name), v);
}

static void
test_ranges(void)
{
	size_t i, n = sizeof expect_rows / sizeof expect_rows[0];

	for (i = 0; i < n; i++) {
		const char *name = expect_rows[i].name;
		uint64_t min = expect_rows[i].min, max = expect_rows[i].max;
		uint64_t dflt = expect_rows[i].dflt;

		if (!expect_rows[i].numeric)
			continue;
		/* Just outside, from the default: the default stays. */
		kmem_options_reset();
		if (min > 0)
			expect_refused(name, min - 1, min, max, dflt);
		if (max < UINT64_MAX)
			expect_refused(name, max + 1, min, max, dflt);
		/* The bounds themselves, and just inside. */
		expect_taken(name, min);
		expect_taken(name, max);
		if (max - min >= 2) {
			expect_taken(name, min + 1);
			expect_taken(name, max - 1);
		}
		/* Outside, after a value was set: that value stays. */
		if (max < UINT64_MAX)
			expect_refused(name, max + 1, min, max, max - 1);
		if (min > 0) {
			expect_taken(name, min);
			expect_refused(name, min - 1, min, max, min);
		}
		/* Far outside: a value whose nanoseconds would wrap. */
		if (max < (1ull << 58))
			expect_refused(name, 1ull << 58, min, max,
			    min > 0 ? min : max - 1);
	}
	kmem_options_reset();
}

/* The values, with suffixes and in hexadecimal. */
static void
test_ranges_forms(void)
{
	char buf[1024];

	kmem_options_reset();
	range_text =
	    "reap_thread_ms=288230376151711744,vmem_min_import=131073G,"
	    "vmem_min_import=0x800000000001,purge_delay_ms=0x5265c01,"
	    "vmem_sleep_retry_ms=0,pool_idle_ms=7";
	capture_stderr(range_parse, buf, sizeof buf);
	printf("%s", buf);
	T_EQ(range_bad, 5);
	T_ASSERT(strstr(buf,
		     "kmem: warning: KMEM_OPTIONS: value out of range [0, "
		     "86400000] in \"reap_thread_ms=288230376151711744\" "
		     "ignored\n") != NULL);
	T_ASSERT(strstr(buf, "in \"vmem_min_import=131073G\" ignored") != NULL);
	T_ASSERT(strstr(buf,
		     "[0, 140737488355328] in "
		     "\"vmem_min_import=0x800000000001\"") != NULL);
	T_ASSERT(
	    strstr(buf, "in \"purge_delay_ms=0x5265c01\" ignored") != NULL);
	T_ASSERT(
	    strstr(buf, "[1, 86400000] in \"vmem_sleep_retry_ms=0\"") != NULL);
	T_EQ(kmem_opts.reap_thread_ms, 0);
	T_EQ(kmem_opts.vmem_min_import, 0);
	T_EQ(kmem_opts.purge_delay_ms, 1000);
	T_EQ(kmem_opts.vmem_sleep_retry_ms, 10);
	T_EQ(kmem_opts.pool_idle_ms, 7); /* the good item still applies */
	range_text = "vmem_min_import=131072G,purge_delay_ms=0x5265c00";
	capture_stderr(range_parse, buf, sizeof buf);
	T_EQ(range_bad, 0);
	T_EQ(kmem_opts.vmem_min_import, 1ull << 47);
	T_EQ(kmem_opts.purge_delay_ms, 86400000);
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
range_env_child(void *arg)
{
	(void)arg;
	kmem_options_init();
	/* No reaper thread with a period that wraps: the option is off. */
	if (kmem_opts.reap_thread_ms == 0 && kmem_opts.pool_idle_ms == 5)
		kmem_panic("default kept");
}

static void
test_environment(void)
{
	setenv("KMEM_OPTIONS",
	    "reap_thread_ms=288230376151711744,pool_idle_ms=5", 1);
	T_ASSERT(t_expect_death(range_env_child, NULL, SIGABRT,
	    "kmem: warning: KMEM_OPTIONS: value out of range [0, 86400000] "
	    "in \"reap_thread_ms=288230376151711744\" ignored\n"));
	T_ASSERT(
	    t_expect_death(range_env_child, NULL, SIGABRT, "default kept"));
	setenv("KMEM_OPTIONS", "vmem_min_import=8k,verbose,nonsense", 1);
	T_ASSERT(t_expect_death(
	    env_child, NULL, SIGABRT, "unknown option \"nonsense\""));
	T_ASSERT(t_expect_death(env_child, NULL, SIGABRT, "options applied"));
	T_ASSERT(t_expect_death(
	    env_child, NULL, SIGABRT, "vmem_min_import      8192"));
	unsetenv("KMEM_OPTIONS");
}

static void *
map_alloc(void *arg, size_t size, size_t align)
{
	size_t len = size + align;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uintptr_t a;

	(void)arg;
	if (m == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1);
	if (a > (uintptr_t)m)
		munmap(m, a - (uintptr_t)m);
	if ((uintptr_t)m + len > a + size)
		munmap((void *)(a + size), (uintptr_t)m + len - (a + size));
	return (void *)a;
}

static void
map_free(void *arg, void *p, size_t size)
{
	(void)arg;
	munmap(p, size);
}

/*
 * A fresh process whose first kmem call is kmem_domain_create: the
 * domain's settings are the default's as KMEM_OPTIONS set them, and a
 * copy (the default's changed later, the domain's stay).
 */
static void
domain_copy_child(void *arg)
{
	struct kmem_page_source src = {
	    .ps_alloc = map_alloc, .ps_free = map_free};
	struct kmem_domain *d;

	(void)arg;
	d = kmem_domain_create("opts", &src);
	T_ASSERT(d != NULL);
	T_EQ(kmem_opts.pool_idle_ms, 1234);
	T_EQ(d->kd_opts.pool_idle_ms, 1234);
	T_EQ(d->kd_opts.purge_delay_ms, 7);
	T_EQ(d->kd_opts.magazines, 1);		  /* a default */
	T_EQ(d->kd_opts.vmem_sleep_retry_ms, 10); /* a default */
	kmem_opts.pool_idle_ms = 99;
	T_EQ(d->kd_opts.pool_idle_ms, 1234);
	T_EQ(kmem_domain_destroy(d), 0);
}

static void
test_domain_copy(void)
{
	char buf[4096];

	setenv("KMEM_OPTIONS", "pool_idle_ms=1234,purge_delay_ms=7", 1);
	t_child_ok(domain_copy_child, NULL, buf, sizeof buf);
	unsetenv("KMEM_OPTIONS");
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_parse_good);
	T_RUN_IF(test_parse_bad);
	T_RUN_IF(test_rows);
	T_RUN_IF(test_ranges);
	T_RUN_IF(test_ranges_forms);
	T_RUN_IF(test_format);
	T_RUN_IF(test_funnel);
	T_RUN_IF(test_environment);
	T_RUN_IF(test_domain_copy);
	return t_done();
}
