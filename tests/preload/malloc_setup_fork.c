/*
 * malloc_setup_fork.c -- a fork from a signal handler that interrupts
 * the program's first malloc, which sets kmem up (issue 10, item 3),
 * through libkmem-malloc.so.
 *
 * Each round executes this program again ("--round"), so that its first
 * malloc is the one in main: a periodic timer signal (every 20 us) is
 * armed just before it; the first signal's handler forks, and the
 * grandchild, still inside the handler, mallocs 8 MiB in blocks of 16
 * bytes to 100 KiB, checks and frees them, and exits 0.  Before the fix
 * a handler that landed in kmem's set-up left the grandchild with the
 * set-up "in progress in this thread" for ever: its mallocs came from the
 * 256 KiB bootstrap area until ENOMEM.  Now the set-up runs with signals
 * blocked, so the handler runs after it.
 *
 * Pass: every round's grandchild exited 0.  Only under kmem
 * (KMEM_TEST_PRELOAD): glibc's malloc is not async-signal-safe either,
 * and a handler that interrupts it and allocates is undefined there.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "t.h"

#define ROUNDS 20

static volatile sig_atomic_t g_forked;
static volatile pid_t g_grandchild;

static void
grandchild(void)
{
	static void *v[8192];
	static const size_t sizes[] = {16, 100, 1000, 5000, 100000};
	size_t i, n = 0, bytes = 0;

	alarm(10);
	while (bytes < (8u << 20) && n < 8192) {
		size_t sz = sizes[n % 5];

		if ((v[n] = malloc(sz)) == NULL)
			_exit(3);
		memset(v[n], (int)n, sz);
		bytes += sz;
		n++;
	}
	for (i = 0; i < n; i++) {
		if (((unsigned char *)v[i])[sizes[i % 5] - 1] !=
		    (unsigned char)i)
			_exit(4);
		free(v[i]);
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
	pid = fork();
	if (pid == 0)
		grandchild();
	g_grandchild = pid;
}

/* A fresh process: nothing has called malloc yet. */
static int
one_round(void)
{
	struct sigaction sa;
	timer_t timer;
	int status;
	void *p;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_timer;
	sigaction(SIGUSR1, &sa, NULL);
	if (!t_timer_every(&timer, SIGUSR1, 20000))
		return 77;
	p = malloc(100); /* the first malloc: kmem's set-up */
	while (!g_forked)
		;
	t_timer_every(&timer, SIGUSR1, 0);
	free(p);
	if (g_grandchild <= 0)
		return 5;
	while (waitpid(g_grandchild, &status, 0) < 0)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "   grandchild: status %#x%s\n",
		    (unsigned)status,
		    WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM
			? " (it hung)"
			: "");
		return 2;
	}
	return 0;
}

static void
test_fork_in_first_malloc(void)
{
	int i;

	for (i = 0; i < ROUNDS; i++) {
		int status = t_exec_self("--round", 30);

		if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
			t_skip("no timer_create");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			T_FAIL("round %d: status %#x (the grandchild of a fork "
			       "in the first malloc's signal handler could not "
			       "allocate)",
			    i, (unsigned)status);
	}
	printf("   %d rounds: every grandchild allocated 8 MiB\n", ROUNDS);
}

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--round") == 0)
		return one_round();
	if (getenv("KMEM_TEST_PRELOAD") == NULL)
		t_skip("kmem's set-up: only under libkmem-malloc.so");
	T_RUN(test_fork_in_first_malloc);
	return t_done();
}
