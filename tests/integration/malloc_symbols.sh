#!/bin/sh
# libkmem-malloc.so exports exactly the C library's allocator (reliability
# test plan A1): malloc, free, calloc, realloc, reallocarray,
# aligned_alloc, posix_memalign, memalign, valloc, pvalloc,
# malloc_usable_size, malloc_trim; C23's free_sized and
# free_aligned_sized; glibc's introspection calls mallinfo2, mallinfo,
# malloc_stats and malloc_info (malloc_info.c); and C++'s twenty
# replaceable operator new and delete forms, by their Itanium names
# (malloc.c section 10) -- no kmem API, no
# __libc_* aliases.  It refers to the C++ runtime only weakly (a C
# program never loads it), is built with initial-exec TLS (STATIC_TLS:
# no __tls_get_addr inside malloc) and needs nothing but libc.
# Usage: malloc_symbols.sh SOURCE_DIR BUILD_DIR
set -eu
lib=$2/libkmem-malloc.so
[ -f "$lib" ] || { echo "no $lib"; exit 1; }
words() { tr ' ' '\n' | sed '/^$/d' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//'; }
c="aligned_alloc calloc free malloc malloc_trim malloc_usable_size memalign
posix_memalign pvalloc realloc reallocarray valloc free_sized
free_aligned_sized mallinfo2 mallinfo malloc_stats malloc_info"
# new, new[]: plain, nothrow, aligned, aligned nothrow; delete, delete[]:
# those and sized, sized aligned.
cxx=""
for op in _Znwm _Znam; do
	for t in "" RKSt9nothrow_t St11align_val_t St11align_val_tRKSt9nothrow_t; do
		cxx="$cxx $op$t"
	done
done
for op in _ZdlPv _ZdaPv; do
	for t in "" RKSt9nothrow_t m St11align_val_t \
	    St11align_val_tRKSt9nothrow_t mSt11align_val_t; do
		cxx="$cxx $op$t"
	done
done
want=$(echo $c $cxx | words)
# A coverage build (make coverage) also exports the hook that writes its
# counts (src/error.c), and needs nothing else.
[ "${KMEM_COVERAGE:-}" = 1 ] && want=$(echo $want kmem_coverage_dump | words)
have=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWiVvDdBb]$/ {print $3}' | sed 's/@.*//' | words)
if [ "$have" != "$want" ]; then
	echo "exported: $have"
	echo "expected: $want"
	exit 1
fi
[ $(echo $want | wc -w) -eq $((18 + 20 + ${KMEM_COVERAGE:-0})) ] || {
	echo "expected list miscounted: $want"; exit 1; }
# The C++ runtime: weak references only (std::get_new_handler,
# std::__throw_bad_alloc), never a strong undefined C++ symbol.
strong=$(nm -D --undefined-only "$lib" | awk '$1 == "U" && $2 ~ /^_Z/ {print $2}')
[ -z "$strong" ] || { echo "$lib needs C++ symbols: $strong"; exit 1; }
readelf -d "$lib" | grep -q 'FLAGS.*STATIC_TLS' || {
	echo "$lib: not built with initial-exec TLS (no STATIC_TLS flag)"; exit 1; }
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
[ "$needed" = "libc.so.6 " ] || { echo "$lib needs: $needed"; exit 1; }
echo "1 passed, 0 failed"
