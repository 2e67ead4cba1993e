/*
 * <kmem/kmem.h> -- kmem(9) in userspace: general-purpose allocation by
 * size, with the size given back at free.
 *
 * Names, flag values and semantics are NetBSD's (sys/sys/kmem.h): size 0
 * and a NULL free are errors; KM_SLEEP never returns NULL; kmem_free must
 * be given the size that was allocated.  Additions that are not in NetBSD
 * are marked "extension".  See kmem(3).
 *
 * Alignment: 8 bytes for sizes 1-15, 16 for sizes from 16 up, and a page
 * for every multiple of the page size.
 */
#ifndef KMEM_KMEM_H
#define KMEM_KMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The API keeps default visibility when kmem itself is compiled with
 * hidden visibility (one set of objects for libkmem and libkmem-malloc;
 * each library's version script says what it exports).
 */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

typedef unsigned int km_flag_t;

#define KM_SLEEP   0x00000001 /* wait for memory; never NULL (= PR_WAITOK) */
#define KM_NOSLEEP 0x00000002 /* NULL at once if none (= PR_NOWAIT) */

#if defined(__GNUC__)
#define KMEM_ATTR_MALLOC       __attribute__((malloc))
#define KMEM_ATTR_ALLOC_SIZE1  __attribute__((alloc_size(1)))
#define KMEM_ATTR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KMEM_ATTR_MALLOC
#define KMEM_ATTR_ALLOC_SIZE1
#define KMEM_ATTR_PRINTF(a, b)
#endif

void *kmem_alloc(
    size_t size, km_flag_t flags) KMEM_ATTR_MALLOC KMEM_ATTR_ALLOC_SIZE1;
void *kmem_zalloc(
    size_t size, km_flag_t flags) KMEM_ATTR_MALLOC KMEM_ATTR_ALLOC_SIZE1;
void kmem_free(void *p, size_t size);

/* The same; NetBSD's interrupt-safe names (no difference in userspace). */
void *kmem_intr_alloc(
    size_t size, km_flag_t flags) KMEM_ATTR_MALLOC KMEM_ATTR_ALLOC_SIZE1;
void *kmem_intr_zalloc(
    size_t size, km_flag_t flags) KMEM_ATTR_MALLOC KMEM_ATTR_ALLOC_SIZE1;
void kmem_intr_free(void *p, size_t size);

/* Strings: KM_SLEEP for kmem_asprintf; free all of them with kmem_strfree. */
char *kmem_asprintf(const char *fmt, ...) KMEM_ATTR_PRINTF(1, 2);
/* A copy of s; *lenp (if not NULL) = strlen(s) + 1, the bytes allocated. */
char *kmem_strdupsize(const char *s, size_t *lenp, km_flag_t flags);
#define kmem_strdup(s, f) kmem_strdupsize((s), NULL, (f))
/* At most maxlen bytes of s; allocates strnlen(s, maxlen) + 1 bytes. */
char *kmem_strndup(const char *s, size_t maxlen, km_flag_t flags);
/* Free a string from the functions above (strlen + 1 bytes); NULL is ok. */
void kmem_strfree(char *s);

/*
 * Scratch space: the caller's stackbuf when size <= stackbufsize, else
 * kmem_alloc(size, flags).  Give the same size and stackbuf to free.
 */
void *kmem_tmpbuf_alloc(
    size_t size, void *stackbuf, size_t stackbufsize, km_flag_t flags);
void kmem_tmpbuf_free(void *p, size_t size, void *stackbuf);

/* size rounded up to kmem's granularity (8 bytes), as NetBSD. */
size_t kmem_roundup_size(size_t size);

/* Set kmem up (done by the first call anyway; idempotent). */
void kmem_init(void);

/* ---- extensions (not in NetBSD) ---- */

/*
 * The bytes an allocation of "size" really gets: its size class, or the
 * size rounded to pages on the large path.  0 for size 0.  To use the
 * extra bytes, allocate kmem_usable_size(size) in the first place (and
 * free with that size): past "size" is a redzone to KMEM_DEBUG=redzone,
 * memcheck and ASan (kmem(3)).
 */
size_t kmem_usable_size(size_t size);

/*
 * The pool_cache that serves "size" ("kmem-NNNNN"), or NULL when the size
 * takes the large path (page-granular segments of the page arena "kva").
 * For statistics: kmem_pool_cache_stats() in <kmem/pool.h>.
 */
struct pool_cache *kmem_size_cache(size_t size);

/* The largest size served by a cache (16384); larger sizes are "large". */
#define KMEM_CACHE_MAX 16384

/*
 * Debugging, chosen once at start-up by KMEM_DEBUG=item,item,...:
 *   size      record the allocated size; kmem_free with another size
 *             aborts with "kmem_free(PTR, SIZE) != allocated size SIZE"
 *   redzone   guard bytes after the object, checked at free
 *   poison    freed memory filled with a pattern, checked when reused
 *   guard     each allocation against an unmapped page; freed address
 *             space quarantined (guard_depth=N entries, default 1024)
 *   check     the consistency checkers (kmem_check_all, <kmem/pool.h>)
 *             run on the arena, pool or cache a slow path works on
 *             (check_every=N: at every Nth such event); it alone leaves
 *             kmem_alloc's paths as they are
 * With any item but check on, double frees and foreign pointers are
 * reported too.  Every report is one stderr line starting "kmem: ", then
 * abort().  kmem_debug_flags() says which items are on.
 */
#define KMEM_DEBUG_SIZE	   0x1
#define KMEM_DEBUG_REDZONE 0x2
#define KMEM_DEBUG_POISON  0x4
#define KMEM_DEBUG_GUARD   0x8
#define KMEM_DEBUG_CHECK   0x10
unsigned int kmem_debug_flags(void);

/*
 * Statistics.  kmem_stats_print() prints the tables chosen by "what"
 * through pr (printf-like; NULL = stderr): the pools (vmstat -m, with the
 * wide columns), the pool caches (vmstat -C), the vmem arenas, or all of
 * them as one JSON object.  At exit, KMEM_STATS=1 prints all tables to
 * stderr, KMEM_STATS=/path/file writes them to that file,
 * KMEM_STATS=json / json:/path/file the JSON.
 */
#define KMEM_STATS_POOLS   0x1 /* vmstat -m */
#define KMEM_STATS_CACHES  0x2 /* vmstat -C */
#define KMEM_STATS_VMEM	   0x4 /* arenas */
#define KMEM_STATS_ALL	   0x7
#define KMEM_STATS_JSON	   0x8	/* JSON instead of tables */
#define KMEM_STATS_ALLROWS 0x10 /* also rows never used (vmstat -v) */
void kmem_stats_print(void (*pr)(const char *, ...), unsigned int what);
/* The same, written to file descriptor fd; 0, or an errno value. */
int kmem_stats_write(int fd, unsigned int what);

/*
 * kmem_reap: trim caches to their working sets and give every free page
 * of the page arena back to the OS now.  kmem_reap_all: give back all
 * memory not in use, cached objects included.
 */
void kmem_reap(void);
void kmem_reap_all(void);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif /* KMEM_KMEM_H */
