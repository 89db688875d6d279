from contentd.cli import entry

entry()
