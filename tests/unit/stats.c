/*
 * stats.c -- unit tests of the statistics emitter (src/stats.c): the
 * vmstat -m, vmstat -C and vmem tables (headers, column names, rows with
 * known traffic, the Totals row and the summary line, hidden rows and
 * KMEM_STATS_ALLROWS), the JSON object (valid JSON checked by python3,
 * every field, escaped names, lines under 256 bytes), the old per-layer
 * printers being the same emitter, kmem_stats_write to a file descriptor
 * and its errors, and KMEM_STATS in child processes (1, json, /path,
 * ./path, json:/path, bad values, idempotence, an unopenable file).
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/domain.h"
#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "t.h"

/* stats.c's test hook: forget KMEM_STATS's choice. */
void kmemi_stats_reset(void);

/* ---- capturing pr ---- */

static char pr_buf[1 << 18];
static size_t pr_len;
static size_t pr_calls, pr_maxlen, pr_nonl; /* per call: longest, no \n */

static void pr_capture(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void
pr_capture(const char *fmt, ...)
{
	char one[1024];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(one, sizeof one, fmt, ap);
	va_end(ap);
	n = strlen(one);
	pr_calls++;
	if (n > pr_maxlen)
		pr_maxlen = n;
	if (n == 0 || one[n - 1] != '\n')
		pr_nonl++;
	if (pr_len + n >= sizeof pr_buf)
		T_FAIL("capture buffer full");
	memcpy(pr_buf + pr_len, one, n + 1);
	pr_len += n;
}

static void
pr_reset(void)
{
	pr_len = 0;
	pr_buf[0] = '\0';
	pr_calls = pr_maxlen = pr_nonl = 0;
}

/* kmem_stats_print(pr_capture, what) into a fresh copy (free it). */
static char *
capture(unsigned int what)
{
	char *s;

	pr_reset();
	kmem_stats_print(pr_capture, what);
	T_LT(pr_maxlen, 256);
	T_EQ(pr_nonl, 0);
	s = strdup(pr_buf);
	T_ASSERT(s != NULL);
	return s;
}

/* The line of "text" that starts with "name " (after a newline). */
static bool
find_row(const char *text, const char *name, char *row, size_t n)
{
	char pat[96];
	const char *p;

	snprintf(pat, sizeof pat, "\n%s ", name);
	if ((p = strstr(text, pat)) == NULL)
		return false;
	p++;
	snprintf(row, n, "%.*s", (int)strcspn(p, "\n"), p);
	return true;
}

/* The header line after "title\n" has exactly these columns. */
static void
check_columns(
    const char *text, const char *title, const char *const *cols, size_t ncols)
{
	char hdr[512], *tok, *save;
	const char *p = strstr(text, title);
	size_t k = 0;

	T_ASSERT(p != NULL);
	p += strlen(title);
	T_EQ(*p, '\n');
	p++;
	snprintf(hdr, sizeof hdr, "%.*s", (int)strcspn(p, "\n"), p);
	for (tok = strtok_r(hdr, " ", &save); tok != NULL;
	     tok = strtok_r(NULL, " ", &save)) {
		T_ASSERT(k < ncols);
		if (strcmp(tok, cols[k]) != 0)
			T_FAIL("column %zu is \"%s\", not \"%s\"", k, tok,
			    cols[k]);
		k++;
	}
	T_EQ(k, ncols);
}

/* ---- fixtures: pools, a cache and an arena with known traffic ---- */

static struct pool pool_a, pool_b, pool_idle, pool_esc;
static struct pool pool_many[48]; /* output above the 4 KiB write buffer */
static pool_cache_t cache_a, cache_idle;
static vmem_t *arena_a;
static vmem_addr_t arena_seg[2];

#define ESC_NAME "st-esc\"\\\x01\t\xc3\xa9\xff"

static void
fixtures(void)
{
	/* Static: the items left out are not leaks to memcheck. */
	static void *a[10], *many[KMEM_ARRAY_SIZE(pool_many)];
	void *b[7], *o[20], *e;
	int i;

	/* pool a: 10 gets, 4 puts; pool b: 7 gets, 7 puts; idle: none. */
	pool_init(&pool_a, 64, 0, 0, 0, "st-pool-a", NULL, IPL_NONE);
	pool_init(&pool_b, 200, 0, 0, 0, "st-pool-b", NULL, IPL_NONE);
	pool_init(&pool_idle, 32, 0, 0, 0, "st-pool-idle", NULL, IPL_NONE);
	pool_init(&pool_esc, 16, 0, 0, 0, ESC_NAME, NULL, IPL_NONE);
	pool_sethardlimit(&pool_b, 1000, NULL, 0); /* Maxpg not "inf" */
	for (i = 0; i < 10; i++)
		T_ASSERT((a[i] = pool_get(&pool_a, PR_WAITOK)) != NULL);
	for (i = 0; i < 4; i++)
		pool_put(&pool_a, a[i]);
	for (i = 0; i < 7; i++)
		T_ASSERT((b[i] = pool_get(&pool_b, PR_WAITOK)) != NULL);
	for (i = 0; i < 7; i++)
		pool_put(&pool_b, b[i]);
	T_ASSERT((e = pool_get(&pool_esc, PR_WAITOK)) != NULL);
	pool_put(&pool_esc, e);
	for (i = 0; i < (int)KMEM_ARRAY_SIZE(pool_many); i++) {
		char name[32];

		snprintf(name, sizeof name, "st-many-%02d", i);
		pool_init(&pool_many[i], 8 * (size_t)(i + 1), 0, 0, 0, name,
		    NULL, IPL_NONE);
		T_ASSERT(
		    (many[i] = pool_get(&pool_many[i], PR_WAITOK)) != NULL);
	}

	/* cache a: 20 gets, 20 puts, 20 gets (the last served cached). */
	cache_a = pool_cache_init(
	    48, 0, 0, 0, "st-cache-a", NULL, IPL_NONE, NULL, NULL, NULL);
	cache_idle = pool_cache_init(
	    48, 0, 0, 0, "st-cache-idle", NULL, IPL_NONE, NULL, NULL, NULL);
	T_ASSERT(cache_a != NULL && cache_idle != NULL);
	for (i = 0; i < 20; i++)
		T_ASSERT((o[i] = pool_cache_get(cache_a, PR_WAITOK)) != NULL);
	for (i = 0; i < 20; i++)
		pool_cache_put(cache_a, o[i]);
	for (i = 0; i < 20; i++)
		T_ASSERT((o[i] = pool_cache_get(cache_a, PR_WAITOK)) != NULL);

	/* arena a: 3 allocations, 1 free. */
	arena_a = vmem_create("st-arena-a", 0x100000, 0x10000, 16, NULL, NULL,
	    NULL, 0, VM_SLEEP, IPL_NONE);
	T_ASSERT(arena_a != NULL);
	T_EQ(vmem_alloc(arena_a, 32, VM_SLEEP, &arena_seg[0]), 0);
	T_EQ(vmem_alloc(arena_a, 48, VM_SLEEP, &arena_seg[1]), 0);
	{
		vmem_addr_t x;

		T_EQ(vmem_alloc(arena_a, 16, VM_SLEEP, &x), 0);
		vmem_free(arena_a, x, 16);
	}
}

static struct kmem_pool_stats
pstats(struct pool *pp)
{
	struct kmem_pool_stats st;

	T_EQ(kmem_pool_stats(pp, &st), 0);
	return st;
}

/* ---- vmstat -m ---- */

struct prow {
	char name[64], maxpg[16], flags[16], util[16];
	size_t size;
	unsigned long req, fail, rel, inuse, avail, pgreq, pgrel, npage;
	unsigned long pagesz, hiwat, minpg, idle;
};

static bool
parse_prow(const char *line, struct prow *r)
{
	return sscanf(line,
		   "%63s %zu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu %15s "
		   "%lu %15s %15s",
		   r->name, &r->size, &r->req, &r->fail, &r->rel, &r->inuse,
		   &r->avail, &r->pgreq, &r->pgrel, &r->npage, &r->pagesz,
		   &r->hiwat, &r->minpg, r->maxpg, &r->idle, r->flags,
		   r->util) == 17;
}

static unsigned long long
t_permille(unsigned long long part, unsigned long long whole)
{
	return whole ? (part * 1000 + whole / 2) / whole : 0;
}

static void
test_pools_table(void)
{
	static const char *const cols[] = {"Name", "Size", "Requests", "Fail",
	    "Releases", "InUse", "Avail", "Pgreq", "Pgrel", "Npage", "PageSz",
	    "Hiwat", "Minpg", "Maxpg", "Idle", "Flags", "Util"};
	struct kmem_pool_stats st = pstats(&pool_a);
	char *text = capture(KMEM_STATS_POOLS), row[256], want[64];
	struct prow r;
	unsigned long long u;

	T_ASSERT(strncmp(text, "Memory resource pool statistics\n", 32) == 0);
	check_columns(text, "Memory resource pool statistics", cols,
	    KMEM_ARRAY_SIZE(cols));
	/* Pool a: 10 requests, 4 releases, 6 in use. */
	T_ASSERT(find_row(text, "st-pool-a", row, sizeof row));
	T_ASSERT(parse_prow(row, &r));
	T_EQ(r.size, st.ps_itemsize);
	T_EQ(r.req, 10);
	T_EQ(r.fail, 0);
	T_EQ(r.rel, 4);
	T_EQ(r.inuse, 6);
	T_EQ(r.avail, st.ps_nitems);
	T_EQ(r.pgreq, st.ps_npagealloc);
	T_EQ(r.pgrel, st.ps_npagefree);
	T_EQ(r.npage, st.ps_npages);
	T_GE(r.npage, 1);
	T_EQ(r.pagesz, st.ps_pagesize);
	T_EQ(r.hiwat, st.ps_hiwat);
	T_EQ(r.minpg, 0);
	T_ASSERT(strcmp(r.maxpg, "inf") == 0);
	T_EQ(r.idle, st.ps_nidle);
	snprintf(want, sizeof want, "0x%04x", st.ps_flags);
	T_ASSERT(strcmp(r.flags, want) == 0);
	u = t_permille(6ull * st.ps_itemsize,
	    (unsigned long long)st.ps_npages * st.ps_pagesize);
	snprintf(want, sizeof want, "%llu.%llu", u / 10, u % 10);
	if (strcmp(r.util, want) != 0)
		T_FAIL("Util %s, want %s", r.util, want);
	/* Pool b: 7 and 7; a hard limit gives a finite Maxpg. */
	st = pstats(&pool_b);
	T_ASSERT(find_row(text, "st-pool-b", row, sizeof row));
	T_ASSERT(parse_prow(row, &r));
	T_EQ(r.req, 7);
	T_EQ(r.rel, 7);
	T_EQ(r.inuse, 0);
	snprintf(want, sizeof want, "%u", st.ps_maxpages);
	T_ASSERT(st.ps_maxpages != UINT_MAX);
	T_ASSERT(strcmp(r.maxpg, want) == 0);
	T_ASSERT(strcmp(r.util, "0.0") == 0);
	/* The cache's pool is a pool too. */
	T_ASSERT(find_row(text, "st-cache-a", row, sizeof row));
	/* Never used: hidden. */
	T_ASSERT(!find_row(text, "st-pool-idle", row, sizeof row));
	free(text);
}

/* The Totals row sums the rows shown; the summary line their bytes. */
static void
test_pools_totals(void)
{
	char *text = capture(KMEM_STATS_POOLS);
	const char *p = strstr(text, "\nName ");
	unsigned long sum[8] = {0}, tot[8];
	unsigned long long inuse = 0, total = 0, ik, tk, uw, uf, u;
	unsigned nrows = 0, i;
	struct prow r;

	T_ASSERT(p != NULL);
	p = strchr(p + 1, '\n') + 1;
	while (strncmp(p, "Totals ", 7) != 0) {
		char line[256];

		snprintf(line, sizeof line, "%.*s", (int)strcspn(p, "\n"), p);
		if (!parse_prow(line, &r))
			T_FAIL("unparsable row: %s", line);
		T_GT(r.req, 0);
		sum[0] += r.req;
		sum[1] += r.fail;
		sum[2] += r.rel;
		sum[3] += r.inuse;
		sum[4] += r.avail;
		sum[5] += r.pgreq;
		sum[6] += r.pgrel;
		sum[7] += r.npage;
		if (!(strtoul(r.flags, NULL, 16) & PR_RECURSIVE)) {
			inuse += (unsigned long long)r.inuse * r.size;
			total += (unsigned long long)r.npage * r.pagesz;
		}
		nrows++;
		p = strchr(p, '\n') + 1;
	}
	T_GE(nrows, 3);
	T_EQ(sscanf(p, "Totals %lu %lu %lu %lu %lu %lu %lu %lu", &tot[0],
		 &tot[1], &tot[2], &tot[3], &tot[4], &tot[5], &tot[6], &tot[7]),
	    8);
	for (i = 0; i < 8; i++)
		T_EQ(tot[i], sum[i]);
	p = strchr(p, '\n') + 1;
	T_EQ(sscanf(p,
		 "In use %lluK, total allocated %lluK; utilization "
		 "%llu.%llu%%",
		 &ik, &tk, &uw, &uf),
	    4);
	T_EQ(ik, inuse / 1024);
	T_EQ(tk, total / 1024);
	u = t_permille(inuse, total);
	T_EQ(uw, u / 10);
	T_EQ(uf, u % 10);
	T_EQ(p[strcspn(p, "\n") + 1], '\0'); /* the last line */
	free(text);
}

/* ---- vmstat -C ---- */

static void
test_caches_table(void)
{
	static const char *const cols[] = {"Name", "Spin", "GrpSz", "Full",
	    "Emty", "PoolLayer", "CacheLayer", "Hit%", "CpuLayer", "Hit%"};
	struct kmem_pool_stats st;
	char *text, row[256], name[64];
	unsigned long spin, full, emty, pooll, cachel, hit1, cpul, hit2;
	unsigned gs;

	T_EQ(kmem_pool_cache_stats(cache_a, &st), 0);
	text = capture(KMEM_STATS_CACHES);
	T_ASSERT(strncmp(text, "Pool cache statistics.\n", 23) == 0);
	check_columns(
	    text, "Pool cache statistics.", cols, KMEM_ARRAY_SIZE(cols));
	T_ASSERT(find_row(text, "st-cache-a", row, sizeof row));
	T_EQ(
	    sscanf(row, "%63s %lu %u %lu %lu %lu %lu %lu%% %lu %lu%%", name,
		&spin, &gs, &full, &emty, &pooll, &cachel, &hit1, &cpul, &hit2),
	    10);
	T_EQ(spin, st.ps_contended);
	T_EQ(gs, st.ps_groupsize);
	T_EQ(full, st.ps_nfull);
	T_EQ(emty, st.ps_nempty);
	T_EQ(pooll, st.ps_depotmiss);
	T_GE(pooll, 1);
	T_EQ(cachel, st.ps_depothit + st.ps_depotmiss);
	T_EQ(hit1, cachel ? st.ps_depothit * 100 / cachel : 0);
	T_EQ(cpul, st.ps_cpuhit + st.ps_cpumiss);
	T_EQ(hit2, cpul ? st.ps_cpuhit * 100 / cpul : 0);
	if (kmem_opts.magazines)
		T_GE(cpul, 60); /* 60 operations (an rseq restart counts 2) */
	/* No depot miss (no traffic): hidden; plain pools: never here. */
	T_ASSERT(!find_row(text, "st-cache-idle", row, sizeof row));
	T_ASSERT(!find_row(text, "st-pool-a", row, sizeof row));
	free(text);
}

/* ---- vmem ---- */

static void
test_vmem_table(void)
{
	static const char *const cols[] = {"Arena", "Quantum", "InUse",
	    "Imported", "Total", "Allocs", "Frees", "Fails", "Waits", "SpImp",
	    "SpRel", "Busy"};
	char *text = capture(KMEM_STATS_VMEM), row[256], name[64];
	unsigned long long q, inuse, imp, total, al, fr, fa, wa, si, sr, busy;

	T_ASSERT(strncmp(text, "Vmem arena statistics\n", 22) == 0);
	check_columns(
	    text, "Vmem arena statistics", cols, KMEM_ARRAY_SIZE(cols));
	T_ASSERT(find_row(text, "st-arena-a", row, sizeof row));
	T_EQ(sscanf(row,
		 "%63s %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
		 "%llu",
		 name, &q, &inuse, &imp, &total, &al, &fr, &fa, &wa, &si, &sr,
		 &busy),
	    12);
	T_EQ(q, 16);
	T_EQ(inuse, 32 + 48);
	T_EQ(imp, 0);
	T_EQ(total, 0x10000);
	T_EQ(al, 3);
	T_EQ(fr, 1);
	T_EQ(fa, 0);
	T_EQ(wa, 0);
	T_EQ(si, 0);
	T_EQ(sr, 0);
	T_EQ(busy, 2);
	free(text);
}

/* ---- ALLROWS, section order, the old printers ---- */

static void
test_allrows(void)
{
	char *text = capture(KMEM_STATS_POOLS | KMEM_STATS_ALLROWS), row[256];
	struct prow r;

	T_ASSERT(find_row(text, "st-pool-idle", row, sizeof row));
	T_ASSERT(parse_prow(row, &r));
	T_EQ(r.req, 0);
	T_EQ(r.npage, 0);
	T_ASSERT(strcmp(r.util, "0.0") == 0);
	T_ASSERT(find_row(text, "st-pool-a", row, sizeof row));
	free(text);
	text = capture(KMEM_STATS_CACHES | KMEM_STATS_ALLROWS);
	T_ASSERT(find_row(text, "st-cache-idle", row, sizeof row));
	T_ASSERT(find_row(text, "st-cache-a", row, sizeof row));
	T_ASSERT(!find_row(text, "st-pool-a", row, sizeof row));
	free(text);
}

static char *
capture_old(void (*fn)(void (*)(const char *, ...)))
{
	pr_reset();
	fn(pr_capture);
	return strdup(pr_buf);
}

static void
test_sections(void)
{
	char *pools = capture(KMEM_STATS_POOLS);
	char *caches = capture(KMEM_STATS_CACHES);
	char *arenas = capture(KMEM_STATS_VMEM);
	char *all = capture(KMEM_STATS_ALL), *none = capture(0), *old;
	char *cat = malloc(strlen(pools) + strlen(caches) + strlen(arenas) + 3);

	T_ASSERT(cat != NULL);
	/* In order, one blank line between tables. */
	sprintf(cat, "%s\n%s\n%s", pools, caches, arenas);
	T_ASSERT(strcmp(all, cat) == 0);
	T_ASSERT(strcmp(none, all) == 0);
	free(none);
	none = capture(KMEM_STATS_POOLS | KMEM_STATS_VMEM);
	sprintf(cat, "%s\n%s", pools, arenas);
	T_ASSERT(strcmp(none, cat) == 0);
	/* The per-layer printers are the same emitter. */
	old = capture_old(kmem_pool_print_stats);
	T_ASSERT(strcmp(old, pools) == 0);
	free(old);
	old = capture_old(kmem_pool_cache_print_stats);
	T_ASSERT(strcmp(old, caches) == 0);
	free(old);
	pr_reset();
	kmem_vmem_print_stats(pr_capture);
	T_ASSERT(strcmp(pr_buf, arenas) == 0);
	free(cat);
	free(none);
	free(all);
	free(pools);
	free(caches);
	free(arenas);
}

/* ---- JSON ---- */

static bool
have_python(void)
{
	static int have = -1;

	if (have < 0) {
		have = system("python3 -c 'import json' >/dev/null 2>&1") == 0;
		if (!have)
			printf("   note: no python3; JSON not parsed\n");
	}
	return have;
}

static char tmpdir[64];

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	T_ASSERT(f != NULL);
	T_EQ(fwrite(text, 1, strlen(text), f), strlen(text));
	T_EQ(fclose(f), 0);
}

