//! The account ports' behaviour as suites, run against every adapter: the session store on
//! SQLite, PostgreSQL, Redis and Redis Cluster; the user store on SQLite and PostgreSQL.
//!
//! Each suite is a macro that expands into one `#[tokio::test]` per case inside a module of
//! its own, so one failing case never hides another:
//!
//! ```ignore
//! command_api::session_store_suite!(sqlite, sqlite_sessions);
//! command_api::user_store_suite!(postgres, postgres_users);
//! ```
//!
//! The second argument is an async function (or closure) of no arguments making a fresh store
//! for one case: a [`SessionFixture`] (the SQL stores only accept sessions for a user that
//! exists, so the fixture names one) or a [`UserFixture`]. Built only with the `testsuite`
//! feature (or for this crate's own tests).

use std::any::Any;
use std::sync::Arc;

use auth::Role;
use chrono::{Duration, Utc};
use uuid::Uuid;

use crate::accounts::{create_account, AccountError, Rotation, SessionStore, User, UserStore};

/// Whatever must outlive the store of a case (a temporary directory, a test database).
pub type Keep = Box<dyn Any + Send>;

/// A session store for one case, with a user id it accepts sessions for.
pub struct SessionFixture {
    pub store: Arc<dyn SessionStore>,
    pub user_id: Uuid,
    pub keep: Keep,
}

/// A fresh, empty user store for one case.
pub struct UserFixture {
    pub store: Arc<dyn UserStore>,
    pub keep: Keep,
}

/// A user with a unique email, as the SQL session stores need one to exist.
pub fn user() -> User {
    User {
        id: Uuid::now_v7(),
        email: format!("{}@example.com", Uuid::new_v4().simple()),
        password_hash: "not a real hash".into(),
        role: Role::Shopper,
        created_at: Utc::now(),
    }
}

/// Expands the session store suite into a module `$module` of tests, each on a fresh
/// [`SessionFixture`] from `$make`.
#[macro_export]
macro_rules! session_store_suite {
    ($module:ident, $make:expr) => {
        $crate::session_store_suite!(@cases $module, $make;
            a_token_rotates_once_and_its_successor_works,
            presenting_a_rotated_token_again_revokes_the_whole_session,
            unknown_and_expired_tokens_are_invalid,
            logout_revokes_the_session_and_ignores_unknown_tokens,
            of_many_concurrent_refreshes_with_one_token_exactly_one_wins,
            refreshing_never_extends_a_session_past_its_first_expiry,
        );
    };
    (@cases $module:ident, $make:expr; $($case:ident),+ $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let fixture: $crate::accounts::conformance::SessionFixture = ($make)().await;
                    $crate::accounts::conformance::sessions::$case(
                        &*fixture.store,
                        fixture.user_id,
                    )
                    .await;
                }
            )+
        }
    };
}

/// Expands the user store suite into a module `$module` of tests, each on a fresh
/// [`UserFixture`] from `$make`.
#[macro_export]
macro_rules! user_store_suite {
    ($module:ident, $make:expr) => {
        $crate::user_store_suite!(@cases $module, $make;
            a_created_user_is_found_by_id_and_by_email,
            a_second_user_with_a_taken_email_is_a_duplicate_email,
            an_account_is_stored_with_its_email_lower_cased,
            an_unknown_id_or_email_finds_nobody,
        );
    };
    (@cases $module:ident, $make:expr; $($case:ident),+ $(,)?) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let fixture: $crate::accounts::conformance::UserFixture = ($make)().await;
                    $crate::accounts::conformance::users::$case(&*fixture.store).await;
                }
            )+
        }
    };
}

/// The session store's cases, each against a fresh store and a user it accepts.
pub mod sessions {
    use super::*;

    fn token(name: &str) -> String {
        format!("{name}-{}", Uuid::new_v4().simple())
    }

    pub async fn a_token_rotates_once_and_its_successor_works(
        store: &dyn SessionStore,
        user_id: Uuid,
    ) {
        rotate_twice(store, user_id).await;
    }

