//! The session store's behaviour as one suite, run against every adapter (SQLite,
//! PostgreSQL, Redis). Needs a user id that the store accepts (the SQL stores check it).

use chrono::{Duration, Utc};
use uuid::Uuid;

use crate::accounts::{AccountError, SessionStore};

/// Runs every case against `store`, starting sessions for `user_id`.
pub async fn run(store: &dyn SessionStore, user_id: Uuid) {
    let token = |name: &str| format!("{name}-{}", Uuid::new_v4().simple());
    let now = Utc::now();
    let later = now + Duration::hours(24);

    // A token rotates once; the new one works; the user comes back.
    let first = token("first");
    store.start(user_id, &first, later).await.expect("start");
    let second = token("second");
    assert_eq!(
        store
            .rotate(&first, &second, now, later)
            .await
            .expect("rotate"),
        user_id
    );
    let third = token("third");
    assert_eq!(
        store
            .rotate(&second, &third, now, later)
            .await
            .expect("rotate again"),
        user_id
    );

    // Presenting a rotated token again revokes the session: the newest token dies too.
    let reused = store.rotate(&first, &token("x"), now, later).await;
    assert!(
        matches!(reused, Err(AccountError::TokenReused)),
        "{reused:?}"
    );
    let after = store.rotate(&third, &token("y"), now, later).await;
    assert!(
        matches!(after, Err(AccountError::InvalidToken)),
        "{after:?}"
    );

    // Unknown and expired tokens are invalid.
    let unknown = store
        .rotate(&token("unknown"), &token("z"), now, later)
        .await;
    assert!(matches!(unknown, Err(AccountError::InvalidToken)));
    let short = token("short");
    store
        .start(user_id, &short, now + Duration::seconds(60))
        .await
        .expect("start");
    let expired = store
        .rotate(&short, &token("w"), now + Duration::seconds(120), later)
        .await;
    assert!(
        matches!(expired, Err(AccountError::InvalidToken)),
        "{expired:?}"
    );

    // Logout revokes.
    let logged_in = token("logout");
    store
        .start(user_id, &logged_in, later)
        .await
        .expect("start");
    store.revoke(&logged_in).await.expect("revoke");
    let revoked = store.rotate(&logged_in, &token("v"), now, later).await;
    assert!(
        matches!(revoked, Err(AccountError::InvalidToken)),
        "{revoked:?}"
    );
    store
        .revoke(&token("never-issued"))
        .await
        .expect("unknown tokens are ignored");

    // Of many concurrent refreshes with one token, exactly one wins.
    let raced = token("raced");
    store.start(user_id, &raced, later).await.expect("start");
    let attempts: Vec<_> = (0..10)
        .map(|index| {
            let next = format!("raced-next-{index}-{}", Uuid::new_v4().simple());
            let raced = raced.clone();
            async move { store.rotate(&raced, &next, now, later).await }
        })
        .collect();
    let results = futures::future::join_all(attempts).await;
    assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 1);
}
