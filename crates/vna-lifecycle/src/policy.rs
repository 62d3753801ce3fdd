//! The policy file format: strict (`deny_unknown_fields`), versioned (`version = 1`), one file
//! holding rules and the test cases that pin down what they decide. `lifecycle-policies/` has
//! commented examples of every key.

use crate::family::Family;
use crate::when::{parse_date, parse_instant, Span};
use serde::Deserialize;
use std::collections::BTreeMap;

pub const CURRENT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub version: u32,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub tests: Vec<TestCase>,
}

/// One rule: conditions (`match`; all that are given must hold) and actions.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique across the policy set; decisions name the rules that made them.
    pub name: String,
    #[serde(default, rename = "match")]
    pub when: Conditions,
    pub retain: Option<Retain>,
    pub transition: Option<Transition>,
    /// Delete the object once the retention decided for it has passed (off unless asked).
    #[serde(default)]
    pub expire: bool,
    /// Place a legal hold on the objects that match.
    #[serde(default)]
    pub hold: bool,
}

/// The attributes a rule's `attribute` condition can match (tag, keyword): those the catalog
/// holds for every instance, which the archive hands to the rules. Person names are left out.
pub const ATTRIBUTES: &[(&str, &str)] = &[
    ("00100020", "PatientID"),
    ("00100021", "IssuerOfPatientID"),
    ("00100030", "PatientBirthDate"),
    ("00100040", "PatientSex"),
    ("0020000D", "StudyInstanceUID"),
    ("00080020", "StudyDate"),
    ("00080030", "StudyTime"),
    ("00080050", "AccessionNumber"),
    ("00200010", "StudyID"),
    ("00081030", "StudyDescription"),
    ("0020000E", "SeriesInstanceUID"),
    ("00080060", "Modality"),
    ("00200011", "SeriesNumber"),
    ("0008103E", "SeriesDescription"),
    ("00180015", "BodyPartExamined"),
    ("00400244", "PerformedProcedureStepStartDate"),
    ("00080080", "InstitutionName"),
    ("00081040", "InstitutionalDepartmentName"),
    ("00080016", "SOPClassUID"),
    ("00080018", "SOPInstanceUID"),
    ("00200013", "InstanceNumber"),
];

/// What an object must be for a rule to apply. A list matches any of its values; every
/// condition given must hold; a rule without conditions matches every (non-rejected) object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    #[serde(default)]
    pub modality: Vec<String>,
    #[serde(default)]
    pub family: Vec<Family>,
    #[serde(default)]
    pub sop_class: Vec<String>,
    #[serde(default)]
    pub body_part: Vec<String>,
    /// Tenants; a tenant covers those below it (`hug` covers `hug/radiology`).
    #[serde(default)]
    pub tenant: Vec<String>,
    /// Institution Name (0008,0080) of the object's series.
    #[serde(default)]
    pub institution: Vec<String>,
    /// Institutional Department Name (0008,1040) of the object's series.
    #[serde(default)]
    pub department: Vec<String>,
    /// The patient's age in whole years on the study date.
    pub patient_age_at_study: Option<AgeRange>,
    /// Time since the study date, at the time of the decision.
    pub study_age: Option<AtLeast>,
    /// Attributes the catalog holds ([`ATTRIBUTES`]), by tag (`ggggeeee`, 8 hex digits) and
    /// exact value (leading and trailing spaces aside); all must match.
    #[serde(default)]
    pub attribute: Vec<AttributeMatch>,
    /// IOCM rejection reasons (the rejection note's title code: 113001 quality, 113037 patient
    /// safety, 113038 incorrect modality worklist entry, 113039 data retention policy
    /// expired), or `"any"`. Without it the rule matches only objects not rejected.
    #[serde(default)]
    pub rejected: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeRange {
    pub at_least: Option<u32>,
    pub below: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtLeast {
    pub at_least: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeMatch {
    pub tag: String,
    pub value: String,
}

/// S3 Object Lock modes: COMPLIANCE cannot be shortened or removed by anyone; GOVERNANCE can be
/// by whoever holds the bypass permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub enum LockMode {
    #[serde(rename = "GOVERNANCE")]
    Governance,
    #[serde(rename = "COMPLIANCE")]
    Compliance,
}

impl LockMode {
    /// As S3 and the policy files spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

/// Retention: locked until the latest of `at_least`'s dates.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retain {
    pub mode: LockMode,
    pub at_least: Vec<Until>,
}

/// One lower bound of a retention: `duration` after a reference date, or the day the patient
/// reaches `until_age`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Until {
    pub duration: Option<String>,
    pub after: Option<Reference>,
    pub until_age: Option<u32>,
}

