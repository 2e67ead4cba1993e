/*
 * vmem_sleep_model.c -- a random mix of VM_SLEEP requests against a model
 * of the arena, in the style of NetBSD's subr_vmem.c unit test.
 *
 * An arena of several added spans (small and large, one of a single
 * quantum, one ending at VMEM_ADDR_MAX) sees a random mix of vmem_alloc,
 * vmem_xalloc with random align, phase, nocross, minaddr and maxaddr,
 * vmem_xalloc_addr and frees -- every allocation with VM_SLEEP -- under
 * VM_BESTFIT, VM_INSTANTFIT and VM_NEXTFIT, with quanta 1 and 8.  The model
 * is the list of spans and the sorted list of live allocations; its free
 * ranges are what the spans leave between them.
 *
 * What each step checks (docs/vmem-contract.md):
 *  - a constrained request (anything but the default align, phase,
 *    nocross, minaddr, maxaddr; every vmem_xalloc_addr) succeeds if and
 *    only if the model has a free range with a fitting address, and when
 *    it has none returns ENOMEM at once, VM_SLEEP notwithstanding: no
 *    wait counted, the failure counted, the arena unchanged (NetBSD's
 *    vmem_xalloc; its unit test asserts it);
 *  - an unconstrained VM_SLEEP request is issued only when the model has
 *    a fit, and must then succeed (any fit policy finds a fit when one
 *    exists); when the model has none, a few times per run the request
 *    is made from a second thread, which must be seen waiting, and is
 *    then served once frees make room;
 *  - every result meets its constraints, lies in one free range of the
 *    model (inside an added span, overlapping no live allocation);
 *    VM_BESTFIT takes a free range of the smallest fitting size;
 *  - after every step the arena's bytes in use, busy and free segment
 *    counts (free ranges coalesced) match the model; kmem_vmem_check now
 *    and then and at the end; after freeing everything, one free segment
 *    per span.
 *
 * Seeded: the seed is printed; KMEM_TEST_SEED replays a run.  A watchdog
 * turns a request that waits when it should not into a failure, and on
 * any failure the last operations are printed.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>

#include <kmem/vmem.h>

#include "t.h"
#include "t_vmem.h"

#define MAXLIVE	   512
#define MAXGAPS	   (MAXLIVE + 16)
#define NTRACE	   16
#define MAXWAITERS 4 /* waiter-thread checks per run */

struct seg {
	vmem_addr_t start;
	vmem_size_t size; /* rounded to the quantum, > 0 */
	vmem_size_t req;  /* as requested */
	bool x;		  /* vmem_xalloc(_addr): freed with vmem_xfree */
};

struct req {
	vmem_size_t size; /* rounded */
	vmem_size_t align, phase, nocross;
	vmem_addr_t min, max;
};

static struct {
	vmem_t *vm;
	vmem_size_t q;
	vm_flag_t fit;
	struct t_rng rng;
	struct seg spans[8];
	size_t nspans;
	struct seg live[MAXLIVE];
	size_t nlive;
	struct seg gaps[MAXGAPS];
	size_t ngaps;
	vmem_size_t inuse;
	uint64_t nfail; /* failures the model expects the arena to count */
	unsigned nwaiters;
} m;

/* ---- the trace of the last operations, printed if the test fails ---- */

static char trace[NTRACE][160];
static unsigned ntrace;
static bool finished;

static void
note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(trace[ntrace++ % NTRACE], sizeof trace[0], fmt, ap);
	va_end(ap);
}

static void
print_trace(void)
{
	unsigned i = ntrace > NTRACE ? ntrace - NTRACE : 0;

	if (finished)
		return;
	fprintf(stderr, "last operations (oldest first):\n");
	for (; i < ntrace; i++)
		fprintf(stderr, "  %u: %s\n", i, trace[i % NTRACE]);
}

static void
watchdog(int sig)
{
	static const char msg[] = "FAIL vmem_sleep_model: watchdog: a "
				  "VM_SLEEP request waited where it should "
				  "not\n";
	ssize_t r = write(2, msg, sizeof msg - 1);

	(void)sig;
	(void)r;
	exit(1); /* atexit prints the trace */
}

/* ---- the model ---- */

static vmem_addr_t
last_of(vmem_addr_t start, vmem_size_t size)
{
	return start + (size - 1);
}

