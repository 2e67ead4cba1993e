/*
 * threads.c -- the multi-threaded workload of tests/programs: several
 * threads allocate, fill, check, reallocate and free blocks, and hand a
 * share of them to the next thread, which checks and frees them: frees
 * from a thread other than the allocating one, the case a per-CPU or
 * per-thread allocator cache has to get right.
 *
 * What it exercises in an allocator: malloc, calloc (must be zeroed),
 * aligned_alloc (must be aligned), realloc growing and shrinking across
 * size classes and across the small/large boundary (16 KiB in kmem, the
 * contents kept), sizes from 1 byte to 256 KiB, concurrent use from
 * every thread, and frees of blocks allocated on another thread (through
 * a mutex-protected mailbox per thread).
 *
 * Output: one line with the thread and operation counts and a checksum
 * of every block's size and stamp, added (mod 2^64) when the block is
 * freed by whoever frees it.  Each thread's sequence of operations comes
 * from its own generator and does not depend on timing (a full mailbox
 * only changes who frees a block), so the line is the same on every run
 * and on every correct allocator.  A corrupted block, a non-zero calloc
 * or a misaligned block is reported on stderr and the exit status is 1.
 *
 * Usage: threads [NTHREADS [OPS_PER_THREAD]]  (defaults 4 and 500000)
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NSLOTS	  1024 /* blocks a thread holds at most */
#define MAILBOX	  256  /* blocks waiting for a thread at most */
#define MAXTHREAD 64

struct block {
	size_t b_size;	 /* bytes asked for */
	uint64_t b_seed; /* the stamp: fill byte and checksum input */
};

struct mailbox {
	pthread_mutex_t m_lock;
	unsigned int m_head, m_count;
	struct block *m_q[MAILBOX];
};

struct worker {
	pthread_t w_thread;
	unsigned int w_id;
	unsigned long w_ops;
	uint64_t w_rng;
	uint64_t w_sum; /* of the blocks this thread freed */
	unsigned long w_allocs, w_reallocs, w_sent;
	struct block *w_slot[NSLOTS];
};

static struct mailbox mailboxes[MAXTHREAD];
static struct worker workers[MAXTHREAD];
static unsigned int nthreads;

static uint64_t
next(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}

static void
fail(const char *what, const struct block *b)
{
	fprintf(stderr, "threads: %s (block %p, size %zu)\n", what,
	    (const void *)b, b != NULL ? b->b_size : 0);
	exit(1);
}

/* Mostly small sizes, as real programs ask; some large, a few huge. */
static size_t
pick_size(uint64_t r)
{
	unsigned int p = (unsigned int)(r % 100);

	r >>= 8;
	if (p < 70)
		return sizeof(struct block) + r % 240;
	if (p < 95)
		return 256 + r % (16384 - 256 + 4096);
	return 20480 + r % (256 * 1024 - 20480);
}

/* Every 61st byte and the last one hold the stamp's low byte. */
static void
stamp(struct block *b, size_t size, uint64_t seed)
{
	unsigned char *p = (unsigned char *)b;
	size_t i;

	b->b_size = size;
	b->b_seed = seed;
	for (i = sizeof *b; i < size; i += 61)
		p[i] = (unsigned char)seed;
	p[size - 1] = (unsigned char)seed;
}

static uint64_t
check(const struct block *b)
{
	const unsigned char *p = (const unsigned char *)b;
	size_t i;

	if (b->b_size < sizeof *b || b->b_size > 1024 * 1024)
		fail("corrupt header", b);
	for (i = sizeof *b; i < b->b_size; i += 61) {
		if (p[i] != (unsigned char)b->b_seed)
			fail("corrupt contents", b);
	}
	if (p[b->b_size - 1] != (unsigned char)b->b_seed)
		fail("corrupt last byte", b);
	return b->b_seed * 31 + b->b_size;
}

static void
release(struct worker *w, struct block *b)
{
	w->w_sum += check(b);
	free(b);
}

static struct block *
allocate(struct worker *w)
{
	uint64_t r = next(&w->w_rng);
	size_t size = pick_size(r), i;
	struct block *b;
	unsigned char *p;

	switch ((r >> 40) % 8) {
	case 0:
		b = calloc(1, size);
		if (b == NULL)
			fail("calloc failed", NULL);
		p = (unsigned char *)b;
		for (i = 0; i < size; i += 29) {
			if (p[i] != 0)
				fail("calloc block not zeroed", b);
		}
		if (p[size - 1] != 0)
			fail("calloc block not zeroed", b);
		break;
	case 1: {
		size_t align = (r >> 48) % 2 ? 64 : 4096;

		size = (size + align - 1) / align * align;
		b = aligned_alloc(align, size);
		if (b == NULL)
			fail("aligned_alloc failed", NULL);
		if ((uintptr_t)b % align != 0)
			fail("aligned_alloc block misaligned", b);
		break;
	}
	default:
		b = malloc(size);
		if (b == NULL)
			fail("malloc failed", NULL);
		if ((uintptr_t)b % 16 != 0)
			fail("malloc block not 16-aligned", b);
		break;
	}
	stamp(b, size, next(&w->w_rng));
	w->w_allocs++;
	return b;
}

