/*
 * vmem_api.c -- unit tests for every public vmem function and flag,
 * checked against docs/vmem-contract.md: creation, spans, the three fit
 * policies, constrained allocation (checked against an exact model of the
 * free segments), exact-address allocation, freeing and coalescing,
 * sizes, printing, statistics, quantum caches (what the arena counts,
 * pairing, reaping), sleeping, and import/release.
 */
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>

#include "t.h"
#include "t_vmem.h"

#define NOSLEEP VM_NOSLEEP
#define FULL	VMEM_ADDR_MIN, VMEM_ADDR_MAX
#define ANY	0, 0, 0, FULL

/* ---- helpers ---- */

static char pbuf[1 << 16];
static size_t plen;

static void
pr_reset(void)
{
	plen = 0;
	pbuf[0] = '\0';
}

static void pr_buf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
pr_buf(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (plen >= sizeof pbuf - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(pbuf + plen, sizeof pbuf - plen, fmt, ap);
	va_end(ap);
	if (n > 0) {
		plen += (size_t)n;
		if (plen > sizeof pbuf - 1)
			plen = sizeof pbuf - 1;
	}
}

/* Run fn() with stderr sent to /dev/null (the NULL-pr printers). */
static void
quiet(void (*fn)(void *), void *arg)
{
	int saved, devnull;

	fflush(stderr);
	saved = dup(2);
	devnull = open("/dev/null", O_WRONLY);
	T_ASSERT(saved >= 0 && devnull >= 0);
	dup2(devnull, 2);
	close(devnull);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
}

static vmem_t *
mk(const char *name, vmem_addr_t base, vmem_size_t size, vmem_size_t q,
    vmem_size_t qcache_max)
{
	vmem_t *vm = vmem_create(name, base, size, q, NULL, NULL, NULL,
	    qcache_max, VM_SLEEP, IPL_NONE);

	if (vm == NULL)
		T_FAIL("vmem_create(%s) failed: %s", name, strerror(errno));
	return vm;
}

static vmem_addr_t
xa(vmem_t *vm, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
    vmem_size_t nocross, vmem_addr_t minaddr, vmem_addr_t maxaddr,
    vm_flag_t flags)
{
	vmem_addr_t a = 0;
	int rc = vmem_xalloc(
	    vm, size, align, phase, nocross, minaddr, maxaddr, flags, &a);

	if (rc != 0)
		T_FAIL("vmem_xalloc(size %#zx align %#zx phase %#zx nocross "
		       "%#zx min %#jx max %#jx flags %#x) = %d",
		    size, align, phase, nocross, (uintmax_t)minaddr,
		    (uintmax_t)maxaddr, flags, rc);
	return a;
}

static int
xa_rc(vmem_t *vm, vmem_size_t size, vmem_size_t align, vmem_size_t phase,
    vmem_size_t nocross, vmem_addr_t minaddr, vmem_addr_t maxaddr,
    vm_flag_t flags)
{
	vmem_addr_t a = 0;

	return vmem_xalloc(
	    vm, size, align, phase, nocross, minaddr, maxaddr, flags, &a);
}

static vmem_addr_t
al(vmem_t *vm, vmem_size_t size, vm_flag_t flags)
{
	vmem_addr_t a = 0;
	int rc = vmem_alloc(vm, size, flags, &a);

	if (rc != 0)
		T_FAIL("vmem_alloc(size %#zx flags %#x) = %d", size, flags, rc);
	return a;
}

/* Check the contract's guarantees for one result. */
static void
check_constraints(vmem_addr_t a, vmem_size_t rsize, vmem_size_t q,
    vmem_size_t align, vmem_size_t phase, vmem_size_t nocross,
    vmem_addr_t minaddr, vmem_addr_t maxaddr)
{
	vmem_size_t alg = align ? align : q;

	T_EQ(a % q, 0);
	T_EQ((a - phase) % alg, 0);
	T_GE(a, minaddr);
	T_LE(rsize - 1, maxaddr - a);
	T_LE(a, maxaddr);
	if (nocross != 0)
		T_EQ(a / nocross, (a + rsize - 1) / nocross);
}

/* [a, a+size) inside [lo, end)? */
static bool
within(vmem_addr_t a, vmem_size_t size, vmem_addr_t lo, vmem_addr_t end)
{
	return a >= lo && a + size <= end;
}

/* ---- creation ---- */

static void
test_create_static(void)
{
	vmem_t *vm = vmem_create("static", 0x10000, 0x4000, 0x100, NULL, NULL,
	    NULL, 0, VM_SLEEP, IPL_NONE);
	struct kmem_vmem_stats st;
	vmem_addr_t a[0x40], x;
	bool seen[0x40] = {false};
	int i;

	T_ASSERT(vm != NULL);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	T_EQ(vmem_size(vm, VMEM_FREE), 0x4000);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0x4000);
	st = t_vmem_stats(vm);
	T_EQ(st.vs_size, sizeof st);
	T_ASSERT(strcmp(st.vs_name, "static") == 0);
	T_EQ(st.vs_quantum, 0x100);
	T_EQ(st.vs_total, 0x4000);
	T_EQ(st.vs_imported, 0);
	T_EQ(st.vs_inuse, 0);
	T_EQ(st.vs_nfree, 1);
	T_EQ(st.vs_nbusy, 0);
	T_GE(st.vs_hashsize, 1);
	for (i = 0; i < 0x40; i++) {
		a[i] = al(vm, 0x100, NOSLEEP);
		T_EQ(a[i] % 0x100, 0);
		T_GE(a[i], 0x10000);
		T_LT(a[i], 0x14000);
		T_ASSERT(!seen[(a[i] - 0x10000) / 0x100]);
		seen[(a[i] - 0x10000) / 0x100] = true;
	}
	T_EQ(vmem_alloc(vm, 0x100, NOSLEEP, &x), ENOMEM);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0x4000);
	T_EQ(vmem_size(vm, VMEM_FREE), 0);
	for (i = 0; i < 0x40; i++)
		vmem_free(vm, a[i], 0x100);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	st = t_vmem_stats(vm);
	T_EQ(st.vs_nfree, 1);
	T_EQ(st.vs_nbusy, 0);
	/* The static span is still there in one piece. */
	T_EQ(xa(vm, 0x4000, ANY, NOSLEEP), 0x10000);
	vmem_xfree(vm, 0x10000, 0x4000);
	vmem_destroy(vm);
}

/* Quantum 1: an ID allocator. */
static void
test_create_id_arena(void)
{
	vmem_t *vm = mk("ids", 1, 100, 1, 0);
	bool seen[101] = {false};
	vmem_addr_t a, x;
	int i;

	for (i = 0; i < 100; i++) {
		a = al(vm, 1, VM_SLEEP);
		T_GE(a, 1);
		T_LE(a, 100);
		T_ASSERT(!seen[a]);
		seen[a] = true;
	}
	T_EQ(vmem_alloc(vm, 1, NOSLEEP, &x), ENOMEM);
	for (i = 1; i <= 100; i++)
		vmem_free(vm, (vmem_addr_t)i, 1);
	a = al(vm, 7, NOSLEEP);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 7);
	vmem_free(vm, a, 7);
	T_EQ(vmem_roundup_size(vm, 7), 7);
	vmem_destroy(vm);
}

static int
never_ximport(vmem_t *src, vmem_size_t size, vmem_size_t *actual,
    vm_flag_t flags, vmem_addr_t *addrp)
{
	(void)src, (void)size, (void)actual, (void)flags, (void)addrp;
	return ENOMEM;
}

static void
expect_einval(vmem_t *vm)
{
	int e = errno;

	T_ASSERT(vm == NULL);
	T_EQ(e, EINVAL);
}

static void
test_create_bad(void)
{
	vmem_t *vm;
	vmem_addr_t a;

#define C(b, s, q)                                                             \
	(errno = 0,                                                            \
	    vmem_create(                                                       \
		"bad", b, s, q, NULL, NULL, NULL, 0, VM_SLEEP, IPL_NONE))
	expect_einval(C(0, 0x1000, 0));
	expect_einval(C(0, 0x1000, 3));
	expect_einval(C(0, 0x1800, 24));
	expect_einval(C(0x10, 0x1000, 0x100));	/* base not a multiple */
	expect_einval(C(0x1000, 0x110, 0x100)); /* size not a multiple */
	expect_einval(C(VMEM_ADDR_MAX - 0xff, 0x200, 0x100)); /* wraps */
	expect_einval(C(VMEM_ADDR_MAX, 2, 1));		      /* wraps by one */
#undef C
	errno = 0;
	expect_einval(vmem_xcreate("badx", 0, 0x1000, 0, never_ximport, NULL,
	    NULL, 0, VM_SLEEP, IPL_NONE));
	errno = 0;
	expect_einval(vmem_xcreate("badx", 0, 0x1000, 6, never_ximport, NULL,
	    NULL, 0, VM_SLEEP, IPL_NONE));
	/* Ending exactly at VMEM_ADDR_MAX does not wrap. */
	vm = mk("edge", VMEM_ADDR_MAX - 0xff, 0x100, 0x100, 0);
	T_EQ(vmem_size(vm, VMEM_FREE), 0x100);
	vmem_destroy(vm);
	vm = mk("edge1", VMEM_ADDR_MAX, 1, 1, 0);
	T_EQ(al(vm, 1, NOSLEEP), VMEM_ADDR_MAX);
	vmem_free(vm, VMEM_ADDR_MAX, 1);
	vmem_destroy(vm);
	/* Many quanta: every power of two is accepted. */
	vm = mk("bigq", 0, (vmem_size_t)1 << 40, (vmem_size_t)1 << 30, 0);
	a = al(vm, 1, NOSLEEP);
	T_EQ(a % ((vmem_size_t)1 << 30), 0);
	T_EQ(vmem_size(vm, VMEM_ALLOC), (vmem_size_t)1 << 30);
	vmem_free(vm, a, 1);
	vmem_destroy(vm);
}

/* ---- spans ---- */

/* An import of every address but the top one (test_add_all). */
static vmem_size_t all_released;

static int
all_ximport(vmem_t *src, vmem_size_t size, vmem_size_t *actual, vm_flag_t flags,
    vmem_addr_t *addrp)
{
	(void)src;
	(void)size;
	(void)flags;
	*addrp = 0;
	*actual = VMEM_ADDR_MAX;
	return 0;
}

static void
all_release(vmem_t *src, vmem_addr_t a, vmem_size_t size)
{
	(void)src;
	T_EQ(a, 0);
	all_released += size;
}

