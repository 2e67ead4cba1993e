/*
 * stats.c -- placeholder; the statistics emitter is being written.
 */
#include <kmem/kmem.h>

#include "internal/kmem_impl.h"

void
kmem_stats_print(void (*pr)(const char *, ...), unsigned int what)
{
	(void)pr;
	(void)what;
}

int
kmem_stats_write(int fd, unsigned int what)
{
	(void)fd;
	(void)what;
	return 0;
}

void
kmemi_stats_init(void)
{
}
