"""One module per verb: each has register(subparsers) and sets func."""
