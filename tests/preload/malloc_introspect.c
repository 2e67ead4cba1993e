/*
 * malloc_introspect.c -- glibc's introspection calls (<malloc.h>):
 * mallinfo2, mallinfo, malloc_stats, malloc_info.  Written against the
 * C library's API only, so the same binary is the oracle under glibc and
 * the subject under LD_PRELOAD=libkmem-malloc.so (KMEM_TEST_PRELOAD=1;
 * malloc_info.c says what kmem reports).
 *
 *  - mallinfo2's uordblks grows by what was allocated and drops back
 *    after the frees: 2048 blocks of 1024 bytes (glibc's chunks are 1040
 *    bytes, kmem's class is 1024), 32 of 40000 (glibc's heap, kmem's
 *    quantum caches: 40960), and, counted as uordblks + hblkhd (glibc
 *    maps them apart, kmem counts them in use), 8 of 1 MiB.  Tolerance:
 *    the growth is at least the bytes asked and at most 1/16 more plus
 *    64 KiB (headers, class and page rounding, stdio); after the frees
 *    uordblks is within 64 KiB of where it started.  Under kmem
 *    uordblks alone also grows by the 1 MiB blocks.  Always, on both:
 *    arena == uordblks + fordblks and uordblks <= arena.
 *  - mallinfo gives mallinfo2's figures as int; under kmem, with a 3 GiB
 *    block live (skipped if it cannot be had), uordblks and arena are
 *    INT_MAX: saturated, not wrapped (glibc's wrap, so not asked of it).
 *  - malloc_stats writes to standard error (a child's, captured): under
 *    kmem the three tables of kmemstat (pool, pool cache, vmem arena)
 *    with a size class's row; under glibc its "Arena 0:" report.
 *  - malloc_info(0, fp) writes one well-formed XML document (checked by
 *    the small parser below: nesting, quoted attributes, entities, one
 *    root) whose root is <malloc version="1"> with a <heap nr="0">;
 *    under kmem a heap named "kva", a kmem-NNNNN <cache> with the 256
 *    blocks in use, <size> elements with from <= to and total = count x
 *    to, and a top-level <total type="inuse"> within 64 KiB of
 *    mallinfo2's uordblks.  malloc_info(1, fp) writes nothing and
 *    fails: under kmem -1 with errno EINVAL (the man page's contract);
 *    glibc 2.36 returns EINVAL itself, which is accepted from it.
 *  - Two threads allocate and free random sizes while the main thread
 *    calls mallinfo2 and malloc_info (to /dev/null) in a loop: no
 *    deadlock, arena == uordblks + fordblks in every answer.
 *
 * Pass: every assertion holds; exit 0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "t.h"

static void *(*volatile f_malloc)(size_t) = malloc;
static void (*volatile f_free)(void *) = free;

static bool on_kmem;

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)

/* ---- mallinfo2 ---- */

static void
check_sums(const struct mallinfo2 *m)
{
	T_EQ(m->arena, m->uordblks + m->fordblks);
	T_LE(m->uordblks, m->arena);
}

/* a grew from b by about want bytes (the tolerance of the header). */
static void
check_growth(size_t before, size_t after, size_t want)
{
	T_GE(after, before + want);
	T_LE(after, before + want + want / 16 + 64 * KIB);
}

static void
alloc_free(size_t n, size_t size, bool with_hblkhd)
{
	struct mallinfo2 m0, m1, m2;
	void **v = f_malloc(n * sizeof *v);
	size_t i;

	T_ASSERT(v != NULL);
	m0 = mallinfo2();
	for (i = 0; i < n; i++) {
		v[i] = f_malloc(size);
		T_ASSERT(v[i] != NULL);
		memset(v[i], (int)i, 64);
	}
	m1 = mallinfo2();
	check_sums(&m0);
	check_sums(&m1);
	if (with_hblkhd)
		check_growth(
		    m0.uordblks + m0.hblkhd, m1.uordblks + m1.hblkhd, n * size);
	else
		check_growth(m0.uordblks, m1.uordblks, n * size);
	if (on_kmem)
		check_growth(m0.uordblks, m1.uordblks, n * size);
	for (i = 0; i < n; i++)
		f_free(v[i]);
	m2 = mallinfo2();
	check_sums(&m2);
	T_LE(m2.uordblks, m0.uordblks + 64 * KIB);
	if (with_hblkhd)
		T_LE(m2.uordblks + m2.hblkhd,
		    m0.uordblks + m0.hblkhd + 64 * KIB);
	printf("   %zu x %zu: uordblks %zu -> %zu -> %zu, hblkhd %zu -> %zu, "
	       "arena %zu\n",
	    n, size, m0.uordblks, m1.uordblks, m2.uordblks, m0.hblkhd,
	    m1.hblkhd, m1.arena);
	f_free(v);
}

