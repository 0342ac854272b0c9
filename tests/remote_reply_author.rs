//! Guards `NewNotice::reply_to_author`: a remote notice that answers a notice not
//! stored here (gone before it arrived, or not arrived yet) keeps the reply rule of
//! home timelines, as a reply to a stored notice keeps it once that notice is
//! deleted; the author is checked and stored with the notice, and a local notice
//! cannot name one without `reply_to`.

use feedcore::{Config, Engine, Error, NewNotice, NoticeId, Page, UserId};

fn config() -> Config {
    Config {
        users_max: 10,
        durability: feedcore::Durability::Buffered,
        ..Default::default()
    }
}

fn home(e: &Engine, user: u32) -> Vec<NoticeId> {
    e.flush().unwrap();
    e.home_timeline(UserId(user), Page::latest(50)).unwrap().ids
}

fn remote_reply(author: u32, to_author: Option<u32>) -> NewNotice {
    NewNotice {
        author: UserId(author),
        body: "a reply whose parent is elsewhere".into(),
        reply_to_author: to_author.map(UserId),
        uri: Some(format!("remote:{author}:{to_author:?}")),
        ..Default::default()
    }
}

#[test]
fn a_remote_reply_without_its_parent_keeps_the_reply_rule() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), config()).unwrap();
    // 1 follows 2 only; 4 follows 2 and 3.
    for (a, b) in [(1, 2), (4, 2), (4, 3)] {
        e.follow(UserId(a), UserId(b)).unwrap();
    }
    let id = e.post(remote_reply(2, Some(3))).unwrap();
    let plain = e.post(remote_reply(2, None)).unwrap();
    assert_eq!(e.notice(id).unwrap().reply_to_author(), Some(UserId(3)));
    assert_eq!(e.notice(id).unwrap().reply_to(), None);
    assert_eq!(
        home(&e, 1),
        vec![plain],
        "1 does not follow 3: the reply is hidden"
    );
    assert_eq!(home(&e, 4), vec![plain, id], "4 follows 3: the reply shows");
    e.follow(UserId(1), UserId(3)).unwrap();
    assert_eq!(home(&e, 1), vec![plain, id], "once 1 follows 3 it shows");
    e.unfollow(UserId(1), UserId(3)).unwrap();
    drop(e);

    let e = Engine::open(dir.path(), config()).unwrap();
    assert_eq!(
        e.notice(id).unwrap().reply_to_author(),
        Some(UserId(3)),
        "stored"
    );
    assert_eq!(home(&e, 1), vec![plain], "the rule holds after a reopen");
    assert_eq!(
        e.notice(id).unwrap().to_new_notice(),
        remote_reply(2, Some(3))
    );
}

#[test]
fn reply_to_author_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path(), config()).unwrap();
    let local = NewNotice {
        uri: None,
        ..remote_reply(2, Some(3))
    };
    assert!(
        matches!(e.post(local), Err(Error::InvalidNotice { .. })),
        "a local notice names the notice it answers"
    );
    assert!(matches!(
        e.post(remote_reply(2, Some(10))),
        Err(Error::UnknownUser { .. })
    ));
    // With reply_to set, the author of reply_to is the one stored.
    let parent = e
        .post(NewNotice {
            author: UserId(5),
            body: "parent".into(),
            ..Default::default()
        })
        .unwrap();
    let id = e
        .post(NewNotice {
            reply_to: Some(parent),
            ..remote_reply(2, Some(3))
        })
        .unwrap();
    assert_eq!(e.notice(id).unwrap().reply_to_author(), Some(UserId(5)));
    assert_eq!(e.log().len(), 2, "nothing written for the refused ones");
}
