/*
 * pool_cache.c -- unit tests of pool_cache(9): the construction rules
 * (ctor when an object enters the cache layer from the pool, dtor when it
 * leaves), failing constructors, paddr, group sizes, invalidation and
 * reclaim (per-CPU groups included), the pool forwarders, magazines=off,
 * working-set reaping, kmem_reap_all, statistics and the vmstat -C table.
 * Every conservation check also runs kmem_pool_cache_check.
 *
 * Every object carries a magic the constructor writes and the destructor
 * clears; the constructor refuses an object that is already constructed
 * and the destructor one that is not, so a double construction or a
 * destruction of a raw object fails the test at once.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <kmem/pool.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "t.h"

#define MAGIC_LIVE 0x4c495645c0ffee11ull
#define MAGIC_DEAD 0x44454144deadbeefull

struct obj {
	uint64_t magic;
	uint64_t serial; /* ctor call that built it */
	char payload[48];
};

struct counters {
	unsigned long nctor, ndtor, nfail;
	unsigned long fail_next; /* fail this many ctor calls */
	int last_flags;
};

static int
obj_ctor(void *arg, void *v, int flags)
{
	struct counters *c = arg;
	struct obj *o = v;

	if (o->magic == MAGIC_LIVE)
		T_FAIL("ctor: object %p is already constructed", v);
	c->last_flags = flags;
	if (c->fail_next > 0) {
		c->fail_next--;
		c->nfail++;
		return ENOMEM;
	}
	o->magic = MAGIC_LIVE;
	o->serial = ++c->nctor;
	memset(o->payload, 0xa5, sizeof o->payload);
	return 0;
}

static void
obj_dtor(void *arg, void *v)
{
	struct counters *c = arg;
	struct obj *o = v;

	if (o->magic != MAGIC_LIVE)
		T_FAIL("dtor: object %p is not constructed (magic %#llx)", v,
		    (unsigned long long)o->magic);
	o->magic = MAGIC_DEAD;
	c->ndtor++;
}

static void
check_live(const struct obj *o)
{
	size_t i;

	T_ASSERT(o != NULL);
	T_EQ(o->magic, MAGIC_LIVE);
	for (i = 0; i < sizeof o->payload; i++)
		T_EQ((unsigned char)o->payload[i], 0xa5);
}

static pool_cache_t
mkcache(const char *name, unsigned int flags, struct counters *c)
{
	pool_cache_t pc;

	memset(c, 0, sizeof *c);
	pc = pool_cache_init(sizeof(struct obj), 0, 0, flags, name, NULL,
	    IPL_NONE, obj_ctor, obj_dtor, c);
	T_ASSERT(pc != NULL);
	return pc;
}

static struct kmem_pool_stats
pcstats(pool_cache_t pc)
{
	struct kmem_pool_stats st;

	memset(&st, 0xff, sizeof st);
	T_EQ(kmem_pool_cache_stats(pc, &st), 0);
	T_EQ(st.ps_size, sizeof st);
	T_ASSERT(st.ps_cached);
	return st;
}

/* constructed - destructed == cached + out; the pool agrees. */
static void
check_conservation(pool_cache_t pc, const struct counters *c, size_t held)
{
	struct kmem_pool_stats st = pcstats(pc);

	kmem_pool_cache_check(pc); /* groups, depot, pool: its checker */
	T_EQ(c->nctor - c->ndtor, st.ps_cached_objects + held);
	T_EQ(st.ps_nout, st.ps_cached_objects + held);
	T_EQ(st.ps_nget - st.ps_nput, st.ps_nout);
	/* Every pool get was constructed (or failed), every put destructed. */
	T_EQ(st.ps_nget, c->nctor + c->nfail);
	T_EQ(st.ps_nput, c->ndtor + c->nfail);
	T_EQ(pool_cache_nget(pc), st.ps_nget);
	T_EQ(pool_cache_nput(pc), st.ps_nput);
	T_LE(st.ps_depothit + st.ps_depotmiss, st.ps_cpumiss);
}

/* ---- construction rules ---- */

static void
test_ctor_once(void)
{
	struct counters c;
	pool_cache_t pc = mkcache("t-once", 0, &c);
	struct obj *o, *o2;

	o = pool_cache_get(pc, PR_WAITOK);
	check_live(o);
	T_EQ(c.nctor, 1);
	T_EQ(c.ndtor, 0);
	T_EQ(c.last_flags, PR_WAITOK);
	T_EQ(o->serial, 1);
	check_conservation(pc, &c, 1);

	/* Cached, still constructed: the next get returns it, no ctor. */
	o->payload[0] = (char)0xa5;
	pool_cache_put(pc, o);
	T_EQ(c.ndtor, 0);
	T_EQ(pcstats(pc).ps_cached_objects, 1);
	check_conservation(pc, &c, 0);
	o2 = pool_cache_get(pc, PR_NOWAIT);
	T_ASSERT(o2 == o);
	check_live(o2);
	T_EQ(c.nctor, 1);
	T_EQ(o2->serial, 1);

	/* Many round trips: one construction. */
	for (int i = 0; i < 1000; i++) {
		pool_cache_put(pc, o2);
		o2 = pool_cache_get(pc, PR_WAITOK);
		check_live(o2);
	}
	T_EQ(c.nctor, 1);
	T_EQ(c.ndtor, 0);
	pool_cache_put(pc, o2);
	check_conservation(pc, &c, 0);
	pool_cache_destroy(pc);
	/* Destroy destructs what was cached. */
	T_EQ(c.ndtor, 1);
}

