/*
 * internal.h -- helpers shared by every layer: branch hints, alignment
 * and overflow arithmetic, the allocation-free formatter, the one error
 * funnel, and the run-time options.
 */
#ifndef KMEM_INTERNAL_H
#define KMEM_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define kmem_likely(x)	  __builtin_expect(!!(x), 1)
#define kmem_unlikely(x)  __builtin_expect(!!(x), 0)
#define KMEM_NOINLINE	  __attribute__((noinline))
#define KMEM_COLD	  __attribute__((cold))
#define KMEM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define KMEM_CACHELINE	  64
/*
 * Library-internal data: hidden, so that the fast paths reach it
 * directly rather than through the GOT (-fPIC assumes an extern
 * variable may live in another object).  Never on the public API.
 */
#define KMEM_HIDDEN __attribute__((visibility("hidden")))

#define KMEM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline bool
kmem_powerof2(uintmax_t x)
{
	return x != 0 && (x & (x - 1)) == 0;
}

/* Round x down/up to a multiple of the power of two a (a != 0). */
static inline uintptr_t
kmem_align_down(uintptr_t x, uintptr_t a)
{
	return x & ~(a - 1);
}

static inline uintptr_t
kmem_align_up(uintptr_t x, uintptr_t a)
{
	return (x + a - 1) & ~(a - 1);
}

/* *out = x rounded up to the power of two a; false if that overflows. */
static inline bool
kmem_align_up_ok(uintptr_t x, uintptr_t a, uintptr_t *out)
{
	uintptr_t r;

	if (__builtin_add_overflow(x, a - 1, &r))
		return false;
	*out = r & ~(a - 1);
	return true;
}

/*
 * The number of bits set in x.  The freestanding build counts them
 * itself: the builtin may call libgcc's __popcountdi2, not part of the
 * platform contract.
 */
static inline unsigned
kmem_popcount64(uint64_t x)
{
#ifndef KMEM_FREESTANDING
	return (unsigned)__builtin_popcountll(x);
#else
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned)((x * 0x0101010101010101ull) >> 56);
#endif
}

/* floor(log2(x)) for x != 0. */
static inline unsigned
kmem_ilog2(uintmax_t x)
{
	return (unsigned)(sizeof(unsigned long long) * 8 - 1 -
	    (unsigned)__builtin_clzll((unsigned long long)x));
}

/* ---- the allocation-free formatter (error.c) ---- */

/*
 * A vsnprintf for the conversions kmem's messages use: %s %c %d %i %u %x
 * %X %p %% with the "l", "ll", "z", "j", "t" length modifiers, the "#",
 * "-" and "0" flags, a field width, and a precision (".N" or ".*") that
 * limits %s.  Always NUL-terminates (if n > 0)
 * and returns the length it would have written.  Never allocates.
 */
int kmem_vsnprintf(char *buf, size_t n, const char *fmt, va_list ap);
int kmem_snprintf(char *buf, size_t n, const char *fmt, ...) KMEM_PRINTF(3, 4);
/* Format and write to stderr (truncated at 1 KiB). */
void kmem_eprintf(const char *fmt, ...) KMEM_PRINTF(1, 2);
/*
 * Format one line (up to 256 bytes) and hand it to a caller's printf-like
 * "pr" as "%s", or write it to stderr when pr is NULL: the printers of
 * vmem_dump, vmstat-style tables and friends.
 */
void kmem_pr(void (*pr)(const char *, ...), const char *fmt, ...)
    KMEM_PRINTF(2, 3);

/* ---- the error funnel (error.c) ---- */

/*
 * Every error kmem detects ends here: one line on stderr, "kmem: " then
 * the message, which names the call, the addresses, the sizes and the
 * arena or cache; then abort().  Never allocates.
 */
_Noreturn void kmem_panic(const char *fmt, ...) KMEM_PRINTF(1, 2) KMEM_COLD;
/* A warning: the same line with "kmem: warning: ", and no abort. */
void kmem_warn(const char *fmt, ...) KMEM_PRINTF(1, 2) KMEM_COLD;

#ifdef KMEM_COVERAGE
/* Coverage builds: write gcov's counts now (error.c); set from then on. */
void kmem_coverage_dump(void);
extern _Atomic int kmemi_cov_dumping KMEM_HIDDEN;
#endif

