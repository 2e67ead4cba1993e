#!/bin/sh
# The NetBSD-compatible include tree: make install into a scratch prefix,
# then compile tests/integration/netbsd/ex.c -- kernel code written for
# NetBSD, with its #include <sys/vmem.h>, <sys/pool.h>, <sys/kmem.h>
# lines as NetBSD has them -- with nothing but `pkg-config --cflags
# kmem-netbsd`, link it with `pkg-config --libs kmem-netbsd` (dynamic)
# and the static archive, and run its self-test; with gcc and clang, with
# and without -D_KERNEL, and with NetBSD's -std=gnu99.  Each header of the tree also compiles alone
# (C and C++).
# Usage: netbsd_compat.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1
build=$2
prefix=$(mktemp -d "${TMPDIR:-/tmp}/kmem-netbsd.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in include/kmem/netbsd/sys/vmem.h include/kmem/netbsd/sys/pool.h \
    include/kmem/netbsd/sys/kmem.h include/kmem/netbsd/compat.h \
    lib/pkgconfig/kmem-netbsd.pc; do
	[ -e "$prefix/$f" ] || { echo "missing $prefix/$f"; exit 1; }
done
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cflags=$(pkg-config --cflags kmem-netbsd)
libs=$(pkg-config --libs kmem-netbsd)
case " $cflags " in
*" -I$prefix/include/kmem/netbsd "*) ;;
*) echo "kmem-netbsd --cflags lacks the tree: $cflags"; exit 1 ;;
esac
case " $libs " in
*" -lkmem "*) ;;
*) echo "kmem-netbsd --libs does not link kmem: $libs"; exit 1 ;;
esac
# A coverage build's library needs gcov's runtime (make coverage).
cov=""
[ "${KMEM_COVERAGE:-}" = 1 ] && cov=--coverage
n=0
compilers=cc
command -v clang >/dev/null 2>&1 && compilers="cc clang"
for c in $compilers; do
	for k in "" -D_KERNEL; do
		for h in sys/vmem.h sys/pool.h sys/kmem.h; do
			printf '#include <%s>\n' "$h" > "$prefix/h.c"
			$c -std=gnu11 -Wall -Wextra -Werror -pedantic $k $cflags \
			    -fsyntax-only "$prefix/h.c"
		done
		# NetBSD builds its kernel with -std=gnu99 (no max_align_t).
		$c -std=gnu99 -Wall -Wextra -Werror $k $cflags -fsyntax-only \
		    "$src/tests/integration/netbsd/ex.c"
		$c -std=gnu11 -Wall -Wextra -Werror $k $cflags $cov \
		    -c "$src/tests/integration/netbsd/ex.c" -o "$prefix/ex.o"
		$c -std=gnu11 -Wall -Werror $cov -o "$prefix/ex-dyn" \
		    "$prefix/ex.o" "$src/tests/integration/netbsd/main.c" $libs
		LD_LIBRARY_PATH="$prefix/lib" "$prefix/ex-dyn"
		$c -std=gnu11 -Wall -Werror $cov -o "$prefix/ex-static" \
		    "$prefix/ex.o" "$src/tests/integration/netbsd/main.c" \
		    -L"$prefix/lib" -l:libkmem.a \
		    $(pkg-config --static --libs-only-l kmem-netbsd |
			sed 's/-lkmem//')
		"$prefix/ex-static"
		n=$((n + 2))
	done
done
# C++: the tree's headers in one translation unit.
if command -v c++ >/dev/null 2>&1; then
	printf '#include <sys/vmem.h>\n#include <sys/pool.h>\n#include <sys/kmem.h>\nstatic_assert(ALIGN(1) == ALIGNBYTES + 1, "ALIGN");\n' \
	    > "$prefix/h.cc"
	c++ -std=gnu++17 -Wall -Wextra -Werror $cflags -fsyntax-only \
	    "$prefix/h.cc"
	n=$((n + 1))
fi
echo "$n passed, 0 failed"
