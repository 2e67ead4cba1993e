/*
 * ex.c -- a piece of kernel code written for NetBSD, compiled untouched
 * against kmem's NetBSD-compatible include tree (`pkg-config --cflags
 * kmem-netbsd`) by tests/integration/netbsd_compat.sh.
 *
 * A made-up ISA-style device: a pool(9) of request structures, a
 * pool_cache(9) of buffers with a constructor, a vmem(9) arena of unit
 * numbers (next fit, so numbers are not reused at once) and one of bus
 * addresses below 16 MiB that no transfer may cross a 64 KiB boundary of
 * (vmem_xalloc), kmem(9) for tables and names.  It uses nothing but those
 * four interfaces and includes their headers as NetBSD code does; its
 * self-test fills the DMA window, where the constrained VM_SLEEP request
 * that finds no room must fail with ENOMEM (as in NetBSD) rather than
 * wait, and checks every address it was given.
 */
#include <sys/cdefs.h>
#include <sys/param.h>
#include <sys/types.h>
#include <sys/kmem.h>
#include <sys/pool.h>
#include <sys/vmem.h>

#include <errno.h>

#define	EX_NUNITS	1024
#define	EX_DMA_BASE	0x100000	/* above the first MiB */
#define	EX_DMA_SIZE	0x1000000
#define	EX_DMA_LIMIT	0xffffff	/* ISA DMA: 24 address bits */
#define	EX_DMA_BOUNDARY	0x10000		/* a transfer never crosses 64 KiB */
#define	EX_DMA_QUANTUM	0x1000
#define	EX_XFER		0xc000		/* 48 KiB: one per 64 KiB window */

#define	EX_BUF_MAGIC	0xb0f0cafeU

struct ex_buf {
	uint32_t	b_magic;
	uint8_t		b_data[256 - sizeof(uint32_t)];
};

struct ex_req {
	struct ex_req	*r_next;
	vmem_addr_t	r_unit;
	vmem_addr_t	r_dma;
	struct ex_buf	*r_buf;
	paddr_t		r_pa;
	char		*r_name;
};

struct ex_softc {
	struct pool	sc_reqpool;
	pool_cache_t	sc_bufcache;
	vmem_t		*sc_units;
	vmem_t		*sc_dma;
	uint64_t	*sc_map;	/* one bit per unit number */
	size_t		sc_mapsize;
	int		sc_nbuf;	/* constructed buffers */
};

int	ex_selftest(unsigned int *);

static int
ex_buf_ctor(void *arg, void *obj, int flags)
{
	struct ex_softc *sc = arg;
	struct ex_buf *b = obj;

	(void)flags;
	b->b_magic = EX_BUF_MAGIC;
	sc->sc_nbuf++;
	return 0;
}

static void
ex_buf_dtor(void *arg, void *obj)
{
	struct ex_softc *sc = arg;
	struct ex_buf *b = obj;

	b->b_magic = 0;
	sc->sc_nbuf--;
}

static struct ex_softc *
ex_attach(void)
{
	struct ex_softc *sc;

	sc = kmem_zalloc(sizeof(*sc), KM_SLEEP);
	pool_init(&sc->sc_reqpool, sizeof(struct ex_req), 0, 0, 0, "exreq",
	    NULL, IPL_NET);
	sc->sc_bufcache = pool_cache_init(sizeof(struct ex_buf), 0, 0, 0,
	    "exbuf", NULL, IPL_VM, ex_buf_ctor, ex_buf_dtor, sc);
	sc->sc_units = vmem_create("exunit", 0, EX_NUNITS, 1, NULL, NULL,
	    NULL, 0, VM_SLEEP, IPL_NONE);
	sc->sc_dma = vmem_create("exdma", EX_DMA_BASE, EX_DMA_SIZE,
	    EX_DMA_QUANTUM, NULL, NULL, NULL, 0, VM_SLEEP, IPL_VM);
	sc->sc_mapsize = howmany(EX_NUNITS, 64) * sizeof(uint64_t);
	sc->sc_map = kmem_zalloc(sc->sc_mapsize, KM_SLEEP);
	if (sc->sc_bufcache == NULL || sc->sc_units == NULL ||
	    sc->sc_dma == NULL)
		return NULL;
	return sc;
}

static void
ex_detach(struct ex_softc *sc)
{

	kmem_free(sc->sc_map, sc->sc_mapsize);
	vmem_destroy(sc->sc_dma);
	vmem_destroy(sc->sc_units);
	pool_cache_destroy(sc->sc_bufcache);
	pool_destroy(&sc->sc_reqpool);
	kmem_free(sc, sizeof(*sc));
}

