"""Test-only: makes torch in a sweep's fork server behave like a CUDA build (tests/fake_cuda_build.py).

On PYTHONPATH with HARNESS_TEST_CUDA_BUILD=<log file>, it acts in the fork server's process alone (started by
multiprocessing as `python -c 'from multiprocessing.forkserver import main; ...'`), before harness.preload runs;
the launcher and spawned workers stay a CPU build.
"""

import os
import sys

if os.environ.get("HARNESS_TEST_CUDA_BUILD") and "multiprocessing.forkserver" in " ".join(sys.orig_argv):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
    import fake_cuda_build

    fake_cuda_build.activate_from_env()
