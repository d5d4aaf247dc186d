//! Frame-level fuzz: frames no well-behaved client sends, written byte by byte. Each must be
//! answered with the close code RFC 6455 gives it within 2 s (or, for a valid frame, leave
//! the connection working), and the gateway must stay up for everyone else. The cases are
//! listed by hand first, then generated from a fixed seed and judged by a small model of
//! the rules, so a failure names a frame that can be replayed.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use support::raw_frame::{BINARY, CLOSE, PING, PONG, RawFrame, TEXT, close_payload};
use support::{End, Gateway, Home, Watchdog, Ws};

/// How long the gateway may take to close after a bad frame.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// What the gateway must do with a frame.
#[derive(Debug, PartialEq)]
enum Expect {
    /// Close with this code.
    Close(u16),
    /// Answer a close with a close, echoing its code (1005 for an empty close).
    Echo(u16),
    /// Keep the connection open and working.
    Open,
}

/// The close codes a peer may send (RFC 6455 7.4 and the IANA registry).
fn allowed_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

/// The rules of RFC 6455 section 5 for one frame sent on its own, as the first frame of a
/// message. Data frames in these tests are always final.
fn expected(frame: &RawFrame) -> Expect {
    let control = frame.opcode >= 0x8;
    if frame.mask.is_none() || frame.rsv != 0 {
        return Expect::Close(1002);
    }
    match frame.opcode {
        TEXT if std::str::from_utf8(&frame.payload).is_err() => Expect::Close(1007),
        TEXT | BINARY => Expect::Open,
        // A continuation with no message to continue.
        0x0 => Expect::Close(1002),
        _ if control && (!frame.fin || frame.payload.len() > 125) => Expect::Close(1002),
        PING | PONG => Expect::Open,
        CLOSE => match frame.payload.len() {
            0 => Expect::Echo(1005),
            1 => Expect::Close(1002),
            _ => {
                // Both faults at once: the reason is decoded before the code is judged.
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                if std::str::from_utf8(&frame.payload[2..]).is_err() {
                    Expect::Close(1007)
                } else if !allowed_close_code(code) {
                    Expect::Close(1002)
                } else {
                    Expect::Echo(code)
                }
            }
        },
        // Reserved opcodes.
        _ => Expect::Close(1002),
    }
}

/// Send the frame on a fresh connection (joined or not) and check what happens.
fn check(gw: &Gateway, frame: &RawFrame, joined: bool, what: &str) {
    let mut ws = if joined { gw.operator() } else { Ws::open(gw.port) };
    let want = expected(frame);
    let sent = Instant::now();
    ws.ws
        .get_mut()
        .write_all(&frame.encode())
        .unwrap_or_else(|e| panic!("{what}: write failed: {e}"));
    if want == Expect::Open {
        if joined {
            let r = ws.request("probe", "gateway.ping", json!({}));
            assert!(r["result"]["ts"].is_u64(), "{what} {frame:?}: {r}");
        }
        return;
    }
    let end = loop {
        match ws.next(CLOSE_WITHIN + Duration::from_secs(1)) {
            // An error or hello_error frame may come first.
            Ok(_) => continue,
            Err(end) => break end,
        }
    };
    let took = sent.elapsed();
    let code = match (&want, &end) {
        (Expect::Close(c) | Expect::Echo(c), End::Closed(got, _)) if got == c => *c,
        _ => panic!("{what}: {frame:?}: wanted {want:?}, got {end:?}"),
    };
    assert!(took <= CLOSE_WITHIN, "{what}: close {code} took {took:?}");
}

/// The hand-written cases: every kind of broken frame once.
fn broken_frames() -> Vec<(&'static str, RawFrame)> {
    let mut cases = Vec::new();
    let mut unmasked = RawFrame::new(TEXT, b"{}".to_vec());
    unmasked.mask = None;
    cases.push(("unmasked text", unmasked));
    for opcode in [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        cases.push(("reserved opcode", RawFrame::new(opcode, b"x".to_vec())));
    }
    for rsv in 1..=7 {
        let mut f = RawFrame::new(TEXT, b"{}".to_vec());
        f.rsv = rsv;
        cases.push(("RSV bits", f));
    }
    cases.push(("oversized ping", RawFrame::new(PING, vec![b'p'; 126])));
    cases.push((
        "oversized close",
        RawFrame::new(CLOSE, close_payload(1000, &[b'r'; 124])),
    ));
    let mut fragmented = RawFrame::new(PING, b"x".to_vec());
    fragmented.fin = false;
    cases.push(("fragmented ping", fragmented));
    for code in [0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2999, 5000, 65535] {
        cases.push(("bad close code", RawFrame::new(CLOSE, close_payload(code, b""))));
    }
    cases.push(("one-byte close", RawFrame::new(CLOSE, vec![3])));
    cases.push((
        "close reason not UTF-8",
        RawFrame::new(CLOSE, close_payload(1000, b"\xc0\xaf")),
    ));
    cases.push(("continuation without a start", RawFrame::new(0x0, b"{}".to_vec())));
    cases.push((
        "text not UTF-8",
        RawFrame::new(TEXT, b"\xf8\x88\x80\x80\x80".to_vec()),
    ));
    cases
}

