/*
 * vmem_mt.c -- vmem under threads (run under TSan by the "threads" label).
 *
 *  1. Several threads on one quantum-1 ID arena: random alloc, xalloc and
 *     xalloc_addr, every result claimed in a shadow map (one byte per ID,
 *     compare-and-swap 0 -> thread id) and verified and cleared on free;
 *     each thread runs kmem_vmem_check every 1024 operations.
 *  2. VM_SLEEP waiters: an arena too small for all threads' demand; every
 *     request sleeps until another thread frees; vs_wait > 0.
 *  3. Child arenas importing from one shared parent, created and destroyed
 *     concurrently; plus one importing child shared by all threads (it
 *     and its parent checked by kmem_vmem_check during the traffic).
 */
#include "t.h"
#include "t_vmem.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include <kmem/pool.h>
#include <kmem/vmem.h>

#define MAXTHREADS 8

static unsigned g_nthreads;
static uint64_t g_seed;
static uint64_t g_deadline_ns;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
set_deadline(uint64_t ms)
{
	g_deadline_ns = now_ns() + t_scale(ms) * 1000000u;
}

static bool
past_deadline(void)
{
	return now_ns() > g_deadline_ns;
}

static void
run_threads(void *(*fn)(void *))
{
	pthread_t th[MAXTHREADS];
	static unsigned ids[MAXTHREADS];

	for (unsigned i = 0; i < g_nthreads; i++) {
		ids[i] = i;
		T_EQ(pthread_create(&th[i], NULL, fn, &ids[i]), 0);
	}
	for (unsigned i = 0; i < g_nthreads; i++)
		T_EQ(pthread_join(th[i], NULL), 0);
}

static void
noprint(const char *fmt, ...)
{
	(void)fmt;
}

/* ---- shadow map: one byte per unit, CAS-claimed ---- */

struct shadow {
	_Atomic unsigned char *b;
	vmem_addr_t base;
	vmem_size_t unit;
	size_t n;
};

static void
sh_claim(struct shadow *sh, vmem_addr_t a, vmem_size_t s, unsigned char id)
{
	T_GE(a, sh->base);
	T_LE((a - sh->base) / sh->unit + s / sh->unit, sh->n);
	for (vmem_size_t o = 0; o < s; o += sh->unit) {
		unsigned char z = 0;
		size_t i = (size_t)((a + o - sh->base) / sh->unit);

		if (!atomic_compare_exchange_strong_explicit(&sh->b[i], &z, id,
			memory_order_relaxed, memory_order_relaxed))
			T_FAIL("thread %u got 0x%jx+0x%jx, but 0x%jx is held "
			       "by thread %u",
			    id, (uintmax_t)a, (uintmax_t)s, (uintmax_t)(a + o),
			    z);
	}
}

static void
sh_release(struct shadow *sh, vmem_addr_t a, vmem_size_t s, unsigned char id)
{
	for (vmem_size_t o = 0; o < s; o += sh->unit) {
		size_t i = (size_t)((a + o - sh->base) / sh->unit);
		unsigned char v =
		    atomic_load_explicit(&sh->b[i], memory_order_relaxed);

		if (v != id)
			T_FAIL("thread %u frees 0x%jx+0x%jx: 0x%jx now reads "
			       "%u (overwritten)",
			    id, (uintmax_t)a, (uintmax_t)s, (uintmax_t)(a + o),
			    v);
		atomic_store_explicit(&sh->b[i], 0, memory_order_relaxed);
	}
}

static void
sh_init(struct shadow *sh, vmem_addr_t base, vmem_size_t size, vmem_size_t unit)
{
	sh->base = base;
	sh->unit = unit;
	sh->n = size / unit;
	sh->b = calloc(sh->n, 1);
	T_ASSERT(sh->b != NULL);
}

static void
sh_check_empty(struct shadow *sh)
{
	for (size_t i = 0; i < sh->n; i++)
		T_EQ(atomic_load(&sh->b[i]), 0);
	free((void *)sh->b);
	sh->b = NULL;
}

struct live {
	vmem_addr_t addr;
	vmem_size_t size;
	bool x;
};

/* ---- 1. ID arena ---- */

#define IDBASE ((vmem_addr_t)0x1000)
#define IDSIZE ((vmem_size_t)1 << 20)
#define IDQC   8
#define IDLIVE 256

