/*
 * kmemstat -- run a command on kmem's malloc and print, vmstat-style,
 * what the allocator did for it; or print a running process's tables.
 *
 *   kmemstat [-m] [-C] [-V] [-j] [-a] [-o FILE] [--] COMMAND [ARGS...]
 *   kmemstat [-m] [-C] [-V] [-j] [-a] [-o FILE] [-d DIR] -p PID
 *            [-w SECONDS]
 *
 * 1. How.  The command runs with libkmem-malloc.so first in LD_PRELOAD
 *    and KMEM_STATS_LIVE=keep,ms=10,dir=DIR, DIR a fresh private
 *    directory: every process of the command that runs on kmem (the
 *    command itself, each program it executes, each child forked without
 *    exec) keeps its statistics page there (stats.c section 5): a
 *    snapshot at most 10 ms old taken on the slow paths, and an exact one
 *    at exit(3).  When the command has exited, kmemstat reads each page's
 *    newest complete snapshot, merges them row by row (pools and arenas
 *    by name, counters summed), removes the pages, prints the pool table
 *    (-m), the pool cache table (-C) and the arena table (-V) -- all
 *    three by default -- or one JSON document (-j), to standard error or
 *    FILE (-o), and exits with the command's status (128 + N for a
 *    command killed by signal N, as a shell reports it; 127 when it
 *    cannot be run).  -a shows rows never used too (vmstat -v).
 *
 * 2. What is counted.  A process that ends by _exit(2) or a signal, or
 *    that is still running, counts to its last snapshot (the header marks
 *    it "no exit"); a forked child counts its own work only (its page
 *    subtracts what it inherited).  Not counted: a static or setuid
 *    program (no preload), one that never allocated (kmem never started),
 *    and the few operations after a process's last slow path if it did
 *    not exit(3).  The header says which processes were counted.
 *
 * 3. Finding the library: $KMEMSTAT_LIBRARY, else libkmem-malloc.so next
 *    to this program (the build tree), else KMEMSTAT_INSTALLED_LIBRARY from
 *    it (an installed prefix: ../lib/libkmem-malloc.so, or the library
 *    directory the build installs to, ../lib/x86_64-linux-gnu/... in a
 *    Debian package; CMakeLists.txt sets it).
 *
 * 4. Data structures.  The merged rows are two arrays that grow by
 *    doubling (struct kmem_pool_stats, struct kmem_vmem_stats), in order
 *    of first appearance, with a field table saying which members merging
 *    sums.  A page is mapped read-only and checked (magic, version, the
 *    structure sizes, the regions inside the file) before anything in it
 *    is read; a snapshot is copied out under the page's seqlock
 *    (stats_live.h) and its names cut to their arrays.
 *
 * 5. -p PID: the page DIR/kmem-stats.PID (DIR: -d's, else
 *    $XDG_RUNTIME_DIR, then /dev/shm) of a process started with
 *    KMEM_STATS_LIVE=1, printed to standard output (or -o FILE) with a
 *    header giving the snapshot's number and age; with -w, again every
 *    SECONDS until the process exits (its last snapshot, then status 0),
 *    no longer maps its page (it executed another program: a line, the
 *    page removed, status 0) or SIGINT/SIGTERM (status 0).  No ptrace, no
 * signal, no thread in the process: it publishes, we read a file.  A page whose
 * process is gone (not in /proc, or a zombie), whose pid now names another
 *    process (its start time, /proc/PID/stat field 22, differs) or which
 *    the process no longer maps (it executed another program) is stale:
 *    reported and removed.
 *
 * 6. Failure policy.  Bad usage: a message and exit 2.  -p: every error
 *    (no such process, no page -- not on kmem, or not started with
 *    KMEM_STATS_LIVE --, a page we may not read, not a page, stale) is
 *    one line "kmemstat: ..." on standard error and exit 1.  Running a
 *    command: a file of DIR that is not a page is reported and skipped.
 *    SIGINT and SIGQUIT are ignored while the command runs (it gets them;
 *    kmemstat reports), as time(1) does.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/kmem_impl.h"
#include "internal/stats_live.h"

/* The command's processes publish at most every KMEMSTAT_MS. */
#define KMEMSTAT_MS 10

