/*
 * malloc_fork_mt.c -- fork against the libc allocation API (reliability
 * plan B.9, B.11, B.12, B.13), standard API only, so the same binary runs
 * on plain glibc (oracle) and under LD_PRELOAD of kmem.
 *
 *  - B.12 fork from a signal handler (glibc tst-mallocfork2), run first,
 *    while the process has never created a thread (asserted: Threads: 1
 *    in /proc/self/status, so an allocator that starts a thread at load
 *    time fails here by name).  A SIGUSR1 timer (timer_create, one-shot,
 *    re-armed 20..420 us ahead by each handler) lands in the middle of
 *    malloc/free/realloc/calloc/posix_memalign; the handler forks; the
 *    main loop forks too now and then.  If the signal interrupted an allocator
 * call, the child only _exit(0)s (the heap may be mid-update: nothing may
 * allocate there, as in glibc's test); otherwise the child does malloc + free
 * of a small and a large block first.  Pass: 1000 (t_scale) forks from the
 * handler, every child exited 0, no hang (alarm).
 *  - B.13 atfork ordering: a constructor(101) registers a
 *    pthread_atfork prepare/parent/child set before the program's first
 *    allocation (so an allocator that registers its own handlers lazily,
 *    at its first malloc, has them run outside ours: our prepare runs
 *    after its prepare, our child before its child); main registers a
 *    second set later.  Both sets call malloc/free (prepare allocates, the
 *    parent/child handlers free that block and allocate more) while 3
 *    threads allocate; main and a worker fork 60 times (t_scale).  Pass:
 *    every child finished (exit 0, within its alarm), the handlers ran
 *    once per fork, in POSIX order (prepare late-then-early, parent and
 *    child early-then-late).
 *  - B.9 fork storm (glibc tst-malloc-fork-deadlock): 4 threads fork in a
 *    loop, 8 threads malloc/free/realloc and getline from a temporary
 *    file, 1 thread fflush(NULL)s, for 1.5 s (t_scale; the plan's 3 s is
 *    KMEM_TEST_SCALE=2).  Every child allocates (small, page, 1 MiB),
 *    frees, and _exit(17).  Pass: every child exits 17; the parent joins
 *    its threads within the watchdog.
 *  - B.11 fork + exec from a worker thread (jemalloc do_fork_thd), 100
 *    times (t_scale) while 2 threads allocate.  Pass: every child execs
 *    /bin/true and exits 0.
 *
 * Every child arms its own alarm, so a child that hangs dies of SIGALRM
 * and fails the test instead of lingering; the parent has alarm(60).
 * Run it 10 times in a row in CI (plan B.9).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "t.h"

static uint64_t g_seed;

static int
nthreads_now(void)
{
	return (int)t_proc_status("Threads:");
}

static const char *
status_str(int status, char *buf, size_t n)
{
	if (WIFEXITED(status))
		snprintf(buf, n, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, n, "signal %d (%s)%s", WTERMSIG(status),
		    strsignal(WTERMSIG(status)),
		    WTERMSIG(status) == SIGALRM ? ": it hung" : "");
	else
		snprintf(buf, n, "status %#x", (unsigned)status);
	return buf;
}

/* Allocate and free a few sizes; false if anything failed. */
static bool
child_allocates(void)
{
	static const size_t sizes[] = {1, 32, 100, 1000, 4096, 20000, 1 << 20};

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char *p = malloc(sizes[i]);

		if (p == NULL)
			return false;
		memset(p, 0x3e, sizes[i]);
		free(p);
	}
	return true;
}

/* -------------------------------------------------- atfork handlers */

/*
 * Handlers that allocate; active only in test_atfork (the signal test
 * forks inside a handler, where nothing may allocate).
 */