static void
test_add(void)
{
	vmem_t *vm = mk("adds", 0, 0, 16, 0);
	vmem_addr_t x, a[3];
	int i, n1 = 0, n2 = 0, n3 = 0;

	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0);
	T_EQ(vmem_alloc(vm, 16, NOSLEEP, &x), ENOMEM);
	T_EQ(xa_rc(vm, 16, ANY, NOSLEEP), ENOMEM);
	T_EQ(vmem_xalloc_addr(vm, 0x1000, 16, NOSLEEP), ENOMEM);
	T_EQ(vmem_add(vm, 0x1000, 0x100, VM_SLEEP), 0);
	T_EQ(vmem_add(vm, 0x3000, 0x100, VM_NOSLEEP), 0);
	T_EQ(vmem_add(vm, 0x1100, 0x100, VM_SLEEP), 0); /* adjacent */
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0x300);
	T_EQ(vmem_size(vm, VMEM_FREE), 0x300);
	T_EQ(t_vmem_stats(vm).vs_total, 0x300);
	T_EQ(t_vmem_stats(vm).vs_imported, 0);
	for (i = 0; i < 3; i++) {
		a[i] = al(vm, 0x100, VM_BESTFIT | NOSLEEP);
		if (a[i] == 0x1000)
			n1++;
		else if (a[i] == 0x1100)
			n2++;
		else if (a[i] == 0x3000)
			n3++;
		else
			T_FAIL("unexpected address %#jx", (uintmax_t)a[i]);
	}
	T_ASSERT(n1 == 1 && n2 == 1 && n3 == 1);
	T_EQ(vmem_alloc(vm, 16, NOSLEEP, &x), ENOMEM);
	for (i = 0; i < 3; i++)
		vmem_free(vm, a[i], 0x100);
	/* A span added at the very top, and one at address 0. */
	T_EQ(vmem_add(vm, VMEM_ADDR_MAX - 0xf, 0x10, VM_SLEEP), 0);
	T_EQ(vmem_add(vm, 0, 0x10, VM_SLEEP), 0);
	T_EQ(vmem_xalloc_addr(vm, VMEM_ADDR_MAX - 0xf, 0x10, NOSLEEP), 0);
	T_EQ(vmem_xalloc_addr(vm, 0, 0x10, NOSLEEP), 0);
	vmem_xfree(vm, 0, 0x10);
	vmem_xfree(vm, VMEM_ADDR_MAX - 0xf, 0x10);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0x320);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
	/*
	 * Spans covering all 2^64 addresses: the last one is refused
	 * (ENOMEM), since the arena's byte counts would wrap to 0 (vmem_fuzz:
	 * the whole space allocated, then a free failed an assertion).
	 */
	vm = mk("all", VMEM_ADDR_MAX, 1, 1, 0);
	T_EQ(vmem_add(vm, 0, VMEM_ADDR_MAX, VM_NOSLEEP), ENOMEM);
	T_EQ(vmem_add(vm, 1, VMEM_ADDR_MAX - 1, VM_NOSLEEP), 0);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), VMEM_ADDR_MAX);
	T_EQ(al(vm, VMEM_ADDR_MAX - 1, NOSLEEP), 1);
	T_EQ(al(vm, 1, NOSLEEP), VMEM_ADDR_MAX);
	T_EQ(vmem_size(vm, VMEM_ALLOC), VMEM_ADDR_MAX);
	vmem_free(vm, VMEM_ADDR_MAX, 1);
	vmem_free(vm, 1, VMEM_ADDR_MAX - 1);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
	/* The same by an import: handed back to the source, ENOMEM. */
	all_released = 0;
	vm = vmem_xcreate("all-import", VMEM_ADDR_MAX, 1, 1, all_ximport,
	    all_release, NULL, 0, VM_SLEEP, IPL_NONE);
	T_ASSERT(vm != NULL);
	T_EQ(vmem_alloc(vm, 2, NOSLEEP, &x), ENOMEM);
	T_EQ(all_released, VMEM_ADDR_MAX);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 1);
	vmem_destroy(vm);
}

/* ---- fit policies ---- */

static void
test_fit_flags(void)
{
	static const vm_flag_t fits[] = {
	    0, VM_INSTANTFIT, VM_BESTFIT, VM_NEXTFIT};
	vmem_addr_t a[300];
	vmem_size_t s[300];
	unsigned f;
	int n, i, j;

	for (f = 0; f < 4; f++) {
		vmem_t *vm = mk("fits", 0x1000, 0x1000, 16, 0);

		for (n = 0; n < 300; n++) {
			s[n] = 1 + t_rand_below(100);
			if (vmem_alloc(vm, s[n], fits[f] | NOSLEEP, &a[n]) != 0)
				break;
			T_EQ(a[n] % 16, 0);
			T_GE(a[n], 0x1000);
			T_LE(a[n] + vmem_roundup_size(vm, s[n]), 0x2000);
			for (j = 0; j < n; j++)
				T_ASSERT(
				    a[n] + s[n] <= a[j] || a[j] + s[j] <= a[n]);
		}
		T_GT(n, 10);
		T_LT(n, 300);
		for (i = 0; i < n; i++)
			vmem_free(vm, a[i], s[i]);
		T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
		T_EQ(t_vmem_stats(vm).vs_nfree, 1);
		/* With SLEEP too. */
		a[0] = al(vm, 0x1000, fits[f] | VM_SLEEP);
		T_EQ(a[0], 0x1000);
		vmem_free(vm, a[0], 0x1000);
		vmem_destroy(vm);
	}
}

/*
 * Free segments of 3 and 5 quanta separated by busy ones.  Best fit takes
 * the 3; instant fit (and no flag) takes from the first size class whose
 * every member fits, [4, 8), so the 5.
 */
static void
test_instant_vs_best(void)
{
	vmem_t *vm = mk("fitchoice", 0, 100, 1, 0);
	vmem_addr_t a;

	T_EQ(vmem_xalloc_addr(vm, 0, 10, NOSLEEP), 0);
	T_EQ(vmem_xalloc_addr(vm, 13, 7, NOSLEEP), 0);
	T_EQ(vmem_xalloc_addr(vm, 25, 75, NOSLEEP), 0);
	T_EQ(t_vmem_stats(vm).vs_nfree, 2);
	T_EQ(al(vm, 3, VM_BESTFIT | NOSLEEP), 10);
	vmem_free(vm, 10, 3);
	a = al(vm, 3, VM_INSTANTFIT | NOSLEEP);
	T_ASSERT(within(a, 3, 20, 25));
	vmem_free(vm, a, 3);
	a = al(vm, 3, NOSLEEP);
	T_ASSERT(within(a, 3, 20, 25));
	vmem_free(vm, a, 3);
	/* Instant fit of 5: its own class only; falls back to best fit. */
	T_EQ(al(vm, 5, VM_INSTANTFIT | NOSLEEP), 20);
	/* Only the 3 is left: instant fit of 3 must still find it. */
	T_EQ(al(vm, 3, VM_INSTANTFIT | NOSLEEP), 10);
	vmem_free(vm, 10, 3);
	vmem_free(vm, 20, 5);
	a = xa(vm, 2, 0, 0, 0, 0, 99, VM_INSTANTFIT | NOSLEEP);
	T_ASSERT(within(a, 2, 10, 13) || within(a, 2, 20, 25));
	vmem_xfreeall(vm);

	/*
	 * Best fit is exact, not first-in-class: free segments of 7 (freed
	 * last, so at the head of its list) and 5 in the same class.
	 */
	T_EQ(vmem_xalloc_addr(vm, 0, 10, NOSLEEP), 0);
	T_EQ(vmem_xalloc_addr(vm, 10, 7, NOSLEEP), 0);
	T_EQ(vmem_xalloc_addr(vm, 17, 3, NOSLEEP), 0);
	T_EQ(vmem_xalloc_addr(vm, 20, 5, NOSLEEP), 0);
	T_EQ(vmem_xalloc_addr(vm, 25, 75, NOSLEEP), 0);
	vmem_xfree(vm, 20, 5);
	vmem_xfree(vm, 10, 7);
	a = al(vm, 4, VM_BESTFIT | NOSLEEP);
	if (!within(a, 4, 20, 25))
		T_FAIL("best fit of 4 took %#jx, not from the 5 at 20",
		    (uintmax_t)a);
	a = al(vm, 6, VM_BESTFIT | NOSLEEP);
	T_ASSERT(within(a, 6, 10, 17));
	vmem_xfreeall(vm);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
}

static void
test_nextfit(void)
{
	vmem_t *vm = mk("nextfit", 1, 999, 1, 0);
	vmem_addr_t a, x;
	vmem_addr_t i;

	T_EQ(al(vm, 1, VM_NEXTFIT | NOSLEEP), 1);
	T_EQ(al(vm, 1, VM_NEXTFIT | NOSLEEP), 2);
	T_EQ(al(vm, 1, VM_NEXTFIT | NOSLEEP), 3);
	vmem_free(vm, 2, 1);
	T_EQ(al(vm, 1, VM_NEXTFIT | NOSLEEP), 4);
	for (i = 5; i <= 999; i++)
		T_EQ(al(vm, 1, VM_NEXTFIT | NOSLEEP), i);
	/* Wraps around to the only free ID. */
	T_EQ(al(vm, 1, VM_NEXTFIT | NOSLEEP), 2);
	T_EQ(vmem_alloc(vm, 1, VM_NEXTFIT | NOSLEEP, &x), ENOMEM);
	vmem_free(vm, 500, 1);
	vmem_free(vm, 10, 1);
	T_EQ(al(vm, 1, VM_NEXTFIT | NOSLEEP), 10);
	T_EQ(al(vm, 1, VM_NEXTFIT | NOSLEEP), 500);
	T_EQ(vmem_alloc(vm, 1, VM_NEXTFIT | NOSLEEP, &x), ENOMEM);
	/* The rotor is past 500: 11 and 12 freed, then 600; 600 first. */
	vmem_free(vm, 11, 1);
	vmem_free(vm, 12, 1);
	vmem_free(vm, 600, 1);
	T_EQ(al(vm, 1, VM_NEXTFIT | NOSLEEP), 600);
	T_EQ(al(vm, 2, VM_NEXTFIT | NOSLEEP), 11);
	/* Constrained next fit. */
	vmem_free(vm, 700, 1);
	vmem_free(vm, 100, 1);
	T_EQ(xa(vm, 1, 0, 0, 0, 0, 650, VM_NEXTFIT | NOSLEEP), 100);
	T_EQ(xa(vm, 1, ANY, VM_NEXTFIT | NOSLEEP), 700);
	vmem_xfreeall(vm);
	a = al(vm, 999, VM_NEXTFIT | NOSLEEP);
	T_EQ(a, 1);
	vmem_free(vm, a, 999);
	vmem_destroy(vm);
}

/* ---- constrained allocation: deterministic ---- */

