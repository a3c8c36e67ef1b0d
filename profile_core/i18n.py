"""The one message catalogue (中文 default, English).

Messages live in ``profile_core/messages/*.toml``, one file per area, each key a table with ``zh`` and
``en`` strings using ``str.format`` placeholders::

    [ingest.missing_column]
    zh = "文件 {file} 缺少必需列 {column}。"
    en = "File {file} lacks the required column {column}."

Keys are unique across files (checked at load).
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
_DIR = Path(__file__).with_name("messages")


def _flatten(prefix: str, table: dict, out: dict[str, dict[str, str]], source: str) -> None:
    if set(table) & set(LANGS) and all(isinstance(v, str) for v in table.values()):
        if prefix in out:
            raise ValueError(f"message key {prefix!r} defined twice (again in {source})")
        out[prefix] = table
        return
    for k, v in table.items():
        _flatten(f"{prefix}.{k}" if prefix else k, v, out, source)


@cache
def catalogue() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for path in sorted(_DIR.glob("*.toml")):
        _flatten("", tomllib.loads(path.read_text(encoding="utf-8")), out, path.name)
    return out


def t(key: str, lang: str = DEFAULT_LANG, /, **values) -> str:
    """Message ``key`` in ``lang`` with ``values`` filled in; falls back to zh, then to the key itself."""
    entry = catalogue().get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry.get(DEFAULT_LANG) or key
    return text.format(**values) if values else text


def has(key: str) -> bool:
    return key in catalogue()


class MessageError(ValueError):
    """An error for a person: one sentence from the catalogue, ``key`` + ``values``.

    ``str(err)`` is the English text (logs, tests); ``err.message(lang)`` gives it in the UI's language.
    Each module subclasses it (``FeatureError``, ``MappingError`` …) so callers can catch what they expect.
    """

    def __init__(self, key: str, **values: object) -> None:
        self.key, self.values = key, values
        super().__init__(t(key, "en", **values))

    def message(self, lang: str = DEFAULT_LANG) -> str:
        return t(self.key, lang, **self.values)
