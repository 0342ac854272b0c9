//! Guards the streams beyond home end to end: groups (create, join, leave, members,
//! `!name` in a body, delivery to members, the group stream), followed tags (home,
//! once), tag streams, lists, the public and local timelines, user streams as another
//! user sees them; each bad input a typed error that writes nothing; and that all of
//! it survives a reopen, under every strategy, paging past the stored capacity.

use feedcore::{
    Config, Durability, Engine, Error, GroupId, ListId, NewNotice, NoticeId, Page, Scope, Strategy,
    UserId, UserStream,
};

const STRATEGIES: [Strategy; 4] = [
    Strategy::Pull,
    Strategy::Push,
    Strategy::Hybrid { followers_min: 2 },
    Strategy::Selective {
        push_threshold: 1.0,
    },
];

fn config(strategy: Strategy) -> Config {
    Config {
        users_max: 50,
        timeline_capacity: 4,
        durability: Durability::Buffered,
        strategy,
        ..Default::default()
    }
}

fn u(id: u32) -> UserId {
    UserId(id)
}

fn post(e: &Engine, n: NewNotice) -> u64 {
    e.post(n).unwrap().0
}

fn text(author: u32, body: &str) -> NewNotice {
    NewNotice {
        author: u(author),
        body: body.into(),
        ..Default::default()
    }
}

/// Every page of a stream, a page of 2 at a time.
fn all(mut read: impl FnMut(Page) -> feedcore::Result<feedcore::TimelinePage>) -> Vec<u64> {
    let mut out = Vec::new();
    let mut page = Some(Page::latest(2));
    while let Some(p) = page {
        let got = read(p).unwrap();
        assert!(got.ids.len() <= 2);
        out.extend(got.ids.iter().map(|i| i.0));
        page = got.next;
    }
    out
}

fn home(e: &Engine, user: u32) -> Vec<u64> {
    e.flush().unwrap();
    all(|p| e.home_timeline(u(user), p))
}

#[test]
fn group_notices_reach_members_once_and_leave_with_them() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path(), config(strategy)).unwrap();
        for r in [1, 2, 3] {
            assert!(home(&e, r).is_empty());
        }
        let g = e.create_group(u(9), "Rustaceans").unwrap();
        assert_eq!(e.group_by_name("!RUSTACEANS"), Some(g));
        assert_eq!(e.group_info(g).unwrap(), (u(9), "rustaceans".to_string()));
        let before = post(
            &e,
            NewNotice {
                group: Some(g),
                ..text(5, "early")
            },
        );
        e.join_group(u(1), g).unwrap();
        e.join_group(u(2), g).unwrap();
        // 2 also follows the author: the notice reaches it once.
        e.follow(u(2), u(5)).unwrap();
        let by_id = post(
            &e,
            NewNotice {
                groups: vec![g],
                ..text(5, "to the group")
            },
        );
        let by_name = post(&e, text(6, "hello !rustaceans"));
        let elsewhere = post(&e, text(6, "not to the group"));
        assert_eq!(home(&e, 1), [by_name, by_id, before], "{strategy:?}");
        assert_eq!(home(&e, 2), [by_name, by_id, before], "{strategy:?}");
        assert!(home(&e, 3).is_empty(), "{strategy:?}");
        assert_eq!(
            all(|p| e.group_timeline(u(3), g, p)),
            [by_name, by_id, before]
        );
        assert_eq!(e.notice(NoticeId(by_name)).unwrap().group(), Some(g));
        let members = e.group_members(g, Page::latest(1)).unwrap();
        assert_eq!(members.members, [u(2)]);
        let rest = e.group_members(g, members.next.unwrap()).unwrap();
        assert_eq!(rest.members, [u(1)]);
        // Blocks and mutes hide group notices as home notices.
        e.mute(u(1), u(6)).unwrap();
        assert_eq!(home(&e, 1), [by_id, before]);
        assert_eq!(all(|p| e.group_timeline(u(1), g, p)), [by_id, before]);
        e.block(u(5), u(1)).unwrap();
        assert!(home(&e, 1).is_empty());
        // Leaving: the group's notices go, the followed author's stay.
        e.leave_group(u(2), g).unwrap();
        assert_eq!(home(&e, 2), [by_id, before], "{strategy:?}");
        let _ = elsewhere;
    }
}

