/*
 * bench_pool -- cost of one get + one put of a fixed-size object through
 * pool_cache(9), pool(9), vmem(9) with and without quantum caches, and
 * glibc malloc/free, for objects of 16, 64, 256, 1024 and 4096 bytes;
 * then the throughput of pool_cache and malloc at 64 bytes with 1, 2, 4
 * and 8 threads.
 *
 * What is measured, and why:
 *
 *  - The loop.  Each thread keeps a window of WINDOW (64) live objects.
 *    One iteration draws a slot of the window at random (xorshift, the
 *    same sequence for every allocator), gets a new object, stores one
 *    8-byte word into it (as a caller initialising it would), puts the
 *    object that was in the slot, and keeps the new one there.  So frees
 *    do not come back in LIFO order and the object just freed is not the
 *    one allocated next, unlike a get-put of one object; the live set is
 *    small enough to stay in L1/L2, so what is timed is the allocators'
 *    own paths, not cache misses on the objects.  One "pair" = one get +
 *    one put (+ the random draw and the store, the same for everyone);
 *    reported ns = loop time / iterations.
 *
 *  - The allocators, per size S:
 *      pool_cache  pool_cache_init(S, align 0, no ctor/dtor);
 *                  pool_cache_get(PR_WAITOK) / pool_cache_put
 *      pool        pool_init(S, align 0, flags 0, default allocator);
 *                  pool_get(PR_WAITOK) / pool_put
 *      vmem+qc     an arena with quantum S and qcache_max 16 x S, one
 *                  static span of 2^40 at 2^40; vmem_alloc(S, VM_NOSLEEP |
 *                  VM_INSTANTFIT) / vmem_free: served by its quantum cache
 *      vmem        the same arena with qcache_max 0: every call goes to the
 *                  freelists and the busy hash
 *      malloc      glibc malloc(S) / free
 *    vmem addresses are integers (the span is never mapped), so the two
 *    vmem columns skip the 8-byte store.
 *
 *  - Each cell: a calibration run (also the warm-up) picks the iteration
 *    count so that one run takes about target_ms; then `reps` timed runs
 *    (at least 5); the median is printed.  The window is filled before and
 *    emptied after each run, outside the timing.
 *
 *  - Threaded process.  glibc's mutexes skip their atomic instructions
 *    while a process has never created a thread, which flatters every
 *    lock-based allocator (kmem's per-CPU and arena locks are pthread
 *    mutexes); glibc malloc's per-thread cache takes no lock either way.
 *    So the 64-byte pool_cache and malloc cells are measured once in that
 *    state and printed on their own line; then one thread is created and
 *    joined, and the table and everything after it are measured in a
 *    process that has threads, as any program using per-CPU caches does.
 *
 *  - Ratios per size: pool_cache ns / malloc ns (goal: at most 2), and
 *    uncached vmem ns / vmem+qc ns (goal: at least 3).
 *
 *  - Throughput: T threads (1, 2, 4, 8) share one 64-byte pool_cache (or
 *    call malloc), each running the loop above for a fixed number of
 *    iterations (about 2 x target_ms of single-thread work) after a
 *    barrier; each thread reads the clock itself after the barrier and
 *    after its loop (its window fill and drain, 128 calls, included), and
 *    the rate is total pairs / (last end - first start), in million
 *    pairs per second, median of `reps` runs.  With more threads than
 *    CPUs (nproc is printed) the extra threads measure lock contention,
 *    preemption and migration between CPUs, not parallel speed-up: a
 *    pool_cache thread takes the lock of the CPU it last read, and
 *    threads sharing a CPU share that lock.
 *
 * Usage: bench_pool [--quick] [--reps R] [--ms T]
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "bench.h"

#define bench_pool_die(what, err) bench_die("bench_pool", (what), (err))

#define WINDOW	  64 /* live objects per thread (a power of two) */
#define MAX_REPS  31
#define NSIZES	  5
#define MAX_THR	  8
#define THR_SIZE  64 /* object size of the throughput test */
#define SPAN_BASE ((vmem_addr_t)1 << 40)
#define SPAN_SIZE ((vmem_size_t)1 << 40)

static const size_t obj_size[NSIZES] = {16, 64, 256, 1024, 4096};
static const int thr_count[] = {1, 2, 4, 8};
#define NTHR ((int)(sizeof(thr_count) / sizeof(thr_count[0])))

enum kind { K_PC, K_POOL, K_VMQC, K_VM, K_MALLOC, NKINDS };
static const char *const kind_name[NKINDS] = {
    "pool_cache", "pool", "vmem+qc", "vmem", "malloc"};

