"""Create or update assembly rules from a YAML file kept with the code, and apply them.

The schema is the API's (`POST /api/v1/rules`): a list of rules under `rules:`
(the rule page's "Export as YAML" writes one). Rules are matched by name.
`--dry-run` changes nothing and prints what each rule would do to each tag.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from manifests.forms.rules import RuleForm, form_errors, rule_form_data, rule_to_dict
from manifests.models import Rule
from manifests.services import queue, rules


def _rules_in(document) -> list[dict]:
    if isinstance(document, dict) and "rules" in document:
        document = document["rules"]
    elif isinstance(document, dict):
        document = [document]
    if not isinstance(document, list) or not all(isinstance(item, dict) for item in document):
        raise CommandError("expected a list of rules under `rules:`")
    return document


class Command(BaseCommand):
    help = "Create or update the rules of a YAML file (by name), then apply them; --dry-run only shows."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="the YAML file")
        parser.add_argument("--dry-run", action="store_true", help="change nothing, print each rule's dry run")
        parser.add_argument("--no-apply", action="store_true", help="save the rules without applying them")

    def handle(self, *args, path: str, dry_run: bool, no_apply: bool, **options) -> None:
        try:
            document = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
        items = _rules_in(document)
        with transaction.atomic():
            saved = self._save(items)
            if dry_run:
                for rule, change in saved:
                    self._show(rule, change)
                transaction.set_rollback(True)
                return
        for rule, change in saved:
            self.stdout.write(f"{rule.name}: {change}")
            if no_apply:
                continue
            try:
                job = rules.rule_apply_submit(rule=rule)
            except queue.QueueUnavailable as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"{rule.name}: apply job {job.pk} queued")

    def _save(self, items: list[dict]) -> list[tuple[Rule, str]]:
        problems: list[str] = []
        saved: list[tuple[Rule, str]] = []
        for number, item in enumerate(items, start=1):
            name = str(item.get("name") or f"#{number}")
            instance = Rule.objects.filter(name=name).first()
            before = rule_to_dict(instance) if instance else None
            data, early = rule_form_data({k: v for k, v in item.items() if k not in ("id", "url")},
                                         instance=instance)
            form = RuleForm(data, instance=instance)
            fields = {**early, **(form_errors(form) if not form.is_valid() else {})}
            if fields:
                problems += [f"rule {name}: {field}: {message}" for field, messages in fields.items()
                             for message in messages]
                continue
            rule = form.save()
            rule = rules.rule_load(rule_id=rule.pk)
            after = rule_to_dict(rule)
            saved.append((rule, "created" if before is None else "unchanged" if before == after else "updated"))
        if problems:
            raise CommandError("nothing was changed:\n" + "\n".join(problems))
        return saved

    def _show(self, rule: Rule, change: str) -> None:
        dry = rules.rule_dry_run(rule=rule)
        counts = ", ".join(f"{n} {s}" for s, n in sorted(dry.counts().items())) or "no tags"
        self.stdout.write(f"{rule.name}: would be {change}; {counts}")
        for row in dry.rows + dry.also:
            detail = ", ".join(row.missing) or row.error or row.digest
            self.stdout.write(f"  {row.target}\t{row.status}\t{detail}")
