//! Client connections as the HTTP/2 stack needs them: the `:authority` of
//! clients that send a whole URL repaired.
//!
//! etcdctl 3.4 dials `endpoint status --endpoints=http://host:port` with the
//! URL itself as the HTTP/2 `:authority`. etcd's Go server accepts that; the
//! h2 crate resets the stream as malformed before any handler runs. So each
//! accepted connection is wrapped in [`FixAuthority`]: it decodes the first
//! HTTP/2 header block the client sends. If that block's authority has a
//! scheme, every header block of the connection is rewritten from then on
//! (the authority without its scheme, re-encoded as HPACK literals that
//! never touch the dynamic table, so the server's table stays consistent).
//! Otherwise the wrapper steps aside and bytes pass through untouched: a
//! well-behaved client pays for one header decode per connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use loona_hpack::Decoder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// The largest frame payload every HTTP/2 peer accepts.
const MAX_FRAME: usize = 16_384;
/// The most bytes of one header block (HEADERS and CONTINUATION frames)
/// gathered before giving up on repairing it.
const MAX_HEADER_BLOCK: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Waiting to see whether the client speaks HTTP/2.
    Preface,
    /// HTTP/2: waiting for the first complete header block.
    FirstBlock,
    /// The client sends URLs as authority: rewrite every header block.
    Rewrite,
    /// Nothing to repair: forward bytes as they come.
    Passthrough,
    /// A rewritten connection sent more than this layer holds: reads fail.
    Broken,
}

/// A header block being gathered from HEADERS and CONTINUATION frames.
struct Block {
    stream_id: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as received, forwarded unchanged when nothing is repaired.
    raw: Vec<u8>,
}

/// A client stream whose HTTP/2 `:authority` is repaired (see the module
/// docs). Writes go straight to the inner stream.
pub struct FixAuthority<S> {
    inner: S,
    mode: Mode,
    /// Bytes read from the client, not yet processed.
    input: Vec<u8>,
    /// Processed bytes for the server to read, from `output_pos` on.
    output: Vec<u8>,
    output_pos: usize,
    decoder: Decoder<'static>,
    block: Option<Block>,
}

impl<S> FixAuthority<S> {
    /// Wraps a freshly accepted connection.
    pub fn new(inner: S) -> Self {
        FixAuthority {
            inner,
            mode: Mode::Preface,
            input: Vec::new(),
            output: Vec::new(),
            output_pos: 0,
            decoder: Decoder::new(),
            block: None,
        }
    }

    /// Moves what can be decided from `input` to `output`.
    fn process(&mut self) {
        if self.mode == Mode::Preface {
            let n = self.input.len().min(PREFACE.len());
            if self.input[..n] != PREFACE[..n] {
                self.mode = Mode::Passthrough;
            } else if n == PREFACE.len() {
                self.output.extend(self.input.drain(..n));
                self.mode = Mode::FirstBlock;
            } else {
                return;
            }
        }
        while matches!(self.mode, Mode::FirstBlock | Mode::Rewrite) {
            if self.over_budget() {
                if self.mode == Mode::Rewrite {
                    // The server's HPACK table has not seen this client's
                    // entries: its bytes can no longer pass unchanged.
                    self.mode = Mode::Broken;
                    return;
                }
                // Not a request this layer can repair: hand the bytes to
                // the HTTP/2 server as they are, which refuses them.
                self.mode = Mode::Passthrough;
                if let Some(block) = self.block.take() {
                    self.output.extend_from_slice(&block.raw);
                }
                break;
            }
            let Some(len) = frame_len(&self.input) else {
                return;
            };
            let frame: Vec<u8> = self.input.drain(..FRAME_HEADER + len).collect();
            self.frame(frame);
        }
        if self.mode == Mode::Passthrough {
            self.output.append(&mut self.input);
        }
    }

