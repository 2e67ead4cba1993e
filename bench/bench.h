/*
 * bench.h -- what the benchmark programs share: the clocks, the median,
 * keeping a pointer alive, and how they give up.
 */
#ifndef KMEM_BENCH_H
#define KMEM_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Print "PROG: WHAT: strerror(ERR)" and exit 1. */
static inline void
bench_die(const char *prog, const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(err));
	exit(1);
}

/* Monotonic clock, ns. */
static inline uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * CPU time of this process, ns: user + system time of all its threads,
 * not the time it waited for a CPU that other processes on a shared
 * machine were using.
 */
static inline uint64_t
bench_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Keep the compiler from eliding an allocation it can see through. */
static inline void
bench_escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static inline int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of v[0..n-1] (sorts v). */
static inline double
bench_median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(v[0]), bench_cmp_double);
	return v[n / 2];
}

#endif /* KMEM_BENCH_H */