static atomic_bool g_atfork_alloc;
static atomic_uint g_prep_early, g_parent_early, g_prep_late, g_parent_late;
static void *g_prep_block_early, *g_prep_block_late;
/*
 * Allocated before each fork, freed by the early parent and child
 * handlers: inside the window where the forking thread holds every lock
 * of a library that registered its handlers after them (kmem defers such
 * a free to its next slow path).
 */
static void *g_before_fork, *g_before_fork_qc, *g_before_fork_large;
static unsigned g_child_early, g_child_late;
static char g_order[8];
static atomic_uint g_norder;

static void
order_mark(char c)
{
	unsigned i = atomic_fetch_add(&g_norder, 1);

	if (i < sizeof g_order)
		g_order[i] = c;
}

static void *
handler_block(size_t n, int c)
{
	char *p = malloc(n);

	if (p != NULL)
		memset(p, c, n);
	return p;
}

static void
prepare_early(void)
{
	atomic_fetch_add(&g_prep_early, 1);
	if (!atomic_load(&g_atfork_alloc))
		return;
	order_mark('E');
	g_prep_block_early = handler_block(200, 0xe1);
}

static void
parent_early(void)
{
	atomic_fetch_add(&g_parent_early, 1);
	if (!atomic_load(&g_atfork_alloc))
		return;
	order_mark('e');
	free(g_prep_block_early);
	free(g_before_fork);
	free(g_before_fork_qc);
	free(g_before_fork_large);
	free(handler_block(5000, 0xe2));
}

static void
child_early(void)
{
	g_child_early++;
	if (!atomic_load(&g_atfork_alloc))
		return;
	order_mark('c');
	free(g_prep_block_early);
	free(g_before_fork);
	free(g_before_fork_qc);
	free(g_before_fork_large);
	free(handler_block(300, 0xe3));
	free(handler_block(300000, 0xe4));
}

static void
prepare_late(void)
{
	atomic_fetch_add(&g_prep_late, 1);
	if (!atomic_load(&g_atfork_alloc))
		return;
	order_mark('L');
	g_prep_block_late = handler_block(64, 0x11);
}

static void
parent_late(void)
{
	atomic_fetch_add(&g_parent_late, 1);
	if (!atomic_load(&g_atfork_alloc))
		return;
	order_mark('l');
	free(g_prep_block_late);
}

static void
child_late(void)
{
	g_child_late++;
	if (!atomic_load(&g_atfork_alloc))
		return;
	order_mark('d');
	free(g_prep_block_late);
	free(handler_block(40, 0x12));
}

/* Before main, before (we hope) anything in the program allocated. */
__attribute__((constructor(101))) static void
register_early(void)
{
	if (pthread_atfork(prepare_early, parent_early, child_early) != 0)
		abort();
}

/* ------------------------------------- B.12: fork in a signal handler */

static volatile sig_atomic_t g_in_alloc, g_sig_forks, g_sig_forks_in_alloc;
static volatile sig_atomic_t g_sig_bad, g_sig_bad_status;
static timer_t g_timer;
static uint64_t g_tick_rng = 88172645463325252ull;

/*
 * Arm the one-shot timer 20..420 us ahead: re-armed at the end of each
 * handler, so the main loop always gets time between two signals (a
 * periodic timer shorter than a fork starves it: the handler re-enters
 * at once, forever).
 */
static void
arm_tick(void)
{
	struct itimerspec its;

	g_tick_rng ^= g_tick_rng << 13;
	g_tick_rng ^= g_tick_rng >> 7;
	g_tick_rng ^= g_tick_rng << 17;
	memset(&its, 0, sizeof its);
	its.it_value.tv_nsec = 20000 + (long)(g_tick_rng % 400000);
	if (timer_settime(g_timer, 0, &its, NULL) != 0)
		g_sig_bad = 1;
}

