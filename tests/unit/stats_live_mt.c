/*
 * stats_live_mt.c -- the statistics page (KMEM_STATS_LIVE, stats.c
 * section 5) under threads: four threads allocate and free through
 * kmem_alloc's caches, every slow path publishing (ms=0), while the main
 * thread forks children -- each must get its own page, for its pid,
 * marked forked from us, counting only its own work, removed when it
 * exits -- and kmemstat -p -w reads our page from outside.  Under TSan
 * (label "threads") the publishing, the fork handlers' hold on it and
 * the exit are checked for races; everywhere, that nothing hangs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>

#include "internal/kmem_impl.h"
#include "internal/stats_live.h"
#include "t.h"

#define NTHREADS 4

static char dir[PATH_MAX];
static atomic_bool stop;

static void *
churn(void *arg)
{
	void *p[64];
	unsigned int i, r = (unsigned int)(uintptr_t)arg;

	memset(p, 0, sizeof p);
	while (!atomic_load(&stop)) {
		for (i = 0; i < 64; i++) {
			size_t sz = 16u
			    << ((r = r * 1103515245u + 12345u) >> 28 & 7);

			if (p[i] != NULL)
				kmem_free(p[i], *(size_t *)p[i]);
			p[i] = kmem_alloc(sz, KM_SLEEP);
			*(size_t *)p[i] = sz;
		}
	}
	for (i = 0; i < 64; i++)
		if (p[i] != NULL)
			kmem_free(p[i], *(size_t *)p[i]);
	return NULL;
}

/* The page of pid, mapped (NULL if there is none). */
static struct kmem_live_hdr *
page_of(long pid, size_t *size)
{
	char path[PATH_MAX + 64];
	struct stat st;
	void *p;
	int fd;

	snprintf(path, sizeof path, "%s/" KMEM_LIVE_PREFIX "%ld", dir, pid);
	if ((fd = open(path, O_RDONLY)) < 0)
		return NULL;
	T_EQ(fstat(fd, &st), 0);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	T_ASSERT(p != MAP_FAILED);
	*size = (size_t)st.st_size;
	return p;
}

/*
 * LeakSanitizer off in the forked children (the ASan build): clang 14's
 * runtime does not hold its allocator's lock across fork(2), so a child
 * forked while another thread was inside it inherits the lock taken, and
 * the leak check that exit(3) runs waited for it for ever -- 2 runs in
 * 60 here, the child in __lsan::LockAllocator.  LSan asks this function.
 */
static volatile int lsan_off;

int __lsan_is_turned_off(void);

int
__lsan_is_turned_off(void)
{
	return lsan_off;
}

/* A forked child: its own page, its own counts. */
static void
child(long parent)
{
	struct kmem_live_hdr *h;
	struct kmem_pool_stats *ps;
	struct kmem_live_slot *s;
	size_t size;
	uint32_t i;
	void *p[50];
	int k;

	lsan_off = 1;
	for (k = 0; k < 50; k++)
		p[k] = kmem_alloc(3000, KM_SLEEP);
	if (!kmemi_stats_live_publish())
		_exit(10);
	if ((h = page_of((long)getpid(), &size)) == NULL)
		_exit(11);
	if (!(h->lh_flags & KMEM_LIVE_FORKED) || h->lh_ppid != parent ||
	    h->lh_pid != (long)getpid())
		_exit(12);
	s = kmem_live_region(h, (unsigned int)((h->lh_gen - 1) & 1));
	ps = kmem_live_pools(s);
	/* Our 50 gets of the 3072 class, not the parent's too. */
	for (i = 0; i < s->ls_npools; i++)
		if (strcmp(ps[i].ps_name, "kmem-03072") == 0)
			break;
	if (i == s->ls_npools)
		_exit(13);
	if (ps[i].ps_cpuhit + ps[i].ps_cpumiss != 50)
		_exit(14);
	munmap(h, size);
	for (k = 0; k < 50; k++)
		kmem_free(p[k], 3000);
	exit(0);
}

static void
test_fork_threads(void)
{
	pthread_t t[NTHREADS];
	char kmemstat[PATH_MAX], pid[32], path[PATH_MAX + 64];
	struct kmem_live_hdr *h;
	size_t size;
	pid_t k = -1;
	ssize_t n;
	int i, status;
	void *parent_objs[20];

	/* The parent's own gets of the class the children count. */
	for (i = 0; i < 20; i++)
		parent_objs[i] = kmem_alloc(3000, KM_SLEEP);
	for (i = 0; i < NTHREADS; i++)
		T_EQ(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)i),
		    0);
	n = readlink("/proc/self/exe", kmemstat, sizeof kmemstat - 1);
	T_GT(n, 0);
	kmemstat[n] = '\0';
	strcpy(strrchr(kmemstat, '/') + 1, "kmemstat");
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	if (access(kmemstat, X_OK) == 0) {
		fflush(NULL);
		if ((k = fork()) == 0) {
			int fd = open("/dev/null", O_WRONLY);

			dup2(fd, 1);
			execl(kmemstat, "kmemstat", "-d", dir, "-p", pid, "-w",
			    "0.05", (char *)NULL);
			_exit(127);
		}
	}
	for (i = 0; i < (int)t_scale(20) + 2; i++) {
		long me = (long)getpid();
		pid_t c;

		fflush(NULL);
		if ((c = fork()) == 0)
			child(me);
		T_GT(c, 0);
		T_EQ(waitpid(c, &status, 0), c);
		if (status != 0)
			T_FAIL("child %d: status %#x", i, status);
		/* exit(3) removed the child's page. */
		snprintf(path, sizeof path, "%s/" KMEM_LIVE_PREFIX "%ld", dir,
		    (long)c);
		T_NE(access(path, F_OK), 0);
		usleep(10000);
	}
	atomic_store(&stop, true);
	for (i = 0; i < NTHREADS; i++)
		T_EQ(pthread_join(t[i], NULL), 0);
	if (k > 0) {
		kill(k, SIGINT);
		T_EQ(waitpid(k, &status, 0), k);
		T_EQ(status, 0);
	}
	T_ASSERT(kmemi_stats_live_publish());
	h = page_of((long)getpid(), &size);
	T_ASSERT(h != NULL);
	T_EQ(h->lh_flags & KMEM_LIVE_FORKED, 0);
	T_GT(h->lh_gen, 1);
	munmap(h, size);
	for (i = 0; i < 20; i++)
		kmem_free(parent_objs[i], 3000);
}

int
main(int argc, char **argv)
{
	char env[PATH_MAX + 64], cmd[PATH_MAX + 16];

	t_args(argc, argv);
	snprintf(dir, sizeof dir, "%s/t_live_mt.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL)
		T_FAIL("mkdtemp: %s", strerror(errno));
	/* Before kmem starts: it reads the variable once. */
	snprintf(env, sizeof env, "ms=0,dir=%s", dir);
	setenv("KMEM_STATS_LIVE", env, 1);
	T_RUN_IF(test_fork_threads);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	return t_done();
}
