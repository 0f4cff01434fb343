//! SPDY/3.1 framing, as Kubernetes' port-forward speaks it (client-go's spdystream): frames
//! decoded from and encoded to bytes, with header blocks compressed by zlib with SPDY's preset
//! dictionary, one compression context per direction of a connection. Pure: no IO.
//!
//! Flow control (WINDOW_UPDATE, SETTINGS) is decoded but not enforced: spdystream neither
//! sends window updates nor honours them, so a peer that enforced windows would stall.

use std::sync::OnceLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The SPDY version in every control frame.
pub const VERSION: u16 = 3;
/// The largest payload a frame's 24-bit length can say.
pub const MAX_PAYLOAD: usize = (1 << 24) - 1;
/// The largest control frame this side reads (header blocks are small).
const MAX_CONTROL_PAYLOAD: usize = 1 << 20;
/// The most bytes one header block may inflate to.
const MAX_HEADER_BLOCK: usize = 1 << 20;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

const FLAG_FIN: u8 = 0x01;
const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_INVALID_STREAM: u32 = 2;

/// A header block: lowercase names, each with its values (sent joined by NUL bytes).
pub type Headers = Vec<(String, Vec<String>)>;

/// The first value of header `name` (names are lowercase on the wire).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first())
        .map(String::as_str)
}

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// (flags, id, value) of each setting.
    Settings {
        clear: bool,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
}

/// Why bytes are not SPDY/3.1: the connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpdyError {
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("control frame of type {kind} too large ({len} bytes)")]
    TooLarge { kind: u16, len: usize },
    #[error("invalid {0} frame")]
    Invalid(&'static str),
    #[error("header block: {0}")]
    HeaderBlock(String),
}

/// The words SPDY/3's dictionary starts with, each sent as a 32-bit length and the word.
const DICTIONARY_WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// The rest of SPDY/3's dictionary: plain text, no lengths.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// SPDY/3's zlib dictionary for header blocks (section 2.6.10.1 of the draft).
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::with_capacity(1423);
        for w in DICTIONARY_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

/// Reads frames from the bytes a peer sent; owns the peer's header compression context.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            inflate: Decompress::new(true),
        }
    }
}