static void
test_ctor_fail(void)
{
	struct counters c;
	pool_cache_t pc = mkcache("t-ctorfail", 0, &c);
	struct kmem_pool_stats st0, st1;
	struct obj *o, *held[4];
	int i;

	for (i = 0; i < 4; i++)
		held[i] = pool_cache_get(pc, PR_WAITOK);
	st0 = pcstats(pc);
	T_EQ(st0.ps_nout, 4);

	/* A failing ctor: NULL (even with PR_WAITOK), nothing leaks. */
	c.fail_next = 1;
	o = pool_cache_get(pc, PR_WAITOK);
	T_ASSERT(o == NULL);
	T_EQ(c.nfail, 1);
	st1 = pcstats(pc);
	T_EQ(st1.ps_nout, st0.ps_nout);
	T_EQ(st1.ps_nget, st0.ps_nget + 1);
	T_EQ(st1.ps_nput, st0.ps_nput + 1);
	T_EQ(c.ndtor, 0);

	c.fail_next = 3;
	for (i = 0; i < 3; i++)
		T_ASSERT(pool_cache_get(pc, PR_NOWAIT) == NULL);
	T_EQ(pcstats(pc).ps_nout, 4);
	check_conservation(pc, &c, 4);

	/* The next get constructs again; the failed item is reused raw. */
	o = pool_cache_get(pc, PR_NOWAIT);
	check_live(o);
	T_EQ(c.nctor, 5);
	pool_cache_put(pc, o);

	/* A cached object is served without the (failing) ctor. */
	c.fail_next = 100;
	o = pool_cache_get(pc, PR_WAITOK);
	check_live(o);
	T_EQ(c.nfail, 4);
	c.fail_next = 0;
	pool_cache_put(pc, o);
	for (i = 0; i < 4; i++)
		pool_cache_put(pc, held[i]);
	check_conservation(pc, &c, 0);
	pool_cache_destroy(pc);
	T_EQ(c.nctor, c.ndtor);
}

static void
test_paddr(void)
{
	struct counters c;
	pool_cache_t pc = mkcache("t-paddr", 0, &c);
	struct obj *o[10];
	paddr_t pa;
	int i;

	/* Fresh from the pool: POOL_PADDR_INVALID. */
	pa = 0;
	o[0] = pool_cache_get_paddr(pc, PR_WAITOK, &pa);
	check_live(o[0]);
	T_EQ(pa, POOL_PADDR_INVALID);

	/* The paddr stored by put comes back with its object. */
	pool_cache_put_paddr(pc, o[0], (paddr_t)0x1000);
	pa = 0;
	T_ASSERT(pool_cache_get_paddr(pc, PR_WAITOK, &pa) == o[0]);
	T_EQ(pa, 0x1000);

	for (i = 1; i < 10; i++)
		o[i] = pool_cache_get(pc, PR_WAITOK);
	for (i = 0; i < 10; i++)
		pool_cache_put_paddr(pc, o[i], (paddr_t)(i + 1) * 0x10000);
	/* LIFO: each object with its own paddr. */
	for (i = 9; i >= 0; i--) {
		struct obj *p = pool_cache_get_paddr(pc, PR_WAITOK, &pa);

		check_live(p);
		T_ASSERT(p == o[i]);
		T_EQ(pa, (paddr_t)(i + 1) * 0x10000);
	}
	/* pool_cache_put stores POOL_PADDR_INVALID. */
	pool_cache_put(pc, o[3]);
	pa = 0;
	T_ASSERT(pool_cache_get_paddr(pc, PR_WAITOK, &pa) == o[3]);
	T_EQ(pa, POOL_PADDR_INVALID);
	/* pool_cache_get ignores the paddr. */
	pool_cache_put_paddr(pc, o[3], 0x42);
	T_ASSERT(pool_cache_get(pc, PR_WAITOK) == o[3]);

	for (i = 0; i < 10; i++)
		pool_cache_put(pc, o[i]);
	check_conservation(pc, &c, 0);
	pool_cache_destroy(pc);
	T_EQ(c.ndtor, c.nctor);
}

static void
test_pr_zero(void)
{
	pool_cache_t pc = pool_cache_init(
	    200, 0, 0, 0, "t-zero", NULL, IPL_NONE, NULL, NULL, NULL);
	unsigned char *p, *q;
	size_t i;

	p = pool_cache_get(pc, PR_WAITOK);
	T_ASSERT(p != NULL);
	memset(p, 0x5a, 200);
	pool_cache_put(pc, p);
	q = pool_cache_get(pc, PR_WAITOK | PR_ZERO);
	T_ASSERT(q == p);
	for (i = 0; i < 200; i++)
		T_EQ(q[i], 0);
	pool_cache_put(pc, q);
	pool_cache_destroy(pc);
}

/* ---- group sizes ---- */

static void
put_burst(pool_cache_t pc, size_t n)
{
	void **v = calloc(n, sizeof *v);
	size_t i;

	T_ASSERT(v != NULL);
	for (i = 0; i < n; i++) {
		v[i] = pool_cache_get(pc, PR_WAITOK);
		check_live(v[i]);
	}
	for (i = 0; i < n; i++)
		pool_cache_put(pc, v[i]);
	free(v);
}