static void
test_mallinfo2_small(void)
{
	alloc_free(2048, 1024, false);
}

static void
test_mallinfo2_mid(void)
{
	alloc_free(32, 40000, false);
}

static void
test_mallinfo2_large(void)
{
	alloc_free(8, MIB, true);
}

/* ---- mallinfo ---- */

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static struct mallinfo
call_mallinfo(void)
{
	return mallinfo();
}
#pragma GCC diagnostic pop

static int
sat(size_t v)
{
	return v > (size_t)INT_MAX ? INT_MAX : (int)v;
}

static bool
same2(const struct mallinfo2 *a, const struct mallinfo2 *b)
{
	return memcmp(a, b, sizeof *a) == 0;
}

/* mallinfo between two equal mallinfo2 answers: their saturated copy. */
static void
check_mallinfo(void)
{
	struct mallinfo2 a, b;
	struct mallinfo m;
	int tries;

	for (tries = 0; tries < 10; tries++) {
		a = mallinfo2();
		m = call_mallinfo();
		b = mallinfo2();
		if (same2(&a, &b))
			break;
	}
	T_ASSERT(same2(&a, &b));
	T_EQ(m.arena, sat(a.arena));
	T_EQ(m.ordblks, sat(a.ordblks));
	T_EQ(m.smblks, sat(a.smblks));
	T_EQ(m.hblks, sat(a.hblks));
	T_EQ(m.hblkhd, sat(a.hblkhd));
	T_EQ(m.usmblks, sat(a.usmblks));
	T_EQ(m.fsmblks, sat(a.fsmblks));
	T_EQ(m.uordblks, sat(a.uordblks));
	T_EQ(m.fordblks, sat(a.fordblks));
	T_EQ(m.keepcost, sat(a.keepcost));
}

static void
test_mallinfo(void)
{
	size_t big = 3 * 1024 * MIB;
	struct mallinfo2 m2;
	struct mallinfo m;
	void *p;

	check_mallinfo();
	if (!on_kmem) {
		printf("   glibc: mallinfo wraps past INT_MAX; not checked\n");
		return;
	}
	/* Address space only: the block is never touched. */
	if ((p = f_malloc(big)) == NULL) {
		printf("   no 3 GiB block (errno %d): saturation not checked\n",
		    errno);
		return;
	}
	m2 = mallinfo2();
	m = call_mallinfo();
	T_GE(m2.uordblks, big);
	T_GE(m2.arena, big);
	T_EQ(m.uordblks, INT_MAX);
	T_EQ(m.arena, INT_MAX);
	check_mallinfo();
	f_free(p);
	m2 = mallinfo2();
	T_LT(m2.uordblks, big);
}

/* ---- malloc_stats ---- */

static char outbuf[1 << 20];

static void
stats_child(void *arg)
{
	void *v[64];
	int i;

	(void)arg;
	for (i = 0; i < 64; i++)
		v[i] = f_malloc(1024);
	malloc_stats();
	for (i = 0; i < 64; i++)
		f_free(v[i]);
}

static void
test_malloc_stats(void)
{
	t_child_ok(stats_child, NULL, outbuf, sizeof outbuf);
	T_GT(strlen(outbuf), 0);
	T_ASSERT(outbuf[strlen(outbuf) - 1] == '\n');
	if (on_kmem) {
		T_ASSERT(strstr(outbuf, "Memory resource pool statistics\n"));
		T_ASSERT(strstr(outbuf, "Pool cache statistics.\n"));
		T_ASSERT(strstr(outbuf, "Vmem arena statistics\n"));
		T_ASSERT(strstr(outbuf, "\nkmem-0"));
		T_ASSERT(strstr(outbuf, "\nkva "));
	} else {
		T_ASSERT(strstr(outbuf, "Arena 0:\n"));
	}
	printf("   %zu bytes on stderr\n", strlen(outbuf));
}

/* ---- malloc_info: a small XML checker ---- */

#define XML_MAXTAGS 1024

/* The start tags seen: where each starts (after '<') and its depth. */
struct xml_doc {
	const char *tag[XML_MAXTAGS];
	int depth[XML_MAXTAGS];
	int ntags;
	const char *err; /* NULL: well-formed */
	const char *at;
};

