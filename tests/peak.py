"""The peak memory of a vigie process, without pytest's.

A child forked from pytest's process starts with pytest's resident memory, and Linux keeps that high-water
mark across exec: measured from pytest, a small vigie run looks as big as the test session. So a small
process starts vigie and writes vigie's peak (and that of the children vigie waited for) to a file."""
import sys
from pathlib import Path

_LAUNCHER = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[2:]).returncode; "
             "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
             "sys.exit(code if code >= 0 else 128 - code)")


def measured(peak_file: Path, *args: str) -> list[str]:
    """The command line that runs `python -m vigie ARGS` and writes its peak RSS to peak_file."""
    return [sys.executable, "-c", _LAUNCHER, str(peak_file), sys.executable, "-m", "vigie", *args]


def peak_mb(peak_file: Path) -> float:
    """The peak written by a measured command (kB on Linux), in MB; infinite if the command did not write it."""
    try:
        return int(peak_file.read_text()) / 1024
    except (OSError, ValueError):
        return float("inf")
