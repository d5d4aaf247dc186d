//! Slack's side of outbound media: the three-step external upload. For each file
//! `files.getUploadURLExternal` (its name and length) hands out a pre-signed URL and a file
//! id; the bytes go there, streamed from disk, with no token (the URL is on another host);
//! then one `files.completeUploadExternal` shares all the files in the channel as one
//! message, the text as its `initial_comment`, in the thread if one is given.
//!
//! Nothing is visible in the channel before the last step, so a failure in the first two
//! is reported as [`ApiError::Connect`]: the whole upload may be tried again without posting
//! twice. The last step is a send like `chat.postMessage`: not retried once it may have
//! arrived.

use std::time::Duration;

use serde_json::{Value, json};

use super::api::{ApiError, WebApi};
use crate::channels::fields::Fields;
use crate::channels::media::multipart::Multipart;
use crate::channels::media::outgoing::OutFile;

/// Slack's upload limit: 1 GB per file.
pub const UPLOAD_LIMIT: u64 = 1024 * 1024 * 1024;

/// One upload: where it goes and what it carries.
pub struct Upload<'a> {
    pub channel: &'a str,
    pub files: &'a [OutFile],
    pub comment: Option<&'a str>,
    pub thread_ts: Option<&'a str>,
}

impl WebApi {
    /// Upload and share `up`'s files; the `files.completeUploadExternal` answer.
    pub fn upload_files(&self, token: &str, up: &Upload<'_>, timeout: Duration) -> Result<Value, ApiError> {
        let short = Duration::from_secs(15).min(timeout);
        let mut shared = Vec::with_capacity(up.files.len());
        for file in up.files {
            let len = file.len().to_string();
            let slot = self
                .call_form(
                    "files.getUploadURLExternal",
                    token,
                    &[("filename", &file.name), ("length", &len)],
                    short,
                )
                .map_err(not_shared)?;
            let f = Fields::new("files.getUploadURLExternal answer", &slot);
            let url = f.str("upload_url").map_err(ApiError::Incomplete)?.to_owned();
            let id = f.str("file_id").map_err(ApiError::Incomplete)?.to_owned();
            let mut form = Multipart::new();
            file.add_to(&mut form, "file");
            self.post_bytes(&url, form, timeout).map_err(not_shared)?;
            shared.push(json!({"id": id, "title": file.name}));
        }
        let mut body = json!({"files": shared, "channel_id": up.channel});
        if let Some(c) = up.comment {
            body["initial_comment"] = json!(c);
        }
        if let Some(ts) = up.thread_ts {
            body["thread_ts"] = json!(ts);
        }
        self.call("files.completeUploadExternal", token, &body, short)
    }
}

/// Before the files are shared nothing is visible: any failure may be retried, except the
/// ones retrying cannot fix (a refused token, a bad request) and a rate limit (which waits).
fn not_shared(e: ApiError) -> ApiError {
    match e {
        ApiError::Network(t) | ApiError::Server(t) | ApiError::Other(t) => {
            ApiError::Connect(format!("{t} (the upload had not been shared yet)"))
        }
        other => other,
    }
}

/// The `ts` of the message that shares the files, when Slack already reports it (in
/// `files[0].shares.public|private.<channel>[0].ts`; it may come later, asynchronously).
pub fn share_ts(answer: &Value, channel: &str) -> Option<String> {
    let shares = answer.get("files")?.get(0)?.get("shares")?;
    ["public", "private"]
        .iter()
        .find_map(|scope| shares.get(scope)?.get(channel)?.get(0)?.get("ts")?.as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_share_ts_is_read_where_slack_puts_it() {
        let a = json!({"ok": true, "files": [{"id": "F1", "shares": {"private": {"D1": [{"ts": "9.1"}]}}}]});
        assert_eq!(share_ts(&a, "D1").as_deref(), Some("9.1"));
        assert_eq!(share_ts(&a, "C1"), None);
        assert_eq!(
            share_ts(&json!({"ok": true, "files": [{"id": "F1"}]}), "D1"),
            None
        );
    }

    #[test]
    fn only_failures_before_the_share_become_retryable() {
        assert!(matches!(
            not_shared(ApiError::Network("x".into())),
            ApiError::Connect(_)
        ));
        assert!(matches!(
            not_shared(ApiError::Server("x".into())),
            ApiError::Connect(_)
        ));
        assert!(matches!(
            not_shared(ApiError::Unauthorized("x".into())),
            ApiError::Unauthorized(_)
        ));
    }
}
