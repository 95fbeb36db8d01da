/* blkcache: the extent range-lock tree.
 *
 * Locks byte ranges [start, end] (end inclusive, so a range may reach
 * UINT64_MAX).  Held ranges never overlap.  A locker whose range conflicts
 * waits without holding any part of its range and takes the whole range at
 * once when it is free (all-or-nothing), so two lockers can never deadlock
 * on each other's halves.  Waiters are served in arrival order among those
 * that overlap, so a waiter cannot starve under a stream of overlapping
 * lockers.
 *
 * The tree is sharded by stripes of EXTENT_TREE_STRIPE bytes: lockers whose
 * ranges lie in stripes of different shards share no mutex, and a range
 * within one stripe costs one shard's mutex; a longer range takes the
 * mutex of each shard it touches (all of them beyond a few dozen stripes).
 *
 * Lock ordering: the tree's internal mutexes are leaves; callers may hold any
 * other lock of theirs while calling extent_lock (it may sleep), but must
 * never wait, while holding a range, for anything that needs that range.
 * That includes extent_lock of a second range: because of the arrival-order
 * rule it may wait behind a queued waiter that needs the first range.  A
 * thread that needs two ranges locks their span, or uses extent_trylock
 * for the second one.
 */
#ifndef BLKCACHE_EXTENT_TREE_H
#define BLKCACHE_EXTENT_TREE_H

#include <stddef.h>
#include <stdint.h>

struct extent_tree;

/* The sharding unit: a range that does not cross a multiple of this locks
 * and unlocks through one shard. */
#define EXTENT_TREE_STRIPE (UINT64_C (1) << 20)

/* Allocate an empty tree.  Returns NULL with errno set on failure. */
struct extent_tree *extent_tree_new (void);

/* Allocate N nodes up front: while no more than N ranges are held or
 * awaited at once, extent_lock and extent_trylock allocate nothing and
 * cannot fail with -ENOMEM.  Returns 0 or -ENOMEM. */
int extent_tree_reserve (struct extent_tree *tree, size_t n);

/* Free a tree; no range may be held and no locker may be waiting. */
void extent_tree_free (struct extent_tree *tree);

/* Lock [start, end], sleeping until no held range and no earlier waiter
 * overlaps it.  Returns 0, -EINVAL when end < start, or -ENOMEM. */
int extent_lock (struct extent_tree *tree, uint64_t start, uint64_t end);

/* Lock [start, end] only if that needs no wait (and no earlier waiter
 * overlaps it); never waits.  Returns 0, -EBUSY, -EINVAL when end < start,
 * or -ENOMEM. */
int extent_trylock (struct extent_tree *tree, uint64_t start, uint64_t end);

/* Unlock [start, end], exactly a range this caller locked, and hand it to
 * the waiters that overlap it and can now run; never waits.  Aborts if
 * [start, end] is not a held range. */
void extent_unlock (struct extent_tree *tree, uint64_t start, uint64_t end);

#endif /* BLKCACHE_EXTENT_TREE_H */
