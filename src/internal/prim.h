/*
 * prim.h -- the platform contract: every operating-system service kmem
 * uses, and nothing else.  Implemented once, in src/prim/linux.c.  No
 * other file calls mmap, munmap, madvise, mprotect, getenv, write,
 * sched_getcpu or pthread_atfork (tools/check-prim.sh enforces this).
 *
 * Conventions:
 *  - Functions that can fail return 0 or a positive errno value (ENOMEM,
 *    EINVAL) and never set errno; out-parameters are written only on
 *    success.
 *  - "page" is the OS page, kmem_prim_page_size(); page-run addresses and
 *    sizes must be multiples of it (checked: EINVAL).
 *  - Nothing here allocates through kmem or libc malloc, so every function
 *    is safe to call from inside the allocator, with arena locks held.
 *
 * Fault injection: the calls that obtain memory (kmem_prim_reserve,
 * kmem_prim_commit, kmem_prim_alloc, kmem_prim_alloc_guarded) are
 * counted; a test selects "fail the Nth such call" or "fail every call
 * from the Nth on" with kmem_prim_fault_set() or KMEM_OPTIONS=fault_nth=N
 * / fault_from=N, or "fail every call for more than N bytes of object
 * memory" with kmem_prim_fault_size().  The checks are two predictable branches
 * on a path that makes a system call.
 */
#ifndef KMEM_INTERNAL_PRIM_H
#define KMEM_INTERNAL_PRIM_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- host description ---- */

/* OS page size in bytes, a power of two; cached after the first call. */
size_t kmem_prim_page_size(void);
/* Number of configured CPUs, >= 1. */
unsigned kmem_prim_ncpu(void);
/*
 * Index of the CPU this thread is running on now, < kmem_prim_ncpu(): from
 * the rseq area glibc registers (one load), else sched_getcpu(), else a
 * hash of the thread id.  A hint: the thread may migrate at once.
 */
unsigned kmem_prim_cpu_current(void);
/* Which source kmem_prim_cpu_current() uses: "rseq", "getcpu", "hash". */
const char *kmem_prim_cpu_source(void);

/*
 * The same, inlined for fast paths: one load from the rseq area when glibc
 * registered it, else kmem_prim_cpu_current().  The result may be >= ncpu
 * on exotic CPU numbering: callers reduce it.
 */
/* 1 once rseq is known usable (hidden: see KMEM_HIDDEN, internal.h). */
extern _Atomic int kmem_prim_rseq_ready __attribute__((visibility("hidden")));
/* glibc's (2.35+); weak, so that an older glibc still loads us. */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
/*
 * A copy of __rseq_offset, made before kmem_prim_rseq_cs_init() first
 * says yes: the critical sections load it directly, not through the GOT.
 */
extern ptrdiff_t kmem_prim_rseq_off __attribute__((visibility("hidden")));

static inline unsigned
kmem_prim_cpu_fast(void)
{
#if defined(__x86_64__)
	if (__builtin_expect(atomic_load_explicit(&kmem_prim_rseq_ready,
				 memory_order_relaxed) == 1,
		1)) {
		int32_t cpu;

		/* struct rseq's cpu_id, 4 bytes in, off the thread pointer. */
		__asm__ volatile("movl %%fs:(%1), %0"
				 : "=r"(cpu)
				 : "r"(__rseq_offset + 4));
		if (__builtin_expect(cpu >= 0, 1))
			return (unsigned)cpu;
	}
#endif
	return kmem_prim_cpu_current();
}

/*
 * Restartable sequences for per-CPU fast paths (x86-64, glibc's rseq
 * area, and the kernel's membarrier RSEQ fence; not under TSan, which
 * cannot see inside them).  kmem_prim_rseq_cs_init() probes once and says
 * whether they may be used; kmem_prim_rseq_fence(cpu) aborts any
 * critical section running on that CPU (a system call: for slow paths).
 * kmem_prim_cpu_raw() is the rseq cpu_id field, -1 when not registered.
 */
bool kmem_prim_rseq_cs_init(void);
void kmem_prim_rseq_fence(unsigned cpu);

static inline int32_t
kmem_prim_cpu_raw(void)
{
#if defined(__x86_64__)
	int32_t cpu;

	if (atomic_load_explicit(&kmem_prim_rseq_ready, memory_order_relaxed) !=
	    1)
		return -1; /* not for the library: it asks only with rseq */
	__asm__ volatile("movl %%fs:(%1), %0"
			 : "=r"(cpu)
			 : "r"(__rseq_offset + 4));
	return cpu;
#else
	return -1;
#endif
}

/*
 * True while the process has never created a thread (glibc >= 2.32 keeps
 * __libc_single_threaded; elsewhere: false).  Per-CPU caches then skip
 * their locks, as glibc's own malloc does.  It only ever goes from true
 * to false, and only in the thread that calls pthread_create.
 */
#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define KMEM_PRIM_HAVE_SINGLE_THREADED 1
#endif
#endif

static inline bool
kmem_prim_single_threaded(void)
{
#ifdef KMEM_PRIM_HAVE_SINGLE_THREADED
	return __builtin_expect(__libc_single_threaded != 0, 0);
#else
	return false;
#endif
}

