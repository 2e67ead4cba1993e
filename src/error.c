/*
 * error.c -- the one error funnel, and the formatter it uses.
 *
 * Every error kmem detects (a bad free, a wrong size, contradictory
 * arguments, a broken invariant) is reported by kmem_panic(): one line on
 * standard error, "kmem: " followed by a message that names the call, the
 * address, the sizes and the arena or cache, then abort().  Warnings take
 * the same path without the abort.
 *
 * Nothing here allocates: the allocator may be broken, or we may be inside
 * it with its locks held.  The line is formatted into a buffer on the stack
 * by kmem_vsnprintf(), a small printf that knows the conversions kmem's
 * messages use, and written with one write(2) through the prim layer.
 *
 * Data structures: none; no state, no locks.  A panic on one thread while
 * another is mid-way through the allocator is fine: we never take a lock.
 *
 * Failure policy: messages longer than the buffer (1 KiB) are truncated
 * with "..." and still end in a newline.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "internal/internal.h"
#include "internal/prim.h"

#define KMEM_MSG_MAX 1024

/* Output cursor: writes what fits, counts everything. */
struct fmt_out {
	char *buf;
	size_t cap; /* bytes available for characters (excl. the NUL) */
	size_t len; /* characters produced so far */
};

static void
fmt_putc(struct fmt_out *o, char c)
{
	if (o->len < o->cap)
		o->buf[o->len] = c;
	o->len++;
}

static void
fmt_pad(struct fmt_out *o, char c, int n)
{
	while (n-- > 0)
		fmt_putc(o, c);
}

static void
fmt_str(struct fmt_out *o, const char *s, size_t n, int width, bool left)
{
	int pad = width > (int)n ? width - (int)n : 0;

	if (!left)
		fmt_pad(o, ' ', pad);
	while (n-- > 0)
		fmt_putc(o, *s++);
	if (left)
		fmt_pad(o, ' ', pad);
}

static void
fmt_num(struct fmt_out *o, uintmax_t v, bool neg, unsigned base, bool upper,
    bool alt, int width, bool left, bool zero)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[3 * sizeof(uintmax_t) + 2];
	size_t n = 0;
	int len;

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v != 0);
	len = (int)n + (neg ? 1 : 0) + (alt ? 2 : 0);
	if (!left && !zero)
		fmt_pad(o, ' ', width - len);
	if (neg)
		fmt_putc(o, '-');
	if (alt) {
		fmt_putc(o, '0');
		fmt_putc(o, upper ? 'X' : 'x');
	}
	if (!left && zero)
		fmt_pad(o, '0', width - len);
	while (n > 0)
		fmt_putc(o, tmp[--n]);
	if (left)
		fmt_pad(o, ' ', width - len);
}

