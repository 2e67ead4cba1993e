/*
 * port.h -- what the example port (port.c) offers its test (main.c)
 * besides the platform contract: the knobs a kernel would not have (the
 * CPU number, the clock, a page source that refuses) and the counters
 * that let the test check what kmem asked of it.
 */
#ifndef KMEM_TESTS_FREESTANDING_PORT_H
#define KMEM_TESTS_FREESTANDING_PORT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define PORT_PAGE_SIZE 4096u
#define PORT_NCPU      4u
#define PORT_MEM_SIZE  (128u << 20) /* the static array pages come from */

/* The "CPU" the one thread runs on: set by the test, read by the port. */
extern _Atomic unsigned port_cpu;
/* The monotonic clock, ns: kmem_prim_sleep_ns advances it, so may the test. */
extern _Atomic uint64_t port_clock;
/* != 0: page requests (reserve, alloc, alloc_guarded) fail from now on. */
extern _Atomic int port_refuse_pages;

struct port_stats {
	size_t pages_reserved;	/* pages in a reservation (data, not guards) */
	size_t pages_committed; /* of them, readable and writable */
	size_t peak_committed;
	unsigned long page_calls;   /* reserve + alloc + alloc_guarded */
	unsigned long refused;	    /* page requests refused */
	unsigned long cpu_enters;   /* kmem_prim_cpu_enter calls */
	unsigned long mutex_enters; /* kmem_mutex_enter + tryenter */
	unsigned long secret_draws; /* kmem_prim_secret calls */
	unsigned long sleeps;	    /* kmem_prim_sleep_ns calls */
};
void port_get_stats(struct port_stats *st);
/* Whether [p, p + len) lies in committed pages of the static array. */
int port_committed(const void *p, size_t len);

/*
 * The error sink: what kmem wrote (kmem_prim_write_stderr), NUL-ended.
 * port_sink_clear() empties it.  The abort hook is the test's: called by
 * kmem_prim_abort, it must not return (the port traps if it does).
 */
const char *port_sink(void);
void port_sink_clear(void);
extern void (*_Atomic port_abort_hook)(void);

/* The port's errno (the contract's kmem_prim_errno). */
int *kmem_prim_errno(void);

/* The environment kmem_prim_getenv reads: up to 4 variables. */
void port_setenv(const char *name, const char *value);

#endif
