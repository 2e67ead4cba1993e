/*
 * port.c -- an example port of kmem's platform contract
 * (src/internal/prim.h, KMEM_FREESTANDING; docs/embedding.md), the way a
 * kernel or a bare-metal runtime would write one, and the port the test
 * main.c runs the freestanding archive on.  It is compiled as the
 * archive is: -ffreestanding -nostdinc, with no C library, no malloc and
 * no threads library -- only C11 atomics and memset/memcpy.
 *
 * Pages: a static array of PORT_MEM_SIZE bytes and one state byte per
 * page (free, reserved, committed, guard), under a spin lock; runs are
 * found first-fit at the alignment asked.  commit and purge zero the
 * pages, as fresh anonymous memory reads; a reservation that was never
 * committed is not readable in spirit (nothing enforces it here: no MMU).
 *
 * Locks: the mutex is a spin lock on an atomic (C11), with its holder
 * recorded for kmem_mutex_owned; the condition variable a generation
 * count.  This port serves one thread (the test): a wait that nobody can
 * end, or a spin lock found taken, is a deadlock, and it says so and
 * aborts rather than hang.  A port for several CPUs keeps the same code
 * and spins (with a pause) instead.
 *
 * CPU: the test sets port_cpu; kmem_prim_cpu_enter/exit count and check
 * that they pair (a kernel would turn preemption off and on).  Time: a
 * counter that kmem_prim_sleep_ns advances.
 */
#include <errno.h> /* the freestanding one: the values kmem uses */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h> /* the freestanding one: memset, memcpy */

#include "internal/prim.h"
#include "port.h"

#ifndef KMEM_FREESTANDING
#error "the port is for the freestanding build"
#endif

#define NPAGES (PORT_MEM_SIZE / PORT_PAGE_SIZE)

enum { PG_FREE, PG_RESERVED, PG_COMMITTED, PG_GUARD };

static unsigned char port_mem[PORT_MEM_SIZE]
    __attribute__((aligned(PORT_PAGE_SIZE)));
static unsigned char port_state[NPAGES];
static atomic_flag port_pages_lock = ATOMIC_FLAG_INIT;
static struct port_stats port_st;

_Atomic unsigned port_cpu;
_Atomic uint64_t port_clock = 1000000000u;
_Atomic int port_refuse_pages;
void (*_Atomic port_abort_hook)(void);

static char port_sinkbuf[4096];
static size_t port_sinklen;
#define PORT_NENV 4
static const char *port_env_name[PORT_NENV], *port_env_value[PORT_NENV];
static int port_errno_value;
static _Atomic int port_cpu_depth;

static _Noreturn void port_panic(const char *msg);

/* ---- host description ---- */

size_t
kmem_prim_page_size(void)
{
	return PORT_PAGE_SIZE;
}

unsigned
kmem_prim_ncpu(void)
{
	return PORT_NCPU;
}

unsigned
kmem_prim_cpu_current(void)
{
	return atomic_load(&port_cpu) % PORT_NCPU;
}

unsigned
kmem_prim_cpu_enter(void)
{
	if (atomic_fetch_add(&port_cpu_depth, 1) != 0)
		port_panic("kmem_prim_cpu_enter nested");
	port_st.cpu_enters++;
	return kmem_prim_cpu_current();
}

void
kmem_prim_cpu_exit(void)
{
	if (atomic_fetch_sub(&port_cpu_depth, 1) != 1)
		port_panic("kmem_prim_cpu_exit without enter");
}

uintptr_t
kmem_prim_thread_id(void)
{
	return 1; /* the one thread */
}

void **
kmem_prim_thread_slot(void)
{
	static void *slot; /* the one thread's current domain */

	return &slot;
}

int *
kmem_prim_errno(void)
{
	return &port_errno_value;
}

/* ---- pages ---- */

static void
pages_lock(void)
{
	if (atomic_flag_test_and_set_explicit(
		&port_pages_lock, memory_order_acquire))
		port_panic("page lock taken: re-entered");
}

static void
pages_unlock(void)
{
	atomic_flag_clear_explicit(&port_pages_lock, memory_order_release);
}

/* The page index of addr, if [addr, addr+size) is whole pages of ours. */
static bool
pages_of(const void *addr, size_t size, size_t *first, size_t *n)
{
	uintptr_t a = (uintptr_t)addr, base = (uintptr_t)port_mem;

	if (size == 0 || (a & (PORT_PAGE_SIZE - 1)) != 0 ||
	    (size & (PORT_PAGE_SIZE - 1)) != 0 || a < base ||
	    a - base > PORT_MEM_SIZE || size > PORT_MEM_SIZE - (a - base))
		return false;
	*first = (a - base) / PORT_PAGE_SIZE;
	*n = size / PORT_PAGE_SIZE;
	return true;
}

