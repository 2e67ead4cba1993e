/*
 * malloc_cxx -- C++'s operator new and delete, every replaceable form,
 * on libkmem-malloc.so (issue 12 section 2; malloc.c section 10), the
 * same binary run on libstdc++'s own (the oracle, "glibc.malloc_cxx").
 *
 *  - every form called by hand: new, new[], nothrow, aligned (2^0 ..
 *    2^21), aligned nothrow; delete, delete[], nothrow, sized, aligned,
 *    aligned nothrow, sized and aligned; results aligned, usable in full;
 *    new(0) gives distinct pointers;
 *  - the forms a compiler emits: new/delete of a small class (sized
 *    delete), of an array of a class with a destructor (sized delete[]
 *    with its cookie), of an over-aligned class (aligned new, sized and
 *    aligned delete), and random mixes of sizes and forms, patterns
 *    verified;
 *  - failure: an impossible size (2^50) throws std::bad_alloc from every
 *    throwing form, the nothrow forms return nullptr; a new handler is
 *    called until it removes itself (then std::bad_alloc), and an
 *    exception it throws reaches the caller (both unwind through kmem's C
 *    frames); kmem's nothrow forms call no handler (libstdc++'s do); a
 *    non-power-of-two alignment throws std::bad_alloc (nothrow: nullptr),
 *    as libstdc++'s does;
 *  - under kmem (KMEM_TEST_PRELOAD): each form's address is in
 *    libkmem-malloc.so (dladdr), malloc_usable_size gives kmem's classes,
 *    a sized delete puts the object back into its class (the next new on
 *    this CPU returns it), a wrong size with debugging off never hands
 *    the object to another class, and with KMEM_DEBUG=size (this program
 *    again, as a child) a wrong size in operator delete, delete[] and the
 *    aligned sized form is reported: "kmem: operator delete(PTR, SIZE) !=
 *    allocated size N".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>
#include <stdexcept>

#include "t.h"

namespace
{

bool
under_kmem()
{
	return getenv("KMEM_TEST_PRELOAD") != nullptr;
}

void
sink(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

void
fill(void *p, size_t n, unsigned char c)
{
	memset(p, c, n);
}

void
check(const void *p, size_t n, unsigned char c)
{
	const unsigned char *b = static_cast<const unsigned char *>(p);

	for (size_t i = 0; i < n; i++)
		if (b[i] != c)
			T_FAIL("%p: byte %zu is %#x, not %#x", p, i, b[i], c);
}

const size_t huge = (size_t)1 << 50;

/* ---- every form by hand ---- */

void
test_forms()
{
	static const size_t sizes[] = {0, 1, 15, 16, 17, 40, 100, 1000, 4096,
	    16384, 16385, 65536, 100000, 1u << 20};
	const std::nothrow_t &nt = std::nothrow;

	for (size_t n : sizes) {
		void *v[8];

		v[0] = ::operator new(n);
		v[1] = ::operator new[](n);
		v[2] = ::operator new(n, nt);
		v[3] = ::operator new[](n, nt);
		v[4] = ::operator new(n);
		v[5] = ::operator new[](n);
		v[6] = ::operator new(n);
		v[7] = ::operator new[](n);
		for (int i = 0; i < 8; i++) {
			T_ASSERT(v[i] != nullptr);
			T_EQ((uintptr_t)v[i] & 15, 0);
			fill(v[i], n, (unsigned char)i);
		}
		for (int i = 0; i < 8; i++)
			check(v[i], n, (unsigned char)i);
		::operator delete(v[0]);
		::operator delete[](v[1]);
		::operator delete(v[2], nt);
		::operator delete[](v[3], nt);
		::operator delete(v[4], n);
		::operator delete[](v[5], n);
		::operator delete(v[6], n);
		::operator delete[](v[7], n);
	}
	for (size_t a = 1; a <= (1u << 21); a <<= 1) {
		std::align_val_t al = static_cast<std::align_val_t>(a);

		for (size_t n : sizes) {
			void *v[8];

			v[0] = ::operator new(n, al);
			v[1] = ::operator new[](n, al);
			v[2] = ::operator new(n, al, nt);
			v[3] = ::operator new[](n, al, nt);
			v[4] = ::operator new(n, al);
			v[5] = ::operator new[](n, al);
			v[6] = ::operator new(n, al, nt);
			v[7] = ::operator new[](n, al, nt);
			for (int i = 0; i < 8; i++) {
				T_ASSERT(v[i] != nullptr);
				T_EQ((uintptr_t)v[i] & (a - 1), 0);
				fill(v[i], n, (unsigned char)i);
			}
			for (int i = 0; i < 8; i++)
				check(v[i], n, (unsigned char)i);
			::operator delete(v[0], al);
			::operator delete[](v[1], al);
			::operator delete(v[2], al, nt);
			::operator delete[](v[3], al, nt);
			::operator delete(v[4], n, al);
			::operator delete[](v[5], n, al);
			::operator delete(v[6], n, al);
			::operator delete[](v[7], n, al);
		}
	}
	/* new(0): distinct pointers. */
	void *z[64];
	for (int i = 0; i < 64; i++) {
		z[i] = ::operator new(0);
		for (int j = 0; j < i; j++)
			T_NE((uintptr_t)z[i], (uintptr_t)z[j]);
	}
	for (int i = 0; i < 64; i++)
		::operator delete(z[i], (size_t)0);
	::operator delete(nullptr);
	::operator delete(nullptr, (size_t)16);
	::operator delete[](nullptr, (size_t)16);
	::operator delete(nullptr, std::align_val_t(64));
	::operator delete(nullptr, (size_t)16, std::align_val_t(64));
}

