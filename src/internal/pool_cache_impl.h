/*
 * pool_cache_impl.h -- the per-CPU layer of pool_cache.c that other
 * layers inline: the group and per-CPU slot layouts and the lock-free
 * restartable-sequence get and put (pool_cache.c section 9 explains the
 * protocol).  kmem.c calls these directly on its size-class caches, so a
 * kmem_alloc that hits the CPU layer is one inlined critical section.
 */
#ifndef KMEM_INTERNAL_POOL_CACHE_IMPL_H
#define KMEM_INTERNAL_POOL_CACHE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <kmem/pool.h>

#include "internal/internal.h"
#include "internal/prim.h"

struct pcg_obj {
	void *po_va;
	paddr_t po_pa;
};

/*
 * A group.  Its count, capacity and the CPU layer's operations on it
 * share one 64-bit word, so that a lock-free get or put changes all of
 * them, and commits, with one store (section 9 of pool_cache.c): byte 0
 * the objects held, byte 1 the capacity (the ladder ends at 255), bits
 * 16-63 the gets and puts served from the group since it came to its CPU
 * (2^48: years of them), added to the CPU's cc_hits when it leaves.
 */
struct pcg {
	struct pcg *pcg_next;
	union {
		uint64_t pcg_word;
		struct {
			uint8_t pcg_avail; /* objects held */
			uint8_t pcg_size;  /* capacity */
		};
	};
	struct pcg_obj pcg_objects[];
};
#define PCG_OPS_SHIFT 16
/*
 * The CPU layer's tick: one get or put in 2^PC_TICK_BITS on a group
 * leaves these bits of its word set, and a lock-free put that commits
 * such a word returns 2, not 1, so that a program's own allocations can drive
 * the delayed work -- the caches shrinking to their working sets, kva's purge
 * -- without a thread (kmemi_tick, kmem.c section 5).  An and and a compare of
 * a register the commit already holds.
 */
#define PC_TICK_BITS 14
/*
 * Without the operations' lowest bit: a put ticks when the count is
 * 16382 or 16383 mod 2^14 (these bits all set), so whatever its parity --
 * in a strict malloc/free loop every put on a group lands on an odd
 * count, or every one on an even count.  All set, not all clear: a group
 * that comes to a CPU starts its count at 0, and a test for clear bits
 * ticked at the first put after every group exchange (the review of
 * issue 12 found it).
 */
#define PC_TICK_MASK ((((uint64_t)1 << PC_TICK_BITS) - 2) << PCG_OPS_SHIFT)
/* The same as an asm immediate (bits 17-29: 32-bit operations). */
#define PC_TICK_TEST "$0x3ffe0000"
_Static_assert(PC_TICK_MASK == 0x3ffe0000, "PC_TICK_TEST is PC_TICK_MASK");

/* A group word's objects held and operations (a slot's cc_word too). */
#define PCG_WORD_AVAIL(w) ((unsigned int)((w)&0xffu))
#define PCG_WORD_OPS(w)	  ((unsigned long)((w) >> PCG_OPS_SHIFT))

/* The CPU-layer operations counted in g's word since it was cleared. */
static inline unsigned long
pcg_ops(const struct pcg *g)
{
	return PCG_WORD_OPS(g->pcg_word);
}

struct pc_cpu {
	kmem_spin_t cc_lock;
	struct pcg *cc_current;
	/*
	 * The current group's word while it is current: the one the fast
	 * paths read and commit, in the slot's line, so that they load no
	 * line of the group's but the object's entry.  The group's own
	 * pcg_word is stale meanwhile; whoever holds the slot's lock has it
	 * back in the group (pc_sync_in) and puts it back here when it lets
	 * go (pc_sync_out).  0 while there is no current group: a get finds
	 * no object, a put no room.
	 */
	uint64_t cc_word;
	struct pcg *cc_previous;
	unsigned long cc_hits;	 /* served by the CPU layer (and in groups) */
	unsigned long cc_misses; /* went to the depot */
} __attribute__((aligned(KMEM_CACHELINE)));

