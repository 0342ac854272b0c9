//! Guards the basic life of a log: append, read back in place, delete with scrub,
//! reopen, duplicate uris, the directory lock.

use feedcore::{Durability, Error, LogConfig, NewNotice, NoticeId, NoticeLog, Scope, UserId};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        durability: Durability::Always,
        ..Default::default()
    }
}

fn notice(author: u32, body: &str) -> NewNotice {
    NewNotice {
        author: UserId(author),
        body: body.into(),
        created_at_ms: 1000 + u64::from(author),
        ..Default::default()
    }
}

#[test]
fn append_read_delete_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "the secret words nobody should find";
    {
        let log = NoticeLog::open(dir.path(), config()).unwrap();
        assert!(log.is_empty());
        let a = log.append(&notice(1, "first")).unwrap();
        assert_eq!(a, NoticeId(1));
        let remote = NewNotice {
            uri: Some("https://elsewhere.example/n/1".into()),
            tags: vec!["#Hello".into()],
            scope: Scope::Followers,
            mentions: vec![UserId(3)],
            reply_to: Some(a),
            ..notice(2, secret)
        };
        let b = log.append(&remote).unwrap();
        assert_eq!(b, NoticeId(2));
        assert!(matches!(
            log.append(&remote),
            Err(Error::DuplicateUri { existing }) if existing == b
        ));
        let got = log.get(b).unwrap();
        assert_eq!(got.body(), secret);
        assert_eq!(got.tags().collect::<Vec<_>>(), vec!["hello"]);
        assert_eq!(got.reply_to(), Some(a));
        assert_eq!(got.scope(), Scope::Followers);
        drop(got);
        assert_eq!(log.find_uri("https://elsewhere.example/n/1"), Some(b));
        // Many notices, enough to roll segments.
        let ids = log
            .append_batch(
                &(0..500)
                    .map(|i| notice(i, &format!("bulk {i} {}", "x".repeat(200))))
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        assert_eq!(ids.first(), Some(&NoticeId(3)));
        assert_eq!(ids.last(), Some(&NoticeId(502)));
        assert!(log.stats().segments > 1);
        log.delete(b).unwrap();
        assert!(log.get(b).is_none());
        assert!(matches!(log.delete(b), Err(Error::UnknownNotice { .. })));
        assert_eq!(log.find_uri("https://elsewhere.example/n/1"), None);
        assert!(matches!(
            NoticeLog::open(dir.path(), config()),
            Err(Error::Locked { .. })
        ));
        // Scrubbed on disk.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
        }
    }
    let log = NoticeLog::open(dir.path(), config()).unwrap();
    assert_eq!(log.len(), 502);
    assert!(log.get(NoticeId(2)).is_none());
    assert!(
        log.get(NoticeId(502))
            .unwrap()
            .body()
            .starts_with("bulk 499 x")
    );
    assert_eq!(log.iter_from(NoticeId(1)).count(), 501);
    assert_eq!(log.recovery().deleted, 1);
    let report = NoticeLog::check(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.stats.deleted, 1);
}
