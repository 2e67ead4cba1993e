/*
 * options.c -- run-time options: KMEM_OPTIONS=key=value,key=value,...
 *
 * One declarative table (opt_table) lists every option: its name, type,
 * the field of struct kmem_options it sets, its default and a one-line
 * description.  Parsing, defaults, printing and the warnings all walk the
 * table; adding an option is adding a row and a field.
 *
 * Syntax: items separated by commas; "key=value", or "key" alone for a
 * boolean set to true.  Booleans take 1/0, true/false, yes/no, on/off.
 * Sizes take a decimal or 0x number with an optional K, M or G suffix
 * (powers of 1024).  An unknown key or a malformed value is reported with
 * a warning that names the variable and the item; the item is ignored and
 * the rest still apply.
 *
 * Ranges: every numeric row has a minimum and a maximum, and a value
 * outside them is refused the same way (warning, item ignored, the
 * option keeps its value), so that no later arithmetic can wrap: an
 * option in milliseconds is turned into nanoseconds (x 10^6) and added to
 * the monotonic clock, so they are capped at a day (8.64 x 10^13 ns, far
 * from 2^64 even added to a clock of centuries); sizes are capped where
 * rounding them up cannot overflow.  Each row's comment says why its
 * bounds are what they are.
 *
 * Allocation: none.  The environment is read through kmem_prim_getenv and
 * parsed in place, so options can be read from inside the allocator
 * before anything is set up.
 *
 * Domains: the options are a domain's settings (struct kmem_options,
 * kd_opts in struct kmem_domain).  kmem_opts is the default domain's,
 * which KMEM_OPTIONS sets; the layers read it.  A domain starts with a
 * copy of the default's settings as they are when kmem_domain_create
 * runs (it reads KMEM_OPTIONS first), and they are its own from then on:
 * its kd_opts, which nothing but that copy writes today.
 *
 * Locking: kmem_options_init() runs the parse once under the default
 * domain's kd_opts_lock and publishes completion (kd_opts_ready) with a
 * release store; afterwards kmem_opts is read-only.  No data of its own
 * (issue 11: everything mutable lives in a domain; the table is read-only).
 * The test entry points (parse, reset) are for single-threaded tests.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/prim.h"

enum opt_type { OPT_BOOL, OPT_U64, OPT_SIZE };

/*
 * The strings are arrays in the row, not pointers: a table of pointers
 * is written by the dynamic linker at load (relocations: .data.rel.ro),
 * an array of bytes is read-only data like the code.
 */
struct opt_row {
	char name[24];
	enum opt_type type;
	size_t offset; /* into struct kmem_options */
	uint64_t dflt;
	uint64_t min, max; /* accepted values (numbers), inclusive */
	char desc[80];
};

/*
 * 0, or a compile error if the string literal s (its NUL included) does
 * not fit the row's array "member": C would drop a NUL that just misses
 * without a word.
 */
#define OPT_FITS(s, member)                                                    \
	(0 *                                                                   \
	    sizeof(char[sizeof(s) <= sizeof(((struct opt_row *)0)->member)     \
		    ? 1                                                        \
		    : -1]))