static int
ex_start(struct ex_softc *sc, struct ex_req **rp)
{
	struct ex_req *r;
	int error;

	r = pool_get(&sc->sc_reqpool, PR_WAITOK | PR_ZERO);
	error = vmem_xalloc(sc->sc_dma, EX_XFER, 0, 0, EX_DMA_BOUNDARY,
	    VMEM_ADDR_MIN, EX_DMA_LIMIT, VM_SLEEP | VM_BESTFIT, &r->r_dma);
	if (error) {
		pool_put(&sc->sc_reqpool, r);
		return error;
	}
	error = vmem_alloc(sc->sc_units, 1, VM_SLEEP | VM_NEXTFIT,
	    &r->r_unit);
	if (error) {
		vmem_xfree(sc->sc_dma, r->r_dma, EX_XFER);
		pool_put(&sc->sc_reqpool, r);
		return error;
	}
	r->r_buf = pool_cache_get_paddr(sc->sc_bufcache, PR_WAITOK,
	    &r->r_pa);
	r->r_name = kmem_asprintf("ex%u", (u_int)r->r_unit);
	*rp = r;
	return 0;
}

static void
ex_done(struct ex_softc *sc, struct ex_req *r)
{

	kmem_strfree(r->r_name);
	pool_cache_put_paddr(sc->sc_bufcache, r->r_buf, r->r_pa);
	vmem_free(sc->sc_units, r->r_unit, 1);
	vmem_xfree(sc->sc_dma, r->r_dma, EX_XFER);
	pool_put(&sc->sc_reqpool, r);
}

/*
 * Fill the DMA window, check what came back, give it all back.
 * 0 and the number of requests served, or the line that failed.
 */
int
ex_selftest(unsigned int *nreqp)
{
	struct ex_softc *sc;
	struct ex_req *r, *head = NULL;
	unsigned int n = 0, maxreq;
	uint64_t bit;
	char *tmp;
	int error, bad = 0;

	if ((sc = ex_attach()) == NULL)
		return __LINE__;
	maxreq = (EX_DMA_LIMIT + 1 - EX_DMA_BASE) / EX_DMA_BOUNDARY;
	for (;;) {
		error = ex_start(sc, &r);
		if (error == ENOMEM)
			break;		/* the window is full: no wait */
		if (error)
			return __LINE__;
		if (r->r_dma < EX_DMA_BASE ||
		    r->r_dma + EX_XFER - 1 > EX_DMA_LIMIT ||
		    r->r_dma / EX_DMA_BOUNDARY !=
		    (r->r_dma + EX_XFER - 1) / EX_DMA_BOUNDARY ||
		    (r->r_dma & (EX_DMA_QUANTUM - 1)) != 0)
			bad = __LINE__;
		if (r->r_unit >= EX_NUNITS)
			return __LINE__;
		bit = (uint64_t)1 << (r->r_unit % 64);
		if (sc->sc_map[r->r_unit / 64] & bit)
			bad = __LINE__;
		sc->sc_map[r->r_unit / 64] |= bit;
		if (r->r_buf == NULL || r->r_buf->b_magic != EX_BUF_MAGIC ||
		    !ALIGNED_POINTER(r->r_buf, uint32_t))
			bad = __LINE__;
		if (r->r_name == NULL || r->r_name[0] != 'e')
			bad = __LINE__;
		r->r_next = head;
		head = r;
		n++;
		if (n > maxreq)
			return __LINE__;
	}
	if (n != maxreq)
		return __LINE__;
	if (vmem_size(sc->sc_dma, VMEM_ALLOC) != (vmem_size_t)n * EX_XFER)
		return __LINE__;
	/* kmem(9) directly: a scratch copy of the request list. */
	tmp = kmem_alloc(ALIGN(sizeof(*r)) * n, KM_NOSLEEP);
	if (tmp == NULL)
		return __LINE__;
	for (r = head; r != NULL; r = r->r_next)
		*(struct ex_req *)(tmp + ALIGN(sizeof(*r)) * --n) = *r;
	if (n != 0)
		return __LINE__;
	while ((r = head) != NULL) {
		head = r->r_next;
		n++;
		ex_done(sc, r);
	}
	kmem_free(tmp, ALIGN(sizeof(*r)) * n);
	if (vmem_size(sc->sc_dma, VMEM_ALLOC) != 0 ||
	    vmem_size(sc->sc_units, VMEM_ALLOC) != 0)
		return __LINE__;
	ex_detach(sc);
	*nreqp = n;
	return bad;
}
