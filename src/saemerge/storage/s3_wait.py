"""Say so while an S3 request goes unanswered, instead of a silence of up to attempts × timeout.

An endpoint that accepts connections and never answers kept `saemerge run` silent for 603 s
(5 attempts × a 120 s read timeout). :class:`Waits` follows every request of a client through
botocore's events (``before-call``, ``before-send``, ``needs-retry`` after each attempt,
``after-call``) and, from a watcher thread, logs one warning per attempt still unanswered
after :data:`NOTICE_AFTER_S` seconds, naming the endpoint, the request, the attempt and the
time left before the client gives up.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

log = logging.getLogger("saemerge.storage")

NOTICE_AFTER_S = 10.0  # S3 answers in milliseconds; a slow big PUT only earns a warning


class Waits:
    """The requests in flight on one client, one per thread (a client's calls are blocking)."""

    def __init__(self, endpoint: str, attempts: int, read_timeout: float, notice_after: float = NOTICE_AFTER_S):
        self.endpoint = endpoint
        self.attempts = attempts
        self.read_timeout = read_timeout
        self.notice_after = notice_after
        self._inflight: dict[int, dict] = {}
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    def register(self, client) -> None:
        events = client.meta.events
        events.register("before-call.s3", self._call)
        events.register("before-send.s3", self._send)
        events.register("needs-retry.s3", self._answered)
        events.register("after-call.s3", self._done)

    def _call(self, model=None, **kwargs) -> None:
        with self._lock:
            self._inflight[threading.get_ident()] = {"op": getattr(model, "name", "request"), "attempt": 0}

    def _send(self, request=None, **kwargs) -> None:
        with self._lock:
            state = self._inflight.setdefault(threading.get_ident(), {"op": "request", "attempt": 0})
            state.update(attempt=state["attempt"] + 1, sent=time.monotonic(), told=False)
            state["what"] = f"{state['op']} {urlsplit(getattr(request, 'url', '') or '').path}"
            if self._watcher is None or not self._watcher.is_alive():
                self._watcher = threading.Thread(target=self._watch, name="s3-waits", daemon=True)
                self._watcher.start()

    def _answered(self, **kwargs) -> None:
        with self._lock:
            state = self._inflight.get(threading.get_ident())
            if state:
                state["sent"] = None

    def _done(self, **kwargs) -> None:
        with self._lock:
            self._inflight.pop(threading.get_ident(), None)

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)
            now = time.monotonic()
            with self._lock:
                late = [s for s in self._inflight.values() if s.get("sent") and not s["told"]]
                late = [s for s in late if now - s["sent"] >= self.notice_after]
                for state in late:
                    state["told"] = True
            for state in late:
                waited = now - state["sent"]
                left = max(0.0, self.read_timeout - waited) + (self.attempts - state["attempt"]) * self.read_timeout
                log.warning(
                    "S3: waiting for %s to answer %s: no answer for %.0f s (attempt %d of %d; "
                    "giving up in at most %.0f s)",
                    self.endpoint,
                    state["what"],
                    waited,
                    state["attempt"],
                    self.attempts,
                    left,
                )
