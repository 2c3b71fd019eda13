"""pytest set-up of the benches: one regression report per run (:mod:`regression`), merged
at the end by the controller, and the order the tests are handed out in."""

import os
import shutil
import uuid

import harness
import regression


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test of half a minute or more (scheduled first)")
    config.addinivalue_line("markers", "long: a proof left out of make test (make formal)")
    # Set before xdist starts its workers, which inherit it: every record of this run lands
    # in one folder, merged by the controller alone.
    if not hasattr(config, "workerinput"):
        os.environ.setdefault("FOURBIT_RUN_ID", uuid.uuid4().hex[:12])


def pytest_collection_modifyitems(config, items):
    """Longest first: the ``slow`` benches, then the other benches (a ``sim`` parameter), then
    everything else. With xdist handing out one test at a time (``--maxschedchunk 1``, as the
    Makefile runs it) both workers then finish at about the same time. The other benches run
    Verilator first, Icarus after: a bench's two runs then rarely overlap, and the second
    reads the expectations the first computed (``scoreboard.cached``)."""
    def rank(item):
        if item.get_closest_marker("slow"):
            return (0,)
        sim = getattr(getattr(item, "callspec", None), "params", {}).get("sim")
        return (2,) if sim is None else (1, sim != "verilator")

    items.sort(key=rank)


def pytest_sessionfinish(session, exitstatus):
    if not hasattr(session.config, "workerinput"):
        regression.merge(os.environ["FOURBIT_RUN_ID"])
        shutil.rmtree(harness.VERILOG_CACHE / os.environ["FOURBIT_RUN_ID"], ignore_errors=True)
