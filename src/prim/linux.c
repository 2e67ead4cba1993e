/*
 * prim/linux.c -- the platform layer for Linux: the one file that talks to
 * the operating system (contract: src/internal/prim.h; the port's types
 * and inline fast paths: src/prim/linux.h).
 *
 * Data structures.  A few process-wide values cached on first use (page
 * size, CPU count, the rseq offset) and the fault-injection state (a call
 * counter and the armed call number, both atomics), and a fixed table of
 * exit functions that a library destructor runs (kmem_prim_atexit): all
 * in one object, kmem_prim_proc (its type is in linux.h, where the inline
 * fast paths read the rseq fields).  No thread-local data: a thread's
 * own address, for the CPU hash, is its thread pointer.
 *
 * Memory.  Page runs are anonymous private mappings.  kmem_prim_reserve
 * maps PROT_NONE with MAP_NORESERVE; commit mprotects to read/write (the
 * kernel supplies zero pages on first touch); purge is MADV_DONTNEED, which
 * on private anonymous memory frees the pages and makes the range read as
 * zero; decommit is mmap(MAP_FIXED, PROT_NONE) over the range, which frees
 * the pages and the commit charge; release is munmap.  An aligned run is
 * got by over-mapping by "align" bytes and unmapping the two ends.  A
 * guarded run (metadata) is a PROT_NONE mapping two pages larger than
 * asked whose middle is mprotected to read/write: the guard pages belong
 * to the mapping, so no later mmap can put anything next to the run.
 * A page move (kmem_prim_remap, realloc's) is mremap(2) with
 * MREMAP_DONTUNMAP, so that the range the pages leave is never a hole
 * another thread's mmap could be given, then fresh pages mapped over
 * that range (MAP_FIXED over our own mapping), which merge with their
 * neighbours again.
 *
 * Current CPU.  glibc >= 2.35 registers an rseq area for every thread and
 * exports its offset from the thread pointer (__rseq_offset, __rseq_size);
 * the kernel keeps rseq->cpu_id current, so the CPU is one load.  The
 * symbols are weak so that the library still loads on an older glibc; when
 * rseq is unavailable (older glibc, or GLIBC_TUNABLES=glibc.pthread.rseq=0)
 * we fall back to sched_getcpu(), and if that fails, to a hash of the
 * thread's address.
 *
 * Locking.  None of its own: the fault counter is atomic; caches of
 * constant values are written idempotently (racing writers store the same
 * value) through relaxed atomics.  It provides the locks: pthread mutexes
 * and condition variables (monotonic clock), and spin locks for the
 * per-CPU caches (inline in prim.h; the contended path spins, then
 * sched_yield()s so a preempted holder can run).  In debug builds a
 * mutex records its holder (a relaxed atomic that only the holder
 * writes), for kmem_mutex_owned().
 *
 * Failure policy.  Every function that can fail returns an errno value
 * (ENOMEM for the OS refusing memory, EINVAL for a contract violation) and
 * leaves its out-parameters untouched.  Lock and condition-variable errors
 * are programming errors and abort.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KMEM_HAS_FEATURE_TSAN 1
#endif
#endif
#ifndef KMEM_HAS_FEATURE_TSAN
#define KMEM_HAS_FEATURE_TSAN 0
#endif

#include "internal/internal.h"
#include "internal/prim.h"

/* ---- host description ---- */

struct kmem_prim_proc kmem_prim_proc = {.texit_once = PTHREAD_ONCE_INIT};

size_t
kmem_prim_page_size(void)
{
	size_t ps = atomic_load_explicit(
	    &kmem_prim_proc.pagesize, memory_order_relaxed);

	if (kmem_unlikely(ps == 0)) {
		long r = sysconf(_SC_PAGESIZE);

		ps = (r > 0 && kmem_powerof2((uintmax_t)r)) ? (size_t)r : 4096;
		atomic_store_explicit(
		    &kmem_prim_proc.pagesize, ps, memory_order_relaxed);
	}
	return ps;
}

