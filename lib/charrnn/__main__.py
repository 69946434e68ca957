"""python -m charrnn ..."""
from .cli import main

raise SystemExit(main())
