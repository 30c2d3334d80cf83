"""Scanning: learn what a registry holds, at the protocol's request floor.

- fetching.py: registry I/O in rounds of threads, on what the database holds looked up in bulk (tags_fetch).
- share.py: what one scan job's parts fetched, shared through Redis.
- storing.py: the column-length guard and the bulk writes (manifests_store, tags_apply).
- repository.py: one repository's scan (repository_scan), a tag just put (tag_record), children checks.
- fanout.py: the scan job: submitted, fanned out one part per repository, closed by its last part.
"""
