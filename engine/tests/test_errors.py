"""The engine's codes are the ones its catalogue lists (the gateway's test checks that list against
packages/server/src/errors.ts): every EngineError/ProtocolError raised and every fatal sent uses one."""

import re
import typing
from pathlib import Path

from kontext_engine.errors import ErrorCode, FatalCode

SOURCE = Path(__file__).resolve().parent.parent / "kontext_engine"


def codes_used(pattern: str) -> set[str]:
    return {m for f in SOURCE.glob("*.py") for m in re.findall(pattern, f.read_text(encoding="utf-8"))}


def test_every_error_raised_has_a_catalogue_code() -> None:
    used = codes_used(r'(?:EngineError|ProtocolError)\(\s*"(\w+)"')
    assert used, "no EngineError found: the pattern no longer matches the source"
    assert used <= set(typing.get_args(ErrorCode)), used - set(typing.get_args(ErrorCode))


def test_every_fatal_sent_has_a_catalogue_code() -> None:
    used = codes_used(r'\bfatal\(\s*"(\w+)"')
    assert used == set(typing.get_args(FatalCode))
