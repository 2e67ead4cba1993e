/*
 * bench_vmem -- cost of one vmem_alloc + vmem_free pair (VM_NOSLEEP) as a
 * function of the number of free segments in the arena, for VM_INSTANTFIT,
 * VM_BESTFIT and VM_NEXTFIT, against a naive address-ordered first-fit
 * free list (the rmalloc(9)-style resource map Bonwick & Adams 2001
 * measured vmem against; see netbsd-kmem-spec.md section 8.1).
 *
 * What is measured, and why:
 *
 *  - Fragmentation.  One static span.  2N segments are allocated from it
 *    in address order, with sizes of 1..127 quanta drawn log-uniformly
 *    (a size class 0..6 uniformly, then a size inside the class), and
 *    every other one (the even ones) is freed.  That leaves N free
 *    fragments of assorted sizes, each between two busy segments so they
 *    cannot coalesce, spread over seven freelists (classes 0..6), then one
 *    free tail of TAIL_BYTES at the end of the span.  A row of the table
 *    is the number of free segments: N + 1 (N = row - 1).
 *    The naive list gets exactly the same layout.
 *
 *  - Requests.  3000 bytes (188 quanta: not a power of two, class 7) and
 *    2048 bytes (128 quanta: exactly 2^7).  Both are larger than every
 *    fragment.  This is the state of a long-running fragmented arena as
 *    Knuth describes first fit's: the low addresses fill with splinters
 *    too small for the request.  Every policy must therefore pass over the
 *    N fragments to find space; a policy whose cost grows with the number
 *    of unusable free segments it skips shows it here (the naive list walks
 *    all of them, on alloc to find a fit and on free to find the insertion
 *    point).  Not measured: best fit's walk of the request's own class when
 *    that class holds too-small segments (none do here).
 *
 *  - The timed loop does not re-allocate the segment it has just freed.
 *    FIFO_DEPTH allocations are live at all times: each iteration
 *    allocates one segment and then frees the one allocated FIFO_DEPTH
 *    iterations earlier.  The frees punch request-sized holes behind the
 *    live window; those coalesce with each other and with the tail, so
 *    instant and best fit keep reusing the recently freed holes, while
 *    next fit's rotor marches through the 1 GiB tail to fresh addresses.
 *    Consequences to read the table by: (a) instant and best fit touch
 *    the same few tags and hash buckets, which stay in cache; next fit
 *    inserts a new address into the busy hash on every allocation, and at
 *    2^20 free segments (2^20 busy tags too, an 8 MiB bucket array) that
 *    is most likely a cache miss per pair: its column rises there although
 *    its search is O(1) (the rise is the same with a tail so large that it
 *    never wraps).  (b) Next
 *    fit wraps to the bottom of the span every TAIL_BYTES / size
 *    allocations and then walks every tag below (tens of ms at 2^20);
 *    with runs of about target_ms few runs contain a wrap, so the median
 *    mostly leaves it out.
 *    One "pair" = one alloc + one free; reported ns = loop time / iterations.
 *
 *  - Each cell: a calibration run (also the warm-up) picks the iteration
 *    count so that one run takes about target_ms; then `reps` timed runs;
 *    the median is printed.  Slow cells (the naive list at 2^20 fragments,
 *    a few milliseconds per pair) run at least MIN_ITERS iterations, which
 *    bounds the whole program to well under two minutes.  After each run
 *    the live window is freed, which restores the arena (checked with
 *    kmem_vmem_stats: N + 1 free segments again).
 *
 * The arena has no quantum caches (qcache_max 0): every call goes to the
 * freelists, which is what the table is about.  Addresses are integers
 * (nothing is touched), so the span can be large.
 *
 * Usage: bench_vmem [--quick] [--max N] [--reps R] [--ms T]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kmem/vmem.h>

#include "bench.h"

#define bench_vmem_die(what, err) bench_die("bench_vmem", (what), (err))

#define QUANTUM	   ((vmem_size_t)16)
#define SPAN_BASE  ((vmem_addr_t)1 << 32)
#define TAIL_BYTES ((vmem_size_t)1 << 30) /* free tail after the fragments */
#define FIFO_DEPTH 8			  /* live allocations in the loop */
#define MIN_ITERS  8			  /* floor for slow cells */
#define MAX_REPS   31
#define MAX_CLASS  6 /* fragments and separators: classes 0..MAX_CLASS */
#define NROWS	   5
#define NSIZES	   2
#define NPOLICIES  4 /* instant, best, next, naive */