    /// Starts a session and rotates its token twice: `(first, third)`, the first token and
    /// the current one.
    async fn rotate_twice(store: &dyn SessionStore, user_id: Uuid) -> (String, String) {
        let now = Utc::now();
        let later = now + Duration::hours(24);
        let first = token("first");
        store.start(user_id, &first, later).await.expect("start");
        let second = token("second");
        assert_eq!(
            store
                .rotate(Rotation {
                    old_hash: &first,
                    new_hash: &second,
                    now,
                    expires_at: later
                })
                .await
                .expect("rotate"),
            user_id
        );
        let third = token("third");
        assert_eq!(
            store
                .rotate(Rotation {
                    old_hash: &second,
                    new_hash: &third,
                    now,
                    expires_at: later
                })
                .await
                .expect("rotate again"),
            user_id
        );
        (first, third)
    }

    pub async fn presenting_a_rotated_token_again_revokes_the_whole_session(
        store: &dyn SessionStore,
        user_id: Uuid,
    ) {
        let now = Utc::now();
        let later = now + Duration::hours(24);
        let (first, third) = rotate_twice(store, user_id).await;
        let reused = store
            .rotate(Rotation {
                old_hash: &first,
                new_hash: &token("x"),
                now,
                expires_at: later,
            })
            .await;
        assert!(
            matches!(reused, Err(AccountError::TokenReused)),
            "{reused:?}"
        );
        // The newest token dies with the session.
        let after = store
            .rotate(Rotation {
                old_hash: &third,
                new_hash: &token("y"),
                now,
                expires_at: later,
            })
            .await;
        assert!(
            matches!(after, Err(AccountError::InvalidToken)),
            "{after:?}"
        );
    }

    pub async fn refreshing_never_extends_a_session_past_its_first_expiry(
        store: &dyn SessionStore,
        user_id: Uuid,
    ) {
        let now = Utc::now();
        let first = token("first");
        store
            .start(user_id, &first, now + Duration::seconds(60))
            .await
            .expect("start");
        let second = token("second");
        store
            .rotate(Rotation {
                old_hash: &first,
                new_hash: &second,
                now,
                expires_at: now + Duration::hours(24),
            })
            .await
            .expect("rotate");
        // Two minutes on, the session's 60 s are over, though the rotation asked for 24 h.
        let late = store
            .rotate(Rotation {
                old_hash: &second,
                new_hash: &token("third"),
                now: now + Duration::seconds(120),
                expires_at: now + Duration::hours(24),
            })
            .await;
        assert!(matches!(late, Err(AccountError::InvalidToken)), "{late:?}");
    }

    /// For the SQL stores (Redis expires its keys itself): expired tokens are deleted, live
    /// ones kept.
    pub async fn expired_tokens_are_purged(store: &dyn SessionStore, user_id: Uuid) {
        let now = Utc::now();
        let (expired, live) = (token("expired"), token("live"));
        store
            .start(user_id, &expired, now - Duration::hours(1))
            .await
            .expect("start");
        store
            .start(user_id, &live, now + Duration::hours(1))
            .await
            .expect("start");
        assert_eq!(store.purge_expired(now).await.expect("purge"), 1);
        let rotated = store
            .rotate(Rotation {
                old_hash: &live,
                new_hash: &token("next"),
                now,
                expires_at: now + Duration::hours(1),
            })
            .await;
        assert_eq!(rotated.expect("the live session survives"), user_id);
    }

    pub async fn unknown_and_expired_tokens_are_invalid(store: &dyn SessionStore, user_id: Uuid) {
        let now = Utc::now();
        let later = now + Duration::hours(24);
        let unknown = store
            .rotate(Rotation {
                old_hash: &token("unknown"),
                new_hash: &token("z"),
                now,
                expires_at: later,
            })
            .await;
        assert!(matches!(unknown, Err(AccountError::InvalidToken)));
        let short = token("short");
        store
            .start(user_id, &short, now + Duration::seconds(60))
            .await
            .expect("start");
        let expired = store
            .rotate(Rotation {
                old_hash: &short,
                new_hash: &token("w"),
                now: now + Duration::seconds(120),
                expires_at: later,
            })
            .await;
        assert!(
            matches!(expired, Err(AccountError::InvalidToken)),
            "{expired:?}"
        );
    }

