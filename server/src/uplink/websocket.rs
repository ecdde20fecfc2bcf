//! The uplink's WebSocket (RFC 6455, server side), read as a stream.
//!
//! A general WebSocket library hands on whole messages, so every connection
//! keeps a buffer the size of a chunk. Here a chunk's bytes are handed on in
//! the pieces the socket delivers them, unmasked and checksummed on the way:
//! a connection keeps a few KiB whatever it is sent, and memory grows with
//! the pieces being written at this moment, not with the desks connected.
//!
//! Only what the agent protocol uses is accepted: masked frames, no
//! extensions, text messages (possibly fragmented, bounded), and chunks as
//! single binary frames.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::{Buf, Bytes, BytesMut};
use imc_shared::protocol::{CHUNK_HEADER, ChunkError, ChunkHead, MAX_CHUNK_BYTES};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::io::poll_read_buf;
use uuid::Uuid;

/// Largest text message (JSON) an agent may send, fragments included.
pub const MAX_TEXT_BYTES: usize = 256 * 1024;
/// How much is read at a time for frame headers, text and control frames.
const READ_BYTES: usize = 4 * 1024;
/// Most chunk bytes read in one go, straight into the piece handed on.
const MAX_PIECE_BYTES: usize = 64 * 1024;

/// Close codes (RFC 6455 section 7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_POLICY: u16 = 1008;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xa;

/// Checks a WebSocket upgrade request (HTTP/1.1) and answers it: the `101`
/// response to return, and the future that yields the connection after it.
pub fn accept(request: &mut Request) -> Result<(Response, hyper::upgrade::OnUpgrade), String> {
    let headers = request.headers();
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if request.method() != Method::GET {
        return Err("a WebSocket upgrade is a GET".into());
    }
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return Err("expected Connection: upgrade and Upgrade: websocket".into());
    }
    if !has(header::SEC_WEBSOCKET_VERSION, "13") {
        return Err("only WebSocket version 13 is spoken".into());
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return Err("no Sec-WebSocket-Key header".into());
    };
    let accept_key = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let on_upgrade = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
        .ok_or_else(|| "this connection cannot be upgraded".to_owned())?;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    let accept_key = HeaderValue::from_str(&accept_key)
        .map_err(|e| format!("encoding Sec-WebSocket-Accept: {e}"))?;
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept_key);
    Ok((response, on_upgrade))
}

/// What the agent sent, in order.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    Text(String),
    /// A chunk frame begins; `len` data bytes follow as [`Inbound::ChunkData`].
    ChunkStart {
        capture_id: Uuid,
        offset: u64,
        len: u64,
    },
    /// The next piece of the current chunk's data.
    ChunkData(Bytes),
    /// The chunk's data is complete; `intact` says whether its CRC-32 matched.
    ChunkEnd {
        intact: bool,
    },
    Ping(Bytes),
    /// The agent closed the WebSocket.
    Close,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The bytes break the WebSocket rules or this protocol's frame limits.
    #[error("{0}")]
    Frame(String),
    #[error(transparent)]
    Chunk(#[from] ChunkError),
}

fn frame_error(message: impl Into<String>) -> ReadError {
    ReadError::Frame(message.into())
}

/// Unmasks a frame's payload piece by piece.
#[derive(Debug, Clone, Copy)]
struct Mask {
    key: [u8; 4],
    /// Payload bytes unmasked so far.
    at: u64,
}

impl Mask {
    fn apply(&mut self, data: &mut [u8]) {
        // Rotate the key to this piece's start, then XOR eight bytes at a time.
        let shift = (self.at % 4) as usize;
        let key: [u8; 4] = std::array::from_fn(|i| self.key[(shift + i) % 4]);
        let wide = u64::from_ne_bytes([
            key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
        ]);
        let mut words = data.chunks_exact_mut(8);
        for word in &mut words {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(word);
            word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ wide).to_ne_bytes());
        }
        for (i, byte) in words.into_remainder().iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
        self.at += data.len() as u64;
    }
}

