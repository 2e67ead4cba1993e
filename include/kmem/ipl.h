/*
 * <kmem/ipl.h> -- interrupt priority levels, accepted and ignored.
 *
 * NetBSD's vmem_create(9), pool_init(9) and pool_cache_init(9) take an
 * "ipl" argument naming the interrupt level their lock blocks.  Userspace
 * has no interrupt levels; kmem keeps the argument in every signature so
 * kernel code compiles unchanged, and ignores its value.  The constants
 * exist so that such code names them as it does in the kernel.
 */
#ifndef KMEM_IPL_H
#define KMEM_IPL_H

#ifndef IPL_NONE
#define IPL_NONE       0
#define IPL_SOFTCLOCK  1
#define IPL_SOFTBIO    2
#define IPL_SOFTNET    3
#define IPL_SOFTSERIAL 4
#define IPL_VM	       5
#define IPL_SCHED      6
#define IPL_HIGH       7
#endif

#endif /* KMEM_IPL_H */