    /// Whether the frame being received is larger than HTTP/2 allows
    /// without a SETTINGS change, or the header block being gathered
    /// exceeds [`MAX_HEADER_BLOCK`]: what is held for one connection stays
    /// a few KiB, whatever the client sends.
    fn over_budget(&self) -> bool {
        let declared = self
            .input
            .get(..3)
            .map_or(0, |h| u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize);
        declared > MAX_FRAME
            || self
                .block
                .as_ref()
                .is_some_and(|b| b.raw.len() > MAX_HEADER_BLOCK)
    }

    fn frame(&mut self, frame: Vec<u8>) {
        let (kind, flags) = (frame[3], frame[4]);
        let stream_id = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
        let payload = &frame[FRAME_HEADER..];
        match (kind, &mut self.block) {
            (HEADERS, None) => {
                let Some((priority, fragment)) = split_headers(flags, payload) else {
                    self.output.extend_from_slice(&frame);
                    return;
                };
                self.block = Some(Block {
                    stream_id,
                    end_stream: flags & END_STREAM != 0,
                    priority,
                    fragment: fragment.to_vec(),
                    raw: frame.clone(),
                });
            }
            (CONTINUATION, Some(block)) if block.stream_id == stream_id => {
                block.fragment.extend_from_slice(payload);
                block.raw.extend_from_slice(&frame);
            }
            _ => {
                self.output.extend_from_slice(&frame);
                return;
            }
        }
        if flags & END_HEADERS != 0 {
            let block = self.block.take().expect("a block is being gathered");
            self.finish(block);
        }
    }

    fn finish(&mut self, block: Block) {
        let Ok(mut headers) = self.decoder.decode(&block.fragment) else {
            // Let the server report the bad block.
            self.output.extend_from_slice(&block.raw);
            return;
        };
        let repaired = repair(&mut headers);
        if self.mode == Mode::FirstBlock && !repaired {
            self.output.extend_from_slice(&block.raw);
            self.mode = Mode::Passthrough;
            return;
        }
        self.mode = Mode::Rewrite;
        let mut encoded = Vec::new();
        for (name, value) in &headers {
            // Literal header field without indexing, new name (RFC 7541 6.2.2).
            encoded.push(0);
            encode_string(&mut encoded, name);
            encode_string(&mut encoded, value);
        }
        write_headers(&mut self.output, &block, &encoded);
    }
}

/// The payload length of the first frame in `buf`, if the whole frame is
/// there.
fn frame_len(buf: &[u8]) -> Option<usize> {
    let header = buf.get(..FRAME_HEADER)?;
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    (buf.len() >= FRAME_HEADER + len).then_some(len)
}

/// A HEADERS payload's priority fields and header block fragment, padding
/// removed; `None` if the lengths do not add up.
fn split_headers(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut p = payload;
    if flags & PADDED != 0 {
        let (&pad, rest) = p.split_first()?;
        p = rest.get(..rest.len().checked_sub(pad as usize)?)?;
    }
    let mut priority = None;
    if flags & PRIORITY != 0 {
        priority = Some(p.get(..5)?.try_into().ok()?);
        p = &p[5..];
    }
    Some((priority, p))
}

/// Strips the scheme (and any path) from a URL-shaped `:authority`; true if
/// it changed anything.
fn repair(headers: &mut [(Vec<u8>, Vec<u8>)]) -> bool {
    let mut changed = false;
    for (name, value) in headers.iter_mut() {
        if name.as_slice() != b":authority" {
            continue;
        }
        if let Some(at) = value.windows(3).position(|w| w == b"://") {
            let rest = &value[at + 3..];
            let host = rest.split(|b| *b == b'/').next().unwrap_or_default();
            *value = if host.is_empty() {
                b"localhost".to_vec()
            } else {
                host.to_vec()
            };
            changed = true;
        }
    }
    changed
}

