//! Access tokens: EdDSA (Ed25519) JWTs, signed by the command role, verified locally by every
//! service with the public half (published as a JWKS).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{AuthError, Role};

/// The issuer every token names.
pub const ISSUER: &str = "catalog";
/// The audience every access token names: the catalog's APIs (a token minted for something
/// else with the same key is refused).
pub const AUDIENCE: &str = "catalog-api";

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub email: String,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// Signs access tokens. Holds the private key; only the command role needs one.
pub struct TokenSigner {
    encoding_key: EncodingKey,
    key_id: String,
    public_key: [u8; 32],
    lifetime_seconds: i64,
    /// Published beside the signing key: the staged next key and the retired previous one
    /// ([`crate::rotation`]).
    also_published: Vec<(String, [u8; 32])>,
}

impl TokenSigner {
    /// From a PKCS#8 PEM Ed25519 private key.
    pub fn from_pem(pem: &str, lifetime_seconds: i64) -> Result<Self, AuthError> {
        let signing_key = SigningKey::from_pkcs8_pem(pem)
            .map_err(|error| AuthError::InvalidKey(error.to_string()))?;
        let encoding_key = EncodingKey::from_ed_pem(pem.as_bytes())
            .map_err(|error| AuthError::InvalidKey(error.to_string()))?;
        let public_key = signing_key.verifying_key().to_bytes();
        Ok(TokenSigner {
            encoding_key,
            key_id: key_id(&public_key),
            public_key,
            lifetime_seconds,
            also_published: Vec::new(),
        })
    }

    /// The `kid` of the signing key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Reads the key at `path`, or, when `create` and the file is missing, generates one and
    /// writes it there (owner-only permissions) for the next start.
    pub fn load_or_create(
        path: &Path,
        create: bool,
        lifetime_seconds: i64,
    ) -> Result<Self, AuthError> {
        let key_file_error = |source| AuthError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let mut signer = Self::from_pem(&pem, lifetime_seconds)?;
                for companion in [
                    crate::rotation::next_of(path),
                    crate::rotation::previous_of(path),
                ] {
                    match std::fs::read_to_string(&companion) {
                        Ok(pem) => {
                            let other = Self::from_pem(&pem, lifetime_seconds)?;
                            signer.also_published.push((other.key_id, other.public_key));
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => {
                            return Err(AuthError::KeyFile {
                                path: companion.display().to_string(),
                                source,
                            })
                        }
                    }
                }
                Ok(signer)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && create => {
                let pem = generate_pem()?;
                write_private_file(path, &pem).map_err(key_file_error)?;
                tracing::info!(path = %path.display(), "generated a new token signing key");
                Self::from_pem(&pem, lifetime_seconds)
            }
            Err(error) => Err(key_file_error(error)),
        }
    }

    pub fn lifetime_seconds(&self) -> i64 {
        self.lifetime_seconds
    }

    /// A signed access token for the user.
    pub fn issue(&self, user_id: Uuid, email: &str, role: Role) -> Result<String, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            email: email.to_owned(),
            role,
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + self.lifetime_seconds,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding_key)
            .map_err(|error| AuthError::InvalidKey(error.to_string()))
    }

    /// The JWKS document (`/.well-known/jwks.json`): the public half of the signing key, then
    /// those of the staged next and retired previous keys when there are.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<_> = std::iter::once((&self.key_id, &self.public_key))
            .chain(self.also_published.iter().map(|(kid, key)| (kid, key)))
            .map(|(kid, key)| jwk(kid, key))
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// A verifier for tokens this signer issues.
    pub fn verifier(&self) -> TokenVerifier {
        let mut keys = HashMap::new();
        for (kid, public_key) in std::iter::once((&self.key_id, &self.public_key))
            .chain(self.also_published.iter().map(|(kid, key)| (kid, key)))
        {
            if let Ok(key) = DecodingKey::from_ed_components(&URL_SAFE_NO_PAD.encode(public_key)) {
                keys.insert(kid.clone(), key);
            }
        }
        TokenVerifier::with_keys(keys)
    }
}

/// Tokens remembered as verified, by the SHA-256 of the whole token.
const VERIFIED_TOKENS: u64 = 10_000;
/// Slack on `exp`, as `jsonwebtoken`'s validation allows.
const LEEWAY_SECONDS: i64 = 5;

