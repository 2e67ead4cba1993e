/*
 * t.h -- the tiny test harness every kmem test uses.
 *
 *   T_RUN(test_fn);              run one test function, print its name
 *   T_ASSERT(cond);              fail (and stop the process) if false
 *   T_EQ(a, b) / T_NE / T_LE ... compare as uintmax_t, print both values
 *   t_seed()                     seed from KMEM_TEST_SEED or the clock,
 *                                printed so a failure can be replayed
 *   t_scale(n)                   n scaled by KMEM_TEST_SCALE (>= 1)
 *   t_child(fn, arg, buf, n)     run fn(arg) in a child, stderr into buf
 *   t_expect_death(fn, arg, sig, substr)
 *                                run fn(arg) in a child process; true if
 *                                it died of signal "sig" and its stderr
 *                                contains "substr"
 *   t_child_ok(fn, arg, buf, n)  run fn(arg) in a child, which must exit 0
 *                                (its stderr into buf, for more checks)
 *   t_expect_panic(fn, arg, substr)
 *                                the same for kmem_panic: SIGABRT, and
 *                                stderr exactly one line, "kmem: ...",
 *                                that contains "substr"
 *   t_args(argc, argv); T_RUN_IF(test_fn);
 *                                run only the tests the command line names
 *   t_segv_default()             SIGSEGV at its default action
 *   t_rss_kib()                  resident memory (VmRSS), KiB
 *   t_vm_kib()                   address space (VmSize), KiB
 *   t_proc_status("Threads:")    a number of /proc/self/status
 *   return t_done();             prints "N passed, 0 failed" and exits 0
 *
 * A failed assertion prints file:line and the expression, then exits 1,
 * so ctest records the failure.  Tests that cannot run exit 77 (skip).
 */
#ifndef KMEM_TESTS_T_H
#define KMEM_TESTS_T_H

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int t_npassed;
static const char *t_current = "?";

#define T_FAIL(...)                                                            \
	do {                                                                   \
		fprintf(stderr, "FAIL %s:%d (%s): ", __FILE__, __LINE__,       \
		    t_current);                                                \
		fprintf(stderr, __VA_ARGS__);                                  \
		fprintf(stderr, "\n0 passed, 1 failed\n");                     \
		fflush(NULL);                                                  \
		exit(1);                                                       \
	} while (0)

