"""What operators plug in: `metrics` (reelserve's Prometheus metrics on Ray's metrics export, recorded by
the deployments and the flow from the stats the core already returns) and `logs` (serve_app's log
records through Ray Serve's replica logger: its files, TEXT/JSON encoding, level and request ids).
Import from the modules.
"""
