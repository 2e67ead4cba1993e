/*
 * main.c -- the freestanding archive (libkmem-freestanding.a, built with
 * -ffreestanding -nostdinc) on the example port (port.c: pages from a
 * static array, spin locks on C11 atomics, the CPU number set here), with
 * no Linux port, no pthread and no libc allocator beneath kmem.  This
 * program itself is an ordinary hosted one (it prints, and forks for the
 * panic test); it is compiled with KMEM_FREESTANDING so that struct pool
 * has the archive's layout.
 *
 * It runs vmem (create, alloc, xalloc with constraints, free, destroy,
 * errno through the port), a pool without constructor, a pool_cache with
 * constructor and destructor on every "CPU", kmem_alloc across sizes up
 * to multi-megabyte ones, a refusing page source, and a panic through
 * the port's error sink -- and checks the results, and what kmem asked
 * of the port.
 */
#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "port.h"
#include "t.h"

#ifndef KMEM_FREESTANDING
#error "built against the freestanding archive: KMEM_FREESTANDING"
#endif

/* The test's abort hook: the port's sink to stderr, then SIGABRT. */
static void
t_port_abort(void)
{
	fputs(port_sink(), stderr);
	fflush(stderr);
	abort();
}

/* ---- vmem ---- */

struct t_seg {
	vmem_addr_t addr;
	vmem_size_t size;
};

