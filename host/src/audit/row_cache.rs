//! The group-commit writer's cache of sealed rows (ciphertext only, never a
//! plaintext), so a steady stream of reveals need not read the same rows for
//! every group.
//!
//! It is checked, not trusted: `audit_head.secrets_generation` is bumped by
//! triggers on every change to `secret` (from this host, another host, or a
//! manual edit), and the writer reads it under the head lock at the start of
//! each group. If it moved, the whole cache is dropped first. Several hosts on
//! one PostgreSQL therefore never serve a row another host has changed.

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
    /// Makes sure every name in `names` is cached as of `generation` (read
    /// under the head lock in the caller's transaction), reading only the
    /// names it lacks.
    pub(super) async fn load(
        &mut self,
        conn: &mut AnyConnection,
        backend: Backend,
        generation: i64,
        names: &[&str],
    ) -> Result<(), sqlx::Error> {
        if self.generation != Some(generation) || self.by_name.len() + names.len() > MAX_NAMES {
            self.clear();
        }
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| !self.by_name.contains_key(*name))
            .collect();
        if !missing.is_empty() {
            let rows = secrets::get_by_names(conn, backend, &missing).await?;
            for name in missing {
                self.by_name.entry(name.to_owned()).or_default();
            }
            for row in rows {
                self.by_name
                    .entry(row.meta.name.clone())
                    .or_default()
                    .push(row);
            }
        }
        self.generation = Some(generation);
        Ok(())
    }

    /// Whether every name in `names` is cached as of `generation`, so a
    /// group can be resolved without reading (and then committed only if
    /// the generation has not moved meanwhile).
    pub(super) fn covers(&self, generation: i64, names: &[&str]) -> bool {
        self.generation == Some(generation)
            && names.iter().all(|name| self.by_name.contains_key(*name))
    }

    /// The row of `name` in `scope`, if the store has one (after [`RowCache::load`]).
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
