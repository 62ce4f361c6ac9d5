"""`python -m conrdata ...` is the `conrdata` CLI."""

from conrdata.cli import main

main()
