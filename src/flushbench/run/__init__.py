"""The manager process: options, the pyperf manager, peers, merging, host speed, progress."""
