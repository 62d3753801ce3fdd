//! What the rules decide for one object, from the facts the catalog holds about it and the time
//! of the decision.

use crate::family::{family_of, Family};
use crate::policy::{Conditions, LockMode, Reference, Rule};
use crate::when::{years_between, Span};
use std::collections::BTreeMap;

/// What the archive knows of an object, as the rules see it. Times are Unix milliseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub modality: String,
    pub sop_class_uid: String,
    /// When the SOP class is not known (a test describing an object by its family).
    pub family: Option<Family>,
    pub body_part: String,
    pub tenant: String,
    pub institution: String,
    pub department: String,
    pub birth_date: Option<i64>,
    pub study_date: Option<i64>,
    /// The patient's latest study date in the archive.
    pub last_study_date: Option<i64>,
    pub ingest: i64,
    pub last_access: Option<i64>,
    pub rejection: Option<Rejection>,
    /// Other attributes, by tag (8 upper-case hex digits).
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The rejection note's title code (113001, 113037, 113038, 113039).
    pub code: String,
    pub at: i64,
}

/// A lock: its mode, until when, and the rules that asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    pub until: i64,
    pub rules: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierMove {
    pub tier: String,
    /// When it is due (the earlier of the rule's two triggers).
    pub at: Option<i64>,
    pub rule: String,
    /// Other rules of the same priority that would move it elsewhere (a conflict).
    pub contested_by: Vec<String>,
}

/// What the rules decide for an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The rules that match, in the order they were given.
    pub rules: Vec<String>,
    pub retention: Option<Retention>,
    /// Rules that match but whose retention cannot be computed (a date it counts from is
    /// unknown): the object is reported, not locked short.
    pub undetermined: Vec<String>,
    pub transition: Option<TierMove>,
    /// When the object may be deleted: the end of its retention, if a rule asks for expiry.
    pub expire_at: Option<i64>,
    pub hold: Vec<String>,
}

impl Decision {
    /// Whether the object may be deleted at `now`: a rule asks for expiry, its retention has
    /// ended, no hold applies, and no matching rule's retention is undetermined (a date it
    /// counts from is unknown: the object is kept, not deleted early).
    pub fn expire_due(&self, now: i64) -> bool {
        self.expire_at.is_some_and(|at| at <= now) && self.hold.is_empty() && self.undetermined.is_empty()
    }
}

fn any_eq(wanted: &[String], have: &str) -> bool {
    wanted.is_empty() || wanted.iter().any(|w| w.trim().eq_ignore_ascii_case(have.trim()))
}

fn matches(c: &Conditions, f: &Facts, now: i64) -> bool {
    let family = f.family.unwrap_or_else(|| family_of(&f.sop_class_uid));
    let rejected_ok = match (&f.rejection, c.rejected.is_empty()) {
        (None, true) => true,
        (None, false) | (Some(_), true) => false,
        (Some(r), false) => c.rejected.iter().any(|w| w == "any" || w.trim() == r.code),
    };
    let age_ok = match &c.patient_age_at_study {
        None => true,
        Some(range) => match (f.birth_date, f.study_date) {
            (Some(b), Some(s)) => years_between(b, s).is_some_and(|age| {
                range.at_least.is_none_or(|min| age >= i64::from(min)) && range.below.is_none_or(|max| age < i64::from(max))
            }),
            _ => false,
        },
    };
    let study_age_ok = match &c.study_age {
        None => true,
        Some(a) => f.study_date.zip(Span::parse(&a.at_least)).and_then(|(d, s)| s.after(d)).is_some_and(|t| t <= now),
    };
    rejected_ok
        && age_ok
        && study_age_ok
        && any_eq(&c.modality, &f.modality)
        && (c.family.is_empty() || c.family.contains(&family))
        && (c.sop_class.is_empty() || c.sop_class.iter().any(|s| s.trim() == f.sop_class_uid.trim_end_matches(['\0', ' '])))
        && any_eq(&c.body_part, &f.body_part)
        && any_eq(&c.institution, &f.institution)
        && any_eq(&c.department, &f.department)
        && (c.tenant.is_empty()
            || c.tenant.iter().any(|t| f.tenant == *t || f.tenant.strip_prefix(t.as_str()).is_some_and(|r| r.starts_with('/'))))
        && c.attribute.iter().all(|a| f.attributes.get(&a.tag.to_ascii_uppercase()).is_some_and(|v| v.trim() == a.value.trim()))
}

/// The latest date a rule's retention asks for; `None` when one of its dates is unknown.
fn retention_of(rule: &Rule, f: &Facts) -> Option<i64> {
    let retain = rule.retain.as_ref()?;
    let mut until = i64::MIN;
    for u in &retain.at_least {
        let t = match (u.until_age, &u.duration, u.after) {
            (Some(age), _, _) => Span::Months(age.checked_mul(12)?).after(f.birth_date?)?,
            (None, Some(d), Some(reference)) => {
                let from = match reference {
                    Reference::StudyDate => f.study_date?,
                    Reference::LastStudy => f.last_study_date.or(f.study_date)?,
                    Reference::PatientBirthDate => f.birth_date?,
                    Reference::Ingest => f.ingest,
                    Reference::Rejection => f.rejection.as_ref()?.at,
                };
                Span::parse(d)?.after(from)?
            }
            _ => return None,
        };
        until = until.max(t);
    }
    Some(until)
}

/// What `rules` (the whole policy set, in order) decide for `f` at `now`.
pub fn decide<'a>(rules: impl IntoIterator<Item = &'a Rule>, f: &Facts, now: i64) -> Decision {
    let mut d = Decision::default();
    let mut expire = false;
    let mut best_move: Option<(i32, TierMove)> = None;
    for rule in rules.into_iter().filter(|r| matches(&r.when, f, now)) {
        d.rules.push(rule.name.clone());
        if let Some(retain) = &rule.retain {
            match retention_of(rule, f) {
                Some(until) => {
                    let r = d.retention.get_or_insert(Retention { mode: retain.mode, until, rules: Vec::new() });
                    r.until = r.until.max(until);
                    // A lock is never weaker than a matching rule asks.
                    r.mode = r.mode.max(retain.mode);
                    r.rules.push(rule.name.clone());
                }
                None => d.undetermined.push(rule.name.clone()),
            }
            expire |= rule.expire;
        }
        if let Some(t) = &rule.transition {
            let after = t.after.as_deref().and_then(Span::parse).and_then(|s| s.after(f.ingest));
            let unused = t.unused_for.as_deref().and_then(Span::parse).and_then(|s| s.after(f.last_access.unwrap_or(f.ingest)));
            let at = match (after, unused) {
                (Some(a), Some(u)) => Some(a.min(u)),
                (a, u) => a.or(u),
            };
            let candidate = TierMove { tier: t.tier.clone(), at, rule: rule.name.clone(), contested_by: Vec::new() };
            match &mut best_move {
                Some((p, best)) if *p == t.priority => {
                    if best.tier != t.tier {
                        best.contested_by.push(rule.name.clone());
                    }
                }
                Some((p, _)) if *p > t.priority => {}
                _ => best_move = Some((t.priority, candidate)),
            }
        }
        if rule.hold {
            d.hold.push(rule.name.clone());
        }
    }
    d.transition = best_move.map(|(_, m)| m);
    // Expiry only when every retention is known: an unknown date could be the longest.
    if expire && d.undetermined.is_empty() {
        d.expire_at = d.retention.as_ref().map(|r| r.until);
    }
    d
}