/* Quantum-cache pages: the smallest power of two above 3 x IDQC. */
#define IDQC_PAGE ((vmem_size_t)32)

static vmem_t *g_ids;
static struct shadow g_idsh;
static _Atomic uint64_t g_id_ops, g_id_enomem;

static vm_flag_t
rand_fit(struct t_rng *r)
{
	static const vm_flag_t f[] = {0, VM_INSTANTFIT, VM_BESTFIT, VM_NEXTFIT};

	return f[t_rng_below(r, 4)];
}

static void
id_free(struct live *lv, unsigned *n, unsigned i, unsigned char id)
{
	struct live e = lv[i];

	lv[i] = lv[--*n];
	sh_release(&g_idsh, e.addr, e.size, id);
	if (e.x)
		vmem_xfree(g_ids, e.addr, e.size);
	else
		vmem_free(g_ids, e.addr, e.size);
}

static void *
id_thread(void *arg)
{
	unsigned tid = *(unsigned *)arg;
	unsigned char id = (unsigned char)(tid + 1);
	struct live lv[IDLIVE];
	unsigned n = 0;
	struct t_rng r;
	uint64_t ops = 0, nomem = 0;
	uint64_t maxops = t_scale(400000) / g_nthreads;

	t_rng_init(&r, g_seed, tid);
	while (ops < maxops && !(ops % 256 == 0 && past_deadline())) {
		ops++;
		if (n > 0 && (n == IDLIVE || t_rng_below(&r, 100) < 45)) {
			id_free(lv, &n, (unsigned)t_rng_below(&r, n), id);
			continue;
		}
		unsigned k = (unsigned)t_rng_below(&r, 10);
		vmem_size_t s = t_rng_below(&r, 64) + 1;
		vmem_addr_t a;
		int e;

		if (k < 5) {
			vm_flag_t sl =
			    t_rng_below(&r, 2) ? VM_SLEEP : VM_NOSLEEP;

			e = vmem_alloc(g_ids, s, sl | rand_fit(&r), &a);
			if (sl == VM_SLEEP)
				T_EQ(e, 0);
			lv[n].x = false;
		} else if (k < 9) {
			vmem_size_t al = (vmem_size_t)1 << t_rng_below(&r, 7);
			vmem_size_t ph = t_rng_below(&r, al);
			vmem_size_t nc = 0;
			vmem_addr_t mn = VMEM_ADDR_MIN, mx = VMEM_ADDR_MAX;

			if (t_rng_below(&r, 3) == 0)
				nc = (vmem_size_t)128 << t_rng_below(&r, 4);
			if (t_rng_below(&r, 3) == 0) {
				mn = IDBASE + t_rng_below(&r, IDSIZE - 8192);
				mx = mn + 4096 + t_rng_below(&r, 4096) - 1;
			}
			e = vmem_xalloc(g_ids, s, al, ph, nc, mn, mx,
			    VM_NOSLEEP | rand_fit(&r), &a);
			if (e == 0) {
				T_EQ((a - ph) % al, 0);
				T_ASSERT(a >= mn && a + s - 1 <= mx);
				if (nc != 0)
					T_EQ(a / nc, (a + s - 1) / nc);
			}
			lv[n].x = true;
		} else {
			a = IDBASE + t_rng_below(&r, IDSIZE - 64);
			e = vmem_xalloc_addr(g_ids, a, s, VM_NOSLEEP);
			lv[n].x = true;
		}
		if (e != 0) {
			T_EQ(e, ENOMEM);
			nomem++;
			continue;
		}
		T_ASSERT(a >= IDBASE && a + s <= IDBASE + IDSIZE);
		sh_claim(&g_idsh, a, s, id);
		lv[n].addr = a;
		lv[n].size = s;
		n++;
		if (ops % 1024 == 0) {
			struct kmem_vmem_stats st = t_vmem_stats(g_ids);

			T_LE(st.vs_inuse, st.vs_total);
			T_LE(vmem_size(g_ids, VMEM_ALLOC), IDSIZE);
			kmem_vmem_check(g_ids); /* while the others work */
		}
	}
	while (n > 0)
		id_free(lv, &n, n - 1, id);
	atomic_fetch_add(&g_id_ops, ops);
	atomic_fetch_add(&g_id_enomem, nomem);
	return NULL;
}

