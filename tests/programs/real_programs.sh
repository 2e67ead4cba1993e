#!/bin/sh
# real_programs.sh -- kmem as the malloc of real programs: every workload
# of workload.sh (python with pymalloc and with PYTHONMALLOC=malloc, perl,
# sort on 69 MB, gcc's cc1, sqlite3, a multi-threaded C program) is run
# once on glibc's allocator, for reference, and once through kmemstat
# (libkmem-malloc.so preloaded), and
#   - both runs must exit 0, and with the same status;
#   - standard output, and the files the workload writes (sort's output,
#     cc1's assembly), must be the same byte for byte: an allocator that
#     hands out overlapping, too small or corrupted blocks changes them
#     or crashes the program;
#   - kmemstat's JSON must show that kmem served the program: the kmem-*
#     pools (kmem_alloc's size classes) must have had at least the
#     workload's minimum of gets from the pool layer (nget) and of gets
#     and puts at the per-CPU cache layer (cpuhit + cpumiss).  A preload
#     that silently did not take (a static binary, a wrong path, a
#     fallback to glibc) leaves these near zero.  The processes kmemstat
#     counted must include the workload's program, not only a wrapper
#     (env, sh).
# One line per workload: name, glibc seconds, kmem seconds and the
# counters.  The exit status is 1 if any workload failed, 77 (skipped) if
# libkmem-malloc.so or kmemstat is not built.
#
# Usage: real_programs.sh SOURCE_DIR BUILD_DIR
# Environment:
#   KMEM_TEST_SKIP_MISSING=1  skip workloads whose programs are not
#                             installed (default: they fail)
#   KMEM_TEST_WORKLOADS="..." run only these workloads
#   KMEM_TEST_KEEP=1          keep the scratch directory (its path printed)
# Each run has a 300-second watchdog.
set -eu
set -f # no globbing: nothing here is a pattern, and paths are split below
nl='
'

if [ $# -ne 2 ]; then
	echo "usage: real_programs.sh SOURCE_DIR BUILD_DIR" >&2
	exit 2
fi
src=$1
build=$2
wl=$src/tests/programs/workload.sh
lib=$build/libkmem-malloc.so
kmemstat=$build/kmemstat
limit=300

if [ ! -f "$lib" ] || [ ! -x "$kmemstat" ]; then
	echo "real_programs: skipped: $lib or $kmemstat is not built"
	exit 77
fi
[ -f "$wl" ] || {
	echo "real_programs: no $wl"
	exit 1
}
skip_missing=${KMEM_TEST_SKIP_MISSING:-0}

# The minimum gets from the pool layer (nget) and the minimum gets and
# puts at the CPU layer (cpuhit + cpumiss), summed over the kmem-* pools:
# a fifth to a tenth of what a run did when measured (x86-64, Debian 12,
# with a stand-in malloc over kmem_alloc that keeps a 16-byte header),
# so that only a run kmem did not serve falls short.  nget counts the
# objects the caches took from the pools (a refill takes a group at
# once), far fewer than the mallocs; get+put counts the objects that
# passed through the CPU layer: most small mallocs and frees are served by
# the thread's bins in front of it (malloc.c section 12), which pass only
# their misses on, half a bin at a time.  Blocks above 16 KiB go to the
# kva arena instead.  Measured with the bins (before them, get+put was
# 4 to 20 times higher):
#                  measured: nget  get+put
#   python               5,600      48,000  pymalloc keeps <= 512 bytes
#   python-malloc    2,600,000   5,700,000
#   perl               460,000   1,000,000
#   sort                   156          72  a few large buffers: the
#                                           check proves little more
#                                           than that kmem was loaded
#   gcc (cc1)           24,000     230,000
#   sqlite              58,000     150,000
#   threads              6,700     540,000
minimum() {
	case $1 in
	python) echo 1000 5000 ;;
	python-malloc) echo 100000 500000 ;;
	perl) echo 20000 100000 ;;
	sort) echo 20 5 ;;
	gcc) echo 2000 20000 ;;
	sqlite) echo 4000 15000 ;;
	threads) echo 500 50000 ;;
	*) echo 1 1 ;;
	esac
}

# The JSON parser: a python3 outside any pyenv or virtualenv if possible.
if [ -x /usr/bin/python3 ]; then
	py=/usr/bin/python3
else
	py=$(command -v python3 2>/dev/null || true)