#define KMEM_VERIFY(cond)                                                      \
	do {                                                                   \
		if (kmem_unlikely(!(cond)))                                    \
			kmem_panic("%s:%d: %s: assertion \"%s\" failed",       \
			    __FILE__, __LINE__, __func__, #cond);              \
	} while (0)

#ifdef KMEM_DEBUG_ASSERT
#define KMEM_ASSERT(cond) KMEM_VERIFY(cond)
#else
#define KMEM_ASSERT(cond) ((void)0)
#endif

/* ---- consistency checks (debug.c; the checkers in vmem.c, pool.c,
 * pool_cache.c) ---- */

/*
 * KMEM_DEBUG=check / check_every=N: the structure a slow path is working
 * on is checked whole at some of its events (debug.c section 6): at
 * every one while a check costs at most KMEMI_CHECK_WORK steps, else at
 * about one in work / KMEMI_CHECK_WORK of them, so that checking costs a
 * bounded number of steps per event whatever the size; with
 * check_every=N, N times fewer.  kmemi_check_every: 0 off, else N, a
 * setting of the default domain (kmem_opts.check_every, below; no
 * KMEM_OPTIONS row).  Read from KMEM_DEBUG by kmem_options_init
 * (kmemi_check_init), so that programs using only vmem or pool have it
 * too.  Tested only on slow paths, behind a lock the path takes anyway;
 * never on a fast path.  Like kmem_opts, a use needs internal/domain.h.
 */
#define KMEMI_CHECK_WORK  64
#define kmemi_check_every (kmem_opts.check_every)
void kmemi_check_init(void);
bool kmemi_check_due(uint64_t work);

/*
 * Whether to check a structure whose check takes about "work" steps (a
 * macro, not an inline function: the setting's type is in domain.h).
 */
#define kmemi_check_on(work)                                                   \
	(kmem_unlikely(                                                        \
	     __atomic_load_n(&kmemi_check_every, __ATOMIC_RELAXED) != 0) &&    \
	    kmemi_check_due(work))

/*
 * A checker found a violation: "kmem: CHECKER(WHAT 'NAME'): DETAIL" (e.g.
 * kmem_vmem_check(arena 'kva'): ...), then abort.  The one report of
 * every checker.
 */
_Noreturn void kmemi_check_fail(const char *checker, const char *what,
    const char *name, const char *fmt, ...) KMEM_PRINTF(4, 5) KMEM_COLD;

/* ---- options (options.c) ---- */

/*
 * Resolved run-time options: a domain's settings (kd_opts, domain.h).
 * The default domain's are filled once from KMEM_OPTIONS by
 * kmem_options_init(), read-only afterwards; a domain starts with a copy
 * of them.  One row of the table in options.c per field.
 */
struct kmem_options {
	bool verbose;		    /* print resolved options at start-up */
	uint64_t fault_nth;	    /* fail the Nth memory call (tests) */
	uint64_t fault_from;	    /* fail every memory call from the Nth */
	size_t vmem_min_import;	    /* default minimum import, bytes */
	size_t vmem_sleep_retry_ms; /* VM_SLEEP retry period on OS refusal */
	uint64_t pool_idle_ms;	    /* empty pool pages idle this long go */
	uint64_t reap_interval_ms;  /* depot working-set interval */
	bool magazines;		    /* pool_cache per-CPU layer on/off */
	uint64_t purge_delay_ms;    /* page arena: free space purged after */
	uint64_t oom_wait_ms;	    /* KM_SLEEP: abort after */
	uint64_t reap_thread_ms;    /* background kmem_reap period, 0: off */
	uint64_t reap_tick_ms;	    /* allocations run the reaper's work */
	/* KMEM_DEBUG=check, check_every=N (debug.c; no row): 0 off, N. */
	unsigned int check_every;
};

/*
 * The settings in force: the default domain's, a field of kmemi_dom0 (at
 * a link-time constant address, as a variable of its own would be).  A
 * use needs internal/domain.h, which has the domain's type; this header
 * cannot include it (domain.h includes this one).
 */
#define kmem_opts (kmemi_dom0.kd_opts)

/* Parse KMEM_OPTIONS once (idempotent, thread-safe). */
void kmem_options_init(void);
/*
 * Parse "text" (key=value,... form) into kmem_opts; "var" names the
 * source in warnings.  Returns the number of items rejected.  For tests.
 */
int kmem_options_parse(const char *var, const char *text);
/* The same into the settings "o" (a domain's); items rejected. */
int kmemi_options_parse_into(
    struct kmem_options *o, const char *var, const char *text);
/* Reset kmem_opts to the table defaults.  For tests. */
void kmem_options_reset(void);
/* Print every option with its value and description. */
void kmem_options_print(void);
/* Row i of the options table, for tests: false past the last row. */
struct kmem_option_info {
	const char *name;
	bool numeric;  /* false: a boolean */
	uint64_t dflt; /* default */
	uint64_t min;  /* accepted values, inclusive */
	uint64_t max;
	uint64_t value; /* now */
};
bool kmem_options_row(size_t i, struct kmem_option_info *info);

/* ---- fork(2) (fork.c) ---- */

/* The phases of the fork handlers each layer provides (pool_impl.h). */
enum { KMEMI_FORK_PREPARE, KMEMI_FORK_PARENT, KMEMI_FORK_CHILD };
/* A layer of kmem has started: forks take stdio's list lock (fork.c). */
void kmemi_fork_init(void);
/* Register the fork handlers (fork.c's constructor does, at load time). */
void kmemi_fork_register(void);
/*
 * True in the thread that runs fork(2), while it holds every lock of the
 * library (between the prepare handler and the parent or child handler).
 */
bool kmemi_fork_by_self(void);

/* ---- the statistics page (stats.c section 5, KMEM_STATS_LIVE) ---- */

/*
 * The hook of the slow paths (never the lock-free fast paths), called
 * holding no lock of the library: a snapshot into the page if there is
 * one and the publishing interval has passed; else one load and return.
 */
void kmemi_stats_live_tick(void);
/* Read KMEM_STATS_LIVE, make the page (kmem_options_init, once). */
void kmemi_stats_live_init(void);
/* fork.c's handlers: the page across fork(2). */
void kmemi_stats_live_fork(int phase);

#endif /* KMEM_INTERNAL_H */
