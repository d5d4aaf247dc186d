//! The media cache: `<state>/media/`, where `channels.fetch` downloads land and are served
//! from afterwards, bounded by a byte budget (`media.cacheMaxBytes`), least recently fetched
//! evicted first, and surviving restarts.
//!
//! Layout: the dir is 0700; each attachment is two files, 0600, named by the sha256 of its
//! id (ids are long and hold URLs; the hash is fixed-length and filename-safe):
//! `<key>` holds the bytes, `<key>.json` what a hit returns besides the path (`name`, `mime`,
//! `size`, `sha256`). "Least recently fetched" is each data file's mtime, set on every hit.
//!
//! Why mtimes and not a persisted index of fetch times: a hit then costs one `futimens`
//! instead of an atomic rewrite (write, fsync, rename, fsync) of an index that grows with the
//! cache, and there is no second copy of the truth to get out of step with the files. The
//! sidecar is written once per download, after the data is in place, so a crash leaves at
//! worst data without a sidecar, which [`MediaCache::open`] removes (as it removes temp
//! files and sidecars whose data is missing or of the wrong size).
//!
//! A file larger than the whole budget is still kept until the next download: the fetch
//! that asked for it gets its path. A path handed out earlier may be evicted later; clients
//! read or copy a fetched file promptly (the man page says so).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::download::download_to;
use super::error::MediaError;
use super::hash::sha256_hex;

/// What a fetch answers: `{"path","name","mime","size","sha256"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CachedFile {
    pub path: String,
    pub name: Option<String>,
    pub mime: Option<String>,
    pub size: u64,
    pub sha256: String,
}

/// The sidecar `<key>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Meta {
    name: Option<String>,
    mime: Option<String>,
    size: u64,
    sha256: String,
}

struct Entry {
    meta: Meta,
    last_fetched: SystemTime,
}

#[derive(Default)]
struct Index {
    entries: HashMap<String, Entry>,
    total: u64,
}

/// The cache, shared (behind an `Arc`) by the router, which answers hits, and the download
/// threads, which store misses.
pub struct MediaCache {
    dir: PathBuf,
    budget: u64,
    index: Mutex<Index>,
}

