"""The simulation loop: one day at a time, extracts into the landing folder, truth beside it.

Order within a simulated day: rings step (raids, moves, churn), the day's
incidents and money trails are generated, money that completed its chain adds
to the mule accounts' cash-out intensity, today's withdrawals are drawn from
that intensity, every row is queued for the extract date that will carry it,
and (inside the requested window) today's extract is written. A warm-up of
two weeks before `start` (longer when the scenario reports rows up to a month
late) fills the reporting pipeline so the first extracts already carry late rows.

The scenario (`scenario.py`) switches producer behaviours on: withdrawals
without coordinates, jittered coordinates, late reports (drawn from their own
`producer` stream, so the default draws exactly what it always drew), rings
going dark and moving, money forwarded to second-layer accounts (`forward`).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from hotspots.contract import CHANNELS, COLUMNS, ENTITIES, TXN_STATUSES
from hotspots.geo.gazetteer import in_india

from . import extracts as ex
from .cashout import HORIZON, CashOut, Withdrawals
from .dirt import BY_NAME, RESEND, DirtInjector, RowContext
from .formats import hex_tokens, optional_ints, timestamps
from .fraud import TXN_REPORT_DELAY_P, FraudDay
from .rhythm import DAY_S, day_start_utc, incident_factor, ist_day, to_date, to_day, withdrawal_factor
from .rings import RingBook
from .scenario import Scenario, resolve
from .world import KM_PER_DEG, World, build_world

WARMUP_DAYS = 14
COMPLAINTS_PER_DAY = 8000          # national volume at scale 1.0
P_WITHDRAWAL_NEVER_REPORTED = 0.15
WITHDRAWAL_REPORT_DELAY_P = np.array([22, 20, 15, 12, 9, 7, 5, 4, 3, 3], dtype=float)  # 1..10 days
P_WITHDRAWAL_PIN = 0.9             # terminals with coordinates also give their PIN
RESEND_MAX_DAYS = 7
_STREAMS = ("world", "rings", "fraud", "cash", "report", "format", "dirt")
# Spawned after _STREAMS, so adding them left every default stream as it was.
_SCENARIO_STREAMS = ("producer", "forward")


def fmt_optional_ack(ack: np.ndarray) -> np.ndarray:
    return optional_ints(ack, ack >= 0)


@lru_cache(maxsize=2)
def _world(seed: int) -> World:
    """The world depends on the seed only; cached because building it takes a couple of seconds."""
    return build_world(np.random.default_rng(np.random.SeedSequence([seed, 1])))


def default_truth_dir(out: Path) -> Path:
    return out.parent / "truth"


def simulate(out, start, days: int, scale: float, seed: int, truth=None, dirty_rate: float = 0.02,
             progress: bool = True, variant: str | Scenario = "default") -> dict:
    """Write `days` extract folders from `start` into `out` and the truth beside it; return counts.

    `variant` is a name in `VARIANTS` or a `Scenario`; "default" is the simulator's own producer."""
    scenario = resolve(variant)
    out = Path(out).resolve()
    truth_dir = Path(truth).resolve() if truth else default_truth_dir(out)
    if truth_dir == out or out in truth_dir.parents:
        raise ValueError(f"truth dir {truth_dir} must not be inside the landing folder {out}")
    if isinstance(start, str):
        start = dt.date.fromisoformat(start)
    if days < 1 or scale <= 0 or not 0 <= dirty_rate < 0.5:
        raise ValueError("need days >= 1, scale > 0 and 0 <= dirty_rate < 0.5")
    sim = _Simulation(out, truth_dir, to_day(start), int(days), float(scale), int(seed), float(dirty_rate),
                      progress, scenario)
    return sim.run()


