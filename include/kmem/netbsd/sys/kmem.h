/*
 * <sys/kmem.h> of the NetBSD-compatible include tree: kmem(9): the
 * general-purpose allocator, with the names NetBSD kernel code finds around it
 * (<kmem/netbsd/compat.h>).
 *
 * Reached by `pkg-config --cflags kmem-netbsd` (-I PREFIX/include/kmem/netbsd),
 * so that code written for NetBSD's kernel keeps its
 * "#include <sys/kmem.h>" line.  Everything is kmem's <kmem/kmem.h>.
 */
#ifndef KMEM_NETBSD_SYS_KMEM_H
#define KMEM_NETBSD_SYS_KMEM_H
#ifndef _SYS_KMEM_H_
#define _SYS_KMEM_H_ /* NetBSD's own guard, for code that tests it */
#endif

#include <kmem/netbsd/compat.h>
#include <kmem/kmem.h>

#endif /* KMEM_NETBSD_SYS_KMEM_H */
