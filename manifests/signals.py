"""Signals of the inventory: what later features (rules, events) listen to.

`tags_moved` is sent once per repository write, after the transaction that
recorded the tags commits, with every tag that appeared or now names another
digest: `moves` is a list of `TagMove`. Receivers must be quick or hand their
work to a job; they run in the scan's worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.dispatch import Signal


@dataclass(frozen=True)
class TagMove:
    tag: str
    old_digest: str  # "" for a tag seen for the first time
    new_digest: str


# sender: Repository; kwargs: repository (the Repository row), moves (list[TagMove])
tags_moved = Signal()