impl Decoder {
    /// The next whole frame at the start of `buf` (consumed), or None until more bytes come.
    /// Control frames of unknown types are skipped, as SPDY says.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        loop {
            if buf.len() < 8 {
                return Ok(None);
            }
            let first = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let flags = buf[4];
            let len = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
            let control = first & 0x8000_0000 != 0;
            if control {
                let version = ((first >> 16) & 0x7fff) as u16;
                let kind = (first & 0xffff) as u16;
                if version != VERSION {
                    return Err(SpdyError::Version(version));
                }
                if len > MAX_CONTROL_PAYLOAD {
                    return Err(SpdyError::TooLarge { kind, len });
                }
            }
            if buf.len() < 8 + len {
                buf.reserve(8 + len - buf.len());
                return Ok(None);
            }
            buf.advance(8);
            let payload = buf.split_to(len).freeze();
            if !control {
                return Ok(Some(Frame::Data {
                    stream_id: first & 0x7fff_ffff,
                    fin: flags & FLAG_FIN != 0,
                    data: payload,
                }));
            }
            if let Some(frame) = self.control((first & 0xffff) as u16, flags, payload)? {
                return Ok(Some(frame));
            }
        }
    }

    fn control(&mut self, kind: u16, flags: u8, mut p: Bytes) -> Result<Option<Frame>, SpdyError> {
        let fin = flags & FLAG_FIN != 0;
        let need = |p: &Bytes, n: usize, what: &'static str| {
            if p.len() < n {
                Err(SpdyError::Invalid(what))
            } else {
                Ok(())
            }
        };
        let frame = match kind {
            TYPE_SYN_STREAM => {
                need(&p, 10, "SYN_STREAM")?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                let associated_to = p.get_u32() & 0x7fff_ffff;
                let priority = p.get_u8() >> 5;
                let _slot = p.get_u8();
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.headers(&p)?,
                }
            }
            TYPE_SYN_REPLY => {
                need(&p, 4, "SYN_REPLY")?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers: self.headers(&p)?,
                }
            }
            TYPE_HEADERS => {
                need(&p, 4, "HEADERS")?;
                let stream_id = p.get_u32() & 0x7fff_ffff;
                Frame::Headers {
                    stream_id,
                    fin,
                    headers: self.headers(&p)?,
                }
            }
            TYPE_RST_STREAM => {
                need(&p, 8, "RST_STREAM")?;
                Frame::RstStream {
                    stream_id: p.get_u32() & 0x7fff_ffff,
                    status: p.get_u32(),
                }
            }
            TYPE_SETTINGS => {
                need(&p, 4, "SETTINGS")?;
                let n = p.get_u32() as usize;
                if p.len() / 8 < n {
                    return Err(SpdyError::Invalid("SETTINGS"));
                }
                let entries = (0..n)
                    .map(|_| {
                        let id = p.get_u32();
                        ((id >> 24) as u8, id & 0xff_ffff, p.get_u32())
                    })
                    .collect();
                Frame::Settings {
                    clear: flags & 0x01 != 0,
                    entries,
                }
            }
            TYPE_PING => {
                need(&p, 4, "PING")?;
                Frame::Ping { id: p.get_u32() }
            }
            TYPE_GOAWAY => {
                need(&p, 8, "GOAWAY")?;
                Frame::GoAway {
                    last_good_stream_id: p.get_u32() & 0x7fff_ffff,
                    status: p.get_u32(),
                }
            }
            TYPE_WINDOW_UPDATE => {
                need(&p, 8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream_id: p.get_u32() & 0x7fff_ffff,
                    delta: p.get_u32() & 0x7fff_ffff,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }

    /// Inflates one frame's header block (a sync-flushed piece of the peer's zlib stream).
    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let mut out: Vec<u8> = Vec::with_capacity(256);
        let mut input = compressed;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(SpdyError::HeaderBlock("too large".into()));
                }
                out.reserve(out.len().max(256));
            }
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let result = self
                .inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let used = (self.inflate.total_in() - in_before) as usize;
            let produced = self.inflate.total_out() - out_before;
            input = &input[used..];
            let room = out.len() < out.capacity();
            match result {
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(dictionary())
                        .map_err(|e| SpdyError::HeaderBlock(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::HeaderBlock(e.to_string())),
                Ok(Status::StreamEnd) => break,
                Ok(_) if input.is_empty() && room => break,
                Ok(_) if used == 0 && produced == 0 && room => {
                    return Err(SpdyError::HeaderBlock("the zlib stream stalled".into()));
                }
                Ok(_) => {}
            }
        }
        parse_header_block(&out)
    }
}

/// Parses an inflated header block: a count, then length-prefixed names and values.
pub fn parse_header_block(mut b: &[u8]) -> Result<Headers, SpdyError> {
    let bad = |why: &str| SpdyError::HeaderBlock(why.to_string());
    let take_u32 = |b: &mut &[u8]| -> Result<usize, SpdyError> {
        if b.len() < 4 {
            return Err(bad("truncated"));
        }
        let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        *b = &b[4..];
        Ok(n)
    };
    let count = take_u32(&mut b)?;
    // Each entry takes at least 8 bytes: a bound before allocating.
    if count > b.len() / 8 {
        return Err(bad("more entries than bytes"));
    }
    let mut headers = Headers::with_capacity(count);
    for _ in 0..count {
        let text = |b: &mut &[u8]| -> Result<String, SpdyError> {
            let n = take_u32(b)?;
            if b.len() < n {
                return Err(bad("truncated"));
            }
            let s = String::from_utf8(b[..n].to_vec()).map_err(|_| bad("not UTF-8"))?;
            *b = &b[n..];
            Ok(s)
        };
        let name = text(&mut b)?.to_ascii_lowercase();
        let value = text(&mut b)?;
        if name.is_empty() {
            return Err(bad("empty header name"));
        }
        let values = value.split('\0').map(str::to_string).collect();
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.extend::<Vec<String>>(values),
            None => headers.push((name, values)),
        }
    }
    Ok(headers)
}

