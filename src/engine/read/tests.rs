//! Reads racing the ring: fetches across a drop, a free or a rebuild; the repair of a
//! switch.

use super::candidates::HomeCandidates;
use super::repair::ReadRepair;
use crate::fanout::strategy::Repair;
use crate::ids::UserId;
use crate::timeline::Page;
use crate::{Config, Durability, Engine, NewNotice, Strategy};

const READER: u32 = 1;
/// Pushed: one follower.
const SMALL: u32 = 2;
/// Pulled: two followers, `Hybrid`'s threshold.
const BIG: u32 = 3;

/// An engine with 8-entry rings, `READER` following `SMALL` and `BIG`, `SMALL`'s
/// notices 1..=6, `BIG`'s 7, `SMALL`'s 8..=13 posted, and `READER`'s ring built by a
/// read: it holds 13 down to 6, its floor above 5.
fn engine_with_a_full_ring(dir: &std::path::Path) -> Engine {
    let e = Engine::open(
        dir,
        Config {
            users_max: 8,
            timeline_capacity: 8,
            durability: Durability::Buffered,
            strategy: Strategy::Hybrid { followers_min: 2 },
            ..Default::default()
        },
    )
    .unwrap();
    for (a, b) in [(READER, SMALL), (READER, BIG), (4, BIG)] {
        e.follow(UserId(a), UserId(b)).unwrap();
    }
    for author in [SMALL; 6].into_iter().chain([BIG]).chain([SMALL; 6]) {
        post(&e, author);
    }
    e.flush().unwrap();
    e.home_timeline(UserId(READER), Page::latest(1)).unwrap();
    e
}

fn post(e: &Engine, author: u32) -> u64 {
    e.post(NewNotice {
        author: UserId(author),
        body: "n".into(),
        ..Default::default()
    })
    .unwrap()
    .0
}

/// A page of 3 of `READER`'s candidates (the first ring fetch takes 4 ids), with
/// `meanwhile` run after its first two.
fn candidates_around(e: &Engine, meanwhile: impl FnOnce()) -> Vec<u64> {
    let shared = e.shared();
    let plan = shared.plan(READER);
    assert_eq!(&*plan.pulls, &[BIG], "the big author is pulled");
    let ring_word = shared.ensure_ready(READER, &plan);
    assert!(ring_word.is_some());
    let mut candidates = HomeCandidates::new(shared, READER, None, ring_word, &plan, 3);
    let mut ids: Vec<u64> = candidates.by_ref().take(2).collect();
    meanwhile();
    ids.extend(candidates);
    ids
}

#[test]
fn a_read_yields_the_pushed_ids_the_ring_dropped_between_two_fetches() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_a_full_ring(dir.path());
    let ids = candidates_around(&e, || {
        // Sixteen newer notices push every entry the read has not fetched yet out.
        for _ in 0..16 {
            post(&e, SMALL);
        }
        e.flush().unwrap();
    });
    // Everything below the first fetch's newest, as a pull shows it; the big
    // author's 7 (merged from its list, below the raised floor) comes after 8.
    assert_eq!(ids, (1..=13).rev().collect::<Vec<u64>>());
}

/// A newest page of `READER`'s whole feed, which pulls `BIG`'s list (notice 7, the
/// page's 7th candidate), then its repair turning `BIG` to push with `keep`, after
/// `meanwhile`: `BIG`'s switch, and whether the ring holds 7.
fn repair_after_a_page(e: &Engine, keep: usize, meanwhile: impl FnOnce()) -> (u64, bool) {
    let shared = e.shared();
    let plan = shared.plan(READER);
    let ring_word = shared.ensure_ready(READER, &plan);
    let mut candidates = HomeCandidates::new(shared, READER, None, ring_word, &plan, 20);
    assert_eq!(candidates.by_ref().count(), 13);
    meanwhile();
    ReadRepair {
        shared,
        user: READER,
        page: Some(&candidates),
    }
    .push_from_now(&[BIG], keep);
    let switches = shared.switches[READER as usize].load_full().unwrap();
    assert_eq!(switches.len(), 1);
    assert_eq!(switches[0].0, BIG);
    let mut ring = Vec::new();
    shared.timelines.copy_below(READER, None, 100, &mut ring);
    (switches[0].1, ring.contains(&7))
}

