/*
 * bench_malloc -- one workload of the malloc comparison run by
 * scripts/bench-malloc.py: glibc, jemalloc, tcmalloc, mimalloc and kmem's
 * libkmem-malloc.so, each put in place by LD_PRELOAD.  This program calls
 * only the C library's malloc/free (whatever the dynamic linker bound them
 * to), measures one test once and prints one line of JSON on stdout.  The
 * runner does the rest: a process per allocator and cell, rotated order,
 * repetitions, medians, ratios.
 *
 * Conventions (as bench_kmem's):
 *
 *  - Every test first creates and joins one thread: glibc's malloc skips
 *    its atomic instructions while a process has never had a thread, which
 *    would flatter glibc (a real program using the shim has threads).
 *
 *  - Single-threaded cells (pair, random) are timed in CPU time of the
 *    process (CLOCK_PROCESS_CPUTIME_ID: user + system time of all its
 *    threads), not wall time: on a shared 2-CPU machine other processes
 *    take the CPU for milliseconds at a time and that waiting is not the
 *    allocator's; page faults and brk/mmap/madvise calls are counted.  A
 *    cell is a calibration (doubling the count until a run takes 1/8 of
 *    --ms, then one run of the estimated count for --ms, which corrects
 *    the estimate; also the warm-up), then 3 timed runs of ~--ms ms each;
 *    the median is printed (and the least).  Multi-threaded tests (xthread,
 * falseshare, churn) are timed in wall time: their cost is waiting for other
 * CPUs.  Memory tests (frag, idle) read VmRSS / VmHWM from /proc/self/status
 * with open/read (no stdio, which would call malloc).
 *
 *  - Objects are written (first byte, or all of them in the memory tests),
 *    as a real program writes its memory, so an allocator that hands out
 *    fresh pages pays the page faults.  Pointers pass through an empty asm
 *    with a memory clobber so that no malloc/free pair can be folded away.
 *    Bookkeeping arrays (live sets, pointer lists) are mmap'ed, not
 *    malloc'ed, so they do not shape the heap being measured.
 *
 *  - "A..B skewed small": a size A <= s < B (powers of 2) drawn so that
 *    each octave is half as likely as the one below it (A..2A-1 half the
 *    time, the top octave B/2..B-1 takes the rest), uniform inside the
 *    octave: many small requests, a tail of large ones, sizes not rounded
 *    (mean ~108 B for 16..4096, ~71 B for 16..512).
 *
 * Tests ("clock" in the output says which clock was used):
 *
 *   pair --size S [--batch B]
 *        B = 1: malloc(S), write its first byte, free; ns per pair (cpu).
 *        The best case of every thread cache: one object goes back and
 *        forth.  B > 1 (the runner uses 1000): malloc B objects of S bytes
 *        (first byte of each written), then free them in allocation order;
 *        ns per malloc+free (cpu).  1000 objects overflow a thread cache /
 *        magazine / tcache bin, so the layers behind it are exercised.
 *
 *   random [--live N]
 *        A live set of N slots (20000), filled untimed.  One op: pick a
 *        random slot, free its object, malloc a new one of a random size
 *        16..4096 skewed small, write its first byte.  So frees come in
 *        random order, objects of many classes are live at once, and the
 *        live set (~2.2 MB) does not fit the L2 cache.  ns per op = one free
 *        + one malloc (cpu), the RNG's ~3 ns included for everyone.
 *
 *   xthread [--threads P] [--ms T]
 *        P producer threads each malloc objects (16..512, skewed small,
 *        first byte written) and pass them through a single-producer
 *        single-consumer ring (16384 slots, indices published every 16) to
 *        their own consumer thread, which frees them: every free is of an
 *        object another thread allocated on another CPU (remote free; the
 *        2P threads are pinned round robin to the CPUs of the affinity
 *        mask, producer i to slot 2i, its consumer to 2i+1, so with 2 CPUs
 *        all producers share one and all consumers the other).  The ring
 *        is that long so that when the two are not running at the same
 *        time (other processes) one can run ~1 ms ahead instead of
 *        stopping at once.  Runs for T ms
 *        (wall), then the producers send an end marker.  Printed: million
 *        objects (malloc + remote free) per second, wall: over the whole
 *        run (start barrier to last join), and the median and best of the
 *        T / 50 ms windows the run is cut into (objects the producers made
 *        in each window; the runner ranks by the median window, which a
 *        few windows disturbed by other processes do not move).  2P
 *        threads; with 2P > CPUs they time-share (waits on the ring spin
 *        briefly, then sched_yield).
 *
 *   falseshare [--threads T] [--size S] [--iters N]
 *        T threads, thread t pinned to the t-th CPU of the affinity mask
 *        (round robin).  They malloc K = 4 objects of S bytes each, taking
 *        turns (thread 0, 1, ..., T-1, 0, 1, ...), so an allocator that
 *        serves threads from one shared run places different threads'
 *        objects next to each other.  Then each thread adds 1 to a 64-bit
 *        counter at offset 0 of its own objects (a volatile load and store,
 *        cycling over its 4) N times, all starting together; wall time =
 *        first start to last end.  Baseline: the same on counters 128 bytes
 *        apart in a static buffer.  Order base, alloc, base, alloc, ... (5
 *        of each); the least of each is kept (the least disturbed by other
 *        processes).  Printed: both times, slowdown = alloc / base (1.0 =
 *        no false sharing; the runner ranks by it), how many of the T*K
 *        objects share a 64-byte line with another thread's object,
 *        and the least distance between two threads' objects.
 *
 *   churn [--total N] [--conc C]
 *        N short-lived threads (5000), at most C alive at once (4): thread
 *        i is created when thread i-C has been joined.  Each mallocs 256
 *        objects (16..1024, skewed small, first byte written) and frees
 *        them (odd indices first, then even), then exits: thread-cache
 *        set-up and tear-down, and what happens to a dying thread's cached
 *        objects.  Printed: threads per second (wall, first create to last
 *        join), CPU time per thread (process CPU time over the whole run
 *        / N: the runner ranks by it, as thread creation is serialised
 *        through the main thread and on a shared machine the wall time is
 *        mostly other processes'), and VmRSS / VmHWM after the last join.
 *
 *   frag [--mb M]
 *        Phase 1: malloc small objects (16..512, skewed small, all bytes
 *        written) until M MiB (200) are requested.  Phase 2: free 90 % of
 *        them, chosen at random, in a scattered order.  Phase 3: malloc
 *        larger objects (1024..4096, skewed small, all written) totalling
 *        M/2 MiB.  Live bytes at the end are ~0.6 M MiB; an allocator that
 *        can reuse the holes left by the small objects for the larger ones
 *        needs little more.  Printed: VmRSS after each phase, VmHWM (peak)
 *        and the final live bytes; the pointer arrays (bookkeeping, the same
 *        for every allocator, included in the RSS) are printed too.
 *
 *   idle [--mb M] [--idle-ms T] [--period-ms P]
 *        malloc a burst of M MiB (512) in objects of 16..2048 bytes (skewed
 *        small, all written), free all of them in a scattered order, unmap
 *        the pointer array, then sleep without calling the allocator,
 *        reading VmRSS every P ms (250) for T ms (5000).  Does the
 *        allocator give memory back by itself, and how fast?  Printed: the
 *        RSS before the burst, after it (pointer array included), the
 *        series [ms, KiB], and the RSS after 10000 more malloc/free pairs
 *        of 64 B at the end (for allocators that purge only when called).
 *
 *   probe
 *        Only the common fields: which object malloc was bound to
 *        (dladdr), so the runner can check its LD_PRELOAD took effect.
 *
 * Every line carries "test", "clock", "malloc_from" (the file that defines
 * the malloc this program calls) and the options used.
 *
 * Usage: bench_malloc TEST [--size S] [--batch B] [--ms T] [--live N]
 *                    [--threads N] [--iters N] [--total N] [--conc C]
 *                    [--mb M] [--idle-ms T] [--period-ms P] [--seed X]
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define PROG	  "bench_malloc"
#define INNER	  3	/* timed runs per cpu-time cell (median kept) */
#define FS_K	  4	/* objects per thread in falseshare */
#define FS_MAXT	  64	/* threads at most in falseshare */
#define XT_MAXT	  64	/* producers at most in xthread */
#define RING	  16384 /* xthread ring slots (power of 2) */
#define RING_PUB  16	/* xthread: publish indices every RING_PUB items */
#define XT_TICK	  256	/* xthread: producers publish their count so often */
#define XT_WIN_MS 50	/* xthread: throughput windows of ~50 ms */
#define XT_MAXWIN 1000	/* xthread: windows at most */
#define CHURN_N	  256	/* objects per churn thread */
#define MAXSAMP	  4096	/* idle samples at most */
#define SCATTER	  2654435761u /* prime > any count: i * SCATTER mod n */

