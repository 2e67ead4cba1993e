/*
 * <sys/pool.h> of the NetBSD-compatible include tree: pool(9) and
 * pool_cache(9), with the names NetBSD kernel code finds around it
 * (<kmem/netbsd/compat.h>).
 *
 * Reached by `pkg-config --cflags kmem-netbsd` (-I PREFIX/include/kmem/netbsd),
 * so that code written for NetBSD's kernel keeps its
 * "#include <sys/pool.h>" line.  Everything is kmem's <kmem/pool.h>.
 */
#ifndef KMEM_NETBSD_SYS_POOL_H
#define KMEM_NETBSD_SYS_POOL_H
#ifndef _SYS_POOL_H_
#define _SYS_POOL_H_ /* NetBSD's own guard, for code that tests it */
#endif

#include <kmem/netbsd/compat.h>
#include <kmem/pool.h>

#endif /* KMEM_NETBSD_SYS_POOL_H */
