"""The command-line commands, one module each; transitwatch.cli assembles them."""