#define T_ASSERT(cond)                                                         \
	do {                                                                   \
		if (!(cond))                                                   \
			T_FAIL("assertion failed: %s", #cond);                 \
	} while (0)

#define T_CMP(a, op, b)                                                        \
	do {                                                                   \
		uintmax_t t_a_ = (uintmax_t)(a), t_b_ = (uintmax_t)(b);        \
		if (!(t_a_ op t_b_))                                           \
			T_FAIL("%s %s %s: 0x%jx vs 0x%jx (%ju vs %ju)", #a,    \
			    #op, #b, t_a_, t_b_, t_a_, t_b_);                  \
	} while (0)
#define T_EQ(a, b) T_CMP(a, ==, b)
#define T_NE(a, b) T_CMP(a, !=, b)
#define T_LT(a, b) T_CMP(a, <, b)
#define T_LE(a, b) T_CMP(a, <=, b)
#define T_GT(a, b) T_CMP(a, >, b)
#define T_GE(a, b) T_CMP(a, >=, b)

#define T_RUN(fn)                                                              \
	do {                                                                   \
		t_current = #fn;                                               \
		printf("-- %s\n", #fn);                                        \
		fflush(stdout);                                                \
		fn();                                                          \
		t_npassed++;                                                   \
	} while (0)

static inline int
t_done(void)
{
	printf("%d passed, 0 failed\n", t_npassed);
	fflush(stdout);
	return 0;
}

static inline void
t_skip(const char *why)
{
	printf("SKIP: %s\n", why);
	fflush(stdout);
	exit(77);
}

/* Random numbers: xorshift64*; t_rand() uses one global generator. */
struct t_rng {
	uint64_t s;
};

static inline uint64_t
t_rng_next(struct t_rng *r)
{
	uint64_t x = r->s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->s = x;
	return x * 2685821657736338717ull;
}

/* Uniform in [0, n), n > 0. */
static inline uint64_t
t_rng_below(struct t_rng *r, uint64_t n)
{
	return t_rng_next(r) % n;
}

/* A generator for thread "tid", derived from the run's seed. */
static inline void
t_rng_init(struct t_rng *r, uint64_t seed, unsigned tid)
{
	r->s = seed ^ ((uint64_t)(tid + 1) * 0x9e3779b97f4a7c15ull);
	if (r->s == 0)
		r->s = 1;
}

static struct t_rng t_rng_global = {88172645463325252ull};
#define t_rng_state t_rng_global.s

static inline uint64_t
t_rand(void)
{
	return t_rng_next(&t_rng_global);
}

/* Uniform in [0, n), n > 0. */
static inline uint64_t
t_rand_below(uint64_t n)
{
	return t_rand() % n;
}

static inline uint64_t
t_seed(void)
{
	const char *e = getenv("KMEM_TEST_SEED");
	uint64_t seed;

	if (e != NULL && *e != '\0') {
		seed = strtoull(e, NULL, 0);
	} else {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^
		    (uint64_t)getpid() << 32;
	}
	printf("seed: %" PRIu64 " (replay with KMEM_TEST_SEED=%" PRIu64 ")\n",
	    seed, seed);
	fflush(stdout);
	t_rng_state = seed ? seed : 1;
	return seed;
}

static inline void
t_set_seed(uint64_t seed)
{
	t_rng_state = seed ? seed : 1;
}

/* n scaled by KMEM_TEST_SCALE (default 1), at least 1. */
static inline uint64_t
t_scale(uint64_t n)
{
	const char *e = getenv("KMEM_TEST_SCALE");
	double s = (e != NULL && *e != '\0') ? strtod(e, NULL) : 1.0;
	double r = (double)n * s;

	return r < 1 ? 1 : (uint64_t)r;
}

static inline bool
t_under_valgrind(void)
{
	const char *e = getenv("KMEM_TEST_VALGRIND");

	return e != NULL && *e == '1';
}

/*
 * memcheck or ASan sees kmem's objects (src/internal/annotate.h): the
 * bytes past a size asked for, and free objects, are not to be touched.
 */
static inline bool
t_annotated(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return true;
#endif
#endif
	return t_under_valgrind();
}

/*
 * Pin the calling thread to the CPU it is on (its old affinity saved), so
 * that consecutive calls meet the same per-CPU cache slot.  False if the
 * system refuses; t_unpin restores the saved affinity.
 */
static inline bool
t_pin_here(cpu_set_t *saved)
{
	cpu_set_t one;
	int cpu = sched_getcpu();

	if (cpu < 0 || sched_getaffinity(0, sizeof *saved, saved) != 0)
		return false;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return sched_setaffinity(0, sizeof one, &one) == 0;
}

static inline void
t_unpin(cpu_set_t *saved)
{
	T_EQ(sched_setaffinity(0, sizeof *saved, saved), 0);
}

/*
 * Run fn(arg) in a child process (alarm(60) watchdog, SIGABRT at its
 * default action), its stderr captured into buf (NUL-terminated, at most
 * n - 1 bytes).  A child that returns from fn exits 0.  Returns the wait
 * status.
 */
static inline int
t_child(void (*fn)(void *), void *arg, char *buf, size_t n)
{
	int fd[2], status;
	size_t len = 0;
	ssize_t r;
	pid_t pid;

	if (pipe(fd) != 0)
		T_FAIL("pipe: %s", strerror(errno));
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		T_FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		struct sigaction sa;

		close(fd[0]);
		dup2(fd[1], 2);
		close(fd[1]);
		/* The expected aborts must not be caught or dump core. */
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = SIG_DFL;
		sigaction(SIGABRT, &sa, NULL);
		alarm(60);
		fn(arg);
		fflush(NULL);
		_exit(0);
	}
	close(fd[1]);
	while (len < n - 1 && (r = read(fd[0], buf + len, n - 1 - len)) > 0)
		len += (size_t)r;
	buf[len] = '\0';
	close(fd[0]);
	if (waitpid(pid, &status, 0) != pid)
		T_FAIL("waitpid: %s", strerror(errno));
	return status;
}

/*
 * Run fn(arg) in a child with stderr captured.  True if the child was
 * killed by signal "sig" and its stderr contains "substr".  On mismatch
 * prints what happened.
 */
static inline bool
t_expect_death(void (*fn)(void *), void *arg, int sig, const char *substr)
{
	char buf[8192];
	int status = t_child(fn, arg, buf, sizeof buf);

	if (!WIFSIGNALED(status) || WTERMSIG(status) != sig) {
		fprintf(stderr,
		    "child did not die of signal %d (status 0x%x); "
		    "stderr:\n%s\n",
		    sig, status, buf);
		return false;
	}
	if (substr != NULL && strstr(buf, substr) == NULL) {
		fprintf(
		    stderr, "child stderr lacks \"%s\":\n%s\n", substr, buf);
		return false;
	}
	printf("   died as expected: %.*s", (int)strcspn(buf, "\n") + 1, buf);
	return true;
}

/* Run fn(arg) in a child (stderr into buf), which must exit 0. */
static inline void
t_child_ok(void (*fn)(void *), void *arg, char *buf, size_t n)
{
	int status = t_child(fn, arg, buf, n);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		T_FAIL("child status %#x; stderr:\n%s", (unsigned)status, buf);
}

/*
 * Run fn(arg) in a child, which must die in kmem_panic: SIGABRT, and on
 * stderr exactly one line, starting "kmem: " and containing substr.
 * On mismatch prints what happened.
 */
static inline bool
t_expect_panic(void (*fn)(void *), void *arg, const char *substr)
{
	char buf[8192];
	int status = t_child(fn, arg, buf, sizeof buf);
	size_t len = strlen(buf);

	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT ||
	    strncmp(buf, "kmem: ", 6) != 0 || strstr(buf, substr) == NULL ||
	    len == 0 || strchr(buf, '\n') != buf + len - 1) {
		fprintf(stderr,
		    "child did not panic with one \"kmem: ...%s...\" line "
		    "(status 0x%x); stderr:\n%s\n",
		    substr, status, buf);
		return false;
	}
	printf("   died as expected: %s", buf);
	return true;
}

/*
 * Test selection: main calls t_args(argc, argv); T_RUN_IF(fn) runs fn
 * when the command line names no test, or names fn.
 */
static int t_argc;
static char **t_argv;

static inline void
t_args(int argc, char **argv)
{
	t_argc = argc;
	t_argv = argv;
}

static inline bool
t_want(const char *name)
{
	int i;

	if (t_argc < 2)
		return true;
	for (i = 1; i < t_argc; i++)
		if (strcmp(t_argv[i], name) == 0)
			return true;
	return false;
}

#define T_RUN_IF(fn)                                                           \
	do {                                                                   \
		if (t_want(#fn))                                               \
			T_RUN(fn);                                             \
	} while (0)

/*
 * SIGSEGV at its default action, so that a child dies of the fault itself
 * (not in a sanitizer's handler, which would exit instead).
 */
static inline void
t_segv_default(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGSEGV, &sa, NULL);
}

/* Monotonic clock, seconds. */
static inline double
t_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The number after "key" (e.g. "Threads:") in /proc/self/status. */
static inline long
t_proc_status(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	size_t n = strlen(key);
	char line[256];
	long v = -1;

	T_ASSERT(f != NULL);
	while (fgets(line, sizeof line, f) != NULL)
		if (strncmp(line, key, n) == 0)
			v = strtol(line + n, NULL, 10);
	fclose(f);
	T_ASSERT(v >= 0);
	return v;
}

/* This process's resident memory in KiB (VmRSS). */
static inline long
t_rss_kib(void)
{
	return t_proc_status("VmRSS:");
}

/* This process's address space in KiB (VmSize): for RLIMIT_AS tests. */
static inline long
t_vm_kib(void)
{
	return t_proc_status("VmSize:");
}

/*
 * Run this program again, as a fresh process (fork, then exec of
 * /proc/self/exe with the one argument "arg", under alarm(alarm_s)): its
 * wait status.  For tests whose subject is what a process does first.
 */
static inline int
t_exec_self(const char *arg, unsigned alarm_s)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		T_FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		char *argv[] = {(char *)"t_exec_self", (char *)arg, NULL};

		alarm(alarm_s);
		execv("/proc/self/exe", argv);
		_exit(126);
	}
	if (waitpid(pid, &status, 0) != pid)
		T_FAIL("waitpid: %s", strerror(errno));
	return status;
}

/*
 * Deliver signal "signo" to this process every ns nanoseconds (< 1 s),
 * through timer *t (made if ns != 0); ns == 0 stops it.  False if the
 * system has no such timer (the caller skips).
 */
static inline bool
t_timer_every(timer_t *t, int signo, long ns)
{
	struct itimerspec its;

	memset(&its, 0, sizeof its);
	if (ns != 0) {
		struct sigevent sev;

		memset(&sev, 0, sizeof sev);
		sev.sigev_notify = SIGEV_SIGNAL;
		sev.sigev_signo = signo;
		if (timer_create(CLOCK_MONOTONIC, &sev, t) != 0)
			return false;
		its.it_value.tv_nsec = ns;
		its.it_interval.tv_nsec = ns;
	}
	return timer_settime(*t, 0, &its, NULL) == 0;
}

#endif /* KMEM_TESTS_T_H */
