//! `[lifecycle]` (the policies and how they are applied) and `[jobs]` (the background job
//! runner that applies them).

use serde::Deserialize;

/// `[jobs]`: the background job runner of this node (lifecycle jobs today).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Whether this node claims and runs jobs. Every node may: the catalog hands each job to
    /// one node at a time.
    pub run: bool,
    /// How long a claim holds without renewal; a node renews every third of it while it works.
    /// A node that dies holds its job this long before another takes it over.
    pub lease_seconds: u64,
    /// How often an idle node looks for work.
    pub poll_seconds: u64,
    /// Jobs this node runs at once (each a runner of its own; an apply run is split into jobs
    /// of instance key ranges, so several runners apply it in parallel).
    pub runners: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig { run: true, lease_seconds: 60, poll_seconds: 10, runners: 1 }
    }
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        LifecycleConfig {
            policies_dir: String::new(),
            lock_horizon_days: 0,
            hot_margin_days: 30,
            access_flush_seconds: 60,
            apply_every_hours: 0,
            apply_max_per_second: 0,
            apply_max_mb_per_second: 0,
        }
    }
}

/// `[lifecycle]`: the retention, tiering, expiry and hold policies.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LifecycleConfig {
    /// A folder of policy files (`*.toml`, see `lifecycle-policies/`), loaded and checked at
    /// start: a file that does not load, a conflict or a failing test case refuses the start.
    /// Empty: no policies.
    pub policies_dir: String,
    /// 0: an object is locked until the date its policies give. More: until that date or this
    /// many days from now, whichever comes first, and `vna lifecycle apply` extends each lock
    /// once less than half of this is left. A retention computed too long (a wrong birth date,
    /// patients merged) then heals within this time even in COMPLIANCE mode, at the cost of
    /// about two retention updates per object and year for a horizon of a year.
    pub lock_horizon_days: u32,
    /// An object due to move to another tier is locked on the tier it leaves until its move
    /// date plus this many days (extended by `vna lifecycle apply` while the move waits), and
    /// with its full retention on the tier it moves to: a locked version could not be removed
    /// from the tier it left.
    pub hot_margin_days: u32,
    /// Each node notes which instances are read and writes their last access to the catalog
    /// in one batch this often (for `unused_for` rules: at most one write per instance and
    /// interval); 0: not tracked.
    pub access_flush_seconds: u64,
    /// Every this many hours the nodes apply the policies on their own: when a period begins
    /// one node (of all those running jobs on the catalog) queues an apply run of the
    /// configured policies, unless an apply run is still going. Each run decides every object
    /// afresh, so it also retries what an earlier run could not do. 0: only
    /// `vna lifecycle apply` (or the admin API) applies them.
    pub apply_every_hours: u32,
    /// Objects a scheduled run examines per second at most (0: unpaced), so that patients'
    /// images keep priority.
    pub apply_max_per_second: u32,
    /// Megabytes a scheduled run's tier moves copy per second at most (0: unpaced).
    pub apply_max_mb_per_second: u32,
}
