#!/bin/sh
# The platform contract (src/internal/prim.h): only src/prim/ may call
# the operating system or the C library's OS services -- memory,
# threads and locks, time, the environment, signals, files, fork and
# exit.  Everything else reaches them through prim, so that the
# freestanding build (docs/embedding.md) has nothing else to provide.
# Comment lines (" * ...") are not code and are skipped.
cd "$(dirname "$0")/.." || exit 1

# Calls by name (followed by "("); one group per line.
calls='mmap|munmap|madvise|mprotect|mremap|brk|sbrk'
calls="$calls|pthread_[a-z_]+|sched_[a-z_]+|thrd_[a-z_]+|mtx_[a-z_]+|cnd_[a-z_]+"
calls="$calls|clock_gettime|gettimeofday|time|nanosleep|usleep|sleep"
calls="$calls|getenv|secure_getenv|setenv|putenv"
calls="$calls|sigprocmask|sigaction|signal|sigfillset|sigemptyset|raise|kill"
calls="$calls|getpid|gettid|fork|syscall|sysconf|getauxval"
calls="$calls|open|openat|close|read|write|creat|unlink"
calls="$calls|fopen|fclose|fprintf|printf|puts|fputs|fwrite|fflush|perror"
calls="$calls|atexit|at_quick_exit|exit|_exit|abort"
calls="$calls|malloc|calloc|realloc|free|posix_memalign|aligned_alloc"

# Headers of OS services.
hdrs='pthread|signal|unistd|fcntl|time|sched|threads|stdlib|sys/[a-z_]+'

# Code only: string literals, /* */ and // comments on a line blanked,
# comment-block lines (" * ...") skipped.
code() {
	sed -E 's/"([^"\\]|\\.)*"/""/g; s:/\*([^*]|\*+[^*/])*\*+/::g; s://.*$::; s:/\*.*$::' "$1" |
		grep -nE "$2" | grep -vE '^[0-9]+:[[:space:]]*\*' | sed "s|^|$1:|"
}

bad=
for f in $(git ls-files 'src/*.c' 'src/*.h' | grep -v '^src/prim/'); do
	if [ "$f" = src/malloc.c ] || [ "$f" = src/malloc_info.c ]; then
		# The C library's allocator itself (LD_PRELOAD only; not in
		# the freestanding build): it defines malloc and friends and
		# sets errno, and malloc_info writes to the caller's FILE
		# through stdio, but they call the OS no more than the rest.
		pat="(^|[^A-Za-z0-9_.>])(mmap|munmap|madvise|mprotect|pthread_[a-z_]+|getenv|write|open|close|sched_[a-z_]+|sysconf|abort)[[:space:]]*\("
	else
		pat="(^|[^A-Za-z0-9_.>])($calls)[[:space:]]*\(|^[[:space:]]*#[[:space:]]*include[[:space:]]*<($hdrs)\.h>"
	fi
	bad="$bad$(code "$f" "$pat")
"
done
bad=$(echo "$bad" | grep -v '^$')
if [ -n "$bad" ]; then
	echo "check-prim: OS calls outside src/prim/:" >&2
	echo "$bad" >&2
	exit 1
fi
exit 0
