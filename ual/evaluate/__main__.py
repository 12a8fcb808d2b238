"""``python -m ual.evaluate``: see ``ual.evaluate`` (module docstring) for inputs, outputs and flags."""

from ual.evaluate import main

main()