static vmem_size_t
roundq(vmem_size_t size)
{
	return (size + m.q - 1) & ~(m.q - 1);
}

/* The free ranges: each span minus the live allocations inside it. */
static void
gaps_build(void)
{
	size_t i, j = 0;

	m.ngaps = 0;
	for (i = 0; i < m.nspans; i++) {
		vmem_addr_t cur = m.spans[i].start;
		vmem_addr_t end = last_of(m.spans[i].start, m.spans[i].size);
		bool full = false;

		while (j < m.nlive && m.live[j].start < cur)
			j++;
		for (; j < m.nlive && m.live[j].start <= end; j++) {
			vmem_addr_t lend =
			    last_of(m.live[j].start, m.live[j].size);

			T_ASSERT(!full && lend <= end);
			if (m.live[j].start > cur)
				m.gaps[m.ngaps++] = (struct seg){
				    cur, m.live[j].start - cur, 0, false};
			if (lend == end)
				full = true;
			else
				cur = lend + 1;
		}
		if (!full)
			m.gaps[m.ngaps++] =
			    (struct seg){cur, end - cur + 1, 0, false};
	}
}

/* The free range holding [a, a + size), or NULL. */
static const struct seg *
gap_of(vmem_addr_t a, vmem_size_t size)
{
	size_t i;

	for (i = 0; i < m.ngaps; i++)
		if (m.gaps[i].start <= a &&
		    a <= last_of(m.gaps[i].start, m.gaps[i].size))
			return last_of(a, size) <=
				last_of(m.gaps[i].start, m.gaps[i].size)
			    ? &m.gaps[i]
			    : NULL;
	return NULL;
}

/* Smallest a >= x with a = phase (mod align); false past the top. */
static bool
up_to_phase(vmem_addr_t x, const struct req *r, vmem_addr_t *a)
{
	vmem_size_t off = (r->phase - x) & (r->align - 1);

	if (x > VMEM_ADDR_MAX - off)
		return false;
	*a = x + off;
	return true;
}

/*
 * The lowest address of [s, e] where r fits, if any.  The candidates
 * step by align; one that crosses a nocross boundary can only be
 * followed by the first candidate at or after that boundary, which
 * fits if any does (the request's own phase range does not cross).
 */
static bool
fit_in(vmem_addr_t s, vmem_addr_t e, const struct req *r, vmem_addr_t *out)
{
	vmem_addr_t a;

	if (s < r->min)
		s = r->min;
	if (e > r->max)
		e = r->max;
	if (s > e || !up_to_phase(s, r, &a) || a > e || e - a < r->size - 1)
		return false;
	if (r->nocross != 0 &&
	    a / r->nocross != last_of(a, r->size) / r->nocross) {
		vmem_addr_t b = last_of(a, r->size) / r->nocross * r->nocross;

		if (!up_to_phase(b, r, &a) || a > e || e - a < r->size - 1)
			return false;
	}
	*out = a;
	return true;
}

/* Whether the model has a fit; *bestp the smallest free range with one. */
static bool
model_fits(const struct req *r, vmem_size_t *bestp)
{
	vmem_size_t best = 0;
	vmem_addr_t a;
	size_t i;

	for (i = 0; i < m.ngaps; i++)
		if (m.gaps[i].size >= r->size &&
		    (best == 0 || m.gaps[i].size < best) &&
		    fit_in(m.gaps[i].start,
			last_of(m.gaps[i].start, m.gaps[i].size), r, &a))
			best = m.gaps[i].size;
	if (bestp != NULL)
		*bestp = best;
	return best != 0;
}

static bool
is_constrained(const struct req *r)
{
	return r->align != m.q || r->phase != 0 || r->nocross != 0 ||
	    r->min != VMEM_ADDR_MIN || r->max != VMEM_ADDR_MAX;
}

