/*
 * check_pool.c -- kmem_pool_check finds what is wrong.  Compiled with
 * pool.c itself, so that it reaches the pool's page lists, headers and
 * hash.  In a child each case builds a pool (headers in its pages, or
 * outside and hashed, PR_NOTOUCH), checks that kmem_pool_check passes,
 * damages one thing the checker looks at, says what report it expects
 * (t_ck_want) and must die with it:
 *     kmem: kmem_pool_check(pool 'NAME'): <what is wrong>
 * Then through KMEM_DEBUG=check: a pool that grows by a page, or empties
 * one, is checked on the spot.
 */
#include "../../src/pool.c"

#include "internal/kmem_impl.h"
#include "t_check.h"

#define ISZ   32 /* two bitmap words a page */
#define NOUT  10
#define OUT   "kmem_pool_check(pool '%s'): "
#define PAGES "the lists hold %u pages (%u empty), %lu items free and %lu out"

static struct pool pl;
static void *items[NOUT];

/* A pool with NOUT items out, all from one partial page. */
static struct kmem_pool_page *
mk(const char *name, int flags)
{
	struct kmem_pool_page *ph;
	int i;

	pool_init(&pl, ISZ, 0, 0, flags, name, NULL, IPL_NONE);
	for (i = 0; i < NOUT; i++)
		if ((items[i] = pool_get(&pl, PR_NOWAIT)) == NULL)
			_exit(3);
	ph = pl.pr_partpages;
	if (ph == NULL || ph->ph_next != ph || pl.pr_npages != 1)
		_exit(4);
	kmem_pool_check(&pl);
	return ph;
}

enum {
	MAGIC,
	LINKS,
	HDR_POOL,
	HDR_AT,
	CANARY,
	COUNTS,
	LIST,
	BITMAP,
	HINT,
	POPCOUNT,
	NOT_HASHED,
	POOL_COUNTS,
	NIDLE,
	HASH_SIZE,
	HASH_MORE,
	HASH_BUCKET,
	COLOR,
	HOOK_GROW,
	HOOK_EMPTY,
	NCASES
};

static const char *const names[NCASES] = {"magic", "links", "header pool",
    "header place", "canary", "counts", "list", "bitmap", "hint", "popcount",
    "not hashed", "pool counts", "nidle", "hash size", "hash more",
    "hash bucket", "colour", "hook grow", "hook empty"};

