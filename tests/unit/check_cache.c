/*
 * check_cache.c -- kmem_pool_cache_check finds what is wrong.  Compiled
 * with pool_cache.c itself, so that it reaches the depot and the shared
 * empty groups.  In a child pinned to its CPU, each case fills a cache
 * (objects in this CPU's groups and in full depot groups), checks that
 * kmem_pool_cache_check passes, damages one thing the checker looks at,
 * says what report it expects (t_ck_want) and must die with it:
 *     kmem: kmem_pool_cache_check(cache 'chk'): <what is wrong>
 * Then through KMEM_DEBUG=check: the next depot exchange, of a get or of
 * a put, finds the damage.  Last (t_word), sound use: the counts that the
 * current group's word in its CPU slot carries (cc_word) add up after
 * every path that moves groups, single-threaded and with lock-free paths.
 */
#include "../../src/pool_cache.c"

#include <pthread.h>
#include <unistd.h>

#include "internal/kmem_impl.h"
#include "t_check.h"
#include "t_tag.h"

#define NOBJ 100
#define CC   "kmem_pool_cache_check(cache 'chk'): "
#define DEPOT                                                                  \
	"the depot holds %lu full groups; pc_nfull says %lu, its "             \
	"working-set minimum %lu"

static pool_cache_t pc;
static struct pc_cpu *cc;
static int cpu;
static void *objs[NOBJ];

static void
mk(void)
{
	cpu_set_t saved;
	int i;

	if (!t_pin_here(&saved))
		_exit(3);
	pc = pool_cache_init(
	    64, 0, 0, PR_NOTOUCH, "chk", NULL, IPL_NONE, NULL, NULL, NULL);
	for (i = 0; i < NOBJ; i++)
		if ((objs[i] = pool_cache_get(pc, PR_WAITOK)) == NULL)
			_exit(4);
	for (i = 0; i < NOBJ; i++)
		pool_cache_put(pc, objs[i]);
	cpu = (int)(kmem_prim_cpu_fast() % pc->pc_ncpu);
	cc = &pc->pc_cpus[cpu];
	kmem_pool_cache_check(pc);
	/*
	 * The current group's count and top objects are the slot's while
	 * it is current (pool_cache_impl.h): into the group, for damage()
	 * to change it there, and back (pc_sync_out) before the cache is
	 * used or checked.
	 */
	pc_sync_in(cc);
	if (pc->pc_nfull == 0 || cc->cc_current == NULL ||
	    cc->cc_current->pcg_avail == 0)
		_exit(5);
}

enum {
	GROUP,
	BOTH,
	DEPOT_MORE,
	DEPOT_GROUP,
	DEPOT_COUNT,
	DEPOT_MIN,
	SIZEIDX,
	EMPTIES_MORE,
	EMPTY_GROUP,
	EMPTIES_COUNT,
	OBJ_NOT_ITEM,
	OBJ_NOT_START,
	OBJ_FREE,
	TAG,
	CACHED,
	HOOK_GET,
	HOOK_PUT,
	NCASES
};

static const char *const names[NCASES] = {"group", "both", "depot more",
    "depot group", "depot count", "depot min", "size index", "empties more",
    "empty group", "empties count", "not an item", "not an item's start",
    "free in the pool", "tag", "cached", "hook get", "hook put"};

