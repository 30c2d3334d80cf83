"""The committed screenshots stay small: the first screen only, in a 256-colour palette (tests/browser/gallery.py)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from tests.browser.gallery import COMMITTED
from tests.browser.test_a11y import WIDTHS

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
MAX_BYTES = 90_000


def test_every_committed_screenshot_is_one_screen_in_a_palette_and_small():
    assert len(COMMITTED) >= 3  # the three the README shows, at least
    for name in sorted(COMMITTED):
        path = SCREENSHOTS / name
        assert path.exists(), f"{name} is committed by .gitignore but missing: run make screenshots"
        width_name = name.rsplit("-", 2)[1]
        with Image.open(path) as image:
            assert image.size == WIDTHS[width_name], (name, image.size)  # the viewport, not the full page
            assert image.mode == "P", (name, image.mode)
        assert path.stat().st_size <= MAX_BYTES, (name, path.stat().st_size)
