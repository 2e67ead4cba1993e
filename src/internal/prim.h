/*
 * prim.h -- the platform contract: every operating-system service kmem
 * uses, and nothing else.  The layers (every file of src/ outside
 * src/prim/) see only this header; a port implements it.  Two ports exist:
 * Linux (src/prim/linux.c, whose types and inline fast paths are in
 * src/prim/linux.h) and the freestanding build (KMEM_FREESTANDING,
 * src/prim/freestanding.h: no libc, no threads library, no OS), where an
 * embedder implements the functions marked "contract" below; docs/embedding.md
 * is the porting guide, tests/freestanding/port.c an example.  No other file
 * calls mmap, munmap, madvise, mprotect, getenv, write, sched_getcpu,
 * pthread_*, clock_gettime, getpid, signal masks, open/close, atexit or abort
 * (tools/check-prim.sh enforces this).
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
 * Fault injection (Linux port): the calls that obtain memory
 * (kmem_prim_reserve, kmem_prim_commit, kmem_prim_alloc,
 * kmem_prim_alloc_guarded) are counted; a test selects "fail the Nth such
 * call" or "fail every call from the Nth on" with kmem_prim_fault_set()
 * or KMEM_OPTIONS=fault_nth=N / fault_from=N, or "fail every call for more
 * than N bytes of object memory" with kmem_prim_fault_size().  The checks
 * are two predictable branches on a path that makes a system call.
 */
#ifndef KMEM_INTERNAL_PRIM_H
#define KMEM_INTERNAL_PRIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The port's lock and condition types: complete in the port's header,
 * included at the end of this file (Linux: pthread's; freestanding:
 * opaque storage of <kmem/pool.h>, the embedder's own lock inside).
 */
typedef struct kmem_mutex kmem_mutex_t;
typedef struct kmem_cond kmem_cond_t;

/* ---- host description (contract) ---- */

/* OS page size in bytes, a power of two; cached after the first call. */
size_t kmem_prim_page_size(void);
/* Number of configured CPUs, >= 1. */
unsigned kmem_prim_ncpu(void);
/*
 * Index of the CPU this thread is running on now, < kmem_prim_ncpu().  A
 * hint: the thread may migrate at once.  (Linux: from the rseq area glibc
 * registers, one load, else sched_getcpu(), else a hash of the thread.)
 */
unsigned kmem_prim_cpu_current(void);

/* ---- page runs (contract) ---- */

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

/* ---- locks (contract) ---- */

/*
 * Sleepable mutexes.  Debug builds (KMEM_DEBUG_ASSERT) of the Linux port
 * record the holder, so that code can assert that it holds a lock
 * (kmem_mutex_owned); release builds do not, and kmem_mutex_owned says
 * true.  KMEM_MUTEX_INITIALIZER (the port's) initialises a static one.
 */
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

/* Condition variables use the monotonic clock. */
void kmem_cond_init(kmem_cond_t *cv);
void kmem_cond_destroy(kmem_cond_t *cv);
void kmem_cond_wait(kmem_cond_t *cv, kmem_mutex_t *mtx);
/* Wait at most "ns" nanoseconds; false on timeout. */
bool kmem_cond_timedwait(kmem_cond_t *cv, kmem_mutex_t *mtx, uint64_t ns);
void kmem_cond_broadcast(kmem_cond_t *cv);

/*
 * Spin locks for short per-CPU critical sections: acquire is one atomic
 * exchange, release one store (C11 atomics, the same in every port).  A
 * contended acquire calls the port's kmem_spin_enter_slow (contract),
 * which spins briefly, then yields the CPU (the holder may have been
 * preempted).  Never held across anything that can block, except the
 * mutexes that the lock order puts after it (pool_cache.c section 4).
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

/* ---- time (contract) ---- */

/* Monotonic clock in nanoseconds. */
uint64_t kmem_prim_clock_ns(void);
/* Sleep for about "ns" nanoseconds. */
void kmem_prim_sleep_ns(uint64_t ns);
/*
 * 64 random bits, never 0 (the kernel's AT_RANDOM bytes, mixed with the
 * clock; no system call, no allocation): a secret for tags that a
 * program must not be able to forge by accident.  Each call draws anew.
 */
uint64_t kmem_prim_secret(void);

/* ---- process (contract) ---- */

/*
 * Value of environment variable "name" or NULL, read from the environment
 * block without allocating.  The pointer stays valid until the
 * environment is changed.
 */
const char *kmem_prim_getenv(const char *name);
/* Write all of buf to standard error (retrying short writes). */
void kmem_prim_write_stderr(const char *buf, size_t len);
/* Abort the process (SIGABRT), never returns. */
_Noreturn void kmem_prim_abort(void);

/*
 * ---- the port ----
 *
 * Each port's header completes the lock types and provides, inline or
 * declared: KMEM_MUTEX_INITIALIZER; the lock of a struct pool (caller
 * storage: kmem_plock_t, kmem_pcond_t and their kmem_plock_* and
 * kmem_pcond_* operations); kmem_prim_thread_id(); the per-CPU layer's
 * kmem_prim_cpu_enter/exit, kmem_prim_cpu_fast, kmem_prim_cpu_raw,
 * kmem_prim_rseq_cs_init, kmem_prim_rseq_fence and
 * kmem_prim_single_threaded; and the services only a hosted build has
 * (fault injection, fork, signals, threads, files, exit functions), which
 * the freestanding port compiles out.
 */
#ifdef KMEM_FREESTANDING
#include "prim/freestanding.h"
#else
#include "prim/linux.h"
#endif

#endif /* KMEM_INTERNAL_PRIM_H */
