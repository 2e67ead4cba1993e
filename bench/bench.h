/*
 * bench.h -- what the benchmark programs share: the clocks, the median,
 * keeping a pointer alive, how they give up, a random stream, a spin
 * wait, and a JSON string.
 */
#ifndef KMEM_BENCH_H
#define KMEM_BENCH_H

#include <sched.h>
#include <stddef.h>
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

/* CPU time of the calling thread, ns. */
static inline uint64_t
bench_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: a fast, good-enough random stream. */
static inline uint64_t
bench_rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* Uniform in [0, n) from the low 32 bits of r. */
static inline size_t
bench_rng_below(uint64_t r, size_t n)
{
	return (size_t)(((r & 0xffffffffu) * (uint64_t)n) >> 32);
}

/* Spin a little, then yield: waiters may share a CPU with the waited-on. */
static inline void
bench_backoff(unsigned *n)
{
	if (++*n < 64) {
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#else
		__asm__ volatile("" : : : "memory");
#endif
	} else {
		sched_yield();
	}
}

/* Print s as a JSON string on stdout (paths may hold anything). */
static inline void
bench_put_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
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
