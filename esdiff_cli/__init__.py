"""The `esdiff` command line: one module per subcommand over the `esdiff` library."""
