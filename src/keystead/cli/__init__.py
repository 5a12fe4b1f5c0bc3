"""The `keystead` command line: every admin operation, with --json for scripts."""