static void
damage(void *arg)
{
	int id = (int)(intptr_t)arg;
	static uint64_t fake[8];
	struct pcg *g = NULL, *e;
	void *x, *more[40];
	int i;

	mk();
	if (id >= EMPTIES_MORE && id <= EMPTIES_COUNT) {
		/* One shared empty group at least, at the head. */
		pcg_put_empty(&kmemi_dom0, pcg_get_empty(&kmemi_dom0, 0, true));
	}
	e = kmemi_dom0.kd_pcg_empty[0];
	switch (id) {
	case GROUP:
		g = cc->cc_current;
		g->pcg_avail = g->pcg_size + 1;
		t_ck_want(CC "the current group of CPU %d, %p, holds %u "
			     "objects, capacity %u",
		    cpu, (void *)g, g->pcg_avail, g->pcg_size);
		break;
	case BOTH:
		cc->cc_previous = cc->cc_current;
		t_ck_want(CC "CPU %d has group %p as both current and previous",
		    cpu, (void *)cc->cc_current);
		break;
	case DEPOT_MORE:
		pc->pc_nfull--;
		t_ck_want(CC "the depot holds more than pc_nfull (%lu) groups",
		    pc->pc_nfull);
		break;
	case DEPOT_GROUP:
		g = pc->pc_full;
		g->pcg_avail--;
		t_ck_want(CC "depot group %p holds %u objects, capacity %u, 0 "
			     "operations: not a full group off its CPU",
		    (void *)g, g->pcg_avail, g->pcg_size);
		break;
	case DEPOT_COUNT:
		pc->pc_nfull++;
		t_ck_want(
		    CC DEPOT, pc->pc_nfull - 1, pc->pc_nfull, pc->pc_full_min);
		break;
	case DEPOT_MIN:
		pc->pc_full_min = pc->pc_nfull + 1;
		t_ck_want(
		    CC DEPOT, pc->pc_nfull, pc->pc_nfull, pc->pc_full_min);
		break;
	case SIZEIDX:
		pc->pc_sizeidx = 9;
		t_ck_want(CC "group size index 9");
		break;
	case EMPTIES_MORE:
		kmemi_dom0.kd_pcg_nempty[0]--;
		t_ck_want(CC
		    "the empty groups of size 15 are more than counted "
		    "(%lu)",
		    kmemi_dom0.kd_pcg_nempty[0]);
		break;
	case EMPTY_GROUP:
		e->pcg_avail = 1;
		t_ck_want(CC "empty group %p of size 15 holds 1 objects, "
			     "capacity 15, 0 operations",
		    (void *)e);
		break;
	case EMPTIES_COUNT:
		kmemi_dom0.kd_pcg_nempty[0]++;
		t_ck_want(CC "%lu empty groups of size 15; counted %lu, "
			     "working-set minimum %lu",
		    kmemi_dom0.kd_pcg_nempty[0] - 1,
		    kmemi_dom0.kd_pcg_nempty[0],
		    kmemi_dom0.kd_pcg_empty_min[0]);
		break;
	case OBJ_NOT_ITEM:
		g = pc->pc_full;
		g->pcg_objects[0].po_va = fake;
		t_ck_want(CC
		    "object %p in a depot group, %p: not an item of the "
		    "pool",
		    (void *)fake, (void *)g);
		break;
	case OBJ_NOT_START:
		g = pc->pc_full;
		x = (char *)g->pcg_objects[0].po_va + 8;
		g->pcg_objects[0].po_va = x;
		t_ck_want(CC "object %p in a depot group, %p: not the start of "
			     "an item",
		    x, (void *)g);
		break;
	case OBJ_FREE:
		/* An item the pool has free, in a group. */
		x = pool_get(&pc->pc_pool, PR_WAITOK);
		pool_put(&pc->pc_pool, x);
		g = pc->pc_full;
		g->pcg_objects[0].po_va = x;
		t_ck_want(CC "object %p in a depot group, %p: free in the pool",
		    x, (void *)g);
		break;
	case TAG:
		g = cc->cc_current;
		kmemi_cache_set_hooks(pc, &t_tag_hooks);
		t_ck_want(CC "object %p in the current group of CPU %d, %p, "
			     "lacks its free tag",
		    g->pcg_objects[0].po_va, cpu, (void *)g);
		break;
	case CACHED:
		/* An object out of the pool cached twice. */
		g = cc->cc_current->pcg_avail < cc->cc_current->pcg_size
		    ? cc->cc_current
		    : cc->cc_previous;
		if (g == NULL || g->pcg_avail >= g->pcg_size)
			_exit(6);
		g->pcg_objects[g->pcg_avail] = g->pcg_objects[0];
		g->pcg_avail++;
		t_ck_want(CC "%u objects cached, but only %u are out of the "
			     "pool",
		    pc->pc_pool.pr_nout + 1, pc->pc_pool.pr_nout);
		break;
	case HOOK_GET:
		/* The gets that empty this CPU's groups reach the depot. */
		pc_sync_out(cc);
		kmemi_debug_configure("check");
		pc->pc_nfull++;
		t_ck_want(
		    CC DEPOT, pc->pc_nfull - 1, pc->pc_nfull, pc->pc_full_min);
		for (i = 0; i < NOBJ; i++)
			(void)pool_cache_get(pc, PR_WAITOK);
		return;
	case HOOK_PUT:
		/* The puts that fill them, too. */
		for (i = 0; i < 40; i++)
			more[i] = pool_get(&pc->pc_pool, PR_WAITOK);
		pc_sync_out(cc);
		kmemi_debug_configure("check");
		pc->pc_nfull++;
		t_ck_want(
		    CC DEPOT, pc->pc_nfull - 1, pc->pc_nfull, pc->pc_full_min);
		for (i = 0; i < 40; i++)
			pool_cache_put(pc, more[i]);
		return;
	default:
		_exit(7);
	}
	pc_sync_out(cc);
	kmem_pool_cache_check(pc);
}

