#!/bin/sh
# The CMake package: install into a scratch prefix, then build a small
# consumer project with find_package(kmem CONFIG) -- one program on
# kmem::kmem (shared), one on kmem::kmem_static -- and one program through
# pkg-config (pkg_check_modules), and run the three.  Then move the prefix
# and build again: the package finds itself where it lies.  A request for
# another major version is refused (kmemConfigVersion.cmake).
# Usage: cmake_package.sh SOURCE_DIR BUILD_DIR
set -eu
build=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/kmem-cmake.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(cd "$prefix" && ls -d lib*/cmake/kmem | sed 's|/cmake/kmem$||')
for f in kmemConfig.cmake kmemConfigVersion.cmake kmemTargets.cmake; do
	[ -f "$prefix/$libdir/cmake/kmem/$f" ] || {
		echo "missing $prefix/$libdir/cmake/kmem/$f"; exit 1; }
done
# A coverage build's library needs gcov's runtime (make coverage).
cov=""
[ "${KMEM_COVERAGE:-}" = 1 ] && cov=--coverage

mkdir "$tmp/consumer"
cat > "$tmp/consumer/prog.c" <<'PROG'
#include <kmem/kmem.h>
#include <kmem/pool.h>
#include <kmem/vmem.h>
#include <stdio.h>
#include <string.h>

struct obj {
	int a[5];
};

int
main(void)
{
	vmem_t *vm = vmem_create("ids", 1, 100, 1, NULL, NULL, NULL, 0,
	    VM_SLEEP, IPL_NONE);
	pool_cache_t pc = pool_cache_init(sizeof(struct obj), 0, 0, 0, "objs",
	    NULL, IPL_NONE, NULL, NULL, NULL);
	vmem_addr_t a;
	struct obj *o;
	char *s;

	if (vm == NULL || vmem_alloc(vm, 1, VM_NOSLEEP, &a) != 0 || a != 1)
		return 1;
	vmem_free(vm, a, 1);
	vmem_destroy(vm);
	if ((o = pool_cache_get(pc, PR_WAITOK)) == NULL)
		return 2;
	memset(o, 0, sizeof *o);
	pool_cache_put(pc, o);
	pool_cache_destroy(pc);
	s = kmem_alloc(100, KM_SLEEP);
	strcpy(s, "consumer");
	printf("%s on kmem works\n", s);
	kmem_free(s, 100);
	return 0;
}
PROG
cat > "$tmp/consumer/CMakeLists.txt" <<'CML'
cmake_minimum_required(VERSION 3.18)
project(kmem_consumer C)
# Another major version is not this one.
find_package(kmem 1 CONFIG QUIET)
if(kmem_FOUND)
  message(FATAL_ERROR "find_package(kmem 1) accepted ${kmem_VERSION}")
endif()
find_package(kmem 0.1 CONFIG REQUIRED)
message(STATUS "kmem ${kmem_VERSION} at ${kmem_DIR}")
if(NOT EXISTS "${kmem_MALLOC_LIBRARY}" OR NOT IS_DIRECTORY "${kmem_INCLUDE_DIR}")
  message(FATAL_ERROR "kmem_MALLOC_LIBRARY or kmem_INCLUDE_DIR wrong")
endif()
add_executable(prog_shared prog.c)
target_link_libraries(prog_shared PRIVATE kmem::kmem)
add_executable(prog_static prog.c)
target_link_libraries(prog_static PRIVATE kmem::kmem_static)
if(WITH_PKGCONFIG)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(KMEM REQUIRED IMPORTED_TARGET kmem)
  add_executable(prog_pc prog.c)
  target_link_libraries(prog_pc PRIVATE PkgConfig::KMEM)
endif()
CML

# configure DIR PREFIX [ARGS]: the consumer in DIR against PREFIX only.
configure() {
	d=$1 p=$2
	shift 2
	PKG_CONFIG_LIBDIR="$p/$libdir/pkgconfig" cmake -S "$tmp/consumer" \
	    -B "$d" -DCMAKE_PREFIX_PATH="$p" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
	    -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXE_LINKER_FLAGS="$cov" "$@" \
	    >"$d.log" 2>&1 || { cat "$d.log"; exit 1; }
	grep -q -- "-- kmem 0.1.0 at $p/$libdir/cmake/kmem\$" "$d.log" || {
		echo "consumer did not find kmem in $p:"; cat "$d.log"; exit 1; }
	cmake --build "$d" >"$d.build.log" 2>&1 || { cat "$d.build.log"; exit 1; }
}
# needed PROGRAM: its libkmem (NEEDED entries), "" if none.
needed() {
	readelf -d "$1" | sed -n 's/.*NEEDED.*\[\(libkmem[^]]*\)\].*/\1/p'
}

PKG_CONFIG_LIBDIR="$prefix/$libdir/pkgconfig" pkg-config --validate kmem || {
	echo "the installed kmem.pc does not validate"; exit 1; }
configure "$tmp/b1" "$prefix" -DWITH_PKGCONFIG=ON
[ "$(needed "$tmp/b1/prog_shared")" = libkmem.so.0 ] || {
	echo "prog_shared does not need libkmem.so.0"; exit 1; }
[ -z "$(needed "$tmp/b1/prog_static")" ] || {
	echo "prog_static needs a shared libkmem"; exit 1; }
[ "$(needed "$tmp/b1/prog_pc")" = libkmem.so.0 ] || {
	echo "prog_pc does not need libkmem.so.0"; exit 1; }
# kmem::kmem carries its location: the build tree's RUNPATH finds it.
"$tmp/b1/prog_shared"
"$tmp/b1/prog_static"
LD_LIBRARY_PATH="$prefix/$libdir" "$tmp/b1/prog_pc"

# The installed package is relocatable.
mv "$prefix" "$tmp/moved"
configure "$tmp/b2" "$tmp/moved"
ldd "$tmp/b2/prog_shared" | grep -q "libkmem.so.0 => $tmp/moved/" || {
	echo "after the move, prog_shared does not use the moved library:"
	ldd "$tmp/b2/prog_shared"; exit 1; }
"$tmp/b2/prog_shared"
"$tmp/b2/prog_static"
echo "1 passed, 0 failed"
