"""The JSON API under /api/v1/: reads, list pushes, rules, events and channels; routes in urls.py."""