static void
t_damage(void)
{
	t_ck_expect_cases(damage, names, NCASES);
}

/* Sound caches pass: through use, a reap, and the hooks. */
static void
t_sound(void)
{
	pool_cache_t c;
	void *v[500];
	int i, k;

	kmemi_debug_configure("check");
	c = pool_cache_init(
	    100, 0, 0, 0, "sound", NULL, IPL_NONE, NULL, NULL, NULL);
	for (k = 0; k < 3; k++) {
		for (i = 0; i < 500; i++)
			T_ASSERT((v[i] = pool_cache_get(c, PR_WAITOK)) != NULL);
		kmem_pool_cache_check(c);
		for (i = 0; i < 500; i++)
			pool_cache_put(c, v[i]);
		kmem_pool_cache_check(c);
		kmem_check_all();
	}
	kmem_reap_all();
	kmem_pool_cache_check(c);
	pool_cache_destroy(c);
	kmem_check_all();
	kmemi_debug_configure("");
}

/*
 * The current group's word lives in its CPU slot while it is current
 * (pool_cache_impl.h, cc_word): every path that changes a slot's groups
 * leaves the word there (pc_sync_out), and every reader takes it from
 * there or has it back in the group first (pc_sync_in).  Driven through
 * each path -- the fill on a miss, depot exchanges both ways, the capped
 * depot (a put's full group to the pool), invalidation, the statistics,
 * holds_free -- with the objects held known, the counts must add up: the
 * objects cached (statistics, and under every lock) are those out of
 * the pool less those held, every get and put is one hit or one miss,
 * and a slot without a current group has word 0.  Single-threaded, the
 * gets and puts take the locked path (no lock-free one) and each slot's
 * word must equal its current group's exactly; threaded, the lock-free
 * paths commit to the slot's word alone.
 */
#define WORD_N 2000 /* more than PC_DEPOT_MAX groups of 15 */

