//! JSON Schemas of the envelope and every event version, as checked in under `schemas/`.
//!
//! The files are generated from the Rust types; the drift test in this crate fails when a
//! type changes and the checked-in file does not. Regenerate with
//! `UPDATE_SCHEMAS=1 cargo test -p events schemas_match`.

use crate::catalog_events::CatalogEvent;
use crate::envelope::Envelope;

/// `(file name, pretty JSON)` for every schema file in `schemas/`.
pub fn schema_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let envelope = schemars::schema_for!(Envelope);
    files.push(("envelope.v1.json".to_owned(), pretty(&envelope)));
    for (event_type, version, schema) in CatalogEvent::schemas() {
        files.push((format!("{event_type}.v{version}.json"), pretty(&schema)));
    }
    for (name, schema) in crate::analytics::AnalyticsEvent::schemas() {
        files.push((name.to_owned(), pretty(&schema)));
    }
    files
}

fn pretty(schema: &schemars::schema::RootSchema) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn schemas_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas")
    }

    #[test]
    fn schemas_match_the_checked_in_files() {
        let dir = schemas_dir();
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
        let mut stale = Vec::new();
        for (name, text) in schema_files() {
            let path = dir.join(&name);
            if update {
                std::fs::write(&path, &text).expect("write schema");
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(existing) if existing == text => {}
                _ => stale.push(name),
            }
        }
        assert!(
            stale.is_empty(),
            "schemas/ is out of date for {stale:?}: run UPDATE_SCHEMAS=1 cargo test -p events schemas_match and commit the result"
        );
    }
}