static void
test_id_arena(void)
{
	struct kmem_vmem_stats st;
	vmem_size_t inuse;

	g_ids = vmem_create("mt-ids", IDBASE, IDSIZE, 1, NULL, NULL, NULL, IDQC,
	    VM_SLEEP, IPL_NONE);
	T_ASSERT(g_ids != NULL);
	sh_init(&g_idsh, IDBASE, IDSIZE, 1);
	set_deadline(1500);
	run_threads(id_thread);
	printf("   %ju ops, %ju ENOMEM\n", (uintmax_t)g_id_ops,
	    (uintmax_t)g_id_enomem);
	/*
	 * Everything is freed; what is still allocated is the quantum
	 * caches' pages (IDQC_PAGE each), until they are reaped.
	 */
	inuse = vmem_size(g_ids, VMEM_ALLOC);
	st = t_vmem_stats(g_ids);
	T_EQ(inuse % IDQC_PAGE, 0);
	T_EQ(st.vs_inuse, inuse);
	T_EQ(st.vs_nbusy, inuse / IDQC_PAGE);
	T_EQ(st.vs_alloc - st.vs_free, st.vs_nbusy);
	T_EQ(vmem_size(g_ids, VMEM_FREE), IDSIZE - inuse);
	kmem_reap_all();
	T_EQ(vmem_size(g_ids, VMEM_ALLOC), 0);
	T_EQ(vmem_size(g_ids, VMEM_FREE), IDSIZE);
	st = t_vmem_stats(g_ids);
	T_EQ(st.vs_nbusy, 0);
	T_EQ(st.vs_nfree, 1);
	T_EQ(st.vs_alloc, st.vs_free);
	sh_check_empty(&g_idsh);
	/* Everything coalesced back: the whole range in one piece. */
	T_EQ(vmem_xalloc_addr(g_ids, IDBASE, IDSIZE, VM_NOSLEEP), 0);
	vmem_xfree(g_ids, IDBASE, IDSIZE);
	vmem_destroy(g_ids);
}

/* ---- 2. VM_SLEEP waiters ---- */

#define SLBASE ((vmem_addr_t)0x10000)
#define SLSIZE ((vmem_size_t)64)

static vmem_t *g_sl;
static struct shadow g_slsh;
static _Atomic unsigned g_sl_started;
static _Atomic uint64_t g_sl_enomem; /* constrained requests refused */

static void
hold_briefly(struct t_rng *r)
{
	unsigned k = (unsigned)t_rng_below(r, 4);

	if (k == 0) {
		struct timespec ts = {0, (long)(t_rng_below(r, 50) + 1) * 1000};

		nanosleep(&ts, NULL);
	} else {
		for (unsigned i = 0; i < k; i++)
			sched_yield();
	}
}

static void *
sleep_thread(void *arg)
{
	unsigned tid = *(unsigned *)arg;
	unsigned char id = (unsigned char)(tid + 1);
	struct t_rng r;
	uint64_t iters = t_scale(3000);

	t_rng_init(&r, g_seed, tid);
	atomic_fetch_add(&g_sl_started, 1);
	for (uint64_t i = 0; i < iters; i++) {
		vmem_size_t s = 8 + t_rng_below(&r, 25);
		vmem_addr_t a;
		bool x = t_rng_below(&r, 2);

		if (i > 0 && i % 64 == 0 && past_deadline())
			break;
		if (x && i > 0 && t_rng_below(&r, 2)) {
			/*
			 * Constrained (align 8 on a quantum-1 arena): no
			 * fit is ENOMEM at once, VM_SLEEP or not (NetBSD).
			 * Never the first request, which must sleep.
			 */
			int e = vmem_xalloc(g_sl, s, 8, 0, 0, VMEM_ADDR_MIN,
			    VMEM_ADDR_MAX, VM_SLEEP | rand_fit(&r), &a);

			if (e == ENOMEM) {
				atomic_fetch_add(&g_sl_enomem, 1);
				continue;
			}
			T_EQ(e, 0);
			T_EQ(a % 8, 0);
		} else if (x) {
			/* Unconstrained vmem_xalloc: waits like vmem_alloc. */
			T_EQ(vmem_xalloc(g_sl, s, 0, 0, 0, VMEM_ADDR_MIN,
				 VMEM_ADDR_MAX, VM_SLEEP | rand_fit(&r), &a),
			    0);
		} else {
			T_EQ(vmem_alloc(g_sl, s, VM_SLEEP | rand_fit(&r), &a),
			    0);
		}
		T_ASSERT(a >= SLBASE && a + s <= SLBASE + SLSIZE);
		sh_claim(&g_slsh, a, s, id);
		hold_briefly(&r);
		sh_release(&g_slsh, a, s, id);
		if (x)
			vmem_xfree(g_sl, a, s);
		else
			vmem_free(g_sl, a, s);
	}
	return NULL;
}