/* ---- what the compiler emits ---- */

struct small {
	char c[40];
};

int dtors;

struct counted {
	char c[24];
	~counted()
	{
		dtors++;
	}
};

struct alignas(64) line {
	char c[40];
};

struct alignas(4096) page {
	char c[100];
};

void
test_expressions()
{
	for (int round = 0; round < 100; round++) {
		small *s = new small;
		counted *cs = new counted[round + 1];
		line *l = new line;
		line *ls = new line[round + 1];
		page *pg = new page;
		char *str = new char[round + 1];

		T_EQ((uintptr_t)l & 63, 0);
		T_EQ((uintptr_t)ls & 63, 0);
		T_EQ((uintptr_t)pg & 4095, 0);
		fill(s, sizeof *s, 1);
		fill(l, sizeof *l, 2);
		fill(pg, sizeof *pg, 3);
		fill(str, (size_t)round + 1, 4);
		sink(cs);
		sink(ls);
		delete s;
		dtors = 0;
		delete[] cs;
		T_EQ(dtors, round + 1);
		delete l;
		delete[] ls;
		delete pg;
		delete[] str;
	}
}

/* Random sizes and forms, many live, patterns checked before each free. */
void
test_random()
{
	enum { NLIVE = 512 };
	struct obj {
		void *p;
		size_t n, align;
		int form;
	} live[NLIVE];
	uint64_t rounds = t_scale(200000);

	memset(live, 0, sizeof live);
	for (uint64_t r = 0; r < rounds; r++) {
		struct obj *o = &live[t_rand_below(NLIVE)];

		if (o->p != nullptr) {
			check(o->p, o->n, (unsigned char)(uintptr_t)o);
			std::align_val_t al = std::align_val_t(o->align);
			switch (o->form) {
			case 0:
				::operator delete(o->p);
				break;
			case 1:
				::operator delete(o->p, o->n);
				break;
			case 2:
				::operator delete[](o->p, o->n);
				break;
			case 3:
				::operator delete(o->p, o->n, al);
				break;
			case 4:
				::operator delete[](o->p, al);
				break;
			default:
				free(o->p);
			}
		}
		o->form = (int)t_rand_below(6);
		o->n = t_rand_below(8) == 0 ? t_rand_below(200000)
					    : t_rand_below(2000);
		o->align = o->form == 3 || o->form == 4
		    ? (size_t)1 << t_rand_below(13)
		    : 16;
		if (o->form == 3)
			o->p = ::operator new(o->n, std::align_val_t(o->align));
		else if (o->form == 4)
			o->p = ::operator new[](
			    o->n, std::align_val_t(o->align), std::nothrow);
		else
			o->p = ::operator new(o->n);
		T_ASSERT(o->p != nullptr);
		T_EQ((uintptr_t)o->p & (o->align - 1), 0);
		fill(o->p, o->n, (unsigned char)(uintptr_t)o);
	}
	for (struct obj &o : live)
		if (o.p != nullptr)
			::operator delete(o.p);
}

/* ---- failure ---- */