/* Everything one size needs. */
struct target {
	size_t size;
	pool_cache_t pc;
	struct pool pool;
	vmem_t *vmqc; /* qcache_max = 16 x size */
	vmem_t *vm;   /* qcache_max = 0 */
};

/* ---- helpers ---- */

static inline uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* Keep the compiler from eliding an allocation it can see through. */
static inline void
escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* ---- one get and one put, per allocator ---- */

static inline void *
get_one(enum kind k, struct target *t)
{
	vmem_addr_t a;
	void *p;
	int rc;

	switch (k) {
	case K_PC:
		p = pool_cache_get(t->pc, PR_WAITOK);
		break;
	case K_POOL:
		p = pool_get(&t->pool, PR_WAITOK);
		break;
	case K_VMQC:
	case K_VM:
		rc = vmem_alloc(k == K_VMQC ? t->vmqc : t->vm, t->size,
		    VM_NOSLEEP | VM_INSTANTFIT, &a);
		if (__builtin_expect(rc != 0, 0))
			bench_pool_die("vmem_alloc", rc);
		return (void *)a;
	default:
		p = malloc(t->size);
		break;
	}
	if (__builtin_expect(p == NULL, 0))
		bench_pool_die(kind_name[k], ENOMEM);
	return p;
}

static inline void
put_one(enum kind k, struct target *t, void *p)
{
	switch (k) {
	case K_PC:
		pool_cache_put(t->pc, p);
		break;
	case K_POOL:
		pool_put(&t->pool, p);
		break;
	case K_VMQC:
		vmem_free(t->vmqc, (vmem_addr_t)p, t->size);
		break;
	case K_VM:
		vmem_free(t->vm, (vmem_addr_t)p, t->size);
		break;
	default:
		free(p);
		break;
	}
}

/*
 * The timed loop for one allocator (see the header); k is a constant in
 * each instantiation below, so the switches fold away.
 */
static inline __attribute__((always_inline)) double
loop(enum kind k, struct target *t, size_t iters, uint64_t seed)
{
	void *live[WINDOW];
	uint64_t t0, t1, r = seed;
	const int touch = k != K_VMQC && k != K_VM;

	for (size_t i = 0; i < WINDOW; i++) {
		live[i] = get_one(k, t);
		if (touch)
			*(volatile uint64_t *)live[i] = i;
	}
	t0 = bench_now_ns();
	for (size_t i = 0; i < iters; i++) {
		size_t slot = (size_t)(rng_next(&r) >> 32) & (WINDOW - 1);
		void *n = get_one(k, t);

		if (touch)
			*(uint64_t *)n = i;
		escape(n);
		put_one(k, t, live[slot]);
		live[slot] = n;
	}
	t1 = bench_now_ns();
	for (size_t i = 0; i < WINDOW; i++)
		put_one(k, t, live[i]);
	return (double)(t1 - t0) / (double)iters;
}

static double
run_loop(enum kind k, struct target *t, size_t iters, uint64_t seed)
{
	switch (k) {
	case K_PC:
		return loop(K_PC, t, iters, seed);
	case K_POOL:
		return loop(K_POOL, t, iters, seed);
	case K_VMQC:
		return loop(K_VMQC, t, iters, seed);
	case K_VM:
		return loop(K_VM, t, iters, seed);
	default:
		return loop(K_MALLOC, t, iters, seed);
	}
}

/* Calibrate, then the median of "reps" runs of about target_ms each. */
static double
measure(enum kind k, struct target *t, int reps, double target_ms)
{
	double v[MAX_REPS], per;
	size_t iters = 1024;

	for (;;) {
		per = run_loop(k, t, iters, 0x9e3779b97f4a7c15u);
		if (per * (double)iters >= 2e6 || iters >= ((size_t)1 << 26))
			break;
		iters *= 4;
	}
	iters = (size_t)(target_ms * 1e6 / per);
	if (iters < 1024)
		iters = 1024;
	for (int i = 0; i < reps; i++)
		v[i] = run_loop(k, t, iters, 0x9e3779b97f4a7c15u);
	return bench_median(v, reps);
}

/* ---- threads ---- */

struct thr_arg {
	enum kind kind;
	struct target *t;
	size_t iters;
	uint64_t seed;
	pthread_barrier_t *bar;
	uint64_t start, end; /* ns, taken by the thread itself */
};

static void *
thr_main(void *arg)
{
	struct thr_arg *a = arg;

	pthread_barrier_wait(a->bar);
	a->start = bench_now_ns();
	(void)run_loop(a->kind, a->t, a->iters, a->seed);
	a->end = bench_now_ns();
	return NULL;
}

static void *
thr_nop(void *arg)
{
	return arg;
}

