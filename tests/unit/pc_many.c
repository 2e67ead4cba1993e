/*
 * pc_many.c -- the batched restartable sections of the CPU layer
 * (pool_cache_impl.h: pc_rseq_get_many_va, pc_rseq_put_many_va), which
 * fill and empty malloc's thread bins, driven directly on a cache of its
 * own, the thread pinned to one CPU so that every section runs on that
 * CPU's slot and its word (cc_word: the current group's count in the low
 * byte, PCG_WORD_AVAIL; its capacity in byte 1; the operations above,
 * PCG_WORD_OPS) can be read between the calls:
 *
 *  - get_many(want) copies min(want, held) objects, the group's top last,
 *    and takes them off the count; 0 on an empty group, word unchanged;
 *  - put_many(n) copies min(n, room) objects into the group, the last of
 *    them its new top; 0 on a full group, word unchanged;
 *  - the objects are the ones put, in LIFO order (a get of fewer than
 *    held takes the top ones), and the locked single-object paths
 *    (pool_cache_get, pool_cache_put) agree with what the batches left;
 *  - each call that moves k objects counts k operations;
 *  - a slot without a current group (after pool_cache_invalidate): 0
 *    both ways, its word 0;
 *  - a random run of both against a model stack, with the cache's
 *    checker and its outstanding count after every step.
 * Skipped (77) where the cache's lock-free path is off: not x86-64, no
 * rseq area (valgrind, TSan, GLIBC_TUNABLES=glibc.pthread.rseq=0), the
 * tools' annotations on (ASan, valgrind), magazines off.
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "internal/kmem_impl.h"
#include "internal/pool_cache_impl.h"
#include "internal/pool_impl.h"
#include "t.h"

#ifndef PC_RSEQ
int
main(void)
{
	t_skip("no restartable sections on this target (PC_RSEQ)");
	return 0;
}
#else

#define NOBJ 600 /* well over one group's capacity (at most 255) */

static pool_cache_t pc;
static struct pc_cpu *slot;
static void *objs[NOBJ];
static unsigned int cap; /* the groups' capacity (byte 1 of the word) */

static uint64_t
word(void)
{
	return __atomic_load_n(&slot->cc_word, __ATOMIC_RELAXED);
}

static unsigned int
avail(void)
{
	return PCG_WORD_AVAIL(word());
}

static unsigned long
ops(void)
{
	return PCG_WORD_OPS(word());
}

static unsigned int
get_many(void **dst, unsigned int want)
{
	struct pc_cpu *cpus;
	unsigned int ncpu;
	bool rseq;

	cpus = kmemi_cache_cpus(pc, &ncpu, &rseq);
	return pc_rseq_get_many_va(cpus, ncpu, dst, want);
}

static unsigned int
put_many(void *const *src, unsigned int n)
{
	struct pc_cpu *cpus;
	unsigned int ncpu;
	bool rseq;

	cpus = kmemi_cache_cpus(pc, &ncpu, &rseq);
	return pc_rseq_put_many_va(cpus, ncpu, src, n);
}

/* The cache, its objects all out once (real objects), its slot here. */
static void
setup(void)
{
	struct pc_cpu *cpus;
	unsigned int ncpu, i;
	bool rseq;
	int cpu;

	pc = pool_cache_init(
	    64, 0, 0, 0, "pc_many", NULL, IPL_NONE, NULL, NULL, NULL);
	T_ASSERT(pc != NULL);
	cpus = kmemi_cache_cpus(pc, &ncpu, &rseq);
	if (!rseq)
		t_skip("the cache's lock-free path is off (no rseq area: "
		       "valgrind, TSan, glibc.pthread.rseq=0; ASan's or "
		       "valgrind's annotations; or magazines off)");
	cpu = sched_getcpu();
	T_GE(cpu, 0);
	if ((unsigned int)cpu >= ncpu)
		t_skip("this CPU has no slot in the cache");
	slot = &cpus[cpu];
	for (i = 0; i < NOBJ; i++)
		T_ASSERT((objs[i] = pool_cache_get(pc, PR_WAITOK)) != NULL);
	for (i = 0; i < NOBJ; i++)
		pool_cache_put(pc, objs[i]);
	/* The last puts are in this CPU's current group. */
	T_ASSERT(slot->cc_current != NULL);
	cap = (unsigned int)(word() >> 8) & 0xffu;
	T_GE(cap, 4);
	T_GT(avail(), 0);
	T_LE(avail(), cap);
	printf("   CPU %d, groups of %u objects, %u in the current one\n", cpu,
	    cap, avail());
}