/// The uncompressed header block of `headers`.
pub fn header_block(headers: &Headers) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, values) in headers {
        let name = name.to_ascii_lowercase();
        let value = values.join("\0");
        b.extend_from_slice(&(name.len() as u32).to_be_bytes());
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(&(value.len() as u32).to_be_bytes());
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// Writes frames for a peer; owns this side's header compression context.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        // Cannot fail on a fresh zlib stream.
        let _ = deflate.set_dictionary(dictionary());
        Encoder { deflate }
    }
}

impl Encoder {
    /// Appends `frame` to `out`. Data payloads longer than a frame can say are split.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) {
        match frame {
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                let mut chunks = data.chunks(MAX_PAYLOAD).peekable();
                if chunks.peek().is_none() {
                    data_header(out, *stream_id, *fin, 0);
                }
                while let Some(chunk) = chunks.next() {
                    let last = chunks.peek().is_none();
                    data_header(out, *stream_id, *fin && last, chunk.len());
                    out.extend_from_slice(chunk);
                }
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin,
                unidirectional,
                headers,
            } => {
                let block = self.compress(headers);
                let flags = fin_flag(*fin)
                    | if *unidirectional {
                        FLAG_UNIDIRECTIONAL
                    } else {
                        0
                    };
                control_header(out, TYPE_SYN_STREAM, flags, 10 + block.len());
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(associated_to & 0x7fff_ffff);
                out.put_u8((priority & 0x07) << 5);
                out.put_u8(0);
                out.extend_from_slice(&block);
            }
            Frame::SynReply {
                stream_id,
                fin,
                headers,
            } => {
                let block = self.compress(headers);
                control_header(out, TYPE_SYN_REPLY, fin_flag(*fin), 4 + block.len());
                out.put_u32(stream_id & 0x7fff_ffff);
                out.extend_from_slice(&block);
            }
            Frame::Headers {
                stream_id,
                fin,
                headers,
            } => {
                let block = self.compress(headers);
                control_header(out, TYPE_HEADERS, fin_flag(*fin), 4 + block.len());
                out.put_u32(stream_id & 0x7fff_ffff);
                out.extend_from_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control_header(out, TYPE_RST_STREAM, 0, 8);
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::Settings { clear, entries } => {
                control_header(out, TYPE_SETTINGS, u8::from(*clear), 4 + 8 * entries.len());
                out.put_u32(entries.len() as u32);
                for (flags, id, value) in entries {
                    out.put_u32((u32::from(*flags) << 24) | (id & 0xff_ffff));
                    out.put_u32(*value);
                }
            }
            Frame::Ping { id } => {
                control_header(out, TYPE_PING, 0, 4);
                out.put_u32(*id);
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                control_header(out, TYPE_GOAWAY, 0, 8);
                out.put_u32(last_good_stream_id & 0x7fff_ffff);
                out.put_u32(*status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_header(out, TYPE_WINDOW_UPDATE, 0, 8);
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(delta & 0x7fff_ffff);
            }
        }
    }

