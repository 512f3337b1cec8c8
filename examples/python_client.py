#!/usr/bin/env python3
"""A dependency-free client of the Ocellus wire protocol (docs/PROTOCOL.md).

    python3 examples/python_client.py --server 127.0.0.1:7070 --ops blur=5 photo.jpg -o out/
    python3 examples/python_client.py --server 127.0.0.1:7070 --status
    python3 examples/python_client.py --server 127.0.0.1:7070 --enroll "Ada Lovelace" ada1.jpg ada2.jpg
    python3 examples/python_client.py --server 127.0.0.1:7070 --recognize group.jpg
    python3 examples/python_client.py --server node:7070 --tls --ca ca.pem --key "$KEY" --status

With --tls the connection is TLS (the system roots, or --ca); with --key (or
env OCELLUS_KEY) the client sends AUTH (operation 8) first, on every
connection, and stops if the node refuses the key.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import struct
import sys
from pathlib import Path

VERSION = 1
ENROLL, RECOGNIZE, FILTER, STATUS, AUTH = 1, 2, 4, 5, 8
ACCEPTED, POSITION, STARTED, RESULT, ERROR, BUSY = 64, 65, 66, 67, 68, 69
FIXED = struct.Struct(">IBBQI")  # length, version, op, request_id, header_length


class ServerError(Exception):
    """The node answered ERROR (or BUSY); `code` is the stable error code."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{message} ({code})")
        self.code = code


def encode_frame(op: int, request_id: int, header: dict, payload: bytes = b"") -> bytes:
    head = json.dumps(header).encode() if header else b""
    length = FIXED.size - 4 + len(head) + len(payload)
    return FIXED.pack(length, VERSION, op, request_id, len(head)) + head + payload


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            # A TLS node answers plain bytes with an alert record and closes.
            if len(data) >= 3 and data[0] in (0x15, 0x16) and data[1] == 3 and data[2] <= 4:
                raise ConnectionError("the node speaks TLS: use --tls")
            raise ConnectionError("the server closed the connection")
        data += chunk
    return bytes(data)


def read_frame(sock: socket.socket) -> tuple[int, int, dict, bytes]:
    """Reads one frame: (op, request_id, header, payload)."""
    length, _version, op, request_id, header_len = FIXED.unpack(_read_exactly(sock, FIXED.size))
    body = _read_exactly(sock, length - (FIXED.size - 4))
    header = json.loads(body[:header_len]) if header_len else {}
    return op, request_id, header, body[header_len:]


class Link:
    """How to connect: TLS (with `ca`, else the system roots; `server_name`
    when the certificate names another host than the address) and the API
    key to present with AUTH. The default is plain TCP without a key."""

    def __init__(self, tls: bool = False, ca: str | None = None, server_name: str | None = None,
                 key: str | None = None):
        self.tls = tls or ca is not None or server_name is not None
        self.ca, self.server_name, self.key = ca, server_name, key
        self._context = None

    def __repr__(self) -> str:  # the key is never shown
        return f"Link(tls={self.tls}, ca={self.ca!r}, key={'<set>' if self.key else None})"

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl.create_default_context(cafile=self.ca)
        return self._context


PLAIN = Link()


def authenticate(sock: socket.socket, key: str) -> dict:
    """AUTH (operation 8): returns {"name", "scopes"}; a refused key raises
    ServerError with code "unauthorized"."""
    sock.sendall(encode_frame(AUTH, 1, {"key": key}))
    while True:
        op, request_id, header, _ = read_frame(sock)
        if op == RESULT:
            return header
        if op == ERROR:
            code = header.get("code", "?")
            if code == "unauthorized":
                raise ServerError(code, "the node refused the key")
            raise ServerError(code, header.get("message", ""))


def connect(server: str, timeout: float = 300.0, link: Link = PLAIN) -> socket.socket:
    host, _, port = server.rpartition(":")
    host = (host or "127.0.0.1").strip("[]")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        if link.tls:
            sock = link.context().wrap_socket(sock, server_hostname=link.server_name or host)
        if link.key:
            authenticate(sock, link.key)
    except BaseException:
        sock.close()
        raise
    return sock


def status(server: str, link: Link = PLAIN) -> dict:
    """The node's STATUS report."""
    with connect(server, link=link) as sock:
        sock.sendall(encode_frame(STATUS, 1, {}))
        op, _, header, _ = read_frame(sock)
        if op == ERROR:
            raise ServerError(header.get("code", "?"), header.get("message", ""))
        return header