static void
on_sigusr1(int sig)
{
	int status, saved = errno, in_alloc = g_in_alloc;
	pid_t pid;

	(void)sig;
	pid = fork();
	if (pid == 0) {
		alarm(10);
		/* Only if the signal did not interrupt the allocator. */
		if (!in_alloc && !child_allocates())
			_exit(3);
		_exit(0);
	}
	if (pid < 0) {
		g_sig_bad = 1;
	} else if (waitpid(pid, &status, 0) != pid || status != 0) {
		g_sig_bad = 1;
		g_sig_bad_status = status;
	}
	g_sig_forks++;
	if (in_alloc)
		g_sig_forks_in_alloc++;
	arm_tick();
	errno = saved;
}

#define IN_ALLOC(stmt)                                                         \
	do {                                                                   \
		g_in_alloc = 1;                                                \
		atomic_signal_fence(memory_order_seq_cst);                     \
		stmt;                                                          \
		atomic_signal_fence(memory_order_seq_cst);                     \
		g_in_alloc = 0;                                                \
	} while (0)

static void
test_fork_from_signal(void)
{
	enum { NOBJ = 1009 };
	static void *obj[NOBJ];
	struct sigevent sev;
	struct sigaction sa;
	unsigned long target = t_scale(1000), iters = 0, main_forks = 0;
	int threads = nthreads_now();
	struct t_rng r;
	char buf[64];

	if (threads != 1)
		T_FAIL("the process has %d threads before its first "
		       "pthread_create (the allocator started one?): fork "
		       "from a signal handler needs a single-threaded process",
		    threads);
	atomic_store(&g_atfork_alloc, false);
	t_rng_init(&r, t_seed(), 0);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigusr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	T_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	memset(&sev, 0, sizeof sev);
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR1;
	g_tick_rng ^= t_rng_next(&r);
	T_EQ(timer_create(CLOCK_MONOTONIC, &sev, &g_timer), 0);
	arm_tick();
	while ((unsigned long)g_sig_forks < target) {
		size_t slot = t_rng_below(&r, NOBJ);
		size_t size = t_rng_below(&r, 70000);
		uint64_t how = t_rng_below(&r, 8);
		void *p = NULL;

		IN_ALLOC(free(obj[slot]));
		obj[slot] = NULL;
		if (how == 0) {
			IN_ALLOC(p = calloc(1, size));
		} else if (how == 1) {
			/* size + 1: realloc(p, 0) differs between allocators */
			IN_ALLOC(p = realloc(obj[(slot + 1) % NOBJ], size + 1));
			obj[(slot + 1) % NOBJ] = NULL;
		} else if (how == 2) {
			int rc;

			IN_ALLOC(rc = posix_memalign(&p, 64, size));
			T_EQ(rc, 0);
		} else {
			IN_ALLOC(p = malloc(size));
		}
		T_ASSERT(p != NULL || size == 0);
		if (p != NULL)
			memset(p, 0x2f, size < 16384 ? size : 16384);
		obj[slot] = p;
		/* glibc bug 24161: a plain fork now and then, too. */
		if (++iters % 2000 == 0) {
			int status;
			pid_t pid;

			/* The allocator's own atfork handlers run in there. */
			IN_ALLOC(pid = fork());
			if (pid == 0) {
				alarm(10);
				_exit(child_allocates() ? 0 : 3);
			}
			T_ASSERT(pid > 0);
			T_EQ(waitpid(pid, &status, 0), pid);
			if (status != 0)
				T_FAIL("plain fork child: %s",
				    status_str(status, buf, sizeof buf));
			main_forks++;
		}
		if (g_sig_bad)
			break;
	}
	T_EQ(timer_delete(g_timer), 0);
	sa.sa_handler = SIG_IGN;
	T_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	if (g_sig_bad)
		T_FAIL("fork in the handler failed: child %s",
		    status_str(g_sig_bad_status, buf, sizeof buf));
	for (size_t i = 0; i < NOBJ; i++)
		free(obj[i]);
	printf("   %d forks in the handler (%d interrupting the allocator), "
	       "%lu plain, %lu allocator calls\n",
	    (int)g_sig_forks, (int)g_sig_forks_in_alloc, main_forks, iters * 2);
	/* The early handlers ran once per fork, allocating nothing. */
	T_EQ(atomic_load(&g_prep_early),
	    (unsigned long)g_sig_forks + main_forks);
}

