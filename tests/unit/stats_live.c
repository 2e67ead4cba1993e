/*
 * stats_live.c -- KMEM_STATS_LIVE, the statistics page (stats.c section
 * 5), and kmemstat -p, which reads it (tools/kmemstat.c section 6).
 *
 * This program is the test and, run again with a role as its argument,
 * the processes it looks at:
 *   worker   KMEM_STATS_LIVE=ms=0,dir=D: 1000 gets from a pool and 1000
 *            from a pool cache, a snapshot, "ready" on fd 3; then, on a
 *            byte from fd 4, gets every 20 ms until fd 4 closes; exit(0).
 *   quit     the same page; a few gets and _exit(0): its page stays.
 *   nopage   KMEM_STATS_LIVE on a full file system: gets, and no page
 *            to publish into; exit(0).
 *   lateexec as execer, the exec 0.5 s after the gets (kmemstat -w is
 *            already watching).
 *   execer   the same page; a few gets, then exec of sleep (not on kmem):
 *            its page stays, under its pid, which is still running.
 *   forker   malloc only (run under kmemstat, on libkmem-malloc.so): 500
 *            blocks of FORK_SIZE, then a child forked without exec that
 *            mallocs 300 more and _exits, then SIGKILL for itself.
 * The test runs kmemstat (next to this program in the build tree) on
 * them: -p prints the worker's rows with their exact counts, -w prints
 * growing counts and ends when the worker exits or at SIGINT, a process
 * not on kmem or gone gets one line and status 1, a stale page (dead
 * process, pid reused) is reported and removed, and a command whose
 * processes end by _exit and a signal, one of them a forked child, has
 * them all counted, the parent's counts not twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>

#include "internal/kmem_impl.h"
#include "internal/stats_live.h"
#include "t.h"

#define NGET	  1000
#define FORK_SIZE 11000 /* a malloc size nothing else here uses */

static char self[PATH_MAX], kmemstat[PATH_MAX], dir[PATH_MAX];

/* ---- the roles ---- */

static struct pool pool;
static pool_cache_t cache;

static void
gets(unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (pool_get(&pool, PR_WAITOK) == NULL ||
		    pool_cache_get(cache, PR_WAITOK) == NULL)
			_exit(3);
	}
}

static int
role_worker(void)
{
	char c;

	pool_init(&pool, 100, 0, 0, 0, "t_live_pool", NULL, IPL_NONE);
	cache = pool_cache_init(
	    200, 0, 0, 0, "t_live_cache", NULL, IPL_NONE, NULL, NULL, NULL);
	gets(NGET);
	if (!kmemi_stats_live_publish())
		return 4;
	if (write(3, "r", 1) != 1)
		return 5;
	if (read(4, &c, 1) != 1)
		exit(0);
	for (;;) {
		struct pollfd p = {4, POLLIN, 0};

		if (poll(&p, 1, 20) > 0 && read(4, &c, 1) <= 0)
			exit(0); /* the test closed fd 4 */
		gets(50);
	}
}

static void
role_quit_gets(void)
{
	pool_init(&pool, 100, 0, 0, 0, "t_live_pool", NULL, IPL_NONE);
	cache = pool_cache_init(
	    200, 0, 0, 0, "t_live_cache", NULL, IPL_NONE, NULL, NULL, NULL);
	gets(10);
	if (!kmemi_stats_live_publish())
		_exit(4);
}

static int
role_quit(void)
{
	role_quit_gets();
	_exit(0);
}

/* Gets on a full file system: no page, so nothing to publish; exit(0). */
static int
role_nopage(void)
{
	pool_init(&pool, 100, 0, 0, 0, "t_live_pool", NULL, IPL_NONE);
	cache = pool_cache_init(
	    200, 0, 0, 0, "t_live_cache", NULL, IPL_NONE, NULL, NULL, NULL);
	gets(NGET);
	return kmemi_stats_live_publish() ? 5 : 0;
}