static void
test_xalloc_constraints(void)
{
	vmem_t *vm = mk("constr", 0x10, 0x10000 - 0x10, 16, 0);
	vmem_addr_t a, b;

	T_EQ(vmem_xalloc_addr(vm, 0x10, 0x20, NOSLEEP), 0);
	/* align */
	a = xa(vm, 0x20, 0x1000, 0, 0, 0, VMEM_ADDR_MAX, NOSLEEP);
	T_EQ(a % 0x1000, 0);
	/* align + phase */
	b = xa(vm, 0x40, 0x1000, 0x30, 0, 0, VMEM_ADDR_MAX, NOSLEEP);
	T_EQ((b - 0x30) % 0x1000, 0);
	vmem_xfree(vm, a, 0x20);
	vmem_xfree(vm, b, 0x40);
	/* nocross: the free space begins at 0x30; [0x30, 0x120) crosses. */
	a = xa(vm, 0xf0, 0, 0, 0x100, 0, VMEM_ADDR_MAX, VM_BESTFIT | NOSLEEP);
	T_EQ(a / 0x100, (a + 0xef) / 0x100);
	T_GE(a, 0x100);
	vmem_xfree(vm, a, 0xf0);
	/* minaddr / maxaddr (inclusive) */
	a = xa(vm, 0x1000, 0, 0, 0, 0x5000, 0x5fff, NOSLEEP);
	T_EQ(a, 0x5000);
	T_EQ(xa_rc(vm, 0x10, 0, 0, 0, 0x5000, 0x5fff, NOSLEEP), ENOMEM);
	vmem_xfree(vm, a, 0x1000);
	/* minaddr not a quantum multiple: rounds up */
	a = xa(vm, 0x10, 0, 0, 0, 0x5001, 0x5fff, VM_BESTFIT | NOSLEEP);
	T_ASSERT(within(a, 0x10, 0x5010, 0x6000));
	vmem_xfree(vm, a, 0x10);
	/* everything at once */
	a = xa(vm, 0x30, 0x400, 0x3c0, 0x800, 0x2345, 0x9fff,
	    VM_INSTANTFIT | NOSLEEP);
	check_constraints(a, 0x30, 16, 0x400, 0x3c0, 0x800, 0x2345, 0x9fff);
	vmem_xfree(vm, a, 0x30);
	/* align larger than the arena's remaining aligned space */
	T_EQ(xa_rc(vm, 0x10, 0x10000, 0, 0, FULL, NOSLEEP), ENOMEM);
	/* A phase makes it possible again ([0x10, 0x30) is busy). */
	T_EQ(xa_rc(vm, 0x10, 0x10000, 0x20, 0, FULL, NOSLEEP), ENOMEM);
	a = xa(vm, 0x10, 0x10000, 0x30, 0, 0, VMEM_ADDR_MAX, NOSLEEP);
	T_EQ(a, 0x30);
	vmem_xfree(vm, a, 0x10);
	vmem_xfree(vm, 0x10, 0x20);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	T_EQ(t_vmem_stats(vm).vs_nfree, 1);
	vmem_destroy(vm);
}

/* ---- constrained allocation: random, against an exact model ---- */

#define MAXLIVE	 200
#define MAXSPANS 8

struct mlive {
	vmem_addr_t a;
	vmem_size_t size, rsize;
	bool x;
};

struct model {
	vmem_t *vm;
	const char *name;
	vmem_size_t q;
	int nspans;
	vmem_addr_t sbase[MAXSPANS], slast[MAXSPANS]; /* sorted */
	vmem_size_t total;
	struct mlive live[MAXLIVE];
	int n;
	vmem_addr_t fs[MAXLIVE + MAXSPANS], fl[MAXLIVE + MAXSPANS];
	int nf;
	bool rotor_ok;
	vmem_addr_t rotor;
};

static int
cmp_live(const void *x, const void *y)
{
	const struct mlive *a = x, *b = y;

	return a->a < b->a ? -1 : a->a > b->a;
}

static void
model_segs(struct model *m)
{
	struct mlive s[MAXLIVE];
	int i, j = 0;

	memcpy(s, m->live, sizeof s[0] * (size_t)m->n);
	qsort(s, (size_t)m->n, sizeof s[0], cmp_live);
	m->nf = 0;
	for (i = 0; i < m->nspans; i++) {
		vmem_addr_t cur = m->sbase[i];
		bool done = false;

		for (; j < m->n && s[j].a <= m->slast[i]; j++) {
			vmem_addr_t end = s[j].a + s[j].rsize - 1;

			T_ASSERT(!done && s[j].a >= cur);
			if (s[j].a > cur) {
				m->fs[m->nf] = cur;
				m->fl[m->nf++] = s[j].a - 1;
			}
			if (end == m->slast[i])
				done = true;
			else
				cur = end + 1;
		}
		if (!done) {
			m->fs[m->nf] = cur;
			m->fl[m->nf++] = m->slast[i];
		}
	}
}

/* Smallest c >= lo with c % align == phase (align a power of two). */
static bool
first_cong(
    vmem_addr_t lo, vmem_size_t align, vmem_size_t phase, vmem_addr_t *out)
{
	vmem_addr_t c = (lo & ~(vmem_addr_t)(align - 1)) + phase;

	if (c < lo && __builtin_add_overflow(c, (vmem_addr_t)align, &c))
		return false;
	*out = c;
	return true;
}

/* Lowest address in free segment [s, l] satisfying everything. */
static bool
fit_seg(vmem_addr_t s, vmem_addr_t l, vmem_size_t size, vmem_size_t align,
    vmem_size_t phase, vmem_size_t nocross, vmem_addr_t minaddr,
    vmem_addr_t maxaddr, vmem_addr_t *out)
{
	vmem_addr_t lo = s > minaddr ? s : minaddr;
	vmem_addr_t hi = l < maxaddr ? l : maxaddr;
	vmem_addr_t c, b;
	int i;

	if (lo > hi || !first_cong(lo, align, phase, &c))
		return false;
	for (i = 0; i < 4; i++) {
		if (c > hi || hi - c < size - 1)
			return false;
		if (nocross == 0 || c / nocross == (c + size - 1) / nocross) {
			*out = c;
			return true;
		}
		b = c & ~(vmem_addr_t)(nocross - 1);
		if (__builtin_add_overflow(b, (vmem_addr_t)nocross, &b) ||
		    !first_cong(b, align, phase, &c))
			return false;
	}
	return false;
}

static void
model_check(struct model *m)
{
	struct kmem_vmem_stats st = t_vmem_stats(m->vm);
	vmem_size_t used = 0;
	int i;

	for (i = 0; i < m->n; i++)
		used += m->live[i].rsize;
	model_segs(m);
	T_EQ(vmem_size(m->vm, VMEM_ALLOC), used);
	T_EQ(vmem_size(m->vm, VMEM_FREE), m->total - used);
	T_EQ(vmem_size(m->vm, VMEM_ALLOC | VMEM_FREE), m->total);
	T_EQ(st.vs_inuse, used);
	T_EQ(st.vs_total, m->total);
	T_EQ(st.vs_nbusy, (uint64_t)m->n);
	T_EQ(st.vs_nfree, (uint64_t)m->nf);
}

static vmem_addr_t
model_pick_addr(struct model *m)
{
	int i = (int)t_rand_below((uint64_t)m->nspans);
	vmem_size_t slop = 64 * m->q;
	vmem_addr_t lo = m->sbase[i] >= slop ? m->sbase[i] - slop : 0;
	vmem_addr_t hi = m->slast[i] <= VMEM_ADDR_MAX - slop
	    ? m->slast[i] + slop
	    : VMEM_ADDR_MAX;

	return lo + t_rand_below(hi - lo + 1);
}

static void
model_alloc(struct model *m)
{
	static const vm_flag_t fits[] = {
	    0, VM_INSTANTFIT, VM_BESTFIT, VM_NEXTFIT};
	vmem_size_t q = m->q, size, rsize, align = 0, phase = 0, nocross = 0;
	vmem_size_t alg, np2;
	vmem_addr_t minaddr = VMEM_ADDR_MIN, maxaddr = VMEM_ADDR_MAX, a = 0;
	vmem_addr_t c, low = 0, nxt = 0, lowmin;
	vm_flag_t fit = fits[t_rand_below(4)];
	bool plain = t_rand_below(3) == 0, any = false, anynext = false;
	vmem_size_t best = VMEM_ADDR_MAX;
	int rc, i, seg = -1;

	size = 1 + t_rand_below(q * (t_rand_below(8) == 0 ? 256 : 16));
	rsize = (size + q - 1) & ~(q - 1);
	if (!plain) {
		if (t_rand_below(3) != 0)
			align = q << t_rand_below(10);
		alg = align ? align : q;
		if (t_rand_below(2))
			phase = q * t_rand_below(alg / q);
		if (t_rand_below(3) == 0) {
			for (np2 = q; np2 < rsize; np2 <<= 1)
				;
			nocross = np2 << t_rand_below(4);
			while (phase % nocross + rsize > nocross)
				nocross <<= 1;
		}
		switch (t_rand_below(4)) {
		case 0:
			break;
		case 1:
			minaddr = model_pick_addr(m);
			if (minaddr > VMEM_ADDR_MAX - (rsize - 1))
				minaddr = VMEM_ADDR_MAX - (rsize - 1);
			break;
		case 2:
			maxaddr = model_pick_addr(m);
			if (maxaddr < rsize - 1)
				maxaddr = rsize - 1;
			break;
		default: {
			vmem_size_t extra = t_rand_below(m->total + q);

			minaddr = model_pick_addr(m);
			if (minaddr > VMEM_ADDR_MAX - (rsize - 1))
				minaddr = VMEM_ADDR_MAX - (rsize - 1);
			maxaddr = minaddr + (rsize - 1);
			if (VMEM_ADDR_MAX - maxaddr < extra)
				maxaddr = VMEM_ADDR_MAX;
			else
				maxaddr += extra;
		}
		}
	}
	alg = align ? align : q;
	/* What the model says. */
	lowmin = m->rotor_ok && m->rotor > minaddr ? m->rotor : minaddr;
	for (i = 0; i < m->nf; i++) {
		if (fit_seg(m->fs[i], m->fl[i], rsize, alg, phase, nocross,
			minaddr, maxaddr, &c)) {
			vmem_size_t ssz = m->fl[i] - m->fs[i] + 1;

			if (!any)
				low = c;
			any = true;
			if (ssz < best)
				best = ssz;
		}
		if (!anynext &&
		    fit_seg(m->fs[i], m->fl[i], rsize, alg, phase, nocross,
			lowmin, maxaddr, &c)) {
			anynext = true;
			nxt = c;
		}
	}
	if (!anynext)
		nxt = low;

	if (plain)
		rc = vmem_alloc(m->vm, size, fit | NOSLEEP, &a);
	else
		rc = vmem_xalloc(m->vm, size, align, phase, nocross, minaddr,
		    maxaddr, fit | NOSLEEP, &a);
	if ((rc == 0) != any || (rc != 0 && rc != ENOMEM))
		T_FAIL("%s: %s(size %#zx align %#zx phase %#zx nocross "
		       "%#zx min %#jx max %#jx fit %#x) = %d (addr "
		       "%#jx), model says %s (lowest %#jx)",
		    m->name, plain ? "vmem_alloc" : "vmem_xalloc", size, align,
		    phase, nocross, (uintmax_t)minaddr, (uintmax_t)maxaddr, fit,
		    rc, (uintmax_t)a, any ? "fits" : "no fit", (uintmax_t)low);
	if (rc != 0)
		return;
	check_constraints(a, rsize, q, align, phase, nocross, minaddr, maxaddr);
	for (i = 0; i < m->nf; i++)
		if (m->fs[i] <= a && a <= m->fl[i] && rsize - 1 <= m->fl[i] - a)
			seg = i;
	if (seg < 0)
		T_FAIL("%s: result %#jx+%#zx is not inside a free segment",
		    m->name, (uintmax_t)a, rsize);
	if (fit == VM_BESTFIT && m->fl[seg] - m->fs[seg] + 1 != best)
		T_FAIL("%s: best fit took a segment of %#jx, smallest fitting "
		       "is %#zx (size %#zx align %#zx phase %#zx nocross "
		       "%#zx min %#jx max %#jx)",
		    m->name, (uintmax_t)(m->fl[seg] - m->fs[seg] + 1), best,
		    size, align, phase, nocross, (uintmax_t)minaddr,
		    (uintmax_t)maxaddr);
	if (fit == VM_NEXTFIT && m->rotor_ok && a != nxt)
		T_FAIL("%s: next fit returned %#jx, expected %#jx (rotor "
		       "%#jx, size %#zx align %#zx phase %#zx nocross %#zx "
		       "min %#jx max %#jx)",
		    m->name, (uintmax_t)a, (uintmax_t)nxt, (uintmax_t)m->rotor,
		    size, align, phase, nocross, (uintmax_t)minaddr,
		    (uintmax_t)maxaddr);
	if (fit == VM_NEXTFIT) {
		m->rotor = a + rsize;
		m->rotor_ok = true;
	}
	m->live[m->n].a = a;
	m->live[m->n].size = size;
	m->live[m->n].rsize = rsize;
	m->live[m->n].x = !plain;
	m->n++;
}

