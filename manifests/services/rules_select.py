"""Which tags a rule takes: a glob, a regular expression of a safe subset, or a semver range.

Tag names are at most 128 characters (the distribution grammar), and a rule's
pattern runs over every tag of its source repositories in the web process, so
a regular expression must have a small worst case: nested quantifiers,
quantified alternations, backreferences and lookarounds are refused, and the
product of the quantifiers' ranges is capped (two unbounded `*`/`+` at most).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass

try:  # Python 3.11+
    import re._constants as _sre_constants
    import re._parser as _sre_parse
except ImportError:  # pragma: no cover
    import sre_constants as _sre_constants  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]

PATTERN_MAX = 200
TAG_MAX = 128
# Worst-case backtracking steps per tag: 128 * 128 * 4, two unbounded repeats and a little more.
_REGEX_BUDGET = 128 * 128 * 4


class SelectionInvalid(ValueError):
    """The tag pattern cannot be used; the message says why, in the user's words."""


# -- regular expressions --------------------------------------------------------

_REPEATS = {_sre_constants.MAX_REPEAT, _sre_constants.MIN_REPEAT}
_POSSESSIVE = getattr(_sre_constants, "POSSESSIVE_REPEAT", None)
if _POSSESSIVE is not None:
    _REPEATS.add(_POSSESSIVE)
_REFUSED = {
    _sre_constants.GROUPREF: "backreferences are not allowed",
    _sre_constants.GROUPREF_EXISTS: "conditional groups are not allowed",
    _sre_constants.ASSERT: "lookahead and lookbehind are not allowed",
    _sre_constants.ASSERT_NOT: "lookahead and lookbehind are not allowed",
}


def _has(items, ops: set) -> bool:
    for op, av in items:
        if op in ops:
            return True
        for sub in _subpatterns(op, av):
            if _has(sub, ops):
                return True
    return False


def _subpatterns(op, av) -> list:
    if op in _REPEATS:
        return [av[2]]
    if op == _sre_constants.SUBPATTERN:
        return [av[-1]]
    if op == _sre_constants.BRANCH:
        return list(av[1])
    if op == getattr(_sre_constants, "ATOMIC_GROUP", object()):
        return [av]
    return []


def _cost(items) -> int:
    total = 1
    for op, av in items:
        if op in _REFUSED:
            raise SelectionInvalid(_REFUSED[op])
        if op in _REPEATS:
            low, high, sub = av
            if high > 1 and _has(sub, _REPEATS):
                raise SelectionInvalid("nested quantifiers such as (a+)* are not allowed")
            if high > 1 and _has(sub, {_sre_constants.BRANCH}):
                raise SelectionInvalid("a quantified alternation such as (a|b)* is not allowed: "
                                       "use a character class [ab]*")
            span = TAG_MAX if high == _sre_constants.MAXREPEAT else min(high, TAG_MAX)
            total *= (span + 1) * _cost(sub)
        elif op == _sre_constants.BRANCH:
            total *= sum(_cost(sub) for sub in av[1])
        else:
            for sub in _subpatterns(op, av):
                total *= _cost(sub)
        if total > _REGEX_BUDGET:
            raise SelectionInvalid("this expression could take too long on some tags: use at most two "
                                   "unbounded repeats (* or +), or a semver range for version tags")
    return total


def regex_compile(pattern: str) -> re.Pattern:
    """A user's expression, checked to run in bounded time on any tag; matched against the whole tag."""
    if not pattern:
        raise SelectionInvalid("give a regular expression")
    if len(pattern) > PATTERN_MAX:
        raise SelectionInvalid(f"at most {PATTERN_MAX} characters")
    try:
        parsed = _sre_parse.parse(pattern)
    except re.error as exc:
        raise SelectionInvalid(f"not a regular expression: {exc}") from None
    _cost(list(parsed))
    return re.compile(pattern)


# -- semver ---------------------------------------------------------------------

_SEMVER = re.compile(r"v?(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})(?:-([0-9A-Za-z.-]{1,64}))?")
_PARTIAL = re.compile(r"v?(\d{1,9})(?:\.(\d{1,9}))?(?:\.(\d{1,9}))?(?:-([0-9A-Za-z.-]{1,64}))?")
_COMPARATOR = re.compile(r"(>=|<=|>|<|=|\^|~)?\s*(\S+)")


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int
    pre: tuple = ()  # () sorts a release after its prereleases through `key`

    @property
    def key(self) -> tuple:
        pre = (1,) if not self.pre else (0, *self.pre)
        return (self.major, self.minor, self.patch, pre)


def _pre_parts(text: str | None) -> tuple:
    if not text:
        return ()
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in text.split("."))


def semver_parse(tag: str) -> Version | None:
    """`1.2.3`, `v1.2.3`, `1.2.3-rc.1`; None for any other tag."""
    match = _SEMVER.fullmatch(tag)
    if match is None:
        return None
    return Version(int(match[1]), int(match[2]), int(match[3]), _pre_parts(match[4]))