/*
 * The CPU slots of cache pc, their count, and whether the rseq fast path
 * may be used on them (pool_cache.c).
 */
struct pc_cpu *kmemi_cache_cpus(
    pool_cache_t pc, unsigned int *ncpup, bool *rseqp);

/* ---- the restartable-sequence fast path ---- */

#if defined(__x86_64__) && !defined(KMEM_FREESTANDING)
#define PC_RSEQ 1
_Static_assert(sizeof(struct pc_cpu) == 64, "pc_cpu is one cache line");
_Static_assert(sizeof(struct pcg_obj) == 16, "group slots are 16 bytes");
_Static_assert(
    offsetof(struct pcg, pcg_avail) == offsetof(struct pcg, pcg_word),
    "the count is byte 0 of the word (x86-64 is little-endian)");
_Static_assert(
    offsetof(struct pcg, pcg_size) == offsetof(struct pcg, pcg_word) + 1,
    "the capacity is byte 1");

/*
 * The descriptor and abort handler of one critical section (the rseq ABI,
 * linux/rseq.h): version, flags, start, length to the commit, abort
 * address; the abort address is preceded by the signature glibc
 * registered (RSEQ_SIG, 0x53053053, inside a ud1 so it disassembles).
 */
#define PC_RSEQ_CS(label)                                                      \
	".pushsection __rseq_cs, \"aw\"\n\t"                                   \
	".balign 32\n\t" label ":\n\t"                                         \
	".long 0x0, 0x0\n\t"                                                   \
	".quad 1f, (2f - 1f), 4f\n\t"                                          \
	".popsection\n\t"                                                      \
	".pushsection __rseq_failure, \"ax\"\n\t"                              \
	".byte 0x0f, 0xb9, 0x3d\n\t"                                           \
	".long 0x53053053\n\t"                                                 \
	"4:\n\t"                                                               \
	"jmp %l[abort]\n\t"                                                    \
	".popsection\n\t"

/* The structure offsets every critical section names (asm operands). */
#define PC_RSEQ_OFFSETS                                                        \
	[lockoff] "i"(offsetof(struct pc_cpu, cc_lock)),                       \
	    [curoff] "i"(offsetof(struct pc_cpu, cc_current)),                 \
	    [wordoff] "i"(offsetof(struct pc_cpu, cc_word)),                   \
	    [objoff] "i"(offsetof(struct pcg, pcg_objects))

/*
 * The start of both critical sections: publish the descriptor, read the
 * CPU, and leave for the slow path unless that CPU's slot is unlocked.
 * Leaves the slot in %rax and the group in %rcx -- not tested for NULL:
 * a slot without a current group has word 0 (cc_word), on which the get
 * and put tops below leave for the slow path before they use %rcx.
 */
#define PC_RSEQ_SLOT                                                           \
	"leaq 3b(%%rip), %%rax\n\t"                                            \
	"movq %%rax, %%fs:8(%[off])\n\t"                                       \
	"1:\n\t"                                                               \
	"movl %%fs:4(%[off]), %%eax\n\t"                                       \
	"cmpl %[ncpu], %%eax\n\t"                                              \
	"jae %l[slow]\n\t"                                                     \
	"shlq $6, %%rax\n\t"                                                   \
	"addq %[base], %%rax\n\t"                                              \
	"cmpl $0, %c[lockoff](%%rax)\n\t"                                      \
	"jne %l[slow]\n\t"                                                     \
	"movq %c[curoff](%%rax), %%rcx\n\t"

/*
 * The rest of a get, after PC_RSEQ_SLOT: load the group's word into %rdx,
 * leave (slow path) if the group is empty, and form the top object's slot
 * address in %r8; after the caller's loads from it, the commit: the count
 * less one and one operation more, stored.  A put's: leave if the group is
 * full, form the free slot's address in %r8; after the caller's stores to
 * it, the commit -- the count and the operations one more -- and the tick
 * test (PC_TICK_TEST) on the word just stored.
 */
