//! TLS on the protocol port, proven with real processes on loopback: a
//! TLS client and node talk, a client and a node that disagree about TLS
//! say so clearly, an untrusted certificate is refused, `--tls-server-name`
//! names the certificate, TLS peers of a mesh share work, and a detection
//! node reaches its recognition node over TLS.
//!
//! Certificates are made at run time with rcgen: one private CA signs every
//! node certificate (valid for `localhost` and `127.0.0.1`, or for a name
//! chosen by the test), and each node's chain file ends with that CA.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{OCELLUS, PATIENCE, ServerProcess, TempDir, wait_until};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::Value;

const OPS: &str = "blur=3";
const IMAGE: &str = "fr_obama_small.jpg";

/// A private CA, writing node certificates it signs into a folder.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: TempDir,
    /// The CA certificate (PEM), for `--ca` and `--peer-ca`.
    cert: PathBuf,
}

/// A node certificate chain and key, as files.
struct NodeCert {
    chain: PathBuf,
    key: PathBuf,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let dir = TempDir::new("tls");
        let cert = dir.path().join(format!("{name}-ca.pem"));
        std::fs::write(&cert, issuer.pem()).expect("writing the CA");
        Ca { issuer, dir, cert }
    }

    /// A certificate for `names` (DNS names or IP addresses), its chain
    /// file holding the certificate then the CA.
    fn node(&self, file: &str, names: &[&str]) -> NodeCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).expect("node params");
        let key = KeyPair::generate().expect("node key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("node certificate");
        let chain = self.dir.path().join(format!("{file}.pem"));
        let key_file = self.dir.path().join(format!("{file}-key.pem"));
        std::fs::write(&chain, format!("{}{}", cert.pem(), self.issuer.pem())).expect("chain");
        std::fs::write(&key_file, key.serialize_pem()).expect("key");
        NodeCert {
            chain,
            key: key_file,
        }
    }

    /// The usual node certificate: valid for localhost and 127.0.0.1.
    fn loopback(&self, file: &str) -> NodeCert {
        self.node(file, &["localhost", "127.0.0.1"])
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// `serve` arguments for TLS with `cert`, then `extra`.
fn tls_args<'a>(cert: &'a NodeCert, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--tls-cert", s(&cert.chain), "--tls-key", s(&cert.key)];
    args.extend_from_slice(extra);
    args
}

