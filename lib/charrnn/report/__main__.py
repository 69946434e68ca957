"""python -m charrnn.report ...: the build's command line (build.main)."""
from .build import main

raise SystemExit(main())
