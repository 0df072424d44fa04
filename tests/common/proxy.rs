//! A TCP proxy on 127.0.0.1 in front of the test server that can stop
//! forwarding at will: the peer looks alive (the socket stays open) but
//! nothing comes back, as with a half-open connection or a stalled network.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// The proxy. Its threads end when the connections through it are closed.
pub struct Proxy {
    /// The loopback port it listens on.
    pub port: u16,
    /// While true, bytes in both directions are swallowed.
    pub blackhole: Arc<AtomicBool>,
}

impl Proxy {
    /// A proxy to `target` (`host:port`).
    pub fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let blackhole = Arc::new(AtomicBool::new(false));
        let target = target.to_string();
        let hole = Arc::clone(&blackhole);
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let hole = Arc::clone(&hole);
                    thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) if !hole.load(Ordering::SeqCst) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Ok(_) => {} // swallowed
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, blackhole }
    }

    /// A proxy in front of the server of `url` (`mysql://user@host:port/db?...`);
    /// returns it and `url` rewritten to go through it.
    pub fn in_front_of(url: &str) -> (Proxy, String) {
        let authority = url
            .split("://")
            .nth(1)
            .and_then(|r| r.split(['/', '?']).next())
            .expect("a mysql:// URL");
        let server = authority.rsplit('@').next().unwrap();
        let server = if server.contains(':') {
            server.to_string()
        } else {
            format!("{server}:3306")
        };
        let proxy = Proxy::start(&server);
        let proxied = url.replacen(
            authority,
            &authority.replace(&server, &format!("127.0.0.1:{}", proxy.port)),
            1,
        );
        assert_ne!(proxied, url, "the URL goes through the proxy");
        (proxy, proxied)
    }

    /// Stops (`true`) or resumes (`false`) forwarding.
    pub fn stall(&self, on: bool) {
        self.blackhole.store(on, Ordering::SeqCst);
    }
}
