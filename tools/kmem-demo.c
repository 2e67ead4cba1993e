/*
 * kmem-demo.c -- the main job: a real workload on every layer (vmem, pool,
 * pool_cache and kmem_alloc), with their statistics printed.
 *
 * A simulated kernel process table, on the allocators a kernel would use:
 *   "pid"   vmem, quantum 1, static span [300, 99999]: process IDs handed
 *           out with VM_NEXTFIT, so a freed ID is not reused soon;
 *   "va"    vmem, quantum 4096, 1 TiB of pretend address space, with
 *           quantum caches up to 16 pages (the "va-*" pool caches);
 *   "dma"   vmem, quantum 4096, imports from "va" (importfn = vmem_alloc)
 *           and serves constrained allocations: 64 KiB aligned, never
 *           crossing 1 MiB, below 4 GiB, as a device driver would;
 *   "proc"  pool_cache of process structures, constructed once (the
 *           constructor builds the file table) and reused;
 *   "file"  pool of open-file records, a few per process;
 *   kmem    each process's name (kmem_asprintf), its zeroed credentials
 *           (kmem_zalloc) and its argument/environment area: 16 B to
 *           256 KiB, log-uniform, so every size class and the large path
 *           are used; freed with kmem_free(p, size) at exit, after
 *           checking the pattern written into it.
 * Processes fork and exit at random (lifetimes vary); at the end it prints
 * the vmem table, vmstat -m (pools) and vmstat -C (pool caches), a whatis
 * lookup, and a dump of the "dma" arena.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>

#define NPROC_MAX  2000
#define NRANGES	   4
#define NFILES	   4
#define PROC_MAGIC 0x70726f63u

struct file {
	unsigned f_flags;
	uint64_t f_offset;
	char f_path[48];
};

struct proc {
	unsigned p_magic; /* set by the constructor, checked at every use */
	vmem_addr_t pid;
	vmem_addr_t va[NRANGES];
	vmem_size_t vasz[NRANGES];
	vmem_addr_t dma;
	vmem_size_t dmasz;
	struct file *files[NFILES];
	unsigned nctor; /* times this object was constructed */
	char *name;	/* kmem_asprintf */
	struct cred *cred;
	unsigned char *args; /* argument area: argsz bytes of pattern */
	size_t argsz;
};

struct cred {
	unsigned uid, gid, ngroups;
	unsigned groups[16];
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static unsigned long nctor, ndtor;

static uint64_t
rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % n;
}

