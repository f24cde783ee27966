"""Ray Data pipelines for bulk archives (built on the serve_app core)."""
