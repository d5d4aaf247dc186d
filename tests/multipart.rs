//! The fakes' multipart parser (`tests/support/multipart.rs`) against a hand-written body,
//! against bodies the gateway's streaming writer (`emonk::channels::media::multipart`)
//! produces, and against malformed bodies it must refuse.

mod support;

use std::io::{Read, Seek, Write};

use emonk::channels::media::multipart::Multipart;
use support::multipart::{boundary, parse, sha256_hex};

fn produce(form: Multipart) -> (String, Vec<u8>) {
    let content_type = form.content_type();
    let len = form.content_length();
    let mut body = Vec::new();
    form.into_reader().read_to_end(&mut body).unwrap();
    assert_eq!(body.len() as u64, len, "Content-Length matches the body");
    (content_type, body)
}

#[test]
fn a_hand_written_body() {
    let body = "preamble, ignored\r\n\
        --XyZ\r\n\
        Content-Disposition: form-data; name=\"chat_id\"\r\n\
        \r\n\
        42\r\n\
        --XyZ\r\n\
        content-disposition: form-data; name=\"photo\"; filename=\"a;b.jpg\"\r\n\
        Content-Type: image/jpeg\r\n\
        \r\n\
        \r\n--Xy not the end\r\n\
        --XyZ--\r\n\
        epilogue";
    let parts = parse("multipart/form-data; boundary=\"XyZ\"", body.as_bytes()).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(
        (parts[0].name.as_str(), parts[0].text().as_str()),
        ("chat_id", "42")
    );
    assert_eq!(parts[0].filename, None);
    assert_eq!(parts[1].name, "photo");
    assert_eq!(parts[1].filename.as_deref(), Some("a;b.jpg"));
    assert_eq!(parts[1].content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(parts[1].data, b"\r\n--Xy not the end");
    assert_eq!(parts[1].sha256, sha256_hex(b"\r\n--Xy not the end"));
}

#[test]
fn bodies_from_the_gateways_writer() {
    let mut file = tempfile::tempfile().unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 31 % 256) as u8).collect();
    file.write_all(&data).unwrap();
    file.rewind().unwrap();
    let mut form = Multipart::new();
    form.text("chat_id", "-100123")
        .text("caption", "línea 1\r\nline 2")
        .file(
            "document",
            "report \"final\".pdf",
            "application/pdf",
            file,
            data.len() as u64,
        )
        .bytes("photo", "p.png", "image/png", b"\x89PNG".to_vec());
    let (content_type, body) = produce(form);
    let parts = parse(&content_type, &body).unwrap();
    let names: Vec<&str> = parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["chat_id", "caption", "document", "photo"]);
    assert_eq!(parts[0].text(), "-100123");
    assert_eq!(parts[1].text(), "línea 1\r\nline 2");
    assert_eq!(parts[2].filename.as_deref(), Some("report %22final%22.pdf"));
    assert_eq!(parts[2].content_type.as_deref(), Some("application/pdf"));
    assert_eq!(parts[2].sha256, sha256_hex(&data));
    assert_eq!(parts[3].data, b"\x89PNG");
}

#[test]
fn the_boundary_comes_from_the_content_type() {
    assert_eq!(boundary("multipart/form-data; boundary=abc").unwrap(), "abc");
    assert_eq!(boundary("Multipart/Form-Data;Boundary=\"a b\"").unwrap(), "a b");
    assert!(boundary("application/json").is_err());
    assert!(boundary("multipart/form-data").is_err());
    assert!(boundary("multipart/form-data; boundary=").is_err());
}

#[test]
fn malformed_bodies_are_refused() {
    let ct = "multipart/form-data; boundary=B";
    let cases: &[(&str, &str)] = &[
        ("", "no opening boundary"),
        ("--B--\r\n", "without parts"),
        (
            "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx",
            "no closing boundary",
        ),
        ("--B\r\nContent-Disposition: form-data; name=\"a\"", "never end"),
        (
            "--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--",
            "without Content-Disposition",
        ),
        (
            "--B\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--B--",
            "not form-data",
        ),
        (
            "--B\r\nContent-Disposition: form-data\r\n\r\nx\r\n--B--",
            "without a name",
        ),
        ("--B\r\nno colon here\r\n\r\nx\r\n--B--", "malformed part header"),
        ("--Bjunk\r\n", "junk after a boundary"),
    ];
    for (body, why) in cases {
        let e = parse(ct, body.as_bytes()).unwrap_err();
        assert!(e.contains(why), "{body:?}: {e} (wanted {why:?})");
    }
}
