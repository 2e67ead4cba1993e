/*
 * bench_kmem -- kmem_alloc/kmem_free against glibc malloc/free, jemalloc
 * (mallocx/sdallocx), tcmalloc (tc_malloc/tc_free_sized) and mimalloc
 * (mi_malloc/mi_free_size), size by size; then false sharing between two
 * threads' objects.
 *
 * What is measured, and why:
 *
 *  - Sizes 16, 32, ..., 16384 (kmem's pool_cache size classes) and 32768,
 *    65536 (kmem's large path: page-rounded segments of the page arena,
 *    served by its quantum caches up to 16 pages).  Every allocator is
 *    called with the size, and frees with it where its API takes one
 *    (kmem_free, sdallocx, tc_free_sized, mi_free_size; glibc 2.36 has no
 *    free_sized, so plain free).  Each call goes through a function
 *    pointer (kmem's too), so no allocator gets a direct call the others
 *    do not: peers are dlopen'ed, and a PLT call is indirect anyway.
 *    jemalloc's initial-exec TLS (2.6 KB) does not fit the 512 bytes
 *    glibc keeps for libraries dlopen'ed later, so its child runs again
 *    with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=16384.
 *
 *  - Tests:
 *      pair     alloc one object, write its first byte, free it; ns per
 *               pair, in CPU time (below).  The object is passed to an empty
 * asm with a memory clobber, so the loop cannot be folded away.  This is the
 *               best case of every thread/CPU cache: one object goes back
 *               and forth between the caller and the top of the cache.
 *      batch    alloc 1000 objects (first byte of each written), then free
 *               them newest first; ns per alloc+free, in CPU time.  1000
 *               is more than
 *               one magazine (kmem), tcache bin (glibc: 7 per size) or
 *               thread-cache batch holds, so the layers behind the fast
 *               path are exercised: kmem's magazine exchange with the
 *               depot, jemalloc's tcache fill/flush, glibc's arena bins.
 *      threads  "pair" in 1, 2 and 4 threads at once, each doing the same
 *               number of pairs (about --ms / 2 of one thread's work)
 *               after a barrier, after 1000 untimed pairs of its own;
 *               aggregate million pairs per second = total pairs / (last
 *               end - first start), wall time, median of 3 runs.  With
 *               more threads than CPUs (nproc is printed) the extra
 *               threads measure preemption and migration, not speed-up;
 *               on a loaded machine every column is cut by the CPU time
 *               the other processes take.
 *      falseshare  see below.
 *    Writing the first byte is what a real program does with its memory;
 *    it also makes an allocator that hands out fresh (unfaulted) pages pay
 *    the page fault, as a real program would.
 *
 *  - Process per allocator.  jemalloc and tcmalloc start threads and
 *    install process-wide state, mimalloc too; so the driver (no
 *    arguments) runs every measurement in a child: it fork/execs
 *    /proc/self/exe --one ALLOC --test T, which dlopens only that peer
 *    (libjemalloc.so.2, libtcmalloc_minimal.so.4, libmimalloc.so.2; a
 *    missing one is reported "not installed" and skipped), measures every
 *    size of test T once and writes the numbers to a pipe.  R rounds
 *    (--rounds, 5); in each round the allocators run in a rotated order
 *    (kmem first in round 1, glibc first in round 2, ...), so a burst of
 *    load on the shared machine hits different allocators.  Printed: the
 *    median over the rounds; ratios are of those medians.
 *
 *  - In a child, each pair/batch cell is: a calibration run (also the
 *    warm-up) that picks the iteration count for ~--ms ms (10), then 3
 *    timed runs, the median kept.  They are timed in CPU time of the
 *    process (CLOCK_PROCESS_CPUTIME_ID: user + system time of all its
 *    threads), not wall time: on the shared 2-CPU machine other processes
 *    take the CPU for milliseconds at a time, and that waiting is not the
 *    allocator's; the system time of page faults and of brk/madvise/mmap
 *    calls is counted.  None of these allocators does background work in
 *    another thread by default (that would be counted too).
 *    Every child first creates and joins one thread: glibc's
 *    locks skip their atomic instructions while a process has never had a
 *    thread, which would flatter glibc and the lock-based layers of
 *    everyone (a real program using per-CPU caches has threads).
 *
 *  - Ratios per size: kmem / glibc and kmem / the best peer (the least
 *    time of glibc, jemalloc, tcmalloc, mimalloc; its name in brackets);
 *    for throughput the ratio is of time per pair (peer M/s over kmem
 *    M/s), so below 1 always means kmem is faster.  The project's goal:
 *    faster than glibc at every size, within 1.3x of the best peer.
 *
 *  - falseshare.  Two worker threads pinned to two different CPUs (the
 *    first two of the process's affinity mask).  Each adds 1 to a 64-bit
 *    counter (a volatile load and store) --fs-iters times (100 million;
 *    --quick: 10 million), the two starting together after a spin
 *    barrier; wall time = first start to last end, the least of 2
 *    countings on the same objects (the less disturbed).  Cases:
 *      apart      the two counters 128 bytes apart in a static buffer:
 *                 no sharing, the baseline;
 *      same line  the two counters 8 bytes apart in one 64-byte line:
 *                 deliberate false sharing, the worst case;
 *      at once S  each worker allocates one object of S bytes (16, 32,
 *                 48, 64) at the same moment (spin barrier), its counter
 *                 at offset 0;
 *      handed S   worker 0 allocates two objects of S bytes back to back
 *                 and hands the second to worker 1.
 *    Every case allocates once per child (in that order; the sizes are
 *    distinct size classes for every allocator here, so "at once" finds
 *    each class unused), R rounds; "apart" runs again at the end and the
 *    lesser of the two is the baseline.  Printed: wall ms,
 *    the slowdown against "apart" of the same child (median over rounds
 *    of the per-round ratio), and how far apart the two counters were and
 *    in how many rounds they shared a 64-byte line.
 *
 * Usage: bench_kmem [--rounds R] [--ms T] [--fs-iters N] [--tests LIST]
 *                   [--allocs LIST] [--sizes LIST] [--quick]
 *        bench_kmem --one ALLOC --test TEST [--ms T] [--fs-iters N]
 *                   [--sizes LIST]
 */
