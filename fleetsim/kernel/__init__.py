"""Vectorised latency and memory model of a replica, and its calibration."""

from fleetsim.kernel.latency import DecodeRun, ReplicaKernel

__all__ = ["DecodeRun", "ReplicaKernel"]
