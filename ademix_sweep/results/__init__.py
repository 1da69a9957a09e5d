"""Reading a sweep back: trials and status, compare and its statistics, plots."""