impl MediaCache {
    /// Open (creating it 0700) the cache in `dir` with a budget of `budget` bytes: clean up
    /// what a crash left, rebuild the index from the files, evict down to the budget.
    pub fn open(dir: &Path, budget: u64) -> std::io::Result<MediaCache> {
        crate::statefs::ensure_dir(dir)?;
        let mut data: HashMap<String, (u64, SystemTime)> = HashMap::new();
        let mut sidecars: Vec<String> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp.") {
                let _ = fs::remove_file(entry.path());
            } else if let Some(key) = name.strip_suffix(".json").filter(|k| is_key(k)) {
                sidecars.push(key.to_owned());
            } else if is_key(&name) {
                let m = entry.metadata()?;
                if m.is_file() {
                    data.insert(name, (m.len(), m.modified()?));
                }
            }
        }
        let mut index = Index::default();
        for key in sidecars {
            let meta: Option<Meta> = fs::read(dir.join(format!("{key}.json")))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match (meta, data.remove(&key)) {
                (Some(meta), Some((len, mtime))) if meta.size == len => {
                    index.total += len;
                    index.entries.insert(
                        key,
                        Entry {
                            meta,
                            last_fetched: mtime,
                        },
                    );
                }
                _ => remove_files(dir, &key),
            }
        }
        for key in data.into_keys() {
            remove_files(dir, &key);
        }
        let cache = MediaCache {
            dir: dir.to_owned(),
            budget,
            index: Mutex::new(index),
        };
        cache.evict(None);
        Ok(cache)
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes held now.
    pub fn total_bytes(&self) -> u64 {
        self.lock().total
    }

    /// The cached file for attachment `id`, marking it as just fetched; `None` on a miss
    /// (including a file someone removed behind the cache's back).
    pub fn get(&self, id: &str) -> Option<CachedFile> {
        let key = sha256_hex(id.as_bytes());
        let mut index = self.lock();
        let path = self.dir.join(&key);
        let entry = index.entries.get(&key)?;
        let now = SystemTime::now();
        let intact = File::open(&path)
            .and_then(|f| {
                let len = f.metadata()?.len();
                f.set_modified(now)?;
                Ok(len)
            })
            .is_ok_and(|len| len == entry.meta.size);
        if !intact {
            let size = entry.meta.size;
            index.entries.remove(&key);
            index.total -= size;
            drop(index);
            remove_files(&self.dir, &key);
            return None;
        }
        let entry = index.entries.get_mut(&key)?;
        entry.last_fetched = now;
        Some(answer(&path, &entry.meta))
    }

    /// Download `body` as attachment `id` (see [`download_to`] for the limits and errors),
    /// record it, and evict older files beyond the budget.
    pub fn store(
        &self,
        id: &str,
        name: Option<String>,
        mime: Option<String>,
        body: &mut dyn Read,
        max_bytes: u64,
        expected: Option<u64>,
    ) -> Result<CachedFile, MediaError> {
        let key = sha256_hex(id.as_bytes());
        let stored = download_to(&self.dir, &key, body, max_bytes, expected)?;
        let meta = Meta {
            name,
            mime,
            size: stored.size,
            sha256: stored.sha256,
        };
        let sidecar = self.dir.join(format!("{key}.json"));
        let json = serde_json::to_vec(&meta).map_err(|e| MediaError::Io(e.to_string()))?;
        if let Err(e) = crate::statefs::write_atomic(&sidecar, &json, crate::statefs::FILE_MODE) {
            let _ = fs::remove_file(&stored.path);
            return Err(MediaError::Io(format!("cannot write {}: {e}", sidecar.display())));
        }
        let file = answer(&stored.path, &meta);
        {
            let mut index = self.lock();
            if let Some(old) = index.entries.remove(&key) {
                index.total -= old.meta.size;
            }
            index.total += meta.size;
            let entry = Entry {
                meta,
                last_fetched: SystemTime::now(),
            };
            index.entries.insert(key.clone(), entry);
        }
        self.evict(Some(&key));
        Ok(file)
    }

    /// Remove least recently fetched files until the total fits the budget, never `keep`.
    fn evict(&self, keep: Option<&str>) {
        let mut index = self.lock();
        if index.total <= self.budget {
            return;
        }
        let mut by_age: Vec<(SystemTime, String)> = index
            .entries
            .iter()
            .filter(|(k, _)| Some(k.as_str()) != keep)
            .map(|(k, e)| (e.last_fetched, k.clone()))
            .collect();
        by_age.sort();
        for (_, key) in by_age {
            if index.total <= self.budget {
                break;
            }
            if let Some(e) = index.entries.remove(&key) {
                index.total -= e.meta.size;
                remove_files(&self.dir, &key);
                log::debug!("media cache: evicted {} bytes ({key})", e.meta.size);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        // A panic aborts the process (src/lifecycle/crash.rs), so a poisoned lock cannot be
        // observed; take the data regardless rather than add a failure path.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn answer(path: &Path, meta: &Meta) -> CachedFile {
    CachedFile {
        path: path.to_string_lossy().into_owned(),
        name: meta.name.clone(),
        mime: meta.mime.clone(),
        size: meta.size,
        sha256: meta.sha256.clone(),
    }
}

/// A cache key: 64 lowercase hex digits.
fn is_key(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn remove_files(dir: &Path, key: &str) {
    let _ = fs::remove_file(dir.join(key));
    let _ = fs::remove_file(dir.join(format!("{key}.json")));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn put(cache: &MediaCache, id: &str, bytes: &[u8]) -> CachedFile {
        cache
            .store(
                id,
                Some(format!("{id}.bin")),
                Some("application/octet-stream".into()),
                &mut &bytes[..],
                1 << 20,
                Some(bytes.len() as u64),
            )
            .unwrap()
    }

    /// Make `id`'s file look fetched `secs` seconds ago (mtime resolution varies by file
    /// system; explicit times keep the order unambiguous).
    fn age(cache: &MediaCache, id: &str, secs: u64) {
        let key = sha256_hex(id.as_bytes());
        let t = SystemTime::now() - Duration::from_secs(secs);
        File::open(cache.dir().join(&key))
            .unwrap()
            .set_modified(t)
            .unwrap();
        cache.lock().entries.get_mut(&key).unwrap().last_fetched = t;
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn miss_store_hit() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("media");
        let cache = MediaCache::open(&dir, 1000).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert!(cache.get("a").is_none());
        let stored = put(&cache, "a", b"hello");
        assert_eq!(stored.size, 5);
        assert_eq!(stored.sha256, sha256_hex(b"hello"));
        assert_eq!(stored.name.as_deref(), Some("a.bin"));
        assert_eq!(fs::read(&stored.path).unwrap(), b"hello");
        assert_eq!(mode(Path::new(&stored.path)), 0o600);
        assert_eq!(mode(&PathBuf::from(format!("{}.json", stored.path))), 0o600);
        assert_eq!(cache.get("a"), Some(stored));
        assert_eq!(cache.total_bytes(), 5);
        let json = serde_json::to_value(cache.get("a").unwrap()).unwrap();
        let mut keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["mime", "name", "path", "sha256", "size"]);
    }

    #[test]
    fn least_recently_fetched_goes_first() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = MediaCache::open(tmp.path(), 300).unwrap();
        put(&cache, "a", &[1; 100]);
        put(&cache, "b", &[2; 100]);
        put(&cache, "c", &[3; 100]);
        age(&cache, "a", 30);
        age(&cache, "b", 20);
        age(&cache, "c", 10);
        // Fetching "a" makes it the most recent; "b" is now the oldest.
        assert!(cache.get("a").is_some());
        put(&cache, "d", &[4; 100]);
        assert!(cache.get("b").is_none(), "b should have been evicted");
        assert!(cache.get("a").is_some() && cache.get("c").is_some() && cache.get("d").is_some());
        assert_eq!(cache.total_bytes(), 300);
        // The evicted files are gone from disk, sidecar included.
        let key = sha256_hex(b"b");
        assert!(!tmp.path().join(&key).exists());
        assert!(!tmp.path().join(format!("{key}.json")).exists());
    }

    #[test]
    fn a_file_larger_than_the_budget_is_kept_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = MediaCache::open(tmp.path(), 100).unwrap();
        put(&cache, "small", &[1; 50]);
        let big = put(&cache, "big", &[2; 500]);
        assert!(cache.get("small").is_none());
        assert_eq!(cache.get("big"), Some(big));
        assert_eq!(cache.total_bytes(), 500);
        // The next download makes room.
        put(&cache, "next", &[3; 10]);
        assert!(cache.get("big").is_none());
        assert_eq!(cache.total_bytes(), 10);
    }

    #[test]
    fn survives_a_restart_with_its_order() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let cache = MediaCache::open(tmp.path(), 1000).unwrap();
            put(&cache, "old", &[1; 100]);
            put(&cache, "new", &[2; 100]);
            age(&cache, "old", 60);
            age(&cache, "new", 30);
        }
        let cache = MediaCache::open(tmp.path(), 1000).unwrap();
        assert_eq!(cache.total_bytes(), 200);
        let hit = cache.get("new").unwrap();
        assert_eq!((hit.size, hit.name.as_deref()), (100, Some("new.bin")));
        drop(cache);
        // Reopened with a smaller budget: the least recently fetched goes.
        let cache = MediaCache::open(tmp.path(), 150).unwrap();
        assert!(cache.get("old").is_none());
        assert!(cache.get("new").is_some());
    }

    #[test]
    fn open_cleans_up_what_a_crash_left() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        {
            let cache = MediaCache::open(dir, 1000).unwrap();
            put(&cache, "whole", b"ok");
            put(&cache, "torn", b"full length");
            put(&cache, "orphan", b"no sidecar");
        }
        let k = |id: &str| sha256_hex(id.as_bytes());
        fs::write(dir.join(format!(".{}.tmp.1.1", k("partial"))), b"half").unwrap();
        fs::write(dir.join(k("torn")), b"short").unwrap();
        fs::remove_file(dir.join(format!("{}.json", k("orphan")))).unwrap();
        fs::write(dir.join(format!("{}.json", k("nodata"))), b"{}").unwrap();
        fs::write(dir.join("README"), b"not ours").unwrap();
        let cache = MediaCache::open(dir, 1000).unwrap();
        assert!(cache.get("whole").is_some());
        assert!(cache.get("torn").is_none());
        assert!(cache.get("orphan").is_none());
        assert_eq!(cache.total_bytes(), 2);
        let mut left: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![k("whole"), format!("{}.json", k("whole")), "README".to_owned()];
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn a_file_removed_behind_its_back_is_a_miss() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = MediaCache::open(tmp.path(), 1000).unwrap();
        let stored = put(&cache, "a", b"abc");
        fs::remove_file(&stored.path).unwrap();
        assert!(cache.get("a").is_none());
        assert_eq!(cache.total_bytes(), 0);
    }

    #[test]
    fn a_failed_store_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = MediaCache::open(tmp.path(), 1000).unwrap();
        let e = cache
            .store("a", None, None, &mut &[0u8; 20][..], 10, None)
            .unwrap_err();
        assert!(matches!(e, MediaError::TooLarge(_)), "{e:?}");
        assert!(cache.get("a").is_none());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
