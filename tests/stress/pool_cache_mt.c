/*
 * pool_cache_mt.c -- pool_cache and vmem quantum caches under threads
 * (more threads than CPUs; run under TSan by the "threads" label).
 *
 *  1. Ten workers on one cache: get (PR_WAITOK/PR_NOWAIT, with and
 *     without paddr), put (paddr or not), destruct, and hand-offs of
 *     objects to each other through exchange slots.  Every object
 *     carries a magic the ctor writes and the dtor clears and an owner
 *     word claimed by compare-and-swap, both verified at every get, so
 *     an object handed out twice, handed out unconstructed or destructed
 *     while held fails at once.  1 ctor call in 97 fails.  A maintenance
 *     thread calls pool_cache_invalidate, pool_cache_reclaim, kmem_reap,
 *     kmem_reap_all, the statistics and kmem_pool_cache_check (which
 *     holds the whole cache at once) during the traffic.  At the end,
 *     exactly: constructed - destructed == cached (+ 0 out), and the
 *     pool's nget/nput match the ctor/dtor counts.
 *  2. The same with PR_LARGECACHE.
 *  3. Eight workers on one arena with quantum caches: random sizes up to
 *     and past qcache_max, every result claimed in a shadow map (one byte
 *     per quantum), reaping and kmem_vmem_check / kmem_check_all during
 *     the traffic; at the end, after kmem_reap_all, the arena has nothing
 *     in use.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/internal.h"
#include "t.h"
#include "t_vmem.h"

#define NWORKERS 10
#define NSLOTS	 32
#define HOLD_MAX 48

#define MAGIC_LIVE 0x4c495645c0ffee11ull
#define MAGIC_DEAD 0x44454144deadbeefull
#define OWNER_NONE 0u
#define OWNER_SLOT 0xffffu
#define PA_KEY	   ((paddr_t)0x5a5a5a5a5a5a5a5aull)

static uint64_t g_seed;
static uint64_t g_deadline_ns;
static atomic_bool g_stop;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool
past_deadline(void)
{
	return atomic_load_explicit(&g_stop, memory_order_relaxed) ||
	    now_ns() > g_deadline_ns;
}

static void
sleep_us(unsigned us)
{
	struct timespec ts = {0, (long)us * 1000};

	nanosleep(&ts, NULL);
}

/* ---- the objects ---- */

struct obj {
	uint64_t magic;
	uint64_t serial;
	uint64_t check[4]; /* serial * (i + 1) */
	_Atomic unsigned owner;
	unsigned scratch; /* written by the holder only */
};

static atomic_ulong g_nctor, g_nfail, g_ndtor, g_ctor_calls;

static int
obj_ctor(void *arg, void *v, int flags)
{
	struct obj *o = v;
	unsigned long call;
	int i;

	(void)arg;
	(void)flags;
	if (o->magic == MAGIC_LIVE)
		T_FAIL("ctor: %p is already constructed", v);
	call = atomic_fetch_add(&g_ctor_calls, 1) + 1;
	if (call % 97 == 0) {
		atomic_fetch_add(&g_nfail, 1);
		return ENOMEM;
	}
	o->serial = atomic_fetch_add(&g_nctor, 1) + 1;
	for (i = 0; i < 4; i++)
		o->check[i] = o->serial * (uint64_t)(i + 1);
	atomic_store_explicit(&o->owner, OWNER_NONE, memory_order_relaxed);
	o->scratch = 0;
	o->magic = MAGIC_LIVE;
	return 0;
}

static void
obj_dtor(void *arg, void *v)
{
	struct obj *o = v;
	unsigned owner;

	(void)arg;
	if (o->magic != MAGIC_LIVE)
		T_FAIL("dtor: %p is not constructed (magic %#llx)", v,
		    (unsigned long long)o->magic);
	owner = atomic_load_explicit(&o->owner, memory_order_relaxed);
	if (owner != OWNER_NONE)
		T_FAIL("dtor: %p is held by %#x", v, owner);
	o->magic = MAGIC_DEAD;
	atomic_fetch_add(&g_ndtor, 1);
}

