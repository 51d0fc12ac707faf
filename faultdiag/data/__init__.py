"""Recordings, their readers, CWRU, MNIST, the simulator, windows, splits and noise."""
