/*
 * main.c -- runs ex.c's self-test (ex.c is the NetBSD-style kernel code;
 * this is the userspace harness around it).
 */
#include <stdio.h>

int ex_selftest(unsigned int *);

int
main(void)
{
	unsigned int n = 0;
	int line = ex_selftest(&n);

	if (line != 0) {
		printf("ex_selftest failed at ex.c:%d\n", line);
		return 1;
	}
	printf("NetBSD-style code on kmem: %u requests\n", n);
	return 0;
}
