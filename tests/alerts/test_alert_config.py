"""Recipients and rules are validated on load; a bad entry is named with its line."""

from __future__ import annotations

import textwrap

import pytest

from hotspots.alerts import config
from hotspots.alerts.config import ConfigError

GOOD = """\
recipients:
  - name: ncc
    jurisdiction: {level: national}
    channels:
      - name: email
        url: mailto://127.0.0.1:2525?from=a@localhost&to=b@localhost
  - name: pune
    jurisdiction: {level: district, state: MAHARASHTRA, district: PUNE}
    language: hi
    channels:
      - name: hook
        url: json://127.0.0.1:8099/pune
        tags: [alert, escalation]
      - name: sms
        url: msg91://${MSG91_TEMPLATE}@${MSG91_KEY}/919800000000
        tags: [alert]
engineers:
  - name: data-eng
    channels:
      - url: json://127.0.0.1:8099/eng
"""


def load(tmp_path, text, environ=None):
    p = tmp_path / "recipients.yml"
    p.write_text(textwrap.dedent(text))
    return config.load_recipients(p, environ=environ or {}, check_places=False)


def test_good_file_loads_with_secrets_from_the_environment(tmp_path):
    env = {"MSG91_TEMPLATE": "tpl123", "MSG91_KEY": "k" * 24}
    r = load(tmp_path, GOOD, env)
    assert [x.name for x in r.recipients] == ["ncc", "pune"]
    pune = r.by_name("pune")
    assert (pune.level, pune.state, pune.district, pune.language) == ("district", "MAHARASHTRA", "PUNE", "hi")
    assert [c.kind for c in pune.channels] == ["webhook", "sms"]
    assert [c.name for c in pune.channels_for("digest")] == []
    assert [c.name for c in pune.channels_for("alert")] == ["hook", "sms"]
    assert "k" * 24 in pune.channels[1].url  # substituted, never written in the file
    assert r.engineers[0].channels[0].tags == ("failure",)


@pytest.mark.parametrize("bad, entry, words", [
    (GOOD.replace("level: national", "level: galaxy"), "ncc", "jurisdiction level"),
    (GOOD.replace("language: hi", "language: fr"), "pune", "language"),
    (GOOD.replace("url: json://127.0.0.1:8099/pune", "url: nosuchscheme://x"), "pune", "not a valid Apprise URL"),
    (GOOD.replace("name: pune", "name: ncc"), "ncc", "already used"),
    (GOOD.replace(", district: PUNE", ""), "pune", "needs a district"),
    (GOOD.replace("tags: [alert]", "tags: [alarm]"), "pune", "tags"),
])
def test_bad_entry_is_named_with_its_line(tmp_path, bad, entry, words):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, bad, {"MSG91_TEMPLATE": "t", "MSG91_KEY": "k" * 24})
    msg = str(e.value)
    assert f"entry {entry}" in msg and "(line " in msg and words in msg, msg
    line = int(msg.split("(line ")[1].split(")")[0])
    assert line > 1


def test_missing_secret_names_the_variable_and_the_entry(tmp_path):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, GOOD, {"MSG91_TEMPLATE": "t"})
    msg = str(e.value)
    assert "MSG91_KEY" in msg and "entry pune" in msg and "channel sms" in msg
    # the line is the channel's own line in the file
    line = int(msg.split("(line ")[1].split(")")[0])
    assert GOOD.splitlines()[line - 1].strip() == "- name: sms"


def test_default_rule_and_recipient_files_load():
    rules = config.load_rules()
    assert rules.tier_names[0] == "critical" and rules.tier_order("watch") == 2
    assert rules.superset_base_url.startswith("http")
    r = config.load_recipients(check_places=False)
    assert {x.level for x in r.recipients} == {"national", "state", "district", "bank"}
    assert r.engineers


@pytest.mark.parametrize("days", [0, -5, "90", 2.5, True])
def test_money_trail_days_must_be_whole_days(tmp_path, days):
    rules = config.RULES_FILE.read_text().replace("money_trail_days: 90", f"money_trail_days: {days!r}")
    (tmp_path / "alerts.yml").write_text(rules)
    with pytest.raises(ConfigError, match="money_trail_days must be a whole number of days"):
        config.load_rules(tmp_path / "alerts.yml")
    (tmp_path / "alerts.yml").write_text(config.RULES_FILE.read_text())
    assert config.load_rules(tmp_path / "alerts.yml").money_trail_days == 90


def test_defaults_with_default_values_and_url_redaction():
    assert config.substitute("a${X:-b}c", "here", {}) == "abc"
    assert config.substitute("${X}", "here", {"X": "s3cret"}) == "s3cret"
    with pytest.raises(ConfigError, match="here: secret"):
        config.substitute("${X}", "here", {})
