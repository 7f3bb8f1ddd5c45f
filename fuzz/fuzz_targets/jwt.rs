//! Bearer tokens: the `Authorization` value and the JWT's header (alg, kid, typ, anything) come
//! from the client. Never a panic, and nothing but a token the signer issued verifies: not
//! random text, and not a real token's claims under a header the input made up.
#![no_main]

use std::sync::OnceLock;

use auth::{TokenSigner, TokenVerifier};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;

struct Keys {
    verifier: TokenVerifier,
    /// A token the signer issued: its claims and signature, for the forged-header case.
    claims: String,
    signature: String,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pem = auth::keys::generate_pem().expect("a key");
        let signer = TokenSigner::from_pem(&pem, 900).expect("a signer");
        let token = signer
            .issue(uuid::Uuid::nil(), "fuzz@example.com", auth::Role::Admin)
            .expect("a token");
        let mut parts = token.split('.').skip(1);
        let claims = parts.next().expect("claims").to_owned();
        let signature = parts.next().expect("signature").to_owned();
        let verifier = signer.verifier();
        assert!(
            verifier.verify(&token).is_ok(),
            "the signer's own token verifies"
        );
        Keys {
            verifier,
            claims,
            signature,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(token) = auth::extract::bearer_token(text) {
            assert!(keys.verifier.verify(token).is_err(), "{token:?} verified");
        }
    }
    // The input as the token's header, over a real token's claims and signature.
    let forged = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(data),
        keys.claims,
        keys.signature
    );
    assert!(
        keys.verifier.verify(&forged).is_err(),
        "a made-up header verified: {forged}"
    );
});
