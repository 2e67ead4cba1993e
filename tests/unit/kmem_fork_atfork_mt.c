/*
 * kmem_fork_atfork_mt.c -- another atfork handler, registered by main
 * before kmem's first use, takes a lock M in its prepare handler, while
 * threads call fopen and fclose (stdio's list lock) holding M, and the
 * main thread forks (issue 10, item 1's review).
 *
 * kmem's prepare handler takes stdio's list lock (glibc bug 19431: see
 * fork.c).  A prepare handler that runs after it, and waits for M, would
 * then wait for a thread that holds M and waits for the list lock: the
 * fork hangs.  Prepare handlers run in the reverse order of registration,
 * so kmem registers its handlers when the library is loaded, before
 * main's: main's prepare runs first and takes M, and kmem's takes the list
 * lock after it.  (Registered at kmem's first use, as before, they ran
 * first: this test hung on every run.)
 *
 * Pass: 1000 forks (t_scale) with 2 threads doing fopen/fclose under M,
 * every child exits 0, no hang (alarm).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kmem/kmem.h>

#include "t.h"

static pthread_mutex_t g_m = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_stop;
static atomic_ulong g_opens;

static void
prep(void)
{
	pthread_mutex_lock(&g_m);
}

static void
rel(void)
{
	pthread_mutex_unlock(&g_m);
}

static void *
opener(void *arg)
{
	(void)arg;
	while (!atomic_load(&g_stop)) {
		FILE *f;

		pthread_mutex_lock(&g_m);
		if ((f = fopen("/dev/null", "r")) != NULL)
			fclose(f);
		pthread_mutex_unlock(&g_m);
		atomic_fetch_add(&g_opens, 1);
	}
	return NULL;
}

static void
on_alarm(int sig)
{
	static const char msg[] = "FAIL: hung: fork, with another "
				  "library's prepare handler waiting for a "
				  "lock whose holder calls fopen\n";

	(void)sig;
	if (write(2, msg, sizeof msg - 1) < 0)
		_exit(2);
	_exit(2);
}

static void
test_handler_before_first_use(void)
{
	pthread_t t[2];
	int i, n = (int)t_scale(1000);
	void *p;

	/* Registered before kmem is first used. */
	T_EQ(pthread_atfork(prep, rel, rel), 0);
	p = kmem_alloc(64, KM_SLEEP);
	for (i = 0; i < 2; i++)
		T_EQ(pthread_create(&t[i], NULL, opener, NULL), 0);
	signal(SIGALRM, on_alarm);
	alarm(60);
	for (i = 0; i < n; i++) {
		int status;
		pid_t pid = fork();

		if (pid == 0) {
			kmem_free(kmem_alloc(100, KM_SLEEP), 100);
			_exit(0);
		}
		T_ASSERT(pid > 0);
		T_EQ(waitpid(pid, &status, 0), pid);
		T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	alarm(0);
	atomic_store(&g_stop, 1);
	for (i = 0; i < 2; i++)
		T_EQ(pthread_join(t[i], NULL), 0);
	kmem_free(p, 64);
	printf("   %d forks, %lu fopen/fclose under the handler's lock\n", n,
	    atomic_load(&g_opens));
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_handler_before_first_use);
	return t_done();
}