static const char *progname = "kmemstat";

static void
usage(void)
{
	fprintf(stderr,
	    "usage: %s [-m] [-C] [-V] [-j] [-a] [-o FILE] [--] COMMAND "
	    "[ARGS...]\n"
	    "       %s [-m] [-C] [-V] [-j] [-a] [-o FILE] [-d DIR] -p PID "
	    "[-w SECONDS]\n"
	    "  -m  the pool table (vmstat -m)\n"
	    "  -C  the pool cache table (vmstat -C)\n"
	    "  -V  the vmem arena table\n"
	    "      (all three when none is given)\n"
	    "  -j  one JSON document instead of tables\n"
	    "  -a  rows never used too (vmstat -v)\n"
	    "  -o FILE  write to FILE instead of standard error (-p: "
	    "output)\n"
	    "  -p PID   the running process PID (KMEM_STATS_LIVE=1)\n"
	    "  -w SECONDS  again every SECONDS until it exits or SIGINT\n"
	    "  -d DIR   its page is in DIR (KMEM_STATS_LIVE=dir=DIR)\n",
	    progname, progname);
	exit(2);
}

/* "kmemstat: MESSAGE" on stderr, then exit with status. */
static _Noreturn void
vquit(int status, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", progname);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	exit(status);
}

/* Bad usage or an internal failure: exit 2. */
static _Noreturn void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vquit(2, fmt, ap);
}

/* ---- merged rows ---- */

struct proc {
	long pid;
	long ppid; /* a child forked without exec: its parent; else 0 */
	char command[64];
	bool exited;	  /* by exit(3): its last snapshot is exact */
	uint32_t dropped; /* rows its page had no room for */
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

/* ---- statistics pages (stats.c section 5, stats_live.h) ---- */

/*
 * One process's page, mapped read-only, with the geometry page_open
 * checked: the file's owner can rewrite the header at any time (kmemstat
 * may run as root), so the rows are found by these copies, never by the
 * header again.
 */
struct page {
	struct kmem_live_hdr *h;
	size_t size;
	uint32_t maxpools, maxarenas;
	uint64_t regoff[2];
};

/*
 * Map path and check that it is a page of this build's layout.  0; or an
 * errno value (open, mmap: the caller says which file), or -1: not a
 * page (or another version).
 */
static int
page_open(const char *path, struct page *pg)
{
	struct kmem_live_hdr *h, hc;
	struct stat st;
	uint64_t reg;
	int fd, i;
	void *p;

	/*
	 * O_NONBLOCK: a FIFO planted under the name (anyone can, in
	 * /dev/shm) would make open wait for a writer; then refused, not a
	 * regular file.  No effect on a regular file's reads.
	 */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) <
	    0)
		return errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size < sizeof *h) {
		close(fd);
		return -1;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return errno;
	/* Checked on a copy: the file may change under the mapping. */
	memcpy(&hc, p, sizeof hc);
	h = &hc;
	reg = kmem_live_region_size(h->lh_maxpools, h->lh_maxarenas);
	if (memcmp(h->lh_magic, KMEM_LIVE_MAGIC, sizeof h->lh_magic) != 0 ||
	    h->lh_version != KMEM_LIVE_VERSION || h->lh_hdrsize != sizeof *h ||
	    h->lh_poolsize != sizeof(struct kmem_pool_stats) ||
	    h->lh_vmemsize != sizeof(struct kmem_vmem_stats) ||
	    h->lh_size != (uint64_t)st.st_size || h->lh_maxpools > 65536 ||
	    h->lh_maxarenas > 65536)
		goto bad;
	for (i = 0; i < 3; i++)
		if (h->lh_regoff[i] < sizeof *h || h->lh_regoff[i] % 8 != 0 ||
		    h->lh_regoff[i] > h->lh_size ||
		    h->lh_size - h->lh_regoff[i] < reg)
			goto bad;
	pg->h = p;
	pg->size = (size_t)st.st_size;
	pg->maxpools = h->lh_maxpools;
	pg->maxarenas = h->lh_maxarenas;
	pg->regoff[0] = h->lh_regoff[0];
	pg->regoff[1] = h->lh_regoff[1];
	return 0;
bad:
	munmap(p, (size_t)st.st_size);
	return -1;
}

