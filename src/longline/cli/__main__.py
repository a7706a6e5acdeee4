"""``python -m longline.cli`` is the CLI, as ``python -m longline`` is."""

from longline.cli.main import main

main()
