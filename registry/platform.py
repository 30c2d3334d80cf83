"""Platforms: parse, normalize (containerd's rules) and order them.

See containerd's `platforms` package (normalisation) and the OCI image index spec
("platform" object).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import InvalidPlatform

# armhf and armel carry their variant: normalize_arch answers them before this table.
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "i386": "386", "aarch64": "arm64"}
_OS_ALIASES = {"macos": "darwin"}
# What an os, architecture or variant may be, typed or from a registry (checked
# at scan time): every one of containerd and the OCI spec has this shape, and a
# value that does not ("=HYPERLINK(...)", markup) is no platform at all.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,31}")
_OS_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")  # 10.0.20348.2113

# One fixed order for display everywhere: the platforms people ask about first.
PREFERRED_ORDER = (
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/arm/v5",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
    "linux/mips64le",
    "windows/amd64",
    "windows/arm64",
    "darwin/amd64",
    "darwin/arm64",
)


def normalize_arch(architecture: str, variant: str = "") -> tuple[str, str]:
    """containerd's normalization of an architecture and its variant."""
    arch = architecture.lower()
    var = (variant or "").lower()
    if arch in ("armhf",):
        return "arm", "v7"
    if arch in ("armel",):
        return "arm", "v6"
    arch = _ARCH_ALIASES.get(arch, arch)
    if arch == "amd64":
        if var in ("", "v1", "1"):
            var = ""
    elif arch == "arm64":
        if var in ("", "8", "v8", "v8.0"):
            var = ""
        elif var in ("9", "9.0", "v9.0"):
            var = "v9"
    elif arch == "arm":
        if var in ("", "7", "v7"):
            var = "v7"
        elif var in ("5", "6", "8"):
            var = "v" + var
    return arch, var


@dataclass(frozen=True, order=False)
class Platform:
    """A platform as the registry gave it; `normalized` is what we compare."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str, *, os_version: str = "", os_features: tuple[str, ...] = ()) -> Platform:
        """Parse `os/arch[/variant]` as typed by a person (docker --platform)."""
        value = (text or "").strip()
        parts = value.split("/")
        if not value or len(parts) < 2 or len(parts) > 3 or not all(parts):
            raise InvalidPlatform(f"{text!r} is not a platform: expected os/arch or os/arch/variant")
        for part in parts:
            if not _TOKEN.fullmatch(part):
                raise InvalidPlatform(f"{text!r} is not a platform: {part!r} is not a token "
                                      "(letters, digits, '.', '_', '-'; at most 32, a letter or digit first)")
        variant = parts[2] if len(parts) == 3 else ""
        return cls(os=parts[0].lower(), architecture=parts[1].lower(), variant=variant.lower(),
                   os_version=os_version, os_features=tuple(os_features))

    @classmethod
    def from_json(cls, data: object) -> Platform:
        """From an image index `platform` object or an image config."""
        if not isinstance(data, dict):
            raise InvalidPlatform("platform is not an object")
        os_name = data.get("os") or ""
        arch = data.get("architecture") or ""
        variant = data.get("variant") or ""
        os_version = data.get("os.version") or ""
        features = data.get("os.features") or ()
        if not all(isinstance(v, str) for v in (os_name, arch, variant, os_version)):
            raise InvalidPlatform("platform fields must be strings")
        if not isinstance(features, (list, tuple)) or not all(isinstance(f, str) for f in features):
            raise InvalidPlatform("os.features must be a list of strings")
        return cls(os=os_name, architecture=arch, variant=variant, os_version=os_version,
                   os_features=tuple(features))

    def to_json(self) -> dict:
        data: dict = {"architecture": self.architecture, "os": self.os}
        if self.os_version:
            data["os.version"] = self.os_version
        if self.os_features:
            data["os.features"] = list(self.os_features)
        if self.variant:
            data["variant"] = self.variant
        return data

    def grammar_problem(self) -> str:
        """What breaks the token grammar in the os, architecture, variant or os.version; "" when nothing."""
        for label, value, grammar in (("os", self.os, _TOKEN), ("architecture", self.architecture,
                                      _TOKEN), ("variant", self.variant, _TOKEN),
                                      ("os.version", self.os_version, _OS_VERSION)):
            if value and not grammar.fullmatch(value):
                shown = value if len(value) <= 40 else value[:40] + "…"
                return f"{label} {shown!r} is not a platform token"
        return ""

    @property
    def is_unknown(self) -> bool:
        """Attestation manifests carry unknown/unknown: not a real platform."""
        return self.os in ("", "unknown") and self.architecture in ("", "unknown")

    @property
    def normalized(self) -> str:
        """`os/arch[/variant]` after containerd's normalization."""
        os_name = _OS_ALIASES.get(self.os.lower(), self.os.lower())
        arch, variant = normalize_arch(self.architecture, self.variant)
        return f"{os_name}/{arch}/{variant}" if variant else f"{os_name}/{arch}"

    @property
    def key(self) -> tuple[str, str]:
        """Identity for duplicate detection: windows builds differ by os.version."""
        os_name = _OS_ALIASES.get(self.os.lower(), self.os.lower())
        build = ".".join(self.os_version.split(".")[:3]) if os_name == "windows" else ""
        return self.normalized, build

    def __str__(self) -> str:
        text = self.normalized
        return f"{text} ({self.os_version})" if self.os_version else text


def platform_sort_key(normalized: str) -> tuple[int, str]:
    """Fixed display order: well-known platforms first, then alphabetical."""
    try:
        return PREFERRED_ORDER.index(normalized), ""
    except ValueError:
        return len(PREFERRED_ORDER), normalized


def normalize_platform_string(text: str) -> str:
    """Normalize a typed `os/arch[/variant]` string; raises InvalidPlatform."""
    return Platform.parse(text).normalized
