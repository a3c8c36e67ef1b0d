"""The library stays UI-free and the message catalogue stays whole."""

import subprocess
import sys
from pathlib import Path

import pytest

from profile_core import i18n

ROOT = Path(__file__).resolve().parents[1]
CORE_MODULES = sorted(
    p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
    for p in (ROOT / "profile_core").rglob("*.py")
    if p.name != "__main__.py"
)


def test_core_never_imports_streamlit():
    code = (
        "import importlib, sys\n"
        f"for m in {CORE_MODULES!r}:\n"
        "    importlib.import_module(m)\n"
        "assert 'streamlit' not in sys.modules, 'streamlit imported by profile_core'\n"
        "print(len(sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.parametrize("key", sorted(i18n.catalogue()))
def test_every_message_has_both_languages(key):
    entry = i18n.catalogue()[key]
    assert entry.get("zh") and entry.get("en"), key


def test_translate_fills_values_and_falls_back():
    assert i18n.t("app.title", "zh") == "客户全景画像"
    assert i18n.t("app.title", "en") == "Customer Panorama"
    assert i18n.t("no.such.key", "en") == "no.such.key"


def test_duplicate_keys_are_refused(tmp_path):
    out: dict = {}
    i18n._flatten("", {"a": {"zh": "一", "en": "one"}}, out, "x.toml")
    with pytest.raises(ValueError, match="defined twice"):
        i18n._flatten("", {"a": {"zh": "二", "en": "two"}}, out, "y.toml")
