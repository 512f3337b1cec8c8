#!/usr/bin/env python3
"""The original design's server, for bench/load.py to compare against: a
ThreadingTCPServer (one thread per connection), a length-prefixed protocol
(4-byte big-endian length + image bytes, both ways), Pillow's
GaussianBlur(5), JPEG out (quality 90).

    python3 bench/baseline_server.py [--port 0]   # prints "listening on HOST:PORT"
"""

from __future__ import annotations

import argparse
import io
import socketserver
import struct
import sys

from PIL import Image, ImageFilter

LENGTH = struct.Struct(">I")


def read_exactly(rfile, n: int) -> bytes | None:
    data = rfile.read(n)
    return data if len(data) == n else None


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            head = read_exactly(self.rfile, LENGTH.size)
            if head is None:
                return
            image = read_exactly(self.rfile, LENGTH.unpack(head)[0])
            if image is None:
                return
            with Image.open(io.BytesIO(image)) as im:
                out = im.convert("RGB").filter(ImageFilter.GaussianBlur(5))
            buf = io.BytesIO()
            out.save(buf, "JPEG", quality=90)
            data = buf.getvalue()
            self.wfile.write(LENGTH.pack(len(data)) + data)
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    args = p.parse_args()
    with Server((args.host, args.port), Handler) as server:
        host, port = server.server_address[:2]
        print(f"listening on {host}:{port}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
