"""``python -m longline`` is the ``longline`` command."""

from longline.cli import main

main()
