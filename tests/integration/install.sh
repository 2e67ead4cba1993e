#!/bin/sh
# make install into a scratch prefix, then build a program against it
# through pkg-config, dynamically and statically, and run both; and run
# a command through the installed kmemstat on the installed malloc.
# Usage: install.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1
build=$2
prefix=$(mktemp -d "${TMPDIR:-/tmp}/kmem-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in include/kmem/vmem.h include/kmem/ipl.h lib/libkmem.a lib/libkmem.so \
    lib/pkgconfig/kmem.pc lib/libkmem-malloc.so bin/kmemstat \
    share/man/man1/kmemstat.1 share/man/man3/kmem.3; do
	[ -e "$prefix/$f" ] || { echo "missing $prefix/$f"; exit 1; }
done
grep -q "^prefix=$prefix\$" "$prefix/lib/pkgconfig/kmem.pc" || {
	echo "kmem.pc does not name the prefix:"; cat "$prefix/lib/pkgconfig/kmem.pc"; exit 1; }
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# A coverage build's library needs gcov's runtime (make coverage).
cov=""
[ "${KMEM_COVERAGE:-}" = 1 ] && cov=--coverage
cat > "$prefix/prog.c" <<'PROG'
#include <kmem/vmem.h>
#include <stdio.h>
int
main(void)
{
	vmem_t *vm = vmem_create("ids", 1, 100, 1, NULL, NULL, NULL, 0,
	    VM_SLEEP, IPL_NONE);
	vmem_addr_t a;

	if (vm == NULL || vmem_alloc(vm, 1, VM_NOSLEEP, &a) != 0 || a != 1)
		return 1;
	vmem_free(vm, a, 1);
	vmem_destroy(vm);
	puts("installed kmem works");
	return 0;
}
PROG
cc -std=c11 -Wall -Werror $cov -o "$prefix/prog-dyn" "$prefix/prog.c" \
    $(pkg-config --cflags --libs kmem)
LD_LIBRARY_PATH="$prefix/lib" "$prefix/prog-dyn"
cc -std=c11 -Wall -Werror $cov -o "$prefix/prog-static" "$prefix/prog.c" \
    $(pkg-config --cflags kmem) -L"$prefix/lib" -l:libkmem.a \
    $(pkg-config --static --libs-only-l kmem | sed 's/-lkmem//')
"$prefix/prog-static"
if ldd "$prefix/prog-static" | grep -q libkmem; then
	echo "static program links libkmem.so"; exit 1
fi
# The installed kmemstat finds the installed libkmem-malloc.so (../lib).
"$prefix/bin/kmemstat" -j -o "$prefix/ls.json" -- ls -l / >/dev/null
grep -q '"processes":\[{"pid":[0-9]*,"command":"ls"}\]' "$prefix/ls.json" || {
	echo "installed kmemstat: no statistics of ls:"; head -c 400 "$prefix/ls.json"; exit 1; }
grep -q '"name":"kmem-00016"' "$prefix/ls.json" || {
	echo "installed kmemstat: ls did not run on kmem"; exit 1; }
echo "1 passed, 0 failed"