static void
page_close(struct page *pg)
{
	munmap(pg->h, pg->size);
}

/* A snapshot's rows, copied out of a page. */
struct snap {
	uint64_t gen;	  /* 0: nothing published yet */
	uint64_t time_ns; /* CLOCK_MONOTONIC when taken */
	uint32_t npools, narenas, dropped;
	struct kmem_pool_stats *pools;
	struct kmem_vmem_stats *arenas;
};

/*
 * The newest complete snapshot of pg (the seqlock of stats_live.h: copy,
 * then check that the slot's sequence did not move).  False if none
 * could be read whole in a second (a writer stopped in the middle of the
 * one slot it alternates with -- not possible with two slots unless it
 * publishes faster than we copy).
 */
static bool
page_snapshot(const struct page *pg, struct snap *sn)
{
	struct kmem_live_hdr *h = pg->h;
	int tries;

	free(sn->pools);
	free(sn->arenas);
	sn->pools = calloc(pg->maxpools + 1, sizeof *sn->pools);
	sn->arenas = calloc(pg->maxarenas + 1, sizeof *sn->arenas);
	if (sn->pools == NULL || sn->arenas == NULL)
		die("out of memory");
	for (tries = 0; tries < 1000; tries++) {
		uint64_t gen =
		    atomic_load_explicit(&h->lh_gen, memory_order_acquire);
		struct kmem_live_slot *s;
		uint64_t seq;

		sn->gen = gen;
		sn->npools = sn->narenas = sn->dropped = 0;
		sn->time_ns = 0;
		if (gen == 0)
			return true;
		s = (struct kmem_live_slot *)(void *)((char *)h +
		    pg->regoff[(gen - 1) & 1]);
		seq = atomic_load_explicit(&s->ls_seq, memory_order_acquire);
		if ((seq & 1) == 0) {
			sn->npools = s->ls_npools < pg->maxpools ? s->ls_npools
								 : pg->maxpools;
			sn->narenas = s->ls_narenas < pg->maxarenas
			    ? s->ls_narenas
			    : pg->maxarenas;
			sn->dropped = s->ls_dropped;
			sn->time_ns = s->ls_time_ns;
			memcpy(sn->pools, kmem_live_pools(s),
			    sn->npools * sizeof *sn->pools);
			memcpy(sn->arenas, kmem_live_pools(s) + pg->maxpools,
			    sn->narenas * sizeof *sn->arenas);
			atomic_thread_fence(memory_order_acquire);
			if (atomic_load_explicit(
				&s->ls_seq, memory_order_relaxed) == seq)
				return true;
		}
		usleep(1000);
	}
	return false;
}

/* Merge sn's rows into the tables (names made safe first). */
static void
merge_snap(const struct snap *sn)
{
	uint32_t i;

	for (i = 0; i < sn->npools; i++) {
		sn->pools[i].ps_name[sizeof sn->pools[i].ps_name - 1] = '\0';
		sn->pools[i].ps_size = sizeof sn->pools[i];
		merge_pool(&sn->pools[i]);
	}
	for (i = 0; i < sn->narenas; i++) {
		sn->arenas[i].vs_name[sizeof sn->arenas[i].vs_name - 1] = '\0';
		sn->arenas[i].vs_size = sizeof sn->arenas[i];
		merge_arena(&sn->arenas[i]);
	}
}

static void
add_proc(struct kmem_live_hdr *h, const struct snap *sn)
{
	struct proc *pr;

	if (nprocs == procs_cap)
		procs = grow(procs, &procs_cap, sizeof *procs);
	pr = &procs[nprocs++];
	memset(pr, 0, sizeof *pr);
	pr->pid = (long)h->lh_pid;
	pr->ppid = (h->lh_flags & KMEM_LIVE_FORKED) ? (long)h->lh_ppid : 0;
	memcpy(pr->command, h->lh_command, sizeof pr->command);
	pr->command[sizeof pr->command - 1] = '\0';
	pr->exited = atomic_load_explicit(&h->lh_state, memory_order_acquire) ==
	    KMEM_LIVE_EXITED;
	pr->dropped = sn->dropped;
}

