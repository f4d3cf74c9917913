"""Recipients (alerts/recipients.yml) and rules (config/alerts.yml), validated on load.

A recipient is a jurisdiction (national, a state, a district of a state, or a bank by the
4-letter IFSC prefix of its mule accounts' receiving branches) with a language (en, hi)
and channels: Apprise URLs with tags saying which kinds of message go there (alert,
escalation, digest). Secrets come from the environment as ``${VAR}`` (``${VAR:-default}``
for values that are not secret); the file never holds them, and the outbox stores the
channel's name, never its URL. A bad entry fails the whole load with a message naming the
entry and its line: :class:`ConfigError`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hotspots import settings

RECIPIENTS_FILE = settings.ROOT / "alerts" / "recipients.yml"
RULES_FILE = settings.CONFIG_DIR / "alerts.yml"
TEMPLATES_DIR = settings.ROOT / "alerts" / "templates"

LEVELS = ("national", "state", "district", "bank")
LANGUAGES = ("en", "hi")
KINDS = ("alert", "escalation", "digest")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,62}$")
_BANK = re.compile(r"^[A-Z]{4}$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SMS = {"msg91", "twilio", "sns", "clicksend", "bulksms", "bulkvs", "d7sms", "kavenegar", "messagebird",
        "plivo", "sinch", "smseagle", "smsmgr", "textbelt", "vonage", "nexmo", "signal", "seven"}
_WEBHOOK = {"json", "jsons", "form", "forms", "xml", "xmls"}
_EMAIL = {"mailto", "mailtos", "email"}


class ConfigError(ValueError):
    """A configuration entry is wrong; the message names the file, entry and line."""


@dataclass(frozen=True)
class Channel:
    name: str
    url: str          # with the environment substituted: never stored, never logged
    kind: str         # email | sms | webhook | chat
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Recipient:
    name: str
    level: str
    state: str | None
    district: str | None
    bank: str | None
    language: str
    channels: tuple[Channel, ...]
    line: int = 0

    def channels_for(self, kind: str) -> list[Channel]:
        return [c for c in self.channels if kind in c.tags]


@dataclass(frozen=True)
class Recipients:
    recipients: tuple[Recipient, ...]
    engineers: tuple[Recipient, ...]
    path: Path = RECIPIENTS_FILE

    def by_name(self, name: str) -> Recipient | None:
        for r in self.recipients + self.engineers:
            if r.name == name:
                return r
        return None


@dataclass
class Rules:
    tiers: list[dict]
    overrides: dict
    levels: dict
    horizons: list[int]
    escalation_hours: dict
    repeat_after_days: int
    ack_quiet_days: int
    daily_cap: int
    delivery: dict
    silences: list[dict]
    superset_base_url: str
    money_trail_days: int = 90
    raw: dict = field(default_factory=dict)

    @property
    def tier_names(self) -> list[str]:
        return [t["name"] for t in self.tiers]

    def tier_order(self, tier: str) -> int:
        """0 for the highest tier; larger is lower."""
        names = self.tier_names
        return names.index(tier) if tier in names else len(names)


def channel_kind(url: str) -> str:
    scheme = url.split("://", 1)[0].lower()
    if scheme in _EMAIL:
        return "email"
    if scheme in _SMS:
        return "sms"
    if scheme in _WEBHOOK:
        return "webhook"
    return "chat"


def substitute(text: str, where: str, environ=None) -> str:
    """``${VAR}`` from the environment (missing: ConfigError), ``${VAR:-default}`` with a default."""
    env = os.environ if environ is None else environ

    def one(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: secret ${{{name}}} is not set in the environment")

    return _VAR.sub(one, text)


class _LineLoader(yaml.SafeLoader):
    """Keeps each mapping's line (1-based) under the key ``__line__``."""


def _construct_mapping(loader, node, deep=False):
    mapping = loader.construct_mapping(node, deep=deep)
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _places(warehouse: str | None) -> tuple[set[str], set[tuple[str, str]]] | None:
    """States and (state, district) pairs known to the warehouse (ref.post_offices), or None
    when no warehouse is reachable or it has no gazetteer yet."""
    from hotspots import db

    try:
        conn = db.connect(warehouse)
    except Exception:  # noqa: BLE001 - validation against the warehouse is skipped, said by the caller
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("select to_regclass('ref.post_offices') is not null")
            if not cur.fetchone()[0]:
                return None
            cur.execute("select distinct state, district from ref.post_offices")
            pairs = {(s, d) for s, d in cur.fetchall()}
    finally:
        conn.close()
    if not pairs:
        return None
    return {s for s, _ in pairs}, pairs


def _parse_channels(entry: dict, where: str, environ, default_tags: tuple[str, ...]) -> tuple[Channel, ...]:
    import apprise

    raw = entry.get("channels")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}: needs a list of channels (Apprise URLs)")
    out, names = [], set()
    for i, ch in enumerate(raw, 1):
        if isinstance(ch, str):
            ch = {"url": ch}
        if not isinstance(ch, dict) or not isinstance(ch.get("url"), str):
            raise ConfigError(f"{where}: channel {i} needs a url")
        line = ch.get("__line__", entry.get("__line__"))
        cwhere = f"{where.rsplit(' (line', 1)[0]} channel {ch.get('name', i)!s} (line {line})"
        url = substitute(ch["url"], cwhere, environ)
        if apprise.Apprise.instantiate(url, suppress_exceptions=True) is None:
            raise ConfigError(f"{cwhere}: not a valid Apprise URL: {_redact(ch['url'])}")
        kind = channel_kind(url)
        name = str(ch.get("name") or kind)
        if name in names:
            raise ConfigError(f"{cwhere}: two channels named {name!r}")
        names.add(name)
        tags = ch.get("tags", list(default_tags))
        if not isinstance(tags, list) or any(t not in (*KINDS, "failure") for t in tags):
            raise ConfigError(f"{cwhere}: tags must be a list of {', '.join(KINDS)} (or failure), got {tags!r}")
        out.append(Channel(name=name, url=url, kind=kind, tags=tuple(tags)))
    return tuple(out)