static bool
is_obj(const void *p)
{
	unsigned int i;

	for (i = 0; i < NOBJ; i++)
		if (objs[i] == p)
			return true;
	return false;
}

static void
t_basic(void)
{
	void *held[NOBJ], *dst[300], *src[300];
	unsigned int nheld = 0, h, k, i, j;
	unsigned long o;
	uint64_t w;

	/*
	 * Objects to put later, by the locked path; then one back, so that
	 * the current group holds some (it may have been exchanged).
	 */
	while (nheld < cap + 20) {
		T_ASSERT((held[nheld] = pool_cache_get(pc, PR_WAITOK)) != NULL);
		nheld++;
	}
	pool_cache_put(pc, held[--nheld]);

	/* Empty the current group in one get: want clipped to held. */
	h = avail();
	T_GT(h, 0);
	o = ops();
	k = get_many(dst, 255);
	T_EQ(k, h);
	T_EQ(avail(), 0);
	T_EQ(ops(), o + k);
	for (i = 0; i < k; i++) {
		T_ASSERT(is_obj(dst[i]));
		for (j = 0; j < i; j++)
			T_NE(dst[i], dst[j]);
	}
	T_EQ(dst[k - 1], held[nheld]); /* the top: the one put last */
	for (i = 0; i < k; i++) {
		for (j = 0; j < nheld; j++)
			T_NE(dst[i], held[j]);
		held[nheld++] = dst[i];
	}
	T_EQ(kmemi_cache_outstanding(pc), nheld);
	kmem_pool_cache_check(pc);

	/* An empty group: nothing, the word as it was. */
	w = word();
	T_EQ(get_many(dst, 1), 0);
	T_EQ(get_many(dst, 255), 0);
	T_EQ(word(), w);

	/* put 5 into the empty group, get 3 (the top 3), then the rest. */
	o = ops();
	for (i = 0; i < 5; i++)
		src[i] = held[--nheld];
	T_EQ(put_many(src, 5), 5);
	T_EQ(avail(), 5);
	T_EQ(ops(), o + 5);
	T_EQ(kmemi_cache_outstanding(pc), nheld);
	kmem_pool_cache_check(pc);
	T_EQ(get_many(dst, 3), 3);
	T_EQ(avail(), 2);
	T_EQ(ops(), o + 8);
	for (i = 0; i < 3; i++)
		T_EQ(dst[i], src[2 + i]); /* the top last */
	T_EQ(get_many(dst, 10), 2);	  /* want clipped to held */
	T_EQ(avail(), 0);
	T_EQ(ops(), o + 10);
	T_EQ(dst[0], src[0]);
	T_EQ(dst[1], src[1]);
	for (i = 0; i < 5; i++)
		held[nheld++] = src[i];

	/* n clipped to the room: a full group, then nothing more. */
	o = ops();
	for (i = 0; i < cap + 10; i++)
		src[i] = held[--nheld];
	T_EQ(put_many(src, cap + 10), cap);
	T_EQ(avail(), cap);
	T_EQ(ops(), o + cap);
	for (i = cap; i < cap + 10; i++) /* not taken: still held */
		held[nheld++] = src[i];
	T_EQ(kmemi_cache_outstanding(pc), nheld);
	kmem_pool_cache_check(pc);
	w = word();
	T_EQ(put_many(held, 1), 0);
	T_EQ(put_many(held, 3), 0);
	T_EQ(word(), w);

	/* The single-object paths see the same stack. */
	T_EQ(get_many(dst, 1), 1);
	T_EQ(dst[0], src[cap - 1]);
	T_EQ(avail(), cap - 1);
	T_EQ(pool_cache_get(pc, PR_WAITOK), src[cap - 2]);
	T_EQ(avail(), cap - 2);
	pool_cache_put(pc, src[cap - 2]);
	pool_cache_put(pc, src[cap - 1]);
	T_EQ(avail(), cap);
	o = ops();
	T_EQ(get_many(dst, 2), 2);
	T_EQ(dst[0], src[cap - 2]);
	T_EQ(dst[1], src[cap - 1]);
	T_EQ(ops(), o + 2);
	/* Room for exactly the two: n = room. */
	T_EQ(put_many(dst, 2), 2);
	T_EQ(avail(), cap);
	/* From a part-full group: a get of more than held, a put of more
	 * than the room, both clipped. */
	T_EQ(get_many(dst, cap - 3), cap - 3);
	T_EQ(avail(), 3);
	T_EQ(get_many(dst + cap, 255), 3);
	T_EQ(dst[cap], src[0]);
	T_EQ(dst[cap + 2], src[2]);
	T_EQ(put_many(dst + cap, 3), 3);
	T_EQ(put_many(dst, cap), cap - 3);
	T_EQ(avail(), cap);
	T_EQ(kmemi_cache_outstanding(pc), nheld);
	kmem_pool_cache_check(pc);

	/* Back to the cache; then no current group: 0 both ways. */
	for (i = 0; i < nheld; i++)
		pool_cache_put(pc, held[i]);
	T_EQ(kmemi_cache_outstanding(pc), 0);
	pool_cache_invalidate(pc);
	T_ASSERT(slot->cc_current == NULL);
	T_EQ(word(), 0);
	T_EQ(get_many(dst, 5), 0);
	T_EQ(put_many(objs, 5), 0);
	T_EQ(word(), 0);
	kmem_pool_cache_check(pc);
}

