/*
 * debug.c -- KMEM_DEBUG: run-time debugging of kmem_alloc/kmem_free that
 * finds the bug and names it (NetBSD's KMEM_SIZE, KMEM_REDZONE,
 * KMEM_POISON and KMEM_GUARD, chosen at start-up instead of at build).
 *
 * 1. Switch.  KMEM_DEBUG=item,... is read once by kmem_init (items size,
 *    redzone, poison, guard, guard_depth=N, all, and check, check_every=N
 *    of section 6).  Any item but check sets bits in kmemi_gate, the word
 *    kmem.c's fast paths test anyway, so all calls come here; with no
 *    item nothing here runs.
 *
 * 2. The record table.  Every allocation made while debugging is on has a
 *    record keyed by its address: requested size, the size asked of the
 *    allocator underneath ("raw": larger with a redzone), the bytes the
 *    object really owns (its class, page-rounded, or the guard slot), and
 *    a state: live, freed, or freed-and-poisoned.  Freed records stay until
 *    the address is handed out again, so a second free is told from a
 *    pointer never allocated.  An open-addressing hash (linear probing,
 *    power-of-two size, doubled at half load counting tombstones) in
 *    the metadata region (meta.c: guard pages around it, never next to
 *    the objects it describes, so an overrun cannot forge a record) --
 *    never from kmem, whose calls it records.  The guard quarantine's
 *    ring is there too.  When a cache page goes back to the page arena
 *    its records are dropped (kmemi_debug_forget): the address may next
 *    hold anything.  The size is thus kept outside the object, not in
 *    NetBSD's footer: a buffer overrun cannot forge it.
 *
 * 3. Checks.
 *    - size: free with another size than the record's: NetBSD's message.
 *    - redzone: the raw size is size + 1, so at least one byte follows the
 *      object; [size, owned) is filled with a pattern (byte = top 8 bits
 *      of address * 0x9e37fffffffc0001, NetBSD's; the first byte never
 *      NUL, so an off-by-one string terminator is caught) and checked at
 *      free.
 *    - poison: freed objects are filled with the pattern; when the same
 *      address is handed out again the whole object is checked (write
 *      after free).  Large blocks are filled but not checked: freed, they
 *      belong to the page arena at once (see kmemi_debug_free).
 *    - guard: each allocation gets its own pages between two inaccessible
 *      pages, right-aligned against the upper one, so an overrun faults at
 *      once, and an underrun past the first page too; the bytes below the
 *      object in its first page and its alignment slack carry the pattern
 *      and are checked at free; a freed block's pages are made
 *      inaccessible and held in a FIFO quarantine of guard_depth entries
 *      (default 1024) before its address space is unmapped (a use after
 *      free faults).
 *    - double free and foreign pointers: with any item.  A pointer with no
 *      record is looked up in every kmem cache (kmemi_pool_item_of, which
 *      reads no object memory): inside an object, a free object; then
 *      among the records up to 64 KiB below it (guard slots, large
 *      blocks); else unknown.
 *
 * 4. Locking.  dbg.lock (a mutex) covers the table and the quarantine; it
 *    is never held across calls into the allocator underneath, except the
 *    pool lookups of a report that ends in abort and the metadata arena's
 *    allocation of the table.  Lock order: dbg.lock -> a pool's lock, and
 *    dbg.lock -> the metadata arena's lock.
 *
 * 5. Failure policy.  Every bug found: one line through kmem_panic, then
 *    abort (docs/kmem-contract.md has each message).  No memory for the
 *    table or the quarantine: abort too, naming the call -- a debugging
 *    run that silently stopped checking would be worse.
 *
 * 6. Consistency checks (KMEM_DEBUG=check, check_every=N).  Not a layer
 *    over kmem_alloc (it leaves the gate alone: the fast paths, malloc's
 *    free tags and everything else stay as they are) but a switch for
 *    the checkers of the layers themselves (kmem_vmem_check in vmem.c,
 *    kmem_pool_check in pool.c, kmem_pool_cache_check in pool_cache.c),
 *    which then run from the slow paths on the structure at hand, under
 *    the lock the path holds: an arena at each vmem_xalloc/vmem_xfree
 *    that takes its lock (not the quantum caches' hits), a pool when it
 *    gains a page or a page of it empties, a cache's depot and this
 *    CPU's groups at each depot exchange.  A check walks the whole
 *    structure: O(segments) for an arena, O(pages x bitmap words) for a
 *    pool, O(depot groups) for a depot; checking an arena of 10^5
 *    segments at each of its events would make a program of 10^5
 *    allocations take 10^10 steps.  So kmemi_check_due(work) lets a
 *    structure whose check takes up to KMEMI_CHECK_WORK (64) steps be
 *    checked at every event, a larger one at one event in about
 *    work / 64 (one relaxed atomic counter over the process): the checks
 *    then cost about 64 steps per event, whatever the sizes -- steps
 *    that miss the CPU cache more often in a large structure
 *    (bench/bench_check: 200,000 large-block replacements among 200,
 *    2,000, 20,000 live blocks, then 10^6 small objects, took 50, 62,
 *    117 CPU ms off, 304, 402, 1205 with check, 80, 100, 173 with
 *    check_every=16).
 *    check_every=N checks N times less often still.  Read from
 *    KMEM_DEBUG by kmem_options_init (kmemi_check_init), which every
 *    layer calls first, so a program of vmem or pool alone gets it too;
 *    no warnings there (kmem_init's parse gives them).  What the
 *    checks read is a setting of the default domain (kmemi_check_every,
 *    kmem_opts.check_every); dbg.check_every is the parse's result.
 *    The violation report is kmemi_check_fail's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/meta.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"

#define DBG_ITEMS                                                              \
	(KMEM_DEBUG_SIZE | KMEM_DEBUG_REDZONE | KMEM_DEBUG_POISON |            \
	    KMEM_DEBUG_GUARD)
/* NetBSD's pattern multiplier (subr_kmem.c, LP64). */
#define DBG_PRIME	   0x9e37fffffffc0001ull
#define DBG_GUARD_DEPTH	   1024 /* default quarantine: entries */
#define DBG_GUARD_MAXDEPTH (1u << 20)
#define DBG_CHECK_MAXEVERY (1u << 30) /* check_every=N: N at most */