static void
test_groupsize(void)
{
	struct counters cn, cl;
	pool_cache_t pn = mkcache("t-normal", 0, &cn);
	pool_cache_t pl = mkcache("t-large", PR_LARGECACHE, &cl);
	struct kmem_pool_stats sn, sl;
	unsigned int ncpu;

	T_EQ(pcstats(pn).ps_groupsize, 15);
	T_EQ(pcstats(pl).ps_groupsize, 63);

	/*
	 * 1000 objects through each: beyond the CPU layer (two groups per
	 * CPU) every object sits in a full depot group of the cache's size.
	 */
	put_burst(pn, 1000);
	put_burst(pl, 1000);
	sn = pcstats(pn);
	sl = pcstats(pl);
	T_EQ(sn.ps_cached_objects, 1000);
	T_EQ(sl.ps_cached_objects, 1000);
	T_EQ(sn.ps_groupsize, 15); /* no contention, no resize */
	T_EQ(sl.ps_groupsize, 63);
	ncpu = (unsigned)sysconf(_SC_NPROCESSORS_CONF);
	if (ncpu < 1)
		ncpu = 1;
	T_LE(sn.ps_nfull * 15, 1000);
	T_GE(sn.ps_nfull * 15 + 2 * 15 * ncpu, 1000);
	T_LE(sl.ps_nfull * 63, 1000);
	T_GE(sl.ps_nfull * 63 + 2 * 63 * ncpu, 1000);
	check_conservation(pn, &cn, 0);
	check_conservation(pl, &cl, 0);
	pool_cache_destroy(pn);
	pool_cache_destroy(pl);
	T_EQ(cn.nctor, cn.ndtor);
	T_EQ(cl.nctor, cl.ndtor);
}

/* ---- destruct, invalidate, reclaim ---- */

static void
test_destruct_object(void)
{
	struct counters c;
	pool_cache_t pc = mkcache("t-destruct", 0, &c);
	struct obj *o = pool_cache_get(pc, PR_WAITOK);
	struct kmem_pool_stats st;

	check_live(o);
	pool_cache_destruct_object(pc, o);
	T_EQ(c.ndtor, 1);
	st = pcstats(pc);
	T_EQ(st.ps_nout, 0);
	T_EQ(st.ps_cached_objects, 0);
	check_conservation(pc, &c, 0);
	/* The next get constructs afresh (the item went back raw). */
	o = pool_cache_get(pc, PR_WAITOK);
	check_live(o);
	T_EQ(c.nctor, 2);
	pool_cache_put(pc, o);
	pool_cache_destroy(pc);
	T_EQ(c.ndtor, 2);
}

static void
test_invalidate(void)
{
	struct counters c;
	pool_cache_t pc = mkcache("t-invalidate", 0, &c);
	struct kmem_pool_stats st;
	struct obj *o[3], *p;
	int i;

	/* Depot and CPU layer both populated. */
	put_burst(pc, 500);
	T_EQ(c.nctor, 500);
	st = pcstats(pc);
	T_EQ(st.ps_cached_objects, 500);
	T_GT(st.ps_nfull, 0);
	pool_cache_invalidate(pc);
	T_EQ(c.ndtor, 500);
	st = pcstats(pc);
	T_EQ(st.ps_cached_objects, 0);
	T_EQ(st.ps_nfull, 0);
	T_EQ(st.ps_nout, 0);
	check_conservation(pc, &c, 0);

	/* Only the CPU layer: three objects in a per-CPU group. */
	for (i = 0; i < 3; i++)
		o[i] = pool_cache_get(pc, PR_WAITOK);
	T_EQ(c.nctor, 503);
	for (i = 0; i < 3; i++)
		pool_cache_put(pc, o[i]);
	st = pcstats(pc);
	T_EQ(st.ps_cached_objects, 3);
	T_EQ(st.ps_nfull, 0);
	pool_cache_invalidate(pc);
	T_EQ(c.ndtor, 503);
	T_EQ(pcstats(pc).ps_cached_objects, 0);
	/* Nothing stale survives: the next get constructs. */
	p = pool_cache_get(pc, PR_WAITOK);
	check_live(p);
	T_EQ(c.nctor, 504);
	/* Invalidating with objects out leaves them alone. */
	pool_cache_invalidate(pc);
	check_live(p);
	T_EQ(c.ndtor, 503);
	check_conservation(pc, &c, 1);
	pool_cache_put(pc, p);
	pool_cache_invalidate(pc);
	pool_cache_invalidate(pc); /* idempotent */
	T_EQ(c.ndtor, 504);
	check_conservation(pc, &c, 0);
	pool_cache_destroy(pc);
	T_EQ(c.ndtor, 504);
}

static unsigned long hook_calls;
static int hook_flags;
static void *hook_arg_seen;

static void
drain_hook(void *arg, int flags)
{
	hook_calls++;
	hook_flags = flags;
	hook_arg_seen = arg;
}