/// Where the reader is within the frames.
#[derive(Debug)]
enum Part {
    Header,
    Text {
        remaining: u64,
        fin: bool,
        mask: Mask,
    },
    ChunkHead {
        remaining: u64,
        head: [u8; CHUNK_HEADER],
        have: usize,
        mask: Mask,
    },
    ChunkData {
        remaining: u64,
        crc: crc32fast::Hasher,
        expected: u32,
        mask: Mask,
    },
    Control {
        opcode: u8,
        len: usize,
        mask: Mask,
    },
}

/// A frame header as sent (RFC 6455 section 5.2).
struct FrameHeader {
    fin: bool,
    reserved_bits: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: u64,
}

impl FrameHeader {
    /// The header at the start of `buf` and its length; `None` until it is all there.
    fn parse(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ReadError> {
        let [first, second, rest @ ..] = buf else {
            return Ok(None);
        };
        let masked = second & 0x80 != 0;
        let (len, len_bytes) = match second & 0x7f {
            126 => match rest.first_chunk::<2>() {
                Some(bytes) => (u64::from(u16::from_be_bytes(*bytes)), 2),
                None => return Ok(None),
            },
            127 => match rest.first_chunk::<8>() {
                Some(bytes) => (u64::from_be_bytes(*bytes), 8),
                None => return Ok(None),
            },
            short => (u64::from(short), 0),
        };
        if len >> 63 != 0 {
            return Err(frame_error("frame length has its top bit set"));
        }
        let mask = if masked {
            match rest[len_bytes..].first_chunk::<4>() {
                Some(key) => Some(*key),
                None => return Ok(None),
            }
        } else {
            None
        };
        let header = FrameHeader {
            fin: first & 0x80 != 0,
            reserved_bits: first & 0x70,
            opcode: first & 0x0f,
            mask,
            len,
        };
        Ok(Some((header, 2 + len_bytes + if masked { 4 } else { 0 })))
    }
}

/// Reads the agent's frames as [`Inbound`] events. All state lives here,
/// none in the read future, so a read abandoned in a `select!` loses nothing.
#[derive(Debug)]
pub struct FrameReader {
    /// Bytes read but not handed on yet: headers, text, small leftovers.
    buf: BytesMut,
    part: Part,
    /// A text message being assembled from its fragments.
    text: Vec<u8>,
    text_open: bool,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader {
            buf: BytesMut::new(),
            part: Part::Header,
            text: Vec::new(),
            text_open: false,
        }
    }
}

impl FrameReader {
    /// The next event; `Ok(None)` when the connection ended between frames.
    pub fn poll_next<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Inbound>, ReadError>> {
        loop {
            if let Some(event) = self.step()? {
                return Poll::Ready(Ok(Some(event)));
            }
            if let Part::ChunkData { remaining, .. } = self.part
                && self.buf.is_empty()
            {
                // Chunk bytes go from the socket straight into the piece handed on.
                let size =
                    usize::try_from(remaining).map_or(MAX_PIECE_BYTES, |r| r.min(MAX_PIECE_BYTES));
                let mut piece = BytesMut::with_capacity(size);
                if ready!(poll_read_buf(Pin::new(&mut *io), cx, &mut piece))? == 0 {
                    return Poll::Ready(Err(self.ended_mid_frame()));
                }
                return Poll::Ready(Ok(Some(self.chunk_piece(piece))));
            }
            self.buf.reserve(READ_BYTES);
            if ready!(poll_read_buf(Pin::new(&mut *io), cx, &mut self.buf))? == 0 {
                return Poll::Ready(match (&self.part, self.buf.is_empty(), self.text_open) {
                    (Part::Header, true, false) => Ok(None),
                    _ => Err(self.ended_mid_frame()),
                });
            }
        }
    }