/* ----------------------------------------------- common allocators */

static atomic_bool g_stop;

/* malloc/free/realloc with patterns; getline too if a file is given. */
struct hammer_arg {
	unsigned tid;
	const char *path;
	atomic_ulong *ops;
};

static void *
hammer_thread(void *arg)
{
	enum { LIVE = 64 };
	struct hammer_arg *a = arg;
	struct {
		unsigned char *p;
		size_t n;
	} live[LIVE];
	FILE *f = NULL;
	struct t_rng r;
	unsigned long ops = 0;

	memset(live, 0, sizeof live);
	t_rng_init(&r, g_seed, a->tid);
	if (a->path != NULL) {
		f = fopen(a->path, "r");
		T_ASSERT(f != NULL);
	}
	while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
		size_t k = t_rng_below(&r, LIVE);
		size_t n = 2 +
		    t_rng_below(&r, t_rng_below(&r, 16) == 0 ? 300000 : 2000);

		if (live[k].p != NULL) {
			T_EQ(live[k].p[0], (unsigned char)live[k].n);
			T_EQ(live[k].p[live[k].n - 1], (unsigned char)k);
			if (t_rng_below(&r, 4) == 0) {
				live[k].p = realloc(live[k].p, n);
				T_ASSERT(live[k].p != NULL);
			} else {
				free(live[k].p);
				live[k].p = malloc(n);
			}
		} else {
			live[k].p = malloc(n);
		}
		T_ASSERT(live[k].p != NULL);
		live[k].n = n;
		live[k].p[0] = (unsigned char)n;
		live[k].p[n - 1] = (unsigned char)k;
		if (f != NULL && ++ops % 16 == 0) {
			char *line = NULL;
			size_t cap = 0;

			rewind(f);
			for (int i = 0; i < 3; i++)
				T_ASSERT(getline(&line, &cap, f) > 0);
			T_ASSERT(strncmp(line, "line ", 5) == 0);
			free(line);
		}
		ops++;
	}
	for (size_t k = 0; k < LIVE; k++)
		free(live[k].p);
	if (f != NULL)
		fclose(f);
	if (a->ops != NULL)
		atomic_fetch_add(a->ops, ops);
	return NULL;
}

/* ------------------------------------------------ B.13: atfork */

struct forker_arg {
	unsigned nforks, tid;
	unsigned done;
};

static void
atfork_child_body(void)
{
	alarm(10);
	if (g_child_early != 1 || g_child_late != 1)
		_exit(4);
	/* Both child handlers ran, in registration order. */
	if (atomic_load(&g_norder) < 4 || g_order[2] != 'c' ||
	    g_order[3] != 'd')
		_exit(5);
	_exit(child_allocates() ? 0 : 3);
}

/* Forks one at a time (serialised with main by g_fork_lock). */
static pthread_mutex_t g_fork_lock = PTHREAD_MUTEX_INITIALIZER;

static void
atfork_one(unsigned who, unsigned i)
{
	char buf[64];
	int status;
	pid_t pid;

	T_EQ(pthread_mutex_lock(&g_fork_lock), 0);
	atomic_store(&g_norder, 0);
	g_child_early = g_child_late = 0;
	g_before_fork = handler_block(100, 0xbf);
	g_before_fork_qc = handler_block(32768, 0xbf);	   /* kva's qcache */
	g_before_fork_large = handler_block(200000, 0xbf); /* kva */
	pid = fork();
	if (pid == 0)
		atfork_child_body();
	T_ASSERT(pid > 0);
	T_EQ(waitpid(pid, &status, 0), pid);
	if (status != 0)
		T_FAIL("fork %u from %s: child %s", i,
		    who == 0 ? "main" : "a worker",
		    status_str(status, buf, sizeof buf));
	/* prepare: late then early; parent: early then late. */
	if (atomic_load(&g_norder) != 4 || memcmp(g_order, "LEel", 4) != 0)
		T_FAIL("atfork order in the parent: %.4s", g_order);
	T_EQ(pthread_mutex_unlock(&g_fork_lock), 0);
}

