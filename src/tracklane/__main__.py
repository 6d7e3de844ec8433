"""`python -m tracklane` runs the command line."""

from tracklane.cli import main

main()
