/*
 * vmem_import.c -- arenas that import their spans from a source arena (or
 * from a foreign import function) and release them when wholly free.
 *
 * Contract (docs/vmem-contract.md, "Imported spans"): imported spans are
 * released as soon as wholly free and never while partly used; static spans
 * never; importfn == vmem_alloc turns a constrained request into a
 * vmem_xalloc on the source; a foreign import is enlarged so that it holds
 * a fitting range whatever its alignment; min import and VM_LARGEIMPORT
 * enlarge imports; import failure with VM_NOSLEEP is ENOMEM, arena unchanged.
 */
#include "t.h"
#include "t_vmem.h"

#include <kmem/pool.h>
#include <kmem/vmem.h>

#define Q	 ((vmem_size_t)4096)
#define PBASE	 ((vmem_addr_t)0x10000000)
#define PSIZE	 ((vmem_size_t)64 << 20)
#define MAXLIVE	 512
#define MAXSPANS 256

/* Arena-internal consistency visible from outside. */
static void
check_arena(vmem_t *vm)
{
	struct kmem_vmem_stats st = t_vmem_stats(vm);

	T_EQ(st.vs_inuse, vmem_size(vm, VMEM_ALLOC));
	T_EQ(st.vs_total, vmem_size(vm, VMEM_ALLOC | VMEM_FREE));
	T_EQ(st.vs_total - st.vs_inuse, vmem_size(vm, VMEM_FREE));
	T_LE(st.vs_imported, st.vs_total);
	T_LE(st.vs_inuse, st.vs_total);
	T_GE(st.vs_import, st.vs_release);
}

static vmem_t *
mk_static(const char *name, vmem_addr_t base, vmem_size_t size,
    vmem_size_t qcache_max)
{
	vmem_t *vm = vmem_create(name, base, size, Q, NULL, NULL, NULL,
	    qcache_max, VM_SLEEP, IPL_NONE);

	T_ASSERT(vm != NULL);
	return vm;
}

static vmem_t *
mk_child(const char *name, vmem_t *source, vm_flag_t flags)
{
	vmem_t *vm = vmem_create(
	    name, 0, 0, Q, vmem_alloc, vmem_free, source, 0, flags, IPL_NONE);

	T_ASSERT(vm != NULL);
	return vm;
}

/* ---- a live-allocation list ---- */

struct live {
	vmem_addr_t addr;
	vmem_size_t size;
	bool x; /* made by vmem_xalloc */
};

struct lives {
	struct live v[MAXLIVE];
	unsigned n;
};

static void
lives_add(struct lives *l, vmem_addr_t a, vmem_size_t s, bool x)
{
	T_LT(l->n, MAXLIVE);
	for (unsigned i = 0; i < l->n; i++)
		T_ASSERT(
		    a + s <= l->v[i].addr || l->v[i].addr + l->v[i].size <= a);
	l->v[l->n].addr = a;
	l->v[l->n].size = s;
	l->v[l->n].x = x;
	l->n++;
}

static void
lives_free(vmem_t *vm, struct lives *l, unsigned i)
{
	struct live e = l->v[i];

	l->v[i] = l->v[--l->n];
	if (e.x)
		vmem_xfree(vm, e.addr, e.size);
	else
		vmem_free(vm, e.addr, e.size);
}

static vmem_size_t
lives_bytes(const struct lives *l)
{
	vmem_size_t s = 0;

	for (unsigned i = 0; i < l->n; i++)
		s += l->v[i].size;
	return s;
}

static void
check_constraints(vmem_addr_t a, vmem_size_t size, vmem_size_t align,
    vmem_size_t phase, vmem_size_t nocross, vmem_addr_t minaddr,
    vmem_addr_t maxaddr)
{
	T_EQ(a % Q, 0);
	if (align == 0)
		align = Q;
	T_EQ((a - phase) % align, 0);
	T_GE(a, minaddr);
	T_LE(a + size - 1, maxaddr);
	if (nocross != 0)
		T_EQ(a / nocross, (a + size - 1) / nocross);
}

/* ---- 1. release as soon as wholly free, never while partly used ---- */

static void
test_release_when_wholly_free(void)
{
	vmem_t *p = mk_static("imp-parent", PBASE, PSIZE, 0);
	vmem_t *c = mk_child("imp-child", p, VM_SLEEP);
	struct kmem_vmem_stats st;
	vmem_addr_t a, b, d;

	st = t_vmem_stats(c);
	T_EQ(st.vs_total, 0);
	T_EQ(st.vs_imported, 0);
	T_EQ(st.vs_import, 0);
	T_EQ(vmem_size(c, VMEM_ALLOC | VMEM_FREE), 0);

	T_EQ(kmem_vmem_set_min_import(c, 16 * Q), 0);
	T_EQ(vmem_alloc(c, Q, VM_SLEEP, &a), 0);
	st = t_vmem_stats(c);
	T_EQ(st.vs_import, 1);
	T_GE(st.vs_imported, 16 * Q);
	T_EQ(st.vs_total, st.vs_imported);
	T_EQ(vmem_size(p, VMEM_ALLOC), st.vs_imported);
	T_ASSERT(a >= PBASE && a + Q <= PBASE + PSIZE);

	/* Fits in the same span: no second import. */
	T_EQ(vmem_alloc(c, 3 * Q, VM_SLEEP, &b), 0);
	T_EQ(vmem_xalloc(c, 2 * Q, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
		 VM_SLEEP | VM_BESTFIT, &d),
	    0);
	st = t_vmem_stats(c);
	T_EQ(st.vs_import, 1);
	T_EQ(st.vs_inuse, 6 * Q);
	check_arena(c);

	/* Partly used: never released. */
	vmem_free(c, a, Q);
	vmem_xfree(c, d, 2 * Q);
	st = t_vmem_stats(c);
	T_EQ(st.vs_release, 0);
	T_GE(st.vs_imported, 16 * Q);
	T_EQ(vmem_size(p, VMEM_ALLOC), st.vs_imported);
	check_arena(c);

	/* Wholly free: released at once. */
	vmem_free(c, b, 3 * Q);
	st = t_vmem_stats(c);
	T_EQ(st.vs_release, 1);
	T_EQ(st.vs_imported, 0);
	T_EQ(st.vs_total, 0);
	T_EQ(st.vs_inuse, 0);
	T_EQ(st.vs_nbusy, 0);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);
	T_EQ(vmem_size(c, VMEM_FREE), 0);
	check_arena(c);

	/* And again: a new import, a new release. */
	T_EQ(vmem_alloc(c, 5 * Q, VM_NOSLEEP, &a), 0);
	T_EQ(t_vmem_stats(c).vs_import, 2);
	vmem_free(c, a, 5 * Q);
	T_EQ(t_vmem_stats(c).vs_release, 2);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);

	vmem_destroy(c);
	vmem_destroy(p);
}

