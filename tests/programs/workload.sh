#!/bin/sh
# workload.sh -- the real-program workloads of kmem's tests and benchmarks:
# ordinary programs, run as they are, whose allocations then go through
# whichever malloc is loaded (glibc's, or libkmem-malloc.so preloaded).
# real_programs.sh runs each on both and compares; a benchmark runner
# times them through the same commands.
#
#   workload.sh list               the workload names, one a line
#   workload.sh prepare DIR [NAME...]
#                                  create the inputs of the workloads named
#                                  (default: all) under DIR; idempotent; a
#                                  workload whose programs are missing is
#                                  reported and makes the status 1
#   workload.sh cmd NAME DIR       one line: the command (shell words) whose
#                                  standard output is the workload's
#                                  deterministic output; environment it
#                                  needs comes first as "env VAR=VALUE ..."
#   workload.sh outputs NAME DIR   files the command writes that belong to
#                                  its output (compare them too), one a line
#   workload.sh needs NAME         the programs it needs, one a line
#   workload.sh missing NAME       those of them not installed (none: empty)
#
# The workloads, and what each asks of an allocator:
#   python         an allocation-heavy script (alloc.py): millions of small
#                  objects, growing dicts and lists, strings, a JSON round
#                  trip; with the default PYTHONMALLOC (pymalloc) objects of
#                  up to 512 bytes come from pymalloc's own arenas, so malloc
#                  sees the larger blocks and the arenas
#   python-malloc  the same with PYTHONMALLOC=malloc: every object through
#                  malloc, the heaviest small-object load here
#   perl           hashes, regexes, s///g, sort, nested structures (alloc.pl):
#                  string buffers growing by realloc, tables doubling
#   sort           GNU sort (parallel, C locale) of ~69 MB of generated lines
#                  (lines.c): few, large, long-lived buffers, several threads
#   gcc            cc1, the compiler proper that "gcc -O2 -g -S" runs, on
#                  src/vmem.c: obstacks, hash tables, vectors of every size.
#                  cc1 is run directly (the command "gcc -###" prints) so
#                  that the measured process is the one that allocates, not
#                  the driver
#   sqlite         sqlite3 on an in-memory database: a 200,000-row insert in
#                  one transaction (recursive CTE), two indexes, aggregate,
#                  join, ORDER BY, GROUP BY, UPDATE and DELETE: its page
#                  cache, sorter and temporary b-trees
#   threads        threads.c: 4 threads doing malloc, calloc, aligned_alloc,
#                  realloc and free, with frees on another thread than the
#                  allocating one
#
# Every output (standard output and the files "outputs" lists) is the same
# on every run on a given machine, whatever the allocator; the inputs are
# generated, never downloaded.  Each command is one process, the program
# itself (no shell, no pipe; "env" only sets variables and execs it), named
# by its absolute path, so that a preloaded allocator's statistics are the
# program's own.  Each takes 1-4 s on glibc's malloc on a 2-core x86-64.
#
# Debian 12 packages the workloads need beyond a base system (coreutils,
# perl-base): python3 sqlite3 gcc libc6-dev
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
names="python python-malloc perl sort gcc sqlite threads"

die() {
	echo "workload.sh: $*" >&2
	exit 1
}

usage() {
	cat >&2 <<'EOF'
usage: workload.sh list
       workload.sh prepare DIR [NAME...]
       workload.sh cmd NAME DIR
       workload.sh outputs NAME DIR
       workload.sh needs NAME
       workload.sh missing NAME
EOF
	exit 2
}

known() {
	for n in $names; do
		[ "$n" = "$1" ] && return 0
	done
	return 1
}

# A program's absolute path, or nothing.  python3 is /usr/bin/python3 when
# there is one (not a pyenv or virtualenv python that happens to be first in
# PATH); cc is $CC when that is set.
prog() {
	case $1 in
	python3)
		if [ -x /usr/bin/python3 ]; then
			echo /usr/bin/python3
			return 0
		fi
		;;
	cc)
		if [ -n "${CC:-}" ]; then
			command -v "$CC" 2>/dev/null || true
			return 0
		fi
		;;
	esac
	command -v "$1" 2>/dev/null || true
}

