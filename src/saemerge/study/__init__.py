"""Studies: a grid of runs × run seeds × bench seeds, and the statistics and report over it."""