class _Simulation:
    def __init__(self, out: Path, truth: Path, first: int, days: int, scale: float, seed: int,
                 dirty_rate: float, progress: bool, scenario: Scenario):
        self.out, self.truth, self.first, self.last = out, truth, first, first + days - 1
        self.scale, self.progress, self.scenario = scale, progress, scenario
        names = _STREAMS + _SCENARIO_STREAMS
        rngs = dict(zip(names, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(names))),
                        strict=True))
        self.rng = rngs
        self.world = _world(seed)
        self.warmup = WARMUP_DAYS if scenario.late_share == 0 else max(WARMUP_DAYS, scenario.late_days[1] + 1)
        self.book = RingBook(self.world, rngs["rings"], scale, first - self.warmup, scenario)
        self.fraud = FraudDay(self.world, self.book, rngs["fraud"], scenario, rngs["forward"])
        horizon = HORIZON + (int(np.ceil(scenario.forward_hours[1] / 24)) if scenario.forwards else 0)
        self.cash = CashOut(self.world, self.book, rngs["cash"], horizon)
        # Terminals this producer reports with coordinates (when it gives them at all).
        self._reportable = self.world.t["has_coords"] if scenario.pin_only_terminals else \
            np.ones(len(self.world.t["has_coords"]), dtype=bool)
        self._coordless_w = self._terminal_coordless_tendency()
        self.dirt = DirtInjector(self.world, rngs["dirt"], dirty_rate)
        self.outbox = ex.Outbox(first, self.last)
        self.resends: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.counts: dict[str, int] = defaultdict(int)
        self._withdrawal_serial = int(rngs["report"].integers(1, 10**11))

    # ---------------------------------------------------------------- loop
    def run(self) -> dict:
        t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        self.truth.mkdir(parents=True, exist_ok=True)
        self._open_truth()
        try:
            for day in range(self.first - self.warmup, self.last + 1):
                self._simulate_day(day)
                if day >= self.first:
                    self._write_extract(day)
                    self._report_progress(day, t0)
        finally:
            for w in self._truth_files.values():
                w.close()
        self.counts["seconds"] = round(time.perf_counter() - t0, 2)
        summary = self._summary()
        if self.progress:
            print("simulate: done " + " ".join(f"{k}={v}" for k, v in summary.items()), file=sys.stderr)
        return summary

    def _simulate_day(self, day: int) -> None:
        self.book.step(day, COMPLAINTS_PER_DAY * self.scale * incident_factor(day))
        fd = self.fraud.run(day)
        a = fd.arrivals
        self.cash.add_arrivals(day, a["mule"].to_numpy(), a["at"].to_numpy(), a["amount"].to_numpy(),
                               a["ack"].to_numpy())
        intensity, wd = self.cash.draw(day, withdrawal_factor(day))
        self._queue_complaints(fd.complaints)
        self._queue_transactions(fd.transactions)
        if self.scenario.forwards:
            self._truth_forwards(fd.transactions)
        self._queue_withdrawals(day, wd)
        date = to_date(day).isoformat()
        self._truth_files["intensity"].write(intensity.assign(date=date), float_format="%.6g")
        self._truth_files["rings"].write(self.book.log_rows(date))
        self.counts["expected_withdrawals"] += float(intensity["expected_withdrawals"].sum())
        self.counts["complaints_generated"] += int((fd.complaints["status"] == 0).sum())

    # ---------------------------------------------------------------- queues
    def _queue_complaints(self, c: pd.DataFrame) -> None:
        self.outbox.add("complaints", c, ist_day(c["updated"].to_numpy()))

    def _queue_transactions(self, t: pd.DataFrame) -> None:
        delay = self.rng["report"].choice(len(TXN_REPORT_DELAY_P), size=len(t), p=TXN_REPORT_DELAY_P)
        self.outbox.add("transactions", t, ist_day(t["at"].to_numpy()) + self._late(delay))

    def _queue_withdrawals(self, day: int, wd: Withdrawals) -> None:
        rng, k = self.rng["report"], len(wd.mule)
        p = WITHDRAWAL_REPORT_DELAY_P / WITHDRAWAL_REPORT_DELAY_P.sum()
        delay = 1 + rng.choice(len(p), size=k, p=p)
        never = rng.random(k) < P_WITHDRAWAL_NEVER_REPORTED
        extract_day = np.where(never, -1, ist_day(wd.at) + self._late(delay))
        serial = self._withdrawal_serial + wd.serial
        rows = pd.DataFrame({
            "serial": serial, "mule": wd.mule, "terminal": wd.terminal, "at": wd.at, "amount": wd.amount,
            "ack": wd.ack, "has_pin": rng.random(k) < P_WITHDRAWAL_PIN, "style": self.fraud._ts_styles(k),
            **self._reported_position(wd.terminal),
        })
        self.outbox.add("withdrawals", rows, extract_day)
        self._truth_withdrawals(rows, extract_day, never)

    # ---------------------------------------------------------------- producer quirks (scenario)
    def _terminal_coordless_tendency(self) -> np.ndarray:
        """Per terminal: its relative tendency to be reported without coordinates (mean 1)."""
        s = self.scenario
        n = len(self.world.t["has_coords"])
        if s.coordless_share <= 0 or s.coordless_concentration <= 0:
            return np.ones(n)
        k = s.coordless_concentration
        return self.rng["producer"].gamma(k, 1.0 / k, n)

    def _reported_position(self, term: np.ndarray) -> dict[str, np.ndarray]:
        """How each withdrawal's terminal is reported: `coordless` (terminal and PIN, no lat/lon)
        and the offset of the reported coordinates from the true ones (`dlat`, `dlon`, degrees)."""
        s, rng, k = self.scenario, self.rng["producer"], len(term)
        located = self._reportable[term]
        coordless = ~located
        dlat, dlon = np.zeros(k), np.zeros(k)
        if s.coordless_share > 0 and k:
            # Terminals known only by PIN make up part of the share; the rest is taken from today's
            # withdrawals at terminals with coordinates, in proportion to each terminal's tendency.
            pin_only = 1.0 - located.mean()
            q = float(np.clip((s.coordless_share - pin_only) / max(1.0 - pin_only, 1e-9), 0.0, 1.0))
            w = self._coordless_w[term]
            p = np.minimum(q * w / w[located].mean(), 1.0) if located.any() else np.zeros(k)
            coordless |= rng.random(k) < p
        if s.jitter_m > 0 or s.jitter_far_share > 0:
            sd = np.where(rng.random(k) < s.jitter_far_share, s.jitter_far_m, s.jitter_m)
            metres = np.clip(rng.normal(size=(2, k)), -3, 3) * sd
            lat = self.world.t["lat"][term]
            dlat = metres[0] / (KM_PER_DEG * 1000)
            dlon = metres[1] / (KM_PER_DEG * 1000 * np.cos(np.radians(lat)))
            # A report never leaves India (a terminal on the coast stays on land).
            outside = ~in_india(lat + dlat, self.world.t["lon"][term] + dlon)
            dlat[outside] = dlon[outside] = 0.0
        return {"coordless": coordless, "dlat": dlat, "dlon": dlon}

    def _late(self, delay: np.ndarray) -> np.ndarray:
        """The scenario's heavy tail: a share of rows reaches an extract 10-30 days late."""
        s = self.scenario
        if s.late_share <= 0:
            return delay
        rng, k = self.rng["producer"], len(delay)
        late = rng.random(k) < s.late_share
        return np.where(late, rng.integers(s.late_days[0], s.late_days[1] + 1, k), delay)

    # ---------------------------------------------------------------- truth
    def _open_truth(self) -> None:
        t = self.truth
        self._truth_files = {
            "intensity": ex.GzCsv(t / "intensity.csv.gz", ["h3_cell", "date", "expected_withdrawals"]),
            "withdrawals": ex.GzCsv(t / "withdrawals.csv.gz", [
                "withdrawal_id", "account", "ring_id", "channel", "terminal_id", "h3_cell", "lat", "lon",
                "withdrawn_at", "amount_inr", "ack_no", "extract_date", "fate"]),
            "rings": ex.GzCsv(t / "rings.csv.gz", [
                "ring_id", "date", "district", "state", "base_lat", "base_lon", "profile", "status", "activity",
                "expected_complaints", "mule_accounts", "event"]),
            "dirt": ex.GzCsv(t / "dirt.csv.gz", ["extract_date", "file", "line_no", "key", "dirt_class", "expected"]),
        }
        if self.scenario.forwards:
            self._truth_files["forwards"] = ex.GzCsv(t / "forwards.csv.gz", [
                "txn_id", "ack_no", "ring_id", "from_account", "to_account", "received_at", "forwarded_at",
                "amount_inr", "status"])

    def _truth_forwards(self, t: pd.DataFrame) -> None:
        """Transfers to second-layer accounts: when the money reached the sender, when it moved on."""
        f = t[t["received"].to_numpy() >= 0]
        if len(f) == 0:
            return
        utc = np.zeros(len(f), dtype=np.int8)
        ring_ids = np.array([r.ring_id for r in self.book.rings])
        self._truth_files["forwards"].write(pd.DataFrame({
            "txn_id": ex.txn_ids(f["serial"].to_numpy()),
            "ack_no": ex.fmt.ints(f["ack"]),
            "ring_id": ring_ids[self.book.mules.ring[f["to"].to_numpy()]],
            "from_account": hex_tokens("AC", f["from"].to_numpy()),
            "to_account": ex.mule_tokens(f["to"].to_numpy()),
            "received_at": timestamps(f["received"].to_numpy(), utc),
            "forwarded_at": timestamps(f["at"].to_numpy(), utc),
            "amount_inr": ex.fmt.decimals(f["amount"].to_numpy(), 2),
            "status": np.array(TXN_STATUSES)[f["status"].to_numpy()],
        }))
        self.counts["forwards"] += len(f)

    def _truth_withdrawals(self, rows: pd.DataFrame, extract_day: np.ndarray, never: np.ndarray) -> None:
        term = rows["terminal"].to_numpy()
        t = self.world.t
        in_window = (extract_day >= self.first) & (extract_day <= self.last)
        fate = np.where(never, "never", np.where(in_window, "reported",
                        np.where(extract_day > self.last, "after_window", "before_window")))
        dates = np.where(in_window, np.datetime_as_string(
            np.where(in_window, extract_day, 0).astype("datetime64[D]")), "")
        ring_ids = np.array([r.ring_id for r in self.book.rings])
        df = pd.DataFrame({
            "withdrawal_id": ex.withdrawal_ids(rows["serial"].to_numpy()),
            "account": ex.mule_tokens(rows["mule"].to_numpy()),
            "ring_id": ring_ids[self.book.mules.ring[rows["mule"].to_numpy()]],
            "channel": np.array(CHANNELS)[t["channel"][term]],
            "terminal_id": t["terminal_id"][term],
            "h3_cell": self.world.cells[t["cell_idx"][term]],
            "lat": np.round(t["lat"][term], 6), "lon": np.round(t["lon"][term], 6),
            "withdrawn_at": timestamps(rows["at"].to_numpy(), np.zeros(len(rows), dtype=np.int8)),
            "amount_inr": ex.fmt.decimals(rows["amount"].to_numpy(), 2),
            "ack_no": fmt_optional_ack(rows["ack"].to_numpy()),
            "extract_date": dates, "fate": fate,
        })
        self._truth_files["withdrawals"].write(df)
        self.counts["withdrawals_realised"] += len(df)
        self.counts["withdrawals_reported"] += int(in_window.sum())
        self.counts["withdrawals_coordless"] += int((in_window & rows["coordless"].to_numpy()).sum())

    # ---------------------------------------------------------------- extract
    def _write_extract(self, day: int) -> None:
        date = to_date(day).isoformat()
        names = ex.choose_file_names(self.rng["format"])
        files, dirt_rows = {}, []
        for entity in ENTITIES:
            lines, records = self._entity_lines(day, entity)
            data = ex.file_bytes(COLUMNS[entity], lines)
            name = names[entity]
            if name.endswith(".gz"):
                data = ex.gzip_bytes(data)
            files[name] = (data, len(lines))
            self.counts[entity] += len(lines)
            dirt_rows += [(date, name, line_no, key, cls, BY_NAME[cls].expected) for line_no, key, cls in records]
        ex.write_extract(self.out / date, date, files)
        self.outbox.forget(day)
        self.resends.pop(day, None)
        if dirt_rows:
            self._truth_files["dirt"].write(pd.DataFrame(dirt_rows, columns=self._truth_files["dirt"].columns))
            self.counts["dirty_rows"] += sum(1 for r in dirt_rows if r[4] != RESEND.name)
            self.counts["resent_rows"] += sum(1 for r in dirt_rows if r[4] == RESEND.name)

    def _entity_lines(self, day: int, entity: str) -> tuple[list[str], list[tuple[int, str, str]]]:
        """The file's data lines in final order and its dirt log (line number, key, class)."""
        raw = self.outbox.take(day, entity)
        raw = ex.sort_rows(raw, ex.SORT_KEYS[entity]) if raw is not None else None
        text = self._text(entity, raw)
        lines = ex.join_lines(text)
        n = len(lines)
        key_col = COLUMNS[entity][0]
        rows, classes = self.dirt.pick_rows(entity, n)
        edited: list[tuple[int, str]] = []
        dup_sources = []
        context = self._context(entity, raw, day) if len(rows) else None
        for i, cls in zip(rows.tolist(), classes, strict=True):
            if cls == "duplicate_key_in_file":
                dup_sources.append(i)
                continue
            row = {c: str(text[c][i]) for c in COLUMNS[entity]}
            lines[i], applied = self.dirt.apply(cls, row, context(i))
            edited.append((i, applied))
        self._schedule_resends(day, entity, lines, set(rows.tolist()))
        incoming = self.resends.get(day, {}).get(entity, [])
        return self._assemble(lines, text[key_col], edited, dup_sources, incoming)

    def _text(self, entity: str, raw: pd.DataFrame | None) -> dict[str, np.ndarray]:
        if raw is None or len(raw) == 0:
            return {c: np.array([], dtype=str) for c in COLUMNS[entity]}
        if entity == "complaints":
            return ex.complaint_text(raw, self.world)
        if entity == "transactions":
            return ex.txn_text(raw, self.book.mules)
        return ex.withdrawal_text(raw, self.world)

    def _context(self, entity: str, raw: pd.DataFrame, day: int):
        """Builds, once per file, the function giving a dirty row what dirt classes need."""
        day_end = day_start_utc(day) + DAY_S - 1
        style = raw["style"].to_numpy() if raw is not None else None
        if entity == "complaints":
            when, lat, lon = raw["reported"].to_numpy(), raw["vlat"].to_numpy(), raw["vlon"].to_numpy()
        elif entity == "transactions":
            when = raw["at"].to_numpy()
            lat = lon = np.full(len(raw), np.nan)
        else:
            term = raw["terminal"].to_numpy()
            when = raw["at"].to_numpy()
            lat = self.world.t["lat"][term] + raw["dlat"].to_numpy()
            lon = self.world.t["lon"][term] + raw["dlon"].to_numpy()

        def context(i: int) -> RowContext:
            return RowContext(entity, day_end, int(style[i]), int(when[i]), float(lat[i]), float(lon[i]))

        return context

    def _schedule_resends(self, day: int, entity: str, lines: list[str], dirty: set[int]) -> None:
        """A few clean rows of today come again, verbatim, in a later extract (a re-send)."""
        k = self.dirt.resend_count(len(lines))
        if k == 0:
            return
        rng = self.rng["dirt"]
        clean = np.array([i for i in range(len(lines)) if i not in dirty]) if dirty else np.arange(len(lines))
        for i in np.sort(rng.choice(clean, size=min(k, len(clean)), replace=False)).tolist():
            target = day + int(rng.integers(1, RESEND_MAX_DAYS + 1))
            if target <= self.last:
                self.resends[target][entity].append(lines[i])

    def _assemble(self, lines, keys, edited, dup_sources, incoming):
        """Place duplicate copies after their original and re-sends anywhere; number the lines."""
        rng = self.rng["dirt"]
        n = len(lines)
        pos = list(range(n))
        tie = [0] * n
        payload = list(lines)
        kinds: list[tuple[str, str] | None] = [None] * n
        for i, cls in edited:
            kinds[i] = (str(keys[i]), cls)
        for i in dup_sources:
            pos.append(int(rng.integers(i, n)))
            tie.append(1)
            payload.append(lines[i])
            kinds.append((str(keys[i]), "duplicate_key_in_file"))
        for line in incoming:
            pos.append(int(rng.integers(0, n)) if n else 0)
            tie.append(2)
            payload.append(line)
            kinds.append((line.split(",", 1)[0], RESEND.name))
        order = np.lexsort((np.arange(len(pos)), np.array(tie), np.array(pos))) if pos else np.zeros(0, int)
        final = [payload[j] for j in order.tolist()]
        records = [(line_no + 2, kinds[j][0], kinds[j][1]) for line_no, j in enumerate(order.tolist())
                   if kinds[j] is not None]
        return final, records

    # ---------------------------------------------------------------- reporting
    def _report_progress(self, day: int, t0: float) -> None:
        k = day - self.first + 1
        if self.progress and (k % 10 == 0 or day == self.last):
            per_day = (time.perf_counter() - t0) / (k + self.warmup)
            print(f"simulate: {to_date(day)} ({k}/{self.last - self.first + 1} extract dates) "
                  f"complaints={self.counts['complaints']} transactions={self.counts['transactions']} "
                  f"withdrawals={self.counts['withdrawals']} {per_day:.2f}s/day", file=sys.stderr)

    def _summary(self) -> dict:
        return {
            "extract_dates": self.last - self.first + 1,
            "complaints": self.counts["complaints"],
            "transactions": self.counts["transactions"],
            "withdrawals": self.counts["withdrawals"],
            "dirty_rows": self.counts["dirty_rows"],
            "resent_rows": self.counts["resent_rows"],
            "withdrawals_realised": self.counts["withdrawals_realised"],
            "withdrawals_reported": self.counts["withdrawals_reported"],
            "expected_withdrawals": round(self.counts["expected_withdrawals"], 1),
            "rings": len(self.book.rings),
            "seconds": self.counts["seconds"],
            **{f"ring_{k}": v for k, v in sorted(self.book.event_counts.items())},
            "variant": self.scenario.name,
            **({"withdrawals_coordless": self.counts["withdrawals_coordless"]} if self.scenario.coordless_share else {}),
            **({"forwards": self.counts["forwards"]} if self.scenario.forwards else {}),
        }