Comparator = tuple[str, tuple]  # (op, version key)


def _bounds(op: str, text: str) -> list[Comparator]:
    match = _PARTIAL.fullmatch(text)
    if match is None:
        raise SelectionInvalid(f"{text!r} is not a version such as 1.2 or 1.2.3")
    major = int(match[1])
    minor = int(match[2]) if match[2] is not None else None
    patch = int(match[3]) if match[3] is not None else None
    pre = _pre_parts(match[4])
    low = Version(major, minor or 0, patch or 0, pre).key
    if op in (">", ">=", "<", "<="):
        if op == ">" and patch is None:  # >1.2 means >=1.3.0
            return [(">=", Version(major, 0 if minor is None else minor + 1, 0).key if minor is not None
                     else Version(major + 1, 0, 0).key)]
        if op == "<=" and patch is None:
            return [("<", Version(major + 1, 0, 0).key if minor is None else Version(major, minor + 1, 0).key)]
        return [(op, low)]
    if op == "^":
        if major > 0 or minor is None:
            high = Version(major + 1, 0, 0)
        elif minor > 0 or patch is None:
            high = Version(0, minor + 1, 0)
        else:
            high = Version(0, 0, (patch or 0) + 1)
        return [(">=", low), ("<", Version(high.major, high.minor, high.patch, ((0, 0, ""),)).key)]
    if op == "~":
        high = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
        return [(">=", low), ("<", Version(high.major, high.minor, high.patch, ((0, 0, ""),)).key)]
    # "=" or bare: exact, or the whole partial range
    if patch is not None:
        return [("=", low)]
    high = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
    return [(">=", low), ("<", Version(high.major, high.minor, high.patch, ((0, 0, ""),)).key)]


def semver_range_parse(text: str) -> list[list[Comparator]]:
    """`>=1.2 <2`, `^1.4`, `~2.0.1`, `1.x`-free partials (`1.2`), `a || b`: a list of AND-sets."""
    if not text.strip():
        raise SelectionInvalid("give a semver range such as >=1.2 <2")
    if len(text) > PATTERN_MAX:
        raise SelectionInvalid(f"at most {PATTERN_MAX} characters")
    sets: list[list[Comparator]] = []
    for part in text.split("||"):
        comparators: list[Comparator] = []
        # `>= 1.2` with a space: join an operator to the version after it.
        words = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", part.strip()).split()
        if not words:
            raise SelectionInvalid("an empty alternative around ||")
        for word in words:
            match = _COMPARATOR.fullmatch(word)
            if match is None:  # pragma: no cover - \S+ matches any word
                raise SelectionInvalid(f"cannot read {word!r}")
            comparators += _bounds(match[1] or "=", match[2])
        sets.append(comparators)
    return sets


def _satisfies(key: tuple, comparator: Comparator) -> bool:
    op, bound = comparator
    return {"=": key == bound, ">": key > bound, ">=": key >= bound, "<": key < bound,
            "<=": key <= bound}[op]


def semver_match(version: Version, sets: list[list[Comparator]]) -> bool:
    """A prerelease matches only a set that names a prerelease of the same version (as npm does)."""
    key = version.key
    for comparators in sets:
        if version.pre and not any(b[:3] == key[:3] and b[3] != (1,) for _, b in comparators):
            continue
        if all(_satisfies(key, c) for c in comparators):
            return True
    return False


def semver_newest(tags) -> str:
    """The newest release (not a prerelease) among `tags`, "" when none is a version."""
    best: tuple | None = None
    found = ""
    for tag in tags:
        version = semver_parse(tag)
        if version is None or version.pre:
            continue
        if best is None or version.key > best:
            best, found = version.key, tag
    return found


# -- one entry point --------------------------------------------------------------


def selection_compile(*, mode: str, pattern: str) -> Callable[[str], bool]:
    """A predicate on tag values; raises SelectionInvalid with a message for the field."""
    if mode == "all":
        return lambda tag: True
    if mode == "glob":
        if not pattern:
            raise SelectionInvalid("give a glob such as v*")
        if len(pattern) > PATTERN_MAX:
            raise SelectionInvalid(f"at most {PATTERN_MAX} characters")
        # fnmatch's translation has no nested repeats: linear enough for tag names.
        compiled = re.compile(fnmatch.translate(pattern))
        return lambda tag: compiled.match(tag) is not None
    if mode == "regex":
        compiled = regex_compile(pattern)
        return lambda tag: len(tag) <= TAG_MAX and compiled.fullmatch(tag) is not None
    if mode == "semver":
        sets = semver_range_parse(pattern)

        def matches(tag: str) -> bool:
            version = semver_parse(tag)
            return version is not None and semver_match(version, sets)

        return matches
    raise SelectionInvalid("choose every tag, a glob, a regular expression or a semver range")
