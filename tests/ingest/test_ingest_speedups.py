"""What the ingest's shortcuts rely on: a text with fewer than ten decimal digits holds no
mobile the full pattern finds (pii.scrub_mobiles skips it), ASCII text is scrubbed by the
ASCII digits' pattern exactly as by every script's, and a delivery pauses the garbage collector
only while it loads, whatever happens."""

from __future__ import annotations

import gc

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from hotspots.ingest import load, pii
from tests.ingest.hostile import examples

# Digits of several scripts, the separators the pattern allows between them, and other text.
ALPHABET = st.sampled_from(list("0123456789६९७८०१+-. ()[]/'\"\t\x00abc") + ["\u2013", "\u00a0", "\u0967"])


@hsettings(max_examples=examples(300))
@given(text=st.text(ALPHABET, max_size=40), keep_tokens=st.booleans())
def test_fewer_than_ten_digits_hold_no_mobile(text, keep_tokens):
    if sum(ch.isdecimal() for ch in text) >= 10:
        assert pii._TEN_DIGITS.search(text) is not None
        return
    assert pii._TEN_DIGITS.search(text) is None
    assert all(m.group("core") is None for m in pii._mobile_pattern(keep_tokens).finditer(text))
    assert pii.scrub_mobiles(text, b"k" * 32, keep_tokens) == text


ASCII = st.sampled_from(list("0123456789+-. ()[]/'\"\t\x00\x1f,:Tabc<>mobile"))


@hsettings(max_examples=examples(500))
@given(text=st.text(ASCII, max_size=60), keep_tokens=st.booleans())
def test_ascii_text_matches_as_with_every_scripts_digits(text, keep_tokens):
    full = [(m.span(), m.groupdict()) for m in pii._mobile_pattern(keep_tokens).finditer(text)]
    assert [(m.span(), m.groupdict()) for m in pii._mobile_pattern(keep_tokens, True).finditer(text)] == full


@pytest.mark.parametrize("text", ["+91 98765-43210,2025-12-04T02:00:09+05:30,7777335607",
                                  "(0)98765 43210 and <mobile:0123456789ab> 919876543210"])
def test_scrubbing_ascii_text_gives_what_every_scripts_pattern_gives(text):
    key = b"k" * 32
    full = pii._mobile_pattern(False).sub(lambda m: f"<mobile:{pii.mobile_hash(pii._ascii_digits(m.group('core')), key)[:12]}>",
                                          text)
    assert pii.scrub_mobiles(text, key) == full
    assert "98765" not in pii.scrub_mobiles(text, key)


@pytest.mark.parametrize("enabled", [True, False])
def test_gc_is_paused_only_while_a_delivery_loads(enabled):
    seen = []
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(RuntimeError), load._gc_paused():
            seen.append(gc.isenabled())
            raise RuntimeError("a delivery that fails")
        assert seen == [False]
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("key", [b"k" * 32, b"", bytes(range(200))])
def test_mobile_hash_is_the_keyed_hmac_whatever_the_key(key):
    """mobile_hash copies a prepared HMAC per key: the same as HMAC-SHA256 of the number, for a
    short key, an empty one and one longer than SHA-256's block (hashed first), one after another."""
    import hashlib
    import hmac

    for mobile in ("9876543210", "6000000000", "9876543210"):
        assert pii.mobile_hash(mobile, key) == hmac.new(key, mobile.encode(), hashlib.sha256).hexdigest()[:32]
