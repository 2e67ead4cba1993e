/*
 * malloc_sized -- C23's free_sized and free_aligned_sized on
 * libkmem-malloc.so (issue 12 section 2; malloc.c section 10), and its
 * operator new seen from a C program, with no C++ runtime loaded.
 *
 *  - every size 1..4096, then step 7 to 16 KiB, and large sizes, from
 *    malloc, calloc and realloc chains, freed by free_sized with the size
 *    asked for (0 too); free_sized(NULL, n) is nothing; errno untouched;
 *  - aligned_alloc for every alignment 2^0..2^21 and a grid of sizes,
 *    freed by free_aligned_sized; the object goes back to its class (the
 *    next allocation of that size and alignment on this CPU returns it);
 *  - a wrong size with debugging off never hands an object to another
 *    class: an object of the 48-byte class freed as 1000 bytes, one of
 *    the 1024-byte class freed as 40, a large block freed as 40 and a
 *    small object freed as 100000 -- then, on the same CPU, allocations
 *    of both sizes: none overlaps the object (a class that had taken it
 *    would hand it out at once, its group being last in, first out), all
 *    are distinct and usable in full;
 *  - with KMEM_DEBUG=size (this program again, as a child): a wrong size
 *    is reported, "kmem: free_sized(PTR, SIZE) != allocated size N" (and
 *    free_aligned_sized's, and a large block's); the right sizes pass;
 *  - operator new and its nothrow form called from C through dlsym, with
 *    no libstdc++ in the process: a size that cannot be had aborts with
 *    "kmem: operator new(SIZE): out of memory, and no C++ runtime ...";
 *    the nothrow form returns NULL.
 *
 * glibc 2.36 has no free_sized: the oracle run skips (exit 77).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "t.h"

static void (*f_free_sized)(void *, size_t);
static void (*f_free_aligned_sized)(void *, size_t, size_t);
static void *(*volatile f_malloc)(size_t) = malloc;
static void *(*volatile f_calloc)(size_t, size_t) = calloc;
static void *(*volatile f_realloc)(void *, size_t) = realloc;
static void *(*volatile f_aligned_alloc)(size_t, size_t) = aligned_alloc;

static void
fill(void *p, size_t n, unsigned char c)
{
	memset(p, c, n);
}

static void
check(const void *p, size_t n, unsigned char c)
{
	const unsigned char *b = p;
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != c)
			T_FAIL("%p: byte %zu is %#x, not %#x", p, i, b[i], c);
}

static void
sized(void *p, size_t n)
{
	errno = 1234;
	f_free_sized(p, n);
	T_EQ(errno, 1234);
}

static void
test_sizes(void)
{
	static const size_t large[] = {
	    16385, 20000, 32768, 65536, 65537, 100000, 1u << 20, 8u << 20};
	size_t n, i;
	void *p, *q;

	sized(NULL, 0);
	sized(NULL, 100);
	for (n = 0; n <= 16384; n += n < 4096 ? 1 : 7) {
		p = f_malloc(n);
		T_ASSERT(p != NULL);
		fill(p, n, 0x5a);
		sized(p, n);
	}
	for (i = 0; i < sizeof large / sizeof large[0]; i++) {
		p = f_malloc(large[i]);
		T_ASSERT(p != NULL);
		fill(p, large[i], 0x5a);
		sized(p, large[i]);
		p = f_calloc(large[i] / 8, 8);
		check(p, large[i] / 8 * 8, 0);
		sized(p, large[i] / 8 * 8);
	}
	for (n = 1; n <= 4096; n += 13) {
		p = f_calloc(n, 3);
		check(p, n * 3, 0);
		sized(p, n * 3);
	}
	/* realloc chains, growing and shrinking: the last size counts. */
	for (i = 0; i < 200; i++) {
		size_t sz = 1 + (size_t)t_rand_below(100), j;

		p = f_malloc(sz);
		for (j = 0; j < 12; j++) {
			size_t nsz = 1 +
			    (size_t)t_rand_below(
				t_rand_below(4) == 0 ? 300000 : 5000);

			fill(p, sz, (unsigned char)j);
			q = f_realloc(p, nsz);
			T_ASSERT(q != NULL);
			check(q, sz < nsz ? sz : nsz, (unsigned char)j);
			p = q;
			sz = nsz;
		}
		sized(p, sz);
	}
}