/*
 * Read, merge and remove every page of dir (the command's processes,
 * KMEM_STATS_LIVE=keep), then dir itself.
 */
static void
collect(const char *dir)
{
	struct snap sn = {0};
	struct dirent *e;
	DIR *d = opendir(dir);
	char path[PATH_MAX + 256];

	if (d == NULL)
		die("%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		struct page pg;
		int err;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if ((err = page_open(path, &pg)) != 0) {
			fprintf(stderr, "%s: %s: %s; skipped\n", progname,
			    e->d_name,
			    err < 0 ? "not a kmem statistics page"
				    : strerror(err));
		} else {
			if (page_snapshot(&pg, &sn)) {
				merge_snap(&sn);
				add_proc(pg.h, &sn);
			} else {
				fprintf(stderr,
				    "%s: %s: no whole snapshot; skipped\n",
				    progname, e->d_name);
			}
			page_close(&pg);
		}
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
	free(sn.pools);
	free(sn.arenas);
}

/* ---- kmemstat -p: a running process ---- */

/*
 * What /proc says of pid: 1 running (its start time in *start, 0 if
 * unknown), 0 gone or a zombie, -1 cannot tell.
 */
static int
proc_alive(long pid, uint64_t *start)
{
	char path[64], buf[1024], *p;
	int fd, field;
	ssize_t n;

	*start = 0;
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT || errno == ESRCH ? 0 : -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return n == 0 || errno == ESRCH ? 0 : -1;
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
		return -1;
	if (p[2] == 'Z' || p[2] == 'X')
		return 0;
	for (field = 2; field < 22 && *p != '\0'; p++)
		if (*p == ' ')
			field++;
	if (field == 22)
		*start = strtoull(p, NULL, 10);
	return 1;
}

/*
 * Whether pid maps the file st describes (by device and inode, not by
 * name: a directory reached through a link has another name there): 1
 * yes, 0 no (it executed another program, or unloaded the library), -1
 * cannot tell (/proc/PID/maps unreadable).
 */
static int
proc_maps(long pid, const struct stat *st)
{
	char mp[64], *line = NULL;
	size_t cap = 0;
	int found = 0;
	FILE *f;

	snprintf(mp, sizeof mp, "/proc/%ld/maps", pid);
	if ((f = fopen(mp, "re")) == NULL)
		return -1;
	while (!found && getline(&line, &cap, f) > 0) {
		unsigned int maj, min;
		unsigned long long ino;

		if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &ino) ==
			3 &&
		    ino == (unsigned long long)st->st_ino &&
		    makedev(maj, min) == st->st_dev)
			found = 1;
	}
	free(line);
	fclose(f);
	return found;
}

/* The directories a page may be in: -d's, $XDG_RUNTIME_DIR, /dev/shm. */
static int
live_dirs(const char *opt, const char *dirs[3])
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	int n = 0;

	if (opt != NULL)
		dirs[n++] = opt;
	else {
		if (x != NULL && x[0] == '/')
			dirs[n++] = x;
		dirs[n++] = "/dev/shm";
	}
	return n;
}

/* A one-line error and exit 1 (section 6). */
static _Noreturn void
fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vquit(1, fmt, ap);
}