def request(server: str, op: int, header: dict, images: list[bytes], say=print,
            link: Link = PLAIN) -> tuple[dict, bytes]:
    """Sends one request carrying `images`; reports its queue events through
    `say`; returns (RESULT header, payload)."""
    header = dict(header, images=[len(i) for i in images])
    with connect(server, link=link) as sock:
        sock.sendall(encode_frame(op, 1, header, b"".join(images)))
        job = None
        while True:
            op, request_id, h, payload = read_frame(sock)
            if request_id not in (0, 1):
                continue
            if op == ACCEPTED:
                job = h["job"]
                say(f"Queued as #{job}; position {h['position']} of {h['queue_length']}")
            elif op == POSITION:
                now = f"#{min(h['processing'])}" if h["processing"] else "nothing"
                say(f"Now processing {now}; yours is #{job} (about {h['eta_s']:.0f} s)")
            elif op == STARTED:
                say(f"Now processing #{h['job']} (yours)")
            elif op == RESULT:
                return h, payload
            elif op == ERROR:
                raise ServerError(h.get("code", "?"), h.get("message", ""))
            elif op == BUSY:
                raise ServerError("busy", f"server busy ({h['queue_length']} of {h['capacity']} queued)")


def filter(server: str, path: str | Path, ops: str, fmt: str | None = None, quality: int | None = None,
           say=print, link: Link = PLAIN) -> tuple[dict, bytes]:
    """Sends one image to be filtered; returns (RESULT header, image bytes)."""
    header = {"ops": ops}
    if fmt:
        header["format"] = fmt
    if quality:
        header["quality"] = quality
    return request(server, FILTER, header, [Path(path).read_bytes()], say, link)


def enroll(server: str, name: str, paths: list, say=print, link: Link = PLAIN) -> dict:
    """Enrolls `name` from photos (operation 1); returns the per-photo outcomes."""
    header, _ = request(server, ENROLL, {"name": name}, [Path(p).read_bytes() for p in paths], say, link)
    return header


def recognize(server: str, path: str | Path, algorithm: str | None = None, say=print,
              link: Link = PLAIN) -> dict:
    """Names every face of one photo (operation 2); returns {"faces", "message"}."""
    header = {"algorithm": algorithm} if algorithm else {}
    result, _ = request(server, RECOGNIZE, header, [Path(path).read_bytes()], say, link)
    return result["results"][0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Ocellus protocol client (stdlib only)")
    p.add_argument("--server", default="127.0.0.1:7070", help="node address host:port")
    p.add_argument("--ops", help="filter pipeline, e.g. blur=5,resize=800x")
    p.add_argument("--format", choices=["jpeg", "png", "webp"], help="output format")
    p.add_argument("--quality", type=int, help="JPEG quality 1-100")
    p.add_argument("-o", "--out", default=".", help="output folder")
    p.add_argument("--status", action="store_true", help="print the node's status as JSON")
    p.add_argument("--enroll", metavar="NAME", help="enroll NAME from the photos")
    p.add_argument("--recognize", action="store_true", help="name the faces in the photos")
    p.add_argument("--tls", action="store_true", help="speak TLS (system roots unless --ca)")
    p.add_argument("--ca", help="trust only this CA file (PEM) for the node's certificate; implies --tls")
    p.add_argument("--tls-server-name", help="the name the node's certificate carries; implies --tls")
    p.add_argument("--key", default=os.environ.get("OCELLUS_KEY"),
                   help="API key sent with AUTH first (default: env OCELLUS_KEY)")
    p.add_argument("files", nargs="*")
    args = p.parse_args(argv)
    link = Link(args.tls, args.ca, args.tls_server_name, args.key)
    quiet = lambda line: print(line, file=sys.stderr)  # noqa: E731
    try:
        if args.status:
            print(json.dumps(status(args.server, link)))
            return 0
        if args.enroll:
            result = enroll(args.server, args.enroll, args.files, say=quiet, link=link)
            for file, image in zip(args.files, result["images"]):
                print(f"{file}: {'accepted' if image['accepted'] else 'rejected'}: {image['message']}")
            return 0 if all(i["accepted"] for i in result["images"]) else 1
        if args.recognize:
            for file in args.files:
                print(json.dumps({"file": file, **recognize(args.server, file, say=quiet, link=link)}))
            return 0
    except (ServerError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not args.ops or not args.files:
        p.error("--ops and at least one FILE are required (or --status)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for file in args.files:
        try:
            header, image = filter(args.server, file, args.ops, args.format, args.quality, say=quiet,
                                   link=link)
        except (ServerError, OSError) as e:
            print(f"error: {file}: {e}", file=sys.stderr)
            failed += 1
            continue
        target = out / f"{Path(file).stem}.{header['format']}"
        target.write_bytes(image)
        print(f"{file} -> {target} ({header['width']}x{header['height']})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