#define PC_RSEQ_GET_TOP                                                        \
	"movq %c[wordoff](%%rax), %%rdx\n\t"                                   \
	"movzbl %%dl, %%r8d\n\t"                                               \
	"testl %%r8d, %%r8d\n\t"                                               \
	"jz %l[slow]\n\t"                                                      \
	"subl $1, %%r8d\n\t"                                                   \
	"shlq $4, %%r8\n\t"                                                    \
	"addq %%rcx, %%r8\n\t"
#define PC_RSEQ_GET_COMMIT                                                     \
	"addq $0xffff, %%rdx\n\t"                                              \
	"movq %%rdx, %c[wordoff](%%rax)\n\t"                                   \
	"2:\n\t"
#define PC_RSEQ_PUT_TOP                                                        \
	"movq %c[wordoff](%%rax), %%rdx\n\t"                                   \
	"cmpb %%dh, %%dl\n\t"                                                  \
	"jae %l[slow]\n\t"                                                     \
	"movzbl %%dl, %%r8d\n\t"                                               \
	"shlq $4, %%r8\n\t"                                                    \
	"addq %%rcx, %%r8\n\t"
#define PC_RSEQ_PUT_COMMIT                                                     \
	"addq $0x10001, %%rdx\n\t"                                             \
	"movq %%rdx, %c[wordoff](%%rax)\n\t"                                   \
	"2:\n\t"                                                               \
	"andl " PC_TICK_TEST ", %%edx\n\t"                                     \
	"cmpl " PC_TICK_TEST ", %%edx\n\t"                                     \
	"je %l[tick]\n\t"

/*
 * Pop an object from this CPU's current group without a lock.  Inside the
 * critical section: read the CPU, find its slot, give up (slow path) if
 * the slot is locked, has no current group or the group is empty; else
 * read the top object and commit by storing the decremented count.  A
 * preemption, migration or signal before the commit restarts it.
 * 1: *objp, *pap set; 0: take the slow path.  (No tick here: the put's
 * is enough, and each test costs 0.1 ns of a 5.3 ns malloc/free pair.)
 */
static inline int
pc_rseq_get(struct pc_cpu *cpus, unsigned int ncpu, void **objp, paddr_t *pap)
{
	void *obj;
	paddr_t pa;

retry:
	__asm__ goto(
	    PC_RSEQ_CS("3") PC_RSEQ_SLOT

		PC_RSEQ_GET_TOP
	    "movq %c[objoff](%%r8), %[obj]\n\t"
	    "movq %c[objoff]+8(%%r8), %[pa]\n\t" PC_RSEQ_GET_COMMIT
	    : [obj] "=&r"(obj), [pa] "=&r"(pa)
	    : [off] "r"(kmem_prim_rseq_off), [ncpu] "r"(ncpu), [base] "r"(cpus),
	    PC_RSEQ_OFFSETS
	    : "rax", "rcx", "rdx", "r8", "memory", "cc"
	    : slow, abort);
	*objp = obj;
	*pap = pa;
	return 1;
abort:
	goto retry;
slow:
	return 0;
}

/*
 * Push an object onto this CPU's current group without a lock: the same
 * checks, the object and paddr stored in the free slot, then the commit,
 * the incremented count.  A store to the slot before an abort is harmless:
 * the slot is not counted.  1 (2: and a tick is due): done; 0: take the
 * slow path.
 */
static inline int
pc_rseq_put(struct pc_cpu *cpus, unsigned int ncpu, void *obj, paddr_t pa)
{
retry:
	__asm__ goto(PC_RSEQ_CS("3") PC_RSEQ_SLOT

			 PC_RSEQ_PUT_TOP
		     "movq %[obj], %c[objoff](%%r8)\n\t"
		     "movq %[pa], %c[objoff]+8(%%r8)\n\t" PC_RSEQ_PUT_COMMIT
		     :
		     : [off] "r"(kmem_prim_rseq_off), [ncpu] "r"(ncpu),
		     [base] "r"(cpus), [obj] "r"(obj), [pa] "r"(pa),
		     PC_RSEQ_OFFSETS
		     : "rax", "rcx", "rdx", "r8", "memory", "cc"
		     : slow, abort, tick);
	return 1;
tick:
	return 2;
abort:
	goto retry;
slow:
	return 0;
}

