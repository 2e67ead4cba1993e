/*
 * bench_startup.c -- what an allocator costs a short program: the first
 * malloc of a fresh process (the allocator's set-up) and the whole run of
 * /bin/true and of ls, under glibc and, by LD_PRELOAD, jemalloc,
 * tcmalloc, mimalloc and kmem's libkmem-malloc.so (issue 10, item 3).
 *
 *   bench_startup [--runs N] [--kmem PATH]
 *
 * Each run is a fresh process (fork, exec), the allocators interleaved
 * run by run, so that the machine's load falls on all of them alike; the
 * medians are printed with each allocator's ratio to glibc.  "first
 * malloc" is timed inside the process (this program again, with
 * --first: the clock read around its first malloc, which for kmem is
 * the set-up); "true" and "ls" are fork-to-exit wall times.  Peers that
 * are not installed (scripts/bench-deps.sh) are skipped.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MAXRUNS 501

struct alloc {
	const char *name;
	const char *libs[3]; /* the first that exists is preloaded */
	char path[PATH_MAX]; /* "" for glibc; unset: not installed */
	bool have;
	double first[MAXRUNS], tru[MAXRUNS], ls[MAXRUNS];
};

static struct alloc allocs[] = {
    {"glibc", {NULL}, "", false, {0}, {0}, {0}},
    {"jemalloc", {"libjemalloc.so.2", "libjemalloc.so", NULL}, "", false, {0},
	{0}, {0}},
    {"tcmalloc", {"libtcmalloc_minimal.so.4", "libtcmalloc.so.4", NULL}, "",
	false, {0}, {0}, {0}},
    {"mimalloc", {"libmimalloc.so.2", "libmimalloc.so", NULL}, "", false, {0},
	{0}, {0}},
    {"kmem", {NULL}, "", false, {0}, {0}, {0}},
};
#define NALLOC (sizeof allocs / sizeof allocs[0])

/* --first: the first malloc of this process, ns, on stdout. */
static int
first_malloc(void)
{
	uint64_t t0 = bench_now_ns(), t1;
	void *p = malloc(100);

	t1 = bench_now_ns();
	bench_escape(p);
	printf("%llu\n", (unsigned long long)(t1 - t0));
	return 0;
}

static bool
find_lib(struct alloc *a)
{
	static const char *dirs[] = {"/usr/lib/x86_64-linux-gnu", "/usr/lib",
	    "/usr/local/lib", "/lib/x86_64-linux-gnu"};
	size_t i, k;

	for (i = 0; a->libs[i] != NULL; i++)
		for (k = 0; k < sizeof dirs / sizeof dirs[0]; k++) {
			snprintf(a->path, sizeof a->path, "%s/%s", dirs[k],
			    a->libs[i]);
			if (access(a->path, R_OK) == 0)
				return true;
		}
	return false;
}

/*
 * Run argv under allocator a: the wall time, ns; the child's stdout into
 * out (if not NULL).
 */
static double
run(const struct alloc *a, char *const argv[], char *out, size_t n)
{
	int fd[2], status;
	uint64_t t0;
	pid_t pid;
	size_t len = 0;
	ssize_t r;

	if (pipe(fd) != 0)
		bench_die("bench_startup", "pipe", errno);
	t0 = bench_now_ns();
	pid = fork();
	if (pid < 0)
		bench_die("bench_startup", "fork", errno);
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		dup2(out != NULL ? fd[1] : devnull, 1);
		close(fd[0]);
		close(fd[1]);
		if (a->path[0] != '\0')
			setenv("LD_PRELOAD", a->path, 1);
		else
			unsetenv("LD_PRELOAD");
		execv(argv[0], argv);
		_exit(127);
	}
	close(fd[1]);
	while (out != NULL && len < n - 1 &&
	    (r = read(fd[0], out + len, n - 1 - len)) > 0)
		len += (size_t)r;
	if (out != NULL)
		out[len] = '\0';
	close(fd[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench_startup: %s under %s failed\n", argv[0],
		    a->name);
		exit(1);
	}
	return (double)(bench_now_ns() - t0);
}

int
main(int argc, char **argv)
{
	char self[PATH_MAX], dir[PATH_MAX], buf[64];
	char *first_argv[] = {self, (char *)"--first", NULL};
	char *true_argv[] = {(char *)"/bin/true", NULL};
	char *ls_argv[] = {
	    (char *)"/bin/ls", (char *)"-l", (char *)"/usr/bin", NULL};
	const char *kmem = NULL;
	int runs = 101, i;
	size_t k;
	ssize_t len;

	if (argc == 2 && strcmp(argv[1], "--first") == 0)
		return first_malloc();
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--kmem") == 0 && i + 1 < argc)
			kmem = argv[++i];
		else {
			fprintf(stderr,
			    "usage: bench_startup [--runs N] [--kmem PATH]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > MAXRUNS)
		runs = 101;
	if ((len = readlink("/proc/self/exe", self, sizeof self - 1)) < 0)
		bench_die("bench_startup", "/proc/self/exe", errno);
	self[len] = '\0';
	memcpy(dir, self, sizeof dir);
	allocs[0].have = true;
	for (k = 1; k < NALLOC - 1; k++)
		allocs[k].have = find_lib(&allocs[k]);
	if (kmem != NULL)
		snprintf(allocs[NALLOC - 1].path, PATH_MAX, "%s", kmem);
	else
		snprintf(allocs[NALLOC - 1].path, PATH_MAX,
		    "%s/libkmem-malloc.so", dirname(dir));
	allocs[NALLOC - 1].have = access(allocs[NALLOC - 1].path, R_OK) == 0;
	if (!allocs[NALLOC - 1].have)
		fprintf(
		    stderr, "bench_startup: no %s\n", allocs[NALLOC - 1].path);

	for (i = 0; i < runs; i++)
		for (k = 0; k < NALLOC; k++) {
			struct alloc *a = &allocs[k];

			if (!a->have)
				continue;
			run(a, first_argv, buf, sizeof buf);
			a->first[i] = strtod(buf, NULL);
			a->tru[i] = run(a, true_argv, NULL, 0);
			a->ls[i] = run(a, ls_argv, NULL, 0);
		}

	printf("# %d fresh processes per cell, allocators interleaved; "
	       "medians\n",
	    runs);
	printf("%-10s %14s %14s %14s   (ratio to glibc)\n", "allocator",
	    "first malloc", "true", "ls -l /usr/bin");
	{
		double g[3] = {0, 0, 0};

		for (k = 0; k < NALLOC; k++) {
			struct alloc *a = &allocs[k];
			double m[3];

			if (!a->have) {
				printf("%-10s not installed\n", a->name);
				continue;
			}
			m[0] = bench_median(a->first, runs) / 1e3;
			m[1] = bench_median(a->tru, runs) / 1e3;
			m[2] = bench_median(a->ls, runs) / 1e3;
			if (k == 0)
				memcpy(g, m, sizeof g);
			printf("%-10s %11.1f us %11.1f us %11.1f us   %.2fx "
			       "%.2fx %.2fx\n",
			    a->name, m[0], m[1], m[2], m[0] / g[0], m[1] / g[1],
			    m[2] / g[2]);
		}
	}
	return 0;
}
