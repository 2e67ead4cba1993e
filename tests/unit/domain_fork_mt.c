/*
 * domain_fork_mt.c -- fork(2) in a threaded process that has a domain other
 * than the default (kmem_domain(3), fork.c, domain.c section 4).
 *
 * The forking thread takes the domain registry's lock first and then
 * walks the registry for every layer, from prepare to parent or child,
 * without taking that lock again (kmemi_dom_foreach asks
 * kmemi_fork_by_self).  Were the walk to take it, prepare would wait for
 * itself: the fork hangs.  Were it not released in the parent or the
 * child, the next domain call there would hang.
 *
 * Two threads allocate and free in a domain D and in the default (and
 * free D's objects with the default current: the default's gate then
 * sends kmem_free through the registry), while the main thread forks
 * t_scale(200) times.  Each child allocates and frees in D and in the
 * default, creates and destroys a domain of its own, and exits 0; the
 * parent creates and destroys one after each fork.  A hang is a failure
 * (alarm: "FAIL: hung").
 *
 * D's page source is a bump allocator over one reservation, lock-free
 * (an atomic offset; ps_free keeps nothing): a source with a lock that a
 * worker held at the fork would hang the child for the test's own
 * reason, not kmem's.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kmem/domain.h>
#include <kmem/kmem.h>

#include "t.h"

#define REGION ((size_t)1 << 30)

static char *g_base;
static _Atomic size_t g_off;
static atomic_int g_stop;
static kmem_domain_t *g_dom;
static uint64_t g_seed;

static void *
bump_alloc(void *arg, size_t size, size_t align)
{
	size_t off, at;

	(void)arg;
	off = atomic_load(&g_off);
	do {
		at = (off + align - 1) & ~(align - 1);
		if (at + size > REGION)
			return NULL;
	} while (!atomic_compare_exchange_weak(&g_off, &off, at + size));
	return g_base + at;
}

static void
bump_free(void *arg, void *p, size_t size)
{
	(void)arg;
	(void)p;
	(void)size; /* address space is not reused: the test is short */
}

static kmem_domain_t *
make_domain(const char *name)
{
	struct kmem_page_source src;

	memset(&src, 0, sizeof src);
	src.ps_alloc = bump_alloc;
	src.ps_free = bump_free;
	return kmem_domain_create(name, &src);
}

/* Allocate and free a few objects in d, then free one of d's elsewhere. */
static void
churn(kmem_domain_t *d, struct t_rng *r)
{
	void *p[8];
	size_t sz[8];
	kmem_domain_t *prev;
	int i;

	prev = kmem_domain_switch(d);
	for (i = 0; i < 8; i++) {
		sz[i] = 1 + (size_t)t_rng_below(r, i == 7 ? 65536 : 1024);
		p[i] = kmem_alloc(sz[i], KM_SLEEP);
		T_ASSERT(p[i] != NULL);
		memset(p[i], i, sz[i]);
	}
	kmem_domain_switch(NULL); /* the default: frees go by the page maps */
	for (i = 0; i < 8; i++)
		kmem_free(p[i], sz[i]);
	kmem_domain_switch(prev);
}

static void *
worker(void *arg)
{
	struct t_rng r;

	t_rng_init(&r, g_seed, (unsigned)(uintptr_t)arg);
	while (!atomic_load(&g_stop)) {
		churn(g_dom, &r);
		churn(NULL, &r);
	}
	return NULL;
}

static void
on_alarm(int sig)
{
	static const char msg[] = "FAIL: hung: fork with a second domain "
				  "(the registry's lock)\n";

	(void)sig;
	if (write(2, msg, sizeof msg - 1) < 0)
		_exit(2);
	_exit(2);
}

static void
child(void)
{
	struct t_rng r;
	kmem_domain_t *e;

	t_rng_init(&r, 1, 99);
	churn(g_dom, &r);
	churn(NULL, &r);
	e = make_domain("child");
	if (e == NULL)
		_exit(3);
	churn(e, &r);
	if (kmem_domain_destroy(e) != 0)
		_exit(4);
	_exit(0);
}

static void
t_fork_with_domain(void)
{
	int i, n = (int)t_scale(200), status;
	pthread_t th[2];
	kmem_domain_t *e;
	pid_t pid;

	g_seed = t_seed();
	g_base = mmap(NULL, REGION, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	T_ASSERT(g_base != MAP_FAILED);
	g_dom = make_domain("forked");
	T_ASSERT(g_dom != NULL);
	signal(SIGALRM, on_alarm);
	for (i = 0; i < 2; i++)
		T_EQ(pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i),
		    0);
	for (i = 0; i < n; i++) {
		alarm(60);
		fflush(NULL);
		pid = fork();
		T_ASSERT(pid >= 0);
		if (pid == 0)
			child();
		T_EQ(waitpid(pid, &status, 0), pid);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			T_FAIL(
			    "fork %d: child status %#x", i, (unsigned)status);
		/* The parent's registry lock was released too. */
		e = make_domain("parent");
		T_ASSERT(e != NULL);
		T_EQ(kmem_domain_destroy(e), 0);
	}
	alarm(0);
	atomic_store(&g_stop, 1);
	for (i = 0; i < 2; i++)
		T_EQ(pthread_join(th[i], NULL), 0);
	printf("   %d forks with domain 'forked' and 2 threads in it\n", n);
	T_EQ(kmem_domain_destroy(g_dom), 0);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(t_fork_with_domain);
	return t_done();
}
