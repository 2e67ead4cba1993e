/*
 * kmemstat -- run a command on kmem's malloc and print, vmstat-style,
 * what the allocator did for it.
 *
 *   kmemstat [-m] [-C] [-V] [-j] [-a] [-o FILE] [--] COMMAND [ARGS...]
 *
 * 1. How.  The command runs with libkmem-malloc.so first in LD_PRELOAD
 *    and KMEM_STATS=json:DIR/%p.json, DIR a fresh private directory: every
 *    process of the command that runs on kmem (the command itself, and
 *    each program it executes) writes its statistics there when it exits
 *    (stats.c: the file names its pid and command).  When the command has
 *    exited, kmemstat reads the files, merges them row by row (pools and
 *    arenas by name, counters summed), prints the pool table (-m), the
 *    pool cache table (-C) and the arena table (-V) -- all three by
 *    default -- or one JSON document (-j), to standard error or FILE
 *    (-o), and exits with the command's status (128 + N for a command
 *    killed by signal N, as a shell reports it; 127 when it cannot be
 *    run).  -a shows rows never used too (vmstat -v).
 *
 * 2. What is not counted.  A process that leaves by _exit(2) or a signal
 *    writes nothing (no exit functions run); nor does a static or setuid
 *    program (no preload), nor a child that forked without executing a
 *    program (stats.c: only the process that read KMEM_STATS writes, so
 *    that the parent's counts are not counted twice).  The header says how
 *    many processes were counted.
 *
 * 3. Finding the library: $KMEMSTAT_LIBRARY, else libkmem-malloc.so next
 *    to this program (the build tree), else KMEMSTAT_INSTALLED_LIBRARY from
 *    it (an installed prefix: ../lib/libkmem-malloc.so, or the library
 *    directory the build installs to, ../lib/x86_64-linux-gnu/... in a
 *    Debian package; CMakeLists.txt sets it).
 *
 * 4. Data structures.  The merged rows are two arrays that grow by
 *    doubling (struct kmem_pool_stats, struct kmem_vmem_stats), in order
 *    of first appearance; the JSON reader is a small recursive-descent
 *    parser of the subset the library writes (objects, arrays, strings,
 *    non-negative integers, true/false/null), with a field table saying
 *    where each member goes and whether merging sums it.
 *
 * 5. Failure policy.  Bad usage: a message and exit 2.  A statistics file
 *    that does not parse is reported and skipped.  SIGINT and SIGQUIT are
 *    ignored while the command runs (it gets them; kmemstat reports), as
 *    time(1) does.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/kmem_impl.h"

static const char *progname = "kmemstat";

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s [-m] [-C] [-V] [-j] [-a] [-o FILE] [--] COMMAND "
	    "[ARGS...]\n"
	    "  -m  the pool table (vmstat -m)\n"
	    "  -C  the pool cache table (vmstat -C)\n"
	    "  -V  the vmem arena table\n"
	    "      (all three when none is given)\n"
	    "  -j  one JSON document instead of tables\n"
	    "  -a  rows never used too (vmstat -v)\n"
	    "  -o FILE  write to FILE instead of standard error\n",
	    progname);
	exit(2);
}

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* ---- merged rows ---- */

struct proc {
	long pid;
	char command[64];
};

static struct kmem_pool_stats *pools;
static size_t npools, pools_cap;
static struct kmem_vmem_stats *arenas;
static size_t narenas, arenas_cap;
static struct proc *procs;
static size_t nprocs, procs_cap;

static void *
grow(void *v, size_t *cap, size_t elem)
{
	size_t n = *cap ? *cap * 2 : 32;
	void *p = realloc(v, n * elem);

	if (p == NULL)
		die("out of memory");
	*cap = n;
	return p;
}

/* How a JSON member maps onto a snapshot field. */
enum { F_UINT, F_ULONG, F_SIZE, F_U64, F_BOOL };

