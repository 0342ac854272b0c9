//! Guards the race of a reply or repeat with a delete of its target: once `delete`
//! returns, no reply to or repeat of the deleted notice is stored any more (one that
//! passed its check before the delete could otherwise take the writer lock after it),
//! and the deleted notice never shows in a page.

use std::sync::atomic::{AtomicBool, Ordering};

use feedcore::{
    Config, Durability, Engine, LogConfig, NewNotice, NoticeId, NoticeLog, Page, UserId,
};

fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).expect("a directory in /dev/shm")
    } else {
        tempfile::tempdir().expect("a temporary directory")
    }
}

#[test]
fn no_reply_or_repeat_of_a_notice_is_stored_after_its_delete_returns() {
    let dir = scratch();
    let config = LogConfig {
        durability: Durability::Buffered,
        ..Default::default()
    };
    let log = NoticeLog::open(dir.path(), config).expect("a fresh log");
    let mut late = Vec::new();
    for round in 0..300 {
        let target = log
            .append(&NewNotice {
                author: UserId(1),
                body: format!("target {round}"),
                ..Default::default()
            })
            .expect("a valid notice");
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|t| {
                    let (log, stop) = (&log, &stop);
                    s.spawn(move || {
                        let mut stored = Vec::new();
                        while !stop.load(Ordering::Relaxed) {
                            let notice = NewNotice {
                                author: UserId(2),
                                body: if t == 0 {
                                    "reply".into()
                                } else {
                                    String::new()
                                },
                                reply_to: (t == 0).then_some(target),
                                repeat_of: (t == 1).then_some(target),
                                ..Default::default()
                            };
                            if let Ok(id) = log.append(&notice) {
                                stored.push(id);
                            }
                        }
                        stored
                    })
                })
                .collect();
            std::thread::yield_now();
            log.delete(target).expect("the target exists");
            // Every id above this was handed out after the delete returned.
            let after_delete = log.len();
            std::thread::sleep(std::time::Duration::from_micros(200));
            stop.store(true, Ordering::Relaxed);
            let stored: Vec<NoticeId> = workers
                .into_iter()
                .flat_map(|w| w.join().expect("no panic"))
                .collect();
            late.extend(stored.into_iter().filter(|id| id.0 > after_delete));
        });
    }
    assert!(
        late.is_empty(),
        "replies or repeats stored after their target's delete returned: {late:?}"
    );
}

#[test]
fn a_deleted_notice_never_shows_in_a_page_after_delete_returns() {
    let dir = scratch();
    let config = Config {
        users_max: 8,
        durability: Durability::Buffered,
        ..Default::default()
    };
    let engine = Engine::open(dir.path(), config).expect("a fresh engine");
    engine.follow(UserId(3), UserId(1)).unwrap();
    engine.follow(UserId(3), UserId(2)).unwrap();
    engine.home_timeline(UserId(3), Page::latest(1)).unwrap();
    for round in 0..100 {
        let target = engine
            .post(NewNotice {
                author: UserId(1),
                body: format!("target {round}"),
                ..Default::default()
            })
            .unwrap();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (engine, stop) = (&engine, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = engine.post(NewNotice {
                        author: UserId(2),
                        repeat_of: Some(target),
                        ..Default::default()
                    });
                }
            });
            engine.delete(target).unwrap();
            for _ in 0..20 {
                let page = engine.home_timeline(UserId(3), Page::latest(40)).unwrap();
                for id in &page.ids {
                    assert_ne!(
                        *id, target,
                        "round {round}: the deleted notice is in a page"
                    );
                    let n = engine.notice(*id).expect("a page shows stored notices");
                    assert_ne!(
                        n.repeat_of(),
                        Some(target),
                        "round {round}: a repeat of it is"
                    );
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    }
}
