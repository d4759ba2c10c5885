"""The command table agrees with itself: the grammar, the handlers and `/incident help` name the same
commands. Adding a command in one place only fails here, not in front of a responder."""

from __future__ import annotations

import re

from handlers import registry, table
from handlers.app import TABLE
from handlers.parse import _PARSERS, USAGE, parse


def test_every_usage_line_has_a_handler() -> None:
    words = set(re.findall(r"/incident (\w[\w-]*)", USAGE))
    assert words
    served = {row.word for row in TABLE.values()}
    assert words <= served, f"in /incident help but not served: {sorted(words - served)}"


def test_every_handler_has_a_row_and_a_usage_line() -> None:
    missing_row = set(registry.COMMANDS) - set(TABLE)
    assert not missing_row, f"handlers no word reaches: {sorted(missing_row)}"
    no_usage = sorted(name for name, row in TABLE.items() if not row.usage)
    assert not no_usage, f"commands missing from /incident help: {no_usage}"


def test_every_word_of_the_grammar_is_in_the_table() -> None:
    assert set(_PARSERS) == set(table.WORDS), "handlers/parse.py and handlers/table.py WORDS disagree"


def test_each_row_parses_into_its_own_name() -> None:
    samples = {
        "declare": "declare P1 Factory down",
        "declare_modal": "declare",
        "status": "status MONITORING",
        "severity": "severity P2",
        "commander": "commander <@U123>",
        "comms": "comms <@U123>",
        "note": "note hello",
        "action_add": 'action add "fix it" <@U123> 2026-12-24',
        "action_done": "action done 1",
        "stats": "stats 7d",
        "playbook": "playbook",
        "drill": "drill fail",
        "dr_status": "dr status",
        "dr_signoff": "dr signoff ops",
    }
    for name, row in TABLE.items():
        text = samples.get(name, row.word)
        assert parse(text).name == name, (name, text)
        assert row.parse is _PARSERS[row.word]


def test_help_is_the_usage_column_and_is_instant() -> None:
    assert table.help_text(TABLE) == USAGE
    assert TABLE["help"].instant and not TABLE["declare"].instant
    assert TABLE["resolve"].permission is table.Permission.MEMBER
