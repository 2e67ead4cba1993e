/*
 * vmem_oom.c -- out-of-memory sweep.  vmem obtains its own metadata
 * (arena structs, boundary tags, hash tables) through prim; with
 * kmem_prim_fault_set(n, from_on) the nth such call (or every call from the
 * nth on) fails.  For n = 1, 2, 3, ... a fixed scenario runs; every failing
 * vmem call must return ENOMEM exactly (vmem_create: NULL, errno ENOMEM),
 * only when an injected failure happened inside it, and leave the arena
 * consistent with our own tally.  The sweep ends when a run makes fewer
 * than n calls.  A second sweep fails an import function on its nth call.
 */
#include <stdarg.h>

#include "t.h"
#include "t_vmem.h"

#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/prim.h"

#define Q	((vmem_size_t)16)
#define BASE	((vmem_addr_t)0x100000)
#define SPANSZ	((vmem_size_t)1 << 20)
#define NSPAN	8
#define SPAN(i) (BASE + (vmem_addr_t)(i)*2 * SPANSZ)
#define SHADOW	((size_t)NSPAN * 2 * SPANSZ / Q)
#define QCMAX	(4 * Q)
/* Quantum-cache pages: the smallest power of two above 3 x QCMAX. */
#define QCPAGE	((vmem_size_t)256)
#define MAXLIVE 65536

enum kind { K_ALLOC, K_XALLOC };

struct live {
	vmem_addr_t addr;
	vmem_size_t size;
	enum kind kind;
};

static struct {
	struct live live[MAXLIVE];
	unsigned nlive;
	vmem_size_t inuse; /* tally of allocated bytes */
	/*
	 * Of which not from the quantum caches (the arena counts those
	 * allocations themselves, but only the pages of the cached ones).
	 */
	unsigned nlive_x;
	vmem_size_t inuse_x;
	vmem_size_t total; /* tally of span bytes */
	bool added[NSPAN];
	unsigned char shadow[SHADOW];
	/* injection bookkeeping for the current run */
	uint64_t nth;
	bool from_on;
	unsigned nfail;	      /* vmem calls that returned ENOMEM */
	unsigned nfail_alloc; /* of which allocations */
	bool baseline;	      /* no fault armed: nothing may fail */
} S;

static size_t
sh_idx(vmem_addr_t a)
{
	T_GE(a, BASE);
	T_LT((a - BASE) / Q, SHADOW);
	return (size_t)((a - BASE) / Q);
}

static bool
in_added_span(vmem_addr_t a, vmem_size_t s)
{
	for (unsigned i = 0; i < NSPAN; i++)
		if (S.added[i] && a >= SPAN(i) && a + s <= SPAN(i) + SPANSZ)
			return true;
	return false;
}

static bool
shadow_free(vmem_addr_t a, vmem_size_t s)
{
	for (vmem_size_t o = 0; o < s; o += Q)
		if (S.shadow[sh_idx(a + o)] != 0)
			return false;
	return true;
}

/* vmem_alloc at or under qcache_max: served by a quantum cache. */
static bool
cached(vmem_size_t s, enum kind k)
{
	return k == K_ALLOC && s <= QCMAX;
}

static void
record(vmem_addr_t a, vmem_size_t s, enum kind k)
{
	T_ASSERT(in_added_span(a, s));
	for (vmem_size_t o = 0; o < s; o += Q) {
		size_t i = sh_idx(a + o);

		if (S.shadow[i] != 0)
			T_FAIL("0x%jx+0x%jx overlaps a live allocation",
			    (uintmax_t)a, (uintmax_t)s);
		S.shadow[i] = 1;
	}
	T_LT(S.nlive, MAXLIVE);
	S.live[S.nlive].addr = a;
	S.live[S.nlive].size = s;
	S.live[S.nlive].kind = k;
	S.nlive++;
	S.inuse += s;
	if (!cached(s, k)) {
		S.nlive_x++;
		S.inuse_x += s;
	}
}