enum { REC_EMPTY = 0, REC_DEAD, REC_LIVE, REC_FREED, REC_POISONED };

struct dbg_rec {
	uintptr_t r_addr;
	size_t r_size;	/* requested */
	size_t r_raw;	/* asked of the allocator underneath; 0: guard */
	size_t r_owned; /* bytes from r_addr the object owns */
	size_t r_align; /* guard slots: the alignment asked for (0: none) */
	unsigned int r_state;
};

struct dbg_quar {
	void *q_base; /* the reservation, guard page included */
	size_t q_len;
	uintptr_t q_addr; /* the object (its record) */
};

/*
 * KMEM_DEBUG's state, process-wide (domain.c's "What stays global" says
 * why): the switch as parsed, and the record table and the quarantine
 * under dbg.lock.
 */
static struct {
	unsigned int flags;
	size_t guard_depth;
	unsigned int check_every;    /* as parsed: 0 off, N */
	_Atomic uint64_t check_tick; /* kmemi_check_due's counter */

	kmem_mutex_t lock;
	struct dbg_rec *tab;
	size_t tabmask;
	size_t used, ndead; /* slots not empty; of them, dead */
	size_t tabbytes;
	struct dbg_quar *quar;
	size_t qhead, qlen, qbytes;
} dbg = {.guard_depth = DBG_GUARD_DEPTH, .lock = KMEM_MUTEX_INITIALIZER};

/* ---- the pattern ---- */

static inline uint8_t
dbg_pat(uintptr_t a)
{
	return (uint8_t)((a * DBG_PRIME) >> 56);
}