/* The same page; gets, then (0.5 s later) exec of sleep. */
static int
role_lateexec(void)
{
	role_quit_gets();
	usleep(500000);
	execl("/bin/sleep", "sleep", "30", (char *)NULL);
	return 6;
}

static int
role_execer(void)
{
	role_quit_gets();
	execl("/bin/sleep", "sleep", "30", (char *)NULL);
	return 6;
}

/* A malloc that misses (a size class not used before): a snapshot. */
static void
publish_by_miss(size_t size)
{
	usleep(40000); /* past kmemstat's interval */
	if (malloc(size) == NULL)
		_exit(3);
}

static int
role_forker(void)
{
	int i, status;
	pid_t pid;

	for (i = 0; i < 500; i++)
		if (malloc(FORK_SIZE) == NULL)
			return 3;
	publish_by_miss(9000);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		for (i = 0; i < 300; i++)
			if (malloc(FORK_SIZE) == NULL)
				_exit(3);
		publish_by_miss(7000);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
		return 4;
	raise(SIGKILL);
	return 5;
}

/* ---- running things ---- */

/*
 * Start argv with env (NULL or "NAME=VALUE"); its stdout and stderr to
 * file "out" (NULL: this process's); fds 3 and 4 from the pipes if given.
 */
static pid_t
start(char *const argv[], const char *env, const char *out, int fd3, int fd4)
{
	pid_t pid;

	fflush(NULL);
	if ((pid = fork()) < 0)
		T_FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		if (env != NULL)
			putenv((char *)env);
		if (out != NULL) {
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			if (fd < 0)
				_exit(126);
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (fd3 >= 0 && dup2(fd3, 3) < 0)
			_exit(126);
		if (fd4 >= 0 && dup2(fd4, 4) < 0)
			_exit(126);
		alarm(60);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int
wait_for(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		T_FAIL("waitpid: %s", strerror(errno));
	return status;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	T_ASSERT(f != NULL && buf != NULL);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* kmemstat with up to 8 arguments; its output in *text, its status. */
static int
kmemstat_run(char **text, const char *a0, const char *a1, const char *a2,
    const char *a3, const char *a4, const char *a5)
{
	char out[PATH_MAX + 16];
	char *argv[] = {kmemstat, (char *)a0, (char *)a1, (char *)a2,
	    (char *)a3, (char *)a4, (char *)a5, NULL};
	int status;

	snprintf(out, sizeof out, "%s/out", dir);
	status = wait_for(start(argv, NULL, out, -1, -1));
	*text = slurp(out);
	return status;
}

/* The number in column "col" (0: the name) of the row named name. */
static long
column(const char *text, const char *name, int col)
{
	const char *p = text;
	size_t n = strlen(name);

	while ((p = strstr(p, name)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ') {
			const char *q = p + n;
			int i;

			for (i = 1; i < col; i++) {
				while (*q == ' ')
					q++;
				while (*q != ' ' && *q != '\n' && *q != '\0')
					q++;
			}
			return strtol(q, NULL, 10);
		}
		p += n;
	}
	return -1;
}

static int
count(const char *text, const char *s)
{
	int n = 0;

	for (; (text = strstr(text, s)) != NULL; text += strlen(s))
		n++;
	return n;
}

/*
 * Wait until the file "out" that a kmemstat -w writes holds at least n
 * reports, ending with a complete one, or until 30 s have passed: a
 * loaded machine (ctest -j beside the sanitizer builds) can start
 * kmemstat late, so a fixed sleep saw too few reports (a test that
 * failed once under -j2).  The number of reports seen.
 */
static int
wait_reports(const char *out, int n)
{
	int i, got = 0;

	for (i = 0; i < 3000; i++) {
		FILE *f = fopen(out, "r");

		if (f != NULL) {
			char *text = calloc(1, 1 << 20);

			T_ASSERT(text != NULL);
			text[fread(text, 1, (1 << 20) - 1, f)] = '\0';
			fclose(f);
			/* the last report is whole once the next began */
			got =
			    count(text, "Memory resource pool statistics") - 1;
			free(text);
			if (got >= n)
				return got;
		}
		usleep(10000);
	}
	return got;
}

static char env_live[PATH_MAX + 64];

/* A worker and its two pipes (ready: read end; cmd: write end). */
struct worker {
	pid_t pid;
	int cmd;
};

static struct worker
worker_start(void)
{
	char *argv[] = {self, (char *)"worker", NULL};
	int ready[2], cmd[2];
	struct worker w;
	char c;

	T_EQ(pipe2(ready, O_CLOEXEC), 0);
	T_EQ(pipe2(cmd, O_CLOEXEC), 0);
	w.pid = start(argv, env_live, NULL, ready[1], cmd[0]);
	close(ready[1]);
	close(cmd[0]);
	T_EQ(read(ready[0], &c, 1), 1);
	close(ready[0]);
	w.cmd = cmd[1];
	return w;
}

/* ---- the tests ---- */

static void
test_p(void)
{
	struct worker w = worker_start();
	char pid[32], path[PATH_MAX + 64], *text;
	struct stat st;

	snprintf(pid, sizeof pid, "%ld", (long)w.pid);
	snprintf(path, sizeof path, "%s/" KMEM_LIVE_PREFIX "%s", dir, pid);
	T_EQ(stat(path, &st), 0);
	T_EQ(st.st_mode & 0777, 0600); /* the owner's only */
	T_EQ(kmemstat_run(&text, "-d", dir, "-p", pid, NULL, NULL), 0);
	/* Pool table: Requests and InUse, exactly the worker's gets. */
	T_EQ(column(text, "t_live_pool", 2), NGET);
	T_EQ(column(text, "t_live_pool", 5), NGET);
	T_GE(column(text, "t_live_cache", 5), NGET);
	/* The pool cache table: its CpuLayer counts every get. */
	T_EQ(count(text, "Pool cache statistics."), 1);
	T_EQ(column(strstr(text, "Pool cache statistics."), "t_live_cache", 8),
	    NGET);
	T_ASSERT(strstr(text, "Vmem arena statistics") != NULL);
	T_ASSERT(strstr(text, "kva ") != NULL);
	free(text);

	/* -w: growing counts, until SIGINT (status 0). */
	T_EQ(write(w.cmd, "g", 1), 1);
	{
		char *argv[] = {kmemstat, (char *)"-m", (char *)"-d", dir,
		    (char *)"-p", pid, (char *)"-w", (char *)"0.2", NULL};
		char out[PATH_MAX + 16];
		const char *p;
		long first, last = -1;
		pid_t k;

		snprintf(out, sizeof out, "%s/watch", dir);
		unlink(out); /* wait_reports reads this run's reports only */
		k = start(argv, NULL, out, -1, -1);
		(void)wait_reports(out, 3);
		kill(k, SIGINT);
		T_EQ(wait_for(k), 0);
		text = slurp(out);
		T_GE(count(text, "Memory resource pool statistics"), 3);
		first = column(text, "t_live_pool", 2);
		T_GE(first, NGET);
		for (p = text; (p = strstr(p, "\nt_live_pool ")) != NULL; p++)
			last = column(p + 1, "t_live_pool", 2);
		T_GT(last, first);
		free(text);
	}

	/* -w ends by itself when the process exits, with its last rows. */
	{
		char *argv[] = {kmemstat, (char *)"-m", (char *)"-d", dir,
		    (char *)"-p", pid, (char *)"-w", (char *)"0.1", NULL};
		char out[PATH_MAX + 16];
		pid_t k;

		snprintf(out, sizeof out, "%s/watch", dir);
		unlink(out); /* wait_reports reads this run's reports only */
		k = start(argv, NULL, out, -1, -1);
		(void)wait_reports(out, 1); /* watching before the exit */
		close(w.cmd);
		T_EQ(wait_for(w.pid), 0);
		T_EQ(wait_for(k), 0);
		text = slurp(out);
		T_ASSERT(strstr(text, "the process has exited") != NULL);
		free(text);
	}
	/* exit(3) removed the page. */
	T_NE(stat(path, &st), 0);
}

/*
 * A page whose header changes after kmemstat checked it (the file's
 * owner can write it; kmemstat may run as root): -w must go on with the
 * geometry it checked, not read rows past the mapping (SIGSEGV before).
 */
static void
test_header_changed(void)
{
	struct worker w = worker_start();
	char *argv[] = {kmemstat, (char *)"-m", (char *)"-d", dir, (char *)"-p",
	    NULL, (char *)"-w", (char *)"0.1", NULL};
	char pid[32], path[PATH_MAX + 64], out[PATH_MAX + 16], *text;
	struct kmem_live_hdr h;
	uint32_t big = 65536;
	int fd, i, status;
	pid_t k;

	snprintf(pid, sizeof pid, "%ld", (long)w.pid);
	snprintf(path, sizeof path, "%s/" KMEM_LIVE_PREFIX "%s", dir, pid);
	snprintf(out, sizeof out, "%s/watch-header", dir);
	unlink(out);
	argv[5] = pid;
	k = start(argv, NULL, out, -1, -1);
	/* kmemstat has checked the page once it has printed. */
	for (i = 0; i < 1000; i++) {
		struct stat ost;

		if (stat(out, &ost) == 0 && ost.st_size > 0)
			break;
		usleep(5000);
	}
	T_ASSERT((fd = open(path, O_RDWR)) >= 0);
	T_EQ(pread(fd, &h, sizeof h, 0), (ssize_t)sizeof h);
	T_EQ(pwrite(fd, &big, sizeof big,
		 offsetof(struct kmem_live_hdr, lh_maxpools)),
	    (ssize_t)sizeof big);
	for (i = 0; i < 2; i++)
		T_EQ(pwrite(fd, &big, sizeof big,
			 (off_t)h.lh_regoff[i] +
			     offsetof(struct kmem_live_slot, ls_npools)),
		    (ssize_t)sizeof big);
	close(fd);
	/* three more reports after the change */
	(void)wait_reports(out,
	    count(text = slurp(out), "Memory resource pool statistics") + 3);
	free(text);
	kill(k, SIGINT);
	status = wait_for(k);
	text = slurp(out);
	if (!WIFEXITED(status))
		printf("  kmemstat ended by signal %d\n", WTERMSIG(status));
	T_ASSERT(WIFEXITED(status));
	T_EQ(WEXITSTATUS(status), 0);
	T_GE(count(text, "Memory resource pool statistics"), 3);
	free(text);
	close(w.cmd);
	T_EQ(wait_for(w.pid), 0);
}

/*
 * kmemstat -w on a process that executes a program not on kmem: its page
 * will not move again, so -w ends (status 0, a line saying so) and
 * removes it, rather than printing the same snapshot until the new
 * program ends and then blaming a signal or _exit.
 */
static void
test_watch_exec(void)
{
	char *argv[] = {self, (char *)"lateexec", NULL};
	char *kargv[] = {kmemstat, (char *)"-m", (char *)"-d", dir,
	    (char *)"-p", NULL, (char *)"-w", (char *)"0.1", NULL};
	char pid[32], path[PATH_MAX + 64], out[PATH_MAX + 16], *text;
	struct stat st;
	int i, status;
	pid_t p = start(argv, env_live, NULL, -1, -1), k;

	snprintf(pid, sizeof pid, "%ld", (long)p);
	snprintf(path, sizeof path, "%s/" KMEM_LIVE_PREFIX "%s", dir, pid);
	snprintf(out, sizeof out, "%s/watch", dir);
	for (i = 0; i < 200 && stat(path, &st) != 0; i++)
		usleep(5000);
	kargv[5] = pid;
	fflush(NULL);
	if ((k = fork()) == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(126);
		alarm(5); /* the sleep runs 30 s */
		execv(kargv[0], kargv);
		_exit(127);
	}
	status = wait_for(k);
	text = slurp(out);
	kill(p, SIGKILL);
	wait_for(p);
	if (!WIFEXITED(status))
		printf("  kmemstat ended by signal %d\n", WTERMSIG(status));
	T_ASSERT(WIFEXITED(status));
	/* 1: kmemstat started after the exec (a loaded machine): its first
	 * check saw it, which is not what this tests, but not wrong. */
	if (WEXITSTATUS(status) == 1)
		printf("  test_watch_exec: kmemstat started after the exec\n");
	else
		T_EQ(WEXITSTATUS(status), 0);
	if (strstr(text, "executed another program") == NULL)
		T_FAIL("no \"executed another program\" in: %s", text);
	T_NE(stat(path, &st), 0);
	free(text);
}

/* One line on stderr, "kmemstat: ...", and status 1. */
static void
one_line_error(const char *text, int status, const char *what)
{
	T_ASSERT(WIFEXITED(status));
	T_EQ(WEXITSTATUS(status), 1);
	T_EQ(strncmp(text, "kmemstat: ", 10), 0);
	T_EQ(count(text, "\n"), 1);
	if (strstr(text, what) == NULL)
		T_FAIL("no \"%s\" in: %s", what, text);
}

static void
test_errors(void)
{
	char *argv[] = {(char *)"/bin/sleep", (char *)"30", NULL};
	char pid[32], *text;
	pid_t s = start(argv, NULL, NULL, -1, -1);
	int status;

	/* A process not on kmem: no page. */
	snprintf(pid, sizeof pid, "%ld", (long)s);
	status = kmemstat_run(&text, "-d", dir, "-p", pid, NULL, NULL);
	one_line_error(text, status, "no statistics page");
	free(text);
	status = kmemstat_run(&text, "-p", pid, NULL, NULL, NULL, NULL);
	one_line_error(text, status, "no statistics page");
	free(text);
	/*
	 * A FIFO planted under the page's name (anyone can, in /dev/shm):
	 * refused at once, not a read that waits for a writer for ever
	 * (here 5 s, then SIGALRM).
	 */
	{
		char fifo[PATH_MAX + 64], out[PATH_MAX + 16];
		char *kargv[] = {
		    kmemstat, (char *)"-d", dir, (char *)"-p", pid, NULL};
		pid_t k;

		snprintf(
		    fifo, sizeof fifo, "%s/" KMEM_LIVE_PREFIX "%s", dir, pid);
		snprintf(out, sizeof out, "%s/out", dir);
		if (mkfifo(fifo, 0600) != 0)
			T_FAIL("mkfifo: %s", strerror(errno));
		fflush(NULL);
		if ((k = fork()) == 0) {
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			if (fd < 0 || dup2(fd, 2) < 0)
				_exit(126);
			alarm(5);
			execv(kargv[0], kargv);
			_exit(127);
		}
		status = wait_for(k);
		unlink(fifo);
		text = slurp(out);
		one_line_error(text, status, "not a kmem statistics page");
		free(text);
	}
	kill(s, SIGKILL);
	wait_for(s);
	/* No such process. */
	status = kmemstat_run(&text, "-d", dir, "-p", pid, NULL, NULL);
	one_line_error(text, status, "no such process");
	free(text);
}

/* A page left by a process that ended by _exit: path, its pid. */
static long
stale_page(char *path, size_t n)
{
	char *argv[] = {self, (char *)"quit", NULL};
	pid_t pid = start(argv, env_live, NULL, -1, -1);

	T_EQ(wait_for(pid), 0);
	snprintf(path, n, "%s/" KMEM_LIVE_PREFIX "%ld", dir, (long)pid);
	T_EQ(access(path, F_OK), 0);
	return (long)pid;
}

static void
test_stale(void)
{
	char path[PATH_MAX + 64], path2[PATH_MAX + 64], pid[32], *text;
	char *argv[] = {(char *)"/bin/sleep", (char *)"30", NULL};
	struct kmem_live_hdr *h;
	int status, fd;
	pid_t s;

	/* The process is gone: reported and removed. */
	snprintf(pid, sizeof pid, "%ld", stale_page(path, sizeof path));
	status = kmemstat_run(&text, "-d", dir, "-p", pid, NULL, NULL);
	one_line_error(text, status, "not running");
	free(text);
	T_NE(access(path, F_OK), 0);

	/*
	 * The pid reused: a page that says it is a live process's (a sleep
	 * started after it), with the start time of the one that wrote it.
	 */
	(void)stale_page(path, sizeof path);
	usleep(30000); /* a tick of the start-time clock at least */
	s = start(argv, NULL, NULL, -1, -1);
	snprintf(pid, sizeof pid, "%ld", (long)s);
	snprintf(path2, sizeof path2, "%s/" KMEM_LIVE_PREFIX "%s", dir, pid);
	T_EQ(rename(path, path2), 0);
	fd = open(path2, O_RDWR);
	T_ASSERT(fd >= 0);
	h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	T_ASSERT(h != MAP_FAILED);
	h->lh_pid = s;
	munmap(h, sizeof *h);
	close(fd);
	status = kmemstat_run(&text, "-d", dir, "-p", pid, NULL, NULL);
	one_line_error(text, status, "pid reused");
	free(text);
	T_NE(access(path2, F_OK), 0);
	kill(s, SIGKILL);
	wait_for(s);

	/* The process executed a program not on kmem: the page is stale. */
	{
		char *argv2[] = {self, (char *)"execer", NULL};
		int i;

		s = start(argv2, env_live, NULL, -1, -1);
		snprintf(pid, sizeof pid, "%ld", (long)s);
		snprintf(
		    path, sizeof path, "%s/" KMEM_LIVE_PREFIX "%s", dir, pid);
		/* Until it is sleep: its page made, then /proc's name. */
		for (i = 0; i < 500; i++) {
			char comm[64] = "", cp[64];
			FILE *f;

			snprintf(cp, sizeof cp, "/proc/%s/comm", pid);
			if ((f = fopen(cp, "r")) != NULL) {
				if (fgets(comm, sizeof comm, f) == NULL)
					comm[0] = '\0';
				fclose(f);
			}
			if (strcmp(comm, "sleep\n") == 0)
				break;
			usleep(10000);
		}
		T_LT(i, 500);
		T_EQ(access(path, F_OK), 0);
		status = kmemstat_run(&text, "-d", dir, "-p", pid, NULL, NULL);
		one_line_error(text, status, "no longer maps");
		free(text);
		T_NE(access(path, F_OK), 0);
		kill(s, SIGKILL);
		wait_for(s);
	}
}

static void
test_run_fork_exit(void)
{
	char *text, name[32];
	const char *p;
	long size = 0;
	int status;

	{
		char lib[PATH_MAX];

		snprintf(lib, sizeof lib, "%s", kmemstat);
		strcpy(strrchr(lib, '/') + 1, "libkmem-malloc.so");
		if (access(lib, F_OK) != 0) {
			printf(
			    "(no libkmem-malloc.so in this build: skipped)\n");
			return;
		}
	}
	status = kmemstat_run(&text, "-m", "-C", "--", self, "forker", NULL);
	/* The command's own status: killed by SIGKILL. */
	T_ASSERT(WIFEXITED(status));
	T_EQ(WEXITSTATUS(status), 128 + SIGKILL);
	/* Both counted: the parent (a signal), the forked child (_exit). */
	if (strstr(text, "2 processes on kmem") == NULL ||
	    strstr(text, "forked, no exit") == NULL)
		T_FAIL("processes: %s", text);
	/* The class of FORK_SIZE: the smallest kmem-N with N >= it. */
	for (p = text; (p = strstr(p, "\nkmem-")) != NULL; p++) {
		long n = strtol(p + 6, NULL, 10);

		if (n >= FORK_SIZE && (size == 0 || n < size))
			size = n;
	}
	T_NE(size, 0);
	snprintf(name, sizeof name, "kmem-%05ld", size);
	/* 500 gets in the parent, 300 in the child: not 500 twice. */
	p = strstr(text, "Pool cache statistics.");
	T_ASSERT(p != NULL);
	T_EQ(column(p, name, 8), 800);
	free(text);
}

/*
 * A full file system (a 64 KiB tmpfs, filled, in a mount namespace of a
 * child): the page's blocks must be allocated when it is made, or the
 * program dies of SIGBUS at its first write into the mapping (the file
 * is sparse).  The process runs on with a warning and no page.  Skipped
 * where no mount namespace can be had (not root, no user namespaces).
 */
static int
full_fs_child(const char *mnt, const char *out)
{
	char env[PATH_MAX + 64], filler[PATH_MAX + 16], block[4096];
	char *argv[] = {self, "nopage", NULL};
	int fd, status;

	if (unshare(CLONE_NEWNS) != 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mount("none", mnt, "tmpfs", 0, "size=64k,mode=0700") != 0)
		return 77;
	snprintf(filler, sizeof filler, "%s/filler", mnt);
	if ((fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		return 3;
	memset(block, 'f', sizeof block);
	while (write(fd, block, sizeof block) == (ssize_t)sizeof block)
		;
	close(fd);
	snprintf(env, sizeof env, "KMEM_STATS_LIVE=ms=0,dir=%s", mnt);
	status = wait_for(start(argv, env, out, -1, -1));
	/* The nopage role's end: its exit status, or 100 + its signal. */
	if (WIFSIGNALED(status))
		return 100 + WTERMSIG(status);
	return WEXITSTATUS(status) == 77 ? 76 : WEXITSTATUS(status);
}

static void
test_full_fs(void)
{
	char mnt[PATH_MAX + 8], out[PATH_MAX + 16], *text;
	int status;
	pid_t pid;

	snprintf(mnt, sizeof mnt, "%s/full", dir);
	snprintf(out, sizeof out, "%s/full.out", dir);
	if (mkdir(mnt, 0700) != 0)
		T_FAIL("mkdir %s: %s", mnt, strerror(errno));
	fflush(NULL);
	if ((pid = fork()) == 0)
		_exit(full_fs_child(mnt, out));
	status = wait_for(pid);
	rmdir(mnt);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		printf("  test_full_fs: no mount namespace here; skipped\n");
		return;
	}
	text = slurp(out);
	T_ASSERT(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		printf("  test_full_fs: the program ended with %d (100 + "
		       "signal); its output:\n%s",
		    WEXITSTATUS(status), text);
	T_EQ(WEXITSTATUS(status), 0);
	T_ASSERT(strstr(text, "KMEM_STATS_LIVE: cannot make") != NULL);
	free(text);
}

int
main(int argc, char **argv)
{
	ssize_t n;

	if (argc == 2 && strcmp(argv[1], "worker") == 0)
		return role_worker();
	if (argc == 2 && strcmp(argv[1], "quit") == 0)
		return role_quit();
	if (argc == 2 && strcmp(argv[1], "nopage") == 0)
		return role_nopage();
	if (argc == 2 && strcmp(argv[1], "lateexec") == 0)
		return role_lateexec();
	if (argc == 2 && strcmp(argv[1], "execer") == 0)
		return role_execer();
	if (argc == 2 && strcmp(argv[1], "forker") == 0)
		return role_forker();
	t_args(argc, argv);
	if ((n = readlink("/proc/self/exe", self, sizeof self - 1)) <= 0)
		T_FAIL("readlink: %s", strerror(errno));
	self[n] = '\0';
	snprintf(kmemstat, sizeof kmemstat, "%s", self);
	strcpy(strrchr(kmemstat, '/') + 1, "kmemstat");
	if (access(kmemstat, X_OK) != 0)
		t_skip("kmemstat is not built");
	snprintf(dir, sizeof dir, "%s/t_live.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
		T_FAIL("mkdtemp: %s", strerror(errno));
	snprintf(env_live, sizeof env_live, "KMEM_STATS_LIVE=ms=0,dir=%s", dir);
	T_RUN_IF(test_p);
	T_RUN_IF(test_errors);
	T_RUN_IF(test_stale);
	T_RUN_IF(test_run_fork_exit);
	T_RUN_IF(test_full_fs);
	T_RUN_IF(test_header_changed);
	T_RUN_IF(test_watch_exec);
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			return 1;
	}
	return t_done();
}