static void
free_one(vmem_t *vm, unsigned i)
{
	struct live e = S.live[i];

	S.live[i] = S.live[--S.nlive];
	for (vmem_size_t o = 0; o < e.size; o += Q) {
		size_t j = sh_idx(e.addr + o);

		T_EQ(S.shadow[j], 1);
		S.shadow[j] = 0;
	}
	S.inuse -= e.size;
	if (!cached(e.size, e.kind)) {
		S.nlive_x--;
		S.inuse_x -= e.size;
	}
	if (e.kind == K_XALLOC)
		vmem_xfree(vm, e.addr, e.size);
	else
		vmem_free(vm, e.addr, e.size);
}

/*
 * The arena's allocated bytes: the uncached allocations, plus whole
 * quantum-cache pages, which hold at least the cached allocations (and
 * may hold freed ones, or none, until the caches are reaped).
 */
static vmem_size_t
check_tally(vmem_t *vm)
{
	vmem_size_t inuse = vmem_size(vm, VMEM_ALLOC);

	T_GE(inuse, S.inuse_x);
	T_EQ((inuse - S.inuse_x) % QCPAGE, 0);
	T_GE(inuse - S.inuse_x, S.inuse - S.inuse_x);
	T_EQ(vmem_size(vm, VMEM_ALLOC | VMEM_FREE), S.total);
	T_EQ(vmem_size(vm, VMEM_FREE), S.total - inuse);
	return inuse;
}

static void
check_stats(vmem_t *vm)
{
	vmem_size_t inuse = check_tally(vm);
	struct kmem_vmem_stats st = t_vmem_stats(vm);

	T_EQ(st.vs_inuse, inuse);
	T_EQ(st.vs_total, S.total);
	T_EQ(st.vs_nbusy, S.nlive_x + (inuse - S.inuse_x) / QCPAGE);
	T_EQ(st.vs_fail, S.nfail_alloc);
}

/*
 * A vmem call made calls c0..c1 (counter before and after) and returned
 * "e".  A failure is allowed only if an injected failure fell inside it.
 */
static void
judge(int e, uint64_t c0, uint64_t c1, const char *what)
{
	if (e == 0)
		return;
	if (e != ENOMEM)
		T_FAIL("%s returned %d, not ENOMEM (%d)", what, e, ENOMEM);
	if (S.baseline)
		T_FAIL("%s: ENOMEM with no fault armed", what);
	if (S.from_on) {
		if (!(c1 >= S.nth && c1 > c0))
			T_FAIL("%s: ENOMEM but no injected failure inside it "
			       "(calls %ju..%ju, nth %ju, from_on)",
			    what, (uintmax_t)c0, (uintmax_t)c1,
			    (uintmax_t)S.nth);
	} else {
		if (!(c0 < S.nth && S.nth <= c1))
			T_FAIL("%s: ENOMEM but the injected failure is not "
			       "inside it (calls %ju..%ju, nth %ju)",
			    what, (uintmax_t)c0, (uintmax_t)c1,
			    (uintmax_t)S.nth);
	}
	S.nfail++;
}

static char wbuf[512];

static void wpr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Appends: vmem_whatis prints a line for every arena that holds the
 * address, and "ballast" holds them all.
 */
