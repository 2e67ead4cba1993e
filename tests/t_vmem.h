/*
 * t_vmem.h -- helpers the vmem tests share.
 */
#ifndef KMEM_TESTS_T_VMEM_H
#define KMEM_TESTS_T_VMEM_H

#include <string.h>

#include <kmem/vmem.h>

#include "t.h"

/* The arena's statistics, by value. */
static inline struct kmem_vmem_stats
t_vmem_stats(const vmem_t *vm)
{
	struct kmem_vmem_stats st;

	memset(&st, 0, sizeof st);
	st.vs_size = sizeof st;
	T_EQ(kmem_vmem_stats(vm, &st), 0);
	return st;
}

#endif /* KMEM_TESTS_T_VMEM_H */
