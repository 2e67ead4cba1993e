/*
 * bench_server -- the "server" workload of the malloc comparison run by
 * scripts/bench-malloc.py (issue 12: a shape on which kmem lost in an
 * outside suite), in C++: objects come from new char[] and go back by
 * delete[], so the allocator is reached through the C++ runtime's
 * operator new[] / operator delete[] -- the preloaded library's own where
 * it defines them (jemalloc, tcmalloc and mimalloc do), otherwise the C++
 * library's, which call malloc and free (glibc, kmem).  Like
 * bench_malloc it measures one cell once and prints one line of JSON.
 *
 * The shape (a server's worker threads, larson-like):
 *
 *  - T worker threads (--threads, 2); T + 1 slot arrays of N slots
 *    (--slots, 5000), each slot one object of 8..1000 bytes (uniform),
 *    its first and last byte written.  Each thread fills one array
 *    before the start; the main thread fills the spare.
 *
 *  - One step: pick a random slot of the thread's current array, delete
 *    its object, new a fresh one of a random size 8..1000 in its place
 *    (first and last byte written).
 *
 *  - Every H steps (--handover, 20480) a thread hands its whole array
 *    over: it puts it at the back of a shared queue (a mutex, held for
 *    two index updates) and takes the array at the front, which another
 *    thread filled and left there (the queue holds the spare, so with T
 *    threads the array taken was last used by another thread whenever
 *    T > 1).  So from then on it frees objects another thread allocated:
 *    remote frees, as in a server whose requests move between threads.
 *
 *  - --delete sized: the object goes back by ::operator delete[](p, n)
 *    (C++14 sized deallocation, compiled with -fsized-deallocation), n
 *    the size given to new[]; --delete plain: by delete[] p (no size: the
 *    allocator must find it).  With an allocator that does not define
 *    the sized operator (kmem, glibc) the C++ library's sized delete[]
 *    drops the size and calls free.
 *
 * Timing: the threads run for --ms milliseconds of wall time (1000) after
 * a common start; each publishes its step count every 256 steps.  The
 * main thread samples the total every 50 ms: printed are the median and
 * best window (million steps per second, wall; the runner ranks by the
 * median window, which a few windows disturbed by the machine's other
 * processes do not move), the whole run's steps per wall second, and CPU
 * time: the threads' own (CLOCK_THREAD_CPUTIME_ID over the timed part,
 * summed) and the steps per CPU-second.  One step = one delete + one new.
 * The threads are not pinned (the outside suite's are not).  With T >
 * CPUs they time-share.
 *
 * As in bench_malloc: one thread is created and joined first (glibc skips
 * its atomics in a process that never had a thread); bookkeeping (the
 * slot arrays) is mmap'ed, outside the allocator being measured; every
 * line carries "test", "clock", "malloc_from" and "new_from" (the files
 * defining the malloc and the operator new[] this program calls), "ncpu".
 *
 * Usage: bench_server server [--threads T] [--slots N] [--handover H]
 *                            [--delete sized|plain] [--ms T] [--seed X]
 *        bench_server probe
 */
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <new>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define PROG "bench_server"

