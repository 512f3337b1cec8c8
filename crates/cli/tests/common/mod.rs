//! Helpers for the tests that run the real `ocellus` binary as a server:
//! starting and stopping `ocellus serve`, a raw protocol connection that
//! records every frame, temporary folders, and polling with a deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ocellus_protocol::{Decoded, Frame, FrameLimits, Op, decode_frame};
use serde_json::{Map, Value, json};

/// The binary under test.
pub const OCELLUS: &str = env!("CARGO_BIN_EXE_ocellus");

/// Upper bound for anything a test waits on (the machine may be loaded:
/// this is a safety net against hangs, not a performance claim).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A folder under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty folder whose name contains `tag`.
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "ocellus-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `done` until it returns true or `limit` passes; returns whether it
/// became true.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The cluster secret every mesh node of this test process shares (a new
/// one per process, as `ocellus mesh secret` makes them).
pub fn mesh_secret() -> &'static str {
    static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| ocellus_auth::ClusterSecret::generate().to_text())
}

/// Writes `text` to a new file at `path` readable by its owner only.
pub fn write_private(path: &Path, text: &str) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).expect("creating a secret file");
    file.write_all(text.as_bytes())
        .expect("writing a secret file");
}

/// A running `ocellus serve` child process.
pub struct ServerProcess {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its HTTP API's address (unless started with `--http off`).
    pub http: Option<SocketAddr>,
    /// `http` or `https`, as its second line says (empty with `--http off`).
    pub http_scheme: &'static str,
    log: PathBuf,
    _dir: TempDir,
}

impl ServerProcess {
    /// Starts `ocellus serve --listen 127.0.0.1:0 ARGS...` and reads the
    /// address from its first line of output. Its data folder (the face
    /// store) is a fresh temporary one unless ARGS give `--data-dir`.
    pub fn start(args: &[&str]) -> ServerProcess {
        Self::start_on("127.0.0.1:0", args)
    }

    /// [`ServerProcess::start`] listening on `listen`.
    pub fn start_on(listen: &str, args: &[&str]) -> ServerProcess {
        Self::start_with_secret(listen, None, args)
    }

    /// [`ServerProcess::start`] in the mesh of this test process: with
    /// [`mesh_secret`] in a file of its own (mode 0600), given with
    /// `--cluster-secret-file`.
    pub fn start_in_mesh(args: &[&str]) -> ServerProcess {
        Self::start_with_secret("127.0.0.1:0", Some(mesh_secret()), args)
    }

