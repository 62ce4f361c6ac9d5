"""Ready-made, documented end-to-end runs: the CPU demo, paper scale, and a cluster recipe."""