static void
check_obj(const struct obj *o)
{
	int i;

	if (o->magic != MAGIC_LIVE)
		T_FAIL("get: %p is not constructed (magic %#llx)", (void *)o,
		    (unsigned long long)o->magic);
	for (i = 0; i < 4; i++)
		if (o->check[i] != o->serial * (uint64_t)(i + 1))
			T_FAIL("get: %p corrupted (serial %llu)", (void *)o,
			    (unsigned long long)o->serial);
}

/* owner: from -> to, or fail. */
static void
transfer(struct obj *o, unsigned from, unsigned to)
{
	unsigned was = from;

	if (!atomic_compare_exchange_strong(&o->owner, &was, to))
		T_FAIL("%p: owner %#x, expected %#x (-> %#x)", (void *)o, was,
		    from, to);
}

/* ---- phase 1/2: one cache ---- */

static pool_cache_t g_pc;
static _Atomic(struct obj *) g_slots[NSLOTS];

struct worker {
	unsigned tid;
	struct obj *held[HOLD_MAX];
	unsigned nheld;
	unsigned long ngets, nputs, nnull, nhand;
};

static struct worker g_workers[NWORKERS];

static void
w_take(struct worker *w, struct obj *o)
{
	check_obj(o);
	transfer(o, OWNER_NONE, w->tid);
	o->scratch = w->tid;
	w->held[w->nheld++] = o;
}

static struct obj *
w_drop(struct worker *w, struct t_rng *r)
{
	unsigned k = (unsigned)t_rng_below(r, w->nheld);
	struct obj *o = w->held[k];

	w->held[k] = w->held[--w->nheld];
	if (o->scratch != w->tid)
		T_FAIL(
		    "%p: scratch %u, holder %u", (void *)o, o->scratch, w->tid);
	check_obj(o);
	return o;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct t_rng r;
	struct obj *o;
	paddr_t pa;

	t_rng_init(&r, g_seed, w->tid);
	while (!past_deadline()) {
		unsigned op = (unsigned)t_rng_below(&r, 100);

		if (op < 45 && w->nheld < HOLD_MAX) {
			int flags = t_rng_below(&r, 4) ? PR_WAITOK : PR_NOWAIT;

			if (op & 1) {
				pa = 0;
				o = pool_cache_get_paddr(g_pc, flags, &pa);
				if (o != NULL && pa != POOL_PADDR_INVALID &&
				    pa != ((paddr_t)(uintptr_t)o ^ PA_KEY))
					T_FAIL("%p came with paddr %#jx",
					    (void *)o, (uintmax_t)pa);
			} else {
				o = pool_cache_get(g_pc, flags);
			}
			w->ngets++;
			if (o == NULL) {
				w->nnull++;
				continue;
			}
			w_take(w, o);
		} else if (op < 88 && w->nheld > 0) {
			o = w_drop(w, &r);
			transfer(o, w->tid, OWNER_NONE);
			if (op & 1)
				pool_cache_put_paddr(
				    g_pc, o, (paddr_t)(uintptr_t)o ^ PA_KEY);
			else
				pool_cache_put(g_pc, o);
			w->nputs++;
		} else if (op < 89 && w->nheld > 0) {
			o = w_drop(w, &r);
			transfer(o, w->tid, OWNER_NONE);
			pool_cache_destruct_object(g_pc, o);
		} else if (op < 99) {
			/* Hand one over (or none) and take what was there. */
			struct obj *mine = NULL;
			unsigned k = (unsigned)t_rng_below(&r, NSLOTS);

			if (w->nheld > 0 && t_rng_below(&r, 2)) {
				mine = w_drop(w, &r);
				transfer(mine, w->tid, OWNER_SLOT);
			}
			o = atomic_exchange(&g_slots[k], mine);
			if (o != NULL) {
				transfer(o, OWNER_SLOT, OWNER_NONE);
				if (w->nheld < HOLD_MAX) {
					w_take(w, o);
					w->nhand++;
				} else {
					check_obj(o);
					pool_cache_put(g_pc, o);
				}
			}
		} else {
			sched_yield();
		}
	}
	return NULL;
}

static void
noprint(const char *fmt, ...)
{
	(void)fmt;
}

