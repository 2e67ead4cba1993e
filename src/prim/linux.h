/*
 * prim/linux.h -- the Linux port's half of the platform contract that
 * must be seen by the layers (included by src/internal/prim.h only): the
 * lock types, the inline fast paths (the CPU number from glibc's rseq
 * area, the lock of a struct pool), and the services only a hosted build
 * has.  The functions are in src/prim/linux.c.
 */
#ifndef KMEM_PRIM_LINUX_H
#define KMEM_PRIM_LINUX_H

#ifndef KMEM_INTERNAL_PRIM_H
#error "include internal/prim.h, not prim/linux.h"
#endif

#include <pthread.h>
#include <signal.h>
#include <time.h>

/* ---- lock types ---- */

struct kmem_mutex {
	pthread_mutex_t m;
#ifdef KMEM_DEBUG_ASSERT
	_Atomic uintptr_t owner; /* pthread_self() of the holder, 0: none */
#endif
};
struct kmem_cond {
	pthread_cond_t c;
};
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

/* An id of the calling thread, never 0 (owner fields). */
static inline uintptr_t
kmem_prim_thread_id(void)
{
	return (uintptr_t)pthread_self();
}

/*
 * The lock and condition of a struct pool (<kmem/pool.h>: caller storage,
 * pthread's types there).  Called straight, unchecked: the pool's hot
 * paths take this lock.
 */
typedef pthread_mutex_t kmem_plock_t;
typedef pthread_cond_t kmem_pcond_t;

static inline void
kmem_plock_init(kmem_plock_t *l)
{
	pthread_mutex_init(l, NULL);
}

static inline void
kmem_plock_destroy(kmem_plock_t *l)
{
	pthread_mutex_destroy(l);
}

static inline void
kmem_plock_enter(kmem_plock_t *l)
{
	pthread_mutex_lock(l);
}

static inline void
kmem_plock_exit(kmem_plock_t *l)
{
	pthread_mutex_unlock(l);
}

/*
 * For KMEM_ASSERT: true if some thread holds l, from glibc's owner field
 * (true elsewhere).  kmem does not record a pool lock's holder.
 */
static inline bool
kmem_plock_held(const kmem_plock_t *l)
{
#ifdef __GLIBC__
	return l->__data.__owner != 0;
#else
	(void)l;
	return true;
#endif
}

/* On the monotonic clock, as kmem_cond_t. */
static inline void
kmem_pcond_init(kmem_pcond_t *cv)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

static inline void
kmem_pcond_destroy(kmem_pcond_t *cv)
{
	pthread_cond_destroy(cv);
}

static inline void
kmem_pcond_wait(kmem_pcond_t *cv, kmem_plock_t *l)
{
	pthread_cond_wait(cv, l);
}

/* Wait at most "ns" nanoseconds (a wake-up may be early or spurious). */
static inline void
kmem_pcond_timedwait(kmem_pcond_t *cv, kmem_plock_t *l, uint64_t ns)
{
	struct timespec ts;
	uint64_t t = kmem_prim_clock_ns() + ns;

	ts.tv_sec = (time_t)(t / 1000000000u);
	ts.tv_nsec = (long)(t % 1000000000u);
	pthread_cond_timedwait(cv, l, &ts);
}

static inline void
kmem_pcond_broadcast(kmem_pcond_t *cv)
{
	pthread_cond_broadcast(cv);
}

/* ---- the CPU ---- */

/* Which source kmem_prim_cpu_current() uses: "rseq", "getcpu", "hash". */
const char *kmem_prim_cpu_source(void);

/*
 * The same, inlined for fast paths: one load from the rseq area when glibc
 * registered it, else kmem_prim_cpu_current().  The result may be >= ncpu
 * on exotic CPU numbering: callers reduce it.
 */
/*
 * prim's facts about the process, and its process-wide state, in one
 * object (linux.c; domain.c's "What stays global" says why it is not in
 * a domain): written by linux.c only.  Hidden (see KMEM_HIDDEN,
 * internal.h), so the inline fast paths below load a field at a
 * link-time constant address, as they did the separate variables.
 */
#define KMEM_PRIM_ATEXIT_MAX 4 /* kmem_prim_atexit's table */
struct kmem_prim_proc {
	/* Read by the inline fast paths: first. */
	_Atomic int rseq_ready; /* rseq cpu_id: 0 unknown, 1 usable, -1 not */
	/*
	 * A copy of __rseq_offset, made before kmem_prim_rseq_cs_init()
	 * first says yes: the critical sections load it directly, not
	 * through the GOT.
	 */
	ptrdiff_t rseq_off;
	/* Cached on first use (racing writers store the same value). */
	_Atomic size_t pagesize;
	_Atomic unsigned ncpu;
	_Atomic int cpu_src; /* PRIM_CPU_* (linux.c) */
	_Atomic int rseq_cs; /* critical sections: 0 unknown, 1 yes, -1 no */
	/* Fault injection (kmem_prim_fault_set, kmem_prim_fault_size). */
	_Atomic uint64_t fault_nth; /* 0 = off */
	_Atomic bool fault_from_on;
	_Atomic uint64_t fault_count; /* calls since the last set */
	_Atomic size_t fault_max;     /* 0 = off */
	/*
	 * kmem_prim_remap: -1 once the kernel has refused MREMAP_DONTUNMAP
	 * (before Linux 5.7): no page moves then; and a count that makes
	 * each call's cookie its own.
	 */
	_Atomic int remap_no;
	_Atomic uint64_t remap_seq;
	/* kmem_prim_atexit's functions and how many slots are claimed. */
	void (*_Atomic exitfn[KMEM_PRIM_ATEXIT_MAX])(void);
	_Atomic unsigned nexitfn;
	/* kmem_prim_thread_exit_hook's key, made once, and its function. */
	pthread_once_t texit_once;
	pthread_key_t texit_key;
	int texit_err;
	void (*_Atomic texit_fn)(void *);
};
extern struct kmem_prim_proc kmem_prim_proc
    __attribute__((visibility("hidden")));
