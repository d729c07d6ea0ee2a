"""The command line (edge): parses arguments, calls reconcile/promote, prints results."""
