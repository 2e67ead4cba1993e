/*
 * malloc_atfork_first -- the program's first malloc is made by
 * pthread_atfork itself (reliability plan D24, early and recursive
 * initialisation).
 *
 * glibc keeps its fork handlers in a table that starts with room for 48
 * and grows with malloc.  Registering 60 handlers from .preinit_array,
 * before anything else in the process allocates, makes that growth the
 * first malloc -- called with glibc's atfork lock held.  A preloaded
 * malloc that registers its own fork handlers while it sets itself up
 * would call pthread_atfork there again and wait for that lock for ever
 * (kmem did).  Pass: the program gets to main (a watchdog set in the
 * preinit function kills it otherwise), allocates, and forks with a
 * second thread alive; the child allocates and every handler ran.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

#define NHANDLERS 60 /* more than glibc's table holds before it grows */

static atomic_int nprepare, nparent, nchild;

static void
on_prepare(void)
{
	atomic_fetch_add(&nprepare, 1);
}

static void
on_parent(void)
{
	atomic_fetch_add(&nparent, 1);
}

static void
on_child(void)
{
	atomic_fetch_add(&nchild, 1);
}

static void
preinit(int argc, char **argv, char **envp)
{
	int i;

	(void)argc;
	(void)argv;
	(void)envp;
	alarm(30); /* a hang here is the failure */
	for (i = 0; i < NHANDLERS; i++)
		if (pthread_atfork(on_prepare, on_parent, on_child) != 0)
			abort();
}

__attribute__((section(".preinit_array"), used)) static void (*preinit_p)(
    int, char **, char **) = preinit;

static void *
spin(void *arg)
{
	int i;

	for (i = 0; i < 100000; i++)
		free(malloc(64 + (size_t)(i % 512)));
	return arg;
}

static void
test_fork_after(void)
{
	pthread_t t;
	char *p = malloc(100);
	int status;
	pid_t pid;

	T_ASSERT(p != NULL);
	memset(p, 'x', 100);
	T_EQ(pthread_create(&t, NULL, spin, NULL), 0);
	pid = fork();
	if (pid == 0) {
		char *q = malloc(5000);

		_exit(q != NULL && p[99] == 'x' &&
			    atomic_load(&nchild) == NHANDLERS
			? 0
			: 1);
	}
	T_ASSERT(pid > 0);
	T_EQ(waitpid(pid, &status, 0), pid);
	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	T_EQ(pthread_join(t, NULL), 0);
	T_EQ(atomic_load(&nprepare), NHANDLERS);
	T_EQ(atomic_load(&nparent), NHANDLERS);
	free(p);
}

int
main(void)
{
	T_RUN(test_fork_after);
	return t_done();
}
