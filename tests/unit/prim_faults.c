/*
 * prim_faults.c -- the platform layer (src/prim/linux.c) when the system
 * says no: every failure a system call or a C library function can
 * report to prim turns into the errno value, fallback or report that
 * prim.h promises.
 *
 * The C library functions prim calls are replaced for this program (a
 * definition here takes precedence over the C library's for the library
 * linked into it; the C library's own calls are not affected): each
 * passes through to the real one unless a test arms a failure.  So:
 *
 *   - sysconf: no page size or CPU count (-1), a page size that is not
 *     a power of two, an absurd CPU count: 4 KiB pages, one CPU;
 *     a page size kmem cannot use (64 KiB): kmem_init's report;
 *   - sched_getcpu: with glibc's rseq area switched off
 *     (GLIBC_TUNABLES=glibc.pthread.rseq=0, this program executed again),
 *     the CPU comes from getcpu, and when getcpu fails, from a hash of
 *     the thread; kmem works on either;
 *   - membarrier (syscall): not registered yet (registers and retries),
 *     no such CPU (nothing to fence), any other failure (report);
 *   - mmap, mprotect, madvise, munmap: ENOMEM / EINVAL from the page-run
 *     calls, out-parameters untouched;
 *   - write, open, nanosleep: EINTR retried; a write that makes no
 *     progress is EIO, not a spin; stderr closed is no hang;
 *   - pthread_atfork, pthread_attr_init, pthread_create: a warning, or
 *     the error value (the reaper thread's warning);
 *   - pthread_mutex_destroy of a held mutex: the lock-error report;
 *   - getauxval without AT_RANDOM: the secret still is not 0;
 *   - the exit-function table full: ENOMEM; the others run newest first.
 *
 * Every case runs in a child (t_child) of a parent that never calls
 * kmem, so that each starts with prim's caches (page size, CPU source)
 * empty.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <kmem/kmem.h>

#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/prim.h"
#include "t.h"

/*
 * Not under the sanitizers: their runtimes replace these functions
 * themselves (TSan must see every thread created and every mapping).
 */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PF_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PF_SANITIZER 1
#endif

#ifndef PF_SANITIZER
/* ---- the replacements ---- */