static void
test_reclaim(void)
{
	struct counters c;
	pool_cache_t pc = mkcache("t-reclaim", 0, &c);
	struct kmem_pool_stats st;
	int dummy;

	/* Pages stay while younger than pool_idle_ms. */
	T_EQ(kmem_options_parse("KMEM_OPTIONS", "pool_idle_ms=600000"), 0);
	hook_calls = 0;
	pool_cache_set_drain_hook(pc, drain_hook, &dummy);
	put_burst(pc, 400);
	T_GT(pcstats(pc).ps_npages, 0);
	(void)pool_cache_reclaim(pc);
	T_EQ(hook_calls, 1);
	T_EQ(hook_flags, PR_NOWAIT);
	T_ASSERT(hook_arg_seen == &dummy);
	/* Reclaim invalidates: everything cached is destroyed... */
	T_EQ(c.ndtor, 400);
	st = pcstats(pc);
	T_EQ(st.ps_cached_objects, 0);
	T_EQ(st.ps_nout, 0);
	/* ...but the empty pages are too young to go. */
	T_GT(st.ps_npages, 0);
	check_conservation(pc, &c, 0);

	/* Idle pages go at once with pool_idle_ms=0. */
	T_EQ(kmem_options_parse("KMEM_OPTIONS", "pool_idle_ms=0"), 0);
	T_ASSERT(pool_cache_reclaim(pc));
	T_EQ(pcstats(pc).ps_npages, 0);
	T_EQ(hook_calls, 2);
	T_ASSERT(!pool_cache_reclaim(pc)); /* nothing left to free */

	put_burst(pc, 300);
	T_EQ(c.nctor, 700);
	/* With pool_idle_ms=0 pages go as they empty, in the invalidate. */
	(void)pool_cache_reclaim(pc);
	T_EQ(c.ndtor, 700);
	st = pcstats(pc);
	T_EQ(st.ps_npages, 0);
	T_GT(st.ps_npagefree, 0);
	T_EQ(st.ps_npagefree, st.ps_npagealloc);
	pool_cache_set_drain_hook(pc, NULL, NULL);
	pool_cache_destroy(pc);
}

/* ---- forwarders ---- */

static void
test_forwarders(void)
{
	struct counters c;
	pool_cache_t pc = mkcache("t-forward", 0, &c);
	struct kmem_pool_stats st;
	struct obj *o[20], *p;
	cpu_set_t saved;
	unsigned int ipp;
	int i;

	ipp = pcstats(pc).ps_itemsperpage;
	T_GT(ipp, 1);

	/*
	 * nget/nput count the pool layer only.  On one CPU: a thread that
	 * migrates between its puts and gets finds another CPU's groups
	 * empty and goes to the pool (this failed on a loaded machine).
	 */
	if (!t_pin_here(&saved)) {
		t_skip("cannot pin the thread to a CPU");
		pool_cache_destroy(pc);
		return;
	}
	T_EQ(pool_cache_nget(pc), 0);
	for (i = 0; i < 5; i++)
		o[i] = pool_cache_get(pc, PR_WAITOK);
	T_EQ(pool_cache_nget(pc), 5);
	for (i = 0; i < 5; i++)
		pool_cache_put(pc, o[i]);
	T_EQ(pool_cache_nput(pc), 0);
	for (i = 0; i < 5; i++)
		o[i] = pool_cache_get(pc, PR_WAITOK);
	T_EQ(pool_cache_nget(pc), 5); /* all from the cache */
	for (i = 0; i < 5; i++)
		pool_cache_put(pc, o[i]);
	t_unpin(&saved);
	pool_cache_invalidate(pc);
	T_EQ(pool_cache_nput(pc), 5);

	/* prime: pages for n items, kept as the minimum. */
	pool_cache_prime(pc, (int)(2 * ipp + 1));
	st = pcstats(pc);
	T_EQ(st.ps_minpages, 3);
	T_GE(st.ps_npages, 3);
	T_GE(st.ps_nitems, 2 * ipp + 1);
	T_EQ(c.nctor, 5); /* pages, not objects */
	kmem_reap_all();
	T_GE(pcstats(pc).ps_npages, 3); /* the minimum stays */
	pool_cache_prime(pc, 0);
	kmem_reap_all();
	T_EQ(pcstats(pc).ps_npages, 0);

	/* setlowat: free items kept in pages. */
	pool_cache_setlowat(pc, (int)ipp + 2);
	st = pcstats(pc);
	T_GE(st.ps_nitems, ipp + 2);
	T_GE(st.ps_npages, 2);
	kmem_reap_all();
	T_GE(pcstats(pc).ps_nitems, ipp + 2);
	pool_cache_setlowat(pc, 0);

	/* sethiwat: free items above it go back at once. */
	pool_cache_sethiwat(pc, 0);
	T_EQ(pcstats(pc).ps_npages, 0);
	pool_cache_sethiwat(pc, INT32_MAX);

	/* sethardlimit: counts pool items, cached ones included. */
	hook_calls = 0;
	pool_cache_set_drain_hook(pc, drain_hook, pc);
	pool_cache_sethardlimit(pc, 10, NULL, 0);
	for (i = 0; i < 10; i++) {
		o[i] = pool_cache_get(pc, PR_NOWAIT);
		check_live(o[i]);
	}
	T_ASSERT(pool_cache_get(pc, PR_NOWAIT) == NULL);
	T_EQ(hook_calls, 1);
	T_EQ(hook_flags, PR_NOWAIT);
	T_ASSERT(hook_arg_seen == pc);
	T_ASSERT(pool_cache_get(pc, PR_WAITOK | PR_LIMITFAIL) == NULL);
	T_EQ(hook_calls, 2);
	/* A cached object is not limited. */
	pool_cache_put(pc, o[9]);
	p = pool_cache_get(pc, PR_NOWAIT);
	T_ASSERT(p == o[9]);
	T_EQ(pcstats(pc).ps_nfail, 2);
	/* Raising the limit lets the pool grow again. */
	pool_cache_sethardlimit(pc, 20, NULL, 0);
	for (i = 10; i < 20; i++) {
		o[i] = pool_cache_get(pc, PR_NOWAIT);
		check_live(o[i]);
	}
	T_ASSERT(pool_cache_get(pc, PR_NOWAIT) == NULL);
	for (i = 0; i < 20; i++)
		pool_cache_put(pc, o[i]);
	check_conservation(pc, &c, 0);
	pool_cache_set_drain_hook(pc, NULL, NULL);
	pool_cache_destroy(pc);
	T_EQ(c.nctor, c.ndtor);
}

