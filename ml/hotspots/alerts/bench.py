"""Bench: decide and dispatch one day's alerts of a scored warehouse (national scale in
`make bench`) to a local SMTP server (aiosmtpd, in its own process) and a local HTTP
receiver, with the maps; prints messages per second and the share of time spent
rendering maps. Recipients are generated: per district with forecast cells two mailboxes and
a control-room webhook; per state and for the national desk a mailbox and a webhook; a
webhook liaison per bank. The warehouse's alerts
schema is emptied first (a bench warehouse only). The SMTP server keeps what it accepts in a
Maildir (its path is printed) so that a delivered email can be read afterwards. The load
average is printed with the figures: on a shared machine they mean little without it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from hotspots import db


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_RECEIVER = r"""
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
count, lock = [0], threading.Lock()
class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with lock:
            count[0] += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def do_GET(self):
        body = str(count[0]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
s.daemon_threads = True
s.serve_forever()
"""


class _Receiver:
    """An HTTP receiver on 127.0.0.1 in its own process (as the SMTP server): counts JSON POSTs,
    tells the count on GET."""

    def __init__(self):
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", _RECEIVER, str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    @property
    def count(self) -> int:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/count", timeout=10) as r:
            return int(r.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _recipients(warehouse: str, smtp_port: int, http_port: int, folder: Path) -> tuple[Path, int]:
    conn = db.connect(warehouse)
    with conn, conn.cursor() as cur:
        cur.execute("select distinct state, district from marts.hotspot_forecast where state is not null "
                    "and district is not null order by 1, 2")
        places = cur.fetchall()
        cur.execute("""select left(t.to_ifsc, 4), count(*) from raw.transactions t group by 1 order by 2 desc
                       limit 20""")
        banks = [b for b, _ in cur.fetchall() if b and b.isalpha() and len(b) == 4 and b.isupper()]
    conn.close()

    def slug(*parts):
        return "-".join("".join(ch if ch.isalnum() else "-" for ch in p.lower()) for p in parts)[:60].strip("-")

    mail = f"mailto://127.0.0.1:{smtp_port}?from=hotspots@localhost&to={{}}@bench.localhost"
    hook = f"json://127.0.0.1:{http_port}/{{}}"
    recs = [{"name": "national", "jurisdiction": {"level": "national"},
             "channels": [{"name": "email", "url": mail.format("ncc")}, {"name": "hook", "url": hook.format("ncc")}]}]
    for state in sorted({s for s, _ in places}):
        recs.append({"name": slug("s", state), "jurisdiction": {"level": "state", "state": state},
                     "channels": [{"name": "email", "url": mail.format(slug("s", state))},
                                  {"name": "hook", "url": hook.format(slug(state))}]})
    names = set()
    for i, (state, district) in enumerate(places):
        name = slug("d", state, district)
        name = name if name not in names else f"{name[:50]}-{i}"
        names.add(name)
        recs.append({"name": name, "language": "hi" if i % 3 == 0 else "en",
                     "jurisdiction": {"level": "district", "state": state, "district": district},
                     # the SP's office, the district cyber cell, the control room's system
                     "channels": [{"name": "sp", "url": mail.format(name)},
                                  {"name": "cyber-cell", "url": mail.format(name + "-cyber")},
                                  {"name": "control-room", "url": hook.format(name)}]})
    for b in banks:
        recs.append({"name": slug("bank", b), "jurisdiction": {"level": "bank", "bank": b},
                     "channels": [{"url": hook.format("bank-" + b)}]})
    path = folder / "recipients.yml"
    path.write_text(yaml.safe_dump({"recipients": recs}, sort_keys=False))
    return path, len(recs)


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


class Receivers:
    """A local SMTP server (aiosmtpd, keeping what it accepts in a Maildir) and HTTP receiver in
    their own processes, the recipients file generated for the warehouse's forecast places, and a
    rules file (config/alerts.yml with a daily cap a national day does not reach) in a temporary
    folder. The warehouse's alerts schema is emptied (a bench warehouse only)."""

    def __init__(self, warehouse: str):
        self.folder = Path(tempfile.mkdtemp(prefix="hotspots-alerts-bench-"))
        self.maildir = self.folder / "mail"
        self.smtp_port = _free_port()
        self.smtp = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.smtp_port}",
                                      "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.http = _Receiver()
        try:
            self._prepare(warehouse)
        except BaseException:
            self.__exit__()
            raise

    def _prepare(self, warehouse: str) -> None:
        from hotspots.alerts import config, store

        for port in (self.smtp_port, self.http.port):
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
        conn = db.connect(warehouse)
        with conn, conn.cursor() as cur:
            cur.execute("drop schema if exists alerts cascade")
        store.ensure_schema(conn)
        conn.close()
        self.recipients_file, self.n_recipients = _recipients(warehouse, self.smtp_port, self.http.port, self.folder)
        rules = yaml.safe_load(config.RULES_FILE.read_text()) or {}
        rules["daily_cap"] = 10_000
        self.rules_file = self.folder / "alerts.yml"
        self.rules_file.write_text(yaml.safe_dump(rules, sort_keys=False))

    def emails_kept(self) -> int:
        new = self.maildir / "new"
        return sum(1 for _ in new.iterdir()) if new.exists() else 0

    def __enter__(self) -> Receivers:
        return self

    def __exit__(self, *exc) -> None:
        self.http.stop()
        self.smtp.terminate()
        self.smtp.wait(timeout=10)


