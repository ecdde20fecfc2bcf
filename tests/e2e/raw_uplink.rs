//! A bare uplink client that speaks the protocol frame by frame, so tests can
//! send what a well-behaved agent never would.

use crate::harness::TestServer;
use futures_util::{SinkExt, StreamExt};
use imc_shared::protocol::*;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const READ_LIMIT: Duration = Duration::from_secs(30);

/// Enrols an agent over HTTP; returns its id and token.
pub async fn enroll(server: &TestServer, name: &str) -> (String, String) {
    let code = server.enrollment_code("raw-site").await;
    let (status, body) = server
        .post(
            "/agents/enroll",
            serde_json::json!({"code": code, "name": name}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (
        body["agent_id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

pub fn uplink_url(server: &TestServer) -> String {
    format!(
        "{}{UPLINK_PATH}",
        server.base.replacen("http://", "ws://", 1)
    )
}

/// The HTTP status the upgrade gets with this token (101 when accepted).
pub async fn upgrade_status(server: &TestServer, token: &str) -> u16 {
    let mut request = uplink_url(server).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {token}").parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("upgrade failed without an HTTP answer: {e}"),
    }
}

pub struct RawAgent {
    socket: Socket,
}

impl RawAgent {
    /// Connects and says hello with `version`; does not read the answer.
    pub async fn connect_with_version(server: &TestServer, token: &str, version: u32) -> RawAgent {
        let mut request = uplink_url(server).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("uplink upgrade");
        let mut agent = RawAgent { socket };
        agent
            .send(&AgentMessage::Hello(Hello {
                protocol_version: version,
                agent_version: "raw-test".into(),
            }))
            .await;
        agent
    }

    /// Connects, says hello and waits for the welcome.
    pub async fn connect(server: &TestServer, token: &str) -> RawAgent {
        let mut agent = RawAgent::connect_with_version(server, token, PROTOCOL_VERSION).await;
        match agent.recv().await {
            Some(ServerMessage::Welcome(w)) => assert!(w.window_pages >= 1),
            other => panic!("expected a welcome, got {other:?}"),
        }
        agent
    }

    pub async fn send(&mut self, msg: &AgentMessage) {
        let json = serde_json::to_string(msg).unwrap();
        self.send_raw(Message::Text(json.into())).await;
    }

    /// Sends any frame; a closed connection is not an error here (the test looks at replies).
    pub async fn send_raw(&mut self, frame: Message) {
        let _ = self.socket.send(frame).await;
    }

    /// Sends the first half of a chunk's frame, waits for the server to read
    /// it, and drops the connection: a chunk lost midway.
    pub async fn cut_mid_chunk(mut self, capture_id: Uuid, offset: u64, data: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let payload = Chunk {
            capture_id,
            offset,
            data,
        }
        .encode();
        let len = u16::try_from(payload.len()).expect("a small chunk");
        // Binary, final, masked with a zero key (so the payload goes as it is).
        let mut frame = vec![0x82, 0x80 | 126];
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(&payload[..payload.len() / 2]);
        let stream = self.socket.get_mut();
        stream.write_all(&frame).await.expect("half a frame");
        stream.flush().await.expect("half a frame");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    pub async fn chunk(&mut self, capture_id: Uuid, offset: u64, data: &[u8]) {
        let frame = Chunk {
            capture_id,
            offset,
            data,
        }
        .encode();
        self.send_raw(Message::Binary(frame.into())).await;
    }

    /// The next server message; `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            let frame = tokio::time::timeout(READ_LIMIT, self.socket.next())
                .await
                .expect("the server answers within the read limit");
            match frame {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("server message"));
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Reads until the server closes, returning what it said on the way.
    pub async fn until_closed(&mut self) -> Vec<ServerMessage> {
        let mut said = Vec::new();
        while let Some(msg) = self.recv().await {
            said.push(msg);
        }
        said
    }
}

pub fn offer(capture_id: Uuid, packet_id: Uuid, bytes: &[u8]) -> PageOffer {
    PageOffer {
        capture_id,
        packet_id,
        page_index: 0,
        cover_code: None,
        sha256: crate::harness::sha256_hex(bytes),
        size: bytes.len() as u64,
        content_type: "image/jpeg".into(),
        source_name: "raw.jpg".into(),
        barcodes: Vec::new(),
        blank: false,
        packet_seq: None,
    }
}

/// The error code of a server message, if it is an error.
pub fn error_code(msg: &ServerMessage) -> Option<(&str, bool, bool)> {
    match msg {
        ServerMessage::Error(e) => Some((e.code.as_str(), e.fatal, e.permanent)),
        _ => None,
    }
}
