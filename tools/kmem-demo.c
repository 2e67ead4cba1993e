/*
 * kmem-demo.c -- the main job until the kmem front end exists: a real
 * workload on vmem, with its statistics printed.
 *
 * Three arenas as a kernel would stack them:
 *   "pid"   quantum 1, static span [300, 99999]: process IDs handed out
 *           with VM_NEXTFIT, so a freed ID is not reused soon;
 *   "va"    quantum 4096, a static span of 1 TiB of pretend address space;
 *   "dma"   quantum 4096, imports from "va" (importfn = vmem_alloc), and
 *           serves constrained allocations: 64 KiB aligned, never crossing
 *           a 1 MiB boundary, below 4 GiB, the way a device driver would.
 * A simulated process table forks and reaps processes (random lifetimes),
 * each holding a few address ranges and one DMA buffer.  At the end it
 * prints the arena table, a whatis lookup and a dump of the "dma" arena.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kmem/vmem.h>

#define NPROC_MAX 2000
#define NRANGES	  4

struct proc {
	vmem_addr_t pid;
	vmem_addr_t va[NRANGES];
	vmem_size_t vasz[NRANGES];
	vmem_addr_t dma;
	vmem_size_t dmasz;
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

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

int
main(int argc, char **argv)
{
	static struct proc procs[NPROC_MAX];
	unsigned long steps = argc > 1 ? strtoul(argv[1], NULL, 0) : 2000000;
	unsigned nproc = 0, i, j, forks = 0, exits = 0;
	vmem_t *pid, *va, *dma;
	struct timespec t0, t1;
	vmem_addr_t lastpid = 0;
	unsigned pid_reuse_soon = 0;
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
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned long s = 0; s < steps; s++) {
		if (nproc < NPROC_MAX && (nproc < 100 || rnd(2) == 0)) {
			struct proc *p = &procs[nproc++];

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
			forks++;
		} else if (nproc > 0) {
			i = (unsigned)rnd(nproc);
			struct proc *p = &procs[i];

			vmem_free(pid, p->pid, 1);
			for (j = 0; j < NRANGES; j++)
				vmem_free(va, p->va[j], p->vasz[j]);
			if (p->dmasz != 0)
				vmem_xfree(dma, p->dma, p->dmasz);
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
	       "(VM_NEXTFIT rotor)\n\n",
	    pid_reuse_soon);
	kmem_vmem_print_stats(pr);
	if (nproc > 0) {
		printf("\nwhatis:\n");
		vmem_whatis(procs[0].va[0] + 4096 - 1, pr);
		vmem_whatis(procs[0].pid, pr);
	}
	for (i = 0; i < nproc; i++) {
		vmem_free(pid, procs[i].pid, 1);
		for (j = 0; j < NRANGES; j++)
			vmem_free(va, procs[i].va[j], procs[i].vasz[j]);
		if (procs[i].dmasz != 0)
			vmem_xfree(dma, procs[i].dma, procs[i].dmasz);
	}
	printf("\nafter reaping every process:\n");
	kmem_vmem_print_stats(pr);
	printf("\n");
	vmem_dump(dma, pr);
	vmem_destroy(dma);
	vmem_destroy(va);
	vmem_destroy(pid);
	return 0;
}
