/*
 * bench_check -- what KMEM_DEBUG=check costs (debug.c section 6).
 *
 * The workload, in a child process per setting and round: LIVE large
 * blocks (70,000 to 270,000 bytes: kmem's large path, one vmem_xalloc /
 * vmem_xfree of the page arena each, where the arena check runs), then
 * 200,000 times one of them freed and another allocated; then 5 times
 * 200,000 small objects of 48..144 bytes allocated and freed (pool pages
 * gained and emptied, depot exchanges).  CPU time of the workload, ms.
 * Settings: off, check, check_every=16 (set with kmemi_debug_configure
 * before the first allocation); LIVE 200, 2,000 and 20,000, so that the
 * arena's size varies a hundredfold: checks spaced by size should keep
 * the cost per event near constant.  Rounds rotate the settings; the
 * median of ROUNDS is printed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kmem/kmem.h>

#include "bench.h"
#include "internal/kmem_impl.h"

#define ROUNDS	 5
#define REPLACE	 200000
#define NSMALL	 200000
#define MAXLIVE	 20000
#define NSETTING 3

static const char *const settings[NSETTING] = {"", "check", "check_every=16"};
static const unsigned int lives[] = {200, 2000, 20000};

static uint64_t rng = 88172645463325252ull;

static size_t
next_size(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return 70000 + (size_t)(rng % 200000);
}

/* The workload; its CPU time in ms. */
static double
workload(unsigned int live)
{
	static void *big[MAXLIVE], *small[NSMALL];
	static size_t sz[MAXLIVE];
	uint64_t t0 = bench_cpu_ns();
	unsigned int i, k;
	long r;

	for (i = 0; i < live; i++)
		big[i] = kmem_alloc(sz[i] = next_size(), KM_SLEEP);
	for (r = 0; r < REPLACE; r++) {
		k = (unsigned int)(rng % live);
		kmem_free(big[k], sz[k]);
		big[k] = kmem_alloc(sz[k] = next_size(), KM_SLEEP);
		bench_escape(big[k]);
	}
	for (r = 0; r < 5; r++) {
		for (i = 0; i < NSMALL; i++)
			small[i] = kmem_alloc(48 + (i % 7) * 16, KM_SLEEP);
		for (i = 0; i < NSMALL; i++)
			kmem_free(small[i], 48 + (i % 7) * 16);
	}
	for (i = 0; i < live; i++)
		kmem_free(big[i], sz[i]);
	return (double)(bench_cpu_ns() - t0) / 1e6;
}

/* One child: set up, run, send the time back through a pipe. */
static double
run_child(const char *setting, unsigned int live)
{
	int fd[2], st;
	double ms = -1;
	pid_t pid;

	if (pipe(fd) != 0)
		bench_die("bench_check", "pipe", errno);
	fflush(NULL);
	if ((pid = fork()) < 0)
		bench_die("bench_check", "fork", errno);
	if (pid == 0) {
		close(fd[0]);
		kmemi_debug_configure(setting);
		ms = workload(live);
		if (write(fd[1], &ms, sizeof ms) != sizeof ms)
			_exit(1);
		_exit(0);
	}
	close(fd[1]);
	if (read(fd[0], &ms, sizeof ms) != sizeof ms)
		bench_die("bench_check", "child", EIO);
	close(fd[0]);
	waitpid(pid, &st, 0);
	return ms;
}

int
main(void)
{
	double t[NSETTING][ROUNDS];
	unsigned int l, s, r;

	printf("bench_check: CPU ms of %d large-block replacements among LIVE "
	       "live blocks, then 5 x %d small objects;\nmedian of %d rounds "
	       "(settings rotated), one child each\n\n",
	    REPLACE, NSMALL, ROUNDS);
	printf(
	    "%7s %10s %10s %16s\n", "LIVE", "off", "check", "check_every=16");
	for (l = 0; l < sizeof lives / sizeof lives[0]; l++) {
		for (r = 0; r < ROUNDS; r++)
			for (s = 0; s < NSETTING; s++) {
				unsigned int k = (s + r) % NSETTING;

				t[k][r] = run_child(settings[k], lives[l]);
			}
		printf("%7u", lives[l]);
		for (s = 0; s < NSETTING; s++)
			printf(" %*.0f", s == 2 ? 16 : 10,
			    bench_median(t[s], ROUNDS));
		printf("\n");
		fflush(stdout);
	}
	return 0;
}
