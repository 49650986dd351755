"""How to install an optional extra (the project is installed from a checkout or a git URL, not PyPI)."""

from __future__ import annotations


def install_hint(extra: str) -> str:
    """`pip install '.[sim]'` in a checkout (the one way that works everywhere; see README, Install)."""
    return f"pip install '.[{extra}]' in a vla-async checkout (README: Install)"
