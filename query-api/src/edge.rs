//! Purges of the edge cache: Varnish with vmod xkey in front of the query processes
//! (`docker/varnish/catalog.vcl`), driven by the same invalidations as the in-process caches.
//!
//! Every cacheable answer carries its surrogate keys in `Surrogate-Key` (see
//! [`crate::routes::SURROGATE_KEY`]). When this process has dropped what an event changed from
//! its own caches (the invalidation subscription in the distributed mode, the in-memory view
//! in the embedded one), it queues the same keys here, and a task sends them as
//! `PURGE /` with `xkey-purge: <keys>` to every edge. Several query processes each purge after
//! their own drop, so the last purge follows every process's drop: whatever the edge fetched
//! before it is gone, whatever it fetches after it is fresh.
//!
//! Nothing is lost: keys wait (merged, so a burst of writes to one product is one key) until
//! the edge answers 200; a queue grown past [`MAX_PENDING`] keys, or a subscription that
//! restarted and may have missed invalidations, becomes one purge of `catalog` (everything).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use projectors::redis::Invalidation;
use tokio::sync::Notify;

/// The key every answer carries: purging it empties the edge.
pub const EVERYTHING: &str = "catalog";

/// Pending keys beyond which one purge of everything is sent instead.
pub const MAX_PENDING: usize = 10_000;

/// Keys per PURGE request (the header stays well under Varnish's 8 KiB line limit).
const KEYS_PER_REQUEST: usize = 100;

/// The surrogate keys an invalidation names: the product's page, the listings of its scopes
/// and the bestseller lists, the category list.
pub fn invalidation_keys(invalidation: &Invalidation) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(id) = invalidation.product {
        keys.push(format!("product:{id}"));
    }
    if !invalidation.scopes.is_empty() {
        keys.extend(
            invalidation
                .scopes
                .iter()
                .map(|scope| format!("scope:{scope}")),
        );
        keys.push("bestsellers".to_owned());
    }
    if invalidation.categories {
        keys.push("categories".to_owned());
    }
    keys
}

/// Queues purges and sends them to the edges; see the module documentation.
pub struct EdgePurger {
    pending: Mutex<BTreeSet<String>>,
    wake: Notify,
}

impl std::fmt::Debug for EdgePurger {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("EdgePurger")
    }
}

impl EdgePurger {
    /// A purger of `edges` (base URLs such as `http://127.0.0.1:6081`), its task started.
    pub fn start(edges: Vec<String>) -> Arc<Self> {
        let purger = Arc::new(EdgePurger::idle());
        tokio::spawn(send_purges(purger.clone(), edges));
        purger
    }

    /// A purger whose queue nothing sends yet.
    fn idle() -> Self {
        EdgePurger {
            pending: Mutex::new(BTreeSet::new()),
            wake: Notify::new(),
        }
    }

    /// Queues `keys` for purging.
    pub fn purge<I: IntoIterator<Item = String>>(&self, keys: I) {
        {
            let mut pending = self.lock();
            if !pending.contains(EVERYTHING) {
                pending.extend(keys);
                if pending.len() > MAX_PENDING {
                    pending.clear();
                    pending.insert(EVERYTHING.to_owned());
                }
            }
        }
        self.wake.notify_one();
    }

    /// Queues what `invalidation` changed.
    pub fn purge_changed(&self, invalidation: &Invalidation) {
        let keys = invalidation_keys(invalidation);
        if !keys.is_empty() {
            self.purge(keys);
        }
    }

    /// Queues a purge of everything.
    pub fn purge_everything(&self) {
        self.purge([EVERYTHING.to_owned()]);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lock()).into_iter().collect()
    }
}

/// The purger's task, for the life of the process.
async fn send_purges(purger: Arc<EdgePurger>, edges: Vec<String>) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the edge purge client; no purges are sent");
            return;
        }
    };
    let method = reqwest::Method::from_bytes(b"PURGE").unwrap_or(reqwest::Method::DELETE);
    let mut backoff = Duration::from_millis(100);
    loop {
        let notified = purger.wake.notified();
        let keys = purger.take();
        if keys.is_empty() {
            notified.await;
            continue;
        }
        let mut failed = false;
        for chunk in keys.chunks(KEYS_PER_REQUEST) {
            let header = chunk.join(" ");
            for edge in &edges {
                let answer = client
                    .request(method.clone(), format!("{}/", edge.trim_end_matches('/')))
                    .header("xkey-purge", &header)
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status().is_success() => {
                        metrics::counter!("catalog_edge_purges_total").increment(1);
                    }
                    Ok(response) => {
                        tracing::warn!(edge, status = %response.status(), "the edge refused a purge; retrying");
                        failed = true;
                    }
                    Err(error) => {
                        tracing::warn!(edge, %error, "cannot purge the edge; retrying");
                        failed = true;
                    }
                }
            }
        }
        if failed {
            metrics::counter!("catalog_edge_purge_failures_total").increment(1);
            // Again, to every edge (a purge twice is harmless), merged with what came since.
            purger.purge(keys);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        } else {
            backoff = Duration::from_millis(100);
        }
    }
}

#[cfg(test)]
mod tests {
    use projectors::redis::Invalidation;
    use uuid::Uuid;

    use super::{invalidation_keys, EdgePurger, EVERYTHING, MAX_PENDING};

    #[test]
    fn an_invalidation_names_the_product_its_scopes_the_bestsellers_and_the_category_list() {
        let id = Uuid::nil();
        let keys = invalidation_keys(&Invalidation {
            position: 7,
            product: Some(id),
            scopes: vec!["all".into(), "kitchen".into()],
            categories: true,
            traceparent: None,
        });
        assert_eq!(
            keys,
            [
                format!("product:{id}"),
                "scope:all".into(),
                "scope:kitchen".into(),
                "bestsellers".into(),
                "categories".into()
            ]
        );
        let checkpoint_only = Invalidation {
            position: 8,
            product: None,
            scopes: Vec::new(),
            categories: false,
            traceparent: None,
        };
        assert!(invalidation_keys(&checkpoint_only).is_empty());
    }

    #[test]
    fn pending_keys_merge_and_too_many_become_one_purge_of_everything() {
        let purger = EdgePurger::idle();
        purger.purge(["product:a".to_owned(), "product:a".to_owned()]);
        assert_eq!(purger.take(), ["product:a"]);
        purger.purge((0..=MAX_PENDING).map(|n| format!("product:{n}")));
        assert_eq!(purger.take(), [EVERYTHING]);
        purger.purge_everything();
        purger.purge(["product:b".to_owned()]);
        assert_eq!(purger.take(), [EVERYTHING]);
    }
}
