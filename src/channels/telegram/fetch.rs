//! `channels.fetch` on Telegram: `getFile` turns the attachment's `file_id` into a download
//! path (valid for about an hour, so asked for on every miss), whose bytes the shared
//! [`crate::channels::fetch::download`] streams into the media cache.

use std::time::Duration;

use super::api::{ApiError, BotApi};
use super::media::file_id;
use crate::channels::fetch::{self, FetchJob, Source};
use crate::channels::media::MediaError;
use crate::channels::media::cache::CachedFile;

/// Timeout of `getFile`.
const GET_FILE_TIMEOUT: Duration = Duration::from_secs(15);

/// Fetch `job` through `api`. Runs on a call thread.
pub fn fetch(api: &BotApi, job: &FetchJob) -> Result<CachedFile, MediaError> {
    let file_id = file_id(&job.attachment)?;
    let info = api
        .get_file(&file_id, GET_FILE_TIMEOUT)
        .map_err(|e| get_file_error(&e))?;
    // Telegram's paths look like `photos/file_12.jpg`: the last part is the best name there
    // is (the original name of a document is in the attachment's `name` already).
    let source = Source::named(api.file_request(&info.file_path), &info.file_path, info.file_size);
    fetch::download(job, source)
}

/// `getFile`'s refusals in the media vocabulary.
fn get_file_error(e: &ApiError) -> MediaError {
    match e {
        ApiError::BadRequest { description } => {
            let lower = description.to_ascii_lowercase();
            if lower.contains("too big") {
                MediaError::TooLarge(format!(
                    "telegram: {description}: the Bot API serves files up to 20 MB; a local Bot API \
                     server (channels.telegram.apiBaseUrl) serves larger ones"
                ))
            } else {
                // "wrong file_id or the file is temporarily unavailable", "file not found",
                // "invalid file_id": the id does not name a file this bot can get.
                MediaError::NotFound(format!("telegram: getFile refused the attachment: {description}"))
            }
        }
        ApiError::Unauthorized { .. } => {
            MediaError::Unavailable(format!("telegram: {e}; fix channels.telegram.botToken"))
        }
        _ => MediaError::Unavailable(format!("telegram: getFile failed: {e}; try again")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_file_refusals_map_to_fetch_errors() {
        let bad = |d: &str| ApiError::BadRequest {
            description: d.into(),
        };
        assert!(matches!(
            get_file_error(&bad("Bad Request: file is too big")),
            MediaError::TooLarge(_)
        ));
        assert!(matches!(
            get_file_error(&bad(
                "Bad Request: wrong file_id or the file is temporarily unavailable"
            )),
            MediaError::NotFound(_)
        ));
        let server = ApiError::Server {
            status: 502,
            description: "Bad Gateway".into(),
        };
        assert!(matches!(get_file_error(&server), MediaError::Unavailable(_)));
    }
}
