"""Real services on loopback: Docker Distribution (anonymous, Basic, token), its
token server, Redis, Celery workers and a throwaway PostgreSQL cluster.

Started alike by `make run` (the runstack command), the tests' fixtures and
the benchmark; each module starts one kind of service, on a free port.
"""
