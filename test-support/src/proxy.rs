//! A TCP proxy between two nodes that can partition (hold every byte, both ways, with the connections left
//! open: the peers see silence, not a close), heal, and cut (close every connection and refuse new ones until
//! healed). For partition and failover tests.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pass,
    Partitioned,
    Cut,
}

/// A running proxy; dropping it stops accepting (connections end when their peers close).
pub struct TcpProxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    accept: JoinHandle<()>,
}

impl TcpProxy {
    /// Listen on 127.0.0.1:0 and forward every connection to `target`.
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("the proxy binds");
        let addr = listener.local_addr().expect("bound");
        let (state, rx) = watch::channel(State::Pass);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *rx.borrow() == State::Cut {
                    continue; // dropped: refused
                }
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, rx.clone()));
                tokio::spawn(pump(sr, cw, rx.clone()));
            }
        });
        TcpProxy {
            addr,
            state,
            accept,
        }
    }

    /// Where to connect instead of the target.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Nothing gets through either way; connections stay open.
    pub fn partition(&self) {
        let _ = self.state.send(State::Partitioned);
    }

    /// Close every connection and refuse new ones.
    pub fn cut(&self) {
        let _ = self.state.send(State::Cut);
    }

    /// Back to forwarding (held bytes flow on).
    pub fn heal(&self) {
        let _ = self.state.send(State::Pass);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = self.state.send(State::Cut);
    }
}

/// Copy one direction while the state allows: hold (stop reading) while partitioned, end when cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut state: watch::Receiver<State>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let now = *state.borrow_and_update();
        match now {
            State::Cut => return,
            State::Partitioned => {
                if state.changed().await.is_err() {
                    return;
                }
                continue;
            }
            State::Pass => {}
        }
        tokio::select! {
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            },
            changed = state.changed() => if changed.is_err() { return },
        }
    }
}