unsigned
kmem_prim_ncpu(void)
{
	unsigned n =
	    atomic_load_explicit(&kmem_prim_proc.ncpu, memory_order_relaxed);

	if (kmem_unlikely(n == 0)) {
		long r = sysconf(_SC_NPROCESSORS_CONF);

		n = (r > 0 && r < 65536) ? (unsigned)r : 1;
		atomic_store_explicit(
		    &kmem_prim_proc.ncpu, n, memory_order_relaxed);
	}
	return n;
}

/* glibc's rseq registration (2.35+); weak so older glibcs still link. */
extern const unsigned int __rseq_size __attribute__((weak));

/* struct rseq's second word is cpu_id (linux/rseq.h, ABI-stable). */
#define PRIM_RSEQ_CPU_ID_OFFSET 4

static inline void *
prim_thread_pointer(void)
{
#if defined(__x86_64__)
	void *tp;

	__asm__("mov %%fs:0, %0" : "=r"(tp));
	return tp;
#else
	return __builtin_thread_pointer();
#endif
}

enum { PRIM_CPU_UNKNOWN, PRIM_CPU_RSEQ, PRIM_CPU_GETCPU, PRIM_CPU_HASH };

static int
prim_cpu_source_probe(void)
{
	int src =
	    atomic_load_explicit(&kmem_prim_proc.cpu_src, memory_order_relaxed);

	if (kmem_likely(src != PRIM_CPU_UNKNOWN))
		return src;
	if (&__rseq_size != NULL && &__rseq_offset != NULL &&
	    __rseq_size >= 8 &&
	    *(volatile int32_t *)((char *)prim_thread_pointer() +
		__rseq_offset + PRIM_RSEQ_CPU_ID_OFFSET) >= 0)
		src = PRIM_CPU_RSEQ;
	else if (sched_getcpu() >= 0)
		src = PRIM_CPU_GETCPU;
	else
		src = PRIM_CPU_HASH;
	atomic_store_explicit(
	    &kmem_prim_proc.cpu_src, src, memory_order_relaxed);
	atomic_store_explicit(&kmem_prim_rseq_ready,
	    src == PRIM_CPU_RSEQ ? 1 : -1, memory_order_relaxed);
	return src;
}

static unsigned
prim_cpu_hash(void)
{
	uintptr_t x = (uintptr_t)prim_thread_pointer(); /* this thread's */

	x ^= x >> 17;
	x *= 0x9e3779b97f4a7c15ull;
	return (unsigned)(x >> 40);
}

unsigned
kmem_prim_cpu_current(void)
{
	int32_t cpu;

	switch (prim_cpu_source_probe()) {
	case PRIM_CPU_RSEQ:
		cpu = *(volatile int32_t *)((char *)prim_thread_pointer() +
		    __rseq_offset + PRIM_RSEQ_CPU_ID_OFFSET);
		if (kmem_likely(cpu >= 0))
			return (unsigned)cpu % kmem_prim_ncpu();
		break; /* a thread whose rseq registration failed */
	case PRIM_CPU_GETCPU:
		cpu = sched_getcpu();
		if (cpu >= 0)
			return (unsigned)cpu % kmem_prim_ncpu();
		break;
	default:
		break;
	}
	return prim_cpu_hash() % kmem_prim_ncpu();
}

const char *
kmem_prim_cpu_source(void)
{
	switch (prim_cpu_source_probe()) {
	case PRIM_CPU_RSEQ:
		return "rseq";
	case PRIM_CPU_GETCPU:
		return "getcpu";
	default:
		return "hash";
	}
}

/*
 * rseq critical sections: usable when glibc registered rseq for us and the
 * kernel lets us fence them (membarrier PRIVATE_EXPEDITED_RSEQ, Linux
 * 5.10+).  Never under ThreadSanitizer: it cannot see the accesses inside
 * the assembly and would report the lock-protected ones as races.
 */