/* Grow or shrink; the common prefix must survive. */
static struct block *
reallocate(struct worker *w, struct block *b)
{
	uint64_t r = next(&w->w_rng);
	size_t size = pick_size(r), keep, i;
	unsigned char *p;
	uint64_t seed = b->b_seed;

	w->w_sum += check(b);
	keep = size < b->b_size ? size : b->b_size;
	/* The prefix: the header and the stamp bytes within "keep". */
	p = realloc(b, size);
	if (p == NULL)
		fail("realloc failed", NULL);
	b = (struct block *)p;
	if (b->b_seed != seed)
		fail("realloc lost the header", b);
	for (i = sizeof *b; i < keep; i += 61) {
		if (p[i] != (unsigned char)seed)
			fail("realloc lost the contents", b);
	}
	stamp(b, size, next(&w->w_rng));
	w->w_reallocs++;
	return b;
}

static void
send(struct worker *w, struct block *b)
{
	struct mailbox *mb = &mailboxes[(w->w_id + 1) % nthreads];
	int queued = 0;

	pthread_mutex_lock(&mb->m_lock);
	if (mb->m_count < MAILBOX) {
		mb->m_q[(mb->m_head + mb->m_count) % MAILBOX] = b;
		mb->m_count++;
		queued = 1;
	}
	pthread_mutex_unlock(&mb->m_lock);
	if (!queued) /* the receiver is behind: free it here */
		release(w, b);
	w->w_sent++;
}

static void
drain(struct worker *w, struct mailbox *mb)
{
	struct block *batch[MAILBOX];
	unsigned int i, n;

	pthread_mutex_lock(&mb->m_lock);
	n = mb->m_count;
	for (i = 0; i < n; i++)
		batch[i] = mb->m_q[(mb->m_head + i) % MAILBOX];
	mb->m_head = (mb->m_head + n) % MAILBOX;
	mb->m_count = 0;
	pthread_mutex_unlock(&mb->m_lock);
	for (i = 0; i < n; i++)
		release(w, batch[i]);
}

static void *
run(void *arg)
{
	struct worker *w = arg;
	unsigned long op;
	unsigned int i;

	for (op = 0; op < w->w_ops; op++) {
		uint64_t r = next(&w->w_rng);
		unsigned int s = (unsigned int)(r % NSLOTS);
		struct block **slot = &w->w_slot[s];

		if (*slot == NULL)
			*slot = allocate(w);
		else if ((r >> 32) % 8 == 0)
			*slot = reallocate(w, *slot);
		else if ((r >> 32) % 8 == 1) {
			send(w, *slot);
			*slot = NULL;
		} else {
			release(w, *slot);
			*slot = NULL;
		}
		if (op % 32 == 0)
			drain(w, &mailboxes[w->w_id]);
	}
	for (i = 0; i < NSLOTS; i++) {
		if (w->w_slot[i] != NULL)
			release(w, w->w_slot[i]);
	}
	drain(w, &mailboxes[w->w_id]);
	return NULL;
}

int
main(int argc, char **argv)
{
	unsigned long ops = 500000, allocs = 0, reallocs = 0, sent = 0;
	uint64_t sum = 0;
	unsigned int i;
	struct worker main_w;

	nthreads = argc > 1 ? (unsigned int)strtoul(argv[1], NULL, 10) : 4;
	if (argc > 2)
		ops = strtoul(argv[2], NULL, 10);
	if (nthreads < 1 || nthreads > MAXTHREAD) {
		fprintf(stderr, "usage: threads [1..%d [OPS]]\n", MAXTHREAD);
		return 2;
	}
	for (i = 0; i < nthreads; i++) {
		pthread_mutex_init(&mailboxes[i].m_lock, NULL);
		workers[i].w_id = i;
		workers[i].w_ops = ops;
		workers[i].w_rng = 0x9E3779B97F4A7C15ULL * (i + 1);
	}
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(
			&workers[i].w_thread, NULL, run, &workers[i]) != 0) {
			fprintf(stderr, "threads: pthread_create failed\n");
			return 1;
		}
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(workers[i].w_thread, NULL);
	/* What was sent to a thread after its last drain. */
	memset(&main_w, 0, sizeof main_w);
	for (i = 0; i < nthreads; i++)
		drain(&main_w, &mailboxes[i]);
	sum = main_w.w_sum;
	for (i = 0; i < nthreads; i++) {
		sum += workers[i].w_sum;
		allocs += workers[i].w_allocs;
		reallocs += workers[i].w_reallocs;
		sent += workers[i].w_sent;
	}
	printf("threads %u ops %lu allocs %lu reallocs %lu sent %lu "
	       "checksum %016llx\n",
	    nthreads, ops * nthreads, allocs, reallocs, sent,
	    (unsigned long long)sum);
	return 0;
}