struct field {
	const char *name;
	size_t off;
	int type;
	bool sum; /* merged by adding; else the first process's value */
};

#define PF(n, t, s)                                                            \
	{                                                                      \
#n, offsetof(struct kmem_pool_stats, ps_##n), t, s             \
	}
static const struct field pool_fields[] = {
    PF(itemsize, F_SIZE, false),
    PF(pagesize, F_UINT, false),
    PF(itemsperpage, F_UINT, false),
    PF(nget, F_ULONG, true),
    PF(nfail, F_ULONG, true),
    PF(nput, F_ULONG, true),
    PF(nout, F_UINT, true),
    PF(nitems, F_UINT, true),
    PF(npagealloc, F_ULONG, true),
    PF(npagefree, F_ULONG, true),
    PF(npages, F_UINT, true),
    PF(hiwat, F_UINT, true),
    PF(minpages, F_UINT, false),
    PF(maxpages, F_UINT, false),
    PF(nidle, F_UINT, true),
    PF(flags, F_UINT, false),
    PF(cached, F_BOOL, false),
    PF(groupsize, F_UINT, false),
    PF(nfull, F_ULONG, true),
    PF(nempty, F_ULONG, true),
    PF(cpuhit, F_ULONG, true),
    PF(cpumiss, F_ULONG, true),
    PF(depothit, F_ULONG, true),
    PF(depotmiss, F_ULONG, true),
    PF(contended, F_ULONG, true),
    PF(cached_objects, F_ULONG, true),
    {NULL, 0, 0, false},
};
#define VF(n, t, s)                                                            \
	{                                                                      \
#n, offsetof(struct kmem_vmem_stats, vs_##n), t, s             \
	}
static const struct field vmem_fields[] = {
    VF(quantum, F_SIZE, false),
    VF(inuse, F_SIZE, true),
    VF(imported, F_SIZE, true),
    VF(total, F_SIZE, true),
    VF(alloc, F_U64, true),
    VF(free, F_U64, true),
    VF(fail, F_U64, true),
    VF(wait, F_U64, true),
    VF(import, F_U64, true),
    VF(release, F_U64, true),
    VF(nbusy, F_U64, true),
    VF(nfree, F_U64, true),
    VF(hashsize, F_U64, true),
    {NULL, 0, 0, false},
};

static void
field_set(void *row, const struct field *f, uint64_t v)
{
	char *p = (char *)row + f->off;

	switch (f->type) {
	case F_UINT:
		*(unsigned int *)(void *)p = (unsigned int)v;
		break;
	case F_ULONG:
		*(unsigned long *)(void *)p = (unsigned long)v;
		break;
	case F_SIZE:
		*(size_t *)(void *)p = (size_t)v;
		break;
	case F_U64:
		*(uint64_t *)(void *)p = v;
		break;
	default:
		*(bool *)(void *)p = v != 0;
		break;
	}
}

static uint64_t
field_get(const void *row, const struct field *f)
{
	const char *p = (const char *)row + f->off;

	switch (f->type) {
	case F_UINT:
		return *(const unsigned int *)(const void *)p;
	case F_ULONG:
		return *(const unsigned long *)(const void *)p;
	case F_SIZE:
		return *(const size_t *)(const void *)p;
	case F_U64:
		return *(const uint64_t *)(const void *)p;
	default:
		return *(const bool *)(const void *)p;
	}
}

/* Add row (one process's) into the merged row of the same name. */
static void
merge_row(void *dst, const void *src, const struct field *fields)
{
	const struct field *f;

	for (f = fields; f->name != NULL; f++)
		if (f->sum)
			field_set(
			    dst, f, field_get(dst, f) + field_get(src, f));
}

