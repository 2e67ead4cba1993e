/*
 * t_domain.h -- a page source for the domain tests (<kmem/domain.h>):
 * page-aligned pieces of one region the test reserves itself, handed out
 * by a next-fit search over a page bitmap, with everything a test needs
 * to check what a domain did with it:
 *
 *   - every ps_alloc is checked: size and align non-zero multiples of the
 *     page size (the header's promise), else the process exits 1;
 *   - every ps_free must give back exactly a range handed out and still
 *     out (not twice, not a part, not a merge of two), else exit 1;
 *     ps_purge must lie in ranges that are out;
 *   - bytes out and in, calls, refusals are counted; tsrc_check_empty()
 *     asserts that everything came back;
 *   - memory handed out is filled with junk (a domain must not assume
 *     zeroed pages: "need not be zeroed"), purged ranges too (their
 *     contents "are no longer needed"), freed ranges too, or, with
 *     "protect", made inaccessible until handed out again, so that a
 *     domain touching a page it gave back faults;
 *   - fault injection: the Nth ps_alloc after tsrc_fail() returns NULL
 *     (with "from", that one and every later one, until disarmed);
 *   - misalign: every address handed out is off by that many bytes (the
 *     error tests); misalign_big: a request aligned beyond a page gets a
 *     page-aligned address that is not aligned as asked.
 *
 * The source's lock is a leaf: the domain may call it with its own locks
 * held.  A failed check prints and leaves with _exit(1), not exit(), in
 * case a kmem lock is held by the caller.
 */
#ifndef KMEM_TESTS_T_DOMAIN_H
#define KMEM_TESTS_T_DOMAIN_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kmem/domain.h>
#include <kmem/vmem.h>

#include "t.h"

#define TSRC_JUNK_ALLOC 0xa5
#define TSRC_JUNK_PURGE 0x5b
#define TSRC_JUNK_FREE	0x5f
/* The region's start is aligned to this (so big alignments can be met). */
#define TSRC_BASE_ALIGN ((size_t)4 << 20)

struct tsrc {
	pthread_mutex_t lock;
	char *map; /* the whole reservation */
	size_t mapsize;
	char *base; /* the region: [base, base + size) */
	size_t size, ps, npages;
	uint32_t *runlen;     /* pages of the range out that starts here */
	unsigned char *used;  /* 1: page out */
	size_t hint;	      /* next-fit start (pages) */
	size_t nused;	      /* pages out */
	bool protect;	      /* pages not out are PROT_NONE */
	bool junk;	      /* fill on alloc, purge and free */
	size_t misalign;      /* bytes added to every address handed out */
	bool misalign_big;    /* align > page: off by one page */
	uint64_t armed_calls; /* calls at tsrc_fail() */
	uint64_t fail_nth;    /* 0: no injection */
	bool fail_from;
	/* Counts. */
	uint64_t ncalls; /* ps_alloc calls */
	uint64_t nalloc, nfree, npurge, nrefused, nbig_align;
	uint64_t bytes_out, bytes_in, bytes_purged, max_align;
};

#define TSRC_DIE(...)                                                          \
	do {                                                                   \
		fprintf(stderr, "FAIL %s:%d (%s): page source: ", __FILE__,    \
		    __LINE__, t_current);                                      \
		fprintf(stderr, __VA_ARGS__);                                  \
		fprintf(stderr, "\n0 passed, 1 failed\n");                     \
		fflush(NULL);                                                  \
		_exit(1);                                                      \
	} while (0)