static bool
xml_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.' ||
	    c == ':';
}

static const char *
xml_fail(struct xml_doc *d, const char *p, const char *why)
{
	if (d->err == NULL) {
		d->err = why;
		d->at = p;
	}
	return NULL;
}

static const char *
xml_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

/* An entity after '&': one of XML's five, or a character reference. */
static const char *
xml_entity(struct xml_doc *d, const char *p)
{
	static const char *const ents[] = {
	    "amp;", "lt;", "gt;", "quot;", "apos;"};
	size_t i;

	for (i = 0; i < sizeof ents / sizeof ents[0]; i++)
		if (strncmp(p, ents[i], strlen(ents[i])) == 0)
			return p + strlen(ents[i]);
	if (*p == '#') {
		p++;
		if (*p == 'x')
			p++;
		if (*p == ';')
			return xml_fail(d, p, "empty character reference");
		while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
		    (*p >= 'A' && *p <= 'F'))
			p++;
		if (*p == ';')
			return p + 1;
	}
	return xml_fail(d, p, "bad entity");
}

static const char *
xml_element(struct xml_doc *d, const char *p, int depth)
{
	const char *name;
	size_t nlen;

	if (*p != '<' || !xml_name_char(p[1]) || p[1] == '-' || p[1] == '.')
		return xml_fail(d, p, "expected a start tag");
	name = ++p;
	while (xml_name_char(*p))
		p++;
	nlen = (size_t)(p - name);
	if (d->ntags == XML_MAXTAGS)
		return xml_fail(d, p, "too many elements for the checker");
	d->tag[d->ntags] = name;
	d->depth[d->ntags++] = depth;
	/* Attributes: at least one space before each. */
	for (;;) {
		const char *q = xml_ws(p);

		if (*q == '/' || *q == '>') {
			p = q;
			break;
		}
		if (q == p || !xml_name_char(*q))
			return xml_fail(d, q, "bad attribute");
		while (xml_name_char(*q))
			q++;
		q = xml_ws(q);
		if (*q++ != '=')
			return xml_fail(d, q, "attribute without '='");
		q = xml_ws(q);
		if (*q != '"' && *q != '\'')
			return xml_fail(d, q, "unquoted attribute value");
		{
			char quote = *q++;

			while (*q != quote) {
				if (*q == '\0' || *q == '<')
					return xml_fail(
					    d, q, "bad attribute value");
				if (*q == '&') {
					if ((q = xml_entity(d, q + 1)) == NULL)
						return NULL;
				} else {
					q++;
				}
			}
			p = q + 1;
		}
	}
	if (p[0] == '/' && p[1] == '>')
		return p + 2;
	if (*p != '>')
		return xml_fail(d, p, "bad start tag end");
	p++;
	/* Content: text, entities, child elements; then the end tag. */
	for (;;) {
		if (*p == '\0')
			return xml_fail(d, p, "unclosed element");
		if (*p == '&') {
			if ((p = xml_entity(d, p + 1)) == NULL)
				return NULL;
		} else if (p[0] == '<' && p[1] == '/') {
			p += 2;
			if (strncmp(p, name, nlen) != 0 ||
			    xml_name_char(p[nlen]))
				return xml_fail(d, p, "mismatched end tag");
			p = xml_ws(p + nlen);
			if (*p != '>')
				return xml_fail(d, p, "bad end tag");
			return p + 1;
		} else if (*p == '<') {
			if ((p = xml_element(d, p, depth + 1)) == NULL)
				return NULL;
		} else {
			p++;
		}
	}
}

/* Well-formed: one root element, whitespace around it, nothing else. */
static bool
xml_parse(struct xml_doc *d, const char *text)
{
	const char *p = xml_ws(text);

	memset(d, 0, sizeof *d);
	if (strncmp(p, "<?xml", 5) == 0) {
		const char *e = strstr(p, "?>");

		if (e == NULL)
			return xml_fail(d, p, "unclosed declaration"), false;
		p = xml_ws(e + 2);
	}
	if ((p = xml_element(d, p, 0)) == NULL)
		return false;
	p = xml_ws(p);
	if (*p != '\0')
		return xml_fail(d, p, "text after the root element"), false;
	return true;
}

/* Tag i's name is "name". */
static bool
xml_is(const struct xml_doc *d, int i, const char *name)
{
	size_t n = strlen(name);

	return strncmp(d->tag[i], name, n) == 0 && !xml_name_char(d->tag[i][n]);
}