static void *
atfork_forker(void *arg)
{
	struct forker_arg *a = arg;

	for (unsigned i = 0; i < a->nforks; i++) {
		atfork_one(a->tid, i);
		a->done++;
		usleep(200);
	}
	return NULL;
}

static void
test_atfork(void)
{
	enum { NH = 3 };
	pthread_t th[NH], fth;
	struct hammer_arg ha[NH];
	struct forker_arg fa = {(unsigned)t_scale(30), 1, 0};
	unsigned nmain = (unsigned)t_scale(30), before_prep, before_parent;

	g_seed = t_seed();
	/* The program has allocated plenty by now: the late set. */
	free(malloc(12345));
	T_EQ(pthread_atfork(prepare_late, parent_late, child_late), 0);
	before_prep = atomic_load(&g_prep_early);
	before_parent = atomic_load(&g_parent_early);
	atomic_store(&g_atfork_alloc, true);
	atomic_store(&g_stop, false);
	for (unsigned i = 0; i < NH; i++) {
		ha[i] = (struct hammer_arg){i, NULL, NULL};
		T_EQ(pthread_create(&th[i], NULL, hammer_thread, &ha[i]), 0);
	}
	T_EQ(pthread_create(&fth, NULL, atfork_forker, &fa), 0);
	for (unsigned i = 0; i < nmain; i++) {
		atfork_one(0, i);
		usleep(300);
	}
	T_EQ(pthread_join(fth, NULL), 0);
	atomic_store(&g_stop, true);
	for (unsigned i = 0; i < NH; i++)
		T_EQ(pthread_join(th[i], NULL), 0);
	atomic_store(&g_atfork_alloc, false);
	T_EQ(fa.done, fa.nforks);
	T_EQ(atomic_load(&g_prep_early) - before_prep, nmain + fa.nforks);
	T_EQ(atomic_load(&g_parent_early) - before_parent, nmain + fa.nforks);
	T_EQ(atomic_load(&g_prep_late), nmain + fa.nforks);
	T_EQ(atomic_load(&g_parent_late), nmain + fa.nforks);
	printf("   %u forks (main and a worker) with allocating atfork "
	       "handlers, 3 threads allocating: all children done\n",
	    nmain + fa.nforks);
}

/* ------------------------------------------------ B.9: fork storm */

static atomic_ulong g_storm_forks, g_storm_ops, g_storm_flushes;

static void *
storm_forker(void *arg)
{
	char buf[64];

	(void)arg;
	while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
		int status;
		pid_t pid = fork();

		if (pid == 0) {
			alarm(10);
			if (!child_allocates())
				_exit(3);
			_exit(17);
		}
		T_ASSERT(pid > 0);
		T_EQ(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 17)
			T_FAIL("storm child: %s (expected exit 17)",
			    status_str(status, buf, sizeof buf));
		atomic_fetch_add(&g_storm_forks, 1);
	}
	return NULL;
}

static void *
flusher_thread(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
		fflush(NULL);
		atomic_fetch_add(&g_storm_flushes, 1);
		usleep(100);
	}
	return NULL;
}

