/*
 * vmem_model.c -- randomized model test of the vmem arena.
 *
 * In the spirit of NetBSD's subr_vmem.c UNITTEST main(): random spans,
 * random vmem_alloc / vmem_xalloc / vmem_xalloc_addr requests (every fit
 * policy, random align, phase, nocross, minaddr, maxaddr) and random frees,
 * checked after every step against a reference model that is simple enough
 * to be obviously right: a sorted array of spans and a sorted array of live
 * allocations.  The free ranges (spans minus live allocations, one range
 * per maximal gap inside one span) are derived from those two.
 *
 * Checked (docs/vmem-contract.md):
 *  - every result satisfies its constraints, lies inside one span and in
 *    a free range of the model (so overlaps no live allocation);
 *  - a VM_NOSLEEP request fails (ENOMEM exactly) only if the model proves
 *    that no free range holds a fitting address, whatever the policy;
 *  - VM_BESTFIT takes a free segment of the smallest fitting size;
 *  - VM_NEXTFIT returns the lowest fitting address at or after the end of
 *    the previous next-fit allocation, else (wrapping) the lowest one;
 *  - vmem_xalloc_addr succeeds exactly when the range is free;
 *  - vmem_size() for ALLOC, FREE and both; kmem_vmem_stats() (inuse,
 *    total, nbusy, nfree with free neighbours coalesced per span, alloc,
 *    free and fail counters); vmem_whatis() on random addresses
 *    (allocated/free, segment start, offset);
 *  - VM_SLEEP (used now and then when the model says the request fits)
 *    returns at once;
 *  - after vmem_xfreeall (or freeing everything): nothing in use, one free
 *    segment per span;
 *  - with every full check, kmem_vmem_check: the arena's own bookkeeping
 *    (vmem.c section 3) is sound.
 *
 * The q1-qc run's arena has quantum caches (qcache_max 16 quanta): a
 * vmem_alloc of at most that comes from a cache, out of a page that is
 * one busy segment of the arena.  The model's busy list then holds the
 * uncached allocations and the pages, which it learns with vmem_whatis as
 * allocations land in them; the cached allocations are kept apart, each
 * in its page.  Every result is still checked (constraints, inside one
 * span, overlapping nothing live, a cached one inside a page of the right
 * cache, that page over nothing else).  A page whose allocations are all
 * freed may still be in the arena or not ("stale"): a result may take its
 * place.  kmem_reap_all() gives every stale page back, and the exact
 * checks (sizes and statistics, whatis, best and next fit) follow one; so
 * does the check of a failure, since a request that finds no fit has the
 * caches give back what they hold before it fails.
 *
 * Every run's seed is derived from t_seed(); KMEM_TEST_SEED replays all of
 * them, KMEM_MODEL_RUN=N runs only run N.  When a check fails, the last
 * operations are printed.
 */
#include <stdarg.h>

#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "t.h"

#define MAXSPANS 64
#define NTRACE	 24

enum { K_ALLOC, K_XALLOC, K_PAGE, K_CACHED };

struct iv {
	vmem_addr_t start;
	vmem_size_t size; /* > 0; last address is start + (size - 1) */
};

struct lv {
	vmem_addr_t start;
	vmem_size_t size; /* rounded to the quantum */
	vmem_size_t req;  /* as requested */
	/*
	 * K_ALLOC: vmem_alloc; K_XALLOC: vmem_xalloc(_addr); K_PAGE: a
	 * quantum-cache page; K_CACHED: a vmem_alloc served by a cache.
	 */
	int kind;
	vmem_addr_t page; /* K_CACHED: the page holding it */
	size_t nobj;	  /* K_PAGE: the cached allocations in it */
	vmem_size_t cls;  /* K_PAGE: its cache's item size */
};

/* One request's constraints, normalised (align >= quantum). */
struct req {
	vmem_size_t size; /* rounded */
	vmem_size_t align;
	vmem_size_t phase;
	vmem_size_t nocross;
	vmem_addr_t min, max;
};

struct cfg {
	const char *name;
	vmem_size_t quantum;
	bool top;	    /* region ends at VMEM_ADDR_MAX */
	vmem_size_t qcache; /* qcache_max */
	uint64_t ops;
	size_t maxlive;
};

/* q1-qc: quantum caches (see the top of the file). */
static const struct cfg cfgs[] = {
    {"q1-a", 1, false, 0, 300000, 1500},
    {"q1-b", 1, false, 0, 250000, 400},
    {"q1-c", 1, false, 0, 250000, 3000},
    {"q1-qc", 1, false, 16, 200000, 1500},
    {"q16", 16, false, 0, 250000, 1500},
    {"q1-top", 1, true, 0, 250000, 1500},
};

static struct {
	vmem_t *vm;
	const struct cfg *cfg;
	char name[32];
	vmem_size_t q;
	vmem_addr_t rbase; /* region [rbase, rbase + rlen - 1] */
	vmem_size_t rlen;
	vmem_size_t budget; /* stop adding spans past this total */
	struct iv spans[MAXSPANS];
	size_t nspans;
	struct lv *live; /* busy segments: allocations and pages */
	size_t nlive, livecap;
	/* Quantum caches (q1-qc). */
	bool qc;
	vmem_size_t qcmax, pg; /* qcache_max (clipped), page size */
	struct lv *cobj;       /* cached allocations, by address */
	size_t ncobj, cobjcap;
	size_t npages, nstale; /* pages in live; of which empty */
	uint64_t callocs, cfrees, pnew, pgone, reaps;
	struct iv *gaps;
	size_t ngaps, gapcap;
	bool gaps_ok;
	vmem_size_t inuse, total;
	vmem_addr_t rotor;
	bool rotor_known;
	uint64_t ops, allocs, fails, frees, adds, checks, whatis;
	uint64_t livesum;
	size_t livemax;
} m;

/* ---- failure trace: the last NTRACE operations ---- */

static char trace[NTRACE][200];
static uint64_t trace_n;
static bool in_run;

static char *
trace_slot(void)
{
	char *s = trace[trace_n++ % NTRACE];

	s[0] = '\0';
	return s;
}

