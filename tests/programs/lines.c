/*
 * lines.c -- the input generator of the sort workload in tests/programs:
 * writes NLINES pseudo-random text lines to standard output, the same
 * bytes on every machine (its own generator, no rand()).
 *
 * A line is a few fields of random lowercase words and decimal numbers,
 * 3 to about 200 bytes (57 on average), with a key from a small set now
 * and then, so that the sort meets common prefixes and duplicate keys.
 * What sort (GNU, in the C locale) then asks of an allocator: a few large,
 * long-lived blocks -- its input buffer, which holds the lines and their
 * line table and grows as it reads -- used by several threads at once (a
 * parallel sort); the opposite of the scripting workloads.
 *
 * Usage: lines NLINES [SEED]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t state;

static uint64_t
next(void)
{
	/* splitmix64 */
	uint64_t z = (state += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

int
main(int argc, char **argv)
{
	static const char *const common[] = {"alpha", "beta", "gamma", "delta",
	    "epsilon", "zeta", "eta", "theta"};
	unsigned long n, i;
	char line[256];

	if (argc < 2) {
		fprintf(stderr, "usage: lines NLINES [SEED]\n");
		return 2;
	}
	n = strtoul(argv[1], NULL, 10);
	state = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
	for (i = 0; i < n; i++) {
		uint64_t r = next();
		unsigned int nfields = 2 + (unsigned int)(r % 10), f;
		size_t len = 0;

		r >>= 3;
		if (r % 4 == 0)
			len += (size_t)snprintf(line + len, sizeof line - len,
			    "%s ", common[(r >> 2) % 8]);
		for (f = 0; f < nfields; f++) {
			uint64_t w = next();
			unsigned int k, wl = 1 + (unsigned int)(w % 16);

			w >>= 4;
			if (w % 3 == 0) {
				len += (size_t)snprintf(line + len,
				    sizeof line - len, "%llu ",
				    (unsigned long long)(w >> 2) % 1000000);
				continue;
			}
			for (k = 0; k < wl; k++) {
				line[len++] = (char)('a' + (w >> 2) % 26);
				w = w * 6364136223846793005ULL +
				    1442695040888963407ULL;
			}
			line[len++] = ' ';
		}
		line[len - 1] = '\n';
		fwrite(line, 1, len, stdout);
	}
	return ferror(stdout) || fflush(stdout) != 0;
}
