"""runrec's implementation of the Opentrons Python Protocol API v2 (docs/python-protocols.md).

Protocols import it exactly as on an OT-2: ``from opentrons import protocol_api, types``.
Every call that acts on the robot becomes a command on runrec's bus (module ``_runrec``,
provided by the runrec binary that embeds this interpreter).
"""
from . import types  # noqa: F401
from . import protocol_api  # noqa: F401

__version__ = "7.0.0+runrec"
version = __version__
