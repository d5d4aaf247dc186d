//! `channels.fetch` on Discord: the attachment's CDN URL, downloaded by the shared
//! [`crate::channels::fetch::download`]. Signed CDN URLs expire; when the CDN answers
//! 403 or 404 the connector asks `POST /attachments/refresh-urls` for a fresh URL and tries
//! once more. The CDN gets no token (it needs none).

use std::time::Duration;

use super::api::RestApi;
use super::media::cdn_url;
use crate::channels::fetch::{self, FetchJob, Source};
use crate::channels::media::MediaError;
use crate::channels::media::cache::CachedFile;

/// Timeout of the refresh call.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(15);

/// Fetch `job` through `api`. Runs on a call thread.
pub fn fetch(api: &RestApi, job: &FetchJob) -> Result<CachedFile, MediaError> {
    let url = cdn_url(&job.attachment)?;
    match fetch::download(job, source(api, &url)) {
        Err(MediaError::Status {
            status: 403 | 404, ..
        }) => {
            log::debug!("discord: an attachment URL expired; asking for a fresh one");
            let fresh = api.refresh_url(&url, REFRESH_TIMEOUT).map_err(|e| {
                MediaError::Unavailable(format!(
                    "discord: the attachment URL expired and refreshing it failed: {e}; try again"
                ))
            })?;
            fetch::download(job, source(api, &fresh))
        }
        other => other,
    }
}

fn source(api: &RestApi, url: &str) -> Source {
    Source::named(api.cdn_request(url), url, None)
}