static int
t_seg_cmp(const void *a, const void *b)
{
	const struct t_seg *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

#define V_BASE 0x10000000u
#define V_SIZE 0x01000000u /* 16 MiB of address space, no memory */
#define V_Q    0x1000u

static void
test_vmem(void)
{
	static struct t_seg seg[400];
	vmem_size_t total = 0;
	vmem_addr_t a;
	vmem_t *vm;
	size_t i, n = 0;

	/* A bad quantum: NULL, and EINVAL in the port's errno. */
	*kmem_prim_errno() = 0;
	T_ASSERT(vmem_create("bad", V_BASE, V_SIZE, 3, NULL, NULL, NULL, 0,
		     VM_SLEEP, IPL_NONE) == NULL);
	T_EQ(*kmem_prim_errno(), 22 /* EINVAL */);

	vm = vmem_create("fs-vmem", V_BASE, V_SIZE, V_Q, NULL, NULL, NULL, 0,
	    VM_SLEEP, IPL_NONE);
	T_ASSERT(vm != NULL);
	T_EQ(vmem_size(vm, VMEM_FREE), V_SIZE);
	for (i = 0; i < 300; i++) {
		vmem_size_t sz = (t_rand() % 8 + 1) * V_Q;

		T_EQ(vmem_alloc(vm, sz, VM_NOSLEEP | VM_INSTANTFIT, &a), 0);
		seg[n].addr = a;
		seg[n++].size = sz;
		total += sz;
	}
	/* Constrained: 64 KiB aligned plus a 4 KiB phase, within 1 MiB. */
	for (i = 0; i < 50; i++) {
		T_EQ(vmem_xalloc(vm, 3 * V_Q, 0x10000, V_Q, 0x100000,
			 V_BASE + 0x400000, V_BASE + 0xc00000,
			 VM_NOSLEEP | VM_BESTFIT, &a),
		    0);
		T_EQ(a % 0x10000, V_Q);
		T_EQ(a / 0x100000, (a + 3 * V_Q - 1) / 0x100000);
		T_GE(a, V_BASE + 0x400000);
		T_LE(a + 3 * V_Q, V_BASE + 0xc00000);
		seg[n].addr = a;
		seg[n++].size = 3 * V_Q | 1; /* marks an xalloc */
		total += 3 * V_Q;
	}
	T_EQ(vmem_size(vm, VMEM_ALLOC), total);
	T_EQ(vmem_size(vm, VMEM_FREE), V_SIZE - total);
	/* Inside the span, quantum-aligned, no two overlapping. */
	qsort(seg, n, sizeof seg[0], t_seg_cmp);
	for (i = 0; i < n; i++) {
		vmem_size_t sz = seg[i].size & ~(vmem_size_t)1;

		T_EQ(seg[i].addr % V_Q, 0);
		T_GE(seg[i].addr, V_BASE);
		T_LE(seg[i].addr + sz, V_BASE + V_SIZE);
		if (i > 0)
			T_LE(seg[i - 1].addr + (seg[i - 1].size & ~1ul),
			    seg[i].addr);
	}
	/* More than is left: ENOMEM at once. */
	T_EQ(vmem_alloc(vm, V_SIZE - total + V_Q, VM_NOSLEEP, &a), ENOMEM);
	for (i = 0; i < n; i++) {
		if (seg[i].size & 1)
			vmem_xfree(vm, seg[i].addr, seg[i].size & ~1ul);
		else
			vmem_free(vm, seg[i].addr, seg[i].size);
	}
	T_EQ(vmem_size(vm, VMEM_ALLOC), 0);
	/* All of it coalesced again: one allocation takes the whole span. */
	T_EQ(vmem_alloc(vm, V_SIZE, VM_NOSLEEP, &a), 0);
	T_EQ(a, V_BASE);
	vmem_free(vm, a, V_SIZE);
	vmem_destroy(vm);

	/* With quantum caches (pool_caches, the per-CPU layer) in front. */
	vm = vmem_create("fs-vmem-qc", V_BASE, V_SIZE, V_Q, NULL, NULL, NULL,
	    4 * V_Q, VM_SLEEP, IPL_NONE);
	T_ASSERT(vm != NULL);
	for (i = 0; i < 200; i++) {
		T_EQ(vmem_alloc(vm, (i % 4 + 1) * V_Q, VM_SLEEP, &a), 0);
		T_GE(a, V_BASE);
		T_LE(a + (i % 4 + 1) * V_Q, V_BASE + V_SIZE);
		seg[i].addr = a;
		seg[i].size = (i % 4 + 1) * V_Q;
	}
	qsort(seg, 200, sizeof seg[0], t_seg_cmp);
	for (i = 1; i < 200; i++)
		T_LE(seg[i - 1].addr + seg[i - 1].size, seg[i].addr);
	for (i = 0; i < 200; i++)
		vmem_free(vm, seg[i].addr, seg[i].size);
	vmem_destroy(vm);
}

/* ---- pool, no constructor ---- */

#define P_N    1000
#define P_SIZE 200

static void
test_pool(void)
{
	static struct pool pp;
	static unsigned char *item[P_N];
	size_t i, j;

	pool_init(&pp, P_SIZE, 0, 0, 0, "fs-pool", NULL, IPL_NONE);
	for (i = 0; i < P_N; i++) {
		item[i] = pool_get(&pp, PR_WAITOK);
		T_ASSERT(item[i] != NULL);
		T_EQ((uintptr_t)item[i] % 8, 0);
		T_ASSERT(port_committed(item[i], P_SIZE));
		memset(item[i], (int)(i & 0xff), P_SIZE);
	}
	/* Every item kept its own bytes: no two overlap. */
	for (i = 0; i < P_N; i++)
		for (j = 0; j < P_SIZE; j++)
			T_EQ(item[i][j], i & 0xff);
	T_EQ(pool_nget(&pp), P_N);
	for (i = 0; i < P_N; i += 2)
		pool_put(&pp, item[i]);
	/* PR_ZERO: a reused item comes back zeroed. */
	item[0] = pool_get(&pp, PR_WAITOK | PR_ZERO);
	for (j = 0; j < P_SIZE; j++)
		T_EQ(item[0][j], 0);
	pool_put(&pp, item[0]);
	for (i = 1; i < P_N; i += 2)
		pool_put(&pp, item[i]);
	T_EQ(pool_nput(&pp), P_N + 1);
	T_EQ(pool_nget(&pp), P_N + 1);
	pool_destroy(&pp);
}

/* ---- pool_cache with constructor and destructor ---- */

#define C_SIZE	 96
#define C_MAGIC	 0x5ca1ab1eu
#define C_PERCPU 40

struct t_obj {
	uint32_t magic;
	uint32_t serial;
	unsigned char rest[C_SIZE - 8];
};

struct t_counts {
	unsigned long ctor, dtor, serial;
	bool fail; /* the constructor refuses */
};

static int
t_ctor(void *arg, void *obj, int flags)
{
	struct t_counts *c = arg;
	struct t_obj *o = obj;

	(void)flags;
	if (c->fail)
		return ENOMEM;
	T_ASSERT(port_committed(o, sizeof *o));
	o->magic = C_MAGIC;
	o->serial = (uint32_t)++c->serial;
	c->ctor++;
	return 0;
}

static void
t_dtor(void *arg, void *obj)
{
	struct t_counts *c = arg;
	struct t_obj *o = obj;

	T_EQ(o->magic, C_MAGIC); /* only constructed objects are destructed */
	o->magic = 0;
	c->dtor++;
}

static void
test_pool_cache(void)
{
	static struct t_obj *obj[PORT_NCPU][C_PERCPU];
	struct t_counts c = {0};
	struct port_stats st0, st1;
	struct t_obj *o, *last;
	pool_cache_t pc;
	unsigned cpu, i;
	unsigned long ctors;

	port_get_stats(&st0);
	pc = pool_cache_init(
	    C_SIZE, 64, 0, 0, "fs-cache", NULL, IPL_NONE, t_ctor, t_dtor, &c);
	T_ASSERT(pc != NULL);
	for (cpu = 0; cpu < PORT_NCPU; cpu++) {
		atomic_store(&port_cpu, cpu);
		for (i = 0; i < C_PERCPU; i++) {
			o = pool_cache_get(pc, PR_WAITOK);
			T_ASSERT(o != NULL);
			T_EQ((uintptr_t)o % 64, 0);
			T_EQ(o->magic, C_MAGIC);
			memset(o->rest, (int)cpu, sizeof o->rest);
			obj[cpu][i] = o;
		}
	}
	T_EQ(c.ctor, PORT_NCPU * C_PERCPU); /* all fresh */
	for (cpu = 0; cpu < PORT_NCPU; cpu++)
		for (i = 0; i < C_PERCPU; i++) {
			T_EQ(obj[cpu][i]->rest[0], cpu);
			T_EQ(obj[cpu][i]->rest[sizeof obj[cpu][i]->rest - 1],
			    cpu);
		}
	/* Put back on each CPU; the objects stay constructed, cached. */
	for (cpu = 0; cpu < PORT_NCPU; cpu++) {
		atomic_store(&port_cpu, cpu);
		for (i = 0; i < C_PERCPU; i++)
			pool_cache_put(pc, obj[cpu][i]);
	}
	T_EQ(c.dtor, 0);
	/* A get on a CPU returns that CPU's last put: no constructor runs. */
	ctors = c.ctor;
	for (cpu = 0; cpu < PORT_NCPU; cpu++) {
		atomic_store(&port_cpu, cpu);
		last = obj[cpu][C_PERCPU - 1];
		o = pool_cache_get(pc, PR_WAITOK);
		T_ASSERT(o == last);
		T_EQ(o->magic, C_MAGIC);
		pool_cache_put(pc, o);
	}
	T_EQ(c.ctor, ctors);
	port_get_stats(&st1);
	T_GE(st1.cpu_enters - st0.cpu_enters, 2 * PORT_NCPU * C_PERCPU);

	/* A constructor that fails: NULL, and nothing leaks. */
	pool_cache_invalidate(pc); /* every cached object destructed */
	T_EQ(c.dtor, c.ctor);
	c.fail = true;
	T_ASSERT(pool_cache_get(pc, PR_NOWAIT) == NULL);
	c.fail = false;
	o = pool_cache_get(pc, PR_WAITOK);
	T_ASSERT(o != NULL && o->magic == C_MAGIC);
	pool_cache_put(pc, o);
	pool_cache_destroy(pc);
	T_EQ(c.dtor, c.ctor);
	atomic_store(&port_cpu, 0);
}

/* ---- kmem_alloc ---- */

struct t_alloc {
	unsigned char *p;
	size_t size;
};

static void
t_fill(unsigned char *p, size_t size, unsigned v)
{
	/* Both ends and a stride between: enough to see an overlap. */
	if (size == 0)
		T_FAIL("t_fill: size 0");
	for (size_t i = 0; i<size; i += size> 4096 ? 512 : 1)
		p[i] = (unsigned char)(v + i / 512);
	p[size - 1] = (unsigned char)~v;
}

static bool
t_check(const unsigned char *p, size_t size, unsigned v)
{
	for (size_t i = 0; i<size - 1; i += size> 4096 ? 512 : 1)
		if (p[i] != (unsigned char)(v + i / 512))
			return false;
	return p[size - 1] == (unsigned char)~v;
}

static void
test_kmem(void)
{
	static struct t_alloc a[600];
	static const size_t big[] = {
	    8193, 65536, 100000, 1 << 20, (3 << 20) + 5, 8 << 20};
	size_t i, n = 0, j;
	unsigned cpu;
	char *s;

	for (i = 0; i < 500; i++) {
		size_t sz = 1 + t_rand() % (i % 5 == 0 ? 16384 : 512);

		atomic_store(&port_cpu, (unsigned)(t_rand() % PORT_NCPU));
		a[n].p = kmem_alloc(sz, KM_SLEEP);
		a[n].size = sz;
		T_ASSERT(a[n].p != NULL);
		T_ASSERT(port_committed(a[n].p, sz));
		T_GE(kmem_usable_size(sz), sz);
		t_fill(a[n].p, sz, (unsigned)n);
		n++;
	}
	for (j = 0; j < sizeof big / sizeof big[0]; j++) {
		a[n].p = kmem_alloc(big[j], KM_SLEEP);
		a[n].size = big[j];
		T_ASSERT(a[n].p != NULL);
		T_ASSERT(port_committed(a[n].p, big[j]));
		t_fill(a[n].p, big[j], (unsigned)n);
		n++;
	}
	for (i = 0; i < n; i++)
		T_ASSERT(t_check(a[i].p, a[i].size, (unsigned)i));
	/* kmem_zalloc: zeroed, even where a freed object was. */
	kmem_free(a[0].p, a[0].size);
	a[0].p = kmem_zalloc(a[0].size, KM_SLEEP);
	for (j = 0; j < a[0].size; j++)
		T_EQ(a[0].p[j], 0);
	t_fill(a[0].p, a[0].size, 0);
	/* Freed from other CPUs than they came from, in another order. */
	for (i = n; i-- > 0;) {
		cpu = (unsigned)(i * 7 % PORT_NCPU);
		atomic_store(&port_cpu, cpu);
		T_ASSERT(t_check(a[i].p, a[i].size, (unsigned)i));
		kmem_free(a[i].p, a[i].size);
	}
	/* The formatter is kmem's own here (no libc vsnprintf). */
	s = kmem_asprintf("%s-%d-%zu-%#x", "fs", -42, (size_t)7, 255u);
	T_ASSERT(s != NULL);
	T_ASSERT(strcmp(s, "fs--42-7-0xff") == 0);
	kmem_strfree(s);
	atomic_store(&port_cpu, 0);
}

/* ---- a page source that refuses ---- */

static void
test_refusal(void)
{
	struct port_stats st0, st1;
	void *p;

	port_get_stats(&st0);
	atomic_store(&port_refuse_pages, 1);
	/* 16 MiB: more than the page arena holds free; an import fails. */
	T_ASSERT(kmem_alloc(16 << 20, KM_NOSLEEP) == NULL);
	atomic_store(&port_refuse_pages, 0);
	port_get_stats(&st1);
	T_GT(st1.refused, st0.refused);
	p = kmem_alloc(16 << 20, KM_NOSLEEP);
	T_ASSERT(p != NULL && port_committed(p, 16 << 20));
	kmem_free(p, 16 << 20);
}

/* ---- after all that: memory goes back to the port ---- */

static void
test_reap(void)
{
	struct port_stats st;

	kmem_reap_all();
	atomic_fetch_add(&port_clock, 60ull * 1000000000u);
	kmem_reap_all();
	port_get_stats(&st);
	printf("   port: %zu pages committed (peak %zu), %zu reserved; "
	       "%lu page calls, %lu refused; %lu cpu enters, %lu mutex "
	       "enters, %lu sleeps\n",
	    st.pages_committed, st.peak_committed, st.pages_reserved,
	    st.page_calls, st.refused, st.cpu_enters, st.mutex_enters,
	    st.sleeps);
	T_GT(st.mutex_enters, 0);
	T_GT(st.cpu_enters, 0);
	/* The 16 MiB and 8 MiB allocations' pages went back. */
	T_LT(st.pages_committed + (16u << 20) / PORT_PAGE_SIZE,
	    st.peak_committed);
}

/* ---- a panic: through the port's error sink and abort ---- */

static void
bad_free(void *arg)
{
	void *p;

	(void)arg;
	port_sink_clear();
	atomic_store(&port_abort_hook, t_port_abort);
	p = kmem_alloc(1 << 20, KM_SLEEP);
	kmem_free(p, 1 << 20);
	kmem_free(p, 1 << 20); /* twice */
}

static void
test_panic(void)
{
	T_ASSERT(t_expect_panic(bad_free, NULL, "double free"));
	/* The parent's sink saw none of it. */
	T_ASSERT(strstr(port_sink(), "kmem_free") == NULL);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	(void)t_seed(); /* printed: a failure can be replayed */
	/* kmem reads its environment through the port: pass these on. */
	port_setenv("KMEM_OPTIONS", getenv("KMEM_OPTIONS"));
	port_setenv("KMEM_DEBUG", getenv("KMEM_DEBUG"));
	T_RUN_IF(test_vmem);
	T_RUN_IF(test_pool);
	T_RUN_IF(test_pool_cache);
	T_RUN_IF(test_kmem);
	T_RUN_IF(test_refusal);
	T_RUN_IF(test_reap);
	T_RUN_IF(test_panic);
	/* Nothing went to the sink that a test did not ask for. */
	if (port_sink()[0] != '\0')
		printf("   sink: %s", port_sink());
	T_ASSERT(port_sink()[0] == '\0');
	return t_done();
}