#[test]
fn followed_tags_reach_home_once() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path(), config(strategy)).unwrap();
        assert!(home(&e, 1).is_empty());
        let tagged = |author, tag: &str| NewNotice {
            tags: vec![tag.into()],
            ..text(author, "tagged")
        };
        let early = post(&e, tagged(4, "#Rust"));
        assert!(e.follow_tag(u(1), "#RUST").unwrap());
        assert!(!e.follow_tag(u(1), "rust").unwrap());
        assert!(e.follows_tag(u(1), "Rust"));
        e.follow(u(1), u(4)).unwrap();
        let both = post(&e, tagged(4, "rust"));
        let tag_only = post(&e, tagged(7, "rust"));
        let other = post(&e, tagged(7, "go"));
        let private = post(
            &e,
            NewNotice {
                scope: Scope::Followers,
                ..tagged(7, "rust")
            },
        );
        assert_eq!(home(&e, 1), [tag_only, both, early], "{strategy:?}");
        assert_eq!(
            all(|p| e.tag_timeline(u(2), "RUST", p)),
            [tag_only, both, early]
        );
        assert_eq!(
            all(|p| e.tag_timeline(u(7), "rust", p)),
            [private, tag_only, both, early]
        );
        assert_eq!(all(|p| e.tag_timeline(u(2), "#go", p)), [other]);
        assert!(e.unfollow_tag(u(1), "rust").unwrap());
        assert!(!e.unfollow_tag(u(1), "rust").unwrap());
        assert_eq!(home(&e, 1), [both, early], "{strategy:?}");
        // A tag nobody used can be followed; its stream is then empty.
        assert!(e.follow_tag(u(2), "fresh").unwrap());
        assert!(all(|p| e.tag_timeline(u(2), "fresh", p)).is_empty());
    }
}

#[test]
fn lists_public_local_and_user_streams() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), config(Strategy::Push)).unwrap();
    let l = e.create_list(u(1), "Close friends").unwrap();
    assert_eq!(e.list_info(l).unwrap(), (u(1), "Close friends".to_string()));
    assert!(e.list_add(l, u(2)).unwrap());
    assert!(!e.list_add(l, u(2)).unwrap());
    assert!(e.list_add(l, u(3)).unwrap());
    let a = post(&e, text(2, "from 2"));
    let b = post(&e, text(3, "from 3"));
    let c = post(&e, text(4, "from 4"));
    let remote = post(
        &e,
        NewNotice {
            uri: Some("https://elsewhere.example/1".into()),
            ..text(5, "remote")
        },
    );
    let followers_only = post(
        &e,
        NewNotice {
            scope: Scope::Followers,
            ..text(2, "for followers")
        },
    );
    let reply = post(
        &e,
        NewNotice {
            reply_to: Some(NoticeId(c)),
            ..text(2, "answering 4")
        },
    );
    let reply_in_list = post(
        &e,
        NewNotice {
            reply_to: Some(NoticeId(b)),
            ..text(2, "answering 3")
        },
    );
    assert_eq!(all(|p| e.list_timeline(u(1), l, p)), [reply_in_list, b, a]);
    e.follow(u(1), u(2)).unwrap();
    assert_eq!(
        all(|p| e.list_timeline(u(1), l, p)),
        [reply_in_list, followers_only, b, a]
    );
    assert!(e.list_remove(l, u(3)).unwrap());
    assert!(!e.list_remove(l, u(3)).unwrap());
    assert_eq!(e.list_members(l).unwrap(), [u(2)]);
    assert_eq!(
        all(|p| e.list_timeline(u(1), l, p)),
        [followers_only, a],
        "a reply to a user out of the list and not followed is hidden"
    );
    assert_eq!(
        all(|p| e.public_timeline(u(9), p)),
        [reply_in_list, reply, remote, c, b, a]
    );
    assert_eq!(
        all(|p| e.local_timeline(u(9), p)),
        [reply_in_list, reply, c, b, a]
    );
    assert_eq!(
        all(|p| e.user_timeline(u(9), u(2), p)),
        [reply_in_list, reply, a]
    );
    assert_eq!(
        all(|p| e.user_timeline(u(1), UserStream::without_replies(u(2)), p)),
        [followers_only, a]
    );
    assert_eq!(
        all(|p| e.user_timeline(u(2), u(2), p)),
        [reply_in_list, reply, followers_only, a]
    );
    e.block(u(9), u(2)).unwrap();
    assert!(all(|p| e.user_timeline(u(9), u(2), p)).is_empty());
    assert_eq!(all(|p| e.public_timeline(u(9), p)), [remote, c, b]);
    // Addressees notices are never public.
    post(
        &e,
        NewNotice {
            scope: Scope::Addressees,
            mentions: vec![u(8)],
            ..text(4, "psst")
        },
    );
    assert_eq!(all(|p| e.public_timeline(u(8), p)).len(), 6);
}