/* ---- page runs ---- */

/*
 * Reserve address space for "size" bytes aligned to "align" (a power of
 * two, 0 = page); not accessible until committed.  ENOMEM, EINVAL.
 */
int kmem_prim_reserve(size_t size, size_t align, void **out);
/* Make [addr, addr+size) of a reservation readable and writable (zeroed). */
int kmem_prim_commit(void *addr, size_t size);
/* Reserve and commit in one step: readable, writable and zeroed. */
int kmem_prim_alloc(size_t size, size_t align, void **out);
/*
 * Give the physical pages back; the range stays mapped and reads as zero
 * afterwards (MADV_DONTNEED on private anonymous memory).
 */
int kmem_prim_purge(void *addr, size_t size);
/* Make the range inaccessible again but keep the reservation. */
int kmem_prim_decommit(void *addr, size_t size);
/* Return the range to the OS (it may be part of a larger run). */
int kmem_prim_release(void *addr, size_t size);
/*
 * A run for metadata (meta.c): "size" bytes readable, writable and zeroed,
 * with an inaccessible guard page just below and just above them, so that
 * nothing mapped later can be adjacent to the run and an access running
 * off either end faults.  *out is the first byte after the lower guard.
 * Counted for fault injection like kmem_prim_alloc.  ENOMEM, EINVAL.
 */
int kmem_prim_alloc_guarded(size_t size, void **out);
/* Unmap a run of kmem_prim_alloc_guarded, both guard pages with it. */
int kmem_prim_release_guarded(void *addr, size_t size);

/* ---- fault injection (tests) ---- */

/*
 * nth == 0: off.  Otherwise the nth memory-obtaining call from now on
 * fails with ENOMEM; with "from_on", that call and every later one fail.
 * Resets the call counter.
 */
void kmem_prim_fault_set(uint64_t nth, bool from_on);
/*
 * max != 0: every call that obtains object memory (kmem_prim_reserve,
 * commit, alloc; not the metadata's guarded runs) for more than "max"
 * bytes fails with ENOMEM, smaller ones are served (a page source that
 * refuses big mappings); 0: off.  Independent of kmem_prim_fault_set().
 */
void kmem_prim_fault_size(size_t max);
/* Memory-obtaining calls made since the last kmem_prim_fault_set(). */
uint64_t kmem_prim_fault_calls(void);

/* ---- locks ---- */

/*
 * Debug builds (KMEM_DEBUG_ASSERT) record the holder, so that code can
 * assert that it holds a lock (kmem_mutex_owned); release builds do not,
 * and kmem_mutex_owned says true.
 */
typedef struct kmem_mutex {
	pthread_mutex_t m;
#ifdef KMEM_DEBUG_ASSERT
	_Atomic uintptr_t owner; /* pthread_self() of the holder, 0: none */
#endif
} kmem_mutex_t;
typedef struct kmem_cond {
	pthread_cond_t c;
} kmem_cond_t;
#ifdef KMEM_DEBUG_ASSERT
#define KMEM_MUTEX_INITIALIZER                                                 \
	{                                                                      \
		PTHREAD_MUTEX_INITIALIZER, 0                                   \
	}
#else
#define KMEM_MUTEX_INITIALIZER                                                 \
	{                                                                      \
		PTHREAD_MUTEX_INITIALIZER                                      \
	}
#endif

void kmem_mutex_init(kmem_mutex_t *mtx);
void kmem_mutex_destroy(kmem_mutex_t *mtx);
void kmem_mutex_enter(kmem_mutex_t *mtx);
bool kmem_mutex_tryenter(kmem_mutex_t *mtx);
void kmem_mutex_exit(kmem_mutex_t *mtx);
/*
 * True if the calling thread holds mtx (debug builds); always true in
 * release builds, where the holder is not recorded: for KMEM_ASSERT.
 */
bool kmem_mutex_owned(const kmem_mutex_t *mtx);

/*
 * For KMEM_ASSERT, a pthread mutex of caller storage (struct pool's),
 * whose holder kmem does not record: true if some thread holds it, from
 * glibc's owner field (true elsewhere).
 */
static inline bool
kmem_prim_pthread_mutex_locked(const pthread_mutex_t *m)
{
#ifdef __GLIBC__
	return m->__data.__owner != 0;
#else
	(void)m;
	return true;
#endif
}

/* Condition variables use the monotonic clock. */
/*
 * Spin locks for short per-CPU critical sections: acquire is one atomic
 * exchange, release one store.  A contended acquire spins briefly, then
 * yields the CPU (the holder may have been preempted).  Never held across
 * anything that can block.
 */
typedef struct kmem_spin {
	atomic_uint sl_locked;
} kmem_spin_t;

void kmem_spin_enter_slow(kmem_spin_t *sl);

static inline void
kmem_spin_init(kmem_spin_t *sl)
{
	atomic_init(&sl->sl_locked, 0);
}

static inline bool
kmem_spin_tryenter(kmem_spin_t *sl)
{
	return atomic_exchange_explicit(
		   &sl->sl_locked, 1, memory_order_acquire) == 0;
}