def bench_alerts(warehouse: str = "bench", log=print) -> dict:
    from hotspots.alerts import config
    from hotspots.alerts import decide as decide_mod
    from hotspots.alerts.deliver import Dispatcher

    with Receivers(warehouse) as rec:
        http, maildir, n_recipients = rec.http, rec.maildir, rec.n_recipients
        recipients = config.load_recipients(rec.recipients_file, warehouse)
        rules = config.load_rules(rec.rules_file)
        conn = db.connect(warehouse)
        load_before = os.getloadavg()
        cpu0 = time.process_time() + _children_cpu()
        t0 = time.perf_counter()
        decided = decide_mod.decide(conn, recipients, rules, now=datetime.now(timezone.utc), run_id="bench",
                                    warehouse=warehouse, log=log)
        decide_s = time.perf_counter() - t0
        conn.close()
        d = Dispatcher(warehouse, recipients, rules, log=log)
        stats = d.run(wait=True, max_wait_s=120)
        total_s = time.perf_counter() - t0
        cpu_s = time.process_time() + _children_cpu() - cpu0  # with the forked senders (joined by now)
        load_after = os.getloadavg()
        conn = db.connect(warehouse)
        with conn, conn.cursor() as cur:
            cur.execute("select channel_kind, status, count(*) from alerts.messages group by 1, 2 order by 1, 2")
            by = cur.fetchall()
            cur.execute("select count(*), coalesce(sum(seconds), 0) from alerts.maps")
            n_maps, map_s = cur.fetchone()
        conn.close()
        sent = sum(n for _, s, n in by if s == "sent")
        out = {"recipients": n_recipients, "alerts": decided["alerts"], "digest_lines": decided["digest"],
               "messages": sum(n for *_, n in by), "sent": sent, "decide_s": round(decide_s, 2),
               "total_s": round(total_s, 2), "messages_per_s": round(sent / total_s, 1) if total_s else None,
               "maps": n_maps, "map_render_s": round(float(map_s), 2),
               "map_wall_s": stats.get("map_wall_seconds", 0.0),
               "map_share": round(stats.get("map_wall_seconds", 0.0) / total_s, 3) if total_s else None,
               "webhooks_received": http.count, "by_channel_status": [list(x) for x in by],
               "deliver_s": stats.get("seconds"), "cpu_s": round(cpu_s, 2),
               "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
               "cpus": os.cpu_count(), "maildir": str(maildir),
               "emails_kept": rec.emails_kept()}
        log(f"bench alerts: {out['sent']} of {out['messages']} messages sent to {n_recipients} recipients "
            f"({out['alerts']} alerts, {out['digest_lines']} digest lines) in {out['total_s']} s "
            f"(decide {out['decide_s']} s): {out['messages_per_s']} messages/s (target: 1,000+ in < 30 s); "
            f"{out['maps']} maps rendered once per cell ({out['map_render_s']} s of rendering in "
            f"{out['map_wall_s']} s on the clock) = {100 * (out['map_share'] or 0):.0f} % of the time; "
            f"{http.count} webhooks received, {out['emails_kept']} emails kept in {maildir}; "
            f"the deciding and sending processes used {out['cpu_s']} s of CPU; load average {load_before[0]:.2f} before, "
            f"{load_after[0]:.2f} after (1 min; {os.cpu_count()} CPUs)")
        return out