static const size_t row_nfree[NROWS] = {16, 256, 4096, 65536, 1u << 20};
static const vmem_size_t req_size[NSIZES] = {3000, 2048};
static const char *const policy_name[NPOLICIES] = {
    "instant", "best", "next", "naive-ff"};
static const vm_flag_t policy_flag[NPOLICIES - 1] = {
    VM_INSTANTFIT, VM_BESTFIT, VM_NEXTFIT};

/* ---- helpers ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t
rng(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1du;
}

/* 1..2^(MAX_CLASS+1)-1 quanta: class uniform, size uniform in the class. */
static uint8_t
draw_quanta(void)
{
	unsigned c = (unsigned)(rng() % (MAX_CLASS + 1));

	return (uint8_t)((1u << c) + rng() % (1u << c));
}

static vmem_size_t
roundq(vmem_size_t size)
{
	return (size + QUANTUM - 1) & ~(QUANTUM - 1);
}

/* ---- the baseline: naive address-ordered first fit ---- */

/*
 * A sorted doubly-linked list of free ranges.  Alloc takes the lowest
 * range that is large enough, from its start; free walks from the lowest
 * range to the insertion point and coalesces with both neighbours.  The
 * nodes start out contiguous in address order (the friendliest case for
 * the walk: the hardware prefetcher follows it).
 */
struct ff_node {
	struct ff_node *prev, *next;
	uintptr_t start, size;
};

struct ff {
	struct ff_node *head, *tail;
	struct ff_node *nodes;	   /* the node array */
	struct ff_node *freenodes; /* unused nodes, through next */
};

static struct ff_node *
ff_getnode(struct ff *ff)
{
	struct ff_node *n = ff->freenodes;

	if (n == NULL) {
		fprintf(stderr, "bench_vmem: naive list out of nodes\n");
		exit(1);
	}
	ff->freenodes = n->next;
	return n;
}

static void
ff_putnode(struct ff *ff, struct ff_node *n)
{
	n->next = ff->freenodes;
	ff->freenodes = n;
}

static void
ff_unlink(struct ff *ff, struct ff_node *n)
{
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		ff->head = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	else
		ff->tail = n->prev;
}

/* Insert a new node for [start, start+size) before "before" (NULL: end). */
static void
ff_insert(
    struct ff *ff, struct ff_node *before, uintptr_t start, uintptr_t size)
{
	struct ff_node *n = ff_getnode(ff);

	n->start = start;
	n->size = size;
	n->next = before;
	n->prev = before != NULL ? before->prev : ff->tail;
	if (n->prev != NULL)
		n->prev->next = n;
	else
		ff->head = n;
	if (before != NULL)
		before->prev = n;
	else
		ff->tail = n;
}

static void
ff_init(struct ff *ff, size_t maxnodes)
{
	ff->head = ff->tail = NULL;
	ff->nodes = calloc(maxnodes, sizeof(*ff->nodes));
	if (ff->nodes == NULL)
		bench_vmem_die("calloc", ENOMEM);
	/* Push in reverse so that the first nodes taken are contiguous. */
	ff->freenodes = NULL;
	for (size_t i = maxnodes; i-- > 0;)
		ff_putnode(ff, &ff->nodes[i]);
}

static void
ff_fini(struct ff *ff)
{
	free(ff->nodes);
	ff->nodes = NULL;
}

static int
ff_alloc(struct ff *ff, uintptr_t size, uintptr_t *addrp)
{
	size = roundq(size);
	for (struct ff_node *n = ff->head; n != NULL; n = n->next) {
		if (n->size < size)
			continue;
		*addrp = n->start;
		n->start += size;
		n->size -= size;
		if (n->size == 0) {
			ff_unlink(ff, n);
			ff_putnode(ff, n);
		}
		return 0;
	}
	return ENOMEM;
}