    pub async fn logout_revokes_the_session_and_ignores_unknown_tokens(
        store: &dyn SessionStore,
        user_id: Uuid,
    ) {
        let now = Utc::now();
        let later = now + Duration::hours(24);
        let logged_in = token("logout");
        store
            .start(user_id, &logged_in, later)
            .await
            .expect("start");
        store.revoke(&logged_in).await.expect("revoke");
        let revoked = store
            .rotate(Rotation {
                old_hash: &logged_in,
                new_hash: &token("v"),
                now,
                expires_at: later,
            })
            .await;
        assert!(
            matches!(revoked, Err(AccountError::InvalidToken)),
            "{revoked:?}"
        );
        store
            .revoke(&token("never-issued"))
            .await
            .expect("unknown tokens are ignored");
    }

    pub async fn of_many_concurrent_refreshes_with_one_token_exactly_one_wins(
        store: &dyn SessionStore,
        user_id: Uuid,
    ) {
        let now = Utc::now();
        let later = now + Duration::hours(24);
        let raced = token("raced");
        store.start(user_id, &raced, later).await.expect("start");
        let attempts: Vec<_> = (0..10)
            .map(|index| {
                let next = format!("raced-next-{index}-{}", Uuid::new_v4().simple());
                let raced = raced.clone();
                async move {
                    store
                        .rotate(Rotation {
                            old_hash: &raced,
                            new_hash: &next,
                            now,
                            expires_at: later,
                        })
                        .await
                }
            })
            .collect();
        let results = futures::future::join_all(attempts).await;
        assert_eq!(results.iter().filter(|result| result.is_ok()).count(), 1);
    }
}

/// The user store's cases, each against a fresh, empty store.
pub mod users {
    use super::*;

    fn assert_same_user(found: &User, stored: &User) {
        assert_eq!(found.id, stored.id);
        assert_eq!(found.email, stored.email);
        assert_eq!(found.password_hash, stored.password_hash);
        assert_eq!(found.role, stored.role);
        // Stores keep microseconds.
        assert_eq!(
            found.created_at.timestamp_micros(),
            stored.created_at.timestamp_micros()
        );
    }

    pub async fn a_created_user_is_found_by_id_and_by_email(store: &dyn UserStore) {
        let mut stored = user();
        stored.role = Role::Admin;
        store.create(&stored).await.expect("create");
        let by_id = store.by_id(stored.id).await.expect("by id").expect("found");
        assert_same_user(&by_id, &stored);
        let by_email = store
            .by_email(&stored.email)
            .await
            .expect("by email")
            .expect("found");
        assert_same_user(&by_email, &stored);
    }

    pub async fn a_second_user_with_a_taken_email_is_a_duplicate_email(store: &dyn UserStore) {
        let first = user();
        store.create(&first).await.expect("create");
        let second = User {
            id: Uuid::now_v7(),
            ..first.clone()
        };
        let duplicate = store.create(&second).await;
        assert!(
            matches!(duplicate, Err(AccountError::DuplicateEmail)),
            "{duplicate:?}"
        );
        assert!(store.by_id(second.id).await.expect("by id").is_none());
    }

    pub async fn an_account_is_stored_with_its_email_lower_cased(store: &dyn UserStore) {
        let local = Uuid::new_v4().simple().to_string();
        let typed = format!("  Mixed.{local}@Example.COM ");
        let lower = format!("mixed.{local}@example.com");
        let created = create_account(store, &typed, "correct horse battery", Role::Shopper)
            .await
            .expect("create");
        assert_eq!(created.email, lower);
        let found = store
            .by_email(&lower)
            .await
            .expect("by email")
            .expect("found by the lower-cased email");
        assert_eq!(found.id, created.id);
        // Another case of the same address is the same address.
        let again = create_account(
            store,
            &lower.to_uppercase(),
            "correct horse battery",
            Role::Shopper,
        )
        .await;
        assert!(
            matches!(again, Err(AccountError::DuplicateEmail)),
            "{again:?}"
        );
    }

    pub async fn an_unknown_id_or_email_finds_nobody(store: &dyn UserStore) {
        store.create(&user()).await.expect("create");
        assert!(store.by_id(Uuid::now_v7()).await.expect("by id").is_none());
        assert!(store
            .by_email("nobody@example.com")
            .await
            .expect("by email")
            .is_none());
    }
}
