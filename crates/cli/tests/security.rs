//! Trust, proven with real processes (`docs/security.md`): keys and their
//! scopes, revocation on open connections, the peer-only request forms,
//! peers proving the cluster secret, the audit trail, and the refusal to
//! run open on an address others can reach.
//!
//! Nothing sleeps to synchronise: tests poll (with a deadline) until the
//! node is in the state they need.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{OCELLUS, PATIENCE, Raw, ServerProcess, TempDir, error_code, photo, wait_until};
use ocellus_auth::ClusterSecret;
use ocellus_auth::secret::{from_hex, to_hex};
use ocellus_protocol::{Frame, Op};
use serde_json::{Value, json};

fn ocellus(args: &[&str]) -> Output {
    Command::new(OCELLUS)
        .args(args)
        .output()
        .expect("running ocellus")
}

/// `ocellus keys add NAME --scopes SCOPES --keys FILE`; returns the key.
fn add_key(file: &str, name: &str, scopes: &str) -> String {
    let out = ocellus(&["keys", "add", name, "--scopes", scopes, "--keys", file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// A small photo of the shared data (`None`: no data, the test skips).
fn tiny_photo() -> Option<Vec<u8>> {
    Some(photo(&ocellus_testdata::data_dir()?, "fr_obama_small.jpg"))
}

/// Sends one request and returns its terminal event.
fn ask(c: &mut Raw, id: u64, op: Op, header: Value, payload: Vec<u8>) -> Frame {
    c.send(op, id, header, payload);
    c.events_until_terminal(id).pop().expect("an answer")
}

fn auth(c: &mut Raw, id: u64, key: &str) -> Frame {
    ask(c, id, Op::Auth, json!({"key": key}), Vec::new())
}

fn filter(c: &mut Raw, id: u64, image: &[u8], extra: Value) -> Frame {
    let mut header = json!({"ops": "grayscale", "format": "png", "images": [image.len()]});
    if let (Some(h), Some(e)) = (header.as_object_mut(), extra.as_object()) {
        h.extend(e.clone());
    }
    ask(c, id, Op::Filter, header, image.to_vec())
}

fn code(f: &Frame) -> String {
    if f.op == Op::Result.code() {
        "ok".to_string()
    } else {
        error_code(f).unwrap_or_else(|| format!("op {}", f.op))
    }
}

#[test]
fn keys_allow_their_scopes_and_a_revoked_key_stops_on_an_open_connection() {
    let Some(image) = tiny_photo() else {
        return;
    };
    let dir = TempDir::new("keys");
    let file = dir.path().join("keys.toml");
    let file = file.to_str().expect("utf-8");
    let filter_key = add_key(file, "filterer", "filter");
    let reader_key = add_key(file, "reader", "read");
    let node = ServerProcess::start(&["--roles", "filter", "--keys", file, "--workers", "1"]);

    let mut c = node.connect();
    // Nothing before AUTH, STATUS included.
    assert_eq!(code(&filter(&mut c, 1, &image, json!({}))), "unauthorized");
    assert_eq!(
        code(&ask(&mut c, 2, Op::Status, json!({}), vec![])),
        "unauthorized"
    );
    // A wrong key, then the right one.
    assert_eq!(code(&auth(&mut c, 3, "ock_not-a-key")), "unauthorized");
    let granted = auth(&mut c, 4, &filter_key);
    assert_eq!(code(&granted), "ok");
    assert_eq!(granted.header["name"], "filterer");
    assert_eq!(granted.header["scopes"], json!(["filter"]));
    assert_eq!(code(&filter(&mut c, 5, &image, json!({}))), "ok");
    // Out of scope: forbidden, and the message names what is missing.
    let f = ask(&mut c, 6, Op::Status, json!({}), vec![]);
    assert_eq!(code(&f), "forbidden");
    assert!(
        f.header["message"].as_str().unwrap_or("").contains("read"),
        "{:?}",
        f.header
    );
    assert_eq!(
        code(&ask(
            &mut c,
            7,
            Op::RemovePerson,
            json!({"name": "x"}),
            vec![]
        )),
        "forbidden"
    );
    assert_eq!(
        code(&ask(&mut c, 8, Op::People, json!({}), vec![])),
        "forbidden"
    );

    // Another client with the read key sees the status.
    let mut r = node.connect();
    assert_eq!(code(&auth(&mut r, 1, &reader_key)), "ok");
    assert_eq!(code(&ask(&mut r, 2, Op::Status, json!({}), vec![])), "ok");
    assert_eq!(code(&filter(&mut r, 3, &image, json!({}))), "forbidden");

    // Revoked while the connection is open: the next request is refused.
    let out = ocellus(&["keys", "revoke", "filterer", "--keys", file]);
    assert!(out.status.success());
    let mut id = 100;
    let refused = wait_until(Duration::from_secs(10), || {
        id += 1;
        code(&filter(&mut c, id, &image, json!({}))) == "unauthorized"
    });
    assert!(refused, "the revoked key kept working");
    // A key added while the node runs works without a restart.
    let admin_key = add_key(file, "admin", "admin");
    let mut a = node.connect();
    let mut id = 0;
    let accepted = wait_until(Duration::from_secs(10), || {
        id += 1;
        code(&auth(&mut a, id, &admin_key)) == "ok"
    });
    assert!(accepted, "the new key was not picked up");
    assert_eq!(
        code(&ask(&mut a, 1000, Op::Status, json!({}), vec![])),
        "ok"
    );

    // The CLI presents its key with --key or OCELLUS_KEY.
    let addr = node.address();
    let out = ocellus(&["status", "--server", &addr]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));
    let out = ocellus(&["status", "--server", &addr, "--key", &admin_key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("clients need a key"));
    let out = Command::new(OCELLUS)
        .args(["status", "--server", &addr, "--json"])
        .env("OCELLUS_KEY", &reader_key)
        .output()
        .expect("running ocellus");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(report["keys_required"], true);
    assert!(report["key_auth_failures"].as_u64() >= Some(1), "{report}");
    let out = ocellus(&["status", "--server", &addr, "--key", "ock_wrong"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the key"));

    // The audit trail names the keys and the client's address.
    let log = node.log();
    assert!(log.contains("keys file reloaded"), "{log}");
    assert!(log.contains("authentication failed"), "{log}");
    assert!(log.contains("principal=filterer"), "{log}");
}

#[test]
fn repeated_failures_from_one_address_are_slowed_down() {
    let dir = TempDir::new("keys");
    let file = dir.path().join("keys.toml");
    let file = file.to_str().expect("utf-8");
    let _ = add_key(file, "someone", "filter");
    let node = ServerProcess::start(&["--roles", "filter", "--keys", file]);
    let mut c = node.connect();
    let mut times = Vec::new();
    for id in 1..=5 {
        let t = Instant::now();
        assert_eq!(code(&auth(&mut c, id, "ock_guess")), "unauthorized");
        times.push(t.elapsed());
    }
    // Three free failures, then at least 250 ms, then twice that.
    assert!(times[3] >= Duration::from_millis(240), "{times:?}");
    assert!(times[4] >= Duration::from_millis(490), "{times:?}");
}

/// Writes a new cluster secret file in `dir`.
fn secret_file(dir: &TempDir, name: &str) -> (String, ClusterSecret) {
    let secret = ClusterSecret::generate();
    let path = dir.path().join(name);
    std::fs::write(&path, secret.to_text()).expect("writing the secret");
    (path.to_str().expect("utf-8").to_string(), secret)
}

/// Runs the peer proof on `c` as node `me`; returns the final answer.
fn prove_as_peer(c: &mut Raw, secret: &ClusterSecret, me: &str, tamper: bool) -> Frame {
    let nonce = ClusterSecret::nonce();
    let challenge = ask(
        c,
        1,
        Op::Auth,
        json!({"peer": me, "nonce": to_hex(&nonce)}),
        vec![],
    );
    assert_eq!(code(&challenge), "ok", "{:?}", challenge.header);
    let ch = from_hex(challenge.header["challenge"].as_str().expect("challenge")).expect("hex");
    // The node proves itself first.
    let server = secret.server_proof(&ch, &nonce, me);
    assert_eq!(challenge.header["proof"], to_hex(&server));
    let mut proof = secret.client_proof(&ch, &nonce, me);
    if tamper {
        proof[0] ^= 1;
    }
    ask(
        c,
        2,
        Op::Auth,
        json!({"peer": me, "proof": to_hex(&proof)}),
        vec![],
    )
}

#[test]
fn peer_forms_are_refused_from_clients_and_accepted_from_proven_peers() {
    let Some(image) = tiny_photo() else {
        return;
    };
    let dir = TempDir::new("secret");
    let (file, secret) = secret_file(&dir, "cluster.secret");
    let node = ServerProcess::start(&["--roles", "filter", "--cluster-secret-file", &file]);

    // No keys: a client may filter, but not use the node-to-node forms.
    let mut c = node.connect();
    assert_eq!(code(&filter(&mut c, 1, &image, json!({}))), "ok");
    assert_eq!(
        code(&filter(&mut c, 2, &image, json!({"via": "x"}))),
        "forbidden"
    );
    assert_eq!(
        code(&filter(&mut c, 3, &image, json!({"max_wait_s": 1.0}))),
        "forbidden"
    );
    let crops = json!({"name": "x", "crops": [{"index": 0}], "images": [image.len()]});
    assert_eq!(
        code(&ask(&mut c, 4, Op::Enroll, crops, image.clone())),
        "forbidden"
    );

    // A wrong proof, or a secret from another cluster, gets nothing.
    let mut bad = node.connect();
    assert_eq!(
        code(&prove_as_peer(&mut bad, &secret, "forger", true)),
        "unauthorized"
    );
    assert_eq!(
        code(&filter(&mut bad, 3, &image, json!({"via": "forger"}))),
        "forbidden"
    );
    let mut other = node.connect();
    let nonce = ClusterSecret::nonce();
    let challenge = ask(
        &mut other,
        1,
        Op::Auth,
        json!({"peer": "o", "nonce": to_hex(&nonce)}),
        vec![],
    );
    let ch = from_hex(challenge.header["challenge"].as_str().expect("challenge")).expect("hex");
    let wrong = ClusterSecret::generate();
    assert_ne!(
        challenge.header["proof"],
        to_hex(&wrong.server_proof(&ch, &nonce, "o"))
    );
    let proof = to_hex(&wrong.client_proof(&ch, &nonce, "o"));
    let answer = ask(
        &mut other,
        2,
        Op::Auth,
        json!({"peer": "o", "proof": proof}),
        vec![],
    );
    assert_eq!(code(&answer), "unauthorized");

    // The same forms from a peer that proved the secret run.
    let mut peer = node.connect();
    let granted = prove_as_peer(&mut peer, &secret, "friend", false);
    assert_eq!(code(&granted), "ok", "{:?}", granted.header);
    assert_eq!(granted.header["name"], "peer:friend");
    assert_eq!(
        code(&filter(&mut peer, 3, &image, json!({"via": "friend"}))),
        "ok"
    );
}

#[test]
fn split_roles_prove_the_secret_and_a_foreign_detector_is_refused() {
    let data = ocellus_testdata::require_data!();
    let dir = TempDir::new("split");
    let (file, _) = secret_file(&dir, "cluster.secret");
    let (foreign, _) = secret_file(&dir, "other.secret");
    let face = std::fs::read(data.join("photos/fr_obama_small.jpg")).expect("a photo with a face");
    let common = [
        "--without-models",
        "--algorithm",
        "lbph",
        "--cluster-secret-file",
    ];
    let mut rec_args = vec!["--roles", "recognize"];
    rec_args.extend_from_slice(&common);
    rec_args.push(&file);
    let recognition = ServerProcess::start(&rec_args);
    let rec_addr = recognition.address();
    let mut det_args = vec!["--roles", "detect", "--recognizer", &rec_addr];
    det_args.extend_from_slice(&common);
    let mut good = det_args.clone();
    good.push(&file);
    let mut bad = det_args.clone();
    bad.push(&foreign);
    let detection = ServerProcess::start(&good);
    let impostor = ServerProcess::start(&bad);

    let enroll = json!({"name": "someone", "images": [face.len()]});
    let mut c = detection.connect();
    let f = ask(&mut c, 1, Op::Enroll, enroll.clone(), face.clone());
    assert_eq!(code(&f), "ok", "{:?}", f.header);
    let mut c = impostor.connect();
    let f = ask(&mut c, 1, Op::Enroll, enroll, face.clone());
    assert_eq!(code(&f), "recognizer_unavailable", "{:?}", f.header);
    let message = f.header["message"].as_str().unwrap_or("");
    assert!(message.contains("secret"), "{message}");
    // The impostor counted the failed proof; the recognition node lists
    // only the person the true detection node enrolled.
    let status = impostor.status();
    assert!(
        status["peer_auth_failures"].as_u64().unwrap_or(0) >= 1,
        "{status:?}"
    );
    let mut c = recognition.connect();
    let people = ask(&mut c, 1, Op::People, json!({}), vec![]);
    assert_eq!(
        people.header["people"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        people.header
    );
    // Both enrollments are in the detection nodes' audit trails, with
    // their outcome; the recognition node's names the proven peer.
    let audited = |log: &str, outcome: &str| {
        log.lines().any(|l| {
            l.contains("ocellus::audit")
                && l.contains("person=someone")
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
    };
    assert!(audited(&detection.log(), "ok"), "{}", detection.log());
    assert!(
        audited(&impostor.log(), "recognizer_unavailable"),
        "{}",
        impostor.log()
    );
    assert!(
        recognition.log().contains("principal=peer:"),
        "{}",
        recognition.log()
    );
}

#[test]
fn a_node_on_a_reachable_address_needs_keys_or_insecure() {
    let out = Command::new(OCELLUS)
        .args(["serve", "--listen", "0.0.0.0:0", "--roles", "filter"])
        .output()
        .expect("running ocellus");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("without keys") && err.contains("ocellus keys add"),
        "{err}"
    );
    assert!(err.contains("--insecure"), "{err}");

    let node = ServerProcess::start_on(
        "0.0.0.0:0",
        &[
            "--roles",
            "filter",
            "--insecure",
            "--advertise",
            "127.0.0.1",
        ],
    );
    assert!(
        wait_until(PATIENCE, || node.log().contains("--insecure")),
        "{}",
        node.log()
    );
    let mut c = Raw::connect(([127, 0, 0, 1], node.addr.port()).into());
    assert_eq!(code(&ask(&mut c, 1, Op::Status, json!({}), vec![])), "ok");
}