#[test]
fn bad_input_is_a_typed_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), config(Strategy::Push)).unwrap();
    let g = e.create_group(u(1), "g").unwrap();
    let missing = GroupId(7);
    assert!(
        matches!(e.join_group(u(2), missing), Err(Error::UnknownGroup { group }) if group == missing)
    );
    assert!(matches!(
        e.group_timeline(u(2), missing, Page::latest(5)),
        Err(Error::UnknownGroup { .. })
    ));
    assert!(matches!(
        e.group_members(missing, Page::latest(5)),
        Err(Error::UnknownGroup { .. })
    ));
    e.join_group(u(2), g).unwrap();
    assert!(matches!(
        e.join_group(u(2), g),
        Err(Error::AlreadyMember { .. })
    ));
    assert!(matches!(
        e.leave_group(u(3), g),
        Err(Error::NotMember { .. })
    ));
    assert!(matches!(
        e.join_group(u(99), g),
        Err(Error::UnknownUser { .. })
    ));
    for bad in [&b""[..], b"two words", &[b'x'; 65], &[0xff, 0xfe], b"a-b"] {
        assert!(
            matches!(e.create_group(u(1), bad), Err(Error::InvalidName { .. })),
            "group name {bad:?}"
        );
    }
    assert!(
        matches!(e.create_group(u(1), "G"), Err(Error::InvalidName { .. })),
        "taken"
    );
    assert!(matches!(
        e.create_group(u(99), "h"),
        Err(Error::UnknownUser { .. })
    ));
    for bad in [&b""[..], &[b'x'; 65], &[0xc3], b"a\tb"] {
        assert!(matches!(
            e.create_list(u(1), bad),
            Err(Error::InvalidName { .. })
        ));
    }
    let l = e.create_list(u(1), "mine").unwrap();
    assert!(matches!(
        e.list_timeline(u(2), l, Page::latest(5)),
        Err(Error::NotOwner { owner, user, .. }) if owner == u(1) && user == u(2)
    ));
    assert!(matches!(
        e.list_add(ListId(5), u(2)),
        Err(Error::UnknownList { .. })
    ));
    assert!(matches!(
        e.list_timeline(u(1), ListId(5), Page::latest(5)),
        Err(Error::UnknownList { .. })
    ));
    assert!(
        matches!(e.tag_timeline(u(1), "never", Page::latest(5)), Err(Error::UnknownTag { tag }) if tag == "never")
    );
    assert!(matches!(
        e.unfollow_tag(u(1), "never"),
        Err(Error::UnknownTag { .. })
    ));
    for bad in [&b""[..], b"#", b"a b", &[0xff]] {
        assert!(matches!(
            e.follow_tag(u(1), bad),
            Err(Error::InvalidName { .. })
        ));
    }
    // A post to a group never created writes nothing, nor does a refused tagged post.
    let before = e.log().len();
    assert!(matches!(
        e.post(NewNotice {
            groups: vec![missing],
            ..text(1, "x")
        }),
        Err(Error::UnknownGroup { .. })
    ));
    assert!(
        e.post(NewNotice {
            tags: vec!["ok".into()],
            ..text(1, &"x".repeat(6000))
        })
        .is_err()
    );
    assert!(matches!(
        e.tag_timeline(u(1), "ok", Page::latest(5)),
        Err(Error::UnknownTag { .. })
    ));
    assert_eq!(e.log().len(), before);
    let stats = e.streams_stats();
    assert_eq!((stats.groups, stats.lists, stats.memberships), (1, 1, 1));
}

