from faultdiag.cli import main

raise SystemExit(main())