/// The dates a retention counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reference {
    /// The object's study date.
    StudyDate,
    /// The date of the patient's latest study in the archive.
    LastStudy,
    PatientBirthDate,
    /// When the archive received the object.
    Ingest,
    /// When the object was rejected (IOCM).
    Rejection,
}

/// A move to another tier, at the earlier of `after` (since ingest) and `unused_for` (since the
/// last access); the highest `priority` among the rules that match wins.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    pub tier: String,
    pub after: Option<String>,
    pub unused_for: Option<String>,
    pub priority: i32,
}

/// An object described as the catalog would, and what the policy set must decide for it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: String,
    pub object: TestObject,
    pub expect: Expect,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestObject {
    #[serde(default)]
    pub modality: String,
    /// A SOP Class UID, or a family name for short.
    #[serde(default)]
    pub sop_class: String,
    pub family: Option<Family>,
    #[serde(default)]
    pub body_part: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub institution: String,
    #[serde(default)]
    pub department: String,
    pub birth_date: Option<String>,
    pub study_date: Option<String>,
    pub last_study_date: Option<String>,
    pub ingest: String,
    pub last_access: Option<String>,
    /// The rejection's reason code and date.
    pub rejected: Option<String>,
    pub rejected_on: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// When the decision is made; default: `ingest`.
    pub now: Option<String>,
}

/// What a test expects; only what is given is compared.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// A date or instant, or `"none"` for no retention.
    pub retain_until: Option<String>,
    pub mode: Option<LockMode>,
    /// A tier name, or `"none"`.
    pub tier: Option<String>,
    pub move_at: Option<String>,
    /// When the object may be deleted, or `"never"`.
    pub expire_at: Option<String>,
    pub hold: Option<bool>,
    /// The rules that match, in file order.
    pub rules: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: {message}")]
    Syntax { file: String, message: String },
    #[error("{file}: version {found} is not supported (this build reads version {CURRENT_VERSION})")]
    Version { file: String, found: u32 },
    #[error("{file}: rule '{rule}': {what}")]
    Rule { file: String, rule: String, what: String },
    #[error("{file}: test '{test}': {what}")]
    Test { file: String, test: String, what: String },
    #[error("rule name '{rule}' is used in {first} and {second}")]
    DuplicateRule { rule: String, first: String, second: String },
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
}

impl PolicyFile {
    /// Parses and validates one file's text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<PolicyFile, PolicyError> {
        let parsed: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Syntax { file: file.to_owned(), message: e.to_string() })?;
        if parsed.version != CURRENT_VERSION {
            return Err(PolicyError::Version { file: file.to_owned(), found: parsed.version });
        }
        for rule in &parsed.rules {
            rule.validate().map_err(|what| PolicyError::Rule { file: file.to_owned(), rule: rule.name.clone(), what })?;
        }
        for t in &parsed.tests {
            t.validate().map_err(|what| PolicyError::Test { file: file.to_owned(), test: t.name.clone(), what })?;
        }
        Ok(parsed)
    }
}

fn span(what: &str, s: &str) -> Result<Span, String> {
    Span::parse(s).ok_or_else(|| format!("{what} '{s}' is not a duration (a whole number and y, m, d, h or s: 10y, 90d)"))
}