static void
model_free(struct model *m)
{
	int i = (int)t_rand_below((uint64_t)m->n);
	struct mlive l = m->live[i];
	vmem_size_t sz = t_rand_below(2) ? l.size : l.rsize;

	if (l.x)
		vmem_xfree(m->vm, l.a, sz);
	else
		vmem_free(m->vm, l.a, sz);
	m->live[i] = m->live[--m->n];
}

static void
model_run(const char *name, vmem_size_t q, int nspans, const vmem_addr_t *base,
    const vmem_size_t *size)
{
	static struct model m;
	uint64_t it, iters = t_scale(20000);
	int i, j;

	memset(&m, 0, sizeof m);
	m.name = name;
	m.q = q;
	m.vm = mk(name, 0, 0, q, 0);
	m.nspans = nspans;
	for (i = 0; i < nspans; i++) {
		T_EQ(vmem_add(m.vm, base[i], size[i], VM_SLEEP), 0);
		m.total += size[i];
		/* insertion sort by base */
		for (j = i; j > 0 && m.sbase[j - 1] > base[i]; j--) {
			m.sbase[j] = m.sbase[j - 1];
			m.slast[j] = m.slast[j - 1];
		}
		m.sbase[j] = base[i];
		m.slast[j] = base[i] + (size[i] - 1);
	}
	model_check(&m);
	for (it = 0; it < iters; it++) {
		if (m.n < MAXLIVE && (m.n == 0 || t_rand_below(100) < 55))
			model_alloc(&m);
		else
			model_free(&m);
		if (it % 1000 == 999 && t_rand_below(4) == 0) {
			vmem_xfreeall(m.vm);
			m.n = 0;
		}
		model_check(&m);
	}
	vmem_xfreeall(m.vm);
	m.n = 0;
	model_check(&m);
	vmem_destroy(m.vm);
}

static void
test_xalloc_model(void)
{
	static const vmem_addr_t lo_b[] = {0};
	static const vmem_size_t lo_s[] = {16 * 4096};
	static const vmem_addr_t top_b[] = {
	    VMEM_ADDR_MAX - 16 * 4096 + 1, 0x100000};
	static const vmem_size_t top_s[] = {16 * 4096, 16 * 64};
	static const vmem_addr_t pg_b[] = {0x10000000};
	static const vmem_size_t pg_s[] = {512 * 4096};
	/* NetBSD's unit-test arena. */
	static const vmem_addr_t nb_b[] = {
	    0, 100, 2000, 40000, 10000, 500, 0xffffff00};
	static const vmem_size_t nb_s[] = {
	    50, 200, 1, 65536, 10000, 1000, 0x100};

	model_run("model-lo", 16, 1, lo_b, lo_s);
	model_run("model-top", 16, 2, top_b, top_s);
	model_run("model-pg", 4096, 1, pg_b, pg_s);
	model_run("model-netbsd", 1, 7, nb_b, nb_s);
}

/* ---- NetBSD's own boundary checks, and the ends of the address space ---- */

static void
test_netbsd_boundaries(void)
{
	vmem_t *vm = mk("test", 0, 0, 1, 0);
	vmem_addr_t a;

	T_EQ(vmem_add(vm, 0, 50, VM_SLEEP), 0);
	T_EQ(vmem_add(vm, 100, 200, VM_SLEEP), 0);
	T_EQ(vmem_add(vm, 2000, 1, VM_SLEEP), 0);
	T_EQ(vmem_add(vm, 40000, 65536, VM_SLEEP), 0);
	T_EQ(vmem_add(vm, 10000, 10000, VM_SLEEP), 0);
	T_EQ(vmem_add(vm, 500, 1000, VM_SLEEP), 0);
	T_EQ(vmem_add(vm, 0xffffff00, 0x100, VM_SLEEP), 0);
	T_EQ(vmem_size(vm, VMEM_FREE),
	    50 + 200 + 1 + 65536 + 10000 + 1000 + 0x100);
	/*
	 * NetBSD's boundary checks, exactly: requests larger than
	 * [minaddr, maxaddr] fail with ENOMEM under VM_NOSLEEP (under
	 * VM_SLEEP they abort, see vmem_errors.c).  The versions with a
	 * wider range must fail too: the span holds only 0x100 bytes.
	 */
	T_EQ(
	    xa_rc(vm, 0x101, 0, 0, 0, 0xffffff00, 0xffffffff, NOSLEEP), ENOMEM);
	T_EQ(
	    xa_rc(vm, 0x100, 0, 0, 0, 0xffffff01, 0xffffffff, NOSLEEP), ENOMEM);
	T_EQ(
	    xa_rc(vm, 0x100, 0, 0, 0, 0xffffff00, 0xfffffffe, NOSLEEP), ENOMEM);
	T_EQ(xa_rc(vm, 0x101, 0, 0, 0, 0xffffff00, 0x100000000, NOSLEEP),
	    ENOMEM);
	T_EQ(xa_rc(vm, 0x101, 0, 0, 0, 0xffffff00, VMEM_ADDR_MAX,
		 VM_BESTFIT | NOSLEEP),
	    ENOMEM);
	T_EQ(xa(vm, 50, 0, 0, 0, 0, 49, NOSLEEP), 0);
	vmem_xfree(vm, 0, 50);
	T_EQ(xa(vm, 25, 0, 0, 0, 0, 24, NOSLEEP), 0);
	vmem_xfree(vm, 0, 25);
	T_EQ(xa_rc(vm, 51, 0, 0, 0, 0, 50, NOSLEEP), ENOMEM);
	T_EQ(xa_rc(vm, 0x100, 0, 0, 0, 0xffffff01, 0x100000000, NOSLEEP),
	    ENOMEM);
	T_EQ(
	    xa_rc(vm, 0x100, 0, 0, 0, 0xfffffeff, 0xfffffffe, NOSLEEP), ENOMEM);
	a = xa(vm, 0x100, 0, 0, 0, 0xffffff00, 0xffffffff, NOSLEEP);
	T_EQ(a, 0xffffff00);
	vmem_xfree(vm, a, 0x100);
	T_EQ(xa(vm, 1, 0, 0, 0, 2000, 2000, NOSLEEP), 2000);
	T_EQ(xa_rc(vm, 1, 0, 0, 0, 2001, 2001, NOSLEEP), ENOMEM);
	vmem_xfree(vm, 2000, 1);
	T_EQ(xa(vm, 65536, ANY, VM_BESTFIT | NOSLEEP), 40000);
	vmem_xfree(vm, 40000, 65536);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
}

static void
test_top_of_address_space(void)
{
	const vmem_addr_t base = VMEM_ADDR_MAX - 0xfff;
	vmem_t *vm = mk("top", base, 0x1000, 16, 0);
	vmem_addr_t a, x;

	T_EQ(vmem_size(vm, VMEM_FREE), 0x1000);
	/* The last quantum. */
	T_EQ(vmem_xalloc_addr(vm, VMEM_ADDR_MAX - 15, 16, NOSLEEP), 0);
	T_EQ(vmem_xalloc_addr(vm, VMEM_ADDR_MAX - 15, 16, NOSLEEP), ENOMEM);
	vmem_xfree(vm, VMEM_ADDR_MAX - 15, 16);
	T_EQ(xa(vm, 16, 0, 0, 0, VMEM_ADDR_MAX - 15, VMEM_ADDR_MAX, NOSLEEP),
	    VMEM_ADDR_MAX - 15);
	T_EQ(xa_rc(vm, 16, 0, 0, 0, VMEM_ADDR_MAX - 15, VMEM_ADDR_MAX, NOSLEEP),
	    ENOMEM);
	vmem_xfree(vm, VMEM_ADDR_MAX - 15, 16);
	a = xa(vm, 0x100, 0, 0, 0, VMEM_ADDR_MAX - 0xff, VMEM_ADDR_MAX,
	    VM_BESTFIT | NOSLEEP);
	T_EQ(a, VMEM_ADDR_MAX - 0xff);
	vmem_xfree(vm, a, 0x100);
	/* Whole span, three ways. */
	T_EQ(xa(vm, 0x1000, 0, 0, 0, 0, VMEM_ADDR_MAX, NOSLEEP), base);
	T_EQ(xa_rc(vm, 16, ANY, NOSLEEP), ENOMEM);
	vmem_xfree(vm, base, 0x1000);
	T_EQ(al(vm, 0x1000, VM_INSTANTFIT | NOSLEEP), base);
	vmem_free(vm, base, 0x1000);
	T_EQ(vmem_xalloc_addr(vm, base, 0x1000, NOSLEEP), 0);
	vmem_xfree(vm, base, 0x1000);
	/* Alignment and nocross at the top. */
	a = xa(vm, 0x800, 0x800, 0, 0x800, 0, VMEM_ADDR_MAX, NOSLEEP);
	x = xa(vm, 0x800, 0x800, 0, 0x800, 0, VMEM_ADDR_MAX, NOSLEEP);
	T_ASSERT((a == base && x == base + 0x800) ||
	    (x == base && a == base + 0x800));
	vmem_xfreeall(vm);
	/* Phase lands on the last quantum. */
	T_EQ(xa(vm, 16, 0x1000, 0xff0, 0, FULL, NOSLEEP), VMEM_ADDR_MAX - 15);
	vmem_xfreeall(vm);
	/* Next fit: the rotor wraps past the top. */
	T_EQ(xa(vm, 0xff0, ANY, VM_NEXTFIT | NOSLEEP), base);
	T_EQ(al(vm, 16, VM_NEXTFIT | NOSLEEP), VMEM_ADDR_MAX - 15);
	vmem_xfree(vm, base, 0xff0);
	T_EQ(al(vm, 16, VM_NEXTFIT | NOSLEEP), base);
	vmem_free(vm, base, 16);
	vmem_free(vm, VMEM_ADDR_MAX - 15, 16);
	T_EQ(t_vmem_stats(vm).vs_nfree, 1);
	vmem_destroy(vm);
}

