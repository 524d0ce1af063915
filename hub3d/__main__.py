from hub3d.cli import main

raise SystemExit(main())