int
kmem_vsnprintf(char *buf, size_t n, const char *fmt, va_list ap)
{
	struct fmt_out o = {buf, n > 0 ? n - 1 : 0, 0};
	const char *s;

	for (; *fmt != '\0'; fmt++) {
		bool alt = false, left = false, zero = false;
		int width = 0, lng = 0; /* 1 l, 2 ll/z/j/t */
		int prec = -1;		/* %.Ns / %.*s: at most N chars */
		uintmax_t v;
		intmax_t sv;

		if (*fmt != '%') {
			fmt_putc(&o, *fmt);
			continue;
		}
		for (;; fmt++) {
			if (fmt[1] == '#')
				alt = true;
			else if (fmt[1] == '-')
				left = true;
			else if (fmt[1] == '0')
				zero = true;
			else
				break;
		}
		while (fmt[1] >= '0' && fmt[1] <= '9')
			width = width * 10 + (*++fmt - '0');
		if (fmt[1] == '.') {
			fmt++;
			prec = 0;
			if (fmt[1] == '*') {
				fmt++;
				prec = va_arg(ap, int);
			}
			while (fmt[1] >= '0' && fmt[1] <= '9')
				prec = prec * 10 + (*++fmt - '0');
		}
		for (;;) {
			char m = fmt[1];

			if (m == 'l')
				lng++;
			else if (m == 'z' || m == 'j' || m == 't')
				lng = 2;
			else
				break;
			fmt++;
		}
		switch (*++fmt) {
		case '\0':
			fmt--;
			continue;
		case '%':
			fmt_putc(&o, '%');
			break;
		case 'c':
			fmt_putc(&o, (char)va_arg(ap, int));
			break;
		case 's':
			s = va_arg(ap, const char *);
			if (s == NULL)
				s = "(null)";
			fmt_str(&o, s,
			    prec >= 0 ? strnlen(s, (size_t)prec) : strlen(s),
			    width, left);
			break;
		case 'd':
		case 'i':
			sv = lng == 0  ? va_arg(ap, int)
			    : lng == 1 ? va_arg(ap, long)
				       : va_arg(ap, long long);
			v = sv < 0 ? (uintmax_t)0 - (uintmax_t)sv
				   : (uintmax_t)sv;
			fmt_num(
			    &o, v, sv < 0, 10, false, false, width, left, zero);
			break;
		case 'u':
		case 'x':
		case 'X':
			v = lng == 0   ? va_arg(ap, unsigned)
			    : lng == 1 ? va_arg(ap, unsigned long)
				       : va_arg(ap, unsigned long long);
			fmt_num(&o, v, false, *fmt == 'u' ? 10 : 16,
			    *fmt == 'X', alt && *fmt != 'u', width, left, zero);
			break;
		case 'p':
			v = (uintptr_t)va_arg(ap, void *);
			fmt_num(
			    &o, v, false, 16, false, true, width, left, false);
			break;
		default:
			/* Unknown conversion: print it literally. */
			fmt_putc(&o, '%');
			fmt_putc(&o, *fmt);
			break;
		}
	}
	if (n > 0)
		buf[o.len < o.cap ? o.len : o.cap] = '\0';
	return (int)o.len;
}

int
kmem_snprintf(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = kmem_vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return r;
}

/* Format prefix + message + newline into one buffer and write it. */
static void
err_emit(const char *prefix, const char *fmt, va_list ap)
{
	char line[KMEM_MSG_MAX];
	size_t plen = strlen(prefix), len;
	int r;

	memcpy(line, prefix, plen);
	r = kmem_vsnprintf(line + plen, sizeof line - plen - 1, fmt, ap);
	len = plen + (size_t)r;
	if (len > sizeof line - 2) {
		len = sizeof line - 2;
		memcpy(line + len - 3, "...", 3);
	}
	line[len++] = '\n';
	kmem_prim_write_stderr(line, len);
}

void
kmem_eprintf(const char *fmt, ...)
{
	va_list ap;
	char line[KMEM_MSG_MAX];
	int r;

	va_start(ap, fmt);
	r = kmem_vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	kmem_prim_write_stderr(
	    line, (size_t)r < sizeof line ? (size_t)r : sizeof line - 1);
}

void
kmem_pr(void (*pr)(const char *, ...), const char *fmt, ...)
{
	char line[256];
	va_list ap;

	va_start(ap, fmt);
	kmem_vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (pr != NULL)
		pr("%s", line);
	else
		kmem_eprintf("%s", line);
}

#ifdef KMEM_COVERAGE
/*
 * Coverage builds (make coverage) only: gcov writes a process's counts at
 * exit, which abort and _exit skip, so kmem_prim_abort writes them first,
 * and so does _exit in the tests (tests/coverage/cov_exit.c, which
 * reaches this one in libkmem-malloc.so by name).  gcov's writer calls
 * malloc and free: in libkmem-malloc.so, perhaps with this thread holding
 * the allocator's locks, those are served from the bootstrap area from
 * now on (kmemi_cov_dumping, malloc.c's must_bootstrap) -- the process
 * is about to end.
 */
void __gcov_dump(void);
_Atomic int kmemi_cov_dumping;

__attribute__((visibility("default"))) void
kmem_coverage_dump(void)
{
	atomic_store(&kmemi_cov_dumping, 1);
	__gcov_dump();
}
#endif

_Noreturn void
kmem_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_emit("kmem: ", fmt, ap);
	va_end(ap);
	kmem_prim_abort();
}

void
kmem_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	err_emit("kmem: warning: ", fmt, ap);
	va_end(ap);
}