/*
 * Check JSON files with python3: each parses, every object has the fields
 * of its section, and its "want" (JSON: {section: {name: {field: value},
 * or null for "absent"}}) holds.  Checks are queued and run by one python3
 * (json_run), which is slow to start.
 */
static const char json_check_py[] =
    "import json, sys\n"
    "keys = {\n"
    " 'pools': 'name itemsize pagesize itemsperpage nget nfail nput nout '\n"
    "  'nitems npagealloc npagefree npages hiwat minpages maxpages nidle '\n"
    "  'flags cached groupsize nfull nempty cpuhit cpumiss depothit '\n"
    "  'depotmiss contended cached_objects',\n"
    " 'caches': 'name groupsize nfull nempty contended cpuhit cpumiss '\n"
    "  'depothit depotmiss cached_objects',\n"
    " 'arenas': 'name quantum inuse imported total alloc free fail wait '\n"
    "  'import release nbusy nfree hashsize'}\n"
    "for path, w in zip(sys.argv[1::2], sys.argv[2::2]):\n"
    "  d = json.load(open(path, encoding='utf-8'))\n"
    "  want = json.loads(w)\n"
    "  pr = d.pop('process', None)\n"
    "  if pr is not None:\n"
    "    assert set(pr) == {'pid', 'command'}, (path, pr)\n"
    "    assert isinstance(pr['pid'], int) and pr['pid'] > 1, (path, pr)\n"
    "  assert set(d) == set(want), (path, sorted(d), sorted(want))\n"
    "  for sec, rows in d.items():\n"
    "    for r in rows:\n"
    "      assert set(r) == set(keys[sec].split()), (path, sec, sorted(r))\n"
    "    by = {r['name']: r for r in rows}\n"
    "    assert len(by) == len(rows), (path, sec)\n"
    "    for name, fields in want[sec].items():\n"
    "      if fields is None:\n"
    "        assert name not in by, (path, sec, name)\n"
    "        continue\n"
    "      assert name in by, (path, sec, name, sorted(by))\n"
    "      for k, v in fields.items():\n"
    "        assert by[name][k] == v, (path, sec, name, k, by[name][k], v)\n";