static void trace_add(char *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
trace_add(char *s, const char *fmt, ...)
{
	size_t len = strlen(s);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s + len, sizeof trace[0] - len, fmt, ap);
	va_end(ap);
}

static void
trace_dump(void)
{
	uint64_t i = trace_n > NTRACE ? trace_n - NTRACE : 0;

	if (!in_run)
		return;
	fprintf(stderr,
	    "run %s: %zu spans, %zu live, %" PRIu64 " ops; last operations:\n",
	    m.cfg->name, m.nspans, m.nlive, m.ops);
	for (; i < trace_n; i++)
		fprintf(stderr, "  %s\n", trace[i % NTRACE]);
}

/* ---- the model ---- */

static vmem_addr_t
ivend(vmem_addr_t start, vmem_size_t size)
{
	return start + (size - 1);
}

/* Index of the span holding addr, or -1. */
static long
span_find(vmem_addr_t addr)
{
	size_t lo = 0, hi = m.nspans;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m.spans[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0 &&
	    addr <= ivend(m.spans[lo - 1].start, m.spans[lo - 1].size))
		return (long)(lo - 1);
	return -1;
}

/* Number of live allocations whose start is <= addr. */
static size_t
live_upper(vmem_addr_t addr)
{
	size_t lo = 0, hi = m.nlive;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m.live[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the live allocation holding addr, or -1. */
static long
live_find(vmem_addr_t addr)
{
	size_t i = live_upper(addr);

	if (i == 0)
		return -1;
	i--;
	if (addr <= ivend(m.live[i].start, m.live[i].size))
		return (long)i;
	return -1;
}

/*
 * If addr is free (in a span, in no live allocation), the maximal free
 * range [*s, *e] holding it, found without the gap array.
 */
static bool
free_range_at(vmem_addr_t addr, vmem_addr_t *s, vmem_addr_t *e)
{
	long si = span_find(addr);
	size_t i = live_upper(addr);
	vmem_addr_t ss, se;

	if (si < 0)
		return false;
	ss = m.spans[si].start;
	se = ivend(ss, m.spans[si].size);
	if (i > 0 && addr <= ivend(m.live[i - 1].start, m.live[i - 1].size))
		return false;
	*s = i > 0 && m.live[i - 1].start >= ss
	    ? ivend(m.live[i - 1].start, m.live[i - 1].size) + 1
	    : ss;
	*e = i < m.nlive && m.live[i].start <= se ? m.live[i].start - 1 : se;
	return true;
}

static size_t
live_insert(vmem_addr_t start, vmem_size_t size, vmem_size_t req, int kind)
{
	size_t i = live_upper(start);

	if (m.nlive == m.livecap) {
		m.livecap = m.livecap ? m.livecap * 2 : 1024;
		m.live = realloc(m.live, m.livecap * sizeof *m.live);
		T_ASSERT(m.live != NULL);
	}
	memmove(&m.live[i + 1], &m.live[i], (m.nlive - i) * sizeof *m.live);
	m.live[i].start = start;
	m.live[i].size = size;
	m.live[i].req = req;
	m.live[i].kind = kind;
	m.live[i].page = 0;
	m.live[i].nobj = 0;
	m.live[i].cls = 0;
	m.nlive++;
	m.inuse += size;
	m.gaps_ok = false;
	return i;
}

static void
live_remove(size_t i)
{
	m.inuse -= m.live[i].size;
	memmove(&m.live[i], &m.live[i + 1], (m.nlive - i - 1) * sizeof *m.live);
	m.nlive--;
	m.gaps_ok = false;
}

static void
gap_push(vmem_addr_t start, vmem_addr_t end)
{
	if (m.ngaps == m.gapcap) {
		m.gapcap = m.gapcap ? m.gapcap * 2 : 1024;
		m.gaps = realloc(m.gaps, m.gapcap * sizeof *m.gaps);
		T_ASSERT(m.gaps != NULL);
	}
	m.gaps[m.ngaps].start = start;
	m.gaps[m.ngaps].size = end - start + 1;
	m.ngaps++;
}

/* The maximal free ranges, per span, in address order. */
static void
gaps_build(void)
{
	size_t i, j = 0;

	if (m.gaps_ok)
		return;
	m.ngaps = 0;
	for (i = 0; i < m.nspans; i++) {
		vmem_addr_t cur = m.spans[i].start;
		vmem_addr_t send = ivend(m.spans[i].start, m.spans[i].size);
		bool full = false;

		while (j < m.nlive && m.live[j].start < m.spans[i].start)
			j++;
		for (; j < m.nlive && m.live[j].start <= send; j++) {
			vmem_addr_t lend =
			    ivend(m.live[j].start, m.live[j].size);

			T_ASSERT(!full && m.live[j].start >= cur);
			T_ASSERT(lend <= send);
			if (m.live[j].start > cur)
				gap_push(cur, m.live[j].start - 1);
			if (lend == send)
				full = true;
			else
				cur = lend + 1;
		}
		if (!full)
			gap_push(cur, send);
	}
	m.gaps_ok = true;
}

/* Index of the free range holding addr, or -1. */
static long
gap_find(vmem_addr_t addr)
{
	size_t lo = 0, hi;

	gaps_build();
	hi = m.ngaps;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m.gaps[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -1;
	lo--;
	if (addr <= ivend(m.gaps[lo].start, m.gaps[lo].size))
		return (long)lo;
	return -1;
}

/* Smallest a >= x with (a - phase) % align == 0; false on overflow. */
static bool
align_up(vmem_addr_t x, const struct req *r, vmem_addr_t *a)
{
	vmem_addr_t rem = (x - r->phase) & (r->align - 1);
	vmem_size_t d;

	if (rem == 0) {
		*a = x;
		return true;
	}
	d = r->align - rem;
	if (x > VMEM_ADDR_MAX - d)
		return false;
	*a = x + d;
	return true;
}

/*
 * The lowest address in [s, e] that satisfies r (the whole allocation
 * inside [s, e]); false if none.  Exact: the candidates are an arithmetic
 * progression; those crossing a nocross boundary all start before it, and
 * (the arguments being consistent) the first candidate after it fits.
 */
static bool
fit_in(vmem_addr_t s, vmem_addr_t e, const struct req *r, vmem_addr_t *out)
{
	vmem_addr_t a, last;

	if (s < r->min)
		s = r->min;
	if (e > r->max)
		e = r->max;
	if (s > e || e - s < r->size - 1)
		return false;
	if (!align_up(s, r, &a) || a > e || e - a < r->size - 1)
		return false;
	last = a + (r->size - 1);
	if (r->nocross != 0 && a / r->nocross != last / r->nocross) {
		vmem_addr_t b = last / r->nocross * r->nocross;

		if (!align_up(b, r, &a) || a > e || e - a < r->size - 1)
			return false;
		last = a + (r->size - 1);
		T_ASSERT(a / r->nocross == last / r->nocross);
	}
	*out = a;
	return true;
}

/* Lowest fitting address in the whole arena. */
static bool
model_first_fit(const struct req *r, vmem_addr_t *out)
{
	size_t i;

	gaps_build();
	for (i = 0; i < m.ngaps; i++)
		if (m.gaps[i].size >= r->size &&
		    fit_in(m.gaps[i].start,
			ivend(m.gaps[i].start, m.gaps[i].size), r, out))
			return true;
	return false;
}

/* Size of the smallest free range holding a fit (0 if none). */
static vmem_size_t
model_best_size(const struct req *r)
{
	vmem_size_t best = 0;
	vmem_addr_t a;
	size_t i;

	gaps_build();
	for (i = 0; i < m.ngaps; i++)
		if ((best == 0 || m.gaps[i].size < best) &&
		    m.gaps[i].size >= r->size &&
		    fit_in(m.gaps[i].start,
			ivend(m.gaps[i].start, m.gaps[i].size), r, &a))
			best = m.gaps[i].size;
	return best;
}

/* The next-fit answer: lowest fit at or after the rotor, else lowest. */
static bool
model_next_fit(const struct req *r, vmem_addr_t *out)
{
	size_t i;

	gaps_build();
	for (i = 0; i < m.ngaps; i++) {
		vmem_addr_t e = ivend(m.gaps[i].start, m.gaps[i].size);
		vmem_addr_t s = m.gaps[i].start;

		if (e < m.rotor || m.gaps[i].size < r->size)
			continue;
		if (s < m.rotor)
			s = m.rotor;
		if (fit_in(s, e, r, out))
			return true;
	}
	return model_first_fit(r, out);
}

static char wbuf[1024];
static size_t wlen;

static void wpr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
wpr(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (wlen >= sizeof wbuf - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(wbuf + wlen, sizeof wbuf - wlen, fmt, ap);
	va_end(ap);
	if (n > 0)
		wlen += (size_t)n < sizeof wbuf - wlen ? (size_t)n
						       : sizeof wbuf - wlen - 1;
}

/* ---- quantum caches (q1-qc) ---- */

/* Allocations made and not yet freed, cached or not. */
static size_t
nuser(void)
{
	return m.nlive - m.npages + m.ncobj;
}

/* vmem_alloc of size (rounded) is served by a quantum cache. */
static bool
is_cached(vmem_size_t size)
{
	return m.qc && size <= m.qcmax;
}

/*
 * The item size of the cache serving size: caches whose pages would hold
 * as many items are merged into the larger one.
 */
static vmem_size_t
qc_class(vmem_size_t size)
{
	vmem_size_t c = size;

	while (c + m.q <= m.qcmax && m.pg / (c + m.q) == m.pg / size)
		c += m.q;
	return c;
}

/* Index of the busy segment of the model starting at addr, or -1. */
static long
live_at(vmem_addr_t addr)
{
	size_t i = live_upper(addr);

	return i > 0 && m.live[i - 1].start == addr ? (long)(i - 1) : -1;
}

/* Empty page i has gone back to the arena. */
static void
page_gone(size_t i)
{
	T_EQ(m.live[i].kind, K_PAGE);
	T_EQ(m.live[i].nobj, 0);
	live_remove(i);
	m.npages--;
	m.nstale--;
	m.pgone++;
}

/* [addr, addr + size) was just allocated: empty pages there are gone. */
static void
drop_stale(vmem_addr_t addr, vmem_size_t size)
{
	size_t i = live_upper(ivend(addr, size));

	while (
	    i > 0 && ivend(m.live[i - 1].start, m.live[i - 1].size) >= addr) {
		i--;
		if (m.live[i].kind == K_PAGE && m.live[i].nobj == 0)
			page_gone(i);
	}
}

/* kmem_reap_all(): every empty page goes back; the model is exact. */
static void
reap(void)
{
	size_t i;

	trace_add(trace_slot(), "%" PRIu64 ": kmem_reap_all()", m.ops);
	kmem_reap_all();
	for (i = m.nlive; i-- > 0;)
		if (m.live[i].kind == K_PAGE && m.live[i].nobj == 0)
			page_gone(i);
	T_EQ(m.nstale, 0);
	m.reaps++;
}

/* Number of cached allocations whose start is <= addr. */
static size_t
cobj_upper(vmem_addr_t addr)
{
	size_t lo = 0, hi = m.ncobj;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m.cobj[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * The cached allocation [addr, addr + size) was just made: it overlaps no
 * other allocation, and lies inside an allocated segment of the arena (a
 * page, of the page size, that never starts at 0) in an item of its
 * cache.  That page is one the model knows (of the same cache, not full),
 * or a new one over nothing the model knows to be busy.
 */
static void
cached_result(
    vmem_addr_t addr, vmem_size_t size, vmem_size_t req, const char *tr)
{
	vmem_size_t cls = qc_class(size);
	vmem_addr_t page, gs, ge;
	char quoted[64], *p, *e;
	long li, si;
	size_t i;

	T_EQ(addr & (m.q - 1), 0);
	wlen = 0;
	wbuf[0] = '\0';
	snprintf(quoted, sizeof quoted, " in VMEM '%s' (allocated)", m.name);
	if (vmem_whatis(addr, wpr) != 0 || (p = strstr(wbuf, " is ")) == NULL ||
	    strstr(wbuf, quoted) == NULL)
		T_FAIL("%s: not in an allocated segment: \"%s\"", tr, wbuf);
	page = (vmem_addr_t)strtoumax(p + 4, &e, 0);
	T_ASSERT(*e == '+');
	T_GE(page, m.q);
	T_LE(addr - page, m.pg - cls);
	li = live_at(page);
	if (li >= 0 && m.live[li].kind == K_PAGE) {
		struct lv *pl = &m.live[li];

		if (pl->nobj == 0) { /* that page again, or a new one there */
			pl->cls = cls;
			m.nstale--;
		} else if (pl->cls != cls) {
			T_FAIL("%s: page %#jx holds items of %#jx and %#jx", tr,
			    (uintmax_t)page, (uintmax_t)pl->cls,
			    (uintmax_t)cls);
		}
		pl->nobj++;
		T_LE(pl->nobj, m.pg / cls);
	} else {
		si = span_find(page);
		T_ASSERT(si >= 0);
		T_LE(ivend(page, m.pg),
		    ivend(m.spans[si].start, m.spans[si].size));
		drop_stale(page, m.pg);
		if (!free_range_at(page, &gs, &ge) || ge < ivend(page, m.pg))
			T_FAIL("%s: new page [%#jx, %#jx] is not free in the "
			       "model",
			    tr, (uintmax_t)page, (uintmax_t)ivend(page, m.pg));
		i = live_insert(page, m.pg, m.pg, K_PAGE);
		m.live[i].nobj = 1;
		m.live[i].cls = cls;
		m.npages++;
		m.pnew++;
	}
	i = cobj_upper(addr);
	if (i > 0)
		T_LT(ivend(m.cobj[i - 1].start, m.cobj[i - 1].size), addr);
	if (i < m.ncobj)
		T_LT(ivend(addr, size), m.cobj[i].start);
	if (m.ncobj == m.cobjcap) {
		m.cobjcap = m.cobjcap ? m.cobjcap * 2 : 1024;
		m.cobj = realloc(m.cobj, m.cobjcap * sizeof *m.cobj);
		T_ASSERT(m.cobj != NULL);
	}
	memmove(&m.cobj[i + 1], &m.cobj[i], (m.ncobj - i) * sizeof *m.cobj);
	memset(&m.cobj[i], 0, sizeof m.cobj[i]);
	m.cobj[i].start = addr;
	m.cobj[i].size = size;
	m.cobj[i].req = req;
	m.cobj[i].kind = K_CACHED;
	m.cobj[i].page = page;
	m.ncobj++;
	m.callocs++;
}

/*
 * A cached-size vmem_alloc failed: only after the caches gave back what
 * they held (the reap below changes nothing more), so no page fits
 * (pages start at the quantum or above) and no page of its cache has a
 * free item.
 */
static void
check_cached_failure(vmem_size_t size, int rc, const char *tr)
{
	struct req pr = {m.pg, m.q, 0, 0, m.q, VMEM_ADDR_MAX};
	vmem_size_t cls = qc_class(size);
	vmem_addr_t want;
	size_t i;

	if (rc != ENOMEM)
		T_FAIL("%s: rc %d, expected 0 or ENOMEM", tr, rc);
	m.fails++;
	reap();
	if (model_first_fit(&pr, &want))
		T_FAIL(
		    "%s: ENOMEM, but a page fits at %#jx", tr, (uintmax_t)want);
	for (i = 0; i < m.nlive; i++)
		if (m.live[i].kind == K_PAGE && m.live[i].cls == cls &&
		    m.live[i].nobj < m.pg / cls)
			T_FAIL("%s: ENOMEM, but page %#jx has a free item", tr,
			    (uintmax_t)m.live[i].start);
}

/* ---- checks ---- */

/* Exact when no page is stale; else each stale page may be gone. */
static void
check_sizes(void)
{
	vmem_size_t a = vmem_size(m.vm, VMEM_ALLOC);

	T_EQ(vmem_size(m.vm, VMEM_ALLOC | VMEM_FREE), m.total);
	T_EQ(vmem_size(m.vm, VMEM_FREE), m.total - a);
	if (m.nstale == 0) {
		T_EQ(a, m.inuse);
		return;
	}
	T_LE(a, m.inuse);
	T_GE(a, m.inuse - m.nstale * m.pg);
	T_EQ((m.inuse - a) % m.pg, 0);
}

/* "ADDR is START+OFF in VMEM 'name' (allocated|free)" */
static void
check_whatis(vmem_addr_t addr)
{
	long li = live_find(addr), gi;
	vmem_addr_t gs = 0, ge = 0;
	bool isfree = free_range_at(addr, &gs, &ge);
	char quoted[40], *p, *e;
	vmem_addr_t start;
	vmem_size_t off;
	int rc;

	wlen = 0;
	wbuf[0] = '\0';
	rc = vmem_whatis(addr, wpr);
	m.whatis++;
	snprintf(quoted, sizeof quoted, "'%s'", m.name);
	/* The model's two views of the free ranges agree. */
	gi = gap_find(addr);
	T_ASSERT(isfree == (gi >= 0));
	if (isfree) {
		T_EQ(m.gaps[gi].start, gs);
		T_EQ(ivend(m.gaps[gi].start, m.gaps[gi].size), ge);
	}
	if (li < 0 && !isfree) {
		/* Outside every span: not ours (no other arena covers it). */
		if (rc == 0 && strstr(wbuf, quoted) != NULL)
			T_FAIL("whatis(%#jx) outside every span: \"%s\"",
			    (uintmax_t)addr, wbuf);
		return;
	}
	if (rc != 0 || (p = strstr(wbuf, " is ")) == NULL)
		T_FAIL("whatis(%#jx) rc %d: \"%s\"", (uintmax_t)addr, rc, wbuf);
	start = (vmem_addr_t)strtoumax(p + 4, &e, 0);
	T_ASSERT(*e == '+');
	off = (vmem_size_t)strtoumax(e + 1, &e, 0);
	if (strncmp(e, " in VMEM ", 9) != 0 || strstr(e, quoted) == NULL)
		T_FAIL("whatis(%#jx): \"%s\"", (uintmax_t)addr, wbuf);
	if (li >= 0) {
		if (strstr(e, "(allocated)") == NULL ||
		    start != m.live[li].start)
			T_FAIL("whatis(%#jx): \"%s\"; model: allocated at "
			       "%#jx",
			    (uintmax_t)addr, wbuf, (uintmax_t)m.live[li].start);
	} else {
		if (strstr(e, "(free)") == NULL || start != gs)
			T_FAIL("whatis(%#jx): \"%s\"; model: free range "
			       "[%#jx, %#jx]",
			    (uintmax_t)addr, wbuf, (uintmax_t)gs,
			    (uintmax_t)ge);
	}
	T_EQ(off, addr - start);
}

/* A random address near the model's interesting places. */
static vmem_addr_t
rand_addr(void)
{
	const struct iv *iv;
	const struct lv *l;

	switch (t_rand_below(4)) {
	case 0:
		if (m.nlive > 0) {
			l = &m.live[t_rand_below(m.nlive)];
			return l->start + t_rand_below(l->size);
		}
		/* FALLTHROUGH */
	case 1: /* an edge of a free range or of an allocation */
		if (m.nlive > 0) {
			l = &m.live[t_rand_below(m.nlive)];
			switch (t_rand_below(4)) {
			case 0:
				return l->start - 1;
			case 1:
				return l->start;
			case 2:
				return ivend(l->start, l->size);
			default:
				return ivend(l->start, l->size) + 1;
			}
		}
		/* FALLTHROUGH */
	case 2:
		iv = &m.spans[t_rand_below(m.nspans)];
		return iv->start + t_rand_below(iv->size + 2) - 1;
	default:
		return m.rbase + t_rand_below(m.rlen);
	}
}

static void
check_full(void)
{
	struct kmem_vmem_stats st;
	int i;

	if (m.qc)
		reap();
	gaps_build();
	memset(&st, 0, sizeof st);
	st.vs_size = sizeof st;
	T_EQ(kmem_vmem_stats(m.vm, &st), 0);
	T_EQ(st.vs_quantum, m.q);
	T_EQ(st.vs_inuse, m.inuse);
	T_EQ(st.vs_total, m.total);
	T_EQ(st.vs_imported, 0);
	T_EQ(st.vs_nbusy, m.nlive);
	T_EQ(st.vs_nfree, m.ngaps);
	if (m.qc) {
		/* A page can go and come back at one place unseen. */
		T_GE(st.vs_alloc, m.allocs + m.pnew);
		T_GE(st.vs_free, m.frees + m.pgone);
		T_EQ(st.vs_alloc - st.vs_free, st.vs_nbusy);
	} else {
		T_EQ(st.vs_alloc, m.allocs);
		T_EQ(st.vs_free, m.frees);
	}
	T_EQ(st.vs_fail, m.fails);
	T_EQ(st.vs_import, 0);
	T_EQ(st.vs_release, 0);
	for (i = 0; i < 4; i++)
		check_whatis(rand_addr());
	kmem_vmem_check(m.vm); /* the arena's own bookkeeping */
	m.checks++;
}

/* addr, just returned for r, satisfies r and lies in one free range. */
static void
check_result(const struct req *r, vmem_addr_t addr)
{
	vmem_addr_t gs, ge;
	long s;
	size_t i;

	T_EQ(addr & (m.q - 1), 0);
	T_EQ((addr - r->phase) & (r->align - 1), 0);
	T_LE(r->min, addr);
	T_LE(addr, r->max);
	T_LE(r->size - 1, r->max - addr);
	if (r->nocross != 0)
		T_EQ(addr / r->nocross, ivend(addr, r->size) / r->nocross);
	s = span_find(addr);
	T_ASSERT(s >= 0);
	T_LE(ivend(addr, r->size), ivend(m.spans[s].start, m.spans[s].size));
	i = live_upper(ivend(addr, r->size));
	if (i > 0)
		T_LT(ivend(m.live[i - 1].start, m.live[i - 1].size), addr);
	T_ASSERT(free_range_at(addr, &gs, &ge));
	T_LE(ivend(addr, r->size), ge);
}

/* ---- operations ---- */

static vmem_size_t
rand_quanta(void)
{
	if (t_rand_below(64) == 0)
		return 1 +
		    t_rand_below((vmem_size_t)1 << (11 + t_rand_below(4)));
	return 1 + t_rand_below((vmem_size_t)1 << (1 + t_rand_below(10)));
}

static const vm_flag_t policies[] = {0, VM_INSTANTFIT, VM_BESTFIT, VM_NEXTFIT};
static const char *const polname[] = {"none", "instant", "best", "next"};

static void
op_add_span(void)
{
	vmem_size_t size =
	    m.q * (1 + t_rand_below((vmem_size_t)1 << (4 + t_rand_below(14))));
	const struct iv *o = &m.spans[t_rand_below(m.nspans)];
	vmem_addr_t start, rend = ivend(m.rbase, m.rlen);
	size_t i, j;
	char *tr;

	switch (t_rand_below(3)) {
	case 0: /* right after a span */
		if (ivend(o->start, o->size) == VMEM_ADDR_MAX)
			return;
		start = ivend(o->start, o->size) + 1;
		break;
	case 1: /* right before a span */
		if (o->start - m.rbase < size)
			return;
		start = o->start - size;
		break;
	default:
		start = m.rbase + (t_rand_below(m.rlen) & ~(m.q - 1));
		break;
	}
	if (start < m.rbase || rend - start < size - 1)
		return;
	for (i = 0; i < m.nspans; i++) {
		vmem_addr_t a = m.spans[i].start;

		if (start <= ivend(a, m.spans[i].size) &&
		    a <= ivend(start, size))
			return;
	}
	tr = trace_slot();
	trace_add(tr, "%" PRIu64 ": vmem_add(%#jx, %#jx)", m.ops,
	    (uintmax_t)start, (uintmax_t)size);
	T_EQ(vmem_add(m.vm, start, size, VM_SLEEP), 0);
	for (i = 0; i < m.nspans && m.spans[i].start < start; i++)
		continue;
	for (j = m.nspans; j > i; j--)
		m.spans[j] = m.spans[j - 1];
	m.spans[i].start = start;
	m.spans[i].size = size;
	m.nspans++;
	m.total += size;
	m.gaps_ok = false;
	m.adds++;
}

/*
 * After a successful allocation of r at addr with the given policy; the
 * policy itself is checked only when the model was exact (no stale page).
 */
static void
check_policy(
    const struct req *r, vmem_addr_t addr, vm_flag_t pol, char *tr, bool exact)
{
	vmem_addr_t want;

	if (m.qc)
		drop_stale(addr, r->size);
	check_result(r, addr);
	if (pol == VM_BESTFIT && exact) {
		vmem_size_t best = model_best_size(r);
		vmem_addr_t gs = 0, ge = 0;

		T_ASSERT(free_range_at(addr, &gs, &ge));
		if (ge - gs + 1 != best)
			T_FAIL("%s: best fit took the free segment [%#jx, "
			       "%#jx], the smallest fitting one has size %#jx",
			    tr, (uintmax_t)gs, (uintmax_t)ge, (uintmax_t)best);
	}
	if (pol == VM_NEXTFIT) {
		if (m.rotor_known && exact) {
			T_ASSERT(model_next_fit(r, &want));
			if (addr != want)
				T_FAIL("%s: next fit (rotor %#jx) returned "
				       "%#jx, expected %#jx",
				    tr, (uintmax_t)m.rotor, (uintmax_t)addr,
				    (uintmax_t)want);
		}
		m.rotor = addr + r->size; /* wraps to 0 at the top */
		m.rotor_known = true;
	}
}

/* After a failed allocation (rc from the call). */
static void
check_failure(const struct req *r, int rc, const char *tr)
{
	vmem_addr_t want, gs = 0, ge = 0;

	if (rc != ENOMEM)
		T_FAIL("%s: rc %d, expected 0 or ENOMEM", tr, rc);
	/*
	 * A request that finds no fit has the quantum caches give back what
	 * they hold before it fails: the arena has no stale page left.
	 */
	if (m.qc)
		reap();
	if (model_first_fit(r, &want)) {
		free_range_at(want, &gs, &ge);
		T_FAIL("%s: ENOMEM, but %#jx fits (free range [%#jx, %#jx])",
		    tr, (uintmax_t)want, (uintmax_t)gs, (uintmax_t)ge);
	}
	m.fails++;
}

/* VM_NOSLEEP, or (sometimes) VM_SLEEP when the model says it fits. */
static vm_flag_t
sleep_flag(const struct req *r)
{
	vmem_addr_t a;

	if (t_rand_below(16) == 0 && model_first_fit(r, &a))
		return VM_SLEEP;
	return VM_NOSLEEP;
}

/*
 * Before a best- or next-fit request, now and then make the model exact
 * (a reap) so that the policy can be checked in the q1-qc run too.
 */
static bool
exact_for(vm_flag_t pol)
{
	if (m.nstale != 0 && (pol == VM_BESTFIT || pol == VM_NEXTFIT) &&
	    t_rand_below(4) == 0)
		reap();
	return m.nstale == 0;
}

static void
op_alloc(void)
{
	vmem_size_t k = rand_quanta(), size = k * m.q;
	vmem_size_t req = size - t_rand_below(m.q);
	unsigned p = (unsigned)t_rand_below(4);
	struct req r = {size, m.q, 0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX};
	/* A cached request may need a page, which never starts at 0. */
	struct req pr = {m.pg, m.q, 0, 0, m.q, VMEM_ADDR_MAX};
	bool cached = is_cached(size);
	bool exact = cached || exact_for(policies[p]);
	vm_flag_t sl = sleep_flag(cached ? &pr : &r);
	vmem_addr_t addr = 0;
	char *tr = trace_slot();
	int rc;

	trace_add(tr, "%" PRIu64 ": vmem_alloc(%#jx, %s%s)", m.ops,
	    (uintmax_t)req, sl == VM_SLEEP ? "SLEEP|" : "", polname[p]);
	if (t_rand_below(64) == 0)
		T_EQ(vmem_roundup_size(m.vm, req), size);
	rc = vmem_alloc(m.vm, req, sl | policies[p], &addr);
	if (rc != 0) {
		T_ASSERT(sl == VM_NOSLEEP);
		if (cached)
			check_cached_failure(size, rc, tr);
		else
			check_failure(&r, rc, tr);
		return;
	}
	trace_add(tr, " = %#jx", (uintmax_t)addr);
	if (cached) {
		/* The fit policy does not apply; the rotor stays. */
		cached_result(addr, size, req, tr);
		return;
	}
	check_policy(&r, addr, policies[p], tr, exact);
	live_insert(addr, size, req, K_ALLOC);
	m.allocs++;
}

/* Random minaddr/maxaddr for r (r->size set), always consistent. */
static void
rand_minmax(struct req *r)
{
	unsigned c = (unsigned)t_rand_below(8);
	vmem_addr_t a, b;

	r->min = VMEM_ADDR_MIN;
	r->max = VMEM_ADDR_MAX;
	if (c < 3)
		return;
	a = rand_addr();
	if (m.q > 1 && t_rand_below(4) == 0)
		a += t_rand_below(m.q) - m.q / 2;
	if (c == 3) {
		r->min = a;
	} else if (c == 4) {
		r->max = a;
	} else {
		vmem_size_t w = r->size - 1 +
		    (t_rand_below(2) ? t_rand_below(r->align + r->size)
				     : t_rand_below(16 * r->size));

		r->min = a;
		b = VMEM_ADDR_MAX - a < w ? VMEM_ADDR_MAX : a + w;
		r->max = b;
	}
	/* minaddr <= maxaddr and size <= maxaddr - minaddr + 1 */
	if (r->max - r->min < r->size - 1 || r->min > r->max) {
		if (r->min > r->max) {
			b = r->min;
			r->min = r->max;
			r->max = b;
		}
		if (r->max - r->min < r->size - 1) {
			if (VMEM_ADDR_MAX - r->min >= r->size - 1)
				r->max = r->min + (r->size - 1);
			else
				r->min = r->max - (r->size - 1);
		}
	}
}

static void
op_xalloc(void)
{
	vmem_size_t k = rand_quanta(), size = k * m.q;
	vmem_size_t req = size - t_rand_below(m.q);
	vmem_size_t align = 0, nocross = 0;
	unsigned p = (unsigned)t_rand_below(4);
	struct req r;
	vm_flag_t sl;
	vmem_addr_t addr = 0;
	bool exact;
	char *tr;
	int rc;

	r.size = size;
	if (t_rand_below(3) != 0)
		align = m.q << t_rand_below(14);
	r.align = align ? align : m.q;
	r.phase = t_rand_below(2) ? m.q * t_rand_below(r.align / m.q) : 0;
	if (t_rand_below(2)) {
		nocross = m.q << t_rand_below(18);
		while (nocross < size ||
		    (r.phase & (nocross - 1)) + size > nocross)
			nocross <<= 1;
	}
	r.nocross = nocross;
	rand_minmax(&r);
	exact = exact_for(policies[p]);
	sl = sleep_flag(&r);
	tr = trace_slot();
	trace_add(tr,
	    "%" PRIu64 ": vmem_xalloc(%#jx, align %#jx, phase %#jx, "
	    "nocross %#jx, min %#jx, max %#jx, %s%s)",
	    m.ops, (uintmax_t)req, (uintmax_t)align, (uintmax_t)r.phase,
	    (uintmax_t)nocross, (uintmax_t)r.min, (uintmax_t)r.max,
	    sl == VM_SLEEP ? "SLEEP|" : "", polname[p]);
	rc = vmem_xalloc(m.vm, req, align, r.phase, nocross, r.min, r.max,
	    sl | policies[p], &addr);
	if (rc != 0) {
		T_ASSERT(sl == VM_NOSLEEP);
		check_failure(&r, rc, tr);
		return;
	}
	trace_add(tr, " = %#jx", (uintmax_t)addr);
	check_policy(&r, addr, policies[p], tr, exact);
	live_insert(addr, size, req, K_XALLOC);
	m.allocs++;
}

static void
op_xalloc_addr(void)
{
	vmem_size_t k = rand_quanta(), size = k * m.q;
	vmem_size_t req = size - t_rand_below(m.q);
	unsigned p = (unsigned)t_rand_below(3); /* next fit: rotor unknown */
	vmem_addr_t addr = rand_addr() & ~(m.q - 1), a;
	struct req r;
	bool fits;
	char *tr;
	int rc;

	if (VMEM_ADDR_MAX - addr < size - 1)
		addr = VMEM_ADDR_MAX - (size - 1);
	r.size = size;
	r.align = m.q;
	r.phase = 0;
	r.nocross = 0;
	r.min = addr;
	r.max = addr + (size - 1);
	tr = trace_slot();
	trace_add(tr, "%" PRIu64 ": vmem_xalloc_addr(%#jx, %#jx, %s)", m.ops,
	    (uintmax_t)addr, (uintmax_t)req, polname[p]);
	rc = vmem_xalloc_addr(m.vm, addr, req, VM_NOSLEEP | policies[p]);
	if (rc != 0) {
		check_failure(&r, rc, tr);
		return;
	}
	trace_add(tr, " = 0");
	if (m.qc)
		drop_stale(addr, size);
	fits = model_first_fit(&r, &a);
	if (!fits)
		T_FAIL("%s: succeeded on a range that is not free", tr);
	check_result(&r, addr);
	live_insert(addr, size, req, K_XALLOC);
	m.allocs++;
}

/* Free cached allocation i: back to its cache; its page may empty. */
static void
op_free_cached(size_t i)
{
	struct lv l = m.cobj[i];
	vmem_size_t sz = t_rand_below(2) ? l.req : l.size;
	long pi = live_at(l.page);

	trace_add(trace_slot(), "%" PRIu64 ": vmem_free(%#jx, %#jx) (cached)",
	    m.ops, (uintmax_t)l.start, (uintmax_t)sz);
	vmem_free(m.vm, l.start, sz);
	memmove(&m.cobj[i], &m.cobj[i + 1], (m.ncobj - i - 1) * sizeof *m.cobj);
	m.ncobj--;
	T_ASSERT(pi >= 0 && m.live[pi].kind == K_PAGE && m.live[pi].nobj > 0);
	if (--m.live[pi].nobj == 0)
		m.nstale++;
	m.cfrees++;
}

static void
op_free(void)
{
	size_t nx = m.nlive - m.npages, i;
	struct lv l;
	vmem_size_t sz;
	char *tr;

	if (m.ncobj != 0 && t_rand_below(nx + m.ncobj) >= nx) {
		op_free_cached(t_rand_below(m.ncobj));
		return;
	}
	do
		i = t_rand_below(m.nlive);
	while (m.live[i].kind == K_PAGE);
	l = m.live[i];
	sz = t_rand_below(2) ? l.req : l.size;
	tr = trace_slot();

	trace_add(tr, "%" PRIu64 ": %s(%#jx, %#jx)", m.ops,
	    l.kind == K_ALLOC ? "vmem_free" : "vmem_xfree", (uintmax_t)l.start,
	    (uintmax_t)sz);
	if (l.kind == K_ALLOC)
		vmem_free(m.vm, l.start, sz);
	else
		vmem_xfree(m.vm, l.start, sz);
	live_remove(i);
	m.frees++;
}

/* ---- one run ---- */

static void
run(const struct cfg *c, uint64_t seed)
{
	vmem_size_t first = (vmem_size_t)1 << 16;
	uint64_t nops = t_scale(c->ops), phase_left = 0;
	bool grow = true;
	struct timespec t0, t1;
	vmem_addr_t start;

	memset(&m, 0, sizeof m);
	m.cfg = c;
	m.q = c->quantum;
	snprintf(m.name, sizeof m.name, "model-%s", c->name);
	m.rlen = m.q << 24;
	m.rbase = c->top ? VMEM_ADDR_MAX - (m.rlen - 1) : 0;
	m.budget = m.q << 18;
	/* vmem.c section 6: clipped to 16 quanta; pages > 3 x qcache_max. */
	m.qcmax = c->qcache < 16 * m.q ? c->qcache & ~(m.q - 1) : 16 * m.q;
	m.qc = m.qcmax != 0;
	for (m.pg = 1; m.qc && m.pg <= 3 * m.qcmax; m.pg <<= 1)
		continue;
	t_set_seed(seed);
	printf("   run %s: seed %" PRIu64 ", quantum %zu, qcache_max %zu, "
	       "%" PRIu64 " ops\n",
	    c->name, seed, (size_t)m.q, (size_t)c->qcache, nops);
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);

	/* The first span: at address 0, random, or ending at the top. */
	if (c->top)
		start = VMEM_ADDR_MAX - (first * m.q - 1);
	else if (c == &cfgs[0])
		start = 0;
	else
		start = m.rbase + (t_rand_below(m.rlen / 2) & ~(m.q - 1));
	if (c->top) {
		m.vm = vmem_create(m.name, 0, 0, m.q, NULL, NULL, NULL,
		    c->qcache, VM_SLEEP, IPL_NONE);
		T_ASSERT(m.vm != NULL);
		T_EQ(vmem_add(m.vm, start, first * m.q, VM_SLEEP), 0);
	} else {
		m.vm = vmem_create(m.name, start, first * m.q, m.q, NULL, NULL,
		    NULL, c->qcache, VM_SLEEP, IPL_NONE);
		T_ASSERT(m.vm != NULL);
	}
	m.spans[0].start = start;
	m.spans[0].size = first * m.q;
	m.nspans = 1;
	m.total = first * m.q;
	in_run = true;
	check_sizes();
	check_full();

	for (m.ops = 0; m.ops < nops; m.ops++) {
		unsigned pa;

		if (phase_left-- == 0) {
			grow = !grow;
			phase_left = 2000 + t_rand_below(20000);
		}
		pa = grow ? 65 : 40;
		if (m.nspans < MAXSPANS && m.total < m.budget &&
		    t_rand_below(2000) == 0)
			op_add_span();
		if (nuser() == 0 ||
		    (nuser() < c->maxlive && t_rand_below(100) < pa)) {
			unsigned w = (unsigned)t_rand_below(10);

			if (w < 4)
				op_alloc();
			else if (w < 9)
				op_xalloc();
			else
				op_xalloc_addr();
		} else {
			op_free();
		}
		check_sizes();
		/* With quantum caches a full check reaps them: less often. */
		if (m.qc ? m.ops % 128 == 0 : m.nlive < 32 || m.ops % 32 == 0)
			check_full();
		m.livesum += nuser();
		if (nuser() > m.livemax)
			m.livemax = nuser();
	}
	check_full();

	/* Free everything; then each span is one free segment. */
	if (c->qcache == 0) {
		char *tr = trace_slot();

		trace_add(tr, "vmem_xfreeall()");
		vmem_xfreeall(m.vm);
		m.frees += m.nlive;
		while (m.nlive > 0)
			live_remove(m.nlive - 1);
	} else {
		while (nuser() > 0)
			op_free();
		/* Only empty pages are left, until reaped. */
		T_EQ(m.nlive, m.nstale);
		check_sizes();
		reap();
		T_EQ(m.nlive, 0);
	}
	check_sizes();
	T_EQ(vmem_size(m.vm, VMEM_ALLOC), 0);
	{
		struct kmem_vmem_stats st;
		size_t i;

		memset(&st, 0, sizeof st);
		st.vs_size = sizeof st;
		T_EQ(kmem_vmem_stats(m.vm, &st), 0);
		T_EQ(st.vs_nbusy, 0);
		T_EQ(st.vs_nfree, m.nspans);
		T_EQ(st.vs_inuse, 0);
		for (i = 0; i < m.nspans; i++)
			check_whatis(
			    m.spans[i].start + t_rand_below(m.spans[i].size));
	}
	in_run = false;
	vmem_destroy(m.vm);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("   run %s: %" PRIu64 " ops, %" PRIu64 " allocs, %" PRIu64
	       " fails, %" PRIu64 " frees, %" PRIu64 " spans added (%zu "
	       "spans, %#zx bytes), %" PRIu64 " full checks, %" PRIu64
	       " whatis, live avg %" PRIu64 " max %zu, %.2f s\n",
	    c->name, m.ops, m.allocs, m.fails, m.frees, m.adds, m.nspans,
	    (size_t)m.total, m.checks, m.whatis,
	    m.livesum / (m.ops ? m.ops : 1), m.livemax,
	    (double)(t1.tv_sec - t0.tv_sec) +
		(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (m.qc)
		printf("   run %s: %" PRIu64 " cached allocs, %" PRIu64
		       " cached frees, %" PRIu64 " pages seen, %" PRIu64
		       " seen gone, %" PRIu64 " reaps\n",
		    c->name, m.callocs, m.cfrees, m.pnew, m.pgone, m.reaps);
	fflush(stdout);
	free(m.live);
	free(m.gaps);
	free(m.cobj);
	memset(&m, 0, sizeof m);
}

static uint64_t base_seed;
static long only_run = -1;
static uint64_t total_ops;

static void
run_n(size_t i)
{
	uint64_t s = base_seed + 0x9e3779b97f4a7c15ull * (i + 1);

	s ^= s >> 31;
	if (only_run >= 0 && (size_t)only_run != i)
		return;
	run(&cfgs[i], s);
	total_ops += t_scale(cfgs[i].ops);
}

static void
t_model_q1_a(void)
{
	run_n(0);
}

static void
t_model_q1_b(void)
{
	run_n(1);
}

static void
t_model_q1_c(void)
{
	run_n(2);
}

static void
t_model_q1_qcache(void)
{
	run_n(3);
}

static void
t_model_q16(void)
{
	run_n(4);
}

static void
t_model_q1_top(void)
{
	run_n(5);
}

int
main(void)
{
	const char *e = getenv("KMEM_MODEL_RUN");

	base_seed = t_seed();
	if (e != NULL && *e != '\0')
		only_run = strtol(e, NULL, 0);
	atexit(trace_dump);
	T_RUN(t_model_q1_a);
	T_RUN(t_model_q1_b);
	T_RUN(t_model_q1_c);
	T_RUN(t_model_q1_qcache);
	T_RUN(t_model_q16);
	T_RUN(t_model_q1_top);
	printf("   %" PRIu64 " operations in all\n", total_ops);
	return t_done();
}
