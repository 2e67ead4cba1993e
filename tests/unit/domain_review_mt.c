/*
 * domain_review_mt -- what an adversarial review of domains found, each
 * failing on the code it was found in (issue 11's note):
 *
 *   nested      a domain whose page source is the default domain's
 *               kmem_alloc: its objects, freed from a thread on the
 *               default, went into the default's caches (the default's
 *               page map knows the large block they lie in) and the
 *               default handed them out again; now the innermost domain
 *               that knows a pointer gets it back.
 *   src_allocs  a page source that allocates with kmem_alloc (a table
 *               of its ranges): it ran with the domain it was feeding
 *               current and recursed into it, hanging on its set-up lock
 *               with every signal blocked; now it runs on the default.
 *   destroy_vs_pool_destroy
 *               kmem_domain_destroy, retried while another thread's
 *               pool_destroy of a pool of the domain gave its pages
 *               back, returned 0 midway (pool_destroy unlinks first) and
 *               the other thread crashed; now EBUSY until it is done.
 *
 *   double_free_at_destroy
 *               an object of a domain freed twice (not seen at free,
 *               as NetBSD's kmem_free): destroy's count of objects out
 *               finds more cached than handed out and says so (it was
 *               an assertion, an underflow in release builds).
 *
 * Each runs in a child with a time limit (a hang is a failure, not a
 * stuck suite).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kmem/domain.h>
#include <kmem/kmem.h>
#include <kmem/pool.h>

#include "t.h"

/* ---- nested: a source over the default's kmem_alloc ---- */

static void *
n_alloc(void *a, size_t size, size_t align)
{
	(void)a;
	return align <= 4096 ? kmem_alloc(size, KM_NOSLEEP) : NULL;
}

static void
n_free(void *a, void *p, size_t n)
{
	(void)a;
	kmem_free(p, n);
}

#define NN 20000
static void *nv[NN];

static int
cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return (x > y) - (x < y);
}

static int
nested(void)
{
	struct kmem_page_source ps = {n_alloc, n_free, NULL, NULL};
	kmem_domain_t *d, *o;
	int i, stolen = 0, nn = getenv("KMEM_TEST_VALGRIND") ? NN / 10 : NN;
	void *w = kmem_alloc(64, KM_SLEEP);

	kmem_free(w, 64); /* the default's 64-byte class made and used */
	d = kmem_domain_create("nested", &ps);
	T_ASSERT(d != NULL);
	o = kmem_domain_switch(d);
	for (i = 0; i < nn; i++)
		nv[i] = kmem_alloc(64, KM_SLEEP);
	kmem_domain_switch(o);
	for (i = 0; i < nn; i++) /* from the default: back to d */
		kmem_free(nv[i], 64);
	qsort(nv, (size_t)nn, sizeof nv[0], cmp_ptr);
	for (i = 0; i < nn; i++) {
		void *q = kmem_alloc(64, KM_SLEEP);

		if (bsearch(&q, nv, (size_t)nn, sizeof nv[0], cmp_ptr) != NULL)
			stolen++;
	}
	if (stolen != 0) {
		fprintf(stderr, "the default handed out %d of d's objects\n",
		    stolen);
		return 1;
	}
	T_EQ(kmem_domain_destroy(d), 0);
	return 0;
}

/* ---- src_allocs: a source that keeps its ranges with kmem_alloc ---- */

struct rec {
	void *p;
	size_t n;
	struct rec *next;
};
static struct rec *recs;
static pthread_mutex_t rl = PTHREAD_MUTEX_INITIALIZER;

static void *
r_alloc(void *arg, size_t size, size_t align)
{
	struct rec *r;
	void *p;

	(void)arg;
	if (posix_memalign(&p, align, size) != 0)
		return NULL;
	r = kmem_alloc(sizeof *r, KM_SLEEP);
	r->p = p;
	r->n = size;
	pthread_mutex_lock(&rl);
	r->next = recs;
	recs = r;
	pthread_mutex_unlock(&rl);
	return p;
}

static void
r_free(void *arg, void *p, size_t size)
{
	struct rec **pp, *r;

	(void)arg;
	pthread_mutex_lock(&rl);
	for (pp = &recs; *pp != NULL && (*pp)->p != p; pp = &(*pp)->next)
		continue;
	if ((r = *pp) == NULL || r->n != size)
		abort();
	*pp = r->next;
	pthread_mutex_unlock(&rl);
	kmem_free(r, sizeof *r);
	free(p);
}

