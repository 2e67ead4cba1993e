/*
 * check_vmem.c -- kmem_vmem_check finds what is wrong.  The test is
 * compiled with vmem.c itself (as NetBSD's subr_vmem.c unit test is), so
 * that it can reach the arena's insides: in a child process it builds a
 * known arena, checks that kmem_vmem_check passes, damages one piece of
 * the bookkeeping that section 3 of vmem.c's design comment lists, and
 * expects the check to abort with one line
 *     kmem: kmem_vmem_check(arena 'chk'): <what is wrong>
 * Then the same through KMEM_DEBUG=check: the damage is found by the next
 * vmem_xalloc, vmem_xfree, or quantum-cache page given back; and
 * kmemi_check_due spaces the checks of large structures as debug.c says.
 */
#include "../../src/vmem.c"

#include "internal/kmem_impl.h"
#include "t.h"

#define BASE ((vmem_addr_t)0x10000)
#define SIZE ((vmem_size_t)0x10000)
#define Q    ((vmem_size_t)16)

/*
 * The arena: busy [0x10000, +0x100], free [0x10100, +0x100], busy
 * [0x10200, +0x100], free [0x10300, +0x100], busy [0x10400, +0x100],
 * free [0x10500, 0x1ffff].  Freelist 4 (16..31 quanta) holds the two
 * small free segments, freelist 11 the rest.
 */
static vmem_t *
mk(void)
{
	vmem_t *vm = vmem_create(
	    "chk", BASE, SIZE, Q, NULL, NULL, NULL, 0, VM_SLEEP, IPL_NONE);
	vmem_addr_t a;

	if (vm == NULL)
		_exit(3);
	for (a = BASE; a <= BASE + 0x400; a += 0x200)
		if (vmem_xalloc_addr(vm, a, 0x100, VM_NOSLEEP) != 0)
			_exit(4);
	kmem_vmem_check(vm); /* sound before the damage */
	return vm;
}

/* The tag of the segment (not span) starting at a. */
static bt_t *
seg_at(vmem_t *vm, vmem_addr_t a)
{
	bt_t *bt;

	for (bt = vm->vm_seg0.bt_snext; bt != &vm->vm_seg0; bt = bt->bt_snext)
		if (bt->bt_start == a && bt->bt_type != BT_TYPE_SPAN &&
		    bt->bt_type != BT_TYPE_STATIC)
			return bt;
	_exit(5);
}

static void
no_purge(vmem_addr_t addr, vmem_size_t size)
{
	(void)addr;
	(void)size;
}

/* A purge pass holds free segment bt while its pages go (vmem.c 7). */
static void
purging(vmem_t *vm, bt_t *bt)
{
	freelist_remove(vm, bt);
	bt->bt_type = BT_TYPE_PURGING;
	vm->vm_purge_active = true;
	if (bt->bt_size > vm->vm_purge_fit)
		vm->vm_purge_fit = bt->bt_size;
}

static bt_t *
first_span(vmem_t *vm)
{
	return vm->vm_seg0.bt_fnext;
}

enum {
	FREEMAP,
	FREELIST_LINK,
	FREELIST_TYPE,
	FREELIST_ORDER,
	NFREE,
	HASH_SIZE,
	HASH_MORE,
	HASH_BUCKET,
	HASH_FEWER,
	SEG_LINK,
	SPAN_ORDER,
	SPAN_BAD,
	SEG_CONT,
	SPAN_TILED,
	ADJ_FREE,
	NOT_LISTED,
	FREE_FLAGS,
	DIRTY,
	EPOCH,
	NOT_HASHED,
	SENTINEL,
	STALE_FREE,
	INUSE,
	ROTOR,
	PURGING_IDLE,
	PURGING_NEXT,
	PURGE_FIT,
	BTFREE,
	BTFREE_LOOP,
	UNRELEASED,
	HOOK_ALLOC,
	HOOK_FREE,
	HOOK_QCPAGE,
};

/*
 * What each damage is reported as: the start of the line's detail
 * (HASH_BUCKET's: the bucket after that of [0x10200, +0x100], and that).
 */
