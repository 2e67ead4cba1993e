/*
 * <errno.h> of the freestanding build (src/prim/freestanding/include, on
 * the include path after -nostdinc): the error numbers kmem returns, with
 * Linux's values, and errno as the port's (kmem_prim_errno, contract).
 * An embedder whose system has other values puts its own errno.h ahead
 * of this directory; kmem only ever compares with these names.
 */
#ifndef KMEM_FREESTANDING_ERRNO_H
#define KMEM_FREESTANDING_ERRNO_H

#define ENOENT	    2
#define EINTR	    4
#define EIO	    5
#define EBADF	    9
#define EAGAIN	    11
#define EWOULDBLOCK EAGAIN
#define ENOMEM	    12
#define EACCES	    13
#define EBUSY	    16
#define EINVAL	    22
#define ENOSPC	    28
#define EPIPE	    32
#define ENOSYS	    38
#define ETIMEDOUT   110

int *kmem_prim_errno(void);
#define errno (*kmem_prim_errno())

#endif
