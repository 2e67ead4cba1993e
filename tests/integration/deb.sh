#!/bin/sh
# The Debian packages (debian/): build them with dpkg-buildpackage from a
# copy of the source (the tree itself is left as it is), check what each
# holds, unpack them with dpkg -x into a scratch root (no installation,
# no root), and from that root build and run programs the ways a user
# would -- cc with -I/-L, pkg-config on the packaged kmem.pc, find_package
# on the packaged CMake files, statically on libkmem.a -- and run the
# packaged kmemstat on the packaged libkmem-malloc.so.  Then lintian, where
# it is installed, on the binary and the source packages: no error or
# warning that debian/*.lintian-overrides does not justify.
# Needs dpkg-dev and debhelper (scripts/deps.sh installs them); skipped
# (77) without them.  About 20 s on 2 CPUs.
# Usage: deb.sh SOURCE_DIR BUILD_DIR
set -eu
src=$(cd "$1" && pwd)
for c in dpkg-buildpackage dh dh_auto_configure dpkg-architecture cmake; do
	command -v $c >/dev/null 2>&1 || {
		echo "deb: $c not installed (scripts/deps.sh); skipped"; exit 77; }
done
# Coverage builds test the build directory's code; this builds its own.
[ "${KMEM_COVERAGE:-}" = 1 ] && { echo "deb: not in coverage builds"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kmem-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "deb: FAIL: $*"; exit 1; }

# The source, without the version control and build directories.
mkdir "$tmp/kmem"
tar -C "$src" --exclude=./.git --exclude=./build --exclude=./install \
    --exclude='./obj-*' -cf - . | tar -C "$tmp/kmem" -xf -
start=$(date +%s)
(cd "$tmp/kmem" && DEB_BUILD_OPTIONS=noautodbgsym \
    dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1 || {
	tail -60 "$tmp/build.log"; fail "dpkg-buildpackage"; }
echo "deb: dpkg-buildpackage took $(($(date +%s) - start)) s"
# Exports added since debian/libkmem0.symbols was written are reported,
# not failed on (dpkg-gensymbols' default: only lost symbols fail): add
# them there, with the version that first has them.
grep -A20 'dpkg-gensymbols: warning' "$tmp/build.log" | grep '^+ ' |
    sed 's/^/deb: not yet in debian\/libkmem0.symbols: /' || true
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
ver=$(cd "$tmp/kmem" && dpkg-parsechangelog -SVersion)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

# What each package holds (and the shared library's SONAME).
has() { # PACKAGE PATH...: each PATH is in PACKAGE's .deb
	deb=$tmp/${1}_${ver}_$arch.deb
	[ -f "$deb" ] || fail "no $deb"
	list=$(dpkg-deb -c "$deb" | awk '{print $6}')
	p=$1
	shift
	for f in "$@"; do
		printf '%s\n' "$list" | grep -qx "\./$f" || fail "$p lacks $f"
	done
}
has libkmem0 usr/lib/$ma/libkmem.so.0 usr/lib/$ma/libkmem-malloc.so
has libkmem-dev usr/include/kmem/vmem.h usr/include/kmem/pool.h \
    usr/include/kmem/kmem.h usr/lib/$ma/libkmem.a usr/lib/$ma/libkmem.so \
    usr/lib/$ma/pkgconfig/kmem.pc usr/lib/$ma/cmake/kmem/kmemConfig.cmake \
    usr/lib/$ma/cmake/kmem/kmemConfigVersion.cmake \
    usr/lib/$ma/cmake/kmem/kmemTargets.cmake usr/share/man/man3/vmem.3.gz \
    usr/share/man/man3/pool_cache.3.gz usr/share/man/man3/kmem.3.gz
has kmem-tools usr/bin/kmemstat usr/share/man/man1/kmemstat.1.gz
if dpkg-deb -c "$tmp/libkmem0_${ver}_$arch.deb" | grep -q '\.a$\|\.h$\|bin/'; then
	fail "libkmem0 holds development files or programs"
fi
dpkg-deb -f "$tmp/kmem-tools_${ver}_$arch.deb" Depends | grep -q "libkmem0 (= $ver)" ||
	fail "kmem-tools does not depend on libkmem0 (= $ver)"

root=$tmp/root
for p in libkmem0 libkmem-dev kmem-tools; do
	dpkg -x "$tmp/${p}_${ver}_$arch.deb" "$root"
done
lib=$root/usr/lib/$ma
readelf -d "$lib/libkmem.so.0" | grep -q 'SONAME.*\[libkmem\.so\.0\]' ||
	fail "libkmem.so.0 has no SONAME libkmem.so.0"

cat > "$tmp/prog.c" <<'PROG'
#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>
#include <stdio.h>
#include <string.h>

int
main(void)
{
	vmem_t *vm = vmem_create("ids", 1, 100, 1, NULL, NULL, NULL, 0,
	    VM_SLEEP, IPL_NONE);
	pool_cache_t pc = pool_cache_init(64, 0, 0, 0, "objs", NULL,
	    IPL_NONE, NULL, NULL, NULL);
	vmem_addr_t a;
	char *s, *o;

	if (vm == NULL || vmem_alloc(vm, 1, VM_NOSLEEP, &a) != 0 || a != 1)
		return 1;
	vmem_free(vm, a, 1);
	vmem_destroy(vm);
	if ((o = pool_cache_get(pc, PR_WAITOK)) == NULL)
		return 2;
	memset(o, 1, 64);
	pool_cache_put(pc, o);
	pool_cache_destroy(pc);
	s = kmem_alloc(100, KM_SLEEP);
	strcpy(s, "packaged");
	printf("%s kmem works\n", s);
	kmem_free(s, 100);
	return 0;
}
PROG
# cc with -I and -L into the unpacked root: shared, then static.
cc -std=c11 -Wall -Werror -I"$root/usr/include" -o "$tmp/prog-cc" \
    "$tmp/prog.c" -L"$lib" -lkmem
LD_LIBRARY_PATH=$lib "$tmp/prog-cc"
LD_LIBRARY_PATH=$lib ldd "$tmp/prog-cc" | grep -q "libkmem.so.0 => $lib/" ||
	fail "prog-cc does not run on the packaged libkmem.so.0"
cc -std=c11 -Wall -Werror -I"$root/usr/include" -o "$tmp/prog-static" \
    "$tmp/prog.c" "$lib/libkmem.a" -lpthread
"$tmp/prog-static"
# The packaged kmem.pc, seen through the unpacked root as a sysroot.
if command -v pkg-config >/dev/null 2>&1; then
	PKG_CONFIG_LIBDIR=$lib/pkgconfig pkg-config --validate kmem ||
		fail "the packaged kmem.pc does not validate"
	flags=$(PKG_CONFIG_LIBDIR=$lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$root \
	    pkg-config --cflags --libs kmem)
	echo "deb: pkg-config --cflags --libs kmem: $flags"
	[ "$(PKG_CONFIG_LIBDIR=$lib/pkgconfig pkg-config --modversion kmem)" = \
	    "${ver%%-*}" ] || fail "kmem.pc's version is not $ver"
	# shellcheck disable=SC2086
	cc -std=c11 -Wall -Werror -I"$root/usr/include" -o "$tmp/prog-pc" \
	    "$tmp/prog.c" $flags
	LD_LIBRARY_PATH=$lib "$tmp/prog-pc"
fi
# The packaged CMake package: find_package(kmem) from the unpacked root.
mkdir "$tmp/consumer"
cp "$tmp/prog.c" "$tmp/consumer/"
cat > "$tmp/consumer/CMakeLists.txt" <<'CML'
cmake_minimum_required(VERSION 3.18)
project(kmem_deb_consumer C)
find_package(kmem CONFIG REQUIRED)
message(STATUS "kmem ${kmem_VERSION} at ${kmem_DIR}")
add_executable(prog_shared prog.c)
target_link_libraries(prog_shared PRIVATE kmem::kmem)
add_executable(prog_static prog.c)
target_link_libraries(prog_static PRIVATE kmem::kmem_static)
CML
cmake -S "$tmp/consumer" -B "$tmp/consumer/b" -DCMAKE_PREFIX_PATH="$root/usr" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$tmp/cmake.log" 2>&1 || {
	cat "$tmp/cmake.log"; fail "find_package(kmem) in the packages"; }
