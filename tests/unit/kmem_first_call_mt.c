/*
 * kmem_first_call_mt.c -- threads whose first kmem call comes at the
 * same moment as the set-up (issue 10, item 9).
 *
 * kmem's fast paths read the size-to-class table and the classes' data,
 * which the set-up fills before it opens the gate.  A fast path that
 * read the table before the gate (or read the gate without ordering the
 * table after it) could take class 0 from a table not yet filled, then
 * see the gate open: an 8-byte object for a 1000-byte request.  So: in a
 * fresh process (the parent never calls kmem), 8 threads wait at a
 * barrier, spin on a start flag, and make their first kmem call at once:
 * kmem_alloc of sizes 24 .. 12000 and of a large size; each checks that
 * the class that holds the object (kmem_usable_size of the request, and
 * the page map's view, kmemi_usable_unsized) is big enough, fills the
 * whole block, and after all threads are done checks its fill.  50
 * rounds, each a fresh process.  Under TSan (label "threads") the old
 * code's unordered read of the table is reported at once.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kmem/kmem.h>

#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "t.h"

#define NTHREADS 8
#define NALLOC	 16

static atomic_int g_go;
static pthread_barrier_t g_bar;

static size_t
size_of(unsigned tid, unsigned i)
{
	static const size_t sizes[] = {24, 100, 1000, 3000, 12000, 40000};

	return sizes[(tid + i) % 6] + tid;
}

static void *
first_caller(void *arg)
{
	unsigned tid = (unsigned)(uintptr_t)arg, i;
	void *v[NALLOC];
	int bad = 0;

	pthread_barrier_wait(&g_bar);
	while (!atomic_load_explicit(&g_go, memory_order_acquire))
		;
	for (i = 0; i < NALLOC; i++) {
		size_t sz = size_of(tid, i);

		v[i] = kmem_alloc(sz, KM_SLEEP);
		memset(v[i], (int)(tid * NALLOC + i), sz);
	}
	pthread_barrier_wait(&g_bar);
	for (i = 0; i < NALLOC; i++) {
		size_t sz = size_of(tid, i), k;
		unsigned char *p = v[i];

		if (kmemi_usable_unsized("first_caller", p) < sz) {
			fprintf(stderr,
			    "thread %u: %zu bytes at %p: the object "
			    "holds only %zu\n",
			    tid, sz, (void *)p,
			    kmemi_usable_unsized("first_caller", p));
			bad = 1;
		}
		for (k = 0; k < sz; k++)
			if (p[k] != (unsigned char)(tid * NALLOC + i)) {
				fprintf(stderr,
				    "thread %u: block %p (%zu bytes) "
				    "overwritten at %zu\n",
				    tid, (void *)p, sz, k);
				bad = 1;
				break;
			}
	}
	for (i = 0; i < NALLOC; i++)
		kmem_free(v[i], size_of(tid, i));
	return (void *)(uintptr_t)bad;
}

/* One round in a fresh process: exit 0 if every object was right. */
static void
round_child(void *arg)
{
	pthread_t t[NTHREADS];
	unsigned i;
	int bad = 0;

	(void)arg;
	pthread_barrier_init(&g_bar, NULL, NTHREADS + 1);
	for (i = 0; i < NTHREADS; i++)
		if (pthread_create(
			&t[i], NULL, first_caller, (void *)(uintptr_t)i) != 0)
			_exit(3);
	pthread_barrier_wait(&g_bar);
	atomic_store_explicit(&g_go, 1, memory_order_release);
	pthread_barrier_wait(&g_bar);
	for (i = 0; i < NTHREADS; i++) {
		void *r;

		pthread_join(t[i], &r);
		bad |= (int)(uintptr_t)r;
	}
	fflush(NULL);
	_exit(bad ? 1 : 0);
}

static void
test_first_calls_race(void)
{
	int i, rounds = (int)t_scale(50);

	for (i = 0; i < rounds; i++) {
		char buf[4096];
		int status = t_child(round_child, NULL, buf, sizeof buf);

		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			T_FAIL("round %d: status %#x:\n%s", i, (unsigned)status,
			    buf);
	}
	printf("   %d rounds of %d threads making their first call at "
	       "once\n",
	    rounds, NTHREADS);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	T_RUN_IF(test_first_calls_race);
	return t_done();
}
