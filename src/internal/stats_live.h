/*
 * stats_live.h -- the layout of a process's statistics page
 * (KMEM_STATS_LIVE; stats.c section 5 is the writer, tools/kmemstat.c the
 * reader).  Both sides are built from the same tree; the reader checks
 * the magic, the version and the three structure sizes and refuses a
 * page that differs.  Neither side trusts the geometry in the file after
 * that (its owner can rewrite it under the mappings): the writer lays
 * the regions out from the constants below, the reader from the copy it
 * checked.
 *
 * The file, DIR/kmem-stats.PID (mode 0600), is one header and three
 * regions of the same shape (struct kmem_live_slot, then lh_maxpools pool
 * rows, then lh_maxarenas arena rows): two snapshot slots written in
 * turn, and the baseline a forked child subtracts (the parent's
 * counters at the fork).  lh_gen counts the snapshots published; the
 * newest complete one is in slot (lh_gen - 1) & 1, none while it is 0.
 * A slot's ls_seq is odd while the writer fills it (a seqlock): a reader
 * copies the slot, then reads ls_seq again and retries if it changed.
 * Two slots, so that a process killed in the middle of a snapshot still
 * leaves the previous one whole.
 */
#ifndef KMEM_INTERNAL_STATS_LIVE_H
#define KMEM_INTERNAL_STATS_LIVE_H

#include <stdatomic.h>
#include <stdint.h>

#include <kmem/pool.h>
#include <kmem/vmem.h>

#define KMEM_LIVE_MAGIC	    "kmemlive"
#define KMEM_LIVE_VERSION   1
#define KMEM_LIVE_PREFIX    "kmem-stats."
#define KMEM_LIVE_MAXPOOLS  512
#define KMEM_LIVE_MAXARENAS 128

/* lh_state */
enum { KMEM_LIVE_RUNNING = 1, KMEM_LIVE_EXITED = 2 };
/* lh_flags */
#define KMEM_LIVE_KEEP	 0x1u /* the file stays at exit (kmemstat's) */
#define KMEM_LIVE_FORKED 0x2u /* a child forked without exec */

struct kmem_live_hdr {
	char lh_magic[8];		    /* KMEM_LIVE_MAGIC, no NUL */
	uint32_t lh_version;		    /* KMEM_LIVE_VERSION */
	uint32_t lh_hdrsize;		    /* sizeof(struct kmem_live_hdr) */
	uint32_t lh_poolsize;		    /* sizeof(struct kmem_pool_stats) */
	uint32_t lh_vmemsize;		    /* sizeof(struct kmem_vmem_stats) */
	uint32_t lh_maxpools, lh_maxarenas; /* rows a region holds */
	uint64_t lh_size;		    /* the file's size in bytes */
	uint64_t lh_regoff[3];		    /* slot 0, slot 1, baseline */
	int64_t lh_pid, lh_ppid;	    /* ppid: a forked child's parent */
	uint64_t lh_starttime;		    /* /proc/PID/stat field 22 */
	uint64_t lh_interval_ns;	    /* publishing interval */
	char lh_command[64];
	uint32_t lh_flags;	      /* KMEM_LIVE_KEEP, KMEM_LIVE_FORKED */
	_Atomic uint32_t lh_state;    /* KMEM_LIVE_RUNNING or _EXITED */
	_Atomic uint64_t lh_gen;      /* snapshots published */
	_Atomic uint64_t lh_attempts; /* publications skipped (busy) */
};

struct kmem_live_slot {
	_Atomic uint64_t ls_seq; /* odd while being written */
	uint64_t ls_time_ns;	 /* CLOCK_MONOTONIC when taken */
	uint32_t ls_npools, ls_narenas;
	uint32_t ls_dropped; /* rows that did not fit */
	uint32_t ls_pad;
	/* lh_maxpools struct kmem_pool_stats, lh_maxarenas kmem_vmem_stats */
};

static inline struct kmem_live_slot *
kmem_live_region(const struct kmem_live_hdr *h, unsigned int i)
{
	return (struct kmem_live_slot *)(void *)((char *)(uintptr_t)h +
	    h->lh_regoff[i]);
}

static inline struct kmem_pool_stats *
kmem_live_pools(struct kmem_live_slot *s)
{
	return (struct kmem_pool_stats *)(void *)(s + 1);
}

static inline struct kmem_vmem_stats *
kmem_live_arenas(const struct kmem_live_hdr *h, struct kmem_live_slot *s)
{
	return (struct kmem_vmem_stats *)(void *)(kmem_live_pools(s) +
	    h->lh_maxpools);
}

/* Bytes of one region, a multiple of 64. */
static inline uint64_t
kmem_live_region_size(uint32_t maxpools, uint32_t maxarenas)
{
	uint64_t n = sizeof(struct kmem_live_slot) +
	    (uint64_t)maxpools * sizeof(struct kmem_pool_stats) +
	    (uint64_t)maxarenas * sizeof(struct kmem_vmem_stats);

	return (n + 63) & ~(uint64_t)63;
}

#endif /* KMEM_INTERNAL_STATS_LIVE_H */