#[test]
fn everything_survives_a_reopen_and_pages_past_the_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let (g, l, ids);
    {
        let e = Engine::open(
            dir.path(),
            Config {
                durability: Durability::Always,
                ..config(Strategy::Push)
            },
        )
        .unwrap();
        g = e.create_group(u(1), "big").unwrap();
        l = e.create_list(u(1), "friends").unwrap();
        e.join_group(u(2), g).unwrap();
        e.list_add(l, u(3)).unwrap();
        e.follow_tag(u(2), "t").unwrap();
        let mut v = Vec::new();
        for i in 0..10 {
            v.push(post(
                &e,
                NewNotice {
                    group: Some(g),
                    ..text(3, &format!("g{i}"))
                },
            ));
            v.push(post(
                &e,
                NewNotice {
                    tags: vec!["t".into()],
                    ..text(4, &format!("t{i}"))
                },
            ));
        }
        v.reverse();
        ids = v;
        assert_eq!(
            home(&e, 2),
            ids,
            "capacity 4: paging continues below the ring"
        );
    }
    let e = Engine::open(dir.path(), config(Strategy::Push)).unwrap();
    assert_eq!(home(&e, 2), ids);
    assert!(e.is_member(u(2), g));
    assert!(e.follows_tag(u(2), "T"));
    assert_eq!(e.list_members(l).unwrap(), [u(3)]);
    let group_ids: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&i| e.notice(NoticeId(i)).unwrap().group() == Some(g))
        .collect();
    assert_eq!(all(|p| e.group_timeline(u(9), g, p)), group_ids);
    assert_eq!(all(|p| e.list_timeline(u(1), l, p)), group_ids);
    assert_eq!(all(|p| e.tag_timeline(u(9), "t", p)).len(), 10);
    assert_eq!(all(|p| e.public_timeline(u(9), p)), ids);
    // since_id bounds every stream.
    let since = Page {
        since_id: Some(NoticeId(ids[3])),
        ..Page::latest(10)
    };
    assert_eq!(e.public_timeline(u(9), since).unwrap().ids.len(), 3);
    drop(e);
    let report = feedcore::FollowGraph::check(dir.path().join("graph")).unwrap();
    assert!(report.is_sound(), "{:?}", report.problems);
    let rel = report.relations.unwrap();
    assert_eq!(
        (
            rel.groups,
            rel.lists,
            rel.tags,
            rel.memberships,
            rel.list_members,
            rel.tag_follows
        ),
        (1, 1, 1, 1, 1, 1)
    );
}

#[test]
fn bulk_loaded_groups_open_with_their_members() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Strategy::Push);
    let groups = Engine::bulk_load_groups(
        dir.path(),
        &cfg,
        &[(u(1), "one"), (u(2), "two")],
        [
            (u(3), GroupId(0)),
            (u(4), GroupId(0)),
            (u(3), GroupId(1)),
            (u(3), GroupId(0)),
        ],
    )
    .unwrap();
    assert_eq!(groups, [GroupId(0), GroupId(1)]);
    assert!(matches!(
        Engine::bulk_load_groups(dir.path(), &cfg, &[(u(1), "three")], []),
        Err(Error::InvalidConfig { .. })
    ));
    let other = tempfile::tempdir().unwrap();
    assert!(matches!(
        Engine::bulk_load_groups(other.path(), &cfg, &[(u(1), "x")], [(u(3), GroupId(1))]),
        Err(Error::UnknownGroup { .. })
    ));
    let e = Engine::open(dir.path(), cfg).unwrap();
    let m = e.group_members(GroupId(0), Page::latest(10)).unwrap();
    assert_eq!(m.members, [u(4), u(3)]);
    assert_eq!(e.group_by_name("two"), Some(GroupId(1)));
    let id = post(&e, text(5, "hi !two"));
    assert!(home(&e, 3).contains(&id));
}
