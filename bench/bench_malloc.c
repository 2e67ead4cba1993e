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
 *        Phase 4 (issue 12): free everything, VmRSS then ("all_freed");
 *        then 3 s of light allocation (1000 malloc/free pairs of 16..512
 *        bytes a millisecond), VmRSS at its end ("later"): memory that
 *        goes back on a delay driven by the program's own calls.
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
 *   Issue 12: the shapes on which kmem's malloc lost in an outside
 *   allocator suite, written here (bench_server.cc has the server shape).
 *   The threaded CPU-time tests (gthread, alloctest, mix) run their
 *   threads for --ms of wall time after a common start; each thread times
 *   its own part with CLOCK_THREAD_CPUTIME_ID (set-up and tear-down
 *   untimed), and the sums over the threads are printed: waiting for a
 *   CPU taken by another process is not counted, a lock's spinning is.
 *
 *   large [--live N] [--steps S]
 *        N blocks (20) of 5..25 MiB (uniform), every byte written, live;
 *        S steps (200): free a random one, malloc a new block of a random
 *        size in its place and write all its bytes (memset with a nonzero
 *        value: malloc + memset(0) may be compiled into calloc).  Per
 *        step: wall time, user and system time and minor page faults
 *        (getrusage, over the steps), CPU = user + system (the runner
 *        ranks by it); VmHWM.  An allocator that unmaps a freed block and
 *        maps the next one pays the kernel's zeroing and a fault per page
 *        (~3800 for a 15 MiB block); one that keeps and reuses it does not.
 *
 *   gthread [--threads T] [--live N] [--ms T]
 *        The shape of glibc's benchtests/bench-malloc-thread: each of T
 *        threads has a working set of N slots (1024); one op frees a
 *        random slot's object and mallocs one of a size from a table of
 *        8192 sizes 4..32767 drawn with density ~ 1/size^2 (mean ~37 B),
 *        first byte written.  ns per op (free + malloc), CPU.
 *
 *   alloctest [--threads T] [--live N] [--ms T]
 *        Each of T threads keeps a live set of up to N objects (131072,
 *        rounded up to a power of 2; filled half untimed) of 8..4095 B,
 *        skewed small, in a ring.  In phases of N/4 calls the set grows
 *        (3 calls in 4 malloc) or shrinks (1 in 4), by turns, never below
 *        N/8 nor above N; frees take the oldest object, the newest or a
 *        random one, the order changing every phase (phase mod 3).  ns
 *        per call (malloc or free), CPU.
 *
 *   mix [--threads T] [--ms T]
 *        A server-like mix on T threads (2).  Sizes: 55 % 16..127 B, 30 %
 *        128..511, 12 % 512..4095, 2.5 % 4..32 KiB, 0.5 % 64..256 KiB
 *        (uniform within each band), the first 64 bytes written.
 *        Lifetimes: 65 % are freed 8 mallocs later, 20 % 512 mallocs
 *        later, 10 % replace a random one of 4096 long-lived objects, and
 *        5 % go to the next thread (a single-producer ring of 1024 per
 *        thread; full: freed 8 mallocs later), which frees them when it
 *        empties its inbox, every 32 mallocs.  Printed: mallocs per
 *        CPU-second of the threads (the runner ranks by it) and per wall
 *        second, and the remote frees.
 *
 *   prodcons [--threads N] [--ms T]
 *        One producer thread mallocs objects of 16..255 B (skewed small,
 *        first byte written) and hands them to N consumer threads (2)
 *        through xthread's rings, RING_PUB objects to each in turn (a full
 *        ring is skipped); the consumers free them.  The producer is
 *        pinned to the first CPU of the mask, the consumers round robin to
 *        the others (all on the first with one CPU).  Million objects per
 *        second, wall: the median and best 50 ms window (the runner ranks
 *        by the median) and the whole run.
 *
 *   cachescratch [--threads T] [--size S] [--iters N]
 *        Passive false sharing.  T worker threads (2), pinned round robin.
 *        Alloc phase: the main thread mallocs one S-byte object (8) for
 *        each worker, one after another (neighbours, in most allocators),
 *        and hands them over; each worker frees its object, then 100
 *        times mallocs an S-byte object, writes N / 100 bytes of it (its
 *        bytes in turn, volatile) and frees it.  An allocator that gives a
 *        worker back the object just freed puts the workers' objects in
 *        one cache line.  Base phase: the same writes to buffers 128 bytes
 *        apart.  5 of each, alternating; the median of each kind (the
 *        objects' places move between alloc phases).  Printed: slowdown =
 *        alloc / base in wall time (first start to last end) and in the
 *        threads' summed CPU time (the runner ranks by this one: on a
 *        shared machine a worker that waits for a CPU stretches the wall
 *        time of a phase; a shared line costs CPU time); how many of the
 *        workers' first objects of a phase were the object handed over,
 *        and how many share a 64-byte line with another worker's.
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
 *                    [--mb M] [--steps N] [--idle-ms T] [--period-ms P]
 *                    [--seed X]
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
#include <sys/resource.h>
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
	size_t size, batch, live, threads, iters, total, conc, mb, steps;
	double ms;
	long idle_ms, period_ms;
	uint64_t seed;
} opt = {
    .size = 64,
    .batch = 1,
    .live = 0,	  /* per test default */
    .threads = 0, /* per test default */
    .iters = 10000000,
    .total = 5000,
    .conc = 4,
    .mb = 0,	/* per test default */
    .steps = 0, /* per test default */
    .ms = 0,	/* per test default */
    .idle_ms = 5000,
    .period_ms = 250,
    .seed = 0x9e3779b97f4a7c15u,
};

