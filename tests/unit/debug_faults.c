/*
 * debug_faults.c -- the debug layer (KMEM_DEBUG) when memory runs out,
 * and its rarer corners:
 *
 *   - no memory for the record table, or for the guard quarantine: the
 *     report says which;
 *   - guard slots that cannot be reserved or committed: KM_NOSLEEP gets
 *     NULL, KM_SLEEP the report; sizes that overflow: NULL;
 *   - the allocator under the debug layer failing: NULL, or (KM_SLEEP)
 *     the retry until memory comes back, for the aligned path too;
 *   - the size a malloc'd block was asked with (malloc_usable_size);
 *   - a pointer past a guard slot's object: not kmem's;
 *   - guard_depth values that are not numbers, or out of range.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kmem/kmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/prim.h"
#include "t.h"
#include "t_fault.h"

/* Debugging on, and one block allocated and freed (tables made). */
static void
debug_on(const char *spec)
{
	kmem_options_init();
	kmem_opts.vmem_sleep_retry_ms = 1;
	kmem_free(kmem_alloc(100, KM_SLEEP), 100);
	T_NE(kmemi_debug_configure(spec), 0);
	kmem_free(kmem_alloc(100, KM_SLEEP), 100);
}

/* ---- metadata ---- */

static void
c_no_record_table(void *arg)
{
	(void)arg;
	/* An object in its cache, so that only the table needs memory. */
	kmem_free(kmem_alloc(64, KM_SLEEP), 64);
	T_NE(kmemi_debug_configure("size"), 0);
	t_meta_exhaust();
	(void)kmem_alloc(64, KM_SLEEP);
}

static void
c_no_quarantine(void *arg)
{
	void *p;

	(void)arg;
	kmem_init();
	T_NE(kmemi_debug_configure("guard"), 0);
	p = kmem_alloc(100, KM_SLEEP);
	t_meta_exhaust();
	kmem_free(p, 100);
}

static void
test_metadata(void)
{
	T_ASSERT(t_expect_panic(c_no_record_table, NULL,
	    "kmem: kmem_alloc(64): KMEM_DEBUG: no memory for the record "
	    "table"));
	T_ASSERT(t_expect_panic(c_no_quarantine, NULL,
	    ", 100): KMEM_DEBUG=guard: no memory for the quarantine"));
}

/* ---- guard slots ---- */

static void
c_guard_nomem(void *arg)
{
	(void)arg;
	debug_on("guard");
	/* No reservation. */
	kmem_prim_fault_set(1, true);
	T_ASSERT(kmem_alloc(100, KM_NOSLEEP) == NULL);
	/* A reservation, but no commit. */
	kmem_prim_fault_set(2, false);
	T_ASSERT(kmem_alloc(100, KM_NOSLEEP) == NULL);
	T_EQ(kmem_prim_fault_calls(), 2);
	kmem_prim_fault_set(0, false);
	/* Sizes whose slot does not fit in the address space. */
	T_ASSERT(kmemi_debug_alloc("kmem_alloc", SIZE_MAX - 100, KM_NOSLEEP) ==
	    NULL);
	T_ASSERT(kmemi_debug_alloc_aligned("memalign", SIZE_MAX / 2,
		     (size_t)1 << 62, KM_NOSLEEP) == NULL);
	kmem_free(kmem_alloc(100, KM_NOSLEEP), 100);
}

static void
c_guard_sleep_nomem(void *arg)
{
	(void)arg;
	debug_on("guard");
	kmem_prim_fault_set(1, true);
	(void)kmem_alloc(100, KM_SLEEP);
}

static void
c_past_guard_object(void *arg)
{
	char *p;

	(void)arg;
	debug_on("guard");
	p = kmem_alloc(100, KM_SLEEP);
	kmem_free(p + 200, 100);
}

static void
test_guard(void)
{
	char buf[4096];

	t_child_ok(c_guard_nomem, NULL, buf, sizeof buf);
	T_ASSERT(t_expect_panic(c_guard_sleep_nomem, NULL,
	    "kmem: kmem_alloc(100, KM_SLEEP): KMEM_DEBUG=guard: out of "
	    "address space"));
	T_ASSERT(t_expect_panic(c_past_guard_object, NULL,
	    ", 100): pointer not allocated by kmem\n"));
}

/* ---- the allocator underneath ---- */

static void
c_raw_nomem(void *arg)
{
	size_t big = (size_t)64 << 20;
	pthread_t t;
	void *p;

	(void)arg;
	debug_on("size,redzone");
	kmem_prim_fault_set(1, true);
	T_ASSERT(kmem_alloc(big, KM_NOSLEEP) == NULL);
	T_ASSERT(kmemi_debug_alloc_aligned("memalign", big, 8192, KM_NOSLEEP) ==
	    NULL);
	/* KM_SLEEP waits until memory comes back. */
	t_fault_off_after(30000000, &t);
	p = kmemi_debug_alloc_aligned("memalign", big, 8192, KM_SLEEP);
	T_EQ(pthread_join(t, NULL), 0);
	T_ASSERT(p != NULL && ((uintptr_t)p & 8191) == 0);
	T_EQ(kmemi_debug_usable("malloc_usable_size", p), big);
	kmemi_debug_free_unsized("free", p);
	/* Beyond what kmem can ever allocate: NULL at once. */
	T_ASSERT(kmemi_debug_alloc_aligned("memalign", ((size_t)1 << 47) - 1,
		     32, KM_NOSLEEP) == NULL);
	/* Through the class caches: the size asked for. */
	p = kmemi_debug_alloc_aligned("malloc", 100, 16, KM_SLEEP);
	T_EQ(kmemi_debug_usable("malloc_usable_size", p), 100);
	kmemi_debug_free_unsized("free", p);
}

static void
test_raw(void)
{
	char buf[4096];

	t_child_ok(c_raw_nomem, NULL, buf, sizeof buf);
}

/* ---- guard_depth ---- */

static void
c_depths(void *arg)
{
	(void)arg;
	kmem_init();
	T_EQ(kmemi_debug_configure("guard_depth=12x,guard_depth=0,"
				   "guard_depth=99999999999999999999,"
				   "guard_depth=,size"),
	    KMEM_DEBUG_SIZE);
}

static void
test_depths(void)
{
	char buf[4096];

	t_child_ok(c_depths, NULL, buf, sizeof buf);
	T_ASSERT(strstr(buf, "bad item 'guard_depth=12x'") != NULL);
	T_ASSERT(strstr(buf, "bad item 'guard_depth=0'") != NULL);
	T_ASSERT(strstr(buf, "bad item 'guard_depth=9999") != NULL);
	T_ASSERT(strstr(buf, "unknown item 'guard_depth='") != NULL);
}

int
main(void)
{
	T_RUN(test_metadata);
	T_RUN(test_guard);
	T_RUN(test_raw);
	T_RUN(test_depths);
	return t_done();
}
