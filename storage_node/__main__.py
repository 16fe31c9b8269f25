"""`python -m storage_node`: run one storage node."""
from storage_node.server import main

main()
