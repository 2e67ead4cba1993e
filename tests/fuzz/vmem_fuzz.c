/*
 * vmem_fuzz.c -- coverage-guided fuzzing of vmem (libFuzzer, clang).
 *
 * The input is a program: byte 0 picks the quantum, then each op is an
 * opcode byte followed by argument bytes (missing bytes read as zero).
 * Arguments are shaped so that every call is valid (the abort paths have
 * their own tests in vmem_errors.c): the fuzzer explores sizes, the top
 * of the address space, alignment, phase, nocross, min/max and the fit
 * policies, with and without quantum caches.  After every op the results
 * are checked against a model of the spans and live allocations:
 * constraints hold, results lie in a span and overlap nothing live,
 * vmem_size agrees (is at least the model's with quantum caches, which
 * hold whole pages); at the end, everything freed and kmem_reap_all(),
 * one free segment per span.  Any violation aborts (a crash for
 * libFuzzer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kmem/pool.h>
#include <kmem/vmem.h>

#include "internal/internal.h"

#define MAXLIVE	 64
#define MAXSPANS 16

struct fz {
	const uint8_t *p, *end;
};

static uint64_t
fz_bytes(struct fz *f, unsigned n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | (f->p < f->end ? *f->p++ : 0);
	return v;
}

/* An address: small, near the top, or anything. */
static vmem_addr_t
fz_addr(struct fz *f)
{
	switch (fz_bytes(f, 1) % 4) {
	case 0:
		return fz_bytes(f, 2);
	case 1:
		return VMEM_ADDR_MAX - fz_bytes(f, 2);
	case 2:
		return (vmem_addr_t)fz_bytes(f, 4) << 16;
	default:
		return fz_bytes(f, 8);
	}
}

struct range {
	vmem_addr_t start;
	vmem_size_t size;
	bool x; /* freed with vmem_xfree */
};

static struct range spans[MAXSPANS], live[MAXLIVE];
static unsigned nspans, nlive;
static vmem_size_t inuse;

#define CHECK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			kmem_panic("vmem_fuzz: %s (line %d)", #c, __LINE__);   \
	} while (0)

static bool
overlaps(vmem_addr_t a, vmem_size_t s, const struct range *r)
{
	return a <= r->start + (r->size - 1) && r->start <= a + (s - 1);
}

static void
record(vmem_addr_t a, vmem_size_t s, bool x)
{
	bool inspan = false;

	for (unsigned i = 0; i < nspans; i++)
		inspan |= a >= spans[i].start &&
		    a + (s - 1) <= spans[i].start + (spans[i].size - 1) &&
		    a + (s - 1) >= a;
	CHECK(inspan);
	for (unsigned i = 0; i < nlive; i++)
		CHECK(!overlaps(a, s, &live[i]));
	live[nlive++] = (struct range){a, s, x};
	inuse += s;
}

static void
noprint(const char *fmt, ...)
{
	(void)fmt;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct fz f = {data, data + len};
	vmem_size_t q = (vmem_size_t)1 << (fz_bytes(&f, 1) % 5);
	bool qc = fz_bytes(&f, 1) % 4 != 0;
	vmem_t *vm = vmem_create("fuzz", 0, 0, q, NULL, NULL, NULL,
	    qc ? (fz_bytes(&f, 1) % 16 + 1) * q : 0, VM_SLEEP, IPL_NONE);
	unsigned ops = 0;

	CHECK(vm != NULL);
	nspans = nlive = 0;
	inuse = 0;
	while (f.p < f.end && ops++ < 512) {
		unsigned op = (unsigned)fz_bytes(&f, 1) % 6;
		vm_flag_t fit = (vm_flag_t[]){0, VM_INSTANTFIT, VM_BESTFIT,
		    VM_NEXTFIT}[fz_bytes(&f, 1) % 4];
		/* Mostly small; sometimes within 64 Ki quanta of 2^64. */
		vmem_size_t size = fz_bytes(&f, 1) % 8 != 0
		    ? (fz_bytes(&f, 2) + 1) * q
		    : (VMEM_ADDR_MAX - fz_bytes(&f, 2) * q) & ~(q - 1);
		vmem_addr_t a = fz_addr(&f) & ~(q - 1), min, max;
		bool ok = true;

		switch (op) {
		case 0: /* add a span of size at a, if it fits and is new */
			if (nspans == MAXSPANS || size - 1 > VMEM_ADDR_MAX - a)
				break;
			for (unsigned i = 0; i < nspans; i++)
				ok &= !overlaps(a, size, &spans[i]);
			if (ok && vmem_add(vm, a, size, VM_NOSLEEP) == 0)
				spans[nspans++] =
				    (struct range){a, size, false};
			break;
		case 1: /* vmem_alloc */
			if (nlive < MAXLIVE &&
			    vmem_alloc(vm, size, VM_NOSLEEP | fit, &a) == 0) {
				CHECK((a & (q - 1)) == 0);
				record(a, size, false);
			}
			break;
		case 2: { /* vmem_xalloc with valid random constraints */
			vmem_size_t align = q << (fz_bytes(&f, 1) % 20);
			vmem_size_t phase = (fz_bytes(&f, 2) * q) % align;
			vmem_size_t nocross = 0;
			unsigned nc = (unsigned)fz_bytes(&f, 1) % 64;

			min = fz_addr(&f);
			max = fz_addr(&f);
			if (min > max) {
				vmem_addr_t t = min;
				min = max;
				max = t;
			}
			if (nc < 40) {
				nocross = (vmem_size_t)1 << nc;
				if (nocross < size ||
				    ((phase ^ (phase + size - 1)) &
					~(nocross - 1)) != 0)
					nocross = 0;
			}
			if (nlive == MAXLIVE ||
			    vmem_xalloc(vm, size, align, phase, nocross, min,
				max, VM_NOSLEEP | fit, &a) != 0)
				break;
			CHECK((a - phase) % align == 0);
			CHECK(a >= min && a + (size - 1) <= max);
			CHECK(nocross == 0 ||
			    a / nocross == (a + size - 1) / nocross);
			record(a, size, true);
			break;
		}
		case 3: /* free one */
			if (nlive > 0) {
				unsigned i = (unsigned)fz_bytes(&f, 1) % nlive;

				if (live[i].x)
					vmem_xfree(
					    vm, live[i].start, live[i].size);
				else
					vmem_free(
					    vm, live[i].start, live[i].size);
				inuse -= live[i].size;
				live[i] = live[--nlive];
			}
			break;
		case 4: /* exact address */
			ok = nlive < MAXLIVE && size - 1 <= VMEM_ADDR_MAX - a;
			if (ok &&
			    vmem_xalloc_addr(vm, a, size, VM_NOSLEEP) == 0)
				record(a, size, true);
			break;
		default:
			vmem_whatis(a, noprint);
			break;
		}
		/* Quantum caches hold whole pages: in use is at least ours. */
		CHECK(qc ? vmem_size(vm, VMEM_ALLOC) >= inuse
			 : vmem_size(vm, VMEM_ALLOC) == inuse);
	}
	while (nlive > 0) {
		struct range *r = &live[--nlive];

		if (r->x)
			vmem_xfree(vm, r->start, r->size);
		else
			vmem_free(vm, r->start, r->size);
	}
	kmem_reap_all(); /* what the quantum caches hold goes back */
	{
		struct kmem_vmem_stats st;

		st.vs_size = sizeof st;
		kmem_vmem_stats(vm, &st);
		CHECK(st.vs_inuse == 0 && st.vs_nbusy == 0);
		CHECK(st.vs_nfree == nspans);
	}
	vmem_destroy(vm);
	return 0;
}
