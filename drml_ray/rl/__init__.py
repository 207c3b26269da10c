"""Task families for meta-RL and transfer (gymnasium envs with settable tasks), and transfer metrics."""