static void
pr(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

static int
proc_ctor(void *arg, void *obj, int flags)
{
	struct proc *p = obj;

	(void)arg;
	(void)flags;
	memset(p, 0, sizeof(*p));
	p->p_magic = PROC_MAGIC;
	p->nctor = 1;
	nctor++;
	return 0;
}

static void
proc_dtor(void *arg, void *obj)
{
	struct proc *p = obj;

	(void)arg;
	if (p->p_magic != PROC_MAGIC)
		abort();
	p->p_magic = 0;
	ndtor++;
}

static void
proc_exit(struct proc *p, vmem_t *pid, vmem_t *va, vmem_t *dma,
    struct pool *files, pool_cache_t procs)
{
	unsigned j;
	size_t k;

	for (k = 0; k < p->argsz; k += 512)
		if (p->args[k] != (unsigned char)(p->pid + k))
			abort();
	kmem_free(p->args, p->argsz);
	kmem_free(p->cred, sizeof(*p->cred));
	kmem_strfree(p->name);
	vmem_free(pid, p->pid, 1);
	for (j = 0; j < NRANGES; j++)
		vmem_free(va, p->va[j], p->vasz[j]);
	if (p->dmasz != 0)
		vmem_xfree(dma, p->dma, p->dmasz);
	for (j = 0; j < NFILES; j++) {
		if (p->files[j] != NULL)
			pool_put(files, p->files[j]);
		p->files[j] = NULL;
	}
	pool_cache_put(procs, p);
}

int
main(int argc, char **argv)
{
	static struct proc *procs[NPROC_MAX];
	unsigned long steps = argc > 1 ? strtoul(argv[1], NULL, 0) : 2000000;
	unsigned nproc = 0, i, j, forks = 0, exits = 0, pid_reuse_soon = 0;
	vmem_t *pid, *va, *dma;
	struct pool files;
	pool_cache_t proccache;
	struct timespec t0, t1;
	vmem_addr_t lastpid = 0;
	double secs;

	pid = vmem_create(
	    "pid", 300, 99700, 1, NULL, NULL, NULL, 0, VM_SLEEP, IPL_NONE);
	va = vmem_create("va", 0x10000000ull, 1ull << 40, 4096, NULL, NULL,
	    NULL, 16 * 4096, VM_SLEEP, IPL_VM);
	dma = vmem_create(
	    "dma", 0, 0, 4096, vmem_alloc, vmem_free, va, 0, VM_SLEEP, IPL_VM);
	if (pid == NULL || va == NULL || dma == NULL) {
		fprintf(stderr, "vmem_create: %s\n", strerror(errno));
		return 1;
	}
	/* DMA buffers come from 1 MiB imports, not one import per buffer. */
	kmem_vmem_set_min_import(dma, 1 << 20);
	pool_init(&files, sizeof(struct file), 0, 0, 0, "file", NULL, IPL_NONE);
	proccache = pool_cache_init(sizeof(struct proc), 64, 0, 0, "proc", NULL,
	    IPL_NONE, proc_ctor, proc_dtor, NULL);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned long s = 0; s < steps; s++) {
		if (nproc < NPROC_MAX && (nproc < 100 || rnd(2) == 0)) {
			struct proc *p = pool_cache_get(proccache, PR_WAITOK);

			if (p->p_magic != PROC_MAGIC)
				abort();
			procs[nproc++] = p;
			vmem_alloc(pid, 1, VM_SLEEP | VM_NEXTFIT, &p->pid);
			if (p->pid < lastpid && lastpid - p->pid < 1000)
				pid_reuse_soon++;
			lastpid = p->pid;
			for (j = 0; j < NRANGES; j++) {
				p->vasz[j] = (1 + rnd(64)) * 4096;
				vmem_alloc(va, p->vasz[j], VM_SLEEP, &p->va[j]);
			}
			p->dmasz = (1 + rnd(16)) * 4096;
			if (vmem_xalloc(dma, p->dmasz, 65536, 0, 1 << 20, 0,
				0xffffffffull, VM_NOSLEEP, &p->dma) != 0)
				p->dmasz = 0;
			for (j = 0; j < 1 + rnd(NFILES); j++)
				p->files[j] =
				    pool_get(&files, PR_WAITOK | PR_ZERO);
			p->name =
			    kmem_asprintf("proc%" PRIu64, (uint64_t)p->pid);
			p->cred = kmem_zalloc(sizeof(*p->cred), KM_SLEEP);
			p->cred->uid = (unsigned)rnd(1000);
			/* Log-uniform 16 B .. 256 KiB. */
			p->argsz = (size_t)16 << rnd(15);
			p->argsz += rnd(p->argsz);
			p->args = kmem_alloc(p->argsz, KM_SLEEP);
			for (size_t k = 0; k < p->argsz; k += 512)
				p->args[k] = (unsigned char)(p->pid + k);
			forks++;
		} else if (nproc > 0) {
			i = (unsigned)rnd(nproc);
			proc_exit(procs[i], pid, va, dma, &files, proccache);
			procs[i] = procs[--nproc];
			exits++;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

	printf("kmem-demo: %lu steps, %u forks, %u exits, %u live processes, "
	       "%.3f s (%.0f ns/step)\n",
	    steps, forks, exits, nproc, secs, secs * 1e9 / (double)steps);
	printf("pid reused within 1000 of the previous one: %u times "
	       "(VM_NEXTFIT rotor)\n",
	    pid_reuse_soon);
	printf("proc objects constructed %lu times for %u forks (pool_cache "
	       "keeps them constructed)\n\n",
	    nctor, forks);
	kmem_stats_print(pr, KMEM_STATS_ALL);
	if (nproc > 0) {
		printf("\nwhatis:\n");
		vmem_whatis(procs[0]->va[0] + 4096 - 1, pr);
		vmem_whatis(procs[0]->pid, pr);
	}
	for (i = 0; i < nproc; i++)
		proc_exit(procs[i], pid, va, dma, &files, proccache);
	kmem_reap_all();
	printf("\nafter every process exited and kmem_reap_all():\n");
	kmem_vmem_print_stats(pr);
	printf("\n");
	vmem_dump(dma, pr);
	pool_cache_destroy(proccache);
	printf("proc constructed %lu, destructed %lu\n", nctor, ndtor);
	pool_destroy(&files);
	vmem_destroy(dma);
	vmem_destroy(va);
	vmem_destroy(pid);
	return nctor == ndtor ? 0 : 1;
}
