/*
 * stats.c -- the one statistics emitter: vmstat -m (pools), vmstat -C
 * (pool caches), the vmem arena table, or all of them as one JSON object;
 * KMEM_STATS, the print at exit; and KMEM_STATS_LIVE, the statistics
 * page that kmemstat -p reads while the process runs (section 5).
 *
 * 1. What is printed.  Counters are kept by the layers themselves (always
 *    on); this file only reads them, through the public snapshots
 *    kmem_pool_stats(), kmem_pool_cache_stats() and kmem_vmem_stats(), and
 *    formats them.  kmem_pool_print_stats(), kmem_pool_cache_print_stats()
 *    and kmem_vmem_print_stats() are one-line calls into here.
 *    - Pools (NetBSD's vmstat -m -W): one row per pool that has had a
 *      successful get (every pool with KMEM_STATS_ALLROWS, vmstat -v);
 *      Maxpg "inf" for UINT_MAX; Flags the pool_init flags in hex; Util =
 *      nout x size / (npages x pagesize), one decimal, rounded.  Then a
 *      Totals row (sums over the rows shown) and "In use NK, total
 *      allocated NK; utilization X.Y%", where PR_RECURSIVE pools count
 *      for nothing: their "pages" are segments of a vmem arena, often not
 *      memory at all (NetBSD adds their unused bytes to the total, which
 *      only makes sense when every arena is kernel memory).
 *    - Pool caches (vmstat -C): one row per cache whose depot missed at
 *      least once, i.e. that sent a get on to the pool (NetBSD: global
 *      misses != 0); all caches with KMEM_STATS_ALLROWS.  PoolLayer =
 *      depot misses, CacheLayer = depot hits + misses with the depot's hit
 *      percentage, CpuLayer = CPU-layer hits + misses with its hit
 *      percentage (integer percentages, truncated).
 *    - Arenas: every arena, with quantum, bytes in use / imported / total,
 *      allocs, frees, fails, waits, spans imported / released and busy
 *      segments.
 *    - JSON (KMEM_STATS_JSON): {"pools":[...],"caches":[...],"arenas":[...]}
 *      with the sections chosen and the same row selection; a pool object
 *      has every field of struct kmem_pool_stats (but ps_size) under its
 *      name without "ps_" (the cache fields filled for cached pools), a
 *      cache object the cache-layer fields, an arena object every field of
 *      struct kmem_vmem_stats (but vs_size).  Names are escaped (quote,
 *      backslash, control characters; invalid UTF-8 becomes U+FFFD), so
 *      the output is valid JSON whatever the names hold.  The file
 *      KMEM_STATS writes at exit starts with "process":{"pid":N,
 *      "command":"name"}, and "%p" in its path becomes the process id, so
 *      that the processes of one run (kmemstat) each write their own.
 *    "what" with no section bit means all sections.  Tables are separated
 *    by one blank line; in them, control characters in names show as '?'.
 *    The rows come from the live pools and arenas, or from snapshots
 *    (struct stats_src; kmemi_stats_write_rows, kmemstat's merged rows),
 *    through the same formatting.
 *
 * 2. Data structures.  The output goes through a sink on the caller's
 *    stack (struct stats_out): the caller's printf-like pr, called once
 *    per line with "%s" (the kmem_pr convention: lines of at most 255
 *    bytes; every JSON line is built to fit), or a 4 KiB buffer flushed to
 *    a file descriptor or to standard error.  Lines are formatted by the
 *    library's allocation-free kmem_vsnprintf into a 256-byte stack
 *    buffer; a line that would be longer is cut and still ends in a
 *    newline.  KMEM_STATS's choice (sections and path) is kept in two
 *    statics written once by kmemi_stats_init().
 *
 * 2a. Domains.  The statistics calls work in the thread's current
 *    domain: from the default one they show every live domain (so
 *    KMEM_STATS at exit and kmemstat see them all), from another only
 *    that domain's pools and arenas; another domain's rows are named
 *    "DOMAIN:NAME" (stats_dom_name), so that two domains' "kva" or
 *    "kmem-00064" stay apart, in the tables and when kmemstat merges
 *    rows by name.
 *
 * 3. Locking.  This file has no lock of its own: the sink is per call, so
 *    concurrent prints are independent.  Pools are walked with
 *    kmemi_pool_foreach(), which holds a domain's pool list lock only
 *    between pools
 *    and a reference on the current pool (pool_destroy of it waits) while
 *    we read it: kmem_pool_stats() takes the pool's lock,
 *    kmem_pool_cache_stats() also, one at a time, each CPU's spin lock,
 *    the depot lock and the shared empty-group lock.  pr runs with none of
 *    those held, so it may allocate (through kmem too), but it must not
 *    destroy the pool being printed.  Arenas are walked with
 *    kmemi_vmem_foreach(), which holds vmem_list_lock for the whole walk;
 *    kmem_vmem_stats() takes each arena's lock inside it (list -> arena, as
 *    vmem.c).  So that pr never runs under those locks, the snapshots are
 *    copied out in batches of STATS_VMEM_BATCH and printed after each walk
 *    (an arena created or destroyed between two batches may be missed or
 *    shown twice).  Every row is consistent in itself (one lock hold);
 *    rows are not consistent with each other, as in vmstat.
 *
 * 4. Failure policy.  Nothing allocates (the library may be the process's
 *    malloc): stack buffers, kmem_vsnprintf, prim calls.  kmem_stats_write
 *    stops writing at the first failed write and returns its errno value.
 *    A KMEM_STATS value that is not understood gives one warning naming the
 *    variable and the value, and no statistics; a file that cannot be
 *    opened or written at exit gives one warning.  The print at exit runs
 *    from a library destructor (kmem_prim_atexit), not atexit(3), which may
 *    call calloc; it happens on exit() and a return from main, not on
 *    _exit() or a crash.
 *
 * 5. The statistics page (KMEM_STATS_LIVE; layout in stats_live.h).
 *    With KMEM_STATS_LIVE set ("1", or comma-separated "keep", "ms=N",
 *    "dir=/path"), the options' set-up (kmemi_stats_live_init, once per
 *    process) makes DIR/kmem-stats.PID -- DIR $XDG_RUNTIME_DIR, else
 *    /dev/shm -- mode 0600, O_EXCL and O_NOFOLLOW after removing any
 *    file of that name (a stale page of the same pid), its blocks
 *    allocated (posix_fallocate: a full /dev/shm is a warning and no
 *    page, not a SIGBUS at a later write into a hole), and maps it
 *    shared.  Off by default: a file per process, and one left behind by
 *    every process that crashes, is not something a malloc should do
 *    unasked.
 *    - What is published: snapshots, not the counters in place.  The
 *      counters live in the layers' own structures (struct pool, the
 *      per-CPU pc_cpu slots whose hits partly live in the group word of
 *      the lock-free fast path, struct vmem), beside the pointers and
 *      locks those paths use; moving them into a shared file would put
 *      process memory layout into a file and make every fast path write
 *      to it.  A snapshot is the rows the tables print, taken with the
 *      same calls (kmem_pool_cache_stats, kmem_pool_stats,
 *      kmem_vmem_stats) over every domain, written into the page.
 *    - When: kmemi_live_tick, a relaxed load of kmemi_live_on, is called
 *      by the slow paths only -- a pool_cache get or put that missed its
 *      CPU's groups, after it has dropped every lock, and the free(3)
 *      tick (kmem.c section 5) -- never by a lock-free fast path, which
 *      gains no instruction.  A snapshot is taken if "ms" (20 by default,
 *      0: every time) have passed since the last, by the one thread that
 *      takes live.busy; the others go on.  Not in the set-up nor in the
 *      fork window (kmemi_setup_by_self, kmemi_fork_by_self): those hold
 *      locks the walk takes.  So a process that stops allocating shows
 *      the snapshot of its last slow path at most "ms" before it
 *      stopped, plus nothing of the CPU-layer hits after it: kmemstat
 *      prints the snapshot's age.  A walk costs about 1.3 us with twenty
 *      pools on two CPUs (more pools and CPUs, more: each cache's CPU
 *      slots are locked in turn), 0.01% of a 20 ms interval.
 *    - Torn rows: two slots, written in turn under a per-slot sequence
 *      count (odd while written, a seqlock), and lh_gen naming the
 *      newest complete one; a reader copies a slot and retries if its
 *      count moved.  A process killed mid-snapshot leaves the other slot
 *      whole.
 *    - Exit: exit(3) (kmem_prim_atexit) takes a last snapshot, marks the
 *      page exited and removes the file -- unless "keep", kmemstat's
 *      mode, where kmemstat reads and removes it.  _exit and signals
 *      leave the file with the last snapshot (kmemstat -p: stale,
 *      removed; kmemstat COMMAND: counted).
 *    - fork(2) (kmemi_stats_live_fork, from fork.c's handlers): prepare
 *      waits for a snapshot in progress and holds live.busy through the
 *      fork (before every other lock: a snapshot takes busy, then the
 *      locks); the child makes its own page for its pid, snapshots the
 *      counters it inherited into the page's baseline region, unmaps the
 *      parent's page (never written by the child), and from then on
 *      publishes its counters less the baseline -- the parent's work is
 *      not counted twice; gauges (in use, pages) are the child's own
 *      memory, which holds the inherited objects too.  A child that
 *      cannot make its page publishes nothing.  An exec drops the
 *      mapping; a new program on kmem replaces the file.
 *    - A program with two copies of kmem (one linked in, one preloaded)
 *      gets the page of whichever made it last.
 *    - Failure: a value not understood, or a page that cannot be made
 *      (the directory missing, a file of that name we may not remove),
 *      gives one warning and no page; the process runs on.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/pool_impl.h"
#include "internal/prim.h"
#include "internal/stats_live.h"

#define STATS_LINE	 256  /* one line: kmem_pr's limit */
#define STATS_BUF	 4096 /* fd / stderr sink: bytes per write */
#define STATS_NAME_MIN	 16   /* name column: at least (vmstat's look) */
#define STATS_NAME_MAX	 31   /* ... at most: ps_name / vs_name hold 31 */
#define STATS_JSON_NAME	 (2 + 6 * STATS_NAME_MAX + 1) /* "\uXXXX" each */
#define STATS_VMEM_BATCH 16   /* arena snapshots per walk (~2.3 KiB) */
#define STATS_PATH_MAX	 4096 /* KMEM_STATS=PATH: PATH_MAX on Linux */
#define LIVE_MS_DEFAULT	 20   /* KMEM_STATS_LIVE's publishing interval */
#define LIVE_DIR_MAX	 (STATS_PATH_MAX - 32)

