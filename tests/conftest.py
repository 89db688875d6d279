pytest_plugins = ["tests.peers.fixtures", "tests.peers.contentd_fixtures"]
