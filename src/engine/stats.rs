//! What the engine reports about itself.

/// Counts, memory and delivery lag of an [`Engine`](crate::Engine).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct EngineStats {
    /// Notices in the log (deleted ones included).
    pub notices: u64,
    /// Notices deleted.
    pub deleted: u64,
    /// Posts accepted since open.
    pub posts: u64,
    /// Timeline deliveries made since open.
    pub deliveries: u64,
    /// Posts accepted and not yet delivered to every follower.
    pub pending_posts: u64,
    /// Delivery lag (post accepted to delivered to every follower), milliseconds:
    /// median, 99th percentile and maximum since open.
    pub delivery_lag_ms_p50: f64,
    /// See `delivery_lag_ms_p50`.
    pub delivery_lag_ms_p99: f64,
    /// See `delivery_lag_ms_p50`.
    pub delivery_lag_ms_max: f64,
    /// Timelines rebuilt at a read (users back from quiet, or first read after open).
    pub rebuilds: u64,
    /// Users whose stored timeline is complete (they get deliveries).
    pub timelines_fresh: u64,
    /// Timelines allocated.
    pub timelines: u64,
    /// Entries stored over all timelines.
    pub timeline_entries: u64,
    /// Bytes of all timelines (rings and per-user slots).
    pub timeline_bytes: u64,
    /// `timeline_bytes / timeline_entries`.
    pub timeline_bytes_per_entry: f64,
    /// Follow edges.
    pub follows: u64,
    /// The strategy's name.
    pub strategy: &'static str,
    /// Cost: entries written into stored timelines (pushes, and the entries rebuilds
    /// and repairs merge in).
    pub cost_timeline_writes: u64,
    /// Cost: ids read from authors' lists by pulls (reads, rebuilds).
    pub cost_author_index_reads: u64,
    /// Cost: steps of the k-way merges of pulls.
    pub cost_merge_steps: u64,
    /// Cost: ids read from stored timelines.
    pub cost_ring_reads: u64,
    /// Cost: bytes of ids written and read (4 per timeline entry, 8 per author-list
    /// id); notice bodies are not counted.
    pub cost_bytes_touched: u64,
    /// Measured since open, what the selective strategy weighs: id bytes touched per
    /// entry written into a stored timeline (4 for the write, plus its share of the
    /// ring reads); 0 before anything was written.
    pub cost_push_bytes: f64,
    /// Measured since open: id bytes read per author's list that a pull found
    /// non-empty (its head, and what the page took from it); 0 before any pull.
    pub cost_pull_bytes_per_list: f64,
    /// Measured: nanoseconds per push delivery (moving average; reported only, the
    /// selective strategy weighs the byte costs above).
    pub push_ns: f64,
    /// Measured: nanoseconds per author pulled at a read (moving average).
    pub pull_ns_per_author: f64,
    /// The delivery outbox to remote servers.
    pub outbox: crate::OutboxStats,
}
