//! What a home read pulls beside the ring, per the strategy, and the plan cached per
//! reader while its key holds.

use std::sync::Arc;

use crate::engine::facade::Shared;
use crate::fanout::strategy::{PairRead, PlanKey};
use crate::ids::UserId;

/// What a home read pulls beside the ring.
#[derive(Debug, Default)]
pub(super) struct ReadPlan {
    /// Authors whose pairs are pulled.
    pub(super) pulls: Arc<[u32]>,
    /// Push pairs that turned to push at a read (see `Repair::push_from_now`): the
    /// ring holds the author's notices from the given id on; older ones are pulled.
    /// Sorted by author, as the switches it is filtered from.
    pub(super) partial: Arc<[(u32, u64)]>,
    /// The newest `since` of the push pairs: the ring is trusted only if it was rebuilt
    /// at or after it.
    pub(super) trust_from: u64,
    /// Push pairs with their `since`, for repairing only the pairs that changed (empty
    /// in a plan from the cache, which is only used once nothing needs repairing).
    pub(super) pushed: Vec<(u32, u64)>,
}

/// A reader's plan as last computed, and the key it was computed under: while the
/// key holds, the plan does (see `Signals::plan_key`), and a read skips the walk of
/// every followed author's class word: with it, a selective read of a reader who
/// follows 2000 authors cost as much as a pull.
pub(crate) struct CachedPlan {
    key: PlanKey,
    pulls: Arc<[u32]>,
    partial: Arc<[(u32, u64)]>,
    trust_from: u64,
}

impl Shared {
    /// Which followed authors this read pulls, and since when the ring must have been
    /// rebuilt to be trusted for the others.
    pub(super) fn plan(&self, user: u32) -> ReadPlan {
        let mut plan = ReadPlan::default();
        let Some(key) = self.signals.plan_key(user) else {
            return plan; // the strategy plans nothing
        };
        if let Some(cached) = &*self.plans[user as usize].load()
            && cached.key == key
            && cached.trust_from <= self.signals.repaired(user)
        {
            plan.pulls = Arc::clone(&cached.pulls);
            plan.partial = Arc::clone(&cached.partial);
            plan.trust_from = cached.trust_from;
            return plan;
        }
        let ctx = self.strategy_ctx();
        let authors = std::iter::once(user).chain(self.graph.following(UserId(user)).map(|u| u.0));
        let mut pulls = Vec::new();
        let mut settled = true;
        for author in authors {
            match self.strategy.pair(&ctx, author, user) {
                PairRead::Pull => pulls.push(author),
                PairRead::PullForNow => {
                    pulls.push(author);
                    settled = false;
                }
                PairRead::Push { since } => {
                    plan.trust_from = plan.trust_from.max(since);
                    plan.pushed.push((author, since));
                }
            }
        }
        plan.pulls = pulls.into();
        // After the words: a switch is recorded before its word says push.
        if let Some(switches) = &*self.switches[user as usize].load() {
            let mut pushed: Vec<u32> = plan.pushed.iter().map(|&(a, _)| a).collect();
            pushed.sort_unstable();
            plan.partial = switches
                .iter()
                .filter(|(a, _)| pushed.binary_search(a).is_ok())
                .copied()
                .collect();
        }
        // A plan that pulled pairs only while a change was under way is not kept: the
        // change may end without invalidating it (its pairs' decision did not flip),
        // and the reader would pull them for good.
        if settled {
            // Two readers of one user may race here; the loser's plan, if older,
            // carries an older key and is recomputed at the next read.
            self.plans[user as usize].store(Some(Arc::new(CachedPlan {
                key,
                pulls: Arc::clone(&plan.pulls),
                partial: Arc::clone(&plan.partial),
                trust_from: plan.trust_from,
            })));
        }
        plan
    }
}