/* ---- small helpers ---- */

/* Sleep for us microseconds (the coordinating thread must not spin). */
static void
nap_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The i-th value of stream seed, without state (for sizes recomputed). */
static inline uint64_t
rng_at(uint64_t seed, uint64_t i)
{
	uint64_t s = seed + i * 0x632be59bd9b4e019u;

	return bench_rng_next(&s);
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
	sz = base + bench_rng_below(r, base);
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

/* The opening of every line: test, clock, malloc_from, nproc. */
static void
put_head(const char *clock)
{
	void *(*volatile fp)(size_t) = malloc;
	Dl_info info;
	int cpus[CPU_SETSIZE];

	printf("{\"test\":");
	bench_put_str(test_name);
	printf(",\"clock\":");
	bench_put_str(clock);
	printf(",\"malloc_from\":");
	if (dladdr((void *)(uintptr_t)fp, &info) != 0 && info.dli_fname != NULL)
		bench_put_str(info.dli_fname);
	else
		bench_put_str("?");
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
		size_t j = bench_rng_below(bench_rng_next(&rng), live);
		char *p;

		free(slot[j]);
		p = xmalloc(skew_size(bench_rng_next(&rng), 16, 4096));
		*(volatile char *)p = (char)i;
		slot[j] = p;
	}
	a->rng = rng;
	return bench_cpu_ns() - t0;
}

