#!/bin/sh
# Issue 11: everything mutable lives in a domain.  The data and bss
# symbols of libkmem.a (TLS included) are what stays global, each listed
# with its reason in src/domain.c's design comment ("What stays global"):
# at most 15, and every one of them named there.
# Usage: globals.sh SOURCE_DIR BUILD_DIR
src=$1
build=$2
lib=$build/libkmem.a
[ -f "$lib" ] || { echo "globals: no $lib" >&2; exit 1; }
# (Coverage builds add gcov's counters and error.c's KMEM_COVERAGE
# flag, kmemi_cov_dumping: not the library's.)
syms=$(nm "$lib" 2>/dev/null | awk '$2 ~ /^[bBdD]$/ && $3 !~ /^(__gcov|kmemi_cov_)/ {print $3}' | sort -u)
n=$(printf '%s\n' "$syms" | grep -c .)
echo "globals: $n data/bss symbols in libkmem.a"
printf '%s\n' "$syms"
status=0
if [ "$n" -gt 15 ]; then
	echo "globals: FAIL: more than 15" >&2
	status=1
fi
for s in $syms; do
	if ! grep -q "$s" "$src/src/domain.c"; then
		echo "globals: FAIL: $s is not in domain.c's list of what stays global" >&2
		status=1
	fi
done
exit $status