static void *
sleep_main(void *arg)
{
	(void)arg;
	run_threads(sleep_thread);
	return NULL;
}

static void
test_sleep_waiters(void)
{
	struct kmem_vmem_stats st;
	pthread_t runner;
	vmem_addr_t all;

	g_sl = vmem_create("mt-sleep", SLBASE, SLSIZE, 1, NULL, NULL, NULL, 0,
	    VM_SLEEP, IPL_NONE);
	T_ASSERT(g_sl != NULL);
	sh_init(&g_slsh, SLBASE, SLSIZE, 1);
	set_deadline(1500);

	/* Hold everything: every thread's first request must sleep. */
	T_EQ(vmem_alloc(g_sl, SLSIZE, VM_SLEEP, &all), 0);
	T_EQ(all, SLBASE);
	T_EQ(pthread_create(&runner, NULL, sleep_main, NULL), 0);
	while (atomic_load(&g_sl_started) < g_nthreads)
		sched_yield();
	{
		struct timespec ts = {0, 100 * 1000 * 1000};

		nanosleep(&ts, NULL);
	}
	T_EQ(vmem_size(g_sl, VMEM_ALLOC), SLSIZE);
	vmem_free(g_sl, all, SLSIZE);
	T_EQ(pthread_join(runner, NULL), 0);

	st = t_vmem_stats(g_sl);
	printf("   %ju allocs, %ju waits\n", (uintmax_t)st.vs_alloc,
	    (uintmax_t)st.vs_wait);
	T_GE(st.vs_wait, g_nthreads);
	T_EQ(st.vs_fail, atomic_load(&g_sl_enomem));
	T_EQ(vmem_size(g_sl, VMEM_ALLOC), 0);
	T_EQ(st.vs_nbusy, 0);
	T_EQ(st.vs_alloc, st.vs_free);
	sh_check_empty(&g_slsh);
	vmem_destroy(g_sl);
}

/* ---- 3. children importing from one shared parent ---- */

#define PQ    ((vmem_size_t)4096)
#define PBASE ((vmem_addr_t)0x40000000)
#define PSIZE ((vmem_size_t)256 << 20)
#define CLIVE 32
/* Children's qcache_max; their cache pages: smallest 2^n above 3 x CQC. */
#define CQC	 (4 * PQ)
#define CQC_PAGE (16 * PQ)

static vmem_t *g_parent;
static struct shadow g_psh;
static _Atomic uint64_t g_children, g_child_allocs;

