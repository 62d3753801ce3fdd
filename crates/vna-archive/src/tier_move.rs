//! Tier moves of the lifecycle apply job: each version of an instance copied into its new
//! tier (SHA-256 checked on the way and read back), locked there as its policies ask, then the
//! catalog switched to it with a `moved` tombstone for the object it leaves.

use crate::apply::object_name;
use crate::{Archive, ArchiveError};
use std::sync::Arc;
use vna_catalog::InstanceRow;
use vna_lifecycle::Decision;

impl Archive {
    /// Moves every version of an instance not yet on `tier` there: the object is streamed
    /// from its store into the new tier's (its SHA-256 checked on the way, locked from its
    /// commit on as the policies ask), read back and checked again, then the catalog switches
    /// to it with a `moved` tombstone for the old object. The old object is destroyed once
    /// `grace` has passed (a read that resolved it just before may still be streaming it): here
    /// when there is none, else by a later run. Reads follow the catalog throughout; a move
    /// interrupted before the switch leaves the old object in use and an unreferenced copy.
    /// After each copy, with `bandwidth` (bytes per second), the job rests as long as the copy
    /// takes at that rate. Returns how many versions moved, and their bytes.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn move_to(
        &self,
        ctx: &mut crate::jobs::JobCtx,
        row: &InstanceRow,
        d: &Decision,
        tier: &str,
        policy_set: &str,
        grace: std::time::Duration,
        bandwidth: Option<f64>,
    ) -> Result<(u64, u64), crate::jobs::JobError> {
        let versions = self.all_versions(row).await?;
        let Ok(target) = self.store_of(tier).cloned() else {
            ctx.fail(object_name(&row.blob.tier, &row.blob.key), format!("the policies move it to tier {tier}, which is not configured"));
            return Ok((0, 0));
        };
        let rules: Vec<String> = d.transition.iter().map(|m| m.rule.clone()).collect();
        let (mut moved, mut bytes) = (0, 0);
        for v in versions.iter().filter(|v| v.blob.tier != tier) {
            let name = object_name(&v.blob.tier, &v.blob.key);
            // A legal hold freezes the object where it is: a copy would not carry the hold, and
            // the held original could never be destroyed. It moves once the hold is lifted.
            match self.store_of(&v.blob.tier) {
                Ok(store) => match store.protection(crate::blob_ref(v)).await {
                    Ok(p) if p.legal_hold => {
                        ctx.fail(name, "due to move, but under legal hold: it stays on its tier until the hold is lifted");
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        ctx.fail(name, format!("cannot read the object's protection: {e}"));
                        continue;
                    }
                },
                Err(e) => {
                    ctx.fail(name, e.to_string());
                    continue;
                }
            }
            let copy = match self.copy_to(v, &target, d.retention.as_ref()).await {
                Ok(c) => c,
                Err(why) => {
                    ctx.fail(name, why);
                    continue;
                }
            };
            if let Some(rate) = bandwidth {
                ctx.rest(std::time::Duration::from_secs_f64(copy.size as f64 / rate)).await?;
            }
            let to = vna_catalog::BlobLocation {
                tier: tier.to_owned(),
                key: copy.key.clone(),
                version_id: copy.version_id.clone(),
                size: copy.size,
                sha256: v.blob.sha256.clone(),
            };
            // DICOM Instances Accessed, Update (A.5.3.4): the object now lives elsewhere; recorded
            // with the switch, in its transaction.
            let mut audit = crate::audit::event(&crate::Principal::system(), crate::EventId::InstancesAccessed, "U", &[v], "");
            audit.detail = format!("moved to tier {tier} by lifecycle rules {} (policy set {policy_set})", rules.join(", "));
            let m = vna_catalog::TierMove {
                pk: v.pk,
                from: v.blob.clone(),
                to,
                rules: rules.clone(),
                policy_set: policy_set.to_owned(),
                now_ms: crate::now_ms(),
                audit: Some(audit),
            };
            match self.catalog.move_version(&m).await.map_err(ArchiveError::catalog("switching a version to its new tier"))? {
                Some(stone) => {
                    moved += 1;
                    bytes += copy.size;
                    if grace.is_zero() {
                        self.purge(ctx, &stone).await?;
                    }
                }
                None => {
                    // The version changed meanwhile: the copy is not used.
                    let orphan = object_name(tier, &copy.key);
                    if let Err(e) = target.delete(vna_blob::BlobRef::new(&copy.key, copy.version_id.as_deref())).await {
                        ctx.fail(orphan, format!("a copy no longer needed could not be removed: {e}"));
                    }
                }
            }
        }
        Ok((moved, bytes))
    }

    /// Copies one version's object into `target`, checked against the catalog's SHA-256 while
    /// streaming and read back after its commit; locked from its commit on as `retention`
    /// asks. The reason when it fails (nothing is switched then).
    async fn copy_to(
        &self,
        v: &InstanceRow,
        target: &Arc<dyn vna_blob::BlobStore>,
        retention: Option<&vna_lifecycle::Retention>,
    ) -> Result<vna_blob::StoredBlob, String> {
        use futures::StreamExt;
        use sha2::Digest;
        let source = self.store_of(&v.blob.tier).map_err(|e| e.to_string())?;
        let mut reader = source.read(crate::blob_ref(v), None).await.map_err(|e| format!("cannot read the object: {e}"))?;
        let mut writer = target.create().await.map_err(|e| format!("cannot write to the new tier: {e}"))?;
        if let Some(r) = retention {
            if let Err(e) = writer.lock_on_commit(self.policy_lock(r, crate::now_ms())) {
                writer.abort().await;
                return Err(format!("the new tier cannot lock the object as the policies ask: {e}"));
            }
        }
        let mut hash = sha2::Sha256::new();
        while let Some(chunk) = reader.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    writer.abort().await;
                    return Err(format!("reading the object failed: {e}"));
                }
            };
            hash.update(&chunk);
            if let Err(e) = writer.write(chunk).await {
                writer.abort().await;
                return Err(format!("writing to the new tier failed: {e}"));
            }
        }
        if hex::encode(hash.finalize()) != v.blob.sha256 {
            writer.abort().await;
            return Err("the object read from its tier does not match its recorded SHA-256".into());
        }
        let copy = writer.commit(&v.blob.sha256).await.map_err(|e| format!("committing the copy failed: {e}"))?;
        // Checked where it now is, before anything points to it.
        let mut back = target
            .read(vna_blob::BlobRef::new(&copy.key, copy.version_id.as_deref()), None)
            .await
            .map_err(|e| format!("cannot read the copy back (left at {}): {e}", copy.key))?;
        let mut hash = sha2::Sha256::new();
        while let Some(chunk) = back.next().await {
            hash.update(&chunk.map_err(|e| format!("reading the copy back failed (left at {}): {e}", copy.key))?);
        }
        if hex::encode(hash.finalize()) != v.blob.sha256 {
            return Err(format!("the copy read back differs from the original (left unused at {})", copy.key));
        }
        Ok(copy)
    }
}
