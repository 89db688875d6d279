pytest_plugins = ["tests.peers.fixtures"]