bool
kmem_prim_rseq_cs_init(void)
{
	int v =
	    atomic_load_explicit(&kmem_prim_proc.rseq_cs, memory_order_acquire);

	if (v != 0)
		return v == 1;
	v = -1;
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) &&                    \
    !KMEM_HAS_FEATURE_TSAN
	if (prim_cpu_source_probe() == PRIM_CPU_RSEQ &&
	    syscall(SYS_membarrier,
		MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0) == 0) {
		kmem_prim_rseq_off = __rseq_offset;
		v = 1;
	}
#endif
	atomic_store_explicit(&kmem_prim_proc.rseq_cs, v, memory_order_release);
	return v == 1;
}

void
kmem_prim_rseq_fence(unsigned cpu)
{
	int tries;

	for (tries = 0; tries < 2; tries++) {
		if (syscall(SYS_membarrier,
			MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ,
			MEMBARRIER_CMD_FLAG_CPU, (int)cpu) == 0)
			return;
		/* No such CPU online: nothing can run there. */
		if (errno == EINVAL)
			return;
		/* Should a process start unregistered (a fork): again. */
		if (errno != EPERM ||
		    syscall(SYS_membarrier,
			MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0,
			0) != 0)
			break;
	}
	kmem_panic("membarrier(PRIVATE_EXPEDITED_RSEQ, cpu %u) failed: errno "
		   "%d",
	    cpu, errno);
}

/* ---- fault injection ---- */

void
kmem_prim_fault_set(uint64_t nth, bool from_on)
{
	atomic_store(&kmem_prim_proc.fault_count, 0);
	atomic_store(&kmem_prim_proc.fault_from_on, from_on);
	atomic_store(&kmem_prim_proc.fault_nth, nth);
}

void
kmem_prim_fault_size(size_t max)
{
	atomic_store(&kmem_prim_proc.fault_max, max);
}

uint64_t
kmem_prim_fault_calls(void)
{
	return atomic_load(&kmem_prim_proc.fault_count);
}

/*
 * True if this memory-obtaining call, for "size" bytes, is to fail.  The
 * size limit (kmem_prim_fault_size) is for object pages only ("sized"):
 * metadata runs are exempt, or a page-map leaf (4 MiB) would be refused
 * by a limit meant for the page arena's imports, as the address layout
 * happens to need one.
 */
static inline bool
prim_fault_sized(size_t size, bool sized)
{
	uint64_t nth, n;
	size_t max;

	n = atomic_fetch_add_explicit(
		&kmem_prim_proc.fault_count, 1, memory_order_relaxed) +
	    1;
	max = atomic_load_explicit(
	    &kmem_prim_proc.fault_max, memory_order_relaxed);
	if (kmem_unlikely(sized && max != 0 && size > max))
		return true;
	nth = atomic_load_explicit(
	    &kmem_prim_proc.fault_nth, memory_order_relaxed);
	if (kmem_likely(nth == 0))
		return false;
	if (n == nth)
		return true;
	return n > nth &&
	    atomic_load_explicit(
		&kmem_prim_proc.fault_from_on, memory_order_relaxed);
}

static inline bool
prim_fault(size_t size)
{
	return prim_fault_sized(size, true);
}

/* ---- page runs ---- */

static inline bool
prim_page_aligned(const void *addr, size_t size)
{
	size_t ps = kmem_prim_page_size();

	return size != 0 && ((uintptr_t)addr & (ps - 1)) == 0 &&
	    (size & (ps - 1)) == 0;
}

