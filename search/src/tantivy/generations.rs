//! Blue/green generations of the embedded search index (see `projectors::generations`):
//! generation 1 lives in the index directory itself (`search-index`), generation N > 1 in a
//! sibling `search-index-gN`, and a sibling file `search-index.generation` names the live one.
//! A rebuild writes the next directory with its own writer while searches read the live one;
//! the switch waits until the new index committed everything it was given, writes the pointer
//! file (a rename: all or nothing across a crash), and swaps the index searches read. The old
//! directory goes after the grace period, or at the next start if the process stopped first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use projectors::read_model::ProductView;
use uuid::Uuid;

use super::reader::unavailable;
use super::TantivyIndex;
use crate::{
    Live, SearchError, SearchGenerations, SearchIndex, SearchQuery, SearchResults, SearchWriter,
    SuggestQuery, Suggestions, Synonyms,
};

/// The version of the search index this code builds (raise it when a change of the
/// projection needs the index rebuilt beside the old one).
pub const SEARCH_VIEW_VERSION: u64 = 1;

/// How long the switch waits for the new index to commit what it was given.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// The embedded search index with generations; searches and writes go to the live one.
pub struct TantivyGenerations {
    base: PathBuf,
    live: RwLock<(Live, Arc<TantivyIndex>)>,
    next: Mutex<Option<Arc<TantivyIndex>>>,
    previous: Mutex<Option<(u64, Arc<TantivyIndex>)>>,
}

fn pointer_file(base: &Path) -> PathBuf {
    let mut name = base.file_name().unwrap_or_default().to_os_string();
    name.push(".generation");
    base.with_file_name(name)
}

fn directory(base: &Path, generation: u64) -> PathBuf {
    if generation <= 1 {
        return base.to_path_buf();
    }
    let mut name = base.file_name().unwrap_or_default().to_os_string();
    name.push(format!("-g{generation}"));
    base.with_file_name(name)
}

/// The generation a directory beside `base` holds, if it is one of `base`'s.
fn generation_of(base: &Path, path: &Path) -> Option<u64> {
    let base_name = base.file_name()?.to_str()?;
    let name = path.file_name()?.to_str()?;
    if name == base_name {
        return Some(1);
    }
    name.strip_prefix(base_name)?
        .strip_prefix("-g")?
        .parse()
        .ok()
}

fn read_pointer(base: &Path) -> Result<Live, SearchError> {
    let text = match std::fs::read_to_string(pointer_file(base)) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Live {
                generation: 1,
                version: 1,
            })
        }
        Err(error) => return Err(unavailable(error)),
    };
    let mut numbers = text.split_whitespace().map(str::parse::<u64>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(generation)), Some(Ok(version))) if generation >= 1 => Ok(Live {
            generation,
            version,
        }),
        _ => Err(SearchError::Unavailable(format!(
            "{} is not \"<generation> <version>\"; delete it and the index directories to \
             rebuild the index",
            pointer_file(base).display()
        ))),
    }
}

fn write_pointer(base: &Path, live: Live) -> Result<(), SearchError> {
    let target = pointer_file(base);
    let temporary = target.with_extension("generation.tmp");
    let text = format!("{} {}\n", live.generation, live.version);
    std::fs::write(&temporary, text).map_err(unavailable)?;
    std::fs::File::open(&temporary)
        .and_then(|file| file.sync_all())
        .map_err(unavailable)?;
    std::fs::rename(&temporary, &target).map_err(unavailable)
}

/// Removes the directories of `base`'s generations other than `keep` (left by a rebuild that
/// stopped, or a grace period a restart cut short).
fn remove_others(base: &Path, keep: u64) -> Result<(), SearchError> {
    let Some(parent) = base.parent().filter(|parent| parent.exists()) else {
        return Ok(());
    };
    for entry in std::fs::read_dir(parent).map_err(unavailable)? {
        let path = entry.map_err(unavailable)?.path();
        if path.is_dir() && generation_of(base, &path).is_some_and(|g| g != keep) {
            tracing::info!(directory = %path.display(), "removing a search index generation that is not live");
            std::fs::remove_dir_all(&path).map_err(unavailable)?;
        }
    }
    Ok(())
}

