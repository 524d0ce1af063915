"""`python -m hub3d.workers`: a model worker process (hub3d.workers.child, imported by its own
name, so what the worker keeps at module level is one object)."""

from hub3d.workers.child import main

raise SystemExit(main())
