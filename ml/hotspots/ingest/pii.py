"""Personal data and storable text: mobiles become keyed hashes, text becomes storable.

- `mobile_hash`: HMAC-SHA256 of the 10-digit national number with HOTSPOTS_PII_KEY.
- `normalise_mobile`: the 10-digit number in a typed victim_mobile value, whatever
  its writing (+91 / 0091 / 0 prefix, spaces, hyphens, brackets, dots, other scripts'
  digits), or None.
- `scrub_mobiles`: free text with every mobile-looking number, in any of those
  writings, replaced by `<mobile:HASH12>`.
- `storable`: text PostgreSQL can store (no NUL, no lone surrogates): such
  characters are shown as visible `\\xNN` escapes.
- `safe_text` = both; everything the ingest writes or logs from a delivery goes
  through it (quarantined raw text, details, rejection reasons, error messages).
"""

from __future__ import annotations

import hmac
import re
import unicodedata
from functools import lru_cache

try:  # OpenSSL's HMAC object, whose copy keeps the key's prepared state
    from _hashlib import hmac_new as _hmac_new
except ImportError:  # a Python without OpenSSL's hashlib
    _hmac_new = None


@lru_cache(maxsize=8)
def _keyed(key: bytes):
    """HMAC-SHA256 with the key and no message yet: each hash copies it instead of deriving
    the key's inner and outer pads again (half the time of hmac.digest per mobile)."""
    return _hmac_new(key, digestmod="sha256") if _hmac_new else hmac.new(key, digestmod="sha256")


def mobile_hash(mobile10: str, key: bytes) -> str:
    h = _keyed(bytes(key)).copy()
    h.update(mobile10.encode())
    return h.hexdigest()[:32]


def _ascii_digits(text: str) -> str:
    """Decimal digits of any script as ASCII digits; everything else dropped."""
    return "".join(str(unicodedata.decimal(ch)) for ch in text if unicodedata.decimal(ch, None) is not None)


def normalise_mobile(value: str | None) -> str | None:
    """The 10-digit mobile number in a typed value, or None when it is not one."""
    if value is None:
        return None
    digits = _ascii_digits(value)
    for prefix in ("0091", "910", "91", "0"):
        if len(digits) == 10 + len(prefix) and digits.startswith(prefix):
            digits = digits[len(prefix):]
            break
    return digits if re.fullmatch(r"[6-9][0-9]{9}", digits) else None


@lru_cache(maxsize=4)
def _mobile_pattern(keep_tokens: bool = False, ascii_text: bool = False) -> re.Pattern:
    """The mobile pattern. ascii_text: the same pattern for text that is all ASCII, its digit
    classes holding only the ASCII digits (a class's other members cannot occur in such text),
    which the regex engine tests about seven times faster than the classes of every script."""
    # Unicode Nd, any script (all below U+20000)
    every_digit = [c for c in map(chr, range(0x80 if ascii_text else 0x20000)) if c.isdecimal()]

    def digit_class(values: set[int]) -> str:
        return "[" + "".join(re.escape(c) for c in every_digit if unicodedata.decimal(c, None) in values) + "]"

    d, d0, d1, d9, d69 = (digit_class(v) for v in (set(range(10)), {0}, {1}, {9}, {6, 7, 8, 9}))
    # Between digits: up to three of space, hyphen or dash, dot, brackets, slash ("98765 - 01235"),
    # and, since hostile bytes must not hide a number, control characters (NUL) and quotes.
    sep = r"[\s\x00-\x1f\x7f\"'\-\u2010-\u2015\u2212.()\[\]/]{0,3}"
    prefix = (rf"(?:(?:\+|{d0}{d0})?{sep}{d9}{d1}{sep})?"   # +91, 0091, 91, (+91)
              rf"(?:\(?{d0}\)?{sep})?")                       # 0, (0)
    core = rf"{d69}(?:{sep}{d}){{9}}"
    token = r"(?P<token><mobile:[0-9a-f]{12}>)|" if keep_tokens else ""
    return re.compile(rf"{token}(?<!{d}){prefix}(?P<core>{core})(?!{d})")


# Ten decimal digits (Unicode Nd, as the pattern's digit classes), whatever lies between them.
_TEN_DIGITS = re.compile(r"\d(?:\D*\d){9}")


def scrub_mobiles(text: str, key: bytes, keep_tokens: bool = False) -> str:
    """Text with every mobile-looking number (any common writing) replaced by its keyed hash,
    `<mobile:HASH12>`. keep_tokens: leave such tokens alone (a second pass over scrubbed text,
    where a hash's hex digits could otherwise read as a number)."""
    if _TEN_DIGITS.search(text) is None:  # no mobile without ten digits: most text, skipped quickly
        return text

    def sub(m: re.Match) -> str:
        if m.group("core") is None:
            return m.group(0)
        return f"<mobile:{mobile_hash(_ascii_digits(m.group('core')), key)[:12]}>"

    return _mobile_pattern(keep_tokens, text.isascii()).sub(sub, text)


UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def unstorable(text: str) -> bool:
    """True when PostgreSQL (UTF8) cannot store the text: a NUL, or a lone surrogate
    (Python's stand-in for a byte that is not UTF-8)."""
    return UNSTORABLE.search(text) is not None


def storable(text: str) -> str:
    """Text with NULs and undecodable bytes shown as visible \\xNN escapes."""
    if not UNSTORABLE.search(text):
        return text

    def esc(m: re.Match) -> str:
        c = ord(m.group())
        return f"\\x{c - 0xDC00:02x}" if 0xDC80 <= c <= 0xDCFF else f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"

    return UNSTORABLE.sub(esc, text)


def safe_text(text: object, key: bytes) -> str:
    """Storable text with every mobile replaced by its hash: for anything written or logged.
    Mobiles are scrubbed before the escapes (a NUL next to a number must not hide it) and
    again after them (an escape such as \\x98 next to digits must not form one)."""
    return scrub_mobiles(storable(scrub_mobiles(str(text), key)), key, keep_tokens=True)


def safe_json(value: object, key: bytes) -> object:
    """A JSON-able value with every string (keys included) passed through safe_text."""
    if isinstance(value, str):
        return safe_text(value, key)
    if isinstance(value, dict):
        return {safe_text(str(k), key): safe_json(v, key) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe_json(v, key) for v in value]
    return value
