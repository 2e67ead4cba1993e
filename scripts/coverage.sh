#!/bin/sh
# make coverage: run the whole ctest suite in the coverage build (gcc
# --coverage, -DKMEM_COVERAGE=ON) and report which lines, functions and
# branches of src/ it ran, with Debian's gcovr.
#
#   sh scripts/coverage.sh BUILD_DIR [JOBS]
#
# Reports, for people: BUILD_DIR/coverage/index.html (every file, line by
# line) and BUILD_DIR/coverage.txt.  The last line printed is always
#   coverage: lines L%, functions F%, branches B%
# and the exit status is ctest's.
#
# Processes that die in kmem_panic and those that leave by _exit (every
# test's fork child) count: the coverage build writes their counts first
# (src/prim/linux.c's kmem_prim_abort, tests/coverage/cov_exit.c).  Many processes write the same
# .gcda files at once (ctest -j, fork children, the preloaded library in
# every program of a preload test): gcov merges into them under a lock.
# That, the atomic counters of threaded code and the _exit hook are
# checked first on a small program, so that a toolchain that loses counts
# is told, not believed.
set -e
B=$(cd "$1" && pwd)
JOBS=${2:-2}
SRC=$(cd "$(dirname "$0")/.." && pwd)

# ---- do concurrent writers, threads and _exit children all count? ----
check_merge() {
	d=$B/coverage-merge-check
	rm -rf "$d"
	mkdir -p "$d"
	cat >"$d/m.c" <<'EOC'
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile int sink;
/* What src/error.c provides to the _exit hook (tests/coverage). */
void __gcov_dump(void);
void kmem_coverage_dump(void);
void kmem_coverage_dump(void)
{
	__gcov_dump();
}
static void *work(void *a)
{
	for (int i = 0; i < 10000; i++)
		sink++; /* COUNT */
	return a;
}
static void run(void)
{
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], 0, work, 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], 0);
}
int main(void)
{
	pid_t p = fork();
	run();
	if (p == 0)
		_exit(0);
	waitpid(p, 0, 0);
	return 0;
}
EOC
	(cd "$d" &&
	    gcc --coverage -fprofile-update=atomic -O0 -c m.c -o m.o &&
	    gcc --coverage -O0 -c "$SRC/tests/coverage/cov_exit.c" -o e.o &&
	    gcc --coverage -Wl,--wrap=_exit m.o e.o -o m -pthread -ldl)
	i=0
	while [ $i -lt 16 ]; do
		"$d/m" &
		i=$((i + 1))
	done
	wait
	n=$(cd "$d" && gcov -t m.o 2>/dev/null | awk -F: '/COUNT/ {
	    gsub(/ /, "", $1); print $1 }')
	want=$((16 * 2 * 4 * 10000))
	if [ "$n" != "$want" ]; then
		echo "kmem: coverage: gcov lost counts: $n of $want" \
		    "(16 processes, each forking, 4 threads each)" >&2
		exit 1
	fi
	rm -rf "$d"
}
check_merge

# ---- the suite ----
find "$B" -name '*.gcda' -delete
rc=0
(cd "$B" && ctest --output-on-failure -j "$JOBS" --timeout 900) || rc=$?

# ---- the report: src/ only ----
# The library's counts are in its two object directories (the library,
# and libkmem-malloc.so compiled once more); gcovr adds the two up.
# A process that writes its counts while another of its threads is in
# the middle of a function (a fork child of a threaded program, a panic
# or an exit while threads run) leaves counts that do not add up, and
# gcov then derives a negative count for an edge now and then: gcovr
# (5.2) skips those lines with a warning rather than stopping.  (gcovr
# runs serially: with -j, 5.2 hangs when a worker meets such a line.)
mkdir -p "$B/coverage"
cd "$SRC"
gcovr --root . --filter 'src/' --gcov-ignore-parse-errors \
    --html-details "$B/coverage/index.html" --txt "$B/coverage.txt" \
    --json-summary "$B/coverage.json" \
    "$B/CMakeFiles/kmem_obj.dir" "$B/CMakeFiles/kmem_malloc_obj.dir"
echo "kmem: report in $B/coverage/index.html and $B/coverage.txt"
[ $rc -eq 0 ] || echo "kmem: coverage: the test suite FAILED (ctest $rc)"
python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print("coverage: lines %.1f%%, functions %.1f%%, branches %.1f%%" % (
    s["line_percent"], s["function_percent"], s["branch_percent"]))
' "$B/coverage.json"
exit $rc