    fn ended_mid_frame(&self) -> ReadError {
        ReadError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed in the middle of a frame",
        ))
    }

    /// Moves on with the bytes already read: an event, or `None` when more are needed.
    fn step(&mut self) -> Result<Option<Inbound>, ReadError> {
        loop {
            match &mut self.part {
                Part::Header => {
                    let Some((header, header_len)) = FrameHeader::parse(&self.buf)? else {
                        return Ok(None);
                    };
                    self.buf.advance(header_len);
                    self.part = self.begin(header)?;
                }
                Part::Text {
                    remaining,
                    fin,
                    mask,
                } => {
                    let take = self
                        .buf
                        .len()
                        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    let mut bytes = self.buf.split_to(take);
                    mask.apply(&mut bytes);
                    self.text.extend_from_slice(&bytes);
                    *remaining -= take as u64;
                    if *remaining > 0 {
                        return Ok(None);
                    }
                    let fin = *fin;
                    self.part = Part::Header;
                    if fin {
                        self.text_open = false;
                        let text = String::from_utf8(std::mem::take(&mut self.text))
                            .map_err(|_| frame_error("a text message is not UTF-8"))?;
                        return Ok(Some(Inbound::Text(text)));
                    }
                }
                Part::ChunkHead {
                    remaining,
                    head,
                    have,
                    mask,
                } => {
                    let take = self.buf.len().min(CHUNK_HEADER - *have);
                    let bytes = &mut head[*have..*have + take];
                    bytes.copy_from_slice(&self.buf[..take]);
                    mask.apply(bytes);
                    self.buf.advance(take);
                    *have += take;
                    *remaining -= take as u64;
                    if *have < CHUNK_HEADER {
                        return Ok(None);
                    }
                    let parsed = ChunkHead::parse(head);
                    let len = *remaining;
                    self.part = Part::ChunkData {
                        remaining: len,
                        crc: crc32fast::Hasher::new(),
                        expected: parsed.crc32,
                        mask: *mask,
                    };
                    return Ok(Some(Inbound::ChunkStart {
                        capture_id: parsed.capture_id,
                        offset: parsed.offset,
                        len,
                    }));
                }
                Part::ChunkData {
                    remaining,
                    crc,
                    expected,
                    ..
                } => {
                    if *remaining == 0 {
                        let intact = crc.clone().finalize() == *expected;
                        self.part = Part::Header;
                        return Ok(Some(Inbound::ChunkEnd { intact }));
                    }
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let take = self
                        .buf
                        .len()
                        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    let piece = self.buf.split_to(take);
                    return Ok(Some(self.chunk_piece(piece)));
                }
                Part::Control { opcode, len, mask } => {
                    if self.buf.len() < *len {
                        return Ok(None);
                    }
                    let mut payload = self.buf.split_to(*len);
                    mask.apply(&mut payload);
                    let opcode = *opcode;
                    self.part = Part::Header;
                    match opcode {
                        OP_PING => return Ok(Some(Inbound::Ping(payload.freeze()))),
                        OP_CLOSE => return Ok(Some(Inbound::Close)),
                        _ => {} // a pong answers nothing
                    }
                }
            }
        }
    }

    /// Unmasks and checksums the next piece of the current chunk's data.
    fn chunk_piece(&mut self, mut piece: BytesMut) -> Inbound {
        if let Part::ChunkData {
            remaining,
            crc,
            mask,
            ..
        } = &mut self.part
        {
            mask.apply(&mut piece);
            crc.update(&piece);
            *remaining -= piece.len() as u64;
        }
        Inbound::ChunkData(piece.freeze())
    }

    /// Checks a frame header against the rules and says what its payload is.
    fn begin(&mut self, header: FrameHeader) -> Result<Part, ReadError> {
        if header.reserved_bits != 0 {
            return Err(frame_error(
                "reserved bits set, but no extension was agreed",
            ));
        }
        let Some(key) = header.mask else {
            return Err(frame_error("frames from an agent must be masked"));
        };
        let mask = Mask { key, at: 0 };
        let len = header.len;
        match header.opcode {
            OP_TEXT | OP_CONTINUATION => {
                if (header.opcode == OP_TEXT) == self.text_open {
                    return Err(frame_error(if self.text_open {
                        "a new message began before the last one ended"
                    } else {
                        "a continuation frame with no message to continue"
                    }));
                }
                let total = self.text.len() as u64 + len;
                if total > MAX_TEXT_BYTES as u64 {
                    return Err(frame_error(format!(
                        "text message of {total} bytes exceeds the limit of {MAX_TEXT_BYTES}"
                    )));
                }
                self.text_open = true;
                Ok(Part::Text {
                    remaining: len,
                    fin: header.fin,
                    mask,
                })
            }
            OP_BINARY => {
                if self.text_open {
                    return Err(frame_error("a new message began before the last one ended"));
                }
                if !header.fin {
                    return Err(frame_error("a chunk must be sent as a single frame"));
                }
                let limit = (CHUNK_HEADER + MAX_CHUNK_BYTES) as u64;
                if len > limit {
                    return Err(frame_error(format!(
                        "frame of {len} bytes exceeds the limit of {limit}"
                    )));
                }
                if len < CHUNK_HEADER as u64 {
                    return Err(ChunkError::Truncated(len as usize).into());
                }
                Ok(Part::ChunkHead {
                    remaining: len,
                    head: [0; CHUNK_HEADER],
                    have: 0,
                    mask,
                })
            }
            OP_CLOSE | OP_PING | OP_PONG => {
                if !header.fin || len > 125 {
                    return Err(frame_error(
                        "a control frame must be whole and at most 125 bytes",
                    ));
                }
                Ok(Part::Control {
                    opcode: header.opcode,
                    len: len as usize,
                    mask,
                })
            }
            other => Err(frame_error(format!("unknown opcode {other:#x}"))),
        }
    }
}

