"""Domain: pure request and record logic, no I/O and no framework imports."""
