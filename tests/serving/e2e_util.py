"""Helpers shared by the end-to-end tests of `hearth serve` (imported from the
same folder; each test still runs as a plain script)."""
import signal
import subprocess


def stop_server(proc, timeout=20):
    """SIGTERM, then wait; kills after `timeout` s. Returns the exit code, or None if killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
    return proc.returncode