/* ---- the sink ---- */

enum { OUT_PR, OUT_FD, OUT_STDERR };

struct stats_out {
	int kind;
	void (*pr)(const char *, ...); /* OUT_PR */
	int fd;			       /* OUT_FD */
	int error;		       /* OUT_FD: first write error */
	size_t len;		       /* bytes in buf */
	char buf[STATS_BUF];
};

static void
out_init(struct stats_out *o, int kind, void (*pr)(const char *, ...), int fd)
{
	o->kind = kind;
	o->pr = pr;
	o->fd = fd;
	o->error = 0;
	o->len = 0;
}

static void
out_flush(struct stats_out *o)
{
	if (o->len == 0)
		return;
	if (o->kind == OUT_FD) {
		if (o->error == 0)
			o->error = kmem_prim_write_fd(o->fd, o->buf, o->len);
	} else if (o->kind == OUT_STDERR) {
		kmem_prim_write_stderr(o->buf, o->len);
	}
	o->len = 0;
}

/* One whole line (fmt ends in a newline), cut at STATS_LINE - 1 bytes. */
static void out_line(struct stats_out *o, const char *fmt, ...)
    KMEM_PRINTF(2, 3);

static void
out_line(struct stats_out *o, const char *fmt, ...)
{
	char line[STATS_LINE];
	va_list ap;
	size_t len;
	int n;

	va_start(ap, fmt);
	n = kmem_vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	len = n < 0 ? 0 : (size_t)n;
	if (len >= sizeof line) {
		len = sizeof line - 1;
		line[len - 1] = '\n';
	}
	if (o->kind == OUT_PR) {
		o->pr("%s", line);
		return;
	}
	if (o->len + len > sizeof o->buf)
		out_flush(o);
	memcpy(o->buf + o->len, line, len);
	o->len += len;
}

/* ---- formatting helpers ---- */

/*
 * s left-justified in a field of w columns (w < n), control characters
 * shown as '?' so that a name cannot break a table's lines or columns.
 */
static const char *
pad_name(char *dst, size_t n, const char *s, size_t w)
{
	size_t len = strnlen(s, n - 1), i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	while (len < w && len < n - 1)
		dst[len++] = ' ';
	dst[len] = '\0';
	return dst;
}

/* The name column's width for names up to "longest" bytes. */
static size_t
name_width(size_t longest)
{
	if (longest < STATS_NAME_MIN)
		return STATS_NAME_MIN;
	return longest > STATS_NAME_MAX ? STATS_NAME_MAX : longest;
}

/* part / whole in tenths of a percent, rounded; 0 when whole is 0. */
static unsigned long long
permille(unsigned long long part, unsigned long long whole)
{
	while (part > ULLONG_MAX / 1000) {
		part >>= 10;
		whole >>= 10;
	}
	if (whole == 0)
		return 0;
	return (part * 1000 + whole / 2) / whole;
}

/* part / whole as a truncated integer percentage (vmstat -C's Hit%). */
static unsigned long
pct(unsigned long part, unsigned long whole)
{
	return whole ? (unsigned long)((unsigned long long)part * 100 / whole)
		     : 0;
}

/*
 * Length of the well-formed UTF-8 sequence at s (at most n bytes) that
 * encodes a non-ASCII character, or 0 (overlong forms, surrogates and code
 * points above U+10FFFF are ill-formed: RFC 3629).
 */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	return len;
}

/* s (at most STATS_NAME_MAX bytes of it) as a JSON string, quoted. */
static const char *
json_quote(char *dst, size_t n, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strnlen(s, STATS_NAME_MAX), k = 0, j = 0, u;

	KMEM_ASSERT(n >= STATS_JSON_NAME);
	(void)n;
	dst[j++] = '"';
	while (k < len) {
		unsigned char c = p[k];

		if (c == '"' || c == '\\') {
			dst[j++] = '\\';
			dst[j++] = (char)c;
			k++;
		} else if (c == '\n' || c == '\t' || c == '\r') {
			dst[j++] = '\\';
			dst[j++] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
			k++;
		} else if (c < 0x20) {
			memcpy(dst + j, "\\u00", 4);
			dst[j + 4] = hex[c >> 4];
			dst[j + 5] = hex[c & 0xf];
			j += 6;
			k++;
		} else if (c < 0x80) {
			dst[j++] = (char)c;
			k++;
		} else if ((u = utf8_len(p + k, len - k)) != 0) {
			memcpy(dst + j, p + k, u);
			j += u;
			k += u;
		} else {
			memcpy(dst + j, "\\ufffd", 6);
			j += 6;
			k++;
		}
	}
	dst[j++] = '"';
	dst[j] = '\0';
	return dst;
}

/* ---- pools and pool caches ---- */

