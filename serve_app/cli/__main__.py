"""`python -m serve_app.cli` = the `reelserve` command."""

from serve_app.cli import main

main()
