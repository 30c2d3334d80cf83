"""`json.dumps(value, indent=2)`, byte for byte, several times faster.

With an indent, the standard library encodes in pure Python (its C encoder
serves only the compact form), and a manifest list's bytes are its digest:
a rule's dry run renders a thousand lists, so the indented text is built
here from the same C string encoder, with the same separators (", " never,
"," at line ends, ": " after keys), the same empty `{}` and `[]`, and the
same ASCII escaping. Anything outside JSON's plain types (a float, a key
that is not a string, a custom object) goes to `json.dumps` itself, so the
result is always what `json.dumps(value, indent=2)` gives
(tests/registry/test_jsontext.py compares them over generated values).
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii as _string  # the C function when available

_INDENT = "  "


class _Unplain(Exception):
    """The value holds something this renderer leaves to json.dumps."""


def _render(value: object, newline: str, parts: list[str]) -> None:
    kind = type(value)
    if kind is str:
        parts.append(_string(value))
    elif kind is dict:
        if not value:
            parts.append("{}")
            return
        inner = newline + _INDENT
        separator = "{" + inner
        for key, item in value.items():
            if type(key) is not str:
                raise _Unplain
            kind = type(item)
            if kind is str:
                parts.append(f"{separator}{_string(key)}: {_string(item)}")
            elif kind is int:
                parts.append(f"{separator}{_string(key)}: {int.__repr__(item)}")
            else:
                parts.append(f"{separator}{_string(key)}: ")
                _render(item, inner, parts)
            separator = "," + inner
        parts.append(newline + "}")
    elif kind is list or kind is tuple:
        if not value:
            parts.append("[]")
            return
        inner = newline + _INDENT
        separator = "[" + inner
        for item in value:
            parts.append(separator)
            _render(item, inner, parts)
            separator = "," + inner
        parts.append(newline + "]")
    elif kind is int:
        parts.append(int.__repr__(value))
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif value is None:
        parts.append("null")
    else:
        raise _Unplain


def json_indent(value: object) -> str:
    """Exactly `json.dumps(value, indent=2)`."""
    parts: list[str] = []
    try:
        _render(value, "\n", parts)
    except (_Unplain, RecursionError):
        return json.dumps(value, indent=2)
    return "".join(parts)
