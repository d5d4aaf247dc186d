//! `channels.fetch`, the part every connector shares (contract, "Media in").
//!
//! The router answers cache hits itself and hands a miss to the attachment's connector as a
//! [`FetchJob`], at most one per attachment at a time (concurrent fetches of one id wait for
//! that one download, see `router/fetches.rs`). The connector's own part is only to turn the
//! attachment's platform reference into a download ([`Source`]): Telegram asks `getFile`,
//! Discord refreshes an expired CDN URL, Slack adds its Bearer token. [`download`] then
//! streams the body into the [`MediaCache`] (temp file, size limit and sha256 while
//! streaming, renamed when complete) on the connector's call thread, never the router's.

use std::sync::Arc;
use std::time::Duration;

use ureq::typestate::WithoutBody;

use super::ConnectorContext;
use super::calls::Calls;
use super::http;
use super::media::MediaError;
use super::media::cache::{CachedFile, MediaCache};
use super::media::download::too_large;
use super::media::mime;

/// The budget of one download, connect to last byte: 20 MiB at a slow 100 KiB/s, with room.
/// A stop does not wait for it: the connector aborts its HTTP agent.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// One cache miss handed to a connector; answered with
/// [`super::ConnectorEvent::FetchDone`] carrying the same id.
#[derive(Clone)]
pub struct FetchJob {
    pub id: u64,
    /// The opaque attachment id from `channel.message`.
    pub attachment: String,
    pub cache: Arc<MediaCache>,
    /// `media.maxBytes`.
    pub max_bytes: u64,
}

impl std::fmt::Debug for FetchJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchJob")
            .field("id", &self.id)
            .field("attachment", &self.attachment)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// Where a connector found the bytes of an attachment.
pub struct Source {
    /// The GET to make (with whatever header the platform needs; redirects never carry an
    /// `Authorization` header, see [`http::download`]).
    pub request: ureq::RequestBuilder<WithoutBody>,
    pub name: Option<String>,
    pub mime: Option<String>,
    /// The size the platform reported before the download, if it did: a file known to be
    /// too large is refused without a request.
    pub size: Option<u64>,
}

impl Source {
    /// A download named by the last component of `path` (a platform file path, or a URL,
    /// whose query is ignored), with the mime type that name's extension implies.
    pub fn named(request: ureq::RequestBuilder<WithoutBody>, path: &str, size: Option<u64>) -> Source {
        let name = path
            .split(['?', '#'])
            .next()
            .and_then(|p| p.rsplit('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let mime = name.as_deref().and_then(mime::from_name).map(str::to_owned);
        Source {
            request,
            name,
            mime,
            size,
        }
    }
}

/// Download `source` into the job's cache and answer what `channels.fetch` returns.
pub fn download(job: &FetchJob, source: Source) -> Result<CachedFile, MediaError> {
    if let Some(size) = source.size.filter(|&s| s > job.max_bytes) {
        return Err(too_large(size, job.max_bytes));
    }
    let Source {
        request,
        name,
        mime,
        size: _,
    } = source;
    http::download(request, DOWNLOAD_TIMEOUT, |body, length| {
        job.cache
            .store(&job.attachment, name, mime, body, job.max_bytes, length)
    })
}

/// Run `fetch` for `job` on a call thread of `calls` (downloads are not paced like sends, and
/// a slow one must not hold up anything else); `wrap` makes its result the connector's call
/// result, which the connector hands to [`super::ConnectorContext::finish_fetch`]. A thread
/// that cannot start answers at once.
pub fn start<R: Send + 'static>(
    calls: &mut Calls<R>,
    ctx: &ConnectorContext,
    channel: &str,
    job: FetchJob,
    fetch: impl FnOnce(&FetchJob) -> Result<CachedFile, MediaError> + Send + 'static,
    wrap: fn(u64, Result<CachedFile, MediaError>) -> R,
) {
    let id = job.id;
    if let Err(e) = calls.start(move || wrap(job.id, fetch(&job))) {
        let e = MediaError::Unavailable(format!("{channel}: cannot start the download: {e}; try again"));
        ctx.finish_fetch(id, Err(e));
    }
}