#include <dlfcn.h>
#include <errno.h>
#include <gnu/libc-version.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kmem/kmem.h>

#include "bench.h"

#define bench_kmem_die(what, err) bench_die("bench_kmem", (what), (err))

#define NSIZES	  13
#define BATCH	  1000 /* objects live at once in "batch" */
#define INNER	  3    /* timed runs per cell in a child (median kept) */
#define MAX_ROUND 31
#define NTHRC	  3
#define FS_NSIZE  4
#define FS_NROW	  (2 + 2 * FS_NSIZE)
#define FS_REPS	  2 /* countings per case; the least disturbed kept */
#define MAX_ROW	  NSIZES
#define MAX_COL	  4

static const size_t sizes[NSIZES] = {
    16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
static const int thr_count[NTHRC] = {1, 2, 4};
static const size_t fs_size[FS_NSIZE] = {16, 32, 48, 64};

enum alloc { A_KMEM, A_GLIBC, A_JEMALLOC, A_TCMALLOC, A_MIMALLOC, NALLOC };
static const char *const alloc_name[NALLOC] = {
    "kmem", "glibc", "jemalloc", "tcmalloc", "mimalloc"};
static const char *const alloc_lib[NALLOC] = {NULL, NULL, "libjemalloc.so.2",
    "libtcmalloc_minimal.so.4", "libmimalloc.so.2"};

enum test { T_PAIR, T_BATCH, T_THREADS, T_FS, NTEST };
static const char *const test_name[NTEST] = {
    "pair", "batch", "threads", "falseshare"};

static const char *size_list; /* --sizes: NULL = all */

static int in_list(const char *list, const char *name);

/* Is this size measured (--sizes)? */
static int
size_on(size_t size)
{
	char buf[24];

	snprintf(buf, sizeof buf, "%zu", size);
	return size_list == NULL || in_list(size_list, buf);
}

/* ---- the allocators' entry points (set in the child) ---- */

static void *(*volatile f_kmem_alloc)(size_t, km_flag_t);
static void (*volatile f_kmem_free)(void *, size_t);
static void *(*volatile f_malloc)(size_t);
static void (*volatile f_free)(void *);
static void *(*volatile f_mallocx)(size_t, int);
static void (*volatile f_sdallocx)(void *, size_t, int);
static void *(*volatile f_tc_malloc)(size_t);
static void (*volatile f_tc_free_sized)(void *, size_t);
static void *(*volatile f_mi_malloc)(size_t);
static void (*volatile f_mi_free_size)(void *, size_t);

static inline __attribute__((always_inline)) void *
a_alloc(enum alloc a, size_t size)
{
	void *p;

	switch (a) {
	case A_KMEM:
		p = f_kmem_alloc(size, KM_SLEEP);
		break;
	case A_GLIBC:
		p = f_malloc(size);
		break;
	case A_JEMALLOC:
		p = f_mallocx(size, 0);
		break;
	case A_TCMALLOC:
		p = f_tc_malloc(size);
		break;
	default:
		p = f_mi_malloc(size);
		break;
	}
	if (__builtin_expect(p == NULL, 0))
		bench_kmem_die(alloc_name[a], ENOMEM);
	return p;
}

static inline __attribute__((always_inline)) void
a_free(enum alloc a, void *p, size_t size)
{
	switch (a) {
	case A_KMEM:
		f_kmem_free(p, size);
		break;
	case A_GLIBC:
		f_free(p);
		break;
	case A_JEMALLOC:
		f_sdallocx(p, size, 0);
		break;
	case A_TCMALLOC:
		f_tc_free_sized(p, size);
		break;
	default:
		f_mi_free_size(p, size);
		break;
	}
}

static char **main_argv;

/*
 * jemalloc's initial-exec TLS (2.6 KB) does not fit the 512 bytes glibc
 * keeps for libraries dlopen'ed later: run this child again with more.
 */
static void
reexec_tls(void)
{
	const char *old = getenv("GLIBC_TUNABLES");
	char env[1024];

	snprintf(env, sizeof env, "%s%sglibc.rtld.optional_static_tls=16384",
	    old != NULL ? old : "", old != NULL ? ":" : "");
	setenv("GLIBC_TUNABLES", env, 1);
	setenv("BENCH_KMEM_TLS", "1", 1);
	fflush(stdout);
	execv("/proc/self/exe", main_argv);
}

/* Set up allocator a in this process; NULL, or why it cannot be. */
static const char *
a_load(enum alloc a, char *ver, size_t verlen)
{
	static char why[256];
	void *h = NULL;

	if (alloc_lib[a] != NULL) {
		h = dlopen(alloc_lib[a], RTLD_NOW | RTLD_LOCAL);
		if (h == NULL && strstr(dlerror(), "static TLS") != NULL &&
		    getenv("BENCH_KMEM_TLS") == NULL)
			reexec_tls();
		if (h == NULL) {
			snprintf(
			    why, sizeof why, "not installed (%s)", dlerror());
			return why;
		}
	}
	switch (a) {
	case A_KMEM:
		f_kmem_alloc = kmem_alloc;
		f_kmem_free = kmem_free;
		snprintf(ver, verlen, "this tree");
		return NULL;
	case A_GLIBC:
		f_malloc = malloc;
		f_free = free;
		snprintf(ver, verlen, "%s", gnu_get_libc_version());
		return NULL;
	case A_JEMALLOC: {
		int (*mallctl)(const char *, void *, size_t *, void *, size_t);
		const char *v = "?";
		size_t len = sizeof(v);

		f_mallocx = (void *(*)(size_t, int))dlsym(h, "mallocx");
		f_sdallocx =
		    (void (*)(void *, size_t, int))dlsym(h, "sdallocx");
		mallctl = (int (*)(const char *, void *, size_t *, void *,
		    size_t))dlsym(h, "mallctl");
		if (mallctl != NULL)
			(void)mallctl("version", &v, &len, NULL, 0);
		snprintf(ver, verlen, "%.*s", (int)strcspn(v, "-"), v);
		break;
	}
	case A_TCMALLOC: {
		const char *(*tcv)(int *, int *, const char **);
		int maj, min;
		const char *pat;

		f_tc_malloc = (void *(*)(size_t))dlsym(h, "tc_malloc");
		f_tc_free_sized =
		    (void (*)(void *, size_t))dlsym(h, "tc_free_sized");
		tcv = (const char *(*)(int *, int *, const char **))dlsym(
		    h, "tc_version");
		if (tcv != NULL)
			snprintf(ver, verlen, "%s", tcv(&maj, &min, &pat));
		break;
	}
	default: {
		int (*miv)(void);

		f_mi_malloc = (void *(*)(size_t))dlsym(h, "mi_malloc");
		f_mi_free_size =
		    (void (*)(void *, size_t))dlsym(h, "mi_free_size");
		miv = (int (*)(void))dlsym(h, "mi_version");
		if (miv != NULL) {
			int v = miv();
			snprintf(ver, verlen, "%d.%d.%d", v / 100, v / 10 % 10,
			    v % 10);
		}
		break;
	}
	}
	if ((a == A_JEMALLOC && (f_mallocx == NULL || f_sdallocx == NULL)) ||
	    (a == A_TCMALLOC &&
		(f_tc_malloc == NULL || f_tc_free_sized == NULL)) ||
	    (a == A_MIMALLOC &&
		(f_mi_malloc == NULL || f_mi_free_size == NULL))) {
		snprintf(
		    why, sizeof why, "%s lacks the sized API", alloc_lib[a]);
		return why;
	}
	return NULL;
}

/* ---- the loops (a is a constant in each instantiation) ---- */

/* "pair": ns per alloc + first-byte write + free. */
static inline __attribute__((always_inline)) double
pair_loop(enum alloc a, size_t size, size_t iters)
{
	uint64_t t0 = bench_cpu_ns(), t1;

	for (size_t i = 0; i < iters; i++) {
		char *p = a_alloc(a, size);

		*(volatile char *)p = (char)i;
		bench_escape(p);
		a_free(a, p, size);
	}
	t1 = bench_cpu_ns();
	return (double)(t1 - t0) / (double)iters;
}

/* "batch": BATCH allocs, then BATCH frees newest first; ns per pair. */
static inline __attribute__((always_inline)) double
batch_loop(enum alloc a, size_t size, size_t iters)
{
	static void *live[BATCH];
	uint64_t t0 = bench_cpu_ns(), t1;

	for (size_t r = 0; r < iters; r++) {
		for (size_t i = 0; i < BATCH; i++) {
			char *p = a_alloc(a, size);

			*(volatile char *)p = (char)i;
			live[i] = p;
		}
		bench_escape(live);
		for (size_t i = BATCH; i-- > 0;)
			a_free(a, live[i], size);
	}
	t1 = bench_cpu_ns();
	return (double)(t1 - t0) / ((double)iters * BATCH);
}

static double
run_pair(enum alloc a, size_t size, size_t iters)
{
	switch (a) {
	case A_KMEM:
		return pair_loop(A_KMEM, size, iters);
	case A_GLIBC:
		return pair_loop(A_GLIBC, size, iters);
	case A_JEMALLOC:
		return pair_loop(A_JEMALLOC, size, iters);
	case A_TCMALLOC:
		return pair_loop(A_TCMALLOC, size, iters);
	default:
		return pair_loop(A_MIMALLOC, size, iters);
	}
}

static double
run_batch(enum alloc a, size_t size, size_t iters)
{
	switch (a) {
	case A_KMEM:
		return batch_loop(A_KMEM, size, iters);
	case A_GLIBC:
		return batch_loop(A_GLIBC, size, iters);
	case A_JEMALLOC:
		return batch_loop(A_JEMALLOC, size, iters);
	case A_TCMALLOC:
		return batch_loop(A_TCMALLOC, size, iters);
	default:
		return batch_loop(A_MIMALLOC, size, iters);
	}
}

/*
 * Calibrate (the first runs are the warm-up), then the median of INNER
 * runs of about target_ms each.  An iteration of run_batch is BATCH pairs.
 */
static double
measure(double (*run)(enum alloc, size_t, size_t), enum alloc a, size_t size,
    double target_ms, size_t *itersp)
{
	size_t unit = run == run_batch ? BATCH : 1;
	size_t iters = run == run_batch ? 1 : 1024;
	double v[INNER], per;

	for (;;) {
		per = run(a, size, iters);
		if (per * (double)(iters * unit) >= 2e6 ||
		    iters >= ((size_t)1 << 26))
			break;
		iters *= 4;
	}
	iters = (size_t)(target_ms * 1e6 / (per * (double)unit));
	if (iters < 1)
		iters = 1;
	for (int i = 0; i < INNER; i++)
		v[i] = run(a, size, iters);
	if (itersp != NULL)
		*itersp = iters;
	return bench_median(v, INNER);
}

/* ---- threads ---- */

struct thr_arg {
	enum alloc a;
	size_t size, iters;
	pthread_barrier_t *bar;
	uint64_t start, end;
};

static void *
thr_main(void *arg)
{
	struct thr_arg *t = arg;

	(void)run_pair(t->a, t->size, 1000); /* the thread's caches */
	pthread_barrier_wait(t->bar);
	t->start = bench_now_ns();
	(void)run_pair(t->a, t->size, t->iters);
	t->end = bench_now_ns();
	return NULL;
}

static void *
thr_nop(void *arg)
{
	return arg;
}

/* n threads of "iters" pairs each; million pairs per second in total. */
static double
thr_run(enum alloc a, size_t size, int n, size_t iters)
{
	pthread_t tid[4];
	struct thr_arg t[4];
	pthread_barrier_t bar;
	uint64_t first, last;
	int rc;

	pthread_barrier_init(&bar, NULL, (unsigned)n);
	for (int i = 0; i < n; i++) {
		t[i].a = a;
		t[i].size = size;
		t[i].iters = iters;
		t[i].bar = &bar;
		if ((rc = pthread_create(&tid[i], NULL, thr_main, &t[i])) != 0)
			bench_kmem_die("pthread_create", rc);
	}
	for (int i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	pthread_barrier_destroy(&bar);
	first = t[0].start;
	last = t[0].end;
	for (int i = 1; i < n; i++) {
		if (t[i].start < first)
			first = t[i].start;
		if (t[i].end > last)
			last = t[i].end;
	}
	return (double)n * (double)iters / (double)(last - first) * 1e3;
}

/* ---- false sharing ---- */

enum fs_case { FS_APART, FS_SAME, FS_ONCE, FS_HAND, FS_QUIT };

struct fs_shared {
	pthread_barrier_t bar;	 /* main + 2 workers */
	atomic_uint arrive, gen; /* the workers' spin barrier */
	enum alloc a;
	enum fs_case kase;
	size_t size;
	uint64_t iters;
	int cpu[2];
	void *obj[2];
	volatile uint64_t *ctr[2];
	uint64_t start[FS_REPS][2], end[FS_REPS][2]; /* wall, ns */
};

struct fs_worker {
	struct fs_shared *s;
	int w;
};

static _Alignas(256) volatile uint64_t fs_buf[64];

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* The two workers leave together (spinning: no wake-up latency). */
static void
spin_pair(struct fs_shared *s)
{
	unsigned int g = atomic_load(&s->gen);

	if (atomic_fetch_add(&s->arrive, 1) == 1) {
		atomic_store(&s->arrive, 0);
		atomic_fetch_add(&s->gen, 1);
	} else {
		while (atomic_load(&s->gen) == g)
			cpu_relax();
	}
}

static void __attribute__((noinline)) fs_count(volatile uint64_t *c, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		(*c)++;
}

static void *
fs_main(void *arg)
{
	struct fs_worker *me = arg;
	struct fs_shared *s = me->s;
	int w = me->w;
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(s->cpu[w], &set);
	(void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	for (;;) {
		pthread_barrier_wait(&s->bar); /* a case is set */
		if (s->kase == FS_QUIT)
			break;
		spin_pair(s);
		if (s->kase == FS_APART || s->kase == FS_SAME) {
			s->obj[w] = NULL;
			s->ctr[w] = &fs_buf[w == 0    ? 0
				: s->kase == FS_APART ? 16
						      : 1];
		} else if (s->kase == FS_ONCE) {
			s->obj[w] = a_alloc(s->a, s->size);
		} else if (w == 0) {
			s->obj[0] = a_alloc(s->a, s->size);
			s->obj[1] = a_alloc(s->a, s->size);
		}
		pthread_barrier_wait(&s->bar); /* objects ready */
		if (s->obj[w] != NULL)
			s->ctr[w] = s->obj[w];
		*s->ctr[w] = 0;
		for (int r = 0; r < FS_REPS; r++) {
			spin_pair(s);
			s->start[r][w] = bench_now_ns();
			fs_count(s->ctr[w], s->iters);
			s->end[r][w] = bench_now_ns();
		}
		pthread_barrier_wait(&s->bar); /* counted */
		if (s->obj[w] != NULL)
			a_free(s->a, s->obj[w], s->size);
		pthread_barrier_wait(&s->bar); /* freed */
	}
	return NULL;
}

/*
 * One case: the least wall ns of its FS_REPS countings; *dist = bytes
 * between the two counters, as -dist-1 if they share a 64-byte line.
 */
static double
fs_case_run(struct fs_shared *s, enum fs_case k, size_t size, long *dist)
{
	double best = 0;

	s->kase = k;
	s->size = size;
	pthread_barrier_wait(&s->bar);
	pthread_barrier_wait(&s->bar);
	pthread_barrier_wait(&s->bar);
	*dist = labs((long)((uintptr_t)s->ctr[0] - (uintptr_t)s->ctr[1]));
	if ((uintptr_t)s->ctr[0] / 64 == (uintptr_t)s->ctr[1] / 64)
		*dist = -*dist - 1;
	pthread_barrier_wait(&s->bar);
	for (int r = 0; r < FS_REPS; r++) {
		uint64_t first = s->start[r][0] < s->start[r][1]
		    ? s->start[r][0]
		    : s->start[r][1];
		uint64_t last =
		    s->end[r][0] > s->end[r][1] ? s->end[r][0] : s->end[r][1];

		if (r == 0 || (double)(last - first) < best)
			best = (double)(last - first);
	}
	return best;
}

static void
fs_test(enum alloc a, uint64_t iters)
{
	static struct fs_shared s;
	struct fs_worker wk[2];
	pthread_t tid[2];
	cpu_set_t set;
	double base, ns[FS_NROW];
	long dist[FS_NROW];
	int n = 0, rc;

	memset(&s, 0, sizeof s);
	s.a = a;
	s.iters = iters;
	s.cpu[0] = s.cpu[1] = 0;
	if (sched_getaffinity(0, sizeof set, &set) == 0) {
		for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
			if (CPU_ISSET(c, &set))
				s.cpu[n++] = c;
		if (n == 1)
			s.cpu[1] = s.cpu[0];
	}
	printf("fscpu %d %d\n", s.cpu[0], s.cpu[1]);
	pthread_barrier_init(&s.bar, NULL, 3);
	for (int w = 0; w < 2; w++) {
		wk[w].s = &s;
		wk[w].w = w;
		if ((rc = pthread_create(&tid[w], NULL, fs_main, &wk[w])) != 0)
			bench_kmem_die("pthread_create", rc);
	}
	/* Each allocating case uses sizes not yet used in this process. */
	ns[0] = fs_case_run(&s, FS_APART, 0, &dist[0]);
	ns[1] = fs_case_run(&s, FS_SAME, 0, &dist[1]);
	for (int i = 0; i < FS_NSIZE; i++)
		ns[2 + i] = fs_case_run(&s, FS_ONCE, fs_size[i], &dist[2 + i]);
	for (int i = 0; i < FS_NSIZE; i++)
		ns[2 + FS_NSIZE + i] = fs_case_run(
		    &s, FS_HAND, fs_size[i], &dist[2 + FS_NSIZE + i]);
	/* The baseline again, after; the less disturbed of the two. */
	base = fs_case_run(&s, FS_APART, 0, &dist[0]);
	ns[0] = base = ns[0] < base ? ns[0] : base;
	for (int row = 0; row < FS_NROW; row++)
		printf("fs %d %.0f %.4f %ld\n", row, ns[row], ns[row] / base,
		    dist[row]);
	s.kase = FS_QUIT;
	pthread_barrier_wait(&s.bar);
	for (int w = 0; w < 2; w++)
		pthread_join(tid[w], NULL);
	pthread_barrier_destroy(&s.bar);
}

/* ---- the child: one allocator, one test, every size once ---- */

static int
child(const char *aname, const char *tname, double target_ms, uint64_t fs_iters,
    int probe)
{
	enum alloc a = NALLOC;
	enum test t = NTEST;
	char ver[128] = "?";
	const char *why;
	pthread_t tid;
	size_t iters;
	int rc;

	for (int i = 0; i < NALLOC; i++)
		if (strcmp(aname, alloc_name[i]) == 0)
			a = (enum alloc)i;
	for (int i = 0; i < NTEST; i++)
		if (tname != NULL && strcmp(tname, test_name[i]) == 0)
			t = (enum test)i;
	if (a == NALLOC || (!probe && t == NTEST)) {
		fprintf(stderr, "bench_kmem: unknown allocator or test\n");
		return 2;
	}
	if ((why = a_load(a, ver, sizeof ver)) != NULL) {
		printf("missing %s\n", why);
		return 3;
	}
	if (probe) {
		printf("version %s\n", ver);
		return 0;
	}
	/* A threaded process, as any program with per-CPU caches is. */
	if ((rc = pthread_create(&tid, NULL, thr_nop, NULL)) != 0)
		bench_kmem_die("pthread_create", rc);
	pthread_join(tid, NULL);

	for (int s = 0; t != T_FS && s < NSIZES; s++) {
		double v[INNER], ns;

		if (!size_on(sizes[s]))
			continue;
		switch (t) {
		case T_PAIR:
			printf("pair %zu %.3f\n", sizes[s],
			    measure(run_pair, a, sizes[s], target_ms, NULL));
			break;
		case T_BATCH:
			printf("batch %zu %.3f\n", sizes[s],
			    measure(run_batch, a, sizes[s], target_ms, NULL));
			break;
		default:
			/* Per thread: about target_ms / 2 of one-thread work.
			 */
			ns = measure(
			    run_pair, a, sizes[s], target_ms / 4, &iters);
			iters = (size_t)(target_ms / 2 * 1e6 / ns);
			for (int c = 0; c < NTHRC; c++) {
				(void)thr_run(
				    a, sizes[s], thr_count[c], iters / 8);
				for (int i = 0; i < INNER; i++)
					v[i] = thr_run(
					    a, sizes[s], thr_count[c], iters);
				printf("threads %zu %d %.3f\n", sizes[s],
				    thr_count[c], bench_median(v, INNER));
			}
			break;
		}
		fflush(stdout);
	}
	if (t == T_FS)
		fs_test(a, fs_iters);
	fflush(stdout);
	return 0;
}

/* ---- the driver ---- */

/* samples[test][row][col][alloc][round]; NaN = none. */
static double samples[NTEST][MAX_ROW][MAX_COL][NALLOC][MAX_ROUND];
static char alloc_ver[NALLOC][128];
static int fs_cpu[2] = {-1, -1};

static int
size_row(size_t size)
{
	for (int i = 0; i < NSIZES; i++)
		if (sizes[i] == size)
			return i;
	return -1;
}

/* Run argv (argv[0] is ignored: /proc/self/exe); its stdout in *out. */
static int
spawn(char *const argv[], char **out)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	int fd[2], st;
	ssize_t n;
	pid_t pid;

	if (buf == NULL)
		bench_kmem_die("malloc", ENOMEM);
	if (pipe(fd) != 0)
		bench_kmem_die("pipe", errno);
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0)
		bench_kmem_die("fork", errno);
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(fd[1]);
	for (;;) {
		if (len + 1 == cap) {
			char *nb = realloc(buf, cap *= 2);

			if (nb == NULL)
				bench_kmem_die("realloc", ENOMEM);
			buf = nb;
		}
		n = read(fd[0], buf + len, cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Parse a child's lines into samples[][][][a][r]. */
static void
collect(const char *out, enum alloc a, int r)
{
	const char *line = out;

	while (*line != '\0') {
		size_t sz;
		int row, col, c0, c1;
		double v, x;
		long d;

		if (sscanf(line, "pair %zu %lf", &sz, &v) == 2 &&
		    (row = size_row(sz)) >= 0) {
			samples[T_PAIR][row][0][a][r] = v;
		} else if (sscanf(line, "batch %zu %lf", &sz, &v) == 2 &&
		    (row = size_row(sz)) >= 0) {
			samples[T_BATCH][row][0][a][r] = v;
		} else if (sscanf(line, "threads %zu %d %lf", &sz, &col, &v) ==
			3 &&
		    (row = size_row(sz)) >= 0) {
			for (int k = 0; k < NTHRC; k++)
				if (thr_count[k] == col)
					samples[T_THREADS][row][k][a][r] = v;
		} else if (sscanf(line, "fs %d %lf %lf %ld", &row, &v, &x,
			       &d) == 4 &&
		    row >= 0 && row < FS_NROW) {
			samples[T_FS][row][0][a][r] = v;
			samples[T_FS][row][1][a][r] = x;
			samples[T_FS][row][2][a][r] = d < 0 ? 1 : 0;
			samples[T_FS][row][3][a][r] =
			    (double)(d < 0 ? -d - 1 : d);
		} else if (sscanf(line, "fscpu %d %d", &c0, &c1) == 2) {
			fs_cpu[0] = c0;
			fs_cpu[1] = c1;
		}
		line += strcspn(line, "\n");
		if (*line == '\n')
			line++;
	}
}

/* Median of the rounds that have a number; NaN if none. */
static double
med(enum test t, int row, int col, enum alloc a, int rounds)
{
	double v[MAX_ROUND];
	int n = 0;

	for (int r = 0; r < rounds; r++)
		if (samples[t][row][col][a][r] == samples[t][row][col][a][r])
			v[n++] = samples[t][row][col][a][r];
	return n == 0 ? __builtin_nan("") : bench_median(v, n);
}

static int
count_ok(enum test t, int row, int col, enum alloc a, int rounds, int *n)
{
	int k = 0;

	*n = 0;
	for (int r = 0; r < rounds; r++) {
		double v = samples[t][row][col][a][r];

		if (v == v) {
			(*n)++;
			k += v != 0;
		}
	}
	return k;
}

static void
print_cell(double v, const char *fmt)
{
	if (v != v)
		printf(" %9s", "-");
	else
		printf(fmt, v);
}

/*
 * One table: rows = sizes, a column per allocator, then kmem/glibc and
 * kmem/best peer as time ratios.  higher_better: the numbers are rates.
 */
static void
print_sized(enum test t, int col, int rounds, const int *avail,
    int higher_better, const char *fmt, double *worst_glibc, double *worst_best)
{
	printf("%6s", "size");
	for (int a = 0; a < NALLOC; a++)
		if (avail[a])
			printf(" %9s", alloc_name[a]);
	printf(" | %10s %10s\n", "kmem/glibc", "kmem/best");
	for (int s = 0; s < NSIZES; s++) {
		double m[NALLOC], rg, rb, best = __builtin_nan("");
		int bi = -1;

		if (!size_on(sizes[s]))
			continue;
		printf("%6zu", sizes[s]);
		for (int a = 0; a < NALLOC; a++) {
			m[a] = avail[a] ? med(t, s, col, (enum alloc)a, rounds)
					: __builtin_nan("");
			if (avail[a])
				print_cell(m[a], fmt);
			if (a != A_KMEM && m[a] == m[a] &&
			    (bi < 0 ||
				(higher_better ? m[a] > best : m[a] < best))) {
				best = m[a];
				bi = a;
			}
		}
		rg = higher_better ? m[A_GLIBC] / m[A_KMEM]
				   : m[A_KMEM] / m[A_GLIBC];
		rb = higher_better ? best / m[A_KMEM] : m[A_KMEM] / best;
		printf(" | %9.2fx %9.2fx (%s)\n", rg, rb,
		    bi < 0 ? "-" : alloc_name[bi]);
		if (rg == rg && rg > worst_glibc[0]) {
			worst_glibc[0] = rg;
			worst_glibc[1] = (double)sizes[s];
		}
		if (rb == rb && rb > worst_best[0]) {
			worst_best[0] = rb;
			worst_best[1] = (double)sizes[s];
		}
	}
}

static void
print_goals(const double *wg, const double *wb)
{
	printf("goal kmem faster than glibc at every size: %s (worst %.2fx at "
	       "%.0f B)\n",
	    wg[0] < 1 ? "yes" : "NO", wg[0], wg[1]);
	printf("goal kmem within 1.3x of the best peer at every size: %s "
	       "(worst %.2fx at %.0f B)\n",
	    wb[0] <= 1.3 ? "yes" : "NO", wb[0], wb[1]);
}

static const char *const fs_row_name[FS_NROW] = {"apart (128 B)", "same line",
    "at once 16", "at once 32", "at once 48", "at once 64", "handed 16",
    "handed 32", "handed 48", "handed 64"};

static void
print_fs_header(const int *avail)
{
	printf("%-13s", "case");
	for (int a = 0; a < NALLOC; a++)
		if (avail[a])
			printf(" %15s", alloc_name[a]);
	printf("\n");
}

/* ms and slowdown from columns col (ns) and col + 1 (ratio). */
static void
print_fs_times(int col, int rounds, const int *avail)
{
	print_fs_header(avail);
	for (int row = 0; row < FS_NROW; row++) {
		printf("%-13s", fs_row_name[row]);
		for (int a = 0; a < NALLOC; a++) {
			double ms, x;

			if (!avail[a])
				continue;
			ms = med(T_FS, row, col, (enum alloc)a, rounds) / 1e6;
			x = med(T_FS, row, col + 1, (enum alloc)a, rounds);
			if (row == 0)
				printf(" %8.1f %6s", ms, "");
			else
				printf(" %8.1f %5.2fx", ms, x);
		}
		printf("\n");
	}
}

static void
print_fs(int rounds, const int *avail, uint64_t fs_iters)
{
	printf("wall ms, first start to last end, for 2 threads x %.0fM "
	       "increments (pinned to CPUs %d and %d):\n"
	       "the least of %d countings in a process, median over %d "
	       "rounds; slowdown = median of\n"
	       "(case / \"apart\" of the same process)\n",
	    (double)fs_iters / 1e6, fs_cpu[0], fs_cpu[1], FS_REPS, rounds);
	print_fs_times(0, rounds, avail);
	printf("\nbytes between the two counters (median), and rounds in "
	       "which they shared a 64-byte line\n");
	print_fs_header(avail);
	for (int row = 2; row < FS_NROW; row++) {
		printf("%-13s", fs_row_name[row]);
		for (int a = 0; a < NALLOC; a++) {
			char cell[48];
			int n, k;

			if (!avail[a])
				continue;
			k = count_ok(T_FS, row, 2, (enum alloc)a, rounds, &n);
			snprintf(cell, sizeof cell, "%.0f %d/%d",
			    med(T_FS, row, 3, (enum alloc)a, rounds), k, n);
			printf(" %15s", cell);
		}
		printf("\n");
	}
}

static void
print_load(const char *when)
{
	char buf[128] = "?";
	FILE *f = fopen("/proc/loadavg", "r");

	if (f != NULL) {
		if (fgets(buf, sizeof buf, f) == NULL)
			strcpy(buf, "?");
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
	printf("load average %s: %s\n", when, buf);
}

static void
cpu_model(char *out, size_t len)
{
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(out, len, "?");
	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "model name", 10) == 0) {
			char *p = strchr(line, ':');

			if (p != NULL) {
				p += 1 + (p[1] == ' ');
				p[strcspn(p, "\n")] = '\0';
				snprintf(out, len, "%s", p);
			}
			break;
		}
	}
	fclose(f);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: bench_kmem [--rounds R] [--ms T] [--fs-iters N] "
	    "[--tests LIST] [--allocs LIST]\n"
	    "                  [--sizes LIST] [--quick]\n"
	    "  --rounds R    child processes per allocator and test, median "
	    "printed (1..%d; 5)\n"
	    "  --ms T        target ms per timed run in a child (10)\n"
	    "  --fs-iters N  increments per thread in falseshare (100000000)\n"
	    "  --tests LIST  comma-separated: pair,batch,threads,falseshare "
	    "(all)\n"
	    "  --allocs LIST comma-separated: kmem,glibc,jemalloc,tcmalloc,"
	    "mimalloc (all)\n"
	    "  --sizes LIST  comma-separated sizes of pair, batch, threads "
	    "(all)\n"
	    "  --quick       3 rounds, 2 ms runs, 10M increments\n"
	    "       bench_kmem --one ALLOC --test TEST [--ms T] [--fs-iters N] "
	    "[--sizes LIST]\n"
	    "                  (one child, the numbers on stdout)\n",
	    MAX_ROUND);
	exit(2);
}

static int
in_list(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; p != NULL && *p != '\0';) {
		size_t l = strcspn(p, ",");

		if (l == n && strncmp(p, name, n) == 0)
			return 1;
		p += l + (p[l] == ',');
	}
	return 0;
}