enum { WALK_WIDTH, WALK_TABLE, WALK_JSON };

struct pool_walk {
	struct stats_out *o;
	unsigned int what;
	int mode;	     /* WALK_* */
	bool caches;	     /* the vmstat -C rows, else vmstat -m */
	size_t longest;	     /* WALK_WIDTH: longest name shown */
	size_t namew;	     /* WALK_TABLE: name column width */
	unsigned long nrows; /* rows emitted */
	/* vmstat -m's Totals row and summary line. */
	unsigned long nget, nfail, nput, nout, nitems;
	unsigned long npagealloc, npagefree, npages;
	unsigned long long inuse, total; /* bytes */
};

static void
pool_row(struct pool_walk *w, const struct kmem_pool_stats *st)
{
	char name[STATS_NAME_MAX + 1], maxpg[24], flags[24], util[24];
	unsigned long long u;

	if (st->ps_maxpages == UINT_MAX)
		kmem_snprintf(maxpg, sizeof maxpg, "inf");
	else
		kmem_snprintf(maxpg, sizeof maxpg, "%u", st->ps_maxpages);
	kmem_snprintf(flags, sizeof flags, "0x%04x", st->ps_flags);
	u = permille((unsigned long long)st->ps_nout * st->ps_itemsize,
	    (unsigned long long)st->ps_npages * st->ps_pagesize);
	kmem_snprintf(util, sizeof util, "%llu.%llu", u / 10, u % 10);
	out_line(w->o,
	    "%s %6zu %9lu %5lu %9lu %7u %6u %6lu %6lu %6u %6u %5u %5u %5s "
	    "%5u %6s %6s\n",
	    pad_name(name, sizeof name, st->ps_name, w->namew), st->ps_itemsize,
	    st->ps_nget, st->ps_nfail, st->ps_nput, st->ps_nout, st->ps_nitems,
	    st->ps_npagealloc, st->ps_npagefree, st->ps_npages, st->ps_pagesize,
	    st->ps_hiwat, st->ps_minpages, maxpg, st->ps_nidle, flags, util);
	w->nget += st->ps_nget;
	w->nfail += st->ps_nfail;
	w->nput += st->ps_nput;
	w->nout += st->ps_nout;
	w->nitems += st->ps_nitems;
	w->npagealloc += st->ps_npagealloc;
	w->npagefree += st->ps_npagefree;
	w->npages += st->ps_npages;
	if (!(st->ps_flags & PR_RECURSIVE)) {
		w->inuse += (unsigned long long)st->ps_nout * st->ps_itemsize;
		w->total += (unsigned long long)st->ps_npages * st->ps_pagesize;
	}
}

static void
cache_row(struct pool_walk *w, const struct kmem_pool_stats *st)
{
	char name[STATS_NAME_MAX + 1];
	unsigned long cpu = st->ps_cpuhit + st->ps_cpumiss;
	unsigned long cache = st->ps_depothit + st->ps_depotmiss;

	out_line(w->o,
	    "%s %5lu %5u %5lu %5lu %10lu %10lu %3lu%% %11lu %3lu%%\n",
	    pad_name(name, sizeof name, st->ps_name, w->namew),
	    st->ps_contended, st->ps_groupsize, st->ps_nfull, st->ps_nempty,
	    st->ps_depotmiss, cache, pct(st->ps_depothit, cache), cpu,
	    pct(st->ps_cpuhit, cpu));
}

static void
pool_json(struct pool_walk *w, const struct kmem_pool_stats *st)
{
	struct stats_out *o = w->o;
	char name[STATS_JSON_NAME];

	out_line(o, "%s{\"name\":%s,\n", w->nrows ? "," : "",
	    json_quote(name, sizeof name, st->ps_name));
	out_line(o, "\"itemsize\":%zu,\"pagesize\":%u,\"itemsperpage\":%u,\n",
	    st->ps_itemsize, st->ps_pagesize, st->ps_itemsperpage);
	out_line(o,
	    "\"nget\":%lu,\"nfail\":%lu,\"nput\":%lu,\"nout\":%u,"
	    "\"nitems\":%u,\n",
	    st->ps_nget, st->ps_nfail, st->ps_nput, st->ps_nout, st->ps_nitems);
	out_line(o,
	    "\"npagealloc\":%lu,\"npagefree\":%lu,\"npages\":%u,"
	    "\"hiwat\":%u,\n",
	    st->ps_npagealloc, st->ps_npagefree, st->ps_npages, st->ps_hiwat);
	out_line(o,
	    "\"minpages\":%u,\"maxpages\":%u,\"nidle\":%u,\"flags\":%u,\n",
	    st->ps_minpages, st->ps_maxpages, st->ps_nidle, st->ps_flags);
	out_line(o,
	    "\"cached\":%s,\"groupsize\":%u,\"nfull\":%lu,\"nempty\":%lu,\n",
	    st->ps_cached ? "true" : "false", st->ps_groupsize, st->ps_nfull,
	    st->ps_nempty);
	out_line(o,
	    "\"cpuhit\":%lu,\"cpumiss\":%lu,\"depothit\":%lu,"
	    "\"depotmiss\":%lu,\n",
	    st->ps_cpuhit, st->ps_cpumiss, st->ps_depothit, st->ps_depotmiss);
	out_line(o, "\"contended\":%lu,\"cached_objects\":%lu}\n",
	    st->ps_contended, st->ps_cached_objects);
}

static void
cache_json(struct pool_walk *w, const struct kmem_pool_stats *st)
{
	struct stats_out *o = w->o;
	char name[STATS_JSON_NAME];

	out_line(o, "%s{\"name\":%s,\n", w->nrows ? "," : "",
	    json_quote(name, sizeof name, st->ps_name));
	out_line(o,
	    "\"groupsize\":%u,\"nfull\":%lu,\"nempty\":%lu,"
	    "\"contended\":%lu,\n",
	    st->ps_groupsize, st->ps_nfull, st->ps_nempty, st->ps_contended);
	out_line(o,
	    "\"cpuhit\":%lu,\"cpumiss\":%lu,\"depothit\":%lu,"
	    "\"depotmiss\":%lu,\n",
	    st->ps_cpuhit, st->ps_cpumiss, st->ps_depothit, st->ps_depotmiss);
	out_line(o, "\"cached_objects\":%lu}\n", st->ps_cached_objects);
}

/* One pool's snapshot, for any section and mode. */
static void
pool_walk_row(struct pool_walk *w, const struct kmem_pool_stats *st)
{
	bool all = (w->what & KMEM_STATS_ALLROWS) != 0;

	if (w->caches && !st->ps_cached)
		return;
	if (!all && (w->caches ? st->ps_depotmiss == 0 : st->ps_nget == 0))
		return;
	switch (w->mode) {
	case WALK_WIDTH:
		if (strlen(st->ps_name) > w->longest)
			w->longest = strlen(st->ps_name);
		break;
	case WALK_TABLE:
		if (w->caches)
			cache_row(w, st);
		else
			pool_row(w, st);
		break;
	default:
		if (w->caches)
			cache_json(w, st);
		else
			pool_json(w, st);
		break;
	}
	w->nrows++;
}

/*
 * Rows of another domain than the default are named "DOMAIN:NAME" (the
 * default's as ever), so that two domains' "kva" or "kmem-00064" rows
 * stay apart in the tables and when kmemstat merges by name.
 */
static void
stats_dom_name(const struct kmem_domain *d, char *name, size_t n)
{
	char tmp[STATS_NAME_MAX + 1];

	if (d == NULL || d->kd_default)
		return;
	kmem_snprintf(tmp, sizeof tmp, "%s:%s", d->kd_name, name);
	kmem_snprintf(name, n, "%s", tmp);
}