/*
 * The same two for caches whose objects have no physical address (kmem's
 * classes and kva's quantum caches, which never pass or read one): the
 * slot's po_pa is neither read nor written, so a get needs one register
 * fewer -- with pc_rseq_get's two outputs, malloc's fast path saved and
 * restored two callee-saved registers on every call -- and a put stores
 * one word fewer.  A po_pa such a put leaves is stale: nothing reads it
 * (pool_cache_get_paddr's callers of these caches discard it).  The
 * slot's address is formed in %r8 as in the two above: with a base+index
 * operand instead, a malloc/free pair took 10 ns rather than 5 on the
 * development VM (an Intel Xeon, 2 vCPUs), measured, not explained.
 */
static inline int
pc_rseq_get_va(struct pc_cpu *cpus, unsigned int ncpu, void **objp)
{
	/*
	 * The object is loaded over the entry's address in %r8: %rax holds
	 * the slot for the commit, and any other register made malloc save
	 * and restore a callee-saved one on every call.
	 */
	register void *obj __asm__("r8");

retry:
	__asm__ goto(
	    PC_RSEQ_CS("3") PC_RSEQ_SLOT

		PC_RSEQ_GET_TOP
	    "movq %c[objoff](%%r8), %%r8\n\t" PC_RSEQ_GET_COMMIT
	    : "=&r"(obj)
	    : [off] "r"(kmem_prim_rseq_off), [ncpu] "r"(ncpu), [base] "r"(cpus),
	    PC_RSEQ_OFFSETS
	    : "rax", "rcx", "rdx", "memory", "cc"
	    : slow, abort);
	*objp = obj;
	return 1;
abort:
	goto retry;
slow:
	return 0;
}

static inline int
pc_rseq_put_va(struct pc_cpu *cpus, unsigned int ncpu, void *obj)
{
retry:
	__asm__ goto(PC_RSEQ_CS("3") PC_RSEQ_SLOT

			 PC_RSEQ_PUT_TOP
		     "movq %[obj], %c[objoff](%%r8)\n\t" PC_RSEQ_PUT_COMMIT
		     :
		     : [off] "r"(kmem_prim_rseq_off), [ncpu] "r"(ncpu),
		     [base] "r"(cpus), [obj] "r"(obj), PC_RSEQ_OFFSETS
		     : "rax", "rcx", "rdx", "r8", "memory", "cc"
		     : slow, abort, tick);
	return 1;
tick:
	return 2;
abort:
	goto retry;
slow:
	return 0;
}
/*
 * The batched operations' shared parts (below).  The copy: k pointers,
 * %r10 the first group entry, %r11 the byte offset into the caller's
 * array (8 a pointer; 16 an entry, so the entry is at %r10 + 2 * %r11)
 * up to %rcx = 8k (the group's address is not needed past %r10), "load"
 * and "store" the operands that move one; then the commit: the
 * count k less ("subq") or more ("addq"), the operations k more, stored.
 */
#define PC_RSEQ_MANY_COPY(load, store)                                         \
	"leaq (,%[k],8), %%rcx\n\t"                                            \
	"xorl %%r11d, %%r11d\n\t"                                              \
	"5:\n\t"                                                               \
	"movq " load ", %%r8\n\t"                                              \
	"movq %%r8, " store "\n\t"                                             \
	"addq $8, %%r11\n\t"                                                   \
	"cmpq %%rcx, %%r11\n\t"                                                \
	"jb 5b\n\t"
#define PC_RSEQ_MANY_COMMIT(count)                                             \
	"movq %[k], %%r8\n\t"                                                  \
	"shlq $16, %%r8\n\t" count " %[k], %%r8\n\t"                           \
	"addq %%r8, %%rdx\n\t"                                                 \
	"movq %%rdx, %c[wordoff](%%rax)\n\t"                                   \
	"2:\n\t"
