"""Thin Ray Serve deployments: wiring only, the logic lives in the core."""
