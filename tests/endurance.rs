//! Many short lives: 20,000 WebSocket connect-and-close cycles (one in ten logs in first)
//! and 2,000 abrupt resets at every stage of a connection's life. Afterwards the gateway's
//! open file descriptors are back at their baseline and it still answers: a leak of one fd
//! per thousand connections would end a months-long run.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

use serde_json::json;
use support::{Gateway, Home, Watchdog, Ws, connect_frame, eventually, rss_kib};
use tungstenite::Message;

const THREADS: usize = 4;
const CYCLES: usize = 20_000;
const RESETS: usize = 2_000;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Close with RST instead of FIN: SO_LINGER with a zero timeout, then drop.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid fd and a correctly sized option value.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(stream);
}

/// Open, optionally log in, close cleanly, and read until the gateway closed too.
fn cycle(port: u16, log_in: bool) {
    let mut ws = Ws::open(port);
    if log_in {
        ws.send_json(&connect_frame(None, "operator", "operator"));
        let v = ws.next(Duration::from_secs(5)).expect("hello_ok");
        assert_eq!(v["type"], "hello_ok", "{v}");
    }
    ws.ws.close(None).expect("send close");
    loop {
        match ws.ws.read() {
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// A reset at stage `n % 5`: before any byte, mid-HTTP, after the upgrade, after the
/// login, and in the middle of a frame.
fn reset_at(port: u16, n: usize) {
    match n % 5 {
        0 => reset(TcpStream::connect(("127.0.0.1", port)).unwrap()),
        1 => {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websock");
            reset(s);
        }
        2 => reset(Ws::open(port).ws.into_inner()),
        3 => {
            let mut ws = Ws::open(port);
            ws.send_json(&connect_frame(None, "operator", "operator"));
            assert_eq!(
                ws.next(Duration::from_secs(5)).expect("hello_ok")["type"],
                "hello_ok"
            );
            reset(ws.ws.into_inner());
        }
        _ => {
            let mut ws = Ws::open(port);
            let frame = support::raw_frame::RawFrame::new(support::raw_frame::TEXT, vec![b'x'; 1000]);
            let bytes = frame.encode();
            let _ = ws.ws.get_mut().write_all(&bytes[..20]);
            reset(ws.ws.into_inner());
        }
    }
}

#[test]
fn twenty_thousand_connections_and_two_thousand_resets_leave_no_fd_behind() {
    let _w = Watchdog::new("endurance", Duration::from_secs(400));
    let home = Home::new("{}");
    let gw = Gateway::start(&home);
    let pid = gw.child.id();
    // Warm up, so lazily opened fds (the router's, the log's) are in the baseline.
    for i in 0..20 {
        cycle(gw.port, i % 2 == 0);
    }
    thread::sleep(Duration::from_millis(300));
    let baseline = open_fds(pid);
    let rss_before = rss_kib(pid).unwrap_or(0);
    assert!(baseline > 0, "cannot read /proc/{pid}/fd");

    let port = gw.port;
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::Builder::new()
                .name(format!("endurance-{t}"))
                .spawn(move || {
                    for i in 0..CYCLES / THREADS {
                        cycle(port, i % 10 == 0);
                    }
                    for i in 0..RESETS / THREADS {
                        reset_at(port, i);
                    }
                })
                .unwrap()
        })
        .collect();
    for w in workers {
        w.join().expect("a worker failed");
    }

    let settled = eventually(Duration::from_secs(15), || {
        (open_fds(pid) <= baseline).then_some(())
    });
    assert!(
        settled.is_some(),
        "open fds {} after the run, {baseline} before",
        open_fds(pid)
    );
    let rss_after = rss_kib(pid).unwrap_or(0);
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    let mut op = gw.operator();
    let r = op.request("alive", "gateway.ping", json!({}));
    assert!(r["result"]["ts"].is_u64(), "{r}");
}