/*
 * Several objects at once, for a thread's bins (malloc.c section 12), on
 * caches without physical addresses.  The get copies min(want, held) of
 * the current group's top objects' addresses to dst[0..k), the group's
 * top last, and commits the count less k; the put copies min(n, room) of
 * src[0..k) into the group's free slots and commits the count plus k.
 * The copies are inside the critical section: an abort before the commit
 * leaves the group as it was (the get wrote only dst, the put only slots
 * past the count), and the retry copies again.  Both count k operations
 * (so the CPU layer's tick comes at the same rate; a batched put does
 * not report it: its caller ticks by its own count).  want and n are 1
 * to 255.  k, or 0: the slot is locked, or the group empty (get) or full
 * (put), or there is none -- take the single-object paths.
 */
static inline unsigned int
pc_rseq_get_many_va(
    struct pc_cpu *cpus, unsigned int ncpu, void **dst, unsigned int want)
{
	unsigned long k;

	KMEM_ASSERT(want >= 1 && want <= 255);
retry:
	__asm__ goto(
	    PC_RSEQ_CS("3") PC_RSEQ_SLOT

	    "movq %c[wordoff](%%rax), %%rdx\n\t"
	    "movzbl %%dl, %%r8d\n\t"
	    "testl %%r8d, %%r8d\n\t"
	    "jz %l[slow]\n\t"
	    "movl %[want], %k[k]\n\t"
	    "cmpl %k[k], %%r8d\n\t"
	    "cmovbl %%r8d, %k[k]\n\t"
	    /* from the entry count - k: %r10 its address, %r11 dst's offset */
	    "subl %k[k], %%r8d\n\t"
	    "shlq $4, %%r8\n\t"
	    "leaq %c[objoff](%%rcx,%%r8), %%r10\n\t" PC_RSEQ_MANY_COPY(
		"(%%r10,%%r11,2)", "(%[dst],%%r11)")
	    /* the count less k, the operations k more */
	    PC_RSEQ_MANY_COMMIT("subq")
	    : [k] "=&r"(k)
	    : [off] "r"(kmem_prim_rseq_off), [ncpu] "r"(ncpu), [base] "r"(cpus),
	    [dst] "r"(dst), [want] "r"(want), PC_RSEQ_OFFSETS
	    : "rax", "rcx", "rdx", "r8", "r10", "r11", "memory", "cc"
	    : slow, abort);
	return (unsigned int)k;
abort:
	goto retry;
slow:
	return 0;
}

static inline unsigned int
pc_rseq_put_many_va(
    struct pc_cpu *cpus, unsigned int ncpu, void *const *src, unsigned int n)
{
	unsigned long k;

	KMEM_ASSERT(n >= 1 && n <= 255);
retry:
	__asm__ goto(
	    PC_RSEQ_CS("3") PC_RSEQ_SLOT

	    "movq %c[wordoff](%%rax), %%rdx\n\t"
	    "movzbl %%dl, %%r8d\n\t"
	    "movzwl %%dx, %k[k]\n\t"
	    "shrl $8, %k[k]\n\t"
	    "subl %%r8d, %k[k]\n\t"
	    "jbe %l[slow]\n\t"
	    "cmpl %[n], %k[k]\n\t"
	    "cmoval %[n], %k[k]\n\t"
	    /* to the entry count: %r10 its address, %r11 src's offset */
	    "shlq $4, %%r8\n\t"
	    "leaq %c[objoff](%%rcx,%%r8), %%r10\n\t" PC_RSEQ_MANY_COPY(
		"(%[src],%%r11)", "(%%r10,%%r11,2)")
	    /* the count and the operations k more */
	    PC_RSEQ_MANY_COMMIT("addq")
	    : [k] "=&r"(k)
	    : [off] "r"(kmem_prim_rseq_off), [ncpu] "r"(ncpu), [base] "r"(cpus),
	    [src] "r"(src), [n] "r"(n), PC_RSEQ_OFFSETS
	    : "rax", "rcx", "rdx", "r8", "r10", "r11", "memory", "cc"
	    : slow, abort);
	return (unsigned int)k;
abort:
	goto retry;
slow:
	return 0;
}
#endif /* __x86_64__ && !KMEM_FREESTANDING */

#endif /* KMEM_INTERNAL_POOL_CACHE_IMPL_H */
