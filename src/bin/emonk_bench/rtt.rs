//! Round trip: clients (threads with blocking sockets) each send one request, wait for its
//! response, and repeat. Only requests started after the warm-up count. Every response is
//! checked to be the response to that request (and not an error).

use std::thread;
use std::time::{Duration, Instant};

use tungstenite::Message;

use super::client::{self, Ws};

#[derive(Clone, Copy, Debug)]
pub struct Rtt {
    pub p50_us: f64,
    pub p99_us: f64,
    pub rps: f64,
}

pub fn measure(
    port: u16,
    method: &str,
    clients: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Rtt, String> {
    let mut sockets = Vec::with_capacity(clients);
    for _ in 0..clients {
        sockets.push(client::join(port, "operator")?);
    }
    // Every client starts and stops on the same instants.
    let warm_end = Instant::now() + Duration::from_millis(20) + warmup;
    let end = warm_end + window;
    let workers: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(n, ws)| {
            let method = method.to_owned();
            thread::Builder::new()
                .name(format!("bench-rtt-{n}"))
                .spawn(move || run_client(ws, &method, warm_end, end))
                .expect("spawn a client")
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        let mut lat = w.join().map_err(|_| "a client thread panicked")??;
        all.append(&mut lat);
    }
    if all.is_empty() {
        return Err("no request completed in the window".into());
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    Ok(Rtt {
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        rps: all.len() as f64 / window.as_secs_f64(),
    })
}

/// Latencies (ns) of the requests started in `[warm_end, end)`.
fn run_client(mut ws: Ws, method: &str, warm_end: Instant, end: Instant) -> Result<Vec<u32>, String> {
    let mut lat = Vec::with_capacity(1 << 16);
    let mut n: u64 = 0;
    loop {
        let start = Instant::now();
        if start >= end {
            break;
        }
        n += 1;
        let frame = format!(r#"{{"type":"request","requestId":"{n}","method":"{method}"}}"#);
        let needle = format!(r#""requestId":"{n}""#);
        client::send(&mut ws, frame)?;
        loop {
            match ws.read() {
                Ok(Message::Text(t)) if t.contains(&needle) => {
                    if !t.contains(r#""type":"response""#) || t.contains(r#""error":"#) {
                        return Err(format!("bad response to {method}: {}", t.as_str()));
                    }
                    break;
                }
                Ok(Message::Close(f)) => return Err(format!("closed during {method}: {f:?}")),
                Ok(_) => {} // an event
                Err(e) => return Err(format!("read during {method}: {e}")),
            }
        }
        if start >= warm_end {
            lat.push(start.elapsed().as_nanos().min(u32::MAX as u128) as u32);
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
    Ok(lat)
}
