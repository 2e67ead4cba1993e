# kmem front end: CMake does the building, ctest runs the tests.
#
#   make            release build (everything `make install` installs)
#   make run        build, then the main job: gcc compiling a file on
#                   libkmem-malloc.so through kmemstat, with its statistics
#   make demo       kmem-demo, a tour of the API with statistics
#   make test       the whole suite: release (gcc) + valgrind, ASan+UBSan
#                   (clang), TSan (gcc) on every test: the threaded ones
#                   are what it is for, the rest cost seconds
#   make freestanding   build/freestanding/libkmem-freestanding.a: no libc,
#                   no pthread, no Linux (docs/embedding.md)
#   make install PREFIX=/abs/path
#   make bench      benchmarks (numbers, not tests)
#   make bench-malloc   the LD_PRELOAD suite against the peers only
#   make soak       long randomized runs
#   make fuzz       ten minutes of libFuzzer on vmem (clang, ASan)
#   make coverage   the suite in a gcc --coverage build (build/coverage),
#                   reported with gcovr: ends with the line
#                   "coverage: lines L%, functions F%, branches B%" (src/)
#   make format / make format-check
MAKEFLAGS += --no-print-directory
PREFIX ?= /usr/local
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE  ?= cmake
B      := build

.PHONY: all deps release run demo bench-malloc test test-release test-asan test-tsan \
	asan-build install bench soak fuzz coverage format format-check clean \
	freestanding

all: release

deps:
	@sh scripts/deps.sh

release: deps
	@CC=gcc CXX=g++ $(CMAKE) -S . -B $(B)/release \
	    -DCMAKE_BUILD_TYPE=Release -DKMEM_VALGRIND_TESTS=ON >/dev/null
	@$(CMAKE) --build $(B)/release -j $(JOBS)

# The main job: the C compiler compiles kmem's own vmem.c with kmem as
# its malloc (gcc, cc1 and as, merged), through kmemstat.
run: release
	@echo "kmem: gcc compiles src/vmem.c on libkmem-malloc.so, through kmemstat:"
	./$(B)/release/kmemstat -- gcc -O2 -g -D_GNU_SOURCE -Iinclude -Isrc \
	    -c src/vmem.c -o $(B)/vmem-on-kmem.o

# A tour of the API: vmem, pool, pool_cache and kmem_alloc in one program.
demo: release
	./$(B)/release/kmem-demo

test: test-release test-asan test-tsan
	@echo "kmem: all test builds passed"

test-release: release
	@sh tools/check-prim.sh
	cd $(B)/release && ctest --output-on-failure -j $(JOBS) --timeout 900

asan-build: deps
	@CC=clang CXX=clang++ $(CMAKE) -S . -B $(B)/asan \
	    -DCMAKE_BUILD_TYPE=Debug -DKMEM_SANITIZE=asan \
	    -DKMEM_TEST_SCALE=0.25 >/dev/null
	@$(CMAKE) --build $(B)/asan -j $(JOBS)

test-asan: asan-build
	cd $(B)/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --output-on-failure -j $(JOBS) --timeout 900

test-tsan: deps
	@CC=gcc CXX=g++ $(CMAKE) -S . -B $(B)/tsan \
	    -DCMAKE_BUILD_TYPE=Debug -DKMEM_SANITIZE=tsan \
	    -DKMEM_TEST_SCALE=0.25 >/dev/null
	@$(CMAKE) --build $(B)/tsan -j $(JOBS)
	cd $(B)/tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    ctest --output-on-failure -j $(JOBS) --timeout 900

install: release
	$(CMAKE) --install $(B)/release --prefix $(PREFIX)

bench: release
	@sh scripts/bench-deps.sh
	./$(B)/release/bench_vmem
	./$(B)/release/bench_pool
	./$(B)/release/bench_kmem
	./$(B)/release/bench_startup
	./$(B)/release/bench_purge reap
	./$(B)/release/bench_purge delay
	./$(B)/release/bench_check
	./$(B)/release/bench_domain
	python3 scripts/bench-malloc.py --out $(B)/bench-malloc

# The malloc suite alone (LD_PRELOAD: glibc, jemalloc, tcmalloc,
# mimalloc, kmem); BENCH_ARGS=--quick for a short run.
bench-malloc: release
	@sh scripts/bench-deps.sh
	python3 scripts/bench-malloc.py --out $(B)/bench-malloc $(BENCH_ARGS)

soak: release
	KMEM_TEST_SCALE=50 ./$(B)/release/t_unit_vmem_model
	KMEM_TEST_SCALE=20 ./$(B)/release/t_stress_pool_cache_mt

fuzz: asan-build
	mkdir -p $(B)/fuzz-corpus
	cd $(B)/asan && ./fuzz_vmem_fuzz -max_total_time=600 ../fuzz-corpus

# Not part of `make test`: the suite once more, unoptimised and counted.
coverage: deps
	@sh scripts/deps.sh coverage
	@CC=gcc CXX=g++ $(CMAKE) -S . -B $(B)/coverage \
	    -DCMAKE_BUILD_TYPE=Coverage -DKMEM_COVERAGE=ON >/dev/null
	@$(CMAKE) --build $(B)/coverage -j $(JOBS)
	@sh scripts/coverage.sh $(B)/coverage $(JOBS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B)

# The freestanding archive alone (CMakeLists.txt's freestanding section;
# the release build makes it too, and its tests run in `make test`).
freestanding:
	@CC=gcc CXX=g++ $(CMAKE) -S . -B $(B)/freestanding \
	    -DCMAKE_BUILD_TYPE=Release >/dev/null
	@$(CMAKE) --build $(B)/freestanding -j $(JOBS) --target kmem_freestanding
	@echo "kmem: $(B)/freestanding/libkmem-freestanding.a"
