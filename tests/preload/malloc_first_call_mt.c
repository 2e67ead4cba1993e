/*
 * malloc_first_call_mt.c -- threads whose first malloc comes at the same
 * moment, as early in a process as a program can have them (issue 10,
 * item 9), standard API only: glibc is the oracle.
 *
 * Each round executes this program again: the fresh process creates 8
 * threads, which wait at a barrier, spin on a start flag and make their
 * first mallocs at once (24 bytes to 40 KiB, every class range and a
 * large block); each checks malloc_usable_size against the request,
 * fills its blocks, and after all threads are done checks the fills.
 * Through the shim, kmem's set-up itself cannot race them: glibc's
 * pthread_create callocs the new thread's DTV, so the creating thread
 * sets kmem up before any other thread exists (the set-up race is
 * kmem_first_call_mt's, on kmem_alloc, where threads can come first).
 * What races here is every thread's first fast path at once.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
	unsigned char *v[NALLOC];
	int bad = 0;

	pthread_barrier_wait(&g_bar);
	while (!atomic_load_explicit(&g_go, memory_order_acquire))
		;
	for (i = 0; i < NALLOC; i++) {
		size_t sz = size_of(tid, i);

		if ((v[i] = malloc(sz)) == NULL)
			return (void *)1;
		memset(v[i], (int)(tid * NALLOC + i), sz);
	}
	pthread_barrier_wait(&g_bar);
	for (i = 0; i < NALLOC; i++) {
		size_t sz = size_of(tid, i), k;

		if (malloc_usable_size(v[i]) < sz) {
			fprintf(stderr, "thread %u: %zu bytes, usable %zu\n",
			    tid, sz, malloc_usable_size(v[i]));
			bad = 1;
		}
		for (k = 0; k < sz; k++)
			if (v[i][k] != (unsigned char)(tid * NALLOC + i)) {
				fprintf(stderr,
				    "thread %u: block %p overwritten at %zu\n",
				    tid, (void *)v[i], k);
				bad = 1;
				break;
			}
		free(v[i]);
	}
	return (void *)(uintptr_t)bad;
}

static int
one_round(void)
{
	pthread_t t[NTHREADS];
	unsigned i;
	int bad = 0;

	pthread_barrier_init(&g_bar, NULL, NTHREADS + 1);
	for (i = 0; i < NTHREADS; i++)
		if (pthread_create(
			&t[i], NULL, first_caller, (void *)(uintptr_t)i) != 0)
			return 3;
	pthread_barrier_wait(&g_bar);
	atomic_store_explicit(&g_go, 1, memory_order_release);
	pthread_barrier_wait(&g_bar);
	for (i = 0; i < NTHREADS; i++) {
		void *r;

		pthread_join(t[i], &r);
		bad |= (int)(uintptr_t)r;
	}
	return bad;
}

static void
test_first_mallocs(void)
{
	int i, rounds = (int)t_scale(50);

	for (i = 0; i < rounds; i++) {
		int status = t_exec_self("--round", 30);

		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			T_FAIL("round %d: status %#x", i, (unsigned)status);
	}
	printf("   %d fresh processes, %d threads' first mallocs at once\n",
	    rounds, NTHREADS);
}

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--round") == 0)
		return one_round();
	T_RUN(test_first_mallocs);
	return t_done();
}