/* A result: its constraints, its place in the model; then record it. */
static void
take(const struct req *r, vmem_addr_t a, vmem_size_t req, bool x)
{
	vmem_size_t best;
	const struct seg *g;
	size_t i;

	T_EQ((a - r->phase) & (r->align - 1), 0);
	T_GE(a, r->min);
	T_LE(last_of(a, r->size), r->max);
	if (r->nocross != 0)
		T_EQ(a / r->nocross, last_of(a, r->size) / r->nocross);
	g = gap_of(a, r->size);
	if (g == NULL)
		T_FAIL("[%#jx, +%#zx) is not inside one free range of the "
		       "model (outside every span, or over a live allocation)",
		    (uintmax_t)a, r->size);
	if (m.fit == VM_BESTFIT) {
		T_ASSERT(model_fits(r, &best));
		T_EQ(g->size, best);
	}
	T_ASSERT(m.nlive < MAXLIVE);
	for (i = m.nlive; i > 0 && m.live[i - 1].start > a; i--)
		m.live[i] = m.live[i - 1];
	m.live[i] = (struct seg){a, r->size, req, x};
	m.nlive++;
	m.inuse += r->size;
	gaps_build();
}

static void
model_free(size_t i)
{
	struct seg s = m.live[i];

	note("free%s %#jx, %#zx", s.x ? " (x)" : "", (uintmax_t)s.start, s.req);
	if (s.x)
		vmem_xfree(m.vm, s.start, s.req);
	else
		vmem_free(m.vm, s.start, s.req);
	memmove(&m.live[i], &m.live[i + 1], (m.nlive - i - 1) * sizeof s);
	m.nlive--;
	m.inuse -= s.size;
	gaps_build();
}

/* The arena's counters against the model. */
static void
check_counts(void)
{
	struct kmem_vmem_stats st = t_vmem_stats(m.vm);

	T_EQ(st.vs_inuse, m.inuse);
	T_EQ(st.vs_nbusy, m.nlive);
	T_EQ(st.vs_nfree, m.ngaps);
	T_EQ(st.vs_fail, m.nfail);
	T_EQ(vmem_size(m.vm, VMEM_ALLOC), m.inuse);
}

/* ---- random requests ---- */

static uint64_t
rnd(uint64_t n)
{
	return t_rng_below(&m.rng, n);
}

static vmem_size_t
rnd_size(void)
{
	return rnd(8) == 0 ? rnd(4000) + 1 : rnd(500) + 1;
}

/* A random address range, usually in the low spans, sometimes the top. */
static void
rnd_minmax(struct req *r)
{
	vmem_addr_t a, b;

	switch (rnd(6)) {
	case 0:
	case 1:
		r->min = VMEM_ADDR_MIN;
		r->max = VMEM_ADDR_MAX;
		return;
	case 2:
		a = VMEM_ADDR_MAX - rnd(0x200);
		b = VMEM_ADDR_MAX - rnd(0x200);
		break;
	case 3:
		a = rnd(50000);
		b = VMEM_ADDR_MAX;
		break;
	default:
		a = rnd(110000);
		b = rnd(110000);
		break;
	}
	r->min = a < b ? a : b;
	r->max = a < b ? b : a;
}

/*
 * Random constraints that do not contradict themselves (those abort,
 * vmem_errors.c): align and phase quantum multiples, phase below align,
 * nocross at least the size and not crossed by [phase, phase + size).
 */
static void
rnd_req(struct req *r, vmem_size_t req)
{
	r->size = roundq(req);
	r->align = rnd(3) == 0 ? m.q : m.q << rnd(15);
	r->phase = rnd(2) == 0 ? 0 : rnd(r->align / m.q) * m.q;
	r->nocross = rnd(2) == 0 ? 0 : (vmem_size_t)m.q << rnd(16);
	if (r->nocross != 0 &&
	    (r->nocross < r->size ||
		((r->phase ^ last_of(r->phase, r->size)) & ~(r->nocross - 1))))
		r->nocross = 0;
	rnd_minmax(r);
}

/* vmem_alloc or vmem_xalloc with no constraint; VM_SLEEP. */
static int
alloc_plain(bool x, vmem_size_t req, vmem_addr_t *a)
{
	return x ? vmem_xalloc(m.vm, req, 0, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX,
		       VM_SLEEP | m.fit, a)
		 : vmem_alloc(m.vm, req, VM_SLEEP | m.fit, a);
}

/* ---- a waiter thread: unconstrained VM_SLEEP with no fit waits ---- */

struct waiter {
	bool x;
	vmem_size_t req;
	int err;
	vmem_addr_t a;
	atomic_bool done;
};

static void *
waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->err = alloc_plain(w->x, w->req, &w->a);
	atomic_store(&w->done, true);
	return NULL;
}