fn ocellus(args: &[&str]) -> Output {
    Command::new(OCELLUS)
        .args(args)
        .env_remove("OCELLUS_SERVER")
        .env_remove("OCELLUS_KEY")
        .output()
        .expect("running ocellus")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ocellus status --json` over TLS trusting `ca`.
fn status(addr: &str, ca: &Path) -> Value {
    let out = ocellus(&["status", "--server", addr, "--ca", s(ca), "--json"]);
    assert!(out.status.success(), "status failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

/// Filters `files` on the node at `addr` with `connect` flags into a new
/// folder; returns the folder.
fn filter_remote(addr: &str, connect: &[&str], files: &[&Path], out: &Path) {
    let mut args = vec!["filter", "--server", addr, "--ops", OPS, "-o", s(out)];
    args.extend_from_slice(connect);
    args.extend(files.iter().map(|f| s(f)));
    let run = ocellus(&args);
    assert!(
        run.status.success(),
        "filter --server failed: {}",
        stderr(&run)
    );
}

/// `ocellus filter --local` of `file` into `out`; returns the result bytes.
fn filter_local(file: &Path, out: &Path) -> Vec<u8> {
    let run = ocellus(&["filter", "--local", "--ops", OPS, "-o", s(out), s(file)]);
    assert!(
        run.status.success(),
        "filter --local failed: {}",
        stderr(&run)
    );
    read_only_file(out)
}

fn read_only_file(dir: &Path) -> Vec<u8> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("output folder")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::read(files.remove(0)).expect("result")
}

#[test]
fn a_tls_client_and_node_filter_a_photo_as_the_local_run_does() {
    let data = ocellus_testdata::require_data!();
    let file = data.join("photos").join(IMAGE);
    let ca = Ca::new("cluster");
    let cert = ca.loopback("node");
    let node = ServerProcess::start(&tls_args(&cert, &["--roles", "filter", "--workers", "1"]));
    let addr = node.address();
    let work = TempDir::new("tls-filter");
    let (remote, local) = (work.path().join("remote"), work.path().join("local"));

    filter_remote(&addr, &["--ca", s(&ca.cert)], &[&file], &remote);
    assert!(read_only_file(&remote) == filter_local(&file, &local));
    assert_eq!(status(&addr, &ca.cert)["tls"], Value::Bool(true));
    assert!(node.log().contains("tls=true"), "{}", node.log());
}

#[test]
fn a_plain_client_is_told_that_the_node_speaks_tls() {
    let ca = Ca::new("cluster");
    let cert = ca.loopback("node");
    let node = ServerProcess::start(&tls_args(&cert, &["--roles", "filter"]));
    let addr = node.address();

    let out = ocellus(&["status", "--server", &addr]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("the node at {addr} speaks TLS: use --tls")),
        "{err}"
    );
    let logged = wait_until(PATIENCE, || {
        node.log().contains("plain-text client on the TLS port")
    });
    assert!(logged, "{}", node.log());
}

#[test]
fn a_certificate_signed_by_another_ca_is_refused() {
    let ca = Ca::new("cluster");
    let other = Ca::new("other");
    let cert = ca.loopback("node");
    let node = ServerProcess::start(&tls_args(&cert, &["--roles", "filter"]));
    let addr = node.address();

    let out = ocellus(&["status", "--server", &addr, "--ca", s(&other.cert)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("presented a certificate that is not trusted")
            && err.contains("UnknownIssuer"),
        "{err}"
    );
    // The right CA works on the same node.
    assert_eq!(status(&addr, &ca.cert)["tls"], Value::Bool(true));
}

#[test]
fn tls_server_name_names_the_certificate_when_it_differs_from_the_address() {
    let ca = Ca::new("cluster");
    let cert = ca.node("named", &["node-a.ocellus.test"]);
    let node = ServerProcess::start(&tls_args(&cert, &["--roles", "filter"]));
    let addr = node.address();

    let out = ocellus(&["status", "--server", &addr, "--ca", s(&ca.cert)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("not trusted") && err.contains("not valid for name"),
        "{err}"
    );

    let out = ocellus(&[
        "status",
        "--server",
        &addr,
        "--ca",
        s(&ca.cert),
        "--tls-server-name",
        "node-a.ocellus.test",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_tls_client_on_a_plain_node_is_told_and_the_node_logs_it() {
    let ca = Ca::new("cluster");
    let node = ServerProcess::start(&["--roles", "filter"]);
    let addr = node.address();

    let out = ocellus(&["status", "--server", &addr, "--ca", s(&ca.cert)]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("TLS handshake with") && err.contains("plain-text node"),
        "{err}"
    );
    let logged = wait_until(PATIENCE, || {
        node.log()
            .contains("a TLS ClientHello on this plain-text port")
    });
    assert!(logged, "{}", node.log());
    // Plain clients are served as before.
    assert_eq!(node.status()["tls"], Value::Bool(false));
}

#[test]
fn serve_refuses_missing_unreadable_and_mismatched_tls_files() {
    let ca = Ca::new("cluster");
    let cert = ca.loopback("node");
    let other = ca.loopback("other");
    let missing = ca.dir.path().join("missing.pem");
    let garbage = ca.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all\n").expect("garbage");
    let serve = |extra: &[&str]| {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--roles", "filter"];
        args.extend_from_slice(extra);
        let out = ocellus(&args);
        assert!(!out.status.success(), "serve {extra:?} started");
        stderr(&out)
    };

    let err = serve(&["--tls-cert", s(&cert.chain)]);
    assert!(err.contains("--tls-key"), "{err}");
    let err = serve(&["--tls-cert", s(&missing), "--tls-key", s(&cert.key)]);
    assert!(
        err.contains("cannot read") && err.contains("missing.pem"),
        "{err}"
    );
    let err = serve(&["--tls-cert", s(&garbage), "--tls-key", s(&cert.key)]);
    assert!(err.contains("holds no PEM certificate"), "{err}");
    let err = serve(&["--tls-cert", s(&cert.chain), "--tls-key", s(&garbage)]);
    assert!(err.contains("holds no PEM private key"), "{err}");
    let err = serve(&["--tls-cert", s(&cert.chain), "--tls-key", s(&other.key)]);
    assert!(err.contains("does not go with the certificate"), "{err}");
}

/// Flags of the mesh tests (gossip every 100 ms).
const MESH: &[&str] = &[
    "--roles",
    "filter",
    "--workers",
    "1",
    "--gossip-interval",
    "100",
];

#[test]
fn tls_nodes_of_one_ca_form_a_mesh_and_forward_work_over_tls() {
    let data = ocellus_testdata::require_data!();
    let file = data.join("photos").join(IMAGE);
    let ca = Ca::new("cluster");
    let (cert_a, cert_b) = (ca.loopback("a"), ca.loopback("b"));
    // A hands every job it can to its peer; B trusts A through the CA at
    // the end of its own chain (no --peer-ca), A through --peer-ca.
    let mut a_args = tls_args(&cert_a, MESH);
    a_args.extend(["--forwarding", "always", "--peer-ca", s(&ca.cert)]);
    let a = ServerProcess::start_in_mesh(&a_args);
    let seed = a.address();
    let mut b_args = tls_args(&cert_b, MESH);
    b_args.extend(["--join", seed.as_str()]);
    let b = ServerProcess::start_in_mesh(&b_args);
    let b_id = status(&b.address(), &ca.cert)["node_id"].clone();

    let formed = wait_until(PATIENCE, || {
        let peers = status(&seed, &ca.cert)["peers"].clone();
        peers.as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["node_id"] == b_id && p["alive"] == true && p["tls"] == true)
        })
    });
    assert!(
        formed,
        "A never saw B as a live TLS peer; log:\n{}",
        a.log()
    );

    let work = TempDir::new("tls-mesh");
    let (remote, local) = (work.path().join("remote"), work.path().join("local"));
    filter_remote(&seed, &["--ca", s(&ca.cert)], &[&file], &remote);
    assert!(read_only_file(&remote) == filter_local(&file, &local));
    let (a_status, b_status) = (status(&seed, &ca.cert), status(&b.address(), &ca.cert));
    assert!(a_status["jobs_forwarded"].as_u64() >= Some(1), "{a_status}");
    assert_eq!(
        b_status["jobs_done"].as_u64(),
        Some(1),
        "B ran it: {b_status}"
    );
    assert_eq!(
        a_status["jobs_done"].as_u64(),
        Some(0),
        "A ran none: {a_status}"
    );
}

#[test]
fn a_detection_node_reaches_its_recognition_node_over_tls() {
    let _data = ocellus_testdata::require_data!();
    let ca = Ca::new("cluster");
    let cert = ca.loopback("recognition");
    let recognition = ServerProcess::start(&tls_args(
        &cert,
        &["--roles", "recognize", "--without-models", "--workers", "1"],
    ));
    let rec_addr = recognition.address();
    let detection = ServerProcess::start(&[
        "--roles",
        "detect",
        "--without-models",
        "--recognizer",
        &rec_addr,
        "--recognizer-tls",
        "--peer-ca",
        s(&ca.cert),
    ]);
    let out = ocellus(&["people", "--server", &detection.address(), "list", "--json"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        detection.log()
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON"),
        Value::Array(vec![])
    );

    // Without --recognizer-tls the link is plain and the recognition node
    // refuses it; the detection node says so.
    let plain = ServerProcess::start(&[
        "--roles",
        "detect",
        "--without-models",
        "--recognizer",
        &rec_addr,
    ]);
    let out = ocellus(&["people", "--server", &plain.address(), "list"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("speaks TLS"), "{err}");
}

/// `GET path` over HTTPS to `addr`, trusting only `ca`, as the raw
/// HTTP/1.1 response (reqwest is built without TLS here; one request
/// needs no more than this).
fn https_get(addr: std::net::SocketAddr, ca: &Path, path: &str) -> String {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, pki_types::ServerName};

    let mut roots = RootCertStore::empty();
    ocellus_client::tls::add_ca_file(&mut roots, ca).expect("the CA");
    let config = ClientConfig::builder_with_provider(ocellus_client::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = ServerName::try_from("localhost").expect("name");
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS handshake with the HTTP port");
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.expect("request");
        let mut response = Vec::new();
        // The node closes after answering (Connection: close); a TLS close
        // without close_notify would be an error worth failing on too.
        tls.read_to_end(&mut response).await.expect("response");
        String::from_utf8_lossy(&response).into_owned()
    })
}

#[test]
fn the_http_port_serves_https_with_the_same_certificate() {
    let ca = Ca::new("https");
    let cert = ca.loopback("node");
    let node = ServerProcess::start(&tls_args(&cert, &["--roles", "filter"]));
    let http = node.http.expect("the HTTP port");
    assert_eq!(node.http_scheme, "https", "the second line names https");
    let health = https_get(http, &ca.cert, "/healthz");
    assert!(health.starts_with("HTTP/1.1 200 OK"), "{health}");
    assert!(health.contains(r#""status":"ok""#), "{health}");
    let page = https_get(http, &ca.cert, "/");
    assert!(page.contains("<html"), "{page}");
    // Plain HTTP to the TLS port gets no answer in clear text.
    let plain = std::net::TcpStream::connect(http).and_then(|mut s| {
        use std::io::{Read, Write};
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        Ok(out)
    });
    let plain = plain.unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&plain).contains("\"status\":\"ok\""),
        "a clear-text request was answered"
    );
}