/*
 * A foreign import function that wraps vmem_alloc on the source, records
 * every span and checks that the importing arena's lock is not held (it
 * calls vmem_size() on that arena, which would deadlock otherwise).
 */
struct span {
	vmem_addr_t addr;
	vmem_size_t size;
};
static struct span g_spans[MAXSPANS];
static unsigned g_nspans;
static vmem_t *g_lockcheck;
static unsigned g_nimport, g_nrelease;

static void
spans_add(vmem_addr_t a, vmem_size_t s)
{
	T_LT(g_nspans, MAXSPANS);
	for (unsigned i = 0; i < g_nspans; i++)
		T_ASSERT(a + s <= g_spans[i].addr ||
		    g_spans[i].addr + g_spans[i].size <= a);
	g_spans[g_nspans].addr = a;
	g_spans[g_nspans].size = s;
	g_nspans++;
}

static void
spans_del(vmem_addr_t a, vmem_size_t s)
{
	for (unsigned i = 0; i < g_nspans; i++) {
		if (g_spans[i].addr == a) {
			T_EQ(g_spans[i].size, s);
			g_spans[i] = g_spans[--g_nspans];
			return;
		}
	}
	T_FAIL(
	    "release of unknown span 0x%jx+0x%jx", (uintmax_t)a, (uintmax_t)s);
}

static void
check_sleep_flag(vm_flag_t fl)
{
	T_ASSERT(((fl & VM_SLEEP) != 0) != ((fl & VM_NOSLEEP) != 0));
}

static int
wrap_import(vmem_t *src, vmem_size_t size, vm_flag_t fl, vmem_addr_t *out)
{
	vmem_addr_t a;
	int e;

	check_sleep_flag(fl);
	if (g_lockcheck != NULL)
		(void)vmem_size(g_lockcheck, VMEM_ALLOC);
	T_GT(size, 0);
	T_EQ(size % Q, 0);
	e = vmem_alloc(src, size, fl, &a);
	if (e != 0)
		return e;
	spans_add(a, size);
	g_nimport++;
	*out = a;
	return 0;
}

static void
wrap_release(vmem_t *src, vmem_addr_t a, vmem_size_t size)
{
	if (g_lockcheck != NULL)
		(void)vmem_size(g_lockcheck, VMEM_ALLOC);
	spans_del(a, size);
	g_nrelease++;
	vmem_free(src, a, size);
}

/* Every recorded span holds at least one live allocation; every live
 * allocation lies in a recorded span. */
static void
check_spans_vs_lives(vmem_t *c, const struct lives *l)
{
	vmem_size_t tot = 0;

	for (unsigned i = 0; i < g_nspans; i++) {
		unsigned inside = 0;

		for (unsigned j = 0; j < l->n; j++)
			if (l->v[j].addr >= g_spans[i].addr &&
			    l->v[j].addr < g_spans[i].addr + g_spans[i].size)
				inside++;
		if (inside == 0)
			T_FAIL("span 0x%jx+0x%jx is wholly free but was not "
			       "released",
			    (uintmax_t)g_spans[i].addr,
			    (uintmax_t)g_spans[i].size);
		tot += g_spans[i].size;
	}
	for (unsigned j = 0; j < l->n; j++) {
		bool in = false;

		for (unsigned i = 0; i < g_nspans && !in; i++)
			in = l->v[j].addr >= g_spans[i].addr &&
			    l->v[j].addr + l->v[j].size <=
				g_spans[i].addr + g_spans[i].size;
		T_ASSERT(in);
	}
	struct kmem_vmem_stats st = t_vmem_stats(c);
	T_EQ(st.vs_imported, tot);
	T_EQ(st.vs_total, tot);
	T_EQ(st.vs_import, g_nimport);
	T_EQ(st.vs_release, g_nrelease);
	T_EQ(st.vs_inuse, lives_bytes(l));
	T_EQ(st.vs_nbusy, l->n);
	check_arena(c);
}

static void
test_release_random_tracked(void)
{
	vmem_t *p = mk_static("trk-parent", PBASE, PSIZE, 0);
	vmem_t *c = vmem_create("trk-child", 0, 0, Q, wrap_import, wrap_release,
	    p, 0, VM_SLEEP, IPL_NONE);
	static struct lives l;
	unsigned iters = (unsigned)t_scale(4000);

	T_ASSERT(c != NULL);
	l.n = 0;
	g_nspans = g_nimport = g_nrelease = 0;
	g_lockcheck = c;
	for (unsigned it = 0; it < iters; it++) {
		if (it % 500 == 250)
			T_EQ(kmem_vmem_set_min_import(
				 c, (vmem_size_t)(t_rand_below(8) + 1) * 8 * Q),
			    0);
		if (l.n < MAXLIVE && (l.n == 0 || t_rand_below(100) < 55)) {
			vmem_size_t s = (t_rand_below(12) + 1) * Q;
			vmem_addr_t a;
			bool x = t_rand_below(2);
			vm_flag_t fit =
			    t_rand_below(2) ? VM_BESTFIT : VM_INSTANTFIT;

			if (x)
				T_EQ(vmem_xalloc(c, s, 0, 0, 0, VMEM_ADDR_MIN,
					 VMEM_ADDR_MAX, VM_SLEEP | fit, &a),
				    0);
			else
				T_EQ(vmem_alloc(c, s, VM_SLEEP | fit, &a), 0);
			lives_add(&l, a, s, x);
		} else {
			lives_free(c, &l, (unsigned)t_rand_below(l.n));
		}
		check_spans_vs_lives(c, &l);
		T_EQ(vmem_size(p, VMEM_ALLOC), t_vmem_stats(c).vs_imported);
	}
	while (l.n > 0) {
		lives_free(c, &l, (unsigned)t_rand_below(l.n));
		check_spans_vs_lives(c, &l);
	}
	T_EQ(g_nspans, 0);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);
	g_lockcheck = NULL;
	vmem_destroy(c);
	vmem_destroy(p);
}

