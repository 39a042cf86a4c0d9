"""`python -m liverec` is the `liverec` command."""

from liverec.cli import main

main()
