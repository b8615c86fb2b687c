"""The ``aurora`` subcommands, one module per family; :mod:`aurora_tui.cli` builds the parser from them.

Each module's ``register(sub)`` adds its subcommands, each wired to one function with
``set_defaults(func=...)``. A function takes the parsed arguments and returns the exit status.
"""