/* The redzone's first byte is never NUL (an off-by-one terminator). */
static inline uint8_t
dbg_rzpat(uintptr_t a, uintptr_t first)
{
	uint8_t b = dbg_pat(a);

	return a == first && b == 0 ? 0xfe : b;
}

static void
dbg_fill(uintptr_t from, uintptr_t to)
{
	uintptr_t a;

	for (a = from; a < to; a++)
		*(uint8_t *)a = dbg_rzpat(a, from);
}

/* Poison: the pattern alone, the same whoever fills a byte. */
static void
dbg_poison(uintptr_t from, uintptr_t to)
{
	uintptr_t a;

	for (a = from; a < to; a++)
		*(uint8_t *)a = dbg_pat(a);
}

static uintptr_t
dbg_check_poison(uintptr_t from, uintptr_t to)
{
	uintptr_t a;

	for (a = from; a < to; a++)
		if (*(const uint8_t *)a != dbg_pat(a))
			return a;
	return 0;
}

/* The first byte in [from, to) that lost its pattern, or 0. */
static uintptr_t
dbg_check(uintptr_t from, uintptr_t to)
{
	uintptr_t a;

	for (a = from; a < to; a++)
		if (*(const uint8_t *)a != dbg_rzpat(a, from))
			return a;
	return 0;
}

/* ---- options ---- */

static bool
dbg_item(const char *s, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(s, name, n) == 0;
}

/*
 * Item s[0..n) is "NAME=N" (plen: the length of "NAME="): *vp = N if it
 * is a number in [1, max], else a warning naming the item and false.
 */
static bool
dbg_number(
    const char *s, size_t n, size_t plen, size_t max, bool warn, size_t *vp)
{
	size_t v = 0, i;
	bool ok = true;

	for (i = plen; i < n && ok; i++) {
		ok = s[i] >= '0' && s[i] <= '9' && v < max;
		v = v * 10 + (size_t)(s[i] - '0');
	}
	if (ok && v >= 1 && v <= max) {
		*vp = v;
		return true;
	}
	if (warn)
		kmem_warn("KMEM_DEBUG: bad item '%.*s' (%.*s is 1 to %zu)",
		    (int)n, s, (int)(plen - 1), s, max);
	return false;
}

/*
 * The KMEM_DEBUG_* bits of spec; guard_depth and check_every as a side
 * effect.  "warn": a warning for each bad item (kmem_init's parse; the
 * early one of kmemi_check_init is quiet).
 */
static unsigned int
dbg_parse(const char *spec, bool warn)
{
	unsigned int flags = 0;
	const char *s = spec, *e;
	size_t v;

	dbg.guard_depth = DBG_GUARD_DEPTH;
	dbg.check_every = 1;
	while (s != NULL && *s != '\0') {
		size_t n;

		e = strchr(s, ',');
		n = e != NULL ? (size_t)(e - s) : strlen(s);
		if (n == 0) {
			/* empty item: skip */
		} else if (dbg_item(s, n, "size")) {
			flags |= KMEM_DEBUG_SIZE;
		} else if (dbg_item(s, n, "redzone")) {
			flags |= KMEM_DEBUG_REDZONE;
		} else if (dbg_item(s, n, "poison")) {
			flags |= KMEM_DEBUG_POISON;
		} else if (dbg_item(s, n, "guard")) {
			flags |= KMEM_DEBUG_GUARD;
		} else if (dbg_item(s, n, "check")) {
			flags |= KMEM_DEBUG_CHECK;
		} else if (dbg_item(s, n, "all")) {
			flags |= KMEM_DEBUG_SIZE | KMEM_DEBUG_REDZONE |
			    KMEM_DEBUG_POISON;
		} else if (n > 12 && memcmp(s, "guard_depth=", 12) == 0) {
			if (dbg_number(s, n, 12, DBG_GUARD_MAXDEPTH, warn, &v))
				dbg.guard_depth = v;
		} else if (n > 12 && memcmp(s, "check_every=", 12) == 0) {
			if (dbg_number(
				s, n, 12, DBG_CHECK_MAXEVERY, warn, &v)) {
				dbg.check_every = (unsigned int)v;
				flags |= KMEM_DEBUG_CHECK;
			}
		} else if (warn) {
			kmem_warn("KMEM_DEBUG: unknown item '%.*s' (known: "
				  "size, redzone, poison, guard, "
				  "guard_depth=N, check, check_every=N, all)",
			    (int)n, s);
		}
		s = e != NULL ? e + 1 : NULL;
	}
	if (!(flags & KMEM_DEBUG_CHECK))
		dbg.check_every = 0;
	return flags;
}

