//! Workloads: a seeded sequence of posts and home-timeline reads. Posting rates are
//! Zipf-skewed over users (with the default skew of 1, a tenth of the users write
//! about four fifths of the notices), read rates per user are Zipf-skewed too (more
//! mildly, over an independent order of users), and replies, repeats and mentions come
//! in stated proportions. Who posts much is independent of who is followed much (the
//! orders of users are drawn from a seed mixed apart from the graph's). The same
//! parameters give the same sequence, operation for
//! operation, whatever runs it.

use std::collections::VecDeque;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::Distribution;
use rand_distr::weighted::WeightedAliasIndex;

use super::synthetic::synthetic_notice;
use crate::ids::{NoticeId, UserId};
use crate::notice::NewNotice;

/// XORed into the seed, so that the same `--seed` gives a graph and a workload whose
/// random orders of users are unrelated.
const WORKLOAD_SEED_MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// Replies and repeats pick their target among this many most recent posts.
const RECENT_POSTS: usize = 1024;

/// Parameters of a workload.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// Users, ids `0..users` (the graph's).
    pub users: u32,
    /// Operations (posts plus reads).
    pub ops: u64,
    /// Reads per post: each operation is a read with probability `r / (1 + r)`.
    pub read_write_ratio: f64,
    /// Zipf exponent of posting rates over users (1.0: a tenth of 100,000 users write
    /// about 81% of the notices).
    pub post_skew: f64,
    /// Zipf exponent of reading rates over users, in an order independent of posting.
    pub read_skew: f64,
    /// Fraction of posts that reply to a recent post (and mention its author).
    pub reply_fraction: f64,
    /// Fraction of posts that repeat a recent post (empty body).
    pub repeat_fraction: f64,
    /// Fraction of original posts that mention a random user.
    pub mention_fraction: f64,
    /// Entries per page of a home-timeline read.
    pub page_size: usize,
    /// Seed: the same seed gives the same sequence.
    pub seed: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            users: 100_000,
            ops: 1_000_000,
            read_write_ratio: 10.0,
            post_skew: 1.0,
            read_skew: 0.5,
            reply_fraction: 0.2,
            repeat_fraction: 0.1,
            mention_fraction: 0.1,
            page_size: 20,
            seed: 1,
        }
    }
}

/// What a post is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PostKind {
    /// A new notice.
    Original,
    /// A reply to an earlier post of the same workload.
    Reply(NoticeId),
    /// A repeat of an earlier post of the same workload.
    Repeat(NoticeId),
}

/// One post of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PostOp {
    /// The author.
    pub author: UserId,
    /// Posts before this one in the sequence: on a fresh store this post is stored as
    /// notice `ordinal + 1`, which is how replies and repeats name their targets.
    pub ordinal: u64,
    /// Original, reply or repeat.
    pub kind: PostKind,
    /// The user mentioned, if any.
    pub mention: Option<UserId>,
}

impl PostOp {
    /// The notice to post: a 280-byte synthetic body (empty for a repeat).
    pub fn notice(&self) -> NewNotice {
        let id = NoticeId(self.ordinal + 1);
        let (reply_to, repeat_of) = match self.kind {
            PostKind::Original => (None, None),
            PostKind::Reply(to) => (Some(to), None),
            PostKind::Repeat(of) => (None, Some(of)),
        };
        NewNotice {
            author: self.author,
            body: if repeat_of.is_some() {
                String::new()
            } else {
                synthetic_notice(id).body
            },
            created_at_ms: 1_700_000_000_000 + self.ordinal,
            reply_to,
            repeat_of,
            mentions: self.mention.into_iter().collect(),
            ..Default::default()
        }
    }
}

/// One operation of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Post a notice.
    Post(PostOp),
    /// Read the newest page of `user`'s home timeline (with the bodies).
    Read(UserId),
}

/// Counts of a workload's operations and a digest of the whole sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadSummary {
    /// Posts.
    pub posts: u64,
    /// Reads.
    pub reads: u64,
    /// Posts that reply.
    pub replies: u64,
    /// Posts that repeat.
    pub repeats: u64,
    /// Posts that mention someone.
    pub mentions: u64,
    /// Share of the posting rate that belongs to the tenth of users with the highest
    /// rates (from the Zipf weights, not counted over the sequence: a short sequence
    /// has fewer authors than a tenth of the users and would say 100%).
    pub top_tenth_post_share: f64,
    /// Distinct users who read at least once.
    pub readers: u64,
    /// FNV-1a digest of the operation sequence: equal digests, equal sequences.
    pub digest: u64,
}

/// Each user's expected share of a workload's operations, as posts and as reads
/// (see [`Workload::rates_per_op`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RatesPerOp {
    /// Per user: the probability that an operation is a post by that user.
    pub posts: Vec<f64>,
    /// Per user: the probability that an operation is a read by that user.
    pub reads: Vec<f64>,
}

