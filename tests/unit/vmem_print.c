/*
 * vmem_print.c -- the shape of vmem_dump, vmem_print, vmem_printall and
 * vmem_whatis output, which follows NetBSD's ddb (subr_vmem.c):
 *
 *     vmem 0xARENA 'name'
 *     \t0xTAG: START, SIZE, TYPE(type name)        every tag, in order
 *     freelist[N]                                 each non-empty list
 *     \t0xTAG: START, SIZE, 3(free)                its segments
 *
 * START and SIZE in decimal, TYPE NetBSD's number (1 span, 2 static span,
 * 3 free, 4 busy); and for vmem_whatis one line per arena that holds the
 * address, "0xADDR is 0xSTART+OFF in VMEM 'name' (allocated|free)", OFF
 * in decimal.  Each line is parsed and checked against the layout the
 * test made; the same output reaches standard error when pr is NULL.
 */
#include <stdarg.h>

#include <kmem/vmem.h>

#include "t.h"

static char pbuf[1 << 16];
static size_t plen;

static void pr_buf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
pr_buf(const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(pbuf + plen, sizeof pbuf - plen, fmt, ap);
	va_end(ap);
	T_ASSERT(n >= 0 && (size_t)n < sizeof pbuf - plen);
	plen += (size_t)n;
}

static void
pr_reset(void)
{
	plen = 0;
	pbuf[0] = '\0';
}

struct tagline {
	uintptr_t tag;
	uintmax_t start, size;
	int type;
	char name[16];
};

/* One "\t0xTAG: START, SIZE, TYPE(name)" line at *pp; advances *pp. */
static bool
parse_tag(const char **pp, struct tagline *t)
{
	const char *p = *pp, *nl = strchr(p, '\n');
	int n = 0;

	if (nl == NULL || p[0] != '\t' || p[1] != '0' || p[2] != 'x')
		return false;
	if (sscanf(p, "\t0x%" SCNxPTR ": %ju, %ju, %d(%15[a-z ]%n", &t->tag,
		&t->start, &t->size, &t->type, t->name, &n) != 5 ||
	    n == 0 || p[n] != ')' || p + n + 1 != nl)
		return false;
	*pp = nl + 1;
	return true;
}

static void
expect_tag(const char **pp, uintmax_t start, uintmax_t size, int type,
    const char *name, struct tagline *out)
{
	struct tagline t;
	const char *line = *pp;

	if (!parse_tag(pp, &t))
		T_FAIL(
		    "not a tag line: \"%.*s\"", (int)strcspn(line, "\n"), line);
	if (t.start != start || t.size != size || t.type != type ||
	    strcmp(t.name, name) != 0)
		T_FAIL("tag line \"%.*s\", want %ju, %ju, %d(%s)",
		    (int)strcspn(line, "\n"), line, start, size, type, name);
	T_NE(t.tag, 0);
	if (out != NULL)
		*out = t;
}

static void
expect_line(const char **pp, const char *want)
{
	size_t n = strlen(want);

	if (strncmp(*pp, want, n) != 0)
		T_FAIL("line \"%.*s\", want \"%s\"", (int)strcspn(*pp, "\n"),
		    *pp, want);
	*pp += n;
}

static vmem_t *
mk(const char *name, vmem_addr_t base, vmem_size_t size, vmem_size_t q,
    vmem_import_t *imp, vmem_release_t *rel, vmem_t *src)
{
	vmem_t *vm = vmem_create(
	    name, base, size, q, imp, rel, src, 0, VM_SLEEP, IPL_NONE);

	T_ASSERT(vm != NULL);
	return vm;
}

static vmem_t *g_vm;
static char dump[1 << 16], cbuf[1 << 16];

static void
dump_to_stderr(void *arg)
{
	(void)arg;
	vmem_dump(g_vm, NULL);
	_exit(0);
}

