"""`python -m tidings_cli`: the `tidings` command."""
from tidings_cli.main import main

main()
