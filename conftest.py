"""Project-wide pytest set-up: one regression report per run, merged at the end."""

import os
import uuid


def pytest_configure(config):
    # Set before xdist starts its workers, which inherit it: every record of this run lands
    # in one folder, merged by the controller alone.
    if not hasattr(config, "workerinput"):
        os.environ.setdefault("FOURBIT_RUN_ID", uuid.uuid4().hex[:12])


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return
    from verif.harness import merge_reports
    merge_reports(os.environ["FOURBIT_RUN_ID"])