needs() {
	case $1 in
	python | python-malloc) echo python3 ;;
	perl) echo perl ;;
	sort) printf '%s\n' sort cc ;;
	gcc) echo gcc ;;
	sqlite) echo sqlite3 ;;
	threads) echo cc ;;
	*) die "no workload \"$1\" (workload.sh list)" ;;
	esac
}

missing() {
	for p in $(needs "$1"); do
		[ -n "$(prog "$p")" ] || echo "$p"
	done
}

# One word, quoted for sh when it needs it.
q() {
	case $1 in
	'' | *[!A-Za-z0-9_/.,:=+@%-]*)
		printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
		;;
	*) printf '%s' "$1" ;;
	esac
}

# The words given, quoted, on one line.
line() {
	sep=
	for w in "$@"; do
		printf '%s%s' "$sep" "$(q "$w")"
		sep=' '
	done
	printf '\n'
}

absdir() {
	[ -d "$1" ] || die "no directory $1 (run workload.sh prepare $1)"
	(cd "$1" && pwd)
}

# Whether file $1 is newer than file $2 (test -nt is not POSIX).
newer() {
	[ -n "$(find "$1" -newer "$2" 2>/dev/null)" ]
}

# Compile a C program of this directory into $2 unless it is up to date.
build_c() {
	if [ ! -x "$2" ] || newer "$here/$1" "$2"; then
		"$(prog cc)" -std=c11 -O2 -pthread -o "$2.tmp" "$here/$1"
		mv -f "$2.tmp" "$2"
	fi
}

# The cc1 command that "gcc -O2 -g -S" would run (gcc -### prints it).
gcc_words() {
	"$(prog gcc)" -### -std=gnu11 -O2 -g -Wall -Wextra -D_GNU_SOURCE \
	    -I"$top/include" -I"$top/src" -S "$top/src/vmem.c" \
	    -o "$1/gcc/vmem.s" 2>&1 | sed -n 's|^ *\([^ ]*/cc1\) |\1 |p'
}

prepare_one() {
	d=$1
	case $2 in
	python | python-malloc | perl) ;;
	sort)
		mkdir -p "$d/sort"
		build_c lines.c "$d/sort/lines"
		if [ ! -f "$d/sort/input" ] ||
		    newer "$d/sort/lines" "$d/sort/input"; then
			"$d/sort/lines" 1200000 1 >"$d/sort/input.tmp"
			mv -f "$d/sort/input.tmp" "$d/sort/input"
		fi
		;;
	gcc)
		[ -f "$top/src/vmem.c" ] || die "no $top/src/vmem.c"
		mkdir -p "$d/gcc"
		w=$(gcc_words "$d")
		[ -n "$w" ] || die "gcc -### printed no cc1 command"
		# Re-quoted word by word: gcc -### quotes some words with "".
		eval "set -- $w"
		line "$@" >"$d/gcc/cmd.tmp"
		mv -f "$d/gcc/cmd.tmp" "$d/gcc/cmd"
		;;
	sqlite)
		mkdir -p "$d/sqlite"
		cat >"$d/sqlite/bulk.sql.tmp" <<'EOF'
-- The sqlite workload of kmem's tests/programs (written by workload.sh).
PRAGMA cache_size = -131072;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL,
    payload TEXT);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
    WHERE x < 200000)
INSERT INTO t SELECT x, x % 97, 'name' || (x * 7919 % 50021),
    (x * 37 % 1000) / 10.0,
    printf('%08x-', (x * 2654435761) % 4294967296) ||
    substr(hex(zeroblob(60)), 1, 1 + x * 13 % 120)
FROM c;
COMMIT;
CREATE INDEX t_grp ON t(grp, val);
CREATE INDEX t_name ON t(name);
CREATE TABLE g(grp INTEGER PRIMARY KEY, label TEXT);
WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 96)
INSERT INTO g SELECT x, 'group-' || (x % 13) FROM c;
SELECT 'groups', grp, count(*), sum(val), min(name), max(name) FROM t
    GROUP BY grp ORDER BY grp LIMIT 5;
SELECT 'labels', g.label, count(*), round(avg(t.val), 3)
    FROM t JOIN g USING (grp)
    WHERE t.val > 50 GROUP BY g.label ORDER BY 3 DESC, 2;
