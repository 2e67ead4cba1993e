/*
 * <sys/vmem.h> of the NetBSD-compatible include tree: vmem(9): the resource
 * allocator, with the names NetBSD kernel code finds around it
 * (<kmem/netbsd/compat.h>).
 *
 * Reached by `pkg-config --cflags kmem-netbsd` (-I PREFIX/include/kmem/netbsd),
 * so that code written for NetBSD's kernel keeps its
 * "#include <sys/vmem.h>" line.  Everything is kmem's <kmem/vmem.h>.
 */
#ifndef KMEM_NETBSD_SYS_VMEM_H
#define KMEM_NETBSD_SYS_VMEM_H
#ifndef _SYS_VMEM_H_
#define _SYS_VMEM_H_ /* NetBSD's own guard, for code that tests it */
#endif

#include <kmem/netbsd/compat.h>
#include <kmem/vmem.h>

#endif /* KMEM_NETBSD_SYS_VMEM_H */
