"""Command wiring of the `interp` CLI for the packages that must know no CLI (parse, call, print)."""