static void
merge_pool(const struct kmem_pool_stats *st)
{
	size_t i;

	for (i = 0; i < npools; i++)
		if (strcmp(pools[i].ps_name, st->ps_name) == 0) {
			merge_row(&pools[i], st, pool_fields);
			return;
		}
	if (npools == pools_cap)
		pools = grow(pools, &pools_cap, sizeof *pools);
	pools[npools++] = *st;
}

static void
merge_arena(const struct kmem_vmem_stats *st)
{
	size_t i;

	for (i = 0; i < narenas; i++)
		if (strcmp(arenas[i].vs_name, st->vs_name) == 0) {
			merge_row(&arenas[i], st, vmem_fields);
			return;
		}
	if (narenas == arenas_cap)
		arenas = grow(arenas, &arenas_cap, sizeof *arenas);
	arenas[narenas++] = *st;
}

/* ---- the JSON reader (the subset stats.c writes) ---- */

struct jp {
	const char *s;
	bool err;
};

static void
j_ws(struct jp *j)
{
	while (*j->s == ' ' || *j->s == '\n' || *j->s == '\t' || *j->s == '\r')
		j->s++;
}

static bool
j_eat(struct jp *j, char c)
{
	j_ws(j);
	if (*j->s != c)
		return false;
	j->s++;
	return true;
}

/* A string into buf (cut at n - 1 bytes; \u escapes other than ASCII: ?). */
static void
j_string(struct jp *j, char *buf, size_t n)
{
	size_t len = 0;

	if (!j_eat(j, '"')) {
		j->err = true;
		return;
	}
	while (*j->s != '"') {
		char c = *j->s++;

		if (c == '\0') {
			j->err = true;
			return;
		}
		if (c == '\\') {
			c = *j->s++;
			if (c == 'u') {
				unsigned int u = 0, k;

				for (k = 0; k < 4 && j->s[k] != '\0'; k++)
					u = u * 16 +
					    (unsigned int)(j->s[k] <= '9'
						    ? j->s[k] - '0'
						    : (j->s[k] | 0x20) - 'a' +
							10);
				j->s += k;
				c = u < 0x80 ? (char)u : '?';
			} else if (c == 'n') {
				c = '\n';
			} else if (c == 't') {
				c = '\t';
			} else if (c == 'r') {
				c = '\r';
			} else if (c == '\0') {
				j->err = true;
				return;
			}
		}
		if (len + 1 < n)
			buf[len++] = c;
	}
	j->s++;
	buf[len] = '\0';
}

static void j_skip(struct jp *j, int depth);

/* A value that is a number, true, false or null: its value (0 if null). */
static uint64_t
j_scalar(struct jp *j)
{
	uint64_t v = 0;

	j_ws(j);
	if (strncmp(j->s, "true", 4) == 0) {
		j->s += 4;
		return 1;
	}
	if (strncmp(j->s, "false", 5) == 0 || strncmp(j->s, "null", 4) == 0) {
		j->s += *j->s == 'f' ? 5 : 4;
		return 0;
	}
	if (*j->s < '0' || *j->s > '9') {
		j->err = true;
		return 0;
	}
	while (*j->s >= '0' && *j->s <= '9')
		v = v * 10 + (uint64_t)(*j->s++ - '0');
	return v;
}

static void
j_skip(struct jp *j, int depth)
{
	char buf[8];

	j_ws(j);
	if (depth > 32) {
		j->err = true;
		return;
	}
	if (*j->s == '"') {
		j_string(j, buf, sizeof buf);
	} else if (*j->s == '{' || *j->s == '[') {
		char close = *j->s == '{' ? '}' : ']';

		j->s++;
		if (j_eat(j, close))
			return;
		do {
			if (close == '}') {
				j_string(j, buf, sizeof buf);
				if (!j_eat(j, ':'))
					j->err = true;
			}
			j_skip(j, depth + 1);
		} while (!j->err && j_eat(j, ','));
		if (!j_eat(j, close))
			j->err = true;
	} else {
		(void)j_scalar(j);
	}
}

