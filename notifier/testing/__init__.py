"""Public test helpers: real aiohttp servers on 127.0.0.1 that speak the upstream wire formats.

Our tests, ``notifier demo`` and the benchmarks all talk to these over real sockets instead of
patching clients, so the request shape, the headers and the failure modes exercised are the ones
production sees.
"""
