"""Sources in another registered registry: planning against its inventory, streaming its blobs.

One code path for the builder's push and a rule's apply: a list is planned
with each source read from its own registry (`SourceClients`), and before
the list is put the entries of other registries are streamed into the
target repository (`Across.bring`: GET from the source, chunked upload to
the target, resumed on a broken connection), since a blob cannot be mounted
from another registry. Then the usual copy finds them in `present`.
"""

from __future__ import annotations

from collections.abc import Callable

from registry.assemble import AssemblyInvalid, Plan, SourceSpec, list_plan

from ..models import Registry
from .registries import registry_client


def source_registries(*, registry: Registry, specs: list[SourceSpec]) -> tuple[dict[str, Registry], dict[str, list[str]]]:
    """The other registries the sources name ({name: row}), and a problem per source naming an unknown one
    (keyed `sources.<i>` as list_plan's)."""
    names = {spec.registry for spec in specs if spec.registry and spec.registry != registry.name}
    known = {row.name: row for row in Registry.objects.filter(name__in=sorted(names))} if names else {}
    problems = {f"sources.{index}": [f"no registry named {spec.registry!r}"]
                for index, spec in enumerate(specs) if spec.registry in names - set(known)}
    return known, problems


def sources_foreign(*, registry: Registry, specs: list[SourceSpec], others: dict[str, Registry]) -> list[int | None]:
    """Per source: the id of the other registry it lives in, None for the target's own."""
    return [others[spec.registry].pk if spec.registry and spec.registry in others and spec.registry != registry.name
            else None for spec in specs]


class SourceClients:
    """For list_plan: the client to read each source from (the target registry's, or another one's)."""

    def __init__(self, default, others: dict[str, object]) -> None:
        self.default, self.others = default, others

    def __call__(self, spec: SourceSpec):
        return self.others.get(spec.registry, self.default) if spec.registry else self.default


def list_plan_inventory(*, registry: Registry, target: str, sources: list[SourceSpec], fmt: str,
                        annotations: dict[str, str]) -> tuple[Plan, dict[str, Registry]]:
    """list_plan from the inventories (no registry I/O), each source read from its own registry's;
    with the other registries named. Raises AssemblyInvalid (an unknown registry at its source)."""
    from .inventory import InventoryClient

    others, unknown = source_registries(registry=registry, specs=sources)
    if unknown:
        raise AssemblyInvalid(unknown)
    clients = SourceClients(InventoryClient(registry), {name: InventoryClient(row) for name, row in others.items()})
    plan = list_plan(client=clients.default, target=target, sources=sources, source_client=clients, fmt=fmt,
                     annotations=annotations)
    return plan, others


class Across:
    """Clients of the other registries the sources live in, opened when first needed, and what moved."""

    def __init__(self, progress: Callable[[dict], None]) -> None:
        from registry.upload import TransferStats

        self.stats = TransferStats()
        self.clients: dict[int, object] = {}
        self.progress = progress

    def client(self, registry_id: int):
        if registry_id not in self.clients:
            self.clients[registry_id] = registry_client(registry=Registry.objects.get(pk=registry_id))
        return self.clients[registry_id]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def bring(self, *, target, plan: Plan, foreign: list[int | None], repository: str, present: set[str]) -> None:
        """Stream the entries that live in another registry (`foreign` per source index) into `repository`."""
        from registry.upload import manifest_transfer

        for entry in plan.entries:
            registry_id = foreign[entry.source_index] if entry.source_index < len(foreign) else None
            if registry_id is None or entry.manifest.digest in present:
                continue
            manifest_transfer(source=self.client(registry_id), source_repository=entry.source_repository,
                              target=target, target_repository=repository, manifest=entry.manifest,
                              stats=self.stats, progress=self.progress)
            present.add(entry.manifest.digest)