/// Zipf weights `(rank + 1)^-s` over a seeded random order of users.
fn zipf_users(users: u32, s: f64, rng: &mut SmallRng) -> (Vec<u32>, WeightedAliasIndex<f64>) {
    let mut order: Vec<u32> = (0..users).collect();
    order.shuffle(rng);
    let weights: Vec<f64> = (0..users).map(|r| f64::from(r + 1).powf(-s)).collect();
    let index = WeightedAliasIndex::new(weights).expect("positive finite weights");
    (order, index)
}

impl Workload {
    /// Checks the parameters; the reason names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.users < 2 {
            return Err(format!(
                "users is {}; a workload needs at least 2",
                self.users
            ));
        }
        if !(self.read_write_ratio.is_finite() && self.read_write_ratio >= 0.0) {
            return Err(format!(
                "read:write ratio {} must be a number >= 0",
                self.read_write_ratio
            ));
        }
        for (name, s) in [("post skew", self.post_skew), ("read skew", self.read_skew)] {
            if !(s.is_finite() && s >= 0.0) {
                return Err(format!("{name} {s} must be a number >= 0"));
            }
        }
        for (name, f) in [
            ("reply fraction", self.reply_fraction),
            ("repeat fraction", self.repeat_fraction),
            ("mention fraction", self.mention_fraction),
        ] {
            if !(0.0..=1.0).contains(&f) {
                return Err(format!("{name} {f} must be between 0 and 1"));
            }
        }
        if self.reply_fraction + self.repeat_fraction > 1.0 {
            return Err("reply and repeat fractions add up to more than 1".into());
        }
        if self.page_size == 0 {
            return Err("page size must be at least 1".into());
        }
        Ok(())
    }

    /// The seeded generator and the orders of posters and readers, with their
    /// weights: the start of [`Workload::ops`].
    #[allow(clippy::type_complexity)]
    fn users_drawn(
        &self,
    ) -> (
        SmallRng,
        (Vec<u32>, WeightedAliasIndex<f64>),
        (Vec<u32>, WeightedAliasIndex<f64>),
    ) {
        // Mixed so the workload's orders of users are not the graph generators' (which
        // shuffle first from the same seed): posting rate independent of popularity.
        let mut rng = SmallRng::seed_from_u64(self.seed ^ WORKLOAD_SEED_MIX);
        let posters = zipf_users(self.users, self.post_skew, &mut rng);
        let readers = zipf_users(self.users, self.read_skew, &mut rng);
        (rng, posters, readers)
    }

    fn read_probability(&self) -> f64 {
        self.read_write_ratio / (1.0 + self.read_write_ratio)
    }

    /// Each user's true rates, per operation: what [`Workload::ops`] draws from. Times
    /// operations per hour, the rates per hour that the selective strategy estimates
    /// (see [`crate::Engine::set_known_rates`]).
    ///
    /// Panics when [`Workload::validate`] fails.
    pub fn rates_per_op(&self) -> RatesPerOp {
        if let Err(reason) = self.validate() {
            panic!("invalid workload: {reason}");
        }
        let (_, (posters, _), (readers, _)) = self.users_drawn();
        let shares = |order: &[u32], skew: f64, of_ops: f64| {
            let weight = |rank: usize| (rank as f64 + 1.0).powf(-skew);
            let total: f64 = (0..order.len()).map(weight).sum();
            let mut share = vec![0.0; order.len()];
            for (rank, &user) in order.iter().enumerate() {
                share[user as usize] = of_ops * weight(rank) / total;
            }
            share
        };
        let read_p = self.read_probability();
        RatesPerOp {
            posts: shares(&posters, self.post_skew, 1.0 - read_p),
            reads: shares(&readers, self.read_skew, read_p),
        }
    }

    /// The operations, in order. Deterministic in the parameters.
    ///
    /// Panics when [`Workload::validate`] fails.
    pub fn ops(&self) -> impl Iterator<Item = Op> + use<> {
        if let Err(reason) = self.validate() {
            panic!("invalid workload: {reason}");
        }
        let (mut rng, (posters, post_index), (readers, read_index)) = self.users_drawn();
        let read_p = self.read_probability();
        let w = self.clone();
        let mut recent: VecDeque<(NoticeId, UserId)> = VecDeque::with_capacity(RECENT_POSTS);
        let mut posts = 0u64;
        (0..self.ops).map(move |_| {
            if rng.random_bool(read_p) {
                return Op::Read(UserId(readers[read_index.sample(&mut rng)]));
            }
            let author = UserId(posters[post_index.sample(&mut rng)]);
            let roll: f64 = rng.random();
            let target = (!recent.is_empty()).then(|| recent[rng.random_range(0..recent.len())]);
            let (kind, mention) = match target {
                Some((id, to)) if roll < w.reply_fraction => {
                    (PostKind::Reply(id), (to != author).then_some(to))
                }
                Some((id, _)) if roll < w.reply_fraction + w.repeat_fraction => {
                    (PostKind::Repeat(id), None)
                }
                _ => {
                    let mention = rng
                        .random_bool(w.mention_fraction)
                        .then(|| UserId(rng.random_range(0..w.users)))
                        .filter(|&m| m != author);
                    (PostKind::Original, mention)
                }
            };
            let op = PostOp {
                author,
                ordinal: posts,
                kind,
                mention,
            };
            posts += 1;
            if recent.len() == RECENT_POSTS {
                recent.pop_front();
            }
            recent.push_back((NoticeId(posts), author));
            Op::Post(op)
        })
    }

    /// Counts and digest of the sequence (runs through it once).
    pub fn summarize(&self) -> WorkloadSummary {
        let mut s = WorkloadSummary {
            posts: 0,
            reads: 0,
            replies: 0,
            repeats: 0,
            mentions: 0,
            top_tenth_post_share: 0.0,
            readers: 0,
            digest: 0xcbf2_9ce4_8422_2325,
        };
        let mut read = vec![false; self.users as usize];
        let eat = |digest: &mut u64, x: u64| {
            for b in x.to_le_bytes() {
                *digest = (*digest ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        };
        for op in self.ops() {
            match op {
                Op::Read(u) => {
                    s.reads += 1;
                    read[u.0 as usize] = true;
                    eat(&mut s.digest, 1 << 40 | u64::from(u.0));
                }
                Op::Post(p) => {
                    s.posts += 1;
                    let (tag, target) = match p.kind {
                        PostKind::Original => (2, 0),
                        PostKind::Reply(id) => {
                            s.replies += 1;
                            (3, id.0)
                        }
                        PostKind::Repeat(id) => {
                            s.repeats += 1;
                            (4, id.0)
                        }
                    };
                    s.mentions += u64::from(p.mention.is_some());
                    eat(&mut s.digest, tag << 40 | u64::from(p.author.0));
                    eat(&mut s.digest, target);
                    eat(
                        &mut s.digest,
                        p.mention.map_or(u64::MAX, |m| u64::from(m.0)),
                    );
                }
            }
        }
        let tenth = self.users.div_ceil(10);
        let weight = |r: u32| f64::from(r + 1).powf(-self.post_skew);
        let top: f64 = (0..tenth).map(weight).sum();
        let all: f64 = top + (tenth..self.users).map(weight).sum::<f64>();
        s.top_tenth_post_share = top / all;
        s.readers = read.iter().filter(|&&r| r).count() as u64;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_the_proportions_hold() {
        let w = Workload {
            users: 10_000,
            ops: 50_000,
            read_write_ratio: 1.0,
            ..Default::default()
        };
        let a: Vec<Op> = w.ops().collect();
        assert_eq!(a, w.ops().collect::<Vec<_>>());
        let s = w.summarize();
        assert_eq!(s.posts + s.reads, 50_000);
        let posts = s.posts as f64;
        assert!((s.reads as f64 / posts - 1.0).abs() < 0.05, "{s:?}");
        assert!((s.replies as f64 / posts - 0.2).abs() < 0.02, "{s:?}");
        assert!((s.repeats as f64 / posts - 0.1).abs() < 0.02, "{s:?}");
        assert!(s.top_tenth_post_share > 0.6, "{s:?}");
        let other = Workload { seed: 2, ..w };
        assert_ne!(other.summarize().digest, s.digest);
    }

    /// The rates are the ones the sequence is drawn from: they sum to the shares of
    /// posts and reads, and the busiest users' counts over a long sequence match.
    #[test]
    fn rates_per_op_are_what_the_sequence_draws() {
        let w = Workload {
            users: 1_000,
            ops: 200_000,
            read_write_ratio: 3.0,
            ..Default::default()
        };
        let rates = w.rates_per_op();
        let sum = |v: &[f64]| v.iter().sum::<f64>();
        assert!((sum(&rates.posts) - 0.25).abs() < 1e-9);
        assert!((sum(&rates.reads) - 0.75).abs() < 1e-9);
        let (mut posts, mut reads) = (vec![0u64; 1_000], vec![0u64; 1_000]);
        for op in w.ops() {
            match op {
                Op::Read(u) => reads[u.0 as usize] += 1,
                Op::Post(post) => posts[post.author.0 as usize] += 1,
            }
        }
        let busiest = |v: &[f64]| {
            (0..v.len())
                .max_by(|&a, &b| v[a].total_cmp(&v[b]))
                .expect("users")
        };
        for (rate, count) in [(&rates.posts, &posts), (&rates.reads, &reads)] {
            let u = busiest(rate);
            let expected = rate[u] * 200_000.0;
            let got = count[u] as f64;
            assert!(
                (got - expected).abs() < 4.0 * expected.sqrt() + 1.0,
                "user {u}: {got} against {expected}"
            );
        }
    }
}
