/*
 * <string.h> of the freestanding build (src/prim/freestanding/include, on
 * the include path after -nostdinc).  memcpy, memmove, memset and memcmp
 * are the embedder's (every freestanding C environment has them: the
 * compiler emits calls to them too); the few string functions kmem uses
 * besides are its own, inline, so that the archive needs nothing else.
 */
#ifndef KMEM_FREESTANDING_STRING_H
#define KMEM_FREESTANDING_STRING_H

#include <stddef.h>
#include <stdint.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

static inline size_t
kmem_fs_strlen(const char *s)
{
	size_t n = 0;

	while (s[n] != '\0')
		n++;
	return n;
}

static inline size_t
kmem_fs_strnlen(const char *s, size_t max)
{
	size_t n = 0;

	while (n < max && s[n] != '\0')
		n++;
	return n;
}

static inline int
kmem_fs_strncmp(const char *a, const char *b, size_t n)
{
	for (; n > 0; a++, b++, n--) {
		if (*a != *b)
			return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
		if (*a == '\0')
			break;
	}
	return 0;
}

static inline int
kmem_fs_strcmp(const char *a, const char *b)
{
	return kmem_fs_strncmp(a, b, (size_t)-1);
}

static inline char *
kmem_fs_strchr(const char *s, int c)
{
	for (;; s++) {
		if (*s == (char)c)
			return (char *)(uintptr_t)s;
		if (*s == '\0')
			return NULL;
	}
}

static inline void *
kmem_fs_memchr(const void *p, int c, size_t n)
{
	const unsigned char *s = p;

	for (; n > 0; s++, n--)
		if (*s == (unsigned char)c)
			return (void *)(uintptr_t)s;
	return NULL;
}

#define strlen	kmem_fs_strlen
#define strnlen kmem_fs_strnlen
#define strncmp kmem_fs_strncmp
#define strcmp	kmem_fs_strcmp
#define strchr	kmem_fs_strchr
#define memchr	kmem_fs_memchr

#endif
