/*
 * bench_purge -- the latency of a large kmem_alloc + kmem_free in one
 * thread while another thread allocates, touches and frees 1 GiB in large
 * blocks and has the page arena kva purge it (issue 10, item 8: the purge
 * pass used to make its madvise calls with kva's lock held, so every
 * large allocation and free in the process waited for all of them).
 *
 * usage: bench_purge [reap|delay] [rounds] [LAT_KIB]
 *
 *   reap (default)  the churn thread calls kmem_reap() after its frees:
 *                   kva's purge pass over everything, run by that thread.
 *   delay           KMEM_OPTIONS=purge_delay_ms=20 (set here, before kmem
 *                   starts): passes start inline, from whichever free --
 *                   the churn's or the measured thread's -- finds the
 *                   last pass 20 ms old.
 *   rounds          churn rounds (default 3).
 *   LAT_KIB         the measured block, KiB (default 256).
 *
 * The churn thread, each round: allocates 1 GiB in blocks of 256 KiB
 * (4096 blocks; kva imports 1 MiB spans, its minimum import, so four
 * blocks to a span), writes every page, frees three blocks of every four
 * (768 MiB of dirty free ranges in spans that stay in use: given back by
 * madvise, not munmap), purges (reap mode), frees the rest (the spans,
 * now wholly free, are unmapped) and purges again.
 *
 * The measured thread, until the churn is done: every 200 us (open loop:
 * a pair is due at a fixed time whether or not the one before was late;
 * the thread sleeps in between, with clock_nanosleep) allocates a block
 * of LAT_KIB KiB (default 256: above kva's quantum caches, which stop at
 * 16 pages, so every call takes kva's lock) and frees it.  One size, so
 * that the block just freed always fits the next request: the measured
 * thread never grows the arena, and so never runs an import's purge pass
 * itself (section 7 of vmem.c) -- what is measured is how long the churn
 * thread's purges hold it up.  Two latencies per pair, from
 * CLOCK_MONOTONIC: "service", the time in kmem_alloc plus the time in
 * kmem_free; and "response", from the time the pair was due to the end of
 * its free, so that pairs held up behind a stall count as late (a closed
 * loop would record one 50 ms pair where a steady caller sees 250 late
 * ones).  Response includes the wake-up delay of a sleeping thread: on a
 * loaded machine that is its floor.
 *
 * With KMEM_BENCH_RT=1 in the environment the measured thread asks for
 * SCHED_FIFO (priority 10; it sleeps nearly all the time, so it takes no
 * CPU from anyone): on a shared machine other processes then cannot
 * preempt it, and what remains is the allocator (the churn thread stays
 * an ordinary one, so no real-time throttling either).  Without the
 * privilege it says so and runs as an ordinary thread.
 *
 * Output: samples and the churn's time per round, then for each latency
 * the median, p99, p99.9 and maximum in microseconds, and how many pairs
 * took over 1 ms.  Compare builds by running them alternately, several
 * times each, and taking medians (the machine is shared: a preempted
 * thread shows up as a slow pair whatever the allocator does).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kmem/kmem.h>

#include "bench.h"

#define CHURN_BYTES ((size_t)1 << 30)
#define CHURN_BLOCK ((size_t)256 << 10)
#define CHURN_N	    (CHURN_BYTES / CHURN_BLOCK)
#define PAGE	    ((size_t)4096)
#define MAX_SAMPLES ((size_t)1 << 20) /* 8 MiB a series at most */
#define PACE_NS	    200000	      /* a pair is due every 200 us */

static atomic_bool churn_done;
static uint64_t *service, *response;
static size_t nsamples;
static bool reap_mode = true;
static int rounds = 3;
static size_t lat_size = (size_t)256 << 10;
static const char *rt = "ordinary";
static double churn_s_per_round;

static void *
churn(void *arg)
{
	void **blk = calloc(CHURN_N, sizeof(void *));
	uint64_t t0 = bench_now_ns();
	size_t i;

	(void)arg;
	if (blk == NULL)
		bench_die("bench_purge", "calloc", ENOMEM);
	for (int r = 0; r < rounds; r++) {
		for (i = 0; i < CHURN_N; i++) {
			blk[i] = kmem_alloc(CHURN_BLOCK, KM_SLEEP);
			memset(blk[i], (int)i, CHURN_BLOCK);
		}
		for (i = 0; i < CHURN_N; i++) {
			if (i % 4 != 0)
				kmem_free(blk[i], CHURN_BLOCK);
		}
		if (reap_mode)
			kmem_reap();
		for (i = 0; i < CHURN_N; i += 4)
			kmem_free(blk[i], CHURN_BLOCK);
		if (reap_mode)
			kmem_reap();
	}
	churn_s_per_round = (double)(bench_now_ns() - t0) / 1e9 / rounds;
	free(blk);
	atomic_store(&churn_done, true);
	return NULL;
}

