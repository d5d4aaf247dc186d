//! The listening socket. It belongs to the supervisor, not to an instance, so an in-process
//! restart on the same address keeps it: connections queued during the restart are accepted
//! by the next instance instead of being refused.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpListener};

use crate::config::{BindMode, GatewayConfig};
use crate::error::Error;
use crate::lifecycle::instance::BindInfo;

pub struct Listener {
    socket: TcpListener,
    /// What was asked for (port 0 stays 0), to tell whether a new config needs a new socket.
    requested: SocketAddr,
    bound: SocketAddr,
}

impl Listener {
    /// Bind the configured address. A busy port is a configuration error (exit 78) naming
    /// the process that holds it when it can be found.
    pub fn bind(gateway: &GatewayConfig) -> Result<Listener, Error> {
        let host = gateway.bind_host()?;
        let requested = SocketAddr::new(host, gateway.port);
        let socket = TcpListener::bind(requested).map_err(|e| {
            let port = gateway.port;
            match e.kind() {
                ErrorKind::AddrInUse => {
                    let holder = crate::procinfo::port_owner(port)
                        .map(|pid| match crate::procinfo::process_name(pid) {
                            Some(name) => format!(" by pid {pid} ({name})"),
                            None => format!(" by pid {pid}"),
                        })
                        .unwrap_or_default();
                    Error::Config(format!("port {port} is in use{holder}; stop it or pass --port"))
                }
                ErrorKind::PermissionDenied => Error::Config(format!(
                    "not permitted to bind {requested}: ports below 1024 need privileges; pass --port with a higher port"
                )),
                _ => Error::Config(format!(
                    "cannot bind {requested}: {e}; check gateway.bind and gateway.customBindHost, or pass --bind"
                )),
            }
        })?;
        let bound = socket
            .local_addr()
            .map_err(|e| Error::failure(format!("cannot read the bound address: {e}")))?;
        Ok(Listener {
            socket,
            requested,
            bound,
        })
    }

    pub fn socket(&self) -> &TcpListener {
        &self.socket
    }

    pub fn host(&self) -> IpAddr {
        self.bound.ip()
    }

    pub fn port(&self) -> u16 {
        self.bound.port()
    }

    /// `ws://HOST:PORT` (IPv6 hosts in brackets).
    pub fn url(&self) -> String {
        format!("ws://{}", self.bound)
    }

    /// Whether this socket already serves the address `gateway` asks for.
    pub fn serves(&self, gateway: &GatewayConfig) -> bool {
        gateway
            .bind_host()
            .is_ok_and(|h| SocketAddr::new(h, gateway.port) == self.requested)
    }

    pub fn info(&self, mode: BindMode) -> BindInfo {
        BindInfo {
            host: self.host().to_string(),
            port: self.port(),
            mode: mode.as_str(),
        }
    }
}
