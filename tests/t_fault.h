/*
 * t_fault.h -- a helper the fault-injection tests share.
 *
 *   t_fault_off_after(ns, &thread)  a thread that turns prim's fault
 *                                   injection off after ns nanoseconds
 *                                   (join it), so that a KM_SLEEP or
 *                                   VM_SLEEP call in progress succeeds
 *   t_meta_exhaust()                every request for memory fails from
 *                                   now on, and the metadata arena has
 *                                   nothing left: the next metadata
 *                                   allocation (a table, a cache) fails
 */
#ifndef KMEM_TESTS_T_FAULT_H
#define KMEM_TESTS_T_FAULT_H

#include <pthread.h>
#include <stdint.h>

#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/meta.h"
#include "internal/prim.h"
#include "t.h"

static inline void *
t_fault_off_thread(void *arg)
{
	kmem_prim_sleep_ns((uint64_t)(uintptr_t)arg);
	kmem_prim_fault_set(0, false);
	return NULL;
}

static inline void
t_fault_off_after(uint64_t ns, pthread_t *t)
{
	T_EQ(pthread_create(t, NULL, t_fault_off_thread, (void *)(uintptr_t)ns),
	    0);
}

static inline void
t_meta_exhaust(void)
{
	size_t sz;
	void *m;

	kmem_prim_fault_set(1, true);
	for (sz = (size_t)128 << 10; sz >= 4096; sz /= 2)
		while (kmemi_meta_alloc(&kmemi_dom0, sz, VM_NOSLEEP, &m) == 0)
			continue;
}

#endif /* KMEM_TESTS_T_FAULT_H */
