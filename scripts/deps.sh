#!/bin/sh
# Install what building and testing kmem needs, if it is missing: the
# compilers and tools, and the programs the malloc shim's tests run.
# Debian/Ubuntu: apt-get (as root, or through sudo).  Prints nothing when
# everything is already there.  "deps.sh coverage": gcovr as well.
set -e
need=""
have() { command -v "$1" >/dev/null 2>&1; }
have cmake || need="$need cmake"
have make || need="$need make"
have gcc || need="$need gcc"
have g++ || need="$need g++"
have clang || need="$need clang"
have valgrind || need="$need valgrind"
have clang-format || need="$need clang-format"
have pkg-config || need="$need pkg-config"
# The malloc shim's tests run real programs on it (tests/programs).
have python3 || need="$need python3"
have sqlite3 || need="$need sqlite3"
have perl || need="$need perl"
[ -f /usr/include/stdio.h ] || need="$need libc6-dev"
# tests/integration/deb.sh builds the Debian packages and lints them.
have dpkg-buildpackage || need="$need dpkg-dev"
have dh || need="$need debhelper"
have lintian || need="$need lintian"
# `make coverage` (sh scripts/deps.sh coverage) also needs gcovr.
if [ "$1" = coverage ]; then
	have gcovr || need="$need gcovr"
fi
# clang's sanitizer runtimes live in libclang-rt-*-dev on Debian 12.
if have clang; then
	rt=$(clang -print-file-name=libclang_rt.asan-x86_64.a 2>/dev/null || true)
	[ -n "$rt" ] && [ -f "$rt" ] || need="$need libclang-rt-dev"
fi
[ -z "$need" ] && exit 0
echo "kmem: installing:$need" >&2
if [ "$(id -u)" = 0 ]; then SUDO=; elif have sudo; then SUDO=sudo; else
	echo "kmem: need root (or sudo) to install:$need" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $need