static void
word_check(pool_cache_t c, unsigned int held, unsigned long ops)
{
	struct kmem_pool_stats st;
	unsigned long hits = 0, misses = 0, cached = 0, h, m, k;
	bool exact = kmem_prim_single_threaded();
	const struct pcg *g;
	unsigned int i;

	/*
	 * The readers that do not sync first, before any that does
	 * (kmemi_cache_outstanding, the check): after a lock-free get or
	 * put, only the slot's word is right.
	 */
	memset(&st, 0, sizeof st);
	st.ps_size = sizeof st;
	T_EQ(kmem_pool_cache_stats(c, &st), 0);
	for (i = 0; i < c->pc_ncpu; i++) {
		struct pc_cpu *s = &c->pc_cpus[i];

		if (s->cc_current == NULL)
			T_EQ(s->cc_word, 0);
		else if (exact)
			T_EQ(s->cc_word, s->cc_current->pcg_word);
		T_EQ(kmem_pool_cache_cpu_stats(c, i, &h, &m, &k), 0);
		hits += h;
		misses += m;
		cached += k;
	}
	T_EQ(st.ps_cached_objects, st.ps_nout - held);
	T_EQ(st.ps_cpuhit + st.ps_cpumiss, ops);
	T_EQ(hits + misses, ops);
	kmem_mutex_enter(&c->pc_depot_lock);
	for (g = c->pc_full; g != NULL; g = g->pcg_next)
		cached += g->pcg_avail;
	kmem_mutex_exit(&c->pc_depot_lock);
	T_EQ(cached, st.ps_nout - held);
	T_EQ(kmemi_cache_outstanding(c), held);
	kmem_pool_cache_check(c);
}

static void
word_round(void)
{
	static void *v[WORD_N];
	unsigned long ops = 0;
	pool_cache_t c;
	unsigned int i;

	c = pool_cache_init(
	    64, 0, 0, PR_NOTOUCH, "word", NULL, IPL_NONE, NULL, NULL, NULL);
	for (i = 0; i < WORD_N; i++, ops++)
		T_ASSERT((v[i] = pool_cache_get(c, PR_WAITOK)) != NULL);
	word_check(c, WORD_N, ops);
	/* Depot exchanges, then the depot full: groups to the pool. */
	for (i = 0; i < WORD_N; i++, ops++)
		pool_cache_put(c, v[i]);
	word_check(c, 0, ops);
	/* Out of the depot, and the previous group swapped in. */
	for (i = 0; i < WORD_N / 2; i++, ops++)
		T_ASSERT((v[i] = pool_cache_get(c, PR_WAITOK)) != NULL);
	word_check(c, WORD_N / 2, ops);
	/* Where the last put lies: in this CPU's current group. */
	pool_cache_put(c, v[WORD_N / 2 - 1]);
	ops++;
	T_ASSERT(kmemi_cache_holds_free(c, v[WORD_N / 2 - 1]));
	T_ASSERT(!kmemi_cache_holds_free(c, v[0]));
	word_check(c, WORD_N / 2 - 1, ops);
	pool_cache_invalidate(c);
	word_check(c, WORD_N / 2 - 1, ops);
	for (i = 0; i < c->pc_ncpu; i++)
		T_ASSERT(c->pc_cpus[i].cc_current == NULL);
	/* The fill again, after the invalidation. */
	for (i = WORD_N / 2 - 1; i < WORD_N; i++, ops++)
		T_ASSERT((v[i] = pool_cache_get(c, PR_WAITOK)) != NULL);
	word_check(c, WORD_N, ops);
	for (i = 0; i < WORD_N; i++, ops++)
		pool_cache_put(c, v[i]);
	word_check(c, 0, ops);
	kmem_reap_all();
	word_check(c, 0, ops);
	pool_cache_destroy(c);
}

static void *
word_idle(void *arg)
{
	int fd = *(int *)arg;
	char b;

	(void)!read(fd, &b, 1); /* until main closes the pipe */
	return NULL;
}

static void
t_word(void)
{
	pthread_t t;
	int fds[2];

	T_ASSERT(kmem_prim_single_threaded()); /* no thread made yet */
	word_round();
	/* A second thread: the gets and puts take the lock-free paths. */
	T_EQ(pipe(fds), 0);
	T_EQ(pthread_create(&t, NULL, word_idle, &fds[0]), 0);
	word_round();
	close(fds[1]);
	T_EQ(pthread_join(t, NULL), 0);
	close(fds[0]);
}

int
main(void)
{
	t_ck_init();
	T_RUN(t_damage);
	T_RUN(t_sound);
	T_RUN(t_word); /* last: it starts a thread */
	return t_done();
}