static void
test_aligned(void)
{
	static const size_t sizes[] = {0, 1, 8, 15, 16, 17, 40, 64, 100, 129,
	    1000, 1024, 4000, 4096, 5000, 12000, 16384, 16385, 40000, 100000,
	    1u << 20};
	size_t a, i;

	for (a = 1; a <= (1u << 21); a <<= 1)
		for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			void *p = f_aligned_alloc(a, sizes[i]);

			T_ASSERT(p != NULL);
			T_EQ((uintptr_t)p & (a - 1), 0);
			fill(p, sizes[i], 0xa5);
			errno = 1234;
			f_free_aligned_sized(p, a, sizes[i]);
			T_EQ(errno, 1234);
		}
	f_free_aligned_sized(NULL, 64, 10);
}

static bool
under_kmem(void)
{
	return getenv("KMEM_TEST_PRELOAD") != NULL;
}

/* kmem: a sized free puts the object back into its own class. */
static void
test_reuse(void)
{
	static const size_t sizes[] = {
	    1, 16, 40, 64, 100, 1000, 1024, 4097, 16384};
	static const size_t aligns[] = {32, 64, 256, 4096};
	cpu_set_t saved;
	size_t i, j;

	if (!under_kmem())
		return;
	if (!t_pin_here(&saved))
		t_skip("cannot pin to a CPU");
	for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		void *p = f_malloc(sizes[i]), *q;

		f_free_sized(p, sizes[i]);
		q = f_malloc(sizes[i]);
		T_EQ((uintptr_t)q, (uintptr_t)p);
		f_free_sized(q, sizes[i]);
		for (j = 0; j < sizeof aligns / sizeof aligns[0]; j++) {
			p = f_aligned_alloc(aligns[j], sizes[i]);
			f_free_aligned_sized(p, aligns[j], sizes[i]);
			q = f_aligned_alloc(aligns[j], sizes[i]);
			T_EQ((uintptr_t)q, (uintptr_t)p);
			f_free_aligned_sized(q, aligns[j], sizes[i]);
		}
	}
	t_unpin(&saved);
}

/*
 * kmem: "obj" (usable bytes) was freed with a wrong size; allocations of
 * both sizes must never overlap it more than once (its own class may hand
 * it out again, once), and never from the other class.
 */
#define NLIVE 600

static void
no_overlap(void *obj, size_t usable, size_t right, size_t wrong)
{
	static void *live[2][NLIVE];
	uintptr_t o = (uintptr_t)obj;
	size_t sz[2] = {wrong, right}, k, i, j;

	for (k = 0; k < 2; k++)
		for (i = 0; i < NLIVE; i++) {
			uintptr_t a;

			live[k][i] = f_malloc(sz[k]);
			a = (uintptr_t)live[k][i];
			T_ASSERT(live[k][i] != NULL);
			fill(live[k][i], malloc_usable_size(live[k][i]),
			    (unsigned char)(k * 16 + i));
			if (k == 0 && a < o + usable && o < a + sz[k])
				T_FAIL("%p, freed as %zu bytes, came back from "
				       "malloc(%zu) as %p",
				    obj, wrong, sz[k], live[k][i]);
		}
	/* Distinct, intact: no object was handed out twice. */
	for (k = 0; k < 2; k++)
		for (i = 0; i < NLIVE; i++) {
			check(live[k][i], malloc_usable_size(live[k][i]),
			    (unsigned char)(k * 16 + i));
			for (j = 0; j < i; j++)
				T_NE((uintptr_t)live[k][i],
				    (uintptr_t)live[k][j]);
		}
	for (k = 0; k < 2; k++)
		for (i = 0; i < NLIVE; i++)
			f_free_sized(live[k][i], sz[k]);
}

static void
test_wrong_size(void)
{
	static const struct {
		size_t right, wrong;
	} cases[] = {
	    {40, 1000},	  /* into a larger class */
	    {1000, 40},	  /* into a smaller one */
	    {48, 49},	  /* the next class up */
	    {100000, 40}, /* a large block freed as a small object */
	    {40, 100000}, /* and the reverse */
	    {20000, 16000},
	};
	cpu_set_t saved;
	size_t i;

	if (!under_kmem())
		return;
	if (!t_pin_here(&saved))
		t_skip("cannot pin to a CPU");
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		void *p;
		size_t usable;

		/* The wrong size's class is made (an object out and back). */
		f_free_sized(f_malloc(cases[i].wrong), cases[i].wrong);
		p = f_malloc(cases[i].right);
		usable = malloc_usable_size(p);

		printf("   malloc(%zu), free_sized(p, %zu)\n", cases[i].right,
		    cases[i].wrong);
		f_free_sized(p, cases[i].wrong);
		no_overlap(p, usable, cases[i].right, cases[i].wrong);
	}
	t_unpin(&saved);
}

/* ---- KMEM_DEBUG=size: this program again ---- */

static void
d_small(void)
{
	void *p = f_malloc(40);

	f_free_sized(p, 41);
}