static void
test_whole_address_space(void)
{
	/* [1, VMEM_ADDR_MAX]: every address but 0. */
	vmem_t *vm = mk("huge", 1, VMEM_ADDR_MAX, 1, 0);
	const vmem_addr_t half = (vmem_addr_t)1
	    << (sizeof(vmem_addr_t) * 8 - 1);

	T_EQ(vmem_size(vm, VMEM_FREE), VMEM_ADDR_MAX);
	T_EQ(al(vm, VMEM_ADDR_MAX, NOSLEEP), 1);
	T_EQ(vmem_size(vm, VMEM_FREE), 0);
	vmem_free(vm, 1, VMEM_ADDR_MAX);
	T_EQ(al(vm, VMEM_ADDR_MAX, VM_BESTFIT | NOSLEEP), 1);
	vmem_free(vm, 1, VMEM_ADDR_MAX);
	T_EQ(xa(vm, 0x1000, half, 0, 0, FULL, NOSLEEP), half);
	T_EQ(vmem_xalloc_addr(vm, VMEM_ADDR_MAX, 1, NOSLEEP), 0);
	T_EQ(xa(vm, half - 1, ANY, VM_BESTFIT | NOSLEEP), 1);
	vmem_xfree(vm, half, 0x1000);
	vmem_xfree(vm, VMEM_ADDR_MAX, 1);
	vmem_xfree(vm, 1, half - 1);
	T_EQ(t_vmem_stats(vm).vs_nfree, 1);
	vmem_destroy(vm);
}

static void
test_address_zero(void)
{
	vmem_t *vm = mk("zero", 0, 0x100, 1, 0);

	T_EQ(xa(vm, 1, 0, 0, 0, 0, 0, NOSLEEP), 0);
	T_EQ(xa_rc(vm, 1, 0, 0, 0, 0, 0, NOSLEEP), ENOMEM);
	T_EQ(vmem_xalloc_addr(vm, 0, 1, NOSLEEP), ENOMEM);
	vmem_xfree(vm, 0, 1);
	T_EQ(vmem_xalloc_addr(vm, 0, 1, NOSLEEP), 0);
	vmem_xfree(vm, 0, 1);
	T_EQ(al(vm, 0x100, NOSLEEP), 0);
	vmem_free(vm, 0, 0x100);
	T_EQ(al(vm, 0x100, VM_BESTFIT | NOSLEEP), 0);
	vmem_free(vm, 0, 0x100);
	T_EQ(xa(vm, 0x10, 0x80, 0, 0, FULL, NOSLEEP) % 0x80, 0);
	vmem_xfreeall(vm);
	vmem_destroy(vm);
}

/* ---- exact addresses, freeing, coalescing ---- */

static void
test_xalloc_addr(void)
{
	vmem_t *vm = mk("xaddr", 0x1000, 0x1000, 16, 0);

	T_EQ(vmem_xalloc_addr(vm, 0x1800, 0x40, NOSLEEP), 0);
	T_EQ(t_vmem_stats(vm).vs_nbusy, 1);
	T_EQ(t_vmem_stats(vm).vs_nfree, 2);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0x40);
	T_EQ(vmem_xalloc_addr(vm, 0x1800, 0x40, NOSLEEP), ENOMEM);
	T_EQ(vmem_xalloc_addr(vm, 0x1800, 0x10, NOSLEEP), ENOMEM);
	T_EQ(vmem_xalloc_addr(vm, 0x17f0, 0x20, NOSLEEP), ENOMEM);
	T_EQ(vmem_xalloc_addr(vm, 0x1830, 0x20, NOSLEEP), ENOMEM);
	T_EQ(vmem_xalloc_addr(vm, 0x3000, 0x10, NOSLEEP), ENOMEM);
	T_EQ(vmem_xalloc_addr(vm, 0xff0, 0x20, NOSLEEP), ENOMEM);
	T_EQ(vmem_xalloc_addr(vm, 0x1ff0, 0x20, NOSLEEP), ENOMEM);
	T_EQ(t_vmem_stats(vm).vs_fail, 7);
	/* Neighbours on both sides. */
	T_EQ(vmem_xalloc_addr(vm, 0x17f0, 0x10, NOSLEEP), 0);
	T_EQ(vmem_xalloc_addr(vm, 0x1840, 0x10, NOSLEEP), 0);
	/* Fit flags are accepted and ignored. */
	T_EQ(vmem_xalloc_addr(vm, 0x1000, 0x10, NOSLEEP | VM_BESTFIT), 0);
	T_EQ(vmem_xalloc_addr(vm, 0x1010, 0x10, NOSLEEP | VM_INSTANTFIT), 0);
	T_EQ(vmem_xalloc_addr(vm, 0x1020, 0x10, NOSLEEP | VM_NEXTFIT), 0);
	T_EQ(vmem_xalloc_addr(vm, 0x1ff0, 0x10, VM_SLEEP), 0);
	/* Size rounds up to the quantum. */
	T_EQ(vmem_xalloc_addr(vm, 0x1900, 0x11, NOSLEEP), 0);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0x40 + 0x10 * 6 + 0x20);
	T_EQ(vmem_xalloc_addr(vm, 0x1920, 0x10, NOSLEEP), 0);
	vmem_xfree(vm, 0x1920, 0x10);
	vmem_xfree(vm, 0x1900, 0x11);
	vmem_xfree(vm, 0x17f0, 0x10);
	vmem_xfree(vm, 0x1840, 0x10);
	vmem_xfree(vm, 0x1800, 0x40);
	vmem_xfree(vm, 0x1000, 0x10);
	vmem_xfree(vm, 0x1010, 0x10);
	vmem_xfree(vm, 0x1020, 0x10);
	vmem_xfree(vm, 0x1ff0, 0x10);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	T_EQ(t_vmem_stats(vm).vs_nfree, 1);
	vmem_destroy(vm);
}

static void
test_xfreeall(void)
{
	vmem_t *vm = mk("freeall", 0x1000, 0x1000, 16, 0);
	struct kmem_vmem_stats st;
	int i;

	vmem_xfreeall(vm); /* empty arena */
	for (i = 0; i < 10; i++)
		(void)al(vm, 0x20, NOSLEEP);
	(void)xa(vm, 0x40, 0x100, 0, 0, FULL, NOSLEEP);
	T_EQ(vmem_xalloc_addr(vm, 0x1ff0, 0x10, NOSLEEP), 0);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 10 * 0x20 + 0x40 + 0x10);
	vmem_xfreeall(vm);
	st = t_vmem_stats(vm);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	T_EQ(st.vs_nbusy, 0);
	T_EQ(st.vs_nfree, 1);
	T_EQ(st.vs_inuse, 0);
	T_EQ(vmem_xalloc_addr(vm, 0x1000, 0x1000, NOSLEEP), 0);
	vmem_xfreeall(vm);
	T_EQ(vmem_size(vm, VMEM_FREE), 0x1000);
	vmem_destroy(vm);
}

static int
count_runs(const bool *busy, int n)
{
	int i, runs = 0;

	for (i = 0; i < n; i++)
		if (!busy[i] && (i == 0 || busy[i - 1]))
			runs++;
	return runs;
}

static void
test_coalesce(void)
{
	static const int perms[6][3] = {
	    {0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
	int p, k;

	/* Three neighbours in the middle of a span. */
	for (p = 0; p < 6; p++) {
		vmem_t *vm = mk("coal", 0x1000, 0x100, 0x10, 0);
		bool busy[16] = {false};

		for (k = 0; k < 3; k++) {
			T_EQ(vmem_xalloc_addr(vm,
				 0x1040 + 0x10 * (vmem_addr_t)k, 0x10, NOSLEEP),
			    0);
			busy[4 + k] = true;
		}
		T_EQ(t_vmem_stats(vm).vs_nfree, 2);
		for (k = 0; k < 3; k++) {
			int i = perms[p][k];

			vmem_xfree(vm, 0x1040 + 0x10 * (vmem_addr_t)i, 0x10);
			busy[4 + i] = false;
			T_EQ(t_vmem_stats(vm).vs_nfree, count_runs(busy, 16));
			T_EQ(t_vmem_stats(vm).vs_nbusy, 2 - k);
		}
		T_EQ(vmem_size(vm, VMEM_FREE), 0x100);
		T_EQ(vmem_xalloc_addr(vm, 0x1000, 0x100, NOSLEEP), 0);
		vmem_xfree(vm, 0x1000, 0x100);
		vmem_destroy(vm);
	}
	/* Three neighbours filling a span exactly (vmem_alloc). */
	for (p = 0; p < 6; p++) {
		vmem_t *vm = mk("coal3", 0x2000, 0x30, 0x10, 0);
		vmem_addr_t a[3];
		bool busy[3] = {true, true, true};
		vmem_addr_t x;

		for (k = 0; k < 3; k++)
			a[k] = al(vm, 0x10, VM_BESTFIT | NOSLEEP);
		T_EQ(vmem_alloc(vm, 0x10, NOSLEEP, &x), ENOMEM);
		T_EQ(t_vmem_stats(vm).vs_nfree, 0);
		for (k = 0; k < 3; k++) {
			int i = perms[p][k];

			vmem_free(vm, a[i], 0x10);
			busy[(a[i] - 0x2000) / 0x10] = false;
			T_EQ(t_vmem_stats(vm).vs_nfree, count_runs(busy, 3));
		}
		T_EQ(al(vm, 0x30, NOSLEEP), 0x2000);
		vmem_free(vm, 0x2000, 0x30);
		vmem_destroy(vm);
	}
}

static void
test_quantum_rounding(void)
{
	vmem_t *vm = mk("round", 0x100, 0x100, 16, 0);
	vmem_addr_t a, b[16];
	int i;

	T_EQ(vmem_roundup_size(vm, 1), 16);
	T_EQ(vmem_roundup_size(vm, 15), 16);
	T_EQ(vmem_roundup_size(vm, 16), 16);
	T_EQ(vmem_roundup_size(vm, 17), 32);
	T_EQ(vmem_roundup_size(vm, 0x1000), 0x1000);
	a = al(vm, 1, NOSLEEP);
	T_EQ(a % 16, 0);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 16);
	T_EQ(t_vmem_stats(vm).vs_inuse, 16);
	vmem_free(vm, a, 1);
	a = xa(vm, 17, ANY, NOSLEEP);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 32);
	vmem_xfree(vm, a, 32); /* rounded sizes are equal */
	a = al(vm, 20, NOSLEEP);
	vmem_free(vm, a, 31);
	for (i = 0; i < 16; i++)
		b[i] = al(vm, 1, NOSLEEP);
	T_EQ(vmem_size(vm, VMEM_FREE), 0);
	for (i = 0; i < 16; i++)
		vmem_free(vm, b[i], 16);
	T_EQ(t_vmem_stats(vm).vs_nfree, 1);
	vmem_destroy(vm);
}

/* ---- sizes, printing, statistics ---- */

