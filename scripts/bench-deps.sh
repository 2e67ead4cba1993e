#!/bin/sh
# Install the allocators bench_kmem and bench-malloc.py compare kmem
# with, if they are missing: the runtime libraries of jemalloc, tcmalloc
# (minimal) and mimalloc (dlopened or preloaded; building needs none of
# them), and python3 and gnuplot for bench-malloc.py.
# Debian/Ubuntu: apt-get (as root, or through sudo).  Prints nothing when
# everything is already there; never fails: without a peer, bench_kmem
# prints "not installed" and measures the others.
need=""
have() { command -v "$1" >/dev/null 2>&1; }
installed() {
	dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q 'ok installed'
}
have dpkg-query || { echo "kmem: bench-deps: no dpkg; install jemalloc," \
	"tcmalloc and mimalloc yourself to compare with them" >&2; exit 0; }
for p in libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0; do
	installed "$p" || need="$need $p"
done
# bench-malloc.py: python3 runs it, gnuplot draws its plots.
have python3 || need="$need python3"
have gnuplot || need="$need gnuplot-nox"
[ -z "$need" ] && exit 0
echo "kmem: installing the benchmark's peers:$need" >&2
if [ "$(id -u)" = 0 ]; then SUDO=; elif have sudo; then SUDO="sudo -n"; else
	echo "kmem: warning: need root (or sudo) to install:$need;" \
	    "bench_kmem skips them" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get update -qq &&
	$SUDO apt-get install -y -qq --no-install-recommends $need; }; then
	echo "kmem: warning: could not install:$need; bench_kmem skips" \
	    "them" >&2
fi
exit 0
