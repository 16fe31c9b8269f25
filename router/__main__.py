"""`python -m router`: run a router."""
from router.server import main

main()
