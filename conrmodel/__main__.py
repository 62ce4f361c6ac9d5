"""`python -m conrmodel ...` (what torchrun launches) is the `conrmodel` CLI."""

from conrmodel.cli import main

main()