static void
ff_free(struct ff *ff, uintptr_t addr, uintptr_t size)
{
	struct ff_node *next, *prev;
	int left, right;

	size = roundq(size);
	next = ff->head;
	while (next != NULL && next->start < addr)
		next = next->next;
	prev = next != NULL ? next->prev : ff->tail;
	if ((prev != NULL && prev->start + prev->size > addr) ||
	    (next != NULL && addr + size > next->start)) {
		fprintf(stderr,
		    "bench_vmem: naive list: bad free %#" PRIxPTR "\n", addr);
		exit(1);
	}
	left = prev != NULL && prev->start + prev->size == addr;
	right = next != NULL && addr + size == next->start;
	if (left && right) {
		prev->size += size + next->size;
		ff_unlink(ff, next);
		ff_putnode(ff, next);
	} else if (left) {
		prev->size += size;
	} else if (right) {
		next->start = addr;
		next->size += size;
	} else {
		ff_insert(ff, next, addr, size);
	}
}

/* ---- the fragmented layout ---- */

struct layout {
	size_t nfrag;	   /* N: fragments (freed segments) */
	size_t nseg;	   /* 2N segments allocated */
	uint8_t *quanta;   /* size of segment i in quanta */
	vmem_size_t span;  /* span size: segments + tail */
	vmem_t *vm;	   /* the arena, fragmented */
	struct ff ff;	   /* the naive list, same layout */
	int nonsequential; /* vmem did not allocate in address order */
	double setup_ms;
};

static void
layout_build(struct layout *l, size_t nfrag)
{
	vmem_addr_t addr, expect;
	vmem_size_t total = 0;
	uint64_t t0 = bench_now_ns();
	int rc;

	memset(l, 0, sizeof(*l));
	l->nfrag = nfrag;
	l->nseg = 2 * nfrag;
	l->quanta = malloc(l->nseg);
	if (l->quanta == NULL)
		bench_vmem_die("malloc", ENOMEM);
	for (size_t i = 0; i < l->nseg; i++) {
		l->quanta[i] = draw_quanta();
		total += l->quanta[i] * QUANTUM;
	}
	l->span = total + TAIL_BYTES;

	l->vm = vmem_create("bench", SPAN_BASE, l->span, QUANTUM, NULL, NULL,
	    NULL, 0, VM_NOSLEEP, IPL_NONE);
	if (l->vm == NULL)
		bench_vmem_die("vmem_create", errno);
	expect = SPAN_BASE;
	for (size_t i = 0; i < l->nseg; i++) {
		vmem_size_t sz = l->quanta[i] * QUANTUM;

		rc = vmem_alloc(l->vm, sz, VM_NOSLEEP | VM_INSTANTFIT, &addr);
		if (rc != 0)
			bench_vmem_die("vmem_alloc (setup)", rc);
		if (addr != expect)
			l->nonsequential = 1;
		expect += sz;
	}
	/* Free the even segments: N fragments between busy neighbours. */
	expect = SPAN_BASE;
	for (size_t i = 0; i < l->nseg; i++) {
		vmem_size_t sz = l->quanta[i] * QUANTUM;

		if (i % 2 == 0)
			vmem_free(l->vm, expect, sz);
		expect += sz;
	}

	/* The naive list: the same free ranges, in address order. */
	ff_init(&l->ff, nfrag + 2 * FIFO_DEPTH + 8);
	expect = SPAN_BASE;
	for (size_t i = 0; i < l->nseg; i++) {
		vmem_size_t sz = l->quanta[i] * QUANTUM;

		if (i % 2 == 0)
			ff_insert(&l->ff, NULL, expect, sz);
		expect += sz;
	}
	ff_insert(&l->ff, NULL, expect, TAIL_BYTES);
	l->setup_ms = (double)(bench_now_ns() - t0) / 1e6;
}

static void
layout_destroy(struct layout *l)
{
	vmem_xfreeall(l->vm);
	vmem_destroy(l->vm);
	ff_fini(&l->ff);
	free(l->quanta);
}

static uint64_t
vmem_nfree(const vmem_t *vm)
{
	struct kmem_vmem_stats st;

	memset(&st, 0, sizeof(st));
	st.vs_size = sizeof(st);
	if (kmem_vmem_stats(vm, &st) != 0)
		return 0;
	return st.vs_nfree;
}

/* ---- timed loops ---- */

