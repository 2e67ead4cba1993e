/*
 * annot_bugs.c -- the four bugs memcheck and ASan must see in kmem's own
 * objects (issue 13, section 2; src/internal/annotate.h), and a clean
 * run.  "annot_bugs MODE" does one thing and exits 0; ctest runs it
 * under valgrind (release build) or as is (the ASan build) and checks the
 * tool's report (CMakeLists.txt, "annot." tests):
 *   clean         kmem_alloc/kmem_zalloc/kmem_free of small and large
 *                 sizes, a cache with a constructor (its objects come out
 *                 constructed, also after a put), one without (PR_ZERO),
 *                 a pool: nothing reported, no leak
 *   kmem-uaf      a read of an object after kmem_free
 *   large-uaf     the same for a large block (above KMEM_CACHE_MAX)
 *   cache-uaf     a read of an object after pool_cache_put
 *   pool-uaf      a read of an item after pool_put
 *   overrun       a read of the byte after a 13-byte kmem_alloc object
 *                 (its class has 16)
 *   cache-overrun a read past the size a cache was made with (13)
 *   uninit        a branch on a byte of a fresh kmem_alloc object
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kmem/kmem.h>
#include <kmem/pool.h>

/*
 * Reads the compiler must do, at the place written, at an index it
 * cannot check against kmem_alloc's alloc_size.
 */
static __attribute__((noinline)) int
rd(const void *p, size_t i)
{
	volatile size_t j = i;

	return ((const volatile unsigned char *)p)[j];
}

struct obj {
	uint32_t magic;
	char name[28];
};

static int
ctor(void *arg, void *o, int flags)
{
	struct obj *ob = o;

	(void)arg;
	(void)flags;
	ob->magic = 0x6f626a21u;
	memset(ob->name, 'n', sizeof ob->name);
	return 0;
}

static void
dtor(void *arg, void *o)
{
	struct obj *ob = o;

	(void)arg;
	if (ob->magic != 0x6f626a21u)
		puts("annot_bugs: destructor saw an unconstructed object");
}

static int
clean(void)
{
	pool_cache_t pc = pool_cache_init(sizeof(struct obj), 0, 0, 0,
	    "annot-ctor", NULL, IPL_NONE, ctor, dtor, NULL);
	pool_cache_t pz = pool_cache_init(
	    13, 0, 0, 0, "annot-plain", NULL, IPL_NONE, NULL, NULL, NULL);
	struct pool pl;
	struct obj *o[40];
	unsigned char *p, *q, *z;
	size_t sizes[] = {1, 13, 16, 100, 4096, 20000, 300000};
	int sum = 0;
	unsigned int i, k;

	for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		p = kmem_alloc(sizes[k], KM_SLEEP);
		memset(p, 1, sizes[k]);
		sum += rd(p, sizes[k] - 1);
		z = kmem_zalloc(sizes[k], KM_SLEEP);
		if (rd(z, sizes[k] - 1) != 0) /* defined: zeroed */
			sum++;
		kmem_free(p, sizes[k]);
		kmem_free(z, sizes[k]);
	}
	/* Constructed objects, fresh and cached (a put keeps them so). */
	for (i = 0; i < 40; i++)
		o[i] = pool_cache_get(pc, PR_WAITOK);
	for (i = 0; i < 40; i++)
		pool_cache_put(pc, o[i]);
	for (i = 0; i < 40; i++) {
		o[i] = pool_cache_get(pc, PR_WAITOK);
		if (o[i]->magic != 0x6f626a21u || o[i]->name[27] != 'n')
			sum++;
	}
	for (i = 0; i < 40; i++)
		pool_cache_put(pc, o[i]);
	q = pool_cache_get(pz, PR_WAITOK | PR_ZERO);
	if (rd(q, 12) != 0)
		sum++;
	pool_cache_put(pz, q);
	pool_cache_destroy(pc);
	pool_cache_destroy(pz);
	pool_init(&pl, 24, 0, 0, 0, "annot-pool", NULL, IPL_NONE);
	p = pool_get(&pl, PR_WAITOK);
	memset(p, 2, 24);
	sum += rd(p, 23);
	pool_put(&pl, p);
	pool_destroy(&pl);
	printf("annot_bugs clean: %d\n", sum);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *m = argc > 1 ? argv[1] : "clean";
	unsigned char *p;

	if (strcmp(m, "clean") == 0)
		return clean();
	if (strcmp(m, "kmem-uaf") == 0 || strcmp(m, "large-uaf") == 0) {
		size_t n = m[0] == 'k' ? 32 : 100000;

		p = kmem_alloc(n, KM_SLEEP);
		memset(p, 3, n);
		kmem_free(p, n);
		printf("after kmem_free: %d\n", rd(p, 8));
	} else if (strcmp(m, "cache-uaf") == 0) {
		pool_cache_t pc = pool_cache_init(sizeof(struct obj), 0, 0, 0,
		    "annot-uaf", NULL, IPL_NONE, ctor, dtor, NULL);

		p = pool_cache_get(pc, PR_WAITOK);
		pool_cache_put(pc, p);
		printf("after pool_cache_put: %d\n", rd(p, 4));
	} else if (strcmp(m, "pool-uaf") == 0) {
		static struct pool pl;

		pool_init(&pl, 48, 0, 0, 0, "annot-uaf", NULL, IPL_NONE);
		p = pool_get(&pl, PR_WAITOK);
		memset(p, 4, 48);
		pool_put(&pl, p);
		printf("after pool_put: %d\n", rd(p, 0));
	} else if (strcmp(m, "overrun") == 0) {
		p = kmem_alloc(13, KM_SLEEP);
		memset(p, 5, 13);
		printf("overrun: %d\n", rd(p, 13));
		kmem_free(p, 13);
	} else if (strcmp(m, "cache-overrun") == 0) {
		pool_cache_t pc = pool_cache_init(13, 0, 0, 0, "annot-over",
		    NULL, IPL_NONE, NULL, NULL, NULL);

		p = pool_cache_get(pc, PR_WAITOK | PR_ZERO);
		printf("overrun: %d\n", rd(p, 13));
		pool_cache_put(pc, p);
	} else if (strcmp(m, "uninit") == 0) {
		p = kmem_alloc(32, KM_SLEEP);
		/* A branch, not a select (MSan checks branches). */
		if (rd(p, 5) == 0x5a) { /* never written */
			puts("uninit: 0x5a");
			exit(3);
		}
		puts("uninit: other");
		kmem_free(p, 32);
	} else {
		fprintf(stderr, "annot_bugs: unknown mode %s\n", m);
		return 2;
	}
	return 0;
}