namespace
{

constexpr int MAXT = 64;     // worker threads at most
constexpr int TICK = 256;    // steps between published counts
constexpr int WIN_MS = 50;   // throughput windows
constexpr int MAXWIN = 1000; // windows at most
constexpr size_t MINSZ = 8;  // object sizes MINSZ .. MAXSZ
constexpr size_t MAXSZ = 1000;

struct Slot {
	char *p;
	size_t size;
};

struct Options {
	size_t threads = 2, slots = 5000, handover = 20480;
	bool sized = true;
	double ms = 1000;
	uint64_t seed = 0x9e3779b97f4a7c15u;
} opt;

// The queue of arrays waiting for a thread (FIFO), under a mutex.
struct {
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	size_t q[MAXT + 2];
	size_t head = 0, tail = 0; // q[head % (MAXT + 2)] .. tail
} handq;

Slot **arrays; // T + 1 arrays of opt.slots

struct alignas(64) Worker {
	pthread_t thr;
	size_t id;
	std::atomic<uint64_t> steps{0}; // published every TICK
	uint64_t cpu_ns = 0, handovers = 0;
};

Worker *workers;
std::atomic<int> ready{0}, go{0}, stop{0};

[[noreturn]] void
die(const char *what, int err)
{
	bench_die(PROG, what, err);
	abort();
}

void *
map_array(size_t bytes)
{
	void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		die("mmap", errno);
	return p;
}

inline char *
make(size_t sz)
{
	char *p = new char[sz];

	p[0] = 1;
	p[sz - 1] = 2;
	return p;
}

inline void
drop(const Slot &s)
{
	if (opt.sized)
		::operator delete[](s.p, s.size);
	else
		delete[] s.p;
}

void
fill(Slot *a, uint64_t *rng)
{
	for (size_t j = 0; j < opt.slots; j++) {
		size_t sz = MINSZ + bench_rng_below(bench_rng_next(rng), MAXSZ - MINSZ + 1);

		a[j].p = make(sz);
		a[j].size = sz;
	}
}

// Put array `mine` at the back of the queue, take the one at the front.
size_t
hand_over(size_t mine)
{
	size_t got;

	pthread_mutex_lock(&handq.lock);
	handq.q[handq.tail++ % (MAXT + 2)] = mine;
	got = handq.q[handq.head++ % (MAXT + 2)];
	pthread_mutex_unlock(&handq.lock);
	return got;
}

void *
worker(void *arg)
{
	Worker *w = static_cast<Worker *>(arg);
	uint64_t rng = opt.seed + (w->id + 1) * 0x632be59bd9b4e019u;
	size_t cur = w->id, per = opt.handover / TICK, ticks = 0;
	uint64_t steps = 0, c0;
	unsigned n = 0;

	fill(arrays[cur], &rng);
	ready.fetch_add(1);
	while (!go.load(std::memory_order_acquire))
		bench_backoff(&n);
	c0 = bench_thread_cpu_ns();
	do {
		Slot *a = arrays[cur];

		for (int k = 0; k < TICK; k++) {
			uint64_t r = bench_rng_next(&rng);
			Slot &s = a[bench_rng_below(r, opt.slots)];
			size_t sz = MINSZ + bench_rng_below(r >> 32, MAXSZ - MINSZ + 1);

			drop(s);
			s.p = make(sz);
			s.size = sz;
		}
		steps += TICK;
		w->steps.store(steps, std::memory_order_relaxed);
		if (per != 0 && ++ticks % per == 0) {
			cur = hand_over(cur);
			w->handovers++;
		}
	} while (!stop.load(std::memory_order_relaxed));
	w->cpu_ns = bench_thread_cpu_ns() - c0;
	return nullptr;
}

uint64_t
total_steps()
{
	uint64_t s = 0;

	for (size_t t = 0; t < opt.threads; t++)
		s += workers[t].steps.load(std::memory_order_relaxed);
	return s;
}

int
allowed_cpus()
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof set, &set) != 0)
		die("sched_getaffinity", errno);
	return CPU_COUNT(&set);
}

void
put_from(const char *key, void *fn)
{
	Dl_info info;

	printf(",\"%s\":", key);
	if (dladdr(fn, &info) != 0 && info.dli_fname != nullptr)
		bench_put_str(info.dli_fname);
	else
		bench_put_str("?");
}

void
put_head(const char *test, const char *clock)
{
	void *(*volatile fm)(size_t) = malloc;
	void *(*volatile fn)(size_t) = ::operator new[];

	printf("{\"test\":");
	bench_put_str(test);
	printf(",\"clock\":");
	bench_put_str(clock);
	put_from("malloc_from", (void *)(uintptr_t)fm);
	put_from("new_from", (void *)(uintptr_t)fn);
	printf(",\"ncpu\":%d", allowed_cpus());
}