#define die(what, err) bench_die(PROG, (what), (err))

/* ---- options ---- */

static struct {
	size_t size, batch, live, threads, iters, total, conc, mb;
	double ms;
	long idle_ms, period_ms;
	uint64_t seed;
} opt = {
    .size = 64,
    .batch = 1,
    .live = 20000,
    .threads = 0, /* per test default */
    .iters = 10000000,
    .total = 5000,
    .conc = 4,
    .mb = 0, /* per test default */
    .ms = 0, /* per test default */
    .idle_ms = 5000,
    .period_ms = 250,
    .seed = 0x9e3779b97f4a7c15u,
};

/* ---- small helpers ---- */

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ volatile("" : : : "memory");
#endif
}

/* Spin a little, then yield: waiters may share a CPU with the waited-on. */
static inline void
backoff(unsigned *n)
{
	if (++*n < 64)
		cpu_relax();
	else
		sched_yield();
}

/* Sleep for us microseconds (the coordinating thread must not spin). */
static void
nap_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* splitmix64: a fast, good-enough random stream. */
static inline uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* The i-th value of stream seed, without state (for sizes recomputed). */
static inline uint64_t
rng_at(uint64_t seed, uint64_t i)
{
	uint64_t s = seed + i * 0x632be59bd9b4e019u;

	return rng_next(&s);
}