static char json_cmd[16384];
static size_t json_cmd_len;
static unsigned json_nfiles;

static void
json_check(const char *path, const char *want)
{
	int n;

	if (!have_python())
		return;
	if (json_cmd_len == 0) {
		char script[128];

		snprintf(script, sizeof script, "%s/check.py", tmpdir);
		write_file(script, json_check_py);
		json_cmd_len = (size_t)snprintf(
		    json_cmd, sizeof json_cmd, "python3 %s", script);
	}
	n = snprintf(json_cmd + json_cmd_len, sizeof json_cmd - json_cmd_len,
	    " %s '%s'", path, want);
	T_LT((size_t)n, sizeof json_cmd - json_cmd_len);
	json_cmd_len += (size_t)n;
}

static void
json_check_text(const char *text, const char *want)
{
	char path[128];

	snprintf(path, sizeof path, "%s/out%u.json", tmpdir, json_nfiles++);
	write_file(path, text);
	json_check(path, want);
}

/* Run the queued checks. */
static void
json_run(void)
{
	int rc;

	if (json_cmd_len == 0)
		return;
	rc = system(json_cmd);
	if (rc != 0)
		T_FAIL("JSON check failed (%d): %s", rc, json_cmd);
	json_cmd_len = 0;
}

static void
test_json(void)
{
	struct kmem_pool_stats a = pstats(&pool_a), c;
	struct kmem_vmem_stats v;
	char *text, want[2048];

	T_EQ(kmem_pool_cache_stats(cache_a, &c), 0);
	T_EQ(kmem_vmem_stats(arena_a, &v), 0);
	text = capture(KMEM_STATS_ALL | KMEM_STATS_JSON);
	T_GT(pr_calls, 10);
	T_ASSERT(strncmp(text, "{\"pools\":[\n", 11) == 0);
	T_ASSERT(strcmp(text + strlen(text) - 2, "}\n") == 0);
	/* The escaped name: quote, backslash, control, UTF-8, invalid. */
	T_ASSERT(strstr(text, "\"st-esc\\\"\\\\\\u0001\\t\xc3\xa9\\ufffd\"") !=
	    NULL);
	snprintf(want, sizeof want,
	    "{\"pools\": {"
	    "\"st-pool-a\": {\"nget\": 10, \"nput\": 4, \"nout\": 6, "
	    "\"nfail\": 0, \"itemsize\": %zu, \"pagesize\": %u, "
	    "\"itemsperpage\": %u, \"nitems\": %u, \"npages\": %u, "
	    "\"npagealloc\": %lu, \"maxpages\": %u, \"flags\": %u, "
	    "\"cached\": false},"
	    "\"st-pool-b\": {\"nget\": 7, \"nput\": 7, \"nout\": 0},"
	    "\"st-cache-a\": {\"cached\": true, \"nget\": %lu, "
	    "\"cpuhit\": %lu, \"depotmiss\": %lu, \"groupsize\": %u},"
	    "\"st-esc\\\"\\\\\\u0001\\t\\u00e9\\ufffd\": {\"nget\": 1},"
	    "\"st-pool-idle\": null},"
	    "\"caches\": {\"st-cache-a\": {\"cpuhit\": %lu, \"cpumiss\": %lu, "
	    "\"depothit\": %lu, \"depotmiss\": %lu, \"nfull\": %lu, "
	    "\"cached_objects\": %lu},"
	    "\"st-cache-idle\": null, \"st-pool-a\": null},"
	    "\"arenas\": {\"st-arena-a\": {\"quantum\": 16, \"inuse\": 80, "
	    "\"total\": 65536, \"alloc\": 3, \"free\": 1, \"nbusy\": 2, "
	    "\"nfree\": %llu, \"hashsize\": %llu}}}",
	    a.ps_itemsize, a.ps_pagesize, a.ps_itemsperpage, a.ps_nitems,
	    a.ps_npages, a.ps_npagealloc, a.ps_maxpages, a.ps_flags, c.ps_nget,
	    c.ps_cpuhit, c.ps_depotmiss, c.ps_groupsize, c.ps_cpuhit,
	    c.ps_cpumiss, c.ps_depothit, c.ps_depotmiss, c.ps_nfull,
	    c.ps_cached_objects, (unsigned long long)v.vs_nfree,
	    (unsigned long long)v.vs_hashsize);
	json_check_text(text, want);
	free(text);

	/* ALLROWS: the idle ones are there. */
	text = capture(KMEM_STATS_ALL | KMEM_STATS_JSON | KMEM_STATS_ALLROWS);
	json_check_text(text,
	    "{\"pools\": {\"st-pool-idle\": {\"nget\": 0, \"npages\": 0}},"
	    " \"caches\": {\"st-cache-idle\": {\"cpuhit\": 0}},"
	    " \"arenas\": {}}");
	free(text);

	/* One section, or two. */
	text = capture(KMEM_STATS_VMEM | KMEM_STATS_JSON);
	T_ASSERT(strncmp(text, "{\"arenas\":[\n", 12) == 0);
	T_ASSERT(strstr(text, "\"pools\"") == NULL);
	json_check_text(text, "{\"arenas\": {\"st-arena-a\": {\"alloc\": 3}}}");
	free(text);
	text = capture(KMEM_STATS_CACHES | KMEM_STATS_VMEM | KMEM_STATS_JSON);
	json_check_text(text,
	    "{\"caches\": {\"st-cache-a\": {}}, \"arenas\": {\"st-arena-a\": "
	    "{}}}");
	free(text);
	/* JSON alone: every section. */
	text = capture(KMEM_STATS_JSON);
	json_check_text(
	    text, "{\"pools\": {}, \"caches\": {}, \"arenas\": {}}");
	free(text);
	json_run();
}