static volatile sig_atomic_t interrupted;

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* One refresh: the header line and the tables of sn to fd. */
static void
print_live(int fd, unsigned int what, struct kmem_live_hdr *h,
    const struct snap *sn, const char *note)
{
	char *head = NULL, jhead[256];
	size_t headlen;
	struct timespec now;
	FILE *hf;
	int err;

	npools = narenas = 0;
	merge_snap(sn);
	clock_gettime(CLOCK_MONOTONIC, &now);
	if ((hf = open_memstream(&head, &headlen)) == NULL)
		die("out of memory");
	if (what & KMEM_STATS_JSON) {
		snprintf(jhead, sizeof jhead,
		    "\"kmemstat\":{\"pid\":%ld,\"snapshot\":%llu,"
		    "\"exited\":%s}",
		    (long)h->lh_pid, (unsigned long long)sn->gen,
		    note != NULL ? "true" : "false");
	} else if (sn->gen == 0) {
		fprintf(hf,
		    "kmemstat: pid %ld (%.63s): nothing published yet (the "
		    "page is filled on the allocator's slow paths)\n\n",
		    (long)h->lh_pid, h->lh_command);
	} else {
		uint64_t t =
		    (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
		uint64_t age = t > sn->time_ns ? t - sn->time_ns : 0;

		fprintf(hf,
		    "kmemstat: pid %ld (%.63s): snapshot %llu, taken %.3f s "
		    "ago%s\n",
		    (long)h->lh_pid, h->lh_command, (unsigned long long)sn->gen,
		    (double)age / 1e9, note != NULL ? note : "");
		if (sn->dropped != 0)
			fprintf(hf,
			    "kmemstat: %u rows did not fit in the page\n",
			    sn->dropped);
		fputc('\n', hf);
	}
	fclose(hf);
	if (headlen != 0 && write(fd, head, headlen) != (ssize_t)headlen)
		die("write: %s", strerror(errno));
	free(head);
	err = kmemi_stats_write_rows(fd, what, pools, npools, arenas, narenas,
	    (what & KMEM_STATS_JSON) ? jhead : NULL);
	if (err != 0)
		die("write: %s", strerror(err));
}

/*
 * kmemstat -p PID [-w SECONDS]: the page of a running process, checked
 * (the pid alive, the same process -- start time -- and still mapping
 * it), printed; with -w again every SECONDS until it exits or SIGINT.
 * A stale page is removed.  Errors: one line, exit 1.
 */
static int
watch(long pid, double every, const char *dir, int fd, unsigned int what)
{
	const char *dirs[3];
	char path[PATH_MAX];
	struct snap sn = {0};
	struct page pg;
	struct stat fst;
	uint64_t start;
	int nd = live_dirs(dir, dirs), i, err = ENOENT, alive;
	bool first = true, fst_ok;

	for (i = 0; i < nd && err == ENOENT; i++) {
		snprintf(path, sizeof path, "%s/" KMEM_LIVE_PREFIX "%ld",
		    dirs[i], pid);
		err = page_open(path, &pg);
	}
	alive = proc_alive(pid, &start);
	if (err == ENOENT) {
		if (alive == 0)
			fail("pid %ld: no such process", pid);
		fail("pid %ld: no statistics page: not on kmem, or not "
		     "started with KMEM_STATS_LIVE=1 (kmemstat(1))",
		    pid);
	}
	if (err > 0)
		fail("pid %ld: %s: %s", pid, path, strerror(err));
	if (err < 0)
		fail("pid %ld: %s: not a kmem statistics page (or another "
		     "version's)",
		    pid, path);
	if (pg.h->lh_pid != pid)
		fail("pid %ld: %s: the page of pid %lld", pid, path,
		    (long long)pg.h->lh_pid);
	if (alive == 0 &&
	    atomic_load_explicit(&pg.h->lh_state, memory_order_acquire) !=
		KMEM_LIVE_EXITED) {
		unlink(path);
		fail("pid %ld is not running: removed its stale statistics "
		     "page %s",
		    pid, path);
	}
	if (alive == 1 && pg.h->lh_starttime != 0 && start != 0 &&
	    start != pg.h->lh_starttime) {
		unlink(path);
		fail("pid %ld is not the process that wrote %s (pid reused): "
		     "removed the stale page",
		    pid, path);
	}
	if (alive == 1 && stat(path, &fst) == 0 && proc_maps(pid, &fst) == 0) {
		unlink(path);
		fail("pid %ld no longer maps %s (it executed another program): "
		     "removed the stale page",
		    pid, path);
	}
	/* The page's identity, for the loop's "still maps it" check. */
	fst_ok = lstat(path, &fst) == 0;
	if (every > 0) {
		struct sigaction sa;

		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal; /* no SA_RESTART: wakes the sleep */
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	for (;;) {
		bool exited = atomic_load_explicit(&pg.h->lh_state,
				  memory_order_acquire) == KMEM_LIVE_EXITED;
		struct timespec ts;

		if (!page_snapshot(&pg, &sn))
			fail("pid %ld: %s: no whole snapshot in a second", pid,
			    path);
		if (!first && !(what & KMEM_STATS_JSON) &&
		    write(fd, "\n", 1) != 1)
			die("write: %s", strerror(errno));
		print_live(fd, what, pg.h, &sn,
		    exited ? "; the process has exited (its last)" : NULL);
		first = false;
		if (exited || every <= 0)
			break;
		ts.tv_sec = (time_t)every;
		ts.tv_nsec = (long)((every - (double)ts.tv_sec) * 1e9);
		while (
		    !interrupted && nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		if (interrupted)
			break;
		if (fst_ok && proc_alive(pid, &start) == 1 &&
		    proc_maps(pid, &fst) == 0 &&
		    atomic_load_explicit(&pg.h->lh_state,
			memory_order_acquire) != KMEM_LIVE_EXITED) {
			/* Not a page that will ever move again. */
			unlink(path);
			fprintf(stderr,
			    "%s: pid %ld executed another program; its last "
			    "snapshot is above (removed its page %s)\n",
			    progname, pid, path);
			break;
		}
		if (proc_alive(pid, &start) == 0 &&
		    atomic_load_explicit(&pg.h->lh_state,
			memory_order_acquire) != KMEM_LIVE_EXITED) {
			fprintf(stderr,
			    "%s: pid %ld ended without exit(3) (a signal or "
			    "_exit); its last snapshot is above\n",
			    progname, pid);
			break;
		}
	}
	page_close(&pg);
	free(sn.pools);
	free(sn.arenas);
	return 0;
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
	char *preload, live[PATH_MAX + 32];
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
	/* Every process's page in dir, kept at exit for collect(). */
	snprintf(live, sizeof live, "keep,ms=%u,dir=%s", KMEMSTAT_MS, dir);
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
		    setenv("KMEM_STATS_LIVE", live, 1) != 0) {
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
			fprintf(f, "%s%s (%ld%s%s)", i ? ", " : "",
			    procs[i].command, procs[i].pid,
			    procs[i].ppid != 0 ? ", forked" : "",
			    procs[i].exited ? "" : ", no exit");
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
	const char *pdir = NULL;
	long pid = 0;
	double every = 0;
	char *end;

	while ((c = getopt(argc, argv, "+mCVjao:p:w:d:h")) != -1) {
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
		case 'p':
			errno = 0;
			pid = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || pid <= 0)
				die("-p %s: not a process id", optarg);
			break;
		case 'w':
			every = strtod(optarg, &end);
			if (*end != '\0' || !(every > 0) || every > 1e6)
				die("-w %s: not a number of seconds", optarg);
			break;
		case 'd':
			pdir = optarg;
			break;
		default:
			usage();
		}
	}
	if ((what & KMEM_STATS_ALL) == 0)
		what |= KMEM_STATS_ALL;
	if (pid != 0) {
		if (optind < argc)
			usage();
		if (out != NULL) {
			fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			    0644);
			if (fd < 0)
				fail("%s: %s", out, strerror(errno));
		} else {
			fd = STDOUT_FILENO;
		}
		return watch(pid, every, pdir, fd, what);
	}
	if (optind >= argc || every > 0 || pdir != NULL)
		usage();
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
		    "%s: %s: no process ran on kmem (one that never called "
		    "malloc, or a static or setuid program, does not)\n",
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
		fputs(nprocs > 1 ? "; their counts are summed" : "", hf);
		for (i = 0; i < nprocs && procs[i].exited; i++)
			;
		if (i < nprocs)
			fprintf(hf,
			    "\nkmemstat: \"no exit\": ended by _exit(2), a "
			    "signal or exec, or still running; counted to "
			    "its last snapshot (taken on the slow paths, at "
			    "most %d ms apart)",
			    KMEMSTAT_MS);
		fprintf(hf,
		    "\nkmemstat: %lu gets and puts of kmem's size classes, "
		    "%.1f%% of them served by the per-CPU layer\n\n",
		    ops, ops ? 100.0 * (double)hits / (double)ops : 0.0);
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
