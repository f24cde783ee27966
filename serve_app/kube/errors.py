"""The one error of `serve_app.kube`: the manifests cannot be rendered (or synced, or applied) as asked."""


class RenderError(ValueError):
    """The manifests cannot be rendered as asked (bad override, missing tool, broken rule)."""