static inline void
kmem_spin_enter(kmem_spin_t *sl)
{
	if (__builtin_expect(!kmem_spin_tryenter(sl), 0))
		kmem_spin_enter_slow(sl);
}

static inline void
kmem_spin_exit(kmem_spin_t *sl)
{
	atomic_store_explicit(&sl->sl_locked, 0, memory_order_release);
}

void kmem_cond_init(kmem_cond_t *cv);
void kmem_cond_destroy(kmem_cond_t *cv);
void kmem_cond_wait(kmem_cond_t *cv, kmem_mutex_t *mtx);
/* Wait at most "ns" nanoseconds; false on timeout. */
bool kmem_cond_timedwait(kmem_cond_t *cv, kmem_mutex_t *mtx, uint64_t ns);
void kmem_cond_broadcast(kmem_cond_t *cv);

/* ---- time ---- */

/* Monotonic clock in nanoseconds. */
uint64_t kmem_prim_clock_ns(void);
/*
 * The same clock read cheaply, a few milliseconds coarse
 * (CLOCK_MONOTONIC_COARSE): for intervals of seconds on hot paths.
 */
uint64_t kmem_prim_clock_coarse_ns(void);
/*
 * 64 random bits, never 0 (the kernel's AT_RANDOM bytes, mixed with the
 * clock; no system call, no allocation): a secret for tags that a
 * program must not be able to forge by accident.  Each call draws anew.
 */
uint64_t kmem_prim_secret(void);
/* This program's name (glibc's program_invocation_short_name), or "?". */
const char *kmem_prim_progname(void);
/* This process's id (getpid). */
long kmem_prim_getpid(void);
/* Sleep for about "ns" nanoseconds. */
void kmem_prim_sleep_ns(uint64_t ns);

/* ---- process ---- */

/*
 * Value of environment variable "name" or NULL, read from the environment
 * block without allocating.  The pointer stays valid until the
 * environment is changed.
 */
const char *kmem_prim_getenv(const char *name);
/* Write all of buf to standard error (retrying short writes). */
void kmem_prim_write_stderr(const char *buf, size_t len);
/* Register fork handlers (pthread_atfork).  0 or ENOMEM. */
int kmem_prim_atfork(
    void (*prepare)(void), void (*parent)(void), void (*child)(void));
/*
 * The C library's lock that fork(2) itself takes after the atfork
 * prepare handlers have run: stdio's list lock (glibc's _IO_list_lock,
 * which fflush(NULL) holds while it waits for each FILE's lock, and a
 * FILE's lock is held across the malloc inside getline).  glibc's fork
 * takes it before its own malloc's locks; an allocator whose prepare
 * handler takes its locks first can deadlock with getline and
 * fflush(NULL) (glibc bug 19431).  So kmem's prepare handler takes it
 * first (kmem_prim_stdio_lock); the parent handler drops it
 * (kmem_prim_stdio_unlock(false)) after glibc's fork has dropped its own
 * recursive hold; the child handler resets it (true), as glibc's fork
 * does in the child.  Elsewhere than glibc: nothing.
 */
void kmem_prim_stdio_lock(void);
void kmem_prim_stdio_unlock(bool child);
/*
 * Block every signal this thread can block, saving the old mask in *old
 * (kmem_prim_signals_restore puts it back): kmem's set-up runs so, and a
 * handler that forks or allocates runs after it, never inside it.
 */
void kmem_prim_signals_block(sigset_t *old);
void kmem_prim_signals_restore(const sigset_t *old);
/*
 * Start a detached thread running fn(arg), with every signal blocked (it
 * must not take the process's signals).  0, or an errno value.
 */
int kmem_prim_thread_start(void *(*fn)(void *), void *arg);
/* Abort the process (SIGABRT), never returns. */
_Noreturn void kmem_prim_abort(void);

/* ---- files (the KMEM_STATS output) ---- */

/*
 * Open "path" for writing: created (mode 0644, less the umask) if it does
 * not exist, truncated if it does, close-on-exec.  0 and *fdp, or an errno
 * value (ENOENT, EACCES, ...).
 */
int kmem_prim_open_write(const char *path, int *fdp);
/*
 * Write all of buf to fd, retrying short writes and EINTR.  0, or the
 * errno value of the write that failed (EBADF, EPIPE, ENOSPC, ...); errno
 * itself is left unchanged.
 */
int kmem_prim_write_fd(int fd, const void *buf, size_t len);
/* Close fd (errors, EINTR included, are ignored: nothing to retry). */
void kmem_prim_close(int fd);
/*
 * Run fn when the process exits through exit() (or the library is
 * unloaded), from a library destructor: after the atexit handlers the
 * program registered once it was running, last registered first.  Unlike
 * atexit(3), which may call calloc for its table, nothing is allocated.
 * At most KMEM_PRIM_ATEXIT_MAX functions: 0, or ENOMEM when full.
 */
#define KMEM_PRIM_ATEXIT_MAX 4
int kmem_prim_atexit(void (*fn)(void));

#endif /* KMEM_INTERNAL_PRIM_H */
