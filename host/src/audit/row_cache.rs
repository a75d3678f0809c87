//! The group-commit writer's cache of sealed rows (ciphertext only, never a
//! plaintext), so a steady stream of reveals need not read the same rows for
//! every group.
//!
//! It is checked, not trusted: `audit_head.secrets_generation` is bumped by
//! triggers on every change to `secret` (from this host, another host, or a
//! manual edit), and the writer reads it under the head lock at the start of
//! each group. If it moved, the whole cache is dropped first. Several hosts on
//! one database therefore never serve a row another host has changed.

use std::collections::HashMap;

use sqlx::AnyConnection;

use crate::store::{secrets, Backend};

/// More distinct names than this and the cache starts over (bounds memory).
const MAX_NAMES: usize = 10_000;

/// Sealed rows by name (every scope of that name), valid for one generation.
#[derive(Default)]
pub(super) struct RowCache {
    generation: Option<i64>,
    by_name: HashMap<String, Vec<secrets::SecretRow>>,
}

impl RowCache {
    /// The names of `names` the cache lacks as of `generation` (read under
    /// the head lock in the caller's transaction), after dropping everything
    /// if the generation moved. The caller reads their rows and hands them to
    /// [`RowCache::fill`].
    pub(super) fn missing(&mut self, generation: i64, names: &[&str]) -> Vec<String> {
        if self.generation != Some(generation) || self.by_name.len() + names.len() > MAX_NAMES {
            self.clear();
        }
        self.generation = Some(generation);
        names
            .iter()
            .filter(|name| !self.by_name.contains_key(**name))
            .map(|name| (*name).to_owned())
            .collect()
    }

    /// Records the rows read for `missing` (a name with no row is cached as
    /// absent).
    pub(super) fn fill(&mut self, missing: &[String], rows: Vec<secrets::SecretRow>) {
        for name in missing {
            self.by_name.entry(name.clone()).or_default();
        }
        for row in rows {
            self.by_name
                .entry(row.meta.name.clone())
                .or_default()
                .push(row);
        }
    }

    /// [`RowCache::missing`], the read through sqlx, and [`RowCache::fill`].
    pub(super) async fn load(
        &mut self,
        conn: &mut AnyConnection,
        backend: Backend,
        generation: i64,
        names: &[&str],
    ) -> Result<(), sqlx::Error> {
        let missing = self.missing(generation, names);
        if !missing.is_empty() {
            let wanted: Vec<&str> = missing.iter().map(String::as_str).collect();
            let rows = secrets::get_by_names(conn, backend, &wanted).await?;
            self.fill(&missing, rows);
        }
        Ok(())
    }

    /// The row of `name` in `scope`, if the store has one (after
    /// [`RowCache::missing`] and [`RowCache::fill`]).
    pub(super) fn get(&self, scope: &str, name: &str) -> Option<&secrets::SecretRow> {
        self.by_name
            .get(name)?
            .iter()
            .find(|row| row.meta.scope == scope)
    }

    /// Forgets everything (after a failed group, to be safe).
    pub(super) fn clear(&mut self) {
        self.generation = None;
        self.by_name.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Sealed;
    use crate::store::secrets::{SecretMeta, SecretRow};

    fn row(scope: &str, name: &str) -> SecretRow {
        SecretRow {
            id: 1,
            meta: SecretMeta {
                scope: scope.into(),
                name: name.into(),
                description: String::new(),
                version: 1,
                key_id: "k".into(),
                created_at: 0,
                updated_at: 0,
                rotated_at: 0,
            },
            sealed: Sealed {
                key_id: "k".into(),
                nonce: vec![],
                ciphertext: vec![],
                tag: vec![],
            },
            written_by: String::new(),
            deleted_at: None,
            deleted_by: None,
            max_versions: None,
        }
    }

    #[test]
    fn a_new_generation_drops_every_cached_row() {
        let mut cache = RowCache::default();
        assert_eq!(cache.missing(1, &["A", "B"]), ["A", "B"]);
        cache.fill(&["A".into(), "B".into()], vec![row("global", "A")]);
        assert!(cache.get("global", "A").is_some());
        assert!(cache.get("global", "B").is_none());
        // Same generation: nothing to read, absent names stay known absent.
        assert!(cache.missing(1, &["A", "B"]).is_empty());
        // A secret changed somewhere: everything is read again.
        assert_eq!(cache.missing(2, &["A"]), ["A"]);
        assert!(cache.get("global", "A").is_none());
    }
}