unsigned int
kmemi_debug_init(void)
{
	dbg.flags = dbg_parse(kmem_prim_getenv("KMEM_DEBUG"), true);
	__atomic_store_n(&kmemi_check_every, dbg.check_every, __ATOMIC_RELAXED);
	return dbg.flags & DBG_ITEMS; /* the gate's: not check */
}

unsigned int
kmemi_debug_configure(const char *spec)
{
	kmem_init();
	kmem_mutex_enter(&dbg.lock);
	dbg.flags = dbg_parse(spec, true);
	__atomic_store_n(&kmemi_check_every, dbg.check_every, __ATOMIC_RELAXED);
	kmem_mutex_exit(&dbg.lock);
	kmemi_gate_set(dbg.flags & DBG_ITEMS);
	return dbg.flags;
}

/* ---- consistency checks (section 6) ---- */

void
kmemi_check_init(void)
{
	(void)dbg_parse(kmem_prim_getenv("KMEM_DEBUG"), false);
	__atomic_store_n(&kmemi_check_every, dbg.check_every, __ATOMIC_RELAXED);
}

bool
kmemi_check_due(uint64_t work)
{
	uint64_t every = __atomic_load_n(&kmemi_check_every, __ATOMIC_RELAXED);

	if (work > KMEMI_CHECK_WORK)
		every *= work / KMEMI_CHECK_WORK;
	if (every <= 1)
		return every == 1;
	return atomic_fetch_add_explicit(
		   &dbg.check_tick, 1, memory_order_relaxed) %
	    every ==
	    0;
}

void
kmemi_check_fail(const char *checker, const char *what, const char *name,
    const char *fmt, ...)
{
	char detail[400];
	va_list ap;

	va_start(ap, fmt);
	kmem_vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	kmem_panic("%s(%s '%s'): %s", checker, what, name, detail);
}

void
kmemi_debug_fork(int phase)
{
	if (phase == KMEMI_FORK_PREPARE)
		kmem_mutex_enter(&dbg.lock);
	else
		kmem_mutex_exit(&dbg.lock);
}

unsigned int
kmem_debug_flags(void)
{
	kmem_init();
	return dbg.flags;
}

/* ---- the record table (dbg.lock held) ---- */

static inline size_t
dbg_hash(uintptr_t a)
{
	return (size_t)((a >> 3) * 0x9e3779b97f4a7c15ull >> 17);
}

/* The record of a, or NULL. */
static struct dbg_rec *
dbg_find(uintptr_t a)
{
	size_t i;

	if (dbg.tab == NULL)
		return NULL;
	for (i = dbg_hash(a) & dbg.tabmask;; i = (i + 1) & dbg.tabmask) {
		struct dbg_rec *r = &dbg.tab[i];

		if (r->r_state == REC_EMPTY)
			return NULL;
		if (r->r_state != REC_DEAD && r->r_addr == a)
			return r;
	}
}

