/*
 * stats_names.c -- the statistics emitter on rows it rarely meets, fed as
 * snapshots (kmemi_stats_write_rows, kmemstat's entry point):
 *
 *   - names with every kind of UTF-8 sequence, well- and ill-formed
 *     (RFC 3629: overlong forms, surrogates, beyond U+10FFFF, cut short,
 *     bad continuation bytes) and control characters: JSON keeps the
 *     good ones, writes U+FFFD for each bad byte and escapes the
 *     controls; tables show '?' for controls;
 *   - counters at their maxima: the utilisation does not overflow, and a
 *     table line too long for the line buffer is cut, still one line;
 * and KMEM_STATS at exit when it cannot be done: a path that becomes too
 * long with the process id, a file that cannot be written (/dev/full),
 * no room left for the exit function -- each one warning, nothing else.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/internal.h"
#include "internal/kmem_impl.h"
#include "internal/prim.h"
#include "t.h"

void kmemi_stats_reset(void);

/* The rows' output (what: KMEM_STATS_*), NUL-terminated, malloc'd. */
static char *
emit(unsigned int what, const struct kmem_pool_stats *pools, size_t npools,
    const struct kmem_vmem_stats *arenas, size_t narenas)
{
	FILE *f = tmpfile();
	char *text = malloc(1 << 16);
	size_t n;

	T_ASSERT(f != NULL && text != NULL);
	T_EQ(kmemi_stats_write_rows(
		 fileno(f), what, pools, npools, arenas, narenas, NULL),
	    0);
	rewind(f);
	n = fread(text, 1, (1 << 16) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static const struct {
	const char *name, *json;
} names[] = {
    {"caf\xc3\xa9", "\"caf\xc3\xa9\""},
    {"euro \xe2\x82\xac", "\"euro \xe2\x82\xac\""},
    {"smile \xf0\x9f\x98\x80", "\"smile \xf0\x9f\x98\x80\""},
    {"overlong \xe0\x80\x80", "\"overlong \\ufffd\\ufffd\\ufffd\""},
    {"surrogate \xed\xa0\x80", "\"surrogate \\ufffd\\ufffd\\ufffd\""},
    {"too big \xf4\x90\x80\x80", "\"too big \\ufffd\\ufffd\\ufffd\\ufffd\""},
    {"overlong4 \xf0\x80\x80\x80",
	"\"overlong4 \\ufffd\\ufffd\\ufffd\\ufffd\""},
    {"bad tail \xe2\x82\x28", "\"bad tail \\ufffd\\ufffd(\""},
    {"cut \xe2\x82", "\"cut \\ufffd\\ufffd\""},
    {"a\tb\nc\rd\x01", "\"a\\tb\\nc\\rd\\u0001\""},
    {"del \x7f", "\"del \x7f\""},
    {"high tail \xe2\x82\xc0", "\"high tail \\ufffd\\ufffd\\ufffd\""},
};

static void
test_names(void)
{
	struct kmem_pool_stats rows[KMEM_ARRAY_SIZE(names)];
	char *text, *tables;
	size_t i;

	memset(rows, 0, sizeof rows);
	for (i = 0; i < KMEM_ARRAY_SIZE(names); i++) {
		rows[i].ps_size = sizeof rows[i];
		snprintf(rows[i].ps_name, sizeof rows[i].ps_name, "%s",
		    names[i].name);
		rows[i].ps_itemsize = 64;
		rows[i].ps_pagesize = 4096;
		rows[i].ps_nget = 1;
	}
	text = emit(KMEM_STATS_POOLS | KMEM_STATS_JSON | KMEM_STATS_ALLROWS,
	    rows, KMEM_ARRAY_SIZE(rows), NULL, 0);
	for (i = 0; i < KMEM_ARRAY_SIZE(names); i++)
		if (strstr(text, names[i].json) == NULL)
			T_FAIL("no %s in:\n%s", names[i].json, text);
	tables = emit(KMEM_STATS_POOLS | KMEM_STATS_ALLROWS, rows,
	    KMEM_ARRAY_SIZE(rows), NULL, 0);
	T_ASSERT(strstr(tables, "a?b?c?d?") != NULL);
	T_ASSERT(strstr(tables, "del ?") != NULL);
	free(text);
	free(tables);
	/* Arenas alone: no pool rows at all. */
	text = emit(KMEM_STATS_ALL | KMEM_STATS_JSON, NULL, 0, NULL, 0);
	T_ASSERT(
	    strcmp(text,
		"{\"pools\":[\n]\n,\"caches\":[\n]\n,\"arenas\":[\n]\n}\n") ==
	    0);
	free(text);
}

static void
test_maxima(void)
{
	struct kmem_pool_stats row;
	struct kmem_vmem_stats arena;
	char *text, *line, *next;

	memset(&row, 0xff, sizeof row);
	row.ps_size = sizeof row;
	snprintf(row.ps_name, sizeof row.ps_name, "%s",
	    "a-name-of-thirty-one-characters");
	row.ps_cached = true;
	row.ps_itemsize = SIZE_MAX / 2;
	row.ps_maxpages = 7;
	memset(&arena, 0xff, sizeof arena);
	arena.vs_size = sizeof arena;
	snprintf(arena.vs_name, sizeof arena.vs_name, "%s", "arena");
	text = emit(KMEM_STATS_ALL, &row, 1, &arena, 1);
	/* Every line whole (at most 255 bytes, a newline at its end). */
	for (line = text; *line != '\0'; line = next + 1) {
		next = strchr(line, '\n');
		T_ASSERT(next != NULL);
		T_LE(next - line, 254);
	}
	T_ASSERT(strstr(text, "a-name-of-thirty-one-characters ") != NULL);
	free(text);
}

/* ---- KMEM_STATS at exit ---- */

static void
noop(void)
{
}

static void
c_stats_env(void *arg)
{
	const char *v = arg;

	if (strcmp(v, "full") == 0) {
		int i;

		for (i = 0; i < KMEM_PRIM_ATEXIT_MAX; i++)
			T_EQ(kmem_prim_atexit(noop), 0);
		v = "1";
	}
	setenv("KMEM_STATS", v, 1);
	kmem_free(kmem_alloc(64, KM_SLEEP), 64);
	exit(0); /* the print runs at exit */
}

static void
stats_env(const char *value, const char *want)
{
	char buf[16384];
	int status = t_child(c_stats_env, (void *)value, buf, sizeof buf);

	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (strncmp(buf, want, strlen(want)) != 0 ||
	    strchr(buf, '\n') != buf + strlen(buf) - 1)
		T_FAIL("KMEM_STATS=%.40s: want one line \"%s...\", got:\n%s",
		    value, want, buf);
	printf("   %.100s%s", buf, strlen(buf) > 100 ? "...\n" : "");
}

static void
test_env_fails(void)
{
	static char path[4096];
	size_t i;

	/*
	 * Under the limit as written, beyond it once each %p is the
	 * process id (of three digits or more: 2047 of them make 6 KiB).
	 */
	path[0] = '/';
	for (i = 1; i + 2 < sizeof path; i += 2)
		memcpy(path + i, "%p", 2);
	path[i] = '\0';
	if (getpid() >= 100)
		stats_env(path, "kmem: warning: KMEM_STATS: /%p%p");
	stats_env("/dev/full",
	    "kmem: warning: KMEM_STATS: cannot write /dev/full (errno 28)");
	stats_env("full",
	    "kmem: warning: KMEM_STATS=1: no room for the exit function; no "
	    "statistics");
}

int
main(void)
{
	/* Children first: no kmem call in this process before them. */
	T_RUN(test_env_fails);
	T_RUN(test_names);
	T_RUN(test_maxima);
	return t_done();
}