/*
 * The statistics calls work in the thread's current domain: every live
 * domain from the default one (KMEM_STATS at exit too), only its own
 * from another.
 */
static int
stats_pool_foreach(int (*fn)(struct pool *, void *), void *arg)
{
	struct kmem_domain *d = kmemi_dom_cur();

	return d->kd_default ? kmemi_pool_foreach(fn, arg)
			     : kmemi_pool_foreach_in(d, fn, arg);
}

static int
stats_vmem_foreach(int (*fn)(vmem_t *, void *), void *arg)
{
	struct kmem_domain *d = kmemi_dom_cur();

	return d->kd_default ? kmemi_vmem_foreach(fn, arg)
			     : kmemi_vmem_foreach_in(d, fn, arg);
}

/* kmemi_pool_foreach's callback: one live pool. */
static int
pool_walk_fn(struct pool *pp, void *arg)
{
	struct pool_walk *w = arg;
	struct kmem_pool_stats st;
	/*
	 * pool_cache_destroy clears pr_cache before pool_destroy, which
	 * waits for our reference, frees the cache: a cache seen here stays
	 * valid while we read it.
	 */
	pool_cache_t pc = __atomic_load_n(&pp->pr_cache, __ATOMIC_ACQUIRE);

	if (w->caches && pc == NULL)
		return 0;
	/* Cache fields too for JSON pools; the tables do not show them. */
	if (pc != NULL && (w->caches || w->mode == WALK_JSON))
		kmem_pool_cache_stats(pc, &st);
	else
		kmem_pool_stats(pp, &st);
	st.ps_name[sizeof st.ps_name - 1] = '\0';
	stats_dom_name(pp->pr_dom, st.ps_name, sizeof st.ps_name);
	pool_walk_row(w, &st);
	return 0;
}

/*
 * Where the rows come from: the live pools and arenas (pools NULL), or
 * snapshots (kmemstat: what processes wrote at exit, merged).
 */
struct stats_src {
	const struct kmem_pool_stats *pools;
	size_t npools;
	const struct kmem_vmem_stats *arenas;
	size_t narenas;
	const char *json_head; /* members first in the JSON object, or NULL */
};

static void
src_pools(const struct stats_src *src, struct pool_walk *w)
{
	size_t i;

	if (src->pools == NULL) {
		(void)stats_pool_foreach(pool_walk_fn, w);
		return;
	}
	for (i = 0; i < src->npools; i++)
		pool_walk_row(w, &src->pools[i]);
}

static void
pool_walk_init(struct pool_walk *w, struct stats_out *o, unsigned int what,
    int mode, bool caches)
{
	memset(w, 0, sizeof *w);
	w->o = o;
	w->what = what;
	w->mode = mode;
	w->caches = caches;
}

/* The name column's width for the rows a table will show. */
static size_t
pool_name_width(const struct stats_src *src, unsigned int what, bool caches)
{
	struct pool_walk w;

	pool_walk_init(&w, NULL, what, WALK_WIDTH, caches);
	src_pools(src, &w);
	return name_width(w.longest);
}

static void
pools_table(struct stats_out *o, const struct stats_src *src, unsigned int what)
{
	char name[STATS_NAME_MAX + 1];
	struct pool_walk w;
	size_t namew = pool_name_width(src, what, false);
	unsigned long long u;

	out_line(o, "Memory resource pool statistics\n");
	out_line(o,
	    "%s %6s %9s %5s %9s %7s %6s %6s %6s %6s %6s %5s %5s %5s %5s %6s "
	    "%6s\n",
	    pad_name(name, sizeof name, "Name", namew), "Size", "Requests",
	    "Fail", "Releases", "InUse", "Avail", "Pgreq", "Pgrel", "Npage",
	    "PageSz", "Hiwat", "Minpg", "Maxpg", "Idle", "Flags", "Util");
	pool_walk_init(&w, o, what, WALK_TABLE, false);
	w.namew = namew;
	src_pools(src, &w);
	out_line(o, "%s %6s %9lu %5lu %9lu %7lu %6lu %6lu %6lu %6lu\n",
	    pad_name(name, sizeof name, "Totals", namew), "", w.nget, w.nfail,
	    w.nput, w.nout, w.nitems, w.npagealloc, w.npagefree, w.npages);
	u = permille(w.inuse, w.total);
	out_line(o,
	    "In use %lluK, total allocated %lluK; utilization %llu.%llu%%\n",
	    w.inuse / 1024, w.total / 1024, u / 10, u % 10);
}

static void
caches_table(
    struct stats_out *o, const struct stats_src *src, unsigned int what)
{
	char name[STATS_NAME_MAX + 1];
	struct pool_walk w;
	size_t namew = pool_name_width(src, what, true);

	out_line(o, "Pool cache statistics.\n");
	out_line(o, "%s %5s %5s %5s %5s %10s %10s %4s %11s %4s\n",
	    pad_name(name, sizeof name, "Name", namew), "Spin", "GrpSz", "Full",
	    "Emty", "PoolLayer", "CacheLayer", "Hit%", "CpuLayer", "Hit%");
	pool_walk_init(&w, o, what, WALK_TABLE, true);
	w.namew = namew;
	src_pools(src, &w);
}

/* ---- vmem arenas ---- */

/* Snapshots of arenas skip .. skip + STATS_VMEM_BATCH - 1, in list order. */
struct vmem_batch {
	unsigned long skip, seen;
	unsigned int n;
	struct kmem_vmem_stats st[STATS_VMEM_BATCH];
};

static int
vmem_batch_fn(vmem_t *vm, void *arg)
{
	struct vmem_batch *b = arg;

	if (b->seen++ < b->skip)
		return 0;
	kmem_vmem_stats(vm, &b->st[b->n]);
	b->st[b->n].vs_name[sizeof b->st[b->n].vs_name - 1] = '\0';
	stats_dom_name(kmemi_vmem_domain(vm), b->st[b->n].vs_name,
	    sizeof b->st[b->n].vs_name);
	return ++b->n == STATS_VMEM_BATCH;
}

/* Fill b with the next batch; false when there was none left. */
static bool
vmem_next_batch(struct vmem_batch *b)
{
	b->skip += b->n;
	b->seen = 0;
	b->n = 0;
	(void)stats_vmem_foreach(vmem_batch_fn, b);
	return b->n > 0;
}

static void
vmem_row(struct stats_out *o, const struct kmem_vmem_stats *st, size_t namew)
{
	char name[STATS_NAME_MAX + 1];

	out_line(o,
	    "%s %8zu %12zu %12zu %14zu %10llu %10llu %6llu %6llu %6llu %6llu "
	    "%8llu\n",
	    pad_name(name, sizeof name, st->vs_name, namew), st->vs_quantum,
	    st->vs_inuse, st->vs_imported, st->vs_total,
	    (unsigned long long)st->vs_alloc, (unsigned long long)st->vs_free,
	    (unsigned long long)st->vs_fail, (unsigned long long)st->vs_wait,
	    (unsigned long long)st->vs_import,
	    (unsigned long long)st->vs_release,
	    (unsigned long long)st->vs_nbusy);
}