/* One run: n threads of "iters" pairs; million pairs per second, total. */
static double
thr_run(enum kind k, struct target *t, int n, size_t iters)
{
	pthread_t tid[MAX_THR];
	struct thr_arg arg[MAX_THR];
	pthread_barrier_t bar;
	uint64_t first, last;
	int rc;

	pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		arg[i].kind = k;
		arg[i].t = t;
		arg[i].iters = iters;
		arg[i].seed = 0x9e3779b97f4a7c15u * (uint64_t)(i + 1);
		arg[i].bar = &bar;
		if ((rc = pthread_create(&tid[i], NULL, thr_main, &arg[i])) !=
		    0)
			bench_pool_die("pthread_create", rc);
	}
	pthread_barrier_wait(&bar);
	for (int i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&bar);
	/* Wall time: first start to last end (main may be descheduled). */
	first = arg[0].start;
	last = arg[0].end;
	for (int i = 1; i < n; i++) {
		if (arg[i].start < first)
			first = arg[i].start;
		if (arg[i].end > last)
			last = arg[i].end;
	}
	return (double)n * (double)iters / (double)(last - first) * 1e3;
}

/* ---- set-up and checks ---- */

static void
target_init(struct target *t, size_t size)
{
	char name[32];

	memset(t, 0, sizeof(*t));
	t->size = size;
	snprintf(name, sizeof name, "bench-pc-%zu", size);
	t->pc = pool_cache_init(
	    size, 0, 0, 0, name, NULL, IPL_NONE, NULL, NULL, NULL);
	snprintf(name, sizeof name, "bench-pool-%zu", size);
	pool_init(&t->pool, size, 0, 0, 0, name, NULL, IPL_NONE);
	snprintf(name, sizeof name, "bench-qc-%zu", size);
	t->vmqc = vmem_create(name, SPAN_BASE, SPAN_SIZE, size, NULL, NULL,
	    NULL, 16 * size, VM_SLEEP, IPL_NONE);
	if (t->vmqc == NULL)
		bench_pool_die("vmem_create (qcache)", errno);
	snprintf(name, sizeof name, "bench-vm-%zu", size);
	t->vm = vmem_create(name, SPAN_BASE, SPAN_SIZE, size, NULL, NULL, NULL,
	    0, VM_SLEEP, IPL_NONE);
	if (t->vm == NULL)
		bench_pool_die("vmem_create", errno);
}

/* Nothing may be left out after the runs; 1 and a line if something is. */
static int
target_check(struct target *t)
{
	struct kmem_pool_stats ps, cs;
	struct kmem_vmem_stats vs;
	int bad = 0;

	kmem_pool_stats(&t->pool, &ps);
	kmem_pool_cache_stats(t->pc, &cs);
	memset(&vs, 0, sizeof(vs));
	vs.vs_size = sizeof(vs);
	kmem_vmem_stats(t->vm, &vs);
	if (ps.ps_nout != 0 || cs.ps_nout != cs.ps_cached_objects ||
	    vs.vs_inuse != 0) {
		printf("warning: %zu B: items out after the runs: pool %u, "
		       "cache %u (%lu cached), vmem %zu bytes\n",
		    t->size, ps.ps_nout, cs.ps_nout, cs.ps_cached_objects,
		    (size_t)vs.vs_inuse);
		bad = 1;
	}
	return bad;
}

static void
target_destroy(struct target *t)
{
	pool_cache_destroy(t->pc);
	pool_destroy(&t->pool);
	vmem_destroy(t->vmqc);
	vmem_destroy(t->vm);
}

/* ---- main ---- */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: bench_pool [--quick] [--reps R] [--ms T]\n"
	    "  --quick   5 runs of ~2 ms per cell (a few seconds)\n"
	    "  --reps R  timed runs per cell, median printed (5..%d; 7)\n"
	    "  --ms T    target milliseconds per run (10)\n",
	    MAX_REPS);
	exit(2);
}

