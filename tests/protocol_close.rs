//! Close codes that must reach the client: a client still writing a refused frame gets its
//! 1009 every time (the gateway lingers: half-closes and discards what is still coming
//! instead of resetting the socket), the linger is bounded, and invalid UTF-8 in a text
//! frame or a close reason is closed with 1007 as RFC 6455 asks.

mod support;

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use support::raw_frame::{CLOSE, RawFrame, TEXT, close_payload};
use support::{End, Gateway, Home, Watchdog, Ws};

const WAIT: Duration = Duration::from_secs(5);
const MIB: usize = 1024 * 1024;

/// Write a whole frame from this thread, as a simple client does: the write only finishes
/// if the gateway keeps reading after it refused the frame.
fn write_blocking(ws: &mut Ws, frame: &RawFrame) -> Result<(), String> {
    let stream = ws.ws.get_mut();
    stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(&frame.encode()).map_err(|e| e.to_string())
}

/// Read up to the end; the error frame that came before it, if any, and how it ended.
fn until_end(ws: &mut Ws) -> (Option<serde_json::Value>, End) {
    let mut last = None;
    loop {
        match ws.next_non_tick(WAIT) {
            Ok(v) => last = Some(v),
            Err(end) => return (last, end),
        }
    }
}

#[test]
fn a_client_still_writing_an_oversized_frame_always_learns_1009() {
    let _w = Watchdog::new("linger_1009", Duration::from_secs(120));
    let home = Home::new(r#"{"gateway":{"maxPayloadBytes":65536}}"#);
    let gw = Gateway::start(&home);
    // 16 MiB is far more than the kernel buffers hold, so the write only completes if the
    // gateway reads on after its close frame; a reset would also destroy the close frame.
    let huge = RawFrame::new(TEXT, vec![b'x'; 16 * MIB]);
    for round in 0..50 {
        let mut c = gw.operator();
        write_blocking(&mut c, &huge).unwrap_or_else(|e| panic!("round {round}: write failed: {e}"));
        let (error, end) = until_end(&mut c);
        assert!(matches!(end, End::Closed(1009, _)), "round {round}: {end:?}");
        let error = error.unwrap_or_else(|| panic!("round {round}: no error frame"));
        assert_eq!(
            error["error"]["code"], "PAYLOAD_TOO_LARGE",
            "round {round}: {error}"
        );
    }
    // Before connect the limit is 64 KiB; the answer is a hello_error and 1009.
    let big = RawFrame::new(TEXT, vec![b'x'; 8 * MIB]);
    for round in 0..20 {
        let mut ws = Ws::open(gw.port);
        write_blocking(&mut ws, &big).unwrap_or_else(|e| panic!("pre-connect round {round}: {e}"));
        let (answer, end) = until_end(&mut ws);
        assert!(
            matches!(end, End::Closed(1009, _)),
            "pre-connect round {round}: {end:?}"
        );
        assert_eq!(answer.expect("hello_error")["type"], "hello_error");
    }
    let mut alive = gw.operator();
    let r = alive.request("after", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
}

#[test]
fn the_linger_is_bounded_for_a_client_that_never_stops_writing() {
    let _w = Watchdog::new("linger_bound", Duration::from_secs(60));
    let home = Home::new(r#"{"gateway":{"maxPayloadBytes":65536}}"#);
    let gw = Gateway::start(&home);
    let c = gw.operator();
    // A frame header announcing 1 GiB, then bytes without end.
    let mut stream = c.ws.get_ref().try_clone().unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let writer = thread::spawn(move || {
        let header = RawFrame::new(TEXT, Vec::new()).header_announcing(1 << 30);
        stream.write_all(&header).unwrap();
        let chunk = vec![b'x'; MIB];
        loop {
            if let Err(e) = stream.write_all(&chunk) {
                return e.to_string();
            }
        }
    });
    let why = writer.join().unwrap();
    let took = started.elapsed();
    // The gateway gives up at 2 s or 64 MiB, whichever comes first, and resets.
    assert!(
        took < Duration::from_secs(8),
        "still accepted bytes after {took:?}"
    );
    assert!(!why.is_empty());
    let mut alive = gw.operator();
    let r = alive.request("after", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
}

fn assert_1007(ws: &mut Ws, what: &str) {
    let (_, end) = until_end(ws);
    assert!(matches!(end, End::Closed(1007, _)), "{what}: {end:?}");
}

#[test]
fn invalid_utf8_is_closed_with_1007() {
    let _w = Watchdog::new("utf8_1007", Duration::from_secs(60));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);

    let mut c = gw.operator();
    write_blocking(&mut c, &RawFrame::new(TEXT, b"{\"a\":\"\xff\xfe\"}".to_vec())).unwrap();
    assert_1007(&mut c, "text frame after connect");

    let mut ws = Ws::open(gw.port);
    write_blocking(&mut ws, &RawFrame::new(TEXT, vec![0xc3, 0x28])).unwrap();
    assert_1007(&mut ws, "text frame before connect");

    // Split over two fragments: the first is valid, the continuation is not.
    let mut c = gw.operator();
    let mut first = RawFrame::new(TEXT, b"{\"a\":\"".to_vec());
    first.fin = false;
    write_blocking(&mut c, &first).unwrap();
    write_blocking(&mut c, &RawFrame::new(0x0, b"\xed\xa0\x80\"}".to_vec())).unwrap();
    assert_1007(&mut c, "continuation frame");

    let mut c = gw.operator();
    write_blocking(&mut c, &RawFrame::new(CLOSE, close_payload(1000, b"bye \xff"))).unwrap();
    assert_1007(&mut c, "close reason");

    let mut alive = gw.operator();
    let r = alive.request("after", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
}
