"""The benchmarks behind `minadv bench NAME` (not timed tests): one module each with add_arguments and run."""
