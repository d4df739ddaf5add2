"""``python -m voucherify_async``: the ``voucherify-async`` command."""

from voucherify_async._cli import main

raise SystemExit(main())
