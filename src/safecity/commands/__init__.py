"""The ``safecity`` command's sub-commands, one module per group.

:mod:`safecity.cli` is the entry point and registers these groups;
:mod:`safecity.commands.common` holds what they share (options, store, output).
"""