    /// Deflates one header block, sync-flushed so that the peer can read it at once.
    fn compress(&mut self, headers: &Headers) -> Vec<u8> {
        let block = header_block(headers);
        let mut out = Vec::with_capacity(block.len() + 64);
        let mut input = &block[..];
        loop {
            if out.len() == out.capacity() {
                out.reserve(64);
            }
            let before = self.deflate.total_in();
            // Only a programming error makes deflate fail on memory buffers.
            let _ = self
                .deflate
                .compress_vec(input, &mut out, FlushCompress::Sync);
            input = &input[(self.deflate.total_in() - before) as usize..];
            // Done once all input is in and the flush had room to finish.
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }
}

fn fin_flag(fin: bool) -> u8 {
    if fin { FLAG_FIN } else { 0 }
}

fn control_header(out: &mut BytesMut, kind: u16, flags: u8, len: usize) {
    out.put_u32(0x8000_0000 | (u32::from(VERSION) << 16) | u32::from(kind));
    out.put_u32((u32::from(flags) << 24) | (len as u32 & 0xff_ffff));
}

fn data_header(out: &mut BytesMut, stream_id: u32, fin: bool, len: usize) {
    out.put_u32(stream_id & 0x7fff_ffff);
    out.put_u32((u32::from(fin_flag(fin)) << 24) | (len as u32 & 0xff_ffff));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect()
    }

    fn encode_all(frames: &[Frame]) -> BytesMut {
        let mut enc = Encoder::default();
        let mut out = BytesMut::new();
        for f in frames {
            enc.encode(f, &mut out);
        }
        out
    }