static void
dbg_resize(const char *fn, size_t size)
{
	size_t n = dbg.tab == NULL ? 4096 : (dbg.tabmask + 1) * 2;
	size_t bytes = n * sizeof(struct dbg_rec), i, j;
	struct dbg_rec *old = dbg.tab, *nt;
	size_t oldn = dbg.tab == NULL ? 0 : dbg.tabmask + 1;
	void *m;

	/* Mostly tombstones: rebuilt at the same size. */
	if (old != NULL && (dbg.used - dbg.ndead) * 4 < oldn) {
		n = oldn;
		bytes = n * sizeof(struct dbg_rec);
	}
	if (kmemi_meta_alloc(&kmemi_dom0, bytes, VM_NOSLEEP, &m) != 0)
		kmem_panic("%s(%zu): KMEM_DEBUG: no memory for the record "
			   "table (%zu bytes)",
		    fn, size, bytes);
	nt = m;
	dbg.used = 0;
	dbg.ndead = 0;
	for (i = 0; i < oldn; i++) {
		if (old[i].r_state < REC_LIVE)
			continue;
		for (j = dbg_hash(old[i].r_addr) & (n - 1);
		     nt[j].r_state != REC_EMPTY; j = (j + 1) & (n - 1))
			;
		nt[j] = old[i];
		dbg.used++;
	}
	if (old != NULL)
		kmemi_meta_free(&kmemi_dom0, old, dbg.tabbytes);
	dbg.tab = nt;
	dbg.tabmask = n - 1;
	dbg.tabbytes = bytes;
}

/* The record of a, made if missing (state REC_EMPTY then). */
static struct dbg_rec *
dbg_insert(const char *fn, size_t size, uintptr_t a)
{
	struct dbg_rec *r, *dead = NULL;
	size_t i;

	if ((r = dbg_find(a)) != NULL)
		return r;
	if (dbg.tab == NULL || (dbg.used + 1) * 2 > dbg.tabmask + 1)
		dbg_resize(fn, size);
	for (i = dbg_hash(a) & dbg.tabmask;; i = (i + 1) & dbg.tabmask) {
		r = &dbg.tab[i];
		if (r->r_state == REC_DEAD && dead == NULL)
			dead = r;
		if (r->r_state == REC_EMPTY)
			break;
	}
	if (dead != NULL) {
		r = dead;
		dbg.ndead--;
	} else {
		dbg.used++;
	}
	memset(r, 0, sizeof *r);
	r->r_addr = a;
	return r;
}

static void
dbg_remove(struct dbg_rec *r)
{
	r->r_state = REC_DEAD; /* a tombstone: probes go on past it */
	dbg.ndead++;
}

void
kmemi_debug_forget(const void *page, size_t size)
{
	uintptr_t a = (uintptr_t)page, end = a + size;
	struct dbg_rec *r;

	kmem_mutex_enter(&dbg.lock);
	for (; a < end && dbg.tab != NULL; a += 8)
		if ((r = dbg_find(a)) != NULL && r->r_state != REC_LIVE)
			dbg_remove(r);
	kmem_mutex_exit(&dbg.lock);
}

/* ---- reports ---- */

/* "fn(p, size)", or "fn(p)" from free(3) and friends (unsized). */
static const char *
dbg_call(
    char *buf, size_t n, const char *fn, const void *p, size_t size, bool sized)
{
	if (sized)
		kmem_snprintf(buf, n, "%s(%p, %zu)", fn, p, size);
	else
		kmem_snprintf(buf, n, "%s(%p)", fn, p);
	return buf;
}

static const char *
dbg_name(const struct dbg_rec *r)
{
	return r->r_raw == 0 ? "guard" : kmemi_size_name(r->r_raw);
}