void
test_bad_alloc()
{
	const std::nothrow_t &nt = std::nothrow;
	std::align_val_t a64 = std::align_val_t(64);
	int caught = 0;

	T_ASSERT(std::get_new_handler() == nullptr);
	try {
		sink(::operator new(huge));
	} catch (const std::bad_alloc &) {
		caught++;
	}
	try {
		sink(::operator new[](huge));
	} catch (const std::bad_alloc &) {
		caught++;
	}
	try {
		sink(::operator new(huge, a64));
	} catch (const std::bad_alloc &) {
		caught++;
	}
	try {
		sink(::operator new[](huge, a64));
	} catch (const std::bad_alloc &) {
		caught++;
	}
	try {
		volatile size_t n = huge;
		char *p = new char[n];
		sink(p);
	} catch (const std::bad_alloc &) {
		caught++;
	}
	T_EQ(caught, 5);
	T_ASSERT(::operator new(huge, nt) == nullptr);
	T_ASSERT(::operator new[](huge, nt) == nullptr);
	T_ASSERT(::operator new(huge, a64, nt) == nullptr);
	T_ASSERT(::operator new[](huge, a64, nt) == nullptr);
	/*
	 * A non-power-of-two alignment: std::bad_alloc, as libstdc++'s.
	 * (Volatile: clang warns of the constants.)
	 */
	volatile size_t a48 = 48, a0 = 0, a3 = 3;
	caught = 0;
	try {
		sink(::operator new(64, std::align_val_t(a48)));
	} catch (const std::bad_alloc &) {
		caught++;
	}
	try {
		sink(::operator new[](64, std::align_val_t(a0)));
	} catch (const std::bad_alloc &) {
		caught++;
	}
	T_EQ(caught, 2);
	T_ASSERT(::operator new(64, std::align_val_t(a48), nt) == nullptr);
	T_ASSERT(::operator new[](64, std::align_val_t(a3), nt) == nullptr);
}

int handler_calls;

void
handler_gives_up()
{
	if (++handler_calls == 3)
		std::set_new_handler(nullptr);
}

struct handler_error : std::runtime_error {
	handler_error() : std::runtime_error("from the new handler")
	{
	}
};

void
handler_throws()
{
	handler_calls++;
	throw handler_error();
}

void
test_new_handler()
{
	int caught = 0;

	/* Called until it removes itself, then std::bad_alloc. */
	for (int form = 0; form < 3; form++) {
		handler_calls = 0;
		std::set_new_handler(handler_gives_up);
		try {
			if (form == 0)
				sink(::operator new(huge));
			else if (form == 1)
				sink(::operator new[](huge));
			else
				sink(::operator new(
				    huge, std::align_val_t(256)));
		} catch (const std::bad_alloc &) {
			caught++;
		}
		T_EQ(handler_calls, 3);
		T_ASSERT(std::get_new_handler() == nullptr);
	}
	T_EQ(caught, 3);
	/*
	 * The nothrow forms: nullptr.  kmem's call no handler (it may throw,
	 * and a C frame cannot catch); libstdc++'s call it until it removes
	 * itself.
	 */
	handler_calls = 0;
	std::set_new_handler(handler_gives_up);
	T_ASSERT(::operator new(huge, std::nothrow) == nullptr);
	T_EQ(handler_calls, under_kmem() ? 0 : 3);
	std::set_new_handler(nullptr);
	/* Its own exception reaches the caller. */
	handler_calls = 0;
	std::set_new_handler(handler_throws);
	try {
		sink(::operator new(huge));
	} catch (const handler_error &e) {
		caught++;
		T_ASSERT(strcmp(e.what(), "from the new handler") == 0);
	}
	try {
		sink(::operator new[](huge, std::align_val_t(32)));
	} catch (const handler_error &) {
		caught++;
	}
	T_EQ(caught, 5);
	T_EQ(handler_calls, 2);
	std::set_new_handler(nullptr);
}

/* ---- kmem's ---- */

/* Each form's address lies in libkmem-malloc.so (or libstdc++, glibc). */
template <typename F>
void
in_lib(const char *what, F *fn)
{
	Dl_info info;
	const char *want = under_kmem() ? "libkmem-malloc.so" : "libstdc++.so";

	T_ASSERT(dladdr(reinterpret_cast<void *>(fn), &info) != 0);
	if (info.dli_fname == nullptr ||
	    strstr(info.dli_fname, want) == nullptr)
		T_FAIL("%s is in %s, not %s", what,
		    info.dli_fname ? info.dli_fname : "?", want);
}

