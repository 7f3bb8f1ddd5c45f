//! Rotating the signing key without a restart: the key file `K` signs; `K.next` (staged) and
//! `K.previous` (retired) are published beside it in the JWKS, so verifiers know a key before
//! it signs and keep accepting the tokens of the last one until they expire.
//!
//! `catalog keys rotate` first stages `K.next`; run again once verifiers have had time to
//! fetch the JWKS (the overlap window), it makes `K.next` the signing key and keeps the old one
//! as `K.previous`. Signers re-read the files within seconds ([`SharedSigner::reload`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use crate::keys::{generate_pem, write_private_file, TokenSigner};
use crate::{AuthError, Role};

/// The staged key beside `path`.
pub fn next_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.next", path.display()))
}

/// The retired key beside `path`.
pub fn previous_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.previous", path.display()))
}

/// What `rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotated {
    /// A next key was written and is published from now on.
    Staged { next_kid: String },
    /// The next key signs; the old one is kept as the previous key.
    Promoted {
        signing_kid: String,
        previous_kid: String,
    },
}

/// Stages a next key, or promotes the staged one once it is at least `overlap` old (or with
/// `force`).
pub fn rotate(path: &Path, overlap: Duration, force: bool) -> Result<Rotated, AuthError> {
    let file_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| AuthError::KeyFile { path, source }
    };
    let current = TokenSigner::load_or_create(path, false, 900)?;
    let next = next_of(path);
    if !next.exists() {
        let pem = generate_pem()?;
        write_private_file(&next, &pem).map_err(file_error(&next))?;
        let staged = TokenSigner::from_pem(&pem, 900)?;
        return Ok(Rotated::Staged {
            next_kid: staged.key_id().to_owned(),
        });
    }
    let staged = TokenSigner::load_or_create(&next, false, 900)?;
    let age = std::fs::metadata(&next)
        .and_then(|metadata| metadata.modified())
        .map_err(file_error(&next))?;
    let age = SystemTime::now().duration_since(age).unwrap_or_default();
    if age < overlap && !force {
        return Err(AuthError::InvalidKey(format!(
            "the next key was staged {} s ago; promote it after {} s (verifiers read the JWKS \
             every 5 minutes and tokens live their lifetime), or pass --force",
            age.as_secs(),
            overlap.as_secs()
        )));
    }
    let previous = previous_of(path);
    std::fs::rename(path, &previous).map_err(file_error(path))?;
    std::fs::rename(&next, path).map_err(file_error(path))?;
    Ok(Rotated::Promoted {
        signing_kid: staged.key_id().to_owned(),
        previous_kid: current.key_id().to_owned(),
    })
}

/// The signer of a running command role, re-read from its files when they change.
pub struct SharedSigner {
    path: PathBuf,
    lifetime_seconds: i64,
    current: RwLock<Arc<TokenSigner>>,
    stamp: RwLock<Vec<Option<SystemTime>>>,
}

impl SharedSigner {
    pub fn new(path: PathBuf, signer: TokenSigner) -> Self {
        let stamp = stamps(&path);
        SharedSigner {
            lifetime_seconds: signer.lifetime_seconds(),
            path,
            current: RwLock::new(Arc::new(signer)),
            stamp: RwLock::new(stamp),
        }
    }

    pub fn get(&self) -> Arc<TokenSigner> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn issue(&self, user: uuid::Uuid, email: &str, role: Role) -> Result<String, AuthError> {
        self.get().issue(user, email, role)
    }

    pub fn jwks(&self) -> serde_json::Value {
        self.get().jwks()
    }

    pub fn lifetime_seconds(&self) -> i64 {
        self.lifetime_seconds
    }

    /// Re-reads the key files if any changed; `Ok(true)` when the keys changed.
    pub fn reload(&self) -> Result<bool, AuthError> {
        let now = stamps(&self.path);
        if *self
            .stamp
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            == now
        {
            return Ok(false);
        }
        let signer = TokenSigner::load_or_create(&self.path, false, self.lifetime_seconds)?;
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(signer);
        *self
            .stamp
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
        Ok(true)
    }
}

fn stamps(path: &Path) -> Vec<Option<SystemTime>> {
    [path.to_path_buf(), next_of(path), previous_of(path)]
        .iter()
        .map(|file| std::fs::metadata(file).and_then(|m| m.modified()).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_rotation_stages_then_promotes_and_old_tokens_stay_valid() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("key.pem");
        let first = TokenSigner::load_or_create(&path, true, 900).expect("key");
        let old_token = first
            .issue(Uuid::now_v7(), "a@b.c", Role::Admin)
            .expect("token");
        let Rotated::Staged { next_kid } =
            rotate(&path, Duration::from_secs(3600), false).expect("stage")
        else {
            panic!("expected a staged key");
        };
        let staged = TokenSigner::load_or_create(&path, false, 900).expect("reload");
        let published: Vec<String> = staged.jwks()["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|key| key["kid"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert!(published.contains(&next_kid), "{published:?}");
        assert_eq!(
            staged.key_id(),
            first.key_id(),
            "staging does not change the signer"
        );
        assert!(
            rotate(&path, Duration::from_secs(3600), false).is_err(),
            "too early"
        );
        let Rotated::Promoted { signing_kid, .. } =
            rotate(&path, Duration::from_secs(3600), true).expect("promote")
        else {
            panic!("expected a promotion");
        };
        assert_eq!(signing_kid, next_kid);
        let promoted = TokenSigner::load_or_create(&path, false, 900).expect("reload");
        assert_eq!(promoted.key_id(), next_kid);
        let verifier = crate::TokenVerifier::from_jwks(&promoted.jwks()).expect("jwks");
        assert!(
            verifier.verify(&old_token).is_ok(),
            "the previous key is still published"
        );
        let new_token = promoted
            .issue(Uuid::now_v7(), "a@b.c", Role::Admin)
            .expect("token");
        assert!(verifier.verify(&new_token).is_ok());
    }
}