static bool
pages_all(size_t first, size_t n, int s1, int s2)
{
	for (size_t i = first; i < first + n; i++)
		if (port_state[i] != s1 && port_state[i] != s2)
			return false;
	return true;
}

static void
pages_set(size_t first, size_t n, int state)
{
	for (size_t i = first; i < first + n; i++) {
		if (port_state[i] == PG_COMMITTED)
			port_st.pages_committed--;
		if (port_state[i] == PG_RESERVED ||
		    port_state[i] == PG_COMMITTED)
			port_st.pages_reserved--;
		port_state[i] = (unsigned char)state;
		if (state == PG_RESERVED || state == PG_COMMITTED)
			port_st.pages_reserved++;
		if (state == PG_COMMITTED)
			port_st.pages_committed++;
	}
	if (port_st.pages_committed > port_st.peak_committed)
		port_st.peak_committed = port_st.pages_committed;
}

/*
 * First fit: n free pages starting at a multiple of align (a power of
 * two; 0 or less than a page: a page).  Lock held.  The index of the
 * run, or NPAGES.
 */
static size_t
pages_find(size_t n, size_t align)
{
	uintptr_t base = (uintptr_t)port_mem, a;
	size_t step, i, j;

	if (align < PORT_PAGE_SIZE)
		align = PORT_PAGE_SIZE;
	a = (base + align - 1) & ~(uintptr_t)(align - 1);
	step = align / PORT_PAGE_SIZE;
	for (i = (a - base) / PORT_PAGE_SIZE; i + n <= NPAGES; i += step) {
		for (j = 0; j < n && port_state[i + j] == PG_FREE; j++)
			continue;
		if (j == n)
			return i;
	}
	return NPAGES;
}

static int
pages_get(size_t size, size_t align, int state, void **out)
{
	size_t n, i;

	if (size == 0 || (size & (PORT_PAGE_SIZE - 1)) != 0 ||
	    (align & (align - 1)) != 0)
		return EINVAL;
	port_st.page_calls++;
	if (atomic_load(&port_refuse_pages)) {
		port_st.refused++;
		return ENOMEM;
	}
	n = size / PORT_PAGE_SIZE;
	pages_lock();
	i = pages_find(n, align);
	if (i == NPAGES) {
		pages_unlock();
		port_st.refused++;
		return ENOMEM;
	}
	pages_set(i, n, state);
	pages_unlock();
	if (state == PG_COMMITTED)
		memset(port_mem + i * PORT_PAGE_SIZE, 0, size);
	*out = port_mem + i * PORT_PAGE_SIZE;
	return 0;
}

int
kmem_prim_reserve(size_t size, size_t align, void **out)
{
	return pages_get(size, align, PG_RESERVED, out);
}

int
kmem_prim_alloc(size_t size, size_t align, void **out)
{
	return pages_get(size, align, PG_COMMITTED, out);
}

int
kmem_prim_commit(void *addr, size_t size)
{
	size_t first, n;

	if (!pages_of(addr, size, &first, &n))
		return EINVAL;
	pages_lock();
	if (!pages_all(first, n, PG_RESERVED, PG_COMMITTED)) {
		pages_unlock();
		return EINVAL;
	}
	/* Pages that were not readable come back zeroed; the others kept. */
	for (size_t i = first; i < first + n; i++)
		if (port_state[i] == PG_RESERVED)
			memset(
			    port_mem + i * PORT_PAGE_SIZE, 0, PORT_PAGE_SIZE);
	pages_set(first, n, PG_COMMITTED);
	pages_unlock();
	return 0;
}

int
kmem_prim_purge(void *addr, size_t size)
{
	size_t first, n;

	if (!pages_of(addr, size, &first, &n))
		return EINVAL;
	pages_lock();
	if (!pages_all(first, n, PG_COMMITTED, PG_COMMITTED)) {
		pages_unlock();
		return EINVAL;
	}
	pages_unlock();
	memset(addr, 0, size); /* reads as zero afterwards */
	return 0;
}

