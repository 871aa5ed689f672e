# An unmodified, ordinary dev server, as the proxy tests need one: it binds its own port (PORT),
# does not drain (SIGTERM kills it mid-request), and serves a few kinds of answers. Its version
# is build/version.txt, read at start. Each start is logged to ../scratch/app.log.
import base64
import email.utils
import gzip
import hashlib
import http.server
import os
import socketserver
import sys
import time
import zlib

VERSION = open("build/version.txt").read().strip()
# IGNORE_PORT: a server with its port written in, as `r.Run(":8080")` is. With --listen, the
# socket reload holds comes as fd 3 (LISTEN_FDS) and there is no PORT.
HELD = os.environ.get("LISTEN_FDS") == "1"
PORT = 0 if HELD else int(os.environ.get("IGNORE_PORT") or os.environ["PORT"])
# START_DELAY: a server that takes a while to start (loading, connecting to a database).
time.sleep(float(os.environ.get("START_DELAY", "0")))
PAGE = ("<!doctype html><html><head><title>%s</title></head><body><h1>%s</h1></body></html>"
        % (VERSION, VERSION)).encode()


def hanging(method):
    with open("../scratch/hang.log", "a") as log:
        log.write(method + "\n")
    time.sleep(1000)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, content_type="text/html; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/":
            self.send(200, PAGE, headers=[("ETag", '"v"')])
        elif path == "/text":
            self.send(200, ("version " + VERSION).encode(), "text/plain")
        elif path == "/json-html":
            # HTML in name only: no <html> or <body>, so it passes untouched.
            self.send(200, b"<p>fragment</p>", "text/html")
        elif path == "/headers":
            lines = "".join("%s: %s\n" % (k.lower(), v) for k, v in self.headers.items())
            self.send(200, lines.encode(), "text/plain")
        elif path == "/hang":
            # The first version never answers: a request in flight when it is stopped.
            if VERSION == "v1":
                hanging("GET")
            self.send(200, ("answered by " + VERSION).encode(), "text/plain")
        elif path == "/cached":
            self.send(200, b"cached", "text/plain", [("Cache-Control", "max-age=3600, immutable")])
        elif path == "/no-store":
            self.send(200, b"not stored", "text/plain", [("Cache-Control", "no-store")])
        elif path == "/styled":
            self.send(200, (
                "<!doctype html><html><head><title>%s</title>"
                "<link rel=\"stylesheet\" href=\"/static/style.css\"></head>"
                "<body><h1>%s</h1></body></html>" % (VERSION, VERSION)).encode())
        elif path.startswith("/static/"):
            self.static(path[len("/static/"):])
        elif path == "/not-modified":
            self.send_response(304)
            self.send_header("ETag", '"v"')
            self.end_headers()
        elif path == "/gzip":
            self.send(200, gzip.compress(PAGE), headers=[("Content-Encoding", "gzip")])
        elif path == "/deflate":
            self.send(200, zlib.compress(PAGE), headers=[("Content-Encoding", "deflate")])
        elif path == "/brotli":
            # Python's stdlib has no brotli: the test leaves the page, compressed, in page.br.
            with open("page.br", "rb") as page:
                self.send(200, page.read(), headers=[("Content-Encoding", "br")])
        elif path == "/unknown-encoding":
            self.send(200, b"\x00zstd?", headers=[("Content-Encoding", "zstd")])
        elif path == "/csp":
            self.send(200, PAGE, headers=[
                ("Content-Security-Policy", "default-src 'self'; script-src 'nonce-r4nd0m' 'strict-dynamic'")])
        elif path == "/stream":
            # A page that streams: its head first, the rest a moment later.
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.chunk(b"<!doctype html><html><body class=\"app\"><h1>first</h1>")
            time.sleep(0.3)
            self.chunk(b"<p>second</p></body></html>")
            self.chunk(b"")
        elif path == "/events":
            # Server-sent events, one every 200 ms: each must reach the browser as written.
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(5):
                self.chunk(b"data: %d %f\n\n" % (i, time.time()))
                time.sleep(0.2)
            self.chunk(b"")
        elif path == "/big":
            size = int(self.headers.get("X-Size", "0"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            block = b"x" * 65536
            left = size
            while left > 0:
                n = min(left, len(block))
                self.wfile.write(block[:n])
                left -= n
        # Pages where a byte search for </body> or <body goes wrong (tests/proxy/pages.rs).
        elif path == "/script-body":
            # Its script holds "</body>" in a string, and its own </body> is omitted.
            self.send(200, (
                "<!doctype html><html><head><title>%s</title></head><body><h1>%s</h1>"
                "<script>var end = \"</body>\"; window.ok = true;</script><p>after</p>\n"
                % (VERSION, VERSION)).encode())
        elif path == "/trailing-comment":
            self.send(200, (
                "<!doctype html><html><head><title>%s</title></head><body><h1>%s</h1>"
                "<script>window.ok = true;</script></body></html>\n"
                "<!-- the old layout ended here: </body></html> -->\n"
                % (VERSION, VERSION)).encode())
        elif path == "/json-as-html":
            self.send(200, b'{"html": "<html><body>x</body></html>"}\n', "text/html")
        elif path.startswith("/csp-none"):
            self.send(200, PAGE, headers=[("Content-Security-Policy", "script-src 'none'")])
        elif path == "/stream-script":
            # A streamed page whose head script holds "<body>" before its real <body>.
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.chunk(b"<!doctype html><html><head><script>var start = \"<body>\";")
            self.chunk(b" window.ok = true;</script></head><bo")
            self.chunk(("dy><h1>%s</h1></body></html>" % VERSION).encode())
            self.chunk(b"")
        elif path == "/ws":
            self.websocket()
        else:
            self.send(404, b"no such page", "text/plain")

    def static(self, name):
        # As Gin's r.Static (Go's http.FileServer) serves a file: Last-Modified from its mtime, a
        # 304 to an If-Modified-Since that is not older, and no Cache-Control.
        try:
            with open(os.path.join("static", os.path.basename(name)), "rb") as file:
                body = file.read()
                modified = int(os.fstat(file.fileno()).st_mtime)
        except OSError:
            return self.send(404, b"no such file", "text/plain")
        since = self.headers.get("If-Modified-Since")
        try:
            unchanged = since and email.utils.parsedate_to_datetime(since).timestamp() >= modified
        except (TypeError, ValueError):
            unchanged = False
        last_modified = email.utils.formatdate(modified, usegmt=True)
        with open("../scratch/static.log", "a") as log:
            log.write("%s %s\n" % (name, 304 if unchanged else 200))
        if unchanged:
            self.send_response(304)
            self.send_header("Last-Modified", last_modified)
            self.end_headers()
        else:
            self.send(200, body, "text/css; charset=utf-8", [("Last-Modified", last_modified)])

    def do_POST(self):
        path = self.path.split("?")[0]
        length = int(self.headers.get("Content-Length", "0"))
        received = 0
        while received < length:
            data = self.rfile.read(min(65536, length - received))
            if not data:
                break
            received += len(data)
        if path == "/hang" and VERSION == "v1":
            hanging("POST")
        self.send(200, ("%s got %d bytes" % (VERSION, received)).encode(), "text/plain")

    def do_PUT(self):
        self.do_POST()

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        # Echo text frames, prefixed with the version, until the peer goes.
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            length = head[1] & 0x7F
            if length == 126:
                length = int.from_bytes(self.rfile.read(2), "big")
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if head[0] & 0x0F == 8:
                return
            reply = (VERSION + ":").encode() + data
            self.wfile.write(bytes([0x81, len(reply)]) + reply)
            self.wfile.flush()


# /drop and /body, for tests/proxy/requests.rs: a request the app takes and closes the connection
# on without answering (each arrival logged to ../scratch/drop.log), and a body read whole,
# chunked or not, before the answer (one cut short or malformed gets no answer at all).
class Handler(Handler):
    def do_GET(self):
        if self.path.split("?")[0] != "/drop":
            return super().do_GET()
        with open("../scratch/drop.log", "a") as log:
            log.write("%s %s\n" % (self.command, VERSION))
        self.close_connection = True

    def do_POST(self):
        if self.path.split("?")[0] != "/body":
            return super().do_POST()
        body = self.whole_body()
        if body is None:
            self.close_connection = True
        else:
            self.send(200, ("%s got %d bytes" % (VERSION, len(body))).encode(), "text/plain")

    def whole_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            length = int(self.headers.get("Content-Length", "0"))
            data = self.rfile.read(length)
            return data if len(data) == length else None
        data = b""
        while True:
            try:
                size = int(self.rfile.readline().split(b";")[0], 16)
            except ValueError:
                return None
            if size == 0:
                self.rfile.readline()
                return data
            chunk = self.rfile.read(size + 2)
            if len(chunk) < size + 2:
                return None
            data += chunk[:size]


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


# NO_REUSE_ADDRESS: a server that binds without SO_REUSEADDR, as many do: a connection in
# TIME_WAIT on its port makes its bind fail with "Address already in use" (Errno 98).
# GATED_VERSION: that version says so in ../scratch/gate.log before it binds, then waits until
# ../scratch/gate exists, so that a test can take its port in between.
if os.environ.get("NO_REUSE_ADDRESS"):
    Server.allow_reuse_address = False
if os.environ.get("GATED_VERSION") == VERSION and not HELD:
    with open("../scratch/gate.log", "a") as log:
        log.write("waiting pid=%d version=%s port=%d\n" % (os.getpid(), VERSION, PORT))
    while not os.path.exists("../scratch/gate"):
        time.sleep(0.02)

if HELD:
    import socket
    server = Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.socket = socket.socket(fileno=3)
    PORT = server.socket.getsockname()[1]
else:
    server = Server(("127.0.0.1", PORT), Handler)
with open("../scratch/app.log", "a") as log:
    log.write("start pid=%d version=%s port=%d\n" % (os.getpid(), VERSION, PORT))
# NOTIFY_READY: a server that says when it is ready (sd_notify), for `--ready notify`.
if os.environ.get("NOTIFY_READY") and os.environ.get("NOTIFY_SOCKET"):
    import socket
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
server.serve_forever()