static void
wpr(const char *fmt, ...)
{
	size_t len = strlen(wbuf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(wbuf + len, sizeof wbuf - len, fmt, ap);
	va_end(ap);
}

/*
 * Is some quantum of [a, a + s), free in our shadow, allocated in the
 * arena all the same?  Then it lies in a quantum-cache page.
 */
static bool
in_cache_page(vmem_addr_t a, vmem_size_t s)
{
	for (vmem_size_t o = 0; o < s; o += Q) {
		wbuf[0] = '\0';
		if (vmem_whatis(a + o, wpr) == 0 &&
		    strstr(wbuf, " in VMEM 'oom' (allocated)") != NULL)
			return true;
	}
	return false;
}

static vm_flag_t
rand_fit(void)
{
	static const vm_flag_t f[] = {0, VM_INSTANTFIT, VM_BESTFIT, VM_NEXTFIT};

	return f[t_rand_below(4)];
}

/* One allocation of a random kind, judged and recorded. */
static void
one_alloc(vmem_t *vm)
{
	unsigned k = (unsigned)t_rand_below(10);
	vmem_addr_t a = 0xdead;
	uint64_t c0 = kmem_prim_fault_calls(), c1;
	vmem_size_t s;
	int e;

	if (k < 5) {
		s = (t_rand_below(8) + 1) * Q; /* half at or under QCMAX */
		e = vmem_alloc(vm, s, VM_NOSLEEP | rand_fit(), &a);
		c1 = kmem_prim_fault_calls();
		judge(e, c0, c1, "vmem_alloc");
		S.nfail_alloc += e != 0;
		if (e == 0)
			record(a, s, K_ALLOC);
	} else if (k < 9) {
		vmem_size_t al = Q << t_rand_below(4);
		vmem_size_t ph = t_rand_below(al / Q) * Q;
		vmem_size_t nc = t_rand_below(3) == 0 ? 64 * Q : 0;
		vmem_addr_t mn = VMEM_ADDR_MIN, mx = VMEM_ADDR_MAX;

		s = (t_rand_below(6) + 1) * Q;
		if (t_rand_below(4) == 0) {
			unsigned sp = (unsigned)t_rand_below(NSPAN);

			mn = SPAN(sp);
			mx = SPAN(sp) + 2 * SPANSZ - 1;
		}
		e = vmem_xalloc(
		    vm, s, al, ph, nc, mn, mx, VM_NOSLEEP | rand_fit(), &a);
		c1 = kmem_prim_fault_calls();
		if (e == ENOMEM && mn != VMEM_ADDR_MIN) {
			/* The chosen span may be absent or full. */
			unsigned sp = (unsigned)((mn - BASE) / (2 * SPANSZ));

			if (!S.added[sp]) {
				S.nfail_alloc++;
				return;
			}
		}
		judge(e, c0, c1, "vmem_xalloc");
		S.nfail_alloc += e != 0;
		if (e == 0) {
			T_EQ((a - ph) % al, 0);
			T_ASSERT(a >= mn && a + s - 1 <= mx);
			if (nc != 0)
				T_EQ(a / nc, (a + s - 1) / nc);
			record(a, s, K_XALLOC);
		}
	} else {
		/* A free place we know of, by address. */
		for (int tries = 0; tries < 8; tries++) {
			unsigned sp = (unsigned)t_rand_below(NSPAN);

			s = (t_rand_below(3) + 1) * Q;
			a = SPAN(sp) + t_rand_below(SPANSZ / Q - 3) * Q;
			if (!S.added[sp] || !shadow_free(a, s))
				continue;
			e = vmem_xalloc_addr(vm, a, s, VM_NOSLEEP);
			c1 = kmem_prim_fault_calls();
			if (e == ENOMEM && in_cache_page(a, s)) {
				/* Not free after all: a cache page. */
				S.nfail_alloc++;
				break;
			}
			judge(e, c0, c1, "vmem_xalloc_addr");
			S.nfail_alloc += e != 0;
			if (e == 0)
				record(a, s, K_XALLOC);
			break;
		}
	}
}

static void
try_add(vmem_t *vm, unsigned i)
{
	uint64_t c0 = kmem_prim_fault_calls();
	int e = vmem_add(vm, SPAN(i), SPANSZ, VM_NOSLEEP);

	judge(e, c0, kmem_prim_fault_calls(), "vmem_add");
	if (e == 0) {
		S.added[i] = true;
		S.total += SPANSZ;
	}
	check_tally(vm);
}

/*
 * Boundary tags come from a process-wide supply that keeps what it got, so
 * after the first run the scenario would never refill from prim.  The
 * ballast drains the supply first: it allocates (two tags each) until it
 * sees a prim call that was not its own hash growing, i.e. a fresh tag
 * chunk; the scenario then outgrows what is left of that chunk.
 */
static vmem_t *g_ballast;

static void
ballast_fill(void)
{
	vmem_addr_t a;
	unsigned n = 0;

	kmem_prim_fault_set(0, false);
	g_ballast = vmem_create("ballast", 0x1000, (vmem_size_t)1 << 40, 1,
	    NULL, NULL, NULL, 0, VM_SLEEP, IPL_NONE);
	T_ASSERT(g_ballast != NULL);
	for (;;) {
		uint64_t c0 = kmem_prim_fault_calls();
		uint64_t h0 = t_vmem_stats(g_ballast).vs_hashsize;

		T_EQ(vmem_xalloc(g_ballast, 1, 2, 0, 0, VMEM_ADDR_MIN,
			 VMEM_ADDR_MAX, VM_SLEEP, &a),
		    0);
		n++;
		T_LT(n, 100000000);
		if (kmem_prim_fault_calls() - c0 >
		    (t_vmem_stats(g_ballast).vs_hashsize != h0 ? 1u : 0u))
			break;
	}
}

static void
ballast_free(void)
{
	vmem_xfreeall(g_ballast);
	T_EQ(vmem_size(g_ballast, VMEM_ALLOC), 0);
	vmem_destroy(g_ballast);
	g_ballast = NULL;
}

/*
 * The scenario.  nth == 0: no fault.  Returns the number of
 * memory-obtaining calls it made while the fault was armed.
 */
static uint64_t
scenario(uint64_t nth, bool from_on, unsigned nops, uint64_t seed, bool drain)
{
	vmem_t *vm;
	uint64_t calls;

	memset(S.shadow, 0, sizeof S.shadow);
	memset(S.added, 0, sizeof S.added);
	S.nlive = S.nlive_x = 0;
	S.inuse = S.inuse_x = S.total = 0;
	S.nth = nth;
	S.from_on = from_on;
	S.nfail = S.nfail_alloc = 0;
	S.baseline = nth == 0;
	t_set_seed(seed);

	if (drain)
		ballast_fill();
	kmem_prim_fault_set(nth, from_on);
	errno = 0;
	vm = vmem_create("oom", SPAN(0), SPANSZ, Q, NULL, NULL, NULL, QCMAX,
	    VM_NOSLEEP, IPL_NONE);
	if (vm == NULL) {
		T_EQ(errno, ENOMEM);
		judge(ENOMEM, 0, kmem_prim_fault_calls(), "vmem_create");
		if (from_on) {
			calls = kmem_prim_fault_calls();
			kmem_prim_fault_set(0, false);
			if (drain)
				ballast_free();
			return calls;
		}
		/* The nth call has passed: this one must succeed. */
		vm = vmem_create("oom", SPAN(0), SPANSZ, Q, NULL, NULL, NULL,
		    QCMAX, VM_NOSLEEP, IPL_NONE);
		T_ASSERT(vm != NULL);
	}
	S.added[0] = true;
	S.total = SPANSZ;
	check_tally(vm);

	for (unsigned i = 1; i < NSPAN / 2; i++)
		try_add(vm, i);
	for (unsigned op = 0; op < nops; op++) {
		if (op == nops / 3)
			for (unsigned i = NSPAN / 2; i < NSPAN; i++)
				try_add(vm, i);
		/* Grow to about nops/2 live, then shrink a little. */
		if (S.nlive > 0 &&
		    t_rand_below(100) < (op < nops * 3 / 4 ? 25 : 60))
			free_one(vm, (unsigned)t_rand_below(S.nlive));
		else
			one_alloc(vm);
		if (op % 4096 == 0 || S.nfail != 0) {
			check_tally(vm);
			if (op % 4096 == 0)
				check_stats(vm);
		}
	}
	check_tally(vm);
	check_stats(vm);
	calls = kmem_prim_fault_calls();

	/* Clear the fault: everything frees, failed adds can be redone. */
	kmem_prim_fault_set(0, false);
	S.baseline = true;
	for (unsigned i = 1; i < NSPAN; i++)
		if (!S.added[i])
			try_add(vm, i);
	for (int k = 0; k < 64; k++)
		one_alloc(vm);
	while (S.nlive > 0) {
		free_one(vm, (unsigned)t_rand_below(S.nlive));
		if (S.nlive % 8192 == 0)
			check_tally(vm);
	}
	check_stats(vm);
	/* Only cache pages are left, until the caches are reaped. */
	kmem_reap_all();
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	T_EQ(vmem_size(vm, VMEM_FREE), (vmem_size_t)NSPAN * SPANSZ);
	T_EQ(t_vmem_stats(vm).vs_nbusy, 0);
	vmem_destroy(vm);
	if (drain)
		ballast_free();
	return calls;
}

/*
 * Sweep n = 1, 2, ... (every n up to "dense", then with a growing stride so
 * the run count stays bounded) until a run makes fewer than n calls.
 */
static void
sweep(bool from_on, unsigned nops, uint64_t dense, bool drain)
{
	uint64_t seed = t_rand();
	uint64_t base = scenario(0, false, nops, seed, drain);
	uint64_t n = 1, runs = 0, failed_runs = 0;

	printf("   %s: %u ops, %ju memory calls without faults\n",
	    from_on ? "from_on" : "nth", nops, (uintmax_t)base);
	for (;;) {
		uint64_t calls = scenario(n, from_on, nops, seed, drain);

		runs++;
		if (S.nfail != 0)
			failed_runs++;
		if (calls < n)
			break;
		if (n < dense)
			n++;
		else
			n += n / dense + 1;
		T_LT(runs, 100000);
	}
	printf("   %ju runs, %ju with a failed vmem call, last n %ju\n",
	    (uintmax_t)runs, (uintmax_t)failed_runs, (uintmax_t)n);
	/* A fault that hits every call must show up somewhere. */
	if (from_on)
		T_GT(failed_runs, 0);
}

/* Every n, the tag supply drained first: tag refills reach prim. */
static void
test_sweep_drained_nth(void)
{
	sweep(false, (unsigned)t_scale(8000), UINT64_MAX, true);
}

static void
test_sweep_drained_from_on(void)
{
	sweep(true, (unsigned)t_scale(8000), UINT64_MAX, true);
}

/* Tens of thousands of busy segments: hash growth, big tag demand. */
static void
test_sweep_big_nth(void)
{
	sweep(false, (unsigned)t_scale(60000), t_scale(48), false);
}

static void
test_sweep_big_from_on(void)
{
	sweep(true, (unsigned)t_scale(60000), t_scale(48), false);
}

/* vmem_create with every prim call failing: NULL, ENOMEM, no leak. */
static void
test_create_fails(void)
{
	for (uint64_t n = 1; n < 8; n++) {
		vmem_t *vm;

		kmem_prim_fault_set(n, true);
		errno = 0;
		vm = vmem_create("cf", 0x1000, 0x10000, 16, NULL, NULL, NULL, 0,
		    VM_SLEEP, IPL_NONE);
		if (vm == NULL) {
			T_EQ(errno, ENOMEM);
			T_GE(kmem_prim_fault_calls(), n);
		}
		kmem_prim_fault_set(0, false);
		if (vm != NULL) {
			vmem_addr_t a;

			T_EQ(vmem_alloc(vm, 16, VM_SLEEP, &a), 0);
			vmem_free(vm, a, 16);
			vmem_destroy(vm);
		}
	}
}

/* ---- an import function that fails on its nth call ---- */

static uint64_t g_imp_calls, g_imp_nth;

static int
nth_import(vmem_t *src, vmem_size_t size, vm_flag_t fl, vmem_addr_t *out)
{
	if (++g_imp_calls == g_imp_nth)
		return ENOMEM;
	return vmem_alloc(src, size, fl, out);
}

static uint64_t
import_scenario(uint64_t nth, uint64_t seed)
{
	vmem_t *p, *c;
	static struct live lv[512];
	unsigned n = 0;
	vmem_size_t inuse = 0;
	unsigned nfail = 0;

	t_set_seed(seed);
	g_imp_calls = 0;
	g_imp_nth = nth;
	p = vmem_create("imp-src", 0x10000000, 64 << 20, 4096, NULL, NULL, NULL,
	    0, VM_SLEEP, IPL_NONE);
	T_ASSERT(p != NULL);
	c = vmem_create("imp-nth", 0, 0, 4096, nth_import, vmem_free, p, 0,
	    VM_NOSLEEP, IPL_NONE);
	T_ASSERT(c != NULL);
	T_EQ(kmem_vmem_set_min_import(c, 4096), 0);
	for (unsigned op = 0; op < 400; op++) {
		if (n > 0 && (n == 512 || t_rand_below(100) < 40)) {
			unsigned i = (unsigned)t_rand_below(n);

			inuse -= lv[i].size;
			if (lv[i].kind == K_XALLOC)
				vmem_xfree(c, lv[i].addr, lv[i].size);
			else
				vmem_free(c, lv[i].addr, lv[i].size);
			lv[i] = lv[--n];
		} else {
			vmem_size_t s = (t_rand_below(8) + 1) * 4096;
			bool x = t_rand_below(2);
			struct kmem_vmem_stats s0 = t_vmem_stats(c), s1;
			uint64_t k0 = g_imp_calls;
			vmem_addr_t a = 0xdead;
			int e;

			if (x)
				e = vmem_xalloc(c, s, 4096 << t_rand_below(4),
				    0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
				    VM_NOSLEEP, &a);
			else
				e = vmem_alloc(c, s, VM_NOSLEEP, &a);
			if (e != 0) {
				T_EQ(e, ENOMEM);
				T_EQ(a, 0xdead);
				/* the failing import call was this one's */
				T_ASSERT(k0 < nth && nth <= g_imp_calls);
				s1 = t_vmem_stats(c);
				t_vmem_unchanged(&s0, &s1);
				T_EQ(s1.vs_fail, s0.vs_fail + 1);
				nfail++;
			} else {
				lv[n].addr = a;
				lv[n].size = s;
				lv[n].kind = x ? K_XALLOC : K_ALLOC;
				n++;
				inuse += s;
			}
		}
		T_EQ(vmem_size(c, VMEM_ALLOC), inuse);
		T_EQ(vmem_size(p, VMEM_ALLOC), t_vmem_stats(c).vs_imported);
	}
	T_LE(nfail, 1);
	while (n > 0) {
		n--;
		if (lv[n].kind == K_XALLOC)
			vmem_xfree(c, lv[n].addr, lv[n].size);
		else
			vmem_free(c, lv[n].addr, lv[n].size);
	}
	T_EQ(vmem_size(c, VMEM_ALLOC), 0);
	T_EQ(t_vmem_stats(c).vs_imported, 0);
	T_EQ(vmem_size(p, VMEM_ALLOC), 0);
	vmem_destroy(c);
	vmem_destroy(p);
	return g_imp_calls;
}

static void
test_import_fails_nth(void)
{
	uint64_t seed = t_rand();
	uint64_t n, total = import_scenario(0, seed);

	T_GT(total, 0);
	for (n = 1;; n++)
		if (import_scenario(n, seed) < n)
			break;
	printf("   %ju import calls, swept to n %ju\n", (uintmax_t)total,
	    (uintmax_t)n);
}

int
main(void)
{
	alarm(600);
	t_seed();
	kmem_prim_fault_set(0, false);
	T_RUN(test_create_fails);
	T_RUN(test_sweep_drained_nth);
	T_RUN(test_sweep_drained_from_on);
	T_RUN(test_import_fails_nth);
	T_RUN(test_sweep_big_nth);
	T_RUN(test_sweep_big_from_on);
	return t_done();
}
