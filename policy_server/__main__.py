"""`python -m policy_server ...` is `vla-async serve ...`."""

import sys

from policy_server.cli import main

sys.exit(main())