/*
 * A random run: the group as a model stack (its objects in order), every
 * call's k and copies checked against it, and the counts after each.
 */
static void
t_random(void)
{
	static void *held[NOBJ], *model[256], *buf[300];
	unsigned int nheld = 0, nmodel, k, i, want, n, steps;
	unsigned long o;

	t_seed();
	/* Fill the slot again: a current group, whatever it holds. */
	for (i = 0; i < NOBJ; i++)
		T_ASSERT((held[i] = pool_cache_get(pc, PR_WAITOK)) != NULL);
	nheld = NOBJ;
	for (i = 0; i < 40; i++)
		pool_cache_put(pc, held[--nheld]);
	T_ASSERT(slot->cc_current != NULL);
	/* Its contents, into the model: empty it by the section itself. */
	nmodel = avail();
	T_GT(nmodel, 0);
	T_EQ(get_many(model, 255), nmodel);
	T_EQ(avail(), 0);
	T_EQ(put_many(model, nmodel), nmodel);
	steps = (unsigned int)t_scale(20000);
	for (i = 0; i < steps; i++) {
		o = ops();
		if (t_rand_below(2) == 0) {
			want = 1 +
			    (unsigned int)t_rand_below(
				t_rand_below(4) == 0 ? 255 : 20);
			k = get_many(buf, want);
			T_EQ(k, want < nmodel ? want : nmodel);
			T_EQ(memcmp(buf, model + nmodel - k, k * sizeof *buf),
			    0);
			nmodel -= k;
			memcpy(held + nheld, buf, k * sizeof *buf);
			nheld += k;
		} else {
			n = 1 +
			    (unsigned int)t_rand_below(
				t_rand_below(4) == 0 ? 255 : 20);
			if (n > nheld)
				n = nheld;
			if (n == 0)
				continue;
			k = put_many(held + nheld - n, n);
			T_EQ(k, n < cap - nmodel ? n : cap - nmodel);
			memcpy(
			    model + nmodel, held + nheld - n, k * sizeof *buf);
			nmodel += k;
			/* the first k of the n went in; the rest stay held */
			memmove(held + nheld - n, held + nheld - n + k,
			    (n - k) * sizeof *held);
			nheld -= k;
		}
		T_EQ(avail(), nmodel);
		T_EQ(ops(), o + k);
		if (i % 512 == 0) {
			T_EQ(kmemi_cache_outstanding(pc), nheld);
			kmem_pool_cache_check(pc);
		}
	}
	T_EQ(kmemi_cache_outstanding(pc), nheld);
	kmem_pool_cache_check(pc);
	for (i = 0; i < nheld; i++)
		pool_cache_put(pc, held[i]);
	T_EQ(kmemi_cache_outstanding(pc), 0);
	printf("   %u steps, the group held %u at the end\n", steps, nmodel);
}

int
main(void)
{
	cpu_set_t saved;

	if (!t_pin_here(&saved))
		t_skip("cannot pin this thread to its CPU");
	setup();
	T_RUN(t_basic);
	T_RUN(t_random);
	pool_cache_destroy(pc);
	t_unpin(&saved);
	return t_done();
}
#endif		 /* PC_RSEQ */
