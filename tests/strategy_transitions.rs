//! Guards the moments when a strategy changes its mind: an author crossing hybrid's
//! follower threshold either way, and selective's rates moving a pair between push and
//! pull. Notices decided under the old rule must still page exactly as pull pages them.

use std::time::Duration;

use feedcore::{
    Clock, Config, Durability, Engine, KnownRates, NewNotice, NoticeId, Page, Strategy, UserId,
};

fn engine(dir: &std::path::Path, strategy: Strategy, clock: &Clock) -> Engine {
    engine_of(dir, strategy, clock, 16)
}

fn engine_of(dir: &std::path::Path, strategy: Strategy, clock: &Clock, users_max: u32) -> Engine {
    Engine::open(
        dir,
        Config {
            users_max,
            timeline_capacity: 64,
            durability: Durability::Buffered,
            clock: clock.clone(),
            strategy,
            ..Default::default()
        },
    )
    .unwrap()
}

fn home(e: &Engine, user: u32) -> Vec<NoticeId> {
    e.flush().unwrap();
    e.home_timeline(UserId(user), Page::latest(100))
        .unwrap()
        .ids
}

const SELECTIVE: Strategy = Strategy::Selective {
    push_threshold: 1.0,
};

/// A pull engine and a selective one, each in its own directory, on one manual clock.
fn pull_and_selective() -> ([tempfile::TempDir; 2], Clock, Engine, Engine) {
    pull_and_selective_of(16)
}

/// `pull_and_selective` for `users_max` users.
fn pull_and_selective_of(users_max: u32) -> ([tempfile::TempDir; 2], Clock, Engine, Engine) {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let clock = Clock::manual(1_000_000_000_000);
    let pull = engine_of(dirs[0].path(), Strategy::Pull, &clock, users_max);
    let selective = engine_of(dirs[1].path(), SELECTIVE, &clock, users_max);
    (dirs, clock, pull, selective)
}