static void
vmem_json(struct stats_out *o, const struct kmem_vmem_stats *st, bool first)
{
	char name[STATS_JSON_NAME];

	out_line(o, "%s{\"name\":%s,\n", first ? "" : ",",
	    json_quote(name, sizeof name, st->vs_name));
	out_line(o,
	    "\"quantum\":%zu,\"inuse\":%zu,\"imported\":%zu,\"total\":%zu,\n",
	    st->vs_quantum, st->vs_inuse, st->vs_imported, st->vs_total);
	out_line(o,
	    "\"alloc\":%llu,\"free\":%llu,\"fail\":%llu,\"wait\":%llu,\n",
	    (unsigned long long)st->vs_alloc, (unsigned long long)st->vs_free,
	    (unsigned long long)st->vs_fail, (unsigned long long)st->vs_wait);
	out_line(o,
	    "\"import\":%llu,\"release\":%llu,\"nbusy\":%llu,\"nfree\":%llu,"
	    "\"hashsize\":%llu}\n",
	    (unsigned long long)st->vs_import,
	    (unsigned long long)st->vs_release,
	    (unsigned long long)st->vs_nbusy, (unsigned long long)st->vs_nfree,
	    (unsigned long long)st->vs_hashsize);
}

/* What is done with each arena's snapshot. */
struct vmem_walk {
	struct stats_out *o;
	int mode;	/* WALK_* */
	size_t longest; /* WALK_WIDTH */
	size_t namew;	/* WALK_TABLE */
	bool first;	/* WALK_JSON: no comma before the next object */
};

static void
vmem_walk_row(struct vmem_walk *w, const struct kmem_vmem_stats *st)
{
	switch (w->mode) {
	case WALK_WIDTH:
		if (strlen(st->vs_name) > w->longest)
			w->longest = strlen(st->vs_name);
		break;
	case WALK_TABLE:
		vmem_row(w->o, st, w->namew);
		break;
	default:
		vmem_json(w->o, st, w->first);
		w->first = false;
		break;
	}
}

/* Every arena, live (in batches, section 3) or from the snapshots. */
static void
src_arenas(const struct stats_src *src, struct vmem_walk *w)
{
	struct vmem_batch b;
	size_t i;

	if (src->pools != NULL) {
		for (i = 0; i < src->narenas; i++)
			vmem_walk_row(w, &src->arenas[i]);
		return;
	}
	memset(&b, 0, sizeof b);
	while (vmem_next_batch(&b)) {
		for (i = 0; i < b.n; i++)
			vmem_walk_row(w, &b.st[i]);
	}
}

static void
vmem_table(struct stats_out *o, const struct stats_src *src)
{
	char name[STATS_NAME_MAX + 1];
	struct vmem_walk w = {o, WALK_WIDTH, 0, 0, true};
	size_t namew;

	src_arenas(src, &w);
	namew = name_width(w.longest);
	out_line(o, "Vmem arena statistics\n");
	out_line(o, "%s %8s %12s %12s %14s %10s %10s %6s %6s %6s %6s %8s\n",
	    pad_name(name, sizeof name, "Arena", namew), "Quantum", "InUse",
	    "Imported", "Total", "Allocs", "Frees", "Fails", "Waits", "SpImp",
	    "SpRel", "Busy");
	w.mode = WALK_TABLE;
	w.namew = namew;
	src_arenas(src, &w);
}

/* ---- the emitter ---- */

static void
stats_json(struct stats_out *o, const struct stats_src *src, unsigned int what)
{
	struct vmem_walk vw = {o, WALK_JSON, 0, 0, true};
	struct pool_walk w;
	bool first = true;

	if (src->json_head != NULL) {
		out_line(o, "{%s\n", src->json_head);
		first = false;
	}
	if (what & KMEM_STATS_POOLS) {
		out_line(o, "%s\"pools\":[\n", first ? "{" : ",");
		pool_walk_init(&w, o, what, WALK_JSON, false);
		src_pools(src, &w);
		out_line(o, "]\n");
		first = false;
	}
	if (what & KMEM_STATS_CACHES) {
		out_line(o, "%s\"caches\":[\n", first ? "{" : ",");
		pool_walk_init(&w, o, what, WALK_JSON, true);
		src_pools(src, &w);
		out_line(o, "]\n");
		first = false;
	}
	if (what & KMEM_STATS_VMEM) {
		out_line(o, "%s\"arenas\":[\n", first ? "{" : ",");
		src_arenas(src, &vw);
		out_line(o, "]\n");
	}
	out_line(o, "}\n");
}

static void
stats_emit(struct stats_out *o, const struct stats_src *src, unsigned int what)
{
	bool first = true;

	if ((what & KMEM_STATS_ALL) == 0)
		what |= KMEM_STATS_ALL;
	if (what & KMEM_STATS_JSON) {
		stats_json(o, src, what);
		return;
	}
	if (what & KMEM_STATS_POOLS) {
		pools_table(o, src, what);
		first = false;
	}
	if (what & KMEM_STATS_CACHES) {
		if (!first)
			out_line(o, "\n");
		caches_table(o, src, what);
		first = false;
	}
	if (what & KMEM_STATS_VMEM) {
		if (!first)
			out_line(o, "\n");
		vmem_table(o, src);
	}
}

static const struct stats_src stats_live = {NULL, 0, NULL, 0, NULL};

void
kmem_stats_print(void (*pr)(const char *, ...), unsigned int what)
{
	struct stats_out o;

	out_init(&o, pr != NULL ? OUT_PR : OUT_STDERR, pr, -1);
	stats_emit(&o, &stats_live, what);
	out_flush(&o);
}

/* The tables or JSON of src to fd; 0 or the errno of a failed write. */
static int
stats_write_src(int fd, const struct stats_src *src, unsigned int what)
{
	struct stats_out o;

	if (fd < 0)
		return EBADF;
	out_init(&o, OUT_FD, NULL, fd);
	stats_emit(&o, src, what);
	out_flush(&o);
	return o.error;
}

int
kmem_stats_write(int fd, unsigned int what)
{
	return stats_write_src(fd, &stats_live, what);
}

int
kmemi_stats_write_rows(int fd, unsigned int what,
    const struct kmem_pool_stats *pools, size_t npools,
    const struct kmem_vmem_stats *arenas, size_t narenas, const char *json_head)
{
	/* A non-NULL array marks snapshots, even when there are none. */
	static const struct kmem_pool_stats none;
	struct stats_src src = {
	    pools != NULL ? pools : &none, npools, arenas, narenas, json_head};

	return stats_write_src(fd, &src, what);
}

/* ---- KMEM_STATS: the print at exit ---- */

/* KMEM_STATS as read, process-wide (domain.c: "What stays global"). */
static struct {
	atomic_bool once;	   /* kmemi_stats_init ran */
	atomic_bool registered;	   /* stats_at_exit registered */
	_Atomic unsigned int what; /* KMEM_STATS_*; 0: nothing */
	long pid;		   /* the process that read KMEM_STATS */
	char path[STATS_PATH_MAX]; /* "": standard error */
	/* KMEM_STATS_LIVE (section 5). */
	struct {
		atomic_bool on; /* a page is mapped and published into */
		struct kmem_live_hdr *hdr; /* the mapping */
		size_t size;
		long pid;	      /* the page's process */
		bool keep;	      /* KMEM_LIVE_KEEP: no unlink at exit */
		bool fork_took;	      /* prepare took busy (forking thread) */
		bool forked;	      /* KMEM_LIVE_FORKED: region 2 is a base */
		uint64_t interval_ns; /* at most one snapshot per interval */
		_Atomic uint64_t last;	   /* when the last one was taken */
		atomic_bool busy;	   /* a snapshot is being taken */
		atomic_bool registered;	   /* live_at_exit registered */
		char dir[LIVE_DIR_MAX];	   /* where pages are made */
		char path[STATS_PATH_MAX]; /* this process's page */
	} live;
} stats_exit;

/* path with every "%p" replaced by pid; false if it does not fit. */
static bool
stats_expand(char *dst, size_t n, const char *path, long pid)
{
	size_t j = 0;

	for (; *path != '\0'; path++) {
		int k = 1;

		if (path[0] == '%' && path[1] == 'p') {
			k = kmem_snprintf(dst + j, n - j, "%ld", pid);
			path++;
		} else if (j < n) {
			dst[j] = *path;
		}
		j += (size_t)k;
		if (j >= n)
			return false;
	}
	dst[j] = '\0';
	return true;
}

