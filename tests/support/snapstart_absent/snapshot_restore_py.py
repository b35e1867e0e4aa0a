"""Hides the real ``snapshot_restore_py`` (awslambdaric installs it into the test environment): not a runtime.

First on a subprocess's path, it plays an environment without Lambda's SnapStart hooks (outside Lambda's managed
runtimes the module does not exist): importing it fails as a missing module would.
"""

raise ImportError("snapshot_restore_py: not one of Lambda's managed runtimes (tests/support/snapstart_absent)")