static void
test_sizes(void)
{
	vmem_t *vm = mk("sizes", 0x1000, 0x1000, 16, 0);
	vmem_addr_t a = al(vm, 0x300, NOSLEEP);

	T_EQ(vmem_size(vm, VMEM_ALLOC), 0x300);
	T_EQ(vmem_size(vm, VMEM_FREE), 0xd00);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0x1000);
	T_EQ(vmem_add(vm, 0x8000, 0x800, VM_SLEEP), 0);
	T_EQ(vmem_size(vm, VMEM_FREE), 0x1500);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0x1800);
	vmem_free(vm, a, 0x300);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	vmem_destroy(vm);
}

static void
call_null_printers(void *arg)
{
	vmem_t *vm = arg;

	vmem_dump(vm, NULL);
	vmem_print((uintptr_t)vm, "", NULL);
	vmem_printall("", NULL);
	T_EQ(vmem_whatis(0x7770105, NULL), 0);
	kmem_vmem_print_stats(NULL);
}

static void
test_print_whatis(void)
{
	vmem_t *vm = mk("whatis", 0x7770000, 0x1000, 16, 0);
	char want[160];

	T_EQ(vmem_xalloc_addr(vm, 0x7770100, 0x40, NOSLEEP), 0);
	pr_reset();
	vmem_dump(vm, pr_buf);
	T_GT(plen, 0);
	pr_reset();
	vmem_print((uintptr_t)vm, "", pr_buf);
	T_GT(plen, 0);
	pr_reset();
	vmem_printall("", pr_buf);
	T_GT(plen, 0);
	T_ASSERT(strstr(pbuf, "whatis") != NULL);

	pr_reset();
	T_EQ(vmem_whatis(0x7770105, pr_buf), 0);
	snprintf(
	    want, sizeof want, "is 0x7770100+5 in VMEM 'whatis' (allocated)");
	if (strstr(pbuf, want) == NULL)
		T_FAIL("whatis printed \"%s\", want \"%s\"", pbuf, want);
	pr_reset();
	T_EQ(vmem_whatis(0x7770100, pr_buf), 0);
	T_ASSERT(strstr(pbuf, "is 0x7770100+0 in VMEM 'whatis' (allocated)") !=
	    NULL);
	pr_reset();
	T_EQ(vmem_whatis(0x7770010, pr_buf), 0);
	if (strstr(pbuf, "is 0x7770000+16 in VMEM 'whatis' (free)") == NULL)
		T_FAIL("whatis printed \"%s\"", pbuf);
	pr_reset();
	T_EQ(vmem_whatis(0x7770143, pr_buf), 0);
	if (strstr(pbuf, "is 0x7770140+3 in VMEM 'whatis' (free)") == NULL)
		T_FAIL("whatis printed \"%s\"", pbuf);
	pr_reset();
	T_EQ(vmem_whatis(0x7770fff, pr_buf), 0);
	if (strstr(pbuf, "is 0x7770140+3775 in VMEM 'whatis' (free)") == NULL)
		T_FAIL("whatis printed \"%s\"", pbuf);
	pr_reset();
	T_EQ(vmem_whatis(0x7771000, pr_buf), -1);
	T_EQ(vmem_whatis(0x776ffff, pr_buf), -1);
	quiet(call_null_printers, vm);
	vmem_xfree(vm, 0x7770100, 0x40);
	vmem_destroy(vm);
	pr_reset();
	T_EQ(vmem_whatis(0x7770105, pr_buf), -1);
}

static void
test_stats_counters(void)
{
	vmem_t *vm = mk("apistats", 0x1000, 0x1000, 16, 0);
	struct kmem_vmem_stats st;
	vmem_addr_t a, b, c, x;

	st = t_vmem_stats(vm);
	T_EQ(st.vs_alloc, 0);
	T_EQ(st.vs_free, 0);
	T_EQ(st.vs_fail, 0);
	T_EQ(st.vs_wait, 0);
	T_EQ(st.vs_import, 0);
	T_EQ(st.vs_release, 0);
	a = al(vm, 16, NOSLEEP);
	b = al(vm, 32, VM_BESTFIT | NOSLEEP);
	c = xa(vm, 48, 0x100, 0, 0, FULL, NOSLEEP);
	T_EQ(vmem_xalloc_addr(vm, 0x1f00, 16, NOSLEEP), 0);
	st = t_vmem_stats(vm);
	T_EQ(st.vs_alloc, 4);
	T_EQ(st.vs_inuse, 16 + 32 + 48 + 16);
	T_EQ(st.vs_nbusy, 4);
	T_EQ(vmem_alloc(vm, 0x2000, NOSLEEP, &x), ENOMEM);
	T_EQ(xa_rc(vm, 16, 0, 0, 0, 0x3000, VMEM_ADDR_MAX, NOSLEEP), ENOMEM);
	st = t_vmem_stats(vm);
	T_EQ(st.vs_fail, 2);
	T_EQ(st.vs_alloc, 4);
	vmem_free(vm, a, 16);
	vmem_free(vm, b, 32);
	st = t_vmem_stats(vm);
	T_EQ(st.vs_free, 2);
	T_EQ(st.vs_nbusy, 2);
	vmem_xfree(vm, c, 48);
	vmem_xfree(vm, 0x1f00, 16);
	st = t_vmem_stats(vm);
	T_EQ(st.vs_free, 4);
	T_EQ(st.vs_alloc, 4);
	T_EQ(st.vs_inuse, 0);
	T_EQ(st.vs_nbusy, 0);
	T_EQ(st.vs_nfree, 1);
	T_EQ(st.vs_wait, 0);
	T_EQ(st.vs_import, 0);
	T_EQ(st.vs_total, 0x1000);
	/* The statistics table names the arena. */
	pr_reset();
	kmem_vmem_print_stats(pr_buf);
	T_ASSERT(strstr(pbuf, "apistats") != NULL);
	/* No import function: no minimum import. */
	T_EQ(kmem_vmem_set_min_import(vm, 0x10000), EINVAL);
	vmem_destroy(vm);
}

/* ---- quantum caches and pairing ---- */

/*
 * A quantum-cache page is an arena segment of the smallest power of two
 * above 3 x qcache_max (vmem.c, section 6).
 */
static vmem_size_t
qc_pagesz(vmem_size_t qcache_max)
{
	vmem_size_t p = 1;

	while (p <= 3 * qcache_max)
		p <<= 1;
	return p;
}

/* The start of the allocated segment of arena "name" that holds addr. */
static vmem_addr_t
segment_of(const char *name, vmem_addr_t addr)
{
	char want[64], *p, *e;
	vmem_addr_t start;

	pr_reset();
	T_EQ(vmem_whatis(addr, pr_buf), 0);
	snprintf(want, sizeof want, " in VMEM '%s' (allocated)", name);
	p = strstr(pbuf, " is ");
	if (p == NULL || strstr(pbuf, want) == NULL)
		T_FAIL("whatis(%#jx): \"%s\"", (uintmax_t)addr, pbuf);
	start = (vmem_addr_t)strtoumax(p + 4, &e, 0);
	T_ASSERT(*e == '+');
	T_EQ((vmem_addr_t)strtoumax(e + 1, NULL, 0), addr - start);
	return start;
}

/* After everything is freed and the caches reaped: one free segment. */
static void
check_reaped(vmem_t *vm, vmem_size_t total)
{
	struct kmem_vmem_stats st;

	kmem_reap_all();
	st = t_vmem_stats(vm);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	T_EQ(vmem_size(vm, VMEM_FREE), total);
	T_EQ(st.vs_inuse, 0);
	T_EQ(st.vs_nbusy, 0);
	T_EQ(st.vs_nfree, 1);
	T_EQ(st.vs_alloc, st.vs_free);
}

static void
test_pairing(void)
{
	vmem_t *vm = mk("pair", 0x10000, 0x10000, 16, 64);
	const vmem_size_t pg = qc_pagesz(64);
	struct kmem_vmem_stats st;
	vmem_t *clip;
	vmem_addr_t a, page0 = 0, page;
	vmem_size_t s, inuse, ncache;
	cpu_set_t saved;
	bool pinned = t_pin_here(&saved);

	T_EQ(pg, 256);
	/*
	 * Sizes up to qcache_max come from the caches of 16, 32, 48 and 64
	 * bytes, whose pages the arena counts: one page per cache used so
	 * far, not the items.
	 */
	for (s = 1; s <= 64; s++) {
		a = al(vm, s, NOSLEEP);
		T_EQ(a % 16, 0);
		T_ASSERT(within(a, vmem_roundup_size(vm, s), 0x10000, 0x20000));
		page = segment_of("pair", a);
		T_LE(a - page + vmem_roundup_size(vm, s), pg);
		if (s == 1)
			page0 = page;
		inuse = vmem_size(vm, VMEM_ALLOC);
		ncache = (s + 15) / 16;
		T_EQ(inuse % pg, 0);
		T_GE(inuse, ncache * pg);
		if (pinned)
			T_EQ(inuse, ncache * pg);
		st = t_vmem_stats(vm);
		T_EQ(st.vs_inuse, inuse);
		T_EQ(st.vs_nbusy, inuse / pg);
		T_EQ(st.vs_alloc - st.vs_free, st.vs_nbusy);
		vmem_free(vm, a, s);
		/* The item goes back to its cache; its page stays in use. */
		T_EQ(vmem_size(vm, VMEM_ALLOC), inuse);
	}
	a = al(vm, 48, VM_SLEEP);
	vmem_free(vm, a, 48);
	/* Above qcache_max either free works. */
	a = al(vm, 80, NOSLEEP);
	vmem_xfree(vm, a, 80);
	a = al(vm, 80, NOSLEEP);
	vmem_free(vm, a, 80);
	a = xa(vm, 80, ANY, NOSLEEP);
	vmem_free(vm, a, 80);
	/* xalloc/xfree at small sizes. */
	a = xa(vm, 32, 0x100, 0, 0, FULL, NOSLEEP);
	vmem_xfree(vm, a, 32);
	T_EQ(vmem_xalloc_addr(vm, 0x1fff0, 16, NOSLEEP), 0);
	vmem_xfree(vm, 0x1fff0, 16);
	/* Everything is free, but the cached pages are still in use. */
	inuse = vmem_size(vm, VMEM_ALLOC);
	T_EQ(inuse % pg, 0);
	T_GE(inuse, 4 * pg);
	if (pinned)
		T_EQ(inuse, 4 * pg);
	T_EQ(t_vmem_stats(vm).vs_nbusy, inuse / pg);
	/*
	 * A page holding a live item cannot be had; failing, the request
	 * first had the caches give back everything else.
	 */
	a = al(vm, 16, NOSLEEP);
	page = segment_of("pair", a);
	if (pinned)
		T_EQ(page, page0);
	T_EQ(vmem_xalloc_addr(vm, page, 16, NOSLEEP), ENOMEM);
	T_EQ(vmem_size(vm, VMEM_ALLOC), pg);
	T_EQ(t_vmem_stats(vm).vs_nbusy, 1);
	/* Once it is free, the request reaps that page too and succeeds. */
	vmem_free(vm, a, 16);
	T_EQ(vmem_size(vm, VMEM_ALLOC), pg);
	T_EQ(vmem_xalloc_addr(vm, page, 16, NOSLEEP), 0);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 16);
	vmem_xfree(vm, page, 16);
	a = al(vm, 64, NOSLEEP);
	vmem_free(vm, a, 64);
	T_EQ(vmem_size(vm, VMEM_ALLOC), pg);
	/* Cached pages go back with kmem_reap_all(). */
	check_reaped(vm, 0x10000);
	vmem_destroy(vm);

	/*
	 * qcache_max is clipped to 16 quanta: 17 quanta are not cached (the
	 * xfree is accepted), 16 are, on pages for qcache_max 256.
	 */
	clip = mk("clip", 0x10000, 0x10000, 16, 16 * 100);
	a = al(clip, 17 * 16, NOSLEEP);
	vmem_xfree(clip, a, 17 * 16);
	T_EQ(vmem_size(clip, VMEM_ALLOC), 0);
	a = al(clip, 16 * 16, NOSLEEP);
	T_EQ(vmem_size(clip, VMEM_ALLOC), qc_pagesz(16 * 16));
	vmem_free(clip, a, 16 * 16);
	T_EQ(vmem_size(clip, VMEM_ALLOC), qc_pagesz(16 * 16));
	check_reaped(clip, 0x10000);
	vmem_destroy(clip);
	if (pinned)
		t_unpin(&saved);
}

