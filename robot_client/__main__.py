"""`python -m robot_client` = `vla-async client`."""

import sys

from robot_client.cli import main

sys.exit(main())