#define REAL(name)                                                             \
	static __typeof__(name) *real_##name;                                  \
	if (real_##name == NULL)                                               \
	*(void **)&real_##name = dlsym(RTLD_NEXT, #name)

/* What to do instead of the real call; 0: pass through. */
static long fake_pagesize, fake_ncpu;
static int fail_getcpu, fail_membarrier, fail_mmap, fail_mprotect;
static int fail_madvise, fail_munmap, fail_atfork, fail_attr_init;
static int fail_create, no_auxv_random;
/* mmap of this many bytes sleeps 50 ms first; munmaps of it counted. */
static size_t slow_mmap_len;
static atomic_int slow_munmaps;
/* Calls to fail with EINTR before passing through; writes returning 0. */
static int eintr_write, eintr_open, eintr_nanosleep, zero_write;
static int nanosleep_calls;

long
sysconf(int name)
{
	REAL(sysconf);
	if (name == _SC_PAGESIZE && fake_pagesize != 0)
		return fake_pagesize;
	if (name == _SC_NPROCESSORS_CONF && fake_ncpu != 0)
		return fake_ncpu;
	return real_sysconf(name);
}

int
sched_getcpu(void)
{
	REAL(sched_getcpu);
	if (fail_getcpu) {
		errno = ENOSYS;
		return -1;
	}
	return real_sched_getcpu();
}

long
syscall(long n, ...)
{
	long a[6];
	va_list ap;
	int i;

	REAL(syscall);
	va_start(ap, n);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (n == SYS_membarrier && fail_membarrier != 0) {
		errno = fail_membarrier;
		return -1;
	}
	return real_syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	REAL(mmap);
	if (fail_mmap) {
		errno = ENOMEM;
		return MAP_FAILED;
	}
	if (len == slow_mmap_len)
		kmem_prim_sleep_ns(50000000);
	return real_mmap(addr, len, prot, flags, fd, off);
}

int
mprotect(void *addr, size_t len, int prot)
{
	REAL(mprotect);
	if (fail_mprotect != 0) {
		errno = fail_mprotect;
		return -1;
	}
	return real_mprotect(addr, len, prot);
}

int
madvise(void *addr, size_t len, int advice)
{
	REAL(madvise);
	if (fail_madvise) {
		errno = EAGAIN;
		return -1;
	}
	return real_madvise(addr, len, advice);
}

int
munmap(void *addr, size_t len)
{
	REAL(munmap);
	if (fail_munmap) {
		errno = EINVAL;
		return -1;
	}
	if (len == slow_mmap_len)
		atomic_fetch_add(&slow_munmaps, 1);
	return real_munmap(addr, len);
}

ssize_t
write(int fd, const void *buf, size_t n)
{
	REAL(write);
	if (eintr_write > 0) {
		eintr_write--;
		errno = EINTR;
		return -1;
	}
	if (zero_write)
		return 0;
	return real_write(fd, buf, n);
}

int
open(const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	REAL(open);
	va_start(ap, flags);
	mode = va_arg(ap, int);
	va_end(ap);
	if (eintr_open > 0) {
		eintr_open--;
		errno = EINTR;
		return -1;
	}
	return real_open(path, flags, mode);
}

int
nanosleep(const struct timespec *req, struct timespec *rem)
{
	REAL(nanosleep);
	nanosleep_calls++;
	if (eintr_nanosleep > 0) {
		eintr_nanosleep--;
		errno = EINTR;
		return -1;
	}
	return real_nanosleep(req, rem);
}

/* glibc's pthread_atfork is a static stub over this (libc_nonshared). */
extern int __register_atfork(
    void (*)(void), void (*)(void), void (*)(void), void *);
extern void *__dso_handle;

int
pthread_atfork(void (*a)(void), void (*b)(void), void (*c)(void))
{
	if (fail_atfork)
		return ENOMEM;
	return __register_atfork(a, b, c, __dso_handle);
}

int
pthread_attr_init(pthread_attr_t *attr)
{
	REAL(pthread_attr_init);
	if (fail_attr_init)
		return ENOMEM;
	return real_pthread_attr_init(attr);
}

int
pthread_create(
    pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	REAL(pthread_create);
	if (fail_create)
		return EAGAIN;
	return real_pthread_create(t, attr, fn, arg);
}

unsigned long
getauxval(unsigned long type)
{
	REAL(getauxval);
	if (type == AT_RANDOM && no_auxv_random)
		return 0;
	return real_getauxval(type);
}

/* ---- helpers ---- */

/* fn(arg) in a child must exit 0; its stderr (for checks) into buf. */
static void
kmem_works(void)
{
	void *p[64];
	int i;

	for (i = 0; i < 64; i++) {
		p[i] = kmem_alloc((size_t)(i + 1) * 40, KM_SLEEP);
		memset(p[i], i, (size_t)(i + 1) * 40);
	}
	for (i = 0; i < 64; i++)
		kmem_free(p[i], (size_t)(i + 1) * 40);
}

/* ---- host description ---- */

static void
c_sysconf_fails(void *arg)
{
	(void)arg;
	fake_pagesize = -1;
	fake_ncpu = -1;
	T_EQ(kmem_prim_page_size(), 4096);
	T_EQ(kmem_prim_ncpu(), 1);
	kmem_works();
}

static void
c_sysconf_odd(void *arg)
{
	(void)arg;
	fake_pagesize = 5000;
	fake_ncpu = 70000;
	T_EQ(kmem_prim_page_size(), 4096);
	T_EQ(kmem_prim_ncpu(), 1);
}

static void
c_page_64k(void *arg)
{
	(void)arg;
	fake_pagesize = 65536;
	(void)kmem_alloc(8, KM_SLEEP);
}

static void
test_host(void)
{
	char buf[4096];

	t_child_ok(c_sysconf_fails, NULL, buf, sizeof buf);
	t_child_ok(c_sysconf_odd, NULL, buf, sizeof buf);
	T_ASSERT(t_expect_panic(
	    c_page_64k, NULL, "kmem_init: page size 65536 not supported"));
}

/*
 * Without glibc's rseq area (this program again, with the tunable): the
 * CPU from getcpu -- and, should getcpu stop working, from the hash --
 * or from the hash alone when getcpu never worked.
 */
static int
cpu_child(const char *mode)
{
	unsigned ncpu = kmem_prim_ncpu();

	if (strcmp(mode, "hash") == 0)
		fail_getcpu = 1;
	T_EQ(kmem_prim_rseq_cs_init(), false);
	T_ASSERT(kmem_prim_cpu_current() < ncpu);
	T_ASSERT(kmem_prim_cpu_fast() < ncpu);
	T_ASSERT(kmem_prim_cpu_raw() == -1);
	if (strcmp(mode, "hash") == 0) {
		T_ASSERT(strcmp(kmem_prim_cpu_source(), "hash") == 0);
		/* A thread's hash does not change. */
		T_EQ(kmem_prim_cpu_current(), kmem_prim_cpu_current());
	} else {
		T_ASSERT(strcmp(kmem_prim_cpu_source(), "getcpu") == 0);
		fail_getcpu = 1; /* from now on: the hash */
		T_ASSERT(kmem_prim_cpu_current() < ncpu);
	}
	kmem_works();
	return 0;
}

static void
test_cpu_source(void)
{
	int status;

	if (t_under_valgrind()) /* /proc/self/exe is valgrind's there */
		return;
	setenv("GLIBC_TUNABLES", "glibc.pthread.rseq=0", 1);
	status = t_exec_self("--cpu-getcpu", 60);
	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	status = t_exec_self("--cpu-hash", 60);
	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unsetenv("GLIBC_TUNABLES");
}

/* ---- membarrier ---- */

static void
c_fence(void *arg)
{
	(void)arg;
	/* Not registered in this process yet: registers, then fences. */
	kmem_prim_rseq_fence(0);
	kmem_prim_rseq_fence(1u << 20); /* no such CPU: nothing to do */
	/* EINVAL (no such CPU on some kernels): nothing can run there. */
	fail_membarrier = EINVAL;
	kmem_prim_rseq_fence(0);
}

/* Any other failure, or a registration that fails, is reported. */
static void
c_fence_fails(void *arg)
{
	fail_membarrier = *(int *)arg;
	kmem_prim_rseq_fence(0);
}

static void
test_rseq_fence(void)
{
	char buf[4096];
	static int nosys = ENOSYS, perm = EPERM;

	if (!t_under_valgrind()) /* valgrind does not know membarrier */
		t_child_ok(c_fence, NULL, buf, sizeof buf);
	T_ASSERT(t_expect_panic(c_fence_fails, &nosys,
	    "membarrier(PRIVATE_EXPEDITED_RSEQ, cpu 0) failed: errno 38"));
	T_ASSERT(t_expect_panic(c_fence_fails, &perm,
	    "membarrier(PRIVATE_EXPEDITED_RSEQ, cpu 0) failed: errno 1"));
}

/* ---- page runs ---- */

static void
c_page_runs(void *arg)
{
	size_t ps = kmem_prim_page_size();
	void *p = (void *)0x1234, *q;

	(void)arg;
	/* size + align overflows: ENOMEM, *out untouched. */
	T_EQ(kmem_prim_reserve(((size_t)1 << 63) + 2 * ps, (size_t)1 << 63, &p),
	    ENOMEM);
	T_EQ(kmem_prim_alloc(ps, 0, &q), 0);
	fail_mmap = 1;
	T_EQ(kmem_prim_reserve(ps, 4 * ps, &p), ENOMEM); /* aligned */
	T_EQ(kmem_prim_alloc(ps, 0, &p), ENOMEM);
	T_EQ(kmem_prim_decommit(q, ps), ENOMEM);
	fail_mmap = 0;
	T_ASSERT(p == (void *)0x1234);
	T_EQ(kmem_prim_decommit((char *)q + 1, ps), EINVAL);
	fail_mprotect = ENOMEM;
	T_EQ(kmem_prim_commit(q, ps), ENOMEM);
	fail_mprotect = EINVAL;
	T_EQ(kmem_prim_commit(q, ps), EINVAL);
	fail_mprotect = 0;
	fail_madvise = 1;
	T_EQ(kmem_prim_purge(q, ps), EINVAL);
	fail_madvise = 0;
	fail_munmap = 1;
	T_EQ(kmem_prim_release(q, ps), EINVAL);
	fail_munmap = 0;
	T_EQ(kmem_prim_release(q, ps), 0);
	/* Guarded runs: no mapping, no access, bad arguments. */
	p = (void *)0x1234;
	fail_mmap = 1;
	T_EQ(kmem_prim_alloc_guarded(ps, &p), ENOMEM);
	fail_mmap = 0;
	fail_mprotect = ENOMEM;
	T_EQ(kmem_prim_alloc_guarded(ps, &p), ENOMEM);
	fail_mprotect = 0;
	T_ASSERT(p == (void *)0x1234);
	T_EQ(kmem_prim_alloc_guarded(ps, &q), 0);
	T_EQ(kmem_prim_release_guarded((char *)q + 8, ps), EINVAL);
	T_EQ(kmem_prim_release_guarded((void *)0, ps), EINVAL);
	fail_munmap = 1;
	T_EQ(kmem_prim_release_guarded(q, ps), EINVAL);
	fail_munmap = 0;
	T_EQ(kmem_prim_release_guarded(q, ps), 0);
}

static void
test_page_runs(void)
{
	char buf[4096];

	t_child_ok(c_page_runs, NULL, buf, sizeof buf);
}

/* ---- write, open, sleep ---- */

static void
c_writes(void *arg)
{
	char path[] = "/tmp/kmem-prim-faults.XXXXXX", got[16] = "";
	int fd = mkstemp(path), fd2;

	(void)arg;
	T_ASSERT(fd >= 0);
	/* EINTR: retried, everything written, errno as it was. */
	eintr_write = 2;
	errno = 1234;
	kmem_prim_write_stderr("one\n", 4);
	eintr_write = 1;
	T_EQ(kmem_prim_write_fd(fd, "two", 3), 0);
	T_EQ(errno, 1234);
	T_EQ(pread(fd, got, sizeof got, 0), 3);
	T_ASSERT(memcmp(got, "two", 3) == 0);
	/* No progress: EIO, and stderr gives up instead of spinning. */
	zero_write = 1;
	T_EQ(kmem_prim_write_fd(fd, "x", 1), EIO);
	kmem_prim_write_stderr("lost\n", 5);
	zero_write = 0;
	/* open interrupted: retried. */
	eintr_open = 1;
	T_EQ(kmem_prim_open_write(path, &fd2), 0);
	kmem_prim_close(fd2);
	kmem_prim_close(fd);
	unlink(path);
	/* Standard error closed: the report is lost, nothing hangs. */
	close(2);
	kmem_prim_write_stderr("nowhere\n", 8);
}

static void
c_sleep(void *arg)
{
	uint64_t t0 = kmem_prim_clock_ns();

	(void)arg;
	eintr_nanosleep = 1;
	nanosleep_calls = 0;
	kmem_prim_sleep_ns(2000000);
	T_EQ(nanosleep_calls, 2);
	T_GE(kmem_prim_clock_ns() - t0, 2000000);
}

static void
test_io(void)
{
	char buf[4096];

	t_child_ok(c_writes, NULL, buf, sizeof buf);
	T_ASSERT(strcmp(buf, "one\n") == 0);
	t_child_ok(c_sleep, NULL, buf, sizeof buf);
}

/* ---- threads, fork handlers, locks ---- */

static void *
idle(void *arg)
{
	return arg;
}

static void
c_atfork_fails(void *arg)
{
	kmem_mutex_t m;

	(void)arg;
	kmem_mutex_init(&m);
	kmem_mutex_enter(&m);
	T_ASSERT(kmem_mutex_owned(&m));
	kmem_mutex_exit(&m);
	kmem_mutex_destroy(&m);
	fail_atfork = 1;
	/* What the library's constructor does at load time: it fails. */
	kmemi_fork_register();
	kmem_options_init(); /* registers nothing: no second warning */
	fail_atfork = 0;
	kmem_works();
}

static void
c_thread_fails(void *arg)
{
	(void)arg;
	fail_attr_init = 1;
	T_EQ(kmem_prim_thread_start(idle, NULL), ENOMEM);
	fail_attr_init = 0;
	fail_create = 1;
	T_EQ(kmem_prim_thread_start(idle, NULL), EAGAIN);
	/* The reaper cannot start: one warning, kmem works without it. */
	setenv("KMEM_OPTIONS", "reap_thread_ms=50", 1);
	kmem_works();
}

static void
c_mutex_destroy_held(void *arg)
{
	kmem_mutex_t m;

	(void)arg;
	kmem_mutex_init(&m);
	kmem_mutex_enter(&m);
	kmem_mutex_destroy(&m);
}

static void
test_threads(void)
{
	char buf[4096];

	t_child_ok(c_atfork_fails, NULL, buf, sizeof buf);
	T_ASSERT(strcmp(buf,
		     "kmem: warning: cannot register fork handlers: a fork "
		     "while other threads allocate may hang the child\n") == 0);
	t_child_ok(c_thread_fails, NULL, buf, sizeof buf);
	T_ASSERT(strcmp(buf,
		     "kmem: warning: KMEM_OPTIONS=reap_thread_ms=50: cannot "
		     "start the thread\n") == 0);
	T_ASSERT(t_expect_panic(c_mutex_destroy_held, NULL,
	    "kmem: pthread_mutex_destroy failed: error 16"));
}

/*
 * Two threads need the same page-map leaf at once (the leaves cleared in
 * this child, the mapping of a leaf slowed down): one installs its leaf,
 * the other gives its own back and uses the winner's; both blocks are
 * then found by free.
 */
#define NROOT (1u << PM_ROOT_BITS)
static uint32_t *saved_root[NROOT];
static pthread_barrier_t leaf_barrier;
static void *leaf_block[2];

static void *
leaf_thread(void *arg)
{
	size_t i = (size_t)(uintptr_t)arg;

	pthread_barrier_wait(&leaf_barrier);
	leaf_block[i] = kmem_alloc((1 << 20) + i * 8192, KM_SLEEP);
	return NULL;
}

static void
c_leaf_race(void *arg)
{
	pthread_t t[2];
	unsigned i;

	(void)arg;
	kmem_free(kmem_alloc(8 << 20, KM_SLEEP), 8 << 20);
	for (i = 0; i < NROOT; i++)
		saved_root[i] = atomic_exchange(&kmemi_pm_root[i], NULL);
	slow_mmap_len = sizeof(uint32_t) << PM_LEAF_SHIFT;
	T_EQ(pthread_barrier_init(&leaf_barrier, NULL, 2), 0);
	for (i = 0; i < 2; i++)
		T_EQ(pthread_create(
			 &t[i], NULL, leaf_thread, (void *)(uintptr_t)i),
		    0);
	for (i = 0; i < 2; i++)
		T_EQ(pthread_join(t[i], NULL), 0);
	slow_mmap_len = 0;
	printf("   leaves given back after a lost race: %d\n",
	    atomic_load(&slow_munmaps));
	for (i = 0; i < 2; i++)
		kmem_free(leaf_block[i], (1 << 20) + i * 8192);
	for (i = 0; i < NROOT; i++)
		atomic_store(&kmemi_pm_root[i], saved_root[i]);
	kmem_works();
}

static void
test_leaf_race(void)
{
	char buf[4096];

	t_child_ok(c_leaf_race, NULL, buf, sizeof buf);
}

/* ---- process ---- */

static void
ex_a(void)
{
	fputs("a", stderr);
}
static void
ex_b(void)
{
	fputs("b", stderr);
}
static void
ex_c(void)
{
	fputs("c", stderr);
}
static void
ex_d(void)
{
	fputs("d\n", stderr);
}

static void
c_atexit(void *arg)
{
	(void)arg;
	T_EQ(kmem_prim_atexit(ex_d), 0);
	T_EQ(kmem_prim_atexit(ex_c), 0);
	T_EQ(kmem_prim_atexit(ex_b), 0);
	T_EQ(kmem_prim_atexit(ex_a), 0);
	T_EQ(kmem_prim_atexit(ex_a), ENOMEM);
	exit(0); /* the table runs from a destructor: exit, not _exit */
}

static void
c_process(void *arg)
{
	(void)arg;
	no_auxv_random = 1;
	T_NE(kmem_prim_secret(), 0);
	T_NE(kmem_prim_secret(), kmem_prim_secret());
	program_invocation_short_name = (char *)"";
	T_ASSERT(strcmp(kmem_prim_progname(), "?") == 0);
	environ = NULL; /* clearenv(3) may leave it so */
	T_ASSERT(kmem_prim_getenv("PATH") == NULL);
}

static void
test_process(void)
{
	char buf[4096];

	t_child_ok(c_atexit, NULL, buf, sizeof buf);
	T_ASSERT(strcmp(buf, "abcd\n") == 0); /* newest first */
	t_child_ok(c_process, NULL, buf, sizeof buf);
}

#endif /* !PF_SANITIZER */

int
main(int argc, char **argv)
{
#ifdef PF_SANITIZER
	(void)argc;
	(void)argv;
	t_skip("the sanitizer's runtime replaces the functions replaced here");
#else
	if (argc == 2 && strncmp(argv[1], "--cpu-", 6) == 0)
		return cpu_child(argv[1] + 6);
	/* No kmem call in this process: each child starts afresh. */
	T_RUN(test_host);
	T_RUN(test_cpu_source);
	T_RUN(test_rseq_fence);
	T_RUN(test_page_runs);
	T_RUN(test_io);
	T_RUN(test_threads);
	T_RUN(test_leaf_race);
	T_RUN(test_process);
	return t_done();
#endif
}
