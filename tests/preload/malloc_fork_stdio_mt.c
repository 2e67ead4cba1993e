/*
 * malloc_fork_stdio_mt.c -- fork(2) against stdio's locks (glibc bug
 * 19431, the shape of glibc's tst-malloc-fork-deadlock), standard API
 * only, so the same binary runs on glibc (the oracle) and on the shim.
 *
 * The deadlock it looks for: a reader thread inside getline() holds its
 * FILE's lock and calls malloc; the flusher, inside fflush(NULL), holds
 * stdio's list lock and waits for that FILE; the forking thread runs the
 * allocator's fork handler, then glibc's fork() takes the list lock.  If
 * the allocator's handler takes its own locks before the list lock (an
 * atfork prepare handler runs before fork() locks stdio), the reader
 * waits for the allocator, the flusher for the reader, the forker for
 * the flusher: a cycle.  glibc's own malloc locks after the list lock.
 *
 *  - 4 readers: each its own file of lines 1 to 3000 bytes long, read by
 *    getline() into a buffer that starts NULL, so getline mallocs and
 *    reallocs while it holds the FILE's lock; every line is checked;
 *  - 1 flusher: fflush(NULL) in a loop;
 *  - 2 threads malloc/free/realloc, so that the allocator's slow paths
 *    (the locks its fork handler takes) are busy;
 *  - 1 forker: fork(); the child allocates (small, page, 1 MiB), reads a
 *    line with getline(), frees and _exits 0 (its own alarm: a child
 *    that hangs dies of SIGALRM and fails the test).
 *
 * 20 s (t_scale).  Pass: every child exited 0, and the process ended: a
 * watchdog (SIGALRM, 60 s past the run) reports a hang by name.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t.h"

#define NREADERS 4
#define NLINES	 64

static atomic_bool g_stop;
static atomic_ulong g_lines, g_flushes, g_forks, g_ops;
static char g_paths[NREADERS][64];
static uint64_t g_seed;

/* Line i of every file: "i:" then (i * 47 % 3000) 'x's. */
static size_t
line_len(unsigned i)
{
	return (size_t)(i * 47u % 3000u) + 1;
}

static void
make_file(char *path, size_t n)
{
	FILE *f;
	int fd;

	snprintf(path, n, "/tmp/kmem_fork_stdio.XXXXXX");
	fd = mkstemp(path);
	T_ASSERT(fd >= 0);
	f = fdopen(fd, "w");
	T_ASSERT(f != NULL);
	for (unsigned i = 0; i < NLINES; i++) {
		fprintf(f, "%u:", i);
		for (size_t k = 0; k < line_len(i); k++)
			fputc('x', f);
		fputc('\n', f);
	}
	T_EQ(fclose(f), 0);
}

static void *
reader(void *arg)
{
	const char *path = arg;
	FILE *f = fopen(path, "r");
	unsigned long n = 0;

	T_ASSERT(f != NULL);
	while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
		rewind(f);
		for (unsigned i = 0; i < NLINES; i++) {
			char *line = NULL, want[16];
			size_t cap = 0;
			ssize_t len = getline(&line, &cap, f);
			int pre = snprintf(want, sizeof want, "%u:", i);

			T_ASSERT(len > 0);
			T_EQ((size_t)len, (size_t)pre + line_len(i) + 1);
			T_ASSERT(strncmp(line, want, (size_t)pre) == 0);
			free(line);
			n++;
		}
	}
	fclose(f);
	atomic_fetch_add(&g_lines, n);
	return NULL;
}

static void *
flusher(void *arg)
{
	unsigned long n = 0;

	(void)arg;
	while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
		fflush(NULL);
		/* Leave the list lock free now and then: fork needs it. */
		if (++n % 16 == 0)
			usleep(50);
	}
	atomic_fetch_add(&g_flushes, n);
	return NULL;
}