int
kmem_prim_decommit(void *addr, size_t size)
{
	size_t first, n;

	if (!pages_of(addr, size, &first, &n))
		return EINVAL;
	pages_lock();
	if (!pages_all(first, n, PG_RESERVED, PG_COMMITTED)) {
		pages_unlock();
		return EINVAL;
	}
	pages_set(first, n, PG_RESERVED);
	pages_unlock();
	memset(addr, 0xdb, size); /* whoever reads it now reads garbage */
	return 0;
}

int
kmem_prim_release(void *addr, size_t size)
{
	size_t first, n;

	if (!pages_of(addr, size, &first, &n))
		return EINVAL;
	pages_lock();
	if (!pages_all(first, n, PG_RESERVED, PG_COMMITTED)) {
		pages_unlock();
		return EINVAL;
	}
	pages_set(first, n, PG_FREE);
	pages_unlock();
	memset(addr, 0xdf, size);
	return 0;
}

int
kmem_prim_alloc_guarded(size_t size, void **out)
{
	size_t n, i;

	if (size == 0 || (size & (PORT_PAGE_SIZE - 1)) != 0)
		return EINVAL;
	port_st.page_calls++;
	if (atomic_load(&port_refuse_pages)) {
		port_st.refused++;
		return ENOMEM;
	}
	n = size / PORT_PAGE_SIZE;
	pages_lock();
	i = pages_find(n + 2, 0);
	if (i == NPAGES) {
		pages_unlock();
		port_st.refused++;
		return ENOMEM;
	}
	port_state[i] = PG_GUARD;
	pages_set(i + 1, n, PG_COMMITTED);
	port_state[i + 1 + n] = PG_GUARD;
	pages_unlock();
	memset(port_mem + (i + 1) * PORT_PAGE_SIZE, 0, size);
	*out = port_mem + (i + 1) * PORT_PAGE_SIZE;
	return 0;
}

int
kmem_prim_release_guarded(void *addr, size_t size)
{
	size_t first, n;

	if (!pages_of(addr, size, &first, &n) || first == 0 ||
	    first + n >= NPAGES)
		return EINVAL;
	pages_lock();
	if (port_state[first - 1] != PG_GUARD ||
	    port_state[first + n] != PG_GUARD ||
	    !pages_all(first, n, PG_COMMITTED, PG_COMMITTED)) {
		pages_unlock();
		return EINVAL;
	}
	pages_set(first, n, PG_FREE);
	port_state[first - 1] = PG_FREE;
	port_state[first + n] = PG_FREE;
	pages_unlock();
	return 0;
}

/* ---- locks: spin locks on C11 atomics ---- */

struct port_mutex {
	atomic_uint pm_locked;
	_Atomic uintptr_t pm_owner;
};
struct port_cond {
	atomic_uint pc_gen;
};
_Static_assert(sizeof(struct port_mutex) <= sizeof(struct kmem_mutex),
    "the port's mutex fits kmem's storage");
_Static_assert(sizeof(struct port_cond) <= sizeof(struct kmem_cond),
    "the port's condition fits kmem's storage");

static struct port_mutex *
pm(const kmem_mutex_t *m)
{
	return (struct port_mutex *)(uintptr_t)m;
}

void
kmem_mutex_init(kmem_mutex_t *mtx)
{
	memset(mtx, 0, sizeof *mtx); /* all zero: unlocked, the contract */
}

void
kmem_mutex_destroy(kmem_mutex_t *mtx)
{
	if (atomic_load(&pm(mtx)->pm_locked))
		port_panic("kmem_mutex_destroy of a held mutex");
}

bool
kmem_mutex_tryenter(kmem_mutex_t *mtx)
{
	struct port_mutex *m = pm(mtx);

	if (atomic_exchange_explicit(&m->pm_locked, 1, memory_order_acquire))
		return false;
	atomic_store_explicit(
	    &m->pm_owner, kmem_prim_thread_id(), memory_order_relaxed);
	port_st.mutex_enters++;
	return true;
}

void
kmem_mutex_enter(kmem_mutex_t *mtx)
{
	/* One thread: a held mutex is never let go.  Several: spin here. */
	if (!kmem_mutex_tryenter(mtx))
		port_panic("kmem_mutex_enter: deadlock (the mutex is held)");
}

void
kmem_mutex_exit(kmem_mutex_t *mtx)
{
	struct port_mutex *m = pm(mtx);

	if (!atomic_load(&m->pm_locked))
		port_panic("kmem_mutex_exit of a free mutex");
	atomic_store_explicit(&m->pm_owner, 0, memory_order_relaxed);
	atomic_store_explicit(&m->pm_locked, 0, memory_order_release);
}

