"""``python -m esdiff_cli``: the ``esdiff`` command without the installed script."""

from esdiff_cli.app import main

main()
