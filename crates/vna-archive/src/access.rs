//! Who is asking and what they may do: the one authorization model of the archive.
//!
//! Every front end turns its own proof of identity (a bearer token, an API key, a signed link,
//! a known AE) into a [`Principal`] and passes it to the archive; the archive checks the
//! operation's [`Permission`] once, here, and hands the principal's [`Visibility`] to the
//! catalog, which applies it as SQL conditions in the very statement that reads. No front end
//! filters results, and none decides by itself what a caller may do.
//!
//! Which tenant a new object belongs to is decided at ingest by [`Tenancy`]: ordered rules on
//! the calling AE, the issuer of patient ID, the institution or any attribute, then the
//! principal's own tenant when it has exactly one, then the default. A study keeps the tenant
//! of its first instance; an object that would put it in another is refused, never moved.

use vna_catalog::{tenant_within, Scope, Visibility};
use vna_dicom::charset::Charset;
use vna_dicom::dataset::DataSet;
use vna_dicom::Tag;

use crate::ArchiveError;

/// An operation class, checked before the archive does anything on a caller's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Query and retrieve: C-FIND, C-MOVE, C-GET, QIDO-RS, WADO-RS/URI, rendered, thumbnails.
    Read,
    /// Store: C-STORE, STOW-RS, non-DICOM ingest, import.
    Write,
    /// Delete or reject instances.
    Delete,
    /// Administration: verification, protection, legal hold, API keys, configuration views.
    Admin,
    /// Read the audit trail.
    Audit,
}

impl Permission {
    pub const ALL: [Permission; 5] = [Permission::Read, Permission::Write, Permission::Delete, Permission::Admin, Permission::Audit];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Delete => "delete",
            Permission::Admin => "admin",
            Permission::Audit => "audit",
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a principal proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person, by an access token of the hospital's identity provider.
    User,
    /// A machine, by an API key issued by `vna apikey`.
    ApiKey,
    /// A DICOM application entity (known AE, TLS client certificate, user identity).
    Application,
    /// A signed link to one study or instance.
    Link,
    /// The archive itself (command-line import and verification, jobs).
    System,
    /// Nobody proved anything: only where the configuration allows it (loopback by default).
    Anonymous,
}

impl PrincipalKind {
    /// The kind [`PrincipalKind::as_str`] names.
    pub fn parse(s: &str) -> Option<PrincipalKind> {
        [
            PrincipalKind::User,
            PrincipalKind::ApiKey,
            PrincipalKind::Application,
            PrincipalKind::Link,
            PrincipalKind::System,
            PrincipalKind::Anonymous,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::ApiKey => "api-key",
            PrincipalKind::Application => "application",
            PrincipalKind::Link => "link",
            PrincipalKind::System => "system",
            PrincipalKind::Anonymous => "anonymous",
        }
    }
}

/// Who is asking: a stable identifier without PHI (token subject, API key id, AE title, link
/// id), what they may do and what they may see, and where the request came from (for the
/// audit trail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: String,
    pub kind: PrincipalKind,
    permissions: u8,
    visibility: Visibility,
    /// The interface the request came through: `dicomweb`, `dimse`, `cli`, `internal`.
    pub interface: &'static str,
    /// The peer's network address (and, over DIMSE, its calling AE title); empty inside.
    pub address: String,
}

impl Principal {
    /// `tenants`: `None` for every tenant, else the grants (`hug` covers `hug/radiology`).
    pub fn new(
        id: impl Into<String>,
        kind: PrincipalKind,
        permissions: impl IntoIterator<Item = Permission>,
        tenants: Option<Vec<String>>,
    ) -> Self {
        let permissions = permissions.into_iter().fold(0, |bits, p| bits | p.bit());
        Principal {
            id: id.into(),
            kind,
            permissions,
            visibility: Visibility { tenants, only: None, rejected: false },
            interface: "internal",
            address: String::new(),
        }
    }

    /// The same principal, calling through `interface` from `address`.
    pub fn via(mut self, interface: &'static str, address: impl Into<String>) -> Self {
        self.interface = interface;
        self.address = address.into();
        self
    }

    /// The archive acting for itself: every permission, every tenant, rejected instances too.
    pub fn system() -> Self {
        let mut p = Principal::new("vna", PrincipalKind::System, Permission::ALL, None);
        p.visibility.rejected = true;
        p
    }

    /// What an administrator sees when asking for objects hidden by IOCM rejection notes:
    /// the same tenants, rejected instances included. Only administrative operations use it.
    pub fn seeing_rejected(&self) -> Visibility {
        Visibility { rejected: true, ..self.visibility.clone() }
    }

    /// Narrows what the principal sees to one study, series or instance (a signed link), and
    /// what it may do to reading it.
    pub fn limited_to(mut self, scope: Scope) -> Self {
        self.permissions &= Permission::Read.bit();
        self.visibility.only = Some(scope);
        self
    }

