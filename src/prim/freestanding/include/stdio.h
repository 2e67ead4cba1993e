/*
 * <stdio.h> of the freestanding build (src/prim/freestanding/include, on
 * the include path after -nostdinc): kmem uses stdio for kmem_asprintf's
 * vsnprintf only, which here is kmem's own formatter (src/error.c:
 * %s %c %d %i %u %x %X %p %% with l, ll, z, j, t; no floating point).
 */
#ifndef KMEM_FREESTANDING_STDIO_H
#define KMEM_FREESTANDING_STDIO_H

#include <stdarg.h>
#include <stddef.h>

int kmem_vsnprintf(char *buf, size_t n, const char *fmt, va_list ap);
#define vsnprintf kmem_vsnprintf

#endif