SELECT 'names', name, count(*) FROM t GROUP BY name
    ORDER BY count(*) DESC, name LIMIT 5;
SELECT 'payload', id, payload FROM t ORDER BY payload DESC LIMIT 3;
SELECT 'distinct', count(DISTINCT name),
    count(DISTINCT grp * 1000 + id % 1000) FROM t;
UPDATE t SET payload = payload || name WHERE id % 5 = 0;
DELETE FROM t WHERE id % 7 = 0;
SELECT 'after', count(*), sum(length(payload)), total(val) FROM t;
SELECT 'self', count(*) FROM t a JOIN t b ON a.name = b.name AND a.id < b.id
    WHERE a.grp = 3;
EOF
		mv -f "$d/sqlite/bulk.sql.tmp" "$d/sqlite/bulk.sql"
		;;
	threads)
		mkdir -p "$d/threads"
		build_c threads.c "$d/threads/threads"
		;;
	esac
}

prepare() {
	[ $# -ge 1 ] || usage
	mkdir -p "$1"
	d=$(absdir "$1")
	shift
	# shellcheck disable=SC2086 # a list of words
	[ $# -gt 0 ] || set -- $names
	status=0
	for n in "$@"; do
		known "$n" || die "no workload \"$n\" (workload.sh list)"
		m=$(missing "$n")
		if [ -n "$m" ]; then
			# shellcheck disable=SC2086 # one line
			echo "workload.sh: $n: not installed:" $m >&2
			status=1
			continue
		fi
		prepare_one "$d" "$n"
	done
	return $status
}

# The file a prepared workload cannot run without.
need_file() {
	[ -e "$1" ] || die "$2: $1 is missing (run workload.sh prepare)"
}

cmd() {
	[ $# -eq 2 ] || usage
	known "$1" || die "no workload \"$1\" (workload.sh list)"
	m=$(missing "$1")
	# shellcheck disable=SC2086 # one line
	[ -z "$m" ] || die "$1: not installed:" $m
	d=$(absdir "$2")
	case $1 in
	python)
		line env PYTHONHASHSEED=0 "$(prog python3)" "$here/alloc.py"
		;;
	python-malloc)
		line env PYTHONMALLOC=malloc PYTHONHASHSEED=0 \
		    "$(prog python3)" "$here/alloc.py"
		;;
	perl)
		line env PERL_HASH_SEED=0 "$(prog perl)" "$here/alloc.pl"
		;;
	sort)
		need_file "$d/sort/input" sort
		line env LC_ALL=C "$(prog sort)" -T "$d/sort" \
		    -o "$d/sort/sorted" "$d/sort/input"
		;;
	gcc)
		need_file "$d/gcc/cmd" gcc
		cat "$d/gcc/cmd"
		;;
	sqlite)
		need_file "$d/sqlite/bulk.sql" sqlite
		# The script as the init file, then ".quit": no word with a
		# space, so even a plain split of the line works.
		line "$(prog sqlite3)" -batch -bail -init "$d/sqlite/bulk.sql" \
		    :memory: .quit
		;;
	threads)
		need_file "$d/threads/threads" threads
		line "$d/threads/threads" 4 500000
		;;
	esac
}

outputs() {
	[ $# -eq 2 ] || usage
	known "$1" || die "no workload \"$1\" (workload.sh list)"
	d=$(absdir "$2")
	case $1 in
	sort) echo "$d/sort/sorted" ;;
	gcc) echo "$d/gcc/vmem.s" ;;
	esac
}

[ $# -ge 1 ] || usage
what=$1
shift
case $what in
list)
	[ $# -eq 0 ] || usage
	# shellcheck disable=SC2086 # a list of words
	printf '%s\n' $names
	;;
prepare) prepare "$@" ;;
cmd) cmd "$@" ;;
outputs) outputs "$@" ;;
needs)
	[ $# -eq 1 ] || usage
	needs "$1"
	;;
missing)
	[ $# -eq 1 ] || usage
	known "$1" || die "no workload \"$1\" (workload.sh list)"
	missing "$1"
	;;
*) usage ;;
esac