#[test]
fn a_switch_keeps_what_the_page_pulled_and_the_next_page_shows_again() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_a_full_ring(dir.path());
    assert_eq!(repair_after_a_page(&e, 20, || ()), (7, true));
}

#[test]
fn a_switch_keeps_nothing_past_the_candidates_the_next_page_shows_again() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_a_full_ring(dir.path());
    // The first 3 candidates are 13, 12, 11: 7 is not among them. The switch sits
    // just above the list's newest id, so no read opens it before reaching 7.
    assert_eq!(repair_after_a_page(&e, 3, || ()), (8, false));
}

#[test]
fn a_switch_after_the_list_grew_since_the_page_copied_it_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_a_full_ring(dir.path());
    // Notice 14, listed after the page's copy and decided under the old word: the
    // page never saw it, so the switch stays above it (the log's next id) and
    // reads pull it.
    let got = repair_after_a_page(&e, 20, || {
        post(&e, BIG);
    });
    assert_eq!(got, (15, false));
}

#[test]
fn a_worker_frees_only_the_ring_of_the_word_it_made_stale() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_a_full_ring(dir.path());
    let timelines = &e.shared().timelines;
    let page = |e: &Engine| e.home_timeline(UserId(READER), Page::latest(20)).unwrap();
    // A worker saw the word; another made the user stale and freed its ring, and
    // a read rebuilt it.
    let seen = timelines.state(READER);
    assert!(timelines.make_stale_and_free(READER, seen));
    assert!(!timelines.state(READER).fresh());
    assert_eq!(page(&e).ids.len(), 13);
    // The first worker acts on the word it saw: it must not free the rebuilt ring
    // (the word says ready: a read would serve an empty ring).
    assert!(!timelines.make_stale_and_free(READER, seen));
    assert_eq!(page(&e).ids.len(), 13);
    let mut ring = Vec::new();
    timelines.copy_below(READER, None, 100, &mut ring);
    assert_eq!(ring.len(), 8, "the rebuilt ring is still there");
}

#[test]
fn a_superseded_rebuild_does_not_mark_the_timeline_ready() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_a_full_ring(dir.path());
    let shared = e.shared();
    let timelines = &shared.timelines;
    let now = shared.config.clock.now_ms();
    // One read begins a rebuild and stalls; a second (finding the first past the
    // activity window, or with a clock that jumped) begins its own and frees the
    // ring; the first ends.
    let first = timelines.begin_rebuild(READER, timelines.state(READER), now);
    let second = timelines.begin_rebuild(READER, timelines.state(READER), now);
    timelines.free(READER);
    assert_eq!(timelines.end_rebuild(READER, first.unwrap()), None);
    assert!(
        !timelines.state(READER).ready(),
        "the second is still merging"
    );
    // Reads pull meanwhile.
    let page = e.home_timeline(UserId(READER), Page::latest(20)).unwrap();
    assert_eq!(page.ids.len(), 13);
    assert!(timelines.end_rebuild(READER, second.unwrap()).is_some());
}

#[test]
fn a_read_whose_ring_is_freed_between_two_fetches_pulls_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine_with_a_full_ring(dir.path());
    let ids = candidates_around(&e, || {
        // What a worker does to a reader gone quiet.
        let timelines = &e.shared().timelines;
        assert!(timelines.make_stale_and_free(READER, timelines.state(READER)));
    });
    assert_eq!(ids, (1..=13).rev().collect::<Vec<u64>>());
}