grep -q -- "-- kmem .* at $lib/cmake/kmem\$" "$tmp/cmake.log" || {
	cat "$tmp/cmake.log"; fail "find_package(kmem) did not find the packaged one"; }
cmake --build "$tmp/consumer/b" >"$tmp/cmake-build.log" 2>&1 || {
	cat "$tmp/cmake-build.log"; fail "building on kmem::kmem"; }
"$tmp/consumer/b/prog_shared"
"$tmp/consumer/b/prog_static"
# The packaged kmemstat finds the packaged libkmem-malloc.so (its
# multiarch directory, from ../lib/$ma): `kmemstat -- true` runs and
# passes true's status on (true itself never calls malloc, so nothing is
# counted), and ls, which allocates, is counted, on kmem's size classes.
"$root/usr/bin/kmemstat" -- true 2>"$tmp/kmemstat.out" ||
	{ cat "$tmp/kmemstat.out"; fail "kmemstat -- true"; }
if "$root/usr/bin/kmemstat" -- false 2>/dev/null; then
	fail "kmemstat -- false exited 0"
fi
"$root/usr/bin/kmemstat" -j -o "$tmp/ls.json" -- ls -l / >/dev/null
grep -q '"processes":\[{"pid":[0-9]*,"command":"ls"}\]' "$tmp/ls.json" ||
	{ head -c 400 "$tmp/ls.json"; fail "kmemstat counted no ls"; }
grep -q '"name":"kmem-00016"' "$tmp/ls.json" ||
	fail "packaged kmemstat: ls did not run on kmem"

if command -v lintian >/dev/null 2>&1; then
	# The source package too (debian/control, copyright, source tags).
	(cd "$tmp/kmem" && dpkg-buildpackage -us -uc -S -d) \
	    >"$tmp/source.log" 2>&1 || { tail -30 "$tmp/source.log"; fail "source package"; }
	lintian --pedantic -I "$tmp/kmem_${ver}_$arch.changes" \
	    "$tmp/kmem_$ver.dsc" >"$tmp/lintian.log" 2>&1 || true
	grep -v 'running with root privileges' "$tmp/lintian.log" || true
	if grep -q '^[EW]:' "$tmp/lintian.log"; then
		fail "lintian errors or warnings"
	fi
else
	echo "deb: lintian not installed: not run"
fi
echo "1 passed, 0 failed"