static void
step_waiter(const struct req *r, vmem_size_t req, bool x)
{
	struct waiter w = {.x = x, .req = req, .err = -1};
	uint64_t w0 = t_vmem_stats(m.vm).vs_wait;
	pthread_t th;
	int i;

	note(
	    "%s %#zx (no fit: waits in a thread)", x ? "xalloc" : "alloc", req);
	m.nwaiters++;
	T_EQ(pthread_create(&th, NULL, waiter_main, &w), 0);
	/* It must wait: seen waiting within 5 s, and not done. */
	for (i = 0; i < 5000 && t_vmem_stats(m.vm).vs_wait == w0; i++)
		usleep(1000);
	T_GT(t_vmem_stats(m.vm).vs_wait, w0);
	T_ASSERT(!atomic_load(&w.done));
	/* Free at random until it fits; it must then be served. */
	while (!model_fits(r, NULL)) {
		T_ASSERT(m.nlive > 0);
		model_free(rnd(m.nlive));
	}
	T_EQ(pthread_join(th, NULL), 0);
	T_EQ(w.err, 0);
	note("  -> %#jx", (uintmax_t)w.a);
	take(r, w.a, req, x);
}

/* ---- the steps ---- */

static void
step_alloc(void)
{
	bool x = rnd(2);
	vmem_size_t req = rnd_size();
	struct req r = {roundq(req), m.q, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX};
	vmem_addr_t a = 0;

	if (!model_fits(&r, NULL)) {
		/* Only an unconstrained request waits: in a thread. */
		if (m.nwaiters < MAXWAITERS && m.nlive > 0)
			step_waiter(&r, req, x);
		return;
	}
	note("%s %#zx", x ? "xalloc" : "alloc", req);
	T_EQ(alloc_plain(x, req, &a), 0);
	note("  -> %#jx", (uintmax_t)a);
	take(&r, a, req, x);
}

static void
step_xalloc(void)
{
	vmem_size_t req = rnd_size();
	struct kmem_vmem_stats s0, s1;
	struct req r;
	vmem_addr_t a = 0;
	bool fits;
	int err;

	rnd_req(&r, req);
	fits = model_fits(&r, NULL);
	if (!fits && !is_constrained(&r))
		return; /* it would wait: step_alloc's business */
	note("xalloc %#zx align=%#zx phase=%#zx nocross=%#zx min=%#jx "
	     "max=%#jx%s",
	    req, r.align, r.phase, r.nocross, (uintmax_t)r.min,
	    (uintmax_t)r.max, fits ? "" : " (no fit)");
	s0 = t_vmem_stats(m.vm);
	err =
	    vmem_xalloc(m.vm, req, rnd(4) == 0 && r.align == m.q ? 0 : r.align,
		r.phase, r.nocross, r.min, r.max, VM_SLEEP | m.fit, &a);
	if (!fits) {
		/* NetBSD: ENOMEM at once, VM_SLEEP or not. */
		T_EQ(err, ENOMEM);
		s1 = t_vmem_stats(m.vm);
		t_vmem_unchanged(&s0, &s1);
		T_EQ(s1.vs_wait, s0.vs_wait);
		T_EQ(s1.vs_fail, s0.vs_fail + 1);
		m.nfail++;
		return;
	}
	T_EQ(err, 0);
	note("  -> %#jx", (uintmax_t)a);
	take(&r, a, req, true);
}

static void
step_xalloc_addr(void)
{
	vmem_size_t req = rnd_size();
	struct req r = {roundq(req), m.q, 0, 0, 0, 0};
	const struct seg *g;
	vmem_addr_t a;
	bool fits;
	int err;

	/* Mostly an address in a free range, else anywhere near the spans. */
	if (rnd(2) == 0 && m.ngaps > 0) {
		g = &m.gaps[rnd(m.ngaps)];
		a = g->start + rnd(g->size) / m.q * m.q;
	} else if (rnd(8) == 0) {
		a = (VMEM_ADDR_MAX - rnd(0x200)) & ~(m.q - 1);
	} else {
		a = rnd(110000) & ~(m.q - 1);
	}
	if (r.size - 1 > VMEM_ADDR_MAX - a)
		return; /* wraps: an abort, vmem_errors.c */
	r.min = a;
	r.max = last_of(a, r.size);
	fits = gap_of(a, r.size) != NULL;
	note("xalloc_addr %#jx, %#zx%s", (uintmax_t)a, req,
	    fits ? "" : " (busy or outside)");
	err = vmem_xalloc_addr(m.vm, a, req, VM_SLEEP);
	if (!fits) {
		T_EQ(err, ENOMEM);
		m.nfail++;
		return;
	}
	T_EQ(err, 0);
	take(&r, a, req, true);
}

