//! A folder of policy files as one set: loaded, checked for conflicts between rules, its test
//! cases run, and hashed (the hash a plan records, so that applying it can refuse if the
//! policies changed meanwhile).

use crate::decide::{decide, Decision, Facts, Rejection};
use crate::family::family_of;
use crate::policy::{PolicyError, PolicyFile, Rule, TestCase};
use crate::when::{parse_date, parse_instant};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Every policy file of a folder, in file-name order.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    pub files: Vec<(String, PolicyFile)>,
    /// SHA-256 (hex) over the files' names and contents.
    pub hash: String,
}

/// One test case run against the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOutcome {
    pub file: String,
    pub test: String,
    /// What differs from the expectation; empty when it passed.
    pub failures: Vec<String>,
}

/// What `vna lifecycle check` reports.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub conflicts: Vec<String>,
    pub tests: Vec<TestOutcome>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.conflicts.is_empty() && self.tests.iter().all(|t| t.failures.is_empty())
    }
}

/// Loads every `*.toml` file of `dir`; rule names must be unique across them.
pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyError> {
    let read_err = |e: std::io::Error| PolicyError::Read { path: dir.display().to_string(), message: e.to_string() };
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut texts = Vec::with_capacity(paths.len());
    for p in &paths {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let text = std::fs::read_to_string(p).map_err(|e| PolicyError::Read { path: p.display().to_string(), message: e.to_string() })?;
        texts.push((name, text));
    }
    PolicySet::from_texts(texts)
}

impl PolicySet {
    /// The set of these (file name, text) pairs.
    pub fn from_texts(texts: Vec<(String, String)>) -> Result<PolicySet, PolicyError> {
        let mut hasher = Sha256::new();
        let mut files = Vec::with_capacity(texts.len());
        for (name, text) in &texts {
            hasher.update((name.len() as u64).to_be_bytes());
            hasher.update(name.as_bytes());
            hasher.update((text.len() as u64).to_be_bytes());
            hasher.update(text.as_bytes());
            files.push((name.clone(), PolicyFile::parse(name, text)?));
        }
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for (file, policy) in &files {
            for r in &policy.rules {
                if let Some((_, first)) = seen.iter().find(|(n, _)| *n == r.name) {
                    return Err(PolicyError::DuplicateRule { rule: r.name.clone(), first: (*first).to_owned(), second: file.clone() });
                }
                seen.push((&r.name, file));
            }
        }
        Ok(PolicySet { files, hash: hex::encode(hasher.finalize()) })
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.files.iter().flat_map(|(_, f)| &f.rules)
    }

    /// What the set decides for `facts` at `now`.
    pub fn decide(&self, facts: &Facts, now: i64) -> Decision {
        decide(self.rules(), facts, now)
    }

    /// Conflicts between rules, then every test case of every file.
    pub fn check(&self) -> CheckReport {
        let mut report = CheckReport::default();
        let transitions: Vec<&Rule> = self.rules().filter(|r| r.transition.is_some()).collect();
        for (i, a) in transitions.iter().enumerate() {
            for b in &transitions[i + 1..] {
                let (ta, tb) = (a.transition.as_ref(), b.transition.as_ref());
                if let (Some(ta), Some(tb)) = (ta, tb) {
                    if ta.priority == tb.priority && ta.tier != tb.tier && may_overlap(a, b) {
                        report.conflicts.push(format!(
                            "rules '{}' and '{}' move objects to different tiers ({} and {}) with the same priority {}, \
                             and an object could match both: give one a higher priority",
                            a.name, b.name, ta.tier, tb.tier, ta.priority
                        ));
                    }
                }
            }
        }
        for (file, policy) in &self.files {
            for t in &policy.tests {
                report.tests.push(TestOutcome { file: file.clone(), test: t.name.clone(), failures: self.run(t) });
            }
        }
        report
    }