void
test_interposed()
{
	using nt_t = const std::nothrow_t &;
	using al_t = std::align_val_t;

	in_lib<void *(size_t)>("_Znwm", &::operator new);
	in_lib<void *(size_t)>("_Znam", &::operator new[]);
	in_lib<void *(size_t, nt_t) noexcept>(
	    "_ZnwmRKSt9nothrow_t", &::operator new);
	in_lib<void *(size_t, nt_t) noexcept>(
	    "_ZnamRKSt9nothrow_t", &::operator new[]);
	in_lib<void *(size_t, al_t)>("_ZnwmSt11align_val_t", &::operator new);
	in_lib<void *(size_t, al_t)>("_ZnamSt11align_val_t", &::operator new[]);
	in_lib<void *(size_t, al_t, nt_t) noexcept>(
	    "_ZnwmSt11align_val_tRKSt9nothrow_t", &::operator new);
	in_lib<void *(size_t, al_t, nt_t) noexcept>(
	    "_ZnamSt11align_val_tRKSt9nothrow_t", &::operator new[]);
	in_lib<void(void *) noexcept>("_ZdlPv", &::operator delete);
	in_lib<void(void *) noexcept>("_ZdaPv", &::operator delete[]);
	in_lib<void(void *, nt_t) noexcept>(
	    "_ZdlPvRKSt9nothrow_t", &::operator delete);
	in_lib<void(void *, nt_t) noexcept>(
	    "_ZdaPvRKSt9nothrow_t", &::operator delete[]);
	in_lib<void(void *, size_t) noexcept>("_ZdlPvm", &::operator delete);
	in_lib<void(void *, size_t) noexcept>("_ZdaPvm", &::operator delete[]);
	in_lib<void(void *, al_t) noexcept>(
	    "_ZdlPvSt11align_val_t", &::operator delete);
	in_lib<void(void *, al_t) noexcept>(
	    "_ZdaPvSt11align_val_t", &::operator delete[]);
	in_lib<void(void *, al_t, nt_t) noexcept>(
	    "_ZdlPvSt11align_val_tRKSt9nothrow_t", &::operator delete);
	in_lib<void(void *, al_t, nt_t) noexcept>(
	    "_ZdaPvSt11align_val_tRKSt9nothrow_t", &::operator delete[]);
	in_lib<void(void *, size_t, al_t) noexcept>(
	    "_ZdlPvmSt11align_val_t", &::operator delete);
	in_lib<void(void *, size_t, al_t) noexcept>(
	    "_ZdaPvmSt11align_val_t", &::operator delete[]);
	if (!under_kmem())
		return;
	/* kmem's classes: 100 bytes is an object of 112. */
	void *p = ::operator new(100), *q = new char[1000];
	T_EQ(malloc_usable_size(p), 112);
	T_EQ(malloc_usable_size(q), 1024);
	::operator delete(p, 100);
	delete[] static_cast<char *>(q);
}

/* kmem: a sized delete puts the object back into its own class. */
void
test_reuse()
{
	static const size_t sizes[] = {1, 16, 40, 64, 100, 1000, 4097, 16384};
	cpu_set_t saved;

	if (!under_kmem())
		return;
	if (!t_pin_here(&saved))
		t_skip("cannot pin to a CPU");
	for (size_t n : sizes) {
		std::align_val_t al = std::align_val_t(64);
		void *p = ::operator new(n), *q;
		uintptr_t a = (uintptr_t)p;

		::operator delete(p, n);
		q = ::operator new[](n);
		T_EQ((uintptr_t)q, a);
		::operator delete[](q, n);
		p = ::operator new(n);
		T_EQ((uintptr_t)p, a);
		::operator delete(p, n);
		p = ::operator new(n, al);
		a = (uintptr_t)p;
		::operator delete(p, n, al);
		q = ::operator new(n, al);
		T_EQ((uintptr_t)q, a);
		::operator delete(q, n, al);
	}
	t_unpin(&saved);
}

/*
 * kmem, debugging off: an object deleted with a wrong size goes back to
 * its own class: on this CPU, new of the wrong size never returns it
 * (a class that had taken it would, its group being last in, first out).
 */
