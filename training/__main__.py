"""`python -m training --help` lists every option."""
from training.cli import main

raise SystemExit(main())
