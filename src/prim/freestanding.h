/*
 * prim/freestanding.h -- the port half of the platform contract in the
 * freestanding build (KMEM_FREESTANDING; included by src/internal/prim.h
 * only).  No libc, no threads library, no OS: the embedder implements
 * the contract's functions (prim.h, and the three declared below) in its
 * own code -- docs/embedding.md is the guide, tests/freestanding/port.c
 * an example.  What only a hosted build has is compiled out here, inline:
 * restartable sequences (the per-CPU layer takes its spin locks, inside
 * kmem_prim_cpu_enter/exit), fault injection, fork handlers, signal
 * masks, the reaper thread, the KMEM_STATS file and its exit function.
 *
 * Locks: struct kmem_mutex and struct kmem_cond are opaque storage
 * (<kmem/pool.h>, KMEM_PORT_LOCK_SIZE bytes, pointer-aligned) that the
 * port casts to its own lock.  An all-zero one must be a valid, unlocked
 * mutex (KMEM_MUTEX_INITIALIZER, static locks), as kmem_mutex_init makes
 * one.  A struct pool's lock and condition are the same types.
 */
#ifndef KMEM_PRIM_FREESTANDING_H
#define KMEM_PRIM_FREESTANDING_H

#ifndef KMEM_INTERNAL_PRIM_H
#error "include internal/prim.h, not prim/freestanding.h"
#endif

#include <kmem/pool.h> /* struct kmem_mutex, struct kmem_cond */

#define KMEM_MUTEX_INITIALIZER                                                 \
	{                                                                      \
		{                                                              \
			{                                                      \
				0                                              \
			}                                                      \
		}                                                              \
	}

/* ---- contract: the freestanding port's own four ---- */

/*
 * An id of the calling thread (a kernel: its LWP or task), never 0:
 * kmem compares it with the one it stored to know that the caller is
 * the thread inside its one-time set-up.
 */
uintptr_t kmem_prim_thread_id(void);
/*
 * A pointer-sized slot of the calling thread's own, zero in a new thread
 * (a kernel: a field of its LWP or task): kmem keeps the thread's current
 * domain there (<kmem/domain.h>; the hosted build uses thread-local
 * storage).  Never NULL.
 */
void **kmem_prim_thread_slot(void);
/*
 * The per-CPU layer's slot: kmem_prim_cpu_enter() returns the CPU to use
 * (< kmem_prim_ncpu(), or reduced modulo it) and should keep the caller
 * on that CPU until the matching kmem_prim_cpu_exit() -- a kernel turns
 * preemption off.  Pairs never nest on one thread.  Between them kmem
 * holds that slot's spin lock and may take the cache's depot mutex, but
 * never sleeps for memory nor runs a constructor.  Staying on the CPU is
 * for speed only (a holder that is preempted makes the others spin):
 * correctness comes from the spin lock, so "return
 * kmem_prim_cpu_current(); / nothing" is a valid port.
 */
unsigned kmem_prim_cpu_enter(void);
void kmem_prim_cpu_exit(void);
/*
 * Where errno lives: the few calls whose interface reports through errno
 * (vmem_create and friends, as NetBSD's userland vmem) store there.  A
 * port without errno returns a per-thread int, or a scratch one whose
 * value it ignores.  The freestanding <errno.h> (src/prim/freestanding/
 * include) defines errno as (*kmem_prim_errno()).
 */
int *kmem_prim_errno(void);

/* ---- the lock of a struct pool: a kmem_mutex_t ---- */

typedef kmem_mutex_t kmem_plock_t;
typedef kmem_cond_t kmem_pcond_t;

static inline void
kmem_plock_init(kmem_plock_t *l)
{
	kmem_mutex_init(l);
}

static inline void
kmem_plock_destroy(kmem_plock_t *l)
{
	kmem_mutex_destroy(l);
}

static inline void
kmem_plock_enter(kmem_plock_t *l)
{
	kmem_mutex_enter(l);
}

static inline void
kmem_plock_exit(kmem_plock_t *l)
{
	kmem_mutex_exit(l);
}

static inline bool
kmem_plock_held(const kmem_plock_t *l)
{
	return kmem_mutex_owned(l);
}

static inline void
kmem_pcond_init(kmem_pcond_t *cv)
{
	kmem_cond_init(cv);
}

static inline void
kmem_pcond_destroy(kmem_pcond_t *cv)
{
	kmem_cond_destroy(cv);
}