static inline void
tsrc_init(struct tsrc *s, size_t size, bool protect)
{
	uintptr_t b;

	memset(s, 0, sizeof *s);
	T_EQ(pthread_mutex_init(&s->lock, NULL), 0);
	s->ps = (size_t)sysconf(_SC_PAGESIZE);
	T_EQ(size % s->ps, 0);
	s->size = size;
	s->npages = size / s->ps;
	s->mapsize = size + TSRC_BASE_ALIGN;
	s->map =
	    mmap(NULL, s->mapsize, protect ? PROT_NONE : PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	T_ASSERT(s->map != MAP_FAILED);
	b = ((uintptr_t)s->map + TSRC_BASE_ALIGN - 1) & ~(TSRC_BASE_ALIGN - 1);
	s->base = (char *)b;
	s->runlen = calloc(s->npages, sizeof *s->runlen);
	s->used = calloc(s->npages, 1);
	T_ASSERT(s->runlen != NULL && s->used != NULL);
	s->protect = protect;
	s->junk = true;
}

static inline void
tsrc_fini(struct tsrc *s)
{
	T_EQ(munmap(s->map, s->mapsize), 0);
	free(s->runlen);
	free(s->used);
	pthread_mutex_destroy(&s->lock);
	memset(s, 0, sizeof *s);
}

/* The first page index >= k whose address is aligned to align. */
static inline size_t
tsrc_aligned_from(const struct tsrc *s, size_t k, size_t align)
{
	uintptr_t a = (uintptr_t)s->base + k * s->ps;
	uintptr_t r = a % align;

	if (r != 0)
		a += align - r;
	return (a - (uintptr_t)s->base) / s->ps;
}

/* n free pages aligned to align, searched in [from, npages). */
static inline bool
tsrc_find(const struct tsrc *s, size_t from, size_t n, size_t align, size_t *at)
{
	size_t i = tsrc_aligned_from(s, from, align);
	const unsigned char *u;

	if (n > s->npages - s->nused)
		return false;
	while (i <= s->npages && s->npages - i >= n) {
		u = memchr(s->used + i, 1, n);
		if (u == NULL) {
			*at = i;
			return true;
		}
		/* Past the used run that starts at u. */
		i = (size_t)(u - s->used);
		u = memchr(s->used + i, 0, s->npages - i);
		if (u == NULL)
			return false;
		i = tsrc_aligned_from(s, (size_t)(u - s->used), align);
	}
	return false;
}

static inline void *
tsrc_alloc(void *arg, size_t size, size_t align)
{
	struct tsrc *s = arg;
	size_t n, at, k, extra = 0;
	uint64_t call;
	char *p;

	if (size == 0 || size % s->ps != 0)
		TSRC_DIE("ps_alloc size %zu is not a multiple of the page "
			 "size %zu",
		    size, s->ps);
	if (align == 0 || align % s->ps != 0)
		TSRC_DIE("ps_alloc(size %zu) align %zu is not a multiple of "
			 "the page size %zu",
		    size, align, s->ps);
	pthread_mutex_lock(&s->lock);
	call = ++s->ncalls - s->armed_calls;
	if (align > s->max_align)
		s->max_align = align;
	if (align > s->ps)
		s->nbig_align++;
	if (s->fail_nth != 0 &&
	    (call == s->fail_nth || (s->fail_from && call > s->fail_nth))) {
		s->nrefused++;
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	if (s->misalign_big && align > s->ps)
		extra = 1; /* one page more, handed out from its second page */
	n = size / s->ps + extra;
	if (!tsrc_find(s, s->hint, n, align, &at) &&
	    !tsrc_find(s, 0, n, align, &at)) {
		s->nrefused++;
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	at += extra;
	n -= extra;
	for (k = 0; k < n; k++)
		s->used[at + k] = 1;
	s->runlen[at] = (uint32_t)n;
	s->nused += n;
	s->hint = at + n;
	s->nalloc++;
	s->bytes_out += size;
	p = s->base + at * s->ps;
	if (s->protect && mprotect(p, size, PROT_READ | PROT_WRITE) != 0)
		TSRC_DIE("mprotect: %s", strerror(errno));
	if (s->junk)
		memset(p, TSRC_JUNK_ALLOC, size);
	pthread_mutex_unlock(&s->lock);
	return p + s->misalign;
}

/* The range [p, p + size) is out: first page index, else dies. */
static inline size_t
tsrc_range_out(
    const struct tsrc *s, const char *p, size_t size, const char *what)
{
	size_t i, n;

	if (p < s->base || p >= s->base + s->size || size == 0 ||
	    size % s->ps != 0 || (size_t)(p - s->base) % s->ps != 0 ||
	    size > (size_t)(s->base + s->size - p))
		TSRC_DIE("%s(%p, %zu): not a page range of the region [%p, "
			 "%p)",
		    what, (const void *)p, size, (void *)s->base,
		    (void *)(s->base + s->size));
	i = (size_t)(p - s->base) / s->ps;
	n = size / s->ps;
	if (memchr(s->used + i, 0, n) != NULL)
		TSRC_DIE("%s(%p, %zu): pages not handed out (given back "
			 "twice?)",
		    what, (const void *)p, size);
	return i;
}

static inline void
tsrc_free(void *arg, void *addr, size_t size)
{
	struct tsrc *s = arg;
	char *p = (char *)addr - s->misalign;
	size_t i, k;

	pthread_mutex_lock(&s->lock);
	i = tsrc_range_out(s, p, size, "ps_free");
	if (s->runlen[i] != size / s->ps)
		TSRC_DIE("ps_free(%p, %zu): the range handed out there has "
			 "%u pages, not %zu",
		    addr, size, s->runlen[i], size / s->ps);
	for (k = 0; k < size / s->ps; k++)
		s->used[i + k] = 0;
	s->runlen[i] = 0;
	s->nused -= size / s->ps;
	s->nfree++;
	s->bytes_in += size;
	if (s->protect) {
		if (madvise(p, size, MADV_DONTNEED) != 0 ||
		    mprotect(p, size, PROT_NONE) != 0)
			TSRC_DIE("madvise/mprotect: %s", strerror(errno));
	} else if (s->junk) {
		memset(p, TSRC_JUNK_FREE, size);
	}
	pthread_mutex_unlock(&s->lock);
}

static inline void
tsrc_purge(void *arg, void *addr, size_t size)
{
	struct tsrc *s = arg;

	pthread_mutex_lock(&s->lock);
	(void)tsrc_range_out(s, addr, size, "ps_purge");
	s->npurge++;
	s->bytes_purged += size;
	if (s->junk)
		memset(addr, TSRC_JUNK_PURGE, size);
	pthread_mutex_unlock(&s->lock);
}

/* The source's callbacks; purge: offer ps_purge (else NULL). */
static inline struct kmem_page_source
tsrc_ops(struct tsrc *s, bool purge)
{
	struct kmem_page_source src;

	memset(&src, 0, sizeof src);
	src.ps_alloc = tsrc_alloc;
	src.ps_free = tsrc_free;
	src.ps_purge = purge ? tsrc_purge : NULL;
	src.ps_arg = s;
	return src;
}

/* From now, the nth ps_alloc call fails (from: and all later); 0: off. */
static inline void
tsrc_fail(struct tsrc *s, uint64_t nth, bool from)
{
	pthread_mutex_lock(&s->lock);
	s->armed_calls = s->ncalls;
	s->fail_nth = nth;
	s->fail_from = from;
	pthread_mutex_unlock(&s->lock);
}

/* ps_alloc calls since the last tsrc_fail(). */
static inline uint64_t
tsrc_calls(struct tsrc *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->ncalls - s->armed_calls;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static inline uint64_t
tsrc_refused(struct tsrc *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->nrefused;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Bytes out now. */
static inline uint64_t
tsrc_out(struct tsrc *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->bytes_out - s->bytes_in;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static inline uint64_t
tsrc_bytes_in(struct tsrc *s)
{
	uint64_t n;

	pthread_mutex_lock(&s->lock);
	n = s->bytes_in;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* [p, p + n) lies in the region (no lock: the region never moves). */
static inline bool
tsrc_in(const struct tsrc *s, const void *p, size_t n)
{
	const char *c = p;

	return c >= s->base && c < s->base + s->size &&
	    n <= (size_t)(s->base + s->size - c);
}

/* [p, p + n) lies in pages that are out now. */
static inline bool
tsrc_live(struct tsrc *s, const void *p, size_t n)
{
	const char *c = p;
	size_t i, j;
	bool ok;

	if (!tsrc_in(s, p, n) || n == 0)
		return false;
	pthread_mutex_lock(&s->lock);
	i = (size_t)(c - s->base) / s->ps;
	j = (size_t)(c + n - 1 - s->base) / s->ps;
	ok = memchr(s->used + i, 0, j - i + 1) == NULL;
	pthread_mutex_unlock(&s->lock);
	return ok;
}

/* Everything handed out came back, each range once. */
static inline void
tsrc_check_empty(struct tsrc *s)
{
	pthread_mutex_lock(&s->lock);
	T_EQ(s->bytes_in, s->bytes_out);
	T_EQ(s->nfree, s->nalloc);
	T_ASSERT(memchr(s->used, 1, s->npages) == NULL);
	pthread_mutex_unlock(&s->lock);
}

static inline void
tsrc_print(struct tsrc *s, const char *name)
{
	pthread_mutex_lock(&s->lock);
	printf("   source %s: %llu calls, %llu ranges out / %llu in, %llu KiB "
	       "out / %llu KiB in, %llu purges (%llu KiB), %llu refused, "
	       "largest align %llu, %llu aligned beyond a page\n",
	    name, (unsigned long long)s->ncalls, (unsigned long long)s->nalloc,
	    (unsigned long long)s->nfree,
	    (unsigned long long)(s->bytes_out >> 10),
	    (unsigned long long)(s->bytes_in >> 10),
	    (unsigned long long)s->npurge,
	    (unsigned long long)(s->bytes_purged >> 10),
	    (unsigned long long)s->nrefused, (unsigned long long)s->max_align,
	    (unsigned long long)s->nbig_align);
	pthread_mutex_unlock(&s->lock);
	fflush(stdout);
}

/* ---- the default domain must not move while only domains work ---- */

struct tdef_mark {
	vmem_size_t inuse, total;
};

static inline struct tdef_mark
tdef_mark(void)
{
	vmem_t *kva = kmem_domain_arena(kmem_domain_default());
	struct kmem_vmem_stats st;
	struct tdef_mark m;

	T_ASSERT(kva != NULL);
	memset(&st, 0, sizeof st);
	st.vs_size = sizeof st;
	T_EQ(kmem_vmem_stats(kva, &st), 0);
	m.inuse = vmem_size(kva, VMEM_ALLOC);
	m.total = st.vs_total;
	return m;
}

static inline void
tdef_unchanged(const struct tdef_mark *m0)
{
	struct tdef_mark m1 = tdef_mark();

	T_EQ(m1.inuse, m0->inuse);
	T_EQ(m1.total, m0->total);
}

#endif /* KMEM_TESTS_T_DOMAIN_H */
