//! Guards the follow graph's basic contract: follow, unfollow, block, mute, the
//! follower and following walks in ascending order, partitions, counts, the errors,
//! and that all of it survives reopen, compaction and bulk load.

use feedcore::{Durability, Error, FollowGraph, GraphConfig, UserId};

fn config() -> GraphConfig {
    GraphConfig {
        users_max: 1000,
        following_max: 5,
        partitions: 2,
        durability: Durability::Buffered,
        compact_after_changes: 1_000_000,
    }
}

fn ids(list: impl Iterator<Item = UserId>) -> Vec<u32> {
    list.map(|u| u.0).collect()
}

#[test]
fn relations_walks_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let g = FollowGraph::open(dir.path(), config()).unwrap();
    let u = UserId;
    for b in [5, 3, 9, 4] {
        assert!(g.follow(u(1), u(b)).unwrap());
    }
    assert!(!g.follow(u(1), u(3)).unwrap(), "a second follow is not new");
    for a in [8, 2, 7, 6] {
        g.follow(u(a), u(3)).unwrap();
    }
    assert_eq!(ids(g.following(u(1))), vec![3, 4, 5, 9]);
    assert_eq!(ids(g.followers(u(3))), vec![1, 2, 6, 7, 8]);
    assert_eq!(ids(g.followers_in(u(3), 0, 2)), vec![2, 6, 8]);
    assert_eq!(ids(g.followers_in(u(3), 1, 2)), vec![1, 7]);
    assert_eq!(ids(g.followers_in(u(3), 0, 3)), vec![6]);
    assert_eq!(g.follower_count(u(3)), 5);
    assert_eq!(g.following_count(u(1)), 4);
    assert_eq!(g.user_count(), 10);

    // Errors change nothing.
    assert!(matches!(
        g.follow(u(1), u(1)),
        Err(Error::InvalidRelation { .. })
    ));
    assert!(matches!(
        g.follow(u(1), u(1000)),
        Err(Error::UnknownUser { .. })
    ));
    g.follow(u(1), u(10)).unwrap();
    assert!(
        matches!(g.follow(u(1), u(11)), Err(Error::InvalidRelation { .. })),
        "following_max"
    );
    assert_eq!(g.following_count(u(1)), 5);

    // Block removes follows both ways and forbids new ones; mute keeps the follow.
    g.follow(u(3), u(1)).unwrap();
    assert!(g.block(u(3), u(1)).unwrap());
    assert!(!g.is_following(u(1), u(3)));
    assert!(!g.is_following(u(3), u(1)));
    assert!(g.is_blocked(u(1), u(3)) && g.is_blocked(u(3), u(1)));
    assert!(matches!(
        g.follow(u(1), u(3)),
        Err(Error::InvalidRelation { .. })
    ));
    assert!(g.mute(u(2), u(3)).unwrap());
    assert!(g.is_muted(u(2), u(3)) && !g.is_muted(u(3), u(2)));
    assert!(g.is_following(u(2), u(3)));
    assert!(g.unfollow(u(6), u(3)).unwrap());
    assert!(!g.unfollow(u(6), u(3)).unwrap());
    let before = (ids(g.followers(u(3))), ids(g.following(u(1))));
    drop(g);

    let g = FollowGraph::open(dir.path(), config()).unwrap();
    assert_eq!((ids(g.followers(u(3))), ids(g.following(u(1)))), before);
    assert!(g.is_blocked(u(1), u(3)) && g.is_muted(u(2), u(3)));
    g.compact().unwrap();
    assert_eq!((ids(g.followers(u(3))), ids(g.following(u(1)))), before);
    assert!(g.unblock(u(3), u(1)).unwrap());
    assert!(!g.is_blocked(u(1), u(3)));
    assert!(g.is_muted(u(2), u(3)));
    assert_eq!(g.stats().ops_since_snapshot, 1);
    drop(g);
    let g = FollowGraph::open(dir.path(), config()).unwrap();
    assert_eq!((ids(g.followers(u(3))), ids(g.following(u(1)))), before);
    assert!(!g.is_blocked(u(1), u(3)));
    assert!(g.is_muted(u(2), u(3)));
}

#[test]
fn bulk_load_builds_the_same_graph() {
    let dir = tempfile::tempdir().unwrap();
    let edges =
        [(1, 2), (3, 2), (2, 1), (1, 2), (4, 1), (0, 4)].map(|(a, b)| (UserId(a), UserId(b)));
    let g = FollowGraph::bulk_load(dir.path(), config(), edges).unwrap();
    assert_eq!(ids(g.followers(UserId(2))), vec![1, 3]);
    assert_eq!(ids(g.followers(UserId(1))), vec![2, 4]);
    assert_eq!(ids(g.following(UserId(1))), vec![2]);
    assert_eq!(g.stats().follows, 5);
    let mut chunks = Vec::new();
    g.followers_in(UserId(2), 1, 2)
        .for_each_chunk(|c| chunks.push(c.to_vec()));
    assert_eq!(chunks, vec![vec![1, 3]]);
    drop(g);
    let other = tempfile::tempdir().unwrap();
    let bad = [(UserId(1), UserId(1))];
    assert!(matches!(
        FollowGraph::bulk_load(other.path(), config(), bad),
        Err(Error::InvalidRelation { .. })
    ));
    assert!(
        FollowGraph::bulk_load(dir.path(), config(), []).is_err(),
        "not an empty directory"
    );
}