static inline void
kmem_pcond_wait(kmem_pcond_t *cv, kmem_plock_t *l)
{
	kmem_cond_wait(cv, l);
}

static inline void
kmem_pcond_timedwait(kmem_pcond_t *cv, kmem_plock_t *l, uint64_t ns)
{
	(void)kmem_cond_timedwait(cv, l, ns);
}

static inline void
kmem_pcond_broadcast(kmem_pcond_t *cv)
{
	kmem_cond_broadcast(cv);
}

/* ---- the CPU: no restartable sequences ---- */

static inline const char *
kmem_prim_cpu_source(void)
{
	return "port";
}

static inline unsigned
kmem_prim_cpu_fast(void)
{
	return kmem_prim_cpu_current();
}

static inline bool
kmem_prim_rseq_cs_init(void)
{
	return false;
}

static inline void
kmem_prim_rseq_fence(unsigned cpu)
{
	(void)cpu;
}

static inline int32_t
kmem_prim_cpu_raw(void)
{
	return -1;
}

/* Threads may exist from the start: the per-CPU layer always locks. */
static inline bool
kmem_prim_single_threaded(void)
{
	return false;
}

/* ---- compiled out: fault injection (the Linux port's, for tests) ---- */

static inline void
kmem_prim_fault_set(uint64_t nth, bool from_on)
{
	(void)nth;
	(void)from_on;
}

static inline void
kmem_prim_fault_size(size_t max)
{
	(void)max;
}

static inline uint64_t
kmem_prim_fault_calls(void)
{
	return 0;
}

/* ---- time and process ---- */

static inline uint64_t
kmem_prim_clock_coarse_ns(void)
{
	return kmem_prim_clock_ns();
}

static inline const char *
kmem_prim_progname(void)
{
	return "kmem";
}

static inline long
kmem_prim_getpid(void)
{
	return 0;
}

/* No fork(2): nothing to register, no stdio to lock. */
static inline int
kmem_prim_atfork(
    void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
	(void)prepare;
	(void)parent;
	(void)child;
	return 0;
}

static inline void
kmem_prim_stdio_lock(void)
{
}

static inline void
kmem_prim_stdio_unlock(bool child)
{
	(void)child;
}

/* No signals to block. */
typedef struct {
	int unused;
} kmem_prim_sigset_t;

static inline void
kmem_prim_signals_block(kmem_prim_sigset_t *old)
{
	old->unused = 0;
}

static inline void
kmem_prim_signals_restore(const kmem_prim_sigset_t *old)
{
	(void)old;
}

/*
 * No threads to start: KMEM_OPTIONS=reap_thread_ms=N warns and the
 * embedder calls kmem_reap() from its own periodic work instead.
 */
static inline int
kmem_prim_thread_start(void *(*fn)(void *), void *arg)
{
	(void)fn;
	(void)arg;
	return 38; /* ENOSYS on Linux; any non-zero value fails */
}

/* ---- no files: KMEM_STATS=... warns that it cannot write ---- */

static inline int
kmem_prim_open_write(const char *path, int *fdp)
{
	(void)path;
	(void)fdp;
	return 38; /* ENOSYS */
}

static inline int
kmem_prim_write_fd(int fd, const void *buf, size_t len)
{
	(void)fd;
	(void)buf;
	(void)len;
	return 38; /* ENOSYS */
}

static inline void
kmem_prim_close(int fd)
{
	(void)fd;
}

#define KMEM_PRIM_ATEXIT_MAX 0
static inline int
kmem_prim_atexit(void (*fn)(void))
{
	(void)fn;
	return 12; /* ENOMEM: no room, no exit functions */
}

/* No files: KMEM_STATS_LIVE warns that it cannot make its page. */
static inline int
kmem_prim_stats_map(const char *path, size_t size, void **out)
{
	(void)path;
	(void)size;
	(void)out;
	return 38; /* ENOSYS */
}

static inline void
kmem_prim_stats_unmap(void *addr, size_t size)
{
	(void)addr;
	(void)size;
}

static inline int
kmem_prim_unlink(const char *path)
{
	(void)path;
	return 38; /* ENOSYS */
}

static inline int
kmem_prim_starttime(uint64_t *out)
{
	(void)out;
	return 38; /* ENOSYS */
}

#endif /* KMEM_PRIM_FREESTANDING_H */