int
main(int argc, char **argv)
{
	const char *one = NULL, *tname = NULL, *tests = NULL, *allocs = NULL;
	int rounds = 5, probe = 0, avail[NALLOC];
	double target_ms = 10, wg[2], wb[2];
	uint64_t fs_iters = 100000000;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	char msbuf[32], itbuf[32], model[128];
	char *out;

	main_argv = argv;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--one") == 0 && i + 1 < argc) {
			one = argv[++i];
		} else if (strcmp(argv[i], "--test") == 0 && i + 1 < argc) {
			tname = argv[++i];
		} else if (strcmp(argv[i], "--probe") == 0) {
			probe = 1;
		} else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			rounds = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc) {
			target_ms = atof(argv[++i]);
		} else if (strcmp(argv[i], "--fs-iters") == 0 && i + 1 < argc) {
			fs_iters = strtoull(argv[++i], NULL, 0);
		} else if (strcmp(argv[i], "--tests") == 0 && i + 1 < argc) {
			tests = argv[++i];
		} else if (strcmp(argv[i], "--allocs") == 0 && i + 1 < argc) {
			allocs = argv[++i];
		} else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
			size_list = argv[++i];
		} else if (strcmp(argv[i], "--quick") == 0) {
			rounds = 3;
			target_ms = 2;
			fs_iters = 10000000;
		} else {
			usage();
		}
	}
	if (rounds < 1 || rounds > MAX_ROUND || !(target_ms > 0) ||
	    fs_iters == 0)
		usage();
	if (one != NULL)
		return child(one, tname, target_ms, fs_iters, probe);

	snprintf(msbuf, sizeof msbuf, "%g", target_ms);
	snprintf(itbuf, sizeof itbuf, "%llu", (unsigned long long)fs_iters);
	for (int t = 0; t < NTEST; t++)
		for (int row = 0; row < MAX_ROW; row++)
			for (int c = 0; c < MAX_COL; c++)
				for (int a = 0; a < NALLOC; a++)
					for (int r = 0; r < MAX_ROUND; r++)
						samples[t][row][c][a][r] =
						    __builtin_nan("");
	cpu_model(model, sizeof model);
	printf("bench_kmem: kmem_alloc/kmem_free against glibc, jemalloc, "
	       "tcmalloc, mimalloc\n"
	       "%ld CPUs (nproc), %s; one child process per allocator, test "
	       "and round,\n"
	       "%d rounds in rotated order, median printed; in a child each "
	       "cell is the median of %d runs of ~%s ms\n"
	       "every object's first byte is written (as a real program "
	       "writes its memory); sized frees where\n"
	       "the API has them (glibc 2.36: plain free)\n",
	    ncpu, model, rounds, INNER, msbuf);
	print_load("at start");
	for (int a = 0; a < NALLOC; a++) {
		char *av[] = {"bench_kmem", "--one", (char *)alloc_name[a],
		    "--probe", NULL};
		int rc;

		avail[a] = 0;
		if (allocs != NULL && a != A_KMEM && a != A_GLIBC &&
		    !in_list(allocs, alloc_name[a])) {
			printf("%-9s skipped (--allocs)\n", alloc_name[a]);
			continue;
		}
		rc = spawn(av, &out);
		if (rc == 0 &&
		    sscanf(out, "version %127[^\n]", alloc_ver[a]) == 1) {
			avail[a] = 1;
			printf("%-9s %s%s%s\n", alloc_name[a], alloc_ver[a],
			    alloc_lib[a] != NULL ? ", " : "",
			    alloc_lib[a] != NULL ? alloc_lib[a] : "");
		} else {
			printf("%-9s %s", alloc_name[a],
			    strncmp(out, "missing ", 8) == 0
				? out + 8
				: "not available\n");
		}
		free(out);
	}
	printf("(kmem and glibc are always measured: the ratios need them)\n");

	for (int t = 0; t < NTEST; t++) {
		if (tests != NULL && !in_list(tests, test_name[t]))
			continue;
		for (int r = 0; r < rounds; r++) {
			for (int j = 0; j < NALLOC; j++) {
				int a = (j + r) % NALLOC, rc;
				char *av[] = {"bench_kmem", "--one",
				    (char *)alloc_name[a], "--test",
				    (char *)test_name[t], "--ms", msbuf,
				    "--fs-iters", itbuf,
				    size_list != NULL ? "--sizes" : NULL,
				    (char *)size_list, NULL};

				if (!avail[a])
					continue;
				rc = spawn(av, &out);
				if (rc != 0)
					printf("warning: %s %s round %d: "
					       "child exit %d\n",
					    alloc_name[a], test_name[t], r + 1,
					    rc);
				collect(out, (enum alloc)a, r);
				free(out);
			}
		}
		printf("\n");
		wg[0] = wb[0] = 0;
		wg[1] = wb[1] = 0;
		switch (t) {
		case T_PAIR:
			printf("pair: ns per alloc + write first byte + free "
			       "of one object (lower is better); ratios of\n"
			       "time, below 1 = kmem faster\n");
			print_sized(
			    T_PAIR, 0, rounds, avail, 0, " %9.1f", wg, wb);
			print_goals(wg, wb);
			break;
		case T_BATCH:
			printf("batch: %d allocs, then %d frees newest first; "
			       "ns per alloc+free (lower is better)\n",
			    BATCH, BATCH);
			print_sized(
			    T_BATCH, 0, rounds, avail, 0, " %9.1f", wg, wb);
			print_goals(wg, wb);
			break;
		case T_THREADS:
			for (int c = 0; c < NTHRC; c++) {
				printf("%sthreads: %d thread%s doing \"pair\", "
				       "million pairs/s in total (higher is "
				       "better); ratios\nof time per pair, "
				       "below 1 = kmem faster%s\n",
				    c > 0 ? "\n" : "", thr_count[c],
				    thr_count[c] > 1 ? "s" : "",
				    thr_count[c] > ncpu
					? "; MORE THREADS THAN CPUs: this "
					  "measures\npreemption and "
					  "migration (oversubscription), not "
					  "speed-up"
					: "");
				wg[0] = wb[0] = 0;
				print_sized(T_THREADS, c, rounds, avail, 1,
				    " %9.1f", wg, wb);
				print_goals(wg, wb);
			}
			break;
		default:
			printf("falseshare: two threads on two CPUs each "
			       "increment a counter in their own object\n");
			print_fs(rounds, avail, fs_iters);
			printf(
			    "reading: \"apart\" has no sharing, \"same "
			    "line\" is what false sharing costs on this "
			    "machine.\n"
			    "\"at once\": glibc (an arena per thread), "
			    "jemalloc (threads spread over arenas) and "
			    "mimalloc\n"
			    "(a heap per thread) serve the two threads from "
			    "different memory, megabytes apart.\n"
			    "kmem's caches are per CPU, not per thread, and "
			    "start empty: a get that finds no\n"
			    "group in its CPU layer or the depot takes one "
			    "object from the shared pool page, so\n"
			    "two CPUs starting together get neighbours; "
			    "classes that are not multiples of 64\n"
			    "(16, 32, 48) then share a line, 64-byte "
			    "objects are 64-aligned and do not.  tcmalloc's\n"
			    "thread caches start small (slow start) and can "
			    "do the same.  \"handed\": objects\n"
			    "allocated back to back by one thread are "
			    "neighbours in every allocator that packs\n"
			    "small objects; only a class that is a multiple "
			    "of 64 keeps them on separate lines.\n");
			break;
		}
		print_load("now");
		fflush(stdout);
	}
	return 0;
}