fi
if [ -z "$py" ]; then
	if [ "$skip_missing" = 1 ]; then
		echo "real_programs: skipped: no python3 to read the statistics"
		exit 77
	fi
	echo "real_programs: FAIL: python3 is needed to read kmemstat's" \
	    "JSON (Debian: apt-get install python3)"
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kmem-programs.XXXXXX")
if [ "${KMEM_TEST_KEEP:-0}" = 1 ]; then
	echo "real_programs: scratch directory $work"
else
	trap 'rm -rf "$work"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
fi
in=$work/in
mkdir -p "$in"

# Nanoseconds since the epoch (GNU date), or seconds where %N is unknown.
now() {
	t=$(date +%s%N)
	case $t in
	*N) echo "$(date +%s)000000000" ;;
	*) echo "$t" ;;
	esac
}

secs() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'
}

# run MODE OUT ERR: the workload's command ($cmd), standard output to
# OUT, standard error to ERR.  MODE glibc runs it as it is, MODE kmem
# through kmemstat, which writes the statistics to $json.  A leading
# "env VAR=VALUE..." is applied here, so that the process kmemstat starts
# (the one whose statistics it reports) is the program itself, not env.
run() {
	(
		mode=$1
		eval "set -- $cmd"
		if [ "${1-}" = env ]; then
			shift
			while [ $# -gt 0 ]; do
				case $1 in
				[A-Za-z_]*=*)
					export "${1?}"
					shift
					;;
				*) break ;;
				esac
			done
		fi
		case $mode in
		glibc)
			unset LD_PRELOAD KMEM_STATS
			exec timeout -k 10 "$limit" "$@"
			;;
		*)
			exec timeout -k 10 "$limit" "$kmemstat" -j -o "$json" \
			    -- "$@"
			;;
		esac
	) >"$2" 2>"$3"
}

# The tail of a run's standard error, indented, for a failure message.
show_err() {
	if [ -s "$1" ]; then
		echo "  $2 standard error (last lines):"
		tail -n 15 "$1" | sed 's/^/    /'
	fi
}

# stats JSON PROGRAM: "nget ops kva_allocs" from kmemstat's JSON, or a
# message and status 1.  Where the JSON names its process, it must be
# PROGRAM (the first 15 bytes of the names, as in /proc's comm).
stats() {
	"$py" - "$1" "$2" <<'EOF'
import json
import sys

try:
    with open(sys.argv[1]) as f:
        d = json.load(f)
except (OSError, ValueError) as e:
    print("cannot read the statistics: %s" % e)
    sys.exit(1)
if not isinstance(d, dict) or not isinstance(d.get("pools"), list):
    print("the statistics have no \"pools\" list")
    sys.exit(1)
nget = ops = 0
for p in d["pools"]:
    if isinstance(p, dict) and str(p.get("name", "")).startswith("kmem-"):
        nget += int(p.get("nget", 0))
        ops += int(p.get("cpuhit", 0)) + int(p.get("cpumiss", 0))
kva = sum(int(a.get("alloc", 0)) for a in d.get("arenas", [])
          if isinstance(a, dict) and a.get("name") == "kva")
# Whose statistics: kmemstat lists the processes it counted
# ("kmemstat":{"processes":[{"pid":N,"command":...}]}); a file the
# library wrote itself names its one process ("process":{...}).
want = sys.argv[2].rsplit("/", 1)[-1][:15]
ks = d.get("kmemstat")
if isinstance(ks, dict):
    comms = [str(p.get("command", ""))[:15] for p in ks.get("processes", [])
             if isinstance(p, dict)]
else:
    proc = d.get("process")
    comms = [str(proc.get("command", ""))[:15]] if isinstance(proc, dict) \
        else []
if not comms:
    print("the statistics name no process")
    sys.exit(1)
if want not in comms:
    print("the statistics are of %s, not of the workload's %s"
          % (", ".join(comms), want))
    sys.exit(1)
print(nget, ops, kva)
EOF
}

# program CMD: the program CMD runs (its first word after "env VAR=...").
program() {
	(
		eval "set -- $1"
		if [ "${1-}" = env ]; then
			shift
			while [ $# -gt 0 ]; do
				case $1 in
				[A-Za-z_]*=*) shift ;;
				*) break ;;
				esac
			done
		fi
		printf '%s\n' "${1-}"
	)
}

failed=0
passed=0
skipped=0
fail() {
	echo "FAIL $name: $*"
	failed=$((failed + 1))
}