static const struct ccase {
	int id;
	const char *problem;
} cases[] = {
    {FREEMAP, "freemap bit 3 is 1 but freelist 3 is empty"},
    {FREELIST_LINK,
	"freelist 4: the link back from the segment after 0x10300 is wrong"},
    {FREELIST_TYPE, "freelist 4 holds a BUSY tag [0x10300, +0x100]"},
    {FREELIST_ORDER, "free segment [0x10300, +0x200] is on freelist 4"},
    {NFREE, "the freelists hold 3 segments, vm_nfree says 4"},
    {HASH_SIZE, "busy hash of 8 buckets"},
    {HASH_MORE, "the busy hash holds more than vm_nbusy (2) segments"},
    {HASH_BUCKET,
	"busy hash bucket %zu holds a BUSY tag [0x10200, +0x100] "
	"(its bucket is %zu)"},
    {HASH_FEWER, "the busy hash holds 3 segments, vm_nbusy says 4"},
    {SEG_LINK,
	"segment list: the link back from the tag after 0x10000 is "
	"wrong"},
    {SPAN_ORDER,
	"span [0x10000, 0x1ffff] is not linked in order on the span list"},
    {SPAN_BAD, "bad span [0x10000, +0x10000] (flags 0x4)"},
    {SEG_CONT,
	"FREE segment [0x10110, +0x100] does not continue span "
	"[0x10000, 0x1ffff] at 0x10100"},
    {SPAN_TILED, "span [0x10000, 0x2000f] is tiled by 0x10000 bytes"},
    {ADJ_FREE,
	"free segments [0x10100, +0x100] and [0x10200, +0x100] are "
	"adjacent"},
    {NOT_LISTED, "free segment [0x10100, +0x100] is on no freelist"},
    {FREE_FLAGS, "free segment [0x10100, +0x100] has flags 0x2"},
    {DIRTY, "free segment [0x10100, +0x100] has flags 0x8"},
    {EPOCH,
	"dirty free segment [0x10100, +0x300] was freed in purge epoch "
	"7, after the arena's 2"},
    {NOT_HASHED,
	"busy segment [0x10200, +0x100] (flags 0x0) is not in the "
	"busy hash"},
    {SENTINEL, "the sentinel's links do not close"},
    {STALE_FREE,
	"3 free and 3 busy segments, vm_nfree and vm_nbusy say 4 "
	"and 3"},
    {INUSE,
	"in use 0x300, total 0x10000, imported 0x0; the arena says "
	"0x310"},
    {ROTOR, "the rotor "},
    {PURGING_IDLE,
	"purging segment [0x10100, +0x100] with no pass running, "
	"after a BUSY segment"},
    {PURGING_NEXT,
	"purging segment [0x10200, +0x100] with a pass running, "
	"after a PURGING segment"},
    {PURGE_FIT,
	"the largest purging segment is 0x100 bytes, vm_purge_fit "
	"says 0x0"},
    {BTFREE, "the tag cache holds "},
    {BTFREE_LOOP, "the tag cache holds more than 64 tags"},
    {UNRELEASED,
	"imported span [0x100000, 0x100fff] is wholly free but "
	"was not released"},
    {HOOK_ALLOC, "the freelists hold 3 segments, vm_nfree says 4"},
    {HOOK_FREE, "the freelists hold 3 segments, vm_nfree says 4"},
    {HOOK_QCPAGE, "the freelists hold 1 segments, vm_nfree says 2"},
};