static void
hardlimit_warn_child(void *arg)
{
	pool_cache_t pc = pool_cache_init(
	    32, 0, 0, 0, "t-hardwarn", NULL, IPL_NONE, NULL, NULL, NULL);
	void *a, *b;

	(void)arg;
	pool_cache_sethardlimit(pc, 1, "too many widgets", 60);
	a = pool_cache_get(pc, PR_NOWAIT);
	T_ASSERT(a != NULL);
	b = pool_cache_get(pc, PR_NOWAIT);
	T_ASSERT(b == NULL);
	b = pool_cache_get(pc, PR_NOWAIT); /* rate-capped: no second line */
	T_ASSERT(b == NULL);
	pool_cache_put(pc, a);
	pool_cache_destroy(pc);
}

static void
test_hardlimit_warning(void)
{
	char buf[4096];
	int status = t_child(hardlimit_warn_child, NULL, buf, sizeof buf);
	const char *w = "kmem: warning: pool 't-hardwarn': too many widgets";

	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	T_ASSERT(strstr(buf, w) != NULL);
	T_ASSERT(strstr(strstr(buf, w) + 1, w) == NULL);
}

/* ---- magazines=off ---- */

static void
test_magazines_off(void)
{
	struct counters c;
	pool_cache_t pc;
	struct kmem_pool_stats st;
	struct obj *o[8];
	int i, r;

	T_EQ(kmem_options_parse("KMEM_OPTIONS", "magazines=off"), 0);
	T_ASSERT(!kmem_opts.magazines);
	pc = mkcache("t-nomag", 0, &c);
	for (r = 0; r < 10; r++) {
		for (i = 0; i < 8; i++) {
			o[i] = pool_cache_get(pc, PR_WAITOK);
			check_live(o[i]);
		}
		for (i = 0; i < 8; i++)
			pool_cache_put_paddr(pc, o[i], 0x1234);
		/* Every put destructs, every get constructs. */
		T_EQ(c.nctor, (unsigned long)(r + 1) * 8);
		T_EQ(c.ndtor, (unsigned long)(r + 1) * 8);
	}
	o[0] = pool_cache_get(pc, PR_WAITOK);
	{
		paddr_t pa = 0;

		o[1] = pool_cache_get_paddr(pc, PR_WAITOK, &pa);
		T_EQ(pa, POOL_PADDR_INVALID);
	}
	c.fail_next = 1;
	T_ASSERT(pool_cache_get(pc, PR_WAITOK) == NULL);
	st = pcstats(pc);
	T_EQ(st.ps_cached_objects, 0);
	T_EQ(st.ps_cpuhit, 0);
	T_EQ(st.ps_nout, 2);
	check_conservation(pc, &c, 2);
	pool_cache_put(pc, o[0]);
	pool_cache_put(pc, o[1]);
	check_conservation(pc, &c, 0);
	pool_cache_destroy(pc);
	T_EQ(kmem_options_parse("KMEM_OPTIONS", "magazines=on"), 0);
	T_ASSERT(kmem_opts.magazines);
}

/* ---- working-set reaping ---- */

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void
test_reap_burst(void)
{
	struct counters c;
	pool_cache_t pc = mkcache("t-reap", 0, &c);
	struct kmem_pool_stats st0, st;
	unsigned long limit;
	int i;

	/* A burst, then nothing: the depot's groups go after an interval. */
	put_burst(pc, 3000);
	st0 = pcstats(pc);
	T_EQ(st0.ps_cached_objects, 3000);
	T_GT(st0.ps_nfull, 100);
	T_GT(st0.ps_npages, 10);
	for (i = 0; i < 6; i++) {
		sleep_ms(60);
		kmem_reap();
	}
	st = pcstats(pc);
	/* Only the CPU layer (two groups per CPU) may still hold any. */
	limit = 2 * 15 * (unsigned long)sysconf(_SC_NPROCESSORS_CONF);
	T_EQ(st.ps_nfull, 0);
	T_LE(st.ps_cached_objects, limit);
	T_EQ(c.ndtor, 3000 - st.ps_cached_objects);
	/* ...and the pages of the destructed objects went back. */
	T_LE(st.ps_npages, st.ps_cached_objects);
	T_LT(st.ps_npages, st0.ps_npages);
	check_conservation(pc, &c, 0);
	pool_cache_destroy(pc);
}

static void
test_reap_working_set(void)
{
	struct counters c;
	pool_cache_t pc = mkcache("t-wset", 0, &c);
	struct obj *o[200];
	int cycle, i;

	/*
	 * A working set of 200 objects used every 10 ms, reaped every
	 * cycle with a 100 ms interval: the depot empties every cycle, so
	 * its groups are always needed and are not reaped.  Were they
	 * reaped, the set would be rebuilt each interval (4+ times); the
	 * bound tolerates one stall of a whole interval on a loaded machine.
	 */
	T_EQ(kmem_options_parse("KMEM_OPTIONS", "reap_interval_ms=100"), 0);
	for (cycle = 0; cycle < 40; cycle++) {
		for (i = 0; i < 200; i++) {
			o[i] = pool_cache_get(pc, PR_WAITOK);
			check_live(o[i]);
		}
		for (i = 0; i < 200; i++)
			pool_cache_put(pc, o[i]);
		kmem_reap();
		sleep_ms(10);
	}
	printf("   working set: %lu constructed, %lu destructed\n", c.nctor,
	    c.ndtor);
	T_LT(c.nctor, 3 * 200);
	check_conservation(pc, &c, 0);
	pool_cache_destroy(pc);
	T_EQ(kmem_options_parse("KMEM_OPTIONS", "reap_interval_ms=50"), 0);
}