static int
prim_map(size_t size, size_t align, int prot, int flags, void **out)
{
	size_t ps = kmem_prim_page_size();
	size_t span;
	char *p, *a;

	if (size == 0 || (size & (ps - 1)) != 0 ||
	    (align != 0 && !kmem_powerof2(align)))
		return EINVAL;
	if (prim_fault(size))
		return ENOMEM;
	flags |= MAP_PRIVATE | MAP_ANONYMOUS;
	if (align <= ps) {
		p = mmap(NULL, size, prot, flags, -1, 0);
		if (p == MAP_FAILED)
			return ENOMEM;
		*out = p;
		return 0;
	}
	/* Over-map, then trim to an aligned run. */
	if (__builtin_add_overflow(size, align - ps, &span))
		return ENOMEM;
	p = mmap(NULL, span, prot, flags, -1, 0);
	if (p == MAP_FAILED)
		return ENOMEM;
	a = (char *)kmem_align_up((uintptr_t)p, align);
	if (a != p)
		munmap(p, (size_t)(a - p));
	if (a + size != p + span)
		munmap(a + size, (size_t)(p + span - (a + size)));
	*out = a;
	return 0;
}

int
kmem_prim_reserve(size_t size, size_t align, void **out)
{
	return prim_map(size, align, PROT_NONE, MAP_NORESERVE, out);
}

int
kmem_prim_alloc(size_t size, size_t align, void **out)
{
	return prim_map(size, align, PROT_READ | PROT_WRITE, 0, out);
}

int
kmem_prim_commit(void *addr, size_t size)
{
	if (!prim_page_aligned(addr, size))
		return EINVAL;
	if (prim_fault(size))
		return ENOMEM;
	if (mprotect(addr, size, PROT_READ | PROT_WRITE) != 0)
		return errno == EINVAL ? EINVAL : ENOMEM;
	return 0;
}

int
kmem_prim_purge(void *addr, size_t size)
{
	if (!prim_page_aligned(addr, size))
		return EINVAL;
	if (madvise(addr, size, MADV_DONTNEED) != 0)
		return EINVAL;
	return 0;
}

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4 /* Linux 5.7 */
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000 /* Linux 4.17 */
#endif

/*
 * Whether the n bytes at p are "want", read without faulting if p is not
 * mapped or not readable: through a pipe, whose write(2) fails with
 * EFAULT instead.  False if it cannot tell.
 */
static bool
prim_holds(const void *p, const void *want, size_t n)
{
	unsigned char buf[32];
	bool same = false;
	int fd[2];

	KMEM_ASSERT(n <= sizeof buf);
	if (pipe2(fd, O_CLOEXEC) != 0)
		return false;
	if (write(fd[1], p, n) == (ssize_t)n &&
	    read(fd[0], buf, n) == (ssize_t)n)
		same = memcmp(buf, want, n) == 0;
	close(fd[0]);
	close(fd[1]);
	return same;
}

/*
 * One mremap(2) with MREMAP_DONTUNMAP, which leaves "from" mapped: with
 * a plain move, "from" was a hole until it was mapped again, and another
 * thread's mmap(2) could land in it -- a library's, a thread stack,
 * kmem's own next span -- and then be mapped over (found by
 * preload.malloc_remap_race_mt: a crash within a second).  A kernel
 * without the flag refuses it before doing anything (remembered:
 * kmem_prim_proc.remap_no).
 *
 * A kernel may unmap "to" first and then fail (up to 6.11 when "from"
 * spans two mappings, which kmem's own moves make; any version on
 * RLIMIT_AS or the commit limit).  So "to" is mapped again with
 * MAP_FIXED_NOREPLACE, which cannot take anyone else's mapping; if
 * something is there, it is ours only if it still holds the cookie
 * written at "to" before the call (read through a pipe: it may be
 * unmapped or unreadable by then).
 */