void
test_wrong_size()
{
	static const struct {
		size_t right, wrong;
	} cases[] = {
	    {40, 1000}, {1000, 40}, {48, 49}, {100000, 40}, {40, 100000}};
	enum { NLIVE = 600 };
	static void *live[NLIVE];
	cpu_set_t saved;

	if (!under_kmem())
		return;
	if (!t_pin_here(&saved))
		t_skip("cannot pin to a CPU");
	for (const auto &c : cases) {
		/* The wrong size's class is made (an object out and back). */
		::operator delete(::operator new(c.wrong), c.wrong);
		void *p = ::operator new(c.right);
		uintptr_t a = (uintptr_t)p;
		size_t usable = malloc_usable_size(p);

		printf("   new(%zu), delete(p, %zu)\n", c.right, c.wrong);
		::operator delete(p, c.wrong);
		for (int i = 0; i < NLIVE; i++) {
			void *q = ::operator new(c.wrong);
			uintptr_t b = (uintptr_t)q;

			if (b < a + usable && a < b + c.wrong)
				T_FAIL("%#jx, deleted as %zu bytes, came back "
				       "from new(%zu) as %p",
				    (uintmax_t)a, c.wrong, c.wrong, q);
			fill(q, c.wrong, (unsigned char)i);
			live[i] = q;
		}
		for (int i = 0; i < NLIVE; i++) {
			check(live[i], c.wrong, (unsigned char)i);
			::operator delete(live[i], c.wrong);
		}
		/* Its own class hands it out again, once. */
		for (int i = 0; i < NLIVE; i++) {
			live[i] = ::operator new(c.right);
			for (int j = 0; j < i; j++)
				T_NE((uintptr_t)live[i], (uintptr_t)live[j]);
		}
		for (int i = 0; i < NLIVE; i++)
			::operator delete(live[i], c.right);
	}
	t_unpin(&saved);
}

/* ---- KMEM_DEBUG=size: this program again ---- */

void
d_delete()
{
	::operator delete(::operator new(40), 41);
}

void
d_delete_array()
{
	::operator delete[](::operator new[](40), 48);
}

void
d_aligned()
{
	std::align_val_t al = std::align_val_t(64);

	::operator delete(::operator new(40, al), 64, al);
}

/* The right sizes pass under the debug layer (exits 0). */
void
d_right()
{
	std::align_val_t al = std::align_val_t(64);

	::operator delete(::operator new(0), (size_t)0);
	::operator delete(::operator new(40), 40);
	::operator delete[](::operator new[](40), 40);
	::operator delete(::operator new(40, al), 40, al);
	::operator delete(::operator new(100000), 100000);
	delete new small;
	delete[] new counted[5];
	delete new line;
	delete new page;
}

void (*const debug_case[])() = {d_delete, d_delete_array, d_aligned, d_right};

void
c_debug(void *arg)
{
	char n[16], *argv[4];

	snprintf(n, sizeof n, "%d", (int)(intptr_t)arg);
	argv[0] = (char *)"malloc_cxx";
	argv[1] = (char *)"--debug-case";
	argv[2] = n;
	argv[3] = nullptr;
	setenv("KMEM_DEBUG", "size", 1);
	execv("/proc/self/exe", argv);
	perror("execv /proc/self/exe");
	_exit(1);
}

void
test_debug()
{
	char buf[4096];

	if (!under_kmem())
		return;
	T_ASSERT(
	    t_expect_panic(c_debug, (void *)0, "kmem: operator delete(0x"));
	T_ASSERT(
	    t_expect_panic(c_debug, (void *)0, ", 41) != allocated size 40"));
	T_ASSERT(
	    t_expect_panic(c_debug, (void *)1, "kmem: operator delete[](0x"));
	T_ASSERT(
	    t_expect_panic(c_debug, (void *)1, ", 48) != allocated size 40"));
	T_ASSERT(
	    t_expect_panic(c_debug, (void *)2, ", 64) != allocated size 40"));
	t_child_ok(c_debug, (void *)3, buf, sizeof buf);
	T_ASSERT(strstr(buf, "survived") != nullptr);
}

} // namespace

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--debug-case") == 0) {
		debug_case[atoi(argv[2]) & 3]();
		fprintf(
		    stderr, "malloc_cxx: debug case %s survived\n", argv[2]);
		return 0;
	}
	t_args(argc, argv);
	t_seed();
	T_RUN_IF(test_forms);
	T_RUN_IF(test_expressions);
	T_RUN_IF(test_random);
	T_RUN_IF(test_bad_alloc);
	T_RUN_IF(test_new_handler);
	T_RUN_IF(test_interposed);
	T_RUN_IF(test_reuse);
	T_RUN_IF(test_wrong_size);
	T_RUN_IF(test_debug);
	return t_done();
}