/* ---- kmem_stats_write ---- */

static char *
read_fd(int fd)
{
	static char buf[1 << 18];
	size_t len = 0;
	ssize_t r;

	T_EQ(lseek(fd, 0, SEEK_SET), 0);
	while ((r = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
		len += (size_t)r;
	T_LT(len, sizeof buf - 1);
	buf[len] = '\0';
	return strdup(buf);
}

static void
test_write_fd(void)
{
	unsigned int whats[] = {KMEM_STATS_ALL,
	    KMEM_STATS_ALL | KMEM_STATS_JSON | KMEM_STATS_ALLROWS,
	    KMEM_STATS_POOLS};
	size_t i;
	int fd;

	for (i = 0; i < KMEM_ARRAY_SIZE(whats); i++) {
		FILE *f = tmpfile();
		char *got, *want;

		T_ASSERT(f != NULL);
		fd = fileno(f);
		T_EQ(kmem_stats_write(fd, whats[i]), 0);
		got = read_fd(fd);
		want = capture(whats[i]);
		/* Bigger than the 4 KiB buffer: several writes. */
		T_GT(strlen(want), 4096);
		T_ASSERT(strcmp(got, want) == 0);
		free(got);
		free(want);
		fclose(f);
	}
	/* A pipe works too (small output). */
	{
		int p[2];
		char buf[8192];
		ssize_t r;

		T_EQ(pipe(p), 0);
		T_EQ(kmem_stats_write(p[1], KMEM_STATS_VMEM), 0);
		close(p[1]);
		r = read(p[0], buf, sizeof buf - 1);
		T_GT(r, 0);
		buf[r] = '\0';
		T_ASSERT(strncmp(buf, "Vmem arena statistics\n", 22) == 0);
		close(p[0]);
	}
	/* Errors: errno values, errno itself untouched. */
	T_EQ(kmem_stats_write(-1, KMEM_STATS_ALL), EBADF);
	fd = open("/dev/null", O_RDONLY);
	T_ASSERT(fd >= 0);
	errno = 1234;
	T_EQ(kmem_stats_write(fd, KMEM_STATS_ALL), EBADF);
	T_EQ(errno, 1234);
	close(fd);
}

/* NULL pr: standard error, the same text. */
static void
print_null_child(void *arg)
{
	(void)arg;
	kmem_stats_print(NULL, KMEM_STATS_ALL);
}

static void
test_print_stderr(void)
{
	static char buf[1 << 18];
	char *want = capture(KMEM_STATS_ALL);
	int status = t_child(print_null_child, NULL, buf, sizeof buf);

	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	T_ASSERT(strcmp(buf, want) == 0);
	free(want);
}

/* ---- KMEM_STATS at exit ---- */

struct envcase {
	const char *value;  /* KMEM_STATS */
	const char *value2; /* set before a second kmemi_stats_init */
	bool chdir_tmp;	    /* run in tmpdir (relative paths) */
};

static void
env_child(void *arg)
{
	static struct pool child_pool;
	const struct envcase *c = arg;
	struct pool *pp = &child_pool;
	void *v[5];
	int i;

	if (c->chdir_tmp && chdir(tmpdir) != 0)
		_exit(3);
	kmemi_stats_reset();
	setenv("KMEM_STATS", c->value, 1);
	kmemi_stats_init();
	if (c->value2 != NULL) {
		setenv("KMEM_STATS", c->value2, 1);
		kmemi_stats_init();
	}
	/* The environment may change: the choice was copied. */
	setenv("KMEM_STATS", "/nonexistent/changed", 1);
	pool_init(pp, 96, 0, 0, 0, "st-child", NULL, IPL_NONE);
	for (i = 0; i < 5; i++)
		v[i] = pool_get(pp, PR_WAITOK);
	for (i = 0; i < 2; i++)
		pool_put(pp, v[i]);
	exit(0); /* not t_child's _exit: the exit functions must run */
}

static char child_err[1 << 18];

static void
run_env(const char *value, const char *value2, bool chdir_tmp)
{
	struct envcase c = {value, value2, chdir_tmp};
	int status = t_child(env_child, &c, child_err, sizeof child_err);

	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		T_FAIL("KMEM_STATS=%s: child status %#x, stderr:\n%s", value,
		    status, child_err);
}

static void
check_tables(const char *text)
{
	char row[256];
	struct prow r;

	T_ASSERT(strncmp(text, "Memory resource pool statistics\n", 32) == 0);
	T_ASSERT(strstr(text, "\n\nPool cache statistics.\n") != NULL);
	T_ASSERT(strstr(text, "\n\nVmem arena statistics\n") != NULL);
	T_ASSERT(find_row(text, "st-child", row, sizeof row));
	T_ASSERT(parse_prow(row, &r));
	T_EQ(r.req, 5);
	T_EQ(r.rel, 2);
	T_EQ(r.inuse, 3);
}

static const char child_want[] =
    "{\"pools\": {\"st-child\": {\"nget\": 5, \"nput\": 2, \"nout\": 3, "
    "\"itemsize\": 96}}, \"caches\": {}, \"arenas\": {}}";

static char *
slurp(const char *path)
{
	int fd = open(path, O_RDONLY);
	char *s;

	if (fd < 0)
		T_FAIL("open %s: %s", path, strerror(errno));
	s = read_fd(fd);
	close(fd);
	return s;
}

static void
test_env_stderr(void)
{
	run_env("1", NULL, false);
	check_tables(child_err);
	T_ASSERT(strstr(child_err, "warning") == NULL);

	run_env("json", NULL, false);
	T_ASSERT(strncmp(child_err, "{\"pools\":[\n", 11) == 0);
	json_check_text(child_err, child_want);

	/* Unset, empty and "0": nothing. */
	run_env("", NULL, false);
	T_EQ(child_err[0], '\0');
	run_env("0", NULL, false);
	T_EQ(child_err[0], '\0');

	/* Read once: a second kmemi_stats_init changes nothing. */
	run_env("1", "json", false);
	check_tables(child_err);
	T_ASSERT(strstr(child_err, "\"pools\"") == NULL);
	json_run();
}

static void
test_env_file(void)
{
	char path[128], value[160], found[512];
	struct stat sb;
	mode_t um;
	char *text;

	/* A new file: tables, mode 0644 less the umask. */
	snprintf(path, sizeof path, "%s/tables.txt", tmpdir);
	unlink(path);
	run_env(path, NULL, false);
	T_EQ(child_err[0], '\0'); /* nothing on stderr */
	text = slurp(path);
	check_tables(text);
	free(text);
	um = umask(0);
	umask(um);
	T_EQ(stat(path, &sb), 0);
	T_EQ(sb.st_mode & 0777, 0644 & ~um);

	/* An existing, longer file is truncated. */
	{
		char *junk = malloc(1 << 17);

		T_ASSERT(junk != NULL);
		memset(junk, 'x', (1 << 17) - 1);
		junk[(1 << 17) - 1] = '\0';
		write_file(path, junk);
		free(junk);
	}
	run_env(path, NULL, false);
	text = slurp(path);
	check_tables(text);
	T_LT(strlen(text), (1 << 17) - 1);
	T_ASSERT(strstr(text, "xxxx") == NULL);
	free(text);

	/* json:PATH */
	snprintf(path, sizeof path, "%s/stats.json", tmpdir);
	snprintf(value, sizeof value, "json:%s", path);
	run_env(value, NULL, false);
	T_EQ(child_err[0], '\0');
	text = slurp(path);
	/* The file at exit names its process first. */
	T_ASSERT(strncmp(text, "{\"process\":{\"pid\":", 18) == 0);
	T_ASSERT(strstr(text, "\"command\":\"t_unit_stats\"}\n,\"pools\":[") !=
	    NULL);
	free(text);
	json_check(path, child_want);

	/* %p: the process id, so that processes (kmemstat's) do not clash. */
	snprintf(value, sizeof value, "json:%s/st-%%p-%%p.json", tmpdir);
	run_env(value, NULL, false);
	T_EQ(child_err[0], '\0');
	{
		DIR *d = opendir(tmpdir);
		struct dirent *e;
		long a, b;
		int n = 0;

		T_ASSERT(d != NULL);
		while ((e = readdir(d)) != NULL) {
			if (sscanf(e->d_name, "st-%ld-%ld.json", &a, &b) != 2)
				continue;
			T_EQ(a, b);
			T_GT(a, 1);
			snprintf(
			    found, sizeof found, "%s/%s", tmpdir, e->d_name);
			n++;
		}
		closedir(d);
		T_EQ(n, 1);
	}
	json_check(found, child_want);

	/* ./relative, from the child's working directory. */
	snprintf(path, sizeof path, "%s/rel.txt", tmpdir);
	unlink(path);
	run_env("./rel.txt", NULL, true);
	text = slurp(path);
	check_tables(text);
	free(text);
	json_run();
}

/* KMEM_STATS=path; a forked grandchild exits first: it writes nothing. */
static void
fork_child(void *arg)
{
	const char *path = arg;
	struct stat sb;
	int status;
	pid_t pid;

	kmemi_stats_reset();
	setenv("KMEM_STATS", path, 1);
	kmemi_stats_init();
	pid = fork();
	if (pid == 0)
		exit(0); /* runs the exit functions */
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		_exit(4);
	if (stat(path, &sb) == 0)
		_exit(5); /* the grandchild wrote the file */
	exit(0);
}

static void
test_env_fork(void)
{
	char path[128];
	int status;
	char *text;

	snprintf(path, sizeof path, "%s/fork.txt", tmpdir);
	unlink(path);
	status = t_child(fork_child, path, child_err, sizeof child_err);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		T_FAIL("child status %#x; stderr:\n%s", (unsigned)status,
		    child_err);
	/* The process that read KMEM_STATS wrote it, at its own exit. */
	text = slurp(path);
	T_ASSERT(strncmp(text, "Memory resource pool statistics\n", 32) == 0);
	free(text);
}

static void
test_env_bad(void)
{
	/* Not understood: one warning naming the variable and the value. */
	run_env("bogus", NULL, false);
	T_ASSERT(
	    strncmp(child_err, "kmem: warning: KMEM_STATS=bogus", 31) == 0);
	T_ASSERT(strchr(child_err, '\n') == child_err + strlen(child_err) - 1);
	run_env("json:", NULL, false);
	T_ASSERT(
	    strncmp(child_err, "kmem: warning: KMEM_STATS=json:", 31) == 0);
	T_ASSERT(strstr(child_err, "Memory resource") == NULL);
	run_env("2", NULL, false);
	T_ASSERT(strstr(child_err, "KMEM_STATS=2") != NULL);
	/* A file that cannot be created: a warning at exit. */
	run_env("/nonexistent-kmem-dir/x", NULL, false);
	T_ASSERT(strstr(child_err,
		     "kmem: warning: KMEM_STATS: cannot create "
		     "/nonexistent-kmem-dir/x") != NULL);
	/* Too long a path. */
	{
		static char longpath[PATH_MAX + 64];

		longpath[0] = '/';
		memset(longpath + 1, 'a', sizeof longpath - 2);
		longpath[sizeof longpath - 1] = '\0';
		run_env(longpath, NULL, false);
		T_ASSERT(strstr(child_err, "path longer than") != NULL);
	}
}

static void
cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		printf("   note: could not remove %s\n", tmpdir);
}

int
main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/kmem-stats-XXXXXX");
	T_ASSERT(mkdtemp(tmpdir) != NULL);
	fixtures();
	T_RUN(test_pools_table);
	T_RUN(test_pools_totals);
	T_RUN(test_caches_table);
	T_RUN(test_vmem_table);
	T_RUN(test_allrows);
	T_RUN(test_sections);
	T_RUN(test_json);
	T_RUN(test_write_fd);
	T_RUN(test_print_stderr);
	T_RUN(test_env_stderr);
	T_RUN(test_env_file);
	T_RUN(test_env_fork);
	T_RUN(test_env_bad);
	cleanup();
	return t_done();
}