#[test]
fn broken_frames_get_the_right_close_code_within_2_s() {
    let _w = Watchdog::new("fuzz_cases", Duration::from_secs(120));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    for (what, frame) in broken_frames() {
        assert_ne!(expected(&frame), Expect::Open, "{what} is not a broken frame");
        check(&gw, &frame, true, what);
        check(&gw, &frame, false, what);
    }
    // A data frame while a fragmented message is still open.
    let mut c = gw.operator();
    let mut start = RawFrame::new(TEXT, b"{\"a\":".to_vec());
    start.fin = false;
    let stream = c.ws.get_mut();
    stream.write_all(&start.encode()).unwrap();
    stream
        .write_all(&RawFrame::new(TEXT, b"1}".to_vec()).encode())
        .unwrap();
    assert!(matches!(c.expect_close(CLOSE_WITHIN), End::Closed(1002, _)));

    let mut alive = gw.operator();
    let r = alive.request("alive", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
}

/// xorshift64: a fixed seed gives the same frames on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize, ascii: bool) -> Vec<u8> {
        (0..len)
            .map(|_| {
                let b = self.next() as u8;
                if ascii { b' ' + b % 95 } else { b }
            })
            .collect()
    }
}

fn random_frame(rng: &mut Rng) -> RawFrame {
    const COMMON: [u8; 6] = [TEXT, BINARY, CLOSE, PING, PONG, 0x0];
    let opcode = if rng.below(4) == 0 {
        rng.below(16) as u8
    } else {
        COMMON[rng.below(COMMON.len() as u64) as usize]
    };
    let len = [0, 1, 2, 3, 7, 64, 125, 126, 300][rng.below(9) as usize];
    let ascii = rng.below(2) == 0;
    let mut payload = rng.bytes(len, ascii);
    if opcode == CLOSE && len >= 2 && rng.below(2) == 0 {
        // Mostly plausible codes, so the valid-close path is exercised too.
        let code = [1000, 1001, 1003, 1008, 3000, 4999, 1004, 2000][rng.below(8) as usize];
        payload[..2].copy_from_slice(&u16::to_be_bytes(code));
    }
    let mut frame = RawFrame::new(opcode, payload);
    // Data frames stay final (an open fragment would just wait for more); one control
    // frame in eight is fragmented, which is never allowed.
    frame.fin = opcode < 0x8 || rng.below(8) != 0;
    if rng.below(8) == 0 {
        frame.rsv = 1 + rng.below(7) as u8;
    }
    if rng.below(10) == 0 {
        frame.mask = None;
    } else {
        frame.mask = Some((rng.next() as u32).to_be_bytes());
    }
    frame
}

#[test]
fn random_frames_from_a_fixed_seed_are_judged_by_the_rules() {
    let _w = Watchdog::new("fuzz_random", Duration::from_secs(240));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seen = std::collections::BTreeMap::new();
    for case in 0..400 {
        let frame = random_frame(&mut rng);
        *seen.entry(format!("{:?}", expected(&frame))).or_insert(0) += 1;
        check(&gw, &frame, true, &format!("random case {case}"));
    }
    // The generator must reach every outcome, or the model is not being tested.
    for outcome in ["Open", "Close(1002)", "Close(1007)", "Echo("] {
        let n: usize = seen
            .iter()
            .filter(|(k, _)| k.starts_with(outcome))
            .map(|(_, n)| n)
            .sum();
        assert!(n >= 5, "{outcome} too rare: {seen:?}");
    }
    let mut alive = gw.operator();
    let r = alive.request("alive", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
}
