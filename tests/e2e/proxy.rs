//! A TCP proxy between agent and server that misbehaves on purpose: it cuts a
//! connection after N bytes, stalls it, or lets it through at a trickle.

use std::collections::VecDeque;
use std::net::SocketAddr;
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
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Each new connection takes the next fault of the plan; `Pass` once it is used up.
    pub async fn start(upstream: SocketAddr, plan: Vec<Fault>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let plan = Arc::new(Mutex::new(VecDeque::from(plan)));
        let faults = Arc::clone(&plan);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = faults
                    .lock()
                    .expect("plan")
                    .pop_front()
                    .unwrap_or(Fault::Pass);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, fault).await;
                    }
                });
            }
        });
        Proxy { addr, plan, task }
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

async fn relay(client: TcpStream, server: TcpStream, fault: Fault) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let down = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0usize;
    loop {
        let n = match client_rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
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
