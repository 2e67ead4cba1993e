/*
 * t_fault.h -- a helper the fault-injection tests share.
 *
 *   t_fault_off_after(ns, &thread)  a thread that turns prim's fault
 *                                   injection off after ns nanoseconds
 *                                   (join it), so that a KM_SLEEP or
 *                                   VM_SLEEP call in progress succeeds
 */
#ifndef KMEM_TESTS_T_FAULT_H
#define KMEM_TESTS_T_FAULT_H

#include <pthread.h>
#include <stdint.h>

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

#endif /* KMEM_TESTS_T_FAULT_H */
