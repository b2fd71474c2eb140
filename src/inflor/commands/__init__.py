"""Sub-commands of the ``inflor`` tool, one module each (see ``inflor.cli``)."""