static void
stats_at_exit(void)
{
	unsigned int what =
	    atomic_load_explicit(&stats_exit.what, memory_order_acquire);
	char path[STATS_PATH_MAX + 64], command[STATS_JSON_NAME], head[160];
	struct stats_src src = stats_live;
	int fd, err;

	/*
	 * Only the process that read KMEM_STATS: a forked child that exits
	 * must not overwrite its parent's file (or print the parent's
	 * counters it inherited).
	 */
	if (what == 0 || kmem_prim_getpid() != stats_exit.pid)
		return;
	if (stats_exit.path[0] == '\0') {
		kmem_stats_print(NULL, what);
		return;
	}
	if (!stats_expand(path, sizeof path, stats_exit.path, stats_exit.pid)) {
		kmem_warn("KMEM_STATS: %s: path too long with the process id",
		    stats_exit.path);
		return;
	}
	if ((err = kmem_prim_open_write(path, &fd)) != 0) {
		kmem_warn("KMEM_STATS: cannot create %s (errno %d)", path, err);
		return;
	}
	/* JSON says which process it was (kmemstat merges several). */
	kmem_snprintf(head, sizeof head,
	    "\"process\":{\"pid\":%ld,"
	    "\"command\":%s}",
	    stats_exit.pid,
	    json_quote(command, sizeof command, kmem_prim_progname()));
	src.json_head = head;
	if ((err = stats_write_src(fd, &src, what)) != 0)
		kmem_warn("KMEM_STATS: cannot write %s (errno %d)", path, err);
	kmem_prim_close(fd);
}

/* What KMEM_STATS=v asks for; false (with a warning) if not understood. */
static bool
stats_parse(const char *v, unsigned int *whatp, const char **pathp)
{
	*pathp = NULL;
	if (strcmp(v, "1") == 0) {
		*whatp = KMEM_STATS_ALL;
	} else if (strcmp(v, "json") == 0) {
		*whatp = KMEM_STATS_ALL | KMEM_STATS_JSON;
	} else if (strncmp(v, "json:", 5) == 0 && v[5] != '\0') {
		*whatp = KMEM_STATS_ALL | KMEM_STATS_JSON;
		*pathp = v + 5;
	} else if (v[0] == '/' || v[0] == '.') {
		*whatp = KMEM_STATS_ALL;
		*pathp = v;
	} else {
		kmem_warn("KMEM_STATS=%s: not understood (want 1, json, "
			  "/path, ./path or json:path); no statistics",
		    v);
		return false;
	}
	if (*pathp != NULL && strlen(*pathp) >= sizeof stats_exit.path) {
		kmem_warn("KMEM_STATS=%.64s...: path longer than %zu bytes; "
			  "no statistics",
		    v, sizeof stats_exit.path - 1);
		return false;
	}
	return true;
}

void
kmemi_stats_init(void)
{
	const char *v, *path;
	unsigned int what;

	if (atomic_exchange_explicit(
		&stats_exit.once, true, memory_order_acq_rel))
		return;
	v = kmem_prim_getenv("KMEM_STATS");
	if (v == NULL || v[0] == '\0' || strcmp(v, "0") == 0)
		return;
	if (!stats_parse(v, &what, &path))
		return;
	/* The environment may change before exit: keep our own copy. */
	if (path != NULL)
		memcpy(stats_exit.path, path, strlen(path) + 1);
	else
		stats_exit.path[0] = '\0';
	stats_exit.pid = kmem_prim_getpid();
	atomic_store_explicit(&stats_exit.what, what, memory_order_release);
	if (!atomic_exchange_explicit(
		&stats_exit.registered, true, memory_order_acq_rel) &&
	    kmem_prim_atexit(stats_at_exit) != 0) {
		kmem_warn("KMEM_STATS=%s: no room for the exit function; no "
			  "statistics",
		    v);
		atomic_store_explicit(
		    &stats_exit.what, 0, memory_order_relaxed);
	}
}

/*
 * Tests: forget KMEM_STATS's choice, so that the next kmemi_stats_init()
 * reads the variable again (the exit function stays registered).
 */
void kmemi_stats_reset(void);
void
kmemi_stats_reset(void)
{
	atomic_store_explicit(&stats_exit.what, 0, memory_order_relaxed);
	stats_exit.path[0] = '\0';
	atomic_store_explicit(&stats_exit.once, false, memory_order_release);
}

/* ---- KMEM_STATS_LIVE: the statistics page (section 5) ---- */

/* The counters a forked child subtracts (its parent's at the fork). */
static const size_t live_pool_sums[] = {
    offsetof(struct kmem_pool_stats, ps_nget),
    offsetof(struct kmem_pool_stats, ps_nfail),
    offsetof(struct kmem_pool_stats, ps_nput),
    offsetof(struct kmem_pool_stats, ps_npagealloc),
    offsetof(struct kmem_pool_stats, ps_npagefree),
    offsetof(struct kmem_pool_stats, ps_cpuhit),
    offsetof(struct kmem_pool_stats, ps_cpumiss),
    offsetof(struct kmem_pool_stats, ps_depothit),
    offsetof(struct kmem_pool_stats, ps_depotmiss),
    offsetof(struct kmem_pool_stats, ps_contended),
};
static const size_t live_vmem_sums[] = {
    offsetof(struct kmem_vmem_stats, vs_alloc),
    offsetof(struct kmem_vmem_stats, vs_free),
    offsetof(struct kmem_vmem_stats, vs_fail),
    offsetof(struct kmem_vmem_stats, vs_wait),
    offsetof(struct kmem_vmem_stats, vs_import),
    offsetof(struct kmem_vmem_stats, vs_release),
};

/* What one walk fills: a slot, less the baseline if there is one. */
/*
 * The page's geometry, as live_make laid it out: from these constants,
 * never from the header or counts in the file, which its owner can
 * rewrite under the mapping (a write past the page would be ours).
 */
#define LIVE_HDR ((sizeof(struct kmem_live_hdr) + 63) & ~(size_t)63)

static struct kmem_live_slot *
live_region(struct kmem_live_hdr *h, unsigned int r)
{
	return (struct kmem_live_slot *)(void *)((char *)h + LIVE_HDR +
	    r *
		(size_t)kmem_live_region_size(
		    KMEM_LIVE_MAXPOOLS, KMEM_LIVE_MAXARENAS));
}

static struct kmem_vmem_stats *
live_arenas(struct kmem_live_slot *s)
{
	return (struct kmem_vmem_stats *)(void *)(kmem_live_pools(s) +
	    KMEM_LIVE_MAXPOOLS);
}

static uint32_t
live_min(uint32_t n, uint32_t max)
{
	return n < max ? n : max;
}

struct live_fill {
	struct kmem_live_hdr *h;
	struct kmem_live_slot *s;
	struct kmem_live_slot *base; /* NULL: none */
	uint32_t hint;		     /* baseline rows are in the same order */
};

/* Subtract the baseline's counters (found by name) from row. */
static void
live_sub(void *row, const void *base, const size_t *offs, size_t n, bool ul)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (ul) {
			unsigned long *a =
			    (unsigned long *)(void *)((char *)row + offs[i]);
			const unsigned long *b =
			    (const unsigned long *)(const void *)((const char *)
								      base +
				offs[i]);

			*a = *a >= *b ? *a - *b : 0;
		} else {
			uint64_t *a =
			    (uint64_t *)(void *)((char *)row + offs[i]);
			const uint64_t *b =
			    (const uint64_t *)(const void *)((const char *)
								 base +
				offs[i]);

			*a = *a >= *b ? *a - *b : 0;
		}
	}
}

