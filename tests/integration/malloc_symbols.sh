#!/bin/sh
# libkmem-malloc.so exports exactly the C library's allocator (reliability
# test plan A1): malloc, free, calloc, realloc, reallocarray,
# aligned_alloc, posix_memalign, memalign, valloc, pvalloc,
# malloc_usable_size, malloc_trim -- no kmem API, no operator new, no
# __libc_* aliases -- and it is built with initial-exec TLS (STATIC_TLS:
# no __tls_get_addr inside malloc) and needs nothing but libc.
# Usage: malloc_symbols.sh SOURCE_DIR BUILD_DIR
set -eu
lib=$2/libkmem-malloc.so
[ -f "$lib" ] || { echo "no $lib"; exit 1; }
want="aligned_alloc calloc free malloc malloc_trim malloc_usable_size memalign posix_memalign pvalloc realloc reallocarray valloc"
# A coverage build (make coverage) also exports the hook that writes its
# counts (src/error.c), and needs nothing else.
[ "${KMEM_COVERAGE:-}" = 1 ] &&
	want="aligned_alloc calloc free kmem_coverage_dump malloc malloc_trim malloc_usable_size memalign posix_memalign pvalloc realloc reallocarray valloc"
have=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWiVvDdBb]$/ {print $3}' | sed 's/@.*//' | sort | tr '\n' ' ' | sed 's/ $//')
if [ "$have" != "$want" ]; then
	echo "exported: $have"
	echo "expected: $want"
	exit 1
fi
readelf -d "$lib" | grep -q 'FLAGS.*STATIC_TLS' || {
	echo "$lib: not built with initial-exec TLS (no STATIC_TLS flag)"; exit 1; }
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
[ "$needed" = "libc.so.6 " ] || { echo "$lib needs: $needed"; exit 1; }
echo "1 passed, 0 failed"
