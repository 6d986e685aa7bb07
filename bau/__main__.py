"""``python -m bau ...`` (also what ``torchrun -m bau train ...`` runs)."""
import sys

from bau.cli import main

sys.exit(main())