/* The names the fast paths (and pool_cache_impl.h's asm) use. */
#define kmem_prim_rseq_ready (kmem_prim_proc.rseq_ready)
#define kmem_prim_rseq_off   (kmem_prim_proc.rseq_off)
/* glibc's (2.35+); weak, so that an older glibc still loads us. */
extern const ptrdiff_t __rseq_offset __attribute__((weak));

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
 * The per-CPU layer's slot: the CPU to use, from kmem_prim_cpu_enter()
 * until kmem_prim_cpu_exit().  Linux cannot keep a thread on its CPU
 * cheaply and need not: the slot's spin lock (or an rseq critical
 * section) makes a migrated thread safe (pool_cache.c section 4).
 */
static inline unsigned
kmem_prim_cpu_enter(void)
{
	return kmem_prim_cpu_fast();
}

static inline void
kmem_prim_cpu_exit(void)
{
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

/* ---- page moves (a hosted build's: the freestanding contract has none) ----
 */

/*
 * KMEM_PRIM_REMAP: this port can move pages.  kmem_prim_remap moves the
 * pages of [from, from+size) to [to, to+size) (an existing mapping of at
 * least that size, whose contents are dropped) without copying, and
 * leaves "from" mapped, reading as purged memory does (zero pages).
 * 0: moved.  EINVAL or ENOMEM: nothing moved, "to" still mapped and ours
 * (copy instead).  EFAULT: nothing moved, and "to" is no longer ours --
 * the kernel unmapped it before it failed and it could not be had back --
 * so it must never be used again (leave it allocated; copy elsewhere).
 */
#define KMEM_PRIM_REMAP 1
int kmem_prim_remap(void *from, size_t size, void *to);

/* ---- time and process ---- */

/*
 * The monotonic clock read cheaply, a few milliseconds coarse
 * (CLOCK_MONOTONIC_COARSE): for intervals of seconds on hot paths.
 */
uint64_t kmem_prim_clock_coarse_ns(void);
/* This program's name (glibc's program_invocation_short_name), or "?". */
const char *kmem_prim_progname(void);
/* This process's id (getpid). */
long kmem_prim_getpid(void);

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
typedef sigset_t kmem_prim_sigset_t;
void kmem_prim_signals_block(kmem_prim_sigset_t *old);
void kmem_prim_signals_restore(const kmem_prim_sigset_t *old);
/*
 * Start a detached thread running fn(arg), with every signal blocked (it
 * must not take the process's signals).  0, or an errno value.
 */
int kmem_prim_thread_start(void *(*fn)(void *), void *arg);
/*
 * Call fn(arg) when the calling thread exits by returning or by
 * pthread_exit (a thread-specific key's destructor: one key for the
 * process, made at the first call, whose fn every call must pass; arg
 * not NULL).  Not for the main thread's exit(3).  0, or an errno value
 * (no key, or no slot for it).
 */
int kmem_prim_thread_exit_hook(void (*fn)(void *), void *arg);

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
 * At most KMEM_PRIM_ATEXIT_MAX (above) functions: 0, or ENOMEM when full.
 */
int kmem_prim_atexit(void (*fn)(void));

/*
 * The statistics page (stats.c section 5, KMEM_STATS_LIVE): "path" made
 * anew -- a file already there is unlinked first, then created with
 * O_EXCL and O_NOFOLLOW, mode 0600, so that only the owner can read it
 * and a planted link is refused -- "size" bytes long (zero, its blocks
 * allocated: ENOSPC now rather than SIGBUS at a write), and mapped
 * shared, readable and writable, at *out.  0, or an errno value (the
 * file is removed again).  Not counted for fault injection.
 */
int kmem_prim_stats_map(const char *path, size_t size, void **out);
/* Unmap what kmem_prim_stats_map mapped (the file stays). */
void kmem_prim_stats_unmap(void *addr, size_t size);
/* Remove "path" (unlink(2)); 0 or an errno value. */
int kmem_prim_unlink(const char *path);
/*
 * This process's start time, in clock ticks after boot (field 22 of
 * /proc/self/stat): with the pid it names the process, whose pid may be
 * reused after it dies.  0 or an errno value.
 */
int kmem_prim_starttime(uint64_t *out);

#endif /* KMEM_PRIM_LINUX_H */