/*
 * Cache pages never start at address 0 (a cache could not return it);
 * a request, cached or not, that finds the arena full first has the
 * caches give back what they hold.
 */
static void
test_qcache_full(void)
{
	vmem_t *vm = mk("qcfull", 0, 0x1000, 16, 64);
	const vmem_size_t pg = qc_pagesz(64);
	/* Pages from 16 up: 15 of them, 16 items of 16 bytes each. */
	const unsigned nitems = (unsigned)((0x1000 - 16) / pg * (pg / 16));
	static vmem_addr_t items[256];
	vmem_addr_t a, rest = 16 + (0x1000 - 16) / pg * pg;
	unsigned n = 0;

	T_EQ(nitems, 240);
	while (vmem_alloc(vm, 16, NOSLEEP, &a) == 0) {
		T_NE(a, 0);
		T_EQ(a % 16, 0);
		T_LT(n, nitems);
		items[n++] = a;
	}
	T_EQ(n, nitems);
	T_EQ(vmem_size(vm, VMEM_ALLOC), (vmem_size_t)nitems / (pg / 16) * pg);
	T_EQ(t_vmem_stats(vm).vs_nbusy, nitems / (pg / 16));
	/* Address 0 and the tail are free; fill them. */
	T_EQ(vmem_xalloc_addr(vm, 0, 16, NOSLEEP), 0);
	T_EQ(xa(vm, 0x1000 - rest, ANY, NOSLEEP), rest);
	T_EQ(vmem_size(vm, VMEM_FREE), 0);
	/* Free every item: the arena is full of empty cache pages. */
	while (n > 0)
		vmem_free(vm, items[--n], 16);
	T_EQ(vmem_size(vm, VMEM_FREE), 0);
	/* Another cache needs a page: the caches give theirs back first. */
	a = al(vm, 64, NOSLEEP);
	T_EQ(segment_of("qcfull", a), 16);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 16 + (0x1000 - rest) + pg);
	T_EQ(t_vmem_stats(vm).vs_nbusy, 3);
	vmem_free(vm, a, 64);
	T_EQ(vmem_size(vm, VMEM_ALLOC), 16 + (0x1000 - rest) + pg);
	/* So does an uncached request: all of [16, rest) is to be had. */
	T_EQ(xa(vm, rest - 16, ANY, NOSLEEP), 16);
	T_EQ(vmem_size(vm, VMEM_FREE), 0);
	T_EQ(t_vmem_stats(vm).vs_nbusy, 3);
	T_EQ(vmem_alloc(vm, 16, NOSLEEP, &a), ENOMEM);
	vmem_xfree(vm, 16, rest - 16);
	vmem_xfree(vm, 0, 16);
	vmem_xfree(vm, rest, 0x1000 - rest);
	check_reaped(vm, 0x1000);
	vmem_destroy(vm);
}

/* ---- sleeping ---- */

struct sleeper {
	vmem_t *vm;
	vmem_addr_t free1, free2;
	bool add;
};

static void *
freer(void *arg)
{
	struct sleeper *s = arg;

	usleep(100 * 1000);
	if (s->add) {
		T_EQ(vmem_add(s->vm, 0x100, 0x10, VM_SLEEP), 0);
		return NULL;
	}
	vmem_xfree(s->vm, s->free1, 1);
	if (s->free2 != 0) {
		usleep(100 * 1000);
		vmem_xfree(s->vm, s->free2, 1);
	}
	return NULL;
}

static void
fill8(vmem_t *vm)
{
	vmem_addr_t i;

	for (i = 0; i < 8; i++)
		T_EQ(vmem_xalloc_addr(vm, i, 1, NOSLEEP), 0);
}

static void
test_sleep_wait(void)
{
	vmem_t *vm = mk("sleep", 0, 8, 1, 0);
	struct sleeper s = {vm, 5, 0, false};
	pthread_t t;
	vmem_addr_t a;
	uint64_t waits;

	alarm(30);
	fill8(vm);
	T_EQ(pthread_create(&t, NULL, freer, &s), 0);
	T_EQ(vmem_alloc(vm, 1, VM_SLEEP, &a), 0);
	T_EQ(a, 5);
	pthread_join(t, NULL);
	T_GE(t_vmem_stats(vm).vs_wait, 1);
	vmem_free(vm, 5, 1);

	/*
	 * Constrained (NetBSD): no fit in [0, 3] and nothing to import is
	 * ENOMEM at once, VM_SLEEP or not; it neither waits nor counts a
	 * wait.  Once a fit exists it is served.
	 */
	T_EQ(vmem_xalloc_addr(vm, 5, 1, VM_SLEEP), 0); /* full again */
	waits = t_vmem_stats(vm).vs_wait;
	T_EQ(vmem_xalloc(vm, 1, 0, 0, 0, 0, 3, VM_SLEEP, &a), ENOMEM);
	T_EQ(vmem_xalloc(vm, 1, 2, 1, 0, 0, VMEM_ADDR_MAX, VM_SLEEP, &a),
	    ENOMEM);
	T_EQ(vmem_xalloc_addr(vm, 2, 1, VM_SLEEP), ENOMEM);
	T_EQ(t_vmem_stats(vm).vs_wait, waits);
	vmem_xfree(vm, 6, 1);
	T_EQ(vmem_xalloc(vm, 1, 0, 0, 0, 0, 3, VM_SLEEP, &a), ENOMEM);
	vmem_xfree(vm, 2, 1);
	T_EQ(vmem_xalloc(vm, 1, 0, 0, 0, 0, 3, VM_SLEEP, &a), 0);
	T_EQ(a, 2);
	vmem_xfreeall(vm);
	vmem_destroy(vm);

	/* vmem_add wakes waiters. */
	vm = mk("sleepadd", 0, 0, 16, 0);
	s.vm = vm;
	s.add = true;
	T_EQ(pthread_create(&t, NULL, freer, &s), 0);
	T_EQ(vmem_alloc(vm, 0x10, VM_SLEEP, &a), 0);
	T_EQ(a, 0x100);
	pthread_join(t, NULL);
	vmem_free(vm, a, 0x10);
	vmem_destroy(vm);
	alarm(0);
}

/* ---- import and release ---- */

static struct {
	vmem_t *src, *child;
	int nimport, nrelease;
	vmem_size_t req, got;
	vmem_addr_t addr;
	vmem_addr_t rel_addr;
	vmem_size_t rel_size;
	vmem_size_t xmult;
	bool fail;
} imp;

static int
cnt_import(vmem_t *src, vmem_size_t size, vm_flag_t flags, vmem_addr_t *addrp)
{
	vmem_addr_t a;
	int rc;

	(void)flags;
	T_ASSERT(src == imp.src);
	/* Deadlocks (and the alarm fires) if the arena lock is held. */
	if (imp.child != NULL)
		(void)vmem_size(imp.child, VMEM_ALLOC);
	if (imp.fail)
		return ENOMEM;
	rc = vmem_alloc(src, size, VM_NOSLEEP | VM_INSTANTFIT, &a);
	if (rc != 0)
		return rc;
	imp.nimport++;
	imp.req = imp.got = size;
	imp.addr = a;
	*addrp = a;
	return 0;
}

static int
cnt_ximport(vmem_t *src, vmem_size_t size, vmem_size_t *actual, vm_flag_t flags,
    vmem_addr_t *addrp)
{
	vmem_addr_t a;
	vmem_size_t got = size * imp.xmult;
	int rc;

	(void)flags;
	T_ASSERT(src == imp.src);
	if (imp.child != NULL)
		(void)vmem_size(imp.child, VMEM_ALLOC);
	rc = vmem_alloc(src, got, VM_NOSLEEP | VM_INSTANTFIT, &a);
	if (rc != 0)
		return rc;
	imp.nimport++;
	imp.req = size;
	imp.got = got;
	imp.addr = a;
	*actual = got;
	*addrp = a;
	return 0;
}

static void
cnt_release(vmem_t *src, vmem_addr_t a, vmem_size_t size)
{
	T_ASSERT(src == imp.src);
	if (imp.child != NULL)
		(void)vmem_size(imp.child, VMEM_ALLOC);
	imp.nrelease++;
	imp.rel_addr = a;
	imp.rel_size = size;
	vmem_free(src, a, size);
}

static vmem_t *
mk_src(void)
{
	memset(&imp, 0, sizeof imp);
	imp.src = mk("isrc", 0x10000000, 0x100000, 0x1000, 0);
	return imp.src;
}

