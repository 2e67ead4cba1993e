/*
 * check_cache.c -- kmem_pool_cache_check finds what is wrong.  Compiled
 * with pool_cache.c itself, so that it reaches the depot and the shared
 * empty groups.  In a child pinned to its CPU, each case fills a cache
 * (objects in this CPU's groups and in full depot groups), checks that
 * kmem_pool_cache_check passes, damages one thing the checker looks at,
 * says what report it expects (t_ck_want) and must die with it:
 *     kmem: kmem_pool_cache_check(cache 'chk'): <what is wrong>
 * Then through KMEM_DEBUG=check: the next depot exchange, of a get or of
 * a put, finds the damage.
 */
#include "../../src/pool_cache.c"

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

int
main(void)
{
	t_ck_init();
	T_RUN(t_damage);
	T_RUN(t_sound);
	return t_done();
}