/*
 * A flat object into row: "name" into name (n bytes), members of
 * "fields" set, anything else skipped.
 */
static void
j_row(struct jp *j, void *row, char *name, size_t n, const struct field *fields)
{
	char key[64];

	if (!j_eat(j, '{')) {
		j->err = true;
		return;
	}
	if (j_eat(j, '}'))
		return;
	do {
		const struct field *f;

		j_string(j, key, sizeof key);
		if (j->err || !j_eat(j, ':')) {
			j->err = true;
			return;
		}
		if (strcmp(key, "name") == 0 || strcmp(key, "command") == 0) {
			j_string(j, name, n);
			continue;
		}
		for (f = fields; f != NULL && f->name != NULL; f++)
			if (strcmp(f->name, key) == 0)
				break;
		if (f != NULL && f->name != NULL)
			field_set(row, f, j_scalar(j));
		else
			j_skip(j, 1);
	} while (!j->err && j_eat(j, ','));
	if (!j_eat(j, '}'))
		j->err = true;
}

static const struct field proc_fields[] = {
    {"pid", offsetof(struct proc, pid), F_U64, false},
    {NULL, 0, 0, false},
};

/* One process's file: its rows merged in.  False if it does not parse. */
static bool
read_stats(const char *text)
{
	struct jp j = {text, false};
	char key[32];
	struct proc pr = {0, "?"};

	_Static_assert(sizeof(long) == sizeof(uint64_t), "pid as F_U64");
	if (!j_eat(&j, '{'))
		return false;
	do {
		j_string(&j, key, sizeof key);
		if (j.err || !j_eat(&j, ':'))
			return false;
		if (strcmp(key, "process") == 0) {
			j_row(&j, &pr, pr.command, sizeof pr.command,
			    proc_fields);
		} else if (strcmp(key, "pools") == 0 ||
		    strcmp(key, "arenas") == 0) {
			bool isp = key[0] == 'p';

			if (!j_eat(&j, '['))
				return false;
			if (j_eat(&j, ']'))
				continue;
			do {
				struct kmem_pool_stats ps;
				struct kmem_vmem_stats vs;

				memset(&ps, 0, sizeof ps);
				memset(&vs, 0, sizeof vs);
				if (isp) {
					j_row(&j, &ps, ps.ps_name,
					    sizeof ps.ps_name, pool_fields);
					ps.ps_size = sizeof ps;
					if (!j.err)
						merge_pool(&ps);
				} else {
					j_row(&j, &vs, vs.vs_name,
					    sizeof vs.vs_name, vmem_fields);
					vs.vs_size = sizeof vs;
					if (!j.err)
						merge_arena(&vs);
				}
			} while (!j.err && j_eat(&j, ','));
			if (!j_eat(&j, ']'))
				return false;
		} else {
			j_skip(&j, 1);
		}
	} while (!j.err && j_eat(&j, ','));
	if (j.err || !j_eat(&j, '}'))
		return false;
	if (nprocs == procs_cap)
		procs = grow(procs, &procs_cap, sizeof *procs);
	procs[nprocs++] = pr;
	return true;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t len = 0, cap = 65536, r;
	char *buf;

	if (f == NULL)
		return NULL;
	if ((buf = malloc(cap)) == NULL)
		die("out of memory");
	while ((r = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += r;
		if (len + 1 == cap && (buf = realloc(buf, cap *= 2)) == NULL)
			die("out of memory");
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* Read, merge and remove every file of dir, then dir itself. */
static void
collect(const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(dir);
	char path[PATH_MAX + 256];

	if (d == NULL)
		die("%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		char *text;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if ((text = slurp(path)) == NULL) {
			fprintf(stderr, "%s: %s: %s\n", progname, path,
			    strerror(errno));
		} else {
			/* A process killed while writing leaves half a file. */
			if (!read_stats(text))
				fprintf(stderr,
				    "%s: %s: not a statistics file; "
				    "skipped\n",
				    progname, e->d_name);
			free(text);
		}
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* ---- running the command ---- */

static int
cmp_proc(const void *a, const void *b)
{
	const struct proc *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

#ifndef KMEMSTAT_INSTALLED_LIBRARY
#define KMEMSTAT_INSTALLED_LIBRARY "../lib/libkmem-malloc.so"
#endif

/* libkmem-malloc.so, by section 3's rule; NULL if none exists. */
static char *
find_library(void)
{
	static const char *rel[] = {
	    "libkmem-malloc.so", KMEMSTAT_INSTALLED_LIBRARY};
	const char *env = getenv("KMEMSTAT_LIBRARY");
	char self[PATH_MAX], *slash, *path;
	ssize_t n;
	size_t i;

	if (env != NULL && env[0] != '\0')
		return realpath(env, NULL);
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return NULL;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		return NULL;
	slash[1] = '\0';
	for (i = 0; i < sizeof rel / sizeof rel[0]; i++) {
		char cand[PATH_MAX + sizeof KMEMSTAT_INSTALLED_LIBRARY];

		snprintf(cand, sizeof cand, "%s%s", self, rel[i]);
		if ((path = realpath(cand, NULL)) != NULL)
			return path;
	}
	return NULL;
}

/* Run argv with the library preloaded; its wait status. */
static int
run(char **argv, const char *lib, const char *dir)
{
	struct sigaction ign, oldint, oldquit;
	const char *old = getenv("LD_PRELOAD");
	char *preload, stats[PATH_MAX + 32];
	int status;
	pid_t pid;

	/* Ours first, so that its malloc is the one every library binds. */
	if (old != NULL && old[0] != '\0') {
		preload = malloc(strlen(lib) + strlen(old) + 2);
		if (preload == NULL)
			die("out of memory");
		sprintf(preload, "%s:%s", lib, old);
	} else {
		preload = strdup(lib);
	}
	snprintf(stats, sizeof stats, "json:%s/%%p.json", dir);
	memset(&ign, 0, sizeof ign);
	ign.sa_handler = SIG_IGN;
	sigaction(SIGINT, &ign, &oldint);
	sigaction(SIGQUIT, &ign, &oldquit);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		sigaction(SIGINT, &oldint, NULL);
		sigaction(SIGQUIT, &oldquit, NULL);
		if (preload == NULL || setenv("LD_PRELOAD", preload, 1) != 0 ||
		    setenv("KMEM_STATS", stats, 1) != 0) {
			fprintf(stderr, "%s: setenv: %s\n", progname,
			    strerror(errno));
			_exit(127);
		}
		execvp(argv[0], argv);
		fprintf(
		    stderr, "%s: %s: %s\n", progname, argv[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	free(preload);
	while (waitpid(pid, &status, 0) != pid)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	sigaction(SIGINT, &oldint, NULL);
	sigaction(SIGQUIT, &oldquit, NULL);
	return status;
}

/* The processes counted, for the header line or the JSON. */
static void
print_procs(FILE *f, bool json)
{
	size_t i;

	qsort(procs, nprocs, sizeof *procs, cmp_proc);
	for (i = 0; i < nprocs; i++) {
		if (json) {
			const char *c;

			fprintf(f, "%s{\"pid\":%ld,\"command\":\"",
			    i ? "," : "", procs[i].pid);
			for (c = procs[i].command; *c != '\0'; c++)
				fprintf(f,
				    *c == '"' || *c == '\\'	   ? "\\%c"
					: (unsigned char)*c < 0x20 ? "?"
								   : "%c",
				    *c);
			fputs("\"}", f);
		} else {
			fprintf(f, "%s%s (%ld)", i ? ", " : "",
			    procs[i].command, procs[i].pid);
		}
	}
}

int
main(int argc, char **argv)
{
	unsigned int what = 0;
	const char *out = NULL;
	char dir[PATH_MAX], *lib, *head = NULL;
	int c, status, code, fd, err;
	const char *tmp = getenv("TMPDIR");
	size_t headlen;
	FILE *hf;

	while ((c = getopt(argc, argv, "+mCVjao:h")) != -1) {
		switch (c) {
		case 'm':
			what |= KMEM_STATS_POOLS;
			break;
		case 'C':
			what |= KMEM_STATS_CACHES;
			break;
		case 'V':
			what |= KMEM_STATS_VMEM;
			break;
		case 'j':
			what |= KMEM_STATS_JSON;
			break;
		case 'a':
			what |= KMEM_STATS_ALLROWS;
			break;
		case 'o':
			out = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc)
		usage();
	if ((what & KMEM_STATS_ALL) == 0)
		what |= KMEM_STATS_ALL;
	if ((lib = find_library()) == NULL)
		die("cannot find libkmem-malloc.so (next to %s, "
		    "at " KMEMSTAT_INSTALLED_LIBRARY " from it, or "
		    "$KMEMSTAT_LIBRARY)",
		    progname);
	snprintf(dir, sizeof dir, "%s/kmemstat.XXXXXX",
	    tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp %s: %s", dir, strerror(errno));

	status = run(argv + optind, lib, dir);
	code = WIFEXITED(status)  ? WEXITSTATUS(status)
	    : WIFSIGNALED(status) ? 128 + WTERMSIG(status)
				  : 1;
	collect(dir);
	free(lib);

	if (out != NULL) {
		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die("%s: %s", out, strerror(errno));
	} else {
		fd = STDERR_FILENO;
	}
	if (nprocs == 0) {
		fprintf(stderr,
		    "%s: %s: no process wrote statistics (one that never "
		    "called malloc, a static or setuid program, or one that "
		    "ended by _exit or a signal, does not)\n",
		    progname, argv[optind]);
		/* Empty tables say nothing; one JSON document is promised. */
		if (!(what & KMEM_STATS_JSON))
			return code;
	}
	/* The header: a line before the tables, members of the JSON. */
	if ((hf = open_memstream(&head, &headlen)) == NULL)
		die("out of memory");
	if (what & KMEM_STATS_JSON) {
		fprintf(hf, "\"kmemstat\":{\"exit\":%d,\"processes\":[", code);
		print_procs(hf, true);
		fputs("]}", hf);
	} else {
		unsigned long ops = 0, hits = 0;
		size_t i;

		/* What malloc and free did: the class caches' CPU layer. */
		for (i = 0; i < npools; i++)
			if (strncmp(pools[i].ps_name, "kmem-", 5) == 0) {
				ops += pools[i].ps_cpuhit + pools[i].ps_cpumiss;
				hits += pools[i].ps_cpuhit;
			}
		fprintf(hf,
		    "kmemstat: %s: %zu process%s on kmem: ", argv[optind],
		    nprocs, nprocs == 1 ? "" : "es");
		print_procs(hf, false);
		fprintf(hf,
		    "%s\nkmemstat: %lu gets and puts of kmem's size classes, "
		    "%.1f%% of them served by the per-CPU layer\n\n",
		    nprocs > 1 ? "; their counts are summed" : "", ops,
		    ops ? 100.0 * (double)hits / (double)ops : 0.0);
	}
	fclose(hf);
	if (!(what & KMEM_STATS_JSON) &&
	    write(fd, head, headlen) != (ssize_t)headlen)
		die("write: %s", strerror(errno));
	err = kmemi_stats_write_rows(fd, what, pools, npools, arenas, narenas,
	    (what & KMEM_STATS_JSON) ? head : NULL);
	if (err != 0)
		die("write %s: %s", out != NULL ? out : "stderr",
		    strerror(err));
	if (out != NULL && close(fd) != 0)
		die("%s: %s", out, strerror(errno));
	free(head);
	return code;
}
