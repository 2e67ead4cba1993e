#!/bin/sh
# The freestanding archive needs nothing but the platform contract and
# memcpy/memmove/memset/memcmp (docs/embedding.md); the example port
# needs no more than those four.  Usage: symbols.sh ARCHIVE PORT_ARCHIVE
set -u
ar=$1
port=$2
tmp=${TMPDIR:-/tmp}/kmem-fs-symbols.$$
trap 'rm -f "$tmp".*' EXIT

# The contract: what an embedder implements (src/internal/prim.h,
# src/prim/freestanding.h).  kmem_mutex_owned: debug builds only;
# kmem_prim_cpu_current: the port's own kmem_prim_cpu_enter may use it.
cat > "$tmp.allowed" <<'LIST'
kmem_cond_broadcast
kmem_cond_destroy
kmem_cond_init
kmem_cond_timedwait
kmem_cond_wait
kmem_mutex_destroy
kmem_mutex_enter
kmem_mutex_exit
kmem_mutex_init
kmem_mutex_owned
kmem_mutex_tryenter
kmem_prim_abort
kmem_prim_alloc
kmem_prim_alloc_guarded
kmem_prim_clock_ns
kmem_prim_commit
kmem_prim_cpu_current
kmem_prim_cpu_enter
kmem_prim_cpu_exit
kmem_prim_decommit
kmem_prim_errno
kmem_prim_getenv
kmem_prim_ncpu
kmem_prim_page_size
kmem_prim_purge
kmem_prim_release
kmem_prim_thread_slot
kmem_prim_release_guarded
kmem_prim_reserve
kmem_prim_secret
kmem_prim_sleep_ns
kmem_prim_thread_id
kmem_prim_write_stderr
kmem_spin_enter_slow
memcmp
memcpy
memmove
memset
LIST
sort -o "$tmp.allowed" "$tmp.allowed"

# Undefined in some member and defined in none: what the archive needs.
needs() {
	nm -u "$1" | awk 'NF == 2 { print $2 }' | sort -u > "$tmp.u"
	nm --defined-only "$1" | awk 'NF == 3 { print $3 }' | sort -u > "$tmp.d"
	comm -23 "$tmp.u" "$tmp.d"
}

fail=0
needs "$ar" > "$tmp.need"
bad=$(comm -23 "$tmp.need" "$tmp.allowed")
if [ -n "$bad" ]; then
	echo "freestanding: $ar needs symbols outside the contract:"
	echo "$bad"
	fail=1
fi
# Not vacuous: the archive does call the page source and the locks.
for s in kmem_prim_reserve kmem_prim_alloc_guarded kmem_mutex_enter \
    kmem_prim_cpu_enter memcpy; do
	grep -qx "$s" "$tmp.need" || {
		echo "freestanding: $ar does not need $s: not the layers?"
		fail=1
	}
done
# And implements none of the contract itself (no Linux port inside).
defd=$(nm --defined-only "$ar" | awk 'NF == 3 && $2 ~ /[TDBR]/ { print $3 }' |
	sort -u | comm -12 - "$tmp.allowed")
if [ -n "$defd" ]; then
	echo "freestanding: $ar defines contract functions:"
	echo "$defd"
	fail=1
fi
# The example port: no libc beyond the four the contract allows.
bad=$(needs "$port" | grep -vxE 'memcpy|memmove|memset|memcmp')
if [ -n "$bad" ]; then
	echo "freestanding: the example port needs:"
	echo "$bad"
	fail=1
fi
[ $fail = 0 ] && echo "freestanding: $(wc -l < "$tmp.need") symbols needed, all in the contract"
exit $fail
