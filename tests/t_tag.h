/*
 * t_tag.h -- a free tag for the pool_cache tests: object hooks
 * (kmemi_obj_hooks, pool_impl.h) of the shape malloc.c installs -- a free
 * object's second word is its address ^ T_TAG_SECRET -- so that the
 * cache's use of hooks (fill on a miss, check when objects leave a
 * group, report) is tested without malloc.
 */
#ifndef KMEM_TESTS_T_TAG_H
#define KMEM_TESTS_T_TAG_H

#include <stdint.h>

#include "internal/internal.h"
#include "internal/pool_impl.h"

#define T_TAG_SECRET ((uintptr_t)0x5a5a5a5a5a5a5a5aull)

static void
t_tag_fill(void *const *objs, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		((uintptr_t *)objs[i])[1] = (uintptr_t)objs[i] ^ T_TAG_SECRET;
}

static unsigned int
t_tag_check(void *const *objs, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (((const uintptr_t *)objs[i])[1] !=
		    ((uintptr_t)objs[i] ^ T_TAG_SECRET))
			break;
	return i;
}

static void
t_tag_report(pool_cache_t pc, void *obj, const char *fn)
{
	if (kmemi_cache_holds_free(pc, obj))
		kmem_panic("%s: free object %p of cache %s is cached twice: "
			   "double free",
		    fn, obj, ((struct pool *)(void *)pc)->pr_wchan);
	kmem_panic("%s: free object %p of cache %s lacks its free tag", fn, obj,
	    ((struct pool *)(void *)pc)->pr_wchan);
}

static const struct kmemi_obj_hooks t_tag_hooks = {
    t_tag_fill, t_tag_check, t_tag_report};

#endif /* KMEM_TESTS_T_TAG_H */