/* Same random walk with importfn == vmem_alloc itself: totals only. */
static void
test_release_random_vmem_alloc(void)
{
	vmem_t *p = mk_static("ra-parent", PBASE, PSIZE, 0);
	vmem_t *c = mk_child("ra-child", p, VM_SLEEP);
	static struct lives l;
	unsigned iters = (unsigned)t_scale(4000);
	struct kmem_vmem_stats st;

	l.n = 0;
	for (unsigned it = 0; it < iters; it++) {
		if (l.n < MAXLIVE && (l.n == 0 || t_rand_below(100) < 55)) {
			vmem_size_t s = (t_rand_below(12) + 1) * Q;
			vmem_size_t al = Q << t_rand_below(5);
			vmem_addr_t a;
			bool x = t_rand_below(2);

			if (x) {
				T_EQ(vmem_xalloc(c, s, al, 0, 0, VMEM_ADDR_MIN,
					 VMEM_ADDR_MAX, VM_NOSLEEP, &a),
				    0);
				check_constraints(a, s, al, 0, 0, VMEM_ADDR_MIN,
				    VMEM_ADDR_MAX);
			} else {
				T_EQ(vmem_alloc(c, s, VM_NOSLEEP, &a), 0);
			}
			T_ASSERT(a >= PBASE && a + s <= PBASE + PSIZE);
			lives_add(&l, a, s, x);
		} else {
			lives_free(c, &l, (unsigned)t_rand_below(l.n));
		}
		st = t_vmem_stats(c);
		T_EQ(st.vs_inuse, lives_bytes(&l));
		T_EQ(st.vs_total, st.vs_imported);
		T_EQ(vmem_size(p, VMEM_ALLOC), st.vs_imported);
		if (l.n == 0)
			T_EQ(st.vs_imported, 0);
		check_arena(c);
	}
	while (l.n > 0)
		lives_free(c, &l, (unsigned)t_rand_below(l.n));
	st = t_vmem_stats(c);
	T_EQ(st.vs_imported, 0);
	T_EQ(st.vs_total, 0);
	T_EQ(st.vs_import, st.vs_release);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);
	vmem_destroy(c);
	vmem_destroy(p);
}

/* ---- 2. three deep ---- */

static void
test_nested_three_deep(void)
{
	vmem_t *gp = mk_static("n3-gp", PBASE, PSIZE, 0);
	vmem_t *p = mk_child("n3-parent", gp, VM_SLEEP);
	vmem_t *c = mk_child("n3-child", p, VM_SLEEP);
	static struct lives l;
	struct kmem_vmem_stats sp, sc;

	l.n = 0;
	for (unsigned i = 0; i < 200; i++) {
		vmem_size_t s = (t_rand_below(20) + 1) * Q;
		vmem_addr_t a;
		bool x = t_rand_below(3) == 0;

		if (x) {
			vmem_size_t al = Q << t_rand_below(8);
			T_EQ(vmem_xalloc(c, s, al, 0, 0, VMEM_ADDR_MIN,
				 VMEM_ADDR_MAX, VM_SLEEP, &a),
			    0);
			check_constraints(
			    a, s, al, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX);
		} else {
			T_EQ(vmem_alloc(c, s, VM_SLEEP, &a), 0);
		}
		T_ASSERT(a >= PBASE && a + s <= PBASE + PSIZE);
		lives_add(&l, a, s, x);
		if (t_rand_below(4) == 0)
			lives_free(c, &l, (unsigned)t_rand_below(l.n));
	}
	while (l.n > 0) {
		sp = t_vmem_stats(p);
		sc = t_vmem_stats(c);
		T_EQ(vmem_size(gp, VMEM_ALLOC), sp.vs_imported);
		T_EQ(sp.vs_total, sp.vs_imported);
		T_EQ(vmem_size(p, VMEM_ALLOC), sc.vs_imported);
		T_EQ(sc.vs_inuse, lives_bytes(&l));
		T_GT(sc.vs_imported, 0);
		check_arena(gp);
		check_arena(p);
		check_arena(c);
		lives_free(c, &l, (unsigned)t_rand_below(l.n));
	}
	sp = t_vmem_stats(p);
	sc = t_vmem_stats(c);
	T_EQ(sc.vs_total, 0);
	T_EQ(sc.vs_imported, 0);
	T_EQ(sc.vs_import, sc.vs_release);
	T_EQ(sp.vs_inuse, 0);
	T_EQ(sp.vs_total, 0);
	T_EQ(sp.vs_imported, 0);
	T_EQ(sp.vs_import, sp.vs_release);
	T_GT(sp.vs_import, 0);
	T_EQ(vmem_size(gp, VMEM_ALLOC), 0);
	T_EQ(vmem_size(gp, VMEM_FREE), PSIZE);
	vmem_destroy(c);
	vmem_destroy(p);
	vmem_destroy(gp);
}

/* ---- 3. constrained xalloc through importfn == vmem_alloc ---- */

struct xreq {
	vmem_size_t size, align, phase, nocross;
	vmem_addr_t minaddr, maxaddr;
};