static void *
churner(void *arg)
{
	enum { LIVE = 256 };
	void *live[LIVE] = {0};
	struct t_rng r;
	unsigned long n = 0;

	t_rng_init(&r, g_seed, (unsigned)(uintptr_t)arg);
	while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
		size_t k = t_rng_below(&r, LIVE);
		size_t sz =
		    1 + t_rng_below(&r, t_rng_below(&r, 8) ? 512 : 70000);

		if (t_rng_below(&r, 4) == 0 && live[k] != NULL) {
			void *q = realloc(live[k], sz);

			T_ASSERT(q != NULL);
			live[k] = q;
		} else {
			free(live[k]);
			live[k] = malloc(sz);
			T_ASSERT(live[k] != NULL);
		}
		memset(live[k], 1, sz < 64 ? sz : 64);
		n++;
	}
	for (size_t k = 0; k < LIVE; k++)
		free(live[k]);
	atomic_fetch_add(&g_ops, n);
	return NULL;
}

/* The child: allocate, read a line, free, exit 0. */
static void
child(void)
{
	void *a, *b, *c;
	char *line = NULL;
	size_t cap = 0;
	FILE *f;

	alarm(10);
	a = malloc(24);
	b = malloc(5000);
	c = malloc(1 << 20);
	if (a == NULL || b == NULL || c == NULL)
		_exit(3);
	memset(c, 7, 1 << 20);
	if ((f = fopen(g_paths[0], "r")) == NULL)
		_exit(4);
	if (getline(&line, &cap, f) <= 0 || strncmp(line, "0:", 2) != 0)
		_exit(5);
	fclose(f);
	free(line);
	free(c);
	free(b);
	free(a);
	_exit(0);
}

static void
on_watchdog(int sig)
{
	static const char msg[] = "FAIL: hung: a fork, getline or fflush "
				  "never returned (fork deadlock)\n";

	(void)sig;
	if (write(2, msg, sizeof msg - 1) < 0)
		_exit(2);
	_exit(2);
}

static void
test_fork_stdio(void)
{
	pthread_t rd[NREADERS], fl, ch[2];
	double secs = (double)t_scale(20000) / 1000.0, t0;
	unsigned long bad = 0;

	g_seed = t_seed();
	for (unsigned i = 0; i < NREADERS; i++)
		make_file(g_paths[i], sizeof g_paths[i]);
	signal(SIGALRM, on_watchdog);
	alarm((unsigned)secs + 60);
	for (unsigned i = 0; i < NREADERS; i++)
		T_EQ(pthread_create(&rd[i], NULL, reader, g_paths[i]), 0);
	T_EQ(pthread_create(&fl, NULL, flusher, NULL), 0);
	for (unsigned i = 0; i < 2; i++)
		T_EQ(
		    pthread_create(&ch[i], NULL, churner, (void *)(uintptr_t)i),
		    0);
	t0 = t_now_s();
	while (t_now_s() - t0 < secs) {
		int status;
		pid_t pid = fork();

		if (pid == 0)
			child();
		T_ASSERT(pid > 0);
		T_EQ(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "child: status %#x%s\n",
			    (unsigned)status,
			    WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM
				? " (it hung)"
				: "");
			bad++;
		}
		atomic_fetch_add(&g_forks, 1);
	}
	atomic_store(&g_stop, true);
	for (unsigned i = 0; i < NREADERS; i++)
		T_EQ(pthread_join(rd[i], NULL), 0);
	T_EQ(pthread_join(fl, NULL), 0);
	for (unsigned i = 0; i < 2; i++)
		T_EQ(pthread_join(ch[i], NULL), 0);
	alarm(0);
	for (unsigned i = 0; i < NREADERS; i++)
		unlink(g_paths[i]);
	printf("   %.1f s: %lu forks, %lu lines read, %lu fflush(NULL), %lu "
	       "allocator ops\n",
	    t_now_s() - t0, atomic_load(&g_forks), atomic_load(&g_lines),
	    atomic_load(&g_flushes), atomic_load(&g_ops));
	T_EQ(bad, 0);
	T_GT(atomic_load(&g_forks), 0);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_fork_stdio);
	return t_done();
}
