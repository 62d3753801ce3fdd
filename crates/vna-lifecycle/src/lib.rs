//! Lifecycle policies: the files an archive administrator writes in `lifecycle-policies/`, and
//! what they decide for one object — how long it is locked and how (retention), when it moves
//! to another tier, whether it is deleted once its retention has passed (expiry), whether it is
//! held. Pure logic: the time is passed in, nothing is read but the policy files, nothing is
//! written. The jobs that apply decisions, and the catalog facts they start from, come later.
//!
//! # How it is built
//!
//! `policy.rs` is the file format (TOML, strict, versioned like the main configuration) and its
//! validation; `when.rs` the durations (`10y`, `18m`, `90d`, `12h`, `30s`) and reference dates;
//! `family.rs` the SOP class families a rule can name (whole-slide imaging, video, structured
//! reports, encapsulated documents, radiology images); `decide.rs` what the rules that match an
//! object's [`Facts`] decide ([`Decision`]); `check.rs` loading a folder of policy files, the
//! conflicts between rules and the test cases a file carries (`vna lifecycle check`).
//!
//! The four kinds of action stay apart: retention, transition, expiry, hold. Where several rules
//! match, the longest retention wins and the lock is COMPLIANCE if any of them asks for it (a
//! lock is never weaker than a rule asks); the transition of the rule with the highest priority
//! wins; expiry needs a rule that asks for it and comes only after the retention decided by all
//! of them. A rule without a `rejected` condition is a clinical rule: it does not match an
//! object rejected by an IOCM rejection note, whose fate only rules naming rejections decide.

mod check;
mod decide;
mod family;
mod policy;
mod when;

pub use check::{load_dir, CheckReport, PolicySet, TestOutcome};
pub use decide::{decide, Decision, Facts, Rejection, Retention, TierMove};
pub use family::{family_of, Family};
pub use policy::{LockMode, PolicyError, PolicyFile, Reference, Rule, ATTRIBUTES, CURRENT_VERSION};
pub use when::{parse_date, parse_instant, years_between, Span};
