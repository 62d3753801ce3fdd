//! `vna apikey`: API keys for machines, made, listed and revoked by an administrator at the
//! command line, on the archive's own authority (the catalog the configuration names).

use std::sync::Arc;
use vna_archive::{now_ms, Archive, Principal};

/// What `vna apikey` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create { name: String, scopes: Vec<String>, tenants: Vec<String>, expires_days: Option<u32> },
    List,
    Revoke { id: String },
}

/// Runs `action`. `create` prints the token alone on stdout (the only time it is known) and
/// what was made on stderr; `list` prints one key per line.
pub async fn run(archive: &Arc<Archive>, action: Action) -> anyhow::Result<()> {
    let admin = Principal::system();
    match action {
        Action::Create { name, scopes, tenants, expires_days } => {
            let (scopes, tenants) = checked(&name, scopes, tenants)?;
            let expires_at_ms = expires_days.map(|d| now_ms() + i64::from(d) * 86_400_000);
            let made = vna_auth::new_api_key(&name, scopes, tenants, expires_at_ms);
            archive.create_api_key(&admin, &made.record).await?;
            println!("{}", made.token);
            eprintln!(
                "api key {} created for '{}' (scopes: {}; tenants: {}); the token above is shown only once",
                made.record.id,
                made.record.name,
                made.record.scopes.join(" "),
                made.record.tenants.join(" ")
            );
        }
        Action::List => {
            let now = now_ms();
            for k in archive.api_keys(&admin).await? {
                let state = match (k.revoked_at_ms, k.is_active(now)) {
                    (Some(_), _) => "revoked",
                    (None, true) => "active",
                    (None, false) => "expired",
                };
                println!("{}\t{state}\t{}\tscopes: {}\ttenants: {}", k.id, k.name, k.scopes.join(" "), k.tenants.join(" "));
            }
        }
        Action::Revoke { id } => {
            archive.revoke_api_key(&admin, &id, now_ms()).await?;
            eprintln!("api key {id} revoked");
        }
    }
    Ok(())
}

/// A name, scopes that each grant something, and valid tenant grants (none: every tenant).
fn checked(name: &str, scopes: Vec<String>, tenants: Vec<String>) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    if name.trim().is_empty() || name.len() > 128 {
        anyhow::bail!("--name: 1 to 128 characters");
    }
    for s in &scopes {
        if vna_auth::permissions_from_scopes([s.as_str()]).is_empty() {
            anyhow::bail!(
                "--scope {s}: grants nothing (expected system/ImagingStudy.read, .write, .* or SMART v2 letters such as .rs or .cruds, vna.admin, vna.audit)"
            );
        }
    }
    for t in tenants.iter().filter(|t| t.as_str() != "*") {
        vna_archive::validate_tenant(t).map_err(|why| anyhow::anyhow!("--tenant {t}: {why}"))?;
    }
    let tenants = if tenants.is_empty() { vec!["*".to_owned()] } else { tenants };
    Ok((scopes, tenants))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked() {
        let ok = checked("CT room 3", vec!["system/ImagingStudy.cruds".into()], vec![]).expect("valid");
        assert_eq!(ok.1, vec!["*"], "no tenant: every tenant");
        assert!(checked("", vec!["vna.admin".into()], vec![]).is_err());
        assert!(checked("x", vec!["patient/ImagingStudy.read".into()], vec![]).is_err(), "a scope that grants nothing");
        assert!(checked("x", vec!["vna.admin".into()], vec!["hug//rad".into()]).is_err());
        assert!(checked("x", vec!["vna.admin".into()], vec!["hug/radiology".into(), "*".into()]).is_ok());
    }
}