static void
test_random(void)
{
	struct random_arg a = {NULL, opt.live ? opt.live : 20000, opt.seed};
	size_t bytes = a.live * sizeof(void *);
	struct cell c;

	a.slot = map_array(bytes);
	for (size_t j = 0; j < a.live; j++) {
		char *p = xmalloc(skew_size(bench_rng_next(&a.rng), 16, 4096));

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
		bench_backoff(&n);
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
			p = xmalloc(skew_size(bench_rng_next(&rng), 16, 512));
			*(volatile char *)p = 1;
			if (++count % XT_TICK == 0)
				atomic_store_explicit(
				    &r->produced, count, memory_order_relaxed);
		}
		while (tail - head >= RING) {
			head = atomic_load_explicit(
			    &r->head, memory_order_acquire);
			if (tail - head >= RING)
				bench_backoff(&n);
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

/* Free what the ring brings until its end marker (NULL); the consumer's. */
static void
ring_drain(struct ring *r)
{
	size_t head = 0, tail = 0;

	for (;;) {
		unsigned n = 0;
		void *p;

		while (head == tail) {
			tail = atomic_load_explicit(
			    &r->tail, memory_order_acquire);
			if (head == tail)
				bench_backoff(&n);
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
}

static void *
xt_consumer(void *varg)
{
	struct ring *r = varg;

	xt_start(2 * r->id + 1);
	ring_drain(r);
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
			bench_backoff(&n);
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
			bench_backoff(&n);
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
		obj[i] = xmalloc(skew_size(bench_rng_next(&rng), 16, 1024));
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

/* Phase 4's light allocation after everything is freed, ms. */
#define FRAG_LATER_MS 3000u

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
	long rss0 = status_kib("VmRSS"), rss1, rss2, rss3, rss4, rss5, hwm;
	uint64_t t4;

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

		if (bench_rng_below(r, 10) != 0) {
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
	/*
	 * Phase 4: free everything, then go on allocating lightly for
	 * FRAG_LATER_MS (small objects, each freed at once): does the
	 * memory go back while the program runs, without a thread?
	 */
	for (size_t i = 0; i < n; i++)
		free(ptr[i]);
	for (size_t i = 0; i < nbig; i++)
		free(big[i]);
	rss4 = status_kib("VmRSS");
	t4 = bench_now_ns();
	for (uint64_t k = 0; bench_now_ns() - t4 < FRAG_LATER_MS * 1000000ull;
	     k++) {
		for (unsigned j = 0; j < 1000; j++) {
			char *q = xmalloc(skew_size(
			    rng_at(seed ^ 0x3333, k * 1000 + j), 16, 512));

			q[0] = 1;
			bench_escape(q);
			free(q);
		}
		nap_us(1000);
	}
	rss5 = status_kib("VmRSS");
	put_head("none");
	printf(",\"mb\":%zu,\"small_objects\":%zu,\"small_bytes\":%zu,"
	       "\"kept_bytes\":%zu,\"big_objects\":%zu,\"big_bytes\":%zu,"
	       "\"live_bytes\":%zu,\"book_kib\":%zu,\"rss_start_kib\":%ld,"
	       "\"rss_full_kib\":%ld,\"rss_freed_kib\":%ld,"
	       "\"final_kib\":%ld,\"peak_kib\":%ld,\"cpu_ms\":%.3f,"
	       "\"all_freed_kib\":%ld,\"later_kib\":%ld,\"later_ms\":%u",
	    target >> 20, n, small_bytes, kept_bytes, nbig, big_bytes,
	    kept_bytes + big_bytes, (n + nbig) * sizeof(char *) / 1024, rss0,
	    rss1, rss2, rss3, hwm, (double)(bench_cpu_ns() - c0) / 1e6, rss4,
	    rss5, FRAG_LATER_MS);
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

/* ---- the issue 12 shapes: shared by large .. cachescratch ---- */

/* CPU time of the calling thread, ns. */
/*
 * Timed workers (gthread, alloctest, mix): nthr threads set up untimed,
 * wait for the start, run until the main thread says stop (after --ms of
 * wall time; they look every few dozen operations) timing their own CPU
 * time, then wait until every one has stopped before they tear down (so
 * no thread frees what another is still handing over).
 */
static struct {
	size_t nthr;
	_Atomic int ready, go, stop, stopped;
} tw;

/* Called by a worker after its set-up: wait for the start. */
static void
tw_start(void)
{
	unsigned n = 0;

	atomic_fetch_add(&tw.ready, 1);
	while (!atomic_load_explicit(&tw.go, memory_order_acquire))
		bench_backoff(&n);
}

static inline int
tw_stopping(void)
{
	return atomic_load_explicit(&tw.stop, memory_order_relaxed);
}

/* Called by a worker when its timed part is over: wait for the others. */
static void
tw_finish(void)
{
	unsigned n = 0;

	atomic_fetch_add(&tw.stopped, 1);
	while (atomic_load_explicit(&tw.stopped, memory_order_acquire) <
	    (int)tw.nthr)
		bench_backoff(&n);
}

/*
 * Run fn(arg + t * argsize) on nthr threads for ms of wall time (from
 * when all are set up); return the wall time from the start to the last
 * join, ns.
 */
static uint64_t
tw_run(size_t nthr, void *(*fn)(void *), void *arg, size_t argsize, double ms)
{
	pthread_t *thr;
	size_t bytes = nthr * sizeof *thr;
	uint64_t t0;

	thr = map_array(bytes);
	tw.nthr = nthr;
	for (size_t t = 0; t < nthr; t++)
		xpthread_create(&thr[t], fn, (char *)arg + t * argsize);
	while (atomic_load(&tw.ready) < (int)nthr)
		nap_us(100);
	t0 = bench_now_ns();
	atomic_store_explicit(&tw.go, 1, memory_order_release);
	nap_us((long)(ms * 1000));
	atomic_store(&tw.stop, 1);
	for (size_t t = 0; t < nthr; t++)
		xpthread_join(thr[t]);
	unmap_array(thr, bytes);
	return bench_now_ns() - t0;
}

/* The per-thread result every timed worker fills in. */
struct tw_res {
	uint64_t cpu_ns, ops;
};

/* Totals over nthr results laid out argsize apart. */
static struct tw_res
tw_sum(void *arg, size_t argsize, size_t nthr)
{
	struct tw_res s = {0, 0};

	for (size_t t = 0; t < nthr; t++) {
		struct tw_res *r = (struct tw_res *)((char *)arg + t * argsize);

		s.cpu_ns += r->cpu_ns;
		s.ops += r->ops;
	}
	return s;
}

/*
 * Sample a count every WIN_MS for ms of wall time from now: the median
 * and best per-window rate, million per second (wall), as xthread does.
 */
static void
sample_windows(double ms, uint64_t (*count)(void), double *med, double *best)
{
	static double rate[XT_MAXWIN];
	int nwin = (int)(ms / XT_WIN_MS);
	uint64_t prev = count(), tprev = bench_now_ns();
	struct timespec ts0, at;

	if (nwin < 1)
		nwin = 1;
	if (nwin > XT_MAXWIN)
		nwin = XT_MAXWIN;
	*best = 0;
	clock_gettime(CLOCK_MONOTONIC, &ts0);
	for (int w = 0; w < nwin; w++) {
		long ns = (long)(ms * 1e6 / nwin * (w + 1));
		uint64_t now, cnt;

		at.tv_sec = ts0.tv_sec + (ts0.tv_nsec + ns) / 1000000000;
		at.tv_nsec = (ts0.tv_nsec + ns) % 1000000000;
		while (clock_nanosleep(
			   CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL) == EINTR)
			;
		cnt = count();
		now = bench_now_ns();
		rate[w] = (double)(cnt - prev) * 1e3 / (double)(now - tprev);
		*best = rate[w] > *best ? rate[w] : *best;
		prev = cnt;
		tprev = now;
	}
	*med = bench_median(rate, nwin);
}

/* ---- large ---- */

static void
test_large(void)
{
	size_t live = opt.live ? opt.live : 20,
	       steps = opt.steps ? opt.steps : 200;
	size_t lo = (size_t)5 << 20, hi = (size_t)25 << 20, bytes = 0;
	size_t abytes = live * sizeof(char *);
	char **blk = map_array(abytes);
	uint64_t rng = opt.seed, w0, w1;
	struct rusage ru0, ru1;
	double ut, st;
	long flt;

	/* The live set, untimed: every byte written. */
	for (size_t j = 0; j < live; j++) {
		size_t sz =
		    lo + bench_rng_below(bench_rng_next(&rng), hi - lo + 1);

		blk[j] = xmalloc(sz);
		memset(blk[j], 1, sz);
	}
	bench_escape(blk);
	getrusage(RUSAGE_SELF, &ru0);
	w0 = bench_now_ns();
	for (size_t s = 0; s < steps; s++) {
		uint64_t r = bench_rng_next(&rng);
		size_t j = bench_rng_below(r, live);
		size_t sz = lo + bench_rng_below(r >> 32, hi - lo + 1);

		free(blk[j]);
		blk[j] = xmalloc(sz);
		/* Nonzero: malloc + memset(0) could become calloc. */
		memset(blk[j], (int)(s & 0x7f) | 1, sz);
		bench_escape(blk[j]);
		bytes += sz;
	}
	w1 = bench_now_ns();
	getrusage(RUSAGE_SELF, &ru1);
	ut = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e3 +
	    (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e3;
	st = (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e3 +
	    (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e3;
	flt = ru1.ru_minflt - ru0.ru_minflt;
	put_head("cpu");
	printf(",\"live\":%zu,\"steps\":%zu,\"mib_per_step\":%.3f,"
	       "\"wall_ms_per_step\":%.4f,\"user_ms_per_step\":%.4f,"
	       "\"sys_ms_per_step\":%.4f,\"cpu_ms_per_step\":%.4f,"
	       "\"minflt_per_step\":%.1f,\"majflt\":%ld,\"rss_kib\":%ld,"
	       "\"peak_kib\":%ld",
	    live, steps, (double)bytes / (double)steps / 1048576.0,
	    (double)(w1 - w0) / 1e6 / (double)steps, ut / (double)steps,
	    st / (double)steps, (ut + st) / (double)steps,
	    (double)flt / (double)steps, ru1.ru_majflt - ru0.ru_majflt,
	    status_kib("VmRSS"), status_kib("VmHWM"));
	put_end();
	for (size_t j = 0; j < live; j++)
		free(blk[j]);
	unmap_array(blk, abytes);
}

/* ---- gthread ---- */

#define GT_NSIZES 8192 /* the table of power-law sizes */
#define GT_LO	  4
#define GT_HI	  32768

static uint32_t *gt_size;

/*
 * Sizes GT_LO .. GT_HI with density proportional to 1/size^2 (inverse
 * transform: s = 1 / (1/lo - u (1/lo - 1/hi)), u uniform in [0, 1)), the
 * distribution glibc's benchtests use for this test; mean ~37 B, 1 in 4
 * above 16 B, 1 in 100 above 400 B.
 */
static void
gt_sizes_init(void)
{
	uint64_t rng = opt.seed ^ 0x6a09e667f3bcc909u;
	double a = 1.0 / GT_LO, b = 1.0 / GT_HI;

	gt_size = map_array(GT_NSIZES * sizeof *gt_size);
	for (size_t i = 0; i < GT_NSIZES; i++) {
		double u = (double)(bench_rng_next(&rng) >> 11) * 0x1p-53;
		double s = 1.0 / (a - u * (a - b));

		gt_size[i] = s < GT_LO ? GT_LO
		    : s >= GT_HI       ? GT_HI - 1
				       : (uint32_t)s;
	}
}

struct gt_thr {
	struct tw_res res; /* first: tw_sum reads it */
	size_t id;
};

static void *
gt_worker(void *varg)
{
	struct gt_thr *w = varg;
	size_t n = opt.live ? opt.live : 1024, bytes = n * sizeof(void *);
	void **slot = map_array(bytes);
	uint64_t rng = opt.seed + w->id * 0x9e3779b97f4a7c15u, c0, ops = 0;

	for (size_t j = 0; j < n; j++) {
		slot[j] =
		    xmalloc(gt_size[bench_rng_next(&rng) & (GT_NSIZES - 1)]);
		*(volatile char *)slot[j] = 0;
	}
	tw_start();
	c0 = bench_thread_cpu_ns();
	do {
		for (int k = 0; k < 64; k++) {
			uint64_t r = bench_rng_next(&rng);
			size_t j = bench_rng_below(r, n);
			char *p;

			free(slot[j]);
			p = xmalloc(gt_size[(r >> 40) & (GT_NSIZES - 1)]);
			*(volatile char *)p = (char)k;
			slot[j] = p;
		}
		ops += 64;
	} while (!tw_stopping());
	w->res.cpu_ns = bench_thread_cpu_ns() - c0;
	w->res.ops = ops;
	tw_finish();
	for (size_t j = 0; j < n; j++)
		free(slot[j]);
	unmap_array(slot, bytes);
	return NULL;
}

static void
test_gthread(void)
{
	size_t nthr = opt.threads ? opt.threads : 1;
	size_t bytes = nthr * sizeof(struct gt_thr);
	struct gt_thr *w = map_array(bytes);
	uint64_t wall, c0 = bench_cpu_ns();
	struct tw_res s;

	gt_sizes_init();
	for (size_t t = 0; t < nthr; t++)
		w[t].id = t;
	wall = tw_run(nthr, gt_worker, w, sizeof *w, opt.ms > 0 ? opt.ms : 500);
	s = tw_sum(w, sizeof *w, nthr);
	put_head("cpu");
	printf(",\"threads\":%zu,\"live\":%zu,\"ops\":%llu,\"wall_ms\":%.3f,"
	       "\"cpu_ms\":%.3f,\"process_cpu_ms\":%.3f,\"ns\":%.3f,"
	       "\"mops_wall\":%.4f",
	    nthr, opt.live ? opt.live : 1024, (unsigned long long)s.ops,
	    (double)wall / 1e6, (double)s.cpu_ns / 1e6,
	    (double)(bench_cpu_ns() - c0) / 1e6,
	    (double)s.cpu_ns / (double)(s.ops ? s.ops : 1),
	    (double)s.ops * 1e3 / (double)wall);
	put_end();
	unmap_array(w, bytes);
	unmap_array(gt_size, GT_NSIZES * sizeof *gt_size);
}

/* ---- alloctest ---- */

struct at_thr {
	struct tw_res res; /* ops = calls, malloc or free */
	size_t id;
	uint64_t mallocs, frees;
};

static void *
at_worker(void *varg)
{
	struct at_thr *w = varg;
	size_t cap = 1, phase, bytes;
	uint64_t rng = opt.seed + w->id * 0x9e3779b97f4a7c15u, c0;
	uint64_t head = 0, tail = 0, nm = 0, nf = 0, k = 0;
	void **ring;

	while (cap < (opt.live ? opt.live : (size_t)1 << 17))
		cap <<= 1;
	bytes = cap * sizeof(void *);
	ring = map_array(bytes);
	phase = cap / 4;
	for (; tail < cap / 2; tail++) {
		ring[tail] = xmalloc(skew_size(bench_rng_next(&rng), 8, 4096));
		*(volatile char *)ring[tail] = 0;
	}
	tw_start();
	c0 = bench_thread_cpu_ns();
	do {
		/* Phase k: growing (3 in 4 calls malloc) on even k, shrinking
		 * (1 in 4) on odd; frees oldest first, newest first or at
		 * random, the order changing every phase (k mod 3). */
		unsigned grow = k % 2 == 0 ? 3 : 1, order = (unsigned)(k % 3);

		for (size_t i = 0; i < phase; i++) {
			uint64_t r = bench_rng_next(&rng), count = tail - head;
			void *p;

			if (count < cap / 8 ||
			    (count < cap && (r & 3) < grow)) {
				p = xmalloc(
				    skew_size(bench_rng_next(&rng), 8, 4096));
				*(volatile char *)p = (char)i;
				ring[tail++ & (cap - 1)] = p;
				nm++;
				continue;
			}
			if (order == 0) {
				p = ring[head++ & (cap - 1)];
			} else if (order == 1) {
				p = ring[--tail & (cap - 1)];
			} else {
				uint64_t j =
				    head + bench_rng_below(r >> 2, count);

				p = ring[j & (cap - 1)];
				ring[j & (cap - 1)] = ring[head++ & (cap - 1)];
			}
			free(p);
			nf++;
		}
		k++;
	} while (!tw_stopping());
	w->res.cpu_ns = bench_thread_cpu_ns() - c0;
	w->res.ops = nm + nf;
	w->mallocs = nm;
	w->frees = nf;
	tw_finish();
	for (; head != tail; head++)
		free(ring[head & (cap - 1)]);
	unmap_array(ring, bytes);
	return NULL;
}

static void
test_alloctest(void)
{
	size_t nthr = opt.threads ? opt.threads : 1;
	size_t bytes = nthr * sizeof(struct at_thr);
	struct at_thr *w = map_array(bytes);
	uint64_t wall;
	struct tw_res s;

	for (size_t t = 0; t < nthr; t++)
		w[t].id = t;
	wall =
	    tw_run(nthr, at_worker, w, sizeof *w, opt.ms > 0 ? opt.ms : 1000);
	s = tw_sum(w, sizeof *w, nthr);
	put_head("cpu");
	printf(",\"threads\":%zu,\"live_max\":%zu,\"calls\":%llu,"
	       "\"wall_ms\":%.3f,\"cpu_ms\":%.3f,\"ns\":%.3f,\"rss_kib\":%ld,"
	       "\"peak_kib\":%ld",
	    nthr, opt.live ? opt.live : (size_t)1 << 17,
	    (unsigned long long)s.ops, (double)wall / 1e6,
	    (double)s.cpu_ns / 1e6,
	    (double)s.cpu_ns / (double)(s.ops ? s.ops : 1), status_kib("VmRSS"),
	    status_kib("VmHWM"));
	put_end();
	unmap_array(w, bytes);
}

/* ---- mix ---- */

#define MIX_SHORT 8    /* freed 8 allocations later (a ring) */
#define MIX_MED	  512  /* freed 512 allocations later */
#define MIX_LONG  4096 /* a random one of 4096 replaced */
#define MIX_INBOX 1024 /* remote frees in flight to one thread */
#define MIX_POLL  32   /* a thread empties its inbox every 32 mallocs */

struct mix_thr {
	struct tw_res res; /* ops = mallocs */
	size_t id;
	uint64_t sent, received;
	/* The inbox: objects the previous thread made, for this one to free
	 * (single producer, single consumer). */
	_Alignas(64) _Atomic uint64_t in_tail;
	_Alignas(64) _Atomic uint64_t in_head;
	_Alignas(64) void *in[MIX_INBOX];
};

static struct mix_thr *mix_w;

/*
 * A server-like size: 55 % 16..127 B, 30 % 128..511, 12 % 512..4095,
 * 2.5 % 4..32 KiB, 0.5 % 64..256 KiB; uniform inside each band (mean
 * ~1.7 KiB, most of the bytes in the rare large ones).
 */
static inline size_t
mix_size(uint64_t r)
{
	static const struct {
		unsigned cum; /* per mille, cumulative */
		size_t lo, hi;
	} band[] = {
	    {550, 16, 128},
	    {850, 128, 512},
	    {970, 512, 4096},
	    {995, 4096, 32768},
	    {1000, 65536, 262144},
	};
	size_t u = bench_rng_below(r, 1000), i = 0;

	while (u >= band[i].cum)
		i++;
	return band[i].lo + bench_rng_below(r >> 32, band[i].hi - band[i].lo);
}

static size_t
mix_drain(struct mix_thr *w)
{
	uint64_t head = atomic_load_explicit(&w->in_head, memory_order_relaxed);
	uint64_t tail = atomic_load_explicit(&w->in_tail, memory_order_acquire);
	size_t n = (size_t)(tail - head);

	for (; head != tail; head++)
		free(w->in[head % MIX_INBOX]);
	atomic_store_explicit(&w->in_head, head, memory_order_release);
	return n;
}

/* Hand p to thread `to` to free; 0 if its inbox is full. */
static int
mix_send(struct mix_thr *to, void *p)
{
	uint64_t tail =
	    atomic_load_explicit(&to->in_tail, memory_order_relaxed);

	if (tail - atomic_load_explicit(&to->in_head, memory_order_acquire) >=
	    MIX_INBOX)
		return 0;
	to->in[tail % MIX_INBOX] = p;
	atomic_store_explicit(&to->in_tail, tail + 1, memory_order_release);
	return 1;
}

static void *
mix_worker(void *varg)
{
	struct mix_thr *w = varg;
	struct mix_thr *next = &mix_w[(w->id + 1) % tw.nthr];
	size_t bytes = (MIX_SHORT + MIX_MED + MIX_LONG) * sizeof(void *);
	void **shrt = map_array(bytes), **med = shrt + MIX_SHORT;
	void **lng = med + MIX_MED;
	uint64_t rng = opt.seed + w->id * 0x9e3779b97f4a7c15u, c0, n = 0;
	uint64_t si = 0, mi = 0;

	for (size_t j = 0; j < MIX_SHORT + MIX_MED + MIX_LONG; j++) {
		size_t sz = mix_size(bench_rng_next(&rng));

		shrt[j] = xmalloc(sz);
		memset(shrt[j], 1, sz < 64 ? sz : 64);
	}
	tw_start();
	c0 = bench_thread_cpu_ns();
	do {
		for (int k = 0; k < MIX_POLL; k++) {
			uint64_t r = bench_rng_next(&rng),
				 d = bench_rng_below(r, 100);
			size_t sz = mix_size(bench_rng_next(&rng));
			void **slot, *old;
			char *p = xmalloc(sz);

			/* Written as a request's header would be. */
			memset(p, (int)(n & 0x7f) | 1, sz < 64 ? sz : 64);
			n++;
			if (d >= 95 && tw.nthr > 1) {
				if (mix_send(next, p)) {
					w->sent++;
					continue;
				}
				d = 0; /* inbox full: short-lived here */
			}
			if (d < 65)
				slot = &shrt[si++ % MIX_SHORT];
			else if (d < 85)
				slot = &med[mi++ % MIX_MED];
			else
				slot = &lng[bench_rng_below(r >> 32, MIX_LONG)];
			old = *slot;
			*slot = p;
			free(old);
		}
		w->received += mix_drain(w);
	} while (!tw_stopping());
	w->res.cpu_ns = bench_thread_cpu_ns() - c0;
	w->res.ops = n;
	tw_finish();
	w->received += mix_drain(w);
	for (size_t j = 0; j < MIX_SHORT + MIX_MED + MIX_LONG; j++)
		free(shrt[j]);
	unmap_array(shrt, bytes);
	return NULL;
}

static void
test_mix(void)
{
	size_t nthr = opt.threads ? opt.threads : 2;
	size_t bytes = nthr * sizeof(struct mix_thr);
	uint64_t wall, sent = 0;
	struct tw_res s;

	mix_w = map_array(bytes);
	for (size_t t = 0; t < nthr; t++)
		mix_w[t].id = t;
	tw.nthr = nthr; /* read by the workers before tw_run sets it */
	wall = tw_run(
	    nthr, mix_worker, mix_w, sizeof *mix_w, opt.ms > 0 ? opt.ms : 1000);
	s = tw_sum(mix_w, sizeof *mix_w, nthr);
	for (size_t t = 0; t < nthr; t++)
		sent += mix_w[t].sent;
	put_head("cpu");
	printf(",\"threads\":%zu,\"mallocs\":%llu,\"remote\":%llu,"
	       "\"wall_ms\":%.3f,\"cpu_ms\":%.3f,\"ns\":%.3f,"
	       "\"mops_per_cpu_s\":%.4f,\"mops_wall\":%.4f,\"rss_kib\":%ld,"
	       "\"peak_kib\":%ld",
	    nthr, (unsigned long long)s.ops, (unsigned long long)sent,
	    (double)wall / 1e6, (double)s.cpu_ns / 1e6,
	    (double)s.cpu_ns / (double)(s.ops ? s.ops : 1),
	    (double)s.ops * 1e3 / (double)(s.cpu_ns ? s.cpu_ns : 1),
	    (double)s.ops * 1e3 / (double)wall, status_kib("VmRSS"),
	    status_kib("VmHWM"));
	put_end();
	unmap_array(mix_w, bytes);
}

/* ---- prodcons ---- */

static struct {
	struct ring *rings;
	size_t ncons;
	int cpus[CPU_SETSIZE], ncpu;
	_Alignas(64) _Atomic uint64_t produced;
} pc;

static void
pc_start(int slot)
{
	unsigned n = 0;

	pin_self(pc.cpus[slot % pc.ncpu]);
	atomic_fetch_add(&xt_ready, 1);
	while (!atomic_load_explicit(&xt_go, memory_order_acquire))
		bench_backoff(&n);
}

/* Put p in ring k (waiting for room); publish when told to. */
static void
pc_put(size_t k, size_t *tails, size_t *heads, void *p, int publish)
{
	struct ring *r = &pc.rings[k];
	unsigned n = 0;

	while (tails[k] - heads[k] >= RING) {
		heads[k] = atomic_load_explicit(&r->head, memory_order_acquire);
		if (tails[k] - heads[k] >= RING)
			bench_backoff(&n);
	}
	r->slot[tails[k] % RING] = p;
	tails[k]++;
	if (publish || tails[k] % RING_PUB == 0)
		atomic_store_explicit(&r->tail, tails[k], memory_order_release);
}

static void *
pc_producer(void *varg)
{
	size_t tails[XT_MAXT] = {0}, heads[XT_MAXT] = {0}, k = 0;
	uint64_t rng = opt.seed, count = 0;

	(void)varg;
	pc_start(0);
	while (!atomic_load_explicit(&xt_stop, memory_order_relaxed)) {
		for (int i = 0; i < RING_PUB; i++) {
			char *p =
			    xmalloc(skew_size(bench_rng_next(&rng), 16, 256));
			struct ring *r = &pc.rings[k];

			*(volatile char *)p = 1;
			/* A full ring: publish it, try the next one. */
			if (tails[k] - heads[k] >= RING) {
				heads[k] = atomic_load_explicit(
				    &r->head, memory_order_acquire);
				if (tails[k] - heads[k] >= RING) {
					atomic_store_explicit(&r->tail,
					    tails[k], memory_order_release);
					k = (k + 1) % pc.ncons;
				}
			}
			pc_put(k, tails, heads, p, 0);
		}
		count += RING_PUB;
		if (count % XT_TICK == 0)
			atomic_store_explicit(
			    &pc.produced, count, memory_order_relaxed);
		/* The next consumer: RING_PUB objects to each in turn. */
		atomic_store_explicit(
		    &pc.rings[k].tail, tails[k], memory_order_release);
		k = (k + 1) % pc.ncons;
	}
	for (size_t c = 0; c < pc.ncons; c++)
		pc_put(c, tails, heads, NULL, 1);
	atomic_store(&pc.produced, count);
	return NULL;
}

static void *
pc_consumer(void *varg)
{
	struct ring *r = varg;

	/* CPU slots 1.. (round robin): the producer has slot 0 to itself
	 * when there are at least 2 CPUs. */
	pc_start(pc.ncpu > 1 ? 1 + r->id % (pc.ncpu - 1) : 0);
	ring_drain(r);
	return NULL;
}

static uint64_t
pc_count(void)
{
	return atomic_load_explicit(&pc.produced, memory_order_relaxed);
}

static void
test_prodcons(void)
{
	size_t nc = opt.threads ? opt.threads : 2;
	double ms = opt.ms > 0 ? opt.ms : 1000, med, best;
	pthread_t prod, cons[XT_MAXT];
	uint64_t t0, t1, c0, c1, total;

	if (nc > XT_MAXT)
		die("prodcons: --threads", EINVAL);
	pc.ncons = nc;
	pc.ncpu = allowed_cpus(pc.cpus, CPU_SETSIZE);
	pc.rings = map_array(nc * sizeof *pc.rings);
	for (size_t i = 0; i < nc; i++) {
		pc.rings[i].id = (int)i;
		xpthread_create(&cons[i], pc_consumer, &pc.rings[i]);
	}
	xpthread_create(&prod, pc_producer, NULL);
	while (atomic_load(&xt_ready) < (int)(nc + 1))
		nap_us(100);
	c0 = bench_cpu_ns();
	t0 = bench_now_ns();
	atomic_store_explicit(&xt_go, 1, memory_order_release);
	sample_windows(ms, pc_count, &med, &best);
	atomic_store(&xt_stop, 1);
	xpthread_join(prod);
	for (size_t i = 0; i < nc; i++)
		xpthread_join(cons[i]);
	t1 = bench_now_ns();
	c1 = bench_cpu_ns();
	total = atomic_load(&pc.produced);
	unmap_array(pc.rings, nc * sizeof *pc.rings);
	put_head("wall");
	printf(",\"producers\":1,\"consumers\":%zu,\"threads\":%zu,"
	       "\"objects\":%llu,\"wall_ms\":%.3f,\"cpu_ms\":%.3f,"
	       "\"mops\":%.4f,\"mops_win_median\":%.4f,\"mops_win_best\":%.4f",
	    nc, nc + 1, (unsigned long long)total, (double)(t1 - t0) / 1e6,
	    (double)(c1 - c0) / 1e6, (double)total * 1e3 / (double)(t1 - t0),
	    med, best);
	put_end();
}

/* ---- cachescratch ---- */

#define CS_ROUNDS 100 /* malloc/write/free rounds per worker and phase */

static struct {
	size_t nthr, size, iters;
	int cpus[CPU_SETSIZE], ncpu;
	_Atomic int ready, go;
	char *given[FS_MAXT], *own[FS_PHASES][FS_MAXT];
	uint64_t start[FS_PHASES][FS_MAXT], end[FS_PHASES][FS_MAXT];
	uint64_t cpu[FS_PHASES][FS_MAXT];
} cs;

static _Alignas(128) char cs_apart[FS_MAXT][128];

/*
 * n increments over the bytes of p (size bytes), in turn.  Bytes, not one
 * word: a load and store to one address over and over is served by the
 * core's store forwarding and shows no false sharing on this machine.
 */
static void
cs_write(char *p, size_t size, size_t n)
{
	volatile char *c = p;
	size_t j = 0;

	for (size_t i = 0; i < n; i++) {
		c[j] = (char)(c[j] + 1);
		if (++j == size)
			j = 0;
	}
}

static void *
cs_worker(void *varg)
{
	size_t t = (size_t)(uintptr_t)varg;
	uint64_t c0;

	pin_self(cs.cpus[t % (size_t)cs.ncpu]);
	memset(cs_apart[t], 0, sizeof cs_apart[t]);
	for (int ph = 0; ph < FS_PHASES; ph++) {
		unsigned n = 0;

		atomic_fetch_add(&cs.ready, 1);
		while (atomic_load_explicit(&cs.go, memory_order_acquire) <= ph)
			bench_backoff(&n);
		c0 = bench_thread_cpu_ns();
		cs.start[ph][t] = bench_now_ns();
		if (ph % 2 == 0) {
			cs_write(cs_apart[t], cs.size, cs.iters);
		} else {
			/* Free what the main thread handed over, then
			 * allocate (likely the same) and write, in rounds. */
			free(cs.given[t]);
			for (int r = 0; r < CS_ROUNDS; r++) {
				char *p = xmalloc(cs.size);

				/* Nonzero: malloc + memset(0) is compiled
				 * into calloc, which glibc serves without its
				 * tcache. */
				memset(p, 1, cs.size);
				if (r == 0)
					cs.own[ph][t] = p;
				cs_write(p, cs.size, cs.iters / CS_ROUNDS);
				free(p);
			}
		}
		cs.end[ph][t] = bench_now_ns();
		cs.cpu[ph][t] = bench_thread_cpu_ns() - c0;
	}
	return NULL;
}

static void
test_cachescratch(void)
{
	pthread_t thr[FS_MAXT];
	double best[2] = {0, 0}, ph_ms[2][FS_ROUNDS], med[2];
	double ph_cpu[2][FS_ROUNDS], cpu[2];
	size_t shared = 0, same = 0;
	uintptr_t given[FS_PHASES][FS_MAXT];

	cs.nthr = opt.threads ? opt.threads : 2;
	cs.size = opt.size ? opt.size : 8;
	cs.iters = opt.iters;
	cs.ncpu = allowed_cpus(cs.cpus, CPU_SETSIZE);
	if (cs.nthr > FS_MAXT)
		die("cachescratch: --threads", EINVAL);
	if (cs.size > sizeof cs_apart[0])
		die("cachescratch: --size", EINVAL);
	for (size_t t = 0; t < cs.nthr; t++)
		xpthread_create(&thr[t], cs_worker, (void *)(uintptr_t)t);
	for (int ph = 0; ph < FS_PHASES; ph++) {
		while (
		    atomic_load(&cs.ready) < (int)((size_t)(ph + 1) * cs.nthr))
			nap_us(200);
		if (ph % 2 == 1) {
			/* One after another from this thread: neighbours. */
			for (size_t t = 0; t < cs.nthr; t++) {
				cs.given[t] = xmalloc(cs.size);
				memset(cs.given[t], 1, cs.size);
			}
		}
		for (size_t t = 0; ph % 2 == 1 && t < cs.nthr; t++)
			given[ph][t] = (uintptr_t)cs.given[t];
		atomic_store_explicit(&cs.go, ph + 1, memory_order_release);
	}
	for (size_t t = 0; t < cs.nthr; t++)
		xpthread_join(thr[t]);
	for (int ph = 0; ph < FS_PHASES; ph++) {
		uint64_t s = UINT64_MAX, e = 0;
		double ms;

		for (size_t t = 0; t < cs.nthr; t++) {
			s = cs.start[ph][t] < s ? cs.start[ph][t] : s;
			e = cs.end[ph][t] > e ? cs.end[ph][t] : e;
		}
		ms = (double)(e - s) / 1e6;
		ph_ms[ph % 2][ph / 2] = ms;
		ph_cpu[ph % 2][ph / 2] = 0;
		for (size_t t = 0; t < cs.nthr; t++)
			ph_cpu[ph % 2][ph / 2] += (double)cs.cpu[ph][t] / 1e6;
		if (best[ph % 2] == 0 || ms < best[ph % 2])
			best[ph % 2] = ms;
	}
	/* Medians, not the least as in falseshare: where the objects land
	 * moves from one alloc phase to the next (a pair straddles a line
	 * boundary in one, shares a line in the next), and the least would
	 * pick the phase without sharing. */
	med[0] = bench_median(ph_ms[0], FS_ROUNDS);
	med[1] = bench_median(ph_ms[1], FS_ROUNDS);
	cpu[0] = bench_median(ph_cpu[0], FS_ROUNDS);
	cpu[1] = bench_median(ph_cpu[1], FS_ROUNDS);
	/* Each alloc phase's first own objects: the one handed over again?
	 * Sharing a 64-byte line with another worker's? */
	for (int ph = 1; ph < FS_PHASES; ph += 2)
		for (size_t t = 0; t < cs.nthr; t++) {
			uintptr_t a = (uintptr_t)cs.own[ph][t];
			int sh = 0;

			for (size_t u = 0; u < cs.nthr; u++)
				if (u != t &&
				    a / 64 == (uintptr_t)cs.own[ph][u] / 64)
					sh = 1;
			shared += (size_t)sh;
			same += a == given[ph][t];
		}
	put_head("wall");
	printf(",\"threads\":%zu,\"size\":%zu,\"iters\":%zu,\"rounds\":%d,"
	       "\"base_ms\":%.3f,\"alloc_ms\":%.3f,\"base_min_ms\":%.3f,"
	       "\"alloc_min_ms\":%.3f,\"slowdown\":%.4f,\"base_cpu_ms\":%.3f,"
	       "\"alloc_cpu_ms\":%.3f,\"slowdown_cpu\":%.4f,"
	       "\"objects\":%zu,\"shared\":%zu,\"reused_given\":%zu",
	    cs.nthr, cs.size, cs.iters, CS_ROUNDS, med[0], med[1], best[0],
	    best[1], med[1] / med[0], cpu[0], cpu[1], cpu[1] / cpu[0],
	    cs.nthr * FS_ROUNDS, shared, same);
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
    {"large", test_large},
    {"gthread", test_gthread},
    {"alloctest", test_alloctest},
    {"mix", test_mix},
    {"prodcons", test_prodcons},
    {"cachescratch", test_cachescratch},
    {"probe", test_probe},
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s TEST [--size S] [--batch B] [--ms T] [--live N]\n"
	    "       [--threads N] [--iters N] [--total N] [--conc C] [--mb M]\n"
	    "       [--steps N] [--idle-ms T] [--period-ms P] [--seed X]\n"
	    "tests: pair random xthread falseshare churn frag idle large\n"
	    "       gthread alloctest mix prodcons cachescratch probe\n",
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
		else if (strcmp(o, "--steps") == 0)
			opt.steps = (size_t)num(v);
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