static void
damage(void *arg)
{
	int id = (int)(intptr_t)arg;
	vmem_t *vm, *src;
	bt_t *bt;
	static bt_t stray;
	vmem_addr_t a;
	size_t h;

	if (id == UNRELEASED) {
		/* A static span passed off as imported, wholly free. */
		src = vmem_create("chk-src", 0x1000000, 0x100000, Q, NULL, NULL,
		    NULL, 0, VM_SLEEP, IPL_NONE);
		vm = vmem_create("chk", 0x100000, 0x1000, Q, vmem_alloc,
		    vmem_free, src, 0, VM_SLEEP, IPL_NONE);
		if (src == NULL || vm == NULL)
			_exit(3);
		kmem_vmem_check(vm);
		first_span(vm)->bt_type = BT_TYPE_SPAN;
		vm->vm_imported += 0x1000;
		kmem_vmem_check(vm);
		return;
	}
	if (id == EPOCH) {
		/* Deferred purges: a freed segment stays dirty, of its epoch.
		 */
		vm = mk();
		kmemi_vmem_set_purge(vm, no_purge, UINT64_MAX);
		vm->vm_epoch = 2;
		vmem_free(vm, BASE + 0x200, 0x100); /* joins its neighbours */
		kmem_vmem_check(vm);
		kmem_mutex_enter(&vm->vm_lock);
		seg_at(vm, BASE + 0x100)->bt_epoch = 7;
		kmem_mutex_exit(&vm->vm_lock);
		kmem_vmem_check(vm);
		return;
	}
	if (id == HOOK_QCPAGE) {
		/* The page a quantum cache gives back finds the damage. */
		vm = vmem_create("chk-qc", BASE, SIZE, Q, NULL, NULL, NULL,
		    4 * Q, VM_SLEEP, IPL_NONE);
		if (vm == NULL || vmem_alloc(vm, Q, VM_NOSLEEP, &a) != 0)
			_exit(3);
		vmem_free(vm, a, Q);
		kmem_vmem_check(vm);
		kmemi_debug_configure("check");
		kmem_mutex_enter(&vm->vm_lock);
		vm->vm_nfree++;
		kmem_mutex_exit(&vm->vm_lock);
		kmem_reap_all();
		return;
	}
	vm = mk();
	kmem_mutex_enter(&vm->vm_lock); /* as vmem.c's own changes */
	switch (id) {
	case FREEMAP:
		vm->vm_freemap ^= (uint64_t)1 << 3;
		break;
	case FREELIST_LINK:
		vm->vm_freelist[4]->bt_fnext->bt_fprev = NULL;
		break;
	case FREELIST_TYPE:
		vm->vm_freelist[4]->bt_type = BT_TYPE_BUSY;
		break;
	case FREELIST_ORDER:
		vm->vm_freelist[4]->bt_size = 0x200;
		break;
	case NFREE:
		vm->vm_nfree++;
		break;
	case HASH_SIZE:
		vm->vm_hashmask = 7;
		break;
	case HASH_MORE:
		vm->vm_nbusy--;
		break;
	case HASH_BUCKET:
		bt = seg_at(vm, BASE + 0x200);
		(void)hash_remove(vm, bt->bt_start);
		h = (hash_index(vm, bt->bt_start) + 1) & vm->vm_hashmask;
		bt->bt_fnext = vm->vm_hashlist[h];
		vm->vm_hashlist[h] = bt;
		vm->vm_nbusy++;
		break;
	case HASH_FEWER:
		vm->vm_nbusy++;
		break;
	case SEG_LINK:
		seg_at(vm, BASE + 0x100)->bt_sprev = &vm->vm_seg0;
		break;
	case SPAN_ORDER:
		first_span(vm)->bt_fprev = first_span(vm);
		break;
	case SPAN_BAD:
		first_span(vm)->bt_flags = BT_F_QCPAGE;
		break;
	case SEG_CONT:
		seg_at(vm, BASE + 0x100)->bt_start += Q;
		break;
	case SPAN_TILED:
		first_span(vm)->bt_size += Q;
		break;
	case ADJ_FREE:
		/* Freed without coalescing. */
		bt = hash_remove(vm, BASE + 0x200);
		freelist_insert(vm, bt);
		break;
	case NOT_LISTED:
		freelist_remove(vm, seg_at(vm, BASE + 0x100));
		break;
	case FREE_FLAGS:
		seg_at(vm, BASE + 0x100)->bt_flags = BT_F_XIMPORT;
		break;
	case DIRTY:
		seg_at(vm, BASE + 0x100)->bt_flags = BT_F_DIRTY;
		break;
	case NOT_HASHED:
		(void)hash_remove(vm, BASE + 0x200);
		break;
	case SENTINEL:
		vm->vm_seg0.bt_sprev = vm->vm_seg0.bt_snext;
		break;
	case STALE_FREE:
		/* On a freelist, in no span. */
		if (bt_refill(vm, 1) != 0)
			_exit(6);
		bt = bt_get(vm);
		bt->bt_start = 0x90000;
		bt->bt_size = 0x100;
		freelist_insert(vm, bt);
		break;
	case INUSE:
		vm->vm_inuse += Q;
		break;
	case ROTOR:
		vm->vm_rotor = &stray;
		break;
	case PURGING_IDLE:
		purging(vm, seg_at(vm, BASE + 0x100));
		vm->vm_purge_active = false;
		break;
	case PURGING_NEXT:
		/* Two side by side: a pass takes FREE ones, never adjacent. */
		purging(vm, seg_at(vm, BASE + 0x100));
		bt = hash_remove(vm, BASE + 0x200);
		freelist_insert(vm, bt);
		purging(vm, bt);
		break;
	case PURGE_FIT:
		purging(vm, seg_at(vm, BASE + 0x100));
		vm->vm_purge_fit = 0;
		break;
	case BTFREE:
		vm->vm_nbtfree++;
		break;
	case BTFREE_LOOP:
		for (bt = vm->vm_btfree; bt->bt_fnext != NULL;
		     bt = bt->bt_fnext)
			continue;
		bt->bt_fnext = vm->vm_btfree;
		break;
	case HOOK_ALLOC:
		vm->vm_nfree++;
		kmem_mutex_exit(&vm->vm_lock);
		kmemi_debug_configure("check");
		(void)vmem_alloc(vm, Q, VM_NOSLEEP, &a);
		return;
	case HOOK_FREE:
		vm->vm_nfree++;
		kmem_mutex_exit(&vm->vm_lock);
		kmemi_debug_configure("check");
		vmem_free(vm, BASE + 0x200, 0x100);
		return;
	default:
		_exit(7);
	}
	kmem_mutex_exit(&vm->vm_lock);
	kmem_vmem_check(vm);
}

