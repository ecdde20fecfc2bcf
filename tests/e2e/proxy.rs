//! A TCP proxy between agent and server that misbehaves on purpose: it cuts a
//! connection after N bytes, stalls it, or lets it through at a trickle; and
//! it can black out the path, so both ends hear nothing and no FIN either.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Forward faithfully.
    Pass,
    /// Drop the connection once this many bytes went from agent to server.
    CutAfter(usize),
    /// After this many bytes, forward nothing more for a while, then cut.
    Stall { after: usize, for_: Duration },
    /// Forward agent-to-server bytes at about this many bytes a second.
    Trickle { bytes_per_sec: usize },
}

pub struct Proxy {
    pub addr: SocketAddr,
    plan: Arc<Mutex<VecDeque<Fault>>>,
    path: Arc<Path>,
    task: tokio::task::JoinHandle<()>,
}

/// The state of the network path, shared by every relayed connection.
#[derive(Default)]
struct Path {
    /// Nothing gets through while set.
    dark: AtomicBool,
    /// Blackouts begun so far: a connection open across one never carries a
    /// byte again (as when a NAT or firewall forgot it), but is not closed.
    blackouts: AtomicU64,
    connections: AtomicUsize,
}

impl Path {
    /// False once the path went dark during this connection (which began at `epoch`).
    fn open_for(&self, epoch: u64) -> bool {
        !self.dark.load(Ordering::SeqCst) && self.blackouts.load(Ordering::SeqCst) == epoch
    }
}

impl Proxy {
    /// Each new connection takes the next fault of the plan; `Pass` once it is used up.
    pub async fn start(upstream: SocketAddr, plan: Vec<Fault>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let plan = Arc::new(Mutex::new(VecDeque::from(plan)));
        let faults = Arc::clone(&plan);
        let path = Arc::new(Path::default());
        let shared = Arc::clone(&path);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let fault = faults
                    .lock()
                    .expect("plan")
                    .pop_front()
                    .unwrap_or(Fault::Pass);
                let path = Arc::clone(&shared);
                tokio::spawn(async move {
                    let epoch = path.blackouts.load(Ordering::SeqCst);
                    if !path.open_for(epoch) {
                        // Accepted, then silence: the handshake never completes.
                        hold_forever(client).await;
                        return;
                    }
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, fault, path, epoch).await;
                    }
                });
            }
        });
        Proxy {
            addr,
            plan,
            path,
            task,
        }
    }

    /// Black out the path: no byte gets through either way, nobody is told.
    pub fn go_dark(&self) {
        self.path.blackouts.fetch_add(1, Ordering::SeqCst);
        self.path.dark.store(true, Ordering::SeqCst);
    }

    /// New connections get through again; the ones caught in the blackout stay dead.
    pub fn light_up(&self) {
        self.path.dark.store(false, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.path.connections.load(Ordering::SeqCst)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn faults_left(&self) -> usize {
        self.plan.lock().expect("plan").len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Keeps a socket open and silent until the test ends.
async fn hold_forever<T>(socket: T) {
    std::future::pending::<()>().await;
    drop(socket);
}

async fn relay(client: TcpStream, server: TcpStream, fault: Fault, path: Arc<Path>, epoch: u64) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let down_path = Arc::clone(&path);
    let down = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if !down_path.open_for(epoch) {
                hold_forever((server_rx, client_tx)).await;
                return;
            }
            if client_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0usize;
    loop {
        let n = match client_rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if !path.open_for(epoch) {
            hold_forever((client_rx, server_tx)).await;
            return;
        }
        match fault {
            Fault::Pass => {}
            Fault::CutAfter(limit) => {
                if sent + n > limit {
                    let _ = server_tx
                        .write_all(&buf[..limit.saturating_sub(sent)])
                        .await;
                    break;
                }
            }
            Fault::Stall { after, for_ } => {
                if sent + n > after {
                    tokio::time::sleep(for_).await;
                    break;
                }
            }
            Fault::Trickle { bytes_per_sec } => {
                for piece in buf[..n].chunks(512) {
                    if server_tx.write_all(piece).await.is_err() {
                        down.abort();
                        return;
                    }
                    let pause = piece.len() as f64 / bytes_per_sec.max(1) as f64;
                    tokio::time::sleep(Duration::from_secs_f64(pause)).await;
                }
                sent += n;
                continue;
            }
        }
        if server_tx.write_all(&buf[..n]).await.is_err() {
            break;
        }
        sent += n;
    }
    // Dropping both halves closes the connection without a goodbye.
    down.abort();
}
