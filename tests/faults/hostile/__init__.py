"""A small hostile registry: the read side of the distribution API, misbehaving on cue.

NOT a registry, and not a general double: a real Docker Distribution cannot be
made to lie about digests, stream endless bodies, hang, reset connections, loop
its Link headers or list names that break the grammar. This threaded
http.server on 127.0.0.1 serves exactly:

    GET  /v2/                                  200 {}
    GET  /v2/_catalog                          the repositories (one page)
    GET  /v2/<name>/tags/list                  the tags, with a Link header where a repository loops
    HEAD, GET /v2/<name>/manifests/<ref>       by tag or by digest
    HEAD, GET /v2/<name>/blobs/<digest>        configs and layers
    GET  /token                                a bearer token for USER:PASSWORD
    the writes in `routes` (POST/PUT <path>)   uploads, for the cross-origin cases
    any other write                            405 UNSUPPORTED

Why each case needs this server and not a real Distribution: Distribution
computes digests itself (so it cannot lie about them, nor serve md5, shake or
lying sha512 digests), serves a manifest's `mediaType` as its Content-Type,
refuses unparseable or oversized manifests at push (400 / 413), never hangs,
resets, trickles or sends 5xx and 429 on cue, builds its own `Link` headers
(no loops, never another origin), refuses repository and tag names outside
the grammar (so it cannot list them, nor put script in a tag name or in its
fixed error messages), refuses an index whose child digest breaks the
grammar, and redirects only through its storage middleware (never to plain
http on its own port, never an upload elsewhere). Content a real registry
does serve as readily (script in annotations, impossible config dates,
over-long config fields, a read-only registry) is pushed to one instead:
tests/faults/test_real_registry_content.py.

Each repository misbehaves in one way (its name says how) and also holds a
correct tag `ok`; good repositories sit beside them. What a correct client
must make of each is in `expected_errors` and `good`.

A second origin (same host, another port: the origin is scheme, host and
port) is the place a hostile registry points credentials at: pagination
`Link`s, upload `Location`s, blob redirects and a moved token realm name it.
It answers whatever a careless client would ask of it. Both origins record
every request with its headers (`seen`), so a test can assert that no
`Authorization` reached the second one. With `auth="basic"` or `"bearer"`
the registry asks for credentials (USER, PASSWORD); its token realm is
`realm` (by default `/token` on the registry's own origin). With `tls`, the
registry's port speaks https, and plain http on the same port too (it peeks
at the first byte), so a downgrade redirect to http://same-host:same-port is
recorded if a client follows it.

The server counts requests per path, every fault it actually sent (a fault is
counted when the lying answer, the reset, the hang or the oversize stream
starts), the bytes it managed to write of each streamed body before the
client hung up, and any request whose path escaped /v2/. Every hang and
stream is bounded and `stop()` wakes them, so a broken client cannot make the
suite hang.
"""