/* No record for p: say what p is, and abort. */
static _Noreturn void
dbg_foreign(const char *fn, void *p, size_t size, bool sized)
{
	unsigned int i, n = kmemi_nclasses();
	char call[96];
	uintptr_t a;

	dbg_call(call, sizeof call, fn, p, size, sized);

	for (i = 0; i < n; i++) {
		pool_cache_t pc = kmemi_class_cache(i);
		/* The pool is a pool_cache's first member (pool_cache.c). */
		struct pool *pp = (struct pool *)(void *)pc;
		void *item;
		bool out;

		if (pc == NULL || !kmemi_pool_item_of(pp, p, &item, &out))
			continue;
		if (item != p) {
			const struct dbg_rec *r = dbg_find((uintptr_t)item);

			kmem_panic("%s: interior pointer, %zu bytes into "
				   "object %p of cache %s%s",
			    call, (size_t)((char *)p - (char *)item), item,
			    pp->pr_wchan,
			    r != NULL && r->r_state == REC_LIVE ? ""
								: " (freed)");
		}
		/*
		 * Out of the pool or not, an object without a record was
		 * never handed out while debugging was on: it is free, in
		 * the pool or in a cache group.
		 */
		(void)out;
		kmem_panic("%s: pointer not allocated by kmem (a free object "
			   "of cache %s)",
		    call, pp->pr_wchan);
	}
	/* Inside a record's object (guard slots, large blocks)? */
	for (a = (uintptr_t)p & ~(uintptr_t)7, i = 0; a > 0 && i < 8192;
	     a -= 8, i++) {
		const struct dbg_rec *r = dbg_find(a);

		if (r == NULL || r->r_state == REC_DEAD)
			continue;
		if ((uintptr_t)p - a < r->r_owned)
			kmem_panic("%s: interior pointer, %zu bytes into "
				   "object %p of cache %s%s",
			    call, (size_t)((uintptr_t)p - a), (void *)a,
			    dbg_name(r),
			    r->r_state == REC_LIVE ? "" : " (freed)");
		break;
	}
	kmem_panic("%s: pointer not allocated by kmem", call);
}

/* ---- guard slots ---- */

static size_t
dbg_align(size_t size)
{
	size_t ps = kmem_prim_page_size();

	if (size % ps == 0)
		return ps;
	return size < 16 ? 8 : 16;
}

/*
 * The slot of a guarded object at p owning "owned" bytes, asked aligned to
 * "align" (0: its natural alignment): its first data page, the data
 * pages' length, and the whole reservation (the lower guard is a page, or
 * "align" bytes when that is more, so that the object can start a page).
 */
static void
dbg_guard_geom(uintptr_t p, size_t owned, size_t align, uintptr_t *basep,
    size_t *datap, uintptr_t *resvp, size_t *lenp)
{
	size_t ps = kmem_prim_page_size();
	size_t lower = align > ps ? align : ps;

	*datap = kmem_align_up(owned, ps);
	*basep = p + owned - *datap;
	*resvp = *basep - lower;
	*lenp = lower + *datap + ps;
}

/* The bytes a guarded object of "size" owns, aligned to "align". */
static bool
dbg_guard_owned(size_t size, size_t align, size_t *ownedp)
{
	size_t a = dbg_align(size);

	return kmem_align_up_ok(size, align > a ? align : a, ownedp);
}

static void *
dbg_guard_alloc(size_t size, size_t align, size_t *ownedp)
{
	size_t ps = kmem_prim_page_size();
	size_t asz, data, len;
	uintptr_t base, resv;
	void *m;

	if (!dbg_guard_owned(size, align, &asz) ||
	    !kmem_align_up_ok(asz, ps, &data) || data + 2 * ps < data ||
	    data + 2 * ps + (align > ps ? align : 0) < data)
		return NULL;
	/*
	 * [guard][data pages, object right-aligned][guard page]; the lower
	 * guard is align bytes when align is more than a page, and the
	 * reservation is aligned to it, so that the object starts aligned.
	 */
	dbg_guard_geom(0, asz, align, &base, &data, &resv, &len);
	if (kmem_prim_reserve(len, align > ps ? align : 0, &m) != 0)
		return NULL;
	base = (uintptr_t)m + (len - ps - data);
	if (kmem_prim_commit((void *)base, data) != 0) {
		kmem_prim_release(m, len);
		return NULL;
	}
	*ownedp = asz;
	return (void *)(base + data - asz);
}

