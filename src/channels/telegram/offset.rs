//! The persisted `getUpdates` offset: the next update id to ask for.
//!
//! It is written (atomically: temp file, fsync, rename) only after the updates below it are
//! in the spool, so a crash can lose at most the offset write, never a message; the spool's
//! per-source high-water mark then keeps the re-fetched updates from being delivered twice.
//! On start the offset is the larger of this file and the spool's high-water mark + 1.
//!
//! The file names the bot it belongs to (`{"bot":ID,"offset":N}`): update ids are per bot,
//! so after the token is changed to another bot, neither this offset nor the old bot's
//! high-water mark may be applied to the new bot's updates (they would skip its messages).

use std::io;
use std::path::{Path, PathBuf};

pub struct OffsetFile {
    path: PathBuf,
}

impl OffsetFile {
    pub fn new(state_dir: &Path) -> OffsetFile {
        OffsetFile {
            path: state_dir.join("telegram.offset"),
        }
    }

    /// The stored `(bot id, offset)`; a missing or unreadable file means none (logged when
    /// unreadable).
    pub fn load(&self) -> Option<(i64, i64)> {
        #[derive(serde::Deserialize)]
        struct Stored {
            bot: i64,
            offset: i64,
        }
        match crate::statefs::read(&self.path) {
            Ok(Some(text)) => match serde_json::from_slice::<Stored>(&text) {
                Ok(v) => Some((v.bot, v.offset)),
                Err(_) => {
                    log::warn!("ignoring {}: not an update offset", self.path.display());
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                log::warn!("cannot read the Telegram offset: {e}");
                None
            }
        }
    }

    pub fn store(&self, bot: i64, offset: i64) -> io::Result<()> {
        let text = format!("{{\"bot\":{bot},\"offset\":{offset}}}\n");
        crate::statefs::write_atomic(&self.path, text.as_bytes(), crate::statefs::FILE_MODE)
    }
}

/// The spool source (and high-water key) for one bot's updates.
pub fn spool_source(bot: i64) -> String {
    format!("telegram/{bot}")
}

/// The offset to start from: past everything already spooled, and past the stored offset.
pub fn starting_offset(stored: Option<i64>, high_water: Option<u64>) -> Option<i64> {
    let from_spool = high_water.and_then(|h| i64::try_from(h).ok()).map(|h| h + 1);
    match (stored, from_spool) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offset_takes_the_larger_source() {
        assert_eq!(starting_offset(None, None), None);
        assert_eq!(starting_offset(Some(10), None), Some(10));
        assert_eq!(starting_offset(None, Some(41)), Some(42));
        // Crash after spooling update 50 but before storing offset 51.
        assert_eq!(starting_offset(Some(45), Some(50)), Some(51));
        assert_eq!(starting_offset(Some(60), Some(50)), Some(60));
    }

    #[test]
    fn store_and_load_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let f = OffsetFile::new(dir.path());
        assert_eq!(f.load(), None);
        f.store(42, 123_456_789_012).unwrap();
        assert_eq!(f.load(), Some((42, 123_456_789_012)));
        std::fs::write(dir.path().join("telegram.offset"), "garbage").unwrap();
        assert_eq!(f.load(), None);
    }
}
