#!/usr/bin/env python3
"""Records real HTTP/1.x connections for parser_test.cc.

Starts a private nginx (and a small Python server for what nginx does not send: chunk extensions
with trailers, and a close-delimited HTTP/1.0 response) on 127.0.0.1, puts a TCP relay in front
that writes every recv() of both directions to <name>-<n>.rec, and runs curl through the relay.

A .rec file is a sequence of records, one per recv() the relay made:
    "> <len> <unix_ns>\n" <len bytes> "\n"    client -> server
    "< <len> <unix_ns>\n" <len bytes> "\n"    server -> client
Also writes nginx's access log lines for the scenario to <name>.log
("method uri status request_length bytes_sent").

Usage: capture.py <output dir>   (needs nginx and curl on PATH; stops everything it starts)
       capture.py --seeds <dir>   (turns <dir>/*.rec into fuzz seeds in <dir>/fuzz/, in the
                                   input layout described at the top of ../fuzz.cc)
"""
import http.server
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time


_taken = set()


def free_port():
    for port in range(20000 + os.getpid() % 20000, 60000):
        if port in _taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                _taken.add(port)
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


class Relay:
    """Accepts on a port, connects each client to the upstream, logs every recv()."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", free_port()))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.prefix = None
        self.count = 0
        self.threads = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.count += 1
            path = f"{self.prefix}-{self.count}.rec"
            t = threading.Thread(target=self._pipe, args=(client, path), daemon=True)
            t.start()
            self.threads.append(t)

    def _pipe(self, client, path):
        server = socket.create_connection(("127.0.0.1", self.upstream))
        lock = threading.Lock()
        out = open(path, "wb")

        def pump(src, dst, mark):
            while True:
                data = src.recv(65536)
                with lock:
                    if data:
                        out.write(b"%s %d %d\n" % (mark, len(data), time.time_ns()))
                        out.write(data + b"\n")
                if not data:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                dst.sendall(data)

        a = threading.Thread(target=pump, args=(client, server, b">"))
        b = threading.Thread(target=pump, args=(server, client, b"<"))
        a.start(); b.start(); a.join(); b.join()
        out.close(); client.close(); server.close()

    def wait(self):
        for t in self.threads:
            t.join(timeout=10)
        self.threads = []

    def close(self):
        self.sock.close()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/chunked":
            # RFC 9112 section 7.1: chunk extensions and a trailer section, which nginx never sends.
            self.protocol_version = "HTTP/1.1"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum")
            self.end_headers()
            for i, part in enumerate([b"hello ", b"chunked " * 40, b"world\n"]):
                ext = b";name=value" if i == 1 else b""
                self.wfile.write(b"%x%s\r\n%s\r\n" % (len(part), ext, part))
                self.wfile.flush()
                time.sleep(0.01)
            self.wfile.write(b"0\r\nX-Checksum: 42\r\n\r\n")
        else:
            # HTTP/1.0 without Content-Length: the body ends when the server closes (section 6.3).
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"until close\n" * 100)
            self.close_connection = True

    def log_message(self, *args):
        pass


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
  log_format plain '$request_method $request_uri $status $request_length $bytes_sent';
  access_log {tmp}/access.log plain;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  default_type text/plain;
  gzip on;
  gzip_min_length 0;
  gzip_types text/plain;
  chunked_transfer_encoding on;
  server {{
    listen 127.0.0.1:{port};
    root {tmp}/www;
    location = /moved {{ return 301 /new-place; }}
    location = /boom {{ return 500; }}
    location /api/ {{ return 201 'created\\n'; }}
    location = /upload {{
      client_body_buffer_size 64k;
      proxy_pass http://127.0.0.1:{port}/sink;
    }}
    location = /sink {{ return 200 'stored\\n'; }}
  }}
}}
"""


def read_records(path):
    data = open(path, "rb").read()
    pos, out = 0, []
    while pos < len(data):
        eol = data.index(b"\n", pos)
        mark, length, _ = data[pos:eol].split(b" ")
        out.append((mark == b">", data[eol + 1:eol + 1 + int(length)]))
        pos = eol + 1 + int(length) + 1
    return out


def fuzz_input(records, flags, piece, client_side=True, gap_units=0):
    out = bytearray([flags, piece])
    for to_server, data in records:
        direction = 0 if to_server == client_side else 1
        gap = gap_units if len(data) > 200 else 0
        out += bytes([0xFF, (gap << 1) | direction]) + data.replace(b"\xff", b"\xff\xff")
    return bytes(out)