/* Quarantine a freed guard slot; the oldest leaves.  dbg.lock held. */
static void
dbg_guard_quarantine(const char *fn, size_t size, void *base, size_t len,
    uintptr_t addr, struct dbg_quar *evicted)
{
	struct dbg_quar *q;
	struct dbg_rec *r;

	evicted->q_base = NULL;
	if (dbg.quar == NULL) {
		void *m;

		dbg.qbytes = kmem_align_up(
		    dbg.guard_depth * sizeof *dbg.quar, kmem_prim_page_size());
		if (kmemi_meta_alloc(&kmemi_dom0, dbg.qbytes, VM_NOSLEEP, &m) !=
		    0)
			kmem_panic("%s(%p, %zu): KMEM_DEBUG=guard: no memory "
				   "for the quarantine",
			    fn, (void *)addr, size);
		dbg.quar = m;
	}
	if (dbg.qlen == dbg.guard_depth) {
		q = &dbg.quar[dbg.qhead];
		*evicted = *q;
		if ((r = dbg_find(q->q_addr)) != NULL && r->r_state != REC_LIVE)
			dbg_remove(r);
		dbg.qhead = (dbg.qhead + 1) % dbg.guard_depth;
		dbg.qlen--;
	}
	q = &dbg.quar[(dbg.qhead + dbg.qlen) % dbg.guard_depth];
	q->q_base = base;
	q->q_len = len;
	q->q_addr = addr;
	dbg.qlen++;
}

/* ---- alloc / free ---- */

/*
 * "size" bytes aligned to "align" (0: kmem's natural alignment; else a
 * power of two, malloc's at least 16), recorded.
 */
static void *
dbg_alloc(const char *fn, size_t size, size_t align, km_flag_t flags)
{
	bool guard = (dbg.flags & KMEM_DEBUG_GUARD) != 0;
	size_t raw = size, owned, ps = kmem_prim_page_size();
	struct dbg_rec *r;
	uintptr_t a, bad;
	void *p;

	if (guard) {
		p = dbg_guard_alloc(size, align, &owned);
		if (p == NULL) {
			if (flags & KM_NOSLEEP)
				return NULL;
			kmem_panic("%s(%zu, KM_SLEEP): KMEM_DEBUG=guard: out "
				   "of address space",
			    fn, size);
		}
		raw = 0;
	} else {
		/*
		 * A redzone needs a byte more; a page multiple takes a page
		 * more, so that it stays page aligned (its class would not).
		 */
		if ((dbg.flags & KMEM_DEBUG_REDZONE) && size % ps == 0 &&
		    raw <= SIZE_MAX - ps)
			raw += ps;
		else if ((dbg.flags & KMEM_DEBUG_REDZONE) && raw < SIZE_MAX)
			raw++;
		/* The raw size recorded is one that frees what was used. */
		p = align == 0
		    ? kmemi_raw_alloc(fn, raw, flags)
		    : kmemi_raw_alloc_aligned(fn, &raw, align, flags);
		if (p == NULL)
			return NULL;
		owned = kmem_usable_size(raw);
	}
	a = (uintptr_t)p;
	kmem_mutex_enter(&dbg.lock);
	r = dbg_insert(fn, size, a);
	if (r->r_state == REC_POISONED &&
	    (bad = dbg_check_poison(a, a + r->r_owned)) != 0)
		kmem_panic("%s(%zu): write after free: object %p offset %zu: "
			   "expected 0x%02x, found 0x%02x (cache %s)",
		    fn, size, p, (size_t)(bad - a), dbg_pat(bad),
		    *(const uint8_t *)bad, dbg_name(r));
	r->r_state = REC_LIVE;
	r->r_size = size;
	r->r_raw = raw;
	r->r_owned = owned;
	r->r_align = guard ? align : 0;
	kmem_mutex_exit(&dbg.lock);
	if (guard) {
		uintptr_t base, resv;
		size_t data, len;

		dbg_guard_geom(a, owned, align, &base, &data, &resv, &len);
		dbg_fill(base, a);
		dbg_fill(a + size, a + owned);
	} else if (dbg.flags & KMEM_DEBUG_REDZONE) {
		dbg_fill(a + size, a + owned);
	}
	return p;
}

void *
kmemi_debug_alloc(const char *fn, size_t size, km_flag_t flags)
{
	return dbg_alloc(fn, size, 0, flags);
}

