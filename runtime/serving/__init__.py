"""The HTTP server, as its own layer over the device API (`runtime.classifier`): `imdb-sentiment-serve`.

    protocol.py          the JSON of both protocols and the OpenAPI document (openapi.json), apart from HTTP
    metrics.py           the Prometheus metrics
    pool.py              the classifiers and the threads they run in
    versions.py          the version serving, which each request holds from its start to its end
    follow.py            --models: follow MODELS/current, load a new version beside the old, check it, swap
    dataplane.py         what the endpoints of both protocols share: the model's life cycle, the answers
    middleware.py        what runs around every request: who may call, the access log, JSON 500s
    app.py               the Starlette application: the endpoints of each protocol version
    uvicorn_internals.py the one module that subclasses uvicorn's non-public connection protocol
    server.py            uvicorn: listening, connection limits, a drained stop

Imports point down this list; nothing in `runtime` outside this package imports it, except the
entry point `runtime/serve.py`.
"""