static void
test_reap_all(void)
{
	struct counters c1, c2;
	pool_cache_t p1 = mkcache("t-reapall1", 0, &c1);
	pool_cache_t p2 = mkcache("t-reapall2", PR_LARGECACHE, &c2);
	struct kmem_pool_stats st;
	struct obj *keep;

	keep = pool_cache_get(p1, PR_WAITOK);
	put_burst(p1, 777);
	put_burst(p2, 50); /* CPU layer only */
	kmem_reap_all();
	st = pcstats(p1);
	T_EQ(st.ps_cached_objects, 0);
	T_EQ(st.ps_nfull, 0);
	T_EQ(st.ps_nout, 1);
	T_EQ(st.ps_npages, 1); /* the page of "keep" */
	check_live(keep);
	T_EQ(c1.ndtor, c1.nctor - 1);
	st = pcstats(p2);
	T_EQ(st.ps_cached_objects, 0);
	T_EQ(st.ps_npages, 0);
	T_EQ(c2.ndtor, c2.nctor);
	check_conservation(p1, &c1, 1);
	check_conservation(p2, &c2, 0);
	pool_cache_put(p1, keep);
	pool_cache_destroy(p1);
	pool_cache_destroy(p2);
}

/* ---- statistics ---- */

static void
test_stats_random(void)
{
	struct counters c;
	pool_cache_t pc = mkcache("t-stats", 0, &c);
	struct obj *held[512];
	struct kmem_pool_stats st;
	size_t n = 0;
	unsigned long ops = 0, i, iters = t_scale(50000);

	for (i = 0; i < iters; i++) {
		uint64_t r = t_rand_below(100);

		if (r < 2 && n < 512) {
			/* A failing ctor: NULL, or a cached object. */
			c.fail_next = 1;
			held[n] = pool_cache_get(pc, PR_NOWAIT);
			if (held[n] != NULL) {
				T_EQ(c.fail_next, 1); /* no ctor ran */
				check_live(held[n++]);
			}
			c.fail_next = 0;
			ops++;
		} else if (r < 50 && n < 512) {
			held[n] = pool_cache_get(pc, PR_WAITOK);
			check_live(held[n]);
			n++;
			ops++;
		} else if (r < 97 && n > 0) {
			size_t k = t_rand_below(n);

			pool_cache_put(pc, held[k]);
			held[k] = held[--n];
			ops++;
		} else if (r < 98 && n > 0) {
			pool_cache_destruct_object(pc, held[--n]);
		} else if (r < 99) {
			pool_cache_invalidate(pc);
		}
		if (i % 1000 == 0)
			check_conservation(pc, &c, n);
	}
	check_conservation(pc, &c, n);
	st = pcstats(pc);
	T_GE(st.ps_cpuhit + st.ps_cpumiss, ops);
	T_GT(st.ps_cpuhit, st.ps_cpumiss);
	while (n > 0)
		pool_cache_put(pc, held[--n]);
	check_conservation(pc, &c, 0);
	pool_cache_destroy(pc);
	T_EQ(c.nctor, c.ndtor);
}

static char pr_buf[16384];
static size_t pr_len;

static void KMEM_PRINTF(1, 2) pr_capture(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(pr_buf + pr_len, sizeof pr_buf - pr_len, fmt, ap);
	va_end(ap);
	if (n > 0)
		pr_len += (size_t)n;
	if (pr_len >= sizeof pr_buf)
		pr_len = sizeof pr_buf - 1;
}

static void
print_stats_child(void *arg)
{
	(void)arg;
	kmem_pool_cache_print_stats(NULL);
}

static void
test_print_stats(void)
{
	struct counters c;
	pool_cache_t pc = mkcache("t-print", 0, &c);
	struct kmem_pool_stats st;
	char buf[16384], row[256], *line;
	int status;

	put_burst(pc, 100);
	st = pcstats(pc);
	pr_len = 0;
	pr_buf[0] = '\0';
	kmem_pool_cache_print_stats(pr_capture);
	T_ASSERT(strncmp(pr_buf, "Pool cache statistics.\n", 23) == 0);
	line = strchr(pr_buf, '\n') + 1;
	/* vmstat -C's columns, in order. */
	{
		const char *cols[] = {"Name", "Spin", "GrpSz", "Full", "Emty",
		    "PoolLayer", "CacheLayer", "Hit%", "CpuLayer", "Hit%"};
		char hdr[256], *tok, *save;
		size_t k = 0;

		snprintf(
		    hdr, sizeof hdr, "%.*s", (int)strcspn(line, "\n"), line);
		for (tok = strtok_r(hdr, " ", &save); tok != NULL;
		     tok = strtok_r(NULL, " ", &save)) {
			T_ASSERT(k < KMEM_ARRAY_SIZE(cols));
			T_ASSERT(strcmp(tok, cols[k]) == 0);
			k++;
		}
		T_EQ(k, KMEM_ARRAY_SIZE(cols));
	}
	/* Our row, with its numbers. */
	line = strstr(pr_buf, "\nt-print ");
	T_ASSERT(line != NULL);
	snprintf(
	    row, sizeof row, "%.*s", (int)strcspn(line + 1, "\n"), line + 1);
	{
		char name[32];
		unsigned long spin, full, emty, pooll, cache, hit1, cpu, hit2;
		unsigned gs;

		T_EQ(sscanf(row, "%31s %lu %u %lu %lu %lu %lu %lu%% %lu %lu%%",
			 name, &spin, &gs, &full, &emty, &pooll, &cache, &hit1,
			 &cpu, &hit2),
		    10);
		T_EQ(gs, 15);
		T_EQ(full, st.ps_nfull);
		T_EQ(cpu, st.ps_cpuhit + st.ps_cpumiss);
		T_EQ(cache, st.ps_depothit + st.ps_depotmiss);
		T_EQ(pooll, st.ps_depotmiss);
		T_LE(hit1, 100);
		T_LE(hit2, 100);
	}
	/* A cache with no traffic is not listed. */
	{
		struct counters c2;
		pool_cache_t idle = mkcache("t-print-idle", 0, &c2);

		pr_len = 0;
		kmem_pool_cache_print_stats(pr_capture);
		T_ASSERT(strstr(pr_buf, "t-print-idle") == NULL);
		pool_cache_destroy(idle);
	}
	/* NULL: standard error. */
	status = t_child(print_stats_child, NULL, buf, sizeof buf);
	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	T_ASSERT(strstr(buf, "Pool cache statistics.") != NULL);
	T_ASSERT(strstr(buf, "\nt-print ") != NULL);
	pool_cache_destroy(pc);
}

