import signal

pytest_plugins = ["tests.peers.fixtures", "tests.peers.contentd_fixtures"]

# A test run started in the background of a non-interactive shell (``cmd &`` in a script)
# inherits SIGINT ignored, as POSIX has it, and so would every command a test starts: the
# tests that stop a command with SIGINT (Ctrl-C) then wait for it in vain. An ignored
# signal is inherited across exec, a handled one is not: handle it here.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
