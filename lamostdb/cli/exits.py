"""Exit statuses of the ``lamostdb`` command.

- 0: done;
- 2: error, nothing (more) done; the message says what to do;
- 3: done, but something named in the output was left out (ingest: a folder could not be
  read; export: a spectrum's file could not be made). The rest is committed / written.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INCOMPLETE = 3