static void
run(vmem_size_t q, vm_flag_t fit, uint64_t seed, unsigned idx, uint64_t steps)
{
	/* NetBSD's unit-test spans, and one ending at the top. */
	static const struct {
		vmem_addr_t start;
		vmem_size_t size;
	} spans[] = {
	    {0, 56},
	    {104, 200},
	    {512, 1000},
	    {2000, 8},
	    {10000, 10000},
	    {40000, 65536},
	    {VMEM_ADDR_MAX - 0xff, 0x100},
	};
	uint64_t i;
	size_t k;

	memset(&m, 0, sizeof m);
	m.q = q;
	m.fit = fit;
	t_rng_init(&m.rng, seed, idx);
	printf("   quantum %zu, %s, %ju steps\n", q,
	    fit == VM_BESTFIT	    ? "VM_BESTFIT"
		: fit == VM_NEXTFIT ? "VM_NEXTFIT"
				    : "VM_INSTANTFIT",
	    (uintmax_t)steps);
	m.vm = vmem_create(
	    "sleepmodel", 0, 0, q, NULL, NULL, NULL, 0, VM_SLEEP, IPL_NONE);
	T_ASSERT(m.vm != NULL);
	for (k = 0; k < sizeof spans / sizeof spans[0]; k++) {
		vmem_addr_t s = (spans[k].start + q - 1) & ~(q - 1);
		vmem_size_t n = spans[k].size & ~(q - 1);

		if (spans[k].start > VMEM_ADDR_MAX - q) /* the top one */
			s = spans[k].start & ~(q - 1), n = spans[k].size;
		T_EQ(vmem_add(m.vm, s, n, VM_SLEEP), 0);
		m.spans[m.nspans++] = (struct seg){s, n, n, false};
	}
	gaps_build();
	check_counts();
	for (i = 0; i < steps; i++) {
		uint64_t t = rnd(100);

		if (t < 40 && m.nlive > 0)
			model_free(rnd(m.nlive));
		else if (t < 60)
			step_alloc();
		else if (t < 92)
			step_xalloc();
		else
			step_xalloc_addr();
		/* Fill up now and then: most requests then find no fit. */
		if (m.nlive >= MAXLIVE - 1)
			while (m.nlive > MAXLIVE / 2)
				model_free(rnd(m.nlive));
		check_counts();
		if (i % 256 == 0)
			kmem_vmem_check(m.vm);
	}
	printf("   %zu live at the end, %ju constrained refusals, %u "
	       "waiters\n",
	    m.nlive, (uintmax_t)m.nfail, m.nwaiters);
	T_GT(m.nfail, 0);
	kmem_vmem_check(m.vm);
	while (m.nlive > 0)
		model_free(rnd(m.nlive));
	check_counts();
	T_EQ(t_vmem_stats(m.vm).vs_nfree, m.nspans);
	T_EQ(vmem_size(m.vm, VMEM_FREE),
	    vmem_size(m.vm, VMEM_ALLOC | VMEM_FREE));
	kmem_vmem_check(m.vm);
	vmem_destroy(m.vm);
}

static uint64_t g_seed;

static void
test_sleep_model(void)
{
	static const vm_flag_t fits[] = {VM_BESTFIT, VM_INSTANTFIT, VM_NEXTFIT};
	static const vmem_size_t quanta[] = {1, 8};
	uint64_t steps = t_scale(t_under_valgrind() ? 4000 : 20000);
	unsigned idx = 0;
	size_t f, q;

	for (q = 0; q < 2; q++)
		for (f = 0; f < 3; f++)
			run(quanta[q], fits[f], g_seed, idx++, steps);
}

int
main(void)
{
	g_seed = t_seed();
	atexit(print_trace);
	signal(SIGALRM, watchdog);
	alarm(t_under_valgrind() ? 600 : 120);
	T_RUN(test_sleep_model);
	finished = true;
	return t_done();
}