fn post(engines: &[&Engine], author: u32) -> NoticeId {
    let ids: Vec<NoticeId> = engines
        .iter()
        .map(|e| {
            e.post(NewNotice {
                author: UserId(author),
                body: "n".into(),
                ..Default::default()
            })
            .unwrap()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    ids[0]
}

#[test]
fn hybrid_follows_an_author_across_the_threshold() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let clock = Clock::manual(1_000_000_000_000);
    let pull = engine(d1.path(), Strategy::Pull, &clock);
    let hybrid = engine(d2.path(), Strategy::Hybrid { followers_min: 2 }, &clock);
    let both = [&pull, &hybrid];
    let (author, reader, other) = (UserId(0), UserId(1), UserId(2));
    for e in both {
        e.follow(reader, author).unwrap();
        home(e, 1); // the reader is active: deliveries on
    }
    let small = post(&both, 0);
    for e in both {
        e.follow(other, author).unwrap(); // now big: pulled
    }
    let big = post(&both, 0);
    assert_eq!(home(&hybrid, 1), vec![big, small]);
    for e in both {
        e.unfollow(other, author).unwrap(); // small again: pushed from here on
    }
    let small_again = post(&both, 0);
    let expected = vec![small_again, big, small];
    assert_eq!(home(&pull, 1), expected);
    assert_eq!(
        home(&hybrid, 1),
        expected,
        "the notice posted while big must still show"
    );
    for e in both {
        e.follow(other, author).unwrap();
    }
    let big_again = post(&both, 0);
    assert_eq!(home(&hybrid, 1), home(&pull, 1));
    assert_eq!(home(&hybrid, 1)[0], big_again);
}

#[test]
fn selective_pairs_move_between_push_and_pull() {
    let (dirs, clock, pull, selective) = pull_and_selective();
    let both = [&pull, &selective];
    for e in both {
        for a in 0..4 {
            e.follow(UserId(10), UserId(a)).unwrap();
        }
    }
    // Phases: the reader reads often while authors post rarely (push wins), then the
    // authors post a burst while the reader is away (pull wins), then back.
    for round in 0..40u64 {
        let burst = (10..20).contains(&round) || (30..35).contains(&round);
        let posts = if burst { 20 } else { 1 };
        for i in 0..posts {
            post(&both, ((round + i) % 4) as u32);
        }
        if !burst {
            for _ in 0..5 {
                assert_eq!(home(&selective, 10), home(&pull, 10), "round {round}");
            }
        }
        clock.advance(Duration::from_secs(600));
    }
    assert_eq!(home(&selective, 10), home(&pull, 10));
    drop(selective);
    let selective = engine(dirs[1].path(), SELECTIVE, &clock);
    assert_eq!(home(&selective, 10), home(&pull, 10), "after reopen");
}

#[test]
fn selective_pulls_an_author_who_starts_posting_a_lot_while_the_reader_reads_steadily() {
    // The reader reads at a steady rate, so its own class settles and never moves
    // again: only the author's change can tell the reader's cached plan that the pair
    // turned to pull (the workers stop pushing it at once).
    let (_dirs, clock, pull, selective) = pull_and_selective();
    let both = [&pull, &selective];
    for e in both {
        e.follow(UserId(10), UserId(0)).unwrap();
        e.follow(UserId(10), UserId(1)).unwrap();
    }
    for round in 0..60u64 {
        let loud = round >= 40;
        for _ in 0..if loud { 200 } else { 1 } {
            post(&both, 0);
        }
        post(&both, 1);
        for _ in 0..5 {
            assert_eq!(home(&selective, 10), home(&pull, 10), "round {round}");
        }
        clock.advance(Duration::from_secs(600));
    }
    let stats = selective.stats();
    assert!(
        stats.cost_author_index_reads > 0,
        "the loud author ended up pulled: {stats:?}"
    );
}

#[test]
fn selective_pulls_the_readers_own_notices_once_it_posts_a_lot() {
    // A reader's own notices are a pair like any other: while it posts little they
    // are pushed into its timeline; once it posts much more than it reads, the workers
    // stop pushing them and its cached plan must learn that from its own post class.
    // It follows a loud author, so its feed always fills many pages between its
    // reads (a reader seeing its whole feed gets every pair pushed), and it reads
    // steadily, so its read class settles: only its post class moves.
    let (_dirs, clock, pull, selective) = pull_and_selective();
    let both = [&pull, &selective];
    for e in both {
        e.follow(UserId(10), UserId(1)).unwrap();
    }
    let mut pushed_while_quiet = 0;
    for round in 0..60u64 {
        let loud = round >= 40;
        for _ in 0..100 {
            post(&both, 1);
        }
        for _ in 0..if loud { 400 } else { 1 } {
            post(&both, 10);
        }
        assert_eq!(home(&selective, 10), home(&pull, 10), "round {round}");
        if round == 39 {
            pushed_while_quiet = selective.stats().deliveries;
        }
        clock.advance(Duration::from_secs(600));
    }
    let stats = selective.stats();
    assert!(pushed_while_quiet > 0, "own notices pushed while quiet");
    assert!(
        stats.deliveries < pushed_while_quiet + 20 * 400 / 2,
        "most of the loud notices were not pushed to their author: {stats:?}"
    );
}

#[test]
fn selective_pushes_everything_to_a_reader_who_sees_its_whole_feed() {
    // The author posts 22 times a round (its post class stands for 128 an hour): far
    // more than the rule pushes to a reader reading twice a round (12 an hour). That
    // reader's feed fills a page in a little under two of its reads: pulled. Reading
    // three times a round (18 an hour, the same read class: classes move by octaves)
    // it fills less than half a page between reads, is shown every entry, and gets
    // the author pushed: through its own word alone, so the notices posted while the
    // pair was pulled must be merged in.
    let (_dirs, clock, pull, selective) = pull_and_selective();
    let both = [&pull, &selective];
    for e in both {
        e.follow(UserId(10), UserId(1)).unwrap();
    }
    let mut pushed_at_two_reads = 0;
    for round in 0..60u64 {
        for _ in 0..22 {
            post(&both, 1);
        }
        for _ in 0..if round < 30 { 2 } else { 3 } {
            assert_eq!(home(&selective, 10), home(&pull, 10), "round {round}");
        }
        if round == 29 {
            pushed_at_two_reads = selective.stats().deliveries;
        }
        clock.advance(Duration::from_secs(600));
    }
    let stats = selective.stats();
    assert!(
        stats.deliveries >= pushed_at_two_reads + 10 * 22,
        "the author's notices reached the reader by push: {stats:?}"
    );
}

#[test]
fn selective_pushes_to_readers_who_come_back_soon_though_each_read_only_a_few_times() {
    // 200 readers read every 50 minutes: a reader's own one-hour counter never holds
    // the three reads' worth that would count it as reading (it peaks at 2.3), so on
    // its own evidence its pairs pull. But the engine watches readers with that
    // evidence come back, 1.2 an hour: once it has watched that long, it pushes their
    // quiet author (one post in two hours) to them.
    let (_dirs, clock, pull, selective) = pull_and_selective_of(256);
    let both = [&pull, &selective];
    let readers = 1..=200u32;
    for e in both {
        for r in readers.clone() {
            e.follow(UserId(r), UserId(0)).unwrap();
        }
    }
    let mut pushed_early = None;
    for minute in (0..=300u64).step_by(5) {
        if minute % 120 == 0 {
            post(&both, 0);
        }
        for r in readers.clone() {
            if (minute + 5 * u64::from(r % 10)) % 50 == 0 {
                assert_eq!(home(&selective, r), home(&pull, r), "minute {minute}");
            }
        }
        if minute == 30 {
            pushed_early = Some(selective.stats().deliveries);
        }
        clock.advance(Duration::from_secs(300));
    }
    let before = selective.stats().deliveries;
    post(&both, 0);
    selective.flush().unwrap();
    let delivered = selective.stats().deliveries - before;
    assert_eq!(
        pushed_early,
        Some(0),
        "nothing pushed before any reader came back"
    );
    assert!(
        delivered >= 150,
        "the quiet author's notice reached most readers by push: {delivered}"
    );
    for r in readers {
        assert_eq!(home(&selective, r), home(&pull, r), "reader {r} at the end");
    }
}

#[test]
fn selective_trusts_how_soon_readers_like_one_come_back_over_its_own_few_reads() {
    // 300 readers each read three times within a minute and never again: the engine
    // watches readers with that evidence (three quick reads) and sees none come back.
    // A reader who then reads three times in a minute counts as reading by its own
    // counter, but readers like it do not come back: its pairs stay pulled, and a
    // notice of an author it follows is not pushed to it.
    let (_dirs, clock, pull, selective) = pull_and_selective_of(400);
    let both = [&pull, &selective];
    let (author, reader, own_author) = (0u32, 1u32, 2u32);
    let crowd = 10..310u32;
    for e in both {
        e.follow(UserId(reader), UserId(author)).unwrap();
        // Followed by the reader alone: what its post delivers went to the reader.
        e.follow(UserId(reader), UserId(own_author)).unwrap();
        for r in crowd.clone() {
            e.follow(UserId(r), UserId(author)).unwrap();
        }
    }
    post(&both, author);
    post(&both, own_author);
    let three_quick_reads = |r: u32| {
        for _ in 0..3 {
            assert_eq!(home(&selective, r), home(&pull, r), "reader {r}");
            clock.advance(Duration::from_secs(2));
        }
    };
    for r in crowd {
        three_quick_reads(r);
    }
    // Twenty minutes of the crowd not coming back: 100 reader-hours of evidence.
    clock.advance(Duration::from_secs(20 * 60));
    three_quick_reads(reader);
    let before = selective.stats().deliveries;
    post(&both, own_author);
    selective.flush().unwrap();
    assert_eq!(
        selective.stats().deliveries,
        before,
        "nothing pushed to a reader whose like never come back"
    );
    assert_eq!(home(&selective, reader), home(&pull, reader));
}

/// Rates for `users` users: every user posts `posts` and reads `reads` an hour.
fn known(users: usize, posts: f64, reads: f64) -> KnownRates {
    KnownRates {
        posts_per_hour: vec![posts; users],
        reads_per_hour: vec![reads; users],
    }
}

/// A selective engine (given `rates`, or estimating) beside a pull one: reader 1
/// follows author 0, reads after the author's first notice and again a minute after
/// its second, each page equal to pull's. Returns what the selective engine pushed.
fn deliveries_of_two_notices(rates: Option<KnownRates>) -> u64 {
    let (_dirs, clock, pull, selective) = pull_and_selective();
    if let Some(rates) = rates {
        selective.set_known_rates(rates).unwrap();
    }
    let both = [&pull, &selective];
    for e in both {
        e.follow(UserId(1), UserId(0)).unwrap();
    }
    post(&both, 0);
    assert_eq!(home(&selective, 1), home(&pull, 1));
    clock.advance(Duration::from_secs(60));
    post(&both, 0);
    assert_eq!(home(&selective, 1), home(&pull, 1));
    selective.stats().deliveries
}

#[test]
fn selective_decides_by_known_rates_from_a_readers_first_read() {
    // Estimating, a reader counts as reading only after a few reads: its pairs pull
    // at first. Given the true rates (it reads 10 times an hour, its author posts
    // once), its first read turns the pair to push, and pages stay pull's.
    assert_eq!(
        deliveries_of_two_notices(Some(known(16, 1.0, 10.0))),
        1,
        "pushed by the known rates"
    );
    assert_eq!(
        deliveries_of_two_notices(None),
        0,
        "pulled while estimating"
    );
}

#[test]
fn selective_pulls_an_author_known_to_post_much_from_its_first_posts() {
    // The same reader (10 reads an hour) and author: known to post 10,000 an hour, the
    // author's second notice is pulled, from its first posts on (a counter would
    // still call it quiet); known to post once an hour, it is pushed.
    let mut loud = known(16, 1.0, 10.0);
    loud.posts_per_hour[0] = 10_000.0;
    assert_eq!(
        deliveries_of_two_notices(Some(loud)),
        0,
        "pulled by the known rate"
    );
    assert_eq!(
        deliveries_of_two_notices(Some(known(16, 1.0, 10.0))),
        1,
        "a quiet author's notice is pushed"
    );
}

#[test]
fn known_rates_are_checked() {
    let (_dirs, _clock, pull, selective) = pull_and_selective();
    let invalid = |r: feedcore::Result<()>| match r {
        Err(feedcore::Error::InvalidConfig { reason }) => reason,
        other => panic!("expected InvalidConfig, got {other:?}"),
    };
    let reason = invalid(pull.set_known_rates(known(16, 1.0, 1.0)));
    assert!(reason.contains("selective"), "{reason}");
    let reason = invalid(selective.set_known_rates(known(15, 1.0, 1.0)));
    assert!(reason.contains("users_max is 16"), "{reason}");
    let mut bad = known(16, 1.0, 1.0);
    bad.reads_per_hour[3] = f64::NAN;
    let reason = invalid(selective.set_known_rates(bad));
    assert!(reason.contains("reads_per_hour[3]"), "{reason}");
    let mut bad = known(16, 1.0, 1.0);
    bad.posts_per_hour[0] = -1.0;
    invalid(selective.set_known_rates(bad));
    selective.set_known_rates(known(16, 1.0, 1.0)).unwrap();
    let reason = invalid(selective.set_known_rates(known(16, 1.0, 1.0)));
    assert!(reason.contains("already"), "{reason}");
}