static void
test_fork_storm(void)
{
	enum { NFORK = 4, NMALLOC = 8 };
	pthread_t fth[NFORK], mth[NMALLOC], flth;
	struct hammer_arg ha[NMALLOC];
	char path[] = "/tmp/malloc_fork_mt.XXXXXX";
	double secs = (double)t_scale(1500) / 1000.0, t0;
	FILE *f;
	int fd;

	g_seed = t_seed();
	fd = mkstemp(path);
	T_ASSERT(fd >= 0);
	f = fdopen(fd, "w");
	T_ASSERT(f != NULL);
	for (int i = 0; i < 100; i++)
		fprintf(f, "line %d %0*d\n", i, i * 7 % 300, 0);
	T_EQ(fclose(f), 0);
	atomic_store(&g_stop, false);
	for (unsigned i = 0; i < NMALLOC; i++) {
		ha[i] = (struct hammer_arg){i, path, &g_storm_ops};
		T_EQ(pthread_create(&mth[i], NULL, hammer_thread, &ha[i]), 0);
	}
	T_EQ(pthread_create(&flth, NULL, flusher_thread, NULL), 0);
	for (unsigned i = 0; i < NFORK; i++)
		T_EQ(pthread_create(&fth[i], NULL, storm_forker, NULL), 0);
	t0 = t_now_s();
	while (t_now_s() - t0 < secs)
		usleep(10000);
	atomic_store(&g_stop, true);
	for (unsigned i = 0; i < NFORK; i++)
		T_EQ(pthread_join(fth[i], NULL), 0);
	for (unsigned i = 0; i < NMALLOC; i++)
		T_EQ(pthread_join(mth[i], NULL), 0);
	T_EQ(pthread_join(flth, NULL), 0);
	unlink(path);
	printf("   %.1f s: %lu children all exited 17; %lu allocator ops, "
	       "%lu fflush\n",
	    t_now_s() - t0, atomic_load(&g_storm_forks),
	    atomic_load(&g_storm_ops), atomic_load(&g_storm_flushes));
	T_GT(atomic_load(&g_storm_forks), 0);
}

/* ------------------------------------------ B.11: fork+exec thread */

static const char *g_true;

static void *
exec_forker(void *arg)
{
	unsigned n = *(unsigned *)arg;
	char buf[64];

	for (unsigned i = 0; i < n; i++) {
		int status;
		pid_t pid = fork();

		if (pid == 0) {
			alarm(10);
			execl(g_true, "true", (char *)NULL);
			_exit(127);
		}
		T_ASSERT(pid > 0);
		T_EQ(waitpid(pid, &status, 0), pid);
		if (status != 0)
			T_FAIL("fork+exec %u of %s: %s", i, g_true,
			    status_str(status, buf, sizeof buf));
	}
	return NULL;
}

static void
test_fork_exec_thread(void)
{
	enum { NH = 2 };
	pthread_t th[NH], fth;
	struct hammer_arg ha[NH];
	unsigned n = (unsigned)t_scale(100);

	if (access("/bin/true", X_OK) == 0)
		g_true = "/bin/true";
	else if (access("/usr/bin/true", X_OK) == 0)
		g_true = "/usr/bin/true";
	else
		t_skip("no /bin/true");
	g_seed = t_seed();
	atomic_store(&g_stop, false);
	for (unsigned i = 0; i < NH; i++) {
		ha[i] = (struct hammer_arg){i, NULL, NULL};
		T_EQ(pthread_create(&th[i], NULL, hammer_thread, &ha[i]), 0);
	}
	T_EQ(pthread_create(&fth, NULL, exec_forker, &n), 0);
	T_EQ(pthread_join(fth, NULL), 0);
	atomic_store(&g_stop, true);
	for (unsigned i = 0; i < NH; i++)
		T_EQ(pthread_join(th[i], NULL), 0);
	printf("   %u fork+exec of %s from a worker thread\n", n, g_true);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	alarm(60);
	/* Must come first: it needs a process that never had a thread. */
	T_RUN_IF(test_fork_from_signal);
	T_RUN_IF(test_atfork);
	T_RUN_IF(test_fork_storm);
	T_RUN_IF(test_fork_exec_thread);
	return t_done();
}
