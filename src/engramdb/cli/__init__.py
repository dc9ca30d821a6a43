"""The `engramdb` command line (typer + rich)."""
