/*
 * kmem_setup_fork.c -- a fork from a signal handler that lands during
 * kmem's set-up (issue 10, item 3).
 *
 * Each round is a fresh process (the parent never calls kmem) that arms
 * a periodic timer signal (every 20 us) and makes its first kmem call,
 * which sets kmem up (hundreds of microseconds).  The first signal's
 * handler notes whether the set-up was in progress in this thread
 * (kmemi_setup_by_self) and forks; the grandchild, still inside the
 * handler, allocates and frees 4 MiB in objects of several classes and
 * large blocks, and exits 0.  Before the fix the grandchild found
 * kmem's set-up lock held for ever by the interrupted frame: it hung
 * (its alarm fails the round).  Now the set-up runs with signals
 * blocked, so the handler runs after it: the grandchild allocates
 * normally and no handler ever sees the set-up in progress.
 *
 * Pass: in every round the grandchild exited 0, and the handler never
 * ran inside the set-up.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kmem/kmem.h>

#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "t.h"

#define ROUNDS 20

static volatile sig_atomic_t g_in_setup, g_forked;
static volatile pid_t g_grandchild;
static timer_t g_timer;

/* The grandchild: allocate normally (in the handler), then exit 0. */
static void
grandchild(void)
{
	static void *v[4096];
	static const size_t sizes[] = {24, 100, 1000, 5000, 70000};
	size_t i, n = 0, bytes = 0;

	alarm(10);
	while (bytes < (4u << 20) && n < 4096) {
		size_t sz = sizes[n % 5];

		if ((v[n] = kmem_alloc(sz, KM_NOSLEEP)) == NULL)
			_exit(3);
		memset(v[n], (int)n, sz);
		bytes += sz;
		n++;
	}
	for (i = 0; i < n; i++) {
		size_t sz = sizes[i % 5];

		if (((unsigned char *)v[i])[sz - 1] != (unsigned char)i)
			_exit(4);
		kmem_free(v[i], sz);
	}
	_exit(0);
}

static void
on_timer(int sig)
{
	pid_t pid;

	(void)sig;
	if (g_forked)
		return;
	g_forked = 1;
	g_in_setup = kmemi_setup_by_self();
	pid = fork();
	if (pid == 0)
		grandchild();
	g_grandchild = pid;
}

/* One round, in a fresh process: exit 0 (handler after set-up), 1 (in). */
static void
round_child(void)
{
	struct sigaction sa;
	int status;
	void *p;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_timer;
	sigaction(SIGUSR1, &sa, NULL);
	if (!t_timer_every(&g_timer, SIGUSR1, 20000))
		_exit(77);
	p = kmem_alloc(100, KM_SLEEP); /* the first call: the set-up */
	while (!g_forked)
		;
	t_timer_every(&g_timer, SIGUSR1, 0);
	kmem_free(p, 100);
	if (g_grandchild <= 0)
		_exit(5);
	while (waitpid(g_grandchild, &status, 0) < 0)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr,
		    "   grandchild (forked %s the set-up): status %#x%s\n",
		    g_in_setup ? "during" : "after", (unsigned)status,
		    WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM
			? " (it hung)"
			: "");
		_exit(2);
	}
	_exit(g_in_setup ? 1 : 0);
}

static void
test_fork_in_setup(void)
{
	int i, during = 0;

	for (i = 0; i < ROUNDS; i++) {
		int status;
		pid_t pid;

		fflush(NULL);
		pid = fork();
		T_ASSERT(pid >= 0);
		if (pid == 0) {
			alarm(30);
			round_child();
		}
		T_EQ(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
			t_skip("no timer_create");
		if (!WIFEXITED(status) || WEXITSTATUS(status) > 1)
			T_FAIL("round %d: status %#x (the grandchild of a fork "
			       "in the handler could not allocate)",
			    i, (unsigned)status);
		during += WEXITSTATUS(status);
	}
	printf("   %d rounds; the handler ran inside the set-up in %d\n",
	    ROUNDS, during);
	T_EQ(during, 0);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_fork_in_setup);
	return t_done();
}
