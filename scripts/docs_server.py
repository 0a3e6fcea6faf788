"""The local front door: the API reference at /docs, everything else forwarded to the API.

    python scripts/docs_server.py PORT UPSTREAM_PORT

`cargo lambda watch` answers every path itself (unknown ones with its own 404), so the
reference cannot sit beside it on its port. This server takes the port instead: `/docs` is the
OpenAPI UI (swagger-ui-dist, installed into `scripts/web/node_modules` by the bootstrap;
nothing is fetched at run time), `/docs/openapi.json` the OpenAPI document with the schema
files' `$ref`s bundled in (as for the fuzzing) and the server set to this origin, and every
other request goes unchanged to the API on UPSTREAM_PORT. So "Try it out" is same-origin; the
answers also allow any origin (local use only), for a front end served elsewhere.
"""

import json
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from fuzz import bundle  # noqa: E402

UI = ROOT / "scripts" / "web" / "node_modules" / "swagger-ui-dist"
# Headers that belong to one connection, not to the message (RFC 9110, 7.6.1).
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length"}
TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css", ".js": "text/javascript",
         ".json": "application/json", ".png": "image/png", ".map": "application/json"}
ASSETS = {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png",
          "favicon-16x16.png", "index.css"}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>EVI portal API (local)</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""

INIT = """window.ui = SwaggerUIBundle({
  url: "/docs/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  docExpansion: "list",
  tryItOutEnabled: false,
  displayRequestDuration: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout"
});
"""


def document() -> bytes:
    doc = bundle()
    doc["servers"] = [{"url": "/", "description": "This local server (scripts/dev)"}]
    return json.dumps(doc).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = "http://127.0.0.1:9001"
    openapi = b""

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # the API's own log has every request; this one would repeat the raw paths

    def cors(self):
        self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
        self.send_header("Access-Control-Expose-Headers", "x-request-id, Retry-After, Location")

    def answer(self, status, content_type, body: bytes):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def docs(self) -> bool:
        path = self.path.split("?", 1)[0]
        if path in ("/docs", "/docs/", "/docs/index.html"):
            self.answer(200, TYPES[".html"], PAGE.encode())
        elif path == "/docs/init.js":
            self.answer(200, TYPES[".js"], INIT.encode())
        elif path == "/docs/openapi.json":
            self.answer(200, TYPES[".json"], self.openapi)
        elif path.startswith("/docs/") and path.removeprefix("/docs/") in ASSETS:
            file = UI / path.removeprefix("/docs/")
            if not file.exists():
                self.answer(503, "text/plain", b"swagger-ui-dist is not installed: run scripts/dev (its bootstrap)")
            else:
                self.answer(200, TYPES.get(file.suffix, "application/octet-stream"), file.read_bytes())
        else:
            return False
        return True

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        request = urllib.request.Request(self.upstream + self.path, data=body, method=self.command)
        for name, value in self.headers.items():
            if name.lower() not in HOP_BY_HOP:
                request.add_header(name, value)
        try:
            response = urllib.request.urlopen(request, timeout=120)
        except urllib.error.HTTPError as e:
            response = e  # a 4xx/5xx answer of the API: passed on as it is
        except OSError as e:
            self.answer(502, "text/plain", f"the API on {self.upstream} did not answer: {e}".encode())
            return
        with response:
            data = response.read()
            self.send_response(response.status)
            for name, value in response.headers.items():
                # send_response wrote Server and Date already.
                skip = HOP_BY_HOP | {"server", "date"}
                if name.lower() not in skip and not name.lower().startswith("access-control-"):
                    self.send_header(name, value)
            self.cors()
            if "Vary" not in response.headers:
                self.send_header("Vary", "Origin")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    def handle_any(self):
        if self.command in ("GET", "HEAD") and self.docs():
            return
        self.forward()

    def do_OPTIONS(self):  # noqa: N802 - the base class's naming
        # A preflight from a page on another local origin: allowed here, never forwarded.
        if self.headers.get("Access-Control-Request-Method"):
            self.send_response(204)
            self.cors()
            self.send_header("Vary", "Origin")
            self.send_header("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
            self.send_header("Access-Control-Allow-Headers",
                             self.headers.get("Access-Control-Request-Headers") or "*")
            self.send_header("Access-Control-Max-Age", "600")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.forward()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any  # noqa: N815


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    port, upstream = int(sys.argv[1]), int(sys.argv[2])
    Handler.upstream = f"http://127.0.0.1:{upstream}"
    Handler.openapi = document()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"API reference on http://127.0.0.1:{port}/docs, API forwarded to {Handler.upstream}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