void
test_server()
{
	size_t nt = opt.threads;
	size_t abytes = opt.slots * sizeof(Slot);
	static double rate[MAXWIN];
	int nwin = (int)(opt.ms / WIN_MS);
	uint64_t rng = opt.seed, t0, t1, prev, tprev, total, cpu = 0, hand = 0;
	double best = 0, med;
	struct timespec ts0, at;

	if (nt < 1 || nt > (size_t)MAXT || opt.slots < 1)
		die("server: --threads or --slots", EINVAL);
	nwin = nwin < 1 ? 1 : nwin > MAXWIN ? MAXWIN : nwin;
	arrays = static_cast<Slot **>(map_array((nt + 1) * sizeof(Slot *)));
	for (size_t i = 0; i <= nt; i++)
		arrays[i] = static_cast<Slot *>(map_array(abytes));
	fill(arrays[nt], &rng); // the spare, first in the queue
	handq.q[handq.tail++] = nt;
	workers = static_cast<Worker *>(map_array(nt * sizeof(Worker)));
	for (size_t t = 0; t < nt; t++) {
		new (&workers[t]) Worker();
		workers[t].id = t;
		int err = pthread_create(
		    &workers[t].thr, nullptr, worker, &workers[t]);
		if (err != 0)
			die("pthread_create", err);
	}
	while (ready.load() < (int)nt)
		usleep(100);
	clock_gettime(CLOCK_MONOTONIC, &ts0);
	t0 = tprev = bench_now_ns();
	prev = 0;
	go.store(1, std::memory_order_release);
	for (int w = 0; w < nwin; w++) {
		long ns = (long)(opt.ms * 1e6 / nwin * (w + 1));
		uint64_t now, cnt;

		at.tv_sec = ts0.tv_sec + (ts0.tv_nsec + ns) / 1000000000;
		at.tv_nsec = (ts0.tv_nsec + ns) % 1000000000;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at,
			   nullptr) == EINTR)
			;
		cnt = total_steps();
		now = bench_now_ns();
		rate[w] = (double)(cnt - prev) * 1e3 / (double)(now - tprev);
		best = rate[w] > best ? rate[w] : best;
		prev = cnt;
		tprev = now;
	}
	med = bench_median(rate, nwin);
	stop.store(1);
	for (size_t t = 0; t < nt; t++) {
		int err = pthread_join(workers[t].thr, nullptr);
		if (err != 0)
			die("pthread_join", err);
	}
	t1 = bench_now_ns();
	total = total_steps();
	for (size_t t = 0; t < nt; t++) {
		cpu += workers[t].cpu_ns;
		hand += workers[t].handovers;
	}
	put_head("server", "wall");
	printf(",\"threads\":%zu,\"slots\":%zu,\"handover\":%zu,"
	       "\"delete\":\"%s\",\"steps\":%llu,\"handovers\":%llu,"
	       "\"wall_ms\":%.3f,\"cpu_ms\":%.3f,\"mops\":%.4f,"
	       "\"windows\":%d,\"mops_win_median\":%.4f,"
	       "\"mops_win_best\":%.4f,\"mops_per_cpu_s\":%.4f}\n",
	    nt, opt.slots, opt.handover, opt.sized ? "sized" : "plain",
	    (unsigned long long)total, (unsigned long long)hand,
	    (double)(t1 - t0) / 1e6, (double)cpu / 1e6,
	    (double)total * 1e3 / (double)(t1 - t0), nwin, med, best,
	    (double)total * 1e3 / (double)(cpu ? cpu : 1));
	fflush(stdout);
	// Untimed: everything goes back, most of it from another thread.
	for (size_t i = 0; i <= nt; i++)
		for (size_t j = 0; j < opt.slots; j++)
			drop(arrays[i][j]);
}

[[noreturn]] void
usage()
{
	fprintf(stderr,
	    "usage: %s server [--threads T] [--slots N] [--handover H]\n"
	    "       [--delete sized|plain] [--ms T] [--seed X]\n"
	    "       %s probe\n",
	    PROG, PROG);
	exit(2);
}

unsigned long long
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

void *
noop_thread(void *arg)
{
	return arg;
}

} // namespace

int
main(int argc, char **argv)
{
	pthread_t t;
	int err;

	if (argc < 2)
		usage();
	for (int i = 2; i < argc; i += 2) {
		const char *o = argv[i],
			   *v = i + 1 < argc ? argv[i + 1] : nullptr;

		if (v == nullptr)
			usage();
		if (strcmp(o, "--threads") == 0)
			opt.threads = (size_t)num(v);
		else if (strcmp(o, "--slots") == 0)
			opt.slots = (size_t)num(v);
		else if (strcmp(o, "--handover") == 0)
			opt.handover = (size_t)num(v);
		else if (strcmp(o, "--delete") == 0 && strcmp(v, "sized") == 0)
			opt.sized = true;
		else if (strcmp(o, "--delete") == 0 && strcmp(v, "plain") == 0)
			opt.sized = false;
		else if (strcmp(o, "--ms") == 0)
			opt.ms = strtod(v, nullptr);
		else if (strcmp(o, "--seed") == 0)
			opt.seed = num(v);
		else
			usage();
	}
	// One thread, created and joined: no single-threaded fast paths.
	if ((err = pthread_create(&t, nullptr, noop_thread, nullptr)) != 0 ||
	    (err = pthread_join(t, nullptr)) != 0)
		die("pthread_create", err);
	if (strcmp(argv[1], "server") == 0) {
		test_server();
	} else if (strcmp(argv[1], "probe") == 0) {
		put_head("probe", "none");
		printf("}\n");
	} else {
		usage();
	}
	return 0;
}
