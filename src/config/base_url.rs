//! `channels.NAME.apiBaseUrl`: a URL every request of the connector is built on.
//!
//! Checked with `http::Uri`, the parser ureq itself uses, so a URL that check-config
//! accepts is one the HTTP client can send to; then the parts that parser lets through
//! but that can never work here: another scheme, an empty host, a port outside 1..=65535,
//! and a query or fragment (the connector appends `/method` paths, which would land
//! inside them).

/// Why `s` cannot be an API base URL, in words for the user; `Ok` with one trailing `/`
/// dropped so that joined URLs stay free of `//`.
pub(super) fn check(s: &str) -> Result<String, String> {
    let uri: http::Uri = s
        .parse()
        .map_err(|e| format!("is not a valid URL ({e}); write it as https://host[:port][/path]"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
                "has the scheme {other:?}; only http:// and https:// work"
            ));
        }
        None => return Err("has no scheme; write it as https://host[:port][/path]".to_string()),
    }
    let Some(authority) = uri.authority() else {
        return Err("has no host; write it as https://host[:port][/path]".to_string());
    };
    if authority.host().is_empty() {
        return Err("has no host; write it as https://host[:port][/path]".to_string());
    }
    if authority.as_str().contains('@') {
        return Err("carries a user name or password; remove the part before @".to_string());
    }
    // `Authority::port` is `None` for a port that does not fit in u16, so read it here.
    let after_host = authority.as_str().rsplit(']').next().unwrap_or_default();
    if let Some((_, port)) = after_host.rsplit_once(':') {
        if !port.is_empty() && !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
            return Err(format!("has the port {port}; a port is 1 to 65535"));
        }
    }
    if uri.query().is_some() || s.contains('#') {
        return Err("has a query or fragment; the connector appends /method paths to it".to_string());
    }
    Ok(s.strip_suffix('/').unwrap_or(s).to_string())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepted() {
        for (s, want) in [
            ("https://api.telegram.org", "https://api.telegram.org"),
            ("http://127.0.0.1:8081/", "http://127.0.0.1:8081"),
            ("http://[::1]:8080/api", "http://[::1]:8080/api"),
            ("https://s.test/api//", "https://s.test/api/"),
            ("https://discord.com/api/v10", "https://discord.com/api/v10"),
        ] {
            assert_eq!(check(s).as_deref(), Ok(want), "{s}");
        }
    }

    #[test]
    fn refused_with_the_reason() {
        for (s, reason) in [
            ("http://[::1", "is not a valid URL"),
            ("http://x:99999", "the port 99999"),
            ("http://x:0/", "the port 0"),
            ("http://:80/", "no host"),
            ("http://", "is not a valid URL"),
            ("https:///x", "is not a valid URL"),
            ("ftp://x", "the scheme \"ftp\""),
            ("api.telegram.org", "no scheme"),
            ("/bot", "no scheme"),
            ("http://a b", "is not a valid URL"),
            ("http://u:p@x/", "user name or password"),
            ("http://x/?a=1", "query or fragment"),
            ("http://x/#f", "query or fragment"),
        ] {
            let e = check(s).expect_err(s);
            assert!(e.contains(reason), "{s}: {e}");
        }
    }
}
