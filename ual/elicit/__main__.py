"""``python -m ual.elicit``: see ``ual.elicit.cli``."""

from ual.elicit.cli import main

main()