/* One run of "iters" pairs; returns ns per pair.  See the header. */
static double
run_vmem(vmem_t *vm, vmem_size_t size, vm_flag_t policy, size_t iters)
{
	const vm_flag_t fl = VM_NOSLEEP | policy;
	vmem_addr_t live[FIFO_DEPTH], a;
	uint64_t t0, t1;
	size_t j = 0;
	int rc;

	for (size_t i = 0; i < FIFO_DEPTH; i++) {
		if ((rc = vmem_alloc(vm, size, fl, &live[i])) != 0)
			bench_vmem_die("vmem_alloc (prefill)", rc);
	}
	t0 = bench_now_ns();
	for (size_t i = 0; i < iters; i++) {
		if (__builtin_expect(
			(rc = vmem_alloc(vm, size, fl, &a)) != 0, 0))
			bench_vmem_die("vmem_alloc", rc);
		vmem_free(vm, live[j], size);
		live[j] = a;
		if (++j == FIFO_DEPTH)
			j = 0;
	}
	t1 = bench_now_ns();
	for (size_t i = 0; i < FIFO_DEPTH; i++)
		vmem_free(vm, live[i], size);
	return (double)(t1 - t0) / (double)iters;
}

static double
run_naive(struct ff *ff, vmem_size_t size, size_t iters)
{
	uintptr_t live[FIFO_DEPTH], a;
	uint64_t t0, t1;
	size_t j = 0;

	for (size_t i = 0; i < FIFO_DEPTH; i++) {
		if (ff_alloc(ff, size, &live[i]) != 0)
			bench_vmem_die("naive alloc (prefill)", ENOMEM);
	}
	t0 = bench_now_ns();
	for (size_t i = 0; i < iters; i++) {
		if (ff_alloc(ff, size, &a) != 0)
			bench_vmem_die("naive alloc", ENOMEM);
		ff_free(ff, live[j], size);
		live[j] = a;
		if (++j == FIFO_DEPTH)
			j = 0;
	}
	t1 = bench_now_ns();
	for (size_t i = 0; i < FIFO_DEPTH; i++)
		ff_free(ff, live[i], size);
	return (double)(t1 - t0) / (double)iters;
}

static double
run_one(struct layout *l, int policy, vmem_size_t size, size_t iters)
{
	if (policy == NPOLICIES - 1)
		return run_naive(&l->ff, size, iters);
	return run_vmem(l->vm, size, policy_flag[policy], iters);
}

/* Calibrate, then the median of "reps" runs of about target_ms each. */
static double
measure(
    struct layout *l, int policy, vmem_size_t size, int reps, double target_ms)
{
	double t[MAX_REPS], per;
	size_t iters = 16;

	for (;;) {
		per = run_one(l, policy, size, iters);
		if (per * (double)iters >= 2e6 || iters >= ((size_t)1 << 24))
			break;
		iters *= 4;
	}
	iters = (size_t)(target_ms * 1e6 / per);
	if (iters < MIN_ITERS)
		iters = MIN_ITERS;
	for (int r = 0; r < reps; r++)
		t[r] = run_one(l, policy, size, iters);
	qsort(t, (size_t)reps, sizeof(t[0]), bench_cmp_double);
	return t[reps / 2];
}

/* ---- main ---- */

static void
fmt_ns(char *buf, size_t n, double ns)
{
	if (ns < 1000)
		snprintf(buf, n, "%.1f", ns);
	else
		snprintf(buf, n, "%.0f", ns);
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: bench_vmem [--quick] [--max N] [--reps R] [--ms T]\n"
	    "  --quick   rows up to 4096 fragments, 5 runs of ~3 ms (seconds)\n"
	    "  --max N   largest row (16, 256, 4096, 65536, 1048576)\n"
	    "  --reps R  timed runs per cell, median printed (5..%d; 7)\n"
	    "  --ms T    target milliseconds per run (10)\n",
	    MAX_REPS);
	exit(2);
}

