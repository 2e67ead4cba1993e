/*
 * cov_exit.c -- coverage builds only (make coverage): _exit writes the
 * process's coverage counts of the library before it leaves.
 *
 * gcov writes a process's counts from an exit handler; a process that
 * leaves by _exit(2) -- every test's fork child (tests/t.h t_child), the
 * children of the fork tests -- would take its counts with it.  Every
 * program of a coverage build is linked with -Wl,--wrap=_exit
 * (CMakeLists.txt), so its calls to _exit come here, and
 * kmem_coverage_dump (src/error.c) writes the counts first: the
 * program's own, when the library is linked into it, else those of
 * libkmem-malloc.so when that is loaded (its own copy of gcov's runtime;
 * a coverage build of it exports the function, and this weak reference
 * binds to it at run time).  A program with neither (the glibc.* runs of
 * the preload tests) has no counts of the library to write: nothing is
 * done, so a child forked from a signal handler in the middle of glibc's
 * malloc never calls malloc (gcov's writer does) on its way out.
 *
 * gcov merges into the .gcda files under a file lock, so children and
 * parents writing at once lose nothing (scripts/coverage.sh checks this
 * before it runs the suite).  Processes that die in kmem_panic write
 * theirs from kmem_prim_abort (src/prim/linux.c).
 */
void kmem_coverage_dump(void) __attribute__((weak));
_Noreturn void __real__exit(int status);
_Noreturn void __wrap__exit(int status);

void
__wrap__exit(int status)
{
	if (kmem_coverage_dump != 0)
		kmem_coverage_dump();
	__real__exit(status);
}
