"""Control characters: the one definition every validator and sanitizer of text uses.

Control characters (C0, DEL, C1) have no business in a name, an address, an order id, a key
label, a note or a carrier's scan text. Tab and line breaks are allowed only where text may
span lines (an operator's note, a claim's description, a carrier's description). Standard
library only: the authorizer's path uses it.
"""

from __future__ import annotations

import re

# C0 except tab, line feed and carriage return; DEL; C1.
_CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_LINE_BREAKS = "\t\n\r"
CONTROL_CHARACTERS = re.compile(f"[{_CONTROL}]")
CONTROL_OR_LINE_BREAKS = re.compile(f"[{_CONTROL}{_LINE_BREAKS}]")


def has_control_characters(text: str, *, multiline: bool = False) -> bool:
    """Whether ``text`` holds a control character (tab and line breaks count unless ``multiline``)."""
    return (CONTROL_CHARACTERS if multiline else CONTROL_OR_LINE_BREAKS).search(text) is not None


def checked_text(value: str, *, multiline: bool = False) -> str:
    """``value`` stripped; ``ValueError`` when it holds control characters or is blank (a
    pydantic ``AfterValidator``)."""
    if has_control_characters(value, multiline=multiline):
        raise ValueError("contains control characters")
    stripped = value.strip()
    if not stripped:
        raise ValueError("is blank")
    return stripped


def without_control_characters(text: str) -> str:
    """Untrusted text with control characters removed (tab and line breaks kept)."""
    return CONTROL_CHARACTERS.sub("", text)
