//! The optional Node.js peer: a `ws` server doing what the baseline does. It runs only if
//! `node` and `npm` are on PATH; `ws` is installed from the npm registry into a temp dir.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::daemon::{TempDir, status_field};

const SERVER_JS: &str = r#"
const { WebSocketServer } = require(process.argv[2]);
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
wss.on('listening', () => console.log('listening on ' + wss.address().port));
wss.on('connection', (ws) => {
  ws.on('message', (data) => {
    let v;
    try { v = JSON.parse(data); } catch { return; }
    if (v.type === 'connect') {
      ws.send('{"type":"hello_ok","protocolVersion":1}');
    } else {
      ws.send(JSON.stringify({ type: 'response', requestId: v.requestId, final: true, result: { ts: Date.now() } }));
    }
  });
});
"#;

pub struct NodePeer {
    child: Child,
    pub port: u16,
    _dir: TempDir,
}

fn on_path(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl NodePeer {
    /// `Ok(None)` when node is not available: the peer is skipped.
    pub fn start() -> Result<Option<NodePeer>, String> {
        if !on_path("node") || !on_path("npm") {
            return Ok(None);
        }
        let dir = TempDir::new("emonk-bench-node");
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "ws", "--prefix"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("npm: {e}"))?;
        if !status.success() {
            return Err(format!("npm install ws failed ({status})"));
        }
        let script = dir.path().join("server.js");
        std::fs::write(&script, SERVER_JS).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("node");
        cmd.arg(&script)
            .arg(dir.path().join("node_modules").join("ws"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        // SAFETY: prctl is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| format!("node: {e}"))?;
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("node server said {line:?}"))?;
        Ok(Some(NodePeer {
            child,
            port,
            _dir: dir,
        }))
    }

    /// Resident memory after a moment of idling.
    pub fn idle_rss_bytes(&self) -> Option<u64> {
        std::thread::sleep(Duration::from_millis(300));
        status_field(self.child.id(), "VmRSS:").map(|k| k * 1024)
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
