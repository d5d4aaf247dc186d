//! Media shared by every connector (contract, "Media in" and "Media out"), written once:
//!
//! - [`attachment`]: the inbound `Attachment` and `AttachmentKind` of `channel.message`.
//! - [`id`]: the opaque attachment id, "channel + platform reference" and back.
//! - [`request`]: the outbound `attachments` of `channels.send`, validated, defaults filled.
//! - [`mime`]: mime types from file names; the default `kind` of an outbound attachment.
//! - [`send_dirs`]: the `media.sendDirs` policy, the one gate for files a client names.
//! - [`outgoing`]: outbound attachments opened and ready to upload, the upload limit check.
//! - [`download`]: stream a body to a file through a temp file, size-limited and hashed.
//! - [`cache`]: `<state>/media/`, bounded, least recently fetched evicted first.
//! - [`multipart`]: a streaming `multipart/form-data` body for uploads.
//! - [`hash`]: sha256 while bytes pass.
//! - [`error`]: the media error and its protocol codes.
//!
//! The HTTP side (a streamed download into [`cache`], a multipart POST) is in
//! [`crate::channels::http`], with the rest of the shared ureq plumbing. Each connector only
//! translates between its platform's shapes and these.

pub mod attachment;
pub mod cache;
pub mod download;
pub mod error;
pub mod hash;
pub mod id;
pub mod mime;
pub mod multipart;
pub mod outgoing;
pub mod request;
pub mod send_dirs;

pub use attachment::{Attachment, AttachmentKind};
pub use error::MediaError;

/// The config key of the per-file download limit, as errors name it.
pub const MAX_BYTES_KEY: &str = "media.maxBytes";
