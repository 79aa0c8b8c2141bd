"""The offline demo upstream: a real HTTP server on loopback that speaks the wire
protocols of the hosted APIs, so the real clients run against it. Pure Python."""

from providers.simulator.server import Simulator, background_simulator

__all__ = ["Simulator", "background_simulator"]