static const struct kmem_pool_stats *
live_base_pool(struct live_fill *f, const char *name)
{
	struct kmem_pool_stats *b = kmem_live_pools(f->base);
	uint32_t n = live_min(f->base->ls_npools, KMEM_LIVE_MAXPOOLS), i, k;

	for (k = 0; k < n; k++) {
		i = (f->hint + k) % n;
		if (strcmp(b[i].ps_name, name) == 0) {
			f->hint = i + 1;
			return &b[i];
		}
	}
	return NULL;
}

static int
live_pool_fn(struct pool *pp, void *arg)
{
	struct live_fill *f = arg;
	struct kmem_pool_stats st;
	pool_cache_t pc = __atomic_load_n(&pp->pr_cache, __ATOMIC_ACQUIRE);
	const struct kmem_pool_stats *b;

	if (pc != NULL) /* valid while we read it: pool_walk_fn */
		kmem_pool_cache_stats(pc, &st);
	else
		kmem_pool_stats(pp, &st);
	st.ps_name[sizeof st.ps_name - 1] = '\0';
	stats_dom_name(pp->pr_dom, st.ps_name, sizeof st.ps_name);
	if (f->base != NULL && (b = live_base_pool(f, st.ps_name)) != NULL)
		live_sub(&st, b, live_pool_sums,
		    sizeof live_pool_sums / sizeof live_pool_sums[0], true);
	if (f->s->ls_npools < KMEM_LIVE_MAXPOOLS)
		kmem_live_pools(f->s)[f->s->ls_npools++] = st;
	else
		f->s->ls_dropped++;
	return 0;
}

static int
live_vmem_fn(vmem_t *vm, void *arg)
{
	struct live_fill *f = arg;
	struct kmem_vmem_stats st;
	struct kmem_vmem_stats *b;
	uint32_t i;

	kmem_vmem_stats(vm, &st);
	st.vs_name[sizeof st.vs_name - 1] = '\0';
	stats_dom_name(kmemi_vmem_domain(vm), st.vs_name, sizeof st.vs_name);
	if (f->base != NULL) {
		b = live_arenas(f->base);
		for (i = 0;
		     i < live_min(f->base->ls_narenas, KMEM_LIVE_MAXARENAS);
		     i++)
			if (strcmp(b[i].vs_name, st.vs_name) == 0) {
				live_sub(&st, &b[i], live_vmem_sums,
				    sizeof live_vmem_sums /
					sizeof live_vmem_sums[0],
				    false);
				break;
			}
	}
	if (f->s->ls_narenas < KMEM_LIVE_MAXARENAS)
		live_arenas(f->s)[f->s->ls_narenas++] = st;
	else
		f->s->ls_dropped++;
	return 0;
}

/* Fill region r of h with every pool and arena (less base, if any). */
static void
live_fill_region(
    struct kmem_live_hdr *h, unsigned int r, struct kmem_live_slot *base)
{
	struct live_fill f = {h, live_region(h, r), base, 0};

	f.s->ls_npools = 0;
	f.s->ls_narenas = 0;
	f.s->ls_dropped = 0;
	(void)kmemi_pool_foreach(live_pool_fn, &f);
	(void)kmemi_vmem_foreach(live_vmem_fn, &f);
	f.s->ls_time_ns = kmem_prim_clock_ns();
}

/*
 * One snapshot into the slot after the newest (seqlock: odd while
 * written), then lh_gen moves to it.  The caller holds stats_exit.live.busy.
 */
