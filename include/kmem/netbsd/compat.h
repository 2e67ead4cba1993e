/*
 * <kmem/netbsd/compat.h> -- the few names NetBSD kernel code that uses
 * vmem(9), pool(9), pool_cache(9) and kmem(9) expects from the headers
 * around them, for the NetBSD-compatible include tree.
 *
 * The tree (PREFIX/include/kmem/netbsd, reached by `pkg-config --cflags
 * kmem-netbsd`) holds <sys/vmem.h>, <sys/pool.h> and <sys/kmem.h>, each
 * kmem's own header plus this one, so that a source file written for
 * NetBSD's kernel compiles with its #include lines untouched.  In NetBSD
 * these names come from <sys/param.h>, <sys/types.h>, <sys/cdefs.h> and
 * <machine/intr.h>; here the system's <sys/param.h> and <sys/types.h>
 * (MIN, MAX, roundup, howmany, powerof2, u_int, ...) are included and
 * what they lack is defined, each only if not already defined.  kmem's
 * headers already give vmem_addr_t, vmem_size_t, paddr_t, the IPL_*
 * levels of spl(9) and every flag.  See NETBSD COMPATIBILITY in vmem(3).
 */
#ifndef KMEM_NETBSD_COMPAT_H
#define KMEM_NETBSD_COMPAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/param.h>
#include <sys/types.h>

#include <kmem/ipl.h>

/* Addresses and sizes of the machine (NetBSD's <machine/types.h>). */
#ifndef KMEM_PADDR_T_DEFINED
#define KMEM_PADDR_T_DEFINED
typedef uintptr_t paddr_t;
#endif
#ifndef KMEM_VADDR_T_DEFINED
#define KMEM_VADDR_T_DEFINED
typedef uintptr_t vaddr_t;
typedef size_t vsize_t;
typedef size_t psize_t;
#endif

/*
 * ALIGN(p): p rounded up to the alignment every object needs, as an
 * integer (NetBSD's <machine/param.h>): that of the strictest of the
 * standard scalar types, 16 on amd64 (long double), where NetBSD's
 * ALIGNBYTES is 7; a larger step is always safe.  Not max_align_t: it is
 * C11's, and NetBSD builds its kernel with -std=gnu99, where <stddef.h>
 * does not declare it.  offsetof of a member after a char is its
 * alignment in every C and C++ dialect, and the same figure in each.
 */
#if defined(__GNUC__)
#define KMEM_NETBSD_ALIGNOF(t) __alignof__(t) /* C and C++ */
#else
#define KMEM_NETBSD_ALIGNOF(t) _Alignof(t)
#endif
struct kmem_netbsd_maxalign {
	char c;
	union {
		long double ld;
		double d;
		long l;
		void *p;
		void (*fp)(void);
	} u;
};
#ifndef ALIGNBYTES
#define ALIGNBYTES (offsetof(struct kmem_netbsd_maxalign, u) - 1)
#endif
#ifndef ALIGN
#define ALIGN(p) (((uintptr_t)(p) + ALIGNBYTES) & ~(uintptr_t)ALIGNBYTES)
#endif
#ifndef ALIGNED_POINTER
#define ALIGNED_POINTER(p, t)                                                  \
	((((uintptr_t)(p)) & (KMEM_NETBSD_ALIGNOF(t) - 1)) == 0)
#endif

/* NetBSD's <sys/cdefs.h>. */
#ifndef __arraycount
#define __arraycount(a) (sizeof(a) / sizeof((a)[0]))
#endif

/*
 * The older interrupt levels that NetBSD ports still define, as most of
 * them do, in terms of spl(9)'s machine-independent ones (<kmem/ipl.h>).
 * The argument is ignored anyway.
 */
#ifndef IPL_BIO
#define IPL_BIO IPL_VM
#endif
#ifndef IPL_NET
#define IPL_NET IPL_VM
#endif
#ifndef IPL_TTY
#define IPL_TTY IPL_VM
#endif
#ifndef IPL_AUDIO
#define IPL_AUDIO IPL_SCHED
#endif
#ifndef IPL_CLOCK
#define IPL_CLOCK IPL_SCHED
#endif
#ifndef IPL_STATCLOCK
#define IPL_STATCLOCK IPL_SCHED
#endif
#ifndef IPL_SERIAL
#define IPL_SERIAL IPL_HIGH
#endif
#ifndef IPL_IPI
#define IPL_IPI IPL_HIGH
#endif

#endif /* KMEM_NETBSD_COMPAT_H */