static void
d_aligned(void)
{
	void *p = f_aligned_alloc(64, 40);

	f_free_aligned_sized(p, 64, 48);
}

static void
d_large(void)
{
	void *p = f_malloc(100000);

	f_free_sized(p, 99999);
}

/* The right sizes pass under the debug layer (exits 0). */
static void
d_right(void)
{
	void *p = f_malloc(0);

	f_free_sized(p, 0);
	f_free_sized(f_malloc(40), 40);
	f_free_sized(f_calloc(10, 7), 70);
	f_free_sized(f_malloc(100000), 100000);
	p = f_realloc(f_malloc(10), 3000);
	f_free_sized(p, 3000);
	f_free_aligned_sized(f_aligned_alloc(64, 40), 64, 40);
	f_free_aligned_sized(f_aligned_alloc(8192, 40), 8192, 40);
	f_free_sized(NULL, 5);
}

static void (*const debug_case[])(void) = {
    d_small, d_aligned, d_large, d_right};

static void
c_debug(void *arg)
{
	char n[16], *argv[4];

	snprintf(n, sizeof n, "%d", (int)(intptr_t)arg);
	argv[0] = (char *)"malloc_sized";
	argv[1] = (char *)"--debug-case";
	argv[2] = n;
	argv[3] = NULL;
	setenv("KMEM_DEBUG", "size", 1);
	execv("/proc/self/exe", argv);
	perror("execv /proc/self/exe");
	_exit(1);
}

static void
test_debug(void)
{
	char buf[4096];

	if (!under_kmem())
		return;
	T_ASSERT(t_expect_panic(c_debug, (void *)0, "kmem: free_sized(0x"));
	T_ASSERT(
	    t_expect_panic(c_debug, (void *)0, ", 41) != allocated size 40"));
	T_ASSERT(
	    t_expect_panic(c_debug, (void *)1, "kmem: free_aligned_sized(0x"));
	T_ASSERT(
	    t_expect_panic(c_debug, (void *)1, ", 48) != allocated size 40"));
	T_ASSERT(t_expect_panic(
	    c_debug, (void *)2, ", 99999) != allocated size 100000"));
	t_child_ok(c_debug, (void *)3, buf, sizeof buf);
	T_ASSERT(strstr(buf, "survived") != NULL);
}

/* ---- operator new with no C++ runtime ---- */

static void
c_new_huge(void *arg)
{
	void *(*nw)(size_t) = (void *(*)(size_t))arg;

	fprintf(stderr, "new gave %p\n", nw((size_t)1 << 50));
}

static void
test_new_without_runtime(void)
{
	void *(*nw)(size_t);
	void *(*nw_nt)(size_t, const void *);
	void (*dl)(void *, size_t);
	void *p;

	if (!under_kmem())
		return;
	T_ASSERT(dlsym(RTLD_DEFAULT, "_ZSt15get_new_handlerv") == NULL);
	*(void **)&nw = dlsym(RTLD_DEFAULT, "_Znwm");
	*(void **)&nw_nt = dlsym(RTLD_DEFAULT, "_ZnwmRKSt9nothrow_t");
	*(void **)&dl = dlsym(RTLD_DEFAULT, "_ZdlPvm");
	T_ASSERT(nw != NULL && nw_nt != NULL && dl != NULL);
	p = nw(100);
	T_EQ(malloc_usable_size(p), 112);
	dl(p, 100);
	T_ASSERT(nw_nt((size_t)1 << 50, NULL) == NULL);
	T_ASSERT(t_expect_panic(c_new_huge, *(void **)&nw,
	    "kmem: operator new(1125899906842624): out of memory, and no C++ "
	    "runtime"));
}

int
main(int argc, char **argv)
{
	*(void **)&f_free_sized = dlsym(RTLD_DEFAULT, "free_sized");
	*(void **)&f_free_aligned_sized =
	    dlsym(RTLD_DEFAULT, "free_aligned_sized");
	if (argc == 3 && strcmp(argv[1], "--debug-case") == 0) {
		debug_case[atoi(argv[2]) & 3]();
		fprintf(
		    stderr, "malloc_sized: debug case %s survived\n", argv[2]);
		return 0;
	}
	if (f_free_sized == NULL || f_free_aligned_sized == NULL)
		t_skip("this C library has no free_sized/free_aligned_sized");
	t_args(argc, argv);
	t_seed();
	T_RUN_IF(test_sizes);
	T_RUN_IF(test_aligned);
	T_RUN_IF(test_reuse);
	T_RUN_IF(test_wrong_size);
	T_RUN_IF(test_debug);
	T_RUN_IF(test_new_without_runtime);
	return t_done();
}
