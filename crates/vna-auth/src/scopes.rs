//! OAuth scopes to permissions. Imaging data is the FHIR `ImagingStudy` resource in SMART App
//! Launch terms (HL7 SMART App Launch 2.x §3.0.2 "Scopes for requesting clinical data"):
//! `<context>/<resource>.<permissions>` with context `patient`, `user` or `system`, resource
//! `ImagingStudy` or `*`, and permissions `read`/`write`/`*` (v1) or a subset of `cruds` (v2).
//! `patient/` scopes are ignored: the archive has no launch context to bind them to one
//! patient, and granting them as `user/` would widen them. Our own scopes: `vna.admin` and
//! `vna.audit`.

use vna_archive::Permission;

pub const ADMIN_SCOPE: &str = "vna.admin";
pub const AUDIT_SCOPE: &str = "vna.audit";

/// The permissions a set of scopes grants, each once, in [`Permission::ALL`] order.
pub fn permissions_from_scopes<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Vec<Permission> {
    let mut granted = [false; 5];
    let mut grant = |p: Permission| granted[Permission::ALL.iter().position(|q| *q == p).unwrap_or(0)] = true;
    for scope in scopes {
        match scope {
            ADMIN_SCOPE => grant(Permission::Admin),
            AUDIT_SCOPE => grant(Permission::Audit),
            _ => {
                for p in smart(scope) {
                    grant(p);
                }
            }
        }
    }
    Permission::ALL.into_iter().zip(granted).filter(|(_, g)| *g).map(|(p, _)| p).collect()
}

fn smart(scope: &str) -> Vec<Permission> {
    let Some((context, rest)) = scope.split_once('/') else { return Vec::new() };
    if !matches!(context, "user" | "system") {
        return Vec::new();
    }
    let Some((resource, perms)) = rest.split_once('.') else { return Vec::new() };
    if !matches!(resource, "ImagingStudy" | "*") {
        return Vec::new();
    }
    // v2 permissions may carry a query (`.rs?category=…`): a narrowing we cannot honour, so
    // the scope grants nothing rather than more than it says.
    if perms.contains('?') {
        return Vec::new();
    }
    match perms {
        "read" => vec![Permission::Read],
        "write" => vec![Permission::Write, Permission::Delete],
        "*" => vec![Permission::Read, Permission::Write, Permission::Delete],
        v2 if !v2.is_empty() && is_v2(v2) => {
            let mut out = Vec::new();
            if v2.contains('r') || v2.contains('s') {
                out.push(Permission::Read);
            }
            if v2.contains('c') || v2.contains('u') {
                out.push(Permission::Write);
            }
            if v2.contains('d') {
                out.push(Permission::Delete);
            }
            out
        }
        _ => Vec::new(),
    }
}

/// `cruds` letters, in that order, each at most once (SMART 2.x §3.0.2.1).
fn is_v2(p: &str) -> bool {
    let order = "cruds";
    let mut last = None;
    p.chars().all(|c| match order.find(c) {
        Some(i) if last.is_none_or(|l| i > l) => {
            last = Some(i);
            true
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    #[test]
    fn smart_v1_and_v2() {
        assert_eq!(permissions_from_scopes(["user/ImagingStudy.read"]), vec![Read]);
        assert_eq!(permissions_from_scopes(["system/ImagingStudy.write"]), vec![Write, Delete]);
        assert_eq!(permissions_from_scopes(["user/*.*"]), vec![Read, Write, Delete]);
        assert_eq!(permissions_from_scopes(["user/ImagingStudy.rs"]), vec![Read]);
        assert_eq!(permissions_from_scopes(["system/ImagingStudy.c"]), vec![Write]);
        assert_eq!(permissions_from_scopes(["system/ImagingStudy.cruds", "vna.admin", "vna.audit"]), Permission::ALL.to_vec());
        assert_eq!(permissions_from_scopes(["openid", "profile", "vna.audit"]), vec![Audit]);
    }

    #[test]
    fn nothing_from_what_is_not_granted() {
        for scope in [
            "patient/ImagingStudy.read",
            "user/Observation.read",
            "user/ImagingStudy.rs?category=x",
            "user/ImagingStudy.sr",
            "user/ImagingStudy.rr",
            "user/ImagingStudy.",
            "user/ImagingStudy",
            "ImagingStudy.read",
            "vna.admin2",
            "",
        ] {
            assert!(permissions_from_scopes([scope]).is_empty(), "{scope:?}");
        }
    }
}
