"""One module per sr-kd subcommand: add_arguments(parser) and run(args)."""