/* Per-CPU counters add up to the cache's, and EINVAL past the last CPU. */
static void
test_cpu_stats(void)
{
	pool_cache_t pc = pool_cache_init(
	    48, 0, 0, 0, "t-cpu", NULL, IPL_NONE, NULL, NULL, NULL);
	struct kmem_pool_stats st;
	unsigned long h, m, held, sh = 0, sm = 0, sheld = 0;
	void *v[100];
	unsigned int i, n = kmem_pool_cache_ncpu(pc);

	T_GE(n, 1);
	for (i = 0; i < 100; i++)
		v[i] = pool_cache_get(pc, PR_WAITOK);
	for (i = 0; i < 100; i++)
		pool_cache_put(pc, v[i]);
	for (i = 0; i < n; i++) {
		T_EQ(kmem_pool_cache_cpu_stats(pc, i, &h, &m, &held), 0);
		sh += h;
		sm += m;
		sheld += held;
	}
	T_EQ(kmem_pool_cache_cpu_stats(pc, n, &h, &m, &held), EINVAL);
	kmem_pool_cache_stats(pc, &st);
	T_EQ(sh, st.ps_cpuhit);
	T_EQ(sm, st.ps_cpumiss);
	/* Each get and put counted once, as a hit or as a miss. */
	T_EQ(sh + sm, 200);
	/* Objects held by the CPUs plus the depot's are all the cached ones. */
	T_LE(sheld, st.ps_cached_objects);
	/*
	 * All 100 came back; misses also filled groups with objects that
	 * follow in the pool (pc_fill): everything out of the pool is cached.
	 */
	T_GE(st.ps_cached_objects, 100);
	T_EQ(st.ps_cached_objects, st.ps_nout);
	pool_cache_destroy(pc);
}

/* ---- a miss fills a run of neighbours for the CPU ---- */

static void
test_fill_run(void)
{
	pool_cache_t pc = pool_cache_init(
	    32, 0, 0, 0, "t-fill", NULL, IPL_NONE, NULL, NULL, NULL);
	struct kmem_pool_stats st;
	cpu_set_t saved;
	char *v[8];
	int i;

	if (!t_pin_here(&saved)) {
		t_skip("cannot pin the thread to a CPU");
		pool_cache_destroy(pc);
		return;
	}
	for (i = 0; i < 8; i++)
		v[i] = pool_cache_get(pc, PR_WAITOK);
	t_unpin(&saved);
	/* One trip to the pool: the first miss took a run for this CPU. */
	kmem_pool_cache_stats(pc, &st);
	T_EQ(st.ps_nget >= 8 && st.ps_nout >= 8, true);
	T_GE(st.ps_nout, 1 + st.ps_groupsize / 2);
	/* Handed out in address order, neighbours. */
	for (i = 0; i < 7; i++)
		T_EQ(v[i + 1] - v[i], 32);
	for (i = 0; i < 8; i++)
		pool_cache_put(pc, v[i]);
	pool_cache_destroy(pc);
}

/*
 * The depots of caches without constructor and destructor are capped
 * (64 groups each, 16 MiB of objects between them, one group each at
 * least): a burst of puts beyond goes back to the pool.  With a
 * constructor they are not.
 */