/* The value of attribute "attr" of tag i into buf; false if absent. */
static bool
xml_attr(const struct xml_doc *d, int i, const char *attr, char *buf, size_t n)
{
	const char *p = d->tag[i], *end = strchr(p, '>');
	size_t alen = strlen(attr), k = 0;

	while ((p = strstr(p, attr)) != NULL && p < end) {
		if (p[-1] == ' ' && p[alen] == '=' && p[alen + 1] == '"') {
			p += alen + 2;
			while (*p != '"' && k + 1 < n)
				buf[k++] = *p++;
			buf[k] = '\0';
			return true;
		}
		p += alen;
	}
	return false;
}

static bool
xml_attr_is(const struct xml_doc *d, int i, const char *attr, const char *v)
{
	char buf[64];

	return xml_attr(d, i, attr, buf, sizeof buf) && strcmp(buf, v) == 0;
}

/* The checker itself, on documents it must take and refuse. */
static void
test_xml_checker(void)
{
	static const char *const good[] = {
	    "<a/>",
	    " <a x=\"1\" y='2'>\n<b/><c>t&amp;&#60;</c></a>\n",
	    "<?xml version=\"1.0\"?><a></a>",
	};
	static const char *const bad[] = {"", "<a>", "<a></b>", "<a x=1/>",
	    "<a x=\"<\"/>", "<a/><b/>", "<a>&bogus;</a>", "<a/>text",
	    "<a x=\"1\"y=\"2\"/>", "<a><b></a></b>"};
	struct xml_doc d;
	size_t i;

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		if (!xml_parse(&d, good[i]))
			T_FAIL("checker refused %s: %s", good[i], d.err);
	}
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (xml_parse(&d, bad[i]))
			T_FAIL("checker took %s", bad[i]);
	}
}

/* ---- malloc_info ---- */

static char xmlbuf[1 << 20];

/* malloc_info(options, f) from a fresh tmpfile, its text into xmlbuf. */
static int
info_to_buf(int options, int *errp, size_t *lenp)
{
	FILE *f = tmpfile();
	size_t len;
	int r;

	T_ASSERT(f != NULL);
	errno = 0;
	r = malloc_info(options, f);
	*errp = errno;
	T_EQ(fflush(f), 0);
	rewind(f);
	len = fread(xmlbuf, 1, sizeof xmlbuf - 1, f);
	T_LT(len, sizeof xmlbuf - 1);
	xmlbuf[len] = '\0';
	fclose(f);
	*lenp = len;
	return r;
}

static struct xml_doc doc;

static unsigned long long
attr_num(int i, const char *attr)
{
	char buf[64];

	if (!xml_attr(&doc, i, attr, buf, sizeof buf))
		T_FAIL("<%.20s has no %s", doc.tag[i], attr);
	return strtoull(buf, NULL, 10);
}

/* kmem's <size from= to= total= count=>: one class's free objects. */
static void
check_size(int i)
{
	unsigned long long from = attr_num(i, "from"), to = attr_num(i, "to");

	T_LE(1, from);
	T_LE(from, to);
	T_GT(attr_num(i, "count"), 0);
	T_EQ(attr_num(i, "total"), attr_num(i, "count") * to);
}