names=${KMEM_TEST_WORKLOADS:-$(sh "$wl" list)}
for name in $names; do
	m=$(sh "$wl" missing "$name") || {
		fail "unknown workload"
		continue
	}
	if [ -n "$m" ]; then
		m=$(echo "$m" | tr '\n' ' ')
		if [ "$skip_missing" = 1 ]; then
			echo "SKIP $name: not installed: $m"
			skipped=$((skipped + 1))
			continue
		fi
		fail "not installed: $m(install them, or set" \
		    "KMEM_TEST_SKIP_MISSING=1 to skip)"
		continue
	fi
	if ! sh "$wl" prepare "$in" "$name" >"$work/$name.prep" 2>&1; then
		fail "workload.sh prepare failed"
		sed 's/^/    /' "$work/$name.prep"
		continue
	fi
	cmd=$(sh "$wl" cmd "$name" "$in")
	outputs=$(sh "$wl" outputs "$name" "$in")
	json=$work/$name.json

	# The reference: glibc's malloc.
	IFS=$nl
	for f in $outputs; do
		rm -f "$f"
	done
	IFS=' 	'"$nl"
	err=$work/$name.glibc.err
	t0=$(now)
	rc_glibc=0
	run glibc "$work/$name.glibc.out" "$err" || rc_glibc=$?
	t1=$(now)
	t_glibc=$(secs "$t0" "$t1")
	if [ "$rc_glibc" -ne 0 ]; then
		fail "exit status $rc_glibc on glibc's malloc (the workload" \
		    "itself fails): $cmd"
		show_err "$err" glibc
		continue
	fi
	i=0
	lost=
	IFS=$nl
	for f in $outputs; do
		i=$((i + 1))
		if [ -f "$f" ]; then
			mv -f "$f" "$work/$name.glibc.file$i"
		else
			lost="$lost $f"
		fi
	done
	IFS=' 	'"$nl"
	if [ -n "$lost" ]; then
		fail "on glibc's malloc, did not write$lost"
		continue
	fi

	# The same on kmem.
	rm -f "$json"
	err=$work/$name.kmem.err
	t0=$(now)
	rc_kmem=0
	run kmem "$work/$name.kmem.out" "$err" || rc_kmem=$?
	t1=$(now)
	t_kmem=$(secs "$t0" "$t1")
	if [ "$rc_kmem" -ne 0 ]; then
		case $rc_kmem in
		124 | 137) why="timed out after ${limit}s" ;;
		*) why="exit status $rc_kmem, 0 on glibc's malloc" ;;
		esac
		fail "on kmem: $why: $cmd"
		show_err "$err" kmem
		continue
	fi
	if ! cmp -s "$work/$name.glibc.out" "$work/$name.kmem.out"; then
		fail "standard output differs from glibc's run" \
		    "($(wc -c <"$work/$name.glibc.out") bytes on glibc," \
		    "$(wc -c <"$work/$name.kmem.out") on kmem)"
		diff "$work/$name.glibc.out" "$work/$name.kmem.out" |
		    head -n 10 | sed 's/^/    /' || true
		show_err "$err" kmem
		continue
	fi
	i=0
	bad=
	IFS=$nl
	for f in $outputs; do
		i=$((i + 1))
		cmp -s "$work/$name.glibc.file$i" "$f" || bad="$bad $f"
		rm -f "$f" "$work/$name.glibc.file$i" # sort's are 69 MB each
	done
	IFS=' 	'"$nl"
	if [ -n "$bad" ]; then
		fail "output file differs from glibc's run (or is missing):$bad"
		continue
	fi
	if [ ! -s "$json" ]; then
		fail "kmemstat wrote no statistics to $json"
		show_err "$err" kmem
		continue
	fi
	if ! s=$(stats "$json" "$(program "$cmd")"); then
		fail "$s"
		continue
	fi
	read -r nget ops kva <<EOF
$s
EOF
	read -r min_nget min_ops <<EOF
$(minimum "$name")
EOF
	result="glibc ${t_glibc}s kmem ${t_kmem}s; kmem-* pools: nget $nget,"
	result="$result cache get+put $ops; kva allocs $kva"
	if [ "$nget" -lt "$min_nget" ] || [ "$ops" -lt "$min_ops" ]; then
		fail "kmem did not serve it: $result (at least nget" \
		    "$min_nget and cache get+put $min_ops expected)"
		continue
	fi
	printf 'ok   %-14s %s\n' "$name" "$result"
	passed=$((passed + 1))
done

echo "$passed passed, $failed failed, $skipped skipped"
if [ "$failed" -ne 0 ]; then
	exit 1
fi
if [ "$passed" -eq 0 ]; then
	exit 77
fi
exit 0