    /// This principal (a user) acting through `channel` (the application it calls through, a
    /// known DIMSE AE): it may do only what both may and sees only what both see.
    pub fn acting_through(mut self, channel: &Principal) -> Self {
        self.permissions &= channel.permissions;
        self.visibility.tenants = match (self.visibility.tenants.take(), channel.tenants()) {
            (mine, None) => mine,
            (None, Some(theirs)) => Some(theirs.to_vec()),
            (Some(mine), Some(theirs)) => {
                // A grant and one below it meet at the narrower one (`hug` and `hug/radiology`).
                let mut both: Vec<String> = mine
                    .iter()
                    .flat_map(|a| theirs.iter().map(move |b| (a, b)))
                    .filter_map(|(a, b)| match (tenant_within(a, b), tenant_within(b, a)) {
                        (true, _) => Some(a.clone()),
                        (false, true) => Some(b.clone()),
                        (false, false) => None,
                    })
                    .collect();
                both.sort();
                both.dedup();
                Some(both)
            }
        };
        if self.visibility.only.is_none() {
            self.visibility.only = channel.visibility.only.clone();
        }
        self
    }

    pub fn may(&self, p: Permission) -> bool {
        self.permissions & p.bit() != 0
    }

    pub fn permissions(&self) -> impl Iterator<Item = Permission> + '_ {
        Permission::ALL.into_iter().filter(|p| self.may(*p))
    }

    /// `Forbidden` unless the principal holds `p`.
    pub fn require(&self, p: Permission) -> Result<(), ArchiveError> {
        if self.may(p) {
            Ok(())
        } else {
            Err(ArchiveError::Forbidden { needed: p })
        }
    }

    /// What the catalog lets this principal see.
    pub fn visibility(&self) -> &Visibility {
        &self.visibility
    }

    /// Tenant grants; `None` for every tenant.
    pub fn tenants(&self) -> Option<&[String]> {
        self.visibility.tenants.as_deref()
    }

    /// May store into (or replace an instance of) a study of `tenant`.
    pub fn may_write_tenant(&self, tenant: &str) -> bool {
        self.may(Permission::Write) && self.visibility.only.is_none() && self.visibility.covers_tenant(tenant)
    }
}

/// The tenant of a principal that may see only one, for [`Tenancy::decide`].
fn single_tenant(p: &Principal) -> Option<&str> {
    match p.tenants() {
        Some([one]) => Some(one),
        _ => None,
    }
}

/// One condition of a tenancy rule. Values compare exactly (after trimming DICOM padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantMatch {
    /// The calling AE title of a DIMSE association.
    CallingAe(String),
    /// Issuer of Patient ID (0010,0021).
    IssuerOfPatientId(String),
    /// Institution Name (0008,0080).
    Institution(String),
    /// Any top-level attribute, by its first value as text.
    Attribute(Tag, String),
}

/// All conditions must hold; the first rule that matches decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRule {
    pub when: Vec<TenantMatch>,
    pub tenant: String,
}

/// How ingest decides which tenant a new object belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenancy {
    pub rules: Vec<TenantRule>,
    /// When no rule matches and the principal is not bound to exactly one tenant.
    pub default_tenant: String,
}

impl Default for Tenancy {
    fn default() -> Self {
        Tenancy { rules: Vec::new(), default_tenant: "default".to_owned() }
    }
}

impl Tenancy {
    /// The tenant of an object with data set `ds` (text decoded with `charset`) sent by
    /// `principal`, from `calling_ae` when it came over DIMSE.
    pub fn decide(&self, ds: &DataSet, charset: &Charset, calling_ae: Option<&str>, principal: &Principal) -> String {
        let text = |tag: Tag| ds.first_text(tag, charset);
        let holds = |m: &TenantMatch| match m {
            TenantMatch::CallingAe(ae) => calling_ae.is_some_and(|c| c.trim() == ae),
            TenantMatch::IssuerOfPatientId(v) => text(vna_dicom::tags::ISSUER_OF_PATIENT_ID) == *v,
            TenantMatch::Institution(v) => text(vna_dicom::tags::INSTITUTION_NAME) == *v,
            TenantMatch::Attribute(tag, v) => text(*tag) == *v,
        };
        self.rules
            .iter()
            .find(|r| r.when.iter().all(holds))
            .map(|r| r.tenant.clone())
            .or_else(|| single_tenant(principal).map(str::to_owned))
            .unwrap_or_else(|| self.default_tenant.clone())
    }
}