def _redact(url: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", url)


def load_recipients(path: Path | str | None = None, warehouse: str | None = None, environ=None,
                    check_places: bool = True) -> Recipients:
    """Parses and validates the recipients file. States and districts are checked against
    the warehouse's India Post directory (ref.post_offices) when it is reachable."""
    path = Path(path or os.environ.get("HOTSPOTS_ALERTS_RECIPIENTS") or RECIPIENTS_FILE)
    try:
        data = yaml.load(path.read_text(), Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with `recipients` (and `engineers`)")
    places = _places(warehouse) if check_places else None
    seen: dict[str, int] = {}
    recipients, engineers = [], []
    for section in ("recipients", "engineers"):
        entries = data.get(section) or []
        if not isinstance(entries, list):
            raise ConfigError(f"{path}: `{section}` must be a list")
        for i, e in enumerate(entries, 1):
            if not isinstance(e, dict):
                raise ConfigError(f"{path}: {section} entry {i} is not a mapping")
            line = e.get("__line__", 0)
            name = e.get("name")
            where = f"{path.name}: {section} entry {name or i!s} (line {line})"
            if not isinstance(name, str) or not _NAME.match(name):
                raise ConfigError(f"{where}: name must be lower-case letters, digits, '.', '_' or '-'")
            if name in seen:
                raise ConfigError(f"{where}: name already used by the entry on line {seen[name]}")
            seen[name] = line
            language = e.get("language", "en")
            if language not in LANGUAGES:
                raise ConfigError(f"{where}: language must be one of {', '.join(LANGUAGES)}, got {language!r}")
            if section == "engineers":
                channels = _parse_channels(e, where, environ, ("failure",))
                engineers.append(Recipient(name, "engineers", None, None, None, language, channels, line))
                continue
            j = e.get("jurisdiction")
            if not isinstance(j, dict):
                raise ConfigError(f"{where}: needs a jurisdiction (level: national|state|district|bank)")
            level = j.get("level")
            if level not in LEVELS:
                raise ConfigError(f"{where}: jurisdiction level must be one of {', '.join(LEVELS)}, got {level!r}")
            state, district, bank = j.get("state"), j.get("district"), j.get("bank")
            if level in ("state", "district") and not state:
                raise ConfigError(f"{where}: a {level} jurisdiction needs a state")
            if level == "district" and not district:
                raise ConfigError(f"{where}: a district jurisdiction needs a district")
            if level == "bank" and (not isinstance(bank, str) or not _BANK.match(bank)):
                raise ConfigError(f"{where}: a bank jurisdiction needs bank: the 4-letter IFSC prefix, got {bank!r}")
            if places is not None:
                states, pairs = places
                if state and state not in states:
                    raise ConfigError(f"{where}: unknown state {state!r} (not in ref.post_offices)")
                if district and (state, district) not in pairs:
                    raise ConfigError(f"{where}: unknown district {district!r} of {state!r} (not in ref.post_offices)")
            channels = _parse_channels(e, where, environ, KINDS)
            recipients.append(Recipient(name, level, state if level in ("state", "district") else None,
                                        district if level == "district" else None,
                                        bank if level == "bank" else None, language, channels, line))
    return Recipients(tuple(recipients), tuple(engineers), path)


def load_rules(path: Path | str | None = None, environ=None) -> Rules:
    path = Path(path or os.environ.get("HOTSPOTS_ALERTS_RULES") or RULES_FILE)
    data = yaml.safe_load(path.read_text()) or {}
    tiers = data.get("tiers") or []
    if not tiers or any("name" not in t for t in tiers):
        raise ConfigError(f"{path}: `tiers` must list tiers with a name")
    names = [t["name"] for t in tiers]
    levels = data.get("levels") or {}
    for level, spec in levels.items():
        if level not in LEVELS:
            raise ConfigError(f"{path}: levels: unknown level {level!r}")
        for key in ("alert", "digest"):
            bad = [t for t in spec.get(key, []) if t not in names]
            if bad:
                raise ConfigError(f"{path}: levels.{level}.{key}: unknown tier(s) {bad}")
    trail_days = data.get("money_trail_days", Rules.money_trail_days)
    if isinstance(trail_days, bool) or not isinstance(trail_days, int) or trail_days < 1:
        raise ConfigError(f"{path}: money_trail_days must be a whole number of days, at least 1 "
                          f"(got {trail_days!r})")
    base = substitute(str(data.get("superset_base_url", "${SUPERSET_BASE_URL:-http://127.0.0.1:8088}")),
                      f"{path}: superset_base_url", environ)
    return Rules(tiers=tiers, overrides=data.get("overrides") or {}, levels=levels,
                 horizons=[int(h) for h in data.get("horizons", [1, 7])],
                 escalation_hours=dict((data.get("escalation") or {}).get("after_hours") or {}),
                 repeat_after_days=int(data.get("repeat_after_days", 7)),
                 ack_quiet_days=int(data.get("ack_quiet_days", 7)), daily_cap=int(data.get("daily_cap", 25)),
                 delivery=dict(data.get("delivery") or {}), silences=list(data.get("silences") or []),
                 superset_base_url=base.rstrip("/"), money_trail_days=trail_days, raw=data)