void *
kmemi_debug_alloc_aligned(
    const char *fn, size_t size, size_t align, km_flag_t flags)
{
	return dbg_alloc(fn, size, align < 16 ? 16 : align, flags);
}

/* The live record of p (dbg.lock held); anything else is reported. */
static struct dbg_rec *
dbg_live(const char *fn, void *p, size_t size, bool sized)
{
	struct dbg_rec *r = dbg_find((uintptr_t)p);
	char call[96];

	if (r == NULL || r->r_state == REC_DEAD)
		dbg_foreign(fn, p, size, sized);
	if (r->r_state != REC_LIVE)
		kmem_panic("%s: double free (allocated size %zu, cache %s)",
		    dbg_call(call, sizeof call, fn, p, size, sized), r->r_size,
		    dbg_name(r));
	if (sized && r->r_size != size)
		kmem_panic("%s(%p, %zu) != allocated size %zu", fn, p, size,
		    r->r_size);
	return r;
}

size_t
kmemi_debug_usable(const char *fn, void *p)
{
	size_t size;

	kmem_mutex_enter(&dbg.lock);
	size = dbg_live(fn, p, 0, false)->r_size;
	kmem_mutex_exit(&dbg.lock);
	return size;
}

static void
dbg_free(const char *fn, void *p, size_t size, bool sized)
{
	uintptr_t a = (uintptr_t)p, bad, base = 0, resv = 0;
	struct dbg_quar evicted = {NULL, 0, 0};
	struct dbg_rec *r;
	size_t raw, data = 0, len = 0;
	char call[96];

	kmem_mutex_enter(&dbg.lock);
	r = dbg_live(fn, p, size, sized);
	size = r->r_size;
	if (r->r_raw == 0 || (dbg.flags & KMEM_DEBUG_REDZONE)) {
		bad = dbg_check(a + size, a + r->r_owned);
		if (bad != 0)
			kmem_panic("%s: redzone overwritten at offset %zu: "
				   "expected 0x%02x, found 0x%02x (cache %s)",
			    dbg_call(call, sizeof call, fn, p, size, sized),
			    (size_t)(bad - a), dbg_rzpat(bad, a + size),
			    *(const uint8_t *)bad, dbg_name(r));
	}
	raw = r->r_raw;
	if (raw == 0) {
		dbg_guard_geom(
		    a, r->r_owned, r->r_align, &base, &data, &resv, &len);
		if ((bad = dbg_check(base, a)) != 0)
			kmem_panic("%s: memory before the object overwritten "
				   "at offset -%zu: expected 0x%02x, found "
				   "0x%02x (guard)",
			    dbg_call(call, sizeof call, fn, p, size, sized),
			    (size_t)(a - bad), dbg_rzpat(bad, base),
			    *(const uint8_t *)bad);
		r->r_state = REC_FREED;
		kmem_prim_decommit((void *)base, data);
		dbg_guard_quarantine(fn, size, (void *)resv, len, a, &evicted);
	} else if (dbg.flags & KMEM_DEBUG_POISON) {
		dbg_poison(a, a + r->r_owned);
		/*
		 * A freed large block is the page arena's at once, which may
		 * hand its pages to anything (pool pages, kmem's own
		 * metadata) or purge them: filled, never checked.  Cache
		 * objects stay in their pool page, and a page that goes back
		 * takes its records with it (kmemi_debug_forget).
		 */
		r->r_state = raw <= KMEM_CACHE_MAX ? REC_POISONED : REC_FREED;
	} else {
		r->r_state = REC_FREED;
	}
	kmem_mutex_exit(&dbg.lock);
	if (evicted.q_base != NULL)
		kmem_prim_release(evicted.q_base, evicted.q_len);
	if (raw != 0)
		kmemi_raw_free(fn, p, raw);
}

void
kmemi_debug_free(const char *fn, void *p, size_t size)
{
	dbg_free(fn, p, size, true);
}

void
kmemi_debug_free_unsized(const char *fn, void *p)
{
	dbg_free(fn, p, 0, false);
}
