"""The plans a rule's tags make, remembered per process for what they are made of.

A plan is a function of the rule's settings and of its source tags' rows:
their digests name the manifests, children and configs it is made of (stored
once per digest, never updated), and the key also holds each tag's manifest
row id and scan time, so anything a scan writes about a source tag (a child
stored since, say) makes a new plan. A rule's page shows the same 1,000 plans
at every view between scans: each is made once, kept in a bounded LRU.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock

from registry.assemble import Plan

from ..models import Rule, RuleSource


@dataclass(frozen=True)
class Assembled:
    """What a tag's sources make, whatever the target holds: a plan, or why there is none."""

    missing: tuple[str, ...] = ()
    error: str = ""
    plan: Plan | None = None
    foreign: tuple[int | None, ...] = ()


_PLANS: OrderedDict[tuple, Assembled] = OrderedDict()
PLANS_MAX = 20_000
_LOCK = Lock()


def rule_key_of(rule: Rule, sources: list[RuleSource]) -> tuple:
    """The rule's settings a plan depends on."""
    return (rule.registry_id, rule.target, rule.format, repr(sorted(rule.annotations.items())), tuple(rule.require),
            tuple((s.repository, s.tag, s.platform, s.registry_id) for s in sources))


def plan_remembered(*, key: tuple, make: Callable[[], Assembled]) -> Assembled:
    """The plan made for `key` before, else `make()`'s, remembered."""
    with _LOCK:
        done = _PLANS.get(key)
        if done is not None:
            _PLANS.move_to_end(key)
            return done
    done = make()
    with _LOCK:
        _PLANS[key] = done
        while len(_PLANS) > PLANS_MAX:
            _PLANS.popitem(last=False)
    return done


def rule_plans_forget() -> None:
    """Drop every plan made (tests whose rows reuse made-up digests for other contents)."""
    with _LOCK:
        _PLANS.clear()
