/*
 * <limits.h> of the freestanding build: the compiler's own, without its
 * reach for the C library's (gcc's syslimits.h include_next; clang
 * skips it when not hosted).
 */
#ifndef _LIBC_LIMITS_H_
#define _LIBC_LIMITS_H_ 1
#endif
#include_next <limits.h>