/* Uniform in [0, n) from 32 random bits. */
static inline size_t
rng_below(uint64_t r, size_t n)
{
	return (size_t)(((r & 0xffffffffu) * (uint64_t)n) >> 32);
}

/*
 * A size in [lo, hi) (lo and hi powers of 2), skewed small: octave k
 * (sizes lo<<k .. (lo<<(k+1))-1) has probability 2^-(k+1), the last octave
 * (hi/2 .. hi-1) takes the rest; uniform inside the octave.
 */
static inline size_t
skew_size(uint64_t r, size_t lo, size_t hi)
{
	unsigned k = (unsigned)__builtin_ctzll((r >> 32) | (1ull << 31));
	size_t base, sz;

	while (k > 0 && (lo << k) > hi / 2)
		k--;
	base = lo << k;
	sz = base + rng_below(r, base);
	return sz >= hi ? hi - 1 : sz;
}

static void *
xmalloc(size_t size)
{
	void *p = malloc(size);

	if (__builtin_expect(p == NULL, 0))
		die("malloc", ENOMEM);
	return p;
}

/* Bookkeeping memory, outside the allocator being measured. */
static void *
map_array(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		die("mmap", errno);
	return p;
}

static void
unmap_array(void *p, size_t bytes)
{
	if (munmap(p, bytes) != 0)
		die("munmap", errno);
}

/*
 * "VmRSS" or "VmHWM" of this process in KiB, read with open/read: stdio
 * would call malloc (the idle test must not).
 */
static long
status_kib(const char *key)
{
	static char buf[16384];
	size_t klen = strlen(key), got = 0;
	ssize_t n;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	char *p;

	if (fd < 0)
		die("/proc/self/status", errno);
	while (got < sizeof buf - 1 &&
	    (n = read(fd, buf + got, sizeof buf - 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	for (p = buf; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, key, klen) == 0 && p[klen] == ':')
			return strtol(p + klen + 1, NULL, 10);
	}
	return -1;
}

static void *
noop_thread(void *arg)
{
	return arg;
}

static void
xpthread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int err = pthread_create(t, NULL, fn, arg);

	if (err != 0)
		die("pthread_create", err);
}

static void
xpthread_join(pthread_t t)
{
	int err = pthread_join(t, NULL);

	if (err != 0)
		die("pthread_join", err);
}

/* The CPUs this process may run on. */
static int
allowed_cpus(int *cpus, int max)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof set, &set) != 0)
		die("sched_getaffinity", errno);
	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	return n;
}