    /// Starts a node listening on `listen`, with `secret` (a cluster
    /// secret's text) written to a file in its folder and given with
    /// `--cluster-secret-file` when set.
    pub fn start_with_secret(listen: &str, secret: Option<&str>, args: &[&str]) -> ServerProcess {
        let dir = TempDir::new("serve");
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).expect("creating the server log");
        let data = dir.path().join("data");
        let mut command = Command::new(OCELLUS);
        command.args(["serve", "--listen", listen]).args(args);
        // Every test node gets its own free HTTP port (the default, 8080,
        // would be shared by every node of the test run).
        let http_off = args.windows(2).any(|w| w == ["--http", "off"]);
        if !args.contains(&"--http") {
            command.args(["--http", "127.0.0.1:0"]);
        }
        if !args.contains(&"--data-dir") {
            command.arg("--data-dir").arg(&data);
        }
        if let Some(secret) = secret {
            let file = dir.path().join("cluster.secret");
            write_private(&file, secret);
            command.arg("--cluster-secret-file").arg(&file);
        }
        let mut child = command
            .env("OCELLUS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("starting ocellus serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let _ = tx.send(first);
            if !http_off {
                let mut second = String::new();
                let _ = lines.read_line(&mut second);
                let _ = tx.send(second);
            }
            // Keep draining so that the server never blocks on a full pipe.
            let _ = std::io::copy(&mut lines, &mut std::io::sink());
        });
        let first = match rx.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("ocellus serve printed nothing within {PATIENCE:?}");
            }
        };
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "unexpected first line {first:?}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let mut http_scheme = "";
        let http = if http_off {
            None
        } else {
            let line = rx.recv_timeout(PATIENCE).unwrap_or_default();
            let url = line.trim().strip_prefix("http on ").unwrap_or("");
            let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
            http_scheme = if scheme == "https" { "https" } else { "http" };
            let addr = rest.parse().ok();
            if addr.is_none() {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "unexpected second line {line:?}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            addr
        };
        ServerProcess {
            http,
            http_scheme,
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    /// The address as `host:port`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM (through `kill`, to this child's pid only).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit (polling, up to `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut status = None;
        wait_until(limit, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A new raw connection to it.
    pub fn connect(&self) -> Raw {
        Raw::connect(self.addr)
    }

    /// Its STATUS report (over a fresh connection).
    pub fn status(&self) -> Map<String, Value> {
        let mut c = self.connect();
        c.send(Op::Status, 1, json!({}), Vec::new());
        let f = c.next_frame();
        assert_eq!(f.op, Op::Result.code(), "STATUS answer: {f:?}");
        f.header
    }

    /// Checks that the server still answers a normal FILTER request, on a
    /// new connection, with a correct image.
    pub fn assert_serves(&self, image: &[u8], ops: &str) {
        let mut c = self.connect();
        c.send_filter(1, ops, image);
        let events = c.events_until_terminal(1);
        let last = events.last().expect("events");
        assert_eq!(
            last.op,
            Op::Result.code(),
            "server no longer serves: {:?}",
            describe(last)
        );
        assert_eq!(last.payload, local_filter(image, ops));
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A FILTER or STATUS frame with a JSON header.
pub fn frame(op: Op, id: u64, header: Value, payload: Vec<u8>) -> Frame {
    let header = match header {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    Frame::new(op, id, header, payload)
}

/// A FILTER frame for one image.
pub fn filter_frame(id: u64, ops: &str, image: &[u8]) -> Frame {
    frame(
        Op::Filter,
        id,
        json!({"ops": ops, "images": [image.len()]}),
        image.to_vec(),
    )
}

/// A readable summary of a frame (op name, id, header; not the payload).
pub fn describe(f: &Frame) -> String {
    let name = Op::from_code(f.op).map_or_else(|| format!("op {}", f.op), |o| format!("{o:?}"));
    format!(
        "{name} #{} {} (+{} bytes)",
        f.request_id,
        Value::Object(f.header.clone()),
        f.payload.len()
    )
}

/// The `code` of an ERROR frame.
pub fn error_code(f: &Frame) -> Option<String> {
    (f.op == Op::Error.code())
        .then(|| {
            f.header
                .get("code")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .flatten()
}

/// The result the server must send: decode, pipeline, encode with the
/// defaults (input format when writable, else PNG; JPEG quality 90).
pub fn local_filter(image: &[u8], ops: &str) -> Vec<u8> {
    use ocellus_codec::{DecodeLimits, EncodeOptions, ImageFormat, decode, encode};
    let pipeline: ocellus_imaging::pipeline::Pipeline = ops.parse().expect("valid ops");
    let (decoded, format) = decode(image, &DecodeLimits::default()).expect("decodable image");
    let result = pipeline.apply(decoded).expect("pipeline applies");
    let format = if format.can_encode() {
        format
    } else {
        ImageFormat::Png
    };
    encode(&result, format, &EncodeOptions { jpeg_quality: 90 }).expect("encodes")
}

/// How a read from the server ended.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// Orderly close.
    Eof,
    /// Reset, or another I/O error.
    Error(std::io::ErrorKind),
}

/// A protocol connection driven byte by byte from the test.
pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects (loopback), with [`PATIENCE`] as read timeout.
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connecting to the server");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects to `addr` from the loopback address `source` (127.0.0.x:
    /// another client, as far as the node's per-address caps and fair
    /// queue are concerned).
    pub fn connect_from(source: [u8; 4], addr: SocketAddr) -> Raw {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a runtime");
        let stream = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
            socket
                .bind(SocketAddr::from((source, 0)))
                .expect("binding the source address");
            let stream = socket.connect(addr).await.expect("connecting");
            stream.into_std().expect("a std stream")
        });
        stream.set_nonblocking(false).expect("blocking");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    /// Closes the connection with a reset (SO_LINGER 0), as a client that
    /// crashes or is killed does.
    pub fn reset(self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let _ = self.stream.set_nonblocking(true);
            if let Ok(stream) = tokio::net::TcpStream::from_std(self.stream) {
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(Duration::ZERO));
                drop(stream);
            }
        });
    }

    /// Writes raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes one frame.
    pub fn send(&mut self, op: Op, id: u64, header: Value, payload: Vec<u8>) {
        self.send_frame(&frame(op, id, header, payload));
    }

    /// Writes one frame.
    pub fn send_frame(&mut self, f: &Frame) {
        self.stream
            .write_all(&f.to_bytes())
            .expect("writing a frame");
    }

    /// Writes a FILTER request.
    pub fn send_filter(&mut self, id: u64, ops: &str, image: &[u8]) {
        self.send_frame(&filter_frame(id, ops, image));
    }

    /// The next frame, or how the stream ended.
    pub fn try_next_frame(&mut self) -> Result<Frame, ReadEnd> {
        let limits = FrameLimits {
            max_frame: 1 << 30,
            max_header: 1 << 24,
        };
        loop {
            match decode_frame(&self.buf, &limits) {
                Ok(Decoded::Frame(f, used)) => {
                    self.buf.drain(..used);
                    return Ok(f);
                }
                Ok(Decoded::NeedMore(_)) => {}
                Err(e) => panic!("the server sent an invalid frame: {e}"),
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ReadEnd::Eof),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    assert!(
                        !matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ),
                        "no answer from the server within the read timeout ({:?})",
                        self.stream.read_timeout().ok().flatten()
                    );
                    return Err(ReadEnd::Error(e.kind()));
                }
            }
        }
    }

    /// The next frame; panics if the connection ended.
    pub fn next_frame(&mut self) -> Frame {
        match self.try_next_frame() {
            Ok(f) => f,
            Err(end) => panic!("connection ended ({end:?}) while a frame was expected"),
        }
    }

    /// Every frame until the server closes the connection.
    pub fn frames_until_closed(&mut self) -> (Vec<Frame>, ReadEnd) {
        let mut frames = Vec::new();
        for _ in 0..100_000 {
            match self.try_next_frame() {
                Ok(f) => frames.push(f),
                Err(end) => return (frames, end),
            }
        }
        panic!("the server never closed the connection");
    }

    /// The events of request `id` up to and including its terminal event;
    /// frames of other requests read meanwhile are dropped.
    pub fn events_until_terminal(&mut self, id: u64) -> Vec<Frame> {
        let mut events = Vec::new();
        for _ in 0..100_000 {
            let f = self.next_frame();
            if f.request_id != id {
                continue;
            }
            let terminal = Op::from_code(f.op).is_some_and(Op::is_terminal);
            events.push(f);
            if terminal {
                return events;
            }
        }
        panic!("request {id} never ended");
    }

    /// Closes both directions.
    pub fn close(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Reads a photo of the shared data set.
pub fn photo(data: &Path, name: &str) -> Vec<u8> {
    let path = data.join("photos").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

impl ServerProcess {
    /// Kills the process with SIGKILL (no chance to clean up) and waits.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PNG whose header declares `width` x `height` (RGB), followed by a tiny
/// IDAT: a decompression bomb as far as the header is concerned.
pub fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    png_declaring_as(width, height, 8, 2)
}

/// A PNG whose header declares `width` x `height` at `bit_depth` bits in
/// PNG colour type `colour` (2 RGB, 6 RGBA), followed by a tiny IDAT.
pub fn png_declaring_as(width: u32, height: u32, bit_depth: u8, colour: u8) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[bit_depth, colour, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    // zlib stream of a few zero bytes (stored block).
    chunk(
        &mut png,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x04, 0x00, 0xfb, 0xff, 0, 0, 0, 0, 0, 4, 0, 1,
        ],
    );
    chunk(&mut png, b"IEND", &[]);
    png
}
