"""Content pushed for scan tests: repositories holding the same images (mirrors), or each its own."""

from __future__ import annotations

from registry.images import image_push, index_push
from registry.platform import Platform


def mirrors_push(client, repositories: tuple[str, ...], platforms: list[Platform], *, label: str,
                 same: bool = True) -> None:
    """In each repository an image per platform (tags v0, v1, ...) and a list `multi` of two more images
    (the first two platforms, untagged): the same content in each repository (`same`), or each its own."""
    for repository in repositories:
        own = "" if same else f" {repository}"
        for index, platform in enumerate(platforms):
            image_push(client, repository=repository, tag=f"v{index}", platform=platform,
                       content=f"{label} image {index}{own}\n")
        children = [image_push(client, repository=repository, tag=None, platform=platform,
                               content=f"{label} child {platform.normalized}{own}\n").descriptor()
                    for platform in platforms[:2]]
        index_push(client, repository=repository, tag="multi", children=children)