impl TantivyGenerations {
    /// Opens the live generation of the index based at `base` (creating generation 1 when
    /// there is none).
    pub fn open(base: &Path) -> Result<Arc<Self>, SearchError> {
        let live = read_pointer(base)?;
        remove_others(base, live.generation)?;
        let index = TantivyIndex::open(&directory(base, live.generation))?;
        Ok(Arc::new(TantivyGenerations {
            base: base.to_path_buf(),
            live: RwLock::new((live, index)),
            next: Mutex::new(None),
            previous: Mutex::new(None),
        }))
    }

    fn index(&self) -> Arc<TantivyIndex> {
        self.live.read().1.clone()
    }

    /// Documents in the live generation (all statuses).
    pub fn document_count(&self) -> u64 {
        self.index().document_count()
    }
}

#[async_trait]
impl SearchGenerations for TantivyGenerations {
    fn version(&self) -> u64 {
        SEARCH_VIEW_VERSION
    }

    async fn live(&self) -> Result<Live, SearchError> {
        Ok(self.live.read().0)
    }

    async fn prepare(&self) -> Result<Arc<dyn SearchWriter>, SearchError> {
        let generation = self.live.read().0.generation + 1;
        let path = directory(&self.base, generation);
        // Whatever an interrupted rebuild left there.
        self.next.lock().take();
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(unavailable)?;
        }
        let index = TantivyIndex::open(&path)?;
        *self.next.lock() = Some(index.clone());
        Ok(index)
    }

    async fn switch(&self) -> Result<u64, SearchError> {
        let next = self
            .next
            .lock()
            .take()
            .ok_or_else(|| SearchError::Unexpected("no generation was prepared".into()))?;
        if !next.flushed(FLUSH_TIMEOUT).await {
            *self.next.lock() = Some(next);
            return Err(SearchError::Unavailable(
                "the rebuilt search index did not commit within 30 s".into(),
            ));
        }
        let live = Live {
            generation: self.live.read().0.generation + 1,
            version: SEARCH_VIEW_VERSION,
        };
        write_pointer(&self.base, live)?;
        let (old, index) = std::mem::replace(&mut *self.live.write(), (live, next));
        *self.previous.lock() = Some((old.generation, index));
        Ok(live.generation)
    }

    async fn drop_previous(&self) -> Result<(), SearchError> {
        let Some((generation, index)) = self.previous.lock().take() else {
            return Ok(());
        };
        drop(index);
        let path = directory(&self.base, generation);
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(unavailable)?;
        }
        Ok(())
    }
}

#[async_trait]
impl SearchIndex for TantivyGenerations {
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults, SearchError> {
        self.index().search(query).await
    }

    async fn suggest(&self, query: &SuggestQuery) -> Result<Suggestions, SearchError> {
        self.index().suggest(query).await
    }

    async fn synonyms(&self) -> Result<Synonyms, SearchError> {
        self.index().synonyms().await
    }

    fn position(&self) -> u64 {
        self.index().position()
    }

    /// Waits on the live generation, looking again every 100 ms: after a switch the previous
    /// one no longer moves, and the new one is at or past it.
    async fn wait_for(&self, position: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let slice = left.min(Duration::from_millis(100));
            if self.index().wait_for(position, slice).await {
                return true;
            }
            if left <= slice {
                return false;
            }
        }
    }
}

#[async_trait]
impl SearchWriter for TantivyGenerations {
    async fn current(&self, id: Uuid) -> Result<Option<ProductView>, SearchError> {
        self.index().current(id).await
    }

    async fn put(&self, product: ProductView, checkpoint: u64) -> Result<(), SearchError> {
        self.index().put(product, checkpoint).await
    }

    async fn advance(&self, checkpoint: u64) -> Result<(), SearchError> {
        self.index().advance(checkpoint).await
    }

    async fn set_synonyms(&self, synonyms: Synonyms, checkpoint: u64) -> Result<(), SearchError> {
        self.index().set_synonyms(synonyms, checkpoint).await
    }

    async fn checkpoint(&self) -> Result<u64, SearchError> {
        self.index().checkpoint().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_live_beside_the_base_directory() {
        let base = Path::new("/data/search-index");
        assert_eq!(directory(base, 1), base);
        assert_eq!(directory(base, 3), Path::new("/data/search-index-g3"));
        assert_eq!(
            pointer_file(base),
            Path::new("/data/search-index.generation")
        );
        assert_eq!(generation_of(base, base), Some(1));
        assert_eq!(generation_of(base, &directory(base, 12)), Some(12));
        assert_eq!(
            generation_of(base, Path::new("/data/search-index-old")),
            None
        );
        assert_eq!(generation_of(base, Path::new("/data/other")), None);
    }
}
