//! `channels.fetch` on Slack: the file's private URL with the bot token as a Bearer header,
//! downloaded by the shared [`crate::channels::fetch::download`] (which never sends that
//! header on to another host after a redirect).

use super::api::WebApi;
use super::media::file_url;
use crate::channels::fetch::{self, FetchJob, Source};
use crate::channels::media::MediaError;
use crate::channels::media::cache::CachedFile;

/// Fetch `job` through `api` with the bot `token`. Runs on a call thread.
pub fn fetch(api: &WebApi, token: &str, job: &FetchJob) -> Result<CachedFile, MediaError> {
    let url = file_url(&job.attachment)?;
    let source = Source::named(api.file_request(&url, token), &url, None);
    fetch::download(job, source).map_err(|e| match e {
        // Slack answers a token without files:read with a redirect to a login page or 403.
        MediaError::Status {
            status: 401 | 403, ..
        } => MediaError::Unavailable(
            "slack: the file download was refused; the bot token needs the files:read scope".into(),
        ),
        other => other,
    })
}
