"""pytest set-up of the benches: one regression report per run (:mod:`regression`), merged
at the end by the controller."""

import os
import uuid

import regression


def pytest_configure(config):
    # Set before xdist starts its workers, which inherit it: every record of this run lands
    # in one folder, merged by the controller alone.
    if not hasattr(config, "workerinput"):
        os.environ.setdefault("FOURBIT_RUN_ID", uuid.uuid4().hex[:12])


def pytest_sessionfinish(session, exitstatus):
    if not hasattr(session.config, "workerinput"):
        regression.merge(os.environ["FOURBIT_RUN_ID"])
