/*
 * domain_opts -- a domain's own settings (kmem_domain_create_with):
 * rejected items make no domain (EINVAL), accepted ones apply to the
 * domain and not to the default, and a domain made without settings
 * has the default's.  Observed through vmem_min_import: the size an
 * arena made in the domain asks its import function for.
 */
#include <errno.h>
#include <stdio.h>

#include <kmem/domain.h>
#include <kmem/vmem.h>

#include "t.h"
#include "t_domain.h"

static vmem_size_t last_import;

static int
rec_import(vmem_t *src, vmem_size_t size, vm_flag_t flags, vmem_addr_t *addrp)
{
	static vmem_addr_t next = 0x10000000;

	(void)src;
	(void)flags;
	last_import = size;
	*addrp = next;
	next += size + 0x100000;
	return 0;
}

static void
rec_release(vmem_t *src, vmem_addr_t addr, vmem_size_t size)
{
	(void)src;
	(void)addr;
	(void)size;
}

/* The size a fresh arena in domain d (NULL: default) imports for 4 KiB. */
static vmem_size_t
first_import(kmem_domain_t *d)
{
	kmem_domain_t *prev = kmem_domain_switch(d);
	vmem_t *vm = vmem_create(
	    "opts", 0, 0, 4096, rec_import, rec_release, NULL, 0, VM_SLEEP, 0);
	vmem_addr_t a;

	kmem_domain_switch(prev);
	T_ASSERT(vm != NULL);
	last_import = 0;
	T_EQ(vmem_alloc(vm, 4096, VM_SLEEP, &a), 0);
	vmem_free(vm, a, 4096);
	vmem_destroy(vm);
	return last_import;
}

int
main(void)
{
	struct tsrc s;
	struct kmem_page_source src;
	kmem_domain_t *d;

	tsrc_init(&s, (size_t)64 << 20, false);
	src = tsrc_ops(&s, true);

	printf("-- %s\n", "rejected settings make no domain");
	errno = 0;
	T_ASSERT(
	    kmem_domain_create_with("bad", &src, "no_such_option=1") == NULL);
	T_EQ(errno, EINVAL);
	errno = 0;
	T_ASSERT(
	    kmem_domain_create_with("bad", &src, "pool_idle_ms=x") == NULL);
	T_EQ(errno, EINVAL);
	T_EQ(tsrc_out(&s), 0); /* nothing taken from the source */

	printf("-- %s\n", "a domain's own minimum import, not the default's");
	T_EQ(first_import(NULL), 4096);
	d = kmem_domain_create_with(
	    "big-imports", &src, "vmem_min_import=1M,pool_idle_ms=0");
	T_ASSERT(d != NULL);
	T_EQ(first_import(d), (vmem_size_t)1 << 20);
	T_EQ(first_import(NULL), 4096);
	T_EQ(kmem_domain_destroy(d), 0);

	printf("-- %s\n", "without settings: the default's");
	d = kmem_domain_create("plain", &src);
	T_ASSERT(d != NULL);
	T_EQ(first_import(d), 4096);
	T_EQ(kmem_domain_destroy(d), 0);
	tsrc_check_empty(&s);
	tsrc_fini(&s);
	return t_done();
}