static void
live_publish(void)
{
	struct kmem_live_hdr *h = stats_exit.live.hdr;
	uint64_t gen = atomic_load_explicit(&h->lh_gen, memory_order_relaxed);
	struct kmem_live_slot *s = live_region(h, (unsigned int)(gen & 1));
	uint64_t seq = atomic_load_explicit(&s->ls_seq, memory_order_relaxed);
	struct kmem_live_slot *base =
	    stats_exit.live.forked ? live_region(h, 2) : NULL;

	atomic_store_explicit(&s->ls_seq, seq | 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	live_fill_region(h, (unsigned int)(gen & 1), base);
	atomic_store_explicit(&s->ls_seq, (seq | 1) + 1, memory_order_release);
	atomic_store_explicit(&h->lh_gen, gen + 1, memory_order_release);
}

/*
 * A slow path's hook (kmemi_live_tick): a snapshot if the interval has
 * passed since the last one, by the one thread that takes stats_exit.live.busy.
 * Its callers hold no lock of the library; not in the set-up, nor in
 * the fork window (the forking thread holds every lock).
 */
void
kmemi_stats_live_tick(void)
{
	uint64_t now, last;

	if (kmem_likely(!atomic_load_explicit(
		&stats_exit.live.on, memory_order_acquire)))
		return;
	now = kmem_prim_clock_coarse_ns();
	last =
	    atomic_load_explicit(&stats_exit.live.last, memory_order_relaxed);
	if (last != 0 && now - last < stats_exit.live.interval_ns)
		return;
	if (kmemi_setup_by_self() || kmemi_fork_by_self())
		return;
	if (atomic_exchange_explicit(
		&stats_exit.live.busy, true, memory_order_acquire)) {
		atomic_fetch_add_explicit(
		    &stats_exit.live.hdr->lh_attempts, 1, memory_order_relaxed);
		return;
	}
	if (atomic_load_explicit(&stats_exit.live.on, memory_order_relaxed)) {
		atomic_store_explicit(
		    &stats_exit.live.last, now, memory_order_relaxed);
		live_publish();
	}
	atomic_store_explicit(
	    &stats_exit.live.busy, false, memory_order_release);
}

/* Tests and exit: a snapshot now, waiting for one in progress. */
bool
kmemi_stats_live_publish(void)
{
	int i;

	if (!atomic_load_explicit(&stats_exit.live.on, memory_order_acquire))
		return false;
	for (i = 0; atomic_exchange_explicit(
		 &stats_exit.live.busy, true, memory_order_acquire);
	     i++) {
		if (i == 1000)
			return false; /* a snapshot stuck for a second */
		kmem_prim_sleep_ns(1000000);
	}
	live_publish();
	atomic_store_explicit(&stats_exit.live.last,
	    kmem_prim_clock_coarse_ns(), memory_order_relaxed);
	atomic_store_explicit(
	    &stats_exit.live.busy, false, memory_order_release);
	return true;
}

/* This process's page: stats_exit.live.path made, its header written.  0 or
 * errno. */
static int
live_make(long pid, long ppid, uint32_t flags)
{
	size_t hdr = LIVE_HDR;
	uint64_t reg =
	    kmem_live_region_size(KMEM_LIVE_MAXPOOLS, KMEM_LIVE_MAXARENAS);
	size_t ps = kmem_prim_page_size();
	size_t size = (hdr + 3 * (size_t)reg + ps - 1) & ~(ps - 1);
	struct kmem_live_hdr *h;
	void *p;
	int err;

	if (kmem_snprintf(stats_exit.live.path, sizeof stats_exit.live.path,
		"%s/" KMEM_LIVE_PREFIX "%ld", stats_exit.live.dir,
		pid) >= (int)sizeof stats_exit.live.path)
		return EINVAL; /* the directory is too long */
	if ((err = kmem_prim_stats_map(stats_exit.live.path, size, &p)) != 0)
		return err;
	h = p;
	memcpy(h->lh_magic, KMEM_LIVE_MAGIC, sizeof h->lh_magic);
	h->lh_version = KMEM_LIVE_VERSION;
	h->lh_hdrsize = sizeof *h;
	h->lh_poolsize = sizeof(struct kmem_pool_stats);
	h->lh_vmemsize = sizeof(struct kmem_vmem_stats);
	h->lh_maxpools = KMEM_LIVE_MAXPOOLS;
	h->lh_maxarenas = KMEM_LIVE_MAXARENAS;
	h->lh_size = size;
	h->lh_regoff[0] = hdr;
	h->lh_regoff[1] = hdr + reg;
	h->lh_regoff[2] = hdr + 2 * reg;
	h->lh_pid = pid;
	h->lh_ppid = ppid;
	if (kmem_prim_starttime(&h->lh_starttime) != 0)
		h->lh_starttime = 0; /* kmemstat then checks the pid alone */
	h->lh_interval_ns = stats_exit.live.interval_ns;
	kmem_snprintf(
	    h->lh_command, sizeof h->lh_command, "%s", kmem_prim_progname());
	h->lh_flags = flags | (stats_exit.live.keep ? KMEM_LIVE_KEEP : 0);
	atomic_store_explicit(
	    &h->lh_state, KMEM_LIVE_RUNNING, memory_order_relaxed);
	stats_exit.live.hdr = h;
	stats_exit.live.size = size;
	stats_exit.live.pid = pid;
	stats_exit.live.forked = (flags & KMEM_LIVE_FORKED) != 0;
	return 0;
}

/*
 * At exit(): the last snapshot, the page marked exited, and the file
 * removed unless kmemstat collects it (KMEM_LIVE_KEEP).  Only the page's
 * process: a forked child that failed to make its own has none.
 */
static void
live_at_exit(void)
{
	if (!atomic_load_explicit(&stats_exit.live.on, memory_order_acquire) ||
	    kmem_prim_getpid() != stats_exit.live.pid)
		return;
	(void)kmemi_stats_live_publish();
	atomic_store_explicit(&stats_exit.live.on, false, memory_order_relaxed);
	atomic_store_explicit(&stats_exit.live.hdr->lh_state, KMEM_LIVE_EXITED,
	    memory_order_release);
	if (!stats_exit.live.keep)
		(void)kmem_prim_unlink(stats_exit.live.path);
}

/* KMEM_STATS_LIVE=v: false (with a warning) if not understood. */
static bool
live_parse(const char *v)
{
	const char *p = v, *e;
	bool on = false;

	stats_exit.live.keep = false;
	stats_exit.live.interval_ns = (uint64_t)LIVE_MS_DEFAULT * 1000000u;
	stats_exit.live.dir[0] = '\0';
	while (*p != '\0') {
		size_t n;

		for (e = p; *e != '\0' && *e != ','; e++)
			;
		n = (size_t)(e - p);
		if ((n == 1 && p[0] == '1') ||
		    (n == 2 && !strncmp(p, "on", 2))) {
			on = true;
		} else if (n == 4 && strncmp(p, "keep", 4) == 0) {
			on = stats_exit.live.keep = true;
		} else if (n > 3 && strncmp(p, "ms=", 3) == 0) {
			uint64_t ms = 0;
			size_t i;

			for (i = 3; i < n && p[i] >= '0' && p[i] <= '9' &&
			     ms < 1000000;
			     i++)
				ms = ms * 10 + (uint64_t)(p[i] - '0');
			if (i != n)
				goto bad;
			stats_exit.live.interval_ns = ms * 1000000u;
			on = true;
		} else if (n > 5 && strncmp(p, "dir=", 4) == 0 && p[4] == '/' &&
		    n - 4 < sizeof stats_exit.live.dir) {
			memcpy(stats_exit.live.dir, p + 4, n - 4);
			stats_exit.live.dir[n - 4] = '\0';
			on = true;
		} else {
			goto bad;
		}
		p = *e == ',' ? e + 1 : e;
	}
	return on;
bad:
	kmem_warn("KMEM_STATS_LIVE=%s: not understood (want 1, keep, ms=N or "
		  "dir=/path, comma-separated); no statistics page",
	    v);
	return false;
}

/*
 * Read KMEM_STATS_LIVE and make the page: once, from the options' set-up
 * (kmem_options_init, which every layer runs before its first lock, under
 * the options lock; nothing here takes a lock of the library).
 */
void
kmemi_stats_live_init(void)
{
	const char *v = kmem_prim_getenv("KMEM_STATS_LIVE"), *x;
	int err;

	if (atomic_load_explicit(&stats_exit.live.on, memory_order_relaxed) ||
	    v == NULL || v[0] == '\0' || strcmp(v, "0") == 0 || !live_parse(v))
		return;
	if (stats_exit.live.dir[0] == '\0') {
		x = kmem_prim_getenv("XDG_RUNTIME_DIR");
		kmem_snprintf(stats_exit.live.dir, sizeof stats_exit.live.dir,
		    "%s",
		    x != NULL && x[0] == '/' &&
			    strlen(x) < sizeof stats_exit.live.dir
			? x
			: "/dev/shm");
	}
	if ((err = live_make(kmem_prim_getpid(), 0, 0)) != 0) {
		kmem_warn("KMEM_STATS_LIVE: cannot make %s (errno %d); no "
			  "statistics page",
		    stats_exit.live.path, err);
		return;
	}
	if (!atomic_exchange_explicit(
		&stats_exit.live.registered, true, memory_order_acq_rel) &&
	    kmem_prim_atexit(live_at_exit) != 0)
		kmem_warn("KMEM_STATS_LIVE: no room for the exit function: "
			  "the page stays after exit");
	atomic_store_explicit(&stats_exit.live.on, true, memory_order_release);
}

/*
 * fork(2) (fork.c): prepare waits for a snapshot in progress and holds
 * stats_exit.live.busy through the fork (its walk takes the locks prepare is
 * about to take: busy comes first in the lock order), so the child's copy of
 * the parent's page is never half written by a thread it does not have.
 * The child makes its own page, for its own pid, with the parent's
 * counters at the fork as its baseline (region 2), and lets go of the
 * parent's mapping: a forked child publishes its own work only.
 * Prepare and parent run only when fork.c takes the locks (a process
 * with threads); the child's part always.
 */
void
kmemi_stats_live_fork(int phase)
{
	struct kmem_live_hdr *old;
	size_t oldsize;
	long ppid;

	if (phase == KMEMI_FORK_PREPARE) {
		if (!atomic_load_explicit(
			&stats_exit.live.on, memory_order_acquire))
			return;
		while (atomic_exchange_explicit(
		    &stats_exit.live.busy, true, memory_order_acquire))
			kmem_prim_sleep_ns(100000);
		stats_exit.live.fork_took = true;
		return;
	}
	if (stats_exit.live.fork_took || phase == KMEMI_FORK_CHILD) {
		stats_exit.live.fork_took = false;
		atomic_store_explicit(
		    &stats_exit.live.busy, false, memory_order_release);
	}
	if (phase != KMEMI_FORK_CHILD ||
	    !atomic_load_explicit(&stats_exit.live.on, memory_order_acquire))
		return;
	old = stats_exit.live.hdr;
	oldsize = stats_exit.live.size;
	ppid = stats_exit.live.pid;
	atomic_store_explicit(&stats_exit.live.on, false, memory_order_relaxed);
	if (live_make(kmem_prim_getpid(), ppid, KMEM_LIVE_FORKED) != 0) {
		/* The exit function then finds no page of its pid. */
		stats_exit.live.pid = 0;
		kmem_prim_stats_unmap(old, oldsize);
		return;
	}
	kmem_prim_stats_unmap(old, oldsize);
	live_fill_region(stats_exit.live.hdr, 2, NULL);
	atomic_store_explicit(&stats_exit.live.on, true, memory_order_release);
	(void)kmemi_stats_live_publish();
}