static void
test_dump_shape(void)
{
	vmem_t *vm = mk("shape", 0x1000, 0x1000, 16, NULL, NULL, NULL);
	struct tagline f0, f1, f2, t;
	char head[96];
	const char *p;
	bool seen1 = false, seen2 = false;

	T_EQ(vmem_add(vm, 0x8000, 0x800, VM_SLEEP), 0);
	T_EQ(vmem_xalloc_addr(vm, 0x1100, 0x40, VM_SLEEP), 0);
	pr_reset();
	vmem_dump(vm, pr_buf);
	printf("%s", pbuf);
	p = pbuf;
	snprintf(head, sizeof head, "vmem %p 'shape'\n", (void *)vm);
	expect_line(&p, head);
	/* The segment list: each span marker, then the segments tiling it. */
	expect_tag(&p, 0x1000, 0x1000, 2, "static span", NULL);
	expect_tag(&p, 0x1000, 0x100, 3, "free", &f0);
	expect_tag(&p, 0x1100, 0x40, 4, "busy", NULL);
	expect_tag(&p, 0x1140, 0xec0, 3, "free", &f1);
	expect_tag(&p, 0x8000, 0x800, 2, "static span", NULL);
	expect_tag(&p, 0x8000, 0x800, 3, "free", &f2);
	/* Freelists: 16 quanta on list 4; 236 and 128 on list 7. */
	expect_line(&p, "freelist[4]\n");
	expect_tag(&p, 0x1000, 0x100, 3, "free", &t);
	T_EQ(t.tag, f0.tag); /* the same tag as in the segment list */
	expect_line(&p, "freelist[7]\n");
	for (int i = 0; i < 2; i++) {
		T_ASSERT(parse_tag(&p, &t));
		T_EQ(t.type, 3);
		if (t.start == 0x1140 && t.size == 0xec0 && t.tag == f1.tag)
			seen1 = true;
		if (t.start == 0x8000 && t.size == 0x800 && t.tag == f2.tag)
			seen2 = true;
	}
	T_ASSERT(seen1 && seen2);
	T_EQ(*p, '\0');

	/* vmem_print (the arena's address) prints the same. */
	memcpy(dump, pbuf, plen + 1);
	pr_reset();
	vmem_print((uintptr_t)vm, "", pr_buf);
	T_ASSERT(strcmp(pbuf, dump) == 0);
	/* vmem_printall: the same block among the others'. */
	pr_reset();
	vmem_printall("", pr_buf);
	T_ASSERT(strstr(pbuf, dump) != NULL);
	T_ASSERT(strncmp(pbuf, "vmem 0x", 7) == 0);
	/* pr NULL: the same text on standard error. */
	g_vm = vm;
	t_child_ok(dump_to_stderr, NULL, cbuf, sizeof cbuf);
	T_ASSERT(strcmp(cbuf, dump) == 0);
	/* Not an arena. */
	pr_reset();
	vmem_print(0x1234, "", pr_buf);
	T_ASSERT(strcmp(pbuf, "0x1234 is not a vmem arena\n") == 0);

	vmem_xfree(vm, 0x1100, 0x40);
	vmem_destroy(vm);
}

static void
test_whatis_shape(void)
{
	vmem_t *src = mk("wsrc", 0x100000, 0x10000, 0x1000, NULL, NULL, NULL);
	vmem_t *kid = mk("wkid", 0, 0, 0x1000, vmem_alloc, vmem_free, src);
	vmem_t *ids = mk("wids", 0, 8, 1, NULL, NULL, NULL);
	vmem_addr_t a, id;
	const char *p;

	/* An allocation and the free space of one arena. */
	T_EQ(vmem_xalloc_addr(src, 0x104000, 0x2000, VM_SLEEP), 0);
	pr_reset();
	T_EQ(vmem_whatis(0x104005, pr_buf), 0);
	T_ASSERT(
	    strcmp(pbuf,
		"0x104005 is 0x104000+5 in VMEM 'wsrc' (allocated)\n") == 0);
	pr_reset();
	T_EQ(vmem_whatis(0x10ffff, pr_buf), 0);
	T_ASSERT(
	    strcmp(pbuf,
		"0x10ffff is 0x106000+40959 in VMEM 'wsrc' (free)\n") == 0);
	/* Outside every arena: nothing printed. */
	pr_reset();
	T_EQ(vmem_whatis(0x200000, pr_buf), -1);
	T_EQ(plen, 0);

	/*
	 * An import: busy in the source, a span and a busy segment in the
	 * child -- one line for each arena, as NetBSD prints.
	 */
	T_EQ(vmem_alloc(kid, 0x1000, VM_SLEEP, &a), 0);
	pr_reset();
	vmem_dump(kid, pr_buf);
	p = strchr(pbuf, '\n') + 1;
	expect_tag(&p, a, 0x1000, 1, "span", NULL);
	expect_tag(&p, a, 0x1000, 4, "busy", NULL);
	T_EQ(*p, '\0');
	pr_reset();
	T_EQ(vmem_whatis(a + 0x10, pr_buf), 0);
	{
		char l1[128], l2[128];

		snprintf(l1, sizeof l1,
		    "%p is %p+16 in VMEM 'wsrc' (allocated)\n",
		    (void *)(a + 16), (void *)a);
		snprintf(l2, sizeof l2,
		    "%p is %p+16 in VMEM 'wkid' (allocated)\n",
		    (void *)(a + 16), (void *)a);
		if (strstr(pbuf, l1) == NULL)
			T_FAIL("whatis printed \"%s\", want \"%s\"", pbuf, l1);
		T_ASSERT(strstr(pbuf, l2) != NULL);
		T_EQ(plen, strlen(l1) + strlen(l2));
	}

	/* Address 0 prints as 0x0, as NetBSD's %p does. */
	T_EQ(vmem_alloc(ids, 1, VM_SLEEP, &id), 0);
	T_EQ(id, 0);
	pr_reset();
	T_EQ(vmem_whatis(0, pr_buf), 0);
	T_ASSERT(
	    strstr(pbuf, "0x0 is 0x0+0 in VMEM 'wids' (allocated)\n") != NULL);

	vmem_free(ids, id, 1);
	vmem_free(kid, a, 0x1000);
	vmem_xfree(src, 0x104000, 0x2000);
	vmem_destroy(ids);
	vmem_destroy(kid);
	vmem_destroy(src);
}

int
main(void)
{
	T_RUN(test_dump_shape);
	T_RUN(test_whatis_shape);
	return t_done();
}