/* Each damage, found by the check named for it. */
static void
t_damage(void)
{
	struct vmem hashed = {.vm_hashmask = VMEM_HASH_INIT - 1};
	char problem[200], want[300];
	size_t i, h = hash_index(&hashed, BASE + 0x200);

	for (i = 0; i < KMEM_ARRAY_SIZE(cases); i++) {
		snprintf(problem, sizeof problem, cases[i].problem,
		    (h + 1) & (VMEM_HASH_INIT - 1), h);
		snprintf(want, sizeof want,
		    "kmem: kmem_vmem_check(arena '%s'): %s",
		    cases[i].id == HOOK_QCPAGE ? "chk-qc" : "chk", problem);
		if (!t_expect_death(
			damage, (void *)(intptr_t)cases[i].id, SIGABRT, want))
			T_FAIL("case %zu: %s", i, want);
	}
}

/* A sound arena, however used, passes (and the hooks pass it). */
static void
t_sound(void)
{
	vmem_t *vm;
	vmem_addr_t a[64];
	unsigned int i;
	bt_t *bt;

	kmemi_debug_configure("check");
	vm = mk();
	for (i = 0; i < 64; i++)
		T_EQ(vmem_alloc(
			 vm, Q * (1 + i % 5), VM_NOSLEEP | VM_NEXTFIT, &a[i]),
		    0);
	for (i = 0; i < 64; i += 2)
		vmem_free(vm, a[i], Q * (1 + i % 5));
	kmem_vmem_check(vm);
	kmem_check_all();
	/* A pass running, its segment PURGING, lock dropped: sound. */
	kmem_mutex_enter(&vm->vm_lock);
	purging(vm, seg_at(vm, BASE + 0x100));
	kmem_mutex_exit(&vm->vm_lock);
	kmem_vmem_check(vm);
	kmem_mutex_enter(&vm->vm_lock);
	bt = seg_at(vm, BASE + 0x100);
	bt->bt_type = BT_TYPE_FREE;
	freelist_insert(vm, bt);
	vm->vm_purge_active = false;
	vm->vm_purge_fit = 0;
	kmem_mutex_exit(&vm->vm_lock);
	kmem_vmem_check(vm);
	for (i = 1; i < 64; i += 2)
		vmem_free(vm, a[i], Q * (1 + i % 5));
	kmem_vmem_check(vm);
	vmem_xfreeall(vm);
	kmem_vmem_check(vm);
	vmem_destroy(vm);
	kmemi_debug_configure("");
}

/* Checks at every event up to KMEMI_CHECK_WORK, then one in work / 64. */
static void
t_due(void)
{
	unsigned int i, n;

	kmemi_debug_configure("check");
	for (n = i = 0; i < 100; i++)
		n += kmemi_check_on(KMEMI_CHECK_WORK);
	T_EQ(n, 100);
	for (n = i = 0; i < 400; i++)
		n += kmemi_check_on(4 * KMEMI_CHECK_WORK);
	T_EQ(n, 100);
	kmemi_debug_configure("check_every=5");
	for (n = i = 0; i < 100; i++)
		n += kmemi_check_on(1);
	T_EQ(n, 20);
	for (n = i = 0; i < 1000; i++)
		n += kmemi_check_on(2 * KMEMI_CHECK_WORK);
	T_EQ(n, 100);
	kmemi_debug_configure("");
	for (n = i = 0; i < 100; i++)
		n += kmemi_check_on(1);
	T_EQ(n, 0);
}

int
main(void)
{
	T_RUN(t_damage);
	T_RUN(t_sound);
	T_RUN(t_due);
	return t_done();
}