static unsigned long g_ninval, g_nreclaim, g_nreap, g_nreapall, g_nstats,
    g_ncheck;

static void *
maint_main(void *arg)
{
	struct t_rng r;

	(void)arg;
	t_rng_init(&r, g_seed, 1000);
	while (!past_deadline()) {
		struct kmem_pool_stats st;

		switch (t_rng_below(&r, 11)) {
		case 0:
		case 1:
			pool_cache_invalidate(g_pc);
			g_ninval++;
			break;
		case 2:
		case 3:
			(void)pool_cache_reclaim(g_pc);
			g_nreclaim++;
			break;
		case 4:
		case 5:
		case 6:
			kmem_reap();
			g_nreap++;
			break;
		case 7:
			kmem_reap_all();
			g_nreapall++;
			break;
		case 10:
			/* All its CPU slots, depot and pool held at once. */
			kmem_pool_cache_check(g_pc);
			g_ncheck++;
			break;
		case 8:
			T_EQ(kmem_pool_cache_stats(g_pc, &st), 0);
			T_ASSERT(
			    st.ps_groupsize >= 15 && st.ps_groupsize <= 255);
			g_nstats++;
			break;
		default:
			kmem_pool_cache_print_stats(noprint);
			g_nstats++;
			break;
		}
		sleep_us((unsigned)t_rng_below(&r, 3000));
	}
	return NULL;
}

static void
run_cache_phase(const char *name, unsigned int flags, uint64_t ms)
{
	pthread_t th[NWORKERS], maint;
	struct kmem_pool_stats st;
	unsigned long gets = 0, puts = 0, nulls = 0, hands = 0, nctor, ndtor;
	unsigned i, k;

	atomic_store(&g_nctor, 0);
	atomic_store(&g_nfail, 0);
	atomic_store(&g_ndtor, 0);
	atomic_store(&g_ctor_calls, 0);
	atomic_store(&g_stop, false);
	g_ninval = g_nreclaim = g_nreap = g_nreapall = g_nstats = g_ncheck = 0;
	g_pc = pool_cache_init(sizeof(struct obj), 0, 0, flags, name, NULL,
	    IPL_NONE, obj_ctor, obj_dtor, NULL);
	T_ASSERT(g_pc != NULL);
	T_EQ(kmem_pool_cache_stats(g_pc, &st), 0);
	T_EQ(st.ps_groupsize, (flags & PR_LARGECACHE) ? 63 : 15);
	g_deadline_ns = now_ns() + t_scale(ms) * 1000000u;
	for (i = 0; i < NWORKERS; i++) {
		memset(&g_workers[i], 0, sizeof g_workers[i]);
		g_workers[i].tid = i + 1;
		T_EQ(pthread_create(&th[i], NULL, worker_main, &g_workers[i]),
		    0);
	}
	T_EQ(pthread_create(&maint, NULL, maint_main, NULL), 0);
	for (i = 0; i < NWORKERS; i++)
		T_EQ(pthread_join(th[i], NULL), 0);
	T_EQ(pthread_join(maint, NULL), 0);

	/* Give everything back: the workers' objects and the slots'. */
	for (i = 0; i < NWORKERS; i++) {
		struct worker *w = &g_workers[i];

		gets += w->ngets;
		puts += w->nputs;
		nulls += w->nnull;
		hands += w->nhand;
		while (w->nheld > 0) {
			struct obj *o = w->held[--w->nheld];

			check_obj(o);
			transfer(o, w->tid, OWNER_NONE);
			pool_cache_put(g_pc, o);
		}
	}
	for (k = 0; k < NSLOTS; k++) {
		struct obj *o = atomic_exchange(&g_slots[k], NULL);

		if (o != NULL) {
			check_obj(o);
			transfer(o, OWNER_SLOT, OWNER_NONE);
			pool_cache_put(g_pc, o);
		}
	}
	T_EQ(kmem_pool_cache_stats(g_pc, &st), 0);
	nctor = atomic_load(&g_nctor);
	ndtor = atomic_load(&g_ndtor);
	printf("   %lu gets (%lu NULL), %lu puts, %lu hand-offs; %lu ctor "
	       "(%lu failed), %lu dtor; %lu cached; group size %u, %lu "
	       "contended\n",
	    gets, nulls, puts, hands, nctor, (unsigned long)g_nfail, ndtor,
	    st.ps_cached_objects, st.ps_groupsize, st.ps_contended);
	printf("   maintenance: %lu invalidate, %lu reclaim, %lu reap, %lu "
	       "reap_all, %lu stats, %lu checks\n",
	    g_ninval, g_nreclaim, g_nreap, g_nreapall, g_nstats, g_ncheck);
	T_GT(gets, 0);
	T_GT(hands, 0);
	T_GT(g_ninval + g_nreclaim + g_nreapall, 0);
	T_GT(atomic_load(&g_nfail), 0);
	/* Conservation, exactly: nothing out, all the rest cached. */
	T_EQ(nctor - ndtor, st.ps_cached_objects);
	T_EQ(st.ps_nout, st.ps_cached_objects);
	T_EQ(st.ps_nget, nctor + atomic_load(&g_nfail));
	T_EQ(st.ps_nput, ndtor + atomic_load(&g_nfail));
	T_EQ(pool_cache_nget(g_pc), st.ps_nget);
	T_EQ(pool_cache_nput(g_pc), st.ps_nput);
	T_LE(st.ps_depothit + st.ps_depotmiss, st.ps_cpumiss);
	T_GE(st.ps_cpuhit + st.ps_cpumiss, gets - nulls + puts);
	/* Invalidate: everything cached is destructed. */
	pool_cache_invalidate(g_pc);
	T_EQ(atomic_load(&g_ndtor), nctor);
	T_EQ(kmem_pool_cache_stats(g_pc, &st), 0);
	T_EQ(st.ps_cached_objects, 0);
	T_EQ(st.ps_nout, 0);
	kmem_reap_all();
	T_EQ(kmem_pool_cache_stats(g_pc, &st), 0);
	T_EQ(st.ps_npages, 0);
	pool_cache_destroy(g_pc);
	T_EQ(atomic_load(&g_ndtor), nctor);
	g_pc = NULL;
}