/// An HPACK integer with an `n`-bit prefix whose other bits are `first`.
fn encode_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// An HPACK string literal, not Huffman-coded.
fn encode_string(out: &mut Vec<u8>, s: &[u8]) {
    encode_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// Frames a re-encoded header block: one HEADERS frame, then CONTINUATION
/// frames if it exceeds the smallest frame size every peer accepts.
fn write_headers(out: &mut Vec<u8>, block: &Block, encoded: &[u8]) {
    let mut payload = Vec::with_capacity(encoded.len() + 5);
    if let Some(p) = block.priority {
        payload.extend_from_slice(&p);
    }
    payload.extend_from_slice(encoded);
    let mut chunks = payload.chunks(MAX_FRAME).peekable();
    let mut kind = HEADERS;
    let mut flags = if block.end_stream { END_STREAM } else { 0 }
        | if block.priority.is_some() {
            PRIORITY
        } else {
            0
        };
    // An empty block still needs its HEADERS frame.
    let empty: &[u8] = &[];
    let mut next = chunks.next().or(Some(empty));
    while let Some(chunk) = next {
        next = chunks.next();
        if next.is_none() {
            flags |= END_HEADERS;
        }
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes()[1..]);
        out.push(kind);
        out.push(flags);
        out.extend_from_slice(&block.stream_id.to_be_bytes());
        out.extend_from_slice(chunk);
        kind = CONTINUATION;
        flags = 0;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FixAuthority<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.output_pos < this.output.len() {
                let n = buf.remaining().min(this.output.len() - this.output_pos);
                buf.put_slice(&this.output[this.output_pos..this.output_pos + n]);
                this.output_pos += n;
                if this.output_pos == this.output.len() {
                    this.output.clear();
                    this.output_pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.mode == Mode::Passthrough && this.input.is_empty() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            this.process();
            if this.mode == Mode::Broken && this.output.is_empty() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "HTTP/2 header block over the repair layer's budget",
                )));
            }
            if !this.output.is_empty() {
                continue;
            }
            let mut chunk = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                // End of stream: hand over what is left as it is.
                this.output.append(&mut this.input);
                if this.output.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.input.extend_from_slice(rb.filled());
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FixAuthority<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use loona_hpack::Encoder;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn headers_frame(stream_id: u32, flags: u8, block: &[u8]) -> Vec<u8> {
        let mut f = (block.len() as u32).to_be_bytes()[1..].to_vec();
        f.push(HEADERS);
        f.push(flags);
        f.extend_from_slice(&stream_id.to_be_bytes());
        f.extend_from_slice(block);
        f
    }

    fn request(encoder: &mut Encoder<'_>, authority: &str) -> Vec<u8> {
        encoder.encode([
            (&b":method"[..], &b"POST"[..]),
            (b":scheme", b"http"),
            (b":path", b"/etcdserverpb.Maintenance/Status"),
            (b":authority", authority.as_bytes()),
            (b"content-type", b"application/grpc"),
        ])
    }

    /// Feeds `input` through the wrapper and returns what the server reads.
    async fn through(input: Vec<u8>) -> Vec<u8> {
        let mut out = Vec::new();
        FixAuthority::new(&input[..])
            .read_to_end(&mut out)
            .await
            .unwrap();
        out
    }

    /// The header lists of every HEADERS block in `bytes` after the preface.
    fn decode_all(bytes: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut rest = &bytes[PREFACE.len()..];
        let mut decoder = Decoder::new();
        let mut blocks = Vec::new();
        while let Some(len) = frame_len(rest) {
            if rest[3] == HEADERS {
                let (_, frag) =
                    split_headers(rest[4], &rest[FRAME_HEADER..FRAME_HEADER + len]).unwrap();
                blocks.push(decoder.decode(frag).unwrap());
            }
            rest = &rest[FRAME_HEADER + len..];
        }
        blocks
    }

    fn authority(block: &[(Vec<u8>, Vec<u8>)]) -> String {
        let v = &block.iter().find(|(n, _)| n == b":authority").unwrap().1;
        String::from_utf8(v.clone()).unwrap()
    }

    #[tokio::test]
    async fn url_authority_is_repaired_on_every_request_of_the_connection() {
        let mut enc = Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(
            1,
            END_HEADERS,
            &request(&mut enc, "http://127.0.0.1:2379"),
        ));
        // The second request refers to the first one's table entries.
        input.extend(headers_frame(
            3,
            END_HEADERS,
            &request(&mut enc, "http://127.0.0.1:2379"),
        ));
        let out = through(input).await;
        let blocks = decode_all(&out);
        assert_eq!(blocks.len(), 2);
        for b in &blocks {
            assert_eq!(authority(b), "127.0.0.1:2379");
            assert_eq!(b[2].1, b"/etcdserverpb.Maintenance/Status");
        }
    }

    #[tokio::test]
    async fn well_formed_connections_pass_through_unchanged() {
        let mut enc = Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(
            1,
            END_HEADERS | END_STREAM,
            &request(&mut enc, "127.0.0.1:2379"),
        ));
        input.extend(b"any later bytes");
        assert_eq!(through(input.clone()).await, input);
        let http1 = b"GET /health HTTP/1.1\r\nHost: http://x\r\n\r\n".to_vec();
        assert_eq!(through(http1.clone()).await, http1);
    }

    #[tokio::test]
    async fn continuation_frames_are_joined_and_flags_kept() {
        let mut enc = Encoder::new();
        let block = request(&mut enc, "http://localhost:2379/");
        let (a, b) = block.split_at(block.len() / 2);
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(5, END_STREAM, a));
        let mut cont = (b.len() as u32).to_be_bytes()[1..].to_vec();
        cont.extend([CONTINUATION, END_HEADERS]);
        cont.extend(5u32.to_be_bytes());
        cont.extend(b);
        input.extend(cont);
        let out = through(input).await;
        let frame = &out[PREFACE.len()..];
        assert_eq!(frame[3], HEADERS);
        assert_eq!(frame[4], END_STREAM | END_HEADERS);
        assert_eq!(authority(&decode_all(&out)[0]), "localhost:2379");
    }

    /// Reads from the wrapper until it yields more than `want` bytes,
    /// while the client has sent `sent` and keeps the connection open.
    async fn forwarded_while_open(sent: Vec<u8>, want: usize) -> usize {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        client.write_all(&sent).await.unwrap();
        let mut wrapper = FixAuthority::new(server);
        let mut got = 0;
        let mut buf = [0u8; 4096];
        while got <= want {
            let n = tokio::time::timeout(std::time::Duration::from_secs(5), wrapper.read(&mut buf))
                .await
                .expect("the wrapper forwards without waiting for the rest")
                .unwrap();
            got += n;
        }
        got
    }

    #[tokio::test]
    async fn an_oversized_frame_or_header_block_is_not_buffered() {
        // A frame header announcing 16 MiB, then a little of it.
        let mut input = PREFACE.to_vec();
        input.extend([0xff, 0xff, 0xff, HEADERS, 0, 0, 0, 0, 1]);
        input.extend([0u8; 1000]);
        let want = input.len() - 1;
        assert!(forwarded_while_open(input, want).await > want);

        // A header block that never ends: CONTINUATION frames past 64 KiB.
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(1, 0, &[0u8; 16_000]));
        for _ in 0..5 {
            input.extend((16_000u32).to_be_bytes()[1..].iter());
            input.extend([CONTINUATION, 0, 0, 0, 0, 1]);
            input.extend([0u8; 16_000]);
        }
        let want = input.len() - 1;
        assert!(forwarded_while_open(input, want).await > want);
    }

    #[tokio::test]
    async fn a_rewritten_connection_past_the_budget_fails_its_reads() {
        let mut enc = Encoder::new();
        let mut input = PREFACE.to_vec();
        input.extend(headers_frame(
            1,
            END_HEADERS,
            &request(&mut enc, "http://127.0.0.1:2379"),
        ));
        input.extend(headers_frame(3, 0, &[0u8; 16_000]));
        for _ in 0..5 {
            input.extend((16_000u32).to_be_bytes()[1..].iter());
            input.extend([CONTINUATION, 0, 0, 0, 0, 3]);
            input.extend([0u8; 16_000]);
        }
        let mut out = Vec::new();
        let err = FixAuthority::new(&input[..])
            .read_to_end(&mut out)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(authority(&decode_all(&out)[0]), "127.0.0.1:2379");
    }
}