    fn run(&self, t: &TestCase) -> Vec<String> {
        let o = &t.object;
        let date = |v: &Option<String>| v.as_deref().and_then(parse_date);
        let ingest = parse_instant(&o.ingest).unwrap_or_default();
        let facts = Facts {
            modality: o.modality.clone(),
            family: o.family.or_else(|| (!o.sop_class.is_empty()).then(|| family_of(&o.sop_class))),
            sop_class_uid: o.sop_class.clone(),
            body_part: o.body_part.clone(),
            tenant: o.tenant.clone(),
            institution: o.institution.clone(),
            department: o.department.clone(),
            birth_date: date(&o.birth_date),
            study_date: date(&o.study_date),
            last_study_date: date(&o.last_study_date),
            ingest,
            last_access: o.last_access.as_deref().and_then(parse_instant),
            rejection: o.rejected.clone().zip(o.rejected_on.as_deref().and_then(parse_instant)).map(|(code, at)| Rejection { code, at }),
            attributes: o.attributes.iter().map(|(k, v)| (k.to_ascii_uppercase(), v.clone())).collect(),
        };
        let now = o.now.as_deref().and_then(parse_instant).unwrap_or(ingest);
        let d = self.decide(&facts, now);
        let e = &t.expect;
        let mut failures = Vec::new();
        let show = |t: Option<i64>| t.map_or("none".to_owned(), crate::when::show);
        let wanted = |v: &str, none: &str| if v == none { None } else { parse_instant(v) };
        if let Some(v) = &e.retain_until {
            let got = d.retention.as_ref().map(|r| r.until);
            if got != wanted(v, "none") {
                failures.push(format!("retained until {}, expected {v}", show(got)));
            }
        }
        if let Some(m) = e.mode {
            let got = d.retention.as_ref().map(|r| r.mode);
            if got != Some(m) {
                failures.push(format!("lock mode {got:?}, expected {m:?}"));
            }
        }
        if let Some(v) = &e.tier {
            let got = d.transition.as_ref().map_or("none", |m| m.tier.as_str());
            if got != v {
                failures.push(format!("moves to tier {got}, expected {v}"));
            }
        }
        if let Some(v) = &e.move_at {
            let got = d.transition.as_ref().and_then(|m| m.at);
            if got != wanted(v, "none") {
                failures.push(format!("moves at {}, expected {v}", show(got)));
            }
        }
        if let Some(v) = &e.expire_at {
            if d.expire_at != wanted(v, "never") {
                failures.push(format!("expires at {}, expected {v}", d.expire_at.map_or("never".to_owned(), crate::when::show)));
            }
        }
        if let Some(h) = e.hold {
            let held = !d.hold.is_empty();
            if h != held {
                failures.push(format!("held: {held}, expected {h}"));
            }
        }
        if let Some(rules) = &e.rules {
            if *rules != d.rules {
                failures.push(format!("rules matched {:?}, expected {rules:?}", d.rules));
            }
        }
        if !d.undetermined.is_empty() {
            failures.push(format!("retention undetermined by {:?} (a date it counts from is missing)", d.undetermined));
        }
        failures
    }
}