/// Verifies access tokens locally against a set of public keys, by `kid`.
///
/// A client sends the same token with every request for its lifetime, and checking an
/// Ed25519 signature costs more than the rest of a small command: so the claims of a token
/// that verified are remembered (by the token's SHA-256; up to 10,000 tokens) and a repeat
/// costs a hash and a lookup. A remembered token is still refused once it expires.
#[derive(Clone)]
pub struct TokenVerifier {
    keys: Arc<RwLock<HashMap<String, DecodingKey>>>,
    verified: moka::sync::Cache<[u8; 32], Claims>,
    /// Told when a token names a key this verifier does not know (a JWKS refresher listens).
    unknown_key: Arc<tokio::sync::Notify>,
}

impl TokenVerifier {
    /// From a JWKS document (as served at `/.well-known/jwks.json`).
    pub fn from_jwks(jwks: &serde_json::Value) -> Result<Self, AuthError> {
        Ok(TokenVerifier::with_keys(keys_of_jwks(jwks)?))
    }

    /// Replaces the keys with those of `jwks` (a refreshed key set: a rotated-in key is
    /// accepted from now on, a retired one no longer). Remembered tokens of a retired key
    /// are forgotten.
    pub fn replace_keys(&self, jwks: &serde_json::Value) -> Result<usize, AuthError> {
        let keys = keys_of_jwks(jwks)?;
        let count = keys.len();
        let retired = {
            let mut current = self
                .keys
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let retired = current.keys().any(|kid| !keys.contains_key(kid));
            *current = keys;
            retired
        };
        if retired {
            self.verified.invalidate_all();
        }
        Ok(count)
    }

    /// Resolves when a token named a key this verifier does not know.
    pub async fn unknown_key_seen(&self) {
        self.unknown_key.notified().await;
    }

    fn with_keys(keys: HashMap<String, DecodingKey>) -> Self {
        TokenVerifier {
            keys: Arc::new(RwLock::new(keys)),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_TOKENS)
                .time_to_live(std::time::Duration::from_secs(300))
                .build(),
            unknown_key: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// The claims of a valid, unexpired token signed by one of the keys.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&digest) {
            if chrono::Utc::now().timestamp() > claims.exp + LEEWAY_SECONDS {
                self.verified.invalidate(&digest);
                return Err(AuthError::InvalidToken("ExpiredSignature".into()));
            }
            return Ok(claims);
        }
        let claims = self.verify_signature(token)?;
        self.verified.insert(digest, claims.clone());
        Ok(claims)
    }

    fn verify_signature(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| AuthError::InvalidToken(error.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(AuthError::InvalidToken("unsupported algorithm".into()));
        }
        let key_id = header
            .kid
            .ok_or_else(|| AuthError::InvalidToken("token without kid".into()))?;
        let key = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&key_id)
            .cloned();
        let Some(key) = key else {
            self.unknown_key.notify_one();
            return Err(AuthError::InvalidToken("unknown signing key".into()));
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS as u64;
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|error| AuthError::InvalidToken(error.to_string()))?;
        if claims.iat > chrono::Utc::now().timestamp() + LEEWAY_SECONDS {
            return Err(AuthError::InvalidToken("issued in the future".into()));
        }
        Ok(claims)
    }
}

/// The Ed25519 keys of a JWKS document by `kid`.
fn keys_of_jwks(jwks: &serde_json::Value) -> Result<HashMap<String, DecodingKey>, AuthError> {
    let mut keys = HashMap::new();
    let entries = jwks["keys"]
        .as_array()
        .ok_or_else(|| AuthError::InvalidKey("JWKS without keys".into()))?;
    for entry in entries {
        let (Some(kid), Some(x)) = (entry["kid"].as_str(), entry["x"].as_str()) else {
            continue;
        };
        if entry["kty"] != "OKP" || entry["crv"] != "Ed25519" {
            continue;
        }
        let key = DecodingKey::from_ed_components(x)
            .map_err(|error| AuthError::InvalidKey(error.to_string()))?;
        keys.insert(kid.to_owned(), key);
    }
    if keys.is_empty() {
        return Err(AuthError::InvalidKey("JWKS holds no Ed25519 key".into()));
    }
    Ok(keys)
}

/// A new Ed25519 private key as PKCS#8 PEM.
pub fn generate_pem() -> Result<String, AuthError> {
    let signing_key = SigningKey::generate(&mut rand::rngs::OsRng);
    signing_key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|error| AuthError::InvalidKey(error.to_string()))
}

fn key_id(public_key: &[u8; 32]) -> String {
    let digest = Sha256::digest(public_key);
    URL_SAFE_NO_PAD.encode(&digest[..12])
}

fn jwk(key_id: &str, public_key: &[u8; 32]) -> serde_json::Value {
    serde_json::json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "kid": key_id,
        "x": URL_SAFE_NO_PAD.encode(public_key),
    })
}

