"""Delivery from the outbox through Apprise: claims with a lease, retries with backoff,
dead letters with the last error, every attempt recorded; a failing channel never blocks
the others (each message and channel is its own row, sent by a pool of worker threads,
in forked processes too when many messages are due).

A worker claims one due message (``for update skip locked``: two workers or two
schedulers never hold the same one), commits the claim (status ``sending``, its
``host:pid`` and a lease), sends, and commits the result. A message whose worker died
(its pid is gone on this host, or its lease ran out) is taken over. The narrow window
between the receiver accepting a message and the result's commit is the only place a
duplicate can come from; every message carries its id (``X-Hotspots-Message-Id``
header, ``message_id`` in webhook payloads) so a receiver can drop such a copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import smtplib
import socket
import ssl
import tempfile
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hotspots import db
from hotspots.alerts import maps
from hotspots.alerts.config import Recipients, Rules


def worker_id() -> str:
    """host:pid of this process (looked up at each claim: a forked process has its own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


# Prepared once per worker connection (planning the status aggregate cost more than running
# it): the claim of the next due message (a due one, else one whose worker died or whose
# lease ran out), and the four statements that record an attempt's result.
_PREPARE = """
prepare hotspots_claim (text, float8, text[]) as
update alerts.messages m set status = 'sending', claimed_by = $1,
       lease_until = now() + make_interval(secs => $2), attempts = m.attempts + 1
where m.message_id = coalesce(
    (select message_id from alerts.messages
     where status in ('pending', 'failed') and next_attempt_at <= now()
     order by created_at, message_id limit 1 for update skip locked),
    (select message_id from alerts.messages
     where status = 'sending' and (lease_until < now() or claimed_by = any($3))
     order by created_at, message_id limit 1 for update skip locked))
returning m.message_id, m.recipient, m.channel, m.channel_kind, m.kind, m.subject, m.body_text, m.body_html,
          m.payload, m.map_cells, m.forecast_date, m.attempts;
prepare hotspots_result (text, text, boolean, float8, text) as
update alerts.messages set status = $1, last_error = $2, claimed_by = null, lease_until = null,
       sent_at = case when $3 then now() else sent_at end,
       next_attempt_at = now() + make_interval(secs => $4)
where message_id = $5;
prepare hotspots_attempts (integer, boolean, text, text, text) as
insert into alerts.attempts (alert_id, attempt_no, attempted_at, ok, error, channel, message_id)
select alert_id, $1, now(), $2, $3, $4, $5 from alerts.message_alerts where message_id = $5
on conflict (alert_id, channel, attempt_no) do update
set attempted_at = excluded.attempted_at, ok = excluded.ok, error = excluded.error;
prepare hotspots_lock_alerts (text) as
select 1 from alerts.alerts where alert_id in (select alert_id from alerts.message_alerts where message_id = $1)
order by alert_id for update;
prepare hotspots_alert_status (text) as
update alerts.alerts a set status = s.status, attempts = s.attempts, last_error = s.last_error, sent_at = s.sent_at
from (select ma.alert_id,
             case when bool_and(m.status = 'sent') then 'sent'
                  when bool_and(m.status in ('sent', 'dead_letter')) then 'dead_letter'
                  when bool_or(m.status in ('failed', 'dead_letter')) then 'failed'
                  else 'pending' end as status,
             max(m.attempts) as attempts,
             (array_agg(m.channel || ': ' || m.last_error order by m.status = 'dead_letter' desc)
                filter (where m.last_error is not null))[1] as last_error,
             min(m.sent_at) as sent_at
      from alerts.message_alerts ma join alerts.messages m using (message_id)
      where ma.alert_id in (select alert_id from alerts.message_alerts where message_id = $1)
      group by 1) s
where a.alert_id = s.alert_id and a.status <> 'silenced'
"""
_CLAIM = "execute hotspots_claim (%(me)s, %(lease)s, %(dead)s::text[])"
# The result of an attempt: the message, the attempt rows of its alerts, then the alerts' own
# status (sent when every channel delivered, dead_letter when one gave up and the others are
# done, failed while retries remain, else pending). The alerts' rows are locked first, so
# that the aggregate (a statement of its own, so a snapshot of its own) sees the other
# channels' results committed by workers that held the lock before.
_RECORD = """
execute hotspots_result (%(status)s, %(error)s, %(ok)s, %(backoff)s, %(mid)s);
execute hotspots_attempts (%(attempt)s, %(ok)s, %(error)s, %(channel)s, %(mid)s);
execute hotspots_lock_alerts (%(mid)s);
execute hotspots_alert_status (%(mid)s)
"""


def prepare(conn) -> None:
    """Prepares the claim and the result statements on a worker's connection."""
    with conn.cursor() as cur:
        cur.execute(_PREPARE)
    conn.commit()


def _dead_workers(cur) -> list[str]:
    """Workers on this host holding a lease whose process is gone."""
    cur.execute("select distinct claimed_by from alerts.messages where status = 'sending'")
    host = socket.gethostname()
    dead = []
    for (who,) in cur.fetchall():
        h, _, pid = (who or "").rpartition(":")
        if h == host and pid.isdigit() and int(pid) != os.getpid():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                dead.append(who)
            except PermissionError:
                pass
    return dead


def _record(cur, message_id: str, channel: str, attempt: int, ok: bool, error: str | None, status: str,
            backoff: float) -> None:
    """The result of one attempt: the message, the attempt rows of its alerts, the alerts' status.
    Sent as one query string: on an autocommit connection one round trip and one (implicit)
    transaction, so a result is recorded whole or not at all."""
    cur.execute(_RECORD, {"status": status, "error": error, "ok": ok, "backoff": backoff, "mid": message_id,
                          "attempt": attempt, "channel": channel})


_TLS = threading.local()


class _SSLWithReusedContext(types.ModuleType):
    """The ``ssl`` module as Apprise's SMTP controller sees it, except that
    ``create_default_context()`` hands out one context per thread instead of a new one.

    Apprise (2.2) builds ``ssl.create_default_context()`` for every email it sends, even on a
    plaintext connection, and that loads the system's CA bundle each time: about 40 ms of CPU,
    more than everything else an email costs (measured: 52 ms of CPU per email before, 6 ms
    after, on a local SMTP server). A context is made to be reused across connections. Apprise
    relaxes it for ``verify=no`` URLs (``check_hostname``, ``verify_mode``) right after creating
    it, so every hand-out first puts the verifying defaults back; a thread sends one email at a
    time, and an SSL connection takes its settings from the context when it is wrapped."""

    def __getattr__(self, name):
        return getattr(ssl, name)

    @staticmethod
    def create_default_context(*args, **kwargs):
        if args or kwargs:
            return ssl.create_default_context(*args, **kwargs)
        ctx = getattr(_TLS, "ctx", None)
        if ctx is None:
            ctx = _TLS.ctx = ssl.create_default_context()
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        return ctx


_SMTP_IDLE: dict[tuple, list] = {}  # open SMTP sessions between two emails, per server and login
_SMTP_LOCK = threading.Lock()


def _pooled_smtp_controller(base):
    """Apprise's SMTP controller, keeping the session open for the next email to the same server.

    Apprise connects, greets (EHLO), sends one email and says QUIT, for every email: three
    of the six exchanges with the server are the session's, not the email's. Here a session
    that sent an email cleanly goes back to an idle list and the next email to the same
    server and login takes it, after a RSET that both clears the SMTP transaction and proves
    the session alive; a session that failed, or that RSET finds dead, is closed and a new
    one is opened exactly as Apprise would. Sessions left idle are closed at the end of a
    dispatch (:func:`close_idle_smtp`)."""

    class Pooled(base):
        def _key(self):
            return (self.host, self.port, self.secure_mode, self.user, self.password, self.verify_certificate)

        def __enter__(self):
            self._failed = False
            while True:
                with _SMTP_LOCK:
                    idle = _SMTP_IDLE.get(self._key())
                    sock = idle.pop() if idle else None
                if sock is None:
                    return super().__enter__()
                try:
                    sock.rset()
                except (OSError, smtplib.SMTPException):
                    with contextlib.suppress(Exception):
                        sock.close()
                    continue
                self._socket = sock
                return self

        def sendmail(self, from_addr, to_addrs, message):
            ok = super().sendmail(from_addr, to_addrs, message)
            self._failed = self._failed or not ok
            return ok

        def __exit__(self, exc_type, exc_val, exc_tb):
            if exc_type is None and not self._failed and self._socket is not None:
                with _SMTP_LOCK:
                    _SMTP_IDLE.setdefault(self._key(), []).append(self._socket)
                self._socket = None
                return None
            return super().__exit__(exc_type, exc_val, exc_tb)

    Pooled.__name__ = Pooled.__qualname__ = "PooledAppriseSMTPController"
    return Pooled


def close_idle_smtp() -> None:
    """Says QUIT on every idle SMTP session of this process."""
    with _SMTP_LOCK:
        socks = [s for idle in _SMTP_IDLE.values() for s in idle]
        _SMTP_IDLE.clear()
    for sock in socks:
        with contextlib.suppress(Exception):
            sock.quit()


def _tune_apprise_email() -> None:
    """One TLS context per thread and SMTP sessions kept between emails (see above); Apprise's
    email plugin is otherwise unchanged (it still builds, addresses and sends every email)."""
    try:
        from apprise.plugins.email import base as email_base
        from apprise.plugins.email import smtp
    except ImportError:  # another Apprise layout: nothing to do, just slower
        return
    if getattr(smtp, "ssl", None) is ssl:
        smtp.ssl = _SSLWithReusedContext("ssl")
    controller = getattr(email_base, "AppriseSMTPController", None)
    if controller is not None and controller.__name__ != "PooledAppriseSMTPController":
        email_base.AppriseSMTPController = _pooled_smtp_controller(controller)


def _in_forked_child() -> None:
    """In a process forked to send: die with the parent (a killed dispatcher must not leave
    senders behind), and forget the parent's Apprise thread pools (their threads were not
    forked; Apprise makes new ones on first use)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    with _SMTP_LOCK:
        _SMTP_IDLE.clear()  # the parent's sessions: its sockets, not this process's to use
    try:
        import apprise.apprise as core

        core._shared_executor = None
        core._coordinator_executor = None
        core._shared_executor_lock = threading.Lock()
        core._coordinator_executor_lock = threading.Lock()
    except (ImportError, AttributeError):
        pass


def send_one(url: str, subject: str, body: str, body_format: str, message_id: str, attachments: list[Path],
             timeout: float) -> tuple[bool, str | None]:
    """One Apprise notification to one URL; (ok, error text)."""
    import apprise

    _tune_apprise_email()
    # Sequential inside Apprise: the worker pool is the parallelism.
    asset = apprise.AppriseAsset(async_mode=False)
    obj = apprise.Apprise.instantiate(url, asset=asset, suppress_exceptions=True)
    if obj is None:
        return False, "not a valid Apprise URL"
    if hasattr(obj, "headers") and isinstance(obj.headers, dict):
        obj.headers["X-Hotspots-Message-Id"] = message_id
    for attr in ("socket_connect_timeout", "socket_read_timeout"):
        if hasattr(obj, attr):
            setattr(obj, attr, timeout)
    if hasattr(obj, "timeout"):
        obj.timeout = timeout
    a = apprise.Apprise(asset=asset)
    a.add(obj)
    attach = apprise.AppriseAttachment([str(p) for p in attachments]) if attachments else None
    fmt = apprise.NotifyFormat.HTML if body_format == "html" else apprise.NotifyFormat.TEXT
    try:
        result = a.notify(body=body, title=subject, body_format=fmt, attach=attach)
    except Exception as e:  # noqa: BLE001 - a channel's failure is data, not a crash
        return False, f"{type(e).__name__}: {e}"
    if result:
        return True, None
    # Apprise keeps each service's own log entries in its result.
    lines = [f"{e.level}: {e.message}" for r in getattr(result, "results", []) or [] for e in r.logs()
             if getattr(e, "level", "") in ("WARNING", "ERROR", "CRITICAL")]
    return False, (" | ".join(lines[-3:]) or "notify returned False")[:1000]


class Dispatcher:
    def __init__(self, warehouse: str, recipients: Recipients, rules: Rules, log=print):
        self.warehouse, self.recipients, self.rules, self.log = warehouse, recipients, rules, log
        d = rules.delivery
        self.max_attempts = int(d.get("max_attempts", 4))
        self.backoff = float(d.get("backoff_seconds", 2))
        self.backoff_max = float(d.get("backoff_max_seconds", 60))
        self.lease = float(d.get("lease_seconds", 120))
        self.timeout = float(d.get("timeout_seconds", 15))
        self.workers = int(d.get("workers", 4))
        # Processes sending at once when many messages are due (each with `workers` threads):
        # one Python process spends most of a send holding the GIL (Apprise building the
        # email, the HTML-to-text alternative, the JSON), so a second one uses a second core.
        self.processes = max(1, int(d.get("processes", os.cpu_count() or 1)))
        self.fork_above = int(d.get("processes_above", 50))
        self.lock = threading.Lock()
        self.stats = {"sent": 0, "failed": 0, "dead_letter": 0, "map_seconds": 0.0, "send_seconds": 0.0}
        self.tmp = Path(tempfile.mkdtemp(prefix="hotspots-alerts-"))
        self.written: set[tuple] = set()  # (forecast date, cell) whose map file is in self.tmp
        self.dead: list[str] = []
        self.dead_checked = float("-inf")

    def _attachments(self, conn, cells: list[str], forecast_date) -> list[Path]:
        """The map files of these cells (written once per process from alerts.maps, rendered
        there first when missing)."""
        paths = {c: self.tmp / f"{forecast_date}" / f"map-{c}.png" for c in cells}
        with self.lock:
            missing = [c for c in cells if (forecast_date, c) not in self.written]
        if missing:
            pngs, spent = maps.ensure_maps(conn, missing, forecast_date)
            for cell in missing:
                p = paths[cell]
                p.parent.mkdir(parents=True, exist_ok=True)
                tmp = p.with_suffix(f".{threading.get_ident()}.tmp")
                tmp.write_bytes(pngs[cell])
                tmp.replace(p)
            with self.lock:
                self.stats["map_seconds"] += spent
                self.written.update((forecast_date, c) for c in missing)
        return [paths[c] for c in cells]

    def _dead(self, cur) -> list[str]:
        """Workers of this host that died holding leases; looked up every few seconds, not per claim."""
        with self.lock:
            if time.monotonic() - self.dead_checked < 5:
                return self.dead
        dead = _dead_workers(cur)
        with self.lock:
            self.dead, self.dead_checked = dead, time.monotonic()
        return dead

    def _one(self, conn) -> bool:
        """Claims and sends one due message; False when none is due. ``conn`` is in autocommit:
        the claim and the result are each one statement string, committed as they run."""
        with conn.cursor() as cur:
            cur.execute(_CLAIM, {"me": worker_id(), "lease": self.lease, "dead": self._dead(cur)})
            row = cur.fetchone()
        if row is None:
            return False
        (mid, rec_name, ch_name, ch_kind, _kind, subject, text, html, payload, map_cells, fdate, attempt) = row
        rec = self.recipients.by_name(rec_name)
        channel = next((c for c in rec.channels if c.name == ch_name), None) if rec else None
        ok, error = False, None
        if channel is None:
            error, attempt = f"channel {ch_name} of {rec_name} is no longer in {self.recipients.path.name}", \
                self.max_attempts
        else:
            try:
                attachments = self._attachments(conn, list(map_cells or []), fdate) if ch_kind == "email" else []
                if ch_kind == "email":
                    body, fmt = html or text, "html" if html else "text"
                elif ch_kind == "webhook":
                    doc = payload if isinstance(payload, dict) else json.loads(payload or "{}")
                    body, fmt = json.dumps(dict(doc, message_id=mid, text=text), ensure_ascii=False, default=str), \
                        "text"
                else:
                    body, fmt = text, "text"
                t0 = time.perf_counter()
                ok, error = send_one(channel.url, subject, body, fmt, mid, attachments, self.timeout)
                with self.lock:
                    self.stats["send_seconds"] += time.perf_counter() - t0
            except Exception as e:  # noqa: BLE001 - recorded as this attempt's error
                ok, error = False, f"{type(e).__name__}: {e}"[:1000]
        if ok:
            status, wait = "sent", 0.0
        elif attempt >= self.max_attempts:
            status, wait = "dead_letter", 0.0
        else:
            status, wait = "failed", min(self.backoff * 2 ** (attempt - 1), self.backoff_max)
        with conn.cursor() as cur:
            _record(cur, mid, ch_name, attempt, ok, error, status, wait)
        with self.lock:
            self.stats[status] += 1
        if not ok:
            self.log(f"alerts: {rec_name}/{ch_name} message {mid} attempt {attempt}: {status}: {error}")
        return True

    def _worker(self) -> None:
        conn = db.connect(self.warehouse)
        conn.autocommit = True
        try:
            prepare(conn)
            while self._one(conn):
                pass
        finally:
            conn.close()

    def _threads(self) -> None:
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for f in [pool.submit(self._worker) for _ in range(self.workers)]:
                f.result()

    def _child(self, results) -> None:
        """A forked sending process: its own threads, connections and counters."""
        _in_forked_child()
        self.lock = threading.Lock()
        self.stats = {k: 0 if isinstance(v, int) else 0.0 for k, v in self.stats.items()}
        try:
            self._threads()
        finally:
            close_idle_smtp()
            results.put(self.stats)

    def _due_now(self) -> int:
        conn = db.connect(self.warehouse)
        try:
            with conn.cursor() as cur:
                cur.execute("""select count(*) from alerts.messages
                               where status in ('pending', 'failed') and next_attempt_at <= now()""")
                return cur.fetchone()[0]
        finally:
            conn.close()

    def _round(self) -> None:
        """Sends everything due now: in this process, and in forked ones when many are due."""
        n = self.processes if self.processes > 1 and self._due_now() > self.fork_above else 1
        if n == 1:
            self._threads()
            return
        import multiprocessing

        ctx = multiprocessing.get_context("fork")  # nothing of this dispatcher is open at this point
        results = ctx.SimpleQueue()
        kids = [ctx.Process(target=self._child, args=(results,), daemon=True) for _ in range(n - 1)]
        for k in kids:
            k.start()
        try:
            self._threads()
        finally:
            for k in kids:
                k.join()
        while not results.empty():
            for key, v in results.get().items():
                if key in self.stats and isinstance(v, int | float):
                    self.stats[key] += v

    def _next_due(self) -> float | None:
        """Seconds until the next retry is due (0 when one is due now), None when nothing is left."""
        conn = db.connect(self.warehouse)
        try:
            with conn.cursor() as cur:
                cur.execute("""select extract(epoch from min(case when status = 'sending' then lease_until
                                                                  else next_attempt_at end) - now())
                               from alerts.messages where status in ('pending', 'failed', 'sending')""")
                v = cur.fetchone()[0]
        finally:
            conn.close()
        return None if v is None else max(float(v), 0.0)

    def run(self, wait: bool = True, max_wait_s: float = 600) -> dict:
        """Sends everything due; with ``wait`` also waits for the retries (bounded)."""
        t0 = time.perf_counter()
        conn = db.connect(self.warehouse)
        try:
            # Once per (cell, forecast date), before the sends: a few milliseconds a map.
            t_maps = time.perf_counter()
            self.stats["map_seconds"] += maps.prerender(conn, self.warehouse)
            self.stats["map_wall_seconds"] = round(time.perf_counter() - t_maps, 2)
        finally:
            conn.close()
        try:
            while True:
                self._round()
                nxt = self._next_due()
                if nxt is None or not wait or time.perf_counter() - t0 + nxt > max_wait_s:
                    break
                time.sleep(min(nxt, 30) + 0.05)
        finally:
            close_idle_smtp()
            # The map files were only attachments to hand to Apprise: nothing to keep.
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.written.clear()
        self.stats["seconds"] = round(time.perf_counter() - t0, 2)
        self.stats["map_seconds"] = round(self.stats["map_seconds"], 2)
        self.stats["send_seconds"] = round(self.stats["send_seconds"], 2)
        self.log(f"alerts: delivered {self.stats['sent']} messages, {self.stats['failed']} failed attempts to "
                 f"retry, {self.stats['dead_letter']} dead letters in {self.stats['seconds']} s "
                 f"(maps rendered in {self.stats['map_seconds']} s)")
        return self.stats
