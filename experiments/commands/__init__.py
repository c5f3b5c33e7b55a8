"""minadv's sub-commands, one module each with add_arguments(parser) and run(args); `cli` lists them."""