static void *
children_thread(void *arg)
{
	unsigned tid = *(unsigned *)arg;
	unsigned char id = (unsigned char)(tid + 1);
	struct t_rng r;
	struct live lv[CLIVE];
	char name[32];
	uint64_t nchild = 0, nalloc = 0;

	t_rng_init(&r, g_seed, tid);
	snprintf(name, sizeof name, "mt-child-%u", tid);
	for (uint64_t it = 0; it < t_scale(3000) && !past_deadline(); it++) {
		vm_flag_t cf = t_rng_below(&r, 4) == 0 ? VM_LARGEIMPORT : 0;
		bool qc = t_rng_below(&r, 2);
		vmem_t *c = vmem_create(name, 0, 0, PQ, vmem_alloc, vmem_free,
		    g_parent, qc ? CQC : 0, VM_SLEEP | cf, IPL_NONE);
		unsigned n = 0;
		struct kmem_vmem_stats st;

		T_ASSERT(c != NULL);
		nchild++;
		if (t_rng_below(&r, 3) == 0)
			T_EQ(kmem_vmem_set_min_import(
				 c, PQ << t_rng_below(&r, 6)),
			    0);
		for (unsigned k = 0; k < CLIVE; k++) {
			vmem_size_t s = (t_rng_below(&r, 8) + 1) * PQ;
			bool x = t_rng_below(&r, 2);
			vmem_addr_t a;
			int e;

			if (x) {
				vmem_size_t al = PQ << t_rng_below(&r, 6);

				e = vmem_xalloc(c, s, al, 0, 0, VMEM_ADDR_MIN,
				    VMEM_ADDR_MAX, VM_NOSLEEP, &a);
				if (e == 0)
					T_EQ(a % al, 0);
			} else {
				e = vmem_alloc(c, s, VM_NOSLEEP, &a);
			}
			if (e != 0) {
				T_EQ(e, ENOMEM);
				continue;
			}
			T_ASSERT(a >= PBASE && a + s <= PBASE + PSIZE);
			sh_claim(&g_psh, a, s, id);
			lv[n].addr = a;
			lv[n].size = s;
			lv[n].x = x;
			n++;
			nalloc++;
			if (t_rng_below(&r, 4) == 0) {
				/* other threads' arenas, walked meanwhile */
				vmem_printall("", noprint);
				(void)vmem_whatis(a, noprint);
			}
		}
		st = t_vmem_stats(c);
		T_LE(st.vs_inuse, st.vs_imported);
		T_EQ(st.vs_total, st.vs_imported);
		while (n > 0) {
			unsigned i = (unsigned)t_rng_below(&r, n);
			struct live e = lv[i];

			lv[i] = lv[--n];
			sh_release(&g_psh, e.addr, e.size, id);
			if (e.x)
				vmem_xfree(c, e.addr, e.size);
			else
				vmem_free(c, e.addr, e.size);
		}
		st = t_vmem_stats(c);
		if (qc) {
			/*
			 * Cache pages stay allocated (and their spans
			 * imported) until reaped: any thread's
			 * kmem_reap_all() may give them back meanwhile.
			 */
			T_EQ(st.vs_inuse % CQC_PAGE, 0);
			T_EQ(st.vs_nbusy, st.vs_inuse / CQC_PAGE);
			T_LE(st.vs_inuse, st.vs_imported);
			T_EQ(st.vs_total, st.vs_imported);
			/*
			 * Reap.  Another thread's reap may hold this
			 * arena's cached items for a while, destroying them:
			 * reap again until they are all back.
			 */
			if (t_rng_below(&r, 2)) {
				for (unsigned k = 0; st.vs_inuse != 0; k++) {
					T_LT(k, 100000);
					if (k > 0)
						sched_yield();
					kmem_reap_all();
					st = t_vmem_stats(c);
				}
				qc = false;
			}
		}
		if (!qc) {
			T_EQ(st.vs_inuse, 0);
			T_EQ(st.vs_nbusy, 0);
			T_EQ(st.vs_imported, 0);
			T_EQ(st.vs_total, 0);
			T_EQ(st.vs_import, st.vs_release);
		}
		vmem_destroy(c);
		/* And the parent itself, directly. */
		if (t_rng_below(&r, 2)) {
			vmem_addr_t a;
			vmem_size_t s = (t_rng_below(&r, 4) + 1) * PQ;

			T_EQ(vmem_alloc(g_parent, s, VM_SLEEP, &a), 0);
			sh_claim(&g_psh, a, s, id);
			(void)vmem_size(g_parent, VMEM_FREE);
			sh_release(&g_psh, a, s, id);
			vmem_free(g_parent, a, s);
		}
	}
	atomic_fetch_add(&g_children, nchild);
	atomic_fetch_add(&g_child_allocs, nalloc);
	return NULL;
}

static void
test_children_create_destroy(void)
{
	g_parent = vmem_create("mt-parent", PBASE, PSIZE, PQ, NULL, NULL, NULL,
	    0, VM_SLEEP, IPL_NONE);
	T_ASSERT(g_parent != NULL);
	sh_init(&g_psh, PBASE, PSIZE, PQ);
	set_deadline(1500);
	run_threads(children_thread);
	printf("   %ju children, %ju allocations\n", (uintmax_t)g_children,
	    (uintmax_t)g_child_allocs);
	T_EQ(vmem_size(g_parent, VMEM_ALLOC), 0);
	T_EQ(t_vmem_stats(g_parent).vs_nbusy, 0);
	sh_check_empty(&g_psh);
	vmem_destroy(g_parent);
}

/* One importing child shared by every thread (lost import races). */
static vmem_t *g_shchild;