static void
test_import_release(void)
{
	vmem_t *src = mk_src(), *vm;
	struct kmem_vmem_stats st;
	vmem_addr_t a, b, c, x;
	int i;

	alarm(60);
	vm = vmem_create("ichild", 0, 0, 0x1000, cnt_import, cnt_release, src,
	    0, VM_SLEEP, IPL_NONE);
	T_ASSERT(vm != NULL);
	imp.child = vm;
	T_EQ(kmem_vmem_set_min_import(vm, 0x1000), 0);

	/* One import, released as soon as it is wholly free. */
	a = al(vm, 0x1000, NOSLEEP);
	T_EQ(imp.nimport, 1);
	T_GE(imp.req, 0x1000);
	T_GE(a, imp.addr);
	T_LE(a + 0x1000 - imp.addr, imp.req);
	st = t_vmem_stats(vm);
	T_EQ(st.vs_import, 1);
	T_EQ(st.vs_imported, imp.req);
	T_EQ(st.vs_total, imp.req);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), imp.req);
	T_EQ(vmem_size(src, VMEM_ALLOC), imp.req);
	T_EQ(imp.nrelease, 0);
	vmem_free(vm, a, 0x1000);
	T_EQ(imp.nrelease, 1);
	T_EQ(imp.rel_addr, imp.addr);
	T_EQ(imp.rel_size, imp.req);
	st = t_vmem_stats(vm);
	T_EQ(st.vs_release, 1);
	T_EQ(st.vs_imported, 0);
	T_EQ(st.vs_total, 0);
	T_EQ(vmem_size(src, VMEM_ALLOC), 0);

	/* A partly used span stays. */
	T_EQ(kmem_vmem_set_min_import(vm, 0x4000), 0);
	a = al(vm, 0x1000, NOSLEEP);
	T_EQ(imp.nimport, 2);
	T_GE(imp.req, 0x4000);
	b = al(vm, 0x1000, NOSLEEP);
	T_EQ(imp.nimport, 2);
	T_GE(b, imp.addr);
	T_LE(b + 0x1000 - imp.addr, imp.req);
	vmem_free(vm, a, 0x1000);
	T_EQ(imp.nrelease, 1);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), imp.req);
	vmem_free(vm, b, 0x1000);
	T_EQ(imp.nrelease, 2);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0);

	/* vmem_xfreeall releases imported spans. */
	for (i = 0; i < 3; i++)
		(void)al(vm, 0x1000, NOSLEEP);
	T_EQ(imp.nimport, 3);
	vmem_xfreeall(vm);
	T_EQ(imp.nrelease, 3);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0);
	T_EQ(vmem_size(src, VMEM_ALLOC), 0);

	/* Import failures: ENOMEM, counted, nothing left behind. */
	imp.fail = true;
	T_EQ(vmem_alloc(vm, 0x1000, NOSLEEP, &x), ENOMEM);
	imp.fail = false;
	T_EQ(vmem_alloc(vm, 0x200000, NOSLEEP, &x), ENOMEM);
	st = t_vmem_stats(vm);
	T_EQ(st.vs_fail, 2);
	T_EQ(st.vs_total, 0);
	T_EQ(imp.nimport, imp.nrelease);

	/* A static span is never released. */
	T_EQ(vmem_add(vm, 0x50000000, 0x2000, VM_SLEEP), 0);
	c = al(vm, 0x1000, NOSLEEP);
	T_EQ(imp.nimport, 3);
	T_GE(c, 0x50000000);
	vmem_free(vm, c, 0x1000);
	T_EQ(imp.nrelease, 3);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0x2000);
	T_EQ(t_vmem_stats(vm).vs_imported, 0);
	/* Too big for the static span: imports. */
	c = al(vm, 0x3000, NOSLEEP);
	T_EQ(imp.nimport, 4);
	T_EQ(t_vmem_stats(vm).vs_imported, imp.req);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0x2000 + imp.req);
	vmem_free(vm, c, 0x3000);
	T_EQ(imp.nrelease, 4);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0x2000);
	st = t_vmem_stats(vm);
	T_EQ(st.vs_import, 4);
	T_EQ(st.vs_release, 4);
	imp.child = NULL;
	vmem_destroy(vm);
	T_EQ(vmem_size(src, VMEM_ALLOC), 0);
	vmem_destroy(src);
	alarm(0);
}

/* importfn == vmem_alloc: constrained requests import constrained spans. */
static void
test_import_vmem_alloc(void)
{
	vmem_t *src = mk_src(), *vm;
	vmem_addr_t a[6];
	int i;

	alarm(60);
	vm = vmem_create("vchild", 0, 0, 0x1000, vmem_alloc, vmem_free, src, 0,
	    VM_SLEEP, IPL_NONE);
	T_ASSERT(vm != NULL);
	T_EQ(kmem_vmem_set_min_import(vm, 0x1000), 0);
	a[0] = xa(vm, 0x1000, 0x40000, 0, 0, FULL, NOSLEEP);
	T_EQ(a[0] % 0x40000, 0);
	a[1] = xa(vm, 0x1000, 0, 0, 0, 0x10080000, VMEM_ADDR_MAX, NOSLEEP);
	T_GE(a[1], 0x10080000);
	a[2] = xa(vm, 0x2000, 0, 0, 0, 0, 0x1000ffff, NOSLEEP);
	T_LE(a[2] + 0x1fff, 0x1000ffff);
	a[3] = xa(vm, 0x1000, 0x10000, 0x3000, 0, FULL, NOSLEEP);
	T_EQ((a[3] - 0x3000) % 0x10000, 0);
	a[4] = xa(vm, 0x3000, 0, 0, 0x4000, FULL, NOSLEEP);
	T_EQ(a[4] / 0x4000, (a[4] + 0x2fff) / 0x4000);
	a[5] = al(vm, 0x5000, NOSLEEP);
	T_EQ(xa_rc(vm, 0x1000, 0, 0, 0, 0x20000000, VMEM_ADDR_MAX, NOSLEEP),
	    ENOMEM);
	T_EQ(vmem_size(src, VMEM_ALLOC), vmem_size(vm, VMEM_ALLOC | VMEM_FREE));
	T_GE(t_vmem_stats(vm).vs_import, 1);
	vmem_xfree(vm, a[0], 0x1000);
	vmem_xfree(vm, a[1], 0x1000);
	vmem_xfree(vm, a[2], 0x2000);
	vmem_xfree(vm, a[3], 0x1000);
	vmem_xfree(vm, a[4], 0x3000);
	vmem_free(vm, a[5], 0x5000);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0);
	T_EQ(vmem_size(src, VMEM_ALLOC), 0);
	/* Many at once, then all back. */
	for (i = 0; i < 6; i++)
		a[i] = al(vm, 0x1000 * (vmem_size_t)(i + 1), VM_SLEEP);
	for (i = 0; i < 6; i++)
		vmem_free(vm, a[i], 0x1000 * (vmem_size_t)(i + 1));
	T_EQ(vmem_size(src, VMEM_ALLOC), 0);
	vmem_destroy(vm);
	vmem_destroy(src);
	alarm(0);
}

/* A foreign import function cannot be told align/min/max. */
static void
test_import_foreign_constrained(void)
{
	vmem_t *src = mk_src(), *vm;
	vmem_addr_t a;

	alarm(60);
	vm = vmem_create("fchild", 0, 0, 0x1000, cnt_import, cnt_release, src,
	    0, VM_SLEEP, IPL_NONE);
	T_ASSERT(vm != NULL);
	imp.child = vm;
	T_EQ(kmem_vmem_set_min_import(vm, 0x1000), 0);
	/* Enlarged so that an aligned range fits whatever the source gives. */
	a = xa(vm, 0x1000, 0x40000, 0, 0, FULL, NOSLEEP);
	T_EQ(a % 0x40000, 0);
	T_EQ(imp.nimport, 1);
	a = xa(vm, 0x2000, 0x8000, 0x1000, 0x10000, FULL, NOSLEEP);
	check_constraints(
	    a, 0x2000, 0x1000, 0x8000, 0x1000, 0x10000, 0, VMEM_ADDR_MAX);
	vmem_xfreeall(vm);
	T_EQ(imp.nrelease, imp.nimport);
	/* The imported span cannot satisfy minaddr: released, ENOMEM. */
	T_EQ(xa_rc(vm, 0x1000, 0, 0, 0, 0x30000000, VMEM_ADDR_MAX, NOSLEEP),
	    ENOMEM);
	T_EQ(imp.nrelease, imp.nimport);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), 0);
	T_EQ(vmem_size(src, VMEM_ALLOC), 0);
	imp.child = NULL;
	vmem_destroy(vm);
	vmem_destroy(src);
	alarm(0);
}

static void
test_ximport(void)
{
	vmem_t *src = mk_src(), *vm;
	vmem_addr_t a[16];
	vmem_size_t used = 0;
	int n = 0, i;

	alarm(60);
	imp.xmult = 4;
	vm = vmem_xcreate("xchild", 0, 0, 0x1000, cnt_ximport, cnt_release, src,
	    0, VM_SLEEP, IPL_NONE);
	T_ASSERT(vm != NULL);
	imp.child = vm;
	T_EQ(kmem_vmem_set_min_import(vm, 0x1000), 0);
	a[n++] = al(vm, 0x1000, NOSLEEP);
	used = 0x1000;
	T_EQ(imp.nimport, 1);
	T_EQ(imp.got, 4 * imp.req);
	/* The span added is the size the import reported. */
	T_EQ(t_vmem_stats(vm).vs_imported, imp.got);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), imp.got);
	while (used + 0x1000 <= imp.got && n < 16) {
		a[n++] = al(vm, 0x1000, NOSLEEP);
		used += 0x1000;
	}
	T_EQ(imp.nimport, 1);
	for (i = 0; i < n; i++) {
		T_GE(a[i], imp.addr);
		T_LE(a[i] + 0x1000 - imp.addr, imp.got);
	}
	for (i = 0; i < n; i++)
		vmem_free(vm, a[i], 0x1000);
	T_EQ(imp.nrelease, 1);
	T_EQ(imp.rel_addr, imp.addr);
	T_EQ(imp.rel_size, imp.got);
	T_EQ(vmem_size(src, VMEM_ALLOC), 0);
	imp.child = NULL;
	vmem_destroy(vm);
	vmem_destroy(src);
	alarm(0);
}

static void
test_largeimport(void)
{
	vmem_t *src = mk_src(), *vm;
	vmem_addr_t a;

	alarm(60);
	vm = vmem_create("lchild", 0, 0, 0x1000, cnt_import, cnt_release, src,
	    0, VM_SLEEP | VM_LARGEIMPORT, IPL_NONE);
	T_ASSERT(vm != NULL);
	imp.child = vm;
	T_EQ(kmem_vmem_set_min_import(vm, 0x1000), 0);
	a = al(vm, 0x1000, NOSLEEP);
	T_EQ(imp.nimport, 1);
	T_GE(imp.req, 0x10000);
	vmem_free(vm, a, 0x1000);
	T_EQ(imp.nrelease, 1);
	imp.child = NULL;
	vmem_destroy(vm);
	vmem_destroy(src);
	alarm(0);
}

int
main(void)
{
	t_seed();
	T_RUN(test_create_static);
	T_RUN(test_create_id_arena);
	T_RUN(test_create_bad);
	T_RUN(test_add);
	T_RUN(test_fit_flags);
	T_RUN(test_instant_vs_best);
	T_RUN(test_nextfit);
	T_RUN(test_xalloc_constraints);
	T_RUN(test_netbsd_boundaries);
	T_RUN(test_top_of_address_space);
	T_RUN(test_whole_address_space);
	T_RUN(test_address_zero);
	T_RUN(test_xalloc_addr);
	T_RUN(test_xfreeall);
	T_RUN(test_coalesce);
	T_RUN(test_quantum_rounding);
	T_RUN(test_sizes);
	T_RUN(test_print_whatis);
	T_RUN(test_stats_counters);
	T_RUN(test_pairing);
	T_RUN(test_qcache_full);
	T_RUN(test_sleep_wait);
	T_RUN(test_import_release);
	T_RUN(test_import_vmem_alloc);
	T_RUN(test_import_foreign_constrained);
	T_RUN(test_ximport);
	T_RUN(test_largeimport);
	T_RUN(test_xalloc_model);
	return t_done();
}