static void
test_cache_normal(void)
{
	run_cache_phase("mt-normal", 0, 3000);
}

static void
test_cache_large(void)
{
	run_cache_phase("mt-large", PR_LARGECACHE, 2000);
}

/* ---- phase 3: quantum caches ---- */

#define QC_Q	   16
#define QC_MAX	   (16 * QC_Q)
#define QC_BASE	   0x100000
#define QC_SIZE	   (4 << 20)
#define QC_WORKERS 8
#define QC_HOLD	   64

static vmem_t *g_vm;
static _Atomic unsigned char g_shadow[QC_SIZE / QC_Q];

static void
qc_claim(vmem_addr_t a, vmem_size_t s, unsigned char id)
{
	vmem_size_t o;

	if (a & (QC_Q - 1))
		T_FAIL("0x%jx not quantum-aligned", (uintmax_t)a);
	if (a < QC_BASE || a + s > QC_BASE + QC_SIZE)
		T_FAIL("0x%jx+0x%jx outside the arena", (uintmax_t)a,
		    (uintmax_t)s);
	for (o = 0; o < s; o += QC_Q) {
		unsigned char z = 0;

		if (!atomic_compare_exchange_strong(
			&g_shadow[(a + o - QC_BASE) / QC_Q], &z, id))
			T_FAIL("thread %u got 0x%jx+0x%jx; 0x%jx held by %u",
			    id, (uintmax_t)a, (uintmax_t)s, (uintmax_t)(a + o),
			    z);
	}
}

static void
qc_release(vmem_addr_t a, vmem_size_t s, unsigned char id)
{
	vmem_size_t o;

	for (o = 0; o < s; o += QC_Q) {
		unsigned char was = id;

		if (!atomic_compare_exchange_strong(
			&g_shadow[(a + o - QC_BASE) / QC_Q], &was, 0))
			T_FAIL("thread %u frees 0x%jx+0x%jx: 0x%jx reads %u",
			    id, (uintmax_t)a, (uintmax_t)s, (uintmax_t)(a + o),
			    was);
	}
}