bool
kmem_mutex_owned(const kmem_mutex_t *mtx)
{
	struct port_mutex *m = pm(mtx);

	return atomic_load(&m->pm_locked) &&
	    atomic_load_explicit(&m->pm_owner, memory_order_relaxed) ==
	    kmem_prim_thread_id();
}

void
kmem_spin_enter_slow(kmem_spin_t *sl)
{
	(void)sl;
	port_panic("kmem_spin_enter: deadlock (the spin lock is held)");
}

void
kmem_cond_init(kmem_cond_t *cv)
{
	memset(cv, 0, sizeof *cv);
}

void
kmem_cond_destroy(kmem_cond_t *cv)
{
	(void)cv;
}

void
kmem_cond_wait(kmem_cond_t *cv, kmem_mutex_t *mtx)
{
	(void)cv;
	(void)mtx;
	port_panic("kmem_cond_wait: no other thread to wake us");
}

/* Time passes at once: the timeout is all there is to wait for. */
bool
kmem_cond_timedwait(kmem_cond_t *cv, kmem_mutex_t *mtx, uint64_t ns)
{
	struct port_cond *c = (struct port_cond *)(uintptr_t)cv;
	unsigned gen = atomic_load(&c->pc_gen);

	kmem_mutex_exit(mtx);
	atomic_fetch_add(&port_clock, ns);
	kmem_mutex_enter(mtx);
	return atomic_load(&c->pc_gen) != gen;
}

void
kmem_cond_broadcast(kmem_cond_t *cv)
{
	atomic_fetch_add(&((struct port_cond *)(uintptr_t)cv)->pc_gen, 1);
}

/* ---- time ---- */

uint64_t
kmem_prim_clock_ns(void)
{
	return atomic_fetch_add(&port_clock, 1); /* monotonic, and moving */
}

void
kmem_prim_sleep_ns(uint64_t ns)
{
	port_st.sleeps++;
	atomic_fetch_add(&port_clock, ns);
}

uint64_t
kmem_prim_secret(void)
{
	static uint64_t s = 0x243f6a8885a308d3ull;

	port_st.secret_draws++;
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s | 1;
}

/* ---- process ---- */

static bool
port_streq(const char *a, const char *b)
{
	while (*a != '\0' && *a == *b)
		a++, b++;
	return *a == *b;
}

void
port_setenv(const char *name, const char *value)
{
	for (unsigned i = 0; i < PORT_NENV; i++)
		if (port_env_name[i] == NULL ||
		    port_streq(port_env_name[i], name)) {
			port_env_name[i] = name;
			port_env_value[i] = value;
			return;
		}
	port_panic("port_setenv: no room");
}

const char *
kmem_prim_getenv(const char *name)
{
	for (unsigned i = 0; i < PORT_NENV && port_env_name[i] != NULL; i++)
		if (port_streq(port_env_name[i], name))
			return port_env_value[i];
	return NULL;
}

void
kmem_prim_write_stderr(const char *buf, size_t len)
{
	if (len > sizeof port_sinkbuf - 1 - port_sinklen)
		len = sizeof port_sinkbuf - 1 - port_sinklen;
	memcpy(port_sinkbuf + port_sinklen, buf, len);
	port_sinklen += len;
	port_sinkbuf[port_sinklen] = '\0';
}

const char *
port_sink(void)
{
	return port_sinkbuf;
}

void
port_sink_clear(void)
{
	port_sinklen = 0;
	port_sinkbuf[0] = '\0';
}

_Noreturn void
kmem_prim_abort(void)
{
	void (*hook)(void) = atomic_load(&port_abort_hook);

	if (hook != NULL)
		hook();
	__builtin_trap();
}

static _Noreturn void
port_panic(const char *msg)
{
	static const char pfx[] = "port: ";

	kmem_prim_write_stderr(pfx, sizeof pfx - 1);
	kmem_prim_write_stderr(msg, strlen(msg));
	kmem_prim_write_stderr("\n", 1);
	kmem_prim_abort();
}

/* ---- for the test ---- */

void
port_get_stats(struct port_stats *st)
{
	*st = port_st;
}

int
port_committed(const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p, base = (uintptr_t)port_mem;
	size_t i;

	if (len == 0 || a < base || a - base >= PORT_MEM_SIZE ||
	    len > PORT_MEM_SIZE - (a - base))
		return 0;
	for (i = (a - base) / PORT_PAGE_SIZE;
	     i <= (a - base + len - 1) / PORT_PAGE_SIZE; i++)
		if (port_state[i] != PG_COMMITTED)
			return 0;
	return 1;
}