static void
measure(void)
{
	uint64_t due, t0, t2;
	struct timespec ts;
	void *p;

	if (getenv("KMEM_BENCH_RT") != NULL &&
	    strcmp(getenv("KMEM_BENCH_RT"), "1") == 0) {
		struct sched_param sp = {.sched_priority = 10};
		int err =
		    pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);

		rt = err == 0 ? "SCHED_FIFO" : "ordinary (SCHED_FIFO refused)";
	}
	due = bench_now_ns();
	while (!atomic_load_explicit(&churn_done, memory_order_relaxed)) {
		/* Sleep until this pair is due, unless already late. */
		due += PACE_NS;
		ts.tv_sec = (time_t)(due / 1000000000u);
		ts.tv_nsec = (long)(due % 1000000000u);
		while (clock_nanosleep(
			   CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
			;
		t0 = bench_now_ns();
		p = kmem_alloc(lat_size, KM_SLEEP);
		bench_escape(p);
		kmem_free(p, lat_size);
		t2 = bench_now_ns();
		if (nsamples < MAX_SAMPLES) {
			service[nsamples] = t2 - t0;
			response[nsamples] = t2 - due;
			nsamples++;
		}
	}
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static double
pct_us(const uint64_t *v, double q)
{
	return (double)v[(size_t)(q * (double)(nsamples - 1))] / 1e3;
}

/* Sort v and print its median, p99, p99.9 and maximum, in us. */
static void
print_pct(const char *what, uint64_t *v)
{
	size_t i, slow = 0;

	qsort(v, nsamples, sizeof(uint64_t), cmp_u64);
	for (i = 0; i < nsamples; i++)
		slow += v[i] > 1000000;
	printf("  %s: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us, "
	       ">1ms %zu\n",
	    what, pct_us(v, 0.5), pct_us(v, 0.99), pct_us(v, 0.999),
	    (double)v[nsamples - 1] / 1e3, slow);
}

int
main(int argc, char **argv)
{
	pthread_t th;
	int err;

	if (argc > 1 && strcmp(argv[1], "delay") == 0) {
		reap_mode = false;
		setenv("KMEM_OPTIONS", "purge_delay_ms=20", 1);
	} else if (argc > 1 && strcmp(argv[1], "reap") != 0) {
		fprintf(stderr,
		    "usage: bench_purge [reap|delay] [rounds] [LAT_KIB]\n");
		return 2;
	}
	if (argc > 2)
		rounds = atoi(argv[2]) > 0 ? atoi(argv[2]) : 1;
	if (argc > 3 && atoi(argv[3]) > 64)
		lat_size = (size_t)atoi(argv[3]) << 10;
	service = malloc(MAX_SAMPLES * sizeof(uint64_t));
	response = malloc(MAX_SAMPLES * sizeof(uint64_t));
	if (service == NULL || response == NULL)
		bench_die("bench_purge", "malloc", ENOMEM);
	/* Touch the sample arrays now, not while measuring. */
	memset(service, 0, MAX_SAMPLES * sizeof(uint64_t));
	memset(response, 0, MAX_SAMPLES * sizeof(uint64_t));
	kmem_free(kmem_alloc(lat_size, KM_SLEEP), lat_size); /* set kmem up */
	if ((err = pthread_create(&th, NULL, churn, NULL)) != 0)
		bench_die("bench_purge", "pthread_create", err);
	measure();
	pthread_join(th, NULL);
	if (nsamples == 0)
		bench_die("bench_purge", "no samples", EAGAIN);
	printf("bench_purge %s, %zu KiB: %zu pairs, churn %.2f s/round, "
	       "measured thread %s\n",
	    reap_mode ? "reap" : "delay", lat_size >> 10, nsamples,
	    churn_s_per_round, rt);
	print_pct("response", response);
	print_pct("service ", service);
	free(service);
	free(response);
	return 0;
}
