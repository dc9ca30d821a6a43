"""A local OpenAI-compatible chat server that replays recorded answers, for tests and demos.

Each entry matches requests by a substring of the request's message text and
answers, in turn, with its recorded responses (the last one repeats). A response
can be malformed content, an HTTP error status, or a delay (to provoke timeouts).

    with ReplayServer(entries) as srv:
        LLMConfig(base_url=srv.base_url, model="replay")
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class ReplayServer:
    def __init__(self, entries: list[dict[str, Any]] | str | Path) -> None:
        if isinstance(entries, (str, Path)):
            entries = load_entries(entries)
        self.entries = entries
        self.counts = [0] * len(entries)
        self.requests: list[dict[str, Any]] = []  # every request body, for assertions
        self.unmatched: list[str] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
        text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        last_user = next(
            (str(m.get("content", "")) for m in reversed(body.get("messages", [])) if m.get("role") == "user"), ""
        )
        with self._lock:
            self.requests.append(body)
            for i, entry in enumerate(self.entries):
                hay = last_user if entry.get("match_last") else text
                if entry["match"] in hay:
                    resp = entry["responses"][min(self.counts[i], len(entry["responses"]) - 1)]
                    self.counts[i] += 1
                    break
            else:
                self.unmatched.append(last_user[:200])
                return 400, {"error": {"message": "no recorded response matches this request"}}, 0.0
        status = int(resp.get("status", 200))
        if status != 200:
            return status, {"error": {"message": resp.get("content", "error")}}, float(resp.get("delay_s", 0))
        payload = {
            "id": "chatcmpl-replay",
            "object": "chat.completion",
            "model": body.get("model", "replay"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": resp["content"]}, "finish_reason": "stop"}
            ],
        }
        if resp.get("usage", True):
            payload["usage"] = (
                resp.get("usage")
                if isinstance(resp.get("usage"), dict)
                else {
                    "prompt_tokens": len(text) // 4,
                    "completion_tokens": len(resp["content"]) // 4,
                    "total_tokens": len(text) // 4 + len(resp["content"]) // 4,
                }
            )
        return 200, payload, float(resp.get("delay_s", 0))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # http.server's naming
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"unknown path {self.path}"}})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "body is not JSON"}})
                    return
                status, payload, delay = server.respond(body)
                if delay:
                    time.sleep(delay)
                self._send(status, payload)

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

        return Handler


def load_entries(path: str | Path) -> list[dict[str, Any]]:
    """Entries from one JSON file, or every *.json file of a directory (sorted by name)."""
    p = Path(path)
    files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    out: list[dict[str, Any]] = []
    for f in files:
        data = json.loads(f.read_text(encoding="utf-8"))
        out.extend(data["entries"] if isinstance(data, dict) else data)
    return out