int
main(int argc, char **argv)
{
	double ns[NROWS][NSIZES][NPOLICIES];
	size_t maxfree = row_nfree[NROWS - 1];
	int reps = 7, nrows = 0, bad = 0;
	double target_ms = 10;
	char buf[32];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			maxfree = 4096;
			reps = 5;
			target_ms = 3;
		} else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc) {
			maxfree = strtoul(argv[++i], NULL, 0);
		} else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
			reps = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc) {
			target_ms = atof(argv[++i]);
		} else {
			usage();
		}
	}
	if (reps < 5 || reps > MAX_REPS || !(target_ms > 0) ||
	    maxfree < row_nfree[0])
		usage();

	printf("bench_vmem: one vmem_alloc + one vmem_free, VM_NOSLEEP; "
	       "median ns per pair of %d runs (~%.0f ms each)\n",
	    reps, target_ms);
	printf("machine: %ld CPUs online (nproc); a shared, noisy machine: "
	       "compare numbers within one run only\n",
	    sysconf(_SC_NPROCESSORS_ONLN));
	printf("arena: quantum %zu, no quantum caches; free segments = "
	       "fragments of 1..%u quanta (classes 0-%d)\n"
	       "between busy segments of the same mix, plus one free %zu MiB "
	       "tail; %d allocations live (FIFO)\n",
	    (size_t)QUANTUM, (1u << (MAX_CLASS + 1)) - 1, MAX_CLASS,
	    (size_t)(TAIL_BYTES >> 20), FIFO_DEPTH);
	fflush(stdout);

	for (int r = 0; r < NROWS && row_nfree[r] <= maxfree; r++) {
		struct layout l;

		/* N - 1 fragments and the tail: N free segments. */
		layout_build(&l, row_nfree[r] - 1);
		if (l.nonsequential) {
			printf(
			    "warning: row %zu: setup allocations were not in "
			    "address order; the naive list's layout differs\n",
			    row_nfree[r]);
			bad = 1;
		}
		if (vmem_nfree(l.vm) != row_nfree[r]) {
			printf("warning: row %zu: arena reports %" PRIu64
			       " free segments after setup, expected %zu\n",
			    row_nfree[r], vmem_nfree(l.vm), row_nfree[r]);
			bad = 1;
		}
		for (int s = 0; s < NSIZES; s++) {
			for (int p = 0; p < NPOLICIES; p++) {
				ns[r][s][p] = measure(
				    &l, p, req_size[s], reps, target_ms);
				if (vmem_nfree(l.vm) != row_nfree[r]) {
					printf("warning: row %zu %s %zu B: "
					       "%" PRIu64
					       " free segments after the run, "
					       "expected %zu\n",
					    row_nfree[r], policy_name[p],
					    (size_t)req_size[s],
					    vmem_nfree(l.vm), row_nfree[r]);
					bad = 1;
				}
			}
		}
		layout_destroy(&l);
		nrows = r + 1;
	}

	printf("\n            request %zu B (%zu quanta, not 2^n)     | "
	       "request %zu B (%zu quanta, 2^n)\n",
	    (size_t)req_size[0], (size_t)(roundq(req_size[0]) / QUANTUM),
	    (size_t)req_size[1], (size_t)(roundq(req_size[1]) / QUANTUM));
	printf("%9s", "free segs");
	for (int s = 0; s < NSIZES; s++) {
		printf("%s", s ? " |" : "");
		for (int p = 0; p < NPOLICIES; p++)
			printf(" %9s", policy_name[p]);
	}
	printf("\n");
	for (int r = 0; r < nrows; r++) {
		printf("%9zu", row_nfree[r]);
		for (int s = 0; s < NSIZES; s++) {
			printf("%s", s ? " |" : "");
			for (int p = 0; p < NPOLICIES; p++) {
				fmt_ns(buf, sizeof(buf), ns[r][s][p]);
				printf(" %9s", buf);
			}
		}
		printf("\n");
	}
	if (nrows >= 2) {
		double worst = 0;

		printf("\ninstant fit, ns(%zu free) / ns(%zu free):",
		    row_nfree[nrows - 1], row_nfree[0]);
		for (int s = 0; s < NSIZES; s++) {
			printf(" %zu B %.2f%s", (size_t)req_size[s],
			    ns[nrows - 1][s][0] / ns[0][s][0],
			    s + 1 < NSIZES ? "," : "");
		}
		for (int r = 0; r < nrows; r++)
			for (int s = 0; s < NSIZES; s++)
				if (ns[r][s][0] > worst)
					worst = ns[r][s][0];
		printf("\ninstant fit under 100 ns/pair in every row: %s "
		       "(worst %.1f ns)\n",
		    worst < 100 ? "yes" : "no", worst);
	}
	return bad;
}