static int
src_allocs(void)
{
	struct kmem_page_source ps = {r_alloc, r_free, NULL, NULL};
	kmem_domain_t *d, *o;
	static void *v[2000];
	int i;

	d = kmem_domain_create("recorder", &ps);
	T_ASSERT(d != NULL);
	o = kmem_domain_switch(d);
	for (i = 0; i < 2000; i++)
		v[i] = kmem_alloc(3000, KM_SLEEP);
	for (i = 0; i < 2000; i++)
		kmem_free(v[i], 3000);
	kmem_domain_switch(o);
	T_EQ(kmem_domain_destroy(d), 0);
	T_ASSERT(recs == NULL); /* every range back, each record freed */
	return 0;
}

/* ---- destroy_vs_pool_destroy ---- */

static kmem_domain_t *rd;
static atomic_int made, destroyed;

static void *
slow_page_alloc(struct pool *pp, int f)
{
	void *p;

	(void)pp;
	(void)f;
	return posix_memalign(&p, 4096, 4096) != 0 ? NULL : p;
}

static void
slow_page_free(struct pool *pp, void *v)
{
	(void)pp;
	usleep(1000); /* widen the window */
	free(v);
}

static struct pool_allocator slow_pa = {
    slow_page_alloc, slow_page_free, 0, 0, 0};

static void *
pool_thread(void *a)
{
	static struct pool pl;
	static void *v[400];
	kmem_domain_t *o;
	int i;

	(void)a;
	o = kmem_domain_switch(rd);
	pool_init(&pl, 2048, 0, 0, PR_NOTOUCH, "userpool", &slow_pa, IPL_NONE);
	kmem_domain_switch(o);
	for (i = 0; i < 400; i++)
		v[i] = pool_get(&pl, PR_WAITOK);
	for (i = 0; i < 400; i++)
		pool_put(&pl, v[i]);
	atomic_store(&made, 1);
	pool_destroy(&pl);
	atomic_store(&destroyed, 1);
	return NULL;
}

static void *
sys_alloc(void *a, size_t size, size_t align)
{
	void *p;

	(void)a;
	return posix_memalign(&p, align, size) != 0 ? NULL : p;
}

static void
sys_free(void *a, void *p, size_t size)
{
	(void)a;
	(void)size;
	free(p);
}

static int
destroy_vs_pool_destroy(void)
{
	struct kmem_page_source ps = {sys_alloc, sys_free, NULL, NULL};
	pthread_t t;
	int r;

	rd = kmem_domain_create("race", &ps);
	T_ASSERT(rd != NULL);
	T_EQ(pthread_create(&t, NULL, pool_thread, NULL), 0);
	while (!atomic_load(&made))
		usleep(
		    100); /* not a spin: valgrind runs one thread at a time */
	while ((r = kmem_domain_destroy(rd)) == EBUSY)
		usleep(100);
	T_EQ(r, 0);
	if (!atomic_load(&destroyed)) {
		fprintf(stderr,
		    "kmem_domain_destroy returned 0 while "
		    "pool_destroy was still giving pages back\n");
		return 1;
	}
	pthread_join(t, NULL);
	return 0;
}

/* ---- double_free_at_destroy ---- */

static void
double_free(void *arg)
{
	struct kmem_page_source ps = {sys_alloc, sys_free, NULL, NULL};
	kmem_domain_t *d = kmem_domain_create("twice", &ps), *o;
	void *p;

	(void)arg;
	o = kmem_domain_switch(d);
	p = kmem_alloc(64, KM_SLEEP);
	kmem_free(p, 64);
	kmem_free(p, 64);
	kmem_domain_switch(o);
	(void)kmem_domain_destroy(d);
}

static int
double_free_at_destroy(void)
{
	T_ASSERT(t_expect_panic(double_free, NULL, "was freed twice"));
	return 0;
}

/* ---- each in a child, 60 s at most ---- */

static void
run(const char *name, int (*fn)(void))
{
	pid_t pid;
	int st = 0, waited;

	printf("-- %s\n", name);
	fflush(stdout);
	if ((pid = fork()) == 0)
		_exit(fn());
	T_ASSERT(pid > 0);
	for (waited = 0; waited < 6000; waited++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		usleep(10000);
	}
	if (waited == 6000) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		T_FAIL("%s: hung (killed after 60 s)", name);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		T_FAIL("%s: child failed (status %#x)", name, st);
}

int
main(void)
{
	run("nested", nested);
	run("src_allocs", src_allocs);
	run("destroy_vs_pool_destroy", destroy_vs_pool_destroy);
	run("double_free_at_destroy", double_free_at_destroy);
	return t_done();
}