static void *
shared_child_thread(void *arg)
{
	unsigned tid = *(unsigned *)arg;
	unsigned char id = (unsigned char)(tid + 1);
	struct t_rng r;
	struct live lv[64];
	unsigned n = 0;

	t_rng_init(&r, g_seed, tid);
	for (uint64_t it = 0; it < t_scale(100000) / g_nthreads; it++) {
		if (it % 128 == 0 && past_deadline())
			break;
		if (it % 1024 == 0) {
			kmem_vmem_check(g_shchild);
			kmem_vmem_check(g_parent);
		}
		if (n > 0 && (n == 64 || t_rng_below(&r, 100) < 50)) {
			unsigned i = (unsigned)t_rng_below(&r, n);
			struct live e = lv[i];

			lv[i] = lv[--n];
			sh_release(&g_psh, e.addr, e.size, id);
			if (e.x)
				vmem_xfree(g_shchild, e.addr, e.size);
			else
				vmem_free(g_shchild, e.addr, e.size);
			continue;
		}
		vmem_size_t s = (t_rng_below(&r, 16) + 1) * PQ;
		bool x = t_rng_below(&r, 3) == 0;
		vm_flag_t sl = t_rng_below(&r, 2) ? VM_SLEEP : VM_NOSLEEP;
		vmem_addr_t a;
		int e;

		if (x)
			e = vmem_xalloc(g_shchild, s, PQ << t_rng_below(&r, 5),
			    0, 0, VMEM_ADDR_MIN, VMEM_ADDR_MAX, sl, &a);
		else
			e = vmem_alloc(g_shchild, s, sl, &a);
		if (e != 0) {
			T_EQ(e, ENOMEM);
			T_EQ(sl, VM_NOSLEEP);
			continue;
		}
		T_ASSERT(a >= PBASE && a + s <= PBASE + PSIZE);
		sh_claim(&g_psh, a, s, id);
		lv[n].addr = a;
		lv[n].size = s;
		lv[n].x = x;
		n++;
	}
	while (n > 0) {
		n--;
		sh_release(&g_psh, lv[n].addr, lv[n].size, id);
		if (lv[n].x)
			vmem_xfree(g_shchild, lv[n].addr, lv[n].size);
		else
			vmem_free(g_shchild, lv[n].addr, lv[n].size);
	}
	return NULL;
}

static void
test_shared_importing_child(void)
{
	struct kmem_vmem_stats st;

	g_parent = vmem_create("mt-parent2", PBASE, PSIZE, PQ, NULL, NULL, NULL,
	    0, VM_SLEEP, IPL_NONE);
	T_ASSERT(g_parent != NULL);
	g_shchild = vmem_create("mt-shchild", 0, 0, PQ, vmem_alloc, vmem_free,
	    g_parent, 0, VM_SLEEP, IPL_NONE);
	T_ASSERT(g_shchild != NULL);
	T_EQ(kmem_vmem_set_min_import(g_shchild, 64 * PQ), 0);
	sh_init(&g_psh, PBASE, PSIZE, PQ);
	set_deadline(1000);
	run_threads(shared_child_thread);
	st = t_vmem_stats(g_shchild);
	printf("   %ju imports, %ju releases\n", (uintmax_t)st.vs_import,
	    (uintmax_t)st.vs_release);
	T_EQ(st.vs_inuse, 0);
	T_EQ(st.vs_imported, 0);
	T_EQ(st.vs_total, 0);
	T_EQ(st.vs_import, st.vs_release);
	T_EQ(vmem_size(g_parent, VMEM_ALLOC), 0);
	sh_check_empty(&g_psh);
	kmem_check_all();
	vmem_destroy(g_shchild);
	vmem_destroy(g_parent);
}

static void
on_alarm(int sig)
{
	static const char msg[] = "FAIL: watchdog: vmem_mt took too long "
				  "(lost wakeup or deadlock?)\n";

	(void)sig;
	if (write(2, msg, sizeof msg - 1) < 0) {
		/* nothing to do */
	}
	_exit(1);
}

int
main(void)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	signal(SIGALRM, on_alarm);
	alarm(240);
	g_seed = t_seed();
	g_nthreads = ncpu < 4	? 4
	    : ncpu > MAXTHREADS ? MAXTHREADS
				: (unsigned)ncpu;
	printf("threads: %u\n", g_nthreads);
	T_RUN(test_id_arena);
	T_RUN(test_sleep_waiters);
	T_RUN(test_children_create_destroy);
	T_RUN(test_shared_importing_child);
	return t_done();
}
