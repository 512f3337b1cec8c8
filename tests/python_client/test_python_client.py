"""The stdlib-only Python client (examples/python_client.py) against a real
`ocellus serve`: its results must equal `ocellus filter --local` byte for
byte, it must print the queue position lines, and report errors by code.

Locations follow tests/reference/conftest.py: the binary from env
`OCELLUS_BIN` (default <repo>/target/release/ocellus), the data from env
`OCELLUS_TEST_DATA` (default <repo>/../shared/data); missing ones skip the
tests, except under CI=true where they fail.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import shutil
import subprocess
import tempfile
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENT_PATH = REPO / "examples" / "python_client.py"
PATIENCE_S = 120.0

spec = importlib.util.spec_from_file_location("python_client", CLIENT_PATH)
client = importlib.util.module_from_spec(spec)
spec.loader.exec_module(client)

PHOTOS = ["fr_obama_small.jpg", "skimage_camera.png", "fr_alex-lacamoire.png", "darknet_dog.jpg"]
SLOW_OPS, SLOW_IMAGE = "median=7", "deepface_couple.jpg"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1")


def missing(reason: str):
    if in_ci():
        pytest.fail(f"{reason}; under CI=true it is required", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def ocellus_bin() -> Path:
    path = Path(os.environ.get("OCELLUS_BIN", REPO / "target" / "release" / "ocellus"))
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing(f"ocellus binary not found at {path} (cargo build --release -p ocellus, or set OCELLUS_BIN)")
    return path


@pytest.fixture(scope="session")
def photos() -> Path:
    data = Path(os.environ.get("OCELLUS_TEST_DATA", REPO.parent / "shared" / "data"))
    if not (data / "README.md").is_file():
        missing(f"test data not found at {data} (set OCELLUS_TEST_DATA)")
    return data / "photos"


class Server:
    """`ocellus serve` on a free loopback port."""

    def __init__(self, binary: Path, *args: str):
        # Its own face store, not the one in the home folder.
        self.data = tempfile.mkdtemp(prefix="ocellus-pytest-")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--listen", "127.0.0.1:0", "--http", "off", "--data-dir", self.data, *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=PATIENCE_S)
        except queue.Empty:
            self.stop()
            raise AssertionError("ocellus serve printed no address")
        assert first.startswith("listening on "), first
        self.addr = first.split()[-1]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=PATIENCE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture(scope="module")
def server(ocellus_bin):
    s = Server(ocellus_bin, "--workers", "2")
    yield s
    s.stop()


def local_output(binary: Path, ops: str, photo: Path, outdir: Path) -> Path:
    outdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(binary), "filter", "--local", "--ops", ops, "-o", str(outdir), str(photo)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (out,) = list(outdir.iterdir())
    return out


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("ops", ["blur=5", "grayscale,resize=200x", "sharpen=1:1,flip=v"])
def test_filter_equals_local(server, ocellus_bin, photos, tmp_path, name, ops):
    header, image = client.filter(server.addr, photos / name, ops, say=lambda line: None)
    expected = local_output(ocellus_bin, ops, photos / name, tmp_path / "local")
    assert header["format"] == expected.suffix[1:]
    assert image == expected.read_bytes()


def test_command_line_writes_the_local_bytes(server, ocellus_bin, photos, tmp_path):
    files = [str(photos / p) for p in PHOTOS[:2]]
    proc = subprocess.run([sys.executable, str(CLIENT_PATH), "--server", server.addr, "--ops", "blur=5",
                           "-o", str(tmp_path / "py"), *files], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    for f in files:
        expected = local_output(ocellus_bin, "blur=5", Path(f), tmp_path / ("local_" + Path(f).stem))
        assert (tmp_path / "py" / expected.name).read_bytes() == expected.read_bytes()


def test_status(server):
    report = client.status(server.addr)
    for key in ("version", "node_id", "roles", "queue_length", "workers", "busy", "jobs_done",
                "jobs_failed", "uptime_s", "peers"):
        assert key in report, key
    assert report["workers"] == 2
    assert report["peers"] == []


def test_errors_carry_the_server_code(server, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a JPEG at all")
    with pytest.raises(client.ServerError) as e:
        client.filter(server.addr, broken, "invert", say=lambda line: None)
    assert e.value.code == "bad_image"
    with pytest.raises(client.ServerError) as e:
        client.filter(server.addr, broken, "blurry=5", say=lambda line: None)
    assert e.value.code == "bad_ops"
    proc = subprocess.run([sys.executable, str(CLIENT_PATH), "--server", server.addr, "--ops", "invert",
                           "-o", str(tmp_path / "out"), str(broken)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "bad_image" in proc.stderr


def wait_for(predicate, what: str):
    deadline = time.monotonic() + PATIENCE_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_waiting_client_is_told_its_position(ocellus_bin, photos, tmp_path):
    """One worker: a slow job runs, a second waits at position 1, ours at 2.
    When the slow job ends ours moves up, so it must hear a POSITION."""
    s = Server(ocellus_bin, "--workers", "1")
    try:
        results = {}

        def send(key, name, ops):
            results[key] = client.filter(s.addr, photos / name, ops, say=lambda line: None)

        slow = threading.Thread(target=send, args=("slow", SLOW_IMAGE, SLOW_OPS))
        slow.start()
        wait_for(lambda: client.status(s.addr)["busy"] == 1, "the slow job to start")
        second = threading.Thread(target=send, args=("second", PHOTOS[0], "invert"))
        second.start()
        wait_for(lambda: client.status(s.addr)["queue_length"] == 1, "the second job to queue")
        lines = []
        header, image = client.filter(s.addr, photos / PHOTOS[1], "invert", say=lines.append)
        slow.join(PATIENCE_S)
        second.join(PATIENCE_S)
        assert set(results) == {"slow", "second"}
        assert lines[0].startswith("Queued as #3; position 2 of 2"), lines
        pattern = re.compile(r"Now processing #(\d+); yours is #3 \(about \d+ s\)")
        seen = [m for m in map(pattern.fullmatch, lines) if m]
        assert seen, lines
        assert any(m.group(1) in ("1", "2") for m in seen), lines
        expected = local_output(ocellus_bin, "invert", photos / PHOTOS[1], tmp_path / "local")
        assert image == expected.read_bytes()
    finally:
        s.stop()


def test_face_operations_match_the_rust_client(server, ocellus_bin, photos, tmp_path):
    """Enroll (op 1) and recognize (op 2) from Python: the answers are the
    ones `ocellus recognize --json` gets for the same photo."""
    people = photos.parent / "people"
    enrolled = sorted((people / "barack_obama").iterdir())
    train, probe = enrolled[:-1], enrolled[-1]
    result = client.enroll(server.addr, "Barack Obama", train, say=lambda line: None)
    assert len(result["images"]) == len(train)
    assert all(i["accepted"] for i in result["images"]), result
    ours = client.recognize(server.addr, probe, say=lambda line: None)
    proc = subprocess.run([str(ocellus_bin), "recognize", "--server", server.addr, "--json", str(probe)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rust = json.loads(proc.stdout)
    assert ours["faces"] == rust["faces"] and ours["message"] == rust["message"]
    assert ours["faces"], ours
    no_face = client.recognize(server.addr, photos / "mtcnn_no-faces.jpg", say=lambda line: None)
    assert no_face == {"faces": [], "message": "no face found"}
    proc = subprocess.run([sys.executable, str(CLIENT_PATH), "--server", server.addr, "--enroll", "Nobody",
                           str(photos / "mtcnn_no-faces.jpg")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1 and "rejected: no face found" in proc.stdout, proc.stdout + proc.stderr


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway certificate for localhost and 127.0.0.1 (openssl), and its key."""
    if shutil.which("openssl") is None:
        missing("openssl not found (needed to make a test certificate)")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:FALSE"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_filter_equals_local_and_a_plain_client_is_told(ocellus_bin, photos, tmp_path):
    cert, key = self_signed(tmp_path)
    s = Server(ocellus_bin, "--roles", "filter", "--workers", "1", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        link = client.Link(tls=True, ca=str(cert))
        assert client.status(s.addr, link)["tls"] is True
        name = PHOTOS[0]
        header, image = client.filter(s.addr, photos / name, "blur=5", say=lambda line: None, link=link)
        assert image == local_output(ocellus_bin, "blur=5", photos / name, tmp_path / "local").read_bytes()
        with pytest.raises(ConnectionError, match="speaks TLS"):
            client.status(s.addr)
        proc = subprocess.run([sys.executable, str(CLIENT_PATH), "--server", s.addr, "--ca", str(cert), "--status"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and json.loads(proc.stdout)["tls"] is True, proc.stderr
    finally:
        s.stop()


def fake_node(answer_op: int, answer: dict) -> tuple[str, list]:
    """A one-connection node on a free port that answers every request with
    `answer_op`/`answer` and records the requests (op, header)."""
    import socket
    listener = socket.create_server(("127.0.0.1", 0))
    got = []

    def serve():
        with listener, listener.accept()[0] as conn:
            while True:
                try:
                    op, request_id, header, _ = client.read_frame(conn)
                except ConnectionError:
                    return
                got.append((op, header))
                conn.sendall(client.encode_frame(answer_op, request_id, answer))

    threading.Thread(target=serve, daemon=True).start()
    return f"127.0.0.1:{listener.getsockname()[1]}", got


def test_a_key_is_sent_with_auth_first_and_a_refusal_is_reported():
    addr, got = fake_node(client.RESULT, {"name": "ci", "scopes": ["read"]})
    client.status(addr, client.Link(key="s3cret"))
    assert got[0] == (client.AUTH, {"key": "s3cret"})
    assert got[1][0] == client.STATUS
    addr, got = fake_node(client.ERROR, {"code": "unauthorized", "message": "unknown key"})
    env = dict(os.environ, OCELLUS_KEY="s3cret")
    proc = subprocess.run([sys.executable, str(CLIENT_PATH), "--server", addr, "--status"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 1
    assert "the node refused the key (unauthorized)" in proc.stderr and "s3cret" not in proc.stderr
    assert got == [(client.AUTH, {"key": "s3cret"})]
