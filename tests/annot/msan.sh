#!/bin/sh
# MemorySanitizer sees kmem's objects (src/internal/annotate.h): the
# library and tests/annot/annot_bugs.c compiled with clang
# -fsanitize=memory; a read of a fresh kmem_alloc object that decides a
# branch is reported, the clean run reports nothing.  (ASan cannot see
# uninitialised reads; the ASan and valgrind builds test the rest.)
# Usage: msan.sh SOURCE_DIR BUILD_DIR; exit 77 (skipped) without clang
# or its MSan runtime.
src=$1
build=$2
out=$build/annot-msan
cc=${KMEM_MSAN_CC:-clang}
command -v "$cc" >/dev/null 2>&1 || { echo "msan: no $cc"; exit 77; }
rt=$("$cc" -print-file-name=libclang_rt.msan-x86_64.a 2>/dev/null)
[ -f "$rt" ] || { echo "msan: no MSan runtime"; exit 77; }
# the library's sources: not the malloc shim's (malloc.c, malloc_info.c)
srcs=$(ls "$src"/src/*.c "$src"/src/prim/linux.c | grep -vE '/malloc(_info)?\.c$')
# shellcheck disable=SC2086
"$cc" -fsanitize=memory -fno-omit-frame-pointer -O1 -g -D_GNU_SOURCE \
    -I"$src/include" -I"$src/src" $srcs "$src/tests/annot/annot_bugs.c" \
    -lpthread -o "$out" || { echo "msan: FAIL: build"; exit 1; }
status=0
log=$("$out" clean 2>&1)
case $log in
*MemorySanitizer*) echo "msan: FAIL: clean run reported:"; echo "$log"
	status=1 ;;
*) echo "msan: clean run: nothing reported" ;;
esac
log=$("$out" uninit 2>&1)
case $log in
*"MemorySanitizer: use-of-uninitialized-value"*annot_bugs.c*)
	echo "msan: uninit: reported" ;;
*) echo "msan: FAIL: uninit not reported:"; echo "$log"; status=1 ;;
esac
exit $status