static void
damage(void *arg)
{
	int id = (int)(intptr_t)arg;
	struct kmem_pool_page *ph;
	static struct kmem_pool_page fake;
	unsigned int w;
	int i;

	if (id == HASH_SIZE) {
		/* A hashed pool without pages: only the table to look at. */
		pool_init(
		    &pl, ISZ, 0, 0, PR_NOTOUCH, "chk-off", NULL, IPL_NONE);
		kmem_pool_check(&pl);
		pl.pr_phhashmask = 7;
		t_ck_want(OUT "page hash of 8 buckets", "chk-off");
		kmem_pool_check(&pl);
		return;
	}
	ph = mk(id == NOT_HASHED || id == HASH_MORE || id == HASH_BUCKET
		? "chk-off"
		: "chk",
	    id == NOT_HASHED || id == HASH_MORE || id == HASH_BUCKET
		? PR_NOTOUCH
		: 0);
	switch (id) {
	case MAGIC:
		pl.pr_magic = 0;
		t_ck_want(OUT "magic 0x0, not an initialised pool", "chk");
		break;
	case LINKS:
		ph->ph_prev = NULL;
		t_ck_want(OUT
		    "partial list: the links around page %p are wrong",
		    "chk", (void *)ph->ph_page);
		break;
	case HDR_POOL:
		ph->ph_pool = (struct pool *)&fake;
		t_ck_want(OUT
		    "page %p on the partial list has a header of pool "
		    "%p, list 1",
		    "chk", (void *)ph->ph_page, (void *)&fake);
		break;
	case HDR_AT:
		ph->ph_page += 4096;
		t_ck_want(OUT "page %p: its header is at %p, not at its start",
		    "chk", (void *)ph->ph_page, (void *)ph);
		break;
	case CANARY:
		ph->ph_canary ^= 1;
		t_ck_want(OUT
		    "page %p: its header's canary is %#llx, not %#llx",
		    "chk", (void *)ph->ph_page,
		    (unsigned long long)ph->ph_canary,
		    (unsigned long long)ph->ph_canary ^ 1);
		break;
	case COUNTS:
		ph->ph_nmissing = ph->ph_nitems + 1;
		t_ck_want(OUT "page %p: %u of %u items out (%u a page)", "chk",
		    (void *)ph->ph_page, ph->ph_nitems + 1, ph->ph_nitems,
		    pl.pr_itemsperpage);
		break;
	case LIST:
		ph->ph_nmissing = 0;
		t_ck_want(OUT
		    "page %p with 0 of %u items out is on the partial "
		    "list",
		    "chk", (void *)ph->ph_page, ph->ph_nitems);
		break;
	case BITMAP:
		/* A free bit past the last item. */
		w = ph->ph_nitems / 64;
		if (ph->ph_nitems % 64 == 0)
			_exit(5);
		ph->ph_bitmap[w] |= (uint64_t)1 << (ph->ph_nitems % 64);
		t_ck_want(OUT
		    "page %p: bitmap word %u is %#llx (%u items, hint %u)",
		    "chk", (void *)ph->ph_page, w,
		    (unsigned long long)ph->ph_bitmap[w], ph->ph_nitems,
		    ph->ph_hint);
		break;
	case HINT:
		/* A free item below the hint: the search would skip it. */
		ph->ph_hint = 1;
		t_ck_want(OUT
		    "page %p: bitmap word 0 is %#llx (%u items, hint 1)",
		    "chk", (void *)ph->ph_page,
		    (unsigned long long)ph->ph_bitmap[0], ph->ph_nitems);
		if (pl.pr_bmwords < 2)
			_exit(5);
		break;
	case POPCOUNT:
		ph->ph_bitmap[0] &= ~((uint64_t)1 << NOUT); /* one free less */
		t_ck_want(OUT
		    "page %p: %u items free in its bitmap, but %u of %u "
		    "out",
		    "chk", (void *)ph->ph_page, ph->ph_nitems - NOUT - 1, NOUT,
		    ph->ph_nitems);
		break;
	case NOT_HASHED:
		pl.pr_phhash[ph_hash_index(
		    &pl, (uintptr_t)ph->ph_page >> pl.pr_alloc->pa_pageshift)] =
		    NULL;
		t_ck_want(OUT "page %p is not in the page hash", "chk-off",
		    (void *)ph->ph_page);
		break;
	case POOL_COUNTS:
		pl.pr_nitems++;
		t_ck_want(OUT PAGES "; the pool says 1 (0), %u and %u", "chk",
		    1u, 0u, (unsigned long)(ph->ph_nitems - NOUT),
		    (unsigned long)NOUT, ph->ph_nitems - NOUT + 1, NOUT);
		break;
	case NIDLE:
		pl.pr_nidle = 1;
		t_ck_want(OUT PAGES "; the pool says 1 (1)", "chk", 1u, 0u,
		    (unsigned long)(ph->ph_nitems - NOUT), (unsigned long)NOUT);
		break;
	case HASH_MORE:
		/* The page twice in its chain. */
		fake = *ph;
		fake.ph_hnext = ph->ph_hnext;
		ph->ph_hnext = &fake;
		t_ck_want(OUT
		    "the page hash holds more than pr_npages (1) pages",
		    "chk-off");
		break;
	case HASH_BUCKET:
		/*
		 * At the head of the page's own bucket (the only one not
		 * empty, so the checker meets it first, before it has
		 * counted a page), a header of no pool.
		 */
		for (w = 0; w <= pl.pr_phhashmask && pl.pr_phhash[w] != ph; w++)
			;
		if (w > pl.pr_phhashmask)
			_exit(5);
		memset(&fake, 0, sizeof fake);
		fake.ph_hnext = pl.pr_phhash[w];
		pl.pr_phhash[w] = &fake;
		t_ck_want(OUT "page hash bucket %u holds page 0x0 of pool 0x0",
		    "chk-off", w);
		break;
	case COLOR:
		pl.pr_curcolor = pl.pr_maxcolor + 8;
		t_ck_want(OUT "colour %zu above its maximum %zu", "chk",
		    pl.pr_curcolor, pl.pr_maxcolor);
		break;
	case HOOK_GROW:
		/* The next page found the damage. */
		kmemi_debug_configure("check");
		pl.pr_nitems++;
		t_ck_want(OUT PAGES, "chk", 2u, 1u,
		    (unsigned long)ph->ph_nitems, (unsigned long)ph->ph_nitems);
		for (i = 0; i < 2 * (int)ph->ph_nitems; i++)
			(void)pool_get(&pl, PR_NOWAIT);
		return;
	case HOOK_EMPTY:
		/* So did the page that emptied. */
		kmemi_debug_configure("check");
		pl.pr_nitems++;
		t_ck_want(OUT PAGES, "chk", 1u, 1u,
		    (unsigned long)ph->ph_nitems, 0ul);
		for (i = 0; i < NOUT; i++)
			pool_put(&pl, items[i]);
		return;
	default:
		_exit(6);
	}
	kmem_pool_check(&pl);
}

static void
t_damage(void)
{
	t_ck_expect_cases(damage, names, NCASES);
}

/* Sound pools pass, through use and through the hooks. */
static void
t_sound(void)
{
	static struct pool p1, p2;
	void *v[3000];
	int i, k;

	kmemi_debug_configure("check");
	pool_init(&p1, 48, 0, 0, 0, "sound-on", NULL, IPL_NONE);
	pool_init(&p2, 200, 0, 0, PR_NOTOUCH, "sound-off", NULL, IPL_NONE);
	for (k = 0; k < 2; k++) {
		struct pool *pp = k ? &p2 : &p1;

		for (i = 0; i < 3000; i++)
			T_ASSERT((v[i] = pool_get(pp, PR_WAITOK)) != NULL);
		kmem_pool_check(pp);
		for (i = 0; i < 3000; i += 3)
			pool_put(pp, v[i]);
		kmem_pool_check(pp);
		for (i = 0; i < 3000; i++)
			if (i % 3 != 0)
				pool_put(pp, v[i]);
		kmem_pool_check(pp);
		kmemi_pool_reclaim_idle(pp, true);
		kmem_pool_check(pp);
		T_EQ(pp->pr_npages, 0);
	}
	kmem_check_all();
	pool_destroy(&p1);
	pool_destroy(&p2);
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