#define OPT(field, type, dflt, min, max, text)                                 \
	{                                                                      \
#field, type,                                                  \
		    offsetof(struct kmem_options, field) +                     \
		    OPT_FITS(#field, name) + OPT_FITS(text, desc),             \
		    dflt, min, max, text                                       \
	}

/* The cap of every option in milliseconds: a day (see the top comment). */
#define OPT_MS_MAX (24ull * 60 * 60 * 1000)
/*
 * The cap of vmem_min_import: 2^47 bytes (128 TiB), the x86-64 user
 * address space, so no memory arena can import more; and far enough
 * below 2^64 that rounding it up to any quantum (a power of two, at most
 * 2^63) cannot wrap (vmem_create and the import round it unchecked).  An
 * integer arena that wants more sets it with kmem_vmem_set_min_import().
 */
#define OPT_MIN_IMPORT_MAX (1ull << 47)

static const struct opt_row opt_table[] = {
    OPT(verbose, OPT_BOOL, 0, 0, 1, "print the resolved options at start-up"),
    /*
     * Call counts, compared with a 64-bit counter and never scaled: the
     * whole range.
     */
    OPT(fault_nth, OPT_U64, 0, 0, UINT64_MAX,
	"tests: fail the Nth OS memory request (0 = off)"),
    OPT(fault_from, OPT_U64, 0, 0, UINT64_MAX,
	"tests: fail every OS memory request from the Nth on (0 = off)"),
    /*
     * 0: an importing arena imports what the request needs (NetBSD);
     * kmem_vmem_set_min_import() overrides it per arena.  A minimum the
     * source cannot give falls back to what the request needs (vmem.c).
     */
    OPT(vmem_min_import, OPT_SIZE, 0, 0, OPT_MIN_IMPORT_MAX,
	"default minimum vmem import size, bytes"),
    /*
     * How long a VM_SLEEP request that the backing store refused waits
     * before retrying, if no free wakes it first.  10 ms: long enough not
     * to spin, short enough that memory freed elsewhere (not through this
     * arena) is noticed promptly.  At least 1: with 0 every such wait,
     * and KM_SLEEP's retry loop, would spin.
     */
    OPT(vmem_sleep_retry_ms, OPT_U64, 10, 1, OPT_MS_MAX,
	"VM_SLEEP retry period after an import failure, ms"),
    /* NetBSD's pool_inactive_time: 10 s.  0: pages go back at once. */
    OPT(pool_idle_ms, OPT_U64, 10000, 0, OPT_MS_MAX,
	"empty pool pages idle this long go back, ms"),
    /*
     * illumos's kmem_reap_interval: 15 s.  0: a new working set at every
     * reap.
     */
    OPT(reap_interval_ms, OPT_U64, 15000, 0, OPT_MS_MAX,
	"pool_cache depot working-set interval, ms"),
    OPT(magazines, OPT_BOOL, 1, 0, 1,
	"pool_cache per-CPU magazines (off: every get/put hits the pool)"),
    /*
     * Free space in the page arena stays mapped (and reusable at once)
     * one to two times this long before its pages go back to the OS
     * (vmem.c section 7).  1 s: a program that frees and reallocates a
     * big buffer in a loop keeps it; one that is done with it gives the
     * memory back within two seconds of arena activity or at its next
     * kmem_reap() (jemalloc's dirty decay is 10 s).  0: a purge pass at
     * every free into the page arena (slow, but meaningful).
     */
    OPT(purge_delay_ms, OPT_U64, 1000, 0, OPT_MS_MAX,
	"free page-arena memory goes back to the OS after 1-2x this, ms"),
    /*
     * 0: no thread of kmem's own; memory goes back on allocator activity
     * and kmem_reap() calls.  N: a background thread calls kmem_reap()
     * every N ms, so an idle program gives memory back too (off by
     * default, as jemalloc's background_thread: a library should not
     * start threads in its host unasked).  Any N from 1 up sleeps between
     * reaps, so none spins.
     */
    OPT(reap_thread_ms, OPT_U64, 0, 0, OPT_MS_MAX,
	"a background thread calls kmem_reap() every N ms (0: none)"),
    /*
     * The same work without a thread: at most every N ms, an allocation
     * or free on a fast path that ticks (one in 16384 on a CPU's group:
     * pool_cache_impl.h, PC_TICK_BITS) does it itself, so that a program
     * that freed much and goes on allocating gives memory back within a
     * few seconds even if it never misses its caches.  250 ms; 0: off.
     */
    OPT(reap_tick_ms, OPT_U64, 250, 0, OPT_MS_MAX,
	"allocations do the reaper's work at most every N ms (0: never)"),
    /*
     * How long KM_SLEEP keeps reaping and retrying while the OS refuses
     * memory before it aborts with a message.  10 s.  0: abort at the
     * second refusal.
     */
    OPT(oom_wait_ms, OPT_U64, 10000, 0, OPT_MS_MAX,
	"KM_SLEEP gives up (aborts) after the OS refused memory this long, ms"),
};

static void
opt_store_in(struct kmem_options *o, const struct opt_row *row, uint64_t v)
{
	char *field = (char *)o + row->offset;

	switch (row->type) {
	case OPT_BOOL:
		*(bool *)field = v != 0;
		break;
	case OPT_U64:
		*(uint64_t *)field = v;
		break;
	case OPT_SIZE:
		*(size_t *)field = (size_t)v;
		break;
	}
}

static void
opt_store(const struct opt_row *row, uint64_t v)
{
	opt_store_in(&kmem_opts, row, v);
}

static uint64_t
opt_load(const struct opt_row *row)
{
	const char *field = (const char *)&kmem_opts + row->offset;

	switch (row->type) {
	case OPT_BOOL:
		return *(const bool *)field;
	case OPT_U64:
		return *(const uint64_t *)field;
	case OPT_SIZE:
		return *(const size_t *)field;
	}
	return 0; /* not reached: every type has its case */
}

void
kmem_options_reset(void)
{
	size_t i;

	for (i = 0; i < KMEM_ARRAY_SIZE(opt_table); i++)
		opt_store(&opt_table[i], opt_table[i].dflt);
}

static bool
opt_word(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncmp(s, w, n) == 0;
}

/* Parse a number with an optional K/M/G suffix; false if malformed. */
static bool
opt_number(const char *s, size_t n, bool suffix_ok, uint64_t *out)
{
	uint64_t v = 0, base = 10, mul = 1, d;
	size_t i = 0;

	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (suffix_ok && n > i) {
		switch (s[n - 1]) {
		case 'k':
		case 'K':
			mul = 1ull << 10;
			break;
		case 'm':
		case 'M':
			mul = 1ull << 20;
			break;
		case 'g':
		case 'G':
			mul = 1ull << 30;
			break;
		default:
			break;
		}
		if (mul != 1)
			n--;
	}
	if (i >= n)
		return false;
	for (; i < n; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9')
			d = (uint64_t)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (uint64_t)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = (uint64_t)(c - 'A' + 10);
		else
			return false;
		if (__builtin_mul_overflow(v, base, &v) ||
		    __builtin_add_overflow(v, d, &v))
			return false;
	}
	if (__builtin_mul_overflow(v, mul, &v))
		return false;
	*out = v;
	return true;
}

static bool
opt_value(const struct opt_row *row, const char *val, size_t n, bool has_val,
    uint64_t *out)
{
	if (row->type == OPT_BOOL) {
		if (!has_val || opt_word(val, n, "1") ||
		    opt_word(val, n, "true") || opt_word(val, n, "yes") ||
		    opt_word(val, n, "on")) {
			*out = 1;
			return true;
		}
		if (opt_word(val, n, "0") || opt_word(val, n, "false") ||
		    opt_word(val, n, "no") || opt_word(val, n, "off")) {
			*out = 0;
			return true;
		}
		return false;
	}
	return has_val && opt_number(val, n, row->type == OPT_SIZE, out);
}

int
kmem_options_parse(const char *var, const char *text)
{
	return kmemi_options_parse_into(&kmem_opts, var, text);
}

/*
 * The same into the settings "o" (a domain's, kmem_domain_create_with):
 * KMEM_OPTIONS's syntax and checks; the number of items rejected.
 */
int
kmemi_options_parse_into(
    struct kmem_options *o, const char *var, const char *text)
{
	const char *item = text, *end, *eq;
	int bad = 0;
	size_t i;

	if (text == NULL)
		return 0;
	for (; *item != '\0'; item = *end != '\0' ? end + 1 : end) {
		const struct opt_row *row = NULL;
		size_t klen, ilen;
		uint64_t v;

		end = strchr(item, ',');
		if (end == NULL)
			end = item + strlen(item);
		ilen = (size_t)(end - item);
		if (ilen == 0)
			continue;
		eq = memchr(item, '=', ilen);
		klen = eq != NULL ? (size_t)(eq - item) : ilen;
		for (i = 0; i < KMEM_ARRAY_SIZE(opt_table); i++) {
			if (opt_word(item, klen, opt_table[i].name)) {
				row = &opt_table[i];
				break;
			}
		}
		if (row == NULL) {
			kmem_warn("%s: unknown option \"%.*s\" ignored", var,
			    (int)ilen, item);
			bad++;
			continue;
		}
		if (!opt_value(row, eq != NULL ? eq + 1 : NULL,
			eq != NULL ? (size_t)(end - eq - 1) : 0, eq != NULL,
			&v)) {
			kmem_warn("%s: bad value in \"%.*s\" ignored", var,
			    (int)ilen, item);
			bad++;
			continue;
		}
		if (v < row->min || v > row->max) {
			kmem_warn("%s: value out of range [%llu, %llu] in "
				  "\"%.*s\" ignored",
			    var, (unsigned long long)row->min,
			    (unsigned long long)row->max, (int)ilen, item);
			bad++;
			continue;
		}
		opt_store_in(o, row, v);
	}
	return bad;
}

bool
kmem_options_row(size_t i, struct kmem_option_info *info)
{
	if (i >= KMEM_ARRAY_SIZE(opt_table))
		return false;
	info->name = opt_table[i].name;
	info->numeric = opt_table[i].type != OPT_BOOL;
	info->dflt = opt_table[i].dflt;
	info->min = opt_table[i].min;
	info->max = opt_table[i].max;
	info->value = opt_load(&opt_table[i]);
	return true;
}

void
kmem_options_print(void)
{
	size_t i;

	kmem_eprintf("kmem: options (KMEM_OPTIONS), cpu id from %s:\n",
	    kmem_prim_cpu_source());
	for (i = 0; i < KMEM_ARRAY_SIZE(opt_table); i++) {
		kmem_eprintf("kmem:   %-20s %-12llu %s\n", opt_table[i].name,
		    (unsigned long long)opt_load(&opt_table[i]),
		    opt_table[i].desc);
	}
}

void
kmemi_options_fork(int phase)
{
	if (phase == KMEMI_FORK_PREPARE)
		kmem_mutex_enter(&kmemi_dom0.kd_opts_lock);
	else
		kmem_mutex_exit(&kmemi_dom0.kd_opts_lock);
}

void
kmem_options_init(void)
{
	if (kmem_likely(atomic_load_explicit(
		&kmemi_dom0.kd_opts_ready, memory_order_acquire)))
		return;
	kmem_mutex_enter(&kmemi_dom0.kd_opts_lock);
	if (!atomic_load_explicit(
		&kmemi_dom0.kd_opts_ready, memory_order_relaxed)) {
		kmem_options_reset();
		kmem_options_parse(
		    "KMEM_OPTIONS", kmem_prim_getenv("KMEM_OPTIONS"));
		if (kmem_opts.fault_from != 0)
			kmem_prim_fault_set(kmem_opts.fault_from, true);
		else if (kmem_opts.fault_nth != 0)
			kmem_prim_fault_set(kmem_opts.fault_nth, false);
		if (kmem_opts.verbose)
			kmem_options_print();
		kmemi_check_init(); /* KMEM_DEBUG=check, for every layer */
		/* From now on a fork takes stdio's list lock first. */
		kmemi_fork_init();
		kmemi_stats_live_init(); /* KMEM_STATS_LIVE: stats.c */
		atomic_store_explicit(
		    &kmemi_dom0.kd_opts_ready, true, memory_order_release);
	}
	kmem_mutex_exit(&kmemi_dom0.kd_opts_lock);
}