def write_seeds(out_dir):
    import glob
    os.makedirs(os.path.join(out_dir, "fuzz"), exist_ok=True)
    unlimited_close = 7 | 0x20
    for path in sorted(glob.glob(os.path.join(out_dir, "*.rec"))):
        name = os.path.basename(path)[:-4]
        records = read_records(path)
        variants = {
            "whole": fuzz_input(records, unlimited_close, 0),
            "split7-server": fuzz_input(records, unlimited_close, 7, client_side=False),
            "window512-gaps": fuzz_input(records, 5 | 0x20, 0, gap_units=40),
            "tiny-limits": fuzz_input(records, unlimited_close | 0x40, 3),
        }
        for variant, data in variants.items():
            with open(os.path.join(out_dir, "fuzz", f"{name}-{variant}"), "wb") as f:
                f.write(data)


def main():
    if sys.argv[1] == "--seeds":
        write_seeds(os.path.abspath(sys.argv[2]))
        return
    out_dir = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="ns-http1-capture-")
    os.chmod(tmp, 0o755)  # the nginx worker runs as nobody
    os.makedirs(f"{tmp}/www")
    with open(f"{tmp}/www/index.html", "w") as f:
        f.write("<html><body>nodescope http1 test page</body></html>\n")
    with open(f"{tmp}/www/words.txt", "w") as f:
        f.write("".join(f"line {i} of a text file that nginx gzips on the fly\n" for i in range(400)))
    with open(f"{tmp}/small.json", "w") as f:
        f.write('{"name":"nodescope","kind":"test"}')
    with open(f"{tmp}/big.bin", "wb") as f:
        f.write(bytes(range(256)) * 12)  # 3 KiB: curl sends Expect only above 1 KiB
    port = free_port()
    with open(f"{tmp}/nginx.conf", "w") as f:
        f.write(NGINX_CONF.format(tmp=tmp, port=port))
    nginx = subprocess.Popen(["nginx", "-p", tmp, "-c", f"{tmp}/nginx.conf"])
    py_server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=py_server.serve_forever, daemon=True).start()
    time.sleep(0.5)
    nginx_relay = Relay(port)
    py_relay = Relay(py_server.server_address[1])
    try:
        n = f"http://127.0.0.1:{nginx_relay.port}"
        p = f"http://127.0.0.1:{py_relay.port}"
        scenarios = [
            ("get_keepalive", nginx_relay, [f"{n}/index.html", f"{n}/index.html?x=1"]),
            ("status_codes", nginx_relay, [f"{n}/moved", f"{n}/missing", f"{n}/boom"]),
            ("post_body", nginx_relay,
             ["-X", "POST", "-H", "Content-Type: application/json",
              "--data-binary", f"@{tmp}/small.json", f"{n}/api/items"]),
            ("chunked_gzip", nginx_relay, ["--compressed", f"{n}/words.txt"]),
            ("chunked_trailer", py_relay, [f"{p}/chunked"]),
            ("expect_continue", nginx_relay,
             ["-H", "Expect: 100-continue", "--data-binary", f"@{tmp}/big.bin", f"{n}/upload"]),
            ("http10", nginx_relay, ["-0", f"{n}/index.html"]),
            ("close_delimited", py_relay, ["-0", f"{p}/until-close"]),
            ("head", nginx_relay, ["-I", f"{n}/index.html"]),
        ]
        for name, relay, args in scenarios:
            relay.prefix = os.path.join(out_dir, name)
            relay.count = 0
            log_start = os.path.getsize(f"{tmp}/access.log") if os.path.exists(
                f"{tmp}/access.log") else 0
            # -o applies to one URL each.
            args = sum((["-o", "/dev/null", a] if a.startswith("http") else [a] for a in args), [])
            subprocess.run(["curl", "-s", "--expect100-timeout", "5"] + args, check=True)
            time.sleep(0.3)
            relay.wait()
            if relay is nginx_relay:
                with open(f"{tmp}/access.log") as f:
                    f.seek(log_start)
                    # /sink is nginx talking to itself behind /upload; not a client request.
                    lines = [l for l in f.read().splitlines() if " /sink " not in l]
                with open(os.path.join(out_dir, name + ".log"), "w") as f:
                    f.write("\n".join(lines) + "\n")
    finally:
        nginx_relay.close()
        py_relay.close()
        py_server.shutdown()
        nginx.terminate()
        nginx.wait(timeout=10)
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
