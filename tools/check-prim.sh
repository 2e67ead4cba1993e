#!/bin/sh
# The platform contract (src/internal/prim.h): only src/prim/ may call the
# operating system's memory, environment, stderr and fork services.
cd "$(dirname "$0")/.." || exit 1
bad=$(grep -nE '\b(mmap|munmap|madvise|mprotect|getenv|secure_getenv|pthread_atfork|sched_getcpu)[[:space:]]*\(|\bwrite[[:space:]]*\([[:space:]]*(2|STDERR_FILENO)' \
	$(git ls-files 'src/*.c' 'src/*.h' | grep -v '^src/prim/') 2>/dev/null | grep -v '^\S*:[0-9]*:[[:space:]]*\*')
if [ -n "$bad" ]; then
	echo "check-prim: OS calls outside src/prim/:" >&2
	echo "$bad" >&2
	exit 1
fi
exit 0