static void
test_malloc_info(void)
{
	struct mallinfo2 m;
	void *v[256];
	size_t len, inuse = 0;
	int err, r, i, heaps = 0, kva = -1, cache = -1, top = -1;
	unsigned long most = 0;
	char buf[64];

	for (i = 0; i < 256; i++)
		T_ASSERT((v[i] = f_malloc(1024)) != NULL);
	r = info_to_buf(0, &err, &len);
	m = mallinfo2();
	T_EQ(r, 0);
	if (!xml_parse(&doc, xmlbuf))
		T_FAIL("malloc_info's XML is not well-formed: %s at offset "
		       "%td:\n%s",
		    doc.err, doc.at - xmlbuf, xmlbuf);
	T_ASSERT(xml_is(&doc, 0, "malloc"));
	T_ASSERT(xml_attr_is(&doc, 0, "version", "1"));
	for (i = 0; i < doc.ntags; i++) {
		if (doc.depth[i] == 1 && xml_is(&doc, i, "heap")) {
			if (heaps++ == 0)
				T_ASSERT(xml_attr_is(&doc, i, "nr", "0"));
			if (xml_attr_is(&doc, i, "name", "kva"))
				kva = i;
		}
		/* The busiest size class (1024, or larger with a redzone). */
		if (doc.depth[i] == 2 && xml_is(&doc, i, "cache") &&
		    xml_attr(&doc, i, "name", buf, sizeof buf) &&
		    strncmp(buf, "kmem-", 5) == 0) {
			T_ASSERT(xml_attr(&doc, i, "inuse", buf, sizeof buf));
			if (strtoul(buf, NULL, 10) > most) {
				most = strtoul(buf, NULL, 10);
				cache = i;
			}
		}
		/* glibc's <size>: free chunks; kmem's: a class's free. */
		if (on_kmem && xml_is(&doc, i, "size"))
			check_size(i);
		if (doc.depth[i] == 1 && xml_is(&doc, i, "total") &&
		    xml_attr_is(&doc, i, "type", "inuse"))
			top = i;
	}
	T_GE(heaps, 1);
	if (on_kmem) {
		T_ASSERT(kva >= 0);
		T_ASSERT(cache > kva);
		T_ASSERT(top >= 0);
		T_GE(most, 256);
		T_ASSERT(xml_attr(&doc, top, "size", buf, sizeof buf));
		inuse = strtoull(buf, NULL, 10);
		T_LE(inuse, m.uordblks + 64 * KIB);
		T_LE(m.uordblks, inuse + 64 * KIB);
	}
	printf("   %zu bytes, %d elements, %d heaps; in use %zu, mallinfo2 "
	       "%zu\n",
	    len, doc.ntags, heaps, inuse, m.uordblks);
	for (i = 0; i < 256; i++)
		f_free(v[i]);
}

static void
test_malloc_info_einval(void)
{
	size_t len;
	int err, r;

	r = info_to_buf(1, &err, &len);
	T_EQ(len, 0);
	if (on_kmem) {
		T_EQ(r, -1);
		T_EQ(err, EINVAL);
	} else {
		/* glibc 2.36 returns the error number, errno untouched. */
		T_ASSERT((r == -1 && err == EINVAL) || r == EINVAL);
	}
	r = info_to_buf(-1, &err, &len);
	T_EQ(len, 0);
	T_NE(r, 0);
}

/* ---- while other threads allocate ---- */

static atomic_bool stop;
static uint64_t churn_seed;

static void *
churn(void *arg)
{
	struct t_rng r;
	void *v[512] = {0};
	unsigned long n = 0;

	t_rng_init(&r, churn_seed, (unsigned)(uintptr_t)arg);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		unsigned i = (unsigned)t_rng_below(&r, 512);
		size_t size = t_rng_below(&r, 8) == 0
		    ? 16 * KIB + t_rng_below(&r, 512 * KIB)
		    : 1 + t_rng_below(&r, 4096);

		f_free(v[i]);
		v[i] = f_malloc(size);
		T_ASSERT(v[i] != NULL);
		n++;
	}
	for (unsigned i = 0; i < 512; i++)
		f_free(v[i]);
	return (void *)n;
}

static void
test_concurrent(void)
{
	pthread_t t[2];
	FILE *devnull = fopen("/dev/null", "w");
	double end = t_now_s() + 0.5;
	unsigned long calls = 0, ops = 0;
	void *n;
	int i;

	T_ASSERT(devnull != NULL);
	churn_seed = t_seed();
	atomic_store(&stop, false);
	for (i = 0; i < 2; i++)
		T_EQ(pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)i),
		    0);
	while (t_now_s() < end) {
		struct mallinfo2 m = mallinfo2();

		check_sums(&m);
		T_EQ(malloc_info(0, devnull), 0);
		calls++;
	}
	atomic_store(&stop, true);
	for (i = 0; i < 2; i++) {
		T_EQ(pthread_join(t[i], &n), 0);
		ops += (unsigned long)n;
	}
	fclose(devnull);
	printf("   %lu mallinfo2 + malloc_info calls beside %lu mallocs\n",
	    calls, ops);
}

int
main(int argc, char **argv)
{
	t_args(argc, argv);
	on_kmem = getenv("KMEM_TEST_PRELOAD") != NULL;
	printf("malloc_introspect on %s\n",
	    on_kmem ? "kmem (KMEM_TEST_PRELOAD)" : "the C library's malloc");
	T_RUN_IF(test_mallinfo2_small);
	T_RUN_IF(test_mallinfo2_mid);
	T_RUN_IF(test_mallinfo2_large);
	T_RUN_IF(test_mallinfo);
	T_RUN_IF(test_malloc_stats);
	T_RUN_IF(test_xml_checker);
	T_RUN_IF(test_malloc_info);
	T_RUN_IF(test_malloc_info_einval);
	T_RUN_IF(test_concurrent);
	return t_done();
}