static void
test_depot_cap(void)
{
	const size_t size = 1024, n = 4000; /* beyond 64 groups of 15 */
	pool_cache_t pc = pool_cache_init(
	    size, 0, 0, 0, "t-cap", NULL, IPL_NONE, NULL, NULL, NULL);
	struct kmem_pool_stats st;
	struct counters c;
	void **v = malloc(n * sizeof *v);
	unsigned long cap;
	size_t i;

	T_ASSERT(v != NULL);
	for (i = 0; i < n; i++)
		T_ASSERT((v[i] = pool_cache_get(pc, PR_WAITOK)) != NULL);
	for (i = 0; i < n; i++)
		pool_cache_put(pc, v[i]);
	kmem_pool_cache_stats(pc, &st);
	cap = 64;
	printf("   %zu puts: %lu full groups of %u in the depot (cap %lu), "
	       "%lu cached, %u objects in the pool, %u out\n",
	    n, st.ps_nfull, st.ps_groupsize, cap, st.ps_cached_objects,
	    st.ps_nitems, st.ps_nout);
	T_LE(st.ps_nfull, cap);
	/* The rest: the CPU layer's two groups a CPU, and the pool. */
	T_LE(st.ps_cached_objects,
	    (cap + 2 * (unsigned long)sysconf(_SC_NPROCESSORS_CONF)) *
		st.ps_groupsize);
	/*
	 * The others went back to the pool (whose empty pages may go).  (A
	 * miss's fill may have taken more from the pool than the gets.)
	 */
	T_EQ(st.ps_nout, st.ps_cached_objects);
	T_EQ(st.ps_nput, st.ps_nget - st.ps_cached_objects);
	/* Gets take the cached ones first, then the pool's: all come back. */
	for (i = 0; i < n; i++)
		T_ASSERT((v[i] = pool_cache_get(pc, PR_WAITOK)) != NULL);
	kmem_pool_cache_stats(pc, &st);
	T_EQ(st.ps_nout, n + st.ps_cached_objects);
	for (i = 0; i < n; i++)
		pool_cache_put(pc, v[i]);
	pool_cache_destroy(pc);

	/* 16 KiB objects, 2000 of them: the budget binds before 64 groups. */
	pc = pool_cache_init(
	    16384, 0, 0, 0, "t-budget", NULL, IPL_NONE, NULL, NULL, NULL);
	for (i = 0; i < 2000; i++)
		T_ASSERT((v[i] = pool_cache_get(pc, PR_WAITOK)) != NULL);
	for (i = 0; i < 2000; i++)
		pool_cache_put(pc, v[i]);
	kmem_pool_cache_stats(pc, &st);
	printf("   16 KiB: %lu full groups of %u in the depot\n", st.ps_nfull,
	    st.ps_groupsize);
	T_GE(st.ps_nfull, 1);
	T_LT(st.ps_nfull, 64);
	T_LE((st.ps_nfull - 1) * st.ps_groupsize * 16384, 16u << 20);
	T_EQ(st.ps_nout, st.ps_cached_objects);
	pool_cache_destroy(pc);

	/* Constructed objects stay cached: no destructor ran. */
	pc = mkcache("t-nocap", 0, &c);
	for (i = 0; i < n; i++)
		T_ASSERT((v[i] = pool_cache_get(pc, PR_WAITOK)) != NULL);
	for (i = 0; i < n; i++)
		pool_cache_put(pc, v[i]);
	T_EQ(c.ndtor, 0);
	T_EQ(pcstats(pc).ps_cached_objects, n);
	check_conservation(pc, &c, 0);
	pool_cache_destroy(pc);
	free(v);
}

static atomic_int fill_dtors;

static void
fill_dtor(void *arg, void *obj)
{
	(void)arg;
	(void)obj;
	atomic_fetch_add(&fill_dtors, 1);
}

/*
 * A destructor but no constructor: a miss takes one object, no run --
 * else invalidation would destruct objects never constructed nor handed
 * out (a review found 7 such calls).
 */
static void
test_fill_not_with_dtor(void)
{
	pool_cache_t pc = pool_cache_init(
	    64, 0, 0, 0, "t-fill-dtor", NULL, IPL_NONE, NULL, fill_dtor, NULL);
	void *v;

	atomic_store(&fill_dtors, 0);
	v = pool_cache_get(pc, PR_WAITOK);
	pool_cache_invalidate(pc);
	T_EQ(atomic_load(&fill_dtors), 0);
	pool_cache_put(pc, v);
	pool_cache_invalidate(pc);
	T_EQ(atomic_load(&fill_dtors), 1);
	pool_cache_destroy(pc);
}

/* Under a hard limit a miss takes one object: no CPU parks the rest. */
static void
test_fill_hardlimit(void)
{
	pool_cache_t pc = pool_cache_init(
	    32, 0, 0, 0, "t-fill-lim", NULL, IPL_NONE, NULL, NULL, NULL);
	struct kmem_pool_stats st;
	void *v[4];
	int i;

	pool_cache_sethardlimit(pc, 4, NULL, 0);
	v[0] = pool_cache_get(pc, PR_NOWAIT);
	T_ASSERT(v[0] != NULL);
	kmem_pool_cache_stats(pc, &st);
	T_EQ(st.ps_nout, 1);
	for (i = 1; i < 4; i++) {
		v[i] = pool_cache_get(pc, PR_NOWAIT);
		T_ASSERT(v[i] != NULL);
	}
	T_ASSERT(pool_cache_get(pc, PR_NOWAIT | PR_LIMITFAIL) == NULL);
	for (i = 0; i < 4; i++)
		pool_cache_put(pc, v[i]);
	pool_cache_destroy(pc);
}

int
main(void)
{
	t_seed();
	kmem_options_init();
	T_EQ(kmem_options_parse(
		 "KMEM_OPTIONS", "reap_interval_ms=50,pool_idle_ms=0"),
	    0);
	T_RUN(test_ctor_once);
	T_RUN(test_ctor_fail);
	T_RUN(test_paddr);
	T_RUN(test_pr_zero);
	T_RUN(test_groupsize);
	T_RUN(test_destruct_object);
	T_RUN(test_invalidate);
	T_RUN(test_reclaim);
	T_RUN(test_forwarders);
	T_RUN(test_hardlimit_warning);
	T_RUN(test_magazines_off);
	T_RUN(test_reap_burst);
	T_RUN(test_reap_working_set);
	T_RUN(test_reap_all);
	T_RUN(test_stats_random);
	T_RUN(test_print_stats);
	T_RUN(test_cpu_stats);
	T_RUN(test_fill_run);
	T_RUN(test_fill_hardlimit);
	T_RUN(test_fill_not_with_dtor);
	T_RUN(test_depot_cap);
	return t_done();
}
