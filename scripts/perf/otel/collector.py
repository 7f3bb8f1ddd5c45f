# A stand-in OTLP/HTTP collector for the overhead runs: "ok" answers 200 to every POST at
# once and counts the bytes; "blackhole" accepts connections and never answers.
import socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
mode, port = sys.argv[1], int(sys.argv[2])
if mode == "blackhole":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(128); held = []
    while True:
        c, _ = s.accept(); held.append(c)
else:
    total = {"requests": 0, "bytes": 0}
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("content-length", 0)); self.rfile.read(n)
            total["requests"] += 1; total["bytes"] += n
            self.send_response(200); self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0"); self.end_headers()
            sys.stderr.write(f"{total}\n")
        def log_message(self, *a): pass
    ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