/// Whether some object could match both rules: false only when a condition both give has no
/// value in common (different modalities, families, rejection states).
fn may_overlap(a: &Rule, b: &Rule) -> bool {
    let (x, y) = (&a.when, &b.when);
    let disjoint =
        |p: &[String], q: &[String]| !p.is_empty() && !q.is_empty() && !p.iter().any(|v| q.iter().any(|w| v.eq_ignore_ascii_case(w)));
    let families = !x.family.is_empty() && !y.family.is_empty() && !x.family.iter().any(|f| y.family.contains(f));
    let rejection = x.rejected.is_empty() != y.rejected.is_empty();
    !(families
        || rejection
        || disjoint(&x.modality, &y.modality)
        || disjoint(&x.sop_class, &y.sop_class)
        || disjoint(&x.body_part, &y.body_part))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: &str = r#"
version = 1

[[rules]]
name = "adults"
[rules.match]
family = ["radiology"]
patient_age_at_study = { at_least = 18 }
[rules.retain]
mode = "COMPLIANCE"
at_least = [{ duration = "10y", after = "last_study" }]

[[rules]]
name = "minors"
[rules.match]
family = ["radiology"]
patient_age_at_study = { below = 18 }
[rules.retain]
mode = "COMPLIANCE"
at_least = [{ until_age = 28 }, { duration = "10y", after = "last_study" }]

[[rules]]
name = "slides"
[rules.match]
family = ["wsi"]
[rules.retain]
mode = "GOVERNANCE"
at_least = [{ duration = "50y", after = "study_date" }]
[rules.transition]
tier = "cold"
after = "90d"
unused_for = "30d"
priority = 10

[[rules]]
name = "quality-rejections"
expire = true
[rules.match]
rejected = ["113001"]
[rules.retain]
mode = "GOVERNANCE"
at_least = [{ duration = "30d", after = "rejection" }]

[[tests]]
name = "a minor: until 28, and 10 years after the last study when later"
object = { family = "radiology", birth_date = "2010-03-01", study_date = "2020-06-01", last_study_date = "2021-01-01", ingest = "2020-06-01" }
expect = { retain_until = "2038-03-01", mode = "COMPLIANCE", rules = ["minors"], tier = "none", expire_at = "never" }

[[tests]]
name = "a slide unused for a month"
object = { sop_class = "1.2.840.10008.5.1.4.1.1.77.1.6", study_date = "2026-01-10", ingest = "2026-01-12", last_access = "2026-01-20" }
expect = { retain_until = "2076-01-10", mode = "GOVERNANCE", tier = "cold", move_at = "2026-02-19" }

[[tests]]
name = "a rejected CT goes 30 days after its rejection"
object = { family = "radiology", birth_date = "1960-01-01", study_date = "2026-01-01", ingest = "2026-01-01", rejected = "113001", rejected_on = "2026-01-05" }
expect = { rules = ["quality-rejections"], retain_until = "2026-02-04", expire_at = "2026-02-04" }
"#;

    fn set() -> PolicySet {
        PolicySet::from_texts(vec![("a.toml".into(), SET.into())]).unwrap()
    }

    #[test]
    fn the_test_cases_of_a_file_pass() {
        let report = set().check();
        assert!(report.passed(), "{report:?}");
        assert_eq!(report.tests.len(), 3);
    }

    #[test]
    fn a_wrong_expectation_fails_with_what_differs() {
        let text = SET.replace("retain_until = \"2038-03-01\"", "retain_until = \"2031-01-01\"");
        let report = PolicySet::from_texts(vec![("a.toml".into(), text)]).unwrap().check();
        assert!(!report.passed());
        assert_eq!(report.tests[0].failures, vec!["retained until 2038-03-01T00:00:00.000Z, expected 2031-01-01".to_owned()]);
    }

    #[test]
    fn longest_retention_wins_and_compliance_is_never_weakened() {
        let s = set();
        let d = |v| parse_date(v);
        let f = Facts {
            family: Some(crate::Family::Radiology),
            birth_date: d("1970-01-01"),
            study_date: d("2020-01-01"),
            last_study_date: d("2025-05-05"),
            ..Facts::default()
        };
        let got = s.decide(&f, 0);
        assert_eq!(got.retention.map(|r| (r.mode, r.until)), Some((crate::LockMode::Compliance, d("2035-05-05").unwrap())));
        // The birth date unknown: no age, no age rule matches: nothing decides a retention.
        let unknown = s.decide(&Facts { birth_date: None, ..f.clone() }, 0);
        assert_eq!(unknown.rules, Vec::<String>::new());
        // Two matching rules, GOVERNANCE longer than COMPLIANCE: the longer date, COMPLIANCE.
        let text = format!("{SET}\n[[rules]]\nname = \"all-long\"\n[rules.retain]\nmode = \"GOVERNANCE\"\nat_least = [{{ duration = \"40y\", after = \"study_date\" }}]\n");
        let both = PolicySet::from_texts(vec![("a.toml".into(), text)]).unwrap().decide(&f, 0);
        let r = both.retention.unwrap();
        assert_eq!(
            (r.mode, r.until, r.rules),
            (crate::LockMode::Compliance, d("2060-01-01").unwrap(), vec!["adults".to_owned(), "all-long".to_owned()])
        );
    }

    #[test]
    fn institution_department_and_catalog_attributes_select_objects() {
        let text = r#"
version = 1

[[rules]]
name = "site-a-pathology-reports"
[rules.match]
institution = ["Site A"]
department = ["Pathology"]
attribute = [{ tag = "00081030", value = "Frozen section" }, { tag = "0008103e", value = "Report" }]
[rules.retain]
mode = "GOVERNANCE"
at_least = [{ duration = "30y", after = "study_date" }]

[[tests]]
name = "all of it matches"
object = { institution = "Site A", department = "Pathology", study_date = "2020-01-01", ingest = "2020-01-02", attributes = { "00081030" = " Frozen section ", "0008103E" = "Report" } }
expect = { rules = ["site-a-pathology-reports"], retain_until = "2050-01-01" }

[[tests]]
name = "another department of the site does not"
object = { institution = "Site A", department = "Radiology", study_date = "2020-01-01", ingest = "2020-01-02", attributes = { "00081030" = "Frozen section", "0008103E" = "Report" } }
expect = { rules = [] }

[[tests]]
name = "nor another study description"
object = { institution = "Site A", department = "Pathology", study_date = "2020-01-01", ingest = "2020-01-02", attributes = { "00081030" = "Biopsy", "0008103E" = "Report" } }
expect = { rules = [] }
"#;
        let report = PolicySet::from_texts(vec![("sites.toml".into(), text.into())]).expect("loads").check();
        assert!(report.passed(), "{report:?}");
        assert_eq!(report.tests.len(), 3);
    }

    #[test]
    fn conflicts_and_duplicates_are_reported() {
        let clash = "version = 1\n[[rules]]\nname = \"a\"\n[rules.transition]\ntier = \"cold\"\nafter = \"1d\"\npriority = 1\n\
                     [[rules]]\nname = \"b\"\n[rules.transition]\ntier = \"tape\"\nafter = \"2d\"\npriority = 1\n\
                     [[rules]]\nname = \"c\"\n[rules.match]\nrejected = [\"any\"]\n[rules.transition]\ntier = \"x\"\nafter = \"2d\"\npriority = 1\n";
        let report = PolicySet::from_texts(vec![("c.toml".into(), clash.into())]).unwrap().check();
        assert_eq!(report.conflicts.len(), 1, "{:?}", report.conflicts);
        assert!(report.conflicts[0].contains("'a' and 'b'"));
        let dup = PolicySet::from_texts(vec![("a.toml".into(), SET.into()), ("b.toml".into(), SET.into())]);
        assert!(matches!(dup, Err(PolicyError::DuplicateRule { .. })));
        assert_ne!(set().hash, PolicySet::from_texts(vec![("b.toml".into(), SET.into())]).unwrap().hash, "the name is hashed too");
    }
}