    fn decode_all(mut buf: BytesMut) -> Vec<Frame> {
        let mut dec = Decoder::default();
        let mut frames = Vec::new();
        while let Some(f) = dec.decode(&mut buf).expect("decodes") {
            frames.push(f);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        frames
    }

    #[test]
    fn the_dictionary_is_spdy3s() {
        // Its length and its Adler-32 (which zlib streams name it by) are the draft's.
        assert_eq!(dictionary().len(), 1423);
        let mut c = Compress::new(Compression::default(), true);
        assert_eq!(c.set_dictionary(dictionary()).unwrap(), 0xe3c6_a7c2);
    }

    #[test]
    fn fixed_frames_have_their_wire_bytes() {
        let cases: Vec<(Frame, Vec<u8>)> = vec![
            (
                Frame::Data {
                    stream_id: 3,
                    fin: false,
                    data: Bytes::from_static(b"hi"),
                },
                vec![0, 0, 0, 3, 0, 0, 0, 2, b'h', b'i'],
            ),
            (
                Frame::Data {
                    stream_id: 5,
                    fin: true,
                    data: Bytes::new(),
                },
                vec![0, 0, 0, 5, 1, 0, 0, 0],
            ),
            (
                Frame::Ping { id: 7 },
                vec![0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 7],
            ),
            (
                Frame::RstStream {
                    stream_id: 1,
                    status: RST_PROTOCOL_ERROR,
                },
                vec![0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 1],
            ),
            (
                Frame::GoAway {
                    last_good_stream_id: 9,
                    status: 0,
                },
                vec![0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 0],
            ),
            (
                Frame::WindowUpdate {
                    stream_id: 1,
                    delta: 65536,
                },
                vec![0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 1, 0, 0],
            ),
            (
                Frame::Settings {
                    clear: false,
                    entries: vec![(1, 7, 65536)],
                },
                vec![
                    0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 1, 1, 0, 0, 7, 0, 1, 0, 0,
                ],
            ),
        ];
        for (frame, want) in cases {
            let bytes = encode_all(std::slice::from_ref(&frame));
            assert_eq!(&bytes[..], &want[..], "{frame:?}");
            assert_eq!(decode_all(bytes), vec![frame]);
        }
    }

    #[test]
    fn frames_round_trip_sharing_one_compression_context() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: hs(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 0,
                priority: 7,
                fin: true,
                unidirectional: true,
                headers: hs(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Headers::new(),
            },
            Frame::Headers {
                stream_id: 3,
                fin: true,
                headers: vec![("multi".into(), vec!["a".into(), "b".into()])],
            },
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: Bytes::from(vec![0xab; 70_000]),
            },
        ];
        assert_eq!(decode_all(encode_all(&frames)), frames);
    }

    #[test]
    fn another_zlibs_header_blocks_decode() {
        // Two SYN_STREAMs as client-go writes them (a zlib stream at best compression with
        // the dictionary, sync-flushed after each block), made with Python's zlib.
        let bytes: [u8; 100] = [
            128, 3, 0, 1, 0, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 120, 249, 227, 198, 167, 194,
            2, 37, 58, 112, 58, 43, 41, 74, 77, 204, 133, 22, 37, 172, 169, 160, 128, 134, 20, 203,
            69, 160, 36, 204, 100, 97, 0, 36, 57, 139, 32, 145, 152, 9, 74, 220, 140, 6, 0, 0, 0,
            0, 255, 255, 128, 3, 0, 1, 0, 0, 0, 24, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 194, 170, 21, 84,
            10, 37, 18, 210, 9, 0, 0, 0, 255, 255,
        ];
        let syn = |stream_id, kind| Frame::SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            fin: false,
            unidirectional: false,
            headers: hs(&[("streamtype", kind), ("port", "80"), ("requestid", "0")]),
        };
        assert_eq!(
            decode_all(BytesMut::from(&bytes[..])),
            vec![syn(1, "error"), syn(3, "data")]
        );
    }

    #[test]
    fn partial_bytes_wait_for_the_rest() {
        let whole = encode_all(&[
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: hs(&[("a", "b")]),
            },
            Frame::Ping { id: 1 },
        ]);
        let mut dec = Decoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in whole.iter() {
            buf.put_u8(*b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Frame::Ping { id: 1 });
    }

    #[test]
    fn unknown_control_frames_are_skipped_and_bad_ones_refused() {
        let mut buf = BytesMut::from(&[0x80, 3, 0, 0x0a, 0, 0, 0, 2, 1, 2][..]);
        buf.extend_from_slice(&[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]);
        assert_eq!(decode_all(buf), vec![Frame::Ping { id: 1 }]);
        let cases: Vec<(Vec<u8>, SpdyError)> = vec![
            (
                vec![0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1],
                SpdyError::Version(2),
            ),
            (
                vec![0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1],
                SpdyError::Invalid("RST_STREAM"),
            ),
            (
                vec![0x80, 3, 0, 1, 0, 0xff, 0xff, 0xff],
                SpdyError::TooLarge {
                    kind: 1,
                    len: 0xff_ffff,
                },
            ),
            (
                // A SYN_STREAM whose header block is not zlib.
                vec![
                    0x80, 3, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2,
                ],
                SpdyError::HeaderBlock(String::new()),
            ),
        ];
        for (bytes, want) in cases {
            let got = Decoder::default().decode(&mut BytesMut::from(&bytes[..]));
            match (got, want) {
                (Err(SpdyError::HeaderBlock(_)), SpdyError::HeaderBlock(_)) => {}
                (got, want) => assert_eq!(got, Err(want), "{bytes:?}"),
            }
        }
    }

    #[test]
    fn header_blocks_parse_and_refuse_garbage() {
        let block = header_block(&vec![
            ("StreamType".into(), vec!["data".into()]),
            ("x".into(), vec!["1".into(), "2".into()]),
        ]);
        assert_eq!(
            parse_header_block(&block).unwrap(),
            vec![
                ("streamtype".to_string(), vec!["data".to_string()]),
                ("x".to_string(), vec!["1".to_string(), "2".to_string()]),
            ]
        );
        let bad: [&[u8]; 4] = [
            &[0, 0],
            &[0, 0, 0, 9],
            &[0, 0, 0, 1, 0, 0, 0, 5, b'a', 0, 0, 0, 0],
            &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        ];
        for b in bad {
            assert!(parse_header_block(b).is_err(), "{b:?}");
        }
    }

    #[test]
    fn a_header_lookup_ignores_case() {
        let h = hs(&[("port", "80")]);
        assert_eq!(header(&h, "Port"), Some("80"));
        assert_eq!(header(&h, "requestid"), None);
    }
}