impl Rule {
    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("a rule needs a name".into());
        }
        if self.retain.is_none() && self.transition.is_none() && !self.hold {
            return Err("no action: give retain, transition or hold = true".into());
        }
        if self.expire && self.retain.is_none() {
            return Err("expire = true needs a retain (expiry comes once the retention has passed)".into());
        }
        let c = &self.when;
        if let Some(a) = &c.patient_age_at_study {
            if a.at_least.is_none() && a.below.is_none() {
                return Err("patient_age_at_study needs at_least or below".into());
            }
        }
        if let Some(a) = &c.study_age {
            span("study_age.at_least", &a.at_least)?;
        }
        for a in &c.attribute {
            if a.tag.len() != 8 || !a.tag.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("attribute tag '{}' must be 8 hex digits (gggg eeee)", a.tag));
            }
            // Refused rather than silently never matching: the archive hands the rules only
            // what its catalog holds.
            if !ATTRIBUTES.iter().any(|(tag, _)| tag.eq_ignore_ascii_case(&a.tag)) {
                let known: Vec<String> = ATTRIBUTES.iter().map(|(t, k)| format!("{t} {k}")).collect();
                return Err(format!("the catalog does not hold attribute {}; a rule can match {}", a.tag, known.join(", ")));
            }
        }
        if let Some(r) = &self.retain {
            if r.at_least.is_empty() {
                return Err("retain.at_least is empty".into());
            }
            for u in &r.at_least {
                match (&u.duration, u.after, u.until_age) {
                    (Some(d), Some(reference), None) => {
                        span("retain duration", d)?;
                        if reference == Reference::Rejection && c.rejected.is_empty() {
                            return Err("a retention after the rejection needs a rejected condition".into());
                        }
                    }
                    (None, None, Some(_)) => {}
                    _ => return Err("each retain.at_least entry is { duration, after } or { until_age }".into()),
                }
            }
        }
        if let Some(t) = &self.transition {
            if t.tier.trim().is_empty() {
                return Err("transition.tier is empty".into());
            }
            match (&t.after, &t.unused_for) {
                (None, None) => return Err("transition needs after, unused_for or both".into()),
                (a, u) => {
                    if let Some(a) = a {
                        span("transition.after", a)?;
                    }
                    if let Some(u) = u {
                        span("transition.unused_for", u)?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl TestCase {
    fn validate(&self) -> Result<(), String> {
        let o = &self.object;
        let dates = [("birth_date", &o.birth_date), ("study_date", &o.study_date), ("last_study_date", &o.last_study_date)];
        for (what, v) in dates {
            if let Some(v) = v {
                parse_date(v).ok_or_else(|| format!("object.{what} '{v}' is not a date (YYYY-MM-DD)"))?;
            }
        }
        let instants = [("ingest", Some(&o.ingest)), ("last_access", o.last_access.as_ref()), ("rejected_on", o.rejected_on.as_ref())];
        for (what, v) in instants {
            if let Some(v) = v {
                parse_instant(v).ok_or_else(|| format!("object.{what} '{v}' is not a date or an RFC 3339 instant"))?;
            }
        }
        if let Some(v) = &o.now {
            parse_instant(v).ok_or_else(|| format!("object.now '{v}' is not a date or an RFC 3339 instant"))?;
        }
        if o.rejected.is_some() != o.rejected_on.is_some() {
            return Err("object.rejected and object.rejected_on go together".into());
        }
        let e = &self.expect;
        for (what, v, none) in
            [("retain_until", &e.retain_until, "none"), ("move_at", &e.move_at, "none"), ("expire_at", &e.expire_at, "never")]
        {
            if let Some(v) = v {
                if v != none && parse_instant(v).is_none() {
                    return Err(format!("expect.{what} '{v}' is not a date, an RFC 3339 instant or \"{none}\""));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_error(body: &str) -> String {
        let text = format!("version = 1\n[[rules]]\nname = \"r\"\n{body}");
        match PolicyFile::parse("t.toml", &text) {
            Err(e) => e.to_string(),
            Ok(_) => "accepted".into(),
        }
    }

    #[test]
    fn what_a_file_must_be() {
        assert!(matches!(PolicyFile::parse("t.toml", "version = 2\n"), Err(PolicyError::Version { found: 2, .. })));
        assert!(matches!(
            PolicyFile::parse("t.toml", "version = 1\n[[rules]]\nname = \"r\"\nretention = 3\n"),
            Err(PolicyError::Syntax { .. })
        ));
        assert!(rule_error("").contains("no action"));
        assert!(rule_error("expire = true\nhold = true\n").contains("needs a retain"));
        let e = rule_error("[rules.retain]\nmode = \"COMPLIANCE\"\nat_least = [{ duration = \"10 years\", after = \"study_date\" }]\n");
        assert!(e.contains("not a duration"), "{e}");
        assert!(rule_error("[rules.retain]\nmode = \"COMPLIANCE\"\nat_least = [{ duration = \"10y\" }]\n").contains("{ duration, after }"));
        assert!(rule_error("[rules.retain]\nmode = \"COMPLIANCE\"\nat_least = [{ duration = \"10y\", after = \"rejection\" }]\n")
            .contains("rejected condition"));
        assert!(rule_error("[rules.retain]\nmode = \"SOMETIMES\"\nat_least = [{ until_age = 28 }]\n").contains("unknown variant"));
        let e = rule_error("[rules.transition]\ntier = \"cold\"\npriority = 1\n");
        assert!(e.contains("after, unused_for"), "{e}");
        assert!(rule_error("hold = true\n[rules.match]\nattribute = [{ tag = \"00180050\", value = \"x\" }]\n")
            .contains("the catalog does not hold attribute 00180050"));

        assert_eq!(rule_error("hold = true\n[rules.match]\nfamily = [\"wsi\"]\npatient_age_at_study = { below = 18 }\n"), "accepted");
    }
}