int
main(int argc, char **argv)
{
	static struct target tg[NSIZES];
	double ns[NSIZES][NKINDS], mps[NTHR][2], v[MAX_REPS];
	double worst_pc = 0, worst_qc = 1e30;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int reps = 7, bad = 0, ti = -1;
	double target_ms = 10;
	struct kmem_pool_stats cs;
	double st_pc, st_malloc;
	pthread_t tid;
	size_t iters;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			reps = 5;
			target_ms = 2;
		} else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
			reps = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc) {
			target_ms = atof(argv[++i]);
		} else {
			usage();
		}
	}
	if (reps < 5 || reps > MAX_REPS || !(target_ms > 0))
		usage();

	printf(
	    "bench_pool: ns per get+put pair, median of %d runs (~%.0f ms "
	    "each); %d live objects, a random one\n"
	    "replaced per pair, 8-byte store into each new object (not vmem: "
	    "integers); %ld CPUs (nproc)\n",
	    reps, target_ms, WINDOW, ncpu);
	for (int s = 0; s < NSIZES; s++) {
		target_init(&tg[s], obj_size[s]);
		if (obj_size[s] == THR_SIZE)
			ti = s;
	}
	/* Before any thread exists glibc's mutexes skip their atomics. */
	st_pc = measure(K_PC, &tg[ti], reps, target_ms);
	st_malloc = measure(K_MALLOC, &tg[ti], reps, target_ms);
	printf("never-threaded process (glibc's locks skip atomics), %d B: "
	       "pool_cache %.1f, malloc %.1f ns;\n"
	       "below, a thread has been created, as in any threaded program; "
	       "vmem+qc: quantum = size,\n"
	       "qcache_max = 16 x size; vmem: same, qcache_max = 0\n",
	    THR_SIZE, st_pc, st_malloc);
	if ((rc = pthread_create(&tid, NULL, thr_nop, NULL)) != 0)
		bench_pool_die("pthread_create", rc);
	pthread_join(tid, NULL);
	printf("\n");
	printf("%6s", "size");
	for (int k = 0; k < NKINDS; k++)
		printf(" %10s", kind_name[k]);
	printf(" | %9s %12s\n", "pc/malloc", "vmem/vmem+qc");
	fflush(stdout);

	for (int s = 0; s < NSIZES; s++) {
		for (int k = 0; k < NKINDS; k++)
			ns[s][k] =
			    measure((enum kind)k, &tg[s], reps, target_ms);
		bad |= target_check(&tg[s]);
		printf("%6zu", obj_size[s]);
		for (int k = 0; k < NKINDS; k++)
			printf(" %10.1f", ns[s][k]);
		printf(" | %8.2fx %11.2fx\n", ns[s][K_PC] / ns[s][K_MALLOC],
		    ns[s][K_VM] / ns[s][K_VMQC]);
		fflush(stdout);
		if (ns[s][K_PC] / ns[s][K_MALLOC] > worst_pc)
			worst_pc = ns[s][K_PC] / ns[s][K_MALLOC];
		if (ns[s][K_VM] / ns[s][K_VMQC] < worst_qc)
			worst_qc = ns[s][K_VM] / ns[s][K_VMQC];
	}

	/* Throughput at 64 B: per-thread work of about 2 x target_ms. */
	printf("\nthroughput at %d B, million pairs/s in total, median of %d; "
	       "%ld CPUs: more threads measure\n"
	       "lock contention, preemption and migration, not parallel "
	       "speed-up\n",
	    THR_SIZE, reps, ncpu);
	printf(
	    "%7s %10s %10s\n", "threads", kind_name[K_PC], kind_name[K_MALLOC]);
	for (int n = 0; n < NTHR; n++) {
		for (int c = 0; c < 2; c++) {
			enum kind k = c == 0 ? K_PC : K_MALLOC;

			iters = (size_t)(2 * target_ms * 1e6 / ns[ti][k]);
			(void)thr_run(k, &tg[ti], thr_count[n], iters / 4);
			for (int r = 0; r < reps; r++)
				v[r] = thr_run(k, &tg[ti], thr_count[n], iters);
			mps[n][c] = bench_median(v, reps);
		}
		printf(
		    "%7d %10.1f %10.1f\n", thr_count[n], mps[n][0], mps[n][1]);
		fflush(stdout);
	}
	kmem_pool_cache_stats(tg[ti].pc, &cs);
	printf("%d B cache after it: CPU layer hit %.2f%%, depot hit %.1f%% "
	       "of %lu, %lu contended, group size %u\n",
	    THR_SIZE,
	    100.0 * (double)cs.ps_cpuhit /
		(double)(cs.ps_cpuhit + cs.ps_cpumiss + !cs.ps_cpuhit),
	    100.0 * (double)cs.ps_depothit /
		(double)(cs.ps_depothit + cs.ps_depotmiss + !cs.ps_depothit),
	    cs.ps_depothit + cs.ps_depotmiss, cs.ps_contended, cs.ps_groupsize);

	printf("goal pool_cache within 2x of malloc/free at every size: %s "
	       "(worst %.2fx)\n",
	    worst_pc <= 2 ? "yes" : "NO", worst_pc);
	printf("goal vmem+qc at least 3x faster than uncached vmem at every "
	       "size: %s (least %.2fx)\n",
	    worst_qc >= 3 ? "yes" : "NO", worst_qc);
	for (int s = 0; s < NSIZES; s++) {
		bad |= target_check(&tg[s]);
		target_destroy(&tg[s]);
	}
	return bad;
}
