"""`python -m benchmark.cli ...`: the `cotrain` command."""
import sys

from benchmark.cli import main

sys.exit(main())