static const struct xreq xreqs[] = {
    {3 * Q, 1 << 20, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
    {Q, 64 * 1024, Q, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
    {Q, 16 << 20, 5 * Q, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
    {4 * Q, 0, 0, 8 * Q, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
    {7 * Q, 0, 0, 8 * Q, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
    {8 * Q, 0, 0, 0, PBASE + (32 << 20), PBASE + (33 << 20) - 1},
    {Q, 0, 0, 0, PBASE + PSIZE - Q, VMEM_ADDR_MAX},
    {2 * Q, 0, 0, 0, VMEM_ADDR_MIN, PBASE + (4 << 20) - 1},
    {2 * Q, 128 * 1024, 2 * Q, 256 * 1024, PBASE + (40 << 20) + Q,
	PBASE + (48 << 20)},
    {16 * Q, 16 * Q, 0, 16 * Q, PBASE + (7 << 20) + 3 * Q,
	PBASE + (9 << 20) - 1},
    /* exactly one fitting place */
    {2 * Q, 0, 0, 0, PBASE + (50 << 20), PBASE + (50 << 20) + 2 * Q - 1},
};
#define NXREQS (sizeof xreqs / sizeof xreqs[0])

static void
test_constrained_import_vmem_alloc(void)
{
	vmem_t *p = mk_static("ci-parent", PBASE, PSIZE, 0);
	vmem_t *c = mk_child("ci-child", p, VM_SLEEP);
	vmem_addr_t addrs[NXREQS];

	/* Imports exactly the request (no default minimum in the way). */
	T_EQ(kmem_vmem_set_min_import(c, Q), 0);
	/* One at a time, from an empty child. */
	for (size_t i = 0; i < sizeof xreqs / sizeof xreqs[0]; i++) {
		const struct xreq *r = &xreqs[i];
		uint64_t imp0 = t_vmem_stats(c).vs_import;
		vmem_addr_t a;

		T_EQ(vmem_xalloc(c, r->size, r->align, r->phase, r->nocross,
			 r->minaddr, r->maxaddr, VM_NOSLEEP, &a),
		    0);
		check_constraints(a, r->size, r->align, r->phase, r->nocross,
		    r->minaddr, r->maxaddr);
		T_EQ(t_vmem_stats(c).vs_import, imp0 + 1);
		T_EQ(vmem_size(p, VMEM_ALLOC), t_vmem_stats(c).vs_imported);
		check_arena(c);
		vmem_xfree(c, a, r->size);
		T_EQ(t_vmem_stats(c).vs_imported, 0);
		T_EQ(vmem_size(p, VMEM_ALLOC), 0);
	}

	/* All at once, each with VM_SLEEP, while the others are held. */
	for (size_t i = 0; i < sizeof xreqs / sizeof xreqs[0]; i++) {
		const struct xreq *r = &xreqs[i];

		T_EQ(vmem_xalloc(c, r->size, r->align, r->phase, r->nocross,
			 r->minaddr, r->maxaddr, VM_SLEEP | VM_BESTFIT,
			 &addrs[i]),
		    0);
		check_constraints(addrs[i], r->size, r->align, r->phase,
		    r->nocross, r->minaddr, r->maxaddr);
		for (size_t j = 0; j < i; j++)
			T_ASSERT(addrs[i] + r->size <= addrs[j] ||
			    addrs[j] + xreqs[j].size <= addrs[i]);
		T_EQ(vmem_size(p, VMEM_ALLOC), t_vmem_stats(c).vs_imported);
	}
	for (size_t i = 0; i < sizeof xreqs / sizeof xreqs[0]; i++)
		vmem_xfree(c, addrs[i], xreqs[i].size);
	T_EQ(t_vmem_stats(c).vs_imported, 0);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);

	/* An existing span that does not satisfy the constraint: import. */
	{
		vmem_addr_t a, b;
		uint64_t imp0 = t_vmem_stats(c).vs_import;

		T_EQ(kmem_vmem_set_min_import(c, 64 * Q), 0);
		T_EQ(vmem_xalloc(c, Q, 0, 0, 0, VMEM_ADDR_MIN,
			 PBASE + (1 << 20) - 1, VM_NOSLEEP, &a),
		    0);
		T_LT(a, PBASE + (1 << 20));
		T_EQ(t_vmem_stats(c).vs_import, imp0 + 1);
		T_EQ(vmem_xalloc(c, Q, 0, 0, 0, PBASE + (60 << 20),
			 VMEM_ADDR_MAX, VM_NOSLEEP, &b),
		    0);
		T_GE(b, PBASE + (60 << 20));
		T_EQ(t_vmem_stats(c).vs_import, imp0 + 2);
		T_EQ(vmem_size(p, VMEM_ALLOC), t_vmem_stats(c).vs_imported);
		vmem_xfree(c, a, Q);
		vmem_xfree(c, b, Q);
		T_EQ(t_vmem_stats(c).vs_imported, 0);
		T_EQ(kmem_vmem_set_min_import(c, Q), 0);
	}

	/* vmem_xalloc_addr imports exactly the range it names. */
	{
		vmem_addr_t at = PBASE + (20 << 20) + 3 * Q;

		T_EQ(vmem_xalloc_addr(c, at, 5 * Q, VM_NOSLEEP), 0);
		T_EQ(vmem_size(c, VMEM_ALLOC), 5 * Q);
		T_EQ(vmem_size(p, VMEM_ALLOC), t_vmem_stats(c).vs_imported);
		T_EQ(vmem_xalloc_addr(p, at - Q, Q, VM_NOSLEEP), 0);
		vmem_xfree(p, at - Q, Q);
		vmem_xfree(c, at, 5 * Q);
		T_EQ(t_vmem_stats(c).vs_imported, 0);
		T_EQ(vmem_size(p, VMEM_ALLOC), 0);
	}

	/* A range the source cannot satisfy: ENOMEM, nothing changes. */
	{
		struct kmem_vmem_stats s0 = t_vmem_stats(c), s1;
		vmem_size_t pa0 = vmem_size(p, VMEM_ALLOC);
		vmem_addr_t a = 0xdead;

		T_EQ(vmem_xalloc(c, Q, 0, 0, 0, PBASE + PSIZE, VMEM_ADDR_MAX,
			 VM_NOSLEEP, &a),
		    ENOMEM);
		T_EQ(a, 0xdead);
		T_EQ(vmem_xalloc(
			 c, 2 * Q, 0, 0, 0, 0, PBASE + Q - 1, VM_NOSLEEP, &a),
		    ENOMEM);
		T_EQ(vmem_xalloc(c, 2 * Q, 1 << 30, Q, 0, VMEM_ADDR_MIN,
			 VMEM_ADDR_MAX, VM_NOSLEEP, &a),
		    ENOMEM);
		T_EQ(vmem_xalloc_addr(c, PBASE - Q, 2 * Q, VM_NOSLEEP), ENOMEM);
		s1 = t_vmem_stats(c);
		t_vmem_unchanged(&s0, &s1);
		T_EQ(s1.vs_fail, s0.vs_fail + 4);
		T_EQ(vmem_size(p, VMEM_ALLOC), pa0);
	}
	vmem_destroy(c);
	vmem_destroy(p);
}

/* ---- 4. foreign import functions with constraints ---- */

/*
 * Counter-backed import: every span starts at Q mod 16 MiB, the worst
 * alignment for any align up to 16 MiB.  Spans never reused.
 */
static vmem_addr_t g_bump;
static struct span g_last_import, g_last_release;

static int
bump_import(vmem_t *src, vmem_size_t size, vm_flag_t fl, vmem_addr_t *out)
{
	vmem_addr_t a;

	(void)src;
	check_sleep_flag(fl);
	T_GT(size, 0);
	a = (g_bump + (16 << 20) - 1) / (16 << 20) * (16 << 20) + Q;
	g_bump = a + size;
	spans_add(a, size);
	g_nimport++;
	g_last_import.addr = a;
	g_last_import.size = size;
	*out = a;
	return 0;
}

static void
bump_release(vmem_t *src, vmem_addr_t a, vmem_size_t size)
{
	(void)src;
	spans_del(a, size);
	g_nrelease++;
	g_last_release.addr = a;
	g_last_release.size = size;
}

static void
test_foreign_import_counter(void)
{
	vmem_t *dummy = mk_static("fc-dummy", 0x1000, Q, 0);
	vmem_t *c = vmem_create("fc-child", 0, 0, Q, bump_import, bump_release,
	    dummy, 0, VM_SLEEP, IPL_NONE);
	static const struct xreq rs[] = {
	    {Q, 64 * 1024, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
	    {Q, 1 << 20, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
	    {3 * Q, 1 << 20, 2 * Q, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
	    {5 * Q, 8 << 20, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
	    {8 * Q, 0, 0, 8 * Q, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
	    {3 * Q, 2 * Q, Q, 4 * Q, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
	    {4 * Q, 16 * Q, 4 * Q, 64 * Q, VMEM_ADDR_MIN, VMEM_ADDR_MAX},
	};
	vmem_addr_t addrs[sizeof rs / sizeof rs[0]];
	struct kmem_vmem_stats s0, s1;

	T_ASSERT(c != NULL);
	g_nspans = g_nimport = g_nrelease = 0;
	g_bump = 0x40000000;
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
			const struct xreq *r = &rs[i];

			T_EQ(vmem_xalloc(c, r->size, r->align, r->phase,
				 r->nocross, r->minaddr, r->maxaddr,
				 round ? VM_SLEEP : VM_NOSLEEP, &addrs[i]),
			    0);
			check_constraints(addrs[i], r->size, r->align, r->phase,
			    r->nocross, r->minaddr, r->maxaddr);
			if (round == 0) {
				check_arena(c);
				vmem_xfree(c, addrs[i], r->size);
				T_EQ(g_nspans, 0);
			}
		}
		if (round == 1)
			for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
				vmem_xfree(c, addrs[i], rs[i].size);
		T_EQ(g_nspans, 0);
		T_EQ(g_nimport, g_nrelease);
		T_EQ(t_vmem_stats(c).vs_imported, 0);
	}

	/* min/max the next import satisfies: success. */
	{
		vmem_addr_t next =
		    (g_bump + (16 << 20) - 1) / (16 << 20) * (16 << 20);
		vmem_addr_t a;

		T_EQ(vmem_xalloc(c, 2 * Q, 0, 0, 0, next, next + (1 << 20),
			 VM_NOSLEEP, &a),
		    0);
		check_constraints(a, 2 * Q, 0, 0, 0, next, next + (1 << 20));
		vmem_xfree(c, a, 2 * Q);
		T_EQ(g_nspans, 0);
	}

	/* min/max the import cannot satisfy: released at once, ENOMEM. */
	{
		unsigned ni = g_nimport, nr = g_nrelease;
		vmem_addr_t a = 0xdead;

		s0 = t_vmem_stats(c);
		T_EQ(vmem_xalloc(c, 2 * Q, 0, 0, 0, 0x1000, 0x100000 - 1,
			 VM_NOSLEEP, &a),
		    ENOMEM);
		T_EQ(a, 0xdead);
		T_LE(g_nimport - ni, 1);
		T_EQ(g_nimport - ni, g_nrelease - nr);
		if (g_nimport != ni) {
			T_EQ(g_last_release.addr, g_last_import.addr);
			T_EQ(g_last_release.size, g_last_import.size);
		}
		T_EQ(g_nspans, 0);
		s1 = t_vmem_stats(c);
		T_EQ(s1.vs_total, s0.vs_total);
		T_EQ(s1.vs_imported, s0.vs_imported);
		T_EQ(s1.vs_inuse, s0.vs_inuse);
		T_EQ(s1.vs_nbusy, s0.vs_nbusy);
		T_EQ(s1.vs_nfree, s0.vs_nfree);
		T_EQ(s1.vs_fail, s0.vs_fail + 1);
	}
	vmem_destroy(c);
	vmem_destroy(dummy);
}

/* A foreign import backed by a static arena whose base is only Q
 * aligned; the import itself is unconstrained vmem_alloc. */
static void
test_foreign_import_arena(void)
{
	vmem_t *b = mk_static("fa-backing", 0x20001000, 256 << 20, 0);
	vmem_t *c = vmem_create("fa-child", 0, 0, Q, wrap_import, wrap_release,
	    b, 0, VM_SLEEP, IPL_NONE);
	static struct lives l;

	T_ASSERT(c != NULL);
	g_nspans = g_nimport = g_nrelease = 0;
	g_lockcheck = c;
	l.n = 0;
	for (unsigned i = 0; i < (unsigned)t_scale(600); i++) {
		if (l.n < MAXLIVE && (l.n == 0 || t_rand_below(100) < 60)) {
			vmem_size_t s = (t_rand_below(6) + 1) * Q;
			vmem_size_t al = Q << t_rand_below(9);
			vmem_size_t ph = al > Q ? t_rand_below(al / Q) * Q : 0;
			vmem_size_t nc = 0;
			vmem_addr_t a;

			if (t_rand_below(3) == 0) {
				nc = al * 2;
				while (nc < ph + s)
					nc *= 2;
			}
			T_EQ(vmem_xalloc(c, s, al, ph, nc, VMEM_ADDR_MIN,
				 VMEM_ADDR_MAX, VM_NOSLEEP, &a),
			    0);
			check_constraints(
			    a, s, al, ph, nc, VMEM_ADDR_MIN, VMEM_ADDR_MAX);
			lives_add(&l, a, s, true);
		} else {
			lives_free(c, &l, (unsigned)t_rand_below(l.n));
		}
		check_spans_vs_lives(c, &l);
	}
	while (l.n > 0)
		lives_free(c, &l, (unsigned)t_rand_below(l.n));
	check_spans_vs_lives(c, &l);
	T_EQ(vmem_size(b, VMEM_ALLOC), 0);
	g_lockcheck = NULL;
	vmem_destroy(c);
	vmem_destroy(b);
}

/* ---- 5. min import, VM_LARGEIMPORT, ximport ---- */

static void
test_min_import(void)
{
	vmem_t *p = mk_static("mi-parent", PBASE, PSIZE, 0);
	vmem_t *c = mk_child("mi-child", p, VM_SLEEP);
	vmem_addr_t a[256], big;
	struct kmem_vmem_stats st;

	T_EQ(kmem_vmem_set_min_import(p, 1 << 20), EINVAL);
	T_EQ(kmem_vmem_set_min_import(c, 1 << 20), 0);
	T_EQ(vmem_alloc(c, Q, VM_SLEEP, &a[0]), 0);
	st = t_vmem_stats(c);
	T_EQ(st.vs_import, 1);
	T_GE(st.vs_imported, 1 << 20);
	T_EQ(vmem_size(p, VMEM_ALLOC), st.vs_imported);
	for (unsigned i = 1; i < 256; i++)
		T_EQ(vmem_alloc(c, Q, VM_NOSLEEP, &a[i]), 0);
	T_EQ(t_vmem_stats(c).vs_import, 1);
	/* A request above the minimum imports at least the request. */
	T_EQ(vmem_alloc(c, 2 << 20, VM_NOSLEEP, &big), 0);
	st = t_vmem_stats(c);
	T_EQ(st.vs_import, 2);
	T_GE(st.vs_imported, 3 << 20);
	for (unsigned i = 0; i < 256; i++)
		vmem_free(c, a[i], Q);
	st = t_vmem_stats(c);
	T_EQ(st.vs_release, 1);
	vmem_free(c, big, 2 << 20);
	st = t_vmem_stats(c);
	T_EQ(st.vs_release, 2);
	T_EQ(st.vs_imported, 0);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);

	/* Constrained, with the minimum. */
	T_EQ(vmem_xalloc(c, Q, 1 << 20, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
		 VM_NOSLEEP, &a[0]),
	    0);
	T_EQ(a[0] % (1 << 20), 0);
	T_GE(t_vmem_stats(c).vs_imported, 1 << 20);
	vmem_xfree(c, a[0], Q);
	T_EQ(t_vmem_stats(c).vs_imported, 0);

	vmem_destroy(c);
	vmem_destroy(p);
}

static void
test_largeimport(void)
{
	vmem_t *p = mk_static("li-parent", PBASE, PSIZE, 0);
	vmem_t *c = mk_child("li-child", p, VM_SLEEP | VM_LARGEIMPORT);
	vmem_addr_t a[16];
	struct kmem_vmem_stats st;

	T_EQ(vmem_alloc(c, 2 * Q, VM_SLEEP, &a[0]), 0);
	st = t_vmem_stats(c);
	T_EQ(st.vs_import, 1);
	T_GE(st.vs_imported, 32 * Q);
	T_EQ(vmem_size(p, VMEM_ALLOC), st.vs_imported);
	for (unsigned i = 1; i < 16; i++)
		T_EQ(vmem_alloc(c, 2 * Q, VM_NOSLEEP, &a[i]), 0);
	T_EQ(t_vmem_stats(c).vs_import, 1);
	for (unsigned i = 0; i < 16; i++)
		vmem_free(c, a[i], 2 * Q);
	st = t_vmem_stats(c);
	T_EQ(st.vs_release, 1);
	T_EQ(st.vs_imported, 0);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);
	vmem_destroy(c);
	vmem_destroy(p);
}

static vmem_size_t g_x_actual_sum;

static int
x_import(vmem_t *src, vmem_size_t size, vmem_size_t *actual, vm_flag_t fl,
    vmem_addr_t *out)
{
	vmem_size_t big = size * 4;
	vmem_addr_t a;
	int e;

	check_sleep_flag(fl);
	e = vmem_alloc(src, big, fl, &a);
	if (e != 0)
		return e;
	spans_add(a, big);
	g_nimport++;
	g_x_actual_sum += big;
	*actual = big;
	*out = a;
	return 0;
}

static void
x_release(vmem_t *src, vmem_addr_t a, vmem_size_t size)
{
	spans_del(a, size); /* checks size == the actual size */
	g_nrelease++;
	g_x_actual_sum -= size;
	vmem_free(src, a, size);
}

static void
test_xcreate_ximport(void)
{
	vmem_t *p = mk_static("xi-parent", PBASE, PSIZE, 0);
	vmem_t *c = vmem_xcreate(
	    "xi-child", 0, 0, Q, x_import, x_release, p, 0, VM_SLEEP, IPL_NONE);
	vmem_addr_t a[4], x;
	struct kmem_vmem_stats st;

	T_ASSERT(c != NULL);
	g_nspans = g_nimport = g_nrelease = 0;
	g_x_actual_sum = 0;
	T_EQ(vmem_alloc(c, 2 * Q, VM_SLEEP, &a[0]), 0);
	st = t_vmem_stats(c);
	T_EQ(st.vs_import, 1);
	T_EQ(st.vs_imported, g_x_actual_sum);
	T_GE(st.vs_imported, 8 * Q);
	T_EQ(st.vs_total, st.vs_imported);
	T_EQ(vmem_size(c, VMEM_FREE), st.vs_imported - 2 * Q);
	T_EQ(vmem_size(p, VMEM_ALLOC), st.vs_imported);
	for (unsigned i = 1; i < 4; i++)
		T_EQ(vmem_alloc(c, 2 * Q, VM_NOSLEEP, &a[i]), 0);
	T_EQ(t_vmem_stats(c).vs_import, 1);
	for (unsigned i = 0; i < 4; i++) {
		T_GE(a[i], g_spans[0].addr);
		T_LE(a[i] + 2 * Q, g_spans[0].addr + g_spans[0].size);
	}
	for (unsigned i = 0; i < 4; i++)
		vmem_free(c, a[i], 2 * Q);
	st = t_vmem_stats(c);
	T_EQ(st.vs_release, 1);
	T_EQ(g_nrelease, 1);
	T_EQ(st.vs_imported, 0);
	T_EQ(g_nspans, 0);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);

	/* A constrained request through a foreign ximport. */
	T_EQ(vmem_xalloc(c, Q, 32 * Q, 3 * Q, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
		 VM_NOSLEEP, &x),
	    0);
	check_constraints(x, Q, 32 * Q, 3 * Q, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX);
	T_EQ(t_vmem_stats(c).vs_imported, g_x_actual_sum);
	vmem_xfree(c, x, Q);
	T_EQ(g_nspans, 0);
	T_EQ(t_vmem_stats(c).vs_imported, 0);
	vmem_destroy(c);
	vmem_destroy(p);
}

/* ---- 6. import failure ---- */

static int
fail_import(vmem_t *src, vmem_size_t size, vm_flag_t fl, vmem_addr_t *out)
{
	(void)src;
	(void)size;
	(void)out;
	check_sleep_flag(fl);
	g_nimport++;
	return ENOMEM;
}

static void
fail_release(vmem_t *src, vmem_addr_t a, vmem_size_t size)
{
	(void)src;
	(void)a;
	(void)size;
	T_FAIL("release without import");
}

static void
expect_unchanged(const struct kmem_vmem_stats *s0,
    const struct kmem_vmem_stats *s1, uint64_t nfail)
{
	T_EQ(s1->vs_inuse, s0->vs_inuse);
	T_EQ(s1->vs_total, s0->vs_total);
	T_EQ(s1->vs_imported, s0->vs_imported);
	T_EQ(s1->vs_nbusy, s0->vs_nbusy);
	T_EQ(s1->vs_nfree, s0->vs_nfree);
	T_EQ(s1->vs_import, s0->vs_import);
	T_EQ(s1->vs_release, s0->vs_release);
	T_EQ(s1->vs_alloc, s0->vs_alloc);
	T_EQ(s1->vs_fail, s0->vs_fail + nfail);
}

static void
test_import_failure_nosleep(void)
{
	struct kmem_vmem_stats s0, s1;
	vmem_addr_t a = 0xdead, s[3];

	/* The import function fails. */
	{
		vmem_t *dummy = mk_static("if-dummy", 0x1000, Q, 0);
		vmem_t *c = vmem_create("if-child", 0x7000000, 4 * Q, Q,
		    fail_import, fail_release, dummy, 0, VM_SLEEP, IPL_NONE);

		T_ASSERT(c != NULL);
		g_nimport = 0;
		T_EQ(vmem_alloc(c, 3 * Q, VM_NOSLEEP, &s[0]), 0);
		s0 = t_vmem_stats(c);
		T_EQ(vmem_alloc(c, 2 * Q, VM_NOSLEEP, &a), ENOMEM);
		T_EQ(vmem_xalloc(c, Q, 8 * Q, 0, 0, VMEM_ADDR_MIN,
			 VMEM_ADDR_MAX, VM_NOSLEEP, &a),
		    ENOMEM);
		T_EQ(vmem_xalloc(c, Q, 0, 0, 0, 0x8000000, VMEM_ADDR_MAX,
			 VM_NOSLEEP | VM_BESTFIT, &a),
		    ENOMEM);
		T_EQ(a, 0xdead);
		T_GE(g_nimport, 1);
		s1 = t_vmem_stats(c);
		expect_unchanged(&s0, &s1, 3);
		T_EQ(vmem_alloc(c, Q, VM_NOSLEEP, &s[1]), 0);
		vmem_free(c, s[0], 3 * Q);
		vmem_free(c, s[1], Q);
		T_EQ(vmem_size(c, VMEM_ALLOC), 0);
		T_EQ(vmem_size(c, VMEM_FREE), 4 * Q);
		vmem_destroy(c);
		vmem_destroy(dummy);
	}

	/* The source is exhausted. */
	{
		vmem_t *p = mk_static("ie-parent", PBASE, 4 * Q, 0);
		vmem_t *c = mk_child("ie-child", p, VM_SLEEP);

		T_EQ(kmem_vmem_set_min_import(c, Q), 0);
		T_EQ(vmem_alloc(c, 2 * Q, VM_NOSLEEP, &s[0]), 0);
		T_EQ(vmem_alloc(c, Q, VM_NOSLEEP, &s[1]), 0);
		T_EQ(vmem_size(c, VMEM_FREE), 0);
		T_EQ(vmem_alloc(p, Q, VM_NOSLEEP, &s[2]), 0);
		T_EQ(vmem_size(p, VMEM_FREE), 0);
		s0 = t_vmem_stats(c);
		T_EQ(vmem_alloc(c, Q, VM_NOSLEEP, &a), ENOMEM);
		T_EQ(vmem_xalloc(c, Q, 2 * Q, Q, 0, VMEM_ADDR_MIN,
			 VMEM_ADDR_MAX, VM_NOSLEEP, &a),
		    ENOMEM);
		T_EQ(a, 0xdead);
		s1 = t_vmem_stats(c);
		expect_unchanged(&s0, &s1, 2);
		T_EQ(vmem_size(p, VMEM_ALLOC), 4 * Q);
		vmem_free(p, s[2], Q);
		T_EQ(vmem_alloc(c, Q, VM_NOSLEEP, &s[2]), 0);
		vmem_free(c, s[0], 2 * Q);
		vmem_free(c, s[1], Q);
		vmem_free(c, s[2], Q);
		T_EQ(t_vmem_stats(c).vs_imported, 0);
		T_EQ(vmem_size(p, VMEM_ALLOC), 0);
		vmem_destroy(c);
		vmem_destroy(p);
	}
}

/* ---- 7. static spans on an importing arena ---- */

static void
test_static_spans_kept(void)
{
	const vmem_addr_t s1 = 0x70000000, s2 = 0x71000000;
	vmem_t *p = mk_static("ss-parent", PBASE, PSIZE, 0);
	vmem_t *c = vmem_create("ss-child", s1, 8 * Q, Q, vmem_alloc, vmem_free,
	    p, 0, VM_SLEEP, IPL_NONE);
	vmem_addr_t a[24];
	struct kmem_vmem_stats st;

	T_ASSERT(c != NULL);
	T_EQ(vmem_add(c, s2, 8 * Q, VM_SLEEP), 0);
	st = t_vmem_stats(c);
	T_EQ(st.vs_total, 16 * Q);
	T_EQ(st.vs_imported, 0);

	for (int round = 0; round < 3; round++) {
		uint64_t imp0 = t_vmem_stats(c).vs_import;

		/* Static space first: no import while it fits. */
		for (unsigned i = 0; i < 16; i++) {
			T_EQ(vmem_alloc(c, Q, VM_NOSLEEP, &a[i]), 0);
			T_ASSERT((a[i] >= s1 && a[i] < s1 + 8 * Q) ||
			    (a[i] >= s2 && a[i] < s2 + 8 * Q));
		}
		T_EQ(t_vmem_stats(c).vs_import, imp0);
		T_EQ(vmem_size(c, VMEM_FREE), 0);
		for (unsigned i = 16; i < 24; i++) {
			T_EQ(vmem_alloc(c, Q, VM_NOSLEEP, &a[i]), 0);
			T_ASSERT(a[i] >= PBASE && a[i] < PBASE + PSIZE);
		}
		T_GT(t_vmem_stats(c).vs_imported, 0);
		T_EQ(vmem_size(p, VMEM_ALLOC), t_vmem_stats(c).vs_imported);
		/* round 0: static first; 1: imported first; 2: random */
		if (round == 0) {
			for (unsigned i = 0; i < 24; i++)
				vmem_free(c, a[i], Q);
		} else if (round == 1) {
			for (unsigned i = 24; i-- > 0;)
				vmem_free(c, a[i], Q);
		} else {
			unsigned n = 24;

			while (n > 0) {
				unsigned k = (unsigned)t_rand_below(n);

				vmem_free(c, a[k], Q);
				a[k] = a[--n];
			}
		}
		st = t_vmem_stats(c);
		T_EQ(st.vs_total, 16 * Q);
		T_EQ(st.vs_imported, 0);
		T_EQ(st.vs_import, st.vs_release);
		T_EQ(vmem_size(c, VMEM_FREE), 16 * Q);
		T_EQ(vmem_size(p, VMEM_ALLOC), 0);
		check_arena(c);
		/* Whole static spans come back whole, not from an import. */
		imp0 = t_vmem_stats(c).vs_import;
		T_EQ(vmem_xalloc_addr(c, s1, 8 * Q, VM_NOSLEEP), 0);
		T_EQ(vmem_xalloc_addr(c, s2, 8 * Q, VM_NOSLEEP), 0);
		vmem_xfree(c, s2, 8 * Q);
		vmem_xfree(c, s1, 8 * Q);
		T_EQ(t_vmem_stats(c).vs_total, 16 * Q);
		T_EQ(t_vmem_stats(c).vs_import, imp0);
	}
	vmem_destroy(c);
	vmem_destroy(p);
}

/*
 * The source has quantum caches: imports at or under its qcache_max that
 * the child makes with vmem_xalloc (constrained) or vmem_alloc are given
 * back by releasefn == vmem_free; the pairing rules must not trip.  A
 * constrained request imports with vmem_xalloc, exactly its size; any
 * other imports with vmem_alloc, from the source's caches, whose pages
 * (QC_PAGE bytes each) the source counts as allocated, not the items.
 */
#define QC_PAGE (64 * Q) /* smallest power of two above 3 x 16 Q */

static void
test_source_with_qcache(void)
{
	vmem_t *p = mk_static("qc-parent", PBASE, PSIZE, 16 * Q);
	vmem_t *c = mk_child("qc-child", p, VM_SLEEP);
	static struct lives l;
	static bool direct[MAXLIVE]; /* parallel to l.v: imported by xalloc */
	struct kmem_vmem_stats ps, cs;
	vmem_size_t dbytes, cbytes, pages;
	unsigned ndirect;

	l.n = 0;
	for (unsigned i = 0; i < 400; i++) {
		if (l.n < MAXLIVE && (l.n == 0 || t_rand_below(100) < 55)) {
			vmem_size_t s = (t_rand_below(16) + 1) * Q;
			vmem_size_t al = Q << t_rand_below(4);
			vmem_addr_t a;
			bool x = t_rand_below(2);

			if (x)
				T_EQ(vmem_xalloc(c, s, al, 0, 0, VMEM_ADDR_MIN,
					 VMEM_ADDR_MAX, VM_NOSLEEP, &a),
				    0);
			else
				T_EQ(vmem_alloc(c, s, VM_NOSLEEP, &a), 0);
			T_ASSERT(a >= PBASE && a + s <= PBASE + PSIZE);
			if (x)
				T_EQ(a % al, 0);
			direct[l.n] = x && al > Q;
			lives_add(&l, a, s, x);
		} else {
			unsigned k = (unsigned)t_rand_below(l.n);

			direct[k] = direct[l.n - 1];
			lives_free(c, &l, k);
		}
		dbytes = cbytes = 0;
		ndirect = 0;
		for (unsigned k = 0; k < l.n; k++) {
			if (direct[k]) {
				dbytes += l.v[k].size;
				ndirect++;
			} else {
				cbytes += l.v[k].size;
			}
		}
		/* One span per live allocation, exactly its size. */
		cs = t_vmem_stats(c);
		T_EQ(cs.vs_inuse, dbytes + cbytes);
		T_EQ(cs.vs_imported, dbytes + cbytes);
		check_arena(c);
		/* The source: the direct imports, and whole cache pages. */
		ps = t_vmem_stats(p);
		T_EQ(vmem_size(p, VMEM_ALLOC), ps.vs_inuse);
		T_GE(ps.vs_inuse, dbytes);
		pages = ps.vs_inuse - dbytes;
		T_EQ(pages % QC_PAGE, 0);
		T_GE(pages, cbytes);
		T_EQ(ps.vs_nbusy, ndirect + pages / QC_PAGE);
	}
	while (l.n > 0)
		lives_free(c, &l, (unsigned)t_rand_below(l.n));
	T_EQ(t_vmem_stats(c).vs_imported, 0);
	/* The source's cached pages stay in use until reaped. */
	T_EQ(vmem_size(p, VMEM_ALLOC) % QC_PAGE, 0);
	T_EQ(t_vmem_stats(p).vs_nbusy, vmem_size(p, VMEM_ALLOC) / QC_PAGE);
	kmem_reap_all();
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);
	ps = t_vmem_stats(p);
	T_EQ(ps.vs_nbusy, 0);
	T_EQ(ps.vs_nfree, 1);
	vmem_destroy(c);
	vmem_destroy(p);
}

/* VM_LARGEIMPORT applies to constrained imports too (16x). */
static void
test_largeimport_constrained(void)
{
	vmem_t *p = mk_static("lc-parent", PBASE, PSIZE, 0);
	vmem_t *c = mk_child("lc-child", p, VM_SLEEP | VM_LARGEIMPORT);
	vmem_addr_t a;

	T_EQ(vmem_xalloc(c, 2 * Q, 2 * Q, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
		 VM_NOSLEEP, &a),
	    0);
	T_EQ(a % (2 * Q), 0);
	T_GE(t_vmem_stats(c).vs_imported, 32 * Q);
	vmem_xfree(c, a, 2 * Q);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);
	vmem_destroy(c);
	vmem_destroy(p);
}

/*
 * importfn == vmem_alloc on a source with quantum caches: narrow
 * minaddr/maxaddr (and vmem_xalloc_addr) still import from the range.
 */
static void
test_source_with_qcache_narrow(void)
{
	vmem_t *p = mk_static("qn-parent", PBASE, PSIZE, 16 * Q);
	vmem_t *c = mk_child("qn-child", p, VM_SLEEP);
	vmem_addr_t at = PBASE + (8 << 20), a;

	T_EQ(vmem_xalloc(c, 2 * Q, 0, 0, 0, at, at + 4 * Q - 1, VM_NOSLEEP, &a),
	    0);
	T_ASSERT(a >= at && a + 2 * Q <= at + 4 * Q);
	vmem_xfree(c, a, 2 * Q);
	T_EQ(vmem_xalloc_addr(c, at, 2 * Q, VM_NOSLEEP), 0);
	vmem_xfree(c, at, 2 * Q);
	T_EQ(t_vmem_stats(c).vs_imported, 0);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);
	vmem_destroy(c);
	vmem_destroy(p);
}

static void
on_alarm(int sig)
{
	static const char msg[] = "FAIL: watchdog (deadlock? import or "
				  "release called with the arena lock held?)\n";

	(void)sig;
	if (write(2, msg, sizeof msg - 1) < 0) {
		/* nothing to do */
	}
	_exit(1);
}

int
main(void)
{
	signal(SIGALRM, on_alarm);
	alarm(300);
	t_seed();
	T_RUN(test_release_when_wholly_free);
	T_RUN(test_release_random_tracked);
	T_RUN(test_release_random_vmem_alloc);
	T_RUN(test_nested_three_deep);
	T_RUN(test_constrained_import_vmem_alloc);
	T_RUN(test_foreign_import_counter);
	T_RUN(test_foreign_import_arena);
	T_RUN(test_min_import);
	T_RUN(test_largeimport);
	T_RUN(test_xcreate_ximport);
	T_RUN(test_import_failure_nosleep);
	T_RUN(test_static_spans_kept);
	T_RUN(test_source_with_qcache);
	T_RUN(test_largeimport_constrained);
	T_RUN(test_source_with_qcache_narrow);
	return t_done();
}