/// A server frame: final, unmasked.
fn encode_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 10);
    frame.push(0x80 | opcode);
    match payload.len() {
        len if len < 126 => frame.push(len as u8),
        len if len <= usize::from(u16::MAX) => {
            frame.push(126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

/// One agent's WebSocket: the connection and the reader's state.
pub struct Link<S> {
    io: S,
    reader: FrameReader,
    /// How long a frame may take to go out before the peer counts as gone.
    send_timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<S> {
    pub fn new(io: S, send_timeout: Duration) -> Link<S> {
        Link {
            io,
            reader: FrameReader::default(),
            send_timeout,
        }
    }

    /// The next event from the agent. Cancel-safe.
    pub async fn recv(&mut self) -> Result<Option<Inbound>, ReadError> {
        std::future::poll_fn(|cx| self.reader.poll_next(&mut self.io, cx)).await
    }

    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.write(&encode_frame(OP_TEXT, text.as_bytes())).await
    }

    pub async fn pong(&mut self, payload: &[u8]) -> io::Result<()> {
        self.write(&encode_frame(OP_PONG, payload)).await
    }

    /// Sends a close frame; the connection ends when the link is dropped.
    pub async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let mut payload = code.to_be_bytes().to_vec();
        // Control frames hold at most 125 bytes; cut the reason on a character.
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        self.write(&encode_frame(OP_CLOSE, &payload)).await
    }

    async fn write(&mut self, frame: &[u8]) -> io::Result<()> {
        let write = async {
            self.io.write_all(frame).await?;
            self.io.flush().await
        };
        tokio::time::timeout(self.send_timeout, write)
            .await
            .map_err(|_| {
                let waited = self.send_timeout;
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the agent took no data for {waited:?}"),
                )
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use imc_shared::protocol::Chunk;
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::Role;

    const WAIT: Duration = Duration::from_secs(10);

    /// A real WebSocket client (tungstenite) on one end of a pipe that moves
    /// at most `pipe_bytes` at a time, and a link on the other.
    async fn pair(
        pipe_bytes: usize,
    ) -> (
        WebSocketStream<tokio::io::DuplexStream>,
        Link<tokio::io::DuplexStream>,
    ) {
        let (client, server) = tokio::io::duplex(pipe_bytes);
        let client = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        (client, Link::new(server, WAIT))
    }

    /// Reads events until a chunk ends; returns its data and whether it was intact.
    async fn read_chunk(link: &mut Link<tokio::io::DuplexStream>) -> (Uuid, u64, Vec<u8>, bool) {
        let Some(Inbound::ChunkStart {
            capture_id,
            offset,
            len,
        }) = link.recv().await.unwrap()
        else {
            panic!("expected a chunk");
        };
        let mut data = Vec::new();
        loop {
            match link.recv().await.unwrap() {
                Some(Inbound::ChunkData(piece)) => data.extend_from_slice(&piece),
                Some(Inbound::ChunkEnd { intact }) => {
                    assert_eq!(data.len() as u64, len);
                    return (capture_id, offset, data, intact);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn chunks_and_text_arrive_whole_however_the_bytes_are_cut() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let id = Uuid::new_v4();
        for pipe_bytes in [1, 7, 4096, 1 << 20] {
            let (mut client, mut link) = pair(pipe_bytes).await;
            let frame = Chunk {
                capture_id: id,
                offset: 12_345,
                data: &data,
            }
            .encode();
            let sender = tokio::spawn(async move {
                client.send(Message::text("héllo")).await.unwrap();
                client.send(Message::Binary(frame.into())).await.unwrap();
                client
                    .send(Message::Ping(b"beat".to_vec().into()))
                    .await
                    .unwrap();
                client
                    .send(Message::Binary(
                        Chunk {
                            capture_id: id,
                            offset: 0,
                            data: b"",
                        }
                        .encode()
                        .into(),
                    ))
                    .await
                    .unwrap();
                client.close(None).await.unwrap();
                client
            });
            assert_eq!(
                link.recv().await.unwrap(),
                Some(Inbound::Text("héllo".into()))
            );
            let (got_id, offset, got, intact) = read_chunk(&mut link).await;
            assert_eq!((got_id, offset, intact), (id, 12_345, true));
            assert!(
                got == data,
                "chunk bytes differ with a {pipe_bytes}-byte pipe"
            );
            assert_eq!(
                link.recv().await.unwrap(),
                Some(Inbound::Ping(Bytes::from_static(b"beat")))
            );
            let (_, _, empty, intact) = read_chunk(&mut link).await;
            assert!(empty.is_empty() && intact);
            assert_eq!(link.recv().await.unwrap(), Some(Inbound::Close));
            // The close reply reaches the client (the pipe moves only as it reads).
            let mut client = sender.await.unwrap();
            let (sent, reply) = tokio::join!(link.close(CLOSE_NORMAL, ""), client.next());
            sent.unwrap();
            assert!(matches!(reply, Some(Ok(Message::Close(_)))), "{reply:?}");
        }
    }

    #[tokio::test]
    async fn a_damaged_chunk_is_reported_at_its_end() {
        let (mut client, mut link) = pair(1 << 16).await;
        let mut frame = Chunk {
            capture_id: Uuid::new_v4(),
            offset: 0,
            data: &[5u8; 3000],
        }
        .encode();
        frame[2000] ^= 1;
        client.send(Message::Binary(frame.into())).await.unwrap();
        let (_, _, data, intact) = read_chunk(&mut link).await;
        assert_eq!(data.len(), 3000);
        assert!(!intact);
    }

    #[tokio::test]
    async fn frames_against_the_rules_are_refused() {
        // Too large a chunk: refused from its header, before its bytes arrive.
        let (mut client, mut link) = pair(1 << 16).await;
        let big = vec![0u8; CHUNK_HEADER + MAX_CHUNK_BYTES + 1];
        tokio::spawn(async move { client.send(Message::Binary(big.into())).await });
        let err = link.recv().await.unwrap_err();
        assert!(
            matches!(err, ReadError::Frame(ref m) if m.contains("exceeds the limit")),
            "{err}"
        );

        // Shorter than a chunk's header.
        let (mut client, mut link) = pair(1 << 16).await;
        client
            .send(Message::Binary(vec![1u8; 10].into()))
            .await
            .unwrap();
        assert!(matches!(
            link.recv().await,
            Err(ReadError::Chunk(ChunkError::Truncated(10)))
        ));

        // Too long a text message.
        let (mut client, mut link) = pair(1 << 16).await;
        let text = "x".repeat(MAX_TEXT_BYTES + 1);
        tokio::spawn(async move { client.send(Message::text(text)).await });
        assert!(matches!(link.recv().await, Err(ReadError::Frame(_))));

        // Unmasked (a client must mask), and text that is not UTF-8.
        for raw in [
            encode_frame(OP_TEXT, b"{}"),
            vec![0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe],
            vec![0x82 | 0x40, 0x80 | 30, 0, 0, 0, 0],
            vec![0x83, 0x80, 0, 0, 0, 0],
        ] {
            let (mut client, server) = tokio::io::duplex(1 << 16);
            let mut link = Link::new(server, WAIT);
            client.write_all(&raw).await.unwrap();
            assert!(
                matches!(link.recv().await, Err(ReadError::Frame(_))),
                "{raw:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_connection_ending_is_told_apart_from_a_cut_frame() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let mut link = Link::new(server, WAIT);
        drop(client);
        assert!(matches!(link.recv().await, Ok(None)));

        let (mut client, server) = tokio::io::duplex(1 << 16);
        let mut link = Link::new(server, WAIT);
        let frame = Chunk {
            capture_id: Uuid::new_v4(),
            offset: 0,
            data: &[1u8; 1000],
        }
        .encode();
        let mut raw = vec![0x82, 0x80 | 126];
        raw.extend_from_slice(&(frame.len() as u16).to_be_bytes());
        raw.extend_from_slice(&[0, 0, 0, 0]);
        raw.extend_from_slice(&frame[..500]);
        client.write_all(&raw).await.unwrap();
        drop(client);
        assert!(matches!(
            link.recv().await,
            Ok(Some(Inbound::ChunkStart { len: 1000, .. }))
        ));
        let mut got = 0;
        let err = loop {
            match link.recv().await {
                Ok(Some(Inbound::ChunkData(piece))) => got += piece.len(),
                Ok(other) => panic!("unexpected {other:?}"),
                Err(e) => break e,
            }
        };
        assert_eq!(got, 500 - CHUNK_HEADER);
        assert!(matches!(err, ReadError::Io(ref e) if e.kind() == io::ErrorKind::UnexpectedEof));
    }

    #[tokio::test]
    async fn the_client_reads_what_the_link_sends() {
        let (mut client, mut link) = pair(1 << 16).await;
        let long = "y".repeat(70_000);
        link.send_text("short").await.unwrap();
        link.send_text(&"z".repeat(300)).await.unwrap();
        let writer = tokio::spawn(async move {
            link.send_text(&long).await.unwrap();
            link.pong(b"beat").await.unwrap();
            link.close(CLOSE_POLICY, "replaced").await.unwrap();
            link
        });
        assert_eq!(
            client.next().await.unwrap().unwrap(),
            Message::text("short")
        );
        assert_eq!(client.next().await.unwrap().unwrap().len(), 300);
        assert_eq!(client.next().await.unwrap().unwrap().len(), 70_000);
        assert!(
            matches!(client.next().await.unwrap().unwrap(), Message::Pong(p) if &p[..] == b"beat")
        );
        match client.next().await.unwrap().unwrap() {
            Message::Close(Some(frame)) => {
                assert_eq!(u16::from(frame.code), CLOSE_POLICY);
                assert_eq!(frame.reason.as_str(), "replaced");
            }
            other => panic!("expected a close, got {other:?}"),
        }
        drop(writer.await.unwrap());
    }
}
