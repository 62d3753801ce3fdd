//! `vna storage check` for an S3 tier: reachable, credentials accepted, bucket there,
//! versioning on, Object Lock as configured, a write/read/delete probe where the bucket's
//! default retention would not keep the probe forever, and leftover multipart uploads.

use crate::error::S3Failure;
use crate::Inner;
use aws_sdk_s3::types::{BucketVersioningStatus, ObjectLockEnabled};
use std::sync::Arc;
use vna_blob::CheckItem;

fn item(what: &'static str, ok: bool, detail: impl Into<String>) -> CheckItem {
    CheckItem { what, ok, detail: detail.into() }
}

fn explain(f: &S3Failure) -> String {
    match (f.status, f.code.as_str()) {
        (None, code) => format!("no answer ({code})"),
        (Some(403), code) => format!("403 {code}: credentials refused or not allowed"),
        (Some(404), code) => format!("404 {code}"),
        (Some(s), code) => format!("{s} {code}"),
    }
}

pub(crate) async fn run(inner: &Arc<Inner>) -> Vec<CheckItem> {
    let s = &inner.settings;
    let c = &inner.client;
    let mut items = Vec::new();
    let target = format!("bucket '{}' at {}", s.bucket, s.endpoint.as_deref().unwrap_or("the region's default endpoint"));
    if let Err(e) = c.head_bucket().bucket(&s.bucket).send().await {
        let f = S3Failure::from_sdk(&e);
        items.push(item("bucket reachable", false, format!("{target}: {}", explain(&f))));
        return items;
    }
    items.push(item("bucket reachable", true, format!("{target}; credentials accepted")));

    match c.get_bucket_versioning().bucket(&s.bucket).send().await {
        Ok(v) if v.status() == Some(&BucketVersioningStatus::Enabled) => items.push(item("versioning", true, "enabled")),
        Ok(v) => items.push(item(
            "versioning",
            false,
            format!("not enabled ({}): corrections and deletes need versions", v.status().map(|s| s.as_str()).unwrap_or("never set")),
        )),
        Err(e) => items.push(item("versioning", false, explain(&S3Failure::from_sdk(&e)))),
    }

    let wants_lock = s.require_object_lock || s.default_retention.is_some();
    let mut bucket_default_retention = false;
    match c.get_object_lock_configuration().bucket(&s.bucket).send().await {
        Ok(out) => {
            let conf = out.object_lock_configuration();
            let enabled = conf.and_then(|c| c.object_lock_enabled()) == Some(&ObjectLockEnabled::Enabled);
            let default = conf.and_then(|c| c.rule()).and_then(|r| r.default_retention());
            bucket_default_retention = default.is_some();
            let rule = match default {
                Some(d) => format!(
                    "; bucket default retention {} {} days {} years",
                    d.mode().map(|m| m.as_str()).unwrap_or("?"),
                    d.days().unwrap_or(0),
                    d.years().unwrap_or(0)
                ),
                None => String::new(),
            };
            let ours = match s.default_retention {
                Some(r) => format!("; tier retention {} for {} days", r.mode.as_str(), r.days),
                None => "; no tier retention".to_owned(),
            };
            items.push(item(
                "object lock",
                enabled || !wants_lock,
                format!("{}{rule}{ours}", if enabled { "enabled" } else { "not enabled" }),
            ));
        }
        Err(e) => {
            let f = S3Failure::from_sdk(&e);
            let detail = format!("no Object Lock configuration ({})", explain(&f));
            items.push(item("object lock", !wants_lock, if wants_lock { format!("{detail}, but the tier needs it") } else { detail }));
        }
    }

    if bucket_default_retention || s.default_retention.is_some() {
        items.push(item("write probe", true, "skipped: a retained probe object could not be removed"));
    } else {
        items.push(probe(inner).await);
    }

    // A node that crashes mid-upload cannot abort it; only a bucket rule cleans those up.
    match c.get_bucket_lifecycle_configuration().bucket(&s.bucket).send().await {
        Ok(out) => {
            let days =
                out.rules().iter().filter_map(|r| r.abort_incomplete_multipart_upload().and_then(|a| a.days_after_initiation())).min();
            items.push(item(
                "incomplete uploads",
                true,
                match days {
                    Some(d) => format!("aborted by a lifecycle rule after {d} days"),
                    None => "no lifecycle rule aborts incomplete multipart uploads; add one (AbortIncompleteMultipartUpload)".to_owned(),
                },
            ));
        }
        Err(_) => items.push(item("incomplete uploads", true, "no lifecycle configuration; add an AbortIncompleteMultipartUpload rule")),
    }

    match c.list_multipart_uploads().bucket(&s.bucket).prefix(&s.prefix).send().await {
        Ok(out) => {
            let n = out.uploads().len();
            items.push(item(
                "multipart uploads",
                true,
                format!("{n}{} in progress or left over under the prefix", if out.is_truncated() == Some(true) { "+" } else { "" }),
            ));
        }
        Err(e) => items.push(item("multipart uploads", false, explain(&S3Failure::from_sdk(&e)))),
    }
    items
}

async fn probe(inner: &Arc<Inner>) -> CheckItem {
    use vna_blob::{BlobRef, BlobWriter};
    let data = b"vna storage check probe";
    let sha = vna_blob::conformance::sha256_hex(data);
    let mut w: Box<dyn BlobWriter> = Box::new(crate::writer::S3Writer::new(inner.clone()));
    let outcome = async {
        w.write(bytes::Bytes::from_static(data)).await?;
        let blob = w.commit(&sha).await?;
        let store = crate::S3BlobStore { inner: inner.clone() };
        let back = vna_blob::read_all(&store, (&blob).into(), None).await?;
        if back != data {
            return Err(vna_blob::BlobError::Corrupted { step: "reading the probe back" });
        }
        vna_blob::BlobStore::delete(&store, BlobRef::from(&blob)).await?;
        Ok::<_, vna_blob::BlobError>(blob.version_id.is_some())
    }
    .await;
    match outcome {
        Ok(versioned) => item(
            "write probe",
            true,
            format!(
                "put, get, delete of a probe object{}{}",
                if versioned { " (version id returned)" } else { "" },
                match &inner.settings.encryption {
                    Some(e) => format!("; encrypted by the store as configured ({e:?})"),
                    None => String::new(),
                }
            ),
        ),
        Err(e) => item("write probe", false, e.to_string()),
    }
}