static void *
qc_worker(void *arg)
{
	unsigned char id = (unsigned char)(uintptr_t)arg;
	vmem_addr_t a[QC_HOLD];
	vmem_size_t sz[QC_HOLD];
	unsigned n = 0;
	struct t_rng r;

	t_rng_init(&r, g_seed, 100u + id);
	while (!past_deadline()) {
		if (n < QC_HOLD && (n == 0 || t_rng_below(&r, 2))) {
			vmem_size_t s = 1 + t_rng_below(&r, QC_MAX + 4 * QC_Q);
			vm_flag_t f =
			    t_rng_below(&r, 2) ? VM_SLEEP : VM_NOSLEEP;

			if (vmem_alloc(g_vm, s, f, &a[n]) != 0) {
				T_ASSERT(f == VM_NOSLEEP);
				continue;
			}
			sz[n] = s;
			qc_claim(a[n], vmem_roundup_size(g_vm, s), id);
			n++;
		} else {
			unsigned k = (unsigned)t_rng_below(&r, n);

			qc_release(a[k], vmem_roundup_size(g_vm, sz[k]), id);
			vmem_free(g_vm, a[k], sz[k]);
			a[k] = a[n - 1];
			sz[k] = sz[n - 1];
			n--;
		}
	}
	while (n > 0) {
		n--;
		qc_release(a[n], vmem_roundup_size(g_vm, sz[n]), id);
		vmem_free(g_vm, a[n], sz[n]);
	}
	return NULL;
}

static void *
qc_maint(void *arg)
{
	struct t_rng r;
	unsigned long n = 0;

	(void)arg;
	t_rng_init(&r, g_seed, 2000);
	while (!past_deadline()) {
		if (t_rng_below(&r, 4) == 0)
			kmem_reap_all();
		else
			kmem_reap();
		(void)vmem_size(g_vm, VMEM_ALLOC);
		kmem_vmem_check(g_vm);
		if (n % 8 == 0)
			kmem_check_all();
		n++;
		sleep_us((unsigned)t_rng_below(&r, 3000));
	}
	printf("   %lu reaps during the traffic\n", n);
	return NULL;
}

static void
test_qcache_threads(void)
{
	pthread_t th[QC_WORKERS], maint;
	size_t i;

	atomic_store(&g_stop, false);
	g_vm = vmem_create("mt-qc", QC_BASE, QC_SIZE, QC_Q, NULL, NULL, NULL,
	    QC_MAX, VM_SLEEP, IPL_NONE);
	T_ASSERT(g_vm != NULL);
	g_deadline_ns = now_ns() + t_scale(2000) * 1000000u;
	for (i = 0; i < QC_WORKERS; i++)
		T_EQ(pthread_create(
			 &th[i], NULL, qc_worker, (void *)(uintptr_t)(i + 1)),
		    0);
	T_EQ(pthread_create(&maint, NULL, qc_maint, NULL), 0);
	for (i = 0; i < QC_WORKERS; i++)
		T_EQ(pthread_join(th[i], NULL), 0);
	T_EQ(pthread_join(maint, NULL), 0);
	for (i = 0; i < QC_SIZE / QC_Q; i++)
		T_EQ(atomic_load(&g_shadow[i]), 0);
	kmem_reap_all();
	T_EQ(vmem_size(g_vm, VMEM_ALLOC), 0);
	T_EQ(t_vmem_stats(g_vm).vs_nbusy, 0);
	vmem_destroy(g_vm);
	g_vm = NULL;
}

static void
on_alarm(int sig)
{
	static const char msg[] = "FAIL: watchdog: pool_cache_mt took too "
				  "long (deadlock?)\n";

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
	alarm((unsigned)(60 + t_scale(7) * 20));
	g_seed = t_seed();
	kmem_options_init();
	T_EQ(kmem_options_parse(
		 "KMEM_OPTIONS", "reap_interval_ms=50,pool_idle_ms=0"),
	    0);
	printf("workers: %u on %ld CPUs\n", NWORKERS,
	    sysconf(_SC_NPROCESSORS_ONLN));
	T_RUN(test_cache_normal);
	T_RUN(test_cache_large);
	T_RUN(test_qcache_threads);
	return t_done();
}