pub(crate) fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::from_pem(&generate_pem().expect("key"), 900).expect("signer")
    }

    #[test]
    fn a_token_verifies_with_the_jwks_and_carries_the_user() {
        let signer = signer();
        let user = Uuid::now_v7();
        let token = signer.issue(user, "a@b.c", Role::Analyst).expect("token");
        let verifier = TokenVerifier::from_jwks(&signer.jwks()).expect("jwks");
        let claims = verifier.verify(&token).expect("valid");
        assert_eq!(
            (claims.sub, claims.role, claims.email.as_str()),
            (user, Role::Analyst, "a@b.c")
        );
    }

    /// A token of `signer` with these claims, signed as `issue` signs.
    fn token_with(signer: &TokenSigner, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signer.key_id.clone());
        jsonwebtoken::encode(&header, claims, &signer.encoding_key).expect("token")
    }

    #[test]
    fn a_token_for_another_audience_or_issued_in_the_future_is_rejected() {
        let signer = signer();
        let verifier = signer.verifier();
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::now_v7(),
            email: "a@b.c".into(),
            role: Role::Admin,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now + 60,
        };
        assert!(verifier.verify(&token_with(&signer, &claims)).is_ok());
        let elsewhere = Claims {
            aud: "another-service".into(),
            ..claims.clone()
        };
        assert!(verifier.verify(&token_with(&signer, &elsewhere)).is_err());
        let future = Claims {
            iat: now + 3600,
            ..claims
        };
        assert!(verifier.verify(&token_with(&signer, &future)).is_err());
    }

    #[test]
    fn replaced_keys_accept_the_new_signer_and_retire_the_old() {
        let (old, new) = (signer(), signer());
        let verifier = TokenVerifier::from_jwks(&old.jwks()).expect("jwks");
        let old_token = old
            .issue(Uuid::now_v7(), "a@b.c", Role::Admin)
            .expect("token");
        let new_token = new
            .issue(Uuid::now_v7(), "a@b.c", Role::Admin)
            .expect("token");
        assert!(verifier.verify(&old_token).is_ok());
        assert!(verifier.verify(&new_token).is_err());
        verifier.replace_keys(&new.jwks()).expect("replace");
        assert!(verifier.verify(&new_token).is_ok());
        assert!(
            verifier.verify(&old_token).is_err(),
            "a remembered token of a retired key"
        );
    }

    #[test]
    fn a_token_from_another_key_or_tampered_is_rejected() {
        let token = signer()
            .issue(Uuid::now_v7(), "a@b.c", Role::Admin)
            .expect("token");
        assert!(signer().verifier().verify(&token).is_err());
        let own = signer();
        let good = own
            .issue(Uuid::now_v7(), "a@b.c", Role::Shopper)
            .expect("token");
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let forged_claims = serde_json::json!({"sub": Uuid::now_v7(), "email": "a@b.c", "role": "admin", "iss": ISSUER, "iat": 0, "exp": i64::MAX});
        parts[1] = URL_SAFE_NO_PAD.encode(forged_claims.to_string());
        assert!(own.verifier().verify(&parts.join(".")).is_err());
        assert!(own.verifier().verify("not a token").is_err());
    }

    #[test]
    fn an_expired_token_is_rejected() {
        let signer = TokenSigner::from_pem(&generate_pem().expect("key"), -60).expect("signer");
        let token = signer
            .issue(Uuid::now_v7(), "a@b.c", Role::Admin)
            .expect("token");
        assert!(signer.verifier().verify(&token).is_err());
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        // Expired 4 s ago: inside the 5 s leeway, so it verifies and is remembered.
        let signer = TokenSigner::from_pem(&generate_pem().expect("key"), -4).expect("signer");
        let token = signer
            .issue(Uuid::now_v7(), "a@b.c", Role::Admin)
            .expect("token");
        let verifier = signer.verifier();
        assert!(verifier.verify(&token).is_ok());
        assert!(verifier.clone().verify(&token).is_ok(), "remembered");
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert!(verifier.verify(&token).is_err());
    }

    #[test]
    fn the_key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("catalog-key-{}", Uuid::now_v7()));
        let path = dir.join("jwt.pem");
        let first = TokenSigner::load_or_create(&path, true, 900).expect("create");
        let second = TokenSigner::load_or_create(&path, false, 900).expect("reuse");
        assert_eq!(first.jwks(), second.jwks());
        let _ = std::fs::remove_dir_all(dir);
    }
}
