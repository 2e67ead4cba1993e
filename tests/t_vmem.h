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

/*
 * A failed call left the arena as it was: same bytes, segments and spans
 * (the failure counter is the caller's to check).
 */
static inline void
t_vmem_unchanged(
    const struct kmem_vmem_stats *s0, const struct kmem_vmem_stats *s1)
{
	T_EQ(s1->vs_inuse, s0->vs_inuse);
	T_EQ(s1->vs_total, s0->vs_total);
	T_EQ(s1->vs_imported, s0->vs_imported);
	T_EQ(s1->vs_nbusy, s0->vs_nbusy);
	T_EQ(s1->vs_nfree, s0->vs_nfree);
	T_EQ(s1->vs_import, s0->vs_import);
	T_EQ(s1->vs_release, s0->vs_release);
}

#endif /* KMEM_TESTS_T_VMEM_H */