/// A tenant name: one or more `/`-separated segments of letters, digits, `-`, `_` and `.`.
pub fn validate_tenant(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 128 {
        return Err("a tenant name has 1 to 128 characters");
    }
    let segment_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if name.split('/').all(segment_ok) {
        Ok(())
    } else {
        Err("a tenant name is segments of letters, digits, '-', '_' and '.' separated by '/'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vna_dicom::dataset::{Element, Extent, Value};

    fn ds(pairs: &[(Tag, &str)]) -> DataSet {
        let mut d = DataSet::default();
        for (tag, v) in pairs {
            let value = Value::Bytes(v.as_bytes().to_vec());
            d.elements.push(Element { tag: *tag, vr: vna_dicom::VR::LO, extent: Extent { offset: 0, length: 0 }, value });
        }
        d
    }

    #[test]
    fn a_user_through_an_application_gets_what_both_have() {
        let grants = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        let user = |tenants| Principal::new("u", PrincipalKind::User, [Permission::Read, Permission::Write], tenants);
        let ae = |tenants| Principal::new("ae:WS", PrincipalKind::Application, [Permission::Read], tenants);
        let both = user(grants(&["hug", "chuv/cardio"])).acting_through(&ae(grants(&["hug/radiology", "chuv", "vd"])));
        assert!(both.may(Permission::Read) && !both.may(Permission::Write));
        assert_eq!(both.tenants(), Some(&["chuv/cardio".to_owned(), "hug/radiology".to_owned()][..]));
        assert_eq!(user(None).acting_through(&ae(grants(&["vd"]))).tenants(), Some(&["vd".to_owned()][..]));
        assert_eq!(user(grants(&["vd"])).acting_through(&ae(None)).tenants(), Some(&["vd".to_owned()][..]));
        assert_eq!(user(None).acting_through(&ae(None)).tenants(), None);
        assert_eq!(user(grants(&["hug"])).acting_through(&ae(grants(&["chuv"]))).tenants(), Some(&[][..]));
    }

    #[test]
    fn permissions_and_links() {
        let p = Principal::new("u1", PrincipalKind::User, [Permission::Read, Permission::Write], Some(vec!["hug".into()]));
        assert!(p.may(Permission::Read) && p.may(Permission::Write) && !p.may(Permission::Admin));
        assert!(matches!(p.require(Permission::Delete), Err(ArchiveError::Forbidden { needed: Permission::Delete })));
        assert!(p.may_write_tenant("hug/radiology") && !p.may_write_tenant("hugo"));
        let study = vna_dicom::uid::StudyUid::new("1.2.3").unwrap();
        let link = p.limited_to(Scope { study, series: None, instance: None });
        assert_eq!(link.permissions().collect::<Vec<_>>(), vec![Permission::Read]);
        assert!(!link.may_write_tenant("hug"), "a link never writes");
        assert!(Principal::system().permissions().eq(Permission::ALL));
    }

    #[test]
    fn tenancy_rules_in_order_then_principal_then_default() {
        let t = Tenancy {
            rules: vec![
                TenantRule { when: vec![TenantMatch::CallingAe("CT1".into())], tenant: "hug/radiology".into() },
                TenantRule {
                    when: vec![TenantMatch::Institution("Clinic B".into()), TenantMatch::IssuerOfPatientId("B".into())],
                    tenant: "clinic-b".into(),
                },
                TenantRule { when: vec![TenantMatch::Attribute(vna_dicom::tags::MODALITY, "SM".into())], tenant: "pathology".into() },
            ],
            default_tenant: "default".into(),
        };
        let anyone = Principal::new("k", PrincipalKind::ApiKey, [Permission::Write], None);
        let cs = Charset::default();
        let inst = vna_dicom::tags::INSTITUTION_NAME;
        let issuer = vna_dicom::tags::ISSUER_OF_PATIENT_ID;
        assert_eq!(t.decide(&ds(&[]), &cs, Some("CT1 "), &anyone), "hug/radiology", "AE titles are compared trimmed");
        assert_eq!(t.decide(&ds(&[(inst, "Clinic B"), (issuer, "B")]), &cs, Some("CT2"), &anyone), "clinic-b");
        assert_eq!(t.decide(&ds(&[(inst, "Clinic B")]), &cs, None, &anyone), "default", "every condition must hold");
        assert_eq!(t.decide(&ds(&[(vna_dicom::tags::MODALITY, "SM")]), &cs, None, &anyone), "pathology");
        let bound = Principal::new("k", PrincipalKind::ApiKey, [Permission::Write], Some(vec!["chuv".into()]));
        assert_eq!(t.decide(&ds(&[]), &cs, None, &bound), "chuv", "a principal of one tenant writes into it");
        assert_eq!(t.decide(&ds(&[]), &cs, Some("CT1"), &bound), "hug/radiology", "rules come first");
    }

    #[test]
    fn tenant_names() {
        for good in ["default", "hug/radiology", "a.b-c_d/e"] {
            assert!(validate_tenant(good).is_ok(), "{good}");
        }
        for bad in ["", "/a", "a/", "a//b", "a b", "a%", "é"] {
            assert!(validate_tenant(bad).is_err(), "{bad}");
        }
    }
}