static void
pin_self(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	/* Best effort: a restricted container may refuse. */
	(void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* ---- output ---- */

static const char *test_name;

/* Print a JSON string (paths may hold anything). */
static void
put_str(const char *s)
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

/* The opening of every line: test, clock, malloc_from, nproc. */
static void
put_head(const char *clock)
{
	void *(*volatile fp)(size_t) = malloc;
	Dl_info info;
	int cpus[CPU_SETSIZE];

	printf("{\"test\":");
	put_str(test_name);
	printf(",\"clock\":");
	put_str(clock);
	printf(",\"malloc_from\":");
	if (dladdr((void *)(uintptr_t)fp, &info) != 0 && info.dli_fname != NULL)
		put_str(info.dli_fname);
	else
		put_str("?");
	printf(",\"ncpu\":%d", allowed_cpus(cpus, CPU_SETSIZE));
}

static void
put_end(void)
{
	printf("}\n");
	fflush(stdout);
}

/* ---- cpu-time cells: calibrate, then INNER timed runs ---- */

/* Run iters iterations; return their CPU time, ns. */
typedef uint64_t (*run_fn)(void *arg, size_t iters);

struct cell {
	double ns;     /* median ns per op */
	double ns_min; /* least */
	size_t iters;  /* per timed run */
};

static struct cell
measure(run_fn run, void *arg, size_t ops_per_iter, double target_ms)
{
	double target = target_ms * 1e6, v[INNER];
	size_t iters = 1;
	uint64_t t;
	struct cell c;

	/* Calibration, also the warm-up: double until >= 1/8 of the target. */
	for (;;) {
		t = run(arg, iters);
		if ((double)t >= target / 8 || iters >= ((size_t)1 << 40))
			break;
		iters *= 2;
	}
	/* Twice: the first guess includes the cold start (page faults). */
	for (int pass = 0; pass < 2; pass++) {
		iters = (size_t)((double)iters * target / (double)(t ? t : 1));
		if (iters == 0)
			iters = 1;
		if (pass == 0)
			t = run(arg, iters);
	}
	for (int i = 0; i < INNER; i++)
		v[i] = (double)run(arg, iters) /
		    ((double)iters * (double)ops_per_iter);
	c.ns = bench_median(v, INNER);
	c.ns_min = v[0];
	c.iters = iters;
	return c;
}

/* ---- pair ---- */

struct pair_arg {
	size_t size, batch;
	void **live;
};

static uint64_t
pair_run(void *varg, size_t iters)
{
	struct pair_arg *a = varg;
	size_t size = a->size, batch = a->batch;
	void **live = a->live;
	uint64_t t0 = bench_cpu_ns();

	if (batch <= 1) {
		for (size_t i = 0; i < iters; i++) {
			char *p = xmalloc(size);

			*(volatile char *)p = (char)i;
			bench_escape(p);
			free(p);
		}
	} else {
		for (size_t r = 0; r < iters; r++) {
			for (size_t i = 0; i < batch; i++) {
				char *p = xmalloc(size);

				*(volatile char *)p = (char)i;
				live[i] = p;
			}
			bench_escape(live);
			for (size_t i = 0; i < batch; i++)
				free(live[i]);
		}
	}
	return bench_cpu_ns() - t0;
}

static void
test_pair(void)
{
	struct pair_arg a = {opt.size, opt.batch ? opt.batch : 1, NULL};
	size_t bytes = a.batch * sizeof(void *);
	struct cell c;

	a.live = map_array(bytes);
	c = measure(pair_run, &a, a.batch, opt.ms > 0 ? opt.ms : 20);
	unmap_array(a.live, bytes);
	put_head("cpu");
	printf(",\"size\":%zu,\"batch\":%zu,\"ns\":%.3f,\"ns_min\":%.3f,"
	       "\"iters\":%zu",
	    a.size, a.batch, c.ns, c.ns_min, c.iters);
	put_end();
}

/* ---- random ---- */

struct random_arg {
	void **slot;
	size_t live;
	uint64_t rng;
};

static uint64_t
random_run(void *varg, size_t iters)
{
	struct random_arg *a = varg;
	void **slot = a->slot;
	size_t live = a->live;
	uint64_t rng = a->rng, t0 = bench_cpu_ns();

	for (size_t i = 0; i < iters; i++) {
		size_t j = rng_below(rng_next(&rng), live);
		char *p;

		free(slot[j]);
		p = xmalloc(skew_size(rng_next(&rng), 16, 4096));
		*(volatile char *)p = (char)i;
		slot[j] = p;
	}
	a->rng = rng;
	return bench_cpu_ns() - t0;
}

static void
test_random(void)
{
	struct random_arg a = {NULL, opt.live ? opt.live : 1, opt.seed};
	size_t bytes = a.live * sizeof(void *);
	struct cell c;

	a.slot = map_array(bytes);
	for (size_t j = 0; j < a.live; j++) {
		char *p = xmalloc(skew_size(rng_next(&a.rng), 16, 4096));

		*(volatile char *)p = 0;
		a.slot[j] = p;
	}
	c = measure(random_run, &a, 1, opt.ms > 0 ? opt.ms : 50);
	for (size_t j = 0; j < a.live; j++)
		free(a.slot[j]);
	unmap_array(a.slot, bytes);
	put_head("cpu");
	printf(",\"live\":%zu,\"ns\":%.3f,\"ns_min\":%.3f,\"iters\":%zu",
	    a.live, c.ns, c.ns_min, c.iters);
	put_end();
}

/* ---- xthread ---- */

struct ring {
	_Alignas(64) _Atomic size_t tail; /* written by the producer */
	_Alignas(64) _Atomic size_t head; /* written by the consumer */
	_Alignas(64) void *slot[RING];
	_Alignas(64) _Atomic uint64_t produced; /* every XT_TICK, at the end */
	int id;
};

static _Atomic int xt_stop, xt_go, xt_ready;
static int xt_cpus[CPU_SETSIZE], xt_ncpu;

/* Pin to CPU slot k of the mask (round robin), then wait for the start. */
static void
xt_start(int k)
{
	unsigned n = 0;

	pin_self(xt_cpus[k % xt_ncpu]);

	atomic_fetch_add(&xt_ready, 1);
	while (!atomic_load_explicit(&xt_go, memory_order_acquire))
		backoff(&n);
}

static void *
xt_producer(void *varg)
{
	struct ring *r = varg;
	uint64_t rng = opt.seed + (uint64_t)r->id * 7919;
	size_t tail = 0, head = 0;
	uint64_t count = 0;
	int done = 0;

	xt_start(2 * r->id);
	while (!done) {
		char *p;
		unsigned n = 0;

		if (atomic_load_explicit(&xt_stop, memory_order_relaxed)) {
			p = NULL; /* the end marker */
			done = 1;
		} else {
			p = xmalloc(skew_size(rng_next(&rng), 16, 512));
			*(volatile char *)p = 1;
			if (++count % XT_TICK == 0)
				atomic_store_explicit(
				    &r->produced, count, memory_order_relaxed);
		}
		while (tail - head >= RING) {
			head = atomic_load_explicit(
			    &r->head, memory_order_acquire);
			if (tail - head >= RING)
				backoff(&n);
		}
		r->slot[tail % RING] = p;
		tail++;
		if (tail % RING_PUB == 0 || done)
			atomic_store_explicit(
			    &r->tail, tail, memory_order_release);
	}
	atomic_store(&r->produced, count);
	return NULL;
}

static void *
xt_consumer(void *varg)
{
	struct ring *r = varg;
	size_t head = 0, tail = 0;

	xt_start(2 * r->id + 1);
	for (;;) {
		unsigned n = 0;
		void *p;

		while (head == tail) {
			tail = atomic_load_explicit(
			    &r->tail, memory_order_acquire);
			if (head == tail)
				backoff(&n);
		}
		p = r->slot[head % RING];
		head++;
		if (head % RING_PUB == 0 || p == NULL)
			atomic_store_explicit(
			    &r->head, head, memory_order_release);
		if (p == NULL)
			break;
		free(p);
	}
	return NULL;
}

static void
test_xthread(void)
{
	size_t np = opt.threads ? opt.threads : 1;
	double ms = opt.ms > 0 ? opt.ms : 1000;
	pthread_t prod[XT_MAXT], cons[XT_MAXT];
	struct ring *rings;
	uint64_t t0, t1, c0, c1, total = 0, prev = 0, tprev;
	static double rate[XT_MAXWIN];
	int nwin = (int)(ms / XT_WIN_MS);
	double best = 0, medrate;
	struct timespec ts0, at;

	if (np > XT_MAXT)
		die("xthread: --threads", EINVAL);
	xt_ncpu = allowed_cpus(xt_cpus, CPU_SETSIZE);
	rings = map_array(np * sizeof *rings);
	for (size_t i = 0; i < np; i++) {
		rings[i].id = (int)i;
		xpthread_create(&cons[i], xt_consumer, &rings[i]);
		xpthread_create(&prod[i], xt_producer, &rings[i]);
	}
	while (atomic_load(&xt_ready) < (int)(2 * np))
		nap_us(100);
	if (nwin < 1)
		nwin = 1;
	if (nwin > XT_MAXWIN)
		nwin = XT_MAXWIN;
	c0 = bench_cpu_ns();
	clock_gettime(CLOCK_MONOTONIC, &ts0);
	t0 = tprev = bench_now_ns();
	atomic_store_explicit(&xt_go, 1, memory_order_release);
	/* nwin windows of ms / nwin each: objects made in each, per second. */
	for (int w = 0; w < nwin; w++) {
		long ns = (long)(ms * 1e6 / nwin * (w + 1));
		uint64_t now, cnt = 0;

		at.tv_sec = ts0.tv_sec + (ts0.tv_nsec + ns) / 1000000000;
		at.tv_nsec = (ts0.tv_nsec + ns) % 1000000000;
		while (clock_nanosleep(
			   CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
			;
		for (size_t i = 0; i < np; i++)
			cnt += atomic_load_explicit(
			    &rings[i].produced, memory_order_relaxed);
		now = bench_now_ns();
		rate[w] = (double)(cnt - prev) * 1e3 / (double)(now - tprev);
		best = rate[w] > best ? rate[w] : best;
		prev = cnt;
		tprev = now;
	}
	medrate = bench_median(rate, nwin);
	atomic_store(&xt_stop, 1);
	for (size_t i = 0; i < np; i++) {
		xpthread_join(prod[i]);
		xpthread_join(cons[i]);
	}
	t1 = bench_now_ns();
	c1 = bench_cpu_ns();
	for (size_t i = 0; i < np; i++)
		total += atomic_load(&rings[i].produced);
	unmap_array(rings, np * sizeof *rings);
	put_head("wall");
	printf(",\"producers\":%zu,\"consumers\":%zu,\"threads\":%zu,"
	       "\"objects\":%llu,\"wall_ms\":%.3f,\"cpu_ms\":%.3f,"
	       "\"mops\":%.4f,\"windows\":%d,\"mops_win_median\":%.4f,"
	       "\"mops_win_best\":%.4f",
	    np, np, 2 * np, (unsigned long long)total, (double)(t1 - t0) / 1e6,
	    (double)(c1 - c0) / 1e6, (double)total * 1e3 / (double)(t1 - t0),
	    nwin, medrate, best);
	put_end();
}

/* ---- falseshare ---- */

#define FS_ROUNDS 5		  /* countings of each kind */
#define FS_PHASES (2 * FS_ROUNDS) /* base, alloc, base, alloc, ... */

static struct {
	size_t nthr, size, iters;
	int cpus[CPU_SETSIZE], ncpu;
	_Atomic size_t turn;
	_Atomic int ready, go;
	char *obj[FS_MAXT][FS_K];
	uint64_t start[FS_PHASES][FS_MAXT], end[FS_PHASES][FS_MAXT];
} fs;

static _Alignas(128) char fs_apart[FS_MAXT][FS_K][128];

static void
fs_hammer(char *const *objs, size_t iters)
{
	for (size_t i = 0; i < iters; i++) {
		volatile uint64_t *c = (volatile uint64_t *)objs[i % FS_K];

		*c = *c + 1;
	}
}

static void *
fs_worker(void *varg)
{
	size_t t = (size_t)(uintptr_t)varg;
	char *base[FS_K], *mine[FS_K];

	pin_self(fs.cpus[t % (size_t)fs.ncpu]);
	/* Take turns: object k of thread t is allocation k * nthr + t. */
	for (size_t k = 0; k < FS_K; k++) {
		size_t my = k * fs.nthr + t;
		unsigned n = 0;

		while (
		    atomic_load_explicit(&fs.turn, memory_order_acquire) != my)
			backoff(&n);
		fs.obj[t][k] = xmalloc(fs.size);
		memset(fs.obj[t][k], 0, fs.size);
		atomic_store_explicit(&fs.turn, my + 1, memory_order_release);
	}
	for (size_t k = 0; k < FS_K; k++) {
		mine[k] = fs.obj[t][k];
		base[k] = fs_apart[t][k];
		memset(base[k], 0, 8);
	}
	for (int ph = 0; ph < FS_PHASES; ph++) {
		unsigned n = 0;

		atomic_fetch_add(&fs.ready, 1);
		while (atomic_load_explicit(&fs.go, memory_order_acquire) <= ph)
			backoff(&n);
		fs.start[ph][t] = bench_now_ns();
		fs_hammer(ph % 2 == 0 ? base : mine, fs.iters);
		fs.end[ph][t] = bench_now_ns();
	}
	return NULL;
}

static void
test_falseshare(void)
{
	pthread_t thr[FS_MAXT];
	double best[2] = {0, 0};
	size_t shared = 0;
	uintptr_t mindist = UINTPTR_MAX;

	fs.nthr = opt.threads ? opt.threads : 2;
	fs.size = opt.size < 8 ? 8 : opt.size;
	fs.iters = opt.iters;
	fs.ncpu = allowed_cpus(fs.cpus, CPU_SETSIZE);
	if (fs.nthr > FS_MAXT)
		die("falseshare: --threads", EINVAL);
	for (size_t t = 0; t < fs.nthr; t++)
		xpthread_create(&thr[t], fs_worker, (void *)(uintptr_t)t);
	for (int ph = 0; ph < FS_PHASES; ph++) {
		while (
		    atomic_load(&fs.ready) < (int)((size_t)(ph + 1) * fs.nthr))
			nap_us(200);
		atomic_store_explicit(&fs.go, ph + 1, memory_order_release);
	}
	for (size_t t = 0; t < fs.nthr; t++)
		xpthread_join(thr[t]);
	for (int ph = 0; ph < FS_PHASES; ph++) {
		uint64_t s = UINT64_MAX, e = 0;
		double ms;

		for (size_t t = 0; t < fs.nthr; t++) {
			s = fs.start[ph][t] < s ? fs.start[ph][t] : s;
			e = fs.end[ph][t] > e ? fs.end[ph][t] : e;
		}
		ms = (double)(e - s) / 1e6;
		if (best[ph % 2] == 0 || ms < best[ph % 2])
			best[ph % 2] = ms;
	}
	for (size_t t = 0; t < fs.nthr; t++)
		for (size_t k = 0; k < FS_K; k++) {
			uintptr_t a = (uintptr_t)fs.obj[t][k];
			int sh = 0;

			for (size_t u = 0; u < fs.nthr; u++) {
				if (u == t)
					continue;
				for (size_t l = 0; l < FS_K; l++) {
					uintptr_t b = (uintptr_t)fs.obj[u][l];
					uintptr_t d = a > b ? a - b : b - a;

					if (d < mindist)
						mindist = d;
					if (a / 64 == b / 64)
						sh = 1;
				}
			}
			shared += (size_t)sh;
		}
	for (size_t t = 0; t < fs.nthr; t++)
		for (size_t k = 0; k < FS_K; k++)
			free(fs.obj[t][k]);
	put_head("wall");
	printf(",\"threads\":%zu,\"size\":%zu,\"iters\":%zu,\"objects\":%zu,"
	       "\"base_ms\":%.3f,\"alloc_ms\":%.3f,\"slowdown\":%.4f,"
	       "\"shared\":%zu,\"mindist\":%llu",
	    fs.nthr, fs.size, fs.iters, fs.nthr * FS_K, best[0], best[1],
	    best[1] / best[0], shared,
	    (unsigned long long)(fs.nthr > 1 ? mindist : 0));
	put_end();
}

/* ---- churn ---- */

static void *
churn_thread(void *varg)
{
	uint64_t rng = opt.seed ^ (uint64_t)(uintptr_t)varg;
	char *obj[CHURN_N];

	for (int i = 0; i < CHURN_N; i++) {
		obj[i] = xmalloc(skew_size(rng_next(&rng), 16, 1024));
		*(volatile char *)obj[i] = (char)i;
	}
	bench_escape(obj);
	for (int i = 1; i < CHURN_N; i += 2)
		free(obj[i]);
	for (int i = 0; i < CHURN_N; i += 2)
		free(obj[i]);
	return NULL;
}

static void
test_churn(void)
{
	size_t total = opt.total ? opt.total : 1;
	size_t conc = opt.conc ? opt.conc : 1;
	size_t bytes = conc * sizeof(pthread_t);
	pthread_t *thr = map_array(bytes);
	uint64_t t0, t1, c0, c1;

	c0 = bench_cpu_ns();
	t0 = bench_now_ns();
	for (size_t i = 0; i < total; i++) {
		if (i >= conc)
			xpthread_join(thr[i % conc]);
		xpthread_create(
		    &thr[i % conc], churn_thread, (void *)(uintptr_t)(i + 1));
	}
	for (size_t i = total > conc ? total - conc : 0; i < total; i++)
		xpthread_join(thr[i % conc]);
	t1 = bench_now_ns();
	c1 = bench_cpu_ns();
	unmap_array(thr, bytes);
	put_head("cpu+wall");
	printf(",\"total\":%zu,\"conc\":%zu,\"threads\":%zu,\"wall_ms\":%.3f,"
	       "\"cpu_ms\":%.3f,\"threads_per_s\":%.1f,"
	       "\"cpu_us_per_thread\":%.3f,\"rss_kib\":%ld,\"hwm_kib\":%ld",
	    total, conc, conc, (double)(t1 - t0) / 1e6, (double)(c1 - c0) / 1e6,
	    (double)total * 1e9 / (double)(t1 - t0),
	    (double)(c1 - c0) / 1e3 / (double)total, status_kib("VmRSS"),
	    status_kib("VmHWM"));
	put_end();
}

/* ---- frag ---- */

static void
fill(char *p, size_t n, uint64_t v)
{
	memset(p, (int)(v & 0xff) | 1, n);
}

static void
test_frag(void)
{
	size_t target = (opt.mb ? opt.mb : 200) << 20, n = 0, nbig = 0;
	size_t cap = target / 16 + 1, bigcap = target / 2 / 1024 + 1;
	size_t small_bytes = 0, kept_bytes = 0, big_bytes = 0;
	char **ptr = map_array(cap * sizeof *ptr);
	char **big = map_array(bigcap * sizeof *big);
	uint64_t seed = opt.seed, c0 = bench_cpu_ns();
	long rss0 = status_kib("VmRSS"), rss1, rss2, rss3, hwm;

	/* Phase 1: small objects up to the target. */
	while (small_bytes < target && n < cap) {
		size_t sz = skew_size(rng_at(seed, n), 16, 512);

		ptr[n] = xmalloc(sz);
		fill(ptr[n], sz, n);
		small_bytes += sz;
		n++;
	}
	rss1 = status_kib("VmRSS");
	/* Phase 2: free 90 %, picked at random, in a scattered order. */
	for (size_t i = 0; i < n; i++) {
		size_t j = (size_t)(((uint64_t)i * SCATTER) % n);
		uint64_t r = rng_at(seed ^ 0x5555, j);

		if (rng_below(r, 10) != 0) {
			free(ptr[j]);
			ptr[j] = NULL;
		} else {
			kept_bytes += skew_size(rng_at(seed, j), 16, 512);
		}
	}
	rss2 = status_kib("VmRSS");
	/* Phase 3: larger objects, half the target. */
	while (big_bytes < target / 2 && nbig < bigcap) {
		size_t sz = skew_size(rng_at(seed ^ 0xaaaa, nbig), 1024, 4096);

		big[nbig] = xmalloc(sz);
		fill(big[nbig], sz, nbig);
		big_bytes += sz;
		nbig++;
	}
	rss3 = status_kib("VmRSS");
	hwm = status_kib("VmHWM");
	bench_escape(ptr);
	bench_escape(big);
	put_head("none");
	printf(",\"mb\":%zu,\"small_objects\":%zu,\"small_bytes\":%zu,"
	       "\"kept_bytes\":%zu,\"big_objects\":%zu,\"big_bytes\":%zu,"
	       "\"live_bytes\":%zu,\"book_kib\":%zu,\"rss_start_kib\":%ld,"
	       "\"rss_full_kib\":%ld,\"rss_freed_kib\":%ld,"
	       "\"final_kib\":%ld,\"peak_kib\":%ld,\"cpu_ms\":%.3f",
	    target >> 20, n, small_bytes, kept_bytes, nbig, big_bytes,
	    kept_bytes + big_bytes, (n + nbig) * sizeof(char *) / 1024, rss0,
	    rss1, rss2, rss3, hwm, (double)(bench_cpu_ns() - c0) / 1e6);
	put_end();
}

/* ---- idle ---- */

static void
test_idle(void)
{
	size_t target = (opt.mb ? opt.mb : 512) << 20, n = 0, bytes = 0;
	size_t cap = target / 16 + 1, abytes = cap * sizeof(char *);
	char **ptr = map_array(abytes);
	static long samp_ms[MAXSAMP], samp_kib[MAXSAMP];
	long nsamp, rss0, rss1, rss_end;
	uint64_t c0, c1, c2;
	struct timespec t0, at;

	nsamp = opt.idle_ms / (opt.period_ms > 0 ? opt.period_ms : 1) + 1;
	if (nsamp > MAXSAMP)
		nsamp = MAXSAMP;
	rss0 = status_kib("VmRSS");
	c0 = bench_cpu_ns();
	while (bytes < target && n < cap) {
		size_t sz = skew_size(rng_at(opt.seed, n), 16, 2048);

		ptr[n] = xmalloc(sz);
		fill(ptr[n], sz, n);
		bytes += sz;
		n++;
	}
	bench_escape(ptr);
	rss1 = status_kib("VmRSS");
	c1 = bench_cpu_ns();
	for (size_t i = 0; i < n; i++)
		free(ptr[(size_t)(((uint64_t)i * SCATTER) % n)]);
	c2 = bench_cpu_ns();
	unmap_array(ptr, abytes);
	/* Idle: no allocator call from here to the last sample. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long k = 0; k < nsamp; k++) {
		long ns = k * opt.period_ms * 1000000;

		at.tv_sec = t0.tv_sec + ns / 1000000000;
		at.tv_nsec = t0.tv_nsec + ns % 1000000000;
		if (at.tv_nsec >= 1000000000) {
			at.tv_sec++;
			at.tv_nsec -= 1000000000;
		}
		while (clock_nanosleep(
			   CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
			;
		samp_ms[k] = k * opt.period_ms;
		samp_kib[k] = status_kib("VmRSS");
	}
	/* Then some calls: allocators that purge only when called (ticks). */
	for (int i = 0; i < 10000; i++) {
		char *p = xmalloc(64);

		*(volatile char *)p = 0;
		free(p);
	}
	rss_end = status_kib("VmRSS");
	put_head("none");
	printf(",\"mb\":%zu,\"objects\":%zu,\"bytes\":%zu,\"period_ms\":%ld,"
	       "\"rss_start_kib\":%ld,\"rss_full_kib\":%ld,"
	       "\"alloc_cpu_ms\":%.3f,\"free_cpu_ms\":%.3f,"
	       "\"rss_after_calls_kib\":%ld,\"samples\":[",
	    target >> 20, n, bytes, opt.period_ms, rss0, rss1,
	    (double)(c1 - c0) / 1e6, (double)(c2 - c1) / 1e6, rss_end);
	for (long k = 0; k < nsamp; k++)
		printf("%s[%ld,%ld]", k ? "," : "", samp_ms[k], samp_kib[k]);
	printf("]");
	put_end();
}

/* ---- main ---- */

static void
test_probe(void)
{
	put_head("none");
	put_end();
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
    {"pair", test_pair},
    {"random", test_random},
    {"xthread", test_xthread},
    {"falseshare", test_falseshare},
    {"churn", test_churn},
    {"frag", test_frag},
    {"idle", test_idle},
    {"probe", test_probe},
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s TEST [--size S] [--batch B] [--ms T] [--live N]\n"
	    "       [--threads N] [--iters N] [--total N] [--conc C] [--mb M]\n"
	    "       [--idle-ms T] [--period-ms P] [--seed X]\n"
	    "tests: pair random xthread falseshare churn frag idle probe\n",
	    PROG);
	exit(2);
}

static unsigned long long
num(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || *end != '\0')
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	void (*fn)(void) = NULL;
	pthread_t t;

	if (argc < 2)
		usage();
	test_name = argv[1];
	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		if (strcmp(tests[i].name, argv[1]) == 0)
			fn = tests[i].fn;
	if (fn == NULL)
		usage();
	for (int i = 2; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			usage();
		i++;
		if (strcmp(o, "--size") == 0)
			opt.size = (size_t)num(v);
		else if (strcmp(o, "--batch") == 0)
			opt.batch = (size_t)num(v);
		else if (strcmp(o, "--ms") == 0)
			opt.ms = strtod(v, NULL);
		else if (strcmp(o, "--live") == 0)
			opt.live = (size_t)num(v);
		else if (strcmp(o, "--threads") == 0)
			opt.threads = (size_t)num(v);
		else if (strcmp(o, "--iters") == 0)
			opt.iters = (size_t)num(v);
		else if (strcmp(o, "--total") == 0)
			opt.total = (size_t)num(v);
		else if (strcmp(o, "--conc") == 0)
			opt.conc = (size_t)num(v);
		else if (strcmp(o, "--mb") == 0)
			opt.mb = (size_t)num(v);
		else if (strcmp(o, "--idle-ms") == 0)
			opt.idle_ms = (long)num(v);
		else if (strcmp(o, "--period-ms") == 0)
			opt.period_ms = (long)num(v);
		else if (strcmp(o, "--seed") == 0)
			opt.seed = num(v);
		else
			usage();
	}
	/* One thread, created and joined: no single-threaded fast paths. */
	xpthread_create(&t, noop_thread, NULL);
	xpthread_join(t);
	fn();
	return 0;
}
