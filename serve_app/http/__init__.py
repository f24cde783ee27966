"""The HTTP edge of the API, independent of Ray Serve's wiring: API-key auth (`auth`), SSRF-safe URL
fetching (`fetch`), streamed multipart uploads (`upload`), request intake and option parsing (`intake`),
RFC 9457 problem responses with request ids (`problems`) and server-sent job events (`events`). The
ingress deployment (serve_app.deployments.ingress) composes them; import from the modules, each of which
declares its public names in `__all__`.
"""
