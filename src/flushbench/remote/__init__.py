"""Remote hosts: the agent that serves peers, its control protocol, and its client."""
