"""``python -m longline.cli`` is the CLI, as ``python -m longline`` is."""

from longline.cli.group import main

main()
