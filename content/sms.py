"""SMS length: GSM-7 or UCS-2, and how many segments a text takes."""

from __future__ import annotations

# The GSM 03.38 basic set, and the extension set whose characters count twice.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")


def encoding(text: str) -> str:
    """`GSM-7` when every character is in the GSM alphabet, else `UCS-2` (all Chinese text)."""
    return "GSM-7" if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in text) else "UCS-2"


def segments(text: str) -> int:
    """Segments the text is billed as: GSM-7 160 (153 per part), UCS-2 70 (67 per part)."""
    if encoding(text) == "GSM-7":
        units = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        single, part = 160, 153
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)  # UTF-16 code units
        single, part = 70, 67
    if units <= single:
        return 1
    return -(-units // part)