int
kmem_prim_remap(void *from, size_t size, void *to)
{
	int saved = errno, kerr, err;
	uint64_t cookie[2];
	void *r;

	if (!prim_page_aligned(from, size) || !prim_page_aligned(to, size))
		return EINVAL;
	if (prim_fault(size))
		return ENOMEM;
	if (atomic_load_explicit(
		&kmem_prim_proc.remap_no, memory_order_relaxed) != 0)
		return EINVAL;
	cookie[0] = (uint64_t)(uintptr_t)to ^ 0x9e3779b97f4a7c15ull;
	cookie[1] = kmem_prim_clock_ns() ^ (uint64_t)(uintptr_t)from ^
	    (atomic_fetch_add_explicit(
		 &kmem_prim_proc.remap_seq, 1, memory_order_relaxed)
		<< 40);
	memcpy(to, cookie, sizeof cookie);
	r = mremap(from, size, size,
	    MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, to);
	if (r != MAP_FAILED) {
		/*
		 * Fresh pages over "from", still ours and mapped (no hole):
		 * the mapping the move left there would never merge with its
		 * neighbours again, and a process that moves pages often ran
		 * out of mappings (vm.max_map_count): 32,892 after 40,000
		 * random reallocs, against 504.  If this fails, "from" is
		 * still mapped, reading zero: as good.
		 */
		mmap(from, size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		errno = saved;
		return 0;
	}
	kerr = errno;
	err = kerr == ENOMEM ? ENOMEM : EINVAL;
	r = mmap(to, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (r != to) {
		if (r != MAP_FAILED) /* a kernel that took it as a hint */
			munmap(r, size);
		if (!prim_holds(to, cookie, sizeof cookie))
			err = EFAULT;
		else if (kerr == EINVAL) /* "to" untouched: no such flag */
			atomic_store_explicit(
			    &kmem_prim_proc.remap_no, -1, memory_order_relaxed);
	}
	errno = saved;
	return err;
}

int
kmem_prim_decommit(void *addr, size_t size)
{
	void *p;

	if (!prim_page_aligned(addr, size))
		return EINVAL;
	p = mmap(addr, size, PROT_NONE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? ENOMEM : 0;
}

int
kmem_prim_release(void *addr, size_t size)
{
	if (!prim_page_aligned(addr, size))
		return EINVAL;
	return munmap(addr, size) == 0 ? 0 : EINVAL;
}

/*
 * The guards are part of the mapping, so the kernel cannot place another
 * mapping in them: reserve size + 2 pages inaccessible, then open the
 * middle (charged to the commit limit as kmem_prim_alloc's memory is).
 */
int
kmem_prim_alloc_guarded(size_t size, void **out)
{
	size_t ps = kmem_prim_page_size(), len;
	char *p;

	if (size == 0 || (size & (ps - 1)) != 0)
		return EINVAL;
	if (__builtin_add_overflow(size, 2 * ps, &len))
		return ENOMEM;
	if (prim_fault_sized(size, false))
		return ENOMEM;
	p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return ENOMEM;
	if (mprotect(p + ps, size, PROT_READ | PROT_WRITE) != 0) {
		munmap(p, len);
		return ENOMEM;
	}
	*out = p + ps;
	return 0;
}

int
kmem_prim_release_guarded(void *addr, size_t size)
{
	size_t ps = kmem_prim_page_size();

	if (!prim_page_aligned(addr, size) || (uintptr_t)addr < ps)
		return EINVAL;
	return munmap((char *)addr - ps, size + 2 * ps) == 0 ? 0 : EINVAL;
}

/* ---- locks ---- */

/* Spin about a microsecond, then yield until the holder lets go. */
#define PRIM_SPIN_TRIES 64

void
kmem_spin_enter_slow(kmem_spin_t *sl)
{
	unsigned i;

	for (;;) {
		for (i = 0; i < PRIM_SPIN_TRIES; i++) {
			if (atomic_load_explicit(
				&sl->sl_locked, memory_order_relaxed) == 0 &&
			    kmem_spin_tryenter(sl))
				return;
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
		}
		sched_yield();
	}
}

static void
prim_lock_check(int err, const char *what)
{
	if (kmem_unlikely(err != 0))
		kmem_panic("%s failed: error %d", what, err);
}

/* Debug builds: who holds the mutex (kmem_mutex_owned). */
static inline void
prim_owner_set(kmem_mutex_t *mtx, bool held)
{
#ifdef KMEM_DEBUG_ASSERT
	atomic_store_explicit(&mtx->owner, held ? (uintptr_t)pthread_self() : 0,
	    memory_order_relaxed);
#else
	(void)mtx;
	(void)held;
#endif
}

bool
kmem_mutex_owned(const kmem_mutex_t *mtx)
{
#ifdef KMEM_DEBUG_ASSERT
	/* Only this thread stores its own id there: a relaxed load is exact. */
	return atomic_load_explicit(&mtx->owner, memory_order_relaxed) ==
	    (uintptr_t)pthread_self();
#else
	(void)mtx;
	return true;
#endif
}

void
kmem_mutex_init(kmem_mutex_t *mtx)
{
	prim_lock_check(
	    pthread_mutex_init(&mtx->m, NULL), "pthread_mutex_init");
	prim_owner_set(mtx, false);
}

void
kmem_mutex_destroy(kmem_mutex_t *mtx)
{
	prim_lock_check(
	    pthread_mutex_destroy(&mtx->m), "pthread_mutex_destroy");
}

void
kmem_mutex_enter(kmem_mutex_t *mtx)
{
	prim_lock_check(pthread_mutex_lock(&mtx->m), "pthread_mutex_lock");
	prim_owner_set(mtx, true);
}

bool
kmem_mutex_tryenter(kmem_mutex_t *mtx)
{
	if (pthread_mutex_trylock(&mtx->m) != 0)
		return false;
	prim_owner_set(mtx, true);
	return true;
}

void
kmem_mutex_exit(kmem_mutex_t *mtx)
{
	prim_owner_set(mtx, false);
	prim_lock_check(pthread_mutex_unlock(&mtx->m), "pthread_mutex_unlock");
}

void
kmem_cond_init(kmem_cond_t *cv)
{
	pthread_condattr_t attr;

	prim_lock_check(pthread_condattr_init(&attr), "pthread_condattr_init");
	prim_lock_check(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC),
	    "pthread_condattr_setclock");
	prim_lock_check(pthread_cond_init(&cv->c, &attr), "pthread_cond_init");
	pthread_condattr_destroy(&attr);
}

void
kmem_cond_destroy(kmem_cond_t *cv)
{
	prim_lock_check(pthread_cond_destroy(&cv->c), "pthread_cond_destroy");
}

void
kmem_cond_wait(kmem_cond_t *cv, kmem_mutex_t *mtx)
{
	prim_owner_set(mtx, false);
	prim_lock_check(
	    pthread_cond_wait(&cv->c, &mtx->m), "pthread_cond_wait");
	prim_owner_set(mtx, true);
}

bool
kmem_cond_timedwait(kmem_cond_t *cv, kmem_mutex_t *mtx, uint64_t ns)
{
	struct timespec ts;
	uint64_t t = kmem_prim_clock_ns() + ns;
	int err;

	ts.tv_sec = (time_t)(t / 1000000000u);
	ts.tv_nsec = (long)(t % 1000000000u);
	prim_owner_set(mtx, false);
	err = pthread_cond_timedwait(&cv->c, &mtx->m, &ts);
	prim_owner_set(mtx, true);
	if (err == ETIMEDOUT)
		return false;
	prim_lock_check(err, "pthread_cond_timedwait");
	return true;
}

void
kmem_cond_broadcast(kmem_cond_t *cv)
{
	prim_lock_check(
	    pthread_cond_broadcast(&cv->c), "pthread_cond_broadcast");
}

/* ---- time ---- */

long
kmem_prim_getpid(void)
{
	return (long)getpid();
}

uint64_t
kmem_prim_clock_coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
kmem_prim_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void
kmem_prim_sleep_ns(uint64_t ns)
{
	struct timespec ts;

	ts.tv_sec = (time_t)(ns / 1000000000u);
	ts.tv_nsec = (long)(ns % 1000000000u);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		continue;
}

/* ---- process ---- */

const char *
kmem_prim_progname(void)
{
	const char *n = program_invocation_short_name;

	return n != NULL && n[0] != '\0' ? n : "?";
}

uint64_t
kmem_prim_secret(void)
{
	const unsigned char *r =
	    (const unsigned char *)(uintptr_t)getauxval(AT_RANDOM);
	uint64_t s = kmem_prim_clock_ns() ^ (uint64_t)(uintptr_t)&r;

	if (r != NULL) {
		uint64_t x;

		memcpy(&x, r, sizeof x);
		s ^= x;
	}
	s = (s ^ (s >> 31)) * 0x9e3779b97f4a7c15ull;
	return s | 1; /* never 0 */
}

extern char **environ;

const char *
kmem_prim_getenv(const char *name)
{
	size_t len = strlen(name);
	char **e;

	if (environ == NULL)
		return NULL;
	for (e = environ; *e != NULL; e++) {
		if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
			return *e + len + 1;
	}
	return NULL;
}

void
kmem_prim_write_stderr(const char *buf, size_t len)
{
	int saved = errno;
	ssize_t r;

	while (len > 0) {
		r = write(STDERR_FILENO, buf, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		buf += r;
		len -= (size_t)r;
	}
	errno = saved;
}

int
kmem_prim_atfork(
    void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
	return pthread_atfork(prepare, parent, child) == 0 ? 0 : ENOMEM;
}

static void
texit_key_make(void)
{
	struct kmem_prim_proc *pp = &kmem_prim_proc;

	pp->texit_err = pthread_key_create(&pp->texit_key,
	    atomic_load_explicit(&pp->texit_fn, memory_order_relaxed));
}

int
kmem_prim_thread_exit_hook(void (*fn)(void *), void *arg)
{
	struct kmem_prim_proc *pp = &kmem_prim_proc;
	int e;

	atomic_store_explicit(&pp->texit_fn, fn, memory_order_relaxed);
	if ((e = pthread_once(&pp->texit_once, texit_key_make)) != 0)
		return e;
	if (pp->texit_err != 0)
		return pp->texit_err;
	return pthread_setspecific(pp->texit_key, arg);
}

#ifdef __GLIBC__
/*
 * Exported by every glibc since 2.2.5 (not declared in its headers): the
 * recursive lock of the list of open FILEs.  Recursive, so a fork from a
 * signal handler that interrupted stdio in this thread takes it again.
 */
extern void _IO_list_lock(void);
extern void _IO_list_unlock(void);
extern void _IO_list_resetlock(void);
#endif

void
kmem_prim_stdio_lock(void)
{
#ifdef __GLIBC__
	_IO_list_lock();
#endif
}

void
kmem_prim_stdio_unlock(bool child)
{
#ifdef __GLIBC__
	if (child)
		_IO_list_resetlock();
	else
		_IO_list_unlock();
#else
	(void)child;
#endif
}

void
kmem_prim_signals_block(kmem_prim_sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, old);
}

void
kmem_prim_signals_restore(const kmem_prim_sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

int
kmem_prim_thread_start(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t t;
	int err;

	if ((err = pthread_attr_init(&attr)) != 0)
		return err;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&t, &attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return err;
}

_Noreturn void
kmem_prim_abort(void)
{
#ifdef KMEM_COVERAGE
	kmem_coverage_dump(); /* make coverage: the counts first (error.c) */
#endif
	abort(); /* GCOVR_EXCL_LINE: run, but after the counts are written */
}

/* ---- files (the KMEM_STATS output) ---- */

int
kmem_prim_open_write(const char *path, int *fdp)
{
	int saved = errno, fd, err = 0;

	do
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		err = errno;
	else
		*fdp = fd;
	errno = saved;
	return err;
}

int
kmem_prim_write_fd(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	int saved = errno, err = 0;
	ssize_t r;

	while (len > 0) {
		r = write(fd, p, len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = errno;
			break;
		}
		if (r == 0) {
			err = EIO; /* no progress: give up rather than spin */
			break;
		}
		p += r;
		len -= (size_t)r;
	}
	errno = saved;
	return err;
}

void
kmem_prim_close(int fd)
{
	int saved = errno;

	(void)close(fd);
	errno = saved;
}

/* ---- the statistics page (KMEM_STATS_LIVE) ---- */

int
kmem_prim_stats_map(const char *path, size_t size, void **out)
{
	int saved = errno, fd, err = 0;
	void *p;

	if (unlink(path) != 0 && errno != ENOENT) {
		err = errno;
		errno = saved;
		return err;
	}
	do
		fd = open(path,
		    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		err = errno;
		errno = saved;
		return err;
	}
	/*
	 * The blocks now, not a sparse file: a write into a hole of the
	 * mapping that the file system (a full /dev/shm) cannot back is a
	 * SIGBUS in the program, on a slow path of its allocator.
	 */
	if ((err = posix_fallocate(fd, 0, (off_t)size)) != 0)
		;
	else if ((p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		      0)) == MAP_FAILED)
		err = errno;
	else
		*out = p;
	(void)close(fd);
	if (err != 0)
		(void)unlink(path);
	errno = saved;
	return err;
}

void
kmem_prim_stats_unmap(void *addr, size_t size)
{
	int saved = errno;

	(void)munmap(addr, size);
	errno = saved;
}

int
kmem_prim_unlink(const char *path)
{
	int saved = errno, err = 0;

	if (unlink(path) != 0)
		err = errno;
	errno = saved;
	return err;
}

int
kmem_prim_starttime(uint64_t *out)
{
	char buf[1024], *p;
	int saved = errno, fd, field;
	ssize_t n;
	uint64_t v = 0;

	do
		fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		int err = errno;

		errno = saved;
		return err;
	}
	do
		n = read(fd, buf, sizeof buf - 1);
	while (n < 0 && errno == EINTR);
	(void)close(fd);
	errno = saved;
	if (n <= 0)
		return EIO;
	buf[n] = '\0';
	/* The command (field 2) is in parentheses and may hold anything. */
	if ((p = strrchr(buf, ')')) == NULL)
		return EIO;
	/* ") S ppid ...": field 3 starts after ") ". */
	for (field = 2; field < 22 && *p != '\0'; p++)
		if (*p == ' ')
			field++;
	if (field != 22 || *p < '0' || *p > '9')
		return EIO;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	*out = v;
	return 0;
}

/*
 * The exit functions: a fixed table filled by kmem_prim_atexit and run,
 * newest first, by a destructor.  Slots are claimed with an atomic
 * counter and published with a release store, so registration needs no
 * lock; each slot is run at most once (exchanged with NULL), so a
 * destructor that runs twice (exit after dlclose) does nothing the second
 * time.
 */

int
kmem_prim_atexit(void (*fn)(void))
{
	unsigned i = atomic_fetch_add_explicit(
	    &kmem_prim_proc.nexitfn, 1, memory_order_relaxed);

	if (i >= KMEM_PRIM_ATEXIT_MAX) {
		atomic_fetch_sub_explicit(
		    &kmem_prim_proc.nexitfn, 1, memory_order_relaxed);
		return ENOMEM;
	}
	atomic_store_explicit(
	    &kmem_prim_proc.exitfn[i], fn, memory_order_release);
	return 0;
}

static void prim_run_exitfns(void) __attribute__((destructor));

static void
prim_run_exitfns(void)
{
	unsigned i = KMEM_PRIM_ATEXIT_MAX;
	void (*fn)(void);

	while (i-- > 0) {
		fn = atomic_exchange_explicit(
		    &kmem_prim_proc.exitfn[i], NULL, memory_order_acq_rel);
		if (fn != NULL)
			fn();
	}
}
